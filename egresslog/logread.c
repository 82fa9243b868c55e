/* egress.log reader: bounded line reading, JSON decoding (jansson), and a
 * strict check of every field's name and type so that a total printed by
 * `agentsafe log --summary` is never silently wrong. */
#include "logread.h"

#include <errno.h>
#include <stdio.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct field {
	const char *name;
	bool is_int;
	bool is_bool;	/* a JSON true/false (would_deny); else a string */
	size_t str_off; /* offsetof into struct logrec for strings */
	size_t int_off; /* offsetof for integers */
};

#define S(n)                                                                   \
	{                                                                      \
#n, false, false, offsetof(struct logrec, n), 0                \
	}
#define I(n)                                                                   \
	{                                                                      \
#n, true, false, 0, offsetof(struct logrec, n)                 \
	}
#define B(n)                                                                   \
	{                                                                      \
#n, false, true, 0, offsetof(struct logrec, n)                 \
	}
static const struct field fields[] = {
    S(ts),	   S(session),	S(id),	       S(event),       S(client),
    S(method),	   S(host),	S(sni),	       S(ip),	       S(rule),
    S(reason),	   S(proto),	S(dst),	       S(message),     I(port),
    I(dport),	   I(bytes_up), I(bytes_down), I(duration_ms), I(count),
    S(origin),	   S(step),	S(decision),   S(scope),       I(uid),
    B(would_deny), S(path),	S(credential), I(status),      S(op),
    S(repo),	   S(ref),	S(old),	       S(new),	       S(result),
};
#undef S
#undef I
#undef B

static const char *const events[] = {"open",	"close",   "deny",
				     "error",	"drop",	   "approval",
				     "warning", "request", "git"};

int logread_open(struct logread *r, const char *path, bool follow, char *err,
		 size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->path = path;
	r->follow = follow;
	if (strcmp(path, "-") == 0) {
		r->f = stdin;
		r->path = "(stdin)";
	} else {
		r->f = fopen(path, "r");
		if (r->f == NULL) {
			snprintf(err, errlen, "cannot open %s: %s", path,
				 strerror(errno));
			return -errno;
		}
	}
	r->cap = 4096;
	r->buf = malloc(r->cap);
	if (r->buf == NULL) {
		snprintf(err, errlen, "out of memory reading %s", path);
		logread_close(r);
		return -ENOMEM;
	}
	return 0;
}

void logread_close(struct logread *r)
{
	if (r->f != NULL && r->f != stdin)
		(void)fclose(r->f); /* read-only stream */
	r->f = NULL;
	free(r->buf);
	r->buf = NULL;
}

void logrec_clear(struct logrec *rec)
{
	json_decref(rec->obj);
	memset(rec, 0, sizeof *rec);
}

/* One character of s as it may be shown: its own bytes, or an escape.
 * Sets *used to the bytes of s consumed and returns the length of out. */
static size_t escape_one(const unsigned char *s, size_t *used, char out[8])
{
	unsigned c = s[0];
	if (c >= 0x20 && c < 0x7f) {
		*used = 1;
		if (c == '\\') {
			out[0] = '\\';
			out[1] = '\\';
			return 2;
		}
		out[0] = (char)c;
		return 1;
	}
	/* the length of a well-formed UTF-8 sequence (RFC 3629), or 0 */
	size_t n = 0;
	unsigned cp = 0;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0fu;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07u;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			n = 0; /* also stops at the terminating NUL */
			break;
		}
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
		n = 0; /* overlong, or a surrogate */
	if (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
		n = 0;
	if (n == 0) { /* a control byte, DEL, or not UTF-8 */
		*used = 1;
		return (size_t)snprintf(out, 8, "\\x%02x", c);
	}
	*used = n;
	if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x61c || cp == 0x200e ||
	    cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069))
		return (size_t)snprintf(out, 8, "\\u%04x", cp);
	memcpy(out, s, n);
	return n;
}

size_t logread_escape(const char *s, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t need = 0, at = 0;
	bool full = false;
	while (*p != '\0') {
		char one[8];
		size_t used, n = escape_one(p, &used, one);
		p += used;
		need += n;
		if (!full && at + n < len) {
			memcpy(buf + at, one, n);
			at += n;
		} else {
			full = true; /* never a later, shorter piece */
		}
	}
	if (len > 0)
		buf[at] = '\0';
	return need;
}

void logread_fputs_escaped(const char *s, FILE *out)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	while (*p != '\0') {
		const unsigned char *run = p;
		while (*p >= 0x20 && *p < 0x7f && *p != '\\')
			p++; /* the common case: plain ASCII, written as is */
		if (p > run)
			(void)fwrite(run, 1, (size_t)(p - run), out);
		if (*p == '\0')
			break;
		char one[8];
		size_t used, n = escape_one(p, &used, one);
		(void)fwrite(one, 1, n, out);
		p += used;
	}
}

static void warn(struct logread *r, unsigned long line, const char *what)
{
	r->skipped++;
	if (r->quiet)
		return;
	/* what may quote the line (jansson's "near '...'", a field name) */
	(void)fputs("agentsafe log: ", stderr);
	logread_fputs_escaped(r->path, stderr);
	fprintf(stderr, ":%lu: ", line);
	logread_fputs_escaped(what, stderr);
	(void)fputs("; skipped\n", stderr);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy =
	    (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int64_t logread_parse_ts(const char *s)
{
	/* YYYY-MM-DDTHH:MM:SS[.fff]Z */
	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
	    s[16] != ':')
		return -1;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	int h = digits(s + 11, 2), mi = digits(s + 14, 2),
	    se = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 ||
	    mi < 0 || mi > 59 || se < 0 || se > 60)
		return -1;
	const char *p = s + 19;
	int ms = 0;
	if (*p == '.') {
		p++;
		int n = 0;
		while (*p >= '0' && *p <= '9') {
			if (n < 3)
				ms = ms * 10 + (*p - '0');
			n++;
			p++;
		}
		if (n == 0)
			return -1;
		for (; n < 3; n++)
			ms *= 10;
	}
	if (!((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') &&
	    strcmp(p, "+00:00") != 0)
		return -1;
	int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
	return ((days * 86400LL + h * 3600LL + mi * 60LL + se) * 1000LL) + ms;
}

int64_t logread_parse_when(const char *s, int64_t now_ms)
{
	char *end;
	errno = 0;
	long long n = strtoll(s, &end, 10);
	if (end != s && errno == 0 && n >= 0 && end[0] != '\0' &&
	    end[1] == '\0') {
		int64_t unit;
		switch (end[0]) {
		case 's':
			unit = 1000;
			break;
		case 'm':
			unit = 60LL * 1000;
			break;
		case 'h':
			unit = 3600LL * 1000;
			break;
		case 'd':
			unit = 86400LL * 1000;
			break;
		default:
			return -1;
		}
		if (n > INT64_MAX / unit)
			return -1;
		return now_ms - n * unit;
	}
	return logread_parse_ts(s);
}

bool logrec_is_denied(const struct logrec *rec)
{
	return strcmp(rec->event, "deny") == 0 ||
	       strcmp(rec->event, "drop") == 0;
}

bool logrec_has_origin(const struct logrec *rec)
{
	return rec->origin != NULL;
}

/* Validate and index one decoded object. Returns NULL or a problem. */
static const char *index_record(struct logrec *rec)
{
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		if (fields[i].is_int)
			*(long long *)((char *)rec + fields[i].int_off) = -1;
	}
	static char why[160];
	const char *key;
	json_t *v;
	json_object_foreach(rec->obj, key, v)
	{
		const struct field *f = NULL;
		for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
			if (fields[i].name[0] == key[0] &&
			    strcmp(fields[i].name, key) == 0) {
				f = &fields[i];
				break;
			}
		}
		if (f == NULL) {
			snprintf(
			    why, sizeof why,
			    "unknown field \"%.60s\" (a newer log format?)",
			    key);
			return why;
		}
		if (f->is_bool) {
			if (!json_is_boolean(v)) {
				snprintf(why, sizeof why,
					 "field \"%s\" is not true or false",
					 key);
				return why;
			}
			*(bool *)((char *)rec + f->int_off) = json_is_true(v);
		} else if (f->is_int) {
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				snprintf(why, sizeof why,
					 "field \"%s\" is not a non-negative "
					 "integer",
					 key);
				return why;
			}
			*(long long *)((char *)rec + f->int_off) =
			    (long long)json_integer_value(v);
		} else {
			if (!json_is_string(v)) {
				snprintf(why, sizeof why,
					 "field \"%s\" is not a string", key);
				return why;
			}
			*(const char **)((char *)rec + f->str_off) =
			    json_string_value(v);
		}
	}
	if (rec->ts == NULL || rec->event == NULL)
		return "record without ts or event";
	rec->ts_ms = logread_parse_ts(rec->ts);
	if (rec->ts_ms < 0)
		return "malformed ts";
	/* A code this version does not know is kept as text, not refused:
	 * a newer writer may have added it. */
	enum egress_reason code;
	rec->reason_code =
	    egress_reason_lookup(rec->reason, &code) == 0 ? (int)code : -1;
	for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
		if (strcmp(rec->event, events[i]) == 0)
			return NULL;
	snprintf(why, sizeof why, "unknown event \"%.40s\"", rec->event);
	return why;
}

/* Refill the block buffer; returns bytes now available, 0 at EOF, -1 on
 * error. Reading in blocks and scanning with memchr keeps the per-byte
 * cost off the hot path of a million-record summary. */
static ssize_t refill(struct logread *r)
{
	if (r->io_pos < r->io_len)
		return (ssize_t)(r->io_len - r->io_pos);
	size_t got = fread(r->io, 1, sizeof r->io, r->f);
	if (got == 0) {
		if (ferror(r->f))
			return -1;
		clearerr(r->f); /* so --follow can read what comes later */
	}
	r->io_pos = 0;
	r->io_len = got;
	return (ssize_t)got;
}

/* Read one line into r->buf. 1: a complete line; 0: EOF (possibly after a
 * partial line, left in r->buf/r->len); -1: error. Over-long lines are
 * consumed and reported; NUL bytes are kept so the decoder rejects them. */
static int read_line(struct logread *r, bool *too_long)
{
	*too_long = r->len > LOGREAD_LINE_MAX;
	for (;;) {
		ssize_t avail = refill(r);
		if (avail < 0)
			return -1;
		if (avail == 0)
			return 0;
		const char *p = r->io + r->io_pos;
		const char *nl = memchr(p, '\n', (size_t)avail);
		size_t take = nl ? (size_t)(nl - p) : (size_t)avail;
		r->io_pos += take + (nl ? 1 : 0);
		if (r->len + take > LOGREAD_LINE_MAX) {
			*too_long = true;
			r->len =
			    LOGREAD_LINE_MAX + 1; /* remember across calls */
		} else {
			if (r->len + take + 1 > r->cap) {
				size_t cap = r->cap;
				while (cap < r->len + take + 1)
					cap *= 2;
				char *n = realloc(r->buf, cap);
				if (n == NULL)
					return -1;
				r->buf = n;
				r->cap = cap;
			}
			memcpy(r->buf + r->len, p, take);
			r->len += take;
		}
		if (nl != NULL)
			return 1;
	}
}

int logread_next(struct logread *r, struct logrec *rec)
{
	for (;;) {
		bool too_long;
		int got = read_line(r, &too_long);
		if (got < 0)
			return -1;
		if (got == 0) {
			if (r->len == 0 || r->follow)
				return 0; /* a follower waits for the rest */
			r->lineno++;
			warn(r, r->lineno,
			     "truncated record (no newline at end of file)");
			r->len = 0;
			return 0;
		}
		r->lineno++;
		size_t len = r->len;
		r->len = 0;
		if (too_long || len > LOGREAD_LINE_MAX) {
			warn(r, r->lineno, "line longer than 64 KiB");
			continue;
		}
		if (len == 0)
			continue; /* blank lines carry nothing */
		r->buf[len] = '\0';
		json_error_t jerr;
		memset(rec, 0, sizeof *rec);
		rec->obj =
		    json_loadb(r->buf, len, JSON_REJECT_DUPLICATES, &jerr);
		if (rec->obj == NULL || !json_is_object(rec->obj)) {
			char why[220];
			snprintf(why, sizeof why, "not a JSON object (%s)",
				 rec->obj == NULL ? jerr.text : "wrong type");
			logrec_clear(rec);
			warn(r, r->lineno, why);
			continue;
		}
		const char *bad = index_record(rec);
		if (bad != NULL) {
			logrec_clear(rec);
			warn(r, r->lineno, bad);
			continue;
		}
		rec->line = r->buf;
		rec->line_len = len;
		return 1;
	}
}

int logread_sessions_dir(char *buf, size_t len)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int n;
	if (state != NULL && state[0] == '/')
		n = snprintf(buf, len, "%s/agentsafe/sessions", state);
	else if (home != NULL)
		n = snprintf(buf, len, "%s/.local/state/agentsafe/sessions",
			     home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
