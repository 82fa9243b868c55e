/* Git isolation for a session (libgit2): a per-session clone whose object
 * store borrows the host's objects through a read-only alternates path.
 * This file builds the clone (prepare, or resume after a launcher died);
 * gitiso_finish.c reads it back once the container is gone. */
#include "gitiso.h"
#include "gitiso_int.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <git2.h>

#include "errbuf.h"
#include "fsutil.h"

#define GITISO_MAX_ID	   64
#define GITISO_MAX_NAME	   64
#define GITISO_MAX_SUFFIX  100
#define GITISO_MAX_SHALLOW (16u << 20)

const char *gitiso_git_msg(void)
{
	const git_error *e = git_error_last();

	return e != NULL && e->message != NULL ? e->message : "unknown error";
}

char *gitiso_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

/* Entries git status would show (tracked changes and untracked files; not
 * ignored ones), or -1 when status itself fails. */
long gitiso_count_status(git_repository *repo)
{
	git_status_options so;
	git_status_list *list = NULL;
	long n;

	if (git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION) != 0)
		return -1;
	so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED |
		   GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
	if (git_status_list_new(&list, repo, &so) != 0)
		return -1;
	n = (long)git_status_list_entrycount(list);
	git_status_list_free(list);
	return n;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* The id becomes a directory name and a ref component: keep it boring. */
static bool valid_session_id(const char *id)
{
	size_t n, i;

	if (id == NULL)
		return false;
	n = strlen(id);
	if (n == 0 || n > GITISO_MAX_ID || id[0] == '.' || id[0] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!name_char(id[i]))
			return false;
	if (strstr(id, "..") != NULL || id[n - 1] == '.')
		return false;
	return n < 5 || strcmp(id + n - 5, ".lock") != 0;
}

/* Repo directory names become /workspace/<name> inside the container. */
static void sanitize_name(const char *base, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; base[i] != '\0' && o + 1 < outlen && o < GITISO_MAX_NAME;
	     i++) {
		out[o] = base[i];
		if (!name_char(out[o]))
			out[o] = '_';
		o++;
	}
	out[o] = '\0';
	if (o == 0 || out[0] == '.' || out[0] == '-')
		(void)snprintf(out, outlen, "repo");
}

/* ---- the host's object directories ---------------------------------- */

static bool ro_has(const struct gitiso_repo *r, const char *p)
{
	for (size_t i = 0; i < r->nro; i++)
		if (strcmp(r->ro[i], p) == 0)
			return true;
	return false;
}

/* Adds the object dirs objdir's info/alternates names (relative lines are
 * relative to objdir); no alternates file is the common case. top is the
 * host objects dir the chain started from, for the message. */
static int ro_add_alternates(struct gitiso_repo *r, const char *objdir,
			     const char *top, char *err, size_t errlen)
{
	char *file, *data = NULL, *line, *save = NULL, *p, *c;
	int rc = 0;

	file = gitiso_asprintf("%s/info/alternates", objdir);
	if (file == NULL)
		return -ENOMEM;
	if (fs_read_small(file, GITISO_MAX_ALT_FILE, 0, &data, NULL, NULL, 0) !=
	    0)
		goto out;
	for (line = strtok_r(data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || line[0] == '\0')
			continue;
		p = line[0] == '/' ? strdup(line)
				   : gitiso_asprintf("%s/%s", objdir, line);
		if (p == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		c = realpath(p, NULL);
		free(p);
		if (c == NULL || ro_has(r, c)) {
			free(c);
			continue;
		}
		if (r->nro >= GITISO_MAX_RO) {
			free(c);
			errbuf_set(err, errlen,
				   "gitiso: host objects %s borrow from more "
				   "than %d object directories (alternates)",
				   top, GITISO_MAX_RO);
			rc = -E2BIG;
			goto out;
		}
		r->ro[r->nro++] = c;
	}
out:
	free(data);
	free(file);
	return rc;
}

/* The host objects dir plus whatever it borrows in turn (git follows
 * alternates transitively, so the container must see the whole chain). The
 * list doubles as the work queue: no recursion, and a fixed bound. */
static int collect_readonly_paths(struct gitiso_repo *r, const char *objdir,
				  char *err, size_t errlen)
{
	char *canon = realpath(objdir, NULL);
	int rc = 0;

	if (canon == NULL) {
		rc = -errno;
		errbuf_set(err, errlen, "gitiso: host objects directory %s: %s",
			   objdir, strerror(-rc));
		return rc;
	}
	r->ro[r->nro++] = canon;
	for (size_t q = 0; rc == 0 && q < r->nro; q++)
		rc = ro_add_alternates(r, r->ro[q], objdir, err, errlen);
	return rc;
}

/* Records where the host repository is and what the clone borrows from it
 * (host must have a work tree). */
static int take_host_paths(struct gitiso_repo *r, git_repository *host,
			   char *err, size_t errlen)
{
	char *objdir;
	int rc = -ENOMEM;

	r->host_workdir = strdup(git_repository_workdir(host));
	r->host_gitdir = strdup(git_repository_path(host));
	objdir = gitiso_asprintf("%sobjects", git_repository_commondir(host));
	if (r->host_workdir == NULL || r->host_gitdir == NULL || objdir == NULL)
		goto out;
	rc = collect_readonly_paths(r, objdir, err, errlen);
	if (rc != 0)
		goto out;
	r->alternates = gitiso_asprintf("%s\n", r->ro[0]);
	rc = r->alternates != NULL ? 0 : -ENOMEM;
	r->host_shallow = git_repository_is_shallow(host) == 1;
out:
	free(objdir);
	return rc;
}

/* ---- handle and accessors ------------------------------------------- */

/* Same walk as fs_rmtree, changing owners instead of removing. */
int gitiso_chown(struct gitiso_repo *r, uid_t uid, gid_t gid, char *err,
		 size_t errlen)
{
	char fserr[GITISO_FSERR];
	struct stat st;
	int rc;

	if (r == NULL || r->clone_path == NULL)
		return -EINVAL;
	if (lstat(r->clone_path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		errbuf_set(err, errlen,
			   "gitiso: session clone %s is not a directory",
			   r->clone_path);
		return -ENOTDIR;
	}
	rc = fs_chown_tree(r->clone_path, uid, gid, fserr, sizeof(fserr));
	if (rc != 0)
		errbuf_set(err, errlen, "gitiso: %s", fserr);
	return rc;
}

void gitiso_free(struct gitiso_repo *r)
{
	if (r == NULL)
		return;
	free(r->name);
	free(r->clone_path);
	free(r->clone_gitdir);
	free(r->host_workdir);
	free(r->host_gitdir);
	free(r->session_id);
	free(r->branch_ref);
	free(r->branch_short);
	free(r->alternates);
	free(r->prepare_summary);
	free(r->note);
	for (size_t i = 0; i < r->nro; i++)
		free(r->ro[i]);
	if (r->libgit2_up)
		git_libgit2_shutdown();
	free(r);
}

const char *gitiso_name(const struct gitiso_repo *r)
{
	return r->name;
}

const char *gitiso_clone_path(const struct gitiso_repo *r)
{
	return r->clone_path;
}

const char *const *gitiso_readonly_paths(const struct gitiso_repo *r)
{
	return (const char *const *)r->ro;
}

const char *gitiso_host_repo(const struct gitiso_repo *r)
{
	return r->host_workdir;
}

const char *gitiso_branch(const struct gitiso_repo *r)
{
	return r->branch_short;
}

const char *gitiso_prepare_summary(const struct gitiso_repo *r)
{
	return r->prepare_summary;
}

const char *gitiso_base(const struct gitiso_repo *r)
{
	return r->base_hex;
}

/* ---- prepare: building the clone ------------------------------------ */

static int set_identity(git_config *local, git_repository *host)
{
	git_config *snap = NULL;
	const char *name = NULL, *email = NULL;
	int rc;

	/* The host's effective identity (local + ~/.gitconfig + system); the
	 * container sees none of those files, so copy the values. */
	if (git_repository_config_snapshot(&snap, host) == 0) {
		if (git_config_get_string(&name, snap, "user.name") != 0 ||
		    name[0] == '\0')
			name = NULL;
		if (git_config_get_string(&email, snap, "user.email") != 0 ||
		    email[0] == '\0')
			email = NULL;
	}
	rc = git_config_set_string(local, "user.name",
				   name ? name : "AgentSafe Agent");
	if (rc == 0)
		rc = git_config_set_string(local, "user.email",
					   email ? email
						 : "agent@agentsafe.invalid");
	git_config_free(snap);
	return rc;
}

/* The clone's own .git, its alternates file, and a copy of the host's
 * shallow list (without it history walks on a shallow host fail). */
static int clone_init(struct gitiso_repo *r, const char *host_commondir,
		      char *err, size_t errlen)
{
	git_repository_init_options io;
	git_repository *c = NULL;
	char *path = NULL, *data = NULL;
	size_t len = 0;
	int rc;

	if (git_repository_init_options_init(
		&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION) != 0)
		return -EIO;
	io.flags = GIT_REPOSITORY_INIT_NO_REINIT;
	io.initial_head = r->branch_ref;
	if (git_repository_init_ext(&c, r->clone_path, &io) != 0) {
		errbuf_set(err, errlen,
			   "gitiso: cannot create the session clone at %s: %s",
			   r->clone_path, gitiso_git_msg());
		return -EIO;
	}
	git_repository_free(c);

	rc = -ENOMEM;
	path = gitiso_asprintf("%sobjects/info/alternates", r->clone_gitdir);
	if (path == NULL)
		goto out;
	rc = fs_write_new(path, r->alternates, strlen(r->alternates), 0644,
			  NULL, 0);
	if (rc != 0) {
		errbuf_set(err, errlen,
			   "gitiso: cannot write the alternates file in %s: %s",
			   r->clone_gitdir, strerror(-rc));
		goto out;
	}
	free(path);
	path = gitiso_asprintf("%sshallow", host_commondir);
	if (path == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (fs_read_small(path, GITISO_MAX_SHALLOW, 0, &data, &len, NULL, 0) !=
	    0)
		goto out; /* not a shallow host */
	free(path);
	path = gitiso_asprintf("%sshallow", r->clone_gitdir);
	rc = path != NULL ? fs_write_new(path, data, len, 0644, NULL, 0)
			  : -ENOMEM;
	if (rc != 0)
		errbuf_set(err, errlen,
			   "gitiso: cannot copy the shallow file into %s",
			   r->clone_gitdir);
out:
	free(data);
	free(path);
	return rc;
}

/* The session branch at base, a fresh checkout, and the clone's config. */
static int clone_configure(struct gitiso_repo *r, git_repository *host,
			   char *err, size_t errlen)
{
	git_checkout_options co;
	git_repository *c = NULL;
	git_reference *ref = NULL;
	git_config *cfg = NULL, *local = NULL;
	int rc = -EIO;

	if (git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION) != 0)
		goto out;
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	if (git_repository_open_ext(&c, r->clone_path,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 ||
	    git_reference_create(&ref, c, r->branch_ref, &r->base, 0,
				 "agentsafe: session start") != 0 ||
	    git_checkout_head(c, &co) != 0 ||
	    git_repository_config(&cfg, c) != 0 ||
	    git_config_open_level(&local, cfg, GIT_CONFIG_LEVEL_LOCAL) != 0)
		goto out;
	/* A host gpgsign setting must not break commits inside (no keys,
	 * no agent there); the ids are for humans, finish trusts memory. */
	if (set_identity(local, host) != 0 ||
	    git_config_set_bool(local, "commit.gpgsign", 0) != 0 ||
	    git_config_set_bool(local, "tag.gpgsign", 0) != 0 ||
	    git_config_set_string(local, "agentsafe.session", r->session_id) !=
		0 ||
	    git_config_set_string(local, "agentsafe.base", r->base_hex) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		errbuf_set(err, errlen,
			   "gitiso: setting up the session clone at %s: %s",
			   r->clone_path, gitiso_git_msg());
	git_config_free(local);
	git_config_free(cfg);
	git_reference_free(ref);
	git_repository_free(c);
	return rc;
}

/* Reserves <sessdir>/<name>, <name>-2, ... with mkdir so two repos with the
 * same name (or two launchers) never share a clone. */
static int reserve_clone_dir(struct gitiso_repo *r, const char *sessdir,
			     const char *base, char *err, size_t errlen)
{
	char *name = NULL, *path = NULL;
	int rc = -EEXIST;

	for (int i = 1; rc == -EEXIST && i <= GITISO_MAX_SUFFIX; i++) {
		free(name);
		free(path);
		name =
		    i == 1 ? strdup(base) : gitiso_asprintf("%s-%d", base, i);
		path = name != NULL ? gitiso_asprintf("%s/%s", sessdir, name)
				    : NULL;
		if (path == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		rc = mkdir(path, 0700) == 0 ? 0 : -errno;
	}
	if (rc == -EEXIST)
		errbuf_set(err, errlen,
			   "gitiso: more than %d repos named %s in session "
			   "dir %s",
			   GITISO_MAX_SUFFIX, base, sessdir);
	else if (rc != 0)
		errbuf_set(err, errlen, "gitiso: cannot create %s/%s: %s",
			   sessdir, base, strerror(-rc));
	if (rc != 0)
		goto out;
	r->name = name;
	name = NULL;
	r->clone_path = path;
	path = NULL;
out:
	free(name);
	free(path);
	return rc;
}

/* What prepare's steps share; the handle under construction (r) owns the
 * rest. */
struct prep {
	struct gitiso_repo *r;
	const char *host_path;
	const char *sessions_dir;
	const char *session_id;
	git_repository *host;
	char *sessdir; /* <canonical sessions dir>/<id> */
	char headdesc[256];
	char *err;
	size_t errlen;
};

static int prep_names(struct prep *p)
{
	struct gitiso_repo *r = p->r;
	int valid = 0;

	r->session_id = strdup(p->session_id);
	r->branch_ref =
	    gitiso_asprintf("refs/heads/agentsafe/%s", p->session_id);
	r->branch_short = gitiso_asprintf("agentsafe/%s", p->session_id);
	if (!r->session_id || !r->branch_ref || !r->branch_short)
		return -ENOMEM;
	if (git_reference_name_is_valid(&valid, r->branch_ref) != 0 || !valid) {
		errbuf_set(p->err, p->errlen,
			   "gitiso: %s is not a valid branch name",
			   r->branch_ref);
		return -EINVAL;
	}
	return 0;
}

/* The host repository, its HEAD commit (the clone's base) and the object
 * dirs the clone will borrow. */
static int prep_host(struct prep *p)
{
	struct gitiso_repo *r = p->r;
	git_reference *head = NULL;
	git_object *obj = NULL;
	const char *wd;
	int rc = -EIO;

	/* No GIT_DIR/GIT_WORK_TREE from the environment: the user named a
	 * directory, so use what is really there. */
	if (git_repository_open_ext(&p->host, p->host_path, 0, NULL) != 0) {
		errbuf_set(p->err, p->errlen,
			   "gitiso: %s is not inside a git repository: %s",
			   p->host_path, gitiso_git_msg());
		return -ENOENT;
	}
	wd = git_repository_workdir(p->host);
	if (wd == NULL || git_repository_is_bare(p->host)) {
		errbuf_set(p->err, p->errlen,
			   "gitiso: %s is a bare repository; a session needs "
			   "a repository with a work tree",
			   p->host_path);
		return -EINVAL;
	}
	if (git_repository_head_unborn(p->host) == 1) {
		errbuf_set(p->err, p->errlen,
			   "gitiso: repository %s has no commits yet (unborn "
			   "HEAD); make a first commit before starting a "
			   "session",
			   wd);
		return -ENOENT;
	}
	if (git_repository_head(&head, p->host) != 0 ||
	    git_reference_peel(&obj, head, GIT_OBJECT_COMMIT) != 0) {
		errbuf_set(p->err, p->errlen,
			   "gitiso: cannot resolve HEAD of %s to a commit: %s",
			   wd, gitiso_git_msg());
		goto out;
	}
	git_oid_cpy(&r->base, git_object_id(obj));
	git_oid_tostr(r->base_hex, sizeof(r->base_hex), &r->base);
	if (git_repository_head_detached(p->host) == 1)
		(void)snprintf(p->headdesc, sizeof(p->headdesc),
			       "detached HEAD %.12s", r->base_hex);
	else
		(void)snprintf(p->headdesc, sizeof(p->headdesc), "%s at %.12s",
			       git_reference_shorthand(head), r->base_hex);
	rc = take_host_paths(r, p->host, p->err, p->errlen);
out:
	git_object_free(obj);
	git_reference_free(head);
	return rc;
}

static int prep_sessdir(struct prep *p)
{
	char fserr[GITISO_FSERR];
	char *canon = NULL;
	int rc;

	rc = fs_mkdir_p(p->sessions_dir, 0700, fserr, sizeof(fserr));
	if (rc == 0 && (canon = realpath(p->sessions_dir, NULL)) == NULL)
		rc = -errno;
	if (rc != 0) {
		errbuf_set(p->err, p->errlen,
			   "gitiso: cannot create sessions directory %s: %s",
			   p->sessions_dir, strerror(-rc));
		goto out;
	}
	p->sessdir = gitiso_asprintf("%s/%s", canon, p->session_id);
	if (p->sessdir == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (mkdir(p->sessdir, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		errbuf_set(p->err, p->errlen, "gitiso: cannot create %s: %s",
			   p->sessdir, strerror(-rc));
	}
out:
	free(canon);
	return rc;
}

static void unprep_sessdir(struct prep *p)
{
	(void)rmdir(p->sessdir); /* only if empty: other repos may be in it */
}

/* Names the clone after the host work tree's directory. */
static int prep_clonedir(struct prep *p)
{
	const char *wd = p->r->host_workdir, *slash;
	char tmp[PATH_MAX], name[GITISO_MAX_NAME + 8];
	size_t n = strlen(wd);

	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, wd, n + 1);
	while (n > 1 && tmp[n - 1] == '/') /* libgit2 ends it with '/' */
		tmp[--n] = '\0';
	slash = strrchr(tmp, '/');
	sanitize_name(slash ? slash + 1 : tmp, name, sizeof(name));
	return reserve_clone_dir(p->r, p->sessdir, name, p->err, p->errlen);
}

static void unprep_clonedir(struct prep *p)
{
	(void)fs_rmtree(p->r->clone_path, NULL, 0);
}

static int prep_clone(struct prep *p)
{
	struct gitiso_repo *r = p->r;
	int rc;

	r->clone_gitdir = gitiso_asprintf("%s/.git/", r->clone_path);
	if (r->clone_gitdir == NULL)
		return -ENOMEM;
	rc =
	    clone_init(r, git_repository_commondir(p->host), p->err, p->errlen);
	if (rc == 0)
		rc = clone_configure(r, p->host, p->err, p->errlen);
	return rc;
}

static int prep_summary(struct prep *p)
{
	struct gitiso_repo *r = p->r;
	long dirty = gitiso_count_status(p->host);
	char *t;

	r->host_dirty = dirty > 0 ? (size_t)dirty : 0;
	if (dirty > 0)
		r->prepare_summary = gitiso_asprintf(
		    "%s: session clone on %s from %s; the host's uncommitted "
		    "changes (%ld files) are NOT in the session",
		    r->name, r->branch_short, p->headdesc, dirty);
	else
		r->prepare_summary =
		    gitiso_asprintf("%s: session clone on %s from %s", r->name,
				    r->branch_short, p->headdesc);
	if (r->prepare_summary != NULL && r->host_shallow) {
		t = gitiso_asprintf(
		    "%s; the host is a shallow clone: commits made "
		    "inside cannot be fetched back automatically",
		    r->prepare_summary);
		free(r->prepare_summary);
		r->prepare_summary = t;
	}
	return r->prepare_summary != NULL ? 0 : -ENOMEM;
}

/* A failing step cleans up after itself; the steps before it are undone
 * in reverse. */
static const struct prep_step {
	int (*run)(struct prep *p);
	void (*undo)(struct prep *p);
} prep_steps[] = {
    {prep_names, NULL},
    {prep_host, NULL},
    {prep_sessdir, unprep_sessdir},
    {prep_clonedir, unprep_clonedir},
    {prep_clone, NULL},
    {prep_summary, NULL},
};

#define PREP_NSTEPS (sizeof(prep_steps) / sizeof(prep_steps[0]))

static int prepare_inner(const char *host_path, const char *sessions_dir,
			 const char *session_id, struct gitiso_repo **out,
			 char *err, size_t errlen)
{
	struct prep p = {.host_path = host_path,
			 .sessions_dir = sessions_dir,
			 .session_id = session_id,
			 .err = err,
			 .errlen = errlen};
	size_t done = 0;
	int rc = 0;

	*out = NULL;
	if (host_path == NULL || sessions_dir == NULL ||
	    sessions_dir[0] != '/') {
		errbuf_set(err, errlen,
			   "gitiso: need a host path and an absolute sessions "
			   "directory");
		return -EINVAL;
	}
	if (!valid_session_id(session_id)) {
		errbuf_set(err, errlen,
			   "gitiso: session id '%s' is not usable as a branch "
			   "name (letters, digits, '-', '_', '.'; at most %d)",
			   session_id ? session_id : "(null)", GITISO_MAX_ID);
		return -EINVAL;
	}
	p.r = calloc(1, sizeof(*p.r));
	if (p.r == NULL)
		return -ENOMEM;
	if (git_libgit2_init() < 0) {
		errbuf_set(err, errlen, "gitiso: libgit2 init failed: %s",
			   gitiso_git_msg());
		rc = -EIO;
		goto out;
	}
	p.r->libgit2_up = true;
	for (; rc == 0 && done < PREP_NSTEPS; done++)
		rc = prep_steps[done].run(&p);
	if (rc != 0) {
		if (rc == -ENOMEM)
			errbuf_set(err, errlen,
				   "gitiso: out of memory preparing %s",
				   host_path);
		for (done--; done-- > 0;)
			if (prep_steps[done].undo != NULL)
				prep_steps[done].undo(&p);
		goto out;
	}
	*out = p.r;
	p.r = NULL;
out:
	git_repository_free(p.host);
	free(p.sessdir);
	gitiso_free(p.r);
	return rc;
}

/* ---- resume and the public entry points ----------------------------- */

/* Rebuilds the handle of a session whose launcher died, from what the
 * launcher recorded outside the container (never from the clone, which
 * the agent could edit): host work tree, clone path, id and base. */
static int resume_inner(const char *host_workdir, const char *clone_path,
			const char *session_id, const char *base_hex,
			struct gitiso_repo **out, char *err, size_t errlen)
{
	struct gitiso_repo *r;
	git_repository *host = NULL;
	const char *slash;
	int rc = -EINVAL;

	*out = NULL;
	if (host_workdir == NULL || clone_path == NULL || base_hex == NULL ||
	    !valid_session_id(session_id) ||
	    strlen(base_hex) != GIT_OID_HEXSZ) {
		errbuf_set(err, errlen,
			   "gitiso: cannot resume: need host, clone path, a "
			   "valid session id and a %d-digit base commit",
			   GIT_OID_HEXSZ);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	if (git_libgit2_init() < 0) {
		rc = -EIO;
		goto out;
	}
	r->libgit2_up = true;
	if (git_oid_fromstr(&r->base, base_hex) != 0) {
		errbuf_set(err, errlen,
			   "gitiso: cannot resume: bad base commit %s",
			   base_hex);
		goto out;
	}
	git_oid_tostr(r->base_hex, sizeof(r->base_hex), &r->base);
	r->clone_path = realpath(clone_path, NULL);
	if (r->clone_path == NULL) {
		rc = -errno;
		errbuf_set(err, errlen,
			   "gitiso: cannot resume: session clone %s: %s",
			   clone_path, strerror(-rc));
		goto out;
	}
	slash = strrchr(r->clone_path, '/');
	r->name = strdup(slash ? slash + 1 : r->clone_path);
	r->clone_gitdir = gitiso_asprintf("%s/.git/", r->clone_path);
	r->session_id = strdup(session_id);
	r->branch_ref = gitiso_asprintf("refs/heads/agentsafe/%s", session_id);
	r->branch_short = gitiso_asprintf("agentsafe/%s", session_id);
	if (!r->session_id || !r->branch_ref || !r->branch_short || !r->name ||
	    !r->clone_gitdir) {
		rc = -ENOMEM;
		goto out;
	}
	if (git_repository_open_ext(&host, host_workdir,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 ||
	    git_repository_workdir(host) == NULL) {
		errbuf_set(err, errlen,
			   "gitiso: cannot resume: %s is not a git work tree: "
			   "%s",
			   host_workdir, gitiso_git_msg());
		rc = -ENOENT;
		goto out;
	}
	rc = take_host_paths(r, host, err, errlen);
	if (rc != 0)
		goto out;
	r->prepare_summary =
	    gitiso_asprintf("%s: resumed session clone %s on %s", r->name,
			    r->clone_path, r->branch_short);
	if (r->prepare_summary == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	*out = r;
	r = NULL;
out:
	git_repository_free(host);
	gitiso_free(r);
	return rc;
}

/* libgit2's ownership check (safe.directory) exists so that a repository
 * owned by someone else cannot make git run its configured programs
 * (fsmonitor, hooks, filters); libgit2 runs none of them. The clone is
 * legitimately owned by the container's uid (which may differ from ours
 * when the launcher runs as root), and the layout checks of
 * gitiso_finish.c stand in for the ownership check, so it is off while
 * gitiso works and restored afterwards. */
int gitiso_owner_check_off(void)
{
	int was = 1;

	if (git_libgit2_opts(GIT_OPT_GET_OWNER_VALIDATION, &was) != 0)
		was = 1;
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
	return was;
}

int gitiso_prepare(const char *host_path, const char *sessions_dir,
		   const char *session_id, struct gitiso_repo **out, char *err,
		   size_t errlen)
{
	int was, rc;

	if (out == NULL)
		return -EINVAL;
	if (git_libgit2_init() < 0) {
		errbuf_set(err, errlen, "gitiso: libgit2 init failed: %s",
			   gitiso_git_msg());
		return -EIO;
	}
	was = gitiso_owner_check_off();
	rc = prepare_inner(host_path, sessions_dir, session_id, out, err,
			   errlen);
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, was);
	git_libgit2_shutdown();
	return rc;
}

int gitiso_resume(const char *host_workdir, const char *clone_path,
		  const char *session_id, const char *base_hex,
		  struct gitiso_repo **out, char *err, size_t errlen)
{
	int was, rc;

	if (out == NULL)
		return -EINVAL;
	if (git_libgit2_init() < 0) {
		errbuf_set(err, errlen, "gitiso: libgit2 init failed: %s",
			   gitiso_git_msg());
		return -EIO;
	}
	was = gitiso_owner_check_off();
	rc = resume_inner(host_workdir, clone_path, session_id, base_hex, out,
			  err, errlen);
	(void)git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, was);
	git_libgit2_shutdown();
	return rc;
}
