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

/* The end of a learning session: the log suggest block for its log, from
 * the agentsafe binary beside this one, on stdout. */
static void end_prints_the_sessions_suggestions(void **state)
{
	(void)state;
	struct sess s;
	memset(&s, 0, sizeof s);
	char pol[] = "/tmp/aslearnp-XXXXXX", log[] = "/tmp/aslearnl-XXXXXX";
	char out[] = "/tmp/aslearno-XXXXXX";
	s.policy = write_policy(pol, "version: 1\nmode: learn\nallow:\n"
				     "  - keep.test\n");
	write_policy(log,
		     "{\"ts\":\"2026-11-25T01:00:00.000Z\",\"session\":\"s1\","
		     "\"id\":\"a\",\"event\":\"open\",\"method\":\"CONNECT\","
		     "\"host\":\"pkg.learned.test\",\"port\":443,\"reason\":"
		     "\"not_allowed\",\"would_deny\":true}\n");
	snprintf(s.log_path, sizeof s.log_path, "%s", log);
	snprintf(s.id, sizeof s.id, "%s", "s1");
	s.host_uid = getuid();
	s.host_gid = getgid();
	int fd = mkstemp(out);
	assert_true(fd >= 0);
	fflush(stdout);
	int saved = dup(1);
	dup2(fd, 1);
	learn_end(&s);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	char buf[4096] = "";
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "allow:\n"));
	assert_non_null(strstr(buf, "  - pkg.learned.test"));
	assert_null(strstr(buf, "keep.test"));
	unlink(pol);
	unlink(log);
	unlink(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(learn_flag_parses),
	    cmocka_unit_test(session_learns_from_flag_or_policy_mode),
	    cmocka_unit_test(end_prints_the_sessions_suggestions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
