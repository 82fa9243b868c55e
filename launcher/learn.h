/* Learn mode for a session (`agentsafe-launch --learn`, or `mode: learn` in
 * the policy): loud in the terminal at the start and the end, and at the
 * end the `agentsafe log suggest` block of what the session would have
 * been denied. */
#ifndef AGENTSAFE_LAUNCH_LEARN_H
#define AGENTSAFE_LAUNCH_LEARN_H

#include <stdbool.h>

struct sess;

/* Whether the session learns: --learn, or the policy file says mode: learn
 * (a file that does not load is the proxy's to report: false here). Prints
 * the start banner when it does. */
bool learn_start(const struct sess *s, bool flag);
/* The end banner, then `agentsafe log suggest --policy POLICY LOG` for the
 * session's log, run as the invoking user (never with the launcher's
 * privileges); its output goes to stdout. */
void learn_end(const struct sess *s);

#endif
