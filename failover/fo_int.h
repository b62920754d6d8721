/*
 * fo_int.h - the parts of failover/ that its commands share.
 *
 *	steps.c		the persisted step list (state_dir/promote/)
 *	run.c		configured commands, bounded by step_timeout
 *	identity.c	host name and service address (Linux), or the
 *			configured takeover/release commands elsewhere
 *	promote.c	fo_promote
 *	rejoin.c	fo_rejoin, and moving a node's own changes aside
 *	switchover.c	fo_switchover
 */
#ifndef FO_INT_H
#define FO_INT_H

#include "failover.h"

/*
 * identity.c.  What a node must do to become (take) or stop being
 * (release) the address and name the cluster knows as the management
 * node, from [failover]: hostname, service_address on interface,
 * own_address, takeover_command, release_command.
 *
 * take:    remember this node's own host name (state_dir/promote/
 *          hostname, once), set `hostname`, add service_address to
 *          interface, remove own_address from it, then announce the
 *          address: a gratuitous ARP (IPv4) or an unsolicited neighbour
 *          advertisement (IPv6), so the cluster's caches move to this
 *          node's link-layer address.
 * release: the reverse: remove service_address, add own_address back,
 *          set the host name remembered by take (when there is one).
 *
 * With takeover_command (release_command) set, those commands run
 * instead, in order, with step_timeout each.  A key that is not set is
 * a step that is skipped, said in `done` ("no service_address").  Every
 * change is idempotent: a second take after a crash finds the address
 * present and the name set, and succeeds.  HS_OK, or an error with one
 * line in `why` naming the interface, address or command.  `done` gets
 * one line saying what was changed.
 */
int fo_identity_take(const struct hs_conf *conf, char *done, size_t donelen,
                     char *why, size_t whylen);
int fo_identity_release(const struct hs_conf *conf, char *done, size_t donelen,
                        char *why, size_t whylen);

/*
 * run.c.  Run each of `cmds` in order through /bin/sh -c, each in a
 * process group of its own that is killed whole past `timeout_s`.  Its
 * stdout and stderr go to the log line by line ("regenerate: makedns -n:
 * ..."), and its environment carries HAMNSYNC_STEP=`step`,
 * HAMNSYNC_EPOCH, HAMNSYNC_ROLE (the role being taken),
 * HAMNSYNC_HOSTNAME, HAMNSYNC_SERVICE_ADDRESS and HAMNSYNC_INTERFACE
 * from [failover] (empty when not set).  Stops at the first that fails:
 * HS_OK, or an error with `why` = "<command>: exit 3: <its last line>"
 * or "<command>: timed out after 300 s, killed".
 */
int fo_run_cmds(const struct hs_conf *conf, const char *step,
                const struct hs_strlist *cmds, uint64_t epoch,
                enum hs_role role, char *why, size_t whylen);

#endif /* FO_INT_H */
