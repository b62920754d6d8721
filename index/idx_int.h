/*
 * idx_int.h - what the index's own files share: the environment and the
 * named databases in it.  Only index/ includes this (and so <lmdb.h>).
 *
 * Databases in one environment:
 *	meta	format version, node state, small blobs (idx.c)
 * and those named in IDX_DB_NAMES, all opened by idx_open (a handle
 * opened in a read-only txn would close with it); idx_dbi() finds one.
 */
#ifndef IDX_INT_H
#define IDX_INT_H

#include <lmdb.h>

#include "idx.h"

/* Named databases an environment may hold (LMDB's maxdbs). */
#define IDX_DBS_MAX 8
/*
 * The databases besides meta:
 *	files	primary: what was last replicated, per entry (files.c)
 *	journal	primary: reconciliation runs not yet acknowledged (files.c)
 *	blocks	primary: block hashes of what the standby holds (blocks.c)
 *	written	standby: fingerprint + token of what it wrote (blocks.c)
 *	writing	standby: ... of what it is about to put in place (blocks.c)
 */
#define IDX_DB_NAMES "files", "journal", "blocks", "written", "writing"

/* index/clean, see idx.c */
struct clean_mark {
	char magic[8];
	uint64_t dev;
	uint64_t ino;
	uint64_t size;
	int64_t mtime_sec;
	int64_t ctime_sec;
	uint64_t mtime_nsec;
	uint64_t ctime_nsec;
	uint64_t txnid;
	uint64_t sum; /* XXH3-64 of the bytes before it */
};

struct idx {
	MDB_env *env;
	MDB_dbi meta;
	int readonly;
	/* Named databases opened so far (names are static strings). */
	const char *db_names[IDX_DBS_MAX];
	MDB_dbi dbs[IDX_DBS_MAX];
	int n_dbs;
	char dir[4096]; /* state_dir/index */
	/* The clean mark this open trusted, or the last one written. */
	struct clean_mark mark;
	int marked;
	int on_mark; /* this open trusted the mark: no probe */
};

/* LMDB's return code as an HS_E* code. */
int idx_map_error(int rc);
/* Handle of database `name`; HS_ENOTFOUND when absent (read-only open). */
int idx_dbi(struct idx *x, const char *name, MDB_dbi *out);

#endif /* IDX_INT_H */
