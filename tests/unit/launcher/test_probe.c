/* The self-verification script: one check per target, exits non-zero on
 * any failure, and no host string that could break out of the shell text
 * is accepted; hosts-file lookups for the direct-connection checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe.h"
#include "session.h"

static void script_has_one_check_per_target(void **state)
{
	(void)state;
	struct probe_target allow[] = {{"allowed.test", 443}},
			    deny[] = {{"denied.test", 8443}},
			    direct[] = {{"10.0.0.5", 443}};
	struct probe_plan p = {.dns_name = "allowed.test",
			       .gateway = "172.30.0.1",
			       .gateway_port = 80,
			       .allow = allow,
			       .nallow = 1,
			       .deny = deny,
			       .ndeny = 1,
			       .direct = direct,
			       .ndirect = 1};
	char *s = probe_script(&p);
	assert_non_null(s);
	assert_non_null(strstr(s, "getent hosts allowed.test"));
	assert_non_null(strstr(s, "--noproxy '*'"));
	assert_non_null(strstr(s, "http://172.30.0.1:80/"));
	assert_non_null(strstr(s, "http://10.0.0.5:443/"));
	assert_non_null(strstr(s, "https://allowed.test:443/"));
	assert_non_null(strstr(s, "https://denied.test:8443/"));
	assert_non_null(strstr(s, "= 403"));
	assert_non_null(strstr(s, "exit $fail"));
	free(s);
}

static void script_refuses_shell_metacharacters(void **state)
{
	(void)state;
	const char *bad[] = {"a;b",	"$(id)", "a b", "`x`",
			     "-oProxy", "a'b",	 ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct probe_target t[1];
		snprintf(t[0].host, sizeof t[0].host, "%s", bad[i]);
		t[0].port = 443;
		struct probe_plan p = {.dns_name = "x.test",
				       .gateway = "172.30.0.1",
				       .gateway_port = 80,
				       .allow = t,
				       .nallow = 1};
		char *s = probe_script(&p);
		if (s != NULL)
			fail_msg("accepted host '%s'", bad[i]);
		p.nallow = 0;
		p.dns_name = bad[i];
		assert_null(probe_script(&p));
	}
}

static void remove_dir(const char *dir)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void script_runs_and_fails_when_dns_resolves(void **state)
{
	(void)state;
	/* Run the real script under sh with getent/curl replaced by stubs on
	 * PATH: "localhost" resolving must make it exit 1 and say FAIL. */
	char dir[] = "/tmp/aslaunch-probe-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/curl", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nexit 28\n", f); /* every direct check times out */
	fclose(f);
	chmod(path, 0755);
	snprintf(path, sizeof path, "%s/getent", dir);
	f = fopen(path, "w");
	fputs("#!/bin/sh\necho 127.0.0.1 $2\n", f); /* DNS "works" */
	fclose(f);
	chmod(path, 0755);
	struct probe_plan p = {.dns_name = "leak.test",
			       .gateway = "172.30.0.1",
			       .gateway_port = 80};
	char *s = probe_script(&p);
	assert_non_null(s);
	snprintf(path, sizeof path, "%s/probe.sh", dir);
	f = fopen(path, "w");
	fputs(s, f);
	fclose(f);
	free(s);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "PATH=%s:/usr/bin:/bin sh %s > %s/out 2>&1",
		 dir, path, dir);
	int rc = system(cmd);
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 1);
	snprintf(path, sizeof path, "%s/out", dir);
	f = fopen(path, "r");
	char out[2048] = "";
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = '\0';
	fclose(f);
	assert_non_null(strstr(out, "FAIL: DNS resolves leak.test"));
	assert_non_null(strstr(out, "ok: direct connection to 172.30.0.1:80"));
	remove_dir(dir);
}

/* Writes an executable stub `name` into dir running `body`. */
static void stub(const char *dir, const char *name, const char *body)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

/* Reads a whole small file into buf (NUL-terminated). */
static void slurp(const char *dir, const char *name, char *buf, size_t len)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* The script of plan p written to dir/probe.sh; its path in path. */
static void write_script(const char *dir, const struct probe_plan *p,
			 char *path, size_t len)
{
	char *s = probe_script(p);
	assert_non_null(s);
	snprintf(path, len, "%s/probe.sh", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(s, f);
	fclose(f);
	free(s);
}

static void script_fails_when_a_direct_connection_is_refused(void **state)
{
	(void)state;
	/* A refusal (curl 7) means a packet came back from the gateway: the
	 * fence answered instead of dropping. Only a timeout (28) is ok. */
	char dir[] = "/tmp/aslaunch-probe-XXXXXX";
	assert_non_null(mkdtemp(dir));
	stub(dir, "curl", "exit 7");
	stub(dir, "getent", "exit 2"); /* DNS does not resolve */
	struct probe_plan p = {.dns_name = "leak.test",
			       .gateway = "172.30.0.1",
			       .gateway_port = 80};
	char path[256];
	write_script(dir, &p, path, sizeof path);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "PATH=%s:/usr/bin:/bin sh %s > %s/out 2>&1",
		 dir, path, dir);
	int rc = system(cmd);
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 1);
	char out[2048];
	slurp(dir, "out", out, sizeof out);
	assert_non_null(strstr(out, "ok: DNS does not resolve leak.test"));
	assert_non_null(strstr(out, "FAIL: direct connection to 172.30.0.1:80 "
				    "not dropped (curl exit 7)"));
	remove_dir(dir);
}

static void script_stderr_is_only_the_agents(void **state)
{
	(void)state;
	/* On the attach stream the engine copies stdout and stderr apart, so
	 * the agent's stderr can overtake the "pass" line: the launcher takes
	 * stderr as the agent's, which holds only if the script itself never
	 * writes there. Its noise (a tool's complaint, here rm's after "go")
	 * goes to stdout; the agent gets the real stderr and no fd 3. */
	char dir[] = "/tmp/aslaunch-probe-XXXXXX";
	assert_non_null(mkdtemp(dir));
	stub(dir, "curl", "exit 28");
	stub(dir, "getent", "exit 2");
	stub(dir, "rm", "echo rm-noise >&2; exec /bin/rm \"$@\"");
	struct probe_plan p = {.dns_name = "leak.test",
			       .gateway = "172.30.0.1",
			       .gateway_port = 80};
	char path[256];
	write_script(dir, &p, path, sizeof path);
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "echo go | PATH=%s:/usr/bin:/bin unshare -rn sh %s sh -c "
		 "'echo out; echo "
		 "err >&2; [ -e /proc/self/fd/3 ] && echo fd3 >&2; "
		 "exit 4' >%s/out 2>%s/err",
		 dir, path, dir, dir);
	int rc = system(cmd);
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 4);
	/* rm runs in the background and may write after the agent ended:
	 * wait (at most 5 s) until its complaint landed somewhere. */
	char out[4096], err[1024];
	for (int i = 0; i < 100; i++) {
		slurp(dir, "out", out, sizeof out);
		slurp(dir, "err", err, sizeof err);
		if (strstr(out, "rm-noise") || strstr(err, "rm-noise"))
			break;
		usleep(50000);
	}
	assert_string_equal(err, "err\n");
	assert_non_null(strstr(out, "agentsafe-probe: pass\n"));
	assert_non_null(strstr(out, "out\n"));
	assert_non_null(strstr(out, "rm-noise\n"));
	remove_dir(dir);
}

/* The probe's direct connection attempts (curl, here a stub that waits
 * as a dropped SYN would) are stopped and reaped before "ready": the
 * launcher ends the window in which drops count as the self-check's right
 * after it, so a retransmitted SYN of the probe's must not come later.
 * Run in a network namespace of its own (no connection to count), the
 * launcher's side played over pipes. */
static void script_stops_its_connections_before_ready(void **state)
{
	(void)state;
	char dir[] = "/tmp/aslaunch-probe-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char body[512];
	snprintf(body, sizeof body, "echo $$ >>%s/curls; exec sleep 30", dir);
	stub(dir, "curl", body);
	stub(dir, "getent", "exit 2");
	struct probe_target direct[] = {{"10.0.0.5", 443}};
	struct probe_plan p = {.dns_name = "leak.test",
			       .gateway = "172.30.0.1",
			       .gateway_port = 80,
			       .direct = direct,
			       .ndirect = 1};
	char path[256], env_path[300];
	write_script(dir, &p, path, sizeof path);
	snprintf(env_path, sizeof env_path, "PATH=%s:/usr/bin:/bin", dir);
	int in[2], out[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0); /* one group: a failure below ends it whole */
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl("/usr/bin/env", "env", env_path, "unshare", "-rn", "sh",
		      path, "sh", "-c", "exit 0", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	FILE *o = fdopen(out[0], "r");
	assert_non_null(o);
	char line[512], all[8192] = "";
	bool ready = false;
	while (!ready && fgets(line, sizeof line, o) != NULL) {
		strncat(all, line, sizeof all - strlen(all) - 1);
		ready = strcmp(line, "agentsafe-probe: ready\n") == 0;
	}
	if (!ready) {
		kill(-pid, SIGKILL);
		fail_msg("no ready line: %s", all);
	}
	/* The launcher's moment: every curl the probe started is gone. */
	char cp[256];
	snprintf(cp, sizeof cp, "%s/curls", dir);
	FILE *f = fopen(cp, "r");
	assert_non_null(f);
	int n = 0, alive = 0;
	long c;
	while (fscanf(f, "%ld", &c) == 1) {
		n++;
		alive += kill((pid_t)c, 0) == 0;
	}
	fclose(f);
	if (n != 2 || alive != 0) {
		kill(-pid, SIGKILL);
		fail_msg("%d curl(s) started, %d still running at \"ready\"", n,
			 alive);
	}
	assert_int_equal(write(in[1], "go\n", 3), 3);
	close(in[1]);
	while (fgets(line, sizeof line, o) != NULL)
		strncat(all, line, sizeof all - strlen(all) - 1);
	fclose(o);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("probe failed: %s", all);
	assert_non_null(strstr(all, "ok: direct connection to 10.0.0.5:443 "
				    "dropped"));
	assert_non_null(strstr(all, "agentsafe-probe: pass\n"));
	remove_dir(dir);
}

static void hosts_lookup(void **state)
{
	(void)state;
	char p[] = "/tmp/aslaunch-hosts-XXXXXX";
	int fd = mkstemp(p);
	assert_true(fd >= 0);
	const char *t = "# c\n::1 v6.test\n10.1.2.3 a.test  B.test # x\n"
			"10.9.9.9 a.test\n";
	assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
	close(fd);
	char ip[64];
	assert_int_equal(probe_hosts_lookup(p, "b.test", ip, sizeof ip), 0);
	assert_string_equal(ip, "10.1.2.3");
	assert_int_equal(probe_hosts_lookup(p, "a.test", ip, sizeof ip), 0);
	assert_string_equal(ip, "10.1.2.3");
	assert_int_equal(probe_hosts_lookup(p, "v6.test", ip, sizeof ip),
			 -ENOENT);
	assert_int_equal(probe_hosts_lookup(p, "x", ip, sizeof ip), -ENOENT);
	unlink(p);
}

static void session_paths_follow_xdg(void **state)
{
	(void)state;
	char out[4096];
	setenv("HOME", "/h", 1);
	unsetenv("XDG_STATE_HOME");
	setenv("XDG_CACHE_HOME", "/c", 1);
	setenv("XDG_CONFIG_HOME", "relative", 1); /* ignored: not absolute */
	assert_int_equal(session_xdg_dir("STATE", out, sizeof out), 0);
	assert_string_equal(out, "/h/.local/state/agentsafe");
	assert_int_equal(session_xdg_dir("CACHE", out, sizeof out), 0);
	assert_string_equal(out, "/c/agentsafe");
	assert_int_equal(session_xdg_dir("CONFIG", out, sizeof out), 0);
	assert_string_equal(out, "/h/.config/agentsafe");
	assert_int_equal(session_xdg_dir("DATA", out, sizeof out), 0);
	assert_string_equal(out, "/h/.local/share/agentsafe");
	char id[SESSION_ID_LEN + 1], id2[SESSION_ID_LEN + 1];
	assert_int_equal(session_new_id(id, sizeof id), 0);
	assert_int_equal(session_new_id(id2, sizeof id2), 0);
	assert_int_equal(strlen(id), SESSION_ID_LEN);
	assert_int_equal(strspn(id, "0123456789abcdef"), SESSION_ID_LEN);
	assert_string_not_equal(id, id2);
	/* "as-" + id must fit a Linux interface name (15 bytes). */
	assert_true(3 + strlen(id) <= 15);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(script_has_one_check_per_target),
	    cmocka_unit_test(script_refuses_shell_metacharacters),
	    cmocka_unit_test(script_runs_and_fails_when_dns_resolves),
	    cmocka_unit_test(script_fails_when_a_direct_connection_is_refused),
	    cmocka_unit_test(script_stderr_is_only_the_agents),
	    cmocka_unit_test(script_stops_its_connections_before_ready),
	    cmocka_unit_test(hosts_lookup),
	    cmocka_unit_test(session_paths_follow_xdg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
