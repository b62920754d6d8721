/*
 * scan.c - list a source's tree from a directory fd, following no symlink.
 * Both nodes list with this code: the primary its sources, the standby
 * its copies of them beneath target_root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "tree.h"

int
scan_excluded(const struct hs_pathset *set, const char *rel)
{
	return set->excludes.n != 0 && hs_set_excludes(set, rel);
}

int
scan_entry_add(struct scan_list *l, const struct scan_entry *e)
{
	struct scan_entry *n;

	if (l->ix != NULL) { /* out of date */
		free(l->ix);
		l->ix = NULL;
	}
	if (l->n >= SCAN_ENTRIES_MAX)
		return HS_ELIMIT;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 1024;

		n = reallocarray(l->v, ncap, sizeof(*n));
		if (n == NULL)
			return -ENOMEM;
		l->v = n;
		l->cap = ncap;
	}
	n = &l->v[l->n];
	*n = *e;
	n->path = strdup(e->path);
	n->link = e->link ? strdup(e->link) : NULL;
	if (n->path == NULL || (e->link != NULL && n->link == NULL)) {
		free(n->path);
		free(n->link);
		return -ENOMEM;
	}
	l->n++;
	return HS_OK;
}

void
scan_list_free(struct scan_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].link);
	}
	free(l->v);
	free(l->ix);
	memset(l, 0, sizeof(*l));
}

/* A slot of scan_list_index's open-addressing table. */
struct scan_ix {
	uint32_t pos;  /* 1 + the entry's position, 0: empty */
	uint32_t hash; /* the hash's high half: most misses skip strcmp */
};

/*
 * A seed of this process's, so a hostile peer cannot choose paths that
 * all land in one probe chain (each lookup would then read the list).
 */
static uint64_t ix_seed;
static pthread_once_t ix_seed_once = PTHREAD_ONCE_INIT;

static void
ix_seed_init(void)
{
	if (getrandom(&ix_seed, sizeof(ix_seed), 0) != sizeof(ix_seed))
		ix_seed = (uint64_t)hs_now_mono_ns() ^ (uint64_t)getpid();
}

static uint64_t
entry_hash(uint16_t src, const char *path)
{
	return XXH3_64bits_withSeed(path, strlen(path), ix_seed ^ src);
}

int
scan_list_index(struct scan_list *l, const struct scan_entry **dup)
{
	size_t cap = 16, i, k;

	*dup = NULL;
	pthread_once(&ix_seed_once, ix_seed_init);
	free(l->ix);
	while (cap < 2 * l->n)
		cap *= 2;
	if ((l->ix = calloc(cap, sizeof(*l->ix))) == NULL)
		return -ENOMEM;
	l->ix_mask = cap - 1;
	for (i = 0; i < l->n; i++) {
		const struct scan_entry *e = &l->v[i];
		uint64_t h = entry_hash(e->src, e->path);

		for (k = h & l->ix_mask; l->ix[k].pos != 0;
		     k = (k + 1) & l->ix_mask) {
			const struct scan_entry *o = &l->v[l->ix[k].pos - 1];

			if (l->ix[k].hash == (uint32_t)(h >> 32) &&
			    o->src == e->src && strcmp(o->path, e->path) == 0) {
				*dup = e;
				free(l->ix);
				l->ix = NULL;
				return HS_EPROTO;
			}
		}
		l->ix[k].pos = (uint32_t)(i + 1); /* n <= SCAN_ENTRIES_MAX */
		l->ix[k].hash = (uint32_t)(h >> 32);
	}
	return HS_OK;
}

static struct scan_entry *
index_find(struct scan_list *l, uint16_t src, const char *path)
{
	uint64_t h = entry_hash(src, path);
	size_t k;

	for (k = h & l->ix_mask; l->ix[k].pos != 0; k = (k + 1) & l->ix_mask) {
		struct scan_entry *e = &l->v[l->ix[k].pos - 1];

		if (l->ix[k].hash == (uint32_t)(h >> 32) && e->src == src &&
		    strcmp(e->path, path) == 0)
			return e;
	}
	return NULL;
}

struct scan_entry *
scan_list_find(struct scan_list *l, uint16_t src, const char *path)
{
	size_t i;

	if (l->ix != NULL)
		return index_find(l, src, path);
	for (i = 0; i < l->n; i++)
		if (l->v[i].src == src && strcmp(l->v[i].path, path) == 0)
			return &l->v[i];
	return NULL;
}

void
scan_to_proto(const struct scan_entry *s, struct proto_entry *e)
{
	e->src = s->src;
	e->type = s->type;
	e->mode = s->mode;
	e->uid = s->uid;
	e->gid = s->gid;
	e->size = s->type == PROTO_E_FILE ? s->size : 0;
	e->mtime_sec = s->mtime_sec;
	e->mtime_nsec = s->mtime_nsec;
	e->rdev = s->rdev;
	e->dev = s->dev;
	e->ino = s->ino;
	e->nlink = s->nlink;
	e->blocks = s->blocks;
	memcpy(e->xhash, s->xhash, sizeof(e->xhash));
	e->xattrs = NULL;
	e->xattrs_len = 0;
	snprintf(e->path, sizeof(e->path), "%s", s->path);
	snprintf(e->link, sizeof(e->link), "%s", s->link ? s->link : "");
}

/* Walk state shared down the recursion. */
struct walk {
	const struct hs_pathset *set;
	struct scan_list *out;          /* listed into, or ... */
	const struct scan_visit *visit; /* ... shown to, when not NULL */
	unsigned worker;                /* which thread walks (visit) */
	uint16_t src;
	int recursive;
	int stat_only;     /* no extended attributes (xhash left zero) */
	struct xcache *xc; /* digests of the last whole walk, or NULL */
	struct hs_buf xa;  /* scratch for extended attributes */
	char *dbuf[PROTO_DEPTH_MAX + 1]; /* dir_read buffers, one per depth */
	char path[PROTO_PATH_MAX + 1];
	size_t len;
};

/*
 * A directory listed with getdents64 into a buffer that lives as long as
 * the walk: glibc's fdopendir costs an fstat, an fcntl and a malloc per
 * directory, a tenth of the system time of a restart's walk over a tree
 * of small directories.
 */
#define DIR_BUF (32 * 1024)

struct dir_read {
	int fd;
	char *buf; /* DIR_BUF bytes */
	size_t len;
	size_t pos;
};

/*
 * The next entry but "." and "..": 1 (*name and *type, a DT_*, set), 0 at
 * the end, -errno.
 */
static int
dir_next(struct dir_read *r, const char **name, unsigned char *type)
{
	for (;;) {
		ssize_t n;

		while (r->pos < r->len) {
			struct dirent64 *de =
			    (struct dirent64 *)(r->buf + r->pos);
			const char *nm = de->d_name;

			if (de->d_reclen == 0)
				return -EIO; /* never from a sane kernel */
			r->pos += de->d_reclen;
			if (de->d_ino == 0 ||
			    (nm[0] == '.' && (nm[1] == '\0' ||
			                      (nm[1] == '.' && nm[2] == '\0'))))
				continue;
			*name = nm;
			*type = de->d_type;
			return 1;
		}
		if ((n = getdents64(r->fd, r->buf, DIR_BUF)) <= 0)
			/* A directory removed while listed has no entries
			 * (ESTALE: removed on a file server). */
			return n == 0 || errno == ENOENT || errno == ESTALE
			           ? 0
			           : -errno;
		r->len = (size_t)n;
		r->pos = 0;
	}
}

static int walk_dir(struct walk *w, int dfd, size_t depth);

/* The digest of entry `name`'s extended attributes: cached, or read. */
static void
walk_xattrs(struct walk *w, int dfd, const char *name, const struct stat *st,
            uint8_t xhash[PROTO_XHASH_LEN])
{
	int rc;

	if (xcache_get(w->xc, st, xhash))
		return;
	if ((rc = xa_read_at(dfd, name, &w->xa)) < 0) {
		hs_log_warnx("scan: %s: extended attributes: %s", w->path,
		             hs_strerror(rc));
		w->xa.len = 0;
	}
	xa_digest(w->xa.data, w->xa.len, xhash);
	if (rc == HS_OK)
		xcache_put(w->xc, st, xhash);
}

/*
 * A directory entry (d_type) of a recursive walk, opened: its stat from
 * the descriptor, one path lookup instead of two (fstatat, then openat)
 * on a tree of small directories.  -1 when it is not one after all.
 */
static int
walk_open_dir(const struct walk *w, int dfd, const char *name,
              unsigned char type, struct stat *st)
{
	int sub;

	if (type != DT_DIR || !w->recursive ||
	    (sub = openat(dfd, name,
	                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(sub, st) == 0 && S_ISDIR(st->st_mode))
		return sub;
	close(sub);
	return -1;
}

/* An entry that cannot be read, said here with its path; rc returned. */
static int
walk_fail(const struct walk *w, const char *what, int rc)
{
	hs_log_warnx("scan: %s: %s: %s", w->path[0] ? w->path : ".", what,
	             hs_strerror(rc));
	return rc;
}

/*
 * Add the entry `name` of dfd, whose relative path is w->path; `type` is
 * its d_type (DT_UNKNOWN: not known).  Gone meanwhile: nothing to add.
 */
static int
walk_entry(struct walk *w, int dfd, const char *name, unsigned char type,
           size_t depth)
{
	char target[PROTO_PATH_MAX + 1];
	struct scan_entry e;
	struct stat st;
	int rc, sub;

	sub = walk_open_dir(w, dfd, name, type, &st);
	if (sub < 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? HS_OK : walk_fail(w, "stat", -errno);
	memset(&e, 0, sizeof(e));
	e.path = w->path;
	e.src = w->src;
	e.mode = st.st_mode & 07777;
	e.uid = st.st_uid;
	e.gid = st.st_gid;
	e.mtime_sec = st.st_mtim.tv_sec;
	e.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	e.ctime_sec = st.st_ctim.tv_sec;
	e.ctime_nsec = (uint32_t)st.st_ctim.tv_nsec;
	e.nlink = (uint32_t)st.st_nlink;
	e.dev = st.st_dev;
	e.ino = st.st_ino;
	e.blocks = (uint64_t)st.st_blocks;
	if (!S_ISLNK(st.st_mode) && !w->stat_only)
		walk_xattrs(w, dfd, name, &st, e.xhash);
	if (S_ISREG(st.st_mode)) {
		e.type = PROTO_E_FILE;
		e.size = (uint64_t)st.st_size;
	} else if (S_ISDIR(st.st_mode)) {
		e.type = PROTO_E_DIR;
	} else if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlinkat(dfd, name, target, sizeof(target));

		if (n < 0)
			return errno == ENOENT
			           ? HS_OK
			           : walk_fail(w, "readlink", -errno);
		/* (filled: it may go on, and a cut target must not travel) */
		if (n == 0 || n >= (ssize_t)sizeof(target))
			return walk_fail(w, "symlink target", HS_ELIMIT);
		target[n] = '\0';
		e.type = PROTO_E_SYMLINK;
		e.link = target;
	} else if (S_ISFIFO(st.st_mode)) {
		e.type = PROTO_E_FIFO;
	} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		e.type = S_ISCHR(st.st_mode) ? PROTO_E_CHR : PROTO_E_BLK;
		e.rdev = st.st_rdev;
	} else {
		/* Sockets belong to a running process: never replicated. */
		hs_log_debug("scan: %s: socket skipped", w->path);
		return HS_OK;
	}
	if (w->visit != NULL)
		rc = w->visit->entry(w->visit->arg, w->worker, &e);
	else
		rc = scan_entry_add(w->out, &e);
	if (rc < 0 || e.type != PROTO_E_DIR || !w->recursive) {
		if (sub >= 0)
			close(sub);
		return rc < 0 ? rc : HS_OK;
	}
	if (sub < 0 &&
	    (sub = openat(dfd, name,
	                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return errno == ENOENT ? HS_OK : walk_fail(w, "open", -errno);
	/* Before it is listed: what changes after the listing is seen. */
	if (w->visit != NULL && w->visit->dir != NULL &&
	    (rc = w->visit->dir(w->visit->arg, w->worker, w->path)) < 0) {
		close(sub);
		return rc;
	}
	return walk_dir(w, sub, depth + 1);
}

/* List the children of dfd (taken) below w->path. */
static int
walk_dir(struct walk *w, int dfd, size_t depth)
{
	size_t saved = w->len;
	struct dir_read d = {dfd, NULL, 0, 0};
	const char *name;
	unsigned char type;
	int rc;

	/* Children here have `depth` components: deeper ones cannot travel. */
	if (depth > PROTO_DEPTH_MAX) {
		hs_log_warnx("scan: %s: deeper than %d components, skipped",
		             w->path, PROTO_DEPTH_MAX);
		close(dfd);
		return HS_OK;
	}
	if (w->dbuf[depth] == NULL &&
	    (w->dbuf[depth] = malloc(DIR_BUF)) == NULL) {
		close(dfd);
		return -ENOMEM;
	}
	d.buf = w->dbuf[depth];
	while ((rc = dir_next(&d, &name, &type)) > 0) {
		size_t n = strlen(name), need;

		if (strncmp(name, FS_TMP_PREFIX, sizeof(FS_TMP_PREFIX) - 1) ==
		    0)
			continue;
		need = saved + (saved > 0) + n;
		if (need > PROTO_PATH_MAX) {
			hs_log_warnx("scan: %s/%s: path too long, skipped",
			             w->path, name);
			continue;
		}
		if (saved > 0)
			w->path[saved] = '/';
		memcpy(w->path + saved + (saved > 0), name, n + 1);
		w->len = need;
		if (!scan_excluded(w->set, w->path))
			rc = walk_entry(w, dfd, name, type, depth);
		w->len = saved;
		w->path[saved] = '\0';
		if (rc < 0)
			goto out; /* an entry's: not this listing's */
	}
	if (rc < 0)
		hs_log_warnx("scan: %s: cannot list: %s", saved ? w->path : ".",
		             hs_strerror(rc));
out:
	close(dfd);
	return rc < 0 ? rc : HS_OK;
}

/* Walk entry `leaf` of anchorfd (its d_type `type`, or DT_UNKNOWN). */
static int
scan_walk(int anchorfd, const char *leaf, unsigned char type, uint16_t src,
          const char *prefix, int recursive, int stat_only,
          const struct hs_pathset *set, struct scan_list *out,
          const struct scan_visit *visit, unsigned worker, struct xcache *xc)
{
	struct walk w;
	size_t depth, i;
	int rc;

	memset(&w, 0, sizeof(w));
	w.set = set;
	w.out = out;
	w.visit = visit;
	w.worker = worker;
	w.src = src;
	w.recursive = recursive;
	w.stat_only = stat_only;
	w.xc = xc;
	w.len = strlen(prefix);
	if (w.len > PROTO_PATH_MAX)
		return HS_ELIMIT;
	memcpy(w.path, prefix, w.len + 1);
	/* The depth of the prefix counts against the limit too. */
	for (depth = prefix[0] != '\0', i = 0; prefix[i] != '\0'; i++)
		depth += prefix[i] == '/';
	hs_buf_init(&w.xa, PROTO_XATTRS_MAX);
	rc = walk_entry(&w, anchorfd, leaf, type, depth);
	hs_buf_free(&w.xa);
	for (i = 0; i <= PROTO_DEPTH_MAX; i++)
		free(w.dbuf[i]);
	return rc;
}

int
scan_subtree(int anchorfd, const char *leaf, uint16_t src, const char *prefix,
             int recursive, const struct hs_pathset *set, struct scan_list *out,
             struct xcache *xc)
{
	return scan_walk(anchorfd, leaf, DT_UNKNOWN, src, prefix, recursive, 0,
	                 set, out, NULL, 0, xc);
}

int
scan_subtree_visit(int anchorfd, const char *leaf, uint16_t src,
                   const char *prefix, int recursive,
                   const struct hs_pathset *set, const struct scan_visit *v,
                   struct xcache *xc)
{
	return scan_walk(anchorfd, leaf, DT_UNKNOWN, src, prefix, recursive, 0,
	                 set, NULL, v, 0, xc);
}

/*
 * The stat-only walk of a whole source runs on SCAN_WORKERS threads: a
 * restart compares every entry with the index, and on a big tree that is
 * all path lookups and directory reads in the kernel, which two cores do
 * in half the time.  The tree is cut into jobs (an entry and all below
 * it) before the threads start: the source's top-level entries, and,
 * while there are too few of them to keep the threads busy to the end,
 * the entries one level further down.  The threads take the jobs one at
 * a time.  Across jobs the order is not pre-order: callers sort or merge
 * by key.
 */
#define JOBS_WANTED (8 * SCAN_WORKERS)
#define JOBS_DEPTH_MAX 3

struct walk_job {
	int dirfd;          /* borrowed from stat_job.fds */
	char *name;         /* the entry in dirfd */
	char *path;         /* its path in the source */
	unsigned char type; /* its d_type, or DT_UNKNOWN */
};

struct stat_job {
	struct walk_job *v;
	size_t n;
	size_t cap;
	int *fds; /* directories the jobs name entries in */
	size_t n_fds;
	size_t next; /* taken with an atomic add */
	uint16_t src;
	const struct hs_pathset *set;
	const struct scan_visit *visit;
};

struct stat_worker {
	pthread_t tid;
	unsigned id;
	struct stat_job *job;
	int rc;
};

static void *
stat_worker_run(void *arg)
{
	struct stat_worker *k = arg;
	struct stat_job *j = k->job;
	size_t i;

	while (k->rc == HS_OK &&
	       (i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->n)
		k->rc = scan_walk(j->v[i].dirfd, j->v[i].name, j->v[i].type,
		                  j->src, j->v[i].path, 1, 1, j->set, NULL,
		                  j->visit, k->id, NULL);
	return NULL;
}

static void
jobs_free(struct stat_job *j)
{
	size_t i;

	for (i = 0; i < j->n; i++) {
		free(j->v[i].name);
		free(j->v[i].path);
	}
	free(j->v);
	for (i = 0; i < j->n_fds; i++)
		close(j->fds[i]);
	free(j->fds);
	j->v = NULL;
	j->fds = NULL;
	j->n = j->cap = j->n_fds = 0;
}

/* One job per entry of directory fd (taken), whose path is `path`. */
static int
jobs_add_dir(struct stat_job *j, int fd, const char *path)
{
	struct dir_read d = {fd, NULL, 0, 0};
	const char *name;
	unsigned char type;
	int *nf, rc;

	if ((nf = reallocarray(j->fds, j->n_fds + 1, sizeof(*nf))) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	j->fds = nf;
	j->fds[j->n_fds++] = fd;
	if ((d.buf = malloc(DIR_BUF)) == NULL)
		return -ENOMEM;
	while ((rc = dir_next(&d, &name, &type)) > 0) {
		char rel[PROTO_PATH_MAX + 1];
		struct walk_job *jb;

		if (strncmp(name, FS_TMP_PREFIX, sizeof(FS_TMP_PREFIX) - 1) ==
		    0)
			continue;
		if (snprintf(rel, sizeof(rel), "%s%s%s", path,
		             path[0] ? "/" : "", name) >= (int)sizeof(rel)) {
			hs_log_warnx("scan: %s/%s: path too long, skipped",
			             path, name);
			continue;
		}
		if (scan_excluded(j->set, rel))
			continue;
		if (j->n == j->cap) {
			size_t ncap = j->cap ? j->cap * 2 : 64;

			jb = reallocarray(j->v, ncap, sizeof(*jb));
			if (jb == NULL) {
				rc = -ENOMEM;
				break;
			}
			j->v = jb;
			j->cap = ncap;
		}
		jb = &j->v[j->n];
		jb->dirfd = fd;
		jb->type = type;
		jb->name = strdup(name);
		jb->path = strdup(rel);
		if (jb->name == NULL || jb->path == NULL) {
			free(jb->name);
			free(jb->path);
			rc = -ENOMEM;
			break;
		}
		j->n++;
	}
	if (rc < 0 && rc != -ENOMEM)
		hs_log_warnx("scan: %s: cannot list: %s", path[0] ? path : ".",
		             hs_strerror(rc));
	free(d.buf);
	return rc < 0 ? rc : HS_OK;
}

/*
 * Too few jobs for the threads: visit each directory job here (its
 * entry, then the visit's dir call, as a walk would) and replace it with
 * jobs for its entries.
 */
static int
jobs_split(struct stat_job *j)
{
	struct walk_job *old = j->v;
	size_t n_old = j->n, i;
	int rc = HS_OK;

	j->v = NULL;
	j->n = j->cap = 0;
	for (i = 0; i < n_old; i++) {
		struct walk_job *jb = &old[i];
		int fd = -1;

		/* (known not to be a directory: no open to find out) */
		if (rc == HS_OK &&
		    (jb->type == DT_DIR || jb->type == DT_UNKNOWN))
			fd = openat(jb->dirfd, jb->name,
			            O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			                O_CLOEXEC);
		if (fd < 0) {
			/* Not a directory (or gone): walked as it is. */
			if (rc == HS_OK && j->n == j->cap) {
				size_t ncap = j->cap ? j->cap * 2 : 64;
				struct walk_job *nv =
				    reallocarray(j->v, ncap, sizeof(*nv));

				if (nv == NULL)
					rc = -ENOMEM;
				else {
					j->v = nv;
					j->cap = ncap;
				}
			}
			if (rc == HS_OK) {
				j->v[j->n++] = *jb;
				continue;
			}
			free(jb->name);
			free(jb->path);
			continue;
		}
		rc = scan_walk(jb->dirfd, jb->name, jb->type, j->src, jb->path,
		               0, 1, j->set, NULL, j->visit, 0, NULL);
		if (rc == HS_OK && j->visit->dir != NULL)
			rc = j->visit->dir(j->visit->arg, 0, jb->path);
		if (rc == HS_OK)
			rc = jobs_add_dir(j, fd, jb->path);
		else
			close(fd);
		free(jb->name);
		free(jb->path);
	}
	free(old);
	return rc;
}

int
scan_tree_visit(int anchorfd, const char *leaf, uint16_t src,
                const struct hs_pathset *set, const struct scan_visit *v)
{
	struct stat_worker k[SCAN_WORKERS];
	struct stat_job j;
	size_t i, depth;
	int rc, fd, started = 0;

	memset(&j, 0, sizeof(j));
	memset(k, 0, sizeof(k));
	j.src = src;
	j.set = set;
	j.visit = v;
	/* The source itself first; a file, a link or nothing ends here. */
	fd = openat(anchorfd, leaf,
	            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	rc = scan_walk(anchorfd, leaf, DT_UNKNOWN, src, "", 0, 1, set, NULL, v,
	               0, NULL);
	if (rc < 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if ((v->dir != NULL && (rc = v->dir(v->arg, 0, "")) < 0) ||
	    (rc = jobs_add_dir(&j, fd, "")) < 0)
		goto out;
	for (depth = 1; depth < JOBS_DEPTH_MAX && j.n > 0 && j.n < JOBS_WANTED;
	     depth++)
		if ((rc = jobs_split(&j)) < 0)
			goto out;
	for (i = 0; i < SCAN_WORKERS; i++) {
		k[i].job = &j;
		k[i].id = (unsigned)i;
		if (i > 0 && pthread_create(&k[i].tid, NULL, stat_worker_run,
		                            &k[i]) != 0)
			break;
		started = (int)i + 1;
	}
	stat_worker_run(&k[0]); /* this thread is the first worker */
	for (i = 1; i < (size_t)started; i++)
		pthread_join(k[i].tid, NULL);
	for (i = 0; i < (size_t)started && rc == HS_OK; i++)
		rc = k[i].rc;
out:
	jobs_free(&j);
	return rc;
}

/* scan_tree_stat: each thread lists into its own list, joined at the end. */
struct stat_lists {
	struct scan_list l[SCAN_WORKERS];
};

static int
stat_list_entry(void *arg, unsigned worker, const struct scan_entry *e)
{
	struct stat_lists *sl = arg;

	return scan_entry_add(&sl->l[worker], e);
}

/* Move every entry of `from` to the end of `to` (paths change owner). */
static int
scan_list_move(struct scan_list *to, struct scan_list *from)
{
	struct scan_entry *v;

	if (from->n == 0)
		return HS_OK;
	if (to->n + from->n > SCAN_ENTRIES_MAX)
		return HS_ELIMIT;
	if (to->cap < to->n + from->n) {
		v = reallocarray(to->v, to->n + from->n, sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		to->v = v;
		to->cap = to->n + from->n;
	}
	memcpy(to->v + to->n, from->v, from->n * sizeof(*v));
	to->n += from->n;
	free(to->ix); /* out of date */
	to->ix = NULL;
	free(from->v);
	free(from->ix);
	memset(from, 0, sizeof(*from));
	return HS_OK;
}

int
scan_tree_stat(int anchorfd, const char *leaf, uint16_t src,
               const struct hs_pathset *set, struct scan_list *out)
{
	struct stat_lists sl;
	struct scan_visit v = {NULL, stat_list_entry, &sl};
	size_t i;
	int rc;

	memset(&sl, 0, sizeof(sl));
	rc = scan_tree_visit(anchorfd, leaf, src, set, &v);
	for (i = 0; i < SCAN_WORKERS; i++) {
		if (rc == HS_OK)
			rc = scan_list_move(out, &sl.l[i]);
		scan_list_free(&sl.l[i]);
	}
	return rc;
}
