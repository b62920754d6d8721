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
 * It is only an optimisation: the entries it takes stay in the watcher's
 * dirty sets, so the bulk lane's next run looks at them again (a hash
 * compare of a small file when the express lane got there first).  A
 * failed express run, a standby without express support or a lane that
 * cannot connect loses nothing.  Since the two children on the standby
 * apply whole files by rename, the last writer wins per path, and the
 * bulk lane's later run of the same path makes the final state converge.
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
/* Reconnect backoff: from 200 ms, doubling, capped at 10 s. */
#define EXPRESS_BACKOFF_MIN_MS 200
#define EXPRESS_BACKOFF_MAX_MS 10000
#define NS_PER_MS 1000000ull

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
};

int
express_new(const struct hs_conf *conf, uint64_t epoch, struct express **out)
{
	struct express *x;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->conf = conf;
	x->o.epoch = epoch;
	x->o.quiet = 1;
	x->o.express = 1;
	x->o.max_file_bytes = EXPRESS_FILE_MAX;
	x->o.max_run_bytes = EXPRESS_RUN_BYTES;
	/* No tick: the lane runs inside the bulk lane's tick. */
	x->o.tick = NULL;
	x->backoff_ms = EXPRESS_BACKOFF_MIN_MS;
	*out = x;
	return HS_OK;
}

void
express_free(struct express *x)
{
	if (x == NULL)
		return;
	send_session_close(x->ss, 1);
	free(x);
}

static void
express_drop(struct express *x, int rc, const char *what)
{
	hs_log_warnx("primary: express lane: %s: %s; the bulk lane carries "
	             "every change until it is back",
	             what, hs_strerror(rc));
	send_session_close(x->ss, 0);
	x->ss = NULL;
	x->next_try_ns = hs_now_mono_ns() + x->backoff_ms * NS_PER_MS;
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
		if (now - x->last_err_log_ns >= x->backoff_ms * NS_PER_MS) {
			hs_log_info("primary: express lane to %s: %s; small "
			            "changes wait for the bulk lane",
			            x->conf->peer,
			            why[0] ? why : hs_strerror(rc));
			x->last_err_log_ns = now;
		}
		x->next_try_ns = now + x->backoff_ms * NS_PER_MS;
		x->backoff_ms = x->backoff_ms * 2 > EXPRESS_BACKOFF_MAX_MS
		                    ? EXPRESS_BACKOFF_MAX_MS
		                    : x->backoff_ms * 2;
		return 0;
	}
	hs_log_info("primary: express lane to standby %s open",
	            x->conf->peer);
	x->backoff_ms = EXPRESS_BACKOFF_MIN_MS;
	x->last_io_ns = now;
	return 1;
}

/* One scoped run of set i on the lane; <0 when the session failed. */
static int
express_set(struct express *x, struct watch *w, size_t i,
            const uint64_t *guard_files, uint64_t *deleted)
{
	const struct hs_pathset *set = &x->conf->sets[i];
	struct proto_scope *scope = NULL;
	struct send_report rep;
	size_t n = 0;
	uint64_t t0 = hs_now_mono_ns();
	int rc;

	if ((rc = watch_take_express(w, (uint16_t)i, EXPRESS_PATHS_MAX, &scope,
	                             &n)) < 0 ||
	    n == 0)
		return HS_OK;
	memset(&rep, 0, sizeof(rep));
	x->o.guard_files = guard_files[i];
	x->o.guard_recent = deleted[i];
	rc = send_session_set(x->ss, set, scope, n, &rep);
	proto_scope_free(scope, n);
	if (rc < 0)
		return rc;
	x->runs++;
	x->paths += n;
	x->last_io_ns = hs_now_mono_ns();
	deleted[i] += rep.deleted;
	hs_log_debug("primary: express lane: set %s: %zu paths in %.1f ms: "
	             "%llu files, %llu deltas, %llu metadata, %llu deleted, "
	             "%llu left to the bulk lane",
	             set->name, n, (double)(x->last_io_ns - t0) / 1e6,
	             (unsigned long long)rep.files_sent,
	             (unsigned long long)rep.delta_files,
	             (unsigned long long)rep.meta_only,
	             (unsigned long long)rep.deleted,
	             (unsigned long long)rep.left_to_bulk);
	return HS_OK;
}

void
express_tick(struct express *x, struct watch *w, const uint64_t *guard_files,
             uint64_t *deleted)
{
	size_t i;
	int rc, any = 0;

	if (x == NULL)
		return;
	for (i = 0; i < x->conf->n_sets && !any; i++)
		any = watch_express_pending(w, (uint16_t)i);
	if (!any || !express_connect(x))
		return;
	/* One batch per set per tick: the bulk run goes on in between. */
	for (i = 0; i < x->conf->n_sets; i++)
		if ((rc = express_set(x, w, i, guard_files, deleted)) < 0) {
			express_drop(x, rc, x->conf->sets[i].name);
			return;
		}
}

void
express_heartbeat(struct express *x)
{
	uint64_t now = hs_now_mono_ns();
	int rc;

	if (x == NULL || x->ss == NULL ||
	    now - x->last_io_ns < x->conf->heartbeat * 1000 * NS_PER_MS)
		return;
	if ((rc = send_session_ping(x->ss, (int)x->conf->peer_timeout * 1000)) <
	    0) {
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
