/* Fuzz harness for what the fence's NFLOG reader takes from the kernel: the
 * dropped packet (container-controlled bytes) and the netlink messages around
 * it. The first byte picks the target: even, fence_parse_packet on the rest,
 * checking that every field it returns is well formed; odd, the whole reader
 * (fence_nflog_handle), which writes drop records to /dev/null. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_log.h"
#include "nflog_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fence_nflog *reader(void)
{
	static struct egress_log *log;
	static struct fence_nflog *n;
	if (n == NULL) {
		char err[256];
		if (egress_log_open("/dev/null", "fuzz", &log, err,
				    sizeof err) != 0)
			abort();
		n = fence_nflog_new_detached(log);
		if (n == NULL)
			abort();
		fence_nflog_set_time(n, 1000);
	}
	return n;
}

static void check_str(const char *s, size_t cap)
{
	if (memchr(s, '\0', cap) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		/* netlink framing is the kernel's, but a reader must survive
		 * anything; copy so alignment is the reader's problem. */
		void *buf = malloc(size - 1 ? size - 1 : 1);
		if (buf == NULL)
			return 0;
		memcpy(buf, data + 1, size - 1);
		fence_nflog_handle(reader(), buf, size - 1);
		free(buf);
		return 0;
	}
	struct fence_pkt k;
	if (fence_parse_packet(data + 1, size - 1, &k) != 0)
		return 0;
	if (k.family != 4 && k.family != 6)
		abort();
	check_str(k.src, sizeof k.src);
	check_str(k.dst, sizeof k.dst);
	if (k.proto != 6 && k.proto != 17 && (k.sport != 0 || k.dport != 0))
		abort();
	if (k.icmp_type < -1 || k.icmp_type > 255)
		abort();
	char name[16];
	check_str(fence_proto_name(k.proto, name, sizeof name), 16);
	return 0;
}
