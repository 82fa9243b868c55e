/* The host-side steps of a run: the session itself (id, names, state
 * directory, egress log, the files the container reads) and the per-session
 * git clones with their fetch-back at the end. */
#include "fsutil.h"
#include "step.h"

#include <errno.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asuser.h"
#include "broker.h"
#include "egress_log.h"
#include "fence.h"
#include "gitiso.h"
#include "launch_int.h"
#include "sweep.h"

/* ---- session: id, names, state directory, egress log ---- */

static void session_names(struct sess *s)
{
	const struct lcfg *c = s->cfg;
	if (c->name)
		launch_snprintf(s->name, sizeof s->name, "%s", c->name);
	else
		launch_snprintf(s->name, sizeof s->name, "agentsafe-%s", s->id);
	launch_snprintf(s->container, sizeof s->container, "%s", s->name);
	launch_snprintf(s->probe, sizeof s->probe, "agentsafe-%s-probe", s->id);
	launch_snprintf(s->net, sizeof s->net, "agentsafe-%s", s->id);
	launch_snprintf(s->bridge, sizeof s->bridge, "as-%s", s->id);
	launch_snprintf(s->table, sizeof s->table, "%s%s", FENCE_TABLE_PREFIX,
			s->id);
}

/* A small file in the state dir the container reads (mode 0644). */
static int write_seed(const struct sess *s, const char *name, const char *text,
		      char *err, size_t errlen)
{
	char path[4300];
	launch_snprintf(path, sizeof path, "%s/%s", s->state_dir, name);
	FILE *f = fopen(path, "w");
	bool bad = f == NULL;
	if (f != NULL) {
		bad = fputs(text, f) < 0;
		bad = fclose(f) != 0 || bad;
	}
	if (bad) {
		int e = errno ? errno : EIO;
		launch_snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	(void)chmod(path, 0644); /* the agent's uid reads it */
	launch_give_home(s, path);
	return 0;
}

static int session_files(struct sess *s, char *err, size_t errlen)
{
	char cache[4096];
	if (session_state_dir(s->id, s->state_dir, sizeof s->state_dir) != 0 ||
	    session_xdg_dir("CACHE", cache, sizeof cache) != 0 ||
	    fs_mkdir_p(s->state_dir, 0700, NULL, 0) != 0) {
		launch_snprintf(err, errlen,
				"cannot create the session state "
				"directory (HOME/XDG)");
		return -EACCES;
	}
	launch_snprintf(s->cache_dir, sizeof s->cache_dir, "%s/sessions",
			cache);
	int rc = fs_mkdir_p(s->cache_dir, 0700, NULL, 0);
	if (rc != 0) {
		launch_snprintf(err, errlen, "cannot create %s: %s",
				s->cache_dir, strerror(-rc));
		return rc;
	}
	launch_snprintf(s->log_path, sizeof s->log_path, "%s/egress.log",
			s->state_dir);
	launch_save_state(s, false);
	rc = egress_log_open(s->log_path, s->id, &s->log, err, errlen);
	if (rc != 0)
		return rc;
	launch_give_home(s, s->log_path);
	launch_give_home(s, s->cache_dir);
	rc = write_seed(s, "resolv.conf",
			"# agentsafe: no DNS inside; the proxy resolves names\n"
			"nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
			err, errlen);
	if (rc == 0 && s->ssh_keys != NULL)
		rc = write_seed(s, "authorized_keys", s->ssh_keys, err, errlen);
	return rc;
}

void step_session_down(struct sess *s)
{
	struct session_record r;
	char line[1024] = "";
	if (s->upstream_failed > 0 && s->exit_code != EXIT_LAUNCH)
		s->exit_code = EXIT_UPSTREAM; /* recorded for attach/stop */
	if (s->tally.not_fetched > 0)
		s->exit_code = EXIT_NOT_FETCHED;
	launch_save_state(s, true);
	sweep_tally_free(&s->tally);
	if (s->id[0] != '\0' && session_record_load(s->id, &r) == 0) {
		session_summary(&r, line, sizeof line);
		long misuse = r.misuse;
		session_record_free(&r);
		launch_diag("%s", line);
		launch_misuse_alert(s->id, misuse);
	}
	fprintf(stderr, PFX "session %s ended; egress log: %s\n", s->id,
		s->log_path);
	egress_log_close(s->log);
	s->log = NULL;
}

int step_session_up(struct sess *s, char *err, size_t errlen)
{
	if (session_new_id(s->id, sizeof s->id) != 0) {
		s->id[0] = '\0';
		launch_snprintf(err, errlen, "no randomness for a session id");
		return -EIO;
	}
	session_names(s);
	s->exit_code = EXIT_LAUNCH;
	egress_format_ts(s->started, sizeof s->started);
	int rc = session_files(s, err, errlen);
	if (rc != 0) {
		step_session_down(s);
		return rc;
	}
	launch_diag("session %s starting (%s)", s->id, s->name);
	return 0;
}

/* ---- clone repos ---- */

void step_repos_down(struct sess *s)
{
	/* Clones owned by the agent's uid (root launcher): reading them for
	 * the fetch-back needs the file capabilities kept for this. */
	bool files = launch_files_on();
	step_broker_note(s); /* reads egress.log, the user's file */
	sweep_repos(s->repos, s->nrepos, s->cfg->keep, s->asuser, &s->tally);
	launch_files_off(files);
	s->nrepos = 0;
	asuser_stop(s->asuser);
	s->asuser = NULL;
}

/* The repos to clone: --repo, else the one holding the current
 * directory, if any. list points into c or into cwd. */
static size_t repo_list(const struct lcfg *c, const char **list, char *cwd,
			size_t cwdlen)
{
	size_t n = 0;
	if (c->repos.n > 0) {
		for (size_t i = 0; i < c->repos.n; i++)
			list[n++] = c->repos.v[i];
		return n;
	}
	if (c->no_repo)
		return 0;
	git_buf root = {0};
	git_libgit2_init();
	if (getcwd(cwd, cwdlen) != NULL &&
	    git_repository_discover(&root, cwd, 0, NULL) == 0)
		list[n++] = cwd;
	git_buf_dispose(&root);
	git_libgit2_shutdown();
	return n;
}

int step_repos_check(const struct lcfg *c, char *err, size_t errlen)
{
	char cwd[PATH_MAX];
	const char *list[LCFG_MAX_LIST];
	if ((c->push_upstream || c->pr) && c->upstream == NULL) {
		launch_snprintf(err, errlen,
				"--push-upstream and --pr need --upstream "
				"REMOTE (the remote to push to)");
		return -EINVAL;
	}
	if (c->no_repo || repo_list(c, list, cwd, sizeof cwd) > 0)
		return 0;
	launch_snprintf(err, errlen,
			"%s is not in a git repo: start in one, name one with "
			"--repo PATH, or pass --no-repo for a session without",
			getcwd(cwd, sizeof cwd) ? cwd
						: "the current directory");
	return -ENOENT;
}

/* The persistent Codex home, owned by the agent's uid; without it Codex
 * logins just do not persist. */
static void codex_home(struct sess *s)
{
	char p[PATH_MAX];
	if (session_xdg_dir("DATA", p, sizeof p) != 0)
		return;
	launch_snprintf(s->codex, sizeof s->codex, "%s/codex", p);
	if (fs_mkdir_p(s->codex, 0700, NULL, 0) != 0 ||
	    (s->uid != geteuid() && chown(s->codex, s->uid, s->gid) != 0)) {
		launch_diag("%s: %s; Codex logins will not persist", s->codex,
			    strerror(errno));
		s->codex[0] = '\0';
	} else {
		launch_give_home(s, s->codex);
	}
}

static int repos_clone(struct sess *s, char *err, size_t errlen)
{
	char cwd[PATH_MAX];
	const char *list[LCFG_MAX_LIST];
	size_t n = repo_list(s->cfg, list, cwd, sizeof cwd);
	/* sudo: the fetch back into the user's repos is the user's, done by
	 * a helper forked now, while the ids can still change. */
	if (n > 0 && geteuid() == 0 && s->host_uid != 0) {
		int rc = asuser_start(s->host_uid, s->host_gid, &s->asuser, err,
				      errlen);
		if (rc != 0)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = gitiso_prepare(list[i], s->cache_dir, s->id,
					&s->repos[s->nrepos], err, errlen);
		if (rc != 0)
			return rc;
		struct gitiso_repo *r = s->repos[s->nrepos++];
		launch_diag("%s", gitiso_prepare_summary(r));
		char url[256];
		launch_snprintf(url, sizeof url, "http://%s/%s", BROKER_HOST,
				gitiso_name(r));
		rc = gitiso_set_origin(r, url, s->cfg->upstream, err, errlen);
		if (rc != 0)
			return rc;
		if (s->uid != geteuid() &&
		    (rc = gitiso_chown(r, s->uid, s->gid, err, errlen)) != 0)
			return rc;
	}
	return 0;
}

int step_repos_up(struct sess *s, char *err, size_t errlen)
{
	int rc = repos_clone(s, err, errlen);
	if (rc != 0) {
		step_repos_down(s);
		return rc;
	}
	/* Kept clones must be reachable by the user (sudo). */
	char sd[4200];
	launch_snprintf(sd, sizeof sd, "%s/%s", s->cache_dir, s->id);
	if (s->nrepos > 0)
		launch_give_home(s, sd);
	codex_home(s);
	launch_save_state(s, false);
	return 0;
}
