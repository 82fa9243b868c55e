/* Fuzz harness for the egress.log reader: the log's lines are written from
 * what the agent sent (hosts, SNIs, quoted requests), and everything shown
 * from them goes through the escaper. Checks that the escaped text is valid
 * UTF-8 with no control, bidi or line-break character left, bounded by the
 * buffer, and that logread_next survives any byte stream. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logread.h"

static bool shown_safely(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i], cp;
		size_t k;
		if (c < 0x80) {
			cp = c;
			k = 1;
		} else if (c >= 0xc2 && c <= 0xdf) {
			cp = c & 0x1fu;
			k = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			cp = c & 0x0fu;
			k = 3;
		} else if (c >= 0xf0 && c <= 0xf4) {
			cp = c & 0x07u;
			k = 4;
		} else {
			return false;
		}
		if (i + k > n)
			return false;
		for (size_t j = 1; j < k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3fu);
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x61c ||
		    cp == 0x200e || cp == 0x200f ||
		    (cp >= 0x2028 && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
		    (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000))
			return false;
		i += k;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the escaper, with a buffer size taken from the first byte */
	if (size > 0) {
		size_t len = data[0];
		char *in = malloc(size), *out = malloc(len + 1);
		if (in == NULL || out == NULL)
			abort();
		memcpy(in, data + 1, size - 1);
		in[size - 1] = '\0';
		size_t need = logread_escape(in, out, len);
		size_t got = len > 0 ? strlen(out) : 0;
		if (len > 0 &&
		    (got >= len || got > need || (need < len && got != need) ||
		     !shown_safely((const unsigned char *)out, got)))
			abort();
		free(in);
		free(out);
	}
	/* the reader, over the input as a file */
	struct logread r;
	char err[128];
	if (logread_open(&r, "-", false, err, sizeof err) != 0)
		return 0;
	r.quiet = true;
	r.f = fmemopen((void *)(uintptr_t)data, size, "r");
	if (r.f == NULL || size == 0) {
		if (r.f == NULL)
			r.f = stdin; /* not closed by logread_close */
		logread_close(&r);
		return 0;
	}
	struct logrec rec;
	while (logread_next(&r, &rec) == 1) {
		if (rec.event == NULL || rec.ts == NULL)
			abort();
		(void)logrec_is_denied(&rec);
		logrec_clear(&rec);
	}
	logread_close(&r);
	return 0;
}
