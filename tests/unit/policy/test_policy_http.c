/* Request rules of inspected tunnels: loading `inspect` and `http` (errors
 * at FILE:LINE:COL), first-match-wins decisions, `*` kept inside one
 * segment, `**` across segments, the query ignored, paths a server would
 * read differently refused, and the explanation naming the entry's line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

static const char pol_text[] =
    "version: 1\n"
    "allow:\n"
    "  - host: git.example.test\n"
    "    inspect: true\n"
    "    http:\n"
    "      - methods: [GET, HEAD]\n"
    "        paths: [\"/me/*/info/refs\", \"/pub/**\"]\n"
    "      - methods: [POST]\n"
    "        paths: [\"/me/*/git-upload-pack\", "
    "\"/me/allowed/git-receive-pack\"]\n"
    "      - methods: [DELETE]\n"
    "        paths: [\"/tmp/*.txt\"]\n"
    "  - host: '*.open.test'\n"
    "    inspect: true\n"
    "  - plain.test\n";

static struct policy *load(void)
{
	char err[POLICY_ERR_MAX] = "";
	struct policy *p = NULL;
	int rc = policy_load_string("p.yaml", pol_text, strlen(pol_text), &p,
				    err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	return p;
}

static const char *decide(struct policy *p, const char *host,
			  const char *method, const char *path,
			  const char **rule)
{
	struct policy_http_decision d;
	assert_int_equal(policy_http_match(p, host, 443, method, path, &d), 0);
	if (rule != NULL)
		*rule = d.rule;
	return d.reason;
}

static void first_match_wins_with_lines(void **state)
{
	(void)state;
	struct policy *p = load();
	const char *rule = NULL;
	assert_string_equal(decide(p, "git.example.test", "GET",
				   "/me/repo/info/refs?service=x", &rule),
			    "allowed");
	assert_string_equal(rule,
			    "GET,HEAD /me/*/info/refs,/pub/** (p.yaml:6)");
	assert_string_equal(decide(p, "git.example.test", "POST",
				   "/me/repo/git-upload-pack", &rule),
			    "allowed");
	assert_string_equal(
	    rule, "POST /me/*/git-upload-pack,/me/allowed/git-receive-pack "
		  "(p.yaml:8)");
	assert_string_equal(decide(p, "git.example.test", "POST",
				   "/me/repo/git-receive-pack", NULL),
			    "path_not_allowed");
	assert_string_equal(decide(p, "git.example.test", "POST",
				   "/me/allowed/git-receive-pack", NULL),
			    "allowed");
	assert_string_equal(
	    decide(p, "git.example.test", "PUT", "/pub/a", NULL),
	    "method_not_allowed");
	/* Methods are case-sensitive tokens (RFC 9110 9.1). */
	assert_string_equal(
	    decide(p, "git.example.test", "get", "/pub/a", NULL),
	    "method_not_allowed");
	policy_unref(p);
}

static void star_stays_in_one_segment(void **state)
{
	(void)state;
	struct policy *p = load();
	assert_string_equal(
	    decide(p, "git.example.test", "GET", "/me/a/b/info/refs", NULL),
	    "path_not_allowed");
	assert_string_equal(
	    decide(p, "git.example.test", "GET", "/me/info/refs", NULL),
	    "path_not_allowed");
	assert_string_equal(
	    decide(p, "git.example.test", "DELETE", "/tmp/a.txt", NULL),
	    "allowed");
	assert_string_equal(
	    decide(p, "git.example.test", "DELETE", "/tmp/a/b.txt", NULL),
	    "path_not_allowed");
	assert_string_equal(
	    decide(p, "git.example.test", "DELETE", "/tmp/a.txt/x", NULL),
	    "path_not_allowed");
	/* `**` spans zero or more segments. */
	assert_string_equal(decide(p, "git.example.test", "GET", "/pub", NULL),
			    "allowed");
	assert_string_equal(
	    decide(p, "git.example.test", "GET", "/pub/a/b/c/d", NULL),
	    "allowed");
	assert_string_equal(
	    decide(p, "git.example.test", "GET", "/public", NULL),
	    "path_not_allowed");
	policy_unref(p);
}

static void ambiguous_paths_refused(void **state)
{
	(void)state;
	struct policy *p = load();
	static const char *const bad[] = {
	    "/pub/../me/x/git-receive-pack",
	    "/pub/./a",
	    "/pub/a%2f..%2fb",
	    "/pub/a%2Fb",
	    "/pub/%2e%2e/me",
	    "/pub/a\\b",
	    "pub/a",
	    "*",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_string_not_equal(
		    decide(p, "git.example.test", "GET", bad[i], NULL),
		    "allowed");
	/* An ordinary escape stays allowed. */
	assert_string_equal(
	    decide(p, "git.example.test", "GET", "/pub/a%20b", NULL),
	    "allowed");
	policy_unref(p);
}

static void no_http_list_allows_any_request(void **state)
{
	(void)state;
	struct policy *p = load();
	struct policy_http_decision d;
	policy_http_match(p, "x.open.test", 443, "DELETE", "/a/b", &d);
	assert_string_equal(d.reason, "allowed");
	assert_true(d.inspect);
	policy_http_match(p, "plain.test", 443, "GET", "/", &d);
	assert_string_equal(d.reason, "allowed");
	assert_false(d.inspect);
	policy_http_match(p, "other.test", 443, "GET", "/", &d);
	assert_string_equal(d.reason, "not_allowed");
	const char *hosts[4];
	assert_int_equal(policy_inspect_hosts(p, hosts, 4), 2);
	assert_string_equal(hosts[0], "git.example.test");
	assert_string_equal(hosts[1], "*.open.test");
	policy_unref(p);
}

static void explain_names_the_entry_line(void **state)
{
	(void)state;
	struct policy *p = load();
	char buf[2048];
	assert_int_equal(
	    policy_explain_request(p, "git.example.test", 443, "POST",
				   "/me/x/git-receive-pack", buf, sizeof buf),
	    0);
	assert_non_null(strstr(buf, "http:    DENY path_not_allowed"));
	assert_int_equal(policy_explain_request(p, "git.example.test", 443,
						"POST", "/me/x/git-upload-pack",
						buf, sizeof buf),
			 0);
	assert_non_null(strstr(buf, "(p.yaml:8)"));
	assert_non_null(strstr(buf, "inspect: yes"));
	policy_unref(p);
}

struct ecase {
	const char *text;
	const char *err;
};

static const struct ecase ecases[] = {
    {"version: 1\nallow:\n  - host: a.test\n    http: [{methods: [GET]}]\n",
     "e.yaml:4:11: 'http' rules need 'inspect: true' on the rule (without "
     "inspection the proxy cannot see requests)"},
    {"version: 1\ndeny:\n  - host: a.test\n    inspect: true\n",
     "e.yaml:4:14: 'inspect' and 'http' only apply to allow rules"},
    {"version: 1\nallow:\n  - host: 10.0.0.0/8\n    inspect: true\n",
     "e.yaml:4:14: 'inspect: true' needs a host name rule that keeps TLS "
     "(not an IP/CIDR rule, not tls: false)"},
    {"version: 1\nallow:\n  - host: a.test\n    tls: false\n    inspect: "
     "true\n",
     "e.yaml:5:14: 'inspect: true' needs a host name rule that keeps TLS "
     "(not an IP/CIDR rule, not tls: false)"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: yes\n",
     "e.yaml:4:14: inspect must be true or false, got 'yes'"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - methods: [get]\n",
     "e.yaml:6:19: bad methods entry 'get': a method is 1..20 upper-case "
     "letters (GET, POST)"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - paths: [\"a/b\"]\n",
     "e.yaml:6:17: bad paths entry 'a/b': a path must start with '/'"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - paths: [\"/a**\"]\n",
     "e.yaml:6:17: bad paths entry '/a**': '**' must be a whole segment "
     "(\"/a/**/b\")"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - paths: [\"/a?x=1\"]\n",
     "e.yaml:6:17: bad paths entry '/a?x=1': a path may not hold spaces, "
     "controls, '?' or '#' (the query is not matched)"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - method: [GET]\n",
     "e.yaml:6:9: unknown key 'method' in an http entry (expected methods, "
     "paths, websocket)"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - paths: [\"/ws\"]\n        websocket: yes\n",
     "e.yaml:7:20: websocket must be true or false, got 'yes'"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - paths: [\"/ws\"]\n        websocket: \"true\"\n",
     "e.yaml:7:20: websocket must be true or false, got 'true'"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - paths: [\"/ws\"]\n        websocket: [true]\n",
     "e.yaml:7:20: websocket must be true or false, got 'a list'"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - methods: [POST]\n        websocket: true\n",
     "e.yaml:7:20: websocket: true needs GET among the entry's methods (a "
     "WebSocket handshake is a GET)"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - paths: [\"/ws\"]\n        websocket: true\n"
     "        websocket: false\n",
     "e.yaml:8:9: duplicate key 'websocket'"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - websocket: true\n",
     "e.yaml:6:9: an http entry needs methods or paths"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http: "
     "[]\n",
     "e.yaml:5:11: 'http' must list 1..1000 entries"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    http:\n"
     "      - methods: []\n",
     "e.yaml:6:18: 'methods' must be a non-empty list, not a list"},
    {"version: 1\ncredentials:\n  T:\n    env: X\n    file: /f\n    "
     "hosts: [a.test]\n    placeholder: true\n",
     "e.yaml:5:5: a credential has one source: env, file or command"},
    {"version: 1\ncredentials:\n  T:\n    env: X\n    placeholder: true\n",
     "e.yaml:3:3: credential 'T' is bound to no host: give it hosts: or name "
     "it in an inspected rule's credential:"},
    {"version: 1\nallow:\n  - host: a.test\n    inspect: true\n    "
     "credential: NOPE\n",
     "e.yaml:5:17: unknown credential 'NOPE' (not in credentials:)"},
    {"version: 1\nallow:\n  - host: a.test\n    credential: T\n"
     "credentials:\n  T:\n    env: X\n    placeholder: true\n",
     "e.yaml:4:17: 'credential' needs 'inspect: true' on the rule"},
    {"version: 1\ncredentials:\n  T:\n    env: X\n    hosts: [a.test]\n",
     "e.yaml:4:5: credential 'T' needs a use (header, basic or "
     "placeholder: true)"},
    {"version: 1\ncredentials:\n  T:\n    env: X\n    hosts: [a.test]\n"
     "    header: \"Authorization Bearer {}\"\n",
     "e.yaml:6:13: header must be \"Name: value\" with one {} where the "
     "secret goes"},
    {"version: 1\ncredentials:\n  T:\n    env: X\n    hosts: [A.test]\n"
     "    placeholder: true\n",
     "e.yaml:5:13: bad hosts entry 'A.test': write the host in its normal "
     "form 'a.test'"},
    {"version: 1\ncredentials:\n  bad-name:\n    env: X\n",
     "e.yaml:3:3: a credential name is letters, digits and '_' (at most 64, "
     "not starting with a digit)"},
    {"version: 1\ncredentials:\n  T:\n    env: X\n    hosts: [a.test]\n"
     "    placeholder: true\n    secret: abc\n",
     "e.yaml:7:5: unknown key 'secret' in a credential (expected env, file, "
     "command, hosts, header, basic, placeholder)"},
};

static void credentials_load(void **state)
{
	(void)state;
	static const char text[] =
	    "version: 1\ncredentials:\n  GH:\n    command: gh auth token\n"
	    "    hosts: [github.test, \"*.api.test\"]\n"
	    "    header: \"Authorization: Bearer {}\"\n"
	    "    placeholder: true\n";
	char err[POLICY_ERR_MAX] = "";
	struct policy *p = NULL;
	assert_int_equal(policy_load_string("c.yaml", text, strlen(text), &p,
					    err, sizeof err),
			 0);
	assert_int_equal(policy_credential_count(p), 1);
	const struct policy_credential *c = policy_credential_at(p, 0);
	assert_string_equal(c->name, "GH");
	assert_int_equal(c->source, POLICY_CRED_COMMAND);
	assert_string_equal(c->from, "gh auth token");
	assert_true(c->placeholder);
	assert_int_equal(c->line, 3);
	assert_true(policy_credential_bound(c, "github.test"));
	assert_true(policy_credential_bound(c, "x.api.test"));
	assert_false(policy_credential_bound(c, "api.test"));
	assert_false(policy_credential_bound(c, "github.test.evil.test"));
	assert_false(policy_credential_bound(c, "xapi.test"));
	policy_unref(p);
	/* A rule's `credential:` binds its host (the credential may come
	 * later in the file). */
	static const char text2[] =
	    "version: 1\nallow:\n  - host: \"*.r.test\"\n    inspect: true\n"
	    "    credential: R\ncredentials:\n  R:\n    env: X\n"
	    "    placeholder: true\n";
	assert_int_equal(policy_load_string("c.yaml", text2, strlen(text2), &p,
					    err, sizeof err),
			 0);
	c = policy_credential_at(p, 0);
	assert_int_equal(c->nhosts, 1);
	assert_string_equal(c->hosts[0], "*.r.test");
	assert_true(policy_credential_bound(c, "a.r.test"));
	policy_unref(p);
}

/* `websocket: true` on an http entry: only the deciding entry's flag
 * counts (first match wins), false without an http: list, and explain
 * says which. */
static void websocket_flag_of_the_deciding_entry(void **state)
{
	(void)state;
	static const char text[] =
	    "version: 1\nallow:\n  - host: ws.test\n    inspect: true\n"
	    "    http:\n"
	    "      - methods: [GET]\n        paths: [\"/ws/**\"]\n"
	    "        websocket: true\n"
	    "      - methods: [GET, POST]\n        paths: [\"/**\"]\n"
	    "      - paths: [\"/any/*\"]\n        websocket: false\n"
	    "  - host: open.test\n    inspect: true\n";
	char err[POLICY_ERR_MAX] = "";
	struct policy *p = NULL;
	assert_int_equal(policy_load_string("w.yaml", text, strlen(text), &p,
					    err, sizeof err),
			 0);
	struct policy_http_decision d;
	policy_http_match(p, "ws.test", 443, "GET", "/ws/chat?x=1", &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_true(d.websocket);
	assert_string_equal(d.rule, "GET /ws/** (w.yaml:6)");
	/* /wsx is not under /ws/: the second entry decides, without it. */
	policy_http_match(p, "ws.test", 443, "GET", "/wsx/chat", &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_false(d.websocket);
	policy_http_match(p, "ws.test", 443, "POST", "/ws/chat", &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_false(d.websocket);
	policy_http_match(p, "ws.test", 443, "DELETE", "/ws/chat", &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	assert_false(d.websocket);
	/* No http: list: any request, but no upgrade. */
	policy_http_match(p, "open.test", 443, "GET", "/ws/chat", &d);
	assert_int_equal(d.verdict, POLICY_ALLOW);
	assert_false(d.websocket);
	char buf[2048];
	assert_int_equal(policy_explain_request(p, "ws.test", 443, "GET",
						"/ws/chat", buf, sizeof buf),
			 0);
	assert_non_null(strstr(buf, "websocket: yes"));
	assert_int_equal(policy_explain_request(p, "ws.test", 443, "GET",
						"/other", buf, sizeof buf),
			 0);
	assert_non_null(strstr(buf, "websocket: no"));
	assert_int_equal(policy_explain_request(p, "open.test", 443, "GET",
						"/ws/chat", buf, sizeof buf),
			 0);
	assert_non_null(strstr(buf, "websocket: no"));
	policy_unref(p);
}

static void load_errors_name_the_node(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof ecases / sizeof ecases[0]; i++) {
		char err[POLICY_ERR_MAX] = "";
		struct policy *p = NULL;
		int rc = policy_load_string("e.yaml", ecases[i].text,
					    strlen(ecases[i].text), &p, err,
					    sizeof err);
		if (rc == 0 || strcmp(err, ecases[i].err) != 0)
			fprintf(stderr, "case %zu: got '%s'\n", i, err);
		assert_int_not_equal(rc, 0);
		assert_null(p);
		assert_string_equal(err, ecases[i].err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(first_match_wins_with_lines),
	    cmocka_unit_test(star_stays_in_one_segment),
	    cmocka_unit_test(ambiguous_paths_refused),
	    cmocka_unit_test(no_http_list_allows_any_request),
	    cmocka_unit_test(explain_names_the_entry_line),
	    cmocka_unit_test(load_errors_name_the_node),
	    cmocka_unit_test(websocket_flag_of_the_deciding_entry),
	    cmocka_unit_test(credentials_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
