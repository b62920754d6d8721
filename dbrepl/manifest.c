/*
 * manifest.c - what a snapshot holds: each data file's name, size and
 * SHA-256, in a small text file written last.
 *
 * The standby reads manifests that came from the peer, so the reader
 * trusts nothing: every line is checked, names must be plain file names
 * and the last line repeats the file count, so that a manifest cut short
 * in transit is refused rather than read as a smaller snapshot.
 *
 *	hamnsync-db-manifest 1
 *	generation 12
 *	made 1765000000.250000
 *	type sqlite
 *	mark 9f8e...
 *	file 1048576 <64 hex> xcatdb.sqlite
 *	end 1
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

#define MF_MAGIC "hamnsync-db-manifest"
#define MF_VERSION 1
#define MF_TMP ".MANIFEST.tmp"
/* A full manifest: 256 file lines of at most ~340 bytes, and the head. */
#define MF_MAX (128 * 1024)
#define MF_READ_CHUNK (64 * 1024)

static int
mf_fail(char *why, size_t whylen, int rc, const char *fmt, ...)
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

/*
 * A plain file name: not empty, not "." or "..", no '/', no control bytes
 * (a name from the peer must not walk out of the folder or forge a line).
 */
static int
mf_name_ok(const char *name)
{
	const unsigned char *c;

	if (name[0] == '\0' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strlen(name) >= 256)
		return 0;
	for (c = (const unsigned char *)name; *c != '\0'; c++) {
		if (*c == '/' || *c < 0x20 || *c == 0x7f)
			return 0;
	}
	return 1;
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
	return strcmp(((const struct dbr_mfile *)a)->name,
	              ((const struct dbr_mfile *)b)->name);
}

/* Skip names the folder may hold besides the data: ours and temporaries. */
static int
mf_skip_name(const char *name)
{
	return name[0] == '.' || strcmp(name, DBR_MANIFEST) == 0;
}

int
dbr_manifest_make(int dirfd, struct dbr_manifest *m, char *why, size_t whylen)
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
		struct dbr_mfile *f;

		if (mf_skip_name(de->d_name))
			continue;
		if (!mf_name_ok(de->d_name)) {
			rc = mf_fail(why, whylen, HS_EPROTO,
			             "a snapshot file has a name that is not "
			             "plain");
			break;
		}
		if (m->n == DBR_FILES_MAX) {
			rc = mf_fail(why, whylen, HS_ELIMIT,
			             "more than %d files in the snapshot",
			             DBR_FILES_MAX);
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

static void
mf_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The text of `m`, in a buffer the caller frees. */
static int
mf_format(const struct dbr_manifest *m, struct hs_buf *b)
{
	char line[512], hex[65];
	size_t i;
	int n, rc;

	n = snprintf(line, sizeof(line),
	             "%s %d\ngeneration %" PRIu64 "\nmade %.6f\ntype %s\n"
	             "mark %s\n",
	             MF_MAGIC, MF_VERSION, m->generation, m->made, m->type,
	             m->mark);
	if (n < 0 || (size_t)n >= sizeof(line))
		return HS_ELIMIT;
	if ((rc = hs_buf_append(b, line, (size_t)n)) < 0)
		return rc;
	for (i = 0; i < m->n; i++) {
		mf_hex(m->files[i].sha256, 32, hex);
		n = snprintf(line, sizeof(line), "file %" PRIu64 " %s %s\n",
		             m->files[i].size, hex, m->files[i].name);
		if (n < 0 || (size_t)n >= sizeof(line))
			return HS_ELIMIT;
		if ((rc = hs_buf_append(b, line, (size_t)n)) < 0)
			return rc;
	}
	n = snprintf(line, sizeof(line), "end %zu\n", m->n);
	return hs_buf_append(b, line, (size_t)n);
}

int
dbr_manifest_write(int dirfd, const struct dbr_manifest *m)
{
	struct hs_buf b;
	int fd = -1, rc;

	hs_buf_init(&b, MF_MAX);
	if ((rc = mf_format(m, &b)) < 0)
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

/* Read the whole manifest file into b (bounded by MF_MAX). */
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
			             MF_MAX);
			break;
		}
	}
	close(fd);
	if (rc == HS_OK && (rc = hs_buf_append(b, "", 1)) < 0)
		rc = mf_fail(why, whylen, HS_EPROTO, "%s: larger than %d bytes",
		             DBR_MANIFEST, MF_MAX);
	return rc;
}

static int
mf_parse_u64(const char *s, uint64_t *out)
{
	return hs_parse_u64(s, 0, UINT64_MAX, out) < 0 ? HS_EPROTO : HS_OK;
}

static int
mf_unhex(const char *s, uint8_t out[32])
{
	size_t i;
	int hi, lo;

	if (strlen(s) != 64)
		return HS_EPROTO;
	for (i = 0; i < 32; i++) {
		hi = s[2 * i];
		lo = s[2 * i + 1];
#define HEXV(c)                                                                \
	((c) >= '0' && (c) <= '9'   ? (c) - '0'                                \
	 : (c) >= 'a' && (c) <= 'f' ? (c) - 'a' + 10                           \
	                            : -1)
		if (HEXV(hi) < 0 || HEXV(lo) < 0)
			return HS_EPROTO;
		out[i] = (uint8_t)(HEXV(hi) << 4 | HEXV(lo));
#undef HEXV
	}
	return HS_OK;
}

/* "file SIZE HEX NAME": NAME runs to the end of the line. */
static int
mf_parse_file(char *val, struct dbr_manifest *m, char *why, size_t whylen)
{
	char *size, *hex, *name;
	struct dbr_mfile *f;
	size_t i;

	size = val;
	if ((hex = strchr(size, ' ')) == NULL)
		return mf_fail(why, whylen, HS_EPROTO, "a file line is short");
	*hex++ = '\0';
	if ((name = strchr(hex, ' ')) == NULL)
		return mf_fail(why, whylen, HS_EPROTO, "a file line is short");
	*name++ = '\0';
	if (m->n == DBR_FILES_MAX)
		return mf_fail(why, whylen, HS_EPROTO,
		               "more than %d files", DBR_FILES_MAX);
	if (!mf_name_ok(name) || strcmp(name, DBR_MANIFEST) == 0)
		return mf_fail(why, whylen, HS_EPROTO,
		               "file name \"%.64s\" is not a plain name", name);
	f = &m->files[m->n];
	if (mf_parse_u64(size, &f->size) < 0)
		return mf_fail(why, whylen, HS_EPROTO,
		               "%s: bad size \"%.32s\"", name, size);
	if (mf_unhex(hex, f->sha256) < 0)
		return mf_fail(why, whylen, HS_EPROTO,
		               "%s: bad SHA-256 \"%.70s\"", name, hex);
	for (i = 0; i < m->n; i++) {
		if (strcmp(m->files[i].name, name) == 0)
			return mf_fail(why, whylen, HS_EPROTO,
			               "%s: listed twice", name);
	}
	snprintf(f->name, sizeof(f->name), "%s", name);
	m->n++;
	return HS_OK;
}

enum mf_seen {
	MF_SEEN_GEN = 1,
	MF_SEEN_MADE = 2,
	MF_SEEN_TYPE = 4,
	MF_SEEN_MARK = 8,
	MF_SEEN_ALL = 15,
};

/* One "key value" line after the first. 1 when it was the end line. */
static int
mf_parse_line(char *line, struct dbr_manifest *m, unsigned *seen, char *why,
              size_t whylen)
{
	char *val, *end;
	uint64_t n;

	if ((val = strchr(line, ' ')) == NULL)
		return mf_fail(why, whylen, HS_EPROTO,
		               "line \"%.40s\" has no value", line);
	*val++ = '\0';
	if (strcmp(line, "generation") == 0) {
		if (mf_parse_u64(val, &m->generation) < 0 ||
		    m->generation == 0)
			return mf_fail(why, whylen, HS_EPROTO,
			               "bad generation \"%.32s\"", val);
		*seen |= MF_SEEN_GEN;
	} else if (strcmp(line, "made") == 0) {
		errno = 0;
		m->made = strtod(val, &end);
		if (errno != 0 || end == val || *end != '\0' || m->made < 0)
			return mf_fail(why, whylen, HS_EPROTO,
			               "bad time \"%.32s\"", val);
		*seen |= MF_SEEN_MADE;
	} else if (strcmp(line, "type") == 0) {
		if (strlen(val) >= sizeof(m->type))
			return mf_fail(why, whylen, HS_EPROTO, "bad type");
		snprintf(m->type, sizeof(m->type), "%s", val);
		*seen |= MF_SEEN_TYPE;
	} else if (strcmp(line, "mark") == 0) {
		if (strlen(val) >= sizeof(m->mark))
			return mf_fail(why, whylen, HS_EPROTO, "mark too long");
		snprintf(m->mark, sizeof(m->mark), "%s", val);
		*seen |= MF_SEEN_MARK;
	} else if (strcmp(line, "file") == 0) {
		return mf_parse_file(val, m, why, whylen);
	} else if (strcmp(line, "end") == 0) {
		if (mf_parse_u64(val, &n) < 0 || n != m->n)
			return mf_fail(why, whylen, HS_EPROTO,
			               "end line says %.20s files, %zu listed",
			               val, m->n);
		if ((*seen & MF_SEEN_ALL) != MF_SEEN_ALL)
			return mf_fail(why, whylen, HS_EPROTO,
			               "generation, made, type or mark missing");
		return 1;
	} else
		return mf_fail(why, whylen, HS_EPROTO, "unknown key \"%.32s\"",
		               line);
	return HS_OK;
}

static int
mf_parse(char *text, size_t len, struct dbr_manifest *m, char *why,
         size_t whylen)
{
	char head[64], *line, *nl;
	unsigned seen = 0;
	int rc, ended = 0;

	if (memchr(text, '\0', len) != NULL)
		return mf_fail(why, whylen, HS_EPROTO, "holds a NUL byte");
	snprintf(head, sizeof(head), "%s %d\n", MF_MAGIC, MF_VERSION);
	if (strncmp(text, head, strlen(head)) != 0)
		return mf_fail(why, whylen, HS_EPROTO,
		               "not a version %d manifest", MF_VERSION);
	for (line = text + strlen(head); *line != '\0'; line = nl + 1) {
		if (ended)
			return mf_fail(why, whylen, HS_EPROTO,
			               "text after the end line");
		if ((nl = strchr(line, '\n')) == NULL)
			return mf_fail(why, whylen, HS_EPROTO,
			               "the last line is cut short");
		*nl = '\0';
		if ((rc = mf_parse_line(line, m, &seen, why, whylen)) < 0)
			return rc;
		ended = rc == 1;
	}
	if (!ended)
		return mf_fail(why, whylen, HS_EPROTO, "no end line (cut short)");
	return HS_OK;
}

int
dbr_manifest_read(int dirfd, struct dbr_manifest *m, char *why, size_t whylen)
{
	struct hs_buf b;
	char sub[HS_ERRMSG_MAX - 32] = "";
	int rc;

	memset(m, 0, sizeof(*m));
	hs_buf_init(&b, MF_MAX + 1);
	if ((rc = mf_slurp(dirfd, &b, why, whylen)) < 0)
		goto out;
	rc = mf_parse((char *)b.data, b.len - 1, m, sub, sizeof(sub));
	if (rc < 0)
		mf_fail(why, whylen, rc, "%s: malformed: %s", DBR_MANIFEST,
		        sub);
out:
	hs_buf_free(&b);
	return rc;
}

/* Does file f of dirfd match its line? */
static int
mf_check_one(int dirfd, const struct dbr_mfile *f, char *why, size_t whylen)
{
	struct stat st;
	uint8_t sha[32];
	uint64_t size;
	int fd, rc;

	if ((fd = mf_open_file(dirfd, f->name, &st)) < 0)
		return mf_fail(why, whylen, fd, "%s: %s", f->name,
		               fd == -EINVAL ? "not a regular file"
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
		               "%s: %" PRIu64 " bytes, the manifest says %" PRIu64,
		               f->name, size, f->size);
	if (memcmp(sha, f->sha256, 32) != 0)
		return mf_fail(why, whylen, HS_EHASH,
		               "%s: content differs from the manifest's SHA-256",
		               f->name);
	return HS_OK;
}

int
dbr_manifest_check(int dirfd, const struct dbr_manifest *m, char *why,
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
