/*
 * aside.c - rejoin's aside step: a former primary's own changes that its
 * standby never acknowledged are moved into state_dir/rejoin-EPOCH/
 * before the new primary's tree replaces them, so none is lost silently.
 *
 * Which: every entry but a directory whose stat is not the fingerprint
 * the index recorded when the standby acknowledged it (or that has no
 * record: made since, or its copy unknown), and every entry named by a
 * journal entry above the acknowledged sequence (a run cut short).  A
 * journal entry that stands for a whole set names nothing more than the
 * stat comparison finds: its run had not updated a record yet.  The
 * comparison is the one the primary makes at a restart (primary/
 * sendidx.c), with the same scanner, so an unchanged file is never moved.
 * A file this node holds as a primary wrote it here while it was that
 * primary's standby, untouched since, is not its own either.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta.h"
#include "fo_int.h"
#include "idx.h"
#include "proto.h"
#include "tree.h"

#define ASIDE_LIST "LIST"

struct aside {
	const struct hs_conf *conf;
	struct idx *x;
	char dir[PATH_MAX]; /* state_dir/rejoin-EPOCH */
	size_t moved;
	/* The unacknowledged journal's paths of the set being looked at. */
	struct proto_scope *scope;
	size_t n_scope;
	size_t cap_scope;
	const char *set;
};

/* ------------------------------------------------------ which entries */

/* The fingerprint the primary records (primary/sendidx.c). */
static void
fingerprint(const struct scan_entry *e, struct idx_file *f)
{
	memset(f, 0, sizeof(*f));
	f->type = e->type;
	f->mode = e->mode;
	f->uid = e->uid;
	f->gid = e->gid;
	f->size = e->type == PROTO_E_FILE ? e->size : 0;
	f->ino = e->ino;
	f->mtime_sec = e->mtime_sec;
	f->mtime_nsec = e->mtime_nsec;
	f->ctime_sec = e->ctime_sec;
	f->ctime_nsec = e->ctime_nsec;
}

static int
journal_one(void *arg, uint64_t seq, const void *entry, size_t len)
{
	struct aside *a = arg;
	struct proto_jentry e;
	struct proto_scope *v = NULL;
	size_t n = 0, i;
	int rc = 0;

	(void)seq;
	if (proto_jentry_decode(entry, len, &e) < 0 ||
	    strcmp(e.set, a->set) != 0)
		return 0;
	if (proto_jentry_scope(&e, &v, &n) < 0)
		return 0; /* unreadable: the stat comparison still holds */
	for (i = 0; i < n && rc == 0; i++)
		rc = proto_scope_push(&a->scope, &a->n_scope, &a->cap_scope,
		                      v[i].src, v[i].path, v[i].recursive);
	proto_scope_free(v, n);
	return rc;
}

static int
journal_load(struct aside *a, const char *set)
{
	uint8_t id[IDX_ID_LEN];
	uint64_t acked;
	int rc;

	proto_scope_free(a->scope, a->n_scope);
	a->scope = NULL;
	a->n_scope = a->cap_scope = 0;
	a->set = set;
	if ((rc = idx_journal_state(a->x, id, &acked)) < 0)
		return rc;
	return idx_journal_walk(a->x, acked, journal_one, a);
}

static int
in_journal(const struct aside *a, uint16_t src, const char *path)
{
	size_t i;

	for (i = 0; i < a->n_scope; i++) {
		const struct proto_scope *s = &a->scope[i];

		if (s->src != src)
			continue;
		if (strcmp(s->path, path) == 0 ||
		    (s->recursive && proto_path_under(s->path, path)))
			return 1;
	}
	return 0;
}

/*
 * Is regular file or symlink e the version a primary put here while
 * this node was its standby, unchanged since (the standby's record of
 * what it wrote, standby/apply_rec.c)?  Then it is that primary's, not this
 * node's own change: with two nodes, the peer holds it, or a newer version. The
 * primary's records of such a file are older than it (a run that
 * changed nothing on the standby records nothing).
 */
static int
written_here(const struct aside *a, const struct scan_entry *e)
{
	uint8_t key[BLK_KEY_CAP];
	struct idx_written w;
	size_t klen;

	if ((e->type != PROTO_E_FILE && e->type != PROTO_E_SYMLINK) ||
	    blk_key(a->set, e->src, e->path, key, sizeof(key), &klen) < 0 ||
	    idx_written_get(a->x, key, klen, &w) != HS_OK)
		return 0;
	/* A symlink's scan entry has no size: its inode and ctime tell. */
	return (e->type != PROTO_E_FILE || w.size == e->size) &&
	       w.mtime_sec == e->mtime_sec && w.mtime_nsec == e->mtime_nsec &&
	       w.ctime_sec == e->ctime_sec && w.ctime_nsec == e->ctime_nsec &&
	       w.ino == e->ino && w.dev == e->dev;
}

/* Must entry e of source skey go aside?  1, 0, or < 0. */
static int
unacked(const struct aside *a, const uint8_t skey[8],
        const struct scan_entry *e)
{
	struct idx_file rec, now;
	int rc;

	if (e->type == PROTO_E_DIR)
		return 0;
	if (!in_journal(a, e->src, e->path)) {
		rc = idx_file_get(a->x, skey, e->path, &rec);
		if (rc < 0 && rc != HS_ENOTFOUND)
			return rc;
		fingerprint(e, &now);
		if (rc == HS_OK && memcmp(&rec, &now, sizeof(rec)) == 0)
			return 0;
	}
	return !written_here(a, e);
}

/* -------------------------------------------------------------- moving */

/* Make the directories above `path` below a->dir (0700: state_dir's). */
static int
mkdir_parents(const struct aside *a, char *path)
{
	char *p = path + strlen(a->dir);

	if (mkdir(a->dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	while ((p = strchr(p + 1, '/')) != NULL) {
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int rc = -errno;

			*p = '/';
			return rc;
		}
		*p = '/';
	}
	return HS_OK;
}

static int
copy_file(const char *from, const char *tmp, const struct stat *st)
{
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	int in, out, rc = HS_OK;

	if ((in = open(from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	           0600);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	if ((rc = fs_copy_fd(in, out, (uint64_t)st->st_size)) == HS_OK &&
	    (fchown(out, st->st_uid, st->st_gid) < 0 ||
	     fchmod(out, st->st_mode & 07777) < 0 || futimens(out, ts) < 0 ||
	     fsync(out) < 0))
		rc = -errno;
	close(in);
	close(out);
	return rc;
}

/*
 * rename(2) that never replaces `to`: a copy set aside earlier at that
 * path is kept (-EEXIST).  A filesystem without RENAME_NOREPLACE gets
 * link(2), which does not replace either (aside moves no directory).
 */
static int
rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return HS_OK;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (link(from, to) < 0)
		return -errno;
	return unlink(from) < 0 ? -errno : HS_OK;
}

/* Another filesystem: a copy that keeps mode, owner and times, then the
 * original goes.  A crash between leaves both, and a resume copies
 * again. */
static int
move_across(const char *from, const char *to)
{
	struct timespec ts[2];
	char tmp[PATH_MAX + 32], link[PATH_MAX];
	struct stat st;
	ssize_t n;
	int rc = HS_OK;

	if (lstat(from, &st) < 0)
		return -errno;
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.hamnsync-tmp", to) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp);
	if (S_ISREG(st.st_mode))
		rc = copy_file(from, tmp, &st);
	else if (S_ISLNK(st.st_mode)) {
		if ((n = readlink(from, link, sizeof(link) - 1)) < 0)
			return -errno;
		link[n] = '\0';
		if (symlink(link, tmp) < 0)
			return -errno;
	} else if (mknod(tmp, st.st_mode, st.st_rdev) < 0)
		return -errno;
	if (rc == HS_OK && !S_ISREG(st.st_mode) &&
	    (lchown(tmp, st.st_uid, st.st_gid) < 0 ||
	     utimensat(AT_FDCWD, tmp, ts, AT_SYMLINK_NOFOLLOW) < 0))
		rc = -errno;
	if (rc == HS_OK)
		rc = rename_noreplace(tmp, to);
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	return unlink(from) < 0 && errno != ENOENT ? -errno : HS_OK;
}

/* The most copies of one path kept in one rejoin-EPOCH folder. */
#define ASIDE_SUFFIX_MAX 1000

/* Move `from` to `to`, else to the first free `to`.N. */
static int
move_free(const char *from, char *to, size_t tolen)
{
	size_t len = strlen(to);
	unsigned n;
	int rc = -EEXIST;

	for (n = 1; rc == -EEXIST && n <= ASIDE_SUFFIX_MAX; n++) {
		rc = rename_noreplace(from, to);
		if (rc == -EXDEV)
			rc = move_across(from, to);
		if (rc == -EEXIST && (size_t)snprintf(to + len, tolen - len,
		                                      ".%u", n) >= tolen - len)
			return -ENAMETOOLONG;
	}
	return rc;
}

static int
move_one(struct aside *a, const char *from, const char *abs, char *why,
         size_t whylen)
{
	char to[PATH_MAX];
	int rc;

	/* Room for a ".N" suffix (move_free). */
	if ((size_t)snprintf(to, sizeof(to), "%s%s", a->dir, abs) >=
	    sizeof(to) - 8) {
		snprintf(why, whylen, "%.200s%.600s: %s", a->dir, abs,
		         hs_strerror(-ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	if ((rc = mkdir_parents(a, to)) < 0) {
		snprintf(why, whylen, "%.800s: its folder: %s", to,
		         hs_strerror(rc));
		return rc;
	}
	rc = move_free(from, to, sizeof(to));
	if (rc == -ENOENT)
		return HS_OK; /* gone meanwhile: nothing left to keep */
	if (rc < 0) {
		snprintf(why, whylen, "moving %.600s to %.600s: %s", from, to,
		         hs_strerror(rc));
		return rc;
	}
	a->moved++;
	return HS_OK;
}

/* ------------------------------------------------------------- sources */

/*
 * Where this node holds a source: its local path (target_root + it,
 * struct hs_pathset), a symlink to a directory followed as the primary
 * follows it.
 */
static int
source_base(const char *joined, char *out, size_t len)
{
	struct stat lst, st;

	if (lstat(joined, &lst) == 0 && S_ISLNK(lst.st_mode) &&
	    stat(joined, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (realpath(joined, out) == NULL)
			return -errno;
		return HS_OK;
	}
	if ((size_t)snprintf(out, len, "%s", joined) >= len)
		return -ENAMETOOLONG;
	return HS_OK;
}

/* syncfs(2) of the filesystem that holds directory `dirfd` (O_PATH). */
static int
sync_fs_at(int dirfd)
{
	int fd, rc = HS_OK;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (syncfs(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int
source_aside(struct aside *a, const struct hs_pathset *set, uint16_t i,
             char *why, size_t whylen)
{
	const char *src = set->sources.v[i];
	char base[PATH_MAX], from[PATH_MAX], abs[PATH_MAX], *slash;
	struct scan_list l;
	uint8_t skey[8];
	size_t k, moved_before = a->moved;
	int anchor, rc;

	if ((rc = source_base(set->local.v[i], base, sizeof(base))) < 0) {
		snprintf(why, whylen, "source %.600s: %s", src,
		         hs_strerror(rc));
		return rc;
	}
	slash = strrchr(base, '/');
	*slash = '\0';
	anchor = open(base[0] ? base : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	*slash = '/';
	if (anchor < 0) {
		/* No copy of this source here: nothing of it to keep. */
		if (errno == ENOENT)
			return HS_OK;
		rc = -errno;
		snprintf(why, whylen, "source %.600s: its folder: %s", base,
		         hs_strerror(rc));
		return rc;
	}
	memset(&l, 0, sizeof(l));
	rc = scan_tree_stat(anchor, slash + 1, i, set, &l);
	if (rc < 0) {
		snprintf(why, whylen, "listing %.600s: %s", base,
		         hs_strerror(rc));
		goto out;
	}
	idx_source_key(set->name, src, skey);
	for (k = 0; k < l.n && rc >= 0; k++) {
		const struct scan_entry *e = &l.v[k];
		const char *sep = e->path[0] ? "/" : "";

		if ((rc = unacked(a, skey, e)) <= 0) {
			if (rc < 0)
				snprintf(why, whylen, "%s/index: %s",
				         a->conf->state_dir, hs_strerror(rc));
			continue;
		}
		if ((size_t)snprintf(from, sizeof(from), "%s%s%s", base, sep,
		                     e->path) >= sizeof(from) ||
		    (size_t)snprintf(abs, sizeof(abs), "%s%s%s", src, sep,
		                     e->path) >= sizeof(abs)) {
			rc = -ENAMETOOLONG;
			snprintf(why, whylen, "%.600s/%.600s: %s", src, e->path,
			         hs_strerror(rc));
			break;
		}
		rc = move_one(a, from, abs, why, whylen);
	}
	/* Moved is durable before the new primary may write these paths:
	 * this source's filesystem, when this source had moves. */
	if (rc >= 0 && a->moved > moved_before && (rc = sync_fs_at(anchor)) < 0)
		snprintf(why, whylen, "%.600s: syncfs: %s", base,
		         hs_strerror(rc));
out:
	scan_list_free(&l);
	close(anchor);
	return rc < 0 ? rc : HS_OK;
}

/* ---------------------------------------------------------------- LIST */

struct list {
	const char *dir;
	size_t dirlen;
	char **v;
	size_t n;
	int rc;
};

static struct list *list_cur; /* nftw has no argument */

static int
list_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	struct list *l = list_cur;
	const char *rel = path + l->dirlen;
	char **nv;

	(void)st;
	if (flag == FTW_D || flag == FTW_DP || ftw->level == 0)
		return 0;
	if (ftw->level == 1 && (strcmp(rel, "/" ASIDE_LIST) == 0 ||
	                        strcmp(rel, "/" ASIDE_LIST ".tmp") == 0))
		return 0;
	if ((nv = reallocarray(l->v, l->n + 1, sizeof(*nv))) == NULL) {
		l->rc = -ENOMEM;
		return 1;
	}
	l->v = nv;
	l->v[l->n++] = hs_xstrdup(rel);
	return 0;
}

/*
 * Everything under the folder (this run's moves and an earlier run's),
 * one escaped path a line, into LIST and on `out`.
 */
static int
list_write(struct aside *a, FILE *out, char *why, size_t whylen)
{
	struct list l = {a->dir, strlen(a->dir), NULL, 0, HS_OK};
	char path[PATH_MAX + 16], tmp[PATH_MAX + 32], esc[PATH_MAX * 4];
	FILE *f;
	size_t i;
	int rc;

	list_cur = &l;
	if (nftw(a->dir, list_one, 16, FTW_PHYS) < 0 && errno != ENOENT)
		l.rc = -errno;
	list_cur = NULL;
	if ((rc = l.rc) < 0) {
		snprintf(why, whylen, "listing %.600s: %s", a->dir,
		         hs_strerror(rc));
		goto out;
	}
	if (l.n == 0)
		goto out;
	qsort(l.v, l.n, sizeof(*l.v), hs_strp_cmp);
	snprintf(path, sizeof(path), "%s/%s", a->dir, ASIDE_LIST);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "we")) == NULL) {
		rc = -errno;
		snprintf(why, whylen, "%.600s: %s", tmp, hs_strerror(rc));
		goto out;
	}
	for (i = 0; i < l.n; i++) {
		hs_escape(l.v[i], esc, sizeof(esc));
		fprintf(f, "%s\n", esc);
		fprintf(out, "rejoin: moved aside: %s\n", esc);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		rc = -errno;
	if (fclose(f) != 0 && rc == HS_OK)
		rc = -errno;
	if (rc == HS_OK && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		snprintf(why, whylen, "%.600s: %s", path, hs_strerror(rc));
	}
out:
	for (i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
	return rc < 0 ? rc : (int)(l.n > INT_MAX ? INT_MAX : l.n);
}

static int
applied_forget(struct idx *x)
{
	uint8_t id[IDX_ID_LEN];

	memset(id, 0, sizeof(id));
	return idx_applied_put(x, id, 0);
}

int
fo_aside(const struct hs_conf *conf, uint64_t epoch, FILE *out, char *done,
         size_t donelen, char *why, size_t whylen)
{
	struct aside a;
	size_t s;
	uint16_t i;
	int rc, fd;

	memset(&a, 0, sizeof(a));
	a.conf = conf;
	if ((size_t)snprintf(a.dir, sizeof(a.dir), "%s/rejoin-%llu",
	                     conf->state_dir,
	                     (unsigned long long)epoch) >= sizeof(a.dir)) {
		snprintf(why, whylen, "%.800s/rejoin-%llu: %s", conf->state_dir,
		         (unsigned long long)epoch, hs_strerror(-ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	if ((rc = idx_open(conf->state_dir, 0, &a.x)) < 0) {
		snprintf(why, whylen, "%s/index: %s", conf->state_dir,
		         hs_strerror(rc));
		return rc;
	}
	for (s = 0; s < conf->n_sets && rc >= 0; s++) {
		const struct hs_pathset *set = &conf->sets[s];

		/* Databases: the database step replaces their snapshots. */
		if (set->db != NULL)
			continue;
		if ((rc = journal_load(&a, set->name)) < 0) {
			snprintf(why, whylen, "%s/index: journal: %s",
			         conf->state_dir, hs_strerror(rc));
			break;
		}
		for (i = 0; i < set->sources.n && rc >= 0; i++)
			rc = source_aside(&a, set, i, why, whylen);
	}
	/*
	 * What this node applied as a standby before (of the same primary,
	 * perhaps) no longer describes its tree: the new primary must
	 * reconcile whole, not trust the runs it saw acknowledged.
	 */
	if (rc >= 0 && (rc = applied_forget(a.x)) < 0)
		snprintf(why, whylen, "%s/index: applied runs: %s",
		         conf->state_dir, hs_strerror(rc));
	proto_scope_free(a.scope, a.n_scope);
	idx_close(a.x);
	if (rc < 0)
		return rc;
	if ((fd = open(a.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (syncfs(fd) < 0) {
			rc = -errno;
			snprintf(why, whylen, "%.800s: syncfs: %s", a.dir,
			         hs_strerror(rc));
		}
		close(fd);
	}
	if (rc < 0 || (rc = list_write(&a, out, why, whylen)) < 0)
		return rc;
	if (rc == 0)
		snprintf(done, donelen, "no change of this node's own to keep");
	else
		snprintf(done, donelen,
		         "%zu moved now, %d kept in %s (listed "
		         "in %s)",
		         a.moved, rc, a.dir, ASIDE_LIST);
	return HS_OK;
}
