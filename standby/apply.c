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
 * that the next start removes.  This file opens, dispatches and frees;
 * apply_int.h lists the files that do the rest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply_int.h"

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

void
apply_set_records(struct apply *a, struct idx *x, const char *state_dir)
{
	a->idx = x;
	a->state_dir = state_dir;
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
		if ((rc = proto_op_entry_decode(m->data, m->len, &a->e)) < 0)
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
