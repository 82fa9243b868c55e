/* Session bookkeeping outside the container: XDG paths, the session id,
 * and session.json (what a later attach/stop/ls or a crash sweep needs:
 * repos with their clone paths and base commits, network, fence table,
 * container, proxy pid, launcher pid). */
#ifndef AGENTSAFE_LAUNCH_SESSION_H
#define AGENTSAFE_LAUNCH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#define SESSION_ID_LEN 12 /* hex digits; bridge "as-<id>" fits IFNAMSIZ */

/* $XDG_<kind>_HOME or $HOME/<fallback>, plus "/agentsafe". kind: CONFIG,
 * STATE, CACHE, DATA. */
int session_xdg_dir(const char *kind, char *out, size_t len);
/* mkdir -p with mode for created components. */
int session_mkdirs(const char *path, mode_t mode);
/* Fresh random id of SESSION_ID_LEN lowercase hex digits. */
int session_new_id(char *out, size_t len);
/* <state>/sessions/<id> */
int session_state_dir(const char *id, char *out, size_t len);

/* Write <state>/sessions/<id>/session.json atomically (tmp + rename). */
int session_save(const char *id, const json_t *doc, char *err, size_t errlen);
/* Load one; NULL when missing or unreadable. */
json_t *session_load(const char *id);
/* True when the launcher recorded in session.json is still running. */
bool session_is_live(const char *id);
/* Find a session by name or id among the recorded ones. Returns 0 and the
 * id in out, or -ENOENT. */
int session_find(const char *name_or_id, char *out, size_t len);
/* Call fn for each recorded session id (directory order). */
void session_each(void (*fn)(const char *id, void *arg), void *arg);

#endif
