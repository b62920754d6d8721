/*
 * patch_int.h - block patches: a changed big file travels as the blocks
 * whose hash differs from the record of what the standby holds, with no
 * signature round trip and no read of the standby's copy.
 *
 *	primary (sendpatch.c)	records per file, after SET_DONE: content
 *				token, block size, one XXH3-128 per block
 *	standby (apply.c)	records per path: stat fingerprint after the
 *				write + content token; on OP_PATCH checks them,
 *				copies its basis in-kernel into a temporary,
 *				writes the blocks, joins the batch
 *
 * Wire (protocol/proto.h types 50-52):
 *	OP_PATCH	entry | basis token[32] | u32 bsize, sent before
 *			the primary reads its file, so the standby copies
 *			its basis while the primary hashes
 *	OP_PATCH_DATA	u64 offset | data (one block: bsize bytes, or the
 *			tail of the file), offsets strictly increasing,
 *			then OP_FILE_END whose hash is the new token (or
 *			status 1: not a patch after all, dropped)
 *	PATCH_STALE	standby, after SET_END and before SET_DONE:
 *			u8 all | u32 n | n x (u16 src, str path): basis
 *			mismatch, the primary resends them via signatures
 * Only syncd/ includes this.
 */
#ifndef PATCH_INT_H
#define PATCH_INT_H

#include <stdint.h>

#include "idx.h"
#include "syncd.h"

/* Files from this size on get block records (below, a delta is cheap). */
#define BLK_FILE_MIN (1024u * 1024)
/* Block sizes: powers of two in [16 KiB, 1 MiB] (a block fits a frame). */
#define BLK_SIZE_MIN (16u * 1024)
#define BLK_SIZE_MAX (1024u * 1024)
#define BLK_HASH_LEN IDX_BLOCK_HASH_LEN
#define BLK_TOKEN_LEN IDX_TOKEN_LEN
/* Past half of the blocks changed, a librsync delta finds moved data. */
#define BLK_PATCH_MAX_PERCENT 50
/* Paths one PATCH_STALE names; past it, "all" stands for every patch. */
#define BLK_STALE_MAX 1024u
/* Bytes of drift copies kept under state_dir/drift/ at most. */
#define DRIFT_MAX_BYTES (1024ull * 1024 * 1024)
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

/* The fixed part of OP_PATCH after the entry. */
struct patch_hdr {
	uint8_t basis[BLK_TOKEN_LEN];
	uint32_t bsize;
};

void patch_hdr_encode(struct proto_wr *w, const struct patch_hdr *h);
int patch_hdr_decode(struct proto_rd *r, struct patch_hdr *h);

/*
 * The standby's checks on the blocks of one patch, before any byte is
 * written: a final size within what a record can describe, offsets on
 * block boundaries, strictly increasing, inside the final size, each
 * block whole (bsize bytes, or up to the end), and every byte past the
 * basis covered.  Each failure is HS_EPROTO or HS_ELIMIT with the reason
 * in `why`.
 */
struct patch_rx {
	uint64_t basis_size;
	uint64_t final_size;
	uint32_t bsize;
	uint32_t blocks;    /* received */
	uint64_t next;      /* lowest offset the next block may have */
	uint64_t need_from; /* bytes from here on must all be sent */
};

int patch_rx_init(struct patch_rx *rx, uint64_t basis_size,
                  uint64_t final_size, const struct patch_hdr *h, char *why,
                  size_t whylen);
/* Decode one OP_PATCH_DATA frame; *data is borrowed from `p`. */
int patch_rx_block(struct patch_rx *rx, const uint8_t *p, size_t len,
                   uint64_t *off, const uint8_t **data, size_t *n, char *why,
                   size_t whylen);
int patch_rx_end(const struct patch_rx *rx, char *why, size_t whylen);

/*
 * Copy `len` bytes from the start of in_fd to out_fd, in the kernel
 * (copy_file_range) where it can, else by read and write.
 */
int fs_copy_fd(int in_fd, int out_fd, uint64_t len);
/*
 * The same, starting the writeback of each copied slice at once, so the
 * disk writes while the rest is copied and the final fsync waits less.
 */
int fs_copy_fd_flushing(int in_fd, int out_fd, uint64_t len);

/*
 * Keep the standby's own version of a file before replication replaces
 * it: a hard link (else a copy of fd) at state_dir/drift/<set>/<source>/
 * <rel>.<unix time>, refused once drift/ would pass DRIFT_MAX_BYTES.
 * Writes the destination (or why not) into `where`.
 */
int drift_keep(const char *state_dir, const char *set, const char *src_abs,
               const char *rel, int dirfd, const char *leaf, int fd,
               uint64_t size, char *where, size_t wherelen);

#endif /* PATCH_INT_H */
