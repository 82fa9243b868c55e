/* Strict HTTP/1.1 head parsing for the proxy. Anything a lenient server
 * might read differently from us (folded lines, bare LF, two lengths,
 * Transfer-Encoding next to Content-Length) is refused, because a proxy that
 * frames a message differently from its upstream is a smuggling channel. */
#include "http_parse.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 token characters. */
static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* Finds the end of the head (after CRLFCRLF). Refuses a bare LF or CR
 * anywhere before it, so the line structure is unambiguous. */
static enum http_parse_result find_head(const char *buf, size_t len,
					size_t *head_len, char *err,
					size_t errlen)
{
	size_t lim = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	for (size_t i = 0; i < lim; i++) {
		char ch = buf[i];
		if (ch == '\n') {
			set_err(err, errlen, "bare LF in the message head");
			return HTTP_BAD;
		}
		if (ch != '\r')
			continue;
		if (i + 1 >= len)
			break; /* the rest of the line is not here yet */
		if (buf[i + 1] != '\n') {
			set_err(err, errlen, "bare CR in the message head");
			return HTTP_BAD;
		}
		if (i + 3 < len && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
			if (i + 4 > HTTP_HEAD_MAX)
				break; /* ends past the limit: too large */
			*head_len = i + 4;
			return HTTP_OK;
		}
		/* CRLF CR at the end: the final LF is not here yet. */
		if (i + 2 < len && buf[i + 2] == '\r' && i + 3 >= len)
			break;
		i++; /* skip the LF of this CRLF */
	}
	if (len >= HTTP_HEAD_MAX) {
		set_err(err, errlen, "message head is larger than 16 KiB");
		return HTTP_TOO_LARGE;
	}
	return HTTP_NEED_MORE;
}

/* Parses header lines from p (first header line) to end (the final CRLF
 * of the blank line excluded). */
static enum http_parse_result parse_fields(const char *p, const char *end,
					   struct http_header *hdrs,
					   size_t *nhdrs, char *err,
					   size_t errlen)
{
	size_t n = 0;
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		if (p[0] == ' ' || p[0] == '\t') {
			set_err(err, errlen,
				"obsolete line folding in a header field");
			return HTTP_BAD;
		}
		const char *colon = p;
		while (colon < eol && is_tchar((unsigned char)*colon))
			colon++;
		if (colon == p || colon >= eol || *colon != ':') {
			set_err(
			    err, errlen,
			    (colon < eol && (*colon == ' ' || *colon == '\t'))
				? "whitespace before the colon of a header "
				  "field"
				: "header field without a valid name");
			return HTTP_BAD;
		}
		const char *v = colon + 1;
		const char *ve = eol;
		for (const char *q = v; q < ve; q++) {
			unsigned char ch = (unsigned char)*q;
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				set_err(err, errlen,
					"control character in a header value");
				return HTTP_BAD;
			}
		}
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (n == HTTP_HEADERS_MAX) {
			set_err(err, errlen, "more than 100 header fields");
			return HTTP_TOO_LARGE;
		}
		hdrs[n].name = p;
		hdrs[n].name_len = (size_t)(colon - p);
		hdrs[n].value = v;
		hdrs[n].value_len = (size_t)(ve - v);
		n++;
		p = eol + 2;
	}
	*nhdrs = n;
	return HTTP_OK;
}

/* Content-Length: 1*DIGIT, no sign, no list, fits in 63 bits. */
static int parse_length(const char *v, size_t len, uint64_t *out)
{
	uint64_t x = 0;
	if (len == 0 || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

/* Walks a comma-separated list of tokens, calling back with each. */
struct list_iter {
	const char *p, *end;
};

static bool list_next(struct list_iter *it, const char **tok, size_t *tlen)
{
	for (;;) {
		while (it->p < it->end &&
		       (*it->p == ' ' || *it->p == '\t' || *it->p == ','))
			it->p++;
		if (it->p >= it->end)
			return false;
		const char *s = it->p;
		while (it->p < it->end && *it->p != ',')
			it->p++;
		const char *e = it->p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s) {
			*tok = s;
			*tlen = (size_t)(e - s);
			return true;
		}
	}
}

/* Framing and connection fields shared by requests and responses. */
struct framing {
	int n_cl, n_te, n_host;
	uint64_t cl;
	bool cl_bad;
	bool te_chunked_seen, te_chunked_last, te_chunked_twice, te_unknown;
	bool te_empty;
	bool conn_close, conn_keep_alive;
	bool conn_names_framing;
	const char *host;
	size_t host_len;
};

/* Connection names a field that frames the message or routes it. Such a
 * field would be hop-by-hop, so the forward path strips it, yet the body
 * is still framed by it here: the next hop would frame the message
 * differently (request smuggling). Tokens are split on comma, space and
 * tab, as fwd_connection_lists splits them, so no spelling passes here and
 * is stripped there. */
static bool names_framing_field(const char *v, size_t vl)
{
	size_t p = 0;
	while (p < vl) {
		while (p < vl && (v[p] == ',' || v[p] == ' ' || v[p] == '\t'))
			p++;
		size_t start = p;
		while (p < vl && v[p] != ',' && v[p] != ' ' && v[p] != '\t')
			p++;
		const char *t = v + start;
		size_t tl = p - start;
		if (ieq(t, tl, "content-length") ||
		    ieq(t, tl, "transfer-encoding") || ieq(t, tl, "host"))
			return true;
	}
	return false;
}

static void scan_framing(const struct http_header *h, size_t n,
			 struct framing *f)
{
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < n; i++) {
		const struct http_header *x = &h[i];
		if (ieq(x->name, x->name_len, "content-length")) {
			f->n_cl++;
			if (parse_length(x->value, x->value_len, &f->cl) != 0)
				f->cl_bad = true;
		} else if (ieq(x->name, x->name_len, "transfer-encoding")) {
			struct list_iter it = {x->value,
					       x->value + x->value_len};
			const char *t;
			size_t tl;
			bool any = false;
			f->n_te++;
			while (list_next(&it, &t, &tl)) {
				any = true;
				/* A coding after chunked means chunked is no
				 * longer last; and chunked only once, adjacent
				 * or not ("chunked, gzip, chunked"). */
				bool chunked = ieq(t, tl, "chunked");
				if (chunked && f->te_chunked_seen)
					f->te_chunked_twice = true;
				f->te_chunked_seen |= chunked;
				if (!chunked && !ieq(t, tl, "gzip") &&
				    !ieq(t, tl, "deflate") &&
				    !ieq(t, tl, "compress") &&
				    !ieq(t, tl, "x-gzip"))
					f->te_unknown = true;
				f->te_chunked_last = chunked;
			}
			if (!any)
				f->te_empty = true;
		} else if (ieq(x->name, x->name_len, "host")) {
			f->n_host++;
			f->host = x->value;
			f->host_len = x->value_len;
		} else if (ieq(x->name, x->name_len, "connection")) {
			struct list_iter it = {x->value,
					       x->value + x->value_len};
			const char *t;
			size_t tl;
			if (names_framing_field(x->value, x->value_len))
				f->conn_names_framing = true;
			while (list_next(&it, &t, &tl)) {
				if (ieq(t, tl, "close"))
					f->conn_close = true;
				else if (ieq(t, tl, "keep-alive"))
					f->conn_keep_alive = true;
			}
		}
	}
}

#define CONN_FRAMING_MSG                                                       \
	"Connection names Content-Length, Transfer-Encoding or Host"

/* "HTTP/1.0" or "HTTP/1.1" at p (8 bytes available). */
static enum http_parse_result parse_version(const char *p, size_t len,
					    int *minor)
{
	if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' ||
	    p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
		return HTTP_BAD;
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
		return HTTP_BAD_VERSION;
	*minor = p[7] - '0';
	return HTTP_OK;
}

/* Port: 1-5 digits, 1..65535. */
static int parse_port(const char *p, size_t len, uint16_t *port)
{
	unsigned v = 0;
	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* An authority "host[:port]" or "[v6][:port]" without userinfo. The host
 * is copied raw (brackets kept for IPv6); the policy engine validates it. */
static int parse_authority(const char *p, size_t len, bool port_required,
			   char *host, size_t hostlen, uint16_t *port)
{
	size_t hl;
	const char *rest;
	if (len == 0 || memchr(p, '@', len) != NULL)
		return -1;
	if (p[0] == '[') {
		const char *close = memchr(p, ']', len);
		if (close == NULL)
			return -1;
		hl = (size_t)(close - p) + 1;
		for (size_t i = 1; i + 1 < hl; i++)
			if (strchr("0123456789abcdefABCDEF:.", p[i]) == NULL)
				return -1;
		if (hl < 3)
			return -1;
	} else {
		const char *colon = memchr(p, ':', len);
		hl = colon != NULL ? (size_t)(colon - p) : len;
		for (size_t i = 0; i < hl; i++) {
			unsigned char ch = (unsigned char)p[i];
			if (ch <= 0x20 || ch >= 0x7f ||
			    strchr("/?#[]\\\"<>{}|^`", ch) != NULL)
				return -1;
		}
	}
	rest = p + hl;
	size_t restlen = len - hl;
	if (hl == 0 || hl >= hostlen)
		return -1;
	if (restlen == 0) {
		if (port_required)
			return -1;
		*port = 80;
	} else if (rest[0] != ':' ||
		   parse_port(rest + 1, restlen - 1, port) != 0) {
		return -1;
	}
	memcpy(host, p, hl);
	host[hl] = '\0';
	return 0;
}

/* Request line: method SP target SP version CRLF, at the start of a head of
 * head_len bytes. Fills method, target and version_minor, and points
 * *line_end at the CR that ends the line. */
static enum http_parse_result
parse_request_line(const char *buf, size_t head_len, struct http_request *req,
		   const char **line_end_out, char *err, size_t errlen)
{
	const char *line_end = memchr(buf, '\r', head_len);
	const char *sp1 = memchr(buf, ' ', (size_t)(line_end - buf));
	if (sp1 == NULL || sp1 == buf) {
		set_err(err, errlen,
			"request line is not 'METHOD TARGET "
			"HTTP/1.x'");
		return HTTP_BAD;
	}
	for (const char *q = buf; q < sp1; q++)
		if (!is_tchar((unsigned char)*q)) {
			set_err(err, errlen, "method is not a token");
			return HTTP_BAD;
		}
	const char *tgt = sp1 + 1;
	const char *sp2 = memchr(tgt, ' ', (size_t)(line_end - tgt));
	if (sp2 == NULL || sp2 == tgt) {
		set_err(err, errlen,
			"request line is not 'METHOD TARGET "
			"HTTP/1.x'");
		return HTTP_BAD;
	}
	for (const char *q = tgt; q < sp2; q++) {
		unsigned char ch = (unsigned char)*q;
		if (ch <= 0x20 || ch >= 0x7f) {
			set_err(err, errlen,
				"request target holds a control, space or "
				"non-ASCII byte");
			return HTTP_BAD;
		}
	}
	enum http_parse_result r = parse_version(
	    sp2 + 1, (size_t)(line_end - sp2 - 1), &req->version_minor);
	if (r != HTTP_OK) {
		set_err(err, errlen,
			r == HTTP_BAD_VERSION
			    ? "only HTTP/1.0 and HTTP/1.1 are spoken here"
			    : "request line is not 'METHOD TARGET HTTP/1.x'");
		return r;
	}
	req->method = buf;
	req->method_len = (size_t)(sp1 - buf);
	req->target = tgt;
	req->target_len = (size_t)(sp2 - tgt);
	*line_end_out = line_end;
	return HTTP_OK;
}

/* Decides how the request body is framed from its parsed headers, refusing
 * every combination two servers could read differently; sets host_header,
 * body, content_length and keep_alive. */
static enum http_parse_result request_framing(struct http_request *req,
					      char *err, size_t errlen)
{
	struct framing f;
	scan_framing(req->headers, req->nheaders, &f);
	if (f.n_host > 1) {
		set_err(err, errlen, "more than one Host header");
		return HTTP_BAD;
	}
	if (f.n_host == 1) {
		req->host_header = f.host;
		req->host_header_len = f.host_len;
	}
	if (f.n_cl > 1 || f.cl_bad) {
		set_err(err, errlen,
			f.cl_bad ? "Content-Length is not a plain number"
				 : "more than one Content-Length");
		return HTTP_BAD;
	}
	if (f.conn_names_framing) {
		set_err(err, errlen, CONN_FRAMING_MSG);
		return HTTP_BAD;
	}
	if (f.n_te > 0 && f.n_cl > 0) {
		set_err(err, errlen,
			"Transfer-Encoding together with Content-Length");
		return HTTP_BAD;
	}
	if (f.n_te > 0) {
		if (req->version_minor == 0) {
			set_err(err, errlen,
				"Transfer-Encoding in an HTTP/1.0 request");
			return HTTP_BAD;
		}
		if (f.te_empty || f.te_chunked_twice || !f.te_chunked_last) {
			set_err(err, errlen,
				"Transfer-Encoding must end in a single "
				"chunked");
			return HTTP_BAD;
		}
		if (f.te_unknown) {
			set_err(err, errlen, "unknown transfer coding");
			return HTTP_NOT_IMPLEMENTED;
		}
		req->body = HTTP_BODY_CHUNKED;
	} else if (f.n_cl == 1) {
		req->body = f.cl > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
		req->content_length = f.cl;
	}
	req->keep_alive = req->version_minor == 1
			      ? !f.conn_close
			      : f.conn_keep_alive && !f.conn_close;
	return HTTP_OK;
}

/* absolute-form "http://authority[path]": fills host, port and path (a
 * lone query gets its leading '/'). */
static enum http_parse_result parse_absolute_target(struct http_request *req,
						    char *err, size_t errlen)
{
	const char *tgt = req->target;
	size_t tlen = req->target_len;
	const char *a = tgt + 7;
	const char *tend = tgt + tlen;
	const char *ae = a;
	while (ae < tend && *ae != '/' && *ae != '?' && *ae != '#')
		ae++;
	if (memchr(tgt, '#', tlen) != NULL) {
		set_err(err, errlen, "URI with a fragment");
		return HTTP_BAD;
	}
	if (parse_authority(a, (size_t)(ae - a), false, req->host,
			    sizeof req->host, &req->port) != 0) {
		set_err(err, errlen,
			"URI authority is not host[:port] (userinfo "
			"is refused)");
		return HTTP_BAD;
	}
	size_t plen = (size_t)(tend - ae);
	size_t pre = (plen == 0 || *ae == '?') ? 1 : 0;
	if (plen + pre >= sizeof req->path) {
		set_err(err, errlen, "URI path is longer than 2 KiB");
		return HTTP_TOO_LARGE;
	}
	if (pre)
		req->path[0] = '/';
	memcpy(req->path + pre, ae, plen);
	req->path[plen + pre] = '\0';
	req->is_absolute = true;
	return HTTP_OK;
}

/* Target forms: CONNECT's authority-form, http:// absolute-form; https://
 * is refused, origin- and asterisk-form are left to the caller. */
static enum http_parse_result parse_target(struct http_request *req, char *err,
					   size_t errlen)
{
	const char *tgt = req->target;
	size_t tlen = req->target_len;
	if (ieq(req->method, req->method_len, "CONNECT")) {
		req->is_connect = true;
		if (parse_authority(tgt, tlen, true, req->host,
				    sizeof req->host, &req->port) != 0) {
			set_err(err, errlen, "CONNECT target is not host:port");
			return HTTP_BAD;
		}
		if (req->body != HTTP_BODY_NONE) {
			set_err(err, errlen, "CONNECT request with a body");
			return HTTP_BAD;
		}
		return HTTP_OK;
	}
	if (tlen >= 7 && strncasecmp(tgt, "http://", 7) == 0)
		return parse_absolute_target(req, err, errlen);
	if (tlen >= 8 && strncasecmp(tgt, "https://", 8) == 0) {
		set_err(err, errlen,
			"https:// URIs are not forwarded; use CONNECT");
		return HTTP_NOT_IMPLEMENTED;
	}
	/* origin-form or asterisk-form: parsed, the caller refuses it. */
	return HTTP_OK;
}

enum http_parse_result http_parse_request(const char *buf, size_t len,
					  struct http_request *req, char *err,
					  size_t errlen)
{
	size_t head_len = 0;
	const char *line_end = NULL;
	memset(req, 0, sizeof *req);
	set_err(err, errlen, "");
	enum http_parse_result r = find_head(buf, len, &head_len, err, errlen);
	if (r != HTTP_OK)
		return r;
	r = parse_request_line(buf, head_len, req, &line_end, err, errlen);
	if (r != HTTP_OK)
		return r;
	req->head_len = head_len;

	r = parse_fields(line_end + 2, buf + head_len - 2, req->headers,
			 &req->nheaders, err, errlen);
	if (r != HTTP_OK)
		return r;
	r = request_framing(req, err, errlen);
	if (r != HTTP_OK)
		return r;
	return parse_target(req, err, errlen);
}

enum http_parse_result http_parse_response(const char *buf, size_t len,
					   bool request_method_head,
					   struct http_response *resp,
					   char *err, size_t errlen)
{
	size_t head_len = 0;
	memset(resp, 0, sizeof *resp);
	set_err(err, errlen, "");
	enum http_parse_result r = find_head(buf, len, &head_len, err, errlen);
	if (r != HTTP_OK)
		return r;
	const char *line_end = memchr(buf, '\r', head_len);
	size_t ll = (size_t)(line_end - buf);
	/* HTTP/1.x SP 3DIGIT SP reason */
	if (ll < 12 || buf[8] != ' ' || (ll > 12 && buf[12] != ' ')) {
		set_err(err, errlen,
			"status line is not 'HTTP/1.x NNN reason'");
		return HTTP_BAD;
	}
	r = parse_version(buf, 8, &resp->version_minor);
	if (r != HTTP_OK) {
		set_err(err, errlen,
			"status line is not 'HTTP/1.x NNN reason'");
		return r;
	}
	int status = 0;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9') {
			set_err(err, errlen, "status code is not three digits");
			return HTTP_BAD;
		}
		status = status * 10 + (buf[i] - '0');
	}
	if (status < 100 || status > 599) {
		set_err(err, errlen, "status code out of range");
		return HTTP_BAD;
	}
	for (size_t i = 12; i < ll; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			set_err(err, errlen, "control character in the reason");
			return HTTP_BAD;
		}
	}
	resp->status = status;
	resp->head_len = head_len;
	r = parse_fields(line_end + 2, buf + head_len - 2, resp->headers,
			 &resp->nheaders, err, errlen);
	if (r != HTTP_OK)
		return r;

	struct framing f;
	scan_framing(resp->headers, resp->nheaders, &f);
	if (f.n_cl > 1 || f.cl_bad) {
		set_err(err, errlen, "bad or repeated Content-Length");
		return HTTP_BAD;
	}
	if (f.conn_names_framing) {
		set_err(err, errlen, CONN_FRAMING_MSG);
		return HTTP_BAD;
	}
	if (f.n_te > 0 && f.n_cl > 0) {
		set_err(err, errlen,
			"Transfer-Encoding together with Content-Length");
		return HTTP_BAD;
	}
	bool no_body = request_method_head || (status >= 100 && status < 200) ||
		       status == 204 || status == 304;
	if (no_body) {
		resp->body = HTTP_BODY_NONE;
	} else if (f.n_te > 0) {
		if (f.te_chunked_twice) {
			set_err(err, errlen, "chunked applied twice");
			return HTTP_BAD;
		}
		/* Not chunked last: the body runs until the server closes. */
		resp->body = (f.te_chunked_last && resp->version_minor == 1)
				 ? HTTP_BODY_CHUNKED
				 : HTTP_BODY_CLOSE;
	} else if (f.n_cl == 1) {
		resp->body = f.cl > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
		resp->content_length = f.cl;
	} else {
		resp->body = HTTP_BODY_CLOSE;
	}
	resp->keep_alive =
	    resp->body != HTTP_BODY_CLOSE &&
	    (resp->version_minor == 1 ? !f.conn_close
				      : f.conn_keep_alive && !f.conn_close);
	return HTTP_OK;
}

bool http_is_hop_by_hop(const char *name, size_t name_len)
{
	static const char *const hop[] = {
	    "connection",
	    "keep-alive",
	    "proxy-connection",
	    "proxy-authorization",
	    "proxy-authenticate",
	    "te",
	    "trailer",
	    "transfer-encoding",
	    "upgrade",
	};
	for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
		if (ieq(name, name_len, hop[i]))
			return true;
	return false;
}

/* Chunked framing states. */
enum {
	CK_SIZE = 0,   /* hex digits of the chunk size */
	CK_EXT,	       /* after the size: extensions up to CR */
	CK_SIZE_LF,    /* LF ending the size line */
	CK_DATA,       /* chunk data */
	CK_DATA_CR,    /* CR after the data */
	CK_DATA_LF,    /* LF after the data */
	CK_TRAILER,    /* start of a trailer line (or the final CRLF) */
	CK_TRAILER_LN, /* inside a trailer field line */
	CK_TRAILER_LF, /* LF ending a trailer field line */
	CK_FINAL_LF,   /* LF of the final empty line */
};

/* Size lines and trailer lines longer than this are refused. */
#define CHUNK_LINE_MAX 4096

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof *c);
	c->state = CK_SIZE;
}

int http_hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

long http_chunked_feed(struct http_chunked *c, const char *buf, size_t len)
{
	size_t i = 0;
	if (len > (size_t)LONG_MAX)
		len = (size_t)LONG_MAX;
	while (i < len && !c->done) {
		char ch = buf[i];
		switch (c->state) {
		case CK_SIZE: {
			int h = http_hex_digit(ch);
			if (h >= 0) {
				if (c->remaining > (UINT64_MAX >> 4))
					return -1;
				c->remaining =
				    (c->remaining << 4) | (uint64_t)h;
			} else if (c->line_len > 0 && ch == '\r') {
				c->state = CK_SIZE_LF;
			} else if (c->line_len > 0 &&
				   (ch == ';' || ch == ' ' || ch == '\t')) {
				c->state = CK_EXT;
			} else {
				return -1; /* no digits, or a stray byte */
			}
			if (++c->line_len > CHUNK_LINE_MAX)
				return -1;
			i++;
			break;
		}
		case CK_EXT:
			if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if (ch == '\n' ||
				 ((unsigned char)ch < 0x20 && ch != '\t') ||
				 ch == 0x7f)
				return -1;
			if (++c->line_len > CHUNK_LINE_MAX)
				return -1;
			i++;
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->line_len = 0;
			c->state = c->remaining == 0 ? CK_TRAILER : CK_DATA;
			break;
		case CK_DATA: {
			size_t avail = len - i;
			size_t take =
			    c->remaining < avail ? (size_t)c->remaining : avail;
			i += take;
			c->remaining -= take;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			break;
		}
		case CK_DATA_CR:
			if (ch != '\r')
				return -1;
			i++;
			c->state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->line_len = 0;
			c->state = CK_SIZE;
			break;
		case CK_TRAILER:
			i++;
			if (ch == '\r') {
				c->state = CK_FINAL_LF;
			} else if (ch == '\n' || ch == ' ' || ch == '\t') {
				return -1; /* bare LF or folded trailer */
			} else {
				c->line_len = 1;
				c->state = CK_TRAILER_LN;
			}
			break;
		case CK_TRAILER_LN:
			i++;
			if (ch == '\r')
				c->state = CK_TRAILER_LF;
			else if (ch == '\n' ||
				 ((unsigned char)ch < 0x20 && ch != '\t') ||
				 ch == 0x7f || ++c->line_len > CHUNK_LINE_MAX)
				return -1;
			break;
		case CK_TRAILER_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->state = CK_TRAILER;
			break;
		case CK_FINAL_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->done = true;
			break;
		default:
			return -1;
		}
	}
	return (long)i;
}
