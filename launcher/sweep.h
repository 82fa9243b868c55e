/* Taking a session down: the undo of each piece a launch creates (used by
 * the steps in run.c), and the sweep of sessions whose launcher died
 * (crash, SIGKILL) from what their session.json recorded. */
#ifndef AGENTSAFE_LAUNCH_SWEEP_H
#define AGENTSAFE_LAUNCH_SWEEP_H

#include <stdbool.h>
#include <stddef.h>

#include "lcfg.h"
#include "session.h"

struct docker;
struct gitiso_repo;
struct asuser;

/* What became of a session's repos at its end. */
struct sweep_tally {
	size_t commits;	    /* brought back into the host repos */
	size_t not_fetched; /* repos whose commits stayed in the clone */
	/* Each repo as session.json keeps it once the handles are gone
	 * (sweep_tally_free releases the strings). */
	struct session_repo ended[LCFG_MAX_LIST];
	size_t nended;
};
void sweep_tally_free(struct sweep_tally *t);

/* Remove a container or network; a failure is reported, not returned
 * (teardown goes on with the rest). */
void sweep_container(struct docker *d, const char *name);
void sweep_network(struct docker *d, const char *name);
/* Remove the nftables table; have: CAP_NET_ADMIN is still permitted. */
void sweep_fence(const char *table, bool have);
/* Fetch each clone's commits back into its host repo (or, with keep, say
 * where the clone stays) and free the repos; the array is NULLed. The
 * fetch runs as the host repo's owner (asuser_fetch with as, may be NULL);
 * a failure is a highlighted line and counted in t (may be NULL). */
void sweep_repos(struct gitiso_repo **repos, size_t n, bool keep,
		 struct asuser *as, struct sweep_tally *t);

/* Clean up after session id unless its launcher still runs or it
 * finished; marks it finished. caps: CAP_NET_ADMIN is permitted. */
void sweep_session(struct docker *d, bool caps, const char *id);
/* Every stale session of this user, their labelled containers and
 * networks, and (with caps) nftables tables whose owner is gone. */
void sweep_stale(struct docker *d, bool caps);

#endif
