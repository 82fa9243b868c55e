/* The agent container's spec (docker_container_spec) from a session: the
 * proxy environment, the mounts (clones, per-agent credentials, the CA
 * bundle, resolv.conf), user, working directory and command. */
#ifndef AGENTSAFE_LAUNCH_SPEC_H
#define AGENTSAFE_LAUNCH_SPEC_H

#include <limits.h>

#include "docker.h"
#include "lcfg.h"

struct sess;

/* Backing store for the strings a spec points to; lives as long as the
 * spec is used. */
struct spec_store {
	const char *env[20 + 16]; /* + SESSION_CA_ENV_MAX placeholders */
	char envbuf[10][512];
	const char *binds[LCFG_MAX_LIST * 4 + 8];
	char bindbuf[LCFG_MAX_LIST * 4 + 8][PATH_MAX * 2 + 16];
	char user[64];
	char workdir[PATH_MAX];
	const char *cmd[LCFG_MAX_LIST + 4];
};

/* Fill sp (pointing into st and s) for the agent's container. Reads
 * $HOME and $TERM. */
void spec_build(const struct sess *s, struct spec_store *st,
		struct docker_container_spec *sp);

#endif
