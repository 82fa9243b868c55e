/* The terminal side of a session (foreground run and `attach`): raw mode,
 * resize, the signals the launcher handles, and the I/O relay loop. */
#ifndef AGENTSAFE_LAUNCH_CONSOLE_H
#define AGENTSAFE_LAUNCH_CONSOLE_H

#include <stdbool.h>

struct docker;
struct sess;

enum console_end { CONSOLE_CONTAINER, CONSOLE_SIGNAL, CONSOLE_PROXY };

/* Block the signals the session handles and return a signalfd for them
 * (SIGPIPE is ignored). */
int console_signals(void);
/* Put stdin in raw mode, restored by console_restore() or at exit(). */
void console_raw(void);
void console_restore(void);
/* Tell the engine the terminal's size for container name. */
void console_resize(struct docker *d, const char *name);
/* Relays stdin/out until the attach stream afd ends, a signal arrives
 * (*sig) or the proxy of s dies; feeds s's NFLOG drops to the egress log
 * meanwhile. s may be NULL (attach). in: relay stdin; discard: drop the
 * output; half_close: shut the stream's write side at stdin's EOF. */
enum console_end console_loop(struct sess *s, struct docker *d,
			      const char *name, int afd, bool tty, bool in,
			      bool discard, int sfd, int *sig, bool half_close);

#endif
