/* One request to the git broker, in its own process: read the head the
 * proxy forwarded, route it to one of the session's repos and one of the
 * three smart-HTTP endpoints, run `git http-backend` on the host repo as a
 * CGI (the body de-chunked into its stdin by a helper process), pass its
 * answer back, and write the egress.log records. */
#include "broker_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "egress_log.h"

extern char **environ;

#define IO_TIMEOUT_S 300 /* a stalled client cannot hold a request forever */

struct breq {
	char method[8];
	char path[512];
	char query[128];
	char ctype[128], cenc[32], proto[128];
	long long clen; /* -1: absent */
	bool chunked;
};

enum svc { SVC_ADVERTISE_FETCH, SVC_ADVERTISE_PUSH, SVC_UPLOAD, SVC_RECEIVE };

static void log_git(const struct broker_config *c, const char *op,
		    const char *repo, const char *result, const char *message)
{
	struct egress_record r;
	egress_record_init(&r);
	r.event = "git";
	r.host = BROKER_HOST;
	r.op = op;
	r.repo = repo;
	r.result = result;
	r.message = message;
	if (c->log != NULL)
		(void)egress_log_write(c->log, &r);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The head, one byte at a time: what follows it stays in the socket for
 * the body pump. Returns its length, or -1. */
static long read_head(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		n++;
		if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) {
			buf[n] = '\0';
			return (long)n;
		}
	}
	return -1;
}

static void copy_value(char *dst, size_t len, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	(void)snprintf(dst, len, "%s", v);
	size_t n = strlen(dst);
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\t'))
		dst[--n] = '\0';
}

static int parse_header(struct breq *q, char *line)
{
	char *colon = strchr(line, ':');
	if (colon == NULL)
		return -1;
	*colon = '\0';
	const char *v = colon + 1;
	if (strcasecmp(line, "Content-Type") == 0)
		copy_value(q->ctype, sizeof q->ctype, v);
	else if (strcasecmp(line, "Content-Encoding") == 0)
		copy_value(q->cenc, sizeof q->cenc, v);
	else if (strcasecmp(line, "Git-Protocol") == 0)
		copy_value(q->proto, sizeof q->proto, v);
	else if (strcasecmp(line, "Transfer-Encoding") == 0)
		q->chunked = strcasestr(v, "chunked") != NULL;
	else if (strcasecmp(line, "Content-Length") == 0) {
		char *end;
		errno = 0;
		q->clen = strtoll(v, &end, 10);
		if (errno != 0 || end == v || q->clen < 0)
			return -1;
	}
	return 0;
}

/* Request line and the few headers the CGI needs. */
static int parse_request(char *head, struct breq *q)
{
	char *save = NULL, *line = strtok_r(head, "\r\n", &save);
	char target[1024];
	memset(q, 0, sizeof *q);
	q->clen = -1;
	if (line == NULL ||
	    sscanf(line, "%7s %1023s HTTP/1.%*c", q->method, target) != 2)
		return -1;
	char *qm = strchr(target, '?');
	if (qm != NULL) {
		*qm = '\0';
		if (strlen(qm + 1) >= sizeof q->query)
			return -1;
		memcpy(q->query, qm + 1, strlen(qm + 1) + 1);
	}
	if (strlen(target) >= sizeof q->path)
		return -1;
	memcpy(q->path, target, strlen(target) + 1);
	while ((line = strtok_r(NULL, "\r\n", &save)) != NULL)
		if (parse_header(q, line) != 0)
			return -1;
	return 0;
}

const struct broker_repo *broker_find_repo(const struct broker_config *cfg,
					   const char *name, size_t len)
{
	if (len == 0 || memchr(name, '/', len) != NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nrepos; i++) {
		const char *n = cfg->repos[i].name;
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return &cfg->repos[i];
	}
	return NULL;
}

/* /<repo>/info/refs?service=..., /<repo>/git-upload-pack,
 * /<repo>/git-receive-pack: nothing else (no dumb protocol, no other
 * repo). Returns the repo or NULL with *why. */
static const struct broker_repo *route(const struct broker_config *cfg,
				       const struct breq *q, enum svc *svc,
				       const char **why)
{
	const char *p = q->path, *slash;
	*why = "no such repository in this session";
	if (p[0] != '/' || (slash = strchr(p + 1, '/')) == NULL)
		return NULL;
	const struct broker_repo *r =
	    broker_find_repo(cfg, p + 1, (size_t)(slash - p - 1));
	if (r == NULL)
		return NULL;
	const char *rest = slash + 1;
	bool get = strcmp(q->method, "GET") == 0;
	bool post = strcmp(q->method, "POST") == 0;
	*why = "only git's smart HTTP protocol is served";
	if (get && strcmp(rest, "info/refs") == 0 &&
	    strcmp(q->query, "service=git-upload-pack") == 0)
		*svc = SVC_ADVERTISE_FETCH;
	else if (get && strcmp(rest, "info/refs") == 0 &&
		 strcmp(q->query, "service=git-receive-pack") == 0)
		*svc = SVC_ADVERTISE_PUSH;
	else if (post && strcmp(rest, "git-upload-pack") == 0)
		*svc = SVC_UPLOAD;
	else if (post && strcmp(rest, "git-receive-pack") == 0)
		*svc = SVC_RECEIVE;
	else
		return NULL;
	return r;
}

static void reply(int fd, int status, const char *text)
{
	char buf[1024];
	int n = snprintf(buf, sizeof buf,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; "
			 "charset=utf-8\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n%s\n",
			 status, status == 404 ? "Not Found" : "Forbidden",
			 strlen(text) + 1, text);
	if (n > 0 && (size_t)n < sizeof buf)
		(void)write_all(fd, buf, (size_t)n);
}

/* `git fetch REMOTE` in the host work tree, as the user, with the user's
 * credentials (their environment, credential helper, ssh agent); never
 * a prompt. Returns git's exit status. */
static int upstream_fetch(const struct broker_repo *r, const char *remote)
{
	pid_t k = fork();
	if (k == 0) {
		(void)setenv("GIT_TERMINAL_PROMPT", "0", 1);
		(void)unsetenv("GIT_DIR");
		(void)unsetenv("GIT_WORK_TREE");
		execlp("git", "git", "-C", r->workdir, "fetch", "--quiet", "--",
		       remote, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (k < 0 || waitpid(k, &st, 0) != k)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* In the pump child: copy the body from the socket into the CGI's stdin,
 * de-chunked (the CGI then reads to EOF). */
static int pump_body(FILE *in, int out, const struct breq *q)
{
	char buf[65536], line[256];
	if (!q->chunked) {
		long long left = q->clen < 0 ? 0 : q->clen;
		while (left > 0) {
			size_t want = left < (long long)sizeof buf
					  ? (size_t)left
					  : sizeof buf;
			size_t got = fread(buf, 1, want, in);
			if (got == 0 || write_all(out, buf, got) != 0)
				return -1;
			left -= (long long)got;
		}
		return 0;
	}
	for (;;) {
		if (fgets(line, sizeof line, in) == NULL)
			return -1;
		char *end;
		errno = 0;
		unsigned long long size = strtoull(line, &end, 16);
		if (errno != 0 || end == line)
			return -1;
		if (size == 0)
			break;
		while (size > 0) {
			size_t want =
			    size < sizeof buf ? (size_t)size : sizeof buf;
			size_t got = fread(buf, 1, want, in);
			if (got == 0 || write_all(out, buf, got) != 0)
				return -1;
			size -= got;
		}
		if (fgets(line, sizeof line, in) == NULL) /* CRLF */
			return -1;
	}
	while (fgets(line, sizeof line, in) != NULL && line[0] != '\r' &&
	       line[0] != '\n')
		; /* trailers */
	return 0;
}

static pid_t start_pump(int sock, int cgi_in, const struct breq *q)
{
	pid_t k = fork();
	if (k != 0)
		return k;
	FILE *in = fdopen(sock, "r");
	_exit(in != NULL && pump_body(in, cgi_in, q) == 0 ? 0 : 1);
}

/* The CGI environment, from nothing: no variable of the broker's own
 * reaches git http-backend except PATH and HOME. */
static void cgi_env(const struct broker_ctx *x, const struct breq *q,
		    const char *gitdir, const char *info, const char *report,
		    char env[][BROKER_ENV_MAX], char **envp)
{
	const char *path = getenv("PATH"), *home = getenv("HOME");
	size_t n = 0;
#define E(...) (void)snprintf(env[n++], BROKER_ENV_MAX, __VA_ARGS__)
	E("PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
	E("HOME=%s", home ? home : "/");
	E("GIT_PROJECT_ROOT=%s", gitdir);
	E("GIT_HTTP_EXPORT_ALL=1");
	E("PATH_INFO=/%s", info);
	E("REQUEST_METHOD=%s", q->method);
	E("QUERY_STRING=%s", q->query);
	E("CONTENT_TYPE=%s", q->ctype);
	E("REMOTE_USER=agentsafe-%s", x->cfg->session_id);
	E("REMOTE_ADDR=127.0.0.1");
	E("GIT_CONFIG_NOSYSTEM=1");
	E("GIT_CONFIG_COUNT=4");
	E("GIT_CONFIG_KEY_0=http.receivepack");
	E("GIT_CONFIG_VALUE_0=true");
	E("GIT_CONFIG_KEY_1=core.hooksPath");
	E("GIT_CONFIG_VALUE_1=%s", x->hooks);
	E("GIT_CONFIG_KEY_2=receive.advertisePushOptions");
	E("GIT_CONFIG_VALUE_2=false");
	/* The agent's objects land in the user's repo: check them first. */
	E("GIT_CONFIG_KEY_3=receive.fsckObjects");
	E("GIT_CONFIG_VALUE_3=true");
	E("AGENTSAFE_GIT_REPORT=%s", report);
	if (q->cenc[0] != '\0')
		E("HTTP_CONTENT_ENCODING=%s", q->cenc);
	if (q->proto[0] != '\0')
		E("HTTP_GIT_PROTOCOL=%s", q->proto);
	if (q->clen >= 0 && !q->chunked)
		E("CONTENT_LENGTH=%lld", q->clen);
#undef E
	for (size_t i = 0; i < n; i++)
		envp[i] = env[i];
	envp[n] = NULL;
}

static pid_t start_cgi(const struct broker_ctx *x, const struct breq *q,
		       const struct broker_repo *r, const char *info,
		       const char *report, int in, int out)
{
	static char env[32][BROKER_ENV_MAX];
	char *envp[33];
	char gitdir[BROKER_PATH_MAX];
	(void)snprintf(gitdir, sizeof gitdir, "%s", r->gitdir);
	size_t n = strlen(gitdir);
	while (n > 1 && gitdir[n - 1] == '/')
		gitdir[--n] = '\0';
	pid_t k = fork();
	if (k != 0)
		return k;
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
		_exit(127);
	cgi_env(x, q, gitdir, info, report, env, envp);
	environ = envp;
	execlp("git", "git", "http-backend", (char *)NULL);
	_exit(127);
}

/* CGI answer → HTTP response: "Status:" becomes the status line, the
 * other headers pass, and the body is delimited by the close. Returns
 * the status. */
static int relay_cgi(int cgi_out, int sock)
{
	char head[BROKER_HEAD_MAX + 1];
	size_t n = 0;
	char *end = NULL;
	ssize_t r;
	while (end == NULL && n < BROKER_HEAD_MAX &&
	       (r = read(cgi_out, head + n, BROKER_HEAD_MAX - n)) > 0) {
		n += (size_t)r;
		head[n] = '\0';
		end = strstr(head, "\r\n\r\n");
		if (end == NULL)
			end = strstr(head, "\n\n");
	}
	if (end == NULL) {
		reply(sock, 403, "agentsafe: the git broker failed");
		return 502;
	}
	size_t sep = end[0] == '\r' ? 4 : 2;
	size_t body_at = (size_t)(end - head) + sep;
	*end = '\0';
	int status = 200;
	char out[BROKER_HEAD_MAX + 256];
	size_t o = 0;
	char *save = NULL;
	for (char *l = strtok_r(head, "\r\n", &save); l != NULL;
	     l = strtok_r(NULL, "\r\n", &save)) {
		if (strncasecmp(l, "Status:", 7) == 0)
			status = (int)strtol(l + 7, NULL, 10);
		else if (o + strlen(l) + 2 < sizeof out - 128)
			o += (size_t)snprintf(out + o, sizeof out - o, "%s\r\n",
					      l);
	}
	if (status < 100 || status > 599)
		status = 502;
	char line[64];
	int ln = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status,
			  status == 200 ? "OK" : "Broker");
	if (write_all(sock, line, (size_t)ln) != 0 ||
	    write_all(sock, out, o) != 0 ||
	    write_all(sock, "Connection: close\r\n\r\n", 21) != 0 ||
	    write_all(sock, head + body_at, n - body_at) != 0)
		return status;
	char buf[65536];
	while ((r = read(cgi_out, buf, sizeof buf)) > 0)
		if (write_all(sock, buf, (size_t)r) != 0)
			break;
	return status;
}

/* One record per ref of a push, from the hooks' report: the pre-receive
 * verdict, "ok" only when post-receive saw the ref really move. */
static void log_push(const struct broker_config *c, const char *repo,
		     const char *report)
{
	FILE *f = fopen(report, "r");
	char line[1024], v[32], old[80], nw[80], ref[600];
	char updated[64][600];
	size_t nu = 0;
	bool any = false;
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "updated %79s %79s %599s", old, nw, ref) ==
			3 &&
		    nu < 64)
			memcpy(updated[nu++], ref, sizeof ref);
	if (f != NULL)
		rewind(f);
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "%31s %79s %79s %599s", v, old, nw, ref) !=
			4 ||
		    strcmp(v, "updated") == 0)
			continue;
		bool moved = false;
		for (size_t i = 0; i < nu && !moved; i++)
			moved = strcmp(updated[i], ref) == 0;
		struct egress_record r;
		egress_record_init(&r);
		r.event = "git";
		r.host = BROKER_HOST;
		r.op = "push";
		r.repo = repo;
		r.ref = ref;
		r.old_id = old;
		r.new_id = nw;
		r.result = moved ? "ok" : strcmp(v, "ok") == 0 ? "declined" : v;
		any = true;
		if (c->log != NULL)
			(void)egress_log_write(c->log, &r);
	}
	if (f != NULL)
		(void)fclose(f);
	if (!any)
		log_git(c, "push", repo, "error", "no ref reached the hook");
}

/* --push-upstream: each ref the push really moved (post-receive's
 * "updated" lines; deletes left alone) goes on to the real remote, pushed
 * from the host repo as the user with their credentials, never forced. */
static void forward_pushes(const struct broker_config *c,
			   const struct broker_repo *r, const char *report)
{
	FILE *f = fopen(report, "r");
	char line[1024], old[80], nw[80], ref[600], spec[1300], msg[700];
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "updated %79s %79s %599s", old, nw, ref) !=
			3 ||
		    strspn(nw, "0") == strlen(nw))
			continue;
		(void)snprintf(spec, sizeof spec, "%s:%s", ref, ref);
		int st = -1;
		pid_t k = fork();
		if (k == 0) {
			(void)setenv("GIT_TERMINAL_PROMPT", "0", 1);
			(void)unsetenv("GIT_DIR");
			(void)unsetenv("GIT_WORK_TREE");
			execlp("git", "git", "-C", r->workdir, "push",
			       "--quiet", "--", c->upstream, spec,
			       (char *)NULL);
			_exit(127);
		}
		if (k > 0 && waitpid(k, &st, 0) == k && WIFEXITED(st))
			st = WEXITSTATUS(st);
		struct egress_record rec;
		egress_record_init(&rec);
		(void)snprintf(msg, sizeof msg, "git push %s %s: exit %d",
			       c->upstream, ref, st);
		rec.event = "git";
		rec.host = BROKER_HOST;
		rec.op = "push_upstream";
		rec.repo = r->name;
		rec.ref = ref;
		rec.old_id = old;
		rec.new_id = nw;
		rec.result = st == 0 ? "ok" : "error";
		rec.message = msg;
		if (c->log != NULL)
			(void)egress_log_write(c->log, &rec);
		if (st == 0 && c->pr && strspn(old, "0") == strlen(old))
			broker_open_pr(c, r, ref);
	}
	if (f != NULL)
		(void)fclose(f);
}

/* Runs the CGI with the body pump; returns the HTTP status. */
static int run_backend(const struct broker_ctx *x, const struct breq *q,
		       const struct broker_repo *r, const char *info,
		       const char *report, int sock)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) != 0)
		return 500;
	if (pipe2(out, O_CLOEXEC) != 0) {
		close(in[0]);
		close(in[1]);
		return 500;
	}
	pid_t cgi = start_cgi(x, q, r, info, report, in[0], out[1]);
	close(in[0]);
	close(out[1]);
	pid_t pump = cgi > 0 ? start_pump(sock, in[1], q) : -1;
	close(in[1]);
	int status = cgi > 0 ? relay_cgi(out[0], sock) : 500;
	close(out[0]);
	int st;
	if (pump > 0)
		(void)waitpid(pump, &st, 0);
	if (cgi > 0 &&
	    (waitpid(cgi, &st, 0) != cgi || !WIFEXITED(st) ||
	     WEXITSTATUS(st) != 0) &&
	    status == 200)
		status = 500;
	return status;
}

static const char *svc_op(enum svc s)
{
	return s == SVC_ADVERTISE_PUSH || s == SVC_RECEIVE ? "push" : "fetch";
}

void broker_serve_one(const struct broker_ctx *x, int fd)
{
	const struct broker_config *c = x->cfg;
	char head[BROKER_HEAD_MAX], msg[300], report[BROKER_PATH_MAX + 64];
	struct timeval tv = {IO_TIMEOUT_S, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct breq q;
	if (read_head(fd, head, sizeof head) < 0 || parse_request(head, &q)) {
		reply(fd, 403,
		      "agentsafe: malformed request to the git broker");
		log_git(c, NULL, NULL, "refused", "malformed request");
		return;
	}
	enum svc svc = SVC_UPLOAD;
	const char *why = NULL;
	const struct broker_repo *r = route(c, &q, &svc, &why);
	if (r == NULL) {
		char text[300];
		(void)snprintf(text, sizeof text, BROKER_REFUSAL_FMT "; %s",
			       c->session_id, why);
		reply(fd, 404, text);
		(void)snprintf(msg, sizeof msg, "%s: %.200s", why, q.path);
		log_git(c,
			strstr(q.path, "receive-pack") ||
				strstr(q.query, "receive-pack")
			    ? "push"
			    : "fetch",
			NULL, "refused", msg);
		return;
	}
	/* git skips a hook it cannot run, and the hook is all that limits a
	 * push: no runnable hook, no push. */
	char hook[BROKER_PATH_MAX + 16];
	(void)snprintf(hook, sizeof hook, "%s/pre-receive", x->hooks);
	if ((svc == SVC_ADVERTISE_PUSH || svc == SVC_RECEIVE) &&
	    access(hook, X_OK) != 0) {
		reply(fd, 403,
		      "agentsafe: pushes are off: the broker's hook "
		      "cannot run");
		log_git(c, "push", r->name, "error",
			"pre-receive hook not runnable");
		return;
	}
	if (svc == SVC_ADVERTISE_FETCH && c->upstream != NULL) {
		int g = upstream_fetch(r, c->upstream);
		(void)snprintf(msg, sizeof msg, "git fetch %s: exit %d",
			       c->upstream, g);
		log_git(c, "upstream_fetch", r->name, g == 0 ? "ok" : "error",
			msg);
	}
	(void)snprintf(report, sizeof report, "%s/%d", x->reports,
		       (int)getpid());
	(void)unlink(report);
	int status =
	    run_backend(x, &q, r, strchr(q.path + 1, '/') + 1, report, fd);
	if (svc == SVC_RECEIVE) {
		log_push(c, r->name, report);
		if (c->push_upstream && c->upstream != NULL)
			forward_pushes(c, r, report);
		(void)unlink(report);
	} else if (svc == SVC_ADVERTISE_FETCH || status != 200) {
		(void)snprintf(msg, sizeof msg, "HTTP %d", status);
		log_git(c, svc_op(svc), r->name, status == 200 ? "ok" : "error",
			msg);
	}
}
