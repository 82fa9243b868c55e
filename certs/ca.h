/* The per-session CA of TLS inspection: the launcher mints it for the
 * session's inspected hosts (name constraints limit it to them), the proxy
 * loads it and mints one leaf certificate per inspected host on demand,
 * cached in a bounded LRU. The CA key never leaves the host. */
#ifndef AGENTSAFE_CERTS_CA_H
#define AGENTSAFE_CERTS_CA_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Default lifetime of a session CA (a session longer than this restarts
 * its proxy's trust: leaves are never valid past the CA). */
#define CERTS_CA_VALIDITY_S (7L * 86400)
/* Leaf certificates kept per cache. */
#define CERTS_LEAF_CACHE_MAX 256

struct certs_ca;

/* Mint a CA: EC P-256, valid from one hour ago for validity_s seconds,
 * basicConstraints CA:TRUE pathlen:0 (critical), keyUsage keyCertSign and
 * cRLSign, and critical name constraints: permitted DNS subtrees = hosts
 * (a wildcard "*.example.test" as "example.test"; an entry also permits
 * its subdomains, RFC 5280 4.2.1.10), every IP address excluded. nhosts
 * may not be 0 (a CA for no host is never needed). Returns 0 or -errno
 * with err filled. */
int certs_ca_mint(const char *const *hosts, size_t nhosts, long validity_s,
		  struct certs_ca **out, char *err, size_t errlen);

/* Write the certificate (0644) and the private key (0600, created
 * exclusively: an existing file is an error) as PEM. */
int certs_ca_write(const struct certs_ca *ca, const char *cert_path,
		   const char *key_path, char *err, size_t errlen);

/* Load a CA written by certs_ca_write; the key must match the
 * certificate and the key file must not be readable by group or others. */
int certs_ca_load(const char *cert_path, const char *key_path,
		  struct certs_ca **out, char *err, size_t errlen);

/* The CA certificate as PEM, NUL-terminated, owned by ca. */
const char *certs_ca_pem(const struct certs_ca *ca, size_t *len);

void certs_ca_free(struct certs_ca *ca);

/* A bounded LRU of server SSL_CTXs, one per host, each holding a leaf for
 * that host signed by the CA (SAN = the host, EKU serverAuth, valid no
 * longer than the CA) and offering only ALPN http/1.1 when the client
 * asks. Thread-safe. Borrows ca (it must outlive the cache). */
struct certs_leafcache;

struct certs_leafcache *certs_leafcache_new(struct certs_ca *ca, size_t cap);
void certs_leafcache_free(struct certs_leafcache *lc);

/* The server context for host (a normalised host name), minted on first
 * use. The caller gets a reference and owes SSL_CTX_free. NULL with err
 * filled on failure. */
SSL_CTX *certs_leaf_ctx(struct certs_leafcache *lc, const char *host, char *err,
			size_t errlen);

/* Number of contexts minted so far (cache misses), for tests. */
unsigned long certs_leafcache_minted(const struct certs_leafcache *lc);

#endif
