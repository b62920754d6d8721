/*
 * sqlite.c - SQLite: xCAT's default database, one file per table under
 * /etc/xcat.  `path` is a database file or a directory of *.sqlite files.
 *
 * A live SQLite file is never copied raw: its -wal or -journal may hold
 * half of a transaction.  The dump uses the online backup API in ONE step,
 * which holds a read transaction for the length of the copy and gives a
 * consistent file; a copy made a few pages at a time restarts on every
 * outside write and never finishes under a busy writer.  In WAL mode that
 * read transaction does not block writers; in rollback mode a writer
 * waits at most the length of one copy.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "dbrepl_int.h"

/*
 * How the dump waits for a busy writer's lock: in rollback mode a writer
 * that commits in a loop frees it only for an instant between commits,
 * which SQLite's own busy handler (sleeps growing to 100 ms) keeps
 * missing.  Short polls catch it; the job's timeout bounds the whole.
 */
#define SQ_BUSY_POLL_US 100
#define SQ_BUSY_POLLS 5000
/* Larger databases get quick_check: integrity_check reads every index. */
#define SQ_QUICK_CHECK_BYTES (256LL * 1024 * 1024)
/*
 * A file written this recently may be written again within the same
 * tick of the file system's coarse clock (a few ms) without its mtime
 * moving: its mark is made unique so the next probe dumps again.
 */
#define SQ_HOT_NS (50ULL * 1000000)
#define SQ_RESTORE_TMP_SUFFIX ".hs-restore"

/* The files of a database: full paths, sorted. */
struct sq_files {
	size_t n;
	char path[PROTO_MANIFEST_FILES_MAX][PATH_MAX];
};

static int
sq_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
sq_path_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* List the database files `path` names (a file, or *.sqlite in a dir). */
static int
sq_list(const char *path, struct sq_files *f, struct dbr_result *res)
{
	struct dirent *de;
	struct stat st;
	DIR *d;

	f->n = 0;
	if (stat(path, &st) < 0)
		return dbr_fail(res, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		snprintf(f->path[0], sizeof(f->path[0]), "%s", path);
		f->n = 1;
		return HS_OK;
	}
	if ((d = opendir(path)) == NULL)
		return dbr_fail(res, -errno, "%s: %s", path, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (fnmatch("*.sqlite", de->d_name, FNM_PERIOD) != 0)
			continue;
		if (f->n == PROTO_MANIFEST_FILES_MAX) {
			closedir(d);
			return dbr_fail(res, HS_ELIMIT,
			                "%s: more than %d database files", path,
			                PROTO_MANIFEST_FILES_MAX);
		}
		snprintf(f->path[f->n], sizeof(f->path[0]), "%s/%s", path,
		         de->d_name);
		if (stat(f->path[f->n], &st) == 0 && S_ISREG(st.st_mode))
			f->n++;
	}
	closedir(d);
	if (f->n == 0)
		return dbr_fail(res, -ENOENT, "%s: no *.sqlite file", path);
	qsort(f->path, f->n, sizeof(f->path[0]), sq_path_cmp);
	return HS_OK;
}

/*
 * target_root + path, with one '/' between: this node's copy of the
 * database in both roles, so a promoted standby dumps the one it restored.
 * 0 when it fits in buf, -ENAMETOOLONG when not.
 */
static int
sq_target(const struct dbr_db *d, char *buf, size_t len)
{
	const char *root =
	    d->conf->target_root != NULL ? d->conf->target_root : "/";
	size_t rl = strlen(root);

	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	if ((size_t)snprintf(buf, len, "%.*s%s", (int)rl, root, d->db->path) >=
	    len)
		return -ENAMETOOLONG;
	return HS_OK;
}

/* This node's copy of the database into `local`, or a failed `res`. */
static int
sq_local(const struct dbr_db *d, char *local, size_t len,
         struct dbr_result *res)
{
	if (sq_target(d, local, len) < 0)
		return dbr_fail(res, -ENAMETOOLONG,
		                "%s: target_root + path is too long",
		                d->db->path);
	return HS_OK;
}

/* ---- mark ---------------------------------------------------------------- */

static uint64_t
sq_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ULL + (uint64_t)ts->tv_nsec;
}

/*
 * Feed one file's identity and times into the hash; is it hot?  An empty
 * -wal counts as none: a reader that opens a WAL database creates one,
 * and a read must not cost a dump.
 */
static int
sq_mark_file(EVP_MD_CTX *ctx, const char *path, int is_wal, uint64_t now,
             int *hot)
{
	uint64_t v[5];
	struct stat st;

	if (stat(path, &st) < 0)
		return errno == ENOENT ? HS_OK : -errno;
	if (is_wal && st.st_size == 0)
		return HS_OK;
	v[0] = (uint64_t)st.st_dev;
	v[1] = (uint64_t)st.st_ino;
	v[2] = (uint64_t)st.st_size;
	v[3] = sq_ns(&st.st_mtim);
	v[4] = sq_ns(&st.st_ctim);
	if (now < v[3] + SQ_HOT_NS || now < v[4] + SQ_HOT_NS)
		*hot = 1;
	EVP_DigestUpdate(ctx, path, strlen(path) + 1);
	EVP_DigestUpdate(ctx, v, sizeof(v));
	return HS_OK;
}

static void
sq_mark(const struct dbr_db *d, struct dbr_result *res)
{
	static struct sq_files f;
	char local[PATH_MAX], wal[PATH_MAX + 8];
	uint8_t md[32];
	struct timespec now;
	EVP_MD_CTX *ctx;
	size_t i;
	int hot = 0, rc = HS_OK;

	if (sq_local(d, local, sizeof(local), res) < 0 ||
	    sq_list(local, &f, res) < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		dbr_fail(res, HS_ECODEC, "cannot hash the mark");
		return;
	}
	for (i = 0; i < f.n && rc == HS_OK; i++) {
		rc = sq_mark_file(ctx, f.path[i], 0, sq_ns(&now), &hot);
		snprintf(wal, sizeof(wal), "%s-wal", f.path[i]);
		if (rc == HS_OK)
			rc = sq_mark_file(ctx, wal, 1, sq_ns(&now), &hot);
	}
	EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	if (rc < 0) {
		dbr_fail(res, rc, "%s: cannot stat: %s", local,
		         hs_strerror(rc));
		return;
	}
	for (i = 0; i < 12; i++)
		snprintf(res->mark + 2 * i, 3, "%02x", md[i]);
	if (hot)
		snprintf(res->mark + 24, sizeof(res->mark) - 24, "+%" PRIu64,
		         sq_ns(&now));
	res->rc = HS_OK;
}

/* ---- dump ---------------------------------------------------------------- */

static int
sq_err(struct dbr_result *res, sqlite3 *db, const char *what, const char *file)
{
	return dbr_fail(res, -EIO, "%s: %s: %s", file, what,
	                db != NULL ? sqlite3_errmsg(db) : "out of memory");
}

/* integrity_check (or quick_check on a large file) of an open database. */
static int
sq_check(sqlite3 *db, const char *file, int64_t size, struct dbr_result *res)
{
	const char *sql = size > SQ_QUICK_CHECK_BYTES
	                      ? "PRAGMA quick_check"
	                      : "PRAGMA integrity_check";
	sqlite3_stmt *st;
	const unsigned char *txt;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sq_err(res, db, "cannot check", file);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return sq_err(res, db, "cannot check", file);
	}
	txt = sqlite3_column_text(st, 0);
	if (txt == NULL || strcmp((const char *)txt, "ok") != 0) {
		dbr_fail(res, -EIO, "%s: fails its integrity check: %.200s",
		         file, txt != NULL ? (const char *)txt : "(null)");
		sqlite3_finalize(st);
		return res->rc;
	}
	sqlite3_finalize(st);
	return HS_OK;
}

static int
sq_busy(void *arg, int count)
{
	struct timespec ts = {0, SQ_BUSY_POLL_US * 1000L};

	(void)arg;
	if (count >= SQ_BUSY_POLLS)
		return 0;
	nanosleep(&ts, NULL);
	return 1;
}

/* Copy src into the new file dst with one backup step. */
static int
sq_backup(sqlite3 *src, sqlite3 *dst, const char *name, struct dbr_result *res)
{
	struct timespec pause = {0, 1000000L};
	sqlite3_backup *b;
	int rc;

	if ((b = sqlite3_backup_init(dst, "main", src, "main")) == NULL)
		return sq_err(res, dst, "cannot start the backup", name);
	/* A busy source is retried; the job's timeout bounds the wait. */
	while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY ||
	       rc == SQLITE_LOCKED)
		nanosleep(&pause, NULL);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE)
		return dbr_fail(res, -EIO, "%s: backup failed: %s", name,
		                sqlite3_errstr(rc));
	return HS_OK;
}

static int
sq_dump_one(const char *src_path, const char *dir, struct dbr_result *res)
{
	char dst_path[PATH_MAX * 2];
	const char *name;
	sqlite3 *src = NULL, *dst = NULL;
	struct stat st;
	int rc = -EIO;

	name = strrchr(src_path, '/') != NULL ? strrchr(src_path, '/') + 1
	                                      : src_path;
	snprintf(dst_path, sizeof(dst_path), "%s/%s", dir, name);
	if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		rc = sq_err(res, src, "cannot open", src_path);
		goto out;
	}
	sqlite3_busy_handler(src, sq_busy, NULL);
	if (sqlite3_open_v2(dst_path, &dst,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                    NULL) != SQLITE_OK) {
		rc = sq_err(res, dst, "cannot create", dst_path);
		goto out;
	}
	if ((rc = sq_backup(src, dst, src_path, res)) < 0)
		goto out;
	sqlite3_close(src);
	src = NULL;
	/*
	 * The copy of a WAL database says WAL in its header: make it a
	 * self-contained file, with no -wal beside it to lose in transit.
	 */
	if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		rc = sq_err(res, dst, "cannot set its journal mode", dst_path);
		goto out;
	}
	if (stat(dst_path, &st) < 0)
		st.st_size = 0;
	rc = sq_check(dst, name, (int64_t)st.st_size, res);
out:
	sqlite3_close(src);
	sqlite3_close(dst);
	return rc;
}

static void
sq_dump(const struct dbr_db *d, const char *dir, struct dbr_result *res)
{
	static struct sq_files f;
	char local[PATH_MAX];
	size_t i;

	if (sq_local(d, local, sizeof(local), res) < 0 ||
	    sq_list(local, &f, res) < 0)
		return;
	for (i = 0; i < f.n; i++) {
		if (sq_dump_one(f.path[i], dir, res) < 0)
			return;
	}
	res->rc = HS_OK;
}

/* ---- restore ------------------------------------------------------------- */

static int
sq_mkdirs(char *path)
{
	char *s;

	for (s = path + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*s = '/';
			return -errno;
		}
		*s = '/';
	}
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return HS_OK;
}

static int
sq_copy_fd(int in, int out)
{
	char buf[64 * 1024];
	ssize_t n;
	int rc;

	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return HS_OK;
		if ((rc = hs_write_all(out, buf, (size_t)n)) < 0)
			return rc;
	}
}

/*
 * Copy snapshot file `name` of `sdirfd` to a temporary file in `tdirfd`
 * (`tmp`), durable and checked by SQLite itself, with the mode and owner
 * of the file it will replace.
 */
static int
sq_stage(int sdirfd, const char *name, int tdirfd, const char *tdir,
         const char *tname, const char *tmp, struct dbr_result *res)
{
	char path[PATH_MAX * 2];
	struct stat old, st;
	sqlite3 *db = NULL;
	int in, out, rc;

	if ((in = openat(sdirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return dbr_fail(res, -errno, "snapshot %s: %s", name,
		                strerror(errno));
	unlinkat(tdirfd, tmp, 0);
	if (fstatat(tdirfd, tname, &old, AT_SYMLINK_NOFOLLOW) < 0)
		old.st_mode = 0;
	out = openat(tdirfd, tmp,
	             O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	             S_ISREG(old.st_mode) ? old.st_mode & 07777 : 0644);
	if (out < 0) {
		rc = dbr_fail(res, -errno, "%s/%s: %s", tdir, tmp,
		              strerror(errno));
		close(in);
		return rc;
	}
	if (S_ISREG(old.st_mode) && fchown(out, old.st_uid, old.st_gid) < 0)
		hs_log_warn("dbrepl: %s/%s: cannot keep its owner", tdir,
		            tname);
	rc = sq_copy_fd(in, out);
	if (rc == HS_OK && fsync(out) < 0)
		rc = -errno;
	if (close(out) < 0 && rc == HS_OK)
		rc = -errno;
	close(in);
	if (rc < 0)
		return dbr_fail(res, rc, "%s/%s: cannot write: %s", tdir, tmp,
		                strerror(-rc));
	snprintf(path, sizeof(path), "%s/%s", tdir, tmp);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		rc = sq_err(res, db, "cannot open the copy", name);
	} else {
		if (stat(path, &st) < 0)
			st.st_size = 0;
		rc = sq_check(db, name, (int64_t)st.st_size, res);
	}
	sqlite3_close(db);
	return rc;
}

/* Swap the staged `tmp` in for `tname`, with no stale journal beside it. */
static int
sq_swap(int tdirfd, const char *tdir, const char *tname, const char *tmp,
        struct dbr_result *res)
{
	static const char *const side[] = {"-wal", "-shm", "-journal"};
	char aux[NAME_MAX + 16];
	size_t i;

	/*
	 * A -wal or hot -journal of the old file would be replayed onto the
	 * new one: they go first (nothing writes the standby's copy).
	 */
	for (i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		snprintf(aux, sizeof(aux), "%s%s", tname, side[i]);
		unlinkat(tdirfd, aux, 0);
	}
	if (renameat(tdirfd, tmp, tdirfd, tname) < 0)
		return dbr_fail(res, -errno, "%s/%s: cannot rename: %s", tdir,
		                tname, strerror(errno));
	return HS_OK;
}

/*
 * Where the files go: `tdir` and, for a single-file database, `tname`
 * (the target's own name); "" for a directory of files.
 */
static void
sq_restore_where(const struct dbr_db *d, const struct proto_manifest *m,
                 char *tdir, size_t tdirlen, char *tname, size_t tnamelen)
{
	char target[PATH_MAX], base[NAME_MAX + 1];
	const char *slash;

	sq_target(d, target, sizeof(target));
	slash = strrchr(d->db->path, '/');
	snprintf(base, sizeof(base), "%s",
	         slash != NULL ? slash + 1 : d->db->path);
	tname[0] = '\0';
	if (m->n == 1 && strcmp(m->files[0].name, base) == 0 &&
	    !sq_is_dir(target)) {
		slash = strrchr(target, '/');
		snprintf(tdir, tdirlen, "%.*s", (int)(slash - target), target);
		if (tdir[0] == '\0')
			snprintf(tdir, tdirlen, "/");
		snprintf(tname, tnamelen, "%s", base);
		return;
	}
	snprintf(tdir, tdirlen, "%s", target);
}

static void
sq_restore(const struct dbr_db *d, const char *dir, struct dbr_result *res)
{
	static struct proto_manifest m;
	char tdir[PATH_MAX], tname[NAME_MAX + 1], why[HS_ERRMSG_MAX];
	char tmp[PROTO_MANIFEST_FILES_MAX][NAME_MAX + 32];
	int sdirfd = -1, tdirfd = -1, rc;
	size_t i, staged = 0;

	if ((sdirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		dbr_fail(res, -errno, "%s: %s", dir, strerror(errno));
		return;
	}
	if ((rc = dbr_manifest_read(sdirfd, &m, why, sizeof(why))) < 0) {
		dbr_fail(res, rc, "%s", why);
		goto out;
	}
	sq_restore_where(d, &m, tdir, sizeof(tdir), tname, sizeof(tname));
	if ((rc = sq_mkdirs(tdir)) < 0 ||
	    (tdirfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		dbr_fail(res, rc < 0 ? rc : -errno, "%s: %s", tdir,
		         strerror(rc < 0 ? -rc : errno));
		goto out;
	}
	/* All files staged and checked first: all or nothing. */
	for (i = 0; i < m.n; i++) {
		const char *name = tname[0] ? tname : m.files[i].name;

		snprintf(tmp[i], sizeof(tmp[i]),
		         ".%.200s" SQ_RESTORE_TMP_SUFFIX, name);
		if (sq_stage(sdirfd, m.files[i].name, tdirfd, tdir, name,
		             tmp[i], res) < 0) {
			staged = i + 1;
			goto out;
		}
		staged = i + 1;
	}
	for (i = 0; i < m.n; i++) {
		const char *name = tname[0] ? tname : m.files[i].name;

		if (sq_swap(tdirfd, tdir, name, tmp[i], res) < 0)
			goto out;
	}
	staged = 0;
	if (fsync(tdirfd) < 0) {
		dbr_fail(res, -errno, "%s: cannot fsync: %s", tdir,
		         strerror(errno));
		goto out;
	}
	res->rc = HS_OK;
out:
	for (i = 0; i < staged; i++)
		unlinkat(tdirfd, tmp[i], 0);
	if (tdirfd >= 0)
		close(tdirfd);
	close(sdirfd);
}

const struct dbr_driver dbr_sqlite = {
    .type = HS_DB_SQLITE,
    .mark = sq_mark,
    .dump = sq_dump,
    .restore = sq_restore,
};
