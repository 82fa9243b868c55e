/* `agentsafe approve`: answer the proxy's questions about hosts no rule
 * names (`unknown: ask`). Talks JSON lines over each session's
 * approve.sock, after checking that the socket and the process serving it
 * belong to this user (or root); `always` merges the rule into policy.yaml
 * the way `log suggest --apply` does before the proxy reloads it. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "log_int.h"
#include "logread.h"
#include "policy.h"
#include "session.h"

#define PROG "agentsafe approve"

static const char approve_usage[] =
    "usage: agentsafe approve [--session ID | --socket PATH]\n"
    "       agentsafe approve (--session ID | --socket PATH) HOST[:PORT]\n"
    "                         --once | --for-session | --always | --deny\n"
    "Lists the requests your sessions hold for hosts no rule names (policy\n"
    "unknown: ask, or agentsafe-launch --ask) and answers them: without\n"
    "HOST, asks about each in turn. PORT defaults to 443.\n"
    "  --once         let this request (and the others waiting now) through\n"
    "  --for-session  allow HOST:PORT until the session ends\n"
    "  --always       add HOST:PORT to the session's policy.yaml (comments\n"
    "                 kept, checked, backup kept) and reload it\n"
    "  --deny         refuse the waiting requests\n";

/* Connect to a session's socket, refusing one that another user made. */
static int sock_open(const char *path, char *err, size_t errlen)
{
	struct stat st;
	uid_t me = getuid();
	if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: no approval socket", path);
		return -ENOENT;
	}
	/* root (sudo agentsafe approve) may answer any user's session. */
	if (st.st_uid != me && st.st_uid != 0 && me != 0) {
		snprintf(err, errlen,
			 "%s belongs to uid %ld, not you: not using it", path,
			 (long)st.st_uid);
		return -EPERM;
	}
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -ECONNREFUSED;
	}
	struct ucred cr;
	socklen_t cl = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 ||
	    (cr.uid != me && cr.uid != 0 && me != 0)) {
		snprintf(err, errlen, "%s is served by another user", path);
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* One request, one reply line. NULL with err set on failure. */
static json_t *roundtrip(int fd, json_t *req, char *err, size_t errlen)
{
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	size_t len = strlen(s);
	s[len] = '\n'; /* replaces the NUL; we send len + 1 bytes */
	ssize_t w = send(fd, s, len + 1, MSG_NOSIGNAL);
	free(s);
	if (w != (ssize_t)(len + 1)) {
		snprintf(err, errlen, "cannot send: %s", strerror(errno));
		return NULL;
	}
	char buf[65536];
	size_t got = 0;
	while (got < sizeof buf - 1) {
		ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(buf, '\n', got) != NULL)
			break;
	}
	buf[got] = '\0';
	json_error_t je;
	json_t *r = json_loads(buf, 0, &je);
	if (r == NULL) {
		snprintf(err, errlen, "no answer from the proxy");
		return NULL;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		const char *e = json_string_value(json_object_get(r, "error"));
		char q[256];
		(void)logread_escape(e ? e : "refused", q, sizeof q);
		snprintf(err, errlen, "the proxy says: %s", q);
		json_decref(r);
		return NULL;
	}
	return r;
}

static json_t *session_list(const char *path, char *err, size_t errlen)
{
	int fd = sock_open(path, err, errlen);
	if (fd < 0)
		return NULL;
	json_t *r =
	    roundtrip(fd, json_pack("{s:s}", "op", "list"), err, errlen);
	close(fd);
	return r;
}

static int answer(const char *path, const char *host, unsigned port,
		  const char *decision)
{
	char err[512];
	if (strcmp(decision, "always") == 0) {
		json_t *l = session_list(path, err, sizeof err);
		const char *pol =
		    l ? json_string_value(json_object_get(l, "policy")) : NULL;
		if (pol == NULL) {
			fprintf(stderr, PROG ": %s\n",
				l ? "the proxy named no policy file" : err);
			json_decref(l);
			return 1;
		}
		int rc = log_suggest_apply_one(pol, host, (unsigned short)port,
					       "agentsafe approve --always",
					       err, sizeof err);
		json_decref(l);
		if (rc != 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return 1;
		}
	}
	int fd = sock_open(path, err, sizeof err);
	if (fd < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	json_t *r =
	    roundtrip(fd,
		      json_pack("{s:s,s:s,s:i,s:s}", "op", "answer", "host",
				host, "port", (int)port, "decision", decision),
		      err, sizeof err);
	close(fd);
	if (r == NULL) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	printf("%s %s:%u: %lld request(s) released\n", decision, host, port,
	       (long long)json_integer_value(json_object_get(r, "answered")));
	json_decref(r);
	return 0;
}

/* Ask about each pending request of one session on the terminal. */
static int ask_session(const char *path, FILE *in, size_t *asked)
{
	char err[512];
	json_t *l = session_list(path, err, sizeof err);
	if (l == NULL) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	const char *sid = json_string_value(json_object_get(l, "session"));
	char sq[64];
	(void)logread_escape(sid ? sid : "?", sq, sizeof sq);
	int rc = 0;
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(l, "pending"), i, p)
	{
		const char *h = json_string_value(json_object_get(p, "host"));
		json_int_t port =
		    json_integer_value(json_object_get(p, "port"));
		json_int_t left =
		    (json_integer_value(json_object_get(p, "timeout_ms")) -
		     json_integer_value(json_object_get(p, "age_ms"))) /
		    1000;
		char hq[POLICY_HOST_MAX * 4 + 1];
		(void)logread_escape(h ? h : "", hq, sizeof hq);
		(*asked)++;
		printf("session %s: %s:%lld (%lld waiting, %llds left)\n"
		       "  [o]nce, [s]ession, [a]lways, [d]eny, [k]eep "
		       "waiting? ",
		       sq, hq, (long long)port,
		       (long long)json_integer_value(
			   json_object_get(p, "waiting")),
		       (long long)(left > 0 ? left : 0));
		(void)fflush(stdout);
		char line[64];
		if (fgets(line, sizeof line, in) == NULL)
			break;
		static const char *const dec[] = {"once", "session", "always",
						  "deny"};
		const char *d = strchr("osad", line[0]) && line[0]
				    ? dec[strchr("osad", line[0]) - "osad"]
				    : NULL;
		if (d != NULL && h != NULL &&
		    answer(path, h, (unsigned)port, d) != 0)
			rc = 1;
	}
	json_decref(l);
	return rc;
}

static int sock_path(const char *id, char *out, size_t len)
{
	char d[4096];
	if (session_state_dir(id, d, sizeof d) != 0)
		return -EINVAL;
	int n = snprintf(out, len, "%s/approve.sock", d);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Every session of this user with an approval socket. */
static int ask_all(void)
{
	char base[4096], sessions[4200];
	if (session_xdg_dir("STATE", base, sizeof base) != 0)
		return 1;
	snprintf(sessions, sizeof sessions, "%s/sessions", base);
	DIR *dir = opendir(sessions);
	size_t asked = 0;
	int rc = 0;
	struct dirent *e;
	while (dir != NULL && (e = readdir(dir)) != NULL) {
		char p[4400];
		struct stat st;
		if (!session_id_valid(e->d_name) ||
		    sock_path(e->d_name, p, sizeof p) != 0 ||
		    lstat(p, &st) != 0)
			continue;
		if (ask_session(p, stdin, &asked) != 0)
			rc = 1;
	}
	if (dir != NULL)
		closedir(dir);
	if (asked == 0)
		printf("nothing is waiting for an answer\n");
	return rc;
}

int cli_approve_main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"session", required_argument, 0, 'S'},
	    {"socket", required_argument, 0, 'k'},
	    {"once", no_argument, 0, 'o'},
	    {"for-session", no_argument, 0, 's'},
	    {"always", no_argument, 0, 'a'},
	    {"deny", no_argument, 0, 'd'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	const char *session = NULL, *socket_path = NULL, *decision = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		switch (c) {
		case 'S':
			session = optarg;
			break;
		case 'k':
			socket_path = optarg;
			break;
		case 'o':
		case 's':
		case 'a':
		case 'd':
			decision = c == 'o'   ? "once"
				   : c == 's' ? "session"
				   : c == 'a' ? "always"
					      : "deny";
			break;
		case 'h':
			(void)fputs(approve_usage, stdout);
			return 0;
		default:
			cli_bad_option(PROG, c, argv, lo);
			return 2;
		}
	}
	char path[4400];
	if (socket_path == NULL && session != NULL) {
		if (sock_path(session, path, sizeof path) != 0) {
			fprintf(stderr, PROG ": bad session id\n");
			return 2;
		}
		socket_path = path;
	}
	if (optind == argc && decision == NULL) {
		if (socket_path == NULL)
			return ask_all();
		size_t asked = 0;
		int rc = ask_session(socket_path, stdin, &asked);
		if (asked == 0 && rc == 0)
			printf("nothing is waiting for an answer\n");
		return rc;
	}
	if (optind + 1 != argc || decision == NULL || socket_path == NULL) {
		(void)fputs(approve_usage, stderr);
		return 2;
	}
	char host[POLICY_HOST_MAX + 8];
	snprintf(host, sizeof host, "%s", argv[optind]);
	unsigned port = 443;
	char *colon = strrchr(host, ':');
	if (colon != NULL && strchr(host, ':') == colon) {
		char *end;
		unsigned long v = strtoul(colon + 1, &end, 10);
		if (*end != '\0' || v == 0 || v > 65535) {
			fprintf(stderr, PROG ": bad port in %s\n", host);
			return 2;
		}
		port = (unsigned)v;
		*colon = '\0';
	}
	return answer(socket_path, host, port, decision);
}
