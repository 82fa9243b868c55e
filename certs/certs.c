/* Loads and checks an extra CA bundle: PEM blocks are found line by line
 * (so errors can name a line), each is decoded by OpenSSL and must be a
 * current CA certificate; the result is re-emitted as canonical PEM. */
#include "certs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct certs_bundle {
	X509 **certs;
	char **subjects;
	size_t n;
	char *pem;
	size_t pem_len;
	size_t skipped; /* expired or not yet valid: dropped, not fatal */
};

static const char begin_cert[] = "-----BEGIN CERTIFICATE-----";
static const char end_cert[] = "-----END CERTIFICATE-----";

void certs_bundle_free(struct certs_bundle *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++) {
		X509_free(b->certs[i]);
		free(b->subjects[i]);
	}
	free(b->certs);
	free(b->subjects);
	free(b->pem);
	free(b);
}

size_t certs_bundle_count(const struct certs_bundle *b)
{
	return b->n;
}

const char *certs_bundle_pem(const struct certs_bundle *b, size_t *len)
{
	if (len != NULL)
		*len = b->pem_len;
	return b->pem;
}

const char *certs_bundle_subject(const struct certs_bundle *b, size_t i)
{
	return i < b->n ? b->subjects[i] : NULL;
}

/* A line without its terminator; trailing CR and blanks ignored so bundles
 * written on Windows load too. */
static int line_is(const char *line, size_t len, const char *want)
{
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
			   line[len - 1] == '\t'))
		len--;
	return len == strlen(want) && memcmp(line, want, len) == 0;
}

static char *subject_of(X509 *x)
{
	BIO *mem = BIO_new(BIO_s_mem());
	char *out = NULL;
	if (mem == NULL)
		return NULL;
	if (X509_NAME_print_ex(mem, X509_get_subject_name(x), 0,
			       XN_FLAG_RFC2253) >= 0) {
		char *data = NULL;
		long n = BIO_get_mem_data(mem, &data);
		if (n >= 0) {
			out = malloc((size_t)n + 1);
			if (out != NULL) {
				memcpy(out, data, (size_t)n);
				out[n] = '\0';
			}
		}
	}
	BIO_free(mem);
	return out;
}

size_t certs_bundle_skipped(const struct certs_bundle *b)
{
	return b->skipped;
}

/* Checks one decoded certificate; 0, 1 for "outside its validity period"
 * (skipped, as OpenSSL would never use it), or -EINVAL with err naming it. */
static int check_cert(const char *name, unsigned line, X509 *x, char *err,
		      size_t errlen)
{
	const ASN1_TIME *not_after = X509_get0_notAfter(x);
	const ASN1_TIME *not_before = X509_get0_notBefore(x);
	/* X509_check_ca: 1 basicConstraints CA:TRUE, 3 self-signed v1 root,
	 * 4/5 keyUsage/Netscape CA marks; 0 means an end-entity certificate,
	 * which must not be trusted as an issuer. */
	if (X509_check_ca(x) == 0) {
		snprintf(err, errlen,
			 "%s:%u: certificate is not a CA certificate (no "
			 "basicConstraints CA:TRUE); a CA bundle must hold the "
			 "issuing CA, not a server certificate",
			 name, line);
		return -EINVAL;
	}
	/* System bundles carry a few roots past their end date; they are
	 * harmless (never chosen by a verifier) and refusing the host's own
	 * bundle would be absurd, so they are dropped and counted. */
	if (not_after == NULL || X509_cmp_current_time(not_after) < 0 ||
	    not_before == NULL || X509_cmp_current_time(not_before) > 0)
		return 1;
	return 0;
}

static int append_cert(struct certs_bundle *b, X509 *x)
{
	for (size_t i = 0; i < b->n; i++)
		if (X509_cmp(b->certs[i], x) == 0)
			return 0; /* duplicate: keep the first */
	/* an array of pointers: sizeof(*nc) is meant */
	X509 **nc = realloc(
	    b->certs,
	    (b->n + 1) * sizeof(*nc)); // NOLINT(bugprone-sizeof-expression)
	if (nc == NULL)
		return -ENOMEM;
	b->certs = nc;
	char **ns = realloc(b->subjects, (b->n + 1) * sizeof(*ns));
	if (ns == NULL)
		return -ENOMEM;
	b->subjects = ns;
	char *subj = subject_of(x);
	if (subj == NULL)
		return -ENOMEM;
	b->certs[b->n] = x;
	b->subjects[b->n] = subj;
	b->n++;
	return 1;
}

static int render_pem(struct certs_bundle *b, char *err, size_t errlen)
{
	BIO *mem = BIO_new(BIO_s_mem());
	int rc = -ENOMEM;
	if (mem == NULL)
		goto out;
	for (size_t i = 0; i < b->n; i++)
		if (PEM_write_bio_X509(mem, b->certs[i]) != 1)
			goto out;
	char *data = NULL;
	long n = BIO_get_mem_data(mem, &data);
	if (n < 0)
		goto out;
	b->pem = malloc((size_t)n + 1);
	if (b->pem == NULL)
		goto out;
	memcpy(b->pem, data, (size_t)n);
	b->pem[n] = '\0';
	b->pem_len = (size_t)n;
	rc = 0;
out:
	if (rc != 0)
		snprintf(err, errlen, "out of memory rendering the CA bundle");
	BIO_free(mem);
	return rc;
}

int certs_bundle_parse(const char *name, const char *pem, size_t len,
		       struct certs_bundle **out, char *err, size_t errlen)
{
	*out = NULL;
	if (len > CERTS_MAX_BYTES) {
		snprintf(err, errlen, "%s: bundle is larger than %zu bytes",
			 name, CERTS_MAX_BYTES);
		return -EFBIG;
	}
	struct certs_bundle *b = calloc(1, sizeof(*b));
	if (b == NULL) {
		snprintf(err, errlen, "out of memory reading %s", name);
		return -ENOMEM;
	}
	int rc = 0;
	size_t pos = 0, block_start = 0;
	unsigned lineno = 0, block_line = 0;
	int in_block = 0;
	while (pos < len) {
		const char *line = pem + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		size_t next = pos + llen + (nl != NULL ? 1 : 0);
		lineno++;
		if (memchr(line, '\0', llen) != NULL) {
			snprintf(err, errlen, "%s:%u: NUL byte in a PEM file",
				 name, lineno);
			rc = -EINVAL;
			goto fail;
		}
		if (!in_block) {
			if (line_is(line, llen, begin_cert)) {
				in_block = 1;
				block_start = pos;
				block_line = lineno;
			} else if (llen >= 11 &&
				   memcmp(line, "-----BEGIN ", 11) == 0) {
				snprintf(err, errlen,
					 "%s:%u: %.*s: only CERTIFICATE blocks "
					 "belong in a CA bundle",
					 name, lineno,
					 (int)(llen > 60 ? 60 : llen), line);
				rc = -EINVAL;
				goto fail;
			}
		} else if (line_is(line, llen, end_cert)) {
			in_block = 0;
			BIO *bio = BIO_new_mem_buf(pem + block_start,
						   (int)(next - block_start));
			X509 *x = bio != NULL
				      ? PEM_read_bio_X509(bio, NULL, NULL, NULL)
				      : NULL;
			BIO_free(bio);
			if (x == NULL) {
				snprintf(err, errlen,
					 "%s:%u: certificate does not decode "
					 "(bad base64 or DER)",
					 name, block_line);
				rc = -EINVAL;
				goto fail;
			}
			rc = check_cert(name, block_line, x, err, errlen);
			if (rc == 1) {
				b->skipped++;
				rc = 0;
				X509_free(x);
				x = NULL;
			} else if (rc == 0 && b->n >= CERTS_MAX_CERTS) {
				snprintf(err, errlen,
					 "%s:%u: more than %d certificates",
					 name, block_line, CERTS_MAX_CERTS);
				rc = -EFBIG;
			}
			if (rc == 0 && x != NULL) {
				int added = append_cert(b, x);
				if (added < 0) {
					snprintf(err, errlen,
						 "out of memory reading %s",
						 name);
					rc = added;
				} else if (added == 0) {
					X509_free(x);
				}
				x = NULL;
			}
			X509_free(x);
			if (rc != 0)
				goto fail;
		}
		pos = next;
	}
	if (in_block) {
		snprintf(err, errlen, "%s:%u: certificate has no END line",
			 name, block_line);
		rc = -EINVAL;
		goto fail;
	}
	if (b->n == 0 && b->skipped > 0) {
		snprintf(err, errlen,
			 "%s: no usable certificates (%zu expired or not yet "
			 "valid)",
			 name, b->skipped);
		rc = -EINVAL;
		goto fail;
	}
	if (b->n == 0) {
		snprintf(err, errlen, "%s: no certificates found", name);
		rc = -EINVAL;
		goto fail;
	}
	rc = render_pem(b, err, errlen);
	if (rc != 0)
		goto fail;
	*out = b;
	return 0;
fail:
	certs_bundle_free(b);
	return rc;
}

int certs_bundle_load(const char *path, struct certs_bundle **out, char *err,
		      size_t errlen)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if ((unsigned long long)st.st_size > CERTS_MAX_BYTES) {
		snprintf(err, errlen, "%s: bundle is larger than %zu bytes",
			 path, CERTS_MAX_BYTES);
		close(fd);
		return -EFBIG;
	}
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size + 1);
	if (buf == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory reading %s", path);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			snprintf(err, errlen, "%s: read: %s", path,
				 strerror(e));
			free(buf);
			close(fd);
			return -e;
		}
		got += (size_t)n;
	}
	close(fd);
	int rc = certs_bundle_parse(path, buf, got, out, err, errlen);
	free(buf);
	return rc;
}

int certs_bundle_write(const struct certs_bundle *b, const char *path,
		       char *err, size_t errlen)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	if (tmp == NULL) {
		snprintf(err, errlen, "out of memory writing %s", path);
		return -ENOMEM;
	}
	snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
	int fd = mkstemp(tmp);
	int rc = 0;
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(-rc));
		free(tmp);
		return rc;
	}
	size_t done = 0;
	while (done < b->pem_len) {
		ssize_t n = write(fd, b->pem + done, b->pem_len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	if (rc == 0 && fchmod(fd, 0644) != 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		(void)unlink(tmp);
	}
	free(tmp);
	return rc;
}
