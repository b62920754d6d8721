/*
 * manifest.c - the text of a database snapshot's MANIFEST: each data
 * file's name, size and SHA-256 (written by dbrepl/manifest.c, which also
 * hashes, writes and checks the folder).
 *
 * The standby reads manifests that came from the peer, so the decoder
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
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define MF_MAGIC "hamnsync-db-manifest"
#define MF_VERSION 1
/*
 * "made" is a wall clock: strtod also reads "nan", "inf" and 1e308, which
 * are no time and would not fit the encoder's head line (%.6f of 1e308 is
 * 316 bytes).  1e12 s is some 31,000 years.
 */
#define MF_MADE_MAX 1e12

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

/*
 * A plain file name: not empty, not "." or "..", no '/', no control bytes
 * (a name from the peer must not walk out of the folder or forge a line).
 */
int
proto_manifest_name_ok(const char *name)
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

int
proto_manifest_encode(const struct proto_manifest *m, struct hs_buf *b)
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
mf_parse_file(char *val, struct proto_manifest *m, char *why, size_t whylen)
{
	char *size, *hex, *name;
	struct proto_mfile *f;
	size_t i;

	size = val;
	if ((hex = strchr(size, ' ')) == NULL)
		return mf_fail(why, whylen, HS_EPROTO, "a file line is short");
	*hex++ = '\0';
	if ((name = strchr(hex, ' ')) == NULL)
		return mf_fail(why, whylen, HS_EPROTO, "a file line is short");
	*name++ = '\0';
	if (m->n == PROTO_MANIFEST_FILES_MAX)
		return mf_fail(why, whylen, HS_EPROTO, "more than %d files",
		               PROTO_MANIFEST_FILES_MAX);
	if (!proto_manifest_name_ok(name) ||
	    strcmp(name, PROTO_MANIFEST_NAME) == 0)
		return mf_fail(why, whylen, HS_EPROTO,
		               "file name \"%.64s\" is not a plain name", name);
	f = &m->files[m->n];
	if (mf_parse_u64(size, &f->size) < 0)
		return mf_fail(why, whylen, HS_EPROTO, "%s: bad size \"%.32s\"",
		               name, size);
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
mf_parse_line(char *line, struct proto_manifest *m, unsigned *seen, char *why,
              size_t whylen)
{
	char *val, *end;
	uint64_t n;

	if ((val = strchr(line, ' ')) == NULL)
		return mf_fail(why, whylen, HS_EPROTO,
		               "line \"%.40s\" has no value", line);
	*val++ = '\0';
	if (strcmp(line, "generation") == 0) {
		if (mf_parse_u64(val, &m->generation) < 0 || m->generation == 0)
			return mf_fail(why, whylen, HS_EPROTO,
			               "bad generation \"%.32s\"", val);
		*seen |= MF_SEEN_GEN;
	} else if (strcmp(line, "made") == 0) {
		errno = 0;
		m->made = strtod(val, &end);
		if (errno != 0 || end == val || *end != '\0' ||
		    !(m->made >= 0 && m->made < MF_MADE_MAX))
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
			return mf_fail(
			    why, whylen, HS_EPROTO,
			    "generation, made, type or mark missing");
		return 1;
	} else
		return mf_fail(why, whylen, HS_EPROTO, "unknown key \"%.32s\"",
		               line);
	return HS_OK;
}

static int
mf_parse(char *text, size_t len, struct proto_manifest *m, char *why,
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
		return mf_fail(why, whylen, HS_EPROTO,
		               "no end line (cut short)");
	return HS_OK;
}

int
proto_manifest_decode(const char *text, size_t len, struct proto_manifest *m,
                      char *why, size_t whylen)
{
	char *copy;
	int rc;

	memset(m, 0, sizeof(*m));
	if (len > PROTO_MANIFEST_MAX)
		return mf_fail(why, whylen, HS_EPROTO, "larger than %d bytes",
		               PROTO_MANIFEST_MAX);
	/* The parser cuts lines in place and wants a terminating NUL. */
	if ((copy = malloc(len + 1)) == NULL)
		return mf_fail(why, whylen, -ENOMEM, "no memory");
	memcpy(copy, text, len);
	copy[len] = '\0';
	rc = mf_parse(copy, len, m, why, whylen);
	free(copy);
	return rc;
}
