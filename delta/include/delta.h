/*
 * delta.h - what travels instead of a whole file: librsync signatures and
 * deltas (delta_), the only users of librsync.h, and the block tables of
 * big files that block patches compare (blk_).
 *
 * Block patches: a changed big file travels as the blocks whose hash
 * differs from the record of what the standby holds, with no signature
 * round trip and no read of the standby's copy.
 *
 *	primary (primary/sendpatch.c)	records per file, after SET_DONE:
 *				content token, block size, one XXH3-128 per
 *				block
 *	standby (standby/apply_rec.c)	records per path: stat fingerprint
 *				after the write + content token; on OP_PATCH
 *				(standby/apply_patch.c) checks them, copies its
 *				basis in-kernel into a temporary, writes the
 *				blocks, joins the batch
 * The wire form of a patch is in proto.h (OP_PATCH, struct proto_patch_rx).
 */
#ifndef DELTA_H
#define DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "hs.h"
#include "idx.h"
#include "proto.h"

/* ------------------------------------------------------ librsync deltas */

/* Below this size on either side a file travels whole: cheaper. */
#define DELTA_MIN_SIZE (4u * 1024)
/*
 * A signature holds at most this many blocks: the block length grows with
 * the file instead, so memory stays bounded whatever the size (32768 x 36
 * bytes = 1.2 MiB at most).
 */
#define SIG_BLOCKS_MAX 32768u

/* Receives output of a librsync job; returns HS_OK or an error. */
typedef int (*delta_emit_fn)(void *arg, const uint8_t *p, size_t n);

/*
 * Hash and librsync signature (BLAKE2 strong sums, never MD4) of the file
 * open on fd, in one read pass.  `sig` must have max >= PROTO_SIG_MAX.
 */
int delta_sig_fd(int fd, struct hs_buf *sig, uint8_t hash[PROTO_HASH_LEN],
                 uint64_t *size);
/*
 * Check a signature from the peer before anything is allocated for it:
 * BLAKE2 magic, sane block and strong-sum lengths, whole blocks, at most
 * SIG_BLOCKS_MAX of them.  HS_EPROTO or HS_ELIMIT with a reason in why.
 */
int delta_sig_check(const uint8_t *sig, size_t len, char *why, size_t whylen);
/*
 * Is a checked signature worth using for a new file of `size` bytes?  The
 * encoder holds one of its blocks in memory: a block longer than
 * SIG_BLOCK_SLACK times ours for that size (a basis far larger than the
 * file, or a peer asking us to hold 1 GiB of a small file) is HS_ELIMIT
 * with a reason, and the file goes whole.
 */
#define SIG_BLOCK_SLACK 4
int delta_sig_fits(const uint8_t *sig, size_t len, uint64_t size, char *why,
                   size_t whylen);

struct delta_enc;
/* Load a checked signature; caller owns *out. */
int delta_enc_new(const uint8_t *sig, size_t len, struct delta_enc **out);
/* Feed new-file bytes (eof set with the last); delta bytes go to emit. */
int delta_enc_feed(struct delta_enc *e, const uint8_t *p, size_t n, int eof,
                   delta_emit_fn emit, void *arg);
void delta_enc_free(struct delta_enc *e);

struct delta_dec;
/*
 * Apply a delta against basis_fd (borrowed, basis_size bytes).  Copies
 * must lie inside the basis and be non-empty, and the output may not pass
 * max_out bytes: a hostile delta fails with HS_EPROTO or HS_ELIMIT and a
 * reason (delta_dec_why), never reads outside the basis or grows memory.
 * An error of emit (the output's write: a full disk) is not the delta's:
 * feed returns it as it is and delta_dec_why stays empty.
 */
int delta_dec_new(int basis_fd, uint64_t basis_size, uint64_t max_out,
                  struct delta_dec **out);
int delta_dec_feed(struct delta_dec *d, const uint8_t *p, size_t n, int eof,
                   delta_emit_fn emit, void *arg);
const char *delta_dec_why(const struct delta_dec *d);
void delta_dec_free(struct delta_dec *d);

/* ------------------------------------------------------- block tables */

/* Files from this size on get block records (below, a delta is cheap). */
#define BLK_FILE_MIN (1024u * 1024)
/* Block sizes: proto.h. */
#define BLK_SIZE_MIN PROTO_BLOCK_MIN
#define BLK_SIZE_MAX PROTO_BLOCK_MAX
#define BLK_HASH_LEN IDX_BLOCK_HASH_LEN
#define BLK_TOKEN_LEN IDX_TOKEN_LEN
_Static_assert(IDX_TOKEN_LEN == PROTO_TOKEN_LEN, "one token length");
_Static_assert(IDX_BLOCKS_MAX == PROTO_BLOCKS_MAX, "one block limit");
/* Past half of the blocks changed, a librsync delta finds moved data. */
#define BLK_PATCH_MAX_PERCENT 50
/* Room for a record key: set name, source index, path. */
#define BLK_KEY_CAP (PROTO_NODE_MAX + 3 + PROTO_PATH_MAX + 1)

/* The block hashes of one file, computed from its bytes in order. */
struct blk_table {
	uint64_t size;  /* the file's size */
	uint32_t bsize; /* block size */
	uint32_t n;     /* blocks: ceil(size / bsize) */
	uint8_t (*hash)[BLK_HASH_LEN];
	uint64_t off; /* bytes fed so far */
	void *st;     /* XXH3 state of the block being fed */
};

/*
 * Block size for a file of `size` bytes: the smallest power of two from
 * BLK_SIZE_MIN that keeps it within IDX_BLOCKS_MAX blocks; 0 when the
 * file gets no record (smaller than BLK_FILE_MIN, or too big).
 */
uint32_t blk_size_for(uint64_t size);
/* Start a table for `size` bytes in blocks of `bsize`; caller frees. */
int blk_table_init(struct blk_table *t, uint64_t size, uint32_t bsize);
/* Feed the next bytes; HS_ELIMIT past the announced size. */
int blk_table_feed(struct blk_table *t, const void *p, size_t n);
/* HS_OK when exactly `size` bytes were fed (all hashes final). */
int blk_table_done(const struct blk_table *t);
void blk_table_free(struct blk_table *t);
/* Token of a patched file's content: SHA-256 of its size and hashes. */
void blk_token(const struct blk_table *t, uint8_t out[BLK_TOKEN_LEN]);
/* Record key of (set, src, path); HS_ELIMIT if it does not fit `cap`. */
int blk_key(const char *set, uint16_t src, const char *path, uint8_t *key,
            size_t cap, size_t *len);

#endif /* DELTA_H */
