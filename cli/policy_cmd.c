/* Placeholder until the policy commands land. */
#include <stdio.h>

#include "cli.h"

int cli_policy_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("agentsafe policy: not implemented yet\n", stderr);
	return 2;
}
