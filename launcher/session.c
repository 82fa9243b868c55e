/* Session paths and session.json. The JSON is written by the launcher only
 * (never mounted into the container), so its contents are trusted by a
 * later stop/ls/sweep from the same user. */
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "egress_log.h"

int session_xdg_dir(const char *kind, char *out, size_t len)
{
	char var[32];
	snprintf(var, sizeof var, "XDG_%s_HOME", kind);
	const char *x = getenv(var);
	int n;
	if (x != NULL && x[0] == '/') {
		n = snprintf(out, len, "%s/agentsafe", x);
	} else {
		const char *home = getenv("HOME");
		if (home == NULL || home[0] != '/')
			return -ENOENT;
		const char *fb = strcmp(kind, "CONFIG") == 0  ? ".config"
				 : strcmp(kind, "CACHE") == 0 ? ".cache"
				 : strcmp(kind, "DATA") == 0  ? ".local/share"
							      : ".local/state";
		n = snprintf(out, len, "%s/%s/agentsafe", home, fb);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int session_new_id(char *out, size_t len)
{
	unsigned char r[SESSION_ID_LEN / 2];
	if (len < SESSION_ID_LEN + 1)
		return -ENAMETOOLONG;
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		return -EIO;
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

int session_state_dir(const char *id, char *out, size_t len)
{
	char s[4096];
	int rc = session_xdg_dir("STATE", s, sizeof s);
	if (rc != 0)
		return rc;
	int n = snprintf(out, len, "%s/sessions/%s", s, id);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int json_path(const char *id, const char *name, char *out, size_t len)
{
	char d[4096];
	int rc = session_state_dir(id, d, sizeof d);
	if (rc != 0)
		return rc;
	int n = snprintf(out, len, "%s/%s", d, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int session_save(const char *id, const json_t *doc, char *err,
			size_t errlen)
{
	char p[4200], t[4300];
	if (json_path(id, "session.json", p, sizeof p) != 0) {
		snprintf(err, errlen, "session %s: state path too long", id);
		return -ENAMETOOLONG;
	}
	snprintf(t, sizeof t, "%s.tmp", p);
	if (json_dump_file(doc, t, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 ||
	    rename(t, p) != 0) {
		int e = errno ? errno : EIO;
		snprintf(err, errlen, "%s: %s", p, strerror(e));
		unlink(t);
		return -e;
	}
	return 0;
}

static json_t *session_load(const char *id)
{
	char p[4200];
	if (json_path(id, "session.json", p, sizeof p) != 0)
		return NULL;
	return json_load_file(p, 0, NULL);
}

static json_t *pack_repos(const struct session_record *r)
{
	json_t *repos = json_array();
	for (size_t i = 0; repos != NULL && i < r->nrepos; i++) {
		const struct session_repo *g = &r->repos[i];
		json_array_append_new(
		    repos, json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", g->name,
				     "host", g->host, "clone", g->clone,
				     "branch", g->branch, "base", g->base));
	}
	return repos;
}

/* {"name": ms, ...} in launch order (jansson keeps insertion order). */
static json_t *pack_phases(const struct session_record *r)
{
	json_t *t = json_object();
	for (size_t i = 0; t != NULL && i < r->nphases; i++)
		json_object_set_new(t, r->phases[i].name,
				    json_integer((json_int_t)r->phases[i].ms));
	return t;
}

int session_record_save(const struct session_record *r, char *err,
			size_t errlen)
{
	char now[40];
	egress_format_ts(now, sizeof now);
	json_t *repos = pack_repos(r);
	json_t *j = json_pack(
	    "{s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:b,s:o}",
	    "id", r->id, "name", r->name, "pid", (json_int_t)r->pid, "network",
	    r->network, "bridge", r->bridge, "table", r->table, "container",
	    r->container, "probe_container", r->probe, "egress_log",
	    r->egress_log, "proxy_pid", (json_int_t)r->proxy_pid, "nflog_group",
	    (json_int_t)r->nflog_group, "proxy", r->proxy, "updated",
	    r->updated ? r->updated : now, "finished", r->finished, "repos",
	    repos ? repos : json_array());
	if (j == NULL) {
		snprintf(err, errlen, "session %s: out of memory", r->id);
		return -ENOMEM;
	}
	if (r->nphases > 0)
		json_object_set_new(j, "timings", pack_phases(r));
	if (r->selfcheck_start != NULL)
		json_object_set_new(j, "selfcheck",
				    json_pack("{s:s,s:s?}", "start",
					      r->selfcheck_start, "end",
					      r->selfcheck_end));
	int rc = session_save(r->id, j, err, errlen);
	json_decref(j);
	return rc;
}

/* A missing or mistyped key reads as "" or 0: the file is ours, but may be
 * from an older launcher. */
static const char *str_of(const json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));
	return v ? v : "";
}

int session_record_load(const char *id, struct session_record *r)
{
	memset(r, 0, sizeof *r);
	json_t *j = session_load(id);
	if (j == NULL)
		return -ENOENT;
	json_t *repos = json_object_get(j, "repos");
	size_t n = json_array_size(repos);
	struct session_repo *rv = calloc(n + 1, sizeof *rv);
	if (rv == NULL) {
		json_decref(j);
		return -ENOMEM;
	}
	size_t i;
	json_t *g;
	json_array_foreach(repos, i, g)
	{
		rv[i] = (struct session_repo){
		    str_of(g, "name"), str_of(g, "host"), str_of(g, "clone"),
		    str_of(g, "branch"), str_of(g, "base")};
	}
	r->id = str_of(j, "id");
	r->name = str_of(j, "name");
	r->pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
	r->network = str_of(j, "network");
	r->bridge = str_of(j, "bridge");
	r->table = str_of(j, "table");
	r->container = str_of(j, "container");
	r->probe = str_of(j, "probe_container");
	r->egress_log = str_of(j, "egress_log");
	r->proxy_pid =
	    (pid_t)json_integer_value(json_object_get(j, "proxy_pid"));
	r->nflog_group =
	    (uint16_t)json_integer_value(json_object_get(j, "nflog_group"));
	r->proxy = str_of(j, "proxy");
	r->updated = str_of(j, "updated");
	r->finished = json_is_true(json_object_get(j, "finished"));
	r->repos = rv;
	r->nrepos = n;
	r->doc_ = j;
	return 0;
}

void session_record_free(struct session_record *r)
{
	json_decref(r->doc_);
	/* Only a loaded record owns its repo array. */
	if (r->doc_ != NULL)
		free((void *)r->repos);
	memset(r, 0, sizeof *r);
}

static bool pid_is_launcher(pid_t pid)
{
	if (pid <= 1 || kill(pid, 0) != 0)
		return errno == EPERM && pid > 1;
	/* A recycled pid would belong to some other program. */
	char p[64], comm[64] = "";
	snprintf(p, sizeof p, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(p, "r");
	if (f == NULL)
		return true;
	if (fgets(comm, sizeof comm, f) == NULL)
		comm[0] = '\0';
	(void)fclose(f); /* only read */
	/* A zombie (killed, not yet reaped) is gone for our purposes. */
	char st[256] = "";
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	f = fopen(p, "r");
	if (f != NULL) {
		if (fgets(st, sizeof st, f) == NULL)
			st[0] = '\0';
		(void)fclose(f); /* only read */
	}
	const char *rp = strrchr(st, ')');
	if (rp != NULL && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
		return false;
	return strncmp(comm, "agentsafe-launc", 15) == 0;
}

bool session_is_live(const char *id)
{
	json_t *j = session_load(id);
	if (j == NULL)
		return false;
	json_int_t pid = json_integer_value(json_object_get(j, "pid"));
	bool done = json_is_true(json_object_get(j, "finished"));
	json_decref(j);
	return !done && pid_is_launcher((pid_t)pid);
}

void session_each(void (*fn)(const char *id, void *arg), void *arg)
{
	char s[4096], d[4200];
	if (session_xdg_dir("STATE", s, sizeof s) != 0)
		return;
	snprintf(d, sizeof d, "%s/sessions", s);
	DIR *dir = opendir(d);
	if (dir == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (strlen(e->d_name) != SESSION_ID_LEN ||
		    strspn(e->d_name, "0123456789abcdef") != SESSION_ID_LEN)
			continue;
		fn(e->d_name, arg);
	}
	closedir(dir);
}

struct finder {
	const char *want;
	char found[SESSION_ID_LEN + 1];
	int live;
};

static void find_one(const char *id, void *arg)
{
	struct finder *f = arg;
	json_t *j = session_load(id);
	if (j == NULL)
		return;
	const char *name = json_string_value(json_object_get(j, "name"));
	if (strcmp(id, f->want) == 0 ||
	    (name != NULL && strcmp(name, f->want) == 0)) {
		/* Prefer a live session when an old one had the same name. */
		int live = session_is_live(id);
		if (f->found[0] == '\0' || live > f->live) {
			snprintf(f->found, sizeof f->found, "%s", id);
			f->live = live;
		}
	}
	json_decref(j);
}

int session_find(const char *name_or_id, char *out, size_t len)
{
	struct finder f = {.want = name_or_id};
	session_each(find_one, &f);
	if (f.found[0] == '\0')
		return -ENOENT;
	snprintf(out, len, "%s", f.found);
	return 0;
}
