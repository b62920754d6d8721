/*
 * patch.c - what both sides of a block patch share: block sizes, the
 * XXH3-128 block table, the patch token, record keys, the standby's
 * checks on patch frames, in-kernel copies and drift copies.
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

#include "patch_int.h"

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

void
patch_hdr_encode(struct proto_wr *w, const struct patch_hdr *h)
{
	proto_put_bytes(w, h->basis, sizeof(h->basis));
	proto_put_u32(w, h->bsize);
}

int
patch_hdr_decode(struct proto_rd *r, struct patch_hdr *h)
{
	if (proto_get_bytes(r, h->basis, sizeof(h->basis)) < 0 ||
	    proto_get_u32(r, &h->bsize) < 0)
		return HS_EPROTO;
	return proto_rd_end(r);
}

int
patch_rx_init(struct patch_rx *rx, uint64_t basis_size, uint64_t final_size,
              const struct patch_hdr *h, char *why, size_t whylen)
{
	uint64_t keep, most;

	memset(rx, 0, sizeof(*rx));
	if (h->bsize < BLK_SIZE_MIN || h->bsize > BLK_SIZE_MAX ||
	    (h->bsize & (h->bsize - 1)) != 0) {
		snprintf(why, whylen, "patch block size %u not allowed",
		         h->bsize);
		return HS_EPROTO;
	}
	/* As many blocks as a record holds: bounds the final size. */
	most = (uint64_t)h->bsize * IDX_BLOCKS_MAX;
	if (final_size > most) {
		snprintf(why, whylen,
		         "patch final size %llu past the limit of %llu "
		         "(%u blocks of %u)",
		         (unsigned long long)final_size,
		         (unsigned long long)most, IDX_BLOCKS_MAX, h->bsize);
		return HS_ELIMIT;
	}
	/*
	 * What the basis gives is its whole blocks below both sizes; every
	 * byte from there to the final size must come in the patch (a last
	 * block of another length always differs).
	 */
	keep = basis_size < final_size ? basis_size : final_size;
	keep -= keep % h->bsize;
	if (final_size == basis_size)
		keep = final_size;
	rx->basis_size = basis_size;
	rx->final_size = final_size;
	rx->bsize = h->bsize;
	rx->need_from = keep;
	return HS_OK;
}

int
patch_rx_block(struct patch_rx *rx, const uint8_t *p, size_t len,
               uint64_t *off, const uint8_t **data, size_t *n, char *why,
               size_t whylen)
{
	struct proto_rd r = {p, len};
	uint64_t o, want;

	if (proto_get_u64(&r, &o) < 0) {
		snprintf(why, whylen, "patch block without an offset");
		return HS_EPROTO;
	}
	if (o >= rx->final_size) {
		snprintf(why, whylen,
		         "patch block at %llu past the final size %llu",
		         (unsigned long long)o,
		         (unsigned long long)rx->final_size);
		return HS_EPROTO;
	}
	if (o % rx->bsize != 0 || o < rx->next) {
		snprintf(why, whylen,
		         "patch block at %llu not on a block boundary after "
		         "%llu (unsorted or overlapping)",
		         (unsigned long long)o, (unsigned long long)rx->next);
		return HS_EPROTO;
	}
	/* Past the kept part of the basis, no gap may be left. */
	if (o > rx->need_from && o != rx->next) {
		snprintf(why, whylen,
		         "patch leaves bytes %llu..%llu unsent past the basis",
		         (unsigned long long)(rx->next > rx->need_from
		                                  ? rx->next
		                                  : rx->need_from),
		         (unsigned long long)o);
		return HS_EPROTO;
	}
	want = rx->final_size - o < rx->bsize ? rx->final_size - o : rx->bsize;
	if (r.left != want) {
		snprintf(why, whylen,
		         "patch block at %llu holds %zu bytes, not %llu",
		         (unsigned long long)o, r.left,
		         (unsigned long long)want);
		return r.left > want ? HS_ELIMIT : HS_EPROTO;
	}
	*off = o;
	*data = r.p;
	*n = r.left;
	rx->next = o + want;
	rx->blocks++;
	return HS_OK;
}

int
patch_rx_end(const struct patch_rx *rx, char *why, size_t whylen)
{
	if (rx->need_from < rx->final_size && rx->next != rx->final_size) {
		snprintf(why, whylen,
		         "patch leaves bytes from %llu to %llu unsent",
		         (unsigned long long)(rx->next > rx->need_from
		                                  ? rx->next
		                                  : rx->need_from),
		         (unsigned long long)rx->final_size);
		return HS_EPROTO;
	}
	return HS_OK;
}

/* Slices of an in-kernel copy: writeback of one starts as the next is
 * copied (8 MiB: a few ms of copying, enough to keep the disk busy). */
#define COPY_SLICE (8u * 1024 * 1024)

static int
copy_fd(int in_fd, int out_fd, uint64_t len, int flushing)
{
	loff_t in_off = 0, out_off = 0;
	uint8_t *buf;
	int use_kernel = 1;

	while ((uint64_t)in_off < len) {
		size_t cap = flushing ? COPY_SLICE : (1u << 30);
		size_t want = len - (uint64_t)in_off > cap
		                  ? cap
		                  : (size_t)(len - (uint64_t)in_off);
		loff_t from = out_off;
		ssize_t n;

		n = copy_file_range(in_fd, &in_off, out_fd, &out_off, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
		              errno == EINVAL || errno == EOPNOTSUPP)) {
			use_kernel = 0;
			break;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the basis shrank under us */
		/* Only a hint: the fsync before the rename still decides. */
		if (flushing)
			sync_file_range(out_fd, from, n, SYNC_FILE_RANGE_WRITE);
	}
	if (use_kernel)
		return HS_OK;
	if ((buf = malloc(PROTO_CHUNK)) == NULL)
		return -ENOMEM;
	while ((uint64_t)in_off < len) {
		size_t want = len - (uint64_t)in_off < PROTO_CHUNK
		                  ? (size_t)(len - (uint64_t)in_off)
		                  : PROTO_CHUNK;
		ssize_t n = pread(in_fd, buf, want, in_off);
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		if (lseek(out_fd, out_off, SEEK_SET) < 0 ||
		    (rc = hs_write_all(out_fd, buf, (size_t)n)) < 0) {
			rc = -errno;
			free(buf);
			return rc;
		}
		in_off += n;
		out_off += n;
	}
	free(buf);
	return HS_OK;
}

int
fs_copy_fd(int in_fd, int out_fd, uint64_t len)
{
	return copy_fd(in_fd, out_fd, len, 0);
}

int
fs_copy_fd_flushing(int in_fd, int out_fd, uint64_t len)
{
	return copy_fd(in_fd, out_fd, len, 1);
}

/* ------------------------------------------------------------- drift */

static uint64_t drift_total;

static int
drift_sum(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)path;
	(void)f;
	if (flag == FTW_F && S_ISREG(st->st_mode))
		drift_total += (uint64_t)st->st_size;
	return 0;
}

static uint64_t drift_files;
static uint64_t drift_files_max;

static int
drift_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)path;
	(void)st;
	(void)f;
	if (flag == FTW_F && ++drift_files >= drift_files_max)
		return 1; /* enough to say "at least" */
	return 0;
}

uint64_t
drift_count(const char *state_dir, uint64_t max)
{
	char dir[PROTO_PATH_MAX * 3];

	if (snprintf(dir, sizeof(dir), "%s/drift", state_dir) >=
	    (int)sizeof(dir))
		return 0;
	drift_files = 0;
	drift_files_max = max;
	(void)nftw(dir, drift_one, 16, FTW_PHYS);
	return drift_files;
}

/* mkdir -p of the directory part of `path` (ours: under state_dir). */
static int
mkdir_parents(char *path)
{
	char *p;

	for (p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int rc = -errno;

			*p = '/';
			return rc;
		}
		*p = '/';
	}
	return HS_OK;
}

int
drift_keep(const char *state_dir, const char *set, const char *src_abs,
           const char *rel, int dirfd, const char *leaf, int fd,
           uint64_t size, char *where, size_t wherelen)
{
	char dir[PROTO_PATH_MAX * 3];
	int out, rc;

	if (snprintf(dir, sizeof(dir), "%s/drift", state_dir) >=
	    (int)sizeof(dir))
		return -ENAMETOOLONG;
	drift_total = 0;
	if (nftw(dir, drift_sum, 16, FTW_PHYS) < 0 && errno != ENOENT)
		return -errno;
	if (drift_total + size > DRIFT_MAX_BYTES) {
		snprintf(where, wherelen,
		         "%s holds %llu bytes; keeping %llu more would pass "
		         "%llu",
		         dir, (unsigned long long)drift_total,
		         (unsigned long long)size,
		         (unsigned long long)DRIFT_MAX_BYTES);
		return HS_ELIMIT;
	}
	if (snprintf(dir, sizeof(dir), "%s/drift/%s%s%s%s.%lld", state_dir,
	             set, src_abs, rel[0] ? "/" : "", rel,
	             (long long)time(NULL)) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	snprintf(where, wherelen, "%s", dir);
	if ((rc = mkdir_parents(dir)) < 0)
		return rc;
	if (linkat(dirfd, leaf, AT_FDCWD, dir, 0) == 0)
		return HS_OK;
	if (errno == EEXIST)
		return HS_OK; /* kept already this second */
	/* Another filesystem (or links refused): copy it. */
	out = open(dir, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	           0600);
	if (out < 0)
		return -errno;
	if ((rc = fs_copy_fd(fd, out, size)) < 0 || fsync(out) < 0) {
		rc = rc < 0 ? rc : -errno;
		close(out);
		unlink(dir);
		return rc;
	}
	close(out);
	return HS_OK;
}
