/* idx.c - LMDB environment, format version and node state. */
#include <errno.h>
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
	if (probe && (rc = idx_probe(dir)) < 0)
		return rc;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->readonly = readonly;
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
