/* TLS ClientHello reader: finds the SNI host name in the first bytes a
 * client sends after CONNECT. Treats every byte as hostile; handles a
 * ClientHello fragmented across TCP segments and across TLS records. */
#ifndef AGENTSAFE_CLIENTHELLO_H
#define AGENTSAFE_CLIENTHELLO_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes the proxy will buffer while waiting for a complete
 * ClientHello; more than this is CH_TOO_LARGE. */
#define CLIENTHELLO_MAX_BYTES 16384

enum clienthello_result {
	CH_OK = 0,	   /* complete ClientHello, SNI host name copied out */
	CH_NEED_MORE = 1,  /* so far valid; call again with more bytes */
	CH_NOT_TLS = -1,   /* first bytes are not a TLS handshake record */
	CH_NO_SNI = -2,	   /* complete ClientHello without a host_name SNI */
	CH_MALFORMED = -3, /* lengths or structure inconsistent */
	CH_TOO_LARGE = -4, /* exceeds CLIENTHELLO_MAX_BYTES */
	CH_ECH = -5,	   /* offers Encrypted Client Hello or draft ESNI */
};

/* Parse the bytes received so far (buf, len: everything from the first byte
 * after the CONNECT response). Pure function, no state: the caller keeps
 * the bytes and calls again when more arrive. On CH_OK the SNI host name is
 * copied into sni (NUL-terminated, exactly as sent; the caller validates and
 * normalises it with policy_host_normalize). A server_name list that is
 * not exactly one host_name entry, or a name that does not fit in snilen,
 * contains a NUL or ends in a dot (RFC 6066 3), is CH_MALFORMED. A well-formed
 * hello that offers encrypted_client_hello (0xfe0d, or a draft code point
 * 0xfe08.. 0xfe0c) or draft ESNI (0xffce) is CH_ECH, with the outer SNI (if
 * any) copied into sni for the record. */
enum clienthello_result clienthello_parse(const uint8_t *buf, size_t len,
					  char *sni, size_t snilen);

/* The length of the TLS records that carry the first handshake message of
 * buf (a ClientHello clienthello_parse accepted): what to forward before
 * the server has answered. 0 and *span set, or -1 when buf does not hold
 * those records whole. */
int clienthello_span(const uint8_t *buf, size_t len, size_t *span);

/* Stable reason text for logs: "ok", "need_more", "not_tls", "no_sni",
 * "malformed", "too_large", "ech". */
const char *clienthello_result_str(enum clienthello_result r);

#endif
