/* The TLS checks of a tunnel whose rule wants TLS: the ClientHello before
 * anything goes upstream, then the server's first record, and after a
 * HelloRetryRequest the client's second ClientHello, which must pass the
 * same checks and name the same server as the first. Until the server's
 * first record is read the client's further bytes are held. */
#include "proxy_int.h"

#include "budget.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "clienthello.h"
#include "serverhello.h"

/* TLS 1.3 middlebox compatibility (RFC 8446 D.4): the one record a client
 * may send between the HelloRetryRequest and its second ClientHello. */
static const uint8_t ccs_record[6] = {0x14, 0x03, 0x03, 0x00, 0x01, 0x01};
#define AFTER_HRR "second ClientHello after HelloRetryRequest"

static void set_sni(struct conn *c, const char *sni)
{
	size_t n = strlen(sni);
	if (n >= sizeof c->sni)
		n = sizeof c->sni - 1;
	memcpy(c->sni, sni, n);
	c->sni[n] = '\0';
}

/* The SNI goes into the record's sni field only when it is a valid host
 * name; otherwise msg quotes it escaped. Returns whether it was valid. */
static bool record_sni(struct conn *c, const char *sni, char *msg,
		       size_t msglen, const char *what)
{
	char norm[POLICY_HOST_MAX + 1];
	char err[POLICY_ERR_MAX];
	if (policy_host_normalize(sni, strlen(sni), norm, sizeof norm, err,
				  sizeof err) == 0) {
		set_sni(c, sni);
		return true;
	}
	char q[300];
	proxy_quote(sni, strlen(sni), q, sizeof q);
	c->sni[0] = '\0';
	/* A cut message still names the start of the quoted name. */
	if (snprintf(msg, msglen, "%s names %s: %s", what, q, err) < 0)
		msg[0] = '\0';
	return false;
}

/* The verdict on a complete ClientHello: NULL when it passes, else the
 * reason code with msg set. The second hello after a HelloRetryRequest
 * must carry exactly the first one's server name (c->sni), or none when
 * the first had none. */
static const char *judge(struct conn *c, enum clienthello_result r,
			 const char *sni, bool second, char *msg, size_t msglen)
{
	const char *what = second ? AFTER_HRR : "ClientHello";
	bool ip_target = policy_host_is_ip_literal(c->host);
	char first[sizeof c->sni];
	memcpy(first, c->sni, sizeof first);
	switch (r) {
	case CH_OK:
		break;
	case CH_NO_SNI:
		if (second ? first[0] == '\0' : ip_target)
			return NULL; /* SNI cannot carry an IP address */
		snprintf(msg, msglen, "%s carries no server name", what);
		return egress_reason_name(EGRESS_REASON_NO_SNI);
	case CH_ECH:
		if (record_sni(c, sni, msg, msglen, what))
			snprintf(
			    msg, msglen,
			    "%s offers Encrypted Client Hello: the name it "
			    "reaches cannot be checked",
			    what);
		return egress_reason_name(EGRESS_REASON_ECH);
	case CH_NOT_TLS:
		snprintf(msg, msglen, "%s",
			 second ? AFTER_HRR " expected, got bytes that are "
					    "not a TLS handshake"
				: "first bytes after CONNECT are not a TLS "
				  "handshake");
		return egress_reason_name(EGRESS_REASON_NOT_TLS);
	default:
		snprintf(msg, msglen, "%s: %s", what,
			 clienthello_result_str(r));
		return egress_reason_name(EGRESS_REASON_BAD_CLIENTHELLO);
	}
	if (!record_sni(c, sni, msg, msglen, what))
		return egress_reason_name(EGRESS_REASON_SNI_MISMATCH);
	if (second) {
		if (strcmp(sni, first) == 0)
			return NULL;
		char q[300];
		proxy_quote(first, strlen(first), q, sizeof q);
		snprintf(msg, msglen,
			 AFTER_HRR " names another server than the first "
				   "(%s)",
			 first[0] ? q : "none");
		return egress_reason_name(EGRESS_REASON_SNI_MISMATCH);
	}
	char norm[POLICY_HOST_MAX + 1];
	char err[POLICY_ERR_MAX];
	if (policy_host_normalize(sni, strlen(sni), norm, sizeof norm, err,
				  sizeof err) != 0 ||
	    strcmp(norm, c->host) != 0) {
		snprintf(msg, msglen, "SNI differs from the CONNECT host");
		return egress_reason_name(EGRESS_REASON_SNI_MISMATCH);
	}
	return NULL;
}

/* Parse the client's buffered bytes from `skip` on: CH_NEED_MORE while a
 * hello is still arriving (within the bound). */
static enum clienthello_result parse_hello(struct conn *c, size_t skip,
					   char *sni, size_t snilen, bool *oom)
{
	struct evbuffer *in = bufferevent_get_input(c->client.bev);
	size_t len = evbuffer_get_length(in);
	size_t cap = skip + CLIENTHELLO_MAX_BYTES + 1;
	size_t take = len > cap ? cap : len;
	*oom = false;
	sni[0] = '\0';
	if (take <= skip)
		return CH_NEED_MORE;
	const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)take);
	if (buf == NULL) {
		*oom = true;
		return CH_NEED_MORE;
	}
	enum clienthello_result r =
	    clienthello_parse(buf + skip, take - skip, sni, snilen);
	if (r == CH_NEED_MORE && take - skip > CLIENTHELLO_MAX_BYTES)
		r = CH_TOO_LARGE;
	return r;
}

void hello_read(struct conn *c, bool eof)
{
	struct evbuffer *in = bufferevent_get_input(c->client.bev);
	size_t len = evbuffer_get_length(in);
	char sni[256];
	bool oom;
	enum clienthello_result r = parse_hello(c, 0, sni, sizeof sni, &oom);
	if (oom) {
		conn_refuse(c, "error", 0,
			    egress_reason_name(EGRESS_REASON_INTERNAL),
			    "out of memory");
		return;
	}
	if (r == CH_NEED_MORE) {
		if (eof) {
			evtimer_del(c->timer);
			conn_refuse(
			    c, "deny", 0,
			    egress_reason_name(
				len ? EGRESS_REASON_BAD_CLIENTHELLO
				    : EGRESS_REASON_CLIENT_CLOSED),
			    "connection closed before a complete ClientHello");
		}
		return;
	}
	evtimer_del(c->timer);
	char msg[512] = "";
	const char *reason = judge(c, r, sni, false, msg, sizeof msg);
	if (reason != NULL) {
		conn_refuse(c, "deny", 0, reason, msg);
		return;
	}
	bufferevent_disable(c->client.bev, EV_READ);
	conn_connect_start(c);
}

/* The server's answer was no HelloRetryRequest (or the second hello
 * passed): every check is done, the tunnel is open. */
/* Returns false when the conn was freed. */
static bool go_relay(struct conn *c)
{
	evtimer_del(c->timer);
	bufferevent_setwatermark(c->upstream.bev, EV_READ, 0, 0);
	if (conn_log(c, "open", NULL, NULL, false) != 0) {
		/* Nothing is tunnelled that is not recorded (a full disk). */
		conn_refuse(c, "deny", 0,
			    egress_reason_name(EGRESS_REASON_LOG_UNWRITABLE),
			    "the open record could not be written");
		return true;
	}
	if (!relay_start(c))
		return false;
	conn_arm_idle(c);
	return true;
}

void hello_follow_start(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client.bev);
	size_t len = evbuffer_get_length(in), span = 0;
	const uint8_t *buf = evbuffer_pullup(in, -1);
	if (buf == NULL || clienthello_span(buf, len, &span) != 0) {
		conn_refuse(
		    c, "error", 0, egress_reason_name(EGRESS_REASON_INTERNAL),
		    buf == NULL ? "out of memory"
				: "checked ClientHello lost its framing");
		return;
	}
	if (!budget_charge(c, span)) {
		conn_refuse(
		    c, "deny", 0,
		    egress_reason_name(EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED),
		    "the ClientHello would pass the host's upload budget");
		return;
	}
	/* Only the checked hello goes up; what the client sent after it
	 * waits until the server's first record is read. */
	evbuffer_remove_buffer(in, bufferevent_get_output(c->upstream.bev),
			       span);
	c->client.bytes += span;
	conn_set_state(c, CS_SHELLO);
	bufferevent_disable(c->client.bev, EV_READ);
	bufferevent_setwatermark(c->upstream.bev, EV_READ, 0,
				 SERVERHELLO_MAX_BYTES);
	bufferevent_enable(c->upstream.bev, EV_READ);
	conn_arm_timer(c, c->limits.header_timeout_ms);
}

static void hello2_read(struct conn *c, bool eof);

void hello_server_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->upstream.bev);
	size_t len = evbuffer_get_length(in);
	const uint8_t *buf = evbuffer_pullup(in, -1);
	bool is_hrr = false;
	enum serverhello_result r =
	    buf != NULL ? serverhello_parse(buf, len, &is_hrr) : SH_OTHER;
	if (r == SH_NEED_MORE && len < SERVERHELLO_MAX_BYTES)
		return;
	if (r != SH_SERVER_HELLO || !is_hrr) {
		(void)go_relay(c);
		return;
	}
	conn_trace(c, "HelloRetryRequest: checking the second ClientHello");
	c->upstream.bytes += len;
	evbuffer_add_buffer(bufferevent_get_output(c->client.bev), in);
	bufferevent_disable(c->upstream.bev, EV_READ);
	conn_set_state(c, CS_HELLO2);
	bufferevent_setwatermark(c->client.bev, EV_READ, 0,
				 sizeof ccs_record + CLIENTHELLO_MAX_BYTES + 1);
	bufferevent_enable(c->client.bev, EV_READ);
	conn_arm_timer(c, c->limits.header_timeout_ms);
	if (evbuffer_get_length(bufferevent_get_input(c->client.bev)) > 0)
		hello2_read(c, false);
}

static void hello2_read(struct conn *c, bool eof)
{
	struct evbuffer *in = bufferevent_get_input(c->client.bev);
	size_t len = evbuffer_get_length(in), skip = 0;
	char msg[512] = "";
	const char *reason = NULL;
	const uint8_t *buf = evbuffer_pullup(
	    in, len < sizeof ccs_record ? (ev_ssize_t)len
					: (ev_ssize_t)sizeof ccs_record);
	if (len > 0 && buf != NULL && buf[0] == ccs_record[0]) {
		size_t n = len < sizeof ccs_record ? len : sizeof ccs_record;
		if (memcmp(buf, ccs_record, n) != 0) {
			reason =
			    egress_reason_name(EGRESS_REASON_BAD_CLIENTHELLO);
			snprintf(msg, sizeof msg,
				 "%s expected, got a malformed "
				 "ChangeCipherSpec record",
				 AFTER_HRR);
		}
		skip = sizeof ccs_record;
	}
	if (reason == NULL) {
		char sni[256];
		bool oom;
		enum clienthello_result r =
		    parse_hello(c, skip, sni, sizeof sni, &oom);
		if (oom) {
			conn_refuse(c, "error", 0,
				    egress_reason_name(EGRESS_REASON_INTERNAL),
				    "out of memory");
			return;
		}
		if (r == CH_NEED_MORE && !eof)
			return;
		if (r == CH_NEED_MORE) {
			reason =
			    egress_reason_name(EGRESS_REASON_BAD_CLIENTHELLO);
			snprintf(msg, sizeof msg,
				 "connection closed before a complete %s",
				 AFTER_HRR);
		} else {
			reason = judge(c, r, sni, true, msg, sizeof msg);
		}
	}
	evtimer_del(c->timer);
	if (reason != NULL) {
		conn_refuse(c, "deny", 0, reason, msg);
		return;
	}
	(void)go_relay(c);
}

void hello_client_read(struct conn *c, bool eof)
{
	if (c->state == CS_HELLO)
		hello_read(c, eof);
	else if (c->state == CS_HELLO2)
		hello2_read(c, eof);
}

void hello_upstream_event(struct conn *c, short what)
{
	/* An EOF or error before the server's first record, or while the
	 * second hello is awaited: the relay reports it as it does for any
	 * tunnel (nothing unchecked can reach a closed upstream). */
	if (go_relay(c))
		relay_event(&c->upstream, what);
}

void hello_timeout(struct conn *c)
{
	char msg[200];
	if (c->state == CS_SHELLO)
		snprintf(msg, sizeof msg,
			 "no TLS answer from the upstream within %u ms",
			 c->limits.header_timeout_ms);
	else
		snprintf(msg, sizeof msg, "no %s within %u ms", AFTER_HRR,
			 c->limits.header_timeout_ms);
	conn_refuse(c, "deny", 0, egress_reason_name(EGRESS_REASON_TIMEOUT),
		    msg);
}
