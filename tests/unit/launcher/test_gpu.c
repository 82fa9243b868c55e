/* --gpu decisions against every machine/engine combination, and the
 * DeviceRequests they render (the machines here have no GPU). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

static char *plan(const char *mode, struct gpu_env env, int want_rc,
		  const char *err_needle)
{
	json_t *r = (json_t *)1;
	char err[512] = "";
	int rc = gpu_plan(mode, &env, &r, err, sizeof err);
	assert_int_equal(rc, want_rc);
	if (err_needle != NULL && strstr(err, err_needle) == NULL)
		fail_msg("'%s' lacks '%s'", err, err_needle);
	if (r == NULL)
		return NULL;
	char *s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(r);
	return s;
}

static void expect(const char *mode, struct gpu_env env, const char *json)
{
	char *s = plan(mode, env, 0, NULL);
	if (json == NULL) {
		assert_null(s);
		return;
	}
	assert_non_null(s);
	assert_string_equal(s, json);
	free(s);
}

static const struct gpu_env none = {false, false, false};
static const struct gpu_env full = {true, true, false};
static const struct gpu_env cdi = {true, false, true};
static const struct gpu_env driver_only = {true, false, false};
static const struct gpu_env engine_only = {false, true, true};

static void auto_passes_gpus_only_when_all_is_there(void **state)
{
	(void)state;
	expect("auto", none, NULL);
	expect("auto", driver_only, NULL);
	expect("auto", engine_only, NULL);
	expect("auto", full,
	       "[{\"Capabilities\":[[\"gpu\"]],\"Count\":-1,"
	       "\"Driver\":\"nvidia\"}]");
	expect("auto", cdi,
	       "[{\"DeviceIDs\":[\"nvidia.com/gpu=all\"],\"Driver\":\"cdi\"}]");
}

static void none_never_passes_gpus(void **state)
{
	(void)state;
	expect("none", full, NULL);
	expect("none", none, NULL);
}

static void explicit_requests_render(void **state)
{
	(void)state;
	expect("all", full,
	       "[{\"Capabilities\":[[\"gpu\"]],\"Count\":-1,"
	       "\"Driver\":\"nvidia\"}]");
	expect("0,GPU-1a2b", full,
	       "[{\"Capabilities\":[[\"gpu\"]],\"Count\":0,"
	       "\"DeviceIDs\":[\"0\",\"GPU-1a2b\"],\"Driver\":\"nvidia\"}]");
	expect("1", cdi,
	       "[{\"DeviceIDs\":[\"nvidia.com/gpu=1\"],\"Driver\":\"cdi\"}]");
}

static void explicit_requests_fail_clearly_without_gpu(void **state)
{
	(void)state;
	assert_null(plan("all", none, -EINVAL, "/dev/nvidiactl is missing"));
	assert_null(plan("all", none, -EINVAL, "--gpu none"));
	assert_null(plan("0", driver_only, -EINVAL,
			 "neither the nvidia runtime nor CDI"));
	assert_null(plan("0,,1", full, -EINVAL, "list of GPU ids"));
	assert_null(plan("0,", full, -EINVAL, "list of GPU ids"));
	assert_null(plan("", full, -EINVAL, "list of GPU ids"));
	assert_null(plan("0;rm", full, -EINVAL, "list of GPU ids"));
}

static void probe_reads_engine_info(void **state)
{
	(void)state;
	json_t *info = json_pack("{s:{s:{},s:{}},s:[s]}", "Runtimes", "runc",
				 "nvidia", "CDISpecDirs", "/etc/cdi");
	struct gpu_env e;
	gpu_probe(info, "/nonexistent-root", &e);
	assert_false(e.nvidiactl);
	assert_true(e.nvidia_runtime);
	assert_true(e.cdi);
	json_decref(info);
	gpu_probe(NULL, "/nonexistent-root", &e);
	assert_false(e.nvidia_runtime);
	assert_false(e.cdi);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(auto_passes_gpus_only_when_all_is_there),
	    cmocka_unit_test(none_never_passes_gpus),
	    cmocka_unit_test(explicit_requests_render),
	    cmocka_unit_test(explicit_requests_fail_clearly_without_gpu),
	    cmocka_unit_test(probe_reads_engine_info),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
