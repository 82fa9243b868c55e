/* The provenance note on a session's review branch (refs/notes/agentsafe):
 * who made the commits (session, agent, image, policy file digest) and
 * what the session did on the network, counted from its egress.log. The
 * records of the launch self-check (inside its window) are left out: they
 * are the probe's, not the agent's. */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "fsutil.h"
#include "logread.h"

#define NOTE_MAX_HOSTS	 64
#define NOTE_MAX_REASONS 48
#define NOTE_POLICY_MAX	 (4u << 20)

struct host_tally {
	char host[256];
	long long conns, up, down;
};

struct reason_tally {
	char key[80]; /* "deny not_allowed", "drop firewall" */
	long long n;
};

struct tally {
	struct host_tally hosts[NOTE_MAX_HOSTS];
	size_t nhosts;
	long long other_up, other_down, other_conns;
	struct reason_tally reasons[NOTE_MAX_REASONS];
	size_t nreasons;
	long long pushes, refused_pushes, fetches;
	long long up_ok, up_failed; /* --push-upstream */
	long long pr_failed;	    /* --pr */
};

static void add_host(struct tally *t, const struct logrec *r)
{
	long long up = r->bytes_up > 0 ? r->bytes_up : 0;
	long long down = r->bytes_down > 0 ? r->bytes_down : 0;
	for (size_t i = 0; i < t->nhosts; i++) {
		if (strcmp(t->hosts[i].host, r->host) == 0) {
			t->hosts[i].conns++;
			t->hosts[i].up += up;
			t->hosts[i].down += down;
			return;
		}
	}
	if (t->nhosts == NOTE_MAX_HOSTS || strlen(r->host) >= 256) {
		t->other_conns++;
		t->other_up += up;
		t->other_down += down;
		return;
	}
	struct host_tally *h = &t->hosts[t->nhosts++];
	(void)snprintf(h->host, sizeof h->host, "%s", r->host);
	h->conns = 1;
	h->up = up;
	h->down = down;
}

static void add_reason(struct tally *t, const char *event, const char *reason,
		       long long n)
{
	char key[80];
	(void)snprintf(key, sizeof key, "%s %s", event,
		       reason ? reason : "(none)");
	for (size_t i = 0; i < t->nreasons; i++) {
		if (strcmp(t->reasons[i].key, key) == 0) {
			t->reasons[i].n += n;
			return;
		}
	}
	if (t->nreasons == NOTE_MAX_REASONS)
		return;
	memcpy(t->reasons[t->nreasons].key, key, sizeof key);
	t->reasons[t->nreasons++].n = n;
}

static void tally_record(struct tally *t, const struct logrec *r)
{
	long long n = r->count > 0 ? r->count : 1;
	if (strcmp(r->event, "close") == 0 && r->host != NULL)
		add_host(t, r);
	else if (strcmp(r->event, "deny") == 0 || strcmp(r->event, "drop") == 0)
		add_reason(t, r->event, r->reason, n);
	else if (strcmp(r->event, "git") == 0 && r->op != NULL &&
		 strcmp(r->op, "push") == 0 && r->ref != NULL) {
		if (r->result != NULL && strcmp(r->result, "ok") == 0)
			t->pushes++;
		else
			t->refused_pushes++;
	} else if (strcmp(r->event, "git") == 0 && r->op != NULL &&
		   strcmp(r->op, "fetch") == 0) {
		t->fetches++;
	} else if (strcmp(r->event, "git") == 0 && r->op != NULL &&
		   strcmp(r->op, "push_upstream") == 0) {
		if (r->result != NULL && strcmp(r->result, "ok") == 0)
			t->up_ok++;
		else
			t->up_failed++;
	} else if (strcmp(r->event, "git") == 0 && r->op != NULL &&
		   strcmp(r->op, "pr") == 0 &&
		   (r->result == NULL || strcmp(r->result, "ok") != 0)) {
		t->pr_failed++;
	}
}

static int tally_log(const struct broker_note_in *in, struct tally *t)
{
	struct logread lr;
	struct logrec rec;
	char err[256];
	memset(&rec, 0, sizeof rec);
	if (logread_open(&lr, in->log_path, false, err, sizeof err) != 0)
		return -ENOENT;
	lr.quiet = true;
	int64_t s0 =
	    in->selfcheck_start ? logread_parse_ts(in->selfcheck_start) : -1;
	int64_t s1 =
	    in->selfcheck_end ? logread_parse_ts(in->selfcheck_end) : -1;
	while (logread_next(&lr, &rec) == 1) {
		bool probe =
		    s0 >= 0 && s1 >= 0 && rec.ts_ms >= s0 && rec.ts_ms <= s1;
		if (!probe)
			tally_record(t, &rec);
		logrec_clear(&rec);
	}
	logread_close(&lr);
	return 0;
}

static void policy_digest(const char *path, char *hex, size_t len)
{
	char *data = NULL;
	size_t n = 0;
	unsigned char md[SHA256_DIGEST_LENGTH];
	(void)snprintf(hex, len, "unreadable");
	if (path == NULL ||
	    fs_read_small(path, NOTE_POLICY_MAX, 0, &data, &n, NULL, 0) != 0)
		return;
	SHA256((const unsigned char *)data, n, md);
	free(data);
	for (size_t i = 0; i < sizeof md && 2 * i + 2 < len; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void put_counts(FILE *f, const struct tally *t)
{
	fprintf(f, "hosts:%s\n", t->nhosts == 0 ? " none" : "");
	for (size_t i = 0; i < t->nhosts; i++)
		fprintf(f, "  %s: %lld requests, %lld B up, %lld B down\n",
			t->hosts[i].host, t->hosts[i].conns, t->hosts[i].up,
			t->hosts[i].down);
	if (t->other_conns > 0)
		fprintf(f,
			"  (other hosts): %lld requests, %lld B up, %lld B "
			"down\n",
			t->other_conns, t->other_up, t->other_down);
	long long denied = 0, dropped = 0;
	for (size_t i = 0; i < t->nreasons; i++) {
		if (strncmp(t->reasons[i].key, "deny ", 5) == 0)
			denied += t->reasons[i].n;
		else
			dropped += t->reasons[i].n;
	}
	fprintf(f, "denied: %lld\n", denied);
	for (size_t i = 0; i < t->nreasons; i++)
		if (strncmp(t->reasons[i].key, "deny ", 5) == 0)
			fprintf(f, "  %s: %lld\n", t->reasons[i].key + 5,
				t->reasons[i].n);
	fprintf(f, "dropped: %lld\n", dropped);
	for (size_t i = 0; i < t->nreasons; i++)
		if (strncmp(t->reasons[i].key, "drop ", 5) == 0)
			fprintf(f, "  %s: %lld\n", t->reasons[i].key + 5,
				t->reasons[i].n);
	fprintf(f, "git: %lld fetches, %lld refs pushed, %lld refused\n",
		t->fetches, t->pushes, t->refused_pushes);
	if (t->up_ok + t->up_failed > 0)
		fprintf(f, "pushed upstream: %lld refs, %lld failed\n",
			t->up_ok, t->up_failed);
	if (t->pr_failed > 0)
		fprintf(f, "draft pull requests failed: %lld\n", t->pr_failed);
}

char *broker_note_text(const struct broker_note_in *in)
{
	struct tally *t = calloc(1, sizeof *t);
	char *buf = NULL, hex[2 * SHA256_DIGEST_LENGTH + 1];
	size_t len = 0;
	if (t == NULL)
		return NULL;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL) {
		free(t);
		return NULL;
	}
	bool counted = tally_log(in, t) == 0;
	policy_digest(in->policy_path, hex, sizeof hex);
	fprintf(f, "agentsafe session %s\n", in->session_id);
	fprintf(f, "agent: %s\n", in->agent ? in->agent : "?");
	fprintf(f, "image: %s (%s)\n", in->image ? in->image : "?",
		in->image_id ? in->image_id : "id unknown");
	fprintf(f, "policy: %s sha256:%s\n",
		in->policy_path ? in->policy_path : "?", hex);
	if (counted)
		put_counts(f, t);
	else
		fprintf(f, "egress.log %s unreadable: no counts\n",
			in->log_path);
	if (in->upstream_errors != NULL)
		*in->upstream_errors = (long)t->up_failed;
	if (in->pr_errors != NULL)
		*in->pr_errors = (long)t->pr_failed;
	fprintf(f, "log: agentsafe log --session %s\n", in->session_id);
	free(t);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
