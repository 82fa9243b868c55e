/* Host normalisation (outputs and refusal reasons) and the resolved-address
 * guard: every internal v4/v6 range, embedded-v4 forms judged by the v4,
 * and how allow/deny IP rules open or close an address in policy_check_addr. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

static int norm(const char *in, size_t len, char *out, size_t outlen, char *err,
		size_t errlen)
{
	return policy_host_normalize(in, len, out, outlen, err, errlen);
}

static void expect_norm(const char *in, const char *want)
{
	char out[POLICY_HOST_MAX + 1], err[POLICY_ERR_MAX] = "";
	int rc = norm(in, strlen(in), out, sizeof out, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "'%s': %s\n", in, err);
	assert_int_equal(rc, 0);
	assert_string_equal(out, want);
	/* Idempotent: the normal form normalises to itself. */
	char again[POLICY_HOST_MAX + 1];
	assert_int_equal(
	    norm(out, strlen(out), again, sizeof again, err, sizeof err), 0);
	assert_string_equal(again, out);
}

static void expect_bad(const char *in, size_t len, const char *want_err)
{
	char out[POLICY_HOST_MAX + 1] = "untouched", err[POLICY_ERR_MAX] = "";
	assert_int_equal(norm(in, len, out, sizeof out, err, sizeof err),
			 -EINVAL);
	if (strcmp(err, want_err) != 0)
		fprintf(stderr, "got  '%s'\nwant '%s'\n", err, want_err);
	assert_string_equal(err, want_err);
}

static void test_normalize_ok(void **state)
{
	(void)state;
	expect_norm("GitHub.COM", "github.com");
	expect_norm("github.com.", "github.com");
	expect_norm("_dmarc.Mail.test", "_dmarc.mail.test");
	expect_norm("xn--bcher-kva.test", "xn--bcher-kva.test");
	expect_norm("a-b.c-d.test", "a-b.c-d.test");
	expect_norm("localhost", "localhost");
	expect_norm("10.0.0.1", "10.0.0.1");
	expect_norm("10.0.0.1.", "10.0.0.1");
	expect_norm("2001:DB8:0:0:0:0:0:1", "2001:db8::1");
	expect_norm("[2001:db8::1]", "2001:db8::1");
	expect_norm("::FFFF:10.0.0.1", "::ffff:10.0.0.1");
	expect_norm("1.2.3.example.test", "1.2.3.example.test");
	expect_norm("123.test", "123.test");
	/* 63-byte label and 253-byte name are the limits, inclusive */
	char name[300];
	memset(name, 'a', 63);
	strcpy(name + 63, ".test");
	expect_norm(name, name);
	/* 4 x 63 + 3 dots = 255 > 253; 61+1+63+1+63+1+63 = 253 */
	memset(name, 'b', sizeof name);
	name[61] = '.';
	name[125] = '.';
	name[189] = '.';
	name[253] = '\0';
	expect_norm(name, name);
	name[253] = '.';
	name[254] = '\0';
	char want[300];
	memcpy(want, name, 253);
	want[253] = '\0';
	expect_norm(name, want);
}

static void test_normalize_refusals(void **state)
{
	(void)state;
	expect_bad("github.com@evil.test", 20,
		   "bad host 'github.com@evil.test': character '@' not allowed "
		   "in a host name");
	expect_bad("evil.test#.github.com", 21,
		   "bad host 'evil.test#.github.com': character '#' not "
		   "allowed in a host name");
	expect_bad(
	    "a/b.test", 8,
	    "bad host 'a/b.test': character '/' not allowed in a host name");
	expect_bad(
	    "a%2e.test", 9,
	    "bad host 'a%2e.test': character '%' not allowed in a host name");
	expect_bad("a b.test", 8,
		   "bad host 'a b.test': byte 0x20 not allowed in a host name");
	expect_bad("github.com\0.evil.test", 21,
		   "bad host 'github.com\\x00.evil.test': contains a NUL byte");
	expect_bad("b\xc3\xbc"
		   "cher.test",
		   12,
		   "bad host 'b\\xc3\\xbccher.test': non-ASCII byte (write "
		   "IDNs as punycode, xn--...)");
	expect_bad("", 0, "bad host '': empty host");
	expect_bad(".", 1, "bad host '.': empty host");
	expect_bad("a..test", 7, "bad host 'a..test': empty label");
	expect_bad(".a.test", 7, "bad host '.a.test': empty label");
	expect_bad("a.test..", 8, "bad host 'a.test..': empty label");
	expect_bad("-a.test", 7,
		   "bad host '-a.test': label starts or ends with '-'");
	expect_bad("a-.test", 7,
		   "bad host 'a-.test': label starts or ends with '-'");
	expect_bad("github.com:443", 14,
		   "bad host 'github.com:443': ':' is only allowed in an IPv6 "
		   "address, and this is not one");
	expect_bad("fe80::1%eth0", 12,
		   "bad host 'fe80::1%eth0': ':' is only allowed in an IPv6 "
		   "address, and this is not one");
	expect_bad(
	    "[10.0.0.1]", 10,
	    "bad host '[10.0.0.1]': brackets may only enclose an IPv6 address");
	expect_bad("[::1", 4,
		   "bad host '[::1': '[' must enclose an IPv6 address");
	expect_bad("2130706433", 10,
		   "bad host '2130706433': looks like an IPv4 address but is "
		   "not a dotted quad");
	expect_bad("0x7f.1", 6,
		   "bad host '0x7f.1': looks like an IPv4 address but is not a "
		   "dotted quad");
	expect_bad("010.0.0.1", 9,
		   "bad host '010.0.0.1': looks like an IPv4 address but is "
		   "not a dotted quad");
	expect_bad("1.2.3.4.5", 9,
		   "bad host '1.2.3.4.5': looks like an IPv4 address but is "
		   "not a dotted quad");
	char lbl[80];
	memset(lbl, 'a', 64);
	strcpy(lbl + 64, ".test");
	char out[POLICY_HOST_MAX + 1], err[POLICY_ERR_MAX];
	assert_int_equal(
	    norm(lbl, strlen(lbl), out, sizeof out, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "label longer than 63 bytes"));
	char longname[300];
	memset(longname, 'c', sizeof longname);
	for (int i = 50; i < 290; i += 50)
		longname[i] = '.';
	assert_int_equal(norm(longname, 254, out, sizeof out, err, sizeof err),
			 -EINVAL);
	assert_non_null(strstr(err, "longer than 253 bytes"));
	assert_int_equal(norm(longname, 290, out, sizeof out, err, sizeof err),
			 -EINVAL);
	assert_non_null(strstr(err, "longer than 253 bytes"));
	/* too small an output buffer is an error, never an overflow */
	char tiny[4];
	assert_int_equal(
	    norm("github.com", 10, tiny, sizeof tiny, err, sizeof err),
	    -EINVAL);
	assert_false(policy_host_is_ip_literal("github.com"));
	assert_true(policy_host_is_ip_literal("10.0.0.1"));
	assert_true(policy_host_is_ip_literal("::1"));
}

static void sa_from(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, s, &s6->sin6_addr), 1);
	s6->sin6_family = AF_INET6;
}

static bool internal(const char *s)
{
	struct sockaddr_storage ss;
	sa_from(s, &ss);
	return policy_addr_is_internal((struct sockaddr *)&ss);
}

static void expect_internal(const char *const *list, size_t n, bool want)
{
	for (size_t i = 0; i < n; i++) {
		if (internal(list[i]) != want)
			fprintf(stderr, "%s: expected %s\n", list[i],
				want ? "internal" : "external");
		assert_int_equal(internal(list[i]), want);
	}
}

static void test_internal_ranges(void **state)
{
	(void)state;
	/* first and last address of every range, plus one inside */
	static const char *const in[] = {
	    "0.0.0.0",
	    "0.255.255.255", /* 0/8 */
	    "10.0.0.0",
	    "10.200.1.1",
	    "10.255.255.255", /* 10/8 */
	    "100.64.0.0",
	    "100.100.100.100",
	    "100.127.255.255", /* CGNAT */
	    "127.0.0.1",
	    "127.255.255.254", /* loopback */
	    "169.254.169.254",
	    "169.254.0.0", /* link-local, metadata */
	    "172.16.0.0",
	    "172.31.255.255", /* 172.16/12 */
	    "192.0.0.0",
	    "192.0.0.255", /* 192.0.0/24 */
	    "192.168.0.1",
	    "192.168.255.255", /* 192.168/16 */
	    "198.18.0.0",
	    "198.19.255.255", /* 198.18/15 */
	    "224.0.0.1",
	    "239.255.255.255", /* multicast */
	    "240.0.0.1",
	    "255.255.255.255", /* reserved, broadcast */
	    "::",
	    "::1", /* unspecified, loopback */
	    "fc00::1",
	    "fdff:ffff::1", /* ULA */
	    "fe80::1",
	    "febf::1", /* link-local */
	    "fec0::1",
	    "feff::1", /* site-local */
	    "ff02::1",
	    "ff0e::1", /* multicast */
	    "::ffff:127.0.0.1",
	    "::ffff:10.1.2.3", /* mapped */
	    "::ffff:169.254.169.254",
	    "::ffff:0.0.0.0",
	    "::127.0.0.1",
	    "::10.0.0.1", /* compatible */
	    "64:ff9b::10.0.0.1",
	    "64:ff9b::7f00:1", /* NAT64 */
	    "2002:7f00:1::",
	    "2002:c0a8:101::1",			    /* 6to4 */
	    "64:ff9b:1::1",			    /* local-use NAT64 */
	    "100::1",				    /* discard-only */
	    "2001:0:4136:e378:8000:63bf:f5ff:fffe", /* Teredo, client 10.0.0.1
						     */
	    "::ffff:0:127.0.0.1",
	    "::ffff:0:a9fe:a9fe", /* SIIT, IPv4-translated (RFC 2765) */
	};
	static const char *const out[] = {
	    "1.0.0.0",
	    "9.255.255.255",
	    "11.0.0.0",
	    "100.63.255.255",
	    "100.128.0.0",
	    "126.255.255.255",
	    "128.0.0.0",
	    "169.253.255.255",
	    "169.255.0.0",
	    "172.15.255.255",
	    "172.32.0.0",
	    "192.0.1.0",
	    "192.167.255.255",
	    "192.169.0.0",
	    "198.17.255.255",
	    "198.20.0.0",
	    "203.0.113.7",
	    "198.51.100.1",
	    "223.255.255.255",
	    "2001:db8::1",
	    "2606:4700::1",
	    "fbff::1",
	    "fe7f::1",
	    "::ffff:203.0.113.7",
	    "::203.0.113.7",
	    "64:ff9b::203.0.113.7",
	    "2002:cb00:7107::1",
	    "::2:0:0:1",
	    "2001:0:4136:e378:8000:63bf:3fff:fdd2", /* Teredo, 192.0.2.45 */
	    "::ffff:0:203.0.113.7",		    /* SIIT */
	    "::fffe:0:127.0.0.1",
	    "::1:ffff:0:127.0.0.1",
	};
	expect_internal(in, sizeof in / sizeof in[0], true);
	expect_internal(out, sizeof out / sizeof out[0], false);
	struct sockaddr_un_like {
		sa_family_t fam;
		char path[20];
	} un = {AF_UNIX, "x"};
	assert_true(policy_addr_is_internal((struct sockaddr *)&un));
}

static const char addr_policy[] = "version: 1\n"
				  "allow:\n"
				  "  - host: 192.168.1.50\n" /* 3 */
				  "    ports: [11434]\n"
				  "  - host: 10.9.0.0/16\n" /* 5 */
				  "    ports: [443, 8080]\n"
				  "  - host: fd12::/16\n" /* 7 */
				  "  - a.test\n"	  /* 8 */
				  "deny:\n"
				  "  - 203.0.113.0/24\n"    /* 10 */
				  "  - host: 10.9.9.0/24\n" /* 11 */
				  "    ports: [8080]\n"
				  "  - 2001:db8:bad::/48\n"; /* 13 */

struct acase {
	const char *addr;
	uint16_t port;
	enum policy_verdict verdict;
	const char *reason;
	const char *rule;
};

static void test_check_addr(void **state)
{
	(void)state;
	static const struct acase cases[] = {
	    {"192.168.1.50", 11434, POLICY_ALLOW, "allowed",
	     "192.168.1.50 (a.yaml:3)"},
	    {"::ffff:192.168.1.50", 11434, POLICY_ALLOW, "allowed",
	     "192.168.1.50 (a.yaml:3)"},
	    {"192.168.1.50", 443, POLICY_DENY, "private_address", NULL},
	    {"192.168.1.51", 11434, POLICY_DENY, "private_address", NULL},
	    {"10.9.3.4", 443, POLICY_ALLOW, "allowed",
	     "10.9.0.0/16 (a.yaml:5)"},
	    {"10.9.9.9", 443, POLICY_ALLOW, "allowed",
	     "10.9.0.0/16 (a.yaml:5)"},
	    {"10.9.9.9", 8080, POLICY_DENY, "denied_by_rule",
	     "10.9.9.0/24 (a.yaml:11)"},
	    {"10.10.0.1", 443, POLICY_DENY, "private_address", NULL},
	    {"fd12:3456::1", 443, POLICY_ALLOW, "allowed",
	     "fd12::/16 (a.yaml:7)"},
	    {"fd13::1", 443, POLICY_DENY, "private_address", NULL},
	    {"127.0.0.1", 443, POLICY_DENY, "private_address", NULL},
	    {"::1", 443, POLICY_DENY, "private_address", NULL},
	    {"::ffff:127.0.0.1", 443, POLICY_DENY, "private_address", NULL},
	    {"64:ff9b::a9fe:a9fe", 80, POLICY_DENY, "private_address", NULL},
	    {"169.254.169.254", 80, POLICY_DENY, "private_address", NULL},
	    {"203.0.113.9", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (a.yaml:10)"},
	    {"::ffff:203.0.113.9", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (a.yaml:10)"},
	    {"2002:cb00:7109::1", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (a.yaml:10)"},
	    {"2001:db8:bad::1", 22, POLICY_DENY, "denied_by_rule",
	     "2001:db8:bad::/48 (a.yaml:13)"},
	    {"198.51.100.1", 443, POLICY_ALLOW, "allowed", NULL},
	    {"2001:db8:1::1", 443, POLICY_ALLOW, "allowed", NULL},
	};
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	int rc = policy_load_string(
	    "a.yaml", addr_policy, sizeof addr_policy - 1, &p, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss;
		struct policy_decision d;
		sa_from(cases[i].addr, &ss);
		assert_int_equal(policy_check_addr(p, (struct sockaddr *)&ss,
						   cases[i].port, &d),
				 0);
		bool ok = d.verdict == cases[i].verdict &&
			  strcmp(d.reason, cases[i].reason) == 0 &&
			  ((d.rule == NULL && cases[i].rule == NULL) ||
			   (d.rule != NULL && cases[i].rule != NULL &&
			    strcmp(d.rule, cases[i].rule) == 0));
		if (!ok)
			fprintf(stderr, "%s:%u: got %s %s, want %s %s\n",
				cases[i].addr, cases[i].port, d.reason,
				d.rule ? d.rule : "-", cases[i].reason,
				cases[i].rule ? cases[i].rule : "-");
		assert_true(ok);
	}
	/* a non-IP family is never a place to connect to */
	struct sockaddr sa = {.sa_family = AF_UNIX};
	struct policy_decision d;
	policy_check_addr(p, &sa, 443, &d);
	assert_int_equal(d.verdict, POLICY_DENY);
	policy_unref(p);
}

/* An IPv4 rule names an IPv4 host; the one IPv6 spelling of that host is
 * the mapped form (::ffff:a.b.c.d), which the kernel turns into IPv4 on a
 * dual-stack socket. The other forms that embed an IPv4 address (6to4,
 * Teredo, IPv4-compatible, NAT64, SIIT) are other hosts: a relay or a
 * translator somewhere else on the path, not the host the rule names. They
 * are refused unless a v6 rule names them, but a deny rule still catches
 * them, and the internal-address guard still judges them by the IPv4
 * address they carry. */
static const char embed_policy[] = "version: 1\n"
				   "allow:\n"
				   "  - host: 192.168.1.50\n" /* 3 */
				   "    ports: [11434]\n"
				   "  - host: 198.51.100.0/24\n"     /* 5 */
				   "  - host: 2002:c633:6402::/48\n" /* 6 */
				   "deny:\n"
				   "  - 203.0.113.0/24\n"; /* 8 */

static void test_v4_rules_allow_only_the_mapped_form(void **state)
{
	(void)state;
	static const struct acase addrs[] = {
	    {"192.168.1.50", 11434, POLICY_ALLOW, "allowed",
	     "192.168.1.50 (e.yaml:3)"},
	    {"::ffff:192.168.1.50", 11434, POLICY_ALLOW, "allowed",
	     "192.168.1.50 (e.yaml:3)"},
	    /* 6to4, Teredo (client bits inverted), compatible, NAT64, SIIT
	     * spellings of 192.168.1.50: private, and no rule names them. */
	    {"2002:c0a8:132::1", 11434, POLICY_DENY, "private_address", NULL},
	    {"2001:0:4136:e378:8000:63bf:3f57:fecd", 11434, POLICY_DENY,
	     "private_address", NULL},
	    {"::192.168.1.50", 11434, POLICY_DENY, "private_address", NULL},
	    {"64:ff9b::c0a8:132", 11434, POLICY_DENY, "private_address", NULL},
	    {"::ffff:0:192.168.1.50", 11434, POLICY_DENY, "private_address",
	     NULL},
	    /* Deny rules see through every form. */
	    {"::ffff:203.0.113.9", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (e.yaml:8)"},
	    {"2002:cb00:7109::1", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (e.yaml:8)"},
	    {"2001:0:4136:e378:8000:63bf:34ff:8ef6", 443, POLICY_DENY,
	     "denied_by_rule", "203.0.113.0/24 (e.yaml:8)"},
	    {"::203.0.113.9", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (e.yaml:8)"},
	    {"64:ff9b::cb00:7109", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (e.yaml:8)"},
	    {"::ffff:0:203.0.113.9", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (e.yaml:8)"},
	};
	struct policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	int rc =
	    policy_load_string("e.yaml", embed_policy, sizeof embed_policy - 1,
			       &p, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
		struct sockaddr_storage ss;
		struct policy_decision d;
		sa_from(addrs[i].addr, &ss);
		policy_check_addr(p, (struct sockaddr *)&ss, addrs[i].port, &d);
		bool ok = d.verdict == addrs[i].verdict &&
			  strcmp(d.reason, addrs[i].reason) == 0 &&
			  ((d.rule == NULL && addrs[i].rule == NULL) ||
			   (d.rule != NULL && addrs[i].rule != NULL &&
			    strcmp(d.rule, addrs[i].rule) == 0));
		if (!ok)
			fprintf(stderr, "check_addr %s:%u: got %s %s\n",
				addrs[i].addr, addrs[i].port, d.reason,
				d.rule ? d.rule : "-");
		assert_true(ok);
	}
	/* The same forms as CONNECT targets (IP literals). */
	static const struct acase lits[] = {
	    {"::ffff:192.168.1.50", 11434, POLICY_ALLOW, "allowed",
	     "192.168.1.50 (e.yaml:3)"},
	    {"[::ffff:198.51.100.7]", 443, POLICY_ALLOW, "allowed",
	     "198.51.100.0/24 (e.yaml:5)"},
	    {"2002:c0a8:132::", 11434, POLICY_DENY, "ip_literal", NULL},
	    {"2001:0:4136:e378:8000:63bf:3f57:fecd", 11434, POLICY_DENY,
	     "ip_literal", NULL},
	    {"::192.168.1.50", 11434, POLICY_DENY, "ip_literal", NULL},
	    {"[64:ff9b::c0a8:132]", 11434, POLICY_DENY, "ip_literal", NULL},
	    {"::ffff:0:c0a8:132", 11434, POLICY_DENY, "ip_literal", NULL},
	    /* Public: 6to4 of 198.51.100.1 is not 198.51.100.1 ... */
	    {"2002:c633:6401::1", 443, POLICY_DENY, "ip_literal", NULL},
	    /* ... not even for a port the v4 rule does not allow. */
	    {"2002:c633:6401::1", 8443, POLICY_DENY, "ip_literal", NULL},
	    /* A v6 rule naming the 6to4 prefix itself allows it. */
	    {"2002:c633:6402::1", 443, POLICY_ALLOW, "allowed",
	     "2002:c633:6402::/48 (e.yaml:6)"},
	    {"2002:cb00:7109::", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (e.yaml:8)"},
	    {"::ffff:0:203.0.113.9", 443, POLICY_DENY, "denied_by_rule",
	     "203.0.113.0/24 (e.yaml:8)"},
	};
	for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
		struct policy_decision d;
		policy_match(p, lits[i].addr, lits[i].port, &d);
		bool ok = d.verdict == lits[i].verdict &&
			  strcmp(d.reason, lits[i].reason) == 0 &&
			  ((d.rule == NULL && lits[i].rule == NULL) ||
			   (d.rule != NULL && lits[i].rule != NULL &&
			    strcmp(d.rule, lits[i].rule) == 0));
		if (!ok)
			fprintf(stderr, "match %s:%u: got %s %s\n",
				lits[i].addr, lits[i].port, d.reason,
				d.rule ? d.rule : "-");
		assert_true(ok);
	}
	policy_unref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalize_ok),
	    cmocka_unit_test(test_normalize_refusals),
	    cmocka_unit_test(test_internal_ranges),
	    cmocka_unit_test(test_check_addr),
	    cmocka_unit_test(test_v4_rules_allow_only_the_mapped_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
