/* `agentsafe doctor` internals: the Docker engine client it needs (a GET
 * over the engine's unix socket, doctor_docker.c) and the check table
 * (doctor.c). */
#ifndef AGENTSAFE_DOCTOR_H
#define AGENTSAFE_DOCTOR_H

#include <jansson.h>
#include <stddef.h>

/* The engine's socket: DOCKER_HOST=unix://PATH, else
 * /var/run/docker.sock. 0, or -EINVAL (a tcp:// DOCKER_HOST: doctor
 * cannot check it) with a sentence in err. */
int doctor_docker_socket(char *out, size_t len, char *err, size_t errlen);
/* GET path from the engine on sock. 0 with the HTTP status in *status and
 * the body (caller frees) in *body; -1 when the socket does not answer,
 * with curl's words in err. */
int doctor_docker_get(const char *sock, const char *path, long *status,
		      char **body, char *err, size_t errlen);

#endif
