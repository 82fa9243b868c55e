/* Filesystem helpers for code that touches directories another party can
 * write to (a session clone the agent had read-write): walks that never
 * follow a symlink or cross a mount, opens confined beneath a root, and
 * bounded reads. Errors: 0 or a negative errno, and a sentence naming the
 * path in the caller's err buffer (err may be NULL). */
#ifndef AGENTSAFE_UTIL_FSUTIL_H
#define AGENTSAFE_UTIL_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* A growable list of owned strings. Zero-initialise it; free it with
 * fs_pathvec_free(). */
struct fs_pathvec {
	char **v;
	size_t n, cap;
};

/* Appends s and takes ownership of it, also on failure (then s is freed).
 * s may be NULL, the result of a failed strdup/asprintf: -ENOMEM, so a
 * caller can pass an allocation straight in. */
int fs_pathvec_push(struct fs_pathvec *pv, char *s);
/* Frees every string and the array; leaves *pv empty and reusable. */
void fs_pathvec_free(struct fs_pathvec *pv);

/* Opens directory rel beneath the directory rootfd: no symlink in any
 * component, no mount crossed, and rel may not be absolute or hold a ".."
 * component (-EXDEV, also on a kernel that would allow "a/.."). Returns a
 * new O_CLOEXEC descriptor the caller closes, or a negative errno. On a
 * kernel without openat2 (before 5.6) only the final component is checked
 * for a symlink. */
int fs_open_beneath(int rootfd, const char *rel);

/* mkdir -p: creates path and missing parents with mode (existing
 * directories are fine; an existing non-directory is -ENOTDIR). */
int fs_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/* Follow a symlink in the last component of fs_read_small's path. */
#define FS_READ_FOLLOW 0x1u

/* Reads a regular file of at most max bytes into a new NUL-terminated
 * buffer the caller frees (*out; *lenp gets the length when not NULL).
 * Without FS_READ_FOLLOW a final symlink is refused (-ELOOP). FIFOs and
 * devices are refused (-EINVAL) without blocking on them; a larger file is
 * -EFBIG. On error *out is NULL. */
int fs_read_small(const char *path, size_t max, unsigned flags, char **out,
		  size_t *lenp, char *err, size_t errlen);

/* Creates path (which must not exist; a final symlink is not followed)
 * with mode and writes len bytes of data to it. */
int fs_write_new(const char *path, const void *data, size_t len, mode_t mode,
		 char *err, size_t errlen);

/* Deletes root and everything below it without following a symlink or
 * crossing a mount point (-EXDEV, nothing above it removed). Directories
 * the tree's owner made unreadable are opened up first. A root that does
 * not exist is success; a root that is not a directory is -ENOTDIR. */
int fs_rmtree(const char *root, char *err, size_t errlen);

/* Gives root and everything below it to uid:gid: symlinks themselves are
 * changed, never their targets, and directories on another mount are
 * changed but not entered. */
int fs_chown_tree(const char *root, uid_t uid, gid_t gid, char *err,
		  size_t errlen);

#endif
