/* The session's git broker: inside the container each repo's origin is
 * http://git.agentsafe.internal/<repo>; the proxy hands those requests to
 * this process on a unix socket, and git's own `git http-backend` serves
 * them from the host repository. A child of the launcher, as the invoking
 * user, without capabilities; one forked process per request.
 * - fetch: the host repo's refs and objects; with an upstream remote the
 *   broker first runs `git fetch REMOTE` on the host, with the user's own
 *   credentials, so the agent sees fresh upstream branches.
 * - push: a pre-receive hook (core.hooksPath, never the repo's own hooks)
 *   accepts refs/heads/agentsafe/<id> and refs/heads/agentsafe/<id>/...
 *   only, never a force-update or a delete of a ref no push of this
 *   session created; everything else is refused with BROKER_REFUSAL.
 * - every fetch and push is an egress.log record (event "git"). */
#ifndef AGENTSAFE_BROKER_H
#define AGENTSAFE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define BROKER_HOST "git.agentsafe.internal"
#define BROKER_SOCK "git-broker.sock"

struct egress_log;

struct broker_repo {
	const char *name;    /* the URL's path segment: /workspace/<name> */
	const char *gitdir;  /* the host repository's .git directory */
	const char *workdir; /* its work tree (the upstream fetch runs there) */
};

struct broker_config {
	const char *session_id;
	const char *dir;      /* private state dir: socket, hooks, refs made */
	const char *upstream; /* remote to fetch before serving; NULL: none */
	bool push_upstream;   /* pushes the agent made go on to upstream */
	bool pr; /* and a new branch there gets a draft pull request */
	const struct broker_repo *repos;
	size_t nrepos;
	struct egress_log *log; /* records go here (shared descriptor) */
	uid_t uid;		/* the user the broker runs as, when root */
	gid_t gid;
};

/* Writes the hooks into cfg->dir, binds cfg->dir/BROKER_SOCK (0600, the
 * user's), then forks the broker, which drops to uid/gid (when root) and
 * every capability and serves until SIGTERM or the launcher's death.
 * Returns 0 with the pid, or -errno with a sentence in err. */
int broker_start(const struct broker_config *cfg, pid_t *pid, char *err,
		 size_t errlen);

/* The text of the pre-receive hook for session id (exposed for tests);
 * created: the file listing the refs this session's pushes created.
 * Returns a new string or NULL. */
char *broker_hook_text(const char *id, const char *created);

/* The provenance note on the review branch (broker_note.c): what the
 * session was and what it did, counted from its egress.log (records inside
 * the self-check window left out). Any field may be NULL. */
struct broker_note_in {
	const char *session_id, *agent, *image, *image_id, *policy_path;
	const char *log_path;
	const char *selfcheck_start, *selfcheck_end; /* RFC 3339 */
	long *upstream_errors; /* out when not NULL: failed push_upstream */
	long *pr_errors;       /* out when not NULL: failed pr */
};
/* A new string the caller frees, or NULL when out of memory. */
char *broker_note_text(const struct broker_note_in *in);

/* "agentsafe: pushes go to agentsafe/<id>/…; main is the human's" */
#define BROKER_REFUSAL_FMT                                                     \
	"agentsafe: pushes go to agentsafe/%s/\u2026; main is the human's"

#endif
