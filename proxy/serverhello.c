/* Reads the server's first handshake bytes far enough to tell a
 * HelloRetryRequest from any other answer: the first 38 bytes of the first
 * handshake message, reassembled from as many records as they span. */
#include "serverhello.h"

#include <string.h>

#define TLS_RECORD_HANDSHAKE	   0x16
#define TLS_HANDSHAKE_SERVER_HELLO 0x02
#define TLS_RECORD_MAX		   16384
/* type (1), length (3), legacy_version (2), random (32) */
#define HEAD_BYTES 38
#define RANDOM_AT  6

static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c,
    0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb,
    0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

/* What the message head gathered so far allows: SH_NEED_MORE while it can
 * still be a ServerHello. */
static enum serverhello_result judge_head(const uint8_t *hs, size_t have)
{
	if (have >= 1 && hs[0] != TLS_HANDSHAKE_SERVER_HELLO)
		return SH_OTHER;
	if (have >= 4) {
		size_t mlen = ((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) |
			      (size_t)hs[3];
		if (mlen < HEAD_BYTES - 4)
			return SH_OTHER; /* too short to hold a random */
	}
	return SH_NEED_MORE;
}

enum serverhello_result serverhello_parse(const uint8_t *buf, size_t len,
					  bool *is_hrr)
{
	uint8_t hs[HEAD_BYTES];
	size_t have = 0, off = 0;
	*is_hrr = false;
	while (have < HEAD_BYTES) {
		size_t left = len - off;
		if (left >= 1 && buf[off] != TLS_RECORD_HANDSHAKE)
			return SH_OTHER;
		if (left >= 2 && buf[off + 1] != 0x03)
			return SH_OTHER;
		if (left < 5)
			return SH_NEED_MORE;
		size_t rlen = ((size_t)buf[off + 3] << 8) | buf[off + 4];
		if (rlen == 0 || rlen > TLS_RECORD_MAX)
			return SH_OTHER;
		size_t avail = left - 5 < rlen ? left - 5 : rlen;
		size_t take =
		    avail < HEAD_BYTES - have ? avail : HEAD_BYTES - have;
		memcpy(hs + have, buf + off + 5, take);
		have += take;
		enum serverhello_result r = judge_head(hs, have);
		if (r != SH_NEED_MORE)
			return r;
		if (have == HEAD_BYTES)
			break;
		if (avail < rlen)
			return SH_NEED_MORE;
		off += 5 + rlen;
	}
	*is_hrr = memcmp(hs + RANDOM_AT, hrr_random, sizeof hrr_random) == 0;
	return SH_SERVER_HELLO;
}
