/* The one writer of egress.log records (JSON Lines, O_APPEND, one write(2)
 * per record so a SIGKILL never loses or tears a completed record). Used by
 * the proxy for its decisions and by the launcher for firewall drops. */
#ifndef AGENTSAFE_EGRESS_LOG_H
#define AGENTSAFE_EGRESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct egress_log; /* thread-safe; opaque */

/* Fields of one record; NULL strings and negative numbers are omitted.
 * `ts` and `session` are filled in by the writer. */
struct egress_record {
	const char *id;	    /* shared by a tunnel's open and close */
	const char *event;  /* open | close | deny | error | drop | approval |
			       warning | request | git */
	const char *client; /* addr:port of the requester */
	const char *method;
	const char *host;
	int port; /* 0: absent */
	const char *sni;
	const char *ip;
	const char *rule;
	const char *reason;
	int64_t bytes_up;    /* -1: absent */
	int64_t bytes_down;  /* -1: absent */
	int64_t duration_ms; /* -1: absent */
	const char *proto;   /* drop records */
	const char *dst;     /* drop records */
	int dport;	     /* drop records; 0: absent */
	const char *message; /* human detail for error records */
	int64_t count;	     /* folded denials in a summary; -1: absent */
	const char *origin;  /* "selfcheck": caused by the launch probe */
	int64_t time_us; /* the event's own time (µs since the epoch, e.g. a
			    dropped packet's kernel timestamp); 0: now */
	/* approval records (proxy/approval.c) */
	const char *step;     /* asked | answered | timeout | reloaded */
	const char *decision; /* allow | deny */
	const char *scope;    /* once | session | always */
	int64_t uid;	      /* who answered; -1: absent */
	/* mode: learn: an open the policy would have denied (`reason` says
	 * why); written only when true */
	bool would_deny;
	/* request records (inspected tunnels) */
	const char *path;	/* request path, without the query */
	int status;		/* HTTP status answered; 0: absent */
	const char *credential; /* name of an injected credential, never
				   its value */
	/* git records (the session's git broker) */
	const char *op;	    /* fetch | push | upstream_fetch */
	const char *repo;   /* the repo name in the URL */
	const char *ref;    /* push: the ref updated or refused */
	const char *old_id; /* push: the ref's id before ("old") */
	const char *new_id; /* push: the id pushed ("new") */
	const char *result; /* ok | refused | not_created | declined | error */
};

/* Initialise a record with every field absent. */
void egress_record_init(struct egress_record *r);

/* path "-" writes to stdout. Returns 0 or -errno with a sentence in err. */
int egress_log_open(const char *path, const char *session,
		    struct egress_log **out, char *err, size_t errlen);
/* Appends one record: the whole line or nothing. A write cut short (disk
 * full) is completed or truncated back to where the line began, so the
 * next record starts on a fresh line. Returns 0 or -errno. */
int egress_log_write(struct egress_log *log, const struct egress_record *r);
/* False while records cannot be relied on to land: the last write failed,
 * or the space reserved ahead of the file is nearly used up and cannot be
 * renewed (the disk is full). A caller refuses what it cannot record; the
 * next write that succeeds with the reserve renewed makes it true again. */
bool egress_log_writable(struct egress_log *log);
/* Bytes kept preallocated past the end of the file (fallocate with
 * FALLOC_FL_KEEP_SIZE) so records keep landing when something else fills
 * the disk; EGRESS_LOG_RESERVE by default, 0 turns it off. Call before the
 * first write. */
#define EGRESS_LOG_RESERVE (4u << 20)
void egress_log_set_reserve(struct egress_log *log, size_t bytes);
/* Reopen the same path (after logrotate moved it). Keeps the old file on
 * failure, and when the disk has no room for the new file's reserve. */
int egress_log_reopen(struct egress_log *log, char *err, size_t errlen);
void egress_log_close(struct egress_log *log);

/* Fresh id for a request: unique within a log across restarts. */
void egress_log_next_id(struct egress_log *log, char *buf, size_t len);

/* RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-25T02:47:57.123Z */
void egress_format_ts(char *buf, size_t len);
/* The same for a given time, in µs since the epoch (> 0). */
void egress_format_ts_at(char *buf, size_t len, int64_t us);

#endif
