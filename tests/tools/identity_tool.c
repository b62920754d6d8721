/*
 * identity_tool.c - hs-identity: take over or give back this node's
 * identity ([failover] of CONF) as the identity step of promote and
 * rejoin do, and nothing else.  Tests run it inside network and UTS
 * namespaces of their own.
 *
 *	hs-identity CONF take|release
 *
 * Prints "done: WHAT" and exits 0, or one line "hs-identity: take: WHY"
 * on stderr and exits 1 (2: usage or config).  The commands' output goes
 * to the log on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "fo_int.h"

int
main(int argc, char **argv)
{
	char err[1024], done[1024], why[1024];
	struct hs_conf *conf;
	int take, rc;

	if (argc != 3 ||
	    (strcmp(argv[2], "take") != 0 && strcmp(argv[2], "release") != 0)) {
		fprintf(stderr, "usage: hs-identity CONF take|release\n");
		return 2;
	}
	take = strcmp(argv[2], "take") == 0;
	hs_log_init("hs-identity", 1, HS_LOG_INFO);
	if (hs_conf_load(argv[1], &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "hs-identity: %s\n", err);
		return 2;
	}
	rc = take ? fo_identity_take(conf, done, sizeof(done), why, sizeof(why))
	          : fo_identity_release(conf, done, sizeof(done), why,
	                                sizeof(why));
	hs_conf_free(conf);
	if (rc < 0) {
		fprintf(stderr, "hs-identity: %s: %s\n", argv[2], why);
		return 1;
	}
	printf("done: %s\n", done);
	return 0;
}
