/* Zero-copy fast path of the tunnel relay: once nothing is buffered in user
 * space, bytes move socket -> pipe -> socket with splice(2) and never enter
 * the proxy's memory. */
#include "proxy_int.h"

#include "budget.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

/* One pipe per direction is the backpressure bound (at most a pipe's worth
 * in flight). A direction holds its pipe only while bytes are in flight and
 * gives it back when the pipe is empty and the source has nothing more, so
 * an idle tunnel costs two descriptors and no pipe buffers; when the
 * descriptor budget has no pipe to spare, the direction waits a moment and
 * retries. A direction's EOF and shutdown are its sides' `eof` and `shut`,
 * as in the copy relay. */
struct splice_dir {
	struct conn *c;
	struct conn_side *from, *to; /* to == from->peer */
	int from_fd, to_fd;
	int pipe[2];
	size_t inpipe; /* bytes read into the pipe, not yet written out */
	struct event *rd, *wr, *retry;
};

struct splice_state {
	struct splice_dir dir[2];
};

#define SPLICE_CHUNK  ((size_t)64 * 1024)
#define PIPE_RETRY_MS 20

/* Takes a pipe for this direction if the descriptor budget allows: every
 * connection keeps its 2 sockets' worth, pipes get what is left. */
static bool pipe_get(struct splice_dir *d)
{
	if (d->pipe[0] >= 0)
		return true;
	struct proxy_server *srv = d->c->w->srv;
	unsigned conns = atomic_load(&srv->nconns);
	unsigned pairs = atomic_fetch_add(&srv->pipe_pairs, 1) + 1;
	if (srv->fd_limit != 0 &&
	    (unsigned long)conns * 2 + (unsigned long)pairs * 2 + FD_RESERVE >
		srv->fd_limit) {
		atomic_fetch_sub(&srv->pipe_pairs, 1);
		return false;
	}
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		d->pipe[0] = d->pipe[1] = -1;
		atomic_fetch_sub(&srv->pipe_pairs, 1);
		return false;
	}
	return true;
}

static void pipe_put(struct splice_dir *d)
{
	if (d->pipe[0] < 0)
		return;
	close(d->pipe[0]);
	close(d->pipe[1]);
	d->pipe[0] = d->pipe[1] = -1;
	d->inpipe = 0;
	atomic_fetch_sub(&d->c->w->srv->pipe_pairs, 1);
}

static void dir_close(struct splice_dir *d)
{
	if (d->rd != NULL)
		event_free(d->rd);
	if (d->wr != NULL)
		event_free(d->wr);
	if (d->retry != NULL)
		event_free(d->retry);
	if (d->c != NULL)
		pipe_put(d);
	d->rd = d->wr = d->retry = NULL;
}

void relay_splice_free(struct conn *c)
{
	if (c->splice == NULL)
		return;
	dir_close(&c->splice->dir[0]);
	dir_close(&c->splice->dir[1]);
	free(c->splice);
	c->splice = NULL;
}

/* A failed read concerns `from`, a failed write `to`. A write that fails
 * with EPIPE counts as a reset of the upstream only (as before sides were
 * one struct; the client's EPIPE stays client_error). */
static void fail(struct splice_dir *d, int e, bool reading)
{
	struct conn_side *s = reading ? d->from : d->to;
	if (e == EPIPE && s == &d->c->upstream)
		e = ECONNRESET;
	conn_finish_request(d->c, conn_side_reason(s, e));
}

/* The client's budget is used up: a byte waiting to be read trips it (the
 * conn is freed: 0); an EOF is an EOF (1: go on); nothing to read yet
 * means waiting for the socket (-1). */
static int over_budget(struct splice_dir *d)
{
	struct conn *c = d->c;
	char b;
	ssize_t k = recv(d->from_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (k > 0) {
		budget_trip(c);
		conn_finish_request(
		    c,
		    egress_reason_name(EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED));
		return 0;
	}
	if (k == 0) {
		d->from->eof = true;
		conn_trace(c, "%s sent EOF", d->from->name);
		event_del(d->rd);
		return 1;
	}
	if (errno == EAGAIN || errno == EINTR) {
		pipe_put(d);
		event_add(d->rd, NULL);
		return -1;
	}
	fail(d, errno, true);
	return 0;
}

/* Move as much as the sockets allow in one direction. Returns false when
 * the conn was freed. */
static bool pump(struct splice_dir *d)
{
	struct conn *c = d->c;
	for (;;) {
		if (d->inpipe > 0) {
			ssize_t n =
			    splice(d->pipe[0], NULL, d->to_fd, NULL, d->inpipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				d->inpipe -= (size_t)n;
				d->from->bytes += (uint64_t)n;
				conn_touch(c);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				/* `to` is full: wait for it, read no more. */
				event_del(d->rd);
				event_add(d->wr, NULL);
				return true;
			}
			fail(d, n < 0 ? errno : EPIPE, false);
			return false;
		}
		event_del(d->wr);
		if (d->from->eof) {
			pipe_put(d);
			if (!d->to->shut) {
				shutdown(d->to_fd, SHUT_WR);
				d->to->shut = true;
				conn_trace(c, "%s shut for writing",
					   d->to->name);
			}
			/* The other direction is done when `from` was shut. */
			if (d->from->shut) {
				conn_finish_request(
				    c, egress_reason_name(EGRESS_REASON_EOF));
				return false;
			}
			return true;
		}
		if (!pipe_get(d)) {
			/* No descriptor to spare right now: stop reading
			 * this side (backpressure) and try again shortly. */
			struct timeval tv = {0,
					     (suseconds_t)PIPE_RETRY_MS * 1000};
			event_del(d->rd);
			event_add(d->retry, &tv);
			return true;
		}
		/* The client's bytes are read only as far as the host's
		 * upload budget reaches (budget.h). */
		bool up = d->from == &c->client;
		size_t want =
		    up ? budget_reserve(c, SPLICE_CHUNK) : SPLICE_CHUNK;
		if (want == 0) {
			int r = over_budget(d);
			if (r <= 0)
				return r < 0;
			continue; /* EOF */
		}
		ssize_t n = splice(d->from_fd, NULL, d->pipe[1], NULL, want,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (up)
			budget_refund(c, n > 0 ? want - (size_t)n : want);
		if (n > 0) {
			d->inpipe = (size_t)n;
			continue;
		}
		if (n == 0) {
			d->from->eof = true;
			conn_trace(c, "%s sent EOF", d->from->name);
			event_del(d->rd);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* Drained and nothing more to read: an idle
			 * direction holds no pipe. */
			pipe_put(d);
			event_add(d->rd, NULL);
			return true;
		}
		fail(d, errno, true);
		return false;
	}
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)pump(arg);
}

/* Called by relay.c when both directions have nothing buffered. Returns
 * true when the tunnel now runs on splice (the bufferevents stay, disabled,
 * as owners of the sockets). */
bool relay_splice_start(struct conn *c)
{
	struct proxy_server *srv = c->w->srv;
	if (c->splice != NULL || srv->no_splice)
		return c->splice != NULL;
	struct splice_state *s = calloc(1, sizeof *s);
	if (s == NULL)
		return false;
	for (int i = 0; i < 2; i++) {
		struct splice_dir *d = &s->dir[i];
		d->c = c;
		d->from = i == 0 ? &c->client : &c->upstream;
		d->to = d->from->peer;
		d->from_fd = bufferevent_getfd(d->from->bev);
		d->to_fd = bufferevent_getfd(d->to->bev);
		d->pipe[0] = d->pipe[1] = -1;
	}
	for (int i = 0; i < 2; i++) {
		struct splice_dir *d = &s->dir[i];
		d->rd = event_new(c->w->base, d->from_fd, EV_READ | EV_PERSIST,
				  io_cb, d);
		d->wr = event_new(c->w->base, d->to_fd, EV_WRITE | EV_PERSIST,
				  io_cb, d);
		d->retry = event_new(c->w->base, -1, 0, io_cb, d);
		if (d->rd == NULL || d->wr == NULL || d->retry == NULL)
			goto fallback;
	}
	bufferevent_disable(c->client.bev, EV_READ | EV_WRITE);
	bufferevent_disable(c->upstream.bev, EV_READ | EV_WRITE);
	c->splice = s;
	conn_trace(c, "splice on");
	for (int i = 0; i < 2; i++)
		event_add(s->dir[i].rd, NULL);
	return true;
fallback:
	dir_close(&s->dir[0]);
	dir_close(&s->dir[1]);
	free(s);
	return false;
}
