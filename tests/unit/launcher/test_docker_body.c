/* Docker Engine API request bodies rendered and checked field by field
 * (the fence depends on the bridge name; the sandbox on CapDrop, no new
 * privileges, DNS pointing nowhere), plus the attach stream demultiplexer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "docker.h"

static const char *str_at(json_t *o, const char *path)
{
	/* path: dot-separated object keys */
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	json_t *cur = o;
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k;
	     k = strtok_r(NULL, ".", &save))
		cur = json_object_get(cur, k);
	return json_string_value(cur);
}

static void network_body_is_internal_with_our_bridge(void **state)
{
	(void)state;
	json_t *b = docker_network_body("agentsafe-abc", "as-abc", "abc");
	assert_non_null(b);
	assert_string_equal(str_at(b, "Name"), "agentsafe-abc");
	assert_true(json_is_true(json_object_get(b, "Internal")));
	assert_false(json_is_true(json_object_get(b, "EnableIPv6")));
	json_t *o = json_object_get(b, "Options");
	assert_string_equal(json_string_value(json_object_get(
				o, "com.docker.network.bridge.name")),
			    "as-abc");
	assert_string_equal(
	    json_string_value(json_object_get(
		o, "com.docker.network.bridge.enable_ip_masquerade")),
	    "false");
	/* No traffic between containers on the session network. */
	assert_string_equal(json_string_value(json_object_get(
				o, "com.docker.network.bridge.enable_icc")),
			    "false");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(b, "Labels"),
					      DOCKER_LABEL_SESSION)),
	    "abc");
	json_decref(b);
}

static void container_body_drops_everything(void **state)
{
	(void)state;
	const char *cmd[] = {"sh", "-c", "exit 3", NULL};
	const char *env[] = {"HTTPS_PROXY=http://172.30.0.1:3128", NULL};
	const char *binds[] = {"/c/repo:/work/repo", "/h/objs:/h/objs:ro",
			       NULL};
	struct docker_port_range pr[] = {{8000, 8002}};
	json_t *gpu = json_pack("[{s:s,s:i}]", "Driver", "nvidia", "Count", -1);
	struct docker_container_spec s = {
	    .image = "agentsafe-agent:latest",
	    .cmd = cmd,
	    .user = "1000:1000",
	    .workdir = "/work",
	    .env = env,
	    .binds = binds,
	    .network = "agentsafe-abc",
	    .session = "abc",
	    .dns = "127.0.0.1",
	    .tty = false,
	    .open_stdin = true,
	    .stdin_once = true,
	    .memory = 1 << 30,
	    .nano_cpus = 1500000000,
	    .publish = pr,
	    .npublish = 1,
	    .device_requests = gpu,
	};
	json_t *b = docker_container_body(&s);
	assert_non_null(b);
	json_decref(gpu); /* the body holds its own reference */
	char *text = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(text);
	assert_string_equal(str_at(b, "User"), "1000:1000");
	assert_string_equal(str_at(b, "HostConfig.NetworkMode"),
			    "agentsafe-abc");
	assert_non_null(strstr(text, "\"CapDrop\":[\"ALL\"]"));
	assert_null(strstr(text, "CapAdd"));
	assert_non_null(
	    strstr(text, "\"SecurityOpt\":[\"no-new-privileges\"]"));
	assert_non_null(strstr(text, "\"Privileged\":false"));
	assert_non_null(strstr(text, "\"Init\":true"));
	assert_non_null(strstr(text, "\"PidsLimit\":4096"));
	assert_non_null(strstr(text, "\"Dns\":[\"127.0.0.1\"]"));
	assert_non_null(strstr(text, "\"Cmd\":[\"sh\",\"-c\",\"exit 3\"]"));
	assert_null(strstr(text, "Entrypoint")); /* the image's */
	assert_non_null(strstr(text, "\"Binds\":[\"/c/repo:/work/repo\","
				     "\"/h/objs:/h/objs:ro\"]"));
	assert_non_null(strstr(text, "\"Memory\":1073741824"));
	assert_non_null(strstr(text, "\"MemorySwap\":1073741824"));
	assert_non_null(strstr(text, "\"NanoCpus\":1500000000"));
	assert_non_null(strstr(text, "\"8001/tcp\":[{\"HostIp\":\"127.0.0.1\","
				     "\"HostPort\":\"8001\"}]"));
	assert_null(strstr(text, "8003/tcp"));
	assert_non_null(strstr(text, "\"DeviceRequests\":[{\"Count\":-1,"
				     "\"Driver\":\"nvidia\"}]"));
	assert_non_null(strstr(text, "\"Labels\":{\"agentsafe.session\":"
				     "\"abc\"}"));
	assert_non_null(strstr(text, "\"StdinOnce\":true"));
	assert_non_null(strstr(text, "\"Tty\":false"));
	free(text);
	json_decref(b);

	/* Minimal: no limits, no ports, no GPU keys at all. */
	struct docker_container_spec m = {
	    .image = "i", .network = "n", .session = "s"};
	b = docker_container_body(&m);
	assert_non_null(b);
	text = json_dumps(b, JSON_COMPACT);
	assert_null(strstr(text, "Memory"));
	assert_null(strstr(text, "PortBindings"));
	assert_null(strstr(text, "DeviceRequests"));
	assert_non_null(strstr(text, "\"Dns\":[]"));
	free(text);
	json_decref(b);
}

struct sink {
	char out[64], errs[64];
	size_t no, ne;
};

static void collect(int stream, const unsigned char *d, size_t n, void *arg)
{
	struct sink *s = arg;
	char *dst = stream == 2 ? s->errs : s->out;
	size_t *len = stream == 2 ? &s->ne : &s->no;
	assert_true(*len + n < 64);
	memcpy(dst + *len, d, n);
	*len += n;
}

static void demux_splits_frames_fed_byte_by_byte(void **state)
{
	(void)state;
	const unsigned char stream[] = {1,   0, 0, 0, 0, 0, 0, 3, 'o', 'u',
					't', 2, 0, 0, 0, 0, 0, 0, 2,   'e',
					'r', 1, 0, 0, 0, 0, 0, 0, 1,   '!'};
	struct docker_demux m = {0};
	struct sink s = {0};
	for (size_t i = 0; i < sizeof stream; i++)
		assert_int_equal(
		    docker_demux_feed(&m, stream + i, 1, collect, &s), 0);
	assert_int_equal(s.no, 4);
	assert_memory_equal(s.out, "out!", 4);
	assert_int_equal(s.ne, 2);
	assert_memory_equal(s.errs, "er", 2);
	struct docker_demux m2 = {0};
	struct sink s2 = {0};
	const unsigned char bad[] = {7, 0, 0, 0, 0, 0, 0, 1, 'x'};
	assert_int_equal(docker_demux_feed(&m2, bad, sizeof bad, collect, &s2),
			 -EPROTO);
}

static void urlencode_escapes_json(void **state)
{
	(void)state;
	char *e = docker_urlencode("{\"USER_UID\":\"1000\"}");
	assert_string_equal(e, "%7B%22USER_UID%22%3A%221000%22%7D");
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(network_body_is_internal_with_our_bridge),
	    cmocka_unit_test(container_body_drops_everything),
	    cmocka_unit_test(demux_splits_frames_fed_byte_by_byte),
	    cmocka_unit_test(urlencode_escapes_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
