/* agentsafe-launch options: config.yaml parsing with FILE:LINE:COL errors,
 * flag parsing, and flags overriding the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lcfg.h"

static int load(struct lcfg *c, const char *text, char *err, size_t errlen)
{
	lcfg_init(c);
	return lcfg_load_buffer(c, "cfg.yaml", text, strlen(text), err, errlen);
}

static void expect_err(const char *text, const char *needle)
{
	struct lcfg c;
	char err[512] = "";
	assert_int_equal(load(&c, text, err, sizeof err), -EINVAL);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	lcfg_free(&c);
}

static void config_file_values_are_read(void **state)
{
	(void)state;
	struct lcfg c;
	char err[512] = "";
	const char *y = "image: my-agent:1\n"
			"agent: codex\n"
			"gpu: none\n"
			"memory: 4g\n"
			"cpus: 1.5\n"
			"publish: [8000-8099, 2222]\n"
			"repos:\n  - /src/a\n  - /src/b\n"
			"probe_allow: [allowed.test, 'other.test:8443']\n"
			"probe_deny: [denied.test]\n"
			"build_args: [HTTP_MIRROR=x]\n";
	assert_int_equal(load(&c, y, err, sizeof err), 0);
	assert_string_equal(c.image, "my-agent:1");
	assert_string_equal(c.agent, "codex");
	assert_string_equal(c.gpu, "none");
	assert_int_equal(c.memory, 4LL << 30);
	assert_int_equal(c.nano_cpus, 1500000000LL);
	assert_int_equal(c.npublish, 2);
	assert_int_equal(c.publish[0].first, 8000);
	assert_int_equal(c.publish[0].last, 8099);
	assert_int_equal(c.publish[1].first, 2222);
	assert_int_equal(c.repos.n, 2);
	assert_string_equal(c.repos.v[1], "/src/b");
	assert_int_equal(c.probe_allow.n, 2);
	assert_string_equal(c.probe_deny.v[0], "denied.test");
	assert_string_equal(c.build_args.v[0], "HTTP_MIRROR=x");
	lcfg_free(&c);
}

static void empty_config_is_valid(void **state)
{
	(void)state;
	struct lcfg c;
	char err[256] = "";
	assert_int_equal(load(&c, "", err, sizeof err), 0);
	lcfg_free(&c);
	assert_int_equal(load(&c, "# only a comment\n", err, sizeof err), 0);
	lcfg_free(&c);
}

static void config_errors_name_file_line_col(void **state)
{
	(void)state;
	expect_err("image: x\nbogus: 1\n", "cfg.yaml:2:1: unknown key 'bogus'");
	expect_err("image: x\nmemory: lots\n", "cfg.yaml:2:9: memory 'lots'");
	expect_err("agent: vim\n", "cfg.yaml:1:8: agent 'vim'");
	expect_err("publish: [80-20]\n", "cfg.yaml:1:11: publish '80-20'");
	expect_err("image: [a, b]\n", "cfg.yaml:1:8: expected one value");
	expect_err("repos: {a: b}\n", "cfg.yaml:1:8: expected a value");
	expect_err("image: a\nimage: b\n", "cfg.yaml:2:1: duplicate key");
	expect_err("image: \"unterminated\n", "cfg.yaml:");
	/* errors in mid-line: the column counts from the line's start */
	expect_err("image: x\ncpus: 1: 2\n", "cfg.yaml:2:8: ");
	expect_err("image: x\nagent: \"sh\xff\"\n", "cfg.yaml:2:11: ");
	expect_err("image: x\nagent: sh\x01\n", "cfg.yaml:2:10: ");
	expect_err("- a\n- b\n", "cfg.yaml:1:1: unexpected list");
	expect_err("probe_allow: ['bad host;rm']\n", "probe-allow");
	expect_err("cpus: 0\n", "cpus '0'");
	expect_err("memory: 1m\n", "at least 6m");
	expect_err("a: &x 1\nimage: *x\n", "");
}

static void value_parsers(void **state)
{
	(void)state;
	int64_t v = 0;
	assert_int_equal(lcfg_parse_memory("512m", &v), 0);
	assert_int_equal(v, 512LL << 20);
	assert_int_equal(lcfg_parse_memory("8GB", &v), 0);
	assert_int_equal(v, 8LL << 30);
	assert_int_equal(lcfg_parse_memory("7000000", &v), 0);
	assert_int_not_equal(lcfg_parse_memory("-1g", &v), 0);
	assert_int_not_equal(lcfg_parse_memory("99999999999999t", &v), 0);
	assert_int_equal(lcfg_parse_cpus(".5", &v), 0);
	assert_int_equal(v, 500000000);
	assert_int_not_equal(lcfg_parse_cpus("1.0000000001", &v), 0);
	assert_int_not_equal(lcfg_parse_cpus("1e3", &v), 0);
	struct lcfg_ports p;
	assert_int_not_equal(lcfg_parse_ports("0", &p), 0);
	assert_int_not_equal(lcfg_parse_ports("65536", &p), 0);
	assert_int_not_equal(lcfg_parse_ports("80-", &p), 0);
	assert_int_equal(lcfg_parse_ports("65535", &p), 0);
	char h[64];
	uint16_t port = 0;
	assert_int_equal(
	    lcfg_parse_target("a.test:8443", h, sizeof h, &port, 443), 0);
	assert_string_equal(h, "a.test");
	assert_int_equal(port, 8443);
	assert_int_equal(lcfg_parse_target("a.test", h, sizeof h, &port, 443),
			 0);
	assert_int_equal(port, 443);
	assert_int_not_equal(lcfg_parse_target("$(x)", h, sizeof h, &port, 443),
			     0);
	assert_int_not_equal(lcfg_parse_target(":1", h, sizeof h, &port, 443),
			     0);
}

static void flags_parse_and_override_file(void **state)
{
	(void)state;
	char *argv[] = {"agentsafe-launch",
			"--image",
			"flag-image",
			"--gpu=0,1",
			"--publish",
			"3000",
			"--repo",
			"/r1",
			"--repo",
			"/r2",
			"--detach",
			"--name",
			"s1",
			"--no-verify",
			"--probe-deny",
			"bad.test:80",
			"--",
			"sh",
			"-c",
			"exit 3",
			NULL};
	int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
	struct lcfg a, f;
	char err[256] = "";
	lcfg_init(&a);
	assert_int_equal(lcfg_parse_args(&a, argc, argv, err, sizeof err), 0);
	assert_int_equal(a.cmd, LCFG_RUN);
	assert_int_equal(a.ncommand, 3);
	assert_string_equal(a.command[2], "exit 3");
	assert_true(a.detach);
	assert_true(a.no_verify);
	assert_int_equal(load(&f,
			      "image: file-image\nagent: codex\n"
			      "repos: [/x]\nmemory: 1g\n",
			      err, sizeof err),
			 0);
	lcfg_merge(&f, &a);
	assert_int_equal(lcfg_finish(&f, err, sizeof err), 0);
	assert_string_equal(f.image, "flag-image");
	assert_string_equal(f.agent, "codex"); /* file value stays */
	assert_string_equal(f.gpu, "0,1");
	assert_int_equal(f.repos.n, 2); /* flags replace the file's list */
	assert_string_equal(f.repos.v[0], "/r1");
	assert_int_equal(f.memory, 1LL << 30);
	assert_string_equal(f.name, "s1");
	lcfg_free(&a);
	lcfg_free(&f);

	struct lcfg d;
	lcfg_init(&d);
	char *argv2[] = {"agentsafe-launch", NULL};
	assert_int_equal(lcfg_parse_args(&d, 1, argv2, err, sizeof err), 0);
	assert_int_equal(lcfg_finish(&d, err, sizeof err), 0);
	assert_string_equal(d.agent, "claude");
	assert_string_equal(d.image, "agentsafe-agent:latest");
	assert_string_equal(d.gpu, "auto");
	assert_null(d.command);
	lcfg_free(&d);
}

static void flag_errors_and_subcommands(void **state)
{
	(void)state;
	char err[256] = "";
	struct lcfg c;
	char *bad1[] = {"x", "--agent", "vim", NULL};
	char *bad2[] = {"x", "--frobnicate", NULL};
	char *bad3[] = {"x", "sh", NULL};
	char *bad4[] = {"x", "--name", "a b", NULL};
	char *bad5[] = {"x", "--build-arg", "NOEQUALS", NULL};
	char **bads[] = {bad1, bad2, bad3, bad4, bad5};
	const char *needles[] = {"agent 'vim'", "--frobnicate", "after --",
				 "name 'a b'", "KEY=VALUE"};
	for (size_t i = 0; i < 5; i++) {
		int argc = 0;
		while (bads[i][argc])
			argc++;
		lcfg_init(&c);
		assert_int_equal(
		    lcfg_parse_args(&c, argc, bads[i], err, sizeof err),
		    -EINVAL);
		if (strstr(err, needles[i]) == NULL)
			fail_msg("'%s' lacks '%s'", err, needles[i]);
		lcfg_free(&c);
	}
	char *at[] = {"x", "attach", "s1", NULL};
	lcfg_init(&c);
	assert_int_equal(lcfg_parse_args(&c, 3, at, err, sizeof err), 0);
	assert_int_equal(c.cmd, LCFG_ATTACH);
	assert_string_equal(c.target, "s1");
	lcfg_free(&c);
	char *ls[] = {"x", "ls", NULL};
	lcfg_init(&c);
	assert_int_equal(lcfg_parse_args(&c, 2, ls, err, sizeof err), 0);
	assert_int_equal(c.cmd, LCFG_LS);
	lcfg_free(&c);
	char *st[] = {"x", "stop", NULL};
	lcfg_init(&c);
	assert_int_equal(lcfg_parse_args(&c, 2, st, err, sizeof err), -EINVAL);
	lcfg_free(&c);
}

/* Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]+, checked before anything starts. */
static void names_follow_dockers_rule(void **state)
{
	(void)state;
	const char *bad[] = {"a",   "_x",     "-x",  ".x",
			     "x y", "x/../y", "x:1", "\xc3\xa9t\xc3\xa9",
			     ""};
	const char *good[] = {"ab", "a_b.c-d", "0x", "Session.2"};
	char err[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *argv[] = {"x", "--name", (char *)bad[i], NULL};
		struct lcfg c;
		lcfg_init(&c);
		assert_int_equal(lcfg_parse_args(&c, 3, argv, err, sizeof err),
				 -EINVAL);
		assert_non_null(strstr(err, "letter or digit first"));
		lcfg_free(&c);
	}
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char *argv[] = {"x", "--name", (char *)good[i], "--no-repo",
				NULL};
		struct lcfg c;
		lcfg_init(&c);
		assert_int_equal(lcfg_parse_args(&c, 4, argv, err, sizeof err),
				 0);
		assert_string_equal(c.name, good[i]);
		assert_true(c.no_repo);
		lcfg_free(&c);
	}
}

/* --publish/--ssh take an IPv4 bind address; nothing else passes. */
static void bind_addresses_parse(void **state)
{
	(void)state;
	struct lcfg_ports p;
	assert_int_equal(lcfg_parse_bind("8080", &p), 0);
	assert_string_equal(p.addr, "");
	assert_int_equal(lcfg_parse_bind("0.0.0.0:8080-8081", &p), 0);
	assert_string_equal(p.addr, "0.0.0.0");
	assert_int_equal(p.first, 8080);
	assert_int_equal(p.last, 8081);
	assert_int_equal(lcfg_parse_bind("192.168.1.5:22", &p), 0);
	assert_string_equal(p.addr, "192.168.1.5");
	assert_false(lcfg_bind_is_loopback("192.168.1.5"));
	assert_true(lcfg_bind_is_loopback("127.0.0.2"));
	assert_true(lcfg_bind_is_loopback(""));
	const char *bad[] = {":80",	  "host.test:80", "1.2.3:80",
			     "::1:80",	  "1.2.3.4:",	  "1.2.3.4:0",
			     "1.2.3.4:x", "1.2.3.4 :80",  "300.1.1.1:80"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (lcfg_parse_bind(bad[i], &p) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	char err[256];
	char *argv[] = {"x", "--ssh", "10.0.0.1:2222", NULL};
	struct lcfg c;
	lcfg_init(&c);
	assert_int_equal(lcfg_parse_args(&c, 3, argv, err, sizeof err), 0);
	assert_int_equal(c.ssh_port, 2222);
	assert_string_equal(c.ssh_addr, "10.0.0.1");
	lcfg_free(&c);
}

/* --ask is a flag only: it must reach the merged configuration the
 * session uses (a file without it must not drop it). */
static void ask_flag_survives_the_merge(void **state)
{
	(void)state;
	char *argv[] = {"agentsafe-launch", "--ask", NULL};
	struct lcfg a, f;
	char err[256] = "";
	lcfg_init(&a);
	assert_int_equal(lcfg_parse_args(&a, 2, argv, err, sizeof err), 0);
	assert_true(a.ask);
	assert_int_equal(load(&f, "agent: shell\n", err, sizeof err), 0);
	assert_false(f.ask);
	lcfg_merge(&f, &a);
	assert_true(f.ask);
	lcfg_free(&a);
	lcfg_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(config_file_values_are_read),
	    cmocka_unit_test(empty_config_is_valid),
	    cmocka_unit_test(config_errors_name_file_line_col),
	    cmocka_unit_test(value_parsers),
	    cmocka_unit_test(flags_parse_and_override_file),
	    cmocka_unit_test(flag_errors_and_subcommands),
	    cmocka_unit_test(names_follow_dockers_rule),
	    cmocka_unit_test(bind_addresses_parse),
	    cmocka_unit_test(ask_flag_survives_the_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
