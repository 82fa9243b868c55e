/* Upload budgets: bytes the agent sends to one host in a session, counted
 * across every tunnel and forward (copy and splice), refused past the
 * budget. Internal to proxy/. */
#ifndef AGENTSAFE_PROXY_BUDGET_H
#define AGENTSAFE_PROXY_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy_server;
struct conn;
struct budget_host;

/* After the workers exist: one wake-up event per worker. */
int budget_start(struct proxy_server *srv, char *err, size_t errlen);
/* Before the workers' loops are freed. */
void budget_stop(struct proxy_server *srv);

/* The host's counter (created on first use) with `limit` as its budget
 * from now on; NULL for an unlimited budget (nothing is counted). */
struct budget_host *budget_get(struct proxy_server *srv, const char *host,
			       uint64_t limit);
/* True once a byte past the budget was attempted. */
bool budget_exceeded(const struct budget_host *b);

/* The budget is exact: the first `limit` bytes sent to a host in the
 * session pass; byte limit+1 trips it, and is never sent. */

/* Takes up to `want` bytes of c's host's budget and returns how many it
 * got (all of them without a budget). Writes the half-way warning. */
size_t budget_reserve(struct conn *c, size_t want);
/* Gives back reserved bytes that were not sent. */
void budget_refund(struct conn *c, size_t n);
/* The agent tried to send past the budget: mark the host, and have every
 * worker close its open tunnels to it (close records, reason
 * upload_budget_exceeded). The caller closes c itself. */
void budget_trip(struct conn *c);
/* Reserve exactly n bytes or nothing: false (and tripped) when the
 * budget has fewer left. */
bool budget_charge(struct conn *c, size_t n);

#endif
