/* `agentsafe log`: review egress.log audit trails — filter, follow, pass
 * JSON through for jq, or summarise per host in one streaming pass whose
 * memory grows with the number of distinct hosts, never with the log. */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "log_int.h"
#include "logread.h"
#include "session.h"

static const char log_usage[] =
    "usage: agentsafe log [FILE...] [options]\n"
    "       agentsafe log suggest [FILE...] [options] [--wildcards] [--apply "
    "POLICY]\n"
    "Reads egress.log files (default: the latest session's log under\n"
    "$XDG_STATE_HOME/agentsafe/sessions, i.e. "
    "~/.local/state/agentsafe/sessions).\n"
    "  --session ID     that session's log\n"
    "  --all            every session's log\n"
    "  --since T        records at or after T (RFC 3339, or 10m, 2h, 3d ago)\n"
    "  --until T        records before T\n"
    "  --denied         only refusals: proxy deny and firewall drop records\n"
    "  --host PATTERN   only hosts (or drop destinations) matching a glob, "
    "e.g. '*.github.com'\n"
    "  --follow, -f     keep reading as the log grows, across rotation (tail "
    "-F)\n"
    "  --json           print matching records as JSON lines (for jq)\n"
    "  --summary        per-host counts, bytes, first/last seen, deciding "
    "rule;\n"
    "                   firewall drops grouped by destination; totals\n"
    "  --no-pager       never page output\n"
    "  --all-origins    also the records of the launcher's own self-check\n"
    "                   (\"origin\": \"selfcheck\"), hidden by default\n"
    "Bad lines (truncated, corrupted, unknown fields) are reported on stderr\n"
    "with their line number and skipped; the exit code is then 1.\n";

int64_t log_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool log_filter_match(const struct log_filter *f, const struct logrec *rec)
{
	if (f->since_ms >= 0 && rec->ts_ms < f->since_ms)
		return false;
	if (f->until_ms >= 0 && rec->ts_ms >= f->until_ms)
		return false;
	if (f->denied && !logrec_is_denied(rec))
		return false;
	if (f->session != NULL &&
	    (rec->session == NULL || strcmp(rec->session, f->session) != 0))
		return false;
	if (f->host_pattern != NULL) {
		const char *h = rec->host != NULL ? rec->host : rec->dst;
		if (h == NULL || fnmatch(f->host_pattern, h, FNM_CASEFOLD) != 0)
			return false;
	}
	/* Last, so that only records the other filters let through are
	 * counted as hidden. */
	if (!f->all_origins && logrec_has_origin(rec)) {
		if (f->hidden != NULL)
			(*f->hidden)++;
		return false;
	}
	return true;
}

void log_note_hidden(FILE *out, unsigned long hidden, const char *what,
		     bool color)
{
	if (hidden == 0)
		return;
	fprintf(out,
		"%s%lu record%s of the launcher's self-check %s "
		"(--all-origins shows them)%s\n",
		color ? "\033[2m" : "", hidden, hidden == 1 ? "" : "s", what,
		color ? "\033[0m" : "");
}

/* ---- choosing files ---- */

static int add_file(struct log_files *lf, const char *path)
{
	if (lf->n == LOG_FILES_MAX)
		return -E2BIG;
	char *p = strdup(path);
	if (p == NULL)
		return -ENOMEM;
	lf->path[lf->n++] = p;
	return 0;
}

void log_files_free(struct log_files *lf)
{
	for (size_t i = 0; i < lf->n; i++)
		free(lf->path[i]);
	lf->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int log_files_select(struct log_files *lf, int nargs, char **args,
		     const char *session, bool all, char *err, size_t errlen)
{
	for (int i = 0; i < nargs; i++) {
		int rc = add_file(lf, args[i]);
		if (rc != 0) {
			if (rc == -E2BIG)
				snprintf(err, errlen,
					 "too many files (at most %d)",
					 LOG_FILES_MAX);
			else
				snprintf(err, errlen, "out of memory");
			return rc;
		}
	}
	if (nargs > 0)
		return 0;
	char dir[4096];
	if (logread_sessions_dir(dir, sizeof dir) != 0) {
		snprintf(err, errlen,
			 "no HOME or XDG_STATE_HOME to find session logs; pass "
			 "a FILE");
		return -ENOENT;
	}
	char path[4600];
	if (session != NULL) {
		if (strchr(session, '/') != NULL ||
		    strcmp(session, "..") == 0) {
			snprintf(err, errlen, "bad session id '%s'", session);
			return -EINVAL;
		}
		snprintf(path, sizeof path, "%s/%s/egress.log", dir, session);
		return add_file(lf, path);
	}
	DIR *d = opendir(dir);
	if (d == NULL) {
		snprintf(err, errlen,
			 "no session logs under %s (%s); pass a FILE", dir,
			 strerror(errno));
		return -ENOENT;
	}
	struct dirent *e;
	time_t best_mtime = 0;
	char best[4600] = "";
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s/egress.log", dir, e->d_name);
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (all) {
			if (add_file(lf, path) != 0)
				break;
		} else if (best[0] == '\0' || st.st_mtime > best_mtime ||
			   (st.st_mtime == best_mtime &&
			    strcmp(path, best) > 0)) {
			best_mtime = st.st_mtime;
			snprintf(best, sizeof best, "%s", path);
		}
	}
	closedir(d);
	if (all) {
		/* Session ids start with a UTC timestamp: name order is time
		 * order. */
		qsort(lf->path, lf->n, sizeof lf->path[0], cmp_str);
	} else if (best[0] != '\0') {
		return add_file(lf, best);
	}
	if (lf->n == 0) {
		snprintf(err, errlen, "no session logs under %s; pass a FILE",
			 dir);
		return -ENOENT;
	}
	return 0;
}

/* ---- human output ---- */

static void human_bytes(long long b, char *buf, size_t len)
{
	if (b < 0)
		snprintf(buf, len, "-");
	else if (b < 1024)
		snprintf(buf, len, "%lld B", b);
	else if (b < 1024LL * 1024)
		snprintf(buf, len, "%.1f KiB", (double)b / 1024.0);
	else if (b < 1024LL * 1024 * 1024)
		snprintf(buf, len, "%.1f MiB", (double)b / (1024.0 * 1024.0));
	else
		snprintf(buf, len, "%.2f GiB",
			 (double)b / (1024.0 * 1024.0 * 1024.0));
}

/* Column widths for the human tables: the terminal's width (0: not a
 * terminal, nothing is cut) and the one variable column that gives way. */
struct layout {
	size_t cols;
	size_t target; /* listing: HOST:PORT; summary: HOST / DESTINATION */
};

static struct layout layout_for(size_t cols, size_t fixed)
{
	struct layout l = {.cols = cols, .target = 40};
	if (cols > 0) {
		size_t room = cols > fixed ? cols - fixed : 0;
		l.target = room < 16 ? 16 : room > 40 ? 40 : room;
	}
	return l;
}

static void put_col(FILE *out, const char *s, size_t width,
		    const struct layout *l)
{
	cli_put_cell(out, s, width, l->cols > 0);
}

/* A table row: written to a buffer, then cut to the terminal's width
 * (not a terminal: written as is). Prose lines are never cut. */
struct row {
	FILE *out, *m;
	char *buf;
	size_t len, cols;
};

static FILE *row_begin(struct row *r, FILE *out, size_t cols)
{
	*r = (struct row){.out = out, .cols = cols};
	if (cols > 0)
		r->m = open_memstream(&r->buf, &r->len);
	return r->m != NULL ? r->m : out;
}

static void row_end(struct row *r)
{
	if (r->m == NULL) {
		(void)fputc('\n', r->out);
		return;
	}
	(void)fclose(r->m);
	cli_put_fitted(r->out, r->buf, r->len, r->cols);
	free(r->buf);
}

/* The git broker's records: which repo and ref, from which id to which. */
static void print_git_fields(FILE *out, const struct logrec *r)
{
	const char *const names[] = {" repo=", " ref=", " old=", " new="};
	const char *const vals[] = {r->repo, r->ref, r->old, r->new};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		if (vals[i] == NULL)
			continue;
		(void)fputs(names[i], out);
		logread_fputs_escaped(vals[i], out);
	}
}

/* --session: one line back to the review branch, whose provenance note
 * (refs/notes/agentsafe) sums this log up. On stderr: stdout stays the
 * records. */
static void review_link(const char *id)
{
	struct session_record r;
	if (session_record_load(id, &r) != 0)
		return;
	for (size_t i = 0; i < r.nrepos; i++) {
		const struct session_repo *p = &r.repos[i];
		if (!p->fetched || p->branch == NULL || p->host == NULL)
			continue;
		(void)fputs("agentsafe log: review branch: git -C ", stderr);
		logread_fputs_escaped(p->host, stderr);
		(void)fputs(" log --notes=agentsafe ", stderr);
		logread_fputs_escaped(p->branch, stderr);
		(void)fputc('\n', stderr);
		break;
	}
	session_record_free(&r);
}

static void print_human_line(FILE *out, const struct logrec *r, bool color,
			     const struct layout *l)
{
	char target[300];
	if (strcmp(r->event, "drop") == 0) {
		if (r->dport >= 0)
			snprintf(target, sizeof target, "%s %s:%lld",
				 r->proto ? r->proto : "?",
				 r->dst ? r->dst : "?", r->dport);
		else
			snprintf(target, sizeof target, "%s %s",
				 r->proto ? r->proto : "?",
				 r->dst ? r->dst : "?");
	} else if (r->host != NULL && r->port >= 0) {
		snprintf(target, sizeof target, "%s:%lld", r->host, r->port);
	} else {
		snprintf(target, sizeof target, "%s", r->host ? r->host : "-");
	}
	bool denied = logrec_is_denied(r) || strcmp(r->event, "error") == 0;
	const char *on = color && denied ? "\033[1;31m" : "";
	const char *off = color && denied ? "\033[0m" : "";
	/* Every field is escaped: a record must not move the cursor or
	 * start a line of its own. */
	logread_fputs_escaped(r->ts, out);
	fprintf(out, "  %s%-5s%s  ", on, r->event, off);
	put_col(out,
		r->method ? r->method
		: r->op	  ? r->op
			  : (strcmp(r->event, "drop") == 0 ? "FW" : "-"),
		7, l);
	(void)fputc(' ', out);
	put_col(out, target, l->target, l);
	(void)fputc(' ', out);
	put_col(out, r->reason ? r->reason : r->result, 20, l);
	print_git_fields(out, r);
	if (strcmp(r->event, "close") == 0) {
		char up[32], down[32];
		human_bytes(r->bytes_up, up, sizeof up);
		human_bytes(r->bytes_down, down, sizeof down);
		fprintf(out, " up %s down %s", up, down);
		if (r->duration_ms >= 0)
			fprintf(out, " in %lld ms", r->duration_ms);
	}
	/* approval: the step and the answer (scope, by whom) */
	const char *const ap[] = {r->step, r->decision, r->scope};
	for (size_t i = 0; i < 3; i++) {
		if (ap[i] != NULL) {
			(void)fputc(' ', out);
			logread_fputs_escaped(ap[i], out);
		}
	}
	if (r->uid >= 0)
		fprintf(out, " by uid %lld", r->uid);
	if (r->sni != NULL &&
	    (r->host == NULL || strcmp(r->sni, r->host) != 0)) {
		(void)fputs(" sni=", out);
		logread_fputs_escaped(r->sni, out);
	}
	if (r->client != NULL) {
		(void)fputs(" client=", out);
		logread_fputs_escaped(r->client, out);
	}
	if (r->rule != NULL && strcmp(r->event, "close") != 0) {
		(void)fputs(" rule=", out);
		logread_fputs_escaped(r->rule, out);
	}
	if (r->origin != NULL) {
		(void)fputs(" origin=", out);
		logread_fputs_escaped(r->origin, out);
	}
	if (r->message != NULL) {
		(void)fputs(" (", out);
		logread_fputs_escaped(r->message, out);
		(void)fputc(')', out);
	}
}

/* One listing line: the ts, event, method and reason columns take 62
 * columns, the target what is left (16..40), and the line is cut at the
 * terminal's edge. */
static void print_human(FILE *out, const struct logrec *r, bool color)
{
	static size_t cols = (size_t)-1;
	if (cols == (size_t)-1)
		cols = cli_columns();
	struct layout l = layout_for(cols, 62 + 30);
	struct row rw;
	print_human_line(row_begin(&rw, out, cols), r, color, &l);
	row_end(&rw);
}

/* ---- summary: two small hash tables keyed by host / drop destination ---- */

struct host_stat {
	char *key;
	unsigned long long allowed, denied, errors, closes;
	unsigned long long bytes_up, bytes_down;
	int64_t first_ms, last_ms;
	char first_ts[40], last_ts[40];
	char *rule;
};

struct stat_table {
	struct host_stat *slot;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct host_stat *table_get(struct stat_table *t, const char *key)
{
	if (t->n * 2 >= t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct host_stat *s = calloc(cap, sizeof *s);
		if (s == NULL)
			return NULL;
		for (size_t i = 0; i < t->cap; i++) {
			if (t->slot[i].key == NULL)
				continue;
			size_t j = hash_str(t->slot[i].key) & (cap - 1);
			while (s[j].key != NULL)
				j = (j + 1) & (cap - 1);
			s[j] = t->slot[i];
		}
		free(t->slot);
		t->slot = s;
		t->cap = cap;
	}
	size_t j = hash_str(key) & (t->cap - 1);
	while (t->slot[j].key != NULL) {
		if (strcmp(t->slot[j].key, key) == 0)
			return &t->slot[j];
		j = (j + 1) & (t->cap - 1);
	}
	t->slot[j].key = strdup(key);
	if (t->slot[j].key == NULL)
		return NULL;
	t->slot[j].first_ms = -1;
	t->n++;
	return &t->slot[j];
}

static void table_free(struct stat_table *t)
{
	for (size_t i = 0; i < t->cap; i++) {
		free(t->slot[i].key);
		free(t->slot[i].rule);
	}
	free(t->slot);
}

static void seen(struct host_stat *s, const struct logrec *r)
{
	if (s->first_ms < 0 || r->ts_ms < s->first_ms) {
		s->first_ms = r->ts_ms;
		snprintf(s->first_ts, sizeof s->first_ts, "%s", r->ts);
	}
	if (r->ts_ms >= s->last_ms) {
		s->last_ms = r->ts_ms;
		snprintf(s->last_ts, sizeof s->last_ts, "%s", r->ts);
	}
}

struct summary {
	struct stat_table hosts, drops;
	unsigned long long records, allowed, denied, errors, drops_n, closes;
	unsigned long long bytes_up, bytes_down;
	/* The fence's summary records: packets not itemised per flow. */
	unsigned long long not_itemised;
};

static int summary_add(struct summary *s, const struct logrec *r)
{
	s->records++;
	if (strcmp(r->event, "drop") == 0 && r->dst == NULL &&
	    r->proto == NULL) {
		/* A summary record: `count` packets not itemised (for any
		 * reason); older ones only say "N dropped packets of new
		 * flows not itemised ..." in the message. */
		if (r->count >= 0)
			s->not_itemised += (unsigned long long)r->count;
		else if (r->message != NULL && r->message[0] >= '0' &&
			 r->message[0] <= '9')
			s->not_itemised += strtoull(r->message, NULL, 10);
		return 0;
	}
	if (strcmp(r->event, "drop") == 0) {
		char key[300];
		snprintf(key, sizeof key, "%s %s:%lld",
			 r->proto ? r->proto : "?", r->dst ? r->dst : "?",
			 r->dport);
		if (r->dport < 0)
			snprintf(key, sizeof key, "%s %s",
				 r->proto ? r->proto : "?",
				 r->dst ? r->dst : "?");
		struct host_stat *h = table_get(&s->drops, key);
		if (h == NULL)
			return -ENOMEM;
		h->denied++;
		s->drops_n++;
		seen(h, r);
		return 0;
	}
	struct host_stat *h =
	    table_get(&s->hosts, r->host ? r->host : "(no host)");
	if (h == NULL)
		return -ENOMEM;
	seen(h, r);
	if (strcmp(r->event, "open") == 0) {
		h->allowed++;
		s->allowed++;
	} else if (strcmp(r->event, "deny") == 0) {
		/* A summary record stands for `count` folded denials. */
		unsigned long long n =
		    r->count > 0 ? (unsigned long long)r->count : 1;
		h->denied += n;
		s->denied += n;
	} else if (strcmp(r->event, "error") == 0) {
		h->errors++;
		s->errors++;
	} else if (strcmp(r->event, "close") == 0) {
		h->closes++;
		s->closes++;
		if (r->bytes_up > 0) {
			h->bytes_up += (unsigned long long)r->bytes_up;
			s->bytes_up += (unsigned long long)r->bytes_up;
		}
		if (r->bytes_down > 0) {
			h->bytes_down += (unsigned long long)r->bytes_down;
			s->bytes_down += (unsigned long long)r->bytes_down;
		}
	}
	if (r->rule != NULL &&
	    (h->rule == NULL || strcmp(h->rule, r->rule) != 0)) {
		free(h->rule);
		h->rule = strdup(r->rule);
	}
	return 0;
}

static int cmp_stat(const void *a, const void *b)
{
	const struct host_stat *x = *(struct host_stat *const *)a;
	const struct host_stat *y = *(struct host_stat *const *)b;
	unsigned long long tx = x->allowed + x->denied + x->errors;
	unsigned long long ty = y->allowed + y->denied + y->errors;
	if (tx != ty)
		return tx < ty ? 1 : -1;
	return strcmp(x->key, y->key);
}

static struct host_stat **sorted(struct stat_table *t)
{
	/* an array of pointers: sizeof *v is meant */
	struct host_stat **v =
	    calloc(t->n + 1, sizeof *v); // NOLINT(bugprone-sizeof-expression)
	if (v == NULL)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i].key != NULL)
			v[n++] = &t->slot[i];
	qsort(v, n, sizeof *v, cmp_stat); // NOLINT(bugprone-sizeof-expression)
	return v;
}

/* Per-host rows: HOST gives way (16..40 columns) to keep the counts, byte
 * totals and times on screen; the rule column comes last. */
static void summary_print_human(FILE *out, const struct summary *s,
				struct host_stat **hv, struct host_stat **dv,
				unsigned long skipped, unsigned long hidden)
{
	struct layout l = layout_for(cli_columns(), 51 + 50 + 20);
	struct row rw;
	FILE *o = row_begin(&rw, out, l.cols);
	fprintf(o, "%-*s %8s %8s %6s %11s %11s  %-24s %-24s %s", (int)l.target,
		"HOST", "ALLOWED", "DENIED", "ERRORS", "UP", "DOWN", "FIRST",
		"LAST", "RULE");
	row_end(&rw);
	for (size_t i = 0; i < s->hosts.n; i++) {
		struct host_stat *h = hv[i];
		char up[32], down[32];
		human_bytes((long long)h->bytes_up, up, sizeof up);
		human_bytes((long long)h->bytes_down, down, sizeof down);
		o = row_begin(&rw, out, l.cols);
		put_col(o, h->key, l.target, &l);
		fprintf(o, " %8llu %8llu %6llu %11s %11s  ", h->allowed,
			h->denied, h->errors, up, down);
		put_col(o, h->first_ts, 24, &l);
		(void)fputc(' ', o);
		put_col(o, h->last_ts, 24, &l);
		(void)fputc(' ', o);
		logread_fputs_escaped(h->rule ? h->rule : "-", o);
		row_end(&rw);
	}
	if (s->drops.n > 0) {
		fprintf(out, "\nFirewall drops (packets that tried to "
			     "bypass the proxy)\n");
		/* A record is a flow's first packet, or its return
		 * after a quiet spell: attempts, not packets. */
		o = row_begin(&rw, out, l.cols);
		fprintf(o, "%-*s %8s  %-24s %-24s", (int)l.target,
			"DESTINATION", "ATTEMPTS", "FIRST", "LAST");
		row_end(&rw);
		for (size_t i = 0; i < s->drops.n; i++) {
			o = row_begin(&rw, out, l.cols);
			put_col(o, dv[i]->key, l.target, &l);
			fprintf(o, " %8llu  ", dv[i]->denied);
			put_col(o, dv[i]->first_ts, 24, &l);
			(void)fputc(' ', o);
			put_col(o, dv[i]->last_ts, 24, &l);
			row_end(&rw);
		}
	}
	if (s->not_itemised > 0)
		fprintf(out,
			"%llu more dropped packets were not itemised "
			"(record rate limit; counted in summary "
			"records)\n",
			s->not_itemised);
	char up[32], down[32];
	human_bytes((long long)s->bytes_up, up, sizeof up);
	human_bytes((long long)s->bytes_down, down, sizeof down);
	fprintf(out,
		"\nTotal: %llu records; %llu allowed, %llu denied, "
		"%llu errors, "
		"%llu firewall drops; %s up, %s down; %zu hosts",
		s->records, s->allowed, s->denied, s->errors, s->drops_n, up,
		down, s->hosts.n);
	if (skipped > 0)
		fprintf(out,
			"; %lu bad lines skipped (not counted, see stderr)",
			skipped);
	(void)fputc('\n', out);
	log_note_hidden(out, hidden, "not counted",
			isatty(fileno(out)) && getenv("NO_COLOR") == NULL);
}

static int summary_print(FILE *out, struct summary *s, bool json,
			 unsigned long skipped, unsigned long hidden)
{
	struct host_stat **hv = sorted(&s->hosts), **dv = sorted(&s->drops);
	if (hv == NULL || dv == NULL) {
		free(hv);
		free(dv);
		return -ENOMEM;
	}
	if (json) {
		json_t *o = json_object(), *hosts = json_array(),
		       *drops = json_array();
		for (size_t i = 0; i < s->hosts.n; i++) {
			struct host_stat *h = hv[i];
			json_array_append_new(
			    hosts,
			    json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:s, "
				      "s:s, s:s?}",
				      "host", h->key, "allowed",
				      (json_int_t)h->allowed, "denied",
				      (json_int_t)h->denied, "errors",
				      (json_int_t)h->errors, "bytes_up",
				      (json_int_t)h->bytes_up, "bytes_down",
				      (json_int_t)h->bytes_down, "first",
				      h->first_ts, "last", h->last_ts, "rule",
				      h->rule));
		}
		for (size_t i = 0; i < s->drops.n; i++) {
			struct host_stat *h = dv[i];
			json_array_append_new(
			    drops, json_pack("{s:s, s:I, s:s, s:s}",
					     "destination", h->key, "count",
					     (json_int_t)h->denied, "first",
					     h->first_ts, "last", h->last_ts));
		}
		json_object_set_new(o, "hosts", hosts);
		json_object_set_new(o, "drops", drops);
		json_object_set_new(
		    o, "totals",
		    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			      "s:I}",
			      "records", (json_int_t)s->records, "allowed",
			      (json_int_t)s->allowed, "denied",
			      (json_int_t)s->denied, "errors",
			      (json_int_t)s->errors, "drops",
			      (json_int_t)s->drops_n, "drops_not_itemised",
			      (json_int_t)s->not_itemised, "bytes_up",
			      (json_int_t)s->bytes_up, "bytes_down",
			      (json_int_t)s->bytes_down, "skipped_lines",
			      (json_int_t)skipped, "hidden_origin",
			      (json_int_t)hidden));
		json_dumpf(o, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		(void)fputc('\n', out);
		json_decref(o);
	} else {
		summary_print_human(out, s, hv, dv, skipped, hidden);
	}
	free(hv);
	free(dv);
	return 0;
}

/* ---- main ---- */

static void emit(FILE *out, const struct logrec *rec, bool json, bool color)
{
	if (json) {
		/* The line as read. The only raw control bytes a valid line
		 * can hold are CR and tab between tokens (never in a string),
		 * and a CR would move the cursor: both become spaces, which
		 * JSON reads the same. */
		for (size_t i = 0; i < rec->line_len; i++) {
			char c = rec->line[i];
			(void)fputc(c == '\r' || c == '\t' ? ' ' : c, out);
		}
		(void)fputc('\n', out);
	} else {
		print_human(out, rec, color);
	}
}

static volatile sig_atomic_t stop_following;
static void on_signal(int sig)
{
	(void)sig;
	stop_following = 1;
}

static FILE *open_pager(bool want)
{
	if (!want || !isatty(STDOUT_FILENO))
		return NULL;
	const char *pager = getenv("PAGER");
	if (pager == NULL || pager[0] == '\0')
		pager = "less -FRX";
	if (strcmp(pager, "cat") == 0)
		return NULL;
	/* The pager is the user's own $PAGER, run as they would run it. */
	return popen(pager, "w"); /* NOLINT(cert-env33-c) */
}

/* tail -F: read what is there, then poll; reopen when the path now names
 * another file (rotation) or the file shrank (truncation). */
static int follow_file(const char *path, const struct log_filter *f, FILE *out,
		       bool json, bool color)
{
	struct logread r;
	char err[256];
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = logread_open(&r, path, true, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "agentsafe log: %s\n", err);
		return 1;
	}
	struct stat st0;
	fstat(fileno(r.f), &st0);
	while (!stop_following) {
		struct logrec rec;
		int got = logread_next(&r, &rec);
		if (got < 0)
			break;
		if (got == 1) {
			if (log_filter_match(f, &rec))
				emit(out, &rec, json, color);
			logrec_clear(&rec);
			continue;
		}
		(void)fflush(out);
		struct stat now, cur;
		if (stat(path, &now) == 0 &&
		    (now.st_ino != st0.st_ino || now.st_dev != st0.st_dev)) {
			/* Rotated: drain the old file first, then switch. */
			while (logread_next(&r, &rec) == 1) {
				if (log_filter_match(f, &rec))
					emit(out, &rec, json, color);
				logrec_clear(&rec);
			}
			logread_close(&r);
			if (logread_open(&r, path, true, err, sizeof err) != 0)
				break;
			fstat(fileno(r.f), &st0);
			continue;
		}
		if (fstat(fileno(r.f), &cur) == 0 && cur.st_size < ftell(r.f)) {
			(void)fseek(r.f, 0, SEEK_SET); /* truncated in place */
			r.len = 0;
			r.io_pos = r.io_len = 0;
		}
		usleep(200000);
	}
	logread_close(&r);
	return 0;
}

/* What `agentsafe log` was asked to do, as read from its command line. */
struct log_opts {
	struct log_filter f;
	bool all, follow, json, summary, pager;
	const char *session;
	unsigned long hidden; /* records left out for their origin */
};

static const struct option log_longopts[] = {
    {"session", required_argument, 0, 'S'},
    {"all", no_argument, 0, 'a'},
    {"since", required_argument, 0, 's'},
    {"until", required_argument, 0, 'u'},
    {"denied", no_argument, 0, 'd'},
    {"host", required_argument, 0, 'H'},
    {"follow", no_argument, 0, 'f'},
    {"json", no_argument, 0, 'j'},
    {"summary", no_argument, 0, 'm'},
    {"no-pager", no_argument, 0, 'P'},
    {"all-origins", no_argument, 0, 'O'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

/* Reads the options into *o; optind is left at the first file argument.
 * Returns -1 to go on, or the exit code to return now (help, bad input). */
static int log_parse_options(int argc, char **argv, struct log_opts *o)
{
	*o = (struct log_opts){.f = {.since_ms = -1, .until_ms = -1},
			       .pager = true};
	o->f.hidden = &o->hidden;
	int64_t now = log_now_ms();
	optind = 1;
	opterr = 0; /* a typo gets one line and a suggestion, not the help */
	int c;
	while ((c = getopt_long(argc, argv, ":fh", log_longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			o->session = optarg;
			break;
		case 'a':
			o->all = true;
			break;
		case 's':
		case 'u': {
			int64_t t = logread_parse_when(optarg, now);
			if (t < 0) {
				fprintf(stderr,
					"agentsafe log: bad time '%s' (RFC "
					"3339, or 10m, 2h, 3d)\n",
					optarg);
				return 2;
			}
			if (c == 's')
				o->f.since_ms = t;
			else
				o->f.until_ms = t;
			break;
		}
		case 'd':
			o->f.denied = true;
			break;
		case 'H':
			o->f.host_pattern = optarg;
			break;
		case 'f':
			o->follow = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'm':
			o->summary = true;
			break;
		case 'P':
			o->pager = false;
			break;
		case 'O':
			o->f.all_origins = true;
			break;
		case 'h':
			(void)fputs(log_usage, stdout);
			return 0;
		default:
			cli_bad_option("agentsafe log", c, argv, log_longopts);
			return 2;
		}
	}
	return -1;
}

/* Feeds every matching record of one file to the summary or the output;
 * adds the file's bad lines to *skipped. Returns 0, or 1 after saying why
 * on stderr. */
static int log_read_file(const char *path, const struct log_opts *o,
			 struct summary *s, FILE *out, bool color,
			 unsigned long *skipped)
{
	struct logread r;
	char err[512];
	if (logread_open(&r, path, false, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe log: %s\n", err);
		return 1;
	}
	int rc = 0;
	struct logrec rec;
	int got;
	while ((got = logread_next(&r, &rec)) == 1) {
		if (log_filter_match(&o->f, &rec)) {
			if (o->summary) {
				if (summary_add(s, &rec) != 0) {
					fprintf(stderr, "agentsafe log: out of "
							"memory\n");
					rc = 1;
				}
			} else {
				emit(out, &rec, o->json, color);
			}
		}
		logrec_clear(&rec);
		if (rc != 0)
			break;
	}
	if (got < 0) {
		fprintf(stderr, "agentsafe log: read error in %s\n", path);
		rc = 1;
	}
	*skipped += r.skipped;
	logread_close(&r);
	return rc;
}

/* One pass over the selected logs: print the matching records (through
 * the pager when there is one) or their summary. Returns the exit code. */
static int log_read_all(const struct log_files *lf, const struct log_opts *o,
			bool color)
{
	FILE *pg = o->summary ? NULL : open_pager(o->pager && !o->json);
	FILE *out = pg != NULL ? pg : stdout;
	if (pg != NULL)
		(void)signal(SIGPIPE, SIG_IGN);
	struct summary s = {0};
	unsigned long skipped = 0;
	int rc = 0;
	for (size_t i = 0; i < lf->n && rc == 0; i++)
		rc = log_read_file(lf->path[i], o, &s, out, color, &skipped);
	if (o->summary && rc == 0)
		summary_print(out, &s, o->json, skipped, o->hidden);
	else if (rc == 0 && !o->json)
		log_note_hidden(out, o->hidden, "hidden", color);
	if (rc == 0 && o->json) /* stdout stays JSON */
		log_note_hidden(stderr, o->hidden, "hidden",
				isatty(STDERR_FILENO) &&
				    getenv("NO_COLOR") == NULL);
	if (o->summary) {
		table_free(&s.hosts);
		table_free(&s.drops);
	}
	if (pg != NULL)
		pclose(pg);
	if (rc == 0 && skipped > 0)
		rc = 1;
	return rc;
}

int cli_log_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "suggest") == 0)
		return log_suggest_main(argc - 1, argv + 1);

	struct log_opts o;
	int rc = log_parse_options(argc, argv, &o);
	if (rc >= 0)
		return rc;
	struct log_files lf = {0};
	char err[512];
	if (log_files_select(&lf, argc - optind, argv + optind, o.session,
			     o.all, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe log: %s\n", err);
		log_files_free(&lf); /* the files added before the failure */
		return 1;
	}
	/* A named session's log holds only that session; filtering by the field
	 * too keeps --session meaningful when files are given explicitly. */
	if (o.session != NULL && argc - optind > 0)
		o.f.session = o.session;
	bool color = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	if (o.follow) {
		if (lf.n != 1 || o.summary) {
			fprintf(stderr, "agentsafe log: --follow takes exactly "
					"one log and no --summary\n");
			rc = 2;
		} else {
			rc = follow_file(lf.path[0], &o.f, stdout, o.json,
					 color);
			log_note_hidden(o.json ? stderr : stdout, o.hidden,
					"hidden", color && !o.json);
		}
	} else {
		rc = log_read_all(&lf, &o, color);
		if (o.session != NULL && !o.json)
			review_link(o.session);
	}
	log_files_free(&lf);
	return rc;
}
