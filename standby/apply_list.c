/*
 * apply_list.c - what the receiver asks of our copy: listings, content
 * hashes and librsync signatures, read as confined as every write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apply_int.h"

/* Our regular file (src, rel), opened confined and without following a
 * symlink; HS_ENOTFOUND if absent or not a regular file. */
static int
open_file(struct apply *a, uint16_t src, const char *rel)
{
	char leaf[PROTO_NAME_MAX + 1];
	int dfd, fd, rc;

	if ((rc = apply_locate(a, src, rel, &dfd, leaf)) < 0)
		return rc;
	fd = apply_open_nofollow(dfd, leaf, PROTO_E_FILE);
	close(dfd);
	return fd < 0 ? HS_ENOTFOUND : fd;
}

int
apply_hash_file(struct apply *a, uint16_t src, const char *rel,
                uint8_t out[PROTO_HASH_LEN])
{
	int fd, rc;

	if ((fd = open_file(a, src, rel)) < 0)
		return fd;
	rc = fs_hash_fd(fd, out);
	close(fd);
	return rc;
}

int
apply_sig_file(struct apply *a, uint16_t src, const char *rel,
               struct hs_buf *sig, uint8_t hash[PROTO_HASH_LEN], uint64_t *size)
{
	int fd, rc;

	if ((fd = open_file(a, src, rel)) < 0)
		return fd;
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
