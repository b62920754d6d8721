/*
 * watch.c - the primary's watcher: recursive inotify watches on every
 * configured source, drained into a coalesced dirty set per path set.
 *
 * A single-file source is watched through its directory, because editors
 * and xCAT replace files by rename.  New directories are watched at once
 * and marked for a recursive look, so files created before the watch
 * existed are not missed.  A regular file is reported once it is closed
 * after writing, or once it stays quiet while open (bounded).  A queue
 * overflow, an unmount or a vanished source root asks for a full
 * reconciliation of the set instead.  Subtrees that could not be watched
 * (the watch limit) are listed for a periodic rescan.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prim_int.h"
#include "tree.h"

/* A file still open for writing is sent after this long anyway. */
/*
 * A file still open for writing is sent once it has been quiet for
 * WATCH_QUIET_NS, and at the latest WATCH_OPEN_MAX_NS after its first
 * write (a log that never stops still travels).  Sending a file that is
 * being written wastes the transfer: it is aborted as changed.
 */
#define WATCH_QUIET_NS (1000ull * 1000 * 1000)
#define WATCH_OPEN_MAX_NS (30000ull * 1000 * 1000)
/* Past this many dirty paths in a set, a full reconciliation is cheaper. */
#define WATCH_DIRTY_MAX 100000
#define WATCH_EVENTS                                                           \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |                 \
	 IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF |             \
	 IN_MOVE_SELF | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

/* What one watch descriptor stands for. */
struct target {
	uint16_t set;
	uint16_t src;
	uint8_t is_file; /* a single-file source's directory */
	char *rel;       /* directory path in the source, or
	                    the file source's name */
};

struct wslot {
	struct target *t;
	size_t n;
};

struct delayed {
	uint16_t set;
	uint16_t src;
	char *path;
	uint64_t first_ns; /* its first write we saw */
	uint64_t due_ns;
};

/* A rename seen as a MOVED_FROM/MOVED_TO pair within one source. */
struct wrename {
	uint16_t src;
	char *from;
	char *to;
};

struct dirty_set {
	struct proto_scope *v;
	size_t n;
	size_t cap;
	int full;
	uint64_t first_ns; /* when the oldest change waiting was seen */
	struct wrename *ren;
	size_t n_ren;
	size_t xp_next; /* v[0..xp_next) were offered to the express lane */
};

struct watch {
	const struct hs_conf *conf;
	int fd;
	struct wslot *slots; /* indexed by wd */
	size_t n_slots;
	size_t n_watches;
	struct dirty_set *dirty; /* per set */
	struct delayed *delayed;
	size_t n_delayed;
	size_t cap_delayed;
	uint64_t taken_first_ns; /* first_ns of the last take */
	/* The last MOVED_FROM, waiting for its MOVED_TO. */
	uint32_t mv_cookie;
	uint16_t mv_set;
	uint16_t mv_src;
	char mv_from[PROTO_PATH_MAX + 1];
	struct proto_scope *unwatched; /* rescanned on a timer */
	size_t n_unwatched;
	/* Walking again after an overflow: one summary, not a line each. */
	int limit_quiet;
	size_t limit_lines; /* subtrees named in a watch-limit line so far */
	int strict;   /* retrying: a directory that cannot be read fails */
	char **roots; /* per set/source: real path */
	/*
	 * Deferred directory sources (watch_new_deferred): per set/source,
	 * 1 while its tree waits for watch_dir_add or watch_ready.  The
	 * mutex guards the slots and the unwatched list while walks on
	 * several threads add watches; `at_limit` is set at the first ENOSPC.
	 */
	uint8_t *deferred;
	pthread_mutex_t mu;
	int at_limit;
};

static void renames_free(struct dirty_set *d);

static char **
root_slot(struct watch *w, uint16_t set, uint16_t src)
{
	return &w->roots[(size_t)set * PROTO_SOURCES_MAX + src];
}

static int
dirty_add(struct watch *w, uint16_t set, uint16_t src, const char *path,
          int recursive)
{
	struct dirty_set *d = &w->dirty[set];

	if (d->first_ns == 0)
		d->first_ns = hs_now_mono_ns();
	if (d->full)
		return HS_OK;
	if (d->n >= WATCH_DIRTY_MAX) {
		hs_log_info("watch: set %s: more than %d changes pending, "
		            "reconciling it whole",
		            w->conf->sets[set].name, WATCH_DIRTY_MAX);
		proto_scope_free(d->v, d->n);
		renames_free(d);
		d->v = NULL;
		d->n = d->cap = d->xp_next = 0;
		d->full = 1;
		if (d->first_ns == 0)
			d->first_ns = hs_now_mono_ns();
		return HS_OK;
	}
	return proto_scope_push(&d->v, &d->n, &d->cap, src, path, recursive);
}

/* A change at `path` also touches its directory's mtime. */
static int
dirty_change(struct watch *w, uint16_t set, uint16_t src, const char *path,
             int recursive)
{
	char parent[PROTO_PATH_MAX + 1];
	const char *slash;
	int rc;

	if ((rc = dirty_add(w, set, src, path, recursive)) < 0)
		return rc;
	if (path[0] == '\0')
		return HS_OK;
	slash = strrchr(path, '/');
	snprintf(parent, sizeof(parent), "%.*s",
	         (int)(slash ? slash - path : 0), path);
	return dirty_add(w, set, src, parent, 0);
}

/*
 * Remember a rename, so the standby can rename its copy before the paths
 * are reconciled: a renamed 73 MiB directory then costs nothing.
 */
static void
rename_add(struct watch *w, uint16_t set, uint16_t src, const char *from,
           const char *to)
{
	struct dirty_set *d = &w->dirty[set];
	struct wrename *nr;

	w->mv_cookie = 0;
	/* Past what one SET_RENAMES may carry a rename is not mirrored:
	 * the scoped run that follows sends it as a delete and a create. */
	if (d->full || d->n_ren >= PROTO_SCOPE_MAX || from[0] == '\0' ||
	    to[0] == '\0')
		return;
	if ((nr = reallocarray(d->ren, d->n_ren + 1, sizeof(*nr))) == NULL)
		return;
	d->ren = nr;
	nr[d->n_ren].src = src;
	nr[d->n_ren].from = hs_xstrdup(from);
	nr[d->n_ren].to = hs_xstrdup(to);
	d->n_ren++;
}

static void
renames_free(struct dirty_set *d)
{
	size_t i;

	for (i = 0; i < d->n_ren; i++) {
		free(d->ren[i].from);
		free(d->ren[i].to);
	}
	free(d->ren);
	d->ren = NULL;
	d->n_ren = 0;
}

static void
delay_add(struct watch *w, uint16_t set, uint16_t src, const char *path)
{
	uint64_t now = hs_now_mono_ns();
	size_t i;

	for (i = 0; i < w->n_delayed; i++)
		if (w->delayed[i].set == set && w->delayed[i].src == src &&
		    strcmp(w->delayed[i].path, path) == 0) {
			struct delayed *d = &w->delayed[i];

			/* Still written: wait for quiet, but bounded. */
			d->due_ns = now + WATCH_QUIET_NS;
			if (d->due_ns > d->first_ns + WATCH_OPEN_MAX_NS)
				d->due_ns = d->first_ns + WATCH_OPEN_MAX_NS;
			return;
		}
	if (w->n_delayed == w->cap_delayed) {
		size_t ncap = w->cap_delayed ? w->cap_delayed * 2 : 32;
		struct delayed *nd =
		    reallocarray(w->delayed, ncap, sizeof(*nd));

		if (nd == NULL) {
			dirty_change(w, set, src, path, 0);
			return;
		}
		w->delayed = nd;
		w->cap_delayed = ncap;
	}
	w->delayed[w->n_delayed].set = set;
	w->delayed[w->n_delayed].src = src;
	w->delayed[w->n_delayed].path = hs_xstrdup(path);
	w->delayed[w->n_delayed].first_ns = now;
	w->delayed[w->n_delayed].due_ns = now + WATCH_QUIET_NS;
	w->n_delayed++;
}

static void
delay_drop(struct watch *w, uint16_t set, uint16_t src, const char *path)
{
	size_t i;

	for (i = 0; i < w->n_delayed; i++)
		if (w->delayed[i].set == set && w->delayed[i].src == src &&
		    strcmp(w->delayed[i].path, path) == 0) {
			free(w->delayed[i].path);
			w->delayed[i] = w->delayed[--w->n_delayed];
			return;
		}
}

static int
slot_add(struct watch *w, int wd, const struct target *t)
{
	struct wslot *s;
	struct target *nt;
	size_t i;

	if ((size_t)wd >= w->n_slots) {
		size_t n = w->n_slots ? w->n_slots : 256;
		struct wslot *ns;

		while (n <= (size_t)wd)
			n *= 2;
		if ((ns = reallocarray(w->slots, n, sizeof(*ns))) == NULL)
			return -ENOMEM;
		memset(ns + w->n_slots, 0, (n - w->n_slots) * sizeof(*ns));
		w->slots = ns;
		w->n_slots = n;
	}
	s = &w->slots[wd];
	for (i = 0; i < s->n; i++)
		if (s->t[i].set == t->set && s->t[i].src == t->src &&
		    s->t[i].is_file == t->is_file &&
		    strcmp(s->t[i].rel, t->rel) == 0)
			return HS_OK;
	if ((nt = reallocarray(s->t, s->n + 1, sizeof(*nt))) == NULL)
		return -ENOMEM;
	s->t = nt;
	s->t[s->n] = *t;
	s->t[s->n].rel = hs_xstrdup(t->rel);
	if (s->n == 0)
		w->n_watches++;
	s->n++;
	return HS_OK;
}

static void
slot_clear(struct watch *w, int wd)
{
	size_t i;

	if (wd < 0 || (size_t)wd >= w->n_slots)
		return;
	for (i = 0; i < w->slots[wd].n; i++)
		free(w->slots[wd].t[i].rel);
	free(w->slots[wd].t);
	if (w->slots[wd].n > 0 && w->n_watches > 0)
		w->n_watches--;
	w->slots[wd].t = NULL;
	w->slots[wd].n = 0;
}

/*
 * A subtree left without a watch gets one line, up to this many in the
 * daemon's life: a storm of new directories past the limit (an image
 * unpacked under /install) would otherwise write one line each.  status
 * counts them all.
 */
#define LIMIT_LINES_MAX 50

static void
limit_warn(struct watch *w, const char *abs)
{
	if (w->limit_quiet)
		return;
	if (w->limit_lines < LIMIT_LINES_MAX)
		hs_log_warnx("watch: %s: inotify watch limit reached (sysctl "
		             "fs.inotify.max_user_watches); this subtree is "
		             "rescanned every %llus (rescan_interval)",
		             abs, (unsigned long long)w->conf->rescan_interval);
	else if (w->limit_lines == LIMIT_LINES_MAX)
		hs_log_warnx("watch: inotify watch limit: more subtrees are "
		             "left without watches than are named here "
		             "(%d); `status` counts them all",
		             LIMIT_LINES_MAX);
	w->limit_lines++;
}

static void
unwatched_add(struct watch *w, uint16_t set, uint16_t src, const char *rel)
{
	struct proto_scope *nv;

	nv = reallocarray(w->unwatched, w->n_unwatched + 1, sizeof(*nv));
	if (nv == NULL)
		return;
	w->unwatched = nv;
	nv[w->n_unwatched].src = src;
	nv[w->n_unwatched].recursive = (uint8_t)set; /* set, see take */
	nv[w->n_unwatched].path = hs_xstrdup(rel);
	w->n_unwatched++;
}

/* Watch directory abs (= source + rel) and everything below it. */
static int
watch_tree(struct watch *w, uint16_t set, uint16_t src, const char *abs,
           const char *rel, size_t depth)
{
	const struct hs_pathset *ps = &w->conf->sets[set];
	struct target t = {set, src, 0, (char *)rel};
	struct dirent *de;
	DIR *d;
	int wd, rc = HS_OK;

	if (depth > PROTO_DEPTH_MAX)
		return HS_OK;
	wd = inotify_add_watch(w->fd, abs, WATCH_EVENTS | IN_ONLYDIR);
	if (wd < 0) {
		if (errno == ENOSPC) {
			limit_warn(w, abs);
			unwatched_add(w, set, src, rel);
			return HS_OK;
		}
		return errno == ENOENT || errno == ENOTDIR ? HS_OK : -errno;
	}
	if ((rc = slot_add(w, wd, &t)) < 0)
		return rc;
	/*
	 * At the start an unreadable directory is the walk's to report;
	 * a retry must not take a subtree off the rescan list with its
	 * children never visited.
	 */
	if ((d = opendir(abs)) == NULL)
		return w->strict && errno != ENOENT && errno != ENOTDIR ? -errno
		                                                        : HS_OK;
	while ((de = readdir(d)) != NULL && rc == HS_OK) {
		char cabs[PATH_MAX], crel[PROTO_PATH_MAX + 1];

		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(cabs, sizeof(cabs), "%s/%s", abs, de->d_name) >=
		        (int)sizeof(cabs) ||
		    snprintf(crel, sizeof(crel), "%s%s%s", rel,
		             rel[0] ? "/" : "",
		             de->d_name) >= (int)sizeof(crel))
			continue;
		if (scan_excluded(ps, crel))
			continue;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;

			if (lstat(cabs, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
		}
		rc = watch_tree(w, set, src, cabs, crel, depth + 1);
	}
	closedir(d);
	return rc;
}

static int
watch_source(struct watch *w, uint16_t set, uint16_t src, int defer)
{
	/* Our copy of the source (target_root + it), not its wire name. */
	const char *s = w->conf->sets[set].local.v[src];
	char real[PATH_MAX], dir[PATH_MAX];
	struct stat st;
	const char *slash;
	int wd;

	/* The source as the sender reads it: a symlinked directory followed. */
	if (stat(s, &st) == 0 && S_ISDIR(st.st_mode) &&
	    realpath(s, real) != NULL) {
		*root_slot(w, set, src) = hs_xstrdup(real);
		if (defer) {
			w->deferred[(size_t)set * PROTO_SOURCES_MAX + src] = 1;
			return HS_OK;
		}
		return watch_tree(w, set, src, real, "", 0);
	}
	/* A file (or missing) source: watch its directory for its name. */
	slash = strrchr(s, '/');
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - s > 0 ? slash - s : 1),
	         s);
	*root_slot(w, set, src) = hs_xstrdup(s);
	wd = inotify_add_watch(w->fd, dir, WATCH_EVENTS | IN_ONLYDIR);
	if (wd < 0) {
		if (errno == ENOSPC)
			limit_warn(w, dir);
		else
			hs_log_warn("watch: %s", dir);
		unwatched_add(w, set, src, "");
		return w->strict ? -errno : HS_OK;
	}
	{
		struct target t = {set, src, 1, (char *)(slash + 1)};

		return slot_add(w, wd, &t);
	}
}

/*
 * After an overflow some directories may have been created without our
 * seeing them: walk every source again (a directory already watched keeps
 * its watch: inotify returns the same descriptor and slot_add skips it).
 */
static void
watch_rewatch(struct watch *w)
{
	size_t i, j;

	/*
	 * The walk finds again every subtree still without a watch: start
	 * the list afresh, or each overflow would add them all once more
	 * (and keep removed ones), and status would count them twice.
	 */
	proto_scope_free(w->unwatched, w->n_unwatched);
	w->unwatched = NULL;
	w->n_unwatched = 0;
	w->limit_quiet = 1;
	for (i = 0; i < w->conf->n_sets; i++)
		for (j = 0; j < w->conf->sets[i].sources.n; j++) {
			char **root = root_slot(w, (uint16_t)i, (uint16_t)j);

			free(*root);
			*root = NULL;
			watch_source(w, (uint16_t)i, (uint16_t)j, 0);
		}
	w->limit_quiet = 0;
	if (w->n_unwatched > 0)
		hs_log_warnx("watch: inotify watch limit reached: %zu subtrees "
		             "without watches, rescanned every %llus "
		             "(rescan_interval)",
		             w->n_unwatched,
		             (unsigned long long)w->conf->rescan_interval);
}

static int
watch_create(const struct hs_conf *conf, int defer, struct watch **out)
{
	size_t n_roots = (conf->n_sets ? conf->n_sets : 1) * PROTO_SOURCES_MAX;
	struct watch *w;
	size_t i, j;
	int rc;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->conf = conf;
	pthread_mutex_init(&w->mu, NULL);
	w->dirty = calloc(conf->n_sets ? conf->n_sets : 1, sizeof(*w->dirty));
	w->roots = calloc(n_roots, sizeof(*w->roots));
	w->deferred = calloc(n_roots, 1);
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->dirty == NULL || w->roots == NULL || w->deferred == NULL ||
	    w->fd < 0) {
		rc = w->fd < 0 ? -errno : -ENOMEM;
		watch_free(w);
		return rc;
	}
	for (i = 0; i < conf->n_sets; i++)
		for (j = 0; j < conf->sets[i].sources.n; j++)
			if ((rc = watch_source(w, (uint16_t)i, (uint16_t)j,
			                       defer)) < 0) {
				watch_free(w);
				return rc;
			}
	if (!defer)
		watch_ready(w);
	*out = w;
	return HS_OK;
}

int
watch_new(const struct hs_conf *conf, struct watch **out)
{
	return watch_create(conf, 0, out);
}

int
watch_new_deferred(const struct hs_conf *conf, struct watch **out)
{
	return watch_create(conf, 1, out);
}

const char *
watch_root(const struct watch *w, uint16_t set, uint16_t src)
{
	size_t k = (size_t)set * PROTO_SOURCES_MAX + src;

	return w->deferred[k] ? w->roots[k] : NULL;
}

/* Is (set, src, rel) at or below a subtree left to the rescan timer? */
static int
unwatched_covers(const struct watch *w, uint16_t set, uint16_t src,
                 const char *rel)
{
	size_t i;

	for (i = 0; i < w->n_unwatched; i++) {
		const struct proto_scope *u = &w->unwatched[i];

		if (u->recursive == set && u->src == src &&
		    (strcmp(u->path, rel) == 0 ||
		     proto_path_under(u->path, rel)))
			return 1;
	}
	return 0;
}

int
watch_dir_add(struct watch *w, uint16_t set, uint16_t src, const char *rel)
{
	const char *root = w->roots[(size_t)set * PROTO_SOURCES_MAX + src];
	struct target t = {set, src, 0, (char *)rel};
	char abs[PATH_MAX];
	int wd = -1, rc = HS_OK;

	if (root == NULL ||
	    snprintf(abs, sizeof(abs), "%s%s%s", root, rel[0] ? "/" : "",
	             rel) >= (int)sizeof(abs))
		return HS_OK; /* as watch_tree: too long, left unwatched */
	if (!__atomic_load_n(&w->at_limit, __ATOMIC_RELAXED)) {
		wd = inotify_add_watch(w->fd, abs, WATCH_EVENTS | IN_ONLYDIR);
		if (wd < 0 && errno != ENOSPC)
			return errno == ENOENT || errno == ENOTDIR ? HS_OK
			                                           : -errno;
		if (wd < 0)
			__atomic_store_n(&w->at_limit, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&w->mu);
	if (wd >= 0)
		rc = slot_add(w, wd, &t);
	else if (!unwatched_covers(w, set, src, rel)) {
		/* The limit: this subtree (not each directory in it) polled. */
		limit_warn(w, abs);
		unwatched_add(w, set, src, rel);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void
watch_deferred_done(struct watch *w, uint16_t set, uint16_t src, int walked)
{
	size_t k = (size_t)set * PROTO_SOURCES_MAX + src;

	if (!w->deferred[k])
		return;
	w->deferred[k] = 0;
	/* Not walked to the end: the classic walk adds what is missing. */
	if (!walked)
		watch_tree(w, set, src, w->roots[k], "", 0);
}

void
watch_ready(struct watch *w)
{
	size_t i, j;

	for (i = 0; i < w->conf->n_sets; i++)
		for (j = 0; j < w->conf->sets[i].sources.n; j++)
			watch_deferred_done(w, (uint16_t)i, (uint16_t)j, 0);
	hs_log_info("watch: %zu directories watched, %zu subtrees polled",
	            w->n_watches, w->n_unwatched);
}

void
watch_free(struct watch *w)
{
	size_t i;

	if (w == NULL)
		return;
	for (i = 0; i < w->n_slots; i++)
		slot_clear(w, (int)i);
	free(w->slots);
	for (i = 0; w->dirty != NULL && i < w->conf->n_sets; i++) {
		proto_scope_free(w->dirty[i].v, w->dirty[i].n);
		renames_free(&w->dirty[i]);
	}
	free(w->dirty);
	for (i = 0; i < w->n_delayed; i++)
		free(w->delayed[i].path);
	free(w->delayed);
	proto_scope_free(w->unwatched, w->n_unwatched);
	for (i = 0; w->roots != NULL && i < w->conf->n_sets * PROTO_SOURCES_MAX;
	     i++)
		free(w->roots[i]);
	free(w->roots);
	free(w->deferred);
	if (w->fd >= 0)
		close(w->fd);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int
watch_fd(const struct watch *w)
{
	return w->fd;
}

size_t
watch_count(const struct watch *w)
{
	return w->n_watches;
}

size_t
watch_unwatched(const struct watch *w)
{
	return w->n_unwatched;
}

static void
on_dir_event(struct watch *w, const struct target *t,
             const struct inotify_event *ev)
{
	const struct hs_pathset *ps = &w->conf->sets[t->set];
	char rel[PROTO_PATH_MAX + 1], abs[PATH_MAX + PROTO_PATH_MAX + 2];
	const char *root = *root_slot(w, t->set, t->src);

	if (ev->len == 0 || ev->name[0] == '\0') {
		/* The directory itself: its root vanishing means a full look.
		 */
		if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) &&
		    t->rel[0] == '\0')
			w->dirty[t->set].full = 1;
		else if (ev->mask & IN_ATTRIB)
			dirty_add(w, t->set, t->src, t->rel, 0);
		return;
	}
	if (snprintf(rel, sizeof(rel), "%s%s%s", t->rel, t->rel[0] ? "/" : "",
	             ev->name) >= (int)sizeof(rel))
		return;
	if (scan_excluded(ps, rel))
		return;
	if (snprintf(abs, sizeof(abs), "%s/%s", root, rel) >= (int)sizeof(abs))
		return;
	if ((ev->mask & IN_ISDIR) && (ev->mask & IN_MOVED_TO) &&
	    ev->cookie != 0 && ev->cookie == w->mv_cookie &&
	    w->mv_set == t->set && w->mv_src == t->src)
		rename_add(w, t->set, t->src, w->mv_from, rel);
	if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
		watch_tree(w, t->set, t->src, abs, rel, 0);
		dirty_change(w, t->set, t->src, rel, 1);
		return;
	}
	if (ev->mask & IN_MODIFY) {
		delay_add(w, t->set, t->src, rel);
		return;
	}
	if (ev->mask & IN_CREATE) {
		struct stat st;

		/* An empty new file: wait for it to be written and closed. */
		if (lstat(abs, &st) == 0 && S_ISREG(st.st_mode)) {
			delay_add(w, t->set, t->src, rel);
			return;
		}
	}
	if (ev->mask & IN_MOVED_FROM) {
		w->mv_cookie = ev->cookie;
		w->mv_set = t->set;
		w->mv_src = t->src;
		snprintf(w->mv_from, sizeof(w->mv_from), "%s", rel);
	} else if ((ev->mask & IN_MOVED_TO) && ev->cookie != 0 &&
	           ev->cookie == w->mv_cookie && w->mv_set == t->set &&
	           w->mv_src == t->src)
		rename_add(w, t->set, t->src, w->mv_from, rel);
	if (ev->mask & IN_CLOSE_WRITE)
		delay_drop(w, t->set, t->src, rel);
	/* A directory moved away: its copy and all below it must go. */
	dirty_change(w, t->set, t->src, rel,
	             (ev->mask & IN_ISDIR) &&
	                 (ev->mask & (IN_MOVED_FROM | IN_DELETE)));
}

static void
on_file_event(struct watch *w, const struct target *t,
              const struct inotify_event *ev)
{
	if (ev->len == 0 || strcmp(ev->name, t->rel) != 0)
		return;
	if (ev->mask & (IN_MODIFY | IN_CREATE)) {
		delay_add(w, t->set, t->src, "");
		return;
	}
	if (ev->mask & IN_CLOSE_WRITE)
		delay_drop(w, t->set, t->src, "");
	dirty_change(w, t->set, t->src, "", 0);
}

static void
on_event(struct watch *w, const struct inotify_event *ev)
{
	struct wslot *s;
	size_t i;

	if (ev->mask & IN_Q_OVERFLOW) {
		hs_log_warnx("watch: inotify queue overflowed; watching every "
		             "tree again and reconciling every set");
		for (i = 0; i < w->conf->n_sets; i++)
			w->dirty[i].full = 1;
		watch_rewatch(w);
		return;
	}
	if (ev->wd < 0 || (size_t)ev->wd >= w->n_slots)
		return;
	/*
	 * A new directory's watches (on_dir_event -> watch_tree) grow the
	 * slot tables: look the slot up again each time and hand on a copy
	 * of its target (the strings it points to stay until slot_clear).
	 */
	for (i = 0; i < w->slots[ev->wd].n; i++) {
		struct target t;

		s = &w->slots[ev->wd];
		t = s->t[i];
		if (ev->mask & IN_UNMOUNT)
			w->dirty[t.set].full = 1;
		else if (t.is_file)
			on_file_event(w, &t, ev);
		else
			on_dir_event(w, &t, ev);
	}
	if (ev->mask & IN_IGNORED)
		slot_clear(w, ev->wd);
}

int
watch_drain(struct watch *w)
{
	char buf[64 * 1024]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	uint64_t now = hs_now_mono_ns();
	size_t i;

	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		char *p;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (p = buf; p < buf + n;) {
			const struct inotify_event *ev = (void *)p;

			on_event(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	/* Files left open past their wait go now. */
	for (i = 0; i < w->n_delayed;) {
		struct delayed *d = &w->delayed[i];

		if (d->due_ns <= now) {
			dirty_change(w, d->set, d->src, d->path, 0);
			free(d->path);
			*d = w->delayed[--w->n_delayed];
		} else
			i++;
	}
	return HS_OK;
}

uint64_t
watch_next_due(const struct watch *w)
{
	uint64_t due = UINT64_MAX;
	size_t i;

	for (i = 0; i < w->n_delayed; i++)
		if (w->delayed[i].due_ns < due)
			due = w->delayed[i].due_ns;
	return due;
}

/* Is the unwatched subtree u no longer a directory on disk? */
static int
unwatched_gone(struct watch *w, const struct proto_scope *u)
{
	const char *root = *root_slot(w, u->recursive, u->src);
	char abs[PATH_MAX];
	struct stat st;

	if (root == NULL || u->path[0] == '\0' ||
	    snprintf(abs, sizeof(abs), "%s/%s", root, u->path) >=
	        (int)sizeof(abs))
		return 0;
	return lstat(abs, &st) < 0 ? errno == ENOENT || errno == ENOTDIR
	                           : !S_ISDIR(st.st_mode);
}

/*
 * Try for the watches of unwatched subtree u again; 1 when all of it got
 * them, as far as the limit allows (what below it still finds no room
 * joins the list again, quietly: each subtree had its line when it was
 * first left unwatched).  0 when its top got none or the walk failed:
 * the caller keeps it on the list (a subtree both watched in part and
 * rescanned costs a rescan, never a change).
 */
static int
unwatched_retry(struct watch *w, const struct proto_scope *u)
{
	char abs[PATH_MAX];
	size_t depth, i;
	struct stat st;
	int rc;

	w->strict = 1;
	if (u->path[0] == '\0') {
		/* A whole source, as at the start (a file's directory too). */
		char **root = root_slot(w, u->recursive, u->src);

		free(*root);
		*root = NULL;
		rc = watch_source(w, u->recursive, u->src, 0);
	} else {
		const char *root = *root_slot(w, u->recursive, u->src);

		rc = HS_ENOTFOUND;
		if (root != NULL &&
		    snprintf(abs, sizeof(abs), "%s/%s", root, u->path) <
		        (int)sizeof(abs) &&
		    lstat(abs, &st) == 0 && S_ISDIR(st.st_mode)) {
			for (depth = 1, i = 0; u->path[i] != '\0'; i++)
				depth += u->path[i] == '/';
			rc = watch_tree(w, u->recursive, u->src, abs, u->path,
			                depth);
		}
	}
	w->strict = 0;
	/* Its top is on the list again when the limit still bites there. */
	return rc == HS_OK &&
	       !unwatched_covers(w, u->recursive, u->src, u->path);
}

/*
 * Each rescan first asks again for the watches of every unwatched subtree:
 * the limit may have been raised (sysctl) or watches freed since.  One
 * that gets them leaves the list, and once the list is empty nothing is
 * polled and status stops warning.  Each subtree is rescanned this once
 * either way, for what changed while nothing watched it.  Called from the
 * daemon's loop once the start's walker threads are joined: the list and
 * the slots need no lock here, as in watch_rewatch.
 */
void
watch_rescan_unwatched(struct watch *w)
{
	struct proto_scope *old = w->unwatched;
	size_t n_old = w->n_unwatched, i, rewatched = 0;

	w->unwatched = NULL;
	w->n_unwatched = 0;
	w->limit_quiet = 1;
	__atomic_store_n(&w->at_limit, 0, __ATOMIC_RELAXED);
	for (i = 0; i < n_old; i++) {
		struct proto_scope *u = &old[i];

		dirty_add(w, u->recursive, u->src, u->path, 1);
		/*
		 * A subtree that is gone gets this last rescan (its deletion)
		 * and is polled no more: one made again in its place comes
		 * back through its parent's watch, like any new directory.
		 */
		if (!unwatched_gone(w, u)) {
			if (unwatched_retry(w, u))
				rewatched++;
			else if (!unwatched_covers(w, u->recursive, u->src,
			                           u->path))
				unwatched_add(w, u->recursive, u->src, u->path);
		}
		free(u->path);
	}
	free(old);
	w->limit_quiet = 0;
	if (w->n_unwatched > 0)
		__atomic_store_n(&w->at_limit, 1, __ATOMIC_RELAXED);
	else
		w->limit_lines = 0; /* the next time the limit bites, say so */
	if (rewatched > 0)
		hs_log_info("watch: %zu subtrees without inotify watches got "
		            "them (the watch limit allows them now); %zu "
		            "still polled",
		            rewatched, w->n_unwatched);
}

int
watch_take(struct watch *w, uint16_t set, struct proto_scope **scope, size_t *n,
           int *full)
{
	struct dirty_set *d = &w->dirty[set];
	size_t k;

	w->taken_first_ns = d->first_ns;
	*full = d->full;
	*scope = NULL;
	*n = 0;
	/* Renames go to watch_take_renames before this; what is left goes. */
	renames_free(d);
	if (d->full) {
		proto_scope_free(d->v, d->n);
		memset(d, 0, sizeof(*d));
		return HS_OK;
	}
	if (d->n == 0)
		return HS_OK;
	k = d->n;
	proto_scope_normalize(d->v, &k);
	*scope = d->v;
	*n = k;
	memset(d, 0, sizeof(*d));
	return HS_OK;
}

int
watch_pending(const struct watch *w, uint16_t set)
{
	return w->dirty[set].full || w->dirty[set].n > 0;
}

int
watch_delayed(const struct watch *w, uint16_t set)
{
	size_t i;

	for (i = 0; i < w->n_delayed; i++)
		if (w->delayed[i].set == set)
			return 1;
	return 0;
}

int
watch_unwatched_in(const struct watch *w, uint16_t set)
{
	size_t i;

	for (i = 0; i < w->n_unwatched; i++)
		if (w->unwatched[i].recursive ==
		    set) /* set, see unwatched_add */
			return 1;
	return 0;
}

size_t
watch_unread(const struct watch *w)
{
	int n = 0;

	/* Unknown counts as unread: the caller must not claim quiet. */
	if (ioctl(w->fd, FIONREAD, &n) < 0)
		return 1;
	return n > 0 ? (size_t)n : 0;
}

uint64_t
watch_taken_since(const struct watch *w)
{
	return w->taken_first_ns;
}

void
watch_pending_stats(const struct watch *w, uint64_t *oldest_ns, uint64_t *paths)
{
	size_t i;

	*oldest_ns = 0;
	*paths = 0;
	for (i = 0; i < w->conf->n_sets; i++) {
		const struct dirty_set *d = &w->dirty[i];

		if (d->n == 0 && !d->full)
			continue;
		*paths += d->n + (d->full ? 1 : 0);
		if (d->first_ns != 0 &&
		    (*oldest_ns == 0 || d->first_ns < *oldest_ns))
			*oldest_ns = d->first_ns;
	}
	for (i = 0; i < w->n_delayed; i++) {
		(*paths)++;
		if (*oldest_ns == 0 || w->delayed[i].first_ns < *oldest_ns)
			*oldest_ns = w->delayed[i].first_ns;
	}
}

size_t
watch_take_renames(struct watch *w, uint16_t set, struct proto_wr *out)
{
	struct dirty_set *d = &w->dirty[set];
	size_t i, n = d->n_ren;

	if (d->full || n == 0) {
		renames_free(d);
		return 0;
	}
	proto_put_u32(out, (uint32_t)n);
	for (i = 0; i < n; i++) {
		proto_put_u16(out, d->ren[i].src);
		proto_put_str(out, d->ren[i].from);
		proto_put_str(out, d->ren[i].to);
	}
	renames_free(d);
	return n;
}

/* ------------------------------------------------------- express lane */

/* Is (src, path) a rename's end, or below a recursive or renamed entry? */
static int
express_blocked(const struct dirty_set *d, uint16_t src, const char *path)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct proto_scope *e = &d->v[i];

		if (e->recursive && e->src == src &&
		    (strcmp(e->path, path) == 0 ||
		     proto_path_under(e->path, path)))
			return 1;
	}
	for (i = 0; i < d->n_ren; i++) {
		const struct wrename *r = &d->ren[i];

		if (r->src != src)
			continue;
		if (strcmp(r->from, path) == 0 ||
		    proto_path_under(r->from, path) ||
		    strcmp(r->to, path) == 0 || proto_path_under(r->to, path))
			return 1;
	}
	return 0;
}

int
watch_take_express(struct watch *w, uint16_t set, size_t max,
                   struct proto_scope **scope, size_t *n)
{
	struct dirty_set *d = &w->dirty[set];
	struct proto_scope *v;
	size_t i, k = 0;

	*scope = NULL;
	*n = 0;
	if (d->full || d->xp_next >= d->n || max == 0)
		return HS_OK;
	if ((v = calloc(max, sizeof(*v))) == NULL)
		return -ENOMEM;
	/*
	 * Look at each new entry once; a blocked one stays for the bulk
	 * lane.  The recursive and rename lists are walked per entry, but
	 * at most `max` entries are taken per call.
	 */
	for (; d->xp_next < d->n && k < max; d->xp_next++) {
		const struct proto_scope *e = &d->v[d->xp_next];

		if (e->recursive || express_blocked(d, e->src, e->path))
			continue;
		for (i = 0; i < k; i++)
			if (v[i].src == e->src &&
			    strcmp(v[i].path, e->path) == 0)
				break;
		if (i < k)
			continue;
		v[k].src = e->src;
		v[k].recursive = 0;
		v[k].path = hs_xstrdup(e->path);
		k++;
	}
	if (k == 0) {
		free(v);
		return HS_OK;
	}
	/* The order watch_take gives: a directory before what is in it. */
	proto_scope_normalize(v, &k);
	*scope = v;
	*n = k;
	return HS_OK;
}

int
watch_express_pending(const struct watch *w, uint16_t set)
{
	const struct dirty_set *d = &w->dirty[set];

	return !d->full && d->xp_next < d->n;
}
