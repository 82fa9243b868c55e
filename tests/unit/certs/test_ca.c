/* certs_ca_* and the leaf cache: a minted CA written and loaded back, leaf
 * chains verified by OpenSSL the way a client in the container verifies
 * them (trust = the CA alone, host name checked), the name constraints
 * refusing a leaf for a host the session does not inspect, a real TLS
 * handshake in memory with ALPN, and the cache bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ca.h"

static const char *const hosts[] = {"api.example.test", "*.git.test"};

static X509 *pem_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	return x;
}

/* Verify the leaf of host's context against a store holding only the CA,
 * checking the name as curl does. Returns the X509_V_* result. */
static int verify_leaf(struct certs_ca *ca, struct certs_leafcache *lc,
		       const char *host, const char *check_name)
{
	char err[256];
	SSL_CTX *ctx = certs_leaf_ctx(lc, host, err, sizeof err);
	assert_non_null(ctx);
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	assert_non_null(leaf);
	X509 *root = pem_cert(certs_ca_pem(ca, NULL));
	X509_STORE *st = X509_STORE_new();
	assert_int_equal(X509_STORE_add_cert(st, root), 1);
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	assert_int_equal(X509_STORE_CTX_init(sc, st, leaf, NULL), 1);
	X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(sc);
	X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT);
	X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER);
	assert_int_equal(X509_VERIFY_PARAM_set1_host(vp, check_name, 0), 1);
	int ok = X509_verify_cert(sc);
	int r = X509_STORE_CTX_get_error(sc);
	if (ok == 1)
		assert_int_equal(r, X509_V_OK);
	X509_STORE_CTX_free(sc);
	X509_STORE_free(st);
	X509_free(root);
	SSL_CTX_free(ctx);
	return r;
}

static void leaves_verify_for_inspected_hosts(void **state)
{
	(void)state;
	char err[256] = "";
	struct certs_ca *ca = NULL;
	assert_int_equal(certs_ca_mint(hosts, 2, 3600, &ca, err, sizeof err),
			 0);
	struct certs_leafcache *lc = certs_leafcache_new(ca, 8);
	assert_non_null(lc);
	assert_int_equal(
	    verify_leaf(ca, lc, "api.example.test", "api.example.test"),
	    X509_V_OK);
	/* A wildcard rule's CA permits the parent and every subdomain. */
	assert_int_equal(verify_leaf(ca, lc, "a.git.test", "a.git.test"),
			 X509_V_OK);
	assert_int_equal(verify_leaf(ca, lc, "git.test", "git.test"),
			 X509_V_OK);
	/* A leaf is for its own name only. */
	assert_int_equal(
	    verify_leaf(ca, lc, "api.example.test", "example.test"),
	    X509_V_ERR_HOSTNAME_MISMATCH);
	certs_leafcache_free(lc);
	certs_ca_free(ca);
}

static void name_constraints_refuse_other_hosts(void **state)
{
	(void)state;
	char err[256] = "";
	struct certs_ca *ca = NULL;
	assert_int_equal(certs_ca_mint(hosts, 2, 3600, &ca, err, sizeof err),
			 0);
	struct certs_leafcache *lc = certs_leafcache_new(ca, 8);
	/* Even if the key leaked, a certificate it signs for a host the
	 * session does not inspect is refused by every verifier. */
	assert_int_equal(verify_leaf(ca, lc, "bank.test", "bank.test"),
			 X509_V_ERR_PERMITTED_VIOLATION);
	assert_int_equal(verify_leaf(ca, lc, "example.test.evil.test",
				     "example.test.evil.test"),
			 X509_V_ERR_PERMITTED_VIOLATION);
	assert_int_equal(verify_leaf(ca, lc, "xgit.test", "xgit.test"),
			 X509_V_ERR_PERMITTED_VIOLATION);
	certs_leafcache_free(lc);
	certs_ca_free(ca);
}

static void ca_is_p256_short_lived_ca(void **state)
{
	(void)state;
	char err[256] = "";
	struct certs_ca *ca = NULL;
	assert_int_equal(certs_ca_mint(hosts, 2, 7200, &ca, err, sizeof err),
			 0);
	X509 *x = pem_cert(certs_ca_pem(ca, NULL));
	assert_int_equal(X509_check_ca(x), 1);
	EVP_PKEY *k = X509_get0_pubkey(x);
	assert_int_equal(EVP_PKEY_get_bits(k), 256);
	assert_true(EVP_PKEY_is_a(k, "EC"));
	int days = 0, secs = 0;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
					X509_get0_notAfter(x)),
			 1);
	assert_int_equal(days * 86400 + secs, 7200 + 3600);
	int crit = -1;
	NAME_CONSTRAINTS *nc =
	    X509_get_ext_d2i(x, NID_name_constraints, &crit, NULL);
	assert_non_null(nc);
	assert_int_equal(crit, 1);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees), 2);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 2);
	NAME_CONSTRAINTS_free(nc);
	X509_free(x);
	certs_ca_free(ca);
}

static void mint_refuses_bad_input(void **state)
{
	(void)state;
	char err[256] = "";
	struct certs_ca *ca = NULL;
	static const char *const bad[] = {"a.test,permitted;DNS:bank.test"};
	assert_int_not_equal(certs_ca_mint(bad, 1, 3600, &ca, err, sizeof err),
			     0);
	assert_null(ca);
	assert_int_not_equal(
	    certs_ca_mint(hosts, 0, 3600, &ca, err, sizeof err), 0);
}

static void write_and_load_keep_the_key_private(void **state)
{
	(void)state;
	char dir[] = "/tmp/agentsafe-ca-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cert[128], key[128];
	snprintf(cert, sizeof cert, "%s/ca.pem", dir);
	snprintf(key, sizeof key, "%s/ca.key", dir);
	char err[256] = "";
	struct certs_ca *ca = NULL, *back = NULL;
	assert_int_equal(certs_ca_mint(hosts, 2, 3600, &ca, err, sizeof err),
			 0);
	assert_int_equal(certs_ca_write(ca, cert, key, err, sizeof err), 0);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The key file is created exclusively: never over another file. */
	assert_int_not_equal(certs_ca_write(ca, cert, key, err, sizeof err), 0);
	assert_int_equal(certs_ca_load(cert, key, &back, err, sizeof err), 0);
	assert_string_equal(certs_ca_pem(back, NULL), certs_ca_pem(ca, NULL));
	certs_ca_free(back);
	back = NULL;
	assert_int_equal(chmod(key, 0640), 0);
	assert_int_not_equal(certs_ca_load(cert, key, &back, err, sizeof err),
			     0);
	assert_non_null(strstr(err, "0600"));
	unlink(cert);
	unlink(key);
	rmdir(dir);
	certs_ca_free(ca);
}

/* Drive a client and a server SSL over a BIO pair until both are done. */
static int handshake(SSL *cl, SSL *sv)
{
	for (int i = 0; i < 50; i++) {
		int a = SSL_do_handshake(cl), b = SSL_do_handshake(sv);
		if (a == 1 && b == 1)
			return 1;
		int ea = SSL_get_error(cl, a), eb = SSL_get_error(sv, b);
		if ((a != 1 && ea != SSL_ERROR_WANT_READ) ||
		    (b != 1 && eb != SSL_ERROR_WANT_READ)) {
			ERR_print_errors_fp(stderr);
			return 0;
		}
	}
	return 0;
}

static void tls_handshake_offers_http11_only(void **state)
{
	(void)state;
	char err[256] = "";
	struct certs_ca *ca = NULL;
	assert_int_equal(certs_ca_mint(hosts, 2, 3600, &ca, err, sizeof err),
			 0);
	struct certs_leafcache *lc = certs_leafcache_new(ca, 8);
	SSL_CTX *sctx = certs_leaf_ctx(lc, "api.example.test", err, sizeof err);
	assert_non_null(sctx);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	X509 *root = pem_cert(certs_ca_pem(ca, NULL));
	X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), root);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	SSL *cl = SSL_new(cctx), *sv = SSL_new(sctx);
	BIO *bc = NULL, *bs = NULL;
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(cl, bc, bc);
	SSL_set_bio(sv, bs, bs);
	SSL_set_tlsext_host_name(cl, "api.example.test");
	SSL_set1_host(cl, "api.example.test");
	static const unsigned char protos[] = "\x02h2\x08http/1.1";
	SSL_set_alpn_protos(cl, protos, sizeof protos - 1);
	SSL_set_connect_state(cl);
	SSL_set_accept_state(sv);
	assert_int_equal(handshake(cl, sv), 1);
	assert_int_equal(SSL_get_verify_result(cl), X509_V_OK);
	const unsigned char *sel = NULL;
	unsigned sellen = 0;
	SSL_get0_alpn_selected(cl, &sel, &sellen);
	assert_int_equal(sellen, 8);
	assert_memory_equal(sel, "http/1.1", 8);
	SSL_free(cl);
	SSL_free(sv);
	X509_free(root);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	certs_leafcache_free(lc);
	certs_ca_free(ca);
}

static void cache_is_bounded_lru(void **state)
{
	(void)state;
	char err[256] = "";
	struct certs_ca *ca = NULL;
	assert_int_equal(certs_ca_mint(hosts, 2, 3600, &ca, err, sizeof err),
			 0);
	struct certs_leafcache *lc = certs_leafcache_new(ca, 2);
	const char *seq[] = {"a.git.test", "b.git.test", "a.git.test",
			     "c.git.test", "a.git.test", "b.git.test"};
	/* a b (hit a) c evicts b; a hits; b is minted again. */
	for (size_t i = 0; i < 6; i++) {
		SSL_CTX *ctx = certs_leaf_ctx(lc, seq[i], err, sizeof err);
		assert_non_null(ctx);
		SSL_CTX_free(ctx);
	}
	assert_int_equal(certs_leafcache_minted(lc), 4);
	certs_leafcache_free(lc);
	certs_ca_free(ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(leaves_verify_for_inspected_hosts),
	    cmocka_unit_test(name_constraints_refuse_other_hosts),
	    cmocka_unit_test(ca_is_p256_short_lived_ca),
	    cmocka_unit_test(mint_refuses_bad_input),
	    cmocka_unit_test(write_and_load_keep_the_key_private),
	    cmocka_unit_test(tls_handshake_offers_http11_only),
	    cmocka_unit_test(cache_is_bounded_lru),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
