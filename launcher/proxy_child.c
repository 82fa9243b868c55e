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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch_int.h"

/* What the child needs, opened by the parent. */
struct handover {
	char plog[4300], listen[96], bin[PATH_MAX];
	int lfd;       /* proxy.log: the child's stdout and stderr */
	int egress_fd; /* -1 unless drop_user */
	int policy_fd; /* -1 unless drop_user */
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
	h->lfd = h->egress_fd = h->policy_fd = -1;
}

static int handover_open(struct sess *s, struct handover *h, char *err,
			 size_t errlen)
{
	launch_snprintf(h->plog, sizeof h->plog, "%s/proxy.log", s->state_dir);
	launch_snprintf(h->listen, sizeof h->listen, "%s:0", s->gateway);
	launch_exe_path("agentsafe-proxy", h->bin, sizeof h->bin);
	h->drop_user = geteuid() == 0 && s->host_uid != 0;
	h->egress_fd = h->policy_fd = -1;
	h->lfd = open(h->plog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (h->lfd < 0) {
		int e = errno;
		launch_snprintf(err, errlen, "%s: %s", h->plog, strerror(e));
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
	const char *argv[20];
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
	if (s->broker_sock[0] != '\0') {
		argv[n++] = "--git-broker";
		argv[n++] = s->broker_sock;
	}
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
	if (rc != 0)
		return rc;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		handover_close(&h);
		launch_snprintf(err, errlen, "fork: %s", strerror(e));
		return -e;
	}
	if (pid == 0)
		proxy_exec(s, &h);
	handover_close(&h);
	s->proxy_pid = pid;
	launch_save_state(s, false);
	rc = wait_listening(s, h.plog, err, errlen);
	if (rc != 0) {
		launch_stop_child(s->proxy_pid, "agentsafe-proxy");
		s->proxy_pid = 0;
	}
	return rc;
}

void proxy_child_stop(struct sess *s)
{
	launch_stop_child(s->proxy_pid, "agentsafe-proxy");
	s->proxy_pid = 0;
}
