/* session.json through struct session_record: what a session's end adds
 * (exit code, commits per repo, binds, counts) survives a save and a load;
 * an id that is not SESSION_ID_LEN hex digits never becomes a path; the
 * summary line escapes a name with terminal controls; the log counts take
 * a drop summary record's packets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "session.h"

static char home[64];

static int setup(void **state)
{
	(void)state;
	snprintf(home, sizeof home, "/tmp/as-session-test.XXXXXX");
	if (mkdtemp(home) == NULL)
		return -1;
	setenv("XDG_STATE_HOME", home, 1);
	char d[256];
	snprintf(d, sizeof d, "%s/agentsafe/sessions/0123456789ab", home);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "mkdir -p '%s'", d);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
	return system(cmd) == 0 ? 0 : -1;
}

static void ids_never_walk_out(void **state)
{
	(void)state;
	char out[512];
	const char *bad[] = {
	    "../../etc", "0123456789AB", "0123456789a", "0123456789abc",
	    "",		 "..",		 "0123456789a/"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_false(session_id_valid(bad[i]));
		assert_int_equal(session_state_dir(bad[i], out, sizeof out),
				 -EINVAL);
	}
	struct session_record r;
	assert_int_equal(session_record_load("../../../../etc/x", &r), -ENOENT);
	assert_int_equal(session_state_dir("0123456789ab", out, sizeof out), 0);
}

static void record_round_trips_the_end(void **state)
{
	(void)state;
	struct session_repo repos[] = {
	    {"r", "/h/r/", "/c/r", "agentsafe/0123456789ab", "00", 3, true},
	    {"s", "/h/s/", "/c/s", "agentsafe/0123456789ab", "00", 2, false}};
	struct session_bind binds[] = {{"192.168.7.1", 2222, 2222, true}};
	struct session_record w = {
	    .id = "0123456789ab",
	    .name = "x\033[2Jy",
	    .network = "",
	    .bridge = "",
	    .table = "",
	    .container = "",
	    .probe = "",
	    .egress_log = "",
	    .proxy = "",
	    .finished = true,
	    .repos = repos,
	    .nrepos = 2,
	    .agent = "shell",
	    .started = "2026-12-01T10:00:00.000Z",
	    .exit_code = 4,
	    .denials = 5,
	    .drops = 1,
	    .binds = binds,
	    .nbinds = 1,
	};
	char err[256], line[1024];
	assert_int_equal(session_record_save(&w, err, sizeof err), 0);
	struct session_record r;
	assert_int_equal(session_record_load("0123456789ab", &r), 0);
	assert_int_equal(r.exit_code, 4);
	assert_int_equal(r.nrepos, 2);
	assert_int_equal(r.repos[0].commits, 3);
	assert_true(r.repos[0].fetched);
	assert_false(r.repos[1].fetched);
	assert_int_equal(r.nbinds, 1);
	assert_string_equal(r.binds[0].addr, "192.168.7.1");
	assert_true(r.binds[0].ssh);
	assert_string_equal(r.agent, "shell");
	session_summary(&r, line, sizeof line);
	assert_null(strchr(line, '\033'));
	assert_non_null(strstr(line, "x\\x1b[2Jy"));
	assert_non_null(strstr(line, "ended with exit 4; 3 commits back on "
				     "agentsafe/0123456789ab; 2 commits NOT "
				     "back (agentsafe/0123456789ab kept); 5 "
				     "denials, 1 drop"));
	session_record_free(&r);
}

static void log_counts_take_summary_records(void **state)
{
	(void)state;
	char p[256];
	snprintf(p, sizeof p, "%s/egress.log", home);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("{\"ts\":\"2026-12-01T10:00:00.000Z\",\"session\":\"s\",\"id\":"
	      "\"1\",\"event\":\"deny\",\"client\":\"1.2.3.4:5\",\"host\":"
	      "\"a.test\",\"port\":443,\"reason\":\"not_allowed\"}\n"
	      "{\"ts\":\"2026-12-01T10:00:00.000Z\",\"session\":\"s\",\"id\":"
	      "\"2\",\"event\":\"drop\",\"client\":\"1.2.3.4:5\",\"proto\":"
	      "\"tcp\",\"dst\":\"9.9.9.9\",\"dport\":53,\"reason\":"
	      "\"firewall\"}\n"
	      "{\"ts\":\"2026-12-01T10:00:00.000Z\",\"session\":\"s\",\"id\":"
	      "\"3\",\"event\":\"drop\",\"client\":\"\",\"reason\":"
	      "\"firewall\",\"message\":\"40 dropped packets of new flows not "
	      "itemised\"}\n",
	      f);
	assert_int_equal(fclose(f), 0);
	long den = 0, drop = 0;
	assert_int_equal(session_log_counts(p, &den, &drop), 0);
	assert_int_equal(den, 1);
	assert_int_equal(drop, 41);
	assert_int_equal(
	    session_log_counts("/nonexistent/egress.log", &den, &drop),
	    -ENOENT);
}

/* The credential_misuse refusals: counted from the log (the agent's
 * only), kept in session.json, said in the summary only when there are. */
static void misuse_counted_kept_and_said(void **state)
{
	(void)state;
	char p[256];
	snprintf(p, sizeof p, "%s/egress-misuse.log", home);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
#define DENY(id, reason, extra)                                                \
	"{\"ts\":\"2026-12-01T10:00:00.000Z\",\"session\":\"s\",\"id\":\"" id  \
	"\",\"event\":\"deny\",\"client\":\"1.2.3.4:5\",\"host\":\"o.test\","  \
	"\"port\":443,\"reason\":\"" reason "\"" extra "}\n"
	fputs(DENY("1", "credential_misuse", "") DENY("2", "not_allowed", "")
		  DENY("3", "credential_misuse", "") DENY(
		      "4", "credential_misuse", ",\"origin\":\"selfcheck\""),
	      f);
#undef DENY
	assert_int_equal(fclose(f), 0);
	assert_int_equal(session_log_misuse(p), 2);
	assert_true(session_log_misuse("/nonexistent/egress.log") < 0);
	struct session_record w = {
	    .id = "0123456789ab",
	    .name = "n",
	    .network = "",
	    .bridge = "",
	    .table = "",
	    .container = "",
	    .probe = "",
	    .egress_log = p,
	    .proxy = "",
	    .finished = true,
	    .agent = "shell",
	    .started = "2026-12-01T10:00:00.000Z",
	    .exit_code = 0,
	    .denials = 3,
	    .drops = 0,
	    .misuse = 2,
	};
	char err[256], line[1024];
	assert_int_equal(session_record_save(&w, err, sizeof err), 0);
	struct session_record r;
	assert_int_equal(session_record_load("0123456789ab", &r), 0);
	assert_int_equal(r.misuse, 2);
	session_summary(&r, line, sizeof line);
	assert_non_null(strstr(line, "; 2 CREDENTIAL MISUSE refusals"));
	session_record_free(&r);
	/* Not counted (a session still running): not in the file. */
	w.misuse = -1;
	assert_int_equal(session_record_save(&w, err, sizeof err), 0);
	assert_int_equal(session_record_load("0123456789ab", &r), 0);
	assert_int_equal(r.misuse, -1);
	session_summary(&r, line, sizeof line);
	assert_null(strstr(line, "MISUSE"));
	session_record_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ids_never_walk_out),
	    cmocka_unit_test(record_round_trips_the_end),
	    cmocka_unit_test(log_counts_take_summary_records),
	    cmocka_unit_test(misuse_counted_kept_and_said),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
