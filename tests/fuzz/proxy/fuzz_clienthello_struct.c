/* Structure-aware fuzz harness for clienthello_parse. The input is not the
 * wire but a recipe: the fields of a ClientHello (version, session id,
 * suites), a list of extensions (server_name with chosen entries and names,
 * encrypted_client_hello and its drafts, key_share, supported_versions,
 * ALPN, padding, unknown types), then how the handshake message is cut
 * into TLS records and the records into TCP segments. Every hello built
 * this way gets past the length checks a byte-level fuzzer rarely
 * satisfies, so the parser's deep states (SNI list rules, ECH, the size
 * bounds, fragmentation) are reached; and because the harness knows what
 * it built, it checks the verdict itself, not only the parser's safety.
 * A flag corrupts one byte after the build, for the states in between. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clienthello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HS_CAP	 ((size_t)96 * 1024)
#define WIRE_CAP ((size_t)6 * HS_CAP + 64)
#define SNI_LEN	 256 /* the proxy's buffer */

static uint8_t hs[HS_CAP];
static uint8_t wire[WIRE_CAP];

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_clienthello_struct: %s\n", what);
		abort();
	}
}

/* ---- the recipe: reads past the end give zeros ---- */

struct src {
	const uint8_t *p;
	size_t n, off;
};

static unsigned u8(struct src *s)
{
	return s->off < s->n ? s->p[s->off++] : 0;
}

static unsigned u16(struct src *s)
{
	unsigned hi = u8(s);
	return hi << 8 | u8(s);
}

/* ---- the message being built ---- */

struct out {
	uint8_t *p;
	size_t n, cap;
	bool full;
};

static void put8(struct out *o, unsigned v)
{
	if (o->n >= o->cap) {
		o->full = true;
		return;
	}
	o->p[o->n++] = (uint8_t)v;
}

static void put16(struct out *o, unsigned v)
{
	put8(o, (v >> 8) & 0xff);
	put8(o, v & 0xff);
}

static void putb(struct out *o, const void *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put8(o, ((const uint8_t *)b)[i]);
}

static void putfill(struct out *o, size_t n, unsigned v)
{
	for (size_t i = 0; i < n; i++)
		put8(o, v);
}

/* Writes the 16-bit length of what was written since `at`. */
static void patch16(struct out *o, size_t at)
{
	size_t len = o->n - at - 2;
	if (o->full || len > 0xffff) {
		o->full = true;
		return;
	}
	o->p[at] = (uint8_t)(len >> 8);
	o->p[at + 1] = (uint8_t)len;
}

/* What the parser must conclude about the extensions built so far. */
struct expect {
	int sni_exts;
	bool sni_bad, ech;
	char name[SNI_LEN];
};

static bool is_ech_type(unsigned t)
{
	return (t >= 0xfe08 && t <= 0xfe0d) || t == 0xffce;
}

static const char *const names[] = {
    "a.test",	 "example.com",		  "api.anthropic.com",
    "x",	 "xn--bcher-kva.example", "UPPER.Example.COM",
    "1.2.3.4",	 "under_score.test",	  "-bad-.test",
    "a..b.test", "*.wild.test",		  "ok.test:443",
};

/* One name, as a recipe byte chooses: from the list, with a trailing dot,
 * raw bytes from the recipe (NULs included), empty, or long. */
static size_t make_name(struct src *s, char *buf)
{
	unsigned mode = u8(s) % 6;
	size_t n = 0;
	switch (mode) {
	case 0:
	case 1: {
		const char *w = names[u8(s) % (sizeof names / sizeof names[0])];
		n = strlen(w);
		memcpy(buf, w, n);
		if (mode == 1)
			buf[n++] = '.';
		break;
	}
	case 2:
		n = u8(s) % 64;
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)u8(s);
		break;
	case 3:
		break;
	case 4: /* around the 255/256 boundary of the proxy's buffer */
		n = 240 + u8(s) % 32;
		memset(buf, 'a', n);
		for (size_t i = 63; i < n; i += 64)
			buf[i] = '.';
		break;
	default: /* a NUL inside an otherwise fine name */
		memcpy(buf, "nul.test", 8);
		buf[u8(s) % 8] = '\0';
		n = 8;
		break;
	}
	return n;
}

static void ext_server_name(struct src *s, struct out *o, struct expect *e)
{
	char name[512];
	unsigned nent = u8(s) % 4; /* mostly 1 */
	if (nent == 3)
		nent = 1;
	put16(o, 0x0000);
	size_t ext_at = o->n;
	put16(o, 0);
	size_t list_at = o->n;
	put16(o, 0);
	bool ok = nent == 1;
	for (unsigned i = 0; i < nent; i++) {
		unsigned t = u8(s);
		t = (t & 7) == 7 ? (t >> 3) : 0; /* mostly host_name */
		size_t nl = make_name(s, name);
		put8(o, t);
		put16(o, (unsigned)nl);
		putb(o, name, nl);
		if (t != 0 || nl == 0 || nl >= SNI_LEN ||
		    memchr(name, '\0', nl) != NULL || name[nl - 1] == '.')
			ok = false;
		if (ok && i == 0) {
			memcpy(e->name, name, nl);
			e->name[nl] = '\0';
		}
	}
	patch16(o, list_at);
	patch16(o, ext_at);
	if (++e->sni_exts > 1 || !ok)
		e->sni_bad = true;
}

static void ext_opaque(struct out *o, unsigned type, size_t len, unsigned v)
{
	put16(o, type);
	put16(o, (unsigned)len);
	putfill(o, len, v);
}

/* One extension, of the kind the recipe chooses. */
static void ext_one(struct src *s, struct out *o, struct expect *e)
{
	unsigned op = u8(s) % 10;
	size_t at;
	switch (op) {
	case 0:
		ext_server_name(s, o, e);
		return;
	case 1: { /* encrypted_client_hello, outer: type, HPKE suite,
		   * config id, enc, payload */
		put16(o, 0xfe0d);
		at = o->n;
		put16(o, 0);
		put8(o, 0);
		put16(o, 0x0001);
		put16(o, 0x0001);
		put8(o, u8(s));
		put16(o, 32);
		putfill(o, 32, 0x11);
		size_t payload = 16 + u8(s);
		put16(o, (unsigned)payload);
		putfill(o, payload, 0x22);
		patch16(o, at);
		e->ech = true;
		return;
	}
	case 2: { /* draft ESNI, or an ECH draft code point */
		unsigned k = u8(s) % 6;
		unsigned t = k == 5 ? 0xffce : 0xfe08 + k;
		ext_opaque(o, t, u8(s), 0x33);
		e->ech = true;
		return;
	}
	case 3: { /* key_share: x25519, P-256, a GREASE group */
		static const unsigned groups[] = {0x001d, 0x0017, 0x0a0a};
		static const size_t klen[] = {32, 65, 1};
		unsigned n = 1 + u8(s) % 3;
		put16(o, 0x0033);
		at = o->n;
		put16(o, 0);
		size_t list = o->n;
		put16(o, 0);
		for (unsigned i = 0; i < n; i++) {
			put16(o, groups[i]);
			put16(o, (unsigned)klen[i]);
			putfill(o, klen[i], 0x44);
		}
		patch16(o, list);
		patch16(o, at);
		return;
	}
	case 4: /* supported_versions: TLS 1.3, 1.2 */
		put16(o, 0x002b);
		put16(o, 5);
		put8(o, 4);
		put16(o, 0x0304);
		put16(o, 0x0303);
		return;
	case 5: /* ALPN h2, http/1.1 */
		put16(o, 0x0010);
		put16(o, 14);
		put16(o, 12);
		put8(o, 2);
		putb(o, "h2", 2);
		put8(o, 8);
		putb(o, "http/1.1", 8);
		return;
	case 6: /* padding: large enough to cross the 16 KiB bounds */
		ext_opaque(o, 0x0015, u16(s) % 17000, 0);
		return;
	case 7: { /* any other code point the recipe names */
		unsigned t = u16(s);
		if (t == 0x0000)
			t = 0x0a0a;
		if (is_ech_type(t))
			e->ech = true;
		ext_opaque(o, t, u8(s) % 32, 0x55);
		return;
	}
	case 8: /* a second, well-formed server_name */
		put16(o, 0x0000);
		put16(o, 2 + 3 + 6);
		put16(o, 3 + 6);
		put8(o, 0);
		put16(o, 6);
		putb(o, "b.test", 6);
		if (++e->sni_exts > 1)
			e->sni_bad = true;
		else
			memcpy(e->name, "b.test", 7);
		return;
	default: /* empty extensions: extended_master_secret, SCT */
		ext_opaque(o, u8(s) & 1 ? 0x0017 : 0x0012, 0, 0);
		return;
	}
}

/* Builds the handshake message into hs; returns its length, 0 when it
 * does not fit. */
static size_t build_hello(struct src *s, bool with_exts, struct expect *e)
{
	struct out o = {hs, 0, HS_CAP, false};
	put8(&o, 0x01);
	put8(&o, 0);
	put16(&o, 0); /* 24-bit length, patched below */
	put16(&o, 0x0300 | (u8(s) & 3));
	putfill(&o, 32, 0xab);
	unsigned sid = u8(s) % 33;
	put8(&o, sid);
	putfill(&o, sid, 0xcd);
	unsigned suites = 1 + u8(s) % 8;
	put16(&o, suites * 2);
	for (unsigned i = 0; i < suites; i++)
		put16(&o, 0x1301 + i);
	unsigned comp = 1 + u8(s) % 2;
	put8(&o, comp);
	putfill(&o, comp, 0);
	if (with_exts) {
		size_t at = o.n;
		put16(&o, 0);
		unsigned n = u8(s) % 12;
		for (unsigned i = 0; i < n && !o.full; i++)
			ext_one(s, &o, e);
		patch16(&o, at);
	}
	if (o.full)
		return 0;
	size_t body = o.n - 4;
	hs[1] = (uint8_t)(body >> 16);
	hs[2] = (uint8_t)(body >> 8);
	hs[3] = (uint8_t)body;
	return o.n;
}

/* Cuts the message into records of the sizes the recipe lists (cycled;
 * none listed: 16384). Returns the wire length. */
static size_t frame(struct src *s, size_t hl, unsigned minor)
{
	size_t sizes[8];
	size_t k = u8(s) % 8;
	for (size_t i = 0; i < k; i++)
		sizes[i] = 1 + u16(s) % 16384;
	size_t w = 0;
	for (size_t off = 0, i = 0; off < hl; i++) {
		size_t n = k ? sizes[i % k] : 16384;
		if (n > hl - off)
			n = hl - off;
		wire[w++] = 0x16;
		wire[w++] = 0x03;
		wire[w++] = (uint8_t)minor;
		wire[w++] = (uint8_t)(n >> 8);
		wire[w++] = (uint8_t)n;
		memcpy(wire + w, hs + off, n);
		w += n;
		off += n;
	}
	return w;
}

static void check_result(enum clienthello_result r, size_t len, const char *sni)
{
	check(r >= CH_ECH && r <= CH_NEED_MORE, "result out of range");
	check(strnlen(sni, SNI_LEN) < SNI_LEN, "sni not NUL-terminated");
	if (r == CH_OK)
		check(sni[0] != '\0', "ok with an empty name");
	if (len > CLIENTHELLO_MAX_BYTES)
		check(r != CH_NEED_MORE, "need_more past the bound");
}

/* Recipe: flags (bit 0: no extensions block; bit 1: corrupt one byte;
 * bit 2: application data after the hello; bit 3: record version 3.3),
 * the hello, the record sizes, the segment sizes, then the corruption. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src s = {data, size, 0};
	unsigned flags = u8(&s);
	struct expect e;
	memset(&e, 0, sizeof e);
	size_t hl = build_hello(&s, (flags & 1) == 0, &e);
	if (hl == 0)
		return 0;
	size_t hello_wire = frame(&s, hl, flags & 8 ? 3 : 1);
	size_t wlen = hello_wire;
	if (flags & 4) {
		static const uint8_t app[] = {0x17, 0x03, 0x03, 0, 2, 1, 2};
		memcpy(wire + wlen, app, sizeof app);
		wlen += sizeof app;
	}
	size_t seg[4];
	size_t nseg = u8(&s) % 5;
	for (size_t i = 0; i < nseg; i++)
		seg[i] = 1 + u8(&s) * (1 + u8(&s) % 16);
	bool corrupt = (flags & 2) != 0;
	if (corrupt) {
		size_t at = u16(&s) % wlen;
		wire[at] = (uint8_t)(wire[at] ^ (1 + u8(&s) % 255));
	}

	/* What the proxy hands the parser: at most one byte past the bound. */
	size_t take =
	    wlen > CLIENTHELLO_MAX_BYTES + 1 ? CLIENTHELLO_MAX_BYTES + 1 : wlen;
	char sni[SNI_LEN];
	enum clienthello_result r = clienthello_parse(wire, take, sni, SNI_LEN);
	check_result(r, take, sni);

	enum clienthello_result want = CH_NEED_MORE;
	if (!corrupt) {
		if (hl - 4 > CLIENTHELLO_MAX_BYTES - 4 ||
		    hello_wire > CLIENTHELLO_MAX_BYTES + 1)
			want = CH_TOO_LARGE;
		else if (e.sni_bad)
			want = CH_MALFORMED;
		else if (e.ech)
			want = CH_ECH;
		else if (e.sni_exts > 0)
			want = CH_OK;
		else
			want = CH_NO_SNI;
		if (r != want)
			fprintf(stderr, "got %s, built %s\n",
				clienthello_result_str(r),
				clienthello_result_str(want));
		check(r == want, "verdict differs from what was built");
		if (r == CH_OK || r == CH_ECH)
			check(strcmp(sni, e.sni_exts ? e.name : "") == 0,
			      "a name other than the one built");
	}

	/* Growing prefixes, as segments arrive: before the hello is whole
	 * a well-formed one is need_more (or too_large); any verdict
	 * reached on a prefix is the verdict on the whole. */
	char psni[SNI_LEN];
	size_t have = 0, k = 0;
	while (have < take) {
		/* At most 64 calls: each one re-reads the prefix. */
		size_t step = nseg && k < 64 ? seg[k % nseg] : take;
		k++;
		have = take - have < step ? take : have + step;
		enum clienthello_result pr =
		    clienthello_parse(wire, have, psni, SNI_LEN);
		check_result(pr, have, psni);
		if (!corrupt && have < hello_wire && want != CH_TOO_LARGE)
			check(pr == CH_NEED_MORE, "a verdict before the hello "
						  "was whole");
		if (pr == CH_NEED_MORE)
			continue;
		check(pr == r, "prefix verdict differs from whole");
		if (pr == CH_OK || pr == CH_ECH)
			check(strcmp(psni, sni) == 0, "prefix sni differs");
		break;
	}
	return 0;
}
