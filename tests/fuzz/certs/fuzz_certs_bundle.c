/* Fuzz harness: arbitrary bytes as a --ca-bundle file. A parse either fails
 * with a message naming the file and hands nothing out, or yields a bundle
 * whose canonical PEM parses again to the same certificates. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "certs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct certs_bundle *b = NULL;
	char err[256];
	int rc = certs_bundle_parse("fuzz.pem", (const char *)data, size, &b,
				    err, sizeof err);
	if (rc != 0) {
		if (b != NULL || strncmp(err, "fuzz.pem", 8) != 0)
			abort();
		return 0;
	}
	size_t len = 0;
	const char *pem = certs_bundle_pem(b, &len);
	struct certs_bundle *again = NULL;
	if (certs_bundle_parse("again.pem", pem, len, &again, err,
			       sizeof err) != 0 ||
	    certs_bundle_count(again) != certs_bundle_count(b))
		abort();
	for (size_t i = 0; i < certs_bundle_count(b); i++)
		if (strcmp(certs_bundle_subject(b, i),
			   certs_bundle_subject(again, i)) != 0)
			abort();
	certs_bundle_free(again);
	certs_bundle_free(b);
	return 0;
}
