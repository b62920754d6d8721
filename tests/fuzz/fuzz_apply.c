/*
 * fuzz_apply.c - the standby's applier (standby/, apply_op) fed a hostile
 * sequence of operation frames beneath a real target_root, with its
 * records in a real index: OP_DELETE, OP_DIR, OP_SYMLINK, OP_FILE +
 * OP_DATA + OP_SEEK + OP_FILE_END, OP_DELTA (librsync against our copy),
 * OP_SPECIAL, OP_META, OP_LINK, and OP_PATCH + OP_PATCH_DATA against the
 * record of a file written before it.  This is the standby's OP_PATCH
 * path without a session: recv.c hands apply_op the frames it decodes.
 *
 * Input: frames until the input ends, each u8 type | u16 n | n bytes
 * (big-endian), given to apply_op as a message of that type, except:
 *	type 0	apply_flush (what the standby does at SET_END)
 *	type 1	u32 n: an OP_DATA of n filler bytes (n <= 2 MiB)
 *	type 2	u64 offset | u32 n: an OP_PATCH_DATA of n filler bytes
 * and two stand-ins for what the fuzzer cannot compute: an OP_FILE_END
 * with status 0 and a hash of zeros gets the transfer hash of the data
 * sent since the file began, and an OP_PATCH whose basis token is zeros
 * gets the token of the last file ended (its record's token).  The run
 * stops at the first error of apply_op, as the session would.
 *
 * Each run starts from an empty target_root and index, in a folder of
 * its own under $HS_FUZZ_TMP (scripts/fuzz.sh: in /dev/shm when there
 * is one, so that fsync costs nothing), else $TMPDIR or /tmp, removed at
 * exit.  Checked after each run: nothing changed next to target_root
 * (a sentinel folder and the folder's own entries), and no error line
 * holds a control byte: apply_error escapes the peer's path (a newline
 * in a file name made a multi-line log entry; the input that showed it
 * is corpus/fuzz_apply/newline-in-path).
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "idx.h"
#include "proto.h"
#include "stdby_int.h"

#define FILL_MAX (2u * 1024 * 1024)
#define SENTINEL "hamnsync must never write here\n"

static char top[4096], root[4200], state[4200], outside[4200];
static int rootfd = -1;
static uint8_t *fill;
static char *sources[] = {"/install", "/etc/xcat"};
static struct hs_pathset set = {
    .name = "install", .sources = {sources, 2}, .line = 1};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	if (ftw->level == 0)
		return 0;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0)
		abort();
	return 0;
}

/* Empty `dir`, keeping it. */
static void
empty(const char *dir)
{
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		abort();
}

static void
cleanup(void)
{
	if (top[0] == '\0')
		return;
	empty(top);
	rmdir(top);
	top[0] = '\0';
}

static void
setup(void)
{
	const char *base = getenv("HS_FUZZ_TMP");
	int fd;

	/* Errors only: a line per refused operation is noise at this rate. */
	hs_log_init("fuzz_apply", 1, HS_LOG_ERR);
	if (base == NULL && (base = getenv("TMPDIR")) == NULL)
		base = "/tmp";
	snprintf(top, sizeof(top), "%s/fuzz_apply.XXXXXX", base);
	if (mkdtemp(top) == NULL)
		abort();
	atexit(cleanup);
	snprintf(root, sizeof(root), "%s/root", top);
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(outside, sizeof(outside), "%s/outside", top);
	if (mkdir(root, 0755) < 0 || mkdir(state, 0700) < 0 ||
	    mkdir(outside, 0755) < 0)
		abort();
	snprintf(outside, sizeof(outside), "%s/outside/keep", top);
	fd = open(outside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, SENTINEL, sizeof(SENTINEL) - 1) !=
	                  (ssize_t)sizeof(SENTINEL) - 1)
		abort();
	close(fd);
	if ((rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		abort();
	if ((fill = malloc(8 + FILL_MAX)) == NULL)
		abort();
	memset(fill, 0x5a, 8 + FILL_MAX);
}

/* Entries of `dir` but . and .. */
static int
entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	FZ_CHECK(d != NULL);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Nothing beside target_root and state_dir was touched. */
static void
check_outside(void)
{
	char buf[sizeof(SENTINEL) + 8], dir[4200];
	struct stat st;
	ssize_t n;
	int fd;

	FZ_CHECK(entries(top) == 3);
	snprintf(dir, sizeof(dir), "%s/outside", top);
	FZ_CHECK(entries(dir) == 1);
	fd = open(outside, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FZ_CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
	FZ_CHECK(st.st_mode == (S_IFREG | 0644) && st.st_nlink == 1);
	n = read(fd, buf, sizeof(buf));
	FZ_CHECK(n == (ssize_t)sizeof(SENTINEL) - 1 &&
	         memcmp(buf, SENTINEL, (size_t)n) == 0);
	close(fd);
}

/* The transfer hash the harness keeps, and the last file's token. */
struct feed {
	struct proto_hash *h;
	uint8_t token[PROTO_HASH_LEN];
};

static int
all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* Fill in the stand-ins, and follow the data into the hash. */
static void
stand_in(struct feed *f, uint8_t type, uint8_t *p, size_t len)
{
	uint8_t scratch[PROTO_HASH_LEN];
	uint64_t off;

	switch (type) {
	case PROTO_T_OP_FILE:
	case PROTO_T_OP_DELTA:
		proto_hash_final(f->h, scratch); /* a new file: reset */
		break;
	case PROTO_T_OP_PATCH:
		proto_hash_final(f->h, scratch);
		if (len >= 36 && all_zero(p + len - 36, PROTO_TOKEN_LEN))
			memcpy(p + len - 36, f->token, PROTO_TOKEN_LEN);
		break;
	case PROTO_T_OP_DATA:
		proto_hash_update(f->h, p, len);
		break;
	case PROTO_T_OP_SEEK:
		if (proto_op_seek_decode(p, len, &off) == HS_OK)
			proto_hash_hole(f->h, off);
		break;
	case PROTO_T_OP_FILE_END:
		if (len == 1 + PROTO_HASH_LEN && p[0] == 0 &&
		    all_zero(p + 1, PROTO_HASH_LEN))
			proto_hash_final(f->h, p + 1);
		if (len == 1 + PROTO_HASH_LEN)
			memcpy(f->token, p + 1, PROTO_HASH_LEN);
		break;
	}
}

static uint64_t
be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* One frame of the input: HS_OK to go on, or apply's error. */
static int
one(struct apply *a, struct feed *f, uint8_t type, const uint8_t *body,
    size_t len)
{
	struct proto_msg m;
	uint8_t *copy;
	uint64_t n;
	int rc;

	if (type == 0)
		return apply_flush(a);
	if (type == 1 || type == 2) {
		if (len != (type == 1 ? 4u : 12u))
			return HS_OK;
		n = be(body + len - 4, 4);
		n = n > FILL_MAX ? FILL_MAX : n;
		if (type == 2)
			memcpy(fill, body, 8);
		m.type = type == 1 ? PROTO_T_OP_DATA : PROTO_T_OP_PATCH_DATA;
		m.data = type == 1 ? fill + 8 : fill;
		m.len = type == 1 ? n : 8 + n;
		if (type == 1)
			proto_hash_update(f->h, m.data, m.len);
		return apply_op(a, &m);
	}
	/* A copy of its own size: ASan sees an overread. */
	if ((copy = malloc(len ? len : 1)) == NULL)
		abort();
	memcpy(copy, body, len);
	stand_in(f, type, copy, len);
	m.type = type;
	m.data = copy;
	m.len = len;
	rc = apply_op(a, &m);
	free(copy);
	return rc;
}

/* An error line holds no control byte; with HS_FUZZ_VERBOSE, what a run did. */
static void
check_errors(const struct apply *a, int rc)
{
	int verbose = getenv("HS_FUZZ_VERBOSE") != NULL;
	struct proto_wr w;
	size_t i;

	if (verbose) {
		proto_wr_init(&w);
		fprintf(stderr,
		        "fuzz_apply: %s: %llu applied, %llu errors, "
		        "stale patches: %d\n",
		        hs_strerror(rc), (unsigned long long)apply_applied(a),
		        (unsigned long long)apply_error_count(a),
		        apply_stale_encode(a, &w));
		proto_wr_free(&w);
	}
	for (i = 0; i < apply_error_lines(a); i++) {
		const unsigned char *c;

		c = (const unsigned char *)apply_error_line(a, i);
		for (; *c != '\0'; c++)
			FZ_CHECK(*c >= 0x20 && *c != 0x7f);
		if (verbose)
			fprintf(stderr, "  %s\n", apply_error_line(a, i));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f;
	struct apply *a;
	struct idx *x;
	char why[512];
	size_t off = 0, len;
	int rc = HS_OK;

	if (rootfd < 0)
		setup();
	empty(root);
	empty(state);
	if (idx_open_checked(state, &x) < 0)
		abort();
	if (apply_open(rootfd, &set, &a, why, sizeof(why)) < 0)
		abort();
	apply_set_records(a, x, state);
	memset(&f, 0, sizeof(f));
	if (proto_hash_new_xfer(&f.h) < 0)
		abort();
	while (rc == HS_OK && size - off >= 3) {
		len = (size_t)be(data + off + 1, 2);
		if (len > size - off - 3)
			break;
		rc = one(a, &f, data[off], data + off + 3, len);
		off += 3 + len;
	}
	if (rc == HS_OK)
		rc = apply_flush(a);
	check_errors(a, rc);
	apply_free(a);
	idx_close(x);
	proto_hash_free(f.h);
	check_outside();
	return 0;
}
