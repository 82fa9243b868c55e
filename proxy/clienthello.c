/* Finds the SNI host name in a TLS ClientHello. The handshake message is
 * reassembled from as many TLS records as the client split it into, then
 * walked field by field with a length check before every read. */
#include "clienthello.h"

#include <string.h>

#define TLS_RECORD_HANDSHAKE	   0x16
#define TLS_HANDSHAKE_CLIENT_HELLO 0x01
#define TLS_EXT_SERVER_NAME	   0x0000
#define TLS_SNI_HOST_NAME	   0x00
#define TLS_RECORD_MAX		   16384 /* plaintext fragment limit, RFC 8446 5.1 */
#define TLS_EXT_ECH		   0xfe0d /* encrypted_client_hello, esni-13 on */
#define TLS_EXT_ECH_DRAFT_MIN	   0xfe08 /* draft-ietf-tls-esni-08 .. -12 */
#define TLS_EXT_ESNI_DRAFT	   0xffce /* encrypted_server_name, esni-01..-06 */

const char *clienthello_result_str(enum clienthello_result r)
{
	switch (r) {
	case CH_OK:
		return "ok";
	case CH_NEED_MORE:
		return "need_more";
	case CH_NOT_TLS:
		return "not_tls";
	case CH_NO_SNI:
		return "no_sni";
	case CH_MALFORMED:
		return "malformed";
	case CH_TOO_LARGE:
		return "too_large";
	case CH_ECH:
		return "ech";
	}
	return "malformed";
}

/* A bounded reader over the reassembled handshake body. */
struct rd {
	const uint8_t *p;
	size_t len, off;
	int bad;
};

static size_t rd_left(const struct rd *r)
{
	return r->len - r->off;
}

static unsigned rd_u8(struct rd *r)
{
	if (rd_left(r) < 1) {
		r->bad = 1;
		return 0;
	}
	return r->p[r->off++];
}

static unsigned rd_u16(struct rd *r)
{
	if (rd_left(r) < 2) {
		r->bad = 1;
		return 0;
	}
	unsigned v = ((unsigned)r->p[r->off] << 8) | r->p[r->off + 1];
	r->off += 2;
	return v;
}

static const uint8_t *rd_skip(struct rd *r, size_t n)
{
	if (rd_left(r) < n) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *at = r->p + r->off;
	r->off += n;
	return at;
}

/* The server_name extension body (RFC 6066 3): exactly one entry, of type
 * host_name, with a name that does not end in a dot. Servers differ on
 * what they do with other entry types or a second name (OpenSSL refuses
 * the list, others take the first or the last entry); whatever the
 * upstream would pick must be the name checked here, so any list but one
 * host name is refused. */
static enum clienthello_result parse_sni(const uint8_t *p, size_t len,
					 char *sni, size_t snilen)
{
	struct rd r = {p, len, 0, 0};
	size_t list = rd_u16(&r);
	if (r.bad || list != rd_left(&r) || list == 0)
		return CH_MALFORMED;
	unsigned type = rd_u8(&r);
	size_t nlen = rd_u16(&r);
	const uint8_t *name = rd_skip(&r, nlen);
	if (r.bad || rd_left(&r) != 0 || type != TLS_SNI_HOST_NAME)
		return CH_MALFORMED;
	if (nlen == 0 || nlen >= snilen || memchr(name, '\0', nlen) != NULL ||
	    name[nlen - 1] == '.')
		return CH_MALFORMED;
	memcpy(sni, name, nlen);
	sni[nlen] = '\0';
	return CH_OK;
}

/* Encrypted Client Hello, in its final or a draft form: the name the
 * client really reaches is encrypted, so the SNI check would be checking
 * the front end's public name only. */
static int is_ech(unsigned type)
{
	return (type >= TLS_EXT_ECH_DRAFT_MIN && type <= TLS_EXT_ECH) ||
	       type == TLS_EXT_ESNI_DRAFT;
}

/* The ClientHello body (RFC 8446 4.1.2; the TLS 1.2 layout is the same up
 * to the extensions). */
static enum clienthello_result parse_hello(const uint8_t *p, size_t len,
					   char *sni, size_t snilen)
{
	struct rd r = {p, len, 0, 0};
	unsigned version = rd_u16(&r);
	(void)rd_skip(&r, 32); /* random */
	size_t sid = rd_u8(&r);
	if (r.bad || (version >> 8) != 0x03 || sid > 32)
		return CH_MALFORMED;
	(void)rd_skip(&r, sid);
	size_t suites = rd_u16(&r);
	if (r.bad || suites < 2 || (suites & 1) != 0)
		return CH_MALFORMED;
	(void)rd_skip(&r, suites);
	size_t comp = rd_u8(&r);
	if (r.bad || comp < 1)
		return CH_MALFORMED;
	(void)rd_skip(&r, comp);
	if (r.bad)
		return CH_MALFORMED;
	if (rd_left(&r) == 0)
		return CH_NO_SNI; /* a hello without extensions */
	size_t exts = rd_u16(&r);
	if (r.bad || exts != rd_left(&r))
		return CH_MALFORMED;
	int found = 0, ech = 0;
	while (rd_left(&r) > 0) {
		unsigned type = rd_u16(&r);
		size_t elen = rd_u16(&r);
		const uint8_t *body = rd_skip(&r, elen);
		if (r.bad)
			return CH_MALFORMED;
		/* Noted, not returned at once: a malformed hello stays
		 * malformed, and the outer name is kept for the record. */
		if (is_ech(type))
			ech = 1;
		if (type != TLS_EXT_SERVER_NAME)
			continue;
		if (found)
			return CH_MALFORMED; /* duplicate extension */
		enum clienthello_result e = parse_sni(body, elen, sni, snilen);
		if (e != CH_OK)
			return e;
		found = 1;
	}
	if (ech)
		return CH_ECH;
	return found ? CH_OK : CH_NO_SNI;
}

enum clienthello_result clienthello_parse(const uint8_t *buf, size_t len,
					  char *sni, size_t snilen)
{
	/* The handshake message, reassembled from the records' fragments. */
	uint8_t hs[CLIENTHELLO_MAX_BYTES];
	size_t hs_len = 0;
	size_t off = 0;

	if (snilen > 0)
		sni[0] = '\0';
	if (len == 0)
		return CH_NEED_MORE;
	if (buf[0] != TLS_RECORD_HANDSHAKE)
		return CH_NOT_TLS;
	if (len >= 2 && buf[1] != 0x03)
		return CH_NOT_TLS;

	for (;;) {
		/* Is the handshake message complete? */
		if (hs_len >= 4) {
			if (hs[0] != TLS_HANDSHAKE_CLIENT_HELLO)
				return CH_MALFORMED;
			size_t body = ((size_t)hs[1] << 16) |
				      ((size_t)hs[2] << 8) | hs[3];
			if (body > sizeof hs - 4)
				return CH_TOO_LARGE;
			if (hs_len >= 4 + body) {
				/* Bytes after the hello in the same flight
				 * would be a second handshake message before
				 * the server spoke: not a client we know. */
				if (hs_len > 4 + body)
					return CH_MALFORMED;
				return parse_hello(hs + 4, body, sni, snilen);
			}
		}
		/* Next record header. */
		if (len - off < 5)
			return len > CLIENTHELLO_MAX_BYTES ? CH_TOO_LARGE
							   : CH_NEED_MORE;
		const uint8_t *rec = buf + off;
		size_t rlen = ((size_t)rec[3] << 8) | rec[4];
		if (rec[0] != TLS_RECORD_HANDSHAKE || rec[1] != 0x03)
			return off == 0 ? CH_NOT_TLS : CH_MALFORMED;
		if (rlen == 0 || rlen > TLS_RECORD_MAX)
			return CH_MALFORMED;
		if (hs_len + rlen > sizeof hs)
			return CH_TOO_LARGE;
		size_t have = len - off - 5;
		size_t take = have < rlen ? have : rlen;
		memcpy(hs + hs_len, rec + 5, take);
		hs_len += take;
		if (take < rlen) {
			/* A partial record: look at what we have so far, so an
			 * obviously wrong message type fails early. */
			if (hs_len >= 1 && hs[0] != TLS_HANDSHAKE_CLIENT_HELLO)
				return CH_MALFORMED;
			if (hs_len >= 4) {
				size_t body = ((size_t)hs[1] << 16) |
					      ((size_t)hs[2] << 8) | hs[3];
				if (body > sizeof hs - 4)
					return CH_TOO_LARGE;
			}
			/* Tiny records cost 5 header bytes each: the bound is
			 * on what is buffered, not only on the message. */
			return len > CLIENTHELLO_MAX_BYTES ? CH_TOO_LARGE
							   : CH_NEED_MORE;
		}
		off += 5 + rlen;
	}
}

int clienthello_span(const uint8_t *buf, size_t len, size_t *span)
{
	size_t off = 0, got = 0, need = 0;
	uint8_t head[4];
	while (off < len && off <= CLIENTHELLO_MAX_BYTES) {
		if (len - off < 5 || buf[off] != TLS_RECORD_HANDSHAKE)
			return -1;
		size_t rlen = ((size_t)buf[off + 3] << 8) | buf[off + 4];
		if (rlen == 0 || len - off - 5 < rlen)
			return -1;
		for (size_t i = 0; i < rlen && got + i < 4; i++)
			head[got + i] = buf[off + 5 + i];
		got += rlen;
		off += 5 + rlen;
		if (got >= 4) {
			need = 4 + (((size_t)head[1] << 16) |
				    ((size_t)head[2] << 8) | head[3]);
			if (got >= need) {
				*span = off;
				return 0;
			}
		}
	}
	return -1;
}
