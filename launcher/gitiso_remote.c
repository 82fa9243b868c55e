/* The clone's `origin`: the session's git broker (broker.h), reached
 * through the proxy. Written before the clone is handed to the agent's
 * uid, so the config stays the agent's file. */
#include "gitiso.h"
#include "gitiso_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

#include "errbuf.h"

const char *gitiso_host_gitdir(const struct gitiso_repo *r)
{
	return r->host_gitdir;
}

int gitiso_set_origin(struct gitiso_repo *r, const char *url,
		      const char *upstream, char *err, size_t errlen)
{
	git_repository *c = NULL;
	git_remote *remote = NULL;
	char *spec = NULL;
	int rc = -EIO;

	if (git_libgit2_init() < 0)
		return -EIO;
	int was = gitiso_owner_check_off();
	git_remote_create_options ro;
	/* No insteadOf lookup: a host url.*.insteadOf has no business here,
	 * and its lookup leaks in libgit2 1.5 with pcre2. */
	if (git_remote_create_options_init(
		&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION) != 0 ||
	    git_repository_open_ext(&c, r->clone_path,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0)
		goto out;
	ro.repository = c;
	ro.name = "origin";
	ro.fetchspec = "+refs/heads/*:refs/remotes/origin/*";
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
	if (git_remote_create_with_opts(&remote, url, &ro) != 0)
		goto out;
	/* The host's copy of the upstream's branches (the broker fetches
	 * them there) is a second remote, "upstream", on the same URL: one
	 * fetchspec each, since adding one to a remote goes through a config
	 * regex that leaks in libgit2 1.5 with pcre2. */
	if (upstream != NULL) {
		spec = gitiso_asprintf("+refs/remotes/%s/*:refs/remotes/"
				       "upstream/*",
				       upstream);
		if (spec == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		git_remote_free(remote);
		remote = NULL;
		ro.name = "upstream";
		ro.fetchspec = spec;
		if (git_remote_create_with_opts(&remote, url, &ro) != 0)
			goto out;
	}
	rc = 0;
out:
	if (rc == -EIO)
		errbuf_set(err, errlen,
			   "gitiso: cannot set origin of the session clone "
			   "%s: %s",
			   r->clone_path, gitiso_git_msg());
	free(spec);
	git_remote_free(remote);
	git_repository_free(c);
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, was);
	git_libgit2_shutdown();
	return rc;
}

int gitiso_set_note(struct gitiso_repo *r, const char *note)
{
	char *copy = note != NULL ? strdup(note) : NULL;
	if (note != NULL && copy == NULL)
		return -ENOMEM;
	free(r->note);
	r->note = copy;
	return 0;
}

/* Runs where the fetch runs (as the repo's owner); the host's own
 * identity signs the note when it has one. */
int gitiso_write_note(const struct gitiso_fetch *f, const git_oid *tip,
		      char *err, size_t errlen)
{
	git_repository *host = NULL;
	git_signature *sig = NULL;
	git_oid note;
	int rc = -EIO;

	if (f->note == NULL || f->note[0] == '\0')
		return 0;
	if (git_repository_open_ext(&host, f->host_workdir,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0)
		goto out;
	if (git_signature_default(&sig, host) != 0 &&
	    git_signature_now(&sig, "AgentSafe",
			      "agentsafe@agentsafe.invalid") != 0)
		goto out;
	if (git_note_create(&note, host, "refs/notes/agentsafe", sig, sig, tip,
			    f->note, 1) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		errbuf_set(err, errlen,
			   "gitiso: %s is in %s, but its provenance note "
			   "could not be written: %s",
			   f->branch_short, f->host_workdir, gitiso_git_msg());
	git_signature_free(sig);
	git_repository_free(host);
	return rc;
}
