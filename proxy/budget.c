/* Upload budgets per host and session: one counter per host, shared by
 * every worker under one mutex, reserved before bytes go upstream so that
 * concurrent tunnels cannot pass the budget together. Passing it closes
 * the host's open tunnels on every worker (each closes its own). */
#include "budget.h"

#include "proxy_int.h"

#include "approval.h"
#include "inspect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct budget_host {
	struct budget_host *next;
	uint64_t limit, used;
	bool warned, exceeded;
	char host[POLICY_HOST_MAX + 1];
};

struct budget_table {
	pthread_mutex_t lock;
	struct budget_host *hosts;
	struct event **wake; /* per worker: close tunnels over budget */
	unsigned nwake;
};

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	struct conn *c = w->conns;
	while (c != NULL) {
		struct conn *next = c->next;
		if (budget_exceeded(c->budget) &&
		    (c->state == CS_RELAY || c->state == CS_FWD))
			conn_finish_request(
			    c, egress_reason_name(
				   EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED));
		else if (budget_exceeded(c->budget) && c->state == CS_INSPECT)
			inspect_budget_close(c);
		c = next;
	}
}

int budget_start(struct proxy_server *srv, char *err, size_t errlen)
{
	struct budget_table *t = calloc(1, sizeof *t);
	if (t != NULL)
		t->wake = calloc(srv->nworkers, sizeof(struct event *));
	if (t == NULL || t->wake == NULL) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	srv->budgets = t;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		t->wake[i] = event_new(srv->workers[i].base, -1, 0, sweep_cb,
				       &srv->workers[i]);
		if (t->wake[i] == NULL) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		t->nwake = i + 1;
	}
	return 0;
}

void budget_stop(struct proxy_server *srv)
{
	struct budget_table *t = srv->budgets;
	if (t == NULL)
		return;
	for (unsigned i = 0; i < t->nwake; i++)
		event_free(t->wake[i]);
	free(t->wake);
	while (t->hosts != NULL) {
		struct budget_host *b = t->hosts;
		t->hosts = b->next;
		free(b);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
	srv->budgets = NULL;
}

struct budget_host *budget_get(struct proxy_server *srv, const char *host,
			       uint64_t limit)
{
	struct budget_table *t = srv->budgets;
	if (t == NULL || host[0] == '\0' || limit == POLICY_BUDGET_UNLIMITED)
		return NULL;
	pthread_mutex_lock(&t->lock);
	struct budget_host *b = t->hosts;
	while (b != NULL && strcmp(b->host, host) != 0)
		b = b->next;
	if (b == NULL) {
		b = calloc(1, sizeof *b);
		if (b != NULL) {
			snprintf(b->host, sizeof b->host, "%s", host);
			b->next = t->hosts;
			t->hosts = b;
		}
	}
	if (b != NULL)
		b->limit = limit; /* a reload may have changed it */
	pthread_mutex_unlock(&t->lock);
	/* Out of memory: this request is refused, never uncounted. */
	return b;
}

bool budget_exceeded(const struct budget_host *b)
{
	return b != NULL && __atomic_load_n(&b->exceeded, __ATOMIC_ACQUIRE);
}

static void warn_half(struct conn *c, const struct budget_host *b,
		      uint64_t used, uint64_t limit)
{
	struct proxy_server *srv = c->w->srv;
	char msg[POLICY_HOST_MAX + 120];
	snprintf(msg, sizeof msg,
		 "upload to %s passed half of its budget: %llu of %llu bytes",
		 b->host, (unsigned long long)used, (unsigned long long)limit);
	struct egress_record r;
	char id[48];
	egress_log_next_id(srv->log, id, sizeof id);
	egress_record_init(&r);
	r.id = id;
	r.event = "warning";
	r.host = b->host;
	r.bytes_up = (int64_t)used;
	r.message = msg;
	(void)egress_log_write(srv->log, &r);
	fprintf(stderr, PROXY_PREFIX "%s\n", msg);
	approval_notify(srv, msg);
}

size_t budget_reserve(struct conn *c, size_t want)
{
	struct budget_host *b = c->budget;
	struct budget_table *t = c->w->srv->budgets;
	if (b == NULL || t == NULL)
		return want;
	pthread_mutex_lock(&t->lock);
	uint64_t left =
	    b->used < b->limit && !b->exceeded ? b->limit - b->used : 0;
	size_t got = (uint64_t)want < left ? want : (size_t)left;
	b->used += got;
	bool warn = !b->warned && b->used > b->limit / 2;
	if (warn)
		b->warned = true;
	uint64_t used = b->used, limit = b->limit;
	pthread_mutex_unlock(&t->lock);
	if (warn)
		warn_half(c, b, used, limit);
	return got;
}

void budget_refund(struct conn *c, size_t n)
{
	struct budget_host *b = c->budget;
	struct budget_table *t = c->w->srv->budgets;
	if (b == NULL || t == NULL || n == 0)
		return;
	pthread_mutex_lock(&t->lock);
	b->used = b->used > n ? b->used - n : 0;
	pthread_mutex_unlock(&t->lock);
}

void budget_trip(struct conn *c)
{
	struct budget_host *b = c->budget;
	struct budget_table *t = c->w->srv->budgets;
	if (b == NULL || t == NULL)
		return;
	if (__atomic_exchange_n(&b->exceeded, true, __ATOMIC_ACQ_REL))
		return;
	for (unsigned i = 0; i < t->nwake; i++)
		event_active(t->wake[i], 0, 0);
}

bool budget_charge(struct conn *c, size_t n)
{
	size_t got = budget_reserve(c, n);
	if (got == n)
		return true;
	budget_refund(c, got);
	budget_trip(c);
	return false;
}
