/*
 * syncd.h - replication: scanning trees, the primary's sender, the
 * standby's receiver and the confined writer that applies changes to disk.
 *
 * A change travels scan -> send -> (wire) -> recv -> apply.
 */
#ifndef SYNCD_H
#define SYNCD_H

#include <stdint.h>
#include <sys/types.h>

#include "hs.h"
#include "proto.h"

struct idx;

/* Temporary files carry this prefix; leftovers are removed at start. */
#define FS_TMP_PREFIX ".hamnsync-tmp."

/* ------------------------------------------------------- confined paths */

/*
 * Check a path relative to a source as received from a peer: "" (the
 * source itself) or components separated by single '/', none empty, "."
 * or "..", each at most PROTO_NAME_MAX bytes, at most PROTO_DEPTH_MAX of
 * them, PROTO_PATH_MAX bytes in all.  HS_ECONFINE or HS_ELIMIT otherwise.
 */
int fs_relpath_check(const char *rel);

/*
 * Open directory `rel` (relative, "" = dirfd itself) beneath `dirfd`
 * without following any symlink and without leaving dirfd (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk on kernels
 * without it).  Returns an O_PATH fd the caller owns, HS_ECONFINE when a
 * component is a symlink or escapes, -errno otherwise.
 */
int fs_open_dir_beneath(int dirfd, const char *rel);

/*
 * Like fs_open_dir_beneath, creating missing components with `mode`.
 */
int fs_mkdir_beneath(int dirfd, const char *rel, mode_t mode);

/*
 * Remove FS_TMP_PREFIX leftovers in directory dirfd/rel, and below it when
 * `recursive` (confined walk).  A missing directory is not an error.
 */
int fs_clean_tmp(int dirfd, const char *rel, int recursive, size_t *removed);

/* ------------------------------------------------ extended attributes */

/*
 * Read all extended attributes (POSIX ACLs and file capabilities among
 * them) of the entry `name` in dirfd, without following it, into `blob`
 * (the wire format of proto_xattr_next, sorted by name).  Symlinks have
 * none as far as hamnsync is concerned.  A filesystem without xattr
 * support gives an empty blob.
 */
int xa_read_at(int dirfd, const char *name, struct hs_buf *blob);
int xa_read_fd(int fd, struct hs_buf *blob);
/* 16-byte digest of a blob; all zero for an empty one. */
void xa_digest(const uint8_t *blob, size_t len, uint8_t out[PROTO_XHASH_LEN]);
/*
 * Make the entry's attributes exactly `blob`: set each, remove the others.
 * Returns HS_OK or the first error (-errno).
 */
int xa_apply_fd(int fd, const uint8_t *blob, size_t len);
int xa_apply_at(int dirfd, const char *name, const uint8_t *blob, size_t len);

/* ------------------------------------------------------ librsync deltas */

/* Below this size on either side a file travels whole: cheaper. */
#define DELTA_MIN_SIZE (4u * 1024)
/*
 * A signature holds at most this many blocks: the block length grows with
 * the file instead, so memory stays bounded whatever the size (32768 x 36
 * bytes = 1.2 MiB at most).
 */
#define SIG_BLOCKS_MAX 32768u

/* Receives output of a librsync job; returns HS_OK or an error. */
typedef int (*delta_emit_fn)(void *arg, const uint8_t *p, size_t n);

/*
 * Hash and librsync signature (BLAKE2 strong sums, never MD4) of the file
 * open on fd, in one read pass.  `sig` must have max >= PROTO_SIG_MAX.
 */
int delta_sig_fd(int fd, struct hs_buf *sig, uint8_t hash[PROTO_HASH_LEN],
                 uint64_t *size);
/*
 * Check a signature from the peer before anything is allocated for it:
 * BLAKE2 magic, sane block and strong-sum lengths, whole blocks, at most
 * SIG_BLOCKS_MAX of them.  HS_EPROTO or HS_ELIMIT with a reason in why.
 */
int delta_sig_check(const uint8_t *sig, size_t len, char *why, size_t whylen);

struct delta_enc;
/* Load a checked signature; caller owns *out. */
int delta_enc_new(const uint8_t *sig, size_t len, struct delta_enc **out);
/* Feed new-file bytes (eof set with the last); delta bytes go to emit. */
int delta_enc_feed(struct delta_enc *e, const uint8_t *p, size_t n, int eof,
                   delta_emit_fn emit, void *arg);
void delta_enc_free(struct delta_enc *e);

struct delta_dec;
/*
 * Apply a delta against basis_fd (borrowed, basis_size bytes).  Copies
 * must lie inside the basis and be non-empty, and the output may not pass
 * max_out bytes: a hostile delta fails with HS_EPROTO or HS_ELIMIT and a
 * reason (delta_dec_why), never reads outside the basis or grows memory.
 * An error of emit (the output's write: a full disk) is not the delta's:
 * feed returns it as it is and delta_dec_why stays empty.
 */
int delta_dec_new(int basis_fd, uint64_t basis_size, uint64_t max_out,
                  struct delta_dec **out);
int delta_dec_feed(struct delta_dec *d, const uint8_t *p, size_t n, int eof,
                   delta_emit_fn emit, void *arg);
const char *delta_dec_why(const struct delta_dec *d);
void delta_dec_free(struct delta_dec *d);

/* ------------------------------------------------------------- scanning */

/* One entry of a tree listing. */
struct scan_entry {
	char *path;     /* relative to its source; "" = the source */
	char *link;     /* symlink target, else NULL */
	uint16_t src;   /* index of the source in its set */
	uint8_t type;   /* enum proto_etype */
	uint16_t flags; /* SCAN_F_* and the sender's P_* */
	uint32_t mode;  /* permission bits (07777) */
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec; /* primary: change time, for the file index */
	int64_t ctime_sec;
	uint32_t nlink;
	uint64_t rdev;
	uint64_t dev;
	uint64_t ino;
	uint64_t blocks; /* 512-byte blocks allocated */
	uint8_t xhash[PROTO_XHASH_LEN];
	uint32_t leader; /* sender: 1 + index of the entry this
	                    one is hard-linked to, or 0 */
};

/* A regular file with fewer blocks allocated than its size needs. */
#define SCAN_IS_SPARSE(e)                                                      \
	((e)->type == PROTO_E_FILE && (e)->blocks * 512 + 4096 <= (e)->size)

#define SCAN_F_SEEN 0x01   /* matched by a primary entry */
#define SCAN_F_DIRTY 0x02  /* a directory whose contents changed */
#define SCAN_F_GONE 0x04   /* to be deleted on the standby */
#define SCAN_F_RETYPE 0x08 /* deleted to be recreated as another type */

struct scan_list {
	struct scan_entry *v;
	size_t n;
	size_t cap;
	size_t bytes; /* memory held, for the limit */
	struct scan_ix *ix; /* scan_list_index's table, or NULL */
	size_t ix_mask;
};

/* Entries one listing may hold (16M: ~2 GiB of memory at most). */
#define SCAN_ENTRIES_MAX (16u * 1024 * 1024)

/* Is `rel` excluded by `set` (basename match, or full path with '/')? */
int scan_excluded(const struct hs_pathset *set, const char *rel);

/*
 * List the entry named `leaf` in directory `anchorfd`, whose path relative
 * to its source is `prefix`, and when it is a directory and `recursive`,
 * everything below it, into `out` (appending, pre-order).  Follows no
 * symlink, skips excluded paths and FS_TMP_PREFIX files.  A missing leaf
 * is not an error.  Sockets are skipped with a debug log.
 */
struct xcache; /* xcache_int.h: NULL reads every entry's attributes */
int scan_subtree(int anchorfd, const char *leaf, uint16_t src,
                 const char *prefix, int recursive,
                 const struct hs_pathset *set, struct scan_list *out,
                 struct xcache *xc);
/* The same walk, each entry shown to v->entry (on this thread) instead of
 * listed; v->dir, if set, as scan_tree_visit says. */
struct scan_visit;
int scan_subtree_visit(int anchorfd, const char *leaf, uint16_t src,
                       const char *prefix, int recursive,
                       const struct hs_pathset *set,
                       const struct scan_visit *v, struct xcache *xc);
/* The whole source, stat only: no extended attributes are read (xhash
 * stays zero; ctime tells their changes). */
int scan_tree_stat(int anchorfd, const char *leaf, uint16_t src,
                   const struct hs_pathset *set, struct scan_list *out);
/*
 * The walk of scan_tree_stat, shown to callbacks instead of listed, on
 * SCAN_WORKERS threads (`worker` says which: 0 is the calling thread).
 * `entry` sees every entry (borrowed, valid during the call); `dir`, if
 * set, sees each directory's path after its entry and before it is read,
 * so a watch it adds sees every change the listing may miss.  Both may
 * run on several threads at once; a result < 0 stops the walk with it.
 */
#define SCAN_WORKERS 2
struct scan_visit {
	int (*dir)(void *arg, unsigned worker, const char *rel);
	int (*entry)(void *arg, unsigned worker, const struct scan_entry *e);
	void *arg;
};
int scan_tree_visit(int anchorfd, const char *leaf, uint16_t src,
                    const struct hs_pathset *set, const struct scan_visit *v);
int scan_entry_add(struct scan_list *l, const struct scan_entry *e);
/*
 * Index the list by a hash of (src, path), its order kept (a sort was a
 * tenth of a no-change sync's CPU): scan_list_find is quick from then
 * until the next add, which drops the index (a find then reads the list).
 * HS_EPROTO, *dup set, when a (src, path) is listed twice (a peer's
 * listing: one copy would be planned unchanged, the other deleted).
 */
int scan_list_index(struct scan_list *l, const struct scan_entry **dup);
struct scan_entry *scan_list_find(struct scan_list *l, uint16_t src,
                                  const char *path);
void scan_list_free(struct scan_list *l);
/* Fill a wire entry from a listing entry. */
void scan_to_proto(const struct scan_entry *s, struct proto_entry *e);

/* ------------------------------------------------- primary: the watcher */

struct watch;
/*
 * Watch every source of every set in `conf` (borrowed for the watcher's
 * life) with inotify.  Caller owns *out.
 */
int watch_new(const struct hs_conf *conf, struct watch **out);
/*
 * The same, but the trees of directory sources are left unwatched: the
 * caller walks each (scan_tree_visit) calling watch_dir_add for every
 * directory before it is listed, then watch_deferred_done, and at the
 * end watch_ready, which watches whatever was left with the usual walk.
 * No event of a deferred tree is lost that its walk would not see.
 */
int watch_new_deferred(const struct hs_conf *conf, struct watch **out);
/* A deferred directory source's real path; NULL for any other source. */
const char *watch_root(const struct watch *w, uint16_t set, uint16_t src);
/* Watch directory `rel` of a deferred source; thread-safe.  Past the
 * watch limit the subtree is left to the rescan timer, as watch_new does. */
int watch_dir_add(struct watch *w, uint16_t set, uint16_t src,
                  const char *rel);
/* The source's walk ended; not `walked` to the end: watch it whole now. */
void watch_deferred_done(struct watch *w, uint16_t set, uint16_t src,
                         int walked);
void watch_ready(struct watch *w);
void watch_free(struct watch *w);
/* The inotify descriptor, for poll. */
int watch_fd(const struct watch *w);
/* Directories watched, and subtrees left to the rescan timer. */
size_t watch_count(const struct watch *w);
size_t watch_unwatched(const struct watch *w);
/* Has set `set` subtrees without watches (seen only by the rescan)? */
int watch_unwatched_in(const struct watch *w, uint16_t set);
/* Read all queued events into the dirty sets; never blocks. */
int watch_drain(struct watch *w);
/* When the next file left open is due (monotonic ns), or UINT64_MAX. */
uint64_t watch_next_due(const struct watch *w);
/* Mark the unwatched subtrees dirty, after trying again for their
 * watches (call every rescan_interval). */
void watch_rescan_unwatched(struct watch *w);
/* Has set `set` changes waiting? */
int watch_pending(const struct watch *w, uint16_t set);
/* Has set `set` files still open for writing, not yet in its changes? */
int watch_delayed(const struct watch *w, uint16_t set);
/*
 * Bytes of events the kernel holds that watch_drain has not read yet
 * (FIONREAD); a failing ioctl counts as 1.  Never blocks.
 */
size_t watch_unread(const struct watch *w);
/*
 * Take the changes of set `set`: *full when the whole set needs a
 * reconciliation, else the scope (caller owns it: proto_scope_free),
 * sorted with each directory before what is below it.
 */
int watch_take(struct watch *w, uint16_t set, struct proto_scope **scope,
               size_t *n, int *full);

/*
 * Take the renames seen in set `set` (call before watch_take): encodes
 * "u32 n, n x (u16 src, str from, str to)" into `out` (the body of
 * PROTO_T_SET_RENAMES after the set name) and returns n (0: nothing
 * written).
 */
size_t watch_take_renames(struct watch *w, uint16_t set, struct proto_wr *out);
/*
 * The express lane: copy into *scope (caller owns it: proto_scope_free)
 * at most `max` distinct entries of set `set` that arrived since the last
 * call, skipping what a small scoped run cannot do alone (recursive
 * entries, what is below them, the ends of renames).  Everything stays
 * in the dirty set for the next watch_take: the bulk lane looks again,
 * so a failed or partial express run loses nothing.  Never blocks.
 */
int watch_take_express(struct watch *w, uint16_t set, size_t max,
                       struct proto_scope **scope, size_t *n);
/* Has set `set` entries the express lane has not looked at yet? */
int watch_express_pending(const struct watch *w, uint16_t set);
/* When the oldest change of the last watch_take was seen (0: none). */
uint64_t watch_taken_since(const struct watch *w);
/* Changes waiting: when the oldest was seen (0: none), how many paths. */
void watch_pending_stats(const struct watch *w, uint64_t *oldest_ns,
                         uint64_t *paths);

/* --------------------------------------------------- primary: one sync */

/* What a reconciliation found and did. */
struct send_report {
	uint64_t files_sent;    /* whole files */
	uint64_t patch_files;   /* of delta_files: sent as changed blocks */
	uint64_t bytes_sent;    /* their content bytes */
	uint64_t delta_files;   /* files sent as librsync deltas */
	uint64_t delta_bytes;   /* delta bytes (before zstd) */
	uint64_t delta_covered; /* size of the files they rebuild */
	uint64_t links;         /* hard links made */
	uint64_t specials;      /* fifos and device nodes */
	uint64_t held;          /* deletions held back */
	uint64_t meta_only;
	uint64_t deleted;
	uint64_t dirs;
	uint64_t symlinks;
	uint64_t unchanged;
	uint64_t remote_errors; /* errors reported by the standby */
	uint64_t sets_refused;
	uint64_t changed_during; /* files changed while being read */
	uint64_t standby_files;  /* non-directories the standby listed */
	uint64_t primary_files;  /* non-directories listed here */
	uint64_t primary_bytes;  /* their sizes */
	uint64_t differences;    /* verify: entries that differ */
	uint64_t wire_out;       /* bytes written to the socket */
	uint64_t wire_in;
	uint64_t left_to_bulk; /* express: files left to the bulk lane */
	uint64_t blind_runs;   /* scoped runs sent without a listing */
	int idx_rc;            /* the index could not be written: why */
	int idx_written;       /* ... or it took this run's records */
};

struct send_opts {
	int dry_run;
	int progress;         /* show progress on stdout (a tty) */
	uint64_t epoch;       /* this node's epoch, sent in HELLO */
	char **allow_deletes; /* set names whose deletes go ahead */
	size_t n_allow_deletes;
	int quiet;             /* daemon: log only, no stderr lines */
	uint64_t guard_files;  /* scoped runs: the set's file count */
	uint64_t guard_recent; /* scoped runs: deletes this minute */
	int verify;            /* compare only (hashes), change nothing */
	/* verify: called for each difference with the path and why. */
	void (*verify_cb)(void *arg, const char *path, const char *why);
	void *verify_arg;
	/* Called often during long transfers (the daemon serves status). */
	void (*tick)(void *arg);
	void *tick_arg;
	/*
	 * The primary's index (borrowed): file records and the journal
	 * (restarts), block records of big files (a changed one travels as
	 * its changed blocks); NULL: none kept.
	 */
	struct idx *idx;
	/*
	 * Without idx: the index whose journal alone takes each run's
	 * entry before it is sent (the express lane: see sendidx.c).
	 */
	struct idx *journal;
	/*
	 * Journal entries an acknowledged run leaves in place though older
	 * (borrowed, sorted no matter): express runs the standby may still
	 * apply (express_settle), replayed at the next session instead.
	 */
	const uint64_t *journal_keep;
	size_t n_journal_keep;
	/*
	 * The express lane (syncd/express.c): say so in HELLO, leave to
	 * the bulk lane every file above max_file_bytes (also one that grew
	 * since it was listed), every hard-linked file, and the files past
	 * max_run_bytes of content in one run (0: no limit); and return
	 * from send_session_set once SET_END is sent: the standby's
	 * SET_DONE is read by send_session_done.
	 */
	int express;
	uint64_t max_file_bytes;
	uint64_t max_run_bytes;
	/* Connect, and wait for each reply, at most this long (0: the
	 * peer_timeout-based defaults). */
	int timeout_ms;
	/*
	 * This node's TLS identity, loaded once at start (borrowed); NULL:
	 * each session loads it from the config.
	 */
	struct proto_tls *tls;
};

/*
 * Connect to the configured peer and reconcile every path set once.
 * Returns HS_OK when the session completed (differences may remain: see
 * the report; each is printed on stderr), or a failure: -errno/HS_ETLS/
 * HS_EAUTH/HS_EVERSION/HS_EBUSY/HS_EREFUSED when the peer could not be
 * reached or authenticated (message in `why`).  Blocks.
 */
int send_sync(const struct hs_conf *conf, const struct send_opts *o,
              struct send_report *rep, char *why, size_t whylen);

/* ---------------------------------------- standby: one primary session */

/*
 * Serve one authenticated primary on `c` after the handshake: open sets,
 * list, hash, apply, report.  Returns HS_OK after BYE, or the error that
 * ended the session (logged).  `stop` is polled between frames.
 */
/*
 * What a session child tells the standby daemon about its primary, for
 * status: sent on report_fd (a SOCK_SEQPACKET) as frames arrive, at most
 * every RECV_REPORT_MS.
 */
#define RECV_REPORT_MS 100
#define RECV_FAILED_SETS 8 /* sets with failed paths a report names */
struct recv_report {
	uint64_t heard_ns;      /* CLOCK_MONOTONIC of the last frame */
	uint64_t lag_ms;        /* the primary's lag, UINT64_MAX: not told */
	uint64_t pending;       /* the primary's changes waiting */
	uint64_t epoch;         /* the primary's epoch */
	double applied_wall;    /* wall clock of the last SET_DONE, or -1 */
	uint64_t applied_total; /* entries applied in this session */
	uint64_t errors_total;  /* errors reported in this session */
	uint64_t bytes_in;      /* TLS bytes read in this session */
	uint64_t bytes_out;
	uint8_t in_sync; /* the primary says it is caught up */
	int32_t idx_rc;  /* the last run could not be recorded: why */
	char primary[PROTO_NODE_MAX + 1];
	/*
	 * Sets whose last run left errors here (paths not applied), until
	 * the primary says it is caught up again: its retries applied them.
	 */
	uint8_t n_failed;
	struct recv_failed {
		char set[PROTO_NODE_MAX + 1];
		uint64_t errors; /* of that run */
		char first[256]; /* the first path that failed */
		char why[256];   /* ... and why */
	} failed[RECV_FAILED_SETS];
};

int recv_session(const struct hs_conf *conf, int rootfd, struct proto_conn *c,
                 volatile int *stop, int report_fd,
                 const struct proto_hello *peer);

/*
 * A session with the standby that stays open (the primary daemon): open
 * it, reconcile sets whole or scoped to a few paths, ping it.  Blocking,
 * with the peer_timeout-based timeouts.  Returns as send_sync does.
 */
struct sender;
int send_session_open(const struct hs_conf *conf, const struct send_opts *o,
                      struct sender **out, char *why, size_t whylen);
int send_session_set(struct sender *s, const struct hs_pathset *set,
                     const struct proto_scope *scope, size_t n_scope,
                     struct send_report *rep);
/*
 * Express lane: read the SET_DONE of the last send_session_set, waiting
 * up to timeout_ms for it (0: only look).  HS_OK when read (the report
 * given to send_session_set is complete) or when none is awaited,
 * HS_WANT_READ when it has not come yet, or the error that ended the
 * session.  No other call but send_session_close may come in between.
 */
int send_session_done(struct sender *s, int timeout_ms);
/*
 * What the standby could not apply in the last send_session_set: each
 * error line it sent tied to the path it names (a directory recursive,
 * so what is below it goes again too).  An error tied to no path the run
 * listed, or past the lines SET_DONE carries, counts in `loose`.
 */
struct send_failed {
	struct proto_scope *v; /* owned: proto_scope_free */
	size_t n;
	size_t cap;
	uint64_t errors; /* errors the standby reported in all */
	uint64_t loose;
	int refused; /* the standby refused the set (why says why) */
	char first[PROTO_PATH_MAX + 1]; /* the first path, as configured */
	char why[256];                  /* what went wrong with it */
};
/* Take the failures of the last send_session_set into *f (the caller
 * owns f->v from then on); all zero when it had none. */
void send_session_failed(struct sender *s, struct send_failed *f);
/* Progress of the run under way, 0..1 of its bytes. */
double send_session_progress(const struct sender *s);
/* The standby's HELLO (name, role, epoch); borrowed. */
const struct proto_hello *send_session_peer(const struct sender *s);
/* The journal entry of the last set run, 0: none (nothing to send). */
uint64_t send_session_journalled(const struct sender *s);
/* Tell the standby our lag and pending changes (one-way, no reply). */
int send_session_state(struct sender *s, uint64_t lag_ms, uint64_t pending,
                       int in_sync);
/*
 * Send the renames of set `set` (body from watch_take_renames, after the
 * set name) so the standby renames its copies first; no reply.
 */
int send_session_renames(struct sender *s, const struct hs_pathset *set,
                         const struct proto_wr *body);
/*
 * May our index stand for the standby's tree?  Only when the standby
 * says it applied exactly the last run our index saw acknowledged;
 * otherwise 0 with the reason in `why`.
 */
int send_session_resumable(const struct sender *s, char *why, size_t whylen);
/*
 * What differs between set `set` on disk and our index (stat only): one
 * non-recursive scope entry per path created, changed or gone since it
 * was last acknowledged.  *records: non-directory records of the set
 * (the delete guard's measure).  HS_ELIMIT past PROTO_SCOPE_MAX paths.
 */
int send_session_diff(struct sender *s, const struct hs_pathset *set,
                      struct proto_scope **scope, size_t *n,
                      uint64_t *records);
/*
 * At start, before any session: send_session_diff for every set of
 * `conf`, made by one walk per source that also adds the watches of the
 * deferred watcher `w` (watch_new_deferred).  It runs on a thread of its
 * own, so a session can open meanwhile: until send_prescan_wait returns,
 * `w` is the walk's (then watch_ready is the caller's) and `x` is read
 * by it too.  Caller owns *out (send_prescan_free, which waits).
 * HS_ENOTFOUND without an index.
 */
struct send_prescan;
int send_prescan_start(const struct hs_conf *conf, struct idx *x,
                       struct watch *w, struct send_prescan **out);
void send_prescan_wait(struct send_prescan *p);
/*
 * Take set `set`'s result: what send_session_diff would give (the caller
 * owns *scope), or the walk's error; HS_ENOTFOUND when there is none
 * (p NULL, or taken or dropped before).
 */
int send_prescan_take(struct send_prescan *p, size_t set,
                      struct proto_scope **scope, size_t *n,
                      uint64_t *records);
/* Forget set `set`'s result: it is only good for the first session. */
void send_prescan_drop(struct send_prescan *p, size_t set);
void send_prescan_free(struct send_prescan *p);
/* PING the standby and wait up to timeout_ms for its PONG (the tick
 * runs meanwhile). */
int send_session_ping(struct sender *s, int timeout_ms);
/* When the standby was last heard (any frame): hs_now_mono_ns() time. */
uint64_t send_session_heard(const struct sender *s);
/* Say BYE (if `bye`) and free the session; NULL is fine. */
void send_session_close(struct sender *s, int bye);

/* ------------------------------------------------ standby: the daemon */

/*
 * Run the standby: listen, serve one primary at a time, apply under
 * target_root.  Returns when SIGTERM/SIGINT arrives (HS_OK) or on a fatal
 * start-up error (logged).  `conf_path` is re-read on SIGHUP.  Takes
 * ownership of `conf` and of `tls`, this node's identity, which the
 * caller loaded from `conf` before anything else.
 */
int stdby_run(const char *conf_path, struct hs_conf *conf,
              struct proto_tls *tls, int foreground);

/* ------------------------------------------------ primary: the daemon */

/*
 * Run the primary: watch every source, keep one session to the standby,
 * replicate each change as it happens (and everything at each connect).
 * Returns HS_OK after SIGTERM/SIGINT, having sent what changed until
 * then; SIGHUP reloads `conf_path`; SIGUSR1 reconciles every set now.
 * Takes ownership of `conf`, of `tls` (this node's identity, which the
 * caller loaded from `conf` before anything else: a reconnect never reads
 * the key again), and of the index `x` when not NULL (the caller opened
 * and checked it already: it is not checked twice).
 */
int prim_run(const char *conf_path, struct hs_conf *conf,
             struct proto_tls *tls, struct idx *x, uint64_t epoch,
             int foreground);
/* The pid of a daemon running on state_dir, or 0. */
int daemon_running_pid(const char *state_dir);

/* -------------------------------------------- the confined applier */

struct apply;

/*
 * Start applying set `set` (configured on this node) beneath `rootfd`
 * (target_root).  Creates the sources' parent directories if missing.
 * Returns HS_ECONFINE if a parent is a symlink.  Caller owns *out.
 */
int apply_open(int rootfd, const struct hs_pathset *set, struct apply **out,
               char *why, size_t whylen);
/*
 * Handle one operation frame (PROTO_T_OP_*).  Per-path problems are
 * recorded (see apply_errors) and return HS_OK; only a protocol violation
 * returns an error, after which the object is poisoned.
 */
int apply_op(struct apply *a, const struct proto_msg *m);
/* Make everything applied so far durable (fsync, rename, dir fsync). */
int apply_flush(struct apply *a);
/* Discard an unfinished file (its temporary is removed). */
void apply_abort(struct apply *a);
void apply_free(struct apply *a);
/* Counters and the first PROTO_ERRORS_MAX error lines. */
uint64_t apply_applied(const struct apply *a);
uint64_t apply_error_count(const struct apply *a);
const char *apply_error_line(const struct apply *a, size_t i);
size_t apply_error_lines(const struct apply *a);
/* The first error's path and (*why) what went wrong, "" when none;
 * borrowed, valid until apply_free. */
const char *apply_error_first(const struct apply *a, const char **why);
/*
 * SHA-256 of the regular file (src, rel) beneath the set's anchor, opened
 * confined and without following symlinks.  HS_ENOTFOUND if absent or not
 * a regular file.
 */
int apply_hash_file(struct apply *a, uint16_t src, const char *rel,
                    uint8_t out[PROTO_HASH_LEN]);
/*
 * Hash and librsync signature of the regular file (src, rel), opened as
 * apply_hash_file does.  HS_ENOTFOUND if absent or not a regular file.
 */
int apply_sig_file(struct apply *a, uint16_t src, const char *rel,
                   struct hs_buf *sig, uint8_t hash[PROTO_HASH_LEN],
                   uint64_t *size);
/*
 * List (src, rel) of our copy, and what is below it when `recursive`,
 * confined like every other access: each entry is shown to v->entry as
 * the walk meets it (and each directory to v->dir, if set).  Nothing
 * there lists nothing.  xc (or NULL): as scan_subtree_visit.
 */
int apply_list(struct apply *a, uint16_t src, const char *rel, int recursive,
               const struct scan_visit *v, struct xcache *xc);
/*
 * Mirror a rename within source `src` (neither path ""): our copy at
 * `from` moves to `to`, replacing a file there like rename(2).  Failing
 * is not an error: the scoped reconciliation that follows repairs it.
 */
int apply_rename(struct apply *a, uint16_t src, const char *from,
                 const char *to);
/* SHA-256 of everything readable from fd. */
int fs_hash_fd(int fd, uint8_t out[PROTO_HASH_LEN]);
/* Record an error line for `path` (used by the receiver too). */
void apply_error(struct apply *a, const char *path, const char *what, int rc);
/*
 * Block patches (syncd/patch_int.h) and drift: keep a record (stat
 * fingerprint + content token) of each file written, in index `x`
 * (borrowed), accept OP_PATCH against it, and keep a file changed here
 * since its record below state_dir/drift/ before replacing it.
 * Without this call no records are kept and every patch is stale.
 */
void apply_set_records(struct apply *a, struct idx *x, const char *state_dir);
/*
 * Records of written files are committed without a flush; the run's
 * acknowledgement (idx_applied_put) flushes them.  A run acknowledged
 * without one (express lane, no index sequence) calls this instead.
 */
void apply_records_sync(struct apply *a);
/*
 * Versions of files kept under state_dir/drift/ because something else
 * than hamnsync changed them on this standby (counted up to `max`).
 */
uint64_t drift_count(const char *state_dir, uint64_t max);
/*
 * The body of PROTO_T_PATCH_STALE (patches whose basis was not the
 * recorded one) into `w`: 1 when there is one to send, else 0.
 */
int apply_stale_encode(const struct apply *a, struct proto_wr *w);

#endif /* SYNCD_H */
