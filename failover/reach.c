/*
 * reach.c - what every failover command does the same way: read and store
 * this node's state in its index, and ask the peer who it is.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fo_int.h"
#include "idx.h"
#include "proto.h"

uint64_t
fo_step_timeout(const struct hs_conf *conf)
{
	return conf->failover.present && conf->failover.step_timeout
	           ? conf->failover.step_timeout
	           : 300;
}

/* A node whose daemon never ran is what its config says, at epoch 0. */
static void
node_default(const struct hs_conf *conf, struct idx_node *n)
{
	n->role = conf->role;
	n->flags = 0;
	n->epoch = 0;
}

int
fo_node_get(const struct hs_conf *conf, struct idx_node *n, char *why,
            size_t whylen)
{
	struct idx *x;
	int rc;

	node_default(conf, n);
	if ((rc = idx_open(conf->state_dir, 1, &x)) == HS_ENOTFOUND)
		return HS_OK;
	if (rc == HS_OK) {
		rc = idx_node_get(x, n);
		idx_close(x);
		if (rc == HS_ENOTFOUND) {
			node_default(conf, n);
			rc = HS_OK;
		}
	}
	if (rc < 0)
		snprintf(why, whylen, "%s/index: node state: %s",
		         conf->state_dir, hs_strerror(rc));
	return rc;
}

int
fo_node_put(const struct hs_conf *conf, const struct idx_node *n, char *why,
            size_t whylen)
{
	struct idx *x;
	int rc;

	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	else if ((rc = idx_open(conf->state_dir, 0, &x)) == HS_OK) {
		rc = idx_node_put(x, n);
		idx_close(x);
	}
	if (rc < 0)
		snprintf(why, whylen, "%s/index: storing the node state: %s",
		         conf->state_dir, hs_strerror(rc));
	return rc;
}

int
fo_probe(const struct hs_conf *conf, enum hs_role role, uint64_t epoch,
         uint8_t flags, int timeout_ms, struct proto_hello *peer, char *why,
         size_t whylen)
{
	struct proto_hello mine;
	struct proto_tls *t;
	char e[HS_ERRMSG_MAX] = "";
	int rc;

	if ((rc = proto_tls_from_conf(conf, &t, e, sizeof(e))) < 0) {
		snprintf(why, whylen, "this node's TLS identity: %s", e);
		return HS_ECONFIG;
	}
	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", conf->node_name);
	mine.role = role;
	mine.epoch = epoch;
	mine.flags = flags;
	memset(peer, 0, sizeof(*peer));
	rc = proto_probe(t, conf->peer, &mine, timeout_ms, peer, e, sizeof(e));
	proto_tls_free(t);
	if (rc < 0) {
		snprintf(why, whylen, "peer %s (%s) did not answer: %s",
		         conf->peer_name ? conf->peer_name : conf->peer,
		         conf->peer, e[0] ? e : hs_strerror(rc));
		return -EHOSTUNREACH;
	}
	return HS_OK;
}
