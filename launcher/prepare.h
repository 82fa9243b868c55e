/* Before the session: the policy file, the agent image, the --ssh keys. */
#ifndef AGENTSAFE_LAUNCH_PREPARE_H
#define AGENTSAFE_LAUNCH_PREPARE_H

#include <stddef.h>

struct lcfg;
struct sess;

/* The absolute path of --policy, or of the user's policy.yaml (copied
 * from the installed example on a first run). Reports on stderr. */
int prepare_policy(const struct lcfg *c, char *out, size_t len);
/* Make sure the image exists and suits this session (uid/gid, CA bundle,
 * sshd); builds it otherwise. */
int prepare_image(struct sess *s, char *err, size_t errlen);
/* --ssh: read the public keys into s->ssh_keys (the caller frees). */
int prepare_ssh_keys(struct sess *s, char *err, size_t errlen);

#endif
