/*
 * apply_ops.c - the operations that need no data: delete, make a
 * directory, symlink, special file or hard link, set metadata, and mirror
 * a rename.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply_int.h"

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
int
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

int
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
	if (e->type == PROTO_E_FILE || e->type == PROTO_E_SYMLINK) {
		uint8_t *key;
		size_t klen;

		if ((key = apply_rec_key(a, e->src, e->path, &klen)) != NULL)
			apply_rec_queue(a, key, klen, 0, NULL);
	}
	return dir_dirty(a, dfd, e);
}

int
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

/* The file at `fd`, or the symlink `leaf` in `dfd` when fd is -1. */
static int
meta_stat(int dfd, const char *leaf, int fd, struct stat *st)
{
	return fd >= 0 ? fstat(fd, st)
	               : fstatat(dfd, leaf, st, AT_SYMLINK_NOFOLLOW);
}

/*
 * Set the owner, mode or time of a file (`fd`) or a symlink (fd -1, leaf
 * in dfd) that may have a record of what was written there: the change
 * moves its fingerprint, so a record that matched before is renewed
 * (same token) rather than left to look like drift, or like this node's
 * own change to a rejoin (failover/aside.c).  The change and the renewed
 * record are committed together under the index's writer lock, as
 * apply_flush does for its renames: the other lane's apply_drift_check
 * must never see the new ctime beside the old record (this lane's flush
 * may come only at the end of a long run).
 */
static int
meta_keep_rec(struct apply *a, int dfd, const char *leaf, int fd,
              const struct proto_entry *e)
{
	struct idx_written v;
	struct idx_txn *lock = NULL;
	struct stat st;
	uint8_t *key = NULL;
	size_t klen;
	int rc, keep = 0;

	if ((e->type == PROTO_E_FILE || e->type == PROTO_E_SYMLINK) &&
	    a->idx != NULL &&
	    (key = apply_rec_key(a, e->src, e->path, &klen)) != NULL &&
	    idx_written_get(a->idx, key, klen, &v) == HS_OK) {
		if (idx_txn_begin(a->idx, &lock) < 0)
			lock = NULL;
		keep = meta_stat(dfd, leaf, fd, &st) == 0 &&
		       idx_written_get(a->idx, key, klen, &v) == HS_OK &&
		       apply_rec_holds(a, dfd, leaf, key, klen, &st, &v);
	}
	rc = fd >= 0 ? apply_meta_fd(fd, e) : meta_symlink(dfd, leaf, e);
	if (keep && rc == HS_OK && meta_stat(dfd, leaf, fd, &st) == 0) {
		apply_fp_from_stat(&v, &st);
		apply_rec_queue(a, key, klen, 1, &v);
		key = NULL;
	}
	free(key);
	if (lock != NULL)
		apply_recs_commit(a, lock);
	return rc;
}

int
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
			rc = S_ISLNK(st.st_mode)
			         ? meta_keep_rec(a, dfd, leaf, -1, e)
			         : -EINVAL;
		else
			rc = (st.st_mode & S_IFMT) == special_type(e->type)
			         ? meta_special(dfd, leaf, e)
			         : -EINVAL;
	} else if ((fd = apply_open_nofollow(dfd, leaf, e->type)) < 0)
		rc = fd;
	else {
		rc = meta_keep_rec(a, dfd, leaf, fd, e);
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

int
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
	/*
	 * Recorded like a file (no token: nothing to patch), so that a
	 * rejoin tells this symlink, untouched since, from this node's own
	 * change (failover/aside.c).
	 */
	if ((p.key = apply_rec_key(a, e->src, e->path, &p.klen)) != NULL)
		p.rec = REC_PUT;
	return apply_batch_add(a, &p, 0);
fail:
	apply_error(a, apply_display(a, e->src, e->path), "cannot make symlink",
	            rc);
	close(p.dirfd);
	return HS_OK;
}

int
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

/* Hard link (src, path) to the entry (lsrc, lpath) of the same set. */
int
apply_op_link(struct apply *a, const struct proto_msg *m)
{
	struct proto_op_link l;
	char lleaf[PROTO_NAME_MAX + 1];
	struct pending p;
	int ldir, rc;

	if (proto_op_link_decode(m->data, m->len, &l) < 0)
		return HS_EPROTO;
	/* The target may still wait under a temporary name. */
	if (a->pend_has_files && (rc = apply_flush(a)) < 0)
		return rc;
	memset(&p, 0, sizeof(p));
	if (apply_locate(a, l.lsrc, l.lpath, &ldir, lleaf) < 0)
		return HS_OK;
	if (apply_locate(a, l.src, l.path, &p.dirfd, p.leaf) < 0) {
		close(ldir);
		return HS_OK;
	}
	p.display = hs_xstrdup(apply_display(a, l.src, l.path));
	apply_link_keeps_rec(a, &p, l.lsrc, l.lpath, ldir, lleaf);
	if ((rc = apply_tmp_name(p.tmp)) < 0 ||
	    (linkat(ldir, lleaf, p.dirfd, p.tmp, 0) < 0 && (rc = -errno))) {
		apply_error(a, p.display, "cannot make hard link", rc);
		apply_pending_clear(&p);
		close(ldir);
		return HS_OK;
	}
	close(ldir);
	apply_rec_drop(a, &p, l.src, l.path);
	return apply_batch_add(a, &p, 0);
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
