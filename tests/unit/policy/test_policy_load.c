/* Loader errors: every message the policy loader produces, with the exact
 * FILE:LINE:COL of the offending node, and the guarantee that a failed load
 * hands back nothing (no half-applied policy). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"

struct ecase {
	const char *text;
	const char *err;
};

/* Each text is one policy, loaded under the name "e.yaml". */
static const struct ecase ecases[] = {
    {"version: 1\nallow:\n  - github.com\nlimts: {}\n",
     "e.yaml:4:1: unknown key 'limts' (expected version, allow, deny, "
     "defaults, limits, unknown, mode, credentials)"},
    {"version: 1\nallow:\n  - host: a.test\n    port: [443]\n",
     "e.yaml:4:5: unknown key 'port' in an allow rule (expected host, ports, "
     "tls, inspect, http, credential, upload_budget)"},
    {"version: 1\nallow:\n  host: a.test\n",
     "e.yaml:3:3: 'allow' must be a list of rules, not a mapping"},
    {"version: 1\nlimits:\n  idle_timeout: 10 min\n",
     "e.yaml:3:17: bad duration '10 min' for idle_timeout (expected an integer "
     "followed by ms, s, m or h, e.g. 10s)"},
    {"version: 1\nlimits:\n  idle_timeout: 0s\n",
     "e.yaml:3:17: idle_timeout must be greater than zero, got '0s'"},
    {"version: 1\nlimits:\n  connect_timeout: 5000h\n",
     "e.yaml:3:20: connect_timeout '5000h' is too long (at most 1193h)"},
    {"version: 1\nallow:\n  - github.com@evil.test\n",
     "e.yaml:3:5: bad host 'github.com@evil.test': character '@' not allowed "
     "in a host name"},
    {"version: 1\nallow:\n  - evil.test#.github.com\n",
     "e.yaml:3:5: bad host 'evil.test#.github.com': character '#' not allowed "
     "in a host name"},
    {"version: 1\nallow:\n  - host: 10.0.0.0/33\n",
     "e.yaml:3:11: bad CIDR '10.0.0.0/33': prefix length must be 0..32"},
    {"version: 1\nallow:\n  - 10.0.0.1/8\n",
     "e.yaml:3:5: bad CIDR '10.0.0.1/8': address has bits set beyond the /8 "
     "prefix"},
    {"version: 1\nallow:\n  - example.test/8\n",
     "e.yaml:3:5: bad CIDR 'example.test/8': the part before '/' must be an "
     "IPv4 or IPv6 address"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: [443, 0]\n",
     "e.yaml:4:18: bad port '0' (expected an integer 1..65535)"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: [65536]\n",
     "e.yaml:4:13: bad port '65536' (expected an integer 1..65535)"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: [https]\n",
     "e.yaml:4:13: bad port 'https' (expected an integer 1..65535)"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: [\"443\"]\n",
     "e.yaml:4:13: bad port '\"443\"' (expected an integer 1..65535)"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: []\n",
     "e.yaml:4:12: ports must not be empty"},
    {"version: 1\nallow:\n  - github.com\n  - host: GitHub.com.\n",
     "e.yaml:4:11: duplicate allow rule 'GitHub.com.' (same host as "
     "'github.com' at line 3)"},
    {"version: 1\nversion: 1\n", "e.yaml:2:1: duplicate key 'version'"},
    {"allow:\n  - a.test\n", "e.yaml:1:1: missing 'version: 1'"},
    {"version: 2\n", "e.yaml:1:10: unsupported version '2' (expected 1)"},
    {"version: \"1\"\n",
     "e.yaml:1:10: unsupported version '\"1\"' (expected 1)"},
    {"version: 1\nallow:\n  - host: a.test\n    tls: yes\n",
     "e.yaml:4:10: tls must be true or false, got 'yes'"},
    {"version: 1\ndeny:\n  - host: a.test\n    tls: false\n",
     "e.yaml:4:10: 'tls' only applies to allow rules"},
    {"version: 1\nallow:\n  - ports: [443]\n",
     "e.yaml:3:5: rule has no 'host'"},
    {"version: 1\nallow:\n  - [a.test, b.test]\n",
     "e.yaml:3:5: a rule must be a host string or a mapping with 'host', not a "
     "list"},
    {"version: 1\nallow: [a.test\n",
     "e.yaml:3:1: YAML syntax error: did not find expected ',' or ']' while "
     "parsing a flow sequence"},
    {"version: 1\nallow:\n  - &x a.test\ndeny:\n  - *x\n",
     "e.yaml:5:3: YAML aliases are not supported in a policy"},
    {"version: 1\n---\nversion: 1\n",
     "e.yaml:2:1: a policy file holds one YAML document; found another"},
    {"", "e.yaml:1:1: the policy is empty (expected 'version: 1')"},
    {"- a.test\n", "e.yaml:1:1: the policy must be a mapping starting with "
		   "'version: 1', not a list"},
    {"version: 1\nallow:\n  - \"*.\"\n",
     "e.yaml:3:5: bad wildcard host '*.': empty host"},
    {"version: 1\nallow:\n  - \"*.10.0.0.1\"\n",
     "e.yaml:3:5: bad wildcard host '*.10.0.0.1': a wildcard needs a domain "
     "name, not an address"},
    {"version: 1\nallow:\n  - a.*.test\n",
     "e.yaml:3:5: bad host 'a.*.test': '*' is only allowed as a leading '*.'"},
    {"version: 1\nallow:\n  - \"*\"\n",
     "e.yaml:3:5: bad host '*': '*' is only allowed as a leading '*.'"},
    {"version: 1\nallow:\n  - "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test\n",
     "e.yaml:3:5: bad host "
     "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test': "
     "label longer than 63 bytes"},
    {"version: 1\nallow:\n  - a..test\n",
     "e.yaml:3:5: bad host 'a..test': empty label"},
    {"version: 1\nallow:\n  - -a.test\n",
     "e.yaml:3:5: bad host '-a.test': label starts or ends with '-'"},
    {"version: 1\nlimits:\n  max_connections: 0\n",
     "e.yaml:3:20: max_connections must be an integer 1..1000000, got '0'"},
    {"version: 1\nlimits:\n  max_connections: -1\n",
     "e.yaml:3:20: max_connections must be an integer 1..1000000, got '-1'"},
    {"version: 1\nlimits:\n  max_connections: many\n",
     "e.yaml:3:20: max_connections must be an integer 1..1000000, got 'many'"},
    {"version: 1\ndefaults:\n  port: [443]\n",
     "e.yaml:3:3: unknown key 'port' in defaults (expected ports)"},
    {"version: 1\ndefaults: [443]\n",
     "e.yaml:2:11: 'defaults' must be a mapping, not a list"},
    {"version: 1\nallow:\n  - bücher.test\n",
     "e.yaml:3:5: bad host 'b\\xc3\\xbccher.test': non-ASCII byte (write IDNs "
     "as punycode, xn--...)"},
    {"version: 1\nallow:\n  - \"a\\0b.test\"\n",
     "e.yaml:3:5: bad host 'a\\x00b.test': contains a NUL byte"},
    {"version: 1\ndeny:\n  - 10.0.0.0/8\n  - 10.0.0.0/8\n",
     "e.yaml:4:5: duplicate deny rule '10.0.0.0/8' (same host as '10.0.0.0/8' "
     "at line 3)"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: [443, 443]\n",
     "e.yaml:4:18: port 443 listed twice"},
    {"version: 1\nallow:\n  - host: a.test\n    host: b.test\n",
     "e.yaml:4:5: duplicate key 'host'"},
    {"version: 1\nallow:\n  - host:\n",
     "e.yaml:3:10: host must be a host name, IP or CIDR, not empty"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: 443\n",
     "e.yaml:4:12: ports must be a list of port numbers, e.g. [443], not a "
     "scalar"},
    {"version: 1\nlimits: 5\n",
     "e.yaml:2:9: 'limits' must be a mapping, not a scalar"},
    {"version: 1\nallow:\n  - \"*.a.test\"\n  - \"*.A.TEST.\"\n",
     "e.yaml:4:5: duplicate allow rule '*.A.TEST.' (same host as '*.a.test' at "
     "line 3)"},
    {"version: 1\nallow:\n  - 2001:db8::/129\n",
     "e.yaml:3:5: bad CIDR '2001:db8::/129': prefix length must be 0..128"},
    {"version: 1\nlimits:\n  header_timeout: 10\n",
     "e.yaml:3:19: bad duration '10' for header_timeout (expected an integer "
     "followed by ms, s, m or h, e.g. 10s)"},
    {"version: 1\nlimits:\n  header_timeout: 1.5s\n",
     "e.yaml:3:19: bad duration '1.5s' for header_timeout (expected an integer "
     "followed by ms, s, m or h, e.g. 10s)"},
    {"version: 1\n\tallow: []\n",
     "e.yaml:2:1: YAML syntax error: found a tab character that violates "
     "indentation while scanning a plain scalar"},
    {"version: 1\nallow:\n  - a.test\n  -   b.test\n  - host:   \"c test\"\n",
     "e.yaml:5:13: bad host 'c test': byte 0x20 not allowed in a host name"},
    {"version: 1\nallow:\n  - a.test\n  - b.test\n  - host: x.test\n    ports: "
     "[1]\n  - host: x.test\n",
     "e.yaml:7:11: duplicate allow rule 'x.test' (same host as 'x.test' at "
     "line 5)"},
    {"version: 1\nallow:\n- 10.0.0.0/8\n- \"::ffff:10.0.0.0/104\"\n- "
     "10.0.0.0/08\n",
     "e.yaml:5:3: bad CIDR '10.0.0.0/08': prefix length must be 0..32"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: [-1]\n",
     "e.yaml:4:13: bad port '-1' (expected an integer 1..65535)"},
    {"version: 1\nallow:\n  - host: a.test\n    ports: [0443]\n",
     "e.yaml:4:13: bad port '0443' (expected an integer 1..65535)"},
    {"version: 1\nallow:\n  - host: {a: b}\n",
     "e.yaml:3:11: host must be a host name, IP or CIDR, not a mapping"},
    {"version: 1\nallow:\n  - host: a.test\n    tls: \"true\"\n",
     "e.yaml:4:10: tls must be true or false, got 'true'"},
    {"version: 1\nlimits:\n  idle_timeout: 10s\n  idle_timeout: 1m\n",
     "e.yaml:4:3: duplicate key 'idle_timeout'"},
    {"version: 1\nlimits:\n  idle_timeout: 5d\n",
     "e.yaml:3:17: bad duration '5d' for idle_timeout (expected an integer "
     "followed by ms, s, m or h, e.g. 10s)"},
    {"version: 1\nlimits:\n  idle_timeout: \"10s\"\n",
     "e.yaml:3:17: bad duration '\"10s\"' for idle_timeout (expected an "
     "integer followed by ms, s, m or h, e.g. 10s)"},
    {"version: 1\nlimits:\n  idle_timeout: s\n",
     "e.yaml:3:17: bad duration 's' for idle_timeout (expected an integer "
     "followed by ms, s, m or h, e.g. 10s)"},
    {"version: 1\nallow:\n  - \"*.*.a.test\"\n",
     "e.yaml:3:5: bad wildcard host '*.*.a.test': character '*' not allowed in "
     "a host name"},
    {"version: 1\nallow:\n  - \"*.a.test:443\"\n",
     "e.yaml:3:5: bad wildcard host '*.a.test:443': ':' is only allowed in an "
     "IPv6 address, and this is not one"},
    {"version: 1\nallow:\n  - https://a.test/\n",
     "e.yaml:3:5: bad CIDR 'https://a.test/': the part before '/' must be an "
     "IPv4 or IPv6 address"},
    {"version: 1\nallow:\n  - github.com:443\n",
     "e.yaml:3:5: bad host 'github.com:443': write the port in 'ports: [443]', "
     "not after the host"},
    {"version: 1\nallow:\n  - host: \"[::1]:443\"\n",
     "e.yaml:3:11: bad host '[::1]:443': '[' must enclose an IPv6 address"},
    {"version: 1\nallow:\n  - a.test\n...\n---\nversion: 1\n",
     "e.yaml:5:1: a policy file holds one YAML document; found another"},
    /* syntax and reader errors in the middle of a line: the column is
     * counted from the line's start, not from the file's */
    {"version: 1\nallow:\n  - a.test\n  - \"b.test\xff\"\n",
     "e.yaml:4:12: YAML syntax error: invalid leading UTF-8 octet (byte "
     "0xff)"},
    {"version: 1\nallow:\n  - a.test\n  - host: x.test\x01\n",
     "e.yaml:4:17: YAML syntax error: control characters are not allowed "
     "(byte 0x01)"},
    {"version: 1\nallow:\n  - a.test\ndeny: { x: [1, }\n",
     "e.yaml:4:16: YAML syntax error: did not find expected node content "
     "while parsing a flow node"},
    {"version: 1\nallow:\n  - a.test: b: c\n",
     "e.yaml:3:14: YAML syntax error: mapping values are not allowed in this "
     "context"},
};

static void test_every_error(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof ecases / sizeof ecases[0]; i++) {
		struct policy *p = (struct policy *)&bad; /* sentinel */
		char err[POLICY_ERR_MAX] = "";
		int rc = policy_load_string("e.yaml", ecases[i].text,
					    strlen(ecases[i].text), &p, err,
					    sizeof err);
		if (rc >= 0 || strcmp(err, ecases[i].err) != 0 ||
		    p != (struct policy *)&bad) {
			fprintf(stderr,
				"case %zu: rc=%d\n  got  %s\n  want %s\n", i,
				rc, err, ecases[i].err);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* Embedded NUL and a NUL-free length: the loader uses explicit lengths. */
static void test_error_nul_in_text(void **state)
{
	(void)state;
	static const char txt[] =
	    "version: 1\nallow:\n  - a.test\n\0  - b.test\n";
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	assert_true(policy_load_string("n.yaml", txt, sizeof txt - 1, &p, err,
				       sizeof err) < 0);
	assert_null(p);
	assert_string_equal(err, "n.yaml:4:1: YAML syntax error: control "
				 "characters are not allowed (byte 0x00)");
	/* the same text cut before the NUL is fine */
	assert_int_equal(
	    policy_load_string("n.yaml", txt, 29, &p, err, sizeof err), 0);
	assert_int_equal(policy_rule_count(p), 1);
	policy_unref(p);
}

static void test_empty_and_null_text(void **state)
{
	(void)state;
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	assert_int_equal(
	    policy_load_string("z.yaml", NULL, 0, &p, err, sizeof err),
	    -EINVAL);
	assert_string_equal(
	    err, "z.yaml:1:1: the policy is empty (expected 'version: 1')");
	assert_int_equal(
	    policy_load_string("z.yaml", NULL, 5, &p, err, sizeof err),
	    -EINVAL);
	assert_string_equal(err, "z.yaml:1:1: no policy text");
	assert_int_equal(policy_load_string("z.yaml", "# only a comment\n", 17,
					    &p, err, sizeof err),
			 -EINVAL);
	assert_string_equal(
	    err, "z.yaml:1:1: the policy is empty (expected 'version: 1')");
	assert_null(p);
}

static void test_load_file(void **state)
{
	(void)state;
	char path[] = "/tmp/agentsafe-policy-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char txt[] =
	    "version: 1\nallow:\n  - a.test\n  - bad host\n";
	assert_int_equal(write(fd, txt, sizeof txt - 1),
			 (ssize_t)(sizeof txt - 1));
	close(fd);
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX], want[POLICY_ERR_MAX + 64];
	assert_int_equal(policy_load_file(path, &p, err, sizeof err), -EINVAL);
	snprintf(
	    want, sizeof want,
	    "%s:4:5: bad host 'bad host': byte 0x20 not allowed in a host name",
	    path);
	assert_string_equal(err, want);
	assert_null(p);
	/* fix the file: now it loads, and rule texts carry the path */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("version: 1\nallow:\n  - a.test\n", f);
	fclose(f);
	assert_int_equal(policy_load_file(path, &p, err, sizeof err), 0);
	struct policy_decision d;
	policy_match(p, "a.test", 443, &d);
	snprintf(want, sizeof want, "a.test (%s:3)", path);
	assert_string_equal(d.rule, want);
	assert_string_equal(policy_source(p), path);
	policy_unref(p);
	unlink(path);
	assert_int_equal(policy_load_file(path, &p, err, sizeof err), -ENOENT);
	snprintf(want, sizeof want,
		 "%s:1:1: cannot open: No such file or directory", path);
	assert_string_equal(err, want);
	assert_int_equal(policy_load_file("/tmp", &p, err, sizeof err),
			 -EINVAL);
	assert_non_null(strstr(err, "/tmp:1:1: not a regular file"));
}

/* Tiny error buffers are truncated, never overrun. */
static void test_error_buffer_small(void **state)
{
	(void)state;
	char err[8];
	struct policy *p = NULL;
	assert_true(policy_load_string("e.yaml", "version: 7\n", 11, &p, err,
				       sizeof err) < 0);
	assert_string_equal(err, "e.yaml:");
	assert_true(
	    policy_load_string("e.yaml", "version: 7\n", 11, &p, NULL, 0) < 0);
}

/* Anchors and aliases would let a tiny file expand into a huge walk
 * ("billion laughs"); they are refused outright. */
static void test_alias_bomb(void **state)
{
	(void)state;
	static const char txt[] =
	    "version: 1\n"
	    "a: &a [x.test, x.test, x.test, x.test, x.test, x.test]\n"
	    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	    "allow: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	assert_true(policy_load_string("b.yaml", txt, sizeof txt - 1, &p, err,
				       sizeof err) < 0);
	assert_string_equal(err, "b.yaml:2:1: unknown key 'a' (expected "
				 "version, allow, deny, defaults, limits, "
				 "unknown, mode, credentials)");
	static const char txt2[] = "version: 1\n"
				   "deny: &d [x.test]\n"
				   "allow: *d\n";
	assert_true(policy_load_string("b.yaml", txt2, sizeof txt2 - 1, &p, err,
				       sizeof err) < 0);
	assert_string_equal(
	    err, "b.yaml:3:1: YAML aliases are not supported in a policy");
	assert_null(p);
}

/* Deeply nested input is rejected by the schema walk without recursion. */
static void test_deep_nesting(void **state)
{
	(void)state;
	size_t depth = 5000;
	char *txt = malloc(depth * 2 + 32);
	assert_non_null(txt);
	size_t o = (size_t)sprintf(txt, "version: 1\nallow: ");
	for (size_t i = 0; i < depth; i++)
		txt[o++] = '[';
	for (size_t i = 0; i < depth; i++)
		txt[o++] = ']';
	txt[o++] = '\n';
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	assert_true(
	    policy_load_string("deep.yaml", txt, o, &p, err, sizeof err) < 0);
	assert_string_equal(err, "deep.yaml:2:9: a rule must be a host string "
				 "or a mapping with 'host', not a list");
	free(txt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_error),
	    cmocka_unit_test(test_error_nul_in_text),
	    cmocka_unit_test(test_empty_and_null_text),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_error_buffer_small),
	    cmocka_unit_test(test_alias_bomb),
	    cmocka_unit_test(test_deep_nesting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
