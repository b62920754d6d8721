/*
 * fo_int.h - the parts of failover/ that its commands share.
 *
 *	steps.c		the persisted step list (state_dir/promote/)
 *	reach.c		this node's stored state, a probe of the peer,
 *			its own daemon (ask, start, wait for a role)
 *	run.c		configured commands, bounded by step_timeout
 *	identity.c	host name and service address (Linux), or the
 *			configured takeover/release commands elsewhere
 *	promote.c	fo_promote
 *	rejoin.c	fo_rejoin, and moving a node's own changes aside
 *	switchover.c	fo_switchover
 */
#ifndef FO_INT_H
#define FO_INT_H

#include <jansson.h>

#include "failover.h"

/*
 * steps.c.  A command is a table of steps run in order by fo_steps_run.
 * Each step's outcome is printed, "promote: fence: done in 0.02 s: epoch
 * 4" or "promote: regenerate: FAILED after 1.20 s: makedns -n: exit 1:
 * ...", and persisted in state_dir/promote/CMD.json (written whole,
 * fsynced, renamed) before the next begins.  A run that finds an
 * unfinished CMD.json resumes: steps done before print "done before" and
 * are not run again; the first one not done runs, even when it had begun
 * (a crash in it: every step must be safe to run twice).  When all are
 * done the file becomes CMD-last.json and the next run starts afresh.
 */
struct fo_ctx {
	const struct hs_conf *conf;
	const struct fo_opts *opts;
	const char *cmd; /* "promote", "rejoin", "switchover" */
	/*
	 * Values the steps keep across runs (the target epoch, the peer's
	 * name): an object saved with the step states.  Set them before the
	 * step returns; they are persisted with its outcome.
	 */
	json_t *vars;
	void *arg; /* the command's own */
};
struct fo_step {
	const char *name;
	/* Printed by --dry-run: what the step would do, one line. */
	void (*plan)(struct fo_ctx *c, char *buf, size_t len);
	/*
	 * HS_OK with one line in `done` (may stay empty), or an error with
	 * one line in `why`.  HS_EREFUSED from a preflight is a refusal
	 * (exit 1, nothing changed); a peer that was needed and did not
	 * answer returns -EHOSTUNREACH (exit 3).
	 */
	int (*run)(struct fo_ctx *c, char *done, size_t donelen, char *why,
	           size_t whylen);
};
/*
 * Run `steps` (resuming as above; with opts->dry_run print each plan and
 * change nothing).  Returns the exit status of failover.h.
 */
int fo_steps_run(const struct hs_conf *conf, const char *cmd,
                 const struct fo_step *steps, size_t n, const struct fo_opts *o,
                 void *arg);
/*
 * Has `cmd` begun here and not finished: a step done in its state file
 * (or the file unreadable)?  A refused preflight alone is not.
 */
int fo_steps_begun(const struct hs_conf *conf, const char *cmd);
/*
 * reach.c.  step_timeout of [failover] (300 s without the section).
 * This node's state from its index, or its config's role at epoch 0 when
 * it never stored one; and storing it.  Errors name the index in `why`.
 */
struct idx_node;
struct proto_hello;
uint64_t fo_step_timeout(const struct hs_conf *conf);
int fo_node_get(const struct hs_conf *conf, struct idx_node *n, char *why,
                size_t whylen);
int fo_node_put(const struct hs_conf *conf, const struct idx_node *n, char *why,
                size_t whylen);
/*
 * Ask the peer who it is (proto_probe), as `role` at `epoch` with `flags`
 * added: HS_OK with its HELLO in *peer; HS_ECONFIG (this node's TLS
 * identity); -EHOSTUNREACH when it did not answer, `why` naming it.
 */
int fo_probe(const struct hs_conf *conf, enum hs_role role, uint64_t epoch,
             uint8_t flags, int timeout_ms, struct proto_hello *peer, char *why,
             size_t whylen);

/*
 * This node's daemon.  "No daemon runs" has one meaning: none holds the
 * pid file (hs_daemon_pid).  fo_ask asks it `verb` (ctl.h): 1 with
 * *reply (a new reference) when it answered, 0 when none runs, or an
 * error with one line in `why` (*reply NULL): one that holds the pid
 * file and does not answer would act on a state it never re-read, and
 * one that answers an error said no (HS_EREFUSED, its words).
 * fo_daemon_start runs `hamnsync -c CONF daemon` (o->conf_path, else the
 * config's file), which detaches itself, and waits for its first exit.
 * fo_wait_role waits until the daemon answers status as `role`, bounded
 * by step_timeout (HS_ETIMEOUT).
 */
#define FO_CTL_MS 5000    /* one control request */
#define FO_POLL_US 100000 /* between two asks of a wait */
int fo_ask(const struct hs_conf *conf, const char *verb, json_t **reply,
           char *why, size_t whylen);
int fo_daemon_start(const struct hs_conf *conf, const struct fo_opts *o,
                    char *why, size_t whylen);
int fo_wait_role(const struct hs_conf *conf, enum hs_role role, char *why,
                 size_t whylen);

/* vars helpers: a missing key reads as `dflt`. */
uint64_t fo_var_u64(const struct fo_ctx *c, const char *key, uint64_t dflt);
void fo_var_set_u64(struct fo_ctx *c, const char *key, uint64_t v);
const char *fo_var_str(const struct fo_ctx *c, const char *key);
void fo_var_set_str(struct fo_ctx *c, const char *key, const char *v);

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
 * aside.c.  rejoin's aside step: move this node's entries that its
 * standby never acknowledged (stat not as the index recorded, no
 * record, or named by the unacknowledged journal) from target_root +
 * source into state_dir/rejoin-`epoch`/ + their absolute path, then
 * write the folder's LIST (one hs_escape'd path a line) and print each
 * on `out`.  Safe to run again: what was moved stays.  HS_OK with one
 * line in `done`, or an error with one line in `why`.
 */
int fo_aside(const struct hs_conf *conf, uint64_t epoch, FILE *out, char *done,
             size_t donelen, char *why, size_t whylen);

/*
 * rejoin.c.  rejoin's steps (preflight, stop, aside, database, role), for
 * switchover's last step, which runs them in order in its own context.
 * They keep in vars: "epoch" (the new primary's), "own_epoch" and "peer"
 * (its name, escaped).
 */
extern const struct fo_step fo_rejoin_steps[];
extern const size_t fo_rejoin_nsteps;

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
