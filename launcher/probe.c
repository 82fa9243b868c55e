/* Builds the probe script. Every host string is re-checked against a
 * strict character set before it is pasted into shell text. */
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool safe(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 253)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789.-") == strlen(s) &&
	       s[0] != '-';
}

struct buf {
	char *p;
	size_t len, cap;
	bool bad;
};

static void add(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add(struct buf *b, const char *fmt, ...)
{
	if (b->bad)
		return;
	va_list ap;
	va_start(ap, fmt);
	char tmp[2048];
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		b->bad = true;
		return;
	}
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t nc = (b->cap + (size_t)n + 1) * 2;
		char *np = realloc(b->p, nc);
		if (np == NULL) {
			b->bad = true;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, tmp, (size_t)n + 1);
	b->len += (size_t)n;
}

/* Launched first, all at once: the lookup and the direct connections are
 * only judged after the launcher's word (their drops are proven by the
 * NFLOG records it reads, not by waiting out a timeout). */
static void script_launch(struct buf *b, const struct probe_plan *p)
{
	add(b,
	    "(timeout 1 getent hosts %s >/dev/null 2>&1; echo $? >\"$d.dns\") "
	    "& bg=\"$bg $!\"\n",
	    p->dns_name);
	for (size_t i = 0; i < p->ndirect + 1; i++) {
		const char *h = i == 0 ? p->gateway : p->direct[i - 1].host;
		unsigned port =
		    i == 0 ? p->gateway_port : p->direct[i - 1].port;
		if (!safe(h))
			b->bad = true;
		/* curl's own pid is kept: script_settle stops it before
		 * "ready" (a kill of the subshell would leave it running). */
		add(b,
		    "(curl -s -o /dev/null --noproxy '*' --connect-timeout 1 "
		    "-m 1 http://%s:%u/ 2>/dev/null & echo $! "
		    ">\"$d.cpid%zu\"; wait $!; echo $? >\"$d.direct%zu\") "
		    "& bd=\"$bd $!\"\n",
		    h, port, i, i);
	}
	for (size_t i = 0; i < p->nallow; i++) {
		const struct probe_target *t = &p->allow[i];
		if (!safe(t->host))
			b->bad = true;
		add(b,
		    "(c=$(curl -sS -o /dev/null -m 15 --proxy \"$P\" -w "
		    "'%%{http_connect}' https://%s:%u/ 2>\"$d.allow%zu.err\"); "
		    "echo \"$? $c\" >\"$d.allow%zu\") & w=\"$w $!\"\n",
		    t->host, t->port, i, i);
	}
	/* A 403 comes at once; a tunnel that opens instead would wait on
	 * its TLS handshake, hence the short bound. */
	for (size_t i = 0; i < p->ndeny; i++) {
		const struct probe_target *t = &p->deny[i];
		if (!safe(t->host))
			b->bad = true;
		add(b,
		    "(c=$(curl -s -o /dev/null -m 0.5 --proxy \"$P\" -w "
		    "'%%{http_connect}' https://%s:%u/ 2>/dev/null); "
		    "echo \"$? $c\" >\"$d.deny%zu\") & w=\"$w $!\"\n",
		    t->host, t->port, i);
	}
}

/* The proxy's answers, once its checks are done. */
static void script_proxy_verdicts(struct buf *b, const struct probe_plan *p)
{
	add(b, "for x in $w; do wait $x; done\n");
	for (size_t i = 0; i < p->nallow; i++) {
		const struct probe_target *t = &p->allow[i];
		/* 60 (certificate not trusted) still proves the tunnel reached
		 * a TLS server; the probe sends nothing secret. */
		add(b,
		    "rc=; c=; read -r rc c <\"$d.allow%zu\"\n"
		    "if [ \"$c\" = 200 ] && { [ \"$rc\" = 0 ] || [ \"$rc\" = "
		    "60 "
		    "]; }; then ok 'allowed %s:%u reachable through the "
		    "proxy'\n"
		    "else bad \"allowed %s:%u not reachable through the proxy "
		    "(CONNECT $c, curl exit $rc: $(head -c 200 "
		    "\"$d.allow%zu.err\"))\"; fi\n",
		    i, t->host, t->port, t->host, t->port, i);
	}
	for (size_t i = 0; i < p->ndeny; i++) {
		const struct probe_target *t = &p->deny[i];
		add(b,
		    "rc=; c=; read -r rc c <\"$d.deny%zu\"\n"
		    "if [ \"$c\" = 403 ]; then ok 'denied %s:%u refused by the "
		    "proxy (403)'\n"
		    "else bad \"denied %s:%u: expected 403 from the proxy, got "
		    "'$c'\"; fi\n",
		    i, t->host, t->port, t->host, t->port);
	}
}

/* After the launcher's word: a direct connection that ended in anything
 * but a timeout (28) got a packet back, i.e. was not dropped; a lookup
 * still pending resolved nothing (the session's resolv.conf points at
 * the container's loopback, so a lookup fails at once; one that answers
 * does so in a few ms, and gets up to 50 ms more here). Builtins only:
 * every process costs milliseconds on a busy host. */
static void script_judge(struct buf *b, const struct probe_plan *p)
{
	add(b,
	    "i=0; while [ ! -s \"$d.dns\" ] && [ $i -lt 5 ]; do "
	    "sleep 0.01; i=$((i+1)); done\n"
	    "r=; [ -s \"$d.dns\" ] && read -r r <\"$d.dns\"\n"
	    "if [ \"$r\" = 0 ]; then\n"
	    "  bad 'DNS resolves %s: names must only be resolved by the "
	    "proxy'\n"
	    "else ok 'DNS does not resolve %s'; fi\n",
	    p->dns_name, p->dns_name);
	for (size_t i = 0; i < p->ndirect + 1; i++) {
		const char *h = i == 0 ? p->gateway : p->direct[i - 1].host;
		unsigned port =
		    i == 0 ? p->gateway_port : p->direct[i - 1].port;
		add(b,
		    "r=; [ -s \"$d.direct%zu\" ] && read -r r "
		    "<\"$d.direct%zu\"\n"
		    "if [ -z \"$r\" ] || [ \"$r\" = 28 ] || [ \"$r\" = 143 ]; "
		    "then ok 'direct connection to %s:%u dropped'\n"
		    "else bad \"direct connection to %s:%u not dropped (curl "
		    "exit $r)\"; fi\n",
		    i, i, h, port, h, port);
	}
}

/* Before "ready": wait (at most ~1 s) until every direct connection is
 * either answered or has its SYN on the wire (SYN_SENT in /proc/net/tcp),
 * so the launcher's short wait for drop records starts after the packets
 * left, even on a loaded machine; one that was answered (refused, or let
 * through) is a FAIL at once, so a missing fence fails without waiting
 * out the evidence window. */
static void script_settle(struct buf *b, const struct probe_plan *p)
{
	add(b, "n=0; while [ $n -lt 50 ]; do pend=0\n");
	for (size_t i = 0; i < p->ndirect + 1; i++) {
		const char *h = i == 0 ? p->gateway : p->direct[i - 1].host;
		unsigned port =
		    i == 0 ? p->gateway_port : p->direct[i - 1].port;
		add(b,
		    "if [ -s \"$d.direct%zu\" ]; then r=; read -r r "
		    "<\"$d.direct%zu\"; [ \"$r\" = 28 ] || "
		    "[ -n \"$early%zu\" ] || { early%zu=1; bad \"direct "
		    "connection to %s:%u not dropped (curl exit $r)\"; }\n"
		    "else pend=$((pend+1)); fi\n",
		    i, i, i, i, h, port);
	}
	add(b, "syn=0; for f in /proc/net/tcp /proc/net/tcp6; do "
	       "[ -r $f ] || continue; while read -r _ _ _ st _; do "
	       "[ \"$st\" = 02 ] && syn=$((syn+1)); done <$f; done\n"
	       "if [ $pend -eq 0 ] || [ $syn -ge $pend ]; then break; fi\n"
	       "sleep 0.02 2>/dev/null || break; n=$((n+1)); done\n");
	/* Nothing of the container's may be connected now: a direct
	 * connection that is open was let through (and logged, if at all,
	 * by a rule that did not drop it). Checked before the stop below,
	 * which would end it. */
	add(b, "est=0; for f in /proc/net/tcp /proc/net/tcp6; do "
	       "[ -r $f ] || continue; while read -r _ _ _ st _; do "
	       "[ \"$st\" = 01 ] && est=$((est+1)); done <$f; done\n"
	       "if [ $est != 0 ]; then bad \"$est TCP connections "
	       "established past the proxy\"; fi\n");
	/* Then every direct connection attempt is stopped and reaped, its
	 * socket closed: no retransmitted SYN of the probe's can reach the
	 * fence after the launcher ends the labelling window, where its
	 * drop would count as the agent's. A stopped one exits 143; its
	 * first SYN's drop record is the launcher's proof. */
	for (size_t i = 0; i < p->ndirect + 1; i++)
		add(b,
		    "c=; k=0; while [ ! -s \"$d.cpid%zu\" ] && [ $k -lt 100 ]; "
		    "do sleep 0.01 2>/dev/null || break; k=$((k+1)); done\n"
		    "[ -s \"$d.cpid%zu\" ] && read -r c <\"$d.cpid%zu\"\n"
		    "[ -n \"$c\" ] && kill \"$c\" 2>/dev/null\n",
		    i, i, i);
	add(b, "for x in $bd; do wait $x; done\n");
}

char *probe_script(const struct probe_plan *p)
{
	struct buf b = {0};
	if (!safe(p->dns_name) || !safe(p->gateway))
		return NULL;
	/* The script's own stderr joins its stdout (fd 3 keeps the real
	 * one for the agent): on the attach stream, stderr is then only ever
	 * the agent's, which the engine may deliver before the "pass" line
	 * (the two pipes are copied independently). */
	add(&b, "exec 3>&2 2>&1\n"
		"fail=0; bg=; bd=; w=\n"
		"ok() { echo \"agentsafe-probe: ok: $*\"; }\n"
		"bad() { echo \"agentsafe-probe: FAIL: $*\"; fail=1; }\n"
		"P=\"$AGENTSAFE_PROBE_PROXY\"\n"
		"[ -t 0 ] && stty -echo 2>/dev/null\n"
		/* The container is fresh and the agent not started: no one
		 * else writes /tmp yet. Tools beyond sh, curl, getent and
		 * timeout are optional (a minimal image has cat, rm, sleep). */
		"d=/tmp/.agentsafe-probe-$$\n");
	script_launch(&b, p);
	script_proxy_verdicts(&b, p);
	script_settle(&b, p);
	add(&b, "echo 'agentsafe-probe: ready'\n"
		"go=; read -r go || true\n");
	script_judge(&b, p);
	add(&b, "kill $bg 2>/dev/null; rm -f \"$d\".* &\n"
		"[ \"$go\" = go ] || bad 'the launcher found no proof of the "
		"drops'\n"
		"if [ $fail -ne 0 ]; then echo 'agentsafe-probe: failed'; "
		"exit $fail; fi\n"
		"[ -t 0 ] && stty echo 2>/dev/null\n"
		"echo 'agentsafe-probe: pass'\n"
		"exec \"$@\" 2>&3 3>&-\n");
	if (b.bad) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

int probe_hosts_lookup(const char *path, const char *name, char *ip,
		       size_t iplen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	char line[1024];
	int rc = -ENOENT;
	while (rc != 0 && fgets(line, sizeof line, f) != NULL) {
		char *h = strchr(line, '#');
		if (h)
			*h = '\0';
		char *save = NULL;
		char *addr = strtok_r(line, " \t\r\n", &save);
		struct in_addr a;
		if (addr == NULL || inet_pton(AF_INET, addr, &a) != 1)
			continue;
		for (char *t = strtok_r(NULL, " \t\r\n", &save); t;
		     t = strtok_r(NULL, " \t\r\n", &save)) {
			if (strcasecmp(t, name) == 0) {
				snprintf(ip, iplen, "%s", addr);
				rc = 0;
				break;
			}
		}
	}
	(void)fclose(f); /* only read */
	return rc;
}
