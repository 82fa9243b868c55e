/* Teardown pieces and the stale sweep. A launcher killed without its
 * teardown leaves a container, a network, a proxy, a fence and clones with
 * unfetched commits; the next launch (or `stop`) finds them through
 * session.json and the session label, and undoes them here. */
#include "sweep.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "asuser.h"
#include "caps.h"
#include "claude_login.h"
#include "docker.h"
#include "fence.h"
#include "gitiso.h"
#include "launch_int.h"
#include "session.h"

void sweep_container(struct docker *d, const char *name)
{
	char err[512] = "";
	if (docker_delete_container(d, name, err, sizeof err) != 0)
		launch_diag("removing container %s: %s", name, err);
}

void sweep_network(struct docker *d, const char *name)
{
	char err[512] = "";
	if (docker_delete_network(d, name, err, sizeof err) != 0)
		launch_diag("removing network %s: %s", name, err);
}

void sweep_fence(const char *table, bool have)
{
	char err[512];
	if (!have) {
		launch_diag(
		    "cannot remove nftables table %s: CAP_NET_ADMIN was "
		    "dropped; the next start sweeps it",
		    table);
		return;
	}
	int rc = caps_raise_net_admin(err, sizeof err);
	if (rc == 0)
		rc = fence_remove(table, err, sizeof err);
	if (rc != 0 && rc != -ENOENT)
		launch_diag("removing nftables table %s: %s", table, err);
	caps_lower_net_admin();
}

/* Prints a multi-line summary with the prefix on each line. */
static void print_summary(char *summary)
{
	char *save = NULL;
	for (char *l = strtok_r(summary, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save))
		fprintf(stderr, PFX "%s\n", l);
}

void sweep_repos(struct gitiso_repo **repos, size_t n, bool keep,
		 struct asuser *as, struct sweep_tally *t)
{
	for (size_t i = 0; i < n; i++) {
		char summary[4096] = "", err[512] = "";
		int fetched = 0;
		if (keep) {
			fprintf(stderr,
				PFX "--keep: clone of %s kept at %s (branch "
				    "%s)\n",
				gitiso_host_repo(repos[i]),
				gitiso_clone_path(repos[i]),
				gitiso_branch(repos[i]));
		} else {
			gitiso_set_fetcher(repos[i], asuser_fetch, as);
			if (gitiso_finish(repos[i], summary, sizeof summary,
					  err, sizeof err) != 0) {
				launch_alert("%s: %s",
					     gitiso_host_repo(repos[i]), err);
				if (t != NULL)
					t->not_fetched++;
			}
		}
		if (summary[0] != '\0')
			print_summary(summary);
		size_t c = gitiso_commits(repos[i], &fetched);
		if (t != NULL && fetched)
			t->commits += c;
		if (t != NULL && t->nended < LCFG_MAX_LIST)
			t->ended[t->nended++] = (struct session_repo){
			    strdup(gitiso_name(repos[i])),
			    strdup(gitiso_host_repo(repos[i])),
			    strdup(gitiso_clone_path(repos[i])),
			    strdup(gitiso_branch(repos[i])),
			    strdup(gitiso_base(repos[i])),
			    keep ? -1 : (long)c,
			    fetched != 0};
		gitiso_free(repos[i]);
		repos[i] = NULL;
	}
}

void sweep_tally_free(struct sweep_tally *t)
{
	for (size_t i = 0; i < t->nended; i++) {
		struct session_repo *g = &t->ended[i];
		const char *strs[] = {g->name, g->host, g->clone, g->branch,
				      g->base};
		for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
			free((void *)strs[k]);
	}
	t->nended = 0;
}

/* SIGTERM to the recorded proxy, only if that pid still is a proxy. */
static void stop_recorded_proxy(pid_t ppid)
{
	if (ppid <= 1)
		return;
	char path[64], comm[64] = "";
	launch_snprintf(path, sizeof path, "/proc/%lld/comm", (long long)ppid);
	FILE *f = fopen(path, "r");
	if (f && fgets(comm, sizeof comm, f) &&
	    strncmp(comm, "agentsafe-proxy", 15) == 0)
		kill(ppid, SIGTERM);
	if (f)
		(void)fclose(f); /* only read */
}

static void resume_repos(const struct session_record *r, const char *id,
			 struct sweep_tally *t)
{
	for (size_t i = 0; i < r->nrepos; i++) {
		const struct session_repo *g = &r->repos[i];
		struct gitiso_repo *repo = NULL;
		char err[512];
		if (!*g->host || !*g->clone || !*g->base)
			continue;
		if (gitiso_resume(g->host, g->clone, id, g->base, &repo, err,
				  sizeof err) != 0) {
			launch_diag("session %s: %s", id, err);
			continue;
		}
		/* As root (sudo stop, the stale sweep): the fetch is the
		 * repo owner's, done by a helper that becomes them. */
		struct asuser *as = NULL;
		uid_t uid;
		gid_t gid;
		char gitdir[4200];
		launch_snprintf(gitdir, sizeof gitdir, "%s/.git", g->host);
		if (geteuid() == 0 && asuser_owner(gitdir, &uid, &gid) == 0 &&
		    asuser_start(uid, gid, &as, err, sizeof err) != 0)
			launch_alert("session %s: %s", id, err);
		sweep_repos(&repo, 1, false, as, t);
		asuser_stop(as);
	}
}

void sweep_session(struct docker *d, bool caps, const char *id)
{
	if (session_is_live(id))
		return;
	struct session_record r;
	if (session_record_load(id, &r) != 0)
		return;
	if (r.finished) {
		session_record_free(&r);
		return;
	}
	launch_diag("cleaning up session %s (its launcher is gone)", id);
	if (*r.container)
		sweep_container(d, r.container);
	if (*r.probe)
		sweep_container(d, r.probe);
	stop_recorded_proxy(r.proxy_pid);
	char dir[4096];
	if (session_state_dir(id, dir, sizeof dir) == 0)
		claude_login_recover(dir);
	if (*r.table)
		sweep_fence(r.table, caps);
	if (*r.network)
		sweep_network(d, r.network);
	struct sweep_tally t;
	memset(&t, 0, sizeof t);
	resume_repos(&r, id, &t);
	r.id = id; /* the directory it was found in */
	r.finished = true;
	const struct session_repo *own = r.repos;
	size_t nown = r.nrepos;
	if (t.nended > 0) {
		r.repos = t.ended;
		r.nrepos = t.nended;
	}
	if (t.not_fetched > 0)
		r.exit_code = EXIT_NOT_FETCHED;
	(void)session_log_counts(r.egress_log, &r.denials, &r.drops);
	r.misuse = session_log_misuse(r.egress_log);
	char err[512];
	(void)session_record_save(&r, err, sizeof err);
	r.repos = own; /* the record frees its own array, t its strings */
	r.nrepos = nown;
	session_record_free(&r);
	sweep_tally_free(&t);
}

static void sweep_labelled(struct docker *d, const char *kind)
{
	char path[256], err[512];
	long st = 0;
	json_t *list = NULL;
	launch_snprintf(
	    path, sizeof path,
	    "/%s?all=1&filters=%%7B%%22label%%22%%3A%%5B%%22%s%%22%%5D%%7D",
	    kind, DOCKER_LABEL_SESSION);
	if (docker_call(d, "GET", path, NULL, &st, &list, err, sizeof err) !=
		0 ||
	    st != 200) {
		json_decref(list);
		return;
	}
	size_t i;
	json_t *it;
	json_array_foreach(list, i, it)
	{
		const char *id = json_string_value(json_object_get(
		    json_object_get(it, "Labels"), DOCKER_LABEL_SESSION));
		const char *nid = json_string_value(json_object_get(it, "Id"));
		if (id == NULL || nid == NULL || session_is_live(id))
			continue;
		/* Only sessions of this user: ours have a state dir. */
		struct session_record r;
		if (session_record_load(id, &r) != 0)
			continue;
		session_record_free(&r);
		if (kind[0] == 'c')
			sweep_container(d, nid);
		else
			sweep_network(d, nid);
	}
	json_decref(list);
}

struct sweep {
	struct docker *d;
	bool caps;
};

static void sweep_one(const char *id, void *arg)
{
	struct sweep *w = arg;
	sweep_session(w->d, w->caps, id);
}

void sweep_stale(struct docker *d, bool caps)
{
	struct sweep w = {d, caps};
	session_each(sweep_one, &w);
	sweep_labelled(d, "containers");
	sweep_labelled(d, "networks");
	if (caps) {
		char err[512];
		if (caps_raise_net_admin(err, sizeof err) == 0) {
			/* The owner recorded in each table decides, not our
			 * state dir: another user's live session has no state
			 * here and must keep its fence. */
			int n = fence_sweep(NULL, NULL, err, sizeof err);
			if (n < 0)
				launch_diag(
				    "sweeping stale nftables tables: %s", err);
			else if (n > 0)
				launch_diag(
				    "removed %d stale nftables table(s)", n);
		}
		caps_lower_net_admin();
	}
}
