/* The self-check: the agent's own container runs the probe script
 * (probe.h) as its entrypoint before the agent. This file builds that
 * entrypoint, reads the script's report on the attach stream, proves the
 * refusals by their records in egress.log (the fence's NFLOG drops, the
 * proxy's denies) and answers "go" or "stop" on the container's stdin. */
#include "selfcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress_log.h"
#include "launch_int.h"
#include "nflog.h"
#include "probe.h"

#define SC_MAX_EXPECT (LCFG_MAX_LIST * 2 + 1)
/* Drop records arrive within ms; the bound only matters on a loaded
 * machine (a missing fence is a FAIL line from the probe, no wait). */
#define SC_EVIDENCE_US 1500000

struct sc_expect {
	const char *event; /* drop | deny */
	char key[256];	   /* drop: dst address; deny: host */
	int port;	   /* drop: dport */
	bool seen;
};

struct selfcheck {
	char *script;
	const char *ep[5];
	const char **cmd; /* the image's entrypoint + the agent's command */
	json_t *image;	  /* owns the entrypoint strings */
	int logfd;
	off_t off;
	struct sc_expect exp[SC_MAX_EXPECT];
	size_t nexp;
	char line[1024];
	size_t llen;
	bool ready, passed, failed;
	bool bad; /* a FAIL line: no need to wait for evidence */
};

static void expect(struct selfcheck *c, const char *event, const char *key,
		   int port)
{
	if (c->nexp >= SC_MAX_EXPECT)
		return;
	struct sc_expect *e = &c->exp[c->nexp++];
	e->event = event;
	launch_snprintf(e->key, sizeof e->key, "%s", key);
	e->port = port;
}

/* The plan from --probe-allow/--probe-deny (and --hosts for the allowed
 * targets' addresses), the script, and what egress.log must show. */
static char *sc_script(const struct sess *s, struct selfcheck *c)
{
	const struct lcfg *cf = s->cfg;
	struct probe_target allow[LCFG_MAX_LIST], deny[LCFG_MAX_LIST],
	    direct[LCFG_MAX_LIST];
	size_t na = 0, nd = 0, ndir = 0;
	for (size_t i = 0; i < cf->probe_allow.n; i++, na++) {
		lcfg_parse_target(cf->probe_allow.v[i], allow[na].host,
				  sizeof allow[na].host, &allow[na].port, 443);
		char ip[64];
		struct in_addr a;
		if (inet_pton(AF_INET, allow[na].host, &a) == 1)
			launch_snprintf(ip, sizeof ip, "%s", allow[na].host);
		else if (!cf->hosts ||
			 probe_hosts_lookup(cf->hosts, allow[na].host, ip,
					    sizeof ip) != 0)
			continue;
		/* Loopback inside the container is its own: no fence test. */
		if (strncmp(ip, "127.", 4) == 0)
			continue;
		launch_snprintf(direct[ndir].host, sizeof direct[ndir].host,
				"%s", ip);
		direct[ndir++].port = allow[na].port;
	}
	for (size_t i = 0; i < cf->probe_deny.n; i++, nd++)
		lcfg_parse_target(cf->probe_deny.v[i], deny[nd].host,
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
	expect(c, "drop", s->gateway, 80);
	for (size_t i = 0; i < ndir; i++)
		expect(c, "drop", direct[i].host, direct[i].port);
	for (size_t i = 0; i < nd; i++)
		expect(c, "deny", deny[i].host, 0);
	return probe_script(&pl);
}

bool selfcheck_window_end(struct sess *s)
{
	if (s->nflog != NULL) {
		/* Queued before the agent existed: the probe's. Bounded, in
		 * case a flood keeps the socket readable. */
		for (int i = 0; i < 16 && fence_nflog_dispatch(s->nflog) > 0;
		     i++)
			;
		fence_nflog_set_origin(s->nflog, NULL);
	}
	if (s->sc_wfd < 0)
		return true;
	/* The byte, not only the close: a child forked since may hold a
	 * copy of this descriptor and keep EOF from coming. */
	bool sent = send(s->sc_wfd, "x", 1, MSG_NOSIGNAL) == 1;
	close(s->sc_wfd);
	s->sc_wfd = -1;
	if (!sent)
		launch_diag("FAIL: cannot end the proxy's self-check window");
	return sent;
}

void selfcheck_free(struct sess *s)
{
	(void)selfcheck_window_end(s);
	struct selfcheck *c = s->sc;
	if (c == NULL)
		return;
	if (c->logfd >= 0)
		close(c->logfd);
	free(c->script);
	free(c->cmd);
	json_decref(c->image);
	free(c);
	s->sc = NULL;
}

/* The image's own entrypoint, which the script execs after a pass. */
static int sc_image_entrypoint(struct sess *s, struct selfcheck *c, size_t *n,
			       char *err, size_t errlen)
{
	char *q = docker_urlencode(s->spec.image);
	char path[1024];
	long st = 0;
	launch_snprintf(path, sizeof path, "/images/%s/json", q ? q : "");
	free(q);
	int rc =
	    docker_call(s->d, "GET", path, NULL, &st, &c->image, err, errlen);
	if (rc == 0 && st != 200) {
		launch_snprintf(err, errlen, "self-check: image %s: HTTP %ld",
				s->spec.image, st);
		rc = -EIO;
	}
	*n = json_array_size(
	    json_object_get(json_object_get(c->image, "Config"), "Entrypoint"));
	return rc;
}

int selfcheck_prepare(struct sess *s, struct docker_container_spec *sp,
		      char *err, size_t errlen)
{
	if (s->cfg->no_verify)
		return 0;
	struct selfcheck *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	c->logfd = -1;
	s->sc = c;
	size_t nep = 0, ncmd = 0;
	int rc = sc_image_entrypoint(s, c, &nep, err, errlen);
	if (rc != 0)
		return rc;
	while (sp->cmd != NULL && sp->cmd[ncmd] != NULL)
		ncmd++;
	c->script = sc_script(s, c);
	c->cmd = calloc(nep + ncmd + 1, sizeof *c->cmd);
	if (c->script == NULL || c->cmd == NULL) {
		launch_snprintf(err, errlen,
				"self-check: cannot build the probe script");
		return -ENOMEM;
	}
	json_t *ep =
	    json_object_get(json_object_get(c->image, "Config"), "Entrypoint");
	for (size_t i = 0; i < nep; i++)
		c->cmd[i] = json_string_value(json_array_get(ep, i));
	for (size_t i = 0; i < ncmd; i++)
		c->cmd[nep + i] = sp->cmd[i];
	c->ep[0] = "/bin/sh";
	c->ep[1] = "-c";
	c->ep[2] = c->script;
	c->ep[3] = "agentsafe-selfcheck"; /* $0 */
	sp->entrypoint = c->ep;
	sp->cmd = c->cmd;
	return 0;
}

void selfcheck_arm(struct sess *s)
{
	struct selfcheck *c = s->sc;
	if (c == NULL)
		return;
	bool files = launch_files_on();
	c->logfd = open(s->log_path, O_RDONLY | O_CLOEXEC);
	launch_files_off(files);
	if (c->logfd >= 0)
		c->off = lseek(c->logfd, 0, SEEK_END);
	if (s->nflog != NULL)
		fence_nflog_set_origin(s->nflog, "selfcheck");
	egress_format_ts(s->selfcheck_start, sizeof s->selfcheck_start);
}

/* ---- the script's report ---- */

/* Outside data on the terminal: printable ASCII only. */
static void sc_print(const char *what, const char *l)
{
	char e[1024];
	size_t i = 0;
	for (; l[i] != '\0' && i < sizeof e - 1; i++)
		e[i] = (char)(l[i] >= 0x20 && l[i] < 0x7f ? l[i] : '?');
	e[i] = '\0';
	fprintf(stderr, PFX "%s%s\n", what, e);
}

static void sc_line(struct selfcheck *c, char *l)
{
	size_t n = strlen(l);
	while (n > 0 && (l[n - 1] == '\r' || l[n - 1] == '\n'))
		l[--n] = '\0';
	const char *pfx = "agentsafe-probe: ";
	if (strncmp(l, pfx, strlen(pfx)) != 0) {
		if (n > 0)
			sc_print("probe: ", l);
		return;
	}
	l += strlen(pfx);
	if (strcmp(l, "ready") == 0)
		c->ready = true;
	else if (strcmp(l, "pass") == 0)
		c->passed = true;
	else if (strcmp(l, "failed") == 0)
		c->failed = true;
	else {
		c->bad = c->bad || strncmp(l, "FAIL:", 5) == 0;
		sc_print("", l);
	}
}

/* Bytes of the attach stream: lines until the pass, the agent's own
 * output after it (to the launcher's stdout or stderr, as it came). The
 * script writes only to stdout (probe_script), so stderr is the agent's
 * even when it overtakes the "pass" line. */
static void sc_bytes(int stream, const unsigned char *data, size_t len,
		     void *arg)
{
	struct selfcheck *c = arg;
	if (stream == 2 && !c->passed) {
		ssize_t w = write(2, data, len);
		(void)w; /* as below */
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (c->passed) {
			ssize_t w =
			    write(stream == 2 ? 2 : 1, data + i, len - i);
			(void)w; /* a terminal that went away: nothing to do */
			return;
		}
		if (c->llen < sizeof c->line - 1)
			c->line[c->llen++] = (char)data[i];
		if (data[i] == '\n' || c->llen == sizeof c->line - 1) {
			c->line[c->llen] = '\0';
			c->llen = 0;
			sc_line(c, c->line);
		}
	}
}

/* Exactly len bytes from fd by deadline_us. */
static int sc_read_full(int fd, unsigned char *buf, size_t len,
			int64_t deadline_us)
{
	size_t got = 0;
	while (got < len) {
		int64_t left = (deadline_us - launch_now_us()) / 1000;
		struct pollfd p = {fd, POLLIN, 0};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -ETIMEDOUT;
		ssize_t r = read(fd, buf + got, len - got);
		if (r <= 0)
			return -EPIPE;
		got += (size_t)r;
	}
	return 0;
}

/* One piece of the stream: any bytes on a tty, else exactly one frame, so
 * that console_loop takes over the stream on a frame boundary. */
static int sc_pump(struct sess *s, int64_t deadline_us)
{
	unsigned char buf[4096];
	if (s->spec.tty) {
		int64_t left = (deadline_us - launch_now_us()) / 1000;
		struct pollfd p = {s->afd, POLLIN, 0};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -ETIMEDOUT;
		ssize_t r = read(s->afd, buf, sizeof buf);
		if (r <= 0)
			return -EPIPE;
		sc_bytes(1, buf, (size_t)r, s->sc);
		return 0;
	}
	unsigned char h[8] = {0};
	int rc = sc_read_full(s->afd, h, sizeof h, deadline_us);
	uint32_t n = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 |
		     (uint32_t)h[6] << 8 | h[7];
	while (rc == 0 && n > 0) {
		size_t k = n < sizeof buf ? n : sizeof buf;
		rc = sc_read_full(s->afd, buf, k, deadline_us);
		if (rc == 0)
			sc_bytes(h[0], buf, k, s->sc);
		n -= (uint32_t)k;
	}
	return rc;
}

/* ---- the evidence ---- */

static void sc_match(struct selfcheck *c, const char *l)
{
	json_t *j = json_loads(l, 0, NULL);
	const char *ev = json_string_value(json_object_get(j, "event"));
	const char *dst = json_string_value(json_object_get(j, "dst"));
	const char *host = json_string_value(json_object_get(j, "host"));
	const char *proto = json_string_value(json_object_get(j, "proto"));
	json_int_t port = json_integer_value(json_object_get(j, "dport"));
	for (size_t i = 0; ev != NULL && i < c->nexp; i++) {
		struct sc_expect *e = &c->exp[i];
		if (strcmp(ev, e->event) != 0)
			continue;
		if (strcmp(ev, "drop") == 0 && dst && proto &&
		    strcmp(proto, "tcp") == 0 && strcmp(dst, e->key) == 0 &&
		    port == e->port)
			e->seen = true;
		if (strcmp(ev, "deny") == 0 && host &&
		    strcmp(host, e->key) == 0)
			e->seen = true;
	}
	json_decref(j);
}

/* The records egress.log gained since selfcheck_arm. */
static void sc_scan(struct selfcheck *c)
{
	char buf[65536];
	for (;;) {
		ssize_t r = pread(c->logfd, buf, sizeof buf - 1, c->off);
		if (r <= 0)
			return;
		buf[r] = '\0';
		char *end = strrchr(buf, '\n');
		if (end == NULL)
			return; /* a record still being written */
		*end = '\0';
		c->off += end + 1 - buf;
		char *save = NULL;
		for (char *l = strtok_r(buf, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save))
			sc_match(c, l);
	}
}

static bool sc_all_seen(const struct selfcheck *c)
{
	for (size_t i = 0; i < c->nexp; i++)
		if (!c->exp[i].seen)
			return false;
	return true;
}

/* Wait (briefly) for every expected record; reports each. */
static bool sc_evidence(struct sess *s, struct selfcheck *c)
{
	int64_t deadline = launch_now_us() + SC_EVIDENCE_US;
	int nfd = s->nflog ? fence_nflog_fd(s->nflog) : -1;
	while (c->logfd >= 0) {
		if (s->nflog != NULL)
			(void)fence_nflog_dispatch(s->nflog);
		sc_scan(c);
		int64_t left = (deadline - launch_now_us()) / 1000;
		if (sc_all_seen(c) || left <= 0)
			break;
		struct pollfd p = {nfd, POLLIN, 0};
		(void)poll(&p, nfd >= 0 ? 1 : 0, left < 10 ? (int)left : 10);
	}
	bool all = c->logfd >= 0;
	for (size_t i = 0; i < c->nexp; i++) {
		const struct sc_expect *e = &c->exp[i];
		all = all && e->seen;
		if (strcmp(e->event, "drop") == 0)
			launch_diag("%s: drop record for %s:%d in egress.log",
				    e->seen ? "ok" : "FAIL", e->key, e->port);
		else
			launch_diag("%s: deny record for %s in egress.log",
				    e->seen ? "ok" : "FAIL", e->key);
	}
	if (c->logfd < 0)
		launch_diag("FAIL: cannot read %s", s->log_path);
	return all;
}

int step_probe_up(struct sess *s, char *err, size_t errlen)
{
	struct selfcheck *c = s->sc;
	if (c == NULL) {
		launch_diag(
		    "*** --no-verify: the fence is NOT verified before the "
		    "agent starts ***");
		return 0;
	}
	int64_t t = launch_now_us();
	int64_t deadline = t + 30 * 1000000LL;
	while (!c->ready && !c->failed && sc_pump(s, deadline) == 0)
		;
	t = launch_phase(s, "  probe's checks", t);
	bool proven = c->ready && !c->bad && sc_evidence(s, c);
	t = launch_phase(s, "  drop/deny records", t);
	/* Nothing of the agent's can exist before the word: the window
	 * ends here, and a window that cannot end stops the session. */
	proven = selfcheck_window_end(s) && proven;
	const char *word = proven ? "go\n" : "stop\n";
	if (c->ready && write(s->afd, word, strlen(word)) < 0)
		proven = false;
	deadline = launch_now_us() + 5 * 1000000LL;
	while (c->ready && !c->passed && !c->failed &&
	       sc_pump(s, deadline) == 0)
		;
	launch_phase(s, "  probe's verdict", t);
	egress_format_ts(s->selfcheck_end, sizeof s->selfcheck_end);
	bool passed = proven && c->passed && !c->failed;
	selfcheck_free(s);
	launch_save_state(s, false);
	if (!passed) {
		launch_snprintf(err, errlen,
				"self-verification failed: the session does "
				"not start");
		return -EPERM;
	}
	launch_diag("self-verification passed");
	return 0;
}
