/* The session's network fence: one nftables table (libnftnl + libmnl, one
 * atomic batch) that lets the session's bridge reach only the proxy, drops
 * and NFLOGs everything else (nflog.h turns those drops into egress.log
 * `drop` records).
 *
 * The table (inet family, so IPv4 and IPv6 alike) has three base chains,
 * all before Docker's filter rules (priority 0), so nothing Docker accepts
 * can undo a drop here:
 *   input   (priority -10): from the bridge to the host itself: accept
 *           replies (ct established,related) and new TCP to
 *           proxy_addr:proxy_port over IPv4; everything else NFLOG + drop.
 *   forward (priority -10): from the bridge, routed (LAN, internet, other
 *           sessions, other containers): replies accepted, rest NFLOG +
 *           drop.
 *   inbound (forward hook, priority -9): to the bridge: new connections
 *           only to the published TCP ports; others dropped unlogged (not
 *           the container's doing). At -9 so a packet between two sessions
 *           meets its sender's logged drop first.
 * Every rule matches the bridge by name (iifname/oifname), so the table
 * can be installed before Docker has created the bridge. */
#ifndef AGENTSAFE_FENCE_H
#define AGENTSAFE_FENCE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FENCE_TABLE_PREFIX  "agentsafe_"
#define FENCE_MAX_PUBLISHED 64

struct fence_port_range {
	/* inclusive TCP ports published inbound, as the container sees them
	 * (after Docker's DNAT: the container port) */
	uint16_t first, last;
};

struct fence_config {
	char table[64];		   /* FENCE_TABLE_PREFIX + session id */
	char bridge[16];	   /* interface name of the session bridge */
	struct in_addr proxy_addr; /* the proxy listens here (bridge gateway) */
	uint16_t proxy_port;
	uint16_t nflog_group;
	struct fence_port_range published[FENCE_MAX_PUBLISHED];
	size_t npublished;
	/* The session's owner, recorded in the table for fence_sweep: the
	 * process that lives exactly as long as the session (the launcher,
	 * or its detached supervisor). 0: the calling process. */
	pid_t owner_pid;
};

/* Install (replacing any table of the same name) in one atomic batch.
 * Returns 0 only after the kernel acknowledged the whole batch; -EINVAL for
 * a bad config (table not FENCE_TABLE_PREFIX + [A-Za-z0-9_-]+, bridge not
 * 1-15 bytes, proxy address/port unset, empty published range), -EPERM
 * without CAP_NET_ADMIN, -ETIMEDOUT when the kernel did not answer in 5 s.
 */
int fence_apply(const struct fence_config *c, char *err, size_t errlen);
/* Delete the table (one batch); -ENOENT when there is none. */
int fence_remove(const char *table, char *err, size_t errlen);
/* Remove every FENCE_TABLE_PREFIX table (inet family) whose session is gone
 * (stale sessions after a crash). With is_live NULL, the built-in check:
 * fence_apply stores the owner as the table comment ("agentsafe owner
 * pid=P start=S pidns=N", visible in `nft list tables`), and a table is
 * stale when that pid no longer exists, is a zombie, or names a process
 * with another start time (pid reuse). A table without that comment, from
 * another pid namespace, or whose owner cannot be checked (hidepid) is kept:
 * only a dead session's table is removed, never a live one's. With is_live set,
 * it decides instead (true = keep). Returns how many were removed. */
int fence_sweep(bool (*is_live)(const char *session_id, void *arg), void *arg,
		char *err, size_t errlen);

#endif
