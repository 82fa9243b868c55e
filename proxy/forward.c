/* Plain-HTTP forward of one request at a time (CS_FWD): the rewritten head
 * and the framed request body go up, the response head is checked and
 * rewritten, and its body comes back framed exactly as the head says. */
#include "proxy_int.h"

#include "budget.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <event2/buffer.h>

#include "fwd_head.h"

static void pump_request(struct conn *c);
static void upstream_read(struct conn *c);

int fwd_prepare(struct conn *c, const struct http_request *req, char *err,
		size_t errlen)
{
	if (fwd_check_host(req, err, errlen) != 0)
		return 400;
	char *head = malloc(FWD_HEAD_MAX);
	long n = head ? fwd_build_request(req, head, FWD_HEAD_MAX) : -ENOMEM;
	if (n < 0) {
		free(head);
		snprintf(err, errlen, "rewritten request head is too large");
		return 431;
	}
	c->fwd_head = head;
	c->fwd_head_len = (size_t)n;
	c->req_body = req->body;
	c->req_remaining = req->content_length;
	http_chunked_init(&c->req_chunked);
	c->is_head_method =
	    req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
	return 0;
}

/* The request or the response broke off: record it, tell the client if it
 * has seen nothing yet, and close. */
static void fwd_abort(struct conn *c, const char *reason, int status,
		      const char *detail)
{
	conn_log(c, "close", reason, detail, true);
	if (!c->resp_started && status > 0)
		conn_reply_error(c, status, reason, detail);
	else
		conn_start_closing(c);
}

void fwd_start(struct conn *c)
{
	conn_set_state(c, CS_FWD);
	if (!budget_charge(c, c->fwd_head_len)) {
		fwd_abort(
		    c, egress_reason_name(EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED),
		    403, "the request would pass the host's upload budget");
		return;
	}
	bufferevent_write(c->upstream.bev, c->fwd_head, c->fwd_head_len);
	c->client.bytes += c->fwd_head_len;
	free(c->fwd_head);
	c->fwd_head = NULL;
	c->req_done = c->req_body == HTTP_BODY_NONE;
	c->resp_started = false;
	bufferevent_setwatermark(c->client.bev, EV_READ, 0, 0);
	bufferevent_enable(c->upstream.bev, EV_READ);
	if (!c->req_done) {
		bufferevent_enable(c->client.bev, EV_READ);
		pump_request(c);
	}
}

static bool out_full(const struct conn_side *dst)
{
	return evbuffer_get_length(bufferevent_get_output(dst->bev)) >=
	       RELAY_BUF_MAX;
}

static void pump_request(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client.bev);
	struct evbuffer *out = bufferevent_get_output(c->upstream.bev);
	while (!c->req_done && evbuffer_get_length(in) > 0) {
		if (out_full(&c->upstream)) {
			bufferevent_disable(c->client.bev, EV_READ);
			return;
		}
		size_t n;
		size_t len = evbuffer_get_length(in);
		if (c->req_body == HTTP_BODY_LENGTH) {
			n = len < c->req_remaining ? len
						   : (size_t)c->req_remaining;
			c->req_remaining -= n;
			if (c->req_remaining == 0)
				c->req_done = true;
		} else {
			struct evbuffer_iovec v;
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				break;
			long k = http_chunked_feed(&c->req_chunked, v.iov_base,
						   v.iov_len);
			if (k < 0) {
				fwd_abort(c,
					  egress_reason_name(
					      EGRESS_REASON_BAD_REQUEST),
					  400,
					  "malformed chunked request body");
				return;
			}
			n = (size_t)k;
			if (c->req_chunked.done)
				c->req_done = true;
			else if (n < v.iov_len)
				break; /* parser wants nothing more now */
		}
		if (!budget_charge(c, n)) {
			fwd_abort(
			    c,
			    egress_reason_name(
				EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED),
			    403,
			    "the request body would pass the host's upload "
			    "budget");
			return;
		}
		evbuffer_remove_buffer(in, out, n);
		c->client.bytes += n;
	}
	if (c->req_done)
		bufferevent_disable(c->client.bev, EV_READ);
	else
		bufferevent_enable(c->client.bev, EV_READ);
}

/* The response is complete: one close record, then the next request on a
 * kept-alive connection or a graceful close. */
static void fwd_complete(struct conn *c)
{
	conn_log(c, "close", egress_reason_name(EGRESS_REASON_EOF), NULL, true);
	conn_release_upstream(c);
	if (!c->keep_alive || !c->req_done || c->client.eof || c->w->draining) {
		conn_start_closing(c);
		return;
	}
	conn_next_request(c);
}

/* Reads one response head. Returns 2 when it was an interim one (passed
 * on as is), 1 when the final head was sent on, 0 when more bytes are
 * needed, -1 when the conn was closed or completed. */
static int response_head(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->upstream.bev);
	struct evbuffer *out = bufferevent_get_output(c->client.bev);
	size_t len = evbuffer_get_length(in);
	if (len == 0)
		return 0;
	size_t take = len > HTTP_HEAD_MAX + 1 ? HTTP_HEAD_MAX + 1 : len;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
	struct http_response *resp = malloc(sizeof *resp);
	char *head = NULL;
	char err[256] = "";
	int rc = -1;
	if (buf == NULL || resp == NULL) {
		fwd_abort(c, egress_reason_name(EGRESS_REASON_INTERNAL), 502,
			  "out of memory");
		goto out;
	}
	enum http_parse_result r = http_parse_response(
	    buf, take, c->is_head_method, resp, err, sizeof err);
	if (r == HTTP_NEED_MORE && take <= HTTP_HEAD_MAX) {
		rc = 0;
		goto out;
	}
	if (r != HTTP_OK) {
		fwd_abort(c, egress_reason_name(EGRESS_REASON_BAD_RESPONSE),
			  502, err[0] ? err : "response head too large");
		goto out;
	}
	if (resp->status >= 100 && resp->status < 200) {
		if (resp->status == 101) {
			fwd_abort(
			    c, egress_reason_name(EGRESS_REASON_BAD_RESPONSE),
			    502, "upstream switched protocols unasked");
			goto out;
		}
		/* Interim responses (100 Continue) pass as is. */
		evbuffer_remove_buffer(in, out, resp->head_len);
		c->upstream.bytes += resp->head_len;
		rc = 2;
		goto out;
	}
	c->keep_alive = c->client_keep_alive && resp->body != HTTP_BODY_CLOSE &&
			!c->w->draining;
	head = malloc(FWD_HEAD_MAX);
	long n = head ? fwd_build_response(buf, resp, c->version_minor,
					   c->keep_alive, head, FWD_HEAD_MAX)
		      : -ENOMEM;
	if (n < 0) {
		fwd_abort(c, egress_reason_name(EGRESS_REASON_BAD_RESPONSE),
			  502, "rewritten response head too large");
		goto out;
	}
	evbuffer_drain(in, resp->head_len);
	bufferevent_write(c->client.bev, head, (size_t)n);
	c->upstream.bytes += (uint64_t)n;
	c->resp_started = true;
	c->resp_body = resp->body;
	c->resp_remaining = resp->content_length;
	http_chunked_init(&c->resp_chunked);
	if (c->resp_body == HTTP_BODY_NONE ||
	    (c->resp_body == HTTP_BODY_LENGTH && c->resp_remaining == 0)) {
		fwd_complete(c);
		goto out;
	}
	rc = 1;
out:
	free(head);
	free(resp);
	return rc;
}

/* Passes response body bytes as the head framed them. */
static void response_body(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->upstream.bev);
	struct evbuffer *out = bufferevent_get_output(c->client.bev);
	for (;;) {
		size_t len = evbuffer_get_length(in);
		if (len == 0)
			return;
		if (out_full(&c->client)) {
			bufferevent_disable(c->upstream.bev, EV_READ);
			return;
		}
		size_t n = len;
		bool done = false;
		if (c->resp_body == HTTP_BODY_LENGTH) {
			if (n > c->resp_remaining)
				n = (size_t)c->resp_remaining;
			c->resp_remaining -= n;
			done = c->resp_remaining == 0;
		} else if (c->resp_body == HTTP_BODY_CHUNKED) {
			struct evbuffer_iovec v;
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				return;
			long k = http_chunked_feed(&c->resp_chunked, v.iov_base,
						   v.iov_len);
			if (k < 0) {
				fwd_abort(c,
					  egress_reason_name(
					      EGRESS_REASON_BAD_RESPONSE),
					  0, "malformed chunked response body");
				return;
			}
			n = (size_t)k;
			done = c->resp_chunked.done;
			if (!done && n < v.iov_len)
				return;
		}
		evbuffer_remove_buffer(in, out, n);
		c->upstream.bytes += n;
		if (done) {
			fwd_complete(c);
			return;
		}
	}
}

static void upstream_read(struct conn *c)
{
	conn_touch(c);
	while (!c->resp_started) {
		int r = response_head(c);
		if (r <= 0)
			return;
	}
	response_body(c);
}

void fwd_read(struct conn_side *s)
{
	struct conn *c = s->conn;
	if (s == &c->upstream) {
		upstream_read(c);
		return;
	}
	conn_touch(c);
	pump_request(c);
}

void fwd_write_drained(struct conn_side *s)
{
	struct conn *c = s->conn;
	conn_touch(c);
	if (s == &c->client) {
		if (!out_full(&c->client) && c->resp_started) {
			bufferevent_enable(c->upstream.bev, EV_READ);
			upstream_read(c);
		}
		return;
	}
	if (!c->req_done && !c->client.eof && !out_full(&c->upstream)) {
		bufferevent_enable(c->client.bev, EV_READ);
		pump_request(c);
	}
}

static void client_event(struct conn *c, short what)
{
	c->client.eof = true;
	if (what & BEV_EVENT_ERROR) {
		fwd_abort(c,
			  conn_side_reason(&c->client, EVUTIL_SOCKET_ERROR()),
			  0, NULL);
		return;
	}
	if (!c->req_done) {
		fwd_abort(c, egress_reason_name(EGRESS_REASON_CLIENT_CLOSED), 0,
			  "client closed before the request body ended");
		return;
	}
	/* keep sending the response */
}

void fwd_event(struct conn_side *s, short what)
{
	struct conn *c = s->conn;
	if (s == &c->client) {
		if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
			client_event(c, what);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* The read callback has consumed what arrived. */
		if (c->resp_started && c->resp_body == HTTP_BODY_CLOSE) {
			c->keep_alive = false;
			fwd_complete(c);
			return;
		}
		fwd_abort(c, egress_reason_name(EGRESS_REASON_UPSTREAM_CLOSED),
			  502, "upstream closed before the response ended");
		return;
	}
	if (what & BEV_EVENT_ERROR)
		fwd_abort(c, egress_reason_name(EGRESS_REASON_UPSTREAM_RESET),
			  502, "upstream connection failed");
}

void fwd_idle_timeout(struct conn *c)
{
	fwd_abort(c, egress_reason_name(EGRESS_REASON_IDLE_TIMEOUT), 504,
		  "upstream idle too long");
}

/* ---- the session's git broker (git.agentsafe.internal) ---- */

bool fwd_is_broker_host(const char *host)
{
	return strcmp(host, FWD_BROKER_HOST) == 0;
}

/* The reserved name never reaches the resolver or the policy: a plain
 * http:// request on port 80 goes to the broker's unix socket (the broker
 * decides what the request may do); anything else is refused. */
void fwd_broker_connect(struct conn *c)
{
	const char *path = c->w->srv->cfg.git_broker;
	struct sockaddr_un *sun = (struct sockaddr_un *)&c->addrs[0];
	const char *why = NULL;
	if (c->is_connect || c->port != 80)
		why = FWD_BROKER_HOST " is the session's git broker: use "
				      "http://" FWD_BROKER_HOST
				      "/REPO (plain HTTP, port 80)";
	else if (path == NULL || path[0] != '/' ||
		 strlen(path) >= sizeof sun->sun_path)
		why = "this session has no git broker";
	policy_unref(c->pol);
	c->pol = NULL;
	if (why != NULL) {
		conn_refuse(c, "deny", 403,
			    egress_reason_name(EGRESS_REASON_NOT_ALLOWED), why);
		return;
	}
	free(c->rule);
	c->rule = strdup("git broker");
	memset(&c->addrs[0], 0, sizeof c->addrs[0]);
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	c->addrlens[0] = (socklen_t)sizeof *sun;
	c->naddrs = 1;
	c->addr_idx = 0;
	bufferevent_disable(c->client.bev, EV_READ);
	conn_connect_start(c);
}
