/* Sub-command entry points of the `agentsafe` tool. argv[0] is the
 * sub-command name ("policy" or "log"). They return the process exit code. */
#ifndef AGENTSAFE_CLI_H
#define AGENTSAFE_CLI_H

int cli_policy_main(int argc, char **argv);
int cli_log_main(int argc, char **argv);
/* session_cmd.c, review_cmd.c: the history of sessions (session.json). */
int cli_sessions_main(int argc, char **argv);
int cli_prune_main(int argc, char **argv);
int cli_review_main(int argc, char **argv);

#endif
