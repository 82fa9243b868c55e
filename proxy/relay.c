/* Copy relay of an established CONNECT tunnel: one set of functions serves
 * both directions (a conn_side and its peer), with backpressure, half-close
 * by shutdown(2), and a hand-over to splice.c once nothing is buffered. */
#include "proxy_int.h"

#include "budget.h"

#include <sys/socket.h>

#include <event2/buffer.h>

static size_t out_len(const struct conn_side *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

/* Moves what `s` sent to its peer's output; stops reading `s` while the
 * peer already holds RELAY_BUF_MAX (the per-direction bound). What the
 * client sends is charged to the host's upload budget: the bytes within
 * it go, and a byte past it closes the tunnel. Returns false when the
 * conn was freed. */
static bool pass(struct conn_side *s)
{
	struct conn *c = s->conn;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t n = evbuffer_get_length(in);
	size_t ok = s == &c->client ? budget_reserve(c, n) : n;
	if (ok > 0)
		evbuffer_remove_buffer(in, bufferevent_get_output(s->peer->bev),
				       ok);
	s->bytes += ok;
	if (ok < n) {
		budget_trip(c);
		conn_finish_request(
		    c,
		    egress_reason_name(EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED));
		return false;
	}
	if (out_len(s->peer) >= RELAY_BUF_MAX)
		bufferevent_disable(s->bev, EV_READ);
	return true;
}

/* Shut the write side of `s` once everything queued for it is out and
 * its peer has sent EOF. */
static void shut_when_flushed(struct conn_side *s)
{
	if (s->peer->eof && !s->shut && out_len(s) == 0) {
		shutdown(bufferevent_getfd(s->bev), SHUT_WR);
		s->shut = true;
		conn_trace(s->conn, "%s shut for writing", s->name);
	}
}

/* Close the tunnel when both directions are done. Returns true when the
 * conn was freed. */
static bool maybe_shut(struct conn *c)
{
	shut_when_flushed(&c->upstream);
	shut_when_flushed(&c->client);
	if (c->upstream.shut && c->client.shut) {
		conn_finish_request(c, egress_reason_name(EGRESS_REASON_EOF));
		return true;
	}
	return false;
}

/* With nothing buffered in user space either way, hand the tunnel to the
 * splice(2) path. */
static void try_splice(struct conn *c)
{
	if (c->client.eof || c->upstream.eof || c->splice != NULL)
		return;
	const struct conn_side *sides[2] = {&c->client, &c->upstream};
	for (int i = 0; i < 2; i++)
		if (evbuffer_get_length(bufferevent_get_input(sides[i]->bev)) !=
			0 ||
		    out_len(sides[i]) != 0)
			return;
	(void)relay_splice_start(c);
}

bool relay_start(struct conn *c)
{
	conn_set_state(c, CS_RELAY);
	conn_touch(c);
	bufferevent_setwatermark(c->client.bev, EV_READ, 0, 0);
	/* Bytes already read go first: the client's after its checked
	 * ClientHello, the server's first record. */
	if (!pass(&c->client) || !pass(&c->upstream))
		return false;
	if (!c->client.eof)
		bufferevent_enable(c->client.bev, EV_READ);
	bufferevent_enable(c->upstream.bev, EV_READ);
	if (c->client.eof)
		return !maybe_shut(c);
	try_splice(c);
	return true;
}

void relay_read(struct conn_side *s)
{
	conn_touch(s->conn);
	(void)pass(s);
}

/* The output of `s` fell to the low watermark: resume reading its peer
 * and pass on what the peer left. */
void relay_write_drained(struct conn_side *s)
{
	struct conn *c = s->conn;
	conn_touch(c);
	if (!s->peer->eof && out_len(s) < RELAY_BUF_MAX) {
		if (!pass(s->peer))
			return;
		if (out_len(s) < RELAY_BUF_MAX)
			bufferevent_enable(s->peer->bev, EV_READ);
	}
	if (!maybe_shut(c))
		try_splice(c);
}

void relay_event(struct conn_side *s, short what)
{
	if (what & BEV_EVENT_ERROR) {
		conn_finish_request(s->conn,
				    conn_side_reason(s, EVUTIL_SOCKET_ERROR()));
		return;
	}
	if (!(what & BEV_EVENT_EOF))
		return;
	/* Whatever arrived before the EOF was passed on by the read
	 * callback; pass on any rest, then half-close the other way. */
	s->eof = true;
	conn_trace(s->conn, "%s sent EOF", s->name);
	if (pass(s))
		(void)maybe_shut(s->conn);
}
