/* The run's "git broker" step: one broker per session with repos, between
 * the clones (it serves their host repos) and the proxy (which is told its
 * socket). Its undo stops it before the clones' fetch-back. */
#include "broker.h"
#include "step.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitiso.h"
#include "launch_int.h"

int step_broker_up(struct sess *s, char *err, size_t errlen)
{
	static struct broker_repo repos[LCFG_MAX_LIST];
	static struct broker_config cfg;
	static char dir[4200];
	s->broker_sock[0] = '\0';
	if (s->nrepos == 0)
		return 0;
	for (size_t i = 0; i < s->nrepos; i++)
		repos[i] = (struct broker_repo){
		    .name = gitiso_name(s->repos[i]),
		    .gitdir = gitiso_host_gitdir(s->repos[i]),
		    .workdir = gitiso_host_repo(s->repos[i]),
		};
	launch_snprintf(dir, sizeof dir, "%s/git", s->state_dir);
	cfg = (struct broker_config){
	    .session_id = s->id,
	    .dir = dir,
	    .upstream = s->cfg->upstream,
	    .push_upstream = s->cfg->push_upstream || s->cfg->pr,
	    .pr = s->cfg->pr,
	    .repos = repos,
	    .nrepos = s->nrepos,
	    .log = s->log,
	    .uid = s->host_uid,
	    .gid = s->host_gid,
	};
	/* Without a broker the session still runs: origin then answers 403
	 * through the proxy, and the commits come back at the end as ever. */
	int rc = broker_start(&cfg, &s->broker_pid, err, errlen);
	if (rc != 0) {
		launch_alert("%s; git fetch/push from inside will not work",
			     err);
		err[0] = '\0';
		s->broker_pid = 0;
		return 0;
	}
	launch_snprintf(s->broker_sock, sizeof s->broker_sock, "%s/%s", dir,
			BROKER_SOCK);
	launch_diag("git broker: origin is http://%s/<repo> inside%s%s",
		    BROKER_HOST,
		    s->cfg->upstream ? "; fetches first run git fetch " : "",
		    s->cfg->upstream ? s->cfg->upstream : "");
	return 0;
}

void step_broker_down(struct sess *s)
{
	launch_stop_child(s->broker_pid, "the git broker");
	s->broker_pid = 0;
	if (s->broker_sock[0] != '\0')
		(void)unlink(s->broker_sock);
	s->broker_sock[0] = '\0';
}

/* The image's id, asked of the engine; "" when it does not say. */
static void image_id(struct sess *s, char *out, size_t len)
{
	char path[600], err[256];
	long st = 0;
	json_t *r = NULL;
	out[0] = '\0';
	if (s->d == NULL || s->cfg->image == NULL)
		return;
	launch_snprintf(path, sizeof path, "/images/%s/json", s->cfg->image);
	if (docker_call(s->d, "GET", path, NULL, &st, &r, err, sizeof err) ==
		0 &&
	    st == 200) {
		const char *id = json_string_value(json_object_get(r, "Id"));
		launch_snprintf(out, len, "%s", id ? id : "");
	}
	json_decref(r);
}

void step_broker_note(struct sess *s)
{
	char id[160];
	if (s->nrepos == 0)
		return;
	image_id(s, id, sizeof id);
	struct broker_note_in in = {
	    .session_id = s->id,
	    .agent = s->cfg->command ? s->cfg->command[0] : s->cfg->agent,
	    .image = s->cfg->image,
	    .image_id = id[0] ? id : NULL,
	    .policy_path = s->policy,
	    .log_path = s->log_path,
	    .selfcheck_start =
		s->selfcheck_start[0] ? s->selfcheck_start : NULL,
	    .selfcheck_end = s->selfcheck_end[0] ? s->selfcheck_end : NULL,
	};
	long failed = 0, pr_failed = 0;
	in.upstream_errors = &failed;
	in.pr_errors = &pr_failed;
	char *note = broker_note_text(&in);
	/* Reported at the end, not swallowed; run_command turns a count
	 * above zero into EXIT_UPSTREAM. */
	if (failed > 0)
		launch_alert("--push-upstream: %ld push(es) to %s failed (see "
			     "agentsafe log --session %s --host %s)",
			     failed, s->cfg->upstream ? s->cfg->upstream : "?",
			     s->id, BROKER_HOST);
	if (pr_failed > 0)
		launch_alert("--pr: %ld draft pull request(s) failed (see "
			     "agentsafe log --session %s --host %s)",
			     pr_failed, s->id, BROKER_HOST);
	s->upstream_failed = failed + pr_failed;
	for (size_t i = 0; note != NULL && i < s->nrepos; i++)
		(void)gitiso_set_note(s->repos[i], note);
	free(note);
}
