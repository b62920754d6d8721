/*
 * check_aux.h - what the unit suites share: the length of a table,
 * deterministic bytes, and the nftw(3) step that removes a test folder.
 * Header only: each suite is an executable of its own.
 */
#ifndef CHECK_AUX_H
#define CHECK_AUX_H

#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

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

#endif /* CHECK_AUX_H */
