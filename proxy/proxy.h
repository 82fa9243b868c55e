/* agentsafe-proxy server: binds the listeners, runs one libevent worker per
 * core, and handles signals (reload, log reopen, drain) on the main thread.
 * main.c parses the command line into a proxy_config and calls these. */
#ifndef AGENTSAFE_PROXY_H
#define AGENTSAFE_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#define PROXY_DEFAULT_LISTEN "127.0.0.1:3128"

struct proxy_config {
	const char *policy_path;
	const char *const *listen; /* ADDR:PORT; port 0 = kernel's choice */
	size_t nlisten;
	const char *log_path; /* "-" = stdout */
	const char *session;
	const char *hosts_path; /* with dns: the only resolver sources */
	const char *const *dns; /* ADDR[:PORT] */
	size_t ndns;
	unsigned workers; /* 0 = one per online CPU */
	const char *user; /* NULL = keep the uid */
	/* > 2: the launcher's self-check window (--selfcheck-fd); else none */
	int selfcheck_fd;
	/* Live approvals: the unix socket `agentsafe approve` talks to
	 * (NULL: none, and `unknown: ask` denies as `deny` would); `ask`
	 * asks whatever the policy's `unknown:` says; notify_fd (> 2) gets
	 * one line per question and budget warning, for the launcher. */
	const char *approval_socket;
	int ask;
	int notify_fd;
	/* HOST[:PORT] (443 by default) never asked about, refused as
	 * `deny` would: the launcher's self-check probe targets. */
	const char *const *never_ask;
	size_t nnever_ask;
	bool learn; /* --learn: every policy (re)loaded in learn mode */
	/* TLS inspection: the session CA (certificate and 0600 key) and the
	 * extra trust for upstream certificates (inspect.c). */
	const char *inspect_ca;
	const char *inspect_key;
	const char *ca_bundle;
	/* Unix socket of the session's git broker: plain-HTTP requests for
	 * git.agentsafe.internal go there (never resolved); NULL = refused. */
	const char *git_broker;
};

struct proxy_server;

/* Load the policy, open the log, bind every listener (one SO_REUSEPORT
 * socket per worker and address). Runs with the privileges it was started
 * with. Returns 0 or a negative errno with a sentence in err. */
int proxy_server_new(const struct proxy_config *cfg, struct proxy_server **out,
		     char *err, size_t errlen);

/* Drop privileges, start the workers, print "listening on ADDR:PORT" per
 * listener, then serve until SIGTERM/SIGINT and drain. Returns 0 after a
 * clean drain, or a negative errno with a sentence in err. */
int proxy_server_run(struct proxy_server *srv, char *err, size_t errlen);

void proxy_server_free(struct proxy_server *srv);

#endif
