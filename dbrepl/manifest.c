/*
 * manifest.c - what a snapshot holds: each data file's name, size and
 * SHA-256, in a small text file written last.
 *
 * Here is what touches files: hash the folder, write the manifest
 * (temporary file, fsync, rename), read it and check the folder against
 * it.  The text itself comes from the peer on the standby, so its codec
 * sits in protocol/ (proto_manifest_encode, proto_manifest_decode).
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dbrepl_int.h"

#define MF_TMP ".MANIFEST.tmp"
#define MF_READ_CHUNK (64 * 1024)

static int mf_fail(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
mf_fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Hash `fd` from the start; *size receives the bytes read. */
static int
mf_hash_fd(int fd, uint8_t out[32], uint64_t *size)
{
	static uint8_t buf[MF_READ_CHUNK];
	EVP_MD_CTX *ctx;
	ssize_t n;
	int rc = HS_OK;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = HS_ECODEC;
		goto out;
	}
	*size = 0;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			rc = HS_ECODEC;
			goto out;
		}
		*size += (uint64_t)n;
	}
	if (EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		rc = HS_ECODEC;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* Open `name` in dirfd as a regular file, never through a link. */
static int
mf_open_file(int dirfd, const char *name, struct stat *st)
{
	int fd, err;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int
mf_cmp(const void *a, const void *b)
{
	return strcmp(((const struct proto_mfile *)a)->name,
	              ((const struct proto_mfile *)b)->name);
}

/* Skip names the folder may hold besides the data: ours and temporaries. */
static int
mf_skip_name(const char *name)
{
	return name[0] == '.' || strcmp(name, DBR_MANIFEST) == 0;
}

int
dbr_manifest_make(int dirfd, struct proto_manifest *m, char *why, size_t whylen)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, rc = HS_OK;

	m->n = 0;
	if ((fd = dup(dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return mf_fail(why, whylen, rc, "cannot list the snapshot: %s",
		               strerror(-rc));
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct proto_mfile *f;

		if (mf_skip_name(de->d_name))
			continue;
		if (!proto_manifest_name_ok(de->d_name)) {
			rc = mf_fail(why, whylen, HS_EPROTO,
			             "a snapshot file has a name that is not "
			             "plain");
			break;
		}
		if (m->n == PROTO_MANIFEST_FILES_MAX) {
			rc = mf_fail(why, whylen, HS_ELIMIT,
			             "more than %d files in the snapshot",
			             PROTO_MANIFEST_FILES_MAX);
			break;
		}
		if ((fd = mf_open_file(dirfd, de->d_name, &st)) < 0) {
			rc = mf_fail(why, whylen, fd, "%s: %s", de->d_name,
			             fd == -EINVAL ? "not a regular file"
			                           : strerror(-fd));
			break;
		}
		f = &m->files[m->n];
		snprintf(f->name, sizeof(f->name), "%s", de->d_name);
		rc = mf_hash_fd(fd, f->sha256, &f->size);
		close(fd);
		if (rc < 0) {
			mf_fail(why, whylen, rc, "%s: cannot hash: %s",
			        de->d_name, hs_strerror(rc));
			break;
		}
		m->n++;
	}
	closedir(d);
	if (rc < 0)
		return rc;
	/* A stable order: the manifest of the same files is the same text. */
	qsort(m->files, m->n, sizeof(m->files[0]), mf_cmp);
	return HS_OK;
}

int
dbr_manifest_write(int dirfd, const struct proto_manifest *m)
{
	struct hs_buf b;
	int fd = -1, rc;

	hs_buf_init(&b, PROTO_MANIFEST_MAX);
	if ((rc = proto_manifest_encode(m, &b)) < 0)
		goto out;
	fd = openat(dirfd, MF_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	            0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = hs_write_all(fd, b.data, b.len)) < 0)
		goto out;
	if (fsync(fd) < 0 || close(fd) < 0) {
		rc = -errno;
		fd = -1;
		goto out;
	}
	fd = -1;
	if (renameat(dirfd, MF_TMP, dirfd, DBR_MANIFEST) < 0 ||
	    fsync(dirfd) < 0) {
		rc = -errno;
		goto out;
	}
	rc = HS_OK;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlinkat(dirfd, MF_TMP, 0);
	hs_buf_free(&b);
	return rc;
}

/* Read the whole manifest file into b (bounded by PROTO_MANIFEST_MAX). */
static int
mf_slurp(int dirfd, struct hs_buf *b, char *why, size_t whylen)
{
	char chunk[4096];
	ssize_t n;
	int fd, rc = HS_OK;

	fd = openat(dirfd, DBR_MANIFEST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return mf_fail(why, whylen, -errno, "%s: %s", DBR_MANIFEST,
		               strerror(errno));
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = mf_fail(why, whylen, -errno, "%s: %s",
			             DBR_MANIFEST, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if ((rc = hs_buf_append(b, chunk, (size_t)n)) < 0) {
			rc = mf_fail(why, whylen, HS_EPROTO,
			             "%s: larger than %d bytes", DBR_MANIFEST,
			             PROTO_MANIFEST_MAX);
			break;
		}
	}
	close(fd);
	if (rc == HS_OK && (rc = hs_buf_append(b, "", 1)) < 0)
		rc = mf_fail(why, whylen, HS_EPROTO, "%s: larger than %d bytes",
		             DBR_MANIFEST, PROTO_MANIFEST_MAX);
	return rc;
}

int
dbr_manifest_read(int dirfd, struct proto_manifest *m, char *why, size_t whylen)
{
	struct hs_buf b;
	char sub[HS_ERRMSG_MAX - 32] = "";
	int rc;

	memset(m, 0, sizeof(*m));
	hs_buf_init(&b, PROTO_MANIFEST_MAX + 1);
	if ((rc = mf_slurp(dirfd, &b, why, whylen)) < 0)
		goto out;
	rc = proto_manifest_decode((const char *)b.data, b.len - 1, m, sub,
	                           sizeof(sub));
	if (rc < 0)
		mf_fail(why, whylen, rc, "%s: malformed: %s", DBR_MANIFEST,
		        sub);
out:
	hs_buf_free(&b);
	return rc;
}

/* Does file f of dirfd match its line? */
static int
mf_check_one(int dirfd, const struct proto_mfile *f, char *why, size_t whylen)
{
	struct stat st;
	uint8_t sha[32];
	uint64_t size;
	int fd, rc;

	if ((fd = mf_open_file(dirfd, f->name, &st)) < 0)
		return mf_fail(why, whylen, fd, "%s: %s", f->name,
		               fd == -EINVAL   ? "not a regular file"
		               : fd == -ENOENT ? "missing"
		                               : strerror(-fd));
	if ((uint64_t)st.st_size != f->size) {
		close(fd);
		return mf_fail(why, whylen, HS_EHASH,
		               "%s: %jd bytes, the manifest says %" PRIu64,
		               f->name, (intmax_t)st.st_size, f->size);
	}
	rc = mf_hash_fd(fd, sha, &size);
	close(fd);
	if (rc < 0)
		return mf_fail(why, whylen, rc, "%s: cannot read: %s", f->name,
		               hs_strerror(rc));
	if (size != f->size)
		return mf_fail(why, whylen, HS_EHASH,
		               "%s: %" PRIu64
		               " bytes, the manifest says %" PRIu64,
		               f->name, size, f->size);
	if (memcmp(sha, f->sha256, 32) != 0)
		return mf_fail(
		    why, whylen, HS_EHASH,
		    "%s: content differs from the manifest's SHA-256", f->name);
	return HS_OK;
}

int
dbr_manifest_check(int dirfd, const struct proto_manifest *m, char *why,
                   size_t whylen)
{
	size_t i;
	int rc;

	for (i = 0; i < m->n; i++) {
		if ((rc = mf_check_one(dirfd, &m->files[i], why, whylen)) < 0)
			return rc;
	}
	return HS_OK;
}
