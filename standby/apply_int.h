/*
 * apply_int.h - inside the confined applier: struct apply and what its
 * files share.  Calls go down this list, never up:
 *	apply.c		open, dispatch each operation frame, free
 *	apply_patch.c	block patches (OP_PATCH, OP_PATCH_DATA, PATCH_STALE)
 *	apply_file.c	whole files and deltas, up to OP_FILE_END
 *	apply_ops.c	delete, mkdir, symlink, special, link, meta, rename
 *	apply_batch.c	the batch of temporaries and its flush
 *	apply_rec.c	block records and drift
 *	apply_path.c	confined lookup of a path, temporaries, error lines
 * apply_list.c (listings and hashes for the receiver) stands on
 * apply_path.c, and drift.c (copies kept of files changed here) on none.
 * Only standby/ includes this.
 */
#ifndef APPLY_INT_H
#define APPLY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "stdby_int.h"

#define TMP_NAME_LEN (sizeof(FS_TMP_PREFIX) - 1 + 16)
/* Replaced versions held open per set (see struct apply). */
#define OLD_FDS_MAX 16

struct apply_src {
	int anchorfd; /* O_PATH fd of the source's parent */
	char *leaf;   /* the source's last component */
	char *abs;    /* the source as configured, for messages */
};

/* A file or symlink written under a temporary name, awaiting rename. */
struct pending {
	int dirfd;  /* O_PATH, owned */
	int datafd; /* the written file's fd + 1, owned; 0: none (memset) */
	char tmp[TMP_NAME_LEN + 1];
	char leaf[PROTO_NAME_MAX + 1];
	char *display; /* owned */
	/* Its block record (delta.h): REC_* and the token to keep. */
	uint8_t rec;
	uint8_t token[BLK_TOKEN_LEN];
	uint8_t *key; /* owned */
	size_t klen;
	/*
	 * A hard link: linking and the rename change the ctime of the
	 * inode it shares with its leader, whose record (if it matched
	 * before) is renewed with this token after the rename.
	 */
	uint8_t *lkey; /* owned */
	size_t lklen;
	uint8_t ltoken[BLK_TOKEN_LEN];
	uint8_t ahead; /* AHEAD_*: written ahead (apply_recs_ahead) */
};

#define AHEAD_KEY 1
#define AHEAD_LKEY 2

#define REC_PUT 1 /* store fingerprint + token after the rename */
#define REC_DEL 2 /* the path no longer holds what a record says */

/* A record write waiting for the flush's transaction. */
struct rec_op {
	uint8_t *key; /* owned */
	size_t klen;
	int put; /* REC_OP_* */
	struct idx_written v;
};

#define REC_OP_DEL 0  /* drop the record */
#define REC_OP_PUT 1  /* store v */
#define REC_OP_KEEP 2 /* the record stays; only drop what was written ahead */

struct apply {
	int rootfd;                   /* borrowed */
	const struct hs_pathset *set; /* borrowed */
	struct apply_src src[PROTO_SOURCES_MAX];
	size_t n_src;
	/* The file being received, if any. */
	int in_file;
	int skip_file; /* error recorded; drop data */
	int fd;
	struct pending cur;
	struct proto_entry cur_e;
	uint8_t *cur_xattrs; /* owned copy of cur_e's */
	uint64_t written;
	uint64_t accepted;   /* data bytes taken from the wire */
	struct apply_wr *wr; /* writes [written, accepted), or NULL */
	uint64_t wb_started; /* writeback started for [0, wb_started) */
	uint64_t wb_done;    /* ... and waited for, for [0, wb_done) */
	struct proto_hash *hash;
	struct delta_dec *dec; /* set for a delta transfer */
	int basis_fd;          /* its basis */
	/* The batch. */
	struct pending *pend;
	size_t n_pend;
	uint64_t pend_bytes;
	int pend_has_files; /* links must wait for them */
	size_t pend_fds;    /* pending files whose fd is kept for fsync */
	size_t pend_nofd;   /* pending files whose fd was closed */
	/* Outcome. */
	uint64_t applied;
	uint64_t n_errors;
	char *errors[PROTO_ERRORS_MAX];
	/* The first error's path, for status: room for any display(). */
	char first_path[PROTO_PATH_MAX * 2 + 2];
	char first_why[512]; /* ... and what went wrong (what + reason) */
	int poisoned;
	struct proto_entry e; /* decode scratch (8 KiB) */
	char disp[PROTO_PATH_MAX * 2 + 2];
	/* Block records and patches (delta.h); idx NULL: neither. */
	struct idx *idx;       /* borrowed */
	const char *state_dir; /* borrowed */
	int is_patch;          /* the file being received is a patch */
	int prx_ok;            /* prx checks its blocks (even if skipped) */
	struct proto_patch_rx prx;
	struct rec_op *recs;
	size_t n_recs;
	int recs_unsynced;         /* committed lazily, not yet flushed */
	struct proto_scope *stale; /* patches whose basis was not ours */
	size_t n_stale;
	int stale_all;
	/*
	 * Replaced versions held open until apply_free: freeing a big
	 * file's blocks (tens of ms on ext4) then happens after SET_DONE,
	 * not inside the rename that the acknowledgement waits for.
	 */
	int old_fds[OLD_FDS_MAX];
	size_t n_old_fds;
};

/* ----------------------------------------------------- apply.c */

/* Discard an unfinished file (its temporary is removed). */
void apply_abort(struct apply *a);

/* ------------------------------------------------ apply_path.c */

/* Record an error line for `path`, and the first error for status. */
void apply_error(struct apply *a, const char *path, const char *what, int rc);

const char *apply_display(struct apply *a, uint16_t src, const char *rel);
int apply_locate(struct apply *a, uint16_t src, const char *rel, int *dirfd,
                 char leaf[PROTO_NAME_MAX + 1]);
int apply_tmp_name(char out[TMP_NAME_LEN + 1]);
int apply_open_nofollow(int dirfd, const char *leaf, uint8_t type);

/* ------------------------------------------------- apply_rec.c */

/*
 * A record follows its file through a rename (the file is still the
 * version hamnsync wrote, only its path changed), and the records of the
 * files below a directory follow the directory.  Left behind, they would
 * stay at `from`, and `to` would keep the records of what the rename
 * replaced there: the next write at `to` would take hamnsync's own
 * version for drift.
 */
struct rename_rec {
	struct idx_txn *lock;
	uint8_t *fkey, *tkey; /* owned; of "from/" and "to/" for a directory */
	size_t fklen, tklen;
	int dir;  /* `from` is a directory */
	int has;  /* `from` is a regular file with a record ... */
	int mine; /* ... and is the version that record describes */
	struct idx_written v;
};
void apply_fp_from_stat(struct idx_written *v, const struct stat *st);
uint8_t *apply_rec_key(struct apply *a, uint16_t src, const char *rel,
                       size_t *klen);
int apply_rec_holds(struct apply *a, int dirfd, const char *leaf,
                    const uint8_t *key, size_t klen, const struct stat *st,
                    struct idx_written *v);
void apply_drift_check(struct apply *a, uint16_t src, const char *rel,
                       int dirfd, const char *leaf, const uint8_t *key,
                       size_t klen);
void apply_rec_queue(struct apply *a, uint8_t *key, size_t klen, int put,
                     const struct idx_written *v);
void apply_recs_commit(struct apply *a, struct idx_txn *t);
int apply_recs_ahead(struct apply *a);
void apply_rec_unahead(struct apply *a, struct pending *p);
void apply_rec_pending(struct apply *a, struct pending *p);
void apply_rec_drop(struct apply *a, struct pending *p, uint16_t src,
                    const char *rel);
void apply_link_keeps_rec(struct apply *a, struct pending *p, uint16_t lsrc,
                          const char *lpath, int ldir, const char *lleaf);
void apply_rename_rec_begin(struct apply *a, uint16_t src, const char *from,
                            const char *to, int fdir, const char *fleaf,
                            int tdir, const char *tleaf, struct rename_rec *rr);
void apply_rename_rec_end(struct apply *a, struct rename_rec *rr, int moved,
                          int tdir, const char *tleaf);

/* ----------------------------------------------- apply_batch.c */

int apply_batch_add(struct apply *a, struct pending *p, uint64_t bytes);
void apply_pending_clear(struct pending *p);

/* ------------------------------------------------- apply_ops.c */

int apply_meta_fd(int fd, const struct proto_entry *e);
int apply_op_delete(struct apply *a);
int apply_op_dir(struct apply *a);
int apply_op_meta(struct apply *a);
int apply_op_symlink(struct apply *a);
int apply_op_special(struct apply *a);
int apply_op_link(struct apply *a, const struct proto_msg *m);

/* ------------------------------------------------ apply_file.c */

int apply_file_begin(struct apply *a);
void apply_file_discard(struct apply *a);
int apply_reject_nul(struct apply *a, uint8_t type);
int apply_op_file(struct apply *a, int is_delta);
int apply_op_data(struct apply *a, const struct proto_msg *m);
int apply_op_seek(struct apply *a, const struct proto_msg *m);
int apply_op_file_end(struct apply *a, const struct proto_msg *m);

/* ----------------------------------------------- apply_patch.c */

int apply_op_patch(struct apply *a, const struct proto_msg *m);
int apply_op_patch_data(struct apply *a, const struct proto_msg *m);

/* ----------------------------------------------------- drift.c */

/* Bytes of drift copies kept under state_dir/drift/ at most. */
#define DRIFT_MAX_BYTES (1024ull * 1024 * 1024)

/*
 * Keep the standby's own version of a file before replication replaces
 * it: a hard link (else a copy of fd) at state_dir/drift/<set>/<source>/
 * <rel>.<unix time>, refused once drift/ would pass DRIFT_MAX_BYTES.
 * Writes the destination (or why not) into `where`.
 */
int drift_keep(const char *state_dir, const char *set, const char *src_abs,
               const char *rel, int dirfd, const char *leaf, int fd,
               uint64_t size, char *where, size_t wherelen);

#endif /* APPLY_INT_H */
