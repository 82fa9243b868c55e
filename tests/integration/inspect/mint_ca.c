/* Test helper: mint a session CA the way the launcher does (certs_ca_mint)
 * and write it: mint_ca CERT KEY VALIDITY_S HOST... */
#include <stdio.h>
#include <stdlib.h>

#include "ca.h"

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: mint_ca CERT KEY VALIDITY_S HOST...\n");
		return 2;
	}
	char err[512];
	struct certs_ca *ca = NULL;
	long validity = strtol(argv[3], NULL, 10);
	if (certs_ca_mint((const char *const *)argv + 4, (size_t)(argc - 4),
			  validity, &ca, err, sizeof err) != 0 ||
	    certs_ca_write(ca, argv[1], argv[2], err, sizeof err) != 0) {
		fprintf(stderr, "mint_ca: %s\n", err);
		certs_ca_free(ca);
		return 1;
	}
	certs_ca_free(ca);
	return 0;
}
