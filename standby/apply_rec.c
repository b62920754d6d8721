/*
 * apply_rec.c - block records (delta.h) of the files hamnsync wrote, and
 * drift: a file changed on this standby since its record is kept before
 * it is replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply_int.h"

/* ---------------------------------------- block records (delta.h) */

void
apply_fp_from_stat(struct idx_written *v, const struct stat *st)
{
	v->size = (uint64_t)st->st_size;
	v->mtime_sec = st->st_mtim.tv_sec;
	v->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	v->ctime_sec = st->st_ctim.tv_sec;
	v->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	v->ino = (uint64_t)st->st_ino;
	v->dev = (uint64_t)st->st_dev;
}

/* Is the file that st describes the one record v was taken of? */
static int
fp_same(const struct idx_written *v, const struct stat *st)
{
	struct idx_written now;

	memset(&now, 0, sizeof(now));
	apply_fp_from_stat(&now, st);
	return now.size == v->size && now.mtime_sec == v->mtime_sec &&
	       now.mtime_nsec == v->mtime_nsec &&
	       now.ctime_sec == v->ctime_sec &&
	       now.ctime_nsec == v->ctime_nsec && now.ino == v->ino &&
	       now.dev == v->dev;
}

/* Key of (src, rel) in the records, malloc'd; NULL without an index. */
uint8_t *
apply_rec_key(struct apply *a, uint16_t src, const char *rel, size_t *klen)
{
	uint8_t key[BLK_KEY_CAP], *k;

	if (a->idx == NULL ||
	    blk_key(a->set->name, src, rel, key, sizeof(key), klen) < 0 ||
	    (k = malloc(*klen)) == NULL)
		return NULL;
	memcpy(k, key, *klen);
	return k;
}

/*
 * Drift (SPEC.md, "Drift on the standby is seen"): before replication
 * replaces or removes a regular file that hamnsync wrote here, it is
 * compared with the record of that write.  A file changed since by
 * anything else is kept under state_dir/drift/ first (a hard link: no
 * copy on the same filesystem), with one line saying where.  A file
 * without a record (there before hamnsync, or written by an older build)
 * cannot be told from our own: it is replaced as before.
 */

/*
 * Is the file that st describes at leaf the version apply_flush wrote
 * ahead (apply_recs_ahead) and put in place, its record not committed yet
 * (a crash between the rename and apply_recs_commit, or the other lane's flush
 * under way)?  Same inode and size, and its content is that version's:
 * hashed, but only here, where the record does not match.
 */
static int
put_in_place(struct apply *a, int dirfd, const char *leaf, const uint8_t *key,
             size_t klen, const struct stat *st, struct idx_written *w)
{
	uint8_t got[PROTO_HASH_LEN];
	struct stat now;
	int fd, rc;

	if (idx_writing_get(a->idx, key, klen, w) != HS_OK ||
	    w->ino != (uint64_t)st->st_ino || w->dev != (uint64_t)st->st_dev ||
	    w->size != (uint64_t)st->st_size)
		return 0;
	if ((fd = apply_open_nofollow(dirfd, leaf, PROTO_E_FILE)) < 0)
		return 0;
	rc = fstat(fd, &now) == 0 && now.st_ino == st->st_ino &&
	     now.st_dev == st->st_dev && fs_hash_fd_xfer(fd, got) == HS_OK &&
	     memcmp(got, w->token, sizeof(got)) == 0;
	close(fd);
	return rc;
}

/*
 * Is the file st (at leaf) the version hamnsync wrote there: the one its
 * record v describes, or one put in place whose record did not follow
 * (then v becomes that version's, its token to keep)?
 */
int
apply_rec_holds(struct apply *a, int dirfd, const char *leaf,
                const uint8_t *key, size_t klen, const struct stat *st,
                struct idx_written *v)
{
	struct idx_written w;

	if (fp_same(v, st))
		return 1;
	if (!put_in_place(a, dirfd, leaf, key, klen, st, &w))
		return 0;
	*v = w;
	return 1;
}

/*
 * A regular file at leaf whose record (there is one) says otherwise, and
 * that is not a version put in place by hamnsync either?
 */
static int
drift_suspect(struct apply *a, int dirfd, const char *leaf, const uint8_t *key,
              size_t klen, struct stat *st)
{
	struct idx_written v;

	return fstatat(dirfd, leaf, st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st->st_mode) &&
	       idx_written_get(a->idx, key, klen, &v) == HS_OK &&
	       !apply_rec_holds(a, dirfd, leaf, key, klen, st, &v);
}

void
apply_drift_check(struct apply *a, uint16_t src, const char *rel, int dirfd,
                  const char *leaf, const uint8_t *key, size_t klen)
{
	char where[PROTO_PATH_MAX * 3];
	struct idx_txn *lock = NULL;
	struct stat st;
	int fd, rc;

	if (a->idx == NULL || a->state_dir == NULL || key == NULL ||
	    !drift_suspect(a, dirfd, leaf, key, klen, &st))
		return;
	/*
	 * The other lane (express and bulk sessions are two processes) holds
	 * the index's writer lock from its renames until the records of what
	 * they put in place are committed (apply_flush).  A mismatch may be
	 * its rename seen before its record: look again under that lock,
	 * where a file and its record are seen in step.  A match needs no
	 * lock (the file is what hamnsync wrote), so most files never wait.
	 */
	if (idx_txn_begin(a->idx, &lock) < 0)
		lock = NULL;
	if (!drift_suspect(a, dirfd, leaf, key, klen, &st)) {
		idx_txn_abort(lock);
		return;
	}
	fd = apply_open_nofollow(dirfd, leaf, PROTO_E_FILE);
	rc = fd < 0 ? fd
	            : drift_keep(a->state_dir, a->set->name, a->src[src].abs,
	                         rel, dirfd, leaf, fd, (uint64_t)st.st_size,
	                         where, sizeof(where));
	if (fd >= 0)
		close(fd);
	idx_txn_abort(lock);
	if (rc < 0)
		hs_log_warnx("apply: %s: changed on this standby since "
		             "hamnsync wrote it; this version NOT kept (%s: "
		             "%s); replaced by the primary's",
		             apply_display(a, src, rel),
		             fd < 0 ? "cannot open" : where, hs_strerror(rc));
	else
		hs_log_warnx("apply: %s: changed on this standby since "
		             "hamnsync wrote it; this version kept at %s; "
		             "replaced by the primary's",
		             apply_display(a, src, rel), where);
}

/* Queue a record write for the next flush; takes ownership of key. */
void
apply_rec_queue(struct apply *a, uint8_t *key, size_t klen, int put,
                const struct idx_written *v)
{
	struct rec_op *n;

	if (key == NULL)
		return;
	if (a->n_recs % 64 == 0) {
		n = reallocarray(a->recs, a->n_recs + 64, sizeof(*n));
		if (n == NULL) {
			free(key);
			return; /* no record: the next patch goes stale */
		}
		a->recs = n;
	}
	n = &a->recs[a->n_recs++];
	n->key = key;
	n->klen = klen;
	n->put = put;
	if (put == REC_OP_PUT)
		n->v = *v;
}

/*
 * One queued record into t.  Whatever it does to the record, a version
 * written ahead of it (apply_recs_ahead) is no longer needed: the record that
 * follows its rename is in the same transaction.
 */
static int
rec_write(struct idx_txn *t, const struct rec_op *r)
{
	int rc = HS_OK;

	if (r->put == REC_OP_PUT)
		rc = idx_written_put(t, r->key, r->klen, &r->v);
	else if (r->put == REC_OP_DEL)
		rc = idx_written_del(t, r->key, r->klen);
	if (rc == HS_OK)
		rc = idx_writing_del(t, r->key, r->klen);
	return rc;
}

/*
 * Write the queued records in one transaction, durable before SET_DONE.
 * A failure loses records only: later patches find no record, the
 * primary sends those files the long way.
 */
void
apply_recs_commit(struct apply *a, struct idx_txn *t)
{
	size_t i, writes = 0;
	int rc = HS_OK;

	/* Most paths never had a record: no write transaction for them. */
	for (i = 0; a->idx != NULL && i < a->n_recs; i++) {
		struct idx_written old;

		if (a->recs[i].put ||
		    idx_written_get(a->idx, a->recs[i].key, a->recs[i].klen,
		                    &old) == HS_OK)
			writes++;
		else {
			free(a->recs[i].key);
			a->recs[i].key = NULL;
		}
	}
	if (writes == 0) {
		idx_txn_abort(t); /* the lock of apply_flush, if taken */
		t = NULL;
	} else if (t == NULL)
		rc = idx_txn_begin(a->idx, &t);
	if (writes > 0 && rc == HS_OK) {
		for (i = 0; i < a->n_recs && rc == HS_OK; i++)
			if (a->recs[i].key != NULL)
				rc = rec_write(t, &a->recs[i]);
		/*
		 * Not flushed here: the run's acknowledgement commits the
		 * index with a flush right after (recv.c), or idx_sync does.
		 */
		if (rc == HS_OK)
			rc = HS_FAILPOINT("standby.records_commit");
		if (rc == HS_OK)
			rc = idx_txn_commit_lazy(t);
		else
			idx_txn_abort(t);
		a->recs_unsynced |= rc == HS_OK;
	}
	if (rc < 0)
		hs_log_warnx(
		    "apply: set %s: records of written files not stored "
		    "(drift and patches fall back to the long way): %s",
		    a->set->name, hs_strerror(rc));
	for (i = 0; i < a->n_recs; i++)
		free(a->recs[i].key);
	a->n_recs = 0;
}

/*
 * Before the renames (apply_flush): store what each pending file about
 * to replace a recorded version will be, so that a crash before its
 * record follows (apply_recs_commit) leaves proof that the version in place is
 * hamnsync's (put_in_place), not drift.  Only where a record exists:
 * without one, nothing is ever taken for drift.  Committed without a
 * flush: 1 when something was, for ahead_sync_* to make it durable.
 */
int
apply_recs_ahead(struct apply *a)
{
	struct idx_written v;
	struct idx_txn *t = NULL;
	struct stat st;
	size_t i;
	int rc = HS_OK;

	for (i = 0; a->idx != NULL && i < a->n_pend && rc == HS_OK; i++) {
		struct pending *p = &a->pend[i];

		if (p->tmp[0] == '\0' ||
		    fstatat(p->dirfd, p->tmp, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		memset(&v, 0, sizeof(v));
		apply_fp_from_stat(&v, &st);
		if (p->rec == REC_PUT && p->key != NULL &&
		    idx_written_get(a->idx, p->key, p->klen, &v) == HS_OK) {
			apply_fp_from_stat(&v, &st);
			memcpy(v.token, p->token, sizeof(v.token));
			if (t == NULL && (rc = idx_txn_begin(a->idx, &t)) < 0)
				break;
			if ((rc = idx_writing_put(t, p->key, p->klen, &v)) ==
			    HS_OK)
				p->ahead |= AHEAD_KEY;
		}
		if (p->lkey != NULL && rc == HS_OK) {
			memcpy(v.token, p->ltoken, sizeof(v.token));
			if (t == NULL && (rc = idx_txn_begin(a->idx, &t)) < 0)
				break;
			if ((rc = idx_writing_put(t, p->lkey, p->lklen, &v)) ==
			    HS_OK)
				p->ahead |= AHEAD_LKEY;
		}
	}
	if (t != NULL && rc == HS_OK)
		rc = idx_txn_commit_lazy(t);
	else
		idx_txn_abort(t);
	if (rc < 0) {
		/* Nothing written ahead: a crash may leave drift copies. */
		for (i = 0; i < a->n_pend; i++)
			a->pend[i].ahead = 0;
		hs_log_warnx("apply: set %s: records of files about to be "
		             "replaced not stored: %s",
		             a->set->name, hs_strerror(rc));
		return 0;
	}
	return t != NULL;
}

/* The rename of p failed: drop what was written ahead of it. */
void
apply_rec_unahead(struct apply *a, struct pending *p)
{
	uint8_t *k;

	if ((p->ahead & AHEAD_KEY) && p->key != NULL &&
	    (k = malloc(p->klen)) != NULL) {
		memcpy(k, p->key, p->klen);
		apply_rec_queue(a, k, p->klen, REC_OP_KEEP, NULL);
	}
	if ((p->ahead & AHEAD_LKEY) && p->lkey != NULL) {
		apply_rec_queue(a, p->lkey, p->lklen, REC_OP_KEEP, NULL);
		p->lkey = NULL;
	}
	p->ahead = 0;
}

/* After the rename: the record of what now lies at p's path. */
void
apply_rec_pending(struct apply *a, struct pending *p)
{
	struct idx_written v;
	struct stat st;

	memset(&v, 0, sizeof(v));
	if (p->lkey != NULL &&
	    fstatat(p->dirfd, p->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		apply_fp_from_stat(&v, &st);
		memcpy(v.token, p->ltoken, sizeof(v.token));
		apply_rec_queue(a, p->lkey, p->lklen, 1, &v);
		p->lkey = NULL;
	} else if (p->lkey != NULL && (p->ahead & AHEAD_LKEY)) {
		/* Its record stays as it was: only what was written ahead goes.
		 */
		apply_rec_queue(a, p->lkey, p->lklen, REC_OP_KEEP, NULL);
		p->lkey = NULL;
	}
	if (p->key == NULL || p->rec == 0)
		return;
	if (p->rec == REC_PUT &&
	    fstatat(p->dirfd, p->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
		apply_fp_from_stat(&v, &st);
		memcpy(v.token, p->token, sizeof(v.token));
		apply_rec_queue(a, p->key, p->klen, 1, &v);
	} else
		apply_rec_queue(a, p->key, p->klen, 0, NULL);
	p->key = NULL;
}

/* The entry at (src, rel) is replaced or gone: its record goes too. */
void
apply_rec_drop(struct apply *a, struct pending *p, uint16_t src,
               const char *rel)
{
	if ((p->key = apply_rec_key(a, src, rel, &p->klen)) != NULL)
		p->rec = REC_DEL;
}

void
apply_records_sync(struct apply *a)
{
	int rc;

	if (!a->recs_unsynced || a->idx == NULL)
		return;
	a->recs_unsynced = 0;
	if ((rc = idx_sync(a->idx)) < 0)
		hs_log_warnx("apply: set %s: records not flushed: %s",
		             a->set->name, hs_strerror(rc));
}

/* Before linking to (lsrc, lpath): note its record if it still holds. */
void
apply_link_keeps_rec(struct apply *a, struct pending *p, uint16_t lsrc,
                     const char *lpath, int ldir, const char *lleaf)
{
	struct idx_written v;
	struct stat st;

	if (a->idx == NULL ||
	    fstatat(ldir, lleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (p->lkey = apply_rec_key(a, lsrc, lpath, &p->lklen)) == NULL)
		return;
	if (idx_written_get(a->idx, p->lkey, p->lklen, &v) == HS_OK &&
	    apply_rec_holds(a, ldir, lleaf, p->lkey, p->lklen, &st, &v)) {
		memcpy(p->ltoken, v.token, sizeof(p->ltoken));
		return;
	}
	free(p->lkey);
	p->lkey = NULL;
}

/* The key of the records below directory (src, rel), malloc'd. */
static uint8_t *
rec_key_below(struct apply *a, uint16_t src, const char *rel, size_t *klen)
{
	char below[PROTO_PATH_MAX + 2];

	if ((size_t)snprintf(below, sizeof(below), "%s/", rel) >= sizeof(below))
		return NULL;
	return apply_rec_key(a, src, below, klen);
}

/*
 * Before renaming (src, from) over (src, to): check `to` for drift, as
 * any write that replaces it, then take the index's writer lock (as
 * apply_flush does for its renames: the other lane sees a file and its
 * record move together) and read the record of `from`.
 */
void
apply_rename_rec_begin(struct apply *a, uint16_t src, const char *from,
                       const char *to, int fdir, const char *fleaf, int tdir,
                       const char *tleaf, struct rename_rec *rr)
{
	struct stat st;

	memset(rr, 0, sizeof(*rr));
	/* A rename onto itself changes nothing, its record included. */
	if (a->idx == NULL || strcmp(from, to) == 0 ||
	    fstatat(fdir, fleaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if ((rr->dir = S_ISDIR(st.st_mode))) {
		if ((rr->fkey = rec_key_below(a, src, from, &rr->fklen)) ==
		        NULL ||
		    (rr->tkey = rec_key_below(a, src, to, &rr->tklen)) == NULL)
			return;
	} else if ((rr->fkey = apply_rec_key(a, src, from, &rr->fklen)) ==
	               NULL ||
	           (rr->tkey = apply_rec_key(a, src, to, &rr->tklen)) == NULL)
		return;
	else
		apply_drift_check(a, src, to, tdir, tleaf, rr->tkey, rr->tklen);
	if (idx_txn_begin(a->idx, &rr->lock) < 0)
		rr->lock = NULL;
	rr->has = !rr->dir &&
	          fstatat(fdir, fleaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	          S_ISREG(st.st_mode) &&
	          idx_written_get(a->idx, rr->fkey, rr->fklen, &rr->v) == HS_OK;
	rr->mine = rr->has && apply_rec_holds(a, fdir, fleaf, rr->fkey,
	                                      rr->fklen, &st, &rr->v);
}

/* The records below a renamed directory move with it. */
static void
rename_rec_dir(struct apply *a, struct rename_rec *rr)
{
	struct idx_txn *t = rr->lock;
	int rc = HS_OK;

	if (t == NULL)
		rc = idx_txn_begin(a->idx, &t);
	if (rc == HS_OK &&
	    (rc = idx_written_move(t, rr->fkey, rr->fklen, rr->tkey,
	                           rr->tklen)) == HS_OK)
		rc = idx_txn_commit_lazy(t);
	else if (rc < 0 && t != NULL)
		idx_txn_abort(t);
	rr->lock = NULL;
	a->recs_unsynced |= rc == HS_OK;
	if (rc < 0)
		hs_log_warnx("apply: set %s: records below a renamed directory "
		             "not moved (drift and patches fall back to the "
		             "long way): %s",
		             a->set->name, hs_strerror(rc));
}

/*
 * After the rename (`moved` when it happened): `to` gets the record of
 * `from`, renewed with the file's new ctime if it still held; a record
 * that did not hold moves unchanged, so that drift is still seen at the
 * file's new path.  `from` has no record any more.
 */
void
apply_rename_rec_end(struct apply *a, struct rename_rec *rr, int moved,
                     int tdir, const char *tleaf)
{
	struct stat st;

	if (moved && rr->tkey != NULL && rr->dir)
		rename_rec_dir(a, rr);
	if (!moved || rr->tkey == NULL || rr->dir) {
		idx_txn_abort(rr->lock);
		free(rr->fkey);
		free(rr->tkey);
		return;
	}
	if (rr->mine && fstatat(tdir, tleaf, &st, AT_SYMLINK_NOFOLLOW) == 0)
		apply_fp_from_stat(&rr->v, &st);
	apply_rec_queue(a, rr->tkey, rr->tklen, rr->has, &rr->v);
	apply_rec_queue(a, rr->fkey, rr->fklen, 0, NULL);
	apply_recs_commit(a, rr->lock);
}
