/* Git isolation for a session (libgit2): a per-session clone of each host
 * repo whose object store borrows the host's objects read-only, on branch
 * agentsafe/<id>; afterwards the branch is fetched back into the host repo. */
#ifndef AGENTSAFE_GITISO_H
#define AGENTSAFE_GITISO_H

#include <stddef.h>

struct gitiso_repo;

/* host_path: any path inside a host work tree. Creates
 * <sessions_dir>/<session_id>/<repo-name> on branch agentsafe/<session_id>
 * from the host's HEAD. */
int gitiso_prepare(const char *host_path, const char *sessions_dir,
		   const char *session_id, struct gitiso_repo **out, char *err,
		   size_t errlen);
const char *gitiso_name(const struct gitiso_repo *r);       /* repo name */
const char *gitiso_clone_path(const struct gitiso_repo *r); /* mount rw */
/* Host paths the container must see read-only at the same path for the
 * clone to work (e.g. the host's objects dir behind an alternates file);
 * NULL-terminated array, may be empty. */
const char *const *gitiso_readonly_paths(const struct gitiso_repo *r);
const char *gitiso_host_repo(const struct gitiso_repo *r); /* work tree */
/* "agentsafe/<id>" (added). */
const char *gitiso_branch(const struct gitiso_repo *r);
/* One line for the session start (added): which commit the clone starts
 * from, and a warning when the host's uncommitted changes are left out
 * (they always are: the clone is a fresh checkout of HEAD). */
const char *gitiso_prepare_summary(const struct gitiso_repo *r);

/* After the session: when the session branch has new commits, fetch it into
 * the host repo as agentsafe/<id>; write a short human summary (commits,
 * files changed, where a kept clone is); remove the clone if clean, keep it
 * if dirty. */
int gitiso_finish(struct gitiso_repo *r, char *summary, size_t summarylen,
		  char *err, size_t errlen);
void gitiso_free(struct gitiso_repo *r);

#endif
