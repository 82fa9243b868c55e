/* certs_bundle_*: real certificates made with OpenSSL in the test (CA,
 * server, expired, not-yet-valid), assembled into bundles the way users
 * hand them to --ca-bundle, plus the machine's own system bundle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs.h"

enum kind { CA, SERVER, EXPIRED_CA, FUTURE_CA };

/* PEM text of a fresh self-signed certificate of the given kind. */
static char *make_cert(enum kind k, const char *cn)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	assert_non_null(key);
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x),
			 (long)(random() & 0x7fffffff));
	long from = 0, to = 86400L * 30;
	if (k == EXPIRED_CA) {
		from = -86400L * 30;
		to = -86400L;
	} else if (k == FUTURE_CA) {
		from = 86400L * 2;
		to = 86400L * 30;
	}
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, key);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(
	    NULL, &ctx, NID_basic_constraints,
	    k == SERVER ? "critical,CA:FALSE" : "critical,CA:TRUE");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (k == SERVER) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
					  "critical,digitalSignature");
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	BIO *mem = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(mem, x);
	char *data = NULL;
	long n = BIO_get_mem_data(mem, &data);
	char *out = malloc((size_t)n + 1);
	assert_non_null(out);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(mem);
	X509_free(x);
	EVP_PKEY_free(key);
	return out;
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	assert_non_null(s);
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

static int parse(const char *pem, struct certs_bundle **b, char *err)
{
	return certs_bundle_parse("bundle.pem", pem, strlen(pem), b, err, 256);
}

static void two_cas_with_comments_load_in_order(void **state)
{
	(void)state;
	char *a = make_cert(CA, "Corp Root A");
	char *b = make_cert(CA, "Corp Root B");
	char *t1 = join("# corporate gateway roots\n\n", a);
	char *t2 = join(t1, "Some text between blocks\n");
	char *all = join(t2, b);
	struct certs_bundle *bun = NULL;
	char err[256] = "";
	assert_int_equal(parse(all, &bun, err), 0);
	assert_int_equal(certs_bundle_count(bun), 2);
	assert_string_equal(certs_bundle_subject(bun, 0), "CN=Corp Root A");
	assert_string_equal(certs_bundle_subject(bun, 1), "CN=Corp Root B");
	assert_null(certs_bundle_subject(bun, 2));
	size_t len = 0;
	const char *pem = certs_bundle_pem(bun, &len);
	assert_int_equal(len, strlen(a) + strlen(b));
	/* Canonical output drops the comments and keeps both certificates. */
	assert_null(strstr(pem, "corporate"));
	assert_memory_equal(pem, a, strlen(a));
	certs_bundle_free(bun);
	free(a), free(b), free(t1), free(t2), free(all);
}

static void duplicate_certificates_are_kept_once(void **state)
{
	(void)state;
	char *a = make_cert(CA, "Dup Root");
	char *all = join(a, a);
	struct certs_bundle *bun = NULL;
	char err[256] = "";
	assert_int_equal(parse(all, &bun, err), 0);
	assert_int_equal(certs_bundle_count(bun), 1);
	certs_bundle_free(bun);
	free(a), free(all);
}

static void crlf_line_endings_load(void **state)
{
	(void)state;
	char *a = make_cert(CA, "Windows Root");
	size_t n = strlen(a);
	char *crlf = malloc(2 * n + 1);
	assert_non_null(crlf);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (a[i] == '\n')
			crlf[j++] = '\r';
		crlf[j++] = a[i];
	}
	crlf[j] = '\0';
	struct certs_bundle *bun = NULL;
	char err[256] = "";
	assert_int_equal(parse(crlf, &bun, err), 0);
	assert_int_equal(certs_bundle_count(bun), 1);
	certs_bundle_free(bun);
	free(a), free(crlf);
}

static void expect_error(const char *pem, const char *needle)
{
	struct certs_bundle *bun = (struct certs_bundle *)1;
	char err[256] = "";
	assert_true(parse(pem, &bun, err) < 0);
	assert_null(bun);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' does not contain '%s'", err, needle);
}

static void server_certificate_is_refused_with_its_line(void **state)
{
	(void)state;
	char *ca = make_cert(CA, "Good Root");
	char *srv = make_cert(SERVER, "gateway.test");
	char *all = join(ca, srv);
	/* the CA is 11-12 lines; the server block starts right after it */
	unsigned lines = 0;
	for (const char *p = ca; *p; p++)
		lines += *p == '\n';
	char want[64];
	snprintf(want, sizeof(want), "bundle.pem:%u: certificate is not a CA",
		 lines + 1);
	expect_error(all, want);
	free(ca), free(srv), free(all);
}

static void expired_and_future_cas_are_dropped_and_counted(void **state)
{
	(void)state;
	char *old = make_cert(EXPIRED_CA, "Old Root");
	char *fut = make_cert(FUTURE_CA, "Future Root");
	char *good = make_cert(CA, "Current Root");
	char *t = join(old, good);
	char *all = join(t, fut);
	struct certs_bundle *bun = NULL;
	char err[256] = "";
	assert_int_equal(parse(all, &bun, err), 0);
	assert_int_equal(certs_bundle_count(bun), 1);
	assert_int_equal(certs_bundle_skipped(bun), 2);
	assert_string_equal(certs_bundle_subject(bun, 0), "CN=Current Root");
	certs_bundle_free(bun);
	char *bad = join(old, fut);
	expect_error(bad,
		     "no usable certificates (2 expired or not yet valid)");
	free(old), free(fut), free(good), free(t), free(all), free(bad);
}

static void hostile_and_wrong_inputs_are_errors(void **state)
{
	(void)state;
	expect_error("", "no certificates found");
	expect_error("# only a comment\n", "no certificates found");
	expect_error(
	    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	    "bundle.pem:1: -----BEGIN PRIVATE KEY-----: only CERTIFICATE");
	expect_error(
	    "x\n-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
	    "bundle.pem:2: certificate does not decode");
	expect_error("-----BEGIN CERTIFICATE-----\nMIIB\n",
		     "bundle.pem:1: certificate has no END line");
	static const char nul[] = "abc\0-----BEGIN CERTIFICATE-----\n";
	struct certs_bundle *bun = NULL;
	char err[256] = "";
	assert_true(certs_bundle_parse("n.pem", nul, sizeof(nul) - 1, &bun, err,
				       sizeof(err)) < 0);
	assert_non_null(strstr(err, "n.pem:1: NUL byte"));
	/* A truncated certificate (half its base64) fails to decode. */
	char *ca = make_cert(CA, "Cut Root");
	char *mid = strchr(ca + strlen(ca) / 2, '\n') + 1;
	strcpy(mid, "-----END CERTIFICATE-----\n");
	expect_error(ca, "bundle.pem:1: certificate does not decode");
	free(ca);
}

static void file_round_trip_and_system_bundle(void **state)
{
	(void)state;
	char dir[] = "/tmp/certs-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], out[128];
	snprintf(path, sizeof(path), "%s/in.pem", dir);
	snprintf(out, sizeof(out), "%s/out.pem", dir);
	char *a = make_cert(CA, "File Root");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(a, f);
	fclose(f);
	struct certs_bundle *bun = NULL;
	char err[256] = "";
	assert_int_equal(certs_bundle_load(path, &bun, err, sizeof(err)), 0);
	assert_int_equal(certs_bundle_write(bun, out, err, sizeof(err)), 0);
	certs_bundle_free(bun);
	assert_int_equal(certs_bundle_load(out, &bun, err, sizeof(err)), 0);
	assert_int_equal(certs_bundle_count(bun), 1);
	certs_bundle_free(bun);
	/* A directory and a missing file are errors naming the path. */
	assert_true(certs_bundle_load(dir, &bun, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "not a regular file"));
	assert_true(certs_bundle_load("/nonexistent/ca.pem", &bun, err,
				      sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
	unlink(path), unlink(out), rmdir(dir);
	free(a);
	/* Debian's own bundle (the corporate-gateway case: the host's store
	 * handed to the container) loads as a whole. */
	if (certs_bundle_load("/etc/ssl/certs/ca-certificates.crt", &bun, err,
			      sizeof(err)) != 0)
		fail_msg("system bundle: %s", err);
	assert_true(certs_bundle_count(bun) >= 1);
	certs_bundle_free(bun);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(two_cas_with_comments_load_in_order),
	    cmocka_unit_test(duplicate_certificates_are_kept_once),
	    cmocka_unit_test(crlf_line_endings_load),
	    cmocka_unit_test(server_certificate_is_refused_with_its_line),
	    cmocka_unit_test(expired_and_future_cas_are_dropped_and_counted),
	    cmocka_unit_test(hostile_and_wrong_inputs_are_errors),
	    cmocka_unit_test(file_round_trip_and_system_bundle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
