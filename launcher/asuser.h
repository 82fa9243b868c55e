/* Work done as the invoking user when the launcher is root (sudo): a
 * helper forked while the launcher may still change ids drops to the user
 * at once and performs the fetch into their repository, so root never
 * writes a file into a user's .git. */
#ifndef AGENTSAFE_LAUNCH_ASUSER_H
#define AGENTSAFE_LAUNCH_ASUSER_H

#include <stddef.h>
#include <sys/types.h>

#include "gitiso.h"

struct asuser;

/* Forks the helper as uid (its primary group gid, its supplementary groups
 * from the group database). Needs CAP_SETUID/CAP_SETGID now; the helper
 * keeps no capability. Returns 0 with *out, or -errno with a sentence. */
int asuser_start(uid_t uid, gid_t gid, struct asuser **out, char *err,
		 size_t errlen);
/* Closes the helper's socket (it exits) and reaps it. NULL is a no-op. */
void asuser_stop(struct asuser *h);

/* A gitiso_fetch_fn; arg is a struct asuser * or NULL. The fetch runs as
 * the owner of f->host_gitdir: in this process when that is our euid (or
 * we are not root), through the helper when it is the helper's uid; a
 * root launcher refuses any other owner (-EPERM, nothing written). */
int asuser_fetch(const struct gitiso_fetch *f, void *arg, char *err,
		 size_t errlen);

/* The owner of path (its uid and that user's primary gid) when it is not
 * this process's euid; 0 when the helper is needed, -errno otherwise. */
int asuser_owner(const char *path, uid_t *uid, gid_t *gid);

#endif
