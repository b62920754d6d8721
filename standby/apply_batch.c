/*
 * apply_batch.c - the batch: files and symlinks written under temporary
 * names wait here, and a flush makes them durable together (data, then
 * renames, then each directory once).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply_int.h"

/* Flush a batch at this many files or bytes: bounded work per flush. */
#define BATCH_FILES 512
#define BATCH_BYTES (64ull * 1024 * 1024)

int
apply_batch_add(struct apply *a, struct pending *p, uint64_t bytes)
{
	if (a->n_pend % 64 == 0) {
		struct pending *n =
		    reallocarray(a->pend, a->n_pend + 64, sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		a->pend = n;
	}
	a->pend[a->n_pend++] = *p;
	a->pend_bytes += bytes;
	if (p->tmp[0] != '\0')
		a->pend_has_files = 1;
	if (a->n_pend >= BATCH_FILES || a->pend_bytes >= BATCH_BYTES)
		return apply_flush(a);
	return HS_OK;
}

void
apply_pending_clear(struct pending *p)
{
	free(p->key);
	p->key = NULL;
	p->rec = 0;
	free(p->lkey);
	p->lkey = NULL;
	if (p->datafd > 0)
		close(p->datafd - 1);
	p->datafd = 0;
	if (p->dirfd >= 0)
		close(p->dirfd);
	p->dirfd = -1;
	free(p->display);
	p->display = NULL;
}

/* Open a real fd on an O_PATH directory, for fsync/syncfs. */
static int
dir_real_fd(int pathfd)
{
	return openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * The flush of what apply_recs_ahead wrote, in a thread beside the flush of
 * the data (apply_flush, step 1): both must be on disk before the
 * renames, and two flushes that overlap cost little more than one.
 */
struct ahead_sync {
	pthread_t th;
	struct idx *idx;
	int started;
	int rc;
};

static void *
ahead_sync_run(void *arg)
{
	struct ahead_sync *s = arg;

	s->rc = idx_sync(s->idx);
	return NULL;
}

static void
ahead_sync_start(struct apply *a, struct ahead_sync *s)
{
	s->idx = a->idx;
	s->rc = HS_OK;
	s->started = pthread_create(&s->th, NULL, ahead_sync_run, s) == 0;
	if (!s->started)
		s->rc = idx_sync(a->idx); /* no thread: one after the other */
}

static void
ahead_sync_end(struct apply *a, struct ahead_sync *s)
{
	if (s->started)
		pthread_join(s->th, NULL);
	s->started = 0;
	/* Only a crash of the machine could now leave drift copies. */
	if (s->rc < 0)
		hs_log_warnx("apply: set %s: records of files about to be "
		             "replaced not flushed: %s",
		             a->set->name, hs_strerror(s->rc));
}

int
apply_flush(struct apply *a)
{
	struct ahead_sync ahead = {.started = 0};
	struct idx_txn *lock = NULL;
	struct stat *seen;
	size_t i, j, n_seen = 0;
	int rc = HS_OK;

	if (a->n_pend == 0) {
		apply_recs_commit(a, NULL);
		return HS_OK;
	}
	if ((seen = calloc(a->n_pend, sizeof(*seen))) == NULL)
		return -ENOMEM;
	/* 0. what the renames will put in place, its flush beside step 1 */
	if (apply_recs_ahead(a))
		ahead_sync_start(a, &ahead);
	/* 1. data: an fsync per file for a few, else a syncfs per filesystem */
	for (i = 0; a->pend_nofd == 0 && i < a->n_pend; i++)
		if (a->pend[i].datafd > 0 && fsync(a->pend[i].datafd - 1) < 0)
			rc = -errno;
	for (i = 0; a->pend_nofd > 0 && i < a->n_pend; i++) {
		struct stat st;
		int fd;

		if (fstat(a->pend[i].dirfd, &st) < 0)
			continue;
		for (j = 0; j < n_seen && seen[j].st_dev != st.st_dev; j++)
			;
		if (j < n_seen)
			continue;
		seen[n_seen++] = st;
		if ((fd = dir_real_fd(a->pend[i].dirfd)) >= 0) {
			if (syncfs(fd) < 0)
				rc = -errno;
			close(fd);
		}
	}
	ahead_sync_end(a, &ahead);
	if (rc < 0) {
		/* Data may not be on disk: keep the old versions. */
		for (i = 0; i < a->n_pend; i++) {
			apply_error(a, a->pend[i].display, "flush failed", rc);
			if (a->pend[i].tmp[0] != '\0')
				unlinkat(a->pend[i].dirfd, a->pend[i].tmp, 0);
			apply_rec_unahead(a, &a->pend[i]);
			apply_pending_clear(&a->pend[i]);
		}
		goto out;
	}
	/*
	 * 2. rename all.  From here until apply_recs_commit the index's writer
	 * lock is held: for the other lane's apply_drift_check, each file
	 * renamed into place and its record change together.
	 */
	if (a->idx != NULL && idx_txn_begin(a->idx, &lock) < 0)
		lock = NULL;
	for (i = 0; i < a->n_pend; i++) {
		struct pending *p = &a->pend[i];

		if (p->tmp[0] == '\0')
			continue; /* a delete or mkdir: only the dir fsync */
		if (HS_FAILPOINT_SYS("apply.before_rename") < 0 ||
		    renameat(p->dirfd, p->tmp, p->dirfd, p->leaf) < 0) {
			apply_error(a, p->display, "cannot rename into place",
			            -errno);
			unlinkat(p->dirfd, p->tmp, 0);
			apply_rec_unahead(a, p);
			p->rec = 0; /* the old copy and its record stay */
			free(p->lkey);
			p->lkey = NULL;
			continue;
		}
		a->applied++;
	}
	/* 3. fsync each directory once */
	n_seen = 0;
	for (i = 0; i < a->n_pend; i++) {
		struct stat st;
		int fd;

		if (fstat(a->pend[i].dirfd, &st) < 0)
			continue;
		for (j = 0; j < n_seen && (seen[j].st_dev != st.st_dev ||
		                           seen[j].st_ino != st.st_ino);
		     j++)
			;
		if (j < n_seen)
			continue;
		seen[n_seen++] = st;
		if ((fd = dir_real_fd(a->pend[i].dirfd)) >= 0) {
			if (HS_FAILPOINT_SYS("apply.after_rename") < 0 ||
			    fsync(fd) < 0)
				apply_error(a, a->pend[i].display,
				            "directory fsync failed", -errno);
			close(fd);
		}
	}
	for (i = 0; i < a->n_pend; i++) {
		apply_rec_pending(a, &a->pend[i]);
		apply_pending_clear(&a->pend[i]);
	}
out:
	apply_recs_commit(a, lock);
	a->n_pend = 0;
	a->pend_bytes = 0;
	a->pend_has_files = 0;
	a->pend_fds = 0;
	a->pend_nofd = 0;
	free(seen);
	return HS_OK;
}
