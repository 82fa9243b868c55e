/* Loopback port relay for published container ports; see portfwd.h. */
#include "portfwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORTFWD_MAX_LISTEN 256

/* Copies both ways until both sides have finished; a half-close is passed
 * on with shutdown(SHUT_WR). */
static void relay(int a, int b)
{
	int fd[2] = {a, b};
	int open_in[2] = {1, 1}; /* still reading from fd[i] */
	char buf[65536];
	while (open_in[0] || open_in[1]) {
		struct pollfd p[2];
		for (int i = 0; i < 2; i++)
			p[i] =
			    (struct pollfd){open_in[i] ? fd[i] : -1, POLLIN, 0};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			if (!open_in[i] ||
			    !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = read(fd[i], buf, sizeof buf);
			if (r <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0)
					return; /* reset: end both */
				open_in[i] = 0;
				(void)shutdown(fd[1 - i], SHUT_WR);
				continue;
			}
			for (ssize_t off = 0; off < r;) {
				ssize_t w = write(fd[1 - i], buf + off,
						  (size_t)(r - off));
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

static void serve(const int *lfd, const uint16_t *port, size_t n,
		  struct in_addr target)
{
	struct pollfd p[PORTFWD_MAX_LISTEN];
	for (size_t i = 0; i < n; i++)
		p[i] = (struct pollfd){lfd[i], POLLIN, 0};
	for (;;) {
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		for (size_t i = 0; i < n; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int c = accept4(lfd[i], NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			pid_t k = fork();
			if (k == 0) {
				/* Ends with the relay (the session). */
				(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
				for (size_t j = 0; j < n; j++)
					close(lfd[j]);
				struct sockaddr_in to = {.sin_family = AF_INET,
							 .sin_port =
							     htons(port[i]),
							 .sin_addr = target};
				int u = socket(AF_INET,
					       SOCK_STREAM | SOCK_CLOEXEC, 0);
				if (u >= 0 && connect(u, (struct sockaddr *)&to,
						      sizeof to) == 0)
					relay(c, u);
				_exit(0);
			}
			close(c);
		}
	}
}

/* The relay's first job: read "IP\n" from the launcher. */
static int read_target(int ctl, struct in_addr *target)
{
	char ip[64];
	size_t n = 0;
	while (n < sizeof ip - 1) {
		ssize_t r = read(ctl, ip + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || ip[n] == '\n')
			break;
		n++;
	}
	ip[n] = '\0';
	return inet_pton(AF_INET, ip, target) == 1 ? 0 : -1;
}

int portfwd_start(const struct portfwd_range *r, size_t n, uid_t uid, gid_t gid,
		  pid_t *pid, int *ctl, char *err, size_t errlen)
{
	int lfd[PORTFWD_MAX_LISTEN];
	uint16_t port[PORTFWD_MAX_LISTEN];
	size_t nl = 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		for (unsigned p = r[i].first; p <= r[i].last && rc == 0; p++) {
			if (nl == PORTFWD_MAX_LISTEN) {
				snprintf(err, errlen,
					 "publish: at most %d ports",
					 PORTFWD_MAX_LISTEN);
				rc = -E2BIG;
				break;
			}
			const char *ad =
			    r[i].addr && r[i].addr[0] ? r[i].addr : "127.0.0.1";
			struct sockaddr_in a = {.sin_family = AF_INET,
						.sin_port = htons((uint16_t)p)};
			if (inet_pton(AF_INET, ad, &a.sin_addr) != 1) {
				snprintf(err, errlen,
					 "publish: '%s' is not an IPv4 address",
					 ad);
				rc = -EINVAL;
				break;
			}
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			int one = 1;
			if (fd < 0 ||
			    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				       sizeof one) != 0 ||
			    bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
			    listen(fd, 64) != 0) {
				rc = -errno;
				snprintf(err, errlen, "publish: %s:%u: %s", ad,
					 p, strerror(errno));
				if (fd >= 0)
					close(fd);
				break;
			}
			lfd[nl] = fd;
			port[nl++] = (uint16_t)p;
		}
	}
	int pfd[2] = {-1, -1};
	if (rc == 0 && pipe2(pfd, O_CLOEXEC) != 0) {
		rc = -errno;
		snprintf(err, errlen, "publish: pipe: %s", strerror(errno));
	}
	pid_t k = rc == 0 ? fork() : -1;
	if (rc == 0 && k < 0) {
		rc = -errno;
		snprintf(err, errlen, "publish: fork: %s", strerror(errno));
	}
	if (k == 0) {
		/* Dies with the launcher; no capability, the user's ids. */
		close(pfd[1]);
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		(void)setpgid(0, 0);
		sigset_t none;
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)signal(SIGCHLD,
			     SIG_IGN); /* connections reap themselves */
		(void)signal(SIGPIPE, SIG_IGN);
		if (geteuid() == 0 && (setgroups(0, NULL) != 0 ||
				       setgid(gid) != 0 || setuid(uid) != 0))
			_exit(126);
		/* A launcher with file capabilities keeps some permitted; a
		 * child that never execs must clear them itself. */
		cap_t no_caps = cap_init();
		if (no_caps == NULL || cap_set_proc(no_caps) != 0)
			_exit(126);
		(void)cap_free(no_caps);
		struct in_addr target;
		if (read_target(pfd[0], &target) != 0)
			_exit(0); /* the session ended before it started */
		close(pfd[0]);
		serve(lfd, port, nl, target);
		_exit(0);
	}
	for (size_t i = 0; i < nl; i++)
		close(lfd[i]);
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (rc == 0) {
		*pid = k;
		*ctl = pfd[1];
	} else if (pfd[1] >= 0) {
		close(pfd[1]);
	}
	return rc;
}

int portfwd_target(int ctl, const char *target_ip, char *err, size_t errlen)
{
	struct in_addr a;
	char line[64];
	int n = snprintf(line, sizeof line, "%s\n", target_ip);
	int rc = 0;
	if (inet_pton(AF_INET, target_ip, &a) != 1) {
		snprintf(err, errlen, "publish: bad container address '%s'",
			 target_ip);
		rc = -EINVAL;
	} else if (write(ctl, line, (size_t)n) != n) {
		rc = -errno;
		snprintf(err, errlen, "publish: the relay is gone: %s",
			 strerror(errno));
	}
	close(ctl);
	return rc;
}
