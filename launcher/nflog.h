/* The fence's NFLOG reader: binds the log group the fence's drop rules
 * (fence.h) send to and turns each dropped packet into an egress.log
 * `drop` record, within the flood bounds below. It shares nothing with the
 * rule builder but the group number and the set-full tag. */
#ifndef AGENTSAFE_NFLOG_H
#define AGENTSAFE_NFLOG_H

#include <stddef.h>
#include <stdint.h>

struct egress_log;

/* Flood bounds (docs: one drop record per new flow):
 * the kernel logs at most 1 packet/s (burst 3) per flow (family, dst,
 * protocol, dport; 4096 flows per family remembered for 10 s; new flows
 * beyond that are logged with FENCE_NFLOG_SET_FULL_TAG after the prefix,
 * every packet, and counted by the reader, never itemised), with no
 * overall cap; the reader folds repeats of a flow (same
 * protocol, source, destination, port, ICMP type) seen within 5 s, and
 * itemises at most 20 new flows a second (burst 200): the rest are counted
 * and written as one summary `drop` record (no dst; a `message` with the
 * counts, also of receive-buffer overflows) at most every 10 s and at
 * fence_nflog_free. The first packet of a flow is always itemised unless a
 * scan of more than ~20 new flows a second is under way. */
/* Ends the NFLOG prefix of a drop whose new flow found the fence's flow
 * set full (fence.c): the reader counts it in the summary record. */
#define FENCE_NFLOG_SET_FULL_TAG " setfull"

struct fence_nflog;
int fence_nflog_open(uint16_t group, struct egress_log *log,
		     struct fence_nflog **out, char *err, size_t errlen);
int fence_nflog_fd(const struct fence_nflog *n);
/* Read what is pending on the fd (non-blocking) and write drop records.
 * Handles at most 64 netlink reads per call so a flood cannot starve the
 * caller's event loop (the fd stays readable; call again). Returns the
 * number of reads handled, or -errno. */
int fence_nflog_dispatch(struct fence_nflog *n);
/* Packets not given their own record because the same flow (protocol,
 * source and destination address, destination port) was recorded within
 * the last 5 seconds. */
uint64_t fence_nflog_folded(const struct fence_nflog *n);
/* Records written from now on carry "origin": origin (a static string;
 * NULL: no origin field), e.g. "selfcheck" during the launch probe. */
void fence_nflog_set_origin(struct fence_nflog *n, const char *origin);
/* Writes the pending summary record, so free it before closing the log. */
void fence_nflog_free(struct fence_nflog *n);

#endif
