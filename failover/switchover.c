/*
 * switchover.c - `hamnsync switchover`: the primary and its standby swap
 * roles while both are healthy, under a new epoch (SPEC.md, "Failover").
 *
 * On the primary it is a step list (steps.c): preflight (this node is an
 * unfenced primary whose daemon runs and is connected, the peer answers
 * as its standby at our epoch), stop (the `stop` commands: the service
 * and its database stop changing), drain (verb `drain`: the daemon takes
 * a database snapshot now, marks a cut, and sends what it saw until the
 * cut; nothing after it), release (the service address and host name
 * go), handover (a probe with PROTO_HELLO_F_HANDOVER: the standby's
 * daemon starts its own `promote --force`; then until the peer answers
 * as the primary of a newer epoch), rejoin (rejoin's steps: changes made
 * here after the cut are moved aside, this node becomes the standby).
 *
 * On the standby it asks the primary to run it (a probe with
 * PROTO_HELLO_F_SWITCHOVER; the primary's daemon starts its own
 * `switchover`) and waits until this node is the primary of a newer
 * epoch and the peer its standby.  It changes nothing itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "fo_int.h"
#include "idx.h"
#include "proto.h"

/* One probe of the peer: a node that answers at all does so within it. */
#define SO_PROBE_MS 5000
/* The pause between two looks at the drain, the peer, the daemon. */
#define SO_POLL_US 200000

/* ------------------------------------------------------------ helpers */

/*
 * Ask this node's daemon `verb` (fo_ask): HS_OK with *reply (a new
 * reference), or an error in `why`; none running is a refusal, since
 * switchover needs both daemons.
 */
static int
so_ask(const struct hs_conf *conf, const char *verb, json_t **reply, char *why,
       size_t whylen)
{
	int rc = fo_ask(conf, verb, reply, why, whylen);

	if (rc == 0) {
		snprintf(why, whylen,
		         "no daemon runs on %s: switchover needs "
		         "both daemons running",
		         conf->state_dir);
		return HS_EREFUSED;
	}
	return rc < 0 ? rc : HS_OK;
}

/* "mn2 answers as standby at epoch 0", the name escaped. */
static void
so_said(const struct proto_hello *peer, char *buf, size_t len)
{
	char name[PROTO_NODE_MAX * 4 + 1];

	hs_escape(peer->name, name, sizeof(name));
	snprintf(buf, len, "%s answers as %s%s at epoch %llu", name,
	         (peer->flags & PROTO_HELLO_F_FENCED) ? "fenced " : "",
	         hs_role_name((enum hs_role)peer->role),
	         (unsigned long long)peer->epoch);
}

/*
 * Is this daemon's status healthy enough to hand over: connected to its
 * peer, no set held back or in error, no database in error.  0 with the
 * reason in `why`.
 */
static int
so_healthy(const json_t *st, char *why, size_t whylen)
{
	const char *ps = json_string_value(
	    json_object_get(json_object_get(st, "peer"), "state"));
	const char *s;
	json_t *p;
	size_t i;

	if (ps == NULL || strcmp(ps, "connected") != 0) {
		snprintf(why, whylen,
		         "the standby is not connected (peer "
		         "state %s): nothing could be drained to it",
		         ps ? ps : "unknown");
		return 0;
	}
	json_array_foreach(json_object_get(st, "paths"), i, p)
	{
		s = json_string_value(json_object_get(p, "state"));
		if (s != NULL &&
		    (strcmp(s, "held") == 0 || strcmp(s, "error") == 0)) {
			snprintf(why, whylen,
			         "set %s is %s: resolve it first (see status)",
			         json_string_value(json_object_get(p, "name")),
			         s);
			return 0;
		}
	}
	json_array_foreach(json_object_get(st, "databases"), i, p)
	{
		s = json_string_value(json_object_get(p, "state"));
		if (s != NULL && strcmp(s, "error") == 0) {
			snprintf(why, whylen,
			         "database %s is in error: resolve it first "
			         "(see status)",
			         json_string_value(json_object_get(p, "name")));
			return 0;
		}
	}
	return 1;
}

/* ---------------------------------------------------------- preflight */

static void
plan_preflight(struct fo_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len,
	         "check this node is an unfenced primary whose daemon runs "
	         "connected and healthy; probe %s: it must answer as the "
	         "standby of this node's epoch",
	         c->conf->peer ? c->conf->peer : "(no peer)");
}

static int
run_preflight(struct fo_ctx *c, char *done, size_t donelen, char *why,
              size_t whylen)
{
	const struct hs_conf *conf = c->conf;
	struct proto_hello peer;
	struct idx_node me;
	char said[PROTO_NODE_MAX * 4 + 64];
	const char *role;
	json_t *st;
	int rc;

	if (conf->peer == NULL) {
		snprintf(why, whylen,
		         "%s: [node] peer is not set: nothing to "
		         "switch over with",
		         conf->file);
		return HS_ECONFIG;
	}
	if ((rc = fo_node_get(conf, &me, why, whylen)) < 0)
		return rc;
	if (me.role != HS_ROLE_PRIMARY || (me.flags & IDX_NODE_F_REJOIN)) {
		snprintf(why, whylen,
		         "this node is %s at epoch %llu, not the "
		         "primary: run switchover on either node of a healthy "
		         "pair",
		         (me.flags & IDX_NODE_F_REJOIN) ? "a fenced primary"
		                                        : hs_role_name(me.role),
		         (unsigned long long)me.epoch);
		return HS_EREFUSED;
	}
	if ((rc = fo_probe(conf, HS_ROLE_PRIMARY, me.epoch, 0, SO_PROBE_MS,
	                   &peer, why, whylen)) < 0)
		return rc;
	so_said(&peer, said, sizeof(said));
	if (peer.role != HS_ROLE_STANDBY || peer.epoch != me.epoch) {
		snprintf(why, whylen,
		         "%s, not as the standby of this node's "
		         "epoch %llu: nothing to switch over with",
		         said, (unsigned long long)me.epoch);
		return HS_EREFUSED;
	}
	if ((rc = so_ask(conf, "status", &st, why, whylen)) < 0)
		return rc;
	role = json_string_value(json_object_get(st, "role"));
	if (role == NULL || strcmp(role, "primary") != 0) {
		snprintf(why, whylen,
		         "the daemon of %s runs as %s, not as "
		         "primary",
		         conf->state_dir, role ? role : "unknown");
		json_decref(st);
		return HS_EREFUSED;
	}
	rc = so_healthy(st, why, whylen);
	json_decref(st);
	if (!rc)
		return HS_EREFUSED;
	fo_var_set_u64(c, "so_epoch", me.epoch);
	snprintf(done, donelen, "%s; this node is the primary, connected",
	         said);
	return HS_OK;
}

/*
 * A step before the handover failed: the primary's daemon must not stay
 * drained (it would send nothing more while a rerun may never come).
 * `undrain` returns it to replicating; a rerun drains it again (release
 * begins by asking `drain`).  The step's own error stays the one line.
 */
static int
so_undrain(struct fo_ctx *c, int rc)
{
	char why[512] = "";
	json_t *r = NULL;

	if (rc >= 0)
		return rc;
	if (so_ask(c->conf, "undrain", &r, why, sizeof(why)) < 0) {
		hs_log_warnx("%s: undrain: %s", c->cmd, why);
		return rc;
	}
	if (json_is_true(json_object_get(r, "undrained"))) {
		fprintf(c->opts->out,
		        "%s: the daemon was drained: it replicates again\n",
		        c->cmd);
		hs_log_info("%s: undrained: the daemon replicates again",
		            c->cmd);
	}
	json_decref(r);
	return rc;
}

/* --------------------------------------------------------------- stop */

static void
plan_stop(struct fo_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len,
	         "%zu stop command(s): the service and its "
	         "database stop changing",
	         c->conf->failover.stop.n);
}

static int
run_stop(struct fo_ctx *c, char *done, size_t donelen, char *why, size_t whylen)
{
	const struct hs_strlist *s = &c->conf->failover.stop;
	int rc;

	if ((rc = fo_run_cmds(c->conf, "stop", s, fo_var_u64(c, "so_epoch", 0),
	                      HS_ROLE_STANDBY, why, whylen)) < 0)
		return so_undrain(c, rc);
	snprintf(done, donelen, "%zu command(s)", s->n);
	return HS_OK;
}

/* -------------------------------------------------------------- drain */

static void
plan_drain(struct fo_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len,
	         "the daemon snapshots the databases now, takes a cut and "
	         "sends every change seen until it (at most %llu s); nothing "
	         "after it",
	         (unsigned long long)fo_step_timeout(c->conf));
}

static int
drain_wait(struct fo_ctx *c, char *done, size_t donelen, char *why,
           size_t whylen)
{
	uint64_t secs = fo_step_timeout(c->conf);
	uint64_t t0 = hs_now_mono_ns(), end = t0 + secs * 1000000000ull;
	json_int_t pending = -1;
	const char *stage = "none";
	json_t *r;
	int rc;

	for (;;) {
		if ((rc = so_ask(c->conf, "drain", &r, why, whylen)) < 0)
			return rc;
		if (json_is_true(json_object_get(r, "drained"))) {
			json_decref(r);
			snprintf(done, donelen,
			         "the standby acknowledged every "
			         "change until the cut");
			return HS_OK;
		}
		pending =
		    json_integer_value(json_object_get(r, "files_pending"));
		stage = json_string_value(json_object_get(r, "stage"));
		stage = stage && strcmp(stage, "snapshot") == 0
		            ? "the database snapshot is not made"
		            : "changes are still being sent";
		json_decref(r);
		if (hs_now_mono_ns() >= end)
			break;
		usleep(SO_POLL_US);
	}
	snprintf(why, whylen,
	         "not drained after %llu s (step_timeout): %s, "
	         "%lld files pending",
	         (unsigned long long)secs, stage, (long long)pending);
	return HS_ETIMEOUT;
}

static int
run_drain(struct fo_ctx *c, char *done, size_t donelen, char *why,
          size_t whylen)
{
	return so_undrain(c, drain_wait(c, done, donelen, why, whylen));
}

/* ------------------------------------------------------------ release */

static int
has_identity(const struct hs_conf *conf)
{
	const struct hs_failover *f = &conf->failover;

	return f->hostname != NULL || f->service_address != NULL ||
	       f->own_address != NULL || f->release_command.n > 0;
}

static void
plan_release(struct fo_ctx *c, char *buf, size_t len)
{
	const struct hs_failover *f = &c->conf->failover;

	if (!has_identity(c->conf))
		snprintf(buf, len, "no identity configured: nothing to do");
	else if (f->release_command.n > 0)
		snprintf(buf, len, "%zu release command(s)",
		         f->release_command.n);
	else
		snprintf(buf, len, "remove %s from %s%s%s; host name back",
		         f->service_address ? f->service_address
		                            : "no service address",
		         f->interface ? f->interface : "-",
		         f->own_address ? ", add back " : "",
		         f->own_address ? f->own_address : "");
}

static int
run_release(struct fo_ctx *c, char *done, size_t donelen, char *why,
            size_t whylen)
{
	int rc;

	/*
	 * Resumed after a failure here that undrained the daemon: drained
	 * again first (at once when it still is).
	 */
	if ((rc = drain_wait(c, done, donelen, why, whylen)) < 0)
		return so_undrain(c, rc);
	if (!has_identity(c->conf)) {
		snprintf(done, donelen,
		         "no identity configured: nothing to "
		         "do");
		return HS_OK;
	}
	rc = fo_identity_release(c->conf, done, donelen, why, whylen);
	return so_undrain(c, rc);
}

/* ----------------------------------------------------------- handover */

static void
plan_handover(struct fo_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len,
	         "ask %s to promote itself (its daemon runs promote "
	         "--force); wait (at most %llu s) until it answers as the "
	         "primary of a newer epoch",
	         c->conf->peer ? c->conf->peer : "(no peer)",
	         (unsigned long long)3 * fo_step_timeout(c->conf));
}

/* Is `peer` the new primary: a primary, unfenced, newer than `epoch`? */
static int
so_promoted(const struct proto_hello *peer, uint64_t epoch)
{
	return peer->role == HS_ROLE_PRIMARY && peer->epoch > epoch &&
	       !(peer->flags & PROTO_HELLO_F_FENCED);
}

static int
run_handover(struct fo_ctx *c, char *done, size_t donelen, char *why,
             size_t whylen)
{
	/* promote's drain, database and start wait a step_timeout each. */
	uint64_t secs = 3 * fo_step_timeout(c->conf);
	uint64_t end = hs_now_mono_ns() + secs * 1000000000ull;
	uint64_t epoch = fo_var_u64(c, "so_epoch", 0);
	struct proto_hello peer;
	char said[HS_ERRMSG_MAX] = "";
	int rc;

	if ((rc = fo_probe(c->conf, HS_ROLE_PRIMARY, epoch, 0, SO_PROBE_MS,
	                   &peer, why, whylen)) < 0)
		return rc;
	/* Asked before a crash, and done since: nothing to ask again. */
	if (!so_promoted(&peer, epoch)) {
		so_said(&peer, said, sizeof(said));
		if (peer.role == HS_ROLE_STANDBY && peer.epoch > epoch) {
			snprintf(why, whylen,
			         "%s: its promote began and did "
			         "not finish: run `hamnsync promote --force` "
			         "there to resume it, then this command again",
			         said);
			return HS_EREFUSED;
		}
		if (peer.role != HS_ROLE_STANDBY || peer.epoch != epoch) {
			snprintf(why, whylen,
			         "%s, not as the standby of epoch "
			         "%llu: it cannot take over",
			         said, (unsigned long long)epoch);
			return HS_EREFUSED;
		}
		if ((rc = fo_probe(c->conf, HS_ROLE_PRIMARY, epoch,
		                   PROTO_HELLO_F_HANDOVER, SO_PROBE_MS, &peer,
		                   why, whylen)) < 0)
			return rc;
	}
	for (;;) {
		/* `said`: the last answer, or why there was none. */
		if (fo_probe(c->conf, HS_ROLE_PRIMARY, epoch, 0, SO_PROBE_MS,
		             &peer, said, sizeof(said)) == HS_OK) {
			so_said(&peer, said, sizeof(said));
			if (so_promoted(&peer, epoch))
				break;
		}
		if (hs_now_mono_ns() >= end) {
			snprintf(why, whylen,
			         "the peer did not become the "
			         "primary within %llu s (last: %s); see its "
			         "state_dir/promote/promote.out",
			         (unsigned long long)secs, said);
			return HS_ETIMEOUT;
		}
		usleep(SO_POLL_US);
	}
	fo_var_set_u64(c, "so_new_epoch", peer.epoch);
	snprintf(done, donelen, "%s", said);
	return HS_OK;
}

/* ------------------------------------------------------------- rejoin */

static void
plan_rejoin(struct fo_ctx *c, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len,
	         "rejoin's steps: this node's changes after the cut go into "
	         "state_dir/rejoin-EPOCH/ (listed); it runs as the new "
	         "primary's standby");
}

/*
 * rejoin's steps in order, each said on its own line.  Each is safe to
 * run again; a node that is already the standby of the new epoch (a
 * crash after the role step) has nothing left to do.
 */
static int
run_rejoin(struct fo_ctx *c, char *done, size_t donelen, char *why,
           size_t whylen)
{
	char sub[1024];
	struct idx_node me;
	uint64_t t0;
	size_t i;
	int rc;

	if ((rc = fo_node_get(c->conf, &me, why, whylen)) < 0)
		return rc;
	if (me.role == HS_ROLE_STANDBY &&
	    me.epoch >= fo_var_u64(c, "so_new_epoch", 1)) {
		snprintf(done, donelen, "already the standby at epoch %llu",
		         (unsigned long long)me.epoch);
		return HS_OK;
	}
	for (i = 0; i < fo_rejoin_nsteps; i++) {
		sub[0] = '\0';
		t0 = hs_now_mono_ns();
		rc = fo_rejoin_steps[i].run(c, sub, sizeof(sub), why, whylen);
		if (rc < 0)
			return rc;
		fprintf(c->opts->out, "%s: rejoin: %s: done in %.2f s%s%s\n",
		        c->cmd, fo_rejoin_steps[i].name,
		        (double)(hs_now_mono_ns() - t0) / 1e9,
		        sub[0] ? ": " : "", sub);
		fflush(c->opts->out);
	}
	snprintf(done, donelen, "%s", sub);
	return HS_OK;
}

static const struct fo_step switchover_steps[] = {
    {"preflight", plan_preflight, run_preflight},
    {"stop", plan_stop, run_stop},
    {"drain", plan_drain, run_drain},
    {"release", plan_release, run_release},
    {"handover", plan_handover, run_handover},
    {"rejoin", plan_rejoin, run_rejoin},
};

/* ------------------------------------------------- from the standby */

/*
 * Until this node's daemon answers status as the primary of an epoch
 * newer than `epoch` (then in *now_epoch), bounded by `secs`; each role
 * and epoch it goes through is printed once.
 */
static int
so_wait_self_primary(const struct hs_conf *conf, const struct fo_opts *o,
                     uint64_t epoch, uint64_t secs, uint64_t *now_epoch)
{
	uint64_t end = hs_now_mono_ns() + secs * 1000000000ull;
	char last[128] = "", cur[128];
	const char *role;
	json_t *st;

	for (;;) {
		st = NULL;
		if (ctl_request(conf->state_dir, "status", FO_CTL_MS, &st) ==
		    HS_OK) {
			role = json_string_value(json_object_get(st, "role"));
			*now_epoch = (uint64_t)json_integer_value(
			    json_object_get(st, "epoch"));
			snprintf(cur, sizeof(cur), "%s at epoch %llu",
			         role ? role : "unknown",
			         (unsigned long long)*now_epoch);
			if (strcmp(cur, last) != 0) {
				fprintf(o->out,
				        "switchover: this node runs as "
				        "%s\n",
				        cur);
				fflush(o->out);
				snprintf(last, sizeof(last), "%s", cur);
			}
			if (role != NULL && strcmp(role, "primary") == 0 &&
			    *now_epoch > epoch) {
				json_decref(st);
				return HS_OK;
			}
		}
		json_decref(st);
		if (hs_now_mono_ns() >= end)
			return HS_ETIMEOUT;
		usleep(SO_POLL_US);
	}
}

/* Until the peer answers as the standby of `epoch`, bounded by `secs`. */
static int
so_wait_peer_standby(const struct hs_conf *conf, const struct fo_opts *o,
                     uint64_t epoch, uint64_t secs, char *why, size_t whylen)
{
	uint64_t end = hs_now_mono_ns() + secs * 1000000000ull;
	char last[PROTO_NODE_MAX * 4 + 64] = "";
	char said[PROTO_NODE_MAX * 4 + 64];
	struct proto_hello peer;

	for (;;) {
		if (fo_probe(conf, HS_ROLE_PRIMARY, epoch, 0, SO_PROBE_MS,
		             &peer, why, whylen) == HS_OK) {
			so_said(&peer, said, sizeof(said));
			if (strcmp(said, last) != 0) {
				fprintf(o->out, "switchover: %s\n", said);
				fflush(o->out);
				snprintf(last, sizeof(last), "%s", said);
			}
			if (peer.role == HS_ROLE_STANDBY && peer.epoch == epoch)
				return HS_OK;
		}
		if (hs_now_mono_ns() >= end) {
			snprintf(why, whylen,
			         "the peer did not become the "
			         "standby of epoch %llu within %llu s (last: "
			         "%s); see its state_dir/promote/"
			         "switchover.out",
			         (unsigned long long)epoch,
			         (unsigned long long)secs,
			         last[0] ? last : "no answer");
			return HS_ETIMEOUT;
		}
		usleep(SO_POLL_US);
	}
}

/* Exit 1 with one line; the standby side changes nothing of its own. */
static int
so_refuse(const char *why, int rc)
{
	fprintf(stderr, "hamnsync: switchover: %s\n", why);
	return rc == -EHOSTUNREACH ? 3 : rc == HS_ECONFIG ? 2 : 1;
}

/* The standby's preflight: its daemon runs as a connected standby. */
static int
so_standby_ready(const struct hs_conf *conf, const struct idx_node *me,
                 char *why, size_t whylen)
{
	const char *ps;
	json_t *st;
	int rc;

	if (conf->peer == NULL) {
		snprintf(why, whylen,
		         "%s: [node] peer is not set: nothing to "
		         "switch over with",
		         conf->file);
		return HS_ECONFIG;
	}
	if (me->flags & IDX_NODE_F_PROMOTING) {
		snprintf(why, whylen,
		         "a promote of this node is under way: "
		         "finish it (hamnsync promote)");
		return HS_EREFUSED;
	}
	if ((rc = so_ask(conf, "status", &st, why, whylen)) < 0)
		return rc;
	ps = json_string_value(
	    json_object_get(json_object_get(st, "peer"), "state"));
	if (ps == NULL || strcmp(ps, "connected") != 0) {
		snprintf(why, whylen,
		         "this standby is not connected to its "
		         "primary (peer state %s)",
		         ps ? ps : "unknown");
		json_decref(st);
		return HS_EREFUSED;
	}
	json_decref(st);
	return HS_OK;
}

static int
so_from_standby(const struct hs_conf *conf, const struct fo_opts *o,
                const struct idx_node *me)
{
	uint64_t secs = 4 * fo_step_timeout(conf), epoch = 0;
	struct proto_hello peer;
	char why[1024] = "", said[PROTO_NODE_MAX * 4 + 64];
	int rc;

	if (o->dry_run) {
		fprintf(o->out,
		        "switchover: would ask the primary %s to run "
		        "switchover (it drains, releases its identity and "
		        "hands over; this node promotes itself), then wait "
		        "(at most %llu s) until this node is the primary\n",
		        conf->peer ? conf->peer : "(no peer)",
		        (unsigned long long)secs);
		return 0;
	}
	if ((rc = so_standby_ready(conf, me, why, sizeof(why))) < 0)
		return so_refuse(why, rc);
	if ((rc = fo_probe(conf, HS_ROLE_STANDBY, me->epoch, 0, SO_PROBE_MS,
	                   &peer, why, sizeof(why))) < 0)
		return so_refuse(why, rc);
	so_said(&peer, said, sizeof(said));
	if (peer.role != HS_ROLE_PRIMARY || peer.epoch != me->epoch ||
	    (peer.flags & PROTO_HELLO_F_FENCED)) {
		snprintf(why, sizeof(why),
		         "%s, not as the primary of this "
		         "node's epoch %llu: nothing to switch over with",
		         said, (unsigned long long)me->epoch);
		return so_refuse(why, HS_EREFUSED);
	}
	if ((rc = fo_probe(conf, HS_ROLE_STANDBY, me->epoch,
	                   PROTO_HELLO_F_SWITCHOVER, SO_PROBE_MS, &peer, why,
	                   sizeof(why))) < 0)
		return so_refuse(why, rc);
	fprintf(o->out,
	        "switchover: %s; asked it to switch over, waiting "
	        "(at most %llu s)\n",
	        said, (unsigned long long)secs);
	fflush(o->out);
	if (so_wait_self_primary(conf, o, me->epoch, secs, &epoch) < 0) {
		snprintf(why, sizeof(why),
		         "this node did not become the "
		         "primary within %llu s; see the peer's "
		         "state_dir/promote/switchover.out and this node's "
		         "state_dir/promote/promote.out",
		         (unsigned long long)secs);
		return so_refuse(why, HS_ETIMEOUT);
	}
	if (so_wait_peer_standby(conf, o, epoch, secs, why, sizeof(why)) < 0)
		return so_refuse(why, HS_ETIMEOUT);
	fprintf(o->out,
	        "switchover: done: this node is the primary at epoch "
	        "%llu, the peer its standby\n",
	        (unsigned long long)epoch);
	return 0;
}

/* ----------------------------------------------------------- switchover */

int
fo_switchover(const struct hs_conf *conf, const struct fo_opts *o)
{
	struct idx_node me;
	char why[1024] = "";
	int rc;

	if ((rc = fo_node_get(conf, &me, why, sizeof(why))) < 0)
		return so_refuse(why, rc);
	/* Begun as primary: it ends with this node a standby. */
	if (me.role == HS_ROLE_STANDBY && !fo_steps_begun(conf, "switchover"))
		return so_from_standby(conf, o, &me);
	return fo_steps_run(
	    conf, "switchover", switchover_steps,
	    sizeof(switchover_steps) / sizeof(switchover_steps[0]), o, NULL);
}
