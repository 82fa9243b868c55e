/* Internals of the NFLOG reader shared with its unit tests and fuzzer: the
 * packet header parser and a reader without a socket. Not for other
 * components. */
#ifndef AGENTSAFE_NFLOG_INT_H
#define AGENTSAFE_NFLOG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "nflog.h"

/* What a drop record says about one logged packet. */
struct fence_pkt {
	int family; /* 4 or 6 */
	uint8_t proto;
	char src[46], dst[46];
	uint16_t sport, dport; /* TCP/UDP only, else 0 */
	int icmp_type;	       /* ICMP/ICMPv6 only, else -1 */
};

/* Parses a packet from its network header (IPv4 or IPv6, bounded by len).
 * Returns 0, or -EINVAL for a packet too short or of another version.
 * Ports are read only from a first fragment with a whole transport header. */
int fence_parse_packet(const uint8_t *p, size_t len, struct fence_pkt *out);
/* "tcp", "udp", "icmp", "icmpv6", or the protocol number as text. */
const char *fence_proto_name(uint8_t proto, char *buf, size_t len);

/* The reader without a socket, for feeding it NFLOG messages by hand;
 * fence_nflog_handle is what dispatch does with each netlink read. */
struct fence_nflog *fence_nflog_new_detached(struct egress_log *log);
void fence_nflog_handle(struct fence_nflog *n, const void *buf, size_t len);
/* Fixes the reader's monotonic clock at ms (> 0); 0 restores the real one.
 */
void fence_nflog_set_time(struct fence_nflog *n, int64_t ms);
/* Fixes the wall clock the packet timestamps are checked against at us
 * (> 0, µs since the epoch); 0 restores the real one. */
void fence_nflog_set_real_time(struct fence_nflog *n, int64_t us);

#endif
