/* Git isolation for a session (libgit2): a per-session clone whose object
 * store borrows the host's objects through a read-only alternates path, and
 * the host-side fetch of the session branch once the container is gone. */
#include "gitiso.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <dirent.h>

#include <git2.h>
#include <linux/openat2.h>

#define GITISO_MAX_ID	    64
#define GITISO_MAX_NAME	    64
#define GITISO_MAX_SUFFIX   100
#define GITISO_MAX_RO	    16 /* host object dirs behind alternates */
#define GITISO_MAX_ALT_FILE 65536

struct gitiso_repo {
	char *name;	    /* directory name under the session dir */
	char *clone_path;   /* <sessions>/<id>/<name>, canonical */
	char *clone_gitdir; /* clone_path + "/.git/" */
	char *host_workdir; /* canonical, with trailing slash (libgit2 style) */
	char *host_gitdir;  /* git_repository_path() of the host */
	char *session_id;
	char *branch_ref;   /* refs/heads/agentsafe/<id> */
	char *branch_short; /* agentsafe/<id> */
	char *alternates;   /* exact content written to the clone */
	char *ro[GITISO_MAX_RO + 1];
	size_t nro;
	char *prepare_summary;
	git_oid base;
	char base_hex[GIT_OID_HEXSZ + 1];
	size_t host_dirty; /* uncommitted + untracked entries at start */
	bool finished;
	bool libgit2_up;
	bool
	    host_shallow; /* libgit2 1.5 cannot walk or fetch cut-off history */
};

__attribute__((format(printf, 3, 4))) static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *git_msg(void)
{
	const git_error *e = git_error_last();

	return e != NULL && e->message != NULL ? e->message : "unknown error";
}

__attribute__((format(printf, 1, 2))) static char *xasprintf(const char *fmt,
							     ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

/* Appends to a bounded buffer; truncation is silent but never overflows. */
__attribute__((format(printf, 3, 4))) static void sb_add(char *buf, size_t len,
							 const char *fmt, ...)
{
	size_t used;
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	used = strnlen(buf, len);
	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* The id becomes a directory name and a ref component: keep it boring. */
static bool valid_session_id(const char *id)
{
	size_t n, i;

	if (id == NULL)
		return false;
	n = strlen(id);
	if (n == 0 || n > GITISO_MAX_ID || id[0] == '.' || id[0] == '-')
		return false;
	for (i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	}
	if (strstr(id, "..") != NULL || id[n - 1] == '.')
		return false;
	if (n >= 5 && strcmp(id + n - 5, ".lock") == 0)
		return false;
	return true;
}

/* Repo directory names become /workspace/<name> inside the container. */
static void sanitize_name(const char *base, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; base[i] != '\0' && o + 1 < outlen && o < GITISO_MAX_NAME;
	     i++) {
		char c = base[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' ||
			  c == '.';
		out[o++] = c;
		if (!ok)
			out[o - 1] = '_';
	}
	out[o] = '\0';
	if (o == 0 || out[0] == '.' || out[0] == '-')
		snprintf(out, outlen, "repo");
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path), i;

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char saved = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = saved;
	}
	return 0;
}

/* Reads a small regular file without following a final symlink. */
static int read_small_file(const char *path, char **out, size_t max)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t got = 0;

	*out = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max) {
		close(fd);
		return -EINVAL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	return 0;
}

static int write_new_file(const char *path, const char *data, size_t len,
			  mode_t mode)
{
	int fd = open(
	    path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		off += (size_t)w;
	}
	if (close(fd) != 0)
		return -errno;
	return 0;
}

static bool ro_has(const struct gitiso_repo *r, const char *p)
{
	for (size_t i = 0; i < r->nro; i++)
		if (strcmp(r->ro[i], p) == 0)
			return true;
	return false;
}

/* The host objects dir plus whatever it borrows in turn (git follows
 * alternates transitively, so the container must see the whole chain). The
 * list doubles as the work queue, so no recursion and a fixed bound. */
static int collect_readonly_paths(struct gitiso_repo *r, const char *objdir,
				  char *err, size_t errlen)
{
	char *canon = realpath(objdir, NULL);

	if (canon == NULL) {
		seterr(err, errlen, "gitiso: host objects directory %s: %s",
		       objdir, strerror(errno));
		return -errno;
	}
	r->ro[r->nro++] = canon;
	for (size_t q = 0; q < r->nro; q++) {
		char *file = xasprintf("%s/info/alternates", r->ro[q]);
		char *data = NULL, *line, *save = NULL;

		if (file == NULL)
			return -ENOMEM;
		if (read_small_file(file, &data, GITISO_MAX_ALT_FILE) != 0) {
			free(file);
			continue; /* no alternates: the common case */
		}
		free(file);
		for (line = strtok_r(data, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			char *p, *c;
			if (line[0] == '#' || line[0] == '\0')
				continue;
			p = line[0] == '/' ? strdup(line)
					   : xasprintf("%s/%s", r->ro[q], line);
			if (p == NULL) {
				free(data);
				return -ENOMEM;
			}
			c = realpath(p, NULL);
			free(p);
			if (c == NULL || ro_has(r, c)) {
				free(c);
				continue;
			}
			if (r->nro >= GITISO_MAX_RO) {
				free(c);
				free(data);
				seterr(
				    err, errlen,
				    "gitiso: host objects %s borrow from more "
				    "than %d object directories (alternates)",
				    objdir, GITISO_MAX_RO);
				return -E2BIG;
			}
			r->ro[r->nro++] = c;
		}
		free(data);
	}
	return 0;
}

static int open_beneath(int rootfd, const char *rel)
{
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV |
		      RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	if (fd < 0 &&
	    errno == ENOSYS) /* pre-5.6 kernel: still no final symlink */
		fd = openat(rootfd, rel, (int)how.flags);
	return (int)fd;
}

struct pathvec {
	char **v;
	size_t n, cap;
};

static int pv_push(struct pathvec *pv, char *s)
{
	if (s == NULL)
		return -ENOMEM;
	if (pv->n == pv->cap) {
		size_t nc = pv->cap ? pv->cap * 2 : 64;
		char **nv = realloc(pv->v, nc * sizeof(*nv));
		if (nv == NULL) {
			free(s);
			return -ENOMEM;
		}
		pv->v = nv;
		pv->cap = nc;
	}
	pv->v[pv->n++] = s;
	return 0;
}

static void pv_free(struct pathvec *pv)
{
	for (size_t i = 0; i < pv->n; i++)
		free(pv->v[i]);
	free(pv->v);
}

/* Deletes root and everything below it without ever following a symlink
 * or crossing a mount: the clone was writable by the agent, which may have
 * planted links to the host's .git. Directories are opened beneath the root
 * with openat2(RESOLVE_NO_SYMLINKS); explicit lists instead of recursion. */
static int safe_rmtree(const char *root, char *err, size_t errlen)
{
	struct pathvec dirs = {0};
	int rootfd, rc = 0;
	struct stat rst;

	if (lstat(root, &rst) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(rst.st_mode)) {
		seterr(err, errlen, "gitiso: %s is not a directory", root);
		return -ENOTDIR;
	}
	if (chmod(root, 0700) != 0) {
		/* best effort; the open below reports a real problem */
	}
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		seterr(err, errlen, "gitiso: cannot open %s: %s", root,
		       strerror(errno));
		return -errno;
	}
	rc = pv_push(&dirs, strdup("."));
	/* dirs grows while we walk it: pre-order list of every directory. */
	for (size_t i = 0; rc == 0 && i < dirs.n; i++) {
		int fd = open_beneath(rootfd, dirs.v[i]);
		DIR *d;
		struct dirent *de;

		if (fd < 0) {
			rc = -errno;
			seterr(err, errlen, "gitiso: cannot open %s/%s: %s",
			       root, dirs.v[i], strerror(errno));
			break;
		}
		d = fdopendir(fd);
		if (d == NULL) {
			rc = -errno;
			close(fd);
			break;
		}
		while (rc == 0 && (de = readdir(d)) != NULL) {
			struct stat st;
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
			    0) {
				rc = -errno;
				break;
			}
			if (S_ISDIR(st.st_mode)) {
				if (st.st_dev != rst.st_dev) {
					seterr(err, errlen,
					       "gitiso: %s/%s/%s is a mount "
					       "point; not removing it",
					       root, dirs.v[i], de->d_name);
					rc = -EXDEV;
					break;
				}
				/* the agent may have made it unreadable */
				if (fchmodat(fd, de->d_name, 0700, 0) != 0) {
					/* best effort; the open says why */
				}
				rc =
				    pv_push(&dirs, xasprintf("%s/%s", dirs.v[i],
							     de->d_name));
			} else if (unlinkat(fd, de->d_name, 0) != 0) {
				rc = -errno;
				seterr(err, errlen,
				       "gitiso: cannot remove %s/%s/%s: %s",
				       root, dirs.v[i], de->d_name,
				       strerror(errno));
			}
		}
		closedir(d);
	}
	/* Children come after their parent in the list: remove in reverse. */
	for (size_t i = dirs.n; rc == 0 && i > 1; i--) {
		const char *rel = dirs.v[i - 1];
		const char *slash = strrchr(rel, '/');
		char *parent = strndup(rel, (size_t)(slash - rel));
		int pfd;

		if (parent == NULL) {
			rc = -ENOMEM;
			break;
		}
		pfd = open_beneath(rootfd, parent);
		free(parent);
		if (pfd < 0 || unlinkat(pfd, slash + 1, AT_REMOVEDIR) != 0) {
			rc = -errno;
			seterr(err, errlen, "gitiso: cannot remove %s/%s: %s",
			       root, rel, strerror(errno));
		}
		if (pfd >= 0)
			close(pfd);
	}
	close(rootfd);
	pv_free(&dirs);
	if (rc == 0 && rmdir(root) != 0) {
		rc = -errno;
		seterr(err, errlen, "gitiso: cannot remove %s: %s", root,
		       strerror(errno));
	}
	return rc;
}

/* Same walk as safe_rmtree, changing owners instead of removing. */
int gitiso_chown(struct gitiso_repo *r, uid_t uid, gid_t gid, char *err,
		 size_t errlen)
{
	struct pathvec dirs = {0};
	struct stat rst;
	int rootfd, rc;

	if (r == NULL || r->clone_path == NULL)
		return -EINVAL;
	if (lstat(r->clone_path, &rst) != 0 || !S_ISDIR(rst.st_mode)) {
		seterr(err, errlen,
		       "gitiso: session clone %s is not a directory",
		       r->clone_path);
		return -ENOTDIR;
	}
	rootfd = open(r->clone_path,
		      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		rc = -errno;
		seterr(err, errlen, "gitiso: cannot open %s: %s", r->clone_path,
		       strerror(errno));
		return rc;
	}
	rc = pv_push(&dirs, strdup("."));
	for (size_t i = 0; rc == 0 && i < dirs.n; i++) {
		int fd = open_beneath(rootfd, dirs.v[i]);
		DIR *d;
		struct dirent *de;

		if (fd < 0 || fchown(fd, uid, gid) != 0) {
			rc = -errno;
			seterr(err, errlen, "gitiso: cannot chown %s/%s: %s",
			       r->clone_path, dirs.v[i], strerror(errno));
			if (fd >= 0)
				close(fd);
			break;
		}
		d = fdopendir(fd);
		if (d == NULL) {
			rc = -errno;
			close(fd);
			break;
		}
		while (rc == 0 && (de = readdir(d)) != NULL) {
			struct stat st;
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
			    0) {
				rc = -errno;
				break;
			}
			if (S_ISDIR(st.st_mode) && st.st_dev == rst.st_dev)
				rc =
				    pv_push(&dirs, xasprintf("%s/%s", dirs.v[i],
							     de->d_name));
			else if (fchownat(fd, de->d_name, uid, gid,
					  AT_SYMLINK_NOFOLLOW) != 0) {
				rc = -errno;
				seterr(err, errlen,
				       "gitiso: cannot chown %s/%s/%s: %s",
				       r->clone_path, dirs.v[i], de->d_name,
				       strerror(errno));
			}
		}
		closedir(d);
	}
	close(rootfd);
	pv_free(&dirs);
	return rc;
}

void gitiso_free(struct gitiso_repo *r)
{
	if (r == NULL)
		return;
	free(r->name);
	free(r->clone_path);
	free(r->clone_gitdir);
	free(r->host_workdir);
	free(r->host_gitdir);
	free(r->session_id);
	free(r->branch_ref);
	free(r->branch_short);
	free(r->alternates);
	free(r->prepare_summary);
	for (size_t i = 0; i < r->nro; i++)
		free(r->ro[i]);
	if (r->libgit2_up)
		git_libgit2_shutdown();
	free(r);
}

const char *gitiso_name(const struct gitiso_repo *r)
{
	return r->name;
}

const char *gitiso_clone_path(const struct gitiso_repo *r)
{
	return r->clone_path;
}

const char *const *gitiso_readonly_paths(const struct gitiso_repo *r)
{
	return (const char *const *)r->ro;
}

const char *gitiso_host_repo(const struct gitiso_repo *r)
{
	return r->host_workdir;
}

const char *gitiso_branch(const struct gitiso_repo *r)
{
	return r->branch_short;
}

const char *gitiso_prepare_summary(const struct gitiso_repo *r)
{
	return r->prepare_summary;
}

/* Entries git status would show (tracked changes and untracked files; not
 * ignored ones), or -1 when status itself fails. */
static long count_status(git_repository *repo)
{
	git_status_options so;
	git_status_list *list = NULL;
	long n;

	if (git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION) != 0)
		return -1;
	so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED |
		   GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
	if (git_status_list_new(&list, repo, &so) != 0)
		return -1;
	n = (long)git_status_list_entrycount(list);
	git_status_list_free(list);
	return n;
}

static int set_identity(git_config *local, git_repository *host)
{
	git_config *snap = NULL;
	const char *name = NULL, *email = NULL;
	int rc;

	/* The host's effective identity (local + ~/.gitconfig + system); the
	 * container sees none of those files, so copy the values. */
	if (git_repository_config_snapshot(&snap, host) == 0) {
		if (git_config_get_string(&name, snap, "user.name") != 0 ||
		    name[0] == '\0')
			name = NULL;
		if (git_config_get_string(&email, snap, "user.email") != 0 ||
		    email[0] == '\0')
			email = NULL;
	}
	rc = git_config_set_string(local, "user.name",
				   name ? name : "AgentSafe Agent");
	if (rc == 0)
		rc = git_config_set_string(local, "user.email",
					   email ? email
						 : "agent@agentsafe.invalid");
	git_config_free(snap);
	return rc;
}

/* Creates the clone's repository: own objects dir, alternates to the host's,
 * branch at base, fresh checkout, local config. */
static int build_clone(struct gitiso_repo *r, git_repository *host,
		       const char *host_commondir, char *err, size_t errlen)
{
	git_repository_init_options io;
	git_checkout_options co;
	git_repository *c = NULL;
	git_reference *ref = NULL;
	git_config *cfg = NULL, *local = NULL;
	char *path = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int rc;

	if (git_repository_init_options_init(
		&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION) != 0 ||
	    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION) != 0)
		return -EIO;
	io.flags = GIT_REPOSITORY_INIT_NO_REINIT;
	io.initial_head = r->branch_ref;
	if (git_repository_init_ext(&c, r->clone_path, &io) != 0) {
		seterr(err, errlen,
		       "gitiso: cannot create the session clone "
		       "at %s: %s",
		       r->clone_path, git_msg());
		return -EIO;
	}
	git_repository_free(c);
	c = NULL;

	path = xasprintf("%sobjects/info/alternates", r->clone_gitdir);
	if (path == NULL)
		return -ENOMEM;
	rc = write_new_file(path, r->alternates, strlen(r->alternates), 0644);
	free(path);
	if (rc != 0) {
		seterr(err, errlen,
		       "gitiso: cannot write the alternates file "
		       "in %s: %s",
		       r->clone_gitdir, strerror(-rc));
		return rc;
	}
	/* A shallow host needs its shallow list or history walks fail. */
	path = xasprintf("%sshallow", host_commondir);
	if (path == NULL)
		return -ENOMEM;
	{
		char *data = NULL;
		if (read_small_file(path, &data, 16u << 20) == 0) {
			char *dst = xasprintf("%sshallow", r->clone_gitdir);
			rc = dst ? write_new_file(dst, data, strlen(data), 0644)
				 : -ENOMEM;
			free(dst);
			free(data);
			if (rc != 0) {
				free(path);
				seterr(err, errlen,
				       "gitiso: cannot copy the "
				       "shallow file into %s",
				       r->clone_gitdir);
				return rc;
			}
		}
	}
	free(path);

	if (git_repository_open_ext(&c, r->clone_path,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0)
		goto giterr;
	if (git_reference_create(&ref, c, r->branch_ref, &r->base, 0,
				 "agentsafe: session start") != 0)
		goto giterr;
	git_reference_free(ref);
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	if (git_checkout_head(c, &co) != 0)
		goto giterr;

	if (git_repository_config(&cfg, c) != 0 ||
	    git_config_open_level(&local, cfg, GIT_CONFIG_LEVEL_LOCAL) != 0)
		goto giterr;
	git_oid_tostr(hex, sizeof(hex), &r->base);
	/* A host gpgsign setting must not break commits inside (no keys,
	 * no agent there); the ids are for humans, finish trusts memory. */
	if (set_identity(local, host) != 0 ||
	    git_config_set_bool(local, "commit.gpgsign", 0) != 0 ||
	    git_config_set_bool(local, "tag.gpgsign", 0) != 0 ||
	    git_config_set_string(local, "agentsafe.session", r->session_id) !=
		0 ||
	    git_config_set_string(local, "agentsafe.base", hex) != 0)
		goto giterr;
	git_config_free(local);
	git_config_free(cfg);
	git_repository_free(c);
	return 0;
giterr:
	seterr(err, errlen, "gitiso: setting up the session clone at %s: %s",
	       r->clone_path, git_msg());
	git_config_free(local);
	git_config_free(cfg);
	git_repository_free(c);
	return -EIO;
}

/* Reserves <sessdir>/<name>, <name>-2, ... with mkdir so two repos with the
 * same name (or two launchers) never share a clone. */
static int reserve_clone_dir(struct gitiso_repo *r, const char *sessdir,
			     const char *base, char *err, size_t errlen)
{
	for (int i = 1; i <= GITISO_MAX_SUFFIX; i++) {
		char *name =
		    i == 1 ? strdup(base) : xasprintf("%s-%d", base, i);
		char *path;

		if (name == NULL)
			return -ENOMEM;
		path = xasprintf("%s/%s", sessdir, name);
		if (path == NULL) {
			free(name);
			return -ENOMEM;
		}
		if (mkdir(path, 0700) == 0) {
			r->name = name;
			r->clone_path = path;
			return 0;
		}
		int e = errno;
		free(name);
		free(path);
		if (e != EEXIST) {
			seterr(err, errlen, "gitiso: cannot create %s/%s: %s",
			       sessdir, base, strerror(e));
			return -e;
		}
	}
	seterr(err, errlen,
	       "gitiso: more than %d repos named %s in session dir "
	       "%s",
	       GITISO_MAX_SUFFIX, base, sessdir);
	return -EEXIST;
}

static int prepare_inner(const char *host_path, const char *sessions_dir,
			 const char *session_id, struct gitiso_repo **out,
			 char *err, size_t errlen)
{
	struct gitiso_repo *r;
	git_repository *host = NULL;
	git_reference *head = NULL;
	git_object *obj = NULL;
	char *sessdir = NULL, *canon_sessions = NULL, *objdir = NULL;
	char name[GITISO_MAX_NAME + 8], hex[GIT_OID_HEXSZ + 1];
	char headdesc[256];
	const char *wd, *slash;
	int rc = -EIO, valid = 0;
	bool created = false;

	*out = NULL;
	if (host_path == NULL || sessions_dir == NULL ||
	    sessions_dir[0] != '/') {
		seterr(err, errlen,
		       "gitiso: need a host path and an absolute "
		       "sessions directory");
		return -EINVAL;
	}
	if (!valid_session_id(session_id)) {
		seterr(err, errlen,
		       "gitiso: session id '%s' is not usable as a "
		       "branch name (letters, digits, '-', '_', '.'; at most "
		       "%d)",
		       session_id ? session_id : "(null)", GITISO_MAX_ID);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	if (git_libgit2_init() < 0) {
		seterr(err, errlen, "gitiso: libgit2 init failed: %s",
		       git_msg());
		free(r);
		return -EIO;
	}
	r->libgit2_up = true;
	r->session_id = strdup(session_id);
	r->branch_ref = xasprintf("refs/heads/agentsafe/%s", session_id);
	r->branch_short = xasprintf("agentsafe/%s", session_id);
	if (!r->session_id || !r->branch_ref || !r->branch_short) {
		rc = -ENOMEM;
		goto fail;
	}
	if (git_reference_name_is_valid(&valid, r->branch_ref) != 0 || !valid) {
		seterr(err, errlen, "gitiso: %s is not a valid branch name",
		       r->branch_ref);
		rc = -EINVAL;
		goto fail;
	}

	/* No GIT_DIR/GIT_WORK_TREE from the environment: the user named a
	 * directory, so use what is really there. */
	if (git_repository_open_ext(&host, host_path, 0, NULL) != 0) {
		seterr(err, errlen,
		       "gitiso: %s is not inside a git repository: "
		       "%s",
		       host_path, git_msg());
		rc = -ENOENT;
		goto fail;
	}
	wd = git_repository_workdir(host);
	if (wd == NULL || git_repository_is_bare(host)) {
		seterr(err, errlen,
		       "gitiso: %s is a bare repository; a session "
		       "needs a repository with a work tree",
		       host_path);
		rc = -EINVAL;
		goto fail;
	}
	if (git_repository_head_unborn(host) == 1) {
		seterr(err, errlen,
		       "gitiso: repository %s has no commits yet "
		       "(unborn HEAD); make a first commit before starting a "
		       "session",
		       wd);
		rc = -ENOENT;
		goto fail;
	}
	if (git_repository_head(&head, host) != 0 ||
	    git_reference_peel(&obj, head, GIT_OBJECT_COMMIT) != 0) {
		seterr(err, errlen,
		       "gitiso: cannot resolve HEAD of %s to a "
		       "commit: %s",
		       wd, git_msg());
		rc = -EIO;
		goto fail;
	}
	git_oid_cpy(&r->base, git_object_id(obj));
	git_oid_tostr(hex, sizeof(hex), &r->base);
	memcpy(r->base_hex, hex, sizeof(r->base_hex));
	if (git_repository_head_detached(host) == 1)
		snprintf(headdesc, sizeof(headdesc), "detached HEAD %.12s",
			 hex);
	else
		snprintf(headdesc, sizeof(headdesc), "%s at %.12s",
			 git_reference_shorthand(head), hex);

	r->host_workdir = strdup(wd);
	r->host_gitdir = strdup(git_repository_path(host));
	objdir = xasprintf("%sobjects", git_repository_commondir(host));
	if (!r->host_workdir || !r->host_gitdir || !objdir) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = collect_readonly_paths(r, objdir, err, errlen);
	if (rc != 0)
		goto fail;
	r->alternates = xasprintf("%s\n", r->ro[0]);
	if (r->alternates == NULL) {
		rc = -ENOMEM;
		goto fail;
	}

	rc = mkdir_p(sessions_dir, 0700);
	canon_sessions = rc == 0 ? realpath(sessions_dir, NULL) : NULL;
	if (canon_sessions == NULL) {
		seterr(err, errlen,
		       "gitiso: cannot create sessions directory "
		       "%s: %s",
		       sessions_dir, strerror(rc ? -rc : errno));
		rc = rc ? rc : -errno;
		goto fail;
	}
	sessdir = xasprintf("%s/%s", canon_sessions, session_id);
	if (sessdir == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (mkdir(sessdir, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		seterr(err, errlen, "gitiso: cannot create %s: %s", sessdir,
		       strerror(errno));
		goto fail;
	}
	{
		/* basename of the work tree, which libgit2 ends with '/' */
		char tmp[PATH_MAX];
		size_t n = strlen(wd);
		if (n >= sizeof(tmp)) {
			rc = -ENAMETOOLONG;
			goto fail;
		}
		memcpy(tmp, wd, n + 1);
		while (n > 1 && tmp[n - 1] == '/')
			tmp[--n] = '\0';
		slash = strrchr(tmp, '/');
		sanitize_name(slash ? slash + 1 : tmp, name, sizeof(name));
	}
	rc = reserve_clone_dir(r, sessdir, name, err, errlen);
	if (rc != 0)
		goto fail;
	created = true;
	r->clone_gitdir = xasprintf("%s/.git/", r->clone_path);
	if (r->clone_gitdir == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = build_clone(r, host, git_repository_commondir(host), err, errlen);
	if (rc != 0)
		goto fail;

	{
		long dirty = count_status(host);
		r->host_dirty = dirty > 0 ? (size_t)dirty : 0;
		if (dirty > 0)
			r->prepare_summary = xasprintf(
			    "%s: session clone on %s from %s; the host's "
			    "uncommitted changes (%ld files) are NOT in the "
			    "session",
			    r->name, r->branch_short, headdesc, dirty);
		else
			r->prepare_summary =
			    xasprintf("%s: session clone on %s from %s",
				      r->name, r->branch_short, headdesc);
		r->host_shallow = git_repository_is_shallow(host) == 1;
		if (r->prepare_summary != NULL && r->host_shallow) {
			/* libgit2 1.5 cannot walk cut-off history */
			char *t = xasprintf("%s; the host is a shallow clone: "
					    "commits made inside cannot be "
					    "fetched back automatically",
					    r->prepare_summary);
			free(r->prepare_summary);
			r->prepare_summary = t;
		}
		if (r->prepare_summary == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	git_object_free(obj);
	git_reference_free(head);
	git_repository_free(host);
	free(objdir);
	free(sessdir);
	free(canon_sessions);
	*out = r;
	return 0;
fail:
	if (rc == -ENOMEM)
		seterr(err, errlen, "gitiso: out of memory preparing %s",
		       host_path);
	if (created) {
		char e2[256];
		(void)safe_rmtree(r->clone_path, e2, sizeof(e2));
	}
	if (sessdir != NULL)
		(void)rmdir(sessdir); /* only if empty */
	git_object_free(obj);
	git_reference_free(head);
	git_repository_free(host);
	free(objdir);
	free(sessdir);
	free(canon_sessions);
	gitiso_free(r);
	return rc;
}

/* ---- finish ---------------------------------------------------------- */

struct finish_state {
	git_oid tip;
	bool has_tip;
	bool tip_contains_base;
	size_t commits;
	size_t files, plus, minus;
	long dirty;	     /* -1: unknown */
	char other_ref[128]; /* first ref with work not on the branch */
	bool fetched;
};

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (d == NULL)
		return false;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

/* Compares two directory paths ignoring one trailing slash. */
static bool same_dir(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && memcmp(a, b, la) == 0;
}

/* The clone must still be the repository we created: its own .git
 * directory (not a gitfile/symlink/commondir into some other repo), work
 * tree where we put it, and the alternates we wrote. */
static int check_clone_layout(const struct gitiso_repo *r, git_repository *c,
			      char *why, size_t whylen)
{
	char *alt = NULL, *path;
	const char *wd = git_repository_workdir(c);
	int rc = 0;

	if (!same_dir(git_repository_path(c), r->clone_gitdir) ||
	    !same_dir(git_repository_commondir(c), r->clone_gitdir) ||
	    wd == NULL || !same_dir(wd, r->clone_path)) {
		seterr(why, whylen, "its .git now points outside the clone");
		return -EPERM;
	}
	path = xasprintf("%sobjects/info/alternates", r->clone_gitdir);
	if (path == NULL)
		return -ENOMEM;
	if (read_small_file(path, &alt, GITISO_MAX_ALT_FILE) != 0 ||
	    alt == NULL || strcmp(alt, r->alternates) != 0) {
		seterr(why, whylen, "its objects/info/alternates was changed");
		rc = -EPERM;
	}
	free(alt);
	free(path);
	return rc;
}

/* Steps along first parents from `from` until `to`, bounded; *reached says
 * whether `to` was met. Used when a full revwalk is impossible. */
static size_t first_parent_steps(git_repository *c, const git_oid *from,
				 const git_oid *to, bool *reached)
{
	git_oid cur;
	size_t n = 0;

	*reached = false;
	git_oid_cpy(&cur, from);
	while (n < 1000000) {
		git_commit *commit = NULL;
		const git_oid *p;

		if (git_oid_equal(&cur, to)) {
			*reached = true;
			break;
		}
		if (git_commit_lookup(&commit, c, &cur) != 0)
			break;
		p = git_commit_parentcount(commit) > 0
			? git_commit_parent_id(commit, 0)
			: NULL;
		if (p != NULL)
			git_oid_cpy(&cur, p);
		git_commit_free(commit);
		if (p == NULL)
			break;
		n++;
	}
	return n;
}

static void scan_clone(const struct gitiso_repo *r, git_repository *c,
		       struct finish_state *fs)
{
	git_revwalk *walk = NULL;
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	git_oid oid;

	fs->dirty = count_status(c);
	if (git_reference_name_to_id(&fs->tip, c, r->branch_ref) == 0) {
		git_commit *commit = NULL;
		if (git_commit_lookup(&commit, c, &fs->tip) == 0)
			fs->has_tip = true;
		git_commit_free(commit);
	}
	if (fs->has_tip && !git_oid_equal(&fs->tip, &r->base)) {
		/* no revwalk on cut-off history: it fails (and leaks) */
		int wr =
		    r->host_shallow ? GIT_ENOTFOUND : git_revwalk_new(&walk, c);
		if (wr == 0)
			wr = git_revwalk_push(walk, &fs->tip);
		if (wr == 0)
			wr = git_revwalk_hide(walk, &r->base);
		while (wr == 0 && (wr = git_revwalk_next(&oid, walk)) == 0)
			fs->commits++;
		git_revwalk_free(walk);
		if (wr == GIT_ITEROVER) {
			fs->tip_contains_base =
			    git_graph_descendant_of(c, &fs->tip, &r->base) == 1;
		} else {
			/* The walk fails where history is cut off (a
			 * shallow host: libgit2 1.5 does not read
			 * .git/shallow). Never call that "no commits": count
			 * first parents down to base instead. */
			bool reached = false, back = false;
			size_t n =
			    first_parent_steps(c, &fs->tip, &r->base, &reached);
			(void)first_parent_steps(c, &r->base, &fs->tip, &back);
			fs->commits = back && !reached ? 0 : (n ? n : 1);
			fs->tip_contains_base = reached;
		}
	}
	if (fs->commits > 0) {
		git_commit *a = NULL, *b = NULL;
		git_tree *ta = NULL, *tb = NULL;
		git_diff *diff = NULL;
		git_diff_stats *st = NULL;
		if (git_commit_lookup(&a, c, &r->base) == 0 &&
		    git_commit_lookup(&b, c, &fs->tip) == 0 &&
		    git_commit_tree(&ta, a) == 0 &&
		    git_commit_tree(&tb, b) == 0 &&
		    git_diff_tree_to_tree(&diff, c, ta, tb, NULL) == 0 &&
		    git_diff_get_stats(&st, diff) == 0) {
			fs->files = git_diff_stats_files_changed(st);
			fs->plus = git_diff_stats_insertions(st);
			fs->minus = git_diff_stats_deletions(st);
		}
		git_diff_stats_free(st);
		git_diff_free(diff);
		git_tree_free(ta);
		git_tree_free(tb);
		git_commit_free(a);
		git_commit_free(b);
	}

	/* Work on other branches, tags, stash or a detached HEAD would be
	 * lost with the clone: look for tips the session branch lacks. */
	if (git_reference_iterator_new(&it, c) != 0) {
		snprintf(fs->other_ref, sizeof(fs->other_ref),
			 "(refs unreadable)");
		return;
	}
	while (git_reference_next(&ref, it) == 0) {
		const char *nm = git_reference_name(ref);
		git_object *res = NULL;
		bool covered = false;

		/* peeled: an annotated tag on a session commit is covered */
		if (strcmp(nm, r->branch_ref) != 0 &&
		    git_reference_peel(&res, ref, GIT_OBJECT_COMMIT) == 0) {
			const git_oid *o = git_object_id(res);
			covered =
			    git_oid_equal(o, &r->base) ||
			    (fs->has_tip &&
			     (git_oid_equal(o, &fs->tip) ||
			      git_graph_descendant_of(c, &fs->tip, o) == 1)) ||
			    git_graph_descendant_of(c, &r->base, o) == 1;
		} else {
			covered = strcmp(nm, r->branch_ref) == 0;
		}
		if (!covered && fs->other_ref[0] == '\0')
			snprintf(fs->other_ref, sizeof(fs->other_ref), "%s",
				 nm);
		git_object_free(res);
		git_reference_free(ref);
	}
	git_reference_iterator_free(it);
	if (git_repository_head_detached(c) == 1 &&
	    git_reference_name_to_id(&oid, c, "HEAD") == 0 &&
	    !git_oid_equal(&oid, &r->base) &&
	    !(fs->has_tip &&
	      (git_oid_equal(&oid, &fs->tip) ||
	       git_graph_descendant_of(c, &fs->tip, &oid) == 1)) &&
	    fs->other_ref[0] == '\0')
		snprintf(fs->other_ref, sizeof(fs->other_ref), "detached HEAD");
}

/* The only write to the host repository: download the session branch's
 * objects from the clone (host side, container gone), then create the
 * branch without force so an existing one is never overwritten. */
static int fetch_into_host(const struct gitiso_repo *r,
			   const struct finish_state *fs, char *err,
			   size_t errlen)
{
	git_repository *host = NULL;
	git_remote *remote = NULL;
	git_reference *ref = NULL;
	git_commit *commit = NULL;
	git_fetch_options fo;
	git_remote_create_options ro;
	char *spec = NULL;
	git_strarray specs;
	int rc = -EIO, e;

	if (git_repository_open_ext(&host, r->host_workdir,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 ||
	    !same_dir(git_repository_path(host), r->host_gitdir)) {
		seterr(err, errlen,
		       "gitiso: cannot reopen host repository %s: "
		       "%s",
		       r->host_workdir, git_msg());
		goto out;
	}
	e = git_reference_lookup(&ref, host, r->branch_ref);
	if (e == 0) {
		seterr(err, errlen,
		       "gitiso: host repository %s already has "
		       "branch %s; not overwritten",
		       r->host_workdir, r->branch_short);
		rc = -EEXIST;
		goto out;
	}
	if (git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION) != 0)
		goto out;
	spec = xasprintf("%s:%s", r->branch_ref, r->branch_ref);
	if (spec == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	specs.strings = &spec;
	specs.count = 1;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.prune = GIT_FETCH_NO_PRUNE;
	fo.update_fetchhead = 0;
	/* No insteadOf rewriting (a host url.*.insteadOf must not redirect a
	 * local path; its lookup also leaks in libgit2 1.5 with pcre2), no
	 * default refspec: only the one branch named above. */
	if (git_remote_create_options_init(
		&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION) != 0)
		goto out;
	ro.repository = host;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF |
		   GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if (git_remote_create_with_opts(&remote, r->clone_path, &ro) != 0 ||
	    git_remote_download(remote, &specs, &fo) != 0) {
		seterr(err, errlen,
		       "gitiso: fetching %s from %s into %s "
		       "failed: %s",
		       r->branch_short, r->clone_path, r->host_workdir,
		       git_msg());
		goto out;
	}
	if (git_commit_lookup(&commit, host, &fs->tip) != 0) {
		seterr(err, errlen,
		       "gitiso: after fetching, host repository %s "
		       "lacks the session commit: %s",
		       r->host_workdir, git_msg());
		goto out;
	}
	e = git_reference_create(&ref, host, r->branch_ref, &fs->tip, 0,
				 "agentsafe: session branch");
	if (e == GIT_EEXISTS) {
		seterr(err, errlen,
		       "gitiso: host repository %s already has "
		       "branch %s; not overwritten",
		       r->host_workdir, r->branch_short);
		rc = -EEXIST;
		goto out;
	}
	if (e != 0) {
		seterr(err, errlen, "gitiso: cannot create %s in %s: %s",
		       r->branch_short, r->host_workdir, git_msg());
		goto out;
	}
	rc = 0;
out:
	git_commit_free(commit);
	git_reference_free(ref);
	git_remote_free(remote);
	free(spec);
	git_repository_free(host);
	return rc;
}

static void summary_commits(const struct gitiso_repo *r,
			    const struct finish_state *fs, char *s, size_t n)
{
	sb_add(s, n, "%s: %zu commit%s on %s, %zu file%s changed (+%zu -%zu)",
	       r->name, fs->commits, fs->commits == 1 ? "" : "s",
	       r->branch_short, fs->files, fs->files == 1 ? "" : "s", fs->plus,
	       fs->minus);
	if (!fs->tip_contains_base)
		sb_add(s, n,
		       " (history rewritten: the branch does not "
		       "contain the starting commit)");
}

static int finish_inner(struct gitiso_repo *r, char *summary, size_t summarylen,
			char *err, size_t errlen)
{
	struct finish_state fs;
	git_repository *c = NULL;
	struct stat st;
	char why[160] = "";
	char rmerr[256] = "";
	char dotgit[PATH_MAX];
	int rc = 0;
	bool keep;

	if (summary != NULL && summarylen > 0)
		summary[0] = '\0';
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (r == NULL)
		return -EINVAL;
	if (r->finished) {
		seterr(err, errlen, "gitiso: session clone %s already finished",
		       r->clone_path);
		return -EALREADY;
	}
	r->finished = true;
	memset(&fs, 0, sizeof(fs));
	snprintf(dotgit, sizeof(dotgit), "%s/.git", r->clone_path);

	if (lstat(r->clone_path, &st) != 0) {
		sb_add(summary, summarylen,
		       "%s: session clone %s is gone; "
		       "nothing fetched, host repo untouched",
		       r->name, r->clone_path);
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		seterr(err, errlen,
		       "gitiso: session clone %s is no longer a "
		       "directory; left as is",
		       r->clone_path);
		return -ENOTDIR;
	}
	/* fstatat on the name, not "<clone>/.git/": a trailing slash would
	 * follow a .git symlink planted by the agent */
	int gst = fstatat(AT_FDCWD, dotgit, &st, AT_SYMLINK_NOFOLLOW);
	if (gst != 0 || !S_ISDIR(st.st_mode)) {
		bool gone = gst != 0 && errno == ENOENT;
		if (gone && dir_is_empty(r->clone_path) &&
		    safe_rmtree(r->clone_path, rmerr, sizeof(rmerr)) == 0) {
			sb_add(summary, summarylen,
			       "%s: the session deleted "
			       "its clone (including .git); nothing to fetch, "
			       "host repo untouched; removed empty %s",
			       r->name, r->clone_path);
		} else {
			sb_add(summary, summarylen,
			       "%s: the session clone's "
			       ".git is %s; nothing fetched, host repo "
			       "untouched; kept session clone at %s",
			       r->name, gone ? "gone" : "not a directory",
			       r->clone_path);
		}
		return 0;
	}
	if (git_repository_open_ext(&c, r->clone_path,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
		sb_add(summary, summarylen,
		       "%s: the session clone's .git is "
		       "unusable (%s); nothing fetched, host repo untouched; "
		       "kept session clone at %s",
		       r->name, git_msg(), r->clone_path);
		return 0;
	}
	rc = check_clone_layout(r, c, why, sizeof(why));
	if (rc != 0) {
		git_repository_free(c);
		seterr(err, errlen,
		       "gitiso: session clone %s was tampered with "
		       "(%s); nothing fetched",
		       r->clone_path, why);
		sb_add(summary, summarylen,
		       "%s: nothing fetched (%s); kept "
		       "session clone at %s",
		       r->name, why, r->clone_path);
		return rc;
	}
	scan_clone(r, c, &fs);
	git_repository_free(c);

	if (fs.commits > 0 && r->host_shallow) {
		seterr(err, errlen,
		       "gitiso: %s is a shallow clone, which libgit2 cannot "
		       "fetch into",
		       r->host_workdir);
		rc = -ENOTSUP;
	} else if (fs.commits > 0) {
		rc = fetch_into_host(r, &fs, err, errlen);
		fs.fetched = rc == 0;
	}
	keep = fs.dirty != 0 || fs.other_ref[0] != '\0' ||
	       (fs.commits > 0 && !fs.fetched) || !fs.has_tip;

	if (fs.commits > 0 && fs.fetched)
		summary_commits(r, &fs, summary, summarylen);
	else if (fs.commits > 0)
		sb_add(summary, summarylen,
		       "%s: %zu commit%s NOT fetched (%s); to fetch by hand: "
		       "git -C %s fetch %s %s:<new-branch>",
		       r->name, fs.commits, fs.commits == 1 ? "" : "s", err,
		       r->host_workdir, r->clone_path, r->branch_ref);
	else if (!fs.has_tip)
		sb_add(summary, summarylen,
		       "%s: branch %s is missing or "
		       "broken in the session clone; nothing fetched",
		       r->name, r->branch_short);
	else
		sb_add(summary, summarylen, "%s: no new commits on %s", r->name,
		       r->branch_short);

	if (keep) {
		if (fs.dirty > 0)
			sb_add(summary, summarylen,
			       "; kept dirty session clone "
			       "at %s (%ld uncommitted or untracked files)",
			       r->clone_path, fs.dirty);
		else if (fs.dirty < 0)
			sb_add(summary, summarylen,
			       "; kept session clone at %s "
			       "(its status could not be read)",
			       r->clone_path);
		else if (fs.other_ref[0] != '\0')
			sb_add(summary, summarylen,
			       "; kept session clone at %s "
			       "(work outside %s: %s)",
			       r->clone_path, r->branch_short, fs.other_ref);
		else
			sb_add(summary, summarylen,
			       "; kept session clone at %s", r->clone_path);
	} else if (safe_rmtree(r->clone_path, rmerr, sizeof(rmerr)) != 0) {
		sb_add(summary, summarylen,
		       "; could not remove session clone "
		       "(%s)",
		       rmerr);
	} else {
		char *parent = strdup(r->clone_path);
		char *slash = parent ? strrchr(parent, '/') : NULL;
		if (slash != NULL) {
			*slash = '\0';
			(void)rmdir(parent); /* the session dir, once empty */
		}
		free(parent);
		sb_add(summary, summarylen, "; session clone removed");
	}
	if (r->host_dirty > 0)
		sb_add(summary, summarylen,
		       " (the host's uncommitted changes "
		       "were not part of the session)");
	return rc;
}

const char *gitiso_base(const struct gitiso_repo *r)
{
	return r->base_hex;
}

/* Rebuilds the handle of a session whose launcher died, from what the
 * launcher recorded outside the container (never from the clone, which
 * the agent could edit): host work tree, clone path, id and base. */
static int resume_inner(const char *host_workdir, const char *clone_path,
			const char *session_id, const char *base_hex,
			struct gitiso_repo **out, char *err, size_t errlen)
{
	struct gitiso_repo *r;
	git_repository *host = NULL;
	char *objdir = NULL;
	const char *slash;
	int rc = -EIO;

	*out = NULL;
	if (host_workdir == NULL || clone_path == NULL || base_hex == NULL ||
	    !valid_session_id(session_id) ||
	    strlen(base_hex) != GIT_OID_HEXSZ) {
		seterr(err, errlen,
		       "gitiso: cannot resume: need host, clone path, a valid "
		       "session id and a %d-digit base commit",
		       GIT_OID_HEXSZ);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	if (git_libgit2_init() < 0) {
		free(r);
		return -EIO;
	}
	r->libgit2_up = true;
	if (git_oid_fromstr(&r->base, base_hex) != 0) {
		seterr(err, errlen, "gitiso: cannot resume: bad base commit %s",
		       base_hex);
		rc = -EINVAL;
		goto fail;
	}
	git_oid_tostr(r->base_hex, sizeof(r->base_hex), &r->base);
	r->session_id = strdup(session_id);
	r->branch_ref = xasprintf("refs/heads/agentsafe/%s", session_id);
	r->branch_short = xasprintf("agentsafe/%s", session_id);
	r->clone_path = realpath(clone_path, NULL);
	if (r->clone_path == NULL) {
		rc = -errno;
		seterr(err, errlen,
		       "gitiso: cannot resume: session clone %s: %s",
		       clone_path, strerror(errno));
		goto fail;
	}
	slash = strrchr(r->clone_path, '/');
	r->name = strdup(slash ? slash + 1 : r->clone_path);
	r->clone_gitdir = xasprintf("%s/.git/", r->clone_path);
	if (!r->session_id || !r->branch_ref || !r->branch_short || !r->name ||
	    !r->clone_gitdir) {
		rc = -ENOMEM;
		goto fail;
	}
	if (git_repository_open_ext(&host, host_workdir,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 ||
	    git_repository_workdir(host) == NULL) {
		seterr(err, errlen,
		       "gitiso: cannot resume: %s is not a git work tree: %s",
		       host_workdir, git_msg());
		rc = -ENOENT;
		goto fail;
	}
	r->host_workdir = strdup(git_repository_workdir(host));
	r->host_gitdir = strdup(git_repository_path(host));
	objdir = xasprintf("%sobjects", git_repository_commondir(host));
	if (!r->host_workdir || !r->host_gitdir || !objdir) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = collect_readonly_paths(r, objdir, err, errlen);
	if (rc != 0)
		goto fail;
	r->alternates = xasprintf("%s\n", r->ro[0]);
	r->prepare_summary = xasprintf("%s: resumed session clone %s on %s",
				       r->name, r->clone_path, r->branch_short);
	if (!r->alternates || !r->prepare_summary) {
		rc = -ENOMEM;
		goto fail;
	}
	r->host_shallow = git_repository_is_shallow(host) == 1;
	git_repository_free(host);
	free(objdir);
	*out = r;
	return 0;
fail:
	git_repository_free(host);
	free(objdir);
	gitiso_free(r);
	return rc;
}

/* libgit2's ownership check (safe.directory) exists so that a repository
 * owned by someone else cannot make git run its configured programs
 * (fsmonitor, hooks, filters); libgit2 runs none of them. The clone is
 * legitimately owned by the container's uid (which may differ from ours
 * when the launcher runs as root), and the layout checks above stand in
 * for the ownership check, so it is off while gitiso works and restored
 * afterwards. */
static int owner_check_off(void)
{
	int was = 1;

	if (git_libgit2_opts(GIT_OPT_GET_OWNER_VALIDATION, &was) != 0)
		was = 1;
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
	return was;
}

int gitiso_prepare(const char *host_path, const char *sessions_dir,
		   const char *session_id, struct gitiso_repo **out, char *err,
		   size_t errlen)
{
	int was, rc;

	if (out == NULL)
		return -EINVAL;
	if (git_libgit2_init() < 0) {
		seterr(err, errlen, "gitiso: libgit2 init failed: %s",
		       git_msg());
		return -EIO;
	}
	was = owner_check_off();
	rc = prepare_inner(host_path, sessions_dir, session_id, out, err,
			   errlen);
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, was);
	git_libgit2_shutdown();
	return rc;
}

int gitiso_finish(struct gitiso_repo *r, char *summary, size_t summarylen,
		  char *err, size_t errlen)
{
	int was, rc;

	if (r == NULL)
		return -EINVAL;
	was = owner_check_off();
	rc = finish_inner(r, summary, summarylen, err, errlen);
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, was);
	return rc;
}

int gitiso_resume(const char *host_workdir, const char *clone_path,
		  const char *session_id, const char *base_hex,
		  struct gitiso_repo **out, char *err, size_t errlen)
{
	int was, rc;

	if (out == NULL)
		return -EINVAL;
	if (git_libgit2_init() < 0)
		return -EIO;
	was = owner_check_off();
	rc = resume_inner(host_workdir, clone_path, session_id, base_hex, out,
			  err, errlen);
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, was);
	git_libgit2_shutdown();
	return rc;
}
