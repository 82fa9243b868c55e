/* The table of reason codes (reason.h). Indexed by the enum, so a code and
 * its string cannot drift apart; the strings are the log's contract and
 * never change once written. */
#include "reason.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#define D  EGRESS_IN_DENY
#define C  EGRESS_IN_CLOSE
#define E  EGRESS_IN_ERROR
#define DR EGRESS_IN_DROP
#define R(code, str, ev, res, text)                                            \
	[EGRESS_REASON_##code] = {str, ev, res, text}

static const struct egress_reason_info table[] = {
    R(NOT_ALLOWED, "not_allowed", D, false, "no allow rule names this host"),
    R(PORT_NOT_ALLOWED, "port_not_allowed", D, false,
      "a rule names the host, but not this port"),
    R(DENIED_BY_RULE, "denied_by_rule", D, false,
      "a deny rule matched the name or the resolved address"),
    R(BAD_HOST, "bad_host", D, false,
      "the target host is not a valid host name, or the port is 0"),
    R(IP_LITERAL, "ip_literal", D, false,
      "the target is an IP address that no IP/CIDR allow rule contains"),
    R(PRIVATE_ADDRESS, "private_address", D, false,
      "the name resolved only to private or reserved addresses no rule "
      "names"),
    R(DNS_FAILURE, "dns_failure", D, false,
      "the proxy could not resolve the name"),
    R(SNI_MISMATCH, "sni_mismatch", D, false,
      "the TLS ClientHello named another host than the request, or an "
      "invalid one"),
    R(NO_SNI, "no_sni", D, false, "the ClientHello carried no server name"),
    R(NOT_TLS, "not_tls", D, false,
      "the first bytes after CONNECT were not a TLS handshake, or a "
      "plain-HTTP request went to port 443 of a rule that expects TLS"),
    R(BAD_CLIENTHELLO, "bad_clienthello", D, false,
      "the ClientHello was malformed, too large, or cut off"),
    R(ECH, "ech", D, true,
      "the ClientHello offers Encrypted Client Hello (or ESNI), which "
      "hides the real server name"),
    R(BAD_REQUEST, "bad_request", D | C, false,
      "the HTTP request (head or body) was malformed"),
    R(TIMEOUT, "timeout", D, false,
      "the request head, the ClientHello or the upstream connection took "
      "too long"),
    R(UPSTREAM_UNREACHABLE, "upstream_unreachable", D, false,
      "no checked address of the host accepted the connection"),
    R(MAX_CONNECTIONS, "max_connections", D, false,
      "the connection limit or the descriptor limit was reached"),
    R(LOG_UNWRITABLE, "log_unwritable", D, false,
      "the log cannot be written, so the connection is refused"),
    R(METHOD_NOT_ALLOWED, "method_not_allowed", D | C, false,
      "an inspected request used a method the rule's http: list does not "
      "allow"),
    R(PATH_NOT_ALLOWED, "path_not_allowed", D | C, false,
      "an inspected request named a path the rule's http: list does not "
      "allow"),
    R(HOST_MISMATCH, "host_mismatch", D | C, false,
      "an inspected request's Host header differs from the tunnel's host"),
    R(UPSTREAM_CERT_INVALID, "upstream_cert_invalid", D | C, false,
      "an inspected upstream's certificate did not verify"),
    R(CREDENTIAL_MISUSE, "credential_misuse", D | C, false,
      "a credential was sent to a host it is not bound to"),
    R(APPROVAL_TIMEOUT, "approval_timeout", D, false,
      "an unknown host was asked about and nobody answered in time"),
    R(UPLOAD_BUDGET_EXCEEDED, "upload_budget_exceeded", D | C, false,
      "the bytes sent upstream exceeded the rule's upload_budget"),
    R(CLIENT_RESET, "client_reset", D | C, false,
      "the agent's side reset the connection"),
    R(CLIENT_CLOSED, "client_closed", D | C | E, false,
      "the agent closed or left before the request was complete"),
    R(CLIENT_ERROR, "client_error", D | C, false,
      "the agent's side failed with a socket error other than a reset"),
    R(EOF, "eof", C, false, "a normal end"),
    R(IDLE_TIMEOUT, "idle_timeout", C, false,
      "no byte moved either way for limits.idle_timeout"),
    R(SHUTDOWN, "shutdown", C | E, false,
      "the proxy was stopped while the connection was open or being made"),
    R(UPSTREAM_RESET, "upstream_reset", C, false,
      "the upstream reset the connection"),
    R(UPSTREAM_ERROR, "upstream_error", D | C, false,
      "the upstream failed with a socket error other than a reset"),
    R(UPSTREAM_CLOSED, "upstream_closed", D | C, false,
      "the upstream closed before its response was complete"),
    R(BAD_RESPONSE, "bad_response", D | C, false,
      "the upstream's response was malformed, too large, or switched "
      "protocols unasked"),
    R(INTERNAL, "internal", C | E, false, "the proxy ran out of memory"),
    R(RELOAD_FAILED, "reload_failed", E, false,
      "a policy reload (SIGHUP) found a file that does not load"),
    R(FIREWALL, "firewall", DR, false,
      "the fence dropped a packet that was not TCP to the proxy"),
};

#undef R
#undef D
#undef C
#undef E
#undef DR

_Static_assert(sizeof table / sizeof table[0] == EGRESS_REASON_COUNT,
	       "every reason code has a table entry");

/* What a human can do, beside the table above: the refusal bodies the
 * proxy writes (proxy/refusal.c) end with it. One line each, no client
 * text; the agent reads it, so it never suggests a way around the policy
 * that only a human may take. */
#define A(code, text, rule) [EGRESS_REASON_##code] = {text, rule}
static const struct egress_reason_advice advice[] = {
    A(NOT_ALLOWED,
      "add the host to policy.yaml (agentsafe log suggest writes the rule), "
      "or approve it with agentsafe approve if the session asks (--ask)",
      false),
    A(PORT_NOT_ALLOWED, "add this port to the rule's ports: in policy.yaml",
      true),
    A(DENIED_BY_RULE,
      "remove or narrow the deny rule in policy.yaml, if the deny was not "
      "meant",
      true),
    A(BAD_HOST, "nothing: the target is not a valid host name and port", false),
    A(IP_LITERAL,
      "add an IP/CIDR allow rule for the address to policy.yaml; the agent "
      "can use the host name instead",
      false),
    A(PRIVATE_ADDRESS,
      "nothing from the sandbox: private, loopback and link-local addresses "
      "are never reachable unless a human names the address in an allow "
      "rule",
      false),
    A(DNS_FAILURE, "check the name; the proxy's resolver could not resolve it",
      false),
    A(SNI_MISMATCH,
      "nothing: the TLS server name must equal the host asked "
      "for",
      false),
    A(NO_SNI, "nothing: the TLS client must send the server name", false),
    A(NOT_TLS,
      "use https:// (or TLS after CONNECT); a human can set tls: false on "
      "the rule in policy.yaml for a protocol that is not TLS",
      true),
    A(BAD_CLIENTHELLO, "nothing: the TLS ClientHello was malformed", false),
    A(ECH, "turn off Encrypted Client Hello in the client", false),
    A(BAD_REQUEST,
      "nothing: send CONNECT host:port or an absolute http:// URL, well "
      "formed",
      false),
    A(TIMEOUT, "retry; the request or the upstream was too slow", false),
    A(UPSTREAM_UNREACHABLE,
      "retry later: the upstream did not accept the connection", false),
    A(MAX_CONNECTIONS,
      "retry later; a human can raise limits.max_connections in "
      "policy.yaml",
      false),
    A(LOG_UNWRITABLE,
      "nothing until a human frees space for egress.log; nothing passes "
      "unrecorded",
      false),
    A(METHOD_NOT_ALLOWED,
      "add the method to the rule's http: list in "
      "policy.yaml",
      true),
    A(PATH_NOT_ALLOWED, "add the path to the rule's http: list in policy.yaml",
      true),
    A(HOST_MISMATCH, "nothing: the Host header must name the tunnel's host",
      false),
    A(UPSTREAM_CERT_INVALID,
      "check the upstream's certificate; a human can add its CA", false),
    A(CREDENTIAL_MISUSE,
      "nothing: a credential goes only to the hosts it is bound to", false),
    A(APPROVAL_TIMEOUT,
      "ask the human to answer with agentsafe approve, or to add the host "
      "to policy.yaml",
      false),
    A(UPLOAD_BUDGET_EXCEEDED, "raise the rule's upload_budget in policy.yaml",
      true),
    A(CLIENT_RESET, "nothing: the client reset the connection", false),
    A(CLIENT_CLOSED, "nothing: the client left", false),
    A(CLIENT_ERROR, "nothing: the client's side failed", false),
    A(EOF, "nothing", false),
    A(IDLE_TIMEOUT, "retry; nothing moved for limits.idle_timeout", false),
    A(SHUTDOWN, "retry when the session runs again", false),
    A(UPSTREAM_RESET, "retry; the upstream reset the connection", false),
    A(UPSTREAM_ERROR, "retry; the upstream's side failed", false),
    A(UPSTREAM_CLOSED,
      "retry; the upstream closed before its response was complete", false),
    A(BAD_RESPONSE, "nothing: the upstream's response was malformed", false),
    A(INTERNAL, "retry; the proxy ran out of memory", false),
    A(RELOAD_FAILED, "fix policy.yaml (agentsafe policy check)", false),
    A(FIREWALL, "go through the proxy (HTTPS_PROXY); nothing else leaves",
      false),
};
#undef A

_Static_assert(sizeof advice / sizeof advice[0] == EGRESS_REASON_COUNT,
	       "every reason code has advice");

const struct egress_reason_advice *egress_reason_advice(enum egress_reason r)
{
	if ((unsigned)r >= EGRESS_REASON_COUNT)
		return NULL;
	return &advice[r];
}

const struct egress_reason_info *egress_reason_info(enum egress_reason r)
{
	if ((unsigned)r >= EGRESS_REASON_COUNT)
		return NULL;
	return &table[r];
}

const char *egress_reason_name(enum egress_reason r)
{
	const struct egress_reason_info *i = egress_reason_info(r);
	return i != NULL ? i->name : NULL;
}

int egress_reason_lookup(const char *s, enum egress_reason *out)
{
	if (s == NULL)
		return -ENOENT;
	for (size_t i = 0; i < EGRESS_REASON_COUNT; i++) {
		if (table[i].name != NULL && strcmp(table[i].name, s) == 0) {
			*out = (enum egress_reason)i;
			return 0;
		}
	}
	return -ENOENT;
}
