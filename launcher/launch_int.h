/* What the files of agentsafe-launch share and nothing outside launcher/
 * includes: the state of one session (struct sess), the diagnostic line,
 * and the sudo helpers every step needs (see launch.c). */
#ifndef AGENTSAFE_LAUNCH_INT_H
#define AGENTSAFE_LAUNCH_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "docker.h"
#include "lcfg.h"
#include "session.h"
#include "sweep.h"

#define PFX	    "agentsafe-launch: "
#define EXIT_LAUNCH 125 /* like `docker run`: the launcher itself failed */
/* The session's commits could not be brought back into a host repo (they
 * are kept in the session clone; the highlighted line says where). */
#define EXIT_NOT_FETCHED 124
/* --push-upstream or --pr failed for some ref (listed at the end; the
 * commits themselves are back in the host repo). */
#define EXIT_UPSTREAM 123

struct asuser;
struct egress_log;
struct fence_nflog;
struct gitiso_repo;
struct selfcheck;
struct session_ca;
struct claude_login;
struct spec_store;

/* One session as the steps of run.c build it up; each step fills in its
 * part and its undo reads the same fields back. */
struct sess {
	struct lcfg *cfg;
	struct docker *d;
	char id[SESSION_ID_LEN + 1];
	char name[80], net[64], bridge[16], table[64];
	char container[128], probe[160];
	char state_dir[4096], log_path[4200], cache_dir[4096];
	char gateway[64];
	const char *policy; /* absolute path of the policy file */
	uint16_t proxy_port, group;
	pid_t proxy_pid;
	struct session_ca *sca;	    /* TLS inspection (session_ca.c), or NULL */
	struct claude_login *login; /* claude_login.c, or NULL */
	struct egress_log *log;
	struct fence_nflog *nflog;
	pid_t fwd_pid;		/* the loopback relay of published ports */
	pid_t broker_pid;	/* the git broker (broker.h); 0: none */
	char broker_sock[4300]; /* its socket, for the proxy; "": none */
	int fwd_ctl; /* its target, once the container has an address */
	bool caps_kept;
	struct gitiso_repo *repos[LCFG_MAX_LIST];
	size_t nrepos;
	struct asuser *asuser;	  /* sudo: fetches as the invoking user */
	struct sweep_tally tally; /* what the repos step brought back */
	long upstream_failed;	  /* failed push_upstream + pr records */
	char started[40];	  /* RFC 3339 */
	int exit_code;		  /* the session's, once known */
	char codex[PATH_MAX];	  /* persistent Codex home */
	char *ssh_keys;		  /* --ssh: the public keys sshd accepts */
	uid_t uid, host_uid;	  /* container user; the invoking user */
	gid_t gid, host_gid;
	json_t *devreq;
	bool tty;
	int ready_fd; /* --detach: tells the foreground parent we are up */
	int sfd;      /* signalfd of the signals the session handles */
	int afd;      /* the agent container's attach stream */
	struct spec_store *store; /* backs spec's strings */
	struct selfcheck *sc;	  /* until the self-check's verdict */
	int sc_wfd; /* the proxy's self-check window: a byte ends it; -1 */
	struct docker_container_spec spec;
	struct session_phase phases[24]; /* --timings, session.json */
	size_t nphases;
	char selfcheck_start[40], selfcheck_end[40]; /* egress.log time */
};

/* One line on stderr, prefixed with PFX. */
/* Whether the session runs this agent: `-- COMMAND` by the command's
 * name (`-- codex login --device-auth`), otherwise --agent (spec.c). */
bool launch_runs_agent(const struct lcfg *c, const char *agent);

void launch_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, made to stand out (bold red on a terminal): work that did
 * not come back, a setting that weakens the sandbox. */
void launch_alert(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The launcher's exit status from the command's (code): EXIT_UPSTREAM when
 * a review branch did not reach the forge (unless the launcher itself
 * failed), EXIT_NOT_FETCHED when work did not come back (that wins); each
 * said in red. */
int launch_exit_code(int code, size_t upstream_failed, size_t not_fetched);
/* At a session's end, when its egress.log has credential_misuse
 * refusals: how many, highlighted (nothing when misuse <= 0). */
void launch_misuse_alert(const char *id, long misuse);
/* snprintf whose truncation is deliberate (paths are bounded by the
 * buffers the kernel accepts anyway); keeps -Wformat-truncation quiet. */
int launch_snprintf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A uid or gid from the environment (SUDO_UID, SUDO_GID): decimal digits
 * in uid_t range, (uid_t)-1 excluded; anything else is -EINVAL, never 0. */
int launch_parse_id(const char *s, unsigned long *out);
/* The invoking user (sudo's) and the container's user into s. */
void launch_ids_from_env(struct sess *s);
/* Under sudo, hand each directory created below base (and leaf itself)
 * to the invoking user; symlinks are never followed. */
void launch_give_to_user(const struct sess *s, const char *base,
			 const char *leaf);
/* launch_give_to_user below $HOME, when HOME is set. */
void launch_give_home(const struct sess *s, const char *leaf);

/* Whether this process may raise CAP_NET_ADMIN at all. */
bool launch_have_net_admin(void);
/* Marks the drop to the kept permitted set (fence step): from then on the
 * file/kill capabilities must be raised around each use. */
void launch_caps_dropped(void);
/* Raise the kept file+kill capabilities (only after the drop); returns
 * whether they were raised, for launch_files_off. */
bool launch_files_on(void);
void launch_files_off(bool was_on);

/* SIGTERM, then SIGKILL after 5 s; reaps. pid <= 0 is a no-op. */
void launch_stop_child(pid_t pid, const char *what);

/* <directory of this executable>/name when executable there, else "". */
void launch_exe_path(const char *name, char *out, size_t len);

/* Monotonic clock in microseconds. */
int64_t launch_now_us(void);
/* Record that phase name (a static string) took from since_us until now;
 * returns now, so phases can be chained. */
int64_t launch_phase(struct sess *s, const char *name, int64_t since_us);
/* --timings: the recorded phases on stderr. */
void launch_print_phases(const struct sess *s);

/* Record the session in session.json (see session.h). */
void launch_save_state(const struct sess *s, bool finished);

#endif
