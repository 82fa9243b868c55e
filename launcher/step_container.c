/* The container steps of a run: the agent's spec, the agent's container
 * (created with the self-check as its entrypoint, attached, started; see
 * selfcheck.c), and once the self-check passed the agent released (the
 * relay pointed at it, --detach handed to the background). */
#include "step.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch_int.h"
#include "selfcheck.h"
#include "spec.h"
#include "sweep.h"

/* ---- container spec ---- */

int step_spec_up(struct sess *s, char *err, size_t errlen)
{
	s->store = calloc(1, sizeof *s->store);
	if (s->store == NULL) {
		launch_snprintf(err, errlen, "container spec: out of memory");
		return -ENOMEM;
	}
	spec_build(s, s->store, &s->spec);
	return 0;
}

void step_spec_down(struct sess *s)
{
	free(s->store);
	s->store = NULL;
}

/* ---- container ---- */

void step_container_down(struct sess *s)
{
	selfcheck_free(s);
	if (s->afd >= 0)
		close(s->afd);
	s->afd = -1;
	sweep_container(s->d, s->container);
}

/* --detach: tell the foreground launcher the session is up, then leave
 * the terminal; later diagnostics go to launcher.log. */
static void detach_announce(struct sess *s)
{
	fprintf(stderr,
		PFX "session %s running in the background; "
		    "`agentsafe-launch attach %s`, `agentsafe-"
		    "launch stop %s`\n",
		s->name, s->name, s->name);
	char b = 1;
	if (write(s->ready_fd, &b, 1) != 1)
		launch_diag("lost the foreground launcher");
	close(s->ready_fd);
	int nul = open("/dev/null", O_RDWR);
	char lp[4300];
	launch_snprintf(lp, sizeof lp, "%s/launcher.log", s->state_dir);
	int lf = open(lp, O_WRONLY | O_CREAT | O_APPEND, 0600);
	dup2(nul, 0);
	dup2(nul, 1);
	dup2(lf >= 0 ? lf : nul, 2);
}

/* Attached before the start, so no output is lost (and, for the
 * self-check's word, with stdin even under --detach); started. */
static int container_start(struct sess *s, char *err, size_t errlen)
{
	bool in = !s->cfg->detach || s->sc != NULL;
	int64_t t = launch_now_us();
	s->afd = docker_attach(s->d, s->container, in, err, errlen);
	if (s->afd < 0)
		return s->afd;
	t = launch_phase(s, "  attach", t);
	selfcheck_arm(s);
	int rc = docker_start_container(s->d, s->container, err, errlen);
	launch_phase(s, "  start", t);
	return rc;
}

int step_container_up(struct sess *s, char *err, size_t errlen)
{
	struct docker_container_spec sp = s->spec;
	int64_t t = launch_now_us();
	int rc = selfcheck_prepare(s, &sp, err, errlen);
	t = launch_phase(s, "  self-check script", t);
	if (rc == 0)
		rc = docker_create_container(s->d, s->container, &sp, err,
					     errlen);
	launch_phase(s, "  create", t);
	if (rc != 0) {
		selfcheck_free(s);
		return rc; /* e.g. --name taken: not ours to remove */
	}
	t = launch_now_us();
	launch_save_state(s, false);
	launch_phase(s, "  save state", t);
	rc = container_start(s, err, errlen);
	if (rc != 0)
		step_container_down(s);
	return rc;
}

int step_agent_up(struct sess *s, char *err, size_t errlen)
{
	int rc = 0;
	if (s->fwd_pid > 0)
		rc = step_publish_target(s, err, errlen);
	if (rc == 0 && s->cfg->detach)
		detach_announce(s);
	return rc;
}
