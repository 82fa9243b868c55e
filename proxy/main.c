/* agentsafe-proxy command line: parse options into a proxy_config, then
 * hand over to the server (proxy/server.c). Exit codes: 0 after a clean
 * drain, 1 on a runtime failure, 2 on a usage error. */
#include <errno.h>
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"policy", required_argument, NULL, 'p'},
	    {"listen", required_argument, NULL, 'l'},
	    {"log", required_argument, NULL, 'L'},
	    {"session", required_argument, NULL, 's'},
	    {"hosts", required_argument, NULL, 'H'},
	    {"dns", required_argument, NULL, 'd'},
	    {"workers", required_argument, NULL, 'w'},
	    {"user", required_argument, NULL, 'u'},
	    {"git-broker", required_argument, NULL, 'g'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	static const char *listen[MAX_LIST];
	static const char *dns[MAX_LIST];
	struct proxy_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.listen = listen;
	cfg.dns = dns;
	cfg.log_path = "-";
	cfg.session = "";

	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			cfg.policy_path = optarg;
			break;
		case 'l':
			if (cfg.nlisten == MAX_LIST) {
				fprintf(stderr,
					"agentsafe-proxy: too many --listen\n");
				return 2;
			}
			listen[cfg.nlisten++] = optarg;
			break;
		case 'L':
			cfg.log_path = optarg;
			break;
		case 's':
			cfg.session = optarg;
			break;
		case 'H':
			cfg.hosts_path = optarg;
			break;
		case 'd':
			if (cfg.ndns == MAX_LIST) {
				fprintf(stderr,
					"agentsafe-proxy: too many --dns\n");
				return 2;
			}
			dns[cfg.ndns++] = optarg;
			break;
		case 'w': {
			char *end = NULL;
			errno = 0;
			unsigned long n = strtoul(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    n == 0 || n > 1024) {
				fprintf(
				    stderr,
				    "agentsafe-proxy: --workers wants 1..1024, "
				    "got '%s'\n",
				    optarg);
				return 2;
			}
			cfg.workers = (unsigned)n;
			break;
		}
		case 'u':
			cfg.user = optarg;
			break;
		case 'g':
			cfg.git_broker = optarg;
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
	if (cfg.policy_path == NULL) {
		fprintf(stderr, "agentsafe-proxy: --policy FILE is required\n");
		usage(stderr);
		return 2;
	}

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
