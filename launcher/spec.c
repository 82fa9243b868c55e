/* The agent container's spec. What enters the container is decided here:
 * the proxy variables, the clones, each agent's credentials only in its
 * own sessions, and nothing published (the launcher's relay does that). */
#include "spec.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claude_login.h"
#include "gitiso.h"
#include "launch_int.h"
#include "session_ca.h"

static void add_bind(struct spec_store *st, size_t *n, const char *src,
		     const char *dst, bool ro)
{
	launch_snprintf(st->bindbuf[*n], sizeof st->bindbuf[*n], "%s:%s%s", src,
			dst, ro ? ":ro" : "");
	st->binds[*n] = st->bindbuf[*n];
	(*n)++;
}

bool launch_runs_agent(const struct lcfg *c, const char *agent)
{
	if (c->command != NULL && c->ncommand > 0) {
		const char *b = strrchr(c->command[0], '/');
		return strcmp(b ? b + 1 : c->command[0], agent) == 0;
	}
	return c->agent != NULL && strcmp(c->agent, agent) == 0;
}

/* The proxy for every client that honours the variables; the fence
 * drops whatever does not. */
static void spec_env(const struct sess *s, struct spec_store *st)
{
	const struct lcfg *c = s->cfg;
	size_t ne = 0;
	char proxy[128];
	launch_snprintf(proxy, sizeof proxy, "http://%s:%u", s->gateway,
			(unsigned)s->proxy_port);
	const char *keys[] = {"HTTPS_PROXY", "HTTP_PROXY", "https_proxy",
			      "http_proxy"};
	for (size_t i = 0; i < 4; i++) {
		launch_snprintf(st->envbuf[i], sizeof st->envbuf[i], "%s=%s",
				keys[i], proxy);
		st->env[ne++] = st->envbuf[i];
	}
	st->env[ne++] = "NO_PROXY=localhost,127.0.0.1";
	st->env[ne++] = "no_proxy=localhost,127.0.0.1";
	/* Node's own fetch honours the variables only when told to (Node
	 * 22.21+ and 24+); older ones ignore this and go through the fence's
	 * drop instead. */
	st->env[ne++] = "NODE_USE_ENV_PROXY=1";
	launch_snprintf(st->envbuf[4], sizeof st->envbuf[4],
			"AGENTSAFE_SESSION=%s", s->id);
	st->env[ne++] = st->envbuf[4];
	launch_snprintf(st->envbuf[5], sizeof st->envbuf[5],
			"AGENTSAFE_PROBE_PROXY=%s", proxy);
	st->env[ne++] = st->envbuf[5];
	st->env[ne++] = "HOME=/home/agent";
	const char *term = getenv("TERM");
	if (s->tty && term && strlen(term) < 64) {
		launch_snprintf(st->envbuf[6], sizeof st->envbuf[6], "TERM=%s",
				term);
		st->env[ne++] = st->envbuf[6];
	}
	if (c->ssh_port != 0) {
		st->env[ne++] = "AGENTSAFE_SSHD=1";
		launch_snprintf(st->envbuf[7], sizeof st->envbuf[7],
				"AGENTSAFE_SSHD_PORT=%u",
				(unsigned)c->ssh_port);
		st->env[ne++] = st->envbuf[7];
	}
	/* Credential placeholders: worthless outside the proxy. */
	ne += session_ca_env(s, st->env + ne, SESSION_CA_ENV_MAX);
	st->env[ne] = NULL;
}

/* The clones read-write, their shared object stores read-only, and the
 * few files the image's entrypoint seeds from. */
static void spec_binds(const struct sess *s, struct spec_store *st)
{
	const struct lcfg *c = s->cfg;
	size_t nb = 0;
	for (size_t i = 0; i < s->nrepos; i++) {
		char dst[PATH_MAX];
		launch_snprintf(dst, sizeof dst, "/work/%s",
				gitiso_name(s->repos[i]));
		add_bind(st, &nb, gitiso_clone_path(s->repos[i]), dst, false);
		const char *const *ro = gitiso_readonly_paths(s->repos[i]);
		for (size_t k = 0;
		     ro && ro[k] && nb + 6 < (size_t)LCFG_MAX_LIST * 4; k++)
			add_bind(st, &nb, ro[k], ro[k], true);
	}
	const char *home = getenv("HOME");
	char p[PATH_MAX];
	/* Each agent's credentials enter only its own sessions: a shell or a
	 * Codex session never sees the Claude login, and the other way round.
	 */
	if (home && launch_runs_agent(c, "claude")) {
		launch_snprintf(p, sizeof p, "%s/.claude", home);
		if (access(p, F_OK) == 0)
			add_bind(st, &nb, p, "/run/agentsafe/seed/claude",
				 true);
		/* Over the user's own file: the login's placeholders. */
		if (access(p, F_OK) == 0 && claude_login_seed(s) != NULL)
			add_bind(st, &nb, claude_login_seed(s),
				 CLAUDE_LOGIN_SEED, true);
		launch_snprintf(p, sizeof p, "%s/.claude.json", home);
		if (access(p, F_OK) == 0)
			add_bind(st, &nb, p, "/run/agentsafe/seed/claude.json",
				 true);
	}
	if (s->codex[0] != '\0' && launch_runs_agent(c, "codex"))
		add_bind(st, &nb, s->codex, "/home/agent/.codex", false);
	if (c->ca_bundle) {
		char real[PATH_MAX];
		if (realpath(c->ca_bundle, real) != NULL)
			add_bind(st, &nb, real, "/run/agentsafe/extra-ca.pem",
				 true);
	}
	launch_snprintf(p, sizeof p, "%s/resolv.conf", s->state_dir);
	add_bind(st, &nb, p, "/etc/resolv.conf", true);
	/* TLS inspection: the session CA joins the bundle every tool reads. */
	if (session_ca_bundle(s) != NULL)
		add_bind(st, &nb, session_ca_bundle(s),
			 SESSION_CA_CONTAINER_BUNDLE, true);
	if (c->ssh_port != 0) {
		launch_snprintf(p, sizeof p, "%s/authorized_keys",
				s->state_dir);
		add_bind(st, &nb, p, "/run/agentsafe/seed/authorized_keys",
			 true);
	}
	st->binds[nb] = NULL;
}

/* The agent never runs as root; one repo is the working directory. */
static void spec_cmd(const struct sess *s, struct spec_store *st)
{
	const struct lcfg *c = s->cfg;
	launch_snprintf(st->user, sizeof st->user, "%u:%u", (unsigned)s->uid,
			(unsigned)s->gid);
	if (s->nrepos == 1)
		launch_snprintf(st->workdir, sizeof st->workdir, "/work/%s",
				gitiso_name(s->repos[0]));
	else
		launch_snprintf(st->workdir, sizeof st->workdir, "/work");
	size_t nc = 0;
	if (c->command) {
		for (size_t i = 0; i < c->ncommand && i < LCFG_MAX_LIST; i++)
			st->cmd[nc++] = c->command[i];
	} else if (strcmp(c->agent, "shell") == 0) {
		st->cmd[nc++] = "bash";
	} else {
		st->cmd[nc++] = c->agent;
	}
	st->cmd[nc] = NULL;
}

void spec_build(const struct sess *s, struct spec_store *st,
		struct docker_container_spec *sp)
{
	const struct lcfg *c = s->cfg;
	memset(sp, 0, sizeof *sp);
	spec_env(s, st);
	spec_binds(s, st);
	spec_cmd(s, st);
	sp->image = c->image;
	sp->cmd = st->cmd;
	sp->user = st->user;
	sp->workdir = st->workdir;
	sp->env = st->env;
	sp->binds = st->binds;
	sp->network = s->net;
	sp->session = s->id;
	/* Docker's embedded resolver (127.0.0.11, on every user-defined
	 * network) forwards what it cannot answer to these servers. A
	 * loopback server would be dialled from the host's namespace on some
	 * engine versions, past the fence; the session gateway is dialled
	 * from the container's, where the fence drops and logs it. */
	sp->dns = s->gateway;
	sp->tty = s->tty;
	sp->open_stdin = true;
	sp->stdin_once = !c->detach;
	sp->memory = c->memory;
	sp->nano_cpus = c->nano_cpus;
	/* No PortBindings: Docker publishes nothing on an internal network;
	 * the launcher's own relay does it (start_publish). */
	sp->publish = NULL;
	sp->npublish = 0;
	sp->device_requests = s->devreq;
}
