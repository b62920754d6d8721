/*
 * apply.c - the standby's confined writer.
 *
 * Every operation names (source index, relative path).  The path is
 * checked, its parent opened beneath the source's anchor without following
 * symlinks, and the final component is touched only through *at() calls
 * that do not follow it either.  Files and symlinks are built under a
 * temporary name and renamed into place in batches: write all, flush each
 * filesystem once (syncfs), rename all, fsync each directory once.  Until
 * the rename, the old version stays visible; a crash leaves a temporary
 * that the next start removes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "applywr_int.h"
#include "idx.h"
#include "stdby_int.h"

/* Flush a batch at this many files or bytes: bounded work per flush. */
#define BATCH_FILES 512
#define BATCH_BYTES (64ull * 1024 * 1024)
/*
 * Up to this many files a batch fsyncs each one: cheaper than syncfs,
 * which also waits for every other writer on the filesystem.  Past it,
 * one syncfs per filesystem is cheaper than many fsyncs.
 */
#define BATCH_FSYNC_MAX 16
#define TMP_NAME_LEN (sizeof(FS_TMP_PREFIX) - 1 + 16)
/* Replaced versions held open per set (see struct apply). */
#define OLD_FDS_MAX 16
/*
 * A big file is written back while it arrives, in chunks of this size
 * (at the ~400 MB/s of this machine's disk, two chunks take ~10 ms):
 * the writeback of each chunk starts once it is complete, and then the
 * chunk before it is waited for, so two chunks are queued at the disk
 * while we wait (a virtio disk here writes ~300 MB/s with one 4 MiB
 * request at a time, ~500 MB/s with more queued).  Dirty data of one
 * transfer stays below about two chunks, so the final fsync is short,
 * and so is the fsync of a small file in another session meanwhile (the
 * express lane): in ext4's ordered mode a journal commit waits for the
 * data of every file in it, which would otherwise be the hundreds of MiB
 * of the big one.
 */
#define WRITEBACK_CHUNK (2ull * 1024 * 1024)
/*
 * A file at least this big has the writeback of its last partial chunk
 * started when it ends, so its data goes to disk while the next file
 * arrives instead of all in the batch's flush (ten new 5 MiB files
 * otherwise leave 10-30 MiB to write after the last byte arrived).
 * Smaller files wait for the flush, which writes many of them at once.
 */
#define WRITEBACK_TAIL_MIN (256u * 1024)
/*
 * A whole file at least this big is hashed and written by a second thread
 * while this one decrypts the next data (applywr.c); below it the thread
 * would cost more than the overlap gains.
 */
#define WRITER_MIN (1024u * 1024)

struct apply_src {
	int anchorfd; /* O_PATH fd of the source's parent */
	char *leaf;   /* the source's last component */
	char *abs;    /* the source as configured, for messages */
};

/* A file or symlink written under a temporary name, awaiting rename. */
struct pending {
	int dirfd;  /* O_PATH, owned */
	int datafd; /* the written file's fd + 1, owned; 0: none (memset) */
	char tmp[TMP_NAME_LEN + 1];
	char leaf[PROTO_NAME_MAX + 1];
	char *display; /* owned */
	/* Its block record (delta.h): REC_* and the token to keep. */
	uint8_t rec;
	uint8_t token[BLK_TOKEN_LEN];
	uint8_t *key; /* owned */
	size_t klen;
	/*
	 * A hard link: linking and the rename change the ctime of the
	 * inode it shares with its leader, whose record (if it matched
	 * before) is renewed with this token after the rename.
	 */
	uint8_t *lkey; /* owned */
	size_t lklen;
	uint8_t ltoken[BLK_TOKEN_LEN];
	uint8_t ahead; /* AHEAD_*: written ahead (apply_recs_ahead) */
};

#define AHEAD_KEY 1
#define AHEAD_LKEY 2

#define REC_PUT 1 /* store fingerprint + token after the rename */
#define REC_DEL 2 /* the path no longer holds what a record says */

/* A record write waiting for the flush's transaction. */
struct rec_op {
	uint8_t *key; /* owned */
	size_t klen;
	int put; /* REC_OP_* */
	struct idx_written v;
};

#define REC_OP_DEL 0  /* drop the record */
#define REC_OP_PUT 1  /* store v */
#define REC_OP_KEEP 2 /* the record stays; only drop what was written ahead */

struct apply {
	int rootfd;                   /* borrowed */
	const struct hs_pathset *set; /* borrowed */
	struct apply_src src[PROTO_SOURCES_MAX];
	size_t n_src;
	/* The file being received, if any. */
	int in_file;
	int skip_file; /* error recorded; drop data */
	int fd;
	struct pending cur;
	struct proto_entry cur_e;
	uint8_t *cur_xattrs; /* owned copy of cur_e's */
	uint64_t written;
	uint64_t accepted;   /* data bytes taken from the wire */
	struct apply_wr *wr; /* writes [written, accepted), or NULL */
	uint64_t wb_started; /* writeback started for [0, wb_started) */
	uint64_t wb_done;    /* ... and waited for, for [0, wb_done) */
	struct proto_hash *hash;
	struct delta_dec *dec; /* set for a delta transfer */
	int basis_fd;          /* its basis */
	/* The batch. */
	struct pending *pend;
	size_t n_pend;
	uint64_t pend_bytes;
	int pend_has_files; /* links must wait for them */
	size_t pend_fds;    /* pending files whose fd is kept for fsync */
	size_t pend_nofd;   /* pending files whose fd was closed */
	/* Outcome. */
	uint64_t applied;
	uint64_t n_errors;
	char *errors[PROTO_ERRORS_MAX];
	char first_path[256]; /* the first error's path, for status */
	char first_why[128];  /* ... and what went wrong */
	int poisoned;
	struct proto_entry e; /* decode scratch (8 KiB) */
	char disp[PROTO_PATH_MAX * 2 + 2];
	/* Block records and patches (delta.h); idx NULL: neither. */
	struct idx *idx;       /* borrowed */
	const char *state_dir; /* borrowed */
	int is_patch;          /* the file being received is a patch */
	int prx_ok;            /* prx checks its blocks (even if skipped) */
	struct patch_rx prx;
	struct rec_op *recs;
	size_t n_recs;
	int recs_unsynced; /* committed lazily, not yet flushed */
	struct proto_scope *stale; /* patches whose basis was not ours */
	size_t n_stale;
	int stale_all;
	/*
	 * Replaced versions held open until apply_free: freeing a big
	 * file's blocks (tens of ms on ext4) then happens after SET_DONE,
	 * not inside the rename that the acknowledgement waits for.
	 */
	int old_fds[OLD_FDS_MAX];
	size_t n_old_fds;
};

void
apply_error(struct apply *a, const char *path, const char *what, int rc)
{
	char line[PROTO_PATH_MAX + 256];

	if (rc != 0)
		snprintf(line, sizeof(line), "%s: %s: %s", path, what,
		         hs_strerror(rc));
	else
		snprintf(line, sizeof(line), "%s: %s", path, what);
	hs_log_warnx("apply: %s", line);
	if (a->n_errors == 0) {
		snprintf(a->first_path, sizeof(a->first_path), "%s", path);
		if (rc != 0)
			snprintf(a->first_why, sizeof(a->first_why), "%s: %s",
			         what, hs_strerror(rc));
		else
			snprintf(a->first_why, sizeof(a->first_why), "%s",
			         what);
	}
	if (a->n_errors < PROTO_ERRORS_MAX)
		a->errors[a->n_errors] = strdup(line);
	a->n_errors++;
}

int
apply_open(int rootfd, const struct hs_pathset *set, struct apply **out,
           char *why, size_t whylen)
{
	struct apply *a;
	size_t i;

	if (set->sources.n > PROTO_SOURCES_MAX)
		return HS_ELIMIT;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -ENOMEM;
	a->rootfd = rootfd;
	a->set = set;
	a->fd = -1;
	a->basis_fd = -1;
	a->cur.dirfd = -1;
	if (proto_hash_new_xfer(&a->hash) < 0) { /* OP_FILE_END's check */
		free(a);
		return -ENOMEM;
	}
	for (i = 0; i < set->sources.n; i++) {
		const char *s = set->sources.v[i];
		const char *slash = strrchr(s, '/');
		char parent[PROTO_PATH_MAX + 1];
		int fd;

		/* "/etc/hosts" -> anchor "etc", leaf "hosts" */
		snprintf(parent, sizeof(parent), "%.*s",
		         (int)(slash - s > 0 ? slash - s - 1 : 0), s + 1);
		a->src[i].anchorfd = -1;
		a->src[i].abs = hs_xstrdup(s);
		a->src[i].leaf = hs_xstrdup(slash + 1);
		a->n_src = i + 1;
		fd = fs_mkdir_beneath(rootfd, parent, 0755);
		if (fd < 0) {
			snprintf(why, whylen,
			         "%s: cannot open its parent "
			         "below target_root: %s",
			         s,
			         fd == HS_ECONFINE ? "a component is a symlink"
			                           : hs_strerror(fd));
			apply_free(a);
			return fd;
		}
		a->src[i].anchorfd = fd;
	}
	*out = a;
	return HS_OK;
}

static const char *
apply_display(struct apply *a, uint16_t src, const char *rel)
{
	if (src >= a->n_src)
		snprintf(a->disp, sizeof(a->disp), "[source %u]/%s", src, rel);
	else if (rel[0] == '\0')
		snprintf(a->disp, sizeof(a->disp), "%s", a->src[src].abs);
	else
		snprintf(a->disp, sizeof(a->disp), "%s/%s", a->src[src].abs,
		         rel);
	return a->disp;
}

/*
 * Open the parent of (src, rel) confined, into *dirfd (owned by caller),
 * and put the final component in leaf.  Errors are recorded.
 */
static int
apply_locate(struct apply *a, uint16_t src, const char *rel, int *dirfd,
             char leaf[PROTO_NAME_MAX + 1])
{
	char parent[PROTO_PATH_MAX * 2 + 2];
	const char *slash;
	int rc, fd;

	if (src >= a->n_src) {
		apply_error(a, apply_display(a, src, rel),
		            "no such source in set", HS_EPROTO);
		return HS_EPROTO;
	}
	if ((rc = fs_relpath_check(rel)) < 0) {
		apply_error(a, apply_display(a, src, rel), "path rejected", rc);
		return rc;
	}
	if (rel[0] == '\0') {
		fd = openat(a->src[src].anchorfd, ".",
		            O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		snprintf(leaf, PROTO_NAME_MAX + 1, "%s", a->src[src].leaf);
		*dirfd = fd;
		return HS_OK;
	}
	slash = strrchr(rel, '/');
	if (slash == NULL)
		snprintf(parent, sizeof(parent), "%s", a->src[src].leaf);
	else
		snprintf(parent, sizeof(parent), "%s/%.*s", a->src[src].leaf,
		         (int)(slash - rel), rel);
	snprintf(leaf, PROTO_NAME_MAX + 1, "%s", slash ? slash + 1 : rel);
	fd = fs_open_dir_beneath(a->src[src].anchorfd, parent);
	if (fd < 0) {
		apply_error(a, apply_display(a, src, rel),
		            fd == HS_ECONFINE
		                ? "path through a symlink rejected"
		                : "cannot open parent directory",
		            fd == HS_ECONFINE ? 0 : fd);
		return fd;
	}
	*dirfd = fd;
	return HS_OK;
}

static int
apply_tmp_name(char out[TMP_NAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[8];
	size_t i, p = sizeof(FS_TMP_PREFIX) - 1;

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		return -errno;
	memcpy(out, FS_TMP_PREFIX, p);
	for (i = 0; i < sizeof(r); i++) {
		out[p++] = hex[r[i] >> 4];
		out[p++] = hex[r[i] & 15];
	}
	out[p] = '\0';
	return HS_OK;
}

static void
meta_times(const struct proto_entry *e, struct timespec ts[2])
{
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)e->mtime_sec;
	ts[1].tv_nsec = (long)e->mtime_nsec;
}

/*
 * Owner first: chown clears setuid/setgid and file capabilities, so the
 * attributes and then the mode come after it; an ACL's mask follows the
 * mode's group bits, as on the primary.  Times last.
 */
static int
apply_meta_fd(int fd, const struct proto_entry *e)
{
	struct timespec ts[2];
	int rc;

	meta_times(e, ts);
	if (fchown(fd, e->uid, e->gid) < 0)
		return -errno;
	if ((rc = xa_apply_fd(fd, e->xattrs, e->xattrs_len)) < 0)
		return rc;
	if (fchmod(fd, e->mode) < 0 || futimens(fd, ts) < 0)
		return -errno;
	return HS_OK;
}

/* The same for a fifo or device node, which must not be opened. */
static int
meta_special(int dirfd, const char *name, const struct proto_entry *e)
{
	struct timespec ts[2];
	int rc;

	meta_times(e, ts);
	if (fchownat(dirfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if ((rc = xa_apply_at(dirfd, name, e->xattrs, e->xattrs_len)) < 0)
		return rc;
	if (fchmodat(dirfd, name, e->mode, AT_SYMLINK_NOFOLLOW) < 0 ||
	    utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return HS_OK;
}

static mode_t
special_type(uint8_t type)
{
	return type == PROTO_E_FIFO  ? S_IFIFO
	       : type == PROTO_E_CHR ? S_IFCHR
	                             : S_IFBLK;
}

static int
meta_symlink(int dirfd, const char *name, const struct proto_entry *e)
{
	struct timespec ts[2];

	meta_times(e, ts);
	if (fchownat(dirfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return HS_OK;
}

/* Open an existing entry to change its metadata; refuses symlinks. */
static int
apply_open_nofollow(int dirfd, const char *leaf, uint8_t type)
{
	int fd = openat(dirfd, leaf,
	                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
	                    (type == PROTO_E_DIR ? O_DIRECTORY : 0));
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 ||
	    (type == PROTO_E_FILE && !S_ISREG(st.st_mode))) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int
apply_batch_add(struct apply *a, struct pending *p, uint64_t bytes)
{
	if (a->n_pend % 64 == 0) {
		struct pending *n =
		    reallocarray(a->pend, a->n_pend + 64, sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		a->pend = n;
	}
	a->pend[a->n_pend++] = *p;
	a->pend_bytes += bytes;
	if (p->tmp[0] != '\0')
		a->pend_has_files = 1;
	if (a->n_pend >= BATCH_FILES || a->pend_bytes >= BATCH_BYTES)
		return apply_flush(a);
	return HS_OK;
}

static void
apply_pending_clear(struct pending *p)
{
	free(p->key);
	p->key = NULL;
	p->rec = 0;
	free(p->lkey);
	p->lkey = NULL;
	if (p->datafd > 0)
		close(p->datafd - 1);
	p->datafd = 0;
	if (p->dirfd >= 0)
		close(p->dirfd);
	p->dirfd = -1;
	free(p->display);
	p->display = NULL;
}

/* Open a real fd on an O_PATH directory, for fsync/syncfs. */
static int
dir_real_fd(int pathfd)
{
	return openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* ---------------------------------------- block records (delta.h) */

static void
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
static uint8_t *
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
put_in_place(struct apply *a, int dirfd, const char *leaf,
             const uint8_t *key, size_t klen, const struct stat *st,
             struct idx_written *w)
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
static int
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
drift_suspect(struct apply *a, int dirfd, const char *leaf,
              const uint8_t *key, size_t klen, struct stat *st)
{
	struct idx_written v;

	return fstatat(dirfd, leaf, st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st->st_mode) &&
	       idx_written_get(a->idx, key, klen, &v) == HS_OK &&
	       !apply_rec_holds(a, dirfd, leaf, key, klen, st, &v);
}

static void
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
static void
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
static void
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
		hs_log_warnx("apply: set %s: records of written files not stored "
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
static int
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

/*
 * The flush of what apply_recs_ahead wrote, in a thread beside the flush of
 * the data (apply_flush, step 1): both must be on disk before the
 * renames, and two flushes that overlap cost little more than one.
 */
struct ahead_sync {
	pthread_t th;
	struct idx *idx;
	int started;
	int rc;
};

static void *
ahead_sync_run(void *arg)
{
	struct ahead_sync *s = arg;

	s->rc = idx_sync(s->idx);
	return NULL;
}

static void
ahead_sync_start(struct apply *a, struct ahead_sync *s)
{
	s->idx = a->idx;
	s->rc = HS_OK;
	s->started = pthread_create(&s->th, NULL, ahead_sync_run, s) == 0;
	if (!s->started)
		s->rc = idx_sync(a->idx); /* no thread: one after the other */
}

static void
ahead_sync_end(struct apply *a, struct ahead_sync *s)
{
	if (s->started)
		pthread_join(s->th, NULL);
	s->started = 0;
	/* Only a crash of the machine could now leave drift copies. */
	if (s->rc < 0)
		hs_log_warnx("apply: set %s: records of files about to be "
		             "replaced not flushed: %s",
		             a->set->name, hs_strerror(s->rc));
}

/* The rename of p failed: drop what was written ahead of it. */
static void
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
static void
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
		/* Its record stays as it was: only what was written ahead goes. */
		apply_rec_queue(a, p->lkey, p->lklen, REC_OP_KEEP, NULL);
		p->lkey = NULL;
	}
	if (p->key == NULL || p->rec == 0)
		return;
	if (p->rec == REC_PUT &&
	    fstatat(p->dirfd, p->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode)) {
		apply_fp_from_stat(&v, &st);
		memcpy(v.token, p->token, sizeof(v.token));
		apply_rec_queue(a, p->key, p->klen, 1, &v);
	} else
		apply_rec_queue(a, p->key, p->klen, 0, NULL);
	p->key = NULL;
}

int
apply_flush(struct apply *a)
{
	struct ahead_sync ahead = {.started = 0};
	struct idx_txn *lock = NULL;
	struct stat *seen;
	size_t i, j, n_seen = 0;
	int rc = HS_OK;

	if (a->n_pend == 0) {
		apply_recs_commit(a, NULL);
		return HS_OK;
	}
	if ((seen = calloc(a->n_pend, sizeof(*seen))) == NULL)
		return -ENOMEM;
	/* 0. what the renames will put in place, its flush beside step 1 */
	if (apply_recs_ahead(a))
		ahead_sync_start(a, &ahead);
	/* 1. data: an fsync per file for a few, else a syncfs per filesystem */
	for (i = 0; a->pend_nofd == 0 && i < a->n_pend; i++)
		if (a->pend[i].datafd > 0 && fsync(a->pend[i].datafd - 1) < 0)
			rc = -errno;
	for (i = 0; a->pend_nofd > 0 && i < a->n_pend; i++) {
		struct stat st;
		int fd;

		if (fstat(a->pend[i].dirfd, &st) < 0)
			continue;
		for (j = 0; j < n_seen && seen[j].st_dev != st.st_dev; j++)
			;
		if (j < n_seen)
			continue;
		seen[n_seen++] = st;
		if ((fd = dir_real_fd(a->pend[i].dirfd)) >= 0) {
			if (syncfs(fd) < 0)
				rc = -errno;
			close(fd);
		}
	}
	ahead_sync_end(a, &ahead);
	if (rc < 0) {
		/* Data may not be on disk: keep the old versions. */
		for (i = 0; i < a->n_pend; i++) {
			apply_error(a, a->pend[i].display, "flush failed", rc);
			if (a->pend[i].tmp[0] != '\0')
				unlinkat(a->pend[i].dirfd, a->pend[i].tmp, 0);
			apply_rec_unahead(a, &a->pend[i]);
			apply_pending_clear(&a->pend[i]);
		}
		goto out;
	}
	/*
	 * 2. rename all.  From here until apply_recs_commit the index's writer
	 * lock is held: for the other lane's apply_drift_check, each file
	 * renamed into place and its record change together.
	 */
	if (a->idx != NULL && idx_txn_begin(a->idx, &lock) < 0)
		lock = NULL;
	for (i = 0; i < a->n_pend; i++) {
		struct pending *p = &a->pend[i];

		if (p->tmp[0] == '\0')
			continue; /* a delete or mkdir: only the dir fsync */
		if (HS_FAILPOINT_SYS("apply.before_rename") < 0 ||
		    renameat(p->dirfd, p->tmp, p->dirfd, p->leaf) < 0) {
			apply_error(a, p->display, "cannot rename into place",
			            -errno);
			unlinkat(p->dirfd, p->tmp, 0);
			apply_rec_unahead(a, p);
			p->rec = 0; /* the old copy and its record stay */
			free(p->lkey);
			p->lkey = NULL;
			continue;
		}
		a->applied++;
	}
	/* 3. fsync each directory once */
	n_seen = 0;
	for (i = 0; i < a->n_pend; i++) {
		struct stat st;
		int fd;

		if (fstat(a->pend[i].dirfd, &st) < 0)
			continue;
		for (j = 0; j < n_seen && (seen[j].st_dev != st.st_dev ||
		                           seen[j].st_ino != st.st_ino);
		     j++)
			;
		if (j < n_seen)
			continue;
		seen[n_seen++] = st;
		if ((fd = dir_real_fd(a->pend[i].dirfd)) >= 0) {
			if (HS_FAILPOINT_SYS("apply.after_rename") < 0 ||
			    fsync(fd) < 0)
				apply_error(a, a->pend[i].display,
				            "directory fsync failed", -errno);
			close(fd);
		}
	}
	for (i = 0; i < a->n_pend; i++) {
		apply_rec_pending(a, &a->pend[i]);
		apply_pending_clear(&a->pend[i]);
	}
out:
	apply_recs_commit(a, lock);
	a->n_pend = 0;
	a->pend_bytes = 0;
	a->pend_has_files = 0;
	a->pend_fds = 0;
	a->pend_nofd = 0;
	free(seen);
	return HS_OK;
}

static int
decode_entry(struct apply *a, const struct proto_msg *m)
{
	struct proto_rd r = {m->data, m->len};
	int rc;

	if ((rc = proto_entry_decode(&r, &a->e)) < 0)
		return rc;
	return proto_rd_end(&r);
}

/* Queue directory `dfd` (taken) for the fsync of the next flush. */
static int
dir_dirty(struct apply *a, int dfd, const struct proto_entry *e)
{
	struct pending p;

	memset(&p, 0, sizeof(p));
	p.dirfd = dfd;
	p.display = hs_xstrdup(apply_display(a, e->src, e->path));
	return apply_batch_add(a, &p, 0);
}

/* The entry at (src, rel) is replaced or gone: its record goes too. */
static void
apply_rec_drop(struct apply *a, struct pending *p, uint16_t src,
               const char *rel)
{
	if ((p->key = apply_rec_key(a, src, rel, &p->klen)) != NULL)
		p->rec = REC_DEL;
}

static int
apply_op_delete(struct apply *a)
{
	struct proto_entry *e = &a->e;
	char leaf[PROTO_NAME_MAX + 1];
	int dfd, flags = e->type == PROTO_E_DIR ? AT_REMOVEDIR : 0;

	if (apply_locate(a, e->src, e->path, &dfd, leaf) < 0)
		return HS_OK;
	if (e->type == PROTO_E_FILE && a->idx != NULL) {
		uint8_t *key;
		size_t klen;

		if ((key = apply_rec_key(a, e->src, e->path, &klen)) != NULL) {
			apply_drift_check(a, e->src, e->path, dfd, leaf, key,
			                  klen);
			free(key);
		}
	}
	if ((HS_FAILPOINT_SYS("apply.before_delete") < 0 ||
	     unlinkat(dfd, leaf, flags) < 0) &&
	    errno != ENOENT) {
		int err = errno;

		/* The standby's entry may not be of the type we were told. */
		if ((err == EISDIR || err == ENOTDIR || err == EPERM) &&
		    unlinkat(dfd, leaf, flags ^ AT_REMOVEDIR) == 0)
			err = 0;
		if (err != 0) {
			apply_error(a, apply_display(a, e->src, e->path),
			            "cannot delete", -err);
			close(dfd);
			return HS_OK;
		}
	}
	a->applied++;
	if (e->type == PROTO_E_FILE) {
		uint8_t *key;
		size_t klen;

		if ((key = apply_rec_key(a, e->src, e->path, &klen)) != NULL)
			apply_rec_queue(a, key, klen, 0, NULL);
	}
	return dir_dirty(a, dfd, e);
}

static int
apply_op_dir(struct apply *a)
{
	struct proto_entry *e = &a->e;
	char leaf[PROTO_NAME_MAX + 1];
	int dfd, fd, rc;

	if (apply_locate(a, e->src, e->path, &dfd, leaf) < 0)
		return HS_OK;
	if (mkdirat(dfd, leaf, 0700) < 0 && errno != EEXIST) {
		apply_error(a, apply_display(a, e->src, e->path),
		            "cannot make directory", -errno);
		close(dfd);
		return HS_OK;
	}
	fd = apply_open_nofollow(dfd, leaf, PROTO_E_DIR);
	if (fd < 0)
		apply_error(a, apply_display(a, e->src, e->path),
		            "exists and is not a directory", fd);
	else {
		if ((rc = apply_meta_fd(fd, e)) < 0)
			apply_error(a, apply_display(a, e->src, e->path),
			            "cannot set owner, mode or time", rc);
		else
			a->applied++;
		close(fd);
	}
	return dir_dirty(a, dfd, e);
}

/*
 * apply_meta_fd on a file that may have a block record: changing its owner,
 * mode or time changes its fingerprint, so a record that matched before
 * is renewed (same token) rather than left to look like drift.  The
 * change and the renewed record are committed together under the
 * index's writer lock, as apply_flush does for its renames: the other
 * lane's apply_drift_check must never see the new ctime beside the old record
 * (this lane's flush may come only at the end of a long run).
 */
static int
meta_fd_keep_rec(struct apply *a, int dfd, const char *leaf, int fd,
                 const struct proto_entry *e)
{
	struct idx_written v;
	struct idx_txn *lock = NULL;
	struct stat st;
	uint8_t *key = NULL;
	size_t klen;
	int rc, keep = 0;

	if (e->type == PROTO_E_FILE && a->idx != NULL &&
	    (key = apply_rec_key(a, e->src, e->path, &klen)) != NULL &&
	    idx_written_get(a->idx, key, klen, &v) == HS_OK) {
		if (idx_txn_begin(a->idx, &lock) < 0)
			lock = NULL;
		keep = fstat(fd, &st) == 0 &&
		       idx_written_get(a->idx, key, klen, &v) == HS_OK &&
		       apply_rec_holds(a, dfd, leaf, key, klen, &st, &v);
	}
	rc = apply_meta_fd(fd, e);
	if (keep && rc == HS_OK && fstat(fd, &st) == 0) {
		apply_fp_from_stat(&v, &st);
		apply_rec_queue(a, key, klen, 1, &v);
		key = NULL;
	}
	free(key);
	if (lock != NULL)
		apply_recs_commit(a, lock);
	return rc;
}

static int
apply_op_meta(struct apply *a)
{
	struct proto_entry *e = &a->e;
	char leaf[PROTO_NAME_MAX + 1];
	int dfd, fd, rc;

	/* Renames in the batch would touch directory mtimes set here. */
	if (e->type == PROTO_E_DIR && (rc = apply_flush(a)) < 0)
		return rc;
	if (apply_locate(a, e->src, e->path, &dfd, leaf) < 0)
		return HS_OK;
	if (e->type == PROTO_E_SYMLINK || e->type >= PROTO_E_FIFO) {
		struct stat st;

		if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
		else if (e->type == PROTO_E_SYMLINK)
			rc = S_ISLNK(st.st_mode) ? meta_symlink(dfd, leaf, e)
			                         : -EINVAL;
		else
			rc = (st.st_mode & S_IFMT) == special_type(e->type)
			         ? meta_special(dfd, leaf, e)
			         : -EINVAL;
	} else if ((fd = apply_open_nofollow(dfd, leaf, e->type)) < 0)
		rc = fd;
	else {
		rc = meta_fd_keep_rec(a, dfd, leaf, fd, e);
		close(fd);
	}
	if (rc < 0)
		apply_error(a, apply_display(a, e->src, e->path),
		            "cannot set owner, mode or time", rc);
	else
		a->applied++;
	close(dfd);
	return HS_OK;
}

static int
apply_op_symlink(struct apply *a)
{
	struct proto_entry *e = &a->e;
	struct pending p;
	int rc;

	memset(&p, 0, sizeof(p));
	if (apply_locate(a, e->src, e->path, &p.dirfd, p.leaf) < 0)
		return HS_OK;
	if ((rc = apply_tmp_name(p.tmp)) < 0)
		goto fail;
	if (symlinkat(e->link, p.dirfd, p.tmp) < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = meta_symlink(p.dirfd, p.tmp, e)) < 0) {
		unlinkat(p.dirfd, p.tmp, 0);
		goto fail;
	}
	p.display = hs_xstrdup(apply_display(a, e->src, e->path));
	apply_rec_drop(a, &p, e->src, e->path);
	return apply_batch_add(a, &p, 0);
fail:
	apply_error(a, apply_display(a, e->src, e->path), "cannot make symlink",
	            rc);
	close(p.dirfd);
	return HS_OK;
}

/*
 * Start receiving a file, whole (OP_FILE) or as a delta against our copy
 * (OP_DELTA).  Problems are recorded and the file's data is then dropped.
 */
/*
 * Start receiving a file: remember its entry, open its directory.  On
 * HS_OK with a->cur.display set, the caller goes on; otherwise the error
 * is recorded and the file's data will be dropped.
 */
static int
apply_file_begin(struct apply *a)
{
	struct proto_entry *e = &a->e;

	a->in_file = 1;
	a->is_patch = 0;
	a->prx_ok = 0;
	a->skip_file = 1;
	a->written = a->accepted = 0;
	a->wb_started = a->wb_done = 0;
	a->cur_e = *e;
	free(a->cur_xattrs);
	a->cur_xattrs = NULL;
	if (e->xattrs_len > 0) {
		if ((a->cur_xattrs = malloc(e->xattrs_len)) == NULL)
			return -ENOMEM;
		memcpy(a->cur_xattrs, e->xattrs, e->xattrs_len);
	}
	a->cur_e.xattrs = a->cur_xattrs;
	memset(&a->cur, 0, sizeof(a->cur));
	a->cur.dirfd = -1;
	proto_hash_final(a->hash, (uint8_t[PROTO_HASH_LEN]){0}); /* reset */
	if (apply_locate(a, e->src, e->path, &a->cur.dirfd, a->cur.leaf) < 0)
		return HS_OK;
	a->cur.display = hs_xstrdup(apply_display(a, e->src, e->path));
	a->cur.key = apply_rec_key(a, e->src, e->path, &a->cur.klen);
	return HS_OK;
}

static int file_emit(void *arg, const uint8_t *p, size_t n);

static int
apply_op_file(struct apply *a, int is_delta)
{
	struct proto_entry *e = &a->e;
	struct stat st;
	int rc;

	if ((rc = apply_file_begin(a)) < 0 || a->cur.display == NULL)
		return rc;
	apply_drift_check(a, e->src, e->path, a->cur.dirfd, a->cur.leaf,
	                  a->cur.key, a->cur.klen);
	if (is_delta) {
		a->basis_fd = apply_open_nofollow(a->cur.dirfd, a->cur.leaf,
		                                  PROTO_E_FILE);
		if (a->basis_fd < 0 || fstat(a->basis_fd, &st) < 0) {
			apply_error(a, a->cur.display,
			            "delta basis is gone or "
			            "not a regular file",
			            a->basis_fd < 0 ? a->basis_fd : -errno);
			return HS_OK;
		}
		if ((rc = delta_dec_new(a->basis_fd, (uint64_t)st.st_size,
		                        e->size, &a->dec)) < 0)
			goto fail;
	}
	if ((rc = apply_tmp_name(a->cur.tmp)) < 0)
		goto fail;
	a->fd =
	    openat(a->cur.dirfd, a->cur.tmp,
	           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (a->fd < 0) {
		rc = -errno;
		goto fail;
	}
	a->skip_file = 0;
	/* Without the thread (it could not start), write here. */
	if (!is_delta && e->size >= WRITER_MIN &&
	    apply_wr_start(file_emit, a, &a->wr) < 0)
		a->wr = NULL;
	return HS_OK;
fail:
	apply_error(a, a->cur.display, "cannot create temporary file", rc);
	return HS_OK;
}

/* Drop the file being received: its temporary goes, the old copy stays. */
static void
apply_file_discard(struct apply *a)
{
	apply_wr_finish(a->wr); /* its error does not matter any more */
	a->wr = NULL;
	delta_dec_free(a->dec);
	a->dec = NULL;
	if (a->basis_fd >= 0) {
		close(a->basis_fd);
		a->basis_fd = -1;
	}
	if (a->fd >= 0) {
		close(a->fd);
		a->fd = -1;
		unlinkat(a->cur.dirfd, a->cur.tmp, 0);
	}
	apply_pending_clear(&a->cur);
	a->skip_file = 1;
	a->is_patch = 0;
}

/*
 * Keep the dirty data of the file being received bounded (see
 * WRITEBACK_CHUNK).  Failures are not checked here: the fsync of the
 * flush reports them.
 */
static void
file_writeback(struct apply *a)
{
	uint64_t end = a->written - a->written % WRITEBACK_CHUNK;
	uint64_t prev = a->wb_started;

	if (end <= prev)
		return;
	/* Queue the new chunk first: the disk then has two to work on. */
	sync_file_range(a->fd, (off_t)prev, (off_t)(end - prev),
	                SYNC_FILE_RANGE_WRITE);
	a->wb_started = end;
	if (prev > a->wb_done) {
		sync_file_range(a->fd, (off_t)a->wb_done,
		                (off_t)(prev - a->wb_done),
		                SYNC_FILE_RANGE_WAIT_BEFORE |
		                    SYNC_FILE_RANGE_WRITE |
		                    SYNC_FILE_RANGE_WAIT_AFTER);
		a->wb_done = prev;
	}
}

/*
 * The file is complete: start the writeback of its last partial chunk
 * (see WRITEBACK_TAIL_MIN), not waited for; the flush's fsync is.
 */
static void
file_writeback_tail(struct apply *a)
{
	if (a->written < WRITEBACK_TAIL_MIN || a->written <= a->wb_started)
		return;
	sync_file_range(a->fd, (off_t)a->wb_started,
	                (off_t)(a->written - a->wb_started),
	                SYNC_FILE_RANGE_WRITE);
	a->wb_started = a->written;
}

/* Write data of the file being received, and count it. */
static int
file_write(struct apply *a, const uint8_t *p, size_t n)
{
	uint64_t total;
	int rc;

	if (__builtin_add_overflow(a->written, (uint64_t)n, &total) ||
	    total > a->cur_e.size)
		return HS_ELIMIT;
	if ((rc = HS_FAILPOINT("apply.before_write")) < 0 ||
	    (rc = hs_write_all(a->fd, p, n)) < 0 ||
	    (rc = HS_FAILPOINT("apply.after_write")) < 0)
		return rc;
	a->written = total;
	file_writeback(a);
	return HS_OK;
}

/*
 * Output of the file being received: hash it, write it, count it (in the
 * writer thread, when there is one).
 */
static int
file_emit(void *arg, const uint8_t *p, size_t n)
{
	struct apply *a = arg;

	proto_hash_update(a->hash, p, n);
	return file_write(a, p, n);
}

/* Wait until the writer thread wrote all it was given, and stop it. */
static int
file_drain(struct apply *a)
{
	int rc = apply_wr_finish(a->wr);

	a->wr = NULL;
	return rc;
}

/*
 * A delta that could not be applied: what was wrong with it, or, when
 * writing its output failed (a full disk), that write and why; never
 * "malformed" for an error of our own filesystem.
 */
static void
delta_error(struct apply *a, int rc)
{
	const char *why = delta_dec_why(a->dec);

	if (why[0] != '\0')
		apply_error(a, a->cur.display, why, 0);
	else
		apply_error(a, a->cur.display, "write failed", rc);
}

static int
apply_op_data(struct apply *a, const struct proto_msg *m)
{
	int rc;

	if (!a->in_file || a->is_patch)
		return HS_EPROTO;
	if (a->skip_file)
		return HS_OK;
	if (a->dec != NULL) {
		/* A bad delta costs this file only: the old copy stays. */
		if ((rc = delta_dec_feed(a->dec, m->data, m->len, 0, file_emit,
		                         a)) < 0) {
			delta_error(a, rc);
			apply_file_discard(a);
		}
		return HS_OK;
	}
	if (m->len > a->cur_e.size - a->accepted) {
		hs_log_errx(
		    "apply: %s: more data than the %llu bytes announced",
		    a->cur.display, (unsigned long long)a->cur_e.size);
		return HS_EPROTO;
	}
	a->accepted += m->len;
	if (a->wr != NULL)
		rc = apply_wr_put(a->wr, m->data, m->len);
	else
		rc = file_emit(a, m->data, m->len);
	if (rc < 0) {
		apply_error(a, a->cur.display, "write failed", rc);
		apply_file_discard(a);
	}
	return HS_OK;
}

/*
 * Skip a hole: the bytes in between are zeros, never written.  The hole
 * enters the file hash as a marker with its end offset (see
 * proto_hash_hole), never byte by byte, so a hostile size costs nothing.
 */
static int
apply_op_seek(struct apply *a, const struct proto_msg *m)
{
	struct proto_rd r = {m->data, m->len};
	uint64_t off;
	int rc;

	if (!a->in_file || a->dec != NULL || a->is_patch ||
	    proto_get_u64(&r, &off) < 0 ||
	    proto_rd_end(&r) < 0 || off < a->accepted || off > a->cur_e.size)
		return HS_EPROTO;
	if (a->skip_file)
		return HS_OK;
	/* The writer thread owns the hash and the file offset until then. */
	if ((rc = file_drain(a)) < 0) {
		apply_error(a, a->cur.display, "write failed", rc);
		apply_file_discard(a);
		return HS_OK;
	}
	proto_hash_hole(a->hash, off);
	if (lseek(a->fd, (off_t)off, SEEK_SET) < 0) {
		apply_error(a, a->cur.display, "seek failed", -errno);
		apply_file_discard(a);
		return HS_OK;
	}
	a->written = a->accepted = off;
	return HS_OK;
}

/* ------------------------------------------------- block patches */

static int apply_reject_nul(struct apply *a, uint8_t type);

/* Drop the patch being built; its blocks are still checked as they come. */
static void
patch_drop(struct apply *a)
{
	if (a->fd >= 0) {
		close(a->fd);
		a->fd = -1;
		unlinkat(a->cur.dirfd, a->cur.tmp, 0);
	}
	a->skip_file = 1;
}

/* Remember (src, path) for PATCH_STALE; past BLK_STALE_MAX, say "all". */
static void
stale_add(struct apply *a, uint16_t src, const char *path)
{
	struct proto_scope *v;

	if (a->n_stale >= BLK_STALE_MAX) {
		a->stale_all = 1;
		return;
	}
	if (a->n_stale % 64 == 0) {
		v = reallocarray(a->stale, a->n_stale + 64, sizeof(*v));
		if (v == NULL) {
			a->stale_all = 1;
			return;
		}
		a->stale = v;
	}
	a->stale[a->n_stale].src = src;
	a->stale[a->n_stale].recursive = 0;
	a->stale[a->n_stale].path = hs_xstrdup(path);
	a->n_stale++;
}

/*
 * The basis of a patch is not what the primary recorded: leave our copy
 * untouched, keep it under state_dir/drift/ when it is not hamnsync's
 * own last write (`keep`), say so in one line, and have the primary send
 * the file again through signatures.
 */
static void
patch_stale(struct apply *a, const struct stat *st, int keep,
            const char *reason)
{
	char where[PROTO_PATH_MAX * 3];
	int rc;

	stale_add(a, a->cur_e.src, a->cur_e.path);
	if (!keep || st == NULL || a->state_dir == NULL) {
		hs_log_warnx("apply: %s: %s; the primary sends it again",
		             a->cur.display, reason);
		return;
	}
	rc = drift_keep(a->state_dir, a->set->name, a->src[a->cur_e.src].abs,
	                a->cur_e.path, a->cur.dirfd, a->cur.leaf, a->basis_fd,
	                (uint64_t)st->st_size, where, sizeof(where));
	if (rc < 0)
		hs_log_warnx("apply: %s: %s; this version NOT kept (%s: %s); "
		             "the primary sends it again",
		             a->cur.display, reason, where, hs_strerror(rc));
	else
		hs_log_warnx("apply: %s: %s; this version kept at %s; the "
		             "primary sends it again",
		             a->cur.display, reason, where);
}

/* 1 when our copy is the recorded basis, 0 when stale (handled). */
static int
patch_basis_ok(struct apply *a, const struct stat *st,
               const uint8_t basis[BLK_TOKEN_LEN])
{
	struct idx_written v;

	if (a->idx == NULL) {
		/* Nothing to tell drift from our own writes: no copy kept. */
		patch_stale(a, st, 0, "no usable index here to check it");
		return 0;
	}
	if (a->cur.key == NULL ||
	    idx_written_get(a->idx, a->cur.key, a->cur.klen, &v) < 0) {
		patch_stale(a, st, 1, "no record of what was written here");
		return 0;
	}
	if (!apply_rec_holds(a, a->cur.dirfd, a->cur.leaf, a->cur.key,
	                     a->cur.klen, st, &v)) {
		patch_stale(a, st, 1,
		            "changed on this standby since hamnsync wrote it");
		return 0;
	}
	if (memcmp(v.token, basis, BLK_TOKEN_LEN) != 0) {
		patch_stale(a, st, 0,
		            "holds another version than the primary recorded");
		return 0;
	}
	return 1;
}

/*
 * OP_PATCH: check the header against our copy and its record, then build
 * the new version in a temporary: the basis copied in the kernel, the
 * blocks written over it as they come.  Never in place.
 */
static int
apply_op_patch(struct apply *a, const struct proto_msg *m)
{
	struct proto_rd r = {m->data, m->len};
	struct patch_hdr h;
	struct stat st;
	char why[256];
	uint64_t keep;
	int rc;

	if ((rc = proto_entry_decode(&r, &a->e)) < 0 ||
	    (rc = patch_hdr_decode(&r, &h)) < 0)
		return rc;
	if (a->e.type != PROTO_E_FILE)
		return HS_EPROTO;
	if (a->e.has_nul) {
		rc = apply_reject_nul(a, PROTO_T_OP_PATCH);
		a->is_patch = 1;
		return rc;
	}
	rc = apply_file_begin(a);
	a->is_patch = 1;
	if (rc < 0 || a->cur.display == NULL)
		return rc;
	a->basis_fd =
	    apply_open_nofollow(a->cur.dirfd, a->cur.leaf, PROTO_E_FILE);
	if (a->basis_fd < 0 || fstat(a->basis_fd, &st) < 0) {
		patch_stale(a, NULL, 0, "no regular file here to patch");
		return HS_OK;
	}
	/* A malformed patch is refused whatever our copy holds. */
	if ((rc = patch_rx_init(&a->prx, (uint64_t)st.st_size, a->cur_e.size,
	                        &h, why, sizeof(why))) < 0) {
		hs_log_errx("apply: %s: %s", a->cur.display, why);
		return rc;
	}
	a->prx_ok = 1;
	if (!patch_basis_ok(a, &st, h.basis))
		return HS_OK;
	if ((rc = apply_tmp_name(a->cur.tmp)) < 0)
		goto fail;
	a->fd =
	    openat(a->cur.dirfd, a->cur.tmp,
	           O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (a->fd < 0) {
		rc = -errno;
		goto fail;
	}
	keep = (uint64_t)st.st_size < a->cur_e.size ? (uint64_t)st.st_size
	                                            : a->cur_e.size;
	if ((rc = fs_copy_fd_flushing(a->basis_fd, a->fd, keep)) < 0 ||
	    (ftruncate(a->fd, (off_t)a->cur_e.size) < 0 && (rc = -errno))) {
		apply_error(a, a->cur.display, "cannot copy the patch basis",
		            rc);
		patch_drop(a);
		return HS_OK;
	}
	a->skip_file = 0;
	return HS_OK;
fail:
	apply_error(a, a->cur.display, "cannot create temporary file", rc);
	return HS_OK;
}

/* OP_PATCH_DATA: one block, checked even when the file is dropped. */
static int
apply_op_patch_data(struct apply *a, const struct proto_msg *m)
{
	const uint8_t *data;
	uint64_t off;
	size_t n;
	char why[256];
	int rc;

	if (!a->in_file || !a->is_patch)
		return HS_EPROTO;
	if (!a->prx_ok)
		return HS_OK; /* no basis to check against: dropped */
	if ((rc = patch_rx_block(&a->prx, m->data, m->len, &off, &data, &n,
	                         why, sizeof(why))) < 0) {
		hs_log_errx("apply: %s: %s", a->cur.display, why);
		return rc;
	}
	if (a->skip_file)
		return HS_OK;
	while (n > 0) {
		ssize_t k = pwrite(a->fd, data, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			apply_error(a, a->cur.display, "write failed",
			            k < 0 ? -errno : -EIO);
			patch_drop(a);
			return HS_OK;
		}
		data += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return HS_OK;
}

/* FILE_END of a patch: 1 to make it durable, 0 when dropped. */
static int
patch_end(struct apply *a, const uint8_t want[PROTO_HASH_LEN])
{
	char why[256];

	if (patch_rx_end(&a->prx, why, sizeof(why)) < 0) {
		apply_error(a, a->cur.display, why, 0);
		apply_file_discard(a);
		return 0;
	}
	/* Trusted by composition: a checked basis plus the blocks sent. */
	memcpy(a->cur.token, want, sizeof(a->cur.token));
	a->cur.rec = REC_PUT;
	a->written = a->cur_e.size;
	return 1;
}

void
apply_set_records(struct apply *a, struct idx *x, const char *state_dir)
{
	a->idx = x;
	a->state_dir = state_dir;
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

int
apply_stale_encode(const struct apply *a, struct proto_wr *w)
{
	size_t i;

	if (a->n_stale == 0 && !a->stale_all)
		return 0;
	proto_wr_reset(w);
	proto_put_u8(w, a->stale_all ? 1 : 0);
	proto_put_u32(w, (uint32_t)a->n_stale);
	for (i = 0; i < a->n_stale; i++) {
		proto_put_u16(w, a->stale[i].src);
		proto_put_str(w, a->stale[i].path);
	}
	return 1;
}

static int
apply_op_file_end(struct apply *a, const struct proto_msg *m)
{
	struct proto_rd r = {m->data, m->len};
	uint8_t status, want[PROTO_HASH_LEN], got[PROTO_HASH_LEN];
	int rc;

	if (!a->in_file)
		return HS_EPROTO;
	if (proto_get_u8(&r, &status) < 0 ||
	    proto_get_bytes(&r, want, sizeof(want)) < 0 ||
	    proto_rd_end(&r) < 0 || status > 1)
		return HS_EPROTO;
	a->in_file = 0;
	if (a->skip_file) {
		apply_file_discard(a);
		return HS_OK;
	}
	if (status == 1) { /* the primary gave up on this file */
		apply_file_discard(a);
		return HS_OK;
	}
	if (a->is_patch) {
		if ((rc = patch_end(a, want)) <= 0)
			return rc;
		goto durable;
	}
	if ((rc = file_drain(a)) < 0) {
		apply_error(a, a->cur.display, "write failed", rc);
		apply_file_discard(a);
		return HS_OK;
	}
	if (a->dec != NULL &&
	    (rc = delta_dec_feed(a->dec, NULL, 0, 1, file_emit, a)) < 0) {
		delta_error(a, rc);
		apply_file_discard(a);
		return HS_OK;
	}
	/* A trailing hole: the size comes from the seek, not a write. */
	if (ftruncate(a->fd, (off_t)a->written) < 0) {
		apply_error(a, a->cur.display, "cannot set size", -errno);
		apply_file_discard(a);
		return HS_OK;
	}
	proto_hash_final(a->hash, got);
	if (a->written != a->cur_e.size) {
		apply_error(a, a->cur.display,
		            "fewer bytes than announced; "
		            "old copy kept",
		            0);
		apply_file_discard(a);
		return HS_OK;
	}
	if (memcmp(want, got, sizeof(got)) != 0) {
		apply_error(a, a->cur.display,
		            "content hash mismatch; old "
		            "copy kept",
		            0);
		apply_file_discard(a);
		return HS_OK;
	}
	/*
	 * Every file keeps a record, the token being the hash just
	 * checked: big files for patches, all of them to see drift.
	 */
	memcpy(a->cur.token, want, sizeof(a->cur.token));
	a->cur.rec = REC_PUT;
durable:
	if ((rc = apply_meta_fd(a->fd, &a->cur_e)) < 0) {
		apply_error(a, a->cur.display, "cannot set owner, mode or time",
		            rc);
		apply_file_discard(a);
		return HS_OK;
	}
	file_writeback_tail(a);
	/* Keep the fd for the flush's fsync, while that stays cheap. */
	if (a->pend_fds < BATCH_FSYNC_MAX) {
		a->cur.datafd = a->fd + 1;
		a->pend_fds++;
	} else {
		close(a->fd);
		a->pend_nofd++;
	}
	a->fd = -1;
	delta_dec_free(a->dec);
	a->dec = NULL;
	if (a->basis_fd >= 0) {
		if (a->n_old_fds < OLD_FDS_MAX)
			a->old_fds[a->n_old_fds++] = a->basis_fd;
		else
			close(a->basis_fd);
		a->basis_fd = -1;
	}
	rc = apply_batch_add(a, &a->cur, a->written);
	memset(&a->cur, 0, sizeof(a->cur));
	a->cur.dirfd = -1;
	return rc;
}

static int
apply_op_special(struct apply *a)
{
	struct proto_entry *e = &a->e;
	struct pending p;
	int rc;

	memset(&p, 0, sizeof(p));
	if (apply_locate(a, e->src, e->path, &p.dirfd, p.leaf) < 0)
		return HS_OK;
	if ((rc = apply_tmp_name(p.tmp)) < 0)
		goto fail;
	if (mknodat(p.dirfd, p.tmp, special_type(e->type) | 0600,
	            (dev_t)e->rdev) < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = meta_special(p.dirfd, p.tmp, e)) < 0) {
		unlinkat(p.dirfd, p.tmp, 0);
		goto fail;
	}
	p.display = hs_xstrdup(apply_display(a, e->src, e->path));
	apply_rec_drop(a, &p, e->src, e->path);
	return apply_batch_add(a, &p, 0);
fail:
	apply_error(a, apply_display(a, e->src, e->path),
	            "cannot make special file", rc);
	close(p.dirfd);
	return HS_OK;
}

/* Before linking to (lsrc, lpath): note its record if it still holds. */
static void
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

/* Hard link (src, path) to the entry (lsrc, lpath) of the same set. */
static int
apply_op_link(struct apply *a, const struct proto_msg *m)
{
	struct proto_rd r = {m->data, m->len};
	char lpath[PROTO_PATH_MAX + 1], lleaf[PROTO_NAME_MAX + 1];
	struct pending p;
	uint16_t src, lsrc;
	int ldir, rc;

	if (proto_get_u16(&r, &src) < 0 ||
	    proto_get_str(&r, a->e.path, PROTO_PATH_MAX, NULL) < 0 ||
	    proto_get_u16(&r, &lsrc) < 0 ||
	    proto_get_str(&r, lpath, PROTO_PATH_MAX, NULL) < 0 ||
	    proto_rd_end(&r) < 0)
		return HS_EPROTO;
	/* The target may still wait under a temporary name. */
	if (a->pend_has_files && (rc = apply_flush(a)) < 0)
		return rc;
	memset(&p, 0, sizeof(p));
	if (apply_locate(a, lsrc, lpath, &ldir, lleaf) < 0)
		return HS_OK;
	if (apply_locate(a, src, a->e.path, &p.dirfd, p.leaf) < 0) {
		close(ldir);
		return HS_OK;
	}
	p.display = hs_xstrdup(apply_display(a, src, a->e.path));
	apply_link_keeps_rec(a, &p, lsrc, lpath, ldir, lleaf);
	if ((rc = apply_tmp_name(p.tmp)) < 0 ||
	    (linkat(ldir, lleaf, p.dirfd, p.tmp, 0) < 0 && (rc = -errno))) {
		apply_error(a, p.display, "cannot make hard link", rc);
		apply_pending_clear(&p);
		close(ldir);
		return HS_OK;
	}
	close(ldir);
	apply_rec_drop(a, &p, src, a->e.path);
	return apply_batch_add(a, &p, 0);
}

/* A path with a NUL byte: named in an error, its data (if any) dropped. */
static int
apply_reject_nul(struct apply *a, uint8_t type)
{
	apply_error(a, apply_display(a, a->e.src, a->e.path),
	            "path contains a NUL byte: rejected", 0);
	if (type == PROTO_T_OP_FILE || type == PROTO_T_OP_DELTA ||
	    type == PROTO_T_OP_PATCH) {
		a->in_file = 1;
		a->skip_file = 1;
		a->written = 0;
		a->cur_e = a->e;
		a->cur_e.xattrs = NULL;
		a->cur_e.xattrs_len = 0;
	}
	return HS_OK;
}

int
apply_op(struct apply *a, const struct proto_msg *m)
{
	int rc;

	if (a->poisoned)
		return HS_EPROTO;
	if (a->in_file && m->type != PROTO_T_OP_DATA &&
	    m->type != PROTO_T_OP_SEEK && m->type != PROTO_T_OP_FILE_END &&
	    m->type != PROTO_T_OP_PATCH_DATA) {
		rc = HS_EPROTO;
		goto out;
	}
	switch (m->type) {
	case PROTO_T_OP_DATA:
		rc = apply_op_data(a, m);
		break;
	case PROTO_T_OP_FILE_END:
		rc = apply_op_file_end(a, m);
		break;
	case PROTO_T_OP_SEEK:
		rc = apply_op_seek(a, m);
		break;
	case PROTO_T_OP_LINK:
		rc = apply_op_link(a, m);
		break;
	case PROTO_T_OP_PATCH:
		rc = apply_op_patch(a, m);
		break;
	case PROTO_T_OP_PATCH_DATA:
		rc = apply_op_patch_data(a, m);
		break;
	case PROTO_T_OP_DELTA:
	case PROTO_T_OP_SPECIAL:
	case PROTO_T_OP_DELETE:
	case PROTO_T_OP_DIR:
	case PROTO_T_OP_SYMLINK:
	case PROTO_T_OP_FILE:
	case PROTO_T_OP_META:
		if ((rc = decode_entry(a, m)) < 0)
			break;
		if (a->e.has_nul) {
			rc = apply_reject_nul(a, m->type);
			break;
		}
		if (m->type == PROTO_T_OP_DELETE)
			rc = apply_op_delete(a);
		else if (m->type == PROTO_T_OP_DIR)
			rc = a->e.type == PROTO_E_DIR ? apply_op_dir(a)
			                              : HS_EPROTO;
		else if (m->type == PROTO_T_OP_SYMLINK)
			rc = a->e.type == PROTO_E_SYMLINK ? apply_op_symlink(a)
			                                  : HS_EPROTO;
		else if (m->type == PROTO_T_OP_FILE ||
		         m->type == PROTO_T_OP_DELTA)
			rc = a->e.type == PROTO_E_FILE
			         ? apply_op_file(a, m->type == PROTO_T_OP_DELTA)
			         : HS_EPROTO;
		else if (m->type == PROTO_T_OP_SPECIAL)
			rc = a->e.type >= PROTO_E_FIFO ? apply_op_special(a)
			                               : HS_EPROTO;
		else
			rc = apply_op_meta(a);
		break;
	default:
		rc = HS_EPROTO;
	}
out:
	if (rc < 0) {
		apply_abort(a);
		a->poisoned = 1;
	}
	return rc;
}

void
apply_abort(struct apply *a)
{
	if (a->in_file)
		apply_file_discard(a);
	a->in_file = 0;
}

void
apply_free(struct apply *a)
{
	size_t i;

	if (a == NULL)
		return;
	apply_abort(a);
	apply_pending_clear(&a->cur);
	/* Completed files are durable-able: finish them rather than drop. */
	apply_flush(a);
	free(a->pend);
	for (i = 0; i < a->n_src; i++) {
		if (a->src[i].anchorfd >= 0)
			close(a->src[i].anchorfd);
		free(a->src[i].leaf);
		free(a->src[i].abs);
	}
	for (i = 0; i < PROTO_ERRORS_MAX && i < a->n_errors; i++)
		free(a->errors[i]);
	for (i = 0; i < a->n_recs; i++)
		free(a->recs[i].key);
	free(a->recs);
	proto_scope_free(a->stale, a->n_stale);
	for (i = 0; i < a->n_old_fds; i++)
		close(a->old_fds[i]);
	proto_hash_free(a->hash);
	free(a->cur_xattrs);
	free(a);
}

uint64_t
apply_applied(const struct apply *a)
{
	return a->applied;
}

uint64_t
apply_error_count(const struct apply *a)
{
	return a->n_errors;
}

const char *
apply_error_first(const struct apply *a, const char **why)
{
	*why = a->first_why;
	return a->first_path;
}

size_t
apply_error_lines(const struct apply *a)
{
	return a->n_errors < PROTO_ERRORS_MAX ? a->n_errors : PROTO_ERRORS_MAX;
}

const char *
apply_error_line(const struct apply *a, size_t i)
{
	return i < apply_error_lines(a) && a->errors[i] ? a->errors[i] : "";
}

int
apply_hash_file(struct apply *a, uint16_t src, const char *rel,
                uint8_t out[PROTO_HASH_LEN])
{
	char leaf[PROTO_NAME_MAX + 1];
	int dfd, fd, rc;

	if ((rc = apply_locate(a, src, rel, &dfd, leaf)) < 0)
		return rc;
	fd = apply_open_nofollow(dfd, leaf, PROTO_E_FILE);
	close(dfd);
	if (fd < 0)
		return HS_ENOTFOUND;
	rc = fs_hash_fd(fd, out);
	close(fd);
	return rc;
}

int
apply_sig_file(struct apply *a, uint16_t src, const char *rel,
               struct hs_buf *sig, uint8_t hash[PROTO_HASH_LEN], uint64_t *size)
{
	char leaf[PROTO_NAME_MAX + 1];
	int dfd, fd, rc;

	if ((rc = apply_locate(a, src, rel, &dfd, leaf)) < 0)
		return rc;
	fd = apply_open_nofollow(dfd, leaf, PROTO_E_FILE);
	close(dfd);
	if (fd < 0)
		return HS_ENOTFOUND;
	rc = delta_sig_fd(fd, sig, hash, size);
	close(fd);
	return rc;
}

int
apply_list(struct apply *a, uint16_t src, const char *rel, int recursive,
           const struct scan_visit *v, struct xcache *xc)
{
	char parent[PROTO_PATH_MAX * 2 + 2], leaf[PROTO_NAME_MAX + 1];
	const char *slash;
	int fd, rc;

	if (src >= a->n_src)
		return HS_EPROTO;
	if ((rc = fs_relpath_check(rel)) < 0)
		return rc;
	if (rel[0] == '\0')
		return scan_subtree_visit(a->src[src].anchorfd,
		                          a->src[src].leaf, src, "", recursive,
		                          a->set, v, xc);
	slash = strrchr(rel, '/');
	snprintf(parent, sizeof(parent), "%s%s%.*s", a->src[src].leaf,
	         slash ? "/" : "", (int)(slash ? slash - rel : 0), rel);
	snprintf(leaf, sizeof(leaf), "%s", slash ? slash + 1 : rel);
	fd = fs_open_dir_beneath(a->src[src].anchorfd, parent);
	if (fd == -ENOENT || fd == -ENOTDIR)
		return HS_OK; /* nothing there: nothing to list */
	if (fd < 0)
		return fd;
	rc = scan_subtree_visit(fd, leaf, src, rel, recursive, a->set, v, xc);
	close(fd);
	return rc;
}

/*
 * A record follows its file through a rename (the file is still the
 * version hamnsync wrote, only its path changed), and the records of the
 * files below a directory follow the directory.  Left behind, they would
 * stay at `from`, and `to` would keep the records of what the rename
 * replaced there: the next write at `to` would take hamnsync's own
 * version for drift.
 */
struct rename_rec {
	struct idx_txn *lock;
	uint8_t *fkey, *tkey; /* owned; of "from/" and "to/" for a directory */
	size_t fklen, tklen;
	int dir;  /* `from` is a directory */
	int has;  /* `from` is a regular file with a record ... */
	int mine; /* ... and is the version that record describes */
	struct idx_written v;
};

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
static void
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
static void
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

int
apply_rename(struct apply *a, uint16_t src, const char *from, const char *to)
{
	char fleaf[PROTO_NAME_MAX + 1], tleaf[PROTO_NAME_MAX + 1];
	struct rename_rec rr;
	struct pending p;
	int fdir, tdir, rc = HS_OK;

	/* The sources themselves are never renamed, only what is below. */
	if (from[0] == '\0' || to[0] == '\0')
		return HS_EPROTO;
	if (apply_locate(a, src, from, &fdir, fleaf) < 0)
		return HS_OK;
	if (apply_locate(a, src, to, &tdir, tleaf) < 0) {
		close(fdir);
		return HS_OK;
	}
	/*
	 * A failure is fine: the reconciliation that follows sends what the
	 * rename would have saved.
	 */
	apply_rename_rec_begin(a, src, from, to, fdir, fleaf, tdir, tleaf, &rr);
	if (renameat(fdir, fleaf, tdir, tleaf) < 0) {
		hs_log_debug("apply: rename %s -> %s: %s", from, to,
		             strerror(errno));
		apply_rename_rec_end(a, &rr, 0, tdir, tleaf);
		close(fdir);
		close(tdir);
		return HS_OK;
	}
	apply_rename_rec_end(a, &rr, 1, tdir, tleaf);
	a->applied++;
	memset(&p, 0, sizeof(p));
	p.dirfd = fdir;
	p.display = hs_xstrdup(apply_display(a, src, from));
	if ((rc = apply_batch_add(a, &p, 0)) == HS_OK) {
		p.dirfd = tdir;
		p.display = hs_xstrdup(apply_display(a, src, to));
		rc = apply_batch_add(a, &p, 0);
	} else
		close(tdir);
	return rc;
}
