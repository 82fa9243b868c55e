/* Test driver: runs the launcher's git broker (launcher/broker.c) outside
 * a session. Usage:
 *   broker_driver DIR SESSION_ID EGRESS_LOG UPSTREAM|- NAME=WORKDIR=GITDIR...
 * Prints "ready" once the socket listens, stops the broker when stdin
 * closes. Or: broker_driver --note SESSION_ID EGRESS_LOG POLICY prints the
 * provenance note (launcher/broker_note.c) and the failed push_upstream
 * and pr counts the launcher's exit status comes from. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "egress_log.h"

#define MAX_REPOS 8

int main(int argc, char **argv)
{
	struct broker_repo repos[MAX_REPOS];
	struct egress_log *log = NULL;
	char err[512];
	size_t n = 0;
	if (argc == 5 && strcmp(argv[1], "--note") == 0) {
		struct broker_note_in in = {.session_id = argv[2],
					    .agent = "shell",
					    .image = "test-image",
					    .policy_path = argv[4],
					    .log_path = argv[3]};
		long up_errors = -1, pr_errors = -1;
		in.upstream_errors = &up_errors;
		in.pr_errors = &pr_errors;
		char *note = broker_note_text(&in);
		if (note == NULL)
			return 1;
		fputs(note, stdout);
		/* what the launcher turns into exit 123 */
		printf("driver: upstream_errors=%ld pr_errors=%ld\n", up_errors,
		       pr_errors);
		free(note);
		return 0;
	}
	if (argc < 6) {
		fprintf(stderr, "usage: broker_driver DIR ID LOG UPSTREAM|- "
				"NAME=WORKDIR=GITDIR...\n");
		return 2;
	}
	for (int i = 5; i < argc && n < MAX_REPOS; i++) {
		char *a = argv[i], *e1 = strchr(a, '='),
		     *e2 = e1 ? strchr(e1 + 1, '=') : NULL;
		if (e2 == NULL)
			return 2;
		*e1 = *e2 = '\0';
		repos[n++] = (struct broker_repo){a, e2 + 1, e1 + 1};
	}
	/* UPSTREAM+push: --push-upstream too; UPSTREAM+pr: and --pr */
	char *plus = strchr(argv[4], '+');
	bool push = plus != NULL, pr = plus != NULL && strcmp(plus, "+pr") == 0;
	if (plus != NULL)
		*plus = '\0';
	if (egress_log_open(argv[3], argv[2], &log, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct broker_config cfg = {
	    .session_id = argv[2],
	    .dir = argv[1],
	    .upstream = strcmp(argv[4], "-") == 0 ? NULL : argv[4],
	    .push_upstream = push,
	    .pr = pr,
	    .repos = repos,
	    .nrepos = n,
	    .log = log,
	    .uid = getuid(),
	    .gid = getgid(),
	};
	pid_t pid = 0;
	if (broker_start(&cfg, &pid, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		egress_log_close(log);
		return 1;
	}
	printf("ready\n");
	(void)fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0)
		;
	(void)kill(pid, SIGTERM);
	(void)waitpid(pid, NULL, 0);
	egress_log_close(log);
	return 0;
}
