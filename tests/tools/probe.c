/*
 * probe.c - hs-probe: ask a node who it is, as promote's preflight and a
 * fencing primary do (proto_probe), and print its answer.
 *
 *	hs-probe CONF [HOST:PORT]   prints "name role epoch flags" of the
 *	                            node at HOST:PORT (default: CONF's peer)
 *
 * The probe carries CONF's node name, its role and epoch 0: it claims
 * nothing.  Exit 0 with an answer, 1 (one line on stderr) without.
 */
#include <stdio.h>
#include <string.h>

#include "hs.h"
#include "proto.h"

#define PROBE_TIMEOUT_MS 5000

int
main(int argc, char **argv)
{
	struct hs_conf *conf;
	struct proto_tls *tls;
	struct proto_hello mine, peer;
	char why[HS_ERRMSG_MAX];
	int rc;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: hs-probe CONF [HOST:PORT]\n");
		return 2;
	}
	hs_log_init("hs-probe", 1, HS_LOG_WARN);
	if (hs_conf_load(argv[1], &conf, why, sizeof(why)) < 0) {
		fprintf(stderr, "hs-probe: %s\n", why);
		return 2;
	}
	if (proto_tls_from_conf(conf, &tls, why, sizeof(why)) < 0) {
		fprintf(stderr, "hs-probe: %s\n", why);
		hs_conf_free(conf);
		return 2;
	}
	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", conf->node_name);
	mine.role = conf->role;
	rc = proto_probe(tls, argc == 3 ? argv[2] : conf->peer, &mine,
	                 PROBE_TIMEOUT_MS, &peer, why, sizeof(why));
	if (rc < 0)
		fprintf(stderr, "hs-probe: %s: %s\n",
		        argc == 3 ? argv[2] : conf->peer, why);
	else
		printf("%s %s %llu %u\n", peer.name, hs_role_name(peer.role),
		       (unsigned long long)peer.epoch, (unsigned)peer.flags);
	proto_tls_free(tls);
	hs_conf_free(conf);
	return rc < 0 ? 1 : 0;
}
