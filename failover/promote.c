/*
 * promote.c - `hamnsync promote`: make this standby the primary, as the
 * seven steps of SPEC.md "Failover" run by fo_steps_run.
 *
 * The node state (role, flags, epoch) is written in the index first and
 * the running daemon, if any, is told through its control socket: the
 * verb `fence` re-reads the epoch and ends the old primary's sessions,
 * the verb `role` switches the process to the stored role.  A stopped
 * daemon needs no telling and is started at the end.  Every step reads
 * what it needs again, so that a resume after a crash can run it twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "dbrepl.h"
#include "fo_int.h"
#include "idx.h"
#include "proto.h"

/* The probe of the primary waits at most this long (and peer_timeout). */
#define PROMOTE_PROBE_MAX_MS 5000
/*
 * ... and this long when this node already counts the primary gone
 * (silent past peer_timeout): the probe is then a last look on a link
 * that answers in milliseconds when the host is up, not the wait of a
 * TCP connect to a dead host, which would be most of the failover time.
 */
#define PROMOTE_PROBE_GONE_MS 1000

/* ------------------------------------------------------------ helpers */

/* Identity keys: with none, the identity step only runs `stop`. */
static int
has_identity(const struct hs_conf *conf)
{
	const struct hs_failover *f = &conf->failover;

	return f->hostname != NULL || f->service_address != NULL ||
	       f->own_address != NULL || f->takeover_command.n > 0;
}

/* The epoch this promote stores: chosen once by the fence step. */
static uint64_t
target_epoch(const struct fo_ctx *c)
{
	return fo_var_u64(c, "epoch", 0);
}

/* ---------------------------------------------------------- preflight */

static void
plan_preflight(struct fo_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len,
	         "check the config and this node's role; probe the primary "
	         "at %s%s; say whether this standby is ready",
	         c->conf->peer != NULL ? c->conf->peer : "(no peer)",
	         c->opts->force ? " (--force: promote even if it answers)"
	                        : " and refuse if it answers as primary");
}

/*
 * What this node's status says of promote_ready, said as a warning when
 * it is not ready: it does not stop a promote (this standby holds the
 * best copy there is), but the operator learns what may be missing.
 */
static void
say_readiness(struct fo_ctx *c, json_t *st)
{
	json_t *ready, *rpo, *r;
	char line[1024];
	size_t i, n;

	ready = json_object_get(st, "promote_ready");
	if (st == NULL || !json_is_object(ready) ||
	    json_is_true(json_object_get(ready, "ready")))
		return;
	rpo = json_object_get(ready, "rpo_seconds");
	n = (size_t)snprintf(line, sizeof(line), "not ready, rpo %s",
	                     json_is_number(rpo) ? "" : "unknown");
	if (json_is_number(rpo) && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%.1f s",
		                      json_number_value(rpo));
	json_array_foreach(json_object_get(ready, "reasons"), i, r)
	{
		if (n >= sizeof(line) || !json_is_string(r))
			break;
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s %s",
		                      i == 0 ? ":" : ";", json_string_value(r));
	}
	fprintf(c->opts->out, "%s: preflight: warning: %s\n", c->cmd, line);
	fflush(c->opts->out);
	hs_log_warnx("%s: preflight: %s", c->cmd, line);
}

/* This node's status: the running daemon's, else the one it saved. */
static json_t *
local_status(struct fo_ctx *c)
{
	json_t *st = NULL;
	int absent;

	if (ctl_request(c->conf->state_dir, "status", FO_CTL_MS, &st) < 0)
		st = st_saved_load(c->conf->state_dir, &absent);
	return st;
}

/* How long the probe may wait: shorter once the daemon saw the primary
 * silent past peer_timeout. */
static uint64_t
probe_bound_ms(const struct hs_conf *conf, json_t *st)
{
	json_t *heard =
	    json_object_get(json_object_get(st, "peer"), "last_heard_seconds");
	uint64_t ms = conf->peer_timeout * 1000;

	if (ms > PROMOTE_PROBE_MAX_MS)
		ms = PROMOTE_PROBE_MAX_MS;
	if (json_is_number(heard) &&
	    json_number_value(heard) > (double)conf->peer_timeout &&
	    ms > PROMOTE_PROBE_GONE_MS)
		ms = PROMOTE_PROBE_GONE_MS;
	return ms;
}

/*
 * Ask the peer who it is.  A primary that answers and is not fenced is
 * alive: promoting now would make two primaries, so it is refused unless
 * --force.  An unreachable one is what a failover is for.
 */
static int
probe_peer(struct fo_ctx *c, const struct idx_node *me, uint64_t ms, char *done,
           size_t donelen, char *why, size_t whylen)
{
	const struct hs_conf *conf = c->conf;
	struct proto_hello peer;
	char pwhy[512] = "";
	int rc;

	rc = fo_probe(conf, HS_ROLE_STANDBY, me->epoch, 0, (int)ms, &peer, pwhy,
	              sizeof(pwhy));
	if (rc == HS_ECONFIG) {
		snprintf(why, whylen, "%s", pwhy);
		return rc;
	}
	if (rc < 0) {
		snprintf(done, donelen, "primary unreachable: %s", pwhy);
		return HS_OK;
	}
	fo_var_set_u64(c, "peer_epoch", peer.epoch);
	fo_var_set_str(c, "peer_name", peer.name);
	if (peer.role == HS_ROLE_PRIMARY &&
	    !(peer.flags & PROTO_HELLO_F_FENCED) && !c->opts->force) {
		snprintf(why, whylen,
		         "%s still answers as primary at epoch %llu: use "
		         "`hamnsync switchover` for a planned swap, or promote "
		         "--force",
		         peer.name, (unsigned long long)peer.epoch);
		return HS_EREFUSED;
	}
	snprintf(done, donelen, "%s answers as %s%s at epoch %llu%s", peer.name,
	         hs_role_name((enum hs_role)peer.role),
	         peer.flags & PROTO_HELLO_F_FENCED ? " (fenced)" : "",
	         (unsigned long long)peer.epoch,
	         peer.role == HS_ROLE_PRIMARY &&
	                 !(peer.flags & PROTO_HELLO_F_FENCED)
	             ? "; --force: promoting anyway"
	             : "");
	return HS_OK;
}

static int
run_preflight(struct fo_ctx *c, char *done, size_t donelen, char *why,
              size_t whylen)
{
	struct idx_node me;
	json_t *st;
	int rc;

	if (c->conf->peer == NULL) {
		snprintf(why, whylen,
		         "%s: [node] peer is not set: promote asks the primary "
		         "first",
		         c->conf->file);
		return HS_ECONFIG;
	}
	if ((rc = fo_node_get(c->conf, &me, why, whylen)) < 0)
		return rc;
	if (me.role != HS_ROLE_STANDBY) {
		snprintf(why, whylen, "this node is %s, not a standby",
		         hs_role_name(me.role));
		return HS_EREFUSED;
	}
	st = local_status(c);
	rc = probe_peer(c, &me, probe_bound_ms(c->conf, st), done, donelen, why,
	                whylen);
	if (rc == HS_OK) {
		say_readiness(c, st);
		*(int *)c->arg = 1;
	}
	json_decref(st);
	return rc;
}

/* -------------------------------------------------------------- fence */

/*
 * A promote resumed at fence, whose preflight ran in an earlier run that
 * stopped before fence stored anything: the primary may have come back
 * since.  Ask it again, and refuse as preflight would.
 */
static int
fence_reprobe(struct fo_ctx *c, const struct idx_node *me, char *why,
              size_t whylen)
{
	char done[1024];
	json_t *st;
	int rc;

	if (*(int *)c->arg || target_epoch(c) != 0 ||
	    (me->flags & IDX_NODE_F_PROMOTING))
		return HS_OK;
	st = local_status(c);
	rc = probe_peer(c, me, probe_bound_ms(c->conf, st), done, sizeof(done),
	                why, whylen);
	json_decref(st);
	return rc;
}

static void
plan_fence(struct fo_ctx *c, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len,
	         "raise the epoch above this node's and the primary's and "
	         "store it (role still standby); a running daemon ends the "
	         "old primary's sessions");
}

static int
run_fence(struct fo_ctx *c, char *done, size_t donelen, char *why,
          size_t whylen)
{
	struct idx_node me;
	uint64_t from, peer, epoch = target_epoch(c);
	json_t *r = NULL;
	int rc, ran;

	if ((rc = fo_node_get(c->conf, &me, why, whylen)) < 0 ||
	    (rc = fence_reprobe(c, &me, why, whylen)) < 0)
		return rc;
	/* After the reprobe, which may have heard the primary again. */
	peer = fo_var_u64(c, "peer_epoch", 0);
	from = me.epoch;
	/*
	 * Chosen once: a fence that stored its epoch and crashed before its
	 * outcome (and vars) were saved left PROMOTING behind with it.
	 */
	if (epoch == 0)
		epoch = me.flags & IDX_NODE_F_PROMOTING
		            ? me.epoch
		            : (me.epoch > peer ? me.epoch : peer) + 1;
	fo_var_set_u64(c, "epoch", epoch);
	fo_var_set_u64(c, "epoch_before", fo_var_u64(c, "epoch_before", from));
	me.role = HS_ROLE_STANDBY;
	me.flags = (me.flags & ~IDX_NODE_F_REJOIN) | IDX_NODE_F_PROMOTING;
	me.epoch = epoch;
	if ((rc = fo_node_put(c->conf, &me, why, whylen)) < 0)
		return rc;
	if ((ran = fo_ask(c->conf, "fence", &r, why, whylen)) < 0)
		return ran;
	if (ran) {
		if ((uint64_t)json_integer_value(json_object_get(r, "epoch")) !=
		    epoch) {
			snprintf(why, whylen,
			         "the running daemon answered `fence` with "
			         "epoch %lld, not %llu",
			         (long long)json_integer_value(
			             json_object_get(r, "epoch")),
			         (unsigned long long)epoch);
			json_decref(r);
			return HS_EPROTO;
		}
		json_decref(r);
	}
	snprintf(done, donelen, "epoch %llu (was %llu)%s",
	         (unsigned long long)epoch,
	         (unsigned long long)fo_var_u64(c, "epoch_before", from),
	         ran ? "; the running daemon took it" : "");
	return HS_OK;
}

/* -------------------------------------------------------------- drain */

static void
plan_drain(struct fo_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len,
	         "wait (at most %llu s) until the running daemon has no "
	         "session left; flush every target tree to disk (syncfs)",
	         (unsigned long long)fo_step_timeout(c->conf));
}

/*
 * Ask `fence` until no session runs: what was in hand is applied.  1 when
 * a daemon answered, 0 when none runs (none left: nothing in hand).
 */
static int
drain_sessions(struct fo_ctx *c, char *why, size_t whylen)
{
	uint64_t end =
	    hs_now_mono_ns() + fo_step_timeout(c->conf) * 1000000000ull;
	json_int_t left;
	json_t *r;
	int rc;

	for (;;) {
		if ((rc = fo_ask(c->conf, "fence", &r, why, whylen)) <= 0)
			return rc;
		left = json_integer_value(json_object_get(r, "sessions"));
		json_decref(r);
		if (left == 0)
			return 1;
		if (hs_now_mono_ns() >= end) {
			snprintf(why, whylen,
			         "%lld sessions still running after %llu s "
			         "(step_timeout)",
			         (long long)left,
			         (unsigned long long)fo_step_timeout(c->conf));
			return HS_ETIMEOUT;
		}
		usleep(FO_POLL_US);
	}
}

/*
 * syncfs(2) of the filesystem holding `path` (this node's copy of a source):
 * 1 when done, 0 when there is no such folder or file yet, or an error.
 */
static int
sync_tree(const char *path, char *why, size_t whylen)
{
	int fd, rc = HS_OK;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* A single-file source (/etc/hosts): the file names its filesystem
	 * as well; never followed, never blocking on a fifo. */
	if (fd < 0 && errno == ENOTDIR)
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0; /* nothing replicated there yet */
	if (fd < 0 || syncfs(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		snprintf(why, whylen, "%s: syncfs: %s", path, strerror(-rc));
	return rc < 0 ? rc : 1;
}

static int
run_drain(struct fo_ctx *c, char *done, size_t donelen, char *why,
          size_t whylen)
{
	const struct hs_conf *conf = c->conf;
	size_t n = 0;
	int rc, ran;

	if ((ran = drain_sessions(c, why, whylen)) < 0)
		return ran;
	for (size_t i = 0; i < conf->n_sets; i++) {
		/* This node's copy: target_root + P, or a database's
		 * snapshot folder in state_dir. */
		const struct hs_strlist *s = &conf->sets[i].local;

		for (size_t j = 0; j < s->n; j++) {
			if ((rc = sync_tree(s->v[j], why, whylen)) < 0)
				return rc;
			n += (size_t)rc;
		}
	}
	snprintf(done, donelen, "%s; %zu target trees flushed",
	         ran ? "no session left" : "daemon stopped", n);
	return HS_OK;
}

/* ----------------------------------------------------------- database */

static void
plan_database(struct fo_ctx *c, char *buf, size_t len)
{
	if (c->conf->n_dbs == 0)
		snprintf(buf, len, "no database: nothing to do");
	else
		snprintf(buf, len,
		         "restore the last good snapshot of %zu database(s) "
		         "(DB2: HADR takeover%s)",
		         c->conf->n_dbs, c->opts->force ? " by force" : "");
}

static int
run_database(struct fo_ctx *c, char *done, size_t donelen, char *why,
             size_t whylen)
{
	struct dbr *r;
	int rc;

	if (c->conf->n_dbs == 0) {
		snprintf(done, donelen, "no database: nothing to do");
		return HS_OK;
	}
	if ((rc = dbr_open(c->conf, DBR_STANDBY, &r)) < 0) {
		snprintf(why, whylen, "%s/%s: %s", c->conf->state_dir, DBR_DIR,
		         hs_strerror(rc));
		return rc;
	}
	rc = dbr_promote(r, c->opts->force, why, whylen);
	dbr_free(r);
	if (rc == HS_OK)
		snprintf(done, donelen, "%zu database(s) restored",
		         c->conf->n_dbs);
	return rc;
}

/* ----------------------------------------------------------- identity */

static void
plan_identity(struct fo_ctx *c, char *buf, size_t len)
{
	const struct hs_failover *f = &c->conf->failover;

	if (!has_identity(c->conf))
		snprintf(buf, len,
		         "%zu stop command(s); no identity configured",
		         f->stop.n);
	else if (f->takeover_command.n > 0)
		snprintf(buf, len,
		         "%zu stop command(s); %zu takeover command(s)",
		         f->stop.n, f->takeover_command.n);
	else
		snprintf(buf, len,
		         "%zu stop command(s); host name %s; %s on %s%s%s",
		         f->stop.n, f->hostname ? f->hostname : "kept",
		         f->service_address ? f->service_address
		                            : "no service address",
		         f->interface ? f->interface : "-",
		         f->own_address ? ", giving up " : "",
		         f->own_address ? f->own_address : "");
}

static int
run_identity(struct fo_ctx *c, char *done, size_t donelen, char *why,
             size_t whylen)
{
	const struct hs_failover *f = &c->conf->failover;
	int rc;

	if ((rc = fo_run_cmds(c->conf, "identity", &f->stop, target_epoch(c),
	                      HS_ROLE_PRIMARY, why, whylen)) < 0)
		return rc;
	if (!has_identity(c->conf)) {
		snprintf(done, donelen,
		         "%zu stop command(s); no identity configured: nothing "
		         "to do",
		         f->stop.n);
		return HS_OK;
	}
	return fo_identity_take(c->conf, done, donelen, why, whylen);
}

/* --------------------------------------------------------- regenerate */

static void
plan_regenerate(struct fo_ctx *c, char *buf, size_t len)
{
	const struct hs_strlist *r = &c->conf->failover.regenerate;

	snprintf(buf, len, "%zu regenerate command(s)%s%s%s", r->n,
	         r->n ? ", first: " : "", r->n ? r->v[0] : "",
	         r->n > 1 ? ", ..." : "");
}

static int
run_regenerate(struct fo_ctx *c, char *done, size_t donelen, char *why,
               size_t whylen)
{
	const struct hs_strlist *r = &c->conf->failover.regenerate;
	int rc;

	if ((rc = fo_run_cmds(c->conf, "regenerate", r, target_epoch(c),
	                      HS_ROLE_PRIMARY, why, whylen)) < 0)
		return rc;
	snprintf(done, donelen, "%zu command(s)", r->n);
	return HS_OK;
}

/* -------------------------------------------------------------- start */

static void
plan_start(struct fo_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len,
	         "%zu start command(s); store role primary; the daemon runs "
	         "as primary (%s)",
	         c->conf->failover.start.n,
	         hs_daemon_pid(c->conf->state_dir) ? "switched in its process"
	                                           : "started");
}

static int
run_start(struct fo_ctx *c, char *done, size_t donelen, char *why,
          size_t whylen)
{
	struct idx_node me;
	json_t *r = NULL;
	int rc, ran;

	if ((rc = fo_run_cmds(c->conf, "start", &c->conf->failover.start,
	                      target_epoch(c), HS_ROLE_PRIMARY, why, whylen)) <
	    0)
		return rc;
	me.role = HS_ROLE_PRIMARY;
	me.flags = 0;
	me.epoch = target_epoch(c);
	if ((rc = fo_node_put(c->conf, &me, why, whylen)) < 0)
		return rc;
	if ((ran = fo_ask(c->conf, "role", &r, why, whylen)) < 0)
		return ran;
	json_decref(r);
	if (!ran && (rc = fo_daemon_start(c->conf, c->opts, why, whylen)) < 0)
		return rc;
	if ((rc = fo_wait_role(c->conf, HS_ROLE_PRIMARY, why, whylen)) < 0)
		return rc;
	snprintf(done, donelen,
	         "role primary at epoch %llu; daemon %s (pid %d)",
	         (unsigned long long)me.epoch,
	         ran ? "switched in its process" : "started",
	         hs_daemon_pid(c->conf->state_dir));
	return HS_OK;
}

/* ------------------------------------------------------------ promote */

static const struct fo_step promote_steps[] = {
    {"preflight", plan_preflight, run_preflight},
    {"fence", plan_fence, run_fence},
    {"drain", plan_drain, run_drain},
    {"database", plan_database, run_database},
    {"identity", plan_identity, run_identity},
    {"regenerate", plan_regenerate, run_regenerate},
    {"start", plan_start, run_start},
};

int
fo_promote(const struct hs_conf *conf, const struct fo_opts *o)
{
	struct idx_node me;
	char why[1024] = "";
	int probed = 0; /* did preflight probe the primary in this run? */

	if (fo_node_get(conf, &me, why, sizeof(why)) < 0) {
		fprintf(stderr, "hamnsync: promote: %s\n", why);
		return 1;
	}
	if (me.role == HS_ROLE_PRIMARY && !fo_steps_begun(conf, "promote")) {
		/* A fenced primary is no primary: its successor must keep
		 * its data. */
		if (me.flags & IDX_NODE_F_REJOIN) {
			fprintf(stderr,
			        "hamnsync: promote: this node is a primary "
			        "fenced by a newer epoch (this node: %llu): "
			        "run `hamnsync rejoin` first\n",
			        (unsigned long long)me.epoch);
			return 1;
		}
		/* Nothing to do, and saying so is the answer a script
		 * wants. */
		fprintf(o->out,
		        "promote: this node is already the primary (epoch "
		        "%llu)\n",
		        (unsigned long long)me.epoch);
		return 0;
	}
	return fo_steps_run(conf, "promote", promote_steps,
	                    sizeof(promote_steps) / sizeof(promote_steps[0]), o,
	                    &probed);
}
