/* `agentsafe-launch [run]`: one fenced session, start to teardown. */
#ifndef AGENTSAFE_LAUNCH_RUN_H
#define AGENTSAFE_LAUNCH_RUN_H

struct lcfg;

/* Runs the session c describes; returns the process exit code (the
 * agent's, 128+signal, or EXIT_LAUNCH when the launcher failed). c's
 * publish list gains the --ssh port. */
int run_command(struct lcfg *c);

#endif
