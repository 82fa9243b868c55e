/* --gpu: auto passes every NVIDIA GPU when the driver and the engine's
 * nvidia runtime (or CDI) are both there, and nothing otherwise; an explicit
 * request the machine cannot honour is an error, never a silent CPU-only
 * run. */
#include "gpu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void gpu_probe(const json_t *info, const char *root, struct gpu_env *env)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/dev/nvidiactl", root ? root : "");
	env->nvidiactl = access(p, F_OK) == 0;
	env->nvidia_runtime = json_object_get(json_object_get(info, "Runtimes"),
					      "nvidia") != NULL;
	env->cdi = json_array_size(json_object_get(info, "CDISpecDirs")) > 0;
}

/* One DeviceRequests array; ids (NULL: all GPUs) is consumed. */
static json_t *request(json_t *ids, bool cdi)
{
	json_t *r = json_object();
	json_t *arr = json_array();
	if (r == NULL || arr == NULL) {
		json_decref(r);
		json_decref(arr);
		json_decref(ids);
		return NULL;
	}
	int bad = 0;
	if (cdi) {
		/* CDI names the devices; "all" is the spec's catch-all. */
		json_t *names = json_array();
		if (names == NULL)
			bad = 1;
		for (size_t i = 0; !bad && i < (ids ? json_array_size(ids) : 1);
		     i++) {
			char n[160];
			snprintf(n, sizeof n, "nvidia.com/gpu=%s",
				 ids ? json_string_value(json_array_get(ids, i))
				     : "all");
			bad |= json_array_append_new(names, json_string(n));
		}
		json_decref(ids);
		bad |= json_object_set_new(r, "Driver", json_string("cdi"));
		bad |= json_object_set_new(r, "DeviceIDs", names);
	} else {
		bad |= json_object_set_new(r, "Driver", json_string("nvidia"));
		if (ids != NULL) {
			bad |= json_object_set_new(r, "Count", json_integer(0));
			bad |= json_object_set_new(r, "DeviceIDs", ids);
		} else {
			bad |=
			    json_object_set_new(r, "Count", json_integer(-1));
		}
		bad |= json_object_set_new(r, "Capabilities",
					   json_pack("[[s]]", "gpu"));
	}
	bad |= json_array_append_new(arr, r);
	if (bad) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

int gpu_plan(const char *mode, const struct gpu_env *env, json_t **requests,
	     char *err, size_t errlen)
{
	*requests = NULL;
	if (mode == NULL || strcmp(mode, "none") == 0)
		return 0;
	bool engine = env->nvidia_runtime || env->cdi;
	bool ready = env->nvidiactl && engine;
	bool cdi = !env->nvidia_runtime;
	if (strcmp(mode, "auto") == 0) {
		if (!ready)
			return 0;
		*requests = request(NULL, cdi);
		return *requests != NULL ? 0 : -ENOMEM;
	}
	json_t *ids = NULL;
	if (strcmp(mode, "all") != 0) {
		/* A list of ids: digits or GPU-<uuid>, comma-separated. */
		ids = json_array();
		if (ids == NULL)
			return -ENOMEM;
		const char *p = mode;
		bool ok = *mode != '\0';
		while (ok && *p != '\0') {
			const char *e = strchr(p, ',');
			size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
			char id[128];
			ok = n > 0 && n < sizeof id && !(e && e[1] == '\0');
			for (size_t i = 0; ok && i < n; i++) {
				char ch = p[i];
				ok = (ch >= '0' && ch <= '9') ||
				     (ch >= 'a' && ch <= 'z') ||
				     (ch >= 'A' && ch <= 'Z') || ch == '-';
			}
			if (!ok)
				break;
			memcpy(id, p, n);
			id[n] = '\0';
			if (json_array_append_new(ids, json_string(id)) != 0) {
				json_decref(ids);
				return -ENOMEM;
			}
			p += n;
			if (*p == ',')
				p++;
		}
		if (!ok) {
			snprintf(err, errlen,
				 "--gpu %s: not auto, all, none or a list of "
				 "GPU ids (0,1 or GPU-<uuid>)",
				 mode);
			json_decref(ids);
			return -EINVAL;
		}
	}
	if (!ready) {
		json_decref(ids);
		snprintf(err, errlen,
			 "--gpu %s: %s; install the NVIDIA driver and the "
			 "NVIDIA Container Toolkit (nvidia runtime or CDI), "
			 "or run with --gpu none",
			 mode,
			 !env->nvidiactl ? "no NVIDIA driver on this machine "
					   "(/dev/nvidiactl is missing)"
					 : "the Docker engine offers neither "
					   "the nvidia runtime nor CDI");
		return -EINVAL;
	}
	*requests = request(ids, cdi);
	return *requests != NULL ? 0 : -ENOMEM;
}
