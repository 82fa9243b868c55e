/* The credential store's layout, shared by inspect_cred.c (resolving,
 * swapping, injecting) and inspect_oauth.c (OAuth token rotation).
 * Internal to those two files. */
#ifndef AGENTSAFE_PROXY_INSPECT_CRED_INT_H
#define AGENTSAFE_PROXY_INSPECT_CRED_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Placeholders a rotation retired that still stand for the credential
 * (a request the agent had in flight), oldest dropped first. */
#define CRED_ALIASES 4

struct cred {
	char *name;
	char *secret;
	/* NULL without `placeholder: true`; "[TYPE]agentsafe-NAME-RANDOM",
	 * TYPE a short prefix some clients check (sk-ant-oat01-). */
	char *placeholder;
	char *aliases[CRED_ALIASES];
	char prefix[80]; /* "agentsafe-NAME-" */
	char *hname;	 /* header to set, or NULL */
	char *hvalue;
	char **hosts; /* "HOST", "*.DOMAIN" or "HOST/PATH" (that path only) */
	size_t nhosts;
	bool body;	   /* a HOST/PATH binding: swapped in bodies too */
	char *command;	   /* `command:`: re-run on a 401 (cred_refresh) */
	char *basic_user;  /* to rebuild the header after a refresh */
	char *header_tmpl; /* ditto */
	time_t refreshed;  /* when last re-run (CLOCK_MONOTONIC s) */
	bool rerun;	   /* re-run at least once */
};

/* The OAuth token endpoint whose answers carry new tokens. */
struct cred_rotate {
	char host[256];
	char path[512];
	struct cred *access, *refresh;
	int store_fd; /* the launcher's file for the new real tokens, or -1 */
};

struct cred_store {
	struct cred *c;
	size_t n;
	struct cred_rotate *rot; /* NULL: none */
	/* Secrets, header values and placeholders change on a refresh or
	 * a rotation: read and written under this lock (names and hosts
	 * never change). */
	pthread_mutex_t lock;
};

/* A new "[TYPE]agentsafe-NAME-RANDOM" keeping old's TYPE (NULL: none). */
char *cred_new_placeholder(const char *name, const char *old);

/* Parse CRED_ROTATE_ENV into s->rot (0 when unset, -EINVAL with err). */
int cred_rotate_init(struct cred_store *s, char *err, size_t errlen);
void cred_rotate_free(struct cred_rotate *r);

#endif
