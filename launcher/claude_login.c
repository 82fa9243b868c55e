/* Claude Code's OAuth login kept on the host (see claude_login.h). */
#include "claude_login.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "builtin_cred.h"
#include "launch_int.h"
#include "policy.h"
#include "session_ca.h"

#define ACCESS	"CLAUDE_OAUTH_ACCESS"
#define REFRESH "CLAUDE_OAUTH_REFRESH"
/* Largest credentials file read (it holds a few tokens and flags). */
#define FILE_MAX (1024L * 1024)
/* In the session's state dir: the proxy's rotated tokens (STORE), the
 * container's placeholder copy (SEED), and RECORD: the user's file and
 * the SHA-256 of the refresh token the session began with, so that the
 * stale sweep saves the rotated tokens when the launcher was killed
 * (the token host has retired the user's old refresh token by then). */
#define STORE	       "claude-oauth.json"
#define SEED	       "claude-credentials.json"
#define RECORD	       "claude-login.json"
#define USER_FILE_TAIL "/.claude/.credentials.json"

struct claude_login {
	char file[4200];	/* the user's ~/.claude/.credentials.json */
	char seed[4200];	/* its placeholder copy, for the container */
	char store[4200];	/* the proxy's file for rotated tokens */
	char record[4200];	/* RECORD: what a sweep needs to save them */
	char *access, *refresh; /* the real tokens the session began with */
	char api[128], token[128];
	/* putenv strings for the proxy's child (they must outlive it). */
	char *env_access, *env_refresh;
	char env_ph[2][256], env_rotate[512], env_store[4300], env_bind[1024];
};

static void wipe(char **p)
{
	if (*p != NULL)
		OPENSSL_cleanse(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

static void login_free(struct claude_login *l)
{
	if (l == NULL)
		return;
	wipe(&l->access);
	wipe(&l->refresh);
	wipe(&l->env_access);
	wipe(&l->env_refresh);
	free(l);
}

static void sha_hex(const char *v, char out[2 * SHA256_DIGEST_LENGTH + 1])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)v, strlen(v), md);
	for (size_t i = 0; i < sizeof md; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The user's file: a regular file of theirs (no symlink: the launcher
 * is root here), at most FILE_MAX. NULL when absent or unusable. */
static json_t *load_user_file(uid_t owner, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > FILE_MAX ||
	    (st.st_uid != owner && st.st_uid != geteuid())) {
		(void)close(fd); /* read-only */
		return NULL;
	}
	json_error_t jerr;
	json_t *j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
	(void)close(fd); /* read-only */
	return j;
}

/* A token worth swapping: a one-line string. */
static const char *token_of(json_t *oauth, const char *key)
{
	const char *v = json_string_value(json_object_get(oauth, key));
	if (v == NULL || v[0] == '\0' || strlen(v) > 16384 ||
	    strpbrk(v, "\r\n") != NULL)
		return NULL;
	return v;
}

/* "[TYPE]agentsafe-NAME-RANDOM": TYPE the token's own ("sk-ant-oat01-",
 * through its third '-'), which Claude Code looks at. */
static int placeholder(const char *token, const char *name, char *out,
		       size_t len)
{
	size_t tl = 0;
	if (strncmp(token, "sk-ant-", 7) == 0) {
		const char *d = strchr(token + 7, '-');
		if (d != NULL && (size_t)(d - token) < 24)
			tl = (size_t)(d - token) + 1;
		for (size_t i = 0; i < tl; i++)
			if (!isalnum((unsigned char)token[i]) &&
			    token[i] != '-')
				tl = 0;
	}
	return session_ca_placeholder(token, tl, name, out, len);
}

/* path written whole as the user's (0600), through a temporary file and
 * a rename: never half a credentials file. */
static int write_user_file(uid_t uid, gid_t gid, const char *path,
			   const json_t *j)
{
	char tmp[4300];
	launch_snprintf(tmp, sizeof tmp, "%s.agentsafe-XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	size_t n = text != NULL ? strlen(text) : 0;
	int rc = text == NULL ? -ENOMEM : 0;
	if (rc == 0 && (write(fd, text, n) != (ssize_t)n ||
			fchmod(fd, 0600) != 0 || fsync(fd) != 0))
		rc = -errno;
	if (rc == 0 && geteuid() == 0 && uid != 0 && fchown(fd, uid, gid) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		(void)unlink(tmp);
	if (text != NULL)
		OPENSSL_cleanse(text, n);
	free(text);
	return rc;
}

/* The container's copy: the user's file with placeholders for tokens. */
static int write_seed(const struct sess *s, struct claude_login *l,
		      json_t *root, const char *aph, const char *rph)
{
	json_t *copy = json_deep_copy(root);
	json_t *o = json_object_get(copy, "claudeAiOauth");
	int rc = o != NULL &&
			 json_object_set_new(o, "accessToken",
					     json_string(aph)) == 0 &&
			 json_object_set_new(o, "refreshToken",
					     json_string(rph)) == 0
		     ? write_user_file(s->host_uid, s->host_gid, l->seed, copy)
		     : -ENOMEM;
	json_decref(copy);
	return rc;
}

static void say_inside(const char *api, const char *token)
{
	fprintf(stderr,
		"agentsafe-launch: Claude's login enters the container as it "
		"is: add `inspect: true` to the allow rules of %s and %s "
		"to keep its tokens on the host (the container then holds "
		"placeholders).\n",
		api, token);
}

static int plan(struct sess *s, struct claude_login *l, json_t *root, char *err,
		size_t errlen)
{
	json_t *o = json_object_get(root, "claudeAiOauth");
	const char *a = token_of(o, "accessToken");
	const char *r = token_of(o, "refreshToken");
	char aph[160], rph[160];
	if (a == NULL || r == NULL)
		return 1; /* no OAuth login in it: nothing to keep out */
	l->access = strdup(a);
	l->refresh = strdup(r);
	if (l->access == NULL || l->refresh == NULL ||
	    placeholder(a, ACCESS, aph, sizeof aph) != 0 ||
	    placeholder(r, REFRESH, rph, sizeof rph) != 0)
		return -ENOMEM;
	launch_snprintf(l->seed, sizeof l->seed, "%s/" SEED, s->state_dir);
	launch_snprintf(l->store, sizeof l->store, "%s/" STORE, s->state_dir);
	launch_snprintf(l->record, sizeof l->record, "%s/" RECORD,
			s->state_dir);
	char began[2 * SHA256_DIGEST_LENGTH + 1];
	sha_hex(r, began);
	json_t *rec =
	    json_pack("{s:s, s:s}", "file", l->file, "refresh_sha256", began);
	int rc = rec != NULL
		     ? write_user_file(s->host_uid, s->host_gid, l->record, rec)
		     : -ENOMEM;
	json_decref(rec);
	if (rc == 0)
		rc = write_seed(s, l, root, aph, rph);
	int fd =
	    rc == 0
		? open(l->store,
		       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		       0600)
		: -1;
	if (rc == 0 && (fd < 0 || (geteuid() == 0 && s->host_uid != 0 &&
				   fchown(fd, s->host_uid, s->host_gid) != 0)))
		rc = -errno;
	if (fd >= 0)
		(void)close(fd); /* empty: the proxy writes it */
	if (rc != 0) {
		launch_snprintf(err, errlen, "Claude's login: %s: %s",
				fd < 0 ? l->store : l->seed, strerror(-rc));
		return rc;
	}
	size_t al = strlen(ACCESS "=") + strlen(a) + 1;
	size_t rl = strlen(REFRESH "=") + strlen(r) + 1;
	l->env_access = malloc(al);
	l->env_refresh = malloc(rl);
	if (l->env_access == NULL || l->env_refresh == NULL)
		return -ENOMEM;
	snprintf(l->env_access, al, ACCESS "=%s", a);
	snprintf(l->env_refresh, rl, REFRESH "=%s", r);
	launch_snprintf(l->env_ph[0], sizeof l->env_ph[0],
			"AGENTSAFE_PLACEHOLDER_" ACCESS "=%s", aph);
	launch_snprintf(l->env_ph[1], sizeof l->env_ph[1],
			"AGENTSAFE_PLACEHOLDER_" REFRESH "=%s", rph);
	launch_snprintf(l->env_rotate, sizeof l->env_rotate,
			"AGENTSAFE_OAUTH_ROTATE=%s" CLAUDE_LOGIN_TOKEN_PATH
			"," ACCESS "," REFRESH,
			l->token);
	launch_snprintf(l->env_store, sizeof l->env_store,
			"AGENTSAFE_OAUTH_STORE=%s", l->store);
	return 0;
}

int claude_login_prepare(struct sess *s, const struct policy *p, char *err,
			 size_t errlen)
{
	const char *home = getenv("HOME");
	if (home == NULL || !launch_runs_agent(s->cfg, "claude"))
		return 0;
	struct claude_login *l = calloc(1, sizeof *l);
	if (l == NULL)
		return -ENOMEM;
	launch_snprintf(l->file, sizeof l->file, "%s/.claude/.credentials.json",
			home);
	builtin_cred_host(CLAUDE_LOGIN_API_HOST, l->api, sizeof l->api);
	builtin_cred_host(CLAUDE_LOGIN_TOKEN_HOST, l->token, sizeof l->token);
	json_t *root = load_user_file(s->host_uid, l->file);
	int rc = 1;
	if (root != NULL &&
	    json_is_object(json_object_get(root, "claudeAiOauth"))) {
		if (builtin_cred_inspected(p, l->api) &&
		    builtin_cred_inspected(p, l->token))
			rc = plan(s, l, root, err, errlen);
		else
			say_inside(l->api, l->token);
	}
	json_decref(root);
	if (rc != 0) {
		if (l->seed[0] != '\0')
			(void)unlink(l->seed);
		if (l->store[0] != '\0')
			(void)unlink(l->store);
		if (l->record[0] != '\0')
			(void)unlink(l->record);
		login_free(l);
		if (rc < 0 && err[0] == '\0')
			launch_snprintf(err, errlen, "Claude's login: %s",
					strerror(-rc));
		return rc < 0 ? rc : 0;
	}
	s->login = l;
	return 0;
}

void claude_login_proxy_env(const struct sess *s)
{
	struct claude_login *l = s->login;
	if (l == NULL)
		return;
	(void)putenv(l->env_access);
	(void)putenv(l->env_refresh);
	(void)putenv(l->env_ph[0]);
	(void)putenv(l->env_ph[1]);
	(void)putenv(l->env_rotate);
	(void)putenv(l->env_store);
	/* After the session CA's bindings (session_ca_proxy_env). */
	const char *b = getenv(BUILTIN_CRED_ENV);
	launch_snprintf(l->env_bind, sizeof l->env_bind,
			"%s=%s%s" ACCESS "=%s;" REFRESH
			"=%s" CLAUDE_LOGIN_TOKEN_PATH,
			BUILTIN_CRED_ENV, b != NULL ? b : "",
			b != NULL && b[0] != '\0' ? ";" : "", l->api, l->token);
	(void)putenv(l->env_bind);
}

const char *claude_login_seed(const struct sess *s)
{
	return s->login != NULL ? s->login->seed : NULL;
}

/* The proxy's rotated pair (store) into the user's file, when that still
 * holds the refresh token the session began with (began: its SHA-256);
 * else the user logged in again meanwhile: theirs wins. 1 when there is
 * nothing to save, 0 saved, -ESTALE, or -errno. */
static int merge(const char *file, const char *began, const char *store,
		 uid_t uid, gid_t gid)
{
	json_error_t jerr;
	json_t *st = json_load_file(store, 0, &jerr);
	const char *a = json_string_value(json_object_get(st, "access_token"));
	const char *r = json_string_value(json_object_get(st, "refresh_token"));
	json_int_t in = json_integer_value(json_object_get(st, "expires_in"));
	json_int_t at = json_integer_value(json_object_get(st, "obtained_ms"));
	int rc = 1;
	if (a != NULL && r != NULL) {
		json_t *root = load_user_file(uid, file);
		json_t *o = json_object_get(root, "claudeAiOauth");
		const char *cur =
		    json_string_value(json_object_get(o, "refreshToken"));
		char h[2 * SHA256_DIGEST_LENGTH + 1] = "";
		if (cur != NULL)
			sha_hex(cur, h);
		rc = root == NULL ? -ENOENT : -ESTALE;
		if (cur != NULL && CRYPTO_memcmp(h, began, sizeof h) == 0 &&
		    json_object_set_new(o, "accessToken", json_string(a)) ==
			0 &&
		    json_object_set_new(o, "refreshToken", json_string(r)) ==
			0 &&
		    (in <= 0 ||
		     json_object_set_new(o, "expiresAt",
					 json_integer(at + in * 1000)) == 0))
			rc = write_user_file(uid, gid, file, root);
		json_decref(root);
	}
	json_decref(st); /* jansson frees without cleansing: a known limit */
	return rc;
}

static void say_merged(int rc, const char *file, const char *whose)
{
	if (rc == 1)
		return;
	if (rc == 0)
		fprintf(stderr,
			"agentsafe-launch: Claude's login was refreshed in %s; "
			"the new tokens are saved in %s\n",
			whose, file);
	else
		fprintf(stderr,
			"agentsafe-launch: Claude's login was refreshed in %s, "
			"but %s %s: left as it is (if Claude asks, log in "
			"again on the host)\n",
			whose, file,
			rc == -ESTALE	? "changed meanwhile"
			: rc == -ENOENT ? "could not be read"
					: "could not be written");
}

void claude_login_finish(struct sess *s)
{
	struct claude_login *l = s->login;
	if (l == NULL)
		return;
	bool was_on = launch_files_on();
	char began[2 * SHA256_DIGEST_LENGTH + 1];
	sha_hex(l->refresh, began);
	say_merged(merge(l->file, began, l->store, s->host_uid, s->host_gid),
		   l->file, "the session");
	(void)unlink(l->store);
	(void)unlink(l->seed);
	(void)unlink(l->record);
	launch_files_off(was_on);
	login_free(l);
	s->login = NULL;
}

/* RECORD of a session whose launcher is gone: the user's file (an
 * absolute path ending in USER_FILE_TAIL) and the hash. False when absent
 * or not one the launcher wrote. */
static bool load_record(const char *path, char *file, size_t flen, char *began,
			uid_t *uid, gid_t *gid)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0)
		return false;
	json_error_t jerr;
	json_t *j =
	    fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < 16384
		? json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr)
		: NULL;
	(void)close(fd); /* read-only */
	const char *f = json_string_value(json_object_get(j, "file"));
	const char *h = json_string_value(json_object_get(j, "refresh_sha256"));
	size_t fl = f != NULL ? strlen(f) : 0, tl = strlen(USER_FILE_TAIL);
	bool ok = f != NULL && h != NULL && f[0] == '/' && fl > tl &&
		  fl < flen && strcmp(f + fl - tl, USER_FILE_TAIL) == 0 &&
		  strstr(f, "/../") == NULL &&
		  strlen(h) == (size_t)2 * SHA256_DIGEST_LENGTH &&
		  strspn(h, "0123456789abcdef") == strlen(h);
	if (ok) {
		memcpy(file, f, fl + 1);
		memcpy(began, h, strlen(h) + 1);
		*uid = st.st_uid;
		*gid = st.st_gid;
	}
	json_decref(j);
	return ok;
}

void claude_login_recover(const char *state_dir)
{
	char rec[4200], store[4200], seed[4200], file[4200];
	char began[2 * SHA256_DIGEST_LENGTH + 1];
	uid_t uid;
	gid_t gid;
	launch_snprintf(rec, sizeof rec, "%s/" RECORD, state_dir);
	launch_snprintf(store, sizeof store, "%s/" STORE, state_dir);
	launch_snprintf(seed, sizeof seed, "%s/" SEED, state_dir);
	if (!load_record(rec, file, sizeof file, began, &uid, &gid))
		return;
	/* As root (sudo, the sweep of a user's session): the files are
	 * touched with the record owner's rights only, so a record naming
	 * a path of someone else's writes nothing there. */
	bool as_owner = geteuid() == 0 && uid != 0;
	int ofsgid = 0, ofsuid = 0;
	if (as_owner) {
		ofsgid = setfsgid(gid); /* returns the previous id */
		ofsuid = setfsuid(uid);
	}
	/* The proxy (told to stop) may be writing the store: a half-written
	 * one is read again, for a second at most. */
	int rc = merge(file, began, store, uid, gid);
	for (int i = 0; i < 20 && rc == 1 && access(store, F_OK) == 0; i++) {
		struct stat st;
		if (stat(store, &st) != 0 || st.st_size == 0)
			break; /* nothing rotated */
		struct timespec ts = {0, 50L * 1000 * 1000};
		nanosleep(&ts, NULL);
		rc = merge(file, began, store, uid, gid);
	}
	say_merged(rc, file, "a session whose launcher was killed");
	(void)unlink(store);
	(void)unlink(seed);
	(void)unlink(rec);
	if (as_owner) {
		(void)setfsuid((uid_t)ofsuid);
		(void)setfsgid((gid_t)ofsgid);
	}
}
