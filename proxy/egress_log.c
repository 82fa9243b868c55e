/* egress.log writer: formats one record as a JSON object (jansson) and
 * appends it with a single write(2) on an O_APPEND descriptor, so records
 * from several threads or processes never interleave and a killed process
 * loses nothing it had finished writing. */
#include "egress_log.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct egress_log {
	pthread_mutex_t lock; /* guards fd against a concurrent reopen */
	int fd;
	bool is_stdout;
	char *path;
	char *session;
	uint32_t id_prefix;
	atomic_uint_fast64_t next_id;
};

void egress_record_init(struct egress_record *r)
{
	memset(r, 0, sizeof *r);
	r->bytes_up = -1;
	r->bytes_down = -1;
	r->duration_ms = -1;
}

void egress_format_ts(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
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
	pthread_mutex_init(&log->lock, NULL);
	*out = log;
	return 0;
}

void egress_log_next_id(struct egress_log *log, char *buf, size_t len)
{
	uint64_t n = atomic_fetch_add(&log->next_id, 1);
	snprintf(buf, len, "%08" PRIx32 "-%" PRIu64, log->id_prefix, n);
}

static int set_str(json_t *o, const char *key, const char *v)
{
	if (v == NULL)
		return 0;
	/* Hostile bytes (invalid UTF-8 in a host or SNI) must not drop the
	 * record: jansson rejects them, so fall back to an escaped copy. */
	json_t *s = json_string(v);
	if (s == NULL) {
		size_t n = strlen(v);
		char *safe = malloc(n * 4 + 1);
		if (safe == NULL)
			return -1;
		size_t j = 0;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)v[i];
			if (c >= 0x20 && c < 0x7f) {
				safe[j++] = (char)c;
			} else {
				snprintf(safe + j, 5, "\\x%02x", c);
				j += 4;
			}
		}
		safe[j] = '\0';
		s = json_string(safe);
		free(safe);
		if (s == NULL)
			return -1;
	}
	return json_object_set_new(o, key, s);
}

static int set_int(json_t *o, const char *key, int64_t v)
{
	return json_object_set_new(o, key, json_integer((json_int_t)v));
}

int egress_log_write(struct egress_log *log, const struct egress_record *r)
{
	char ts[40];
	egress_format_ts(ts, sizeof ts);
	json_t *o = json_object();
	if (o == NULL)
		return -ENOMEM;
	int rc = 0;
	rc |= set_str(o, "ts", ts);
	rc |= set_str(o, "session", log->session);
	rc |= set_str(o, "id", r->id);
	rc |= set_str(o, "event", r->event);
	rc |= set_str(o, "client", r->client);
	rc |= set_str(o, "method", r->method);
	rc |= set_str(o, "host", r->host);
	if (r->port > 0)
		rc |= set_int(o, "port", r->port);
	rc |= set_str(o, "sni", r->sni);
	rc |= set_str(o, "ip", r->ip);
	rc |= set_str(o, "rule", r->rule);
	rc |= set_str(o, "reason", r->reason);
	if (r->bytes_up >= 0)
		rc |= set_int(o, "bytes_up", r->bytes_up);
	if (r->bytes_down >= 0)
		rc |= set_int(o, "bytes_down", r->bytes_down);
	if (r->duration_ms >= 0)
		rc |= set_int(o, "duration_ms", r->duration_ms);
	rc |= set_str(o, "proto", r->proto);
	rc |= set_str(o, "dst", r->dst);
	if (r->dport > 0)
		rc |= set_int(o, "dport", r->dport);
	rc |= set_str(o, "message", r->message);
	if (rc != 0) {
		json_decref(o);
		return -ENOMEM;
	}
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (line == NULL)
		return -ENOMEM;
	size_t n = strlen(line);
	line[n] = '\n'; /* replaces the NUL; we pass the length explicitly */

	int ret = 0;
	pthread_mutex_lock(&log->lock);
	size_t off = 0;
	while (off < n + 1) {
		ssize_t w = write(log->fd, line + off, n + 1 - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		off += (size_t)w;
	}
	pthread_mutex_unlock(&log->lock);
	free(line);
	return ret;
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
	int old = log->fd;
	log->fd = fd;
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
