/* The fence without the kernel: the netlink batch fence_apply would send
 * is decoded back with libnftnl and its rules rendered and checked, and the
 * NFLOG packet parser is fed hand-built IPv4/IPv6 headers, hostile ones
 * included. The kernel side is the integration test (tests/integration/fence).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fence_int.h"
#include "nflog_int.h"

static struct fence_config good_config(void)
{
	struct fence_config c = {0};
	snprintf(c.table, sizeof c.table, "%s%s", FENCE_TABLE_PREFIX, "s42");
	snprintf(c.bridge, sizeof c.bridge, "as-s42");
	inet_pton(AF_INET, "172.30.0.1", &c.proxy_addr);
	c.proxy_port = 3128;
	c.nflog_group = 7;
	return c;
}

static void expect_config_error(struct fence_config c, const char *needle)
{
	char err[256] = "";
	assert_int_equal(fence_config_check(&c, err, sizeof err), -EINVAL);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	struct fence_batch *fb = (struct fence_batch *)1;
	assert_int_equal(fence_build_batch(&c, &fb, err, sizeof err), -EINVAL);
	assert_null(fb);
}

static void bad_configs_are_refused(void **state)
{
	(void)state;
	struct fence_config c = good_config();
	snprintf(c.table, sizeof c.table, "docker_filter");
	expect_config_error(c, "table name must be");
	c = good_config();
	snprintf(c.table, sizeof c.table, "%s", FENCE_TABLE_PREFIX);
	expect_config_error(c, "table name must be");
	c = good_config();
	snprintf(c.table, sizeof c.table, "%sa b;flush", FENCE_TABLE_PREFIX);
	expect_config_error(c, "has a character other than");
	c = good_config();
	c.bridge[0] = '\0';
	expect_config_error(c, "bridge interface name");
	c = good_config();
	c.proxy_port = 0;
	expect_config_error(c, "proxy address and port");
	c = good_config();
	c.proxy_addr.s_addr = 0;
	expect_config_error(c, "proxy address and port");
	c = good_config();
	c.npublished = 1;
	c.published[0].first = 9000;
	c.published[0].last = 8000;
	expect_config_error(c, "published range 9000-8000 is empty");
	c = good_config();
	c.npublished = FENCE_MAX_PUBLISHED + 1;
	expect_config_error(c, "published ranges");
}

/* Decoded rules, rendered by libnftnl, in batch order. */
struct decoded {
	char rules[FENCE_MAX_PUBLISHED + 32][2048];
	int nrules;
	char sets[2][512];
	char comment[128]; /* of the last table added */
	int ntables, ndeltables, nchains, nsets;
	struct {
		char name[32];
		uint32_t hook;
		int32_t prio;
	} chains[4];
};

static int comment_cb(const struct nftnl_udata *attr, void *data)
{
	char *out = data;
	assert_int_equal(nftnl_udata_type(attr), NFTNL_UDATA_TABLE_COMMENT);
	size_t n = nftnl_udata_len(attr);
	assert_true(n > 0 && n < 128);
	memcpy(out, nftnl_udata_get(attr), n);
	assert_int_equal(out[n - 1], '\0');
	return 0;
}

static int decode_cb(const struct nlmsghdr *nlh, void *data)
{
	struct decoded *d = data;
	int type = nlh->nlmsg_type & 0xff;
	if (type == NFT_MSG_NEWTABLE) {
		d->ntables++;
		struct nftnl_table *t = nftnl_table_alloc();
		assert_non_null(t);
		assert_int_equal(nftnl_table_nlmsg_parse(nlh, t), 0);
		uint32_t len = 0;
		const void *ud =
		    nftnl_table_get_data(t, NFTNL_TABLE_USERDATA, &len);
		d->comment[0] = '\0';
		if (ud != NULL)
			assert_true(nftnl_udata_parse(ud, len, comment_cb,
						      d->comment) >= 0);
		nftnl_table_free(t);
	} else if (type == NFT_MSG_DELTABLE)
		d->ndeltables++;
	else if (type == NFT_MSG_NEWCHAIN && d->nchains < 4) {
		struct nftnl_chain *ch = nftnl_chain_alloc();
		assert_non_null(ch);
		assert_int_equal(nftnl_chain_nlmsg_parse(nlh, ch), 0);
		snprintf(d->chains[d->nchains].name, sizeof d->chains[0].name,
			 "%s", nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME));
		d->chains[d->nchains].hook =
		    nftnl_chain_get_u32(ch, NFTNL_CHAIN_HOOKNUM);
		d->chains[d->nchains].prio =
		    nftnl_chain_get_s32(ch, NFTNL_CHAIN_PRIO);
		d->nchains++;
		nftnl_chain_free(ch);
	} else if (type == NFT_MSG_NEWSET && d->nsets < 2) {
		struct nftnl_set *s = nftnl_set_alloc();
		assert_non_null(s);
		assert_int_equal(nftnl_set_nlmsg_parse(nlh, s), 0);
		nftnl_set_snprintf(d->sets[d->nsets], sizeof d->sets[0], s,
				   NFTNL_OUTPUT_DEFAULT, 0);
		d->nsets++;
		nftnl_set_free(s);
	} else if (type == NFT_MSG_NEWRULE &&
		   d->nrules < (int)(sizeof d->rules / sizeof d->rules[0])) {
		struct nftnl_rule *r = nftnl_rule_alloc();
		assert_non_null(r);
		assert_int_equal(nftnl_rule_nlmsg_parse(nlh, r), 0);
		nftnl_rule_snprintf(d->rules[d->nrules], sizeof d->rules[0], r,
				    NFTNL_OUTPUT_DEFAULT, 0);
		d->nrules++;
		nftnl_rule_free(r);
	}
	return MNL_CB_OK;
}

static void decode(const struct fence_config *c, struct decoded *d)
{
	struct fence_batch *fb = NULL;
	char err[256] = "";
	memset(d, 0, sizeof *d);
	assert_int_equal(fence_build_batch(c, &fb, err, sizeof err), 0);
	size_t len = 0;
	const char *p = fence_batch_data(fb, &len);
	/* Walk message by message (batch begin/end are NFNL_MSG_BATCH_*). */
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)p;
	int n = (int)len;
	while (mnl_nlmsg_ok(nlh, n)) {
		int subsys = nlh->nlmsg_type >> 8;
		if (subsys == NFNL_SUBSYS_NFTABLES)
			decode_cb(nlh, d);
		nlh = mnl_nlmsg_next(nlh, &n);
	}
	assert_int_equal(n, 0);
	fence_batch_free(fb);
}

/* Rule indexes in batch order with one published range: the accepts of
 * both chains first, then the drops. */
enum {
	IN_EST,
	IN_PROXY,
	FW_EST,
	INB_PUBLISHED,
	INB_DROP,
	IN_LOG0,		/* v4 tcp, udp, other, v6 tcp, udp, other */
	IN_FULL0 = IN_LOG0 + 6, /* the same six, for a full flow set */
	IN_DROP = IN_FULL0 + 6,
	FW_LOG0,
	FW_FULL0 = FW_LOG0 + 6,
	FW_DROP = FW_FULL0 + 6,
	NRULES
};

static void expect_in(const struct decoded *d, int i, const char *needle)
{
	if (strstr(d->rules[i], needle) == NULL)
		fail_msg("rule %d lacks '%s': %s", i, needle, d->rules[i]);
}

static void batch_replaces_the_table_and_orders_rules(void **state)
{
	(void)state;
	struct fence_config c = good_config();
	c.npublished = 1;
	c.published[0].first = 8000;
	c.published[0].last = 8099;
	struct decoded d;
	decode(&c, &d);
	/* add + delete + add: atomic replace of a same-named table. */
	assert_int_equal(d.ntables, 2);
	assert_int_equal(d.ndeltables, 1);
	assert_int_equal(d.nchains, 3);
	assert_int_equal(d.nsets, 2);
	assert_int_equal(d.nrules, NRULES);
	/* input: established, proxy, logged drops, drop */
	expect_in(&d, IN_EST, "input");
	expect_in(&d, IN_EST, "ct load state");
	expect_in(&d, IN_EST, "accept");
	expect_in(&d, IN_PROXY, "input");
	/* 172.30.0.1 and port 3128 (0x0c38), network-order bytes shown as
	 * little-endian words; IPv4 only (nfproto 2) */
	expect_in(&d, IN_PROXY, "0x01001eac");
	expect_in(&d, IN_PROXY, "0x0000380c");
	expect_in(&d, IN_PROXY, "cmp eq reg 1 0x00000002");
	expect_in(&d, IN_PROXY, "accept");
	/* forward: established, published 8000-8099 inbound */
	expect_in(&d, FW_EST, "forward");
	expect_in(&d, FW_EST, "ct load state");
	/* inbound (its own chain, after every session's outbound one):
	 * published 8000-8099, then anything not a reply dropped */
	expect_in(&d, INB_PUBLISHED, "inbound");
	expect_in(&d, INB_PUBLISHED, "oifname");
	expect_in(&d, INB_PUBLISHED, "cmp gte");
	expect_in(&d, INB_PUBLISHED, "cmp lte");
	expect_in(&d, INB_PUBLISHED, "accept");
	expect_in(&d, INB_DROP, "inbound");
	expect_in(&d, INB_DROP, "oifname");
	expect_in(&d, INB_DROP, "ct load state");
	expect_in(&d, INB_DROP, "cmp eq reg 1 0x00000000");
	expect_in(&d, INB_DROP, "drop");
	assert_null(strstr(d.rules[INB_DROP], "log"));
	for (int base = IN_LOG0; base <= FW_LOG0; base += FW_LOG0 - IN_LOG0) {
		for (int i = base; i < base + 6; i++) {
			int v6 = i - base >= 3, k = (i - base) % 3;
			expect_in(&d, i, base == IN_LOG0 ? "input" : "forward");
			expect_in(&d, i, "iifname");
			/* per flow: the family's set, keyed from reg 1 */
			expect_in(&d, i, v6 ? "set flows6" : "set flows4");
			expect_in(&d, i, "dynset update reg_key 1");
			expect_in(&d, i, "limit rate 1/second burst 3");
			/* then the log (no overall cap: the reader counts
			 * a scan), the drop */
			const char *l1 = strstr(d.rules[i], "limit rate");
			if (strstr(l1 + 1, "limit rate") != NULL)
				fail_msg("rule %d has a second limit: %s", i,
					 d.rules[i]);
			expect_in(&d, i, "prefix agentsafe s42");
			expect_in(&d, i, "group 7");
			expect_in(&d, i, "drop");
			assert_null(strstr(d.rules[i], "accept"));
			/* key: daddr (4 or 16 bytes) . l4proto . port */
			expect_in(&d, i,
				  v6 ? "payload load 16b @ network header + 24 "
				       "=> reg 1"
				     : "payload load 4b @ network header + 16 "
				       "=> reg 1");
			expect_in(&d, i,
				  v6 ? "meta load l4proto => reg 12"
				     : "meta load l4proto => reg 9");
			if (k < 2)
				expect_in(
				    &d, i,
				    v6 ? "transport header + 2 => reg 13"
				       : "transport header + 2 => reg 10");
			else
				expect_in(&d, i, v6 ? "reg 13" : "reg 10");
			expect_in(&d, i,
				  k == 0   ? "cmp eq reg 1 0x00000006"
				  : k == 1 ? "cmp eq reg 1 0x00000011"
					   : "cmp neq reg 1 0x00000011");
			expect_in(&d, i,
				  v6 ? "cmp eq reg 1 0x0000000a"
				     : "cmp eq reg 1 0x00000002");
		}
	}
	/* After each logged drop: a new flow whose set was full (not in
	 * it) is logged with the set-full tag, with no bucket, and dropped. */
	for (int base = IN_FULL0; base <= FW_FULL0;
	     base += FW_FULL0 - IN_FULL0) {
		for (int i = base; i < base + 6; i++) {
			int v6 = i - base >= 3;
			expect_in(&d, i,
				  base == IN_FULL0 ? "input" : "forward");
			expect_in(&d, i, v6 ? "set flows6" : "set flows4");
			expect_in(&d, i, "lookup reg 1");
			expect_in(&d, i, "0x1"); /* NFT_LOOKUP_F_INV */
			expect_in(&d, i, "prefix agentsafe s42 setfull");
			expect_in(&d, i, "group 7");
			expect_in(&d, i, "drop");
			assert_null(strstr(d.rules[i], "limit"));
			assert_null(strstr(d.rules[i], "dynset"));
		}
	}
	for (int i = IN_DROP; i <= FW_DROP; i += FW_DROP - IN_DROP) {
		expect_in(&d, i, "iifname");
		expect_in(&d, i, "drop");
		assert_null(strstr(d.rules[i], "log"));
	}
	/* Every rule of the table is scoped to the session bridge: the
	 * outbound ones by iifname, the inbound ones by oifname. */
	for (int i = 0; i < d.nrules; i++)
		expect_in(&d, i,
			  i == INB_PUBLISHED || i == INB_DROP ? "oifname"
							      : "iifname");
	/* The owner, for the stale-session sweep, is the table's comment. */
	char want[64];
	snprintf(want, sizeof want,
		 "agentsafe owner pid=%ld start=", (long)getpid());
	if (strncmp(d.comment, want, strlen(want)) != 0)
		fail_msg("table comment: '%s'", d.comment);
	/* The flow sets: bounded, entries expire. */
	for (int i = 0; i < 2; i++) {
		if (strstr(d.sets[i], "flows") == NULL ||
		    strstr(d.sets[i], "size 4096") == NULL ||
		    strstr(d.sets[i], "timeout 10000ms") == NULL)
			fail_msg("set %d: %s", i, d.sets[i]);
	}
}

/* The most published ranges the config allows build one batch: libmnl
 * writes the message that crosses the batch limit past it, so the buffer
 * must hold more than the limit (13 ranges overflowed the heap before). */
static void most_published_ranges_fit_in_one_batch(void **state)
{
	(void)state;
	struct fence_config c = good_config();
	c.npublished = FENCE_MAX_PUBLISHED;
	for (size_t i = 0; i < FENCE_MAX_PUBLISHED; i++) {
		c.published[i].first = (uint16_t)(10000 + 10 * i);
		c.published[i].last = (uint16_t)(10000 + 10 * i + 5);
	}
	struct decoded d;
	decode(&c, &d);
	assert_int_equal(d.nrules, NRULES - 1 + FENCE_MAX_PUBLISHED);
}

/* Docker's own filter rules (iptables-nft, and nft's filter priority) sit
 * at priority 0 on the same hooks: our chains must run first, so no accept
 * of Docker's is ever seen before our drop; inbound runs after every
 * session's outbound chains. */
static void chains_run_before_dockers_rules(void **state)
{
	(void)state;
	struct fence_config c = good_config();
	struct decoded d;
	decode(&c, &d);
	assert_int_equal(d.nchains, 3);
	int32_t fwd = 0;
	for (int i = 0; i < d.nchains; i++) {
		const char *n = d.chains[i].name;
		uint32_t want = strcmp(n, "input") == 0 ? NF_INET_LOCAL_IN
							: NF_INET_FORWARD;
		if (d.chains[i].hook != want)
			fail_msg("chain %s on hook %u", n, d.chains[i].hook);
		if (d.chains[i].prio >= 0)
			fail_msg(
			    "chain %s at priority %d, not before Docker's 0", n,
			    (int)d.chains[i].prio);
		if (strcmp(n, "forward") == 0)
			fwd = d.chains[i].prio;
	}
	/* Bounded by the array too: GCC's -Wstringop-overread (Release) cannot
	 * see that nchains <= 4. */
	for (int i = 0; i < d.nchains && i < 4; i++)
		if (strcmp(d.chains[i].name, "inbound") == 0)
			assert_true(d.chains[i].prio > fwd);
}

static void no_published_ports_means_nothing_let_in(void **state)
{
	(void)state;
	struct fence_config c = good_config();
	struct decoded d;
	decode(&c, &d);
	assert_int_equal(d.nrules, NRULES - 1);
	/* only the inbound drop: no port is let in */
	int inbound = 0;
	for (int i = 0; i < d.nrules; i++) {
		if (strstr(d.rules[i], "oifname") != NULL) {
			inbound++;
			assert_null(strstr(d.rules[i], "accept"));
			assert_non_null(strstr(d.rules[i], "drop"));
		}
	}
	assert_int_equal(inbound, 1);
}

/* ---- packets ---- */

static size_t ipv4(uint8_t *p, uint8_t proto, const char *src, const char *dst,
		   uint16_t frag)
{
	memset(p, 0, 60);
	p[0] = 0x45;
	p[6] = (uint8_t)(frag >> 8);
	p[7] = (uint8_t)frag;
	p[8] = 64;
	p[9] = proto;
	inet_pton(AF_INET, src, p + 12);
	inet_pton(AF_INET, dst, p + 16);
	return 20;
}

static size_t ipv6(uint8_t *p, uint8_t nh, const char *src, const char *dst)
{
	memset(p, 0, 40);
	p[0] = 0x60;
	p[6] = nh;
	p[7] = 64;
	inet_pton(AF_INET6, src, p + 8);
	inet_pton(AF_INET6, dst, p + 24);
	return 40;
}

static void packets_give_proto_addresses_and_ports(void **state)
{
	(void)state;
	uint8_t p[128];
	struct fence_pkt k;
	size_t n = ipv4(p, 6, "10.213.0.2", "10.214.0.2", 0);
	p[n] = 0xc0, p[n + 1] = 0x01, p[n + 2] = 0x01, p[n + 3] = 0xbb;
	assert_int_equal(fence_parse_packet(p, n + 20, &k), 0);
	assert_int_equal(k.family, 4);
	assert_int_equal(k.proto, 6);
	assert_string_equal(k.src, "10.213.0.2");
	assert_string_equal(k.dst, "10.214.0.2");
	assert_int_equal(k.sport, 0xc001);
	assert_int_equal(k.dport, 443);
	assert_int_equal(k.icmp_type, -1);

	n = ipv4(p, 17, "10.213.0.2", "10.213.0.1", 0);
	p[n + 2] = 0, p[n + 3] = 53;
	assert_int_equal(fence_parse_packet(p, n + 8, &k), 0);
	assert_int_equal(k.dport, 53);

	n = ipv4(p, 1, "10.213.0.2", "10.214.0.2", 0);
	p[n] = 8;
	assert_int_equal(fence_parse_packet(p, n + 8, &k), 0);
	assert_int_equal(k.icmp_type, 8);
	assert_int_equal(k.dport, 0);
	char buf[8];
	assert_string_equal(fence_proto_name(1, buf, sizeof buf), "icmp");
	assert_string_equal(fence_proto_name(132, buf, sizeof buf), "132");

	/* IPv6 TCP behind a hop-by-hop header. */
	n = ipv6(p, 0, "fd00:213::2", "fd00:213::1");
	memset(p + n, 0, 8);
	p[n] = 6; /* next: TCP; length 0 = 8 bytes */
	p[n + 8 + 2] = 0x0c, p[n + 8 + 3] = 0x38;
	assert_int_equal(fence_parse_packet(p, n + 8 + 20, &k), 0);
	assert_int_equal(k.family, 6);
	assert_int_equal(k.proto, 6);
	assert_string_equal(k.dst, "fd00:213::1");
	assert_int_equal(k.dport, 3128);

	n = ipv6(p, 58, "fd00:213::2", "fd00:213::1");
	p[n] = 128;
	assert_int_equal(fence_parse_packet(p, n + 8, &k), 0);
	assert_int_equal(k.icmp_type, 128);
}

static void hostile_packets_are_bounded(void **state)
{
	(void)state;
	uint8_t p[128] = {0};
	struct fence_pkt k;
	assert_int_equal(fence_parse_packet(p, 0, &k), -EINVAL);
	(void)ipv4(p, 6, "10.0.0.1", "10.0.0.2", 0);
	assert_int_equal(fence_parse_packet(p, 19, &k), -EINVAL);
	p[0] = 0x4f; /* IHL 60 > length */
	assert_int_equal(fence_parse_packet(p, 40, &k), -EINVAL);
	p[0] = 0x44; /* IHL 16 < 20 */
	assert_int_equal(fence_parse_packet(p, 40, &k), -EINVAL);
	p[0] = 0x55;
	assert_int_equal(fence_parse_packet(p, 40, &k), -EINVAL);
	/* A later fragment: no transport header to read ports from. */
	size_t n = ipv4(p, 6, "10.0.0.1", "10.0.0.2", 0x0010);
	p[n + 2] = 0x01, p[n + 3] = 0xbb;
	assert_int_equal(fence_parse_packet(p, n + 20, &k), 0);
	assert_int_equal(k.dport, 0);
	/* Transport header cut short: addresses yes, ports no. */
	n = ipv4(p, 6, "10.0.0.1", "10.0.0.2", 0);
	assert_int_equal(fence_parse_packet(p, n + 3, &k), 0);
	assert_int_equal(k.dport, 0);
	/* IPv6: short header; extension header chain running off the end. */
	n = ipv6(p, 0, "::1", "::2");
	assert_int_equal(fence_parse_packet(p, 39, &k), -EINVAL);
	p[n] = 0, p[n + 1] = 200; /* claims 1608 bytes */
	assert_int_equal(fence_parse_packet(p, n + 8, &k), 0);
	assert_int_equal(k.dport, 0);
	/* A loop of hop-by-hop headers ends after a bounded walk. */
	n = ipv6(p, 0, "::1", "::2");
	for (size_t i = n; i + 8 <= sizeof p; i += 8) {
		p[i] = 0;
		p[i + 1] = 0;
	}
	assert_int_equal(fence_parse_packet(p, sizeof p, &k), 0);
}

/* ---- owner liveness (the sweep's built-in check) ---- */

static void owner_liveness_names_one_process(void **state)
{
	(void)state;
	char me[128], child[128];
	assert_int_equal(fence_owner_format(getpid(), me, sizeof me), 0);
	assert_true(fence_owner_is_live(me));
	/* A process that has exited is gone. */
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char b;
		close(fds[1]);
		(void)!read(fds[0], &b, 1);
		_exit(0);
	}
	close(fds[0]);
	assert_int_equal(fence_owner_format(pid, child, sizeof child), 0);
	assert_true(fence_owner_is_live(child));
	close(fds[1]);
	/* Exited but not reaped (a crashed launcher whose parent has not
	 * waited): a zombie is gone too. */
	bool gone = false;
	for (int i = 0; i < 200 && !gone; i++) {
		gone = !fence_owner_is_live(child);
		if (!gone)
			usleep(10000);
	}
	assert_true(gone);
	char zombie[128];
	assert_int_equal(fence_owner_format(pid, zombie, sizeof zombie),
			 -ESRCH);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_false(fence_owner_is_live(child));
	/* The same pid with another start time: the pid was reused. */
	long p = 0;
	unsigned long long start = 0, ns = 0;
	/* NOLINTNEXTLINE(cert-err34-c): our own output, checked by count */
	assert_int_equal(sscanf(me,
				"agentsafe owner pid=%ld start=%llu pidns=%llu",
				&p, &start, &ns),
			 3);
	char reused[128];
	snprintf(reused, sizeof reused,
		 "agentsafe owner pid=%ld start=%llu pidns=%llu", p, start + 1,
		 ns);
	assert_false(fence_owner_is_live(reused));
	/* What cannot be judged is kept: another pid namespace, no or a
	 * foreign comment, nonsense. */
	snprintf(reused, sizeof reused,
		 "agentsafe owner pid=%ld start=%llu pidns=%llu", p, start + 1,
		 ns + 1);
	assert_true(fence_owner_is_live(reused));
	assert_true(fence_owner_is_live(NULL));
	assert_true(fence_owner_is_live(""));
	assert_true(fence_owner_is_live("set up by hand"));
	assert_true(fence_owner_is_live("agentsafe owner pid=-4 start=1 "
					"pidns=1"));
	/* An owner that does not exist cannot be recorded. */
	struct fence_config c = good_config();
	c.owner_pid = pid; /* reaped above */
	struct fence_batch *fb = NULL;
	char err[256] = "";
	assert_int_equal(fence_build_batch(&c, &fb, err, sizeof err), -ENOENT);
	assert_null(fb);
	assert_non_null(strstr(err, "owner pid"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bad_configs_are_refused),
	    cmocka_unit_test(batch_replaces_the_table_and_orders_rules),
	    cmocka_unit_test(most_published_ranges_fit_in_one_batch),
	    cmocka_unit_test(chains_run_before_dockers_rules),
	    cmocka_unit_test(no_published_ports_means_nothing_let_in),
	    cmocka_unit_test(packets_give_proto_addresses_and_ports),
	    cmocka_unit_test(hostile_packets_are_bounded),
	    cmocka_unit_test(owner_liveness_names_one_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
