/* What a launch needs before any session resource exists: the policy
 * file (a first run copies the example), the agent image (built or rebuilt
 * for this user and CA bundle) and, for --ssh, the accepted public keys. */
#include "fsutil.h"
#include "prepare.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "certs.h"
#include "image.h"
#include "launch_int.h"

#ifndef AGENTSAFE_SOURCE_DIR
#define AGENTSAFE_SOURCE_DIR "."
#endif

static int default_policy(char *out, size_t len)
{
	char cfg[4096];
	if (session_xdg_dir("CONFIG", cfg, sizeof cfg) != 0)
		return -ENOENT;
	launch_snprintf(out, len, "%s/policy.yaml", cfg);
	if (access(out, F_OK) == 0)
		return 0;
	/* First run: copy the installed example. */
	char exe[PATH_MAX], ex[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	const char *cands[3] = {NULL, NULL, NULL};
	char c0[PATH_MAX + 64];
	if (n > 0) {
		exe[n] = '\0';
		char *sl = strrchr(exe, '/');
		if (sl)
			*sl = '\0';
		launch_snprintf(c0, sizeof c0,
				"%s/../share/agentsafe/examples/policy.yaml",
				exe);
		cands[0] = c0;
	}
	launch_snprintf(ex, sizeof ex, "%s/examples/policy.yaml",
			AGENTSAFE_SOURCE_DIR);
	cands[1] = ex;
	for (size_t i = 0; i < 2; i++) {
		if (cands[i] == NULL)
			continue;
		FILE *in = fopen(cands[i], "rb");
		if (in == NULL)
			continue;
		if (fs_mkdir_p(cfg, 0700, NULL, 0) != 0) {
			(void)fclose(in); /* only read */
			return -EACCES;
		}
		int fd =
		    open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		FILE *o = fd >= 0 ? fdopen(fd, "wb") : NULL;
		if (o == NULL && fd >= 0)
			close(fd);
		char buf[8192];
		size_t r;
		bool ok = o != NULL;
		while (ok && (r = fread(buf, 1, sizeof buf, in)) > 0)
			ok = fwrite(buf, 1, r, o) == r;
		ok = ok && !ferror(in);
		(void)fclose(in); /* only read */
		if (o != NULL && fclose(o) != 0)
			ok = false;
		if (!ok) {
			/* Else next run takes a short copy as the policy. */
			if (fd >= 0)
				unlink(out);
			return -EIO;
		}
		const char *su = getenv("SUDO_UID"), *sg = getenv("SUDO_GID");
		const char *home = getenv("HOME");
		unsigned long uid = 0, gid = 0;
		if (geteuid() == 0 && su != NULL && home != NULL &&
		    launch_parse_id(su, &uid) == 0 &&
		    (sg == NULL || launch_parse_id(sg, &gid) == 0)) {
			struct sess tmp = {0};
			tmp.host_uid = (uid_t)uid;
			tmp.host_gid = (gid_t)gid;
			launch_give_to_user(&tmp, home, out);
		}
		launch_diag(
		    "created %s from %s: review it, then edit as needed", out,
		    cands[i]);
		return 0;
	}
	return -ENOENT;
}

static int container_dir(const struct lcfg *c, char *out, size_t len)
{
	if (c->container_dir) {
		launch_snprintf(out, len, "%s", c->container_dir);
		return 0;
	}
	const char *e = getenv("AGENTSAFE_CONTAINER_DIR");
	if (e && *e) {
		launch_snprintf(out, len, "%s", e);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *sl = strrchr(exe, '/');
		if (sl)
			*sl = '\0';
		launch_snprintf(out, len, "%s/../share/agentsafe/container",
				exe);
		if (access(out, R_OK) == 0)
			return 0;
	}
	launch_snprintf(out, len, "%s/container", AGENTSAFE_SOURCE_DIR);
	return access(out, R_OK) == 0 ? 0 : -ENOENT;
}

/* The extra CA bundle, checked by certs/ (CA certificates only, expired
 * ones dropped, FILE:LINE on error) and as canonical PEM with its SHA-256:
 * the image records the digest of the bundle it was built with. */
static int load_ca(const struct lcfg *c, struct certs_bundle **b,
		   char digest[65], char *err, size_t errlen)
{
	launch_snprintf(digest, 65, "none");
	*b = NULL;
	if (c->ca_bundle == NULL)
		return 0;
	int rc = certs_bundle_load(c->ca_bundle, b, err, errlen);
	if (rc != 0)
		return rc;
	size_t len = 0;
	const char *pem = certs_bundle_pem(*b, &len);
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)pem, len, md);
	for (size_t i = 0; i < sizeof md; i++)
		launch_snprintf(digest + 2 * i, 3, "%02x", md[i]);
	if (certs_bundle_skipped(*b) > 0)
		launch_diag(
		    "%s: %zu CA certificate(s), %zu expired or not yet valid "
		    "left out",
		    c->ca_bundle, certs_bundle_count(*b),
		    certs_bundle_skipped(*b));
	return 0;
}

/* Present, built by us for this uid/gid and CA bundle: use it. Built by us
 * for another user or CA: rebuild (the layer cache keeps that short).
 * Missing, or --build: build. An image we did not build (--image NAME
 * without our labels) is used as it is. */
int prepare_image(struct sess *s, char *err, size_t errlen)
{
	struct lcfg *c = s->cfg;
	struct certs_bundle *ca = NULL;
	char digest[65], uid[48], gid[48], why[256] = "";
	int rc = load_ca(c, &ca, digest, err, errlen);
	if (rc != 0)
		return rc;
	launch_snprintf(uid, sizeof uid, "%u", (unsigned)s->uid);
	launch_snprintf(gid, sizeof gid, "%u", (unsigned)s->gid);
	json_t *labels = NULL;
	int have = image_exists(s->d, c->image, &labels, err, errlen);
	if (have < 0) {
		certs_bundle_free(ca);
		return have;
	}
	if (have) {
		const char *lu =
		    json_string_value(json_object_get(labels, "agentsafe.uid"));
		const char *lg =
		    json_string_value(json_object_get(labels, "agentsafe.gid"));
		const char *lc = json_string_value(
		    json_object_get(labels, "agentsafe.extra_ca"));
		if (lu == NULL) {
			if (c->ca_bundle != NULL && !c->build)
				launch_diag(
				    "image %s was not built by "
				    "agentsafe-launch: %s is only mounted at "
				    "/run/agentsafe/extra-ca.pem",
				    c->image, c->ca_bundle);
		} else if (strcmp(lu, uid) != 0 ||
			   (lg != NULL && strcmp(lg, gid) != 0)) {
			launch_snprintf(
			    why, sizeof why,
			    "built for uid %s, the agent runs as %s", lu, uid);
		} else if (c->ssh_port != 0 && !json_is_string(json_object_get(
						   labels, "agentsafe.sshd"))) {
			launch_snprintf(why, sizeof why, "built without sshd");
		} else if (c->ca_bundle != NULL &&
			   (lc == NULL || strcmp(lc, digest) != 0)) {
			launch_snprintf(why, sizeof why,
					"built without the CA bundle %s",
					c->ca_bundle);
		}
	}
	json_decref(labels);
	if (have && !c->build && why[0] == '\0') {
		certs_bundle_free(ca);
		return 0;
	}
	char dir[PATH_MAX];
	if (container_dir(c, dir, sizeof dir) != 0) {
		launch_snprintf(
		    err, errlen,
		    "image %s is %s and no build context was found "
		    "(--container-dir DIR or AGENTSAFE_CONTAINER_DIR)",
		    c->image, have ? "to be rebuilt" : "missing");
		certs_bundle_free(ca);
		return -ENOENT;
	}
	if (!have)
		launch_diag("image %s not found: building it", c->image);
	else if (why[0] != '\0')
		launch_diag("image %s was %s: rebuilding it", c->image, why);
	const char *args[LCFG_MAX_LIST + 4];
	char auid[64], agid[64];
	launch_snprintf(auid, sizeof auid, "USER_UID=%s", uid);
	launch_snprintf(agid, sizeof agid, "USER_GID=%s", gid);
	size_t n = 0;
	args[n++] = auid;
	args[n++] = agid;
	if (c->ssh_port != 0)
		args[n++] = "WITH_SSHD=1";
	for (size_t i = 0; i < c->build_args.n; i++)
		args[n++] = c->build_args.v[i];
	args[n] = NULL;
	json_t *want =
	    json_pack("{s:s, s:s, s:s}", "agentsafe.uid", uid, "agentsafe.gid",
		      gid, "agentsafe.extra_ca", digest);
	if (want != NULL && c->ssh_port != 0)
		json_object_set_new(want, "agentsafe.sshd", json_string("1"));
	size_t calen = 0;
	const char *capem = ca ? certs_bundle_pem(ca, &calen) : NULL;
	/* The build's output in a log of its own (the user's, under sudo);
	 * the terminal gets one live line. */
	char logp[PATH_MAX], st[PATH_MAX];
	struct image_build_out o = {NULL, c->verbose};
	if (session_xdg_dir("STATE", st, sizeof st) == 0 &&
	    fs_mkdir_p(st, 0700, NULL, 0) == 0) {
		launch_snprintf(logp, sizeof logp, "%s/build.log", st);
		(void)unlink(logp);
		o.log_path = logp;
	}
	rc = want == NULL ? -ENOMEM
			  : image_build(s->d, c->image, dir, args, capem, calen,
					want, &o, err, errlen);
	if (o.log_path != NULL)
		launch_give_home(s, logp);
	json_decref(want);
	certs_bundle_free(ca);
	return rc;
}

int prepare_policy(const struct lcfg *c, char *out, size_t len)
{
	if (c->policy) {
		if (realpath(c->policy, out) == NULL) {
			int e = errno;
			launch_diag("--policy %s: %s", c->policy, strerror(e));
			return -e;
		}
	} else if (default_policy(out, len) != 0) {
		launch_diag(
		    "no policy: %s is missing and no example policy was "
		    "found; pass --policy FILE",
		    out);
		return -ENOENT;
	}
	return 0;
}

/* --ssh: the public keys sshd will accept, from
 * $XDG_CONFIG_HOME/agentsafe/authorized_keys when it exists, else every
 * public key file in ~/.ssh. Only lines that look like public keys are
 * taken. */
int prepare_ssh_keys(struct sess *s, char *err, size_t errlen)
{
	char cfg[4096], own[4200], pattern[4200];
	const char *home = getenv("HOME");
	glob_t g = {0};
	const char *const *files;
	const char *one[2] = {own, NULL};
	const char *from;
	if (session_xdg_dir("CONFIG", cfg, sizeof cfg) == 0 &&
	    launch_snprintf(own, sizeof own, "%s/authorized_keys", cfg) > 0 &&
	    access(own, R_OK) == 0) {
		files = one;
		from = own;
	} else {
		launch_snprintf(pattern, sizeof pattern, "%s/.ssh/*.pub",
				home ? home : "/nonexistent");
		if (glob(pattern, 0, NULL, &g) != 0)
			g.gl_pathc = 0;
		files = g.gl_pathc ? (const char *const *)g.gl_pathv : NULL;
		from = "~/.ssh/*.pub";
	}
	size_t cap = 65536, n = 0;
	char *keys = calloc(1, cap);
	for (size_t i = 0; keys != NULL && files != NULL && files[i]; i++) {
		FILE *in = fopen(files[i], "r");
		char line[8192];
		while (in != NULL && fgets(line, sizeof line, in) != NULL) {
			size_t l = strlen(line);
			bool key = strncmp(line, "ssh-", 4) == 0 ||
				   strncmp(line, "ecdsa-", 6) == 0 ||
				   strncmp(line, "sk-", 3) == 0;
			if (!key || n + l + 2 > cap)
				continue;
			memcpy(keys + n, line, l + 1); /* with its NUL */
			n += l;
			if (keys[n - 1] != '\n')
				keys[n++] = '\n';
		}
		if (in != NULL)
			(void)fclose(in); /* read only */
	}
	if (g.gl_pathc)
		globfree(&g);
	if (keys == NULL)
		return -ENOMEM;
	if (n == 0) {
		free(keys);
		launch_snprintf(
		    err, errlen,
		    "--ssh needs a public key: none found in %s (create "
		    "one with ssh-keygen, or list keys in "
		    "$XDG_CONFIG_HOME/agentsafe/authorized_keys)",
		    from);
		return -ENOENT;
	}
	s->ssh_keys = keys;
	return 0;
}
