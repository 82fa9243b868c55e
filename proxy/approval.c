/* Live approvals: a request no rule names waits (no thread, no blocking:
 * the conn just sits in CS_APPROVAL with its timer armed) while the user
 * answers through a unix socket that only the session's user (or root) may
 * use. One question per host:port, however many requests wait on it;
 * answers wake each waiter on its own worker's loop. */
#include "approval.h"

#include "proxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

#include <event2/buffer.h>
#include <jansson.h>

#define LINE_MAX_BYTES 4096

struct waiter {
	struct waiter *next;
	struct conn *c;
};

struct question {
	struct question *next;
	char host[POLICY_HOST_MAX + 1];
	uint16_t port;
	char method[32];
	char client[PROXY_ADDRSTR_MAX];
	char id[48];
	struct timespec asked; /* CLOCK_MONOTONIC */
	unsigned timeout_ms;
	bool timed_out; /* its timeout record is written */
	struct waiter *waiters;
};

struct grant {
	struct grant *next;
	char host[POLICY_HOST_MAX + 1];
	uint16_t port;
};

struct client;

struct approval_hub {
	pthread_mutex_t lock;
	struct client *clients; /* open `agentsafe approve` connections */
	struct question *qs;
	struct grant *grants;
	struct proxy_server *srv;
	struct evconnlistener *lst;
	uid_t owner;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

bool approval_peer_ok(uid_t peer, uid_t owner)
{
	return peer == owner || peer == 0;
}

/* One `approval` record. */
static void record(struct proxy_server *srv, const struct question *q,
		   const char *step, const char *decision, const char *scope,
		   int64_t uid, const char *reason, const char *message)
{
	struct egress_record r;
	egress_record_init(&r);
	r.id = q->id;
	r.event = "approval";
	r.client = q->client[0] ? q->client : NULL;
	r.method = q->method[0] ? q->method : NULL;
	r.host = q->host;
	r.port = q->port;
	r.step = step;
	r.decision = decision;
	r.scope = scope;
	r.uid = uid;
	r.reason = reason;
	r.message = message;
	if (egress_log_write(srv->log, &r) != 0)
		fprintf(stderr,
			PROXY_PREFIX "cannot write an approval record\n");
}

/* ---- the held side (worker threads) ---- */

static bool granted_locked(struct approval_hub *h, const char *host,
			   uint16_t port)
{
	for (struct grant *g = h->grants; g != NULL; g = g->next)
		if (g->port == port && strcmp(g->host, host) == 0)
			return true;
	return false;
}

bool approval_granted(struct proxy_server *srv, const char *host, uint16_t port)
{
	struct approval_hub *h = srv->approval;
	if (h == NULL)
		return false;
	pthread_mutex_lock(&h->lock);
	bool ok = granted_locked(h, host, port);
	pthread_mutex_unlock(&h->lock);
	return ok;
}

/* Runs on c's own worker once the hub has set c->approval_answer. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	if (c->state != CS_APPROVAL)
		return;
	struct approval_hub *h = c->w->srv->approval;
	pthread_mutex_lock(&h->lock);
	int answer = c->approval_answer;
	pthread_mutex_unlock(&h->lock);
	if (answer == 0)
		return;
	evtimer_del(c->timer);
	if (answer > 0) {
		conn_approved(c);
		return;
	}
	conn_refuse(c, "deny", 403,
		    egress_reason_name(EGRESS_REASON_NOT_ALLOWED),
		    "refused by the user (agentsafe approve)");
}

void approval_notify(struct proxy_server *srv, const char *what)
{
	int fd = srv->cfg.notify_fd;
	if (fd <= 2)
		return;
	char line[POLICY_HOST_MAX + 256];
	int n =
	    isatty(fd) == 1
		? snprintf(line, sizeof line, "\a\033]0;agentsafe: %s\a", what)
		: snprintf(line, sizeof line, "agentsafe: %s\n", what);
	if (n > 0 && (size_t)n < sizeof line)
		(void)!write(fd, line, (size_t)n);
	char *argv[] = {"notify-send", "AgentSafe", (char *)what, NULL};
	pid_t pid;
	(void)posix_spawnp(&pid, "notify-send", NULL, NULL, argv, environ);
}

static void notify_line(struct proxy_server *srv, const struct question *q)
{
	char what[POLICY_HOST_MAX + 40];
	snprintf(what, sizeof what, "approval needed: %s:%u", q->host, q->port);
	fprintf(stderr, PROXY_PREFIX "%s (agentsafe approve --session %s)\n",
		what, srv->cfg.session);
	approval_notify(srv, what);
}

static struct question *question_new(struct conn *c)
{
	struct question *q = calloc(1, sizeof *q);
	if (q == NULL)
		return NULL;
	snprintf(q->host, sizeof q->host, "%s", c->host);
	q->port = c->port;
	snprintf(q->method, sizeof q->method, "%s", c->method);
	snprintf(q->client, sizeof q->client, "%s", c->client_addr);
	egress_log_next_id(c->w->srv->log, q->id, sizeof q->id);
	clock_gettime(CLOCK_MONOTONIC, &q->asked);
	q->timeout_ms = c->limits.approval_timeout_ms;
	return q;
}

int approval_hold(struct conn *c)
{
	struct proxy_server *srv = c->w->srv;
	struct approval_hub *h = srv->approval;
	if (h == NULL || c->host[0] == '\0')
		return -ENOTSUP;
	if (c->approval_ev == NULL)
		c->approval_ev = event_new(c->w->base, -1, 0, wake_cb, c);
	struct waiter *wt = malloc(sizeof *wt);
	if (c->approval_ev == NULL || wt == NULL) {
		free(wt);
		return -ENOMEM;
	}
	wt->c = c;
	bool fresh = false;
	pthread_mutex_lock(&h->lock);
	struct question *q = h->qs;
	while (q != NULL && !(q->port == c->port && !q->timed_out &&
			      strcmp(q->host, c->host) == 0))
		q = q->next;
	if (q == NULL) {
		q = question_new(c);
		if (q == NULL) {
			pthread_mutex_unlock(&h->lock);
			free(wt);
			return -ENOMEM;
		}
		q->next = h->qs;
		h->qs = q;
		fresh = true;
	}
	wt->next = q->waiters;
	q->waiters = wt;
	c->aq = q;
	c->approval_answer = 0;
	int64_t left = (int64_t)q->timeout_ms - conn_ms_since(&q->asked);
	if (fresh) {
		char msg[96];
		snprintf(msg, sizeof msg,
			 "waiting up to %u ms for agentsafe approve",
			 q->timeout_ms);
		record(srv, q, "asked", NULL, NULL, -1,
		       egress_reason_name(EGRESS_REASON_NOT_ALLOWED), msg);
		notify_line(srv, q);
	}
	pthread_mutex_unlock(&h->lock);
	conn_set_state(c, CS_APPROVAL);
	conn_arm_timer(c, left > 0 ? (unsigned)left : 0);
	return 0;
}

/* Unlink c from its question; the last waiter takes the question along.
 * Called locked. */
static void forget_locked(struct approval_hub *h, struct conn *c)
{
	struct question *q = c->aq;
	if (q == NULL)
		return;
	c->aq = NULL;
	for (struct waiter **pw = &q->waiters; *pw != NULL; pw = &(*pw)->next) {
		if ((*pw)->c == c) {
			struct waiter *dead = *pw;
			*pw = dead->next;
			free(dead);
			break;
		}
	}
	if (q->waiters != NULL)
		return;
	for (struct question **pq = &h->qs; *pq != NULL; pq = &(*pq)->next) {
		if (*pq == q) {
			*pq = q->next;
			break;
		}
	}
	free(q);
}

void approval_forget(struct conn *c)
{
	struct approval_hub *h = c->w->srv->approval;
	if (h != NULL) {
		pthread_mutex_lock(&h->lock);
		forget_locked(h, c);
		pthread_mutex_unlock(&h->lock);
	}
	if (c->approval_ev != NULL) {
		event_free(c->approval_ev);
		c->approval_ev = NULL;
	}
}

void approval_timeout(struct conn *c)
{
	struct approval_hub *h = c->w->srv->approval;
	char msg[128];
	snprintf(msg, sizeof msg, "nobody answered within %u ms",
		 c->limits.approval_timeout_ms);
	pthread_mutex_lock(&h->lock);
	struct question *q = c->aq;
	if (q != NULL && !q->timed_out) {
		/* The question ends with its first waiter's deadline: later
		 * requests for the host ask again. */
		q->timed_out = true;
		record(c->w->srv, q, "timeout", NULL, NULL, -1,
		       egress_reason_name(EGRESS_REASON_APPROVAL_TIMEOUT), msg);
	}
	forget_locked(h, c);
	pthread_mutex_unlock(&h->lock);
	conn_refuse(c, "deny", 403,
		    egress_reason_name(EGRESS_REASON_APPROVAL_TIMEOUT), msg);
}

/* ---- the socket side (one worker's loop) ---- */

enum answer { ANS_ONCE, ANS_SESSION, ANS_ALWAYS, ANS_DENY };

static const char *const answer_names[] = {"once", "session", "always", "deny"};

/* Release every waiter of host:port with `a`. Returns how many. Called
 * locked. */
static size_t answer_locked(struct approval_hub *h, const char *host,
			    uint16_t port, enum answer a, uid_t by)
{
	size_t n = 0;
	struct question **pq = &h->qs;
	while (*pq != NULL) {
		struct question *q = *pq;
		if (q->port != port || strcmp(q->host, host) != 0 ||
		    q->timed_out) {
			pq = &q->next;
			continue;
		}
		record(h->srv, q, "answered", a == ANS_DENY ? "deny" : "allow",
		       a == ANS_DENY ? NULL : answer_names[a], (int64_t)by,
		       NULL, NULL);
		while (q->waiters != NULL) {
			struct waiter *wt = q->waiters;
			q->waiters = wt->next;
			wt->c->aq = NULL;
			wt->c->approval_answer = a == ANS_DENY ? -1 : 1;
			event_active(wt->c->approval_ev, 0, 0);
			free(wt);
			n++;
		}
		*pq = q->next;
		free(q);
	}
	return n;
}

static int add_grant_locked(struct approval_hub *h, const char *host,
			    uint16_t port)
{
	if (granted_locked(h, host, port))
		return 0;
	struct grant *g = calloc(1, sizeof *g);
	if (g == NULL)
		return -ENOMEM;
	snprintf(g->host, sizeof g->host, "%s", host);
	g->port = port;
	g->next = h->grants;
	h->grants = g;
	return 0;
}

static json_t *list_json(struct approval_hub *h)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&h->lock);
	for (struct question *q = h->qs; arr != NULL && q != NULL;
	     q = q->next) {
		if (q->timed_out)
			continue;
		size_t nw = 0;
		for (struct waiter *w = q->waiters; w != NULL; w = w->next)
			nw++;
		int64_t age = conn_ms_since(&q->asked);
		(void)json_array_append_new(
		    arr, json_pack("{s:s,s:i,s:s,s:s,s:I,s:I,s:I}", "host",
				   q->host, "port", (int)q->port, "method",
				   q->method, "client", q->client, "waiting",
				   (json_int_t)nw, "age_ms", (json_int_t)age,
				   "timeout_ms", (json_int_t)q->timeout_ms));
	}
	pthread_mutex_unlock(&h->lock);
	return json_pack("{s:b,s:s,s:s,s:o*}", "ok", 1, "session",
			 h->srv->cfg.session, "policy", h->srv->cfg.policy_path,
			 "pending", arr);
}

static json_t *reply_err(const char *msg)
{
	return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}

static json_t *do_answer(struct approval_hub *h, json_t *req, uid_t by)
{
	const char *host = NULL, *dec = NULL;
	json_int_t port = 443;
	if (json_unpack(req, "{s:s,s?I,s:s}", "host", &host, "port", &port,
			"decision", &dec) != 0)
		return reply_err("answer needs host, decision and port");
	char norm[POLICY_HOST_MAX + 1], err[POLICY_ERR_MAX];
	if (policy_host_normalize(host, strlen(host), norm, sizeof norm, err,
				  sizeof err) != 0 ||
	    port < 1 || port > 65535)
		return reply_err("bad host or port");
	int a = -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(dec, answer_names[i]) == 0)
			a = i;
	if (a < 0)
		return reply_err(
		    "decision must be once, session, always or deny");
	pthread_mutex_lock(&h->lock);
	int rc = 0;
	if (a == ANS_SESSION || a == ANS_ALWAYS)
		rc = add_grant_locked(h, norm, (uint16_t)port);
	size_t n =
	    rc == 0 ? answer_locked(h, norm, (uint16_t)port, (enum answer)a, by)
		    : 0;
	pthread_mutex_unlock(&h->lock);
	if (rc != 0)
		return reply_err("out of memory");
	if (n == 0 && (a == ANS_ONCE || a == ANS_DENY))
		return reply_err("nothing is waiting for that host and port");
	if (a == ANS_ALWAYS) {
		/* The user's tool wrote and checked the rule; take it in. */
		struct question q;
		memset(&q, 0, sizeof q);
		snprintf(q.host, sizeof q.host, "%s", norm);
		q.port = (uint16_t)port;
		egress_log_next_id(h->srv->log, q.id, sizeof q.id);
		int lr = proxy_reload(h->srv);
		record(h->srv, &q, "reloaded", NULL, "always", (int64_t)by,
		       lr == 0
			   ? NULL
			   : egress_reason_name(EGRESS_REASON_RELOAD_FAILED),
		       lr == 0 ? "policy reloaded after agentsafe approve "
				 "--always"
			       : "policy reload failed; approved for the "
				 "session only");
	}
	return json_pack("{s:b,s:I}", "ok", 1, "answered", (json_int_t)n);
}

struct client {
	struct client *prev, *next; /* on the socket's loop only */
	struct approval_hub *h;
	struct bufferevent *bev;
	uid_t uid;
};

static void client_close(struct bufferevent *bev, struct client *cl)
{
	bufferevent_free(bev);
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		cl->h->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	free(cl);
}

static void send_json(struct bufferevent *bev, json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	if (s != NULL) {
		bufferevent_write(bev, s, strlen(s));
		bufferevent_write(bev, "\n", 1);
	}
	free(s);
	json_decref(j);
}

static void client_read(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		json_error_t je;
		json_t *req = json_loadb(line, len, 0, &je);
		free(line);
		const char *op = NULL;
		if (req == NULL || json_unpack(req, "{s:s}", "op", &op) != 0)
			send_json(bev, reply_err("expected {\"op\": ...}"));
		else if (strcmp(op, "list") == 0)
			send_json(bev, list_json(cl->h));
		else if (strcmp(op, "answer") == 0)
			send_json(bev, do_answer(cl->h, req, cl->uid));
		else
			send_json(bev, reply_err("op must be list or answer"));
		json_decref(req);
	}
	if (evbuffer_get_length(in) > LINE_MAX_BYTES)
		client_close(bev, cl);
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_close(bev, arg);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct approval_hub *h = arg;
	(void)sa;
	(void)salen;
	struct ucred cr;
	socklen_t cl_len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl_len) != 0 ||
	    !approval_peer_ok(cr.uid, h->owner)) {
		static const char no[] =
		    "{\"ok\":false,\"error\":\"permission denied: not the "
		    "session's user\"}\n";
		(void)!send(fd, no, sizeof no - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		fprintf(stderr,
			PROXY_PREFIX "approval socket: refused uid %ld\n",
			cl_len == sizeof cr ? (long)cr.uid : -1L);
		close(fd);
		return;
	}
	struct client *cl = calloc(1, sizeof *cl);
	struct bufferevent *bev = bufferevent_socket_new(
	    evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	if (cl == NULL || bev == NULL) {
		free(cl);
		if (bev != NULL)
			bufferevent_free(bev);
		else
			close(fd);
		return;
	}
	cl->h = h;
	cl->bev = bev;
	cl->uid = cr.uid;
	cl->next = h->clients;
	if (h->clients != NULL)
		h->clients->prev = cl;
	h->clients = cl;
	bufferevent_setcb(bev, client_read, NULL, client_event, cl);
	bufferevent_setwatermark(bev, EV_READ, 0, LINE_MAX_BYTES + 1);
	bufferevent_enable(bev, EV_READ);
}

static int bind_socket(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "approval socket path too long: %s",
			 path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path); /* a previous run's */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	/* Created 0600 from the start: no window where others may connect. */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, 16) != 0) {
		int e = errno;
		snprintf(err, errlen, "approval socket %s: %s", path,
			 strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

int approval_start(struct proxy_server *srv, struct worker *w, const char *path,
		   uid_t owner, char *err, size_t errlen)
{
	struct approval_hub *h = calloc(1, sizeof *h);
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->srv = srv;
	h->owner = owner;
	snprintf(h->path, sizeof h->path, "%s", path);
	int fd = bind_socket(path, err, errlen);
	if (fd < 0) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return fd;
	}
	h->lst = evconnlistener_new(
	    w->base, accept_cb, h,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (h->lst == NULL) {
		close(fd);
		unlink(path);
		pthread_mutex_destroy(&h->lock);
		free(h);
		snprintf(err, errlen, "cannot watch the approval socket");
		return -ENOMEM;
	}
	srv->approval = h;
	return 0;
}

void approval_stop(struct proxy_server *srv)
{
	struct approval_hub *h = srv->approval;
	if (h == NULL)
		return;
	if (h->lst != NULL)
		evconnlistener_free(h->lst);
	while (h->clients != NULL) {
		struct client *cl = h->clients;
		h->clients = cl->next;
		bufferevent_free(cl->bev);
		free(cl);
	}
	(void)unlink(h->path);
	while (h->grants != NULL) {
		struct grant *g = h->grants;
		h->grants = g->next;
		free(g);
	}
	/* Conns still held are freed after this (worker clean-up); with the
	 * hub gone they only drop their wake event. */
	while (h->qs != NULL) {
		struct question *q = h->qs;
		h->qs = q->next;
		while (q->waiters != NULL) {
			struct waiter *wt = q->waiters;
			q->waiters = wt->next;
			wt->c->aq = NULL;
			free(wt);
		}
		free(q);
	}
	pthread_mutex_destroy(&h->lock);
	free(h);
	srv->approval = NULL;
}
