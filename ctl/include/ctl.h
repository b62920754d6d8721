/*
 * ctl.h - what a running daemon knows about itself, and how it tells.
 * Two prefixes:
 *	ctl_	the control socket (socket.c): the daemon listens and
 *		answers, `hamnsync status` asks.
 *	st_	the status object of SPEC.md (status.c): the view a daemon
 *		fills, its warnings, its JSON and the copy saved for a
 *		stopped node; and the metrics textfile made from it
 *		(metrics.c).
 *
 * Control protocol (Unix stream socket state_dir/hamnsync.sock, mode 0660,
 * group status_group): the client sends one line
 *	"HAMNSYNC-CTL/1 <verb>\n"	(at most CTL_REQ_MAX bytes)
 * and reads one JSON object until EOF (at most CTL_REPLY_MAX bytes).  The
 * verb `status` is answered to root and to members of status_group; every
 * other verb to root only (SO_PEERCRED).  A client that does not send its
 * line within CTL_READ_MS is dropped.
 */
#ifndef CTL_H
#define CTL_H

#include <jansson.h>
#include <stdint.h>

#include "dbrepl.h"
#include "hs.h"

/* status.c: the status object ------------------------------------------ */

/* One path set as status shows it. */
struct st_path {
	const char *name;
	const char *state; /* seeding in-sync catching-up held error */
	int64_t files;     /* -1: unknown */
	int64_t bytes;     /* -1: unknown */
	double progress;   /* 0..1 */
};

#define ST_REASONS_MAX 8
#define ST_WARNINGS_MAX 16
#define ST_DBS_MAX 16 /* databases status shows */

/* Everything the status object says; -1 (or NULL) means unknown/null. */
struct st_view {
	const struct hs_conf *conf;
	const char *role;
	uint64_t epoch;
	int running;
	const char *peer_name;
	const char *peer_state; /* connected disconnected ... */
	const char *peer_role;
	int64_t peer_epoch;
	double last_heard;
	double lag;
	int64_t files_pending;
	int64_t bytes_pending;
	double last_applied_unix; /* wall clock, -1 */
	struct st_path *paths;
	size_t n_paths;
	int ready;
	double rpo;
	const char *reasons[ST_REASONS_MAX];
	size_t n_reasons;
	const char *warn_sev[ST_WARNINGS_MAX];
	char warn_text[ST_WARNINGS_MAX][HS_ERRMSG_MAX + 128];
	size_t n_warnings;
	/* The databases (st_databases); none filled: named by conf only. */
	struct dbr_status dbs[ST_DBS_MAX];
	size_t n_dbs;
	char db_why[ST_DBS_MAX][HS_ERRMSG_MAX]; /* their reasons' text */
};

/* Add a warning ("warning" or "critical"). */
void st_warn(struct st_view *v, const char *severity, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Wall clock now, in seconds since the epoch (for last_applied). */
double st_wall_now(void);
/*
 * Warn about the filesystem holding `path` (`what` names it: "state_dir",
 * "target_root"): full, or over 90 %, naming this node.
 */
void st_warn_disk(struct st_view *v, const char *what, const char *path);
/* Warn about this node's certificate: expired (critical), < 30 days. */
void st_warn_cert(struct st_view *v, const char *cert);
/*
 * Warn when the identity (certificate, key, CA file) named by the config
 * file this daemon started from, as both are on disk now, would not load:
 * the running daemon keeps the one it loaded, a restart would fail.
 * `status` leaves this to a daemon that answers, so that it need not load
 * the identity itself (OpenSSL's context costs more than the rest of its
 * run).  The files are checked again only when stat(2) sees one change.
 */
void st_warn_identity(struct st_view *v);
/*
 * Fill v's databases from `r` (borrowed) and add their warnings: one in
 * state error (its reason), one stale (its snapshot older than 3 x
 * interval while the database changed), a DB2 not in PEER/CONNECTED.  On
 * a standby (`standby`), a database without a good snapshot makes the
 * node not ready, with dbr_ready's reason.
 */
void st_databases(struct st_view *v, const struct dbr *r, int standby);
/*
 * A primary that a newer epoch fenced (IDX_NODE_F_REJOIN) keeps who did
 * in its index, blob ST_FENCED_KEY: "NAME ROLE EPOCH" (st_fenced_record),
 * so that its status says the same words running or stopped.
 */
#define ST_FENCED_KEY "fenced"
void st_fenced_record(char *buf, size_t cap, const char *peer, int peer_role,
                      uint64_t peer_epoch);
/*
 * The critical text of a fenced node at `epoch`, from the record `rec`
 * (len bytes, not NUL-terminated; NULL when none was kept): "needs
 * rejoin: mn2 is primary at epoch 4 (this node: 3); run hamnsync rejoin".
 */
void st_fenced_text(char *buf, size_t cap, const char *rec, size_t len,
                    uint64_t epoch);
/* The SPEC.md status object; new reference. */
json_t *st_json(const struct st_view *v);

/*
 * The daemon's last status, for `status` while it is stopped: the file
 * state_dir/ST_SAVED_NAME, written by rename and not flushed, and only
 * when what a stopped node's status shows of it changed (not ages, lag
 * or warnings, which st_saved_load's caller replaces).  A failure is
 * logged once until a save succeeds again (a full disk retried every 5 s
 * would fill the log).  Returns 1 when written, 0 when unchanged, or an
 * error.
 */
#define ST_SAVED_NAME "status.json"
#define ST_SAVED_MAX (1024 * 1024)
struct st_saved {
	char *text;  /* what was last written; NULL at first */
	int failing; /* the last try failed, and said so */
};
int st_save(const char *state_dir, json_t *status, struct st_saved *sv);
void st_saved_free(struct st_saved *sv);
/* The saved status, or NULL (*absent: there is no such file). */
json_t *st_saved_load(const char *state_dir, int *absent);

/* socket.c: the control socket ----------------------------------------- */

#define CTL_SOCK_NAME "hamnsync.sock"
#define CTL_PROTO "HAMNSYNC-CTL/1"
#define CTL_REQ_MAX 256
#define CTL_REPLY_MAX (4u * 1024 * 1024)
#define CTL_READ_MS 200
#define CTL_CLIENTS_MAX 32 /* clients one ctl_serve call takes */

/*
 * Daemon side: listen on state_dir/hamnsync.sock (any stale socket is
 * replaced), group `group` (NULL: root only).  Returns the fd.
 */
int ctl_listen(const char *state_dir, const char *group);
/*
 * Accept and serve one client on `lfd`: read its line (bounded in size
 * and time), check its credentials, and answer with the JSON that
 * `answer(verb, arg)` returns (a new reference; NULL answers an error).
 * Never blocks longer than CTL_READ_MS.
 */
typedef json_t *(*ctl_answer_fn)(void *arg, const char *verb);
void ctl_serve(int lfd, const char *group, ctl_answer_fn answer, void *arg);
/* Remove the socket (at a clean stop). */
void ctl_unlink(const char *state_dir);

/*
 * Verbs a running daemon answers (root only, except status):
 *	status		the SPEC.md status object
 *	sync, progress	primary: reconcile now; how far that got
 *	fence		re-read this node's state (idx_node) from the index.
 *			A standby takes the stored epoch and ends every
 *			session of a primary with a lower one; a message in
 *			hand is applied whole first.  Answers {"epoch": E,
 *			"sessions": N}, N the sessions still running (promote
 *			asks again until 0: the drain).
 *	role		re-read this node's state; when the stored role differs
 *			from the one running, stop it as at SIGTERM and run the
 *			stored one in the same process (same pid and pid file).
 *			Answers {"role": "primary"|"standby", "switching": B}
 *			before it switches.
 *	drain		primary (switchover): the first call snapshots every
 *			database now, whatever its interval, then takes the
 *			cut: every change the watcher saw until then is sent
 *			and acknowledged, nothing after it is (changes made
 *			after the cut stay here: rejoin moves them aside).
 *			Answers {"drained": B, "stage": "snapshot"|"sending"|
 *			"done", "connected": B, "files_pending": N, "lag": S}
 *			(switchover asks again until drained), or {"error":
 *			why} when fenced, in split brain, or a snapshot failed.
 *	undrain		primary: end a drain (a switchover that failed before
 *			its handover asks it): replicate again, every set
 *			reconciled whole and every database probed, so the
 *			changes made after the cut go out.  While drained,
 *			status says so (critical).  Answers {"undrained": B},
 *			B false when the daemon was not drained.
 */

/*
 * Client side: ask the daemon of state_dir.  *reply is a new reference.
 * -ENOENT/-ECONNREFUSED when no daemon listens, -EACCES when not allowed,
 * HS_ETIMEOUT after timeout_ms, HS_EPROTO for a reply that is not JSON.
 */
int ctl_request(const char *state_dir, const char *verb, int timeout_ms,
                json_t **reply);

/* metrics.c: the node-exporter textfile -------------------------------- */

/* Counters a daemon keeps for Prometheus (monotonic since start). */
struct st_counters {
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t files_applied;
	uint64_t errors_remote;  /* errors the standby reported */
	uint64_t errors_changed; /* files that changed while read */
	uint64_t errors_session; /* sessions that ended in an error */
	uint64_t reconnects;
	uint64_t watches;
	uint64_t express_runs; /* primary: runs of the express lane */
};

/*
 * Write the node-exporter textfile `path` atomically (temporary file in
 * the same directory, then rename) from a status object and counters.
 */
int st_metrics_write(const char *path, json_t *status,
                     const struct st_counters *c);

#endif /* CTL_H */
