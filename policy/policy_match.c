/* Lookup side of the compiled policy: the name and IP hash tables, the
 * host:port decision (deny beats allow), the resolved-address guard and the
 * human explanation. Cost per decision depends on the host's label count
 * and the address width, never on the number of rules. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

uint64_t policy_hash_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * 0x100000001b3ull;
}

uint64_t policy_hash(const char *s, size_t len)
{
	/* Keys come from the trusted policy file, so the agent cannot force
	 * collisions into the table; its hosts only probe. */
	uint64_t h = POLICY_HASH_INIT;
	for (size_t i = len; i-- > 0;)
		h = policy_hash_step(h, (unsigned char)s[i]);
	return h;
}

static uint64_t ip_hash(uint8_t family, uint8_t plen, const uint8_t a[16])
{
	uint8_t k[18];
	k[0] = family;
	k[1] = plen;
	memcpy(k + 2, a, 16);
	return policy_hash((const char *)k, sizeof k);
}

static size_t table_cap(size_t n)
{
	size_t cap = 16;
	while (cap < n * 2 + 1)
		cap <<= 1;
	return cap;
}

static struct name_entry *name_find(const struct policy *p, const char *key,
				    size_t len, uint64_t h)
{
	if (p->names_cap == 0)
		return NULL;
	size_t mask = p->names_cap - 1;
	uint64_t tag = h >> 32;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		uint64_t s = p->name_slots[i];
		if (s == 0)
			return NULL;
		if (s >> 32 != tag)
			continue;
		struct name_entry *e = &p->names[(s & 0xffffffffu) - 1];
		if (e->keylen == len && memcmp(e->key, key, len) == 0)
			return e;
	}
}

static struct name_entry *name_insert(struct policy *p, const char *key)
{
	size_t len = strlen(key);
	uint64_t h = policy_hash(key, len);
	struct name_entry *e = name_find(p, key, len, h);
	if (e != NULL)
		return e;
	size_t mask = p->names_cap - 1;
	size_t i = (size_t)h & mask;
	while (p->name_slots[i] != 0)
		i = (i + 1) & mask;
	e = &p->names[p->nnames++];
	p->name_slots[i] = (h >> 32) << 32 | (uint64_t)p->nnames;
	e->key = key;
	e->keylen = len;
	e->exact_allow = e->exact_deny = e->wild_allow = e->wild_deny = -1;
	return e;
}

static struct ip_slot *ip_find(const struct policy *p, uint8_t family,
			       uint8_t plen, const uint8_t a[16])
{
	if (p->ips_cap == 0)
		return NULL;
	uint64_t h = ip_hash(family, plen, a);
	size_t mask = p->ips_cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		struct ip_slot *s = &p->ips[i];
		if (!s->used)
			return NULL;
		if (s->family == family && s->plen == plen &&
		    memcmp(s->addr, a, 16) == 0)
			return s;
	}
}

static struct ip_slot *ip_insert(struct policy *p, uint8_t family, uint8_t plen,
				 const uint8_t a[16])
{
	struct ip_slot *s = ip_find(p, family, plen, a);
	if (s != NULL)
		return s;
	uint64_t h = ip_hash(family, plen, a);
	size_t mask = p->ips_cap - 1;
	size_t i = (size_t)h & mask;
	while (p->ips[i].used)
		i = (i + 1) & mask;
	s = &p->ips[i];
	s->used = true;
	s->family = family;
	s->plen = plen;
	memcpy(s->addr, a, 16);
	s->allow = s->deny = -1;
	return s;
}

int policy_compile(struct policy *p, size_t *bad, char *msg, size_t msglen)
{
	size_t nn = 0, ni = 0;
	for (size_t i = 0; i < p->nrules; i++) {
		if (p->rules[i].kind == PRULE_IP)
			ni++;
		else
			nn++;
	}
	p->names_cap = table_cap(nn);
	p->ips_cap = table_cap(ni);
	p->name_slots = calloc(p->names_cap, sizeof *p->name_slots);
	p->names = calloc(nn ? nn : 1, sizeof *p->names);
	p->ips = calloc(p->ips_cap, sizeof *p->ips);
	if (p->name_slots == NULL || p->names == NULL || p->ips == NULL) {
		snprintf(msg, msglen, "out of memory compiling the policy");
		*bad = 0;
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->nrules; i++) {
		struct prule *r = &p->rules[i];
		int32_t *slot;
		if (r->kind == PRULE_IP) {
			struct ip_slot *s =
			    ip_insert(p, r->family, r->plen, r->addr);
			slot = r->deny ? &s->deny : &s->allow;
			if (r->family == 4)
				p->v4_plen[r->plen] = true;
			else
				p->v6_plen[r->plen] = true;
		} else {
			struct name_entry *s = name_insert(p, r->key);
			if (r->kind == PRULE_NAME)
				slot =
				    r->deny ? &s->exact_deny : &s->exact_allow;
			else
				slot = r->deny ? &s->wild_deny : &s->wild_allow;
		}
		if (*slot >= 0) {
			const struct prule *first = &p->rules[*slot];
			snprintf(msg, msglen,
				 "duplicate %s rule '%s' (same host as '%s' at "
				 "line %u)",
				 r->deny ? "deny" : "allow", r->text,
				 first->text, first->line);
			*bad = i;
			return -EINVAL;
		}
		*slot = (int32_t)i;
	}
	return 0;
}

void policy_free_internal(struct policy *p)
{
	for (size_t i = 0; i < p->nrules; i++) {
		free(p->rules[i].text);
		free(p->rules[i].label);
		free(p->rules[i].key);
		free(p->rules[i].ports);
		policy_http_free_rule(&p->rules[i]);
	}
	free(p->rules);
	policy_cred_free_all(p);
	free(p->name_slots);
	free(p->names);
	free(p->ips);
	free(p->source);
	free(p);
}

struct policy *policy_ref(struct policy *p)
{
	if (p != NULL)
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

void policy_unref(struct policy *p)
{
	if (p == NULL)
		return;
	/* acq_rel: the last owner must see every other thread's reads done. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		policy_free_internal(p);
}

const struct policy_limits *policy_get_limits(const struct policy *p)
{
	return &p->limits;
}

bool policy_unknown_ask(const struct policy *p)
{
	return p != NULL && p->unknown_ask;
}

const char *policy_source(const struct policy *p)
{
	return p->source;
}

size_t policy_rule_count(const struct policy *p)
{
	return p->nrules;
}

static bool port_in(const struct prule *r, uint16_t port)
{
	if (r->all_ports)
		return true;
	size_t lo = 0, hi = r->nports;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->ports[mid] == port)
			return true;
		if (r->ports[mid] < port)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void decide(struct policy_decision *d, enum policy_verdict v,
		   const char *reason, const struct prule *r)
{
	d->verdict = v;
	d->reason = reason;
	d->rule = r != NULL ? r->label : NULL;
	d->require_tls = v == POLICY_ALLOW && (r == NULL || r->tls);
	d->upload_budget = v == POLICY_ALLOW && r != NULL ? r->budget : 0;
	d->would_deny = false;
	d->inspect = v == POLICY_ALLOW && r != NULL && r->inspect;
}

bool policy_is_learning(const struct policy *p)
{
	return p != NULL && p->learn;
}

void policy_force_learn(struct policy *p)
{
	p->learn = true;
}

/* Learn mode's one rule (policy.h): names only, never an explicit deny. */
static void decision_learn(struct policy_decision *d)
{
	if (d->verdict != POLICY_DENY || d->reason == NULL ||
	    (strcmp(d->reason, "not_allowed") != 0 &&
	     strcmp(d->reason, "port_not_allowed") != 0))
		return;
	d->verdict = POLICY_ALLOW;
	d->would_deny = true;
	d->require_tls = true;
}

bool policy_plain_http_refused(const struct policy_decision *d, bool is_connect,
			       uint16_t port)
{
	return !is_connect && d->verdict == POLICY_ALLOW && d->require_tls &&
	       port == 443;
}

/* Rules covering one address, most specific first. */
struct ip_hits {
	const struct prule *deny;	 /* a deny rule covering addr:port */
	const struct prule *allow;	 /* most specific allow with port */
	const struct prule *allow_other; /* most specific allow, any port */
};

static void ip_lookup_one(const struct policy *p, uint8_t family,
			  const uint8_t a[16], uint16_t port, struct ip_hits *h)
{
	unsigned bits = family == 4 ? 32 : 128;
	const bool *present = family == 4 ? p->v4_plen : p->v6_plen;
	for (unsigned plen = bits + 1; plen-- > 0;) {
		if (!present[plen])
			continue;
		uint8_t m[16] = {0};
		unsigned full = plen / 8, rem = plen % 8;
		memcpy(m, a, full);
		if (rem != 0)
			m[full] = (uint8_t)(a[full] & (0xff << (8 - rem)));
		const struct ip_slot *s = ip_find(p, family, (uint8_t)plen, m);
		if (s == NULL)
			continue;
		if (s->deny >= 0 && h->deny == NULL &&
		    port_in(&p->rules[s->deny], port))
			h->deny = &p->rules[s->deny];
		if (s->allow >= 0) {
			const struct prule *r = &p->rules[s->allow];
			if (h->allow_other == NULL)
				h->allow_other = r;
			if (h->allow == NULL && port_in(r, port))
				h->allow = r;
		}
	}
}

/* An address is looked up as itself and, when it embeds an IPv4 address
 * (mapped, compatible, NAT64, SIIT, 6to4, Teredo), as that IPv4 address
 * too, so a v4 deny rule cannot be sidestepped by writing the address in
 * v6 form. A v4 allow rule counts for the mapped form only: the others
 * reach a relay or translator (a 6to4 or Teredo relay, a NAT64 gateway),
 * not the host the rule names. */
static void ip_lookup(const struct policy *p, uint8_t family,
		      const uint8_t a[16], uint16_t port, struct ip_hits *h)
{
	memset(h, 0, sizeof *h);
	ip_lookup_one(p, family, a, port, h);
	uint8_t v4[16] = {0};
	if (family != 6 || !policy_v6_embedded_v4(a, v4))
		return;
	struct ip_hits h4;
	memset(&h4, 0, sizeof h4);
	ip_lookup_one(p, 4, v4, port, &h4);
	if (h->deny == NULL)
		h->deny = h4.deny;
	if (!policy_v6_is_v4_mapped(a))
		return;
	if (h->allow == NULL)
		h->allow = h4.allow;
	if (h->allow_other == NULL)
		h->allow_other = h4.allow_other;
}

static void match_ip(const struct policy *p, uint8_t family,
		     const uint8_t a[16], uint16_t port,
		     struct policy_decision *d)
{
	struct ip_hits h;
	ip_lookup(p, family, a, port, &h);
	if (h.deny != NULL)
		decide(d, POLICY_DENY, "denied_by_rule", h.deny);
	else if (h.allow != NULL)
		decide(d, POLICY_ALLOW, "allowed", h.allow);
	else if (h.allow_other != NULL)
		decide(d, POLICY_DENY, "port_not_allowed", h.allow_other);
	else
		decide(d, POLICY_DENY, "ip_literal", NULL);
}

static void match_name(const struct policy *p, const char *host, uint16_t port,
		       struct policy_decision *d)
{
	size_t len = strlen(host);
	const struct prule *deny = NULL, *allow = NULL, *allow_other = NULL;
	/* Right to left: each dot-suffix ("test", "a.test", "x.a.test") is
	 * hashed by extending the previous one, and looked up once; wildcard
	 * slots apply to proper suffixes, exact slots to the host itself.
	 * Later hits are longer suffixes, i.e. more specific rules. */
	uint64_t h = POLICY_HASH_INIT;
	for (size_t i = len; i-- > 0;) {
		h = policy_hash_step(h, (unsigned char)host[i]);
		if (i > 0 && host[i - 1] != '.')
			continue;
		const struct name_entry *e = name_find(p, host + i, len - i, h);
		if (e == NULL)
			continue;
		int32_t di = i == 0 ? e->exact_deny : e->wild_deny;
		int32_t ai = i == 0 ? e->exact_allow : e->wild_allow;
		if (di >= 0 && port_in(&p->rules[di], port))
			deny = &p->rules[di];
		if (ai >= 0) {
			allow_other = &p->rules[ai];
			if (port_in(allow_other, port))
				allow = allow_other;
		}
	}
	if (deny != NULL)
		decide(d, POLICY_DENY, "denied_by_rule", deny);
	else if (allow != NULL)
		decide(d, POLICY_ALLOW, "allowed", allow);
	else if (allow_other != NULL)
		decide(d, POLICY_DENY, "port_not_allowed", allow_other);
	else
		decide(d, POLICY_DENY, "not_allowed", NULL);
}

int policy_match_len(const struct policy *p, const char *host, size_t hostlen,
		     uint16_t port, struct policy_decision *d)
{
	char norm[POLICY_HOST_MAX + 1];
	char err[POLICY_ERR_MAX];
	if (d == NULL)
		return -EINVAL;
	decide(d, POLICY_DENY, "bad_host", NULL);
	if (p == NULL || host == NULL)
		return 0;
	if (port == 0) {
		/* No service listens on port 0; treat it as a malformed target.
		 */
		return 0;
	}
	if (policy_host_normalize(host, hostlen, norm, sizeof norm, err,
				  sizeof err) != 0)
		return 0;
	uint8_t fam, a[16];
	if (policy_ip_parse(norm, &fam, a)) {
		match_ip(p, fam, a, port, d);
	} else {
		match_name(p, norm, port, d);
		if (p->learn)
			decision_learn(d);
	}
	return 0;
}

int policy_match(const struct policy *p, const char *host, uint16_t port,
		 struct policy_decision *d)
{
	return policy_match_len(p, host, host != NULL ? strlen(host) : 0, port,
				d);
}

int policy_check_addr(const struct policy *p, const struct sockaddr *sa,
		      uint16_t port, struct policy_decision *d)
{
	if (d == NULL)
		return -EINVAL;
	decide(d, POLICY_DENY, "private_address", NULL);
	if (p == NULL || sa == NULL)
		return 0;
	uint8_t fam, a[16] = {0};
	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		fam = 4;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		fam = 6;
	} else {
		return 0;
	}
	struct ip_hits h;
	ip_lookup(p, fam, a, port, &h);
	if (h.deny != NULL) {
		decide(d, POLICY_DENY, "denied_by_rule", h.deny);
		return 0;
	}
	bool internal =
	    fam == 4 ? policy_v4_is_internal(a) : policy_v6_is_internal(a);
	if (!internal) {
		/* require_tls is the host rule's business; keep it true here.
		 */
		decide(d, POLICY_ALLOW, "allowed", NULL);
		return 0;
	}
	if (h.allow != NULL)
		decide(d, POLICY_ALLOW, "allowed", h.allow);
	else
		decide(d, POLICY_DENY, "private_address", NULL);
	return 0;
}

void policy_appendf(char *buf, size_t buflen, size_t *off, const char *fmt, ...)
{
	if (*off >= buflen)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *off, buflen - *off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*off += (size_t)n;
	if (*off >= buflen)
		*off = buflen;
}

static void append_ports(char *buf, size_t buflen, size_t *off,
			 const struct prule *r)
{
	if (r->all_ports) {
		policy_appendf(buf, buflen, off, "all");
		return;
	}
	for (size_t i = 0; i < r->nports; i++) {
		if (i == 8) {
			policy_appendf(buf, buflen, off, ", ... (%zu ports)",
				       r->nports);
			return;
		}
		policy_appendf(buf, buflen, off, "%s%u", i ? ", " : "",
			       (unsigned)r->ports[i]);
	}
}

static const struct prule *rule_by_label(const struct policy *p,
					 const char *label)
{
	if (label == NULL)
		return NULL;
	/* d.rule points at a rule's own label string. */
	for (size_t i = 0; i < p->nrules; i++)
		if (p->rules[i].label == label)
			return &p->rules[i];
	return NULL;
}

int policy_explain(const struct policy *p, const char *host, uint16_t port,
		   char *buf, size_t buflen)
{
	if (p == NULL || host == NULL || buf == NULL || buflen == 0)
		return -EINVAL;
	size_t off = 0;
	char norm[POLICY_HOST_MAX + 1] = "";
	char err[POLICY_ERR_MAX];
	char q[80];
	struct policy_decision d;
	buf[0] = '\0';
	policy_match(p, host, port, &d);
	policy_quote(host, strlen(host), q, sizeof q);
	policy_appendf(buf, buflen, &off, "request: %s port %u\n", q,
		       (unsigned)port);
	if (policy_host_normalize(host, strlen(host), norm, sizeof norm, err,
				  sizeof err) == 0)
		policy_appendf(buf, buflen, &off, "host:    %s%s\n", norm,
			       policy_host_is_ip_literal(norm) ? " (IP literal)"
							       : "");
	else
		policy_appendf(buf, buflen, &off, "host:    invalid: %s\n",
			       err);
	policy_appendf(buf, buflen, &off, "verdict: %s\n",
		       d.would_deny ? "ALLOW (learn mode: no rule "
				      "allows it; recorded as "
				      "would_deny)"
		       : d.verdict == POLICY_ALLOW ? "ALLOW"
						   : "DENY");
	policy_appendf(buf, buflen, &off, "reason:  %s\n", d.reason);
	const struct prule *r = rule_by_label(p, d.rule);
	if (r != NULL) {
		policy_appendf(buf, buflen, &off, "rule:    %s %s (ports: ",
			       r->deny ? "deny" : "allow", r->label);
		append_ports(buf, buflen, &off, r);
		policy_appendf(buf, buflen, &off, ")\n");
	} else {
		const char *why =
		    strcmp(d.reason, "bad_host") == 0
			? "the host is not a valid name or address"
		    : strcmp(d.reason, "ip_literal") == 0
			? "an IP address is reachable only through an allow "
			  "rule naming that IP or a CIDR containing it"
		    : d.would_deny
			? "no rule names this host; learn mode lets it "
			  "through"
			: "no rule names this host; everything not allowed is "
			  "denied";
		policy_appendf(buf, buflen, &off, "rule:    none (%s)\n", why);
	}
	if (d.verdict == POLICY_ALLOW)
		policy_appendf(
		    buf, buflen, &off, "tls:     %s\n",
		    !d.require_tls ? "not required (rule says tls: false)"
		    : policy_host_is_ip_literal(norm)
			? "required (the tunnel must open with a TLS "
			  "ClientHello)"
			: "required (the tunnel must open with a TLS "
			  "ClientHello whose SNI is this host)");
	if (off >= buflen)
		return -ENOSPC;
	return 0;
}
