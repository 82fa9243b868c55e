/* GPU passthrough decision: what --gpu asks for against what the machine
 * and the engine offer, and the container's DeviceRequests for it. Pure, so
 * it is unit-tested on machines without a GPU. */
#ifndef AGENTSAFE_GPU_H
#define AGENTSAFE_GPU_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct gpu_env {
	bool nvidiactl;	     /* /dev/nvidiactl exists */
	bool nvidia_runtime; /* the engine lists an "nvidia" runtime */
	bool cdi;	     /* the engine reports CDI spec dirs */
};

/* mode: "auto", "all", "none" or a comma-separated list of GPU ids/UUIDs.
 * Returns 0 and *requests (a DeviceRequests array, or NULL for no GPU), or
 * -EINVAL with err saying what is missing and how to run without. With the
 * nvidia runtime: driver "nvidia" with capabilities [["gpu"]]; with CDI
 * only: driver "cdi" with nvidia.com/gpu=<id|all> device names. */
int gpu_plan(const char *mode, const struct gpu_env *env, json_t **requests,
	     char *err, size_t errlen);

/* Reads the environment: /dev/nvidiactl (under root, for tests) and the
 * engine's runtimes and CDI dirs (from a GET /info answer; NULL = unknown,
 * treated as absent). */
void gpu_probe(const json_t *info, const char *root, struct gpu_env *env);

#endif
