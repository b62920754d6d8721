/*
 * prim_int.h - inside the primary: the watcher (watch_) and the session
 * with the standby that the daemon keeps open (send_session_,
 * send_prescan_).  Only primary/ and its tests include this.
 */
#ifndef PRIM_INT_H
#define PRIM_INT_H

#include <stdint.h>

#include "hs.h"
#include "primary.h"
#include "proto.h"

struct idx;

/* Reconnect backoff of both lanes: from 200 ms, doubling, capped at 10 s
 * (hs_backoff_next). */
#define PRIM_BACKOFF_MIN_MS 200
#define PRIM_BACKOFF_MAX_MS 10000

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
int watch_dir_add(struct watch *w, uint16_t set, uint16_t src, const char *rel);
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

/* ------------------------------------------ primary: its own listener */

/* What a peer said of itself in its HELLO. */
struct prim_peer {
	char name[PROTO_NODE_MAX + 1];
	uint8_t role;  /* enum hs_role */
	uint8_t flags; /* PROTO_HELLO_F_* */
	uint64_t epoch;
};

/*
 * The listener child (listen.c): fork it, before any thread exists, to
 * own conf->listen (a bind that fails is one warning and tried again
 * with a backoff).  It answers a probe with this node's HELLO (epoch,
 * PROTO_HELLO_F_FENCED when `fenced`) and another primary's session with
 * that HELLO then an ERROR, and reports each peer's HELLO.  The child
 * closes close_fds (the pid file's lock, the control socket).  *out is
 * NULL when no listen is configured; the caller owns it.  `conf` and
 * `tls` are borrowed until prim_lis_stop.
 */
struct prim_lis;
int prim_lis_start(const struct hs_conf *conf, struct proto_tls *tls,
                   uint64_t epoch, int fenced, const int *close_fds,
                   size_t n_close, struct prim_lis **out);
/* Its descriptor, for POLLIN (a report waits); -1 when none. */
int prim_lis_fd(const struct prim_lis *l);
/* One peer's HELLO into *peer: HS_OK, or HS_WANT_READ when none waits. */
int prim_lis_read(struct prim_lis *l, struct prim_peer *peer);
/* Tell it this node's epoch and whether it is fenced now. */
void prim_lis_tell(struct prim_lis *l, uint64_t epoch, int fenced);
/* Stop the child (SIGTERM, by its PID), reap it and free l. */
void prim_lis_stop(struct prim_lis *l);

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
                      struct proto_scope **scope, size_t *n, uint64_t *records);
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
                      struct proto_scope **scope, size_t *n, uint64_t *records);
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

#endif /* PRIM_INT_H */
