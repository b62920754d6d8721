/*
 * sendahead.c - a reader thread for whole files on the primary.
 *
 * Sending a file costs a read, a SHA-256 pass (the content hash), an XXH3
 * pass (the block records) and the TLS encryption.  Done in one thread they
 * add up on one core; here a second thread reads and hashes the file while
 * the sender encrypts and writes what was read before, through a ring of
 * AHEAD_BUFS buffers of PROTO_CHUNK (bounded: 768 KiB, whatever the file's
 * size).  Each byte is read once, into the buffer it is sent from.
 *
 * The reader owns the hash and the block table until send_ahead_finish();
 * the sender owns the buffer send_ahead_next() gave it until the next call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "delta.h"
#include "send_int.h"

/* Buffers in the ring: one being sent, the others read ahead. */
#define AHEAD_BUFS 3

struct send_ahead {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a buffer was filled, or freed, or stop */
	int fd;            /* borrowed */
	uint64_t off, end;
	struct proto_hash *h; /* borrowed, the reader's until finish */
	struct blk_table *t;  /* borrowed, or NULL */
	uint8_t *mem;         /* AHEAD_BUFS * PROTO_CHUNK, owned */
	size_t len[AHEAD_BUFS];
	size_t head;  /* the oldest filled buffer */
	size_t count; /* filled buffers, the one being sent included */
	int sending;  /* the sender holds buffer `head` */
	int done;     /* the reader has stopped */
	int stop;     /* the sender asks the reader to stop */
	int changed;  /* shrank, unreadable, or grew while read */
};

/* Wait for a free buffer; its index, or -1 when asked to stop. */
static int
ahead_slot(struct send_ahead *a)
{
	int slot = -1;

	pthread_mutex_lock(&a->mu);
	while (a->count == AHEAD_BUFS && !a->stop)
		pthread_cond_wait(&a->cv, &a->mu);
	if (!a->stop)
		slot = (int)((a->head + a->count) % AHEAD_BUFS);
	pthread_mutex_unlock(&a->mu);
	return slot;
}

static void *
ahead_run(void *arg)
{
	struct send_ahead *a = arg;
	int changed = 0, slot;

	while (a->off < a->end && (slot = ahead_slot(a)) >= 0) {
		uint8_t *p = a->mem + (size_t)slot * PROTO_CHUNK;
		size_t want = a->end - a->off < PROTO_CHUNK
		                  ? (size_t)(a->end - a->off)
		                  : PROTO_CHUNK;
		ssize_t n = pread(a->fd, p, want, (off_t)a->off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			changed = 1; /* shrank, or unreadable */
			break;
		}
		proto_hash_update(a->h, p, (size_t)n);
		if (a->t != NULL && blk_table_feed(a->t, p, (size_t)n) < 0)
			changed = 1; /* grew while read */
		a->off += (uint64_t)n;
		pthread_mutex_lock(&a->mu);
		a->len[slot] = (size_t)n;
		a->count++;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
	}
	pthread_mutex_lock(&a->mu);
	a->changed = changed;
	a->done = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int
send_ahead_start(int fd, uint64_t off, uint64_t end, struct proto_hash *h,
                 struct blk_table *t, struct send_ahead **out)
{
	struct send_ahead *a = calloc(1, sizeof(*a));
	int rc;

	if (a == NULL)
		return -ENOMEM;
	if ((a->mem = malloc((size_t)AHEAD_BUFS * PROTO_CHUNK)) == NULL) {
		free(a);
		return -ENOMEM;
	}
	a->fd = fd;
	a->off = off;
	a->end = end;
	a->h = h;
	a->t = t;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if ((rc = pthread_create(&a->th, NULL, ahead_run, a)) != 0) {
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a->mem);
		free(a);
		return -rc;
	}
	*out = a;
	return HS_OK;
}

int
send_ahead_next(struct send_ahead *a, const uint8_t **p, size_t *n)
{
	int more;

	pthread_mutex_lock(&a->mu);
	if (a->sending) { /* the previous buffer is sent: free it */
		a->sending = 0;
		a->head = (a->head + 1) % AHEAD_BUFS;
		a->count--;
		pthread_cond_signal(&a->cv);
	}
	while (a->count == 0 && !a->done)
		pthread_cond_wait(&a->cv, &a->mu);
	more = a->count > 0;
	if (more) {
		a->sending = 1;
		*p = a->mem + a->head * PROTO_CHUNK;
		*n = a->len[a->head];
	}
	pthread_mutex_unlock(&a->mu);
	return more;
}

int
send_ahead_finish(struct send_ahead *a)
{
	int changed;

	if (a == NULL)
		return 0;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->th, NULL);
	/* Stopped before the end (a send failed): not what the file holds. */
	changed = a->changed || a->off < a->end;
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a->mem);
	free(a);
	return changed;
}
