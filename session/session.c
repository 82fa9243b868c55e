/* Session paths and session.json. The JSON is written by the launcher only
 * (never mounted into the container), so its contents are trusted by a
 * later stop/ls/sweep from the same user. */
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "egress_log.h"
#include "logread.h"

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

bool session_id_valid(const char *id)
{
	return id != NULL && strlen(id) == SESSION_ID_LEN &&
	       strspn(id, "0123456789abcdef") == SESSION_ID_LEN;
}

int session_state_dir(const char *id, char *out, size_t len)
{
	char s[4096];
	if (!session_id_valid(id))
		return -EINVAL;
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
		json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", g->name,
				      "host", g->host, "clone", g->clone,
				      "branch", g->branch, "base", g->base);
		if (o != NULL && g->commits >= 0) {
			json_object_set_new(o, "commits",
					    json_integer(g->commits));
			json_object_set_new(o, "fetched",
					    json_boolean(g->fetched));
		}
		json_array_append_new(repos, o);
	}
	return repos;
}

static json_t *pack_binds(const struct session_record *r)
{
	json_t *binds = json_array();
	for (size_t i = 0; binds != NULL && i < r->nbinds; i++) {
		const struct session_bind *b = &r->binds[i];
		json_array_append_new(
		    binds, json_pack("{s:s,s:i,s:i,s:b}", "addr", b->addr,
				     "first", (json_int_t)b->first, "last",
				     (json_int_t)b->last, "ssh", b->ssh));
	}
	return binds;
}

/* What a session ended with; absent while it runs. */
static void pack_end(json_t *j, const struct session_record *r)
{
	json_object_set_new(j, "agent", json_string(r->agent ? r->agent : ""));
	json_object_set_new(j, "started",
			    json_string(r->started ? r->started : ""));
	json_t *b = pack_binds(r);
	json_object_set_new(j, "binds", b ? b : json_array());
	if (r->exit_code >= 0)
		json_object_set_new(j, "exit_code", json_integer(r->exit_code));
	if (r->denials >= 0)
		json_object_set_new(j, "denials", json_integer(r->denials));
	if (r->drops >= 0)
		json_object_set_new(j, "drops", json_integer(r->drops));
	if (r->misuse >= 0)
		json_object_set_new(j, "credential_misuse",
				    json_integer(r->misuse));
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
	pack_end(j, r);
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

static int int_or(const json_t *j, const char *key, int dflt)
{
	const json_t *v = json_object_get(j, key);
	json_int_t x = json_integer_value(v);
	return json_is_integer(v) && x >= 0 && x <= INT32_MAX ? (int)x : dflt;
}

static int load_binds(const json_t *j, struct session_record *r)
{
	const json_t *binds = json_object_get(j, "binds");
	size_t n = json_array_size(binds);
	struct session_bind *bv = calloc(n + 1, sizeof *bv);
	if (bv == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const json_t *b = json_array_get(binds, i);
		bv[i] = (struct session_bind){
		    str_of(b, "addr"), (uint16_t)int_or(b, "first", 0),
		    (uint16_t)int_or(b, "last", 0),
		    json_is_true(json_object_get(b, "ssh"))};
	}
	r->binds = bv;
	r->nbinds = n;
	return 0;
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
		json_t *c = json_object_get(g, "commits");
		rv[i] = (struct session_repo){
		    str_of(g, "name"),
		    str_of(g, "host"),
		    str_of(g, "clone"),
		    str_of(g, "branch"),
		    str_of(g, "base"),
		    json_is_integer(c) ? (long)json_integer_value(c) : -1,
		    json_is_true(json_object_get(g, "fetched"))};
	}
	if (load_binds(j, r) != 0) {
		free(rv);
		json_decref(j);
		return -ENOMEM;
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
	r->agent = str_of(j, "agent");
	r->started = str_of(j, "started");
	r->exit_code = int_or(j, "exit_code", -1);
	r->denials = int_or(j, "denials", -1);
	r->drops = int_or(j, "drops", -1);
	r->misuse = int_or(j, "credential_misuse", -1);
	r->doc_ = j;
	return 0;
}

void session_record_free(struct session_record *r)
{
	json_decref(r->doc_);
	/* Only a loaded record owns its arrays. */
	if (r->doc_ != NULL) {
		free((void *)r->repos);
		free((void *)r->binds);
	}
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

int session_log_counts(const char *path, long *denials, long *drops)
{
	struct logread lr;
	struct logrec rec;
	char err[256];
	int rc;

	*denials = *drops = 0;
	if (logread_open(&lr, path, false, err, sizeof err) != 0)
		return -ENOENT;
	lr.quiet = true;
	memset(&rec, 0, sizeof rec);
	while ((rc = logread_next(&lr, &rec)) == 1) {
		/* The launch self-check's own refusals are not the agent's. */
		const char *ev =
		    rec.event && !logrec_has_origin(&rec) ? rec.event : "";
		if (strcmp(ev, "deny") == 0) {
			(*denials)++;
		} else if (strcmp(ev, "drop") == 0) {
			/* The rate limit's summary record stands for many. */
			char *end = NULL;
			unsigned long long n =
			    rec.dst == NULL && rec.message != NULL
				? strtoull(rec.message, &end, 10)
				: 0;
			if (end != NULL && end != rec.message &&
			    strncmp(end, " dropped", 8) == 0 &&
			    n < (unsigned long long)INT32_MAX)
				*drops += (long)n;
			else
				(*drops)++;
		}
		logrec_clear(&rec);
	}
	logread_close(&lr);
	return rc < 0 ? -EIO : 0;
}

long session_log_misuse(const char *path)
{
	struct logread lr;
	struct logrec rec;
	char err[256];
	int rc;
	long n = 0;

	if (logread_open(&lr, path, false, err, sizeof err) != 0)
		return -ENOENT;
	lr.quiet = true;
	memset(&rec, 0, sizeof rec);
	while ((rc = logread_next(&lr, &rec)) == 1) {
		if (rec.event != NULL && !logrec_has_origin(&rec) &&
		    strcmp(rec.event, "deny") == 0 && rec.reason != NULL &&
		    strcmp(rec.reason, "credential_misuse") == 0)
			n++;
		logrec_clear(&rec);
	}
	logread_close(&lr);
	return rc < 0 ? -EIO : n;
}

/* Appends; truncation is silent but never overflows. */
__attribute__((format(printf, 3, 4))) static void add(char *buf, size_t len,
						      const char *fmt, ...)
{
	size_t used = strnlen(buf, len);
	if (used + 1 >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

void session_summary(const struct session_record *r, char *buf, size_t len)
{
	char name[160], branch[160];
	if (len == 0)
		return;
	buf[0] = '\0';
	(void)logread_escape(r->name, name, sizeof name);
	add(buf, len, "session %s (%s) ", name, r->id);
	if (r->exit_code >= 0)
		add(buf, len, "ended with exit %d", r->exit_code);
	else
		add(buf, len, "ended (exit code not recorded)");
	for (size_t i = 0; i < r->nrepos; i++) {
		const struct session_repo *g = &r->repos[i];
		(void)logread_escape(g->branch, branch, sizeof branch);
		if (g->commits > 0 && g->fetched)
			add(buf, len, "; %ld commit%s back on %s", g->commits,
			    g->commits == 1 ? "" : "s", branch);
		else if (g->commits > 0)
			add(buf, len, "; %ld commit%s NOT back (%s kept)",
			    g->commits, g->commits == 1 ? "" : "s", branch);
		else if (g->commits == 0)
			add(buf, len, "; no new commits");
	}
	if (r->denials >= 0)
		add(buf, len, "; %ld denial%s, %ld drop%s", r->denials,
		    r->denials == 1 ? "" : "s", r->drops,
		    r->drops == 1 ? "" : "s");
	if (r->misuse > 0)
		add(buf, len, "; %ld CREDENTIAL MISUSE refusal%s", r->misuse,
		    r->misuse == 1 ? "" : "s");
}
