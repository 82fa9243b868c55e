/* A small Docker Engine API client: JSON requests over the engine's unix
 * socket (libcurl CURLOPT_UNIX_SOCKET_PATH + jansson; DOCKER_HOST=unix://...
 * honoured, so Podman's socket works), streamed responses (build), raw
 * hijacked connections (attach), and the request bodies the launcher sends,
 * built by pure functions so tests can render and check them. */
#ifndef AGENTSAFE_LAUNCH_DOCKER_H
#define AGENTSAFE_LAUNCH_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct docker;

#define DOCKER_LABEL_SESSION "agentsafe.session"

/* Socket from DOCKER_HOST (unix:// only) or /var/run/docker.sock. */
int docker_new(struct docker **out, char *err, size_t errlen);
void docker_free(struct docker *d);
const char *docker_socket(const struct docker *d);

/* One request with an optional JSON body. *status gets the HTTP status;
 * *resp (if non-NULL) the parsed JSON response or NULL. A status >= 400 is
 * not an error here: callers decide (404 often means "absent"); err then
 * holds the engine's message. Returns 0 or -errno on transport failure. */
int docker_call(struct docker *d, const char *method, const char *path,
		const json_t *body, long *status, json_t **resp, char *err,
		size_t errlen);
/* The engine's {"message"} of an error answer, else "HTTP <status>". */
const char *docker_error_message(const json_t *resp, long status, char *buf,
				 size_t len);
/* Streams the response body in lines to cb (a line without its '\n').
 * body/ctype may be NULL. */
int docker_stream(struct docker *d, const char *method, const char *path,
		  const char *ctype, const void *body, size_t bodylen,
		  void (*cb)(const char *line, size_t len, void *arg),
		  void *arg, long *status, char *err, size_t errlen);
/* POST path with "Upgrade: tcp" and return the raw connection once the
 * engine answered 101/200; body (JSON text) may be NULL. */
int docker_hijack(struct docker *d, const char *path, const char *body, int *fd,
		  char *err, size_t errlen);

/* ---- container and network life cycle ----
 * Each returns 0 or -errno (-EIO for an unexpected status, err then
 * holding the engine's message when it sent one). */

struct docker_container_spec; /* below */

/* Force-remove a container with its volumes; absent counts as removed. */
int docker_delete_container(struct docker *d, const char *name, char *err,
			    size_t errlen);
/* Remove a network; absent counts as removed. */
int docker_delete_network(struct docker *d, const char *name, char *err,
			  size_t errlen);
int docker_create_container(struct docker *d, const char *name,
			    const struct docker_container_spec *sp, char *err,
			    size_t errlen);
int docker_start_container(struct docker *d, const char *name, char *err,
			   size_t errlen);
/* Blocks until the container ends; *code gets its exit status. */
int docker_wait_container(struct docker *d, const char *name, int *code,
			  char *err, size_t errlen);
/* The attach stream (stdout+stderr, stdin when in) as a descriptor the
 * caller owns, or -errno. Detach keys: ctrl-p ctrl-q. */
int docker_attach(struct docker *d, const char *name, bool in, char *err,
		  size_t errlen);

/* Percent-encode for a query string. Returns a malloc'd string or NULL. */
char *docker_urlencode(const char *s);

/* ---- request bodies ---- */

json_t *docker_network_body(const char *name, const char *bridge,
			    const char *session);

struct docker_port_range {
	uint16_t first, last;
};

struct docker_container_spec {
	const char *image;
	const char *const *entrypoint; /* NULL: the image's */
	const char *const *cmd;	       /* NULL-terminated; NULL: image's */
	const char *user;	       /* "uid:gid" */
	const char *workdir;
	const char *const *env;	  /* NULL-terminated "K=V" */
	const char *const *binds; /* NULL-terminated "src:dst[:ro]" */
	const char *network;
	const char *session;
	const char *dns; /* one nameserver address */
	bool tty, open_stdin, stdin_once, readonly_rootfs;
	int64_t memory, nano_cpus; /* 0: unset */
	const struct docker_port_range *publish;
	size_t npublish;
	json_t *device_requests; /* from gpu_plan(); NULL: none */
};
json_t *docker_container_body(const struct docker_container_spec *s);

/* Parse a docker multiplexed stream (attach without a TTY): feeds bytes,
 * calls out(stream, data, len) per frame payload (stream 1 stdout, 2
 * stderr). Returns 0 or -EPROTO on a bad header. */
struct docker_demux {
	unsigned char hdr[8];
	size_t hlen;
	uint32_t left;
	int stream;
};
int docker_demux_feed(struct docker_demux *m, const unsigned char *buf,
		      size_t len,
		      void (*out)(int stream, const unsigned char *data,
				  size_t len, void *arg),
		      void *arg);

#endif
