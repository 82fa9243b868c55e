/* Host-name normalisation and IP-address classification: the single place
 * that decides what counts as a valid host and which addresses are
 * internal (loopback, private, link-local, CGNAT, multicast, ...). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "policy_int.h"

void policy_quote(const char *in, size_t inlen, char *out, size_t outlen)
{
	size_t o = 0;
	if (outlen == 0)
		return;
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (o + 8 >= outlen) {
			/* Leave room for the ellipsis and the NUL. */
			if (o + 4 <= outlen) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[o++] = (char)c;
		} else {
			int n = snprintf(out + o, outlen - o, "\\x%02x", c);
			if (n < 0)
				break;
			o += (size_t)n;
		}
	}
	out[o] = '\0';
}

/* The normaliser writes only the reason; the public wrapper names the host. */
static void seterr(char *err, size_t errlen, const char *in, size_t inlen,
		   const char *why)
{
	(void)in;
	(void)inlen;
	if (err == NULL || errlen == 0)
		return;
	snprintf(err, errlen, "%s", why);
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Canonical text of an IPv6 literal given without brackets. */
static int norm_v6(const char *in, size_t inlen, char *out, size_t outlen,
		   char *err, size_t errlen)
{
	char buf[64];
	struct in6_addr a6;
	if (inlen >= sizeof buf) {
		seterr(err, errlen, in, inlen, "not a valid IPv6 address");
		return -EINVAL;
	}
	memcpy(buf, in, inlen);
	buf[inlen] = '\0';
	if (inet_pton(AF_INET6, buf, &a6) != 1) {
		seterr(err, errlen, in, inlen,
		       "':' is only allowed in an IPv6 address, and this is "
		       "not one");
		return -EINVAL;
	}
	if (inet_ntop(AF_INET6, &a6, buf, sizeof buf) == NULL ||
	    strlen(buf) + 1 > outlen) {
		seterr(err, errlen, in, inlen, "output buffer too small");
		return -EINVAL;
	}
	memcpy(out, buf, strlen(buf) + 1);
	return 0;
}

int policy_host_normalize(const char *in, size_t inlen, char *out,
			  size_t outlen, char *err, size_t errlen)
{
	char why[POLICY_ERR_MAX];
	char q[80];
	int rc = policy_host_norm_why(in, inlen, out, outlen, why, sizeof why);
	if (rc != 0 && err != NULL && errlen > 0) {
		if (in == NULL)
			snprintf(err, errlen, "bad host: %s", why);
		else {
			policy_quote(in, inlen, q, sizeof q);
			snprintf(err, errlen, "bad host '%s': %s", q, why);
		}
	}
	return rc;
}

/* Rejects what no host can contain before anything else reads the text:
 * the empty string, more than a DNS name plus its trailing dot, NUL and
 * non-ASCII bytes. */
static int check_bytes(const char *in, size_t inlen, char *err, size_t errlen)
{
	if (inlen == 0) {
		seterr(err, errlen, in, inlen, "empty host");
		return -EINVAL;
	}
	/* Bound the work first: nothing valid is longer than a DNS name plus
	 * its trailing dot. */
	if (inlen > POLICY_HOST_MAX + 1) {
		seterr(err, errlen, in, inlen, "longer than 253 bytes");
		return -EINVAL;
	}
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == 0) {
			seterr(err, errlen, in, inlen, "contains a NUL byte");
			return -EINVAL;
		}
		if (c >= 0x80) {
			seterr(
			    err, errlen, in, inlen,
			    "non-ASCII byte (write IDNs as punycode, xn--...)");
			return -EINVAL;
		}
	}
	return 0;
}

/* A host that opens with '[' or holds a ':' can only be an IPv6 literal. */
static int norm_v6_literal(const char *in, size_t inlen, char *out,
			   size_t outlen, char *err, size_t errlen)
{
	/* [v6] as in URLs and CONNECT authorities: the brackets are dropped. */
	if (in[0] == '[') {
		if (inlen < 3 || in[inlen - 1] != ']') {
			seterr(err, errlen, in, inlen,
			       "'[' must enclose an IPv6 address");
			return -EINVAL;
		}
		if (memchr(in + 1, ':', inlen - 2) == NULL) {
			seterr(err, errlen, in, inlen,
			       "brackets may only enclose an IPv6 address");
			return -EINVAL;
		}
		return norm_v6(in + 1, inlen - 2, out, outlen, err, errlen);
	}
	return norm_v6(in, inlen, out, outlen, err, errlen);
}

/* Copies the first n bytes of in (n <= POLICY_HOST_MAX) into buf lower-cased
 * and NUL-terminated, checking each label's length and characters. */
static int lower_labels(const char *in, size_t inlen, size_t n,
			char buf[POLICY_HOST_MAX + 2], char *err, size_t errlen)
{
	size_t label_start = 0;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)in[i] : '.';
		if (c == '.') {
			size_t ll = i - label_start;
			if (ll == 0) {
				seterr(err, errlen, in, inlen, "empty label");
				return -EINVAL;
			}
			if (ll > 63) {
				seterr(err, errlen, in, inlen,
				       "label longer than 63 bytes");
				return -EINVAL;
			}
			if (buf[label_start] == '-' || buf[i - 1] == '-') {
				seterr(err, errlen, in, inlen,
				       "label starts or ends with '-'");
				return -EINVAL;
			}
			if (i < n)
				buf[i] = '.';
			label_start = i + 1;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		/* LDH plus '_': underscores occur in real host names (service
		 * records, some CDNs), and rejecting them buys no safety. */
		if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' ||
		      c == '_')) {
			char why[64];
			if (c > 0x20 && c < 0x7f)
				snprintf(
				    why, sizeof why,
				    "character '%c' not allowed in a host name",
				    c);
			else
				snprintf(
				    why, sizeof why,
				    "byte 0x%02x not allowed in a host name",
				    c);
			seterr(err, errlen, in, inlen, why);
			return -EINVAL;
		}
		buf[i] = (char)c;
	}
	buf[n] = '\0';
	return 0;
}

/* Takes the lower-cased name in buf (n bytes) to out: a dotted quad passes,
 * anything else a resolver would read as an IPv4 address does not. */
static int finish_name(const char *in, size_t inlen, const char *buf, size_t n,
		       char *out, size_t outlen, char *err, size_t errlen)
{
	struct in_addr a4;
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		if (n + 1 > outlen) {
			seterr(err, errlen, in, inlen,
			       "output buffer too small");
			return -EINVAL;
		}
		memcpy(out, buf, n + 1);
		return 0;
	}
	/* Resolvers read "2130706433", "127.1" or "0x7f.0.0.1" as addresses;
	 * such names would slip past IP rules, so they are not host names.
	 * No real top-level domain is all digits. */
	size_t last = n;
	while (last > 0 && buf[last - 1] != '.')
		last--;
	bool numeric_tld = true;
	for (size_t i = last; i < n; i++)
		if (!is_digit((unsigned char)buf[i]))
			numeric_tld = false;
	if (numeric_tld || inet_aton(buf, &a4) != 0) {
		seterr(err, errlen, in, inlen,
		       "looks like an IPv4 address but is not a dotted quad");
		return -EINVAL;
	}
	if (n + 1 > outlen) {
		seterr(err, errlen, in, inlen, "output buffer too small");
		return -EINVAL;
	}
	memcpy(out, buf, n + 1);
	return 0;
}

int policy_host_norm_why(const char *in, size_t inlen, char *out, size_t outlen,
			 char *err, size_t errlen)
{
	char buf[POLICY_HOST_MAX + 2];
	if (in == NULL || out == NULL || outlen == 0) {
		seterr(err, errlen, in, inlen, "no input");
		return -EINVAL;
	}
	/* Every byte is checked before anything else looks at the text. */
	int rc = check_bytes(in, inlen, err, errlen);
	if (rc != 0)
		return rc;
	if (in[0] == '[' || memchr(in, ':', inlen) != NULL)
		return norm_v6_literal(in, inlen, out, outlen, err, errlen);

	size_t n = inlen;
	if (in[n - 1] == '.')
		n--; /* one trailing dot: the absolute form of the same name */
	if (n == 0) {
		seterr(err, errlen, in, inlen, "empty host");
		return -EINVAL;
	}
	if (n > POLICY_HOST_MAX) {
		seterr(err, errlen, in, inlen, "longer than 253 bytes");
		return -EINVAL;
	}
	rc = lower_labels(in, inlen, n, buf, err, errlen);
	if (rc != 0)
		return rc;
	return finish_name(in, inlen, buf, n, out, outlen, err, errlen);
}

bool policy_ip_parse(const char *s, uint8_t *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (strchr(s, ':') != NULL) {
		if (inet_pton(AF_INET6, s, addr) != 1)
			return false;
		*family = 6;
		return true;
	}
	if (inet_pton(AF_INET, s, addr) != 1)
		return false;
	*family = 4;
	return true;
}

bool policy_host_is_ip_literal(const char *normalized)
{
	uint8_t fam, a[16];
	return normalized != NULL && policy_ip_parse(normalized, &fam, a);
}

bool policy_v4_is_internal(const uint8_t a[4])
{
	uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
		     (uint32_t)a[2] << 8 | a[3];
	static const struct {
		uint32_t net;
		unsigned plen;
	} r[] = {
	    {0x00000000u, 8},  /* "this network" */
	    {0x0a000000u, 8},  /* RFC 1918 */
	    {0x64400000u, 10}, /* CGNAT */
	    {0x7f000000u, 8},  /* loopback */
	    {0xa9fe0000u, 16}, /* link-local (cloud metadata) */
	    {0xac100000u, 12}, /* RFC 1918 */
	    {0xc0000000u, 24}, /* IETF protocol assignments */
	    {0xc0a80000u, 16}, /* RFC 1918 */
	    {0xc6120000u, 15}, /* benchmarking */
	    {0xe0000000u, 4},  /* multicast */
	    {0xf0000000u, 4},  /* reserved + broadcast */
	};
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
		uint32_t mask = 0xffffffffu << (32 - r[i].plen);
		if ((x & mask) == r[i].net)
			return true;
	}
	return false;
}

bool policy_v6_is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a, mapped, 12) == 0;
}

bool policy_v6_embedded_v4(const uint8_t a[16], uint8_t v4[4])
{
	static const uint8_t zero[12] = {0};
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0,
					  0, 0,	   0,	 0,    0, 0};
	/* SIIT's IPv4-translated form, ::ffff:0:a.b.c.d (RFC 2765). */
	static const uint8_t siit[12] = {0, 0, 0,    0,	   0, 0,
					 0, 0, 0xff, 0xff, 0, 0};
	if (policy_v6_is_v4_mapped(a) || memcmp(a, zero, 12) == 0 ||
	    memcmp(a, nat64, 12) == 0 || memcmp(a, siit, 12) == 0) {
		memcpy(v4, a + 12, 4);
		return true;
	}
	if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4 */
		memcpy(v4, a + 2, 4);
		return true;
	}
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
		/* Teredo: the client's address, bit-inverted. */
		for (int i = 0; i < 4; i++)
			v4[i] = (uint8_t)~a[12 + i];
		return true;
	}
	return false;
}

bool policy_v6_is_internal(const uint8_t a[16])
{
	static const uint8_t zero[16] = {0};
	uint8_t v4[4];
	if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
		return true;	   /* :: and ::1 */
	if ((a[0] & 0xfe) == 0xfc) /* fc00::/7 ULA */
		return true;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 */
		return true;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) /* fec0::/10 */
		return true;
	if (a[0] == 0xff) /* multicast */
		return true;
	/* 64:ff9b:1::/48, NAT64 for local use (RFC 8215) */
	if (a[0] == 0 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b &&
	    a[4] == 0 && a[5] == 1)
		return true;
	/* 100::/64 discard-only */
	if (a[0] == 1 && memcmp(a + 1, zero, 7) == 0)
		return true;
	if (policy_v6_embedded_v4(a, v4))
		return policy_v4_is_internal(v4);
	return false;
}

bool policy_addr_is_internal(const struct sockaddr *sa)
{
	if (sa == NULL)
		return true;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		uint8_t a[4];
		memcpy(a, &s4->sin_addr, 4);
		return policy_v4_is_internal(a);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		uint8_t a[16];
		memcpy(a, &s6->sin6_addr, 16);
		return policy_v6_is_internal(a);
	}
	/* Anything that is not an IP address is not a place to connect to. */
	return true;
}
