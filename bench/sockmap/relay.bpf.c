/* In-kernel relay for established tunnels (experiment, bench/sockmap):
 * a stream verdict program on a sockmap. Every segment that arrives on a
 * relayed socket is sent out on its peer socket by the kernel, without
 * waking the relay process; the bytes are counted per socket for the log.
 *
 * Build: clang -O2 -g -target bpf -c relay.bpf.c -o relay.bpf.o
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_SOCKS 65536

/* The relayed sockets; a tunnel's two sockets sit at any two indexes. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, MAX_SOCKS);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

/* Socket cookie -> the sockmap index of its peer. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u32);
} peer SEC(".maps");

/* Socket cookie -> bytes received on that socket and sent on (what the
 * close record's byte counts are made of). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} bytes SEC(".maps");

SEC("sk_skb/stream_verdict")
int relay_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u32 *to = bpf_map_lookup_elem(&peer, &cookie);
	if (to == 0)
		return SK_DROP; /* not a relayed socket: fail closed */
	__u64 *n = bpf_map_lookup_elem(&bytes, &cookie);
	if (n != 0)
		__sync_fetch_and_add(n, skb->len);
	return bpf_sk_redirect_map(skb, &socks, *to, 0);
}

char LICENSE[] SEC("license") = "GPL";
