/* The git broker's process: the hooks it installs (through core.hooksPath,
 * never into the host repo), its unix socket, and the accept loop that
 * forks one child per request (broker_req.c). See broker.h. */
#include "broker.h"
#include "broker_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "errbuf.h"

/* The id and paths are spliced into sh single quotes: refuse anything
 * that could end them (ids are [A-Za-z0-9._-] already). */
static bool sh_quotable(const char *s)
{
	return strpbrk(s, "'\n\r") == NULL;
}

/* A ref is refused unless it is the session's branch or below it; an
 * existing ref no push of this session created may only move forward
 * (never be forced or deleted). Every verdict goes to the report the
 * broker turns into egress.log records. */
char *broker_hook_text(const char *id, const char *created)
{
	char *s = NULL;
	if (!sh_quotable(id) || !sh_quotable(created))
		return NULL;
	if (asprintf(
		&s,
		"#!/bin/sh\n"
		"# agentsafe pre-receive: session %s pushes to its own "
		"branches only\n"
		"id='%s'\n"
		"created='%s'\n"
		"report=${AGENTSAFE_GIT_REPORT:-/dev/null}\n"
		"nonzero() { case $1 in *[!0]*) return 0 ;; esac; return 1; }\n"
		"status=0\n"
		"while read -r old new ref; do\n"
		"\tverdict=refused\n"
		"\tcase $ref in\n"
		"\t\"refs/heads/agentsafe/$id\" | "
		"\"refs/heads/agentsafe/$id/\"*) verdict=ok ;;\n"
		"\tesac\n"
		"\tif [ $verdict = ok ] && nonzero \"$old\" &&\n"
		"\t\t! grep -qxF -e \"$ref\" \"$created\" 2>/dev/null; then\n"
		"\t\tif ! nonzero \"$new\" ||\n"
		"\t\t\t! git merge-base --is-ancestor \"$old\" \"$new\" "
		"2>/dev/null; then\n"
		"\t\t\tverdict=not_created\n"
		"\t\tfi\n"
		"\tfi\n"
		"\tprintf '%%s %%s %%s %%s\\n' \"$verdict\" \"$old\" \"$new\" "
		"\"$ref\" >>\"$report\"\n"
		"\t[ $verdict = ok ] || status=1\n"
		"done\n"
		"if [ $status != 0 ]; then\n"
		"\tprintf '%%s\\n' \"" BROKER_REFUSAL_FMT "\" >&2\n"
		"fi\n"
		"exit $status\n",
		id, id, created, "$id") < 0)
		return NULL;
	return s;
}

/* What the push really changed: new refs join the created list (the
 * refs this session may force or delete later). */
static char *post_hook_text(const char *created)
{
	char *s = NULL;
	if (!sh_quotable(created))
		return NULL;
	if (asprintf(&s,
		     "#!/bin/sh\n"
		     "# agentsafe post-receive: remember the refs pushes "
		     "created\n"
		     "created='%s'\n"
		     "report=${AGENTSAFE_GIT_REPORT:-/dev/null}\n"
		     "while read -r old new ref; do\n"
		     "\tcase $old in *[!0]*) ;; *) printf '%%s\\n' \"$ref\" "
		     ">>\"$created\" ;; esac\n"
		     "\tprintf 'updated %%s %%s %%s\\n' \"$old\" \"$new\" "
		     "\"$ref\" >>\"$report\"\n"
		     "done\n"
		     "exit 0\n",
		     created) < 0)
		return NULL;
	return s;
}

static int write_file(const char *path, const char *text, mode_t mode,
		      char *err, size_t errlen)
{
	int fd = open(
	    path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	size_t n = strlen(text);
	int rc = 0;
	if (fd < 0 || write(fd, text, n) != (ssize_t)n || fchmod(fd, mode) != 0)
		rc = errno ? -errno : -EIO;
	if (fd >= 0 && close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc != 0)
		errbuf_set(err, errlen, "git broker: cannot write %s: %s", path,
			   strerror(-rc));
	return rc;
}

/* <dir>/hooks/{pre,post}-receive, <dir>/created, <dir>/reports/. */
static int setup_dir(struct broker_ctx *x, char *err, size_t errlen)
{
	const struct broker_config *c = x->cfg;
	char pre[BROKER_PATH_MAX + 16], post[BROKER_PATH_MAX + 16];
	(void)snprintf(x->hooks, sizeof x->hooks, "%s/hooks", c->dir);
	(void)snprintf(x->created, sizeof x->created, "%s/created", c->dir);
	(void)snprintf(x->reports, sizeof x->reports, "%s/reports", c->dir);
	(void)snprintf(pre, sizeof pre, "%s/pre-receive", x->hooks);
	(void)snprintf(post, sizeof post, "%s/post-receive", x->hooks);
	if ((mkdir(c->dir, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(x->hooks, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(x->reports, 0700) != 0 && errno != EEXIST)) {
		int e = errno;
		errbuf_set(err, errlen, "git broker: cannot create %s: %s",
			   c->dir, strerror(e));
		return -e;
	}
	char *pre_text = broker_hook_text(c->session_id, x->created);
	char *post_text = post_hook_text(x->created);
	int rc = -EINVAL;
	if (pre_text == NULL || post_text == NULL)
		errbuf_set(err, errlen,
			   "git broker: unusable state directory %s", c->dir);
	else if ((rc = write_file(pre, pre_text, 0700, err, errlen)) == 0 &&
		 (rc = write_file(post, post_text, 0700, err, errlen)) == 0)
		rc = write_file(x->created, "", 0600, err, errlen);
	free(pre_text);
	free(post_text);
	return rc;
}

/* Under sudo, the broker (the user) must own what it writes to. */
static int give_dir(const struct broker_ctx *x, char *err, size_t errlen)
{
	const struct broker_config *c = x->cfg;
	char pre[BROKER_PATH_MAX + 16], post[BROKER_PATH_MAX + 16];
	(void)snprintf(pre, sizeof pre, "%s/pre-receive", x->hooks);
	(void)snprintf(post, sizeof post, "%s/post-receive", x->hooks);
	const char *paths[] = {c->dir,	   x->hooks, x->reports,
			       x->created, pre,	     post};
	if (geteuid() != 0 || c->uid == 0)
		return 0;
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		if (lchown(paths[i], c->uid, c->gid) != 0) {
			int e = errno;
			errbuf_set(err, errlen, "git broker: chown %s: %s",
				   paths[i], strerror(e));
			return -e;
		}
	}
	return 0;
}

static int bind_socket(const struct broker_ctx *x, int *out, char *err,
		       size_t errlen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int n = snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", x->cfg->dir,
			 BROKER_SOCK);
	if (n < 0 || (size_t)n >= sizeof a.sun_path) {
		errbuf_set(err, errlen,
			   "git broker: socket path %s/%s is longer than a "
			   "unix socket allows (%zu)",
			   x->cfg->dir, BROKER_SOCK, sizeof a.sun_path - 1);
		return -ENAMETOOLONG;
	}
	(void)unlink(a.sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mode_t old = umask(0177);
	int rc = fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
			 listen(fd, 64) != 0
		     ? -errno
		     : 0;
	umask(old);
	if (rc == 0 && geteuid() == 0 && x->cfg->uid != 0 &&
	    lchown(a.sun_path, x->cfg->uid, x->cfg->gid) != 0)
		rc = -errno;
	if (rc != 0) {
		errbuf_set(err, errlen, "git broker: %s: %s", a.sun_path,
			   strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

/* In the child: the user's ids, no capability, dies with the launcher. */
static int become_user(const struct broker_config *c)
{
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	(void)setpgid(0, 0);
	sigset_t none;
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)signal(SIGCHLD, SIG_IGN); /* requests reap themselves */
	(void)signal(SIGPIPE, SIG_IGN);
	(void)signal(SIGTERM, SIG_DFL);
	/* git reads the user's config: HOME must be theirs, not root's
	 * (sudo keeps HOME=/root, which git then cannot read). */
	const struct passwd *pw =
	    geteuid() == 0 && c->uid != 0 ? getpwuid(c->uid) : NULL;
	if (pw != NULL && pw->pw_dir != NULL)
		(void)setenv("HOME", pw->pw_dir, 1);
	if (geteuid() == 0 && c->uid != 0 &&
	    (setgroups(0, NULL) != 0 || setgid(c->gid) != 0 ||
	     setuid(c->uid) != 0))
		return -1;
	cap_t no_caps = cap_init();
	int rc = no_caps == NULL || cap_set_proc(no_caps) != 0 ? -1 : 0;
	(void)cap_free(no_caps);
	return rc;
}

/* git's complaints go to <dir>/broker.log, not over the agent's
 * terminal. */
static void quiet_stdio(const char *dir)
{
	char path[BROKER_PATH_MAX + 16];
	(void)snprintf(path, sizeof path, "%s/broker.log", dir);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (nul >= 0) {
		(void)dup2(nul, 0);
		(void)dup2(nul, 1);
	}
	(void)dup2(log >= 0 ? log : nul, 2);
	if (nul > 2)
		close(nul);
	if (log > 2)
		close(log);
}

__attribute__((noreturn)) static void serve(const struct broker_ctx *x, int lfd)
{
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE)
				continue;
			_exit(1);
		}
		pid_t k = fork();
		if (k == 0) {
			(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
			close(lfd);
			(void)signal(SIGCHLD, SIG_DFL); /* waits for git */
			broker_serve_one(x, c);
			_exit(0);
		}
		close(c);
	}
}

int broker_start(const struct broker_config *cfg, pid_t *pid, char *err,
		 size_t errlen)
{
	static struct broker_ctx x; /* the child reads it for its life */
	memset(&x, 0, sizeof x);
	x.cfg = cfg;
	int lfd = -1;
	int rc = setup_dir(&x, err, errlen);
	if (rc == 0)
		rc = give_dir(&x, err, errlen);
	if (rc == 0)
		rc = bind_socket(&x, &lfd, err, errlen);
	if (rc != 0)
		return rc;
	pid_t k = fork();
	if (k < 0) {
		rc = -errno;
		errbuf_set(err, errlen, "git broker: fork: %s", strerror(-rc));
		close(lfd);
		return rc;
	}
	if (k == 0) {
		if (become_user(cfg) != 0)
			_exit(126);
		quiet_stdio(cfg->dir);
		serve(&x, lfd);
	}
	close(lfd);
	*pid = k;
	return 0;
}
