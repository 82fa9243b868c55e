/* The egress.log reader: the escaper everything shown from a record goes
 * through (every control and bidi character escaped, UTF-8 kept, truncation
 * only at whole characters), and logread_next on a real file with good,
 * bad and unknown-reason lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "egress_log.h"
#include "logread.h"

static void expect_escape(const char *in, const char *want)
{
	char buf[256];
	size_t n = logread_escape(in, buf, sizeof buf);
	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
	/* the stream form writes the same bytes */
	char *mem = NULL;
	size_t memlen = 0;
	FILE *f = open_memstream(&mem, &memlen);
	assert_non_null(f);
	logread_fputs_escaped(in, f);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(mem, want);
	free(mem);
}

static void escape_turns_every_control_into_text(void **state)
{
	(void)state;
	expect_escape("api.test", "api.test");
	expect_escape("a\nb\r\tc", "a\\x0ab\\x0d\\x09c");
	expect_escape("\x1b[2K\x07", "\\x1b[2K\\x07");
	expect_escape("\x7f", "\\x7f");
	expect_escape("back\\slash", "back\\\\slash");
	expect_escape("\xc2\x85\xc2\x9b", "\\u0085\\u009b"); /* C1: NEL, CSI */
	expect_escape("\xc2\xa0", "\xc2\xa0");		     /* NBSP is text */
	/* bidi: LRM, RLM, ALM, LRE..RLO, LRI..PDI; LS and PS */
	expect_escape("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c",
		      "\\u200e\\u200f\\u061c");
	expect_escape("\xe2\x80\xaa\xe2\x80\xae", "\\u202a\\u202e");
	expect_escape("\xe2\x81\xa6\xe2\x81\xa9", "\\u2066\\u2069");
	expect_escape("\xe2\x80\xa8\xe2\x80\xa9", "\\u2028\\u2029");
	/* neighbours stay: U+200D (ZWJ), U+202F, U+2065 unassigned, U+206A */
	expect_escape("\xe2\x80\x8d\xe2\x80\xaf\xe2\x81\xaa",
		      "\xe2\x80\x8d\xe2\x80\xaf\xe2\x81\xaa");
	expect_escape("caf\xc3\xa9 \xf0\x9f\x90\x8d",
		      "caf\xc3\xa9 \xf0\x9f\x90\x8d");
	expect_escape(NULL, "");
}

static void escape_shows_bytes_that_are_not_utf8(void **state)
{
	(void)state;
	expect_escape("\x80", "\\x80");		 /* lone continuation */
	expect_escape("\xc0\xaf", "\\xc0\\xaf"); /* overlong '/' */
	expect_escape("\xe0\x80\xae", "\\xe0\\x80\\xae"); /* overlong */
	expect_escape("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* surrogate */
	expect_escape("\xf4\x90\x80\x80",
		      "\\xf4\\x90\\x80\\x80");	 /* > U+10FFFF */
	expect_escape("\xe2\x80", "\\xe2\\x80"); /* cut off */
	expect_escape("\xe2\x80x", "\\xe2\\x80x");
	expect_escape("\xff", "\\xff");
}

static void escape_truncates_only_at_whole_characters(void **state)
{
	(void)state;
	char buf[8];
	/* "ab" fits, the 4-byte escape of ESC does not: nothing after it */
	assert_int_equal(logread_escape("ab\x1b"
					"c",
					buf, 6),
			 7);
	assert_string_equal(buf, "ab");
	assert_int_equal(logread_escape("ab\x1b"
					"c",
					buf, 7),
			 7);
	assert_string_equal(buf, "ab\\x1b");
	/* a UTF-8 sequence is never split */
	assert_int_equal(logread_escape("a\xc3\xa9", buf, 3), 3);
	assert_string_equal(buf, "a");
	assert_int_equal(logread_escape("xyz", buf, 1), 3);
	assert_string_equal(buf, "");
	assert_int_equal(logread_escape("\xe2\x80\xae", NULL, 0), 6);
}

static void
next_reads_records_skips_bad_lines_keeps_unknown_reasons(void **state)
{
	(void)state;
	char path[] = "/tmp/logread-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("{\"ts\":\"2026-11-25T02:47:57.123Z\",\"event\":\"deny\","
	      "\"host\":\"a.test\",\"port\":443,\"reason\":\"not_allowed\"}\n"
	      "not json\n"
	      "{\"ts\":\"2026-11-25T02:47:58Z\",\"event\":\"close\","
	      "\"reason\":\"a_code_from_a_newer_writer\"}\n"
	      "{\"ts\":\"2026-11-25T02:47:59Z\",\"event\":\"open\","
	      "\"\\u001b[2K\":1}\n"
	      "{\"ts\":\"2026-11-25T02:48:00Z\",\"event\":\"drop\"}\n",
	      f);
	assert_int_equal(fclose(f), 0);

	struct logread r;
	char err[128];
	assert_int_equal(logread_open(&r, path, false, err, sizeof err), 0);
	r.quiet = true;
	struct logrec rec;
	assert_int_equal(logread_next(&r, &rec), 1);
	assert_string_equal(rec.host, "a.test");
	assert_int_equal(rec.port, 443);
	assert_int_equal(rec.reason_code, EGRESS_REASON_NOT_ALLOWED);
	assert_int_equal(rec.ts_ms % 1000, 123);
	assert_true(logrec_is_denied(&rec));
	logrec_clear(&rec);
	assert_int_equal(logread_next(&r, &rec), 1);
	assert_string_equal(rec.reason, "a_code_from_a_newer_writer");
	assert_int_equal(rec.reason_code, -1);
	assert_false(logrec_is_denied(&rec));
	logrec_clear(&rec);
	assert_int_equal(logread_next(&r, &rec), 1);
	assert_string_equal(rec.event, "drop");
	assert_null(rec.reason);
	assert_int_equal(rec.reason_code, -1);
	assert_true(logrec_is_denied(&rec));
	logrec_clear(&rec);
	assert_int_equal(logread_next(&r, &rec), 0);
	assert_int_equal(r.skipped, 2);
	logread_close(&r);
	assert_int_equal(unlink(path), 0);
}

/* Records written by the real writer: the self-check's carry an origin
 * and the event's own time; the agent's carry neither. A non-string origin
 * is a bad line, not a record shown (or hidden) on a guess. */
static void origin_and_event_time_round_trip_through_the_writer(void **state)
{
	(void)state;
	char dir[] = "/tmp/logread-origin-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64], err[128];
	snprintf(path, sizeof path, "%s/egress.log", dir);
	struct egress_log *log = NULL;
	assert_int_equal(egress_log_open(path, "s1", &log, err, sizeof err), 0);
	struct egress_record w;
	egress_record_init(&w);
	w.id = "a";
	w.event = "drop";
	w.proto = "tcp";
	w.dst = "10.1.0.1";
	w.dport = 80;
	w.origin = "selfcheck";
	w.time_us = 1795000000123456LL; /* 2026-11-18T11:06:40.123Z */
	assert_int_equal(egress_log_write(log, &w), 0);
	w.id = "b";
	w.origin = NULL;
	w.time_us = 0;
	assert_int_equal(egress_log_write(log, &w), 0);
	egress_log_close(log);
	FILE *f = fopen(path, "a");
	assert_non_null(f);
	fputs("{\"ts\":\"2026-11-25T02:48:00Z\",\"event\":\"drop\","
	      "\"origin\":1}\n",
	      f);
	assert_int_equal(fclose(f), 0);

	struct logread r;
	assert_int_equal(logread_open(&r, path, false, err, sizeof err), 0);
	r.quiet = true;
	struct logrec rec;
	assert_int_equal(logread_next(&r, &rec), 1);
	assert_string_equal(rec.origin, "selfcheck");
	assert_true(logrec_has_origin(&rec));
	assert_string_equal(rec.ts, "2026-11-18T11:06:40.123Z");
	assert_int_equal(rec.ts_ms, 1795000000123LL);
	logrec_clear(&rec);
	assert_int_equal(logread_next(&r, &rec), 1);
	assert_null(rec.origin);
	assert_false(logrec_has_origin(&rec));
	logrec_clear(&rec);
	assert_int_equal(logread_next(&r, &rec), 0);
	assert_int_equal(r.skipped, 1);
	logread_close(&r);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(escape_turns_every_control_into_text),
	    cmocka_unit_test(escape_shows_bytes_that_are_not_utf8),
	    cmocka_unit_test(escape_truncates_only_at_whole_characters),
	    cmocka_unit_test(
		next_reads_records_skips_bad_lines_keeps_unknown_reasons),
	    cmocka_unit_test(
		origin_and_event_time_round_trip_through_the_writer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
