/* Fuzz harness for serverhello_parse and clienthello_span. The input is
 * the server's bytes; they are parsed whole and in growing prefixes (as
 * the proxy's read callback sees them). Checks the result range, that a
 * verdict reached on a prefix is the verdict on the whole, the bound, and
 * that a span never exceeds its input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "clienthello.h"
#include "serverhello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_serverhello: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool hrr_full = false;
	enum serverhello_result full = serverhello_parse(data, size, &hrr_full);
	check(full >= SH_OTHER && full <= SH_NEED_MORE, "result out of range");
	check(full == SH_SERVER_HELLO || !hrr_full, "hrr without a verdict");
	if (size >= SERVERHELLO_MAX_BYTES)
		check(full != SH_NEED_MORE, "need_more past the bound");
	for (size_t i = 0; i <= size && i <= SERVERHELLO_MAX_BYTES; i++) {
		bool hrr = false;
		enum serverhello_result r = serverhello_parse(data, i, &hrr);
		if (r != SH_NEED_MORE) {
			check(r == full && hrr == hrr_full,
			      "a prefix's verdict differs from the whole's");
			break;
		}
		check(!hrr, "hrr on need_more");
	}
	size_t span = 0;
	if (clienthello_span(data, size, &span) == 0)
		check(span > 5 && span <= size, "span outside the input");
	return 0;
}
