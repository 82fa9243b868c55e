/* Docker Engine API over a unix socket: one curl easy handle per call, the
 * answer collected in memory (bounded) and parsed with jansson; a streamed
 * variant for /build; a hand-written hijack for attach; request bodies. */
#include "docker.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>

#define DOCKER_ANSWER_MAX ((size_t)16 * 1024 * 1024)

struct docker {
	char sock[108];
};

int docker_new(struct docker **out, char *err, size_t errlen)
{
	*out = NULL;
	struct docker *d = calloc(1, sizeof *d);
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	const char *host = getenv("DOCKER_HOST");
	const char *path = "/var/run/docker.sock";
	if (host != NULL && *host != '\0') {
		if (strncmp(host, "unix://", 7) != 0) {
			snprintf(err, errlen,
				 "DOCKER_HOST=%s: only unix:// sockets are "
				 "supported",
				 host);
			free(d);
			return -EINVAL;
		}
		path = host + 7;
	}
	if (strlen(path) >= sizeof d->sock || *path == '\0') {
		snprintf(err, errlen, "docker socket path '%s' is too long",
			 path);
		free(d);
		return -ENAMETOOLONG;
	}
	memcpy(d->sock, path, strlen(path) + 1);
	*out = d;
	return 0;
}

void docker_free(struct docker *d)
{
	free(d);
}

const char *docker_socket(const struct docker *d)
{
	return d->sock;
}

struct answer {
	char *buf;
	size_t len;
	int too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;
	if (a->len + n > DOCKER_ANSWER_MAX) {
		a->too_big = 1;
		return 0;
	}
	char *nb = realloc(a->buf, a->len + n + 1);
	if (nb == NULL)
		return 0;
	a->buf = nb;
	memcpy(a->buf + a->len, ptr, n);
	a->len += n;
	a->buf[a->len] = '\0';
	return n;
}

const char *docker_error_message(const json_t *resp, long status, char *buf,
				 size_t len)
{
	const char *m = json_string_value(json_object_get(resp, "message"));
	if (m != NULL)
		snprintf(buf, len, "%s", m);
	else
		snprintf(buf, len, "HTTP %ld", status);
	return buf;
}

int docker_call(struct docker *d, const char *method, const char *path,
		const json_t *body, long *status, json_t **resp, char *err,
		size_t errlen)
{
	*status = 0;
	if (resp != NULL)
		*resp = NULL;
	CURL *c = curl_easy_init();
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	char url[4096];
	snprintf(url, sizeof url, "http://localhost%s", path);
	char *payload = NULL;
	struct curl_slist *hdrs = NULL;
	struct answer a = {0};
	int rc = 0;
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (body != NULL) {
		payload = json_dumps(body, JSON_COMPACT);
		if (payload == NULL) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	CURLcode cr = curl_easy_perform(c);
	if (cr != CURLE_OK) {
		rc = cr == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
		snprintf(err, errlen, "docker engine at %s: %s%s", d->sock,
			 curl_easy_strerror(cr),
			 a.too_big ? " (answer too large)" : "");
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	json_t *j = a.len > 0 ? json_loadb(a.buf, a.len, 0, NULL) : NULL;
	if (*status >= 400) {
		char m[512];
		snprintf(err, errlen, "%s %s: %s", method, path,
			 docker_error_message(j, *status, m, sizeof m));
	}
	if (resp != NULL)
		*resp = j;
	else
		json_decref(j);
out:
	free(a.buf);
	free(payload);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

struct streamer {
	char *buf;
	size_t len;
	void (*cb)(const char *line, size_t len, void *arg);
	void *arg;
};

static size_t on_stream(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct streamer *s = arg;
	size_t n = size * nmemb;
	/* A line longer than the cap is cut rather than grown. */
	if (s->len + n > DOCKER_ANSWER_MAX) {
		if (s->len > 0)
			s->cb(s->buf, s->len, s->arg);
		s->len = 0;
		if (n > DOCKER_ANSWER_MAX)
			return 0;
	}
	char *nb = realloc(s->buf, s->len + n + 1);
	if (nb == NULL)
		return 0;
	s->buf = nb;
	memcpy(s->buf + s->len, ptr, n);
	s->len += n;
	size_t start = 0;
	for (size_t i = 0; i < s->len; i++) {
		if (s->buf[i] == '\n') {
			s->buf[i] = '\0';
			s->cb(s->buf + start, i - start, s->arg);
			start = i + 1;
		}
	}
	memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
	return n;
}

int docker_stream(struct docker *d, const char *method, const char *path,
		  const char *ctype, const void *body, size_t bodylen,
		  void (*cb)(const char *line, size_t len, void *arg),
		  void *arg, long *status, char *err, size_t errlen)
{
	*status = 0;
	CURL *c = curl_easy_init();
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	char url[8192];
	snprintf(url, sizeof url, "http://localhost%s", path);
	struct curl_slist *hdrs = NULL;
	char ct[128];
	snprintf(ct, sizeof ct, "Content-Type: %s",
		 ctype ? ctype : "application/json");
	hdrs = curl_slist_append(hdrs, ct);
	struct streamer s = {.cb = cb, .arg = arg};
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)bodylen);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	CURLcode cr = curl_easy_perform(c);
	int rc = 0;
	if (cr != CURLE_OK) {
		rc = -EIO;
		snprintf(err, errlen, "docker engine at %s: %s", d->sock,
			 curl_easy_strerror(cr));
	} else {
		if (s.len > 0)
			cb(s.buf, s.len, arg);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	}
	free(s.buf);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

/* The status code of an "HTTP/1.x NNN ..." line, or 0 when it is not one. */
static int http_status(const char *line)
{
	if (strncmp(line, "HTTP/1.", 7) != 0)
		return 0;
	const char *p = line + 7;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p == line + 7 || *p != ' ')
		return 0;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return 0;
	char *end = NULL;
	errno = 0;
	long code = strtol(p, &end, 10);
	if (errno != 0 || code < 100 || code > 999 ||
	    (*end != ' ' && *end != '\r' && *end != '\n' && *end != '\0'))
		return 0;
	return (int)code;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int docker_hijack(struct docker *d, const char *path, const char *body, int *fd,
		  char *err, size_t errlen)
{
	/* libcurl cannot hand back an upgraded connection usable in both
	 * directions from our poll loop, so this one request is written by
	 * hand. */
	*fd = -1;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		int e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		snprintf(err, errlen, "docker engine at %s: %s", d->sock,
			 strerror(e));
		close(s);
		return -e;
	}
	size_t blen = body ? strlen(body) : 0;
	char head[4096];
	int hl = snprintf(head, sizeof head,
			  "POST %s HTTP/1.1\r\nHost: docker\r\n"
			  "Content-Type: application/json\r\n"
			  "Connection: Upgrade\r\nUpgrade: tcp\r\n"
			  "Content-Length: %zu\r\n\r\n",
			  path, blen);
	int rc = 0;
	if (hl < 0 || (size_t)hl >= sizeof head)
		rc = -ENAMETOOLONG;
	if (rc == 0)
		rc = write_all(s, head, (size_t)hl);
	if (rc == 0 && blen > 0)
		rc = write_all(s, body, blen);
	/* Read the answer head one byte at a time: whatever follows the
	 * blank line already belongs to the stream. */
	char resp[8192];
	size_t rl = 0;
	while (rc == 0) {
		if (rl + 1 >= sizeof resp) {
			rc = -EPROTO;
			break;
		}
		ssize_t r = read(s, resp + rl, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r == 0 ? -ECONNRESET : -errno;
			break;
		}
		rl++;
		if (rl >= 4 && memcmp(resp + rl - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	if (rc != 0) {
		snprintf(err, errlen, "docker engine at %s: POST %s: %s",
			 d->sock, path, strerror(-rc));
		close(s);
		return rc;
	}
	resp[rl] = '\0';
	int code = http_status(resp);
	if (code != 101 && code != 200) {
		/* An error answer: show its body when it comes right away. */
		char msg[512] = "";
		ssize_t r = read(s, msg, sizeof msg - 1);
		if (r > 0)
			msg[r] = '\0';
		char *nl = strchr(msg, '\n');
		if (nl)
			*nl = '\0';
		snprintf(err, errlen, "docker engine: POST %s: HTTP %d %s",
			 path, code, msg);
		close(s);
		return -EPROTO;
	}
	*fd = s;
	return 0;
}

char *docker_urlencode(const char *s)
{
	size_t n = strlen(s);
	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	char *o = malloc(n * 3 + 1);
	if (o == NULL)
		return NULL;
	static const char hex[] = "0123456789ABCDEF";
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~') {
			o[j++] = (char)ch;
		} else {
			o[j++] = '%';
			o[j++] = hex[ch >> 4];
			o[j++] = hex[ch & 15];
		}
	}
	o[j] = '\0';
	return o;
}

/* ---- bodies ---- */

/* ---- container and network life cycle ---- */

/* DELETE path; an absent object (404) is what was wanted. */
static int delete_object(struct docker *d, const char *path, char *err,
			 size_t errlen)
{
	long st = 0;
	int rc = docker_call(d, "DELETE", path, NULL, &st, NULL, err, errlen);
	if (rc == 0 && st >= 300 && st != 404)
		rc = -EIO;
	return rc;
}

int docker_delete_container(struct docker *d, const char *name, char *err,
			    size_t errlen)
{
	char path[512];
	(void)snprintf(path, sizeof path, "/containers/%s?force=1&v=1", name);
	return delete_object(d, path, err, errlen);
}

int docker_delete_network(struct docker *d, const char *name, char *err,
			  size_t errlen)
{
	char path[512];
	(void)snprintf(path, sizeof path, "/networks/%s", name);
	return delete_object(d, path, err, errlen);
}

int docker_create_container(struct docker *d, const char *name,
			    const struct docker_container_spec *sp, char *err,
			    size_t errlen)
{
	json_t *b = docker_container_body(sp);
	if (b == NULL)
		return -ENOMEM;
	char path[256];
	(void)snprintf(path, sizeof path, "/containers/create?name=%s", name);
	long st = 0;
	int rc = docker_call(d, "POST", path, b, &st, NULL, err, errlen);
	json_decref(b);
	if (rc == 0 && st != 201)
		rc = -EIO;
	return rc;
}

int docker_start_container(struct docker *d, const char *name, char *err,
			   size_t errlen)
{
	char path[256];
	(void)snprintf(path, sizeof path, "/containers/%s/start", name);
	long st = 0;
	int rc = docker_call(d, "POST", path, NULL, &st, NULL, err, errlen);
	if (rc == 0 && st != 204 && st != 304)
		rc = -EIO;
	return rc;
}

int docker_wait_container(struct docker *d, const char *name, int *code,
			  char *err, size_t errlen)
{
	char path[256];
	(void)snprintf(path, sizeof path, "/containers/%s/wait", name);
	long st = 0;
	json_t *r = NULL;
	int rc = docker_call(d, "POST", path, NULL, &st, &r, err, errlen);
	if (rc == 0 && st == 200)
		*code =
		    (int)json_integer_value(json_object_get(r, "StatusCode"));
	else
		rc = rc ? rc : -EIO;
	json_decref(r);
	return rc;
}

int docker_attach(struct docker *d, const char *name, bool in, char *err,
		  size_t errlen)
{
	char path[512];
	(void)snprintf(path, sizeof path,
		       "/containers/%s/attach?stream=1&stdout=1&stderr=1&"
		       "stdin=%d&detachKeys=ctrl-p,ctrl-q",
		       name, in ? 1 : 0);
	int fd = -1;
	int rc = docker_hijack(d, path, NULL, &fd, err, errlen);
	return rc == 0 ? fd : rc;
}

static json_t *strv(const char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && v != NULL && v[i] != NULL; i++) {
		if (json_array_append_new(a, json_string(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* json_object_set_new that remembers a failure instead of checking each. */
static void put(json_t *o, const char *k, json_t *v, int *bad)
{
	if (o == NULL || v == NULL || json_object_set_new(o, k, v) != 0) {
		if (o != NULL && v != NULL)
			json_decref(v);
		*bad = 1;
	}
}

json_t *docker_network_body(const char *name, const char *bridge,
			    const char *session)
{
	int bad = 0;
	json_t *b = json_object();
	json_t *opts = json_object();
	json_t *labels = json_object();
	put(opts, "com.docker.network.bridge.name", json_string(bridge), &bad);
	/* No masquerading: nothing from this network is NATed out even if a
	 * route appeared; no traffic between containers on it either. */
	put(opts, "com.docker.network.bridge.enable_ip_masquerade",
	    json_string("false"), &bad);
	put(opts, "com.docker.network.bridge.enable_icc", json_string("false"),
	    &bad);
	put(labels, DOCKER_LABEL_SESSION, json_string(session), &bad);
	put(b, "Name", json_string(name), &bad);
	put(b, "Driver", json_string("bridge"), &bad);
	put(b, "Internal", json_true(), &bad);
	put(b, "CheckDuplicate", json_true(), &bad);
	put(b, "EnableIPv6", json_false(), &bad);
	put(b, "Options", opts, &bad);
	put(b, "Labels", labels, &bad);
	if (bad) {
		json_decref(b);
		return NULL;
	}
	return b;
}

json_t *docker_container_body(const struct docker_container_spec *s)
{
	int bad = 0;
	json_t *b = json_object();
	json_t *hc = json_object();
	json_t *labels = json_object();
	put(b, "Image", json_string(s->image), &bad);
	if (s->entrypoint != NULL)
		put(b, "Entrypoint", strv(s->entrypoint), &bad);
	if (s->cmd != NULL)
		put(b, "Cmd", strv(s->cmd), &bad);
	if (s->user != NULL)
		put(b, "User", json_string(s->user), &bad);
	if (s->workdir != NULL)
		put(b, "WorkingDir", json_string(s->workdir), &bad);
	put(b, "Env", strv(s->env), &bad);
	put(b, "Tty", json_boolean(s->tty), &bad);
	put(b, "OpenStdin", json_boolean(s->open_stdin), &bad);
	put(b, "StdinOnce", json_boolean(s->stdin_once), &bad);
	put(b, "AttachStdin", json_boolean(s->open_stdin), &bad);
	put(b, "AttachStdout", json_true(), &bad);
	put(b, "AttachStderr", json_true(), &bad);
	put(labels, DOCKER_LABEL_SESSION, json_string(s->session), &bad);
	put(b, "Labels", labels, &bad);

	put(hc, "NetworkMode", json_string(s->network), &bad);
	put(hc, "Binds", strv(s->binds), &bad);
	put(hc, "CapDrop", json_pack("[s]", "ALL"), &bad);
	put(hc, "SecurityOpt", json_pack("[s]", "no-new-privileges"), &bad);
	put(hc, "Privileged", json_false(), &bad);
	put(hc, "ReadonlyRootfs", json_boolean(s->readonly_rootfs), &bad);
	put(hc, "Init", json_true(), &bad);
	put(hc, "AutoRemove", json_false(), &bad);
	/* The proxy resolves names; the container's resolver points at its
	 * own loopback where nothing answers. */
	put(hc, "Dns", s->dns ? json_pack("[s]", s->dns) : json_array(), &bad);
	put(hc, "DnsSearch", json_array(), &bad);
	if (s->memory > 0) {
		put(hc, "Memory", json_integer(s->memory), &bad);
		put(hc, "MemorySwap", json_integer(s->memory), &bad);
	}
	if (s->nano_cpus > 0)
		put(hc, "NanoCpus", json_integer(s->nano_cpus), &bad);
	put(hc, "PidsLimit", json_integer(4096), &bad);
	if (s->npublish > 0) {
		json_t *exposed = json_object();
		json_t *pb = json_object();
		for (size_t i = 0; i < s->npublish && !bad; i++) {
			for (unsigned p = s->publish[i].first;
			     p <= s->publish[i].last && !bad; p++) {
				char k[16], v[8];
				snprintf(k, sizeof k, "%u/tcp", p);
				snprintf(v, sizeof v, "%u", p);
				/* Loopback only: the agent's web port is for
				 * the user, not for the LAN. */
				put(exposed, k, json_object(), &bad);
				put(pb, k,
				    json_pack("[{s:s,s:s}]", "HostIp",
					      "127.0.0.1", "HostPort", v),
				    &bad);
			}
		}
		put(b, "ExposedPorts", exposed, &bad);
		put(hc, "PortBindings", pb, &bad);
	}
	if (s->device_requests != NULL)
		put(hc, "DeviceRequests", json_incref(s->device_requests),
		    &bad);
	put(b, "HostConfig", hc, &bad);
	if (bad) {
		json_decref(b);
		return NULL;
	}
	return b;
}

int docker_demux_feed(struct docker_demux *m, const unsigned char *buf,
		      size_t len,
		      void (*out)(int stream, const unsigned char *data,
				  size_t len, void *arg),
		      void *arg)
{
	size_t i = 0;
	while (i < len) {
		if (m->left == 0) {
			size_t need = 8 - m->hlen;
			size_t take = len - i < need ? len - i : need;
			memcpy(m->hdr + m->hlen, buf + i, take);
			m->hlen += take;
			i += take;
			if (m->hlen < 8)
				break;
			m->hlen = 0;
			if (m->hdr[0] > 2 || m->hdr[1] || m->hdr[2] ||
			    m->hdr[3])
				return -EPROTO;
			m->stream = m->hdr[0];
			m->left = (uint32_t)m->hdr[4] << 24 |
				  (uint32_t)m->hdr[5] << 16 |
				  (uint32_t)m->hdr[6] << 8 | m->hdr[7];
			continue;
		}
		size_t take = len - i < m->left ? len - i : m->left;
		out(m->stream, buf + i, take, arg);
		m->left -= (uint32_t)take;
		i += take;
	}
	return 0;
}
