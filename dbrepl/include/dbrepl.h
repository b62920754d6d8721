/*
 * dbrepl.h - the databases of one node: consistent snapshots on the
 * primary, verified copies and restores on the standby.  One prefix, dbr_.
 *
 * The primary snapshots each [database NAME] into state_dir/db/NAME/ at most
 * every `interval`, and only when the database changed.  That folder is a
 * path set of its own ("db:NAME", see dbr_set_name), replicated by the
 * ordinary path: its files are plain, uncompressed and in a stable order,
 * so an edit ships as block deltas.  A snapshot is its data files and a
 * manifest (DBR_MANIFEST) naming each file's size and SHA-256; files are
 * renamed into the folder one by one and the manifest last.
 *
 * The standby receives that folder into its own state_dir/db/NAME/.  A
 * snapshot whose files match its manifest is good: it is copied to
 * state_dir/db/NAME.good/ (the last good snapshot, kept while a newer one
 * arrives or arrives broken) and, with `restore = continuous`, restored
 * into the standby's own database.  promote restores it (dbr_promote).
 *
 * Every dump, change probe and restore is a child process bounded by the
 * database's `timeout`, killed when it runs over; the daemon's loop drives
 * them with dbr_tick and never waits on one.  Passwords never appear in the
 * config or on a command line: they come from the server's own files.
 */
#ifndef DBREPL_H
#define DBREPL_H

#include <stddef.h>
#include <stdint.h>

#include "hs.h"

/* state_dir/DBR_DIR/NAME/ holds database NAME's snapshot. */
#define DBR_DIR "db"
/* The manifest in a snapshot folder; written last. */
#define DBR_MANIFEST "MANIFEST"

/* Printable name of a database type ("sqlite", ...). */
const char *dbr_type_name(enum hs_db_type t);

/*
 * The path set that carries database `db`'s snapshot folder: its name is
 * "db:" + the database's name (':' cannot start or be in a configured set
 * name, so the two never clash).  Writes at most `len` bytes.
 */
#define DBR_SET_PREFIX "db:"
void dbr_set_name(const struct hs_database *db, char *buf, size_t len);
/* Is `name` a set name made by dbr_set_name? */
int dbr_is_set_name(const char *name);

enum dbr_role {
	DBR_PRIMARY = 1,
	DBR_STANDBY,
};

struct dbr;

/*
 * Open the databases of `conf` (which must outlive the handle) for a node
 * in `role`: creates state_dir/db/NAME/ for each, reads what a previous
 * run left (the last snapshot's manifest, the last restore).  Starts
 * nothing.  A config with no [database] section gives a handle that does
 * nothing.
 */
int dbr_open(const struct hs_conf *conf, enum dbr_role role, struct dbr **out);
/* Kill (SIGKILL) and reap every child still running, then free. */
void dbr_free(struct dbr *r);

/*
 * Drive the databases without blocking: collect children that ended,
 * kill those past their timeout, start the probes and dumps that are due
 * (primary) and the copies and restores of good snapshots (standby).
 * Call it from the daemon's loop at least every dbr_next_ms.
 */
void dbr_tick(struct dbr *r);
/* Milliseconds until dbr_tick has work; -1 when none is scheduled. */
int dbr_next_ms(const struct dbr *r);
/*
 * The standby's session wrote into set `set_name` (any set; others are
 * ignored): look at the snapshot folder again on the next tick.
 */
void dbr_touched(struct dbr *r, const char *set_name);

/*
 * Primary: probe every database now, whatever its interval, and snapshot
 * those that changed since their last snapshot (switchover's drain).  A
 * ticket for dbr_snapshot_done: 1 when every probe begun after it ended
 * (and its snapshot is in state_dir/db/NAME/), 0 while one runs, or an
 * error naming the database and the reason in `why`.
 */
uint64_t dbr_snapshot_now(struct dbr *r);
int dbr_snapshot_done(const struct dbr *r, uint64_t ticket, char *why,
                      size_t whylen);

/* One database as `status` shows it; -1 or "" when not known. */
struct dbr_status {
	const char *name;
	const char *type;     /* dbr_type_name */
	const char *state;    /* ok stale error waiting dumping restoring */
	double last_snapshot; /* wall clock, unix seconds, of the newest
	                         good snapshot made (primary) or held
	                         (standby) */
	double age;           /* seconds since last_snapshot */
	int64_t bytes;        /* that snapshot's size */
	uint64_t dumps;       /* snapshots made since start (primary) */
	uint64_t restores;    /* restores done since start (standby) */
	double last_restore;  /* wall clock of the last restore, -1 */
	int changed;          /* primary: changed since the last snapshot */
	char error[HS_ERRMSG_MAX]; /* the last failure, "" when none since */
	/* db2 only: what `db2pd -hadr` said; "" when not read. */
	char hadr_role[16];
	char hadr_state[32];
	char hadr_connect[32];
	int64_t hadr_log_gap; /* bytes, -1 */
};

size_t dbr_count(const struct dbr *r);
/* Database i's status (i < dbr_count). */
void dbr_status(const struct dbr *r, size_t i, struct dbr_status *out);
/*
 * Standby: does database i hold a good snapshot (promote may restore it)?
 * 0 with the reason in words in `why` (for promote_ready's reasons).
 */
int dbr_ready(const struct dbr *r, size_t i, char *why, size_t whylen);

/*
 * promote's database step: restore every database's last good snapshot
 * now (SQLite: into target_root + path; PostgreSQL and MySQL: into the
 * server the standby's own dsn names), or for DB2 run the HADR takeover
 * (BY FORCE only when `force`).  Blocks, each child bounded by `timeout`.
 * A database already restored from that snapshot is not restored again.
 * On failure names the database and the reason in `why`; what was
 * restored before stays in place.
 */
int dbr_promote(struct dbr *r, int force, char *why, size_t whylen);

#endif /* DBREPL_H */
