/* Fuzz harness: arbitrary bytes as a host (first two bytes: the port)
 * against a fixed policy. Checks that normalisation is idempotent and emits
 * only [a-z0-9._-] or an IP literal, that a host with a NUL or a byte the
 * normaliser refuses is always denied as bad_host, that matching the raw
 * and the normalised form agree, and runs the address guard on the bytes. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy_text[] = "version: 1\n"
				  "allow:\n"
				  "  - a.test\n"
				  "  - \"*.b.test\"\n"
				  "  - host: c.test\n"
				  "    ports: [22, 443]\n"
				  "    tls: false\n"
				  "  - 10.0.0.0/8\n"
				  "  - \"2001:db8::/32\"\n"
				  "  - host: 192.168.1.50\n"
				  "    ports: [11434]\n"
				  "deny:\n"
				  "  - x.b.test\n"
				  "  - \"*.y.b.test\"\n"
				  "  - 10.9.0.0/16\n";

static struct policy *P;

static void ensure_policy(void)
{
	char err[POLICY_ERR_MAX];
	if (P == NULL &&
	    policy_load_string("m.yaml", policy_text, sizeof policy_text - 1,
			       &P, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ensure_policy();
	if (size < 2)
		return 0;
	uint16_t port = (uint16_t)(data[0] << 8 | data[1]);
	const char *host = (const char *)data + 2;
	size_t len = size - 2;

	char n1[POLICY_HOST_MAX + 1], n2[POLICY_HOST_MAX + 1];
	char err[POLICY_ERR_MAX];
	struct policy_decision raw, nd;
	policy_match_len(P, host, len, port, &raw);
	if (raw.reason == NULL)
		abort();
	int rc =
	    policy_host_normalize(host, len, n1, sizeof n1, err, sizeof err);
	if (rc != 0) {
		if (strcmp(raw.reason, "bad_host") != 0 ||
		    raw.verdict != POLICY_DENY ||
		    strncmp(err, "bad host", 8) != 0)
			abort();
	} else {
		if (memchr(host, '\0', len) != NULL)
			abort();
		size_t l1 = strlen(n1);
		if (l1 == 0 || l1 > POLICY_HOST_MAX)
			abort();
		bool ip = policy_host_is_ip_literal(n1);
		for (size_t i = 0; i < l1; i++) {
			char c = n1[i];
			bool ok = (c >= 'a' && c <= 'z') ||
				  (c >= '0' && c <= '9') || c == '.' ||
				  c == '-' || c == '_' || (ip && c == ':');
			if (!ok)
				abort();
		}
		if (policy_host_normalize(n1, l1, n2, sizeof n2, err,
					  sizeof err) != 0 ||
		    strcmp(n1, n2) != 0)
			abort();
		policy_match(P, n1, port, &nd);
		if (nd.verdict != raw.verdict ||
		    strcmp(nd.reason, raw.reason) != 0 ||
		    (nd.rule == NULL) != (raw.rule == NULL))
			abort();
		if (raw.verdict == POLICY_ALLOW && raw.rule == NULL)
			abort();
	}
	/* The same bytes as a resolved address. */
	if (len >= 16) {
		struct sockaddr_in6 s6;
		memset(&s6, 0, sizeof s6);
		s6.sin6_family = AF_INET6;
		memcpy(&s6.sin6_addr, host, 16);
		struct policy_decision d;
		policy_check_addr(P, (struct sockaddr *)&s6, port, &d);
		if (d.verdict == POLICY_ALLOW &&
		    policy_addr_is_internal((struct sockaddr *)&s6) &&
		    d.rule == NULL)
			abort();
	}
	if (len >= 4) {
		struct sockaddr_in s4;
		memset(&s4, 0, sizeof s4);
		s4.sin_family = AF_INET;
		memcpy(&s4.sin_addr, host, 4);
		struct policy_decision d;
		policy_check_addr(P, (struct sockaddr *)&s4, port, &d);
		if (d.verdict == POLICY_ALLOW &&
		    policy_addr_is_internal((struct sockaddr *)&s4) &&
		    d.rule == NULL)
			abort();
	}
	return 0;
}
