/* Reading egress.log files for `agentsafe log`: one validated record at a
 * time, with bad lines (truncated, corrupted, unknown fields) reported by
 * file and line number and skipped, never guessed at. */
#ifndef AGENTSAFE_LOGREAD_H
#define AGENTSAFE_LOGREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "reason.h"

#define LOGREAD_LINE_MAX ((size_t)64 * 1024) /* longer lines are corrupt */

struct logrec {
	json_t *obj;	  /* owned; the strings below point into it */
	const char *line; /* the raw line (without newline), valid until next */
	size_t line_len;
	const char *ts, *session, *id, *event, *client, *method, *host, *sni,
	    *ip, *rule, *reason, *proto, *dst, *message, *path, *credential;
	const char *origin; /* "selfcheck": the launcher's own probe; NULL for
			       the agent's traffic */
	/* approval records: asked | answered | timeout | reloaded, and the
	 * answer (allow | deny), its scope (once | session | always) */
	const char *step, *decision, *scope;
	/* git records (the broker): op, repo, ref, old and new ids, result */
	const char *op, *repo, *ref, *old, *new, *result;
	int64_t ts_ms;	 /* parsed ts, milliseconds since the epoch */
	int reason_code; /* enum egress_reason of `reason`; -1 when absent or
			    not a code of this version */
	long long port, dport, bytes_up, bytes_down, duration_ms,
	    count,  /* -1 absent; count: denials a summary record stands for */
	    status; /* HTTP status of a request record */
	long long uid;	 /* approval: who answered; budget: limit; -1 absent */
	bool would_deny; /* learn mode: an open the policy would have denied */
};

struct logread {
	FILE *f;
	const char *path;
	unsigned long lineno;
	unsigned long skipped; /* bad lines reported and skipped */
	char *buf;
	size_t len, cap;
	bool follow; /* a partial last line waits for more, not an error */
	bool quiet;  /* do not print warnings (counting only) */
	char io[64 * 1024]; /* block buffer: lines are cut out of it */
	size_t io_pos, io_len;
};

/* Open path for reading ("-" is stdin). */
int logread_open(struct logread *r, const char *path, bool follow, char *err,
		 size_t errlen);
/* Next valid record: 1 got one, 0 at end of file (or, when following, no
 * complete line yet), -1 on a read error. Bad lines are reported on stderr
 * as "FILE:LINE: ..." and skipped. */
int logread_next(struct logread *r, struct logrec *rec);
void logrec_clear(struct logrec *rec);
void logread_close(struct logread *r);

/* Parse an RFC 3339 UTC timestamp ("2026-11-25T02:47:57.123Z", millis and
 * Z/+00:00 optional) to ms since the epoch; -1 when malformed. */
int64_t logread_parse_ts(const char *s);
/* --since/--until values: RFC 3339, or a duration back from now ("10m",
 * "2h", "3d", "45s"). -1 when malformed. */
int64_t logread_parse_when(const char *s, int64_t now_ms);

/* True for the records of a refusal: deny and drop. error records are not
 * (their codes say what went wrong, not what was decided), so
 * `agentsafe log --denied` leaves them out. */
bool logrec_is_denied(const struct logrec *rec);
/* True for a record the launcher labelled as its own (an `origin` field,
 * e.g. "selfcheck"): `agentsafe log` hides these unless --all-origins, and
 * `log suggest` never proposes a rule from one. The writers put the field
 * only on records of the launch self-check window, before the agent runs. */
bool logrec_has_origin(const struct logrec *rec);

/* Log fields are the agent's words (a host, an SNI, a parser's quote of a
 * request), so nothing from a record reaches a terminal or a suggested
 * policy raw. These copy s with C0 controls, DEL, bytes that are not
 * UTF-8 ("\x1b"), C1 controls, the Unicode bidi controls (U+061C,
 * U+200E/F, U+202A-202E, U+2066-2069) and U+2028/U+2029 ("\u202e") written
 * as escapes, and a backslash as "\\", so a field can neither move the
 * cursor, reorder what is shown, nor start a line (libyaml also breaks
 * lines at U+0085, U+2028 and U+2029).
 * logread_escape fills buf (len > 0) with whole characters and escapes
 * only, always terminated, and returns the length the whole escaped text
 * needs, as snprintf does; NULL is "". */
size_t logread_escape(const char *s, char *buf, size_t len);
/* The same, written to out without a length limit. */
void logread_fputs_escaped(const char *s, FILE *out);

/* The default state directory holding sessions/<id>/egress.log. */
int logread_sessions_dir(char *buf, size_t len);

#endif
