/* Image presence and builds. The build context is packed as a ustar
 * archive in memory (the container/ folder is small), sent to POST /build,
 * and the engine's JSON progress lines are printed to stderr. */
#define _XOPEN_SOURCE 700
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "docker.h"
#include "fsutil.h"

#define IMG_PFX "agentsafe-launch: "

#define TAR_MAX ((size_t)256 * 1024 * 1024)

static int grow(struct image_tar *t, size_t n)
{
	if (t->len + n > TAR_MAX)
		return -E2BIG;
	if (t->len + n <= t->cap)
		return 0;
	size_t nc = t->cap ? t->cap : 65536;
	while (nc < t->len + n)
		nc *= 2;
	unsigned char *p = realloc(t->data, nc);
	if (p == NULL)
		return -ENOMEM;
	t->data = p;
	t->cap = nc;
	return 0;
}

static int header(struct image_tar *t, const char *name, size_t size,
		  unsigned mode, char type, const char *link)
{
	size_t nl = strlen(name);
	if (nl == 0 || nl > 250 || (link && strlen(link) > 99))
		return -ENAMETOOLONG;
	int rc = grow(t, 512);
	if (rc != 0)
		return rc;
	unsigned char *h = t->data + t->len;
	/* ustar fields are fixed-width: this memset NUL-pads a short one, and
	 * a full one has no NUL by the format (hence the NOLINTs below). */
	memset(h, 0, 512);
	/* ustar: names over 100 bytes split at a '/' into prefix + name. */
	const char *base = name;
	if (nl > 100) {
		const char *cut = name + nl - 100;
		const char *slash = strchr(cut, '/');
		if (slash == NULL || (size_t)(slash - name) > 155)
			return -ENAMETOOLONG;
		memcpy(h + 345, name, (size_t)(slash - name));
		base = slash + 1;
	}
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result) */
	memcpy(h, base, strlen(base));
	snprintf((char *)h + 100, 8, "%07o", mode & 07777);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = (unsigned char)type;
	if (link) {
		/* NOLINTNEXTLINE(bugprone-not-null-terminated-result) */
		memcpy(h + 157, link, strlen(link));
	}
	memcpy(h + 257, "ustar", 6);
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result) */
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum & 0777777);
	t->len += 512;
	return 0;
}

int image_tar_file(struct image_tar *t, const char *name, const void *data,
		   size_t len, unsigned mode)
{
	int rc = header(t, name, len, mode, '0', NULL);
	if (rc != 0)
		return rc;
	size_t padded = (len + 511) & ~(size_t)511;
	if ((rc = grow(t, padded)) != 0)
		return rc;
	memcpy(t->data + t->len, data, len);
	memset(t->data + t->len + len, 0, padded - len);
	t->len += padded;
	return 0;
}

int image_tar_finish(struct image_tar *t)
{
	int rc = grow(t, 1024);
	if (rc != 0)
		return rc;
	memset(t->data + t->len, 0, 1024);
	t->len += 1024;
	return 0;
}

void image_tar_free(struct image_tar *t)
{
	free(t->data);
	t->data = NULL;
	t->len = t->cap = 0;
}

/* nftw has no user pointer: one walk at a time, from one thread. */
static struct image_tar *walk_tar;
static size_t walk_root;
static int walk_rc;
static char walk_err[512];

static int walk(const char *path, const struct stat *st, int type,
		struct FTW *f)
{
	(void)f;
	if (path[walk_root] == '\0')
		return 0;
	const char *rel = path + walk_root + 1;
	int rc = 0;
	if (type == FTW_D) {
		char n[300];
		snprintf(n, sizeof n, "%s/", rel);
		rc = header(walk_tar, n, 0, (unsigned)st->st_mode, '5', NULL);
	} else if (type == FTW_SL) {
		char l[128];
		ssize_t ln = readlink(path, l, sizeof l - 1);
		if (ln < 0)
			rc = -errno;
		else {
			l[ln] = '\0';
			rc = header(walk_tar, rel, 0, 0777, '2', l);
		}
	} else if (type == FTW_F && S_ISREG(st->st_mode)) {
		if ((size_t)st->st_size > TAR_MAX)
			rc = -E2BIG;
		int fd = rc == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
		if (rc == 0 && fd < 0)
			rc = -errno;
		char *buf = rc == 0 ? malloc((size_t)st->st_size + 1) : NULL;
		if (rc == 0 && buf == NULL)
			rc = -ENOMEM;
		size_t got = 0;
		while (rc == 0 && got < (size_t)st->st_size) {
			ssize_t r =
			    read(fd, buf + got, (size_t)st->st_size - got);
			if (r <= 0) {
				rc = r < 0 ? -errno : -EIO;
				break;
			}
			got += (size_t)r;
		}
		if (rc == 0)
			rc = image_tar_file(walk_tar, rel, buf, got,
					    (unsigned)st->st_mode);
		free(buf);
		if (fd >= 0)
			close(fd);
	} else if (type == FTW_DNR || type == FTW_NS) {
		rc = -EACCES;
	}
	if (rc != 0) {
		walk_rc = rc;
		snprintf(walk_err, sizeof walk_err, "%s: %s", path,
			 strerror(-rc));
		return 1;
	}
	return 0;
}

int image_tar_dir(struct image_tar *t, const char *dir, char *err,
		  size_t errlen)
{
	walk_tar = t;
	walk_root = strlen(dir);
	while (walk_root > 1 && dir[walk_root - 1] == '/')
		walk_root--;
	walk_rc = 0;
	char root[4096];
	snprintf(root, sizeof root, "%.*s", (int)walk_root, dir);
	if (nftw(root, walk, 16, FTW_PHYS) != 0 || walk_rc != 0) {
		if (walk_rc == 0)
			snprintf(walk_err, sizeof walk_err, "%s: %s", dir,
				 strerror(errno));
		snprintf(err, errlen, "build context %s", walk_err);
		return walk_rc ? walk_rc : -EIO;
	}
	return 0;
}

int image_exists(struct docker *d, const char *image, json_t **labels,
		 char *err, size_t errlen)
{
	char *e = docker_urlencode(image);
	if (e == NULL)
		return -ENOMEM;
	char path[1024];
	snprintf(path, sizeof path, "/images/%s/json", e);
	free(e);
	long st = 0;
	json_t *r = NULL;
	int rc = docker_call(d, "GET", path, NULL, &st, labels ? &r : NULL, err,
			     errlen);
	if (rc != 0) {
		json_decref(r);
		return rc;
	}
	if (st == 200 && labels != NULL) {
		json_t *l =
		    json_object_get(json_object_get(r, "Config"), "Labels");
		*labels = json_is_object(l) ? json_incref(l) : json_object();
	}
	json_decref(r);
	if (st == 200)
		return 1;
	if (st == 404)
		return 0;
	return -EIO;
}

struct progress {
	char error[1024];
	const char *image;
	FILE *log;  /* the whole output; NULL: none */
	bool live;  /* one status line, rewritten (stderr is a terminal) */
	bool all;   /* -v: every line on stderr */
	bool shown; /* a status line is on the screen */
	char text[4096];
};

/* The engine's text without escape sequences and other controls (npm and
 * apt colour their output): what the log and the status line get. */
static void clean(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = in; *p != '\0' && o + 1 < len; p++) {
		if (*p == '\033') {
			/* ESC [ params final, or ESC and one byte */
			if (p[1] == '[') {
				p += 2;
				while (*p != '\0' && (*p < 0x40 || *p > 0x7e))
					p++;
				if (*p == '\0')
					break;
			} else if (p[1] != '\0') {
				p++;
			}
			continue;
		}
		if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
			continue;
		if (*p == 0x7f)
			continue;
		out[o++] = *p;
	}
	out[o] = '\0';
}

/* The status line: the current build step, cut to fit one line. */
static void show_step(struct progress *p, const char *t)
{
	if (strncmp(t, "Step ", 5) != 0)
		return;
	size_t n = strcspn(t, "\n");
	if (p->live) {
		fprintf(stderr, "\r\033[K" IMG_PFX "building %s: %.*s",
			p->image, (int)(n > 60 ? 60 : n), t);
		p->shown = true;
	} else {
		fprintf(stderr, IMG_PFX "building %s: %.*s\n", p->image, (int)n,
			t);
	}
}

static void on_line(const char *line, size_t len, void *arg)
{
	struct progress *p = arg;
	json_t *j = json_loadb(line, len, 0, NULL);
	if (j == NULL)
		return;
	const char *s = json_string_value(json_object_get(j, "stream"));
	const char *st = json_string_value(json_object_get(j, "status"));
	const char *e = json_string_value(json_object_get(j, "error"));
	const char *t = s != NULL ? s : st;
	if (t != NULL) {
		clean(t, p->text, sizeof p->text);
		if (p->log != NULL)
			(void)fprintf(p->log, "%s%s", p->text,
				      s != NULL ? "" : "\n");
		if (p->all)
			(void)fprintf(stderr, "%s%s", p->text,
				      s != NULL ? "" : "\n");
		else
			show_step(p, p->text);
	}
	if (e != NULL) {
		snprintf(p->error, sizeof p->error, "%s", e);
		if (p->log != NULL)
			(void)fprintf(p->log, "error: %s\n", e);
	}
	json_decref(j);
}

/* After a failed build: the log's last lines, then where it is. */
static void show_tail(const char *log_path)
{
	char *buf = NULL;
	size_t len = 0;
	if (log_path == NULL || fs_read_small(log_path, (size_t)64 << 20, 0,
					      &buf, &len, NULL, 0) != 0)
		return;
	size_t start = len, lines = 0;
	while (start > 0 && lines <= 25)
		if (buf[--start] == '\n')
			lines++;
	fprintf(stderr, IMG_PFX "the end of the build log:\n%s", buf + start);
	if (len > 0 && buf[len - 1] != '\n')
		(void)fputc('\n', stderr);
	fprintf(stderr, IMG_PFX "full build log: %s\n", log_path);
	free(buf);
}

/* The POST /build itself, its output going where o says. */
static int build_post(struct docker *d, const char *image, const char *dir,
		      const char *path, const struct image_tar *t,
		      const struct image_build_out *o, char *err, size_t errlen)
{
	struct progress p = {.image = image,
			     .all = o == NULL || o->verbose,
			     .live = o != NULL && !o->verbose && isatty(2)};
	long st = 0;
	const char *log_path = o != NULL ? o->log_path : NULL;
	if (log_path != NULL) {
		p.log = fopen(log_path, "we");
		if (p.log == NULL)
			p.all = true; /* no log: the output is only here */
	}
	bool logged = p.log != NULL;
	fprintf(stderr, IMG_PFX "building %s from %s%s%s\n", image, dir,
		logged ? "; log: " : "", logged ? log_path : "");
	int rc = docker_stream(d, "POST", path, "application/x-tar", t->data,
			       t->len, on_line, &p, &st, err, errlen);
	if (p.shown)
		(void)fputs("\r\033[K", stderr);
	if (logged && fclose(p.log) != 0)
		logged = false;
	if (rc == 0 && (st != 200 || p.error[0])) {
		snprintf(err, errlen, "building %s from %s failed: %s", image,
			 dir, p.error[0] ? p.error : "engine error");
		rc = -EIO;
	}
	if (rc != 0 && logged && !p.all)
		show_tail(log_path);
	else if (rc == 0)
		fprintf(stderr, IMG_PFX "built %s\n", image);
	return rc;
}

int image_build(struct docker *d, const char *image, const char *dir,
		const char *const *build_args, const char *ca_pem,
		size_t ca_len, json_t *labels, const struct image_build_out *o,
		char *err, size_t errlen)
{
	struct image_tar t = {0};
	int rc = image_tar_dir(&t, dir, err, errlen);
	json_t *args = json_object();
	if (args == NULL)
		rc = rc ? rc : -ENOMEM;
	for (size_t i = 0; rc == 0 && build_args && build_args[i]; i++) {
		const char *eq = strchr(build_args[i], '=');
		if (eq == NULL)
			continue;
		char k[256];
		snprintf(k, sizeof k, "%.*s", (int)(eq - build_args[i]),
			 build_args[i]);
		json_object_set_new(args, k, json_string(eq + 1));
	}
	if (rc == 0 && ca_pem != NULL) {
		rc = image_tar_file(&t, "extra-ca.pem", ca_pem, ca_len, 0644);
		json_object_set_new(args, "EXTRA_CA",
				    json_string("extra-ca.pem"));
	}
	if (rc == 0)
		rc = image_tar_finish(&t);
	char *aj = rc == 0 ? json_dumps(args, JSON_COMPACT) : NULL;
	char *ea = aj ? docker_urlencode(aj) : NULL;
	char *lj = rc != 0	    ? NULL
		   : labels != NULL ? json_dumps(labels, JSON_COMPACT)
				    : strdup("{}");
	char *el = lj ? docker_urlencode(lj) : NULL;
	char *ei = docker_urlencode(image);
	if (rc == 0 && (ea == NULL || el == NULL || ei == NULL))
		rc = -ENOMEM;
	if (rc == 0) {
		size_t pl = strlen(ea) + strlen(el) + strlen(ei) + 128;
		char *path = malloc(pl);
		if (path == NULL) {
			rc = -ENOMEM;
		} else {
			snprintf(path, pl,
				 "/build?t=%s&buildargs=%s&labels=%s&rm=1&"
				 "forcerm=1",
				 ei, ea, el);
			rc =
			    build_post(d, image, dir, path, &t, o, err, errlen);
			free(path);
		}
	}
	free(aj);
	free(ea);
	free(lj);
	free(el);
	free(ei);
	json_decref(args);
	image_tar_free(&t);
	return rc;
}
