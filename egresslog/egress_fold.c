/* Denial folding (egress_fold.h): a small table of recent denial keys, each
 * with its window, the records it itemised and the denials it counted. A
 * full table evicts its oldest key, writing that key's count first. */
#include "egress_fold.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FOLD_SLOTS 256 /* ~1 KiB each */

struct fold_slot {
	bool used;
	char client[64]; /* address without the port */
	char host[256];
	char sni[256];
	char reason[48];
	char detail[200]; /* the record's message */
	int port;
	int64_t window_ms; /* when the window opened */
	unsigned itemised;
	uint64_t folded;
};

struct egress_fold {
	pthread_mutex_t lock;
	struct egress_log *log;
	int64_t fake_ms;
	int64_t next_flush_ms;
	struct fold_slot slots[FOLD_SLOTS];
};

static int64_t fold_now(const struct egress_fold *f)
{
	if (f->fake_ms > 0)
		return f->fake_ms;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct egress_fold *egress_fold_new(struct egress_log *log)
{
	struct egress_fold *f = calloc(1, sizeof *f);
	if (f == NULL)
		return NULL;
	f->log = log;
	pthread_mutex_init(&f->lock, NULL);
	return f;
}

/* "addr:port" or "[v6]:port" without the port. */
static void client_addr_only(const char *client, char *out, size_t len)
{
	snprintf(out, len, "%s", client != NULL ? client : "");
	char *colon = strrchr(out, ':');
	if (colon != NULL && (out[0] != '[' || colon[-1] == ']'))
		*colon = '\0';
}

static void copy_field(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src != NULL ? src : "");
}

/* One record for what the slot counted; the slot then starts afresh.
 * Called locked. */
static void write_summary(struct egress_fold *f, struct fold_slot *s)
{
	if (s->folded > 0) {
		char id[48], msg[400];
		struct egress_record r;
		egress_record_init(&r);
		egress_log_next_id(f->log, id, sizeof id);
		snprintf(msg, sizeof msg,
			 "%llu more denials like this one (same client "
			 "address, host, port, SNI, reason and detail) within "
			 "%d s, counted here instead of itemised%s%s",
			 (unsigned long long)s->folded,
			 EGRESS_FOLD_WINDOW_MS / 1000, s->detail[0] ? ": " : "",
			 s->detail);
		r.id = id;
		r.event = "deny";
		r.client = s->client;
		r.host = s->host[0] ? s->host : NULL;
		r.port = s->port;
		r.sni = s->sni[0] ? s->sni : NULL;
		r.reason = s->reason[0] ? s->reason : NULL;
		r.message = msg;
		r.count = (int64_t)s->folded;
		(void)egress_log_write(f->log, &r);
	}
	s->used = false;
}

/* v as copy_field stored it (truncated to len - 1 bytes) equals kept. */
static bool same_field(const char *kept, size_t len, const char *v)
{
	if (v == NULL)
		v = "";
	size_t n = strnlen(v, len - 1);
	return strlen(kept) == n && memcmp(kept, v, n) == 0;
}

static bool slot_matches(const struct fold_slot *s, const char *client,
			 const struct egress_record *r)
{
	return s->used && s->port == r->port &&
	       strcmp(s->client, client) == 0 &&
	       same_field(s->host, sizeof s->host, r->host) &&
	       same_field(s->sni, sizeof s->sni, r->sni) &&
	       same_field(s->reason, sizeof s->reason, r->reason) &&
	       same_field(s->detail, sizeof s->detail, r->message);
}

/* The slot of r's key, opened when absent (evicting the oldest). */
static struct fold_slot *slot_for(struct egress_fold *f, const char *client,
				  const struct egress_record *r, int64_t now)
{
	struct fold_slot *free_slot = NULL, *oldest = NULL;
	for (size_t i = 0; i < FOLD_SLOTS; i++) {
		struct fold_slot *s = &f->slots[i];
		if (slot_matches(s, client, r))
			return s;
		if (!s->used && free_slot == NULL)
			free_slot = s;
		if (s->used &&
		    (oldest == NULL || s->window_ms < oldest->window_ms))
			oldest = s;
	}
	struct fold_slot *s = free_slot;
	if (s == NULL) {
		s = oldest;
		write_summary(f, s);
	}
	memset(s, 0, sizeof *s);
	s->used = true;
	copy_field(s->client, sizeof s->client, client);
	copy_field(s->host, sizeof s->host, r->host);
	copy_field(s->sni, sizeof s->sni, r->sni);
	copy_field(s->reason, sizeof s->reason, r->reason);
	copy_field(s->detail, sizeof s->detail, r->message);
	s->port = r->port;
	s->window_ms = now;
	return s;
}

static void flush_locked(struct egress_fold *f, bool all, int64_t now)
{
	for (size_t i = 0; i < FOLD_SLOTS; i++) {
		struct fold_slot *s = &f->slots[i];
		if (s->used &&
		    (all || now - s->window_ms >= EGRESS_FOLD_WINDOW_MS))
			write_summary(f, s);
	}
	f->next_flush_ms = now + 1000;
}

int egress_fold_write(struct egress_fold *f, const struct egress_record *r)
{
	char client[64];
	client_addr_only(r->client, client, sizeof client);
	pthread_mutex_lock(&f->lock);
	int64_t now = fold_now(f);
	if (now >= f->next_flush_ms)
		flush_locked(f, false, now);
	struct fold_slot *s = slot_for(f, client, r, now);
	bool itemise = s->itemised < EGRESS_FOLD_BUDGET;
	if (itemise)
		s->itemised++;
	else
		s->folded++;
	pthread_mutex_unlock(&f->lock);
	return itemise ? egress_log_write(f->log, r) : 0;
}

void egress_fold_flush(struct egress_fold *f, bool all)
{
	pthread_mutex_lock(&f->lock);
	flush_locked(f, all, fold_now(f));
	pthread_mutex_unlock(&f->lock);
}

void egress_fold_set_time(struct egress_fold *f, int64_t ms)
{
	pthread_mutex_lock(&f->lock);
	f->fake_ms = ms;
	pthread_mutex_unlock(&f->lock);
}

void egress_fold_free(struct egress_fold *f)
{
	if (f == NULL)
		return;
	egress_fold_flush(f, true);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
