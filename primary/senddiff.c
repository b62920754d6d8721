/*
 * senddiff.c - the restart without a listing: what differs between our
 * tree and our index, stat only (send_session_diff), and the same for
 * every set at start in one walk per source that also sets the
 * watcher's watches, on a thread of its own (send_prescan_*).  The
 * standby is not asked: sendidx.c's journal and records say what it
 * holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "send_int.h"

/* ------------------------------------------------ restart: stat diff */

/* One of our entries, by the digest of its path (the index's order). */
struct dig_entry {
	uint8_t dig[IDX_DIGEST_LEN];
	struct scan_entry *e;
};

struct diff {
	struct sender *s;
	uint16_t src;
	struct dig_entry *mine; /* this source's entries, sorted by digest */
	size_t n_mine;
	size_t at; /* merge position */
	struct proto_scope *v;
	size_t n;
	size_t cap;
	uint64_t records;
};

static int
diff_add1(struct diff *d, uint16_t src, const char *path)
{
	if (d->n == PROTO_SCOPE_MAX)
		return HS_ELIMIT;
	return proto_scope_push(&d->v, &d->n, &d->cap, src, path, 0);
}

/*
 * A path that differs, and its directory: writing on the standby changes
 * that directory's times, which the run then puts back.
 */
static int
diff_add(struct diff *d, uint16_t src, const char *path)
{
	char parent[PROTO_PATH_MAX + 1];
	const char *slash;
	int rc;

	if ((rc = diff_add1(d, src, path)) < 0 || path[0] == '\0')
		return rc;
	slash = strrchr(path, '/');
	snprintf(parent, sizeof(parent), "%.*s",
	         (int)(slash ? slash - path : 0), path);
	return diff_add1(d, src, parent);
}

/*
 * One record, in digest order, merged with our entries in the same
 * order: what we have and it does not is new, what it has and we do not
 * is gone, and where both are the fingerprints must match.
 */
static int
diff_record(void *arg, const uint8_t dig[IDX_DIGEST_LEN], const char *path,
            const struct idx_file *f)
{
	struct diff *d = arg;
	struct idx_file now;
	int c = 1, rc;

	if (f->type != PROTO_E_DIR)
		d->records++;
	while (d->at < d->n_mine &&
	       (c = memcmp(d->mine[d->at].dig, dig, IDX_DIGEST_LEN)) < 0)
		if ((rc = diff_add(d, d->src, d->mine[d->at++].e->path)) < 0)
			return rc;
	if (d->at == d->n_mine || c > 0 ||
	    strcmp(d->mine[d->at].e->path, path) != 0)
		return diff_add(d, d->src, path);
	sidx_fingerprint(d->mine[d->at++].e, &now);
	return sidx_same_rec(&now, f) ? 0 : diff_add(d, d->src, path);
}

static int
dig_cmp(const void *a, const void *b)
{
	return memcmp(((const struct dig_entry *)a)->dig,
	              ((const struct dig_entry *)b)->dig, IDX_DIGEST_LEN);
}

/* Source src's entries with their digests, sorted. */
static int
diff_source(struct diff *d, uint16_t src)
{
	struct scan_list *l = &d->s->mine;
	size_t i;

	d->src = src;
	d->n_mine = d->at = 0;
	for (i = 0; i < l->n; i++)
		if (l->v[i].src == src) {
			struct dig_entry *de = &d->mine[d->n_mine++];

			idx_path_digest(l->v[i].path, de->dig);
			de->e = &l->v[i];
		}
	qsort(d->mine, d->n_mine, sizeof(*d->mine), dig_cmp);
	return HS_OK;
}

int
send_session_diff(struct sender *s, const struct hs_pathset *set,
                  struct proto_scope **scope, size_t *n, uint64_t *records)
{
	struct diff d;
	size_t i;
	int rc;

	memset(&d, 0, sizeof(d));
	d.s = s;
	*scope = NULL;
	*n = 0;
	*records = 0;
	if (s->idx == NULL)
		return HS_ENOTFOUND;
	s->set = set;
	if ((rc = sidx_set_keys(s)) < 0 || (rc = send_list_stat(s, set)) < 0)
		goto out;
	if ((d.mine = calloc(s->mine.n + 1, sizeof(*d.mine))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < set->sources.n && rc == HS_OK; i++) {
		if (s->missing[i] || s->anchor[i] < 0)
			continue; /* its records stay: the run leaves it alone
			           */
		diff_source(&d, (uint16_t)i);
		rc = idx_files_walk(s->idx, s->skey[i], diff_record, &d);
		/* What is here with no record was made while we were away. */
		while (rc == HS_OK && d.at < d.n_mine)
			rc = diff_add(&d, d.src, d.mine[d.at++].e->path);
	}
out:
	free(d.mine);
	send_reset_set(s);
	if (rc < 0) {
		proto_scope_free(d.v, d.n);
		return rc;
	}
	proto_scope_normalize(d.v, &d.n);
	*scope = d.v;
	*n = d.n;
	*records = d.records;
	return HS_OK;
}

/* ------------------------------- restart: one pass, watches included */

/*
 * At start the primary walks each source once, on SCAN_WORKERS threads:
 * every directory gets its inotify watch before it is listed, and every
 * entry's stat is compared right away with its record, looked up by path
 * in a table of the source's records (loaded meanwhile).  What differs
 * is kept for the first session (send_prescan_take), when the standby
 * shows our index stands for its tree; a change after an entry's stat is
 * seen by the watch on its directory, so nothing falls between.  This
 * replaces a watcher's walk and a later stat walk (two listings of every
 * directory), the list of every entry, its sort and the merge.
 */

/*
 * The source's records stay where LMDB keeps them (an index view, open
 * while the walk runs: no copy of 100,000 paths), found through an
 * open-addressing table whose slots hold the path's hash and length
 * beside the record's address, so a probe that misses touches no record
 * (the records lie in LMDB's order, which is no order of the walk: each
 * one touched is a cache and TLB miss).  The table is filled in one pass
 * over the records before a walker reads it.  `seen` is written by the
 * one thread that meets the path.
 */
/* A source's records at most (an index is bounded by its map, 4 GiB). */
#define PRE_RECS_MAX (64u * 1024 * 1024)

struct pre_slot {
	uint64_t hash;
	const unsigned char *rec; /* NULL: empty; laid out as idx_view_fn's */
	uint32_t len;
	uint8_t seen;
};

/*
 * An entry on its way through a walker's compare pipeline: its slot is
 * fetched while the walker stats the next entry, its record while it
 * stats the one after, so the two cache misses of a lookup overlap the
 * kernel's work instead of following it.
 */
struct pre_pend {
	int used;
	int probed;
	uint64_t hash;
	size_t len;
	struct pre_slot *cand; /* the first slot with the same hash */
	struct idx_file now;
	char path[PROTO_PATH_MAX + 1];
};

/* Each walker writes its own on every entry: not on a shared line. */
struct pre_pipe {
	_Alignas(64) unsigned newest; /* index into p */
	struct pre_pend p[2];
};

struct pre_src {
	struct idx_view *view; /* the records, until pre_src_free */
	struct pre_slot *recs; /* while loading: the records as listed */
	size_t n_recs;
	size_t cap_recs;
	struct pre_slot *slot; /* then the table */
	size_t mask;
	uint64_t records; /* non-directory records */
	struct watch *w;
	uint16_t set;
	uint16_t src;
	int has_root;                /* the source itself was met: it exists */
	struct diff d[SCAN_WORKERS]; /* what differs, per thread */
	/*
	 * The records load on a thread of their own while the walk starts:
	 * until `ready` (release: the table is complete), each walker
	 * keeps what it meets in its `early` list, which it compares as
	 * soon as the table is there (what is left, after the walk).
	 */
	struct idx *x;
	const struct hs_pathset *pset;
	uint8_t skey[8]; /* the loader's */
	int ready;
	int load_rc;
	struct scan_list early[SCAN_WORKERS];
	size_t early_at[SCAN_WORKERS]; /* how many went through the pipe */
	struct pre_pipe pipe[SCAN_WORKERS];
};

struct pre_set {
	int rc; /* HS_OK, the walk's error, or HS_ENOTFOUND: taken */
	struct proto_scope *v;
	size_t n;
	uint64_t records;
};

struct send_prescan {
	struct pre_set *sets;
	size_t n_sets;
	const struct hs_conf *conf;
	struct idx *x;
	struct watch *w;
	pthread_t tid;
	int running; /* tid walks: join before anything else */
};

static uint64_t
pre_hash(const char *path, size_t len)
{
	return XXH3_64bits(path, len);
}

static const char *
pre_path(const struct pre_slot *r)
{
	return (const char *)r->rec + IDX_VIEW_REC;
}

/* One record of the source into the list the table is made of. */
static int
pre_load(void *arg, const unsigned char *rec, size_t len)
{
	struct pre_src *ps = arg;
	struct pre_slot *r;

	if (ps->n_recs == ps->cap_recs) {
		size_t cap = ps->cap_recs ? 2 * ps->cap_recs : 4096;

		if (cap > PRE_RECS_MAX)
			return HS_ELIMIT;
		if ((r = reallocarray(ps->recs, cap, sizeof(*r))) == NULL)
			return -ENOMEM;
		ps->recs = r;
		ps->cap_recs = cap;
	}
	r = &ps->recs[ps->n_recs++];
	r->hash = pre_hash((const char *)rec + IDX_VIEW_REC, len);
	r->rec = rec;
	r->len = (uint32_t)len; /* <= IDX_PATH_MAX */
	r->seen = 0;
	if (rec[offsetof(struct idx_file, type)] != PROTO_E_DIR)
		ps->records++;
	return 0;
}

/* The table, twice the records in size, from the list of them. */
static int
pre_table(struct pre_src *ps)
{
	size_t cap = 16, i, k;

	while (cap < 2 * ps->n_recs)
		cap *= 2;
	/*
	 * Not calloc: the probes would read fresh pages first, mapping the
	 * zero page, and each first write would then replace it and flush
	 * the TLB of every core running a walker.
	 */
	if ((ps->slot = malloc(cap * sizeof(*ps->slot))) == NULL)
		return -ENOMEM;
	memset(ps->slot, 0, cap * sizeof(*ps->slot));
	ps->mask = cap - 1;
	for (i = 0; i < ps->n_recs; i++) {
		for (k = ps->recs[i].hash & ps->mask; ps->slot[k].rec != NULL;
		     k = (k + 1) & ps->mask)
			;
		ps->slot[k] = ps->recs[i];
	}
	free(ps->recs);
	ps->recs = NULL;
	return HS_OK;
}

static struct pre_slot *
pre_find(const struct pre_src *ps, const char *path, size_t len, uint64_t h)
{
	size_t k;

	for (k = h & ps->mask; ps->slot[k].rec != NULL;
	     k = (k + 1) & ps->mask) {
		struct pre_slot *r = &ps->slot[k];

		if (r->hash == h && r->len == len &&
		    memcmp(pre_path(r), path, len) == 0)
			return r;
	}
	return NULL;
}

static int
pre_dir(void *arg, unsigned worker, const char *rel)
{
	struct pre_src *ps = arg;

	(void)worker;
	return watch_dir_add(ps->w, ps->set, ps->src, rel);
}

/* Stage 2: find the entry's candidate slot, and fetch its record. */
static void
pre_probe(const struct pre_src *ps, struct pre_pend *q)
{
	size_t k;

	q->probed = 1;
	q->cand = NULL;
	for (k = q->hash & ps->mask; ps->slot[k].rec != NULL;
	     k = (k + 1) & ps->mask)
		if (ps->slot[k].hash == q->hash) {
			q->cand = &ps->slot[k];
			__builtin_prefetch(q->cand->rec);
			__builtin_prefetch(q->cand->rec + 64);
			return;
		}
}

/* Stage 3: compare the entry with its record (as diff_record does). */
static int
pre_finish(struct pre_src *ps, unsigned worker, struct pre_pend *q)
{
	struct pre_slot *r;

	if (!q->probed)
		pre_probe(ps, q);
	q->used = 0;
	r = q->cand;
	/* Another path with the same hash: the slow way. */
	if (r != NULL &&
	    (r->len != q->len || memcmp(pre_path(r), q->path, q->len) != 0))
		r = pre_find(ps, q->path, q->len, q->hash);
	if (r == NULL)
		return diff_add(&ps->d[worker], ps->src, q->path);
	r->seen = 1;
	/* sidx_same_rec, on the record's bytes where LMDB has them */
	return memcmp(&q->now, r->rec, IDX_VIEW_REC) == 0
	           ? 0
	           : diff_add(&ps->d[worker], ps->src, q->path);
}

/* Stage 1: take the entry in, fetch its slot, move the others on. */
static int
pre_push(struct pre_src *ps, unsigned worker, const struct scan_entry *e)
{
	struct pre_pipe *pp = &ps->pipe[worker];
	struct pre_pend *older = &pp->p[pp->newest ^ 1];
	struct pre_pend *newer = &pp->p[pp->newest];
	int rc = HS_OK;

	if (older->used)
		rc = pre_finish(ps, worker, older);
	if (newer->used)
		pre_probe(ps, newer);
	older->len = strlen(e->path); /* <= PROTO_PATH_MAX */
	older->hash = pre_hash(e->path, older->len);
	memcpy(older->path, e->path, older->len + 1);
	sidx_fingerprint(e, &older->now);
	older->used = 1;
	older->probed = 0;
	__builtin_prefetch(&ps->slot[older->hash & ps->mask]);
	pp->newest ^= 1;
	return rc;
}

/* The walk ended: what is still in the pipelines. */
static int
pre_drain(struct pre_src *ps)
{
	unsigned w, k;
	int rc = HS_OK;

	for (w = 0; w < SCAN_WORKERS; w++)
		for (k = 0; k < 2; k++) {
			struct pre_pend *q =
			    &ps->pipe[w].p[ps->pipe[w].newest ^ 1 ^ k];

			if (q->used && rc == HS_OK)
				rc = pre_finish(ps, w, q);
			q->used = 0;
		}
	return rc;
}

static int
pre_entry(void *arg, unsigned worker, const struct scan_entry *e)
{
	struct pre_src *ps = arg;

	if (e->path[0] == '\0')
		ps->has_root = 1;
	if (!__atomic_load_n(&ps->ready, __ATOMIC_ACQUIRE))
		return scan_entry_add(&ps->early[worker], e);
	/* The records came: what this walker met before them, first. */
	while (ps->early_at[worker] < ps->early[worker].n) {
		size_t i = ps->early_at[worker]++;
		int rc = pre_push(ps, worker, &ps->early[worker].v[i]);

		if (rc < 0)
			return rc;
	}
	return pre_push(ps, worker, e);
}

/* The loading thread: the table of the source's records. */
static void *
pre_load_run(void *arg)
{
	struct pre_src *ps = arg;
	int rc;

	/*
	 * Here, not before the walk: the key's SHA-256 is the process's
	 * first use of libcrypto, which waits for OpenSSL's initialisation
	 * (its configuration file read while the session's TLS context is
	 * made on the main thread): ~2.5 ms the walk need not wait.
	 */
	idx_source_key(ps->pset->name, ps->pset->sources.v[ps->src], ps->skey);
	if ((rc = idx_view_open(ps->x, &ps->view)) == HS_OK &&
	    (rc = idx_view_walk(ps->view, ps->skey, pre_load, ps)) == HS_OK)
		rc = pre_table(ps);
	ps->load_rc = rc;
	if (rc == HS_OK)
		__atomic_store_n(&ps->ready, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * What a walker met before the records were there and did not compare
 * itself (it met nothing after them): through the first walker's
 * pipeline (the walk is over), drained after.
 */
static int
pre_compare_early(struct pre_src *ps)
{
	size_t k, i;
	int rc = HS_OK;

	for (k = 0; k < SCAN_WORKERS; k++)
		for (i = ps->early_at[k]; i < ps->early[k].n && rc == HS_OK;
		     i++)
			rc = pre_push(ps, 0, &ps->early[k].v[i]);
	return rc;
}

static void
pre_src_free(struct pre_src *ps)
{
	size_t i;

	free(ps->recs);
	free(ps->slot);
	idx_view_close(ps->view);
	for (i = 0; i < SCAN_WORKERS; i++) {
		proto_scope_free(ps->d[i].v, ps->d[i].n);
		scan_list_free(&ps->early[i]);
	}
}

/* Append `from`'s paths to `to` (they change owner). */
static int
pre_move(struct diff *to, struct diff *from)
{
	struct proto_scope *nv;

	if (from->n == 0)
		return HS_OK;
	if (to->n + from->n > PROTO_SCOPE_MAX)
		return HS_ELIMIT;
	if ((nv = reallocarray(to->v, to->n + from->n, sizeof(*nv))) == NULL)
		return -ENOMEM;
	memcpy(nv + to->n, from->v, from->n * sizeof(*nv));
	to->v = nv;
	to->n += from->n;
	to->cap = to->n;
	free(from->v);
	from->v = NULL;
	from->n = from->cap = 0;
	return HS_OK;
}

/* Split a source's path into an O_PATH anchor and a leaf, as the sender
 * opens it (a directory source by its real path). */
static int
pre_anchor(const char *path, char *leaf, size_t leaflen)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (slash == NULL ||
	    snprintf(leaf, leaflen, "%s", slash + 1) >= (int)leaflen)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%.*s",
	         (int)(slash - path > 0 ? slash - path : 1), path);
	return open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* What was recorded and was not met is gone. */
static int
pre_gone(struct pre_src *ps)
{
	char path[IDX_PATH_MAX + 1];
	size_t k;
	int rc;

	for (k = 0; k <= ps->mask; k++) {
		const struct pre_slot *r = &ps->slot[k];

		if (r->rec == NULL || r->seen)
			continue;
		memcpy(path, pre_path(r), r->len);
		path[r->len] = '\0';
		if ((rc = diff_add(&ps->d[0], ps->src, path)) < 0)
			return rc;
	}
	return HS_OK;
}

/* Walk source src of set `set` into ps, its records loaded meanwhile. */
static int
pre_source(struct pre_src *ps, struct idx *x, const struct hs_pathset *set)
{
	const char *root = watch_root(ps->w, ps->set, ps->src);
	struct scan_visit v = {root ? pre_dir : NULL, pre_entry, ps};
	char leaf[NAME_MAX + 1];
	pthread_t loader;
	int rc = HS_OK, fd, loading;

	ps->x = x;
	ps->pset = set;
	/* No thread to be had: the records first, then the walk. */
	loading = pthread_create(&loader, NULL, pre_load_run, ps) == 0;
	if (!loading)
		pre_load_run(ps);
	fd =
	    pre_anchor(root ? root : set->local.v[ps->src], leaf, sizeof(leaf));
	if (fd >= 0) {
		rc = scan_tree_visit(fd, leaf, ps->src, set, &v);
		close(fd);
	}
	if (loading)
		pthread_join(loader, NULL);
	if (rc == HS_OK)
		rc = ps->load_rc;
	/* Missing (fd < 0, or no entry): its records stay, as in a run. */
	if (rc == HS_OK && ps->has_root)
		rc = pre_compare_early(ps);
	if (rc == HS_OK && ps->has_root)
		rc = pre_drain(ps);
	if (rc < 0 || !ps->has_root)
		return rc;
	return pre_gone(ps);
}

static int
pre_set(struct send_prescan *p, size_t i, const struct hs_conf *conf,
        struct idx *x, struct watch *w)
{
	const struct hs_pathset *set = &conf->sets[i];
	struct pre_set *out = &p->sets[i];
	struct diff all;
	size_t j, k;
	int rc = HS_OK;

	memset(&all, 0, sizeof(all));
	for (j = 0; j < set->sources.n && rc == HS_OK; j++) {
		struct pre_src ps;

		memset(&ps, 0, sizeof(ps));
		ps.w = w;
		ps.set = (uint16_t)i;
		ps.src = (uint16_t)j;
		rc = pre_source(&ps, x, set);
		watch_deferred_done(w, ps.set, ps.src, rc == HS_OK);
		/* A source that is not there keeps its records, as in a run. */
		if (rc == HS_OK && ps.has_root) {
			out->records += ps.records;
			for (k = 0; k < SCAN_WORKERS && rc == HS_OK; k++)
				rc = pre_move(&all, &ps.d[k]);
		}
		pre_src_free(&ps);
	}
	out->rc = rc;
	if (rc < 0) {
		proto_scope_free(all.v, all.n);
		return rc;
	}
	proto_scope_normalize(all.v, &all.n);
	out->v = all.v;
	out->n = all.n;
	return HS_OK;
}

static void *
pre_run(void *arg)
{
	struct send_prescan *p = arg;
	size_t i;

	/* A set whose walk failed has its rc; prim_diff says why. */
	for (i = 0; i < p->n_sets; i++)
		(void)pre_set(p, i, p->conf, p->x, p->w);
	return NULL;
}

int
send_prescan_start(const struct hs_conf *conf, struct idx *x, struct watch *w,
                   struct send_prescan **out)
{
	struct send_prescan *p;

	*out = NULL;
	if (x == NULL)
		return HS_ENOTFOUND;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->sets = calloc(conf->n_sets ? conf->n_sets : 1,
	                      sizeof(*p->sets))) == NULL) {
		free(p);
		return -ENOMEM;
	}
	p->n_sets = conf->n_sets;
	p->conf = conf;
	p->x = x;
	p->w = w;
	/* No thread to be had: walk now. */
	if (pthread_create(&p->tid, NULL, pre_run, p) == 0)
		p->running = 1;
	else
		pre_run(p);
	*out = p;
	return HS_OK;
}

void
send_prescan_wait(struct send_prescan *p)
{
	if (p == NULL || !p->running)
		return;
	pthread_join(p->tid, NULL);
	p->running = 0;
}

int
send_prescan_take(struct send_prescan *p, size_t set,
                  struct proto_scope **scope, size_t *n, uint64_t *records)
{
	struct pre_set *ps;
	int rc;

	*scope = NULL;
	*n = 0;
	*records = 0;
	send_prescan_wait(p);
	if (p == NULL || set >= p->n_sets || p->sets[set].rc == HS_ENOTFOUND)
		return HS_ENOTFOUND;
	ps = &p->sets[set];
	rc = ps->rc;
	*scope = ps->v;
	*n = ps->n;
	*records = ps->records;
	ps->v = NULL;
	ps->n = 0;
	ps->rc = HS_ENOTFOUND;
	return rc;
}

void
send_prescan_drop(struct send_prescan *p, size_t set)
{
	struct proto_scope *v;
	size_t n;
	uint64_t records;

	send_prescan_take(p, set, &v, &n, &records);
	proto_scope_free(v, n);
}

void
send_prescan_free(struct send_prescan *p)
{
	size_t i;

	if (p == NULL)
		return;
	send_prescan_wait(p);
	for (i = 0; i < p->n_sets; i++)
		proto_scope_free(p->sets[i].v, p->sets[i].n);
	free(p->sets);
	free(p);
}
