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

char *probe_script(const struct probe_plan *p)
{
	struct buf b = {0};
	if (!safe(p->dns_name) || !safe(p->gateway))
		return NULL;
	add(&b, "fail=0\n"
		"ok() { echo \"agentsafe-probe: ok: $*\"; }\n"
		"bad() { echo \"agentsafe-probe: FAIL: $*\"; fail=1; }\n"
		"P=\"$AGENTSAFE_PROBE_PROXY\"\n");
	add(&b,
	    "if timeout 3 getent hosts %s >/dev/null 2>&1; then\n"
	    "  bad 'DNS resolves %s: names must only be resolved by the "
	    "proxy'\n"
	    "else ok 'DNS does not resolve %s'; fi\n",
	    p->dns_name, p->dns_name, p->dns_name);
	/* A direct connection must time out (28): a refusal (7) would mean
	 * a packet came back, i.e. the fence did not drop it. */
	size_t n = p->ndirect + 1;
	for (size_t i = 0; i < n; i++) {
		const char *h = i == 0 ? p->gateway : p->direct[i - 1].host;
		unsigned port =
		    i == 0 ? p->gateway_port : p->direct[i - 1].port;
		if (!safe(h))
			b.bad = true;
		add(&b,
		    "curl -s -o /dev/null --noproxy '*' --connect-timeout 2 "
		    "-m 3 http://%s:%u/ 2>/dev/null; rc=$?\n"
		    "if [ $rc -eq 28 ]; then ok 'direct connection to %s:%u "
		    "dropped'\n"
		    "else bad \"direct connection to %s:%u not dropped (curl "
		    "exit $rc)\"; fi\n",
		    h, port, h, port, h, port);
	}
	for (size_t i = 0; i < p->nallow; i++) {
		const struct probe_target *t = &p->allow[i];
		if (!safe(t->host))
			b.bad = true;
		/* 60 (certificate not trusted) still proves the tunnel reached
		 * a TLS server; the probe sends nothing secret. */
		add(&b,
		    "c=$(curl -sS -o /dev/null -m 15 --proxy \"$P\" -w "
		    "'%%{http_connect}' https://%s:%u/ 2>/tmp/.probe.err); "
		    "rc=$?\n"
		    "if [ \"$c\" = 200 ] && { [ $rc -eq 0 ] || [ $rc -eq 60 ]; "
		    "}; then ok 'allowed %s:%u reachable through the proxy'\n"
		    "else bad \"allowed %s:%u not reachable through the proxy "
		    "(CONNECT $c, curl exit $rc: $(head -c 200 "
		    "/tmp/.probe.err))\"; fi\n",
		    t->host, t->port, t->host, t->port, t->host, t->port);
	}
	for (size_t i = 0; i < p->ndeny; i++) {
		const struct probe_target *t = &p->deny[i];
		if (!safe(t->host))
			b.bad = true;
		add(&b,
		    "c=$(curl -s -o /dev/null -m 15 --proxy \"$P\" -w "
		    "'%%{http_connect}' https://%s:%u/ 2>/dev/null)\n"
		    "if [ \"$c\" = 403 ]; then ok 'denied %s:%u refused by the "
		    "proxy (403)'\n"
		    "else bad \"denied %s:%u: expected 403 from the proxy, got "
		    "'$c'\"; fi\n",
		    t->host, t->port, t->host, t->port, t->host, t->port);
	}
	add(&b, "exit $fail\n");
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
