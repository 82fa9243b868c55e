/* The agent container's spec as the launcher builds it from a session:
 * the proxy environment, the mounts (each agent's credentials only in its
 * own sessions), user, working directory, command, and nothing published
 * by Docker (the launcher's relay does that). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitiso.h"
#include "launch_int.h"
#include "spec.h"

struct fixture {
	struct lcfg c;
	struct sess s;
	struct spec_store *st;
	struct docker_container_spec sp;
	char home[64];
};

static bool has(const char *const *v, const char *want)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		if (strcmp(v[i], want) == 0)
			return true;
	return false;
}

/* A bind whose destination is dst, whatever its source. */
static bool binds_to(const char *const *v, const char *dst)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
		const char *c = strchr(v[i], ':');
		if (c != NULL && strncmp(c + 1, dst, strlen(dst)) == 0 &&
		    (c[1 + strlen(dst)] == '\0' || c[1 + strlen(dst)] == ':'))
			return true;
	}
	return false;
}

static void touch(const char *dir, const char *name, bool is_dir)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	if (is_dir)
		assert_int_equal(mkdir(p, 0700), 0);
	else
		fclose(fopen(p, "w"));
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	f->st = calloc(1, sizeof *f->st);
	/* A home with a Claude login in it. */
	snprintf(f->home, sizeof f->home, "/tmp/agentsafe-spec-XXXXXX");
	assert_non_null(mkdtemp(f->home));
	touch(f->home, ".claude", true);
	touch(f->home, ".claude.json", false);
	setenv("HOME", f->home, 1);
	unsetenv("TERM");
	f->c.agent = "claude";
	f->c.image = "agentsafe-agent:test";
	f->s.cfg = &f->c;
	snprintf(f->s.id, sizeof f->s.id, "0123456789ab");
	snprintf(f->s.net, sizeof f->s.net, "agentsafe-0123456789ab");
	snprintf(f->s.gateway, sizeof f->s.gateway, "172.30.9.1");
	snprintf(f->s.state_dir, sizeof f->s.state_dir, "/st/0123456789ab");
	snprintf(f->s.codex, sizeof f->s.codex, "/data/agentsafe/codex");
	f->s.proxy_port = 41234;
	f->s.uid = 1000;
	f->s.gid = 1001;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->home);
	assert_int_equal(system(cmd), 0);
	free(f->st);
	free(f);
	return 0;
}

static void build(struct fixture *f)
{
	spec_build(&f->s, f->st, &f->sp);
}

static void every_proxy_variable_names_the_session_proxy(void **state)
{
	struct fixture *f = *state;
	build(f);
	const char *const *env = f->sp.env;
	assert_true(has(env, "HTTPS_PROXY=http://172.30.9.1:41234"));
	assert_true(has(env, "HTTP_PROXY=http://172.30.9.1:41234"));
	assert_true(has(env, "https_proxy=http://172.30.9.1:41234"));
	assert_true(has(env, "http_proxy=http://172.30.9.1:41234"));
	assert_true(has(env, "NO_PROXY=localhost,127.0.0.1"));
	assert_true(has(env, "NODE_USE_ENV_PROXY=1"));
	assert_true(has(env, "AGENTSAFE_SESSION=0123456789ab"));
	assert_true(has(env, "AGENTSAFE_PROBE_PROXY=http://172.30.9.1:41234"));
	assert_true(has(env, "HOME=/home/agent"));
	/* Names the container cannot resolve go to the fenced gateway. */
	assert_string_equal(f->sp.dns, "172.30.9.1");
	assert_string_equal(f->sp.network, "agentsafe-0123456789ab");
	assert_string_equal(f->sp.session, "0123456789ab");
}

/* The clone is mounted read-write; the host objects it borrows (through
 * its alternates file) only read-only: a writable host objects dir would
 * let the agent rewrite what the host repo's history points at. */
static void host_objects_are_mounted_read_only(void **state)
{
	struct fixture *f = *state;
	char cmd[512], host[128], sessions[128], err[512] = "";
	snprintf(host, sizeof host, "%s/host", f->home);
	snprintf(sessions, sizeof sessions, "%s/sessions", f->home);
	snprintf(cmd, sizeof cmd,
		 "git init -q '%s' && git -C '%s' -c user.name=t -c "
		 "user.email=t@t.test commit -q --allow-empty -m base && "
		 "mkdir '%s'",
		 host, host, sessions);
	assert_int_equal(system(cmd), 0);
	struct gitiso_repo *r = NULL;
	int rc =
	    gitiso_prepare(host, sessions, "0123456789ab", &r, err, sizeof err);
	if (rc != 0)
		fail_msg("gitiso_prepare: %s", err);
	f->s.repos[0] = r;
	f->s.nrepos = 1;
	build(f);
	char want[PATH_MAX * 2 + 8];
	snprintf(want, sizeof want, "%s:/work/host", gitiso_clone_path(r));
	assert_true(has(f->sp.binds, want));
	const char *const *ro = gitiso_readonly_paths(r);
	assert_non_null(ro);
	assert_non_null(ro[0]); /* the host's objects dir, at least */
	for (size_t i = 0; ro[i] != NULL; i++) {
		snprintf(want, sizeof want, "%s:%s:ro", ro[i], ro[i]);
		if (!has(f->sp.binds, want))
			fail_msg("no read-only bind %s", want);
	}
	f->s.nrepos = 0;
	gitiso_free(r);
}

static void nothing_is_published_by_docker(void **state)
{
	struct fixture *f = *state;
	f->c.publish[0] = (struct lcfg_ports){8000, 8001, ""};
	f->c.npublish = 1;
	build(f);
	assert_null(f->sp.publish);
	assert_int_equal(f->sp.npublish, 0);
}

static void agent_runs_as_the_user_never_root(void **state)
{
	struct fixture *f = *state;
	build(f);
	assert_string_equal(f->sp.user, "1000:1001");
	assert_string_equal(f->sp.workdir, "/work"); /* no repo */
	assert_true(has(f->sp.binds, "/st/0123456789ab/resolv.conf:"
				     "/etc/resolv.conf:ro"));
}

static void claude_login_enters_only_claude_sessions(void **state)
{
	struct fixture *f = *state;
	build(f);
	char want[256];
	snprintf(want, sizeof want, "%s/.claude:/run/agentsafe/seed/claude:ro",
		 f->home);
	assert_true(has(f->sp.binds, want));
	snprintf(want, sizeof want,
		 "%s/.claude.json:/run/agentsafe/seed/claude.json:ro", f->home);
	assert_true(has(f->sp.binds, want));
	assert_false(binds_to(f->sp.binds, "/home/agent/.codex"));

	/* Codex gets its own persistent home, a shell nothing. */
	const char *others[] = {"codex", "shell"};
	for (size_t i = 0; i < 2; i++) {
		f->c.agent = (char *)others[i];
		build(f);
		assert_false(
		    binds_to(f->sp.binds, "/run/agentsafe/seed/claude"));
		assert_false(
		    binds_to(f->sp.binds, "/run/agentsafe/seed/claude.json"));
		assert_int_equal(
		    has(f->sp.binds,
			"/data/agentsafe/codex:/home/agent/.codex"),
		    i == 0);
	}
}

static void command_names_the_agent_whose_login_enters(void **state)
{
	struct fixture *f = *state;
	char *cmd[] = {"/usr/bin/codex", "login", "--device-auth", NULL};
	f->c.agent = "claude";
	f->c.command = cmd;
	f->c.ncommand = 3;
	build(f);
	assert_string_equal(f->sp.cmd[0], "/usr/bin/codex");
	assert_string_equal(f->sp.cmd[2], "--device-auth");
	assert_null(f->sp.cmd[3]);
	assert_false(binds_to(f->sp.binds, "/run/agentsafe/seed/claude"));
	assert_true(binds_to(f->sp.binds, "/home/agent/.codex"));
}

static void shell_runs_bash_and_an_agent_itself(void **state)
{
	struct fixture *f = *state;
	f->c.agent = "shell";
	build(f);
	assert_string_equal(f->sp.cmd[0], "bash");
	assert_null(f->sp.cmd[1]);
	f->c.agent = "codex";
	build(f);
	assert_string_equal(f->sp.cmd[0], "codex");
	assert_null(f->sp.cmd[1]);
}

static void ssh_seeds_sshd_and_its_keys(void **state)
{
	struct fixture *f = *state;
	build(f);
	assert_false(has(f->sp.env, "AGENTSAFE_SSHD=1"));
	assert_false(
	    binds_to(f->sp.binds, "/run/agentsafe/seed/authorized_keys"));
	f->c.ssh_port = 2222;
	build(f);
	assert_true(has(f->sp.env, "AGENTSAFE_SSHD=1"));
	assert_true(has(f->sp.env, "AGENTSAFE_SSHD_PORT=2222"));
	assert_true(has(f->sp.binds, "/st/0123456789ab/authorized_keys:"
				     "/run/agentsafe/seed/authorized_keys:ro"));
}

static void terminal_and_stdin_follow_the_mode(void **state)
{
	struct fixture *f = *state;
	setenv("TERM", "xterm-256color", 1);
	build(f);
	assert_false(has(f->sp.env, "TERM=xterm-256color")); /* no tty */
	assert_false(f->sp.tty);
	assert_true(f->sp.open_stdin);
	assert_true(f->sp.stdin_once);
	f->s.tty = true;
	build(f);
	assert_true(has(f->sp.env, "TERM=xterm-256color"));
	assert_true(f->sp.tty);
	/* Detached, the stream ends at no stdin EOF: the container lives. */
	f->c.detach = true;
	build(f);
	assert_false(f->sp.stdin_once);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		every_proxy_variable_names_the_session_proxy, setup, teardown),
	    cmocka_unit_test_setup_teardown(nothing_is_published_by_docker,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(host_objects_are_mounted_read_only,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(agent_runs_as_the_user_never_root,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		claude_login_enters_only_claude_sessions, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		command_names_the_agent_whose_login_enters, setup, teardown),
	    cmocka_unit_test_setup_teardown(shell_runs_bash_and_an_agent_itself,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(ssh_seeds_sshd_and_its_keys, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(terminal_and_stdin_follow_the_mode,
					    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
