/* WebSocket upgrades inside inspected tunnels (see inspect_ws.h). Only a
 * request an `http:` entry with `websocket: true` allows gets here; after
 * the upstream's 101 the frames are relayed as they are, not inspected. */
#include "inspect_ws.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "budget.h"
#include "proxy_int.h"

static bool name_is(const struct http_header *h, const char *name)
{
	size_t n = strlen(name);
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* A comma-separated header value holds `token` (any case, trimmed). */
static bool has_token(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t start = i;
		while (i < len && v[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end - start == tl && strncasecmp(v + start, token, tl) == 0)
			return true;
	}
	return false;
}

/* The single Upgrade header of a head, NULL when there is none; *count
 * says how many there were. */
static const struct http_header *upgrade_of(const struct http_header *hs,
					    size_t n, size_t *count)
{
	const struct http_header *up = NULL;
	*count = 0;
	for (size_t i = 0; i < n; i++)
		if (name_is(&hs[i], "upgrade")) {
			up = &hs[i];
			(*count)++;
		}
	return up;
}

static bool is_websocket(const struct http_header *h)
{
	return h->value_len == 9 && strncasecmp(h->value, "websocket", 9) == 0;
}

enum inspect_ws_ask inspect_ws_asked(const struct http_request *q, char *msg,
				     size_t msglen)
{
	size_t count;
	const struct http_header *up =
	    upgrade_of(q->headers, q->nheaders, &count);
	if (count == 0)
		return INSPECT_WS_NONE;
	bool conn_upgrade = false;
	for (size_t i = 0; i < q->nheaders; i++)
		if (name_is(&q->headers[i], "connection") &&
		    has_token(q->headers[i].value, q->headers[i].value_len,
			      "upgrade"))
			conn_upgrade = true;
	char qv[120];
	proxy_quote(up->value, up->value_len, qv, sizeof qv);
	if (count > 1)
		snprintf(msg, msglen, "more than one Upgrade header");
	else if (!is_websocket(up))
		snprintf(msg, msglen,
			 "Upgrade: %s is not relayed (only websocket, where "
			 "an http: entry says websocket: true)",
			 qv);
	else if (!conn_upgrade)
		snprintf(msg, msglen,
			 "Upgrade: websocket without Connection: upgrade");
	else if (q->method_len != 3 || memcmp(q->method, "GET", 3) != 0)
		snprintf(msg, msglen, "a WebSocket handshake is a GET");
	else if (q->version_minor != 1)
		snprintf(msg, msglen, "a WebSocket handshake is HTTP/1.1");
	else if (q->body != HTTP_BODY_NONE)
		snprintf(msg, msglen, "a WebSocket handshake has no body");
	else
		return INSPECT_WS_WEBSOCKET;
	return INSPECT_WS_OTHER;
}

bool inspect_ws_101_ok(const struct http_response *r)
{
	size_t count;
	const struct http_header *up =
	    upgrade_of(r->headers, r->nheaders, &count);
	return count == 1 && is_websocket(up);
}

static size_t out_len(const struct conn_side *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

bool inspect_ws_pass(struct conn_side *s)
{
	if (s->bev == NULL || s->peer->bev == NULL)
		return true;
	struct conn *c = s->conn;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t n = evbuffer_get_length(in);
	/* The client's frames count against the host's upload budget. */
	size_t ok = n > 0 && s == &c->client ? budget_reserve(c, n) : n;
	if (ok > 0) {
		conn_touch(c);
		evbuffer_remove_buffer(in, bufferevent_get_output(s->peer->bev),
				       ok);
		s->bytes += ok;
	}
	if (ok < n) {
		budget_trip(c);
		return false;
	}
	if (out_len(s->peer) >= RELAY_BUF_MAX)
		bufferevent_disable(s->bev, EV_READ);
	else
		bufferevent_enable(s->bev, EV_READ);
	return true;
}

bool inspect_ws_drained(struct conn_side *s)
{
	if (s->bev == NULL || s->peer->bev == NULL || s->peer->eof)
		return true;
	conn_touch(s->conn);
	return out_len(s) < RELAY_BUF_MAX ? inspect_ws_pass(s->peer) : true;
}

bool inspect_ws_start(struct conn_side *client)
{
	conn_touch(client->conn);
	(void)inspect_ws_pass(client->peer);
	return inspect_ws_pass(client);
}
