/* The session's network fence. One inet table per session, installed in one
 * atomic netlink batch (libnftnl + libmnl): packets from the session bridge
 * may only open TCP to the proxy; everything else they try is NFLOGged
 * (per-flow rate-limited) and dropped, on both the input hook (the host
 * itself) and the forward hook (LAN, internet, other sessions), IPv4 and
 * IPv6 alike; inbound, only published ports. Also removal and the sweep of
 * tables whose owner process is gone (chain layout: fence.h). */
#include "fence.h"
#include "nflog.h"

#include <errno.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "fence_int.h"

/* Before Docker's own filter rules (priority 0): a drop here is final,
 * whatever they accept later. */
#define FENCE_PRIORITY (-10)
/* Inbound drops (to the bridge) run after every session's outbound chain,
 * so a packet between two sessions is dropped and logged by its sender's
 * table first, whatever order the kernel runs the tables in. */
#define FENCE_INBOUND_PRIORITY (-9)
/* NFLOG flood bound, in the kernel: each flow (family, destination
 * address, protocol, destination port) has its own token bucket in a
 * dynamic set, so the first packet of every new flow is logged however hard
 * another flow floods. There is deliberately no overall cap here: a scan's
 * packets reach the reader, which itemises a budget of them and counts the
 * rest in a summary record (nflog.c) instead of losing them silently; the
 * set's size bounds the message rate. Packets past a flow's bucket are
 * dropped unlogged (repeats); packets of new flows while the set is full
 * are logged with a tag (drop_set_full) so the reader can count them. */
#define FENCE_FLOW_RATE	   1 /* logged packets per second per flow */
#define FENCE_FLOW_BURST   3
#define FENCE_FLOW_TIMEOUT 10000 /* ms of silence before a flow is new */
#define FENCE_FLOW_SLOTS   4096	 /* flows tracked per family */
#define FENCE_SNAPLEN	   128	 /* enough for IP + transport headers */

/* ---- expression helpers ---- */

/* Expression builders are chained with ||; any failure is an allocation
 * failure. */
static int chain_ok(int any_failed)
{
	return any_failed ? -ENOMEM : 0;
}

static int add_expr(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (e == NULL)
		return -ENOMEM;
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int x_meta_to(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
	return add_expr(r, e);
}

static int x_meta(struct nftnl_rule *r, uint32_t key)
{
	return x_meta_to(r, key, NFT_REG_1);
}

static int x_cmp(struct nftnl_rule *r, uint32_t op, const void *data,
		 uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	return add_expr(r, e);
}

static int x_payload_to(struct nftnl_rule *r, uint32_t base, uint32_t off,
			uint32_t len, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
	return add_expr(r, e);
}

static int x_payload(struct nftnl_rule *r, uint32_t base, uint32_t off,
		     uint32_t len)
{
	return x_payload_to(r, base, off, len, NFT_REG_1);
}

/* Loads a zero word, for the port slot of a flow key without ports. */
static int x_zero_to(struct nftnl_rule *r, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	if (e == NULL)
		return -ENOMEM;
	uint32_t zero = 0;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &zero, sizeof zero);
	return add_expr(r, e);
}

static int x_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	return add_expr(r, e);
}

static int x_counter(struct nftnl_rule *r)
{
	return add_expr(r, nftnl_expr_alloc("counter"));
}

/* iifname/oifname == name (compared over IFNAMSIZ, zero padded). */
static int x_ifname(struct nftnl_rule *r, uint32_t key, const char *name)
{
	char buf[IFNAMSIZ] = {0};
	size_t n = strnlen(name, IFNAMSIZ - 1);
	memcpy(buf, name, n);
	int rc = x_meta(r, key);
	return rc ? rc : x_cmp(r, NFT_CMP_EQ, buf, (uint32_t)(n + 1));
}

/* ct state established,related (or, negated, anything else: new,
 * invalid, untracked) */
static int x_ct_state(struct nftnl_rule *r, bool established)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
	uint32_t mask =
	    NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
	uint32_t zero = 0;
	e = nftnl_expr_alloc("bitwise");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof mask);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof zero);
	nftnl_rule_add_expr(r, e);
	return x_cmp(r, established ? NFT_CMP_NEQ : NFT_CMP_EQ, &zero,
		     sizeof zero);
}

static int x_ct_established(struct nftnl_rule *r)
{
	return x_ct_state(r, true);
}

static int x_ct_not_established(struct nftnl_rule *r)
{
	return x_ct_state(r, false);
}

/* meta l4proto tcp, th dport in [first, last] */
static int x_tcp_dport(struct nftnl_rule *r, uint16_t first, uint16_t last)
{
	uint8_t tcp = IPPROTO_TCP;
	int rc = x_meta(r, NFT_META_L4PROTO);
	if (rc == 0)
		rc = x_cmp(r, NFT_CMP_EQ, &tcp, sizeof tcp);
	if (rc == 0)
		rc = x_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
	if (rc != 0)
		return rc;
	uint16_t lo = htons(first), hi = htons(last);
	if (first == last)
		return x_cmp(r, NFT_CMP_EQ, &lo, sizeof lo);
	rc = x_cmp(r, NFT_CMP_GTE, &lo, sizeof lo);
	return rc ? rc : x_cmp(r, NFT_CMP_LTE, &hi, sizeof hi);
}

static struct nftnl_expr *limit_new(uint64_t rate, uint32_t burst)
{
	struct nftnl_expr *e = nftnl_expr_alloc("limit");
	if (e == NULL)
		return NULL;
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, rate);
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1); /* seconds */
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, burst);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, 0);
	return e;
}

/* update @set { <key in reg 1..> limit rate FLOW/second }: the per-flow
 * bucket; over its rate the rule stops here (not logged). */
static int x_flow_limit(struct nftnl_rule *r, const char *set, uint32_t set_id)
{
	struct nftnl_expr *lim = limit_new(FENCE_FLOW_RATE, FENCE_FLOW_BURST);
	if (lim == NULL)
		return -ENOMEM;
	struct nftnl_expr *e = nftnl_expr_alloc("dynset");
	if (e == NULL) {
		nftnl_expr_free(lim);
		return -ENOMEM;
	}
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
	nftnl_expr_set_u64(e, NFTNL_EXPR_DYNSET_TIMEOUT, FENCE_FLOW_TIMEOUT);
	nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SET_ID, set_id);
	nftnl_expr_set(e, NFTNL_EXPR_DYNSET_EXPR, lim, 0); /* e owns lim */
	return add_expr(r, e);
}

/* The key in reg 1.. is not in @set: with the dynset above, a packet of a
 * new flow that found the set full (a repeat over its bucket is in it). */
static int x_not_in_set(struct nftnl_rule *r, const char *set, uint32_t set_id)
{
	struct nftnl_expr *e = nftnl_expr_alloc("lookup");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
	return add_expr(r, e);
}

static int x_log(struct nftnl_rule *r, uint16_t group, const char *prefix)
{
	struct nftnl_expr *e = nftnl_expr_alloc("log");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, group);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, FENCE_SNAPLEN);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix);
	return add_expr(r, e);
}

/* ---- the ruleset ---- */

struct fence_batch {
	struct mnl_nlmsg_batch *b;
	char *buf;
	size_t buflen;
	uint32_t seq;
	uint32_t last_ack_seq; /* the batch is done when this is acked */
	int nmsgs;
};

static int fb_init(struct fence_batch *fb)
{
	/* The limit holds the largest ruleset (FENCE_MAX_PUBLISHED ranges);
	 * the buffer is twice the limit because libmnl writes the message
	 * that crosses the limit past it before reporting the batch full. */
	size_t limit = (size_t)MNL_SOCKET_BUFFER_SIZE * 32;
	fb->buflen = 2 * limit;
	fb->buf = malloc(fb->buflen);
	if (fb->buf == NULL)
		return -ENOMEM;
	fb->b = mnl_nlmsg_batch_start(fb->buf, limit);
	fb->seq = (uint32_t)time(NULL);
	fb->nmsgs = 0;
	fb->last_ack_seq = 0;
	nftnl_batch_begin(mnl_nlmsg_batch_current(fb->b), fb->seq++);
	mnl_nlmsg_batch_next(fb->b);
	return 0;
}

static void fb_free(struct fence_batch *fb)
{
	if (fb->b != NULL)
		mnl_nlmsg_batch_stop(fb->b);
	free(fb->buf);
}

static struct nlmsghdr *fb_msg(struct fence_batch *fb, uint16_t type,
			       uint16_t flags)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(
	    mnl_nlmsg_batch_current(fb->b), type, NFPROTO_INET, flags, fb->seq);
	if (flags & NLM_F_ACK)
		fb->last_ack_seq = fb->seq;
	fb->seq++;
	fb->nmsgs++;
	return nlh;
}

static int fb_next(struct fence_batch *fb)
{
	/* mnl_nlmsg_batch_next returns false when the buffer is full. */
	return mnl_nlmsg_batch_next(fb->b) ? 0 : -ENOSPC;
}

/* comment (may be NULL) goes into the table's user data the way nft
 * stores a table comment, so `nft list tables` shows it. */
static int fb_table(struct fence_batch *fb, const char *name, uint16_t type,
		    uint16_t flags, const char *comment)
{
	struct nftnl_table *t = nftnl_table_alloc();
	if (t == NULL)
		return -ENOMEM;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	if (comment != NULL) {
		struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(256);
		if (u == NULL || !nftnl_udata_put_strz(
				     u, NFTNL_UDATA_TABLE_COMMENT, comment)) {
			nftnl_udata_buf_free(u);
			nftnl_table_free(t);
			return -ENOMEM;
		}
		nftnl_table_set_data(t, NFTNL_TABLE_USERDATA,
				     nftnl_udata_buf_data(u),
				     nftnl_udata_buf_len(u));
		nftnl_udata_buf_free(u);
	}
	nftnl_table_nlmsg_build_payload(fb_msg(fb, type, flags), t);
	nftnl_table_free(t);
	return fb_next(fb);
}

static int fb_chain(struct fence_batch *fb, const char *table, const char *name,
		    uint32_t hook, int32_t prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	if (c == NULL)
		return -ENOMEM;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nftnl_chain_nlmsg_build_payload(
	    fb_msg(fb, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_ACK), c);
	nftnl_chain_free(c);
	return fb_next(fb);
}

/* The per-flow buckets of one address family: key = destination address .
 * protocol . destination port (0 without ports), one 32-bit word each for
 * the last two. Key types are nft's ids for ipv4_addr/ipv6_addr .
 * inet_proto . inet_service, so `nft list` shows the set readably. */
#define FENCE_SET4	 "flows4"
#define FENCE_SET6	 "flows6"
#define FENCE_SET4_ID	 1
#define FENCE_SET6_ID	 2
#define CONCAT3(a, b, c) (((uint32_t)(a) << 12) | ((uint32_t)(b) << 6) | (c))

static int fb_flow_set(struct fence_batch *fb, const char *table,
		       const char *name, uint32_t id, int v6)
{
	struct nftnl_set *st = nftnl_set_alloc();
	if (st == NULL)
		return -ENOMEM;
	nftnl_set_set_u32(st, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(st, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(st, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(st, NFTNL_SET_ID, id);
	nftnl_set_set_u32(st, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_EVAL);
	nftnl_set_set_u32(st, NFTNL_SET_KEY_TYPE, CONCAT3(v6 ? 8 : 7, 12, 13));
	nftnl_set_set_u32(st, NFTNL_SET_KEY_LEN, v6 ? 24 : 12);
	nftnl_set_set_u32(st, NFTNL_SET_DESC_SIZE, FENCE_FLOW_SLOTS);
	nftnl_set_set_u64(st, NFTNL_SET_TIMEOUT, FENCE_FLOW_TIMEOUT);
	nftnl_set_nlmsg_build_payload(
	    fb_msg(fb, NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_ACK), st);
	nftnl_set_free(st);
	return fb_next(fb);
}

static struct nftnl_rule *rule_new(const char *table, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (r == NULL)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

static int fb_rule(struct fence_batch *fb, struct nftnl_rule *r, int rc)
{
	if (r == NULL)
		return -ENOMEM;
	if (rc == 0) {
		nftnl_rule_nlmsg_build_payload(
		    fb_msg(fb, NFT_MSG_NEWRULE,
			   NLM_F_APPEND | NLM_F_CREATE | NLM_F_ACK),
		    r);
		rc = fb_next(fb);
	}
	nftnl_rule_free(r);
	return rc;
}

int fence_config_check(const struct fence_config *c, char *err, size_t errlen)
{
	size_t tl = strnlen(c->table, sizeof c->table);
	size_t pl = strlen(FENCE_TABLE_PREFIX);
	if (tl == sizeof c->table || tl <= pl ||
	    strncmp(c->table, FENCE_TABLE_PREFIX, pl) != 0) {
		snprintf(err, errlen,
			 "fence: table name must be '%s<session id>'",
			 FENCE_TABLE_PREFIX);
		return -EINVAL;
	}
	for (size_t i = 0; i < tl; i++) {
		char ch = c->table[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')) {
			snprintf(err, errlen,
				 "fence: table name '%.63s' has a character "
				 "other than letters, digits, '_' and '-'",
				 c->table);
			return -EINVAL;
		}
	}
	size_t bl = strnlen(c->bridge, sizeof c->bridge);
	if (bl == 0 || bl >= IFNAMSIZ) {
		snprintf(err, errlen,
			 "fence: bridge interface name must be 1-%d bytes",
			 IFNAMSIZ - 1);
		return -EINVAL;
	}
	if (c->proxy_port == 0 || c->proxy_addr.s_addr == htonl(INADDR_ANY)) {
		snprintf(err, errlen,
			 "fence: the proxy address and port must be set");
		return -EINVAL;
	}
	if (c->npublished > FENCE_MAX_PUBLISHED) {
		snprintf(err, errlen, "fence: more than %d published ranges",
			 FENCE_MAX_PUBLISHED);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->npublished; i++) {
		if (c->published[i].first == 0 ||
		    c->published[i].last < c->published[i].first) {
			snprintf(err, errlen,
				 "fence: published range %u-%u is empty",
				 c->published[i].first, c->published[i].last);
			return -EINVAL;
		}
	}
	return 0;
}

void fence_log_prefix(const char *table, char *buf, size_t len)
{
	/* The kernel keeps at most 127 bytes of prefix; the table name is at
	 * most 63, so the session id always survives. */
	snprintf(buf, len, "agentsafe %s", table + strlen(FENCE_TABLE_PREFIX));
}

/* ---- owner ---- */

/* Field 22 of /proc/PID/stat: the start time in clock ticks since boot,
 * which with the pid names one process (pids are reused); and field 3, the
 * state ('Z': exited, not yet reaped). */
static int proc_starttime(pid_t pid, unsigned long long *out, char *state)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -errno;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	(void)fclose(f); /* read-only: nothing to lose */
	buf[n] = '\0';
	/* comm may hold spaces and ')': fields restart after the last ')'. */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -EINVAL;
	p++;
	if (p[0] != ' ' || p[1] == '\0')
		return -EINVAL;
	*state = p[1];
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (p == NULL)
			return -EINVAL;
	}
	char *end = NULL;
	errno = 0;
	*out = strtoull(p + 1, &end, 10);
	if (errno != 0 || end == p + 1)
		return -EINVAL;
	return 0;
}

static unsigned long long own_pidns(void)
{
	struct stat st;
	return stat("/proc/self/ns/pid", &st) == 0
		   ? (unsigned long long)st.st_ino
		   : 0;
}

int fence_owner_format(pid_t pid, char *buf, size_t len)
{
	unsigned long long start = 0;
	char state = 0;
	int rc = proc_starttime(pid, &start, &state);
	if (rc != 0)
		return rc;
	if (state == 'Z' || state == 'X')
		return -ESRCH; /* a session cannot outlive its owner */
	snprintf(buf, len, "agentsafe owner pid=%ld start=%llu pidns=%llu",
		 (long)pid, start, own_pidns());
	return 0;
}

/* Reads "<key>=<decimal>" at *p and moves past it and one space. */
static bool owner_field(const char **p, const char *key,
			unsigned long long *out)
{
	size_t kl = strlen(key);
	if (strncmp(*p, key, kl) != 0 || (*p)[kl] != '=' ||
	    (*p)[kl + 1] < '0' || (*p)[kl + 1] > '9')
		return false;
	char *end = NULL;
	errno = 0;
	*out = strtoull(*p + kl + 1, &end, 10);
	if (errno != 0 || (*end != ' ' && *end != '\0'))
		return false;
	*p = *end == ' ' ? end + 1 : end;
	return true;
}

bool fence_owner_is_live(const char *comment)
{
	static const char tag[] = "agentsafe owner ";
	unsigned long long pid = 0, start = 0, ns = 0, now = 0;
	/* Anything we cannot judge is kept: removing a live session's
	 * table would open its fence, keeping a dead one only costs rules. */
	if (comment == NULL || strncmp(comment, tag, sizeof tag - 1) != 0)
		return true;
	const char *p = comment + sizeof tag - 1;
	if (!owner_field(&p, "pid", &pid) ||
	    !owner_field(&p, "start", &start) ||
	    !owner_field(&p, "pidns", &ns) || *p != '\0' || pid == 0 ||
	    pid > INT32_MAX || ns != own_pidns())
		return true;
	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		return false;
	char state = 0;
	if (proc_starttime((pid_t)pid, &now, &state) != 0)
		return true; /* e.g. /proc mounted hidepid */
	/* A zombie has exited (crashed) and holds nothing. */
	return now == start && state != 'Z' && state != 'X';
}

/* The match and key of a logged drop: from the bridge, of family v6 (0:
 * IPv4) and protocol kind k (0 TCP, 1 UDP, 2 anything else). The key is
 * built in registers reg32 8.. (NFT_REG_1 onwards): address, protocol,
 * port. */
static int drop_key(struct nftnl_rule *r, const struct fence_config *c, int v6,
		    int k)
{
	uint8_t fam = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
	uint8_t tcp = IPPROTO_TCP, udp = IPPROTO_UDP;
	uint32_t alen = v6 ? 16 : 4;
	uint32_t aoff = v6 ? 24 : 16; /* daddr in the network header */
	uint32_t preg = NFT_REG32_00 + alen / 4, dreg = preg + 1;
	int e = x_ifname(r, NFT_META_IIFNAME, c->bridge);
	if (e == 0)
		e = x_meta(r, NFT_META_NFPROTO) ||
		    x_cmp(r, NFT_CMP_EQ, &fam, sizeof fam) ||
		    x_meta(r, NFT_META_L4PROTO);
	if (e == 0 && k == 0)
		e = x_cmp(r, NFT_CMP_EQ, &tcp, sizeof tcp);
	else if (e == 0 && k == 1)
		e = x_cmp(r, NFT_CMP_EQ, &udp, sizeof udp);
	else if (e == 0)
		e = x_cmp(r, NFT_CMP_NEQ, &tcp, sizeof tcp) ||
		    x_cmp(r, NFT_CMP_NEQ, &udp, sizeof udp);
	if (e == 0)
		e = x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, aoff, alen) ||
		    x_meta_to(r, NFT_META_L4PROTO, preg) ||
		    (k < 2 ? x_payload_to(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2,
					  dreg)
			   : x_zero_to(r, dreg));
	return e;
}

/* One logged drop: the key through the flow's bucket into NFLOG, then
 * dropped. */
static int drop_logged(struct nftnl_rule *r, const struct fence_config *c,
		       const char *prefix, int v6, int k)
{
	int e = drop_key(r, c, v6, k);
	if (e == 0)
		e = x_flow_limit(r, v6 ? FENCE_SET6 : FENCE_SET4,
				 v6 ? FENCE_SET6_ID : FENCE_SET4_ID) ||
		    x_log(r, c->nflog_group, prefix) || x_counter(r) ||
		    x_verdict(r, NF_DROP);
	return chain_ok(e);
}

/* After drop_logged: a packet of a new flow that found the flow set full
 * is logged with the set-full tag (every such packet, no bucket: the
 * reader counts them in its summary instead of itemising), then dropped.
 * Repeats over their flow's bucket fall through to the unlogged drop. */
static int drop_set_full(struct nftnl_rule *r, const struct fence_config *c,
			 const char *prefix, int v6, int k)
{
	int e = drop_key(r, c, v6, k);
	if (e == 0)
		e = x_not_in_set(r, v6 ? FENCE_SET6 : FENCE_SET4,
				 v6 ? FENCE_SET6_ID : FENCE_SET4_ID) ||
		    x_log(r, c->nflog_group, prefix) || x_counter(r) ||
		    x_verdict(r, NF_DROP);
	return chain_ok(e);
}

/* The table (tagged with its owner), its three base chains and the two
 * per-flow log-limit sets. */
static int fb_skeleton(struct fence_batch *fb, const char *t, const char *owner)
{
	/* add + delete + add: replaces a same-named table atomically and
	 * works whether or not it existed. */
	int rc =
	    fb_table(fb, t, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK, NULL);
	if (rc == 0)
		rc = fb_table(fb, t, NFT_MSG_DELTABLE, NLM_F_ACK, NULL);
	if (rc == 0)
		rc = fb_table(fb, t, NFT_MSG_NEWTABLE,
			      NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, owner);
	if (rc == 0)
		rc = fb_chain(fb, t, "input", NF_INET_LOCAL_IN, FENCE_PRIORITY);
	if (rc == 0)
		rc =
		    fb_chain(fb, t, "forward", NF_INET_FORWARD, FENCE_PRIORITY);
	if (rc == 0)
		rc = fb_chain(fb, t, "inbound", NF_INET_FORWARD,
			      FENCE_INBOUND_PRIORITY);
	if (rc == 0)
		rc = fb_flow_set(fb, t, FENCE_SET4, FENCE_SET4_ID, 0);
	if (rc == 0)
		rc = fb_flow_set(fb, t, FENCE_SET6, FENCE_SET6_ID, 1);
	return rc;
}

/* What the bridge may send: on input, replies and then TCP to the proxy;
 * on forward, replies only (of connections the inbound chain let in). */
static int fb_outbound_accepts(struct fence_batch *fb,
			       const struct fence_config *c, const char *t)
{
	uint8_t v4 = NFPROTO_IPV4;
	struct nftnl_rule *r = rule_new(t, "input");
	int rc =
	    fb_rule(fb, r,
		    r ? chain_ok(x_ifname(r, NFT_META_IIFNAME, c->bridge) ||
				 x_ct_established(r) || x_verdict(r, NF_ACCEPT))
		      : -ENOMEM);
	if (rc == 0) {
		r = rule_new(t, "input");
		int e = r ? x_ifname(r, NFT_META_IIFNAME, c->bridge) : -ENOMEM;
		if (e == 0)
			e = x_meta(r, NFT_META_NFPROTO) ||
			    x_cmp(r, NFT_CMP_EQ, &v4, sizeof v4) ||
			    x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4) ||
			    x_cmp(r, NFT_CMP_EQ, &c->proxy_addr.s_addr, 4) ||
			    x_tcp_dport(r, c->proxy_port, c->proxy_port) ||
			    x_counter(r) || x_verdict(r, NF_ACCEPT);
		rc = fb_rule(fb, r, chain_ok(e));
	}
	if (rc == 0) {
		r = rule_new(t, "forward");
		rc = fb_rule(
		    fb, r,
		    r ? chain_ok(x_ifname(r, NFT_META_IIFNAME, c->bridge) ||
				 x_ct_established(r) || x_verdict(r, NF_ACCEPT))
		      : -ENOMEM);
	}
	return rc;
}

/* inbound: routed new connections to the container only on its
 * published TCP ports; replies to its own (proxy) connections never
 * come this way (the proxy is local). */
static int fb_inbound_rules(struct fence_batch *fb,
			    const struct fence_config *c, const char *t)
{
	int rc = 0;
	struct nftnl_rule *r;
	for (size_t i = 0; rc == 0 && i < c->npublished; i++) {
		r = rule_new(t, "inbound");
		rc = fb_rule(
		    fb, r,
		    r ? chain_ok(x_ifname(r, NFT_META_OIFNAME, c->bridge) ||
				 x_tcp_dport(r, c->published[i].first,
					     c->published[i].last) ||
				 x_verdict(r, NF_ACCEPT))
		      : -ENOMEM);
	}
	if (rc == 0) {
		r = rule_new(t, "inbound");
		rc = fb_rule(
		    fb, r,
		    r ? chain_ok(x_ifname(r, NFT_META_OIFNAME, c->bridge) ||
				 x_ct_not_established(r) || x_counter(r) ||
				 x_verdict(r, NF_DROP))
		      : -ENOMEM);
	}
	return rc;
}

/* The end of the input and forward chains: everything not accepted above
 * is dropped, logged per flow where it can be keyed. */
static int fb_drop_rules(struct fence_batch *fb, const struct fence_config *c,
			 const char *t, const char *prefix,
			 const char *prefix_full)
{
	static const char *const chains[] = {"input", "forward"};
	int rc = 0;
	struct nftnl_rule *r;
	for (size_t i = 0; rc == 0 && i < 2; i++) {
		/* Logged drops by family and protocol (each keyed into its
		 * family's flow set), then the unlogged remainder: packets
		 * over a bound, and anything neither IPv4 nor IPv6. */
		for (int v6 = 0; rc == 0 && v6 < 2; v6++) {
			for (int k = 0; rc == 0 && k < 3; k++) {
				r = rule_new(t, chains[i]);
				rc =
				    fb_rule(fb, r,
					    r ? drop_logged(r, c, prefix, v6, k)
					      : -ENOMEM);
			}
		}
		/* Then new flows that found their set full (logged with
		 * the tag, counted by the reader). */
		for (int j = 0; rc == 0 && j < 6; j++) {
			r = rule_new(t, chains[i]);
			rc = fb_rule(
			    fb, r,
			    r ? drop_set_full(r, c, prefix_full, j >= 3, j % 3)
			      : -ENOMEM);
		}
		if (rc != 0)
			break;
		r = rule_new(t, chains[i]);
		rc = fb_rule(
		    fb, r,
		    r ? chain_ok(x_ifname(r, NFT_META_IIFNAME, c->bridge) ||
				 x_counter(r) || x_verdict(r, NF_DROP))
		      : -ENOMEM);
	}
	return rc;
}

int fence_build_batch(const struct fence_config *c, struct fence_batch **out,
		      char *err, size_t errlen)
{
	*out = NULL;
	int rc = fence_config_check(c, err, errlen);
	if (rc != 0)
		return rc;
	char owner[128];
	rc = fence_owner_format(c->owner_pid != 0 ? c->owner_pid : getpid(),
				owner, sizeof owner);
	if (rc != 0) {
		snprintf(err, errlen,
			 "fence: cannot read the start time of owner pid %ld: "
			 "%s",
			 (long)(c->owner_pid != 0 ? c->owner_pid : getpid()),
			 strerror(-rc));
		return rc;
	}
	struct fence_batch *fb = calloc(1, sizeof *fb);
	if (fb == NULL || fb_init(fb) != 0) {
		free(fb);
		snprintf(err, errlen, "fence: out of memory");
		return -ENOMEM;
	}
	char prefix[128], prefix_full[160];
	fence_log_prefix(c->table, prefix, sizeof prefix);
	snprintf(prefix_full, sizeof prefix_full, "%s%s", prefix,
		 FENCE_NFLOG_SET_FULL_TAG);
	const char *t = c->table;
	rc = fb_skeleton(fb, t, owner);
	if (rc == 0)
		rc = fb_outbound_accepts(fb, c, t);
	if (rc == 0)
		rc = fb_inbound_rules(fb, c, t);
	if (rc == 0)
		rc = fb_drop_rules(fb, c, t, prefix, prefix_full);
	if (rc != 0) {
		fb_free(fb);
		free(fb);
		snprintf(err, errlen, "fence: cannot build the rule batch: %s",
			 strerror(-rc));
		return rc;
	}
	nftnl_batch_end(mnl_nlmsg_batch_current(fb->b), fb->seq++);
	mnl_nlmsg_batch_next(fb->b);
	*out = fb;
	return 0;
}

const void *fence_batch_data(const struct fence_batch *fb, size_t *len)
{
	*len = mnl_nlmsg_batch_size(fb->b);
	return mnl_nlmsg_batch_head(fb->b);
}

int fence_batch_count(const struct fence_batch *fb)
{
	return fb->nmsgs;
}

void fence_batch_free(struct fence_batch *fb)
{
	if (fb == NULL)
		return;
	fb_free(fb);
	free(fb);
}

/* Sends a batch and reads the kernel's acks until the last message's: an
 * error ack means the kernel rolled the whole batch back. No answer within
 * FENCE_ACK_TIMEOUT_MS is an error too, so a fence is never reported
 * installed (or removed) without the kernel saying so. */
#define FENCE_ACK_TIMEOUT_MS 5000

static int read_acks(struct mnl_socket *nl, uint32_t last_seq)
{
	char buf[8192]; /* MNL_SOCKET_BUFFER_SIZE is not a constant */
	uint32_t portid = mnl_socket_get_portid(nl);
	for (;;) {
		struct pollfd p = {mnl_socket_get_fd(nl), POLLIN, 0};
		int n = poll(&p, 1, FENCE_ACK_TIMEOUT_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		ssize_t got = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (got < 0)
			return -errno;
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
		int len = (int)got;
		for (; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_pid != portid ||
			    nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof *e))
				return -EBADMSG;
			if (e->error != 0)
				return e->error < 0 ? e->error : -e->error;
			if (nlh->nlmsg_seq == last_seq)
				return 0;
		}
	}
}

static int send_batch(const void *data, size_t len, uint32_t last_seq,
		      char *err, size_t errlen, const char *what)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl == NULL) {
		int e = errno;
		snprintf(err, errlen, "fence: netlink socket: %s", strerror(e));
		return -e;
	}
	int rc = 0;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_sendto(nl, data, len) < 0)
		rc = -errno;
	else
		rc = read_acks(nl, last_seq);
	if (rc != 0)
		snprintf(err, errlen, "fence: %s: %s%s", what, strerror(-rc),
			 rc == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
	mnl_socket_close(nl);
	return rc;
}

int fence_apply(const struct fence_config *c, char *err, size_t errlen)
{
	struct fence_batch *fb = NULL;
	int rc = fence_build_batch(c, &fb, err, errlen);
	if (rc != 0)
		return rc;
	size_t len = 0;
	const void *data = fence_batch_data(fb, &len);
	char what[96];
	snprintf(what, sizeof what, "installing table %.63s", c->table);
	rc = send_batch(data, len, fb->last_ack_seq, err, errlen, what);
	fence_batch_free(fb);
	return rc;
}

int fence_remove(const char *table, char *err, size_t errlen)
{
	struct fence_batch fb;
	if (fb_init(&fb) != 0) {
		snprintf(err, errlen, "fence: out of memory");
		return -ENOMEM;
	}
	int rc = fb_table(&fb, table, NFT_MSG_DELTABLE, NLM_F_ACK, NULL);
	if (rc == 0) {
		nftnl_batch_end(mnl_nlmsg_batch_current(fb.b), fb.seq++);
		mnl_nlmsg_batch_next(fb.b);
		char what[96];
		snprintf(what, sizeof what, "removing table %.63s", table);
		rc = send_batch(mnl_nlmsg_batch_head(fb.b),
				mnl_nlmsg_batch_size(fb.b), fb.last_ack_seq,
				err, errlen, what);
	}
	fb_free(&fb);
	return rc;
}

/* ---- sweep ---- */

struct table_list {
	char names[256][64];
	char comments[256][128]; /* "" when the table has none */
	size_t n;
};

static int comment_cb(const struct nftnl_udata *attr, void *data)
{
	char *out = data;
	uint8_t len = nftnl_udata_len(attr);
	if (nftnl_udata_type(attr) != NFTNL_UDATA_TABLE_COMMENT || len == 0)
		return 0;
	/* Bounded copy; the stored string may lack its NUL. */
	size_t n = len < 127 ? len : 127;
	memcpy(out, nftnl_udata_get(attr), n);
	out[n] = '\0';
	return 0;
}

static int table_cb(const struct nlmsghdr *nlh, void *data)
{
	struct table_list *l = data;
	struct nftnl_table *t = nftnl_table_alloc();
	if (t == NULL)
		return MNL_CB_ERROR;
	if (nftnl_table_nlmsg_parse(nlh, t) == 0 &&
	    nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY) == NFPROTO_INET) {
		const char *name = nftnl_table_get_str(t, NFTNL_TABLE_NAME);
		if (name != NULL &&
		    strncmp(name, FENCE_TABLE_PREFIX,
			    strlen(FENCE_TABLE_PREFIX)) == 0 &&
		    strlen(name) < sizeof l->names[0] &&
		    l->n < sizeof l->names / sizeof l->names[0]) {
			memcpy(l->names[l->n], name, strlen(name) + 1);
			l->comments[l->n][0] = '\0';
			uint32_t ulen = 0;
			const void *ud = nftnl_table_get_data(
			    t, NFTNL_TABLE_USERDATA, &ulen);
			if (ud != NULL && ulen > 0)
				(void)nftnl_udata_parse(ud, ulen, comment_cb,
							l->comments[l->n]);
			l->n++;
		}
	}
	nftnl_table_free(t);
	return MNL_CB_OK;
}

static int list_tables(struct table_list *l, char *err, size_t errlen)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl == NULL) {
		int e = errno;
		snprintf(err, errlen, "fence: netlink socket: %s", strerror(e));
		return -e;
	}
	char buf[8192]; /* MNL_SOCKET_BUFFER_SIZE is not a constant */
	uint32_t seq = (uint32_t)time(NULL);
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(
	    buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_DUMP, seq);
	int rc = 0;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		rc = -errno;
	} else {
		uint32_t portid = mnl_socket_get_portid(nl);
		for (;;) {
			ssize_t got = mnl_socket_recvfrom(nl, buf, sizeof buf);
			if (got < 0) {
				rc = -errno;
				break;
			}
			int r = mnl_cb_run(buf, (size_t)got, seq, portid,
					   table_cb, l);
			if (r < 0) {
				rc = -errno;
				break;
			}
			if (r == MNL_CB_STOP)
				break;
		}
	}
	if (rc != 0)
		snprintf(err, errlen, "fence: listing tables: %s",
			 strerror(-rc));
	mnl_socket_close(nl);
	return rc;
}

int fence_sweep(bool (*is_live)(const char *session_id, void *arg), void *arg,
		char *err, size_t errlen)
{
	struct table_list *l = calloc(1, sizeof *l);
	if (l == NULL) {
		snprintf(err, errlen, "fence: out of memory");
		return -ENOMEM;
	}
	int rc = list_tables(l, err, errlen);
	int removed = 0;
	for (size_t i = 0; rc == 0 && i < l->n; i++) {
		const char *id = l->names[i] + strlen(FENCE_TABLE_PREFIX);
		if (is_live != NULL ? is_live(id, arg)
				    : fence_owner_is_live(l->comments[i]))
			continue;
		rc = fence_remove(l->names[i], err, errlen);
		if (rc == -ENOENT)
			rc = 0; /* another sweeper got there first */
		else if (rc == 0)
			removed++;
	}
	free(l);
	return rc != 0 ? rc : removed;
}
