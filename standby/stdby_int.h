/*
 * stdby_int.h - inside the standby: the receiver of one primary session
 * (recv_) and what it asks of the confined applier (apply_); the
 * applier's own internals are in apply_int.h.  Only standby/ and its
 * tests include this.
 */
#ifndef STDBY_INT_H
#define STDBY_INT_H

#include <stdint.h>

#include "delta.h"
#include "hs.h"
#include "idx.h"
#include "proto.h"
#include "standby.h"
#include "tree.h"

/* ---------------------------------------- one primary session */

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
	uint64_t db_runs; /* runs of a database's set in this session */
	uint8_t in_sync;  /* the primary says it is caught up */
	int32_t idx_rc;  /* the last run could not be recorded: why */
	char primary[PROTO_NODE_MAX + 1];
	/*
	 * Sets whose last run left errors here (paths not applied), until
	 * the primary says it is caught up again: its retries applied them.
	 */
	uint8_t n_failed;
	uint8_t failed_more; /* more sets failed than these: not named */
	/*
	 * The set of the last run when that run reconciled all of it (not
	 * a scope) with no error, else "": nothing of it is missing now,
	 * whatever an earlier session said.
	 */
	char whole_set[PROTO_NODE_MAX + 1];
	struct recv_failed {
		char set[PROTO_NODE_MAX + 1];
		uint64_t errors; /* of that run */
		char first[256]; /* the first path that failed */
		char why[256];   /* ... and why */
	} failed[RECV_FAILED_SETS];
};

/*
 * Serve one authenticated primary on `c` after the handshake: open sets,
 * list, hash, apply, report.  Returns HS_OK after BYE, or the error that
 * ended the session (logged).  `stop` is polled between frames.
 */
int recv_session(const struct hs_conf *conf, int rootfd, struct proto_conn *c,
                 volatile int *stop, int report_fd,
                 const struct proto_hello *peer);

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
 * recorded (see apply_error_count) and return HS_OK; only a protocol violation
 * returns an error, after which the object is poisoned.
 */
int apply_op(struct apply *a, const struct proto_msg *m);
/* Make everything applied so far durable (fsync, rename, dir fsync). */
int apply_flush(struct apply *a);
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
/*
 * Block patches (delta.h) and drift: keep a record (stat
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

#endif /* STDBY_INT_H */
