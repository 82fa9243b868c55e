/* Extra CA bundles (corporate TLS gateways) that the launcher hands to the
 * agent's container. A bundle is read and checked before it is trusted:
 * every PEM block must be an X.509 CA certificate, so a user who points
 * --ca-bundle at the wrong file learns it at once, not from a TLS error
 * deep inside the container. */
#ifndef AGENTSAFE_CERTS_H
#define AGENTSAFE_CERTS_H

#include <stddef.h>

/* A bundle may hold at most this many certificates and this many bytes;
 * system bundles have ~150 certificates in ~220 KiB. */
#define CERTS_MAX_CERTS 1024
#define CERTS_MAX_BYTES ((size_t)4 * 1024 * 1024)

struct certs_bundle;

/* Read a PEM bundle from path. Each certificate must parse and have
 * basicConstraints CA:TRUE (or be a self-signed v1 root); certificates
 * outside their validity period are dropped and counted (system bundles
 * carry a few), and a bundle of nothing else is an error; anything else between
 * BEGIN/END lines (keys, CRLs, garbage) is an error naming the file and the
 * certificate's line. Text outside PEM blocks (comments, as in Debian's bundle)
 * is ignored. An empty bundle is an error. Returns 0 and a bundle in *out, or
 * -errno with err filled. */
int certs_bundle_load(const char *path, struct certs_bundle **out, char *err,
		      size_t errlen);

/* Same, from memory; `name` is used in messages. */
int certs_bundle_parse(const char *name, const char *pem, size_t len,
		       struct certs_bundle **out, char *err, size_t errlen);

/* Number of certificates kept, and number dropped as expired or not yet
 * valid. */
size_t certs_bundle_count(const struct certs_bundle *b);
size_t certs_bundle_skipped(const struct certs_bundle *b);

/* The bundle as canonical PEM (certificates only, in file order, duplicates
 * removed), NUL-terminated; owned by the bundle. */
const char *certs_bundle_pem(const struct certs_bundle *b, size_t *len);

/* Subject of certificate i as a one-line string (RFC 2253), for messages;
 * owned by the bundle. NULL when i is out of range. */
const char *certs_bundle_subject(const struct certs_bundle *b, size_t i);

/* Write the canonical PEM to path (mode 0644) via a temporary file and
 * rename, so a reader never sees half a bundle. */
int certs_bundle_write(const struct certs_bundle *b, const char *path,
		       char *err, size_t errlen);

void certs_bundle_free(struct certs_bundle *b);

#endif
