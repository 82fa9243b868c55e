/* Plain-HTTP forwarding helpers: check that a forward request's Host
 * header agrees with its absolute URI, and rewrite request and response
 * heads for the next hop (origin-form, hop-by-hop fields removed). Pure
 * functions over parsed heads; no I/O. */
#ifndef AGENTSAFE_PROXY_FWD_HEAD_H
#define AGENTSAFE_PROXY_FWD_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "http_parse.h"

/* A rewritten head is at most the parsed head plus the few fields added. */
#define FWD_HEAD_MAX (HTTP_HEAD_MAX + 1024)

/* True when a Connection header of hdrs lists `name` (case-insensitive
 * token match), meaning that field is hop-by-hop for this message. */
bool fwd_connection_lists(const struct http_header *hdrs, size_t n,
			  const char *name, size_t name_len);

/* An absolute-form request's Host header must name the same host and port
 * as the URI (port 80 when either omits it). An HTTP/1.0 request may omit
 * Host. Returns 0, or -EINVAL with a sentence in err. */
int fwd_check_host(const struct http_request *req, char *err, size_t errlen);

/* Origin-form request head for the upstream: "METHOD path HTTP/1.x", a Host
 * field, every end-to-end field in order (hop-by-hop fields and those named
 * by Connection dropped; Transfer-Encoding kept when the body is chunked,
 * since the body passes through unchanged), and "Connection: close" (one
 * upstream connection per request). Returns the length written (without
 * NUL), or -ENOSPC. */
long fwd_build_request(const struct http_request *req, char *out,
		       size_t outlen);

/* Response head for the client: the status line as received (first line of
 * `raw`) with the version replaced by ours (HTTP/1.1), end-to-end fields (same
 * rules as requests), then a Connection field saying whether the client
 * connection stays open. Returns the length written, or -ENOSPC / -EINVAL. */
long fwd_build_response(const char *raw, const struct http_response *resp,
			int client_version_minor, bool keep_alive, char *out,
			size_t outlen);

#endif
