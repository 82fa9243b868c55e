/* agentsafe-launch options: getopt_long for flags, libyaml's event API for
 * config.yaml (a flat mapping of scalars and lists of scalars; no recursion,
 * unknown keys are errors naming FILE:LINE:COL). */
#include "lcfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

void lcfg_init(struct lcfg *c)
{
	memset(c, 0, sizeof *c);
	c->cmd = LCFG_RUN;
}

static void list_clear(struct lcfg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

void lcfg_free(struct lcfg *c)
{
	if (c == NULL)
		return;
	char **s[] = {&c->target,    &c->config_file, &c->agent,
		      &c->image,     &c->policy,      &c->container_dir,
		      &c->ca_bundle, &c->gpu,	      &c->name,
		      &c->hosts,     &c->dns,	      &c->upstream};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		free(*s[i]);
		*s[i] = NULL;
	}
	list_clear(&c->repos);
	list_clear(&c->build_args);
	list_clear(&c->probe_allow);
	list_clear(&c->probe_deny);
}

static int set_str(char **dst, const char *v)
{
	char *d = strdup(v);
	if (d == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

static int list_add(struct lcfg_list *l, const char *v)
{
	if (l->n >= LCFG_MAX_LIST)
		return -E2BIG;
	char *d = strdup(v);
	if (d == NULL)
		return -ENOMEM;
	l->v[l->n++] = d;
	return 0;
}

int lcfg_parse_memory(const char *s, int64_t *out)
{
	char *end = NULL;
	errno = 0;
	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	unsigned long long mul = 1;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mul = 1ULL << 10;
		break;
	case 'm':
	case 'M':
		mul = 1ULL << 20;
		break;
	case 'g':
	case 'G':
		mul = 1ULL << 30;
		break;
	case 't':
	case 'T':
		mul = 1ULL << 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end != '\0') {
		end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end != '\0')
			return -EINVAL;
	}
	if (v == 0 || v > (unsigned long long)INT64_MAX / mul)
		return -EINVAL;
	/* Docker refuses less than 6 MiB; say so here rather than later. */
	if (v * mul < 6ULL << 20)
		return -ERANGE;
	*out = (int64_t)(v * mul);
	return 0;
}

int lcfg_parse_cpus(const char *s, int64_t *nano)
{
	/* Decimal with up to 9 fractional digits, parsed without floating
	 * point so "1.5" is exactly 1500000000. */
	if (s == NULL || *s == '\0')
		return -EINVAL;
	int64_t whole = 0, frac = 0;
	int fd = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > 100000)
			return -EINVAL;
		whole = whole * 10 + (*p - '0');
	}
	if (p == s && *p != '.')
		return -EINVAL;
	if (*p == '.') {
		p++;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (fd == 9)
				return -EINVAL;
			frac = frac * 10 + (*p - '0');
			fd++;
		}
	}
	if (*p != '\0')
		return -EINVAL;
	for (; fd < 9; fd++)
		frac *= 10;
	int64_t v = whole * 1000000000LL + frac;
	if (v <= 0)
		return -EINVAL;
	*nano = v;
	return 0;
}

static int parse_u16(const char *s, const char **end, uint16_t *out)
{
	unsigned v = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > 65535)
			return -EINVAL;
	}
	if (p == s || v == 0)
		return -EINVAL;
	*out = (uint16_t)v;
	*end = p;
	return 0;
}

int lcfg_parse_ports(const char *s, struct lcfg_ports *out)
{
	const char *p = NULL;
	if (s == NULL || parse_u16(s, &p, &out->first) != 0)
		return -EINVAL;
	out->last = out->first;
	if (*p == '-') {
		if (parse_u16(p + 1, &p, &out->last) != 0)
			return -EINVAL;
	}
	if (*p != '\0' || out->last < out->first)
		return -EINVAL;
	return 0;
}

int lcfg_parse_bind(const char *s, struct lcfg_ports *out)
{
	const char *colon = s != NULL ? strchr(s, ':') : NULL;
	char a[16];
	struct in_addr in;
	if (s == NULL)
		return -EINVAL;
	memset(out->addr, 0, sizeof out->addr);
	if (colon == NULL)
		return lcfg_parse_ports(s, out);
	size_t al = (size_t)(colon - s);
	if (al == 0 || al >= sizeof a)
		return -EINVAL;
	memcpy(a, s, al);
	a[al] = '\0';
	if (inet_pton(AF_INET, a, &in) != 1 ||
	    lcfg_parse_ports(colon + 1, out) != 0)
		return -EINVAL;
	if (inet_ntop(AF_INET, &in, out->addr, sizeof out->addr) == NULL)
		return -EINVAL;
	return 0;
}

bool lcfg_bind_is_loopback(const char *addr)
{
	return addr == NULL || addr[0] == '\0' || strncmp(addr, "127.", 4) == 0;
}

int lcfg_parse_target(const char *s, char *hostbuf, size_t hostlen,
		      uint16_t *port, uint16_t defport)
{
	if (s == NULL || *s == '\0')
		return -EINVAL;
	const char *colon = strrchr(s, ':');
	size_t hl = colon ? (size_t)(colon - s) : strlen(s);
	*port = defport;
	if (colon != NULL) {
		const char *e = NULL;
		if (parse_u16(colon + 1, &e, port) != 0 || *e != '\0')
			return -EINVAL;
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	/* Host names and IPv4 literals only: the probe puts the host into a
	 * shell script, so nothing but [A-Za-z0-9.-] may pass. */
	for (size_t i = 0; i < hl; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
			return -EINVAL;
	}
	memcpy(hostbuf, s, hl);
	hostbuf[hl] = '\0';
	return 0;
}

static bool build_arg_ok(const char *s)
{
	const char *eq = strchr(s, '=');
	return eq != NULL && eq != s;
}

/* ---- flags ---- */

enum {
	O_AGENT = 256,
	O_REPO,
	O_POLICY,
	O_CONFIG,
	O_IMAGE,
	O_BUILD,
	O_BUILD_ARG,
	O_CONTAINER_DIR,
	O_CA_BUNDLE,
	O_GPU,
	O_MEMORY,
	O_CPUS,
	O_PUBLISH,
	O_SSH,
	O_DETACH,
	O_NAME,
	O_HOSTS,
	O_DNS,
	O_UPSTREAM,
	O_PROBE_ALLOW,
	O_PROBE_DENY,
	O_NO_VERIFY,
	O_KEEP,
	O_ASK,
	O_NO_REPO,
	O_PUSH_UPSTREAM,
	O_PR,
	O_VERBOSE,
	O_TIMINGS,
	O_LEARN,
	O_HELP,
	O_VERSION,
};

static int check_target(const char *opt, const char *v, char *err,
			size_t errlen)
{
	char h[256];
	uint16_t p;
	if (lcfg_parse_target(v, h, sizeof h, &p, 443) != 0) {
		snprintf(err, errlen,
			 "%s '%s': expected HOST[:PORT] (letters, digits, "
			 "dots and dashes)",
			 opt, v);
		return -EINVAL;
	}
	return 0;
}

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9');
}

/* The session's name becomes a container name: Docker's rule,
 * [a-zA-Z0-9][a-zA-Z0-9_.-]+, here at parse time rather than from the
 * engine after the network and the fence are up. */
static int check_name(const char *v, const char *where, char *err,
		      size_t errlen)
{
	size_t n = strlen(v);
	bool ok = n >= 2 && n <= 64 && is_alnum(v[0]);
	for (size_t i = 1; ok && i < n; i++)
		ok =
		    is_alnum(v[i]) || v[i] == '_' || v[i] == '.' || v[i] == '-';
	if (!ok) {
		snprintf(err, errlen,
			 "%sname '%.80s': 2-64 characters, a letter or digit "
			 "first, then letters, digits, '_', '.' or '-' (a "
			 "Docker container name)",
			 where, v);
		return -EINVAL;
	}
	return 0;
}

/* --upstream: a remote's name as git allows it, nothing that could read
 * as an option or a path. */
static int check_remote(const char *v, const char *where, char *err,
			size_t errlen)
{
	size_t n = strlen(v);
	bool ok = n >= 1 && n <= 64 && is_alnum(v[0]);
	for (size_t i = 1; ok && i < n; i++)
		ok =
		    is_alnum(v[i]) || v[i] == '_' || v[i] == '.' || v[i] == '-';
	if (!ok || strstr(v, "..") != NULL) {
		snprintf(err, errlen,
			 "%supstream '%.80s': the name of a git remote of "
			 "the host repo (letters, digits, '_', '.', '-')",
			 where, v);
		return -EINVAL;
	}
	return 0;
}

/* --publish and --ssh; -E2BIG (message left to the caller) when the
 * publish list is full. */
static int apply_ports(struct lcfg *c, int o, const char *v, const char *where,
		       char *err, size_t errlen)
{
	struct lcfg_ports sp;
	if (o == O_PUBLISH) {
		if (c->npublish >= LCFG_MAX_LIST)
			return -E2BIG;
		if (lcfg_parse_bind(v, &c->publish[c->npublish]) != 0) {
			snprintf(err, errlen,
				 "%spublish '%s': expected [ADDR:]PORT or "
				 "[ADDR:]FIRST-LAST (1-65535, ADDR IPv4)",
				 where, v);
			return -EINVAL;
		}
		c->npublish++;
		return 0;
	}
	if (lcfg_parse_bind(v, &sp) != 0 || sp.first != sp.last ||
	    sp.first < 1024) {
		snprintf(err, errlen,
			 "%sssh '%s': expected [ADDR:]PORT, one port "
			 "1024-65535, ADDR IPv4",
			 where, v);
		return -EINVAL;
	}
	c->ssh_port = sp.first;
	memcpy(c->ssh_addr, sp.addr, sizeof c->ssh_addr);
	return 0;
}

static int apply_opt(struct lcfg *c, int o, const char *v, const char *where,
		     char *err, size_t errlen)
{
	int rc = 0;
	switch (o) {
	case O_AGENT:
		if (strcmp(v, "claude") != 0 && strcmp(v, "codex") != 0 &&
		    strcmp(v, "shell") != 0) {
			snprintf(err, errlen,
				 "%sagent '%s': expected claude, codex or "
				 "shell",
				 where, v);
			return -EINVAL;
		}
		return set_str(&c->agent, v);
	case O_REPO:
		rc = list_add(&c->repos, v);
		break;
	case O_POLICY:
		return set_str(&c->policy, v);
	case O_CONFIG:
		return set_str(&c->config_file, v);
	case O_IMAGE:
		if (*v == '\0') {
			snprintf(err, errlen, "%simage: empty name", where);
			return -EINVAL;
		}
		return set_str(&c->image, v);
	case O_BUILD_ARG:
		if (!build_arg_ok(v)) {
			snprintf(err, errlen,
				 "%sbuild-arg '%s': expected KEY=VALUE", where,
				 v);
			return -EINVAL;
		}
		rc = list_add(&c->build_args, v);
		break;
	case O_CONTAINER_DIR:
		return set_str(&c->container_dir, v);
	case O_CA_BUNDLE:
		return set_str(&c->ca_bundle, v);
	case O_GPU:
		if (*v == '\0') {
			snprintf(err, errlen,
				 "%sgpu: expected auto, all, none or IDs",
				 where);
			return -EINVAL;
		}
		return set_str(&c->gpu, v);
	case O_MEMORY:
		rc = lcfg_parse_memory(v, &c->memory);
		if (rc != 0) {
			snprintf(err, errlen,
				 "%smemory '%s': expected a size such as 512m "
				 "or 4g (at least 6m)",
				 where, v);
			return -EINVAL;
		}
		return 0;
	case O_CPUS:
		if (lcfg_parse_cpus(v, &c->nano_cpus) != 0) {
			snprintf(err, errlen,
				 "%scpus '%s': expected a positive number such "
				 "as 2 or 1.5",
				 where, v);
			return -EINVAL;
		}
		return 0;
	case O_PUBLISH:
	case O_SSH:
		rc = apply_ports(c, o, v, where, err, errlen);
		if (rc != -E2BIG)
			return rc;
		break;
	case O_NAME:
		if ((rc = check_name(v, where, err, errlen)) != 0)
			return rc;
		return set_str(&c->name, v);
	case O_HOSTS:
		return set_str(&c->hosts, v);
	case O_DNS:
		return set_str(&c->dns, v);
	case O_UPSTREAM:
		if ((rc = check_remote(v, where, err, errlen)) != 0)
			return rc;
		return set_str(&c->upstream, v);
	case O_PROBE_ALLOW:
		if ((rc = check_target("probe-allow", v, err, errlen)) != 0)
			return rc;
		rc = list_add(&c->probe_allow, v);
		break;
	case O_PROBE_DENY:
		if ((rc = check_target("probe-deny", v, err, errlen)) != 0)
			return rc;
		rc = list_add(&c->probe_deny, v);
		break;
	default:
		snprintf(err, errlen, "internal: unknown option %d", o);
		return -EINVAL;
	}
	if (rc == -E2BIG)
		snprintf(err, errlen, "%stoo many values (at most %d)", where,
			 LCFG_MAX_LIST);
	else if (rc != 0)
		snprintf(err, errlen, "out of memory");
	return rc;
}

static const struct option long_opts[] = {
    {"agent", required_argument, NULL, O_AGENT},
    {"repo", required_argument, NULL, O_REPO},
    {"policy", required_argument, NULL, O_POLICY},
    {"config", required_argument, NULL, O_CONFIG},
    {"image", required_argument, NULL, O_IMAGE},
    {"build", no_argument, NULL, O_BUILD},
    {"build-arg", required_argument, NULL, O_BUILD_ARG},
    {"container-dir", required_argument, NULL, O_CONTAINER_DIR},
    {"ca-bundle", required_argument, NULL, O_CA_BUNDLE},
    {"gpu", required_argument, NULL, O_GPU},
    {"memory", required_argument, NULL, O_MEMORY},
    {"cpus", required_argument, NULL, O_CPUS},
    {"publish", required_argument, NULL, O_PUBLISH},
    {"ssh", required_argument, NULL, O_SSH},
    {"detach", no_argument, NULL, O_DETACH},
    {"name", required_argument, NULL, O_NAME},
    {"hosts", required_argument, NULL, O_HOSTS},
    {"dns", required_argument, NULL, O_DNS},
    {"upstream", required_argument, NULL, O_UPSTREAM},
    {"probe-allow", required_argument, NULL, O_PROBE_ALLOW},
    {"probe-deny", required_argument, NULL, O_PROBE_DENY},
    {"no-verify", no_argument, NULL, O_NO_VERIFY},
    {"keep", no_argument, NULL, O_KEEP},
    {"ask", no_argument, NULL, O_ASK},
    {"no-repo", no_argument, NULL, O_NO_REPO},
    {"push-upstream", no_argument, NULL, O_PUSH_UPSTREAM},
    {"pr", no_argument, NULL, O_PR},
    {"verbose", no_argument, NULL, O_VERBOSE},
    {"timings", no_argument, NULL, O_TIMINGS},
    {"learn", no_argument, NULL, O_LEARN},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {NULL, 0, NULL, 0},
};

int lcfg_parse_args(struct lcfg *c, int argc, char **argv, char *err,
		    size_t errlen)
{
	int first = 1;
	if (argc >= 2) {
		const char *sub = argv[1];
		if (strcmp(sub, "ls") == 0) {
			c->cmd = LCFG_LS;
			if (argc != 2) {
				snprintf(err, errlen, "ls takes no arguments");
				return -EINVAL;
			}
			return 0;
		}
		if (strcmp(sub, "attach") == 0 || strcmp(sub, "stop") == 0) {
			c->cmd = sub[0] == 'a' ? LCFG_ATTACH : LCFG_STOP;
			if (argc != 3) {
				snprintf(err, errlen, "usage: %s NAME", sub);
				return -EINVAL;
			}
			return set_str(&c->target, argv[2]);
		}
		if (strcmp(sub, "help") == 0) {
			c->cmd = LCFG_HELP;
			return 0;
		}
	}
	(void)first;
	optind = 1;
	opterr = 0;
	for (;;) {
		int idx = 0;
		/* '+': stop at the first non-option so "-- cmd" and a bare
		 * command word are both left for us. */
		int o = getopt_long(argc, argv, "+hv", long_opts, &idx);
		if (o == -1)
			break;
		int rc = 0;
		switch (o) {
		case 'h':
		case O_HELP:
			c->cmd = LCFG_HELP;
			return 0;
		case O_VERSION:
			c->cmd = LCFG_VERSION;
			return 0;
		case O_BUILD:
			c->build = true;
			c->build_set = 1;
			break;
		case O_DETACH:
			c->detach = true;
			c->detach_set = 1;
			break;
		case O_NO_VERIFY:
			c->no_verify = true;
			c->no_verify_set = 1;
			break;
		case O_KEEP:
			c->keep = true;
			c->keep_set = 1;
			break;
		case O_NO_REPO:
			c->no_repo = true;
			break;
		case O_ASK:
			c->ask = true;
			break;
		case O_PUSH_UPSTREAM:
			c->push_upstream = true;
			break;
		case O_PR:
			c->pr = true;
			break;
		case 'v':
		case O_VERBOSE:
			c->verbose = true;
			break;
		case O_TIMINGS:
			c->timings = true;
			break;
		case O_LEARN:
			c->learn = true;
			break;
		case '?':
			if (optopt != 0)
				snprintf(err, errlen,
					 "option '%s' needs a value or is "
					 "unknown",
					 argv[optind - 1]);
			else
				snprintf(err, errlen, "unknown option '%s'",
					 argv[optind - 1]);
			return -EINVAL;
		case ':':
			snprintf(err, errlen, "option '%s' needs a value",
				 argv[optind - 1]);
			return -EINVAL;
		default: {
			char where[64];
			snprintf(where, sizeof where, "--");
			rc = apply_opt(c, o, optarg, where, err, errlen);
			if (rc != 0)
				return rc;
		}
		}
	}
	if (optind < argc) {
		if (optind > 0 && strcmp(argv[optind - 1], "--") == 0) {
			c->command = &argv[optind];
			c->ncommand = (size_t)(argc - optind);
		} else {
			snprintf(err, errlen,
				 "unexpected argument '%s' (put the command "
				 "after --)",
				 argv[optind]);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- config.yaml ---- */

struct key {
	const char *name;
	int opt;
	bool list;
};

static const struct key keys[] = {
    {"agent", O_AGENT, false},
    {"image", O_IMAGE, false},
    {"policy", O_POLICY, false},
    {"container_dir", O_CONTAINER_DIR, false},
    {"ca_bundle", O_CA_BUNDLE, false},
    {"gpu", O_GPU, false},
    {"memory", O_MEMORY, false},
    {"cpus", O_CPUS, false},
    {"hosts", O_HOSTS, false},
    {"dns", O_DNS, false},
    {"upstream", O_UPSTREAM, false},
    {"repos", O_REPO, true},
    {"publish", O_PUBLISH, true},
    {"ssh", O_SSH, false},
    {"build_args", O_BUILD_ARG, true},
    {"probe_allow", O_PROBE_ALLOW, true},
    {"probe_deny", O_PROBE_DENY, true},
};

static yaml_mark_t mark_at(const char *buf, size_t len, size_t off)
{
	yaml_mark_t m = {0, 0, 0};
	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	m.index = off;
	return m;
}

static int yerr(char *err, size_t errlen, const char *name,
		const yaml_mark_t *m, const char *msg, const char *arg)
{
	snprintf(err, errlen, "%s:%zu:%zu: %s%s%s%s", name, m->line + 1,
		 m->column + 1, msg, arg ? " '" : "", arg ? arg : "",
		 arg ? "'" : "");
	return -EINVAL;
}

/* States of a flat document: top mapping -> key -> scalar value or a
 * sequence of scalars. Depth never exceeds 2, so no recursion. */
enum ystate { S_START, S_KEY, S_VALUE, S_SEQ, S_END };

struct ywalk {
	enum ystate st;
	const struct key *cur;
	bool seen[sizeof keys / sizeof keys[0]];
};

/* A scalar is the empty document, a key, or a value of the current key. */
static int on_scalar(struct ywalk *w, const yaml_event_t *ev, struct lcfg *c,
		     const char *name, char *err, size_t errlen)
{
	const yaml_mark_t m = ev->start_mark;
	const char *v = (const char *)ev->data.scalar.value;
	int rc = 0;
	if (strlen(v) != ev->data.scalar.length)
		return yerr(err, errlen, name, &m, "NUL byte in value", NULL);
	if (w->st == S_START) {
		/* An empty document is an empty config. */
		if (*v != '\0')
			rc = yerr(err, errlen, name, &m,
				  "expected a mapping of settings", NULL);
		w->st = S_END;
		return rc;
	}
	if (w->st == S_KEY) {
		w->cur = NULL;
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			if (strcmp(keys[i].name, v) == 0) {
				w->cur = &keys[i];
				if (w->seen[i])
					rc = yerr(err, errlen, name, &m,
						  "duplicate key", v);
				w->seen[i] = true;
			}
		}
		if (w->cur == NULL && rc == 0)
			rc = yerr(err, errlen, name, &m, "unknown key", v);
		w->st = S_VALUE;
		return rc;
	}
	char where[300];
	snprintf(where, sizeof where, "%s:%zu:%zu: ", name, m.line + 1,
		 m.column + 1);
	rc = apply_opt(c, w->cur->opt, v, where, err, errlen);
	if (rc == -E2BIG || rc == -ENOMEM)
		rc = -EINVAL;
	if (w->st == S_VALUE)
		w->st = S_KEY;
	return rc;
}

int lcfg_load_buffer(struct lcfg *c, const char *name, const char *buf,
		     size_t len, char *err, size_t errlen)
{
	yaml_parser_t p;
	yaml_event_t ev;
	if (!yaml_parser_initialize(&p)) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	struct ywalk w = {S_START, NULL, {0}};
	int rc = 0;
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			yaml_mark_t m = p.problem_mark;
			/* The reader (bad UTF-8, control bytes) sets only a
			 * byte offset, not a mark: count the lines up to it. */
			if (p.error == YAML_READER_ERROR)
				m = mark_at(buf, len, p.problem_offset);
			rc = yerr(err, errlen, name, &m,
				  p.problem ? p.problem : "YAML syntax error",
				  NULL);
			break;
		}
		yaml_event_type_t t = ev.type;
		const yaml_mark_t m = ev.start_mark;
		if (t == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		switch (t) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_ALIAS_EVENT:
			rc = yerr(err, errlen, name, &m,
				  "aliases are not supported", NULL);
			break;
		case YAML_MAPPING_START_EVENT:
			if (w.st == S_START)
				w.st = S_KEY;
			else
				rc = yerr(err, errlen, name, &m,
					  w.cur ? "expected a value or a list "
						  "of values for"
						: "unexpected mapping",
					  w.cur ? w.cur->name : NULL);
			break;
		case YAML_MAPPING_END_EVENT:
			w.st = S_END;
			break;
		case YAML_SEQUENCE_START_EVENT:
			if (w.st == S_VALUE && w.cur->list)
				w.st = S_SEQ;
			else
				rc = yerr(err, errlen, name, &m,
					  w.st == S_VALUE
					      ? "expected one value, not a "
						"list, for"
					      : "unexpected list",
					  w.st == S_VALUE ? w.cur->name : NULL);
			break;
		case YAML_SEQUENCE_END_EVENT:
			w.st = S_KEY;
			break;
		case YAML_SCALAR_EVENT:
			rc = on_scalar(&w, &ev, c, name, err, errlen);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (rc != 0)
			break;
	}
	yaml_parser_delete(&p);
	return rc;
}

int lcfg_load_file(struct lcfg *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	/* A config file is small; cap it so a wrong path to a huge file
	 * fails fast. */
	char *buf = malloc(1 << 20);
	if (buf == NULL) {
		(void)fclose(f); /* only read */
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	size_t n = fread(buf, 1, 1 << 20, f);
	int bad = ferror(f) || (n == 1 << 20);
	(void)fclose(f); /* only read; ferror above caught read errors */
	if (bad) {
		free(buf);
		snprintf(err, errlen, "%s: unreadable or larger than 1 MiB",
			 path);
		return -EINVAL;
	}
	int rc = lcfg_load_buffer(c, path, buf, n, err, errlen);
	free(buf);
	return rc;
}

static void move_str(char **dst, char **src)
{
	if (*src != NULL) {
		free(*dst);
		*dst = *src;
		*src = NULL;
	}
}

static void move_list(struct lcfg_list *dst, struct lcfg_list *src)
{
	if (src->n > 0) {
		list_clear(dst);
		*dst = *src;
		src->n = 0;
	}
}

void lcfg_merge(struct lcfg *base, struct lcfg *over)
{
	base->cmd = over->cmd;
	move_str(&base->target, &over->target);
	move_str(&base->config_file, &over->config_file);
	move_str(&base->agent, &over->agent);
	move_str(&base->image, &over->image);
	move_str(&base->policy, &over->policy);
	move_str(&base->container_dir, &over->container_dir);
	move_str(&base->ca_bundle, &over->ca_bundle);
	move_str(&base->gpu, &over->gpu);
	move_str(&base->name, &over->name);
	move_str(&base->hosts, &over->hosts);
	move_str(&base->dns, &over->dns);
	move_str(&base->upstream, &over->upstream);
	if (over->memory)
		base->memory = over->memory;
	if (over->nano_cpus)
		base->nano_cpus = over->nano_cpus;
	move_list(&base->repos, &over->repos);
	move_list(&base->build_args, &over->build_args);
	move_list(&base->probe_allow, &over->probe_allow);
	move_list(&base->probe_deny, &over->probe_deny);
	if (over->npublish) {
		memcpy(base->publish, over->publish, sizeof base->publish);
		base->npublish = over->npublish;
	}
	if (over->build_set)
		base->build = over->build;
	if (over->detach_set)
		base->detach = over->detach;
	if (over->no_verify_set)
		base->no_verify = over->no_verify;
	if (over->keep_set)
		base->keep = over->keep;
	if (over->timings)
		base->timings = true;
	if (over->no_repo)
		base->no_repo = true;
	if (over->ask)
		base->ask = true;
	if (over->push_upstream)
		base->push_upstream = true;
	if (over->pr)
		base->pr = true;
	if (over->verbose)
		base->verbose = true;
	if (over->ssh_port != 0) {
		base->ssh_port = over->ssh_port;
		memcpy(base->ssh_addr, over->ssh_addr, sizeof base->ssh_addr);
	}
	if (over->command) {
		base->command = over->command;
		base->ncommand = over->ncommand;
	}
}

int lcfg_finish(struct lcfg *c, char *err, size_t errlen)
{
	if ((c->agent == NULL && set_str(&c->agent, "claude") != 0) ||
	    (c->image == NULL &&
	     set_str(&c->image, "agentsafe-agent:latest") != 0) ||
	    (c->gpu == NULL && set_str(&c->gpu, "auto") != 0)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* The options of the session's mode and output, and --help/--version. */
static void usage_modes(FILE *f)
{
	(void)fputs(
	    "  --learn              learn mode: names the policy does not "
	    "list\n"
	    "                       are let through and recorded "
	    "(would_deny);\n"
	    "                       denies, private addresses and SNI "
	    "still\n"
	    "                       hold; the end prints `log suggest`\n"
	    "  --no-repo            start with no repo mounted (without it, "
	    "a\n"
	    "                       start outside a git repo is refused)\n"
	    "  -v, --verbose        show the image build's every line (by "
	    "default\n"
	    "                       one live status line; the whole output "
	    "is in\n"
	    "                       $XDG_STATE_HOME/agentsafe/build.log, "
	    "shown\n"
	    "                       on failure)\n"
	    "  --timings            print how long each launch phase took "
	    "(ms)\n"
	    "  --help               this text\n"
	    "  --version            print the version and exit\n"
	    "\n",
	    f);
}

/* The part of the usage after the options: what a session does. */
static void usage_notes(FILE *f)
{
	(void)fputs(
	    "Self-verification: before the command runs, the agent's own "
	    "container\n"
	    "runs a probe that checks that DNS does not resolve, that a "
	    "direct\n"
	    "connection to the gateway (and to each --probe-allow target "
	    "whose\n"
	    "address the --hosts file gives) is dropped (proven by the "
	    "fence's\n"
	    "drop records), that each --probe-allow target answers CONNECT "
	    "with\n"
	    "200 and each --probe-deny target with 403 (proven by the "
	    "proxy's\n"
	    "records). On failure the session does not start.\n"
	    "\n"
	    "config.yaml keys: agent, image, policy, container_dir, "
	    "ca_bundle,\n"
	    "gpu, memory, cpus, hosts, dns, ssh, upstream (values); repos, "
	    "publish, "
	    "build_args,\n"
	    "probe_allow, probe_deny (lists). Flags override the file.\n"
	    "\n"
	    "Files: session state and egress.log in\n"
	    "$XDG_STATE_HOME/agentsafe/sessions/<id>/, clones in\n"
	    "$XDG_CACHE_HOME/agentsafe/sessions/<id>/. The host repo only "
	    "gains\n"
	    "branch agentsafe/<id> when the agent committed.\n"
	    "\n"
	    "Exit status: the command's; 125 when the launcher itself failed\n"
	    "(including a failed self-verification) or the command line is "
	    "wrong,\n"
	    "124 when the session's commits could not be brought back into "
	    "a\n"
	    "host repo (they stay in the kept clone), 123 when a "
	    "--push-upstream\n"
	    "or --pr forward failed (reported at the end), 128+N when the "
	    "launcher\n"
	    "was stopped by signal N.\n"
	    "\n"
	    "Privilege: run as root, or install with\n"
	    "  sudo setcap cap_net_admin+p $(command -v agentsafe-launch)\n"
	    "and be in the docker group: CAP_NET_ADMIN is raised only around "
	    "the\n"
	    "nftables/NFLOG setup and then dropped; the proxy and the "
	    "container\n"
	    "never hold capabilities.\n",
	    f);
}

void lcfg_usage(FILE *f)
{
	/* Help text: a failed write has nowhere better to be reported. */
	(void)fputs(
	    "usage: agentsafe-launch [OPTIONS] [-- COMMAND...]\n"
	    "       agentsafe-launch attach NAME | stop NAME | ls\n"
	    "\n"
	    "Start a fenced session for a coding agent: per-session git "
	    "clones\n"
	    "of the repos, a private Docker network whose only way out is\n"
	    "agentsafe-proxy (every decision in egress.log), an nftables "
	    "fence\n"
	    "that drops and logs everything else, and a container with no\n"
	    "capabilities. The exit code is the command's.\n"
	    "\n"
	    "  --agent claude|codex|shell  what to run (default claude);\n"
	    "                       `-- COMMAND...` runs that instead\n"
	    "  --repo PATH          mount a per-session clone of this repo at\n"
	    "                       /work/<name> (repeatable; default: the "
	    "git\n"
	    "                       repo containing the current directory)\n"
	    "  --policy FILE        egress policy (default\n"
	    "                       $XDG_CONFIG_HOME/agentsafe/policy.yaml, "
	    "created\n"
	    "                       from the installed example on first run)\n"
	    "  --config FILE        settings file (default\n"
	    "                       $XDG_CONFIG_HOME/agentsafe/config.yaml)\n"
	    "  --image NAME         agent image (default "
	    "agentsafe-agent:latest)\n"
	    "  --build              (re)build the image from the container "
	    "dir\n"
	    "                       (also done when the image is missing)\n"
	    "  --build-arg K=V      extra build argument (repeatable; "
	    "USER_UID\n"
	    "                       and USER_GID are always passed)\n"
	    "  --container-dir DIR  build context (default "
	    "$AGENTSAFE_CONTAINER_DIR,\n"
	    "                       else <prefix>/share/agentsafe/container)\n"
	    "  --ca-bundle FILE     extra CA bundle: built into the image as\n"
	    "                       extra-ca.pem (build arg EXTRA_CA) and "
	    "mounted\n"
	    "                       read-only at /run/agentsafe/extra-ca.pem\n"
	    "  --gpu auto|all|none|ID,...  NVIDIA GPUs (default auto: all "
	    "when\n"
	    "                       /dev/nvidiactl exists and the engine has "
	    "the\n"
	    "                       nvidia runtime or CDI)\n"
	    "  --memory SIZE        memory limit (e.g. 8g)\n"
	    "  --cpus N             CPU limit (e.g. 2 or 1.5)\n"
	    "  --publish [ADDR:]PORT[-PORT]  publish container TCP ports on "
	    "the\n"
	    "                       same host ports, on 127.0.0.1 unless ADDR "
	    "names\n"
	    "                       another IPv4 address (0.0.0.0, a LAN "
	    "address:\n"
	    "                       warned about, recorded) (repeatable)\n"
	    "  --ssh [ADDR:]PORT    long-lived mode: sshd in the container\n"
	    "                       (key-only, as the agent user) on\n"
	    "                       ADDR:PORT (default 127.0.0.1); keys from\n"
	    "                       "
	    "$XDG_CONFIG_HOME/agentsafe/authorized_keys,\n"
	    "                       else ~/.ssh/*.pub; the image gets sshd\n"
	    "                       (build arg WITH_SSHD=1)\n"
	    "  --detach             start in the background; later `attach "
	    "NAME`,\n"
	    "                       `stop NAME`, `ls`\n"
	    "  --name NAME          session name, also the container's: 2-64 "
	    "of\n"
	    "                       [a-zA-Z0-9_.-], alphanumeric first "
	    "(default\n"
	    "                       agentsafe-<id>)\n"
	    "  --hosts FILE         passed to agentsafe-proxy: resolve names "
	    "from\n"
	    "                       this hosts file only\n"
	    "  --dns ADDR[:PORT]    passed to agentsafe-proxy: use this DNS "
	    "server\n",
	    f);
	(void)fputs(
	    "  --upstream REMOTE    before each fetch through the git broker,\n"
	    "                       `git fetch REMOTE` in the host repo with "
	    "your\n"
	    "                       credentials; inside, `git fetch "
	    "upstream`\n"
	    "                       brings its branches as upstream/*\n"
	    "  --push-upstream      with --upstream: each ref the agent "
	    "pushes\n"
	    "                       (agentsafe/<id>...) is pushed on to "
	    "REMOTE\n"
	    "                       from the host repo, with your credentials\n"
	    "  --pr                 with --push-upstream: a draft GitHub pull\n"
	    "                       request for each new branch pushed on, "
	    "with\n"
	    "                       the host's token ($AGENTSAFE_GITHUB_TOKEN, "
	    "else\n"
	    "                       `gh auth token`; API: "
	    "$AGENTSAFE_GITHUB_API)\n"
	    "  --probe-allow HOST[:PORT]  must be reachable through the proxy\n"
	    "                       (repeatable; default port 443)\n"
	    "  --probe-deny HOST[:PORT]   must get 403 from the proxy "
	    "(repeatable)\n"
	    "  --no-verify          skip the self-verification probe (NOT SAFE "
	    "to\n"
	    "                       rely on: the fence is then unproven)\n"
	    "  --keep               keep session clones even when clean\n"
	    "  --ask                hosts no rule names wait for agentsafe "
	    "approve\n"
	    "                       (as the policy's unknown: ask)\n",
	    f);
	usage_modes(f);
	usage_notes(f);
}
