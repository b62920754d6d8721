/*
 * blktable.c - block tables of big files: block sizes, the XXH3-128 hash
 * of each block, the patch token, and record keys.  Both roles use them:
 * the primary to find the blocks that changed, the standby to check what
 * it holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "delta.h"

uint32_t
blk_size_for(uint64_t size)
{
	uint64_t b = BLK_SIZE_MIN;

	if (size < BLK_FILE_MIN)
		return 0;
	while (b < BLK_SIZE_MAX && (size + b - 1) / b > IDX_BLOCKS_MAX)
		b <<= 1;
	if ((size + b - 1) / b > IDX_BLOCKS_MAX)
		return 0; /* past 32 GiB: librsync's signature handles it */
	return (uint32_t)b;
}

int
blk_table_init(struct blk_table *t, uint64_t size, uint32_t bsize)
{
	uint64_t n;

	memset(t, 0, sizeof(*t));
	if (bsize < BLK_SIZE_MIN || bsize > BLK_SIZE_MAX ||
	    (bsize & (bsize - 1)) != 0)
		return HS_EPROTO;
	n = (size + bsize - 1) / bsize;
	if (n > IDX_BLOCKS_MAX)
		return HS_ELIMIT;
	t->size = size;
	t->bsize = bsize;
	t->n = (uint32_t)n;
	if ((t->hash = calloc(n ? n : 1, BLK_HASH_LEN)) == NULL ||
	    (t->st = XXH3_createState()) == NULL) {
		blk_table_free(t);
		return -ENOMEM;
	}
	XXH3_128bits_reset(t->st);
	return HS_OK;
}

static void
put_hash(struct blk_table *t, uint64_t block, XXH128_hash_t h)
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	memcpy(t->hash[block], c.digest, BLK_HASH_LEN);
}

int
blk_table_feed(struct blk_table *t, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (n > t->size - t->off)
		return HS_ELIMIT;
	while (n > 0) {
		uint64_t in = t->off % t->bsize;
		uint64_t end = t->off - in + t->bsize;
		size_t k;

		if (end > t->size)
			end = t->size;
		k = end - t->off < n ? (size_t)(end - t->off) : n;
		if (in == 0 && t->off + k == end)
			/* A whole block in memory: one call, no state. */
			put_hash(t, t->off / t->bsize, XXH3_128bits(b, k));
		else {
			XXH3_128bits_update(t->st, b, k);
			if (t->off + k == end) {
				put_hash(t, t->off / t->bsize,
				         XXH3_128bits_digest(t->st));
				XXH3_128bits_reset(t->st);
			}
		}
		t->off += k;
		b += k;
		n -= k;
	}
	return HS_OK;
}

int
blk_table_done(const struct blk_table *t)
{
	return t->hash != NULL && t->off == t->size ? HS_OK : HS_EPROTO;
}

void
blk_table_free(struct blk_table *t)
{
	free(t->hash);
	t->hash = NULL;
	if (t->st != NULL)
		XXH3_freeState(t->st);
	t->st = NULL;
}

void
blk_token(const struct blk_table *t, uint8_t out[BLK_TOKEN_LEN])
{
	static const char tag[] = "hamnsync blocks v1";
	struct proto_hash *h;
	uint8_t b[12];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(t->size >> (56 - 8 * i));
	for (i = 0; i < 4; i++)
		b[8 + i] = (uint8_t)(t->bsize >> (24 - 8 * i));
	if (proto_hash_new(&h) < 0) {
		/* No memory for a hash: a token no record can match. */
		memset(out, 0xff, BLK_TOKEN_LEN);
		return;
	}
	proto_hash_update(h, tag, sizeof(tag));
	proto_hash_update(h, b, sizeof(b));
	proto_hash_update(h, t->hash, (size_t)t->n * BLK_HASH_LEN);
	proto_hash_final(h, out);
	proto_hash_free(h);
}

int
blk_key(const char *set, uint16_t src, const char *path, uint8_t *key,
        size_t cap, size_t *len)
{
	size_t ls = strlen(set), lp = strlen(path), need;

	need = ls + 1 + 2 + lp;
	if (need > cap || need > IDX_KEY_MAX)
		return HS_ELIMIT;
	memcpy(key, set, ls);
	key[ls] = '\0';
	key[ls + 1] = (uint8_t)(src >> 8);
	key[ls + 2] = (uint8_t)src;
	memcpy(key + ls + 3, path, lp);
	*len = need;
	return HS_OK;
}
