/*
 * express.c - the primary's express lane.
 *
 * The bulk lane (primary.c) reconciles one set at a time on one session,
 * so while it streams a big file every other change waits behind it.  The
 * express lane is a second session to the same standby, opened with
 * PROTO_HELLO_F_EXPRESS (the standby gives the primary that holds its
 * session one such lane), used only from the daemon's tick during a long
 * bulk run: it takes the watcher's new entries that a small run can do
 * alone and reconciles them scoped, with a sender that leaves any file
 * above EXPRESS_FILE_MAX (or past EXPRESS_RUN_BYTES in one run, or hard
 * linked) to the bulk lane.
 *
 * A run does not wait for the standby's fsync: it returns once SET_END
 * is sent, and the next tick reads the SET_DONE (send_session_done), so
 * the bulk lane goes on while the standby makes the small files durable.
 * One run is in flight at a time.
 *
 * It is only an optimisation: the entries it takes stay in the watcher's
 * dirty sets, so the bulk lane's next run looks at them again (a hash
 * compare of a small file when the express lane got there first).  A
 * failed express run, a standby without express support or a lane that
 * cannot connect loses nothing.  Each run's paths are journalled in the
 * primary's index before it goes out, as the bulk lane's are: a crash
 * before the bulk lane's run of them is acknowledged replays them at the
 * next start (a file the lane made and the primary then deleted).  Since the
 * two children on the standby apply whole files by rename, the last writer wins
 * per path, and the bulk lane's later run of the same path makes the final
 * state converge.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "express_int.h"

/* Paths per express run and set: bounded work between two bulk steps. */
#define EXPRESS_PATHS_MAX 64
/* "Small": /etc/hosts, a config, a postscript; a kernel is not. */
#define EXPRESS_FILE_MAX (1024ull * 1024)
/* Content bytes per run: at most a few ms of the wire on loopback. */
#define EXPRESS_RUN_BYTES (4ull * 1024 * 1024)
/*
 * The lane connects and waits for each reply at most this long (and at
 * most peer_timeout): it runs inside the bulk lane's tick, so a stalled
 * link must cost the bulk lane little before the bulk lane's own
 * timeouts notice it.  A TLS handshake on a LAN takes a few ms.
 */
#define EXPRESS_TIMEOUT_MS 1000
/* Runs the lane closed on, kept from covering until the next session. */
#define EXPRESS_KEPT_MAX 64

struct express {
	const struct hs_conf *conf; /* borrowed */
	struct send_opts o;
	struct sender *ss;
	uint64_t backoff_ms;
	uint64_t next_try_ns;
	uint64_t last_err_log_ns;
	uint64_t last_io_ns;
	uint64_t runs;
	uint64_t paths;
	/* The run in flight (SET_END sent, SET_DONE awaited). */
	int in_flight;
	size_t run_set;
	size_t run_paths;
	uint64_t run_start_ns;
	struct send_report rep;
	uint64_t *deleted; /* the primary's per-set delete counts, borrowed */
	express_done_fn *done; /* a run's held and failed paths go there */
	void *done_arg;
	/*
	 * Journal entries of runs the lane closed on (express_settle); not
	 * reallocated: the bulk lane reads them through its run.
	 */
	uint64_t kept[EXPRESS_KEPT_MAX];
	size_t n_kept;
	size_t next_set; /* round robin over the sets */
};

int
express_new(const struct hs_conf *conf, struct proto_tls *tls, uint64_t epoch,
            struct express **out)
{
	struct express *x;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->conf = conf;
	x->o.tls = tls;
	x->o.epoch = epoch;
	x->o.quiet = 1;
	x->o.express = 1;
	/* No records: the bulk lane looks at every path again, and records
	 * it.  Journalled all the same (express_journal). */
	x->o.idx = NULL;
	x->o.max_file_bytes = EXPRESS_FILE_MAX;
	x->o.max_run_bytes = EXPRESS_RUN_BYTES;
	x->o.timeout_ms = conf->peer_timeout * 1000 < EXPRESS_TIMEOUT_MS
	                      ? (int)conf->peer_timeout * 1000
	                      : EXPRESS_TIMEOUT_MS;
	/* No tick: the lane runs inside the bulk lane's tick. */
	x->o.tick = NULL;
	x->backoff_ms = PRIM_BACKOFF_MIN_MS;
	*out = x;
	return HS_OK;
}

static int express_collect(struct express *x, int timeout_ms);

void
express_journal(struct express *x, struct idx *idx)
{
	if (x != NULL)
		x->o.journal = idx;
}

void
express_on_done(struct express *x, express_done_fn *fn, void *arg)
{
	if (x == NULL)
		return;
	x->done = fn;
	x->done_arg = arg;
}

void
express_free(struct express *x)
{
	if (x == NULL)
		return;
	/* The standby answers SET_END before it reads BYE: let it. */
	if (x->ss != NULL && express_collect(x, x->o.timeout_ms) != HS_OK) {
		send_session_close(x->ss, 0);
		x->ss = NULL;
	}
	send_session_close(x->ss, 1);
	free(x);
}

/*
 * The journal entry of the lane's last run, when the lane closes: the
 * standby may apply a run it was sent after our last look at its tree,
 * acknowledged or not (an acknowledged one is kept too: harmless).
 */
static void
express_keep(struct express *x)
{
	uint64_t seq = x->ss != NULL ? send_session_journalled(x->ss) : 0;
	size_t i;

	if (seq == 0)
		return;
	for (i = 0; i < x->n_kept; i++)
		if (x->kept[i] == seq)
			return;
	if (x->n_kept == EXPRESS_KEPT_MAX) {
		hs_log_warnx("primary: express lane: %d runs closed on since "
		             "the session began; journal entry %llu is left to "
		             "the bulk lane's next run",
		             EXPRESS_KEPT_MAX, (unsigned long long)seq);
		return;
	}
	x->kept[x->n_kept++] = seq;
}

static void
express_drop(struct express *x, int rc, const char *what)
{
	express_keep(x);
	x->in_flight = 0;
	hs_log_warnx("primary: express lane: %s: %s; the bulk lane carries "
	             "every change until it is back",
	             what, hs_strerror(rc));
	send_session_close(x->ss, 0);
	x->ss = NULL;
	x->next_try_ns = hs_now_mono_ns() + x->backoff_ms * HS_NS_PER_MS;
}

/* Connect if due; 1 when the lane is up. */
static int
express_connect(struct express *x)
{
	char why[1024] = "";
	uint64_t now = hs_now_mono_ns();
	int rc;

	if (x->ss != NULL)
		return 1;
	if (now < x->next_try_ns)
		return 0;
	rc = send_session_open(x->conf, &x->o, &x->ss, why, sizeof(why));
	if (rc < 0) {
		x->ss = NULL;
		/* One line per backoff step; a busy standby is not news. */
		if (now - x->last_err_log_ns >= x->backoff_ms * HS_NS_PER_MS) {
			hs_log_info("primary: express lane to %s: %s; small "
			            "changes wait for the bulk lane",
			            x->conf->peer,
			            why[0] ? why : hs_strerror(rc));
			x->last_err_log_ns = now;
		}
		x->next_try_ns = now + x->backoff_ms * HS_NS_PER_MS;
		x->backoff_ms = hs_backoff_next(
		    x->backoff_ms, PRIM_BACKOFF_MIN_MS, PRIM_BACKOFF_MAX_MS);
		return 0;
	}
	hs_log_info("primary: express lane to standby %s open", x->conf->peer);
	x->backoff_ms = PRIM_BACKOFF_MIN_MS;
	x->last_io_ns = now;
	return 1;
}

/*
 * Read the SET_DONE of the run in flight, waiting up to timeout_ms:
 * HS_OK when there is none in flight (any more), HS_WANT_READ when it
 * has not come yet, <0 when the session failed.
 */
static int
express_collect(struct express *x, int timeout_ms)
{
	const struct send_report *r = &x->rep;
	struct send_failed f;
	uint64_t now;
	int rc;

	if (!x->in_flight)
		return HS_OK;
	if ((rc = send_session_done(x->ss, timeout_ms)) != HS_OK ||
	    (rc = HS_FAILPOINT("express.ack")) < 0)
		return rc;
	now = hs_now_mono_ns();
	x->in_flight = 0;
	x->runs++;
	x->paths += x->run_paths;
	x->last_io_ns = now;
	/*
	 * The paths stay in the watcher for the bulk lane, which would hold
	 * or fail them again, but until then the set must not pass for in
	 * sync on this run's word: its held and failed paths count now.
	 */
	send_session_failed(x->ss, &f);
	if (x->done != NULL)
		x->done(x->done_arg, x->run_set, r, &f);
	else
		proto_scope_free(f.v, f.n);
	hs_log_debug(
	    "primary: express lane: set %s: %zu paths durable in "
	    "%.1f ms: %llu files, %llu deltas, %llu metadata, %llu "
	    "deleted, %llu held, %llu left to the bulk lane, %llu "
	    "errors",
	    x->conf->sets[x->run_set].name, x->run_paths,
	    (double)(now - x->run_start_ns) / 1e6,
	    (unsigned long long)r->files_sent,
	    (unsigned long long)r->delta_files,
	    (unsigned long long)r->meta_only, (unsigned long long)r->deleted,
	    (unsigned long long)r->held, (unsigned long long)r->left_to_bulk,
	    (unsigned long long)(r->remote_errors + r->changed_during));
	return HS_OK;
}

/*
 * Start one scoped run of set i on the lane, up to SET_END: 1 when one
 * is in flight, 0 when the set had nothing for it, <0 when the session
 * failed.
 */
static int
express_start(struct express *x, struct watch *w, size_t i,
              const uint64_t *guard_files)
{
	struct proto_scope *scope = NULL;
	size_t n = 0;
	int rc;

	if ((rc = watch_take_express(w, (uint16_t)i, EXPRESS_PATHS_MAX, &scope,
	                             &n)) < 0)
		return rc;
	if (n == 0)
		return 0;
	memset(&x->rep, 0, sizeof(x->rep));
	x->o.guard_files = guard_files[i];
	x->o.guard_recent = x->deleted != NULL ? &x->deleted[i] : NULL;
	x->run_set = i;
	x->run_paths = n;
	x->run_start_ns = hs_now_mono_ns();
	if ((rc = HS_FAILPOINT("express.send")) == HS_OK)
		rc = send_session_set(x->ss, &x->conf->sets[i], scope, n,
		                      &x->rep);
	proto_scope_free(scope, n);
	if (rc < 0)
		return rc;
	x->in_flight = 1;
	return 1;
}

void
express_tick(struct express *x, struct watch *w, const uint64_t *guard_files,
             uint64_t *deleted)
{
	size_t i, k;
	int rc, any = 0;

	if (x == NULL)
		return;
	x->deleted = deleted;
	/* The last run first: one in flight at a time. */
	if (x->ss != NULL && (rc = express_collect(x, 0)) != HS_OK) {
		if (rc < 0)
			express_drop(x, rc, x->conf->sets[x->run_set].name);
		return;
	}
	for (i = 0; i < x->conf->n_sets && !any; i++)
		any = watch_express_pending(w, (uint16_t)i);
	if (!any || !express_connect(x))
		return;
	/* One run per tick, the sets in turn: the bulk run goes on between. */
	for (k = 0; k < x->conf->n_sets; k++) {
		i = (x->next_set + k) % x->conf->n_sets;
		if ((rc = express_start(x, w, i, guard_files)) == 0)
			continue;
		x->next_set = i + 1;
		if (rc < 0)
			express_drop(x, rc, x->conf->sets[i].name);
		return;
	}
}

/*
 * The bulk lane's run lists the standby's tree: a run of this lane that
 * the standby applies after that listing puts there what the bulk run
 * did not see (a file made, then deleted here: nothing of it is on
 * either listing), and the bulk run's acknowledgement takes the express
 * run's journal entry with its own.  So a bulk run starts only once the
 * express run in flight is durable there, or its entry is kept.
 */
void
express_settle(struct express *x, const uint64_t **keep, size_t *n_keep)
{
	int rc;

	*keep = NULL;
	*n_keep = 0;
	if (x == NULL)
		return;
	if (x->ss != NULL && x->in_flight &&
	    (rc = express_collect(x, x->o.timeout_ms)) != HS_OK)
		express_drop(x, rc == HS_WANT_READ ? HS_ETIMEOUT : rc,
		             "waiting for the standby before a bulk run");
	*keep = x->kept;
	*n_keep = x->n_kept;
}

void
express_kept_clear(struct express *x)
{
	if (x != NULL)
		x->n_kept = 0;
}

void
express_heartbeat(struct express *x)
{
	uint64_t now = hs_now_mono_ns();
	int rc;

	if (x == NULL || x->ss == NULL ||
	    now - x->last_io_ns < x->conf->heartbeat * 1000 * HS_NS_PER_MS)
		return;
	/* The bulk lane is idle: the last run's SET_DONE may wait. */
	if ((rc = express_collect(x, x->o.timeout_ms)) != HS_OK) {
		express_drop(x, rc == HS_WANT_READ ? HS_ETIMEOUT : rc,
		             "waiting for the standby");
		return;
	}
	if ((rc = send_session_ping(x->ss, x->o.timeout_ms)) < 0) {
		express_drop(x, rc, "heartbeat");
		return;
	}
	x->last_io_ns = hs_now_mono_ns();
}

uint64_t
express_runs(const struct express *x)
{
	return x ? x->runs : 0;
}

uint64_t
express_paths(const struct express *x)
{
	return x ? x->paths : 0;
}
