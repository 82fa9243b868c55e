/* Test driver for the fence: applies/removes/sweeps session tables and runs
 * the NFLOG reader into an egress.log, so the shell test can drive the real
 * launcher code from inside the namespaces it built. */
#include <errno.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress_log.h"
#include "fence.h"
#include "nflog.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static bool live_if_listed(const char *id, void *arg)
{
	char **ids = arg;
	for (; *ids != NULL; ids++)
		if (strcmp(*ids, id) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	char err[512];
	if (argc >= 7 && strcmp(argv[1], "apply") == 0) {
		struct fence_config c = {0};
		snprintf(c.table, sizeof c.table, "%s", argv[2]);
		snprintf(c.bridge, sizeof c.bridge, "%s", argv[3]);
		if (inet_pton(AF_INET, argv[4], &c.proxy_addr) != 1) {
			fprintf(stderr, "fence_driver: bad address %s\n",
				argv[4]);
			return 2;
		}
		c.proxy_port = (uint16_t)strtoul(argv[5], NULL, 10);
		c.nflog_group = (uint16_t)strtoul(argv[6], NULL, 10);
		for (int i = 7; i < argc && c.npublished < FENCE_MAX_PUBLISHED;
		     i++) {
			char *end = NULL;
			if (strncmp(argv[i], "owner=", 6) == 0) {
				c.owner_pid =
				    (pid_t)strtol(argv[i] + 6, NULL, 10);
				continue;
			}
			unsigned long a = strtoul(argv[i], &end, 10), b = 0;
			if (*end == '-')
				b = strtoul(end + 1, &end, 10);
			if (*end == '\0' && b != 0) {
				c.published[c.npublished].first = (uint16_t)a;
				c.published[c.npublished].last = (uint16_t)b;
				c.npublished++;
			}
		}
		if (fence_apply(&c, err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "remove") == 0) {
		if (fence_remove(argv[2], err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "sweep") == 0) {
		/* "sweep": the built-in owner check; "sweep --live ID...":
		 * the listed sessions are the live ones. */
		bool listed = argc >= 3 && strcmp(argv[2], "--live") == 0;
		int n = fence_sweep(listed ? live_if_listed : NULL,
				    listed ? (void *)(argv + 3) : NULL, err,
				    sizeof err);
		if (n < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		printf("%d\n", n);
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "nflog") == 0) {
		struct egress_log *log = NULL;
		struct fence_nflog *n = NULL;
		if (egress_log_open(argv[3], argv[4], &log, err, sizeof err) !=
			0 ||
		    fence_nflog_open((uint16_t)strtoul(argv[2], NULL, 10), log,
				     &n, err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			egress_log_close(log);
			return 1;
		}
		(void)signal(SIGTERM, on_term);
		(void)signal(SIGINT, on_term);
		fprintf(stderr, "nflog ready\n");
		while (!stop) {
			struct pollfd p = {fence_nflog_fd(n), POLLIN, 0};
			int r = poll(&p, 1, 200);
			int rc = r > 0 ? fence_nflog_dispatch(n) : 0;
			if (rc < 0) {
				fprintf(stderr,
					"fence_driver: nflog read: %s\n",
					strerror(-rc));
				break;
			}
		}
		fprintf(stderr, "nflog folded %llu\n",
			(unsigned long long)fence_nflog_folded(n));
		fence_nflog_free(n);
		egress_log_close(log);
		return 0;
	}
	fprintf(stderr,
		"usage: fence_driver apply TABLE BRIDGE PROXY_ADDR "
		"PORT GROUP [FIRST-LAST...] [owner=PID]\n"
		"       fence_driver remove TABLE | sweep [--live ID...] "
		"| nflog GROUP LOG SESSION\n");
	return 2;
}
