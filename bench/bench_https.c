/* agentsafe-bench, inspected modes (https-ka, https-new).
 *
 * The upstream is a TLS HTTP/1.1 server in a child process (a thread per
 * connection, keep-alive, a fixed body); the client runs --concurrency
 * threads, each opening tunnels through the proxy (CONNECT, then TLS with
 * SNI to the proxy, whose leaf it verifies against --ca with the host
 * name), and sending GET requests: in https-ka one tunnel carries requests
 * until the time is up, in https-new every request gets a tunnel (and a
 * full handshake: no session resumption) of its own. Both sides verify
 * certificates, as real clients and proxies do.
 */
#include "bench_https.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const struct https_cfg *cf;
static SSL_CTX *client_ctx;
static atomic_int hstop;
static atomic_uint_fast64_t herrors;
static atomic_uint_fast64_t *up_cpu_ns; /* MAP_SHARED with the upstream */
static char *resp_buf;			/* the upstream's whole answer */
static size_t resp_len;

static double thread_cpu_s(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- upstream ---- */

/* Reads one request head (no body: the bench sends GET) into buf.
 * Returns its length, 0 on a clean close, -1 on error. */
static int read_head(SSL *ssl, char *buf, int cap)
{
	int have = 0;
	for (;;) {
		int r = SSL_read(ssl, buf + have, cap - 1 - have);
		if (r <= 0)
			return have == 0 ? 0 : -1;
		have += r;
		buf[have] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			return have;
		if (have >= cap - 1)
			return -1;
	}
}

static void *up_conn(void *arg)
{
	SSL *ssl = arg;
	char req[8192];
	if (SSL_accept(ssl) == 1) {
		for (;;) {
			int n = read_head(ssl, req, sizeof req);
			if (n <= 0 ||
			    SSL_write(ssl, resp_buf, (int)resp_len) <= 0)
				break;
			atomic_store(
			    up_cpu_ns,
			    (uint64_t)(thread_cpu_s(CLOCK_PROCESS_CPUTIME_ID) *
				       1e9));
			if (strcasestr(req, "\r\nconnection: close") != NULL)
				break;
		}
	}
	int fd = SSL_get_fd(ssl);
	SSL_free(ssl);
	close(fd);
	return NULL;
}

static void upstream_main(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, cf->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cf->key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "agentsafe-bench: upstream certificate: ");
		ERR_print_errors_fp(stderr);
		_exit(2);
	}
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (const struct sockaddr *)&cf->server,
		 sizeof cf->server) != 0 ||
	    listen(lfd, 4096) != 0) {
		perror("agentsafe-bench: TLS upstream listen");
		_exit(2);
	}
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 128 * 1024);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		nodelay(fd);
		SSL *ssl = SSL_new(ctx);
		pthread_t th;
		if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
		    pthread_create(&th, &at, up_conn, ssl) != 0) {
			SSL_free(ssl);
			close(fd);
		}
	}
}

/* ---- client ---- */

static int tcp_tunnel(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	nodelay(fd);
	struct timeval tv = {10, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	const struct sockaddr_in *to = cf->direct ? &cf->server : &cf->proxy;
	if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0)
		goto fail;
	if (!cf->direct) {
		char req[512], resp[1024];
		int n =
		    snprintf(req, sizeof req,
			     "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
			     cf->host, ntohs(cf->server.sin_port), cf->host,
			     ntohs(cf->server.sin_port));
		if (n <= 0 || (size_t)n >= sizeof req ||
		    send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
			goto fail;
		/* The answer ends at its blank line; the proxy says nothing
		 * more until the ClientHello, so read byte-wise to the end. */
		size_t got = 0;
		while (got < 4 || memcmp(resp + got - 4, "\r\n\r\n", 4) != 0) {
			if (got == sizeof resp ||
			    recv(fd, resp + got, 1, 0) != 1)
				goto fail;
			got++;
		}
		if (got < 12 || memcmp(resp + 9, "200", 3) != 0)
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static SSL *tls_open(void)
{
	int fd = tcp_tunnel();
	if (fd < 0)
		return NULL;
	SSL *ssl = SSL_new(client_ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, cf->host) != 1 ||
	    SSL_set1_host(ssl, cf->host) != 1 || SSL_connect(ssl) != 1) {
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	return ssl;
}

static void tls_close(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);
	(void)SSL_shutdown(ssl); /* close_notify, no wait for the peer's */
	SSL_free(ssl);
	close(fd);
}

/* One GET and its whole answer (status 200, Content-Length body). */
static int one_request(SSL *ssl, bool last)
{
	/* Host names the port (not 443), as clients do: squid builds the
	 * upstream URL of a bumped request from it. */
	char req[256], buf[16384];
	int n = snprintf(req, sizeof req,
			 "GET /bench HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: "
			 "agentsafe-bench\r\nAccept: */*\r\n%s\r\n",
			 cf->host, ntohs(cf->server.sin_port),
			 last ? "Connection: close\r\n" : "");
	if (SSL_write(ssl, req, n) != n)
		return -1;
	int have = 0;
	char *end = NULL;
	while (end == NULL) {
		int r = SSL_read(ssl, buf + have, (int)sizeof buf - 1 - have);
		if (r <= 0)
			return -1;
		have += r;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end == NULL && have >= (int)sizeof buf - 1)
			return -1;
	}
	const char *cl = strcasestr(buf, "\r\ncontent-length:");
	if (have < 12 || memcmp(buf + 9, "200", 3) != 0 || cl == NULL ||
	    cl > end)
		return -1;
	long want = strtol(cl + 17, NULL, 10);
	long body = have - (end + 4 - buf);
	while (body < want) {
		int r = SSL_read(ssl, buf, (int)sizeof buf);
		if (r <= 0)
			return -1;
		body += r;
	}
	return body == want ? 0 : -1;
}

struct hworker {
	pthread_t th;
	uint64_t done;
	double *lat;
	size_t nlat, cap;
};

static void hlat_add(struct hworker *w, double x)
{
	if (w->nlat == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 4096;
		double *nv = realloc(w->lat, cap * sizeof *nv);
		if (nv == NULL)
			return;
		w->lat = nv;
		w->cap = cap;
	}
	w->lat[w->nlat++] = x;
}

static void *hworker_main(void *arg)
{
	struct hworker *w = arg;
	SSL *ssl = NULL;
	while (!atomic_load(&hstop)) {
		double t0 = bench_now_s();
		if (ssl == NULL && (ssl = tls_open()) == NULL) {
			atomic_fetch_add(&herrors, 1);
			usleep(10000);
			continue;
		}
		if (one_request(ssl, !cf->keepalive) != 0) {
			atomic_fetch_add(&herrors, 1);
			tls_close(ssl);
			ssl = NULL;
			continue;
		}
		hlat_add(w, bench_now_s() - t0);
		__atomic_fetch_add(&w->done, 1, __ATOMIC_RELAXED);
		if (!cf->keepalive) {
			tls_close(ssl);
			ssl = NULL;
		}
	}
	if (ssl != NULL)
		tls_close(ssl);
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int setup(void)
{
	resp_len = 128 + (size_t)cf->body;
	resp_buf = malloc(resp_len);
	if (resp_buf == NULL)
		return -1;
	int h = snprintf(resp_buf, resp_len,
			 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %d\r\n\r\n",
			 cf->body);
	memset(resp_buf + h, 'x', (size_t)cf->body);
	resp_len = (size_t)h + (size_t)cf->body;
	up_cpu_ns = mmap(NULL, sizeof *up_cpu_ns, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (up_cpu_ns == MAP_FAILED || client_ctx == NULL ||
	    SSL_CTX_load_verify_locations(client_ctx, cf->ca, NULL) != 1) {
		fprintf(stderr, "agentsafe-bench: --ca %s: ", cf->ca);
		ERR_print_errors_fp(stderr);
		return -1;
	}
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(client_ctx, alpn, sizeof alpn - 1);
	return 0;
}

int https_run(const struct https_cfg *cfg)
{
	cf = cfg;
	if (setup() != 0)
		return 2;
	pid_t up = fork();
	if (up == 0) {
		upstream_main();
		_exit(0);
	}
	usleep(100000);
	int nw = cf->concurrency;
	struct hworker *w = calloc((size_t)nw, sizeof *w);
	if (w == NULL)
		return 1;
	for (int i = 0; i < nw; i++)
		pthread_create(&w[i].th, NULL, hworker_main, &w[i]);
	usleep(300000); /* warm-up: tunnels open, leaves minted and cached */
	uint64_t d0 = 0;
	for (int i = 0; i < nw; i++)
		d0 += __atomic_load_n(&w[i].done, __ATOMIC_RELAXED);
	double c0 = thread_cpu_s(CLOCK_PROCESS_CPUTIME_ID);
	double u0 = (double)atomic_load(up_cpu_ns) / 1e9;
	double p0 = bench_proc_cpu_s(cf->pid), t0 = bench_now_s();
	usleep((useconds_t)(cf->duration * 1e6));
	uint64_t d1 = 0;
	for (int i = 0; i < nw; i++)
		d1 += __atomic_load_n(&w[i].done, __ATOMIC_RELAXED);
	double el = bench_now_s() - t0;
	double c1 = thread_cpu_s(CLOCK_PROCESS_CPUTIME_ID);
	double u1 = (double)atomic_load(up_cpu_ns) / 1e9;
	double p1 = bench_proc_cpu_s(cf->pid);
	atomic_store(&hstop, 1);
	double *all = NULL;
	size_t n = 0;
	for (int i = 0; i < nw; i++) {
		pthread_join(w[i].th, NULL);
		double *na = realloc(all, (n + w[i].nlat + 1) * sizeof *na);
		if (na != NULL) {
			all = na;
			memcpy(all + n, w[i].lat, w[i].nlat * sizeof *all);
			n += w[i].nlat;
		}
		free(w[i].lat);
	}
	kill(up, SIGKILL);
	waitpid(up, NULL, 0);
	qsort(all, n, sizeof *all, cmp_d);
	double ops = (double)(d1 - d0), per = ops > 0 ? 1e6 / ops : 0;
	printf("mode=%s concurrency=%d requests=%.0f rate=%.0f p50_us=%.1f "
	       "p99_us=%.1f errors=%" PRIu64
	       " gen_client_cpu_us=%.3g gen_upstream_cpu_us=%.3g",
	       cf->keepalive ? "https-ka" : "https-new", nw, ops, ops / el,
	       n ? all[n / 2] * 1e6 : 0, n ? all[(n - 1) * 99 / 100] * 1e6 : 0,
	       (uint64_t)atomic_load(&herrors), (c1 - c0) * per,
	       (u1 - u0) * per);
	if (cf->pid > 0)
		printf(" proxy_cpu_us=%.3g", (p1 - p0) * per);
	printf("\n");
	free(all);
	free(w);
	SSL_CTX_free(client_ctx);
	free(resp_buf);
	return ops > 0 ? 0 : 1;
}
