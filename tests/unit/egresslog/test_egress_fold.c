/* Denial folding (egress_fold.h) on a real log file: a burst of identical
 * denials is itemised up to the budget and the rest counted in summaries
 * whose counts add up exactly; other keys, a new window and a full table
 * (eviction) keep the totals exact too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "egress_fold.h"
#include "egress_log.h"

struct fixture {
	char path[64];
	struct egress_log *log;
	struct egress_fold *fold;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->path, sizeof f->path, "/tmp/egress-fold-XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	char err[256];
	assert_int_equal(
	    egress_log_open(f->path, "s", &f->log, err, sizeof err), 0);
	f->fold = egress_fold_new(f->log);
	assert_non_null(f->fold);
	egress_fold_set_time(f->fold, 1000);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	egress_fold_free(f->fold);
	egress_log_close(f->log);
	unlink(f->path);
	free(f);
	return 0;
}

static void deny(struct egress_fold *fold, const char *client, const char *host,
		 int port)
{
	struct egress_record r;
	egress_record_init(&r);
	r.id = "x";
	r.event = "deny";
	r.client = client;
	r.host = host;
	r.port = port;
	r.reason = "not_allowed";
	assert_int_equal(egress_fold_write(fold, &r), 0);
}

/* Itemised records and summary counts for `host` in the log so far. */
static void tally(const char *path, const char *host, long *itemised,
		  long *counted, long *summaries)
{
	*itemised = *counted = *summaries = 0;
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	char line[4096];
	while (fgets(line, sizeof line, fp) != NULL) {
		json_error_t e;
		json_t *o = json_loads(line, 0, &e);
		assert_non_null(o);
		const char *h = json_string_value(json_object_get(o, "host"));
		json_t *c = json_object_get(o, "count");
		if (h != NULL && strcmp(h, host) == 0) {
			if (c == NULL) {
				(*itemised)++;
			} else {
				(*summaries)++;
				*counted += (long)json_integer_value(c);
			}
		}
		json_decref(o);
	}
	(void)fclose(fp);
}

static void burst_is_budget_plus_exact_counts(void **state)
{
	struct fixture *f = *state;
	/* The client's port changes with every connection: same key. */
	char client[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(client, sizeof client, "10.0.0.2:%d", 40000 + i);
		deny(f->fold, client, "a.test", 443);
	}
	long it, cnt, sum;
	tally(f->path, "a.test", &it, &cnt, &sum);
	assert_int_equal(it, EGRESS_FOLD_BUDGET);
	assert_int_equal(sum, 0); /* the window is still open */
	egress_fold_set_time(f->fold, 1000 + EGRESS_FOLD_WINDOW_MS);
	egress_fold_flush(f->fold, false);
	tally(f->path, "a.test", &it, &cnt, &sum);
	assert_int_equal(sum, 1);
	assert_int_equal(it + cnt, 1000);
	/* A new window itemises again. */
	for (int i = 0; i < 15; i++)
		deny(f->fold, "10.0.0.2:1", "a.test", 443);
	egress_fold_flush(f->fold, true);
	tally(f->path, "a.test", &it, &cnt, &sum);
	assert_int_equal(it, 2 * EGRESS_FOLD_BUDGET);
	assert_int_equal(it + cnt, 1015);
}

static void other_port_or_client_is_another_key(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 20; i++) {
		deny(f->fold, "10.0.0.2:1", "b.test", 443);
		deny(f->fold, "10.0.0.2:1", "b.test", 80);
		deny(f->fold, "[fd00::2]:1", "b.test", 443);
	}
	egress_fold_flush(f->fold, true);
	long it, cnt, sum;
	tally(f->path, "b.test", &it, &cnt, &sum);
	assert_int_equal(it, 3 * EGRESS_FOLD_BUDGET);
	assert_int_equal(sum, 3);
	assert_int_equal(it + cnt, 60);
}

static void a_full_table_writes_what_it_evicts(void **state)
{
	struct fixture *f = *state;
	/* 300 distinct keys (more than the table holds), each over budget. */
	char host[32];
	for (int k = 0; k < 300; k++) {
		snprintf(host, sizeof host, "h%d.c.test", k);
		for (int i = 0; i < EGRESS_FOLD_BUDGET + 3; i++)
			deny(f->fold, "10.0.0.3:1", host, 443);
	}
	egress_fold_flush(f->fold, true);
	/* One pass over the log: per key, itemised records + counts. */
	static long seen[300];
	memset(seen, 0, sizeof seen);
	FILE *fp = fopen(f->path, "r");
	assert_non_null(fp);
	char line[4096];
	while (fgets(line, sizeof line, fp) != NULL) {
		json_error_t e;
		json_t *o = json_loads(line, 0, &e);
		assert_non_null(o);
		const char *h = json_string_value(json_object_get(o, "host"));
		json_t *c = json_object_get(o, "count");
		int k = -1;
		if (h != NULL && sscanf(h, "h%d.c.test", &k) == 1 && k >= 0 &&
		    k < 300)
			seen[k] += c != NULL ? (long)json_integer_value(c) : 1;
		json_decref(o);
	}
	(void)fclose(fp);
	for (int k = 0; k < 300; k++)
		assert_int_equal(seen[k], EGRESS_FOLD_BUDGET + 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(burst_is_budget_plus_exact_counts,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(other_port_or_client_is_another_key,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(a_full_table_writes_what_it_evicts,
					    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
