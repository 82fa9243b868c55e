/* Internals of the fence shared with its unit tests: the rule batch as
 * bytes (so tests can decode what would be sent) and the NFLOG packet
 * header parser. Not for other components. */
#ifndef AGENTSAFE_FENCE_INT_H
#define AGENTSAFE_FENCE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fence.h"

struct fence_batch;

/* Validates a config: table FENCE_TABLE_PREFIX + [A-Za-z0-9_-]+, bridge
 * 1-15 bytes, proxy address and port set, published ranges non-empty. */
int fence_config_check(const struct fence_config *c, char *err, size_t errlen);
int fence_build_batch(const struct fence_config *c, struct fence_batch **out,
		      char *err, size_t errlen);
const void *fence_batch_data(const struct fence_batch *fb, size_t *len);
/* Messages between the batch begin and end markers. */
int fence_batch_count(const struct fence_batch *fb);
void fence_batch_free(struct fence_batch *fb);
/* "agentsafe <session id>": the NFLOG prefix of a table's drops. */
void fence_log_prefix(const char *table, char *buf, size_t len);

/* The owner record fence_apply stores as the table's comment:
 * "agentsafe owner pid=P start=S pidns=N" (S: the process's start time in
 * clock ticks, field 22 of /proc/P/stat; N: the pid namespace inode).
 * Returns 0 or -errno when /proc/P/stat cannot be read. */
int fence_owner_format(pid_t pid, char *buf, size_t len);
/* False only when sure: same pid namespace, and the pid is gone or now
 * names a process with another start time. */
bool fence_owner_is_live(const char *comment);

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

#endif
