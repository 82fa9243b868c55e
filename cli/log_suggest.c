/* `agentsafe log suggest`: propose the allow rules that would have let the
 * denied requests through, as YAML to paste, or merged into policy.yaml with
 * its comments and order kept (temp file, policy check, backup, rename). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "log_int.h"
#include "policy.h"

#define PORTS_MAX 16

struct want {
	char host[POLICY_HOST_MAX + 3]; /* room for a leading "*." */
	unsigned short ports[PORTS_MAX];
	size_t nports;
	unsigned long count;
	char last_ts[40];
	bool merged;	  /* folded into a wildcard */
	const char *note; /* the rule's comment instead of the counts */
};

struct wants {
	struct want *v;
	size_t n, cap;
};

static struct want *want_get(struct wants *w, const char *host)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->v[i].host, host) == 0)
			return &w->v[i];
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 32;
		struct want *v = realloc(w->v, cap * sizeof *v);
		if (v == NULL)
			return NULL;
		w->v = v;
		w->cap = cap;
	}
	struct want *x = &w->v[w->n++];
	memset(x, 0, sizeof *x);
	snprintf(x->host, sizeof x->host, "%s", host);
	return x;
}

static void want_port(struct want *x, unsigned short port)
{
	for (size_t i = 0; i < x->nports; i++)
		if (x->ports[i] == port)
			return;
	if (x->nports < PORTS_MAX)
		x->ports[x->nports++] = port;
}

static int cmp_port(const void *a, const void *b)
{
	return (int)*(const unsigned short *)a -
	       (int)*(const unsigned short *)b;
}

static int cmp_want(const void *a, const void *b)
{
	return strcmp(((const struct want *)a)->host,
		      ((const struct want *)b)->host);
}

/* Fold a.foo.com, b.foo.com, ... into *.foo.com when two or more distinct
 * names share a parent of at least two labels. */
static int fold_wildcards(struct wants *w)
{
	size_t n0 = w->n;
	for (size_t i = 0; i < n0; i++) {
		struct want *a = &w->v[i];
		if (a->merged || a->host[0] == '*')
			continue;
		const char *parent = strchr(a->host, '.');
		if (parent == NULL || strchr(parent + 1, '.') == NULL)
			continue;
		parent++;
		size_t plen = strlen(parent);
		size_t members = 0;
		for (size_t j = 0; j < n0; j++) {
			const char *h = w->v[j].host;
			size_t hl = strlen(h);
			if (!w->v[j].merged && hl > plen + 1 &&
			    strcmp(h + hl - plen, parent) == 0 &&
			    h[hl - plen - 1] == '.')
				members++;
		}
		if (members < 2)
			continue;
		char wild[POLICY_HOST_MAX + 3];
		snprintf(wild, sizeof wild, "*.%.*s", (int)(sizeof wild - 3),
			 parent);
		struct want *wv = want_get(w, wild);
		if (wv == NULL)
			return -ENOMEM;
		for (size_t j = 0; j < n0; j++) {
			struct want *m = &w->v[j];
			const char *h = m->host;
			size_t hl = strlen(h);
			if (m->merged || hl <= plen + 1 ||
			    strcmp(h + hl - plen, parent) != 0 ||
			    h[hl - plen - 1] != '.')
				continue;
			m->merged = true;
			wv->count += m->count;
			if (strcmp(m->last_ts, wv->last_ts) > 0)
				snprintf(wv->last_ts, sizeof wv->last_ts, "%s",
					 m->last_ts);
			for (size_t k = 0; k < m->nports; k++)
				want_port(wv, m->ports[k]);
		}
	}
	return 0;
}

static bool ports_are_default(const struct want *x)
{
	return x->nports == 1 && x->ports[0] == 443;
}

/* Room for the longest rule format_rule can write: every host byte
 * escaped (4x), the comment, and every port. */
#define RULE_MAX 4096

static void format_rule(const struct want *x, const char *indent, char *buf,
			size_t len)
{
	/* The host passed policy_host_normalize and the time logread's
	 * check, so escaping changes nothing today; it keeps a line of YAML
	 * one line if either check ever lets more through. */
	char ts[sizeof x->last_ts * 4], comment[sizeof ts + 64],
	    host[sizeof x->host * 4];
	(void)logread_escape(x->last_ts, ts, sizeof ts);
	(void)logread_escape(x->host, host, sizeof host);
	if (x->note != NULL)
		snprintf(comment, sizeof comment, "# %s, %s", x->note, ts);
	else
		snprintf(comment, sizeof comment,
			 "# agentsafe log suggest: %lu denied, last %s",
			 x->count, ts);
	bool quote = x->host[0] == '*';
	if (ports_are_default(x)) {
		snprintf(buf, len, "%s- %s%s%s  %s\n", indent,
			 quote ? "\"" : "", host, quote ? "\"" : "", comment);
		return;
	}
	char ports[PORTS_MAX * 7 + 4] = "";
	size_t off = 0;
	for (size_t i = 0; i < x->nports; i++)
		off += (size_t)snprintf(ports + off, sizeof ports - off, "%s%u",
					i ? ", " : "", x->ports[i]);
	snprintf(buf, len, "%s- host: %s%s%s  %s\n%s  ports: [%s]\n", indent,
		 quote ? "\"" : "", host, quote ? "\"" : "", comment, indent,
		 ports);
}

/* ---- --apply: merge into the allow: block, keeping everything else ---- */

/* policy_load refuses a larger policy, so --apply never needs more. */
#define SUGGEST_POLICY_MAX ((size_t)64 * 1024 * 1024)

static bool is_top_key(const char *line, size_t len)
{
	if (len == 0 || line[0] == ' ' || line[0] == '\t' || line[0] == '#' ||
	    line[0] == '-')
		return false;
	return memchr(line, ':', len) != NULL;
}

/* Where to insert: after the last item line of the top-level allow: block.
 * Sets *at (byte offset), the item indentation, and whether the block must
 * be created. Flow style (allow: [..]) is refused: it cannot be edited
 * without rewriting the user's formatting. */
static int find_allow(const char *text, size_t len, size_t *at, char *indent,
		      size_t indlen, bool *create, char *err, size_t errlen)
{
	size_t off = 0, block_end = 0;
	bool in_allow = false, found = false;
	snprintf(indent, indlen, "  ");
	while (off < len) {
		const char *line = text + off;
		const char *nl = memchr(line, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - line) : len - off;
		size_t next = nl ? off + ll + 1 : len;
		if (is_top_key(line, ll)) {
			if (in_allow)
				in_allow = false;
			if (ll >= 6 && strncmp(line, "allow:", 6) == 0) {
				const char *rest = line + 6;
				while (rest < line + ll &&
				       (*rest == ' ' || *rest == '\t'))
					rest++;
				if (rest < line + ll && *rest != '#') {
					snprintf(err, errlen,
						 "the allow: list is in flow "
						 "style on one line; "
						 "write it as a block list to "
						 "use --apply");
					return -EINVAL;
				}
				in_allow = true;
				found = true;
				block_end = next;
			}
		} else if (in_allow) {
			size_t i = 0;
			while (i < ll && (line[i] == ' ' || line[i] == '\t'))
				i++;
			if (i < ll && line[i] != '#') {
				block_end = next; /* content of the block */
				if (line[i] == '-' && i < indlen)
					snprintf(indent, indlen, "%.*s", (int)i,
						 line);
			}
		}
		off = next;
	}
	*create = !found;
	*at = found ? block_end : len;
	return 0;
}

/* Writes the policy text with the rules inserted at byte `at` to a new temp
 * file tmp[] beside policy_path, with the policy's mode. On failure nothing
 * is left behind. Returns 0 or -EIO (err says why, when it can). */
static int apply_write_temp(const char *policy_path, const char *text,
			    size_t len, size_t at, const char *indent,
			    bool create, const struct wants *w, char *tmp,
			    size_t tmplen, char *err, size_t errlen)
{
	snprintf(tmp, tmplen, "%s.tmp.XXXXXX", policy_path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(err, errlen,
			 "cannot create a temp file next to %s: %s",
			 policy_path, strerror(errno));
		return -EIO;
	}
	struct stat st;
	if (stat(policy_path, &st) == 0)
		fchmod(fd, st.st_mode & 07777);
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(tmp);
		return -EIO;
	}
	(void)fwrite(text, 1, at, f); /* errors: ferror() below */
	if (at > 0 && text[at - 1] != '\n')
		(void)fputc('\n', f);
	if (create)
		(void)fputs("allow:\n", f);
	for (size_t i = 0; i < w->n; i++) {
		if (w->v[i].merged)
			continue;
		char rule[RULE_MAX];
		format_rule(&w->v[i], indent, rule, sizeof rule);
		(void)fputs(rule, f);
	}
	(void)fwrite(text + at, 1, len - at, f);
	if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "cannot write %.300s: %s", tmp,
			 strerror(errno));
		(void)fclose(f);
		(void)unlink(tmp);
		return -EIO;
	}
	if (fclose(f) != 0) {
		snprintf(err, errlen, "cannot write %.300s: %s", tmp,
			 strerror(errno));
		(void)unlink(tmp);
		return -EIO;
	}
	return 0;
}

/* The merged file tmp must be a valid policy that now allows every
 * suggestion; otherwise it is removed and nothing is written. Returns 0 or
 * -EINVAL with err naming what failed. */
static int apply_verify(const char *policy_path, const char *tmp,
			const struct wants *w, char *err, size_t errlen)
{
	struct policy *p = NULL;
	char perr[POLICY_ERR_MAX];
	if (policy_load_file(tmp, &p, perr, sizeof perr) != 0) {
		snprintf(
		    err, errlen,
		    "the merged policy would not load, %s left unchanged: %s",
		    policy_path, perr);
		unlink(tmp);
		return -EINVAL;
	}
	for (size_t i = 0; i < w->n; i++) {
		if (w->v[i].merged)
			continue;
		const char *h =
		    w->v[i].host[0] == '*' ? w->v[i].host + 2 : w->v[i].host;
		char probe[POLICY_HOST_MAX + 8];
		snprintf(probe, sizeof probe, "%s%s",
			 w->v[i].host[0] == '*' ? "x." : "", h);
		for (size_t k = 0; k < w->v[i].nports; k++) {
			struct policy_decision d;
			policy_match(p, probe, w->v[i].ports[k], &d);
			if (d.verdict != POLICY_ALLOW) {
				snprintf(err, errlen,
					 "after merging, %s:%u is still "
					 "refused (%s%s%s); "
					 "%s left unchanged",
					 probe, w->v[i].ports[k], d.reason,
					 d.rule ? " by " : "",
					 d.rule ? d.rule : "", policy_path);
				policy_unref(p);
				unlink(tmp);
				return -EINVAL;
			}
		}
	}
	policy_unref(p);
	return 0;
}

/* Keeps a hard-linked backup policy_path.<time>.bak, then renames tmp over
 * policy_path. On failure tmp is removed and policy_path is unchanged. */
static int apply_replace(const char *policy_path, const char *tmp, char *err,
			 size_t errlen)
{
	char backup[4300];
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	(void)strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(backup, sizeof backup, "%s.%s.bak", policy_path, stamp);
	if (link(policy_path, backup) != 0) {
		snprintf(err, errlen,
			 "cannot keep a backup %.200s: %.100s; %.200s left "
			 "unchanged",
			 backup, strerror(errno), policy_path);
		unlink(tmp);
		return -EIO;
	}
	if (rename(tmp, policy_path) != 0) {
		snprintf(err, errlen, "cannot replace %s: %s", policy_path,
			 strerror(errno));
		unlink(tmp);
		return -EIO;
	}
	fprintf(stderr, "agentsafe log suggest: updated %s (backup %s)\n",
		policy_path, backup);
	return 0;
}

/* --apply: read, merge into a temp file, check it, back up, rename. */
static int apply_rules(const char *policy_path, struct wants *w, char *err,
		       size_t errlen)
{
	size_t len;
	char *text;
	/* a policy.yaml that is a link (dotfiles) is read through it */
	if (fs_read_small(policy_path, SUGGEST_POLICY_MAX, FS_READ_FOLLOW,
			  &text, &len, err, errlen) != 0)
		return -EIO;
	size_t at;
	char indent[32];
	bool create;
	int rc = find_allow(text, len, &at, indent, sizeof indent, &create, err,
			    errlen);
	char tmp[4200];
	if (rc == 0)
		rc = apply_write_temp(policy_path, text, len, at, indent,
				      create, w, tmp, sizeof tmp, err, errlen);
	free(text);
	if (rc == 0)
		rc = apply_verify(policy_path, tmp, w, err, errlen);
	if (rc == 0)
		rc = apply_replace(policy_path, tmp, err, errlen);
	return rc;
}

int log_suggest_apply_one(const char *policy_path, const char *host,
			  unsigned short port, const char *note, char *err,
			  size_t errlen)
{
	struct want x;
	memset(&x, 0, sizeof x);
	snprintf(x.host, sizeof x.host, "%s", host);
	x.ports[0] = port;
	x.nports = 1;
	x.note = note;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	(void)strftime(x.last_ts, sizeof x.last_ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	struct wants w = {&x, 1, 1};
	return apply_rules(policy_path, &w, err, errlen);
}

static const char suggest_usage[] =
    "usage: agentsafe log suggest [FILE...] [--session ID] [--all] [--since "
    "T]\n"
    "         [--until T] [--host PATTERN] [--wildcards] [--policy POLICY]\n"
    "         [--apply POLICY] [--all-origins]\n"
    "Proposes allow rules for requests the proxy denied as not_allowed or\n"
    "port_not_allowed, or let through in learn mode (would_deny). Denials for "
    "other reasons (deny rules, SNI mismatch,\n"
    "private addresses, IP literals, bad requests) are listed as comments,\n"
    "never turned into rules. Records of the launcher's own self-check\n"
    "(\"origin\": \"selfcheck\") never are either; --all-origins lists\n"
    "them as comments too.\n"
    "  --wildcards     fold two or more names under one parent into *.parent\n"
    "  --policy FILE   leave out what FILE already allows\n"
    "  --apply FILE    merge the rules into FILE's allow: list, keeping its\n"
    "                  comments and order; the result is checked first and a\n"
    "                  backup FILE.<time>.bak is kept\n";

/* What `agentsafe log suggest` was asked to do. */
struct suggest_opts {
	struct log_filter f;
	bool all, wildcards;
	const char *session, *apply, *policy_path;
	unsigned long hidden; /* records left out for their origin */
};

static const struct option suggest_longopts[] = {
    {"session", required_argument, 0, 'S'},
    {"all", no_argument, 0, 'a'},
    {"since", required_argument, 0, 's'},
    {"until", required_argument, 0, 'u'},
    {"host", required_argument, 0, 'H'},
    {"wildcards", no_argument, 0, 'w'},
    {"policy", required_argument, 0, 'p'},
    {"apply", required_argument, 0, 'A'},
    {"all-origins", no_argument, 0, 'O'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

/* Reads the options into *o; optind is left at the first file argument.
 * Returns -1 to go on, or the exit code to return now (help, bad input). */
static int suggest_parse_options(int argc, char **argv, struct suggest_opts *o)
{
	*o = (struct suggest_opts){.f = {.since_ms = -1, .until_ms = -1}};
	o->f.hidden = &o->hidden;
	int64_t now = log_now_ms();
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", suggest_longopts, NULL)) !=
	       -1) {
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
				fprintf(
				    stderr,
				    "agentsafe log suggest: bad time '%s'\n",
				    optarg);
				return 2;
			}
			if (c == 's')
				o->f.since_ms = t;
			else
				o->f.until_ms = t;
			break;
		}
		case 'H':
			o->f.host_pattern = optarg;
			break;
		case 'w':
			o->wildcards = true;
			break;
		case 'p':
			o->policy_path = optarg;
			break;
		case 'A':
			o->apply = optarg;
			break;
		case 'O':
			o->f.all_origins = true;
			break;
		case 'h':
			(void)fputs(suggest_usage, stdout);
			return 0;
		default:
			cli_bad_option("agentsafe log suggest", c, argv,
				       suggest_longopts);
			return 2;
		}
	}
	if (o->apply != NULL && o->policy_path == NULL)
		o->policy_path = o->apply;
	return -1;
}

/* Decides whether a deny record asks for a new allow rule: only refusals
 * as not_allowed or port_not_allowed of a real host name and port, that
 * the current policy (when given) neither allows now nor denies on purpose.
 * On true, host[] holds the normalised name. */
static bool suggest_wanted(const struct logrec *rec,
			   const struct policy *current, char *host,
			   size_t hostlen)
{
	bool wanted = rec->reason_code == EGRESS_REASON_NOT_ALLOWED ||
		      rec->reason_code == EGRESS_REASON_PORT_NOT_ALLOWED;
	char herr[128];
	if (wanted && (policy_host_normalize(rec->host, strlen(rec->host), host,
					     hostlen, herr, sizeof herr) != 0 ||
		       policy_host_is_ip_literal(host) || rec->port <= 0 ||
		       rec->port > 65535))
		wanted = false;
	if (wanted && current != NULL) {
		struct policy_decision d;
		policy_match(current, host, (uint16_t)rec->port, &d);
		if ((d.verdict == POLICY_ALLOW && !d.would_deny) ||
		    strcmp(d.reason, "denied_by_rule") == 0)
			wanted = false; /* allowed now, or denied on purpose */
	}
	return wanted;
}

/* Lists the first 20 denials that get no rule, as comment lines. */
static void suggest_print_not(const struct logrec *rec,
			      unsigned long *not_suggested)
{
	if ((*not_suggested)++ >= 20)
		return;
	/* a comment line that stays one */
	(void)fputs("# not suggested: ", stdout);
	logread_fputs_escaped(rec->host, stdout);
	printf(":%lld (", rec->port);
	logread_fputs_escaped(rec->reason ? rec->reason : "?", stdout);
	if (logrec_has_origin(rec)) {
		(void)fputs(", origin ", stdout);
		logread_fputs_escaped(rec->origin, stdout);
	}
	(void)fputs(")\n", stdout);
}

/* Reads one log into *w: every wanted deny record adds its host, port,
 * count and time. Adds the file's bad lines to *skipped. Returns 0, or 1
 * (out of memory, or the file cannot be read: said on stderr). */
static int suggest_read_file(const char *path, const struct suggest_opts *o,
			     const struct policy *current, struct wants *w,
			     unsigned long *not_suggested,
			     unsigned long *skipped)
{
	struct logread r;
	char err[600];
	if (logread_open(&r, path, false, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe log suggest: %s\n", err);
		return 1;
	}
	int rc = 0;
	struct logrec rec;
	while (logread_next(&r, &rec) == 1) {
		/* learn mode's opens are the denials it let through */
		bool learned = rec.would_deny && strcmp(rec.event, "open") == 0;
		if ((strcmp(rec.event, "deny") != 0 && !learned) ||
		    !log_filter_match(&o->f, &rec) || rec.host == NULL) {
			logrec_clear(&rec);
			continue;
		}
		char host[POLICY_HOST_MAX + 1];
		/* The launcher's own probe asked for what must be refused:
		 * never a rule, even when shown (--all-origins). */
		if (logrec_has_origin(&rec) ||
		    !suggest_wanted(&rec, current, host, sizeof host)) {
			suggest_print_not(&rec, not_suggested);
			logrec_clear(&rec);
			continue;
		}
		struct want *x = want_get(w, host);
		if (x == NULL) {
			rc = 1;
			logrec_clear(&rec);
			break;
		}
		want_port(x, (unsigned short)rec.port);
		x->count++;
		if (strcmp(rec.ts, x->last_ts) > 0)
			snprintf(x->last_ts, sizeof x->last_ts, "%s", rec.ts);
		logrec_clear(&rec);
	}
	*skipped += r.skipped;
	logread_close(&r);
	return rc;
}

/* Sorts the suggestions and prints them as an allow: block to paste.
 * Returns how many rules it printed (wildcard-folded names are not). */
static size_t suggest_print(struct wants *w)
{
	size_t active = 0;
	if (w->n > 0)
		qsort(w->v, w->n, sizeof *w->v, cmp_want);
	for (size_t i = 0; i < w->n; i++) {
		qsort(w->v[i].ports, w->v[i].nports, sizeof w->v[i].ports[0],
		      cmp_port);
		if (!w->v[i].merged)
			active++;
	}
	if (active == 0) {
		printf("# nothing to suggest: no denied request a new "
		       "allow rule would fix\n");
		return 0;
	}
	printf("allow:\n");
	for (size_t i = 0; i < w->n; i++) {
		if (w->v[i].merged)
			continue;
		char rule[RULE_MAX];
		format_rule(&w->v[i], "  ", rule, sizeof rule);
		(void)fputs(rule, stdout);
	}
	return active;
}

int log_suggest_main(int argc, char **argv)
{
	struct suggest_opts o;
	int rc = suggest_parse_options(argc, argv, &o);
	if (rc >= 0)
		return rc;
	char err[600];
	struct policy *current = NULL;
	if (o.policy_path != NULL &&
	    policy_load_file(o.policy_path, &current, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe log suggest: %s\n", err);
		return 1;
	}
	struct log_files lf = {0};
	if (log_files_select(&lf, argc - optind, argv + optind, o.session,
			     o.all, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe log suggest: %s\n", err);
		policy_unref(current);
		return 1;
	}
	struct wants w = {0};
	unsigned long not_suggested = 0, skipped = 0;
	rc = 0;
	for (size_t i = 0; i < lf.n && rc == 0; i++)
		rc = suggest_read_file(lf.path[i], &o, current, &w,
				       &not_suggested, &skipped);
	log_files_free(&lf);
	if (not_suggested > 20)
		printf("# ... and %lu more denials not suggested\n",
		       not_suggested - 20);
	if (rc == 0 && o.wildcards && fold_wildcards(&w) != 0)
		rc = 1;
	size_t active = rc == 0 ? suggest_print(&w) : 0;
	if (rc == 0 && o.apply != NULL && active > 0 &&
	    apply_rules(o.apply, &w, err, sizeof err) != 0) {
		fprintf(stderr, "agentsafe log suggest: %s\n", err);
		rc = 1;
	}
	if (skipped > 0)
		fprintf(stderr,
			"agentsafe log suggest: %lu bad lines skipped\n",
			skipped);
	log_note_hidden(stderr, o.hidden, "ignored",
			isatty(STDERR_FILENO) && getenv("NO_COLOR") == NULL);
	free(w.v);
	policy_unref(current);
	return rc;
}
