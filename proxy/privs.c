/* Privilege handling for agentsafe-proxy. The proxy needs no capability
 * once its listening sockets are bound, so it gives all of them up (and
 * optionally its uid) and checks that the kernel agrees. */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

unsigned long proxy_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return (unsigned long)want.rlim_cur;
	}
	return (unsigned long)rl.rlim_cur;
}

static int switch_user(const char *user, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int rc = getpwnam_r(user, &pw, buf, sizeof buf, &res);
	if (rc != 0 || res == NULL) {
		snprintf(err, errlen, "unknown user '%s'", user);
		return -ENOENT;
	}
	if (setgroups(0, NULL) != 0 && errno != EPERM) {
		int e = errno;
		snprintf(err, errlen, "setgroups for user '%s': %s", user,
			 strerror(e));
		return -e;
	}
	if (setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) != 0 ||
	    setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0) {
		int e = errno;
		snprintf(err, errlen, "cannot switch to user '%s': %s", user,
			 strerror(e));
		return -e;
	}
	/* A process that can get its old uid back has not dropped it. */
	if (pw.pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen,
			 "could regain uid 0 after switching to '%s'", user);
		return -EPERM;
	}
	return 0;
}

int proxy_verify_no_caps(char *err, size_t errlen)
{
	cap_t now = cap_get_proc();
	cap_t none = cap_init();
	int rc = 0;
	if (now == NULL || none == NULL) {
		snprintf(err, errlen, "cannot read capabilities: %s",
			 strerror(errno));
		rc = -EPERM;
	} else if (cap_compare(now, none) != 0) {
		char *txt = cap_to_text(now, NULL);
		snprintf(err, errlen, "capabilities still held: %s",
			 txt ? txt : "?");
		cap_free(txt);
		rc = -EPERM;
	}
	if (CAP_AMBIENT_SUPPORTED()) {
		for (cap_value_t c = 0; rc == 0 && c <= CAP_LAST_CAP; c++) {
			if (cap_get_ambient(c) > 0) {
				snprintf(err, errlen,
					 "ambient capability %d still held", c);
				rc = -EPERM;
			}
		}
	}
	cap_free(now);
	cap_free(none);
	return rc;
}

int proxy_drop_privileges(const char *user, char *err, size_t errlen)
{
	/* The bounding set can only shrink while CAP_SETPCAP is still
	 * effective, so it goes first; failures just mean we lacked it. */
	if (CAP_IS_SUPPORTED(CAP_SETPCAP)) {
		for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
			(void)cap_drop_bound(c);
	}
	if (user != NULL) {
		int rc = switch_user(user, err, errlen);
		if (rc != 0)
			return rc;
	}
	if (CAP_AMBIENT_SUPPORTED())
		(void)cap_reset_ambient();
	cap_t none = cap_init();
	if (none == NULL) {
		snprintf(err, errlen, "cap_init: %s", strerror(errno));
		return -ENOMEM;
	}
	cap_t now = cap_get_proc();
	int differ = now == NULL || cap_compare(now, none) != 0;
	cap_free(now);
	if (differ && cap_set_proc(none) != 0) {
		int e = errno;
		cap_free(none);
		snprintf(err, errlen, "cannot drop capabilities: %s",
			 strerror(e));
		return -e;
	}
	cap_free(none);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		int e = errno;
		snprintf(err, errlen, "cannot set no_new_privs: %s",
			 strerror(e));
		return -e;
	}
	return proxy_verify_no_caps(err, errlen);
}
