/* Claude Code's OAuth login kept on the host. When a session runs Claude
 * Code, the user's ~/.claude/.credentials.json holds an OAuth login and
 * the policy inspects both the API host and the token host, the
 * container's copy of that file holds placeholders (with the tokens'
 * type prefixes) instead of the access and refresh tokens. The proxy
 * swaps them toward their hosts only (the refresh token toward the token
 * endpoint's path only), rewrites the token endpoint's answers so the
 * container only ever sees new placeholders, and keeps the new real
 * tokens in a file of the session's; at the end the launcher saves them
 * into the user's credentials file, unless that changed meanwhile.
 * Without both hosts inspected the login enters the container as it is,
 * and the launcher says so. */
#ifndef AGENTSAFE_LAUNCH_CLAUDE_LOGIN_H
#define AGENTSAFE_LAUNCH_CLAUDE_LOGIN_H

#include <stddef.h>

struct policy;
struct sess;

#define CLAUDE_LOGIN_API_HOST	"api.anthropic.com"
#define CLAUDE_LOGIN_TOKEN_HOST "platform.claude.com"
#define CLAUDE_LOGIN_TOKEN_PATH "/v1/oauth/token"
/* Where the image's entrypoint finds the login to copy (container/). */
#define CLAUDE_LOGIN_SEED "/run/agentsafe/seed/claude/.credentials.json"

/* In step "session CA": plan the login's swap for policy p (s->login),
 * or say why the login enters the container as it is. 0, or -errno with
 * err when the user's file cannot be turned into placeholders. */
int claude_login_prepare(struct sess *s, const struct policy *p, char *err,
			 size_t errlen);
/* In the proxy's child before exec: the real tokens, their placeholders,
 * the bindings, the token endpoint and the store file. */
void claude_login_proxy_env(const struct sess *s);
/* The placeholder copy to mount at CLAUDE_LOGIN_SEED, or NULL. */
const char *claude_login_seed(const struct sess *s);
/* After the proxy stopped: the rotated tokens saved for the user, the
 * session's files removed, the secrets wiped. */
void claude_login_finish(struct sess *s);
/* The stale sweep of a session whose launcher is gone (killed before
 * claude_login_finish): the rotated tokens its proxy kept in state_dir
 * saved into the user's file, as above, and the session's login files
 * removed. Nothing when the session had no such login. */
void claude_login_recover(const char *state_dir);

#endif
