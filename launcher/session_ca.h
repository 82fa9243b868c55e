/* TLS inspection's per-session CA on the launcher side: minted for the
 * policy's inspected hosts before the proxy starts, the key (0600, the
 * user's state directory, never mounted) handed to the proxy and removed
 * at teardown, the container's CA bundle (system + session CA) mounted
 * where the image points every tool, and the placeholders of the
 * policy's credentials in the container's environment. */
#ifndef AGENTSAFE_LAUNCH_SESSION_CA_H
#define AGENTSAFE_LAUNCH_SESSION_CA_H

#include <stddef.h>

struct sess;

/* The bundle every tool in the image reads (container/Dockerfile). */
#define SESSION_CA_CONTAINER_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
/* Placeholders a session may hand the container. */
#define SESSION_CA_ENV_MAX 16

/* Step "session CA": nothing when the policy inspects no host and names
 * no credential. */
int step_ca_up(struct sess *s, char *err, size_t errlen);
void step_ca_down(struct sess *s);

/* For the proxy's command line: --inspect-ca/--inspect-key (and
 * --ca-bundle); returns how many argv slots were filled (<= max). */
size_t session_ca_proxy_args(const struct sess *s, const char **argv,
			     size_t max);
/* In the proxy's child before exec: AGENTSAFE_PLACEHOLDER_<NAME>. */
void session_ca_proxy_env(const struct sess *s);
/* For the container: "NAME=agentsafe-NAME-..." entries, and the bundle
 * to mount over SESSION_CA_CONTAINER_BUNDLE (NULL: none). */
size_t session_ca_env(const struct sess *s, const char **env, size_t max);
/* A placeholder "TYPEagentsafe-NAME-<32 random hex>" into out (TYPE: the
 * first typelen bytes of type, a prefix some clients look at). 0, -EIO. */
int session_ca_placeholder(const char *type, size_t typelen, const char *name,
			   char *out, size_t len);
const char *session_ca_bundle(const struct sess *s);

#endif
