/* Published ports (--publish, --ssh). The session network is internal, and
 * Docker publishes nothing for a container on an internal network, so the
 * launcher relays 127.0.0.1:PORT to the container's PORT itself: a child
 * process, without capabilities, as the session's user, one process per
 * connection. Only loopback listens: the agent's ports are for the user, not
 * for the LAN. The fence lets the host's connections in (they are not
 * forwarded traffic) and the container's replies out (established).
 * A range may name another host address to listen on (--publish
 * 0.0.0.0:PORT): the user's explicit choice, warned about by the caller. */
#ifndef AGENTSAFE_LAUNCH_PORTFWD_H
#define AGENTSAFE_LAUNCH_PORTFWD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct portfwd_range {
	uint16_t first, last; /* inclusive */
	const char *addr;     /* IPv4 to listen on; NULL or "": 127.0.0.1 */
};

/* Listens on each range's address (127.0.0.1 by default) for every port of the
 * ranges (errors, e.g. a port in use, are reported here, before anything is
 * forked), then forks the relay, which drops to uid/gid (when root; so call
 * this while the launcher still may) and every capability, and waits for its
 * target. Returns 0, the relay's pid and the fd to give it the target on, or
 * -errno with err. */
int portfwd_start(const struct portfwd_range *r, size_t n, uid_t uid, gid_t gid,
		  pid_t *pid, int *ctl, char *err, size_t errlen);

/* The container's address, once known: the relay starts accepting and
 * connects each connection to target_ip on the same port. Closes ctl. */
int portfwd_target(int ctl, const char *target_ip, char *err, size_t errlen);

/* The launcher stops the relay with SIGTERM (it may run as another user,
 * so that takes the launcher's kept CAP_KILL); its connections end with
 * it (PR_SET_PDEATHSIG). */

#endif
