/* Live approval of hosts no rule names (`unknown: ask`): requests held open
 * while the user answers over a unix socket in the session's state
 * directory (`agentsafe approve`). Internal to proxy/. */
#ifndef AGENTSAFE_PROXY_APPROVAL_H
#define AGENTSAFE_PROXY_APPROVAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct proxy_server;
struct conn;
struct worker;

/* Binds the socket at path (mode 0600, removed first when it is a stale
 * socket) and serves it on worker w's loop. Peers whose SO_PEERCRED uid is
 * neither `owner` nor 0 are refused. 0 or -errno with a sentence in err. */
int approval_start(struct proxy_server *srv, struct worker *w, const char *path,
		   uid_t owner, char *err, size_t errlen);
/* Closes the socket and unlinks it; frees what is left. */
void approval_stop(struct proxy_server *srv);

/* True when c's host:port was approved for the session (or always). */
bool approval_granted(struct proxy_server *srv, const char *host,
		      uint16_t port);
/* Hold c (a request refused only as not_allowed) until an answer or the
 * approval timeout: one question per host:port, however many requests
 * wait on it. Returns 0, or -errno when it cannot be held (then the
 * caller refuses as before). */
int approval_hold(struct conn *c);
/* c leaves (timeout, client gone, freed): forget it. Safe to call for a
 * conn that was never held. */
void approval_forget(struct conn *c);
/* c's timer fired while held: 403 approval_timeout. */
void approval_timeout(struct conn *c);

/* Tell the user on --notify-fd (the launcher's terminal: a bell and the
 * window title, which never draw over the agent's screen; a plain line
 * when it is no terminal) and with notify-send where it exists. `what`
 * is our own text with normalised host names only: nothing to escape. */
void approval_notify(struct proxy_server *srv, const char *what);

/* The peer check, apart for its unit test: may a peer with uid `peer`
 * talk to a socket owned by `owner`? */
bool approval_peer_ok(uid_t peer, uid_t owner);

#endif
