/* The small helpers every file of agentsafe-launch uses: the diagnostic
 * line, the sudo bookkeeping (whose ids, whose files), the kept file
 * capabilities, stopping a child, and session.json from struct sess. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "gitiso.h"
#include "launch_int.h"

int launch_snprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

void launch_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	/* stderr is where failures are reported: if it fails, nowhere is. */
	(void)fputs(PFX, stderr);
	(void)vfprintf(stderr, fmt, ap);
	(void)fputc('\n', stderr);
	va_end(ap);
}

void launch_alert(const char *fmt, ...)
{
	va_list ap;
	bool tty = isatty(2) == 1;
	va_start(ap, fmt);
	(void)fputs(tty ? "\033[1;31m" PFX : PFX "WARNING: ", stderr);
	(void)vfprintf(stderr, fmt, ap);
	(void)fputs(tty ? "\033[0m\n" : "\n", stderr);
	va_end(ap);
}

void launch_misuse_alert(const char *id, long misuse)
{
	if (misuse > 0)
		launch_alert("session %s: %ld CREDENTIAL MISUSE refusal%s: the "
			     "agent sent a credential placeholder toward a "
			     "host it is not bound to (agentsafe log --denied "
			     "--session %s)",
			     id, misuse, misuse == 1 ? "" : "s", id);
}

int launch_parse_id(const char *s, unsigned long *out)
{
	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' ||
	    v >= (unsigned long)(uid_t)-1)
		return -EINVAL;
	*out = v;
	return 0;
}

void launch_ids_from_env(struct sess *s)
{
	s->host_uid = getuid();
	s->host_gid = getgid();
	const char *su = getenv("SUDO_UID"), *sg = getenv("SUDO_GID");
	unsigned long uid = 0, gid = 0;
	if (s->host_uid == 0 && su && sg) {
		if (launch_parse_id(su, &uid) != 0 ||
		    launch_parse_id(sg, &gid) != 0) {
			launch_diag(
			    "ignoring SUDO_UID=%s SUDO_GID=%s: not a numeric "
			    "user and group id",
			    su, sg);
		} else if (uid > 0) {
			s->host_uid = (uid_t)uid;
			s->host_gid = (gid_t)gid;
		}
	}
	/* The agent never runs as root: a root launcher without sudo hands
	 * the container (and the clones) to 1000:1000. */
	s->uid = s->host_uid ? s->host_uid : 1000;
	s->gid = s->host_uid ? s->host_gid : 1000;
}

/* Under sudo the launcher is root but the files are the user's: so that
 * `agentsafe log` works for them later. */
void launch_give_to_user(const struct sess *s, const char *base,
			 const char *leaf)
{
	if (geteuid() != 0 || s->host_uid == 0)
		return;
	size_t bl = strlen(base);
	if (strncmp(leaf, base, bl) != 0)
		return;
	char p[4096];
	launch_snprintf(p, sizeof p, "%s", leaf);
	for (;;) {
		struct stat st;
		if (lstat(p, &st) == 0 && !S_ISLNK(st.st_mode) &&
		    st.st_uid == 0 && lchown(p, s->host_uid, s->host_gid) != 0)
			launch_diag("chown %s: %s", p, strerror(errno));
		char *sl = strrchr(p, '/');
		if (sl == NULL || (size_t)(sl - p) < bl)
			break;
		*sl = '\0';
	}
}

void launch_give_home(const struct sess *s, const char *leaf)
{
	const char *home = getenv("HOME");
	if (home != NULL)
		launch_give_to_user(s, home, leaf);
}

bool launch_have_net_admin(void)
{
	return caps_net_admin_permitted() != 0;
}

/* Set once the launcher dropped to its kept permitted set; before that
 * (root) every capability is effective and must stay so. */
static bool caps_dropped;

void launch_caps_dropped(void)
{
	caps_dropped = true;
}

bool launch_files_on(void)
{
	return caps_dropped && caps_files(1) == 0;
}

void launch_files_off(bool was_on)
{
	if (was_on)
		caps_files(0);
}

void launch_stop_child(pid_t pid, const char *what)
{
	if (pid <= 0)
		return;
	/* The proxy and the port relay may run as the sudo user: signalling
	 * them needs CAP_KILL, kept permitted for this. */
	bool k = launch_files_on();
	int kr = kill(pid, SIGTERM);
	launch_files_off(k);
	if (kr != 0 && errno != ESRCH) {
		launch_diag("cannot stop %s (pid %d): %s", what, (int)pid,
			    strerror(errno));
		return;
	}
	/* 1 ms doubling to 50 ms: children exit on SIGTERM in a few ms. */
	long step_ms = 1;
	for (long waited = 0; waited < 5000;
	     waited += step_ms, step_ms = step_ms < 50 ? step_ms * 2 : 50) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		struct timespec ts = {0, step_ms * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	k = launch_files_on();
	kr = kill(pid, SIGKILL);
	launch_files_off(k);
	if (kr == 0)
		waitpid(pid, NULL, 0);
}

void launch_exe_path(const char *name, char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	out[0] = '\0';
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *sl = strrchr(exe, '/');
	if (sl == NULL)
		return;
	*sl = '\0';
	launch_snprintf(out, len, "%s/%s", exe, name);
	if (access(out, X_OK) != 0)
		out[0] = '\0';
}

/* The published ports as session.json records them. */
static size_t launch_binds(const struct sess *s, struct session_bind *out)
{
	const struct lcfg *c = s->cfg;
	size_t n = 0;
	for (size_t i = 0; i < c->npublish && n < LCFG_MAX_LIST; i++)
		out[n++] = (struct session_bind){
		    c->publish[i].addr[0] ? c->publish[i].addr : "127.0.0.1",
		    c->publish[i].first, c->publish[i].last,
		    c->ssh_port != 0 && c->publish[i].first == c->ssh_port};
	return n;
}

int64_t launch_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t launch_phase(struct sess *s, const char *name, int64_t since_us)
{
	int64_t now = launch_now_us();
	if (s->nphases < sizeof s->phases / sizeof s->phases[0])
		s->phases[s->nphases++] =
		    (struct session_phase){name, (now - since_us + 500) / 1000};
	return now;
}

void launch_print_phases(const struct sess *s)
{
	int64_t total = 0;
	for (size_t i = 0; i < s->nphases; i++) {
		fprintf(stderr, PFX "timing: %-22s %6lld ms\n",
			s->phases[i].name, (long long)s->phases[i].ms);
		if (s->phases[i].name[0] != ' ')
			total +=
			    s->phases[i].ms; /* sub-phases are in their step */
	}
	fprintf(stderr, PFX "timing: %-22s %6lld ms\n", "total",
		(long long)total);
}

void launch_save_state(const struct sess *s, bool finished)
{
	struct session_repo repos[LCFG_MAX_LIST];
	for (size_t i = 0; i < s->nrepos; i++)
		repos[i] = (struct session_repo){gitiso_name(s->repos[i]),
						 gitiso_host_repo(s->repos[i]),
						 gitiso_clone_path(s->repos[i]),
						 gitiso_branch(s->repos[i]),
						 gitiso_base(s->repos[i]),
						 -1,
						 false};
	struct session_bind binds[LCFG_MAX_LIST];
	size_t nbinds = launch_binds(s, binds);
	struct session_record r = {
	    .id = s->id,
	    .name = s->name,
	    .pid = getpid(),
	    .network = s->net,
	    .bridge = s->bridge,
	    .table = s->table,
	    .container = s->container,
	    .probe = s->probe,
	    .egress_log = s->log_path,
	    .proxy_pid = s->proxy_pid,
	    .nflog_group = s->group,
	    .proxy = s->gateway,
	    .finished = finished,
	    .repos = s->nrepos > 0 ? repos : s->tally.ended,
	    .nrepos = s->nrepos > 0 ? s->nrepos : s->tally.nended,
	    .agent = s->cfg->command ? "command" : s->cfg->agent,
	    .started = s->started,
	    .exit_code = finished ? s->exit_code : -1,
	    .denials = -1,
	    .drops = -1,
	    .misuse = -1,
	    .binds = binds,
	    .nbinds = nbinds,
	    .phases = s->phases,
	    .nphases = s->nphases,
	    .selfcheck_start =
		s->selfcheck_start[0] ? s->selfcheck_start : NULL,
	    .selfcheck_end = s->selfcheck_end[0] ? s->selfcheck_end : NULL,
	};
	if (finished && s->log_path[0] != '\0') {
		(void)session_log_counts(s->log_path, &r.denials, &r.drops);
		r.misuse = session_log_misuse(s->log_path);
	}
	char err[512];
	/* sudo: the state dir is the user's; writing it needs the kept
	 * DAC capability (a no-op when nothing was kept). */
	bool files = launch_files_on();
	if (session_record_save(&r, err, sizeof err) != 0)
		launch_diag("cannot record session state: %s", err);
	if (s->state_dir[0] != '\0') {
		char p[4300];
		launch_snprintf(p, sizeof p, "%s/session.json", s->state_dir);
		launch_give_home(s, p);
	}
	launch_files_off(files);
}
