/*
 * xcache.c - the extended-attribute digests of the last whole-set walk
 * (see tree.h for why and when they are trusted).
 *
 * File: an 8-byte magic, a u64 count, the XXH3-64 of the records, then
 * `count` fixed records sorted by (ino, check), native byte order (a
 * local file of this node).  A file whose size or sum does not match is
 * ignored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "hs.h"
#include "tree.h"

#define XC_MAGIC "HSXCACH3"

/*
 * 32 bytes an entry: on the 100,000-file tree the cache a walk loads and
 * the one it builds add ~6 MiB to the process, which must stay under
 * 64 MiB.  `check` is a 64-bit digest of the rest of the entry's identity
 * (device, ctime, mtime, size): a collision costs a stale digest with a
 * chance of 2^-64, against a read of every attribute otherwise.
 */
struct xc_rec {
	uint64_t ino;
	uint64_t check;
	uint8_t xhash[PROTO_XHASH_LEN];
};

struct xc_head {
	char magic[8];
	uint64_t n;
	uint64_t sum; /* XXH3-64 of the records: a torn or damaged file */
};

struct xcache {
	char *path; /* state_dir/xattr-cache/<set> */
	char *dir;
	struct xc_rec *old; /* loaded, sorted */
	size_t n_old;
	uint8_t *used; /* per old record: met by this walk */
	size_t n_used;
	struct xc_rec *seen; /* this walk's */
	size_t n_seen;
	size_t cap_seen;
	size_t n_read;    /* entries whose attributes the walk read */
	int64_t racy_sec; /* ctimes from here on are not kept */
	int full;         /* XCACHE_MAX reached or no memory: keep the old */
};

static int
rec_cmp(const void *a, const void *b)
{
	const struct xc_rec *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->check != y->check)
		return x->check < y->check ? -1 : 1;
	return 0;
}

static void
rec_from_stat(struct xc_rec *r, const struct stat *st)
{
	struct {
		uint64_t dev;
		int64_t ctime_sec;
		int64_t mtime_sec;
		uint64_t size;
		uint32_t ctime_nsec;
		uint32_t mtime_nsec;
	} id;

	memset(&id, 0, sizeof(id));
	id.dev = (uint64_t)st->st_dev;
	id.ctime_sec = st->st_ctim.tv_sec;
	id.ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	id.mtime_sec = st->st_mtim.tv_sec;
	id.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	id.size = (uint64_t)st->st_size;
	memset(r, 0, sizeof(*r));
	r->ino = (uint64_t)st->st_ino;
	r->check = XXH3_64bits(&id, sizeof(id));
}

/* Read the file at c->path into c->old; anything amiss leaves it empty. */
static void
load(struct xcache *c)
{
	struct xc_head h;
	struct stat st;
	size_t bytes;
	ssize_t got;
	int fd;

	if ((fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    read(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, XC_MAGIC, sizeof(h.magic)) != 0 ||
	    h.n > XCACHE_MAX ||
	    (uint64_t)st.st_size != sizeof(h) + h.n * sizeof(struct xc_rec) ||
	    h.n == 0)
		goto out;
	bytes = (size_t)h.n * sizeof(struct xc_rec);
	if ((c->old = malloc(bytes)) == NULL)
		goto out;
	got = read(fd, c->old, bytes);
	if (got != (ssize_t)bytes || XXH3_64bits(c->old, bytes) != h.sum) {
		free(c->old);
		c->old = NULL;
		goto out;
	}
	c->n_old = (size_t)h.n;
	c->used = calloc(c->n_old, 1); /* NULL: the sort tells */
out:
	close(fd);
}

struct xcache *
xcache_open(const char *state_dir, const char *set)
{
	struct xcache *c = calloc(1, sizeof(*c));
	struct timespec now;
	size_t n;

	if (c == NULL)
		return NULL;
	n = strlen(state_dir) + sizeof(XCACHE_DIR) + 1;
	c->dir = malloc(n);
	c->path = malloc(n + strlen(set) + 1);
	if (c->dir == NULL || c->path == NULL) {
		xcache_close(c, 0);
		return NULL;
	}
	snprintf(c->dir, n, "%s/%s", state_dir, XCACHE_DIR);
	snprintf(c->path, n + strlen(set) + 1, "%s/%s", c->dir, set);
	clock_gettime(CLOCK_REALTIME, &now);
	c->racy_sec = now.tv_sec - (int64_t)(XCACHE_RACY_NS / 1000000000ull);
	load(c);
	return c;
}

/* Keep r in this walk's records (the cache it will write). */
static void
seen_add(struct xcache *c, const struct xc_rec *r)
{
	struct xc_rec *v;

	if (c->full)
		return;
	if (c->n_seen == c->cap_seen) {
		size_t cap = c->cap_seen ? c->cap_seen * 2 : 1024;

		if (c->n_seen >= XCACHE_MAX ||
		    (v = reallocarray(c->seen, cap, sizeof(*v))) == NULL) {
			c->full = 1;
			return;
		}
		c->seen = v;
		c->cap_seen = cap;
	}
	c->seen[c->n_seen++] = *r;
}

int
xcache_get(struct xcache *c, const struct stat *st,
           uint8_t xhash[PROTO_XHASH_LEN])
{
	struct xc_rec key, *r;

	if (c == NULL || c->n_old == 0)
		return 0;
	rec_from_stat(&key, st);
	if ((r = bsearch(&key, c->old, c->n_old, sizeof(*r), rec_cmp)) == NULL)
		return 0;
	memcpy(xhash, r->xhash, PROTO_XHASH_LEN);
	if (c->used != NULL && !c->used[r - c->old]) {
		c->used[r - c->old] = 1;
		c->n_used++;
	}
	/* Older than the racy window when kept, so older still now. */
	seen_add(c, r);
	return 1;
}

void
xcache_put(struct xcache *c, const struct stat *st,
           const uint8_t xhash[PROTO_XHASH_LEN])
{
	struct xc_rec r;

	if (c == NULL)
		return;
	c->n_read++;
	if (st->st_ctim.tv_sec >= c->racy_sec)
		return; /* read again next time: see XCACHE_RACY_NS */
	rec_from_stat(&r, st);
	memcpy(r.xhash, xhash, PROTO_XHASH_LEN);
	seen_add(c, &r);
}

/* Sort and drop repeats (hard links: one inode, several paths). */
static void
seen_sort(struct xcache *c)
{
	size_t i, k = 0;

	qsort(c->seen, c->n_seen, sizeof(*c->seen), rec_cmp);
	for (i = 0; i < c->n_seen; i++)
		if (k == 0 || rec_cmp(&c->seen[k - 1], &c->seen[i]) != 0)
			c->seen[k++] = c->seen[i];
	c->n_seen = k;
}

static void
save(struct xcache *c)
{
	struct xc_head h;
	struct iovec iov[2];
	char tmp[4400];

	if (mkdir(c->dir, 0700) < 0 && errno != EEXIST)
		return;
	/*
	 * One temporary name per set: one left by a crash is overwritten
	 * next time.  Two writers at once (not expected: one daemon or one
	 * sync per node) could tear it; the sum then rejects it.
	 */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", c->path) >= (int)sizeof(tmp))
		return;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, XC_MAGIC, sizeof(h.magic));
	h.n = c->n_seen;
	h.sum = XXH3_64bits(c->seen, c->n_seen * sizeof(*c->seen));
	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	iov[1].iov_base = c->seen;
	iov[1].iov_len = c->n_seen * sizeof(*c->seen);
	if (hs_replace_file(c->path, tmp, 0600, iov, 2) < 0)
		hs_log_debug("xcache: %s not written", c->path);
}

void
xcache_close(struct xcache *c, int complete)
{
	if (c == NULL)
		return;
	hs_log_debug("xcache: %s: %zu entries kept, %zu had their attributes "
	             "read",
	             c->path, c->n_seen, c->n_read);
	/*
	 * Nothing read and every kept record met: this walk's records are
	 * the kept ones (each a hit), with no need to sort them to see it.
	 */
	if (complete && !c->full && c->seen != NULL &&
	    !(c->n_read == 0 && c->used != NULL && c->n_used == c->n_old)) {
		seen_sort(c);
		/* Unchanged (nothing read, the same entries): no write. */
		if (c->n_read > 0 || c->n_seen != c->n_old ||
		    memcmp(c->seen, c->old, c->n_seen * sizeof(*c->seen)) != 0)
			save(c);
	}
	free(c->old);
	free(c->used);
	free(c->seen);
	free(c->dir);
	free(c->path);
	free(c);
}
