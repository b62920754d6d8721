/*
 * send_int.h - inside the primary's reconciliation (the sender).  Its
 * files call only down this list, which the sections below follow:
 *	sendwire.c	messages, entry operations, replies, progress
 *	sendopen.c	one of our files: open, refresh, changed?, FILE_END
 *	sendahead.c	read-ahead of a big file on a thread
 *	sendpatch.c	block patches and their records
 *	sendfile.c	whole files and librsync deltas
 *	sendidx.c	the index: journal and records of acknowledged runs
 *	send.c		the session: listings, the plan, metadata, deletes
 *	senddiff.c	restart: what differs from the index, stat only
 * (scripts/deps.sh checks it).  Only the sender's files include this.
 */
#ifndef SEND_INT_H
#define SEND_INT_H

#include <stdio.h>
#include <sys/stat.h>

#include "idx.h"
#include "prim_int.h"
#include "tree.h"

/* Decisions the sender keeps in scan_entry.flags of its own entries. */
#define P_SEND_FILE 0x0010 /* content differs: send it */
#define P_SEND_META 0x0020 /* only owner, mode, xattrs or time differ */
#define P_HASH 0x0040      /* same size, other mtime: compare hashes */
#define P_CREATED 0x0080   /* created (or recreated) on the standby */
#define P_DELTA 0x0100     /* send as a delta against the standby's copy */
#define P_REWRITTEN 0x0200 /* content was sent (hard links follow it) */
#define P_VMETA 0x0400     /* verify: metadata differs */
#define P_EVENT 0x0800     /* scoped run: the watcher saw this path change */
#define P_RECORDED 0x1000  /* the index already holds this fingerprint */
#define P_HELD 0x2000      /* a standby entry whose deletion was held back */
#define P_CTIME 0x4000     /* ctime or inode not the recorded ones: compare */

/* Blind scoped runs (send.c, blind_ok): at most this many paths, each a
 * regular file of at most this size (below block patches' threshold). */
#define BLIND_PATHS_MAX 64
#define BLIND_FILE_MAX (1024u * 1024 - 1)

/* Cut request and listing batches at this size. */
#define BATCH_FRAME_BYTES (1024u * 1024)

struct sender {
	const struct hs_conf *conf;
	const struct send_opts *o;
	struct send_report *rep;
	struct proto_conn *c;
	struct proto_wr w;
	struct proto_entry *e; /* scratch, 8 KiB */
	uint8_t *buf;          /* PROTO_CHUNK of file data */
	struct hs_buf out;     /* delta bytes waiting for a frame */
	struct hs_buf xa;      /* extended attributes of one entry */
	/* The set being reconciled. */
	const struct hs_pathset *set;
	int anchor[PROTO_SOURCES_MAX];
	char *leaf[PROTO_SOURCES_MAX];
	uint8_t missing[PROTO_SOURCES_MAX];
	struct scan_list mine;   /* pre-order */
	struct scan_list theirs; /* found by scan_list_find */
	/* Progress. */
	uint64_t todo_bytes;
	uint64_t done_bytes;
	uint64_t todo_files;
	uint64_t done_files;
	uint64_t start_ns;
	uint64_t shown_ns;
	uint64_t ticked_ns;
	struct proto_hello peer; /* the standby's HELLO */
	int scoped;              /* the set run is scoped to a few paths */
	uint64_t sets_opened;    /* sets (index < 64) the standby accepted */
	/* The file index and change journal (sendidx.c); idx NULL: none. */
	struct idx *idx;
	uint8_t id[PROTO_JOURNAL_ID_LEN];      /* our index's id */
	uint8_t peer_id[PROTO_JOURNAL_ID_LEN]; /* whose runs it applied */
	uint64_t acked;       /* last sequence acknowledged, per our index */
	uint64_t peer_seq;    /* highest it says it applied of peer_id's */
	uint64_t run_seq;     /* the run under way, 0: not numbered */
	uint64_t wal_seq;     /* its journal entry, 0: none written */
	uint64_t run_errors;  /* errors of this run (standby and ours) */
	uint64_t run_ops;     /* operations counted before this run */
	int renamed;          /* renames went out before this run */
	uint8_t (*skey)[8];   /* index key of each source of the set */
	struct send_blk *blk; /* block records (sendpatch.c), or NULL */
	int awaiting_done;    /* express: SET_END sent, SET_DONE unread */
	int timeout_ms;       /* how long a reply may take */
	struct send_failed failed; /* standby errors of the last set run */
};

/* ------------------------------------------- sendwire.c: the bottom */
/*
 * Tell the user about one path or set: "hamnsync: ..." on stderr from the
 * command line, a log line from the daemon.
 */
void send_note(struct sender *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * The path of entry e as configured ("/install/a/b"): send_path as it
 * is, any bytes; send_show escaped (hs_escape) for one line of a message,
 * and send_show_at the same for source `src` (checked by the caller) and
 * relative path `rel`.  Each in a buffer of its own, valid until its
 * next call.
 */
const char *send_path(struct sender *s, const struct scan_entry *e);
const char *send_show(struct sender *s, const struct scan_entry *e);
const char *send_show_at(struct sender *s, uint16_t src, const char *rel);
/* Queue an entry operation; with its extended attributes when it has. */
int send_entry(struct sender *s, uint8_t type, const struct scan_entry *se);
/* A dry run's entry: to o->dry_cb, else the line "what path" on stdout. */
void send_dry(struct sender *s, const char *what, const struct scan_entry *e);
/* Redraw the progress line if due (or `final`); run the tick if due. */
void send_progress(struct sender *s, int final);
/*
 * proto_conn_recv, running the daemon's tick while the standby works
 * (lists, hashes, signs, flushes a big file), so status and the express
 * lane do not wait for it.  HS_ETIMEOUT once the standby has been silent
 * (not even an ALIVE) for s->timeout_ms (send_recv) or limit_ms.
 */
int send_recv(struct sender *s, struct proto_msg *m);
int send_recv_within(struct sender *s, struct proto_msg *m, int limit_ms);
/* The tick's period while a session opens. */
#define SEND_WAIT_TICK_MS 5

/* ------------------------------------ sendopen.c: one file, opened */
/* Open our file for entry p (read-only, not following it). */
int send_open(struct sender *s, const struct scan_entry *p);
/* SHA-256 of our file for entry p; HS_ENOTFOUND if it is gone. */
int send_hash_mine(struct sender *s, const struct scan_entry *p,
                   uint8_t h[PROTO_HASH_LEN]);
/* Refresh p's metadata from open fd (st); HS_ENOTFOUND if no file. */
int send_refresh(struct sender *s, struct scan_entry *p, int fd,
                 struct stat *st);
/* Did the file on fd change since st was taken? */
int send_changed_since(int fd, const struct stat *st);
/* Queue OP_FILE_END: `changed` aborts the file, else h is its hash. */
int send_file_end(struct sender *s, struct scan_entry *p, int changed,
                  const uint8_t h[PROTO_HASH_LEN]);
/*
 * sendahead.c: a thread reads [off, end) of fd (borrowed) and feeds h and
 * t (borrowed, t may be NULL; the thread's until send_ahead_finish) while
 * the caller sends what it read.  send_ahead_next gives the next buffer
 * (*p, *n; valid until the next call) and returns 0 at the end;
 * send_ahead_finish stops and frees the reader and returns 1 when the file
 * was not read whole or grew (then h and t do not describe it).
 */
struct send_ahead;
struct blk_table;
int send_ahead_start(int fd, uint64_t off, uint64_t end, struct proto_hash *h,
                     struct blk_table *t, struct send_ahead **out);
int send_ahead_next(struct send_ahead *a, const uint8_t **p, size_t *n);
int send_ahead_finish(struct send_ahead *a);

/* ------------------------------------ block patches (sendpatch.c) */
/*
 * Send P_DELTA file p as its changed blocks if it has a record and few
 * enough blocks changed: 1 when sent (or skipped as changed while read),
 * 0 when it must take the signature path, or an error.
 */
int send_patch_try(struct sender *s, struct scan_entry *p);
/*
 * Content of p was sent (token = the hash its FILE_END carried, t = its
 * block table, or NULL when it gets no record); kept until SET_DONE.
 * Takes ownership of t's hashes.
 */
void send_blk_sent(struct sender *s, const struct scan_entry *p,
                   struct blk_table *t, const uint8_t token[PROTO_HASH_LEN],
                   int patched);
/* A PATCH_STALE frame before SET_DONE: remember its paths. */
int send_blk_stale(struct sender *s, const struct proto_msg *m);
/* SET_DONE arrived: store the records of this set run, drop stale ones. */
int send_blk_acked(struct sender *s);
/* The set run ended: forget records not acknowledged. */
void send_blk_reset(struct sender *s);
/*
 * Paths to send again through signatures in a scoped run (caller owns
 * *scope: proto_scope_free); returns how many, 0 when none.
 */
size_t send_blk_retry(struct sender *s, struct proto_scope **scope);
void send_blk_free(struct sender *s);

/* ------------------------- sendfile.c: whole files, librsync deltas */
/* Send one whole file (holes skipped), refreshing p's metadata. */
int send_file(struct sender *s, struct scan_entry *p);
/* Send every P_DELTA file: signatures in batches, then deltas. */
int send_deltas(struct sender *s);
/*
 * Express lane, after the plan: leave files above max_file_bytes and
 * hard-linked files to the bulk lane (no content, no hash, no delete of
 * the standby's entry at that path).
 */
void send_leave_large(struct sender *s);

/* ---------------------------------------------- sendidx.c: the index */
/*
 * After HELLO: learn what the standby applied of our runs.  A standby
 * that refuses instead: HS_EREFUSED, its words (escaped) in why.
 */
int sidx_session_open(struct sender *s, char *why, size_t whylen);
/*
 * A set run starts: its sequence (0 without an index), and its journal
 * entry (the scope's paths; none for a whole run), before anything of it
 * is sent.
 */
int sidx_run_start(struct sender *s, const struct proto_scope *scope,
                   size_t n_scope);
/* SET_RENAMES `body` (watch_take_renames) is about to go: journal it. */
int sidx_renames(struct sender *s, const struct hs_pathset *set,
                 const struct proto_wr *body);
/* The run changed nothing on the standby (refused, or nothing to do):
 * not numbered, and its journal entry goes. */
void sidx_run_void(struct sender *s);
/* Key prefixes of the set's sources (s->skey), computed once per run. */
int sidx_set_keys(struct sender *s);
/* The record an entry would get: its stat fingerprint. */
void sidx_fingerprint(const struct scan_entry *e, struct idx_file *f);
/* Do two records match (the entry did not change)? */
int sidx_same_rec(const struct idx_file *a, const struct idx_file *b);
/* Mark our regular files rewritten since acknowledged (P_CTIME). */
void sidx_mark_rewritten(struct sender *s);
/* SET_END's payload (id + sequence), or nothing without a journal. */
void sidx_set_end_body(struct sender *s, struct proto_wr *w);
/* SET_DONE acknowledged sequence `seq` (0: none echoed). */
int sidx_run_acked(struct sender *s, uint64_t seq,
                   const struct proto_scope *scope, size_t n_scope);

/* ------------------------------------ send.c: listing our side */
/* List the whole set on our side into s->mine, stat only (sources
 * opened); send_reset_set forgets it all. */
int send_list_stat(struct sender *s, const struct hs_pathset *set);
void send_reset_set(struct sender *s);

#endif /* SEND_INT_H */
