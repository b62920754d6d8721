/*
 * check_patch.c - block patches (delta.h, index/blocks.c): the
 * block size per file size, the XXH3 block table fed in any slicing, the
 * patch token, the standby's checks on hostile patch frames, the records
 * in LMDB, and the in-kernel copy.
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "idx.h"
#include "delta.h"
#include "tree.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define KIB (1024ull)
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)

static void
fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 2654435761u + 0x9e3779b97f4a7c15ull;
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = (uint8_t)((x * 0x2545f4914f6cdd1dull) >> 56);
	}
}

/* ------------------------------------------------------- block size */

static const struct {
	uint64_t size;
	uint32_t bsize;
} size_cases[] = {
	{0, 0},
	{MIB - 1, 0},               /* below the threshold: no record */
	{MIB, 16 * KIB},            /* 64 blocks */
	{64 * MIB, 16 * KIB},       /* 4096 blocks (the quick bench) */
	{512 * MIB, 16 * KIB},      /* exactly 32768 blocks */
	{512 * MIB + 1, 32 * KIB},  /* one more byte: doubles */
	{GIB, 32 * KIB},            /* 32768 blocks */
	{32 * GIB, MIB},            /* the largest block */
	{32 * GIB + 1, 0},          /* past it: signatures only */
};

START_TEST(size_table)
{
	ck_assert_uint_eq(blk_size_for(size_cases[_i].size),
	                  size_cases[_i].bsize);
	if (size_cases[_i].bsize != 0)
		ck_assert_uint_le((size_cases[_i].size +
		                   size_cases[_i].bsize - 1) /
		                      size_cases[_i].bsize,
		                  IDX_BLOCKS_MAX);
}
END_TEST

/* ------------------------------------------------------ block table */

/* Feeding in slices of any size gives the hashes of whole blocks. */
static const size_t slices[] = {1, 7, 4096, 16 * KIB, 16 * KIB + 3,
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

/* ------------------------------------------------- hostile patches */

/* One frame of a patch: offset and length of its data (0xff filled). */
struct blk {
	uint64_t off;
	size_t len;
};

static const struct rx_case {
	const char *name;
	uint64_t basis, final;
	uint32_t bsize;
	struct blk b[4];
	size_t n;
	int init_rc;  /* patch_rx_init */
	int block_rc; /* the first failing block, or HS_OK */
	size_t bad;   /* its index */
	int end_rc;   /* patch_rx_end when all blocks passed */
	const char *why; /* part of the reason */
} rx_cases[] = {
	{"same size, two blocks", 4 * MIB, 4 * MIB, 16 * KIB,
	 {{0, 16 * KIB}, {MIB, 16 * KIB}}, 2, HS_OK, HS_OK, 0, HS_OK, ""},
	{"no block at all", 4 * MIB, 4 * MIB, 16 * KIB, {{0, 0}}, 0, HS_OK,
	 HS_OK, 0, HS_OK, ""},
	{"grown: the tail sent", 4 * MIB, 4 * MIB + 100, 16 * KIB,
	 {{4 * MIB, 100}}, 1, HS_OK, HS_OK, 0, HS_OK, ""},
	{"shrunk: the new last block", 4 * MIB, 2 * MIB + 5, 16 * KIB,
	 {{2 * MIB, 5}}, 1, HS_OK, HS_OK, 0, HS_OK, ""},
	{"block size not a power of two", MIB, MIB, 20000, {{0, 0}}, 0,
	 HS_EPROTO, 0, 0, 0, "block size"},
	{"block size too small", MIB, MIB, 4096, {{0, 0}}, 0, HS_EPROTO, 0,
	 0, 0, "block size"},
	{"block size too big", MIB, MIB, 4 * MIB, {{0, 0}}, 0, HS_EPROTO, 0,
	 0, 0, "block size"},
	{"final size over the limit", MIB, 600 * MIB, 16 * KIB, {{0, 0}}, 0,
	 HS_ELIMIT, 0, 0, 0, "past the limit"},
	{"offset past the final size", 4 * MIB, 4 * MIB, 16 * KIB,
	 {{4 * MIB, 16 * KIB}}, 1, HS_OK, HS_EPROTO, 0, 0,
	 "past the final size"},
	{"offset not on a block", 4 * MIB, 4 * MIB, 16 * KIB,
	 {{100, 16 * KIB}}, 1, HS_OK, HS_EPROTO, 0, 0, "block boundary"},
	{"unsorted", 4 * MIB, 4 * MIB, 16 * KIB,
	 {{MIB, 16 * KIB}, {0, 16 * KIB}}, 2, HS_OK, HS_EPROTO, 1, 0,
	 "unsorted"},
	{"overlapping (twice the same)", 4 * MIB, 4 * MIB, 16 * KIB,
	 {{MIB, 16 * KIB}, {MIB, 16 * KIB}}, 2, HS_OK, HS_EPROTO, 1, 0,
	 "overlapping"},
	{"block larger than the block size", 4 * MIB, 4 * MIB, 16 * KIB,
	 {{0, 32 * KIB}}, 1, HS_OK, HS_ELIMIT, 0, 0, "not 16384"},
	{"short block inside the file", 4 * MIB, 4 * MIB, 16 * KIB,
	 {{0, 100}}, 1, HS_OK, HS_EPROTO, 0, 0, "not 16384"},
	{"last block overruns the end", 4 * MIB, 4 * MIB + 100, 16 * KIB,
	 {{4 * MIB, 16 * KIB}}, 1, HS_OK, HS_ELIMIT, 0, 0, "not 100"},
	{"growth with a gap", 4 * MIB, 4 * MIB + 40 * KIB, 16 * KIB,
	 {{4 * MIB + 16 * KIB, 16 * KIB}}, 1, HS_OK, HS_EPROTO, 0, 0,
	 "unsent past the basis"},
	{"growth never sent", 4 * MIB, 5 * MIB, 16 * KIB, {{0, 16 * KIB}}, 1,
	 HS_OK, HS_OK, 0, HS_EPROTO, "unsent"},
	{"shrunk, new last block missing", 4 * MIB, 2 * MIB + 5, 16 * KIB,
	 {{0, 16 * KIB}}, 1, HS_OK, HS_OK, 0, HS_EPROTO, "unsent"},
};

START_TEST(rx_table)
{
	const struct rx_case *c = &rx_cases[_i];
	struct patch_hdr h;
	struct patch_rx rx;
	char why[256] = "";
	uint8_t *frame = malloc(8 + 64 * KIB);
	size_t i;
	int rc;

	memset(&h, 0, sizeof(h));
	h.bsize = c->bsize;
	rc = patch_rx_init(&rx, c->basis, c->final, &h, why, sizeof(why));
	ck_assert_msg(rc == c->init_rc, "%s: init %d (%s)", c->name, rc, why);
	if (rc < 0)
		goto check_why;
	for (i = 0; i < c->n; i++) {
		const uint8_t *data;
		uint64_t off;
		size_t n;
		int k;

		for (k = 0; k < 8; k++)
			frame[k] = (uint8_t)(c->b[i].off >> (56 - 8 * k));
		memset(frame + 8, 0xff, c->b[i].len);
		rc = patch_rx_block(&rx, frame, 8 + c->b[i].len, &off, &data,
		                    &n, why, sizeof(why));
		if (rc < 0) {
			ck_assert_msg(rc == c->block_rc && i == c->bad,
			              "%s: block %zu: %d (%s)", c->name, i, rc,
			              why);
			goto check_why;
		}
		ck_assert_uint_eq(off, c->b[i].off);
		ck_assert_uint_eq(n, c->b[i].len);
		ck_assert_ptr_eq(data, frame + 8);
	}
	ck_assert_msg(c->block_rc == HS_OK, "%s: blocks passed", c->name);
	rc = patch_rx_end(&rx, why, sizeof(why));
	ck_assert_msg(rc == c->end_rc, "%s: end %d (%s)", c->name, rc, why);
check_why:
	ck_assert_msg(strstr(why, c->why) != NULL, "%s: why '%s'", c->name,
	              why);
	free(frame);
}
END_TEST

START_TEST(rx_short_frame)
{
	struct patch_hdr h = {.bsize = 16 * KIB};
	struct patch_rx rx;
	uint8_t frame[7] = {0};
	const uint8_t *data;
	uint64_t off;
	size_t n;
	char why[256];

	ck_assert_int_eq(patch_rx_init(&rx, MIB, MIB, &h, why, sizeof(why)),
	                 HS_OK);
	ck_assert_int_eq(patch_rx_block(&rx, frame, sizeof(frame), &off, &data,
	                                &n, why, sizeof(why)),
	                 HS_EPROTO);
}
END_TEST

START_TEST(hdr_codec)
{
	struct patch_hdr h, g;
	struct proto_wr w;
	struct proto_rd r;

	memset(&h, 0xab, sizeof(h.basis));
	h.bsize = 32 * KIB;
	proto_wr_init(&w);
	patch_hdr_encode(&w, &h);
	r.p = w.buf.data;
	r.left = w.buf.len;
	ck_assert_int_eq(patch_hdr_decode(&r, &g), HS_OK);
	ck_assert_mem_eq(g.basis, h.basis, sizeof(h.basis));
	ck_assert_uint_eq(g.bsize, h.bsize);
	/* Truncated, and with a byte too many. */
	r.p = w.buf.data;
	r.left = w.buf.len - 1;
	ck_assert_int_eq(patch_hdr_decode(&r, &g), HS_EPROTO);
	proto_put_u8(&w, 0);
	r.p = w.buf.data;
	r.left = w.buf.len;
	ck_assert_int_eq(patch_hdr_decode(&r, &g), HS_EPROTO);
	proto_wr_free(&w);
}
END_TEST

/* ---------------------------------------------------------- records */

static char tmpdir[64];

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void
tmp_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_patch.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
tmp_teardown(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

START_TEST(records_round_trip)
{
	struct idx *x;
	struct idx_txn *t;
	struct idx_blocks b, g;
	struct idx_written a, ga;
	uint8_t hashes[3][IDX_BLOCK_HASH_LEN];

	ck_assert_int_eq(idx_open(tmpdir, 0, &x), HS_OK);
	ck_assert_int_eq(idx_blocks_get(x, "k", 1, &g), HS_ENOTFOUND);
	ck_assert_int_eq(idx_written_get(x, "k", 1, &ga), HS_ENOTFOUND);
	memset(&b, 0, sizeof(b));
	memset(b.token, 0x11, sizeof(b.token));
	fill_random(&hashes[0][0], sizeof(hashes), 3);
	b.size = 40000;
	b.bsize = 16 * KIB;
	b.n = 3;
	b.hash = hashes;
	memset(&a, 0, sizeof(a));
	a.size = 40000;
	a.ino = 77;
	a.ctime_nsec = 5;
	memset(a.token, 0x22, sizeof(a.token));
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_blocks_put(t, "k", 1, &b), HS_OK);
	ck_assert_int_eq(idx_written_put(t, "k", 1, &a), HS_OK);
	ck_assert_int_eq(idx_blocks_del(t, "absent", 6), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_blocks_get(x, "k", 1, &g), HS_OK);
	ck_assert_uint_eq(g.n, 3);
	ck_assert_uint_eq(g.size, 40000);
	ck_assert_uint_eq(g.bsize, 16 * KIB);
	ck_assert_mem_eq(g.token, b.token, sizeof(b.token));
	ck_assert_mem_eq(g.hash, hashes, sizeof(hashes));
	idx_blocks_clear(&g);
	ck_assert_int_eq(idx_written_get(x, "k", 1, &ga), HS_OK);
	ck_assert_mem_eq(&ga, &a, sizeof(a));
	/* An aborted transaction leaves nothing. */
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_blocks_del(t, "k", 1), HS_OK);
	idx_txn_abort(t);
	ck_assert_int_eq(idx_blocks_get(x, "k", 1, &g), HS_OK);
	idx_blocks_clear(&g);
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_blocks_del(t, "k", 1), HS_OK);
	ck_assert_int_eq(idx_written_del(t, "k", 1), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_blocks_get(x, "k", 1, &g), HS_ENOTFOUND);
	ck_assert_int_eq(idx_written_get(x, "k", 1, &ga), HS_ENOTFOUND);
	idx_close(x);
}
END_TEST

/* The ino in the written record at key `k` (a string), 0 when none. */
static uint64_t
written_ino(struct idx *x, const char *k)
{
	struct idx_written w;

	return idx_written_get(x, k, strlen(k), &w) == HS_OK ? w.ino : 0;
}

START_TEST(records_follow_a_directory)
{
	/*
	 * "d" (the directory's own name) and "dd/x" (sharing its first
	 * byte) are not below "d/"; "e/old" is replaced by the move to "e/".
	 */
	static const struct {
		const char *key;
		uint64_t ino;
	} before[] = {
	    {"d", 1},       {"d/x", 2},  {"d/sub/y", 3},
	    {"d.new/x", 4}, {"dd/x", 5}, {"e/old", 6},
	};
	static const struct {
		const char *key;
		uint64_t ino; /* 0: no record */
	} after[] = {
	    {"d", 1},       {"d/x", 0},     {"d/sub/y", 0}, {"e/x", 2},
	    {"e/sub/y", 3}, {"d.new/x", 4}, {"dd/x", 5},    {"e/old", 0},
	};
	struct idx *x;
	struct idx_txn *t;
	struct idx_written w;
	size_t i;

	ck_assert_int_eq(idx_open(tmpdir, 0, &x), HS_OK);
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	for (i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
		w.ino = before[i].ino;
		ck_assert_int_eq(idx_written_put(t, before[i].key,
		                                 strlen(before[i].key), &w),
		                 HS_OK);
	}
	ck_assert_int_eq(idx_written_move(t, "d/", 2, "e/", 2), HS_OK);
	/* A prefix of the other: refused, nothing moved. */
	ck_assert_int_eq(idx_written_move(t, "e/", 2, "e/sub/", 6), HS_ELIMIT);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	for (i = 0; i < sizeof(after) / sizeof(after[0]); i++)
		ck_assert_msg(written_ino(x, after[i].key) == after[i].ino,
		              "%s: ino %llu, want %llu", after[i].key,
		              (unsigned long long)written_ino(x, after[i].key),
		              (unsigned long long)after[i].ino);
	idx_close(x);
}
END_TEST

/*
 * What is written ahead of a rename lives beside the records, not in
 * them, and moves with its directory as they do.
 */
START_TEST(records_written_ahead)
{
	struct idx_written a, w;
	struct idx *x;
	struct idx_txn *t;

	ck_assert_int_eq(idx_open(tmpdir, 0, &x), HS_OK);
	memset(&a, 0, sizeof(a));
	a.ino = 9;
	a.size = 123;
	memset(a.token, 0x33, sizeof(a.token));
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_writing_put(t, "d/f", 3, &a), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_written_get(x, "d/f", 3, &w), HS_ENOTFOUND);
	ck_assert_int_eq(idx_writing_get(x, "d/f", 3, &w), HS_OK);
	ck_assert_mem_eq(&w, &a, sizeof(a));
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_written_move(t, "d/", 2, "e/", 2), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_writing_get(x, "d/f", 3, &w), HS_ENOTFOUND);
	ck_assert_int_eq(idx_writing_get(x, "e/f", 3, &w), HS_OK);
	ck_assert_uint_eq(w.ino, 9);
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_writing_del(t, "e/f", 3), HS_OK);
	ck_assert_int_eq(idx_writing_del(t, "absent", 6), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_writing_get(x, "e/f", 3, &w), HS_ENOTFOUND);
	idx_close(x);
}
END_TEST

START_TEST(copy_in_kernel)
{
	char a[128], b[128];
	size_t size = 9 * MIB + 333;
	uint8_t *data = malloc(size), *back = malloc(size);
	int in, out;

	fill_random(data, size, 9);
	snprintf(a, sizeof(a), "%s/a", tmpdir);
	snprintf(b, sizeof(b), "%s/b", tmpdir);
	in = open(a, O_RDWR | O_CREAT, 0600);
	ck_assert_int_eq(write(in, data, size), (ssize_t)size);
	out = open(b, O_RDWR | O_CREAT, 0600);
	ck_assert_int_eq(fs_copy_fd_flushing(in, out, size - 100), HS_OK);
	ck_assert_int_eq(pread(out, back, size, 0), (ssize_t)(size - 100));
	ck_assert_mem_eq(back, data, size - 100);
	/* More than the source holds: an error, not a loop. */
	ck_assert_int_lt(fs_copy_fd(in, out, size + 1), 0);
	close(in);
	close(out);
	free(data);
	free(back);
}
END_TEST

static Suite *
patch_suite(void)
{
	Suite *s = suite_create("patch");
	TCase *tc;

	tc = tcase_create("block size");
	tcase_add_loop_test(tc, size_table, 0, (int)N_ELEM(size_cases));
	suite_add_tcase(s, tc);
	tc = tcase_create("block table");
	tcase_add_loop_test(tc, table_slicing, 0, (int)N_ELEM(slices));
	tcase_add_test(tc, table_bad_sizes);
	tcase_add_test(tc, token_follows_content);
	tcase_add_test(tc, keys);
	suite_add_tcase(s, tc);
	tc = tcase_create("hostile patches");
	tcase_add_loop_test(tc, rx_table, 0, (int)N_ELEM(rx_cases));
	tcase_add_test(tc, rx_short_frame);
	tcase_add_test(tc, hdr_codec);
	suite_add_tcase(s, tc);
	tc = tcase_create("records and copies");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, records_round_trip);
	tcase_add_test(tc, records_follow_a_directory);
	tcase_add_test(tc, records_written_ahead);
	tcase_add_test(tc, copy_in_kernel);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(patch_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
