/* Strict, bounded HTTP/1.1 message-head parsing for the proxy: request heads
 * (CONNECT and absolute-form forward requests), response heads, and chunked
 * body framing. Pure functions over caller-owned bytes; no I/O. */
#ifndef AGENTSAFE_HTTP_PARSE_H
#define AGENTSAFE_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX	 16384 /* request line + headers, bytes */
#define HTTP_HEADERS_MAX 100   /* header fields */

enum http_parse_result {
	HTTP_OK = 0,		   /* complete head parsed */
	HTTP_NEED_MORE = 1,	   /* no CRLFCRLF yet, still within limits */
	HTTP_BAD = -1,		   /* malformed: answer 400 */
	HTTP_TOO_LARGE = -2,	   /* head over HTTP_HEAD_MAX: answer 431 */
	HTTP_BAD_VERSION = -3,	   /* not HTTP/1.0 or HTTP/1.1: answer 505 */
	HTTP_NOT_IMPLEMENTED = -4, /* e.g. unknown Transfer-Encoding: 501 */
};

struct http_header {
	const char *name; /* points into the caller's buffer, not NUL-ended */
	size_t name_len;
	const char *value; /* leading/trailing whitespace trimmed */
	size_t value_len;
};

enum http_body_kind {
	HTTP_BODY_NONE = 0,
	HTTP_BODY_LENGTH,  /* Content-Length: content_length bytes */
	HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked (last coding) */
	HTTP_BODY_CLOSE,   /* responses only: until the server closes */
};

struct http_request {
	const char *method; /* into buffer */
	size_t method_len;
	const char *target; /* request-target as sent */
	size_t target_len;
	int version_minor; /* 0 or 1 */
	/* Authority from the target: CONNECT host:port, or the host and port
	 * of an absolute-form http:// URI (port 80 when absent). host is
	 * NUL-terminated, raw (policy_host_normalize validates it). */
	char host[256];
	uint16_t port;
	bool is_connect;
	bool is_absolute;
	char path[2048]; /* absolute-form only: path + query, "/" when empty */
	const char *host_header; /* the single Host header, NULL if absent */
	size_t host_header_len;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive; /* per version default and Connection header */
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t nheaders;
	size_t head_len; /* bytes consumed, through the blank line */
};

/* Parse a request head. Rejects: obs-fold, bare CR/LF misuse, whitespace
 * before the colon, more than one Host, conflicting or repeated
 * Content-Length, Transfer-Encoding together with Content-Length, a
 * Transfer-Encoding other than chunked as last coding, a Connection field
 * naming Content-Length, Transfer-Encoding or Host, control bytes, a
 * CONNECT target that is not authority-form, userinfo in a URI. err gets a
 * short sentence for the log on failure. */
enum http_parse_result http_parse_request(const char *buf, size_t len,
					  struct http_request *req, char *err,
					  size_t errlen);

struct http_response {
	int status;
	int version_minor;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive;
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t nheaders;
	size_t head_len;
};

/* Parse a response head; `request_method_head` and 1xx/204/304 mean no body.
 * Refuses the same framing ambiguities as requests (repeated or bad
 * Content-Length, CL with TE, chunked twice, a Connection field naming
 * Content-Length, Transfer-Encoding or Host): the caller answers 502. */
enum http_parse_result http_parse_response(const char *buf, size_t len,
					   bool request_method_head,
					   struct http_response *resp,
					   char *err, size_t errlen);

/* True for hop-by-hop fields a proxy must not forward (Connection and the
 * fields it names are checked by the caller; this covers the fixed list:
 * Connection, Keep-Alive, Proxy-Connection, Proxy-Authorization,
 * Proxy-Authenticate, TE, Trailer, Transfer-Encoding, Upgrade). */
bool http_is_hop_by_hop(const char *name, size_t name_len);

/* The value of a hex digit (either case), or -1. */
int http_hex_digit(char ch);

/* Incremental chunked-body framing: feed bytes as they stream through and
 * learn where the body ends, without copying it. */
struct http_chunked {
	int state; /* internal */
	uint64_t remaining;
	size_t line_len;
	bool done;
};
void http_chunked_init(struct http_chunked *c);
/* Consume up to len bytes; returns how many belong to the body (<= len),
 * sets c->done at the end of the body (after the trailer's blank line), or
 * returns -1 on malformed framing. */
long http_chunked_feed(struct http_chunked *c, const char *buf, size_t len);

#endif
