/* The terminal side of a session: raw mode and its restore, window size
 * passed on, signals read from a signalfd, and the loop relaying stdin and
 * the container's output (shared by a foreground run and `attach`). */
#include "console.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "nflog.h"
#include "launch_int.h"

static struct termios saved_tio;
static bool tio_saved;

void console_restore(void)
{
	if (tio_saved)
		tcsetattr(0, TCSANOW, &saved_tio);
	tio_saved = false;
}

void console_resize(struct docker *d, const char *name)
{
	struct winsize ws;
	if (ioctl(1, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0)
		return;
	char path[256], err[256];
	long st;
	launch_snprintf(path, sizeof path, "/containers/%s/resize?h=%u&w=%u",
			name, ws.ws_row, ws.ws_col);
	(void)docker_call(d, "POST", path, NULL, &st, NULL, err, sizeof err);
}

static void out_write(int stream, const unsigned char *data, size_t len,
		      void *arg)
{
	bool *discard = arg;
	if (*discard)
		return;
	int fd = stream == 2 ? 2 : 1;
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		data += w;
		len -= (size_t)w;
	}
}

enum console_end console_loop(struct sess *s, struct docker *d,
			      const char *name, int afd, bool tty, bool in,
			      bool discard, int sfd, int *sig, bool half_close)
{
	struct docker_demux dm = {0};
	unsigned char buf[16384];
	bool in_open = in;
	for (;;) {
		struct pollfd p[4];
		int np = 0;
		p[np++] = (struct pollfd){afd, POLLIN, 0};
		p[np++] = (struct pollfd){sfd, POLLIN, 0};
		int nfd = s && s->nflog ? fence_nflog_fd(s->nflog) : -1;
		p[np++] = (struct pollfd){nfd, POLLIN, 0};
		p[np++] = (struct pollfd){in_open ? 0 : -1, POLLIN, 0};
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			return CONSOLE_CONTAINER;
		}
		if (s != NULL && (p[2].revents & POLLIN))
			(void)fence_nflog_dispatch(s->nflog);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				int sg = (int)si.ssi_signo;
				if (sg == SIGUSR1 || sg == SIGUSR2) {
					/* ignored, see console_signals() */
				} else if (sg == SIGWINCH) {
					if (tty)
						console_resize(d, name);
				} else if (sg == SIGCHLD) {
					if (s && s->proxy_pid > 0 &&
					    waitpid(s->proxy_pid, NULL,
						    WNOHANG) == s->proxy_pid) {
						s->proxy_pid = 0;
						return CONSOLE_PROXY;
					}
				} else {
					*sig = sg;
					return CONSOLE_SIGNAL;
				}
			}
		}
		if (p[3].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(0, buf, sizeof buf);
			if (r > 0) {
				size_t off = 0;
				while (off < (size_t)r) {
					ssize_t w = write(afd, buf + off,
							  (size_t)r - off);
					if (w < 0 && errno == EINTR)
						continue;
					if (w <= 0)
						break;
					off += (size_t)w;
				}
			} else if (r == 0 || errno != EINTR) {
				/* EOF: the agent's stdin closes; its output
				 * keeps coming. */
				in_open = false;
				/* A StdinOnce container sees EOF; for a
				 * long-lived one the engine would end the
				 * whole attach, so just stop reading. */
				if (half_close)
					shutdown(afd, SHUT_WR);
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(afd, buf, sizeof buf);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return CONSOLE_CONTAINER;
			if (tty)
				out_write(1, buf, (size_t)r, &discard);
			else if (docker_demux_feed(&dm, buf, (size_t)r,
						   out_write, &discard) != 0)
				return CONSOLE_CONTAINER;
		}
	}
}

int console_signals(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGINT);
	sigaddset(&m, SIGTERM);
	sigaddset(&m, SIGHUP);
	sigaddset(&m, SIGQUIT);
	sigaddset(&m, SIGWINCH);
	sigaddset(&m, SIGCHLD);
	/* Meant for the proxy (log reopen) when sent to the wrong pid: read
	 * and ignored, never the default end without teardown. */
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	/* Fails only for an invalid signal number, which SIGPIPE is not. */
	(void)signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
}

void console_raw(void)
{
	/* Raw only with the exit() restore in place. */
	if (tcgetattr(0, &saved_tio) == 0 && atexit(console_restore) == 0) {
		struct termios raw = saved_tio;
		cfmakeraw(&raw);
		tio_saved = true;
		tcsetattr(0, TCSANOW, &raw);
	}
}
