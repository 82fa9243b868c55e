/* The launcher's exit status: the command's, unless a review branch did
 * not reach the forge (123) or the session's work did not come back to
 * the user's repos (124, which wins); a launcher failure (125) stays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "launch_int.h"

static void the_commands_status_by_default(void **state)
{
	(void)state;
	assert_int_equal(launch_exit_code(0, 0, 0), 0);
	assert_int_equal(launch_exit_code(7, 0, 0), 7);
	assert_int_equal(launch_exit_code(EXIT_LAUNCH, 0, 0), EXIT_LAUNCH);
}

static void a_failed_upstream_forward_is_not_success(void **state)
{
	(void)state;
	/* A script that pushes for review must see it did not land. */
	assert_int_equal(launch_exit_code(0, 1, 0), EXIT_UPSTREAM);
	assert_int_equal(launch_exit_code(3, 2, 0), EXIT_UPSTREAM);
	/* The launcher's own failure says more. */
	assert_int_equal(launch_exit_code(EXIT_LAUNCH, 1, 0), EXIT_LAUNCH);
}

static void work_not_fetched_back_wins(void **state)
{
	(void)state;
	assert_int_equal(launch_exit_code(0, 0, 1), EXIT_NOT_FETCHED);
	assert_int_equal(launch_exit_code(0, 1, 1), EXIT_NOT_FETCHED);
	assert_int_equal(launch_exit_code(EXIT_LAUNCH, 0, 2), EXIT_NOT_FETCHED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_commands_status_by_default),
	    cmocka_unit_test(a_failed_upstream_forward_is_not_success),
	    cmocka_unit_test(work_not_fetched_back_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
