/* OAuth token rotation (see inspect_cred.h): the real access and refresh
 * tokens stay in this process; a token endpoint's answer is rewritten so
 * the client only ever sees new placeholders, and the new real tokens go
 * to the launcher's store file, which it merges back into the user's own
 * credentials at the end of the session. */
#include "inspect_cred.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "inspect_cred_int.h"

static struct cred *by_name(struct cred_store *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->c[i].name) == len &&
		    memcmp(s->c[i].name, name, len) == 0 &&
		    s->c[i].placeholder != NULL)
			return &s->c[i];
	return NULL;
}

void cred_rotate_free(struct cred_rotate *r)
{
	if (r == NULL)
		return;
	if (r->store_fd >= 0)
		(void)close(r->store_fd); /* written with fsync already */
	free(r);
}

int cred_rotate_init(struct cred_store *s, char *err, size_t errlen)
{
	const char *v = getenv(CRED_ROTATE_ENV);
	if (v == NULL || v[0] == '\0')
		return 0;
	const char *c1 = strchr(v, ',');
	const char *c2 = c1 != NULL ? strchr(c1 + 1, ',') : NULL;
	const char *slash = strchr(v, '/');
	struct cred_rotate *r = calloc(1, sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	r->store_fd = -1;
	s->rot = r;
	if (c2 == NULL || slash == NULL || slash > c1 ||
	    (size_t)(slash - v) >= sizeof r->host ||
	    (size_t)(c1 - slash) >= sizeof r->path) {
		snprintf(err, errlen, "%s: not HOST/PATH,ACCESS,REFRESH",
			 CRED_ROTATE_ENV);
		return -EINVAL;
	}
	memcpy(r->host, v, (size_t)(slash - v));
	memcpy(r->path, slash, (size_t)(c1 - slash));
	r->access = by_name(s, c1 + 1, (size_t)(c2 - c1 - 1));
	r->refresh = by_name(s, c2 + 1, strlen(c2 + 1));
	if (r->access == NULL || r->refresh == NULL) {
		snprintf(err, errlen,
			 "%s: ACCESS and REFRESH must name placeholder "
			 "credentials",
			 CRED_ROTATE_ENV);
		return -EINVAL;
	}
	const char *store = getenv(CRED_STORE_ENV);
	if (store != NULL && store[0] != '\0') {
		r->store_fd = open(store, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (r->store_fd < 0) {
			int e = errno;
			snprintf(err, errlen, "%s %s: %s", CRED_STORE_ENV,
				 store, strerror(e));
			return -e;
		}
	}
	return 0;
}

bool cred_rotates(const struct cred_store *s, const char *host,
		  const char *path)
{
	if (s == NULL || s->rot == NULL || host == NULL || path == NULL)
		return false;
	size_t pl = strcspn(path, "?");
	return strcmp(s->rot->host, host) == 0 && strlen(s->rot->path) == pl &&
	       memcmp(s->rot->path, path, pl) == 0;
}

/* c's secret becomes fresh and a new placeholder stands for it; the old
 * one stays an alias (a request the client had in flight). Under the
 * store's lock. */
static int rotate_one(struct cred *c, const char *fresh)
{
	char *secret = strdup(fresh);
	char *ph = cred_new_placeholder(c->name, c->placeholder);
	if (secret == NULL || ph == NULL) {
		free(secret);
		free(ph);
		return -ENOMEM;
	}
	OPENSSL_cleanse(c->secret, strlen(c->secret));
	free(c->secret);
	c->secret = secret;
	free(c->aliases[CRED_ALIASES - 1]);
	memmove(c->aliases + 1, c->aliases,
		(CRED_ALIASES - 1) * sizeof c->aliases[0]);
	c->aliases[0] = c->placeholder;
	c->placeholder = ph;
	return 0;
}

/* The new real tokens for the launcher: {"access_token", "refresh_token",
 * "expires_in", "obtained_ms"}, replacing what the file held. */
static void save(const struct cred_rotate *r, json_int_t expires_in)
{
	if (r->store_fd < 0)
		return;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	json_t *o = json_pack(
	    "{s:s, s:s, s:I, s:I}", "access_token", r->access->secret,
	    "refresh_token", r->refresh->secret, "expires_in", expires_in,
	    "obtained_ms",
	    (json_int_t)tv.tv_sec * 1000 + (json_int_t)(tv.tv_usec / 1000));
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	size_t len = text != NULL ? strlen(text) : 0;
	if (text == NULL || ftruncate(r->store_fd, 0) != 0 ||
	    pwrite(r->store_fd, text, len, 0) != (ssize_t)len ||
	    fsync(r->store_fd) != 0)
		fprintf(stderr, "agentsafe-proxy: cannot save the rotated "
				"OAuth tokens for the launcher; the user's "
				"login may need renewing after the session\n");
	if (text != NULL) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
}

/* Replace o[key] (a token) with c's new placeholder; 1 when done. */
static int swap_token(json_t *o, const char *key, struct cred *c)
{
	json_t *t = json_object_get(o, key);
	if (!json_is_string(t) || json_string_length(t) == 0 ||
	    json_string_length(t) > CRED_SECRET_MAX ||
	    strpbrk(json_string_value(t), "\r\n") != NULL)
		return t == NULL ? 0 : -EPROTO;
	int rc = rotate_one(c, json_string_value(t));
	if (rc == 0)
		rc = json_object_set_new(o, key, json_string(c->placeholder)) ==
			     0
			 ? 1
			 : -ENOMEM;
	return rc;
}

int cred_rotate(struct cred_store *s, const char *body, size_t len, char **out,
		size_t *outlen)
{
	struct cred_rotate *r = s->rot;
	json_error_t jerr;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		json_decref(o);
		return 0; /* no token in it; cred_secret_in still checks */
	}
	pthread_mutex_lock(&s->lock);
	int ra = swap_token(o, "access_token", r->access);
	int rr = ra >= 0 ? swap_token(o, "refresh_token", r->refresh) : 0;
	if (ra > 0 || rr > 0) {
		json_t *e = json_object_get(o, "expires_in");
		save(r, json_is_integer(e) ? json_integer_value(e) : 0);
	}
	pthread_mutex_unlock(&s->lock);
	int rc = ra < 0 ? ra : rr < 0 ? rr : (ra > 0 || rr > 0);
	if (rc == 1) {
		*out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		*outlen = *out != NULL ? strlen(*out) : 0;
		rc = *out != NULL ? 1 : -ENOMEM;
	}
	json_decref(o); /* jansson frees without cleansing: a known limit */
	return rc;
}

bool cred_secret_in(const struct cred_store *s, const char *buf, size_t len)
{
	bool yes = false;
	if (s == NULL)
		return false;
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	for (size_t i = 0; i < s->n && !yes; i++) {
		const char *sec = s->c[i].secret;
		size_t sl = sec != NULL ? strlen(sec) : 0;
		yes = sl >= 8 && memmem(buf, len, sec, sl) != NULL;
	}
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	return yes;
}
