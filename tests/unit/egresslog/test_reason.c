/* The table of reason codes (egresslog/reason.c) and the "Reason codes"
 * section of docs/log-reference.md name the same codes, in the same events,
 * with the same reserved marks: a code in one and not the other fails. The
 * document is the one in the source tree, or argv[1]. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reason.h"

#define RESERVED_MARK "(reserved: not written yet)"

static const char *doc_path;

static char *read_doc(void)
{
	FILE *f = fopen(doc_path, "r");
	if (f == NULL)
		fail_msg("cannot open %s: %s", doc_path, strerror(errno));
	size_t cap = (size_t)1 << 20;
	char *buf = malloc(cap + 1);
	assert_non_null(buf);
	size_t n = fread(buf, 1, cap, f);
	assert_int_equal(fclose(f), 0);
	assert_true(n < cap);
	buf[n] = '\0';
	return buf;
}

static unsigned event_bit(const char *heading)
{
	static const struct {
		const char *text;
		unsigned bit;
	} events[] = {{"### `deny`", EGRESS_IN_DENY},
		      {"### `close`", EGRESS_IN_CLOSE},
		      {"### `error`", EGRESS_IN_ERROR},
		      {"### `drop`", EGRESS_IN_DROP}};
	for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
		size_t n = strlen(events[i].text);
		if (strncmp(heading, events[i].text, n) == 0)
			return events[i].bit;
	}
	return 0;
}

/* What the document says about each code: the events whose table lists it
 * and, per event, whether the row is marked reserved. */
struct doc_view {
	unsigned events[EGRESS_REASON_COUNT];
	unsigned reserved[EGRESS_REASON_COUNT];
	int problems;
};

/* One table row: every `code` in its first cell. */
static void read_row(struct doc_view *v, unsigned ev, const char *line,
		     size_t len, int lineno)
{
	const char *cell_end = memchr(line + 1, '|', len - 1);
	if (cell_end == NULL)
		return;
	bool reserved = false;
	for (const char *p = cell_end; p + strlen(RESERVED_MARK) <= line + len;
	     p++)
		if (strncmp(p, RESERVED_MARK, strlen(RESERVED_MARK)) == 0)
			reserved = true;
	for (const char *p = line + 1; p < cell_end; p++) {
		if (*p != '`')
			continue;
		const char *end =
		    memchr(p + 1, '`', (size_t)(cell_end - p - 1));
		if (end == NULL)
			break;
		char code[64];
		size_t n = (size_t)(end - p - 1);
		if (n >= sizeof code)
			n = sizeof code - 1;
		memcpy(code, p + 1, n);
		code[n] = '\0';
		p = end;
		enum egress_reason r;
		if (egress_reason_lookup(code, &r) != 0) {
			print_error(
			    "%s:%d: `%s` is not in egresslog/reason.c\n",
			    doc_path, lineno, code);
			v->problems++;
			continue;
		}
		v->events[r] |= ev;
		if (reserved)
			v->reserved[r] |= ev;
	}
}

static void read_section(struct doc_view *v, const char *doc)
{
	const char *p = strstr(doc, "\n## Reason codes\n");
	assert_non_null(p);
	int lineno = 1;
	for (const char *q = doc; q < p + 1; q++)
		lineno += *q == '\n';
	p++;
	unsigned ev = 0;
	int rows = 0;
	for (;;) {
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
		lineno++;
		if (strncmp(p, "## ", 3) == 0)
			break; /* the next section */
		size_t len = strcspn(p, "\n");
		if (strncmp(p, "### ", 4) == 0) {
			ev = event_bit(p);
			if (ev == 0) {
				print_error("%s:%d: unknown event heading\n",
					    doc_path, lineno);
				v->problems++;
			}
		} else if (ev != 0 && strncmp(p, "| `", 3) == 0) {
			read_row(v, ev, p, len, lineno);
			rows++;
		}
	}
	assert_true(rows > 20); /* the section was found and read */
}

static void names(unsigned ev, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", ev & EGRESS_IN_DENY ? " deny" : "",
		 ev & EGRESS_IN_CLOSE ? " close" : "",
		 ev & EGRESS_IN_ERROR ? " error" : "",
		 ev & EGRESS_IN_DROP ? " drop" : "");
}

static void table_matches_log_reference_both_ways(void **state)
{
	(void)state;
	char *doc = read_doc();
	struct doc_view v;
	memset(&v, 0, sizeof v);
	read_section(&v, doc);
	free(doc);
	for (int r = 0; r < EGRESS_REASON_COUNT; r++) {
		const struct egress_reason_info *i =
		    egress_reason_info((enum egress_reason)r);
		char want[64], got[64];
		names(i->events, want, sizeof want);
		names(v.events[r], got, sizeof got);
		if (v.events[r] != i->events) {
			print_error("`%s`: the table lists it under%s, %s "
				    "under%s\n",
				    i->name, want, doc_path,
				    v.events[r] ? got : " nothing");
			v.problems++;
		}
		unsigned want_res = i->reserved ? i->events : 0;
		if (v.events[r] == i->events && v.reserved[r] != want_res) {
			print_error("`%s`: reserved in the table: %s; %s marks "
				    "it \"" RESERVED_MARK "\" under%s\n",
				    i->name, i->reserved ? "yes" : "no",
				    doc_path, v.reserved[r] ? got : " nothing");
			v.problems++;
		}
	}
	assert_int_equal(v.problems, 0);
}

static void every_code_named_once_and_found_by_name(void **state)
{
	(void)state;
	for (int r = 0; r < EGRESS_REASON_COUNT; r++) {
		const struct egress_reason_info *i =
		    egress_reason_info((enum egress_reason)r);
		assert_non_null(i);
		assert_non_null(i->name);
		assert_non_null(i->meaning);
		assert_true(i->events != 0);
		assert_ptr_equal(egress_reason_name((enum egress_reason)r),
				 i->name);
		/* stable strings are lower-case words joined by '_' */
		assert_int_equal(strspn(i->name, "abcdefghijklmnopqrstuvwxyz_"),
				 strlen(i->name));
		enum egress_reason back;
		assert_int_equal(egress_reason_lookup(i->name, &back), 0);
		assert_int_equal(back, r);
	}
	enum egress_reason out;
	assert_int_equal(egress_reason_lookup("Not_Allowed", &out), -ENOENT);
	assert_int_equal(egress_reason_lookup("not_allowed ", &out), -ENOENT);
	assert_int_equal(egress_reason_lookup("", &out), -ENOENT);
	assert_int_equal(egress_reason_lookup(NULL, &out), -ENOENT);
	assert_null(egress_reason_name(EGRESS_REASON_COUNT));
	assert_null(egress_reason_info((enum egress_reason) - 1));
}

int main(int argc, char **argv)
{
	static char path[4096];
	const char *src = getenv("AGENTSAFE_SOURCE_DIR");
	if (argc > 1) {
		doc_path = argv[1];
	} else if (src != NULL) {
		snprintf(path, sizeof path, "%s/docs/log-reference.md", src);
		doc_path = path;
	} else {
		fprintf(stderr,
			"usage: %s [log-reference.md] (or set "
			"AGENTSAFE_SOURCE_DIR)\n",
			argv[0]);
		return 2;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_code_named_once_and_found_by_name),
	    cmocka_unit_test(table_matches_log_reference_both_ways),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
