/* Decoding of the encodings a placeholder may hide in (cred_decode.c),
 * pure: the credentials of an HTTP Basic `Authorization` value (RFC 7617,
 * base64) and percent-escapes in a request target. inspect_cred.c swaps
 * and looks for placeholders in what these return. Internal to proxy/. */
#ifndef AGENTSAFE_PROXY_CRED_DECODE_H
#define AGENTSAFE_PROXY_CRED_DECODE_H

#include <stdbool.h>
#include <stddef.h>

/* Which base64 alphabets cred_decode_basic accepts. */
enum cred_b64 {
	CRED_B64_STD, /* RFC 4648 section 4, what HTTP Basic is */
	CRED_B64_ANY, /* also the URL-safe "-_" (section 5), and a mix */
};

/* True when the header name (not NUL-ended) is Authorization or
 * Proxy-Authorization, any case. */
bool cred_decode_is_auth(const char *name, size_t len);

/* The bytes the base64 of a `Basic <token68>` value (scheme any case, one
 * or more spaces, padding optional but never inside) decodes to, in out
 * (at most cap bytes; (len / 4 + 1) * 3 always suffice). Returns their
 * count, or -1 when the value is not Basic, not base64 of that alphabet,
 * or does not fit. */
long cred_decode_basic(const char *value, size_t len, enum cred_b64 alphabet,
		       unsigned char *out, size_t cap);

/* "Basic " and the standard padded base64 of in, NUL-ended, in out (cap
 * >= 6 + 4 * ((len + 2) / 3) + 1). Returns the length, or -1 when it does
 * not fit. */
long cred_encode_basic(const unsigned char *in, size_t len, char *out,
		       size_t cap);

/* s (n bytes) with every %XX (hex, any case) decoded into out (at least n
 * bytes); a '%' not followed by two hex digits stays. Returns the length
 * written. */
size_t cred_decode_percent(const char *s, size_t n, char *out);

#endif
