/* Credentials of inspected tunnels (inspect_cred.c): the secrets the
 * policy's `credentials:` section names, resolved once at start on the
 * host, injected as headers or swapped for their placeholders only in
 * requests to the hosts they are bound to. A placeholder (or a piece of
 * one) anywhere else is misuse. Internal to proxy/. */
#ifndef AGENTSAFE_PROXY_INSPECT_CRED_H
#define AGENTSAFE_PROXY_INSPECT_CRED_H

#include <stdbool.h>
#include <stddef.h>

#include "http_parse.h"
#include "policy.h"

/* The random part of a placeholder, in hex digits. */
#define CRED_RANDOM_HEX 32
/* Longest TYPE prefix of a placeholder ("sk-ant-oat01-"): some clients
 * look at a token's type before sending it. */
#define CRED_TYPE_MAX 24
/* Longest request body in which placeholders are swapped, and longest
 * token response rewritten. */
#define CRED_BODY_MAX 65536
/* Longest secret accepted from a source. */
#define CRED_SECRET_MAX 16384

/* The launcher's built-in bindings (ANTHROPIC_API_KEY, ...), in the
 * proxy's environment as "VAR=HOST,HOST;VAR=HOST": each an env-sourced
 * placeholder credential named after its variable, bound to those hosts,
 * unless the policy names a credential of that name. */
#define CRED_BUILTIN_ENV "AGENTSAFE_BUILTIN_CREDENTIALS"
#define CRED_BUILTIN_MAX 8

struct cred_store;

/* Resolve every credential of p: env (the proxy's environment), file,
 * or command (sh -c, as the proxy's user, before it drops privileges);
 * a secret must be one line. Placeholders come from the environment
 * (AGENTSAFE_PLACEHOLDER_<NAME>, set by the launcher for the container
 * too) or are made up. *out is NULL when p has no credentials. Returns 0
 * or -errno with err naming the credential (never the secret). */
int cred_store_new(const struct policy *p, struct cred_store **out, char *err,
		   size_t errlen);
void cred_store_free(struct cred_store *s);

/* The credential whose placeholder, or a recognisable piece of it (the
 * "agentsafe-NAME-" prefix or the random part, any case), occurs in
 * buf and which is not bound to host at path (host NULL: bound to no
 * host at all, as for a CONNECT head or plain HTTP; path NULL: no
 * "HOST/PATH" binding applies). NULL when none. */
const char *cred_misuse(const struct cred_store *s, const char *host,
			const char *path, const char *buf, size_t len);

/* Whether a credential bound to host at path by a "HOST/PATH" binding
 * (an OAuth refresh token) is swapped in request bodies there. */
bool cred_body_bound(const struct cred_store *s, const char *host,
		     const char *path);

/* cred_misuse over q's head and what the agent may have encoded there: the
 * target and every header name and value as sent, percent-decoded (%XX),
 * and the user:password of an Authorization / Proxy-Authorization
 * `Basic` value (base64, standard or URL-safe alphabet). Malformed
 * encodings are looked at as they are, never decoded. */
const char *cred_misuse_head(const struct cred_store *s, const char *host,
			     const struct http_request *q);

/* The request head for the upstream of an inspected request to host:
 * placeholders of credentials bound to host swapped for their secrets in
 * the target and header values, and the header of each bound credential
 * with `header:`/`basic:` set (replacing the client's). A placeholder
 * inside an Authorization / Proxy-Authorization `Basic` value (base64 of
 * user:password, as git sends it) is swapped too, and the value encoded
 * again. With body (the whole Content-Length body, at most
 * CRED_BODY_MAX) where cred_body_bound: the body's placeholders are
 * swapped too, appended after the head with a new Content-Length, and
 * Accept-Encoding is dropped (the answer may need rewriting). Returns 1
 * with a malloc'd head (+ body) in *out (length *outlen) and the first
 * credential used in *used, 0 when nothing changes (forward the head as
 * it is), -ENOMEM. */
int cred_apply(const struct cred_store *s, const char *host,
	       const struct http_request *q, const char *body, size_t bodylen,
	       char **out, size_t *outlen, const char **used);

/* OAuth token rotation: the launcher names a token endpoint whose
 * answers carry new tokens (CRED_ROTATE_ENV = "HOST/PATH,ACCESS,REFRESH",
 * the names of two placeholder credentials) and a file for the new real
 * tokens (CRED_STORE_ENV, opened once at start; the launcher saves them
 * for the user at the end of the session). */
#define CRED_ROTATE_ENV "AGENTSAFE_OAUTH_ROTATE"
#define CRED_STORE_ENV	"AGENTSAFE_OAUTH_STORE"

/* Whether requests to host at path are the token endpoint's. */
bool cred_rotates(const struct cred_store *s, const char *host,
		  const char *path);

/* A token endpoint's answer body (identity-coded, whole): a JSON object's
 * "access_token"/"refresh_token" strings become the credentials' new
 * secrets (saved to the store file) and are replaced by new placeholders
 * in the body handed back. Returns 1 with a malloc'd body in *out, 0 when
 * the body holds no token (forward it as it is), -errno on failure
 * (refuse: the tokens must not reach the client). */
int cred_rotate(struct cred_store *s, const char *body, size_t len, char **out,
		size_t *outlen);

/* Whether any credential's secret occurs in buf (a last check on what a
 * rewritten answer hands the client). */
bool cred_secret_in(const struct cred_store *s, const char *buf, size_t len);

/* A `command:` credential is re-run at most once per this many seconds. */
#define CRED_REFRESH_MIN_S 30

/* The upstream answered 401 to a request carrying credential name: when
 * it comes from a `command:` (e.g. `gh auth token`), re-run it (as the
 * proxy's user, at most once per CRED_REFRESH_MIN_S) and use the new
 * value from the next request on. Returns 1 when refreshed, 0 when not
 * due or not a command, -errno when the command failed (the old value
 * stays). Blocks the calling thread while the command runs. */
int cred_refresh(struct cred_store *s, const char *name);

#endif
