/* idx.c - LMDB environment, format version and node state. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "idx_int.h"

int
idx_map_error(int rc)
{
	switch (rc) {
	case 0:
		return HS_OK;
	case MDB_NOTFOUND:
		return HS_ENOTFOUND;
	case MDB_CORRUPTED:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_PAGE_NOTFOUND:
		return HS_EINDEX;
	}
	return rc > 0 ? -rc : HS_EINDEX;
}

static int
idx_check_format(struct idx *x, MDB_txn *txn)
{
	MDB_val k = {6, "format"}, v;
	uint32_t ver = IDX_FORMAT_VERSION;
	int rc;

	rc = mdb_get(txn, x->meta, &k, &v);
	if (rc == MDB_NOTFOUND && !x->readonly) {
		v.mv_size = sizeof(ver);
		v.mv_data = &ver;
		return idx_map_error(mdb_put(txn, x->meta, &k, &v, 0));
	}
	if (rc != 0)
		return idx_map_error(rc);
	if (v.mv_size != sizeof(ver))
		return HS_EINDEX;
	memcpy(&ver, v.mv_data, sizeof(ver));
	if (ver != IDX_FORMAT_VERSION) {
		hs_log_errx("index: format version %u, this build reads %u",
		            ver, IDX_FORMAT_VERSION);
		return HS_EINDEX;
	}
	return HS_OK;
}

/*
 * The first and last byte of value v: the cursor walk reads the branch
 * and leaf pages, but a value bigger than a page lives on overflow pages
 * of its own that only a read of the value touches.  A file cut short
 * loses the end of a run of overflow pages, never only its middle, so
 * its last byte is enough to fault on.  Volatile: the reads are the
 * point, their result is not.
 */
static void
probe_touch(const MDB_val *v)
{
	const volatile unsigned char *p = v->mv_data;

	if (v->mv_size == 0)
		return;
	(void)p[0];
	(void)p[v->mv_size - 1];
}

/* Every record of dbi, values included: 0, or the child's exit status. */
static int
probe_walk(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (mdb_cursor_open(txn, dbi, &cur) != 0)
		return 4;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
		probe_touch(&v);
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : 5;
}

/* The child's exit statuses for a fault (probe_fault). */
#define PROBE_EXIT_PAST_EOF 7
#define PROBE_EXIT_CRASH 8

/*
 * A fault in the child is the answer, not a crash to report: SIGBUS is a
 * read of a page of the map past the end of the file, SIGSEGV a page
 * number outside the map.  Exiting here also keeps a sanitizer's fault
 * report out of the output (the parent says it in one line).
 */
static void
probe_fault(int sig)
{
	_exit(sig == SIGBUS ? PROBE_EXIT_PAST_EOF : PROBE_EXIT_CRASH);
}

static void
probe_catch_faults(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_fault;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/*
 * The child's read of dir: every page LMDB can reach from the meta page
 * (the free pages' list, the main database and each database it names).
 * Only those must be in the file: the meta page's last page number may
 * lie past its end, because pages allocated and freed within one
 * transaction are never written (a commit that put and then deleted a
 * big record leaves it so), and a free page is never read.  A reachable
 * page missing from the file faults the child (SIGBUS: probe_fault).
 */
static int
probe_child(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	probe_catch_faults();
	if (mdb_env_create(&env) != 0)
		return 2;
	mdb_env_set_maxdbs(env, IDX_DBS_MAX);
	if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS | MDB_NOLOCK, 0600) !=
	        0 ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		return 3;
	/* The free pages' list: the next write transaction reads it. */
	if ((rc = probe_walk(txn, 0)) != 0)
		return rc;
	/* The main database names the others: walk each of them. */
	if (mdb_dbi_open(txn, NULL, 0, &dbi) != 0 ||
	    mdb_cursor_open(txn, dbi, &cur) != 0)
		return 4;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		char name[64];
		MDB_dbi sub;

		if (k.mv_size == 0 || k.mv_size >= sizeof(name))
			return 5;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		if (mdb_dbi_open(txn, name, 0, &sub) != 0)
			return 5;
		if ((rc = probe_walk(txn, sub)) != 0)
			return rc;
	}
	return rc == MDB_NOTFOUND ? 0 : 5;
}

/* What the child's status says of the file. */
static const char *
probe_why(int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == PROBE_EXIT_PAST_EOF)
		return "a page in use lies past its end";
	if (WIFSIGNALED(status) ||
	    (WIFEXITED(status) && WEXITSTATUS(status) == PROBE_EXIT_CRASH))
		return "reading it crashed";
	return "it does not read back";
}

/*
 * LMDB 0.9 has no page checksums: a truncated or overwritten data.mdb can
 * make it read garbage or fault.  Open it and walk every record in a
 * child process first; a child that fails or dies means a damaged index,
 * reported in one line instead of a crash of the daemon.
 */
static int
idx_probe(const char *dir)
{
	char data[4200];
	struct stat st;
	pid_t pid;
	int status;

	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	if (stat(data, &st) < 0)
		return errno == ENOENT ? HS_OK : -errno;
	if (st.st_size == 0)
		return HS_OK; /* created but never written: LMDB starts it */
	/*
	 * Forked: no other thread may run in the caller meanwhile.  A
	 * thread holding an allocator lock at the fork (ASan's, or another
	 * malloc than glibc's) leaves the child stuck in LMDB's calloc: `sync`
	 * once built its TLS context on a thread here, and hung under ASan.
	 */
	if ((pid = fork()) < 0)
		return -errno;
	if (pid == 0)
		_exit(probe_child(dir));
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return HS_OK;
	hs_log_errx("index: %s is damaged (%s); move %s away and start again: "
	            "the next reconciliation rebuilds what it holds",
	            data, probe_why(status), dir);
	return HS_EINDEX;
}

/*
 * The clean mark, index/clean: data.mdb as a probe found it readable at a
 * clean stop of its one writer, nothing writing it since.  An open that
 * finds the file as the mark describes it (device, inode, size, mtime and
 * ctime to the nanosecond, and LMDB's last transaction id) skips the
 * probe, which costs a fork and a read of every page (~10 ms for the
 * 100,000 records of 21 MB, and it grows with the index): a restart's
 * time.  Any write to the file changes its ctime, any commit the
 * transaction id: a mark that does not match means a probe, so a stale
 * mark is harmless and none is ever removed.  Written without fsync: a
 * mark lost or torn by a crash fails its sum, and the next open probes.
 */
#define MARK_MAGIC "HSCLEAN1"
#define MARK_RACY_S 2

static void
mark_fill(struct clean_mark *m, const struct stat *st, uint64_t txnid)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->magic, MARK_MAGIC, sizeof(m->magic));
	m->dev = st->st_dev;
	m->ino = st->st_ino;
	m->size = (uint64_t)st->st_size;
	m->mtime_sec = st->st_mtim.tv_sec;
	m->mtime_nsec = (uint64_t)st->st_mtim.tv_nsec;
	m->ctime_sec = st->st_ctim.tv_sec;
	m->ctime_nsec = (uint64_t)st->st_ctim.tv_nsec;
	m->txnid = txnid;
	m->sum = XXH3_64bits(m, offsetof(struct clean_mark, sum));
}

/* Does mark m describe data.mdb as it is (st) at LMDB's txnid? */
static int
mark_matches(const struct clean_mark *m, const struct stat *st, uint64_t txnid)
{
	struct clean_mark now;

	mark_fill(&now, st, txnid);
	return memcmp(&now, m, sizeof(now)) == 0;
}

/* The mark in dir, whole and summed, or 0. */
static int
mark_read(const char *dir, struct clean_mark *m)
{
	char path[4200];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/clean", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	n = read(fd, m, sizeof(*m));
	close(fd);
	return n == (ssize_t)sizeof(*m) &&
	       memcmp(m->magic, MARK_MAGIC, sizeof(m->magic)) == 0 &&
	       m->sum == XXH3_64bits(m, offsetof(struct clean_mark, sum));
}

static int
mark_write(const char *dir, const struct clean_mark *m)
{
	struct iovec iov = {(void *)m, sizeof(*m)};
	char path[4200], tmp[4200];

	snprintf(path, sizeof(path), "%s/clean", dir);
	snprintf(tmp, sizeof(tmp), "%s/clean.tmp", dir);
	return hs_replace_file(path, tmp, 0600, &iov, 1);
}

static int
data_stat(const char *dir, struct stat *st)
{
	char data[4200];

	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	return stat(data, st) < 0 ? -errno : HS_OK;
}

static uint64_t
env_txnid(MDB_env *env)
{
	MDB_envinfo info;

	return mdb_env_info(env, &info) == 0 ? (uint64_t)info.me_last_txnid
	                                     : UINT64_MAX;
}

/* The filesystem's time now: the ctime of the mark's temporary file. */
static int
fs_now(const char *dir, struct timespec *now)
{
	char tmp[4200];
	struct stat st;
	int fd, rc = HS_OK;

	snprintf(tmp, sizeof(tmp), "%s/clean.tmp", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	          0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	else
		*now = st.st_ctim;
	close(fd);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int
idx_mark_clean(struct idx *x)
{
	char tmp[4200];
	struct stat a, b;
	struct timespec now = {0, 0};
	uint64_t t;
	int rc;

	if (x == NULL || x->readonly)
		return HS_OK;
	if ((rc = data_stat(x->dir, &a)) < 0)
		return rc;
	t = env_txnid(x->env);
	/* Opened on the mark and not written since: it stands. */
	if (x->marked && mark_matches(&x->mark, &a, t))
		return HS_OK;
	/*
	 * Written within MARK_RACY_S: a later write in the same tick of the
	 * filesystem's clock (coarse: 4 ms, 1 s, 2 s) could leave size,
	 * mtime and ctime as they are now.  The next open probes instead.
	 * "Now" is the filesystem's own (a file server's clock may differ).
	 */
	if ((rc = fs_now(x->dir, &now)) < 0)
		return rc;
	x->marked = 0;
	if (a.st_ctim.tv_sec > now.tv_sec - MARK_RACY_S) {
		hs_log_debug("index: %s/data.mdb written in the last %d s: "
		             "not marked clean",
		             x->dir, MARK_RACY_S);
		rc = HS_OK;
	} else if ((rc = idx_probe(x->dir)) == HS_OK &&
	           (rc = data_stat(x->dir, &b)) == HS_OK) {
		mark_fill(&x->mark, &a, t);
		/* Written while probed (by a writer the caller did not stop);
		 * the probe's read may move atime: the mark leaves it out. */
		if (!mark_matches(&x->mark, &b, env_txnid(x->env)))
			rc = HS_ECHANGED;
		else if ((rc = mark_write(x->dir, &x->mark)) == HS_OK) {
			x->marked = 1;
			return HS_OK;
		}
	}
	snprintf(tmp, sizeof(tmp), "%s/clean.tmp", x->dir);
	unlink(tmp);
	return rc;
}

int
idx_dbi(struct idx *x, const char *name, MDB_dbi *out)
{
	int i;

	for (i = 0; i < x->n_dbs; i++)
		if (strcmp(x->db_names[i], name) == 0) {
			*out = x->dbs[i];
			return HS_OK;
		}
	return HS_ENOTFOUND;
}

/* Open every database the index knows (idx_int.h), in the opening txn. */
static int
idx_open_dbs(struct idx *x, MDB_txn *txn)
{
	static const char *const names[] = {IDX_DB_NAMES};
	size_t i;
	int rc;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		MDB_dbi dbi;

		rc = mdb_dbi_open(txn, names[i], x->readonly ? 0 : MDB_CREATE,
		                  &dbi);
		if (rc == MDB_NOTFOUND && x->readonly)
			continue;
		if (rc != 0)
			return rc;
		x->db_names[x->n_dbs] = names[i];
		x->dbs[x->n_dbs++] = dbi;
	}
	return 0;
}

static int idx_open_mode(const char *state_dir, int readonly, int probe,
                         struct idx **out);

int
idx_open(const char *state_dir, int readonly, struct idx **out)
{
	return idx_open_mode(state_dir, readonly, 1, out);
}

int
idx_open_checked(const char *state_dir, struct idx **out)
{
	return idx_open_mode(state_dir, 0, 0, out);
}

/*
 * The environment of dir: mdb_env_open reads only the two meta pages
 * (LMDB checks them), so the last transaction id can be compared with a
 * clean mark before any page of a tree is read.
 */
static int
env_open(struct idx *x, const char *dir)
{
	int rc;

	if ((rc = mdb_env_create(&x->env)) == 0) {
		mdb_env_set_mapsize(x->env, IDX_MAP_SIZE);
		mdb_env_set_maxdbs(x->env, IDX_DBS_MAX);
		/*
		 * One fdatasync per commit, not two: a crash of the machine
		 * may undo the last transaction but never corrupts the map,
		 * and an index that lags is safe (runs it lost are redone:
		 * see primary/sendidx.c).
		 */
		rc = mdb_env_open(x->env, dir,
		                  MDB_NOTLS | MDB_NOMETASYNC |
		                      (x->readonly ? MDB_RDONLY : 0),
		                  0600);
	}
	if (rc == 0)
		return HS_OK;
	hs_log_errx("index: %s: %s", dir, mdb_strerror(rc));
	return idx_map_error(rc);
}

/* Its databases opened (created) and its format checked. */
static int
env_open_dbs(struct idx *x, const char *dir)
{
	MDB_txn *txn = NULL;
	int rc;

	if ((rc = mdb_txn_begin(x->env, NULL, x->readonly ? MDB_RDONLY : 0,
	                        &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", x->readonly ? 0 : MDB_CREATE,
	                       &x->meta)) != 0)
		goto fail;
	if ((rc = idx_open_dbs(x, txn)) != 0)
		goto fail;
	if ((rc = idx_check_format(x, txn)) < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		goto fail;
	}
	return HS_OK;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	hs_log_errx("index: %s: %s", dir, mdb_strerror(rc));
	return rc == MDB_NOTFOUND ? HS_EINDEX : idx_map_error(rc);
}

static void
env_close(struct idx *x)
{
	if (x->env != NULL)
		mdb_env_close(x->env);
	x->env = NULL;
	x->n_dbs = 0;
}

static int
idx_open_mode(const char *state_dir, int readonly, int probe, struct idx **out)
{
	struct stat st;
	struct idx *x;
	int rc, on_mark = 0;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->readonly = readonly;
	if (snprintf(x->dir, sizeof(x->dir), "%s/index", state_dir) >=
	    (int)sizeof(x->dir)) {
		free(x);
		return -ENAMETOOLONG;
	}
	if (!readonly && mkdir(x->dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		free(x);
		return rc;
	}
	if (readonly && (rc = data_stat(x->dir, &st)) < 0) {
		free(x);
		return rc == -ENOENT ? HS_ENOTFOUND : rc;
	}
	/* A clean mark that matches the file stands for the probe... */
	if (probe && mark_read(x->dir, &x->mark) &&
	    data_stat(x->dir, &st) == HS_OK &&
	    mark_matches(&x->mark, &st, x->mark.txnid))
		on_mark = 1;
	if (probe && !on_mark && (rc = idx_probe(x->dir)) < 0) {
		free(x);
		return rc;
	}
	rc = env_open(x, x->dir);
	/*
	 * ... if LMDB's last transaction is the one it names, too (a crash
	 * of the machine can leave the stat as it was, not the meta page),
	 * checked before a tree is read.
	 */
	if (rc == HS_OK && on_mark && env_txnid(x->env) != x->mark.txnid) {
		env_close(x);
		on_mark = 0;
		if ((rc = idx_probe(x->dir)) == HS_OK)
			rc = env_open(x, x->dir);
	}
	if (rc == HS_OK)
		rc = env_open_dbs(x, x->dir);
	if (rc < 0) {
		idx_close(x);
		return rc;
	}
	x->marked = on_mark;
	x->on_mark = on_mark;
	if (on_mark)
		hs_log_debug("index: %s/data.mdb is as its clean mark says: "
		             "not probed",
		             x->dir);
	*out = x;
	return HS_OK;
}

int
idx_on_mark(const struct idx *x)
{
	return x->on_mark;
}

void
idx_close(struct idx *x)
{
	if (x == NULL)
		return;
	env_close(x);
	free(x);
}

/* Node state record: u32 role, u64 epoch, native order (local file). */
struct node_rec {
	uint32_t role;
	uint32_t flags; /* IDX_NODE_F_*; 0 in indexes older than the flags */
	uint64_t epoch;
};

int
idx_node_get(struct idx *x, struct idx_node *out)
{
	MDB_txn *txn;
	MDB_val k = {4, "node"}, v;
	struct node_rec r;
	int rc;

	if ((rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn)) != 0)
		return idx_map_error(rc);
	rc = mdb_get(txn, x->meta, &k, &v);
	if (rc == 0 && v.mv_size != sizeof(r))
		rc = MDB_CORRUPTED;
	if (rc == 0)
		memcpy(&r, v.mv_data, sizeof(r));
	mdb_txn_abort(txn);
	if (rc != 0)
		return idx_map_error(rc);
	if (r.role != HS_ROLE_PRIMARY && r.role != HS_ROLE_STANDBY)
		return HS_EINDEX;
	out->role = (enum hs_role)r.role;
	out->flags = r.flags;
	out->epoch = r.epoch;
	return HS_OK;
}

int
idx_node_put(struct idx *x, const struct idx_node *n)
{
	MDB_txn *txn;
	struct node_rec r = {(uint32_t)n->role, n->flags, n->epoch};
	MDB_val k = {4, "node"}, v = {sizeof(r), &r};
	int rc;

	if ((rc = mdb_txn_begin(x->env, NULL, 0, &txn)) != 0)
		return idx_map_error(rc);
	if ((rc = mdb_put(txn, x->meta, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return idx_map_error(rc);
	}
	return idx_map_error(mdb_txn_commit(txn));
}

int
idx_node_adopt(struct idx *x, uint64_t epoch, struct idx_node *out)
{
	MDB_txn *txn;
	MDB_val k = {4, "node"}, v;
	struct node_rec r;
	int rc, refused;

	if ((rc = mdb_txn_begin(x->env, NULL, 0, &txn)) != 0)
		return idx_map_error(rc);
	rc = mdb_get(txn, x->meta, &k, &v);
	if (rc == 0 && v.mv_size != sizeof(r))
		rc = MDB_CORRUPTED;
	if (rc != 0) {
		mdb_txn_abort(txn);
		return idx_map_error(rc);
	}
	memcpy(&r, v.mv_data, sizeof(r));
	refused = (r.flags & IDX_NODE_F_PROMOTING) || epoch < r.epoch;
	if (!refused && epoch > r.epoch) {
		r.epoch = epoch;
		v.mv_data = &r;
		if ((rc = mdb_put(txn, x->meta, &k, &v, 0)) != 0) {
			mdb_txn_abort(txn);
			return idx_map_error(rc);
		}
		if ((rc = mdb_txn_commit(txn)) != 0)
			return idx_map_error(rc);
	} else
		mdb_txn_abort(txn);
	out->role = (enum hs_role)r.role;
	out->flags = r.flags;
	out->epoch = r.epoch;
	return refused ? HS_EREFUSED : HS_OK;
}

int
idx_blob_put(struct idx *x, const char *key, const void *p, size_t len)
{
	MDB_txn *txn;
	MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)p};
	int rc;

	if (len > IDX_BLOB_MAX)
		return HS_ELIMIT;
	if ((rc = mdb_txn_begin(x->env, NULL, 0, &txn)) != 0)
		return idx_map_error(rc);
	if ((rc = mdb_put(txn, x->meta, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return idx_map_error(rc);
	}
	return idx_map_error(mdb_txn_commit(txn));
}

int
idx_blob_get(struct idx *x, const char *key, char **out, size_t *len)
{
	MDB_txn *txn;
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc;

	if ((rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn)) != 0)
		return idx_map_error(rc);
	rc = mdb_get(txn, x->meta, &k, &v);
	if (rc == 0 && v.mv_size > IDX_BLOB_MAX)
		rc = MDB_CORRUPTED;
	if (rc == 0) {
		/* The value lives in the map only until the txn ends: copy. */
		if ((*out = malloc(v.mv_size + 1)) == NULL) {
			mdb_txn_abort(txn);
			return -ENOMEM;
		}
		memcpy(*out, v.mv_data, v.mv_size);
		(*out)[v.mv_size] = '\0';
		*len = v.mv_size;
	}
	mdb_txn_abort(txn);
	return idx_map_error(rc);
}
