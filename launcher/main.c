/* agentsafe-launch: argument dispatch, and the commands that act on a
 * recorded session (ls, stop, attach). A run is run.c's table of steps. */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "console.h"
#include "docker.h"
#include "launch_int.h"
#include "lcfg.h"
#include "version.h"
#include "run.h"
#include "session.h"
#include "step.h"
#include "sweep.h"

static void ls_one(const char *id, void *arg)
{
	(void)arg;
	struct session_record r;
	if (session_record_load(id, &r) != 0)
		return;
	bool live = session_is_live(id);
	if (live || !r.finished)
		printf("%-14s %-28s %-8s %s\n", id, r.name,
		       live ? "running" : "stale", r.egress_log);
	session_record_free(&r);
}

static int cmd_ls(void)
{
	printf("%-14s %-28s %-8s %s\n", "ID", "NAME", "STATUS", "EGRESS LOG");
	session_each(ls_one, NULL);
	return 0;
}

/* A finished session's end, as the launcher recorded it: the summary
 * line, and the verdict (its exit code; EXIT_NOT_FETCHED when work stayed
 * behind). Waits up to wait_s for the launcher's teardown to finish.
 * Returns -1 when there is no finished record. */
static int end_verdict(const char *id, int wait_s)
{
	struct session_record r;
	for (int i = 0; i < wait_s * 20 && session_is_live(id); i++) {
		struct timespec ts = {0, 50L * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (session_record_load(id, &r) != 0)
		return -1;
	int code = -1;
	if (r.finished) {
		char line[1024];
		session_summary(&r, line, sizeof line);
		launch_diag("%s", line);
		launch_misuse_alert(id, r.misuse);
		code = r.exit_code;
		for (size_t i = 0; i < r.nrepos; i++)
			if (r.repos[i].commits > 0 && !r.repos[i].fetched)
				code = EXIT_NOT_FETCHED;
		if (code == EXIT_NOT_FETCHED)
			launch_alert("session %s: its commits are NOT all back "
				     "in your repos (see `agentsafe review "
				     "%s`)",
				     id, id);
	}
	session_record_free(&r);
	return code;
}

/* stop's verdict: 0 when the session is down with its work back. */
static int stop_verdict(const char *id)
{
	return end_verdict(id, 0) == EXIT_NOT_FETCHED ? EXIT_NOT_FETCHED : 0;
}

static int cmd_stop(const char *name)
{
	char id[SESSION_ID_LEN + 1];
	if (session_find(name, id, sizeof id) != 0) {
		launch_diag("no session named %s (see `agentsafe-launch ls`)",
			    name);
		return 1;
	}
	struct session_record r;
	pid_t pid = 0;
	if (session_record_load(id, &r) == 0)
		pid = r.pid;
	session_record_free(&r);
	if (session_is_live(id) && kill(pid, SIGTERM) != 0) {
		/* Typically: the session was started with sudo and this is
		 * the user; its launcher runs as root. */
		launch_diag("cannot stop session %s (launcher pid %d): %s%s",
			    name, (int)pid, strerror(errno),
			    errno == EPERM
				? "; it was started as root: use sudo "
				  "agentsafe-launch stop"
				: "");
		return 1;
	}
	if (session_is_live(id)) {
		for (int i = 0; i < 600 && session_is_live(id); i++) {
			struct timespec ts = {0, 50L * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (!session_is_live(id)) {
			launch_diag("session %s stopped", name);
			return stop_verdict(id);
		}
		launch_diag("session %s did not stop within 30 s", name);
		return 1;
	}
	/* The launcher is gone: clean up after it here. */
	struct docker *d = NULL;
	char err[512];
	if (docker_new(&d, err, sizeof err) != 0) {
		launch_diag("%s", err);
		return 1;
	}
	sweep_session(d, launch_have_net_admin(), id);
	docker_free(d);
	return stop_verdict(id);
}

static int cmd_attach(const char *name)
{
	char id[SESSION_ID_LEN + 1];
	if (session_find(name, id, sizeof id) != 0 || !session_is_live(id)) {
		launch_diag(
		    "no running session named %s (see `agentsafe-launch "
		    "ls`)",
		    name);
		return 1;
	}
	struct session_record rec;
	char cname[128] = "";
	if (session_record_load(id, &rec) == 0)
		launch_snprintf(cname, sizeof cname, "%s", rec.container);
	session_record_free(&rec);
	struct docker *d = NULL;
	char err[512], path[256];
	if (docker_new(&d, err, sizeof err) != 0) {
		launch_diag("%s", err);
		return 1;
	}
	launch_snprintf(path, sizeof path, "/containers/%s/json", cname);
	long st = 0;
	json_t *r = NULL;
	bool tty = false;
	if (docker_call(d, "GET", path, NULL, &st, &r, err, sizeof err) == 0 &&
	    st == 200)
		tty = json_is_true(
		    json_object_get(json_object_get(r, "Config"), "Tty"));
	json_decref(r);
	int sfd = console_signals();
	int afd = docker_attach(d, cname, true, err, sizeof err);
	if (afd < 0) {
		launch_diag("%s", err);
		docker_free(d);
		return 1;
	}
	launch_diag("attached to %s; detach with ctrl-p ctrl-q", cname);
	if (tty && isatty(0)) {
		console_resize(d, cname);
		console_raw();
	}
	int sig = 0;
	enum console_end e = console_loop(NULL, d, cname, afd, tty, true, false,
					  sfd, &sig, false);
	console_restore();
	close(afd);
	int code = e == CONSOLE_SIGNAL ? 128 + sig : 0;
	/* The command's status when it ended while we were attached (the
	 * session's launcher removes the container soon after). */
	r = NULL;
	bool running = false;
	if (e == CONSOLE_CONTAINER &&
	    docker_call(d, "GET", path, NULL, &st, &r, err, sizeof err) == 0 &&
	    st == 200) {
		json_t *state = json_object_get(r, "State");
		running = json_is_true(json_object_get(state, "Running"));
		if (!running)
			code = (int)json_integer_value(
			    json_object_get(state, "ExitCode"));
	}
	if (running) {
		launch_diag("detached from %s; it keeps running", cname);
	} else if (e == CONSOLE_CONTAINER) {
		/* The session's launcher fetches the work back now; its
		 * record has the verdict. */
		int v = end_verdict(id, 60);
		if (v >= 0)
			code = v;
	}
	json_decref(r);
	docker_free(d);
	close(sfd);
	return code;
}

/* `sudo agentsafe-launch` on Debian sets HOME to root's: the session,
 * its policy, state and clones are the invoking user's, so their home it
 * is (only when HOME is root's; an explicit HOME is kept). */
static void home_of_sudo_user(void)
{
	const char *su = getenv("SUDO_UID"), *home = getenv("HOME");
	unsigned long uid = 0;
	if (getuid() != 0 || launch_parse_id(su, &uid) != 0 || uid == 0)
		return;
	struct passwd *root = getpwuid(0);
	char rootdir[PATH_MAX];
	launch_snprintf(rootdir, sizeof rootdir, "%s",
			root ? root->pw_dir : "/root");
	if (home != NULL && strcmp(home, rootdir) != 0)
		return;
	struct passwd *pw = getpwuid((uid_t)uid);
	if (pw != NULL && pw->pw_dir != NULL && pw->pw_dir[0] == '/')
		setenv("HOME", pw->pw_dir, 1);
}

int main(int argc, char **argv)
{
	home_of_sudo_user();
	struct lcfg args, cfg;
	char err[1024] = "";
	lcfg_init(&args);
	lcfg_init(&cfg);
	if (lcfg_parse_args(&args, argc, argv, err, sizeof err) != 0) {
		launch_diag("%s (see --help)", err);
		lcfg_free(&args);
		return EXIT_LAUNCH;
	}
	if (args.cmd == LCFG_VERSION) {
		printf("agentsafe-launch %s\n", AGENTSAFE_VERSION_FULL);
		lcfg_free(&args);
		return 0;
	}
	if (args.cmd == LCFG_HELP) {
		lcfg_usage(stdout);
		lcfg_free(&args);
		return 0;
	}
	if (args.cmd == LCFG_LS || args.cmd == LCFG_STOP ||
	    args.cmd == LCFG_ATTACH) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		int rc = args.cmd == LCFG_LS	 ? cmd_ls()
			 : args.cmd == LCFG_STOP ? cmd_stop(args.target)
						 : cmd_attach(args.target);
		lcfg_free(&args);
		curl_global_cleanup();
		return rc;
	}
	char cpath[4200];
	const char *cfile = args.config_file;
	int lrc = 0;
	if (cfile != NULL) {
		lrc = lcfg_load_file(&cfg, cfile, err, sizeof err);
	} else {
		char dir[4096];
		if (session_xdg_dir("CONFIG", dir, sizeof dir) == 0) {
			launch_snprintf(cpath, sizeof cpath, "%s/config.yaml",
					dir);
			lrc = lcfg_load_file(&cfg, cpath, err, sizeof err);
			if (lrc == -ENOENT)
				lrc = 0;
		}
	}
	if (lrc != 0) {
		launch_diag("%s", err);
		lcfg_free(&args);
		lcfg_free(&cfg);
		return EXIT_LAUNCH;
	}
	lcfg_merge(&cfg, &args);
	lcfg_free(&args);
	if (lcfg_finish(&cfg, err, sizeof err) != 0 ||
	    step_repos_check(&cfg, err, sizeof err) != 0) {
		launch_diag("%s", err);
		lcfg_free(&cfg);
		return EXIT_LAUNCH;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int code = run_command(&cfg);
	curl_global_cleanup();
	lcfg_free(&cfg);
	return code;
}
