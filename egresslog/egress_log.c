/* egress.log writer: formats one record as a JSON line and appends it with a
 * single write(2) on an O_APPEND descriptor, so records from several threads or
 * processes never interleave and a killed process loses nothing it had finished
 * writing. A full disk neither tears a line nor goes unnoticed: space is kept
 * preallocated ahead of the file, and egress_log_writable() says when records
 * can no longer be relied on to land. */
#include "egress_log.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct egress_log {
	pthread_mutex_t lock; /* guards fd and the reserve */
	int fd;
	bool is_stdout;
	char *path;
	char *session;
	uint32_t id_prefix;
	atomic_uint_fast64_t next_id;
	/* [end, alloc_end) is preallocated; end is the file's size as of our
	 * last look (other processes append too: renewal re-reads it). */
	size_t reserve; /* 0: none (turned off, or the file cannot) */
	int64_t end, alloc_end;
	int64_t probe_ms; /* the last egress_log_writable probe */
	atomic_bool writable;
};

void egress_record_init(struct egress_record *r)
{
	memset(r, 0, sizeof *r);
	r->bytes_up = -1;
	r->bytes_down = -1;
	r->duration_ms = -1;
	r->count = -1;
	r->uid = -1;
}

/* Zero-padded decimal of width w at p; returns the end. */
static char *put_dec(char *p, unsigned long v, int w)
{
	for (int i = w - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + w;
}

void egress_format_ts(char *buf, size_t len)
{
	/* Hot path (two records per tunnel): the date and time up to the
	 * second are formatted once per second per thread. */
	static _Thread_local time_t last_sec = -1;
	static _Thread_local char prefix[24];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != last_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		char *p = prefix;
		p = put_dec(p, (unsigned long)tm.tm_year + 1900, 4);
		*p++ = '-';
		p = put_dec(p, (unsigned long)tm.tm_mon + 1, 2);
		*p++ = '-';
		p = put_dec(p, (unsigned long)tm.tm_mday, 2);
		*p++ = 'T';
		p = put_dec(p, (unsigned long)tm.tm_hour, 2);
		*p++ = ':';
		p = put_dec(p, (unsigned long)tm.tm_min, 2);
		*p++ = ':';
		p = put_dec(p, (unsigned long)tm.tm_sec, 2);
		*p = '\0';
		last_sec = ts.tv_sec;
	}
	char t[32];
	size_t n = strlen(prefix);
	memcpy(t, prefix, n);
	t[n++] = '.';
	put_dec(t + n, (unsigned long)(ts.tv_nsec / 1000000L), 3);
	t[n + 3] = 'Z';
	t[n + 4] = '\0';
	snprintf(buf, len, "%s", t);
}

void egress_format_ts_at(char *buf, size_t len, int64_t us)
{
	time_t sec = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	char t[32];
	char *p = t;
	p = put_dec(p, (unsigned long)tm.tm_year + 1900, 4);
	*p++ = '-';
	p = put_dec(p, (unsigned long)tm.tm_mon + 1, 2);
	*p++ = '-';
	p = put_dec(p, (unsigned long)tm.tm_mday, 2);
	*p++ = 'T';
	p = put_dec(p, (unsigned long)tm.tm_hour, 2);
	*p++ = ':';
	p = put_dec(p, (unsigned long)tm.tm_min, 2);
	*p++ = ':';
	p = put_dec(p, (unsigned long)tm.tm_sec, 2);
	*p++ = '.';
	p = put_dec(p, (unsigned long)((us / 1000) % 1000), 3);
	*p++ = 'Z';
	*p = '\0';
	snprintf(buf, len, "%s", t);
}

static int open_append(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int egress_log_open(const char *path, const char *session,
		    struct egress_log **out, char *err, size_t errlen)
{
	struct egress_log *log = calloc(1, sizeof *log);
	if (log == NULL) {
		snprintf(err, errlen, "out of memory opening log %s", path);
		return -ENOMEM;
	}
	log->is_stdout = strcmp(path, "-") == 0;
	log->path = strdup(path);
	log->session = strdup(session ? session : "");
	if (log->path == NULL || log->session == NULL) {
		egress_log_close(log);
		snprintf(err, errlen, "out of memory opening log %s", path);
		return -ENOMEM;
	}
	if (log->is_stdout) {
		log->fd = STDOUT_FILENO;
	} else {
		log->fd = open_append(path);
		if (log->fd < 0) {
			int e = errno;
			snprintf(err, errlen, "cannot open log %s: %s", path,
				 strerror(e));
			log->fd = -1;
			egress_log_close(log);
			return -e;
		}
	}
	if (getrandom(&log->id_prefix, sizeof log->id_prefix, 0) !=
	    (ssize_t)sizeof log->id_prefix)
		log->id_prefix = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	atomic_init(&log->next_id, 1);
	atomic_init(&log->writable, true);
	log->reserve = log->is_stdout ? 0 : EGRESS_LOG_RESERVE;
	pthread_mutex_init(&log->lock, NULL);
	*out = log;
	return 0;
}

void egress_log_next_id(struct egress_log *log, char *buf, size_t len)
{
	uint64_t n = atomic_fetch_add(&log->next_id, 1);
	snprintf(buf, len, "%08" PRIx32 "-%" PRIu64, log->id_prefix, n);
}

/* Records are formatted here directly rather than built as a jansson
 * object and dumped: the profile of a tunnel setup (bench/RESULTS.md) had
 * ~60 % of the proxy's user-space instructions in building, dumping and
 * freeing two such objects per tunnel. The output is byte for byte what
 * jansson's json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) gave, which
 * tests/unit/egresslog checks against jansson itself. */

/* Strict UTF-8 as jansson checks it: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

struct line {
	char *p;
	size_t n, cap;
};

/* Callers size the buffer first (line_need), so these never overflow. */
static void put(struct line *l, const char *s, size_t n)
{
	memcpy(l->p + l->n, s, n);
	l->n += n;
}

static void put_json_string(struct line *l, const char *v)
{
	static const char hex[] = "0123456789abcdef"; /* \xNN, as before */
	static const char HEX[] = "0123456789ABCDEF"; /* \u00XX, as jansson */
	size_t n = strlen(v);
	const unsigned char *s = (const unsigned char *)v;
	/* Hostile bytes (invalid UTF-8 in a host or SNI) must not drop the
	 * record: such a string is written with every byte outside printable
	 * ASCII as the text \xNN. */
	bool raw_ok = utf8_valid(s, n);
	l->p[l->n++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			l->p[l->n++] = '\\';
			l->p[l->n++] = (char)c;
		} else if (c >= 0x20 && (c < 0x7f || raw_ok)) {
			l->p[l->n++] = (char)c;
		} else if (!raw_ok) {
			put(l, "\\\\x", 3);
			l->p[l->n++] = hex[c >> 4];
			l->p[l->n++] = hex[c & 15];
		} else {
			const char *e = c == '\b'   ? "\\b"
					: c == '\f' ? "\\f"
					: c == '\n' ? "\\n"
					: c == '\r' ? "\\r"
					: c == '\t' ? "\\t"
						    : NULL;
			if (e != NULL) {
				put(l, e, 2);
			} else {
				put(l, "\\u00", 4);
				l->p[l->n++] = HEX[c >> 4];
				l->p[l->n++] = HEX[c & 15];
			}
		}
	}
	l->p[l->n++] = '"';
}

/* ,"key": before a value; no comma before the first field. */
static void put_key(struct line *l, const char *key)
{
	if (l->n > 1)
		l->p[l->n++] = ',';
	l->p[l->n++] = '"';
	put(l, key, strlen(key));
	put(l, "\":", 2);
}

static void field_str(struct line *l, const char *key, const char *v)
{
	if (v == NULL)
		return;
	put_key(l, key);
	put_json_string(l, v);
}

static void field_int(struct line *l, const char *key, int64_t v)
{
	/* Callers write only v >= 0 (absent is negative). */
	char num[24];
	size_t k = sizeof num;
	uint64_t u = v < 0 ? 0 : (uint64_t)v;
	do {
		num[--k] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	put_key(l, key);
	put(l, num + k, sizeof num - k);
}

/* Worst case of a string field: key, quotes, comma, and 5 bytes of text
 * per input byte (\u00XX is 6 for 1; \\xNN is 5 for 1). */
static size_t str_need(const char *v)
{
	return v == NULL ? 0 : 6 * strlen(v) + 32;
}

static size_t line_need(const struct egress_log *log,
			const struct egress_record *r, const char *ts)
{
	const char *const strs[] = {
	    ts,	       log->session, r->id,    r->event,   r->client,
	    r->method, r->host,	     r->sni,   r->ip,	   r->rule,
	    r->reason, r->proto,     r->dst,   r->message, r->origin,
	    r->step,   r->decision,  r->scope, r->path,	   r->credential,
	    r->op,     r->repo,	     r->ref,   r->old_id,  r->new_id,
	    r->result};
	/* braces, newline, the nine numbers, would_deny */
	size_t need = 8 + 9 * 48 + 24;
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		need += str_need(strs[i]);
	return need;
}

/* Keeps log->reserve bytes preallocated past the end of the file, renewed
 * when half is used. False when it cannot be renewed (the disk is full) and
 * less than a quarter is left: records still land for a while, but the
 * caller should stop taking on what it must record. Called locked. */
static bool reserve_renew(struct egress_log *log, size_t need)
{
	if (log->reserve == 0)
		return true;
	int64_t half = (int64_t)(log->reserve / 2);
	if (log->alloc_end - log->end - (int64_t)need >= half)
		return true;
	struct stat st;
	if (fstat(log->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log->reserve = 0; /* a pipe or a terminal: nothing to keep */
		return true;
	}
	log->end = st.st_size;
	if (fallocate(log->fd, FALLOC_FL_KEEP_SIZE, st.st_size,
		      (off_t)log->reserve) == 0) {
		log->alloc_end = st.st_size + (int64_t)log->reserve;
		return true;
	}
	if (errno == EOPNOTSUPP || errno == ENOSYS) {
		log->reserve = 0; /* the filesystem cannot preallocate */
		return true;
	}
	return log->alloc_end - log->end - (int64_t)need >= half / 2;
}

/* Writes the whole line, or leaves the file as it was: a write cut short
 * (ENOSPC after part of the line) is truncated back to where the line
 * began, unless another writer appended after it meanwhile. Called locked. */
static int append_line(struct egress_log *log, const char *line, size_t len)
{
	size_t off = 0;
	int ret = 0;
	while (off < len) {
		ssize_t w = write(log->fd, line + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ret = w < 0 ? -errno : -ENOSPC;
			break;
		}
		off += (size_t)w;
	}
	if (ret == 0) {
		log->end += (int64_t)len;
		return 0;
	}
	if (off > 0 && !log->is_stdout) {
		off_t at = lseek(log->fd, 0, SEEK_CUR); /* O_APPEND: our end */
		struct stat st;
		if (at >= (off_t)off && fstat(log->fd, &st) == 0 &&
		    st.st_size == at &&
		    ftruncate(log->fd, at - (off_t)off) == 0) {
			/* Truncating also freed what was preallocated. */
			log->end = (int64_t)(at - (off_t)off);
			log->alloc_end = 0;
		}
	}
	return ret;
}

int egress_log_write(struct egress_log *log, const struct egress_record *r)
{
	char ts[40];
	if (r->time_us > 0)
		egress_format_ts_at(ts, sizeof ts, r->time_us);
	else
		egress_format_ts(ts, sizeof ts);
	char stackbuf[2048];
	struct line l = {stackbuf, 0, sizeof stackbuf};
	size_t need = line_need(log, r, ts);
	char *heap = NULL;
	if (need > l.cap) {
		heap = malloc(need);
		if (heap == NULL)
			return -ENOMEM;
		l.p = heap;
		l.cap = need;
	}
	l.p[l.n++] = '{';
	field_str(&l, "ts", ts);
	field_str(&l, "session", log->session);
	field_str(&l, "id", r->id);
	field_str(&l, "event", r->event);
	field_str(&l, "client", r->client);
	field_str(&l, "method", r->method);
	field_str(&l, "host", r->host);
	if (r->port > 0)
		field_int(&l, "port", r->port);
	field_str(&l, "path", r->path);
	if (r->status > 0)
		field_int(&l, "status", r->status);
	field_str(&l, "sni", r->sni);
	field_str(&l, "ip", r->ip);
	field_str(&l, "rule", r->rule);
	field_str(&l, "credential", r->credential);
	field_str(&l, "reason", r->reason);
	if (r->bytes_up >= 0)
		field_int(&l, "bytes_up", r->bytes_up);
	if (r->bytes_down >= 0)
		field_int(&l, "bytes_down", r->bytes_down);
	if (r->duration_ms >= 0)
		field_int(&l, "duration_ms", r->duration_ms);
	field_str(&l, "proto", r->proto);
	field_str(&l, "dst", r->dst);
	if (r->dport > 0)
		field_int(&l, "dport", r->dport);
	field_str(&l, "message", r->message);
	if (r->count >= 0)
		field_int(&l, "count", r->count);
	field_str(&l, "origin", r->origin);
	field_str(&l, "step", r->step);
	field_str(&l, "decision", r->decision);
	field_str(&l, "scope", r->scope);
	if (r->uid >= 0)
		field_int(&l, "uid", r->uid);
	if (r->would_deny) {
		put_key(&l, "would_deny");
		put(&l, "true", 4);
	}
	field_str(&l, "op", r->op);
	field_str(&l, "repo", r->repo);
	field_str(&l, "ref", r->ref);
	field_str(&l, "old", r->old_id);
	field_str(&l, "new", r->new_id);
	field_str(&l, "result", r->result);
	l.p[l.n++] = '}';
	l.p[l.n++] = '\n';
	pthread_mutex_lock(&log->lock);
	bool reserve_ok = reserve_renew(log, l.n);
	int ret = append_line(log, l.p, l.n);
	atomic_store(&log->writable, ret == 0 && reserve_ok);
	pthread_mutex_unlock(&log->lock);
	free(heap);
	return ret;
}

/* While unwritable, callers refuse, and their refusals may all be folded
 * (egress_fold.h) so that no write would ever notice space coming back:
 * this probes for it instead, at most every PROBE_MS, by preallocating. */
#define PROBE_MS 50
bool egress_log_writable(struct egress_log *log)
{
	if (atomic_load(&log->writable))
		return true;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_lock(&log->lock);
	if (now - log->probe_ms >= PROBE_MS) {
		log->probe_ms = now;
		size_t len = log->reserve > 0 ? log->reserve : 4096;
		struct stat st;
		if (fstat(log->fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    fallocate(log->fd, FALLOC_FL_KEEP_SIZE, st.st_size,
			      (off_t)len) == 0) {
			log->end = st.st_size;
			if (log->reserve > 0)
				log->alloc_end = st.st_size + (int64_t)len;
			atomic_store(&log->writable, true);
		}
	}
	pthread_mutex_unlock(&log->lock);
	return atomic_load(&log->writable);
}

void egress_log_set_reserve(struct egress_log *log, size_t bytes)
{
	pthread_mutex_lock(&log->lock);
	log->reserve = log->is_stdout ? 0 : bytes;
	pthread_mutex_unlock(&log->lock);
}

int egress_log_reopen(struct egress_log *log, char *err, size_t errlen)
{
	if (log->is_stdout)
		return 0;
	int fd = open_append(log->path);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen,
			 "cannot reopen log %s: %s (keeping the old file)",
			 log->path, strerror(e));
		return -e;
	}
	pthread_mutex_lock(&log->lock);
	/* On a full disk the new file could get no reserve: the old one
	 * (renamed, still ours) keeps its reserve and takes the records. */
	struct stat st;
	if (log->reserve > 0 && fstat(fd, &st) == 0 &&
	    fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size,
		      (off_t)log->reserve) != 0 &&
	    (errno == ENOSPC || errno == EDQUOT)) {
		pthread_mutex_unlock(&log->lock);
		close(fd);
		snprintf(err, errlen,
			 "cannot reopen log %s: no room for its reserve "
			 "(keeping the old file)",
			 log->path);
		return -ENOSPC;
	}
	int old = log->fd;
	log->fd = fd;
	log->end = log->alloc_end = 0; /* a new file: renew on next write */
	pthread_mutex_unlock(&log->lock);
	close(old);
	return 0;
}

void egress_log_close(struct egress_log *log)
{
	if (log == NULL)
		return;
	if (log->fd >= 0 && !log->is_stdout) {
		close(log->fd);
		pthread_mutex_destroy(&log->lock);
	}
	free(log->path);
	free(log->session);
	free(log);
}
