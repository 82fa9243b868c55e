/* agentsafe-proxy process structure: N worker threads, each with its own
 * event loop, resolver and SO_REUSEPORT listener per address; the main thread
 * binds, drops privileges, then only handles SIGHUP, SIGUSR1 and SIGTERM. */
#include "proxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/thread.h>

#include "approval.h"
#include "budget.h"
#include "inspect.h"
#include "privs.h"

struct policy *proxy_policy_get(struct proxy_server *srv)
{
	pthread_mutex_lock(&srv->policy_lock);
	/* The swap happens under this lock too, so the pointer cannot be
	 * released between reading it and taking our reference. */
	struct policy *p = policy_ref(srv->policy);
	pthread_mutex_unlock(&srv->policy_lock);
	return p;
}

static void libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		fprintf(stderr, PROXY_PREFIX "libevent: %s\n", msg);
}

static int bind_one(const struct sockaddr_storage *ss, char *err, size_t errlen)
{
	int fd = socket(ss->ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
		int e = errno;
		snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(e));
		close(fd);
		return -e;
	}
	if (ss->ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				 sizeof one);
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	char addr[PROXY_ADDRSTR_MAX];
	proxy_format_addr((const struct sockaddr *)ss, addr, sizeof addr);
	if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
	    listen(fd, 1024) != 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
			 strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

bool proxy_selfcheck_window(struct proxy_server *srv)
{
	if (!atomic_load(&srv->selfcheck_open))
		return false;
	/* Anything but "nothing to read yet" (the byte, EOF, an error)
	 * closes the window; nothing reopens it. */
	struct pollfd p = {srv->cfg.selfcheck_fd, POLLIN, 0};
	if (poll(&p, 1, 0) == 0)
		return true;
	atomic_store(&srv->selfcheck_open, false);
	return false;
}

int proxy_server_new(const struct proxy_config *cfg, struct proxy_server **out,
		     char *err, size_t errlen)
{
	static const char *const default_listen[] = {PROXY_DEFAULT_LISTEN};
	struct proxy_server *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->cfg = *cfg;
	if (s->cfg.nlisten == 0) {
		s->cfg.listen = default_listen;
		s->cfg.nlisten = 1;
	}
	pthread_mutex_init(&s->policy_lock, NULL);
	why_init(&s->why);
	atomic_init(&s->nconns, 0);
	atomic_init(&s->nrejecting, 0);
	atomic_init(&s->selfcheck_open, cfg->selfcheck_fd > 2);
	s->no_splice = getenv("AGENTSAFE_PROXY_NO_SPLICE") != NULL;
	const char *trace = getenv("AGENTSAFE_PROXY_TRACE");
	s->trace = trace != NULL && strcmp(trace, "1") == 0;
	/* Splice pipes are held only while bytes are moving (splice.c), and
	 * only within what the descriptor limit leaves after 2 per
	 * connection, so idle tunnels never cost pipes. */
	struct rlimit rl;
	atomic_init(&s->pipe_pairs, 0);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 256)
		s->fd_limit =
		    rl.rlim_cur > 1u << 30 ? 1u << 30 : (unsigned)rl.rlim_cur;
	s->nworkers = cfg->workers;
	if (s->nworkers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		s->nworkers = n > 0 ? (unsigned)n : 1;
	}
	int rc = policy_load_file(cfg->policy_path, &s->policy, err, errlen);
	if (rc != 0)
		goto fail;
	if (cfg->learn)
		policy_force_learn(s->policy);
	rc = egress_log_open(cfg->log_path ? cfg->log_path : "-", cfg->session,
			     &s->log, err, errlen);
	if (rc != 0)
		goto fail;
	/* Tests shrink the log's disk reserve to reach its end quickly. */
	const char *reserve = getenv("AGENTSAFE_LOG_RESERVE_KB");
	if (reserve != NULL)
		egress_log_set_reserve(
		    s->log, (size_t)strtoul(reserve, NULL, 10) << 10);
	rc = inspect_srv_new(cfg, s->policy, &s->insp, err, errlen);
	if (rc != 0)
		goto fail;
	s->fold = egress_fold_new(s->log);
	if (s->fold == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}

	s->nlisten = s->cfg.nlisten;
	s->laddrs = calloc(s->nlisten, sizeof *s->laddrs);
	s->fds = malloc(sizeof(int) * s->nlisten * s->nworkers);
	for (size_t i = 0; s->fds != NULL && i < s->nlisten * s->nworkers; i++)
		s->fds[i] = -1;
	if (s->laddrs == NULL || s->fds == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < s->nlisten; i++) {
		socklen_t sl;
		rc = proxy_parse_sockaddr(s->cfg.listen[i], false, 0,
					  &s->laddrs[i], &sl, err, errlen);
		if (rc != 0)
			goto fail;
		/* The first socket fixes the port (the kernel's pick for
		 * :0); the other workers' sockets join it. */
		for (unsigned w = 0; w < s->nworkers; w++) {
			int fd = bind_one(&s->laddrs[i], err, errlen);
			if (fd < 0) {
				rc = fd;
				goto fail;
			}
			s->fds[w * s->nlisten + i] = fd;
			if (w == 0) {
				struct sockaddr_storage got;
				socklen_t gl = sizeof got;
				if (getsockname(fd, (struct sockaddr *)&got,
						&gl) != 0) {
					rc = -errno;
					snprintf(err, errlen, "getsockname: %s",
						 strerror(errno));
					goto fail;
				}
				s->laddrs[i] = got;
			}
		}
	}
	*out = s;
	return 0;
fail:
	proxy_server_free(s);
	return rc;
}

/* ---- workers ---- */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)salen;
	conn_accept(arg, fd, sa);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct worker *w = arg;
	int e = EVUTIL_SOCKET_ERROR();
	(void)l;
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		/* Out of descriptors: stop accepting for a moment rather
		 * than spin on a listener that stays readable. */
		for (size_t i = 0; i < w->srv->nlisten; i++)
			evconnlistener_disable(w->listeners[i]);
		struct timeval tv = {0, 100000};
		evtimer_add(w->accept_resume, &tv);
		fprintf(stderr, PROXY_PREFIX "accept: %s; pausing accepts\n",
			strerror(e));
	}
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	if (w->draining)
		return;
	for (size_t i = 0; i < w->srv->nlisten; i++)
		evconnlistener_enable(w->listeners[i]);
}

static void drain_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	while (w->conns != NULL)
		conn_shutdown(w->conns);
	event_base_loopexit(w->base, NULL);
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	w->draining = true;
	for (size_t i = 0; i < w->srv->nlisten; i++) {
		if (w->listeners[i] != NULL) {
			evconnlistener_free(w->listeners[i]);
			w->listeners[i] = NULL;
		}
	}
	/* Connections with nothing in flight go now; the rest get a grace
	 * period to finish. */
	struct conn *c = w->conns;
	while (c != NULL) {
		struct conn *next = c->next;
		if (c->state == CS_HEAD &&
		    evbuffer_get_length(bufferevent_get_input(c->client.bev)) ==
			0)
			conn_free(c);
		c = next;
	}
	if (w->nconns == 0) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	struct timeval tv = {DRAIN_GRACE_MS / 1000,
			     (DRAIN_GRACE_MS % 1000) * 1000};
	evtimer_add(w->drain_timer, &tv);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char err[256];
	/* Capabilities are per thread: check ours before serving. */
	if (proxy_verify_no_caps(err, sizeof err) != 0) {
		fprintf(stderr, PROXY_PREFIX "worker %u: %s\n", w->index, err);
		abort();
	}
	event_base_dispatch(w->base);
	return NULL;
}

static int worker_init(struct proxy_server *s, struct worker *w, unsigned index,
		       char *err, size_t errlen)
{
	w->srv = s;
	w->index = index;
	w->base = event_base_new();
	w->listeners = calloc(s->nlisten, sizeof(struct evconnlistener *));
	if (w->base == NULL || w->listeners == NULL) {
		snprintf(err, errlen, "cannot create an event base");
		return -ENOMEM;
	}
	bool custom = s->cfg.hosts_path != NULL || s->cfg.ndns > 0;
	w->dns = evdns_base_new(w->base, 0);
	if (w->dns == NULL) {
		snprintf(err, errlen, "cannot create a resolver");
		return -ENOMEM;
	}
	/* The system resolver's servers, options and hosts file, but never
	 * its search list: every name is resolved as the absolute name the
	 * policy allowed. With `search` (or a domain taken from the host
	 * name) and ndots, a name that does not exist would be retried as
	 * name.<search domain>, a name no rule allowed, answered by whoever
	 * runs that domain. An unreadable resolv.conf leaves libevent's
	 * default (127.0.0.1), as the system resolver would. */
	if (!custom)
		(void)evdns_base_resolv_conf_parse(w->dns,
						   DNS_OPTION_NAMESERVERS |
						       DNS_OPTION_MISC |
						       DNS_OPTION_HOSTSFILE,
						   "/etc/resolv.conf");
	evdns_base_search_clear(w->dns);
	(void)evdns_base_set_option(w->dns, "randomize-case:", "0");
	(void)evdns_base_set_option(w->dns, "timeout:", "2");
	(void)evdns_base_set_option(w->dns, "attempts:", "2");
	if (s->cfg.hosts_path != NULL &&
	    evdns_base_load_hosts(w->dns, s->cfg.hosts_path) != 0) {
		snprintf(err, errlen, "cannot read hosts file %s",
			 s->cfg.hosts_path);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->cfg.ndns; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		int rc = proxy_parse_sockaddr(s->cfg.dns[i], true, 53, &ss, &sl,
					      err, errlen);
		if (rc != 0)
			return rc;
		if (evdns_base_nameserver_sockaddr_add(
			w->dns, (struct sockaddr *)&ss, sl, 0) != 0) {
			snprintf(err, errlen, "cannot use DNS server %s",
				 s->cfg.dns[i]);
			return -EINVAL;
		}
	}
	w->dns_hosts_only = custom && s->cfg.ndns == 0;
	w->shutdown_ev = event_new(w->base, -1, 0, shutdown_cb, w);
	w->drain_timer = evtimer_new(w->base, drain_timer_cb, w);
	w->accept_resume = evtimer_new(w->base, accept_resume_cb, w);
	if (w->shutdown_ev == NULL || w->drain_timer == NULL ||
	    w->accept_resume == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->nlisten; i++) {
		int fd = s->fds[index * s->nlisten + i];
		w->listeners[i] = evconnlistener_new(
		    w->base, accept_cb, w,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
		if (w->listeners[i] == NULL) {
			snprintf(err, errlen, "cannot watch a listener");
			return -ENOMEM;
		}
		s->fds[index * s->nlisten + i] = -1; /* owned by listener */
		evconnlistener_set_error_cb(w->listeners[i], accept_error_cb);
	}
	return 0;
}

static void worker_cleanup(struct worker *w)
{
	if (w->base == NULL)
		return;
	while (w->conns != NULL)
		conn_shutdown(w->conns);
	for (size_t i = 0; w->listeners != NULL && i < w->srv->nlisten; i++)
		if (w->listeners[i] != NULL)
			evconnlistener_free(w->listeners[i]);
	free(w->listeners);
	/* Let cancelled lookups deliver their EVUTIL_EAI_CANCEL callbacks
	 * (they free the request state) before the resolver goes. */
	for (int i = 0; i < 4; i++)
		event_base_loop(w->base, EVLOOP_NONBLOCK);
	if (w->dns != NULL)
		evdns_base_free(w->dns, 0);
	if (w->shutdown_ev)
		event_free(w->shutdown_ev);
	if (w->drain_timer)
		event_free(w->drain_timer);
	if (w->accept_resume)
		event_free(w->accept_resume);
	event_base_free(w->base);
	w->base = NULL;
}

/* ---- signals ---- */

int proxy_reload(struct proxy_server *s)
{
	char err[POLICY_ERR_MAX * 2];
	struct policy *np = NULL;
	int rc = policy_load_file(s->cfg.policy_path, &np, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr,
			PROXY_PREFIX
			"reload failed, keeping the old policy: %s\n",
			err);
		struct egress_record r;
		char id[48];
		egress_log_next_id(s->log, id, sizeof id);
		egress_record_init(&r);
		r.id = id;
		r.event = "error";
		r.reason = egress_reason_name(EGRESS_REASON_RELOAD_FAILED);
		r.message = err;
		(void)egress_log_write(s->log, &r);
		return rc;
	}
	if (s->cfg.learn)
		policy_force_learn(np); /* not shared yet */
	pthread_mutex_lock(&s->policy_lock);
	struct policy *old = s->policy;
	s->policy = np;
	pthread_mutex_unlock(&s->policy_lock);
	policy_unref(old); /* freed when the last request using it ends */
	fprintf(stderr, PROXY_PREFIX "reloaded policy %s (%zu rules)\n",
		s->cfg.policy_path, policy_rule_count(np));
	return 0;
}

int proxy_server_run(struct proxy_server *s, char *err, size_t errlen)
{
	int rc = proxy_drop_privileges(s->cfg.user, err, errlen);
	if (rc != 0)
		return rc;

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* Workers inherit the mask: only the main thread takes signals. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	/* notify-send children (approval.c) are reaped by the kernel. */
	(void)signal(SIGCHLD, SIG_IGN);

	event_set_log_callback(libevent_log);
	if (evthread_use_pthreads() != 0) {
		snprintf(err, errlen, "libevent has no pthreads support");
		return -ENOSYS;
	}
	s->workers = calloc(s->nworkers, sizeof *s->workers);
	if (s->workers == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < s->nworkers; i++) {
		rc = worker_init(s, &s->workers[i], i, err, errlen);
		if (rc != 0)
			return rc;
	}
	rc = budget_start(s, err, errlen);
	/* Bound as the user we now are: the socket is the user's. */
	if (rc == 0 && s->cfg.approval_socket != NULL)
		rc = approval_start(s, &s->workers[0], s->cfg.approval_socket,
				    getuid(), err, errlen);
	if (rc != 0)
		return rc;
	for (unsigned i = 0; i < s->nworkers; i++) {
		rc = pthread_create(&s->workers[i].thread, NULL, worker_main,
				    &s->workers[i]);
		if (rc != 0) {
			snprintf(err, errlen, "cannot start a worker: %s",
				 strerror(rc));
			for (unsigned j = 0; j < i; j++)
				event_active(s->workers[j].shutdown_ev, 0, 0);
			return -rc;
		}
		s->workers[i].started = true;
	}
	for (size_t i = 0; i < s->nlisten; i++) {
		char addr[PROXY_ADDRSTR_MAX];
		proxy_format_addr((struct sockaddr *)&s->laddrs[i], addr,
				  sizeof addr);
		fprintf(stderr, "listening on %s\n", addr);
	}
	(void)fflush(stderr);

	/* SIGHUP swaps the policy under a mutex, SIGUSR1 reopens the log,
	 * SIGTERM and SIGINT drain. */
	for (;;) {
		/* Once a second: the summaries of folded denials are due. */
		const struct timespec tick = {1, 0};
		int sig = sigtimedwait(&set, NULL, &tick);
		if (sig < 0) {
			egress_fold_flush(s->fold, false);
			continue;
		}
		if (sig == SIGHUP) {
			(void)proxy_reload(s);
		} else if (sig == SIGUSR1) {
			char e[256];
			if (egress_log_reopen(s->log, e, sizeof e) != 0)
				fprintf(stderr, PROXY_PREFIX "%s\n", e);
		} else {
			break;
		}
	}
	fprintf(stderr, PROXY_PREFIX "draining\n");
	for (unsigned i = 0; i < s->nworkers; i++)
		event_active(s->workers[i].shutdown_ev, 0, 0);
	return 0;
}

void proxy_server_free(struct proxy_server *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; s->workers != NULL && i < s->nworkers; i++) {
		if (s->workers[i].started)
			pthread_join(s->workers[i].thread, NULL);
	}
	for (unsigned i = 0; s->workers != NULL && i < s->nworkers; i++) {
		if (i == 0)
			approval_stop(s); /* on worker 0's loop */
		worker_cleanup(&s->workers[i]);
	}
	budget_stop(s);
	free(s->workers);
	for (size_t i = 0; s->fds != NULL && i < s->nlisten * s->nworkers; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	free(s->fds);
	free(s->laddrs);
	policy_unref(s->policy);
	inspect_srv_free(s->insp);
	egress_fold_free(s->fold); /* writes what it still counts */
	egress_log_close(s->log);
	pthread_mutex_destroy(&s->policy_lock);
	why_destroy(&s->why);
	free(s);
}
