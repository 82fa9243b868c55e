/* The session CA step (see session_ca.h). */
#include "session_ca.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "builtin_cred.h"
#include "ca.h"
#include "claude_login.h"
#include "launch_int.h"
#include "policy.h"

/* Where a host keeps its system roots (Debian/Ubuntu, then Fedora/RHEL). */
static const char *const system_bundles[] = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
};

struct session_ca {
	char cert[4200], key[4200], bundle[4200];
	char env[SESSION_CA_ENV_MAX][200];  /* NAME=placeholder */
	char penv[SESSION_CA_ENV_MAX][240]; /* AGENTSAFE_PLACEHOLDER_NAME=... */
	size_t nenv;
	char benv[64 + BUILTIN_CRED_MAX * 300]; /* BUILTIN_CRED_ENV=... */
	const char *ca_bundle; /* --ca-bundle, also for upstreams */
};

static int append_file(FILE *out, const char *path)
{
	FILE *in = fopen(path, "re");
	if (in == NULL)
		return -errno;
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, out) != n) {
			(void)fclose(in);
			return -EIO;
		}
	(void)fclose(in); /* read-only */
	return fputc('\n', out) == EOF ? -EIO : 0;
}

/* System roots + --ca-bundle + the session CA, the container's bundle. */
static int write_bundle(struct session_ca *sca, const struct certs_ca *ca,
			char *err, size_t errlen)
{
	const char *sys = NULL;
	for (size_t i = 0; i < sizeof system_bundles / sizeof *system_bundles;
	     i++)
		if (access(system_bundles[i], R_OK) == 0)
			sys = system_bundles[i];
	if (sys == NULL) {
		launch_snprintf(err, errlen,
				"TLS inspection: no system CA bundle on this "
				"host (%s) to build the container's from",
				system_bundles[0]);
		return -ENOENT;
	}
	FILE *f = fopen(sca->bundle, "we");
	int rc = f != NULL ? append_file(f, sys) : -errno;
	if (rc == 0 && sca->ca_bundle != NULL)
		rc = append_file(f, sca->ca_bundle);
	size_t len = 0;
	const char *pem = certs_ca_pem(ca, &len);
	if (rc == 0 && fwrite(pem, 1, len, f) != len)
		rc = -EIO;
	if (f != NULL && fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc != 0)
		launch_snprintf(err, errlen, "writing %s: %s", sca->bundle,
				strerror(-rc));
	return rc;
}

int session_ca_placeholder(const char *type, size_t typelen, const char *name,
			   char *out, size_t len)
{
	unsigned char r[16];
	char hex[33];
	if (RAND_bytes(r, sizeof r) != 1)
		return -EIO;
	for (size_t k = 0; k < sizeof r; k++)
		snprintf(hex + 2 * k, 3, "%02x", r[k]);
	launch_snprintf(out, len, "%.*sagentsafe-%s-%s", (int)typelen, type,
			name, hex);
	return 0;
}

/* NAME=agentsafe-NAME-<random> for the container, and the same for the
 * proxy as AGENTSAFE_PLACEHOLDER_NAME. */
static int add_placeholder(struct session_ca *sca, const char *name, char *err,
			   size_t errlen)
{
	if (sca->nenv == SESSION_CA_ENV_MAX) {
		launch_snprintf(err, errlen,
				"at most %d placeholder credentials",
				SESSION_CA_ENV_MAX);
		return -E2BIG;
	}
	char ph[160];
	if (session_ca_placeholder("", 0, name, ph, sizeof ph) != 0)
		return -EIO;
	launch_snprintf(sca->env[sca->nenv], sizeof sca->env[0], "%s=%s", name,
			ph);
	launch_snprintf(sca->penv[sca->nenv], sizeof sca->penv[0],
			"AGENTSAFE_PLACEHOLDER_%s=%s", name, ph);
	sca->nenv++;
	return 0;
}

/* The policy's placeholder credentials, then the built-in bindings the
 * policy's inspected hosts allow (builtin_cred.h). */
static int make_placeholders(struct session_ca *sca, const struct policy *p,
			     char *err, size_t errlen)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < policy_credential_count(p); i++) {
		const struct policy_credential *c = policy_credential_at(p, i);
		if (c->placeholder)
			rc = add_placeholder(sca, c->name, err, errlen);
	}
	struct builtin_bind b[BUILTIN_CRED_MAX];
	char skipped[128];
	size_t nb = builtin_cred_plan(p, b, skipped, sizeof skipped);
	size_t used = (size_t)snprintf(sca->benv, sizeof sca->benv,
				       "%s=", BUILTIN_CRED_ENV);
	for (size_t i = 0; rc == 0 && i < nb; i++) {
		rc = add_placeholder(sca, b[i].var, err, errlen);
		used += (size_t)snprintf(
		    sca->benv + used, sizeof sca->benv - used, "%s%s=%s",
		    i > 0 ? ";" : "", b[i].var, b[i].hosts);
	}
	if (nb == 0)
		sca->benv[0] = '\0';
	return rc;
}

/* A secret of the user's environment the policy gives no inspected host:
 * left out of the container, said once (never forwarded silently). */
static void say_skipped(const struct policy *p)
{
	struct builtin_bind b[BUILTIN_CRED_MAX];
	char skipped[128];
	(void)builtin_cred_plan(p, b, skipped, sizeof skipped);
	if (skipped[0] != '\0')
		fprintf(stderr,
			"agentsafe-launch: not passed into the sandbox: %s "
			"(a secret never enters the container). To let the "
			"agent use it, add `inspect: true` to the allow rule "
			"of its host (api.anthropic.com, api.openai.com, "
			"github.com / api.github.com): the container then "
			"gets a placeholder the proxy swaps for the real "
			"value toward that host only.\n",
			skipped);
}

static int mint(struct sess *s, struct session_ca *sca, const struct policy *p,
		char *err, size_t errlen)
{
	const char *hosts[256];
	size_t n = policy_inspect_hosts(p, hosts, 256);
	if (n > 256) {
		launch_snprintf(err, errlen,
				"TLS inspection: at most 256 inspected hosts");
		return -E2BIG;
	}
	char cerr[512];
	struct certs_ca *ca = NULL;
	int rc = certs_ca_mint(hosts, n, CERTS_CA_VALIDITY_S, &ca, cerr,
			       sizeof cerr);
	if (rc == 0) {
		(void)unlink(sca->key); /* a stale key of a crashed run */
		rc = certs_ca_write(ca, sca->cert, sca->key, cerr, sizeof cerr);
	}
	if (rc == 0 && chown(sca->key, s->host_uid, s->host_gid) != 0)
		rc = -errno;
	if (rc == 0)
		rc = write_bundle(sca, ca, err, errlen);
	else
		launch_snprintf(err, errlen, "session CA: %s", cerr);
	certs_ca_free(ca);
	return rc;
}

int step_ca_up(struct sess *s, char *err, size_t errlen)
{
	struct policy *p = NULL;
	char perr[POLICY_ERR_MAX];
	if (policy_load_file(s->policy, &p, perr, sizeof perr) != 0) {
		launch_snprintf(err, errlen, "%s", perr);
		return -EINVAL;
	}
	say_skipped(p);
	int rc = claude_login_prepare(s, p, err, errlen);
	if (rc != 0) {
		policy_unref(p);
		return rc;
	}
	const char *one;
	if (policy_inspect_hosts(p, &one, 1) == 0 &&
	    policy_credential_count(p) == 0) {
		policy_unref(p);
		return 0;
	}
	struct session_ca *sca = calloc(1, sizeof *sca);
	if (sca == NULL) {
		policy_unref(p);
		claude_login_finish(s);
		return -ENOMEM;
	}
	launch_snprintf(sca->cert, sizeof sca->cert, "%s/session-ca.pem",
			s->state_dir);
	launch_snprintf(sca->key, sizeof sca->key, "%s/session-ca.key",
			s->state_dir);
	launch_snprintf(sca->bundle, sizeof sca->bundle, "%s/ca-bundle.pem",
			s->state_dir);
	sca->ca_bundle = s->cfg->ca_bundle;
	rc = make_placeholders(sca, p, err, errlen);
	if (rc == 0 && policy_inspect_hosts(p, &one, 1) == 0) {
		launch_snprintf(
		    err, errlen,
		    "the policy names credentials but inspects no "
		    "host: add inspect: true to their hosts' rules");
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = mint(s, sca, p, err, errlen);
	policy_unref(p);
	if (rc != 0) {
		(void)unlink(sca->key);
		free(sca);
		claude_login_finish(s);
		return rc;
	}
	s->sca = sca;
	return 0;
}

void step_ca_down(struct sess *s)
{
	struct session_ca *sca = s->sca;
	claude_login_finish(s); /* the proxy has stopped */
	if (sca == NULL)
		return;
	/* After the fence step the launcher keeps its file capabilities
	 * only permitted: the state directory is the user's. */
	bool was_on = launch_files_on();
	(void)unlink(sca->key);
	(void)unlink(sca->bundle);
	launch_files_off(was_on);
	free(sca);
	s->sca = NULL;
}

size_t session_ca_proxy_args(const struct sess *s, const char **argv,
			     size_t max)
{
	const struct session_ca *sca = s->sca;
	size_t n = 0;
	if (sca == NULL || max < 6)
		return 0;
	argv[n++] = "--inspect-ca";
	argv[n++] = sca->cert;
	argv[n++] = "--inspect-key";
	argv[n++] = sca->key;
	if (sca->ca_bundle != NULL) {
		argv[n++] = "--ca-bundle";
		argv[n++] = sca->ca_bundle;
	}
	return n;
}

void session_ca_proxy_env(const struct sess *s)
{
	const struct session_ca *sca = s->sca;
	for (size_t i = 0; sca != NULL && i < sca->nenv; i++)
		(void)putenv((char *)sca->penv[i]);
	/* Only the bindings made here: never one inherited from the user's
	 * environment. */
	if (sca != NULL && sca->benv[0] != '\0')
		(void)putenv((char *)sca->benv);
	else
		(void)unsetenv(BUILTIN_CRED_ENV);
	claude_login_proxy_env(s);
}

size_t session_ca_env(const struct sess *s, const char **env, size_t max)
{
	const struct session_ca *sca = s->sca;
	size_t n = 0;
	for (; sca != NULL && n < sca->nenv && n < max; n++)
		env[n] = sca->env[n];
	return n;
}

const char *session_ca_bundle(const struct sess *s)
{
	return s->sca != NULL ? s->sca->bundle : NULL;
}
