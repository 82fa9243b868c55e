/* The built-in credential bindings (see builtin_cred.h). */
#include "builtin_cred.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

static const struct {
	const char *var;
	const char *hosts[2];
} builtins[BUILTIN_CRED_MAX] = {
    {"ANTHROPIC_API_KEY", {"api.anthropic.com", NULL}},
    {"OPENAI_API_KEY", {"api.openai.com", NULL}},
    {"GH_TOKEN", {"github.com", "api.github.com"}},
    {"GITHUB_TOKEN", {"github.com", "api.github.com"}},
};

/* Whether the policy names a credential for var already. */
static bool policy_names(const struct policy *p, const char *var)
{
	for (size_t i = 0; i < policy_credential_count(p); i++) {
		const struct policy_credential *c = policy_credential_at(p, i);
		if (strcmp(c->name, var) == 0 ||
		    (c->source == POLICY_CRED_ENV && strcmp(c->from, var) == 0))
			return true;
	}
	return false;
}

/* Whether an inspect rule covers host: the same name, or "*.x" above. */
static bool inspected(const char *const *ins, size_t n, const char *host)
{
	size_t hl = strlen(host);
	for (size_t i = 0; i < n; i++) {
		const char *h = ins[i];
		if (strcmp(h, host) == 0)
			return true;
		size_t sl = strlen(h) - 1;
		if (h[0] == '*' && h[1] == '.' && hl > sl &&
		    strcmp(host + hl - sl, h + 1) == 0)
			return true;
	}
	return false;
}

void builtin_cred_host(const char *host, char *buf, size_t len)
{
	const char *tld = getenv(BUILTIN_CRED_TLD_ENV);
	size_t hl = strlen(host);
	if (tld != NULL && strcmp(tld, "test") == 0)
		snprintf(buf, len, "%.*s.test", (int)(hl - 4), host);
	else
		snprintf(buf, len, "%s", host);
}

static void add_skipped(char *skipped, size_t len, const char *var)
{
	size_t used = strlen(skipped);
	if (used < len)
		snprintf(skipped + used, len - used, "%s%s",
			 used > 0 ? ", " : "", var);
}

size_t builtin_cred_plan(const struct policy *p, struct builtin_bind *out,
			 char *skipped, size_t skippedlen)
{
	const char *ins[256];
	size_t nins = policy_inspect_hosts(p, ins, 256);
	if (nins > 256)
		nins = 256;
	size_t n = 0;
	skipped[0] = '\0';
	for (size_t i = 0; i < BUILTIN_CRED_MAX; i++) {
		const char *v = getenv(builtins[i].var);
		if (v == NULL || v[0] == '\0' ||
		    policy_names(p, builtins[i].var))
			continue;
		struct builtin_bind *b = &out[n];
		b->var = builtins[i].var;
		b->hosts[0] = '\0';
		for (size_t k = 0; k < 2 && builtins[i].hosts[k] != NULL; k++) {
			char h[128];
			builtin_cred_host(builtins[i].hosts[k], h, sizeof h);
			size_t used = strlen(b->hosts);
			if (inspected(ins, nins, h))
				snprintf(b->hosts + used,
					 sizeof b->hosts - used, "%s%s",
					 used > 0 ? "," : "", h);
		}
		if (b->hosts[0] != '\0')
			n++;
		else
			add_skipped(skipped, skippedlen, builtins[i].var);
	}
	return n;
}

bool builtin_cred_inspected(const struct policy *p, const char *host)
{
	const char *ins[256];
	size_t nins = policy_inspect_hosts(p, ins, 256);
	return inspected(ins, nins > 256 ? 256 : nins, host);
}
