/* Unit tests for proxy/fwd_head.c: the Host/URI agreement check and the
 * request/response heads the proxy writes when forwarding plain HTTP
 * (origin-form, hop-by-hop fields dropped, Connection handled). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fwd_head.h"

static void add_header(struct http_header *hs, size_t *n, const char *name,
		       const char *value)
{
	hs[*n].name = name;
	hs[*n].name_len = strlen(name);
	hs[*n].value = value;
	hs[*n].value_len = strlen(value);
	(*n)++;
}

/* A parsed absolute-form GET as http_parse_request would leave it. */
static void make_get(struct http_request *r, const char *host, uint16_t port,
		     const char *host_header)
{
	memset(r, 0, sizeof *r);
	r->method = "GET";
	r->method_len = 3;
	r->version_minor = 1;
	snprintf(r->host, sizeof r->host, "%s", host);
	r->port = port;
	r->is_absolute = true;
	snprintf(r->path, sizeof r->path, "/p?q=1");
	if (host_header != NULL) {
		r->host_header = host_header;
		r->host_header_len = strlen(host_header);
		add_header(r->headers, &r->nheaders, "Host", host_header);
	}
	r->keep_alive = true;
}

static void host_must_match_uri(void **state)
{
	(void)state;
	struct http_request r;
	char err[256];
	make_get(&r, "a.test", 80, "a.test");
	assert_int_equal(fwd_check_host(&r, err, sizeof err), 0);
	make_get(&r, "a.test", 80, "A.Test.:80");
	assert_int_equal(fwd_check_host(&r, err, sizeof err), 0);
	make_get(&r, "a.test", 8080, "a.test:8080");
	assert_int_equal(fwd_check_host(&r, err, sizeof err), 0);

	make_get(&r, "a.test", 80, "b.test");
	assert_int_equal(fwd_check_host(&r, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "b.test"));
	make_get(&r, "a.test", 8080, "a.test"); /* port 80 vs 8080 */
	assert_int_equal(fwd_check_host(&r, err, sizeof err), -EINVAL);
	make_get(&r, "a.test", 80, "a.test:8080");
	assert_int_equal(fwd_check_host(&r, err, sizeof err), -EINVAL);
	make_get(&r, "a.test", 80, "a.test@b.test");
	assert_int_equal(fwd_check_host(&r, err, sizeof err), -EINVAL);
	make_get(&r, "a.test", 80, "");
	assert_int_equal(fwd_check_host(&r, err, sizeof err), -EINVAL);

	/* HTTP/1.1 needs Host; HTTP/1.0 may omit it. */
	make_get(&r, "a.test", 80, NULL);
	assert_int_equal(fwd_check_host(&r, err, sizeof err), -EINVAL);
	r.version_minor = 0;
	assert_int_equal(fwd_check_host(&r, err, sizeof err), 0);
}

static void request_is_origin_form_without_hop_by_hop(void **state)
{
	(void)state;
	struct http_request r;
	char out[FWD_HEAD_MAX];
	make_get(&r, "a.test", 80, "a.test");
	add_header(r.headers, &r.nheaders, "Accept", "*/*");
	add_header(r.headers, &r.nheaders, "Proxy-Connection", "keep-alive");
	add_header(r.headers, &r.nheaders, "Proxy-Authorization", "Basic eA==");
	add_header(r.headers, &r.nheaders, "Connection",
		   "keep-alive, X-Secret");
	add_header(r.headers, &r.nheaders, "x-secret", "do not pass");
	add_header(r.headers, &r.nheaders, "Keep-Alive", "timeout=5");
	add_header(r.headers, &r.nheaders, "TE", "trailers");
	add_header(r.headers, &r.nheaders, "Upgrade", "websocket");
	add_header(r.headers, &r.nheaders, "User-Agent", "t/1");
	long n = fwd_build_request(&r, out, sizeof out);
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, "GET /p?q=1 HTTP/1.1\r\n"
				 "Host: a.test\r\n"
				 "Accept: */*\r\n"
				 "User-Agent: t/1\r\n"
				 "Connection: close\r\n\r\n");
}

static void request_keeps_framing_fields(void **state)
{
	(void)state;
	struct http_request r;
	char out[FWD_HEAD_MAX];
	make_get(&r, "a.test", 8080, "a.test:8080");
	r.method = "POST";
	r.method_len = 4;
	r.body = HTTP_BODY_CHUNKED;
	add_header(r.headers, &r.nheaders, "Transfer-Encoding", "chunked");
	long n = fwd_build_request(&r, out, sizeof out);
	assert_true(n > 0);
	out[n] = '\0';
	assert_non_null(
	    strstr(out, "POST /p?q=1 HTTP/1.1\r\nHost: a.test:8080\r\n"));
	assert_non_null(strstr(out, "\r\nTransfer-Encoding: chunked\r\n"));

	make_get(&r, "a.test", 80, "a.test");
	r.body = HTTP_BODY_LENGTH;
	r.content_length = 3;
	add_header(r.headers, &r.nheaders, "Content-Length", "3");
	n = fwd_build_request(&r, out, sizeof out);
	assert_true(n > 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "\r\nContent-Length: 3\r\n"));
}

static void request_without_host_gets_one(void **state)
{
	(void)state;
	struct http_request r;
	char out[FWD_HEAD_MAX];
	make_get(&r, "a.test", 8080, NULL);
	r.version_minor = 0;
	long n = fwd_build_request(&r, out, sizeof out);
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, "GET /p?q=1 HTTP/1.0\r\nHost: a.test:8080\r\n"
				 "Connection: close\r\n\r\n");
}

static void request_too_large_for_buffer(void **state)
{
	(void)state;
	struct http_request r;
	char out[32];
	make_get(&r, "a.test", 80, "a.test");
	assert_int_equal(fwd_build_request(&r, out, sizeof out), -ENOSPC);
}

static void response_head_rewritten(void **state)
{
	(void)state;
	const char raw[] =
	    "HTTP/1.0 200 OK\r\nServer: x\r\nConnection: close\r\n"
	    "Content-Length: 5\r\n\r\n";
	struct http_response resp;
	memset(&resp, 0, sizeof resp);
	resp.status = 200;
	resp.body = HTTP_BODY_LENGTH;
	resp.content_length = 5;
	resp.head_len = sizeof raw - 1;
	add_header(resp.headers, &resp.nheaders, "Server", "x");
	add_header(resp.headers, &resp.nheaders, "Connection", "close");
	add_header(resp.headers, &resp.nheaders, "Content-Length", "5");
	char out[FWD_HEAD_MAX];
	long n = fwd_build_response(raw, &resp, 1, true, out, sizeof out);
	assert_true(n > 0);
	out[n] = '\0';
	/* Our version, their status; the client connection stays open. */
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nServer: x\r\n"
				 "Content-Length: 5\r\n\r\n");
	n = fwd_build_response(raw, &resp, 1, false, out, sizeof out);
	out[n] = '\0';
	assert_non_null(strstr(out, "\r\nConnection: close\r\n\r\n"));
	n = fwd_build_response(raw, &resp, 0, true, out, sizeof out);
	out[n] = '\0';
	assert_non_null(strstr(out, "\r\nConnection: keep-alive\r\n\r\n"));
}

static void response_chunked_keeps_transfer_encoding(void **state)
{
	(void)state;
	const char raw[] =
	    "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n"
	    "Keep-Alive: timeout=5\r\n\r\n";
	struct http_response resp;
	memset(&resp, 0, sizeof resp);
	resp.status = 404;
	resp.body = HTTP_BODY_CHUNKED;
	resp.head_len = sizeof raw - 1;
	add_header(resp.headers, &resp.nheaders, "Transfer-Encoding",
		   "chunked");
	add_header(resp.headers, &resp.nheaders, "Keep-Alive", "timeout=5");
	char out[FWD_HEAD_MAX];
	long n = fwd_build_response(raw, &resp, 1, true, out, sizeof out);
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 404 Not Found\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n");
}

static void connection_tokens(void **state)
{
	(void)state;
	struct http_header hs[4];
	size_t n = 0;
	add_header(hs, &n, "Connection", " close ,X-A,\tx-b ");
	assert_true(fwd_connection_lists(hs, n, "x-a", 3));
	assert_true(fwd_connection_lists(hs, n, "X-B", 3));
	assert_true(fwd_connection_lists(hs, n, "close", 5));
	assert_false(fwd_connection_lists(hs, n, "x", 1));
	assert_false(fwd_connection_lists(hs, n, "x-ab", 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(host_must_match_uri),
	    cmocka_unit_test(request_is_origin_form_without_hop_by_hop),
	    cmocka_unit_test(request_keeps_framing_fields),
	    cmocka_unit_test(request_without_host_gets_one),
	    cmocka_unit_test(request_too_large_for_buffer),
	    cmocka_unit_test(response_head_rewritten),
	    cmocka_unit_test(response_chunked_keeps_transfer_encoding),
	    cmocka_unit_test(connection_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
