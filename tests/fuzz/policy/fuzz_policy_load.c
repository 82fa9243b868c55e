/* Fuzz harness: arbitrary bytes as policy.yaml. A load either fails with a
 * "fuzz.yaml:LINE:COL: ..." message and no policy, or yields a policy that
 * answers matches, address checks and explanations without memory errors. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const hosts[] = {
    "a.test",	 "x.a.test",	 "github.com", "10.0.0.1",	    "::1",
    "[fd00::1]", "192.168.1.50", "a..test",    "evil.test#.a.test",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	int rc = policy_load_string("fuzz.yaml", (const char *)data, size, &p,
				    err, sizeof err);
	if (rc != 0) {
		/* Every failure is located and nothing is handed out. */
		if (p != NULL || strncmp(err, "fuzz.yaml:", 10) != 0)
			abort();
		return 0;
	}
	if (p == NULL)
		abort();
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		struct policy_decision d;
		policy_match(p, hosts[i], 443, &d);
		if (d.reason == NULL)
			abort();
		if (d.rule != NULL && strstr(d.rule, " (fuzz.yaml:") == NULL)
			abort();
		char buf[1024];
		policy_explain(p, hosts[i], 8443, buf, sizeof buf);
	}
	struct sockaddr_in6 s6;
	memset(&s6, 0, sizeof s6);
	s6.sin6_family = AF_INET6;
	s6.sin6_addr.s6_addr[15] = 1;
	struct policy_decision d;
	policy_check_addr(p, (struct sockaddr *)&s6, 443, &d);
	const struct policy_limits *l = policy_get_limits(p);
	if (l->max_connections == 0 || l->idle_timeout_ms == 0)
		abort();
	policy_unref(policy_ref(p));
	policy_unref(p);
	return 0;
}
