/* The launcher's session CA step: minted only when the policy inspects,
 * the key 0600 in the state directory and gone after teardown, the
 * container's bundle = the system roots + the session CA mounted where the
 * image points every tool, the proxy's arguments, and the placeholders
 * (never a secret) in the container's environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launch_int.h"
#include "session_ca.h"
#include "spec.h"

struct fixture {
	struct lcfg c;
	struct sess s;
	char dir[64], policy[128];
};

static void write_policy(struct fixture *f, const char *text)
{
	FILE *p = fopen(f->policy, "w");
	assert_non_null(p);
	fputs(text, p);
	fclose(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/agentsafe-sca-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->policy, sizeof f->policy, "%s/policy.yaml", f->dir);
	f->c.agent = "shell";
	f->c.image = "agentsafe-agent:test";
	f->s.cfg = &f->c;
	f->s.policy = f->policy;
	snprintf(f->s.state_dir, sizeof f->s.state_dir, "%s", f->dir);
	snprintf(f->s.id, sizeof f->s.id, "0123456789ab");
	f->s.host_uid = getuid();
	f->s.host_gid = getgid();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void nothing_without_inspection(void **state)
{
	struct fixture *f = *state;
	write_policy(f, "version: 1\nallow:\n  - a.test\n");
	char err[512] = "";
	assert_int_equal(step_ca_up(&f->s, err, sizeof err), 0);
	assert_null(f->s.sca);
	assert_null(session_ca_bundle(&f->s));
	const char *argv[8];
	assert_int_equal(session_ca_proxy_args(&f->s, argv, 8), 0);
	step_ca_down(&f->s);
}

static void minted_for_inspected_hosts(void **state)
{
	struct fixture *f = *state;
	write_policy(f, "version: 1\nallow:\n  - host: api.test\n    inspect: "
			"true\ncredentials:\n  API_TOKEN:\n    env: X_TOKEN\n"
			"    hosts: [api.test]\n    placeholder: true\n");
	char err[512] = "";
	int rc = step_ca_up(&f->s, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	char key[128], cert[128];
	snprintf(key, sizeof key, "%s/session-ca.key", f->dir);
	snprintf(cert, sizeof cert, "%s/session-ca.pem", f->dir);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The bundle: the system roots first, the session CA last. */
	const char *bundle = session_ca_bundle(&f->s);
	assert_non_null(bundle);
	char *b = slurp(bundle);
	size_t ncerts = 0;
	for (const char *p = b; (p = strstr(p, "BEGIN CERTIFICATE")); p++)
		ncerts++;
	assert_true(ncerts > 10);
	char *ca = strdup(slurp(cert));
	assert_non_null(strstr(slurp(bundle), ca));
	free(ca);
	const char *argv[8];
	size_t n = session_ca_proxy_args(&f->s, argv, 8);
	assert_int_equal(n, 4);
	assert_string_equal(argv[0], "--inspect-ca");
	assert_string_equal(argv[3], key);
	/* The container gets the placeholder as its variable, and the
	 * bundle over the path every tool reads. */
	const char *env[4];
	assert_int_equal(session_ca_env(&f->s, env, 4), 1);
	assert_int_equal(strncmp(env[0], "API_TOKEN=agentsafe-API_TOKEN-", 30),
			 0);
	assert_int_equal(strlen(env[0]), 30 + 32);
	struct spec_store *sst = calloc(1, sizeof *sst);
	struct docker_container_spec sp;
	snprintf(f->s.gateway, sizeof f->s.gateway, "172.30.9.1");
	spec_build(&f->s, sst, &sp);
	bool env_ok = false, bind_ok = false;
	for (size_t i = 0; sp.env[i] != NULL; i++)
		env_ok |= strcmp(sp.env[i], env[0]) == 0;
	char want[512];
	snprintf(want, sizeof want, "%s:%s:ro", bundle,
		 SESSION_CA_CONTAINER_BUNDLE);
	for (size_t i = 0; sp.binds[i] != NULL; i++)
		bind_ok |= strcmp(sp.binds[i], want) == 0;
	assert_true(env_ok);
	assert_true(bind_ok);
	/* No bind exposes the state directory's key. */
	for (size_t i = 0; sp.binds[i] != NULL; i++)
		assert_null(strstr(sp.binds[i], "session-ca.key"));
	free(sst);
	step_ca_down(&f->s);
	assert_int_not_equal(stat(key, &st), 0);
	assert_null(f->s.sca);
}

static void credentials_without_inspection_refused(void **state)
{
	struct fixture *f = *state;
	write_policy(f, "version: 1\nallow:\n  - api.test\ncredentials:\n  T:\n"
			"    env: X\n    hosts: [api.test]\n    placeholder: "
			"true\n");
	char err[512] = "";
	assert_int_not_equal(step_ca_up(&f->s, err, sizeof err), 0);
	assert_non_null(strstr(err, "inspect: true"));
	assert_null(f->s.sca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(nothing_without_inspection, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(minted_for_inspected_hosts, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		credentials_without_inspection_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
