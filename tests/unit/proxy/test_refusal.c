/* The sentence of every error answer: what was refused, the reason code
 * and why, what a human can do (every code has advice), the policy line of
 * the deciding rule when the advice is about it (the file's base name, not
 * the host's path), and never a raw control byte from the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "reason.h"
#include "refusal.h"

static void every_code_has_advice_and_a_sentence(void **state)
{
	(void)state;
	for (int i = 0; i < EGRESS_REASON_COUNT; i++) {
		const struct egress_reason_advice *a =
		    egress_reason_advice((enum egress_reason)i);
		assert_non_null(a);
		assert_non_null(a->text);
		assert_true(strlen(a->text) > 5);
		const char *code = egress_reason_name((enum egress_reason)i);
		struct refusal r = {true, "api.test", 443, code, NULL, NULL};
		char out[1536];
		size_t n = refusal_body(&r, out, sizeof out);
		assert_int_equal(n, strlen(out));
		assert_true(n > 0 && out[n - 1] == '\n');
		assert_ptr_equal(strchr(out, '\n'), out + n - 1); /* one line */
		assert_non_null(strstr(out, "CONNECT api.test:443"));
		assert_non_null(strstr(out, code));
		assert_non_null(strstr(out, a->text));
		assert_non_null(strstr(out, "what a human can do: "));
	}
	assert_null(egress_reason_advice(EGRESS_REASON_COUNT));
}

static void explicit_deny_names_the_policy_line(void **state)
{
	(void)state;
	struct refusal r = {true,
			    "gist.github.test",
			    443,
			    "denied_by_rule",
			    NULL,
			    "gist.github.test (/home/u/.config/agentsafe/"
			    "policy.yaml:12)"};
	char out[1536];
	refusal_body(&r, out, sizeof out);
	assert_string_equal(
	    out, "agentsafe-proxy refused CONNECT gist.github.test:443 because "
		 "of denied_by_rule (a deny rule matched the name or the "
		 "resolved address); what a human can do: remove or narrow the "
		 "deny rule in policy.yaml, if the deny was not meant "
		 "(policy.yaml line 12).\n");
	assert_null(strstr(out, "/home"));
	/* the port rule too */
	r.reason = "port_not_allowed";
	r.rule = "api.test (p.yaml:3)";
	refusal_body(&r, out, sizeof out);
	assert_non_null(strstr(out, "ports: in policy.yaml (p.yaml line 3)."));
}

static void
private_address_says_nothing_can_be_done_from_the_sandbox(void **state)
{
	(void)state;
	struct refusal r = {false, "priv.test",
			    80,	   "private_address",
			    NULL,  "priv.test (policy.yaml:4)"};
	char out[1536];
	refusal_body(&r, out, sizeof out);
	assert_non_null(strstr(out, "refused the request to priv.test:80 "));
	assert_non_null(strstr(out, "what a human can do: nothing from the "
				    "sandbox: private"));
	/* the advice is not about the rule: no line */
	assert_null(strstr(out, "line 4"));
}

static void client_bytes_in_the_detail_are_escaped(void **state)
{
	(void)state;
	struct refusal r = {true,
			    NULL,
			    0,
			    "bad_request",
			    "target host \"a\x1b[2J\r\nX-Evil: 1\xc2\x9b\"",
			    NULL};
	char out[1536];
	size_t n = refusal_body(&r, out, sizeof out);
	for (size_t i = 0; i + 1 < n; i++)
		assert_true(out[i] >= 0x20 && out[i] < 0x7f);
	assert_non_null(strstr(out, "refused this request because of "
				    "bad_request (target host \"a\\x1b[2J\\x0d"
				    "\\x0aX-Evil: 1\\xc2\\x9b\")"));
}

static void ipv6_host_bracketed_and_small_buffers_stay_terminated(void **state)
{
	(void)state;
	struct refusal r = {true, "2001:db8::1", 443, "ip_literal", NULL, NULL};
	char out[1536];
	refusal_body(&r, out, sizeof out);
	assert_non_null(strstr(out, "CONNECT [2001:db8::1]:443 "));
	char small[16];
	size_t n = refusal_body(&r, small, sizeof small);
	assert_true(n < sizeof small);
	assert_int_equal(strlen(small), n);
	r.reason = "no_such_code";
	refusal_body(&r, out, sizeof out);
	assert_non_null(strstr(out, "because of no_such_code"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_code_has_advice_and_a_sentence),
	    cmocka_unit_test(explicit_deny_names_the_policy_line),
	    cmocka_unit_test(
		private_address_says_nothing_can_be_done_from_the_sandbox),
	    cmocka_unit_test(client_bytes_in_the_detail_are_escaped),
	    cmocka_unit_test(
		ipv6_host_bracketed_and_small_buffers_stay_terminated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
