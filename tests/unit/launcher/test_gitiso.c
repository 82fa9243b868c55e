/* Git isolation on real repositories: host repos made with the git CLI, the
 * agent's work done with the git CLI inside the clone (container-like env,
 * also as an unprivileged uid behind a read-only bind mount), and the host
 * .git hashed file by file before and after every session. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <git2.h>

#include "gitiso.h"

#define AGENT_UID 65534

static char g_root[256];      /* per-test temp dir */
static char g_home[PATH_MAX]; /* empty HOME for libgit2 and the CLI */
static char g_sessions[PATH_MAX];
static char g_agent_env[PATH_MAX * 2];

__attribute__((format(printf, 1, 2))) static int run(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st == -1)
		return -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "test_gitiso: exit %d: %s\n",
			WIFEXITED(st) ? WEXITSTATUS(st) : -1, cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* For commands that must fail: no diagnostics, just whether it failed. */
__attribute__((format(printf, 1, 2))) static bool fails(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	/* "could not run at all" must not count as "was refused" */
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) == 126 ||
	    WEXITSTATUS(st) == 127)
		fail_msg("test_gitiso: could not run: %s", cmd);
	return WEXITSTATUS(st) != 0;
}

/* Output of a shell command (malloc'd, trailing newline stripped). */
__attribute__((format(printf, 1, 2))) static char *out(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	FILE *p;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;

	assert_non_null(m);
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		fwrite(chunk, 1, n, m);
	pclose(p);
	fclose(m);
	while (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	return buf;
}

/* Every file's hash plus every entry's type/mode/owner/link target. */
static char *manifest(const char *dir)
{
	return out("cd '%s' && { find . -printf '%%y %%m %%U:%%G %%p -> %%l\\n'"
		   " | LC_ALL=C sort; find . -type f -print0 | LC_ALL=C sort -z"
		   " | xargs -0 -r sha256sum; }",
		   dir);
}

static bool has_line(const char *text, const char *line, size_t len)
{
	const char *p = text;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		if (l == len && memcmp(p, line, len) == 0)
			return true;
		p = nl ? nl + 1 : p + l;
	}
	return false;
}

/* Every line of `before` is still in `after`; new lines only for the
 * session branch ref, its reflog and fetched objects. */
static void assert_only_branch_added(const char *before, const char *after,
				     const char *id)
{
	char ref[256], log[256];
	const char *p = before;

	snprintf(ref, sizeof(ref), "./refs/heads/agentsafe");
	snprintf(log, sizeof(log), "./logs/refs/heads/agentsafe");
	(void)id;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		if (!has_line(after, p, l)) {
			fprintf(stderr, "changed/removed in host .git: %.*s\n",
				(int)l, p);
			fail();
		}
		p = nl ? nl + 1 : p + l;
	}
	p = after;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		char line[1024];
		snprintf(line, sizeof(line), "%.*s", (int)l, p);
		if (!has_line(before, p, l) && strstr(line, ref) == NULL &&
		    strstr(line, log) == NULL &&
		    strstr(line, "./objects/pack/pack-") == NULL &&
		    strstr(line, "./objects/info/packs") == NULL) {
			/* loose objects: ./objects/xx[/yyyy...] */
			const char *o = strstr(line, "./objects/");
			bool loose = o != NULL && strlen(o) >= 12 &&
				     strchr("0123456789abcdef", o[10]) &&
				     strchr("0123456789abcdef", o[11]);
			if (!loose) {
				fprintf(stderr,
					"unexpected new entry in host "
					".git: %s\n",
					line);
				fail();
			}
		}
		p = nl ? nl + 1 : p + l;
	}
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_root, sizeof(g_root), "/tmp/agentsafe-gitiso-XXXXXX");
	if (mkdtemp(g_root) == NULL)
		return -1;
	/* the unprivileged "container user" must traverse to the clone */
	if (chmod(g_root, 0755) != 0)
		return -1;
	snprintf(g_home, sizeof(g_home), "%s/home", g_root);
	snprintf(g_sessions, sizeof(g_sessions), "%s/sessions", g_root);
	if (mkdir(g_home, 0755) != 0)
		return -1;
	snprintf(
	    g_agent_env, sizeof(g_agent_env),
	    "env -i PATH=/usr/bin:/bin HOME=%s GIT_CONFIG_GLOBAL=/dev/null "
	    "GIT_CONFIG_NOSYSTEM=1",
	    g_home);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return run("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", g_root,
		   g_root);
}

/* A host repo at <root>/<sub>/<name> with two commits on main. */
static void make_host(char *path, size_t len, const char *sub, const char *name,
		      bool identity)
{
	snprintf(path, len, "%s/%s/%s", g_root, sub, name);
	assert_int_equal(run("mkdir -p '%s' && cd '%s' && "
			     "git init -q -b main . && "
			     "printf 'one\\ntwo\\nthree\\n' > a.txt && "
			     "mkdir -p src && printf 'int x;\\n' > src/x.c && "
			     "git add -A && "
			     "git -c user.name=Setup -c user.email=s@t.invalid "
			     "commit -q -m first && "
			     "printf 'four\\n' >> a.txt && git add -A && "
			     "git -c user.name=Setup -c user.email=s@t.invalid "
			     "commit -q -m second",
			     path, path),
			 0);
	if (identity)
		assert_int_equal(
		    run("git -C '%s' config user.name 'Host Person'"
			" && git -C '%s' config user.email "
			"host@t.invalid",
			path, path),
		    0);
}

static struct gitiso_repo *prepare_ok(const char *host, const char *id)
{
	struct gitiso_repo *r = NULL;
	char err[512] = "";
	int rc = gitiso_prepare(host, g_sessions, id, &r, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "prepare: %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(r);
	return r;
}

static void agent_commit(const struct gitiso_repo *r, const char *file,
			 const char *text)
{
	assert_int_equal(run("cd '%s' && %s sh -c \"printf '%s' >> '%s' && "
			     "git add -A && git commit -q -m 'agent: %s'\"",
			     gitiso_clone_path(r), g_agent_env, text, file,
			     file),
			 0);
}

static char *git_out(const char *repo, const char *args)
{
	return out("git -C '%s' %s 2>/dev/null", repo, args);
}

static bool exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

static void test_commit_inside_appears_on_host(void **state)
{
	char host[PATH_MAX], hostgit[PATH_MAX + 8], sum[1024], err[512];
	char alt[PATH_MAX + 64];
	(void)state;

	make_host(host, sizeof(host), "h", "app", true);
	snprintf(hostgit, sizeof(hostgit), "%s/.git", host);
	char *head_before = git_out(host, "rev-parse HEAD");
	char *git_before = manifest(hostgit);
	char *wt_before =
	    out("cd '%s' && find . -path ./.git -prune -o -type f "
		"-print0 | LC_ALL=C sort -z | xargs -0 sha256sum",
		host);

	struct gitiso_repo *r = prepare_ok(host, "s1");
	char *clone = strdup(gitiso_clone_path(r));
	char want[PATH_MAX + 32];
	snprintf(want, sizeof(want), "%s/s1/app", g_sessions);
	assert_string_equal(clone, want);
	assert_string_equal(gitiso_name(r), "app");
	assert_string_equal(gitiso_branch(r), "agentsafe/s1");
	/* alternates -> the host objects dir, which is the read-only mount */
	const char *const *ro = gitiso_readonly_paths(r);
	char *objs = realpath(hostgit, NULL);
	assert_non_null(objs);
	snprintf(alt, sizeof(alt), "%s/objects", objs);
	assert_non_null(ro[0]);
	assert_string_equal(ro[0], alt);
	assert_null(ro[1]);
	char *altfile = out("cat '%s/.git/objects/info/alternates'", clone);
	assert_string_equal(altfile, alt);
	/* no host objects copied: only the alternates file in objects/ */
	char *files = out("cd '%s/.git/objects' && find . -type f", clone);
	assert_string_equal(files, "./info/alternates");
	/* fresh checkout of HEAD on the session branch, nothing links back */
	char *br =
	    out("cd '%s' && %s git symbolic-ref HEAD", clone, g_agent_env);
	assert_string_equal(br, "refs/heads/agentsafe/s1");
	char *chead =
	    out("cd '%s' && %s git rev-parse HEAD", clone, g_agent_env);
	assert_string_equal(chead, head_before);
	assert_int_equal(run("cmp -s '%s/a.txt' '%s/a.txt'", host, clone), 0);
	/* its own .git directory: no gitfile, commondir or worktree link */
	assert_int_equal(run("test -d '%s/.git' -a ! -L '%s/.git' -a ! -e "
			     "'%s/.git/commondir' -a ! -e '%s/.git/gitdir'",
			     clone, clone, clone, clone),
			 0);
	char *remotes = out("cd '%s' && %s git remote", clone, g_agent_env);
	assert_string_equal(remotes, "");
	char *gpg =
	    out("cd '%s' && %s git config commit.gpgsign", clone, g_agent_env);
	assert_string_equal(gpg, "false");

	agent_commit(r, "a.txt", "five\\n");
	assert_int_equal(run("cd '%s' && %s sh -c \"printf 'new\\n' > new.txt "
			     "&& git add new.txt && git commit -q -m add\"",
			     clone, g_agent_env),
			 0);
	char *tip = out("cd '%s' && %s git rev-parse HEAD", clone, g_agent_env);

	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "app: 2 commits on agentsafe/s1, 2 files "
				    "changed (+2 -0)"));
	assert_non_null(strstr(sum, "session clone removed"));
	assert_false(exists(clone));

	char *host_branch = git_out(host, "rev-parse refs/heads/agentsafe/s1");
	assert_string_equal(host_branch, tip);
	char *author = git_out(host, "log -1 --format=%an agentsafe/s1");
	assert_string_equal(author, "Host Person");
	char *head_after = git_out(host, "rev-parse HEAD");
	assert_string_equal(head_after, head_before);
	char *sym = git_out(host, "symbolic-ref HEAD");
	assert_string_equal(sym, "refs/heads/main");
	char *wt_after = out("cd '%s' && find . -path ./.git -prune -o -type f "
			     "-print0 | LC_ALL=C sort -z | xargs -0 sha256sum",
			     host);
	assert_string_equal(wt_after, wt_before);
	char *git_after = manifest(hostgit);
	assert_only_branch_added(git_before, git_after, "s1");
	assert_int_equal(
	    run("git -C '%s' fsck --no-progress --no-dangling", host), 0);

	gitiso_free(r);
	free(head_before), free(git_before), free(wt_before), free(clone);
	free(objs), free(altfile), free(files), free(br), free(chead);
	free(remotes), free(gpg), free(tip), free(host_branch), free(author);
	free(head_after), free(sym), free(wt_after), free(git_after);
}

static void test_no_commits_no_branch_clone_removed(void **state)
{
	char host[PATH_MAX], hostgit[PATH_MAX + 8], sum[1024], err[512];
	char sessdir[PATH_MAX + 32];
	(void)state;

	make_host(host, sizeof(host), "h", "tool", true);
	snprintf(hostgit, sizeof(hostgit), "%s/.git", host);
	char *before = manifest(hostgit);
	struct gitiso_repo *r = prepare_ok(host, "quiet");
	char *clone = strdup(gitiso_clone_path(r));
	/* the agent looks around but commits nothing */
	assert_int_equal(run("cd '%s' && %s sh -c 'git status -s && git log "
			     "--oneline >/dev/null'",
			     clone, g_agent_env),
			 0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_string_equal(
	    sum,
	    "tool: no new commits on agentsafe/quiet; session clone removed");
	assert_false(exists(clone));
	snprintf(sessdir, sizeof(sessdir), "%s/quiet", g_sessions);
	assert_false(exists(sessdir));
	char *refs = git_out(host, "for-each-ref refs/heads/agentsafe");
	assert_string_equal(refs, "");
	char *after = manifest(hostgit);
	assert_string_equal(after, before);
	gitiso_free(r);
	free(before), free(after), free(clone), free(refs);
}

static void test_dirty_clone_kept_and_reported(void **state)
{
	char host[PATH_MAX], sum[1024], err[512], want[PATH_MAX * 2];
	(void)state;

	make_host(host, sizeof(host), "h", "dirt", true);
	struct gitiso_repo *r = prepare_ok(host, "d1");
	char *clone = strdup(gitiso_clone_path(r));
	agent_commit(r, "a.txt", "committed\\n");
	assert_int_equal(run("cd '%s' && printf 'wip\\n' >> src/x.c && "
			     "printf 'scratch\\n' > notes.txt",
			     clone),
			 0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "dirt: 1 commit on agentsafe/d1"));
	snprintf(want, sizeof(want),
		 "kept dirty session clone at %s (2 "
		 "uncommitted or untracked files)",
		 clone);
	assert_non_null(strstr(sum, want));
	assert_true(exists(clone));
	assert_int_equal(run("grep -q wip '%s/src/x.c' && test -f "
			     "'%s/notes.txt'",
			     clone, clone),
			 0);
	char *b = git_out(host, "log -1 --format=%s agentsafe/d1");
	assert_string_equal(b, "agent: a.txt");
	gitiso_free(r);

	/* dirty without commits: no branch, clone kept */
	r = prepare_ok(host, "d2");
	free(clone);
	clone = strdup(gitiso_clone_path(r));
	assert_int_equal(run("printf 'x\\n' > '%s/untracked.txt'", clone), 0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(
	    sum, "dirt: no new commits on agentsafe/d2; kept dirty session "
		 "clone at"));
	assert_true(exists(clone));
	char *refs = git_out(host, "for-each-ref refs/heads/agentsafe/d2");
	assert_string_equal(refs, "");
	gitiso_free(r);

	/* a tracked file swapped for a FIFO must not hang the host-side
	 * status (it would block on open), and counts as a change */
	r = prepare_ok(host, "d3");
	free(clone);
	clone = strdup(gitiso_clone_path(r));
	assert_int_equal(run("cd '%s' && rm a.txt && mkfifo a.txt", clone), 0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "kept dirty session clone at"));
	gitiso_free(r);
	free(clone), free(b), free(refs);
}

static void test_host_gpgsign_does_not_break_commits(void **state)
{
	char host[PATH_MAX], sum[1024], err[512], gcfg[PATH_MAX + 32];
	(void)state;

	make_host(host, sizeof(host), "h", "signed", true);
	assert_int_equal(run("git -C '%s' config commit.gpgsign true && git -C "
			     "'%s' config tag.gpgsign true && git -C '%s' "
			     "config gpg.program /bin/false",
			     host, host, host),
			 0);
	/* the setting bites on the host itself */
	assert_true(fails("cd '%s' && %s git commit -q --allow-empty -m "
			  "x 2>/dev/null",
			  host, g_agent_env));
	/* and even if a global config with gpgsign reached the container,
	 * the clone's local config wins */
	snprintf(gcfg, sizeof(gcfg), "%s/gpg.gitconfig", g_root);
	assert_int_equal(run("printf '[commit]\\n\\tgpgsign = true\\n[tag]\\n"
			     "\\tgpgsign = true\\n[gpg]\\n\\tprogram = "
			     "/bin/false\\n' > '%s'",
			     gcfg),
			 0);
	struct gitiso_repo *r = prepare_ok(host, "gpg");
	assert_int_equal(
	    run("cd '%s' && env -i PATH=/usr/bin:/bin HOME=%s "
		"GIT_CONFIG_GLOBAL='%s' GIT_CONFIG_NOSYSTEM=1 sh -c "
		"\"echo y >> a.txt && git commit -qam signed? && "
		"git tag -a v-agent -m t\"",
		gitiso_clone_path(r), g_home, gcfg),
	    0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "signed: 1 commit on agentsafe/gpg"));
	char *msg = git_out(host, "log -1 --format=%s agentsafe/gpg");
	assert_string_equal(msg, "signed?");
	gitiso_free(r);
	free(msg);
}

static void test_destructive_rm_rf_leaves_host_unchanged(void **state)
{
	char host[PATH_MAX], hostgit[PATH_MAX + 8], sum[1024], err[512];
	(void)state;

	make_host(host, sizeof(host), "h", "victim", true);
	snprintf(hostgit, sizeof(hostgit), "%s/.git", host);
	char *before = manifest(hostgit);
	char *wt_before = manifest(host);
	struct gitiso_repo *r = prepare_ok(host, "boom");
	char *clone = strdup(gitiso_clone_path(r));
	/* the agent commits, then wipes everything it can reach */
	agent_commit(r, "a.txt", "doomed\\n");
	assert_int_equal(run("cd '%s' && %s sh -c 'rm -rf ./* ./.[!.]* && "
			     "test -z \"$(ls -A)\"'",
			     clone, g_agent_env),
			 0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "victim: the session deleted its clone "
				    "(including .git); nothing to fetch, host "
				    "repo untouched"));
	assert_false(exists(clone));
	char *after = manifest(hostgit);
	char *wt_after = manifest(host);
	assert_string_equal(after, before);
	assert_string_equal(wt_after, wt_before);
	assert_int_equal(run("git -C '%s' fsck --no-progress", host), 0);
	gitiso_free(r);

	/* only .git wiped, files left: nothing fetched, files kept */
	r = prepare_ok(host, "boom2");
	free(clone);
	clone = strdup(gitiso_clone_path(r));
	assert_int_equal(
	    run("rm -rf '%s/.git' && echo keep >> '%s/a.txt'", clone, clone),
	    0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, ".git is gone; nothing fetched, host repo "
				    "untouched; kept session clone at"));
	assert_true(exists(clone));
	free(after);
	after = manifest(hostgit);
	assert_string_equal(after, before);
	gitiso_free(r);
	free(before), free(after), free(wt_before), free(wt_after), free(clone);
}

/* The agent plants symlinks to the host's .git and work tree inside the
 * clone's .git (invisible to status): removing the clone must not follow
 * them, and a redirected alternates file must stop the fetch. */
static void test_symlink_trap_not_followed(void **state)
{
	char host[PATH_MAX], hostgit[PATH_MAX + 8], sum[1024], err[512];
	(void)state;

	make_host(host, sizeof(host), "h", "trap", true);
	snprintf(hostgit, sizeof(hostgit), "%s/.git", host);
	char *before = manifest(hostgit);
	char *wt_before = manifest(host);
	struct gitiso_repo *r = prepare_ok(host, "trap");
	char *clone = strdup(gitiso_clone_path(r));
	assert_int_equal(
	    run("cd '%s/.git' && ln -s '%s' hostgit && "
		"ln -s '%s' objects/hostwt && mkdir -p deep/er && "
		"ln -s '%s/objects' deep/er/objs && chmod 000 deep",
		clone, hostgit, host, hostgit),
	    0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_string_equal(
	    sum,
	    "trap: no new commits on agentsafe/trap; session clone removed");
	assert_false(exists(clone));
	char *after = manifest(hostgit);
	char *wt_after = manifest(host);
	assert_string_equal(after, before);
	assert_string_equal(wt_after, wt_before);
	gitiso_free(r);
	free(after), free(wt_after);

	/* alternates redirected: refuse to fetch, keep the clone */
	r = prepare_ok(host, "trap2");
	free(clone);
	clone = strdup(gitiso_clone_path(r));
	agent_commit(r, "a.txt", "x\\n");
	assert_int_equal(
	    run("echo /etc >> '%s/.git/objects/info/alternates'", clone), 0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 -EPERM);
	printf("summary: %s / err: %s\n", sum, err);
	assert_non_null(strstr(err, "tampered"));
	assert_non_null(strstr(sum, "kept session clone at"));
	assert_true(exists(clone));
	char *refs = git_out(host, "for-each-ref refs/heads/agentsafe");
	assert_string_equal(refs, "");
	gitiso_free(r);
	free(refs);

	/* .git replaced by a symlink to the host's .git: not followed, not
	 * fetched from, not deleted through */
	r = prepare_ok(host, "trap3");
	free(clone);
	clone = strdup(gitiso_clone_path(r));
	assert_int_equal(
	    run("cd '%s' && rm -rf .git && ln -s '%s' .git", clone, hostgit),
	    0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, ".git is not a directory; nothing fetched, "
				    "host repo untouched; kept session clone"));
	after = manifest(hostgit);
	assert_string_equal(after, before);
	gitiso_free(r);
	free(before), free(after), free(wt_before), free(clone);
}

/* The agent writes .git/commondir in its clone, pointing at another
 * repository (here the host's .git): the clone is no longer the one we
 * made, so nothing is fetched from it and the host repo is untouched. */
static void test_commondir_redirect_not_fetched(void **state)
{
	char host[PATH_MAX], hostgit[PATH_MAX + 8], sum[1024], err[512];
	(void)state;

	make_host(host, sizeof(host), "h", "cdir", true);
	snprintf(hostgit, sizeof(hostgit), "%s/.git", host);
	struct gitiso_repo *r = prepare_ok(host, "cdir");
	char *clone = strdup(gitiso_clone_path(r));
	agent_commit(r, "a.txt", "x\n");
	char *before = manifest(hostgit);
	assert_int_equal(run("echo '%s' > '%s/.git/commondir'", hostgit, clone),
			 0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 -EPERM);
	printf("summary: %s / err: %s\n", sum, err);
	assert_non_null(strstr(err, "tampered"));
	assert_non_null(strstr(sum, "kept session clone at"));
	assert_true(exists(clone));
	char *refs = git_out(host, "for-each-ref refs/heads/agentsafe");
	assert_string_equal(refs, "");
	char *after = manifest(hostgit);
	assert_string_equal(after, before);
	gitiso_free(r);
	free(refs), free(before), free(after), free(clone);
}

/* Host is a linked worktree (objects in the common dir), and a clone
 * made with --shared (objects borrowed again: the chain must be mounted). */
static void test_host_worktree_and_shared_objects(void **state)
{
	char host[PATH_MAX], wt[PATH_MAX], shared[PATH_MAX], sum[1024];
	char err[512], want[PATH_MAX + 16];
	(void)state;

	make_host(host, sizeof(host), "h", "main", true);
	snprintf(wt, sizeof(wt), "%s/h/wt", g_root);
	snprintf(shared, sizeof(shared), "%s/h/shared", g_root);
	assert_int_equal(run("git -C '%s' worktree add -q -b feature '%s' && "
			     "git clone -q --shared '%s' '%s' && git -C '%s' "
			     "config user.name Sharer && git -C '%s' config "
			     "user.email s@t.invalid",
			     host, wt, host, shared, shared, shared),
			 0);
	char *hostreal = realpath(host, NULL);
	assert_non_null(hostreal);

	struct gitiso_repo *r = prepare_ok(wt, "wt");
	snprintf(want, sizeof(want), "%s/.git/objects", hostreal);
	assert_string_equal(gitiso_readonly_paths(r)[0], want);
	assert_null(gitiso_readonly_paths(r)[1]);
	assert_string_equal(gitiso_name(r), "wt");
	assert_non_null(strstr(gitiso_prepare_summary(r), "from feature at"));
	agent_commit(r, "a.txt", "from worktree\n");
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "wt: 1 commit on agentsafe/wt"));
	char *m = git_out(host, "log -1 --format=%s agentsafe/wt");
	assert_string_equal(m, "agent: a.txt");
	char *wthead = git_out(wt, "symbolic-ref HEAD");
	assert_string_equal(wthead, "refs/heads/feature");
	gitiso_free(r);

	r = prepare_ok(shared, "sh");
	const char *const *ro = gitiso_readonly_paths(r);
	assert_non_null(ro[0]);
	assert_non_null(strstr(ro[0], "/h/shared/.git/objects"));
	assert_non_null(ro[1]);
	assert_string_equal(ro[1], want);
	assert_null(ro[2]);
	/* commit as the container user with both object dirs read-only */
	assert_int_equal(
	    run("chmod 0755 '%s' '%s/sh' && chown -R %d:%d '%s' && "
		"unshare --mount --propagation private sh -c "
		"\"mount --bind '%s' '%s' && mount -o remount,bind,"
		"ro '%s' && mount --bind '%s' '%s' && mount -o "
		"remount,bind,ro '%s' && cd '%s' && setpriv "
		"--reuid=%d --regid=%d --clear-groups %s sh -c "
		"'echo s >> a.txt && git commit -qam shared && "
		"git fsck --no-progress'\"",
		g_sessions, g_sessions, AGENT_UID, AGENT_UID,
		gitiso_clone_path(r), ro[0], ro[0], ro[0], ro[1], ro[1], ro[1],
		gitiso_clone_path(r), AGENT_UID, AGENT_UID, g_agent_env),
	    0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "shared: 1 commit on agentsafe/sh"));
	char *who = git_out(shared, "log -1 --format=%an agentsafe/sh");
	assert_string_equal(who, "Sharer");
	gitiso_free(r);
	free(hostreal), free(m), free(wthead), free(who);
}

/* The container user: a different uid, the host repo root-owned 0755, and
 * (like the container) the host objects dir bind-mounted read-only. */
static void test_unprivileged_agent_cannot_write_host_git(void **state)
{
	char host[PATH_MAX], hostgit[PATH_MAX + 8], sum[1024], err[512];
	char as_agent[PATH_MAX * 3];
	(void)state;

	umask(022);
	make_host(host, sizeof(host), "h", "locked", true);
	snprintf(hostgit, sizeof(hostgit), "%s/.git", host);
	char *before = manifest(hostgit);
	struct gitiso_repo *r = prepare_ok(host, "uid");
	const char *clone = gitiso_clone_path(r);
	const char *objs = gitiso_readonly_paths(r)[0];
	/* a link to the host .git must not be followed by the chown */
	assert_int_equal(run("ln -s '%s' '%s/.git/hostlink'", hostgit, clone),
			 0);
	assert_int_equal(
	    gitiso_chown(r, AGENT_UID, AGENT_UID, err, sizeof(err)), 0);
	/* the whole clone handed over, the host untouched */
	assert_int_equal(
	    run("chmod 0755 '%s' '%s/uid' && test -z \"$(find '%s' "
		"! -uid %d)\" && test -z \"$(find '%s' ! -uid 0)\"",
		g_sessions, g_sessions, clone, AGENT_UID, hostgit),
	    0);
	snprintf(as_agent, sizeof(as_agent),
		 "setpriv --reuid=%d --regid=%d --clear-groups %s", AGENT_UID,
		 AGENT_UID, g_agent_env);

	/* commits work with the alternates read-only */
	assert_int_equal(run("cd '%s' && %s sh -c \"echo agent >> a.txt && git "
			     "commit -qam 'as nobody' && git gc -q && git "
			     "fsck --no-progress\"",
			     clone, as_agent),
			 0);
	/* and behind a read-only bind mount of the objects dir, as in the
	 * container */
	assert_int_equal(run("unshare --mount --propagation private sh -c "
			     "\"mount --bind '%s' '%s' && mount -o "
			     "remount,bind,ro '%s' && cd '%s' && %s sh -c "
			     "'echo ro >> a.txt && git commit -qam "
			     "behind-ro-mount && ! touch %s/x 2>/dev/null'\"",
			     objs, objs, objs, clone, as_agent, objs),
			 0);
	/* every way at the host .git fails */
	assert_true(
	    fails("%s touch '%s/objects/evil' 2>/dev/null", as_agent, hostgit));
	assert_true(fails("%s git --git-dir='%s' update-ref "
			  "refs/heads/evil HEAD 2>/dev/null",
			  as_agent, hostgit));
	assert_true(fails("cd '%s' && %s git push -q '%s' "
			  "HEAD:refs/heads/evil 2>/dev/null",
			  clone, as_agent, hostgit));
	assert_true(fails("%s sh -c 'echo /etc > %s/info/alternates' "
			  "2>/dev/null",
			  as_agent, objs));
	char *mid = manifest(hostgit);
	assert_string_equal(mid, before);

	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "locked: 2 commits on agentsafe/uid"));
	char *msg = git_out(host, "log -2 --format=%s agentsafe/uid");
	assert_string_equal(msg, "behind-ro-mount\nas nobody");
	char *after = manifest(hostgit);
	assert_only_branch_added(before, after, "uid");
	assert_int_equal(
	    run("git -C '%s' fsck --no-progress --no-dangling", host), 0);
	gitiso_free(r);
	free(before), free(mid), free(msg), free(after);
}

static void test_two_repos_same_name(void **state)
{
	char h1[PATH_MAX], h2[PATH_MAX], s1[1024], s2[1024], err[512];
	(void)state;

	make_host(h1, sizeof(h1), "one", "app", true);
	make_host(h2, sizeof(h2), "two", "app", false); /* no identity */
	struct gitiso_repo *a = prepare_ok(h1, "multi");
	struct gitiso_repo *b = prepare_ok(h2, "multi");
	assert_string_equal(gitiso_name(a), "app");
	assert_string_equal(gitiso_name(b), "app-2");
	assert_string_not_equal(gitiso_clone_path(a), gitiso_clone_path(b));
	agent_commit(a, "a.txt", "in one\\n");
	agent_commit(b, "src/x.c", "in two\\n");
	assert_int_equal(gitiso_finish(a, s1, sizeof(s1), err, sizeof(err)), 0);
	assert_int_equal(gitiso_finish(b, s2, sizeof(s2), err, sizeof(err)), 0);
	printf("summary: %s\nsummary: %s\n", s1, s2);
	assert_non_null(strstr(s1, "app: 1 commit on agentsafe/multi, 1 file "
				   "changed (+1 -0)"));
	assert_non_null(strstr(s2, "app-2: 1 commit on agentsafe/multi"));
	char *f1 = git_out(h1, "diff --name-only main agentsafe/multi");
	char *f2 = git_out(h2, "diff --name-only main agentsafe/multi");
	assert_string_equal(f1, "a.txt");
	assert_string_equal(f2, "src/x.c");
	char *who = git_out(h2, "log -1 --format='%an <%ae>' agentsafe/multi");
	assert_string_equal(who, "AgentSafe Agent <agent@agentsafe.invalid>");
	gitiso_free(a);
	gitiso_free(b);
	free(f1), free(f2), free(who);
}

static void test_host_detached_head(void **state)
{
	char host[PATH_MAX], sum[1024], err[512];
	(void)state;

	make_host(host, sizeof(host), "h", "det", true);
	assert_int_equal(run("git -C '%s' checkout -q --detach HEAD~1", host),
			 0);
	char *base = git_out(host, "rev-parse HEAD");
	struct gitiso_repo *r = prepare_ok(host, "det");
	assert_non_null(
	    strstr(gitiso_prepare_summary(r), "from detached HEAD"));
	char *c = out("cd '%s' && %s git rev-parse HEAD", gitiso_clone_path(r),
		      g_agent_env);
	assert_string_equal(c, base);
	agent_commit(r, "a.txt", "on detached\\n");
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "det: 1 commit on agentsafe/det"));
	char *parent = git_out(host, "rev-parse agentsafe/det~1");
	assert_string_equal(parent, base);
	char *head = git_out(host, "rev-parse HEAD");
	assert_string_equal(head, base);
	assert_true(fails("git -C '%s' symbolic-ref -q HEAD", host));
	gitiso_free(r);
	free(base), free(c), free(parent), free(head);
}

/* A shallow host (libgit2 1.5 cannot walk cut-off history): commits
 * inside still work; finish must not call them "no commits" and delete
 * them, but keep the clone and say how to fetch by hand. */
static void test_shallow_host_keeps_work(void **state)
{
	char host[PATH_MAX], shallow[PATH_MAX], hostgit[PATH_MAX + 8];
	char sum[2048], err[512];
	(void)state;

	make_host(host, sizeof(host), "h", "deep", true);
	snprintf(shallow, sizeof(shallow), "%s/h/shallow", g_root);
	assert_int_equal(
	    run("git clone -q --depth 1 'file://%s' '%s'", host, shallow), 0);
	snprintf(hostgit, sizeof(hostgit), "%s/.git", shallow);
	char *before = manifest(hostgit);
	struct gitiso_repo *r = prepare_ok(shallow, "sh");
	assert_non_null(
	    strstr(gitiso_prepare_summary(r), "the host is a shallow clone"));
	agent_commit(r, "a.txt", "shallow work\n");
	assert_int_equal(run("cd '%s' && %s sh -c 'git log --oneline | wc -l "
			     "| grep -qx 2 && git fsck --no-progress'",
			     gitiso_clone_path(r), g_agent_env),
			 0);
	int rc = gitiso_finish(r, sum, sizeof(sum), err, sizeof(err));
	printf("summary: %s\n", sum);
	assert_true(rc < 0);
	assert_non_null(strstr(sum, "shallow: 1 commit NOT fetched"));
	assert_non_null(strstr(sum, "to fetch by hand: git -C"));
	assert_non_null(strstr(sum, "kept session clone at"));
	assert_true(exists(gitiso_clone_path(r)));
	char *after = manifest(hostgit);
	assert_string_equal(after, before);
	/* the hint works */
	assert_int_equal(run("git -C '%s' fetch -q '%s' "
			     "refs/heads/agentsafe/sh:refs/heads/review",
			     shallow, gitiso_clone_path(r)),
			 0);
	char *m = git_out(shallow, "log -1 --format=%s review");
	assert_string_equal(m, "agent: a.txt");
	gitiso_free(r);
	free(before), free(after), free(m);
}

/* The launcher died after the session: a new process resumes from the
 * values it recorded and finishes normally. */
static void test_resume_after_launcher_crash(void **state)
{
	char host[PATH_MAX], sum[1024], err[512];
	struct gitiso_repo *r2 = NULL;
	(void)state;

	make_host(host, sizeof(host), "h", "crash", true);
	struct gitiso_repo *r = prepare_ok(host, "cr");
	char *clone = strdup(gitiso_clone_path(r));
	char *hostwd = strdup(gitiso_host_repo(r));
	char *base = strdup(gitiso_base(r));
	char *head = git_out(host, "rev-parse HEAD");
	assert_string_equal(base, head);
	agent_commit(r, "a.txt", "before the crash\n");
	gitiso_free(r); /* no finish: the launcher is gone */
	assert_true(exists(clone));
	/* the agent's edit of the clone's own record changes nothing */
	assert_int_equal(run("cd '%s' && %s git config agentsafe.base 0000",
			     clone, g_agent_env),
			 0);

	assert_int_equal(
	    gitiso_resume(hostwd, clone, "cr", "xyz", &r2, err, sizeof(err)),
	    -EINVAL);
	assert_null(r2);
	assert_int_equal(
	    gitiso_resume(hostwd, clone, "cr", base, &r2, err, sizeof(err)), 0);
	assert_string_equal(gitiso_name(r2), "crash");
	assert_int_equal(gitiso_finish(r2, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "crash: 1 commit on agentsafe/cr, 1 file "
				    "changed (+1 -0); session clone removed"));
	char *m = git_out(host, "log -1 --format=%s agentsafe/cr");
	assert_string_equal(m, "agent: a.txt");
	assert_false(exists(clone));
	gitiso_free(r2);
	free(clone), free(hostwd), free(base), free(head), free(m);
}

/* Work committed on another branch (or a detached HEAD) is not fetched,
 * but it must not be deleted with the clone either. */
static void test_work_on_other_branch_kept(void **state)
{
	char host[PATH_MAX], sum[1024], err[512];
	(void)state;

	make_host(host, sizeof(host), "h", "side", true);
	struct gitiso_repo *r = prepare_ok(host, "ob");
	assert_int_equal(
	    run("cd '%s' && %s sh -c \"git switch -q -c feature && "
		"echo f >> a.txt && git commit -qam feature\"",
		gitiso_clone_path(r), g_agent_env),
	    0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(
	    sum, "side: no new commits on agentsafe/ob; kept session clone "
		 "at"));
	assert_non_null(strstr(sum, "(work outside agentsafe/ob: "
				    "refs/heads/feature)"));
	assert_true(exists(gitiso_clone_path(r)));
	gitiso_free(r);

	r = prepare_ok(host, "ob2");
	assert_int_equal(
	    run("cd '%s' && %s sh -c \"git checkout -q --detach && "
		"echo d >> a.txt && git commit -qam detached\"",
		gitiso_clone_path(r), g_agent_env),
	    0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	printf("summary: %s\n", sum);
	assert_non_null(strstr(sum, "(work outside agentsafe/ob2: detached "
				    "HEAD)"));
	assert_true(exists(gitiso_clone_path(r)));
	gitiso_free(r);
}

static void test_unborn_head_error(void **state)
{
	char host[PATH_MAX], sessdir[PATH_MAX + 16], err[512] = "";
	struct gitiso_repo *r = NULL;
	(void)state;

	snprintf(host, sizeof(host), "%s/empty", g_root);
	assert_int_equal(run("git init -q '%s'", host), 0);
	assert_int_equal(
	    gitiso_prepare(host, g_sessions, "unb", &r, err, sizeof(err)),
	    -ENOENT);
	assert_null(r);
	printf("error: %s\n", err);
	assert_non_null(strstr(err, "has no commits yet (unborn HEAD); make a "
				    "first commit before starting a session"));
	assert_non_null(strstr(err, host));
	snprintf(sessdir, sizeof(sessdir), "%s/unb", g_sessions);
	assert_false(exists(sessdir));
}

static void test_existing_branch_not_overwritten(void **state)
{
	char host[PATH_MAX], sum[1024], err[512];
	(void)state;

	make_host(host, sizeof(host), "h", "busy", true);
	struct gitiso_repo *r = prepare_ok(host, "dup");
	/* the user (or an earlier session) made agentsafe/dup meanwhile */
	assert_int_equal(run("git -C '%s' branch agentsafe/dup HEAD~1", host),
			 0);
	char *old = git_out(host, "rev-parse agentsafe/dup");
	agent_commit(r, "a.txt", "mine\\n");
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 -EEXIST);
	printf("summary: %s / err: %s\n", sum, err);
	assert_non_null(strstr(err, "already has branch agentsafe/dup; not "
				    "overwritten"));
	assert_non_null(strstr(sum, "kept session clone at"));
	assert_true(exists(gitiso_clone_path(r)));
	char *now = git_out(host, "rev-parse agentsafe/dup");
	assert_string_equal(now, old);
	gitiso_free(r);
	free(old), free(now);
}

/* The git broker's side: origin names the broker (with the upstream's
 * branches as upstream/...), a branch the agent already pushed to the host
 * at the tip counts as fetched, and the tip gets the provenance note. */
static void test_origin_pushed_branch_and_note(void **state)
{
	char host[PATH_MAX], sum[1024], err[512] = "";
	(void)state;

	make_host(host, sizeof(host), "h", "brk", true);
	struct gitiso_repo *r = prepare_ok(host, "bk");
	assert_int_equal(gitiso_set_origin(r,
					   "http://git.agentsafe.internal/brk",
					   "up", err, sizeof(err)),
			 0);
	char *url = out("cd '%s' && %s git remote get-url origin",
			gitiso_clone_path(r), g_agent_env);
	assert_string_equal(url, "http://git.agentsafe.internal/brk");
	char *specs =
	    out("cd '%s' && %s git config remote.origin.fetch && "
		"%s git config remote.upstream.fetch && "
		"%s git remote get-url upstream",
		gitiso_clone_path(r), g_agent_env, g_agent_env, g_agent_env);
	assert_string_equal(specs,
			    "+refs/heads/*:refs/remotes/origin/*\n"
			    "+refs/remotes/up/*:refs/remotes/upstream/*\n"
			    "http://git.agentsafe.internal/brk");
	agent_commit(r, "a.txt", "pushed\n");
	char *tip = out("cd '%s' && %s git rev-parse HEAD",
			gitiso_clone_path(r), g_agent_env);
	/* what a push through the broker leaves in the host repo */
	assert_int_equal(run("git -C '%s' fetch -q '%s' "
			     "agentsafe/bk:refs/heads/agentsafe/bk",
			     host, gitiso_clone_path(r)),
			 0);
	assert_int_equal(gitiso_set_note(r, "agentsafe session bk\n"), 0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	int fetched = 0;
	assert_int_equal(gitiso_commits(r, &fetched), 1);
	assert_true(fetched);
	char *note = git_out(host, "notes --ref=agentsafe show agentsafe/bk");
	assert_string_equal(note, "agentsafe session bk");
	char *now = git_out(host, "rev-parse agentsafe/bk");
	assert_string_equal(now, tip);
	gitiso_free(r);
	free(url), free(specs), free(tip), free(note), free(now);
}

static void test_host_changes_not_carried_and_bad_ids(void **state)
{
	char host[PATH_MAX], sum[1024], err[512];
	struct gitiso_repo *r = NULL;
	(void)state;

	make_host(host, sizeof(host), "h", "wip", true);
	assert_int_equal(
	    run("cd '%s' && echo local >> a.txt && echo u > u.txt", host), 0);
	r = prepare_ok(host, "wip");
	printf("prepare: %s\n", gitiso_prepare_summary(r));
	assert_non_null(strstr(gitiso_prepare_summary(r),
			       "uncommitted changes (2 files) are NOT in the "
			       "session"));
	assert_int_equal(
	    run("! grep -q local '%s/a.txt' && test ! -e '%s/u.txt'",
		gitiso_clone_path(r), gitiso_clone_path(r)),
	    0);
	assert_int_equal(gitiso_finish(r, sum, sizeof(sum), err, sizeof(err)),
			 0);
	assert_non_null(strstr(sum, "were not part of the session"));
	gitiso_free(r);
	r = NULL;

	const char *bad[] = {"../x",   "a b",  "",     ".hidden",
			     "x.lock", "a..b", "-opt", "a/b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(gitiso_prepare(host, g_sessions, bad[i], &r,
						err, sizeof(err)),
				 -EINVAL);
		assert_null(r);
	}
	assert_int_equal(
	    gitiso_prepare(g_home, g_sessions, "nogit", &r, err, sizeof(err)),
	    -ENOENT);
	assert_non_null(strstr(err, "is not inside a git repository"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_origin_pushed_branch_and_note,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_inside_appears_on_host,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_no_commits_no_branch_clone_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dirty_clone_kept_and_reported,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_host_gpgsign_does_not_break_commits, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_destructive_rm_rf_leaves_host_unchanged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlink_trap_not_followed,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commondir_redirect_not_fetched,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unprivileged_agent_cannot_write_host_git, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_repos_same_name, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_host_detached_head, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_host_worktree_and_shared_objects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shallow_host_keeps_work, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_resume_after_launcher_crash,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_work_on_other_branch_kept,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unborn_head_error, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_existing_branch_not_overwritten, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_host_changes_not_carried_and_bad_ids, setup, teardown),
	};
	static char home[] = "/tmp/agentsafe-gitiso-home-XXXXXX";

	/* libgit2 must not read the developer's ~/.gitconfig or
	 * /etc/gitconfig: point every config level at an empty dir, and hold
	 * one libgit2 reference so the setting survives gitiso_free(). */
	if (mkdtemp(home) == NULL)
		return 1;
	setenv("HOME", home, 1);
	setenv("XDG_CONFIG_HOME", home, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	git_libgit2_init();
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM,
			 home);
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL,
			 home);
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, home);
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_PROGRAMDATA,
			 home);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	rmdir(home);
	return rc;
}
