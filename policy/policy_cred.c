/* The `credentials:` section of a compiled policy: accessors and host
 * binding. Loading is in policy_load.c; resolving a secret and using it is
 * the proxy's business (proxy/inspect_cred.c). */
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

void policy_cred_free_all(struct policy *p)
{
	for (size_t i = 0; i < p->ncreds; i++) {
		struct pcred *c = &p->creds[i];
		for (size_t j = 0; j < c->pub.nhosts; j++)
			free(c->hosts[j]);
		free(c->hosts);
		free(c->name);
		free(c->from);
		free(c->header);
		free(c->basic_user);
	}
	free(p->creds);
	p->creds = NULL;
	p->ncreds = 0;
}

size_t policy_credential_count(const struct policy *p)
{
	return p->ncreds;
}

const struct policy_credential *policy_credential_at(const struct policy *p,
						     size_t i)
{
	return i < p->ncreds ? &p->creds[i].pub : NULL;
}

bool policy_credential_bound(const struct policy_credential *c,
			     const char *host)
{
	size_t hl = strlen(host);
	for (size_t i = 0; i < c->nhosts; i++) {
		const char *h = c->hosts[i];
		if (h[0] == '*' && h[1] == '.') {
			size_t sl = strlen(h + 1); /* ".x.test" */
			if (hl > sl && memcmp(host + hl - sl, h + 1, sl) == 0)
				return true;
		} else if (strcmp(h, host) == 0) {
			return true;
		}
	}
	return false;
}
