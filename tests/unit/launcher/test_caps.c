/* The launcher's capability drop, run for real on this (root) test
 * process: after the drop CAP_NET_ADMIN is permitted but never effective,
 * it is effective only between raise and lower, and nothing else is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/capability.h>
#include <unistd.h>

#include <cmocka.h>

#include "caps.h"

static cap_flag_value_t flag(cap_value_t v, cap_flag_t which)
{
	cap_t c = cap_get_proc();
	assert_non_null(c);
	cap_flag_value_t f = CAP_CLEAR;
	assert_int_equal(cap_get_flag(c, v, which, &f), 0);
	cap_free(c);
	return f;
}

static void net_admin_effective_only_between_raise_and_lower(void **state)
{
	(void)state;
	if (geteuid() != 0 || flag(CAP_NET_ADMIN, CAP_PERMITTED) != CAP_SET)
		fail_msg(
		    "needs root with CAP_NET_ADMIN permitted (the suite runs "
		    "as root)");
	char err[256];
	assert_int_equal(caps_drop_all_keep(1, 0, err, sizeof err), 0);
	assert_int_equal(flag(CAP_NET_ADMIN, CAP_PERMITTED), CAP_SET);
	assert_int_equal(flag(CAP_NET_ADMIN, CAP_EFFECTIVE), CAP_CLEAR);
	assert_int_equal(flag(CAP_CHOWN, CAP_PERMITTED), CAP_CLEAR);
	assert_int_equal(flag(CAP_SYS_ADMIN, CAP_EFFECTIVE), CAP_CLEAR);
	assert_int_equal(caps_raise_net_admin(err, sizeof err), 0);
	assert_int_equal(flag(CAP_NET_ADMIN, CAP_EFFECTIVE), CAP_SET);
	caps_lower_net_admin();
	assert_int_equal(flag(CAP_NET_ADMIN, CAP_EFFECTIVE), CAP_CLEAR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(net_admin_effective_only_between_raise_and_lower),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
