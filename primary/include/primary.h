/*
 * primary.h - the primary: one reconciliation of every set with the
 * standby (send_sync, what `hamnsync sync` and `verify` run), and the
 * daemon that watches the sources and replicates each change (prim_run).
 *
 * Names in primary/, by prefix:
 *	prim_		the daemon (primary.c): its loop, retries, status
 *	watch_		the watcher (watch.c): inotify into dirty sets
 *	send_		the sender: a session with the standby that
 *			reconciles sets (send.c, send_session_*), and its
 *			parts (send_int.h): the wire and progress, one
 *			file's content, read-ahead (send_ahead_), block
 *			patches (send_blk_), the restart's stat diff
 *			(send_session_diff, send_prescan_)
 *	sidx_		the sender's index (sendidx.c): run sequences, the
 *			journal, records of what the standby acknowledged
 *	express_	the express lane (express.c): small changes on a
 *			second session while a long run holds the first
 * Internals: prim_int.h (the watcher, the sender's session, the daemon's
 * shared constants), send_int.h (inside the sender), express_int.h.
 */
#ifndef PRIMARY_H
#define PRIMARY_H

#include <stdint.h>

#include "hs.h"
#include "proto.h"

struct idx;

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
};

struct send_opts {
	int dry_run;
	/*
	 * dry run: called for each entry the run would change, with the
	 * action (new, whole, delta, meta, mkdir, symlink, special, link,
	 * delete, held) and the path as it is, any bytes (both borrowed,
	 * valid during the call); NULL: one line per entry on stdout, the
	 * action and the path escaped (hs_escape).
	 */
	void (*dry_cb)(void *arg, const char *action, const char *path);
	void *dry_arg;
	/*
	 * send_sync: called after each set it reconciled, with the report
	 * of every set so far (borrowed, valid during the call); the calls
	 * of dry_cb and verify_cb before it were about this set.
	 */
	void (*set_cb)(void *arg, const char *set,
	               const struct send_report *sofar);
	void *set_arg;
	int progress;         /* show progress on stdout (a tty) */
	uint64_t epoch;       /* this node's epoch, sent in HELLO */
	char **allow_deletes; /* set names whose deletes go ahead */
	size_t n_allow_deletes;
	int quiet;            /* daemon: log only, no stderr lines */
	uint64_t guard_files; /* scoped runs: the set's file count */
	/*
	 * Scoped runs: the set's deletions this minute.  Live and shared by
	 * both lanes: a run weighs what the other lane deleted meanwhile and
	 * adds its own as it sends them.
	 */
	uint64_t *guard_recent;
	int verify; /* compare only (hashes), change nothing */
	/*
	 * verify: called for each difference with the path as it is (any
	 * bytes) and why (both borrowed, valid during the call).
	 */
	void (*verify_cb)(void *arg, const char *path, const char *why);
	void *verify_arg;
	/* Called often during long transfers (the daemon serves status). */
	void (*tick)(void *arg);
	void *tick_arg;
	/*
	 * Daemon: the peer's HELLO is copied here at each session open,
	 * also when the session is then refused (a primary, a newer epoch);
	 * left alone when none came.  NULL: not wanted.
	 */
	struct proto_hello *met;
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
	 * The express lane (primary/express.c): say so in HELLO, leave to
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
int prim_run(const char *conf_path, struct hs_conf *conf, struct proto_tls *tls,
             struct idx *x, uint64_t epoch, int foreground);

#endif /* PRIMARY_H */
