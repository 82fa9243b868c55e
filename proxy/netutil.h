/* Small pure helpers of the proxy for socket addresses: parsing the
 * --listen / --dns arguments, formatting addresses for logs, and splitting
 * a Host header into host and port. No I/O. */
#ifndef AGENTSAFE_PROXY_NETUTIL_H
#define AGENTSAFE_PROXY_NETUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text proxy_format_addr writes: "[v6]:port" plus NUL. */
#define PROXY_ADDRSTR_MAX 64

/* Parse "IPv4:PORT" or "[IPv6]:PORT" (port 0..65535). When port_optional,
 * a bare "IPv4" or "[IPv6]" / "IPv6" takes default_port. Host names are
 * not accepted (no lookups here). Returns 0 or -EINVAL with a sentence
 * naming the input in err. */
int proxy_parse_sockaddr(const char *s, bool port_optional,
			 uint16_t default_port, struct sockaddr_storage *ss,
			 socklen_t *sslen, char *err, size_t errlen);

/* "1.2.3.4:80" or "[::1]:80". */
void proxy_format_addr(const struct sockaddr *sa, char *buf, size_t len);
/* "1.2.3.4" or "::1" (no port, no brackets). */
void proxy_format_ip(const struct sockaddr *sa, char *buf, size_t len);
uint16_t proxy_sockaddr_port(const struct sockaddr *sa);

/* Split an authority "host", "host:port", "[v6]" or "[v6]:port" (a Host
 * header value) into host (brackets removed, NUL-terminated) and port
 * (default_port when absent). Returns 0 or -EINVAL. */
int proxy_split_authority(const char *s, size_t len, char *host, size_t hostlen,
			  uint16_t *port, uint16_t default_port);

/* Render len bytes of s (client-supplied text) for a log message: in double
 * quotes, printable ASCII as is except '"' and '\\' (backslash-escaped),
 * every other byte as \xNN, so no control, escape, bidi or non-ASCII byte
 * passes. Truncated to whole escapes to fit outlen (> 0), always
 * terminated; an overlong rendering ends in "..." after the closing quote
 * is dropped. */
void proxy_quote(const char *s, size_t len, char *out, size_t outlen);

#endif
