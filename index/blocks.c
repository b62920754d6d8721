/*
 * blocks.c - per-file records that let a changed big file travel as the
 * blocks that changed (primary/sendpatch.c; standby/apply_rec.c and
 * standby/apply_patch.c):
 *	blocks	 primary: what the standby acknowledged holding for a file:
 *		 content token, block size, size and one hash per block
 *	written	 standby: what it last wrote at a path: its stat
 *		 fingerprint just after the write, and the content token
 *	writing	 standby: the same of a version about to be renamed into
 *		 place (write-ahead), until the "written" one follows it
 * Keys are opaque bytes chosen by the caller (set, source, path).  Values
 * are in native byte order: the index is a local file.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "idx_int.h"

/* What a "blocks" value starts with; the hashes follow. */
struct blocks_hdr {
	uint32_t magic; /* BLOCKS_MAGIC: a record of this layout */
	uint32_t bsize;
	uint64_t size;
	uint32_t n;
	uint32_t pad;
	uint8_t token[IDX_TOKEN_LEN];
};

#define BLOCKS_MAGIC 0x424c4b31u /* "BLK1" */

struct idx_txn {
	struct idx *x;
	MDB_txn *txn;
};

int
idx_txn_begin(struct idx *x, struct idx_txn **out)
{
	struct idx_txn *t;
	int rc;

	if (x->readonly)
		return -EROFS;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	t->x = x;
	if ((rc = mdb_txn_begin(x->env, NULL, 0, &t->txn)) != 0) {
		free(t);
		return idx_map_error(rc);
	}
	*out = t;
	return HS_OK;
}

int
idx_txn_commit(struct idx_txn *t)
{
	int rc = mdb_txn_commit(t->txn);

	free(t);
	return idx_map_error(rc);
}

int
idx_txn_commit_lazy(struct idx_txn *t)
{
	MDB_env *env = t->x->env;
	int rc;

	mdb_env_set_flags(env, MDB_NOSYNC, 1);
	rc = mdb_txn_commit(t->txn);
	mdb_env_set_flags(env, MDB_NOSYNC, 0);
	free(t);
	return idx_map_error(rc);
}

int
idx_sync(struct idx *x)
{
	if (x->readonly)
		return HS_OK;
	return idx_map_error(mdb_env_sync(x->env, 1));
}

void
idx_txn_abort(struct idx_txn *t)
{
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

static int
txn_put(struct idx_txn *t, const char *db, const void *key, size_t klen,
        MDB_val *v)
{
	MDB_val k = {klen, (void *)key};
	MDB_dbi dbi;
	int rc;

	if (klen == 0 || klen > IDX_KEY_MAX)
		return HS_ELIMIT;
	if ((rc = idx_dbi(t->x, db, &dbi)) < 0)
		return rc;
	return idx_map_error(mdb_put(t->txn, dbi, &k, v, 0));
}

static int
txn_del(struct idx_txn *t, const char *db, const void *key, size_t klen)
{
	MDB_val k = {klen, (void *)key};
	MDB_dbi dbi;
	int rc;

	if (klen == 0 || klen > IDX_KEY_MAX)
		return HS_ELIMIT;
	if ((rc = idx_dbi(t->x, db, &dbi)) < 0)
		return rc;
	rc = mdb_del(t->txn, dbi, &k, NULL);
	return rc == MDB_NOTFOUND ? HS_OK : idx_map_error(rc);
}

/*
 * Read one value of `db` into a malloc'd copy (LMDB's memory lives only
 * as long as the read txn).  HS_ENOTFOUND when absent.
 */
static int
get_copy(struct idx *x, const char *db, const void *key, size_t klen,
         void **out, size_t *len)
{
	MDB_val k = {klen, (void *)key}, v;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	if (klen == 0 || klen > IDX_KEY_MAX)
		return HS_ELIMIT;
	if ((rc = idx_dbi(x, db, &dbi)) < 0)
		return rc;
	if ((rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn)) != 0)
		return idx_map_error(rc);
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0) {
		if ((*out = malloc(v.mv_size ? v.mv_size : 1)) == NULL)
			rc = ENOMEM;
		else {
			memcpy(*out, v.mv_data, v.mv_size);
			*len = v.mv_size;
		}
	}
	mdb_txn_abort(txn);
	return idx_map_error(rc);
}

int
idx_blocks_get(struct idx *x, const void *key, size_t klen,
               struct idx_blocks *out)
{
	struct blocks_hdr h;
	void *raw = NULL;
	size_t len = 0;
	int rc;

	if ((rc = get_copy(x, "blocks", key, klen, &raw, &len)) != HS_OK)
		return rc;
	memset(out, 0, sizeof(*out));
	if (len < sizeof(h))
		goto bad;
	memcpy(&h, raw, sizeof(h));
	if (h.magic != BLOCKS_MAGIC || h.n > IDX_BLOCKS_MAX || h.bsize == 0 ||
	    len != sizeof(h) + (size_t)h.n * IDX_BLOCK_HASH_LEN)
		goto bad;
	if ((out->hash = calloc(h.n ? h.n : 1, IDX_BLOCK_HASH_LEN)) == NULL) {
		free(raw);
		return -ENOMEM;
	}
	memcpy(out->hash, (uint8_t *)raw + sizeof(h),
	       (size_t)h.n * IDX_BLOCK_HASH_LEN);
	out->bsize = h.bsize;
	out->size = h.size;
	out->n = h.n;
	memcpy(out->token, h.token, sizeof(out->token));
	free(raw);
	return HS_OK;
bad:
	/* A record we cannot read is no record: the file goes the long way. */
	free(raw);
	return HS_ENOTFOUND;
}

int
idx_blocks_put(struct idx_txn *t, const void *key, size_t klen,
               const struct idx_blocks *b)
{
	struct blocks_hdr h;
	MDB_val v;
	uint8_t *raw;
	int rc;

	if (b->n > IDX_BLOCKS_MAX)
		return HS_ELIMIT;
	memset(&h, 0, sizeof(h));
	h.magic = BLOCKS_MAGIC;
	h.bsize = b->bsize;
	h.size = b->size;
	h.n = b->n;
	memcpy(h.token, b->token, sizeof(h.token));
	v.mv_size = sizeof(h) + (size_t)b->n * IDX_BLOCK_HASH_LEN;
	if ((raw = malloc(v.mv_size)) == NULL)
		return -ENOMEM;
	memcpy(raw, &h, sizeof(h));
	memcpy(raw + sizeof(h), b->hash, (size_t)b->n * IDX_BLOCK_HASH_LEN);
	v.mv_data = raw;
	rc = txn_put(t, "blocks", key, klen, &v);
	free(raw);
	return rc;
}

int
idx_blocks_del(struct idx_txn *t, const void *key, size_t klen)
{
	return txn_del(t, "blocks", key, klen);
}

void
idx_blocks_clear(struct idx_blocks *b)
{
	free(b->hash);
	b->hash = NULL;
	b->n = 0;
}

static int
written_get(struct idx *x, const char *db, const void *key, size_t klen,
            struct idx_written *out)
{
	void *raw = NULL;
	size_t len = 0;
	int rc;

	if ((rc = get_copy(x, db, key, klen, &raw, &len)) != HS_OK)
		return rc;
	if (len != sizeof(*out)) {
		free(raw);
		return HS_ENOTFOUND; /* another layout: no usable record */
	}
	memcpy(out, raw, sizeof(*out));
	free(raw);
	return HS_OK;
}

int
idx_written_get(struct idx *x, const void *key, size_t klen,
                struct idx_written *out)
{
	return written_get(x, "written", key, klen, out);
}

int
idx_writing_get(struct idx *x, const void *key, size_t klen,
                struct idx_written *out)
{
	return written_get(x, "writing", key, klen, out);
}

int
idx_writing_put(struct idx_txn *t, const void *key, size_t klen,
                const struct idx_written *a)
{
	MDB_val v = {sizeof(*a), (void *)a};

	return txn_put(t, "writing", key, klen, &v);
}

int
idx_writing_del(struct idx_txn *t, const void *key, size_t klen)
{
	return txn_del(t, "writing", key, klen);
}

int
idx_written_put(struct idx_txn *t, const void *key, size_t klen,
                const struct idx_written *a)
{
	MDB_val v = {sizeof(*a), (void *)a};

	return txn_put(t, "written", key, klen, &v);
}

int
idx_written_del(struct idx_txn *t, const void *key, size_t klen)
{
	return txn_del(t, "written", key, klen);
}

/*
 * Put `cur` on the first key that starts with `pre`, into k and v (the
 * map's memory, valid until the next change): 0, or MDB_NOTFOUND.
 */
static int
prefix_first(MDB_cursor *cur, const void *pre, size_t plen, MDB_val *k,
             MDB_val *v)
{
	int rc;

	k->mv_size = plen;
	k->mv_data = (void *)pre;
	if ((rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE)) != 0)
		return rc;
	if (k->mv_size < plen || memcmp(k->mv_data, pre, plen) != 0)
		return MDB_NOTFOUND;
	return 0;
}

/* Drop every record of cur's database that starts with `pre`. */
static int
prefix_drop(MDB_cursor *cur, const void *pre, size_t plen)
{
	MDB_val k, v;
	int rc;

	while ((rc = prefix_first(cur, pre, plen, &k, &v)) == 0)
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			return rc;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Move one record (the first starting with `from`) to its key under
 * `to`.  Re-seeking for each record, instead of walking on, keeps the
 * cursor clear of the keys that the puts add.
 */
static int
prefix_move_one(MDB_txn *txn, MDB_dbi dbi, MDB_cursor *cur, const void *from,
                size_t flen, const void *to, size_t tlen)
{
	uint8_t key[IDX_KEY_MAX], *val;
	MDB_val k, v, nk, nv;
	size_t rest;
	int rc;

	if ((rc = prefix_first(cur, from, flen, &k, &v)) != 0)
		return rc;
	rest = k.mv_size - flen;
	if ((val = malloc(v.mv_size ? v.mv_size : 1)) == NULL)
		return ENOMEM;
	memcpy(val, v.mv_data, v.mv_size);
	nv.mv_size = v.mv_size;
	nv.mv_data = val;
	nk.mv_size = tlen + rest;
	nk.mv_data = key;
	if (nk.mv_size <= IDX_KEY_MAX) {
		memcpy(key, to, tlen);
		memcpy(key + tlen, (uint8_t *)k.mv_data + flen, rest);
	}
	if ((rc = mdb_cursor_del(cur, 0)) == 0 && nk.mv_size <= IDX_KEY_MAX)
		rc = mdb_put(txn, dbi, &nk, &nv, 0);
	free(val);
	return rc;
}

/* idx_written_move in database `db`. */
static int
prefix_move(struct idx_txn *t, const char *db, const void *from, size_t flen,
            const void *to, size_t tlen)
{
	MDB_cursor *cur;
	MDB_dbi dbi;
	int rc;

	if ((rc = idx_dbi(t->x, db, &dbi)) < 0)
		return rc;
	if ((rc = mdb_cursor_open(t->txn, dbi, &cur)) != 0)
		return idx_map_error(rc);
	rc = prefix_drop(cur, to, tlen);
	while (rc == 0)
		rc = prefix_move_one(t->txn, dbi, cur, from, flen, to, tlen);
	mdb_cursor_close(cur);
	return idx_map_error(rc == MDB_NOTFOUND ? 0 : rc);
}

int
idx_written_move(struct idx_txn *t, const void *from, size_t flen,
                 const void *to, size_t tlen)
{
	size_t min = flen < tlen ? flen : tlen;
	int rc;

	if (flen == 0 || tlen == 0 || flen > IDX_KEY_MAX ||
	    tlen > IDX_KEY_MAX || memcmp(from, to, min) == 0)
		return HS_ELIMIT;
	if ((rc = prefix_move(t, "written", from, flen, to, tlen)) < 0)
		return rc;
	return prefix_move(t, "writing", from, flen, to, tlen);
}
