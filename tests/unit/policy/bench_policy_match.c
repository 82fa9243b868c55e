/* Benchmark: the same match workload against a 10-rule and a 100 000-rule
 * policy (both generated as YAML and loaded through the real parser). It
 * prints both timings and their ratio; it asserts only that every match
 * decided correctly, never a time, so a slow CI machine cannot fail it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

#define QUERIES 1024

/* Rule i: every 4th a wildcard "*.wI.bench.test", every 4th+1 an exact
 * name with ports [443, 8443], the rest exact names on the default port. */
static char *gen_policy(size_t n, size_t *len)
{
	size_t cap = 64 + n * 64, o = 0;
	char *t = malloc(cap);
	if (t == NULL)
		return NULL;
	o += (size_t)snprintf(t + o, cap - o, "version: 1\nallow:\n");
	for (size_t i = 0; i < n; i++) {
		if (i % 4 == 0)
			o += (size_t)snprintf(t + o, cap - o,
					      "  - \"*.w%zu.bench.test\"\n", i);
		else if (i % 4 == 1)
			o += (size_t)snprintf(t + o, cap - o,
					      "  - host: h%zu.bench.test\n"
					      "    ports: [443, 8443]\n",
					      i);
		else
			o += (size_t)snprintf(t + o, cap - o,
					      "  - h%zu.bench.test\n", i);
	}
	*len = o;
	return t;
}

struct query {
	char host[96];
	unsigned port;
	enum policy_verdict want;
};

/* Queries decided by rules 0..`span`-1 when span is 10, so both policies
 * must give the same answers; misses are misses in both. */
static void gen_queries(struct query *q, size_t span)
{
	for (size_t i = 0; i < QUERIES; i++) {
		size_t r = (i * 7919) % span;
		q[i].port = 443;
		q[i].want = POLICY_ALLOW;
		switch (i % 6) {
		case 0: /* exact or wildcard-suffixed hit */
			if (r % 4 == 0)
				snprintf(q[i].host, sizeof q[i].host,
					 "x%zu.w%zu.bench.test", i, r);
			else
				snprintf(q[i].host, sizeof q[i].host,
					 "H%zu.Bench.Test.", r);
			break;
		case 1: /* deep subdomain under a wildcard */
			snprintf(q[i].host, sizeof q[i].host,
				 "a.b.c.d.e.f.g.h%zu.w%zu.bench.test", i,
				 r - r % 4);
			break;
		case 2: /* apex of a wildcard: not covered */
			snprintf(q[i].host, sizeof q[i].host, "w%zu.bench.test",
				 r - r % 4);
			q[i].want = POLICY_DENY;
			break;
		case 3: /* miss */
			snprintf(q[i].host, sizeof q[i].host,
				 "m%zu.unknown.test", i);
			q[i].want = POLICY_DENY;
			break;
		case 4: /* port rules */
			snprintf(q[i].host, sizeof q[i].host, "h%zu.bench.test",
				 r - r % 4 + 1);
			q[i].port = 8443;
			break;
		default: /* hostile */
			snprintf(q[i].host, sizeof q[i].host,
				 "h%zu.bench.test@evil.test", r);
			q[i].want = POLICY_DENY;
			break;
		}
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One run of `rounds` passes over the queries; ns per match.
 * Returns -1 on a wrong decision. */
static double run(const struct policy *p, const struct query *q, size_t rounds)
{
	double t0 = now();
	for (size_t r = 0; r < rounds; r++) {
		for (size_t i = 0; i < QUERIES; i++) {
			struct policy_decision d;
			policy_match(p, q[i].host, (uint16_t)q[i].port, &d);
			if (d.verdict != q[i].want) {
				fprintf(
				    stderr,
				    "bench: wrong decision for %s:%u (%s)\n",
				    q[i].host, q[i].port, d.reason);
				return -1;
			}
		}
	}
	return (now() - t0) * 1e9 / (double)(rounds * QUERIES);
}

static struct policy *load(size_t n)
{
	size_t len;
	char *txt = gen_policy(n, &len);
	if (txt == NULL)
		return NULL;
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX];
	double t0 = now();
	if (policy_load_string("bench.yaml", txt, len, &p, err, sizeof err) !=
	    0)
		fprintf(stderr, "bench: %s\n", err);
	else
		printf("loaded %zu rules (%zu bytes of YAML) in %.1f ms\n",
		       policy_rule_count(p), len, (now() - t0) * 1e3);
	free(txt);
	return p;
}

int main(int argc, char **argv)
{
	size_t rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
	if (rounds == 0)
		rounds = 1;
	static struct query q[QUERIES], qwide[QUERIES];
	gen_queries(q, 10);
	gen_queries(qwide, 100000);
	struct policy *small = load(10), *big = load(100000);
	if (small == NULL || big == NULL || policy_rule_count(small) != 10 ||
	    policy_rule_count(big) != 100000) {
		policy_unref(small);
		policy_unref(big);
		return 1;
	}
	/* Interleaved and best of five, so a busy machine slows both alike. */
	double ts = 1e30, tb = 1e30, tw = 1e30;
	for (int rep = 0; rep < 5; rep++) {
		double a = run(small, q, rounds), b = run(big, q, rounds),
		       c = run(big, qwide, rounds);
		if (a < 0 || b < 0 || c < 0) {
			policy_unref(small);
			policy_unref(big);
			return 1;
		}
		ts = a < ts ? a : ts;
		tb = b < tb ? b : tb;
		tw = c < tw ? c : tw;
	}
	policy_unref(small);
	policy_unref(big);
	printf("10 rules:      %.1f ns/match\n", ts);
	printf("100000 rules:  %.1f ns/match\n", tb);
	printf(
	    "ratio 100000/10: %.2f (same %d queries, %zu rounds, best of 5)\n",
	    tb / ts, QUERIES, rounds);
	printf("100000 rules, queries spread over all rules: %.1f ns/match\n",
	       tw);
	return 0;
}
