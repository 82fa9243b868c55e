/* Placeholders inside HTTP Basic auth (proxy/cred_decode.c and the Basic
 * paths of proxy/inspect_cred.c): the base64 decoder (both alphabets,
 * padding, malformed values), percent-decoding, the swap toward a bound
 * host (user:password decoded, swapped, encoded again) and misuse toward
 * any other host or outside a tunnel. The fast killers of the Basic
 * mutants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cred_decode.h"
#include "http_parse.h"
#include "inspect_cred.h"
#include "policy.h"

#define SECRET "ghp_unitRealToken0123456789"
#define PH     "agentsafe-GH_TOKEN-0123456789abcdef0123456789abcdef"
#define RANDOM "0123456789abcdef0123456789abcdef"

/* base64 of "x:" PH, of "x:" SECRET, and of "~~~:" RANDOM upper case in the
 * URL-safe alphabet (python3 base64). */
#define B64_PH                                                                 \
	"eDphZ2VudHNhZmUtR0hfVE9LRU4tMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlh"     \
	"YmNkZWY="
#define B64_SECRET	    "eDpnaHBfdW5pdFJlYWxUb2tlbjAxMjM0NTY3ODk="
#define B64URL_RANDOM_UPPER "fn5-OjAxMjM0NTY3ODlBQkNERUYwMTIzNDU2Nzg5QUJDREVG"

static long dec(const char *v, enum cred_b64 a, char *out)
{
	long n = cred_decode_basic(v, strlen(v), a, (unsigned char *)out, 255);
	if (n >= 0)
		out[n] = '\0';
	return n;
}

static void basic_decodes_and_refuses_malformed(void **state)
{
	(void)state;
	char out[256];
	assert_int_equal(dec("Basic eDp5", CRED_B64_STD, out), 3);
	assert_string_equal(out, "x:y");
	assert_int_equal(dec("bAsIc   eDp5eg==", CRED_B64_STD, out), 4);
	assert_string_equal(out, "x:yz");
	assert_int_equal(dec("Basic eDp5eg", CRED_B64_STD, out), 4);
	assert_true(dec("Basic " B64_PH, CRED_B64_STD, out) > 0);
	assert_string_equal(out, "x:" PH);
	/* The URL-safe alphabet only when asked for. */
	assert_int_equal(dec("Basic " B64URL_RANDOM_UPPER, CRED_B64_STD, out),
			 -1);
	assert_true(dec("Basic " B64URL_RANDOM_UPPER, CRED_B64_ANY, out) > 0);
	assert_non_null(strstr(out, "0123456789ABCDEF"));
	const char *bad[] = {"",
			     "Basic",
			     "Basic ",
			     "Basic=eDp5",
			     "Bearer eDp5",
			     "Basicx eDp5",
			     "Basic e",
			     "Basic eDp5e",
			     "Basic eD=5",
			     "Basic eDp5eg=",
			     "Basic eA===",
			     "Basic ====",
			     "Basic eDp5\t",
			     "Basic eD p5",
			     "Basic !!!!"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(dec(bad[i], CRED_B64_ANY, out), -1);
	/* Never past cap. */
	unsigned char small[2];
	assert_int_equal(cred_decode_basic("Basic eDp5", 10, CRED_B64_STD,
					   small, sizeof small),
			 -1);
	char enc[64];
	assert_int_equal(cred_encode_basic((const unsigned char *)"x:yz", 4,
					   enc, sizeof enc),
			 14);
	assert_string_equal(enc, "Basic eDp5eg==");
	assert_int_equal(
	    cred_encode_basic((const unsigned char *)"x:yz", 4, enc, 14), -1);
	assert_true(cred_decode_is_auth("authorization", 13));
	assert_true(cred_decode_is_auth("PROXY-AUTHORIZATION", 19));
	assert_false(cred_decode_is_auth("Authorizations", 14));
	assert_false(cred_decode_is_auth("X-Authorization", 15));
}

static void percent_decodes(void **state)
{
	(void)state;
	char out[64];
	const char *in = "a%2Db%2dc%zz%4";
	size_t n = cred_decode_percent(in, strlen(in), out);
	assert_int_equal(n, 10);
	assert_memory_equal(out, "a-b-c%zz%4", 10);
}

static const char POLICY[] = "version: 1\n"
			     "allow:\n"
			     "  - host: gh.test\n"
			     "    inspect: true\n"
			     "  - host: other.test\n"
			     "    inspect: true\n"
			     "credentials:\n"
			     "  GH_TOKEN:\n"
			     "    env: AS_UNIT_GH_TOKEN\n"
			     "    hosts: [gh.test]\n"
			     "    placeholder: true\n";

struct fixture {
	struct policy *p;
	struct cred_store *s;
	struct http_request q;
	char head[1024];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[256] = "";
	setenv("AS_UNIT_GH_TOKEN", SECRET, 1);
	setenv("AGENTSAFE_PLACEHOLDER_GH_TOKEN", PH, 1);
	unsetenv("AGENTSAFE_BUILTIN_CREDENTIALS");
	if (f == NULL ||
	    policy_load_string("policy.yaml", POLICY, sizeof POLICY - 1, &f->p,
			       err, sizeof err) != 0 ||
	    cred_store_new(f->p, &f->s, err, sizeof err) != 0 || f->s == NULL) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	cred_store_free(f->s);
	policy_unref(f->p);
	free(f);
	return 0;
}

/* Parse a GET to host carrying header `hdr` ("Name: value"). */
static const struct http_request *req(struct fixture *f, const char *host,
				      const char *hdr)
{
	char err[128];
	int n = snprintf(f->head, sizeof f->head,
			 "GET /gh.git/info/refs HTTP/1.1\r\nHost: %s\r\n%s\r\n"
			 "\r\n",
			 host, hdr);
	assert_int_equal(
	    http_parse_request(f->head, (size_t)n, &f->q, err, sizeof err),
	    HTTP_OK);
	return &f->q;
}

static void basic_placeholder_swapped_toward_bound_host(void **state)
{
	struct fixture *f = *state;
	const char *hdrs[] = {"Authorization: Basic " B64_PH,
			      "authorization: basic   " B64_PH};
	for (size_t i = 0; i < 2; i++) {
		const struct http_request *q = req(f, "gh.test", hdrs[i]);
		char *out = NULL;
		size_t outlen = 0;
		const char *used = NULL;
		assert_int_equal(cred_apply(f->s, "gh.test", q, NULL, 0, &out,
					    &outlen, &used),
				 1);
		assert_string_equal(used, "GH_TOKEN");
		char *o = strndup(out, outlen);
		assert_non_null(strstr(o, ": Basic " B64_SECRET "\r\n"));
		assert_null(strstr(o, B64_PH));
		free(o);
		free(out);
		assert_null(cred_misuse_head(f->s, "gh.test", q));
	}
}

static void basic_placeholder_elsewhere_is_misuse(void **state)
{
	struct fixture *f = *state;
	const char *hdrs[] = {
	    "Authorization: Basic " B64_PH,
	    "Authorization: BASIC " B64URL_RANDOM_UPPER,
	    "Proxy-Authorization: Basic " B64_PH,
	    /* "x:agentsafe-gh_token-" */
	    "Authorization: Basic eDphZ2VudHNhZmUtZ2hfdG9rZW4t",
	    /* "x:%61gentsafe%2DGH_TOKEN%2Dxyz" */
	    "Authorization: Basic eDolNjFnZW50c2FmZSUyREdIX1RPS0VOJTJEeHl6",
	};
	for (size_t i = 0; i < sizeof hdrs / sizeof *hdrs; i++) {
		const struct http_request *q = req(f, "other.test", hdrs[i]);
		assert_string_equal(cred_misuse_head(f->s, "other.test", q),
				    "GH_TOKEN");
		/* Outside a tunnel (CONNECT head, plain HTTP): no host. */
		assert_string_equal(cred_misuse_head(f->s, NULL, q),
				    "GH_TOKEN");
		/* Toward other.test nothing is swapped: the head goes as it
		 * is (and misused() refuses it first). */
		char *out = NULL;
		size_t outlen = 0;
		const char *used = NULL;
		assert_int_equal(cred_apply(f->s, "other.test", q, NULL, 0,
					    &out, &outlen, &used),
				 0);
		assert_null(out);
	}
	/* Percent-encoded in the target. */
	char err[128];
	const char t[] = "GET /x?t=%61gentsafe%2dGH_TOKEN%2dzz HTTP/1.1\r\n"
			 "Host: other.test\r\n\r\n";
	assert_int_equal(
	    http_parse_request(t, sizeof t - 1, &f->q, err, sizeof err),
	    HTTP_OK);
	assert_string_equal(cred_misuse_head(f->s, "other.test", &f->q),
			    "GH_TOKEN");
}

static void malformed_or_unrelated_basic_left_alone(void **state)
{
	struct fixture *f = *state;
	const char *hdrs[] = {
	    "Authorization: Basic !!!!",      "Authorization: Basic e",
	    "Authorization: Basic",	      "Authorization: Basic eDp5",
	    "X-Authorization: Basic " B64_PH, "Authorization: Bearer " B64_PH};
	for (size_t i = 0; i < sizeof hdrs / sizeof *hdrs; i++) {
		const struct http_request *q = req(f, "gh.test", hdrs[i]);
		char *out = NULL;
		size_t outlen = 0;
		const char *used = NULL;
		assert_int_equal(cred_apply(f->s, "gh.test", q, NULL, 0, &out,
					    &outlen, &used),
				 0);
		assert_null(cred_misuse_head(f->s, "other.test", q));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(basic_decodes_and_refuses_malformed),
	    cmocka_unit_test(percent_decodes),
	    cmocka_unit_test(basic_placeholder_swapped_toward_bound_host),
	    cmocka_unit_test(basic_placeholder_elsewhere_is_misuse),
	    cmocka_unit_test(malformed_or_unrelated_basic_left_alone),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
