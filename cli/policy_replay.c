/* `agentsafe policy replay NEW.yaml [LOG...]`: re-decide every recorded
 * decision of egress.log under a candidate policy, with the functions the
 * proxy decides with (policy_match, policy_check_addr), and print what
 * flips per host. Exit 1 when anything flips, so it can gate a change. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log_int.h"
#include "logread.h"
#include "policy.h"
#include "reason.h"

#define EXIT_SAME  0
#define EXIT_FLIPS 1
#define EXIT_ERROR 2

#define SESSIONS_SHOWN 3

/* One row: the requests to host:port that flip the same way. */
struct flip {
	struct flip *next; /* hash chain */
	char *host;
	long long port;
	bool to_deny;
	uint64_t count;
	char *now; /* what the candidate says: reason and deciding rule */
	char **sessions;
	size_t nsessions, capsessions;
};

struct replay {
	struct policy *p;
	int64_t since_ms;
	struct flip **buckets;
	size_t nbuckets, nflips;
	uint64_t records, decisions, to_deny, to_allow;
	uint64_t after_policy;	 /* refused by a check after the policy */
	uint64_t not_decisions;	 /* close, error, drop, ... */
	uint64_t not_replayable; /* a decision without what it needs */
	uint64_t before_since;
	const char *session; /* LOG files and --session: that session only */
	unsigned long bad_lines;
	bool oom;
};

static const char replay_usage[] =
    "usage: agentsafe policy replay NEW.yaml [LOG...] [--session ID | --all] "
    "[--since T] [--json]\n"
    "  Re-decide every decision recorded in egress.log (open and deny "
    "records;\n"
    "  a folded summary counts as the denials it stands for) under "
    "NEW.yaml,\n"
    "  and print what flips (allow->deny, deny->allow) per host:port with "
    "counts\n"
    "  and sessions. Default log: the latest session's.\n"
    "  --session ID   that session's log\n"
    "  --all          every session's log\n"
    "  --since T      decisions at or after T (RFC 3339, or 10m, 2h, 3d "
    "ago)\n"
    "  --json         one JSON object: flips (every session named), "
    "totals\n"
    "  Not replayed: refusals after the policy (SNI, TLS, DNS, connect,\n"
    "  limits), which a policy does not decide; the address guard uses the\n"
    "  address recorded (a name denied before resolution has none).\n"
    "  Exit: 0 nothing flips, 1 something flips, 2 error (a bad policy "
    "says\n"
    "  FILE:LINE:COL).\n";

static uint64_t flip_hash(const char *host, long long port, bool to_deny)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)port ^
		     (to_deny ? 0x9e3779b97f4a7c15ull : 0);
	for (const unsigned char *s = (const unsigned char *)host; *s; s++)
		h = (h ^ *s) * 0x100000001b3ull;
	return h;
}

static int grow(struct replay *r)
{
	size_t n = r->nbuckets ? r->nbuckets * 2 : 1024;
	struct flip **b = calloc(n, sizeof(struct flip *));
	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < r->nbuckets; i++) {
		for (struct flip *f = r->buckets[i], *nx; f != NULL; f = nx) {
			nx = f->next;
			size_t k =
			    flip_hash(f->host, f->port, f->to_deny) & (n - 1);
			f->next = b[k];
			b[k] = f;
		}
	}
	free(r->buckets);
	r->buckets = b;
	r->nbuckets = n;
	return 0;
}

static struct flip *flip_get(struct replay *r, const char *host, long long port,
			     bool to_deny)
{
	if (r->nflips >= r->nbuckets && grow(r) != 0)
		return NULL;
	size_t k = flip_hash(host, port, to_deny) & (r->nbuckets - 1);
	for (struct flip *f = r->buckets[k]; f != NULL; f = f->next)
		if (f->port == port && f->to_deny == to_deny &&
		    strcmp(f->host, host) == 0)
			return f;
	struct flip *f = calloc(1, sizeof *f);
	if (f == NULL)
		return NULL;
	f->host = strdup(host);
	if (f->host == NULL) {
		free(f);
		return NULL;
	}
	f->port = port;
	f->to_deny = to_deny;
	f->next = r->buckets[k];
	r->buckets[k] = f;
	r->nflips++;
	return f;
}

static int flip_session(struct flip *f, const char *session)
{
	if (session == NULL)
		session = "?";
	/* Records of one session come together: the last one is the usual
	 * hit, and the list is short. */
	for (size_t i = f->nsessions; i-- > 0;)
		if (strcmp(f->sessions[i], session) == 0)
			return 0;
	if (f->nsessions == f->capsessions) {
		size_t cap = f->capsessions ? f->capsessions * 2 : 4;
		char **v = realloc(f->sessions, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		f->sessions = v;
		f->capsessions = cap;
	}
	f->sessions[f->nsessions] = strdup(session);
	if (f->sessions[f->nsessions] == NULL)
		return -ENOMEM;
	f->nsessions++;
	return 0;
}

static void flips_free(struct replay *r)
{
	for (size_t i = 0; i < r->nbuckets; i++) {
		for (struct flip *f = r->buckets[i], *nx; f != NULL; f = nx) {
			nx = f->next;
			for (size_t j = 0; j < f->nsessions; j++)
				free(f->sessions[j]);
			free(f->sessions);
			free(f->host);
			free(f->now);
			free(f);
		}
	}
	free(r->buckets);
	r->buckets = NULL;
	r->nbuckets = r->nflips = 0;
}

static bool addr_parse(const char *s, uint16_t port,
		       struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		return true;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		return true;
	}
	return false;
}

/* What kind of decision a record is. */
enum rkind {
	RK_DECISION,	   /* the policy decided it: re-decide */
	RK_AFTER_POLICY,   /* allowed by the policy, refused later */
	RK_NOT_DECISION,   /* not a decision at all */
	RK_NOT_REPLAYABLE, /* a decision, without host or port */
};

static enum rkind classify(const struct logrec *rec)
{
	bool open = strcmp(rec->event, "open") == 0;
	if (!open && strcmp(rec->event, "deny") != 0)
		return RK_NOT_DECISION;
	if (rec->host == NULL || rec->port < 1 || rec->port > 65535)
		return RK_NOT_REPLAYABLE;
	if (open)
		return RK_DECISION;
	enum egress_reason code;
	if (egress_reason_lookup(rec->reason, &code) != 0)
		return RK_NOT_REPLAYABLE; /* a newer writer's code */
	switch (code) {
	case EGRESS_REASON_NOT_ALLOWED:
	case EGRESS_REASON_PORT_NOT_ALLOWED:
	case EGRESS_REASON_DENIED_BY_RULE:
	case EGRESS_REASON_BAD_HOST:
	case EGRESS_REASON_IP_LITERAL:
	case EGRESS_REASON_PRIVATE_ADDRESS:
	case EGRESS_REASON_APPROVAL_TIMEOUT: /* asked: it was not_allowed */
		return RK_DECISION;
	case EGRESS_REASON_NOT_TLS:
		/* plain HTTP to 443 of a TLS rule is the policy's call; after
		 * CONNECT it is the bytes' */
		return rec->method != NULL &&
			       strcmp(rec->method, "CONNECT") != 0
			   ? RK_DECISION
			   : RK_AFTER_POLICY;
	default:
		return RK_AFTER_POLICY;
	}
}

/* The candidate's decision, made as the proxy makes it: the name, then the
 * recorded address through the address guard, then the request's shape. */
static void redecide(const struct policy *p, const struct logrec *rec,
		     struct policy_decision *d)
{
	uint16_t port = (uint16_t)rec->port;
	policy_match(p, rec->host, port, d);
	bool is_connect =
	    rec->method == NULL || strcmp(rec->method, "CONNECT") == 0;
	if (policy_plain_http_refused(d, is_connect, port)) {
		d->verdict = POLICY_DENY;
		d->reason = "not_tls";
		return;
	}
	struct sockaddr_storage ss;
	if (d->verdict != POLICY_ALLOW || rec->ip == NULL ||
	    !addr_parse(rec->ip, port, &ss))
		return;
	struct policy_decision ad;
	policy_check_addr(p, (const struct sockaddr *)&ss, port, &ad);
	if (ad.verdict != POLICY_ALLOW)
		*d = ad;
}

static char *describe(const struct policy_decision *d)
{
	const char *what =
	    d->verdict == POLICY_ALLOW
		? (d->would_deny ? "allowed (learn mode)" : "allowed")
		: d->reason;
	int n = snprintf(NULL, 0, "%s%s%s", what, d->rule ? " by " : "",
			 d->rule ? d->rule : "");
	char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (s != NULL)
		snprintf(s, (size_t)n + 1, "%s%s%s", what,
			 d->rule ? " by " : "", d->rule ? d->rule : "");
	return s;
}

static void replay_one(struct replay *r, const struct logrec *rec)
{
	r->records++;
	if (r->session != NULL &&
	    (rec->session == NULL || strcmp(rec->session, r->session) != 0))
		return;
	if (r->since_ms >= 0 && rec->ts_ms < r->since_ms) {
		r->before_since++;
		return;
	}
	uint64_t weight = rec->count >= 0 ? (uint64_t)rec->count : 1;
	switch (classify(rec)) {
	case RK_NOT_DECISION:
		r->not_decisions++;
		return;
	case RK_NOT_REPLAYABLE:
		r->not_replayable += weight;
		return;
	case RK_AFTER_POLICY:
		r->after_policy += weight;
		return;
	case RK_DECISION:
		break;
	}
	r->decisions += weight;
	bool was_allowed = strcmp(rec->event, "open") == 0;
	struct policy_decision d;
	redecide(r->p, rec, &d);
	bool now_allowed = d.verdict == POLICY_ALLOW;
	if (was_allowed == now_allowed)
		return;
	struct flip *f = flip_get(r, rec->host, rec->port, was_allowed);
	if (f == NULL || flip_session(f, rec->session) != 0) {
		r->oom = true;
		return;
	}
	if (f->now == NULL && (f->now = describe(&d)) == NULL) {
		r->oom = true;
		return;
	}
	f->count += weight;
	if (was_allowed)
		r->to_deny += weight;
	else
		r->to_allow += weight;
}

static int replay_file(struct replay *r, const char *path)
{
	struct logread lr;
	char err[512];
	if (logread_open(&lr, path, false, err, sizeof err) != 0) {
		(void)fputs("agentsafe policy replay: ", stderr);
		logread_fputs_escaped(err, stderr);
		(void)fputc('\n', stderr);
		return -1;
	}
	struct logrec rec;
	int got;
	while ((got = logread_next(&lr, &rec)) == 1) {
		replay_one(r, &rec);
		logrec_clear(&rec);
		if (r->oom)
			break;
	}
	r->bad_lines += lr.skipped;
	logread_close(&lr);
	if (got < 0) {
		(void)fputs("agentsafe policy replay: read error in ", stderr);
		logread_fputs_escaped(path, stderr);
		(void)fputc('\n', stderr);
		return -1;
	}
	if (r->oom) {
		(void)fputs("agentsafe policy replay: out of memory\n", stderr);
		return -1;
	}
	return 0;
}

/* allow->deny first (what the change would break), most requests first. */
static int cmp_flip(const void *a, const void *b)
{
	const struct flip *x = *(const struct flip *const *)a;
	const struct flip *y = *(const struct flip *const *)b;
	if (x->to_deny != y->to_deny)
		return x->to_deny ? -1 : 1;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	int c = strcmp(x->host, y->host);
	if (c != 0)
		return c;
	return (x->port > y->port) - (x->port < y->port);
}

/* "N: a, b, c +K" into buf (raw: cli_put_cell escapes). */
static void sessions_text(const struct flip *f, char *buf, size_t len)
{
	size_t at = 0;
	int n = snprintf(buf, len, "%zu:", f->nsessions);
	at = n > 0 && (size_t)n < len ? (size_t)n : 0;
	for (size_t i = 0; i < f->nsessions && i < SESSIONS_SHOWN; i++) {
		n = snprintf(buf + at, len - at, "%s%s", i ? ", " : " ",
			     f->sessions[i]);
		if (n < 0 || (size_t)n >= len - at)
			return;
		at += (size_t)n;
	}
	if (f->nsessions > SESSIONS_SHOWN)
		(void)snprintf(buf + at, len - at, " +%zu",
			       f->nsessions - SESSIONS_SHOWN);
}

/* Column widths: the widest escaped cell, at most cap. */
static size_t col_width(struct flip **v, size_t n, bool sessions, size_t min,
			size_t cap)
{
	size_t w = min;
	for (size_t i = 0; i < n; i++) {
		char raw[512], esc[8];
		if (sessions)
			sessions_text(v[i], raw, sizeof raw);
		else
			snprintf(raw, sizeof raw, "[%s]:65535", v[i]->host);
		size_t need = logread_escape(raw, esc, sizeof esc);
		if (need > w)
			w = need;
	}
	return w > cap ? cap : w;
}

/* One line per row (f NULL: the heading), built whole, then cut to the
 * terminal's width. */
static void print_row(FILE *out, const struct flip *f, const size_t w[2],
		      size_t cols)
{
	char *line = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&line, &len);
	if (m == NULL)
		return;
	if (f == NULL) {
		fprintf(m, "%-11s  %-*s  %8s  %-*s  NOW", "CHANGE", (int)w[0],
			"HOST:PORT", "COUNT", (int)w[1], "SESSIONS");
		if (fclose(m) == 0)
			cli_put_fitted(out, line, len, cols);
		free(line);
		return;
	}
	char cell[512];
	bool v6 = strchr(f->host, ':') != NULL;
	snprintf(cell, sizeof cell, "%s%s%s:%lld", v6 ? "[" : "", f->host,
		 v6 ? "]" : "", f->port);
	fprintf(m, "%-11s  ", f->to_deny ? "allow->deny" : "deny->allow");
	cli_put_cell(m, cell, w[0], true);
	fprintf(m, "  %8llu  ", (unsigned long long)f->count);
	sessions_text(f, cell, sizeof cell);
	cli_put_cell(m, cell, w[1], true);
	(void)fputs("  ", m);
	logread_fputs_escaped(f->now, m);
	if (fclose(m) == 0)
		cli_put_fitted(out, line, len, cols);
	free(line);
}

/* --json: one object, for CI. The strings came out of jansson (valid
 * UTF-8, no NUL) and go back through it, JSON-escaped; whoever shows them
 * on a terminal escapes them there. */
static int print_json(const struct replay *r, struct flip **v, size_t n)
{
	json_t *flips = json_array();
	for (size_t i = 0; flips != NULL && i < n; i++) {
		json_t *ss = json_array();
		for (size_t j = 0; ss != NULL && j < v[i]->nsessions; j++)
			json_array_append_new(ss,
					      json_string(v[i]->sessions[j]));
		json_array_append_new(
		    flips,
		    json_pack("{s:s, s:s, s:I, s:I, s:o, s:s}", "change",
			      v[i]->to_deny ? "allow->deny" : "deny->allow",
			      "host", v[i]->host, "port",
			      (json_int_t)v[i]->port, "count",
			      (json_int_t)v[i]->count, "sessions",
			      ss ? ss : json_null(), "now", v[i]->now));
	}
	json_t *o = json_pack(
	    "{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "flips",
	    flips ? flips : json_null(), "records", (json_int_t)r->records,
	    "decisions", (json_int_t)r->decisions, "allow_to_deny",
	    (json_int_t)r->to_deny, "deny_to_allow", (json_int_t)r->to_allow,
	    "after_policy", (json_int_t)r->after_policy, "not_decisions",
	    (json_int_t)r->not_decisions, "without_host",
	    (json_int_t)r->not_replayable, "bad_lines",
	    (json_int_t)r->bad_lines);
	if (o == NULL || json_dumpf(o, stdout, JSON_COMPACT) != 0) {
		json_decref(o);
		(void)fputs("agentsafe policy replay: out of memory\n", stderr);
		return EXIT_ERROR;
	}
	(void)fputc('\n', stdout);
	json_decref(o);
	return r->to_deny + r->to_allow > 0 ? EXIT_FLIPS : EXIT_SAME;
}

static int print_report(const struct replay *r, const char *policy_path,
			size_t nfiles, bool json)
{
	struct flip **v =
	    calloc(r->nflips ? r->nflips : 1, sizeof(struct flip *));
	if (v == NULL) {
		(void)fputs("agentsafe policy replay: out of memory\n", stderr);
		return EXIT_ERROR;
	}
	size_t n = 0;
	for (size_t i = 0; i < r->nbuckets; i++)
		for (struct flip *f = r->buckets[i]; f != NULL; f = f->next)
			v[n++] = f;
	qsort(v, n, sizeof(struct flip *), cmp_flip);
	if (json) {
		int rc = print_json(r, v, n);
		free(v);
		return rc;
	}
	size_t cols = cli_columns();
	size_t w[2] = {col_width(v, n, false, strlen("HOST:PORT"), 60),
		       col_width(v, n, true, strlen("SESSIONS"), 40)};
	(void)fputs("replay of ", stdout);
	logread_fputs_escaped(policy_path, stdout);
	printf(" over %zu log%s: %llu records, %llu decisions re-decided\n",
	       nfiles, nfiles == 1 ? "" : "s", (unsigned long long)r->records,
	       (unsigned long long)r->decisions);
	if (n > 0)
		print_row(stdout, NULL, w, cols);
	for (size_t i = 0; i < n; i++)
		print_row(stdout, v[i], w, cols);
	free(v);
	printf("%llu flip%s: %llu allow->deny, %llu deny->allow\n",
	       (unsigned long long)(r->to_deny + r->to_allow),
	       r->to_deny + r->to_allow == 1 ? "" : "s",
	       (unsigned long long)r->to_deny, (unsigned long long)r->to_allow);
	printf("not replayed: %llu refused after the policy (SNI, TLS, DNS, "
	       "connect, limits), %llu records that are no decision (close, "
	       "error, drop), %llu without host or port, %llu before --since, "
	       "%lu bad lines\n",
	       (unsigned long long)r->after_policy,
	       (unsigned long long)r->not_decisions,
	       (unsigned long long)r->not_replayable,
	       (unsigned long long)r->before_since, r->bad_lines);
	return r->to_deny + r->to_allow > 0 ? EXIT_FLIPS : EXIT_SAME;
}

struct replay_opts {
	const char *policy;
	const char *session;
	bool all, json;
	int64_t since_ms;
};

static const struct option replay_longopts[] = {
    {"session", required_argument, 0, 'S'},
    {"all", no_argument, 0, 'a'},
    {"json", no_argument, 0, 'j'},
    {"since", required_argument, 0, 's'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

/* -1 to go on (optind at the first argument after NEW.yaml), else the exit
 * code to return now. */
static int replay_parse(int argc, char **argv, struct replay_opts *o)
{
	*o = (struct replay_opts){.since_ms = -1};
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", replay_longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'S':
			o->session = optarg;
			break;
		case 'a':
			o->all = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 's':
			o->since_ms = logread_parse_when(optarg, log_now_ms());
			if (o->since_ms < 0) {
				(void)fputs("agentsafe policy replay: bad time "
					    "'",
					    stderr);
				logread_fputs_escaped(optarg, stderr);
				(void)fputs("' (RFC 3339, or 10m, 2h, 3d)\n",
					    stderr);
				return EXIT_ERROR;
			}
			break;
		case 'h':
			(void)fputs(replay_usage, stdout);
			return EXIT_SAME;
		default:
			cli_bad_option("agentsafe policy replay", c, argv,
				       replay_longopts);
			return EXIT_ERROR;
		}
	}
	if (optind == argc) {
		(void)fputs(replay_usage, stderr);
		return EXIT_ERROR;
	}
	o->policy = argv[optind++];
	if (o->all && o->session != NULL) {
		(void)fputs("agentsafe policy replay: --session and --all "
			    "exclude each other\n",
			    stderr);
		return EXIT_ERROR;
	}
	return -1;
}

int cli_policy_replay_main(int argc, char **argv)
{
	struct replay_opts o;
	int rc = replay_parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	struct replay r = {.since_ms = o.since_ms};
	char err[POLICY_ERR_MAX + 512];
	if (policy_load_file(o.policy, &r.p, err, sizeof err) != 0) {
		logread_fputs_escaped(err, stderr);
		(void)fputc('\n', stderr);
		return EXIT_ERROR;
	}
	struct log_files lf = {0};
	if (log_files_select(&lf, argc - optind, argv + optind, o.session,
			     o.all, err, sizeof err) != 0) {
		(void)fputs("agentsafe policy replay: ", stderr);
		logread_fputs_escaped(err, stderr);
		(void)fputc('\n', stderr);
		rc = EXIT_ERROR;
		goto out;
	}
	if (o.session != NULL && argc - optind > 0)
		r.session = o.session;
	for (size_t i = 0; i < lf.n; i++) {
		if (replay_file(&r, lf.path[i]) != 0) {
			rc = EXIT_ERROR;
			goto out;
		}
	}
	rc = print_report(&r, o.policy, lf.n, o.json);
out:
	log_files_free(&lf);
	flips_free(&r);
	policy_unref(r.p);
	return rc;
}
