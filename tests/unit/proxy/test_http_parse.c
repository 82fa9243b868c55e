/* Unit tests for http_parse_request (proxy/http_parse.c): the request heads
 * the proxy accepts (CONNECT, absolute-form) and every framing ambiguity it
 * must refuse (obs-fold, bare CR/LF, two Hosts, CL+TE, repeated CL, codings
 * other than chunked last, control bytes, oversize heads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwd_head.h"
#include "http_parse.h"

static struct http_request req;
static char err[256];

static enum http_parse_result parse_n(const char *s, size_t n)
{
	return http_parse_request(s, n, &req, err, sizeof err);
}

static enum http_parse_result parse(const char *s)
{
	return parse_n(s, strlen(s));
}

/* A GET for http://a.test/ with `fields` (each ending in CRLF). */
static enum http_parse_result get_with(const char *fields)
{
	static char buf[4096];
	snprintf(buf, sizeof buf,
		 "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n%s\r\n",
		 fields);
	return parse(buf);
}

static void expect_bad(const char *s, const char *why)
{
	assert_int_equal(parse(s), HTTP_BAD);
	if (strstr(err, why) == NULL)
		fail_msg("%s: err '%s' lacks '%s'", s, err, why);
}

static void connect_authority_form(void **state)
{
	(void)state;
	const char *s = "CONNECT example.com:443 HTTP/1.1\r\n"
			"Host: example.com:443\r\n"
			"User-Agent: t\r\n\r\nextra";
	assert_int_equal(parse(s), HTTP_OK);
	assert_true(req.is_connect);
	assert_false(req.is_absolute);
	assert_string_equal(req.host, "example.com");
	assert_int_equal(req.port, 443);
	assert_int_equal(req.version_minor, 1);
	assert_true(req.keep_alive);
	assert_int_equal(req.body, HTTP_BODY_NONE);
	assert_int_equal(req.nheaders, 2);
	assert_int_equal(req.head_len, strlen(s) - 5);
	assert_int_equal(req.method_len, 7);
	assert_memory_equal(req.target, "example.com:443", 15);
	assert_int_equal(req.host_header_len, 15);
	assert_memory_equal(req.host_header, "example.com:443", 15);
	assert_string_equal(err, "");

	assert_int_equal(parse("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n"),
			 HTTP_OK);
	assert_string_equal(req.host, "[2001:db8::1]");
	assert_int_equal(req.port, 8443);
	assert_int_equal(parse("connect 10.0.0.1:1 HTTP/1.0\r\n\r\n"), HTTP_OK);
	assert_true(req.is_connect);
	assert_string_equal(req.host, "10.0.0.1");
	assert_false(req.keep_alive);
	/* An explicit empty body is no body. */
	assert_int_equal(parse("CONNECT a.test:443 HTTP/1.1\r\n"
			       "Content-Length: 0\r\n\r\n"),
			 HTTP_OK);
}

static void connect_target_must_be_host_port(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "a.test",
	    "a.test:",
	    "a.test:0",
	    "a.test:65536",
	    "a.test:443x",
	    "a.test:123456",
	    ":443",
	    "u@a.test:443",
	    "http://a.test:443/",
	    "/",
	    "[]:443",
	    "[zz::1]:443",
	    "[::1]443",
	    "[::1",
	    "a.test:443:1",
	    "a<b.test:443",
	    "a.test:-1",
	};
	char buf[512];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(buf, sizeof buf, "CONNECT %s HTTP/1.1\r\n\r\n",
			 bad[i]);
		expect_bad(buf, "CONNECT target is not host:port");
	}
	char longhost[300];
	memset(longhost, 'a', 256);
	longhost[256] = '\0';
	snprintf(buf, sizeof buf, "CONNECT %s:443 HTTP/1.1\r\n\r\n", longhost);
	expect_bad(buf, "CONNECT target");
	longhost[255] = '\0';
	snprintf(buf, sizeof buf, "CONNECT %s:443 HTTP/1.1\r\n\r\n", longhost);
	assert_int_equal(parse(buf), HTTP_OK);

	expect_bad("CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
		   "CONNECT request with a body");
	expect_bad("CONNECT a.test:443 HTTP/1.1\r\n"
		   "Transfer-Encoding: chunked\r\n\r\n",
		   "CONNECT request with a body");
}

static void absolute_form_get(void **state)
{
	(void)state;
	assert_int_equal(
	    parse("GET http://example.com:8080/a/b?c=1&d HTTP/1.1\r\n"
		  "Host: example.com:8080\r\n\r\n"),
	    HTTP_OK);
	assert_true(req.is_absolute);
	assert_false(req.is_connect);
	assert_string_equal(req.host, "example.com");
	assert_int_equal(req.port, 8080);
	assert_string_equal(req.path, "/a/b?c=1&d");
	assert_int_equal(req.host_header_len, 16);
	assert_int_equal(req.body, HTTP_BODY_NONE);

	assert_int_equal(parse("GET http://example.com HTTP/1.1\r\n"
			       "Host: example.com\r\n\r\n"),
			 HTTP_OK);
	assert_int_equal(req.port, 80);
	assert_string_equal(req.path, "/");
	assert_int_equal(parse("GET HTTP://Example.COM?q HTTP/1.1\r\n"
			       "Host: example.com\r\n\r\n"),
			 HTTP_OK);
	assert_string_equal(req.host, "Example.COM");
	assert_string_equal(req.path, "/?q");
	assert_int_equal(parse("POST http://[::1]:81/x HTTP/1.1\r\n"
			       "Host: [::1]:81\r\nContent-Length: 12\r\n\r\n"),
			 HTTP_OK);
	assert_string_equal(req.host, "[::1]");
	assert_int_equal(req.port, 81);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 12);
}

static void absolute_form_refusals(void **state)
{
	(void)state;
	expect_bad(
	    "GET http://user:pw@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
	    "userinfo");
	expect_bad("GET http:///x HTTP/1.1\r\nHost: a.test\r\n\r\n",
		   "URI authority");
	expect_bad("GET http://a.test:0/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
		   "URI authority");
	expect_bad("GET http://a.test/#frag HTTP/1.1\r\nHost: a.test\r\n\r\n",
		   "fragment");
	assert_int_equal(
	    parse("GET https://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"),
	    HTTP_NOT_IMPLEMENTED);
	assert_non_null(strstr(err, "CONNECT"));

	/* Path + query up to 2047 bytes fits; one more does not. */
	static char buf[4096];
	char path[2100];
	memset(path, 'p', sizeof path);
	path[0] = '/';
	path[2047] = '\0';
	snprintf(buf, sizeof buf, "GET http://a.test%s HTTP/1.1\r\n\r\n", path);
	assert_int_equal(parse(buf), HTTP_OK);
	assert_int_equal(strlen(req.path), 2047);
	path[2047] = 'p';
	path[2048] = '\0';
	snprintf(buf, sizeof buf, "GET http://a.test%s HTTP/1.1\r\n\r\n", path);
	assert_int_equal(parse(buf), HTTP_TOO_LARGE);
}

static void origin_form_parsed_but_not_forwardable(void **state)
{
	(void)state;
	/* Parsed (the caller answers 400): neither CONNECT nor absolute. */
	assert_int_equal(
	    parse("GET /index.html HTTP/1.1\r\nHost: a.test\r\n\r\n"), HTTP_OK);
	assert_false(req.is_connect);
	assert_false(req.is_absolute);
	assert_string_equal(req.host, "");
	assert_int_equal(parse("OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n"),
			 HTTP_OK);
	assert_false(req.is_connect || req.is_absolute);
	assert_int_equal(parse("GET ftp://a.test/ HTTP/1.1\r\n\r\n"), HTTP_OK);
	assert_false(req.is_connect || req.is_absolute);
}

static void host_header_rules(void **state)
{
	(void)state;
	char ferr[256];
	/* Missing: parsed; the forward path (fwd_check_host) refuses it for
	 * HTTP/1.1 and accepts it for HTTP/1.0. */
	assert_int_equal(parse("GET http://a.test/ HTTP/1.1\r\n\r\n"), HTTP_OK);
	assert_null(req.host_header);
	assert_int_equal(fwd_check_host(&req, ferr, sizeof ferr), -EINVAL);
	assert_int_equal(parse("GET http://a.test/ HTTP/1.0\r\n\r\n"), HTTP_OK);
	assert_int_equal(fwd_check_host(&req, ferr, sizeof ferr), 0);

	expect_bad("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
		   "Host: b.test\r\n\r\n",
		   "more than one Host");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
		   "hOST: a.test\r\n\r\n",
		   "more than one Host");
	expect_bad("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n"
		   "X: 1\r\nHost: a.test\r\n\r\n",
		   "more than one Host");

	/* Host disagreeing with the URI: not the parser's check, but the
	 * forward path refuses it. */
	assert_int_equal(parse("GET http://a.test/ HTTP/1.1\r\n"
			       "Host: b.test\r\n\r\n"),
			 HTTP_OK);
	assert_memory_equal(req.host_header, "b.test", 6);
	assert_int_equal(fwd_check_host(&req, ferr, sizeof ferr), -EINVAL);
	assert_int_equal(parse("GET http://a.test/ HTTP/1.1\r\n"
			       "Host:   A.TEST:80  \r\n\r\n"),
			 HTTP_OK);
	assert_int_equal(req.host_header_len, 9);
	assert_int_equal(fwd_check_host(&req, ferr, sizeof ferr), 0);
}

static void obs_fold_refused(void **state)
{
	(void)state;
	expect_bad("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
		   "X-Long: one\r\n two\r\n\r\n",
		   "obsolete line folding");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
		   "X-Long: one\r\n\ttwo\r\n\r\n",
		   "obsolete line folding");
	/* Whitespace before the first field is a fold of the request line. */
	expect_bad("GET http://a.test/ HTTP/1.1\r\n Host: a.test\r\n\r\n",
		   "obsolete line folding");
}

static void bare_cr_and_lf(void **state)
{
	(void)state;
	expect_bad("GET http://a.test/ HTTP/1.1\nHost: a.test\n\n", "bare LF");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nHost: a.test\n\r\n",
		   "bare LF");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nX: a\nb\r\n\r\n", "bare LF");
	expect_bad("GET http://a.test/ HTTP/1.1\r\r\n\r\n", "bare CR");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nX: a\rb\r\n\r\n", "bare CR");
	expect_bad("GET http://a.test/ HTTP/1.1\r\n\r\r\n", "bare CR");
	/* A CR at the very end may still be followed by LF. */
	assert_int_equal(parse("GET http://a.test/ HTTP/1.1\r"),
			 HTTP_NEED_MORE);
	assert_int_equal(parse("GET http://a.test/ HTTP/1.1\r\n\r"),
			 HTTP_NEED_MORE);
	/* An empty request line (leading CRLF) is refused. */
	expect_bad("\r\nGET http://a.test/ HTTP/1.1\r\n\r\n", "request line");
}

static void head_size_limit(void **state)
{
	(void)state;
	static char buf[HTTP_HEAD_MAX + 64];
	static const char crlfcrlf[4] = {'\r', '\n', '\r', '\n'};
	static const char line[] = "GET http://a.test/ HTTP/1.1\r\nX: ";
	const size_t ll = sizeof line - 1;

	/* No end of head within 16 KiB. */
	memcpy(buf, line, sizeof line);
	memset(buf + ll, 'v', sizeof buf - ll);
	assert_int_equal(parse_n(buf, HTTP_HEAD_MAX - 1), HTTP_NEED_MORE);
	assert_int_equal(parse_n(buf, HTTP_HEAD_MAX), HTTP_TOO_LARGE);
	assert_int_equal(parse_n(buf, sizeof buf), HTTP_TOO_LARGE);
	assert_non_null(strstr(err, "16 KiB"));
	/* Waiting for the LF of a line that would end past the limit. */
	buf[HTTP_HEAD_MAX - 1] = '\r';
	assert_int_equal(parse_n(buf, HTTP_HEAD_MAX), HTTP_TOO_LARGE);
	buf[HTTP_HEAD_MAX] = '\n';
	buf[HTTP_HEAD_MAX + 1] = '\r';
	assert_int_equal(parse_n(buf, HTTP_HEAD_MAX + 2), HTTP_TOO_LARGE);
	buf[200] = '\r';
	assert_int_equal(parse_n(buf, 201), HTTP_NEED_MORE);

	/* A head of exactly HTTP_HEAD_MAX bytes is fine; one more is not,
	 * wherever the blank line falls. */
	for (size_t total = HTTP_HEAD_MAX - 2; total <= HTTP_HEAD_MAX + 4;
	     total++) {
		memset(buf + ll, 'v', sizeof buf - ll);
		memcpy(buf + total - 4, crlfcrlf, sizeof crlfcrlf);
		enum http_parse_result r = parse_n(buf, total + 10);
		if (total <= HTTP_HEAD_MAX) {
			assert_int_equal(r, HTTP_OK);
			assert_int_equal(req.head_len, total);
			assert_int_equal(req.headers[0].value_len,
					 total - ll - 4);
		} else {
			assert_int_equal(r, HTTP_TOO_LARGE);
		}
	}
}

static void header_count_limit(void **state)
{
	(void)state;
	static char buf[8192];
	size_t n = (size_t)snprintf(buf, sizeof buf,
				    "GET http://a.test/ HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_HEADERS_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: %d\r\n",
				      i, i);
	memcpy(buf + n, "\r\n", 3);
	assert_int_equal(parse(buf), HTTP_OK);
	assert_int_equal(req.nheaders, HTTP_HEADERS_MAX);
	assert_memory_equal(req.headers[99].name, "X-99", 4);
	assert_memory_equal(req.headers[99].value, "99", 2);
	memcpy(buf + n, "Y: 1\r\n\r\n", 9);
	assert_int_equal(parse(buf), HTTP_TOO_LARGE);
	assert_non_null(strstr(err, "more than 100"));
}

static void content_length_rules(void **state)
{
	(void)state;
	assert_int_equal(get_with("Content-Length: 42\r\n"), HTTP_OK);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 42);
	assert_int_equal(get_with("content-length:0\r\n"), HTTP_OK);
	assert_int_equal(req.body, HTTP_BODY_NONE);
	assert_int_equal(get_with("Content-Length: 999999999999999999\r\n"),
			 HTTP_OK);
	assert_int_equal(req.content_length, 999999999999999999ULL);

	static const char *const bad[] = {
	    "Content-Length: 1\r\nContent-Length: 2\r\n",
	    "Content-Length: 1\r\nContent-Length: 1\r\n",
	    "Content-Length: 1, 1\r\n",
	    "Content-Length: -1\r\n",
	    "Content-Length: +1\r\n",
	    "Content-Length: 0x10\r\n",
	    "Content-Length: 1 2\r\n",
	    "Content-Length:\r\n",
	    "Content-Length: 1000000000000000000\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(get_with(bad[i]), HTTP_BAD);
		assert_non_null(strstr(err, "Content-Length"));
	}
}

static void transfer_encoding_rules(void **state)
{
	(void)state;
	assert_int_equal(get_with("Transfer-Encoding: chunked\r\n"), HTTP_OK);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
	assert_int_equal(get_with("Transfer-Encoding: gzip, CHUNKED\r\n"),
			 HTTP_OK);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
	assert_int_equal(get_with("Transfer-Encoding: gzip\r\n"
				  "Transfer-Encoding: chunked\r\n"),
			 HTTP_OK);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);

	/* CL and TE together, in either order. */
	assert_int_equal(get_with("Content-Length: 5\r\n"
				  "Transfer-Encoding: chunked\r\n"),
			 HTTP_BAD);
	assert_non_null(strstr(err, "together with Content-Length"));
	assert_int_equal(get_with("Transfer-Encoding: chunked\r\n"
				  "Content-Length: 5\r\n"),
			 HTTP_BAD);

	static const char *const not_last[] = {
	    "Transfer-Encoding: gzip\r\n",
	    "Transfer-Encoding: chunked, gzip\r\n",
	    "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
	    "Transfer-Encoding: chunked, chunked\r\n",
	    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
	    "Transfer-Encoding: chunked, gzip, chunked\r\n",
	    "Transfer-Encoding: \r\n",
	    "Transfer-Encoding: ,\r\n",
	    "Transfer-Encoding: identity\r\n",
	};
	for (size_t i = 0; i < sizeof not_last / sizeof not_last[0]; i++) {
		assert_int_equal(get_with(not_last[i]), HTTP_BAD);
		assert_non_null(strstr(err, "single chunked"));
	}
	assert_int_equal(get_with("Transfer-Encoding: br, chunked\r\n"),
			 HTTP_NOT_IMPLEMENTED);
	assert_int_equal(get_with("Transfer-Encoding: chunked;x=1\r\n"),
			 HTTP_BAD);
	expect_bad("POST http://a.test/ HTTP/1.0\r\n"
		   "Transfer-Encoding: chunked\r\n\r\n",
		   "HTTP/1.0");
}

static void connection_naming_a_framing_field_refused(void **state)
{
	(void)state;
	/* Connection makes the fields it names hop-by-hop: the forward path
	 * would strip Content-Length (or Host, or Transfer-Encoding) while
	 * still framing the body by it, and the upstream would read the body
	 * as the next request. Such a message is refused, whether or not the
	 * named field is present, in any case and list position, and with
	 * the separators fwd_connection_lists splits on (comma, space, tab). */
	static const char *const bad[] = {
	    "Content-Length: 4\r\nConnection: Content-Length\r\n",
	    "Connection: content-length\r\nContent-Length: 4\r\n",
	    "Connection: CONTENT-LENGTH\r\n",
	    "Transfer-Encoding: chunked\r\n"
	    "Connection: keep-alive, Transfer-Encoding\r\n",
	    "Connection: Host\r\n",
	    "Connection: close,host\r\n",
	    "Connection: x-a\r\nConnection: transfer-encoding\r\n",
	    "Connection: close content-length\r\n",
	    "Connection: x-a\tHost\r\n",
	    "Connection: , ,Content-Length , \r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(get_with(bad[i]), HTTP_BAD);
		if (strstr(err, "Connection") == NULL)
			fail_msg("%s: err '%s'", bad[i], err);
	}
	expect_bad("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n"
		   "Connection: host\r\n\r\n",
		   "Connection");
	expect_bad("POST http://a.test/ HTTP/1.0\r\nContent-Length: 1\r\n"
		   "Connection: keep-alive, content-length\r\n\r\nx",
		   "Connection");
	/* Near misses are ordinary tokens. */
	static const char *const ok[] = {
	    "Connection: content-length-x\r\n",
	    "Connection: x-content-length\r\n",
	    "Connection: hosts\r\n",
	    "Connection: close\r\n",
	    "Connection: keep-alive, X-Host\r\n",
	    "X-Connection: host\r\n",
	    "Content-Length: 4\r\nX-A: Connection: content-length\r\n",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (get_with(ok[i]) != HTTP_OK)
			fail_msg("%s: refused: %s", ok[i], err);
}

static void response_connection_naming_a_framing_field_refused(void **state)
{
	(void)state;
	struct http_response resp;
	static const char *const bad[] = {
	    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Connection: content-length\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: Transfer-Encoding\r\n\r\n",
	    "HTTP/1.0 200 OK\r\nConnection: keep-alive, HOST\r\n"
	    "Content-Length: 0\r\n\r\n",
	    "HTTP/1.1 304 Not Modified\r\nConnection: content-length\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(http_parse_response(bad[i], strlen(bad[i]),
						     false, &resp, err,
						     sizeof err),
				 HTTP_BAD);
		assert_non_null(strstr(err, "Connection"));
	}
	static const char okr[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
				  "Connection: close, x-content-length\r\n\r\n";
	assert_int_equal(http_parse_response(okr, strlen(okr), false, &resp,
					     err, sizeof err),
			 HTTP_OK);
	assert_int_equal(resp.body, HTTP_BODY_LENGTH);
	assert_false(resp.keep_alive);
}

static void control_bytes_refused(void **state)
{
	(void)state;
	static const char nul_value[] =
	    "GET http://a.test/ HTTP/1.1\r\nX: a\0b\r\nHost: a.test\r\n\r\n";
	assert_int_equal(parse_n(nul_value, sizeof nul_value - 1), HTTP_BAD);
	assert_non_null(strstr(err, "control character"));
	static const char nul_name[] =
	    "GET http://a.test/ HTTP/1.1\r\nX\0Y: a\r\n\r\n";
	assert_int_equal(parse_n(nul_name, sizeof nul_name - 1), HTTP_BAD);
	assert_non_null(strstr(err, "valid name"));
	static const char nul_target[] =
	    "GET http://a.test/\0 HTTP/1.1\r\n\r\n";
	assert_int_equal(parse_n(nul_target, sizeof nul_target - 1), HTTP_BAD);
	static const char nul_method[] =
	    "GE\0T http://a.test/ HTTP/1.1\r\n\r\n";
	assert_int_equal(parse_n(nul_method, sizeof nul_method - 1), HTTP_BAD);
	expect_bad("GET http://a.test/ HTTP/1.1\r\nX: a\x7f\r\n\r\n",
		   "control character");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nX: a\x01\r\n\r\n",
		   "control character");
	expect_bad("GET http://a.test/\x80 HTTP/1.1\r\n\r\n", "request target");
	/* A tab inside a value is allowed; around it, trimmed. */
	assert_int_equal(get_with("X:\t a\tb \t\r\n"), HTTP_OK);
	assert_int_equal(req.headers[1].value_len, 3);
	assert_memory_equal(req.headers[1].value, "a\tb", 3);
}

static void field_name_syntax(void **state)
{
	(void)state;
	expect_bad("GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n",
		   "whitespace before the colon");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nHost\t: a.test\r\n\r\n",
		   "whitespace before the colon");
	expect_bad("GET http://a.test/ HTTP/1.1\r\n: a\r\n\r\n", "valid name");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nNoColon\r\n\r\n",
		   "valid name");
	expect_bad("GET http://a.test/ HTTP/1.1\r\nX(y): a\r\n\r\n",
		   "valid name");
	assert_int_equal(get_with("X-Empty:\r\n"), HTTP_OK);
	assert_int_equal(req.headers[1].value_len, 0);
}

static void method_must_be_token(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "G(T http://a.test/ HTTP/1.1\r\n\r\n",
	    "GE\"T http://a.test/ HTTP/1.1\r\n\r\n",
	    "G,T http://a.test/ HTTP/1.1\r\n\r\n",
	    "G\tT http://a.test/ HTTP/1.1\r\n\r\n",
	    "G\x80T http://a.test/ HTTP/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_bad(bad[i], "method is not a token");
	expect_bad(" GET http://a.test/ HTTP/1.1\r\n\r\n", "request line");
	expect_bad("GET  http://a.test/ HTTP/1.1\r\n\r\n", "request line");
	expect_bad("GET http://a.test/  HTTP/1.1\r\n\r\n", "request line");
	expect_bad("GET http://a.test/\r\n\r\n", "request line");
	expect_bad("GET\r\n\r\n", "request line");
	assert_int_equal(parse("M-SEARCH~! http://a.test/ HTTP/1.1\r\n\r\n"),
			 HTTP_OK);
	assert_int_equal(req.method_len, 10);
}

static void versions(void **state)
{
	(void)state;
	assert_int_equal(parse("GET http://a.test/ HTTP/1.0\r\n\r\n"), HTTP_OK);
	assert_int_equal(req.version_minor, 0);
	assert_false(req.keep_alive);
	assert_int_equal(parse("GET http://a.test/ HTTP/1.0\r\n"
			       "Connection: Keep-Alive\r\n\r\n"),
			 HTTP_OK);
	assert_true(req.keep_alive);
	assert_int_equal(parse("GET http://a.test/ HTTP/1.1\r\n"
			       "Connection: foo, close\r\n\r\n"),
			 HTTP_OK);
	assert_int_equal(req.version_minor, 1);
	assert_false(req.keep_alive);
	assert_int_equal(parse("GET http://a.test/ HTTP/1.0\r\n"
			       "Connection: keep-alive, close\r\n\r\n"),
			 HTTP_OK);
	assert_false(req.keep_alive);

	assert_int_equal(parse("GET http://a.test/ HTTP/2.0\r\n\r\n"),
			 HTTP_BAD_VERSION);
	assert_int_equal(parse("GET http://a.test/ HTTP/1.2\r\n\r\n"),
			 HTTP_BAD_VERSION);
	assert_int_equal(parse("GET http://a.test/ HTTP/0.9\r\n\r\n"),
			 HTTP_BAD_VERSION);
	static const char *const bad[] = {
	    "GET http://a.test/ HTTP/1.10\r\n\r\n",
	    "GET http://a.test/ http/1.1\r\n\r\n",
	    "GET http://a.test/ HTTP/1\r\n\r\n",
	    "GET http://a.test/ HTTP/1.x\r\n\r\n",
	    "GET http://a.test/ HTTP/1.1 \r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(parse(bad[i]), HTTP_BAD);
}

static void one_byte_at_a_time(void **state)
{
	(void)state;
	static const char *const reqs[] = {
	    "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n"
	    "Proxy-Connection: keep-alive\r\n\r\n",
	    "POST http://a.test/x HTTP/1.1\r\nHost: a.test\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n",
	};
	for (size_t k = 0; k < sizeof reqs / sizeof reqs[0]; k++) {
		size_t n = strlen(reqs[k]);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(parse_n(reqs[k], i), HTTP_NEED_MORE);
		assert_int_equal(parse_n(reqs[k], n), HTTP_OK);
		assert_int_equal(req.head_len, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(connect_authority_form),
	    cmocka_unit_test(connect_target_must_be_host_port),
	    cmocka_unit_test(absolute_form_get),
	    cmocka_unit_test(absolute_form_refusals),
	    cmocka_unit_test(origin_form_parsed_but_not_forwardable),
	    cmocka_unit_test(host_header_rules),
	    cmocka_unit_test(obs_fold_refused),
	    cmocka_unit_test(bare_cr_and_lf),
	    cmocka_unit_test(head_size_limit),
	    cmocka_unit_test(header_count_limit),
	    cmocka_unit_test(content_length_rules),
	    cmocka_unit_test(transfer_encoding_rules),
	    cmocka_unit_test(connection_naming_a_framing_field_refused),
	    cmocka_unit_test(
		response_connection_naming_a_framing_field_refused),
	    cmocka_unit_test(control_bytes_refused),
	    cmocka_unit_test(field_name_syntax),
	    cmocka_unit_test(method_must_be_token),
	    cmocka_unit_test(versions),
	    cmocka_unit_test(one_byte_at_a_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
