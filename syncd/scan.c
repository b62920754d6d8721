/*
 * scan.c - list a source's tree from a directory fd, following no symlink.
 * Both nodes list with this code: the primary its sources, the standby
 * its copies of them beneath target_root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "syncd.h"

int
scan_excluded(const struct hs_pathset *set, const char *rel)
{
	const char *base = strrchr(rel, '/');
	size_t i;

	base = base ? base + 1 : rel;
	for (i = 0; i < set->excludes.n; i++) {
		const char *pat = set->excludes.v[i];

		if (strchr(pat, '/') != NULL) {
			if (fnmatch(pat, rel, FNM_PATHNAME) == 0)
				return 1;
		} else if (fnmatch(pat, base, 0) == 0)
			return 1;
	}
	return 0;
}

int
scan_entry_add(struct scan_list *l, const struct scan_entry *e)
{
	struct scan_entry *n;

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
	memset(l, 0, sizeof(*l));
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct scan_entry *x = a, *y = b;

	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	return strcmp(x->path, y->path);
}

void
scan_list_sort(struct scan_list *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), entry_cmp);
}

struct scan_entry *
scan_list_find(struct scan_list *l, uint16_t src, const char *path)
{
	struct scan_entry key;

	if (l->n == 0)
		return NULL;
	memset(&key, 0, sizeof(key));
	key.src = src;
	key.path = (char *)path;
	return bsearch(&key, l->v, l->n, sizeof(*l->v), entry_cmp);
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
	struct scan_list *out;
	uint16_t src;
	int recursive;
	int stat_only;    /* no extended attributes (xhash left zero) */
	struct hs_buf xa; /* scratch for extended attributes */
	char path[PROTO_PATH_MAX + 1];
	size_t len;
};

static int walk_dir(struct walk *w, int dfd, size_t depth);

/* Add the entry `name` of dfd, whose relative path is w->path. */
static int
walk_entry(struct walk *w, int dfd, const char *name, size_t depth)
{
	char target[PROTO_PATH_MAX + 1];
	struct scan_entry e;
	struct stat st;
	int rc, sub;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? HS_OK : -errno;
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
	if (!S_ISLNK(st.st_mode) && !w->stat_only) {
		if ((rc = xa_read_at(dfd, name, &w->xa)) < 0) {
			hs_log_warnx("scan: %s: extended attributes: %s",
			             w->path, hs_strerror(rc));
			w->xa.len = 0;
		}
		xa_digest(w->xa.data, w->xa.len, e.xhash);
	}
	if (S_ISREG(st.st_mode)) {
		e.type = PROTO_E_FILE;
		e.size = (uint64_t)st.st_size;
	} else if (S_ISDIR(st.st_mode)) {
		e.type = PROTO_E_DIR;
	} else if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);

		if (n <= 0)
			return n < 0 && errno == ENOENT ? HS_OK : HS_ELIMIT;
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
	if ((rc = scan_entry_add(w->out, &e)) < 0)
		return rc;
	if (e.type != PROTO_E_DIR || !w->recursive)
		return HS_OK;
	sub =
	    openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return errno == ENOENT ? HS_OK : -errno;
	return walk_dir(w, sub, depth + 1);
}

/* List the children of dfd (taken) below w->path. */
static int
walk_dir(struct walk *w, int dfd, size_t depth)
{
	size_t saved = w->len;
	struct dirent *de;
	DIR *d;
	int rc = HS_OK;

	/* Children here have `depth` components: deeper ones cannot travel. */
	if (depth > PROTO_DEPTH_MAX) {
		hs_log_warnx("scan: %s: deeper than %d components, skipped",
		             w->path, PROTO_DEPTH_MAX);
		close(dfd);
		return HS_OK;
	}
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name), need;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, FS_TMP_PREFIX,
		            sizeof(FS_TMP_PREFIX) - 1) == 0)
			continue;
		need = saved + (saved > 0) + n;
		if (need > PROTO_PATH_MAX) {
			hs_log_warnx("scan: %s/%s: path too long, skipped",
			             w->path, de->d_name);
			continue;
		}
		if (saved > 0)
			w->path[saved] = '/';
		memcpy(w->path + saved + (saved > 0), de->d_name, n + 1);
		w->len = need;
		if (!scan_excluded(w->set, w->path))
			rc = walk_entry(w, dirfd(d), de->d_name, depth);
		w->len = saved;
		w->path[saved] = '\0';
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

static int
scan_walk(int anchorfd, const char *leaf, uint16_t src, const char *prefix,
          int recursive, int stat_only, const struct hs_pathset *set,
          struct scan_list *out)
{
	struct walk w;
	size_t depth, i;
	int rc;

	memset(&w, 0, sizeof(w));
	w.set = set;
	w.out = out;
	w.src = src;
	w.recursive = recursive;
	w.stat_only = stat_only;
	w.len = strlen(prefix);
	if (w.len > PROTO_PATH_MAX)
		return HS_ELIMIT;
	memcpy(w.path, prefix, w.len + 1);
	/* The depth of the prefix counts against the limit too. */
	for (depth = prefix[0] != '\0', i = 0; prefix[i] != '\0'; i++)
		depth += prefix[i] == '/';
	hs_buf_init(&w.xa, PROTO_XATTRS_MAX);
	rc = walk_entry(&w, anchorfd, leaf, depth);
	hs_buf_free(&w.xa);
	return rc;
}

int
scan_subtree(int anchorfd, const char *leaf, uint16_t src, const char *prefix,
             int recursive, const struct hs_pathset *set, struct scan_list *out)
{
	return scan_walk(anchorfd, leaf, src, prefix, recursive, 0, set, out);
}

/*
 * The stat-only walk of a whole source runs on two threads: a restart
 * compares every entry with the index, and on a big tree that is all
 * path lookups in the kernel, which two cores do in half the time.  The
 * threads take the source's top-level entries one at a time and each
 * lists into its own list; the lists are joined at the end (the order is
 * not pre-order across the top level: callers sort or merge by key).
 */
#define STAT_THREADS 2

struct stat_job {
	int dirfd;
	char **names;
	size_t n;
	size_t next; /* taken with an atomic add */
	uint16_t src;
	const struct hs_pathset *set;
};

struct stat_worker {
	pthread_t tid;
	struct stat_job *job;
	struct scan_list out;
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
		k->rc = scan_walk(j->dirfd, j->names[i], j->src, j->names[i], 1,
		                  1, j->set, &k->out);
	return NULL;
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
	free(from->v);
	memset(from, 0, sizeof(*from));
	return HS_OK;
}

/* The names in the source's top directory that a walk would visit. */
static int
top_names(int dirfd, const struct hs_pathset *set, char ***out, size_t *n)
{
	struct dirent *de;
	char **v = NULL, **nv;
	size_t cap = 0;
	DIR *d;
	int fd = dup(dirfd);

	*n = 0;
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strncmp(de->d_name, FS_TMP_PREFIX,
		            sizeof(FS_TMP_PREFIX) - 1) == 0 ||
		    scan_excluded(set, de->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL)
				break;
			v = nv;
		}
		if ((v[*n] = strdup(de->d_name)) == NULL)
			break;
		(*n)++;
	}
	closedir(d);
	*out = v;
	return de == NULL ? HS_OK : -ENOMEM;
}

int
scan_tree_stat(int anchorfd, const char *leaf, uint16_t src,
               const struct hs_pathset *set, struct scan_list *out)
{
	struct stat_worker k[STAT_THREADS];
	struct stat_job j;
	size_t before = out->n, i;
	int rc, started = 0;

	/* The source itself first; a file, a link or nothing ends here. */
	rc = scan_walk(anchorfd, leaf, src, "", 0, 1, set, out);
	if (rc < 0 || out->n == before || out->v[before].type != PROTO_E_DIR)
		return rc;
	memset(&j, 0, sizeof(j));
	memset(k, 0, sizeof(k));
	j.src = src;
	j.set = set;
	j.dirfd = openat(anchorfd, leaf,
	                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (j.dirfd < 0)
		return errno == ENOENT ? HS_OK : -errno;
	if ((rc = top_names(j.dirfd, set, &j.names, &j.n)) < 0)
		goto out;
	for (i = 0; i < STAT_THREADS; i++) {
		k[i].job = &j;
		if (i > 0 && pthread_create(&k[i].tid, NULL, stat_worker_run,
		                            &k[i]) != 0)
			break;
		started = (int)i + 1;
	}
	stat_worker_run(&k[0]); /* this thread is the first worker */
	for (i = 1; i < (size_t)started; i++)
		pthread_join(k[i].tid, NULL);
	for (i = 0; i < STAT_THREADS; i++) {
		if (rc == HS_OK)
			rc = k[i].rc;
		if (rc == HS_OK)
			rc = scan_list_move(out, &k[i].out);
		scan_list_free(&k[i].out);
	}
out:
	for (i = 0; i < j.n; i++)
		free(j.names[i]);
	free(j.names);
	close(j.dirfd);
	return rc;
}
