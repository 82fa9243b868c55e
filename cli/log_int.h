/* Shared between the `agentsafe log` sub-commands (review and suggest). */
#ifndef AGENTSAFE_LOG_INT_H
#define AGENTSAFE_LOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logread.h"

struct log_filter {
	int64_t since_ms, until_ms; /* -1: unbounded */
	bool denied;
	const char *host_pattern;
	const char *session;
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
/* Merge one allow rule host:port into policy_path the way `log suggest
 * --apply` does (comments and order kept, checked, backup kept), with
 * `note` as its comment. 0 or -errno with err set. */
int log_suggest_apply_one(const char *policy_path, const char *host,
			  unsigned short port, const char *note, char *err,
			  size_t errlen);

#endif
