/*
 * fuzz.h - what the libFuzzer targets of tests/fuzz share: the entry
 * point's prototype and the checks every target makes on what a decoder
 * accepted.  A decoder may refuse anything; what it accepts must hold.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise of a decoder: a finding, reported like a crash. */
#define FZ_CHECK(cond)                                                         \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
			        __LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

/*
 * A borrowed range p[0..n) a decoder returned must lie inside the body
 * it was given; reading it makes ASan see any byte that does not.
 */
static inline void
fz_inside(const uint8_t *body, size_t len, const void *p, size_t n)
{
	const uint8_t *q = p;
	volatile uint8_t sink = 0;
	size_t i;

	if (n == 0)
		return;
	FZ_CHECK(q >= body && n <= len && (size_t)(q - body) <= len - n);
	for (i = 0; i < n; i++)
		sink ^= q[i];
	(void)sink;
}

/* A NUL-terminated string of at most max bytes (strnlen stops there). */
static inline void
fz_str(const char *s, size_t max)
{
	FZ_CHECK(strnlen(s, max + 1) <= max);
}

/*
 * The basis of fuzz_delta and its seeds: `len` fixed pseudo-random bytes
 * (xorshift32), and the new file encoded against it: the same bytes with
 * the first 4 KiB inverted.
 */
static inline void
fz_basis(uint8_t *basis, uint8_t *newfile, size_t len)
{
	uint32_t x = 2463534242u;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		basis[i] = (uint8_t)x;
		newfile[i] = i < 4096 ? (uint8_t)~x : (uint8_t)x;
	}
}

#endif /* FUZZ_H */
