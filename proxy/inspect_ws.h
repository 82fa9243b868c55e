/* WebSocket upgrades inside inspected tunnels (inspect_ws.c): which
 * upgrade a request head asks for, whether a 101 answers it, and the
 * plain relay of decrypted bytes the tunnel becomes after the 101.
 * Internal to proxy/; inspect.c decides and owns the tunnel. */
#ifndef AGENTSAFE_PROXY_INSPECT_WS_H
#define AGENTSAFE_PROXY_INSPECT_WS_H

#include <stdbool.h>
#include <stddef.h>

#include "http_parse.h"

struct conn_side;

enum inspect_ws_ask {
	INSPECT_WS_NONE,      /* no Upgrade header */
	INSPECT_WS_WEBSOCKET, /* a well-formed WebSocket handshake */
	INSPECT_WS_OTHER,     /* any other upgrade (h2c, ...) or a bad one */
};

/* Classify a parsed request head. A WebSocket handshake is exactly one
 * `Upgrade: websocket` (any case), a Connection header naming `upgrade`,
 * method GET, HTTP/1.1 and no body (RFC 6455 4.1); anything else carrying an
 * Upgrade header is INSPECT_WS_OTHER with the reason in msg. Pure. */
enum inspect_ws_ask inspect_ws_asked(const struct http_request *q, char *msg,
				     size_t msglen);

/* True when a 101 response switches to WebSocket: exactly one
 * `Upgrade: websocket` header. Pure. */
bool inspect_ws_101_ok(const struct http_response *r);

/* After the 101: move what `s` has read (decrypted) to its peer's output,
 * and stop reading `s` while the peer already holds RELAY_BUF_MAX. Counts
 * the bytes on `s`. The client's bytes are charged to the host's upload
 * budget: false (budget tripped, the excess not moved) when they would
 * pass it; the caller ends the tunnel. */
bool inspect_ws_pass(struct conn_side *s);

/* The output of `s` drained below its low watermark: pass on what its
 * peer left and resume reading the peer. False as inspect_ws_pass. */
bool inspect_ws_drained(struct conn_side *s);

/* Switch the tunnel to the relay: bytes already buffered either way go
 * first (frames that came with the 101, or that the client sent early),
 * then both sides are read. False as inspect_ws_pass. */
bool inspect_ws_start(struct conn_side *client);

#endif
