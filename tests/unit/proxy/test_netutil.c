/* Unit tests for proxy/netutil.c: --listen/--dns address parsing, address
 * formatting for logs, and Host-header authority splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "netutil.h"

static void parse_ok(const char *in, bool opt, const char *want)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	char err[256] = "";
	char got[PROXY_ADDRSTR_MAX];
	int rc = proxy_parse_sockaddr(in, opt, 53, &ss, &sl, err, sizeof err);
	if (rc != 0)
		fail_msg("'%s' rejected: %s", in, err);
	proxy_format_addr((struct sockaddr *)&ss, got, sizeof got);
	assert_string_equal(got, want);
	assert_int_equal(sl, ss.ss_family == AF_INET6
				 ? sizeof(struct sockaddr_in6)
				 : sizeof(struct sockaddr_in));
}

static void parse_bad(const char *in, bool opt)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	char err[256] = "";
	assert_int_not_equal(
	    proxy_parse_sockaddr(in, opt, 53, &ss, &sl, err, sizeof err), 0);
	/* The message names the input. */
	assert_non_null(strstr(err, in));
}

static void listen_addresses_parse(void **state)
{
	(void)state;
	parse_ok("127.0.0.1:3128", false, "127.0.0.1:3128");
	parse_ok("0.0.0.0:0", false, "0.0.0.0:0");
	parse_ok("[::1]:8080", false, "[::1]:8080");
	parse_ok("[fe80::1]:65535", false, "[fe80::1]:65535");
}

static void listen_addresses_rejected(void **state)
{
	(void)state;
	parse_bad("127.0.0.1", false); /* port required */
	parse_bad("127.0.0.1:", false);
	parse_bad("127.0.0.1:65536", false);
	parse_bad("127.0.0.1:-1", false);
	parse_bad("127.0.0.1:80x", false);
	parse_bad("localhost:80", false); /* no names */
	parse_bad("[::1:80", false);
	parse_bad("[::1]80", false);
	parse_bad("1.2.3.4.5:80", false);
	parse_bad("", false);
	parse_bad("[127.0.0.1]:80", false); /* v4 in brackets */
}

static void dns_addresses_default_port(void **state)
{
	(void)state;
	parse_ok("10.0.0.53", true, "10.0.0.53:53");
	parse_ok("10.0.0.53:5353", true, "10.0.0.53:5353");
	parse_ok("::1", true, "[::1]:53");
	parse_ok("[::1]", true, "[::1]:53");
	parse_ok("[::1]:5353", true, "[::1]:5353");
}

static void formats_ip_without_port(void **state)
{
	(void)state;
	struct sockaddr_in6 a6;
	memset(&a6, 0, sizeof a6);
	a6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::5", &a6.sin6_addr);
	a6.sin6_port = htons(443);
	char buf[PROXY_ADDRSTR_MAX];
	proxy_format_ip((struct sockaddr *)&a6, buf, sizeof buf);
	assert_string_equal(buf, "2001:db8::5");
	assert_int_equal(proxy_sockaddr_port((struct sockaddr *)&a6), 443);
	struct sockaddr un = {.sa_family = AF_UNIX};
	proxy_format_ip(&un, buf, sizeof buf);
	assert_string_equal(buf, "?");
}

static void split(const char *in, int want_rc, const char *want_host,
		  uint16_t want_port)
{
	char host[64];
	uint16_t port = 0;
	int rc =
	    proxy_split_authority(in, strlen(in), host, sizeof host, &port, 80);
	assert_int_equal(rc, want_rc);
	if (want_rc == 0) {
		assert_string_equal(host, want_host);
		assert_int_equal(port, want_port);
	}
}

static void host_header_authority(void **state)
{
	(void)state;
	split("a.test", 0, "a.test", 80);
	split("a.test:8080", 0, "a.test", 8080);
	split("[::1]", 0, "::1", 80);
	split("[::1]:81", 0, "::1", 81);
	split("a.test:", -22, NULL, 0);
	split(":80", -22, NULL, 0);
	split("a.test:99999", -22, NULL, 0);
	split("a.test:80:80", -22, NULL, 0);
	split("[::1]x", -22, NULL, 0);
	split("[::1", -22, NULL, 0);
	split("", -22, NULL, 0);
	/* Longer than the caller's buffer: refused, not truncated. */
	split(
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    ".test",
	    -22, NULL, 0);
}

static void quote_escapes_every_byte_outside_printable_ascii(void **st)
{
	(void)st;
	char out[128];
	static const char hostile[] = "a\nb\x1b[2J\xe2\x80\xae\"\\z";
	proxy_quote(hostile, sizeof hostile - 1, out, sizeof out);
	assert_string_equal(out, "\"a\\x0ab\\x1b[2J\\xe2\\x80\\xae\\\"\\\\z\"");
	for (const char *p = out; *p != '\0'; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	proxy_quote("ok.test", 7, out, sizeof out);
	assert_string_equal(out, "\"ok.test\"");
	/* A NUL inside the input is a byte like any other. */
	proxy_quote("a\0b", 3, out, sizeof out);
	assert_string_equal(out, "\"a\\x00b\"");
}

static void quote_truncates_to_whole_escapes(void **st)
{
	(void)st;
	char out[12];
	proxy_quote("\x01\x02\x03\x04", 4, out, sizeof out);
	/* A second escape would leave no room for "..." and the NUL: cut
	 * after whole escapes only. */
	assert_string_equal(out, "\"\\x01...");
	assert_true(strlen(out) < sizeof out);
	proxy_quote("abcdefghijklmnop", 16, out, sizeof out);
	assert_string_equal(out, "\"abcdefg...");
	char tiny[3];
	proxy_quote("abc", 3, tiny, sizeof tiny);
	assert_string_equal(tiny, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(listen_addresses_parse),
	    cmocka_unit_test(listen_addresses_rejected),
	    cmocka_unit_test(dns_addresses_default_port),
	    cmocka_unit_test(formats_ip_without_port),
	    cmocka_unit_test(host_header_authority),
	    cmocka_unit_test(quote_escapes_every_byte_outside_printable_ascii),
	    cmocka_unit_test(quote_truncates_to_whole_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
