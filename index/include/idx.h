/*
 * idx.h - the LMDB index in state_dir: node state (role, epoch) now; file
 * index, change journal and signature cache as replication grows.  This
 * module is the only code that includes <lmdb.h>.
 */
#ifndef IDX_H
#define IDX_H

#include <stdint.h>

#include "hs.h"

#define IDX_FORMAT_VERSION 1
/* Address space reserved for the map; the file grows only as used. */
#define IDX_MAP_SIZE (4ull * 1024 * 1024 * 1024)

struct idx;

/* What this node is. */
struct idx_node {
	enum hs_role role;
	uint32_t flags; /* IDX_NODE_F_* */
	uint64_t epoch; /* raised by each promote */
};
/*
 * A primary that met a peer of a newer epoch: it sends nothing and says
 * "needs rejoin" until `hamnsync rejoin` makes it that peer's standby.
 */
#define IDX_NODE_F_REJOIN 0x1u
/*
 * A promote is under way (fenced, role not yet switched): state_dir/
 * promote/ holds its steps, and the daemon refuses every primary.
 */
#define IDX_NODE_F_PROMOTING 0x2u

/*
 * Open (creating if `readonly` is 0) the index under `state_dir`/index.
 * HS_EINDEX when it exists with another format version, HS_ENOTFOUND when
 * readonly and there is none, -errno otherwise.  Caller owns *out.
 */
int idx_open(const char *state_dir, int readonly, struct idx **out);
/*
 * The same without reading all of data.mdb in a child first: for a
 * process whose parent daemon checked this index at its start, when only
 * hamnsync's own transactions have written it since (the standby's
 * session processes: the check would cost every session a fork and a
 * walk of every record).
 */
int idx_open_checked(const char *state_dir, struct idx **out);
/*
 * At a clean stop, before idx_close: probe the index (a forked child:
 * call it with no other thread running) and, when it reads back whole,
 * mark it clean (index/clean) so the next idx_open need not probe while
 * data.mdb is as the mark says.  Its writer calls this once nothing of
 * its own writes the index any more (the daemon, still holding its
 * pidfile lock); a writer that runs meanwhile (a daemon started during
 * `sync`) changes data.mdb's stat or LMDB's transaction id, and no mark
 * is made.  Nothing to do when the open trusted a mark and nothing was
 * written since, or when data.mdb was written in the last 2 s.  HS_OK,
 * HS_EINDEX (damaged: logged), HS_ECHANGED (written while probed).
 */
int idx_mark_clean(struct idx *x);
/* Did this open trust a clean mark instead of probing? */
int idx_on_mark(const struct idx *x);
void idx_close(struct idx *x);
/* HS_ENOTFOUND when this node has never stored its state. */
int idx_node_get(struct idx *x, struct idx_node *out);
int idx_node_put(struct idx *x, const struct idx_node *n);
/*
 * A standby takes its primary's epoch when it is newer, so that a promote
 * of this node raises the epoch above the primary's even when it cannot
 * ask that primary.  In one write transaction: HS_EREFUSED when a promote
 * is under way (IDX_NODE_F_PROMOTING) or `epoch` is older than the stored
 * one; else the stored epoch is raised to `epoch` when lower, and HS_OK.
 * *out gets the node state as it stands afterwards.
 */
int idx_node_adopt(struct idx *x, uint64_t epoch, struct idx_node *out);
/*
 * A small named record (at most IDX_BLOB_MAX bytes), e.g. the daemon's
 * last status.  get: *out is malloc'd, NUL-terminated; HS_ENOTFOUND.
 */
#define IDX_BLOB_MAX (1024 * 1024)
int idx_blob_put(struct idx *x, const char *key, const void *p, size_t len);
int idx_blob_get(struct idx *x, const char *key, char **out, size_t *len);

/* ------------------------------------------------ primary: file index */

/* What the primary last replicated of one entry: its stat at the time. */
struct idx_file {
	uint8_t type;   /* enum proto_etype */
	uint8_t pad[3]; /* zero: records are compared whole */
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	uint64_t ino;
	int64_t mtime_sec;
	int64_t ctime_sec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec;
};

#define IDX_PATH_MAX 4095
#define IDX_ID_LEN 16

/* The digest that keys a path's record (and orders a walk). */
#define IDX_DIGEST_LEN 24
void idx_path_digest(const char *path, uint8_t out[IDX_DIGEST_LEN]);
/* The 8-byte key prefix of one source of one set. */
void idx_source_key(const char *set, const char *source, uint8_t out[8]);

/*
 * A write batch: records put and deleted in one LMDB transaction,
 * committed together with the acknowledged sequence (0: none), which also
 * drops the journal entries up to it.  Errors are kept and returned by
 * commit, which frees the batch in every case.
 */
struct idx_batch;
int idx_batch_begin(struct idx *x, struct idx_batch **out);
void idx_file_put(struct idx_batch *b, const uint8_t skey[8], const char *path,
                  const struct idx_file *f);
void idx_file_del(struct idx_batch *b, const uint8_t skey[8], const char *path);
int idx_batch_commit(struct idx_batch *b, uint64_t seq);
/*
 * The same, but the journal keeps every entry except those named with
 * idx_batch_journal_del: runs of several sets interleave, and an entry
 * goes only once a run of its own set covered its paths.
 */
int idx_batch_ack(struct idx_batch *b, uint64_t seq);
void idx_batch_journal_del(struct idx_batch *b, uint64_t seq);
void idx_batch_abort(struct idx_batch *b);

/* HS_ENOTFOUND when path has no record. */
int idx_file_get(struct idx *x, const uint8_t skey[8], const char *path,
                 struct idx_file *out);
/*
 * Call fn for every record of one source, in the order of their path
 * digests (idx_path_digest, memcmp order).  Walk: 0
 * goes on, < 0 stops with that error.  Prune (in a batch): 1 keeps the
 * record, 0 deletes it, < 0 stops with that error.
 */
typedef int idx_walk_fn(void *arg, const uint8_t dig[IDX_DIGEST_LEN],
                        const char *path, const struct idx_file *f);
int idx_files_walk(struct idx *x, const uint8_t skey[8], idx_walk_fn *fn,
                   void *arg);
void idx_files_prune(struct idx_batch *b, const uint8_t skey[8],
                     idx_walk_fn *keep, void *arg);

/*
 * One source's records where LMDB keeps them, without a copy, for a
 * caller that holds all of them while it works (a restart compares
 * 100,000 with a walk): each is IDX_VIEW_REC bytes of struct idx_file,
 * not aligned (copy them out before use), then the path, `len` bytes and
 * no NUL.  They stay valid until idx_view_close, which may run on
 * another thread.  A view is a read transaction: close it soon.
 */
#define IDX_VIEW_REC sizeof(struct idx_file)
struct idx_view;
typedef int idx_view_fn(void *arg, const unsigned char *rec, size_t len);
int idx_view_open(struct idx *x, struct idx_view **out);
int idx_view_walk(struct idx_view *v, const uint8_t skey[8], idx_view_fn *fn,
                  void *arg);
void idx_view_close(struct idx_view *v);

/* ------------------------------------------------ primary: the journal */

/*
 * This index's id (made at first use) and the last sequence the standby
 * acknowledged (0: none).
 */
int idx_journal_state(struct idx *x, uint8_t id[IDX_ID_LEN], uint64_t *acked);
/* Record run `seq` before it is sent (an opaque entry: primary/sendidx.c). */
#define IDX_JOURNAL_ENTRY_MAX (1024 * 1024)
int idx_journal_add(struct idx *x, uint64_t seq, const void *entry, size_t len);
/* Drop the entry of run `seq` (it changed nothing); absent is fine. */
int idx_journal_del(struct idx *x, uint64_t seq);
/* Entries with a sequence above `after`, in order. */
typedef int idx_journal_fn(void *arg, uint64_t seq, const void *entry,
                           size_t len);
int idx_journal_walk(struct idx *x, uint64_t after, idx_journal_fn *fn,
                     void *arg);

/* ------------------------------------------------ standby: applied */

/* The primary (its index id) and the highest sequence applied durably. */
int idx_applied_get(struct idx *x, uint8_t id[IDX_ID_LEN], uint64_t *seq);
int idx_applied_put(struct idx *x, const uint8_t id[IDX_ID_LEN], uint64_t seq);

/* ------------------------------------------- block records (blocks.c) */

/*
 * Records that let a big changed file travel as its changed blocks
 * (primary/sendpatch.c on the primary, standby/apply_rec.c and
 * standby/apply_patch.c on the standby).  Keys are opaque bytes of at most
 * IDX_KEY_MAX (LMDB's default key limit).
 */
#define IDX_KEY_MAX 511
#define IDX_TOKEN_LEN 32
#define IDX_BLOCK_HASH_LEN 16 /* XXH3-128 */
/* Hashes in one record: 32768 x 16 bytes = 512 KiB at most. */
#define IDX_BLOCKS_MAX 32768u

/* Primary: what the standby acknowledged holding for one file. */
struct idx_blocks {
	uint8_t token[IDX_TOKEN_LEN]; /* identifies that exact content */
	uint64_t size;
	uint32_t bsize; /* block size; the last block may be shorter */
	uint32_t n;     /* hashes, ceil(size / bsize) */
	uint8_t (*hash)[IDX_BLOCK_HASH_LEN]; /* get: owned, idx_blocks_clear */
};

/* Standby: what it wrote at a path (stat right after the write). */
struct idx_written {
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec;
	int64_t ctime_sec;
	uint64_t ino;
	uint64_t dev;
	uint8_t token[IDX_TOKEN_LEN];
};

/* A write transaction over the records; one writer at a time (LMDB). */
struct idx_txn;
/* Blocks while another process writes the index.  Caller owns *out. */
int idx_txn_begin(struct idx *x, struct idx_txn **out);
/* Commit (durable when it returns HS_OK) and free `t`, whatever the result. */
int idx_txn_commit(struct idx_txn *t);
/*
 * Commit without flushing: visible at once, durable with the next
 * flushing commit or idx_sync.  For records that a later commit of the
 * same run makes durable anyway (one fdatasync per run, not two).
 */
int idx_txn_commit_lazy(struct idx_txn *t);
/* Flush what lazy commits wrote. */
int idx_sync(struct idx *x);
void idx_txn_abort(struct idx_txn *t);

/*
 * get: HS_ENOTFOUND when absent or unreadable (then `out` holds nothing to
 * free); on HS_OK the caller owns out->hash (idx_blocks_clear).
 */
int idx_blocks_get(struct idx *x, const void *key, size_t klen,
                   struct idx_blocks *out);
int idx_blocks_put(struct idx_txn *t, const void *key, size_t klen,
                   const struct idx_blocks *b);
/* Removing an absent record is not an error. */
int idx_blocks_del(struct idx_txn *t, const void *key, size_t klen);
void idx_blocks_clear(struct idx_blocks *b);
int idx_written_get(struct idx *x, const void *key, size_t klen,
                    struct idx_written *out);
int idx_written_put(struct idx_txn *t, const void *key, size_t klen,
                    const struct idx_written *a);
int idx_written_del(struct idx_txn *t, const void *key, size_t klen);
/*
 * Write-ahead of a "written" record: what the standby is about to put in
 * place at a path (the new version's inode, size and token), stored and
 * flushed before the rename, dropped once the record that follows the
 * rename is committed.  One that survives a crash tells a version
 * hamnsync put in place from an outside change.  Same layout and
 * semantics as idx_written_*.
 */
int idx_writing_get(struct idx *x, const void *key, size_t klen,
                    struct idx_written *out);
int idx_writing_put(struct idx_txn *t, const void *key, size_t klen,
                    const struct idx_written *a);
int idx_writing_del(struct idx_txn *t, const void *key, size_t klen);
/*
 * A directory was renamed: every "written" (and "writing") record whose
 * key starts with
 * `from` now starts with `to` instead, and the records that started with
 * `to` before are dropped (what they described is gone).  A key that
 * would pass IDX_KEY_MAX is dropped.  Neither prefix may start with the
 * other (HS_ELIMIT).  Costs one seek per record moved.
 */
int idx_written_move(struct idx_txn *t, const void *from, size_t flen,
                     const void *to, size_t tlen);

#endif /* IDX_H */
