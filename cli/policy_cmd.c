/* `agentsafe policy check|explain|edit`: validate a policy file, explain
 * how it decides a host:port or an egress.log record, edit it safely. The
 * file defaults to the user's policy. Exit codes: 0 valid / allowed,
 * 1 policy invalid, 2 usage, 3 denied. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "policy.h"
#include "reason.h"

#define EXIT_ALLOWED 0
#define EXIT_INVALID 1
#define EXIT_USAGE   2
#define EXIT_DENIED  3

static void usage_check(FILE *out)
{
	(void)fputs(
	    "usage: agentsafe policy check FILE\n"
	    "       agentsafe policy check [-f FILE]\n"
	    "  Parse and validate FILE (default: your policy, "
	    "$XDG_CONFIG_HOME/agentsafe/policy.yaml\n"
	    "  or ~/.config/agentsafe/policy.yaml). Prints 'FILE: ok (N "
	    "rules)' and exits 0,\n"
	    "  or prints 'FILE:LINE:COL: message' on stderr and exits 1.\n",
	    out);
}

static void usage_explain(FILE *out)
{
	(void)fputs(
	    "usage: agentsafe policy explain [-f FILE | FILE] HOST[:PORT]\n"
	    "       agentsafe policy explain [-f FILE | FILE] [--method M] "
	    "https://HOST[:PORT]/PATH\n"
	    "       agentsafe policy explain [-f FILE | FILE] --record JSON|-\n"
	    "  Show how FILE (default: your policy) decides a request: "
	    "verdict,\n"
	    "  deciding rule with file:line, reason code, and whether TLS "
	    "with SNI\n"
	    "  is required. PORT defaults to 443; write IPv6 as "
	    "[addr]:port.\n"
	    "  --record takes one egress.log line (or '-' to read it from "
	    "stdin),\n"
	    "  explains its host/port under FILE and says whether the "
	    "record's\n"
	    "  original decision would now differ.\n"
	    "  With a URL (and --method, default GET) the request rules of an\n"
	    "  inspected host are explained too, down to the http: entry's\n"
	    "  file:line.\n"
	    "  Exit: 0 allowed, 3 denied, 1 policy invalid, 2 usage error.\n",
	    out);
}

static void usage_edit(FILE *out)
{
	(void)fputs(
	    "usage: agentsafe policy edit [-f FILE]\n"
	    "  Edit FILE (default: your policy) with $VISUAL or $EDITOR on a "
	    "copy,\n"
	    "  and install the copy only when it loads; a broken copy can be "
	    "edited\n"
	    "  again or dropped, the policy in place is never left broken. "
	    "Without\n"
	    "  a policy yet, starts from the installed example.\n",
	    out);
}

static void usage_policy(FILE *out)
{
	(void)fputs(
	    "usage: agentsafe policy check [-f FILE | FILE]\n"
	    "       agentsafe policy explain [-f FILE | FILE] HOST[:PORT]\n"
	    "       agentsafe policy explain [-f FILE | FILE] [--method M] "
	    "https://HOST/PATH\n"
	    "       agentsafe policy explain [-f FILE | FILE] --record JSON|-\n"
	    "       agentsafe policy edit [-f FILE]\n"
	    "       agentsafe policy replay NEW.yaml [LOG...|--session ID|"
	    "--all] [--since T]\n"
	    "  FILE defaults to your policy, $XDG_CONFIG_HOME/agentsafe/"
	    "policy.yaml\n"
	    "  (~/.config/agentsafe/policy.yaml), the one agentsafe-launch "
	    "uses.\n"
	    "  -f, --file FILE  use FILE instead\n"
	    "  (agentsafe policy check --help, agentsafe policy explain "
	    "--help,\n"
	    "   agentsafe policy edit --help, agentsafe policy replay "
	    "--help)\n",
	    out);
}

static bool is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int load(const char *path, struct policy **p)
{
	char err[POLICY_ERR_MAX];
	if (policy_load_file(path, p, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

/* The arguments of check/explain/edit: -f FILE, --record VALUE, --help
 * and up to two positionals. */
struct pargs {
	const char *file;   /* -f, or the old positional FILE form */
	const char *record; /* --record VALUE */
	const char *method; /* --method M (explain) */
	const char *pos[2];
	int npos;
	bool help, record_seen;
	char dflt[4096]; /* the default policy's path, when file is NULL */
};

static int parse_pargs(const char *prog, int argc, char **argv, struct pargs *a,
		       bool allow_record)
{
	static const char *const opts[] = {"--file", "--help", "--method",
					   "--record", NULL};
	static const char *const opts_nr[] = {"--file", "--help", NULL};
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (is_help(s)) {
			a->help = true;
		} else if (strcmp(s, "-f") == 0 || strcmp(s, "--file") == 0) {
			if (i + 1 == argc || a->file != NULL)
				return -1;
			a->file = argv[++i];
		} else if (allow_record && strcmp(s, "--record") == 0) {
			a->record_seen = true;
			if (i + 1 == argc)
				return -1;
			a->record = argv[++i];
		} else if (allow_record && strcmp(s, "--method") == 0) {
			if (i + 1 == argc || a->method != NULL)
				return -1;
			a->method = argv[++i];
		} else if (s[0] == '-' && s[1] != '\0') {
			cli_unknown(prog, "option", s,
				    allow_record ? opts : opts_nr);
			return -2;
		} else if (a->npos == 2) {
			return -1;
		} else {
			a->pos[a->npos++] = s;
		}
	}
	return 0;
}

/* Point a->file at the default policy when none was given; says why not
 * on stderr (also, with must_exist, when the user has no policy yet). */
static int default_file(const char *prog, struct pargs *a, bool must_exist)
{
	if (a->file != NULL)
		return 0;
	if (cli_default_policy(a->dflt, sizeof a->dflt) != 0) {
		fprintf(stderr,
			"%s: no HOME or XDG_CONFIG_HOME to find your policy; "
			"pass -f FILE\n",
			prog);
		return -1;
	}
	a->file = a->dflt;
	if (must_exist && access(a->file, F_OK) != 0) {
		fprintf(stderr,
			"%s: you have no policy yet (%s); pass -f FILE, or "
			"create it with 'agentsafe policy edit' (or a first "
			"agentsafe-launch)\n",
			prog, a->file);
		return -1;
	}
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	struct pargs a = {0};
	int rc = parse_pargs("agentsafe policy check", argc, argv, &a, false);
	if (rc == 0 && a.help) {
		usage_check(stdout);
		return 0;
	}
	if (rc == 0 && a.npos == 1 && a.file == NULL)
		a.file = a.pos[0];
	else if (rc == 0 && a.npos > 0)
		rc = -1;
	if (rc == -1)
		usage_check(stderr);
	if (rc != 0)
		return EXIT_USAGE;
	if (default_file("agentsafe policy check", &a, true) != 0)
		return EXIT_USAGE;
	struct policy *p;
	if (load(a.file, &p) != 0)
		return EXIT_INVALID;
	printf("%s: ok (%zu rules)\n", a.file, policy_rule_count(p));
	policy_unref(p);
	return 0;
}

static bool parse_port(const char *s, uint16_t *port)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5)
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* HOST, HOST:PORT, [V6], [V6]:PORT, or a bare IPv6 address (several ':').
 * The host part keeps its brackets: policy_match accepts them. */
static int split_target(const char *arg, char *host, size_t hostlen,
			uint16_t *port)
{
	*port = 443;
	const char *colon = NULL;
	size_t hl;
	if (arg[0] == '[') {
		const char *rb = strchr(arg, ']');
		if (rb == NULL)
			return -1;
		hl = (size_t)(rb - arg) + 1;
		if (rb[1] == ':')
			colon = rb + 1;
		else if (rb[1] != '\0')
			return -1;
	} else {
		const char *c = strchr(arg, ':');
		if (c != NULL && strchr(c + 1, ':') == NULL)
			colon = c;
		hl = colon != NULL ? (size_t)(colon - arg) : strlen(arg);
	}
	if (hl + 1 > hostlen)
		return -1;
	memcpy(host, arg, hl);
	host[hl] = '\0';
	if (colon != NULL && !parse_port(colon + 1, port))
		return -1;
	return 0;
}

static int explain_target(const struct policy *p, const char *host,
			  uint16_t port, struct policy_decision *d)
{
	char buf[4096];
	policy_match(p, host, port, d);
	if (policy_explain(p, host, port, buf, sizeof buf) != 0) {
		fprintf(stderr, "agentsafe policy: explanation truncated\n");
	}
	(void)fputs(buf, stdout);
	return d->verdict == POLICY_ALLOW ? EXIT_ALLOWED : EXIT_DENIED;
}

static char *read_stdin_line(void)
{
	size_t cap = 0;
	char *line = NULL;
	ssize_t n = getline(&line, &cap, stdin);
	if (n <= 0) {
		free(line);
		return NULL;
	}
	return line;
}

/* Reason codes that come from the policy itself; any other deny reason
 * (no_sni, sni_mismatch, dns_failure, ...) means the policy had allowed the
 * host and a later check refused the connection. */
static bool reason_is_policy(const char *r)
{
	enum egress_reason code;
	if (egress_reason_lookup(r, &code) != 0)
		return false;
	switch (code) {
	case EGRESS_REASON_NOT_ALLOWED:
	case EGRESS_REASON_DENIED_BY_RULE:
	case EGRESS_REASON_PORT_NOT_ALLOWED:
	case EGRESS_REASON_BAD_HOST:
	case EGRESS_REASON_IP_LITERAL:
		return true;
	default:
		return false;
	}
}

static bool addr_from_text(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int explain_record(const struct policy *p, const char *text)
{
	json_error_t jerr;
	json_t *rec = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (rec == NULL || !json_is_object(rec)) {
		fprintf(stderr,
			"agentsafe policy: --record is not a JSON object: %s\n",
			rec == NULL ? jerr.text : "not an object");
		json_decref(rec);
		return EXIT_USAGE;
	}
	const char *event = jstr(rec, "event");
	const char *reason = jstr(rec, "reason");
	const char *host = jstr(rec, "host");
	const char *ip = jstr(rec, "ip");
	json_t *jport = json_object_get(rec, "port");
	if (host == NULL)
		host = jstr(rec, "sni");
	if (host == NULL && event != NULL && strcmp(event, "drop") == 0) {
		host = jstr(rec, "dst");
		jport = json_object_get(rec, "dport");
	}
	if (host == NULL) {
		fprintf(
		    stderr,
		    "agentsafe policy: the record has no host, sni or dst\n");
		json_decref(rec);
		return EXIT_USAGE;
	}
	uint16_t port = 443;
	if (jport != NULL) {
		if (!json_is_integer(jport) || json_integer_value(jport) < 1 ||
		    json_integer_value(jport) > 65535) {
			fprintf(stderr, "agentsafe policy: the record's port "
					"is not 1..65535\n");
			json_decref(rec);
			return EXIT_USAGE;
		}
		port = (uint16_t)json_integer_value(jport);
	}
	struct policy_decision d;
	int rc = explain_target(p, host, port, &d);
	bool now_allowed = d.verdict == POLICY_ALLOW;
	if (now_allowed && ip != NULL) {
		struct sockaddr_storage ss;
		if (addr_from_text(ip, &ss)) {
			struct policy_decision ad;
			policy_check_addr(p, (struct sockaddr *)&ss, port, &ad);
			printf("address: %s -> %s (%s)\n", ip,
			       ad.verdict == POLICY_ALLOW ? "ALLOW" : "DENY",
			       ad.reason);
			if (ad.verdict != POLICY_ALLOW) {
				now_allowed = false;
				d = ad;
				rc = EXIT_DENIED;
			}
		}
	}
	printf("record:  event=%s reason=%s\n", event ? event : "?",
	       reason ? reason : "-");
	if (event == NULL) {
		printf("change:  unknown (the record has no event)\n");
	} else if (strcmp(event, "drop") == 0) {
		printf("change:  not comparable (a firewall drop bypassed the "
		       "proxy; "
		       "the policy never saw it)\n");
	} else {
		bool was_deny = strcmp(event, "deny") == 0;
		bool policy_level = !was_deny || reason == NULL ||
				    reason_is_policy(reason) ||
				    strcmp(reason, "private_address") == 0;
		if (!policy_level && !now_allowed)
			printf("change:  yes - the policy now denies this "
			       "request (%s); "
			       "it was refused later for %s\n",
			       d.reason, reason);
		else if (!policy_level)
			printf("change:  no - the policy still allows it; it "
			       "was refused "
			       "for %s, which the policy does not decide\n",
			       reason);
		else if (was_deny == !now_allowed)
			printf("change:  no - still %s\n",
			       now_allowed ? "allowed" : "denied");
		else
			printf("change:  yes - was %s, now %s\n",
			       was_deny ? "denied" : "allowed",
			       now_allowed ? "allowed" : "denied");
	}
	json_decref(rec);
	return rc;
}

static bool is_url(const char *s)
{
	return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
}

/* A host never holds '/' and is no file here: "explain FILE" alone is
 * the old form missing its HOST. */
static bool looks_like_file(const char *s)
{
	struct stat st;
	return !is_url(s) && (strchr(s, '/') != NULL || stat(s, &st) == 0);
}

/* https://HOST[:PORT]/PATH: the authority into auth (HOST[:PORT]), the
 * path (with any query) into *path; port 443 (80 for http://) unless
 * given. */
static int split_url(const char *url, char *auth, size_t authlen,
		     const char **path, uint16_t *defport)
{
	bool tls = strncmp(url, "https://", 8) == 0;
	const char *a = url + (tls ? 8 : 7);
	const char *slash = strchr(a, '/');
	size_t al = slash != NULL ? (size_t)(slash - a) : strlen(a);
	if (al == 0 || al + 1 > authlen)
		return -1;
	memcpy(auth, a, al);
	auth[al] = '\0';
	*path = slash != NULL ? slash : "/";
	*defport = tls ? 443 : 80;
	return 0;
}

static bool method_ok(const char *m)
{
	size_t n = strlen(m);
	for (size_t i = 0; i < n; i++)
		if (m[i] < 'A' || m[i] > 'Z')
			return false;
	return n > 0 && n <= 20;
}

/* The host decision and, for an inspected host, the request rules. */
static int explain_request(const struct policy *p, const char *host,
			   uint16_t port, const char *method, const char *path)
{
	char buf[8192];
	if (policy_explain_request(p, host, port, method, path, buf,
				   sizeof buf) != 0)
		fprintf(stderr, "agentsafe policy: explanation truncated\n");
	(void)fputs(buf, stdout); /* outside text is quoted in it */
	struct policy_http_decision d;
	policy_http_match(p, host, port, method, path, &d);
	return d.verdict == POLICY_ALLOW ? EXIT_ALLOWED : EXIT_DENIED;
}

static int cmd_explain(int argc, char **argv)
{
	struct pargs a = {0};
	int prc = parse_pargs("agentsafe policy explain", argc, argv, &a, true);
	if (prc == 0 && a.help) {
		usage_explain(stdout);
		return 0;
	}
	const char *target = NULL;
	if (prc == 0) {
		/* FILE HOST (the old form), HOST, FILE --record, --record */
		int want = a.record_seen ? 0 : 1;
		if (a.file == NULL && a.npos == want + 1) {
			a.file = a.pos[0];
			target = a.record_seen ? NULL : a.pos[1];
		} else if (a.npos == want) {
			target = want ? a.pos[0] : NULL;
		} else {
			prc = -1;
		}
		if (target != NULL &&
		    (target[0] == '-' || looks_like_file(target)))
			prc = -1;
	}
	if (prc == -1)
		usage_explain(stderr);
	if (prc != 0)
		return EXIT_USAGE;
	char host[POLICY_HOST_MAX + 3];
	char auth[POLICY_HOST_MAX + 10];
	uint16_t port = 443;
	const char *path = NULL;
	if (prc == 0 && a.method != NULL &&
	    (target == NULL || !is_url(target) || !method_ok(a.method))) {
		fprintf(stderr,
			"agentsafe policy: --method wants an upper-case "
			"method and a https://HOST/PATH target\n");
		return EXIT_USAGE;
	}
	if (target != NULL && is_url(target)) {
		uint16_t defport = 443;
		if (split_url(target, auth, sizeof auth, &path, &defport) !=
			0 ||
		    split_target(auth, host, sizeof host, &port) != 0) {
			fprintf(stderr,
				"agentsafe policy: cannot read the URL\n");
			return EXIT_USAGE;
		}
		if (strchr(auth + (auth[0] == '[' ? 1 : 0), ':') == NULL ||
		    (auth[0] == '[' && strstr(auth, "]:") == NULL))
			port = defport;
	} else if (target != NULL &&
		   split_target(target, host, sizeof host, &port) != 0) {
		fprintf(stderr,
			"agentsafe policy: cannot read '%s' as HOST[:PORT] "
			"(IPv6 as [addr]:port, port 1..65535)\n",
			target);
		return EXIT_USAGE;
	}
	if (default_file("agentsafe policy explain", &a, true) != 0)
		return EXIT_USAGE;
	char *line = NULL;
	if (a.record != NULL && strcmp(a.record, "-") == 0) {
		line = read_stdin_line();
		if (line == NULL) {
			fprintf(stderr,
				"agentsafe policy: no record on stdin\n");
			return EXIT_USAGE;
		}
	}
	struct policy *p;
	if (load(a.file, &p) != 0) {
		free(line);
		return EXIT_INVALID;
	}
	int rc;
	if (a.record != NULL) {
		rc = explain_record(p, line != NULL ? line : a.record);
	} else if (path != NULL) {
		rc = explain_request(p, host, port,
				     a.method != NULL ? a.method : "GET", path);
	} else {
		struct policy_decision d;
		rc = explain_target(p, host, port, &d);
	}
	free(line);
	policy_unref(p);
	return rc;
}

static int cmd_edit(int argc, char **argv)
{
	struct pargs a = {0};
	int rc = parse_pargs("agentsafe policy edit", argc, argv, &a, false);
	if (rc == 0 && a.help) {
		usage_edit(stdout);
		return 0;
	}
	if (rc == 0 && a.npos > 0)
		rc = -1;
	if (rc == -1)
		usage_edit(stderr);
	if (rc != 0 || default_file("agentsafe policy edit", &a, false) != 0)
		return EXIT_USAGE;
	return cli_policy_edit(a.file);
}

int cli_policy_main(int argc, char **argv)
{
	if (argc < 2) {
		usage_policy(stderr);
		return EXIT_USAGE;
	}
	if (is_help(argv[1])) {
		usage_policy(stdout);
		return 0;
	}
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "explain") == 0)
		return cmd_explain(argc - 1, argv + 1);
	if (strcmp(argv[1], "edit") == 0)
		return cmd_edit(argc - 1, argv + 1);
	if (strcmp(argv[1], "replay") == 0)
		return cli_policy_replay_main(argc - 1, argv + 1);
	static const char *const cmds[] = {"check", "explain", "edit", "replay",
					   NULL};
	cli_unknown("agentsafe policy",
		    argv[1][0] == '-' ? "option" : "command", argv[1], cmds);
	return EXIT_USAGE;
}
