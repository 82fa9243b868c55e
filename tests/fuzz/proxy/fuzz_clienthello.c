/* Fuzz harness for clienthello_parse. The first input bytes choose how the
 * rest arrives: TCP segment sizes (each call sees a longer prefix, as the
 * proxy's read callback does) and, optionally, TLS record sizes the
 * harness re-frames the payload into, so fragmentation is fuzzed too.
 * Checks the result range, the SNI contract and the buffering bound. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clienthello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Room for a 16 KiB message framed into 1-byte records. */
#define WIRE_MAX ((size_t)6 * 65536)

static uint8_t wire[WIRE_MAX];

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_clienthello: %s\n", what);
		abort();
	}
}

static void check_result(enum clienthello_result r, size_t len, const char *sni,
			 size_t snilen)
{
	check(r >= CH_ECH && r <= CH_NEED_MORE, "result out of range");
	check(strcmp(clienthello_result_str(r), "malformed") != 0 ||
		  r == CH_MALFORMED,
	      "result without a name");
	check(strnlen(sni, snilen) < snilen, "sni not NUL-terminated");
	if (r == CH_OK)
		check(sni[0] != '\0', "ok with an empty name");
	/* More than the bound buffered is always a verdict. */
	if (len > CLIENTHELLO_MAX_BYTES)
		check(r != CH_NEED_MORE, "need_more past the bound");
}

/* Input: flags, then (flags & 7) segment sizes, then if (flags & 8) one
 * record size byte; the rest is the wire (or the handshake message). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t nseg = data[0] & 7u;
	int reframe = (data[0] & 8u) != 0;
	size_t hdr = 1 + nseg + (reframe ? 1 : 0);
	if (size < hdr)
		return 0;
	const uint8_t *seg = data + 1;
	const uint8_t *p = data + hdr;
	size_t plen = size - hdr;
	size_t wlen = 0;

	if (reframe) {
		size_t each = (size_t)data[hdr - 1] + 1;
		for (size_t off = 0;
		     off < plen && wlen + 5 + each <= WIRE_MAX;) {
			size_t n = plen - off < each ? plen - off : each;
			wire[wlen++] = 0x16;
			wire[wlen++] = 0x03;
			wire[wlen++] = 0x01;
			wire[wlen++] = (uint8_t)(n >> 8);
			wire[wlen++] = (uint8_t)n;
			memcpy(wire + wlen, p + off, n);
			wlen += n;
			off += n;
		}
	} else {
		wlen = plen < WIRE_MAX ? plen : WIRE_MAX;
		memcpy(wire, p, wlen);
	}

	/* The whole buffer at once, for reference. */
	char full[256];
	enum clienthello_result rfull =
	    clienthello_parse(wire, wlen, full, sizeof full);
	check_result(rfull, wlen, full, sizeof full);

	/* Growing prefixes, as the segments arrive; stop at the first
	 * verdict, as the proxy does. A hello that completed in a prefix is
	 * the same hello in the whole buffer. */
	char sni[256];
	size_t have = 0, k = 0;
	while (have < wlen) {
		size_t step = nseg ? (size_t)seg[k++ % nseg] + 1 : wlen;
		have = wlen - have < step ? wlen : have + step;
		enum clienthello_result r =
		    clienthello_parse(wire, have, sni, sizeof sni);
		check_result(r, have, sni, sizeof sni);
		if (r == CH_NEED_MORE)
			continue;
		if (r == CH_OK || r == CH_NO_SNI || r == CH_ECH) {
			check(rfull == r, "prefix verdict differs from whole");
			check(strcmp(sni, full) == 0, "prefix sni differs");
		}
		break;
	}

	/* A small caller buffer: never overrun, names that do not fit are
	 * malformed. */
	char small[8];
	enum clienthello_result rs =
	    clienthello_parse(wire, wlen, small, sizeof small);
	check_result(rs, wlen, small, sizeof small);
	if (rfull == CH_OK && strlen(full) < sizeof small)
		check(rs == CH_OK && strcmp(small, full) == 0, "small buffer");
	else if (rfull == CH_OK)
		check(rs == CH_MALFORMED, "long name in a small buffer");
	return 0;
}
