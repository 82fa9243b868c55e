/* Request rules of inspected tunnels: an allow rule's `http:` list of
 * {methods, paths} entries, first match wins. Paths are matched segment by
 * segment: `*` within a segment never crosses '/', a `**` segment spans
 * any number of segments. Matching is linear in pattern x path segments
 * (no recursion on input). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

/* Segments considered per path; a longer path is refused (no entry
 * matches it). */
#define SEGS_MAX 256

void policy_http_free_rule(struct prule *r)
{
	for (size_t i = 0; i < r->nhttp; i++) {
		struct phttp *h = &r->http[i];
		for (size_t j = 0; j < h->nmethods; j++)
			free(h->methods[j]);
		for (size_t j = 0; j < h->npaths; j++)
			free(h->paths[j]);
		free(h->methods);
		free(h->paths);
		free(h->label);
	}
	free(r->http);
	r->http = NULL;
	r->nhttp = 0;
	free(r->cred);
	r->cred = NULL;
}

bool policy_http_glob_ok(const char *glob, char *msg, size_t msglen)
{
	if (glob[0] != '/') {
		snprintf(msg, msglen, "a path must start with '/'");
		return false;
	}
	for (const char *p = glob; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#') {
			snprintf(msg, msglen,
				 "a path may not hold spaces, controls, '?' "
				 "or '#' (the query is not matched)");
			return false;
		}
		if (p[0] == '*' && p[1] == '*' &&
		    (p[-1] != '/' || (p[2] != '/' && p[2] != '\0'))) {
			snprintf(msg, msglen,
				 "'**' must be a whole segment (\"/a/**/b\")");
			return false;
		}
	}
	return true;
}

/* One segment against one glob segment: `*` matches any run of bytes
 * (segments hold no '/'). Classic greedy match with one backtrack point,
 * linear in practice and quadratic at worst on bounded input. */
static bool seg_match(const char *g, size_t gl, const char *s, size_t sl)
{
	size_t gi = 0, si = 0, star = (size_t)-1, mark = 0;
	while (si < sl) {
		if (gi < gl && g[gi] == '*') {
			star = gi++;
			mark = si;
		} else if (gi < gl && g[gi] == s[si]) {
			gi++;
			si++;
		} else if (star != (size_t)-1) {
			gi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (gi < gl && g[gi] == '*')
		gi++;
	return gi == gl;
}

struct segs {
	const char *p[SEGS_MAX];
	size_t len[SEGS_MAX];
	size_t n;
};

/* Split "/a/b" (up to end) into segments after the leading '/'. */
static bool split(const char *s, size_t end, struct segs *out)
{
	out->n = 0;
	size_t i = 1, start = 1;
	for (;; i++) {
		if (i == end || s[i] == '/') {
			if (out->n == SEGS_MAX)
				return false;
			out->p[out->n] = s + start;
			out->len[out->n] = i - start;
			out->n++;
			start = i + 1;
			if (i == end)
				return true;
		}
	}
}

static bool is_globstar(const struct segs *g, size_t i)
{
	return g->len[i] == 2 && memcmp(g->p[i], "**", 2) == 0;
}

/* Segment-level wildcard match: `**` segments match zero or more path
 * segments, every other segment exactly one (via seg_match). The greedy
 * algorithm with one backtrack point is exact here because every
 * non-`**` element matches exactly one segment. */
static bool glob_match(const char *glob, const struct segs *path)
{
	struct segs g;
	if (!split(glob, strlen(glob), &g))
		return false;
	size_t gi = 0, si = 0, star = (size_t)-1, mark = 0;
	while (si < path->n) {
		if (gi < g.n && is_globstar(&g, gi)) {
			star = gi++;
			mark = si;
		} else if (gi < g.n && seg_match(g.p[gi], g.len[gi],
						 path->p[si], path->len[si])) {
			gi++;
			si++;
		} else if (star != (size_t)-1) {
			gi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (gi < g.n && is_globstar(&g, gi))
		gi++;
	return gi == g.n;
}

/* A path the upstream could read differently from the glob: a "." or
 * ".." segment, or '/', '\\' or '.' percent-encoded, or a backslash. */
static bool path_ambiguous(const struct segs *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const char *p = s->p[i];
		size_t l = s->len[i];
		if ((l == 1 && p[0] == '.') ||
		    (l == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		for (size_t j = 0; j < l; j++) {
			if (p[j] == '\\')
				return true;
			if (p[j] == '%' && j + 2 < l) {
				char a = p[j + 1], b = (char)(p[j + 2] | 0x20);
				if ((a == '2' && (b == 'f' || b == 'e')) ||
				    (a == '5' && b == 'c'))
					return true;
			}
		}
	}
	return false;
}

const struct phttp *policy_http_find(const struct prule *r, const char *method,
				     const char *path, bool *method_hit)
{
	*method_hit = false;
	if (path[0] != '/')
		return NULL;
	size_t end = strcspn(path, "?");
	struct segs s;
	if (!split(path, end, &s) || path_ambiguous(&s)) {
		*method_hit = true; /* judged as a path problem */
		return NULL;
	}
	for (size_t i = 0; i < r->nhttp; i++) {
		const struct phttp *h = &r->http[i];
		bool m = h->nmethods == 0;
		for (size_t j = 0; !m && j < h->nmethods; j++)
			m = strcmp(h->methods[j], method) == 0;
		if (!m)
			continue;
		*method_hit = true;
		if (h->npaths == 0)
			return h;
		for (size_t j = 0; j < h->npaths; j++)
			if (glob_match(h->paths[j], &s))
				return h;
	}
	return NULL;
}

static const struct prule *rule_of(const struct policy *p, const char *label)
{
	if (label == NULL)
		return NULL;
	for (size_t i = 0; i < p->nrules; i++)
		if (p->rules[i].label == label)
			return &p->rules[i];
	return NULL;
}

int policy_http_match(const struct policy *p, const char *host, uint16_t port,
		      const char *method, const char *path,
		      struct policy_http_decision *d)
{
	struct policy_decision hd;
	policy_match(p, host, port, &hd);
	d->verdict = hd.verdict;
	d->reason = hd.reason;
	d->rule = hd.rule;
	d->inspect = hd.inspect;
	d->websocket = false;
	if (hd.verdict != POLICY_ALLOW)
		return 0;
	const struct prule *r = rule_of(p, hd.rule);
	if (r == NULL || r->nhttp == 0)
		return 0;
	bool method_hit;
	const struct phttp *h = policy_http_find(r, method, path, &method_hit);
	if (h != NULL) {
		d->rule = h->label;
		d->websocket = h->websocket;
		return 0;
	}
	d->verdict = POLICY_DENY;
	d->reason = method_hit ? "path_not_allowed" : "method_not_allowed";
	return 0;
}

size_t policy_inspect_hosts(const struct policy *p, const char **out,
			    size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < p->nrules; i++) {
		if (!p->rules[i].inspect)
			continue;
		if (n < max)
			out[n] = p->rules[i].text;
		n++;
	}
	return n;
}

int policy_explain_request(const struct policy *p, const char *host,
			   uint16_t port, const char *method, const char *path,
			   char *buf, size_t buflen)
{
	int rc = policy_explain(p, host, port, buf, buflen);
	if (rc != 0)
		return rc;
	size_t off = strlen(buf);
	struct policy_http_decision d;
	policy_http_match(p, host, port, method, path, &d);
	char qm[40], qp[200];
	policy_quote(method, strlen(method), qm, sizeof qm);
	policy_quote(path, strlen(path), qp, sizeof qp);
	struct policy_decision hd;
	policy_match(p, host, port, &hd);
	if (hd.verdict != POLICY_ALLOW) {
		policy_appendf(buf, buflen, &off,
			       "http:    %s %s not reached (%s)\n", qm, qp,
			       "the host is refused");
	} else if (!hd.inspect) {
		policy_appendf(
		    buf, buflen, &off,
		    "inspect: no (the tunnel is not decrypted: method "
		    "and path are not seen)\n");
	} else {
		const struct prule *r = rule_of(p, hd.rule);
		policy_appendf(
		    buf, buflen, &off,
		    "inspect: yes (TLS terminated with the session CA)\n");
		policy_appendf(buf, buflen, &off, "method:  %s\npath:    %s\n",
			       qm, qp);
		if (r != NULL && r->nhttp == 0)
			policy_appendf(
			    buf, buflen, &off,
			    "http:    ALLOW, the rule has no http: list "
			    "(any method, any path)\n");
		else if (d.verdict == POLICY_ALLOW)
			policy_appendf(buf, buflen, &off,
				       "http:    ALLOW by %s\n", d.rule);
		if (d.verdict == POLICY_ALLOW)
			policy_appendf(
			    buf, buflen, &off, "websocket: %s\n",
			    d.websocket
				? "yes (the entry says websocket: true: a "
				  "WebSocket handshake is passed on; after the "
				  "101 its frames are relayed uninspected)"
				: "no (an Upgrade request here is refused "
				  "403)");
		else
			policy_appendf(buf, buflen, &off,
				       "http:    DENY %s (no http: entry of %s "
				       "matches; first match wins)\n",
				       d.reason, hd.rule);
	}
	return off >= buflen ? -ENOSPC : 0;
}
