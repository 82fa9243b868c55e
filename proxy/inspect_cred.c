/* Credential injection and placeholder swapping (see inspect_cred.h). The
 * secrets live only in this process's memory: never in a record, a
 * message or a file this code writes. */
#include "inspect_cred.h"

#include "cred_decode.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "inspect_cred_int.h"

static void cred_clear(struct cred *c)
{
	if (c->secret != NULL)
		OPENSSL_cleanse(c->secret, strlen(c->secret));
	if (c->hvalue != NULL)
		OPENSSL_cleanse(c->hvalue, strlen(c->hvalue));
	free(c->secret);
	free(c->hvalue);
	free(c->hname);
	free(c->name);
	free(c->placeholder);
	for (size_t i = 0; i < CRED_ALIASES; i++)
		free(c->aliases[i]);
	free(c->command);
	free(c->basic_user);
	free(c->header_tmpl);
	for (size_t i = 0; i < c->nhosts; i++)
		free(c->hosts[i]);
	free(c->hosts);
}

void cred_store_free(struct cred_store *s)
{
	if (s == NULL)
		return;
	cred_rotate_free(s->rot);
	for (size_t i = 0; i < s->n; i++)
		cred_clear(&s->c[i]);
	pthread_mutex_destroy(&s->lock);
	free(s->c);
	free(s);
}

/* ---- resolving ---- */

static char *read_stream(FILE *f)
{
	char *buf = malloc(CRED_SECRET_MAX + 1);
	if (buf == NULL)
		return NULL;
	size_t n = fread(buf, 1, CRED_SECRET_MAX + 1, f);
	if (n > CRED_SECRET_MAX) {
		OPENSSL_cleanse(buf, n);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return buf;
}

static char *resolve(const struct policy_credential *pc, char *why,
		     size_t whylen)
{
	char *s = NULL;
	if (pc->source == POLICY_CRED_ENV) {
		const char *v = getenv(pc->from);
		s = v != NULL ? strdup(v) : NULL;
		if (v == NULL)
			snprintf(why, whylen,
				 "environment variable %s is not set",
				 pc->from);
	} else if (pc->source == POLICY_CRED_FILE) {
		FILE *f = fopen(pc->from, "re");
		s = f != NULL ? read_stream(f) : NULL;
		if (f != NULL)
			(void)fclose(f); /* read-only */
		if (s == NULL)
			snprintf(why, whylen, "cannot read %s", pc->from);
	} else {
		/* `command:` is a shell command line the user wrote in the
		 * policy (e.g. "gh auth token"): running it through sh is the
		 * contract. */
		FILE *f = popen(pc->from, "re"); // NOLINT(cert-env33-c)
		s = f != NULL ? read_stream(f) : NULL;
		int st = f != NULL ? pclose(f) : -1;
		if (s != NULL && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			OPENSSL_cleanse(s, strlen(s));
			free(s);
			s = NULL;
		}
		if (s == NULL)
			snprintf(why, whylen, "command failed: %s", pc->from);
	}
	if (s != NULL && (s[0] == '\0' || strpbrk(s, "\r\n") != NULL)) {
		snprintf(why, whylen, "the secret is empty or not one line");
		OPENSSL_cleanse(s, strlen(s));
		free(s);
		s = NULL;
	}
	return s;
}

/* The TYPE part of a placeholder: what precedes "agentsafe-NAME-". */
static size_t type_len(const char *placeholder, const char *prefix)
{
	const char *at = strstr(placeholder, prefix);
	return at != NULL ? (size_t)(at - placeholder) : strlen(placeholder);
}

char *cred_new_placeholder(const char *name, const char *old)
{
	unsigned char r[CRED_RANDOM_HEX / 2];
	if (RAND_bytes(r, sizeof r) != 1)
		return NULL;
	char hex[CRED_RANDOM_HEX + 1];
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	char prefix[80];
	snprintf(prefix, sizeof prefix, "agentsafe-%s-", name);
	size_t tl = old != NULL ? type_len(old, prefix) : 0;
	size_t len = tl + strlen(name) + sizeof hex + 16;
	char *p = malloc(len);
	if (p != NULL)
		snprintf(p, len, "%.*sagentsafe-%s-%s", (int)tl,
			 old != NULL ? old : "", name, hex);
	return p;
}

static char *make_placeholder(const char *name)
{
	char var[128];
	snprintf(var, sizeof var, "AGENTSAFE_PLACEHOLDER_%s", name);
	const char *v = getenv(var);
	return v != NULL ? strdup(v) : cred_new_placeholder(name, NULL);
}

/* "[TYPE]agentsafe-NAME-RANDOM": TYPE at most CRED_TYPE_MAX of
 * [A-Za-z0-9_-], RANDOM at least 16 characters. */
static bool placeholder_ok(const char *ph, const char *prefix)
{
	size_t tl = type_len(ph, prefix);
	if (ph[tl] == '\0' || tl > CRED_TYPE_MAX ||
	    strlen(ph + tl) < strlen(prefix) + 16)
		return false;
	for (size_t i = 0; i < tl; i++)
		if (!isalnum((unsigned char)ph[i]) && ph[i] != '_' &&
		    ph[i] != '-')
			return false;
	return true;
}

/* The header to set, from `header: "Name: ... {} ..."` or `basic: USER`. */
static int make_header(struct cred *c, const struct policy_credential *pc)
{
	if (pc->basic_user != NULL) {
		size_t rawlen = strlen(pc->basic_user) + 1 + strlen(c->secret);
		char *raw = malloc(rawlen + 1);
		char *b64 = malloc(4 * ((rawlen + 2) / 3) + 1);
		c->hname = strdup("Authorization");
		c->hvalue = malloc(4 * ((rawlen + 2) / 3) + 8);
		if (raw == NULL || b64 == NULL || c->hname == NULL ||
		    c->hvalue == NULL) {
			free(raw);
			free(b64);
			return -ENOMEM;
		}
		snprintf(raw, rawlen + 1, "%s:%s", pc->basic_user, c->secret);
		EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)raw,
				(int)rawlen);
		snprintf(c->hvalue, 4 * ((rawlen + 2) / 3) + 8, "Basic %s",
			 b64);
		OPENSSL_cleanse(raw, rawlen);
		OPENSSL_cleanse(b64, strlen(b64));
		free(raw);
		free(b64);
		return 0;
	}
	if (pc->header == NULL)
		return 0;
	const char *colon = strchr(pc->header, ':');
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	const char *ph = strstr(v, "{}");
	c->hname = strndup(pc->header, (size_t)(colon - pc->header));
	size_t len = strlen(v) + strlen(c->secret) + 1;
	c->hvalue = malloc(len);
	if (c->hname == NULL || c->hvalue == NULL)
		return -ENOMEM;
	snprintf(c->hvalue, len, "%.*s%s%s", (int)(ph - v), v, c->secret,
		 ph + 2);
	return 0;
}

static int cred_init(struct cred *c, const struct policy_credential *pc,
		     char *err, size_t errlen)
{
	char why[300] = "";
	c->name = strdup(pc->name);
	c->secret = resolve(pc, why, sizeof why);
	if (c->secret == NULL) {
		snprintf(err, errlen, "credential %s: %s", pc->name, why);
		return -EINVAL;
	}
	snprintf(c->prefix, sizeof c->prefix, "agentsafe-%s-", pc->name);
	if (pc->placeholder) {
		c->placeholder = make_placeholder(pc->name);
		if (c->placeholder == NULL ||
		    !placeholder_ok(c->placeholder, c->prefix)) {
			snprintf(err, errlen,
				 "credential %s: placeholder must be "
				 "agentsafe-%s- and at least 16 random "
				 "characters, after at most %d of "
				 "[A-Za-z0-9_-]",
				 pc->name, pc->name, CRED_TYPE_MAX);
			return -EINVAL;
		}
	}
	c->hosts = calloc(pc->nhosts, sizeof *c->hosts);
	if (c->name == NULL || c->hosts == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < pc->nhosts; i++) {
		c->hosts[i] = strdup(pc->hosts[i]);
		if (c->hosts[i] == NULL)
			return -ENOMEM;
		c->nhosts++;
		c->body = c->body || strchr(pc->hosts[i], '/') != NULL;
	}
	if (pc->source == POLICY_CRED_COMMAND) {
		c->command = strdup(pc->from);
		c->basic_user =
		    pc->basic_user != NULL ? strdup(pc->basic_user) : NULL;
		c->header_tmpl = pc->header != NULL ? strdup(pc->header) : NULL;
		if (c->command == NULL ||
		    (pc->basic_user != NULL && c->basic_user == NULL) ||
		    (pc->header != NULL && c->header_tmpl == NULL))
			return -ENOMEM;
	}
	return make_header(c, pc);
}

/* The launcher's built-in bindings, CRED_BUILTIN_ENV = "VAR=HOST,HOST;..."
 * (at most CRED_BUILTIN_MAX, each an env-sourced placeholder credential
 * named after its variable): those the policy does not name itself. */
struct builtin {
	char name[65];
	char hostbuf[256];
	const char *hosts[8];
	struct policy_credential pc;
};

static bool policy_has(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < policy_credential_count(p); i++)
		if (strcmp(policy_credential_at(p, i)->name, name) == 0)
			return true;
	return false;
}

static size_t builtins_parse(const struct policy *p, struct builtin *b)
{
	const char *v = getenv(CRED_BUILTIN_ENV);
	size_t n = 0;
	while (v != NULL && *v != '\0' && n < CRED_BUILTIN_MAX) {
		size_t len = strcspn(v, ";");
		const char *eq = memchr(v, '=', len);
		struct builtin *e = &b[n];
		memset(e, 0, sizeof *e);
		if (eq != NULL && (size_t)(eq - v) < sizeof e->name &&
		    len - (size_t)(eq - v) < sizeof e->hostbuf) {
			memcpy(e->name, v, (size_t)(eq - v));
			memcpy(e->hostbuf, eq + 1, len - (size_t)(eq - v) - 1);
			char *save = NULL;
			for (char *h = strtok_r(e->hostbuf, ",", &save);
			     h != NULL && e->pc.nhosts < 8;
			     h = strtok_r(NULL, ",", &save))
				e->hosts[e->pc.nhosts++] = h;
			e->pc.name = e->pc.from = e->name;
			e->pc.source = POLICY_CRED_ENV;
			e->pc.placeholder = true;
			e->pc.hosts = e->hosts;
			if (e->pc.nhosts > 0 && !policy_has(p, e->name))
				n++;
		}
		v += len + (v[len] == ';');
	}
	return n;
}

int cred_store_new(const struct policy *p, struct cred_store **out, char *err,
		   size_t errlen)
{
	*out = NULL;
	struct builtin b[CRED_BUILTIN_MAX];
	size_t np = policy_credential_count(p);
	size_t nb = builtins_parse(p, b);
	size_t n = np + nb;
	if (n == 0)
		return 0;
	struct cred_store *s = calloc(1, sizeof *s);
	if (s != NULL)
		s->c = calloc(n, sizeof *s->c);
	if (s == NULL || s->c == NULL) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	for (size_t i = 0; i < n; i++) {
		s->n++;
		int rc = cred_init(&s->c[i],
				   i < np ? policy_credential_at(p, i)
					  : &b[i - np].pc,
				   err, errlen);
		if (rc != 0) {
			if (rc == -ENOMEM)
				snprintf(err, errlen, "out of memory");
			cred_store_free(s);
			return rc;
		}
	}
	int rc = cred_rotate_init(s, err, errlen);
	if (rc != 0) {
		cred_store_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- matching ---- */

/* Whether c is bound to host (at path: a "HOST/PATH" entry binds that
 * path only, its query string aside; NULL matches no such entry). */
static bool bound(const struct cred *c, const char *host, const char *path)
{
	if (host == NULL)
		return false;
	size_t hl = strlen(host);
	for (size_t i = 0; i < c->nhosts; i++) {
		const char *h = c->hosts[i];
		const char *slash = strchr(h, '/');
		if (slash != NULL) {
			size_t pl = path != NULL ? strcspn(path, "?") : 0;
			if ((size_t)(slash - h) == hl &&
			    memcmp(h, host, hl) == 0 && path != NULL &&
			    strlen(slash) == pl && memcmp(slash, path, pl) == 0)
				return true;
		} else if (h[0] == '*' && h[1] == '.') {
			size_t sl = strlen(h + 1);
			if (hl > sl && memcmp(host + hl - sl, h + 1, sl) == 0)
				return true;
		} else if (strcmp(h, host) == 0) {
			return true;
		}
	}
	return false;
}

static bool ci_find(const char *buf, size_t len, const char *needle)
{
	size_t nl = strlen(needle);
	if (nl == 0 || len < nl)
		return false;
	for (size_t i = 0; i + nl <= len; i++)
		if (strncasecmp(buf + i, needle, nl) == 0)
			return true;
	return false;
}

/* The random part of a placeholder. */
static const char *random_of(const struct cred *c, const char *ph)
{
	return ph + type_len(ph, c->prefix) + strlen(c->prefix);
}

const char *cred_misuse(const struct cred_store *s, const char *host,
			const char *path, const char *buf, size_t len)
{
	const char *name = NULL;
	if (s == NULL)
		return NULL;
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	for (size_t i = 0; i < s->n && name == NULL; i++) {
		const struct cred *c = &s->c[i];
		if (c->placeholder == NULL || bound(c, host, path))
			continue;
		if (ci_find(buf, len, c->prefix) ||
		    ci_find(buf, len, random_of(c, c->placeholder)))
			name = c->name;
		for (size_t k = 0; k < CRED_ALIASES && name == NULL; k++)
			if (c->aliases[k] != NULL &&
			    ci_find(buf, len, random_of(c, c->aliases[k])))
				name = c->name;
	}
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	return name;
}

bool cred_body_bound(const struct cred_store *s, const char *host,
		     const char *path)
{
	bool yes = false;
	if (s == NULL)
		return false;
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	for (size_t i = 0; i < s->n && !yes; i++)
		yes = s->c[i].body && s->c[i].placeholder != NULL &&
		      bound(&s->c[i], host, path);
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	return yes;
}

/* s with %XX escapes decoded, when it has any: a placeholder spelt
 * agentsafe%2DNAME%2D... is the same placeholder. */
static const char *misuse_percent(const struct cred_store *s, const char *host,
				  const char *path, const char *buf, size_t len)
{
	if (memchr(buf, '%', len) == NULL)
		return NULL;
	char *dec = malloc(len + 1);
	if (dec == NULL)
		return NULL;
	size_t n = cred_decode_percent(buf, len, dec);
	const char *name = cred_misuse(s, host, path, dec, n);
	free(dec);
	return name;
}

/* The user:password of an Authorization / Proxy-Authorization Basic
 * value, decoded with either base64 alphabet (the agent picks the
 * encoding). */
static const char *misuse_basic(const struct cred_store *s, const char *host,
				const char *path, const struct http_header *h)
{
	if (!cred_decode_is_auth(h->name, h->name_len))
		return NULL;
	size_t cap = (h->value_len / 4 + 1) * 3;
	unsigned char *raw = malloc(cap);
	if (raw == NULL)
		return NULL;
	long n =
	    cred_decode_basic(h->value, h->value_len, CRED_B64_ANY, raw, cap);
	const char *name =
	    n > 0 ? cred_misuse(s, host, path, (const char *)raw, (size_t)n)
		  : NULL;
	if (name == NULL && n > 0)
		name =
		    misuse_percent(s, host, path, (const char *)raw, (size_t)n);
	free(raw);
	return name;
}

const char *cred_misuse_head(const struct cred_store *s, const char *host,
			     const struct http_request *q)
{
	if (s == NULL)
		return NULL;
	/* The request's path, for HOST/PATH bindings (origin-form inside
	 * an inspected tunnel; no host outside one). */
	char path[1024];
	snprintf(path, sizeof path, "%.*s", (int)q->target_len, q->target);
	const char *name = cred_misuse(s, host, path, q->target, q->target_len);
	if (name == NULL)
		name = misuse_percent(s, host, path, q->target, q->target_len);
	for (size_t i = 0; name == NULL && i < q->nheaders; i++) {
		const struct http_header *h = &q->headers[i];
		name = cred_misuse(s, host, path, h->name, h->name_len);
		if (name == NULL)
			name =
			    cred_misuse(s, host, path, h->value, h->value_len);
		if (name == NULL)
			name = misuse_percent(s, host, path, h->value,
					      h->value_len);
		if (name == NULL)
			name = misuse_basic(s, host, path, h);
	}
	return name;
}

/* ---- rewriting ---- */

struct sbuf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (b->p == NULL || b->n + n + 1 > b->cap) {
		size_t nc = (b->n + n + 1) * 2;
		char *np = realloc(b->p, nc);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

/* The length of c's placeholder (or of a retired alias) at s, or 0. */
static size_t placeholder_at(const struct cred *c, const char *s, size_t n)
{
	const char *all[1 + CRED_ALIASES] = {c->placeholder};
	for (size_t k = 0; k < CRED_ALIASES; k++)
		all[1 + k] = c->aliases[k];
	for (size_t k = 0; k < 1 + CRED_ALIASES; k++) {
		size_t pl = all[k] != NULL ? strlen(all[k]) : 0;
		if (pl > 0 && pl <= n && memcmp(s, all[k], pl) == 0)
			return pl;
	}
	return 0;
}

/* s with every bound credential's placeholder replaced by its secret;
 * body: only the credentials swapped in bodies. */
static void put_swapped(struct sbuf *b, const struct cred_store *st,
			const char *host, const char *path, const char *s,
			size_t n, bool body, const char **used)
{
	size_t i = 0, from = 0;
	while (i < n) {
		const struct cred *hit = NULL;
		size_t pl = 0;
		for (size_t k = 0; k < st->n && hit == NULL; k++) {
			const struct cred *c = &st->c[k];
			if (c->placeholder == NULL || (body && !c->body) ||
			    !bound(c, host, path))
				continue;
			pl = placeholder_at(c, s + i, n - i);
			if (pl > 0)
				hit = c;
		}
		if (hit == NULL) {
			i++;
			continue;
		}
		put(b, s + from, i - from);
		put(b, hit->secret, strlen(hit->secret));
		i += pl;
		from = i;
		if (*used == NULL)
			*used = hit->name;
	}
	put(b, s + from, n - from);
}

/* An Authorization / Proxy-Authorization `Basic` value (git over HTTPS:
 * base64 of user:password) whose user:password holds the placeholder of a
 * credential bound to host: swapped there and encoded again. False, with
 * nothing written, when the header is not one or holds none (it is then
 * forwarded as it is, plain placeholders swapped). */
static bool put_basic_swapped(struct sbuf *b, const struct cred_store *st,
			      const char *host, const char *path,
			      const struct http_header *h, const char **used)
{
	if (!cred_decode_is_auth(h->name, h->name_len))
		return false;
	size_t cap = (h->value_len / 4 + 1) * 3;
	unsigned char *raw = malloc(cap);
	long n = raw != NULL ? cred_decode_basic(h->value, h->value_len,
						 CRED_B64_STD, raw, cap)
			     : -1;
	const char *hit = NULL;
	struct sbuf sw = {NULL, 0, 0, false};
	if (n > 0)
		put_swapped(&sw, st, host, path, (const char *)raw, (size_t)n,
			    false, &hit);
	size_t ecap = 6 + 4 * ((sw.n + 2) / 3) + 1;
	char *enc = hit != NULL && !sw.oom ? malloc(ecap) : NULL;
	long el = enc != NULL ? cred_encode_basic((unsigned char *)sw.p, sw.n,
						  enc, ecap)
			      : -1;
	if (el > 0) {
		put(b, enc, (size_t)el);
		if (*used == NULL)
			*used = hit;
	} else if (hit != NULL) {
		b->oom = true; /* never the placeholder instead */
	}
	if (raw != NULL)
		OPENSSL_cleanse(raw, cap);
	if (sw.p != NULL)
		OPENSSL_cleanse(sw.p, sw.n);
	if (enc != NULL)
		OPENSSL_cleanse(enc, ecap);
	free(raw);
	free(sw.p);
	free(enc);
	return hit != NULL;
}

static bool injected_name(const struct cred_store *st, const char *host,
			  const char *path, const struct http_header *h)
{
	for (size_t k = 0; k < st->n; k++) {
		const struct cred *c = &st->c[k];
		if (c->hname != NULL && bound(c, host, path) &&
		    strlen(c->hname) == h->name_len &&
		    strncasecmp(c->hname, h->name, h->name_len) == 0)
			return true;
	}
	return false;
}

static bool named(const struct http_header *h, const char *name)
{
	return h->name_len == strlen(name) &&
	       strncasecmp(h->name, name, h->name_len) == 0;
}

/* The injected headers of the credentials bound to host. */
static bool put_injected(struct sbuf *b, const struct cred_store *st,
			 const char *host, const char *path, const char **used)
{
	bool changed = false;
	for (size_t k = 0; k < st->n; k++) {
		const struct cred *c = &st->c[k];
		if (!bound(c, host, path) || c->hname == NULL)
			continue;
		put(b, c->hname, strlen(c->hname));
		put(b, ": ", 2);
		put(b, c->hvalue, strlen(c->hvalue));
		put(b, "\r\n", 2);
		changed = true;
		if (*used == NULL)
			*used = c->name;
	}
	return changed;
}

int cred_apply(const struct cred_store *st, const char *host,
	       const struct http_request *q, const char *body, size_t bodylen,
	       char **out, size_t *outlen, const char **used)
{
	*used = NULL;
	if (st == NULL)
		return 0;
	char path[1024];
	snprintf(path, sizeof path, "%.*s", (int)q->target_len, q->target);
	/* A body-swapped token request: its answer is rewritten, so it
	 * must come back uncompressed. */
	bool swap_body = body != NULL && cred_body_bound(st, host, path);
	struct sbuf b = {NULL, 0, 0, false};
	bool changed = swap_body;
	pthread_mutex_lock((pthread_mutex_t *)&st->lock);
	put(&b, q->method, q->method_len);
	put(&b, " ", 1);
	put_swapped(&b, st, host, path, q->target, q->target_len, false, used);
	put(&b, q->version_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
	for (size_t i = 0; i < q->nheaders; i++) {
		const struct http_header *h = &q->headers[i];
		if (injected_name(st, host, path, h) ||
		    (swap_body && (named(h, "content-length") ||
				   named(h, "accept-encoding")))) {
			changed = true;
			continue;
		}
		put(&b, h->name, h->name_len);
		put(&b, ": ", 2);
		if (!put_basic_swapped(&b, st, host, path, h, used))
			put_swapped(&b, st, host, path, h->value, h->value_len,
				    false, used);
		put(&b, "\r\n", 2);
	}
	changed = put_injected(&b, st, host, path, used) || changed;
	struct sbuf nb = {NULL, 0, 0, false};
	if (swap_body)
		put_swapped(&nb, st, host, path, body, bodylen, true, used);
	pthread_mutex_unlock((pthread_mutex_t *)&st->lock);
	if (swap_body) {
		char cl[48];
		int k =
		    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", nb.n);
		put(&b, cl, (size_t)k);
	}
	put(&b, "\r\n", 2);
	put(&b, nb.p, nb.n);
	b.oom = b.oom || nb.oom;
	if (nb.p != NULL)
		OPENSSL_cleanse(nb.p, nb.n);
	free(nb.p);
	changed = changed || *used != NULL;
	if (b.oom || !changed) {
		if (b.p != NULL)
			OPENSSL_cleanse(b.p, b.n);
		free(b.p);
		return b.oom ? -ENOMEM : 0;
	}
	*out = b.p;
	*outlen = b.n;
	return 1;
}

/* ---- refreshing ---- */

#define CRED_OK_MARK "agentsafe-command-exited-0"

int cred_refresh(struct cred_store *st, const char *name)
{
	struct cred *c = NULL;
	for (size_t i = 0; st != NULL && i < st->n && c == NULL; i++)
		if (strcmp(st->c[i].name, name) == 0)
			c = &st->c[i];
	if (c == NULL || c->command == NULL)
		return 0;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&st->lock);
	bool due = !c->rerun || now.tv_sec - c->refreshed >= CRED_REFRESH_MIN_S;
	if (due) { /* one re-run per interval */
		c->refreshed = now.tv_sec;
		c->rerun = true;
	}
	pthread_mutex_unlock(&st->lock);
	if (!due)
		return 0;
	struct policy_credential pc = {.name = c->name,
				       .source = POLICY_CRED_COMMAND,
				       .from = c->command,
				       .basic_user = c->basic_user,
				       .header = c->header_tmpl};
	/* Run outside the lock: requests keep the old value meanwhile. The
	 * proxy ignores SIGCHLD by now (children are reaped at once, so
	 * pclose cannot see an exit status): the command's success is a
	 * marker line it prints only when it exited 0. */
	size_t cl = strlen(c->command) + sizeof CRED_OK_MARK + 32;
	char *wrapped = malloc(cl);
	if (wrapped == NULL)
		return -ENOMEM;
	snprintf(wrapped, cl, "{ %s\n} && printf '\\n%s'", c->command,
		 CRED_OK_MARK);
	FILE *f = popen(wrapped, "re"); // NOLINT(cert-env33-c): see resolve
	free(wrapped);
	char *secret = f != NULL ? read_stream(f) : NULL;
	if (f != NULL)
		(void)pclose(f); /* status unavailable: the marker decides */
	size_t sl = secret != NULL ? strlen(secret) : 0;
	size_t ml = strlen("\n" CRED_OK_MARK);
	bool ok = secret != NULL && sl > ml &&
		  strcmp(secret + sl - ml, "\n" CRED_OK_MARK) == 0;
	size_t bl = ok ? sl - ml : 0; /* the output, its newlines dropped */
	while (bl > 0 && (secret[bl - 1] == '\n' || secret[bl - 1] == '\r'))
		bl--;
	if (secret != NULL && (!ok || bl == 0 || memchr(secret, '\n', bl) ||
			       memchr(secret, '\r', bl))) {
		OPENSSL_cleanse(secret, sl);
		free(secret);
		secret = NULL;
	}
	if (secret == NULL)
		return -EIO;
	OPENSSL_cleanse(secret + bl, sl - bl);
	secret[bl] = '\0';
	struct cred fresh = {.secret = secret};
	if (make_header(&fresh, &pc) != 0) {
		cred_clear(&fresh);
		return -ENOMEM;
	}
	pthread_mutex_lock(&st->lock);
	char *old = c->secret, *oldh = c->hvalue, *oldn = c->hname;
	c->secret = fresh.secret;
	if (fresh.hvalue != NULL) {
		c->hvalue = fresh.hvalue;
		c->hname = fresh.hname;
	} else {
		oldh = fresh.hvalue;
		oldn = fresh.hname;
	}
	pthread_mutex_unlock(&st->lock);
	if (old != NULL)
		OPENSSL_cleanse(old, strlen(old));
	if (oldh != NULL)
		OPENSSL_cleanse(oldh, strlen(oldh));
	free(old);
	free(oldh);
	free(oldn);
	return 1;
}
