/*
 * files.c - the primary's file index and change journal.
 *
 * files: per replicated entry, the stat fingerprint it had when the
 * standby last acknowledged it.  A restart compares the filesystem with
 * these records (stat only) instead of listing both trees.  Keys are
 * fixed-size digests because LMDB keys are at most 511 bytes and paths
 * may be 4095: the first 8 bytes name the (set, source), so one source's
 * records are one key range; the other 24 name the relative path.  The
 * path itself is stored after the record.
 *
 * journal: runs sent but not yet acknowledged (sequence -> set, clocks,
 * the paths of a scoped run), replayed at start; meta holds this index's
 * random id and the last acknowledged sequence.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "idx_int.h"

#define KEY_SRC_LEN 8
#define K_ID "journal/id"
#define K_ACKED "journal/acked"
#define MVAL(s)                                                                \
	{                                                                      \
		sizeof(s) - 1, (void *)(s)                                     \
	}
#define KEY_LEN (KEY_SRC_LEN + IDX_DIGEST_LEN)

struct file_rec {
	struct idx_file f;
	/* followed by the relative path, no NUL */
};

struct idx_batch {
	struct idx *x;
	MDB_txn *txn;
	MDB_dbi files;
	int rc; /* first error */
};

/*
 * SHA-256 of a ‖ b, with one context for the process, behind a lock (a
 * start compares on a thread of its own while a session opens).  The
 * digest is fetched from the provider once: EVP_DigestInit_ex with
 * EVP_sha256() looks it up again on every call, which cost ~1.6 us a
 * path here (0.18 s for a restart's 110,000 paths) against ~0.25 us with
 * a fetched one and EVP_DigestInit_ex2.
 */
static void
digest(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static EVP_MD_CTX *c;
	static EVP_MD *md;
	unsigned int n = 32;

	pthread_mutex_lock(&mu);
	if (c == NULL)
		c = EVP_MD_CTX_new();
	if (md == NULL)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (c == NULL || md == NULL || EVP_DigestInit_ex2(c, md, NULL) != 1 ||
	    EVP_DigestUpdate(c, a, alen) != 1 ||
	    EVP_DigestUpdate(c, b, blen) != 1 ||
	    EVP_DigestFinal_ex(c, out, &n) != 1)
		memset(out, 0, 32); /* only without memory: all keys collide */
	pthread_mutex_unlock(&mu);
}

void
idx_path_digest(const char *path, uint8_t out[IDX_DIGEST_LEN])
{
	uint8_t h[32];

	digest("p", 1, path, strlen(path), h);
	memcpy(out, h, IDX_DIGEST_LEN);
}

void
idx_source_key(const char *set, const char *source, uint8_t out[8])
{
	uint8_t h[32];

	digest(set, strlen(set) + 1, source, strlen(source), h);
	memcpy(out, h, KEY_SRC_LEN);
}

static void
file_key(const uint8_t skey[8], const char *path, uint8_t key[KEY_LEN])
{
	memcpy(key, skey, KEY_SRC_LEN);
	idx_path_digest(path, key + KEY_SRC_LEN);
}

int
idx_batch_begin(struct idx *x, struct idx_batch **out)
{
	struct idx_batch *b;
	int rc;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -ENOMEM;
	b->x = x;
	if ((rc = idx_dbi(x, "files", &b->files)) < 0 ||
	    (rc = idx_map_error(mdb_txn_begin(x->env, NULL, 0, &b->txn))) < 0) {
		free(b);
		return rc;
	}
	*out = b;
	return HS_OK;
}

void
idx_file_put(struct idx_batch *b, const uint8_t skey[8], const char *path,
             const struct idx_file *f)
{
	uint8_t key[KEY_LEN];
	size_t len = strlen(path);
	MDB_val k = {KEY_LEN, key}, v;
	int rc;

	if (b->rc < 0)
		return;
	file_key(skey, path, key);
	v.mv_size = sizeof(struct file_rec) + len;
	if ((rc = mdb_put(b->txn, b->files, &k, &v, MDB_RESERVE)) != 0) {
		b->rc = idx_map_error(rc);
		return;
	}
	memcpy(v.mv_data, f, sizeof(*f));
	memcpy((uint8_t *)v.mv_data + sizeof(struct file_rec), path, len);
}

void
idx_file_del(struct idx_batch *b, const uint8_t skey[8], const char *path)
{
	uint8_t key[KEY_LEN];
	MDB_val k = {KEY_LEN, key};
	int rc;

	if (b->rc < 0)
		return;
	file_key(skey, path, key);
	rc = mdb_del(b->txn, b->files, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		b->rc = idx_map_error(rc);
}

/* A record's path length; HS_EINDEX when it is not one of ours. */
static int
rec_len(const MDB_val *v, size_t *len)
{
	if (v->mv_size < sizeof(struct file_rec) ||
	    (*len = v->mv_size - sizeof(struct file_rec)) > IDX_PATH_MAX)
		return HS_EINDEX;
	/* A NUL inside means the record is not ours: damaged. */
	return memchr((const char *)v->mv_data + sizeof(struct file_rec), '\0',
	              *len) == NULL
	           ? HS_OK
	           : HS_EINDEX;
}

/* One record of a range; < 0 stops the walk with that HS_E* code. */
typedef int range_fn(void *arg, MDB_cursor *cur, const MDB_val *k,
                     const MDB_val *v);

/* Call each on every record of one source's key range in txn. */
static int
range_each(MDB_txn *txn, MDB_dbi dbi, const uint8_t skey[8], range_fn *each,
           void *arg)
{
	uint8_t key[KEY_LEN] = {0};
	MDB_val k = {KEY_LEN, key}, v;
	MDB_cursor *cur;
	int rc, r;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return idx_map_error(rc);
	memcpy(key, skey, KEY_SRC_LEN);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == KEY_LEN &&
	       memcmp(k.mv_data, skey, KEY_SRC_LEN) == 0) {
		if ((r = each(arg, cur, &k, &v)) < 0) {
			mdb_cursor_close(cur);
			return r;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return idx_map_error(rc == MDB_NOTFOUND ? 0 : rc);
}

struct walk_ctx {
	idx_walk_fn *fn;
	void *arg;
	int del; /* prune: fn's 0 deletes the record */
};

/* A record copied out (path NUL-terminated) for an idx_walk_fn. */
static int
walk_one(void *arg, MDB_cursor *cur, const MDB_val *k, const MDB_val *v)
{
	struct walk_ctx *w = arg;
	char path[IDX_PATH_MAX + 1];
	struct idx_file f;
	size_t len;
	int r;

	if ((r = rec_len(v, &len)) < 0)
		return r;
	memcpy(&f, v->mv_data, sizeof(f));
	memcpy(path, (const char *)v->mv_data + sizeof(struct file_rec), len);
	path[len] = '\0';
	r = w->fn(w->arg, (const uint8_t *)k->mv_data + KEY_SRC_LEN, path, &f);
	if (r < 0)
		return r;
	if (w->del && r == 0 && (r = mdb_cursor_del(cur, 0)) != 0)
		return idx_map_error(r);
	return 0;
}

/* Walk one source's key range in txn; fn's result decides. */
static int
range_walk(MDB_txn *txn, MDB_dbi dbi, const uint8_t skey[8], int del,
           idx_walk_fn *fn, void *arg)
{
	struct walk_ctx w = {fn, arg, del};

	return range_each(txn, dbi, skey, walk_one, &w);
}

void
idx_files_prune(struct idx_batch *b, const uint8_t skey[8], idx_walk_fn *keep,
                void *arg)
{
	if (b->rc == HS_OK)
		b->rc = range_walk(b->txn, b->files, skey, 1, keep, arg);
}

static void
seq_key(uint64_t seq, uint8_t k[8])
{
	int i;

	for (i = 0; i < 8; i++)
		k[i] = (uint8_t)(seq >> (56 - 8 * i));
}

/* Drop journal entries up to `seq`: acknowledged (keys sort by seq). */
static int
journal_trim(struct idx *x, MDB_txn *txn, uint64_t seq)
{
	uint8_t last[8];
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_dbi j;
	int rc;

	if (idx_dbi(x, "journal", &j) < 0)
		return HS_OK;
	seq_key(seq, last);
	if ((rc = mdb_cursor_open(txn, j, &cur)) != 0)
		return idx_map_error(rc);
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 &&
	       k.mv_size == 8 && memcmp(k.mv_data, last, 8) <= 0)
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? HS_OK : idx_map_error(rc);
}

void
idx_batch_journal_del(struct idx_batch *b, uint64_t seq)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key};
	MDB_dbi j;
	int rc;

	if (b->rc != HS_OK || idx_dbi(b->x, "journal", &j) < 0)
		return;
	seq_key(seq, key);
	if ((rc = mdb_del(b->txn, j, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
		b->rc = idx_map_error(rc);
}

static int
batch_commit(struct idx_batch *b, uint64_t seq, int trim)
{
	int rc = b->rc;

	if (rc == HS_OK)
		rc = HS_FAILPOINT("primary.index_commit");
	if (rc == HS_OK && seq != 0) {
		MDB_val k = MVAL(K_ACKED), v = {sizeof(seq), &seq};

		rc = idx_map_error(mdb_put(b->txn, b->x->meta, &k, &v, 0));
		if (rc == HS_OK && trim)
			rc = journal_trim(b->x, b->txn, seq);
	}
	if (rc < 0) {
		mdb_txn_abort(b->txn);
		free(b);
		return rc;
	}
	rc = idx_map_error(mdb_txn_commit(b->txn));
	free(b);
	return rc;
}

int
idx_batch_commit(struct idx_batch *b, uint64_t seq)
{
	return batch_commit(b, seq, 1);
}

int
idx_batch_ack(struct idx_batch *b, uint64_t seq)
{
	return batch_commit(b, seq, 0);
}

void
idx_batch_abort(struct idx_batch *b)
{
	if (b == NULL)
		return;
	mdb_txn_abort(b->txn);
	free(b);
}

int
idx_files_walk(struct idx *x, const uint8_t skey[8], idx_walk_fn *fn, void *arg)
{
	MDB_txn *txn;
	MDB_dbi files;
	int rc;

	if ((rc = idx_dbi(x, "files", &files)) < 0)
		return rc == HS_ENOTFOUND ? HS_OK : rc;
	if ((rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn)) != 0)
		return idx_map_error(rc);
	rc = range_walk(txn, files, skey, 0, fn, arg);
	mdb_txn_abort(txn);
	return rc;
}

struct idx_view {
	MDB_txn *txn;
	MDB_dbi files;
};

int
idx_view_open(struct idx *x, struct idx_view **out)
{
	struct idx_view *v;
	int rc;

	*out = NULL;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -ENOMEM;
	rc = idx_dbi(x, "files", &v->files);
	if (rc == HS_ENOTFOUND) {
		*out = v; /* no records at all (read-only): an empty view */
		return HS_OK;
	}
	if (rc == HS_OK)
		rc = idx_map_error(
		    mdb_txn_begin(x->env, NULL, MDB_RDONLY, &v->txn));
	if (rc < 0) {
		idx_view_close(v);
		return rc;
	}
	*out = v;
	return HS_OK;
}

struct view_ctx {
	idx_view_fn *fn;
	void *arg;
};

/* A record where LMDB keeps it, checked as walk_one checks it. */
static int
view_one(void *arg, MDB_cursor *cur, const MDB_val *k, const MDB_val *v)
{
	struct view_ctx *c = arg;
	size_t len;
	int rc;

	(void)cur;
	(void)k;
	if ((rc = rec_len(v, &len)) < 0)
		return rc;
	return c->fn(c->arg, v->mv_data, len);
}

int
idx_view_walk(struct idx_view *v, const uint8_t skey[8], idx_view_fn *fn,
              void *arg)
{
	struct view_ctx c = {fn, arg};

	if (v->txn == NULL)
		return HS_OK;
	return range_each(v->txn, v->files, skey, view_one, &c);
}

void
idx_view_close(struct idx_view *v)
{
	if (v == NULL)
		return;
	if (v->txn != NULL)
		mdb_txn_abort(v->txn);
	free(v);
}

int
idx_file_get(struct idx *x, const uint8_t skey[8], const char *path,
             struct idx_file *out)
{
	uint8_t key[KEY_LEN];
	MDB_val k = {KEY_LEN, key}, v;
	MDB_txn *txn;
	MDB_dbi files;
	int rc;

	if ((rc = idx_dbi(x, "files", &files)) < 0)
		return HS_ENOTFOUND;
	file_key(skey, path, key);
	if ((rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn)) != 0)
		return idx_map_error(rc);
	rc = mdb_get(txn, files, &k, &v);
	if (rc == 0 && v.mv_size < sizeof(struct file_rec))
		rc = MDB_CORRUPTED;
	if (rc == 0)
		memcpy(out, v.mv_data, sizeof(*out));
	mdb_txn_abort(txn);
	return idx_map_error(rc);
}

/* ------------------------------------------------------------ journal */

/* First use of a writable index: a random id tells our records from
 * another index's (put only if no other writer made one meanwhile). */
static int
journal_make_id(struct idx *x, uint8_t id[IDX_ID_LEN])
{
	MDB_val k = MVAL(K_ID), v = {IDX_ID_LEN, id};
	MDB_txn *txn;
	int rc;

	if (getrandom(id, IDX_ID_LEN, 0) != IDX_ID_LEN)
		return -EIO;
	if ((rc = mdb_txn_begin(x->env, NULL, 0, &txn)) != 0)
		return idx_map_error(rc);
	rc = mdb_put(txn, x->meta, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST && v.mv_size == IDX_ID_LEN) {
		memcpy(id, v.mv_data, IDX_ID_LEN);
		mdb_txn_abort(txn);
		return HS_OK;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return idx_map_error(rc == MDB_KEYEXIST ? MDB_CORRUPTED : rc);
	}
	return idx_map_error(mdb_txn_commit(txn));
}

int
idx_journal_state(struct idx *x, uint8_t id[IDX_ID_LEN], uint64_t *acked)
{
	MDB_val ki = MVAL(K_ID), ka = MVAL(K_ACKED), v;
	MDB_txn *txn;
	int rc, missing = 0;

	/* Read-only: every run asks, and only the first one writes. */
	if ((rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn)) != 0)
		return idx_map_error(rc);
	*acked = 0;
	rc = mdb_get(txn, x->meta, &ki, &v);
	if (rc == MDB_NOTFOUND && !x->readonly) {
		missing = 1;
		rc = 0;
	} else if (rc == 0 && v.mv_size == IDX_ID_LEN)
		memcpy(id, v.mv_data, IDX_ID_LEN);
	else if (rc == 0)
		rc = MDB_CORRUPTED;
	if (rc == 0) {
		int r2 = mdb_get(txn, x->meta, &ka, &v);

		if (r2 == 0 && v.mv_size == sizeof(*acked))
			memcpy(acked, v.mv_data, sizeof(*acked));
		else if (r2 != MDB_NOTFOUND)
			rc = r2 ? r2 : MDB_CORRUPTED;
	}
	mdb_txn_abort(txn);
	if (rc != 0)
		return idx_map_error(rc);
	return missing ? journal_make_id(x, id) : HS_OK;
}

int
idx_journal_add(struct idx *x, uint64_t seq, const void *entry, size_t len)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key}, v = {len, (void *)entry};
	MDB_txn *txn;
	MDB_dbi j;
	int rc;

	if (len > IDX_JOURNAL_ENTRY_MAX)
		return HS_ELIMIT;
	if ((rc = idx_dbi(x, "journal", &j)) < 0)
		return rc;
	seq_key(seq, key);
	if ((rc = mdb_txn_begin(x->env, NULL, 0, &txn)) != 0)
		return idx_map_error(rc);
	if ((rc = mdb_put(txn, j, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return idx_map_error(rc);
	}
	/*
	 * Not flushed: written before each run goes out, an fdatasync here
	 * would sit on every change's way to the standby.  A killed process
	 * loses nothing (the pages are in the file); the acknowledgement's
	 * commit, with fdatasync, follows within milliseconds.  A crash of
	 * the machine before it can lose this entry or, rarely, the index,
	 * which is then found damaged at start.
	 */
	mdb_env_set_flags(x->env, MDB_NOSYNC, 1);
	rc = mdb_txn_commit(txn);
	mdb_env_set_flags(x->env, MDB_NOSYNC, 0);
	return idx_map_error(rc);
}

int
idx_journal_del(struct idx *x, uint64_t seq)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key};
	MDB_txn *txn;
	MDB_dbi j;
	int rc;

	if (idx_dbi(x, "journal", &j) < 0)
		return HS_OK;
	seq_key(seq, key);
	if ((rc = mdb_txn_begin(x->env, NULL, 0, &txn)) != 0)
		return idx_map_error(rc);
	if ((rc = mdb_del(txn, j, &k, NULL)) != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return idx_map_error(rc);
	}
	/* Not flushed, as the entry was not: lost, it is replayed once. */
	mdb_env_set_flags(x->env, MDB_NOSYNC, 1);
	rc = mdb_txn_commit(txn);
	mdb_env_set_flags(x->env, MDB_NOSYNC, 0);
	return idx_map_error(rc);
}

int
idx_journal_walk(struct idx *x, uint64_t after, idx_journal_fn *fn, void *arg)
{
	uint8_t from[8];
	MDB_val k = {sizeof(from), from}, v;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_dbi j;
	int rc;

	if (idx_dbi(x, "journal", &j) < 0)
		return HS_OK;
	seq_key(after + 1, from);
	if ((rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn)) != 0)
		return idx_map_error(rc);
	if ((rc = mdb_cursor_open(txn, j, &cur)) != 0) {
		mdb_txn_abort(txn);
		return idx_map_error(rc);
	}
	rc = after == UINT64_MAX ? MDB_NOTFOUND
	                         : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		uint64_t seq = 0;
		size_t i;

		if (k.mv_size != 8 || v.mv_size > IDX_JOURNAL_ENTRY_MAX) {
			rc = MDB_CORRUPTED;
			break;
		}
		for (i = 0; i < 8; i++)
			seq = seq << 8 | ((const uint8_t *)k.mv_data)[i];
		if ((rc = fn(arg, seq, v.mv_data, v.mv_size)) != 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		return HS_OK;
	return rc < 0 ? rc : idx_map_error(rc);
}

/* ------------------------------------------------- standby: applied */

#define K_APPLIED "applied/primary"

int
idx_applied_get(struct idx *x, uint8_t id[IDX_ID_LEN], uint64_t *seq)
{
	MDB_val k = MVAL(K_APPLIED), v;
	MDB_txn *txn;
	int rc;

	memset(id, 0, IDX_ID_LEN);
	*seq = 0;
	if ((rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn)) != 0)
		return idx_map_error(rc);
	rc = mdb_get(txn, x->meta, &k, &v);
	if (rc == 0 && v.mv_size != IDX_ID_LEN + sizeof(*seq))
		rc = MDB_CORRUPTED;
	if (rc == 0) {
		memcpy(id, v.mv_data, IDX_ID_LEN);
		memcpy(seq, (const uint8_t *)v.mv_data + IDX_ID_LEN,
		       sizeof(*seq));
	}
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? HS_OK : idx_map_error(rc);
}

int
idx_applied_put(struct idx *x, const uint8_t id[IDX_ID_LEN], uint64_t seq)
{
	uint8_t buf[IDX_ID_LEN + sizeof(seq)];
	MDB_val k = MVAL(K_APPLIED), v = {sizeof(buf), buf};
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(x->env, NULL, 0, &txn)) != 0)
		return idx_map_error(rc);
	/*
	 * The last run applied, not the highest: a standby that once
	 * claimed a run it never received is back in step after one run.
	 */
	memcpy(buf, id, IDX_ID_LEN);
	memcpy(buf + IDX_ID_LEN, &seq, sizeof(seq));
	v.mv_size = sizeof(buf);
	v.mv_data = buf;
	if ((rc = mdb_put(txn, x->meta, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return idx_map_error(rc);
	}
	return idx_map_error(mdb_txn_commit(txn));
}
