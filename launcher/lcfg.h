/* agentsafe-launch configuration: config.yaml (libyaml, errors as
 * FILE:LINE:COL) merged with command-line flags (flags win). Pure parsing:
 * nothing here touches the network, Docker or the file system beyond
 * reading the config file. */
#ifndef AGENTSAFE_LAUNCH_LCFG_H
#define AGENTSAFE_LAUNCH_LCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LCFG_MAX_LIST 64

enum lcfg_cmd {
	LCFG_RUN,
	LCFG_ATTACH,
	LCFG_STOP,
	LCFG_LS,
	LCFG_HELP,
	LCFG_VERSION
};

struct lcfg_ports {
	uint16_t first, last; /* inclusive */
	char addr[16];	      /* IPv4 to bind on the host; "": 127.0.0.1 */
};

struct lcfg_list {
	char *v[LCFG_MAX_LIST];
	size_t n;
};

struct lcfg {
	enum lcfg_cmd cmd;
	char *target; /* attach/stop NAME */
	char *config_file;
	char *agent; /* claude | codex | shell */
	char *image;
	char *policy;
	char *container_dir;
	char *ca_bundle;
	char *gpu; /* auto | all | none | ID,... */
	char *name;
	char *hosts;
	char *dns;
	char *upstream;	   /* --upstream: git remote the broker fetches first */
	int64_t memory;	   /* bytes; 0: unset */
	int64_t nano_cpus; /* 1e9 per CPU; 0: unset */
	struct lcfg_list repos, build_args, probe_allow, probe_deny;
	struct lcfg_ports publish[LCFG_MAX_LIST];
	size_t npublish;
	uint16_t ssh_port; /* long-lived mode's sshd; 0: none */
	char ssh_addr[16]; /* where it is published; "": 127.0.0.1 */
	bool build, detach, no_verify, keep;
	bool no_repo; /* --no-repo: no repo is fine (flag only) */
	bool ask;     /* --ask: unknown hosts wait for approval (flag only) */
	bool push_upstream; /* --push-upstream (flag only) */
	bool pr;	    /* --pr: draft pull requests (flag only) */
	bool verbose;	    /* -v: the image build's every line (flag only) */
	bool timings; /* --timings: print each phase's ms (command line only) */
	bool learn;   /* --learn: learn mode (command line only) */
	int build_set, detach_set, no_verify_set, keep_set; /* flags given */
	char **command; /* after `--`; points into argv; NULL-terminated */
	size_t ncommand;
};

void lcfg_init(struct lcfg *c);
void lcfg_free(struct lcfg *c);

/* Parse argv (argv[0] is the program). Returns 0, or -EINVAL with a
 * sentence naming the offending argument. */
int lcfg_parse_args(struct lcfg *c, int argc, char **argv, char *err,
		    size_t errlen);
/* Load a config.yaml into c. Returns 0, -ENOENT when the file does not
 * exist, or -EINVAL with "FILE:LINE:COL: message". */
int lcfg_load_file(struct lcfg *c, const char *path, char *err, size_t errlen);
/* Same, from a buffer; name is used in messages. */
int lcfg_load_buffer(struct lcfg *c, const char *name, const char *buf,
		     size_t len, char *err, size_t errlen);
/* Move every value set in over into base (over wins; lists replace). */
void lcfg_merge(struct lcfg *base, struct lcfg *over);
/* Fill in what neither file nor flags set (agent, image, gpu). */
int lcfg_finish(struct lcfg *c, char *err, size_t errlen);

/* Value parsers, exposed for tests. */
int lcfg_parse_memory(const char *s, int64_t *out);
int lcfg_parse_cpus(const char *s, int64_t *nano);
int lcfg_parse_ports(const char *s, struct lcfg_ports *out);
/* [ADDR:]PORT[-PORT] with ADDR an IPv4 address (written canonical to
 * out->addr; "" when absent). */
int lcfg_parse_bind(const char *s, struct lcfg_ports *out);
/* Whether a bind address stays on this machine (127.0.0.0/8, or ""). */
bool lcfg_bind_is_loopback(const char *addr);
/* HOST[:PORT] with a default port. host is written to hostbuf. */
int lcfg_parse_target(const char *s, char *hostbuf, size_t hostlen,
		      uint16_t *port, uint16_t defport);

void lcfg_usage(FILE *f);

#endif
