/* agentsafe-bench: load generator for CONNECT proxies (and a direct
 * baseline). It embeds its own upstream (an echo port and a discard port on
 * loopback) so bytes are counted at the sink, and it sends a real TLS
 * ClientHello with SNI first on every tunnel, as an agent's TLS client would.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_BUF (64 * 1024)

struct bench_opts {
	const char *mode;
	struct sockaddr_in proxy; /* sin_port 0: direct */
	bool direct;
	const char *host; /* CONNECT/SNI name */
	struct sockaddr_in echo_addr, discard_addr;
	int concurrency;
	double duration;
	int count;
	int size;
	pid_t pid;
};

static struct bench_opts opt;
static uint8_t hello[4096];
static size_t hello_len;
static atomic_uint_fast64_t sink_bytes;
static atomic_int stop_flag;
static atomic_uint_fast64_t errors;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
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

/* Open a tunnel to `target` (through the proxy unless direct) and send the
 * ClientHello; with `echo`, wait for it to come back. Returns the fd. */
static int tunnel_open(const struct sockaddr_in *target, bool echo)
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
	const struct sockaddr_in *to = opt.direct ? target : &opt.proxy;
	if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0)
		goto fail;
	if (!opt.direct) {
		char req[512];
		int n = snprintf(
		    req, sizeof req,
		    "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n", opt.host,
		    ntohs(target->sin_port), opt.host, ntohs(target->sin_port));
		if (write_all(fd, req, (size_t)n) != 0)
			goto fail;
		char resp[1024];
		size_t got = 0;
		while (got < 4 || memcmp(resp + got - 4, "\r\n\r\n", 4) != 0) {
			if (got == sizeof resp)
				goto fail;
			ssize_t r = recv(fd, resp + got, 1, 0);
			if (r <= 0)
				goto fail;
			got += (size_t)r;
		}
		if (got < 12 || memcmp(resp + 9, "200", 3) != 0)
			goto fail;
	}
	if (write_all(fd, hello, hello_len) != 0)
		goto fail;
	if (echo) {
		uint8_t back[sizeof hello];
		if (read_exact(fd, back, hello_len) != 0)
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* ---- embedded upstream: echo and discard on loopback, one epoll thread ----
 */

struct conn {
	int fd;
	bool echo;
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

static void *upstream_main(void *arg)
{
	(void)arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int lfd_echo = listen_on(&opt.echo_addr);
	int lfd_discard = listen_on(&opt.discard_addr);
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.ptr = &lfd_echo;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd_echo, &ev);
	ev.data.ptr = &lfd_discard;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd_discard, &ev);
	static uint8_t buf[BENCH_BUF];
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, 200);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &lfd_echo || p == &lfd_discard) {
				int lfd = *(int *)p;
				for (;;) {
					int c = accept4(lfd, NULL, NULL,
							SOCK_NONBLOCK |
							    SOCK_CLOEXEC);
					if (c < 0)
						break;
					set_nodelay(c);
					struct conn *cn = calloc(1, sizeof *cn);
					if (cn == NULL) {
						close(c);
						continue;
					}
					cn->fd = c;
					cn->echo = p == &lfd_echo;
					struct epoll_event ce = {
					    .events = EPOLLIN, .data.ptr = cn};
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
				}
				continue;
			}
			struct conn *cn = p;
			if (cn->pend_len > 0) { /* flush pending echo first */
				ssize_t w =
				    send(cn->fd, cn->pend + cn->pend_off,
					 cn->pend_len, MSG_NOSIGNAL);
				if (w > 0) {
					cn->pend_off += (size_t)w;
					cn->pend_len -= (size_t)w;
				}
				if (cn->pend_len == 0) {
					struct epoll_event ce = {
					    .events = EPOLLIN, .data.ptr = cn};
					epoll_ctl(ep, EPOLL_CTL_MOD, cn->fd,
						  &ce);
				}
				if (w < 0 && errno != EAGAIN)
					goto drop;
				continue;
			}
			ssize_t r = recv(cn->fd, buf, sizeof buf, 0);
			if (r == 0 || (r < 0 && errno != EAGAIN))
				goto drop;
			if (r < 0)
				continue;
			if (!cn->echo) {
				atomic_fetch_add(&sink_bytes, (uint64_t)r);
				continue;
			}
			ssize_t w = send(cn->fd, buf, (size_t)r, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN)
				goto drop;
			if (w < 0)
				w = 0;
			if (w < r) {
				free(cn->pend);
				cn->pend = malloc((size_t)(r - w));
				if (cn->pend == NULL)
					goto drop;
				memcpy(cn->pend, buf + w, (size_t)(r - w));
				cn->pend_off = 0;
				cn->pend_len = (size_t)(r - w);
				struct epoll_event ce = {.events = EPOLLOUT,
							 .data.ptr = cn};
				epoll_ctl(ep, EPOLL_CTL_MOD, cn->fd, &ce);
			}
			continue;
		drop:
			close(cn->fd);
			free(cn->pend);
			free(cn);
		}
	}
	return NULL;
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

struct worker {
	pthread_t th;
	struct lat lat;
	uint64_t ops;
};

static void *setup_worker(void *arg)
{
	struct worker *w = arg;
	while (!atomic_load(&stop_flag)) {
		double t0 = now_s();
		int fd = tunnel_open(&opt.echo_addr, true);
		if (fd < 0) {
			atomic_fetch_add(&errors, 1);
			usleep(1000);
			continue;
		}
		close(fd);
		lat_add(&w->lat, now_s() - t0);
		w->ops++;
	}
	return NULL;
}

static void *bulk_worker(void *arg)
{
	(void)arg;
	static uint8_t buf[BENCH_BUF];
	int fd = tunnel_open(&opt.discard_addr, false);
	if (fd < 0) {
		atomic_fetch_add(&errors, 1);
		return NULL;
	}
	while (!atomic_load(&stop_flag)) {
		if (write_all(fd, buf, sizeof buf) != 0) {
			atomic_fetch_add(&errors, 1);
			break;
		}
	}
	close(fd);
	return NULL;
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

static int run_setup(void)
{
	struct worker *ws = calloc((size_t)opt.concurrency, sizeof *ws);
	if (ws == NULL)
		return 1;
	double t0 = now_s();
	for (int i = 0; i < opt.concurrency; i++)
		pthread_create(&ws[i].th, NULL, setup_worker, &ws[i]);
	usleep((useconds_t)(opt.duration * 1e6));
	atomic_store(&stop_flag, 1);
	struct lat all = {0};
	uint64_t ops = 0;
	for (int i = 0; i < opt.concurrency; i++) {
		pthread_join(ws[i].th, NULL);
		ops += ws[i].ops;
		for (size_t j = 0; j < ws[i].lat.n; j++)
			lat_add(&all, ws[i].lat.v[j]);
		free(ws[i].lat.v);
	}
	double el = now_s() - t0;
	qsort(all.v, all.n, sizeof *all.v, cmp_double);
	printf("mode=setup concurrency=%d tunnels=%" PRIu64
	       " rate=%.0f p50_us=%.1f p99_us=%.1f errors=%" PRIu64 "\n",
	       opt.concurrency, ops, (double)ops / el, pct(&all, 0.5) * 1e6,
	       pct(&all, 0.99) * 1e6, (uint64_t)atomic_load(&errors));
	free(all.v);
	free(ws);
	return 0;
}

static int run_bulk(void)
{
	pthread_t *th = calloc((size_t)opt.concurrency, sizeof *th);
	if (th == NULL)
		return 1;
	for (int i = 0; i < opt.concurrency; i++)
		pthread_create(&th[i], NULL, bulk_worker, NULL);
	usleep(300000); /* warm-up: tunnels open, windows grow */
	uint64_t b0 = atomic_load(&sink_bytes);
	double t0 = now_s();
	usleep((useconds_t)(opt.duration * 1e6));
	uint64_t b1 = atomic_load(&sink_bytes);
	double el = now_s() - t0;
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < opt.concurrency; i++)
		pthread_join(th[i], NULL);
	printf("mode=bulk streams=%d mbytes_per_s=%.1f errors=%" PRIu64 "\n",
	       opt.concurrency, (double)(b1 - b0) / el / 1e6,
	       (uint64_t)atomic_load(&errors));
	free(th);
	return 0;
}

static int run_rr(void)
{
	int fd = tunnel_open(&opt.echo_addr, true);
	if (fd < 0) {
		fprintf(stderr, "agentsafe-bench: tunnel failed\n");
		return 1;
	}
	uint8_t msg[64] = {0}, back[64];
	size_t sz = opt.size > 0 && opt.size <= 64 ? (size_t)opt.size : 64;
	struct lat l = {0};
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
	printf("mode=rr count=%zu p50_us=%.1f p99_us=%.1f errors=%" PRIu64 "\n",
	       l.n, pct(&l, 0.5) * 1e6, pct(&l, 0.99) * 1e6,
	       (uint64_t)atomic_load(&errors));
	free(l.v);
	return 0;
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
		fds[i] = tunnel_open(&opt.echo_addr, true);
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
	    "usage: agentsafe-bench --mode setup|bulk|rr|idle [--proxy "
	    "ADDR:PORT|direct]\n"
	    "         [--host NAME] [--echo ADDR:PORT] [--discard ADDR:PORT]\n"
	    "         [--concurrency N] [--duration SECONDS] [--count N]\n"
	    "         [--size BYTES] [--pid PROXY_PID]\n"
	    "Starts its own upstream (echo + discard) on the given loopback "
	    "ports.\n",
	    stderr);
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
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			opt.mode = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "direct") == 0) {
				opt.direct = true;
			} else if (parse_addr(optarg, &opt.proxy) == 0) {
				opt.direct = false;
			} else {
				fprintf(stderr,
					"agentsafe-bench: bad --proxy %s\n",
					optarg);
				return 2;
			}
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
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (opt.concurrency < 1 || opt.duration <= 0 || opt.count < 1) {
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
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
	/* Idle mode holds thousands of tunnels: the upstream gets its own
	 * process so client and upstream fds do not share one RLIMIT_NOFILE. */
	pid_t upstream_pid = -1;
	if (strcmp(opt.mode, "idle") == 0) {
		upstream_pid = fork();
		if (upstream_pid == 0) {
			upstream_main(NULL);
			_exit(0);
		}
	} else {
		pthread_t up;
		pthread_create(&up, NULL, upstream_main, NULL);
		pthread_detach(up);
	}
	usleep(100000);
	if (strcmp(opt.mode, "setup") == 0)
		return run_setup();
	if (strcmp(opt.mode, "bulk") == 0)
		return run_bulk();
	if (strcmp(opt.mode, "rr") == 0)
		return run_rr();
	if (strcmp(opt.mode, "idle") == 0) {
		int rc = run_idle();
		kill(upstream_pid, SIGKILL);
		return rc;
	}
	usage();
	return 2;
}
