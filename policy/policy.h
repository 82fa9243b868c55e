/* Public interface of the policy engine: load policy.yaml into an immutable
 * compiled policy, decide host:port requests, and guard resolved addresses.
 * Every egress decision in AgentSafe goes through these functions. */
#ifndef AGENTSAFE_POLICY_H
#define AGENTSAFE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define POLICY_HOST_MAX 253 /* longest valid DNS name, without trailing dot */
#define POLICY_ERR_MAX	256 /* size of error buffers callers should pass */

/* Opaque, immutable once loaded, reference counted (atomically) so a reload
 * can swap it while worker threads still hold the old one. */
struct policy;

struct policy_limits {
	unsigned max_connections;
	unsigned header_timeout_ms;
	unsigned connect_timeout_ms;
	unsigned idle_timeout_ms;
	/* How long a request for an unknown host waits for an answer
	 * (`unknown: ask`); limits.approval_timeout, default 60 s. */
	unsigned approval_timeout_ms;
	/* Bytes the agent may send to one host in a session before new
	 * tunnels to it are refused and open ones closed;
	 * limits.upload_budget, default 64 MiB; POLICY_BUDGET_UNLIMITED. */
	uint64_t upload_budget;
};

#define POLICY_BUDGET_UNLIMITED UINT64_MAX
#define POLICY_BUDGET_DEFAULT	((uint64_t)64 << 20)

enum policy_verdict { POLICY_DENY = 0, POLICY_ALLOW = 1 };

struct policy_decision {
	enum policy_verdict verdict;
	/* Stable reason code: "allowed", "not_allowed", "denied_by_rule",
	 * "port_not_allowed", "bad_host", "ip_literal", "private_address". */
	const char *reason;
	/* The deciding rule as "TEXT (FILE:LINE)", or NULL when no rule
	 * decided. TEXT is the host exactly as written in the file (no
	 * ports), FILE the path given to policy_load_file (or the name given
	 * to policy_load_string), LINE the line of the host. Valid as long as
	 * the policy it came from is referenced. */
	const char *rule;
	/* Allowed CONNECTs must open with a TLS ClientHello whose SNI equals
	 * the host, unless the deciding rule says `tls: false`. (For an
	 * IP-literal host there is no name for SNI to equal.) False on DENY. */
	bool require_tls;
	/* The allow rule's own upload_budget (POLICY_BUDGET_UNLIMITED for
	 * `unlimited`), or 0 when the rule sets none (limits apply). */
	uint64_t upload_budget;
	/* Learn mode (policy_is_learning): ALLOW although no rule allows
	 * the request; `reason` is the code it would have been denied with
	 * ("not_allowed" or "port_not_allowed"). */
	bool would_deny;
	/* The deciding allow rule says `inspect: true`: the proxy terminates
	 * the tunnel's TLS and decides each request (policy_http_match). */
	bool inspect;
};

/* Load and compile. On error returns a negative errno-style code, leaves
 * *out untouched and writes "FILE:LINE:COL: message" into err. */
int policy_load_file(const char *path, struct policy **out, char *err,
		     size_t errlen);
/* Same, from memory; `name` is used as FILE in messages and rule texts. */
int policy_load_string(const char *name, const char *text, size_t len,
		       struct policy **out, char *err, size_t errlen);

/* policy_ref needs a reference the caller already holds; a process-wide
 * "current policy" pointer must be read and ref'd under the same lock that
 * guards the swap. NULL is passed through. */
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p); /* frees at zero; NULL is fine */

const struct policy_limits *policy_get_limits(const struct policy *p);
/* `unknown: ask`: a request no rule names (reason not_allowed) may be held
 * for the user's answer instead of refused. Default false (deny). */
bool policy_unknown_ask(const struct policy *p);
/* The file this policy was loaded from (or the name given). */
const char *policy_source(const struct policy *p);
/* Number of allow + deny rules, for diagnostics. */
size_t policy_rule_count(const struct policy *p);

/* Learn mode (`mode: learn` in the file, or policy_force_learn): a NAME
 * that no rule allows ("not_allowed", or "port_not_allowed": a rule names
 * the host, not the port) is decided ALLOW with would_deny set, the reason
 * kept, and require_tls true (the SNI check still holds). Every other
 * decision stands: explicit denies, bad hosts and IP literals stay refused,
 * and the address guard (policy_check_addr) still runs after it. */
bool policy_is_learning(const struct policy *p);
/* `agentsafe-launch --learn`: turn learn mode on in a freshly loaded
 * policy, before it is shared with any other thread. */
void policy_force_learn(struct policy *p);

/* The proxy's one check of a request's shape against its decision: plain
 * HTTP (not CONNECT) to port 443 of a rule that expects TLS would carry in
 * the clear what the rule expects encrypted ("not_tls"). */
bool policy_plain_http_refused(const struct policy_decision *d, bool is_connect,
			       uint16_t port);

/* Normalise a host name or IP literal as matching sees it: ASCII only,
 * lower-case, one trailing dot dropped, LDH labels of 1..63 bytes, at most
 * 253 bytes; IPv4 dotted quad or IPv6 (no brackets) accepted as literals.
 * `in` has explicit length so embedded NULs are caught. Returns 0, or
 * -EINVAL with a sentence in err.
 * Decisions: '_' is allowed in labels (real hosts use it); "[v6]" is
 * accepted and the brackets dropped; IPv6 comes out in canonical form
 * (inet_ntop); names a resolver would read as an IPv4 address in another
 * form ("2130706433", "127.1", "0x7f.0.0.1", "010.0.0.1") and names whose
 * last label is all digits are refused; zone ids ("%eth0") are refused. */
int policy_host_normalize(const char *in, size_t inlen, char *out,
			  size_t outlen, char *err, size_t errlen);
bool policy_host_is_ip_literal(const char *normalized);

/* Decide a request for host:port (host as received; it is normalised here;
 * an invalid host is denied with reason "bad_host"). Deny rules beat allow
 * rules. An IP-literal host is allowed only when an IP/CIDR rule names it
 * (a v4 rule: the address or its mapped v6 form, as policy_check_addr).
 * Cost is independent of the number of rules. Always fills *d; returns 0. */
int policy_match(const struct policy *p, const char *host, uint16_t port,
		 struct policy_decision *d);
/* Same with an explicit length (SNI, CONNECT authority bytes): a host
 * with an embedded NUL is denied as "bad_host". Brackets around an IPv6
 * literal ("[::1]") are accepted and dropped. Port 0 is "bad_host". */
int policy_match_len(const struct policy *p, const char *host, size_t hostlen,
		     uint16_t port, struct policy_decision *d);

/* True for loopback, RFC 1918 private, link-local, CGNAT (100.64/10),
 * multicast, unspecified, broadcast, ULA/site-local v6, and IPv4-mapped or
 * IPv4-compatible v6 forms of any of them. In full: 0/8, 10/8, 100.64/10,
 * 127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.168/16, 198.18/15, 224/4,
 * 240/4; ::, ::1, fc00::/7, fe80::/10, fec0::/10, ff00::/8, 64:ff9b:1::/48,
 * 100::/64; ::ffff:0:0/96 (mapped), ::ffff:0:0:0/96 (SIIT), ::/96,
 * 64:ff9b::/96, 2002::/16 and Teredo (2001::/32) judged by the IPv4 address
 * they embed. Non-IP families too. */
bool policy_addr_is_internal(const struct sockaddr *sa);

/* Decide whether the proxy may connect to a resolved address for a request
 * that policy_match() allowed: deny CIDR rules refuse it ("denied_by_rule");
 * an internal address is refused ("private_address") unless an allow rule
 * names that address or a CIDR containing it, for this port. Fills *d.
 * A v6 address embedding a v4 one is also looked up as that v4 address
 * by deny rules, so they cannot be sidestepped; a v4 allow rule allows the
 * mapped form (::ffff:a.b.c.d) only. d->rule is NULL when a public address
 * is allowed (the host rule decided). */
int policy_check_addr(const struct policy *p, const struct sockaddr *sa,
		      uint16_t port, struct policy_decision *d);

/* Human explanation of how host:port is decided (used by
 * `agentsafe policy explain`). Writes a NUL-terminated text into buf. */
int policy_explain(const struct policy *p, const char *host, uint16_t port,
		   char *buf, size_t buflen);

/* ---- inspected tunnels: HTTP request rules (policy_http.c) ---- */

struct policy_http_decision {
	enum policy_verdict verdict;
	/* "allowed", "method_not_allowed", "path_not_allowed", or the host
	 * decision's reason when the host itself is not allowed. */
	const char *reason;
	/* The deciding `http:` entry as "METHODS PATHS (FILE:LINE)", or the
	 * host rule's label when it has no `http:` list; NULL when no rule
	 * decided. Valid while the policy is referenced. */
	const char *rule;
	bool inspect; /* the host rule inspects */
	/* The deciding `http:` entry says `websocket: true`: a WebSocket
	 * upgrade it allows may be relayed. False without an `http:` list. */
	bool websocket;
};

/* Decide one request inside an inspected tunnel to host:port. path is the
 * request target's path (the query is ignored from the first '?' on).
 * A path with a dot segment ("/a/../b") or an encoded '/', '\\' or '.'
 * is refused as path_not_allowed: servers would read it differently from
 * the glob. Entries are tried in file order; the first whose methods and
 * paths both match allows. No match: method_not_allowed when no entry
 * lists the method, else path_not_allowed. Always fills *d; returns 0. */
int policy_http_match(const struct policy *p, const char *host, uint16_t port,
		      const char *method, const char *path,
		      struct policy_http_decision *d);

/* policy_explain() plus the request rules: which `http:` entry decides
 * method + path (by FILE:LINE), or why none does. */
int policy_explain_request(const struct policy *p, const char *host,
			   uint16_t port, const char *method, const char *path,
			   char *buf, size_t buflen);

/* ---- credentials (policy_cred.c) ---- */

enum policy_cred_source {
	POLICY_CRED_ENV,     /* an environment variable of the proxy */
	POLICY_CRED_FILE,    /* a file's content, trailing newline dropped */
	POLICY_CRED_COMMAND, /* a command's output, run on the host */
};

/* One entry of the top-level `credentials:` mapping. The secret itself is
 * never in the policy: only where it comes from. */
struct policy_credential {
	const char *name; /* [A-Za-z_][A-Za-z0-9_]*, at most 64 */
	enum policy_cred_source source;
	const char *from;   /* variable name, path, or command line */
	const char *header; /* "Name: value with {}" to set, or NULL */
	const char
	    *basic_user;  /* set Authorization: Basic base64(user:secret) */
	bool placeholder; /* swap agentsafe-NAME-... for the secret */
	const char *const *hosts; /* bound hosts, normalised ("*.x.test") */
	size_t nhosts;
	unsigned line;
};

size_t policy_credential_count(const struct policy *p);
const struct policy_credential *policy_credential_at(const struct policy *p,
						     size_t i);
/* Whether host (normalised) is one the credential is bound to: equal to
 * an entry, or below a "*.x" entry (not x itself). */
bool policy_credential_bound(const struct policy_credential *c,
			     const char *host);

/* Every host name an inspect rule names, as written ("*.x.test" for a
 * wildcard), for the session CA's name constraints. Returns the count;
 * fills at most max pointers (valid while the policy is referenced). */
size_t policy_inspect_hosts(const struct policy *p, const char **out,
			    size_t max);

#endif
