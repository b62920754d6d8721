/*
 * failover.h - promote, rejoin and switchover: the commands that change
 * this node's role (SPEC.md, "Failover").  One prefix, fo_.
 *
 * Each command is a list of named steps.  A step's outcome is printed as
 * it ends ("promote: fence: done in 0.01 s") and persisted under
 * state_dir/promote/ before the next one starts, so that the same command
 * run again after a failure or a crash resumes at the step that did not
 * finish and never repeats one that did.
 *
 * The commands work with the daemon running or stopped.  A running
 * daemon is told through its control socket (ctl.h: the verbs `fence`
 * and `role`); it is never signalled or restarted.  A stopped one is
 * started in the new role at the end.
 */
#ifndef FAILOVER_H
#define FAILOVER_H

#include <stdio.h>

#include "hs.h"

struct fo_opts {
	const char *conf_path; /* for the daemon started at the end */
	int force;             /* promote: even while the primary answers */
	int dry_run;           /* print the plan, change nothing */
	FILE *out;             /* step lines (stdout) */
};

/*
 * Exit statuses (SPEC.md): 0 every step done; 1 a step failed or the
 * preflight refused (the reason printed, one line, naming the step);
 * 2 usage or config error; 3 the peer was needed and did not answer.
 */
int fo_promote(const struct hs_conf *conf, const struct fo_opts *o);
int fo_rejoin(const struct hs_conf *conf, const struct fo_opts *o);
int fo_switchover(const struct hs_conf *conf, const struct fo_opts *o);

#endif /* FAILOVER_H */
