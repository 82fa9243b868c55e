/* Internals of the fence shared with its unit tests: the rule batch as
 * bytes (so tests can decode what would be sent) and the owner record.
 * Not for other components. */
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

#endif
