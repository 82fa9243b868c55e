/* Byte relay of an established CONNECT tunnel: both directions with
 * backpressure (a side stops being read while the other side has
 * RELAY_BUF_MAX queued), half-close passed through with shutdown(2), and
 * the close record when both directions are done. Kept separate from the
 * request logic so a splice(2) fast path can replace the copy loop. */
#include "proxy_int.h"

#include <errno.h>
#include <sys/socket.h>

#include <event2/buffer.h>

static void touch(struct conn *c)
{
	clock_gettime(CLOCK_MONOTONIC_COARSE, &c->last_activity);
}

size_t relay_move(struct bufferevent *src, struct bufferevent *dst,
		  size_t limit)
{
	struct evbuffer *in = bufferevent_get_input(src);
	struct evbuffer *out = bufferevent_get_output(dst);
	size_t n = evbuffer_get_length(in);
	if (n > limit)
		n = limit;
	if (n > 0)
		evbuffer_remove_buffer(in, out, n);
	if (evbuffer_get_length(out) >= RELAY_BUF_MAX)
		bufferevent_disable(src, EV_READ);
	return n;
}

static void finish(struct conn *c, const char *reason)
{
	conn_log(c, "close", reason, NULL, true);
	conn_free(c);
}

/* Shut the write side of `dst` once everything queued for it is out and
 * its peer has sent EOF; close the tunnel when both directions are done. */
static bool maybe_shut(struct conn *c)
{
	if (c->c_eof && !c->u_shut &&
	    evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0) {
		shutdown(bufferevent_getfd(c->ubev), SHUT_WR);
		c->u_shut = true;
	}
	if (c->u_eof && !c->c_shut &&
	    evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0) {
		shutdown(bufferevent_getfd(c->cbev), SHUT_WR);
		c->c_shut = true;
	}
	if (c->u_shut && c->c_shut) {
		finish(c, "eof");
		return true;
	}
	return false;
}

/* With nothing buffered in user space either way, hand the tunnel to the
 * splice(2) path. */
static void try_splice(struct conn *c)
{
	if (c->c_eof || c->u_eof || c->splice != NULL)
		return;
	if (evbuffer_get_length(bufferevent_get_input(c->cbev)) != 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->cbev)) != 0 ||
	    evbuffer_get_length(bufferevent_get_input(c->ubev)) != 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->ubev)) != 0)
		return;
	(void)relay_splice_start(c);
}

void relay_start(struct conn *c)
{
	c->state = CS_RELAY;
	touch(c);
	bufferevent_setwatermark(c->cbev, EV_READ, 0, 0);
	/* Bytes the client sent early (the checked ClientHello) go first. */
	c->bytes_up += (int64_t)relay_move(c->cbev, c->ubev, SIZE_MAX);
	if (!c->c_eof)
		bufferevent_enable(c->cbev, EV_READ);
	bufferevent_enable(c->ubev, EV_READ);
	if (c->c_eof)
		(void)maybe_shut(c);
	else
		try_splice(c);
}

void relay_client_read(struct conn *c)
{
	touch(c);
	c->bytes_up += (int64_t)relay_move(c->cbev, c->ubev, SIZE_MAX);
}

void relay_upstream_read(struct conn *c)
{
	touch(c);
	c->bytes_down += (int64_t)relay_move(c->ubev, c->cbev, SIZE_MAX);
}

/* The write callback of one side ran (its output fell to the low
 * watermark): resume reading the other side and pass on what it left. */
void relay_write_drained(struct conn *c, bool client_side)
{
	struct bufferevent *dst = client_side ? c->cbev : c->ubev;
	struct bufferevent *src = client_side ? c->ubev : c->cbev;
	bool src_eof = client_side ? c->u_eof : c->c_eof;
	touch(c);
	if (!src_eof &&
	    evbuffer_get_length(bufferevent_get_output(dst)) < RELAY_BUF_MAX) {
		size_t n = relay_move(src, dst, SIZE_MAX);
		if (client_side)
			c->bytes_down += (int64_t)n;
		else
			c->bytes_up += (int64_t)n;
		if (evbuffer_get_length(bufferevent_get_output(dst)) <
		    RELAY_BUF_MAX)
			bufferevent_enable(src, EV_READ);
	}
	if (!maybe_shut(c))
		try_splice(c);
}

void relay_event(struct conn *c, bool client_side, short what)
{
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();
		const char *reason;
		if (client_side)
			reason =
			    e == ECONNRESET ? "client_reset" : "client_error";
		else
			reason = e == ECONNRESET ? "upstream_reset"
						 : "upstream_error";
		finish(c, reason);
		return;
	}
	if (!(what & BEV_EVENT_EOF))
		return;
	/* Whatever arrived before the EOF was passed on by the read
	 * callback; pass on any rest, then half-close the other way. */
	if (client_side) {
		c->c_eof = true;
		c->bytes_up += (int64_t)relay_move(c->cbev, c->ubev, SIZE_MAX);
	} else {
		c->u_eof = true;
		c->bytes_down +=
		    (int64_t)relay_move(c->ubev, c->cbev, SIZE_MAX);
	}
	(void)maybe_shut(c);
}
