/* The error convention every component uses: a function returns 0 or a
 * negative errno and writes one sentence naming its input (path, host,
 * file:line:col) into a buffer the caller owns. This is the one formatter
 * for that buffer. */
#ifndef AGENTSAFE_UTIL_ERRBUF_H
#define AGENTSAFE_UTIL_ERRBUF_H

#include <stddef.h>

/* Formats into err (always NUL-terminated, truncated to errlen). err may be
 * NULL or errlen 0: callers that do not want the sentence pass NULL. */
__attribute__((format(printf, 3, 4))) void errbuf_set(char *err, size_t errlen,
						      const char *fmt, ...);

#endif
