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
    R(APPROVAL_TIMEOUT, "approval_timeout", D, true,
      "an unknown host was asked about and nobody answered in time"),
    R(UPLOAD_BUDGET_EXCEEDED, "upload_budget_exceeded", D | C, true,
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
