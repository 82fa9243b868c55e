/* agentsafe-bench, inspected modes: HTTPS requests through a TLS-
 * inspecting proxy (agentsafe-proxy with `inspect: true`, squid ssl-bump)
 * to a TLS upstream of the generator's own. */
#ifndef AGENTSAFE_BENCH_HTTPS_H
#define AGENTSAFE_BENCH_HTTPS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/types.h>

struct https_cfg {
	bool keepalive;		   /* many requests per tunnel, else one */
	bool direct;		   /* no proxy: straight to the upstream */
	struct sockaddr_in proxy;  /* the proxy under test */
	struct sockaddr_in server; /* the TLS upstream's listen address */
	const char *host;	   /* CONNECT, SNI and Host name */
	const char *ca;		   /* CA file the client trusts */
	const char *cert, *key;	   /* the upstream's certificate */
	int concurrency;
	double duration;
	int body;  /* response body bytes */
	pid_t pid; /* proxy, for its CPU per request */
};

/* Shared with agentsafe_bench.c. */
double bench_now_s(void);
double bench_proc_cpu_s(pid_t pid);

/* Runs one inspected mode and prints one key=value line. */
int https_run(const struct https_cfg *cfg);

#endif
