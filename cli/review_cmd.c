/* agentsafe review ID [--merge | --discard]: what a session left, read
 * with git (the branch's log and diffstat in the host repo) and with the
 * log reader (its egress summary); then merge the branch into the host's
 * current branch, or delete it with the session's kept clone. git runs as
 * this user, by argv (no shell); its output is the agent's words and is
 * escaped line by line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "logread.h"
#include "session.h"

/* Runs git with argv; its stdout (and stderr) escaped to ours, one line at
 * a time. Returns git's exit status, or -1 when it could not run. */
static int run_git(char *const argv[])
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	(void)fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		if (dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
			_exit(127);
		/* No pager, no colour: the text is escaped here. */
		setenv("GIT_PAGER", "cat", 1);
		setenv("GIT_TERMINAL_PROMPT", "0", 1);
		execvp("git", argv);
		_exit(127);
	}
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while (f != NULL && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		printf("    ");
		logread_fputs_escaped(line, stdout);
		putchar('\n');
	}
	free(line);
	if (f != NULL)
		(void)fclose(f); /* only read */
	else
		close(pfd[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The record's branch must be the one the launcher names for this id: a
 * record is not allowed to steer git at some other branch. */
static bool branch_is_sessions(const struct session_repo *g, const char *id)
{
	char want[64];
	snprintf(want, sizeof want, "agentsafe/%s", id);
	return strcmp(g->branch, want) == 0;
}

static void show_repo(const struct session_repo *g, const char *id)
{
	char range[160], host[512], branch[160];
	(void)logread_escape(g->host, host, sizeof host);
	(void)logread_escape(g->branch, branch, sizeof branch);
	printf("repo %s, branch %s", host, branch);
	if (g->commits > 0 && !g->fetched) {
		char clone[512];
		(void)logread_escape(g->clone, clone, sizeof clone);
		printf(": %ld commit%s NOT fetched; kept clone %s\n",
		       g->commits, g->commits == 1 ? "" : "s", clone);
		return;
	}
	if (g->commits == 0) {
		printf(": no new commits\n");
		return;
	}
	putchar('\n');
	if (!branch_is_sessions(g, id) ||
	    strspn(g->base, "0123456789abcdef") != strlen(g->base)) {
		printf("    (the record's branch or base is not this "
		       "session's; not shown)\n");
		return;
	}
	snprintf(range, sizeof range, "%s..%s", g->base, g->branch);
	char *log[] = {"git", "-C",	    (char *)g->host,
		       "log", "--no-color", "--format=%h %an: %s",
		       range, "--",	    NULL};
	char *stat[] = {"git",	"-C",	      (char *)g->host,
			"diff", "--no-color", "--stat",
			range,	"--",	      NULL};
	(void)run_git(log);
	(void)run_git(stat);
}

/* --merge: into the host's current branch; --discard: the branch goes.
 * Then the session's kept clones go (both ways the work is settled). */
static int settle_repo(const struct session_repo *g, const char *id, bool merge)
{
	if (!branch_is_sessions(g, id)) {
		fprintf(stderr,
			"agentsafe review: the record's branch is not "
			"agentsafe/%s; nothing done\n",
			id);
		return 1;
	}
	char *m[] = {"git",   "-C",	   (char *)g->host,
		     "merge", "--no-edit", (char *)g->branch,
		     NULL};
	char *d[] = {"git",    "-C", (char *)g->host,
		     "branch", "-D", (char *)g->branch,
		     NULL};
	if (g->commits > 0 && !g->fetched) {
		fprintf(stderr,
			"agentsafe review: agentsafe/%s's commits are only in "
			"the kept clone; fetch them first (see the session's "
			"end summary)\n",
			id);
		return 1;
	}
	if (g->commits <= 0)
		return 0;
	if (merge && run_git(m) != 0) {
		fprintf(stderr,
			"agentsafe review: the merge of agentsafe/%s failed\n",
			id);
		return 1;
	}
	return run_git(d) == 0 ? 0 : 1;
}

/* <cache>/sessions/<id>, computed from the id, never from the record. */
static int drop_clones(const char *id)
{
	char c[4096], p[4200], err[512] = "";
	if (!session_id_valid(id) || session_xdg_dir("CACHE", c, sizeof c) != 0)
		return 1;
	snprintf(p, sizeof p, "%s/sessions/%s", c, id);
	if (fs_rmtree(p, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe review: %s\n", err);
		return 1;
	}
	return 0;
}

static void review_usage(FILE *f)
{
	(void)fputs(
	    "usage: agentsafe review ID|NAME [--merge | --discard]\n"
	    "Show what a session left: per repo the session branch's "
	    "commits and\ndiffstat (git log/diff in your repo), then the "
	    "session's egress summary.\n  --merge    merge the branch into "
	    "the repo's current branch, then\n             delete it and the "
	    "session's kept clones\n  --discard  delete the branch and the "
	    "session's kept clones\n",
	    f);
}

int cli_review_main(int argc, char **argv)
{
	const char *who = NULL;
	int mode = 0; /* 1 merge, 2 discard */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--merge") == 0 && mode == 0)
			mode = 1;
		else if (strcmp(argv[i], "--discard") == 0 && mode == 0)
			mode = 2;
		else if (strcmp(argv[i], "--help") == 0) {
			review_usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && who == NULL)
			who = argv[i];
		else {
			review_usage(stderr);
			return 2;
		}
	}
	char id[SESSION_ID_LEN + 1];
	struct session_record r;
	if (who == NULL) {
		review_usage(stderr);
		return 2;
	}
	if (session_find(who, id, sizeof id) != 0 ||
	    session_record_load(id, &r) != 0) {
		fprintf(stderr,
			"agentsafe review: no session %s (see agentsafe "
			"sessions)\n",
			who);
		return 1;
	}
	int rc = 0;
	if (session_is_live(id)) {
		fprintf(stderr,
			"agentsafe review: session %s is still running\n", id);
		session_record_free(&r);
		return 1;
	}
	char line[1024];
	session_summary(&r, line, sizeof line);
	printf("%s\n", line);
	for (size_t i = 0; i < r.nrepos; i++) {
		if (mode == 0)
			show_repo(&r.repos[i], id);
		else
			rc |= settle_repo(&r.repos[i], id, mode == 1);
	}
	if (mode != 0 && rc == 0)
		rc = drop_clones(id);
	if (mode == 0) {
		printf("egress:\n");
		(void)fflush(stdout);
		char *lg[] = {"log", "--summary", "--no-pager",
			      (char *)r.egress_log, NULL};
		rc = cli_log_main(4, lg);
	}
	session_record_free(&r);
	return rc;
}
