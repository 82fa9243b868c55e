/* The little of the Docker engine API `agentsafe doctor` needs: GET over
 * the engine's unix socket with libcurl (the launcher's own client is not
 * linked here: doctor must run where the launcher cannot). */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"

#define BODY_MAX ((size_t)4 << 20)

int doctor_docker_socket(char *out, size_t len, char *err, size_t errlen)
{
	const char *host = getenv("DOCKER_HOST");
	const char *path = "/var/run/docker.sock";
	if (host != NULL && host[0] != '\0') {
		if (strncmp(host, "unix://", 7) != 0) {
			snprintf(err, errlen,
				 "DOCKER_HOST=%s: only unix:// sockets are "
				 "checked (and used by agentsafe-launch)",
				 host);
			return -EINVAL;
		}
		path = host + 7;
	}
	int n = snprintf(out, len, "%s", path);
	if (n < 0 || (size_t)n >= len) {
		snprintf(err, errlen, "docker socket path too long");
		return -EINVAL;
	}
	return 0;
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t k = size * nmemb;
	if (b->n + k > BODY_MAX)
		return 0; /* an engine's /info is a few KiB */
	char *q = realloc(b->p, b->n + k + 1);
	if (q == NULL)
		return 0;
	memcpy(q + b->n, data, k);
	b->p = q;
	b->n += k;
	b->p[b->n] = '\0';
	return k;
}

int doctor_docker_get(const char *sock, const char *path, long *status,
		      char **body, char *err, size_t errlen)
{
	char url[512];
	snprintf(url, sizeof url, "http://localhost%s", path);
	struct buf b = {0};
	int rc = -1;
	CURL *c = curl_easy_init();
	if (c == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	CURLcode cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s",
			 cerr[0] != '\0' ? cerr : curl_easy_strerror(cc));
		free(b.p);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	*body = b.p != NULL ? b.p : strdup("");
	rc = *body != NULL ? 0 : -1;
out:
	curl_easy_cleanup(c);
	return rc;
}
