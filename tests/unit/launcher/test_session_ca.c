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

#include "claude_login.h"
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

/* Claude Code's login: the user's file with real tokens, a policy that
 * inspects both of its hosts (the .test stand-ins). */
#define ACC "sk-ant-oat01-unit-real-access-5d1"
#define REF "sk-ant-ort01-unit-real-refresh-8e2"
static void write_login(struct fixture *f, const char *refresh)
{
	char p[256];
	snprintf(p, sizeof p, "%s/home/.claude", f->dir);
	assert_int_equal(mkdir(p, 0700) == 0 || access(p, F_OK) == 0, 1);
	snprintf(p, sizeof p, "%s/home/.claude/.credentials.json", f->dir);
	FILE *c = fopen(p, "w");
	assert_non_null(c);
	fprintf(c,
		"{\"claudeAiOauth\": {\"accessToken\": \"%s\", "
		"\"refreshToken\": \"%s\", \"expiresAt\": 1, "
		"\"subscriptionType\": \"max\"}, \"other\": 7}",
		ACC, refresh);
	fclose(c);
}

static void login_fixture(struct fixture *f, bool inspect_token_host)
{
	char home[128];
	snprintf(home, sizeof home, "%s/home", f->dir);
	assert_int_equal(mkdir(home, 0700), 0);
	setenv("HOME", home, 1);
	setenv("AGENTSAFE_BUILTIN_CRED_TLD", "test", 1);
	f->c.agent = "claude";
	write_login(f, REF);
	write_policy(f,
		     inspect_token_host
			 ? "version: 1\nallow:\n  - host: api.anthropic.test\n"
			   "    inspect: true\n  - host: platform.claude.test\n"
			   "    inspect: true\n"
			 : "version: 1\nallow:\n  - host: api.anthropic.test\n"
			   "    inspect: true\n  - platform.claude.test\n");
}

/* The proxy's env unset (it points into the session) and its rotation
 * written as the proxy writes it. */
static void proxy_rotated(struct fixture *f, const char *store_text)
{
	session_ca_proxy_env(&f->s);
	char store[256];
	snprintf(store, sizeof store, "%s", getenv("AGENTSAFE_OAUTH_STORE"));
	const char *vars[] = {"CLAUDE_OAUTH_ACCESS",
			      "CLAUDE_OAUTH_REFRESH",
			      "AGENTSAFE_PLACEHOLDER_CLAUDE_OAUTH_ACCESS",
			      "AGENTSAFE_PLACEHOLDER_CLAUDE_OAUTH_REFRESH",
			      "AGENTSAFE_OAUTH_ROTATE",
			      "AGENTSAFE_OAUTH_STORE",
			      "AGENTSAFE_BUILTIN_CREDENTIALS"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
	FILE *o = fopen(store, "w");
	assert_non_null(o);
	fputs(store_text, o);
	fclose(o);
}

#define ROTATED                                                                \
	"{\"access_token\": \"NEW-A\", \"refresh_token\": \"NEW-R\", "         \
	"\"expires_in\": 100, \"obtained_ms\": 5000}"

/* The user's file (its path in user) holds ROTATED, the rest kept. */
static char *rotated_saved(struct fixture *f, char *user, size_t len)
{
	snprintf(user, len, "%s/home/.claude/.credentials.json", f->dir);
	char *t = slurp(user);
	assert_non_null(strstr(t, "\"accessToken\": \"NEW-A\""));
	assert_non_null(strstr(t, "\"refreshToken\": \"NEW-R\""));
	assert_non_null(strstr(t, "\"expiresAt\": 105000"));
	assert_non_null(strstr(t, "\"other\": 7"));
	return t;
}

static void claude_login_kept_on_the_host(void **state)
{
	struct fixture *f = *state;
	login_fixture(f, true);
	char err[512] = "";
	assert_int_equal(step_ca_up(&f->s, err, sizeof err), 0);
	const char *seed = claude_login_seed(&f->s);
	assert_non_null(seed);
	/* The container's copy: typed placeholders, the rest as it was. */
	char *t = slurp(seed);
	assert_null(strstr(t, ACC));
	assert_null(strstr(t, REF));
	assert_non_null(
	    strstr(t, "\"sk-ant-oat01-agentsafe-CLAUDE_OAUTH_ACCESS-"));
	assert_non_null(
	    strstr(t, "\"sk-ant-ort01-agentsafe-CLAUDE_OAUTH_REFRESH-"));
	assert_non_null(strstr(t, "\"subscriptionType\": \"max\""));
	struct stat st;
	assert_int_equal(stat(seed, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Mounted over the user's own file in the seed directory. */
	struct spec_store *sst = calloc(1, sizeof *sst);
	struct docker_container_spec sp;
	snprintf(f->s.gateway, sizeof f->s.gateway, "172.30.9.1");
	spec_build(&f->s, sst, &sp);
	char want[512];
	snprintf(want, sizeof want, "%s:%s:ro", seed, CLAUDE_LOGIN_SEED);
	bool bind_ok = false;
	for (size_t i = 0; sp.binds[i] != NULL; i++)
		bind_ok |= strcmp(sp.binds[i], want) == 0;
	assert_true(bind_ok);
	free(sst);
	/* The proxy's environment: the real tokens, bound to their hosts,
	 * the refresh token to the token endpoint's path only. */
	session_ca_proxy_env(&f->s);
	assert_string_equal(getenv("CLAUDE_OAUTH_ACCESS"), ACC);
	assert_string_equal(getenv("CLAUDE_OAUTH_REFRESH"), REF);
	assert_string_equal(getenv("AGENTSAFE_OAUTH_ROTATE"),
			    "platform.claude.test/v1/oauth/token,"
			    "CLAUDE_OAUTH_ACCESS,CLAUDE_OAUTH_REFRESH");
	assert_string_equal(getenv("AGENTSAFE_BUILTIN_CREDENTIALS"),
			    "CLAUDE_OAUTH_ACCESS=api.anthropic.test;"
			    "CLAUDE_OAUTH_REFRESH=platform.claude.test"
			    "/v1/oauth/token");
	char store[256];
	snprintf(store, sizeof store, "%s", getenv("AGENTSAFE_OAUTH_STORE"));
	/* The proxy rotated the pair: saved into the user's file. */
	proxy_rotated(f, ROTATED);
	step_ca_down(&f->s);
	char user[256];
	t = rotated_saved(f, user, sizeof user);
	assert_int_equal(stat(user, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_not_equal(stat(store, &st), 0);
	assert_int_not_equal(access(seed, F_OK), 0);
	assert_null(f->s.login);
}

/* The user logged in again on the host meanwhile: theirs wins. */
static void claude_login_newer_user_file_wins(void **state)
{
	struct fixture *f = *state;
	login_fixture(f, true);
	char err[512] = "";
	assert_int_equal(step_ca_up(&f->s, err, sizeof err), 0);
	session_ca_proxy_env(&f->s);
	char store[256];
	snprintf(store, sizeof store, "%s", getenv("AGENTSAFE_OAUTH_STORE"));
	FILE *o = fopen(store, "w");
	assert_non_null(o);
	fputs("{\"access_token\": \"NEW-A\", \"refresh_token\": \"NEW-R\"}", o);
	fclose(o);
	write_login(f, "sk-ant-ort01-logged-in-again");
	unsetenv("AGENTSAFE_OAUTH_STORE");
	unsetenv("AGENTSAFE_BUILTIN_CREDENTIALS");
	unsetenv("CLAUDE_OAUTH_ACCESS");
	unsetenv("CLAUDE_OAUTH_REFRESH");
	unsetenv("AGENTSAFE_OAUTH_ROTATE");
	step_ca_down(&f->s);
	char user[256];
	snprintf(user, sizeof user, "%s/home/.claude/.credentials.json",
		 f->dir);
	char *t = slurp(user);
	assert_null(strstr(t, "NEW-"));
	assert_non_null(strstr(t, "sk-ant-ort01-logged-in-again"));
}

/* The launcher was killed after the proxy rotated the login (the token
 * host retired the user's refresh token): the stale sweep saves the new
 * pair from the session's files, which hold no real token of the start
 * (the record keeps a hash), and removes them. */
static void claude_login_saved_by_the_sweep(void **state)
{
	struct fixture *f = *state;
	login_fixture(f, true);
	char err[512] = "", path[256];
	assert_int_equal(step_ca_up(&f->s, err, sizeof err), 0);
	snprintf(path, sizeof path, "%s/claude-login.json", f->dir);
	char *t = slurp(path);
	assert_null(strstr(t, REF));
	assert_null(strstr(t, ACC));
	assert_non_null(strstr(t, "\"refresh_sha256\""));
	proxy_rotated(f, ROTATED);
	/* SIGKILL: no step_ca_down; the next start or `stop` sweeps. */
	claude_login_recover(f->dir);
	char user[256];
	t = rotated_saved(f, user, sizeof user);
	const char *gone[] = {"claude-login.json", "claude-oauth.json",
			      "claude-credentials.json"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", f->dir, gone[i]);
		assert_int_not_equal(access(path, F_OK), 0);
	}
	/* A second sweep finds nothing to do. */
	claude_login_recover(f->dir);
	assert_string_equal(slurp(user), t);
	step_ca_down(&f->s); /* the rest of the session's state */
}

/* What a sweep refuses: a record naming a file that does not hold the
 * session's refresh token (the user logged in again, or the record was
 * pointed at another file), or not a credentials file at all; and, as
 * root, a file its owner could not write (the record's owner's rights
 * only). */
static void claude_login_sweep_refusals(void **state)
{
	struct fixture *f = *state;
	login_fixture(f, true);
	char err[512] = "", user[256], rec[256], other[256];
	assert_int_equal(step_ca_up(&f->s, err, sizeof err), 0);
	proxy_rotated(f, ROTATED);
	snprintf(user, sizeof user, "%s/home/.claude/.credentials.json",
		 f->dir);
	snprintf(rec, sizeof rec, "%s/claude-login.json", f->dir);
	char saved_rec[1024];
	snprintf(saved_rec, sizeof saved_rec, "%s", slurp(rec));
	/* 1. logged in again on the host: theirs wins. */
	write_login(f, "sk-ant-ort01-logged-in-again");
	claude_login_recover(f->dir);
	assert_null(strstr(slurp(user), "NEW-"));
	/* 2. a record pointed at a file that is not a credentials file. */
	write_login(f, REF);
	snprintf(other, sizeof other, "%s/notes.json", f->dir);
	FILE *o = fopen(other, "w");
	assert_non_null(o);
	fprintf(o, "{\"claudeAiOauth\": {\"refreshToken\": \"%s\"}}", REF);
	fclose(o);
	proxy_rotated(f, ROTATED);
	o = fopen(rec, "w");
	assert_non_null(o);
	char *h = strstr(saved_rec, "\"refresh_sha256\"");
	assert_non_null(h);
	fprintf(o, "{\"file\": \"%s\", %s", other, h);
	fclose(o);
	claude_login_recover(f->dir);
	assert_null(strstr(slurp(other), "NEW-"));
	assert_null(strstr(slurp(user), "NEW-"));
	/* 3. as root, a record of another user's naming root's file. */
	if (geteuid() == 0) {
		proxy_rotated(f, ROTATED);
		o = fopen(rec, "w");
		assert_non_null(o);
		fputs(saved_rec, o);
		fclose(o);
		/* The session's files are that user's (readable to them);
		 * the credentials file behind root's 0700 home is not. */
		char store[256];
		snprintf(store, sizeof store, "%s/claude-oauth.json", f->dir);
		assert_int_equal(chown(f->dir, 65534, 65534), 0);
		assert_int_equal(chown(store, 65534, 65534), 0);
		assert_int_equal(chown(rec, 65534, 65534), 0);
		claude_login_recover(f->dir);
		assert_null(strstr(slurp(user), "NEW-"));
		/* Its own files are removed all the same. */
		assert_int_not_equal(access(rec, F_OK), 0);
	}
	step_ca_down(&f->s);
}

/* Without the token host inspected the login cannot be swapped: it
 * enters as before (said), and nothing is planned. */
static void claude_login_needs_both_hosts_inspected(void **state)
{
	struct fixture *f = *state;
	login_fixture(f, false);
	char err[512] = "";
	assert_int_equal(step_ca_up(&f->s, err, sizeof err), 0);
	assert_null(claude_login_seed(&f->s));
	step_ca_down(&f->s);
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
	    cmocka_unit_test_setup_teardown(claude_login_kept_on_the_host,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(claude_login_saved_by_the_sweep,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(claude_login_sweep_refusals, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(claude_login_newer_user_file_wins,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		claude_login_needs_both_hosts_inspected, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
