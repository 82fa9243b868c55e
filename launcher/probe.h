/* The self-verification probe: a POSIX sh script (curl + getent, both in
 * the agent image) that runs as the agent container's entrypoint before
 * the agent: it fires every check at once, reports the proxy's answers,
 * prints "agentsafe-probe: ready" and waits on stdin for the launcher's
 * word ("go" once it has the NFLOG drop records and the proxy's deny
 * records as proof), then judges the rest and execs "$@" (the image's
 * entrypoint and the agent) only when all passed.
 * Independent of any probe tool in the image. */
#ifndef AGENTSAFE_LAUNCH_PROBE_H
#define AGENTSAFE_LAUNCH_PROBE_H

#include <stddef.h>
#include <stdint.h>

struct probe_target {
	char host[256]; /* [A-Za-z0-9.-] only (checked by lcfg_parse_target) */
	uint16_t port;
};

struct probe_plan {
	const char *dns_name; /* must not resolve */
	const char *gateway;  /* direct connections here must be dropped */
	uint16_t gateway_port;
	const struct probe_target *allow, *deny, *direct;
	size_t nallow, ndeny, ndirect;
};

/* The script; malloc'd, NULL on ENOMEM or an unsafe host string. It prints
 * one "ok:" or "FAIL:" line per check, then "agentsafe-probe: pass" and
 * execs "$@", or "agentsafe-probe: failed" and exits non-zero. */
char *probe_script(const struct probe_plan *p);

/* Look a name up in a hosts(5) file: the first IPv4 address listed for it.
 * Returns 0 or -ENOENT. */
int probe_hosts_lookup(const char *path, const char *name, char *ip,
		       size_t iplen);

#endif
