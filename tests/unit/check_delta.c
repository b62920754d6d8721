/*
 * check_delta.c - delta/: librsync jobs (signature, delta and patch round
 * trips, the signature checks, hostile deltas against a small basis) and
 * the block tables of patches (the block size per file size, the XXH3
 * block table fed in any slicing, the patch token, the record keys).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <librsync.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "check_aux.h"
#include "delta.h"

#define KIB (1024u)
#define MIB (1024u * 1024)
#define GIB (1024ull * 1024 * 1024)

/* librsync's magic numbers (librsync.h), spelled out for crafted input. */
#define MAGIC_DELTA 0x72730236u
#define MAGIC_MD4_SIG 0x72730136u
#define MAGIC_RK_MD4_SIG 0x72730146u
#define MAGIC_BLAKE2_SIG 0x72730137u
#define MAGIC_RK_BLAKE2_SIG 0x72730147u
#define SIG_HDR_LEN 12

/* ------------------------------------------------------------- helpers */

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void
sha256(const uint8_t *p, size_t n, uint8_t out[PROTO_HASH_LEN])
{
	struct proto_hash *h;

	ck_assert_int_eq(proto_hash_new(&h), HS_OK);
	proto_hash_update(h, p, n);
	proto_hash_final(h, out);
	proto_hash_free(h);
}

/* Collects what a job emits, and counts it. */
struct sink {
	struct hs_buf buf;
	uint64_t total;
};

static void
sink_init(struct sink *s, size_t max)
{
	hs_buf_init(&s->buf, max);
	s->total = 0;
}

static int
sink_emit(void *arg, const uint8_t *p, size_t n)
{
	struct sink *s = arg;

	s->total += n;
	return hs_buf_append(&s->buf, p, n);
}

/* ------------------------------------------------------------- fixture */

/*
 * Each TCase makes a base folder in the runner and removes it at the end,
 * so a failed test's leftovers go too; each test works in its own folder
 * below it.
 */
static char base_dir[64];
static char tmp_dir[128];
static int dir_fd = -1;

static void
base_setup(void)
{
	snprintf(base_dir, sizeof(base_dir), "/tmp/check_delta.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void
base_teardown(void)
{
	nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
tmp_setup(void)
{
	aux_tmp_make(base_dir, tmp_dir, sizeof(tmp_dir), &dir_fd);
}

static void
tmp_teardown(void)
{
	aux_tmp_remove(tmp_dir, &dir_fd);
}

/* Create `name` in the fixture holding `data`; returns an O_RDWR fd. */
static int
file_make(const char *name, const uint8_t *data, size_t len)
{
	return aux_file_make(dir_fd, name, data, len);
}

/* ------------------------------------------------- signature + delta */

/* Basis sizes, and what the new version of each is made of. */
static const size_t rt_basis_sizes[] = {0, 1, 100 * KIB, 5 * MIB};

enum rt_new {
	RT_SAME,     /* identical */
	RT_MIDDLE,   /* a 64 KiB region in the middle rewritten */
	RT_APPEND,   /* 37 KiB appended */
	RT_TRUNCATE, /* the first half kept */
	RT_OTHER,    /* unrelated bytes, same size (4 KiB for an empty basis) */
	RT_EMPTY,    /* nothing */
	RT_N
};

static const char *const rt_new_names[RT_N] = {
    "identical", "middle changed", "appended",
    "truncated", "different",      "empty",
};

/* The new version `kind` of `basis`; caller frees *out. */
static void
rt_make_new(const uint8_t *basis, size_t blen, enum rt_new kind, uint8_t **out,
            size_t *outlen)
{
	size_t nlen = blen, region, off;
	uint8_t *p;

	switch (kind) {
	case RT_SAME:
	case RT_MIDDLE:
		break;
	case RT_APPEND:
		nlen = blen + 37 * KIB;
		break;
	case RT_TRUNCATE:
		nlen = blen / 2;
		break;
	case RT_OTHER:
		nlen = blen == 0 ? 4 * KIB : blen;
		break;
	case RT_EMPTY:
	default:
		nlen = 0;
		break;
	}
	p = malloc(nlen + 1);
	ck_assert_ptr_nonnull(p);
	memcpy(p, basis, blen < nlen ? blen : nlen);
	switch (kind) {
	case RT_MIDDLE:
		region = blen < 64 * KIB ? blen : 64 * KIB;
		off = (blen - region) / 2;
		fill_random(p + off, region, 77);
		if (blen == 1 && p[0] == basis[0])
			p[0] ^= 0xff;
		break;
	case RT_APPEND:
		fill_random(p + blen, nlen - blen, 78);
		break;
	case RT_OTHER:
		fill_random(p, nlen, 79);
		break;
	default:
		break;
	}
	*out = p;
	*outlen = nlen;
}

/* Check a signature made by delta_sig_fd for a file of `size` bytes. */
static void
sig_check_shape(const struct hs_buf *sig, uint64_t size)
{
	uint32_t magic, block_len, strong_len;
	uint64_t blocks, want;
	char why[160] = "";

	ck_assert_uint_ge(sig->len, SIG_HDR_LEN);
	magic = get_be32(sig->data);
	block_len = get_be32(sig->data + 4);
	strong_len = get_be32(sig->data + 8);
	ck_assert_msg(magic == MAGIC_RK_BLAKE2_SIG || magic == MAGIC_BLAKE2_SIG,
	              "signature magic %#x is not BLAKE2", magic);
	ck_assert_uint_gt(block_len, 0);
	ck_assert_uint_ge(strong_len, 1);
	ck_assert_uint_le(strong_len, 32);
	ck_assert_uint_eq((sig->len - SIG_HDR_LEN) % (4 + strong_len), 0);
	blocks = (sig->len - SIG_HDR_LEN) / (4 + strong_len);
	want = (size + block_len - 1) / block_len;
	ck_assert_msg(blocks == want,
	              "%llu bytes in blocks of %u: %llu blocks, want %llu",
	              (unsigned long long)size, block_len,
	              (unsigned long long)blocks, (unsigned long long)want);
	ck_assert_uint_le(blocks, SIG_BLOCKS_MAX);
	ck_assert_uint_le(sig->len, PROTO_SIG_MAX);
	ck_assert_int_eq(delta_sig_check(sig->data, sig->len, why, sizeof(why)),
	                 HS_OK);
}

/* Signature of `data` (written to file `name`); returns the open fd. */
static int
sig_of(const char *name, const uint8_t *data, size_t len, struct hs_buf *sig)
{
	uint8_t hash[PROTO_HASH_LEN], want[PROTO_HASH_LEN];
	uint64_t size = UINT64_MAX;
	int fd;

	fd = file_make(name, data, len);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	hs_buf_init(sig, PROTO_SIG_MAX);
	ck_assert_int_eq(delta_sig_fd(fd, sig, hash, &size), HS_OK);
	ck_assert_uint_eq(size, len);
	sha256(data, len, want);
	ck_assert_mem_eq(hash, want, PROTO_HASH_LEN);
	sig_check_shape(sig, len);
	return fd;
}

/* The delta turning the signature's basis into p[0..n), fed in 7 KiB. */
static void
delta_of(const struct hs_buf *sig, const uint8_t *p, size_t n,
         struct sink *delta)
{
	const size_t piece = 7 * KIB;
	struct delta_enc *e = NULL;
	size_t off = 0;

	ck_assert_int_eq(delta_enc_new(sig->data, sig->len, &e), HS_OK);
	ck_assert_ptr_nonnull(e);
	sink_init(delta, 64 * MIB);
	do {
		size_t k = n - off < piece ? n - off : piece;
		int eof = off + k == n;

		ck_assert_int_eq(
		    delta_enc_feed(e, p + off, k, eof, sink_emit, delta),
		    HS_OK);
		off += k;
	} while (off < n);
	delta_enc_free(e);
	ck_assert_uint_ge(delta->buf.len, 5); /* magic + END at least */
	ck_assert_uint_eq(get_be32(delta->buf.data), MAGIC_DELTA);
}

START_TEST(roundtrip_table)
{
	const size_t blen = rt_basis_sizes[_i / RT_N];
	const enum rt_new kind = (enum rt_new)(_i % RT_N);
	uint8_t *basis, *newv;
	size_t nlen, off = 0, piece;
	struct hs_buf sig;
	struct sink delta, out;
	struct delta_dec *d = NULL;
	int bfd, rc;

	basis = malloc(blen + 1);
	ck_assert_ptr_nonnull(basis);
	fill_random(basis, blen, 1000 + blen);
	rt_make_new(basis, blen, kind, &newv, &nlen);

	bfd = sig_of("basis", basis, blen, &sig);
	delta_of(&sig, newv, nlen, &delta);

	/* The part of interest: 64 KiB changed in 5 MiB travels small. */
	if (blen == 5 * MIB && kind == RT_MIDDLE)
		ck_assert_msg(delta.buf.len < 512 * KIB,
		              "delta for 64 KiB changed in 5 MiB is %zu bytes",
		              delta.buf.len);
	if (blen == 5 * MIB && kind == RT_SAME)
		ck_assert_uint_lt(delta.buf.len, 64 * KIB);

	ck_assert_int_eq(delta_dec_new(bfd, blen, nlen, &d), HS_OK);
	ck_assert_ptr_nonnull(d);
	sink_init(&out, 64 * MIB);
	piece = delta.buf.len < 4 * KIB ? 1 : 3 * KIB;
	while (off < delta.buf.len) {
		size_t k =
		    delta.buf.len - off < piece ? delta.buf.len - off : piece;

		rc = delta_dec_feed(d, delta.buf.data + off, k, 0, sink_emit,
		                    &out);
		ck_assert_msg(rc == HS_OK,
		              "basis %zu, %s: feed at %zu of %zu: %s (%s)",
		              blen, rt_new_names[kind], off, delta.buf.len,
		              hs_strerror(rc), delta_dec_why(d));
		off += k;
	}
	rc = delta_dec_feed(d, NULL, 0, 1, sink_emit, &out);
	ck_assert_msg(rc == HS_OK, "basis %zu, %s: final feed: %s (%s)", blen,
	              rt_new_names[kind], hs_strerror(rc), delta_dec_why(d));
	ck_assert_uint_eq(out.buf.len, nlen);
	ck_assert_uint_eq(out.total, nlen);
	if (nlen > 0)
		ck_assert_msg(memcmp(out.buf.data, newv, nlen) == 0,
		              "basis %zu, %s: output differs", blen,
		              rt_new_names[kind]);

	delta_dec_free(d);
	close(bfd);
	hs_buf_free(&out.buf);
	hs_buf_free(&delta.buf);
	hs_buf_free(&sig);
	free(newv);
	free(basis);
}
END_TEST

/*
 * The same delta fed to the decoder whole with eof in the same call: the
 * END command and the end of input arrive together.
 */
START_TEST(roundtrip_one_feed)
{
	const size_t blen = 100 * KIB;
	uint8_t *basis, *newv;
	size_t nlen;
	struct hs_buf sig;
	struct sink delta, out;
	struct delta_dec *d = NULL;
	int bfd, rc;

	basis = malloc(blen);
	ck_assert_ptr_nonnull(basis);
	fill_random(basis, blen, 5);
	rt_make_new(basis, blen, RT_MIDDLE, &newv, &nlen);
	bfd = sig_of("basis", basis, blen, &sig);
	delta_of(&sig, newv, nlen, &delta);

	ck_assert_int_eq(delta_dec_new(bfd, blen, nlen, &d), HS_OK);
	sink_init(&out, 64 * MIB);
	rc = delta_dec_feed(d, delta.buf.data, delta.buf.len, 1, sink_emit,
	                    &out);
	ck_assert_msg(rc == HS_OK, "%s (%s)", hs_strerror(rc),
	              delta_dec_why(d));
	ck_assert_uint_eq(out.buf.len, nlen);
	ck_assert_mem_eq(out.buf.data, newv, nlen);

	delta_dec_free(d);
	close(bfd);
	hs_buf_free(&out.buf);
	hs_buf_free(&delta.buf);
	hs_buf_free(&sig);
	free(newv);
	free(basis);
}
END_TEST

/* A sink whose disk is full: every write fails with ENOSPC. */
static int
full_emit(void *arg, const uint8_t *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return -ENOSPC;
}

/*
 * A well-formed delta whose output cannot be written: the sink's error
 * comes back as it is, and the delta gets no reason ("malformed delta:
 * No space left on device" was what a full disk printed).
 */
START_TEST(sink_error_is_not_the_delta)
{
	const size_t blen = 100 * KIB;
	uint8_t *basis, *newv;
	size_t nlen;
	struct hs_buf sig;
	struct sink delta;
	struct delta_dec *d = NULL;
	int bfd, rc;

	basis = malloc(blen);
	ck_assert_ptr_nonnull(basis);
	fill_random(basis, blen, 6);
	rt_make_new(basis, blen, RT_MIDDLE, &newv, &nlen);
	bfd = sig_of("basis", basis, blen, &sig);
	delta_of(&sig, newv, nlen, &delta);

	ck_assert_int_eq(delta_dec_new(bfd, blen, nlen, &d), HS_OK);
	rc = delta_dec_feed(d, delta.buf.data, delta.buf.len, 1, full_emit,
	                    NULL);
	ck_assert_int_eq(rc, -ENOSPC);
	ck_assert_msg(delta_dec_why(d)[0] == '\0', "a reason: %s",
	              delta_dec_why(d));

	delta_dec_free(d);
	close(bfd);
	hs_buf_free(&delta.buf);
	hs_buf_free(&sig);
	free(newv);
	free(basis);
}
END_TEST

/*
 * A sparse basis far larger than SIG_BLOCKS_MAX default-sized blocks: the
 * block length must grow so the signature stays within the cap.  This
 * reads the whole size as zeros through SHA-256 and librsync.  20 GiB took
 * 136 s (plain) and 144 s (ASan) on the 2-core test machine, so this uses
 * 4 GiB: librsync's own choice for it (64 KiB blocks, 65536 of them) is
 * still twice the cap, so the cap is what keeps it in bounds.
 */
#define SIG_CAP_SIZE (4ull * 1024 * 1024 * 1024)

START_TEST(sig_block_cap)
{
	rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
	size_t rs_block = 0, rs_strong = (size_t)-1;
	uint8_t hash[PROTO_HASH_LEN];
	uint32_t block_len, strong_len;
	uint64_t size = 0, blocks;
	struct hs_buf sig;
	int fd;

	/* Without the cap this size would pass SIG_BLOCKS_MAX. */
	ck_assert_int_eq(
	    rs_sig_args((rs_long_t)SIG_CAP_SIZE, &magic, &rs_block, &rs_strong),
	    RS_DONE);
	ck_assert_uint_gt(SIG_CAP_SIZE / rs_block, SIG_BLOCKS_MAX);

	fd = openat(dir_fd, "sparse", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)SIG_CAP_SIZE), 0);
	hs_buf_init(&sig, PROTO_SIG_MAX);
	ck_assert_int_eq(delta_sig_fd(fd, &sig, hash, &size), HS_OK);
	ck_assert_uint_eq(size, SIG_CAP_SIZE);

	ck_assert_uint_ge(sig.len, SIG_HDR_LEN);
	block_len = get_be32(sig.data + 4);
	strong_len = get_be32(sig.data + 8);
	ck_assert_uint_ge(strong_len, 1);
	ck_assert_uint_le(strong_len, 32);
	ck_assert_uint_eq((sig.len - SIG_HDR_LEN) % (4 + strong_len), 0);
	blocks = (sig.len - SIG_HDR_LEN) / (4 + strong_len);
	ck_assert_msg(blocks <= SIG_BLOCKS_MAX, "%llu blocks of %u bytes",
	              (unsigned long long)blocks, block_len);
	ck_assert_uint_ge(blocks * block_len, SIG_CAP_SIZE);
	sig_check_shape(&sig, SIG_CAP_SIZE);

	hs_buf_free(&sig);
	close(fd);
}
END_TEST

/* --------------------------------------------------- delta_sig_check */

struct sig_case {
	const char *name;
	int real;            /* a real signature of 100 KiB (ignore the rest) */
	uint32_t magic;      /* header fields of a crafted one */
	uint32_t block_len;  /* ... */
	uint32_t strong_len; /* ... */
	size_t blocks;       /* zero blocks of 4 + strong_len bytes */
	size_t extra;        /* stray bytes after them */
	size_t len;          /* if non-zero: the total length, cut or padded */
	int rc;
};

#define LEN_ZERO ((size_t)-1) /* a zero-length signature */

/* clang-format off */
static const struct sig_case sig_cases[] = {
    {"real", 1, 0, 0, 0, 0, 0, 0, HS_OK},
    {"empty file, RK BLAKE2", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32, 0, 0, 0,
     HS_OK},
    {"BLAKE2, one block", 0, MAGIC_BLAKE2_SIG, 2048, 32, 1, 0, 0, HS_OK},
    {"strong 1, block 16", 0, MAGIC_RK_BLAKE2_SIG, 16, 1, 3, 0, 0, HS_OK},
    {"SIG_BLOCKS_MAX blocks", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32,
     SIG_BLOCKS_MAX, 0, 0, HS_OK},
    {"zero bytes", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32, 0, 0, LEN_ZERO,
     HS_EPROTO},
    {"4 bytes", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32, 0, 0, 4, HS_EPROTO},
    {"11 bytes", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32, 0, 0, 11, HS_EPROTO},
    {"MD4 magic", 0, MAGIC_MD4_SIG, 2048, 8, 1, 0, 0, HS_EPROTO},
    {"RK MD4 magic", 0, MAGIC_RK_MD4_SIG, 2048, 8, 1, 0, 0, HS_EPROTO},
    {"delta magic", 0, MAGIC_DELTA, 2048, 32, 1, 0, 0, HS_EPROTO},
    {"unknown magic", 0, 0x12345678u, 2048, 32, 1, 0, 0, HS_EPROTO},
    {"block_len 0", 0, MAGIC_RK_BLAKE2_SIG, 0, 32, 1, 0, 0, HS_EPROTO},
    {"block_len 2^32-1", 0, MAGIC_RK_BLAKE2_SIG, UINT32_MAX, 32, 1, 0, 0,
     HS_EPROTO},
    {"strong_len 0", 0, MAGIC_RK_BLAKE2_SIG, 2048, 0, 1, 0, 0, HS_EPROTO},
    {"strong_len 33", 0, MAGIC_RK_BLAKE2_SIG, 2048, 33, 1, 0, 0, HS_EPROTO},
    {"strong_len 2^32-1", 0, MAGIC_RK_BLAKE2_SIG, 2048, UINT32_MAX, 1, 0, 0,
     HS_EPROTO},
    {"part of a block", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32, 2, 7, 0,
     HS_EPROTO},
    {"header + 1 byte", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32, 0, 1, 0,
     HS_EPROTO},
    {"SIG_BLOCKS_MAX + 1 blocks", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32,
     SIG_BLOCKS_MAX + 1, 0, 0, HS_ELIMIT},
    {"SIG_BLOCKS_MAX + 1 small blocks", 0, MAGIC_RK_BLAKE2_SIG, 2048, 1,
     SIG_BLOCKS_MAX + 1, 0, 0, HS_ELIMIT},
    {"PROTO_SIG_MAX + 1 bytes", 0, MAGIC_RK_BLAKE2_SIG, 2048, 32, 0, 0,
     PROTO_SIG_MAX + 1, HS_ELIMIT},
    {"PROTO_SIG_MAX + 8 bytes, whole blocks of 5", 0, MAGIC_RK_BLAKE2_SIG,
     2048, 1, (PROTO_SIG_MAX - 12 + 8) / 5, 0, 0, HS_ELIMIT},
};
/* clang-format on */

/* Build the signature of `tc`; caller frees *out. */
static void
sig_build(const struct sig_case *tc, uint8_t **out, size_t *outlen)
{
	size_t len, blen;
	uint8_t *p;

	if (tc->real) {
		struct hs_buf sig;
		uint8_t *data = malloc(100 * KIB);
		int fd;

		ck_assert_ptr_nonnull(data);
		fill_random(data, 100 * KIB, 42);
		fd = sig_of("real", data, 100 * KIB, &sig);
		close(fd);
		free(data);
		*out = sig.data;
		*outlen = sig.len;
		return;
	}
	blen = tc->strong_len > 64 ? 0 : 4 + tc->strong_len;
	len = SIG_HDR_LEN + tc->blocks * blen + tc->extra;
	if (tc->len == LEN_ZERO)
		len = 0;
	else if (tc->len != 0)
		len = tc->len;
	p = calloc(1, len > SIG_HDR_LEN ? len : SIG_HDR_LEN);
	ck_assert_ptr_nonnull(p);
	put_be32(p, tc->magic);
	put_be32(p + 4, tc->block_len);
	put_be32(p + 8, tc->strong_len);
	*out = p;
	*outlen = len;
}

START_TEST(sig_check_table)
{
	const struct sig_case *tc = &sig_cases[_i];
	struct delta_enc *e = (struct delta_enc *)&e; /* must stay untouched */
	struct delta_enc *const poison = e;
	char why[160];
	uint8_t *sig;
	size_t len;
	int rc;

	sig_build(tc, &sig, &len);
	memset(why, 0, sizeof(why));
	rc = delta_sig_check(sig, len, why, sizeof(why));
	ck_assert_msg(rc == tc->rc, "%s: got %s, want %s (%s)", tc->name,
	              hs_strerror(rc), hs_strerror(tc->rc), why);
	if (tc->rc < 0)
		ck_assert_msg(why[0] != '\0', "%s: no reason given", tc->name);

	/* The encoder refuses what the check refuses, with the same code. */
	rc = delta_enc_new(sig, len, &e);
	ck_assert_msg(rc == tc->rc, "%s: delta_enc_new: got %s, want %s",
	              tc->name, hs_strerror(rc), hs_strerror(tc->rc));
	if (rc == HS_OK) {
		ck_assert_ptr_ne(e, poison);
		delta_enc_free(e);
	} else {
		ck_assert_ptr_eq(e, poison);
	}
	free(sig);
}
END_TEST

/*
 * A signature's block length against the new file's size: a real one of
 * a basis about the file's size fits, 1 GiB blocks (a peer that would
 * have us hold 1 GiB of a small file) do not, with a reason.
 */
START_TEST(sig_fits_size)
{
	uint8_t hdr[SIG_HDR_LEN];
	uint8_t *data = malloc(100 * KIB);
	struct hs_buf sig;
	char why[160] = "";
	int fd;

	ck_assert_ptr_nonnull(data);
	fill_random(data, 100 * KIB, 7);
	fd = sig_of("fits", data, 100 * KIB, &sig);
	close(fd);
	ck_assert_int_eq(
	    delta_sig_fits(sig.data, sig.len, 100 * KIB, why, sizeof(why)),
	    HS_OK);
	ck_assert_int_eq(
	    delta_sig_fits(sig.data, sig.len, 80 * KIB, why, sizeof(why)),
	    HS_OK);
	ck_assert_int_eq(delta_sig_fits(sig.data, sig.len, 0, why, sizeof(why)),
	                 HS_OK);
	hs_buf_free(&sig);
	free(data);

	put_be32(hdr, MAGIC_RK_BLAKE2_SIG);
	put_be32(hdr + 4, 1u << 30);
	put_be32(hdr + 8, 32);
	ck_assert_int_eq(
	    delta_sig_fits(hdr, sizeof(hdr), 1 << 20, why, sizeof(why)),
	    HS_ELIMIT);
	ck_assert_msg(strstr(why, "block length 1073741824") != NULL, "%s",
	              why);
	/* A file as large as the blocks claim takes them. */
	ck_assert_int_eq(delta_sig_fits(hdr, sizeof(hdr),
	                                (uint64_t)SIG_BLOCKS_MAX << 30, why,
	                                sizeof(why)),
	                 HS_OK);
}
END_TEST

START_TEST(sig_check_null_free)
{
	delta_enc_free(NULL);
	delta_dec_free(NULL);
}
END_TEST

/* ----------------------------------------------------- hostile deltas */

#define HOSTILE_BASIS 100
#define DM 0x72, 0x73, 0x02, 0x36 /* MAGIC_DELTA, big-endian */
#define ANY_ERR 1                 /* HS_EPROTO or HS_ELIMIT */

/* One piece of the expected output: basis bytes or delta bytes. */
struct seg {
	char from; /* 'b' basis, 'd' the delta itself, 0 end */
	uint16_t off;
	uint16_t len;
};

struct dec_case {
	const char *name;
	uint8_t d[96]; /* the delta (unlisted bytes are zero) */
	size_t len;
	uint64_t max_out;
	int rc;           /* HS_OK, a code, or ANY_ERR */
	const char *why;  /* a substring of delta_dec_why, or NULL */
	struct seg ok[3]; /* the output when rc is HS_OK */
};

/* clang-format off */
static const struct dec_case dec_cases[] = {
    /* Well-formed deltas first. */
    {"magic + END", {DM, 0x00}, 5, 0, HS_OK, NULL, {{0}}},
    {"copy all", {DM, 0x45, 0, 100, 0x00}, 8, 100, HS_OK, NULL,
     {{'b', 0, 100}}},
    {"copy last byte", {DM, 0x45, 99, 1, 0x00}, 8, 1, HS_OK, NULL,
     {{'b', 99, 1}}},
    {"overlapping copies", {DM, 0x45, 0, 50, 0x45, 25, 50, 0x00}, 11, 100,
     HS_OK, NULL, {{'b', 0, 50}, {'b', 25, 50}}},
    {"literal at max_out", {DM, 0x05, 'h', 'e', 'l', 'l', 'o', 0x00}, 11, 5,
     HS_OK, NULL, {{'d', 5, 5}}},
    {"LITERAL_N1 + COPY_N2_N2",
     {DM, 0x41, 3, 'a', 'b', 'c', 0x4a, 0, 10, 0, 5, 0x00}, 15, 8, HS_OK,
     NULL, {{'d', 6, 3}, {'b', 10, 5}}},
    {"COPY_N8_N8 inside",
     {DM, 0x54, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 98, 0x00}, 22,
     98, HS_OK, NULL, {{'b', 1, 98}}},
    /* Copies outside the basis. */
    {"copy 20 at 90", {DM, 0x45, 90, 20, 0x00}, 8, 1000, ANY_ERR, "outside",
     {{0}}},
    {"copy 1 at 100", {DM, 0x45, 100, 1, 0x00}, 8, 1000, ANY_ERR, "outside",
     {{0}}},
    {"copy 1 at 200", {DM, 0x45, 200, 1, 0x00}, 8, 1000, ANY_ERR, "outside",
     {{0}}},
    {"copy 101 at 0", {DM, 0x45, 0, 101, 0x00}, 8, 1000, ANY_ERR, "outside",
     {{0}}},
    {"copy 0 at 0", {DM, 0x45, 0, 0, 0x00}, 8, 1000, ANY_ERR, NULL, {{0}}},
    {"copy 0 at 200", {DM, 0x45, 200, 0, 0x00}, 8, 1000, ANY_ERR, NULL,
     {{0}}},
    {"copy at 2^63 (negative)",
     {DM, 0x51, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 0x00}, 15, 1000, ANY_ERR, NULL,
     {{0}}},
    {"copy at 2^64-1",
     {DM, 0x51, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0x00}, 15,
     1000, ANY_ERR, NULL, {{0}}},
    {"copy length 2^64-1",
     {DM, 0x48, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, 15,
     UINT64_MAX, ANY_ERR, NULL, {{0}}},
    {"copy length 2^62", {DM, 0x48, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x00}, 15,
     UINT64_MAX, ANY_ERR, NULL, {{0}}},
    {"copy 100 at 1 after a good copy",
     {DM, 0x45, 0, 10, 0x45, 1, 100, 0x00}, 11, 1000, ANY_ERR, "outside",
     {{0}}},
    /* Output past max_out. */
    {"literal 64, max_out 10", {DM, 0x40}, 4 + 1 + 64 + 1, 10, HS_ELIMIT,
     "more than", {{0}}},
    {"literal 6, max_out 5", {DM, 0x06, 'a', 'b', 'c', 'd', 'e', 'f', 0x00},
     12, 5, HS_ELIMIT, "more than", {{0}}},
    {"copies past max_out 250",
     {DM, 0x45, 0, 100, 0x45, 0, 100, 0x45, 0, 100, 0x00}, 14, 250,
     HS_ELIMIT, "more than", {{0}}},
    {"copy with max_out 0", {DM, 0x45, 0, 1, 0x00}, 8, 0, HS_ELIMIT,
     "more than", {{0}}},
    {"LITERAL_N8 2^62, max_out 10",
     {DM, 0x44, 0x40, 0, 0, 0, 0, 0, 0, 0, 'x', 'y', 'z'}, 16, 10, ANY_ERR,
     NULL, {{0}}},
    /* Broken framing. */
    {"bad magic", {0x72, 0x73, 0x02, 0x37, 0x00}, 5, 1000, ANY_ERR, NULL,
     {{0}}},
    {"signature magic", {0x72, 0x73, 0x01, 0x47, 0x00}, 5, 1000, ANY_ERR,
     NULL, {{0}}},
    {"nothing at all", {0}, 0, 1000, ANY_ERR, NULL, {{0}}},
    {"half a magic", {0x72, 0x73}, 2, 1000, ANY_ERR, NULL, {{0}}},
    {"magic only", {DM}, 4, 1000, ANY_ERR, "early", {{0}}},
    {"no END", {DM, 0x45, 0, 10}, 7, 1000, ANY_ERR, "early", {{0}}},
    {"cut in a COPY", {DM, 0x46, 0, 0}, 7, 1000, ANY_ERR, "early", {{0}}},
    {"cut in a literal", {DM, 0x10, 'a', 'b'}, 7, 1000, ANY_ERR, "early",
     {{0}}},
    {"opcode 0xff", {DM, 0xff, 0x00}, 6, 1000, ANY_ERR, NULL, {{0}}},
    {"opcode 0xff after a copy", {DM, 0x45, 0, 10, 0xff, 0x00}, 9, 1000,
     ANY_ERR, NULL, {{0}}},
    {"opcode 0x55", {DM, 0x55, 0x00}, 6, 1000, ANY_ERR, NULL, {{0}}},
    /*
     * Bytes after END are not part of any delta librsync writes: the
     * same input must not be accepted or refused depending on how it was
     * cut into feeds.
     */
    {"a byte after END", {DM, 0x45, 0, 10, 0x00, 0x00}, 9, 1000, ANY_ERR,
     NULL, {{0}}},
    {"a copy after END", {DM, 0x45, 0, 10, 0x00, 0x45, 0, 10, 0x00}, 12,
     1000, ANY_ERR, NULL, {{0}}},
};
/* clang-format on */

/* How a delta reaches the decoder. */
enum feed_mode {
	FEED_WHOLE,     /* one call, then an empty call with eof */
	FEED_BYTES,     /* a byte a call, then an empty call with eof */
	FEED_WHOLE_EOF, /* one call with eof */
	FEED_N
};

START_TEST(hostile_table)
{
	const struct dec_case *tc = &dec_cases[_i / FEED_N];
	const enum feed_mode mode = (enum feed_mode)(_i % FEED_N);
	uint8_t basis[HOSTILE_BASIS];
	struct delta_dec *d = NULL;
	struct sink out;
	const char *why;
	size_t off = 0;
	int bfd, rc = HS_OK;

	fill_random(basis, sizeof(basis), 9);
	bfd = file_make("basis", basis, sizeof(basis));
	ck_assert_int_eq(delta_dec_new(bfd, sizeof(basis), tc->max_out, &d),
	                 HS_OK);
	sink_init(&out, 1 * MIB);

	switch (mode) {
	case FEED_WHOLE:
		rc = delta_dec_feed(d, tc->d, tc->len, 0, sink_emit, &out);
		if (rc == HS_OK)
			rc = delta_dec_feed(d, NULL, 0, 1, sink_emit, &out);
		break;
	case FEED_BYTES:
		for (off = 0; off < tc->len && rc == HS_OK; off++)
			rc = delta_dec_feed(d, tc->d + off, 1, 0, sink_emit,
			                    &out);
		if (rc == HS_OK)
			rc = delta_dec_feed(d, NULL, 0, 1, sink_emit, &out);
		break;
	case FEED_WHOLE_EOF:
	default:
		rc = delta_dec_feed(d, tc->d, tc->len, 1, sink_emit, &out);
		break;
	}
	why = delta_dec_why(d);
	ck_assert_ptr_nonnull(why);

	/* Whatever happened, no more than max_out bytes came out. */
	ck_assert_msg(out.total <= tc->max_out,
	              "%s (feed %d): %llu bytes out, max_out %llu", tc->name,
	              mode, (unsigned long long)out.total,
	              (unsigned long long)tc->max_out);

	if (tc->rc == HS_OK) {
		size_t i, at = 0;

		ck_assert_msg(rc == HS_OK, "%s (feed %d): %s (%s)", tc->name,
		              mode, hs_strerror(rc), why);
		for (i = 0; i < N_ELEM(tc->ok) && tc->ok[i].from != 0; i++) {
			const struct seg *s = &tc->ok[i];
			const uint8_t *src = s->from == 'b' ? basis : tc->d;

			ck_assert_uint_ge(out.buf.len, at + s->len);
			ck_assert_msg(memcmp(out.buf.data + at, src + s->off,
			                     s->len) == 0,
			              "%s (feed %d): piece %zu differs",
			              tc->name, mode, i);
			at += s->len;
		}
		ck_assert_uint_eq(out.buf.len, at);
	} else {
		ck_assert_msg(rc < 0, "%s (feed %d): accepted, %llu bytes out",
		              tc->name, mode, (unsigned long long)out.total);
		if (tc->rc == ANY_ERR)
			ck_assert_msg(
			    rc == HS_EPROTO || rc == HS_ELIMIT,
			    "%s (feed %d): %s, want HS_EPROTO or HS_ELIMIT "
			    "(%s)",
			    tc->name, mode, hs_strerror(rc), why);
		else
			ck_assert_msg(rc == tc->rc,
			              "%s (feed %d): %s, want %s "
			              "(%s)",
			              tc->name, mode, hs_strerror(rc),
			              hs_strerror(tc->rc), why);
		ck_assert_msg(why[0] != '\0', "%s (feed %d): no reason",
		              tc->name, mode);
		if (tc->why != NULL)
			ck_assert_msg(
			    strstr(why, tc->why) != NULL,
			    "%s (feed %d): reason \"%s\" lacks \"%s\"",
			    tc->name, mode, why, tc->why);
	}
	delta_dec_free(d);
	close(bfd);
	hs_buf_free(&out.buf);
}
END_TEST

/*
 * Many valid copies, each within the basis, whose sum passes max_out:
 * fails with HS_ELIMIT once the limit is reached, having emitted at most
 * max_out bytes, whatever the feed size.
 */
START_TEST(hostile_copy_flood)
{
	const size_t n_copies = 4096, max_out = 100 * 1000 + 37;
	uint8_t basis[HOSTILE_BASIS], *delta;
	struct delta_dec *d = NULL;
	struct sink out;
	size_t len = 0, i, off;
	int bfd, rc = HS_OK;

	fill_random(basis, sizeof(basis), 10);
	bfd = file_make("basis", basis, sizeof(basis));
	delta = malloc(4 + 3 * n_copies + 1);
	ck_assert_ptr_nonnull(delta);
	put_be32(delta, MAGIC_DELTA);
	len = 4;
	for (i = 0; i < n_copies; i++) {
		delta[len++] = 0x45;
		delta[len++] = 0;
		delta[len++] = HOSTILE_BASIS;
	}
	delta[len++] = 0x00;

	ck_assert_int_eq(delta_dec_new(bfd, sizeof(basis), max_out, &d), HS_OK);
	sink_init(&out, 1 * MIB);
	for (off = 0; off < len && rc == HS_OK; off += 7)
		rc = delta_dec_feed(d, delta + off,
		                    len - off < 7 ? len - off : 7, 0, sink_emit,
		                    &out);
	if (rc == HS_OK)
		rc = delta_dec_feed(d, NULL, 0, 1, sink_emit, &out);
	ck_assert_int_eq(rc, HS_ELIMIT);
	ck_assert_ptr_nonnull(strstr(delta_dec_why(d), "more than"));
	ck_assert_uint_le(out.total, max_out);
	/* What came out is the basis over and over. */
	for (off = 0; off + HOSTILE_BASIS <= out.buf.len; off += HOSTILE_BASIS)
		ck_assert_mem_eq(out.buf.data + off, basis, HOSTILE_BASIS);

	delta_dec_free(d);
	close(bfd);
	hs_buf_free(&out.buf);
	free(delta);
}
END_TEST

/* ------------------------------------------------------- block size */

static const struct {
	uint64_t size;
	uint32_t bsize;
} size_cases[] = {
    {0, 0},
    {MIB - 1, 0},              /* below the threshold: no record */
    {MIB, 16 * KIB},           /* 64 blocks */
    {64 * MIB, 16 * KIB},      /* 4096 blocks (the quick bench) */
    {512 * MIB, 16 * KIB},     /* exactly 32768 blocks */
    {512 * MIB + 1, 32 * KIB}, /* one more byte: doubles */
    {GIB, 32 * KIB},           /* 32768 blocks */
    {32 * GIB, MIB},           /* the largest block */
    {32 * GIB + 1, 0},         /* past it: signatures only */
};

START_TEST(size_table)
{
	ck_assert_uint_eq(blk_size_for(size_cases[_i].size),
	                  size_cases[_i].bsize);
	if (size_cases[_i].bsize != 0)
		ck_assert_uint_le(
		    (size_cases[_i].size + size_cases[_i].bsize - 1) /
		        size_cases[_i].bsize,
		    IDX_BLOCKS_MAX);
}
END_TEST

/* ------------------------------------------------------ block table */

/* Feeding in slices of any size gives the hashes of whole blocks. */
static const size_t slices[] = {1,         7,      4096, 16 * KIB, 16 * KIB + 3,
                                256 * KIB, 3 * MIB};

START_TEST(table_slicing)
{
	size_t size = 64 * KIB + 12345, off = 0, i;
	uint8_t *data = malloc(size);
	struct blk_table t;

	fill_random(data, size, 42);
	ck_assert_int_eq(blk_table_init(&t, size, 16 * KIB), HS_OK);
	ck_assert_uint_eq(t.n, (size + 16 * KIB - 1) / (16 * KIB));
	while (off < size) {
		size_t n = slices[_i] < size - off ? slices[_i] : size - off;

		ck_assert_int_eq(blk_table_done(&t), HS_EPROTO);
		ck_assert_int_eq(blk_table_feed(&t, data + off, n), HS_OK);
		off += n;
	}
	ck_assert_int_eq(blk_table_done(&t), HS_OK);
	for (i = 0; i < t.n; i++) {
		size_t b = i * 16 * KIB;
		size_t len = size - b < 16 * KIB ? size - b : 16 * KIB;
		XXH128_canonical_t c;

		XXH128_canonicalFromHash(&c, XXH3_128bits(data + b, len));
		ck_assert_mem_eq(t.hash[i], c.digest, BLK_HASH_LEN);
	}
	/* Past the announced size: refused. */
	ck_assert_int_eq(blk_table_feed(&t, data, 1), HS_ELIMIT);
	blk_table_free(&t);
	blk_table_free(&t); /* twice is harmless */
	free(data);
}
END_TEST

START_TEST(table_bad_sizes)
{
	struct blk_table t;

	ck_assert_int_eq(blk_table_init(&t, MIB, 1000), HS_EPROTO);
	ck_assert_int_eq(blk_table_init(&t, MIB, 8 * KIB), HS_EPROTO);
	ck_assert_int_eq(blk_table_init(&t, MIB, 2 * MIB), HS_EPROTO);
	ck_assert_int_eq(blk_table_init(&t, 600 * MIB, 16 * KIB), HS_ELIMIT);
}
END_TEST

START_TEST(token_follows_content)
{
	uint8_t data[64 * 1024], a[32], b[32], c[32];
	struct blk_table t;

	fill_random(data, sizeof(data), 7);
	ck_assert_int_eq(blk_table_init(&t, sizeof(data), 16 * KIB), HS_OK);
	blk_table_feed(&t, data, sizeof(data));
	blk_token(&t, a);
	blk_token(&t, b);
	ck_assert_mem_eq(a, b, sizeof(a));
	blk_table_free(&t);
	data[40000] ^= 1;
	ck_assert_int_eq(blk_table_init(&t, sizeof(data), 16 * KIB), HS_OK);
	blk_table_feed(&t, data, sizeof(data));
	blk_token(&t, c);
	ck_assert(memcmp(a, c, sizeof(a)) != 0);
	blk_table_free(&t);
}
END_TEST

START_TEST(keys)
{
	uint8_t k1[BLK_KEY_CAP], k2[BLK_KEY_CAP];
	size_t l1, l2;
	char longp[600];

	ck_assert_int_eq(blk_key("install", 0, "a/b", k1, sizeof(k1), &l1),
	                 HS_OK);
	ck_assert_int_eq(blk_key("install", 1, "a/b", k2, sizeof(k2), &l2),
	                 HS_OK);
	ck_assert_uint_eq(l1, l2);
	ck_assert(memcmp(k1, k2, l1) != 0); /* the source counts */
	/* "ab" + "c" and "a" + "bc" differ: the set name ends with a NUL. */
	ck_assert_int_eq(blk_key("ab", 0, "c", k1, sizeof(k1), &l1), HS_OK);
	ck_assert_int_eq(blk_key("a", 0, "bc", k2, sizeof(k2), &l2), HS_OK);
	ck_assert(l1 != l2 || memcmp(k1, k2, l1) != 0);
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	ck_assert_int_eq(blk_key("s", 0, longp, k1, sizeof(k1), &l1),
	                 HS_ELIMIT); /* past LMDB's key limit */
}
END_TEST

/* -------------------------------------------------------------- suite */

static Suite *
delta_suite(void)
{
	Suite *s = suite_create("delta");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, roundtrip_table, 0,
	                    (int)(N_ELEM(rt_basis_sizes) * RT_N));
	tcase_add_test(tc, roundtrip_one_feed);
	tcase_add_test(tc, sink_error_is_not_the_delta);
	suite_add_tcase(s, tc);

	tc = tcase_create("sig_cap");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_set_timeout(tc, 100);
	tcase_add_test(tc, sig_block_cap);
	suite_add_tcase(s, tc);

	tc = tcase_create("sig_check");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, sig_check_table, 0, (int)N_ELEM(sig_cases));
	tcase_add_test(tc, sig_check_null_free);
	tcase_add_test(tc, sig_fits_size);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_loop_test(tc, hostile_table, 0,
	                    (int)(N_ELEM(dec_cases) * FEED_N));
	tcase_add_test(tc, hostile_copy_flood);
	suite_add_tcase(s, tc);

	tc = tcase_create("block size");
	tcase_add_loop_test(tc, size_table, 0, (int)N_ELEM(size_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("block table");
	tcase_add_loop_test(tc, table_slicing, 0, (int)N_ELEM(slices));
	tcase_add_test(tc, table_bad_sizes);
	tcase_add_test(tc, token_follows_content);
	tcase_add_test(tc, keys);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(delta_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
