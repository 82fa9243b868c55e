/* agentsafe-bench: load generator for CONNECT proxies (and a direct
 * baseline). It runs its own upstream (an echo port and a discard port on
 * loopback, in a child process) that answers every tunnel's TLS ClientHello
 * with a ServerHello-shaped record, as a TLS server does, before the data
 * phase; bytes are counted at the sink.
 *
 * Built to cost far less than the proxy it measures (bench/RESULTS.md,
 * "Two load generators"): setup runs every tunnel as a non-blocking state
 * machine on one epoll thread (no thread per connection, the CONNECT answer
 * read in one recv), bulk moves 256 KiB per system call, rr is one blocking
 * ping-pong loop, and the upstream lives in its own process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_https.h"

#define BENCH_BUF (256 * 1024)

struct bench_opts {
	const char *mode;
	struct sockaddr_in proxy;
	bool direct;
	struct sockaddr_in via; /* direct through a plain TCP relay */
	bool has_via;
	const char *host; /* CONNECT/SNI name */
	struct sockaddr_in echo_addr, discard_addr;
	int concurrency;
	double duration;
	int count;
	int size;
	pid_t pid;
	struct https_cfg https; /* --mode https-ka|https-new */
};

static struct bench_opts opt;
static uint8_t hello[4096];
static size_t hello_len;
static char connect_req[512];
static size_t connect_req_len;
static atomic_int stop_flag;
static atomic_uint_fast64_t errors;

/* Counters the upstream process shares with the client (MAP_SHARED). */
struct shared {
	atomic_uint_fast64_t sink_bytes;
	atomic_uint_fast64_t sink_cpu_ns;
};
static struct shared *shm;

/* The upstream's answer to a ClientHello: one handshake record holding a
 * TLS 1.3 ServerHello head (not a HelloRetryRequest), 55 bytes. */
static const uint8_t server_hello[] = {
    0x16, 0x03, 0x03, 0x00, 0x32,		    /* record, 50 bytes */
    0x02, 0x00, 0x00, 0x2e,			    /* ServerHello, 46  */
    0x03, 0x03,					    /* legacy_version   */
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, /* random           */
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x00, /* session id     */
    0x13, 0x01,				      /* cipher suite   */
    0x00,				      /* compression    */
    0x00, 0x06,				      /* extensions     */
    0x00, 0x2b, 0x00, 0x02, 0x03, 0x04,	      /* supported_versions */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_addr(const char *s, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (colon == NULL || (size_t)(colon - s) >= sizeof host)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(out, 0, sizeof *out);
	out->sin_family = AF_INET;
	long port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return -1;
	out->sin_port = htons((uint16_t)port);
	return 0;
}

/* A real ClientHello from OpenSSL, so the proxy's SNI check does real work. */
static int make_hello(const char *sni)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return -1;
	SSL *ssl = SSL_new(ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	if (ssl == NULL || rb == NULL || wb == NULL)
		return -1;
	SSL_set_bio(ssl, rb, wb);
	SSL_set_tlsext_host_name(ssl, sni);
	SSL_set_connect_state(ssl);
	(void)SSL_do_handshake(ssl);
	int n = BIO_read(wb, hello, sizeof hello);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (n <= 0)
		return -1;
	hello_len = (size_t)n;
	return 0;
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int read_exact(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t r = recv(fd, p, len, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* The proxy's answer to CONNECT is complete at its blank line; nothing can
 * follow it (the upstream speaks only after the ClientHello). 1 complete
 * and 200, 0 more to read, -1 refused or malformed. */
static int connect_answer(const char *buf, size_t len)
{
	if (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0)
		return len >= 1024 ? -1 : 0;
	return len >= 12 && memcmp(buf + 9, "200", 3) == 0 ? 1 : -1;
}

/* Blocking tunnel for bulk, rr and idle: CONNECT (unless direct), the
 * ClientHello, and the server's answer. Returns the fd. */
static int tunnel_open(const struct sockaddr_in *target)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_nodelay(fd);
	/* A proxy out of descriptors leaves connections unanswered in its
	 * backlog; a bounded wait turns that into a counted error, not a hang.
	 */
	struct timeval tv = {10, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	const struct sockaddr_in *to = !opt.direct   ? &opt.proxy
				       : opt.has_via ? &opt.via
						     : target;
	if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0)
		goto fail;
	if (!opt.direct) {
		char req[512], resp[1024];
		size_t got = 0;
		int ok = 0;
		int n = snprintf(
		    req, sizeof req,
		    "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n", opt.host,
		    ntohs(target->sin_port), opt.host, ntohs(target->sin_port));
		if (n <= 0 || (size_t)n >= sizeof req ||
		    write_all(fd, req, (size_t)n) != 0)
			goto fail;
		while (ok == 0) {
			ssize_t r = recv(fd, resp + got, sizeof resp - got, 0);
			if (r <= 0)
				goto fail;
			got += (size_t)r;
			ok = connect_answer(resp, got);
		}
		if (ok < 0)
			goto fail;
	}
	uint8_t back[sizeof server_hello];
	if (write_all(fd, hello, hello_len) != 0 ||
	    read_exact(fd, back, sizeof back) != 0 ||
	    memcmp(back, server_hello, sizeof back) != 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* ---- upstream: echo and discard on loopback, one epoll loop in a child
 * process; each connection first answers the ClientHello record ---- */

struct upconn {
	int fd;
	bool echo;
	uint8_t head[5];
	size_t head_have, body_left;
	bool answered;
	size_t pend_off, pend_len;
	uint8_t *pend;
};

static int listen_on(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)a, sizeof *a) != 0 ||
	    listen(fd, 4096) != 0) {
		perror("agentsafe-bench: upstream bind");
		exit(2);
	}
	return fd;
}

/* Skip the ClientHello record in buf; returns how many bytes of buf it
 * took, or -1 if the tunnel does not start with a handshake record. */
static ssize_t up_take_hello(struct upconn *cn, const uint8_t *buf, size_t n)
{
	size_t i = 0;
	if (cn->head_have < 5) {
		while (cn->head_have < 5 && i < n)
			cn->head[cn->head_have++] = buf[i++];
		if (cn->head_have < 5)
			return (ssize_t)i;
		if (cn->head[0] != 0x16 || cn->head[1] != 0x03)
			return -1;
		cn->body_left = ((size_t)cn->head[3] << 8) | cn->head[4];
	}
	size_t take = n - i < cn->body_left ? n - i : cn->body_left;
	cn->body_left -= take;
	i += take;
	if (cn->body_left == 0)
		cn->answered = true;
	return (ssize_t)i;
}

/* Queue bytes behind what is already pending; 0 or -1 (out of memory). */
static int up_queue(struct upconn *cn, const uint8_t *p, size_t n)
{
	uint8_t *np = realloc(cn->pend, cn->pend_off + cn->pend_len + n);
	if (np == NULL)
		return -1;
	cn->pend = np;
	memcpy(cn->pend + cn->pend_off + cn->pend_len, p, n);
	cn->pend_len += n;
	return 0;
}

/* Send what is pending; 1 all sent, 0 would block, -1 error. */
static int up_flush(struct upconn *cn)
{
	while (cn->pend_len > 0) {
		ssize_t w = send(cn->fd, cn->pend + cn->pend_off, cn->pend_len,
				 MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		cn->pend_off += (size_t)w;
		cn->pend_len -= (size_t)w;
	}
	cn->pend_off = 0;
	return 1;
}

/* Bytes from the tunnel: the hello first, then echo or discard. 0 keep,
 * -1 drop. */
static int up_input(struct upconn *cn, const uint8_t *buf, size_t n)
{
	size_t off = 0;
	if (!cn->answered) {
		ssize_t t = up_take_hello(cn, buf, n);
		if (t < 0)
			return -1;
		off = (size_t)t;
		if (cn->answered &&
		    up_queue(cn, server_hello, sizeof server_hello) != 0)
			return -1;
	}
	if (off < n && cn->echo && up_queue(cn, buf + off, n - off) != 0)
		return -1;
	if (off < n && !cn->echo)
		atomic_fetch_add(&shm->sink_bytes, (uint64_t)(n - off));
	return 0;
}

static void up_accept(int ep, int lfd, bool echo)
{
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0)
			return;
		set_nodelay(c);
		struct upconn *cn = calloc(1, sizeof *cn);
		if (cn == NULL) {
			close(c);
			continue;
		}
		cn->fd = c;
		cn->echo = echo;
		struct epoll_event ce = {.events = EPOLLIN, .data.ptr = cn};
		epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
	}
}

/* One readiness event on a tunnel; false: drop it. */
static bool up_event(int ep, struct upconn *cn, uint8_t *buf)
{
	if (cn->pend_len == 0) {
		ssize_t r = recv(cn->fd, buf, BENCH_BUF, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN))
			return false;
		if (r < 0 || up_input(cn, buf, (size_t)r) != 0)
			return r < 0;
	}
	int f = up_flush(cn);
	if (f < 0)
		return false;
	struct epoll_event ce = {.events = f ? EPOLLIN : EPOLLOUT,
				 .data.ptr = cn};
	epoll_ctl(ep, EPOLL_CTL_MOD, cn->fd, &ce);
	return true;
}

static void upstream_main(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int lfd_echo = listen_on(&opt.echo_addr);
	int lfd_discard = listen_on(&opt.discard_addr);
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.ptr = &lfd_echo;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd_echo, &ev);
	ev.data.ptr = &lfd_discard;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd_discard, &ev);
	uint8_t *buf = malloc(BENCH_BUF);
	if (buf == NULL)
		exit(2);
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &lfd_echo || p == &lfd_discard) {
				up_accept(ep, *(int *)p, p == &lfd_echo);
				continue;
			}
			struct upconn *cn = p;
			if (!up_event(ep, cn, buf)) {
				close(cn->fd);
				free(cn->pend);
				free(cn);
			}
		}
		atomic_store(&shm->sink_cpu_ns,
			     (uint64_t)(cpu_s(CLOCK_PROCESS_CPUTIME_ID) * 1e9));
	}
}

/* ---- measurements ---- */

struct lat {
	double *v;
	size_t n, cap;
};

static void lat_add(struct lat *l, double x)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		double *nv = realloc(l->v, cap * sizeof *nv);
		if (nv == NULL)
			return;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(struct lat *l, double p)
{
	if (l->n == 0)
		return 0;
	size_t i = (size_t)(p * (double)(l->n - 1));
	return l->v[i];
}

/* CPU seconds (user + system) of a process, from /proc; 0 without one. */
static double proc_cpu_s(pid_t pid)
{
	char path[64];
	unsigned long ut = 0, st = 0;
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	/* Fields 14 and 15, after "pid (comm) " (comm may hold spaces). */
	char line[1024];
	char *p = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
	if (p != NULL &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) != 2)
		ut = st = 0;
	fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double bench_now_s(void)
{
	return now_s();
}
double bench_proc_cpu_s(pid_t pid)
{
	return proc_cpu_s(pid);
}

/* CPU seconds so far: the client (this process), the upstream, and the
 * proxy under test (--pid), so each run reports who paid for what. */
struct cpu3 {
	double client, upstream, proxy;
};

static struct cpu3 cpu_now(void)
{
	struct cpu3 c = {cpu_s(CLOCK_PROCESS_CPUTIME_ID),
			 (double)atomic_load(&shm->sink_cpu_ns) / 1e9,
			 proc_cpu_s(opt.pid)};
	return c;
}

/* Print CPU per operation (µs) between two samples, or per GB (s). */
static void print_cpu(struct cpu3 a, double ops, const char *unit, double scale)
{
	struct cpu3 b = cpu_now();
	double per = ops > 0 ? scale / ops : 0;
	printf(" gen_client_cpu_%s=%.3g gen_upstream_cpu_%s=%.3g", unit,
	       (b.client - a.client) * per, unit,
	       (b.upstream - a.upstream) * per);
	if (opt.pid > 0)
		printf(" proxy_cpu_%s=%.3g", unit, (b.proxy - a.proxy) * per);
}

/* ---- setup: every tunnel a non-blocking state machine on one epoll ---- */

enum slot_state { SL_CONNECT, SL_ANSWER, SL_SHELLO };

struct slot {
	int fd;
	enum slot_state st;
	double t0;
	size_t have;
	char buf[1024];
};

static int slot_start(int ep, struct slot *s)
{
	const struct sockaddr_in *to = !opt.direct   ? &opt.proxy
				       : opt.has_via ? &opt.via
						     : &opt.echo_addr;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -1;
	set_nodelay(s->fd);
	s->t0 = now_s();
	s->have = 0;
	s->st = SL_CONNECT;
	if (connect(s->fd, (const struct sockaddr *)to, sizeof *to) != 0 &&
	    errno != EINPROGRESS) {
		close(s->fd);
		s->fd = -1;
		return -1;
	}
	struct epoll_event e = {.events = EPOLLOUT, .data.ptr = s};
	return epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e);
}

/* The next request in one send: small, into an empty socket buffer. */
static int slot_send(struct slot *s, const void *p, size_t n)
{
	ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
	return w == (ssize_t)n ? 0 : -1;
}

/* One readiness event: 1 tunnel done, 0 in progress, -1 failed. */
static int slot_step(int ep, struct slot *s)
{
	if (s->st == SL_CONNECT) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
		    err != 0)
			return -1;
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
		epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
		s->st = opt.direct ? SL_SHELLO : SL_ANSWER;
		return opt.direct ? slot_send(s, hello, hello_len)
				  : slot_send(s, connect_req, connect_req_len);
	}
	ssize_t r = recv(s->fd, s->buf + s->have, sizeof s->buf - s->have, 0);
	if (r <= 0)
		return r < 0 && errno == EAGAIN ? 0 : -1;
	s->have += (size_t)r;
	if (s->st == SL_ANSWER) {
		int a = connect_answer(s->buf, s->have);
		if (a <= 0)
			return a;
		s->st = SL_SHELLO;
		s->have = 0;
		return slot_send(s, hello, hello_len);
	}
	if (s->have < sizeof server_hello)
		return 0;
	return memcmp(s->buf, server_hello, sizeof server_hello) == 0 ? 1 : -1;
}

static int run_setup(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct slot *slots = calloc((size_t)opt.concurrency, sizeof *slots);
	if (ep < 0 || slots == NULL)
		return 1;
	struct lat all = {0};
	uint64_t ops = 0;
	struct cpu3 cpu0 = cpu_now();
	double t0 = now_s(), end = t0 + opt.duration;
	for (int i = 0; i < opt.concurrency; i++)
		if (slot_start(ep, &slots[i]) != 0)
			atomic_fetch_add(&errors, 1);
	struct epoll_event evs[256];
	while (now_s() < end) {
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct slot *s = evs[i].data.ptr;
			int r = slot_step(ep, s);
			if (r == 0)
				continue;
			close(s->fd); /* leaves the epoll set with it */
			if (r > 0) {
				lat_add(&all, now_s() - s->t0);
				ops++;
			} else {
				atomic_fetch_add(&errors, 1);
			}
			if (slot_start(ep, s) != 0)
				atomic_fetch_add(&errors, 1);
		}
	}
	double el = now_s() - t0;
	for (int i = 0; i < opt.concurrency; i++)
		if (slots[i].fd >= 0)
			close(slots[i].fd);
	qsort(all.v, all.n, sizeof *all.v, cmp_double);
	printf("mode=setup concurrency=%d tunnels=%" PRIu64
	       " rate=%.0f p50_us=%.1f p99_us=%.1f errors=%" PRIu64,
	       opt.concurrency, ops, (double)ops / el, pct(&all, 0.5) * 1e6,
	       pct(&all, 0.99) * 1e6, (uint64_t)atomic_load(&errors));
	print_cpu(cpu0, (double)ops, "us", 1e6);
	printf("\n");
	free(all.v);
	free(slots);
	close(ep);
	return 0;
}

static void *bulk_worker(void *arg)
{
	(void)arg;
	uint8_t *buf = calloc(1, BENCH_BUF);
	int fd = buf != NULL ? tunnel_open(&opt.discard_addr) : -1;
	if (fd < 0) {
		atomic_fetch_add(&errors, 1);
		free(buf);
		return NULL;
	}
	while (!atomic_load(&stop_flag)) {
		if (write_all(fd, buf, BENCH_BUF) != 0) {
			atomic_fetch_add(&errors, 1);
			break;
		}
	}
	close(fd);
	free(buf);
	return NULL;
}

static int run_bulk(void)
{
	pthread_t *th = calloc((size_t)opt.concurrency, sizeof *th);
	if (th == NULL)
		return 1;
	for (int i = 0; i < opt.concurrency; i++)
		pthread_create(&th[i], NULL, bulk_worker, NULL);
	usleep(300000); /* warm-up: tunnels open, windows grow */
	uint64_t b0 = atomic_load(&shm->sink_bytes);
	struct cpu3 cpu0 = cpu_now();
	double t0 = now_s();
	usleep((useconds_t)(opt.duration * 1e6));
	uint64_t b1 = atomic_load(&shm->sink_bytes);
	double el = now_s() - t0;
	/* CPU per GB moved over the timed window (s/GB). */
	printf("mode=bulk streams=%d mbytes_per_s=%.1f errors=%" PRIu64,
	       opt.concurrency, (double)(b1 - b0) / el / 1e6,
	       (uint64_t)atomic_load(&errors));
	print_cpu(cpu0, (double)(b1 - b0) / 1e9, "s_per_gb", 1);
	printf("\n");
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < opt.concurrency; i++)
		pthread_join(th[i], NULL);
	free(th);
	return 0;
}

static int run_rr(void)
{
	int fd = tunnel_open(&opt.echo_addr);
	if (fd < 0) {
		fprintf(stderr, "agentsafe-bench: tunnel failed\n");
		return 1;
	}
	uint8_t msg[64] = {0}, back[64];
	size_t sz = opt.size > 0 && opt.size <= 64 ? (size_t)opt.size : 64;
	struct lat l = {0};
	struct cpu3 cpu0 = cpu_now();
	for (int i = 0; i < opt.count; i++) {
		double t0 = now_s();
		if (write_all(fd, msg, sz) != 0 ||
		    read_exact(fd, back, sz) != 0) {
			atomic_fetch_add(&errors, 1);
			break;
		}
		lat_add(&l, now_s() - t0);
	}
	close(fd);
	qsort(l.v, l.n, sizeof *l.v, cmp_double);
	printf("mode=rr count=%zu p50_us=%.1f p99_us=%.1f errors=%" PRIu64, l.n,
	       pct(&l, 0.5) * 1e6, pct(&l, 0.99) * 1e6,
	       (uint64_t)atomic_load(&errors));
	print_cpu(cpu0, (double)l.n, "us", 1e6);
	printf("\n");
	free(l.v);
	return 0;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kib = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* RSS of a process and all its children (squid runs workers). */
static long tree_rss_kib(pid_t pid)
{
	long total = rss_kib(pid);
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid,
		 (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return total;
	int child;
	while (fscanf(f, "%d", &child) == 1)
		total += tree_rss_kib(child);
	fclose(f);
	return total;
}

static int run_idle(void)
{
	int *fds = calloc((size_t)opt.count, sizeof *fds);
	if (fds == NULL)
		return 1;
	usleep(200000);
	long before = opt.pid > 0 ? tree_rss_kib(opt.pid) : -1;
	int open_ok = 0;
	for (int i = 0; i < opt.count; i++) {
		fds[i] = tunnel_open(&opt.echo_addr);
		if (fds[i] < 0)
			atomic_fetch_add(&errors, 1);
		else
			open_ok++;
	}
	usleep(500000);
	long after = opt.pid > 0 ? tree_rss_kib(opt.pid) : -1;
	/* Prove the tunnels are alive, not just open: one round trip each. */
	int alive = 0;
	for (int i = 0; i < opt.count; i++) {
		uint8_t b = 1;
		if (fds[i] >= 0 && write_all(fds[i], &b, 1) == 0 &&
		    read_exact(fds[i], &b, 1) == 0)
			alive++;
	}
	for (int i = 0; i < opt.count; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	double per = open_ok > 0 && before >= 0
			 ? (double)(after - before) / open_ok
			 : -1;
	printf("mode=idle tunnels=%d alive=%d rss_before_kib=%ld "
	       "rss_after_kib=%ld "
	       "kib_per_tunnel=%.2f errors=%" PRIu64 "\n",
	       open_ok, alive, before, after, per,
	       (uint64_t)atomic_load(&errors));
	free(fds);
	return alive == opt.count ? 0 : 1;
}

static void usage(void)
{
	fputs(
	    "usage: agentsafe-bench --mode "
	    "setup|bulk|rr|idle|https-ka|https-new\n"
	    "         [--proxy "
	    "ADDR:PORT|direct]\n"
	    "         [--host NAME] [--echo ADDR:PORT] [--discard ADDR:PORT]\n"
	    "         [--concurrency N] [--duration SECONDS] [--count N]\n"
	    "         [--size BYTES] [--pid PROXY_PID] [--via ADDR:PORT]\n"
	    "Starts its own upstream (echo + discard) on the given loopback "
	    "ports.\n--via: direct mode through a plain TCP relay at ADDR:PORT "
	    "(bench/sockmap).\n"
	    "https-ka / https-new (inspected proxies): GET requests over TLS "
	    "to a TLS\nupstream of its own at --https ADDR:PORT (certificate "
	    "--cert/--key, a\n--body BYTES answer); the client trusts --ca. "
	    "https-ka: many requests per\ntunnel; https-new: one per tunnel.\n"
	    "         [--https ADDR:PORT] [--ca FILE] [--cert FILE] [--key "
	    "FILE] [--body N]\n",
	    stderr);
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"mode", required_argument, 0, 'm'},
	    {"proxy", required_argument, 0, 'p'},
	    {"host", required_argument, 0, 'H'},
	    {"echo", required_argument, 0, 'e'},
	    {"discard", required_argument, 0, 'd'},
	    {"concurrency", required_argument, 0, 'c'},
	    {"duration", required_argument, 0, 't'},
	    {"count", required_argument, 0, 'n'},
	    {"size", required_argument, 0, 's'},
	    {"pid", required_argument, 0, 'P'},
	    {"via", required_argument, 0, 'V'},
	    {"https", required_argument, 0, 'S'},
	    {"ca", required_argument, 0, 'A'},
	    {"cert", required_argument, 0, 'R'},
	    {"key", required_argument, 0, 'K'},
	    {"body", required_argument, 0, 'b'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			opt.mode = optarg;
			break;
		case 'p':
			opt.direct = strcmp(optarg, "direct") == 0;
			if (!opt.direct && parse_addr(optarg, &opt.proxy) != 0)
				return 2;
			break;
		case 'H':
			opt.host = optarg;
			break;
		case 'e':
			if (parse_addr(optarg, &opt.echo_addr) != 0)
				return 2;
			break;
		case 'd':
			if (parse_addr(optarg, &opt.discard_addr) != 0)
				return 2;
			break;
		case 'c':
			opt.concurrency = atoi(optarg);
			break;
		case 't':
			opt.duration = atof(optarg);
			break;
		case 'n':
			opt.count = atoi(optarg);
			break;
		case 's':
			opt.size = atoi(optarg);
			break;
		case 'P':
			opt.pid = (pid_t)atoi(optarg);
			break;
		case 'V':
			if (parse_addr(optarg, &opt.via) != 0)
				return 2;
			opt.has_via = true;
			break;
		case 'S':
			if (parse_addr(optarg, &opt.https.server) != 0)
				return 2;
			break;
		case 'A':
			opt.https.ca = optarg;
			break;
		case 'R':
			opt.https.cert = optarg;
			break;
		case 'K':
			opt.https.key = optarg;
			break;
		case 'b':
			opt.https.body = atoi(optarg);
			break;
		default:
			return c == 'h' ? 1 : 2;
		}
	}
	if (opt.concurrency < 1 || opt.duration <= 0 || opt.count < 1)
		return 2;
	return 0;
}

static int run_https(void)
{
	struct https_cfg *h = &opt.https;
	if (h->ca == NULL || h->cert == NULL || h->key == NULL || h->body < 0 ||
	    h->body > (1 << 24) ||
	    (strcmp(opt.mode, "https-ka") != 0 &&
	     strcmp(opt.mode, "https-new") != 0)) {
		usage();
		return 2;
	}
	h->keepalive = strcmp(opt.mode, "https-ka") == 0;
	h->direct = opt.direct;
	h->proxy = opt.proxy;
	h->host = opt.host;
	h->concurrency = opt.concurrency;
	h->duration = opt.duration;
	h->pid = opt.pid;
	return https_run(h);
}

int main(int argc, char **argv)
{
	opt.mode = "setup";
	opt.host = "bench.test";
	opt.concurrency = 50;
	opt.duration = 5;
	opt.count = 10000;
	opt.size = 64;
	opt.direct = true;
	parse_addr("127.0.0.1:19001", &opt.echo_addr);
	parse_addr("127.0.0.1:19002", &opt.discard_addr);
	parse_addr("127.0.0.1:19003", &opt.https.server);
	opt.https.body = 1024;
	int pr = parse_args(argc, argv);
	if (pr != 0) {
		usage();
		return pr == 1 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (strncmp(opt.mode, "https-", 6) == 0)
		return run_https();
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (make_hello(opt.host) != 0) {
		fprintf(stderr,
			"agentsafe-bench: cannot build a ClientHello\n");
		return 2;
	}
	int n = snprintf(connect_req, sizeof connect_req,
			 "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
			 opt.host, ntohs(opt.echo_addr.sin_port), opt.host,
			 ntohs(opt.echo_addr.sin_port));
	if (n <= 0 || (size_t)n >= sizeof connect_req)
		return 2;
	connect_req_len = (size_t)n;
	shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		return 2;
	/* The upstream is a process of its own: its descriptors and CPU are
	 * not the client's, as for any server. */
	pid_t upstream_pid = fork();
	if (upstream_pid == 0) {
		upstream_main();
		_exit(0);
	}
	usleep(100000);
	int rc = 2;
	if (strcmp(opt.mode, "setup") == 0)
		rc = run_setup();
	else if (strcmp(opt.mode, "bulk") == 0)
		rc = run_bulk();
	else if (strcmp(opt.mode, "rr") == 0)
		rc = run_rr();
	else if (strcmp(opt.mode, "idle") == 0)
		rc = run_idle();
	else
		usage();
	kill(upstream_pid, SIGKILL);
	waitpid(upstream_pid, NULL, 0);
	return rc;
}
