/* The agent image: present or not, and (re)built from the container/
 * context with POST /build and a tar made in memory. */
#ifndef AGENTSAFE_LAUNCH_IMAGE_H
#define AGENTSAFE_LAUNCH_IMAGE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct docker;

struct image_tar {
	unsigned char *data;
	size_t len, cap;
};

/* Append a directory tree (regular files, directories, symlinks; no
 * following) under the archive root, then optional extra files. */
int image_tar_dir(struct image_tar *t, const char *dir, char *err,
		  size_t errlen);
int image_tar_file(struct image_tar *t, const char *name, const void *data,
		   size_t len, unsigned mode);
int image_tar_finish(struct image_tar *t);
void image_tar_free(struct image_tar *t);

/* 1 present, 0 absent, -errno on engine failure. With labels non-NULL and
 * the image present, *labels is its Config.Labels object (caller decrefs;
 * an empty object when it has none). */
int image_exists(struct docker *d, const char *image, json_t **labels,
		 char *err, size_t errlen);
/* Where a build's output goes: the whole of it (escape sequences removed)
 * to log_path, and one live status line (the current step) on stderr, or
 * every line with verbose. On failure the log's end is shown. */
struct image_build_out {
	const char *log_path; /* NULL: no log, every line on stderr */
	bool verbose;
};

/* Build image from dir; build_args "K=V" (NULL-terminated); ca_pem (may be
 * NULL: none) is added as extra-ca.pem with EXTRA_CA=extra-ca.pem; labels
 * (may be NULL) are set on the image; o (may be NULL: every line on
 * stderr) says where the output goes. */
int image_build(struct docker *d, const char *image, const char *dir,
		const char *const *build_args, const char *ca_pem,
		size_t ca_len, json_t *labels, const struct image_build_out *o,
		char *err, size_t errlen);

#endif
