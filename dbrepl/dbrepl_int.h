/*
 * dbrepl_int.h - inside dbrepl: the drivers, the children that run them,
 * the manifest.
 *
 * A driver's operations are plain blocking functions.  They never run in
 * the daemon's process: the manager (dbrepl.c) forks a job child for each
 * operation (job.c), in a process group of its own so that a timeout kills
 * the commands it started too, and reads its result back through a pipe.
 * A driver is therefore free to wait on the commands it runs (dbr_run).
 */
#ifndef DBREPL_INT_H
#define DBREPL_INT_H

#include <sys/types.h>

#include "dbrepl.h"
#include "proto.h"

/* One database's fixed facts, what a driver operation needs. */
struct dbr_db {
	const struct hs_conf *conf;   /* state_dir, target_root */
	const struct hs_database *db; /* this [database NAME] */
	const struct dbr_driver *drv;
};

/* What an operation reports back from its job child. */
/* A change mark travels in the manifest: its bound is the manifest's. */
#define DBR_MARK_MAX PROTO_MANIFEST_MARK_MAX
struct dbr_result {
	int rc;                  /* HS_OK or an error */
	char why[HS_ERRMSG_MAX]; /* one line when rc < 0 */
	char mark[DBR_MARK_MAX]; /* probe: the change mark */
	/* db2 hadr: role, state, connect status, log gap (bytes, -1). */
	char hadr_role[16];
	char hadr_state[32];
	char hadr_connect[32];
	int64_t hadr_log_gap;
};

/*
 * A driver.  Each operation runs in a job child and may block; it fills
 * `res` (rc, and why on failure).  NULL: the type has no such operation.
 */
struct dbr_driver {
	enum hs_db_type type;
	/*
	 * Primary: the change mark, a short string that differs whenever the
	 * database was written since the last one (PostgreSQL: snapshot
	 * xmax; MySQL: the InnoDB LSN; SQLite: the files' stat).  Reading
	 * it must not cost a dump.
	 */
	void (*mark)(const struct dbr_db *d, struct dbr_result *res);
	/*
	 * Primary: write a consistent snapshot into the empty folder `dir`
	 * as one or more plain files with stable names (no manifest: the
	 * manager writes it).
	 */
	void (*dump)(const struct dbr_db *d, const char *dir,
	             struct dbr_result *res);
	/*
	 * Standby: restore the good snapshot in `dir` into this node's own
	 * database, all or nothing: into a temporary database or file,
	 * swapped in with one rename.  A failure leaves the previous one.
	 */
	void (*restore)(const struct dbr_db *d, const char *dir,
	                struct dbr_result *res);
	/* db2: read the HADR state into res->hadr_*. */
	void (*hadr)(const struct dbr_db *d, struct dbr_result *res);
	/* db2: promote's takeover (BY FORCE when `force`). */
	void (*takeover)(const struct dbr_db *d, int force,
	                 struct dbr_result *res);
};

extern const struct dbr_driver dbr_sqlite;     /* sqlite.c */
extern const struct dbr_driver dbr_postgresql; /* pg.c */
extern const struct dbr_driver dbr_mysql;      /* mysql.c */
extern const struct dbr_driver dbr_db2;        /* db2.c */

const struct dbr_driver *dbr_driver_of(enum hs_db_type t);

/*
 * db2.c: parse what `db2pd -d DATABASE -hadr` printed (`text`, NUL-
 * terminated) into res->hadr_*: the "KEY = value" lines of db2pd 10.1 and
 * later, or the older "HADR Information:" tables.  Role, state and
 * connect status are spelled as the newer db2pd does (PRIMARY, PEER,
 * CONNECTED, REMOTE_CATCHUP_PENDING); the log gap is in bytes, -1 when
 * db2pd does not know it.  HS_OK; HS_ENOTFOUND when db2pd says the
 * database is not active; HS_EPROTO naming the missing or garbled field.
 * The failure is in res (rc, why) too.  The manager judges the words
 * (PEER and CONNECTED, dbrepl.c's dbr_hadr_healthy).
 */
int dbr_db2_parse(const char *text, const char *database,
                  struct dbr_result *res);

/* ---- job.c: children ---------------------------------------------------- */

enum dbr_op {
	DBR_OP_MARK = 1,
	DBR_OP_DUMP,
	DBR_OP_RESTORE,
	DBR_OP_HADR,
	DBR_OP_TAKEOVER,
	DBR_OP_ACCEPT, /* the manager's: check and keep a received snapshot */
};

/* One operation running in a child. */
struct dbr_job {
	pid_t pid; /* 0: no child */
	enum dbr_op op;
	int fd;               /* read end of the result pipe, -1 */
	uint64_t deadline_ns; /* monotonic; killed past it */
	uint64_t timeout_s;
	struct dbr_result res; /* valid once dbr_job_poll returned 1 */
};

/*
 * Fork a job child (its own process group) that runs `op` of d's driver
 * on `dir` (dump, restore) or `force` (takeover) and writes its result to
 * the pipe.  Bounded by the database's timeout.
 */
int dbr_job_start(struct dbr_job *j, const struct dbr_db *d, enum dbr_op op,
                  const char *dir, int force);
/*
 * The same for the manager's own work: the child runs fn(arg, res) (arg is
 * the child's copy of the caller's memory); `op` names it in messages.
 */
int dbr_job_start_fn(struct dbr_job *j, const struct dbr_db *d, enum dbr_op op,
                     void (*fn)(void *arg, struct dbr_result *res), void *arg);
/*
 * Without blocking: 0 while running; 1 when it ended (j->res holds the
 * result: a child that died, exited without a result or ran past its
 * deadline is an error that says so, and past the deadline its whole
 * process group is killed first).
 */
int dbr_job_poll(struct dbr_job *j);
/* Block until the job ends (promote), still bounded by its deadline. */
void dbr_job_wait(struct dbr_job *j);
/* Kill the job's process group and reap it; nothing when none runs. */
void dbr_job_kill(struct dbr_job *j);

/*
 * For drivers, in a job child: run argv (argv[0] found in PATH) with
 * stdin from `in` (NULL: /dev/null) and stdout to `out` (NULL: /dev/null;
 * opened O_CREAT|O_TRUNC, mode 0600), and wait for it.  `cap`, when not
 * NULL, receives instead the first `caplen - 1` bytes of its stdout,
 * NUL-terminated.  A non-zero exit or a signal fills res->why with the
 * command's name, its exit and the last line it wrote on stderr, and
 * returns an error; the commands's stderr also goes to the log.
 */
int dbr_run(char *const argv[], const char *in, const char *out, char *cap,
            size_t caplen, struct dbr_result *res);
/*
 * Split the database's command_prefix (words separated by blanks, no
 * quoting) in front of argv into `out` (at most `max` entries with the
 * terminating NULL).  Returns the count, or HS_ELIMIT.
 */
int dbr_argv(const struct dbr_db *d, char *const argv[], char **out,
             size_t max);
/*
 * For the PostgreSQL and MySQL restores: may `name` (the dsn's dbname) be
 * restored into through temporary names built from it?  1 to `max`
 * letters, digits and '_' (it goes into SQL statements unquoted); else
 * HS_ECONFIG with the reason in res.
 */
int dbr_dbname_check(const struct dbr_db *d, const char *name, size_t max,
                     struct dbr_result *res);
/* Fill res with rc and a formatted reason; returns rc. */
int dbr_fail(struct dbr_result *res, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- manifest.c: what a snapshot holds ---------------------------------- */

/*
 * The manifest's text is a codec of protocol/ (struct proto_manifest): on
 * the standby it is peer bytes.  Here: the folder it describes.
 */
/* Hash and list every regular file of `dir` (but the manifest). */
int dbr_manifest_make(int dirfd, struct proto_manifest *m, char *why,
                      size_t whylen);
/* Write `m` as DBR_MANIFEST in `dirfd` (temporary file, fsync, rename). */
int dbr_manifest_write(int dirfd, const struct proto_manifest *m);
/* Read DBR_MANIFEST of `dirfd`; HS_EPROTO with why on a bad one. */
int dbr_manifest_read(int dirfd, struct proto_manifest *m, char *why,
                      size_t whylen);
/*
 * Do the files of `dirfd` match `m` (sizes and hashes)?  0 with the first
 * difference in `why` ("dump.sql: 1024 bytes, the manifest says 2048").
 */
int dbr_manifest_check(int dirfd, const struct proto_manifest *m, char *why,
                       size_t whylen);

#endif /* DBREPL_INT_H */
