/*
 * rejoin.c - `hamnsync rejoin`: a former primary becomes the standby of
 * the node that replaced it (SPEC.md, "Failover").
 *
 * Steps: preflight (the peer answers as a primary of a newer epoch),
 * stop (this node sends nothing more), aside (its own changes that the
 * new primary never received go to state_dir/rejoin-EPOCH/: aside.c),
 * database (its own snapshots give way to the new primary's), role
 * (standby at the peer's epoch; the daemon runs as such).  The new
 * primary then reconciles every set by deltas: only what differs
 * travels.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbrepl.h"
#include "fo_int.h"
#include "idx.h"
#include "proto.h"

/* The probe of the peer: a node that answers at all does so within it. */
#define RJ_PROBE_MS 5000

static const char *
peer_label(const struct hs_conf *conf)
{
	return conf->peer_name != NULL ? conf->peer_name : conf->peer;
}

/* ------------------------------------------------------------ preflight */

static void
preflight_plan(struct fo_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len,
	         "check this node is a primary; probe %s (%s): it must answer "
	         "as a primary of a newer epoch",
	         peer_label(c->conf), c->conf->peer ? c->conf->peer : "none");
}

static int
preflight_run(struct fo_ctx *c, char *done, size_t donelen, char *why,
              size_t whylen)
{
	const struct hs_conf *conf = c->conf;
	struct proto_hello peer;
	struct idx_node n;
	char name[PROTO_NODE_MAX * 4 + 1];
	int rc;

	if ((rc = fo_node_get(conf, &n, why, whylen)) < 0)
		return rc;
	if (n.role != HS_ROLE_PRIMARY) {
		snprintf(
		    why, whylen,
		    "this node is a %s (epoch %llu), not a former primary: "
		    "nothing to rejoin",
		    hs_role_name(n.role), (unsigned long long)n.epoch);
		return HS_EREFUSED;
	}
	if (conf->peer == NULL) {
		snprintf(why, whylen,
		         "%s: no peer configured: nothing to "
		         "rejoin",
		         conf->file);
		return HS_ECONFIG;
	}
	if ((rc = fo_probe(conf, HS_ROLE_PRIMARY, n.epoch, PROTO_HELLO_F_FENCED,
	                   RJ_PROBE_MS, &peer, why, whylen)) < 0)
		return rc;
	/* The peer's own name, for a terminal and the log. */
	hs_escape(peer.name, name, sizeof(name));
	if (peer.role != HS_ROLE_PRIMARY) {
		snprintf(why, whylen,
		         "%s answers as %s at epoch %llu: nothing to rejoin; "
		         "promote it first, or use switchover",
		         name, hs_role_name(peer.role),
		         (unsigned long long)peer.epoch);
		return HS_EREFUSED;
	}
	if (peer.epoch <= n.epoch || (peer.flags & PROTO_HELLO_F_FENCED)) {
		snprintf(
		    why, whylen,
		    "%s answers as %sprimary at epoch %llu, this node's is "
		    "%llu: nothing to rejoin; promote it first, or use "
		    "switchover",
		    name, (peer.flags & PROTO_HELLO_F_FENCED) ? "fenced " : "",
		    (unsigned long long)peer.epoch,
		    (unsigned long long)n.epoch);
		return HS_EREFUSED;
	}
	fo_var_set_u64(c, "epoch", peer.epoch);
	fo_var_set_u64(c, "own_epoch", n.epoch);
	fo_var_set_str(c, "peer", name);
	snprintf(done, donelen,
	         "%s is the primary at epoch %llu (this node: "
	         "%llu)",
	         name, (unsigned long long)peer.epoch,
	         (unsigned long long)n.epoch);
	return HS_OK;
}

/* ----------------------------------------------------------------- stop */

static void
stop_plan(struct fo_ctx *c, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len,
	         "mark this node \"needs rejoin\" (it sends "
	         "nothing more); a running daemon is told (verb fence)");
}

static int
stop_run(struct fo_ctx *c, char *done, size_t donelen, char *why, size_t whylen)
{
	const struct hs_conf *conf = c->conf;
	struct idx_node n;
	json_t *reply;
	int rc;

	if ((rc = fo_node_get(conf, &n, why, whylen)) < 0)
		return rc;
	if (n.role == HS_ROLE_PRIMARY && !(n.flags & IDX_NODE_F_REJOIN)) {
		n.flags |= IDX_NODE_F_REJOIN;
		if ((rc = fo_node_put(conf, &n, why, whylen)) < 0)
			return rc;
	}
	rc = fo_ask(conf, "fence", &reply, why, whylen);
	json_decref(reply);
	if (rc < 0)
		return rc;
	snprintf(done, donelen, "%s",
	         rc ? "the running daemon is fenced"
	            : "no daemon runs; marked needs rejoin");
	return HS_OK;
}

/* ------------------------------------------------------------ aside */

static void
aside_plan(struct fo_ctx *c, char *buf, size_t len)
{
	char epoch[32] = "EPOCH";

	if (fo_var_u64(c, "epoch", 0) != 0)
		snprintf(epoch, sizeof(epoch), "%llu",
		         (unsigned long long)fo_var_u64(c, "epoch", 0));
	snprintf(buf, len,
	         "move this node's changes its standby never acknowledged "
	         "into %s/rejoin-%s/ and list them",
	         c->conf->state_dir, epoch);
}

static int
aside_run(struct fo_ctx *c, char *done, size_t donelen, char *why,
          size_t whylen)
{
	return fo_aside(c->conf, fo_var_u64(c, "epoch", 0), c->opts->out, done,
	                donelen, why, whylen);
}

/* ---------------------------------------------------------- database */

static void
database_plan(struct fo_ctx *c, char *buf, size_t len)
{
	if (c->conf->n_dbs == 0)
		snprintf(buf, len, "no database: nothing to do");
	else
		snprintf(buf, len,
		         "remove this node's %zu database snapshot(s) under "
		         "%s/%s/: the new primary's replace them",
		         c->conf->n_dbs, c->conf->state_dir, DBR_DIR);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 &&
	    errno != ENOENT)
		return -errno;
	return 0;
}

/* Remove path and all below it; absent is fine. */
static int
rm_tree(const char *path)
{
	struct stat st;
	int rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? HS_OK : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -errno : HS_OK;
	rc = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (rc == -1)
		return -errno;
	return rc;
}

static int
database_run(struct fo_ctx *c, char *done, size_t donelen, char *why,
             size_t whylen)
{
	static const char *const suffix[] = {"", ".good", ".restored"};
	const struct hs_conf *conf = c->conf;
	char path[4096];
	size_t i, j;
	int rc;

	if (conf->n_dbs == 0) {
		snprintf(done, donelen, "no database: nothing to do");
		return HS_OK;
	}
	/*
	 * A primary's own snapshots describe a history the new primary does
	 * not share: gone, the first snapshot that arrives is taken whole
	 * and restored as usual.
	 */
	for (i = 0; i < conf->n_dbs; i++) {
		for (j = 0; j < sizeof(suffix) / sizeof(suffix[0]); j++) {
			snprintf(path, sizeof(path), "%s/%s/%s%s",
			         conf->state_dir, DBR_DIR, conf->dbs[i].name,
			         suffix[j]);
			if ((rc = rm_tree(path)) < 0) {
				snprintf(why, whylen, "%s: %s", path,
				         hs_strerror(rc));
				return rc;
			}
		}
	}
	snprintf(done, donelen, "removed the snapshots of %zu database(s)",
	         conf->n_dbs);
	return HS_OK;
}

/* -------------------------------------------------------------- role */

static void
role_plan(struct fo_ctx *c, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len,
	         "store role standby at the peer's epoch; the daemon runs as "
	         "standby (verb role, or started)");
}

static int
role_run(struct fo_ctx *c, char *done, size_t donelen, char *why, size_t whylen)
{
	const struct hs_conf *conf = c->conf;
	struct idx_node n;
	json_t *reply;
	int rc, running;

	n.role = HS_ROLE_STANDBY;
	n.flags = 0;
	n.epoch = fo_var_u64(c, "epoch", 0);
	if ((rc = fo_node_put(conf, &n, why, whylen)) < 0)
		return rc;
	running = fo_ask(conf, "role", &reply, why, whylen);
	json_decref(reply);
	if (running < 0)
		return running;
	if (!running && (rc = fo_daemon_start(conf, c->opts, why, whylen)) < 0)
		return rc;
	if ((rc = fo_wait_role(conf, HS_ROLE_STANDBY, why, whylen)) < 0)
		return rc;
	snprintf(done, donelen, "%s runs as standby of %s at epoch %llu",
	         running ? "the daemon" : "a daemon started, it",
	         fo_var_str(c, "peer") ? fo_var_str(c, "peer") : "the peer",
	         (unsigned long long)n.epoch);
	return HS_OK;
}

const struct fo_step fo_rejoin_steps[] = {
    {"preflight", preflight_plan, preflight_run},
    {"stop", stop_plan, stop_run},
    {"aside", aside_plan, aside_run},
    {"database", database_plan, database_run},
    {"role", role_plan, role_run},
};
const size_t fo_rejoin_nsteps =
    sizeof(fo_rejoin_steps) / sizeof(fo_rejoin_steps[0]);

int
fo_rejoin(const struct hs_conf *conf, const struct fo_opts *o)
{
	struct idx_node n;
	char why[HS_ERRMSG_MAX];

	if (!fo_steps_begun(conf, "rejoin")) {
		if (fo_node_get(conf, &n, why, sizeof(why)) < 0) {
			fprintf(stderr, "hamnsync: rejoin: %s\n", why);
			return 1;
		}
		if (n.role == HS_ROLE_STANDBY) {
			fprintf(o->out,
			        "rejoin: this node is already a "
			        "standby (epoch %llu)\n",
			        (unsigned long long)n.epoch);
			return 0;
		}
	}
	return fo_steps_run(conf, "rejoin", fo_rejoin_steps, fo_rejoin_nsteps,
	                    o, NULL);
}
