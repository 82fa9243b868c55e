/* --pr: after a new review branch reached the upstream (--push-upstream),
 * the broker opens a draft pull request for it through the GitHub API with
 * the host's token (AGENTSAFE_GITHUB_TOKEN, else `gh auth token`), which
 * never enters the container. The API base is AGENTSAFE_GITHUB_API
 * (default https://api.github.com; a GitHub Enterprise or a test server). */
#include "broker_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "egress_log.h"

#define PR_OUT_MAX ((size_t)256 * 1024)

/* stdout of a command run as the user (their environment), trimmed. */
static int capture(const char *const argv[], char *out, size_t len)
{
	int p[2];
	size_t n = 0;
	if (pipe(p) != 0)
		return -1;
	pid_t k = fork();
	if (k == 0) {
		(void)dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		(void)setenv("GIT_TERMINAL_PROMPT", "0", 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	ssize_t r;
	while (k > 0 && n + 1 < len &&
	       (r = read(p[0], out + n, len - n - 1)) > 0)
		n += (size_t)r;
	close(p[0]);
	out[n] = '\0';
	while (n > 0 &&
	       (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		out[--n] = '\0';
	int st = 0;
	if (k < 0 || waitpid(k, &st, 0) != k || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0 || n == 0)
		return -1;
	return 0;
}

/* owner/repo: the last two components of the remote's URL (https://,
 * git@host:, ssh://), without ".git". */
static int owner_repo(const char *url, char *out, size_t len)
{
	char u[1024];
	(void)snprintf(u, sizeof u, "%s", url);
	size_t n = strlen(u);
	while (n > 0 && u[n - 1] == '/')
		u[--n] = '\0';
	if (n > 4 && strcmp(u + n - 4, ".git") == 0)
		u[n - 4] = '\0';
	char *last = strrchr(u, '/');
	if (last == NULL)
		return -1;
	*last = '\0';
	char *prev = strrchr(u, '/'), *colon = strrchr(u, ':');
	if (colon != NULL && (prev == NULL || colon > prev))
		prev = colon;
	if (prev == NULL || prev[1] == '\0' || last[1] == '\0')
		return -1;
	(void)snprintf(out, len, "%s/%s", prev + 1, last + 1);
	return strpbrk(out, "?#% ") == NULL ? 0 : -1;
}

struct body {
	char *p;
	size_t n;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t add = size * nmemb;
	if (b->n + add > PR_OUT_MAX)
		return 0;
	char *q = realloc(b->p, b->n + add + 1);
	if (q == NULL)
		return 0;
	memcpy(q + b->n, ptr, add);
	b->p = q;
	b->n += add;
	b->p[b->n] = '\0';
	return add;
}

/* One API call; the parsed JSON answer (or NULL) and the status. */
static json_t *api(const char *url, const char *token, const char *post,
		   long *status)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct body b = {NULL, 0};
	char auth[600];
	json_t *j = NULL;
	*status = 0;
	if (c == NULL)
		return NULL;
	(void)snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Accept: application/vnd.github+json");
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "agentsafe-broker");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (post != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (b.p != NULL)
		j = json_loads(b.p, 0, NULL);
	free(b.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return j;
}

static void log_pr(const struct broker_config *c, const char *repo,
		   const char *ref, bool ok, const char *msg)
{
	struct egress_record r;
	egress_record_init(&r);
	r.event = "git";
	r.host = BROKER_HOST;
	r.op = "pr";
	r.repo = repo;
	r.ref = ref;
	r.result = ok ? "ok" : "error";
	r.message = msg;
	if (c->log != NULL)
		(void)egress_log_write(c->log, &r);
}

static int pr_token(char *tok, size_t len)
{
	const char *env = getenv("AGENTSAFE_GITHUB_TOKEN");
	const char *const gh[] = {"gh", "auth", "token", NULL};
	if (env != NULL && env[0] != '\0' && strlen(env) < len) {
		memcpy(tok, env, strlen(env) + 1);
		return 0;
	}
	return capture(gh, tok, len);
}

void broker_open_pr(const struct broker_config *c, const struct broker_repo *r,
		    const char *ref)
{
	const char *api_base = getenv("AGENTSAFE_GITHUB_API");
	const char *head =
	    strncmp(ref, "refs/heads/", 11) == 0 ? ref + 11 : ref;
	const char *const geturl[] = {
	    "git", "-C", r->workdir, "remote", "get-url", c->upstream, NULL};
	char remote[1024], slug[512], tok[512], url[1200], msg[700];
	if (api_base == NULL || api_base[0] == '\0')
		api_base = "https://api.github.com";
	if (capture(geturl, remote, sizeof remote) != 0 ||
	    owner_repo(remote, slug, sizeof slug) != 0) {
		log_pr(c, r->name, ref, false,
		       "no owner/repo in the remote URL");
		return;
	}
	if (pr_token(tok, sizeof tok) != 0) {
		log_pr(c, r->name, ref, false,
		       "no token (AGENTSAFE_GITHUB_TOKEN or gh auth token)");
		return;
	}
	long st = 0;
	(void)snprintf(url, sizeof url, "%s/repos/%s", api_base, slug);
	json_t *info = api(url, tok, NULL, &st);
	const char *base =
	    json_string_value(json_object_get(info, "default_branch"));
	json_t *req = json_pack(
	    "{s:s, s:s, s:s, s:b, s:s}", "title", head, "head", head, "base",
	    base ? base : "main", "draft", 1, "body",
	    "Opened by AgentSafe for a session's review branch; its "
	    "provenance note (refs/notes/agentsafe) comes with the session "
	    "end.");
	char *post = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(info);
	json_decref(req);
	(void)snprintf(url, sizeof url, "%s/repos/%s/pulls", api_base, slug);
	json_t *pr = post ? api(url, tok, post, &st) : NULL;
	free(post);
	memset(tok, 0, sizeof tok);
	const char *link = json_string_value(json_object_get(pr, "html_url"));
	(void)snprintf(msg, sizeof msg, "draft pull request %s: HTTP %ld%s%s",
		       slug, st, link ? " " : "", link ? link : "");
	log_pr(c, r->name, ref, st == 201, msg);
	json_decref(pr);
}
