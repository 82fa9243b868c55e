/* Git isolation for a session (libgit2): a per-session clone of each host
 * repo whose object store borrows the host's objects read-only, on branch
 * agentsafe/<id>; afterwards the branch is fetched back into the host repo. */
#ifndef AGENTSAFE_GITISO_H
#define AGENTSAFE_GITISO_H

#include <stddef.h>
#include <sys/types.h>

struct gitiso_repo;

/* Behaviour (added documentation; see launcher/gitiso.c):
 * - The clone is a fresh checkout of the host's HEAD commit (a detached HEAD
 *   is fine). Uncommitted and untracked host changes are NOT carried over;
 *   gitiso_prepare_summary() says so when there are any. An unborn HEAD
 *   (no commits yet) and bare repositories are errors.
 * - <clone>/.git/objects/info/alternates names the host's objects dir (the
 *   common dir's for a host worktree); gitiso_readonly_paths() lists it and
 *   any object dirs it borrows from in turn. Nothing else in the clone
 *   refers to the host: no worktree link, no remote (add one yourself).
 * - Clone config: user.name/user.email from the host's effective config
 *   (else "AgentSafe Agent" <agent@agentsafe.invalid>), commit.gpgsign and
 *   tag.gpgsign false; the host's ~/.gitconfig is not mounted.
 * - Submodules and LFS content are out of scope (submodule dirs stay empty,
 *   LFS pointers stay pointers). Tags made inside are not carried back.
 * - Shallow hosts: sessions work, but libgit2 1.5 cannot fetch into them;
 *   commits are kept in the clone and the summary gives the git command.
 * - Names: two repos with the same directory name get <name>, <name>-2...
 * - gitiso_finish is called after the container is gone, as the launcher's
 *   user: the only write to the host repo is the fetch of the session
 *   branch (new objects + refs/heads/agentsafe/<id> + its reflog), never an
 *   overwrite (-EEXIST, clone kept). The clone is deleted (without following
 *   symlinks or crossing mounts) only when clean, with nothing left on
 *   other refs; otherwise it is kept and the summary says where. A clone
 *   whose .git was deleted, replaced or redirected is reported, not used.
 * - A kept clone's .git was writable by the agent: its config and hooks are
 *   untrusted; inspect it with `git -C <host> fetch <clone> <branch>` rather
 *   than running git inside it. */

/* host_path: any path inside a host work tree. Creates
 * <sessions_dir>/<session_id>/<repo-name> on branch agentsafe/<session_id>
 * from the host's HEAD. */
int gitiso_prepare(const char *host_path, const char *sessions_dir,
		   const char *session_id, struct gitiso_repo **out, char *err,
		   size_t errlen);
const char *gitiso_name(const struct gitiso_repo *r);	    /* repo name */
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
/* The starting commit as 40 hex digits (added): record it with the clone
 * path, host work tree and id outside the container, so a session whose
 * launcher died can be finished later with gitiso_resume(). */
const char *gitiso_base(const struct gitiso_repo *r);
/* Rebuilds a handle from those recorded values (added; nothing in the
 * clone is trusted for them); then gitiso_finish() as usual. */
int gitiso_resume(const char *host_workdir, const char *clone_path,
		  const char *session_id, const char *base_hex,
		  struct gitiso_repo **out, char *err, size_t errlen);
/* When the container runs as a uid other than the launcher's (launcher run
 * as root): hand the clone, and only the clone, to uid:gid before the
 * container starts; symlinks are not followed (added). */
int gitiso_chown(struct gitiso_repo *r, uid_t uid, gid_t gid, char *err,
		 size_t errlen);

/* After the session: when the session branch has new commits, fetch it into
 * the host repo as agentsafe/<id>; write a short human summary (commits,
 * files changed, where a kept clone is); remove the clone if clean, keep it
 * if dirty. */
int gitiso_finish(struct gitiso_repo *r, char *summary, size_t summarylen,
		  char *err, size_t errlen);

/* The one write to the host repo, as a request (added): everything it
 * needs is named here, nothing is read from the clone's config. */
struct gitiso_fetch {
	const char *host_workdir, *host_gitdir, *clone_path;
	const char *branch_ref, *branch_short;
	const char *tip; /* 40 hex digits: the commit the branch gets */
	/* NULL or "": none; else written as the tip's note under
	 * refs/notes/agentsafe (replacing one there) once the branch is in
	 * the host repo (added: the provenance note, broker_note.c). */
	const char *note;
};
/* Performs f in this process: fetch the branch from the clone into the
 * host repo and create it there without force. Returns 0, -EEXIST (the
 * branch exists; not overwritten), or -errno with a sentence in err. */
int gitiso_fetch_branch(const struct gitiso_fetch *f, char *err, size_t errlen);
/* Who performs the fetch in gitiso_finish (added): by default
 * gitiso_fetch_branch in this process; a root launcher passes a function
 * that does it as the host repo's owner, so no root-owned file lands in
 * their .git. */
typedef int (*gitiso_fetch_fn)(const struct gitiso_fetch *f, void *arg,
			       char *err, size_t errlen);
void gitiso_set_fetcher(struct gitiso_repo *r, gitiso_fetch_fn fn, void *arg);
/* After gitiso_finish (added): the session's new commits on its branch,
 * and whether they are now in the host repo. */
size_t gitiso_commits(const struct gitiso_repo *r, int *fetched);
void gitiso_free(struct gitiso_repo *r);

/* gitiso_remote.c (the git broker): the host's .git directory (the one
 * the broker serves), and the clone's remote `origin` set to url, with
 * a second remote `upstream` on the same url fetching the host's
 * refs/remotes/<upstream>/... as upstream/... when upstream is not NULL. Call
 * before gitiso_chown. */
const char *gitiso_host_gitdir(const struct gitiso_repo *r);
/* The note gitiso_finish has written on the branch tip (copied). */
int gitiso_set_note(struct gitiso_repo *r, const char *note);
int gitiso_set_origin(struct gitiso_repo *r, const char *url,
		      const char *upstream, char *err, size_t errlen);

#endif
