/* Fuzz harness for proxy/http_parse.c: the input as a request head, as a
 * response head, and as a chunked body fed whole and in small pieces.
 * Checks that what is accepted is what the rules allow (bounded head, no
 * control bytes, pointers inside the head, NUL-terminated host and path),
 * that the verdict depends on the head alone, and that chunked framing does
 * not depend on how the bytes were split. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "inspect_ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct http_request req, req2;
static struct http_response resp;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_http_parse: %s\n", what);
		abort();
	}
}

static void check_fields(const char *buf, size_t head_len,
			 const struct http_header *h, size_t n)
{
	check(n <= HTTP_HEADERS_MAX, "too many headers");
	for (size_t i = 0; i < n; i++) {
		check(h[i].name >= buf && h[i].name_len > 0 &&
			  h[i].name + h[i].name_len <= buf + head_len,
		      "header name outside the head");
		check(h[i].value >= buf &&
			  h[i].value + h[i].value_len <= buf + head_len,
		      "header value outside the head");
		for (size_t j = 0; j < h[i].value_len; j++) {
			unsigned char ch = (unsigned char)h[i].value[j];
			check(ch >= 0x20 || ch == '\t', "control in a value");
		}
	}
}

/* The head of an accepted message: bounded, CRLF-structured, no NUL. */
static void check_head(const char *buf, size_t len, size_t head_len)
{
	check(head_len >= 4 && head_len <= len && head_len <= HTTP_HEAD_MAX,
	      "head length");
	check(memcmp(buf + head_len - 4, "\r\n\r\n", 4) == 0, "head end");
	check(memchr(buf, '\0', head_len) == NULL, "NUL in an accepted head");
	for (size_t i = 0; i < head_len; i++) {
		if (buf[i] == '\n')
			check(i > 0 && buf[i - 1] == '\r', "bare LF accepted");
		if (buf[i] == '\r')
			check(i + 1 < head_len && buf[i + 1] == '\n',
			      "bare CR accepted");
	}
}

static void fuzz_request(const char *buf, size_t len)
{
	char err[256];
	enum http_parse_result r =
	    http_parse_request(buf, len, &req, err, sizeof err);
	check(r >= HTTP_NOT_IMPLEMENTED && r <= HTTP_NEED_MORE, "range");
	check(strnlen(err, sizeof err) < sizeof err, "err not terminated");
	if (r != HTTP_OK && r != HTTP_NEED_MORE)
		check(err[0] != '\0', "refusal without a reason");
	if (len > HTTP_HEAD_MAX)
		check(r != HTTP_NEED_MORE, "need_more past the bound");
	if (r != HTTP_OK)
		return;
	check_head(buf, len, req.head_len);
	check_fields(buf, req.head_len, req.headers, req.nheaders);
	check(req.version_minor == 0 || req.version_minor == 1, "version");
	check(strnlen(req.host, sizeof req.host) < sizeof req.host, "host");
	check(strnlen(req.path, sizeof req.path) < sizeof req.path, "path");
	check(!(req.is_connect && req.is_absolute), "connect and absolute");
	if (req.is_connect) {
		check(req.port != 0 && req.host[0] != '\0', "connect target");
		check(req.body == HTTP_BODY_NONE, "connect with a body");
	}
	if (req.is_absolute)
		check(req.port != 0 && req.host[0] != '\0' &&
			  req.path[0] == '/',
		      "absolute target");
	if (req.body == HTTP_BODY_CHUNKED)
		check(req.version_minor == 1, "chunked in HTTP/1.0");
	check(req.body != HTTP_BODY_CLOSE, "close-delimited request");
	/* Upgrades (inspect_ws.c): a WebSocket handshake is a GET without a
	 * body; any refusal says why. */
	char msg[200] = "";
	enum inspect_ws_ask ask = inspect_ws_asked(&req, msg, sizeof msg);
	if (ask == INSPECT_WS_WEBSOCKET)
		check(req.method_len == 3 &&
			  memcmp(req.method, "GET", 3) == 0 &&
			  req.body == HTTP_BODY_NONE,
		      "websocket handshake not a bodiless GET");
	if (ask == INSPECT_WS_OTHER)
		check(msg[0] != '\0' && strnlen(msg, sizeof msg) < sizeof msg,
		      "upgrade refused without a reason");

	/* The verdict depends on the head alone, and a shorter prefix is
	 * never a verdict. */
	size_t hl = req.head_len;
	check(http_parse_request(buf, hl, &req2, err, sizeof err) == HTTP_OK &&
		  req2.head_len == hl && req2.nheaders == req.nheaders &&
		  req2.body == req.body && strcmp(req2.host, req.host) == 0,
	      "head alone parses differently");
	check(http_parse_request(buf, hl - 1, &req2, err, sizeof err) ==
		  HTTP_NEED_MORE,
	      "a prefix of an accepted head is a verdict");
	check(http_parse_request(buf, hl / 2, &req2, err, sizeof err) ==
		  HTTP_NEED_MORE,
	      "half an accepted head is a verdict");
}

static void fuzz_response(const char *buf, size_t len, bool head)
{
	char err[256];
	enum http_parse_result r =
	    http_parse_response(buf, len, head, &resp, err, sizeof err);
	check(r >= HTTP_NOT_IMPLEMENTED && r <= HTTP_NEED_MORE, "range");
	if (r != HTTP_OK)
		return;
	check_head(buf, len, resp.head_len);
	check_fields(buf, resp.head_len, resp.headers, resp.nheaders);
	check(resp.status >= 100 && resp.status <= 599, "status");
	if (head)
		check(resp.body == HTTP_BODY_NONE, "body after HEAD");
	if (resp.body == HTTP_BODY_CLOSE)
		check(!resp.keep_alive, "close-delimited keep-alive");
	(void)inspect_ws_101_ok(&resp);
}

/* Chunked framing: all at once and in 1..7-byte pieces agree. */
static void fuzz_chunked(const char *buf, size_t len)
{
	struct http_chunked a, b;
	http_chunked_init(&a);
	http_chunked_init(&b);
	long whole = http_chunked_feed(&a, buf, len);
	check(whole >= -1 && whole <= (long)len, "chunked whole range");

	long total = 0;
	int failed = 0;
	for (size_t off = 0, k = 0; off < len && !b.done; k++) {
		size_t step = 1 + k % 7;
		if (step > len - off)
			step = len - off;
		long n = http_chunked_feed(&b, buf + off, step);
		if (n < 0) {
			failed = 1;
			break;
		}
		check(n <= (long)step, "chunked piece range");
		/* A piece is consumed whole unless the body ended in it. */
		check(n == (long)step || b.done, "piece cut short");
		total += n;
		off += (size_t)n;
	}
	if (whole < 0) {
		check(failed, "split feed accepts what whole feed refuses");
		return;
	}
	check(!failed, "split feed refuses what whole feed accepts");
	check(total == whole && a.done == b.done, "split feed disagrees");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	fuzz_request(buf, size);
	fuzz_response(buf, size, false);
	fuzz_response(buf, size, true);
	fuzz_chunked(buf, size);
	return 0;
}
