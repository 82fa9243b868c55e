/* Filesystem helpers (see fsutil.h). The tree walks keep an explicit list of
 * directories instead of recursing, so a deep tree planted by an agent
 * costs memory, not stack, and every directory is reopened beneath the
 * root by name rather than trusted from an earlier lookup. */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "errbuf.h"

/* What a walk callback asks for after visiting a directory entry. */
#define WALK_DESCEND 1

/* One walk below root. dirs lists, in pre-order, "." and every directory
 * descended into, relative to root ("a", "a/b"): children always come after
 * their parent, which lets fs_rmtree remove them in reverse. */
struct walk {
	const char *root;
	int rootfd;
	dev_t dev;
	struct fs_pathvec dirs;
	char *err;
	size_t errlen;
};

/* Called for each entry of directory rel (open as dirfd) with its lstat;
 * returns a negative errno to stop, WALK_DESCEND to walk into it, or 0. */
typedef int (*walk_visit)(struct walk *w, int dirfd, const char *rel,
			  const char *name, const struct stat *st, void *arg);

int fs_pathvec_push(struct fs_pathvec *pv, char *s)
{
	char **nv;
	size_t nc;

	if (s == NULL)
		return -ENOMEM;
	if (pv->n == pv->cap) {
		nc = pv->cap != 0 ? pv->cap * 2 : 64;
		nv = realloc(pv->v, nc * sizeof(*nv));
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

void fs_pathvec_free(struct fs_pathvec *pv)
{
	for (size_t i = 0; i < pv->n; i++)
		free(pv->v[i]);
	free(pv->v);
	pv->v = NULL;
	pv->n = 0;
	pv->cap = 0;
}

/* RESOLVE_BENEATH alone lets "a/.." through, and the pre-5.6 fallback would
 * let anything through: refuse ".." and absolute paths by their text. */
static bool has_dotdot(const char *rel)
{
	const char *p = rel;

	while (*p != '\0') {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += n;
		while (*p == '/')
			p++;
	}
	return false;
}

int fs_open_beneath(int rootfd, const char *rel)
{
	struct open_how how;
	long fd;

	if (rel == NULL)
		return -EINVAL;
	if (rel[0] == '/' || has_dotdot(rel))
		return -EXDEV;
	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV |
		      RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		fd = openat(rootfd, rel, (int)how.flags);
	return fd < 0 ? -errno : (int)fd;
}

int fs_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	struct stat st;
	char saved;

	if (n == 0 || n >= sizeof(buf)) {
		errbuf_set(err, errlen,
			   "cannot create directory '%.64s...': "
			   "empty or too long a path",
			   path);
		return -ENAMETOOLONG;
	}
	memcpy(buf, path, n + 1);
	/* From 1: a leading '/' is the root, which exists. */
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		saved = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST) {
			int e = errno;

			errbuf_set(err, errlen,
				   "cannot create directory %s: %s", buf,
				   strerror(e));
			return -e;
		}
		buf[i] = saved;
	}
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		errbuf_set(err, errlen, "%s exists and is not a directory",
			   path);
		return -ENOTDIR;
	}
	return 0;
}

/* The lstat/stat before the open keeps it from ever touching a FIFO or a
 * device (an open can block or have side effects); O_NONBLOCK covers one
 * swapped in between, and the fstat after it is what is trusted. */
static int open_regular(const char *path, unsigned flags, struct stat *st)
{
	int oflags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
	struct stat pre;
	int fd;

	if ((flags & FS_READ_FOLLOW) == 0)
		oflags |= O_NOFOLLOW;
	if (((flags & FS_READ_FOLLOW) != 0 ? stat(path, &pre)
					   : lstat(path, &pre)) != 0)
		return -errno;
	if (S_ISLNK(pre.st_mode))
		return -ELOOP;
	if (!S_ISREG(pre.st_mode))
		return -EINVAL;
	fd = open(path, oflags);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) ||
	    st->st_ino != pre.st_ino || st->st_dev != pre.st_dev) {
		(void)close(fd);
		return -EINVAL;
	}
	return fd;
}

int fs_read_small(const char *path, size_t max, unsigned flags, char **out,
		  size_t *lenp, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t want, got = 0;
	ssize_t r;
	int fd, rc = 0;

	*out = NULL;
	memset(&st, 0, sizeof(st));
	fd = open_regular(path, flags, &st);
	if (fd < 0) {
		rc = fd;
		errbuf_set(err, errlen, "cannot read %s: %s", path,
			   rc == -EINVAL ? "not a regular file"
					 : strerror(-rc));
		goto out;
	}
	if ((unsigned long long)st.st_size > max) {
		rc = -EFBIG;
		errbuf_set(err, errlen, "%s is larger than %zu bytes", path,
			   max);
		goto out;
	}
	want = (size_t)st.st_size;
	buf = malloc(want + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		errbuf_set(err, errlen, "out of memory reading %s", path);
		goto out;
	}
	/* Up to the size fstat saw: a file that grows meanwhile is cut
	 * there, one that shrinks ends early. */
	while (got < want) {
		r = read(fd, buf + got, want - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			errbuf_set(err, errlen, "cannot read %s: %s", path,
				   strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	*out = buf;
	buf = NULL;
	if (lenp != NULL)
		*lenp = got;
out:
	free(buf);
	if (fd >= 0)
		(void)close(fd); /* read-only */
	return rc;
}

int fs_write_new(const char *path, const void *data, size_t len, mode_t mode,
		 char *err, size_t errlen)
{
	const char *p = data;
	size_t off = 0;
	ssize_t w;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode);
	if (fd < 0) {
		rc = -errno;
		errbuf_set(err, errlen, "cannot create %s: %s", path,
			   strerror(errno));
		return rc;
	}
	while (off < len) {
		w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			errbuf_set(err, errlen, "cannot write %s: %s", path,
				   strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	/* close reports delayed write errors (NFS, quota) */
	if (close(fd) != 0 && rc == 0) {
		rc = -errno;
		errbuf_set(err, errlen, "cannot write %s: %s", path,
			   strerror(errno));
	}
	return rc;
}

static char *join_rel(const char *rel, const char *name)
{
	char *s = NULL;

	if (strcmp(rel, ".") == 0)
		return strdup(name);
	return asprintf(&s, "%s/%s", rel, name) < 0 ? NULL : s;
}

/* root/rel/name for a message, without a "." in between; name may be NULL. */
static void walk_path(const struct walk *w, const char *rel, const char *name,
		      char *buf, size_t len)
{
	bool top = strcmp(rel, ".") == 0;

	(void)snprintf(buf, len, "%s%s%s%s%s", w->root, top ? "" : "/",
		       top ? "" : rel, name != NULL ? "/" : "",
		       name != NULL ? name : "");
}

static void walk_err(struct walk *w, const char *what, const char *rel,
		     const char *name, int errnum)
{
	char path[PATH_MAX];

	walk_path(w, rel, name, path, sizeof(path));
	errbuf_set(w->err, w->errlen, "%s %s: %s", what, path,
		   strerror(errnum));
}

static int walk_begin(struct walk *w, const char *root, char *err,
		      size_t errlen)
{
	struct stat st;
	int rc;

	memset(w, 0, sizeof(*w));
	w->root = root;
	w->err = err;
	w->errlen = errlen;
	w->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (w->rootfd < 0) {
		rc = -errno;
		errbuf_set(err, errlen, "cannot open directory %s: %s", root,
			   strerror(errno));
		return rc;
	}
	if (fstat(w->rootfd, &st) != 0) {
		rc = -errno;
		errbuf_set(err, errlen, "cannot stat %s: %s", root,
			   strerror(errno));
		(void)close(w->rootfd);
		w->rootfd = -1;
		return rc;
	}
	w->dev = st.st_dev;
	return fs_pathvec_push(&w->dirs, strdup("."));
}

static void walk_end(struct walk *w)
{
	if (w->rootfd >= 0)
		(void)close(w->rootfd);
	w->rootfd = -1;
	fs_pathvec_free(&w->dirs);
}

/* Visits the entries of dirs.v[i]; may append to dirs (the string pointer
 * rel stays valid when the array moves). */
static int walk_dir(struct walk *w, size_t i, walk_visit visit, void *arg)
{
	const char *rel = w->dirs.v[i];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, rc = 0;

	fd = fs_open_beneath(w->rootfd, rel);
	if (fd < 0) {
		walk_err(w, "cannot open", rel, NULL, -fd);
		return fd;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		rc = -errno;
		walk_err(w, "cannot read", rel, NULL, errno);
		(void)close(fd);
		return rc;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			rc = -errno;
			walk_err(w, "cannot stat", rel, de->d_name, errno);
			break;
		}
		rc = visit(w, fd, rel, de->d_name, &st, arg);
		if (rc == WALK_DESCEND)
			rc = fs_pathvec_push(&w->dirs,
					     join_rel(rel, de->d_name));
	}
	(void)closedir(d);
	return rc;
}

/* dirs grows while it is walked: each directory queued is visited later. */
static int walk_tree(struct walk *w, walk_visit visit, void *arg)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < w->dirs.n; i++)
		rc = walk_dir(w, i, visit, arg);
	return rc;
}

static int rm_visit(struct walk *w, int dirfd, const char *rel,
		    const char *name, const struct stat *st, void *arg)
{
	(void)arg;
	if (S_ISDIR(st->st_mode)) {
		if (st->st_dev != w->dev) {
			char path[PATH_MAX];

			walk_path(w, rel, name, path, sizeof(path));
			errbuf_set(w->err, w->errlen,
				   "%s is a mount point; not removing it",
				   path);
			return -EXDEV;
		}
		/* The tree's writer may have made it unreadable. Best
		 * effort: if this fails, opening it says why. */
		if (fchmodat(dirfd, name, 0700, 0) != 0)
			return WALK_DESCEND;
		return WALK_DESCEND;
	}
	if (unlinkat(dirfd, name, 0) != 0) {
		int e = errno;

		walk_err(w, "cannot remove", rel, name, e);
		return -e;
	}
	return 0;
}

/* Removes the (now empty) directories below the root, deepest first. */
static int rm_dirs(struct walk *w)
{
	const char *rel, *slash;
	char *parent;
	int pfd, rc = 0;

	for (size_t i = w->dirs.n; rc == 0 && i > 1; i--) {
		rel = w->dirs.v[i - 1];
		slash = strrchr(rel, '/');
		parent = slash != NULL ? strndup(rel, (size_t)(slash - rel))
				       : strdup(".");
		if (parent == NULL) {
			errbuf_set(w->err, w->errlen,
				   "out of memory removing %s", w->root);
			return -ENOMEM;
		}
		pfd = fs_open_beneath(w->rootfd, parent);
		free(parent);
		if (pfd < 0)
			rc = pfd;
		else if (unlinkat(pfd, slash != NULL ? slash + 1 : rel,
				  AT_REMOVEDIR) != 0)
			rc = -errno;
		if (rc != 0)
			walk_err(w, "cannot remove", rel, NULL, -rc);
		if (pfd >= 0)
			(void)close(pfd);
	}
	return rc;
}

int fs_rmtree(const char *root, char *err, size_t errlen)
{
	struct walk w = {.rootfd = -1};
	struct stat st;
	int rc;

	if (lstat(root, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		errbuf_set(err, errlen, "cannot remove %s: %s", root,
			   strerror(errno));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		errbuf_set(err, errlen, "cannot remove %s: not a directory",
			   root);
		return -ENOTDIR;
	}
	/* Best effort, as for the directories below: the open says why. */
	if (chmod(root, 0700) != 0)
		errno = 0;
	rc = walk_begin(&w, root, err, errlen);
	if (rc != 0)
		goto out;
	rc = walk_tree(&w, rm_visit, NULL);
	if (rc != 0)
		goto out;
	rc = rm_dirs(&w);
	if (rc != 0)
		goto out;
	if (rmdir(root) != 0) {
		rc = -errno;
		errbuf_set(err, errlen, "cannot remove %s: %s", root,
			   strerror(errno));
	}
out:
	walk_end(&w);
	return rc;
}

struct owner {
	uid_t uid;
	gid_t gid;
};

static int chown_visit(struct walk *w, int dirfd, const char *rel,
		       const char *name, const struct stat *st, void *arg)
{
	const struct owner *o = arg;

	if (fchownat(dirfd, name, o->uid, o->gid, AT_SYMLINK_NOFOLLOW) != 0) {
		int e = errno;

		walk_err(w, "cannot chown", rel, name, e);
		return -e;
	}
	return S_ISDIR(st->st_mode) && st->st_dev == w->dev ? WALK_DESCEND : 0;
}

int fs_chown_tree(const char *root, uid_t uid, gid_t gid, char *err,
		  size_t errlen)
{
	struct owner o = {uid, gid};
	struct walk w = {.rootfd = -1};
	int rc;

	rc = walk_begin(&w, root, err, errlen);
	if (rc != 0)
		goto out;
	if (fchown(w.rootfd, uid, gid) != 0) {
		rc = -errno;
		errbuf_set(err, errlen, "cannot chown %s: %s", root,
			   strerror(errno));
		goto out;
	}
	rc = walk_tree(&w, chown_visit, &o);
out:
	walk_end(&w);
	return rc;
}
