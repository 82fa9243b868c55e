/* The steps of a run (the table is in run.c). Each up returns 0, or
 * -errno with a sentence in err after undoing its own partial work; each
 * down undoes exactly what its up did. */
#ifndef AGENTSAFE_LAUNCH_STEP_H
#define AGENTSAFE_LAUNCH_STEP_H

#include <stddef.h>

struct lcfg;
struct sess;

/* Before any setup: refuses a start outside a git repo without --repo or
 * --no-repo (-ENOENT, a sentence naming the directory). */
int step_repos_check(const struct lcfg *c, char *err, size_t errlen);

/* step_host.c */
int step_session_up(struct sess *s, char *err, size_t errlen);
void step_session_down(struct sess *s);
int step_repos_up(struct sess *s, char *err, size_t errlen);
void step_repos_down(struct sess *s);

/* broker_step.c: the session's git broker (broker.h) */
int step_broker_up(struct sess *s, char *err, size_t errlen);
void step_broker_down(struct sess *s);
/* Before the fetch-back: the provenance note each review branch gets. */
void step_broker_note(struct sess *s);

/* step_net.c */
int step_network_up(struct sess *s, char *err, size_t errlen);
void step_network_down(struct sess *s);
int step_publish_up(struct sess *s, char *err, size_t errlen);
void step_publish_down(struct sess *s);
/* Once the container runs: point the relay at its address. */
int step_publish_target(struct sess *s, char *err, size_t errlen);
int step_fence_up(struct sess *s, char *err, size_t errlen);
void step_fence_down(struct sess *s);

/* step_container.c */
int step_spec_up(struct sess *s, char *err, size_t errlen);
void step_spec_down(struct sess *s);
int step_container_up(struct sess *s, char *err, size_t errlen);
void step_container_down(struct sess *s);
/* After the self-check: the relay's target, --detach's announcement. */
int step_agent_up(struct sess *s, char *err, size_t errlen);

/* selfcheck.c: the probe's verdict, proven by egress.log's records. */
int step_probe_up(struct sess *s, char *err, size_t errlen);

#endif
