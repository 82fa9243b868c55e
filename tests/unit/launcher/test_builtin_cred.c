/* The launcher's built-in credential bindings: ANTHROPIC_API_KEY,
 * OPENAI_API_KEY, GH_TOKEN/GITHUB_TOKEN of the user's environment never
 * enter the container's environment. Bound as placeholders only when the
 * policy inspects their hosts (here the *.test stand-ins the tests-only
 * AGENTSAFE_BUILTIN_CRED_TLD=test selects), left out and said once
 * otherwise, and left to the policy when it names them itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin_cred.h"
#include "launch_int.h"
#include "session_ca.h"
#include "spec.h"

#define REAL_ANTHROPIC "sk-ant-REAL-never-in-the-container-41c"
#define REAL_GH	       "ghp_REALgithubtokenNeverInside0042"

struct fixture {
	struct lcfg c;
	struct sess s;
	char dir[64], policy[128], errpath[128];
	struct spec_store st;
	struct docker_container_spec sp;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/agentsafe-bic-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->policy, sizeof f->policy, "%s/policy.yaml", f->dir);
	snprintf(f->errpath, sizeof f->errpath, "%s/stderr", f->dir);
	f->c.agent = "shell";
	f->c.image = "agentsafe-agent:test";
	f->s.cfg = &f->c;
	f->s.policy = f->policy;
	snprintf(f->s.state_dir, sizeof f->s.state_dir, "%s", f->dir);
	snprintf(f->s.id, sizeof f->s.id, "0123456789ab");
	snprintf(f->s.gateway, sizeof f->s.gateway, "172.30.9.1");
	f->s.host_uid = getuid();
	f->s.host_gid = getgid();
	setenv("ANTHROPIC_API_KEY", REAL_ANTHROPIC, 1);
	setenv("GH_TOKEN", REAL_GH, 1);
	unsetenv("OPENAI_API_KEY");
	unsetenv("GITHUB_TOKEN");
	unsetenv(BUILTIN_CRED_ENV);
	setenv(BUILTIN_CRED_TLD_ENV, "test", 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	step_ca_down(&f->s);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* step_ca_up with stderr captured into f->errpath; returns its text. */
static const char *up(struct fixture *f, const char *policy)
{
	FILE *p = fopen(f->policy, "w");
	assert_non_null(p);
	fputs(policy, p);
	fclose(p);
	fflush(stderr);
	int saved = dup(2);
	int fd = open(f->errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	char err[512] = "";
	int rc = step_ca_up(&f->s, err, sizeof err);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	static char out[4096];
	FILE *e = fopen(f->errpath, "r");
	size_t n = fread(out, 1, sizeof out - 1, e);
	out[n] = '\0';
	fclose(e);
	spec_build(&f->s, &f->st, &f->sp);
	return out;
}

/* The container's value of var, or NULL; never a real secret anywhere. */
static const char *container_env(const struct fixture *f, const char *var)
{
	const char *hit = NULL;
	size_t vl = strlen(var);
	for (size_t i = 0; f->sp.env[i] != NULL; i++) {
		assert_null(strstr(f->sp.env[i], REAL_ANTHROPIC));
		assert_null(strstr(f->sp.env[i], REAL_GH));
		if (strncmp(f->sp.env[i], var, vl) == 0 &&
		    f->sp.env[i][vl] == '=')
			hit = f->sp.env[i] + vl + 1;
	}
	return hit;
}

static void bound_as_placeholders_when_inspected(void **state)
{
	struct fixture *f = *state;
	const char *said =
	    up(f, "version: 1\nallow:\n  - host: api.anthropic.test\n    "
		  "inspect: true\n  - host: github.test\n    inspect: true\n"
		  "  - api.github.test\n");
	assert_string_equal(said, "");
	const char *a = container_env(f, "ANTHROPIC_API_KEY");
	const char *g = container_env(f, "GH_TOKEN");
	assert_non_null(a);
	assert_non_null(g);
	assert_int_equal(strncmp(a, "agentsafe-ANTHROPIC_API_KEY-", 28), 0);
	assert_int_equal(strlen(a), 28 + 32);
	assert_int_equal(strncmp(g, "agentsafe-GH_TOKEN-", 19), 0);
	/* The proxy learns the bindings (inspected hosts only) and the same
	 * placeholders; the secret itself it reads from its own
	 * environment. */
	unsetenv("AGENTSAFE_PLACEHOLDER_ANTHROPIC_API_KEY");
	session_ca_proxy_env(&f->s);
	const char *b = getenv(BUILTIN_CRED_ENV);
	assert_non_null(b);
	assert_string_equal(b, "ANTHROPIC_API_KEY=api.anthropic.test;"
			       "GH_TOKEN=github.test");
	assert_string_equal(getenv("AGENTSAFE_PLACEHOLDER_ANTHROPIC_API_KEY"),
			    a);
	assert_null(container_env(f, "GITHUB_TOKEN"));
	assert_null(container_env(f, "OPENAI_API_KEY"));
}

static void left_out_and_said_once_when_not_inspected(void **state)
{
	struct fixture *f = *state;
	const char *said = up(f, "version: 1\nallow:\n  - api.anthropic.test\n"
				 "  - github.test\n");
	assert_null(f->s.sca);
	assert_null(container_env(f, "ANTHROPIC_API_KEY"));
	assert_null(container_env(f, "GH_TOKEN"));
	assert_non_null(strstr(said, "ANTHROPIC_API_KEY, GH_TOKEN"));
	assert_non_null(strstr(said, "inspect: true"));
	/* Once: one line for both. */
	size_t lines = 0;
	for (const char *p = said; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, 1);
	assert_null(strstr(said, REAL_ANTHROPIC));
}

static void real_hosts_are_not_the_stand_ins(void **state)
{
	struct fixture *f = *state;
	/* Without the tests' override the bindings are the real .com hosts:
	 * inspecting the .test stand-ins binds nothing. */
	unsetenv(BUILTIN_CRED_TLD_ENV);
	const char *said =
	    up(f, "version: 1\nallow:\n  - host: api.anthropic.test\n    "
		  "inspect: true\n");
	assert_null(container_env(f, "ANTHROPIC_API_KEY"));
	assert_non_null(strstr(said, "ANTHROPIC_API_KEY"));
	/* Any other value of the override is no override. */
	setenv(BUILTIN_CRED_TLD_ENV, "evil.example", 1);
	step_ca_down(&f->s);
	said = up(f, "version: 1\nallow:\n  - host: api.anthropic.test\n    "
		     "inspect: true\n");
	assert_null(container_env(f, "ANTHROPIC_API_KEY"));
}

static void the_policys_own_credential_wins(void **state)
{
	struct fixture *f = *state;
	const char *said =
	    up(f, "version: 1\nallow:\n  - host: api.anthropic.test\n    "
		  "inspect: true\ncredentials:\n  CLAUDE_KEY:\n    env: "
		  "ANTHROPIC_API_KEY\n    hosts: [api.anthropic.test]\n"
		  "    header: \"x-api-key: {}\"\n");
	/* The policy injects it as a header: no placeholder, no built-in. */
	assert_null(container_env(f, "ANTHROPIC_API_KEY"));
	assert_null(strstr(said, "ANTHROPIC_API_KEY"));
	/* Not even one the user's environment had. */
	setenv(BUILTIN_CRED_ENV, "ANTHROPIC_API_KEY=evil.test", 1);
	session_ca_proxy_env(&f->s);
	assert_null(getenv(BUILTIN_CRED_ENV));
}

static void spec_never_forwards_without_a_policy_step(void **state)
{
	struct fixture *f = *state;
	/* No session CA at all (s->sca NULL): still nothing of the user's. */
	spec_build(&f->s, &f->st, &f->sp);
	assert_null(container_env(f, "ANTHROPIC_API_KEY"));
	assert_null(container_env(f, "GH_TOKEN"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		bound_as_placeholders_when_inspected, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		left_out_and_said_once_when_not_inspected, setup, teardown),
	    cmocka_unit_test_setup_teardown(real_hosts_are_not_the_stand_ins,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(the_policys_own_credential_wins,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		spec_never_forwards_without_a_policy_step, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
