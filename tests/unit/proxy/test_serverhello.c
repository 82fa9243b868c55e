/* Unit tests for proxy/serverhello.c (is the server's first record a
 * HelloRetryRequest?) and clienthello_span (how many bytes the checked
 * first ClientHello occupies). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "clienthello.h"
#include "serverhello.h"

static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c,
    0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb,
    0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

/* A ServerHello handshake message of 4 + 84 bytes (the size OpenSSL's
 * HelloRetryRequest had), random as given. */
static size_t server_hello_msg(uint8_t *m, const uint8_t random[32])
{
	memset(m, 0, 88);
	m[0] = 0x02;
	m[3] = 84;
	m[4] = 0x03;
	m[5] = 0x03;
	memcpy(m + 6, random, 32);
	return 88;
}

/* The message framed into records of `each` payload bytes. */
static size_t frame(uint8_t *out, const uint8_t *m, size_t mlen, size_t each)
{
	size_t n = 0;
	for (size_t off = 0; off < mlen; off += each) {
		size_t k = mlen - off < each ? mlen - off : each;
		out[n++] = 0x16;
		out[n++] = 0x03;
		out[n++] = 0x03;
		out[n++] = (uint8_t)(k >> 8);
		out[n++] = (uint8_t)k;
		memcpy(out + n, m + off, k);
		n += k;
	}
	return n;
}

static enum serverhello_result parse(const uint8_t *b, size_t n, bool *hrr)
{
	*hrr = true; /* must be overwritten */
	return serverhello_parse(b, n, hrr);
}

static void hello_retry_request_recognised_whole_and_byte_by_byte(void **st)
{
	(void)st;
	uint8_t m[88], w[512];
	bool hrr;
	size_t n = frame(w, m, server_hello_msg(m, hrr_random), 16384);
	assert_int_equal(parse(w, n, &hrr), SH_SERVER_HELLO);
	assert_true(hrr);
	/* 5 + 38 bytes decide; every shorter prefix asks for more. */
	for (size_t i = 0; i < 43; i++) {
		assert_int_equal(parse(w, i, &hrr), SH_NEED_MORE);
		assert_false(hrr);
	}
	assert_int_equal(parse(w, 43, &hrr), SH_SERVER_HELLO);
	assert_true(hrr);
}

static void ordinary_server_hello_is_no_retry(void **st)
{
	(void)st;
	uint8_t m[88], w[512], r[32];
	bool hrr;
	/* Each random one bit off the HelloRetryRequest value. */
	for (size_t i = 0; i < 32; i++) {
		memcpy(r, hrr_random, 32);
		r[i] ^= 0x01;
		size_t n = frame(w, m, server_hello_msg(m, r), 16384);
		assert_int_equal(parse(w, n, &hrr), SH_SERVER_HELLO);
		assert_false(hrr);
	}
}

static void retry_split_across_one_byte_records_recognised(void **st)
{
	(void)st;
	uint8_t m[88], w[1024];
	bool hrr;
	size_t n = frame(w, m, server_hello_msg(m, hrr_random), 1);
	assert_int_equal(parse(w, n, &hrr), SH_SERVER_HELLO);
	assert_true(hrr);
	/* The verdict comes within the bound even at one byte a record. */
	assert_true(38 * 6 <= SERVERHELLO_MAX_BYTES);
	assert_int_equal(parse(w, 38 * 6, &hrr), SH_SERVER_HELLO);
	assert_true(hrr);
	assert_int_equal(parse(w, 38 * 6 - 1, &hrr), SH_NEED_MORE);
	n = frame(w, m, server_hello_msg(m, hrr_random), 7);
	assert_int_equal(parse(w, n, &hrr), SH_SERVER_HELLO);
	assert_true(hrr);
}

static void anything_but_a_server_hello_is_other(void **st)
{
	(void)st;
	bool hrr;
	static const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00,
					0x02, 0x02, 0x28};
	static const uint8_t http[] = "HTTP/1.1 400 Bad Request\r\n";
	static const uint8_t v2[] = {0x16, 0x02, 0x00};
	static const uint8_t empty_rec[] = {0x16, 0x03, 0x03, 0x00, 0x00};
	static const uint8_t huge_rec[] = {0x16, 0x03, 0x03, 0x40, 0x01, 0x02};
	static const uint8_t cert[] = {0x16, 0x03, 0x03, 0x00, 0x04,
				       0x0b, 0x00, 0x00, 0x00};
	/* A ServerHello whose length cannot hold a random. */
	static const uint8_t short_sh[] = {0x16, 0x03, 0x03, 0x00, 0x04,
					   0x02, 0x00, 0x00, 0x21};
	assert_int_equal(parse(alert, sizeof alert, &hrr), SH_OTHER);
	assert_false(hrr);
	assert_int_equal(parse(alert, 1, &hrr), SH_OTHER);
	assert_int_equal(parse(http, sizeof http - 1, &hrr), SH_OTHER);
	assert_int_equal(parse(v2, sizeof v2, &hrr), SH_OTHER);
	assert_int_equal(parse(empty_rec, sizeof empty_rec, &hrr), SH_OTHER);
	assert_int_equal(parse(huge_rec, sizeof huge_rec, &hrr), SH_OTHER);
	assert_int_equal(parse(cert, sizeof cert, &hrr), SH_OTHER);
	assert_int_equal(parse(cert, 6, &hrr), SH_OTHER);
	assert_int_equal(parse(short_sh, sizeof short_sh, &hrr), SH_OTHER);
	assert_int_equal(parse(alert, 0, &hrr), SH_NEED_MORE);
}

static void second_record_of_another_type_is_other(void **st)
{
	(void)st;
	uint8_t m[88], w[512];
	bool hrr;
	server_hello_msg(m, hrr_random);
	size_t n = frame(w, m, 10, 10); /* the first 10 bytes only */
	w[n] = 0x15; /* then an alert record where the rest should be */
	memcpy(w + n + 1, "\x03\x03\x00\x02\x02\x28", 6);
	assert_int_equal(parse(w, n + 7, &hrr), SH_OTHER);
	assert_false(hrr);
}

static void clienthello_span_is_the_first_message_only(void **st)
{
	(void)st;
	uint8_t m[300], w[1024];
	size_t span = 0;
	memset(m, 0xab, sizeof m);
	m[0] = 0x01;
	m[1] = 0;
	m[2] = 0x01;
	m[3] = 0x28; /* 296 bytes follow: the message is 300 */
	size_t n = frame(w, m, sizeof m, 100);
	/* After it, a second hello the server has not asked for yet. */
	size_t n2 = n + frame(w + n, m, sizeof m, 300);
	assert_int_equal(clienthello_span(w, n2, &span), 0);
	assert_int_equal(span, n);
	assert_int_equal(clienthello_span(w, n, &span), 0);
	assert_int_equal(span, n);
	assert_int_equal(clienthello_span(w, n - 1, &span), -1);
	assert_int_equal(clienthello_span(w, 0, &span), -1);
	w[0] = 0x17;
	assert_int_equal(clienthello_span(w, n, &span), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		hello_retry_request_recognised_whole_and_byte_by_byte),
	    cmocka_unit_test(ordinary_server_hello_is_no_retry),
	    cmocka_unit_test(retry_split_across_one_byte_records_recognised),
	    cmocka_unit_test(anything_but_a_server_hello_is_other),
	    cmocka_unit_test(second_record_of_another_type_is_other),
	    cmocka_unit_test(clienthello_span_is_the_first_message_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
