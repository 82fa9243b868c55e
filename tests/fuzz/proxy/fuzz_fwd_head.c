/* Fuzz harness for proxy/fwd_head.c, the forward path's head rewriting.
 * The input (after one flags byte) is parsed as a request or a response
 * head; whatever the parser accepts is rewritten for the next hop, and the
 * rewritten head is parsed again. The rewrite must frame the body exactly
 * as the original did (anything else is request or response smuggling),
 * carry no hop-by-hop field and no field the original's Connection named,
 * give the request exactly one Host, fit the buffer it was given, and
 * refuse rather than truncate when the buffer is too small. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fwd_head.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct http_request req, req2;
static struct http_response resp, resp2;
static char out[FWD_HEAD_MAX], out2[FWD_HEAD_MAX];

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_fwd_head: %s\n", what);
		abort();
	}
}

static bool name_is(const struct http_header *h, const char *name)
{
	size_t n = strlen(name);
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* The fields of the rewritten head: none hop-by-hop (Transfer-Encoding
 * only while the body is chunked, Connection only as the one we add), none
 * named by the original's Connection. */
static void check_fields(const struct http_header *orig, size_t norig,
			 const struct http_header *h, size_t n, bool chunked,
			 bool is_request)
{
	size_t hosts = 0, conns = 0;
	for (size_t i = 0; i < n; i++) {
		if (name_is(&h[i], "host"))
			hosts++;
		if (name_is(&h[i], "connection")) {
			conns++;
			continue;
		}
		if (name_is(&h[i], "transfer-encoding")) {
			check(chunked, "Transfer-Encoding on a body that is "
				       "not chunked");
			continue;
		}
		check(!http_is_hop_by_hop(h[i].name, h[i].name_len),
		      "a hop-by-hop field travelled");
		if (!name_is(&h[i], "host"))
			check(!fwd_connection_lists(orig, norig, h[i].name,
						    h[i].name_len),
			      "a field the Connection header named travelled");
	}
	check(conns <= 1, "more than one Connection field");
	if (is_request)
		check(hosts == 1 && conns == 1, "request without one Host "
						"and one Connection");
}

/* The rewrite may legitimately outgrow what the parser accepts: a longer
 * head (the request line and Host written anew), or one field more than
 * HTTP_HEADERS_MAX (the Connection field added to a head that had the
 * most fields the parser takes). Anything else refused is a bug. */
static bool over_parser_limits(const char *h, size_t n)
{
	size_t lines = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (h[i] == '\r' && h[i + 1] == '\n')
			lines++;
	/* start line and blank line are not fields */
	return n > HTTP_HEAD_MAX - 4 || lines > HTTP_HEADERS_MAX + 2;
}

/* A smaller buffer gives the same bytes or -ENOSPC, never a cut head. */
static void check_small(long full, long small, size_t cap)
{
	if (small == -ENOSPC) {
		check((size_t)full > cap, "-ENOSPC with room to spare");
		return;
	}
	check(small == full && memcmp(out, out2, (size_t)full) == 0,
	      "a smaller buffer changed the head");
}

static void fuzz_request(const char *buf, size_t len, size_t cap)
{
	char err[256];
	if (http_parse_request(buf, len, &req, err, sizeof err) != HTTP_OK ||
	    !req.is_absolute)
		return;
	(void)fwd_check_host(&req, err, sizeof err);
	check(strnlen(err, sizeof err) < sizeof err, "err not terminated");
	long n = fwd_build_request(&req, out, sizeof out);
	/* An accepted head plus the request line and Host we write always
	 * fits: FWD_HEAD_MAX leaves room for them. */
	check(n > 0 && (size_t)n <= sizeof out, "request did not fit");
	check_small(n, fwd_build_request(&req, out2, cap), cap);

	enum http_parse_result r =
	    http_parse_request(out, (size_t)n, &req2, err, sizeof err);
	if (r == HTTP_TOO_LARGE) {
		check(over_parser_limits(out, (size_t)n),
		      "too large but short");
		return;
	}
	if (r != HTTP_OK)
		fprintf(stderr, "rewritten head refused: %s\n%.*s\n", err,
			(int)n, out);
	check(r == HTTP_OK, "the rewritten request does not parse");
	check(req2.head_len == (size_t)n, "rewritten head has trailing bytes");
	check(!req2.is_connect && !req2.is_absolute && req2.target[0] == '/',
	      "not origin-form");
	check(req2.version_minor == req.version_minor, "version changed");
	check(req2.method_len == req.method_len &&
		  memcmp(req2.method, req.method, req.method_len) == 0,
	      "method changed");
	check(req2.body == req.body, "body framing changed (smuggling)");
	if (req.body == HTTP_BODY_LENGTH)
		check(req2.content_length == req.content_length,
		      "Content-Length changed (smuggling)");
	check(!req2.keep_alive, "upstream connection not closed");
	check_fields(req.headers, req.nheaders, req2.headers, req2.nheaders,
		     req.body == HTTP_BODY_CHUNKED, true);
}

static void fuzz_response(const char *buf, size_t len, bool head,
			  int client_minor, bool keep_alive, size_t cap)
{
	char err[256];
	if (http_parse_response(buf, len, head, &resp, err, sizeof err) !=
	    HTTP_OK)
		return;
	/* The caller keeps a connection alive only when the body has an
	 * end of its own. */
	keep_alive = keep_alive && resp.keep_alive;
	long n = fwd_build_response(buf, &resp, client_minor, keep_alive, out,
				    sizeof out);
	check(n > 0 && (size_t)n <= sizeof out, "response did not fit");
	check_small(
	    n,
	    fwd_build_response(buf, &resp, client_minor, keep_alive, out2, cap),
	    cap);
	enum http_parse_result r =
	    http_parse_response(out, (size_t)n, head, &resp2, err, sizeof err);
	if (r == HTTP_TOO_LARGE) {
		check(over_parser_limits(out, (size_t)n),
		      "too large but short");
		return;
	}
	if (r != HTTP_OK)
		fprintf(stderr, "rewritten head refused: %s\n%.*s\n", err,
			(int)n, out);
	check(r == HTTP_OK, "the rewritten response does not parse");
	check(resp2.head_len == (size_t)n, "rewritten head has trailing bytes");
	check(resp2.version_minor == 1, "not HTTP/1.1 toward the client");
	check(resp2.status == resp.status, "status changed");
	check(resp2.body == resp.body, "body framing changed (smuggling)");
	if (resp.body == HTTP_BODY_LENGTH)
		check(resp2.content_length == resp.content_length,
		      "Content-Length changed (smuggling)");
	if (!keep_alive)
		check(!resp2.keep_alive, "client told to keep a closed "
					 "connection");
	check_fields(resp.headers, resp.nheaders, resp2.headers, resp2.nheaders,
		     resp.body == HTTP_BODY_CHUNKED, false);
}

/* Input: one flags byte (bit 0: response, bit 1: HEAD request, bit 2:
 * keep-alive, bit 3: client HTTP/1.0, bits 4-7: how much smaller the
 * second output buffer is), then the head. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const char *buf = (const char *)data + 1;
	size_t len = size - 1;
	if (len > HTTP_HEAD_MAX + 64)
		len = HTTP_HEAD_MAX + 64;
	size_t cap = len + 64 > (size_t)(flags >> 4) * 8
			 ? len + 64 - (size_t)(flags >> 4) * 8
			 : 0;
	if (cap > sizeof out2)
		cap = sizeof out2;
	if (flags & 1)
		fuzz_response(buf, len, (flags & 2) != 0, (flags & 8) ? 0 : 1,
			      (flags & 4) != 0, cap);
	else
		fuzz_request(buf, len, cap);
	return 0;
}
