/* The launcher's built-in credential bindings: ANTHROPIC_API_KEY,
 * OPENAI_API_KEY, GH_TOKEN and GITHUB_TOKEN from the user's environment
 * never enter the container. When the policy inspects their hosts (and
 * names no credential of its own for them) the container gets a
 * placeholder the proxy swaps for the real value only toward those
 * hosts; otherwise the variable is left out and the launcher says once
 * how to give it to the agent. */
#ifndef AGENTSAFE_LAUNCH_BUILTIN_CRED_H
#define AGENTSAFE_LAUNCH_BUILTIN_CRED_H

#include <stdbool.h>
#include <stddef.h>

struct policy;

#define BUILTIN_CRED_MAX 4
/* Set in the proxy's environment: "VAR=HOST,HOST;VAR=HOST". */
#define BUILTIN_CRED_ENV "AGENTSAFE_BUILTIN_CREDENTIALS"
/* Tests only: "test" moves the built-in hosts from .com to .test. */
#define BUILTIN_CRED_TLD_ENV "AGENTSAFE_BUILTIN_CRED_TLD"

struct builtin_bind {
	const char *var;
	char hosts[256]; /* "HOST,HOST": the inspected ones only */
};

/* The built-ins to bind for policy p (set, non-empty, not named by a
 * policy credential, at least one host inspected): fills out (at most
 * BUILTIN_CRED_MAX) and returns the count. The variables that are set
 * but cannot be bound are listed in skipped ("A, B"; "" when none). */
size_t builtin_cred_plan(const struct policy *p, struct builtin_bind *out,
			 char *skipped, size_t skippedlen);

/* host, or its .test stand-in when BUILTIN_CRED_TLD_ENV is "test"
 * (api.anthropic.com -> api.anthropic.test). */
void builtin_cred_host(const char *host, char *buf, size_t len);

/* Whether policy p inspects host (its rule, or a "*.domain" above it). */
bool builtin_cred_inspected(const struct policy *p, const char *host);

#endif
