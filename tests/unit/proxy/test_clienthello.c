/* Unit tests for proxy/clienthello.c: real ClientHellos made by OpenSSL, fed
 * whole, a byte at a time and re-framed into many TLS records, plus
 * hand-built hellos for every structural refusal (two names, oversize, not
 * TLS, SSLv2, wrong record type, empty records). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "clienthello.h"

#define BIG 131072

static uint8_t hs[BIG];	 /* one handshake message: type, len24, body */
static uint8_t out[BIG]; /* the same message framed into TLS records */

/* ---- byte writers ---- */

struct w {
	uint8_t *p;
	size_t n;
};

static void put8(struct w *w, unsigned v)
{
	w->p[w->n++] = (uint8_t)v;
}

static void put16(struct w *w, unsigned v)
{
	put8(w, (v >> 8) & 0xff);
	put8(w, v & 0xff);
}

static void put24(struct w *w, size_t v)
{
	put8(w, (unsigned)(v >> 16) & 0xff);
	put16(w, (unsigned)v & 0xffff);
}

static void putb(struct w *w, const void *b, size_t n)
{
	memcpy(w->p + w->n, b, n);
	w->n += n;
}

/* ---- real hellos ---- */

/* The first flight of an OpenSSL client (TLS 1.2/1.3 ClientHello), with the
 * given SNI (NULL: none); returns its length in bytes. */
static size_t openssl_hello(const char *sni, uint8_t *buf, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	SSL *ssl = SSL_new(ctx);
	assert_non_null(ssl);
	BIO *rb = BIO_new(BIO_s_mem());
	BIO *wb = BIO_new(BIO_s_mem());
	assert_non_null(rb);
	assert_non_null(wb);
	SSL_set_bio(ssl, rb, wb);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(ssl, sni), 1);
	assert_true(SSL_connect(ssl) <= 0);
	assert_int_equal(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
	int n = BIO_read(wb, buf, (int)cap);
	assert_true(n > 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (size_t)n;
}

/* The handshake bytes carried by the records in rec (concatenated). */
static size_t unframe(const uint8_t *rec, size_t len, uint8_t *dst)
{
	size_t off = 0, n = 0;
	while (off + 5 <= len) {
		size_t rlen = ((size_t)rec[off + 3] << 8) | rec[off + 4];
		assert_true(off + 5 + rlen <= len);
		memcpy(dst + n, rec + off + 5, rlen);
		n += rlen;
		off += 5 + rlen;
	}
	assert_int_equal(off, len);
	return n;
}

/* Frames a handshake message into records carrying at most `each` bytes;
 * sizes cycle through `each`, 1, 2, ... when vary is set. */
static size_t frame(const uint8_t *msg, size_t len, size_t each, int vary,
		    uint8_t *dst)
{
	struct w w = {dst, 0};
	size_t off = 0, k = 0;
	while (off < len) {
		size_t n = vary ? 1 + (k++ % each) : each;
		if (n > len - off)
			n = len - off;
		put8(&w, 0x16);
		put16(&w, 0x0301);
		put16(&w, (unsigned)n);
		putb(&w, msg + off, n);
		off += n;
	}
	return w.n;
}

static enum clienthello_result parse(const uint8_t *b, size_t n, char *sni)
{
	return clienthello_parse(b, n, sni, 256);
}

/* Every proper prefix is need_more and the whole is ok with `want`. */
static void expect_prefixes_then_ok(const uint8_t *b, size_t n,
				    const char *want)
{
	char sni[256];
	for (size_t i = 0; i < n; i++)
		assert_int_equal(parse(b, i, sni), CH_NEED_MORE);
	assert_int_equal(parse(b, n, sni), CH_OK);
	assert_string_equal(sni, want);
}

/* ---- hand-built hellos ---- */

/* A ClientHello handshake message with the given extensions block (NULL:
 * no extensions field at all). */
static size_t build_hello(const uint8_t *exts, size_t extlen, int with_exts,
			  uint8_t *dst)
{
	struct w w = {dst, 0};
	uint8_t random[32];
	memset(random, 0xab, sizeof random);
	put8(&w, 0x01);
	size_t lenat = w.n;
	put24(&w, 0);
	put16(&w, 0x0303);
	putb(&w, random, sizeof random);
	put8(&w, 32); /* session id */
	putb(&w, random, 32);
	put16(&w, 4); /* two suites */
	put16(&w, 0x1301);
	put16(&w, 0xc02f);
	put8(&w, 1); /* null compression */
	put8(&w, 0);
	if (with_exts) {
		put16(&w, (unsigned)extlen);
		putb(&w, exts, extlen);
	}
	size_t body = w.n - 4;
	dst[lenat] = (uint8_t)(body >> 16);
	dst[lenat + 1] = (uint8_t)(body >> 8);
	dst[lenat + 2] = (uint8_t)body;
	return w.n;
}

/* Appends a server_name extension holding the given (type, name) entries. */
static void put_sni_ext(struct w *w, size_t count, const unsigned *types,
			const char **names, const size_t *lens)
{
	size_t list = 0;
	for (size_t i = 0; i < count; i++)
		list += 3 + lens[i];
	put16(w, 0x0000);
	put16(w, (unsigned)(list + 2));
	put16(w, (unsigned)list);
	for (size_t i = 0; i < count; i++) {
		put8(w, types[i]);
		put16(w, (unsigned)lens[i]);
		putb(w, names[i], lens[i]);
	}
}

static void put_other_ext(struct w *w, unsigned type, size_t len)
{
	put16(w, type);
	put16(w, (unsigned)len);
	for (size_t i = 0; i < len; i++)
		put8(w, 0);
}

/* One record around a hand-built hello with a single SNI entry. */
static size_t one_name(const char *name, size_t nlen, uint8_t *dst)
{
	uint8_t e[1024];
	struct w w = {e, 0};
	unsigned t = 0;
	put_other_ext(&w, 0x000a, 4);
	put_sni_ext(&w, 1, &t, &name, &nlen);
	size_t n = build_hello(e, w.n, 1, hs);
	return frame(hs, n, 16384, 0, dst);
}

/* ---- tests ---- */

static void real_hello_whole_yields_sni(void **state)
{
	(void)state;
	char sni[256];
	size_t n = openssl_hello("example.com", out, sizeof out);
	assert_int_equal(parse(out, n, sni), CH_OK);
	assert_string_equal(sni, "example.com");
	/* Bytes after the hello (0-RTT data, say) are not the parser's. */
	static const uint8_t appdata[] = {0x17, 0x03, 0x03, 0x00, 0x02, 1, 2};
	memcpy(out + n, appdata, sizeof appdata);
	assert_int_equal(parse(out, n + sizeof appdata, sni), CH_OK);
	assert_string_equal(sni, "example.com");
}

static void real_hello_one_byte_at_a_time(void **state)
{
	(void)state;
	size_t n = openssl_hello("api.example.org", out, sizeof out);
	expect_prefixes_then_ok(out, n, "api.example.org");
}

static void real_hello_split_across_records(void **state)
{
	(void)state;
	static uint8_t rec[BIG];
	size_t n = openssl_hello("split.example", rec, sizeof rec);
	size_t hl = unframe(rec, n, hs);
	static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 64, 100, 255};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t fl = frame(hs, hl, sizes[i], 0, out);
		assert_true(fl > hl);
		expect_prefixes_then_ok(out, fl, "split.example");
		fl = frame(hs, hl, sizes[i] + 3, 1, out);
		expect_prefixes_then_ok(out, fl, "split.example");
	}
}

static void real_hello_without_sni(void **state)
{
	(void)state;
	char sni[256];
	size_t n = openssl_hello(NULL, out, sizeof out);
	assert_int_equal(parse(out, n, sni), CH_NO_SNI);
	assert_string_equal(sni, "");
	/* A hello without any extensions block at all. */
	n = build_hello(NULL, 0, 0, hs);
	n = frame(hs, n, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_NO_SNI);
	/* Extensions, but none of them server_name. */
	uint8_t e[64];
	struct w w = {e, 0};
	put_other_ext(&w, 0x002b, 3);
	put_other_ext(&w, 0x0015, 0);
	n = build_hello(e, w.n, 1, hs);
	n = frame(hs, n, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_NO_SNI);
}

static void sni_name_copied_raw_for_the_caller_to_validate(void **state)
{
	(void)state;
	char sni[256];
	/* Not a valid DNS name, but no NUL: passed on exactly as sent, the
	 * caller normalises it (and refuses it) with policy_host_normalize. */
	size_t n = one_name("bad name!..TEST", 15, out);
	assert_int_equal(parse(out, n, sni), CH_OK);
	assert_string_equal(sni, "bad name!..TEST");
	/* OpenSSL sends what it is given, too. */
	n = openssl_hello("UPPER.Example.COM", out, sizeof out);
	assert_int_equal(parse(out, n, sni), CH_OK);
	assert_string_equal(sni, "UPPER.Example.COM");
	/* The longest name that fits: 255 bytes in a 256-byte buffer. */
	char longname[300];
	memset(longname, 'a', sizeof longname);
	n = one_name(longname, 255, out);
	assert_int_equal(parse(out, n, sni), CH_OK);
	assert_int_equal(strlen(sni), 255);
}

static void sni_name_refused_when_unusable(void **state)
{
	(void)state;
	char sni[256];
	char small[8];
	size_t n = one_name("a\0b.test", 8, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	n = one_name("", 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	/* Does not fit the caller's buffer (with its NUL). */
	n = one_name("example.com", 11, out);
	assert_int_equal(clienthello_parse(out, n, small, sizeof small),
			 CH_MALFORMED);
	n = one_name("1234567", 7, out);
	assert_int_equal(clienthello_parse(out, n, small, sizeof small), CH_OK);
	assert_string_equal(small, "1234567");
	char longname[300];
	memset(longname, 'a', sizeof longname);
	n = one_name(longname, 256, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	/* RFC 6066 3: the name is sent without a trailing dot. The CONNECT
	 * host may carry one (it is normalised away); the SNI may not, or
	 * "a.test." and "a.test" would be two spellings the upstream may
	 * route differently. */
	n = one_name("trail.test.", 11, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	n = one_name(".", 1, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	n = openssl_hello("UPPER.Example.COM.", out, sizeof out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	/* A dot elsewhere is the caller's to judge. */
	n = one_name(".lead.test", 10, out);
	assert_int_equal(parse(out, n, sni), CH_OK);
	assert_string_equal(sni, ".lead.test");
}

static void two_sni_names_refused(void **state)
{
	(void)state;
	char sni[256];
	uint8_t e[256];
	struct w w = {e, 0};
	unsigned t2[] = {0, 0};
	const char *names[] = {"a.test", "b.test"};
	size_t lens[] = {6, 6};
	put_sni_ext(&w, 2, t2, names, lens);
	size_t n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);

	/* Two server_name extensions with one name each. */
	w.n = 0;
	put_sni_ext(&w, 1, t2, names, lens);
	put_sni_ext(&w, 1, t2, names + 1, lens + 1);
	n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);

	/* The list is exactly one host_name entry (RFC 6066 3, as OpenSSL
	 * enforces it): an entry of another type, before or after the host
	 * name, would let a server that reads the list differently pick
	 * another name. */
	w.n = 0;
	unsigned tmix[] = {7, 0};
	put_sni_ext(&w, 2, tmix, names, lens);
	n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	w.n = 0;
	unsigned tafter[] = {0, 1};
	put_sni_ext(&w, 2, tafter, names, lens);
	n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	/* ... and a list of one entry of another type names no host: not a
	 * server_name extension anyone should send. */
	w.n = 0;
	put_sni_ext(&w, 1, tmix, names, lens);
	n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	/* An entry followed by a stray byte inside the list. */
	w.n = 0;
	put16(&w, 0x0000);
	put16(&w, 2 + 3 + 6 + 1);
	put16(&w, 3 + 6 + 1);
	put8(&w, 0);
	put16(&w, 6);
	putb(&w, "a.test", 6);
	put8(&w, 0);
	n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
}

static void inconsistent_lengths_are_malformed(void **state)
{
	(void)state;
	char sni[256];
	size_t hl = build_hello(NULL, 0, 0, hs);
	/* Offsets into hs: 4 type+len, 2 version, 32 random, 1+32 session
	 * id, 2+4 suites, 1+1 compression. */
	const size_t sid_at = 4 + 2 + 32, suites_at = sid_at + 33;
	const size_t comp_at = suites_at + 6;
	uint8_t save;
	size_t n;

	save = hs[4];
	hs[4] = 0x02; /* legacy_version 0x0203 */
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	hs[4] = save;

	hs[sid_at] = 33;
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	hs[sid_at] = 32;

	hs[suites_at + 1] = 3; /* odd suites length */
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	hs[suites_at + 1] = 0; /* none */
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	hs[suites_at + 1] = 4;

	hs[comp_at] = 0; /* no compression methods */
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	hs[comp_at] = 1;

	/* The extensions length disagrees with what follows. */
	uint8_t e[64];
	struct w w = {e, 0};
	put_other_ext(&w, 0x000a, 4);
	hl = build_hello(e, w.n, 1, hs);
	save = hs[comp_at + 3];
	hs[comp_at + 3] = (uint8_t)(save + 1);
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	hs[comp_at + 3] = (uint8_t)(save - 1);
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	hs[comp_at + 3] = save;
	/* An extension longer than the block. */
	hs[comp_at + 7] = 5;
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
}

static void truncated_hello(void **state)
{
	(void)state;
	char sni[256];
	size_t n = openssl_hello("trunc.example", out, sizeof out);
	/* Cut short on the wire: still waiting for the rest. */
	assert_int_equal(parse(out, n - 1, sni), CH_NEED_MORE);
	assert_int_equal(parse(out, 5, sni), CH_NEED_MORE);
	assert_int_equal(parse(out, 4, sni), CH_NEED_MORE);

	/* Cut short inside the message: handshake and record lengths agree
	 * with each other but end in the middle of the extensions. */
	size_t hl = unframe(out, n, hs);
	for (size_t cut = 1; cut < 60; cut += 7) {
		size_t body = hl - 4 - cut;
		hs[1] = (uint8_t)(body >> 16);
		hs[2] = (uint8_t)(body >> 8);
		hs[3] = (uint8_t)body;
		size_t fl = frame(hs, hl - cut, 16384, 0, out);
		assert_int_equal(parse(out, fl, sni), CH_MALFORMED);
	}
}

static void trailing_handshake_bytes_refused(void **state)
{
	(void)state;
	char sni[256];
	size_t n = openssl_hello("x.example", out, sizeof out);
	size_t hl = unframe(out, n, hs);
	/* A second handshake message in the hello's last record. */
	hs[hl] = 0x01;
	hs[hl + 1] = 0;
	size_t fl = frame(hs, hl + 2, 16384, 0, out);
	assert_int_equal(parse(out, fl, sni), CH_MALFORMED);
	/* Split so that no record boundary falls where the hello ends. */
	fl = frame(hs, hl + 2, hl - 1, 0, out);
	assert_int_equal(parse(out, fl, sni), CH_MALFORMED);
}

static void oversize_hello_is_too_large(void **state)
{
	(void)state;
	char sni[256];
	/* A 20000-byte padding extension: the handshake length alone tells. */
	static uint8_t e[20100];
	struct w w = {e, 0};
	const char *name = "big.test";
	size_t nl = 8;
	unsigned t = 0;
	put_sni_ext(&w, 1, &t, &name, &nl);
	put_other_ext(&w, 0x0015, 20000);
	size_t hl = build_hello(e, w.n, 1, hs);
	size_t n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, 9, sni), CH_TOO_LARGE);
	assert_int_equal(parse(out, n, sni), CH_TOO_LARGE);
	/* In 1-byte records: refused once the 4 header bytes are in. */
	(void)frame(hs, hl, 1, 0, out);
	assert_int_equal(parse(out, 18, sni), CH_NEED_MORE);
	assert_int_equal(parse(out, 24, sni), CH_TOO_LARGE);

	/* The largest handshake accepted: 16384 bytes, type and length
	 * included. */
	w.n = 0;
	put_sni_ext(&w, 1, &t, &name, &nl);
	size_t base = build_hello(e, w.n, 1, hs) + 4;
	put_other_ext(&w, 0x0015, 16384 - base);
	hl = build_hello(e, w.n, 1, hs);
	assert_int_equal(hl, 16384);
	n = frame(hs, hl, 16000, 0, out);
	assert_int_equal(parse(out, n, sni), CH_OK);
	assert_string_equal(sni, "big.test");
	/* One byte more is refused. */
	w.n = 0;
	put_sni_ext(&w, 1, &t, &name, &nl);
	put_other_ext(&w, 0x0015, 16384 - base + 1);
	hl = build_hello(e, w.n, 1, hs);
	n = frame(hs, hl, 16000, 0, out);
	assert_int_equal(parse(out, n, sni), CH_TOO_LARGE);

	/* A record over the TLS plaintext limit. */
	static const uint8_t huge[] = {0x16, 0x03, 0x01, 0x40, 0x01, 0x01};
	assert_int_equal(parse(huge, sizeof huge, sni), CH_MALFORMED);
}

static void buffering_is_bounded(void **state)
{
	(void)state;
	char sni[256];
	/* 1-byte records carry 6 wire bytes per handshake byte: a hello
	 * that would complete only after more than CLIENTHELLO_MAX_BYTES on
	 * the wire is refused once that much is buffered, not waited for. */
	static uint8_t e[8000];
	struct w w = {e, 0};
	const char *name = "slow.test";
	size_t nl = 9;
	unsigned t = 0;
	put_other_ext(&w, 0x0015, 4000);
	put_sni_ext(&w, 1, &t, &name, &nl);
	size_t hl = build_hello(e, w.n, 1, hs);
	size_t n = frame(hs, hl, 1, 0, out);
	assert_true(n > CLIENTHELLO_MAX_BYTES + 7);
	for (size_t i = 1; i <= CLIENTHELLO_MAX_BYTES; i += 97)
		assert_int_equal(parse(out, i, sni), CH_NEED_MORE);
	for (size_t i = CLIENTHELLO_MAX_BYTES + 1;
	     i <= CLIENTHELLO_MAX_BYTES + 7; i++)
		assert_int_equal(parse(out, i, sni), CH_TOO_LARGE);
	/* The same hello in one record is fine. */
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_OK);
	assert_string_equal(sni, "slow.test");
}

static void non_tls_bytes(void **state)
{
	(void)state;
	char sni[256];
	static const char *const texts[] = {
	    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	    "CONNECT a:443 HTTP/1.1\r\n",
	    "SSH-2.0-OpenSSH_9.2\r\n",
	    "\x16",
	};
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(
		    parse((const uint8_t *)texts[i], strlen(texts[i]), sni),
		    CH_NOT_TLS);
	assert_int_equal(parse((const uint8_t *)"G", 1, sni), CH_NOT_TLS);
	/* A lone handshake type byte could still be TLS. */
	assert_int_equal(parse((const uint8_t *)texts[3], 1, sni),
			 CH_NEED_MORE);
	/* Handshake type but not TLS 3.x record version. */
	static const uint8_t v2[] = {0x16, 0x02, 0x00, 0x00, 0x05};
	assert_int_equal(parse(v2, 2, sni), CH_NOT_TLS);
	assert_int_equal(parse(v2, sizeof v2, sni), CH_NOT_TLS);
}

static void sslv2_hello_is_not_tls(void **state)
{
	(void)state;
	char sni[256];
	/* SSLv2-compatible CLIENT-HELLO: 2-byte length with the high bit,
	 * msg type 1, version 3.1, then spec/session/challenge lengths. */
	static const uint8_t v2[] = {
	    0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00,
	    0x10, 0x00, 0x00, 0x04, 0x01, 0x00, 0x80, 0x03, 0x00, 0x80,
	    0x07, 0x00, 0xc0, 0x06, 0x00, 0x40, 0x02, 0x00, 0x80, 0x00,
	    0x00, 0x0a, 0x00, 0x00, 0x05, 0x11, 0x22, 0x33, 0x44, 0x55,
	    0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
	assert_int_equal(parse(v2, sizeof v2, sni), CH_NOT_TLS);
	assert_int_equal(parse(v2, 1, sni), CH_NOT_TLS);
}

static void wrong_record_or_message_type(void **state)
{
	(void)state;
	char sni[256];
	size_t n = openssl_hello("t.example", out, sizeof out);
	size_t hl = unframe(out, n, hs);

	/* First record application_data / alert / change_cipher_spec. */
	static const uint8_t types[] = {0x17, 0x15, 0x14, 0x18};
	for (size_t i = 0; i < sizeof types; i++) {
		n = frame(hs, hl, 16384, 0, out);
		out[0] = types[i];
		assert_int_equal(parse(out, n, sni), CH_NOT_TLS);
	}
	/* A later record of the wrong type or version inside the hello. */
	n = frame(hs, hl, 40, 0, out);
	out[45] = 0x17;
	assert_int_equal(parse(out, 44, sni), CH_NEED_MORE);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	n = frame(hs, hl, 40, 0, out);
	out[46] = 0x02;
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);

	/* A handshake message other than ClientHello, e.g. ServerHello:
	 * refused from its first byte, even before the record is whole. */
	hs[0] = 0x02;
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, 6, sni), CH_MALFORMED);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	(void)frame(hs, hl, 1, 0, out);
	assert_int_equal(parse(out, 6, sni), CH_NEED_MORE);
	assert_int_equal(parse(out, 30, sni), CH_MALFORMED);
}

static void empty_record_is_malformed(void **state)
{
	(void)state;
	char sni[256];
	static const uint8_t empty[] = {0x16, 0x03, 0x01, 0x00, 0x00};
	assert_int_equal(parse(empty, sizeof empty, sni), CH_MALFORMED);
	/* An empty record between two fragments of the hello. */
	size_t n = openssl_hello("z.example", out, sizeof out);
	size_t hl = unframe(out, n, hs);
	n = frame(hs, 100, 100, 0, out);
	memcpy(out + n, empty, sizeof empty);
	n += sizeof empty;
	n += frame(hs + 100, hl - 100, 16384, 0, out + n);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
}

static void ech_and_draft_esni_refused(void **state)
{
	(void)state;
	char sni[256];
	uint8_t e[256];
	struct w w = {e, 0};
	const char *name = "public.test";
	size_t nl = 11;
	unsigned t = 0;
	/* encrypted_client_hello (RFC 9849 / draft-13+, 0xfe0d) beside an
	 * outer SNI: the name the client really reaches is inside the
	 * encrypted part, so the hello is refused; the outer name is still
	 * handed back for the record. */
	put_sni_ext(&w, 1, &t, &name, &nl);
	put_other_ext(&w, 0xfe0d, 40);
	size_t n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_ECH);
	assert_string_equal(sni, "public.test");
	/* Before the SNI, and without any SNI at all: still ech, not
	 * no_sni. */
	w.n = 0;
	put_other_ext(&w, 0xfe0d, 40);
	put_sni_ext(&w, 1, &t, &name, &nl);
	n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_ECH);
	w.n = 0;
	put_other_ext(&w, 0xfe0d, 0);
	n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_ECH);
	assert_string_equal(sni, "");
	/* Draft ESNI (0xffce) and the earlier ECH draft code points. */
	static const unsigned drafts[] = {0xffce, 0xfe08, 0xfe09,
					  0xfe0a, 0xfe0b, 0xfe0c};
	for (size_t i = 0; i < sizeof drafts / sizeof drafts[0]; i++) {
		w.n = 0;
		put_sni_ext(&w, 1, &t, &name, &nl);
		put_other_ext(&w, drafts[i], 12);
		n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
		assert_int_equal(parse(out, n, sni), CH_ECH);
	}
	/* Neighbouring code points are ordinary unknown extensions. */
	static const unsigned others[] = {0xfe07, 0xfe0e, 0xffcd, 0xffcf,
					  0xfd00};
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		w.n = 0;
		put_sni_ext(&w, 1, &t, &name, &nl);
		put_other_ext(&w, others[i], 12);
		n = frame(hs, build_hello(e, w.n, 1, hs), 16384, 0, out);
		assert_int_equal(parse(out, n, sni), CH_OK);
	}
	/* A malformed hello is malformed first, whatever it offers. */
	w.n = 0;
	put_other_ext(&w, 0xfe0d, 4);
	size_t hl = build_hello(e, w.n, 1, hs);
	hs[hl - 5] = 9; /* the ECH extension claims more than there is */
	n = frame(hs, hl, 16384, 0, out);
	assert_int_equal(parse(out, n, sni), CH_MALFORMED);
	/* Fragmented across records, a byte at a time: need_more until the
	 * whole hello is in, then ech. */
	w.n = 0;
	put_sni_ext(&w, 1, &t, &name, &nl);
	put_other_ext(&w, 0xfe0d, 40);
	hl = build_hello(e, w.n, 1, hs);
	n = frame(hs, hl, 7, 1, out);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(parse(out, i, sni), CH_NEED_MORE);
	assert_int_equal(parse(out, n, sni), CH_ECH);
}

static void result_strings_and_empty_input(void **state)
{
	(void)state;
	char sni[4] = "xyz";
	assert_int_equal(clienthello_parse(NULL, 0, sni, sizeof sni),
			 CH_NEED_MORE);
	assert_string_equal(sni, "");
	assert_string_equal(clienthello_result_str(CH_OK), "ok");
	assert_string_equal(clienthello_result_str(CH_NEED_MORE), "need_more");
	assert_string_equal(clienthello_result_str(CH_NOT_TLS), "not_tls");
	assert_string_equal(clienthello_result_str(CH_NO_SNI), "no_sni");
	assert_string_equal(clienthello_result_str(CH_MALFORMED), "malformed");
	assert_string_equal(clienthello_result_str(CH_TOO_LARGE), "too_large");
	assert_string_equal(clienthello_result_str(CH_ECH), "ech");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(real_hello_whole_yields_sni),
	    cmocka_unit_test(real_hello_one_byte_at_a_time),
	    cmocka_unit_test(real_hello_split_across_records),
	    cmocka_unit_test(real_hello_without_sni),
	    cmocka_unit_test(sni_name_copied_raw_for_the_caller_to_validate),
	    cmocka_unit_test(sni_name_refused_when_unusable),
	    cmocka_unit_test(two_sni_names_refused),
	    cmocka_unit_test(inconsistent_lengths_are_malformed),
	    cmocka_unit_test(truncated_hello),
	    cmocka_unit_test(trailing_handshake_bytes_refused),
	    cmocka_unit_test(oversize_hello_is_too_large),
	    cmocka_unit_test(buffering_is_bounded),
	    cmocka_unit_test(non_tls_bytes),
	    cmocka_unit_test(sslv2_hello_is_not_tls),
	    cmocka_unit_test(wrong_record_or_message_type),
	    cmocka_unit_test(empty_record_is_malformed),
	    cmocka_unit_test(ech_and_draft_esni_refused),
	    cmocka_unit_test(result_strings_and_empty_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
