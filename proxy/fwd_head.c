/* Head rewriting for plain-HTTP forwarding. The parser (http_parse.c) has
 * already rejected ambiguous framing; this file only decides which fields
 * travel to the next hop and writes the new head with explicit bounds. */
#include "fwd_head.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "netutil.h"
#include "policy.h"

static bool name_is(const struct http_header *h, const char *name)
{
	size_t n = strlen(name);
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

bool fwd_connection_lists(const struct http_header *hdrs, size_t n,
			  const char *name, size_t name_len)
{
	for (size_t i = 0; i < n; i++) {
		if (!name_is(&hdrs[i], "connection"))
			continue;
		const char *v = hdrs[i].value;
		size_t vl = hdrs[i].value_len;
		size_t p = 0;
		while (p < vl) {
			while (p < vl &&
			       (v[p] == ',' || v[p] == ' ' || v[p] == '\t'))
				p++;
			size_t start = p;
			while (p < vl && v[p] != ',' && v[p] != ' ' &&
			       v[p] != '\t')
				p++;
			size_t tl = p - start;
			if (tl > 0 && tl == name_len &&
			    strncasecmp(v + start, name, tl) == 0)
				return true;
		}
	}
	return false;
}

int fwd_check_host(const struct http_request *req, char *err, size_t errlen)
{
	char hh[POLICY_HOST_MAX + 3];
	char a[POLICY_HOST_MAX + 1], b[POLICY_HOST_MAX + 1];
	char nerr[POLICY_ERR_MAX];
	uint16_t hport;

	if (req->host_header == NULL) {
		if (req->version_minor == 0)
			return 0;
		snprintf(err, errlen, "HTTP/1.1 request without a Host header");
		return -EINVAL;
	}
	if (proxy_split_authority(req->host_header, req->host_header_len, hh,
				  sizeof hh, &hport, 80) != 0) {
		snprintf(err, errlen, "Host header is not host[:port]");
		return -EINVAL;
	}
	if (policy_host_normalize(hh, strlen(hh), a, sizeof a, nerr,
				  sizeof nerr) != 0 ||
	    policy_host_normalize(req->host, strlen(req->host), b, sizeof b,
				  nerr, sizeof nerr) != 0) {
		snprintf(err, errlen, "Host header or URI host is invalid: %s",
			 nerr);
		return -EINVAL;
	}
	if (strcmp(a, b) != 0 || hport != req->port) {
		snprintf(err, errlen,
			 "Host header '%s:%u' does not match the URI authority "
			 "'%s:%u'",
			 a, hport, b, req->port);
		return -EINVAL;
	}
	return 0;
}

struct out {
	char *p;
	size_t len, cap;
	bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->overflow || n > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Copy the fields that are end-to-end for this message. */
static void put_fields(struct out *o, const struct http_header *hdrs, size_t n,
		       bool chunked, bool skip_host)
{
	for (size_t i = 0; i < n; i++) {
		const struct http_header *h = &hdrs[i];
		if (skip_host && name_is(h, "host"))
			continue;
		if (name_is(h, "transfer-encoding")) {
			if (!chunked)
				continue;
		} else if (http_is_hop_by_hop(h->name, h->name_len) ||
			   fwd_connection_lists(hdrs, n, h->name,
						h->name_len)) {
			continue;
		}
		put(o, h->name, h->name_len);
		put(o, ": ", 2);
		put(o, h->value, h->value_len);
		put(o, "\r\n", 2);
	}
}

long fwd_build_request(const struct http_request *req, char *out, size_t outlen)
{
	struct out o = {out, 0, outlen, false};
	char line[64];

	put(&o, req->method, req->method_len);
	put(&o, " ", 1);
	puts_(&o, req->path[0] ? req->path : "/");
	snprintf(line, sizeof line, " HTTP/1.%d\r\n", req->version_minor);
	puts_(&o, line);
	puts_(&o, "Host: ");
	if (req->host_header != NULL) {
		put(&o, req->host_header, req->host_header_len);
	} else {
		bool v6 = strchr(req->host, ':') != NULL;
		if (v6)
			put(&o, "[", 1);
		puts_(&o, req->host);
		if (v6)
			put(&o, "]", 1);
		if (req->port != 80) {
			snprintf(line, sizeof line, ":%u", req->port);
			puts_(&o, line);
		}
	}
	put(&o, "\r\n", 2);
	put_fields(&o, req->headers, req->nheaders,
		   req->body == HTTP_BODY_CHUNKED, true);
	puts_(&o, "Connection: close\r\n\r\n");
	if (o.overflow)
		return -ENOSPC;
	return (long)o.len;
}

long fwd_build_response(const char *raw, const struct http_response *resp,
			int client_version_minor, bool keep_alive, char *out,
			size_t outlen)
{
	struct out o = {out, 0, outlen, false};
	const char *eol = memchr(raw, '\n', resp->head_len);
	if (eol == NULL)
		return -EINVAL;
	/* We are the client's HTTP/1.1 peer: our version, their status. */
	if ((size_t)(eol - raw) < 9 || memcmp(raw, "HTTP/1.", 7) != 0)
		return -EINVAL;
	puts_(&o, "HTTP/1.1");
	put(&o, raw + 8, (size_t)(eol - raw) - 7);
	put_fields(&o, resp->headers, resp->nheaders,
		   resp->body == HTTP_BODY_CHUNKED, false);
	if (!keep_alive)
		puts_(&o, "Connection: close\r\n");
	else if (client_version_minor == 0)
		puts_(&o, "Connection: keep-alive\r\n");
	put(&o, "\r\n", 2);
	if (o.overflow)
		return -ENOSPC;
	return (long)o.len;
}
