/*
 * mysql.c - the MySQL/MariaDB driver.
 *
 * The change mark is InnoDB's log sequence number, the dump mysqldump's
 * SQL in one consistent read, and the restore replays it with mysql into
 * a temporary schema of the standby's own server, then moves every table
 * into the live schema with one RENAME TABLE.  The dsn's words become
 * client options; a password, if any, comes from the option file named
 * by defaults_file= (or the client's own ~/.my.cnf), never from us.
 * On the standby that user must be able to create and drop the schemas
 * NAME__hs_new and NAME__hs_old and to rename tables across them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbrepl_int.h"

#define MY_NEW_SUFFIX "__hs_new"
#define MY_OLD_SUFFIX "__hs_old"
/* A schema name is at most 64 characters. */
#define MY_IDENT_MAX 64
#define MY_NAME_MAX (MY_IDENT_MAX - (sizeof(MY_NEW_SUFFIX) - 1))
#define MY_DUMP_FILE "dump.sql"
#define MY_OPT_MAX 6 /* defaults file, host, port, socket, user + NULL */
#define MY_OPT_LEN 1024
#define MY_ARGS_MAX 40
#define MY_SQL_MAX 512
/*
 * The table list and the RENAME statement: one argument of mysql's, and
 * the kernel takes at most 128 KiB in one (MAX_ARG_STRLEN).
 */
#define MY_TABLES_MAX (64 * 1024)
#define MY_RENAME_MAX (120 * 1024)

/* The dsn as client options, and the schema it names. */
struct my_dsn {
	char opt[MY_OPT_MAX][MY_OPT_LEN];
	size_t n;
	char db[MY_IDENT_MAX + 1];
	char fresh[MY_IDENT_MAX + 1]; /* db + MY_NEW_SUFFIX */
	char old[MY_IDENT_MAX + 1];   /* db + MY_OLD_SUFFIX */
};

static const struct {
	const char *key;
	const char *opt; /* NULL: the schema */
} my_keys[] = {
    {"defaults_file", "--defaults-extra-file="},
    {"host", "--host="},
    {"port", "--port="},
    {"socket", "--socket="},
    {"user", "--user="},
    {"dbname", NULL},
    {"database", NULL},
};
#define MY_NKEYS (sizeof(my_keys) / sizeof(my_keys[0]))

/*
 * Word `w` (n bytes, "key=value") into m; an unknown key is an error
 * that names the key only (its value could be a secret).
 */
static int
my_dsn_word(const struct dbr_db *d, const char *w, size_t n, struct my_dsn *m,
            struct dbr_result *res)
{
	size_t k, klen = 0;

	for (k = 0; k < MY_NKEYS; k++) {
		klen = strlen(my_keys[k].key);
		if (n > klen && strncmp(w, my_keys[k].key, klen) == 0 &&
		    w[klen] == '=')
			break;
	}
	if (k == MY_NKEYS) {
		klen = strcspn(w, "=");
		return dbr_fail(res, HS_ECONFIG,
		                "database %s: dsn key '%.*s' is not one of "
		                "host, port, socket, user, dbname, database, "
		                "defaults_file",
		                d->db->name, (int)(klen < n ? klen : n), w);
	}
	w += klen + 1;
	n -= klen + 1;
	if (n + strlen(my_keys[k].opt ? my_keys[k].opt : "") >= MY_OPT_LEN)
		return dbr_fail(res, HS_ELIMIT, "database %s: dsn %s too long",
		                d->db->name, my_keys[k].key);
	if (my_keys[k].opt == NULL) {
		snprintf(m->db, sizeof(m->db), "%.*s", (int)n, w);
		return HS_OK;
	}
	if (m->n + 1 >= MY_OPT_MAX)
		return dbr_fail(res, HS_ECONFIG,
		                "database %s: dsn repeats a key", d->db->name);
	/* mysql reads --defaults-extra-file only as its first option. */
	if (k == 0) {
		memmove(m->opt[1], m->opt[0], m->n * sizeof(m->opt[0]));
		snprintf(m->opt[0], MY_OPT_LEN, "%s%.*s", my_keys[k].opt,
		         (int)n, w);
	} else {
		snprintf(m->opt[m->n], MY_OPT_LEN, "%s%.*s", my_keys[k].opt,
		         (int)n, w);
	}
	m->n++;
	return HS_OK;
}

/*
 * Parse the dsn.  The schema's name must be letters, digits and '_', to
 * go into SQL without escaping, and leave room for its temporary names.
 */
static int
my_dsn_parse(const struct dbr_db *d, struct my_dsn *m, struct dbr_result *res)
{
	const char *w = d->db->dsn;
	size_t n;

	memset(m, 0, sizeof(*m));
	for (;;) {
		w += strspn(w, " \t");
		if (*w == '\0')
			break;
		n = strcspn(w, " \t");
		if (my_dsn_word(d, w, n, m, res) < 0)
			return res->rc;
		w += n;
	}
	if (m->db[0] == '\0')
		return dbr_fail(res, HS_ECONFIG,
		                "database %s: its dsn names no dbname",
		                d->db->name);
	if (dbr_dbname_check(d, m->db, MY_NAME_MAX, res) < 0)
		return res->rc;
	/* The check above bounds the name; the precision says so. */
	snprintf(m->fresh, sizeof(m->fresh), "%.*s%s", (int)MY_NAME_MAX, m->db,
	         MY_NEW_SUFFIX);
	snprintf(m->old, sizeof(m->old), "%.*s%s", (int)MY_NAME_MAX, m->db,
	         MY_OLD_SUFFIX);
	return HS_OK;
}

/*
 * Run `cmd` (mysql or mysqldump) with the dsn's options, then `extra`
 * (NULL-terminated), behind the command prefix.
 */
static int
my_run(const struct dbr_db *d, const struct my_dsn *m, const char *cmd,
       char *const *extra, const char *in, const char *out, char *cap,
       size_t caplen, struct dbr_result *res)
{
	char *args[MY_ARGS_MAX], *argv[MY_ARGS_MAX + 16];
	size_t n = 0, i;

	args[n++] = (char *)cmd;
	for (i = 0; i < m->n; i++)
		args[n++] = (char *)m->opt[i];
	for (; *extra != NULL; extra++) {
		if (n + 1 >= MY_ARGS_MAX)
			return dbr_fail(res, HS_ELIMIT, "%s: too many options",
			                cmd);
		args[n++] = *extra;
	}
	args[n] = NULL;
	if (dbr_argv(d, args, argv, sizeof(argv) / sizeof(argv[0])) < 0)
		return dbr_fail(res, HS_ELIMIT,
		                "database %s: command_prefix has too many "
		                "words",
		                d->db->name);
	return dbr_run(argv, in, out, cap, caplen, res);
}

/* mysql -e SQL in schema `db` (NULL: none), batch output, no names. */
static int
my_sql(const struct dbr_db *d, const struct my_dsn *m, const char *db,
       const char *sql, char *cap, size_t caplen, struct dbr_result *res)
{
	char *extra[] = {"--batch",  "--skip-column-names",
	                 "-e",       (char *)sql,
	                 (char *)db, NULL};

	return my_run(d, m, "mysql", extra, NULL, NULL, cap, caplen, res);
}

/* Prefix the command's own message in res->why with what we were doing. */
static int
my_failed(const struct dbr_db *d, const char *what, struct dbr_result *res)
{
	char cmd[HS_ERRMSG_MAX];

	snprintf(cmd, sizeof(cmd), "%s", res->why);
	return dbr_fail(res, res->rc < 0 ? res->rc : -EIO,
	                "database %s: %s: %s", d->db->name, what, cmd);
}

/*
 * InnoDB's current log sequence number: it moves when a transaction
 * writes, not on a read.  MariaDB keeps INNODB_METRICS' log_lsn_current
 * at 0 unless that counter is enabled, so the status variable it is.
 * Purge, statistics and checkpoint records after a write move it again
 * up to seconds later: one more dump that finds nothing new, then an
 * idle server's stays.
 */
static void
my_mark(const struct dbr_db *d, struct dbr_result *res)
{
	char out[256], *v;
	struct my_dsn m;
	size_t n;

	if (my_dsn_parse(d, &m, res) < 0)
		return;
	if (my_sql(d, &m, NULL, "SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'",
	           out, sizeof(out), res) < 0) {
		my_failed(d, "cannot read the change mark", res);
		return;
	}
	v = strchr(out, '\t');
	n = v != NULL ? strspn(v + 1, "0123456789") : 0;
	if (n == 0 || n >= sizeof(res->mark)) {
		dbr_fail(res, HS_EPROTO,
		         "database %s: the server has no Innodb_lsn_current "
		         "(answered '%.40s')",
		         d->db->name, out);
		return;
	}
	snprintf(res->mark, sizeof(res->mark), "%.*s", (int)n, v + 1);
	res->rc = HS_OK;
}

/*
 * One consistent read (--single-transaction: InnoDB tables are not
 * locked), rows in primary-key order and no date: the same data dumps to
 * the same bytes, and a changed row changes a few blocks.  Only tables
 * (and their triggers): routines and events belong to the schema, not to
 * a table, and could not move with RENAME TABLE; xCAT has none.
 */
static void
my_dump(const struct dbr_db *d, const char *dir, struct dbr_result *res)
{
	struct my_dsn m;
	char out[4096];
	char *extra[] = {"--single-transaction",
	                 "--skip-dump-date",
	                 "--order-by-primary",
	                 "--no-tablespaces",
	                 "--skip-routines",
	                 "--skip-events",
	                 m.db,
	                 NULL};

	if (my_dsn_parse(d, &m, res) < 0)
		return;
	snprintf(out, sizeof(out), "%s/%s", dir, MY_DUMP_FILE);
	if (my_run(d, &m, "mysqldump", extra, NULL, out, NULL, 0, res) < 0) {
		my_failed(d, "dump failed", res);
		return;
	}
	res->rc = HS_OK;
}

/* Replay the dump into a new, empty schema m->fresh. */
static int
my_load(const struct dbr_db *d, const char *dir, const struct my_dsn *m,
        struct dbr_result *res)
{
	char sql[MY_SQL_MAX], file[4096];
	char *extra[] = {(char *)m->fresh, NULL};

	/*
	 * What a restore cut short (a kill at its timeout) left goes first.
	 * The live schema is made when missing, to rename into.
	 */
	snprintf(sql, sizeof(sql),
	         "DROP DATABASE IF EXISTS `%s`; DROP DATABASE IF EXISTS `%s`; "
	         "CREATE DATABASE `%s`; CREATE DATABASE `%s`; "
	         "CREATE DATABASE IF NOT EXISTS `%s`",
	         m->fresh, m->old, m->fresh, m->old, m->db);
	if (my_sql(d, m, NULL, sql, NULL, 0, res) < 0)
		return my_failed(d, "cannot prepare the restore", res);
	/* mysql stops at the first bad statement and names its line. */
	snprintf(file, sizeof(file), "%s/%s", dir, MY_DUMP_FILE);
	if (my_run(d, m, "mysql", extra, file, NULL, NULL, 0, res) < 0)
		return my_failed(d, "restore failed", res);
	return HS_OK;
}

/* Append `s` to b, or HS_ELIMIT. */
static int
my_cat(struct hs_buf *b, const char *s)
{
	return hs_buf_append(b, s, strlen(s));
}

/* Append "`from`.`t` TO `to`.`t`" (t: len bytes), comma first if needed. */
static int
my_cat_move(struct hs_buf *b, const char *from, const char *to, const char *t,
            size_t len, int *first)
{
	char one[3 * MY_IDENT_MAX + 64];
	int n;

	n = snprintf(one, sizeof(one), "%s`%s`.`%.*s` TO `%s`.`%.*s`",
	             *first ? " " : ", ", from, (int)len, t, to, (int)len, t);
	if (n < 0 || (size_t)n >= sizeof(one))
		return HS_ELIMIT;
	*first = 0;
	return hs_buf_append(b, one, (size_t)n);
}

/*
 * The RENAME TABLE statement that swaps the schemas' tables: every live
 * table to old, every new one to live.  A table only the live schema has
 * moves to old with the others and goes when old is dropped: after the
 * swap live holds exactly what the snapshot holds.  `list` is mysql's
 * "schema\ttable" lines.  Names are letters, digits, '_' and '$' (what
 * goes unquoted in MySQL); anything else would need escaping here.
 */
static int
my_rename_sql(const struct dbr_db *d, const struct my_dsn *m, char *list,
              struct hs_buf *b, struct dbr_result *res)
{
	char *line, *save, *t;
	int first = 1, rc = HS_OK;
	size_t len;

	if (my_cat(b, "SET SESSION lock_wait_timeout = 30; RENAME TABLE") < 0)
		return dbr_fail(res, HS_ELIMIT, "RENAME too long");
	for (line = strtok_r(list, "\n", &save); line != NULL && rc == HS_OK;
	     line = strtok_r(NULL, "\n", &save)) {
		if ((t = strchr(line, '\t')) == NULL)
			continue;
		*t++ = '\0';
		len = strlen(t);
		if (len == 0 || len > MY_IDENT_MAX ||
		    strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
		              "UVWXYZ0123456789_$") != len)
			return dbr_fail(res, HS_ECONFIG,
			                "database %s: table name '%.64s' in %s "
			                "is not letters, digits, '_' and '$'",
			                d->db->name, t, line);
		if (strcmp(line, m->db) == 0)
			rc = my_cat_move(b, m->db, m->old, t, len, &first);
		else
			rc = my_cat_move(b, m->fresh, m->db, t, len, &first);
	}
	if (rc < 0)
		return dbr_fail(res, rc,
		                "database %s: too many tables for one RENAME",
		                d->db->name);
	return first ? 1 : HS_OK;
}

/*
 * Swap the tables of m->fresh in for those of m->db with one RENAME
 * TABLE: atomic in MySQL and MariaDB, and it waits (lock_wait_timeout)
 * for transactions on the live tables to end.  A failure renames
 * nothing.
 */
static int
my_swap(const struct dbr_db *d, const struct my_dsn *m, struct dbr_result *res)
{
	char sql[MY_SQL_MAX], *list = NULL;
	struct hs_buf b;
	int rc;

	hs_buf_init(&b, MY_RENAME_MAX);
	if ((list = malloc(MY_TABLES_MAX)) == NULL) {
		rc = dbr_fail(res, -ENOMEM, "database %s: out of memory",
		              d->db->name);
		goto out;
	}
	snprintf(sql, sizeof(sql),
	         "SELECT table_schema, table_name "
	         "FROM information_schema.TABLES "
	         "WHERE table_schema IN ('%s', '%s') ORDER BY 1, 2",
	         m->db, m->fresh);
	if ((rc = my_sql(d, m, NULL, sql, list, MY_TABLES_MAX, res)) < 0) {
		rc = my_failed(d, "cannot list the tables", res);
		goto out;
	}
	if (strlen(list) + 1 >= MY_TABLES_MAX) {
		rc = dbr_fail(res, HS_ELIMIT,
		              "database %s: too many tables to list",
		              d->db->name);
		goto out;
	}
	if ((rc = my_rename_sql(d, m, list, &b, res)) != HS_OK)
		goto out; /* 1: no table on either side, nothing to swap */
	if ((rc = hs_buf_append(&b, "", 1)) < 0) {
		rc = dbr_fail(res, rc,
		              "database %s: too many tables for one "
		              "RENAME",
		              d->db->name);
		goto out;
	}
	if ((rc = my_sql(d, m, NULL, (char *)b.data, NULL, 0, res)) < 0)
		rc = my_failed(d, "cannot swap the restored tables in", res);
out:
	free(list);
	hs_buf_free(&b);
	return rc < 0 ? rc : HS_OK;
}

/* Drop the temporary schemas; a failure is only logged. */
static void
my_drop_temp(const struct dbr_db *d, const struct my_dsn *m)
{
	struct dbr_result r = {0};
	char sql[MY_SQL_MAX];

	snprintf(sql, sizeof(sql),
	         "DROP DATABASE IF EXISTS `%s`; DROP DATABASE IF EXISTS `%s`",
	         m->fresh, m->old);
	if (my_sql(d, m, NULL, sql, NULL, 0, &r) < 0)
		hs_log_warnx("database %s: cannot drop %s and %s: %s",
		             d->db->name, m->fresh, m->old, r.why);
}

/*
 * Into the standby's own server, named by its own dsn: load into a new
 * schema, swap the tables in, drop the temporary schemas.  Until the
 * swap the live schema is untouched.
 */
static void
my_restore(const struct dbr_db *d, const char *dir, struct dbr_result *res)
{
	struct my_dsn m;

	if (my_dsn_parse(d, &m, res) < 0)
		return;
	if (my_load(d, dir, &m, res) < 0 || my_swap(d, &m, res) < 0) {
		my_drop_temp(d, &m);
		return;
	}
	my_drop_temp(d, &m);
	res->rc = HS_OK;
}

const struct dbr_driver dbr_mysql = {
    .type = HS_DB_MYSQL,
    .mark = my_mark,
    .dump = my_dump,
    .restore = my_restore,
};
