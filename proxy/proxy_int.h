/* Internal structures of agentsafe-proxy shared by server.c (workers),
 * conn.c (requests), forward.c (plain HTTP), relay.c and splice.c (tunnels).
 * Not for use outside proxy/. */
#ifndef AGENTSAFE_PROXY_INT_H
#define AGENTSAFE_PROXY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "egress_fold.h"
#include "egress_log.h"
#include "http_parse.h"
#include "netutil.h"
#include "policy.h"
#include "proxy.h"
#include "reason.h"

#define PROXY_PREFIX "agentsafe-proxy: "

/* Most bytes queued toward one side of a tunnel before the proxy stops
 * reading from the other side (backpressure bound per direction). */
#define RELAY_BUF_MAX ((size_t)64 * 1024)
/* Most resolved addresses kept per request (tried in order). */
#define CONN_ADDRS_MAX 8
/* Connections over max_connections are answered 503 after their request
 * head is read; beyond this many at once they are refused immediately. */
#define REJECT_MAX 256
/* How long SIGTERM waits for open connections before closing them. */
#define DRAIN_GRACE_MS 3000L
/* How long a refused client may keep sending before we close for good. */
#define LINGER_MS 2000

struct conn;
struct splice_state;
struct approval_hub;
struct question;
struct budget_host;

/* why.c: the session's last refusals, for http://agentsafe.internal/why */
#define WHY_HOST "agentsafe.internal"
#define WHY_KEEP 20
#define WHY_LINE 1600
struct why_ring {
	pthread_mutex_t lock;
	char line[WHY_KEEP][WHY_LINE]; /* timestamp, sentence, newline */
	unsigned next, n;
};
void why_init(struct why_ring *w);
void why_destroy(struct why_ring *w);
/* Remember a refusal of c (its sentence, refusal.h). */
void why_note(struct conn *c, const char *reason, const char *detail);
/* A plain-HTTP request for the reserved name: answered by why_serve. */
bool why_is_request(const struct conn *c);
/* 200 with the remembered refusals, then close. */
void why_serve(struct conn *c);
struct inspect;
struct inspect_srv;

struct worker {
	struct proxy_server *srv;
	unsigned index;
	pthread_t thread;
	bool started;
	struct event_base *base;
	struct evdns_base *dns;
	bool dns_hosts_only; /* --hosts without --dns: never query */
	struct evconnlistener **listeners; /* one per --listen */
	struct event *shutdown_ev;	   /* activated by the main thread */
	struct event *drain_timer;
	struct event *accept_resume; /* re-enables listeners after EMFILE */
	bool draining;
	struct conn *conns; /* doubly linked, for drain */
	size_t nconns;
};

/* Descriptor budget (RLIMIT_NOFILE): FD_RESERVE for listeners, the log,
 * the resolver and accept headroom; FD_PIPE_POOL splice pipe pairs that
 * connections can always get, so a proxy full of tunnels still moves bytes.
 * New connections beyond what is left (2 descriptors each) get 503. */
#define FD_RESERVE   256
#define FD_PIPE_POOL 64

struct proxy_server {
	struct proxy_config cfg;
	struct egress_log *log;
	struct egress_fold *fold;    /* deny records go through it */
	pthread_mutex_t policy_lock; /* guards `policy` across get+ref */
	struct policy *policy;
	struct approval_hub *approval; /* NULL without --approval-socket */
	struct budget_table *budgets;  /* upload budgets per host */
	atomic_uint nconns;	       /* client connections, all workers */
	atomic_uint nrejecting; /* over-limit connections being answered */
	bool no_splice;		/* AGENTSAFE_PROXY_NO_SPLICE: copy only */
	bool trace;		/* AGENTSAFE_PROXY_TRACE=1: state changes */
	unsigned fd_limit;	/* RLIMIT_NOFILE soft limit at start */
	atomic_uint pipe_pairs; /* splice pipes held now, all workers */
	unsigned nworkers;
	struct worker *workers;
	size_t nlisten;
	struct sockaddr_storage *laddrs; /* bound addresses (real ports) */
	int *fds;			 /* [worker * nlisten + i] */
	atomic_bool selfcheck_open;	 /* until cfg.selfcheck_fd ends it */
	struct why_ring why;
	struct inspect_srv *insp; /* session CA; NULL without --inspect-ca */
};

/* True while the launcher's self-check window is open: a connection
 * accepted now is its probe's (the agent has not been started), and its
 * records carry "origin": "selfcheck". The window ends for good at the
 * first byte, EOF or error on cfg.selfcheck_fd. The launcher writes that
 * byte before it lets the agent start, so a connection the agent makes is
 * accepted after the byte is readable: checked per connection after its
 * accept, it is never labelled. */
bool proxy_selfcheck_window(struct proxy_server *srv);

/* Current policy with a reference the caller must drop (policy_unref). */
struct policy *proxy_policy_get(struct proxy_server *srv);
/* Reload the policy file (SIGHUP, or an approval for good); 0, or -errno
 * after a reload_failed record (the old policy stays). */
int proxy_reload(struct proxy_server *srv);

enum conn_state {
	CS_NEW,	    /* accepted, not set up yet */
	CS_HEAD,    /* reading a request head */
	CS_RESOLVE, /* waiting for evdns */
	CS_HELLO,   /* 200 sent, reading the ClientHello */
	CS_CONNECT, /* connecting upstream */
	CS_RELAY,   /* CONNECT tunnel established */
	CS_FWD,	    /* plain-HTTP request in flight */
	CS_CLOSING, /* answer queued; flush, then linger and free */
	CS_SHELLO,  /* hello sent upstream, reading the server's first record */
	CS_HELLO2,  /* HelloRetryRequest passed on, reading the second hello */
	CS_APPROVAL, /* unknown host, held for the user's answer */
	CS_INSPECT,  /* TLS terminated, requests decided (inspect.c) */
};

/* One end of a connection. The two ends are two copies of this struct,
 * each pointing at the other, so one relay function serves both
 * directions and every reason code comes from the side it concerns. */
struct conn_side {
	struct conn *conn;
	struct conn_side *peer;
	struct bufferevent *bev;  /* NULL while the side has no socket */
	const char *name;	  /* "client" or "upstream" */
	const char *reset_reason; /* the side reset the connection */
	const char *error_reason; /* another socket error on the side */
	bool eof;		  /* read side finished */
	bool shut;	/* write side shut down after the peer's EOF */
	uint64_t bytes; /* read from this side, passed to the peer */
};

struct conn {
	struct worker *w;
	struct conn *prev, *next;
	enum conn_state state;
	bool reject;  /* over max_connections: answer 503 */
	bool first;   /* no request finished on this connection yet */
	bool counted; /* holds a slot in srv->nconns */
	struct conn_side client, upstream;
	struct event *timer;	  /* header / connect / hello / linger */
	struct event *idle_timer; /* relay idle check */
	struct timespec t_start, t_open, last_activity;
	struct policy_limits limits;
	struct policy *pol; /* held from policy_match to policy_check_addr */

	/* What the log needs, filled in as it becomes known. */
	char client_addr[PROXY_ADDRSTR_MAX];
	char id[48];
	char method[32];
	char host[POLICY_HOST_MAX + 1];
	uint16_t port;
	char sni[256];
	char ip[PROXY_ADDRSTR_MAX];
	/* Client text that failed validation, quoted and escaped; it goes
	 * into every record's message, never into a field of its own. */
	char note[512];
	char *rule;
	bool is_connect;
	bool selfcheck; /* accepted in the self-check window */
	bool require_tls;
	/* learn mode let this request through: its open record says so and
	 * carries the reason it would have been denied with */
	bool would_deny;
	const char *would_reason; /* a static reason string */
	bool inspect;		  /* the rule says inspect: true */
	struct inspect *insp;	  /* CS_INSPECT state (inspect.c) */

	/* Resolution and connect. */
	struct evdns_getaddrinfo_request *dnsreq;
	bool dns_sync, dns_done;
	int dns_err;
	struct evutil_addrinfo *dns_ai;
	struct sockaddr_storage addrs[CONN_ADDRS_MAX];
	socklen_t addrlens[CONN_ADDRS_MAX];
	size_t naddrs, addr_idx;
	int last_connect_errno;

	/* Held for approval (approval.c); the answer is set under the
	 * hub's lock: 0 none yet, 1 allow, -1 deny. */
	struct question *aq;
	struct event *approval_ev;
	int approval_answer;

	/* Upload budget of the host (budget.c), NULL when unlimited. */
	struct budget_host *budget;

	/* Tunnel relay. */
	struct splice_state *splice; /* zero-copy mode, see splice.c */

	/* Plain-HTTP forward of one request. */
	char *fwd_head; /* rewritten request head for the upstream */
	size_t fwd_head_len;
	int version_minor;
	bool client_keep_alive, keep_alive;
	bool is_head_method;
	enum http_body_kind req_body;
	uint64_t req_remaining;
	struct http_chunked req_chunked;
	bool req_done;
	bool resp_started; /* final response head sent to the client */
	enum http_body_kind resp_body;
	uint64_t resp_remaining;
	struct http_chunked resp_chunked;
};

/* conn.c */
void conn_accept(struct worker *w, int fd, const struct sockaddr *sa);
void conn_free(struct conn *c);
void conn_shutdown(struct conn *c); /* drain deadline: close with a record */
/* Every state change goes through here (traced with AGENTSAFE_PROXY_TRACE). */
void conn_set_state(struct conn *c, enum conn_state st);
void conn_trace(const struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* One record for c; deny records are folded (egress_fold.h). Returns 0
 * or -errno when the record could not be written. */
int conn_log(struct conn *c, const char *event, const char *reason,
	     const char *message, bool with_totals);
void conn_finish_request(struct conn *c, const char *reason);
int64_t conn_ms_since(const struct timespec *t);
void conn_touch(struct conn *c); /* something moved: reset the idle clock */
/* The reason code for socket error `e` on side `s`. */
const char *conn_side_reason(const struct conn_side *s, int e);
void conn_release_upstream(struct conn *c);
void conn_arm_timer(struct conn *c, unsigned ms);
/* The relay or forward has started: arm the idle check. */
void conn_arm_idle(struct conn *c);
/* A request refused before any upstream byte: one record, then answer
 * `status` (or just close when it is 0: the client already got 200). */
void conn_refuse(struct conn *c, const char *event, int status,
		 const char *reason, const char *detail);
/* The user approved c (held in CS_APPROVAL): go on as if a rule with the
 * default `tls: true` allowed it. */
void conn_approved(struct conn *c);
/* Every check before the connection passed: connect (CS_CONNECT). */
void conn_connect_start(struct conn *c);
/* Flush to the client, shut our side, linger, free (CS_CLOSING). */
void conn_start_closing(struct conn *c);
/* Answer `status` with `reason` in the head and body, then close. */
void conn_reply_error(struct conn *c, int status, const char *reason,
		      const char *detail);
/* Keep-alive: forget the finished request and read the next head. */
void conn_next_request(struct conn *c);

/* forward.c: one plain-HTTP request at a time (CS_FWD). */
/* Rewrites the request head for the upstream; 0, or the status to refuse
 * with (err says why). */
int fwd_prepare(struct conn *c, const struct http_request *req, char *err,
		size_t errlen);
void fwd_start(struct conn *c);
void fwd_read(struct conn_side *s);
void fwd_write_drained(struct conn_side *s);
void fwd_event(struct conn_side *s, short what);
void fwd_idle_timeout(struct conn *c);
/* The reserved name of the session's git broker: never resolved. */
#define FWD_BROKER_HOST "git.agentsafe.internal"
bool fwd_is_broker_host(const char *host);
/* Sends the request (prepared by fwd_prepare, or a CONNECT, which is
 * refused) to the broker's unix socket instead of the policy and the
 * resolver; releases c->pol. */
void fwd_broker_connect(struct conn *c);

/* hello.c: a TLS tunnel's ClientHello (CS_HELLO), the server's first
 * record (CS_SHELLO) and a second ClientHello after a HelloRetryRequest
 * (CS_HELLO2). */
void hello_read(struct conn *c, bool eof);
void hello_client_read(struct conn *c, bool eof);
/* Connected upstream: forward the checked hello, read the server's answer. */
void hello_follow_start(struct conn *c);
void hello_server_read(struct conn *c);
void hello_upstream_event(struct conn *c, short what);
void hello_timeout(struct conn *c);

/* relay.c: an established tunnel (CS_RELAY). */
/* Returns false when the conn was freed (ended at once, or an upload
 * budget passed by bytes already buffered). */
bool relay_start(struct conn *c);
void relay_read(struct conn_side *s);
/* The output of `s` fell below the write watermark. */
void relay_write_drained(struct conn_side *s);
void relay_event(struct conn_side *s, short what);

/* splice.c */
bool relay_splice_start(struct conn *c);
void relay_splice_free(struct conn *c);

#endif
