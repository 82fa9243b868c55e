/* Internals of the git broker shared by broker.c (start, hooks, accept
 * loop) and broker_req.c (one request). Not for other files. */
#ifndef AGENTSAFE_BROKER_INT_H
#define AGENTSAFE_BROKER_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "broker.h"

#define BROKER_HEAD_MAX 16384
#define BROKER_PATH_MAX 4200
#define BROKER_ENV_MAX	8400 /* one environment entry: a path and its name */

/* What the accept loop hands each request (the config, with the paths the
 * start made). */
struct broker_ctx {
	const struct broker_config *cfg;
	char hooks[BROKER_PATH_MAX];   /* core.hooksPath */
	char created[BROKER_PATH_MAX]; /* refs this session's pushes made */
	char reports[BROKER_PATH_MAX]; /* per-request hook reports */
};

/* Serves one request on fd (in a forked child), then returns. */
void broker_serve_one(const struct broker_ctx *x, int fd);

/* broker_pr.c: a draft pull request for ref (pushed upstream already);
 * one egress.log record (op "pr") either way. */
void broker_open_pr(const struct broker_config *c, const struct broker_repo *r,
		    const char *ref);

/* Whether name is a repo segment a request may name: exactly one of the
 * session's repos; anything else (another name, "..", an empty or
 * percent-encoded one) is NULL. */
const struct broker_repo *broker_find_repo(const struct broker_config *cfg,
					   const char *name, size_t len);

#endif
