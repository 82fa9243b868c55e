/* TLS inspection of a tunnel whose rule says `inspect: true` (inspect.c):
 * the proxy terminates the client's TLS with a leaf of the session CA,
 * opens its own verified TLS to the upstream, and decides every HTTP/1.1
 * request inside against the rule's `http:` list. Internal to proxy/. */
#ifndef AGENTSAFE_PROXY_INSPECT_H
#define AGENTSAFE_PROXY_INSPECT_H

#include <stdbool.h>
#include <stddef.h>

#include "http_parse.h"

#include "policy.h"
#include "proxy.h"

struct conn;
struct inspect_srv;

/* Server-wide material: the session CA with its leaf cache, and the
 * upstream client context (system trust + cfg->ca_bundle). *out stays
 * NULL when no --inspect-ca was given; then a policy with inspect rules
 * is an error (nothing could honour them). Returns 0 or -errno. */
int inspect_srv_new(const struct proxy_config *cfg, const struct policy *pol,
		    struct inspect_srv **out, char *err, size_t errlen);
void inspect_srv_free(struct inspect_srv *s);

/* The tunnel's ClientHello passed its checks (c->sni is the host) and the
 * upstream TCP connection is up: take the connection over (CS_INSPECT)
 * until it ends; conn_free() releases what this holds. */
void inspect_start(struct conn *c);
void inspect_free(struct conn *c);
/* A CONNECT or plain-HTTP request head carrying a credential placeholder
 * (or a piece of one): placeholders are only ever swapped inside
 * inspected tunnels, so anywhere else one is misuse. Refuses (403
 * credential_misuse, loudly on stderr) and returns true. */
bool inspect_misuse_refused(struct conn *c, const struct http_request *req);
/* Drain deadline: one close record, then free. */
void inspect_shutdown(struct conn *c);
/* The host's upload budget was passed on another connection: close this
 * inspected tunnel (its close record says upload_budget_exceeded). */
void inspect_budget_close(struct conn *c);

#endif
