/* Fuzz harness: arbitrary bytes as an inspected request's method and path
 * (split at the first NUL) against a fixed policy with http: rules. Checks
 * that a decision is always one of the three codes, that a path with a dot
 * segment is never allowed, and that the query never changes the verdict. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy_text[] =
    "version: 1\n"
    "allow:\n"
    "  - host: a.test\n"
    "    inspect: true\n"
    "    http:\n"
    "      - methods: [GET, HEAD]\n"
    "        paths: [\"/x/*/y\", \"/p/**\", \"/**/z/*.git/**\"]\n"
    "      - methods: [POST]\n"
    "        paths: [\"/*\", \"/a*b*c/d\"]\n";

static struct policy *P;

/* A "." or ".." segment before the query. */
static int has_dot_segment(const char *path)
{
	size_t pl = strcspn(path, "?");
	size_t start = 0;
	for (size_t i = 0; i <= pl; i++) {
		if (i == pl || path[i] == '/') {
			size_t n = i - start;
			if ((n == 1 && path[start] == '.') ||
			    (n == 2 && path[start] == '.' &&
			     path[start + 1] == '.'))
				return 1;
			start = i + 1;
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[POLICY_ERR_MAX];
	if (P == NULL &&
	    policy_load_string("h.yaml", policy_text, sizeof policy_text - 1,
			       &P, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	if (size > 20000)
		return 0;
	char *buf = malloc(size + 8);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	const char *method = buf;
	const char *path = buf + strlen(buf) + (strlen(buf) < size ? 1 : 0);
	if (path > buf + size)
		path = buf + size;
	struct policy_http_decision d;
	policy_http_match(P, "a.test", 443, method, path, &d);
	if (strcmp(d.reason, "allowed") != 0 &&
	    strcmp(d.reason, "method_not_allowed") != 0 &&
	    strcmp(d.reason, "path_not_allowed") != 0)
		abort();
	if (d.verdict == POLICY_ALLOW && has_dot_segment(path))
		abort();
	/* The query is not matched: appending one changes nothing. */
	if (strchr(path, '?') == NULL && strlen(path) < 10000) {
		char q[10100];
		snprintf(q, sizeof q, "%s?a=/../b", path);
		struct policy_http_decision d2;
		policy_http_match(P, "a.test", 443, method, q, &d2);
		if (d2.verdict != d.verdict)
			abort();
	}
	free(buf);
	return 0;
}
