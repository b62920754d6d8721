/*
 * apply_file.c - a file received whole (OP_FILE, OP_DATA, OP_SEEK) or as
 * a librsync delta (OP_DELTA), checked at OP_FILE_END and handed to the
 * batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "applywr_int.h"
#include "apply_int.h"

/*
 * Up to this many files a batch fsyncs each one: cheaper than syncfs,
 * which also waits for every other writer on the filesystem.  Past it,
 * one syncfs per filesystem is cheaper than many fsyncs.
 */
#define BATCH_FSYNC_MAX 16

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

/*
 * Start receiving a file, whole (OP_FILE) or as a delta against our copy
 * (OP_DELTA): remember its entry, open its directory.  On
 * HS_OK with a->cur.display set, the caller goes on; otherwise the error
 * is recorded and the file's data will be dropped.
 */
int
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

int
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
void
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
		sync_file_range(
		    a->fd, (off_t)a->wb_done, (off_t)(prev - a->wb_done),
		    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
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

int
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
int
apply_op_seek(struct apply *a, const struct proto_msg *m)
{
	uint64_t off;
	int rc;

	if (!a->in_file || a->dec != NULL || a->is_patch ||
	    proto_op_seek_decode(m->data, m->len, &off) < 0 ||
	    off < a->accepted || off > a->cur_e.size)
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

/* FILE_END of a patch: 1 to make it durable, 0 when dropped. */
static int
patch_end(struct apply *a, const uint8_t want[PROTO_HASH_LEN])
{
	char why[256];

	if (proto_patch_rx_end(&a->prx, why, sizeof(why)) < 0) {
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

int
apply_op_file_end(struct apply *a, const struct proto_msg *m)
{
	struct proto_op_file_end end;
	const uint8_t *want = end.hash;
	uint8_t got[PROTO_HASH_LEN];
	int rc;

	if (!a->in_file)
		return HS_EPROTO;
	if (proto_op_file_end_decode(m->data, m->len, &end) < 0)
		return HS_EPROTO;
	a->in_file = 0;
	if (a->skip_file) {
		apply_file_discard(a);
		return HS_OK;
	}
	if (end.status == 1) { /* the primary gave up on this file */
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

/* A path with a NUL byte: named in an error, its data (if any) dropped. */
int
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
