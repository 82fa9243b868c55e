/* Session bookkeeping outside the container: XDG paths, the session id,
 * and session.json (what a later attach/stop/ls or a crash sweep needs:
 * repos with their clone paths and base commits, network, fence table,
 * container, proxy pid, launcher pid; and, once it ended, what a later
 * `agentsafe sessions` / `review` shows: exit code, commits brought back,
 * denials and drops). */
#ifndef AGENTSAFE_LAUNCH_SESSION_H
#define AGENTSAFE_LAUNCH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SESSION_ID_LEN 12 /* hex digits; bridge "as-<id>" fits IFNAMSIZ */

/* $XDG_<kind>_HOME or $HOME/<fallback>, plus "/agentsafe". kind: CONFIG,
 * STATE, CACHE, DATA. */
int session_xdg_dir(const char *kind, char *out, size_t len);
/* Fresh random id of SESSION_ID_LEN lowercase hex digits. */
int session_new_id(char *out, size_t len);
/* <state>/sessions/<id>; -EINVAL unless id is SESSION_ID_LEN lowercase
 * hex digits (an id from a record, a label or argv never walks out). */
int session_state_dir(const char *id, char *out, size_t len);
bool session_id_valid(const char *id);

/* One repo of a session: what the sweep needs to fetch commits back, and
 * what became of them. */
struct session_repo {
	const char *name, *host, *clone, *branch, *base;
	long commits; /* new on the branch; -1: not finished yet */
	bool fetched; /* they are in the host repo */
};

/* A published port range and the host address it is bound to. */
struct session_bind {
	const char *addr; /* "127.0.0.1", or what --publish/--ssh named */
	uint16_t first, last;
	bool ssh;
};

/* One launch phase and how long it took (agentsafe-launch --timings). */
struct session_phase {
	const char *name;
	int64_t ms;
};

/* session.json as a typed record; this file alone knows its keys. The
 * strings are borrowed: from the caller for a save, from the loaded
 * document for a load (valid until session_record_free). */
struct session_record {
	const char *id, *name;
	pid_t pid; /* the launcher */
	const char *network, *bridge, *table, *container, *probe;
	const char *egress_log;
	pid_t proxy_pid;
	uint16_t nflog_group;
	const char *proxy;   /* the proxy's address (the network gateway) */
	const char *updated; /* NULL on save: now */
	bool finished;
	const struct session_repo *repos;
	size_t nrepos;
	const char *agent;   /* claude | codex | shell | command */
	const char *started; /* RFC 3339 */
	int exit_code;	     /* the session's; -1 while it runs */
	long denials, drops; /* counted from egress.log at the end; -1 */
	long misuse; /* its credential_misuse refusals, the same way; -1 */
	const struct session_bind *binds;
	size_t nbinds;
	/* Save only (not loaded back): the launch phases in order, and the
	 * self-check's window (egress.log timestamps; NULL: not run). */
	const struct session_phase *phases;
	size_t nphases;
	const char *selfcheck_start, *selfcheck_end;
	void *doc_; /* private: the loaded document */
};

/* Write <state>/sessions/<id>/session.json atomically (tmp + rename).
 * Returns 0, or -errno with a sentence naming the file in err. */
int session_record_save(const struct session_record *r, char *err,
			size_t errlen);
/* Load one into r. Returns 0, or -ENOENT when missing or unreadable. The
 * caller owes session_record_free(r) after a 0. */
int session_record_load(const char *id, struct session_record *r);
void session_record_free(struct session_record *r);
/* Counts the refusals in an egress.log: deny records and drop records
 * (a drop summary record counts its packets), not those of the launch
 * self-check (an `origin`). -errno when unreadable. */
int session_log_counts(const char *path, long *denials, long *drops);
/* The credential_misuse refusals in an egress.log (deny records with
 * that reason, not the self-check's): a credential placeholder sent
 * toward a host it is not bound to. -errno when unreadable. */
long session_log_misuse(const char *path);
/* One line on how a finished session ended: exit code, commits back and
 * where, denials and drops (and credential misuse when there was any).
 * Strings from the record are escaped. */
void session_summary(const struct session_record *r, char *buf, size_t len);

/* True when the launcher recorded in session.json is still running. */
bool session_is_live(const char *id);
/* Find a session by name or id among the recorded ones. Returns 0 and the
 * id in out, or -ENOENT. */
int session_find(const char *name_or_id, char *out, size_t len);
/* Call fn for each recorded session id (directory order). */
void session_each(void (*fn)(const char *id, void *arg), void *arg);

#endif
