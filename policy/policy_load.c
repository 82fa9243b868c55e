/* Loader for policy.yaml version 1: libyaml builds the node tree, this file
 * walks it against the fixed schema (no recursion on input, aliases
 * refused), validates every value and reports the first problem as
 * "FILE:LINE:COL: message". A policy is returned only when all of it is valid.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "policy_int.h"

#define POLICY_FILE_MAX		   (64u * 1024u * 1024u)
#define POLICY_RULES_MAX	   1000000u
#define POLICY_MAX_CONNECTIONS_MAX 1000000u

struct loader {
	const char *name;
	const char *text;
	size_t len;
	yaml_document_t *doc;
	bool *seen; /* per node: visited, to refuse aliases */
	size_t nnodes;
	char *err;
	size_t errlen;
	struct policy *p;
	size_t cap;
	uint16_t *defports;
	size_t ndefports;
};

static void lerr(struct loader *L, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lerr(struct loader *L, yaml_mark_t m, const char *fmt, ...)
{
	char msg[POLICY_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (L->err != NULL && L->errlen > 0)
		snprintf(L->err, L->errlen, "%s:%zu:%zu: %s", L->name,
			 m.line + 1, m.column + 1, msg);
}

/* Fetch a node, refusing a second visit: with aliases a small file could
 * expand into an exponential walk, and the schema never needs them. */
static yaml_node_t *node_get(struct loader *L, int id, yaml_mark_t at, int *rc)
{
	yaml_node_t *n = yaml_document_get_node(L->doc, id);
	if (n == NULL || id < 1 || (size_t)id > L->nnodes) {
		lerr(L, at, "internal YAML error (missing node)");
		*rc = -EINVAL;
		return NULL;
	}
	if (L->seen[id - 1]) {
		lerr(L, at, "YAML aliases are not supported in a policy");
		*rc = -EINVAL;
		return NULL;
	}
	L->seen[id - 1] = true;
	return n;
}

static const char *kind_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

static bool scalar_is(const yaml_node_t *n, const char *s)
{
	size_t l = strlen(s);
	return n->type == YAML_SCALAR_NODE && n->data.scalar.length == l &&
	       memcmp(n->data.scalar.value, s, l) == 0;
}

static bool is_null(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE &&
	       n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (n->data.scalar.length == 0 || scalar_is(n, "~") ||
		scalar_is(n, "null") || scalar_is(n, "Null") ||
		scalar_is(n, "NULL"));
}

static void quote_scalar(const yaml_node_t *n, char *out, size_t outlen)
{
	if (n->type != YAML_SCALAR_NODE) {
		snprintf(out, outlen, "%s", kind_name(n));
		return;
	}
	policy_quote((const char *)n->data.scalar.value, n->data.scalar.length,
		     out, outlen);
}

/* For messages about numbers: a quoted scalar keeps its quotes, so
 * "bad port '"443"'" shows why a number-looking value was refused. */
static void quote_number(const yaml_node_t *n, char *out, size_t outlen)
{
	char q[72];
	quote_scalar(n, q, sizeof q);
	if (n->type == YAML_SCALAR_NODE &&
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		snprintf(out, outlen, "\"%s\"", q);
	else
		snprintf(out, outlen, "%s", q);
}

/* Plain decimal integer, no sign, no leading zeros beyond "0". */
static bool parse_uint(const yaml_node_t *n, unsigned long max,
		       unsigned long *out)
{
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const unsigned char *s = n->data.scalar.value;
	size_t len = n->data.scalar.length;
	if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static int parse_duration(struct loader *L, const yaml_node_t *n,
			  const char *key, unsigned *out)
{
	char q[80];
	quote_number(n, q, sizeof q);
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		goto bad;
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	size_t d = 0;
	while (d < len && s[d] >= '0' && s[d] <= '9')
		d++;
	if (d == 0 || d > 10)
		goto bad;
	unsigned long long v = 0;
	for (size_t i = 0; i < d; i++)
		v = v * 10 + (unsigned long long)(s[i] - '0');
	const char *unit = s + d;
	size_t ul = len - d;
	unsigned long long mult;
	if (ul == 2 && memcmp(unit, "ms", 2) == 0)
		mult = 1;
	else if (ul == 1 && unit[0] == 's')
		mult = 1000;
	else if (ul == 1 && unit[0] == 'm')
		mult = 60000;
	else if (ul == 1 && unit[0] == 'h')
		mult = 3600000;
	else
		goto bad;
	if (v == 0) {
		lerr(L, n->start_mark, "%s must be greater than zero, got '%s'",
		     key, q);
		return -EINVAL;
	}
	if (v * mult > UINT_MAX) {
		lerr(L, n->start_mark, "%s '%s' is too long (at most 1193h)",
		     key, q);
		return -EINVAL;
	}
	*out = (unsigned)(v * mult);
	return 0;
bad:
	lerr(L, n->start_mark,
	     "bad duration '%s' for %s (expected an integer followed by ms, s, "
	     "m or h, e.g. 10s)",
	     q, key);
	return -EINVAL;
}

/* A byte count: a whole number with B, KiB, MiB or GiB (or none: bytes),
 * or `unlimited`. Zero is refused: a budget of nothing is a deny rule. */
static int parse_size(struct loader *L, const yaml_node_t *n, const char *key,
		      uint64_t *out)
{
	char q[80];
	quote_number(n, q, sizeof q);
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		goto bad;
	if (scalar_is(n, "unlimited")) {
		*out = POLICY_BUDGET_UNLIMITED;
		return 0;
	}
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length, d = 0;
	while (d < len && s[d] >= '0' && s[d] <= '9')
		d++;
	if (d == 0 || d > 15)
		goto bad;
	uint64_t v = 0;
	for (size_t i = 0; i < d; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	static const char *const units[] = {"", "B", "KiB", "MiB", "GiB"};
	static const unsigned shifts[] = {0, 0, 10, 20, 30};
	int u = -1;
	for (int i = 0; i < 5; i++)
		if (strlen(units[i]) == len - d &&
		    memcmp(s + d, units[i], len - d) == 0)
			u = i;
	if (u < 0)
		goto bad;
	if (v == 0) {
		lerr(L, n->start_mark,
		     "%s must be greater than zero, got '%s' (write "
		     "unlimited for no budget)",
		     key, q);
		return -EINVAL;
	}
	if (v > (POLICY_BUDGET_UNLIMITED - 1) >> shifts[u]) {
		lerr(L, n->start_mark, "%s '%s' is too large", key, q);
		return -EINVAL;
	}
	*out = v << shifts[u];
	return 0;
bad:
	lerr(L, n->start_mark,
	     "bad size '%s' for %s (expected an integer with B, KiB, MiB or "
	     "GiB, e.g. 64MiB, or unlimited)",
	     q, key);
	return -EINVAL;
}

static int cmp_u16(const void *a, const void *b)
{
	uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
	return (x > y) - (x < y);
}

static int parse_ports(struct loader *L, const yaml_node_t *n, uint16_t **out,
		       size_t *nout)
{
	int rc = 0;
	if (n->type != YAML_SEQUENCE_NODE) {
		lerr(L, n->start_mark,
		     "ports must be a list of port numbers, e.g. [443], not %s",
		     kind_name(n));
		return -EINVAL;
	}
	yaml_node_item_t *it = n->data.sequence.items.start;
	size_t cnt = (size_t)(n->data.sequence.items.top - it);
	if (cnt == 0) {
		lerr(L, n->start_mark, "ports must not be empty");
		return -EINVAL;
	}
	if (cnt > 65535) {
		lerr(L, n->start_mark, "too many ports");
		return -EINVAL;
	}
	uint16_t *ports = calloc(cnt, sizeof *ports);
	/* one bit per port: duplicate detection stays linear */
	uint8_t *seen = calloc(65536 / 8, 1);
	if (ports == NULL || seen == NULL) {
		free(ports);
		free(seen);
		lerr(L, n->start_mark, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *pn = node_get(L, it[i], n->start_mark, &rc);
		if (pn == NULL)
			goto fail;
		unsigned long v;
		if (!parse_uint(pn, 65535, &v) || v == 0) {
			char q[80];
			quote_number(pn, q, sizeof q);
			lerr(L, pn->start_mark,
			     "bad port '%s' (expected an integer 1..65535)", q);
			rc = -EINVAL;
			goto fail;
		}
		if (seen[v / 8] & (1u << (v % 8))) {
			lerr(L, pn->start_mark, "port %lu listed twice", v);
			rc = -EINVAL;
			goto fail;
		}
		seen[v / 8] = (uint8_t)(seen[v / 8] | (1u << (v % 8)));
		ports[i] = (uint16_t)v;
	}
	qsort(ports, cnt, sizeof *ports, cmp_u16);
	free(seen);
	*out = ports;
	*nout = cnt;
	return 0;
fail:
	free(ports);
	free(seen);
	return rc;
}

/* "ADDR/PLEN" as written in a rule (q is its quoted text, slash points into
 * s): a network address with no host bits, filling family/addr/plen. */
static int parse_rule_cidr(struct loader *L, const yaml_node_t *n,
			   const char *s, size_t len, const char *slash,
			   const char *q, struct prule *r)
{
	char norm[POLICY_HOST_MAX + 1];
	char herr[POLICY_ERR_MAX];
	size_t alen = (size_t)(slash - s);
	const char *pl = slash + 1;
	size_t pll = len - alen - 1;
	if (policy_host_normalize(s, alen, norm, sizeof norm, herr,
				  sizeof herr) != 0 ||
	    !policy_ip_parse(norm, &r->family, r->addr)) {
		lerr(L, n->start_mark,
		     "bad CIDR '%s': the part before '/' must be an "
		     "IPv4 or IPv6 address",
		     q);
		return -EINVAL;
	}
	unsigned maxp = r->family == 4 ? 32 : 128;
	unsigned v = 0;
	bool ok = pll > 0 && pll <= 3 && !(pll > 1 && pl[0] == '0');
	for (size_t i = 0; ok && i < pll; i++) {
		if (pl[i] < '0' || pl[i] > '9')
			ok = false;
		else
			v = v * 10 + (unsigned)(pl[i] - '0');
	}
	if (!ok || v > maxp) {
		lerr(L, n->start_mark,
		     "bad CIDR '%s': prefix length must be 0..%u", q, maxp);
		return -EINVAL;
	}
	unsigned full = v / 8, rem = v % 8;
	bool hostbits = false;
	for (unsigned i = full; i < 16; i++) {
		unsigned keep =
		    (i == full && rem != 0) ? (0xffu << (8 - rem)) & 0xffu : 0u;
		if ((r->addr[i] & ~keep & 0xffu) != 0)
			hostbits = true;
	}
	if (hostbits) {
		lerr(L, n->start_mark,
		     "bad CIDR '%s': address has bits set beyond the "
		     "/%u prefix",
		     q, v);
		return -EINVAL;
	}
	r->plen = (uint8_t)v;
	r->kind = PRULE_IP;
	return 0;
}

/* The rule's key is its normalised host; r->kind is already set. */
static int set_rule_key(struct loader *L, const yaml_node_t *n, struct prule *r,
			const char *norm)
{
	r->key = strdup(norm);
	if (r->key == NULL) {
		lerr(L, n->start_mark, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* "*.DOMAIN" as written in a rule (q is its quoted text): the domain after
 * the leading "*." must be a name, not an address or another wildcard. */
static int parse_rule_wildcard(struct loader *L, const yaml_node_t *n,
			       const char *s, size_t len, const char *q,
			       struct prule *r)
{
	char norm[POLICY_HOST_MAX + 1];
	char herr[POLICY_ERR_MAX];
	if (policy_host_norm_why(s + 2, len - 2, norm, sizeof norm, herr,
				 sizeof herr) != 0) {
		lerr(L, n->start_mark, "bad wildcard host '%s': %s", q, herr);
		return -EINVAL;
	}
	if (policy_host_is_ip_literal(norm)) {
		lerr(L, n->start_mark,
		     "bad wildcard host '%s': a wildcard needs a "
		     "domain name, not an address",
		     q);
		return -EINVAL;
	}
	if (strchr(norm, '*') != NULL) {
		lerr(L, n->start_mark, "bad wildcard host '%s'", q);
		return -EINVAL;
	}
	r->kind = PRULE_WILDCARD;
	return set_rule_key(L, n, r, norm);
}

/* A plain host name or IP address as written in a rule (q is its quoted
 * text); an address becomes a full-length IP rule. */
static int parse_rule_name(struct loader *L, const yaml_node_t *n,
			   const char *s, size_t len, const char *q,
			   struct prule *r)
{
	char norm[POLICY_HOST_MAX + 1];
	char herr[POLICY_ERR_MAX];
	const char *colon = memchr(s, ':', len);
	if (colon != NULL &&
	    memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) == NULL &&
	    colon + 1 < s + len &&
	    strspn(colon + 1, "0123456789") == len - (size_t)(colon - s) - 1) {
		/* "github.com:443": a common slip, worth its own
		 * message. */
		lerr(L, n->start_mark,
		     "bad host '%s': write the port in 'ports: [%s]', "
		     "not after the host",
		     q, colon + 1);
		return -EINVAL;
	}
	if (memchr(s, '*', len) != NULL) {
		lerr(L, n->start_mark,
		     "bad host '%s': '*' is only allowed as a leading "
		     "'*.'",
		     q);
		return -EINVAL;
	}
	if (policy_host_normalize(s, len, norm, sizeof norm, herr,
				  sizeof herr) != 0) {
		/* herr already names the host. */
		lerr(L, n->start_mark, "%s", herr);
		return -EINVAL;
	}
	if (policy_ip_parse(norm, &r->family, r->addr)) {
		r->kind = PRULE_IP;
		r->plen = r->family == 4 ? 32 : 128;
		return 0;
	}
	r->kind = PRULE_NAME;
	return set_rule_key(L, n, r, norm);
}

/* Validate a host as written in a rule and fill kind/key/addr. */
static int parse_rule_host(struct loader *L, const yaml_node_t *n,
			   struct prule *r)
{
	char q[80];
	if (n->type != YAML_SCALAR_NODE || is_null(n)) {
		lerr(L, n->start_mark,
		     "host must be a host name, IP or CIDR, not %s",
		     is_null(n) ? "empty" : kind_name(n));
		return -EINVAL;
	}
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	quote_scalar(n, q, sizeof q);
	/* The rule is located at its host, the text a user searches for. */
	r->line = (unsigned)n->start_mark.line + 1;
	r->col = (unsigned)n->start_mark.column + 1;
	r->text = malloc(len + 1);
	if (r->text == NULL) {
		lerr(L, n->start_mark, "out of memory");
		return -ENOMEM;
	}
	memcpy(r->text, s, len);
	r->text[len] = '\0';
	const char *slash = memchr(s, '/', len);
	if (slash != NULL)
		return parse_rule_cidr(L, n, s, len, slash, q, r);
	if (len >= 2 && s[0] == '*' && s[1] == '.')
		return parse_rule_wildcard(L, n, s, len, q, r);
	return parse_rule_name(L, n, s, len, q, r);
}

static struct prule *new_rule(struct loader *L, yaml_mark_t at)
{
	struct policy *p = L->p;
	if (p->nrules == L->cap) {
		if (p->nrules >= POLICY_RULES_MAX) {
			lerr(L, at, "too many rules (at most %u)",
			     POLICY_RULES_MAX);
			return NULL;
		}
		size_t nc = L->cap ? L->cap * 2 : 64;
		struct prule *nr = realloc(p->rules, nc * sizeof *nr);
		if (nr == NULL) {
			lerr(L, at, "out of memory");
			return NULL;
		}
		p->rules = nr;
		L->cap = nc;
	}
	struct prule *r = &p->rules[p->nrules++];
	memset(r, 0, sizeof *r);
	r->tls = true;
	r->line = (unsigned)at.line + 1;
	r->col = (unsigned)at.column + 1;
	return r;
}

/* ---- inspected tunnels: `inspect` and `http` on an allow rule ---- */

#define HTTP_ENTRIES_MAX 1000u
#define HTTP_ITEMS_MAX	 100u

static bool method_ok(const char *m, char *msg, size_t msglen)
{
	size_t n = strlen(m);
	bool ok = n > 0 && n <= 20;
	for (size_t i = 0; ok && i < n; i++)
		ok = m[i] >= 'A' && m[i] <= 'Z';
	if (!ok)
		snprintf(msg, msglen,
			 "a method is 1..20 upper-case letters (GET, POST)");
	return ok;
}

/* A list of strings, each checked by ok(); NULL-free on error. */
static int parse_str_list(struct loader *L, const yaml_node_t *n,
			  const char *what, char ***out, size_t *nout,
			  bool (*ok)(const char *, char *, size_t))
{
	int rc = 0;
	if (n->type != YAML_SEQUENCE_NODE ||
	    n->data.sequence.items.top == n->data.sequence.items.start) {
		lerr(L, n->start_mark, "'%s' must be a non-empty list, not %s",
		     what, kind_name(n));
		return -EINVAL;
	}
	size_t cnt =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt > HTTP_ITEMS_MAX) {
		lerr(L, n->start_mark, "'%s' lists more than %u items", what,
		     HTTP_ITEMS_MAX);
		return -EINVAL;
	}
	*out = calloc(cnt, sizeof **out);
	if (*out == NULL)
		return -ENOMEM;
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		yaml_node_t *v = node_get(L, *it, n->start_mark, &rc);
		if (v == NULL)
			return rc;
		char q[80], msg[160];
		quote_scalar(v, q, sizeof q);
		if (v->type != YAML_SCALAR_NODE ||
		    memchr(v->data.scalar.value, '\0', v->data.scalar.length)) {
			lerr(L, v->start_mark, "%s entry '%s' is not a string",
			     what, q);
			return -EINVAL;
		}
		char *str = strndup((const char *)v->data.scalar.value,
				    v->data.scalar.length);
		if (str == NULL)
			return -ENOMEM;
		(*out)[(*nout)++] = str;
		if (!ok(str, msg, sizeof msg)) {
			lerr(L, v->start_mark, "bad %s entry '%s': %s", what, q,
			     msg);
			return -EINVAL;
		}
	}
	return 0;
}

static int http_label(struct loader *L, struct phttp *h)
{
	size_t len = strlen(L->name) + 32;
	for (size_t i = 0; i < h->nmethods; i++)
		len += strlen(h->methods[i]) + 1;
	for (size_t i = 0; i < h->npaths; i++)
		len += strlen(h->paths[i]) + 1;
	h->label = malloc(len + 8);
	if (h->label == NULL)
		return -ENOMEM;
	size_t off = 0;
	for (size_t i = 0; i < h->nmethods; i++)
		off += (size_t)snprintf(h->label + off, len - off, "%s%s",
					i ? "," : "", h->methods[i]);
	if (h->nmethods == 0)
		off += (size_t)snprintf(h->label + off, len - off, "*");
	for (size_t i = 0; i < h->npaths; i++)
		off += (size_t)snprintf(h->label + off, len - off, "%s%s",
					i ? "," : " ", h->paths[i]);
	if (h->npaths == 0)
		off += (size_t)snprintf(h->label + off, len - off, " /**");
	snprintf(h->label + off, len - off, " (%s:%u)", L->name, h->line);
	return 0;
}

/* `websocket: true|false` on an http entry; true needs GET among the
 * entry's methods (a WebSocket handshake is a GET), checked by the caller
 * once the methods are known. */
/* A boolean key's value: plain `true` or `false` only (not "true", yes,
 * 1), so a quoted or YAML 1.1 spelling is an error, not a surprise. */
static int parse_bool(struct loader *L, const yaml_node_t *v, const char *key,
		      bool *out)
{
	if (v->type != YAML_SCALAR_NODE ||
	    v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    !(scalar_is(v, "true") || scalar_is(v, "false"))) {
		char q[80];
		quote_scalar(v, q, sizeof q);
		lerr(L, v->start_mark, "%s must be true or false, got '%s'",
		     key, q);
		return -EINVAL;
	}
	*out = scalar_is(v, "true");
	return 0;
}

static int parse_websocket(struct loader *L, const yaml_node_t *v,
			   struct phttp *h)
{
	return parse_bool(L, v, "websocket", &h->websocket);
}

static bool lists_get(const struct phttp *h)
{
	bool get = h->nmethods == 0;
	for (size_t i = 0; !get && i < h->nmethods; i++)
		get = strcmp(h->methods[i], "GET") == 0;
	return get;
}

static int parse_http_entry(struct loader *L, yaml_node_t *n, struct phttp *h)
{
	int rc = 0;
	h->line = (unsigned)n->start_mark.line + 1;
	if (n->type != YAML_MAPPING_NODE) {
		lerr(L, n->start_mark,
		     "an http entry must be a mapping with methods and/or "
		     "paths, not %s",
		     kind_name(n));
		return -EINVAL;
	}
	bool seen_m = false, seen_p = false;
	const yaml_node_t *ws = NULL;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_get(L, pr->key, n->start_mark, &rc);
		if (k == NULL)
			return rc;
		yaml_node_t *v = node_get(L, pr->value, k->start_mark, &rc);
		if (v == NULL)
			return rc;
		char q[80];
		quote_scalar(k, q, sizeof q);
		bool is_m = scalar_is(k, "methods");
		bool is_w = scalar_is(k, "websocket");
		if (!is_m && !is_w && !scalar_is(k, "paths")) {
			lerr(L, k->start_mark,
			     "unknown key '%s' in an http entry (expected "
			     "methods, paths, websocket)",
			     q);
			return -EINVAL;
		}
		if (is_w ? ws != NULL : is_m ? seen_m : seen_p) {
			lerr(L, k->start_mark, "duplicate key '%s'", q);
			return -EINVAL;
		}
		if (is_w) {
			ws = v;
			rc = parse_websocket(L, v, h);
		} else if (is_m) {
			seen_m = true;
			rc = parse_str_list(L, v, "methods", &h->methods,
					    &h->nmethods, method_ok);
		} else {
			seen_p = true;
			rc = parse_str_list(L, v, "paths", &h->paths,
					    &h->npaths, policy_http_glob_ok);
		}
		if (rc != 0)
			return rc;
	}
	if (!seen_m && !seen_p) {
		lerr(L, n->start_mark, "an http entry needs methods or paths");
		return -EINVAL;
	}
	if (h->websocket && !lists_get(h)) {
		lerr(L, ws->start_mark,
		     "websocket: true needs GET among the entry's methods (a "
		     "WebSocket handshake is a GET)");
		return -EINVAL;
	}
	return http_label(L, h);
}

static int parse_http(struct loader *L, yaml_node_t *n, struct prule *r)
{
	int rc = 0;
	if (n->type != YAML_SEQUENCE_NODE) {
		lerr(L, n->start_mark,
		     "'http' must be a list of {methods, paths}, not %s",
		     kind_name(n));
		return -EINVAL;
	}
	size_t cnt =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt == 0 || cnt > HTTP_ENTRIES_MAX) {
		lerr(L, n->start_mark, "'http' must list 1..%u entries",
		     HTTP_ENTRIES_MAX);
		return -EINVAL;
	}
	r->http = calloc(cnt, sizeof *r->http);
	if (r->http == NULL)
		return -ENOMEM;
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		yaml_node_t *en = node_get(L, *it, n->start_mark, &rc);
		if (en == NULL)
			return rc;
		rc = parse_http_entry(L, en, &r->http[r->nhttp++]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* `inspect` and `http` after the rest of the rule is parsed: they need
 * an allow rule on a host name that keeps TLS. */
static int parse_inspect_keys(struct loader *L, struct prule *r,
			      yaml_node_t *inspect, yaml_node_t *http)
{
	yaml_node_t *first = inspect != NULL ? inspect : http;
	if (first == NULL)
		return 0;
	if (r->deny) {
		lerr(L, first->start_mark,
		     "'inspect' and 'http' only apply to allow rules");
		return -EINVAL;
	}
	if (inspect != NULL && parse_bool(L, inspect, "inspect", &r->inspect))
		return -EINVAL;
	if (http != NULL && !r->inspect) {
		lerr(L, http->start_mark,
		     "'http' rules need 'inspect: true' on the rule (without "
		     "inspection the proxy cannot see requests)");
		return -EINVAL;
	}
	if (r->inspect && (r->kind == PRULE_IP || !r->tls)) {
		lerr(L, first->start_mark,
		     "'inspect: true' needs a host name rule that keeps TLS "
		     "(not an IP/CIDR rule, not tls: false)");
		return -EINVAL;
	}
	return http != NULL ? parse_http(L, http, r) : 0;
}

static char *cred_str(struct loader *L, const yaml_node_t *v, const char *key);

static int parse_rule(struct loader *L, yaml_node_t *n, bool deny)
{
	int rc = 0;
	struct prule *r = new_rule(L, n->start_mark);
	if (r == NULL)
		return -ENOMEM;
	r->deny = deny;
	if (n->type == YAML_SCALAR_NODE)
		return parse_rule_host(L, n, r);
	if (n->type != YAML_MAPPING_NODE) {
		lerr(L, n->start_mark,
		     "a rule must be a host string or a mapping with 'host', "
		     "not %s",
		     kind_name(n));
		return -EINVAL;
	}
	yaml_node_t *host = NULL, *ports = NULL, *tls = NULL, *budget = NULL,
		    *inspect = NULL, *http = NULL, *cred = NULL;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_get(L, pr->key, n->start_mark, &rc);
		if (k == NULL)
			return rc;
		yaml_node_t *v = node_get(L, pr->value, k->start_mark, &rc);
		if (v == NULL)
			return rc;
		yaml_node_t **slot;
		char q[80];
		quote_scalar(k, q, sizeof q);
		if (scalar_is(k, "host"))
			slot = &host;
		else if (scalar_is(k, "ports"))
			slot = &ports;
		else if (scalar_is(k, "tls"))
			slot = &tls;
		else if (scalar_is(k, "upload_budget") && !deny)
			slot = &budget;
		else if (scalar_is(k, "inspect"))
			slot = &inspect;
		else if (scalar_is(k, "http"))
			slot = &http;
		else if (scalar_is(k, "credential"))
			slot = &cred;
		else {
			lerr(L, k->start_mark,
			     "unknown key '%s' in %s rule (expected host, "
			     "ports%s)",
			     q, deny ? "a deny" : "an allow",
			     deny ? ""
				  : ", tls, inspect, http, credential, "
				    "upload_budget");
			return -EINVAL;
		}
		if (*slot != NULL) {
			lerr(L, k->start_mark, "duplicate key '%s'", q);
			return -EINVAL;
		}
		*slot = v;
	}
	if (host == NULL) {
		lerr(L, n->start_mark, "rule has no 'host'");
		return -EINVAL;
	}
	rc = parse_rule_host(L, host, r);
	if (rc != 0)
		return rc;
	if (ports != NULL) {
		rc = parse_ports(L, ports, &r->ports, &r->nports);
		if (rc != 0)
			return rc;
	}
	if (budget != NULL) {
		rc = parse_size(L, budget, "upload_budget", &r->budget);
		if (rc != 0)
			return rc;
	}
	if (tls != NULL) {
		if (deny) {
			lerr(L, tls->start_mark,
			     "'tls' only applies to allow rules");
			return -EINVAL;
		}
		if (parse_bool(L, tls, "tls", &r->tls) != 0)
			return -EINVAL;
	}
	if (cred != NULL) {
		if (deny) {
			lerr(L, cred->start_mark,
			     "'credential' only applies to allow rules");
			return -EINVAL;
		}
		r->cred = cred_str(L, cred, "credential");
		if (r->cred == NULL)
			return -EINVAL;
		r->cred_line = (unsigned)cred->start_mark.line + 1;
		r->cred_col = (unsigned)cred->start_mark.column + 1;
	}
	return parse_inspect_keys(L, r, inspect, http);
}

static int parse_rules(struct loader *L, yaml_node_t *n, bool deny)
{
	int rc = 0;
	if (is_null(n))
		return 0; /* "allow:" with every entry commented out */
	if (n->type != YAML_SEQUENCE_NODE) {
		lerr(L, n->start_mark, "'%s' must be a list of rules, not %s",
		     deny ? "deny" : "allow", kind_name(n));
		return -EINVAL;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		yaml_node_t *rn = node_get(L, *it, n->start_mark, &rc);
		if (rn == NULL)
			return rc;
		rc = parse_rule(L, rn, deny);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int parse_defaults(struct loader *L, yaml_node_t *n)
{
	int rc = 0;
	if (n->type != YAML_MAPPING_NODE) {
		lerr(L, n->start_mark, "'defaults' must be a mapping, not %s",
		     kind_name(n));
		return -EINVAL;
	}
	bool have_ports = false;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_get(L, pr->key, n->start_mark, &rc);
		if (k == NULL)
			return rc;
		yaml_node_t *v = node_get(L, pr->value, k->start_mark, &rc);
		if (v == NULL)
			return rc;
		char q[80];
		quote_scalar(k, q, sizeof q);
		if (!scalar_is(k, "ports")) {
			lerr(L, k->start_mark,
			     "unknown key '%s' in defaults (expected ports)",
			     q);
			return -EINVAL;
		}
		if (have_ports) {
			lerr(L, k->start_mark, "duplicate key '%s'", q);
			return -EINVAL;
		}
		have_ports = true;
		uint16_t *ports;
		size_t np;
		rc = parse_ports(L, v, &ports, &np);
		if (rc != 0)
			return rc;
		free(L->defports);
		L->defports = ports;
		L->ndefports = np;
	}
	return 0;
}

static int parse_limits(struct loader *L, yaml_node_t *n)
{
	int rc = 0;
	if (n->type != YAML_MAPPING_NODE) {
		lerr(L, n->start_mark, "'limits' must be a mapping, not %s",
		     kind_name(n));
		return -EINVAL;
	}
	bool seen[6] = {false};
	static const char *const keys[6] = {
	    "max_connections", "header_timeout",   "connect_timeout",
	    "idle_timeout",    "approval_timeout", "upload_budget"};
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_get(L, pr->key, n->start_mark, &rc);
		if (k == NULL)
			return rc;
		yaml_node_t *v = node_get(L, pr->value, k->start_mark, &rc);
		if (v == NULL)
			return rc;
		char q[80];
		quote_scalar(k, q, sizeof q);
		int which = -1;
		for (int i = 0; i < 6; i++)
			if (scalar_is(k, keys[i]))
				which = i;
		if (which < 0) {
			lerr(L, k->start_mark,
			     "unknown key '%s' in limits (expected "
			     "max_connections, header_timeout, "
			     "connect_timeout, idle_timeout)",
			     q);
			return -EINVAL;
		}
		if (seen[which]) {
			lerr(L, k->start_mark, "duplicate key '%s'", q);
			return -EINVAL;
		}
		seen[which] = true;
		struct policy_limits *lim = &L->p->limits;
		if (which == 0) {
			unsigned long mc;
			if (!parse_uint(v, POLICY_MAX_CONNECTIONS_MAX, &mc) ||
			    mc == 0) {
				char vq[80];
				quote_number(v, vq, sizeof vq);
				lerr(L, v->start_mark,
				     "max_connections must be an integer "
				     "1..%u, got '%s'",
				     POLICY_MAX_CONNECTIONS_MAX, vq);
				return -EINVAL;
			}
			lim->max_connections = (unsigned)mc;
			continue;
		}
		if (which == 5) {
			rc = parse_size(L, v, keys[which], &lim->upload_budget);
			if (rc != 0)
				return rc;
			continue;
		}
		unsigned *dst = which == 1   ? &lim->header_timeout_ms
				: which == 2 ? &lim->connect_timeout_ms
				: which == 3 ? &lim->idle_timeout_ms
					     : &lim->approval_timeout_ms;
		rc = parse_duration(L, v, keys[which], dst);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* unknown: deny | ask (what to do with a host no rule names). */
static int parse_unknown(struct loader *L, const yaml_node_t *v)
{
	if (v->type == YAML_SCALAR_NODE &&
	    v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (scalar_is(v, "deny") || scalar_is(v, "ask"))) {
		L->p->unknown_ask = scalar_is(v, "ask");
		return 0;
	}
	char q[80];
	quote_scalar(v, q, sizeof q);
	lerr(L, v->start_mark, "unknown must be deny or ask, got '%s'", q);
	return -EINVAL;
}

/* mode: enforce | learn (policy.h, policy_is_learning). */
static int parse_mode(struct loader *L, yaml_node_t *v)
{
	if (scalar_is(v, "learn") || scalar_is(v, "enforce")) {
		L->p->learn = scalar_is(v, "learn");
		return 0;
	}
	char q[80];
	quote_scalar(v, q, sizeof q);
	lerr(L, v->start_mark, "mode must be 'enforce' or 'learn', got '%s'",
	     q);
	return -EINVAL;
}

/* ---- credentials: NAME -> {env|file|command, hosts, header|basic,
 * placeholder} ---- */

#define CREDS_MAX 64u

static bool cred_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* A plain string value (no NUL, no CR/LF) copied out, or NULL with err. */
static char *cred_str(struct loader *L, const yaml_node_t *v, const char *key)
{
	if (v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0 ||
	    memchr(v->data.scalar.value, '\0', v->data.scalar.length) ||
	    memchr(v->data.scalar.value, '\n', v->data.scalar.length) ||
	    memchr(v->data.scalar.value, '\r', v->data.scalar.length)) {
		lerr(L, v->start_mark, "'%s' must be a one-line string", key);
		return NULL;
	}
	char *s =
	    strndup((const char *)v->data.scalar.value, v->data.scalar.length);
	if (s == NULL)
		lerr(L, v->start_mark, "out of memory");
	return s;
}

static bool cred_host_ok(const char *h, char *msg, size_t msglen)
{
	char norm[POLICY_HOST_MAX + 1];
	const char *name = h[0] == '*' && h[1] == '.' ? h + 2 : h;
	if (policy_host_normalize(name, strlen(name), norm, sizeof norm, msg,
				  msglen) != 0)
		return false;
	if (strcmp(norm, name) != 0) {
		/* A cut message still names the start of the name. */
		if (snprintf(msg, msglen,
			     "write the host in its normal form '%.100s'",
			     norm) < 0)
			msg[0] = '\0';
		return false;
	}
	return true;
}

/* "Name: value" with one "{}" in the value. */
static bool cred_header_ok(const char *h)
{
	const char *colon = strchr(h, ':');
	if (colon == NULL || colon == h)
		return false;
	for (const char *p = h; p < colon; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	const char *ph = strstr(colon, "{}");
	return ph != NULL && strstr(ph + 2, "{}") == NULL;
}

static int cred_value(struct loader *L, struct pcred *c, yaml_node_t *k,
		      yaml_node_t *v, bool *have_src)
{
	static const char *const src[3] = {"env", "file", "command"};
	for (int i = 0; i < 3; i++) {
		if (!scalar_is(k, src[i]))
			continue;
		if (*have_src) {
			lerr(L, k->start_mark,
			     "a credential has one source: env, file or "
			     "command");
			return -EINVAL;
		}
		*have_src = true;
		c->pub.source = (enum policy_cred_source)i;
		c->from = cred_str(L, v, src[i]);
		return c->from != NULL ? 0 : -EINVAL;
	}
	if (scalar_is(k, "header")) {
		c->header = cred_str(L, v, "header");
		if (c->header != NULL && !cred_header_ok(c->header)) {
			lerr(L, v->start_mark,
			     "header must be \"Name: value\" with one {} where "
			     "the secret goes");
			return -EINVAL;
		}
		return c->header != NULL ? 0 : -EINVAL;
	}
	if (scalar_is(k, "basic")) {
		c->basic_user = cred_str(L, v, "basic");
		if (c->basic_user != NULL && strchr(c->basic_user, ':')) {
			lerr(L, v->start_mark, "a basic user name has no ':'");
			return -EINVAL;
		}
		return c->basic_user != NULL ? 0 : -EINVAL;
	}
	if (scalar_is(k, "placeholder"))
		return parse_bool(L, v, "placeholder", &c->pub.placeholder);
	if (scalar_is(k, "hosts")) {
		size_t n = 0;
		int rc =
		    parse_str_list(L, v, "hosts", &c->hosts, &n, cred_host_ok);
		c->pub.nhosts = n;
		return rc;
	}
	char q[80];
	quote_scalar(k, q, sizeof q);
	lerr(L, k->start_mark,
	     "unknown key '%s' in a credential (expected env, file, command, "
	     "hosts, header, basic, placeholder)",
	     q);
	return -EINVAL;
}

static int parse_credential(struct loader *L, yaml_node_t *k, yaml_node_t *n,
			    struct pcred *c)
{
	int rc = 0;
	c->pub.line = (unsigned)k->start_mark.line + 1;
	c->col = (unsigned)k->start_mark.column + 1;
	if (k->type != YAML_SCALAR_NODE ||
	    !cred_name_ok((const char *)k->data.scalar.value,
			  k->data.scalar.length)) {
		lerr(L, k->start_mark,
		     "a credential name is letters, digits and '_' (at most "
		     "64, not starting with a digit)");
		return -EINVAL;
	}
	c->name =
	    strndup((const char *)k->data.scalar.value, k->data.scalar.length);
	if (c->name == NULL)
		return -ENOMEM;
	if (n->type != YAML_MAPPING_NODE) {
		lerr(L, n->start_mark, "credential '%s' must be a mapping",
		     c->name);
		return -EINVAL;
	}
	bool have_src = false;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *ck = node_get(L, pr->key, n->start_mark, &rc);
		yaml_node_t *cv =
		    ck ? node_get(L, pr->value, ck->start_mark, &rc) : NULL;
		if (cv == NULL)
			return rc;
		rc = cred_value(L, c, ck, cv, &have_src);
		if (rc != 0)
			return rc;
	}
	const char *missing = NULL;
	if (!have_src)
		missing = "a source (env, file or command)";
	else if (c->header != NULL && c->basic_user != NULL)
		missing = "header or basic, not both";
	else if (!c->header && !c->basic_user && !c->pub.placeholder)
		missing = "a use (header, basic or placeholder: true)";
	if (missing != NULL) {
		lerr(L, n->start_mark, "credential '%s' needs %s", c->name,
		     missing);
		return -EINVAL;
	}
	c->pub.name = c->name;
	c->pub.from = c->from;
	c->pub.header = c->header;
	c->pub.basic_user = c->basic_user;
	c->pub.hosts = (const char *const *)c->hosts;
	return 0;
}

static int parse_credentials(struct loader *L, yaml_node_t *n)
{
	int rc = 0;
	if (n->type != YAML_MAPPING_NODE) {
		lerr(L, n->start_mark,
		     "'credentials' must be a mapping of NAME: {...}, not %s",
		     kind_name(n));
		return -EINVAL;
	}
	size_t cnt =
	    (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if (cnt > CREDS_MAX) {
		lerr(L, n->start_mark, "at most %u credentials", CREDS_MAX);
		return -EINVAL;
	}
	struct policy *p = L->p;
	p->creds = calloc(cnt ? cnt : 1, sizeof *p->creds);
	if (p->creds == NULL)
		return -ENOMEM;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_get(L, pr->key, n->start_mark, &rc);
		yaml_node_t *v =
		    k ? node_get(L, pr->value, k->start_mark, &rc) : NULL;
		if (v == NULL)
			return rc;
		struct pcred *c = &p->creds[p->ncreds++];
		rc = parse_credential(L, k, v, c);
		if (rc != 0)
			return rc;
		for (size_t i = 0; i + 1 < p->ncreds; i++)
			if (strcmp(p->creds[i].name, c->name) == 0) {
				lerr(L, k->start_mark,
				     "duplicate credential '%s'", c->name);
				return -EINVAL;
			}
	}
	return 0;
}

static int parse_top(struct loader *L, yaml_node_t *root)
{
	int rc = 0;
	if (root->type != YAML_MAPPING_NODE) {
		lerr(L, root->start_mark,
		     "the policy must be a mapping starting with 'version: 1', "
		     "not %s",
		     kind_name(root));
		return -EINVAL;
	}
	static const char *const keys[7] = {"version",	"allow",  "deny",
					    "defaults", "limits", "unknown",
					    "mode"};
	yaml_node_t *vals[7] = {NULL};
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
	     pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_get(L, pr->key, root->start_mark, &rc);
		if (k == NULL)
			return rc;
		yaml_node_t *v = node_get(L, pr->value, k->start_mark, &rc);
		if (v == NULL)
			return rc;
		char q[80];
		quote_scalar(k, q, sizeof q);
		if (scalar_is(k, "credentials")) {
			if (L->p->creds != NULL) {
				lerr(L, k->start_mark, "duplicate key '%s'", q);
				return -EINVAL;
			}
			rc = parse_credentials(L, v);
			if (rc != 0)
				return rc;
			continue;
		}
		int which = -1;
		for (int i = 0; i < 7; i++)
			if (scalar_is(k, keys[i]))
				which = i;
		if (which < 0) {
			lerr(L, k->start_mark,
			     "unknown key '%s' (expected version, allow, deny, "
			     "defaults, limits, unknown, mode, credentials)",
			     q);
			return -EINVAL;
		}
		if (vals[which] != NULL) {
			lerr(L, k->start_mark, "duplicate key '%s'", q);
			return -EINVAL;
		}
		vals[which] = v;
		/* File order, so the first problem in the file is the one
		 * reported; default ports are applied after the walk. */
		if (which == 0) {
			unsigned long ver;
			if (!parse_uint(v, 1000000, &ver) || ver != 1) {
				quote_number(v, q, sizeof q);
				lerr(L, v->start_mark,
				     "unsupported version '%s' (expected 1)",
				     q);
				return -EINVAL;
			}
		} else if (which == 1 || which == 2) {
			rc = parse_rules(L, v, which == 2);
		} else if (which == 3) {
			rc = parse_defaults(L, v);
		} else if (which == 5) {
			rc = parse_unknown(L, v);
		} else if (which == 6) {
			rc = parse_mode(L, v);
		} else {
			rc = parse_limits(L, v);
		}
		if (rc != 0)
			return rc;
	}
	if (vals[0] == NULL) {
		lerr(L, root->start_mark, "missing 'version: 1'");
		return -EINVAL;
	}
	return 0;
}

/* Apply default ports (defaults may come after the rules in the file) and
 * build each rule's "TEXT (FILE:LINE)" label. */
static int finish(struct loader *L)
{
	struct policy *p = L->p;
	for (size_t i = 0; i < p->nrules; i++) {
		struct prule *r = &p->rules[i];
		if (r->ports == NULL) {
			if (r->deny) {
				r->all_ports = true;
			} else {
				r->ports =
				    malloc(L->ndefports * sizeof *r->ports);
				if (r->ports == NULL)
					return -ENOMEM;
				memcpy(r->ports, L->defports,
				       L->ndefports * sizeof *r->ports);
				r->nports = L->ndefports;
			}
		}
		int n =
		    snprintf(NULL, 0, "%s (%s:%u)", r->text, L->name, r->line);
		if (n < 0)
			return -EINVAL;
		r->label = malloc((size_t)n + 1);
		if (r->label == NULL)
			return -ENOMEM;
		snprintf(r->label, (size_t)n + 1, "%s (%s:%u)", r->text,
			 L->name, r->line);
	}
	return 0;
}

static yaml_mark_t mark_at(const struct loader *L, size_t off)
{
	yaml_mark_t m = {0, 0, 0};
	if (off > L->len)
		off = L->len;
	for (size_t i = 0; i < off; i++) {
		if (L->text[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	m.index = off;
	return m;
}

static int load_doc(struct loader *L, yaml_parser_t *parser)
{
	yaml_document_t doc;
	if (!yaml_parser_load(parser, &doc)) {
		yaml_mark_t m = parser->problem_mark;
		if (parser->error == YAML_MEMORY_ERROR) {
			lerr(L, m, "out of memory parsing YAML");
			return -ENOMEM;
		}
		if (parser->error == YAML_READER_ERROR) {
			/* The reader reports a byte offset, not a mark. */
			m = mark_at(L, parser->problem_offset);
			if (parser->problem_value >= 0)
				lerr(
				    L, m, "YAML syntax error: %s (byte 0x%02x)",
				    parser->problem ? parser->problem : "error",
				    (unsigned)parser->problem_value & 0xffu);
			else
				lerr(L, m, "YAML syntax error: %s",
				     parser->problem ? parser->problem
						     : "error");
			return -EINVAL;
		}
		if (parser->context != NULL)
			lerr(L, m, "YAML syntax error: %s %s",
			     parser->problem ? parser->problem : "error",
			     parser->context);
		else
			lerr(L, m, "YAML syntax error: %s",
			     parser->problem ? parser->problem : "error");
		return -EINVAL;
	}
	L->doc = &doc;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	int rc = 0;
	if (root == NULL) {
		yaml_mark_t m = {0, 0, 0};
		lerr(L, m, "the policy is empty (expected 'version: 1')");
		rc = -EINVAL;
		goto out;
	}
	L->nnodes = (size_t)(doc.nodes.top - doc.nodes.start);
	L->seen = calloc(L->nnodes ? L->nnodes : 1, sizeof *L->seen);
	if (L->seen == NULL) {
		lerr(L, root->start_mark, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	L->seen[0] = true; /* the root is node 1 */
	rc = parse_top(L, root);
	if (rc != 0)
		goto out;
	/* A second document would be silently ignored; refuse it. */
	yaml_document_t doc2;
	if (!yaml_parser_load(parser, &doc2)) {
		lerr(L, parser->problem_mark, "YAML syntax error: %s",
		     parser->problem ? parser->problem : "error");
		rc = -EINVAL;
		goto out;
	}
	yaml_node_t *root2 = yaml_document_get_root_node(&doc2);
	if (root2 != NULL) {
		lerr(L, doc2.start_mark,
		     "a policy file holds one YAML document; found another");
		rc = -EINVAL;
	}
	yaml_document_delete(&doc2);
out:
	free(L->seen);
	L->seen = NULL;
	L->doc = NULL;
	yaml_document_delete(&doc);
	return rc;
}

int policy_load_string(const char *name, const char *text, size_t len,
		       struct policy **out, char *err, size_t errlen)
{
	struct loader L;
	memset(&L, 0, sizeof L);
	L.name = name != NULL ? name : "<policy>";
	L.text = text;
	L.len = len;
	L.err = err;
	L.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out == NULL || (text == NULL && len > 0)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s:1:1: no policy text", L.name);
		return -EINVAL;
	}
	if (len > (size_t)POLICY_FILE_MAX) {
		yaml_mark_t m = {0, 0, 0};
		lerr(&L, m, "policy larger than %u bytes", POLICY_FILE_MAX);
		return -EFBIG;
	}
	struct policy *p = calloc(1, sizeof *p);
	L.defports = malloc(sizeof *L.defports);
	if (p == NULL || L.defports == NULL) {
		free(p);
		free(L.defports);
		yaml_mark_t m = {0, 0, 0};
		lerr(&L, m, "out of memory");
		return -ENOMEM;
	}
	L.defports[0] = 443;
	L.ndefports = 1;
	atomic_init(&p->refs, 1);
	p->limits.max_connections = 4096;
	p->limits.header_timeout_ms = 10000;
	p->limits.connect_timeout_ms = 10000;
	p->limits.idle_timeout_ms = 600000;
	p->limits.approval_timeout_ms = 60000;
	p->limits.upload_budget = POLICY_BUDGET_DEFAULT;
	L.p = p;
	int rc;
	p->source = strdup(L.name);
	if (p->source == NULL) {
		yaml_mark_t m = {0, 0, 0};
		lerr(&L, m, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}

	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		yaml_mark_t m = {0, 0, 0};
		lerr(&L, m, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	/* libyaml asserts on a NULL input even when it is empty. */
	yaml_parser_set_input_string(
	    &parser, (const unsigned char *)(text != NULL ? text : ""), len);
	rc = load_doc(&L, &parser);
	yaml_parser_delete(&parser);
	if (rc != 0)
		goto fail;
	rc = finish(&L);
	if (rc != 0) {
		yaml_mark_t m = {0, 0, 0};
		lerr(&L, m, "out of memory");
		goto fail;
	}
	size_t bad = 0;
	char msg[POLICY_ERR_MAX];
	rc = policy_cred_link(p, &bad, msg, sizeof msg);
	if (rc != 0) {
		yaml_mark_t m = {0, 0, 0};
		bool is_rule = bad < p->nrules;
		m.line = (is_rule ? p->rules[bad].cred_line
				  : p->creds[bad - p->nrules].pub.line) -
			 1;
		m.column = (is_rule ? p->rules[bad].cred_col
				    : p->creds[bad - p->nrules].col) -
			   1;
		lerr(&L, m, "%s", msg);
		goto fail;
	}
	rc = policy_compile(p, &bad, msg, sizeof msg);
	if (rc != 0) {
		yaml_mark_t m = {0, 0, 0};
		if (bad < p->nrules) {
			m.line = p->rules[bad].line - 1;
			m.column = p->rules[bad].col - 1;
		}
		lerr(&L, m, "%s", msg);
		goto fail;
	}
	free(L.defports);
	*out = p;
	return 0;
fail:
	free(L.defports);
	policy_free_internal(p);
	return rc;
}

int policy_load_file(const char *path, struct policy **out, char *err,
		     size_t errlen)
{
	if (path == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
				 "(null):1:1: no policy file given");
		return -EINVAL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s:1:1: cannot open: %s", path,
				 strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s:1:1: cannot stat: %s", path,
				 strerror(e));
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)POLICY_FILE_MAX) {
		if (err != NULL && errlen > 0)
			snprintf(
			    err, errlen,
			    "%s:1:1: not a regular file of at most %u bytes",
			    path, POLICY_FILE_MAX);
		close(fd);
		return S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
	}
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size + 1);
	if (buf == NULL) {
		close(fd);
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s:1:1: out of memory", path);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			free(buf);
			close(fd);
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "%s:1:1: read failed: %s",
					 path, strerror(e));
			return -e;
		}
		got += (size_t)n;
	}
	close(fd);
	buf[size] = '\0';
	int rc = policy_load_string(path, buf, size, out, err, errlen);
	free(buf);
	return rc;
}
