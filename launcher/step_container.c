/* The container steps of a run: the agent's spec, the probe container that
 * proves the fence before the agent may start, and the agent's container
 * (attached, started, and for --detach handed to the background). */
#include "step.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch_int.h"
#include "probe.h"
#include "spec.h"
#include "sweep.h"

/* ---- container spec ---- */

int step_spec_up(struct sess *s, char *err, size_t errlen)
{
	s->store = calloc(1, sizeof *s->store);
	if (s->store == NULL) {
		launch_snprintf(err, errlen, "container spec: out of memory");
		return -ENOMEM;
	}
	spec_build(s, s->store, &s->spec);
	return 0;
}

void step_spec_down(struct sess *s)
{
	free(s->store);
	s->store = NULL;
}

/* ---- probe ---- */

struct outbuf {
	char *buf;
	size_t len;
};

static void out_collect(int stream, const unsigned char *data, size_t len,
			void *arg)
{
	(void)stream;
	struct outbuf *o = arg;
	if (o->len + len > 65536)
		return;
	char *nb = realloc(o->buf, o->len + len + 1);
	if (nb == NULL)
		return;
	o->buf = nb;
	memcpy(o->buf + o->len, data, len);
	o->len += len;
	o->buf[o->len] = '\0';
}

/* The probe's script: the allowed targets through the proxy, the denied
 * ones refused, and the allowed ones' addresses unreachable directly. */
static char *probe_script_of(const struct sess *s)
{
	const struct lcfg *c = s->cfg;
	struct probe_target allow[LCFG_MAX_LIST], deny[LCFG_MAX_LIST],
	    direct[LCFG_MAX_LIST];
	size_t na = 0, nd = 0, ndir = 0;
	for (size_t i = 0; i < c->probe_allow.n; i++, na++) {
		lcfg_parse_target(c->probe_allow.v[i], allow[na].host,
				  sizeof allow[na].host, &allow[na].port, 443);
		char ip[64];
		struct in_addr a;
		if (inet_pton(AF_INET, allow[na].host, &a) == 1)
			launch_snprintf(ip, sizeof ip, "%s", allow[na].host);
		else if (!c->hosts ||
			 probe_hosts_lookup(c->hosts, allow[na].host, ip,
					    sizeof ip) != 0)
			continue;
		/* Loopback inside the container is its own: no fence test. */
		if (strncmp(ip, "127.", 4) == 0)
			continue;
		launch_snprintf(direct[ndir].host, sizeof direct[ndir].host,
				"%s", ip);
		direct[ndir++].port = allow[na].port;
	}
	for (size_t i = 0; i < c->probe_deny.n; i++, nd++)
		lcfg_parse_target(c->probe_deny.v[i], deny[nd].host,
				  sizeof deny[nd].host, &deny[nd].port, 443);
	struct probe_plan pl = {
	    .dns_name = na ? allow[0].host : "agentsafe-probe.test",
	    .gateway = s->gateway,
	    .gateway_port = 80,
	    .allow = allow,
	    .nallow = na,
	    .deny = deny,
	    .ndeny = nd,
	    .direct = direct,
	    .ndirect = ndir,
	};
	return probe_script(&pl);
}

/* Run the created probe to its end; its output and exit code. */
static int probe_collect(struct sess *s, struct outbuf *o, int *code, char *err,
			 size_t errlen)
{
	int fd = docker_attach(s->d, s->probe, false, err, errlen);
	if (fd < 0)
		return fd;
	int rc = docker_start_container(s->d, s->probe, err, errlen);
	if (rc != 0) {
		close(fd);
		return rc;
	}
	struct docker_demux dm = {0};
	unsigned char buf[4096];
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int pr = poll(&p, 1, 120000);
		if (pr <= 0)
			break;
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0)
			break;
		if (docker_demux_feed(&dm, buf, (size_t)r, out_collect, o) != 0)
			break;
	}
	close(fd);
	char werr[512] = "";
	if (docker_wait_container(s->d, s->probe, code, werr, sizeof werr) != 0)
		launch_diag("waiting for %s: %s", s->probe, werr);
	return 0;
}

/* A container like the agent's, with nothing of the user's, that checks
 * the fence from inside before the agent may start. */
int step_probe_up(struct sess *s, char *err, size_t errlen)
{
	if (s->cfg->no_verify) {
		launch_diag(
		    "*** --no-verify: the fence is NOT verified before the "
		    "agent starts ***");
		return 0;
	}
	char *script = probe_script_of(s);
	if (script == NULL) {
		launch_snprintf(err, errlen, "probe: cannot build the script");
		return -ENOMEM;
	}
	struct docker_container_spec sp = s->spec;
	const char *ep[] = {"/bin/sh", "-c", NULL};
	const char *cmd[] = {script, NULL};
	sp.entrypoint = ep;
	sp.cmd = cmd;
	sp.tty = false;
	sp.open_stdin = false;
	sp.stdin_once = false;
	sp.binds = NULL; /* the probe needs nothing of the user's */
	sp.npublish = 0;
	sp.device_requests = NULL;
	sp.workdir = "/";
	int rc = docker_create_container(s->d, s->probe, &sp, err, errlen);
	free(script);
	if (rc != 0)
		return rc; /* not ours: nothing to remove */
	struct outbuf o = {0};
	int code = -1;
	rc = probe_collect(s, &o, &code, err, errlen);
	sweep_container(s->d, s->probe);
	if (o.buf) {
		char *save = NULL;
		for (char *l = strtok_r(o.buf, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save))
			fprintf(stderr, PFX "%s\n",
				strncmp(l, "agentsafe-probe: ", 17) == 0
				    ? l + 17
				    : l);
	}
	free(o.buf);
	if (rc != 0)
		return rc;
	if (code != 0) {
		launch_snprintf(err, errlen,
				"self-verification failed (probe exit %d): the "
				"session does not start",
				code);
		return -EPERM;
	}
	launch_diag("self-verification passed");
	return 0;
}

/* ---- container ---- */

void step_container_down(struct sess *s)
{
	if (s->afd >= 0)
		close(s->afd);
	s->afd = -1;
	sweep_container(s->d, s->container);
}

/* --detach: tell the foreground launcher the session is up, then leave
 * the terminal; later diagnostics go to launcher.log. */
static void detach_announce(struct sess *s)
{
	fprintf(stderr,
		PFX "session %s running in the background; "
		    "`agentsafe-launch attach %s`, `agentsafe-"
		    "launch stop %s`\n",
		s->name, s->name, s->name);
	char b = 1;
	if (write(s->ready_fd, &b, 1) != 1)
		launch_diag("lost the foreground launcher");
	close(s->ready_fd);
	int nul = open("/dev/null", O_RDWR);
	char lp[4300];
	launch_snprintf(lp, sizeof lp, "%s/launcher.log", s->state_dir);
	int lf = open(lp, O_WRONLY | O_CREAT | O_APPEND, 0600);
	dup2(nul, 0);
	dup2(nul, 1);
	dup2(lf >= 0 ? lf : nul, 2);
}

/* Attached before the start, so no output is lost; started; the relay
 * pointed at it. */
static int container_start(struct sess *s, char *err, size_t errlen)
{
	bool detach = s->cfg->detach;
	if (!detach) {
		s->afd = docker_attach(s->d, s->container, true, err, errlen);
		if (s->afd < 0)
			return s->afd;
	}
	int rc = docker_start_container(s->d, s->container, err, errlen);
	if (rc == 0 && s->fwd_pid > 0)
		rc = step_publish_target(s, err, errlen);
	if (rc == 0 && detach) {
		s->afd = docker_attach(s->d, s->container, false, err, errlen);
		if (s->afd < 0)
			return s->afd;
		detach_announce(s);
	}
	return rc;
}

int step_container_up(struct sess *s, char *err, size_t errlen)
{
	int rc =
	    docker_create_container(s->d, s->container, &s->spec, err, errlen);
	if (rc != 0)
		return rc; /* e.g. --name taken: not ours to remove */
	launch_save_state(s, false);
	rc = container_start(s, err, errlen);
	if (rc != 0)
		step_container_down(s);
	return rc;
}
