/* Starting agentsafe-proxy: its log file, the egress log and policy handed
 * over as descriptors when it runs as the sudo user, fork/exec in its own
 * process group, and the wait for its "listening on ADDR:PORT" line. */
#include "proxy_child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch_int.h"
#include "session_ca.h"

/* What the child needs, opened by the parent. */
struct handover {
	char plog[4300], listen[96], bin[PATH_MAX];
	int lfd;       /* proxy.log: the child's stdout and stderr */
	int egress_fd; /* -1 unless drop_user */
	int policy_fd; /* -1 unless drop_user */
	int sc_rfd;    /* the self-check window's far end (>= 10); -1 */
	bool drop_user;
};

static void handover_close(struct handover *h)
{
	if (h->lfd >= 0)
		close(h->lfd);
	if (h->egress_fd >= 0)
		close(h->egress_fd);
	if (h->policy_fd >= 0)
		close(h->policy_fd);
	if (h->sc_rfd >= 0)
		close(h->sc_rfd);
	h->lfd = h->egress_fd = h->policy_fd = h->sc_rfd = -1;
}

/* The proxy labels the records of connections it accepts until the
 * launcher sends a byte on this pair (selfcheck_window_end, before the
 * agent can start); without a self-check there is no window at all. The
 * proxy's end is moved to 10 or above so the dup2s to 1..5 in the child
 * cannot overwrite it. */
static int handover_window(struct sess *s, struct handover *h, char *err,
			   size_t errlen)
{
	if (s->cfg->no_verify)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		int e = errno;
		launch_snprintf(err, errlen, "self-check window: %s",
				strerror(e));
		return -e;
	}
	h->sc_rfd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
	int e = errno;
	close(sv[1]);
	if (h->sc_rfd < 0) {
		close(sv[0]);
		launch_snprintf(err, errlen, "self-check window: %s",
				strerror(e));
		return -e;
	}
	s->sc_wfd = sv[0];
	return 0;
}

static int handover_open(struct sess *s, struct handover *h, char *err,
			 size_t errlen)
{
	launch_snprintf(h->plog, sizeof h->plog, "%s/proxy.log", s->state_dir);
	launch_snprintf(h->listen, sizeof h->listen, "%s:0", s->gateway);
	launch_exe_path("agentsafe-proxy", h->bin, sizeof h->bin);
	h->drop_user = geteuid() == 0 && s->host_uid != 0;
	h->egress_fd = h->policy_fd = h->sc_rfd = -1;
	int rc = handover_window(s, h, err, errlen);
	if (rc != 0)
		return rc;
	h->lfd = open(h->plog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (h->lfd < 0) {
		int e = errno;
		launch_snprintf(err, errlen, "%s: %s", h->plog, strerror(e));
		handover_close(h);
		return -e;
	}
	launch_give_home(s, h->plog);
	/* Run as the invoking user (sudo): hand over the log and policy as
	 * descriptors, since the user may not be able to reach root's paths. */
	if (!h->drop_user)
		return 0;
	h->egress_fd =
	    open(s->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	h->policy_fd = open(s->policy, O_RDONLY | O_CLOEXEC);
	if (h->egress_fd < 0 || h->policy_fd < 0 ||
	    fchown(h->egress_fd, s->host_uid, s->host_gid) != 0) {
		int e = errno;
		launch_snprintf(err, errlen, "handing files to the proxy: %s",
				strerror(e));
		handover_close(h);
		return -e;
	}
	return 0;
}

/* In the child: never returns. */
__attribute__((noreturn)) static void proxy_exec(const struct sess *s,
						 const struct handover *h)
{
	/* Own process group: a Ctrl-C meant for the agent must not take the
	 * proxy down first. Dies with the launcher. */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	int nul = open("/dev/null", O_RDWR);
	/* Notices (an approval waiting, an upload-budget warning) go to the
	 * launcher's stderr: on a terminal as a bell and a window title,
	 * which never draw over the agent's screen, else as a line
	 * (approval.c). */
	int note = fcntl(2, F_DUPFD, 10);
	dup2(nul, 0);
	dup2(h->lfd, 1);
	dup2(h->lfd, 2);
	const char *lp = s->log_path, *pp = s->policy;
	if (h->drop_user) {
		dup2(h->egress_fd, 3);
		dup2(h->policy_fd, 4);
		lp = "/dev/fd/3";
		pp = "/dev/fd/4";
		if (setgroups(0, NULL) != 0 || setgid(s->host_gid) != 0 ||
		    setuid(s->host_uid) != 0)
			_exit(126);
		/* The real paths when the user can use them: records then
		 * name the policy file the user edits, a SIGHUP reload sees
		 * an editor's save-by-rename and SIGUSR1 follows a rotated
		 * log. The fds are the fallback for files only root can
		 * open. */
		if (access(s->policy, R_OK) == 0)
			pp = s->policy;
		if (access(s->log_path, W_OK) == 0)
			lp = s->log_path;
	}
	if (h->sc_rfd >= 0 && dup2(h->sc_rfd, 5) != 5)
		_exit(126); /* never a proxy without its window's end */
	const char *argv[34 + 2 * LCFG_MAX_LIST];
	size_t n = 0;
	argv[n++] = "agentsafe-proxy";
	argv[n++] = "--policy";
	argv[n++] = pp;
	argv[n++] = "--listen";
	argv[n++] = h->listen;
	argv[n++] = "--log";
	argv[n++] = lp;
	argv[n++] = "--session";
	argv[n++] = s->id;
	if (s->cfg->hosts) {
		argv[n++] = "--hosts";
		argv[n++] = s->cfg->hosts;
	}
	if (s->cfg->dns) {
		argv[n++] = "--dns";
		argv[n++] = s->cfg->dns;
	}
	if (h->sc_rfd >= 0) {
		argv[n++] = "--selfcheck-fd";
		argv[n++] = "5";
	}
	/* The approval socket lives in the session's state directory,
	 * which is never mounted into the container. */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int k = snprintf(sock, sizeof sock, "%s/approve.sock", s->state_dir);
	if (k > 0 && (size_t)k < sizeof sock) {
		argv[n++] = "--approval-socket";
		argv[n++] = sock;
		if (s->cfg->ask)
			argv[n++] = "--ask";
		/* The self-check's refused targets must be refused now, not
		 * held for a question. */
		for (size_t i = 0; i < s->cfg->probe_deny.n &&
				   n + 4 < sizeof argv / sizeof argv[0];
		     i++) {
			argv[n++] = "--never-ask";
			argv[n++] = s->cfg->probe_deny.v[i];
		}
	} else if (s->cfg->ask) {
		fprintf(stderr, "agentsafe-launch: --ask: the state directory "
				"path is too long for a unix socket\n");
		_exit(2);
	}
	if (note >= 0 && dup2(note, 6) == 6) {
		argv[n++] = "--notify-fd";
		argv[n++] = "6";
	}
	if (s->cfg->learn)
		argv[n++] = "--learn";
	if (s->broker_sock[0] != '\0') {
		argv[n++] = "--git-broker";
		argv[n++] = s->broker_sock;
	}
	n += session_ca_proxy_args(s, argv + n,
				   sizeof argv / sizeof argv[0] - 1 - n);
	session_ca_proxy_env(s);
	argv[n] = NULL;
	if (h->bin[0])
		execv(h->bin, (char *const *)argv);
	execvp("agentsafe-proxy", (char *const *)argv);
	fprintf(stderr, "exec agentsafe-proxy: %s\n", strerror(errno));
	_exit(127);
}

/* The port from a "listening on ADDR:PORT" line in the log, or 0. */
static uint16_t logged_port(const char *plog)
{
	FILE *f = fopen(plog, "r");
	char line[512];
	uint16_t port = 0;
	while (f && port == 0 && fgets(line, sizeof line, f)) {
		const char *p = strstr(line, "listening on ");
		const char *colon = p ? strrchr(p, ':') : NULL;
		long v = colon ? strtol(colon + 1, NULL, 10) : 0;
		if (v > 0 && v < 65536)
			port = (uint16_t)v;
	}
	if (f)
		(void)fclose(f); /* only read */
	return port;
}

/* Port 0 was asked for: the proxy's first log lines say which it got. */
static int wait_listening(struct sess *s, const char *plog, char *err,
			  size_t errlen)
{
	/* Polled from 1 ms up, doubling to 50 ms: the proxy is usually up
	 * in a few ms, and a fixed 50 ms step cost a whole step each launch. */
	long step_ms = 1;
	for (long waited = 0; waited < 10000;
	     waited += step_ms, step_ms = step_ms < 50 ? step_ms * 2 : 50) {
		uint16_t port = logged_port(plog);
		if (port != 0) {
			s->proxy_port = port;
			return 0;
		}
		int status;
		if (waitpid(s->proxy_pid, &status, WNOHANG) == s->proxy_pid) {
			s->proxy_pid = 0;
			char tail[1024] = "";
			FILE *f = fopen(plog, "r");
			size_t r = f ? fread(tail, 1, sizeof tail - 1, f) : 0;
			tail[r] = '\0';
			if (f)
				(void)fclose(f); /* only read */
			launch_snprintf(
			    err, errlen,
			    "agentsafe-proxy exited at start (%d): %s",
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1, tail);
			return -EIO;
		}
		struct timespec ts = {0, step_ms * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	launch_snprintf(err, errlen,
			"agentsafe-proxy did not report listening in "
			"10 s (see %s)",
			plog);
	return -ETIMEDOUT;
}

int proxy_child_start(struct sess *s, char *err, size_t errlen)
{
	struct handover h;
	int rc = handover_open(s, &h, err, errlen);
	if (rc != 0) {
		proxy_child_stop(s); /* the window's end, if made */
		return rc;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		handover_close(&h);
		proxy_child_stop(s);
		launch_snprintf(err, errlen, "fork: %s", strerror(e));
		return -e;
	}
	if (pid == 0)
		proxy_exec(s, &h);
	handover_close(&h);
	s->proxy_pid = pid;
	launch_save_state(s, false);
	rc = wait_listening(s, h.plog, err, errlen);
	if (rc != 0)
		proxy_child_stop(s);
	return rc;
}

void proxy_child_stop(struct sess *s)
{
	launch_stop_child(s->proxy_pid, "agentsafe-proxy");
	s->proxy_pid = 0;
	if (s->sc_wfd >= 0)
		close(s->sc_wfd);
	s->sc_wfd = -1;
}
