/* Placeholder until the log commands land. */
#include <stdio.h>

#include "cli.h"

int cli_log_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("agentsafe log: not implemented yet\n", stderr);
	return 2;
}
