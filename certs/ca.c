/* The session CA and its leaf certificates (see ca.h). Certificates are
 * built with OpenSSL's X509 API; extensions go through the v3 config
 * syntax, the one OpenSSL documents for name constraints. */
#include "ca.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Longest name-constraints configuration string built from hosts. */
#define NC_MAX ((size_t)256 * 1024)

struct certs_ca {
	X509 *cert;
	EVP_PKEY *key;
	char *pem;
	size_t pem_len;
};

struct leaf_entry {
	char *host;
	SSL_CTX *ctx;
	unsigned long used; /* LRU clock */
};

struct certs_leafcache {
	pthread_mutex_t lock;
	struct certs_ca *ca;
	EVP_PKEY *key; /* one key for every leaf of this cache */
	struct leaf_entry *e;
	size_t n, cap;
	unsigned long clock, minted;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	unsigned long e = ERR_get_error();
	size_t used = strlen(err);
	if (e != 0 && used + 3 < errlen) {
		char buf[256];
		ERR_error_string_n(e, buf, sizeof buf);
		(void)snprintf(err + used, errlen - used, " (%s)", buf);
	}
	ERR_clear_error();
}

void certs_ca_free(struct certs_ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca->pem);
	free(ca);
}

const char *certs_ca_pem(const struct certs_ca *ca, size_t *len)
{
	if (len != NULL)
		*len = ca->pem_len;
	return ca->pem;
}

static int random_serial(X509 *x)
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof b) != 1)
		return -1;
	b[0] &= 0x7f; /* positive */
	b[0] |= 0x01; /* and not zero-led */
	BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
	if (bn == NULL)
		return -1;
	ASN1_INTEGER *s = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	return s != NULL ? 0 : -1;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* A host as a DNS name constraint: LDH and '_' only, so it cannot break
 * the comma-separated configuration string. */
static bool nc_host_ok(const char *h)
{
	if (*h == '\0')
		return false;
	for (const char *p = h; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '.' || ch == '_'))
			return false;
	}
	return true;
}

static char *name_constraints(const char *const *hosts, size_t nhosts,
			      char *err, size_t errlen)
{
	static const char tail[] =
	    "excluded;IP:0.0.0.0/0.0.0.0,"
	    "excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0";
	size_t len = sizeof "critical," + sizeof tail;
	for (size_t i = 0; i < nhosts; i++)
		len += strlen(hosts[i]) + sizeof "permitted;DNS:,";
	if (len > NC_MAX) {
		seterr(err, errlen, "too many inspected hosts for one CA");
		return NULL;
	}
	char *s = malloc(len);
	if (s == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	size_t off = (size_t)snprintf(s, len, "critical,");
	for (size_t i = 0; i < nhosts; i++) {
		const char *h = hosts[i];
		if (h[0] == '*' && h[1] == '.')
			h += 2;
		if (!nc_host_ok(h)) {
			seterr(err, errlen,
			       "inspected host %zu is not a normalised DNS "
			       "name",
			       i + 1);
			free(s);
			return NULL;
		}
		off += (size_t)snprintf(s + off, len - off, "permitted;DNS:%s,",
					h);
	}
	(void)snprintf(s + off, len - off, "%s", tail);
	return s;
}

static int pem_of(X509 *x, char **out, size_t *outlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (b == NULL || PEM_write_bio_X509(b, x) != 1) {
		BIO_free(b);
		return -ENOMEM;
	}
	char *data;
	long n = BIO_get_mem_data(b, &data);
	*out = malloc((size_t)n + 1);
	if (*out == NULL) {
		BIO_free(b);
		return -ENOMEM;
	}
	memcpy(*out, data, (size_t)n);
	(*out)[n] = '\0';
	*outlen = (size_t)n;
	BIO_free(b);
	return 0;
}

static int set_name(X509_NAME *nm, const char *cn)
{
	if (X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC,
				       (const unsigned char *)"AgentSafe", -1,
				       -1, 0) != 1)
		return -1;
	return X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
					  (const unsigned char *)cn, -1, -1,
					  0) == 1
		   ? 0
		   : -1;
}

int certs_ca_mint(const char *const *hosts, size_t nhosts, long validity_s,
		  struct certs_ca **out, char *err, size_t errlen)
{
	if (nhosts == 0 || validity_s <= 0) {
		seterr(err, errlen, "a session CA needs hosts and a validity");
		return -EINVAL;
	}
	char *nc = name_constraints(hosts, nhosts, err, errlen);
	if (nc == NULL)
		return -EINVAL;
	int rc = -EIO;
	struct certs_ca *ca = calloc(1, sizeof *ca);
	if (ca == NULL)
		goto out;
	ca->key = EVP_EC_gen("P-256");
	ca->cert = X509_new();
	if (ca->key == NULL || ca->cert == NULL)
		goto out;
	X509 *x = ca->cert;
	if (X509_set_version(x, 2) != 1 || random_serial(x) != 0 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), validity_s) == NULL ||
	    set_name(X509_get_subject_name(x), "AgentSafe session CA") != 0 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, ca->key) != 1 ||
	    add_ext(x, x, NID_basic_constraints,
		    "critical,CA:TRUE,pathlen:0") ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    add_ext(x, x, NID_name_constraints, nc) ||
	    X509_sign(x, ca->key, EVP_sha256()) <= 0)
		goto out;
	rc = pem_of(x, &ca->pem, &ca->pem_len);
	if (rc != 0)
		goto out;
	*out = ca;
	ca = NULL;
out:
	if (rc != 0)
		seterr(err, errlen, "cannot mint the session CA");
	free(nc);
	certs_ca_free(ca);
	return rc;
}

static int write_file(const char *path, const char *data, size_t len,
		      mode_t mode, int extra_flags, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | extra_flags, mode);
	if (fd < 0) {
		int e = errno;
		seterr(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			int e = errno;
			close(fd);
			seterr(err, errlen, "%s: %s", path, strerror(e));
			return -e;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, mode) != 0 || close(fd) != 0) {
		int e = errno;
		seterr(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

int certs_ca_write(const struct certs_ca *ca, const char *cert_path,
		   const char *key_path, char *err, size_t errlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (b == NULL || PEM_write_bio_PrivateKey(b, ca->key, NULL, NULL, 0,
						  NULL, NULL) != 1) {
		BIO_free(b);
		seterr(err, errlen, "cannot encode the CA key");
		return -ENOMEM;
	}
	char *data;
	long n = BIO_get_mem_data(b, &data);
	int rc =
	    write_file(key_path, data, (size_t)n, 0600, O_EXCL, err, errlen);
	OPENSSL_cleanse(data, (size_t)n);
	BIO_free(b);
	if (rc != 0)
		return rc;
	return write_file(cert_path, ca->pem, ca->pem_len, 0644, O_TRUNC, err,
			  errlen);
}

static X509 *read_cert(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	(void)fclose(f); /* read-only */
	if (x == NULL)
		seterr(err, errlen, "%s: no PEM certificate", path);
	return x;
}

static EVP_PKEY *read_key(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if ((st.st_mode & 077) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		seterr(err, errlen,
		       "%s: a CA key must be a regular file of mode 0600",
		       path);
		return NULL;
	}
	FILE *f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	(void)fclose(f); /* read-only */
	if (k == NULL)
		seterr(err, errlen, "%s: no PEM private key", path);
	return k;
}

int certs_ca_load(const char *cert_path, const char *key_path,
		  struct certs_ca **out, char *err, size_t errlen)
{
	struct certs_ca *ca = calloc(1, sizeof *ca);
	if (ca == NULL)
		return -ENOMEM;
	ca->cert = read_cert(cert_path, err, errlen);
	if (ca->cert != NULL)
		ca->key = read_key(key_path, err, errlen);
	if (ca->key == NULL) {
		certs_ca_free(ca);
		return -EINVAL;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1 ||
	    X509_check_ca(ca->cert) == 0) {
		seterr(err, errlen, "%s: not a CA certificate for the key %s",
		       cert_path, key_path);
		certs_ca_free(ca);
		return -EINVAL;
	}
	if (pem_of(ca->cert, &ca->pem, &ca->pem_len) != 0) {
		certs_ca_free(ca);
		return -ENOMEM;
	}
	*out = ca;
	return 0;
}

/* ---- leaves ---- */

struct certs_leafcache *certs_leafcache_new(struct certs_ca *ca, size_t cap)
{
	struct certs_leafcache *lc = calloc(1, sizeof *lc);
	if (lc == NULL)
		return NULL;
	lc->cap = cap ? cap : 1;
	lc->e = calloc(lc->cap, sizeof *lc->e);
	lc->key = EVP_EC_gen("P-256");
	if (lc->e == NULL || lc->key == NULL ||
	    pthread_mutex_init(&lc->lock, NULL) != 0) {
		free(lc->e);
		EVP_PKEY_free(lc->key);
		free(lc);
		return NULL;
	}
	lc->ca = ca;
	return lc;
}

void certs_leafcache_free(struct certs_leafcache *lc)
{
	if (lc == NULL)
		return;
	for (size_t i = 0; i < lc->n; i++) {
		free(lc->e[i].host);
		SSL_CTX_free(lc->e[i].ctx);
	}
	free(lc->e);
	EVP_PKEY_free(lc->key);
	pthread_mutex_destroy(&lc->lock);
	free(lc);
}

unsigned long certs_leafcache_minted(const struct certs_leafcache *lc)
{
	return lc->minted;
}

static X509 *mint_leaf(struct certs_leafcache *lc, const char *host)
{
	X509 *ca = lc->ca->cert;
	X509 *x = X509_new();
	char san[300];
	if (x == NULL || !nc_host_ok(host) ||
	    snprintf(san, sizeof san, "DNS:%s", host) >= (int)sizeof san)
		goto fail;
	/* Never valid past the CA, nor before it. */
	if (X509_set_version(x, 2) != 1 || random_serial(x) != 0 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3L * 86400) == NULL)
		goto fail;
	if (ASN1_TIME_compare(X509_get0_notAfter(ca), X509_get0_notAfter(x)) <
		0 &&
	    X509_set1_notAfter(x, X509_get0_notAfter(ca)) != 1)
		goto fail;
	if (ASN1_TIME_compare(X509_get0_notBefore(x), X509_get0_notBefore(ca)) <
		0 &&
	    X509_set1_notBefore(x, X509_get0_notBefore(ca)) != 1)
		goto fail;
	if (set_name(X509_get_subject_name(x), host) != 0 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 ||
	    X509_set_pubkey(x, lc->key) != 1 ||
	    add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, ca, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, ca, NID_ext_key_usage, "serverAuth") ||
	    add_ext(x, ca, NID_subject_alt_name, san) ||
	    add_ext(x, ca, NID_authority_key_identifier, "keyid:always") ||
	    X509_sign(x, lc->ca->key, EVP_sha256()) <= 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* Offer http/1.1 only: a client that asks for h2 alone gets no ALPN and
 * speaks HTTP/1.1 or fails; the proxy refuses an h2 preface anyway. */
static int alpn_select(SSL *ssl, const unsigned char **out,
		       unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char *sel = NULL;
	if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in,
				  inlen) == OPENSSL_NPN_NEGOTIATED) {
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *leaf_ctx_new(struct certs_leafcache *lc, const char *host)
{
	X509 *leaf = mint_leaf(lc, host);
	if (leaf == NULL)
		return NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate(ctx, leaf) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, lc->key) != 1 ||
	    SSL_CTX_add1_chain_cert(ctx, lc->ca->cert) != 1) {
		SSL_CTX_free(ctx);
		X509_free(leaf);
		return NULL;
	}
	X509_free(leaf);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
				     SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	return ctx;
}

SSL_CTX *certs_leaf_ctx(struct certs_leafcache *lc, const char *host, char *err,
			size_t errlen)
{
	pthread_mutex_lock(&lc->lock);
	lc->clock++;
	size_t victim = 0;
	for (size_t i = 0; i < lc->n; i++) {
		if (strcmp(lc->e[i].host, host) == 0) {
			lc->e[i].used = lc->clock;
			SSL_CTX *ctx = lc->e[i].ctx;
			SSL_CTX_up_ref(ctx);
			pthread_mutex_unlock(&lc->lock);
			return ctx;
		}
		if (lc->e[i].used < lc->e[victim].used)
			victim = i;
	}
	SSL_CTX *ctx = leaf_ctx_new(lc, host);
	char *dup = ctx != NULL ? strdup(host) : NULL;
	if (dup == NULL) {
		SSL_CTX_free(ctx);
		pthread_mutex_unlock(&lc->lock);
		seterr(err, errlen, "cannot mint a certificate for %s", host);
		return NULL;
	}
	size_t slot = lc->n < lc->cap ? lc->n++ : victim;
	if (lc->e[slot].host != NULL) {
		free(lc->e[slot].host);
		SSL_CTX_free(lc->e[slot].ctx);
	}
	lc->e[slot] = (struct leaf_entry){dup, ctx, lc->clock};
	lc->minted++;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&lc->lock);
	return ctx;
}
