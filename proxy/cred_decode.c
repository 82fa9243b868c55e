/* HTTP Basic credentials and percent-escapes (see cred_decode.h). Input
 * comes from the agent: every malformed shape is a -1, never a read past
 * the value. */
#include "cred_decode.h"

#include <string.h>
#include <strings.h>

#include "http_parse.h"

bool cred_decode_is_auth(const char *name, size_t len)
{
	return (len == 13 && strncasecmp(name, "Authorization", 13) == 0) ||
	       (len == 19 && strncasecmp(name, "Proxy-Authorization", 19) == 0);
}

/* The 6-bit value of base64 digit ch, or -1. */
static int b64_digit(unsigned char ch, enum cred_b64 alphabet)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || (ch == '-' && alphabet == CRED_B64_ANY))
		return 62;
	if (ch == '/' || (ch == '_' && alphabet == CRED_B64_ANY))
		return 63;
	return -1;
}

long cred_decode_basic(const char *value, size_t len, enum cred_b64 alphabet,
		       unsigned char *out, size_t cap)
{
	if (len < 6 || strncasecmp(value, "Basic", 5) != 0 || value[5] != ' ')
		return -1;
	size_t i = 6;
	while (i < len && value[i] == ' ')
		i++;
	const char *t = value + i;
	size_t n = len - i;
	size_t pad = 0;
	while (pad < 2 && n > 0 && t[n - 1] == '=') {
		n--;
		pad++;
	}
	/* Without padding a last group of one digit is no byte; with it, the
	 * digits and '=' make whole groups. */
	if (n == 0 || n % 4 == 1 || (pad > 0 && (n + pad) % 4 != 0))
		return -1;
	size_t o = 0;
	unsigned acc = 0, bits = 0;
	for (size_t k = 0; k < n; k++) {
		int d = b64_digit((unsigned char)t[k], alphabet);
		if (d < 0)
			return -1;
		acc = (acc << 6 | (unsigned)d) & 0xffffffu;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (long)o;
}

long cred_encode_basic(const unsigned char *in, size_t len, char *out,
		       size_t cap)
{
	static const char dig[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char pad = '=';
	size_t need = 6 + 4 * ((len + 2) / 3) + 1;
	if (cap < need)
		return -1;
	memcpy(out, "Basic ", 6);
	size_t o = 6;
	for (size_t k = 0; k < len; k += 3) {
		unsigned v = (unsigned)in[k] << 16;
		if (k + 1 < len)
			v |= (unsigned)in[k + 1] << 8;
		if (k + 2 < len)
			v |= in[k + 2];
		out[o++] = dig[v >> 18 & 63];
		out[o++] = dig[v >> 12 & 63];
		out[o] = pad;
		out[o + 1] = pad;
		if (k + 1 < len)
			out[o] = dig[v >> 6 & 63];
		if (k + 2 < len)
			out[o + 1] = dig[v & 63];
		o += 2;
	}
	out[o] = '\0';
	return (long)o;
}

size_t cred_decode_percent(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int hi =
		    s[i] == '%' && i + 2 < n ? http_hex_digit(s[i + 1]) : -1;
		int lo = hi >= 0 ? http_hex_digit(s[i + 2]) : -1;
		if (lo >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	return o;
}
