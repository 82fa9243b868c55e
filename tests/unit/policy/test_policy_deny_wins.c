/* Deny beats allow even where the allow rule is the more specific one: a
 * wildcard deny over an exact allow, a wide CIDR deny over a /32 allow, a
 * deny port set inside an allow port set. A most-specific-wins engine
 * passes test_policy_match.c (its denies are all the deeper rule); it
 * fails here. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

static const char fixture[] = "version: 1\n"		     /* 1 */
			      "allow:\n"		     /* 2 */
			      "  - api.example.test\n"	     /* 3 */
			      "  - a.b.example.test\n"	     /* 4 */
			      "  - \"*.x.example.test\"\n"   /* 5 */
			      "  - same.test\n"		     /* 6 */
			      "  - \"*.w.test\"\n"	     /* 7 */
			      "  - host: api.p.test\n"	     /* 8 */
			      "    ports: [22, 443, 8443]\n" /* 9 */
			      "  - host: 10.1.2.3\n"	     /* 10 */
			      "  - host: 10.9.0.0/16\n"	     /* 11 */
			      "  - host: 10.200.0.1\n"	     /* 12 */
			      "  - host: 2001:db8::5\n"	     /* 13 */
			      "  - host: 203.0.113.9\n"	     /* 14 */
			      "    ports: [22, 443, 8443]\n" /* 15 */
			      "  - ok.test\n"		     /* 16 */
			      "deny:\n"			     /* 17 */
			      "  - \"*.example.test\"\n"     /* 18 */
			      "  - same.test\n"		     /* 19 */
			      "  - \"*.w.test\"\n"	     /* 20 */
			      "  - host: \"*.p.test\"\n"     /* 21 */
			      "    ports: [22, 8443]\n"	     /* 22 */
			      "  - 10.0.0.0/8\n"	     /* 23 */
			      "  - 10.200.0.1\n"	     /* 24 */
			      "  - 2001:db8::/32\n"	     /* 25 */
			      "  - host: 203.0.113.0/24\n"   /* 26 */
			      "    ports: [22, 8443]\n"	     /* 27 */
    ;

#define R(text, line) text " (t.yaml:" #line ")"

struct dcase {
	const char *host;
	uint16_t port;
	enum policy_verdict verdict;
	const char *reason;
	const char *rule;
};

static const struct dcase cases[] = {
    /* names: the deny is a wildcard above the allow */
    {"api.example.test", 443, POLICY_DENY, "denied_by_rule",
     R("*.example.test", 18)},
    {"API.Example.TEST.", 443, POLICY_DENY, "denied_by_rule",
     R("*.example.test", 18)},
    {"a.b.example.test", 443, POLICY_DENY, "denied_by_rule",
     R("*.example.test", 18)},
    {"y.x.example.test", 443, POLICY_DENY, "denied_by_rule",
     R("*.example.test", 18)},
    {"z.y.x.example.test", 443, POLICY_DENY, "denied_by_rule",
     R("*.example.test", 18)},
    /* same level, same kind */
    {"same.test", 443, POLICY_DENY, "denied_by_rule", R("same.test", 19)},
    {"a.w.test", 443, POLICY_DENY, "denied_by_rule", R("*.w.test", 20)},
    /* port sets: the deny covers part of what the allow opens */
    {"api.p.test", 22, POLICY_DENY, "denied_by_rule", R("*.p.test", 21)},
    {"api.p.test", 8443, POLICY_DENY, "denied_by_rule", R("*.p.test", 21)},
    {"api.p.test", 443, POLICY_ALLOW, "allowed", R("api.p.test", 8)},
    {"api.p.test", 80, POLICY_DENY, "port_not_allowed", R("api.p.test", 8)},
    /* IP literals: a wide deny over a narrow allow */
    {"10.1.2.3", 443, POLICY_DENY, "denied_by_rule", R("10.0.0.0/8", 23)},
    {"10.9.7.7", 443, POLICY_DENY, "denied_by_rule", R("10.0.0.0/8", 23)},
    {"10.200.0.1", 443, POLICY_DENY, "denied_by_rule", R("10.200.0.1", 24)},
    {"::ffff:10.1.2.3", 443, POLICY_DENY, "denied_by_rule",
     R("10.0.0.0/8", 23)},
    {"2001:db8::5", 443, POLICY_DENY, "denied_by_rule", R("2001:db8::/32", 25)},
    {"203.0.113.9", 22, POLICY_DENY, "denied_by_rule", R("203.0.113.0/24", 26)},
    {"203.0.113.9", 8443, POLICY_DENY, "denied_by_rule",
     R("203.0.113.0/24", 26)},
    {"203.0.113.9", 443, POLICY_ALLOW, "allowed", R("203.0.113.9", 14)},
    /* the control: an allow nothing denies still works */
    {"ok.test", 443, POLICY_ALLOW, "allowed", R("ok.test", 16)},
};

static struct policy *load(void)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	int rc = policy_load_string("t.yaml", fixture, strlen(fixture), &p, err,
				    sizeof err);
	if (rc != 0)
		fprintf(stderr, "fixture: %s\n", err);
	assert_int_equal(rc, 0);
	return p;
}

static void test_deny_beats_more_specific_allow(void **state)
{
	(void)state;
	struct policy *p = load();
	int bad = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct dcase *c = &cases[i];
		struct policy_decision d;
		policy_match(p, c->host, c->port, &d);
		if (d.verdict != c->verdict ||
		    strcmp(d.reason, c->reason) != 0 || d.rule == NULL ||
		    strcmp(d.rule, c->rule) != 0) {
			fprintf(stderr,
				"'%s':%u: got %s rule=%s, want %s rule=%s\n",
				c->host, c->port, d.reason,
				d.rule ? d.rule : "(null)", c->reason, c->rule);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
	policy_unref(p);
}

/* The resolved-address guard: a named private address inside a denied
 * CIDR stays refused, and a public one too, port by port. */
static void check_v4(const struct policy *p, const char *ip, uint16_t port,
		     const char *reason)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	struct policy_decision d;
	policy_check_addr(p, (const struct sockaddr *)&sin, port, &d);
	if (strcmp(d.reason, reason) != 0)
		fprintf(stderr, "%s:%u: got %s, want %s\n", ip, port, d.reason,
			reason);
	assert_string_equal(d.reason, reason);
}

static void test_resolved_address_deny_beats_allow(void **state)
{
	(void)state;
	struct policy *p = load();
	check_v4(p, "10.1.2.3", 443, "denied_by_rule");
	check_v4(p, "10.9.1.1", 443, "denied_by_rule");
	check_v4(p, "10.200.0.1", 443, "denied_by_rule");
	check_v4(p, "203.0.113.9", 22, "denied_by_rule");
	check_v4(p, "203.0.113.9", 443, "allowed");

	struct sockaddr_in6 s6;
	memset(&s6, 0, sizeof s6);
	s6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", &s6.sin6_addr), 1);
	struct policy_decision d;
	policy_check_addr(p, (const struct sockaddr *)&s6, 443, &d);
	assert_string_equal(d.reason, "denied_by_rule");
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr),
			 1);
	policy_check_addr(p, (const struct sockaddr *)&s6, 443, &d);
	assert_string_equal(d.reason, "denied_by_rule");
	policy_unref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_deny_beats_more_specific_allow),
	    cmocka_unit_test(test_resolved_address_deny_beats_allow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
