/* The second-stage keys of policy.yaml this file owns: `unknown: deny|ask`,
 * limits.approval_timeout, limits.upload_budget and a rule's
 * upload_budget: defaults, values, and errors naming FILE:LINE:COL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

static struct policy *load(const char *txt)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	int rc =
	    policy_load_string("a.yaml", txt, strlen(txt), &p, err, sizeof err);
	if (rc != 0)
		fail_msg("%s", err);
	return p;
}

static void load_err(const char *txt, const char *want)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	assert_true(policy_load_string("a.yaml", txt, strlen(txt), &p, err,
				       sizeof err) < 0);
	assert_null(p);
	assert_string_equal(err, want);
}

static void test_defaults(void **state)
{
	(void)state;
	struct policy *p = load("version: 1\nallow: [a.test]\n");
	assert_false(policy_unknown_ask(p));
	assert_int_equal(policy_get_limits(p)->approval_timeout_ms, 60000);
	assert_true(policy_get_limits(p)->upload_budget == (64u << 20));
	struct policy_decision d;
	policy_match(p, "a.test", 443, &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_true(d.upload_budget == 0); /* the limits' budget applies */
	policy_unref(p);
}

static void test_values(void **state)
{
	(void)state;
	struct policy *p =
	    load("version: 1\nunknown: ask\n"
		 "allow:\n"
		 "  - host: api.test\n    upload_budget: unlimited\n"
		 "  - host: up.test\n    upload_budget: 3KiB\n"
		 "  - b.test\n"
		 "limits:\n  approval_timeout: 5s\n"
		 "  upload_budget: 1000\n");
	assert_true(policy_unknown_ask(p));
	assert_int_equal(policy_get_limits(p)->approval_timeout_ms, 5000);
	assert_true(policy_get_limits(p)->upload_budget == 1000);
	struct policy_decision d;
	policy_match(p, "api.test", 443, &d);
	assert_true(d.upload_budget == POLICY_BUDGET_UNLIMITED);
	policy_match(p, "up.test", 443, &d);
	assert_true(d.upload_budget == 3072);
	policy_match(p, "b.test", 443, &d);
	assert_true(d.upload_budget == 0);
	policy_match(p, "nope.test", 443, &d);
	assert_string_equal(d.reason, "not_allowed");
	policy_unref(p);
	p = load("version: 1\nunknown: deny\nlimits:\n  upload_budget: 2GiB\n");
	assert_false(policy_unknown_ask(p));
	assert_true(policy_get_limits(p)->upload_budget == (2ull << 30));
	policy_unref(p);
}

static void test_errors(void **state)
{
	(void)state;
	load_err("version: 1\nunknown: maybe\n",
		 "a.yaml:2:10: unknown must be deny or ask, got 'maybe'");
	load_err("version: 1\nlimits:\n  upload_budget: 0\n",
		 "a.yaml:3:18: upload_budget must be greater than zero, got "
		 "'0' (write unlimited for no budget)");
	load_err("version: 1\nlimits:\n  upload_budget: 64MB\n",
		 "a.yaml:3:18: bad size '64MB' for upload_budget (expected an "
		 "integer with B, KiB, MiB or GiB, e.g. 64MiB, or unlimited)");
	load_err("version: 1\nlimits:\n  upload_budget: 999999999999999GiB\n",
		 "a.yaml:3:18: upload_budget '999999999999999GiB' is too "
		 "large");
	load_err("version: 1\nlimits:\n  approval_timeout: 0s\n",
		 "a.yaml:3:21: approval_timeout must be greater than zero, "
		 "got '0s'");
	load_err("version: 1\ndeny:\n  - host: d.test\n    upload_budget: 1\n",
		 "a.yaml:4:5: unknown key 'upload_budget' in a deny rule "
		 "(expected host, ports)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
