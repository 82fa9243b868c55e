/* Process-level setup of the proxy: file-descriptor limit, switching to an
 * unprivileged user, and dropping every capability (verified) before any
 * event loop runs. */
#ifndef AGENTSAFE_PROXY_PRIVS_H
#define AGENTSAFE_PROXY_PRIVS_H

#include <stddef.h>

/* Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft
 * limit (or the old one if raising failed). */
unsigned long proxy_raise_nofile(void);

/* Optionally switch to `user` (NULL: stay), then drop all capabilities
 * (effective, permitted, inheritable, ambient, and the bounding set when
 * allowed), set no_new_privs, and verify with cap_get_proc that none is
 * left. Must run before any thread starts: capabilities are per thread.
 * Returns 0, or a negative errno with a sentence in err. */
int proxy_drop_privileges(const char *user, char *err, size_t errlen);

/* 0 when the calling thread holds no capability, -EPERM otherwise. */
int proxy_verify_no_caps(char *err, size_t errlen);

#endif
