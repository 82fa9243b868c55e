/* agentsafe sessions / prune: the history of this user's sessions, read
 * from their session.json records (session/), and the removal of old ones.
 * Prune computes every path it deletes from the session id (validated by
 * session_each); no path stored in a record is ever removed. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "logread.h"
#include "session.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* When the session started: its record, else the state dir's mtime. */
static int64_t started_ms(const char *id, const struct session_record *r)
{
	int64_t t = logread_parse_ts(r->started);
	if (t < 0)
		t = logread_parse_ts(r->updated);
	if (t < 0) {
		char d[4200];
		struct stat st;
		if (session_state_dir(id, d, sizeof d) == 0 &&
		    stat(d, &st) == 0)
			t = (int64_t)st.st_mtime * 1000;
	}
	return t;
}

static void fmt_age(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms / 1000;
	if (ms < 0)
		snprintf(buf, len, "?");
	else if (s < 3600)
		snprintf(buf, len, "%lldm", (long long)(s / 60));
	else if (s < 86400)
		snprintf(buf, len, "%lldh", (long long)(s / 3600));
	else
		snprintf(buf, len, "%lldd", (long long)(s / 86400));
}

/* ---- sessions ---- */

struct row {
	char id[SESSION_ID_LEN + 1];
	int64_t started;
};

struct rows {
	struct row *v;
	size_t n, cap;
};

static void collect(const char *id, void *arg)
{
	struct rows *rs = arg;
	struct session_record r;
	if (session_record_load(id, &r) != 0)
		return;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 32;
		struct row *v = realloc(rs->v, cap * sizeof *v);
		if (v == NULL) {
			session_record_free(&r);
			return;
		}
		rs->v = v;
		rs->cap = cap;
	}
	snprintf(rs->v[rs->n].id, sizeof rs->v[rs->n].id, "%s", id);
	rs->v[rs->n++].started = started_ms(id, &r);
	session_record_free(&r);
}

static int by_start_desc(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	return (x->started < y->started) - (x->started > y->started);
}

/* The counts of a running session come from its log as it is now. */
static void print_row(const struct row *w, int64_t now)
{
	struct session_record r;
	char age[16], exitc[16], commits[32], repo[96];
	long den = -1, drop = -1, back = 0, misuse = -1;
	bool live, any = false, behind = false;
	if (session_record_load(w->id, &r) != 0)
		return;
	live = session_is_live(w->id);
	fmt_age(w->started < 0 ? -1 : now - w->started, age, sizeof age);
	if (live)
		snprintf(exitc, sizeof exitc, "running");
	else if (!r.finished)
		snprintf(exitc, sizeof exitc, "stale");
	else if (r.exit_code >= 0)
		snprintf(exitc, sizeof exitc, "%d", r.exit_code);
	else
		snprintf(exitc, sizeof exitc, "?");
	den = r.denials;
	drop = r.drops;
	if (live || den < 0)
		(void)session_log_counts(r.egress_log, &den, &drop);
	misuse = r.misuse;
	if (live || misuse < 0)
		misuse = session_log_misuse(r.egress_log);
	for (size_t i = 0; i < r.nrepos; i++) {
		if (r.repos[i].commits < 0)
			continue;
		any = true;
		if (r.repos[i].fetched)
			back += r.repos[i].commits;
		else if (r.repos[i].commits > 0)
			behind = true;
	}
	if (any)
		snprintf(commits, sizeof commits, "%ld%s", back,
			 behind ? "+kept" : "");
	else
		snprintf(commits, sizeof commits, "-");
	(void)logread_escape(r.nrepos > 0 ? r.repos[0].host : "-", repo,
			     sizeof repo);
	/* Misuse stands out: bold red on a terminal, and never 0-padded
	 * into the other counts. */
	bool hl = misuse > 0 && isatty(1) == 1;
	printf("%-12s %-5s %-8s %-7s %-8s %7ld %6ld %s%6ld%s  %s%s\n", w->id,
	       age, r.agent[0] ? r.agent : "?", exitc, commits,
	       den < 0 ? 0 : den, drop < 0 ? 0 : drop, hl ? "\033[1;31m" : "",
	       misuse < 0 ? 0 : misuse, hl ? "\033[0m" : "", repo,
	       r.nrepos > 1 ? " (+more)" : "");
	session_record_free(&r);
}

static void sessions_usage(FILE *f)
{
	(void)fputs("usage: agentsafe sessions\n"
		    "List this user's sessions, newest first: id, age, agent, "
		    "exit code\n(running, or stale when its launcher died), "
		    "commits brought back\n(+kept: some stayed in a kept "
		    "clone), denials, drops, credential misuse refusals\n"
		    "(a placeholder sent toward a host it is not bound to), "
		    "repo.\n",
		    f);
}

int cli_sessions_main(int argc, char **argv)
{
	struct rows rs = {0};
	if (argc == 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		sessions_usage(stdout);
		return 0;
	}
	if (argc != 1) {
		sessions_usage(stderr);
		return 2;
	}
	session_each(collect, &rs);
	qsort(rs.v, rs.n, sizeof *rs.v, by_start_desc);
	printf("%-12s %-5s %-8s %-7s %-8s %7s %6s %6s  %s\n", "ID", "AGE",
	       "AGENT", "EXIT", "COMMITS", "DENIALS", "DROPS", "MISUSE",
	       "REPO");
	int64_t now = now_ms();
	for (size_t i = 0; i < rs.n; i++)
		print_row(&rs.v[i], now);
	free(rs.v);
	return 0;
}

/* ---- prune ---- */

struct prune {
	int64_t before; /* sessions started before this go */
	bool dry_run, force;
	unsigned removed, kept, failed;
};

/* <cache>/sessions/<id>: where the launcher puts a session's clones. */
static int clones_dir(const char *id, char *out, size_t len)
{
	char c[4096];
	if (!session_id_valid(id) || session_xdg_dir("CACHE", c, sizeof c) != 0)
		return -EINVAL;
	int n = snprintf(out, len, "%s/sessions/%s", c, id);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool work_left_behind(const struct session_record *r)
{
	for (size_t i = 0; i < r->nrepos; i++)
		if (r->repos[i].commits > 0 && !r->repos[i].fetched)
			return true;
	return false;
}

static void remove_dir(struct prune *p, const char *what, const char *path)
{
	char err[512] = "";
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	printf("%s %s %s\n", p->dry_run ? "would remove" : "removing", what,
	       path);
	if (!p->dry_run && fs_rmtree(path, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe prune: %s\n", err);
		p->failed++;
	}
}

static void prune_one(const char *id, void *arg)
{
	struct prune *p = arg;
	struct session_record r;
	char state[4200], clones[4200];
	if (session_state_dir(id, state, sizeof state) != 0 ||
	    clones_dir(id, clones, sizeof clones) != 0 ||
	    session_record_load(id, &r) != 0)
		return;
	int64_t t = started_ms(id, &r);
	bool keep =
	    session_is_live(id) || !r.finished || t < 0 || t >= p->before;
	if (!keep && work_left_behind(&r) && !p->force) {
		printf("keeping %s: its clone holds commits not fetched into "
		       "your repo (agentsafe review %s; prune --force removes "
		       "it)\n",
		       id, id);
		keep = true;
	}
	session_record_free(&r);
	if (keep) {
		p->kept++;
		return;
	}
	remove_dir(p, "clones", clones);
	remove_dir(p, "state", state);
	p->removed++;
}

int cli_prune_main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"dry-run", no_argument, 0, 'n'},
	    {"older-than", required_argument, 0, 'o'},
	    {"force", no_argument, 0, 'f'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	struct prune p = {0};
	int64_t now = now_ms();
	const char *older = "7d";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "nh", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			p.dry_run = true;
			break;
		case 'o':
			older = optarg;
			break;
		case 'f':
			p.force = true;
			break;
		case 'h':
			(void)fputs(
			    "usage: agentsafe prune [--dry-run] [--older-than "
			    "DURATION] [--force]\n"
			    "Remove the state (session.json, egress.log) and "
			    "kept clones of\nfinished sessions older than "
			    "DURATION (default 7d; 45s, 10m, 2h, 3d).\nRunning "
			    "and stale sessions are kept, and so is a clone "
			    "holding commits\nnot fetched into your repo "
			    "unless "
			    "--force.\n",
			    stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc || older[0] < '0' || older[0] > '9' ||
	    (p.before = logread_parse_when(older, now)) < 0) {
		fprintf(stderr,
			"agentsafe prune: --older-than '%s': expected "
			"a duration such as 7d, 12h or 30m\n",
			older);
		return 2;
	}
	session_each(prune_one, &p);
	printf("%s %u session%s, kept %u\n",
	       p.dry_run ? "would prune" : "pruned", p.removed,
	       p.removed == 1 ? "" : "s", p.kept);
	return p.failed ? 1 : 0;
}
