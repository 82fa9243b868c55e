/* Address parsing and formatting for the proxy's command line and logs.
 * Input here comes from the operator (--listen, --dns) or from a client
 * (Host header), so every length is checked before use. */
#include "netutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int parse_port(const char *s, size_t len, uint16_t *port)
{
	if (len == 0 || len > 5)
		return -EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int proxy_parse_sockaddr(const char *s, bool port_optional,
			 uint16_t default_port, struct sockaddr_storage *ss,
			 socklen_t *sslen, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	uint16_t port = default_port;
	size_t n = strlen(s);
	const char *portstr = NULL;
	size_t hostlen;
	bool v6 = false;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (close == NULL)
			goto bad;
		hostlen = (size_t)(close - s - 1);
		if (hostlen >= sizeof host)
			goto bad;
		memcpy(host, s + 1, hostlen);
		host[hostlen] = '\0';
		v6 = true;
		if (close[1] == ':')
			portstr = close + 2;
		else if (close[1] != '\0')
			goto bad;
	} else {
		const char *colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* Several colons and no brackets: a bare IPv6. */
			if (n >= sizeof host)
				goto bad;
			memcpy(host, s, n + 1);
			v6 = true;
		} else {
			hostlen = colon ? (size_t)(colon - s) : n;
			if (hostlen >= sizeof host)
				goto bad;
			memcpy(host, s, hostlen);
			host[hostlen] = '\0';
			if (colon != NULL)
				portstr = colon + 1;
		}
	}
	if (portstr != NULL) {
		if (parse_port(portstr, strlen(portstr), &port) != 0)
			goto bad;
	} else if (!port_optional) {
		snprintf(err, errlen,
			 "address '%s' has no port (want ADDR:PORT)", s);
		return -EINVAL;
	}

	memset(ss, 0, sizeof *ss);
	if (v6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			goto bad;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*sslen = sizeof *a6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			goto bad;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*sslen = sizeof *a4;
	}
	return 0;
bad:
	snprintf(err, errlen,
		 "'%s' is not an IP address with a port (IPv4:PORT or "
		 "[IPv6]:PORT)",
		 s);
	return -EINVAL;
}

void proxy_format_ip(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *src = NULL;
	if (sa->sa_family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		src =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (src == NULL ||
	    inet_ntop(sa->sa_family, src, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
}

uint16_t proxy_sockaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(
		    ((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(
		    ((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return 0;
}

void proxy_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	proxy_format_ip(sa, ip, sizeof ip);
	if (sa->sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", ip, proxy_sockaddr_port(sa));
	else
		snprintf(buf, len, "%s:%u", ip, proxy_sockaddr_port(sa));
}

int proxy_split_authority(const char *s, size_t len, char *host, size_t hostlen,
			  uint16_t *port, uint16_t default_port)
{
	size_t hl;
	const char *hp = s;
	const char *rest;
	if (len == 0 || hostlen == 0)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL)
			return -EINVAL;
		hp = s + 1;
		hl = (size_t)(close - hp);
		rest = close + 1;
	} else {
		const char *colon = memchr(s, ':', len);
		hl = colon ? (size_t)(colon - s) : len;
		rest = s + hl;
	}
	size_t restlen = len - (size_t)(rest - s);
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	if (restlen == 0) {
		*port = default_port;
	} else {
		if (rest[0] != ':' ||
		    parse_port(rest + 1, restlen - 1, port) != 0)
			return -EINVAL;
	}
	memcpy(host, hp, hl);
	host[hl] = '\0';
	return 0;
}

void proxy_quote(const char *s, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t at = 0;
	bool cut = false;
	if (outlen < 6) { /* not even room for "" plus "..." */
		out[0] = '\0';
		return;
	}
	out[at++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)s[i];
		char one[4];
		size_t n = 0;
		if (b == '"' || b == '\\') {
			one[n++] = '\\';
			one[n++] = (char)b;
		} else if (b >= 0x20 && b < 0x7f) {
			one[n++] = (char)b;
		} else {
			one[n++] = '\\';
			one[n++] = 'x';
			one[n++] = hex[b >> 4];
			one[n++] = hex[b & 15];
		}
		/* Keep room for the closing quote, or "..." and the NUL. */
		if (at + n + 4 > outlen) {
			cut = true;
			break;
		}
		memcpy(out + at, one, n);
		at += n;
	}
	if (cut) {
		memcpy(out + at, "...", 3);
		at += 3;
	} else {
		out[at++] = '"';
	}
	out[at] = '\0';
}
