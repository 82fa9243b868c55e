/* egress.log records are formatted by hand on the hot path; this proves the
 * lines are exactly what jansson (json_dumps, compact, insertion order) makes
 * of the same fields, for plain, hostile and random strings, and that every
 * line parses back to the fields written. A real log file is written and
 * read back. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "egress_log.h"

/* The reference: the jansson construction the writer used before, with the
 * same fallback for strings jansson rejects (invalid UTF-8). */
static void ref_str(json_t *o, const char *key, const char *v)
{
	if (v == NULL)
		return;
	json_t *s = json_string(v);
	if (s == NULL) {
		size_t n = strlen(v);
		char *safe = malloc(n * 4 + 1);
		assert_non_null(safe);
		size_t j = 0;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)v[i];
			if (c >= 0x20 && c < 0x7f) {
				safe[j++] = (char)c;
			} else {
				snprintf(safe + j, 5, "\\x%02x", c);
				j += 4;
			}
		}
		safe[j] = '\0';
		s = json_string(safe);
		free(safe);
		assert_non_null(s);
	}
	json_object_set_new(o, key, s);
}

static char *reference(const char *ts, const char *session,
		       const struct egress_record *r)
{
	json_t *o = json_object();
	ref_str(o, "ts", ts);
	ref_str(o, "session", session);
	ref_str(o, "id", r->id);
	ref_str(o, "event", r->event);
	ref_str(o, "client", r->client);
	ref_str(o, "method", r->method);
	ref_str(o, "host", r->host);
	if (r->port > 0)
		json_object_set_new(o, "port", json_integer(r->port));
	ref_str(o, "sni", r->sni);
	ref_str(o, "ip", r->ip);
	ref_str(o, "rule", r->rule);
	ref_str(o, "reason", r->reason);
	if (r->bytes_up >= 0)
		json_object_set_new(o, "bytes_up", json_integer(r->bytes_up));
	if (r->bytes_down >= 0)
		json_object_set_new(o, "bytes_down",
				    json_integer(r->bytes_down));
	if (r->duration_ms >= 0)
		json_object_set_new(o, "duration_ms",
				    json_integer(r->duration_ms));
	ref_str(o, "proto", r->proto);
	ref_str(o, "dst", r->dst);
	if (r->dport > 0)
		json_object_set_new(o, "dport", json_integer(r->dport));
	ref_str(o, "message", r->message);
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return line;
}

struct fixture {
	char path[64];
	struct egress_log *log;
	FILE *in;
};

static int setup(void **state)
{
	static struct fixture f;
	snprintf(f.path, sizeof f.path, "/tmp/aslogtest.XXXXXX");
	int fd = mkstemp(f.path);
	assert_true(fd >= 0);
	close(fd);
	char err[256];
	assert_int_equal(
	    egress_log_open(f.path, "sess\"1", &f.log, err, sizeof err), 0);
	f.in = fopen(f.path, "r");
	assert_non_null(f.in);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	egress_log_close(f->log);
	fclose(f->in);
	unlink(f->path);
	return 0;
}

/* Write r, read the line back and compare with jansson's, using the
 * timestamp the writer put in. */
static void check(struct fixture *f, const struct egress_record *r)
{
	assert_int_equal(egress_log_write(f->log, r), 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f->in);
	assert_true(n > 1);
	assert_int_equal(line[n - 1], '\n');
	line[n - 1] = '\0';
	json_error_t je;
	json_t *back = json_loads(line, 0, &je);
	if (back == NULL)
		fail_msg("line does not parse (%s): %s", je.text, line);
	const char *ts = json_string_value(json_object_get(back, "ts"));
	assert_non_null(ts);
	/* RFC 3339 UTC with milliseconds, and now. */
	struct tm tm = {0};
	const char *rest = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(rest);
	assert_true(strlen(ts) == 24 && rest[0] == '.' && rest[4] == 'Z');
	assert_true(strspn(rest + 1, "0123456789") == 3);
	/* time() reads a coarse clock that can trail CLOCK_REALTIME by a
	 * tick, so compare with the clock the writer uses. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	time_t when = timegm(&tm);
	assert_true(when <= now.tv_sec && now.tv_sec - when <= 5);
	char *want = reference(ts, "sess\"1", r);
	assert_non_null(want);
	if (strcmp(want, line) != 0)
		fail_msg("differs from jansson:\n got  %s\n want %s", line,
			 want);
	free(want);
	json_decref(back);
	free(line);
}

static void typical_records_match(void **state)
{
	struct fixture *f = *state;
	struct egress_record r;
	egress_record_init(&r);
	r.id = "0a1b2c3d-1";
	r.event = "open";
	r.client = "172.18.0.2:43000";
	r.method = "CONNECT";
	r.host = "api.anthropic.test";
	r.port = 443;
	r.sni = "api.anthropic.test";
	r.ip = "10.0.0.1";
	r.rule =
	    "api.anthropic.test (/home/u/.config/agentsafe/policy.yaml:21)";
	check(f, &r);
	r.event = "close";
	r.reason = "eof";
	r.bytes_up = 0;
	r.bytes_down = 9223372036854775807LL;
	r.duration_ms = 12345;
	check(f, &r);
	egress_record_init(&r);
	r.id = "x";
	r.event = "drop";
	r.proto = "tcp";
	r.dst = "fd00::1";
	r.dport = 65535;
	r.reason = "firewall";
	r.message = "icmpv6 type 128";
	check(f, &r);
	egress_record_init(&r);
	r.event = "error";
	check(f, &r);
}

static void hostile_strings_match(void **state)
{
	struct fixture *f = *state;
	static const char *const cases[] = {
	    "quote\" backslash\\ slash/",
	    "ctl \x01\x02\x1f \b\f\n\r\t del\x7f",
	    "utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8",
	    "bad \xff\xfe",
	    "overlong \xc0\xaf",
	    "surrogate \xed\xa0\x80",
	    "too big \xf4\x90\x80\x80",
	    "truncated \xe2\x82",
	    "mixed \xc3\xa9 then bad \x80 and \"quote\" \\ \n",
	    "",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct egress_record r;
		egress_record_init(&r);
		r.event = "deny";
		r.host = cases[i];
		r.sni = cases[i];
		r.message = cases[i];
		r.port = 1;
		check(f, &r);
	}
}

static void random_strings_match(void **state)
{
	struct fixture *f = *state;
	unsigned seed = 12345;
	char buf[3][600];
	for (int round = 0; round < 3000; round++) {
		for (int k = 0; k < 3; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t len = (seed >> 16) % (k == 2 ? 590 : 40);
			for (size_t i = 0; i < len; i++) {
				seed = seed * 1103515245u + 12345u;
				unsigned v = (seed >> 16) & 0xff;
				/* Mostly printable, some high and control
				 * bytes. */
				if (round % 3 == 0 && v < 0x80 && v >= 0x20)
					v = 0xc3 + (v & 1); /* UTF-8 leads */
				buf[k][i] = (char)(v == 0 ? 'a' : v);
			}
			buf[k][len] = '\0';
		}
		struct egress_record r;
		egress_record_init(&r);
		r.event = "deny";
		r.host = buf[0];
		r.rule = buf[1];
		r.message = buf[2];
		r.bytes_up = round;
		check(f, &r);
	}
}

static void long_fields_go_to_the_heap_and_still_match(void **state)
{
	struct fixture *f = *state;
	size_t n = 20000;
	char *big = malloc(n + 1);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)(i % 3 == 0 ? '\n' : 'a' + (int)(i % 26));
	big[n] = '\0';
	struct egress_record r;
	egress_record_init(&r);
	r.event = "error";
	r.message = big;
	check(f, &r);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(typical_records_match),
	    cmocka_unit_test(hostile_strings_match),
	    cmocka_unit_test(random_strings_match),
	    cmocka_unit_test(long_fields_go_to_the_heap_and_still_match),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
