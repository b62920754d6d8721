/* node.c - this node's role and epoch, from the index (or the config). */
#include <errno.h>
#include <sys/stat.h>

#include "cli.h"
#include "idx.h"
#include "proto.h"

int
cli_node_state(const struct hs_conf *conf, struct idx_node *node)
{
	return cli_node_open(conf, node, NULL);
}

int
cli_node_open(const struct hs_conf *conf, struct idx_node *node,
              struct idx **keep)
{
	struct idx *x;
	int rc;

	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		cli_err("state_dir", "%s: %s", conf->state_dir,
		        hs_strerror(rc));
		return rc;
	}
	if ((rc = idx_open(conf->state_dir, 0, &x)) < 0) {
		/* A damaged index was explained, with the fix, where found. */
		if (rc != HS_EINDEX)
			cli_err("index", "%s/index: %s", conf->state_dir,
			        hs_strerror(rc));
		return rc;
	}
	rc = idx_node_get(x, node);
	if (rc == HS_ENOTFOUND) {
		/* First start: the config's role; later the index decides. */
		node->role = conf->role;
		node->flags = 0;
		node->epoch = 0;
		rc = idx_node_put(x, node);
	}
	if (keep != NULL && rc == HS_OK)
		*keep = x;
	else
		idx_close(x);
	if (rc < 0)
		cli_err("index", "%s/index: node state: %s", conf->state_dir,
		        hs_strerror(rc));
	return rc;
}

struct proto_tls *
cli_identity_load(const struct hs_conf *conf, const char *cmd)
{
	struct proto_tls *t;
	char why[HS_ERRMSG_MAX];

	if (proto_tls_from_conf(conf, &t, why, sizeof(why)) < 0) {
		cli_err(cmd, "%s", why);
		return NULL;
	}
	return t;
}
