/* CAP_NET_ADMIN for the fence only: raised (from the permitted set that
 * root or the file capability cap_net_admin+p gives) around the nftables
 * and NFLOG setup, then every other capability dropped for good and the
 * drop verified. CAP_NET_ADMIN stays permitted but not effective so the
 * table can be removed at teardown; it is raised again only for that. */
#ifndef AGENTSAFE_LAUNCH_CAPS_H
#define AGENTSAFE_LAUNCH_CAPS_H

#include <stddef.h>

int caps_raise_net_admin(char *err, size_t errlen);
/* Clear CAP_NET_ADMIN from the effective set only (other capabilities a
 * root launcher still needs before the drop, e.g. CAP_CHOWN, stay). */
void caps_lower_net_admin(void);
/* Whether CAP_NET_ADMIN is permitted (root or the file capability). */
int caps_net_admin_permitted(void);
/* Clear effective, permitted and inheritable sets (and, when allowed, the
 * bounding set), keeping only CAP_NET_ADMIN permitted when keep_net_admin,
 * and, when keep_files (a root launcher whose clones belong to the agent's
 * uid, or sudo: the proxy and the state files are the user's), CAP_CHOWN,
 * CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER and CAP_KILL permitted
 * (not effective) for the bookkeeping and the teardown. Fails if anything else
 * is left. */
int caps_drop_all(int keep_net_admin, char *err, size_t errlen);
int caps_drop_all_keep(int keep_net_admin, int keep_files, char *err,
		       size_t errlen);
/* Make the kept file capabilities effective (0) or not (1). */
int caps_files(int on);

#endif
