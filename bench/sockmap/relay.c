/* sockmap-relay: the experiment behind bench/RESULTS.md "In-kernel relay".
 * A plain TCP relay (no CONNECT: the measured part is the established
 * tunnel) that hands each tunnel, once the server's first TLS record has
 * come back, to one of two relays:
 *
 *   --mode splice   socket -> pipe -> socket with splice(2) on an epoll
 *                   loop, as proxy/splice.c does (64 KiB per call)
 *   --mode sockmap  both sockets into a BPF sockmap whose stream verdict
 *                   program (relay.bpf.c) sends every segment out on the
 *                   peer socket inside the kernel; the process only waits
 *                   for the close and reads the byte counts from BPF
 *
 * The ClientHello and the server's first record are relayed in user space
 * (the proxy checks the first and follows to the second before a tunnel
 * opens), so the sockets join the sockmap while both are quiet.
 *
 *   sockmap-relay --mode splice|sockmap --listen ADDR:PORT --to ADDR:PORT
 *                 [--bpf relay.bpf.o]
 *
 * Build: cc -O2 -o sockmap-relay relay.c -lbpf
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK	  (64 * 1024)
#define MAX_SOCKS 65536

struct tunnel;

/* One direction of a splice relay, or one socket of a sockmap tunnel. */
struct side {
	struct tunnel *t;
	int fd;
	int pipe[2];
	size_t inpipe;
	bool eof;
	uint32_t idx;	 /* sockmap index */
	uint64_t cookie; /* SO_COOKIE */
};

struct tunnel {
	struct side s[2]; /* 0 client, 1 upstream; s[i] reads s[i].fd */
	bool dead;	  /* closed; freed after this batch of events */
	struct tunnel *next_dead;
};

static struct tunnel *dead_list;

static bool use_sockmap;
static int ep, map_socks = -1, map_peer = -1, map_bytes = -1;
static uint32_t next_idx;

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

static int read_exact(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t r = recv(fd, p, len, 0);
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Relay one TLS record from `from` to `to` (blocking): the ClientHello one
 * way, the server's first record the other. */
static int relay_record(int from, int to)
{
	uint8_t buf[5 + 16384 + 2048];
	if (read_exact(from, buf, 5) != 0 || buf[0] != 0x16)
		return -1;
	size_t len = ((size_t)buf[3] << 8) | buf[4];
	if (len > sizeof buf - 5 || read_exact(from, buf + 5, len) != 0)
		return -1;
	return send(to, buf, 5 + len, MSG_NOSIGNAL) == (ssize_t)(5 + len) ? 0
									  : -1;
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void tunnel_close(struct tunnel *t)
{
	for (int i = 0; i < 2; i++) {
		struct side *s = &t->s[i];
		if (use_sockmap) {
			uint64_t n = 0;
			bpf_map_lookup_elem(map_bytes, &s->cookie, &n);
			fprintf(stderr,
				"sockmap-relay: %s relayed %llu bytes\n",
				i == 0 ? "client" : "upstream",
				(unsigned long long)n);
			bpf_map_delete_elem(map_socks, &s->idx);
			bpf_map_delete_elem(map_peer, &s->cookie);
			bpf_map_delete_elem(map_bytes, &s->cookie);
		} else if (s->pipe[0] >= 0) {
			close(s->pipe[0]);
			close(s->pipe[1]);
		}
		epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	/* The peer socket's event may still be in this batch. */
	t->dead = true;
	t->next_dead = dead_list;
	dead_list = t;
}

/* Both sockets into the sockmap; each one's cookie names its peer's index
 * first, so no segment meets the verdict without somewhere to go. */
static int sockmap_add(struct tunnel *t)
{
	for (int i = 0; i < 2; i++) {
		socklen_t l = sizeof t->s[i].cookie;
		if (getsockopt(t->s[i].fd, SOL_SOCKET, SO_COOKIE,
			       &t->s[i].cookie, &l) != 0)
			return -1;
		t->s[i].idx = next_idx++ % MAX_SOCKS;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t zero = 0;
		if (bpf_map_update_elem(map_peer, &t->s[i].cookie,
					&t->s[1 - i].idx, BPF_ANY) != 0 ||
		    bpf_map_update_elem(map_bytes, &t->s[i].cookie, &zero,
					BPF_ANY) != 0)
			return -1;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t fd = (uint64_t)t->s[i].fd;
		if (bpf_map_update_elem(map_socks, &t->s[i].idx, &fd,
					BPF_ANY) != 0)
			return -1;
	}
	return 0;
}

/* Accept, dial the upstream, relay the hello exchange, then hand the
 * tunnel to splice or to the sockmap. */
static void on_accept(int lfd, const struct sockaddr_in *to)
{
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct tunnel *t = calloc(1, sizeof *t);
	if (u < 0 || t == NULL ||
	    connect(u, (const struct sockaddr *)to, sizeof *to) != 0) {
		close(c);
		if (u >= 0)
			close(u);
		free(t);
		return;
	}
	nodelay(c);
	nodelay(u);
	uint8_t sh[5 + 16384];
	if (relay_record(c, u) != 0 || read_exact(u, sh, 5) != 0)
		goto fail;
	size_t shlen = ((size_t)sh[3] << 8) | sh[4];
	if (shlen > sizeof sh - 5 || read_exact(u, sh + 5, shlen) != 0)
		goto fail;
	for (int i = 0; i < 2; i++) {
		t->s[i].t = t;
		t->s[i].fd = i == 0 ? c : u;
		t->s[i].pipe[0] = t->s[i].pipe[1] = -1;
	}
	if (use_sockmap ? sockmap_add(t) != 0
			: pipe2(t->s[0].pipe, O_NONBLOCK | O_CLOEXEC) != 0 ||
			      pipe2(t->s[1].pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		goto fail;
	/* The server's first record goes to the client last: only now may
	 * the client speak, and its bytes meet the new relay. */
	if (send(c, sh, 5 + shlen, MSG_NOSIGNAL) != (ssize_t)(5 + shlen))
		goto fail;
	for (int i = 0; i < 2; i++) {
		set_nonblock(t->s[i].fd);
		struct epoll_event e = {.events =
					    use_sockmap ? EPOLLRDHUP : EPOLLIN,
					.data.ptr = &t->s[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, t->s[i].fd, &e);
	}
	return;
fail:
	fprintf(stderr, "sockmap-relay: tunnel setup failed: %s\n",
		strerror(errno));
	close(c);
	close(u);
	free(t);
}

/* Splice what `s` can read to its peer; false: the tunnel is done. */
static bool pump(struct side *s)
{
	struct side *o = &s->t->s[s == &s->t->s[0] ? 1 : 0];
	for (;;) {
		if (s->inpipe > 0) {
			ssize_t n =
			    splice(s->pipe[0], NULL, o->fd, NULL, s->inpipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				s->inpipe -= (size_t)n;
				continue;
			}
			if (n < 0 && errno == EAGAIN) {
				struct epoll_event e = {.events = EPOLLOUT,
							.data.ptr = s};
				/* wait for the peer to drain: on its fd */
				epoll_ctl(ep, EPOLL_CTL_MOD, s->fd,
					  &(struct epoll_event){0, {.ptr = s}});
				e.data.ptr = o;
				epoll_ctl(ep, EPOLL_CTL_MOD, o->fd, &e);
				return true;
			}
			return false;
		}
		ssize_t n = splice(s->fd, NULL, s->pipe[1], NULL, CHUNK,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			s->inpipe = (size_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return true;
		return false; /* EOF or error: the experiment closes both */
	}
}

static void on_event(struct side *s, uint32_t ev)
{
	struct tunnel *t = s->t;
	if (t->dead)
		return;
	if (use_sockmap) {
		tunnel_close(t); /* EPOLLRDHUP: one side has closed */
		return;
	}
	struct side *o = &t->s[s == &t->s[0] ? 1 : 0];
	if ((ev & EPOLLOUT) && o->inpipe > 0) {
		/* `s` drained: finish the peer direction, then read again */
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
		epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
		e.data.ptr = o;
		epoll_ctl(ep, EPOLL_CTL_MOD, o->fd, &e);
		if (!pump(o)) {
			tunnel_close(t);
			return;
		}
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !pump(s))
		tunnel_close(t);
}

static int load_bpf(const char *path)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (obj == NULL || bpf_object__load(obj) != 0)
		return -1;
	struct bpf_program *prog =
	    bpf_object__find_program_by_name(obj, "relay_verdict");
	map_socks = bpf_object__find_map_fd_by_name(obj, "socks");
	map_peer = bpf_object__find_map_fd_by_name(obj, "peer");
	map_bytes = bpf_object__find_map_fd_by_name(obj, "bytes");
	if (prog == NULL || map_socks < 0 || map_peer < 0 || map_bytes < 0)
		return -1;
	return bpf_prog_attach(bpf_program__fd(prog), map_socks,
			       BPF_SK_SKB_STREAM_VERDICT, 0);
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *bpf = "relay.bpf.o";
	struct sockaddr_in lis, to;
	bool have_lis = false, have_to = false;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--mode") == 0)
			mode = argv[i + 1];
		else if (strcmp(argv[i], "--bpf") == 0)
			bpf = argv[i + 1];
		else if (strcmp(argv[i], "--listen") == 0)
			have_lis = parse_addr(argv[i + 1], &lis) == 0;
		else if (strcmp(argv[i], "--to") == 0)
			have_to = parse_addr(argv[i + 1], &to) == 0;
	}
	if (mode == NULL || !have_lis || !have_to ||
	    (strcmp(mode, "splice") != 0 && strcmp(mode, "sockmap") != 0)) {
		fputs("usage: sockmap-relay --mode splice|sockmap --listen "
		      "ADDR:PORT --to ADDR:PORT [--bpf relay.bpf.o]\n",
		      stderr);
		return 2;
	}
	use_sockmap = strcmp(mode, "sockmap") == 0;
	if (use_sockmap && load_bpf(bpf) != 0) {
		fprintf(stderr, "sockmap-relay: cannot load %s: %s\n", bpf,
			strerror(errno));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&lis, sizeof lis) != 0 ||
	    listen(lfd, 128) != 0) {
		perror("sockmap-relay: listen");
		return 1;
	}
	struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
	fprintf(stderr, "sockmap-relay: %s relay listening\n", mode);
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				on_accept(lfd, &to);
			else
				on_event(evs[i].data.ptr, evs[i].events);
		}
		while (dead_list != NULL) {
			struct tunnel *t = dead_list;
			dead_list = t->next_dead;
			free(t);
		}
	}
}
