/*
 * node.c - hs-node: read or set a node's role, epoch and flags in its
 * index, as promote, rejoin and a fencing daemon would.  Tests use it to
 * stage a failover's aftermath without the commands that make one.
 *
 *	hs-node STATE_DIR                    prints "role epoch flags"
 *	hs-node STATE_DIR ROLE EPOCH FLAGS   stores them
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hs.h"
#include "idx.h"

static int
node_show(struct idx *x)
{
	struct idx_node n;
	int rc;

	if ((rc = idx_node_get(x, &n)) < 0) {
		fprintf(stderr, "hs-node: node state: %s\n", hs_strerror(rc));
		return 1;
	}
	printf("%s %llu %u\n", hs_role_name(n.role),
	       (unsigned long long)n.epoch, n.flags);
	return 0;
}

static int
node_set(struct idx *x, char **argv)
{
	struct idx_node n;
	uint64_t flags;
	int rc;

	memset(&n, 0, sizeof(n));
	if (strcmp(argv[0], "primary") == 0)
		n.role = HS_ROLE_PRIMARY;
	else if (strcmp(argv[0], "standby") == 0)
		n.role = HS_ROLE_STANDBY;
	else {
		fprintf(stderr, "hs-node: role %s: primary or standby\n",
		        argv[0]);
		return 2;
	}
	/* A typo must not stage epoch or flags 0 silently. */
	if (hs_parse_u64(argv[1], 0, UINT64_MAX, &n.epoch) < 0 ||
	    hs_parse_u64(argv[2], 0, UINT32_MAX, &flags) < 0) {
		fprintf(stderr,
		        "hs-node: epoch %s, flags %s: not both decimal "
		        "numbers (flags below 2^32)\n",
		        argv[1], argv[2]);
		return 2;
	}
	n.flags = (uint32_t)flags;
	if ((rc = idx_node_put(x, &n)) < 0) {
		fprintf(stderr, "hs-node: node state: %s\n", hs_strerror(rc));
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct idx *x;
	int rc;

	if (argc != 2 && argc != 5) {
		fprintf(stderr,
		        "usage: hs-node STATE_DIR [ROLE EPOCH FLAGS]\n");
		return 2;
	}
	if ((rc = idx_open(argv[1], argc == 2, &x)) < 0) {
		fprintf(stderr, "hs-node: %s/index: %s\n", argv[1],
		        hs_strerror(rc));
		return 1;
	}
	rc = argc == 2 ? node_show(x) : node_set(x, argv + 2);
	idx_close(x);
	return rc;
}
