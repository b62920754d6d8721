/*
 * express_int.h - the primary's express lane (express.c), used by
 * primary.c: a second session to the standby that carries small changes
 * while the main session (the bulk lane) is busy with a long run, so an
 * edit of /etc/hosts does not wait for a 4 GiB file.  Only primary/
 * includes this.
 */
#ifndef EXPRESS_INT_H
#define EXPRESS_INT_H

#include <stdint.h>

#include "prim_int.h"

/* A bulk run counts as long, and the express lane starts, after this. */
#define EXPRESS_AFTER_NS (10ull * 1000 * 1000)

struct express;

/*
 * An express lane for `conf` and the identity `tls` (both borrowed for
 * its life), not connected yet: it connects when it first has work.
 * Caller owns *out.
 */
int express_new(const struct hs_conf *conf, struct proto_tls *tls,
                uint64_t epoch, struct express **out);
/* Close the session (BYE) and free; NULL is fine. */
void express_free(struct express *x);
/*
 * The primary's index (borrowed, NULL: none) whose journal takes each
 * run's paths before it is sent.
 */
struct idx;
void express_journal(struct express *x, struct idx *idx);

/*
 * What a run of the lane left undone counts as a bulk run's would: after
 * each run's SET_DONE, fn gets the set, the run's report (deletions held
 * back) and what the standby failed to apply (fn owns f->v).
 */
typedef void express_done_fn(void *arg, size_t set,
                             const struct send_report *rep,
                             struct send_failed *f);
void express_on_done(struct express *x, express_done_fn *fn, void *arg);

/*
 * Called from the daemon's tick while the bulk lane is in a run: send the
 * changes the watcher collected since the last call that are small (see
 * watch_take_express and send_opts.max_file_bytes), at most a bounded
 * batch per set, each set as a scoped reconciliation acknowledged once
 * durable on the standby.  The changes stay in the watcher for the bulk
 * lane.  `guard_files` and `deleted` (per set) feed the delete guard,
 * which counts into `deleted` as the bulk lane's scoped runs do.  Blocks for
 * one batch; a failure closes the lane (logged, retried after a backoff), never
 * the bulk lane.
 */
void express_tick(struct express *x, struct watch *w,
                  const uint64_t *guard_files, uint64_t *deleted);

/*
 * Before the bulk lane starts a run: wait (at most the lane's timeout)
 * until the standby made the express run in flight durable, else close
 * the lane.  Every run the lane closed on without its acknowledgement
 * (the standby may still apply it) is in *keep, *n_keep (the lane's, valid
 * until the next call): no bulk run may take their journal entries for
 * covered; the next session's replay does (express_kept_clear).
 */
void express_settle(struct express *x, const uint64_t **keep, size_t *n_keep);
void express_kept_clear(struct express *x);

/* Ping the lane when it has been idle for `heartbeat`; close it on error. */
void express_heartbeat(struct express *x);

/* Express runs done, and paths they looked at, since the start. */
uint64_t express_runs(const struct express *x);
uint64_t express_paths(const struct express *x);

#endif /* EXPRESS_INT_H */
