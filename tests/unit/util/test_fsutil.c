/* util/fsutil on real temporary directories: the tree walks remove and
 * chown only what is inside the tree (symlinks planted in it lead nowhere,
 * mount points stop the removal), open_beneath stays beneath its root, and
 * the small-file reader refuses links, FIFOs and oversized files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "errbuf.h"
#include "fsutil.h"

static char g_tmp[256];

__attribute__((format(printf, 1, 2))) static char *path(const char *fmt, ...)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char rel[1024];
	char *b = bufs[next++ % 8];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	(void)snprintf(b, PATH_MAX, "%s/%s", g_tmp, rel);
	return b;
}

static void put(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

static int setup(void **state)
{
	(void)state;
	(void)snprintf(g_tmp, sizeof(g_tmp), "/tmp/agentsafe-fsutil-XXXXXX");
	return mkdtemp(g_tmp) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 32];

	(void)state;
	(void)snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s'; rm -rf '%s'",
		       g_tmp, g_tmp);
	return system(cmd) == 0 ? 0 : -1;
}

/* A tree the agent could have left: nested dirs, an unreadable one. */
static void make_tree(const char *root)
{
	char p[PATH_MAX];

	assert_int_equal(fs_mkdir_p(root, 0755, NULL, 0), 0);
	(void)snprintf(p, sizeof(p), "%s/a/b/c", root);
	assert_int_equal(fs_mkdir_p(p, 0755, NULL, 0), 0);
	(void)snprintf(p, sizeof(p), "%s/a/b/c/f.txt", root);
	put(p, "x");
	(void)snprintf(p, sizeof(p), "%s/top.txt", root);
	put(p, "y");
	(void)snprintf(p, sizeof(p), "%s/a/locked", root);
	assert_int_equal(mkdir(p, 0700), 0);
	(void)snprintf(p, sizeof(p), "%s/a/locked/inner", root);
	put(p, "z");
	(void)snprintf(p, sizeof(p), "%s/a/locked", root);
	assert_int_equal(chmod(p, 0), 0);
}

static void rmtree_removes_nested_and_unreadable_directories(void **state)
{
	char err[256] = "";

	(void)state;
	make_tree(path("t1"));
	assert_int_equal(fs_rmtree(path("t1"), err, sizeof(err)), 0);
	assert_false(exists(path("t1")));
}

static void rmtree_of_a_missing_root_is_success(void **state)
{
	(void)state;
	assert_int_equal(fs_rmtree(path("nothing-here"), NULL, 0), 0);
}

/* Links planted in the tree point at a directory and a file outside it,
 * and a link inside a subdirectory points back up: all of them go, what
 * they point to stays. */
static void rmtree_never_follows_symlinks_out_of_the_tree(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(fs_mkdir_p(path("victim/deep"), 0755, NULL, 0), 0);
	put(path("victim/deep/keep.txt"), "precious");
	put(path("victim/file.txt"), "precious");
	make_tree(path("t2"));
	assert_int_equal(symlink(path("victim"), path("t2/to-dir")), 0);
	assert_int_equal(symlink(path("victim/file.txt"), path("t2/to-file")),
			 0);
	assert_int_equal(symlink("../../../victim", path("t2/a/b/up")), 0);
	assert_int_equal(symlink(path("victim/deep"), path("t2/a/b/c/deep")),
			 0);

	assert_int_equal(fs_rmtree(path("t2"), err, sizeof(err)), 0);
	assert_false(exists(path("t2")));
	assert_true(exists(path("victim/deep/keep.txt")));
	assert_true(exists(path("victim/file.txt")));
	assert_true(exists(path("victim/deep")));
}

/* The root itself being a link is refused: the link is not followed to
 * remove its target. */
static void rmtree_refuses_a_root_that_is_a_symlink(void **state)
{
	char err[256] = "";

	(void)state;
	make_tree(path("real"));
	assert_int_equal(symlink(path("real"), path("alias")), 0);
	assert_int_equal(fs_rmtree(path("alias"), err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, path("alias")));
	assert_true(exists(path("real/top.txt")));
	put(path("plain"), "file");
	assert_int_equal(fs_rmtree(path("plain"), NULL, 0), -ENOTDIR);
	assert_true(exists(path("plain")));
}

/* A mount inside the tree (a bind mount an agent's container left, say)
 * stops the removal before anything on it is touched. Runs in a child in
 * its own mount namespace, so no mount can outlive the test. */
static void rmtree_stops_at_a_mount_point(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	make_tree(path("t3"));
	assert_int_equal(mkdir(path("t3/mnt"), 0755), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256] = "";
		int rc;

		if (unshare(CLONE_NEWNS) != 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
		    mount("tmpfs", path("t3/mnt"), "tmpfs", 0, "size=1m") != 0)
			_exit(77);
		put(path("t3/mnt/on-the-mount"), "keep");
		rc = fs_rmtree(path("t3"), err, sizeof(err));
		if (rc != -EXDEV || strstr(err, "mount point") == NULL)
			_exit(1);
		_exit(exists(path("t3/mnt/on-the-mount")) ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip(); /* not allowed to make a mount namespace here */
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void open_beneath_stays_beneath_the_root(void **state)
{
	int root, fd;

	(void)state;
	make_tree(path("t4"));
	assert_int_equal(symlink(path("victim-dir"), path("t4/a/out")), 0);
	assert_int_equal(mkdir(path("victim-dir"), 0755), 0);
	assert_int_equal(mkdir(path("victim-dir/sub"), 0755), 0);
	root = open(path("t4"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(root >= 0);

	fd = fs_open_beneath(root, "a/b");
	assert_true(fd >= 0);
	(void)close(fd);
	fd = fs_open_beneath(root, ".");
	assert_true(fd >= 0);
	(void)close(fd);

	assert_int_equal(fs_open_beneath(root, ".."), -EXDEV);
	assert_int_equal(fs_open_beneath(root, "a/../.."), -EXDEV);
	/* inside the root, but ".." is refused by its text all the same */
	assert_int_equal(fs_open_beneath(root, "a/../a"), -EXDEV);
	assert_int_equal(fs_open_beneath(root, "a/b/.."), -EXDEV);
	assert_int_equal(fs_open_beneath(root, path("t4/a")), -EXDEV);
	assert_int_equal(fs_open_beneath(root, "/"), -EXDEV);
	/* names that only look like ".." are fine */
	assert_int_equal(mkdir(path("t4/..x"), 0755), 0);
	fd = fs_open_beneath(root, "..x");
	assert_true(fd >= 0);
	(void)close(fd);

	/* A symlink as the last component is not a directory to open; one
	 * in the middle is refused (openat2 RESOLVE_NO_SYMLINKS), although
	 * following it would find a directory. */
	assert_int_equal(fs_open_beneath(root, "a/out"), -ENOTDIR);
	assert_int_equal(fs_open_beneath(root, "a/out/sub"), -ELOOP);
	assert_int_equal(fs_open_beneath(root, "top.txt"), -ENOTDIR);
	(void)close(root);
}

static void mkdir_p_creates_parents_and_refuses_a_file(void **state)
{
	char err[256] = "";
	struct stat st;

	(void)state;
	assert_int_equal(fs_mkdir_p(path("m/n/o/"), 0700, err, sizeof(err)), 0);
	assert_int_equal(stat(path("m/n/o"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(fs_mkdir_p(path("m/n/o"), 0700, err, sizeof(err)), 0);
	put(path("m/file"), "x");
	assert_int_equal(fs_mkdir_p(path("m/file"), 0700, err, sizeof(err)),
			 -ENOTDIR);
	assert_non_null(strstr(err, path("m/file")));
	assert_int_equal(fs_mkdir_p(path("m/file/sub"), 0700, err, sizeof(err)),
			 -ENOTDIR);
	assert_int_equal(fs_mkdir_p("", 0700, err, sizeof(err)), -ENAMETOOLONG);
}

static void read_small_reads_a_regular_file_whole(void **state)
{
	char *buf = NULL;
	size_t len = 0;

	(void)state;
	put(path("r.txt"), "line one\nline two\n");
	assert_int_equal(
	    fs_read_small(path("r.txt"), 64, 0, &buf, &len, NULL, 0), 0);
	assert_string_equal(buf, "line one\nline two\n");
	assert_int_equal(len, 18);
	free(buf);
	put(path("empty"), "");
	assert_int_equal(
	    fs_read_small(path("empty"), 64, 0, &buf, NULL, NULL, 0), 0);
	assert_string_equal(buf, "");
	free(buf);
}

static void read_small_refuses_links_fifos_and_big_files(void **state)
{
	char err[256] = "";
	char *buf = (char *)"unset";

	(void)state;
	put(path("big"), "0123456789");
	assert_int_equal(
	    fs_read_small(path("big"), 9, 0, &buf, NULL, err, sizeof(err)),
	    -EFBIG);
	assert_null(buf);
	assert_non_null(strstr(err, path("big")));

	assert_int_equal(symlink(path("big"), path("link")), 0);
	assert_int_equal(
	    fs_read_small(path("link"), 64, 0, &buf, NULL, err, sizeof(err)),
	    -ELOOP);
	assert_int_equal(fs_read_small(path("link"), 64, FS_READ_FOLLOW, &buf,
				       NULL, err, sizeof(err)),
			 0);
	assert_string_equal(buf, "0123456789");
	free(buf);

	/* No reader would ever come: an open without O_NONBLOCK (or the
	 * lstat) would hang here until the alarm kills the test. */
	assert_int_equal(mkfifo(path("fifo"), 0600), 0);
	(void)alarm(10);
	assert_int_equal(
	    fs_read_small(path("fifo"), 64, 0, &buf, NULL, err, sizeof(err)),
	    -EINVAL);
	(void)alarm(0);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(fs_read_small(path("dir-missing"), 64, 0, &buf, NULL,
				       err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(
	    fs_read_small(g_tmp, 64, 0, &buf, NULL, err, sizeof(err)), -EINVAL);
}

static void write_new_never_replaces_or_follows(void **state)
{
	char err[256] = "";
	char *buf = NULL;

	(void)state;
	assert_int_equal(
	    fs_write_new(path("w"), "data\n", 5, 0640, err, sizeof(err)), 0);
	assert_int_equal(fs_read_small(path("w"), 64, 0, &buf, NULL, NULL, 0),
			 0);
	assert_string_equal(buf, "data\n");
	free(buf);
	assert_int_equal(
	    fs_write_new(path("w"), "again", 5, 0640, err, sizeof(err)),
	    -EEXIST);
	assert_non_null(strstr(err, path("w")));
	/* a dangling link: its target must not be created */
	assert_int_equal(symlink(path("target"), path("dangling")), 0);
	assert_int_equal(
	    fs_write_new(path("dangling"), "x", 1, 0640, err, sizeof(err)),
	    -EEXIST);
	assert_false(exists(path("target")));
}

/* Needs root (chown to another uid). The link planted in the tree is
 * re-owned itself; the file outside it that it points to is not. */
static void chown_tree_changes_only_what_is_inside(void **state)
{
	const uid_t to = 54321;
	char err[256] = "";
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	put(path("outside"), "not mine to change");
	make_tree(path("t5"));
	assert_int_equal(symlink(path("outside"), path("t5/a/link")), 0);
	assert_int_equal(fs_chown_tree(path("t5"), to, to, err, sizeof(err)),
			 0);
	assert_int_equal(lstat(path("t5"), &st), 0);
	assert_int_equal(st.st_uid, to);
	assert_int_equal(lstat(path("t5/a/b/c/f.txt"), &st), 0);
	assert_int_equal(st.st_uid, to);
	assert_int_equal(lstat(path("t5/a/locked/inner"), &st), 0);
	assert_int_equal(st.st_uid, to);
	assert_int_equal(lstat(path("t5/a/link"), &st), 0);
	assert_int_equal(st.st_uid, to);
	assert_int_equal(lstat(path("outside"), &st), 0);
	assert_int_equal(st.st_uid, 0);
}

static void pathvec_takes_ownership_even_on_failure(void **state)
{
	struct fs_pathvec pv = {0};

	(void)state;
	for (int i = 0; i < 200; i++)
		assert_int_equal(fs_pathvec_push(&pv, strdup("x")), 0);
	assert_int_equal(pv.n, 200);
	assert_int_equal(fs_pathvec_push(&pv, NULL), -ENOMEM);
	assert_int_equal(pv.n, 200);
	fs_pathvec_free(&pv);
	assert_null(pv.v);
	assert_int_equal(pv.n, 0);
}

static void errbuf_truncates_and_accepts_no_buffer(void **state)
{
	char small[8];

	(void)state;
	errbuf_set(small, sizeof(small), "cannot open %s", "/a/long/path");
	assert_string_equal(small, "cannot ");
	errbuf_set(NULL, 0, "ignored %d", 1);
	errbuf_set(small, 0, "ignored %d", 2);
	assert_string_equal(small, "cannot ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rmtree_removes_nested_and_unreadable_directories),
	    cmocka_unit_test(rmtree_of_a_missing_root_is_success),
	    cmocka_unit_test(rmtree_never_follows_symlinks_out_of_the_tree),
	    cmocka_unit_test(rmtree_refuses_a_root_that_is_a_symlink),
	    cmocka_unit_test(rmtree_stops_at_a_mount_point),
	    cmocka_unit_test(open_beneath_stays_beneath_the_root),
	    cmocka_unit_test(mkdir_p_creates_parents_and_refuses_a_file),
	    cmocka_unit_test(read_small_reads_a_regular_file_whole),
	    cmocka_unit_test(read_small_refuses_links_fifos_and_big_files),
	    cmocka_unit_test(write_new_never_replaces_or_follows),
	    cmocka_unit_test(chown_tree_changes_only_what_is_inside),
	    cmocka_unit_test(pathvec_takes_ownership_even_on_failure),
	    cmocka_unit_test(errbuf_truncates_and_accepts_no_buffer),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
