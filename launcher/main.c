/* agentsafe-launch: one fenced session. Order of work: per-session git
 * clones, a per-session internal Docker network, the proxy on that
 * network's gateway, the nftables fence + NFLOG reader (the only step with
 * CAP_NET_ADMIN), a probe container that proves the fence, then the agent's
 * container; every exit path tears the same things down and prints where
 * the audit trail is. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <git2.h>
#include <jansson.h>
#include <openssl/sha.h>

#include "caps.h"
#include "certs.h"
#include "config.h"
#include "docker.h"
#include "egress_log.h"
#include "fence.h"
#include "nflog.h"
#include "gitiso.h"
#include "gpu.h"
#include "portfwd.h"
#include "image.h"
#include "probe.h"
#include "session.h"

#define PFX	    "agentsafe-launch: "
#define EXIT_LAUNCH 125 /* like `docker run`: the launcher itself failed */

#ifndef AGENTSAFE_SOURCE_DIR
#define AGENTSAFE_SOURCE_DIR "."
#endif

/* snprintf whose truncation is deliberate (paths are bounded by the
 * buffers the kernel accepts anyway); keeps -Wformat-truncation quiet. */
static int xsnprintf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int xsnprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

struct sess {
	struct lcfg *cfg;
	struct docker *d;
	char id[SESSION_ID_LEN + 1];
	char name[80], net[64], bridge[16], table[64];
	char container[128], probe[160];
	char state_dir[4096], log_path[4200], cache_dir[4096];
	char gateway[64];
	uint16_t proxy_port, group;
	pid_t proxy_pid;
	struct egress_log *log;
	struct fence_nflog *nflog;
	bool net_created, fence_applied, container_created, probe_created;
	pid_t fwd_pid; /* the loopback relay of published ports */
	int fwd_ctl;   /* its target, once the container has an address */
	bool caps_kept;
	struct gitiso_repo *repos[LCFG_MAX_LIST];
	size_t nrepos;
	char codex[PATH_MAX]; /* persistent Codex home */
	char *ssh_keys;	      /* --ssh: the public keys sshd accepts */
	uid_t uid, host_uid;  /* container user; the invoking user */
	gid_t gid, host_gid;
	json_t *devreq;
	bool tty;
	int ready_fd; /* --detach: tells the foreground parent we are up */
};

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	/* stderr is where failures are reported: if it fails, nowhere is. */
	(void)fputs(PFX, stderr);
	(void)vfprintf(stderr, fmt, ap);
	(void)fputc('\n', stderr);
	va_end(ap);
}

/* A uid or gid from the environment (SUDO_UID, SUDO_GID): decimal digits
 * in uid_t range, (uid_t)-1 excluded; anything else is -EINVAL, never 0. */
static int parse_id(const char *s, unsigned long *out)
{
	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' ||
	    v >= (unsigned long)(uid_t)-1)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Under sudo the launcher is root but the files are the user's: hand each
 * directory it created below base (and the leaf) to the invoking user, so
 * `agentsafe log` works for them later. Symlinks are never followed. */
static void give_to_user(const struct sess *s, const char *base,
			 const char *leaf)
{
	if (geteuid() != 0 || s->host_uid == 0)
		return;
	size_t bl = strlen(base);
	if (strncmp(leaf, base, bl) != 0)
		return;
	char p[4096];
	xsnprintf(p, sizeof p, "%s", leaf);
	for (;;) {
		struct stat st;
		if (lstat(p, &st) == 0 && !S_ISLNK(st.st_mode) &&
		    st.st_uid == 0 && lchown(p, s->host_uid, s->host_gid) != 0)
			diag("chown %s: %s", p, strerror(errno));
		char *sl = strrchr(p, '/');
		if (sl == NULL || (size_t)(sl - p) < bl)
			break;
		*sl = '\0';
	}
}

/* Set once the launcher dropped to its kept permitted set; before that
 * (root) every capability is effective and must stay so. */
static bool caps_dropped;

/* Raise/lower the kept file+kill capabilities, only after the drop. */
static bool files_on(void)
{
	return caps_dropped && caps_files(1) == 0;
}

static void files_off(bool was_on)
{
	if (was_on)
		caps_files(0);
}

/* ---- session.json ---- */

static void save_state(struct sess *s, bool finished)
{
	json_t *repos = json_array();
	for (size_t i = 0; i < s->nrepos; i++) {
		json_array_append_new(
		    repos, json_pack("{s:s,s:s,s:s,s:s,s:s}", "name",
				     gitiso_name(s->repos[i]), "host",
				     gitiso_host_repo(s->repos[i]), "clone",
				     gitiso_clone_path(s->repos[i]), "branch",
				     gitiso_branch(s->repos[i]), "base",
				     gitiso_base(s->repos[i])));
	}
	char started[40];
	egress_format_ts(started, sizeof started);
	const char *home = getenv("HOME");
	json_t *j = json_pack(
	    "{s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:b,s:o}",
	    "id", s->id, "name", s->name, "pid", (json_int_t)getpid(),
	    "network", s->net, "bridge", s->bridge, "table", s->table,
	    "container", s->container, "probe_container", s->probe,
	    "egress_log", s->log_path, "proxy_pid", (json_int_t)s->proxy_pid,
	    "nflog_group", (json_int_t)s->group, "proxy", s->gateway, "updated",
	    started, "finished", finished, "repos",
	    repos ? repos : json_array());
	char err[512];
	/* sudo: the state dir is the user's; writing it needs the kept
	 * DAC capability (a no-op when nothing was kept). */
	bool files = files_on();
	if (j == NULL || session_save(s->id, j, err, sizeof err) != 0)
		diag("cannot record session state: %s",
		     j ? err : "out of memory");
	json_decref(j);
	if (home != NULL && s->state_dir[0] != '\0') {
		char p[4300];
		xsnprintf(p, sizeof p, "%s/session.json", s->state_dir);
		give_to_user(s, home, p);
	}
	files_off(files);
}

/* ---- teardown ---- */

static void docker_delete_container(struct docker *d, const char *name)
{
	char path[512], err[512];
	long st = 0;
	xsnprintf(path, sizeof path, "/containers/%s?force=1&v=1", name);
	if (docker_call(d, "DELETE", path, NULL, &st, NULL, err, sizeof err) !=
		0 ||
	    (st >= 300 && st != 404))
		diag("removing container %s: %s", name, err);
}

static void docker_delete_network(struct docker *d, const char *name)
{
	char path[512], err[512];
	long st = 0;
	xsnprintf(path, sizeof path, "/networks/%s", name);
	if (docker_call(d, "DELETE", path, NULL, &st, NULL, err, sizeof err) !=
		0 ||
	    (st >= 300 && st != 404))
		diag("removing network %s: %s", name, err);
}

static void stop_child(pid_t pid, const char *what)
{
	if (pid <= 0)
		return;
	/* The proxy and the port relay may run as the sudo user: signalling
	 * them needs CAP_KILL, kept permitted for this. */
	bool k = files_on();
	int kr = kill(pid, SIGTERM);
	files_off(k);
	if (kr != 0 && errno != ESRCH) {
		diag("cannot stop %s (pid %d): %s", what, (int)pid,
		     strerror(errno));
		return;
	}
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		struct timespec ts = {0, 50L * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	k = files_on();
	kr = kill(pid, SIGKILL);
	files_off(k);
	if (kr == 0)
		waitpid(pid, NULL, 0);
}

static void remove_fence(const char *table, bool have)
{
	char err[512];
	if (!have) {
		diag("cannot remove nftables table %s: CAP_NET_ADMIN was "
		     "dropped; the next start sweeps it",
		     table);
		return;
	}
	int rc = caps_raise_net_admin(err, sizeof err);
	if (rc == 0)
		rc = fence_remove(table, err, sizeof err);
	if (rc != 0 && rc != -ENOENT)
		diag("removing nftables table %s: %s", table, err);
	caps_lower_net_admin();
}

static void finish_repos(struct gitiso_repo **repos, size_t n, bool keep)
{
	for (size_t i = 0; i < n; i++) {
		char summary[4096] = "", err[512] = "";
		if (keep) {
			fprintf(stderr,
				PFX "--keep: clone of %s kept at %s (branch "
				    "%s)\n",
				gitiso_host_repo(repos[i]),
				gitiso_clone_path(repos[i]),
				gitiso_branch(repos[i]));
		} else if (gitiso_finish(repos[i], summary, sizeof summary, err,
					 sizeof err) != 0) {
			diag("%s: %s", gitiso_host_repo(repos[i]), err);
		}
		if (summary[0] != '\0') {
			/* The summary may span lines; prefix each. */
			char *save = NULL;
			for (char *l = strtok_r(summary, "\n", &save); l;
			     l = strtok_r(NULL, "\n", &save))
				fprintf(stderr, PFX "%s\n", l);
		}
		gitiso_free(repos[i]);
		repos[i] = NULL;
	}
}

static void teardown(struct sess *s)
{
	if (s->fwd_ctl > 0)
		close(s->fwd_ctl);
	s->fwd_ctl = -1;
	stop_child(s->fwd_pid, "the port relay");
	s->fwd_pid = 0;
	if (s->container_created)
		docker_delete_container(s->d, s->container);
	if (s->probe_created)
		docker_delete_container(s->d, s->probe);
	stop_child(s->proxy_pid, "agentsafe-proxy");
	s->proxy_pid = 0;
	if (s->nflog != NULL) {
		(void)fence_nflog_dispatch(s->nflog); /* last drops */
		fence_nflog_free(s->nflog);
		s->nflog = NULL;
	}
	if (s->fence_applied)
		remove_fence(s->table, s->caps_kept);
	if (s->net_created)
		docker_delete_network(s->d, s->net);
	/* Clones owned by the agent's uid (root launcher): reading them for
	 * the fetch-back needs the file capabilities kept for this. */
	bool files = files_on();
	finish_repos(s->repos, s->nrepos, s->cfg->keep);
	files_off(files);
	s->nrepos = 0;
	if (s->id[0] != '\0') {
		save_state(s, true);
		fprintf(stderr, PFX "session %s ended; egress log: %s\n", s->id,
			s->log_path);
	}
	egress_log_close(s->log);
	s->log = NULL;
	json_decref(s->devreq);
	s->devreq = NULL;
	free(s->ssh_keys);
	s->ssh_keys = NULL;
}

/* ---- stale sweep ---- */

struct sweep {
	struct docker *d;
	bool caps;
};

static void sweep_session(const char *id, void *arg)
{
	struct sweep *w = arg;
	if (session_is_live(id))
		return;
	json_t *j = session_load(id);
	if (j == NULL || json_is_true(json_object_get(j, "finished"))) {
		json_decref(j);
		return;
	}
	diag("cleaning up session %s (its launcher is gone)", id);
	const char *c = json_string_value(json_object_get(j, "container"));
	const char *p =
	    json_string_value(json_object_get(j, "probe_container"));
	const char *n = json_string_value(json_object_get(j, "network"));
	const char *t = json_string_value(json_object_get(j, "table"));
	json_int_t ppid = json_integer_value(json_object_get(j, "proxy_pid"));
	if (c && *c)
		docker_delete_container(w->d, c);
	if (p && *p)
		docker_delete_container(w->d, p);
	if (ppid > 1) {
		char path[64], comm[64] = "";
		xsnprintf(path, sizeof path, "/proc/%lld/comm",
			  (long long)ppid);
		FILE *f = fopen(path, "r");
		if (f && fgets(comm, sizeof comm, f) &&
		    strncmp(comm, "agentsafe-proxy", 15) == 0)
			kill((pid_t)ppid, SIGTERM);
		if (f)
			(void)fclose(f); /* only read */
	}
	if (t && *t)
		remove_fence(t, w->caps);
	if (n && *n)
		docker_delete_network(w->d, n);
	json_t *repos = json_object_get(j, "repos");
	size_t i;
	json_t *r;
	json_array_foreach(repos, i, r)
	{
		struct gitiso_repo *g = NULL;
		char err[512];
		const char *h = json_string_value(json_object_get(r, "host"));
		const char *cl = json_string_value(json_object_get(r, "clone"));
		const char *b = json_string_value(json_object_get(r, "base"));
		if (!h || !cl || !b)
			continue;
		if (gitiso_resume(h, cl, id, b, &g, err, sizeof err) != 0) {
			diag("session %s: %s", id, err);
			continue;
		}
		finish_repos(&g, 1, false);
	}
	json_object_set_new(j, "finished", json_true());
	char err[512];
	(void)session_save(id, j, err, sizeof err);
	json_decref(j);
}

static void sweep_labelled(struct docker *d, const char *kind)
{
	char path[256], err[512];
	long st = 0;
	json_t *list = NULL;
	xsnprintf(
	    path, sizeof path,
	    "/%s?all=1&filters=%%7B%%22label%%22%%3A%%5B%%22%s%%22%%5D%%7D",
	    kind, DOCKER_LABEL_SESSION);
	if (docker_call(d, "GET", path, NULL, &st, &list, err, sizeof err) !=
		0 ||
	    st != 200) {
		json_decref(list);
		return;
	}
	size_t i;
	json_t *it;
	json_array_foreach(list, i, it)
	{
		const char *id = json_string_value(json_object_get(
		    json_object_get(it, "Labels"), DOCKER_LABEL_SESSION));
		const char *nid = json_string_value(json_object_get(it, "Id"));
		if (id == NULL || nid == NULL || session_is_live(id))
			continue;
		/* Only sessions of this user: ours have a state dir. */
		json_t *j = session_load(id);
		if (j == NULL)
			continue;
		json_decref(j);
		if (kind[0] == 'c')
			docker_delete_container(d, nid);
		else
			docker_delete_network(d, nid);
	}
	json_decref(list);
}

static void stale_sweep(struct docker *d, bool caps)
{
	struct sweep w = {d, caps};
	session_each(sweep_session, &w);
	sweep_labelled(d, "containers");
	sweep_labelled(d, "networks");
	if (caps) {
		char err[512];
		if (caps_raise_net_admin(err, sizeof err) == 0) {
			/* The owner recorded in each table decides, not our
			 * state dir: another user's live session has no state
			 * here and must keep its fence. */
			int n = fence_sweep(NULL, NULL, err, sizeof err);
			if (n < 0)
				diag("sweeping stale nftables tables: %s", err);
			else if (n > 0)
				diag("removed %d stale nftables table(s)", n);
		}
		caps_lower_net_admin();
	}
}

/* ---- setup steps ---- */

static int default_policy(char *out, size_t len)
{
	char cfg[4096];
	if (session_xdg_dir("CONFIG", cfg, sizeof cfg) != 0)
		return -ENOENT;
	xsnprintf(out, len, "%s/policy.yaml", cfg);
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
		xsnprintf(c0, sizeof c0,
			  "%s/../share/agentsafe/examples/policy.yaml", exe);
		cands[0] = c0;
	}
	xsnprintf(ex, sizeof ex, "%s/examples/policy.yaml",
		  AGENTSAFE_SOURCE_DIR);
	cands[1] = ex;
	for (size_t i = 0; i < 2; i++) {
		if (cands[i] == NULL)
			continue;
		FILE *in = fopen(cands[i], "rb");
		if (in == NULL)
			continue;
		if (session_mkdirs(cfg, 0700) != 0) {
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
		    parse_id(su, &uid) == 0 &&
		    (sg == NULL || parse_id(sg, &gid) == 0)) {
			struct sess tmp = {0};
			tmp.host_uid = (uid_t)uid;
			tmp.host_gid = (gid_t)gid;
			give_to_user(&tmp, home, out);
		}
		diag("created %s from %s: review it, then edit as needed", out,
		     cands[i]);
		return 0;
	}
	return -ENOENT;
}

static int container_dir(const struct lcfg *c, char *out, size_t len)
{
	if (c->container_dir) {
		xsnprintf(out, len, "%s", c->container_dir);
		return 0;
	}
	const char *e = getenv("AGENTSAFE_CONTAINER_DIR");
	if (e && *e) {
		xsnprintf(out, len, "%s", e);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *sl = strrchr(exe, '/');
		if (sl)
			*sl = '\0';
		xsnprintf(out, len, "%s/../share/agentsafe/container", exe);
		if (access(out, R_OK) == 0)
			return 0;
	}
	xsnprintf(out, len, "%s/container", AGENTSAFE_SOURCE_DIR);
	return access(out, R_OK) == 0 ? 0 : -ENOENT;
}

/* The extra CA bundle, checked by certs/ (CA certificates only, expired
 * ones dropped, FILE:LINE on error) and as canonical PEM with its SHA-256:
 * the image records the digest of the bundle it was built with. */
static int load_ca(const struct lcfg *c, struct certs_bundle **b,
		   char digest[65], char *err, size_t errlen)
{
	xsnprintf(digest, 65, "none");
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
		xsnprintf(digest + 2 * i, 3, "%02x", md[i]);
	if (certs_bundle_skipped(*b) > 0)
		diag("%s: %zu CA certificate(s), %zu expired or not yet valid "
		     "left out",
		     c->ca_bundle, certs_bundle_count(*b),
		     certs_bundle_skipped(*b));
	return 0;
}

/* Present, built by us for this uid/gid and CA bundle: use it. Built by us
 * for another user or CA: rebuild (the layer cache keeps that short).
 * Missing, or --build: build. An image we did not build (--image NAME
 * without our labels) is used as it is. */
static int ensure_image(struct sess *s, char *err, size_t errlen)
{
	struct lcfg *c = s->cfg;
	struct certs_bundle *ca = NULL;
	char digest[65], uid[48], gid[48], why[256] = "";
	int rc = load_ca(c, &ca, digest, err, errlen);
	if (rc != 0)
		return rc;
	xsnprintf(uid, sizeof uid, "%u", (unsigned)s->uid);
	xsnprintf(gid, sizeof gid, "%u", (unsigned)s->gid);
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
				diag("image %s was not built by "
				     "agentsafe-launch: %s is only mounted at "
				     "/run/agentsafe/extra-ca.pem",
				     c->image, c->ca_bundle);
		} else if (strcmp(lu, uid) != 0 ||
			   (lg != NULL && strcmp(lg, gid) != 0)) {
			xsnprintf(why, sizeof why,
				  "built for uid %s, the agent runs as %s", lu,
				  uid);
		} else if (c->ssh_port != 0 && !json_is_string(json_object_get(
						   labels, "agentsafe.sshd"))) {
			xsnprintf(why, sizeof why, "built without sshd");
		} else if (c->ca_bundle != NULL &&
			   (lc == NULL || strcmp(lc, digest) != 0)) {
			xsnprintf(why, sizeof why,
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
		xsnprintf(err, errlen,
			  "image %s is %s and no build context was found "
			  "(--container-dir DIR or AGENTSAFE_CONTAINER_DIR)",
			  c->image, have ? "to be rebuilt" : "missing");
		certs_bundle_free(ca);
		return -ENOENT;
	}
	if (!have)
		diag("image %s not found: building it", c->image);
	else if (why[0] != '\0')
		diag("image %s was %s: rebuilding it", c->image, why);
	const char *args[LCFG_MAX_LIST + 4];
	char auid[64], agid[64];
	xsnprintf(auid, sizeof auid, "USER_UID=%s", uid);
	xsnprintf(agid, sizeof agid, "USER_GID=%s", gid);
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
	rc = want == NULL ? -ENOMEM
			  : image_build(s->d, c->image, dir, args, capem, calen,
					want, err, errlen);
	json_decref(want);
	certs_bundle_free(ca);
	return rc;
}

static int prepare_repos(struct sess *s, char *err, size_t errlen)
{
	struct lcfg *c = s->cfg;
	char cwd[PATH_MAX];
	const char *list[LCFG_MAX_LIST];
	size_t n = 0;
	if (c->repos.n == 0) {
		/* Default: the repo containing the current directory, if any.
		 */
		git_buf root = {0};
		git_libgit2_init();
		if (getcwd(cwd, sizeof cwd) != NULL &&
		    git_repository_discover(&root, cwd, 0, NULL) == 0)
			list[n++] = cwd;
		git_buf_dispose(&root);
		git_libgit2_shutdown();
		if (n == 0)
			diag("the current directory is not in a git repo: no "
			     "repo mounted (use --repo PATH)");
	} else {
		for (size_t i = 0; i < c->repos.n; i++)
			list[n++] = c->repos.v[i];
	}
	for (size_t i = 0; i < n; i++) {
		int rc = gitiso_prepare(list[i], s->cache_dir, s->id,
					&s->repos[s->nrepos], err, errlen);
		if (rc != 0)
			return rc;
		struct gitiso_repo *r = s->repos[s->nrepos++];
		diag("%s", gitiso_prepare_summary(r));
		if (s->uid != geteuid() &&
		    (rc = gitiso_chown(r, s->uid, s->gid, err, errlen)) != 0)
			return rc;
	}
	/* Kept clones must be reachable by the user (sudo). */
	char sd[4200];
	xsnprintf(sd, sizeof sd, "%s/%s", s->cache_dir, s->id);
	if (getenv("HOME") != NULL && s->nrepos > 0)
		give_to_user(s, getenv("HOME"), sd);
	/* The persistent Codex home, owned by the agent's uid. */
	char p[PATH_MAX];
	if (session_xdg_dir("DATA", p, sizeof p) == 0) {
		xsnprintf(s->codex, sizeof s->codex, "%s/codex", p);
		if (session_mkdirs(s->codex, 0700) != 0 ||
		    (s->uid != geteuid() &&
		     chown(s->codex, s->uid, s->gid) != 0)) {
			diag("%s: %s; Codex logins will not persist", s->codex,
			     strerror(errno));
			s->codex[0] = '\0';
		} else if (getenv("HOME") != NULL) {
			give_to_user(s, getenv("HOME"), s->codex);
		}
	}
	save_state(s, false);
	return 0;
}

static int create_network(struct sess *s, char *err, size_t errlen)
{
	json_t *b = docker_network_body(s->net, s->bridge, s->id);
	long st = 0;
	json_t *r = NULL;
	if (b == NULL)
		return -ENOMEM;
	int rc = docker_call(s->d, "POST", "/networks/create", b, &st, &r, err,
			     errlen);
	json_decref(b);
	json_decref(r);
	if (rc == 0 && st != 201) {
		rc = -EIO;
	}
	if (rc != 0)
		return rc;
	s->net_created = true;
	save_state(s, false);
	char path[256];
	xsnprintf(path, sizeof path, "/networks/%s", s->net);
	rc = docker_call(s->d, "GET", path, NULL, &st, &r, err, errlen);
	if (rc == 0 && st == 200) {
		json_t *cfg = json_array_get(
		    json_object_get(json_object_get(r, "IPAM"), "Config"), 0);
		const char *gw =
		    json_string_value(json_object_get(cfg, "Gateway"));
		struct in_addr a;
		if (gw && inet_pton(AF_INET, gw, &a) == 1)
			xsnprintf(s->gateway, sizeof s->gateway, "%s", gw);
	}
	json_decref(r);
	if (s->gateway[0] == '\0') {
		xsnprintf(err, errlen,
			  "network %s: the engine reported no IPv4 gateway",
			  s->net);
		return -EIO;
	}
	return 0;
}

static void exe_dir_path(const char *name, char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	out[0] = '\0';
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *sl = strrchr(exe, '/');
	if (sl == NULL)
		return;
	*sl = '\0';
	xsnprintf(out, len, "%s/%s", exe, name);
	if (access(out, X_OK) != 0)
		out[0] = '\0';
}

static int start_proxy(struct sess *s, const char *policy, char *err,
		       size_t errlen)
{
	struct lcfg *c = s->cfg;
	char plog[4300], listen[96], bin[PATH_MAX];
	xsnprintf(plog, sizeof plog, "%s/proxy.log", s->state_dir);
	xsnprintf(listen, sizeof listen, "%s:0", s->gateway);
	exe_dir_path("agentsafe-proxy", bin, sizeof bin);
	bool drop_user = geteuid() == 0 && s->host_uid != 0;
	int lfd = open(plog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (lfd < 0) {
		int e = errno;
		xsnprintf(err, errlen, "%s: %s", plog, strerror(e));
		return -e;
	}
	if (getenv("HOME") != NULL)
		give_to_user(s, getenv("HOME"), plog);
	/* Run as the invoking user (sudo): hand over the log and policy as
	 * descriptors, since the user may not be able to reach root's paths. */
	int egress_fd = -1, policy_fd = -1;
	if (drop_user) {
		egress_fd =
		    open(s->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			 0600);
		policy_fd = open(policy, O_RDONLY | O_CLOEXEC);
		if (egress_fd < 0 || policy_fd < 0 ||
		    fchown(egress_fd, s->host_uid, s->host_gid) != 0) {
			int e = errno;
			xsnprintf(err, errlen, "handing files to the proxy: %s",
				  strerror(e));
			close(lfd);
			if (egress_fd >= 0)
				close(egress_fd);
			if (policy_fd >= 0)
				close(policy_fd);
			return -e;
		}
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(lfd);
		xsnprintf(err, errlen, "fork: %s", strerror(e));
		return -e;
	}
	if (pid == 0) {
		/* Own process group: a Ctrl-C meant for the agent must not
		 * take the proxy down first. Dies with the launcher. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(lfd, 1);
		dup2(lfd, 2);
		const char *lp = s->log_path, *pp = policy;
		if (drop_user) {
			dup2(egress_fd, 3);
			dup2(policy_fd, 4);
			lp = "/dev/fd/3";
			pp = "/dev/fd/4";
			if (setgroups(0, NULL) != 0 ||
			    setgid(s->host_gid) != 0 ||
			    setuid(s->host_uid) != 0)
				_exit(126);
			/* The real paths when the user can use them: records
			 * then name the policy file the user edits, a SIGHUP
			 * reload sees an editor's save-by-rename and SIGUSR1
			 * follows a rotated log. The fds are the fallback for
			 * files only root can open. */
			if (access(policy, R_OK) == 0)
				pp = policy;
			if (access(s->log_path, W_OK) == 0)
				lp = s->log_path;
		}
		const char *argv[16];
		size_t n = 0;
		argv[n++] = "agentsafe-proxy";
		argv[n++] = "--policy";
		argv[n++] = pp;
		argv[n++] = "--listen";
		argv[n++] = listen;
		argv[n++] = "--log";
		argv[n++] = lp;
		argv[n++] = "--session";
		argv[n++] = s->id;
		if (c->hosts) {
			argv[n++] = "--hosts";
			argv[n++] = c->hosts;
		}
		if (c->dns) {
			argv[n++] = "--dns";
			argv[n++] = c->dns;
		}
		argv[n] = NULL;
		if (bin[0])
			execv(bin, (char *const *)argv);
		execvp("agentsafe-proxy", (char *const *)argv);
		fprintf(stderr, "exec agentsafe-proxy: %s\n", strerror(errno));
		_exit(127);
	}
	close(lfd);
	if (egress_fd >= 0)
		close(egress_fd);
	if (policy_fd >= 0)
		close(policy_fd);
	s->proxy_pid = pid;
	save_state(s, false);
	/* Wait for "listening on ADDR:PORT" (port 0 was asked for). */
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(plog, "r");
		char line[512];
		while (f && fgets(line, sizeof line, f)) {
			const char *p = strstr(line, "listening on ");
			const char *colon = p ? strrchr(p, ':') : NULL;
			if (colon) {
				long port = strtol(colon + 1, NULL, 10);
				if (port > 0 && port < 65536) {
					s->proxy_port = (uint16_t)port;
					(void)fclose(f); /* only read */
					return 0;
				}
			}
		}
		if (f)
			(void)fclose(f); /* only read */
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			s->proxy_pid = 0;
			char tail[1024] = "";
			f = fopen(plog, "r");
			size_t r = f ? fread(tail, 1, sizeof tail - 1, f) : 0;
			tail[r] = '\0';
			if (f)
				(void)fclose(f); /* only read */
			xsnprintf(err, errlen,
				  "agentsafe-proxy exited at start (%d): %s",
				  WIFEXITED(status) ? WEXITSTATUS(status) : -1,
				  tail);
			return -EIO;
		}
		struct timespec ts = {0, 50L * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	xsnprintf(err, errlen,
		  "agentsafe-proxy did not report listening in "
		  "10 s (see %s)",
		  plog);
	return -ETIMEDOUT;
}

static int apply_fence(struct sess *s, char *err, size_t errlen)
{
	struct fence_config fc;
	memset(&fc, 0, sizeof fc);
	xsnprintf(fc.table, sizeof fc.table, "%s", s->table);
	xsnprintf(fc.bridge, sizeof fc.bridge, "%s", s->bridge);
	inet_pton(AF_INET, s->gateway, &fc.proxy_addr);
	fc.proxy_port = s->proxy_port;
	for (size_t i = 0; i < s->cfg->npublish && i < FENCE_MAX_PUBLISHED;
	     i++) {
		fc.published[i].first = s->cfg->publish[i].first;
		fc.published[i].last = s->cfg->publish[i].last;
		fc.npublished++;
	}
	int rc = caps_raise_net_admin(err, errlen);
	if (rc != 0)
		return rc;
	/* NFLOG groups are per host: derive one from the id and step on
	 * when another session holds it. */
	unsigned base = (unsigned)strtoul(s->id + SESSION_ID_LEN - 4, NULL, 16);
	for (unsigned i = 0; i < 64; i++) {
		s->group = (uint16_t)(1000 + (base + i) % 60000);
		rc = fence_nflog_open(s->group, s->log, &s->nflog, err, errlen);
		if (rc == 0)
			break;
	}
	if (rc == 0) {
		fc.nflog_group = s->group;
		rc = fence_apply(&fc, err, errlen);
		if (rc == 0)
			s->fence_applied = true;
	}
	char e2[256];
	int drc = caps_drop_all_keep(
	    1, s->uid != geteuid() || s->host_uid != geteuid(), e2, sizeof e2);
	caps_dropped = true;
	if (drc != 0 && rc == 0) {
		xsnprintf(err, errlen, "%s", e2);
		rc = drc;
	}
	save_state(s, false);
	return rc;
}

/* ---- containers ---- */

struct spec_store {
	const char *env[20];
	char envbuf[10][512];
	const char *binds[LCFG_MAX_LIST * 4 + 8];
	char bindbuf[LCFG_MAX_LIST * 4 + 8][PATH_MAX * 2 + 16];
	char user[64];
	char workdir[PATH_MAX];
	const char *cmd[LCFG_MAX_LIST + 4];
};

static void add_bind(struct spec_store *st, size_t *n, const char *src,
		     const char *dst, bool ro)
{
	xsnprintf(st->bindbuf[*n], sizeof st->bindbuf[*n], "%s:%s%s", src, dst,
		  ro ? ":ro" : "");
	st->binds[*n] = st->bindbuf[*n];
	(*n)++;
}

/* Whether the session runs this agent: `-- COMMAND` by the command's name
 * (`-- codex login --device-auth`), otherwise --agent. */
static bool runs_agent(const struct lcfg *c, const char *agent)
{
	if (c->command != NULL && c->ncommand > 0) {
		const char *b = strrchr(c->command[0], '/');
		return strcmp(b ? b + 1 : c->command[0], agent) == 0;
	}
	return c->agent != NULL && strcmp(c->agent, agent) == 0;
}

static void build_spec(struct sess *s, struct spec_store *st,
		       struct docker_container_spec *sp)
{
	struct lcfg *c = s->cfg;
	memset(sp, 0, sizeof *sp);
	size_t ne = 0;
	char proxy[128];
	xsnprintf(proxy, sizeof proxy, "http://%s:%u", s->gateway,
		  (unsigned)s->proxy_port);
	const char *keys[] = {"HTTPS_PROXY", "HTTP_PROXY", "https_proxy",
			      "http_proxy"};
	for (size_t i = 0; i < 4; i++) {
		xsnprintf(st->envbuf[i], sizeof st->envbuf[i], "%s=%s", keys[i],
			  proxy);
		st->env[ne++] = st->envbuf[i];
	}
	st->env[ne++] = "NO_PROXY=localhost,127.0.0.1";
	st->env[ne++] = "no_proxy=localhost,127.0.0.1";
	xsnprintf(st->envbuf[4], sizeof st->envbuf[4], "AGENTSAFE_SESSION=%s",
		  s->id);
	st->env[ne++] = st->envbuf[4];
	xsnprintf(st->envbuf[5], sizeof st->envbuf[5],
		  "AGENTSAFE_PROBE_PROXY=%s", proxy);
	st->env[ne++] = st->envbuf[5];
	st->env[ne++] = "HOME=/home/agent";
	const char *term = getenv("TERM");
	if (s->tty && term && strlen(term) < 64) {
		xsnprintf(st->envbuf[6], sizeof st->envbuf[6], "TERM=%s", term);
		st->env[ne++] = st->envbuf[6];
	}
	if (c->ssh_port != 0) {
		st->env[ne++] = "AGENTSAFE_SSHD=1";
		xsnprintf(st->envbuf[7], sizeof st->envbuf[7],
			  "AGENTSAFE_SSHD_PORT=%u", (unsigned)c->ssh_port);
		st->env[ne++] = st->envbuf[7];
	}
	st->env[ne] = NULL;

	size_t nb = 0;
	for (size_t i = 0; i < s->nrepos; i++) {
		char dst[PATH_MAX];
		xsnprintf(dst, sizeof dst, "/work/%s",
			  gitiso_name(s->repos[i]));
		add_bind(st, &nb, gitiso_clone_path(s->repos[i]), dst, false);
		const char *const *ro = gitiso_readonly_paths(s->repos[i]);
		for (size_t k = 0;
		     ro && ro[k] && nb + 6 < (size_t)LCFG_MAX_LIST * 4; k++)
			add_bind(st, &nb, ro[k], ro[k], true);
	}
	const char *home = getenv("HOME");
	char p[PATH_MAX];
	/* Each agent's credentials enter only its own sessions: a shell or a
	 * Codex session never sees the Claude login, and the other way round.
	 */
	if (home && runs_agent(c, "claude")) {
		xsnprintf(p, sizeof p, "%s/.claude", home);
		if (access(p, F_OK) == 0)
			add_bind(st, &nb, p, "/run/agentsafe/seed/claude",
				 true);
		xsnprintf(p, sizeof p, "%s/.claude.json", home);
		if (access(p, F_OK) == 0)
			add_bind(st, &nb, p, "/run/agentsafe/seed/claude.json",
				 true);
	}
	if (s->codex[0] != '\0' && runs_agent(c, "codex"))
		add_bind(st, &nb, s->codex, "/home/agent/.codex", false);
	if (c->ca_bundle) {
		char real[PATH_MAX];
		if (realpath(c->ca_bundle, real) != NULL)
			add_bind(st, &nb, real, "/run/agentsafe/extra-ca.pem",
				 true);
	}
	xsnprintf(p, sizeof p, "%s/resolv.conf", s->state_dir);
	add_bind(st, &nb, p, "/etc/resolv.conf", true);
	if (c->ssh_port != 0) {
		xsnprintf(p, sizeof p, "%s/authorized_keys", s->state_dir);
		add_bind(st, &nb, p, "/run/agentsafe/seed/authorized_keys",
			 true);
	}
	st->binds[nb] = NULL;

	xsnprintf(st->user, sizeof st->user, "%u:%u", (unsigned)s->uid,
		  (unsigned)s->gid);
	if (s->nrepos == 1)
		xsnprintf(st->workdir, sizeof st->workdir, "/work/%s",
			  gitiso_name(s->repos[0]));
	else
		xsnprintf(st->workdir, sizeof st->workdir, "/work");
	size_t nc = 0;
	if (c->command) {
		for (size_t i = 0; i < c->ncommand && i < LCFG_MAX_LIST; i++)
			st->cmd[nc++] = c->command[i];
	} else if (strcmp(c->agent, "shell") == 0) {
		st->cmd[nc++] = "bash";
	} else {
		st->cmd[nc++] = c->agent;
	}
	st->cmd[nc] = NULL;
	sp->image = c->image;
	sp->cmd = st->cmd;
	sp->user = st->user;
	sp->workdir = st->workdir;
	sp->env = st->env;
	sp->binds = st->binds;
	sp->network = s->net;
	sp->session = s->id;
	/* Docker's embedded resolver (127.0.0.11, on every user-defined
	 * network) forwards what it cannot answer to these servers. A
	 * loopback server would be dialled from the host's namespace on some
	 * engine versions, past the fence; the session gateway is dialled
	 * from the container's, where the fence drops and logs it. */
	sp->dns = s->gateway;
	sp->tty = s->tty;
	sp->open_stdin = true;
	sp->stdin_once = !c->detach;
	sp->memory = c->memory;
	sp->nano_cpus = c->nano_cpus;
	/* No PortBindings: Docker publishes nothing on an internal network;
	 * the launcher's own relay does it (start_publish). */
	sp->publish = NULL;
	sp->npublish = 0;
	sp->device_requests = s->devreq;
}

static int create_container(struct sess *s, const char *name,
			    const struct docker_container_spec *sp, char *err,
			    size_t errlen)
{
	json_t *b = docker_container_body(sp);
	if (b == NULL)
		return -ENOMEM;
	char path[256];
	xsnprintf(path, sizeof path, "/containers/create?name=%s", name);
	long st = 0;
	int rc = docker_call(s->d, "POST", path, b, &st, NULL, err, errlen);
	json_decref(b);
	if (rc == 0 && st != 201)
		rc = -EIO;
	return rc;
}

static int start_container(struct sess *s, const char *name, char *err,
			   size_t errlen)
{
	char path[256];
	xsnprintf(path, sizeof path, "/containers/%s/start", name);
	long st = 0;
	int rc = docker_call(s->d, "POST", path, NULL, &st, NULL, err, errlen);
	if (rc == 0 && st != 204 && st != 304)
		rc = -EIO;
	return rc;
}

static int wait_container(struct docker *d, const char *name, int *code)
{
	char path[256], err[512];
	xsnprintf(path, sizeof path, "/containers/%s/wait", name);
	long st = 0;
	json_t *r = NULL;
	int rc = docker_call(d, "POST", path, NULL, &st, &r, err, sizeof err);
	if (rc == 0 && st == 200)
		*code =
		    (int)json_integer_value(json_object_get(r, "StatusCode"));
	else
		rc = rc ? rc : -EIO;
	if (rc != 0)
		diag("waiting for %s: %s", name, err);
	json_decref(r);
	return rc;
}

static int attach_fd(struct docker *d, const char *name, bool in, char *err,
		     size_t errlen)
{
	char path[512];
	xsnprintf(path, sizeof path,
		  "/containers/%s/attach?stream=1&stdout=1&stderr=1&stdin=%d"
		  "&detachKeys=ctrl-p,ctrl-q",
		  name, in ? 1 : 0);
	int fd = -1;
	int rc = docker_hijack(d, path, NULL, &fd, err, errlen);
	return rc == 0 ? fd : rc;
}

struct outbuf {
	char *buf;
	size_t len;
};

static void out_collect(int stream, const unsigned char *data, size_t len,
			void *arg)
{
	(void)stream;
	struct outbuf *o = arg;
	if (o->len + len > 65536)
		return;
	char *nb = realloc(o->buf, o->len + len + 1);
	if (nb == NULL)
		return;
	o->buf = nb;
	memcpy(o->buf + o->len, data, len);
	o->len += len;
	o->buf[o->len] = '\0';
}

static int run_probe(struct sess *s, const struct docker_container_spec *main,
		     char *err, size_t errlen)
{
	struct lcfg *c = s->cfg;
	struct probe_target allow[LCFG_MAX_LIST], deny[LCFG_MAX_LIST],
	    direct[LCFG_MAX_LIST];
	size_t na = 0, nd = 0, ndir = 0;
	for (size_t i = 0; i < c->probe_allow.n; i++, na++) {
		lcfg_parse_target(c->probe_allow.v[i], allow[na].host,
				  sizeof allow[na].host, &allow[na].port, 443);
		char ip[64];
		struct in_addr a;
		if (inet_pton(AF_INET, allow[na].host, &a) == 1)
			xsnprintf(ip, sizeof ip, "%s", allow[na].host);
		else if (!c->hosts ||
			 probe_hosts_lookup(c->hosts, allow[na].host, ip,
					    sizeof ip) != 0)
			continue;
		/* Loopback inside the container is its own: no fence test. */
		if (strncmp(ip, "127.", 4) == 0)
			continue;
		xsnprintf(direct[ndir].host, sizeof direct[ndir].host, "%s",
			  ip);
		direct[ndir++].port = allow[na].port;
	}
	for (size_t i = 0; i < c->probe_deny.n; i++, nd++)
		lcfg_parse_target(c->probe_deny.v[i], deny[nd].host,
				  sizeof deny[nd].host, &deny[nd].port, 443);
	struct probe_plan pl = {
	    .dns_name = na ? allow[0].host : "agentsafe-probe.test",
	    .gateway = s->gateway,
	    .gateway_port = 80,
	    .allow = allow,
	    .nallow = na,
	    .deny = deny,
	    .ndeny = nd,
	    .direct = direct,
	    .ndirect = ndir,
	};
	char *script = probe_script(&pl);
	if (script == NULL) {
		xsnprintf(err, errlen, "probe: cannot build the script");
		return -ENOMEM;
	}
	struct docker_container_spec sp = *main;
	const char *ep[] = {"/bin/sh", "-c", NULL};
	const char *cmd[] = {script, NULL};
	sp.entrypoint = ep;
	sp.cmd = cmd;
	sp.tty = false;
	sp.open_stdin = false;
	sp.stdin_once = false;
	sp.binds = NULL; /* the probe needs nothing of the user's */
	sp.npublish = 0;
	sp.device_requests = NULL;
	sp.workdir = "/";
	int rc = create_container(s, s->probe, &sp, err, errlen);
	free(script);
	if (rc != 0)
		return rc;
	s->probe_created = true;
	int fd = attach_fd(s->d, s->probe, false, err, errlen);
	if (fd < 0)
		return fd;
	if ((rc = start_container(s, s->probe, err, errlen)) != 0) {
		close(fd);
		return rc;
	}
	struct docker_demux dm = {0};
	struct outbuf o = {0};
	unsigned char buf[4096];
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int pr = poll(&p, 1, 120000);
		if (pr <= 0)
			break;
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0)
			break;
		if (docker_demux_feed(&dm, buf, (size_t)r, out_collect, &o) !=
		    0)
			break;
	}
	close(fd);
	int code = -1;
	(void)wait_container(s->d, s->probe, &code);
	docker_delete_container(s->d, s->probe);
	s->probe_created = false;
	if (o.buf) {
		char *save = NULL;
		for (char *l = strtok_r(o.buf, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save))
			fprintf(stderr, PFX "%s\n",
				strncmp(l, "agentsafe-probe: ", 17) == 0
				    ? l + 17
				    : l);
	}
	free(o.buf);
	if (code != 0) {
		xsnprintf(err, errlen,
			  "self-verification failed (probe exit %d): the "
			  "session does not start",
			  code);
		return -EPERM;
	}
	diag("self-verification passed");
	return 0;
}

/* ---- the I/O loop ---- */

static struct termios saved_tio;
static bool tio_saved;

static void tty_restore(void)
{
	if (tio_saved)
		tcsetattr(0, TCSANOW, &saved_tio);
	tio_saved = false;
}

static void resize(struct docker *d, const char *name)
{
	struct winsize ws;
	if (ioctl(1, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0)
		return;
	char path[256], err[256];
	long st;
	xsnprintf(path, sizeof path, "/containers/%s/resize?h=%u&w=%u", name,
		  ws.ws_row, ws.ws_col);
	(void)docker_call(d, "POST", path, NULL, &st, NULL, err, sizeof err);
}

static void out_write(int stream, const unsigned char *data, size_t len,
		      void *arg)
{
	bool *discard = arg;
	if (*discard)
		return;
	int fd = stream == 2 ? 2 : 1;
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		data += w;
		len -= (size_t)w;
	}
}

enum loop_end { END_CONTAINER, END_SIGNAL, END_PROXY };

/* Relays stdin/out until the attach stream ends, a signal arrives or the
 * proxy dies; feeds NFLOG drops to the egress log meanwhile. */
static enum loop_end io_loop(struct sess *s, struct docker *d, const char *name,
			     int afd, bool tty, bool in, bool discard, int sfd,
			     int *sig, bool half_close)
{
	struct docker_demux dm = {0};
	unsigned char buf[16384];
	bool in_open = in;
	for (;;) {
		struct pollfd p[4];
		int np = 0;
		p[np++] = (struct pollfd){afd, POLLIN, 0};
		p[np++] = (struct pollfd){sfd, POLLIN, 0};
		int nfd = s && s->nflog ? fence_nflog_fd(s->nflog) : -1;
		p[np++] = (struct pollfd){nfd, POLLIN, 0};
		p[np++] = (struct pollfd){in_open ? 0 : -1, POLLIN, 0};
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			return END_CONTAINER;
		}
		if (p[2].revents & POLLIN)
			(void)fence_nflog_dispatch(s->nflog);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				int sg = (int)si.ssi_signo;
				if (sg == SIGUSR1 || sg == SIGUSR2) {
					/* ignored, see block_signals() */
				} else if (sg == SIGWINCH) {
					if (tty)
						resize(d, name);
				} else if (sg == SIGCHLD) {
					if (s && s->proxy_pid > 0 &&
					    waitpid(s->proxy_pid, NULL,
						    WNOHANG) == s->proxy_pid) {
						s->proxy_pid = 0;
						return END_PROXY;
					}
				} else {
					*sig = sg;
					return END_SIGNAL;
				}
			}
		}
		if (p[3].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(0, buf, sizeof buf);
			if (r > 0) {
				size_t off = 0;
				while (off < (size_t)r) {
					ssize_t w = write(afd, buf + off,
							  (size_t)r - off);
					if (w < 0 && errno == EINTR)
						continue;
					if (w <= 0)
						break;
					off += (size_t)w;
				}
			} else if (r == 0 || errno != EINTR) {
				/* EOF: the agent's stdin closes; its output
				 * keeps coming. */
				in_open = false;
				/* A StdinOnce container sees EOF; for a
				 * long-lived one the engine would end the
				 * whole attach, so just stop reading. */
				if (half_close)
					shutdown(afd, SHUT_WR);
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(afd, buf, sizeof buf);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return END_CONTAINER;
			if (tty)
				out_write(1, buf, (size_t)r, &discard);
			else if (docker_demux_feed(&dm, buf, (size_t)r,
						   out_write, &discard) != 0)
				return END_CONTAINER;
		}
	}
}

static int block_signals(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGINT);
	sigaddset(&m, SIGTERM);
	sigaddset(&m, SIGHUP);
	sigaddset(&m, SIGQUIT);
	sigaddset(&m, SIGWINCH);
	sigaddset(&m, SIGCHLD);
	/* Meant for the proxy (log reopen) when sent to the wrong pid: read
	 * and ignored, never the default end without teardown. */
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	/* Fails only for an invalid signal number, which SIGPIPE is not. */
	(void)signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* ---- commands ---- */

static void ids_from_env(struct sess *s)
{
	s->host_uid = getuid();
	s->host_gid = getgid();
	const char *su = getenv("SUDO_UID"), *sg = getenv("SUDO_GID");
	unsigned long uid = 0, gid = 0;
	if (s->host_uid == 0 && su && sg) {
		if (parse_id(su, &uid) != 0 || parse_id(sg, &gid) != 0) {
			diag("ignoring SUDO_UID=%s SUDO_GID=%s: not a numeric "
			     "user and group id",
			     su, sg);
		} else if (uid > 0) {
			s->host_uid = (uid_t)uid;
			s->host_gid = (gid_t)gid;
		}
	}
	/* The agent never runs as root: a root launcher without sudo hands
	 * the container (and the clones) to 1000:1000. */
	s->uid = s->host_uid ? s->host_uid : 1000;
	s->gid = s->host_uid ? s->host_gid : 1000;
}

static bool have_net_admin(void)
{
	return caps_net_admin_permitted() != 0;
}

/* --publish/--ssh (see portfwd.h): the relay binds and forks while the
 * launcher may still set its ids (before the fence drops capabilities);
 * it learns the container's address once the container runs. */
static int start_publish(struct sess *s, char *err, size_t errlen)
{
	struct lcfg *c = s->cfg;
	struct portfwd_range pr[LCFG_MAX_LIST];
	for (size_t i = 0; i < c->npublish; i++) {
		pr[i].first = c->publish[i].first;
		pr[i].last = c->publish[i].last;
	}
	/* As the session's user (nobody for a root launcher without sudo:
	 * the agent's ports need no privilege). */
	uid_t uid = s->host_uid ? s->host_uid : 65534;
	gid_t gid = s->host_uid ? s->host_gid : 65534;
	int rc = portfwd_start(pr, c->npublish, uid, gid, &s->fwd_pid,
			       &s->fwd_ctl, err, errlen);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < c->npublish; i++) {
		if (pr[i].first == pr[i].last)
			diag("publishing 127.0.0.1:%u -> the container",
			     (unsigned)pr[i].first);
		else
			diag("publishing 127.0.0.1:%u-%u -> the container",
			     (unsigned)pr[i].first, (unsigned)pr[i].last);
	}
	return 0;
}

static int publish_target(struct sess *s, char *err, size_t errlen)
{
	char path[256];
	long st = 0;
	json_t *r = NULL;
	xsnprintf(path, sizeof path, "/containers/%s/json", s->container);
	int rc = docker_call(s->d, "GET", path, NULL, &st, &r, err, errlen);
	const char *ip = json_string_value(json_object_get(
	    json_object_get(
		json_object_get(json_object_get(r, "NetworkSettings"),
				"Networks"),
		s->net),
	    "IPAddress"));
	if (rc == 0 && (st != 200 || ip == NULL || *ip == '\0')) {
		xsnprintf(err, errlen,
			  "publish: no address for %s on network %s",
			  s->container, s->net);
		rc = -EIO;
	}
	if (rc == 0)
		rc = portfwd_target(s->fwd_ctl, ip, err, errlen);
	else
		close(s->fwd_ctl);
	s->fwd_ctl = -1;
	json_decref(r);
	return rc;
}

/* --ssh: the public keys sshd will accept, from
 * $XDG_CONFIG_HOME/agentsafe/authorized_keys when it exists, else every
 * public key file in ~/.ssh. Only lines that look like public keys are
 * taken. */
static int load_ssh_keys(struct sess *s, char *err, size_t errlen)
{
	char cfg[4096], own[4200], pattern[4200];
	const char *home = getenv("HOME");
	glob_t g = {0};
	const char *const *files;
	const char *one[2] = {own, NULL};
	const char *from;
	if (session_xdg_dir("CONFIG", cfg, sizeof cfg) == 0 &&
	    xsnprintf(own, sizeof own, "%s/authorized_keys", cfg) > 0 &&
	    access(own, R_OK) == 0) {
		files = one;
		from = own;
	} else {
		xsnprintf(pattern, sizeof pattern, "%s/.ssh/*.pub",
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
		xsnprintf(err, errlen,
			  "--ssh needs a public key: none found in %s (create "
			  "one with ssh-keygen, or list keys in "
			  "$XDG_CONFIG_HOME/agentsafe/authorized_keys)",
			  from);
		return -ENOENT;
	}
	s->ssh_keys = keys;
	return 0;
}

static int cmd_run(struct lcfg *c)
{
	struct sess s;
	memset(&s, 0, sizeof s);
	s.cfg = c;
	s.ready_fd = -1;
	s.fwd_ctl = -1;
	char err[2048] = "";
	int code = EXIT_LAUNCH;
	int sfd = -1, afd = -1;
	struct spec_store *store = NULL;
	ids_from_env(&s);
	s.tty = isatty(0) && isatty(1);

	char policy[PATH_MAX];
	if (c->policy) {
		if (realpath(c->policy, policy) == NULL) {
			diag("--policy %s: %s", c->policy, strerror(errno));
			return EXIT_LAUNCH;
		}
	} else if (default_policy(policy, sizeof policy) != 0) {
		diag("no policy: %s is missing and no example policy was "
		     "found; pass --policy FILE",
		     policy);
		return EXIT_LAUNCH;
	}
	if (c->hosts && access(c->hosts, R_OK) != 0) {
		diag("--hosts %s: %s", c->hosts, strerror(errno));
		return EXIT_LAUNCH;
	}
	bool caps = have_net_admin();
	if (!caps) {
		char e2[256];
		caps_raise_net_admin(e2, sizeof e2);
		diag("cannot install the network fence: %s", e2);
		return EXIT_LAUNCH;
	}
	s.caps_kept = true;
	if (docker_new(&s.d, err, sizeof err) != 0) {
		diag("%s", err);
		return EXIT_LAUNCH;
	}
	long st = 0;
	json_t *info = NULL;
	if (docker_call(s.d, "GET", "/info", NULL, &st, &info, err,
			sizeof err) != 0 ||
	    st != 200) {
		diag("%s (is dockerd running, and may you use its socket?)",
		     err);
		json_decref(info);
		goto out;
	}
	if (c->ssh_port != 0) {
		if (load_ssh_keys(&s, err, sizeof err) != 0) {
			diag("%s", err);
			json_decref(info);
			goto out;
		}
		/* Published like --publish: 127.0.0.1 only, through the
		 * launcher's relay. */
		if (c->npublish < LCFG_MAX_LIST) {
			c->publish[c->npublish].first = c->ssh_port;
			c->publish[c->npublish++].last = c->ssh_port;
		}
	}
	struct gpu_env genv;
	gpu_probe(info, NULL, &genv);
	json_decref(info);
	if (gpu_plan(c->gpu, &genv, &s.devreq, err, sizeof err) != 0) {
		diag("%s", err);
		goto out;
	}
	if (s.devreq)
		diag("passing NVIDIA GPUs (%s)", c->gpu);
	stale_sweep(s.d, caps);
	if (ensure_image(&s, err, sizeof err) != 0) {
		diag("%s", err);
		goto out;
	}

	sfd = block_signals();
	if (c->detach) {
		/* The session lives in a background child; this process
		 * waits only until it is up (or failed) to report. */
		int pfd[2];
		if (pipe2(pfd, O_CLOEXEC) != 0) {
			diag("pipe: %s", strerror(errno));
			goto out;
		}
		pid_t pid = fork();
		if (pid < 0) {
			diag("fork: %s", strerror(errno));
			goto out;
		}
		if (pid > 0) {
			close(pfd[1]);
			char b = 0;
			ssize_t r = read(pfd[0], &b, 1);
			int status = 0;
			if (r == 1)
				code = 0;
			else if (waitpid(pid, &status, 0) == pid &&
				 WIFEXITED(status))
				code = WEXITSTATUS(status);
			close(pfd[0]);
			/* Nothing of the session belongs to this process. */
			json_decref(s.devreq);
			docker_free(s.d);
			close(sfd);
			return code;
		}
		close(pfd[0]);
		s.ready_fd = pfd[1];
		setsid();
		close(sfd);
		sfd = block_signals();
	}

	if (session_new_id(s.id, sizeof s.id) != 0) {
		diag("no randomness for a session id");
		goto out;
	}
	xsnprintf(s.name, sizeof s.name, "%s",
		  c->name ? c->name : "agentsafe-");
	if (!c->name)
		xsnprintf(s.name, sizeof s.name, "agentsafe-%s", s.id);
	xsnprintf(s.container, sizeof s.container, "%s", s.name);
	xsnprintf(s.probe, sizeof s.probe, "agentsafe-%s-probe", s.id);
	xsnprintf(s.net, sizeof s.net, "agentsafe-%s", s.id);
	xsnprintf(s.bridge, sizeof s.bridge, "as-%s", s.id);
	xsnprintf(s.table, sizeof s.table, "%s%s", FENCE_TABLE_PREFIX, s.id);
	char cache[4096];
	if (session_state_dir(s.id, s.state_dir, sizeof s.state_dir) != 0 ||
	    session_xdg_dir("CACHE", cache, sizeof cache) != 0 ||
	    session_mkdirs(s.state_dir, 0700) != 0) {
		diag("cannot create the session state directory (HOME/XDG)");
		goto out;
	}
	xsnprintf(s.cache_dir, sizeof s.cache_dir, "%s/sessions", cache);
	if (session_mkdirs(s.cache_dir, 0700) != 0) {
		diag("cannot create %s: %s", s.cache_dir, strerror(errno));
		goto out;
	}
	xsnprintf(s.log_path, sizeof s.log_path, "%s/egress.log", s.state_dir);
	save_state(&s, false);
	if (egress_log_open(s.log_path, s.id, &s.log, err, sizeof err) != 0) {
		diag("%s", err);
		goto out;
	}
	if (getenv("HOME") != NULL) {
		give_to_user(&s, getenv("HOME"), s.log_path);
		give_to_user(&s, getenv("HOME"), s.cache_dir);
	}
	char rpath[4300];
	xsnprintf(rpath, sizeof rpath, "%s/resolv.conf", s.state_dir);
	FILE *rf = fopen(rpath, "w");
	if (rf == NULL ||
	    fputs("# agentsafe: no DNS inside; the proxy resolves names\n"
		  "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
		  rf) < 0 ||
	    fclose(rf) != 0) {
		diag("%s: %s", rpath, strerror(errno));
		goto out;
	}
	chmod(rpath, 0644);
	if (getenv("HOME") != NULL)
		give_to_user(&s, getenv("HOME"), rpath);
	if (s.ssh_keys != NULL) {
		char kpath[4300];
		xsnprintf(kpath, sizeof kpath, "%s/authorized_keys",
			  s.state_dir);
		FILE *kf = fopen(kpath, "w");
		bool bad = kf == NULL;
		if (kf != NULL) {
			bad = fputs(s.ssh_keys, kf) < 0;
			bad = fclose(kf) != 0 || bad;
		}
		if (bad) {
			diag("%s: %s", kpath, strerror(errno));
			goto out;
		}
		(void)chmod(kpath, 0644); /* public keys; the agent reads it */
		if (getenv("HOME") != NULL)
			give_to_user(&s, getenv("HOME"), kpath);
	}
	diag("session %s starting (%s)", s.id, s.name);

	store = calloc(1, sizeof *store);
	struct docker_container_spec spec;
	int rc = store ? 0 : -ENOMEM;
	if (rc == 0 && (rc = prepare_repos(&s, err, sizeof err)) != 0)
		diag("%s", err);
	if (rc == 0 && (rc = create_network(&s, err, sizeof err)) != 0)
		diag("%s", err);
	if (rc == 0 && (rc = start_proxy(&s, policy, err, sizeof err)) != 0)
		diag("%s", err);
	if (rc == 0 && c->npublish > 0 &&
	    (rc = start_publish(&s, err, sizeof err)) != 0)
		diag("%s", err);
	if (rc == 0 && (rc = apply_fence(&s, err, sizeof err)) != 0)
		diag("%s", err);
	if (rc == 0) {
		diag("proxy on %s:%u, fence %s on %s", s.gateway,
		     (unsigned)s.proxy_port, s.table, s.bridge);
		save_state(&s, false);
		build_spec(&s, store, &spec);
		if (c->no_verify) {
			diag("*** --no-verify: the fence is NOT verified "
			     "before the agent starts ***");
		} else if ((rc = run_probe(&s, &spec, err, sizeof err)) != 0) {
			diag("%s", err);
		}
	}
	if (rc == 0 && (rc = create_container(&s, s.container, &spec, err,
					      sizeof err)) != 0)
		diag("%s", err);
	if (rc == 0) {
		s.container_created = true;
		save_state(&s, false);
		if (!c->detach) {
			afd =
			    attach_fd(s.d, s.container, true, err, sizeof err);
			if (afd < 0) {
				rc = afd;
				diag("%s", err);
			}
		}
	}
	if (rc == 0 &&
	    (rc = start_container(&s, s.container, err, sizeof err)) != 0)
		diag("%s", err);
	if (rc == 0 && s.fwd_pid > 0 &&
	    (rc = publish_target(&s, err, sizeof err)) != 0)
		diag("%s", err);
	if (rc == 0 && c->detach) {
		afd = attach_fd(s.d, s.container, false, err, sizeof err);
		if (afd < 0) {
			rc = afd;
			diag("%s", err);
		} else {
			fprintf(stderr,
				PFX "session %s running in the background; "
				    "`agentsafe-launch attach %s`, `agentsafe-"
				    "launch stop %s`\n",
				s.name, s.name, s.name);
			char b = 1;
			if (write(s.ready_fd, &b, 1) != 1)
				diag("lost the foreground launcher");
			close(s.ready_fd);
			int nul = open("/dev/null", O_RDWR);
			char lp[4300];
			xsnprintf(lp, sizeof lp, "%s/launcher.log",
				  s.state_dir);
			int lf = open(lp, O_WRONLY | O_CREAT | O_APPEND, 0600);
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(lf >= 0 ? lf : nul, 2);
		}
	}
	if (rc == 0) {
		if (s.tty && !c->detach) {
			resize(s.d, s.container);
			/* Raw only with the exit() restore in place. */
			if (tcgetattr(0, &saved_tio) == 0 &&
			    atexit(tty_restore) == 0) {
				struct termios raw = saved_tio;
				cfmakeraw(&raw);
				tio_saved = true;
				tcsetattr(0, TCSANOW, &raw);
			}
		}
		int sig = 0;
		enum loop_end e =
		    io_loop(&s, s.d, s.container, afd, s.tty, !c->detach,
			    c->detach, sfd, &sig, true);
		tty_restore();
		if (e == END_CONTAINER) {
			int ec = EXIT_LAUNCH;
			if (wait_container(s.d, s.container, &ec) == 0)
				code = ec;
			/* A detach key (ctrl-p ctrl-q) ends the stream with
			 * the container still running: treat as a stop. */
		} else if (e == END_SIGNAL) {
			diag("%s: stopping the session", strsignal(sig));
			code = 128 + sig;
		} else {
			diag("agentsafe-proxy died: stopping the session "
			     "(see %s/proxy.log)",
			     s.state_dir);
			code = EXIT_LAUNCH;
		}
	}
out:
	if (afd >= 0)
		close(afd);
	teardown(&s);
	free(store);
	docker_free(s.d);
	if (sfd >= 0)
		close(sfd);
	return code;
}

static int cmd_ls(void)
{
	struct lsctx {
		int n;
	} ctx = {0};
	void ls_one(const char *id, void *arg);
	printf("%-14s %-28s %-8s %s\n", "ID", "NAME", "STATUS", "EGRESS LOG");
	session_each(ls_one, &ctx);
	return 0;
}

void ls_one(const char *id, void *arg)
{
	(void)arg;
	json_t *j = session_load(id);
	if (j == NULL)
		return;
	bool live = session_is_live(id);
	bool done = json_is_true(json_object_get(j, "finished"));
	if (!live && done) {
		json_decref(j);
		return;
	}
	printf("%-14s %-28s %-8s %s\n", id,
	       json_string_value(json_object_get(j, "name")),
	       live ? "running" : "stale",
	       json_string_value(json_object_get(j, "egress_log")));
	json_decref(j);
}

static int cmd_stop(const char *name)
{
	char id[SESSION_ID_LEN + 1];
	if (session_find(name, id, sizeof id) != 0) {
		diag("no session named %s (see `agentsafe-launch ls`)", name);
		return 1;
	}
	json_t *j = session_load(id);
	pid_t pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
	json_decref(j);
	if (session_is_live(id) && kill(pid, SIGTERM) != 0) {
		/* Typically: the session was started with sudo and this is
		 * the user; its launcher runs as root. */
		diag("cannot stop session %s (launcher pid %d): %s%s", name,
		     (int)pid, strerror(errno),
		     errno == EPERM ? "; it was started as root: use sudo "
				      "agentsafe-launch stop"
				    : "");
		return 1;
	}
	if (session_is_live(id)) {
		for (int i = 0; i < 600 && session_is_live(id); i++) {
			struct timespec ts = {0, 50L * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (!session_is_live(id)) {
			diag("session %s stopped", name);
			return 0;
		}
		diag("session %s did not stop within 30 s", name);
		return 1;
	}
	/* The launcher is gone: clean up after it here. */
	struct docker *d = NULL;
	char err[512];
	if (docker_new(&d, err, sizeof err) != 0) {
		diag("%s", err);
		return 1;
	}
	struct sweep w = {d, have_net_admin()};
	sweep_session(id, &w);
	docker_free(d);
	return 0;
}

static int cmd_attach(const char *name)
{
	char id[SESSION_ID_LEN + 1];
	if (session_find(name, id, sizeof id) != 0 || !session_is_live(id)) {
		diag("no running session named %s (see `agentsafe-launch "
		     "ls`)",
		     name);
		return 1;
	}
	json_t *j = session_load(id);
	char cname[128];
	xsnprintf(cname, sizeof cname, "%s",
		  json_string_value(json_object_get(j, "container")));
	json_decref(j);
	struct docker *d = NULL;
	char err[512], path[256];
	if (docker_new(&d, err, sizeof err) != 0) {
		diag("%s", err);
		return 1;
	}
	xsnprintf(path, sizeof path, "/containers/%s/json", cname);
	long st = 0;
	json_t *r = NULL;
	bool tty = false;
	if (docker_call(d, "GET", path, NULL, &st, &r, err, sizeof err) == 0 &&
	    st == 200)
		tty = json_is_true(
		    json_object_get(json_object_get(r, "Config"), "Tty"));
	json_decref(r);
	int sfd = block_signals();
	int afd = attach_fd(d, cname, true, err, sizeof err);
	if (afd < 0) {
		diag("%s", err);
		docker_free(d);
		return 1;
	}
	diag("attached to %s; detach with ctrl-p ctrl-q", cname);
	if (tty && isatty(0)) {
		resize(d, cname);
		/* Raw only with the exit() restore in place. */
		if (tcgetattr(0, &saved_tio) == 0 && atexit(tty_restore) == 0) {
			struct termios raw = saved_tio;
			cfmakeraw(&raw);
			tio_saved = true;
			tcsetattr(0, TCSANOW, &raw);
		}
	}
	int sig = 0;
	enum loop_end e =
	    io_loop(NULL, d, cname, afd, tty, true, false, sfd, &sig, false);
	tty_restore();
	close(afd);
	int code = e == END_SIGNAL ? 128 + sig : 0;
	/* The command's status when it ended while we were attached (the
	 * session's launcher removes the container soon after). */
	r = NULL;
	if (e == END_CONTAINER &&
	    docker_call(d, "GET", path, NULL, &st, &r, err, sizeof err) == 0 &&
	    st == 200) {
		json_t *state = json_object_get(r, "State");
		if (!json_is_true(json_object_get(state, "Running")))
			code = (int)json_integer_value(
			    json_object_get(state, "ExitCode"));
		else
			diag("detached from %s; it keeps running", cname);
	}
	json_decref(r);
	docker_free(d);
	close(sfd);
	return code;
}

/* `sudo agentsafe-launch` on Debian sets HOME to root's: the session,
 * its policy, state and clones are the invoking user's, so their home it
 * is (only when HOME is root's; an explicit HOME is kept). */
static void home_of_sudo_user(void)
{
	const char *su = getenv("SUDO_UID"), *home = getenv("HOME");
	unsigned long uid = 0;
	if (getuid() != 0 || parse_id(su, &uid) != 0 || uid == 0)
		return;
	struct passwd *root = getpwuid(0);
	char rootdir[PATH_MAX];
	xsnprintf(rootdir, sizeof rootdir, "%s", root ? root->pw_dir : "/root");
	if (home != NULL && strcmp(home, rootdir) != 0)
		return;
	struct passwd *pw = getpwuid((uid_t)uid);
	if (pw != NULL && pw->pw_dir != NULL && pw->pw_dir[0] == '/')
		setenv("HOME", pw->pw_dir, 1);
}

int main(int argc, char **argv)
{
	home_of_sudo_user();
	struct lcfg args, cfg;
	char err[1024] = "";
	lcfg_init(&args);
	lcfg_init(&cfg);
	if (lcfg_parse_args(&args, argc, argv, err, sizeof err) != 0) {
		diag("%s (see --help)", err);
		lcfg_free(&args);
		return 2;
	}
	if (args.cmd == LCFG_HELP) {
		lcfg_usage(stdout);
		lcfg_free(&args);
		return 0;
	}
	if (args.cmd == LCFG_LS || args.cmd == LCFG_STOP ||
	    args.cmd == LCFG_ATTACH) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		int rc = args.cmd == LCFG_LS	 ? cmd_ls()
			 : args.cmd == LCFG_STOP ? cmd_stop(args.target)
						 : cmd_attach(args.target);
		lcfg_free(&args);
		curl_global_cleanup();
		return rc;
	}
	char cpath[4200];
	const char *cfile = args.config_file;
	int lrc = 0;
	if (cfile != NULL) {
		lrc = lcfg_load_file(&cfg, cfile, err, sizeof err);
	} else {
		char dir[4096];
		if (session_xdg_dir("CONFIG", dir, sizeof dir) == 0) {
			xsnprintf(cpath, sizeof cpath, "%s/config.yaml", dir);
			lrc = lcfg_load_file(&cfg, cpath, err, sizeof err);
			if (lrc == -ENOENT)
				lrc = 0;
		}
	}
	if (lrc != 0) {
		diag("%s", err);
		lcfg_free(&args);
		lcfg_free(&cfg);
		return 2;
	}
	lcfg_merge(&cfg, &args);
	lcfg_free(&args);
	if (lcfg_finish(&cfg, err, sizeof err) != 0) {
		diag("%s", err);
		lcfg_free(&cfg);
		return EXIT_LAUNCH;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int code = cmd_run(&cfg);
	curl_global_cleanup();
	lcfg_free(&cfg);
	return code;
}
