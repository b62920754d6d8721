/*
 * check_aux.h - what the unit suites share: the length of a table,
 * deterministic bytes, and the nftw(3) step that removes a test folder.
 * Header only: each suite is an executable of its own.
 */
#ifndef CHECK_AUX_H
#define CHECK_AUX_H

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Deterministic incompressible bytes (xorshift64*). */
static inline void
fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 2654435761u + 0x9e3779b97f4a7c15ull;
	size_t i;

	for (i = 0; i < n; i++) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		p[i] = (uint8_t)((s * 0x2545f4914f6cdd1dull) >> 56);
	}
}

/* For nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS): remove it all. */
static inline int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A fresh folder below `base` for one case (dir: room for the path),
 * and an fd on it. */
static inline void
aux_tmp_make(const char *base, char *dir, size_t n, int *fd)
{
	snprintf(dir, n, "%s/t.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(*fd, 0);
}

/* Close *fd and remove the case's folder with all it holds. */
static inline void
aux_tmp_remove(const char *dir, int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	ck_assert_int_eq(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Create `name` in dirfd holding `data`; returns an O_RDWR fd. */
static inline int
aux_file_make(int dirfd, const char *name, const uint8_t *data, size_t len)
{
	size_t done = 0;
	int fd;

	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);

		ck_assert_int_gt(n, 0);
		done += (size_t)n;
	}
	return fd;
}

#endif /* CHECK_AUX_H */
