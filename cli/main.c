/* `agentsafe`: the user's tool for policies, audit trails and checking the
 * machine. Dispatches to the `policy`, `log`, `doctor`, `sessions`, `review`
 * and `prune` sub-commands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "version.h"

static void usage(FILE *out)
{
	(void)fputs(
	    "usage: agentsafe policy check [-f FILE | FILE]\n"
	    "       agentsafe policy explain [-f FILE | FILE] HOST[:PORT] | "
	    "--record JSON\n"
	    "       agentsafe policy edit [-f FILE]\n"
	    "       agentsafe policy replay NEW.yaml [LOG...|--session ID|"
	    "--all] [--since T]\n"
	    "       agentsafe log [FILE...] [options]   (agentsafe log "
	    "--help)\n"
	    "       agentsafe log suggest [FILE...] [--wildcards] [--apply "
	    "POLICY]\n"
	    "       agentsafe sessions\n"
	    "       agentsafe review ID [--merge | --discard]\n"
	    "       agentsafe prune [--dry-run] [--older-than 7d] [--force]\n"
	    "       agentsafe doctor [--json]\n"
	    "       agentsafe approve [--session ID] [HOST[:PORT] --once | "
	    "--for-session | --always | --deny]\n"
	    "       agentsafe --version\n"
	    "The policy defaults to $XDG_CONFIG_HOME/agentsafe/policy.yaml "
	    "(~/.config/agentsafe/policy.yaml),\n"
	    "the one agentsafe-launch uses.\n",
	    out);
}

int main(int argc, char **argv)
{
	static const char *const commands[] = {
	    "policy", "log",	 "doctor", "sessions",	"review",
	    "prune",  "approve", "--help", "--version", NULL};
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("agentsafe %s\n", AGENTSAFE_VERSION_FULL);
		return 0;
	}
	if (strcmp(argv[1], "policy") == 0)
		return cli_policy_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "log") == 0)
		return cli_log_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "doctor") == 0)
		return cli_doctor_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "sessions") == 0)
		return cli_sessions_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "review") == 0)
		return cli_review_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "approve") == 0)
		return cli_approve_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "prune") == 0)
		return cli_prune_main(argc - 1, argv + 1);
	cli_unknown("agentsafe", argv[1][0] == '-' ? "option" : "command",
		    argv[1], commands);
	return 2;
}
