/* `agentsafe policy edit`: the visudo way. The user edits a copy next to
 * the policy; the copy replaces the policy (rename, atomic) only once the
 * real loader accepts it, so a running session's SIGHUP reload never sees
 * a half-written or broken file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "policy.h"

#define PROG "agentsafe policy edit"

/* Copy src into the open fd dst; 0 or -errno. */
static int copy_into(const char *src, int dst)
{
	FILE *in = fopen(src, "rb");
	if (in == NULL)
		return -errno;
	char buf[8192];
	size_t n;
	int rc = 0;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
		if (write(dst, buf, n) != (ssize_t)n) {
			rc = -EIO;
			break;
		}
	}
	if (ferror(in))
		rc = -EIO;
	(void)fclose(in);
	return rc;
}

/* The installed example, for a user without a policy yet (as
 * agentsafe-launch does on its first run). */
static const char *example_policy(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *sl = strrchr(exe, '/');
		if (sl != NULL)
			*sl = '\0';
		int k =
		    snprintf(buf, len,
			     "%s/../share/agentsafe/examples/policy.yaml", exe);
		if (k > 0 && (size_t)k < len && access(buf, R_OK) == 0)
			return buf;
	}
	snprintf(buf, len, "%s/examples/policy.yaml", AGENTSAFE_SOURCE_DIR);
	return access(buf, R_OK) == 0 ? buf : NULL;
}

/* $VISUAL, else $EDITOR, else vi, run through the shell as the user's own
 * setting ("code --wait" has arguments) with the file as "$1". */
static int run_editor(const char *file)
{
	const char *ed = getenv("VISUAL");
	if (ed == NULL || ed[0] == '\0')
		ed = getenv("EDITOR");
	if (ed == NULL || ed[0] == '\0')
		ed = "vi";
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s \"$1\"", ed);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, "sh", file, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, PROG ": the editor (%s) failed (status %d)\n",
			ed,
			WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		return -ECANCELED;
	}
	return 0;
}

static bool same_content(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	bool same = fa != NULL && fb != NULL;
	while (same) {
		int ca = fgetc(fa), cb = fgetc(fb);
		if (ca != cb)
			same = false;
		if (ca == EOF || cb == EOF)
			break;
	}
	if (fa != NULL)
		(void)fclose(fa);
	if (fb != NULL)
		(void)fclose(fb);
	return same;
}

/* visudo's question, without its "(Q)uit and save anyway": a broken
 * policy would stop the next session. No answer (EOF) drops the copy. */
static int ask_again(void)
{
	for (;;) {
		fprintf(stderr, "What now? (e)dit again, e(x)it without "
				"saving: ");
		(void)fflush(stderr);
		char line[64];
		if (fgets(line, sizeof line, stdin) == NULL) {
			(void)fputc('\n', stderr);
			return 'x';
		}
		if (line[0] == 'e' || line[0] == 'x')
			return line[0];
	}
}

/* Make path's folder (one level, 0700) when missing. */
static int ensure_dir(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *sl = strrchr(dir, '/');
	if (sl == NULL || sl == dir)
		return 0;
	*sl = '\0';
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

int cli_policy_edit(const char *path)
{
	char tmp[PATH_MAX], ex[PATH_MAX];
	const char *from = path;
	bool existed = access(path, F_OK) == 0;
	if (!existed) {
		from = example_policy(ex, sizeof ex);
		int drc = ensure_dir(path);
		if (drc != 0) {
			fprintf(stderr,
				PROG ": cannot create the folder of %s: "
				     "%s\n",
				path, strerror(-drc));
			return 1;
		}
	}
	int n = snprintf(tmp, sizeof tmp, "%s.edit-XXXXXX.yaml", path);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		fprintf(stderr, PROG ": path too long: %s\n", path);
		return 2;
	}
	/* The copy lives beside the policy so that rename() is atomic. */
	int fd = mkstemps(tmp, 5);
	if (fd < 0) {
		fprintf(stderr, PROG ": cannot create a copy beside %s: %s\n",
			path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (existed && stat(path, &st) == 0)
		(void)fchmod(fd, st.st_mode & 07777);
	int rc = from != NULL ? copy_into(from, fd) : 0;
	(void)close(fd);
	if (rc != 0) {
		fprintf(stderr, PROG ": cannot copy %s: %s\n", from,
			strerror(-rc));
		(void)unlink(tmp);
		return 1;
	}
	for (;;) {
		if (run_editor(tmp) != 0) {
			fprintf(stderr, PROG ": %s left unchanged\n", path);
			rc = 1;
			break;
		}
		if (existed && same_content(tmp, path)) {
			printf("%s: no changes\n", path);
			rc = 0;
			break;
		}
		struct policy *p;
		char err[POLICY_ERR_MAX];
		if (policy_load_file(tmp, &p, err, sizeof err) == 0) {
			size_t rules = policy_rule_count(p);
			policy_unref(p);
			if (rename(tmp, path) != 0) {
				fprintf(stderr, PROG ": installing %s: %s\n",
					path, strerror(errno));
				rc = 1;
				break;
			}
			printf("%s: ok (%zu rules), installed\n", path, rules);
			return 0;
		}
		fprintf(stderr, "%s\n", err);
		fprintf(stderr,
			PROG ": the edited policy does not load; %s "
			     "is unchanged\n",
			path);
		if (ask_again() == 'x') {
			rc = 1;
			break;
		}
	}
	(void)unlink(tmp);
	return rc;
}
