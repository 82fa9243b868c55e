/* The session's agentsafe-proxy as a child of the launcher: started on the
 * session network's gateway, port chosen by the kernel. */
#ifndef AGENTSAFE_LAUNCH_PROXY_CHILD_H
#define AGENTSAFE_LAUNCH_PROXY_CHILD_H

#include <stddef.h>

struct sess;

/* Fork and exec agentsafe-proxy for s (as the sudo user when there is
 * one), then wait up to 10 s for it to report its port. Sets
 * s->proxy_pid and s->proxy_port. On failure nothing is left running. */
int proxy_child_start(struct sess *s, char *err, size_t errlen);

/* Stop the proxy started by proxy_child_start (if it still runs). */
void proxy_child_stop(struct sess *s);

#endif
