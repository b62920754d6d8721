/*
 * apply_patch.c - block patches (delta.h): OP_PATCH checked against our
 * copy and its record, the new version built in a temporary from the
 * basis and the blocks, and PATCH_STALE for the patches that could not be.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply_int.h"

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

/* Remember (src, path) for PATCH_STALE; past PROTO_STALE_MAX, say "all". */
static void
stale_add(struct apply *a, uint16_t src, const char *path)
{
	struct proto_scope *v;

	if (a->n_stale >= PROTO_STALE_MAX) {
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
int
apply_op_patch(struct apply *a, const struct proto_msg *m)
{
	struct proto_patch_hdr h;
	struct stat st;
	char why[256];
	uint64_t keep;
	int rc;

	if ((rc = proto_op_patch_decode(m->data, m->len, &a->e, &h)) < 0)
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
	if ((rc = proto_patch_rx_init(&a->prx, (uint64_t)st.st_size,
	                              a->cur_e.size, &h, why, sizeof(why))) <
	    0) {
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
int
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
	if ((rc = proto_patch_rx_block(&a->prx, m->data, m->len, &off, &data,
	                               &n, why, sizeof(why))) < 0) {
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
