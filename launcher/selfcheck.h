/* The self-check before the agent starts (selfcheck.c): the probe script
 * as the agent container's entrypoint, and the launcher's side of it. */
#ifndef AGENTSAFE_LAUNCH_SELFCHECK_H
#define AGENTSAFE_LAUNCH_SELFCHECK_H

#include <stdbool.h>
#include <stddef.h>

struct sess;
struct docker_container_spec;

/* Wrap sp (a copy of the agent's spec) so the container runs the probe
 * first and then the image's entrypoint with sp's command. Allocates
 * s->sc (selfcheck_free releases it; sp borrows from it until then).
 * A no-op under --no-verify. Returns 0 or -errno with err set. */
int selfcheck_prepare(struct sess *s, struct docker_container_spec *sp,
		      char *err, size_t errlen);
/* Just before the start: where egress.log ends, and the drop records
 * from now on labelled "origin": "selfcheck". */
void selfcheck_arm(struct sess *s);
/* Ends the labelling window for good, before the agent can run: the drop
 * records the kernel has already queued are written labelled, later ones
 * never are, and the proxy gets its byte (it labels no connection it
 * accepts after that). False when the proxy's byte could not be sent: the
 * session must not start. Idempotent; selfcheck_free calls it too. */
bool selfcheck_window_end(struct sess *s);
void selfcheck_free(struct sess *s);

#endif
