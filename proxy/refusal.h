/* The body of every error answer the proxy writes: one plain sentence an
 * agent (and the human reading its output) can act on, saying what was
 * refused, why (the reason code and its meaning, or the detail), and what
 * a human can do (egresslog/reason.c's advice, with the deciding rule's
 * line in policy.yaml when the advice is about that rule). Pure. */
#ifndef AGENTSAFE_PROXY_REFUSAL_H
#define AGENTSAFE_PROXY_REFUSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct refusal {
	bool is_connect;
	const char *host;   /* normalised target; NULL or "": unknown */
	uint16_t port;	    /* 0: unknown */
	const char *reason; /* a reason code */
	const char *detail; /* the record's message, or NULL */
	const char *rule;   /* the deciding rule "TEXT (FILE:LINE)", or NULL */
};

/* Writes the sentence and a newline into out (len > 0), always
 * terminated, every byte printable ASCII (anything else, from a detail
 * quoting the client, as \xNN). Returns the length written. */
size_t refusal_body(const struct refusal *r, char *out, size_t len);

#endif
