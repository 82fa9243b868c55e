/* Fuzz harness for proxy/cred_decode.c: the agent picks every byte of an
 * Authorization value and of a request target. The Basic decoder must
 * stay inside its output, refuse rather than truncate, and agree with the
 * encoder (what it decodes with the standard alphabet encodes back to the
 * same bytes once padded); percent-decoding never grows its input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cred_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_cred_decode: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = (const char *)data;
	size_t cap = (size / 4 + 1) * 3;
	unsigned char *raw = malloc(cap);
	char *enc = malloc(6 + 4 * (cap / 3 + 1) + 1);
	char *pct = malloc(size + 1);
	check(raw != NULL && enc != NULL && pct != NULL, "out of memory");
	long any = cred_decode_basic(v, size, CRED_B64_ANY, raw, cap);
	long n = cred_decode_basic(v, size, CRED_B64_STD, raw, cap);
	check(n <= (long)cap && any <= (long)cap, "decoded past cap");
	check(n < 0 || any == n, "the standard alphabet is part of any");
	if (n > 0) {
		long el = cred_encode_basic(raw, (size_t)n, enc,
					    6 + 4 * (cap / 3 + 1) + 1);
		check(el > 6, "encoding failed");
		/* The encoding equals the input's token, padded. */
		size_t i = 6;
		while (i < size && v[i] == ' ')
			i++;
		size_t tl = size - i;
		while (tl > 0 && v[i + tl - 1] == '=')
			tl--;
		check((size_t)el - 6 >= tl &&
			  memcmp(enc + 6, v + i, tl - (tl % 4 != 0)) == 0,
		      "decode and encode disagree");
	}
	size_t pl = cred_decode_percent(v, size, pct);
	check(pl <= size, "percent-decoding grew");
	free(raw);
	free(enc);
	free(pct);
	return 0;
}
