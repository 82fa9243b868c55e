/* Refusal sentences (refusal.h). The reason code leads the explanation so
 * a program can match it; the advice comes from the one table of codes. */
#include "refusal.h"

#include <stdio.h>
#include <string.h>

#include "reason.h"

/* "policy.yaml line 12" from "TEXT (FILE:LINE)": the file's base name
 * only, since the agent has no business with the host's paths. */
static void rule_place(const char *rule, char *out, size_t len)
{
	out[0] = '\0';
	if (rule == NULL)
		return;
	const char *open = strrchr(rule, '(');
	const char *colon = open ? strrchr(open, ':') : NULL;
	size_t rl = strlen(rule);
	if (colon == NULL || rl < 2 || rule[rl - 1] != ')')
		return;
	const char *base = open + 1;
	for (const char *p = open + 1; p < colon; p++)
		if (*p == '/')
			base = p + 1;
	snprintf(out, len, " (%.*s line %.*s)", (int)(colon - base), base,
		 (int)(rule + rl - 1 - colon - 1), colon + 1);
}

/* Append s to out at *at, bytes outside printable ASCII as \xNN. */
static void put_clean(char *out, size_t len, size_t *at, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char b = (unsigned char)*s;
		size_t n = b >= 0x20 && b < 0x7f ? 1 : 4;
		if (*at + n + 2 > len) /* room for "\n" and the NUL */
			return;
		if (n == 1) {
			out[(*at)++] = (char)b;
		} else {
			out[(*at)++] = '\\';
			out[(*at)++] = 'x';
			out[(*at)++] = hex[b >> 4];
			out[(*at)++] = hex[b & 15];
		}
	}
}

size_t refusal_body(const struct refusal *r, char *out, size_t len)
{
	enum egress_reason code;
	const struct egress_reason_info *info = NULL;
	const struct egress_reason_advice *adv = NULL;
	if (egress_reason_lookup(r->reason, &code) == 0) {
		info = egress_reason_info(code);
		adv = egress_reason_advice(code);
	}
	char what[300]; /* a host is at most 253 bytes */
	if (r->host != NULL && r->host[0] != '\0' && r->port != 0)
		snprintf(what, sizeof what, "%s %s%s%s:%u",
			 r->is_connect ? "CONNECT" : "the request to",
			 strchr(r->host, ':') ? "[" : "", r->host,
			 strchr(r->host, ':') ? "]" : "", r->port);
	else
		snprintf(what, sizeof what, "this request");
	char place[300] = "";
	if (adv != NULL && adv->names_rule)
		rule_place(r->rule, place, sizeof place);
	char text[1400];
	snprintf(text, sizeof text,
		 "agentsafe-proxy refused %s because of %s (%s); what a human "
		 "can do: %s%s.",
		 what, r->reason ? r->reason : "an error",
		 r->detail ? r->detail
		 : info	   ? info->meaning
			   : "no detail",
		 adv ? adv->text : "see agentsafe log", place);
	size_t at = 0;
	put_clean(out, len, &at, text);
	if (at + 1 < len)
		out[at++] = '\n';
	out[at] = '\0';
	return at;
}
