/* mode: learn allows names no rule allows (would_deny set, the reason
 * kept) and nothing else: explicit denies, bad hosts and IP literals stay
 * refused, the address guard still refuses private addresses, and the SNI
 * check stays required. A learn mode that let one of those through would
 * turn "learning" into an open door. */
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

static const char learn_yaml[] = "version: 1\n"		    /* 1 */
				 "mode: learn\n"	    /* 2 */
				 "allow:\n"		    /* 3 */
				 "  - known.test\n"	    /* 4 */
				 "  - host: ssh.test\n"	    /* 5 */
				 "    ports: [22]\n"	    /* 6 */
				 "    tls: false\n"	    /* 7 */
				 "deny:\n"		    /* 8 */
				 "  - \"*.blocked.test\"\n" /* 9 */
				 "  - 203.0.113.0/24\n";    /* 10 */

static struct policy *load(const char *text)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	int rc = policy_load_string("t.yaml", text, strlen(text), &p, err,
				    sizeof err);
	if (rc != 0)
		fail_msg("load: %s", err);
	return p;
}

static void unknown_name_allowed_and_marked(void **state)
{
	(void)state;
	struct policy *p = load(learn_yaml);
	assert_true(policy_is_learning(p));
	struct policy_decision d;
	policy_match(p, "unknown.test", 443, &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_true(d.would_deny);
	assert_string_equal(d.reason, "not_allowed");
	assert_true(d.require_tls);
	/* a rule names the host, not the port: learned too, TLS still
	 * required although the rule says tls: false for port 22 */
	policy_match(p, "ssh.test", 443, &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_true(d.would_deny);
	assert_string_equal(d.reason, "port_not_allowed");
	assert_true(d.require_tls);
	/* a name the policy allows is not marked */
	policy_match(p, "known.test", 443, &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_false(d.would_deny);
	policy_unref(p);
}

static void explicit_deny_bad_host_and_literals_stay_refused(void **state)
{
	(void)state;
	struct policy *p = load(learn_yaml);
	struct policy_decision d;
	policy_match(p, "a.blocked.test", 443, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	assert_false(d.would_deny);
	assert_string_equal(d.reason, "denied_by_rule");
	policy_match(p, "evil.test@known.test", 443, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	assert_string_equal(d.reason, "bad_host");
	policy_match(p, "198.51.100.7", 443, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	assert_string_equal(d.reason, "ip_literal");
	policy_match(p, "127.0.0.1", 443, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	policy_match(p, "unknown.test", 0, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	policy_unref(p);
}

static void address_guard_still_refuses(void **state)
{
	(void)state;
	struct policy *p = load(learn_yaml);
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct policy_decision d;
	inet_pton(AF_INET, "10.0.0.5", &a.sin_addr);
	policy_check_addr(p, (struct sockaddr *)&a, 443, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	assert_string_equal(d.reason, "private_address");
	inet_pton(AF_INET, "203.0.113.4", &a.sin_addr);
	policy_check_addr(p, (struct sockaddr *)&a, 443, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	assert_string_equal(d.reason, "denied_by_rule");
	policy_unref(p);
}

static void enforce_is_the_default_and_force_learn_turns_it_on(void **state)
{
	(void)state;
	struct policy *p = load("version: 1\nallow:\n  - known.test\n");
	assert_false(policy_is_learning(p));
	struct policy_decision d;
	policy_match(p, "unknown.test", 443, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	assert_false(d.would_deny);
	policy_force_learn(p);
	policy_match(p, "unknown.test", 443, &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_true(d.would_deny);
	policy_unref(p);
	p = load("version: 1\nmode: enforce\n");
	assert_false(policy_is_learning(p));
	policy_unref(p);
}

static void bad_mode_names_file_line_col(void **state)
{
	(void)state;
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	const char *t = "version: 1\nmode: learning\n";
	assert_int_not_equal(
	    policy_load_string("t.yaml", t, strlen(t), &p, err, sizeof err), 0);
	assert_string_equal(
	    err, "t.yaml:2:7: mode must be 'enforce' or 'learn', got "
		 "'learning'");
	t = "version: 1\nmode: [learn]\n";
	assert_int_not_equal(
	    policy_load_string("t.yaml", t, strlen(t), &p, err, sizeof err), 0);
	assert_non_null(strstr(err, "t.yaml:2:7:"));
	t = "version: 1\nmode: learn\nmode: enforce\n";
	assert_int_not_equal(
	    policy_load_string("t.yaml", t, strlen(t), &p, err, sizeof err), 0);
	assert_non_null(strstr(err, "t.yaml:3:1: duplicate key 'mode'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(unknown_name_allowed_and_marked),
	    cmocka_unit_test(explicit_deny_bad_host_and_literals_stay_refused),
	    cmocka_unit_test(address_guard_still_refuses),
	    cmocka_unit_test(
		enforce_is_the_default_and_force_learn_turns_it_on),
	    cmocka_unit_test(bad_mode_names_file_line_col),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
