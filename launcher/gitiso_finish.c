/* The end of a session's git isolation: read the clone back (checking it
 * is still the repository prepare made), fetch the session branch into the
 * host repository, and keep or remove the clone. Runs on the host after the
 * container is gone; nothing in the clone is trusted. */
#include "gitiso.h"
#include "gitiso_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "errbuf.h"
#include "fsutil.h"

/* Appends to the caller's summary; truncation is silent but never
 * overflows. */
__attribute__((format(printf, 3, 4))) static void sb_add(char *buf, size_t len,
							 const char *fmt, ...)
{
	size_t used;
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	used = strnlen(buf, len);
	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

struct finish_state {
	git_oid tip;
	bool has_tip;
	bool tip_contains_base;
	size_t commits;
	size_t files, plus, minus;
	long dirty;	     /* -1: unknown */
	char other_ref[128]; /* first ref with work not on the branch */
	bool fetched;
};

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (d == NULL)
		return false;
	while (empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 ||
			strcmp(de->d_name, "..") == 0;
	(void)closedir(d);
	return empty;
}

/* Compares two directory paths ignoring one trailing slash. */
static bool same_dir(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && memcmp(a, b, la) == 0;
}

/* The clone must still be the repository we created: its own .git
 * directory (not a gitfile/symlink/commondir into some other repo), work
 * tree where we put it, and the alternates we wrote. */
static int check_clone_layout(const struct gitiso_repo *r, git_repository *c,
			      char *why, size_t whylen)
{
	const char *wd = git_repository_workdir(c);
	char *alt = NULL, *path;
	int rc = 0;

	if (!same_dir(git_repository_path(c), r->clone_gitdir) ||
	    !same_dir(git_repository_commondir(c), r->clone_gitdir) ||
	    wd == NULL || !same_dir(wd, r->clone_path)) {
		errbuf_set(why, whylen,
			   "its .git now points outside the clone");
		return -EPERM;
	}
	path = gitiso_asprintf("%sobjects/info/alternates", r->clone_gitdir);
	if (path == NULL)
		return -ENOMEM;
	if (fs_read_small(path, GITISO_MAX_ALT_FILE, 0, &alt, NULL, NULL, 0) !=
		0 ||
	    strcmp(alt, r->alternates) != 0) {
		errbuf_set(why, whylen,
			   "its objects/info/alternates was changed");
		rc = -EPERM;
	}
	free(alt);
	free(path);
	return rc;
}

/* Opens the clone for the scan, or writes why not into the summary: the
 * clone or its .git is gone or replaced, or it was tampered with. Returns
 * 0 with *out set to go on, 0 with *out NULL when the summary says it all,
 * or a negative errno. */
static int open_clone(const struct gitiso_repo *r, git_repository **out,
		      char *summary, size_t summarylen, char *err,
		      size_t errlen)
{
	char why[160] = "", dotgit[PATH_MAX];
	git_repository *c = NULL;
	struct stat st;
	bool gone;
	int rc;

	*out = NULL;
	if (lstat(r->clone_path, &st) != 0) {
		sb_add(summary, summarylen,
		       "%s: session clone %s is gone; nothing fetched, host "
		       "repo untouched",
		       r->name, r->clone_path);
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		errbuf_set(err, errlen,
			   "gitiso: session clone %s is no longer a directory; "
			   "left as is",
			   r->clone_path);
		return -ENOTDIR;
	}
	/* fstatat on the name, not "<clone>/.git/": a trailing slash would
	 * follow a .git symlink planted by the agent */
	(void)snprintf(dotgit, sizeof(dotgit), "%s/.git", r->clone_path);
	rc = fstatat(AT_FDCWD, dotgit, &st, AT_SYMLINK_NOFOLLOW) != 0 ? -errno
								      : 0;
	if (rc != 0 || !S_ISDIR(st.st_mode)) {
		gone = rc == -ENOENT;
		if (gone && dir_is_empty(r->clone_path) &&
		    fs_rmtree(r->clone_path, NULL, 0) == 0)
			sb_add(summary, summarylen,
			       "%s: the session deleted its clone (including "
			       ".git); nothing to fetch, host repo untouched; "
			       "removed empty %s",
			       r->name, r->clone_path);
		else
			sb_add(summary, summarylen,
			       "%s: the session clone's .git is %s; nothing "
			       "fetched, host repo untouched; kept session "
			       "clone at %s",
			       r->name, gone ? "gone" : "not a directory",
			       r->clone_path);
		return 0;
	}
	if (git_repository_open_ext(&c, r->clone_path,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
		sb_add(summary, summarylen,
		       "%s: the session clone's .git is unusable (%s); nothing "
		       "fetched, host repo untouched; kept session clone at %s",
		       r->name, gitiso_git_msg(), r->clone_path);
		return 0;
	}
	rc = check_clone_layout(r, c, why, sizeof(why));
	if (rc != 0) {
		git_repository_free(c);
		errbuf_set(err, errlen,
			   "gitiso: session clone %s was tampered with (%s); "
			   "nothing fetched",
			   r->clone_path, why);
		sb_add(summary, summarylen,
		       "%s: nothing fetched (%s); kept session clone at %s",
		       r->name, why, r->clone_path);
		return rc;
	}
	*out = c;
	return 0;
}

/* Steps along first parents from `from` until `to`, bounded; *reached says
 * whether `to` was met. Used when a full revwalk is impossible. */
static size_t first_parent_steps(git_repository *c, const git_oid *from,
				 const git_oid *to, bool *reached)
{
	git_commit *commit;
	const git_oid *p;
	git_oid cur;
	size_t n = 0;

	*reached = false;
	git_oid_cpy(&cur, from);
	while (n < 1000000) {
		if (git_oid_equal(&cur, to)) {
			*reached = true;
			break;
		}
		commit = NULL;
		if (git_commit_lookup(&commit, c, &cur) != 0)
			break;
		p = git_commit_parentcount(commit) > 0
			? git_commit_parent_id(commit, 0)
			: NULL;
		if (p != NULL)
			git_oid_cpy(&cur, p);
		git_commit_free(commit);
		if (p == NULL)
			break;
		n++;
	}
	return n;
}

/* The branch tip and how many commits it has that base lacks. */
static void scan_branch(const struct gitiso_repo *r, git_repository *c,
			struct finish_state *fs)
{
	git_commit *commit = NULL;
	git_revwalk *walk = NULL;
	bool reached = false, back = false;
	git_oid oid;
	size_t n;
	int wr;

	if (git_reference_name_to_id(&fs->tip, c, r->branch_ref) == 0 &&
	    git_commit_lookup(&commit, c, &fs->tip) == 0)
		fs->has_tip = true;
	git_commit_free(commit);
	if (!fs->has_tip || git_oid_equal(&fs->tip, &r->base))
		return;
	/* no revwalk on cut-off history: it fails (and leaks) */
	wr = r->host_shallow ? GIT_ENOTFOUND : git_revwalk_new(&walk, c);
	if (wr == 0)
		wr = git_revwalk_push(walk, &fs->tip);
	if (wr == 0)
		wr = git_revwalk_hide(walk, &r->base);
	while (wr == 0 && (wr = git_revwalk_next(&oid, walk)) == 0)
		fs->commits++;
	git_revwalk_free(walk);
	if (wr == GIT_ITEROVER) {
		fs->tip_contains_base =
		    git_graph_descendant_of(c, &fs->tip, &r->base) == 1;
		return;
	}
	/* The walk fails where history is cut off (a shallow host: libgit2
	 * 1.5 does not read .git/shallow). Never call that "no commits":
	 * count first parents down to base instead. */
	n = first_parent_steps(c, &fs->tip, &r->base, &reached);
	(void)first_parent_steps(c, &r->base, &fs->tip, &back);
	fs->commits = back && !reached ? 0 : (n ? n : 1);
	fs->tip_contains_base = reached;
}

static void scan_diffstat(const struct gitiso_repo *r, git_repository *c,
			  struct finish_state *fs)
{
	git_commit *a = NULL, *b = NULL;
	git_tree *ta = NULL, *tb = NULL;
	git_diff *diff = NULL;
	git_diff_stats *st = NULL;

	if (git_commit_lookup(&a, c, &r->base) == 0 &&
	    git_commit_lookup(&b, c, &fs->tip) == 0 &&
	    git_commit_tree(&ta, a) == 0 && git_commit_tree(&tb, b) == 0 &&
	    git_diff_tree_to_tree(&diff, c, ta, tb, NULL) == 0 &&
	    git_diff_get_stats(&st, diff) == 0) {
		fs->files = git_diff_stats_files_changed(st);
		fs->plus = git_diff_stats_insertions(st);
		fs->minus = git_diff_stats_deletions(st);
	}
	git_diff_stats_free(st);
	git_diff_free(diff);
	git_tree_free(ta);
	git_tree_free(tb);
	git_commit_free(a);
	git_commit_free(b);
}

/* o is base, or the session branch has it. */
static bool on_branch(const struct gitiso_repo *r, git_repository *c,
		      const struct finish_state *fs, const git_oid *o)
{
	return git_oid_equal(o, &r->base) ||
	       (fs->has_tip && (git_oid_equal(o, &fs->tip) ||
				git_graph_descendant_of(c, &fs->tip, o) == 1));
}

/* Work on other branches, tags, stash or a detached HEAD would be lost
 * with the clone: look for tips the session branch lacks. */
static void scan_other_refs(const struct gitiso_repo *r, git_repository *c,
			    struct finish_state *fs)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	git_object *res;
	const char *nm;
	bool covered;
	git_oid oid;

	if (git_reference_iterator_new(&it, c) != 0) {
		(void)snprintf(fs->other_ref, sizeof(fs->other_ref),
			       "(refs unreadable)");
		return;
	}
	while (git_reference_next(&ref, it) == 0) {
		nm = git_reference_name(ref);
		res = NULL;
		/* peeled: an annotated tag on a session commit is covered */
		if (strcmp(nm, r->branch_ref) != 0 &&
		    git_reference_peel(&res, ref, GIT_OBJECT_COMMIT) == 0)
			covered = on_branch(r, c, fs, git_object_id(res)) ||
				  git_graph_descendant_of(
				      c, &r->base, git_object_id(res)) == 1;
		else
			covered = strcmp(nm, r->branch_ref) == 0;
		if (!covered && fs->other_ref[0] == '\0')
			(void)snprintf(fs->other_ref, sizeof(fs->other_ref),
				       "%s", nm);
		git_object_free(res);
		git_reference_free(ref);
	}
	git_reference_iterator_free(it);
	if (git_repository_head_detached(c) == 1 &&
	    git_reference_name_to_id(&oid, c, "HEAD") == 0 &&
	    !on_branch(r, c, fs, &oid) && fs->other_ref[0] == '\0')
		(void)snprintf(fs->other_ref, sizeof(fs->other_ref),
			       "detached HEAD");
}

static void scan_clone(const struct gitiso_repo *r, git_repository *c,
		       struct finish_state *fs)
{
	fs->dirty = gitiso_count_status(c);
	scan_branch(r, c, fs);
	if (fs->commits > 0)
		scan_diffstat(r, c, fs);
	scan_other_refs(r, c, fs);
}

/* Reopens the host repository, which must still be the one prepared from,
 * and refuses to touch an existing session branch there; 1 when that
 * branch is already at the tip (the agent pushed it through the git
 * broker): nothing left to do. */
static int open_host(const struct gitiso_fetch *f, const git_oid *tip,
		     git_repository **out, char *err, size_t errlen)
{
	git_repository *host = NULL;
	git_reference *ref = NULL;
	int rc = 0;

	if (git_repository_open_ext(&host, f->host_workdir,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 ||
	    !same_dir(git_repository_path(host), f->host_gitdir)) {
		errbuf_set(err, errlen,
			   "gitiso: cannot reopen host repository %s: %s",
			   f->host_workdir, gitiso_git_msg());
		rc = -EIO;
	} else if (git_reference_lookup(&ref, host, f->branch_ref) == 0 &&
		   git_reference_target(ref) != NULL &&
		   git_oid_equal(git_reference_target(ref), tip)) {
		rc = 1;
	} else if (ref != NULL) {
		errbuf_set(err, errlen,
			   "gitiso: host repository %s already has branch %s; "
			   "not overwritten",
			   f->host_workdir, f->branch_short);
		rc = -EEXIST;
	}
	git_reference_free(ref);
	if (rc == 0) {
		*out = host;
		host = NULL;
	}
	git_repository_free(host);
	return rc;
}

/* Creates the branch without force so an existing one is never
 * overwritten. */
static int create_branch(const struct gitiso_fetch *f, git_repository *host,
			 const git_oid *tip, char *err, size_t errlen)
{
	git_reference *ref = NULL;
	git_commit *commit = NULL;
	int e, rc = -EIO;

	if (git_commit_lookup(&commit, host, tip) != 0) {
		errbuf_set(err, errlen,
			   "gitiso: after fetching, host repository %s lacks "
			   "the session commit: %s",
			   f->host_workdir, gitiso_git_msg());
		return rc;
	}
	e = git_reference_create(&ref, host, f->branch_ref, tip, 0,
				 "agentsafe: session branch");
	if (e == GIT_EEXISTS) {
		errbuf_set(err, errlen,
			   "gitiso: host repository %s already has branch %s; "
			   "not overwritten",
			   f->host_workdir, f->branch_short);
		rc = -EEXIST;
	} else if (e != 0) {
		errbuf_set(err, errlen, "gitiso: cannot create %s in %s: %s",
			   f->branch_short, f->host_workdir, gitiso_git_msg());
	} else {
		rc = 0;
	}
	git_reference_free(ref);
	git_commit_free(commit);
	return rc;
}

/* The only write to the host repository: download the session branch's
 * objects from the clone (host side, container gone), then create the
 * branch. */
int gitiso_fetch_branch(const struct gitiso_fetch *f, char *err, size_t errlen)
{
	git_repository *host = NULL;
	git_remote *remote = NULL;
	git_fetch_options fo;
	git_remote_create_options ro;
	git_strarray specs;
	git_oid tip;
	char *spec = NULL;
	int rc;

	if (git_libgit2_init() < 0)
		return -EIO;
	rc = -EINVAL;
	if (git_oid_fromstrn(&tip, f->tip, strnlen(f->tip, 41)) != 0 ||
	    strlen(f->tip) != GIT_OID_HEXSZ) {
		errbuf_set(err, errlen, "gitiso: bad session commit %.64s",
			   f->tip);
		goto out;
	}
	rc = open_host(f, &tip, &host, err, errlen);
	if (rc == 1) /* already pushed there: fetched */
		rc = 0;
	if (rc == 0 && host == NULL)
		(void)gitiso_write_note(f, &tip, err, errlen);
	if (rc != 0 || host == NULL)
		goto out;
	rc = -EIO;
	if (git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION) != 0 ||
	    git_remote_create_options_init(
		&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION) != 0)
		goto out;
	spec = gitiso_asprintf("%s:%s", f->branch_ref, f->branch_ref);
	if (spec == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	specs.strings = &spec;
	specs.count = 1;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.prune = GIT_FETCH_NO_PRUNE;
	fo.update_fetchhead = 0;
	/* No insteadOf rewriting (a host url.*.insteadOf must not redirect a
	 * local path; its lookup also leaks in libgit2 1.5 with pcre2), no
	 * default refspec: only the one branch named above. */
	ro.repository = host;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF |
		   GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if (git_remote_create_with_opts(&remote, f->clone_path, &ro) != 0 ||
	    git_remote_download(remote, &specs, &fo) != 0) {
		errbuf_set(err, errlen,
			   "gitiso: fetching %s from %s into %s failed: %s",
			   f->branch_short, f->clone_path, f->host_workdir,
			   gitiso_git_msg());
		goto out;
	}
	rc = create_branch(f, host, &tip, err, errlen);
	/* The branch is in: a note that cannot be written is not a lost
	 * fetch (err says so, the session's summary does not). */
	if (rc == 0)
		(void)gitiso_write_note(f, &tip, err, errlen);
out:
	git_remote_free(remote);
	free(spec);
	git_repository_free(host);
	git_libgit2_shutdown();
	return rc;
}

size_t gitiso_commits(const struct gitiso_repo *r, int *fetched)
{
	if (fetched != NULL)
		*fetched = r != NULL && r->fetched;
	return r != NULL ? r->commits : 0;
}

void gitiso_set_fetcher(struct gitiso_repo *r, gitiso_fetch_fn fn, void *arg)
{
	if (r == NULL)
		return;
	r->fetcher = fn;
	r->fetcher_arg = arg;
}

static int fetch_into_host(const struct gitiso_repo *r,
			   const struct finish_state *fs, char *err,
			   size_t errlen)
{
	char tip[GIT_OID_HEXSZ + 1];
	struct gitiso_fetch f = {r->host_workdir, r->host_gitdir,
				 r->clone_path,	  r->branch_ref,
				 r->branch_short, tip,
				 r->note};

	git_oid_tostr(tip, sizeof(tip), &fs->tip);
	if (r->fetcher != NULL)
		return r->fetcher(&f, r->fetcher_arg, err, errlen);
	return gitiso_fetch_branch(&f, err, errlen);
}

/* The summary's first part: what became of the session's commits. */
static void summary_outcome(const struct gitiso_repo *r,
			    const struct finish_state *fs, const char *why,
			    char *s, size_t n)
{
	if (fs->commits > 0 && fs->fetched) {
		sb_add(s, n,
		       "%s: %zu commit%s on %s, %zu file%s changed (+%zu -%zu)",
		       r->name, fs->commits, fs->commits == 1 ? "" : "s",
		       r->branch_short, fs->files, fs->files == 1 ? "" : "s",
		       fs->plus, fs->minus);
		if (!fs->tip_contains_base)
			sb_add(s, n,
			       " (history rewritten: the branch does not "
			       "contain the starting commit)");
	} else if (fs->commits > 0) {
		sb_add(s, n,
		       "%s: %zu commit%s NOT fetched (%s); to fetch by hand: "
		       "git -C %s fetch %s %s:<new-branch>",
		       r->name, fs->commits, fs->commits == 1 ? "" : "s", why,
		       r->host_workdir, r->clone_path, r->branch_ref);
	} else if (!fs->has_tip) {
		sb_add(s, n,
		       "%s: branch %s is missing or broken in the session "
		       "clone; nothing fetched",
		       r->name, r->branch_short);
	} else {
		sb_add(s, n, "%s: no new commits on %s", r->name,
		       r->branch_short);
	}
}

/* Keeps the clone while it holds anything the host repo lacks; otherwise
 * removes it, and the session dir once that is empty. */
static void keep_or_remove(const struct gitiso_repo *r,
			   const struct finish_state *fs, char *s, size_t n)
{
	char rmerr[GITISO_FSERR] = "";
	char *parent, *slash;

	if (fs->dirty > 0)
		sb_add(s, n,
		       "; kept dirty session clone at %s (%ld uncommitted or "
		       "untracked files)",
		       r->clone_path, fs->dirty);
	else if (fs->dirty < 0)
		sb_add(s, n,
		       "; kept session clone at %s (its status could not be "
		       "read)",
		       r->clone_path);
	else if (fs->other_ref[0] != '\0')
		sb_add(s, n, "; kept session clone at %s (work outside %s: %s)",
		       r->clone_path, r->branch_short, fs->other_ref);
	else if ((fs->commits > 0 && !fs->fetched) || !fs->has_tip)
		sb_add(s, n, "; kept session clone at %s", r->clone_path);
	else if (fs_rmtree(r->clone_path, rmerr, sizeof(rmerr)) != 0)
		sb_add(s, n, "; could not remove session clone (%s)", rmerr);
	else {
		parent = strdup(r->clone_path);
		slash = parent != NULL ? strrchr(parent, '/') : NULL;
		if (slash != NULL) {
			*slash = '\0';
			(void)rmdir(parent); /* the session dir, once empty */
		}
		free(parent);
		sb_add(s, n, "; session clone removed");
	}
}

static int finish_inner(struct gitiso_repo *r, char *summary, size_t summarylen,
			char *err, size_t errlen)
{
	struct finish_state fs;
	git_repository *c = NULL;
	int rc;

	if (summary != NULL && summarylen > 0)
		summary[0] = '\0';
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (r == NULL)
		return -EINVAL;
	if (r->finished) {
		errbuf_set(err, errlen,
			   "gitiso: session clone %s already finished",
			   r->clone_path);
		return -EALREADY;
	}
	r->finished = true;
	memset(&fs, 0, sizeof(fs));
	rc = open_clone(r, &c, summary, summarylen, err, errlen);
	if (rc != 0 || c == NULL)
		return rc;
	scan_clone(r, c, &fs);
	git_repository_free(c);

	if (fs.commits > 0 && r->host_shallow) {
		errbuf_set(err, errlen,
			   "gitiso: %s is a shallow clone, which libgit2 "
			   "cannot fetch into",
			   r->host_workdir);
		rc = -ENOTSUP;
	} else if (fs.commits > 0) {
		rc = fetch_into_host(r, &fs, err, errlen);
		fs.fetched = rc == 0;
	}
	r->commits = fs.commits;
	r->fetched = fs.fetched;
	summary_outcome(r, &fs, err != NULL ? err : "", summary, summarylen);
	keep_or_remove(r, &fs, summary, summarylen);
	if (r->host_dirty > 0)
		sb_add(summary, summarylen,
		       " (the host's uncommitted changes were not part of the "
		       "session)");
	return rc;
}

int gitiso_finish(struct gitiso_repo *r, char *summary, size_t summarylen,
		  char *err, size_t errlen)
{
	int was, rc;

	if (r == NULL)
		return -EINVAL;
	was = gitiso_owner_check_off();
	rc = finish_inner(r, summary, summarylen, err, errlen);
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, was);
	return rc;
}
