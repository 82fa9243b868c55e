/* The `credentials:` section of a compiled policy: accessors and host
 * binding. Loading is in policy_load.c; resolving a secret and using it is
 * the proxy's business (proxy/inspect_cred.c). */
#include <errno.h>
#include <stdio.h>
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

int policy_cred_link(struct policy *p, size_t *bad, char *msg, size_t msglen)
{
	for (size_t i = 0; i < p->nrules; i++) {
		struct prule *r = &p->rules[i];
		if (r->cred == NULL)
			continue;
		struct pcred *c = NULL;
		for (size_t k = 0; k < p->ncreds && c == NULL; k++)
			if (strcmp(p->creds[k].name, r->cred) == 0)
				c = &p->creds[k];
		*bad = i;
		if (c == NULL) {
			char q[80];
			policy_quote(r->cred, strlen(r->cred), q, sizeof q);
			snprintf(
			    msg, msglen,
			    "unknown credential '%s' (not in credentials:)", q);
			return -EINVAL;
		}
		if (!r->inspect) {
			snprintf(
			    msg, msglen,
			    "'credential' needs 'inspect: true' on the rule");
			return -EINVAL;
		}
		size_t n = c->pub.nhosts;
		char **nh = realloc(c->hosts, (n + 1) * sizeof *nh);
		if (nh == NULL)
			return -ENOMEM;
		c->hosts = nh;
		size_t tl = strlen(r->key) + 3;
		nh[n] = malloc(tl);
		if (nh[n] == NULL)
			return -ENOMEM;
		snprintf(nh[n], tl, "%s%s",
			 r->kind == PRULE_WILDCARD ? "*." : "", r->key);
		c->pub.nhosts = n + 1;
		c->pub.hosts = (const char *const *)c->hosts;
	}
	for (size_t k = 0; k < p->ncreds; k++) {
		if (p->creds[k].pub.nhosts > 0)
			continue;
		*bad = p->nrules + k;
		snprintf(msg, msglen,
			 "credential '%s' is bound to no host: give it hosts: "
			 "or name it in an inspected rule's credential:",
			 p->creds[k].name);
		return -EINVAL;
	}
	return 0;
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
