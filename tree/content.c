/*
 * content.c - what is in a file: its content hash, and in-kernel copies
 * of its leading bytes.
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

#include "tree.h"

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

/* fs_hash_fd, with the transfer hash (a written file's token) if xfer. */
static int
hash_fd(int fd, int xfer, uint8_t out[PROTO_HASH_LEN])
{
	struct proto_hash *h;
	uint8_t *buf;
	int rc = HS_OK;

	if ((buf = malloc(PROTO_CHUNK)) == NULL)
		return -ENOMEM;
	if ((rc = xfer ? proto_hash_new_xfer(&h) : proto_hash_new(&h)) < 0) {
		free(buf);
		return rc;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t n = read(fd, buf, PROTO_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		proto_hash_update(h, buf, (size_t)n);
	}
	if (rc == HS_OK)
		proto_hash_final(h, out);
	proto_hash_free(h);
	free(buf);
	return rc;
}

int
fs_hash_fd(int fd, uint8_t out[PROTO_HASH_LEN])
{
	return hash_fd(fd, 0, out);
}

int
fs_hash_fd_xfer(int fd, uint8_t out[PROTO_HASH_LEN])
{
	return hash_fd(fd, 1, out);
}
