/* Sub-command entry points of the `agentsafe` tool, and the small helpers
 * they share (cli_util.c). argv[0] is the sub-command name ("policy", "log",
 * "doctor"). Entry points return the process exit code. */
#ifndef AGENTSAFE_CLI_H
#define AGENTSAFE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

int cli_policy_main(int argc, char **argv);
int cli_log_main(int argc, char **argv);
int cli_doctor_main(int argc, char **argv);
/* agentsafe policy edit (policy_edit.c); path is the policy to edit. */
int cli_policy_edit(const char *path);
/* agentsafe policy replay (policy_replay.c): exit 0 same, 1 flips, 2 error. */
int cli_policy_replay_main(int argc, char **argv);

/* The candidate closest to word by edit distance, or NULL when none is
 * close enough to be a plausible typo. cands ends with NULL. */
const char *cli_closest(const char *word, const char *const *cands);
/* "PROG: unknown command|option 'WORD'; did you mean 'X'?" (the second
 * part only when a candidate is close) and a one-line hint naming the
 * help, on stderr. WORD is escaped. kind is "command" or "option". */
void cli_unknown(const char *prog, const char *kind, const char *word,
		 const char *const *cands);
/* For getopt_long loops with opterr = 0 and an optstring starting with ':':
 * reports the bad argv element in one line (unknown option with a
 * suggestion from the long options, or a missing value) and the hint. */
struct option;
void cli_bad_option(const char *prog, int c, char **argv,
		    const struct option *lo);

/* Width of the terminal on stdout (TIOCGWINSZ), else $COLUMNS, else 0
 * (not a terminal: never truncate). */
size_t cli_columns(void);
/* Display columns of s: UTF-8 characters, with our own SGR colour
 * sequences (ESC [ ... m) counting zero. */
size_t cli_width(const char *s, size_t len);
/* Write line (len bytes, no newline) cut to cols display columns with an
 * ellipsis when longer (cols 0: whole), then a newline. Colour sequences
 * are kept whole and a cut inside colour is closed with a reset. */
void cli_put_fitted(FILE *out, const char *line, size_t len, size_t cols);

/* s escaped (logread_escape) in a column of width display columns: padded
 * with spaces, and with cut, a longer s ends in an ellipsis at width. */
void cli_put_cell(FILE *out, const char *s, size_t width, bool cut);

/* The user's policy: $XDG_CONFIG_HOME/agentsafe/policy.yaml, else
 * ~/.config/agentsafe/policy.yaml (what agentsafe-launch uses). 0, or
 * -ENOENT with neither variable set, -ENAMETOOLONG. */
int cli_default_policy(char *out, size_t len);
/* session_cmd.c, review_cmd.c: the history of sessions (session.json). */
int cli_sessions_main(int argc, char **argv);
int cli_prune_main(int argc, char **argv);
int cli_review_main(int argc, char **argv);
/* approve_cmd.c: answer the proxy's questions (unknown: ask). */
int cli_approve_main(int argc, char **argv);

#endif
