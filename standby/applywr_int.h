/*
 * applywr_int.h - the standby's writer thread for big files (applywr.c).
 * Only standby/ includes this.
 */
#ifndef APPLYWR_INT_H
#define APPLYWR_INT_H

#include <stddef.h>
#include <stdint.h>

typedef int apply_wr_emit_fn(void *arg, const uint8_t *p, size_t n);

struct apply_wr;

/*
 * Start a thread that calls emit(arg, p, n) on what is queued, in order.
 * arg is borrowed: the caller leaves what emit touches alone until
 * apply_wr_finish.
 */
int apply_wr_start(apply_wr_emit_fn *emit, void *arg, struct apply_wr **out);
/*
 * Queue a copy of p[0..n) (waits while the ring is full).  HS_OK, or the
 * first error of emit, after which nothing more is written.
 */
int apply_wr_put(struct apply_wr *w, const uint8_t *p, size_t n);
/*
 * Wait until everything queued is written, stop the thread and free w
 * (NULL: nothing).  HS_OK, or the first error of emit.
 */
int apply_wr_finish(struct apply_wr *w);

#endif
