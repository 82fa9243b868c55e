/* agentsafe-proxy command line: parse options into a proxy_config, then
 * hand over to the server (proxy/server.c). Exit codes: 0 after a clean
 * drain, 1 on a runtime failure, 2 on a usage error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privs.h"
#include "proxy.h"
#include "version.h"

#define MAX_LIST 64

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: agentsafe-proxy --policy FILE [--listen ADDR:PORT]...\n"
	    "         [--log FILE|-] [--session ID] [--hosts FILE]\n"
	    "         [--dns ADDR[:PORT]]... [--workers N] [--user NAME]\n"
	    "         [--selfcheck-fd N] [--approval-socket PATH [--ask]]\n"
	    "         [--notify-fd N] [--never-ask HOST[:PORT]]... [--learn]\n"
	    "         [--inspect-ca FILE --inspect-key FILE] [--ca-bundle "
	    "FILE]\n"
	    "         [--git-broker SOCKET]\n"
	    "\n"
	    "The egress proxy of an AgentSafe session: CONNECT tunnels and\n"
	    "plain-HTTP forwarding, each request decided by the policy and\n"
	    "written to the egress log (JSON Lines).\n"
	    "\n"
	    "  --policy FILE     policy.yaml to enforce (required)\n"
	    "  --listen ADDR:PORT  listen there (repeatable; port 0 = any\n"
	    "                    free port); default " PROXY_DEFAULT_LISTEN "\n"
	    "  --log FILE|-      egress log, appended (default - = stdout)\n"
	    "  --session ID      session id written into every record\n"
	    "  --hosts FILE      resolve names from this hosts file only\n"
	    "  --dns ADDR[:PORT] use this DNS server (repeatable); with\n"
	    "                    --hosts/--dns the system resolver is unused\n"
	    "  --workers N       event-loop threads (default: one per CPU)\n"
	    "  --user NAME       switch to this user after binding\n"
	    "  --selfcheck-fd N  records of connections accepted before a "
	    "byte\n"
	    "                    (or EOF) arrives on descriptor N (> 2) carry\n"
	    "                    \"origin\": \"selfcheck\" (agentsafe-launch's "
	    "probe)\n"
	    "  --approval-socket PATH  serve live approvals there (mode\n"
	    "                    0600; agentsafe approve): with the policy's\n"
	    "                    unknown: ask, or --ask, a host no rule names\n"
	    "                    waits for the user's answer\n"
	    "  --ask             ask as if the policy said unknown: ask\n"
	    "  --notify-fd N     write a line there per question or warning\n"
	    "  --never-ask HOST[:PORT]  refuse this target as unknown: deny\n"
	    "                    would (repeatable; the launcher's probe)\n"
	    "  --learn           learn mode whatever the policy says: names\n"
	    "                    no rule allows are let through and marked\n"
	    "                    would_deny (denies, the address guard and\n"
	    "                    the SNI check still hold)\n"
	    "  --inspect-ca FILE session CA certificate for rules with\n"
	    "                    inspect: true (TLS terminated, requests\n"
	    "                    decided by the rule's http: list)\n"
	    "  --inspect-key FILE  its private key (mode 0600)\n"
	    "  --ca-bundle FILE  extra CAs trusted for inspected upstreams\n"
	    "                    (besides the system store)\n"
	    "  --git-broker SOCKET  hand http://git.agentsafe.internal/\n"
	    "                    requests to the git broker on this unix\n"
	    "                    socket (the name is never resolved)\n"
	    "  --version         print the version and exit\n"
	    "  --help            this text\n"
	    "\n"
	    "Prints 'listening on ADDR:PORT' on stderr per listener when\n"
	    "ready. Signals: SIGHUP reloads the policy (a bad file keeps the\n"
	    "old one), SIGUSR1 reopens the log, SIGTERM drains and exits.\n");
}

static int parse_workers(const char *arg, unsigned *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long n = strtoul(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || n == 0 || n > 1024) {
		fprintf(stderr,
			"agentsafe-proxy: --workers wants 1..1024, got '%s'\n",
			arg);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static int parse_notify_fd(const char *arg, int *out)
{
	char *end = NULL;
	long fd = strtol(arg, &end, 10);
	if (end == arg || *end != '\0' || fd < 3 || fd > 65535) {
		fprintf(
		    stderr,
		    "agentsafe-proxy: --notify-fd wants a descriptor > 2\n");
		return -1;
	}
	*out = (int)fd;
	return 0;
}

/* Append a repeatable option's value; -1 (said on stderr) when full. */
static int add_value(const char **v, size_t *n, const char *opt,
		     const char *val)
{
	if (*n == MAX_LIST) {
		fprintf(stderr, "agentsafe-proxy: too many --%s\n", opt);
		return -1;
	}
	v[(*n)++] = val;
	return 0;
}

/* --selfcheck-fd's descriptor, made close-on-exec; -1 after saying why.
 * A standard stream is never the window: an agent's stdin left open
 * would keep it open. */
static int selfcheck_fd(const char *arg)
{
	char *end = NULL;
	errno = 0;
	long fd = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || fd <= 2 || fd > 65535 ||
	    fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0) {
		fprintf(stderr,
			"agentsafe-proxy: --selfcheck-fd wants an open "
			"descriptor > 2, got '%s'\n",
			arg);
		return -1;
	}
	return (int)fd;
}

static const struct option opts[] = {
    {"policy", required_argument, NULL, 'p'},
    {"listen", required_argument, NULL, 'l'},
    {"log", required_argument, NULL, 'L'},
    {"session", required_argument, NULL, 's'},
    {"hosts", required_argument, NULL, 'H'},
    {"dns", required_argument, NULL, 'd'},
    {"workers", required_argument, NULL, 'w'},
    {"user", required_argument, NULL, 'u'},
    {"selfcheck-fd", required_argument, NULL, 'c'},
    {"approval-socket", required_argument, NULL, 'A'},
    {"ask", no_argument, NULL, 'a'},
    {"notify-fd", required_argument, NULL, 'n'},
    {"never-ask", required_argument, NULL, 'N'},
    {"learn", no_argument, NULL, 'E'},
    {"inspect-ca", required_argument, NULL, 'C'},
    {"inspect-key", required_argument, NULL, 'K'},
    {"ca-bundle", required_argument, NULL, 'B'},
    {"git-broker", required_argument, NULL, 'g'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* The command line into cfg: -1 to go on, else the exit status (usage
 * errors said on stderr, --help and --version printed). */
static int parse_args(int argc, char **argv, struct proxy_config *cfg)
{
	static const char *listen[MAX_LIST];
	static const char *dns[MAX_LIST];
	static const char *never_ask[MAX_LIST];
	memset(cfg, 0, sizeof *cfg);
	cfg->listen = listen;
	cfg->dns = dns;
	cfg->never_ask = never_ask;
	cfg->log_path = "-";
	cfg->session = "";
	cfg->notify_fd = -1;

	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			cfg->policy_path = optarg;
			break;
		case 'l':
			if (add_value(listen, &cfg->nlisten, "listen", optarg))
				return 2;
			break;
		case 'L':
			cfg->log_path = optarg;
			break;
		case 's':
			cfg->session = optarg;
			break;
		case 'H':
			cfg->hosts_path = optarg;
			break;
		case 'd':
			if (add_value(dns, &cfg->ndns, "dns", optarg))
				return 2;
			break;
		case 'w':
			if (parse_workers(optarg, &cfg->workers) != 0)
				return 2;
			break;
		case 'u':
			cfg->user = optarg;
			break;
		case 'c':
			cfg->selfcheck_fd = selfcheck_fd(optarg);
			if (cfg->selfcheck_fd < 0)
				return 2;
			break;
		case 'A':
			cfg->approval_socket = optarg;
			break;
		case 'a':
			cfg->ask = 1;
			break;
		case 'n':
			if (parse_notify_fd(optarg, &cfg->notify_fd) != 0)
				return 2;
			break;
		case 'N':
			if (add_value(never_ask, &cfg->nnever_ask, "never-ask",
				      optarg))
				return 2;
			break;
		case 'E':
			cfg->learn = true;
			break;
		case 'C':
			cfg->inspect_ca = optarg;
			break;
		case 'K':
			cfg->inspect_key = optarg;
			break;
		case 'B':
			cfg->ca_bundle = optarg;
			break;
		case 'g':
			cfg->git_broker = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("agentsafe-proxy %s\n", AGENTSAFE_VERSION_FULL);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "agentsafe-proxy: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (cfg->policy_path == NULL) {
		fprintf(stderr, "agentsafe-proxy: --policy FILE is required\n");
		usage(stderr);
		return 2;
	}

	return -1;
}

int main(int argc, char **argv)
{
	struct proxy_config cfg;
	int status = parse_args(argc, argv, &cfg);
	if (status >= 0)
		return status;

	/* Until the main thread waits for them, reload/reopen/stop signals
	 * stay pending instead of killing a half-started proxy. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	(void)pthread_sigmask(SIG_BLOCK, &set, NULL);
	(void)proxy_raise_nofile();
	char err[512];
	struct proxy_server *srv = NULL;
	if (proxy_server_new(&cfg, &srv, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe-proxy: %s\n", err);
		return 1;
	}
	int rc = proxy_server_run(srv, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "agentsafe-proxy: %s\n", err);
	proxy_server_free(srv);
	return rc == 0 ? 0 : 1;
}
