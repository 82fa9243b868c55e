/* `agentsafe doctor`: one screen that checks what a sandboxed session needs
 * on this machine (privilege for the fence, kernel nftables, the Docker
 * engine, disk for images, cgroup v2, GPU runtime, WSL2) and says how to
 * fix each miss. Exit 0 when every required check passes, 1 otherwise. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "doctor.h"
#include "logread.h"
#include "version.h"

#define CGROUP2_MAGIC 0x63677270
#define GIB	      (1024.0 * 1024.0 * 1024.0)
/* The agent image and its build cache take a few GiB. */
#define DISK_MISS_GIB 2.0
#define DISK_WARN_GIB 8.0

enum status { ST_OK, ST_MISS, ST_WARN, ST_INFO, ST_SKIP };
static const char *const status_word[] = {"ok", "MISS", "warn", "info", ""};
static const char *const status_json[] = {"ok", "miss", "warn", "info", ""};

struct result {
	enum status st;
	char detail[512];
	char fix[512];
};

struct ctx {
	json_t *info; /* the engine's GET /info, NULL when unreachable */
	char sock[512];
	bool wsl;
};

static void say(struct result *r, enum status st, const char *fix,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void say(struct result *r, enum status st, const char *fix,
		const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(r->detail, sizeof r->detail, fmt, ap);
	va_end(ap);
	r->st = st;
	snprintf(r->fix, sizeof r->fix, "%s", fix != NULL ? fix : "");
}

/* ---- privilege: root, or the file capability on agentsafe-launch ---- */

static bool find_launcher(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *sl = strrchr(exe, '/');
		if (sl != NULL) {
			*sl = '\0';
			snprintf(out, len, "%s/agentsafe-launch", exe);
			if (access(out, X_OK) == 0)
				return true;
		}
	}
	const char *path = getenv("PATH");
	while (path != NULL && *path != '\0') {
		size_t k = strcspn(path, ":");
		snprintf(out, len, "%.*s/agentsafe-launch", (int)k, path);
		if (k > 0 && access(out, X_OK) == 0)
			return true;
		path += k + (path[k] == ':');
	}
	return false;
}

static void check_privilege(struct ctx *c, struct result *r)
{
	(void)c;
	char path[PATH_MAX + 32];
	if (!find_launcher(path, sizeof path)) {
		say(r, ST_MISS,
		    "install AgentSafe (the .deb, or cmake --install of a "
		    "build)",
		    "agentsafe-launch is neither next to agentsafe nor on "
		    "PATH");
		return;
	}
	bool has = false;
	cap_t fc = cap_get_file(path);
	if (fc != NULL) {
		cap_flag_value_t v = CAP_CLEAR;
		if (cap_get_flag(fc, CAP_NET_ADMIN, CAP_PERMITTED, &v) == 0)
			has = v == CAP_SET;
		cap_free(fc);
	}
	if (has)
		say(r, ST_OK, NULL, "%s has cap_net_admin (file capability)",
		    path);
	else if (geteuid() == 0)
		say(r, ST_OK, NULL,
		    "running as root; %s has no file "
		    "capability, so run it with sudo",
		    path);
	else {
		char fix[sizeof r->fix];
		int k = snprintf(fix, sizeof fix,
				 "sudo setcap cap_net_admin+p %s (or run "
				 "agentsafe-launch with sudo)",
				 path);
		if (k < 0 || (size_t)k >= sizeof fix)
			snprintf(fix, sizeof fix,
				 "sudo setcap cap_net_admin+p "
				 "$(command -v agentsafe-launch)");
		say(r, ST_MISS, fix,
		    "%s has no cap_net_admin and you are not root: it cannot "
		    "install the network fence",
		    path);
	}
}

/* ---- kernel nftables, tried in a scratch network namespace ---- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	(void)close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* The child: a new network namespace (a user namespace too when not
 * root), so the table is made and deleted where the host's ruleset is not.
 * Exit 90 when no namespace could be made, 127 when nft is missing. */
static void nft_child(int out)
{
	(void)dup2(out, STDOUT_FILENO);
	(void)dup2(out, STDERR_FILENO);
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (unshare(CLONE_NEWNET) != 0) {
		char map[64];
		if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
			dprintf(STDOUT_FILENO,
				"cannot make a network namespace: %s\n",
				strerror(errno));
			_exit(90);
		}
		snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
		(void)write_file("/proc/self/setgroups", "deny");
		(void)write_file("/proc/self/uid_map", map);
		snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
		(void)write_file("/proc/self/gid_map", map);
	}
	execlp("nft", "nft",
	       "add table inet agentsafe_doctor; delete table inet "
	       "agentsafe_doctor",
	       (char *)NULL);
	_exit(127);
}

static void check_nftables(struct ctx *c, struct result *r)
{
	(void)c;
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		say(r, ST_WARN, NULL, "pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		(void)close(p[0]);
		nft_child(p[1]);
	}
	(void)close(p[1]);
	char out[400] = "";
	size_t n = 0;
	ssize_t k;
	while (n + 1 < sizeof out &&
	       (k = read(p[0], out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	(void)close(p[0]);
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0) {
		say(r, ST_WARN, NULL, "fork: %s", strerror(errno));
		return;
	}
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	if (code == 0)
		say(r, ST_OK, NULL,
		    "made and deleted a table in a scratch network namespace");
	else if (code == 90)
		say(r, ST_WARN,
		    geteuid() == 0
			? "run doctor on the host, not in a container"
			: "run 'sudo agentsafe doctor' to check nftables",
		    "not checked: %s", out);
	else if (code == 127)
		say(r, ST_MISS, "sudo apt install nftables",
		    "the nft command is missing, so the kernel support was "
		    "not tried");
	else
		say(r, ST_MISS,
		    "load nf_tables (sudo modprobe nf_tables); on WSL2 use a "
		    "kernel with CONFIG_NF_TABLES (the default one has it)",
		    "the kernel refused a table in a scratch namespace: %s",
		    out);
}

/* ---- the Docker engine ---- */

static void check_docker(struct ctx *c, struct result *r)
{
	char err[512];
	if (doctor_docker_socket(c->sock, sizeof c->sock, err, sizeof err) !=
	    0) {
		say(r, ST_MISS, "unset DOCKER_HOST, or point it at unix://PATH",
		    "%s", err);
		return;
	}
	const char *start = "start it: sudo systemctl start docker (without "
			    "systemd: sudo dockerd &)";
	if (access(c->sock, F_OK) != 0) {
		say(r, ST_MISS, start, "no engine socket at %s", c->sock);
		return;
	}
	if (access(c->sock, R_OK | W_OK) != 0) {
		say(r, ST_MISS,
		    "sudo usermod -aG docker $USER, then log out and in (or "
		    "newgrp docker)",
		    "no access to %s: %s", c->sock, strerror(errno));
		return;
	}
	long status = 0;
	char *body = NULL;
	if (doctor_docker_get(c->sock, "/info", &status, &body, err,
			      sizeof err) != 0) {
		say(r, ST_MISS, start, "the engine at %s does not answer: %s",
		    c->sock, err);
		return;
	}
	json_error_t je;
	c->info = status == 200 ? json_loads(body, 0, &je) : NULL;
	free(body);
	if (!json_is_object(c->info)) {
		json_decref(c->info);
		c->info = NULL;
		say(r, ST_MISS, start, "GET /info on %s answered %ld", c->sock,
		    status);
		return;
	}
	const char *ver =
	    json_string_value(json_object_get(c->info, "ServerVersion"));
	const char *os =
	    json_string_value(json_object_get(c->info, "OperatingSystem"));
	if (os != NULL && strstr(os, "Docker Desktop") != NULL) {
		say(r, ST_MISS,
		    "install docker.io inside this Linux (WSL2 distribution) "
		    "and use that engine",
		    "Docker %s is Docker Desktop's engine: its containers run "
		    "in another VM the fence cannot reach",
		    ver ? ver : "?");
		return;
	}
	say(r, ST_OK, NULL, "Docker %s (%s) at %s", ver ? ver : "?",
	    os ? os : "?", c->sock);
}

static void check_disk(struct ctx *c, struct result *r)
{
	const char *root =
	    c->info
		? json_string_value(json_object_get(c->info, "DockerRootDir"))
		: NULL;
	if (root == NULL)
		root = "/var/lib/docker";
	struct statvfs sv;
	if (statvfs(root, &sv) != 0) {
		say(r, ST_WARN, NULL, "cannot see %s: %s", root,
		    strerror(errno));
		return;
	}
	double gib = (double)sv.f_bavail * (double)sv.f_frsize / GIB;
	if (gib < DISK_MISS_GIB)
		say(r, ST_MISS,
		    "free space there (docker system prune removes unused "
		    "images)",
		    "%.1f GiB free under %s: the agent image needs a few GiB",
		    gib, root);
	else if (gib < DISK_WARN_GIB)
		say(r, ST_WARN, "docker system prune removes unused images",
		    "%.1f GiB free under %s (tight for image builds)", gib,
		    root);
	else
		say(r, ST_OK, NULL, "%.1f GiB free under %s", gib, root);
}

static void check_cgroup(struct ctx *c, struct result *r)
{
	(void)c;
	struct statfs sf;
	if (statfs("/sys/fs/cgroup", &sf) == 0 &&
	    (unsigned long)sf.f_type == CGROUP2_MAGIC)
		say(r, ST_OK, NULL, "cgroup v2 (unified hierarchy)");
	else
		say(r, ST_WARN,
		    "boot with systemd.unified_cgroup_hierarchy=1 (WSL2: "
		    "kernelCommandLine in .wslconfig)",
		    "cgroup v1: the agent container's memory and pids limits "
		    "are enforced best on v2");
}

/* CDI spec files naming nvidia, under the usual spec dirs. */
static bool cdi_nvidia(char *where, size_t len)
{
	static const char *const dirs[] = {"/etc/cdi", "/var/run/cdi"};
	for (size_t i = 0; i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		if (d == NULL)
			continue;
		struct dirent *e;
		bool found = false;
		while (!found && (e = readdir(d)) != NULL) {
			if (strstr(e->d_name, "nvidia") != NULL) {
				snprintf(where, len, "%s/%s", dirs[i],
					 e->d_name);
				found = true;
			}
		}
		closedir(d);
		if (found)
			return true;
	}
	return false;
}

static void check_gpu(struct ctx *c, struct result *r)
{
	json_t *rt = c->info ? json_object_get(c->info, "Runtimes") : NULL;
	bool runtime = json_object_get(rt, "nvidia") != NULL;
	char cdi[300];
	bool spec = cdi_nvidia(cdi, sizeof cdi);
	bool dev = access("/dev/nvidiactl", F_OK) == 0;
	if ((runtime || spec) && !dev && access("/dev/dxg", F_OK) == 0)
		say(r, ST_WARN, NULL,
		    "a WSL2 GPU (/dev/dxg) with a GPU runtime, but "
		    "agentsafe-launch --gpu needs /dev/nvidiactl, which WSL2 "
		    "lacks: no GPU passthrough there yet");
	else if (runtime || spec)
		say(r, ST_OK, NULL, "%s%s%s%s", runtime ? "nvidia runtime" : "",
		    runtime && spec ? ", " : "", spec ? "CDI spec " : "",
		    spec ? cdi : "");
	else if (dev)
		say(r, ST_WARN,
		    "install nvidia-container-toolkit, then sudo nvidia-ctk "
		    "runtime configure --runtime=docker (or nvidia-ctk cdi "
		    "generate --output=/etc/cdi/nvidia.yaml)",
		    "an NVIDIA driver is here but no GPU runtime for Docker: "
		    "--gpu cannot pass it through");
	else
		say(r, ST_INFO, NULL, "no NVIDIA GPU (only needed for --gpu)");
}

static void check_wsl(struct ctx *c, struct result *r)
{
	FILE *f = fopen("/proc/version", "r");
	char v[512] = "";
	if (f != NULL) {
		if (fgets(v, sizeof v, f) == NULL)
			v[0] = '\0';
		(void)fclose(f);
	}
	for (char *p = v; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	c->wsl = strstr(v, "microsoft") != NULL || strstr(v, "wsl") != NULL;
	if (!c->wsl) {
		r->st = ST_SKIP;
		return;
	}
	say(r, ST_INFO, NULL,
	    "WSL2: nftables and a Docker engine installed in this "
	    "distribution work; Docker Desktop's engine is another machine "
	    "and cannot be fenced");
}

static const struct check {
	const char *name;
	bool required;
	void (*run)(struct ctx *, struct result *);
} checks[] = {
    {"privilege", true, check_privilege}, {"nftables", true, check_nftables},
    {"docker", true, check_docker},	  {"disk", true, check_disk},
    {"cgroup", false, check_cgroup},	  {"gpu", false, check_gpu},
    {"wsl2", false, check_wsl},
};
#define NCHECKS (sizeof checks / sizeof checks[0])

static void print_human(const struct result *res, size_t misses)
{
	printf("agentsafe doctor %s: what a sandboxed session needs here\n",
	       AGENTSAFE_VERSION_FULL);
	for (size_t i = 0; i < NCHECKS; i++) {
		const struct result *r = &res[i];
		if (r->st == ST_SKIP)
			continue;
		printf("  %-4s  %-10s ", status_word[r->st], checks[i].name);
		logread_fputs_escaped(r->detail, stdout);
		(void)fputc('\n', stdout);
		if (r->fix[0] != '\0' && r->st != ST_OK) {
			(void)fputs("        fix: ", stdout);
			logread_fputs_escaped(r->fix, stdout);
			(void)fputc('\n', stdout);
		}
	}
	if (misses == 0)
		printf("Every required check passed.\n");
	else
		printf("%zu required check%s failed: see the fix lines "
		       "above.\n",
		       misses, misses == 1 ? "" : "s");
}

static void print_json(const struct result *res, size_t misses)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < NCHECKS; i++) {
		const struct result *r = &res[i];
		if (r->st == ST_SKIP)
			continue;
		json_array_append_new(
		    arr,
		    json_pack("{s:s, s:s, s:b, s:s, s:s?}", "check",
			      checks[i].name, "status", status_json[r->st],
			      "required", checks[i].required, "detail",
			      r->detail, "fix", r->fix[0] ? r->fix : NULL));
	}
	json_t *o =
	    json_pack("{s:s, s:b, s:o}", "version", AGENTSAFE_VERSION_FULL,
		      "ok", misses == 0, "checks", arr);
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	(void)fputc('\n', stdout);
	json_decref(o);
}

int cli_doctor_main(int argc, char **argv)
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--help") == 0 ||
			   strcmp(argv[i], "-h") == 0) {
			(void)fputs(
			    "usage: agentsafe doctor [--json]\n"
			    "  Checks what a session needs (privilege for the "
			    "fence, kernel\n"
			    "  nftables, the Docker engine, disk, cgroup v2, "
			    "a GPU runtime for\n"
			    "  agentsafe-launch --gpu, WSL2)\n"
			    "  and says how to fix each miss. Exit 0 when "
			    "every "
			    "required check\n"
			    "  passes, 1 otherwise.\n",
			    stdout);
			return 0;
		} else {
			static const char *const opts[] = {"--json", "--help",
							   NULL};
			cli_unknown("agentsafe doctor",
				    argv[i][0] == '-' ? "option" : "argument",
				    argv[i], opts);
			return 2;
		}
	}
	(void)fflush(stdout); /* the nft child must not repeat our buffer */
	struct ctx c = {0};
	struct result res[NCHECKS];
	memset(res, 0, sizeof res);
	size_t misses = 0;
	for (size_t i = 0; i < NCHECKS; i++) {
		checks[i].run(&c, &res[i]);
		if (checks[i].required && res[i].st == ST_MISS)
			misses++;
	}
	json_decref(c.info);
	if (json)
		print_json(res, misses);
	else
		print_human(res, misses);
	return misses == 0 ? 0 : 1;
}
