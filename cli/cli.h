/*
 * cli.h - the hamnsync command: main() dispatches to one function per
 * subcommand (cmd_*.c, which parses its own options).  Each returns the
 * process exit status.  The files call one way only,
 *	main.c -> cmd_*.c -> node.c, json.c -> common.c
 * (and each of them may call common.c).
 */
#ifndef CLI_H
#define CLI_H

#include <jansson.h>

#include "hs.h"

/* Exit statuses of sync and verify (SPEC.md). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_DIFFER 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_PEER 3

/* Nagios statuses of status. */
#define CLI_NAGIOS_OK 0
#define CLI_NAGIOS_WARNING 1
#define CLI_NAGIOS_CRITICAL 2
#define CLI_NAGIOS_UNKNOWN 3

/* common.c */
/* Print "hamnsync: <what>: <why>" on stderr. */
void cli_err(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The config path: -c, else $HAMNSYNC_CONF, else the default. */
const char *cli_conf_path(const char *opt);
/* Load the config or print its one-line error; NULL on failure. */
struct hs_conf *cli_conf_load(const char *path);

/* node.c */
/*
 * This node's TLS identity from the [node] settings of `conf`, loaded
 * and checked; on failure prints "hamnsync: <cmd>: <file>: <why>" and
 * returns NULL.  The caller owns the result.
 */
struct proto_tls;
struct proto_tls *cli_identity_load(const struct hs_conf *conf,
                                    const char *cmd);

struct idx_node;
/*
 * This node's role and epoch from its index in state_dir, stored from the
 * config at first start.  Prints its own error.
 */
int cli_node_state(const struct hs_conf *conf, struct idx_node *node);
/* The same, keeping the index open in *keep (caller closes) on success. */
struct idx;
int cli_node_open(const struct hs_conf *conf, struct idx_node *node,
                  struct idx **keep);

/* json.c */
/*
 * A JSON string for a path of any bytes: valid UTF-8 as is, other bytes
 * as the four characters \xNN.  New reference, or NULL on ENOMEM.
 */
json_t *cli_json_path(const char *s);
/* --json: `doc` as the one object on stdout (indented), then dropped. */
void cli_json_print(json_t *doc);
/*
 * `s` escaped for one line of output (hs_escape, the way rsync shows
 * names: \#012 for a newline).  Borrowed, valid until the next call.
 */
const char *cli_show(const char *s);
/*
 * A message for one line: `s` itself, or, when it holds a control byte
 * (text a peer made up), all of it escaped as cli_show does.  Borrowed,
 * valid until the next call.
 */
const char *cli_line(const char *s);

/* One count of a send_report for --json: its name, the field's offset. */
struct cli_count {
	const char *name;
	size_t off;
};
#define CLI_COUNT(name, field)                                                 \
	{                                                                      \
		name, offsetof(struct send_report, field)                      \
	}
struct send_report;
/*
 * {name: value} for each of the n counts of `r`, less those of `prev`
 * when not NULL (one set's share of a report that adds up).  New
 * reference, or NULL on ENOMEM.
 */
json_t *cli_json_counts(const struct cli_count *c, size_t n,
                        const struct send_report *r,
                        const struct send_report *prev);

/*
 * What a sync or verify run gives --json as it goes: its entries (each
 * an object naming the path), and after each set, that set's counts
 * (sets: [{name, counts}]), its name put into the set's entries.
 */
struct cli_run {
	json_t *entries;
	json_t *sets;
	size_t tagged; /* entries before this one have their set */
	const struct cli_count *counts;
	size_t n_counts;
	struct send_report *prev; /* the report after the last set */
};
int cli_run_init(struct cli_run *run, const struct cli_count *c, size_t n);
/* Append `entry` (takes ownership), with "path": cli_json_path(path). */
void cli_run_entry(struct cli_run *run, json_t *entry, const char *path);
/* send_opts.set_cb: the set `set` is done; `sofar` adds up every set. */
void cli_run_set(void *arg, const char *set, const struct send_report *sofar);
void cli_run_free(struct cli_run *run);

/* cmd_*.c: one per subcommand. */
int cli_keygen(int argc, char **argv);
int cli_verify(int argc, char **argv, const char *conf_opt);
int cli_status(int argc, char **argv, const char *conf_opt);
int cli_daemon(int argc, char **argv, const char *conf_opt);
int cli_sync(int argc, char **argv, const char *conf_opt);
/* cmd_failover.c */
int cli_promote(int argc, char **argv, const char *conf_opt);
int cli_rejoin(int argc, char **argv, const char *conf_opt);
int cli_switchover(int argc, char **argv, const char *conf_opt);

#endif /* CLI_H */
