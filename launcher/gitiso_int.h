/* Internals of the git isolation shared by its two files: gitiso.c
 * (prepare, resume, the handle) and gitiso_finish.c (reading the clone
 * back, the fetch into the host). Not for other components. */
#ifndef AGENTSAFE_GITISO_INT_H
#define AGENTSAFE_GITISO_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <git2.h>

#include "gitiso.h"

#define GITISO_MAX_RO	    16 /* host object dirs behind alternates */
#define GITISO_MAX_ALT_FILE 65536
#define GITISO_FSERR	    (PATH_MAX + 128) /* an fsutil sentence */

struct gitiso_repo {
	char *name;	    /* directory name under the session dir */
	char *clone_path;   /* <sessions>/<id>/<name>, canonical */
	char *clone_gitdir; /* clone_path + "/.git/" */
	char *host_workdir; /* canonical, with trailing slash (libgit2 style) */
	char *host_gitdir;  /* git_repository_path() of the host */
	char *session_id;
	char *branch_ref;   /* refs/heads/agentsafe/<id> */
	char *branch_short; /* agentsafe/<id> */
	char *alternates;   /* exact content written to the clone */
	char *ro[GITISO_MAX_RO + 1];
	size_t nro;
	char *prepare_summary;
	git_oid base;
	char base_hex[GIT_OID_HEXSZ + 1];
	size_t host_dirty; /* uncommitted + untracked entries at start */
	bool finished;
	bool libgit2_up;
	/* libgit2 1.5 cannot walk or fetch cut-off history */
	bool host_shallow;
	size_t commits;		 /* after finish: new on the branch */
	bool fetched;		 /* after finish: they are in the host repo */
	gitiso_fetch_fn fetcher; /* NULL: gitiso_fetch_branch */
	char *note;		 /* provenance note for the tip; NULL: none */
	void *fetcher_arg;
};

/* libgit2's last error message, never NULL. */
const char *gitiso_git_msg(void);
/* A new string the caller frees, or NULL when out of memory. */
__attribute__((format(printf, 1, 2))) char *gitiso_asprintf(const char *fmt,
							    ...);
/* Entries git status would show (tracked changes and untracked files; not
 * ignored ones), or -1 when status itself fails. */
long gitiso_count_status(git_repository *repo);
/* gitiso_remote.c: writes f->note (when set) on tip in the host repo
 * under refs/notes/agentsafe; 0 or -EIO with a sentence in err. */
int gitiso_write_note(const struct gitiso_fetch *f, const git_oid *tip,
		      char *err, size_t errlen);
/* Turns libgit2's owner validation off and returns the previous setting,
 * to restore with GIT_OPT_SET_OWNER_VALIDATION (why: see gitiso.c). */
int gitiso_owner_check_off(void);

#endif
