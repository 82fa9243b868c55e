/* The server's first TLS record after a checked ClientHello: a ServerHello,
 * and whether it is a HelloRetryRequest (RFC 8446 4.1.3), after which the
 * client sends a second ClientHello the proxy must check too. Treats every
 * byte as hostile; handles a ServerHello split across TLS records. */
#ifndef AGENTSAFE_SERVERHELLO_H
#define AGENTSAFE_SERVERHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A ServerHello's first 38 bytes (type, length, legacy_version, random)
 * decide; at one payload byte per record they fill at most 38 records of
 * 6 bytes, so a verdict never needs more than this many bytes. */
#define SERVERHELLO_MAX_BYTES 256

enum serverhello_result {
	SH_SERVER_HELLO = 0, /* a ServerHello; *is_hrr says which kind */
	SH_NEED_MORE = 1,    /* so far a ServerHello; call again with more */
	SH_OTHER = -1,	     /* anything else: an alert, another message,
				bytes that are not TLS, broken framing */
};

/* Parse the bytes the server sent so far (buf, len: from its first byte).
 * Pure function, no state: the caller keeps the bytes and calls again when
 * more arrive. On SH_SERVER_HELLO, *is_hrr is true when the random is the
 * HelloRetryRequest value (SHA-256 of "HelloRetryRequest"); otherwise
 * *is_hrr is false. */
enum serverhello_result serverhello_parse(const uint8_t *buf, size_t len,
					  bool *is_hrr);

#endif
