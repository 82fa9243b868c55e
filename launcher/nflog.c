/* The NFLOG reader: binds the session's log group over a raw nfnetlink
 * socket (libmnl) and turns each packet the fence dropped into one `drop`
 * record. Flood bounds, on top of the kernel's per-flow buckets: repeats
 * of one flow within 5 s of each other (SYN retransmits, a ping loop) fold
 * into its first record; distinct flows beyond a record budget (a scan) are
 * counted, not itemised, and so are packets the kernel tagged because its
 * flow set was full; the counts are written as one summary record at
 * most every 10 s and when the reader closes, so nothing is silently lost
 * and a flood costs at most ~REC_RATE records a second on disk.
 * A record's ts is the packet's time as the kernel stamped it
 * (NFULA_TIMESTAMP, given for the input and forward hooks the fence logs
 * at) when that is plausible, else the time the message was read. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>

#include "egress_log.h"
#include "reason.h"
#include "nflog_int.h"

#define NFLOG_COPY_RANGE 128
#define NFLOG_RCVBUF	 (4 << 20) /* room for a burst while we write */
#define FLOW_SLOTS	 128
#define FLOW_QUIET_MS	 5000  /* a flow is new again after this much silence */
#define REC_RATE	 20    /* itemised records per second, sustained */
#define REC_BURST	 200   /* ... and in a burst */
#define SUMMARY_MS	 10000 /* at most one summary record this often */
#define READS_PER_CALL	 64    /* then yield to the caller's event loop */
/* A kernel timestamp further from the read than this is not believed (a
 * clock step, or a sender-set delivery time): the read time is used. */
#define STAMP_PAST_US	(60LL * 1000000)
#define STAMP_FUTURE_US (1LL * 1000000)

struct flow {
	char key[128];
	int64_t last_ms;
};

struct fence_nflog {
	struct mnl_socket *nl;
	struct egress_log *log;
	uint16_t group;
	uint32_t portid;
	char *buf;
	size_t buflen;
	struct flow flows[FLOW_SLOTS];
	size_t next_slot;
	uint64_t folded;
	/* record budget: tokens (scaled by 1000) refilled at REC_RATE/s */
	int64_t tokens, refill_ms;
	/* since the last summary record: new flows past the record budget,
	 * receive-buffer overflows, packets the kernel tagged set-full */
	uint64_t unitemised, lost, set_full;
	int64_t summary_ms;
	int64_t fake_ms;      /* tests: a fixed clock when > 0 */
	int64_t fake_real_us; /* tests: a fixed wall clock when > 0 */
	const char *origin;   /* records' "origin" field; NULL: none */
};

void fence_nflog_set_origin(struct fence_nflog *n, const char *origin)
{
	n->origin = origin;
}

static int64_t now_ms(const struct fence_nflog *n)
{
	if (n->fake_ms > 0)
		return n->fake_ms;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *fence_proto_name(uint8_t proto, char *buf, size_t len)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "icmpv6";
	default:
		snprintf(buf, len, "%u", proto);
		return buf;
	}
}

int fence_parse_packet(const uint8_t *p, size_t len, struct fence_pkt *out)
{
	memset(out, 0, sizeof *out);
	out->icmp_type = -1;
	if (len < 1)
		return -EINVAL;
	size_t l4off;
	bool first_fragment = true;
	unsigned version = p[0] >> 4;
	if (version == 4) {
		if (len < 20)
			return -EINVAL;
		size_t ihl = (size_t)(p[0] & 0x0f) * 4;
		if (ihl < 20 || ihl > len)
			return -EINVAL;
		out->family = 4;
		out->proto = p[9];
		inet_ntop(AF_INET, p + 12, out->src, sizeof out->src);
		inet_ntop(AF_INET, p + 16, out->dst, sizeof out->dst);
		first_fragment = ((((unsigned)p[6] << 8) | p[7]) & 0x1fff) == 0;
		l4off = ihl;
	} else if (version == 6) {
		if (len < 40)
			return -EINVAL;
		out->family = 6;
		out->proto = p[6];
		inet_ntop(AF_INET6, p + 8, out->src, sizeof out->src);
		inet_ntop(AF_INET6, p + 24, out->dst, sizeof out->dst);
		l4off = 40;
		/* Walk the common extension headers (bounded by len). */
		for (int hops = 0; hops < 8; hops++) {
			uint8_t nh = out->proto;
			if (nh != 0 && nh != 43 && nh != 60 && nh != 44)
				break;
			if (l4off + 8 > len)
				return 0;
			if (nh == 44) { /* fragment header */
				first_fragment =
				    ((((unsigned)p[l4off + 2] << 8) |
				      p[l4off + 3]) &
				     0xfff8) == 0;
				out->proto = p[l4off];
				l4off += 8;
			} else {
				out->proto = p[l4off];
				l4off += ((size_t)p[l4off + 1] + 1) * 8;
			}
		}
	} else {
		return -EINVAL;
	}
	if (!first_fragment || l4off > len)
		return 0;
	const uint8_t *l4 = p + l4off;
	size_t l4len = len - l4off;
	if ((out->proto == IPPROTO_TCP || out->proto == IPPROTO_UDP) &&
	    l4len >= 4) {
		out->sport = (uint16_t)((l4[0] << 8) | l4[1]);
		out->dport = (uint16_t)((l4[2] << 8) | l4[3]);
	} else if ((out->proto == IPPROTO_ICMP ||
		    out->proto == IPPROTO_ICMPV6) &&
		   l4len >= 1) {
		out->icmp_type = l4[0];
	}
	return 0;
}

/* True when this flow was recorded within FLOW_QUIET_MS (then refreshed). */
static bool flow_seen(struct fence_nflog *n, const struct fence_pkt *k)
{
	char key[128];
	/* The source port is left out on purpose: a retried connect from a
	 * new port is the same attempt for a reader. The origin is in: the
	 * agent's first packet to where the self-check probed is a record of
	 * its own, never folded into the labelled one. */
	snprintf(key, sizeof key, "%u|%s|%s|%u|%d|%s", k->proto, k->src, k->dst,
		 k->dport, k->icmp_type, n->origin ? n->origin : "");
	int64_t t = now_ms(n);
	for (size_t i = 0; i < FLOW_SLOTS; i++) {
		if (strcmp(n->flows[i].key, key) == 0) {
			bool recent = t - n->flows[i].last_ms < FLOW_QUIET_MS;
			n->flows[i].last_ms = t;
			return recent;
		}
	}
	struct flow *f = &n->flows[n->next_slot];
	n->next_slot = (n->next_slot + 1) % FLOW_SLOTS;
	memcpy(f->key, key, sizeof key);
	f->last_ms = t;
	return false;
}

/* Takes one record from the budget; false when a scan has spent it. */
static bool budget_take(struct fence_nflog *n)
{
	int64_t t = now_ms(n);
	if (t > n->refill_ms) {
		n->tokens += (t - n->refill_ms) * REC_RATE;
		if (n->tokens > (int64_t)REC_BURST * 1000)
			n->tokens = (int64_t)REC_BURST * 1000;
		n->refill_ms = t;
	}
	if (n->tokens < 1000)
		return false;
	n->tokens -= 1000;
	return true;
}

/* The summary window opens with the first packet it counts. */
static void count_unitemised(struct fence_nflog *n, uint64_t *counter)
{
	if (n->unitemised == 0 && n->lost == 0 && n->set_full == 0)
		n->summary_ms = now_ms(n);
	(*counter)++;
}

/* One record for what was not itemised; `force` at close. */
static void write_summary(struct fence_nflog *n, bool force)
{
	if (n->unitemised == 0 && n->lost == 0 && n->set_full == 0)
		return;
	int64_t t = now_ms(n);
	if (!force && t - n->summary_ms < SUMMARY_MS)
		return;
	char id[48], msg[256];
	struct egress_record r;
	egress_record_init(&r);
	egress_log_next_id(n->log, id, sizeof id);
	snprintf(msg, sizeof msg,
		 "%llu dropped packets of new flows not itemised (record "
		 "rate limit); %llu log overflows (the kernel dropped log "
		 "messages); %llu dropped packets of new flows not itemised "
		 "(the fence's flow set was full)",
		 (unsigned long long)n->unitemised, (unsigned long long)n->lost,
		 (unsigned long long)n->set_full);
	r.id = id;
	r.event = "drop";
	r.reason = egress_reason_name(EGRESS_REASON_FIREWALL);
	r.message = msg;
	r.count = (int64_t)(n->unitemised + n->set_full);
	r.origin = n->origin;
	(void)egress_log_write(n->log, &r);
	n->unitemised = 0;
	n->lost = 0;
	n->set_full = 0;
	n->summary_ms = t;
}

static void write_drop(struct fence_nflog *n, const struct fence_pkt *k,
		       int64_t time_us)
{
	char client[64], proto[8], msg[64];
	struct egress_record r;
	char id[48];
	egress_record_init(&r);
	egress_log_next_id(n->log, id, sizeof id);
	if (k->sport != 0)
		snprintf(client, sizeof client,
			 k->family == 6 ? "[%s]:%u" : "%s:%u", k->src,
			 k->sport);
	else
		snprintf(client, sizeof client, "%s", k->src);
	r.id = id;
	r.event = "drop";
	r.client = client;
	r.proto = fence_proto_name(k->proto, proto, sizeof proto);
	r.dst = k->dst;
	if (k->dport != 0)
		r.dport = k->dport;
	r.reason = egress_reason_name(EGRESS_REASON_FIREWALL);
	if (k->icmp_type >= 0) {
		snprintf(msg, sizeof msg, "%s type %d", r.proto, k->icmp_type);
		r.message = msg;
	}
	r.origin = n->origin;
	r.time_us = time_us;
	(void)egress_log_write(n->log, &r);
}

static int64_t real_now_us(const struct fence_nflog *n)
{
	if (n->fake_real_us > 0)
		return n->fake_real_us;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The packet's kernel timestamp in µs since the epoch, when present and
 * within STAMP_PAST_US before / STAMP_FUTURE_US after now; else 0 (the
 * writer then uses the time of writing, i.e. of the read). */
static int64_t packet_time_us(const struct fence_nflog *n,
			      const struct nlattr *a)
{
	struct nfulnl_msg_packet_timestamp t;
	if (a == NULL || mnl_attr_get_payload_len(a) < sizeof t)
		return 0;
	memcpy(&t, mnl_attr_get_payload(a), sizeof t);
	uint64_t sec = be64toh(t.sec), usec = be64toh(t.usec);
	if (sec > (uint64_t)INT64_MAX / 2000000 || usec >= 1000000)
		return 0;
	int64_t us = (int64_t)sec * 1000000 + (int64_t)usec;
	int64_t now = real_now_us(n);
	if (us <= 0 || us < now - STAMP_PAST_US || us > now + STAMP_FUTURE_US)
		return 0;
	return us;
}

static int attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);
	if (mnl_attr_type_valid(a, NFULA_MAX) < 0)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

/* The prefix ends with FENCE_NFLOG_SET_FULL_TAG (NUL-terminated within
 * the attribute, as the kernel sends it; anything else is no tag). */
static bool has_set_full_tag(const struct nlattr *a)
{
	if (a == NULL)
		return false;
	const char *p = mnl_attr_get_payload(a);
	size_t len = strnlen(p, mnl_attr_get_payload_len(a));
	size_t tl = sizeof FENCE_NFLOG_SET_FULL_TAG - 1;
	return len >= tl &&
	       memcmp(p + len - tl, FENCE_NFLOG_SET_FULL_TAG, tl) == 0;
}

static int packet_cb(const struct nlmsghdr *nlh, void *data)
{
	struct fence_nflog *n = data;
	if ((nlh->nlmsg_type & 0xff) != NFULNL_MSG_PACKET)
		return MNL_CB_OK;
	const struct nlattr *tb[NFULA_MAX + 1] = {0};
	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, tb) < 0)
		return MNL_CB_OK;
	if (tb[NFULA_PAYLOAD] == NULL)
		return MNL_CB_OK;
	if (has_set_full_tag(tb[NFULA_PREFIX])) {
		count_unitemised(n, &n->set_full);
		write_summary(n, false);
		return MNL_CB_OK;
	}
	const uint8_t *p = mnl_attr_get_payload(tb[NFULA_PAYLOAD]);
	size_t len = mnl_attr_get_payload_len(tb[NFULA_PAYLOAD]);
	struct fence_pkt k;
	if (fence_parse_packet(p, len, &k) != 0)
		return MNL_CB_OK;
	if (flow_seen(n, &k)) {
		n->folded++;
		return MNL_CB_OK;
	}
	if (budget_take(n))
		write_drop(n, &k, packet_time_us(n, tb[NFULA_TIMESTAMP]));
	else
		count_unitemised(n, &n->unitemised);
	write_summary(n, false);
	return MNL_CB_OK;
}

static int config(struct fence_nflog *n, uint8_t cmd, bool set_mode)
{
	char buf[8192]; /* MNL_SOCKET_BUFFER_SIZE is not a constant */
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = (uint32_t)time(NULL);
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
	g->nfgen_family = AF_UNSPEC;
	g->version = NFNETLINK_V0;
	g->res_id = htons(n->group);
	if (set_mode) {
		struct nfulnl_msg_config_mode mode = {
		    .copy_range = htonl(NFLOG_COPY_RANGE),
		    .copy_mode = NFULNL_COPY_PACKET,
		};
		mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof mode, &mode);
		/* Each packet at once: the kernel's default batches up to 100
		 * for up to 1 s, and the launch self-check waits on these. */
		mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(1));
	} else {
		struct nfulnl_msg_config_cmd c = {.command = cmd};
		mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof c, &c);
	}
	uint32_t seq = nlh->nlmsg_seq;
	if (mnl_socket_sendto(n->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	/* Wait for the ack of this request; packets logged meanwhile are
	 * handled, not mistaken for it. */
	for (;;) {
		struct pollfd p = {mnl_socket_get_fd(n->nl), POLLIN, 0};
		int r = poll(&p, 1, 5000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? -ETIMEDOUT : -errno;
		ssize_t got = mnl_socket_recvfrom(n->nl, buf, sizeof buf);
		if (got < 0)
			return -errno;
		const struct nlmsghdr *m = (const struct nlmsghdr *)buf;
		int len = (int)got;
		for (; mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
			if (m->nlmsg_type != NLMSG_ERROR) {
				fence_nflog_handle(n, m, m->nlmsg_len);
				continue;
			}
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);
			if (m->nlmsg_len < mnl_nlmsg_size(sizeof *e))
				return -EBADMSG;
			if (m->nlmsg_seq == seq)
				return e->error <= 0 ? e->error : -e->error;
		}
	}
}

int fence_nflog_open(uint16_t group, struct egress_log *log,
		     struct fence_nflog **out, char *err, size_t errlen)
{
	*out = NULL;
	struct fence_nflog *n = fence_nflog_new_detached(log);
	if (n == NULL) {
		snprintf(err, errlen, "fence: out of memory");
		return -ENOMEM;
	}
	n->group = group;
	n->buflen = (size_t)MNL_SOCKET_BUFFER_SIZE * 2;
	n->buf = malloc(n->buflen);
	n->nl = mnl_socket_open(NETLINK_NETFILTER);
	int rc = 0;
	if (n->buf == NULL || n->nl == NULL) {
		rc = n->buf == NULL ? -ENOMEM : -errno;
		snprintf(err, errlen, "fence: NFLOG socket: %s", strerror(-rc));
		goto fail;
	}
	if (mnl_socket_bind(n->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		rc = -errno;
		snprintf(err, errlen, "fence: NFLOG bind: %s", strerror(-rc));
		goto fail;
	}
	n->portid = mnl_socket_get_portid(n->nl);
	/* Room for a scan's burst. FORCE passes net.core.rmem_max with the
	 * CAP_NET_ADMIN we hold here; best effort either way. */
	int rcvbuf = NFLOG_RCVBUF;
	if (setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_RCVBUFFORCE,
		       &rcvbuf, sizeof rcvbuf) != 0)
		(void)setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET,
				 SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	rc = config(n, NFULNL_CFG_CMD_BIND, false);
	if (rc == 0)
		rc = config(n, 0, true);
	if (rc != 0) {
		snprintf(err, errlen, "fence: binding NFLOG group %u: %s%s",
			 group, strerror(-rc),
			 rc == -EPERM	? " (needs CAP_NET_ADMIN)"
			 : rc == -EBUSY ? " (another reader holds the group)"
					: "");
		goto fail;
	}
	*out = n;
	return 0;
fail:
	fence_nflog_free(n);
	return rc;
}

int fence_nflog_fd(const struct fence_nflog *n)
{
	return mnl_socket_get_fd(n->nl);
}

void fence_nflog_handle(struct fence_nflog *n, const void *buf, size_t len)
{
	/* Malformed messages are skipped whole; the packet was dropped
	 * anyway. libmnl trusts nlmsg_len far enough to step past the buffer
	 * on a length near 4 GiB (found by fuzz_fence_packet), so the framing
	 * is checked here first: each length at least a header and within
	 * what is left. */
	const unsigned char *p = buf;
	size_t left = len;
	while (left > 0) {
		struct nlmsghdr h;
		if (left < sizeof h)
			return;
		memcpy(&h, p, sizeof h);
		if (h.nlmsg_len < sizeof h || h.nlmsg_len > left)
			return;
		size_t step =
		    ((size_t)h.nlmsg_len + 3) & ~(size_t)3; /* MNL_ALIGN */
		if (step >= left)
			break;
		p += step;
		left -= step;
	}
	(void)mnl_cb_run(buf, len, 0, 0, packet_cb, n);
}

int fence_nflog_dispatch(struct fence_nflog *n)
{
	int fd = mnl_socket_get_fd(n->nl);
	int handled = 0;
	while (handled < READS_PER_CALL) {
		/* Only the kernel's messages: another local process may
		 * unicast to this socket's port id. */
		struct sockaddr_nl from;
		socklen_t fl = sizeof from;
		ssize_t got = recvfrom(fd, n->buf, n->buflen, MSG_DONTWAIT,
				       (struct sockaddr *)&from, &fl);
		if (got > 0 && (fl < sizeof from || from.nl_pid != 0))
			continue;
		if (got < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			/* ENOBUFS: the kernel dropped log messages because we
			 * were slow; the packets were still dropped, and the
			 * next summary record says messages were lost. */
			if (errno == ENOBUFS) {
				count_unitemised(n, &n->lost);
				continue;
			}
			return -errno;
		}
		if (got == 0)
			break;
		fence_nflog_handle(n, n->buf, (size_t)got);
		handled++;
	}
	write_summary(n, false);
	return handled;
}

uint64_t fence_nflog_folded(const struct fence_nflog *n)
{
	return n->folded;
}

struct fence_nflog *fence_nflog_new_detached(struct egress_log *log)
{
	struct fence_nflog *n = calloc(1, sizeof *n);
	if (n == NULL)
		return NULL;
	n->log = log;
	n->tokens = (int64_t)REC_BURST * 1000;
	n->refill_ms = now_ms(n);
	return n;
}

void fence_nflog_set_real_time(struct fence_nflog *n, int64_t us)
{
	n->fake_real_us = us;
}

void fence_nflog_set_time(struct fence_nflog *n, int64_t ms)
{
	n->fake_ms = ms;
	if (ms > 0 && n->refill_ms > ms)
		n->refill_ms = ms; /* clocks switched: no time has passed */
	if (ms > 0 && n->summary_ms > ms)
		n->summary_ms = ms;
}

void fence_nflog_free(struct fence_nflog *n)
{
	if (n == NULL)
		return;
	write_summary(n, true);
	/* Closing the socket unbinds the group (the kernel drops a closed
	 * port's instances), and needs no CAP_NET_ADMIN, which the launcher
	 * no longer holds by then. */
	if (n->nl != NULL)
		mnl_socket_close(n->nl);
	free(n->buf);
	free(n);
}
