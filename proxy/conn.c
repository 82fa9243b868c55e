/* One client connection: read a strict request head, decide it against the
 * policy, resolve and guard the address, check a tunnel's ClientHello, and
 * connect; then relay.c or forward.c moves the bytes. */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "approval.h"
#include "budget.h"
#include "clienthello.h"
#include "refusal.h"
#include "inspect.h"
#include "serverhello.h"

static void side_read_cb(struct bufferevent *bev, void *arg);
static void side_write_cb(struct bufferevent *bev, void *arg);
static void side_event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void head_try(struct conn *c);
static void connect_next(struct conn *c);

/* ---- small helpers ---- */

static const char *const state_names[] = {
    [CS_NEW] = "NEW",		[CS_HEAD] = "HEAD",
    [CS_RESOLVE] = "RESOLVE",	[CS_HELLO] = "HELLO",
    [CS_CONNECT] = "CONNECT",	[CS_RELAY] = "RELAY",
    [CS_FWD] = "FWD",		[CS_CLOSING] = "CLOSING",
    [CS_SHELLO] = "SHELLO",	[CS_HELLO2] = "HELLO2",
    [CS_APPROVAL] = "APPROVAL", [CS_INSPECT] = "INSPECT",
};

void conn_trace(const struct conn *c, const char *fmt, ...)
{
	if (!c->w->srv->trace)
		return;
	char msg[128];
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, PROXY_PREFIX "conn %s: %s\n", c->id, msg);
}

void conn_set_state(struct conn *c, enum conn_state st)
{
	if (c->state != st)
		conn_trace(c, "%s -> %s", state_names[c->state],
			   state_names[st]);
	c->state = st;
}

void conn_touch(struct conn *c)
{
	clock_gettime(CLOCK_MONOTONIC_COARSE, &c->last_activity);
}

const char *conn_side_reason(const struct conn_side *s, int e)
{
	return e == ECONNRESET ? s->reset_reason : s->error_reason;
}

int64_t conn_ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 +
	       (now.tv_nsec - t->tv_nsec) / 1000000;
}

void conn_arm_timer(struct conn *c, unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000),
			     (suseconds_t)((ms % 1000) * 1000)};
	evtimer_add(c->timer, &tv);
}

static void copy_str(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t n = srclen < dstlen - 1 ? srclen : dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

int conn_log(struct conn *c, const char *event, const char *reason,
	     const char *message, bool with_totals)
{
	struct egress_record r;
	egress_record_init(&r);
	r.id = c->id;
	r.event = event;
	r.client = c->client_addr;
	r.method = c->method[0] ? c->method : NULL;
	r.host = c->host[0] ? c->host : NULL;
	r.port = c->port;
	r.sni = c->sni[0] ? c->sni : NULL;
	r.ip = c->ip[0] ? c->ip : NULL;
	r.rule = c->rule;
	r.reason = reason;
	r.message = message;
	r.origin = c->selfcheck ? "selfcheck" : NULL;
	if (c->would_deny && strcmp(event, "open") == 0) {
		r.would_deny = true;
		r.reason = c->would_reason;
	}
	char full[1024];
	if (c->note[0] != '\0') {
		snprintf(full, sizeof full, "%s%s%s", message ? message : "",
			 message ? "; " : "", c->note);
		r.message = full;
	}
	if (with_totals) {
		r.bytes_up = (int64_t)c->client.bytes;
		r.bytes_down = (int64_t)c->upstream.bytes;
		r.duration_ms = conn_ms_since(&c->t_open);
	}
	int rc = strcmp(event, "deny") == 0
		     ? egress_fold_write(c->w->srv->fold, &r)
		     : egress_log_write(c->w->srv->log, &r);
	if (rc != 0)
		fprintf(stderr,
			PROXY_PREFIX "cannot write an egress.log record: %s\n",
			strerror(-rc));
	return rc;
}

/* Forget the per-request fields so a keep-alive connection starts clean. */
static void reset_request(struct conn *c)
{
	c->method[0] = c->host[0] = c->sni[0] = c->ip[0] = c->note[0] = '\0';
	c->port = 0;
	free(c->rule);
	c->rule = NULL;
	free(c->fwd_head);
	c->fwd_head = NULL;
	c->fwd_head_len = 0;
	policy_unref(c->pol);
	c->pol = NULL;
	c->is_connect = c->require_tls = c->would_deny = c->inspect = false;
	c->would_reason = NULL;
	c->naddrs = c->addr_idx = 0;
	c->last_connect_errno = 0;
	c->client.bytes = c->upstream.bytes = 0;
	c->budget = NULL;
	c->client.shut = c->upstream.shut = c->upstream.eof = false;
	c->req_done = c->resp_started = false;
	c->dns_done = false;
	egress_log_next_id(c->w->srv->log, c->id, sizeof c->id);
	clock_gettime(CLOCK_MONOTONIC, &c->t_start);
	c->t_open = c->t_start;
}

void conn_release_upstream(struct conn *c)
{
	approval_forget(c);
	if (c->dnsreq != NULL) {
		/* The callback still runs, with EVUTIL_EAI_CANCEL, and then
		 * must not touch this conn. */
		evdns_getaddrinfo_cancel(c->dnsreq);
		c->dnsreq = NULL;
	}
	if (c->upstream.bev != NULL) {
		bufferevent_free(c->upstream.bev);
		c->upstream.bev = NULL;
	}
	if (c->idle_timer != NULL)
		evtimer_del(c->idle_timer);
}

void conn_free(struct conn *c)
{
	struct worker *w = c->w;
	conn_trace(c, "%s -> freed", state_names[c->state]);
	relay_splice_free(c);
	inspect_free(c);
	conn_release_upstream(c);
	if (c->dns_ai != NULL)
		evutil_freeaddrinfo(c->dns_ai);
	if (c->client.bev != NULL)
		bufferevent_free(c->client.bev);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->idle_timer != NULL)
		event_free(c->idle_timer);
	policy_unref(c->pol);
	free(c->rule);
	free(c->fwd_head);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->nconns--;
	if (c->counted)
		atomic_fetch_sub(&w->srv->nconns, 1);
	if (c->reject)
		atomic_fetch_sub(&w->srv->nrejecting, 1);
	free(c);
	if (w->draining && w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

/* Flush what is queued for the client, then shut our side and discard what
 * the client still sends for a moment: closing with unread input would
 * make the kernel send a RST that can destroy the answer in flight. */
void conn_start_closing(struct conn *c)
{
	conn_release_upstream(c);
	conn_set_state(c, CS_CLOSING);
	/* A finished connection no longer counts toward max_connections:
	 * the linger below must not refuse the client's next attempt. */
	if (c->counted) {
		atomic_fetch_sub(&c->w->srv->nconns, 1);
		c->counted = false;
	}
	c->client.shut = false;
	struct evbuffer *in = bufferevent_get_input(c->client.bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_setwatermark(c->client.bev, EV_READ, 0, 0);
	bufferevent_setwatermark(c->client.bev, EV_WRITE, 0, 0);
	if (!c->client.eof)
		bufferevent_enable(c->client.bev, EV_READ);
	/* A forwarded response may still be queued: give the client the
	 * idle timeout to take it, then LINGER_MS after our FIN. */
	unsigned flush_ms = c->limits.idle_timeout_ms > LINGER_MS
				? c->limits.idle_timeout_ms
				: LINGER_MS;
	conn_arm_timer(c, flush_ms);
	if (evbuffer_get_length(bufferevent_get_output(c->client.bev)) == 0) {
		conn_arm_timer(c, LINGER_MS);
		shutdown(bufferevent_getfd(c->client.bev), SHUT_WR);
		c->client.shut = true;
		/* Callers may still touch c: free from the loop instead. */
		if (c->client.eof)
			conn_arm_timer(c, 0);
	}
}

static const char *status_text(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

/* Answer with an error status and close. The body is one sentence an
 * agent (or its user) can act on (refusal.h); the header carries the code. */
void conn_reply_error(struct conn *c, int status, const char *reason,
		      const char *detail)
{
	char body[1536];
	struct refusal rf = {c->is_connect, c->host, c->port,
			     reason,	    detail,  c->rule};
	int bl = (int)refusal_body(&rf, body, sizeof body);
	evbuffer_add_printf(bufferevent_get_output(c->client.bev),
			    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			    "Content-Length: %d\r\nConnection: close\r\n"
			    "X-AgentSafe-Reason: %s\r\n\r\n",
			    status, status_text(status), bl, reason);
	bufferevent_write(c->client.bev, body, (size_t)bl);
	conn_start_closing(c);
}

/* A request refused before any upstream byte: one record, then answer
 * (or just close when the client already got 200). */
void conn_refuse(struct conn *c, const char *event, int status,
		 const char *reason, const char *detail)
{
	conn_log(c, event, reason, detail, false);
	if (strcmp(event, "deny") == 0)
		why_note(c, reason, detail);
	if (status > 0)
		conn_reply_error(c, status, reason, detail);
	else
		conn_start_closing(c);
}

/* ---- accept ---- */

static void reject_now(struct worker *w, int fd, const char *client)
{
	const char *code = egress_reason_name(EGRESS_REASON_MAX_CONNECTIONS);
	struct refusal rf = {false, NULL, 0, code, NULL, NULL};
	char body[768], resp[1024];
	size_t bl = refusal_body(&rf, body, sizeof body);
	int rl = snprintf(resp, sizeof resp,
			  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
			  "text/plain\r\nContent-Length: %zu\r\nConnection: "
			  "close\r\nX-AgentSafe-Reason: %s\r\n\r\n%s",
			  bl, code, body);
	struct egress_record r;
	char id[48];
	egress_log_next_id(w->srv->log, id, sizeof id);
	egress_record_init(&r);
	r.id = id;
	r.event = "deny";
	r.client = client;
	r.reason = egress_reason_name(EGRESS_REASON_MAX_CONNECTIONS);
	r.message = "too many connections; refused before reading the request";
	(void)egress_fold_write(w->srv->fold, &r);
	if (rl > 0 && (size_t)rl < sizeof resp)
		(void)send(fd, resp, (size_t)rl, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void init_sides(struct conn *c)
{
	c->client.conn = c->upstream.conn = c;
	c->client.peer = &c->upstream;
	c->upstream.peer = &c->client;
	c->client.name = "client";
	c->client.reset_reason = egress_reason_name(EGRESS_REASON_CLIENT_RESET);
	c->client.error_reason = egress_reason_name(EGRESS_REASON_CLIENT_ERROR);
	c->upstream.name = "upstream";
	c->upstream.reset_reason =
	    egress_reason_name(EGRESS_REASON_UPSTREAM_RESET);
	c->upstream.error_reason =
	    egress_reason_name(EGRESS_REASON_UPSTREAM_ERROR);
}

void conn_accept(struct worker *w, int fd, const struct sockaddr *sa)
{
	struct proxy_server *s = w->srv;
	struct policy *p = proxy_policy_get(s);
	struct policy_limits lim = *policy_get_limits(p);
	policy_unref(p);
	char client[PROXY_ADDRSTR_MAX];
	proxy_format_addr(sa, client, sizeof client);
	bool selfcheck = proxy_selfcheck_window(s);

	bool reject = false;
	unsigned n = atomic_fetch_add(&s->nconns, 1) + 1;
	/* What the descriptor limit allows, keeping the pipe pool free. */
	unsigned fd_cap =
	    s->fd_limit > FD_RESERVE + 2 * FD_PIPE_POOL
		? (s->fd_limit - FD_RESERVE - 2 * FD_PIPE_POOL) / 2
		: 0;
	if ((lim.max_connections > 0 && n > lim.max_connections) ||
	    (fd_cap > 0 && n > fd_cap)) {
		atomic_fetch_sub(&s->nconns, 1);
		unsigned r = atomic_fetch_add(&s->nrejecting, 1) + 1;
		if (r > REJECT_MAX || w->draining) {
			atomic_fetch_sub(&s->nrejecting, 1);
			reject_now(w, fd, client);
			return;
		}
		reject = true;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	struct conn *c = calloc(1, sizeof *c);
	if (c != NULL) {
		c->client.bev =
		    bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
		c->timer = evtimer_new(w->base, timer_cb, c);
	}
	if (c == NULL || c->client.bev == NULL || c->timer == NULL) {
		fprintf(stderr, PROXY_PREFIX "out of memory accepting %s\n",
			client);
		if (c != NULL && c->client.bev != NULL)
			bufferevent_free(c->client.bev);
		else
			close(fd);
		if (c != NULL && c->timer != NULL)
			event_free(c->timer);
		free(c);
		if (reject)
			atomic_fetch_sub(&s->nrejecting, 1);
		else
			atomic_fetch_sub(&s->nconns, 1);
		return;
	}
	c->w = w;
	c->reject = reject;
	c->counted = !reject;
	c->first = true;
	c->limits = lim;
	memcpy(c->client_addr, client, sizeof c->client_addr);
	c->selfcheck = selfcheck;
	init_sides(c);
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;

	reset_request(c);
	conn_set_state(c, CS_HEAD);
	bufferevent_setcb(c->client.bev, side_read_cb, side_write_cb,
			  side_event_cb, &c->client);
	bufferevent_setwatermark(c->client.bev, EV_READ, 0, HTTP_HEAD_MAX + 1);
	bufferevent_setwatermark(c->client.bev, EV_WRITE, RELAY_BUF_MAX / 2, 0);
	bufferevent_enable(c->client.bev, EV_READ);
	conn_arm_timer(c, lim.header_timeout_ms);
}

void conn_next_request(struct conn *c)
{
	conn_set_state(c, CS_HEAD);
	c->first = false;
	reset_request(c);
	struct policy *p = proxy_policy_get(c->w->srv);
	c->limits = *policy_get_limits(p);
	policy_unref(p);
	bufferevent_setwatermark(c->client.bev, EV_READ, 0, HTTP_HEAD_MAX + 1);
	bufferevent_enable(c->client.bev, EV_READ);
	conn_arm_timer(c, c->limits.header_timeout_ms);
	head_try(c);
}

/* ---- request head ---- */

static void handle_request(struct conn *c, const struct http_request *req);
static bool ask_instead(struct conn *c, const struct policy_decision *d);
static void decided(struct conn *c, bool rule_tls, uint64_t rule_budget);

static void head_try(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client.bev);
	size_t len = evbuffer_get_length(in);
	if (len == 0)
		return;
	size_t take = len > HTTP_HEAD_MAX + 1 ? HTTP_HEAD_MAX + 1 : len;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
	if (buf == NULL) {
		conn_refuse(c, "error", 503,
			    egress_reason_name(EGRESS_REASON_INTERNAL),
			    "out of memory");
		return;
	}
	struct http_request *req = malloc(sizeof *req);
	if (req == NULL) {
		conn_refuse(c, "error", 503,
			    egress_reason_name(EGRESS_REASON_INTERNAL),
			    "out of memory");
		return;
	}
	char err[256] = "";
	enum http_parse_result r =
	    http_parse_request(buf, take, req, err, sizeof err);
	int status = 0;
	switch (r) {
	case HTTP_OK:
		break;
	case HTTP_NEED_MORE:
		if (take > HTTP_HEAD_MAX)
			status = 431;
		break;
	case HTTP_TOO_LARGE:
		status = 431;
		break;
	case HTTP_BAD_VERSION:
		status = 505;
		break;
	case HTTP_NOT_IMPLEMENTED:
		status = 501;
		break;
	case HTTP_BAD:
	default:
		status = 400;
		break;
	}
	if (status != 0) {
		free(req);
		if (err[0] == '\0')
			snprintf(err, sizeof err, "request head is too large");
		evtimer_del(c->timer);
		conn_refuse(c, "deny", status,
			    egress_reason_name(EGRESS_REASON_BAD_REQUEST), err);
		return;
	}
	if (r == HTTP_NEED_MORE) {
		free(req);
		return;
	}
	evtimer_del(c->timer);
	handle_request(c, req);
	free(req);
}

static void resolve(struct conn *c);
static void check_addrs_and_go(struct conn *c);

/* A literal target needs no resolver: its one address goes straight to
 * the address guard. */
static void connect_ip_literal(struct conn *c)
{
	struct sockaddr_storage *ss = &c->addrs[0];
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, c->host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(c->port);
		c->addrlens[0] = sizeof *a4;
	} else if (inet_pton(AF_INET6, c->host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(c->port);
		c->addrlens[0] = sizeof *a6;
	} else {
		conn_refuse(c, "deny", 403,
			    egress_reason_name(EGRESS_REASON_BAD_HOST), NULL);
		return;
	}
	c->naddrs = 1;
	check_addrs_and_go(c);
}

static void handle_request(struct conn *c, const struct http_request *req)
{
	struct evbuffer *in = bufferevent_get_input(c->client.bev);
	char err[POLICY_ERR_MAX];
	const char *raw_host = req->host;
	char hostbuf[POLICY_HOST_MAX + 3];

	copy_str(c->method, sizeof c->method, req->method, req->method_len);
	c->port = req->port;
	c->is_connect = req->is_connect;
	c->version_minor = req->version_minor;
	c->client_keep_alive = req->keep_alive;
	/* An IPv6 literal may arrive bracketed; matching wants it bare. */
	size_t hl = strlen(raw_host);
	if (hl >= 2 && raw_host[0] == '[' && raw_host[hl - 1] == ']' &&
	    hl - 2 < sizeof hostbuf) {
		memcpy(hostbuf, raw_host + 1, hl - 2);
		hostbuf[hl - 2] = '\0';
		raw_host = hostbuf;
		hl -= 2;
	}
	if (policy_host_normalize(raw_host, hl, c->host, sizeof c->host, err,
				  sizeof err) != 0) {
		/* The record's host field holds only a valid name; the
		 * client's text goes into the message, escaped. */
		char q[200];
		proxy_quote(raw_host, hl, q, sizeof q);
		c->host[0] = '\0';
		snprintf(c->note, sizeof c->note, "target host %s: %s", q, err);
	}

	if (c->reject) {
		evbuffer_drain(in, req->head_len);
		conn_refuse(c, "deny", 503,
			    egress_reason_name(EGRESS_REASON_MAX_CONNECTIONS),
			    "too many open connections");
		return;
	}
	/* Nothing is tunnelled that cannot be recorded (a full disk). */
	if (!egress_log_writable(c->w->srv->log)) {
		evbuffer_drain(in, req->head_len);
		conn_refuse(c, "deny", 503,
			    egress_reason_name(EGRESS_REASON_LOG_UNWRITABLE),
			    "egress.log cannot be written");
		return;
	}
	if (inspect_misuse_refused(c, req))
		return; /* a placeholder in a CONNECT or plain-HTTP head */
	if (!req->is_connect && !req->is_absolute) {
		evbuffer_drain(in, req->head_len);
		conn_refuse(c, "deny", 400,
			    egress_reason_name(EGRESS_REASON_BAD_REQUEST),
			    "origin-form request: send CONNECT host:port or an "
			    "absolute http:// URI to this proxy");
		return;
	}
	if (req->is_connect && req->version_minor == 1 &&
	    req->host_header == NULL) {
		/* RFC 9112 3.2: every HTTP/1.1 request has exactly one Host
		 * (two are refused by the parser). HTTP/1.0 needs none. */
		evbuffer_drain(in, req->head_len);
		conn_refuse(c, "deny", 400,
			    egress_reason_name(EGRESS_REASON_BAD_REQUEST),
			    "HTTP/1.1 CONNECT without a Host header");
		return;
	}
	if (!req->is_connect) {
		int status = fwd_prepare(c, req, err, sizeof err);
		if (status != 0) {
			evbuffer_drain(in, req->head_len);
			conn_refuse(
			    c, "deny", status,
			    egress_reason_name(EGRESS_REASON_BAD_REQUEST), err);
			return;
		}
	}
	evbuffer_drain(in, req->head_len);
	if (why_is_request(c)) {
		why_serve(c);
		return;
	}

	struct policy_decision d;
	c->pol = proxy_policy_get(c->w->srv);
	c->limits = *policy_get_limits(c->pol);
	if (fwd_is_broker_host(c->host)) {
		fwd_broker_connect(c);
		return;
	}
	policy_match(c->pol, raw_host, req->port, &d);
	if (d.rule != NULL) {
		c->rule = strdup(d.rule);
		if (c->rule == NULL) {
			conn_refuse(c, "error", 503,
				    egress_reason_name(EGRESS_REASON_INTERNAL),
				    "out of memory");
			return;
		}
	}
	c->require_tls = c->is_connect && d.require_tls;
	c->inspect = c->require_tls && d.inspect;
	c->would_deny = d.would_deny;
	c->would_reason = d.reason;
	if (d.verdict != POLICY_ALLOW && ask_instead(c, &d))
		return;
	if (d.verdict != POLICY_ALLOW) {
		conn_refuse(c, "deny", 403, d.reason, NULL);
		return;
	}
	decided(c, d.require_tls, d.upload_budget);
}

/* unknown: ask. A request refused only because no rule names its host
 * (never a deny rule, a bad host or a port a rule leaves out) goes
 * through when the user approved it for the session, or waits for an
 * answer. True when c was taken over. */
static bool ask_instead(struct conn *c, const struct policy_decision *d)
{
	struct proxy_server *srv = c->w->srv;
	if (srv->approval == NULL || strcmp(d->reason, "not_allowed") != 0 ||
	    !(srv->cfg.ask || policy_unknown_ask(c->pol)))
		return false;
	for (size_t i = 0; i < srv->cfg.nnever_ask; i++) {
		char t[POLICY_HOST_MAX + 8];
		const char *e = srv->cfg.never_ask[i];
		snprintf(t, sizeof t, "%s:%u", c->host, c->port);
		if (strcmp(e, t) == 0 ||
		    (c->port == 443 && strcmp(e, c->host) == 0))
			return false;
	}
	if (approval_granted(srv, c->host, c->port)) {
		conn_approved(c);
		return true;
	}
	return approval_hold(c) == 0;
}

void conn_approved(struct conn *c)
{
	/* As an allow rule with the default tls: true: the SNI check, the
	 * address guard and the budget hold as for any rule. */
	c->require_tls = c->is_connect;
	decided(c, true, 0);
}

/* The policy let c through (rule_tls: the rule expects TLS; rule_budget:
 * its upload_budget, 0 for the limits'): the checks that need no
 * resolver, then resolve. */
static void decided(struct conn *c, bool rule_tls, uint64_t rule_budget)
{
	c->budget = budget_get(c->w->srv, c->host,
			       rule_budget != 0 ? rule_budget
						: c->limits.upload_budget);
	if (budget_exceeded(c->budget)) {
		conn_refuse(
		    c, "deny", 403,
		    egress_reason_name(EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED),
		    "this host's upload budget for the session is used up");
		return;
	}
	const struct policy_decision allowed = {.verdict = POLICY_ALLOW,
						.require_tls = rule_tls};
	if (policy_plain_http_refused(&allowed, c->is_connect, c->port)) {
		/* The HTTPS port of a rule that expects TLS: plain HTTP there
		 * would carry the request, and any credential in it, in the
		 * clear. */
		conn_refuse(c, "deny", 403,
			    egress_reason_name(EGRESS_REASON_NOT_TLS),
			    "plain HTTP to port 443 of a host whose rule "
			    "expects TLS: use https://, or tls: false on the "
			    "rule");
		return;
	}

	/* The decision is made: the client must wait for us now. */
	bufferevent_disable(c->client.bev, EV_READ);
	if (policy_host_is_ip_literal(c->host)) {
		connect_ip_literal(c);
		return;
	}
	resolve(c);
}

/* ---- resolution and the address guard ---- */

static void dns_result(struct conn *c);

static void dns_cb(int result, struct evutil_addrinfo *ai, void *arg)
{
	if (result == EVUTIL_EAI_CANCEL) {
		/* Cancelled by conn_release_upstream: arg may be gone. */
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		return;
	}
	struct conn *c = arg;
	c->dnsreq = NULL;
	c->dns_err = result;
	c->dns_ai = ai;
	c->dns_done = true;
	if (!c->dns_sync)
		dns_result(c);
}

static void resolve(struct conn *c)
{
	struct evutil_addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	conn_set_state(c, CS_RESOLVE);
	c->dns_done = false;
	c->dns_sync = true;
	struct evdns_getaddrinfo_request *rq =
	    evdns_getaddrinfo(c->w->dns, c->host, NULL, &hints, dns_cb, c);
	c->dns_sync = false;
	if (c->dns_done) {
		dns_result(c);
		return;
	}
	if (rq == NULL) {
		conn_refuse(c, "deny", 502,
			    egress_reason_name(EGRESS_REASON_DNS_FAILURE),
			    "resolver failed");
		return;
	}
	if (c->w->dns_hosts_only) {
		/* Not in the hosts file and no --dns server: nothing else
		 * may answer. */
		evdns_getaddrinfo_cancel(rq);
		conn_refuse(
		    c, "deny", 502,
		    egress_reason_name(EGRESS_REASON_DNS_FAILURE),
		    "name is not in the --hosts file and no --dns server "
		    "is configured");
		return;
	}
	c->dnsreq = rq;
	conn_arm_timer(c, c->limits.connect_timeout_ms);
}

static void dns_result(struct conn *c)
{
	evtimer_del(c->timer);
	struct evutil_addrinfo *ai = c->dns_ai;
	c->dns_ai = NULL;
	if (c->dns_err != 0 || ai == NULL) {
		char msg[512];
		snprintf(msg, sizeof msg, "cannot resolve %s: %s", c->host,
			 c->dns_err ? evutil_gai_strerror(c->dns_err)
				    : "no address");
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		conn_refuse(c, "deny", 502,
			    egress_reason_name(EGRESS_REASON_DNS_FAILURE), msg);
		return;
	}
	c->naddrs = 0;
	for (struct evutil_addrinfo *a = ai; a != NULL; a = a->ai_next) {
		if (c->naddrs == CONN_ADDRS_MAX)
			break;
		if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
		    a->ai_addrlen > sizeof(struct sockaddr_storage))
			continue;
		memcpy(&c->addrs[c->naddrs], a->ai_addr, a->ai_addrlen);
		c->addrlens[c->naddrs] = (socklen_t)a->ai_addrlen;
		((struct sockaddr_in *)&c->addrs[c->naddrs])->sin_port =
		    htons(c->port); /* same offset for v4 and v6 */
		c->naddrs++;
	}
	evutil_freeaddrinfo(ai);
	check_addrs_and_go(c);
}

static void send_established(struct conn *c)
{
	static const char ok[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
	bufferevent_write(c->client.bev, ok, sizeof ok - 1);
}

/* Keep only the addresses the policy lets us reach, in resolver order;
 * the connection goes to one of exactly these (no second lookup). */
static void check_addrs_and_go(struct conn *c)
{
	size_t kept = 0;
	struct policy_decision first_refusal;
	bool refused = false;
	memset(&first_refusal, 0, sizeof first_refusal);
	char refused_ip[PROXY_ADDRSTR_MAX] = "";
	for (size_t i = 0; i < c->naddrs; i++) {
		struct policy_decision d;
		policy_check_addr(c->pol, (struct sockaddr *)&c->addrs[i],
				  c->port, &d);
		if (d.verdict == POLICY_ALLOW) {
			if (kept != i) {
				c->addrs[kept] = c->addrs[i];
				c->addrlens[kept] = c->addrlens[i];
			}
			kept++;
		} else if (!refused) {
			refused = true;
			first_refusal = d;
			proxy_format_ip((struct sockaddr *)&c->addrs[i],
					refused_ip, sizeof refused_ip);
		}
	}
	c->naddrs = kept;
	if (kept == 0) {
		if (!refused) {
			conn_refuse(
			    c, "deny", 502,
			    egress_reason_name(EGRESS_REASON_DNS_FAILURE),
			    "no usable address");
			return;
		}
		memcpy(c->ip, refused_ip, sizeof c->ip);
		if (first_refusal.rule != NULL) {
			char *r = strdup(first_refusal.rule);
			if (r != NULL) {
				free(c->rule);
				c->rule = r;
			}
		}
		conn_refuse(c, "deny", 403, first_refusal.reason, NULL);
		return;
	}
	/* The decision is complete; the rule text is already copied. */
	policy_unref(c->pol);
	c->pol = NULL;
	proxy_format_ip((struct sockaddr *)&c->addrs[0], c->ip, sizeof c->ip);
	c->addr_idx = 0;
	if (c->require_tls) {
		/* Read the ClientHello before opening anything upstream, so a
		 * refused tunnel sends nothing at all to the upstream. */
		conn_set_state(c, CS_HELLO);
		send_established(c);
		bufferevent_setwatermark(c->client.bev, EV_READ, 0,
					 CLIENTHELLO_MAX_BYTES + 1);
		bufferevent_enable(c->client.bev, EV_READ);
		conn_arm_timer(c, c->limits.header_timeout_ms);
		/* A client that sent its ClientHello without waiting for our
		 * 200 gets no further read callback for those bytes. */
		if (evbuffer_get_length(bufferevent_get_input(c->client.bev)) >
		    0)
			hello_read(c, false);
		return;
	}
	conn_set_state(c, CS_CONNECT);
	conn_arm_timer(c, c->limits.connect_timeout_ms);
	connect_next(c);
}

/* ---- connect ---- */

void conn_connect_start(struct conn *c)
{
	conn_set_state(c, CS_CONNECT);
	conn_arm_timer(c, c->limits.connect_timeout_ms);
	connect_next(c);
}

static void connect_failed(struct conn *c, const char *reason, int status)
{
	char msg[200];
	if (c->last_connect_errno != 0)
		snprintf(msg, sizeof msg, "cannot connect to %s port %u: %s",
			 c->ip, c->port, strerror(c->last_connect_errno));
	else
		snprintf(msg, sizeof msg, "cannot connect to %s port %u", c->ip,
			 c->port);
	evtimer_del(c->timer);
	/* After 200 (a TLS tunnel checked first) there is no status line
	 * left to send: the client just sees the close. */
	conn_refuse(c, "deny", c->require_tls ? 0 : status, reason, msg);
}

static void connect_next(struct conn *c)
{
	while (c->addr_idx < c->naddrs) {
		size_t i = c->addr_idx;
		proxy_format_ip((struct sockaddr *)&c->addrs[i], c->ip,
				sizeof c->ip);
		c->upstream.bev = bufferevent_socket_new(c->w->base, -1,
							 BEV_OPT_CLOSE_ON_FREE);
		if (c->upstream.bev == NULL) {
			c->last_connect_errno = ENOMEM;
			break;
		}
		bufferevent_setcb(c->upstream.bev, side_read_cb, side_write_cb,
				  side_event_cb, &c->upstream);
		if (bufferevent_socket_connect(c->upstream.bev,
					       (struct sockaddr *)&c->addrs[i],
					       (int)c->addrlens[i]) == 0)
			return; /* upstream_event_cb reports the outcome */
		c->last_connect_errno = errno;
		bufferevent_free(c->upstream.bev);
		c->upstream.bev = NULL;
		c->addr_idx++;
	}
	connect_failed(
	    c, egress_reason_name(EGRESS_REASON_UPSTREAM_UNREACHABLE), 502);
}

static void connected(struct conn *c)
{
	evtimer_del(c->timer);
	int fd = bufferevent_getfd(c->upstream.bev);
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	bufferevent_setwatermark(c->upstream.bev, EV_WRITE, RELAY_BUF_MAX / 2,
				 0);
	clock_gettime(CLOCK_MONOTONIC, &c->t_open);
	c->last_activity = c->t_open;
	if (c->idle_timer == NULL)
		c->idle_timer = evtimer_new(c->w->base, timer_cb, c);
	if (c->idle_timer == NULL) {
		conn_refuse(c, "error", c->require_tls ? 0 : 503,
			    egress_reason_name(EGRESS_REASON_INTERNAL),
			    "out of memory");
		return;
	}
	if (c->is_connect && c->require_tls) {
		/* The ClientHello goes upstream before the open record (the
		 * server's first flight decides it): refuse now if no record
		 * could be written. */
		if (!egress_log_writable(c->w->srv->log)) {
			conn_refuse(
			    c, "deny", 0,
			    egress_reason_name(EGRESS_REASON_LOG_UNWRITABLE),
			    "egress.log cannot be written");
			return;
		}
		if (c->inspect)
			inspect_start(c); /* TLS terminated here */
		else
			hello_follow_start(c); /* opens once the server spoke */
		return;
	}
	/* No byte moves before its open record is on disk. */
	if (conn_log(c, "open", NULL, NULL, false) != 0) {
		conn_refuse(c, "deny", 503,
			    egress_reason_name(EGRESS_REASON_LOG_UNWRITABLE),
			    "the open record could not be written");
		return;
	}
	if (c->is_connect) {
		send_established(c);
		if (!relay_start(c))
			return;
	} else {
		fwd_start(c);
	}
	conn_arm_idle(c);
}

void conn_arm_idle(struct conn *c)
{
	unsigned ms = c->limits.idle_timeout_ms;
	if (ms > 0 && c->idle_timer != NULL &&
	    (c->state == CS_RELAY || c->state == CS_FWD)) {
		struct timeval tv = {(time_t)(ms / 1000),
				     (suseconds_t)((ms % 1000) * 1000)};
		evtimer_add(c->idle_timer, &tv);
	}
}

/* ---- callbacks ---- */

/* Each bufferevent's callbacks get its side; the state says who handles
 * them. Only the client exists before CS_CONNECT and in CS_CLOSING. */
static void side_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn_side *s = arg;
	struct conn *c = s->conn;
	switch (c->state) {
	case CS_HEAD:
		head_try(c);
		break;
	case CS_HELLO:
	case CS_HELLO2:
		hello_client_read(c, false);
		break;
	case CS_SHELLO:
		if (s == &c->upstream)
			hello_server_read(c);
		break;
	case CS_RELAY:
		relay_read(s);
		break;
	case CS_FWD:
		fwd_read(s);
		break;
	case CS_CLOSING: {
		struct evbuffer *in = bufferevent_get_input(bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	}
	default:
		break;
	}
}

static void side_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn_side *s = arg;
	struct conn *c = s->conn;
	switch (c->state) {
	case CS_RELAY:
		relay_write_drained(s);
		break;
	case CS_FWD:
		fwd_write_drained(s);
		break;
	case CS_CLOSING:
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
		    !s->shut) {
			shutdown(bufferevent_getfd(bev), SHUT_WR);
			s->shut = true;
			if (s->eof)
				conn_free(c);
			else
				conn_arm_timer(c, LINGER_MS);
		}
		break;
	default:
		break;
	}
}

/* EOF or an error on the client outside the relay and the forward. */
static void client_event(struct conn *c, bool error)
{
	c->client.eof = true;
	switch (c->state) {
	case CS_HEAD:
		if (evbuffer_get_length(bufferevent_get_input(c->client.bev)) ==
		    0) {
			conn_free(c);
			return;
		}
		/* Parse what arrived once more: a complete head followed by
		 * EOF is still a request. */
		head_try(c);
		if (c->state == CS_HEAD) {
			evtimer_del(c->timer);
			conn_log(c, "deny",
				 egress_reason_name(EGRESS_REASON_BAD_REQUEST),
				 "connection closed before the request head "
				 "was complete",
				 false);
			conn_free(c);
		}
		return;
	case CS_HELLO:
	case CS_HELLO2:
		if (error) {
			evtimer_del(c->timer);
			conn_refuse(
			    c, "deny", 0,
			    egress_reason_name(EGRESS_REASON_CLIENT_RESET),
			    "client reset before a complete ClientHello");
			return;
		}
		hello_client_read(c, true);
		return;
	case CS_CLOSING:
		if (error || c->client.shut)
			conn_free(c);
		else
			bufferevent_disable(c->client.bev, EV_READ);
		return;
	default:
		/* Reading is off while resolving/connecting; an error
		 * here means the client is gone. */
		conn_refuse(
		    c, "error", 0,
		    egress_reason_name(EGRESS_REASON_CLIENT_CLOSED),
		    "client left before the upstream connection was made");
		return;
	}
}

/* The outcome of a connect attempt: go on, or try the next address. */
static void connect_event(struct conn *c, short what)
{
	if (what & BEV_EVENT_CONNECTED) {
		connected(c);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		int e = EVUTIL_SOCKET_ERROR();
		c->last_connect_errno = e ? e : ECONNREFUSED;
		bufferevent_free(c->upstream.bev);
		c->upstream.bev = NULL;
		c->addr_idx++;
		connect_next(c);
	}
}

static void side_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn_side *s = arg;
	struct conn *c = s->conn;
	(void)bev;
	if (c->state == CS_RELAY) {
		relay_event(s, what);
		return;
	}
	if (c->state == CS_FWD) {
		fwd_event(s, what);
		return;
	}
	if (s == &c->upstream) {
		if (c->state == CS_CONNECT)
			connect_event(c, what);
		else if (c->state == CS_SHELLO || c->state == CS_HELLO2)
			hello_upstream_event(c, what);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_event(c, (what & BEV_EVENT_ERROR) != 0);
}

/* The relay or forward idle timer: close only if nothing moved for a whole
 * idle_timeout, else sleep for the rest of it. */
static void idle_check(struct conn *c)
{
	int64_t idle = c->limits.idle_timeout_ms;
	int64_t since = conn_ms_since(&c->last_activity);
	if (since < idle) {
		int64_t rest = idle - since;
		struct timeval tv = {(time_t)(rest / 1000),
				     (suseconds_t)((rest % 1000) * 1000)};
		evtimer_add(c->idle_timer, &tv);
	} else if (c->state == CS_RELAY) {
		conn_finish_request(
		    c, egress_reason_name(EGRESS_REASON_IDLE_TIMEOUT));
	} else {
		fwd_idle_timeout(c);
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	char msg[512];
	switch (c->state) {
	case CS_HEAD:
		if (evbuffer_get_length(bufferevent_get_input(c->client.bev)) ==
			0 &&
		    !c->first) {
			conn_free(c); /* idle keep-alive connection */
			return;
		}
		snprintf(msg, sizeof msg,
			 "no complete request head within %u ms",
			 c->limits.header_timeout_ms);
		conn_refuse(c, "deny", 408,
			    egress_reason_name(EGRESS_REASON_TIMEOUT), msg);
		return;
	case CS_RESOLVE:
		snprintf(msg, sizeof msg, "resolving %s took over %u ms",
			 c->host, c->limits.connect_timeout_ms);
		conn_refuse(c, "deny", 502,
			    egress_reason_name(EGRESS_REASON_DNS_FAILURE), msg);
		return;
	case CS_HELLO:
		snprintf(msg, sizeof msg,
			 "no complete ClientHello within %u ms",
			 c->limits.header_timeout_ms);
		conn_refuse(c, "deny", 0,
			    egress_reason_name(EGRESS_REASON_TIMEOUT), msg);
		return;
	case CS_CONNECT:
		connect_failed(c, egress_reason_name(EGRESS_REASON_TIMEOUT),
			       504);
		return;
	case CS_SHELLO:
	case CS_HELLO2:
		hello_timeout(c);
		return;
	case CS_APPROVAL:
		approval_timeout(c);
		return;
	case CS_RELAY:
	case CS_FWD:
		idle_check(c);
		return;
	case CS_CLOSING:
	default:
		conn_free(c);
		return;
	}
}

/* SIGTERM's grace period is over: close what is still open, with the
 * record that says so. */
void conn_shutdown(struct conn *c)
{
	if (c->state == CS_INSPECT) {
		inspect_shutdown(c);
		return;
	}
	switch (c->state) {
	case CS_RELAY:
	case CS_FWD:
		conn_log(c, "close", egress_reason_name(EGRESS_REASON_SHUTDOWN),
			 NULL, true);
		break;
	case CS_RESOLVE:
	case CS_CONNECT:
	case CS_HELLO:
	case CS_SHELLO:
	case CS_HELLO2:
		conn_log(c, "error", egress_reason_name(EGRESS_REASON_SHUTDOWN),
			 "proxy stopped before the connection was made", false);
		break;
	default:
		break;
	}
	conn_free(c);
}

void conn_finish_request(struct conn *c, const char *reason)
{
	conn_log(c, "close", reason, NULL, true);
	conn_free(c);
}
