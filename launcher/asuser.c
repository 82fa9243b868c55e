/* The helper that writes into the user's repository as the user. It is
 * forked early (before the launcher drops CAP_SETUID), changes ids before
 * it reads anything, and answers one request per message on a
 * SOCK_SEQPACKET pair: six NUL-terminated strings in, an int and a
 * sentence out. */
#include "asuser.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errbuf.h"

#define ASUSER_MSG 32768 /* six paths of a few KiB at most */

struct asuser {
	pid_t pid;
	int fd;
	uid_t uid;
};

struct reply {
	int rc;
	char err[1024];
};

/* All three ids of both kinds, checked: a partial change is a failure. */
static int become(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	gid_t groups[64];
	int n = (int)(sizeof groups / sizeof groups[0]);
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (pw == NULL || getgrouplist(pw->pw_name, gid, groups, &n) < 0 ||
	    setgroups((size_t)n, groups) != 0)
		if (setgroups(1, &gid) != 0)
			return -errno;
	if (setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
		return -errno;
	if (getresuid(&r, &e, &s) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    r != uid || e != uid || s != uid || rg != gid || eg != gid ||
	    sg != gid || setuid(0) == 0)
		return -EPERM;
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	return 0;
}

/* Splits a request into its six strings; NULL when malformed. */
#define ASUSER_NFIELDS 7 /* struct gitiso_fetch, the note last */

static int parse_request(char *buf, size_t len, const char *v[ASUSER_NFIELDS])
{
	size_t off = 0;
	for (int i = 0; i < ASUSER_NFIELDS; i++) {
		char *nul =
		    off < len ? memchr(buf + off, '\0', len - off) : NULL;
		if (nul == NULL)
			return -EINVAL;
		v[i] = buf + off;
		off = (size_t)(nul - buf) + 1;
	}
	return off == len ? 0 : -EINVAL;
}

static void serve(int fd, uid_t uid, gid_t gid)
{
	static char buf[ASUSER_MSG];
	struct reply rep;
	sigset_t none;
	int drop;

	/* The launcher's signal mask (signalfd) must not keep SIGTERM from
	 * this process. */
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)signal(SIGTERM, SIG_DFL);
	(void)signal(SIGINT, SIG_IGN); /* the terminal's ^C is the agent's */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	drop = become(uid, gid);
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		const char *v[ASUSER_NFIELDS];
		if (n <= 0)
			break;
		memset(&rep, 0, sizeof rep);
		if (drop != 0) {
			rep.rc = drop;
			errbuf_set(rep.err, sizeof rep.err,
				   "cannot become uid %u to fetch: %s",
				   (unsigned)uid, strerror(-drop));
		} else if (parse_request(buf, (size_t)n, v) != 0) {
			rep.rc = -EINVAL;
			errbuf_set(rep.err, sizeof rep.err,
				   "malformed fetch request");
		} else {
			struct gitiso_fetch f = {v[0], v[1], v[2], v[3],
						 v[4], v[5], v[6]};
			rep.rc =
			    gitiso_fetch_branch(&f, rep.err, sizeof rep.err);
		}
		if (send(fd, &rep, sizeof rep, MSG_NOSIGNAL) < 0)
			break;
	}
	_exit(0);
}

int asuser_start(uid_t uid, gid_t gid, struct asuser **out, char *err,
		 size_t errlen)
{
	struct asuser *h = calloc(1, sizeof *h);
	int sv[2];

	if (h == NULL)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		int e = errno;
		errbuf_set(err, errlen, "socketpair: %s", strerror(e));
		free(h);
		return -e;
	}
	(void)fflush(NULL);
	h->pid = fork();
	if (h->pid < 0) {
		int e = errno;
		errbuf_set(err, errlen, "fork: %s", strerror(e));
		close(sv[0]);
		close(sv[1]);
		free(h);
		return -e;
	}
	if (h->pid == 0) {
		/* Nothing of the launcher's (engine socket, proxy pipes)
		 * stays open as the user. */
		if (dup2(sv[1], 3) != 3)
			_exit(1);
		(void)close_range(4, ~0U, 0);
		serve(3, uid, gid);
	}
	close(sv[1]);
	h->fd = sv[0];
	h->uid = uid;
	*out = h;
	return 0;
}

void asuser_stop(struct asuser *h)
{
	if (h == NULL)
		return;
	close(h->fd);
	while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
		;
	free(h);
}

int asuser_owner(const char *path, uid_t *uid, gid_t *gid)
{
	struct stat st;
	struct passwd *pw;

	if (stat(path, &st) != 0)
		return -errno;
	if (st.st_uid == geteuid())
		return -EALREADY;
	pw = getpwuid(st.st_uid);
	*uid = st.st_uid;
	*gid = pw != NULL ? pw->pw_gid : st.st_gid;
	return 0;
}

static int via_helper(struct asuser *h, const struct gitiso_fetch *f, char *err,
		      size_t errlen)
{
	static char buf[ASUSER_MSG];
	const char *v[ASUSER_NFIELDS] = {f->host_workdir,	f->host_gitdir,
					 f->clone_path,		f->branch_ref,
					 f->branch_short,	f->tip,
					 f->note ? f->note : ""};
	struct reply rep;
	size_t off = 0;

	for (int i = 0; i < ASUSER_NFIELDS; i++) {
		size_t l = strlen(v[i]) + 1;
		if (off + l > sizeof buf) {
			errbuf_set(err, errlen, "fetch request too long");
			return -ENAMETOOLONG;
		}
		memcpy(buf + off, v[i], l);
		off += l;
	}
	if (send(h->fd, buf, off, MSG_NOSIGNAL) != (ssize_t)off ||
	    recv(h->fd, &rep, sizeof rep, 0) != (ssize_t)sizeof rep) {
		errbuf_set(err, errlen, "the helper fetching as uid %u is gone",
			   (unsigned)h->uid);
		return -EPIPE;
	}
	rep.err[sizeof rep.err - 1] = '\0';
	errbuf_set(err, errlen, "%s", rep.err);
	return rep.rc;
}

int asuser_fetch(const struct gitiso_fetch *f, void *arg, char *err,
		 size_t errlen)
{
	struct asuser *h = arg;
	uid_t uid = 0;
	gid_t gid = 0;
	int rc = asuser_owner(f->host_gitdir, &uid, &gid);

	/* Not root: the user's own rights decide (a group-shared repo). */
	if (rc == -EALREADY || (rc == 0 && geteuid() != 0))
		return gitiso_fetch_branch(f, err, errlen);
	if (rc != 0) {
		errbuf_set(err, errlen, "%s: %s", f->host_gitdir,
			   strerror(-rc));
		return rc;
	}
	if (h != NULL && h->uid == uid)
		return via_helper(h, f, err, errlen);
	errbuf_set(err, errlen,
		   "%s belongs to uid %u, not to this launcher's user: not "
		   "written into by another user",
		   f->host_gitdir, (unsigned)uid);
	return -EPERM;
}
