/*
 * pg.c - the PostgreSQL driver.
 *
 * The change mark is the snapshot's xmax, the dump is pg_dump's plain SQL
 * and the restore replays it with psql into a temporary database of the
 * standby's own server, then swaps it in by renaming databases.  Every
 * command reaches the server through the dsn, passed whole as libpq's
 * conninfo: the password, if any, comes from ~/.pgpass, never from us.
 * On the standby that user must be able to connect to the "postgres"
 * database and create, rename and drop databases (CREATEDB, and own the
 * live one, or be a superuser).
 */
#include <sys/random.h>
#include <sys/uio.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbrepl_int.h"

#define PG_NEW_SUFFIX "__hs_new"
#define PG_OLD_SUFFIX "__hs_old"
/* NAMEDATALEN - 1: a longer name is cut, and two could become one. */
#define PG_IDENT_MAX 63
#define PG_NAME_MAX (PG_IDENT_MAX - (sizeof(PG_NEW_SUFFIX) - 1))
/* The database every server has, to create, rename and drop the others. */
#define PG_MAINT_DB "postgres"
#define PG_DUMP_FILE "dump.sql"
#define PG_CONNINFO_MAX 1024
#define PG_SQL_MAX 512
#define PG_ARGS_MAX 32
/* The \\restrict key: letters and digits, as pg_dump wants it. */
#define PG_KEY_LEN 32
#define PG_KEY_SUFFIX ".pg-restrict-key"

/* The names one restore works with. */
struct pg_names {
	char live[PG_IDENT_MAX + 1];
	char fresh[PG_IDENT_MAX + 1]; /* live + PG_NEW_SUFFIX */
	char old[PG_IDENT_MAX + 1];   /* live + PG_OLD_SUFFIX */
};

/*
 * The value of `key` in the dsn's words, into buf.  The last one wins,
 * as in libpq.  0 when absent.
 */
static int
pg_dsn_get(const char *dsn, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key), n;
	const char *w = dsn;
	int found = 0;

	for (;;) {
		w += strspn(w, " \t");
		if (*w == '\0')
			return found;
		n = strcspn(w, " \t");
		if (n > klen && strncmp(w, key, klen) == 0 && w[klen] == '=') {
			snprintf(buf, len, "%.*s", (int)(n - klen - 1),
			         w + klen + 1);
			found = 1;
		}
		w += n;
	}
}

/*
 * The live database's name from the dsn.  Only letters, digits and '_',
 * so that it can be quoted into SQL without escaping, and short enough
 * that its temporary names stay distinct.
 */
static int
pg_names_of(const struct dbr_db *d, struct pg_names *nm, struct dbr_result *res)
{
	if (!pg_dsn_get(d->db->dsn, "dbname", nm->live, sizeof(nm->live)))
		return dbr_fail(res, HS_ECONFIG,
		                "database %s: its dsn names no dbname to "
		                "restore into",
		                d->db->name);
	if (dbr_dbname_check(d, nm->live, PG_NAME_MAX, res) < 0)
		return res->rc;
	/* The check above bounds the name; the precision says so. */
	snprintf(nm->fresh, sizeof(nm->fresh), "%.*s%s", (int)PG_NAME_MAX,
	         nm->live, PG_NEW_SUFFIX);
	snprintf(nm->old, sizeof(nm->old), "%.*s%s", (int)PG_NAME_MAX, nm->live,
	         PG_OLD_SUFFIX);
	return HS_OK;
}

/* The dsn with its dbname replaced by `dbname` (libpq: the last wins). */
static int
pg_conninfo(const struct dbr_db *d, const char *dbname, char *buf, size_t len,
            struct dbr_result *res)
{
	int n;

	n = snprintf(buf, len, "%s dbname=%s", d->db->dsn, dbname);
	if (n < 0 || (size_t)n >= len)
		return dbr_fail(res, HS_ELIMIT, "database %s: dsn too long",
		                d->db->name);
	return HS_OK;
}

/*
 * Run psql on `conninfo` with the SQL commands `sql` (NULL-terminated),
 * or the file `file` when not NULL; each -c is its own transaction unless
 * `one_tx`.  Stops at the first error; never prompts for a password (-w):
 * a daemon has no one to ask.  Terse errors: one line, naming the file's
 * line for a file.
 */
static int
pg_psql(const struct dbr_db *d, const char *conninfo, const char *const *sql,
        const char *file, int one_tx, char *cap, size_t caplen,
        struct dbr_result *res)
{
	char *args[PG_ARGS_MAX], *argv[PG_ARGS_MAX + 16];
	char dbarg[PG_CONNINFO_MAX + 16];
	size_t n = 0;

	snprintf(dbarg, sizeof(dbarg), "--dbname=%s", conninfo);
	args[n++] = "psql";
	args[n++] = "-XAtqw";
	args[n++] = "-v";
	args[n++] = "ON_ERROR_STOP=1";
	args[n++] = "-v";
	args[n++] = "VERBOSITY=terse";
	if (one_tx)
		args[n++] = "--single-transaction";
	args[n++] = dbarg;
	/* DROP ... IF EXISTS says so on stderr: not worth a log line. */
	args[n++] = "-c";
	args[n++] = "SET client_min_messages = warning";
	if (file != NULL) {
		args[n++] = "-f";
		args[n++] = (char *)file;
	}
	for (; sql != NULL && *sql != NULL; sql++) {
		if (n + 3 > PG_ARGS_MAX)
			return dbr_fail(res, HS_ELIMIT,
			                "psql: too many commands");
		args[n++] = "-c";
		args[n++] = (char *)*sql;
	}
	args[n] = NULL;
	if (dbr_argv(d, args, argv, sizeof(argv) / sizeof(argv[0])) < 0)
		return dbr_fail(res, HS_ELIMIT,
		                "database %s: command_prefix has too many "
		                "words",
		                d->db->name);
	return dbr_run(argv, NULL, NULL, cap, caplen, res);
}

/* Prefix the command's own message in res->why with what we were doing. */
static int
pg_failed(const struct dbr_db *d, const char *what, struct dbr_result *res)
{
	char cmd[HS_ERRMSG_MAX], *s, *t;

	/* libpq indents its hints with a tab: one line, single blanks. */
	for (s = t = res->why; *s != '\0'; s++) {
		if (*s == '\t')
			*s = ' ';
		if (*s != ' ' || (t > res->why && t[-1] != ' '))
			*t++ = *s;
	}
	*t = '\0';
	snprintf(cmd, sizeof(cmd), "%s", res->why);
	return dbr_fail(res, res->rc < 0 ? res->rc : -EIO,
	                "database %s: %s: %s", d->db->name, what, cmd);
}

/*
 * The next transaction id not yet given out.  It moves only when some
 * transaction writes (a read-only one gets no id), so an idle or
 * read-only database costs no dump; commit counters move on reads too,
 * and the WAL position moves on the first read after an update (hint
 * bits, pruning).  It counts the whole server: a write to another
 * database of it, or autovacuum's ANALYZE after many writes, costs one
 * dump that finds nothing new.
 */
static void
pg_mark(const struct dbr_db *d, struct dbr_result *res)
{
	static const char *const sql[] = {
	    "SELECT pg_snapshot_xmax(pg_current_snapshot())", NULL};
	char out[DBR_MARK_MAX];
	size_t n;

	if (pg_psql(d, d->db->dsn, sql, NULL, 0, out, sizeof(out), res) < 0) {
		pg_failed(d, "cannot read the change mark", res);
		return;
	}
	n = strspn(out, "0123456789");
	if (n == 0 || (out[n] != '\n' && out[n] != '\0')) {
		dbr_fail(res, HS_EPROTO,
		         "database %s: psql answered '%.40s', not a "
		         "transaction id",
		         d->db->name, out);
		return;
	}
	out[n] = '\0';
	snprintf(res->mark, sizeof(res->mark), "%s", out);
	res->rc = HS_OK;
}

/* Does this pg_dump take --restrict-key (15.14, 16.10, 17.6 and later)? */
static int
pg_has_restrict_key(const struct dbr_db *d)
{
	char *args[] = {"pg_dump", "--help", NULL};
	char *argv[PG_ARGS_MAX + 8], out[16384];
	struct dbr_result res = {0};

	if (dbr_argv(d, args, argv, sizeof(argv) / sizeof(argv[0])) < 0 ||
	    dbr_run(argv, NULL, NULL, out, sizeof(out), &res) < 0)
		return 0;
	return strstr(out, "--restrict-key") != NULL;
}

/* Is `key` PG_KEY_LEN letters and digits? */
static int
pg_key_valid(const char *key)
{
	size_t i;

	for (i = 0; i < PG_KEY_LEN; i++) {
		if (!isalnum((unsigned char)key[i]))
			return 0;
	}
	return key[PG_KEY_LEN] == '\0' || key[PG_KEY_LEN] == '\n';
}

/*
 * The key of the \\restrict line pg_dump writes (it shields psql from
 * meta-commands hidden in the dumped data).  pg_dump picks a new random
 * one each run, which would make two dumps of the same data differ: we
 * pick one per database, once, and keep it beside the snapshot folder in
 * state_dir/db/NAME.pg-restrict-key (not replicated, and no one who can
 * write the data can read it).
 */
static int
pg_restrict_key(const struct dbr_db *d, char key[PG_KEY_LEN + 1],
                struct dbr_result *res)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789";
	char path[4096], tmp[4112], buf[PG_KEY_LEN + 2] = "";
	unsigned char rnd[PG_KEY_LEN];
	struct iovec iov;
	ssize_t r;
	size_t i;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s/%s%s", d->conf->state_dir, DBR_DIR,
	         d->db->name, PG_KEY_SUFFIX);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r >= PG_KEY_LEN && pg_key_valid(buf)) {
			memcpy(key, buf, PG_KEY_LEN);
			key[PG_KEY_LEN] = '\0';
			return HS_OK;
		}
	}
	/* None yet, or a bad one: a new one (the next dump differs once). */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return dbr_fail(res, -EIO, "database %s: getrandom: %s",
		                d->db->name, strerror(errno));
	for (i = 0; i < PG_KEY_LEN; i++)
		key[i] = abc[rnd[i] % (sizeof(abc) - 1)];
	key[PG_KEY_LEN] = '\0';
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	iov = (struct iovec){.iov_base = key, .iov_len = PG_KEY_LEN};
	if ((rc = hs_replace_file(path, tmp, 0600, &iov, 1)) < 0)
		return dbr_fail(res, rc, "database %s: %s: %s", d->db->name,
		                path, hs_strerror(rc));
	return HS_OK;
}

/*
 * Plain SQL, in pg_dump's own stable order (objects by kind and name),
 * uncompressed: a changed row changes a few blocks of the file, and the
 * same data dumps to the same bytes.  Owners and grants are kept: the
 * standby mirrors the primary, roles included, and xCAT must own its
 * tables there after promote.  Tablespaces are not: they are folders of
 * the primary's host.
 */
static void
pg_dump(const struct dbr_db *d, const char *dir, struct dbr_result *res)
{
	char dbarg[PG_CONNINFO_MAX + 16], out[4096];
	char key[PG_KEY_LEN + 1], keyarg[PG_KEY_LEN + 32];
	char *args[] = {
	    "pg_dump", "-w", "--format=plain", "--no-tablespaces", dbarg,
	    NULL,      NULL};
	char *argv[PG_ARGS_MAX + 8];

	snprintf(dbarg, sizeof(dbarg), "--dbname=%s", d->db->dsn);
	snprintf(out, sizeof(out), "%s/%s", dir, PG_DUMP_FILE);
	if (pg_has_restrict_key(d)) {
		if (pg_restrict_key(d, key, res) < 0)
			return;
		snprintf(keyarg, sizeof(keyarg), "--restrict-key=%s", key);
		args[5] = keyarg;
	}
	if (dbr_argv(d, args, argv, sizeof(argv) / sizeof(argv[0])) < 0) {
		dbr_fail(res, HS_ELIMIT,
		         "database %s: command_prefix has too many words",
		         d->db->name);
		return;
	}
	if (dbr_run(argv, NULL, out, NULL, 0, res) < 0) {
		pg_failed(d, "dump failed", res);
		return;
	}
	res->rc = HS_OK;
}

/* Run SQL commands in the maintenance database, each on its own. */
static int
pg_maint(const struct dbr_db *d, const char *const *sql, int one_tx, char *cap,
         size_t caplen, struct dbr_result *res)
{
	char ci[PG_CONNINFO_MAX];

	if (pg_conninfo(d, PG_MAINT_DB, ci, sizeof(ci), res) < 0)
		return res->rc;
	return pg_psql(d, ci, sql, NULL, one_tx, cap, caplen, res);
}

/* Drop database `name` if it is there, its sessions ended first. */
static int
pg_drop(const struct dbr_db *d, const char *name, struct dbr_result *res)
{
	char sql[PG_SQL_MAX];
	const char *const v[] = {sql, NULL};

	snprintf(sql, sizeof(sql),
	         "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
	return pg_maint(d, v, 0, NULL, 0, res);
}

/* Replay the dump into a new, empty database nm->fresh. */
static int
pg_load(const struct dbr_db *d, const char *dir, const struct pg_names *nm,
        struct dbr_result *res)
{
	char drop_new[PG_SQL_MAX], drop_old[PG_SQL_MAX], create[PG_SQL_MAX];
	char ci[PG_CONNINFO_MAX], file[4096];
	const char *const v[] = {drop_new, drop_old, create, NULL};

	/* What a restore cut short (a kill at its timeout) left. */
	snprintf(drop_new, sizeof(drop_new),
	         "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", nm->fresh);
	snprintf(drop_old, sizeof(drop_old),
	         "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", nm->old);
	snprintf(create, sizeof(create),
	         "CREATE DATABASE \"%s\" TEMPLATE template0", nm->fresh);
	if (pg_maint(d, v, 0, NULL, 0, res) < 0)
		return pg_failed(d, "cannot prepare the restore", res);
	if (pg_conninfo(d, nm->fresh, ci, sizeof(ci), res) < 0)
		return res->rc;
	snprintf(file, sizeof(file), "%s/%s", dir, PG_DUMP_FILE);
	/* One transaction: a bad statement leaves nothing behind it. */
	if (pg_psql(d, ci, NULL, file, 1, NULL, 0, res) < 0)
		return pg_failed(d, "restore failed", res);
	return HS_OK;
}

/*
 * Swap nm->fresh in for nm->live.  Both renames and the end of the live
 * database's sessions are one transaction (ALTER DATABASE RENAME may run
 * in one, unlike CREATE and DROP DATABASE): other sessions see the old
 * database or the new one, never neither.  pg_terminate_backend acts at
 * once, and the rename waits (up to 5 s, the server's own bound) for
 * those sessions to go; one that connects in between makes the rename
 * fail, and the whole transaction with it, leaving live as it was.
 */
static int
pg_swap(const struct dbr_db *d, const struct pg_names *nm,
        struct dbr_result *res)
{
	char q[PG_SQL_MAX], term[PG_SQL_MAX], r1[PG_SQL_MAX], r2[PG_SQL_MAX];
	const char *const exists[] = {q, NULL};
	const char *const swap[] = {term, r1, r2, NULL};
	const char *const first[] = {r2, NULL};
	char out[32];

	snprintf(q, sizeof(q),
	         "SELECT count(*) FROM pg_database WHERE datname = '%s'",
	         nm->live);
	if (pg_maint(d, exists, 0, out, sizeof(out), res) < 0)
		return pg_failed(d, "cannot look for the live database", res);
	snprintf(term, sizeof(term),
	         "SELECT count(pg_terminate_backend(pid)) FROM "
	         "pg_stat_activity WHERE datname = '%s' AND pid <> "
	         "pg_backend_pid()",
	         nm->live);
	snprintf(r1, sizeof(r1), "ALTER DATABASE \"%s\" RENAME TO \"%s\"",
	         nm->live, nm->old);
	snprintf(r2, sizeof(r2), "ALTER DATABASE \"%s\" RENAME TO \"%s\"",
	         nm->fresh, nm->live);
	if (pg_maint(d, out[0] == '0' ? first : swap, 1, NULL, 0, res) < 0)
		return pg_failed(d, "cannot swap the restored database in",
		                 res);
	return HS_OK;
}

/*
 * Into the standby's own server, named by its own dsn: load into a new
 * database, swap it in, drop the old.  Until the swap the live database
 * is untouched; a failure before it drops the new one.
 */
static void
pg_restore(const struct dbr_db *d, const char *dir, struct dbr_result *res)
{
	struct dbr_result drop = {0};
	struct pg_names nm;

	if (pg_names_of(d, &nm, res) < 0)
		return;
	if (pg_load(d, dir, &nm, res) < 0 || pg_swap(d, &nm, res) < 0) {
		if (pg_drop(d, nm.fresh, &drop) < 0)
			hs_log_warnx("database %s: cannot drop %s: %s",
			             d->db->name, nm.fresh, drop.why);
		return;
	}
	/* Restored: a leftover is dropped by the next restore. */
	if (pg_drop(d, nm.old, &drop) < 0)
		hs_log_warnx("database %s: restored, but cannot drop %s: %s",
		             d->db->name, nm.old, drop.why);
	res->rc = HS_OK;
}

const struct dbr_driver dbr_postgresql = {
    .type = HS_DB_POSTGRESQL,
    .mark = pg_mark,
    .dump = pg_dump,
    .restore = pg_restore,
};
