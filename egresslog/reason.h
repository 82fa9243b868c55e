/* Every reason code an egress.log record may carry, in one table: the
 * stable string written to the log, the events it appears in, and what it
 * means. docs/log-reference.md lists the same codes (a unit test checks the
 * two against each other both ways), so a code is added here and there in
 * the same commit. */
#ifndef AGENTSAFE_EGRESS_REASON_H
#define AGENTSAFE_EGRESS_REASON_H

#include <stdbool.h>

enum egress_reason {
	/* deny: the policy */
	EGRESS_REASON_NOT_ALLOWED,
	EGRESS_REASON_PORT_NOT_ALLOWED,
	EGRESS_REASON_DENIED_BY_RULE,
	EGRESS_REASON_BAD_HOST,
	EGRESS_REASON_IP_LITERAL,
	EGRESS_REASON_PRIVATE_ADDRESS,
	/* deny: the checks after the policy */
	EGRESS_REASON_DNS_FAILURE,
	EGRESS_REASON_SNI_MISMATCH,
	EGRESS_REASON_NO_SNI,
	EGRESS_REASON_NOT_TLS,
	EGRESS_REASON_BAD_CLIENTHELLO,
	EGRESS_REASON_ECH,
	EGRESS_REASON_BAD_REQUEST,
	EGRESS_REASON_TIMEOUT,
	EGRESS_REASON_UPSTREAM_UNREACHABLE,
	EGRESS_REASON_MAX_CONNECTIONS,
	EGRESS_REASON_LOG_UNWRITABLE,
	/* deny: the second stage (inspection, credentials, approval) */
	EGRESS_REASON_METHOD_NOT_ALLOWED,
	EGRESS_REASON_PATH_NOT_ALLOWED,
	EGRESS_REASON_HOST_MISMATCH,
	EGRESS_REASON_UPSTREAM_CERT_INVALID,
	EGRESS_REASON_CREDENTIAL_MISUSE,
	EGRESS_REASON_APPROVAL_TIMEOUT,
	EGRESS_REASON_UPLOAD_BUDGET_EXCEEDED,
	/* the end of a connection, or of a request cut short */
	EGRESS_REASON_CLIENT_RESET,
	EGRESS_REASON_CLIENT_CLOSED,
	EGRESS_REASON_CLIENT_ERROR,
	EGRESS_REASON_EOF,
	EGRESS_REASON_IDLE_TIMEOUT,
	EGRESS_REASON_SHUTDOWN,
	EGRESS_REASON_UPSTREAM_RESET,
	EGRESS_REASON_UPSTREAM_ERROR,
	EGRESS_REASON_UPSTREAM_CLOSED,
	EGRESS_REASON_BAD_RESPONSE,
	EGRESS_REASON_INTERNAL,
	/* error */
	EGRESS_REASON_RELOAD_FAILED,
	/* drop */
	EGRESS_REASON_FIREWALL,
	EGRESS_REASON_COUNT
};

/* The events a code may appear in, as a mask. */
#define EGRESS_IN_DENY	0x1u
#define EGRESS_IN_CLOSE 0x2u
#define EGRESS_IN_ERROR 0x4u
#define EGRESS_IN_DROP	0x8u

struct egress_reason_info {
	const char *name;    /* the stable string in the `reason` field */
	unsigned events;     /* EGRESS_IN_* */
	bool reserved;	     /* named for later work; nothing writes it yet */
	const char *meaning; /* one line */
};

/* The string written to the log; NULL for a value outside the enum (the
 * writer then leaves the field out). */
const char *egress_reason_name(enum egress_reason r);
/* The table entry; NULL for a value outside the enum. */
const struct egress_reason_info *egress_reason_info(enum egress_reason r);
/* What a human can do about a refusal with this code, as the end of the
 * sentence a refused client is answered with ("what a human can do: ...").
 * `names_rule`: the advice is about the deciding rule, so the answer adds
 * where it is in policy.yaml. NULL for a value outside the enum. */
struct egress_reason_advice {
	const char *text;
	bool names_rule;
};
const struct egress_reason_advice *egress_reason_advice(enum egress_reason r);

/* The code named by s (exact, case-sensitive): 0 and *out set, or -ENOENT
 * for NULL or a string that is no code of this version (a newer writer may
 * know more). */
int egress_reason_lookup(const char *s, enum egress_reason *out);

#endif
