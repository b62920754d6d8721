/* idx.c - LMDB environment, format version and node state. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_cursor *cur;
		MDB_val k, v;
		int rc;

		if (mdb_env_create(&env) != 0)
			_exit(2);
		mdb_env_set_maxdbs(env, IDX_DBS_MAX);
		MDB_envinfo info;
		MDB_stat ms;

		if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS | MDB_NOLOCK,
		                 0600) != 0 ||
		    mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &ms) != 0)
			_exit(3);
		/* Every page the meta page names must be in the file. */
		if ((uint64_t)(info.me_last_pgno + 1) * ms.ms_psize >
		    (uint64_t)st.st_size)
			_exit(6);
		if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
			_exit(3);
		/* The main database names the others: walk each of them. */
		if (mdb_dbi_open(txn, NULL, 0, &dbi) != 0 ||
		    mdb_cursor_open(txn, dbi, &cur) != 0)
			_exit(4);
		while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
			char name[64];
			MDB_dbi sub;
			MDB_cursor *c2;
			MDB_val k2, v2;

			if (k.mv_size == 0 || k.mv_size >= sizeof(name))
				_exit(5);
			memcpy(name, k.mv_data, k.mv_size);
			name[k.mv_size] = '\0';
			if (mdb_dbi_open(txn, name, 0, &sub) != 0 ||
			    mdb_cursor_open(txn, sub, &c2) != 0)
				_exit(5);
			while ((rc = mdb_cursor_get(c2, &k2, &v2, MDB_NEXT)) ==
			       0)
				;
			if (rc != MDB_NOTFOUND)
				_exit(5);
			mdb_cursor_close(c2);
		}
		_exit(rc == MDB_NOTFOUND ? 0 : 5);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return HS_OK;
	hs_log_errx("index: %s is damaged (%s); move %s away and start again: "
	            "the next reconciliation rebuilds what it holds",
	            data,
	            WIFSIGNALED(status) ? "reading it crashed"
	                                : "it does not read back",
	            dir);
	return HS_EINDEX;
}

/*
 * A clean close leaves index/clean: data.mdb's stat once the last commit
 * was flushed.  An open that finds data.mdb exactly so (device, inode,
 * size, mtime and ctime to the ns) knows that nothing wrote it since, and
 * skips the probe: a fork and a read of every page, ~10 ms for the 21 MB
 * index of 100,000 files, growing with the index, at every start.  Any
 * write, truncation or zero-fill moves mtime and ctime, a copy or a
 * restore the inode and ctime; a writer removes the mark when it opens,
 * so no crash of its can leave one that still matches.
 */
#define CLEAN_NAME "clean"
#define CLEAN_MAGIC "HSCLEAN1"

struct clean_mark {
	char magic[8];
	uint64_t dev;
	uint64_t ino;
	uint64_t size;
	int64_t mtime_sec;
	int64_t ctime_sec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec;
};

static int
clean_from_data(const char *dir, struct clean_mark *m)
{
	char data[4200];
	struct stat st;

	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	if (stat(data, &st) < 0)
		return -errno;
	memset(m, 0, sizeof(*m));
	memcpy(m->magic, CLEAN_MAGIC, sizeof(m->magic));
	m->dev = (uint64_t)st.st_dev;
	m->ino = (uint64_t)st.st_ino;
	m->size = (uint64_t)st.st_size;
	m->mtime_sec = st.st_mtim.tv_sec;
	m->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	m->ctime_sec = st.st_ctim.tv_sec;
	m->ctime_nsec = (uint32_t)st.st_ctim.tv_nsec;
	return HS_OK;
}

/* Is data.mdb as the last clean close left it? */
static int
clean_matches(const char *dir)
{
	struct clean_mark want, now;
	char path[4200];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, CLEAN_NAME);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	n = read(fd, &want, sizeof(want));
	close(fd);
	return n == (ssize_t)sizeof(want) && clean_from_data(dir, &now) == 0 &&
	       memcmp(&want, &now, sizeof(now)) == 0;
}

static void
clean_forget(const char *dir)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, CLEAN_NAME);
	if (unlink(path) < 0 && errno != ENOENT)
		hs_log_warn("index: %s", path);
}

/* Write the mark (temporary, fsync, rename, directory fsync). */
static int
clean_write(const char *dir)
{
	char path[4200], tmp[4300];
	struct clean_mark m;
	int fd, dfd, rc;

	if ((rc = clean_from_data(dir, &m)) < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", dir, CLEAN_NAME);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	          0600);
	if (fd < 0)
		return -errno;
	rc = hs_write_all(fd, &m, sizeof(m));
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(dfd) < 0)
			rc = -errno;
		close(dfd);
	}
	return rc;
}

void
idx_close_clean(struct idx *x)
{
	char dir[sizeof(x->dir)];
	int rc;

	if (x == NULL || x->readonly) {
		idx_close(x);
		return;
	}
	memcpy(dir, x->dir, sizeof(dir));
	/* Commits skip the meta page's flush (MDB_NOMETASYNC): do it now. */
	rc = idx_map_error(mdb_env_sync(x->env, 1));
	idx_close(x);
	if (rc == HS_OK)
		rc = clean_write(dir);
	if (rc < 0)
		hs_log_warnx("index: %s: no clean-close mark (%s); the next "
		             "start checks the index whole",
		             dir, hs_strerror(rc));
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

static int
idx_open_mode(const char *state_dir, int readonly, int probe,
              struct idx **out)
{
	char dir[4096];
	struct idx *x;
	MDB_txn *txn = NULL;
	int rc;

	if (snprintf(dir, sizeof(dir), "%s/index", state_dir) >=
	    (int)sizeof(dir))
		return -ENAMETOOLONG;
	if (!readonly && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (readonly) {
		char data[4200];
		struct stat st;

		snprintf(data, sizeof(data), "%s/data.mdb", dir);
		if (stat(data, &st) < 0)
			return errno == ENOENT ? HS_ENOTFOUND : -errno;
	}
	if (probe && clean_matches(dir))
		hs_log_debug("index: %s unchanged since its last clean close: "
		             "not probed",
		             dir);
	else if (probe && (rc = idx_probe(dir)) < 0)
		return rc;
	/* A writer may change data.mdb from here: the mark is no more. */
	if (!readonly)
		clean_forget(dir);
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->readonly = readonly;
	snprintf(x->dir, sizeof(x->dir), "%s", dir);
	if ((rc = mdb_env_create(&x->env)) != 0)
		goto fail;
	mdb_env_set_mapsize(x->env, IDX_MAP_SIZE);
	mdb_env_set_maxdbs(x->env, IDX_DBS_MAX);
	/*
	 * One fdatasync per commit, not two: a crash of the machine may undo
	 * the last transaction but never corrupts the map, and an index that
	 * lags is safe (runs it lost are redone: see syncd/sendidx.c).
	 */
	rc = mdb_env_open(x->env, dir,
	                  MDB_NOTLS | MDB_NOMETASYNC |
	                      (readonly ? MDB_RDONLY : 0),
	                  0600);
	if (rc != 0)
		goto fail;
	if ((rc = mdb_txn_begin(x->env, NULL, readonly ? MDB_RDONLY : 0,
	                        &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", readonly ? 0 : MDB_CREATE,
	                       &x->meta)) != 0)
		goto fail;
	if ((rc = idx_open_dbs(x, txn)) != 0)
		goto fail;
	if ((rc = idx_check_format(x, txn)) < 0) {
		mdb_txn_abort(txn);
		idx_close(x);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		goto fail;
	}
	*out = x;
	return HS_OK;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	hs_log_errx("index: %s: %s", dir, mdb_strerror(rc));
	idx_close(x);
	return rc == MDB_NOTFOUND ? HS_EINDEX : idx_map_error(rc);
}

void
idx_close(struct idx *x)
{
	if (x == NULL)
		return;
	if (x->env != NULL)
		mdb_env_close(x->env);
	free(x);
}

/* Node state record: u32 role, u64 epoch, native order (local file). */
struct node_rec {
	uint32_t role;
	uint32_t pad;
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
	out->epoch = r.epoch;
	return HS_OK;
}

int
idx_node_put(struct idx *x, const struct idx_node *n)
{
	MDB_txn *txn;
	struct node_rec r = {(uint32_t)n->role, 0, n->epoch};
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
