/* libcap wrappers for the launcher's one privileged step. */
#include "caps.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

int caps_raise_net_admin(char *err, size_t errlen)
{
	cap_t c = cap_get_proc();
	if (c == NULL) {
		snprintf(err, errlen, "cap_get_proc: %s", strerror(errno));
		return -errno;
	}
	cap_value_t v = CAP_NET_ADMIN;
	cap_flag_value_t perm = CAP_CLEAR;
	cap_get_flag(c, v, CAP_PERMITTED, &perm);
	int rc = 0;
	if (perm != CAP_SET) {
		snprintf(err, errlen,
			 "CAP_NET_ADMIN is not permitted: run as root or "
			 "install with `sudo setcap cap_net_admin+p "
			 "$(command -v agentsafe-launch)`");
		rc = -EPERM;
	} else if (cap_set_flag(c, CAP_EFFECTIVE, 1, &v, CAP_SET) != 0 ||
		   cap_set_proc(c) != 0) {
		rc = -errno;
		snprintf(err, errlen, "raising CAP_NET_ADMIN: %s",
			 strerror(errno));
	}
	cap_free(c);
	return rc;
}

static const cap_value_t file_caps[] = {
    CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_KILL};

int caps_drop_all(int keep_net_admin, char *err, size_t errlen)
{
	return caps_drop_all_keep(keep_net_admin, 0, err, errlen);
}

int caps_files(int on)
{
	cap_t c = cap_get_proc();
	int rc = -1;
	if (c != NULL && cap_set_flag(c, CAP_EFFECTIVE, 5, file_caps,
				      on ? CAP_SET : CAP_CLEAR) == 0)
		rc = cap_set_proc(c);
	cap_free(c);
	return rc;
}

int caps_drop_all_keep(int keep_net_admin, int keep_files, char *err,
		       size_t errlen)
{
	/* The bounding set can only be trimmed with CAP_SETPCAP (root); for
	 * a file-capability install it holds nothing we could regain
	 * without exec of a privileged binary, and no-new-privs stops that. */
	cap_t keep = cap_init(); /* all clear */
	cap_value_t na = CAP_NET_ADMIN;
	cap_t cur = cap_get_proc();
	cap_flag_value_t had = CAP_CLEAR;
	if (cur != NULL)
		cap_get_flag(cur, na, CAP_PERMITTED, &had);
	cap_free(cur);
	if (keep != NULL && keep_net_admin && had == CAP_SET)
		cap_set_flag(keep, CAP_PERMITTED, 1, &na, CAP_SET);
	if (keep != NULL && keep_files)
		cap_set_flag(keep, CAP_PERMITTED, 5, file_caps, CAP_SET);
	for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++) {
		if (v == na && keep_net_admin)
			continue;
		if (keep_files && (v == CAP_CHOWN || v == CAP_DAC_OVERRIDE ||
				   v == CAP_DAC_READ_SEARCH ||
				   v == CAP_FOWNER || v == CAP_KILL))
			continue;
		if (cap_get_bound(v) == 1)
			(void)cap_drop_bound(v);
	}
	cap_t c = keep;
	if (c == NULL || cap_set_proc(c) != 0) {
		int e = errno;
		snprintf(err, errlen, "dropping capabilities: %s", strerror(e));
		cap_free(c);
		return -e;
	}
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	cap_t now = cap_get_proc();
	int same = now && cap_compare(now, c) == 0;
	cap_free(now);
	cap_free(c);
	if (!same) {
		snprintf(err, errlen, "capabilities still held after drop");
		return -EPERM;
	}
	return 0;
}

void caps_lower_net_admin(void)
{
	cap_t c = cap_get_proc();
	cap_value_t v = CAP_NET_ADMIN;
	if (c != NULL && cap_set_flag(c, CAP_EFFECTIVE, 1, &v, CAP_CLEAR) == 0)
		(void)cap_set_proc(c);
	cap_free(c);
}

int caps_net_admin_permitted(void)
{
	cap_t c = cap_get_proc();
	cap_flag_value_t perm = CAP_CLEAR;
	if (c != NULL)
		cap_get_flag(c, CAP_NET_ADMIN, CAP_PERMITTED, &perm);
	cap_free(c);
	return perm == CAP_SET;
}
