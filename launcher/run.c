/* The run command as a table of steps, relayd-style: each step brings one
 * piece of the session up and has the undo for exactly that piece; a
 * failure or the end of the session undoes the completed steps in reverse.
 * A step that fails half-way undoes its own half before it returns. */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caps.h"
#include "console.h"
#include "session_ca.h"
#include "gpu.h"
#include "learn.h"
#include "launch_int.h"
#include "prepare.h"
#include "proxy_child.h"
#include "step.h"
#include "sweep.h"

/* ---- the table ---- */

struct step {
	const char *name;
	int (*up)(struct sess *s, char *err, size_t errlen);
	void (*down)(struct sess *s); /* NULL: up leaves nothing behind */
};

/* In order of need: the proxy listens on the network's gateway; the
 * relay forks before the fence drops the capabilities to set its ids;
 * the agent's container runs the self-check before the agent, which the
 * last step releases. */
static const struct step steps[] = {
    {"session", step_session_up, step_session_down},
    {"clone repos", step_repos_up, step_repos_down},
    {"git broker", step_broker_up, step_broker_down},
    {"network", step_network_up, step_network_down},
    {"session CA", step_ca_up, step_ca_down},
    {"proxy", proxy_child_start, proxy_child_stop},
    {"publish relay", step_publish_up, step_publish_down},
    {"fence", step_fence_up, step_fence_down},
    {"container spec", step_spec_up, step_spec_down},
    {"container", step_container_up, step_container_down},
    {"self-check", step_probe_up, NULL},
    {"agent", step_agent_up, NULL},
};

/* Runs the steps in order; *done: how many completed. */
static int steps_up(struct sess *s, size_t *done)
{
	char err[2048];
	for (*done = 0; *done < sizeof steps / sizeof steps[0]; (*done)++) {
		err[0] = '\0';
		int64_t t0 = launch_now_us();
		int rc = steps[*done].up(s, err, sizeof err);
		launch_phase(s, steps[*done].name, t0);
		if (rc != 0) {
			if (err[0] != '\0')
				launch_diag("%s", err);
			else
				launch_diag("%s: %s", steps[*done].name,
					    strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static void steps_down(struct sess *s, size_t done)
{
	while (done-- > 0)
		if (steps[done].down != NULL)
			steps[done].down(s);
}

/* ---- before the steps, and the session itself ---- */

/* The engine's /info (GPU runtime), --ssh keys and port, the GPU plan,
 * the stale sweep and the image. Reports on stderr. */
static int run_setup(struct sess *s)
{
	struct lcfg *c = s->cfg;
	char err[2048] = "";
	long st = 0;
	json_t *info = NULL;
	int64_t t = launch_now_us();
	if (docker_call(s->d, "GET", "/info", NULL, &st, &info, err,
			sizeof err) != 0 ||
	    st != 200) {
		launch_diag(
		    "%s (is dockerd running, and may you use its socket?)",
		    err);
		json_decref(info);
		return -EIO;
	}
	t = launch_phase(s, "engine check", t);
	if (c->ssh_port != 0) {
		if (prepare_ssh_keys(s, err, sizeof err) != 0) {
			launch_diag("%s", err);
			json_decref(info);
			return -ENOENT;
		}
		/* Published like --publish (127.0.0.1 unless --ssh named
		 * an address), through the launcher's relay. */
		if (c->npublish < LCFG_MAX_LIST) {
			c->publish[c->npublish] =
			    (struct lcfg_ports){c->ssh_port, c->ssh_port, ""};
			memcpy(c->publish[c->npublish++].addr, c->ssh_addr,
			       sizeof c->ssh_addr);
		}
	}
	struct gpu_env genv;
	gpu_probe(info, NULL, &genv);
	json_decref(info);
	if (gpu_plan(c->gpu, &genv, &s->devreq, err, sizeof err) != 0) {
		launch_diag("%s", err);
		return -EINVAL;
	}
	if (s->devreq)
		launch_diag("passing NVIDIA GPUs (%s)", c->gpu);
	t = launch_phase(s, "gpu and ssh keys", t);
	sweep_stale(s->d, s->caps_kept);
	t = launch_phase(s, "stale sweep", t);
	if (prepare_image(s, err, sizeof err) != 0) {
		launch_diag("%s", err);
		return -EIO;
	}
	launch_phase(s, "image", t);
	return 0;
}

/* --detach: the session lives in a background child; this process waits
 * only until it is up (or failed) to report. Returns 0 in the process
 * that runs the session, 1 in the foreground one (*code set), or -errno. */
static int run_detach(struct sess *s, int *code)
{
	s->sfd = console_signals();
	if (!s->cfg->detach)
		return 0;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		launch_diag("pipe: %s", strerror(errno));
		return -errno;
	}
	pid_t pid = fork();
	if (pid < 0) {
		launch_diag("fork: %s", strerror(errno));
		return -errno;
	}
	if (pid > 0) {
		close(pfd[1]);
		char b = 0;
		ssize_t r = read(pfd[0], &b, 1);
		int status = 0;
		if (r == 1)
			*code = 0;
		else if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			*code = WEXITSTATUS(status);
		close(pfd[0]);
		return 1; /* nothing of the session belongs to this process */
	}
	close(pfd[0]);
	s->ready_fd = pfd[1];
	setsid();
	close(s->sfd);
	s->sfd = console_signals();
	return 0;
}

/* The session runs: relay the terminal (or, detached, just wait) until
 * the agent ends, a signal stops it or the proxy dies. */
static int run_attached(struct sess *s)
{
	bool detach = s->cfg->detach;
	if (s->tty && !detach) {
		console_resize(s->d, s->container);
		console_raw();
	}
	int sig = 0;
	enum console_end e = console_loop(s, s->d, s->container, s->afd, s->tty,
					  !detach, detach, s->sfd, &sig, true);
	console_restore();
	if (e == CONSOLE_CONTAINER) {
		int ec = EXIT_LAUNCH;
		char err[512] = "";
		/* A detach key (ctrl-p ctrl-q) ends the stream with the
		 * container still running: the teardown then stops it. */
		if (docker_wait_container(s->d, s->container, &ec, err,
					  sizeof err) != 0) {
			launch_diag("waiting for %s: %s", s->container, err);
			ec = EXIT_LAUNCH;
		}
		return ec;
	}
	if (e == CONSOLE_SIGNAL) {
		launch_diag("%s: stopping the session", strsignal(sig));
		return 128 + sig;
	}
	launch_diag(
	    "agentsafe-proxy died: stopping the session (see %s/proxy.log)",
	    s->state_dir);
	return EXIT_LAUNCH;
}

/* What needs no engine: the policy, --hosts, CAP_NET_ADMIN, the
 * engine's socket. */
static int run_init(struct sess *s, struct lcfg *c, char *policy, size_t len)
{
	memset(s, 0, sizeof *s);
	s->cfg = c;
	s->ready_fd = s->fwd_ctl = s->sfd = s->afd = s->sc_wfd = -1;
	launch_ids_from_env(s);
	s->tty = isatty(0) && isatty(1);
	if (prepare_policy(c, policy, len) != 0)
		return -ENOENT;
	s->policy = policy;
	if (c->hosts && access(c->hosts, R_OK) != 0) {
		launch_diag("--hosts %s: %s", c->hosts, strerror(errno));
		return -errno;
	}
	if (!launch_have_net_admin()) {
		char e2[256];
		caps_raise_net_admin(e2, sizeof e2);
		launch_diag("cannot install the network fence: %s", e2);
		return -EPERM;
	}
	s->caps_kept = true;
	char err[2048];
	if (docker_new(&s->d, err, sizeof err) != 0) {
		launch_diag("%s", err);
		return -EIO;
	}
	return 0;
}

int launch_exit_code(int code, size_t upstream_failed, size_t not_fetched)
{
	if (upstream_failed > 0 && code != EXIT_LAUNCH) {
		launch_alert("forwarding the review branch upstream failed "
			     "(see above); exit %d (the command's was %d)",
			     EXIT_UPSTREAM, code);
		code = EXIT_UPSTREAM;
	}
	if (not_fetched > 0) {
		launch_alert("the session's work is NOT all back in your "
			     "repos (see above); exit %d (the command's was "
			     "%d)",
			     EXIT_NOT_FETCHED, code);
		code = EXIT_NOT_FETCHED;
	}
	return code;
}

int run_command(struct lcfg *c)
{
	struct sess s;
	char policy[PATH_MAX];
	int64_t t0 = launch_now_us();
	if (run_init(&s, c, policy, sizeof policy) != 0)
		return EXIT_LAUNCH;
	launch_phase(&s, "config and policy", t0);
	bool learning = learn_start(&s, c->learn);
	int code = EXIT_LAUNCH;
	if (run_setup(&s) == 0 && run_detach(&s, &code) == 0) {
		size_t done = 0;
		int rc = steps_up(&s, &done);
		if (c->timings)
			launch_print_phases(&s);
		if (rc == 0) {
			launch_save_state(&s, false); /* with the timings */
			s.exit_code = code = run_attached(&s);
		}
		int64_t t = launch_now_us();
		steps_down(&s, done);
		if (c->timings)
			launch_diag("timing: %-22s %6lld ms", "teardown",
				    (long long)(launch_now_us() - t) / 1000);
		if (learning && !c->detach && s.log_path[0] != '\0')
			learn_end(&s);
	}
	code = launch_exit_code(
	    code, s.upstream_failed > 0 ? (size_t)s.upstream_failed : 0,
	    s.tally.not_fetched);
	json_decref(s.devreq);
	free(s.ssh_keys);
	docker_free(s.d);
	if (s.sfd >= 0)
		close(s.sfd);
	return code;
}
