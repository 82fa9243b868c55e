/* Host:port decisions of the compiled policy: exact names, wildcards,
 * ports and defaults, IP/CIDR rules, deny-beats-allow, and hostile host
 * strings (userinfo, fragments, NULs, bad labels), each against one policy. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

static const char fixture[] = "version: 1\n"			      /* 1 */
			      "allow:\n"			      /* 2 */
			      "  - github.com\n"		      /* 3 */
			      "  - \"*.githubusercontent.com\"\n"     /* 4 */
			      "  - API.Example.test.\n"		      /* 5 */
			      "  - host: ssh.code.test\n"	      /* 6 */
			      "    ports: [22, 443]\n"		      /* 7 */
			      "    tls: false\n"		      /* 8 */
			      "  - host: 10.1.2.3\n"		      /* 9 */
			      "    ports: [8080]\n"		      /* 10 */
			      "  - host: 192.168.0.0/16\n"	      /* 11 */
			      "    ports: [11434]\n"		      /* 12 */
			      "  - host: 2001:db8::/32\n"	      /* 13 */
			      "  - host: \"*.svc.test\"\n"	      /* 14 */
			      "    ports: [8443, 443]\n"	      /* 15 */
			      "  - host: fd00::1\n"		      /* 16 */
			      "    ports: [80]\n"		      /* 17 */
			      "  - 203.0.113.7\n"		      /* 18 */
			      "  - \"[2001:db8:1::5]\"\n"	      /* 19 */
			      "  - deep.test\n"			      /* 20 */
			      "  - \"*.deep.test\"\n"		      /* 21 */
			      "  - \"*.corp.test\"\n"		      /* 22 */
			      "  - host: 198.51.100.0/24\n"	      /* 23 */
			      "  - under_score.test\n"		      /* 24 */
			      "  - xn--bcher-kva.test\n"	      /* 25 */
			      "  - localhost.test\n"		      /* 26 */
			      "deny:\n"				      /* 27 */
			      "  - gist.github.com\n"		      /* 28 */
			      "  - \"*.bad.githubusercontent.com\"\n" /* 29 */
			      "  - host: github.com\n"		      /* 30 */
			      "    ports: [22]\n"		      /* 31 */
			      "  - host: 192.168.66.0/24\n"	      /* 32 */
			      "  - host: \"*.corp.test\"\n"	      /* 33 */
			      "    ports: [8443]\n"		      /* 34 */
			      "  - secret.corp.test\n"		      /* 35 */
			      "  - 2001:db8:dead::/48\n"	      /* 36 */
    ;

struct mcase {
	const char *host;
	size_t len; /* 0: strlen(host) */
	uint16_t port;
	enum policy_verdict verdict;
	const char *reason;
	const char *rule; /* exact d.rule, or NULL */
	bool tls;
};

#define A	      POLICY_ALLOW
#define D	      POLICY_DENY
#define R(text, line) text " (t.yaml:" #line ")"

static const struct mcase cases[] = {
    /* exact names, case, trailing dot */
    {"github.com", 0, 443, A, "allowed", R("github.com", 3), true},
    {"GitHub.COM", 0, 443, A, "allowed", R("github.com", 3), true},
    {"github.com.", 0, 443, A, "allowed", R("github.com", 3), true},
    {"github.com..", 0, 443, D, "bad_host", NULL, false},
    {"api.example.test", 0, 443, A, "allowed", R("API.Example.test.", 5), true},
    {"API.EXAMPLE.TEST.", 0, 443, A, "allowed", R("API.Example.test.", 5),
     true},
    {"www.github.com", 0, 443, D, "not_allowed", NULL, false},
    {"github.com.evil.test", 0, 443, D, "not_allowed", NULL, false},
    {"evilgithub.com", 0, 443, D, "not_allowed", NULL, false},
    {"com", 0, 443, D, "not_allowed", NULL, false},
    /* ports and defaults */
    {"github.com", 0, 80, D, "port_not_allowed", R("github.com", 3), false},
    {"github.com", 0, 22, D, "denied_by_rule", R("github.com", 30), false},
    {"github.com", 0, 0, D, "bad_host", NULL, false},
    {"ssh.code.test", 0, 22, A, "allowed", R("ssh.code.test", 6), false},
    {"ssh.code.test", 0, 443, A, "allowed", R("ssh.code.test", 6), false},
    {"ssh.code.test", 0, 80, D, "port_not_allowed", R("ssh.code.test", 6),
     false},
    /* wildcards: any depth, never the apex */
    {"raw.githubusercontent.com", 0, 443, A, "allowed",
     R("*.githubusercontent.com", 4), true},
    {"a.b.c.d.e.githubusercontent.com", 0, 443, A, "allowed",
     R("*.githubusercontent.com", 4), true},
    {"githubusercontent.com", 0, 443, D, "not_allowed", NULL, false},
    {"xgithubusercontent.com", 0, 443, D, "not_allowed", NULL, false},
    {"a.svc.test", 0, 8443, A, "allowed", R("*.svc.test", 14), true},
    {"a.svc.test", 0, 80, D, "port_not_allowed", R("*.svc.test", 14), false},
    {"svc.test", 0, 443, D, "not_allowed", NULL, false},
    {"deep.test", 0, 443, A, "allowed", R("deep.test", 20), true},
    {"x.deep.test", 0, 443, A, "allowed", R("*.deep.test", 21), true},
    /* deny beats allow, at every level */
    {"gist.github.com", 0, 443, D, "denied_by_rule", R("gist.github.com", 28),
     false},
    {"GIST.github.com.", 0, 443, D, "denied_by_rule", R("gist.github.com", 28),
     false},
    {"bad.githubusercontent.com", 0, 443, A, "allowed",
     R("*.githubusercontent.com", 4), true},
    {"x.bad.githubusercontent.com", 0, 443, D, "denied_by_rule",
     R("*.bad.githubusercontent.com", 29), false},
    {"x.y.bad.githubusercontent.com", 0, 1234, D, "denied_by_rule",
     R("*.bad.githubusercontent.com", 29), false},
    {"a.corp.test", 0, 443, A, "allowed", R("*.corp.test", 22), true},
    {"a.corp.test", 0, 8443, D, "denied_by_rule", R("*.corp.test", 33), false},
    {"secret.corp.test", 0, 443, D, "denied_by_rule", R("secret.corp.test", 35),
     false},
    {"x.secret.corp.test", 0, 443, A, "allowed", R("*.corp.test", 22), true},
    /* other valid names */
    {"under_score.test", 0, 443, A, "allowed", R("under_score.test", 24), true},
    {"XN--BCHER-KVA.test", 0, 443, A, "allowed", R("xn--bcher-kva.test", 25),
     true},
    {"localhost.test", 0, 443, A, "allowed", R("localhost.test", 26), true},
    {"localhost", 0, 443, D, "not_allowed", NULL, false},
    /* hostile host strings */
    {"github.com@evil.test", 0, 443, D, "bad_host", NULL, false},
    {"user@github.com", 0, 443, D, "bad_host", NULL, false},
    {"evil.test#.github.com", 0, 443, D, "bad_host", NULL, false},
    {"evil.test/.github.com", 0, 443, D, "bad_host", NULL, false},
    {"evil.test?.github.com", 0, 443, D, "bad_host", NULL, false},
    {"evil.test%2e.github.com", 0, 443, D, "bad_host", NULL, false},
    {"evil.test\\.github.com", 0, 443, D, "bad_host", NULL, false},
    {"github.com:443", 0, 443, D, "bad_host", NULL, false},
    {"github.com\0.evil.test", 21, 443, D, "bad_host", NULL, false},
    {"evil.test\0github.com", 20, 443, D, "bad_host", NULL, false},
    {"github.com\0", 11, 443, D, "bad_host", NULL, false},
    {"git hub.com", 0, 443, D, "bad_host", NULL, false},
    {" github.com", 0, 443, D, "bad_host", NULL, false},
    {"github.com\r\n", 0, 443, D, "bad_host", NULL, false},
    {"github.com\t", 0, 443, D, "bad_host", NULL, false},
    {"g\xc3\xaft.github.com", 0, 443, D, "bad_host", NULL, false},
    {"github\xe3\x80\x82"
     "com",
     0, 443, D, "bad_host", NULL, false},
    {"", 0, 443, D, "bad_host", NULL, false},
    {".", 0, 443, D, "bad_host", NULL, false},
    {".github.com", 0, 443, D, "bad_host", NULL, false},
    {"x..githubusercontent.com", 0, 443, D, "bad_host", NULL, false},
    {"-x.githubusercontent.com", 0, 443, D, "bad_host", NULL, false},
    {"x-.githubusercontent.com", 0, 443, D, "bad_host", NULL, false},
    {"*.githubusercontent.com", 0, 443, D, "bad_host", NULL, false},
    {"[github.com]", 0, 443, D, "bad_host", NULL, false},
    {"2130706433", 0, 443, D, "bad_host", NULL, false},
    {"0x7f000001", 0, 443, D, "bad_host", NULL, false},
    {"127.1", 0, 443, D, "bad_host", NULL, false},
    {"010.1.2.3", 0, 8080, D, "bad_host", NULL, false},
    {"fe80::1%eth0", 0, 443, D, "bad_host", NULL, false},
    /* IP literals: only through IP/CIDR rules */
    {"10.1.2.3", 0, 8080, A, "allowed", R("10.1.2.3", 9), true},
    {"10.1.2.3", 0, 443, D, "port_not_allowed", R("10.1.2.3", 9), false},
    {"10.1.2.4", 0, 8080, D, "ip_literal", NULL, false},
    {"203.0.113.7", 0, 443, A, "allowed", R("203.0.113.7", 18), true},
    {"203.0.113.8", 0, 443, D, "ip_literal", NULL, false},
    {"192.168.1.50", 0, 11434, A, "allowed", R("192.168.0.0/16", 11), true},
    {"192.168.1.50", 0, 443, D, "port_not_allowed", R("192.168.0.0/16", 11),
     false},
    {"192.168.66.1", 0, 11434, D, "denied_by_rule", R("192.168.66.0/24", 32),
     false},
    {"198.51.100.200", 0, 443, A, "allowed", R("198.51.100.0/24", 23), true},
    {"198.51.101.1", 0, 443, D, "ip_literal", NULL, false},
    {"::ffff:10.1.2.3", 0, 8080, A, "allowed", R("10.1.2.3", 9), true},
    {"[::ffff:192.168.66.9]", 0, 11434, D, "denied_by_rule",
     R("192.168.66.0/24", 32), false},
    {"::ffff:c0a8:4201", 0, 11434, D, "denied_by_rule",
     R("192.168.66.0/24", 32), false},
    {"2001:db8::1", 0, 443, A, "allowed", R("2001:db8::/32", 13), true},
    {"[2001:DB8:0:0::1]", 0, 443, A, "allowed", R("2001:db8::/32", 13), true},
    {"2001:db8:1::5", 0, 443, A, "allowed", R("[2001:db8:1::5]", 19), true},
    {"2001:db8:dead::1", 0, 443, D, "denied_by_rule",
     R("2001:db8:dead::/48", 36), false},
    {"2001:db9::1", 0, 443, D, "ip_literal", NULL, false},
    {"fd00::1", 0, 80, A, "allowed", R("fd00::1", 16), true},
    {"[fd00::1]", 0, 80, A, "allowed", R("fd00::1", 16), true},
    {"fd00::2", 0, 80, D, "ip_literal", NULL, false},
    {"[fd00::1", 0, 80, D, "bad_host", NULL, false},
    {"[10.1.2.3]", 0, 8080, D, "bad_host", NULL, false},
    {"::1", 0, 443, D, "ip_literal", NULL, false},
    {"127.0.0.1", 0, 443, D, "ip_literal", NULL, false},
};

static struct policy *load_fixture(void)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	int rc = policy_load_string("t.yaml", fixture, strlen(fixture), &p, err,
				    sizeof err);
	if (rc != 0)
		fprintf(stderr, "fixture: %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(p);
	return p;
}

static void test_match_table(void **state)
{
	(void)state;
	struct policy *p = load_fixture();
	int bad = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct mcase *c = &cases[i];
		struct policy_decision d;
		size_t len = c->len ? c->len : strlen(c->host);
		assert_int_equal(policy_match_len(p, c->host, len, c->port, &d),
				 0);
		bool ok =
		    d.verdict == c->verdict &&
		    strcmp(d.reason, c->reason) == 0 &&
		    ((c->rule == NULL && d.rule == NULL) ||
		     (c->rule != NULL && d.rule != NULL &&
		      strcmp(c->rule, d.rule) == 0)) &&
		    (c->verdict == POLICY_DENY || d.require_tls == c->tls);
		if (!ok) {
			fprintf(stderr,
				"case %zu '%s':%u: got %d %s rule=%s tls=%d, "
				"want %d %s rule=%s tls=%d\n",
				i, c->host, c->port, d.verdict, d.reason,
				d.rule ? d.rule : "(null)", d.require_tls,
				c->verdict, c->reason,
				c->rule ? c->rule : "(null)", c->tls);
			bad++;
		}
		/* The NUL-free cases must decide the same via policy_match. */
		if (strlen(c->host) == len) {
			struct policy_decision d2;
			policy_match(p, c->host, c->port, &d2);
			assert_int_equal(d2.verdict, d.verdict);
			assert_string_equal(d2.reason, d.reason);
		}
	}
	assert_int_equal(bad, 0);
	assert_true(sizeof cases / sizeof cases[0] >= 40);
	policy_unref(p);
}

static void test_match_null_and_counts(void **state)
{
	(void)state;
	struct policy *p = load_fixture();
	struct policy_decision d;
	assert_int_equal(policy_match(p, NULL, 443, &d), 0);
	assert_int_equal(d.verdict, POLICY_DENY);
	assert_string_equal(d.reason, "bad_host");
	assert_int_equal(policy_rule_count(p), 25);
	assert_string_equal(policy_source(p), "t.yaml");
	policy_unref(p);
}

/* Default ports apply to rules without ports, wherever defaults appear. */
static void test_defaults_ports(void **state)
{
	(void)state;
	static const char txt[] = "version: 1\n"
				  "allow:\n"
				  "  - a.test\n"
				  "  - host: b.test\n"
				  "    ports: [9000]\n"
				  "defaults:\n"
				  "  ports: [8443, 80]\n";
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	assert_int_equal(policy_load_string("d.yaml", txt, sizeof txt - 1, &p,
					    err, sizeof err),
			 0);
	struct policy_decision d;
	policy_match(p, "a.test", 80, &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	policy_match(p, "a.test", 8443, &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	policy_match(p, "a.test", 443, &d);
	assert_string_equal(d.reason, "port_not_allowed");
	policy_match(p, "b.test", 9000, &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	policy_match(p, "b.test", 80, &d);
	assert_string_equal(d.reason, "port_not_allowed");
	assert_string_equal(d.rule, "b.test (d.yaml:4)");
	const struct policy_limits *l = policy_get_limits(p);
	assert_int_equal(l->max_connections, 4096);
	assert_int_equal(l->header_timeout_ms, 10000);
	assert_int_equal(l->connect_timeout_ms, 10000);
	assert_int_equal(l->idle_timeout_ms, 600000);
	policy_unref(p);
}

static void test_limits_parsed(void **state)
{
	(void)state;
	static const char txt[] = "version: 1\n"
				  "limits:\n"
				  "  max_connections: 7\n"
				  "  header_timeout: 250ms\n"
				  "  connect_timeout: 3s\n"
				  "  idle_timeout: 2h\n";
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	assert_int_equal(policy_load_string("l.yaml", txt, sizeof txt - 1, &p,
					    err, sizeof err),
			 0);
	const struct policy_limits *l = policy_get_limits(p);
	assert_int_equal(l->max_connections, 7);
	assert_int_equal(l->header_timeout_ms, 250);
	assert_int_equal(l->connect_timeout_ms, 3000);
	assert_int_equal(l->idle_timeout_ms, 7200000);
	assert_int_equal(policy_rule_count(p), 0);
	struct policy_decision d;
	policy_match(p, "a.test", 443, &d);
	assert_string_equal(d.reason, "not_allowed");
	policy_unref(p);
}

static void test_ref_unref(void **state)
{
	(void)state;
	struct policy *p = load_fixture();
	assert_ptr_equal(policy_ref(p), p);
	policy_unref(p);
	struct policy_decision d;
	policy_match(p, "github.com", 443, &d); /* still referenced once */
	assert_int_equal(d.verdict, POLICY_ALLOW);
	policy_unref(p);
	policy_unref(NULL);
	assert_null(policy_ref(NULL));
}

/* Workers take and drop references and match while the owner drops its
 * own: the policy must stay valid until the last unref and be freed once
 * (ASan reports a use-after-free or a leak otherwise). */
#define WORKERS 4
#define ROUNDS	20000

struct worker {
	struct policy *p; /* a reference owned by this worker */
	int wrong;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < ROUNDS; i++) {
		struct policy *mine = policy_ref(w->p);
		struct policy_decision d;
		policy_match(mine, i % 2 ? "github.com" : "gist.github.com",
			     443, &d);
		if (d.verdict != (i % 2 ? POLICY_ALLOW : POLICY_DENY))
			w->wrong++;
		policy_unref(mine);
	}
	policy_unref(w->p);
	return NULL;
}

static void test_refcount_threads(void **state)
{
	(void)state;
	struct policy *p = load_fixture();
	pthread_t t[WORKERS];
	struct worker w[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		w[i].p = policy_ref(p);
		w[i].wrong = 0;
		assert_int_equal(
		    pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	policy_unref(p); /* the workers' references keep it alive */
	for (int i = 0; i < WORKERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].wrong, 0);
	}
}

static void test_explain_text(void **state)
{
	(void)state;
	struct policy *p = load_fixture();
	char buf[2048];
	assert_int_equal(policy_explain(p, "x.bad.githubusercontent.com", 443,
					buf, sizeof buf),
			 0);
	assert_non_null(strstr(buf, "DENY"));
	assert_non_null(strstr(buf, "denied_by_rule"));
	assert_non_null(strstr(buf, "*.bad.githubusercontent.com (t.yaml:29)"));
	assert_int_equal(
	    policy_explain(p, "ssh.code.test", 22, buf, sizeof buf), 0);
	assert_non_null(strstr(buf, "ALLOW"));
	assert_non_null(strstr(buf, "ssh.code.test (t.yaml:6)"));
	assert_non_null(strstr(buf, "not required"));
	char small[16];
	assert_int_equal(
	    policy_explain(p, "github.com", 443, small, sizeof small), -ENOSPC);
	assert_true(strlen(small) < sizeof small);
	policy_unref(p);
}

/* The shipped example policy decides the hosts its comments promise. */
static void test_example_policy(void **state)
{
	(void)state;
	const char *src = getenv("AGENTSAFE_SOURCE_DIR");
	assert_non_null(src); /* set by ctest; a missing value must fail */
	char path[4096];
	snprintf(path, sizeof path, "%s/examples/policy.yaml", src);
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	int rc = policy_load_file(path, &p, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	static const struct {
		const char *host;
		uint16_t port;
		enum policy_verdict v;
	} want[] = {
	    {"api.anthropic.com", 443, POLICY_ALLOW},
	    {"api.openai.com", 443, POLICY_ALLOW},
	    {"auth.openai.com", 443, POLICY_ALLOW},
	    {"chatgpt.com", 443, POLICY_ALLOW},
	    {"github.com", 443, POLICY_ALLOW},
	    {"api.github.com", 443, POLICY_ALLOW},
	    {"codeload.github.com", 443, POLICY_ALLOW},
	    {"objects.githubusercontent.com", 443, POLICY_ALLOW},
	    {"raw.githubusercontent.com", 443, POLICY_ALLOW},
	    {"registry.npmjs.org", 443, POLICY_ALLOW},
	    {"pypi.org", 443, POLICY_ALLOW},
	    {"files.pythonhosted.org", 443, POLICY_ALLOW},
	    {"githubusercontent.com", 443, POLICY_DENY},
	    {"gist.github.com", 443, POLICY_DENY},
	    {"gist.githubusercontent.com", 443, POLICY_DENY},
	    {"statsig.anthropic.com", 443, POLICY_DENY},
	    {"github.com", 22, POLICY_DENY},
	    {"pypi.org", 80, POLICY_DENY},
	    {"192.168.1.50", 11434, POLICY_DENY},
	    {"evil.test", 443, POLICY_DENY},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		struct policy_decision d;
		policy_match(p, want[i].host, want[i].port, &d);
		if (d.verdict != want[i].v)
			fprintf(stderr, "example: %s:%u -> %s\n", want[i].host,
				want[i].port, d.reason);
		assert_int_equal(d.verdict, want[i].v);
	}
	policy_unref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_table),
	    cmocka_unit_test(test_match_null_and_counts),
	    cmocka_unit_test(test_defaults_ports),
	    cmocka_unit_test(test_limits_parsed),
	    cmocka_unit_test(test_ref_unref),
	    cmocka_unit_test(test_refcount_threads),
	    cmocka_unit_test(test_explain_text),
	    cmocka_unit_test(test_example_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
