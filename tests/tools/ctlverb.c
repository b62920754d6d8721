/*
 * ctlverb.c - hs-ctl: send one control verb to the daemon of a state_dir
 * (ctl_request, as promote and rejoin do) and print its JSON answer.
 *
 *	hs-ctl STATE_DIR VERB   prints the answer on one line
 *
 * Exit 0 with an answer (even {"error": ...}), 1 when no daemon answered.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"

#define CTL_VERB_TIMEOUT_MS 5000

int
main(int argc, char **argv)
{
	json_t *reply = NULL;
	char *text;
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: hs-ctl STATE_DIR VERB\n");
		return 2;
	}
	rc = ctl_request(argv[1], argv[2], CTL_VERB_TIMEOUT_MS, &reply);
	if (rc < 0) {
		fprintf(stderr, "hs-ctl: %s: %s: %s\n", argv[1], argv[2],
		        hs_strerror(rc));
		return 1;
	}
	text = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
	printf("%s\n", text != NULL ? text : "null");
	free(text);
	json_decref(reply);
	return 0;
}
