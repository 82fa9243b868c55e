/* Private to policy/: the compiled policy's layout, shared by the loader
 * (policy_load.c), the matcher (policy_match.c) and the host/address helpers
 * (policy_host.c). Nothing outside policy/ includes this. */
#ifndef AGENTSAFE_POLICY_INT_H
#define AGENTSAFE_POLICY_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

enum prule_kind { PRULE_NAME, PRULE_WILDCARD, PRULE_IP };

/* One entry of an inspected rule's `http:` list (policy_http.c). */
struct phttp {
	char **methods; /* upper-case tokens; none = any method */
	size_t nmethods;
	char **paths; /* globs starting with '/'; none = any path */
	size_t npaths;
	unsigned line;
	char *label;	/* "METHODS PATHS (FILE:LINE)" */
	bool websocket; /* `websocket: true`: an upgrade may be relayed */
};

struct prule {
	char *text;  /* host as written in the file */
	char *label; /* "TEXT (FILE:LINE)" */
	char *key;   /* normalised name / wildcard suffix (without "*.") */
	unsigned line, col;
	enum prule_kind kind;
	bool deny;
	bool tls;	    /* allow rules: require a TLS ClientHello */
	bool inspect;	    /* allow rules: terminate TLS, apply `http` */
	struct phttp *http; /* first match wins; none = any request */
	size_t nhttp;
	char *cred; /* `credential: NAME`, linked after load */
	unsigned cred_line, cred_col; /* where, for the error */
	bool all_ports;		      /* deny rule without ports */
	uint64_t budget; /* allow rules: upload_budget, 0 = limits' */
	uint16_t *ports; /* sorted, unique */
	size_t nports;
	/* PRULE_IP: family 4 or 6, prefix length, masked address */
	uint8_t family, plen;
	uint8_t addr[16];
};

/* One normalised name: rule indices (or -1) of the exact and wildcard
 * rules naming it. */
struct name_entry {
	const char *key; /* borrowed from a rule */
	size_t keylen;
	int32_t exact_allow, exact_deny, wild_allow, wild_deny;
};

struct ip_slot {
	bool used;
	uint8_t family, plen;
	uint8_t addr[16];
	int32_t allow, deny;
};

/* One `credentials:` entry (policy_cred.c). */
struct pcred {
	struct policy_credential pub; /* points into the fields below */
	char *name, *from, *header, *basic_user;
	char **hosts;
	unsigned col; /* of the name, for errors */
};

struct policy {
	atomic_uint refs;
	struct pcred *creds;
	size_t ncreds;
	char *source;
	struct policy_limits limits;
	bool unknown_ask; /* unknown: ask */
	bool learn;	  /* mode: learn */
	struct prule *rules;
	size_t nrules;
	/* Open addressing over 8-byte slots (hash tag << 32 | entry + 1, 0 =
	 * empty), so a miss touches one small slot, not an entry: with
	 * 100 000 rules the probed memory stays cache- and TLB-friendly. */
	uint64_t *name_slots;
	size_t names_cap; /* power of two */
	struct name_entry *names;
	size_t nnames;
	struct ip_slot *ips;
	size_t ips_cap; /* power of two */
	bool v4_plen[33];
	bool v6_plen[129];
};

/* policy_host.c */
/* policy_host_normalize() writing only the reason (no host) into err. */
int policy_host_norm_why(const char *in, size_t inlen, char *out, size_t outlen,
			 char *err, size_t errlen);
/* Parse a normalised IP literal into family (4/6) and 16 bytes
 * (v4 in the first four). Returns true when it is one. */
bool policy_ip_parse(const char *s, uint8_t *family, uint8_t addr[16]);
/* The IPv4 embedded in a v6 address (mapped, compatible, NAT64, SIIT
 * ::ffff:0:0/96, 6to4, Teredo client), if any: for deny rules and the
 * internal-address guard. */
bool policy_v6_embedded_v4(const uint8_t a[16], uint8_t v4[4]);
/* ::ffff:0:0/96, the only v6 form an IPv4 allow rule also allows (the
 * kernel's own spelling of an IPv4 peer on a dual-stack socket). */
bool policy_v6_is_v4_mapped(const uint8_t a[16]);
bool policy_v4_is_internal(const uint8_t a[4]);
bool policy_v6_is_internal(const uint8_t a[16]);
/* Copy `in` for a message: printable ASCII, others as \xNN, truncated. */
void policy_quote(const char *in, size_t inlen, char *out, size_t outlen);

/* policy_http.c */
void policy_http_free_rule(struct prule *r);
/* Whether a path glob is well formed (starts with '/', `**` only as a
 * whole segment); msg says why not. */
bool policy_http_glob_ok(const char *glob, char *msg, size_t msglen);
/* A rule's deciding http entry for method and path (path without the
 * query), or NULL; *method_hit says whether some entry allowed the
 * method. */
const struct phttp *policy_http_find(const struct prule *r, const char *method,
				     const char *path, bool *method_hit);

/* policy_cred.c */
void policy_cred_free_all(struct policy *p);
/* Bind each rule's host to the credential its `credential:` names, then
 * require every credential to be bound to some host. On an error returns
 * -EINVAL with msg, and in *bad the rule (< nrules) or nrules + the
 * credential's index. */
int policy_cred_link(struct policy *p, size_t *bad, char *msg, size_t msglen);

/* policy_match.c */
/* FNV-1a over the bytes from last to first, so matching can hash every
 * dot-suffix of a host in one right-to-left pass. */
uint64_t policy_hash(const char *s, size_t len);
uint64_t policy_hash_step(uint64_t h, unsigned char c);
#define POLICY_HASH_INIT 0xcbf29ce484222325ull
/* Build the lookup tables; on a duplicate rule writes the message (without
 * the FILE:LINE:COL prefix) and returns the offending rule index via *bad. */
int policy_compile(struct policy *p, size_t *bad, char *msg, size_t msglen);
void policy_free_internal(struct policy *p);

/* Append printf-style text at *off of buf (explain output); stops, without
 * overflowing, when buf is full. policy_match.c. */
void policy_appendf(char *buf, size_t buflen, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
