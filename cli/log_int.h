/* Shared between the `agentsafe log` sub-commands (review and suggest). */
#ifndef AGENTSAFE_LOG_INT_H
#define AGENTSAFE_LOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "logread.h"

struct log_filter {
	int64_t since_ms, until_ms; /* -1: unbounded */
	bool denied;
	const char *host_pattern;
	const char *session;
	/* Records with an `origin` (the launcher's self-check) match only with
	 * all_origins; otherwise each one that passed every other test is
	 * counted in *hidden (when not NULL) and left out. */
	bool all_origins;
	unsigned long *hidden;
};

#define LOG_FILES_MAX 4096
struct log_files {
	char *path[LOG_FILES_MAX];
	size_t n;
};

int64_t log_now_ms(void);
bool log_filter_match(const struct log_filter *f, const struct logrec *rec);
int log_files_select(struct log_files *lf, int nargs, char **args,
		     const char *session, bool all, char *err, size_t errlen);
void log_files_free(struct log_files *lf);
int log_suggest_main(int argc, char **argv);
/* One dim line (when color) saying how many labelled records were hidden
 * and how to see them; nothing when hidden is 0. `what` ends the sentence:
 * "hidden" for the views, "ignored" for suggest. */
void log_note_hidden(FILE *out, unsigned long hidden, const char *what,
		     bool color);
/* Merge one allow rule host:port into policy_path the way `log suggest
 * --apply` does (comments and order kept, checked, backup kept), with
 * `note` as its comment. 0 or -errno with err set. */
int log_suggest_apply_one(const char *policy_path, const char *host,
			  unsigned short port, const char *note, char *err,
			  size_t errlen);

#endif
