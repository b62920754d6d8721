/*
 * applywr.c - a writer thread for big files on the standby.
 *
 * Receiving a file costs the TLS decryption (and OpenSSL's copy out of its
 * record buffer), the SHA-256 check and the write into the page cache.
 * Here the session thread decrypts while a second thread hashes and writes
 * what came before, through a ring of WR_BUFS buffers of PROTO_CHUNK
 * (bounded, whatever the file's size).
 *
 * The thread calls emit(arg, p, n) in order on copies of what was queued;
 * the caller touches nothing emit uses until apply_wr_finish() returns.
 * The first error stops the calls; put and finish return it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "stdby_int.h"
#include "applywr_int.h"

/* Buffers in the ring: one being written, the others queued. */
#define WR_BUFS 3

struct apply_wr {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a buffer was queued or written, or stop */
	apply_wr_emit_fn *emit;
	void *arg;
	uint8_t *mem; /* WR_BUFS * PROTO_CHUNK, owned */
	size_t len[WR_BUFS];
	size_t head;  /* the oldest queued buffer */
	size_t count; /* queued buffers, the one being written included */
	int stop;     /* no more will be queued */
	int err;      /* the first error of emit, or HS_OK */
};

static void *
wr_run(void *arg)
{
	struct apply_wr *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		uint8_t *p;
		size_t n;
		int rc;

		while (w->count == 0 && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->count == 0)
			break;
		p = w->mem + w->head * PROTO_CHUNK;
		n = w->len[w->head];
		pthread_mutex_unlock(&w->mu);
		rc = w->err == HS_OK ? w->emit(w->arg, p, n) : HS_OK;
		pthread_mutex_lock(&w->mu);
		if (rc < 0 && w->err == HS_OK)
			w->err = rc;
		w->head = (w->head + 1) % WR_BUFS;
		w->count--;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int
apply_wr_start(apply_wr_emit_fn *emit, void *arg, struct apply_wr **out)
{
	struct apply_wr *w = calloc(1, sizeof(*w));
	int rc;

	if (w == NULL)
		return -ENOMEM;
	if ((w->mem = malloc((size_t)WR_BUFS * PROTO_CHUNK)) == NULL) {
		free(w);
		return -ENOMEM;
	}
	w->emit = emit;
	w->arg = arg;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if ((rc = pthread_create(&w->th, NULL, wr_run, w)) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w->mem);
		free(w);
		return -rc;
	}
	*out = w;
	return HS_OK;
}

int
apply_wr_put(struct apply_wr *w, const uint8_t *p, size_t n)
{
	int rc;

	while (n > 0) {
		size_t k = n < PROTO_CHUNK ? n : PROTO_CHUNK, slot;

		pthread_mutex_lock(&w->mu);
		while (w->count == WR_BUFS && w->err == HS_OK)
			pthread_cond_wait(&w->cv, &w->mu);
		if ((rc = w->err) < 0) {
			pthread_mutex_unlock(&w->mu);
			return rc;
		}
		slot = (w->head + w->count) % WR_BUFS;
		pthread_mutex_unlock(&w->mu);
		/* The slot is ours: the thread reads only queued ones. */
		memcpy(w->mem + slot * PROTO_CHUNK, p, k);
		pthread_mutex_lock(&w->mu);
		w->len[slot] = k;
		w->count++;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		p += k;
		n -= k;
	}
	return HS_OK;
}

int
apply_wr_finish(struct apply_wr *w)
{
	int rc;

	if (w == NULL)
		return HS_OK;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	rc = w->err;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->mem);
	free(w);
	return rc;
}
