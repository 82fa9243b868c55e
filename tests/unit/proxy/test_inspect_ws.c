/* WebSocket upgrades in inspected tunnels (proxy/inspect_ws.c): which
 * request heads are a WebSocket handshake, which are another upgrade
 * (refused whatever the policy says), and which 101s answer one. Heads
 * go through the real parser first, as in the proxy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http_parse.h"
#include "inspect_ws.h"

static enum inspect_ws_ask ask(const char *head, char *msg, size_t msglen)
{
	static struct http_request q;
	char err[256] = "";
	enum http_parse_result r =
	    http_parse_request(head, strlen(head), &q, err, sizeof err);
	if (r != HTTP_OK)
		fprintf(stderr, "parse: %s\n", err);
	assert_int_equal(r, HTTP_OK);
	msg[0] = '\0';
	return inspect_ws_asked(&q, msg, msglen);
}

#define HS(method, ver, extra)                                                 \
	method " /ws HTTP/" ver "\r\nHost: a.test\r\n" extra "\r\n"

static void websocket_handshakes(void **state)
{
	(void)state;
	char msg[200];
	assert_int_equal(ask(HS("GET", "1.1", ""), msg, sizeof msg),
			 INSPECT_WS_NONE);
	/* Connection: upgrade alone asks for nothing the upstream could do. */
	assert_int_equal(
	    ask(HS("GET", "1.1", "Connection: upgrade\r\n"), msg, sizeof msg),
	    INSPECT_WS_NONE);
	static const char *const ok[] = {
	    HS("GET", "1.1", "Upgrade: websocket\r\nConnection: Upgrade\r\n"),
	    HS("GET", "1.1",
	       "Upgrade: WebSocket\r\nConnection: keep-alive, "
	       "upgrade\r\n"),
	    HS("GET", "1.1",
	       "Connection: keep-alive\r\nConnection: "
	       "Upgrade\r\nUpgrade:   websocket  \r\n"),
	    HS("GET", "1.1",
	       "Upgrade: websocket\r\nConnection: ,UPGRADE ,\r\n"),
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_int_equal(ask(ok[i], msg, sizeof msg),
				 INSPECT_WS_WEBSOCKET);
}

struct other {
	const char *head;
	const char *why; /* a piece of the message */
};

static void other_upgrades_refused(void **state)
{
	(void)state;
	static const struct other cases[] = {
	    {HS("GET", "1.1",
		"Upgrade: h2c\r\nConnection: Upgrade, "
		"HTTP2-Settings\r\nHTTP2-Settings: AAMA\r\n"),
	     "Upgrade: \"h2c\" is not relayed"},
	    {HS("GET", "1.1",
		"Upgrade: websocket, h2c\r\nConnection: "
		"Upgrade\r\n"),
	     "is not relayed"},
	    {HS("GET", "1.1", "Upgrade: websockets\r\nConnection: Upgrade\r\n"),
	     "is not relayed"},
	    {HS("GET", "1.1",
		"Upgrade: websocket/13\r\nConnection: Upgrade\r\n"),
	     "is not relayed"},
	    {HS("GET", "1.1",
		"Upgrade: websocket\r\nUpgrade: h2c\r\n"
		"Connection: Upgrade\r\n"),
	     "more than one Upgrade"},
	    {HS("GET", "1.1", "Upgrade: websocket\r\nConnection: upgraded\r\n"),
	     "without Connection: upgrade"},
	    {HS("GET", "1.1", "Upgrade: websocket\r\n"),
	     "without Connection: upgrade"},
	    {HS("POST", "1.1", "Upgrade: websocket\r\nConnection: Upgrade\r\n"),
	     "is a GET"},
	    {HS("GET", "1.0", "Upgrade: websocket\r\nConnection: Upgrade\r\n"),
	     "is HTTP/1.1"},
	    {HS("GET", "1.1",
		"Upgrade: websocket\r\nConnection: Upgrade\r\n"
		"Content-Length: 3\r\n"),
	     "has no body"},
	    {HS("GET", "1.1",
		"Upgrade: web\xe2\x80\xaesocket\r\nConnection: "
		"Upgrade\r\n"),
	     "web\\xe2\\x80\\xaesocket"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char msg[200];
		assert_int_equal(ask(cases[i].head, msg, sizeof msg),
				 INSPECT_WS_OTHER);
		if (strstr(msg, cases[i].why) == NULL)
			fprintf(stderr, "case %zu: %s\n", i, msg);
		assert_non_null(strstr(msg, cases[i].why));
	}
}

static bool ok101(const char *head)
{
	static struct http_response r;
	char err[256] = "";
	assert_int_equal(
	    http_parse_response(head, strlen(head), false, &r, err, sizeof err),
	    HTTP_OK);
	assert_int_equal(r.status, 101);
	return inspect_ws_101_ok(&r);
}

static void switching_responses(void **state)
{
	(void)state;
	assert_true(ok101("HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
			  "websocket\r\nConnection: Upgrade\r\n\r\n"));
	assert_true(ok101("HTTP/1.1 101 x\r\nupgrade: WEBSOCKET\r\n\r\n"));
	assert_false(ok101("HTTP/1.1 101 x\r\nUpgrade: h2c\r\n\r\n"));
	assert_false(ok101("HTTP/1.1 101 x\r\nConnection: Upgrade\r\n\r\n"));
	assert_false(ok101("HTTP/1.1 101 x\r\nUpgrade: websocket\r\n"
			   "Upgrade: h2c\r\n\r\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(websocket_handshakes),
	    cmocka_unit_test(other_upgrades_refused),
	    cmocka_unit_test(switching_responses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
