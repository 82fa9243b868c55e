/* Inspected tunnels (see inspect.h). The upstream TLS handshake runs
 * first, so a certificate that does not verify is known before the client
 * is answered; then the client's TLS is terminated with the host's leaf.
 * Requests are handled one at a time: a pipelined request waits in the
 * client buffer until the previous response has ended, and is then decided
 * like the first. A refused request is answered and the tunnel closed. */
#include "inspect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "budget.h"
#include "ca.h"
#include "inspect_cred.h"
#include "inspect_ws.h"
#include "proxy_int.h"

/* The HTTP/2 connection preface (RFC 9113 3.4). */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n";
#define CLOSE_POLL_MS 20
/* A request's head and the first body bytes that arrived with it are
 * scanned for placeholders of credentials not bound to the host. */
#define SCAN_MAX (HTTP_HEAD_MAX + 1 + 65536)

struct inspect_srv {
	struct certs_ca *ca;
	struct certs_leafcache *leaves;
	SSL_CTX *up_ctx;
	struct cred_store *creds; /* NULL: the policy names none */
};

enum ist {
	IS_UP_HS,  /* TLS handshake with the upstream */
	IS_CL_HS,  /* TLS handshake with the client */
	IS_HEAD,   /* waiting for a request head */
	IS_BODY,   /* request forwarded, response not yet complete */
	IS_WS,	   /* after a 101 to a WebSocket upgrade: a plain relay */
	IS_CLOSING /* flushing to the client, then free */
};

struct inspect {
	struct conn *c;
	enum ist st;
	struct event *timer;
	struct policy *pol; /* the policy the tunnel's requests are judged by */
	const char *up_reason; /* the upstream handshake failed */
	char up_err[640];
	int64_t close_ms; /* IS_CLOSING: time spent */
	/* The request in flight. */
	char method[32];
	char path[1024];
	const char *rule;
	const char *cred; /* name of the credential used, for the record */
	bool is_head, client_keep_alive, keep_alive, req_done, resp_started;
	bool rotate; /* the OAuth token endpoint: its answer is rewritten */
	const char *note; /* the request record's message, or NULL */
	bool ws; /* an allowed WebSocket upgrade: a 101 may answer it */
	enum http_body_kind req_body, resp_body;
	uint64_t req_remaining, resp_remaining;
	struct http_chunked req_chunked, resp_chunked;
	uint64_t up, down;  /* this request's bytes */
	unsigned long nreq; /* requests passed upstream so far */
	int status;
	struct timespec t_req;
};

/* ---- server-wide setup ---- */

void inspect_srv_free(struct inspect_srv *s)
{
	if (s == NULL)
		return;
	cred_store_free(s->creds);
	certs_leafcache_free(s->leaves);
	certs_ca_free(s->ca);
	SSL_CTX_free(s->up_ctx);
	free(s);
}

static SSL_CTX *upstream_ctx(const char *ca_bundle, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	static const unsigned char alpn[] = "\x08http/1.1";
	if (ctx == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_default_verify_paths(ctx) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0) {
		snprintf(err, errlen, "cannot set up the upstream TLS context");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (ca_bundle != NULL &&
	    SSL_CTX_load_verify_locations(ctx, ca_bundle, NULL) != 1) {
		snprintf(err, errlen, "--ca-bundle %s: no usable certificate",
			 ca_bundle);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(ctx,
			    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	ERR_clear_error();
	return ctx;
}

int inspect_srv_new(const struct proxy_config *cfg, const struct policy *pol,
		    struct inspect_srv **out, char *err, size_t errlen)
{
	*out = NULL;
	const char *one;
	if (cfg->inspect_ca == NULL) {
		if (policy_inspect_hosts(pol, &one, 1) > 0 ||
		    policy_credential_count(pol) > 0) {
			snprintf(
			    err, errlen,
			    "the policy %s%s but no --inspect-ca was given",
			    policy_inspect_hosts(pol, &one, 1) > 0
				? "inspects "
				: "names credentials",
			    policy_inspect_hosts(pol, &one, 1) > 0 ? one : "");
			return -EINVAL;
		}
		return 0;
	}
	if (cfg->inspect_key == NULL) {
		snprintf(err, errlen, "--inspect-ca needs --inspect-key");
		return -EINVAL;
	}
	struct inspect_srv *s = calloc(1, sizeof *s);
	if (s == NULL)
		return -ENOMEM;
	int rc = certs_ca_load(cfg->inspect_ca, cfg->inspect_key, &s->ca, err,
			       errlen);
	if (rc == 0)
		rc = cred_store_new(pol, &s->creds, err, errlen);
	if (rc == 0) {
		s->leaves = certs_leafcache_new(s->ca, CERTS_LEAF_CACHE_MAX);
		s->up_ctx = upstream_ctx(cfg->ca_bundle, err, errlen);
		if (s->leaves == NULL || s->up_ctx == NULL)
			rc = -ENOMEM;
	}
	if (rc != 0) {
		inspect_srv_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- records ---- */

static void arm(struct inspect *in, unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000),
			     (suseconds_t)((ms % 1000) * 1000)};
	evtimer_add(in->timer, &tv);
}

/* One record about the request in flight: `request` when it was passed,
 * `deny` (folded like every refusal) when the proxy refused it. */
static void log_request(struct inspect *in, const char *event,
			const char *reason, const char *message)
{
	struct conn *c = in->c;
	struct egress_record r;
	egress_record_init(&r);
	r.id = c->id;
	r.event = event;
	r.client = c->client_addr;
	r.method = in->method[0] ? in->method : NULL;
	r.host = c->host;
	r.port = c->port;
	r.path = in->path[0] ? in->path : NULL;
	r.status = in->status;
	r.sni = c->sni[0] ? c->sni : NULL;
	r.ip = c->ip[0] ? c->ip : NULL;
	r.rule = in->rule != NULL ? in->rule : c->rule;
	r.credential = in->cred;
	r.reason = reason;
	r.message = message;
	r.bytes_up = (int64_t)in->up;
	r.bytes_down = (int64_t)in->down;
	r.duration_ms = conn_ms_since(&in->t_req);
	int rc = strcmp(event, "deny") == 0
		     ? egress_fold_write(c->w->srv->fold, &r)
		     : egress_log_write(c->w->srv->log, &r);
	if (rc != 0)
		fprintf(stderr,
			PROXY_PREFIX "cannot write an egress.log record: %s\n",
			strerror(-rc));
}

/* ---- closing ---- */

static struct evbuffer *client_out(struct inspect *in)
{
	return bufferevent_get_output(in->c->client.bev);
}

/* Stop reading, let what is queued for the client drain (through TLS and
 * then the socket), then free; CLOSE_POLL_MS polling, LINGER_MS at most. */
static void start_closing(struct inspect *in)
{
	struct conn *c = in->c;
	in->st = IS_CLOSING;
	in->close_ms = 0;
	/* Keep reading (and discarding) what the client still sends, so our
	 * close does not turn into a reset that destroys the answer. */
	if (bufferevent_get_underlying(c->client.bev) != NULL)
		bufferevent_enable(c->client.bev, EV_READ);
	if (c->upstream.bev != NULL) {
		bufferevent_free(c->upstream.bev);
		c->upstream.bev = NULL;
	}
	arm(in, 0);
}

/* End of the tunnel: the close record with its totals, then closing. */
static void finish(struct inspect *in, const char *reason, const char *msg)
{
	conn_log(in->c, "close", reason, msg, true);
	start_closing(in);
}

/* Answer the request in flight with an error, record the refusal, close. */
static void refuse(struct inspect *in, int status, enum egress_reason why,
		   const char *detail)
{
	const char *reason = egress_reason_name(why);
	in->status = status;
	log_request(in, why == EGRESS_REASON_INTERNAL ? "error" : "deny",
		    reason, detail);
	char body[512];
	int bl = snprintf(body, sizeof body, "agentsafe-proxy: %s%s%s\n",
			  reason, detail ? ": " : "", detail ? detail : "");
	if (bl < 0)
		bl = 0;
	if ((size_t)bl >= sizeof body)
		bl = (int)sizeof body - 1;
	evbuffer_add_printf(client_out(in),
			    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			    "Content-Length: %d\r\nConnection: close\r\n"
			    "X-AgentSafe-Reason: %s\r\n\r\n",
			    status,
			    status == 403   ? "Forbidden"
			    : status == 421 ? "Misdirected Request"
			    : status == 413 ? "Content Too Large"
			    : status == 502 ? "Bad Gateway"
					    : "Bad Request",
			    bl, reason);
	evbuffer_add(client_out(in), body, (size_t)bl);
	finish(in, reason, detail);
}

/* ---- request heads ---- */

static void next_head(struct inspect *in);

/* The Host header must name the tunnel's host (and its port, if any). */
static bool host_matches(const struct conn *c, const struct http_request *q,
			 char *msg, size_t msglen)
{
	if (q->host_header == NULL) {
		snprintf(msg, msglen, "request without a Host header");
		return false;
	}
	const char *h = q->host_header;
	size_t hl = q->host_header_len;
	const char *colon = memchr(h, ':', hl);
	if (colon != NULL) {
		char port[8];
		size_t pl = hl - (size_t)(colon - h) - 1;
		if (pl == 0 || pl >= sizeof port)
			goto bad;
		memcpy(port, colon + 1, pl);
		port[pl] = '\0';
		char *end;
		unsigned long p = strtoul(port, &end, 10);
		if (*end != '\0' || p != c->port)
			goto bad;
		hl = (size_t)(colon - h);
	}
	char norm[POLICY_HOST_MAX + 1], err[POLICY_ERR_MAX];
	if (policy_host_normalize(h, hl, norm, sizeof norm, err, sizeof err) ==
		0 &&
	    strcmp(norm, c->host) == 0)
		return true;
bad:;
	char qh[300];
	proxy_quote(q->host_header, q->host_header_len, qh, sizeof qh);
	snprintf(msg, msglen, "Host %s is not the tunnel's host", qh);
	return false;
}

static void copy_target(struct inspect *in, const struct http_request *q)
{
	size_t n = q->method_len < sizeof in->method - 1
		       ? q->method_len
		       : sizeof in->method - 1;
	memcpy(in->method, q->method, n);
	in->method[n] = '\0';
	const char *qm = memchr(q->target, '?', q->target_len);
	size_t pl = qm ? (size_t)(qm - q->target) : q->target_len;
	if (pl >= sizeof in->path)
		pl = sizeof in->path - 1;
	memcpy(in->path, q->target, pl);
	in->path[pl] = '\0';
}

/* Decide a parsed head: true when it may go upstream (in->rule set). */
static bool judge(struct inspect *in, const struct http_request *q)
{
	struct conn *c = in->c;
	char msg[400];
	if (q->is_connect || q->is_absolute || q->target_len == 0 ||
	    q->target[0] != '/') {
		refuse(in, 400, EGRESS_REASON_BAD_REQUEST,
		       "inside an inspected tunnel a request names an "
		       "origin-form path");
		return false;
	}
	if (!host_matches(c, q, msg, sizeof msg)) {
		refuse(in, 421, EGRESS_REASON_HOST_MISMATCH, msg);
		return false;
	}
	/* Upgrades: a WebSocket handshake where the deciding entry says
	 * websocket: true (below); any other kind never. */
	in->ws = false;
	enum inspect_ws_ask ask = inspect_ws_asked(q, msg, sizeof msg);
	if (ask == INSPECT_WS_OTHER) {
		refuse(in, 403, EGRESS_REASON_BAD_REQUEST, msg);
		return false;
	}
	char *target = strndup(q->target, q->target_len);
	if (target == NULL) {
		refuse(in, 502, EGRESS_REASON_INTERNAL, "out of memory");
		return false;
	}
	struct policy_http_decision d;
	policy_http_match(in->pol, c->host, c->port, in->method, target, &d);
	free(target);
	in->rule = d.rule;
	if (d.verdict == POLICY_ALLOW && ask == INSPECT_WS_WEBSOCKET &&
	    !d.websocket) {
		refuse(
		    in, 403, EGRESS_REASON_BAD_REQUEST,
		    "WebSocket upgrade refused: the deciding http: entry does "
		    "not say websocket: true");
		return false;
	}
	if (d.verdict == POLICY_ALLOW) {
		in->ws = ask == INSPECT_WS_WEBSOCKET;
		return true;
	}
	enum egress_reason why;
	if (egress_reason_lookup(d.reason, &why) != 0)
		why = EGRESS_REASON_NOT_ALLOWED;
	refuse(in, 403, why, NULL);
	return false;
}

static void pump_request(struct inspect *in);
static void upstream_read(struct inspect *in);

/* A placeholder (or a piece of one) of a credential not bound to this
 * host, in the target, a header, or the body bytes that came with the
 * head (`take` bytes are pulled up): refused, loudly. */
static bool misused(struct inspect *in, const struct http_request *q,
		    const char *p, size_t avail)
{
	struct conn *c = in->c;
	const struct cred_store *st = c->w->srv->insp->creds;
	if (st == NULL)
		return false;
	const char *name = cred_misuse(st, c->host, in->path, p, avail);
	if (name == NULL) /* encoded: Basic, %XX */
		name = cred_misuse_head(st, c->host, q);
	if (name == NULL)
		return false;
	char msg[200];
	snprintf(msg, sizeof msg,
		 "a placeholder of credential %s was sent to a host it is not "
		 "bound to",
		 name);
	fprintf(stderr, PROXY_PREFIX "CREDENTIAL MISUSE: %s (%s %s)\n", msg,
		in->method, c->host);
	in->cred = name;
	refuse(in, 403, EGRESS_REASON_CREDENTIAL_MISUSE, msg);
	return true;
}

/* The head goes upstream as the client sent it, or rewritten with the
 * bound credentials. */
static int forward_head(struct inspect *in, const struct http_request *q,
			const char *body)
{
	struct conn *c = in->c;
	struct evbuffer *buf = bufferevent_get_input(c->client.bev);
	struct evbuffer *up = bufferevent_get_output(c->upstream.bev);
	char *head = NULL;
	size_t hl = 0;
	size_t bl = body != NULL ? (size_t)q->content_length : 0;
	int rc = cred_apply(c->w->srv->insp->creds, c->host, q, body, bl, &head,
			    &hl, &in->cred);
	if (rc < 0)
		return rc;
	/* The head (and a body sent with it) counts against the host's
	 * upload budget, as it goes upstream. */
	if (!budget_charge(c, rc == 0 ? q->head_len : hl)) {
		if (head != NULL)
			OPENSSL_cleanse(head, hl);
		free(head);
		return -EDQUOT;
	}
	if (rc == 0) {
		evbuffer_remove_buffer(buf, up, q->head_len);
		hl = q->head_len;
	} else {
		/* A swapped body went with the head: the request is done. */
		evbuffer_drain(buf, q->head_len + bl);
		if (body != NULL) {
			in->req_remaining = 0;
			in->req_done = true;
		}
		evbuffer_add(up, head, hl);
		OPENSSL_cleanse(head, hl);
		free(head);
	}
	in->up += hl;
	c->client.bytes += hl;
	return 0;
}

/* Parse and decide the next buffered request head; forward it. */
static void next_head(struct inspect *in)
{
	struct conn *c = in->c;
	struct evbuffer *buf = bufferevent_get_input(c->client.bev);
	size_t len = evbuffer_get_length(buf);
	if (in->st != IS_HEAD || len == 0)
		return;
	size_t take = len > HTTP_HEAD_MAX + 1 ? HTTP_HEAD_MAX + 1 : len;
	/* One pull-up for the head and the body prefix scanned with it, so
	 * the parsed head's pointers stay valid. */
	size_t avail = len > SCAN_MAX ? SCAN_MAX : len;
	const char *p = (const char *)evbuffer_pullup(buf, (ev_ssize_t)avail);
	in->method[0] = in->path[0] = '\0';
	in->rule = NULL;
	in->cred = NULL;
	in->note = NULL;
	in->status = 0;
	in->up = in->down = 0;
	clock_gettime(CLOCK_MONOTONIC, &in->t_req);
	size_t pl = take < sizeof h2_preface - 1 ? take : sizeof h2_preface - 1;
	if (p != NULL && memcmp(p, h2_preface, pl) == 0) {
		if (pl < sizeof h2_preface - 1)
			return;
		refuse(in, 400, EGRESS_REASON_BAD_REQUEST,
		       "HTTP/2 preface: only HTTP/1.1 is offered inside an "
		       "inspected tunnel");
		return;
	}
	struct http_request *q = malloc(sizeof *q);
	char err[256] = "";
	enum http_parse_result r =
	    p != NULL && q != NULL
		? http_parse_request(p, take, q, err, sizeof err)
		: HTTP_BAD;
	if (r == HTTP_NEED_MORE && take <= HTTP_HEAD_MAX) {
		free(q);
		return;
	}
	if (r != HTTP_OK) {
		free(q);
		int st = r == HTTP_BAD_VERSION	     ? 505
			 : r == HTTP_NOT_IMPLEMENTED ? 501
			 : r == HTTP_NEED_MORE	     ? 431
			 : r == HTTP_TOO_LARGE	     ? 431
						     : 400;
		refuse(in, st, EGRESS_REASON_BAD_REQUEST,
		       err[0] ? err : "request head too large");
		return;
	}
	copy_target(in, q);
	if (in->up_reason != NULL) {
		free(q);
		enum egress_reason why;
		if (egress_reason_lookup(in->up_reason, &why) != 0)
			why = EGRESS_REASON_UPSTREAM_ERROR;
		refuse(in, 502, why, in->up_err);
		return;
	}
	if (misused(in, q, p, avail) || !judge(in, q)) {
		free(q);
		return;
	}
	/* A body with a placeholder to swap (the OAuth refresh token) is
	 * taken whole, so its length can change. */
	const struct cred_store *st = c->w->srv->insp->creds;
	const char *body = NULL;
	if (q->body != HTTP_BODY_NONE &&
	    cred_body_bound(st, c->host, in->path)) {
		if (q->body != HTTP_BODY_LENGTH ||
		    q->content_length > CRED_BODY_MAX) {
			free(q);
			refuse(in, 413, EGRESS_REASON_BAD_REQUEST,
			       "a credential's request body must have a "
			       "Content-Length of at most 64 KiB");
			return;
		}
		if (avail < q->head_len + q->content_length) {
			free(q);
			return; /* the rest of the body first */
		}
		body = p + q->head_len;
	}
	in->rotate = cred_rotates(st, c->host, in->path);
	in->is_head = strcmp(in->method, "HEAD") == 0;
	in->client_keep_alive = q->keep_alive;
	in->req_body = q->body;
	in->req_remaining = q->content_length;
	http_chunked_init(&in->req_chunked);
	in->req_done = q->body == HTTP_BODY_NONE;
	in->resp_started = false;
	int rc = forward_head(in, q, body);
	free(q);
	if (rc == -EDQUOT) {
		refuse(in, 403, EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED,
		       "the request would pass the host's upload budget");
		return;
	}
	if (rc != 0) {
		refuse(in, 502, EGRESS_REASON_INTERNAL, "out of memory");
		return;
	}
	in->st = IS_BODY;
	in->nreq++;
	arm(in, c->limits.idle_timeout_ms);
	pump_request(in);
	if (in->st == IS_BODY)
		upstream_read(in);
}

/* ---- bodies ---- */

static bool out_full(struct bufferevent *b)
{
	return evbuffer_get_length(bufferevent_get_output(b)) >= RELAY_BUF_MAX;
}

/* Move up to the framed end of a body from src to dst, at most max
 * bytes; returns the bytes moved, or -1 on malformed chunking. *done at
 * the body's end. */
static long move_body(struct evbuffer *src, struct evbuffer *dst,
		      enum http_body_kind kind, uint64_t *remaining,
		      struct http_chunked *ch, bool *done, size_t max)
{
	size_t len = evbuffer_get_length(src), n = len;
	*done = false;
	if (len > max)
		len = n = max;
	if (len == 0)
		return 0;
	if (kind == HTTP_BODY_LENGTH) {
		if (n > *remaining)
			n = (size_t)*remaining;
		*remaining -= n;
		*done = *remaining == 0;
	} else if (kind == HTTP_BODY_CHUNKED) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(src, -1, NULL, &v, 1) < 1)
			return 0;
		long k = http_chunked_feed(ch, v.iov_base,
					   v.iov_len < len ? v.iov_len : len);
		if (k < 0)
			return -1;
		n = (size_t)k;
		*done = ch->done;
	}
	evbuffer_remove_buffer(src, dst, n);
	return (long)n;
}

static void pump_request(struct inspect *in)
{
	struct conn *c = in->c;
	struct evbuffer *src = bufferevent_get_input(c->client.bev);
	while (!in->req_done && evbuffer_get_length(src) > 0) {
		if (out_full(c->upstream.bev)) {
			bufferevent_disable(c->client.bev, EV_READ);
			return;
		}
		bool done;
		/* The body counts against the host's upload budget: the
		 * bytes within it go, a byte past it closes the tunnel. */
		size_t want = evbuffer_get_length(src);
		size_t got = budget_reserve(c, want);
		long n = move_body(src, bufferevent_get_output(c->upstream.bev),
				   in->req_body, &in->req_remaining,
				   &in->req_chunked, &done, got);
		if (n < 0) {
			budget_refund(c, got);
			refuse(in, 400, EGRESS_REASON_BAD_REQUEST,
			       "malformed chunked request body");
			return;
		}
		budget_refund(c, got - (size_t)n);
		if (got < want && !done && (size_t)n == got) {
			budget_trip(c);
			refuse(in, 403, EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED,
			       "the request body would pass the host's upload "
			       "budget");
			return;
		}
		in->up += (uint64_t)n;
		c->client.bytes += (uint64_t)n;
		in->req_done = done;
		if (n == 0)
			break;
	}
	/* Past the body: a pipelined request waits until the response. */
	if (in->req_done)
		bufferevent_disable(c->client.bev, EV_READ);
	else
		bufferevent_enable(c->client.bev, EV_READ);
}

/* The response has ended: its record, then the next request or close. */
static void response_done(struct inspect *in)
{
	struct conn *c = in->c;
	log_request(in, "request", NULL, in->note);
	if (!in->keep_alive || !in->req_done || c->client.eof ||
	    c->w->draining) {
		finish(in, egress_reason_name(EGRESS_REASON_EOF), NULL);
		return;
	}
	in->st = IS_HEAD;
	bufferevent_enable(c->client.bev, EV_READ);
	arm(in, c->limits.idle_timeout_ms);
	next_head(in);
}

/* ---- OAuth token answers ---- */

/* The data of the complete chunked body at p: 1 with it in *out
 * (malloc'd, *outlen) and its framed length in *framed, 0 when more is
 * needed, -1 when malformed. */
static int dechunk(const char *p, size_t n, char **out, size_t *outlen,
		   size_t *framed)
{
	struct http_chunked ch;
	http_chunked_init(&ch);
	long k = http_chunked_feed(&ch, p, n);
	if (k < 0)
		return -1;
	if (!ch.done)
		return 0;
	*framed = (size_t)k;
	char *d = malloc(*framed + 1);
	size_t dl = 0, i = 0;
	if (d == NULL)
		return -1;
	/* The framing is valid (fed above): size[;ext]CRLF data CRLF ... */
	for (;;) {
		unsigned long size = strtoul(p + i, NULL, 16);
		const char *nl = memchr(p + i, '\n', *framed - i);
		if (nl == NULL || size > *framed - dl)
			break;
		i = (size_t)(nl - p) + 1;
		if (size == 0) {
			*out = d;
			*outlen = dl;
			return 1;
		}
		memcpy(d + dl, p + i, size);
		dl += size;
		i += size + 2;
	}
	free(d);
	return -1;
}

/* The answer's head with its framing replaced by a Content-Length. */
static void put_head(struct evbuffer *dst, const struct http_response *r,
		     const char *p, size_t bodylen)
{
	const char *eol = memchr(p, '\n', r->head_len);
	evbuffer_add(dst, p, (size_t)(eol - p) + 1);
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		if ((h->name_len == 14 &&
		     strncasecmp(h->name, "content-length", 14) == 0) ||
		    (h->name_len == 17 &&
		     strncasecmp(h->name, "transfer-encoding", 17) == 0))
			continue;
		evbuffer_add_printf(dst, "%.*s: %.*s\r\n", (int)h->name_len,
				    h->name, (int)h->value_len, h->value);
	}
	evbuffer_add_printf(dst, "Content-Length: %zu\r\n\r\n", bodylen);
}

static bool coded(const struct http_response *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		if (h->name_len == 16 &&
		    strncasecmp(h->name, "content-encoding", 16) == 0 &&
		    !(h->value_len == 8 &&
		      strncasecmp(h->value, "identity", 8) == 0))
			return true;
	}
	return false;
}

/* Take the whole body of r at p (n bytes buffered): 1 with it, 0 for
 * more, -1 with why set. */
static int whole_body(const struct http_response *r, const char *p, size_t n,
		      char **body, size_t *bl, size_t *framed, const char **why)
{
	const char *b = p + r->head_len;
	size_t have = n - r->head_len;
	*why = "the token endpoint's answer is larger than 64 KiB, "
	       "compressed, or without a length";
	if (coded(r) || r->body == HTTP_BODY_CLOSE ||
	    (r->body == HTTP_BODY_LENGTH && r->content_length > CRED_BODY_MAX))
		return -1;
	if (r->body == HTTP_BODY_LENGTH) {
		if (have < r->content_length)
			return 0;
		*bl = *framed = (size_t)r->content_length;
		*body = malloc(*bl + 1);
		if (*body == NULL)
			return -1;
		memcpy(*body, b, *bl);
		return 1;
	}
	int k = dechunk(b, have, body, bl, framed);
	if (k == 0 && have >= (size_t)2 * CRED_BODY_MAX)
		k = -1;
	if (k == 1 && *bl > CRED_BODY_MAX) {
		OPENSSL_cleanse(*body, *bl);
		free(*body);
		*body = NULL;
		k = -1;
	}
	if (k < 0)
		*why = "the token endpoint's chunked answer is malformed or "
		       "larger than 64 KiB";
	return k;
}

/* The OAuth token endpoint's final answer, `len` bytes buffered: taken
 * whole, its tokens swapped for new placeholders (cred_rotate), handed
 * on with a Content-Length. 1 when passed, 0 for more bytes, -1 when
 * refused: nothing of it reaches the client that holds a real token. */
static int rotated_response(struct inspect *in, size_t len)
{
	struct conn *c = in->c;
	struct evbuffer *src = bufferevent_get_input(c->upstream.bev);
	size_t n = len > HTTP_HEAD_MAX + 1 + 2 * CRED_BODY_MAX
		       ? HTTP_HEAD_MAX + 1 + 2 * CRED_BODY_MAX
		       : len;
	const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)n);
	struct http_response *r = malloc(sizeof *r);
	char err[256];
	char *body = NULL, *fresh = NULL;
	size_t bl = 0, fl = 0, framed = 0;
	const char *why = "out of memory";
	int k = p != NULL && r != NULL &&
			http_parse_response(p, n, in->is_head, r, err,
					    sizeof err) == HTTP_OK
		    ? whole_body(r, p, n, &body, &bl, &framed, &why)
		    : -1;
	struct cred_store *st = c->w->srv->insp->creds;
	int rc = k == 1 ? cred_rotate(st, body, bl, &fresh, &fl) : 0;
	if (k == 1 && rc < 0)
		why = "the token endpoint's answer holds a token that cannot "
		      "be replaced";
	if (k == 1 && rc == 1)
		in->note = "OAuth tokens rotated: the client got new "
			   "placeholders, the new tokens stay in the proxy";
	const char *give = rc == 1 ? fresh : body;
	size_t gl = rc == 1 ? fl : bl;
	if (k == 1 && rc >= 0 && cred_secret_in(st, give, gl)) {
		why = "the token endpoint's answer holds a secret";
		rc = -1;
	}
	if (k == 1 && rc >= 0) {
		put_head(client_out(in), r, p, gl);
		evbuffer_add(client_out(in), give, gl);
		evbuffer_drain(src, r->head_len + framed);
		in->down += r->head_len + gl;
		c->upstream.bytes += r->head_len + framed;
	}
	if (body != NULL)
		OPENSSL_cleanse(body, bl);
	if (fresh != NULL)
		OPENSSL_cleanse(fresh, fl);
	free(body);
	free(fresh);
	free(r);
	if (k == 0)
		return 0;
	if (k < 0 || rc < 0) {
		refuse(in, 502, EGRESS_REASON_BAD_RESPONSE, why);
		return -1;
	}
	return 1;
}

static void ws_step(struct inspect *in, bool ok);

/* The allowed WebSocket upgrade was answered 101 (its head is on its way
 * to the client): the request record now, then the tunnel is a relay. */
static void ws_switch(struct inspect *in)
{
	in->status = 101;
	log_request(in, "request", NULL,
		    "WebSocket upgrade: frames are relayed from here, not "
		    "inspected");
	in->st = IS_WS;
	arm(in, in->c->limits.idle_timeout_ms);
	ws_step(in, inspect_ws_start(&in->c->client));
}

/* The response head: 1 when the final one passed, 0 for more bytes, -1
 * when the tunnel was closed or became a WebSocket relay. Interim (1xx)
 * heads pass as they are. */
static int response_head(struct inspect *in)
{
	struct conn *c = in->c;
	struct evbuffer *src = bufferevent_get_input(c->upstream.bev);
	for (;;) {
		size_t len = evbuffer_get_length(src);
		if (len == 0)
			return 0;
		size_t take = len > HTTP_HEAD_MAX + 1 ? HTTP_HEAD_MAX + 1 : len;
		const char *p =
		    (const char *)evbuffer_pullup(src, (ev_ssize_t)take);
		struct http_response *resp = malloc(sizeof *resp);
		char err[256] = "";
		enum http_parse_result r =
		    p != NULL && resp != NULL
			? http_parse_response(p, take, in->is_head, resp, err,
					      sizeof err)
			: HTTP_BAD;
		if (r == HTTP_NEED_MORE && take <= HTTP_HEAD_MAX) {
			free(resp);
			return 0;
		}
		if (r != HTTP_OK || (resp->status == 101 &&
				     !(in->ws && inspect_ws_101_ok(resp)))) {
			free(resp);
			refuse(in, 502, EGRESS_REASON_BAD_RESPONSE,
			       r != HTTP_OK ? (err[0] ? err : "bad response")
			       : in->ws	    ? "upstream switched to another "
					      "protocol than websocket"
					    : "upstream switched protocols");
			return -1;
		}
		size_t hl = resp->head_len;
		int status = resp->status;
		in->resp_body = resp->body;
		in->resp_remaining = resp->content_length;
		in->keep_alive = in->client_keep_alive && resp->keep_alive &&
				 resp->body != HTTP_BODY_CLOSE;
		free(resp);
		if (in->rotate && status >= 200 &&
		    in->resp_body != HTTP_BODY_NONE) {
			int k = rotated_response(in, len);
			if (k <= 0)
				return k;
			in->status = status;
			in->resp_body = HTTP_BODY_NONE;
			in->resp_started = true;
			return 1;
		}
		evbuffer_remove_buffer(src, client_out(in), hl);
		in->down += hl;
		c->upstream.bytes += hl;
		if (status == 101) {
			ws_switch(in);
			return -1;
		}
		if (status >= 200) {
			in->status = status;
			/* An injected `command:` credential may have expired.
			 */
			if (status == 401 && in->cred != NULL &&
			    cred_refresh(c->w->srv->insp->creds, in->cred) < 0)
				fprintf(stderr,
					PROXY_PREFIX
					"credential %s: refreshing "
					"after a 401 failed (the "
					"command exited non-zero "
					"or printed nothing); the "
					"old value stays\n",
					in->cred);
			in->resp_started = true;
			http_chunked_init(&in->resp_chunked);
			return 1;
		}
	}
}

static void upstream_read(struct inspect *in)
{
	struct conn *c = in->c;
	if (in->st != IS_BODY)
		return;
	conn_touch(c);
	if (!in->resp_started && response_head(in) <= 0)
		return;
	if (in->resp_body == HTTP_BODY_NONE ||
	    (in->resp_body == HTTP_BODY_LENGTH && in->resp_remaining == 0)) {
		response_done(in);
		return;
	}
	struct evbuffer *src = bufferevent_get_input(c->upstream.bev);
	while (evbuffer_get_length(src) > 0) {
		if (out_full(c->client.bev)) {
			bufferevent_disable(c->upstream.bev, EV_READ);
			return;
		}
		bool done;
		long n = move_body(src, client_out(in), in->resp_body,
				   &in->resp_remaining, &in->resp_chunked,
				   &done, SIZE_MAX);
		if (n < 0) {
			log_request(
			    in, "request",
			    egress_reason_name(EGRESS_REASON_BAD_RESPONSE),
			    "malformed chunked response body");
			finish(in,
			       egress_reason_name(EGRESS_REASON_BAD_RESPONSE),
			       NULL);
			return;
		}
		in->down += (uint64_t)n;
		c->upstream.bytes += (uint64_t)n;
		if (done) {
			response_done(in);
			return;
		}
		if (n == 0)
			return;
	}
}

/* ---- callbacks ---- */

/* A step of a WebSocket relay: false when the client's frames would
 * pass the host's upload budget (tripped), which ends the tunnel. */
static void ws_step(struct inspect *in, bool ok)
{
	if (!ok)
		finish(in,
		       egress_reason_name(EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED),
		       "the WebSocket frames would pass the host's upload "
		       "budget");
}

static void client_read_cb(struct bufferevent *b, void *arg)
{
	struct inspect *in = arg;
	(void)b;
	conn_touch(in->c);
	if (in->st == IS_CLOSING) {
		struct evbuffer *i = bufferevent_get_input(in->c->client.bev);
		evbuffer_drain(i, evbuffer_get_length(i));
	} else if (in->st == IS_HEAD)
		next_head(in);
	else if (in->st == IS_BODY)
		pump_request(in);
	else if (in->st == IS_WS)
		ws_step(in, inspect_ws_pass(&in->c->client));
}

static void client_write_cb(struct bufferevent *b, void *arg)
{
	struct inspect *in = arg;
	(void)b;
	if (in->st == IS_WS)
		ws_step(in, inspect_ws_drained(&in->c->client));
	if (in->st == IS_BODY && in->c->upstream.bev != NULL &&
	    !out_full(in->c->client.bev)) {
		bufferevent_enable(in->c->upstream.bev, EV_READ);
		upstream_read(in);
	}
}

static void upstream_write_cb(struct bufferevent *b, void *arg)
{
	struct inspect *in = arg;
	(void)b;
	if (in->st == IS_WS)
		ws_step(in, inspect_ws_drained(&in->c->upstream));
	if (in->st == IS_BODY && !in->req_done && !in->c->client.eof &&
	    !out_full(in->c->upstream.bev)) {
		bufferevent_enable(in->c->client.bev, EV_READ);
		pump_request(in);
	}
}

static void upstream_read_cb(struct bufferevent *b, void *arg)
{
	struct inspect *in = arg;
	(void)b;
	if (in->st == IS_WS)
		ws_step(in, inspect_ws_pass(&in->c->upstream));
	else
		upstream_read(in);
}

/* One side of a WebSocket relay ended (the close handshake ends with the
 * server's close, normally): what it sent goes on, then the close record. */
static void ws_side_ended(struct inspect *in, struct conn_side *s, short what)
{
	if (!inspect_ws_pass(s)) {
		ws_step(in, false);
		return;
	}
	bool client = s == &in->c->client;
	finish(in,
	       egress_reason_name(!(what & BEV_EVENT_ERROR) ? EGRESS_REASON_EOF
				  : client ? EGRESS_REASON_CLIENT_ERROR
					   : EGRESS_REASON_UPSTREAM_ERROR),
	       NULL);
}

static void client_handshake_done(struct inspect *in)
{
	struct conn *c = in->c;
	/* After an upstream failure the client's first request is read and
	 * answered 502 (see next_head), so the answer is not lost. */
	if (in->up_reason == NULL &&
	    conn_log(c, "open", NULL, "TLS inspected", false) != 0) {
		conn_log(c, "deny",
			 egress_reason_name(EGRESS_REASON_LOG_UNWRITABLE),
			 "the open record could not be written", false);
		start_closing(in);
		return;
	}
	in->st = IS_HEAD;
	arm(in, c->limits.header_timeout_ms);
	next_head(in);
}

static void client_event_cb(struct bufferevent *b, short what, void *arg)
{
	struct inspect *in = arg;
	struct conn *c = in->c;
	if (what & BEV_EVENT_CONNECTED) {
		client_handshake_done(in);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	c->client.eof = true;
	if (in->st == IS_CLOSING)
		return;
	if (in->st == IS_WS) {
		ws_side_ended(in, &c->client, what);
		return;
	}
	if (in->st == IS_CL_HS) {
		char msg[300];
		unsigned long e = bufferevent_get_openssl_error(b);
		snprintf(msg, sizeof msg,
			 "TLS handshake with the client failed%s%s (does it "
			 "trust the session CA?)",
			 e ? ": " : "", e ? ERR_reason_error_string(e) : "");
		conn_log(c, "deny",
			 egress_reason_name(EGRESS_REASON_CLIENT_ERROR), msg,
			 false);
		start_closing(in);
		return;
	}
	if (in->st == IS_HEAD) {
		finish(in, egress_reason_name(EGRESS_REASON_EOF), NULL);
		return;
	}
	if (in->st == IS_BODY && in->req_done)
		return; /* keep sending the response; closes after it */
	log_request(in, "request",
		    egress_reason_name(EGRESS_REASON_CLIENT_CLOSED),
		    "client closed before the request ended");
	finish(in, egress_reason_name(EGRESS_REASON_CLIENT_CLOSED), NULL);
}

static void start_client_tls(struct inspect *in);

static void upstream_handshake_failed(struct inspect *in, struct bufferevent *b)
{
	SSL *ssl = bufferevent_openssl_get_ssl(b);
	long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e = bufferevent_get_openssl_error(b);
	if (vr != X509_V_OK) {
		in->up_reason =
		    egress_reason_name(EGRESS_REASON_UPSTREAM_CERT_INVALID);
		snprintf(in->up_err, sizeof in->up_err,
			 "the upstream certificate for %s did not verify: %s",
			 in->c->sni, X509_verify_cert_error_string(vr));
	} else {
		in->up_reason =
		    egress_reason_name(EGRESS_REASON_UPSTREAM_ERROR);
		snprintf(in->up_err, sizeof in->up_err,
			 "TLS handshake with the upstream failed%s%s",
			 e ? ": " : "", e ? ERR_reason_error_string(e) : "");
	}
	bufferevent_free(in->c->upstream.bev);
	in->c->upstream.bev = NULL;
	start_client_tls(in);
}

/* The upstream ended before the first request: remember why, so that
 * request is answered 502 with the reason. */
static void upstream_gone_early(struct inspect *in, struct bufferevent *b)
{
	unsigned long e = bufferevent_get_openssl_error(b);
	in->up_reason = egress_reason_name(e ? EGRESS_REASON_UPSTREAM_ERROR
					     : EGRESS_REASON_UPSTREAM_CLOSED);
	snprintf(in->up_err, sizeof in->up_err,
		 "the upstream closed the connection before the first "
		 "request%s%s",
		 e ? ": " : "", e ? ERR_reason_error_string(e) : "");
	bufferevent_free(in->c->upstream.bev);
	in->c->upstream.bev = NULL;
}

static void upstream_event_cb(struct bufferevent *b, short what, void *arg)
{
	struct inspect *in = arg;
	struct conn *c = in->c;
	if (what & BEV_EVENT_CONNECTED) {
		in->st = IS_CL_HS;
		bufferevent_enable(b, EV_READ);
		start_client_tls(in);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (in->st == IS_UP_HS) {
		upstream_handshake_failed(in, b);
		return;
	}
	if (in->st == IS_WS) {
		ws_side_ended(in, &c->upstream, what);
		return;
	}
	if (in->st == IS_BODY) {
		/* The read callback has consumed what arrived. */
		if (in->resp_started && in->resp_body == HTTP_BODY_CLOSE &&
		    (what & BEV_EVENT_EOF)) {
			in->keep_alive = false;
			response_done(in);
			return;
		}
		if (!in->resp_started) {
			/* A TLS alert (TLS 1.3: a client certificate the
			 * server wanted) says more than a close. */
			unsigned long e = bufferevent_get_openssl_error(b);
			char msg[300];
			snprintf(msg, sizeof msg,
				 "upstream closed before the response%s%s",
				 e ? ": " : "",
				 e ? ERR_reason_error_string(e) : "");
			refuse(in, 502,
			       e ? EGRESS_REASON_UPSTREAM_ERROR
				 : EGRESS_REASON_UPSTREAM_CLOSED,
			       msg);
			return;
		}
		log_request(in, "request",
			    egress_reason_name(EGRESS_REASON_UPSTREAM_CLOSED),
			    "upstream closed before the response ended");
	}
	if (in->st == IS_HEAD && in->nreq == 0) {
		/* Before the first request (a server that refused the
		 * handshake after it ended, as TLS 1.3 allows): that request
		 * is answered 502. */
		upstream_gone_early(in, b);
		return;
	}
	if (in->st != IS_CLOSING && in->st != IS_CL_HS)
		finish(in, egress_reason_name(EGRESS_REASON_UPSTREAM_CLOSED),
		       NULL);
	else if (c->upstream.bev != NULL && in->st == IS_CL_HS)
		upstream_gone_early(in, b);
}

/* Wrap the client's socket in a TLS server with the host's leaf. The
 * checked ClientHello is still in the socket's input buffer: the read
 * callback is triggered by hand so the handshake starts on it. */
static void start_client_tls(struct inspect *in)
{
	struct conn *c = in->c;
	struct inspect_srv *s = c->w->srv->insp;
	char err[256];
	in->st = IS_CL_HS;
	arm(in, c->limits.header_timeout_ms);
	SSL_CTX *ctx = certs_leaf_ctx(s->leaves, c->host, err, sizeof err);
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	SSL_CTX_free(ctx);
	struct bufferevent *raw = c->client.bev;
	struct bufferevent *tls =
	    ssl != NULL
		? bufferevent_openssl_filter_new(c->w->base, raw, ssl,
						 BUFFEREVENT_SSL_ACCEPTING,
						 BEV_OPT_CLOSE_ON_FREE)
		: NULL;
	if (tls == NULL) {
		SSL_free(ssl);
		conn_log(c, "error", egress_reason_name(EGRESS_REASON_INTERNAL),
			 ctx == NULL ? err : "cannot start TLS", false);
		start_closing(in);
		return;
	}
	c->client.bev = tls;
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	bufferevent_setwatermark(raw, EV_READ, 0, 0);
	bufferevent_setwatermark(tls, EV_WRITE, RELAY_BUF_MAX / 2, 0);
	bufferevent_setcb(tls, client_read_cb, client_write_cb, client_event_cb,
			  in);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	bufferevent_enable(raw, EV_READ | EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_input(raw)) > 0)
		bufferevent_trigger(raw, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct inspect *in = arg;
	struct conn *c = in->c;
	(void)fd;
	(void)what;
	if (in->st == IS_CLOSING) {
		struct bufferevent *raw =
		    bufferevent_get_underlying(c->client.bev);
		bool empty =
		    raw != NULL && evbuffer_get_length(client_out(in)) == 0 &&
		    evbuffer_get_length(bufferevent_get_output(raw)) == 0;
		if (raw == NULL || in->close_ms >= LINGER_MS ||
		    (empty && c->client.eof)) {
			conn_free(c);
			return;
		}
		if (empty && !c->client.shut) {
			shutdown(bufferevent_getfd(raw), SHUT_WR);
			c->client.shut = true;
		}
		in->close_ms += CLOSE_POLL_MS;
		arm(in, CLOSE_POLL_MS);
		return;
	}
	int64_t idle = conn_ms_since(&c->last_activity);
	if ((in->st == IS_BODY || in->st == IS_HEAD || in->st == IS_WS) &&
	    idle < c->limits.idle_timeout_ms) {
		arm(in, (unsigned)(c->limits.idle_timeout_ms - idle));
		return;
	}
	if (in->st == IS_BODY)
		log_request(in, "request",
			    egress_reason_name(EGRESS_REASON_IDLE_TIMEOUT),
			    NULL);
	if (in->st == IS_UP_HS || in->st == IS_CL_HS) {
		conn_log(c, "deny", egress_reason_name(EGRESS_REASON_TIMEOUT),
			 "TLS handshake took too long", false);
		start_closing(in);
		return;
	}
	finish(in, egress_reason_name(EGRESS_REASON_IDLE_TIMEOUT), NULL);
}

/* ---- entry points ---- */

static int start_upstream_tls(struct inspect *in)
{
	struct conn *c = in->c;
	SSL *ssl = SSL_new(c->w->srv->insp->up_ctx);
	if (ssl == NULL || SSL_set_tlsext_host_name(ssl, c->host) != 1 ||
	    SSL_set1_host(ssl, c->host) != 1) {
		SSL_free(ssl);
		return -ENOMEM;
	}
	X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl),
					X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	struct bufferevent *tls = bufferevent_openssl_filter_new(
	    c->w->base, c->upstream.bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		SSL_free(ssl);
		return -ENOMEM;
	}
	c->upstream.bev = tls;
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	bufferevent_setwatermark(tls, EV_WRITE, RELAY_BUF_MAX / 2, 0);
	bufferevent_setcb(tls, upstream_read_cb, upstream_write_cb,
			  upstream_event_cb, in);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	return 0;
}

void inspect_start(struct conn *c)
{
	struct inspect *in = calloc(1, sizeof *in);
	if (in != NULL)
		in->timer = evtimer_new(c->w->base, timer_cb, in);
	if (in == NULL || in->timer == NULL || c->w->srv->insp == NULL) {
		free(in);
		conn_refuse(c, "error", 0,
			    egress_reason_name(EGRESS_REASON_INTERNAL),
			    c->w->srv->insp == NULL
				? "the rule inspects but the proxy has no "
				  "--inspect-ca"
				: "out of memory");
		return;
	}
	in->c = c;
	c->insp = in;
	in->pol = proxy_policy_get(c->w->srv);
	clock_gettime(CLOCK_MONOTONIC, &in->t_req);
	conn_set_state(c, CS_INSPECT);
	evtimer_del(c->timer);
	if (c->idle_timer != NULL)
		evtimer_del(c->idle_timer);
	/* The raw client socket stays quiet (its ClientHello buffered) until
	 * the upstream has been verified. */
	bufferevent_disable(c->client.bev, EV_READ);
	bufferevent_setcb(c->client.bev, NULL, NULL, NULL, NULL);
	in->st = IS_UP_HS;
	arm(in, c->limits.header_timeout_ms);
	if (start_upstream_tls(in) != 0) {
		conn_log(c, "error", egress_reason_name(EGRESS_REASON_INTERNAL),
			 "cannot start TLS to the upstream", false);
		start_closing(in);
	}
}

bool inspect_misuse_refused(struct conn *c, const struct http_request *req)
{
	const struct inspect_srv *s = c->w->srv->insp;
	if (s == NULL || s->creds == NULL)
		return false;
	const char *name = cred_misuse_head(s->creds, NULL, req);
	if (name == NULL)
		return false;
	char msg[200];
	snprintf(msg, sizeof msg,
		 "a placeholder of credential %s in a %s request head "
		 "(placeholders are only swapped inside inspected tunnels)",
		 name, req->is_connect ? "CONNECT" : "plain-HTTP");
	fprintf(stderr, PROXY_PREFIX "CREDENTIAL MISUSE: %s\n", msg);
	conn_refuse(c, "deny", 403,
		    egress_reason_name(EGRESS_REASON_CREDENTIAL_MISUSE), msg);
	return true;
}

void inspect_budget_close(struct conn *c)
{
	struct inspect *in = c->insp;
	if (in != NULL && in->st != IS_CLOSING)
		finish(in,
		       egress_reason_name(EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED),
		       "another connection passed the host's upload budget");
}

void inspect_shutdown(struct conn *c)
{
	if (c->insp != NULL && c->insp->st != IS_CLOSING)
		conn_log(c, "close", egress_reason_name(EGRESS_REASON_SHUTDOWN),
			 NULL, true);
	conn_free(c);
}

void inspect_free(struct conn *c)
{
	struct inspect *in = c->insp;
	if (in == NULL)
		return;
	if (in->timer != NULL)
		event_free(in->timer);
	policy_unref(in->pol);
	free(in);
	c->insp = NULL;
}
