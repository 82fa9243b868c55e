/* agentsafe-launch --learn: the flag parses (command line only), and the
 * session learns when the flag or the policy file's mode: learn says so;
 * a policy that does not load is the proxy's to report (no learning
 * claimed here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "launch_int.h"
#include "lcfg.h"
#include "learn.h"

static void learn_flag_parses(void **state)
{
	(void)state;
	char err[256];
	char *argv[] = {"agentsafe-launch", "--learn", "--agent", "shell",
			NULL};
	struct lcfg c;
	lcfg_init(&c);
	assert_int_equal(lcfg_parse_args(&c, 4, argv, err, sizeof err), 0);
	assert_true(c.learn);
	lcfg_free(&c);
	char *none[] = {"agentsafe-launch", NULL};
	lcfg_init(&c);
	assert_int_equal(lcfg_parse_args(&c, 1, none, err, sizeof err), 0);
	assert_false(c.learn);
	lcfg_free(&c);
}

static const char *write_policy(char *path, const char *text)
{
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void session_learns_from_flag_or_policy_mode(void **state)
{
	(void)state;
	struct sess s;
	memset(&s, 0, sizeof s);
	char learn[] = "/tmp/aslearn-XXXXXX", enforce[] = "/tmp/asenf-XXXXXX",
	     broken[] = "/tmp/asbad-XXXXXX";
	s.policy = write_policy(learn, "version: 1\nmode: learn\n");
	assert_true(learn_start(&s, false));
	s.policy = write_policy(enforce, "version: 1\nallow:\n  - a.test\n");
	assert_false(learn_start(&s, false));
	assert_true(learn_start(&s, true));
	s.policy = write_policy(broken, "version: 1\nmode: maybe\n");
	assert_false(learn_start(&s, false));
	unlink(learn);
	unlink(enforce);
	unlink(broken);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(learn_flag_parses),
	    cmocka_unit_test(session_learns_from_flag_or_policy_mode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
