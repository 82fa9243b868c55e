/* The network steps of a run: the session's internal Docker network, the
 * loopback relay of published ports, and the nftables fence with its NFLOG
 * reader (the one step with CAP_NET_ADMIN effective). */
#include "step.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caps.h"
#include "fence.h"
#include "nflog.h"
#include "launch_int.h"
#include "portfwd.h"
#include "sweep.h"

/* ---- network ---- */

void step_network_down(struct sess *s)
{
	sweep_network(s->d, s->net);
}

/* The gateway the engine chose: the proxy listens there. */
static int network_gateway(struct sess *s, char *err, size_t errlen)
{
	char path[256];
	long st = 0;
	json_t *r = NULL;
	launch_snprintf(path, sizeof path, "/networks/%s", s->net);
	int rc = docker_call(s->d, "GET", path, NULL, &st, &r, err, errlen);
	if (rc == 0 && st == 200) {
		json_t *cfg = json_array_get(
		    json_object_get(json_object_get(r, "IPAM"), "Config"), 0);
		const char *gw =
		    json_string_value(json_object_get(cfg, "Gateway"));
		struct in_addr a;
		if (gw && inet_pton(AF_INET, gw, &a) == 1)
			launch_snprintf(s->gateway, sizeof s->gateway, "%s",
					gw);
	}
	json_decref(r);
	if (s->gateway[0] == '\0') {
		launch_snprintf(
		    err, errlen,
		    "network %s: the engine reported no IPv4 gateway", s->net);
		return -EIO;
	}
	return 0;
}

int step_network_up(struct sess *s, char *err, size_t errlen)
{
	json_t *b = docker_network_body(s->net, s->bridge, s->id);
	long st = 0;
	json_t *r = NULL;
	if (b == NULL) {
		launch_snprintf(err, errlen, "network %s: out of memory",
				s->net);
		return -ENOMEM;
	}
	int rc = docker_call(s->d, "POST", "/networks/create", b, &st, &r, err,
			     errlen);
	json_decref(b);
	json_decref(r);
	if (rc == 0 && st != 201)
		rc = -EIO;
	if (rc != 0)
		return rc; /* not ours: nothing to remove */
	launch_save_state(s, false);
	rc = network_gateway(s, err, errlen);
	if (rc != 0)
		step_network_down(s);
	return rc;
}

/* ---- publish relay ---- */

/* --publish/--ssh (see portfwd.h): the relay binds and forks while the
 * launcher may still set its ids (before the fence drops capabilities);
 * it learns the container's address once the container runs. */
int step_publish_up(struct sess *s, char *err, size_t errlen)
{
	struct lcfg *c = s->cfg;
	if (c->npublish == 0)
		return 0;
	struct portfwd_range pr[LCFG_MAX_LIST];
	for (size_t i = 0; i < c->npublish; i++) {
		pr[i].first = c->publish[i].first;
		pr[i].last = c->publish[i].last;
		pr[i].addr = c->publish[i].addr;
	}
	/* As the session's user (nobody for a root launcher without sudo:
	 * the agent's ports need no privilege). */
	uid_t uid = s->host_uid ? s->host_uid : 65534;
	gid_t gid = s->host_uid ? s->host_gid : 65534;
	int rc = portfwd_start(pr, c->npublish, uid, gid, &s->fwd_pid,
			       &s->fwd_ctl, err, errlen);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < c->npublish; i++) {
		const struct lcfg_ports *q = &c->publish[i];
		const char *a = q->addr[0] ? q->addr : "127.0.0.1";
		char ports[16];
		if (q->first == q->last)
			launch_snprintf(ports, sizeof ports, "%u", q->first);
		else
			launch_snprintf(ports, sizeof ports, "%u-%u", q->first,
					q->last);
		launch_diag("publishing %s:%s -> the container", a, ports);
		if (!lcfg_bind_is_loopback(a))
			launch_alert("%s:%s is reachable from beyond this "
				     "machine: whoever reaches %s can connect "
				     "to the container's port%s",
				     a, ports, a,
				     c->ssh_port == q->first
					 ? " (sshd: keys only)"
					 : "");
	}
	return 0;
}

void step_publish_down(struct sess *s)
{
	if (s->fwd_ctl >= 0)
		close(s->fwd_ctl);
	s->fwd_ctl = -1;
	launch_stop_child(s->fwd_pid, "the port relay");
	s->fwd_pid = 0;
}

/* Tell the relay the running container's address. */
int step_publish_target(struct sess *s, char *err, size_t errlen)
{
	char path[256];
	long st = 0;
	json_t *r = NULL;
	launch_snprintf(path, sizeof path, "/containers/%s/json", s->container);
	int rc = docker_call(s->d, "GET", path, NULL, &st, &r, err, errlen);
	const char *ip = json_string_value(json_object_get(
	    json_object_get(
		json_object_get(json_object_get(r, "NetworkSettings"),
				"Networks"),
		s->net),
	    "IPAddress"));
	if (rc == 0 && (st != 200 || ip == NULL || *ip == '\0')) {
		launch_snprintf(err, errlen,
				"publish: no address for %s on network %s",
				s->container, s->net);
		rc = -EIO;
	}
	if (rc == 0)
		rc = portfwd_target(s->fwd_ctl, ip, err, errlen);
	else
		close(s->fwd_ctl);
	s->fwd_ctl = -1;
	json_decref(r);
	return rc;
}

/* ---- fence ---- */

void step_fence_down(struct sess *s)
{
	(void)fence_nflog_dispatch(s->nflog); /* last drops */
	fence_nflog_free(s->nflog);
	s->nflog = NULL;
	sweep_fence(s->table, s->caps_kept);
}

/* NFLOG groups are per host: derive one from the id and step on when
 * another session holds it. */
static int nflog_open(struct sess *s, char *err, size_t errlen)
{
	unsigned base = (unsigned)strtoul(s->id + SESSION_ID_LEN - 4, NULL, 16);
	int rc = -EBUSY;
	for (unsigned i = 0; i < 64 && rc != 0; i++) {
		s->group = (uint16_t)(1000 + (base + i) % 60000);
		rc = fence_nflog_open(s->group, s->log, &s->nflog, err, errlen);
	}
	return rc;
}

static void fence_config_of(const struct sess *s, struct fence_config *fc)
{
	memset(fc, 0, sizeof *fc);
	launch_snprintf(fc->table, sizeof fc->table, "%s", s->table);
	launch_snprintf(fc->bridge, sizeof fc->bridge, "%s", s->bridge);
	inet_pton(AF_INET, s->gateway, &fc->proxy_addr);
	fc->proxy_port = s->proxy_port;
	for (size_t i = 0; i < s->cfg->npublish && i < FENCE_MAX_PUBLISHED;
	     i++) {
		fc->published[i].first = s->cfg->publish[i].first;
		fc->published[i].last = s->cfg->publish[i].last;
		fc->npublished++;
	}
	fc->nflog_group = s->group;
}

/* The only step with CAP_NET_ADMIN effective: after it the launcher keeps
 * what teardown needs permitted, and nothing effective. */
#ifdef AGENTSAFE_TEST_HOOKS
/* Test builds only (CMAKE_BUILD_TYPE=Debug): AGENTSAFE_TEST_SABOTAGE
 * breaks the fence so the tests can show the self-check failing closed.
 * "no-fence": no table at all; "no-drop-rule": the table without its log
 * + drop rules (what is not accepted falls through to the hooks' accept
 * policy). Returns 1 when the fence is to be skipped. */
static int test_sabotage(const struct sess *s, bool applied)
{
	const char *v = getenv("AGENTSAFE_TEST_SABOTAGE");
	if (v == NULL)
		return 0;
	launch_diag("TEST BUILD: sabotaging the fence (%s)", v);
	if (!applied)
		return strcmp(v, "no-fence") == 0;
	if (strcmp(v, "no-drop-rule") != 0)
		return 0;
	char cmd[512];
	launch_snprintf(
	    cmd, sizeof cmd,
	    "for c in input forward; do nft -a list chain inet %s $c | "
	    "sed -n 's/.* drop # handle \\([0-9]*\\)$/\\1/p' | while "
	    "read h; do nft delete rule inet %s $c handle $h; done; done",
	    s->table, s->table);
	/* NOLINTNEXTLINE(cert-env33-c): test builds only, fixed text */
	if (system(cmd) != 0)
		launch_diag("TEST BUILD: removing the drop rules failed");
	return 0;
}
#else
static int test_sabotage(const struct sess *s, bool applied)
{
	(void)s;
	(void)applied;
	return 0;
}
#endif

/* The NFLOG reader, then the table that logs to it; on failure neither
 * is left behind. */
static int fence_install(struct sess *s, char *err, size_t errlen)
{
	int rc = nflog_open(s, err, errlen);
	if (rc != 0)
		return rc;
	struct fence_config fc;
	fence_config_of(s, &fc);
	rc = test_sabotage(s, false) ? 0 : fence_apply(&fc, err, errlen);
	if (rc == 0)
		(void)test_sabotage(s, true);
	if (rc != 0) {
		fence_nflog_free(s->nflog);
		s->nflog = NULL;
	}
	return rc;
}

int step_fence_up(struct sess *s, char *err, size_t errlen)
{
	int rc = caps_raise_net_admin(err, errlen);
	if (rc != 0)
		return rc;
	rc = fence_install(s, err, errlen);
	char e2[256];
	int drc = caps_drop_all_keep(
	    1, s->uid != geteuid() || s->host_uid != geteuid(), e2, sizeof e2);
	launch_caps_dropped();
	launch_save_state(s, false);
	if (rc != 0)
		return rc;
	if (drc != 0) {
		launch_snprintf(err, errlen, "%s", e2);
		step_fence_down(s);
		return drc;
	}
	launch_diag("proxy on %s:%u, fence %s on %s", s->gateway,
		    (unsigned)s->proxy_port, s->table, s->bridge);
	launch_save_state(s, false);
	return 0;
}
