/* `agentsafe`: the user's tool for policies and audit trails. Dispatches to
 * the `policy` and `log` sub-commands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out)
{
	(void)fputs(
	    "usage: agentsafe policy check FILE\n"
	    "       agentsafe policy explain FILE HOST[:PORT] | --record JSON\n"
	    "       agentsafe log [FILE...] [options]   (agentsafe log "
	    "--help)\n"
	    "       agentsafe log suggest [FILE...] [--wildcards] [--apply "
	    "POLICY]\n"
	    "       agentsafe sessions\n"
	    "       agentsafe review ID [--merge | --discard]\n"
	    "       agentsafe prune [--dry-run] [--older-than 7d] [--force]\n",
	    out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "policy") == 0)
		return cli_policy_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "log") == 0)
		return cli_log_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "sessions") == 0)
		return cli_sessions_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "review") == 0)
		return cli_review_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "prune") == 0)
		return cli_prune_main(argc - 1, argv + 1);
	fprintf(stderr, "agentsafe: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
