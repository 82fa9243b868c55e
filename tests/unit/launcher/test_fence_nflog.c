/* The NFLOG reader without the kernel: hand-built nfnetlink_log messages
 * (as the kernel sends them for the fence's log rules) go through the same
 * handler dispatch uses, and the egress.log it writes is read back as JSON:
 * one drop record per new flow with the documented fields, repeats folded,
 * a scan bounded by the record budget with a summary, hostile messages
 * skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libmnl/libmnl.h>

#include "egress_log.h"
#include "nflog_int.h"

struct fixture {
	char dir[64], path[96];
	struct egress_log *log;
	struct fence_nflog *n;
	char buf[65536];
	size_t len; /* messages queued in buf */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/asfen-unit.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/egress.log", f->dir);
	char err[256];
	assert_int_equal(
	    egress_log_open(f->path, "s42", &f->log, err, sizeof err), 0);
	f->n = fence_nflog_new_detached(f->log);
	assert_non_null(f->n);
	fence_nflog_set_time(f->n, 1000000);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	fence_nflog_free(f->n);
	egress_log_close(f->log);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* The prefix queue() gives its messages: the fence's, or with the
 * set-full tag its second rule adds (fence.c). */
static const char *queue_prefix = "agentsafe s42";

/* The NFULA_TIMESTAMP queue() adds (µs since the epoch); 0: none. */
static int64_t queue_stamp_us;

/* Queues one NFULNL_MSG_PACKET carrying pkt as the kernel lays it out. */
static void queue(struct fixture *f, const uint8_t *pkt, size_t plen,
		  uint16_t type)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(f->buf + f->len);
	nlh->nlmsg_type = type;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
	g->nfgen_family = (pkt[0] >> 4) == 6 ? AF_INET6 : AF_INET;
	g->version = NFNETLINK_V0;
	g->res_id = htons(7);
	struct nfulnl_msg_packet_hdr ph = {.hw_protocol = htons(0x0800)};
	mnl_attr_put(nlh, NFULA_PACKET_HDR, sizeof ph, &ph);
	mnl_attr_put_strz(nlh, NFULA_PREFIX, queue_prefix);
	if (queue_stamp_us != 0) {
		struct nfulnl_msg_packet_timestamp t = {
		    .sec = htobe64((uint64_t)(queue_stamp_us / 1000000)),
		    .usec = htobe64((uint64_t)(queue_stamp_us % 1000000)),
		};
		mnl_attr_put(nlh, NFULA_TIMESTAMP, sizeof t, &t);
	}
	mnl_attr_put(nlh, NFULA_PAYLOAD, plen, pkt);
	f->len += nlh->nlmsg_len;
	assert_true(f->len < sizeof f->buf - 512);
}

static void flush(struct fixture *f)
{
	fence_nflog_handle(f->n, f->buf, f->len);
	f->len = 0;
}

#define PACKET (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET)

static size_t tcp4(uint8_t *p, const char *src, const char *dst, uint16_t sport,
		   uint16_t dport)
{
	memset(p, 0, 40);
	p[0] = 0x45;
	p[9] = 6;
	inet_pton(AF_INET, src, p + 12);
	inet_pton(AF_INET, dst, p + 16);
	p[20] = (uint8_t)(sport >> 8), p[21] = (uint8_t)sport;
	p[22] = (uint8_t)(dport >> 8), p[23] = (uint8_t)dport;
	return 40;
}

/* The log's records, parsed; the caller json_decref()s each. */
static size_t records(struct fixture *f, json_t **out, size_t max)
{
	FILE *fp = fopen(f->path, "r");
	assert_non_null(fp);
	char line[4096];
	size_t n = 0;
	while (fgets(line, sizeof line, fp) != NULL) {
		json_error_t je;
		json_t *j = json_loads(line, 0, &je);
		if (j == NULL)
			fail_msg("not JSON: %s (%s)", line, je.text);
		if (n < max)
			out[n++] = j;
		else
			json_decref(j);
	}
	(void)fclose(fp);
	return n;
}

static void free_records(json_t **r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(r[i]);
}

static const char *str(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void one_record_per_new_flow_with_the_fields(void **state)
{
	struct fixture *f = *state;
	uint8_t p[128];
	size_t n = tcp4(p, "10.213.0.2", "10.214.0.2", 49153, 443);
	queue(f, p, n, PACKET);
	/* IPv6 ICMP echo in the same read: two messages, two records. */
	memset(p, 0, 48);
	p[0] = 0x60, p[6] = 58, p[7] = 64;
	inet_pton(AF_INET6, "fd00:213::2", p + 8);
	inet_pton(AF_INET6, "fd00:213::1", p + 24);
	p[40] = 128;
	queue(f, p, 48, PACKET);
	flush(f);
	json_t *r[4];
	assert_int_equal(records(f, r, 4), 2);
	assert_string_equal(str(r[0], "event"), "drop");
	assert_string_equal(str(r[0], "reason"), "firewall");
	assert_string_equal(str(r[0], "session"), "s42");
	assert_string_equal(str(r[0], "client"), "10.213.0.2:49153");
	assert_string_equal(str(r[0], "proto"), "tcp");
	assert_string_equal(str(r[0], "dst"), "10.214.0.2");
	assert_int_equal(json_integer_value(json_object_get(r[0], "dport")),
			 443);
	assert_non_null(str(r[0], "ts"));
	assert_non_null(str(r[0], "id"));
	assert_null(json_object_get(r[0], "message"));
	assert_string_equal(str(r[1], "proto"), "icmpv6");
	assert_string_equal(str(r[1], "client"), "fd00:213::2");
	assert_string_equal(str(r[1], "dst"), "fd00:213::1");
	assert_null(json_object_get(r[1], "dport"));
	assert_string_equal(str(r[1], "message"), "icmpv6 type 128");
	assert_string_not_equal(str(r[0], "id"), str(r[1], "id"));
	free_records(r, 2);
}

static void repeats_fold_until_the_flow_is_quiet(void **state)
{
	struct fixture *f = *state;
	uint8_t p[128];
	/* SYN retransmits from new source ports: one attempt. */
	for (uint16_t i = 0; i < 5; i++) {
		size_t n = tcp4(p, "10.213.0.2", "10.214.0.2",
				(uint16_t)(40000 + i), 443);
		queue(f, p, n, PACKET);
		flush(f);
		fence_nflog_set_time(f->n, 1000000 + (i + 1) * 1000);
	}
	assert_int_equal(fence_nflog_folded(f->n), 4);
	/* Another port is another flow. */
	size_t n = tcp4(p, "10.213.0.2", "10.214.0.2", 40000, 444);
	queue(f, p, n, PACKET);
	flush(f);
	/* 6 s of silence: the first flow is new again. */
	fence_nflog_set_time(f->n, 1000000 + 5000 + 6000);
	n = tcp4(p, "10.213.0.2", "10.214.0.2", 40009, 443);
	queue(f, p, n, PACKET);
	flush(f);
	json_t *r[8];
	assert_int_equal(records(f, r, 8), 3);
	assert_int_equal(json_integer_value(json_object_get(r[0], "dport")),
			 443);
	assert_int_equal(json_integer_value(json_object_get(r[1], "dport")),
			 444);
	assert_string_equal(str(r[2], "client"), "10.213.0.2:40009");
	free_records(r, 3);
	assert_int_equal(fence_nflog_folded(f->n), 4);
}

static void a_scan_is_bounded_and_summarised(void **state)
{
	struct fixture *f = *state;
	uint8_t p[128];
	/* 300 distinct ports at one instant: 200 itemised (the burst),
	 * the rest counted. */
	for (unsigned i = 0; i < 300; i++) {
		size_t n = tcp4(p, "10.213.0.2", "10.214.0.2", 40000,
				(uint16_t)(1000 + i));
		queue(f, p, n, PACKET);
		if (i % 50 == 49)
			flush(f);
	}
	json_t *r[512];
	size_t got = records(f, r, 512);
	free_records(r, got);
	assert_int_equal(got, 200);
	/* 10 s later the next packet brings the summary; the budget has
	 * refilled (20/s) so the packet itself is itemised too. */
	fence_nflog_set_time(f->n, 1000000 + 10000);
	size_t n = tcp4(p, "10.213.0.2", "10.214.0.3", 40000, 22);
	queue(f, p, n, PACKET);
	flush(f);
	got = records(f, r, 512);
	assert_int_equal(got, 202);
	assert_string_equal(str(r[200], "dst"), "10.214.0.3");
	assert_string_equal(str(r[201], "event"), "drop");
	assert_string_equal(str(r[201], "reason"), "firewall");
	assert_null(json_object_get(r[201], "dst"));
	const char *m = str(r[201], "message");
	assert_non_null(m);
	if (strstr(m, "100 dropped packets of new flows not itemised") == NULL)
		fail_msg("summary: %s", m);
	free_records(r, got);
	/* Counted again after the summary, written when the reader closes. */
	for (unsigned i = 0; i < 250; i++) {
		n = tcp4(p, "10.213.0.2", "10.214.0.4", 40000,
			 (uint16_t)(1000 + i));
		queue(f, p, n, PACKET);
		if (i % 50 == 49)
			flush(f);
	}
	fence_nflog_free(f->n);
	f->n = NULL;
	got = records(f, r, 512);
	m = str(r[got - 1], "message");
	if (m == NULL || strstr(m, "not itemised") == NULL)
		fail_msg("no closing summary: %s", m ? m : "(none)");
	free_records(r, got);
}

/* New flows that found the kernel's flow set full come tagged, every
 * packet: none is itemised, and the summary says how many there were
 * instead of "0 log overflows" over a silent gap. */
static void set_full_drops_are_counted_in_the_summary(void **state)
{
	struct fixture *f = *state;
	uint8_t p[128];
	queue_prefix = "agentsafe s42" FENCE_NFLOG_SET_FULL_TAG;
	for (unsigned i = 0; i < 700; i++) {
		size_t n = tcp4(p, "10.213.0.2", "10.214.0.9", 40000,
				(uint16_t)(2000 + i));
		queue(f, p, n, PACKET);
		if (i % 50 == 49)
			flush(f);
	}
	queue_prefix = "agentsafe s42";
	/* An untagged new flow is itemised as ever. */
	size_t n = tcp4(p, "10.213.0.2", "10.214.0.8", 40000, 22);
	queue(f, p, n, PACKET);
	flush(f);
	fence_nflog_free(f->n);
	f->n = NULL;
	json_t *r[8];
	size_t got = records(f, r, 8);
	assert_int_equal(got, 2);
	assert_string_equal(str(r[0], "dst"), "10.214.0.8");
	const char *m = str(r[1], "message");
	assert_non_null(m);
	if (strstr(m, "; 700 dropped packets of new flows not itemised (the "
		      "fence's flow set was full)") == NULL ||
	    strncmp(m, "0 dropped packets", 17) != 0)
		fail_msg("summary: %s", m);
	assert_int_equal(json_integer_value(json_object_get(r[1], "count")),
			 700);
	free_records(r, got);
}

static void hostile_messages_are_skipped(void **state)
{
	struct fixture *f = *state;
	uint8_t p[128] = {0};
	/* not a packet message; a payload too short for IPv4; version 5 */
	size_t n = tcp4(p, "10.213.0.2", "10.214.0.2", 1, 2);
	queue(f, p, n, NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG);
	queue(f, p, 12, PACKET);
	p[0] = 0x55;
	queue(f, p, n, PACKET);
	flush(f);
	/* A message whose length runs past the read: nothing read from it. */
	n = tcp4(p, "10.213.0.2", "10.214.0.2", 1, 2);
	queue(f, p, n, PACKET);
	fence_nflog_handle(f->n, f->buf, f->len - 8);
	/* Garbage bytes. */
	memset(f->buf, 0xff, 256);
	fence_nflog_handle(f->n, f->buf, 256);
	fence_nflog_handle(f->n, f->buf, 3);
	f->len = 0;
	json_t *r[4];
	assert_int_equal(records(f, r, 4), 0);
	/* The reader still works afterwards. */
	queue(f, p, n, PACKET);
	flush(f);
	assert_int_equal(records(f, r, 4), 1);
	free_records(r, 1);
}

/* The self-check's drops are labelled while the window is open; once it
 * ends, the agent's packet to the very flow the probe tried (the gateway's
 * port 80, within the 5 s fold) is a record of its own, unlabelled: the
 * agent can never have a drop folded into a hidden record. */
static void
after_the_window_the_same_flow_is_a_new_unlabelled_record(void **state)
{
	struct fixture *f = *state;
	uint8_t p[128];
	fence_nflog_set_origin(f->n, "selfcheck");
	size_t n = tcp4(p, "10.213.0.2", "10.213.0.1", 40000, 80);
	queue(f, p, n, PACKET);
	flush(f);
	fence_nflog_set_origin(f->n, NULL);
	fence_nflog_set_time(f->n, 1000000 + 500);
	n = tcp4(p, "10.213.0.2", "10.213.0.1", 40001, 80);
	queue(f, p, n, PACKET);
	flush(f);
	json_t *r[4];
	assert_int_equal(records(f, r, 4), 2);
	assert_string_equal(str(r[0], "origin"), "selfcheck");
	assert_null(json_object_get(r[1], "origin"));
	assert_string_equal(str(r[1], "client"), "10.213.0.2:40001");
	free_records(r, 2);
	assert_int_equal(fence_nflog_folded(f->n), 0);
}

/* A record's ts is the packet's kernel timestamp when it has one near the
 * read; one far off (a clock step, a forged delivery time) is not
 * believed, and the time of the read is written instead. */
static void drops_are_stamped_with_the_packets_time(void **state)
{
	struct fixture *f = *state;
	uint8_t p[128];
	const int64_t now = 1795000000000000LL; /* 2026-11-18T11:06:40Z */
	fence_nflog_set_real_time(f->n, now);
	queue_stamp_us = now - 2500000 + 42000; /* 2.458 s before the read */
	size_t n = tcp4(p, "10.213.0.2", "10.214.0.2", 40000, 443);
	queue(f, p, n, PACKET);
	queue_stamp_us = now - 3600LL * 1000000; /* an hour off */
	n = tcp4(p, "10.213.0.2", "10.214.0.2", 40000, 444);
	queue(f, p, n, PACKET);
	queue_stamp_us = 0;
	n = tcp4(p, "10.213.0.2", "10.214.0.2", 40000, 445);
	queue(f, p, n, PACKET);
	flush(f);
	json_t *r[4];
	assert_int_equal(records(f, r, 4), 3);
	assert_string_equal(str(r[0], "ts"), "2026-11-18T11:06:37.542Z");
	/* the others: the real time of writing, not 2026-11-18T10:06 */
	assert_string_not_equal(str(r[1], "ts"), "2026-11-18T10:06:40.000Z");
	assert_string_not_equal(str(r[1], "ts"), str(r[0], "ts"));
	assert_true(strncmp(str(r[1], "ts"), "2026-11-18T10:", 14) != 0);
	assert_non_null(str(r[2], "ts"));
	free_records(r, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		one_record_per_new_flow_with_the_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		repeats_fold_until_the_flow_is_quiet, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_scan_is_bounded_and_summarised,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		set_full_drops_are_counted_in_the_summary, setup, teardown),
	    cmocka_unit_test_setup_teardown(hostile_messages_are_skipped, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		after_the_window_the_same_flow_is_a_new_unlabelled_record,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		drops_are_stamped_with_the_packets_time, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
