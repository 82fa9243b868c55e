/* Folding of repeated denials: a client that hammers one refused target
 * (7,500 requests a second is easy) must not write 7,500 records a second.
 * Denials that agree on client address (without the port), host, port, SNI,
 * reason and detail (the message) get EGRESS_FOLD_BUDGET itemised records per
 * window; the rest are counted
 * and written as one summary record (`count` = how many were folded), so
 * every decision is still accounted for. Allowed traffic never passes here. */
#ifndef AGENTSAFE_EGRESS_FOLD_H
#define AGENTSAFE_EGRESS_FOLD_H

#include <stdbool.h>
#include <stdint.h>

#include "egress_log.h"

#define EGRESS_FOLD_BUDGET    10    /* itemised denials per key and window */
#define EGRESS_FOLD_WINDOW_MS 10000 /* a window opens with a key's first */

struct egress_fold; /* thread-safe; opaque */

/* Writes through `log` (not owned; it must outlive the fold). NULL when
 * out of memory. */
struct egress_fold *egress_fold_new(struct egress_log *log);
/* Writes the deny record r, or counts it when its key has spent the
 * window's budget. Returns egress_log_write's result, 0 when counted. */
int egress_fold_write(struct egress_fold *f, const struct egress_record *r);
/* Writes a summary record for each window that has ended with denials
 * counted; `all` writes every pending count now (at exit). */
void egress_fold_flush(struct egress_fold *f, bool all);
/* Flushes everything, then frees. */
void egress_fold_free(struct egress_fold *f);
/* Tests: a fixed clock in ms when > 0. */
void egress_fold_set_time(struct egress_fold *f, int64_t ms);

#endif
