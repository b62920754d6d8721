/*
 * db2.c - the DB2 driver.  DB2 replicates itself with HADR (section 5.1 of
 * the guide), so hamnsync ships no snapshot of it: the driver has no mark,
 * dump or restore.  It reads HADR's state with `db2pd -d DB -hadr` for
 * `status`, and promote runs `db2 takeover hadr on db DB`, BY FORCE only
 * under promote --force: the guide keeps BY FORCE for a primary that is
 * not functional.
 *
 * Every command runs with the database's command_prefix in front (the
 * guide runs DB2's commands as the instance owner: "runuser -u xcatdb --")
 * and with DB2INSTANCE set to the configured instance.  No USER or USING
 * words: the instance owner is trusted locally, and a password on a
 * command line is what ps shows.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbrepl_int.h"

/*
 * db2pd -hadr prints about 2 KB per log shipping channel, and a primary
 * has three standbys at most; the principal standby comes first, so an
 * output cut here loses nothing the parser reads.
 */
#define DB2_OUT_MAX 16384
/* The prefix's words and ours; dbr_argv refuses more. */
#define DB2_ARGV_MAX 64
/* One field's value while parsing: the widest we read is a log position. */
#define DB2_VAL_MAX 128
/* DB2 names a database or an instance with at most 8 characters. */
#define DB2_NAME_MAX 8
/* Columns in one block of the old tables: db2pd prints 5 at most. */
#define DB2_COLS_MAX 16

/* What db2pd prints in place of the tables for a database not active. */
#define DB2_NOT_ACTIVE "not activated"
/* The old tables (db2pd before 10.1, and the guide's sample) follow this. */
#define DB2_TABLES "HADR Information:"

/* ------------------------------------------------------------ lines */

/* The line at *p, without its newline; *p moves past it.  0 at the end. */
static int
line_next(const char **p, const char **line, size_t *len)
{
	const char *s = *p, *nl;

	if (*s == '\0')
		return 0;
	nl = strchr(s, '\n');
	*line = s;
	*len = nl != NULL ? (size_t)(nl - s) : strlen(s);
	*p = nl != NULL ? nl + 1 : s + *len;
	return 1;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int
line_is_blank(const char *l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!is_blank(l[i]))
			return 0;
	}
	return 1;
}

/* `n` bytes at `s`, blanks trimmed, into `out`.  1, or HS_ELIMIT. */
static int
copy_trim(const char *s, size_t n, char *out, size_t cap)
{
	while (n > 0 && is_blank(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_blank(s[n - 1]))
		n--;
	if (n >= cap)
		return HS_ELIMIT;
	memcpy(out, s, n);
	out[n] = '\0';
	return 1;
}

/* ---------------------------------------- db2pd 10.1 on: KEY = value */

/*
 * The value of the first line "KEY = value" whose key is `key`.  With
 * several standbys the primary prints one set per standby, the principal
 * standby's first: that is the one `status` shows.  1 when found, 0 when
 * not, HS_ELIMIT when the value is too long.
 */
static int
kv_find(const char *text, const char *key, char *val, size_t cap)
{
	const char *p = text, *l, *eq, *k, *kend;
	size_t n;

	while (line_next(&p, &l, &n)) {
		eq = memchr(l, '=', n);
		if (eq == NULL)
			continue;
		for (k = l; k < eq && is_blank(*k); k++)
			;
		for (kend = eq; kend > k && is_blank(kend[-1]); kend--)
			;
		if ((size_t)(kend - k) != strlen(key) ||
		    memcmp(k, key, strlen(key)) != 0)
			continue;
		return copy_trim(eq + 1, n - (size_t)(eq + 1 - l), val, cap);
	}
	return 0;
}

/* ------------------------ db2pd before 10.1: "HADR Information:" tables */

/* Field `i` of a tab-separated line: the guide's copy of the tables. */
static int
tab_field(const char *l, size_t n, size_t i, const char **f, size_t *fn)
{
	const char *end = l + n, *tab;

	for (;;) {
		tab = memchr(l, '\t', (size_t)(end - l));
		if (i == 0) {
			*f = l;
			*fn = (size_t)((tab != NULL ? tab : end) - l);
			return 1;
		}
		if (tab == NULL)
			return 0;
		l = tab + 1;
		i--;
	}
}

static int
row_find_tabs(const char *hl, size_t hn, const char *vl, size_t vn,
              const char *name, char *val, size_t cap)
{
	char col[DB2_VAL_MAX];
	const char *f;
	size_t i, fn;

	for (i = 0; tab_field(hl, hn, i, &f, &fn); i++) {
		if (copy_trim(f, fn, col, sizeof(col)) < 0 ||
		    strcmp(col, name) != 0)
			continue;
		if (!tab_field(vl, vn, i, &f, &fn))
			return 0;
		return copy_trim(f, fn, val, cap);
	}
	return 0;
}

/*
 * Where a column's value starts on a blank-aligned line: at `off` when a
 * word starts there, else at the next word.  A value wider than its
 * column pushes the next one right: skip the rest of the word `off` falls
 * in.
 */
static size_t
col_snap(const char *l, size_t n, size_t off)
{
	if (off >= n)
		return n;
	if (off > 0 && !is_blank(l[off - 1])) {
		while (off < n && !is_blank(l[off]))
			off++;
	}
	while (off < n && is_blank(l[off]))
		off++;
	return off;
}

/*
 * The column names of a blank-aligned header line and where each starts.
 * A word in parentheses belongs to the name before it: "LogGapRunAvg
 * (bytes)".  Returns the count.
 */
static size_t
row_cols(const char *hl, size_t hn, size_t start[DB2_COLS_MAX + 1])
{
	size_t i = 0, n = 0;

	for (;;) {
		while (i < hn && is_blank(hl[i]))
			i++;
		if (i >= hn || n == DB2_COLS_MAX)
			break;
		if (n == 0 || hl[i] != '(')
			start[n++] = i;
		while (i < hn && !is_blank(hl[i]))
			i++;
	}
	start[n] = hn;
	return n;
}

static int
row_find_cols(const char *hl, size_t hn, const char *vl, size_t vn,
              const char *name, char *val, size_t cap)
{
	size_t start[DB2_COLS_MAX + 1], n, i, from, to;
	char col[DB2_VAL_MAX];

	n = row_cols(hl, hn, start);
	for (i = 0; i < n; i++) {
		if (copy_trim(hl + start[i], start[i + 1] - start[i], col,
		              sizeof(col)) < 0 ||
		    strcmp(col, name) != 0)
			continue;
		from = col_snap(vl, vn, start[i]);
		to = i + 1 < n ? col_snap(vl, vn, start[i + 1]) : vn;
		if (to < from)
			to = from;
		return copy_trim(vl + from, to - from, val, cap);
	}
	return 0;
}

/*
 * The value under column `name` in the tables after "HADR Information:":
 * blocks of a line of names over a line of values.  db2pd aligns the
 * columns with blanks; the guide's copy separates them with tabs.  1 when
 * found, 0 when not, HS_ELIMIT when the value is too long.
 */
static int
tab_find(const char *text, const char *name, char *val, size_t cap)
{
	const char *p = strstr(text, DB2_TABLES), *hl, *vl;
	size_t hn, vn;
	int rc;

	if (p == NULL || !line_next(&p, &hl, &hn))
		return 0;
	for (;;) {
		if (!line_next(&p, &hl, &hn))
			return 0;
		if (line_is_blank(hl, hn))
			continue;
		if (!line_next(&p, &vl, &vn))
			return 0;
		if (line_is_blank(vl, vn))
			continue;
		if (memchr(hl, '\t', hn) != NULL)
			rc = row_find_tabs(hl, hn, vl, vn, name, val, cap);
		else
			rc = row_find_cols(hl, hn, vl, vn, name, val, cap);
		if (rc != 0)
			return rc;
	}
}

/* ------------------------------------------------------------ fields */

/* The two layouts: the names of the fields we read, and where. */
struct db2_layout {
	const char *role, *state, *connect;
	const char *gap;          /* the log gap in bytes, or NULL */
	const char *pos_primary;  /* else from the two log positions */
	const char *pos_standby;
	int (*pos_parse)(const char *val, uint64_t *pos);
	int (*find)(const char *text, const char *name, char *val,
	            size_t cap);
};

/* "S0000031.LOG, 212, 263128741": file, page, and the byte position. */
static int
pos_parse_kv(const char *val, uint64_t *pos)
{
	const char *c = strchr(val, ',');

	if (c == NULL || (c = strchr(c + 1, ',')) == NULL ||
	    strchr(c + 1, ',') != NULL)
		return HS_EPROTO;
	c += strspn(c + 1, " ") + 1;
	return hs_parse_u64(c, 0, INT64_MAX, pos) < 0 ? HS_EPROTO : HS_OK;
}

/* "0x000000000FA4869D": an LSN, a byte offset in the log stream. */
static int
pos_parse_lsn(const char *val, uint64_t *pos)
{
	unsigned long long v;
	char *end;

	if (strncmp(val, "0x", 2) != 0 || !isxdigit((unsigned char)val[2]))
		return HS_EPROTO;
	errno = 0;
	v = strtoull(val + 2, &end, 16);
	if (errno != 0 || *end != '\0' || v > INT64_MAX)
		return HS_EPROTO;
	*pos = v;
	return HS_OK;
}

static const struct db2_layout db2_kv = {
    .role = "HADR_ROLE",
    .state = "HADR_STATE",
    .connect = "HADR_CONNECT_STATUS",
    .gap = "HADR_LOG_GAP(bytes)",
    .pos_primary = "PRIMARY_LOG_FILE,PAGE,POS",
    .pos_standby = "STANDBY_LOG_FILE,PAGE,POS",
    .pos_parse = pos_parse_kv,
    .find = kv_find,
};

static const struct db2_layout db2_tables = {
    .role = "Role",
    .state = "State",
    .connect = "ConnectStatus",
    .gap = NULL,
    .pos_primary = "PrimaryLSN",
    .pos_standby = "StandByLSN",
    .pos_parse = pos_parse_lsn,
    .find = tab_find,
};

/* Read field `name`: HS_OK, or a failure in res that names it. */
static int
field_get(const struct db2_layout *lo, const char *text, const char *db,
          const char *name, char *val, struct dbr_result *res)
{
	int rc = lo->find(text, name, val, DB2_VAL_MAX);

	if (rc == 0)
		return dbr_fail(res, HS_EPROTO,
		                "db2pd -d %s -hadr: field %s missing from its "
		                "output",
		                db, name);
	if (rc < 0)
		return dbr_fail(res, HS_EPROTO,
		                "db2pd -d %s -hadr: field %s: value longer "
		                "than %d bytes",
		                db, name, DB2_VAL_MAX - 1);
	return HS_OK;
}

/*
 * HADR's words as db2pd 10.1 and later print them, whichever layout
 * said them: "RemoteCatchupPending" becomes "REMOTE_CATCHUP_PENDING", so
 * `status` and the manager's judgement see one spelling.
 */
static int
hadr_word(const char *in, char *out, size_t cap)
{
	const char *s;
	size_t o = 0;
	int c;

	for (s = in; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (!isalnum(c) && c != '_' && c != ' ' && c != '-')
			return HS_EPROTO;
		if (o + 2 >= cap)
			return HS_ELIMIT;
		if (isupper(c) && s > in && islower((unsigned char)s[-1]))
			out[o++] = '_';
		out[o++] = (char)(c == ' ' || c == '-' ? '_' : toupper(c));
	}
	if (o == 0)
		return HS_EPROTO;
	out[o] = '\0';
	return HS_OK;
}

/* Field `name` as an HADR word into `out` (cap bytes). */
static int
word_get(const struct db2_layout *lo, const char *text, const char *db,
         const char *name, char *out, size_t cap, struct dbr_result *res)
{
	char val[DB2_VAL_MAX];
	int rc;

	if ((rc = field_get(lo, text, db, name, val, res)) < 0)
		return rc;
	if (val[0] == '\0')
		return dbr_fail(res, HS_EPROTO,
		                "db2pd -d %s -hadr: field %s is empty", db,
		                name);
	if (hadr_word(val, out, cap) < 0)
		return dbr_fail(res, HS_EPROTO,
		                "db2pd -d %s -hadr: field %s: '%s' is not an "
		                "HADR value",
		                db, name, val);
	return HS_OK;
}

/* A position field: HS_OK with *pos, or *pos = -1 when db2pd says NULL. */
static int
pos_get(const struct db2_layout *lo, const char *text, const char *db,
        const char *name, int64_t *pos, struct dbr_result *res)
{
	char val[DB2_VAL_MAX];
	uint64_t v;
	int rc;

	if ((rc = field_get(lo, text, db, name, val, res)) < 0)
		return rc;
	*pos = -1;
	if (strcmp(val, "NULL") == 0)
		return HS_OK;
	if (lo->pos_parse(val, &v) < 0)
		return dbr_fail(res, HS_EPROTO,
		                "db2pd -d %s -hadr: field %s: '%s' is not a "
		                "log position",
		                db, name, val);
	*pos = (int64_t)v;
	return HS_OK;
}

/*
 * The log gap in bytes: HADR_LOG_GAP(bytes) where db2pd prints it, else
 * how far the standby's log position is behind the primary's.  -1 when
 * db2pd does not know (NULL: the standby never connected).
 */
static int
gap_get(const struct db2_layout *lo, const char *text, const char *db,
        struct dbr_result *res)
{
	char val[DB2_VAL_MAX];
	int64_t p, s;
	uint64_t v;
	int rc;

	if (lo->gap != NULL && (rc = lo->find(text, lo->gap, val,
	                                      sizeof(val))) != 0) {
		if (rc < 0)
			return field_get(lo, text, db, lo->gap, val, res);
		if (strcmp(val, "NULL") == 0)
			return HS_OK;
		if (hs_parse_u64(val, 0, INT64_MAX, &v) < 0)
			return dbr_fail(res, HS_EPROTO,
			                "db2pd -d %s -hadr: field %s: '%s' is "
			                "not a number of bytes",
			                db, lo->gap, val);
		res->hadr_log_gap = (int64_t)v;
		return HS_OK;
	}
	/* No gap and no positions: name the gap, what db2pd 10.1 on print. */
	if (lo->gap != NULL && lo->find(text, lo->pos_primary, val,
	                                sizeof(val)) == 0)
		return field_get(lo, text, db, lo->gap, val, res);
	if ((rc = pos_get(lo, text, db, lo->pos_primary, &p, res)) < 0 ||
	    (rc = pos_get(lo, text, db, lo->pos_standby, &s, res)) < 0)
		return rc;
	if (p >= 0 && s >= 0)
		res->hadr_log_gap = p > s ? p - s : 0;
	return HS_OK;
}

/* The line of `text` that says the database is not active, or NULL. */
static const char *
not_active(const char *text, char *line, size_t cap)
{
	const char *p = text, *l;
	size_t n;

	while (line_next(&p, &l, &n)) {
		if (memmem(l, n, DB2_NOT_ACTIVE, strlen(DB2_NOT_ACTIVE)) ==
		    NULL)
			continue;
		if (copy_trim(l, n, line, cap) < 0)
			copy_trim(l, cap - 1, line, cap);
		return line;
	}
	return NULL;
}

int
dbr_db2_parse(const char *text, const char *database, struct dbr_result *res)
{
	const struct db2_layout *lo;
	char line[HS_ERRMSG_MAX / 2];
	int rc;

	res->hadr_role[0] = '\0';
	res->hadr_state[0] = '\0';
	res->hadr_connect[0] = '\0';
	res->hadr_log_gap = -1;
	if (not_active(text, line, sizeof(line)) != NULL)
		return dbr_fail(res, HS_ENOTFOUND,
		                "database %s is not active: db2pd says \"%s\"",
		                database, line);
	lo = strstr(text, DB2_TABLES) != NULL ? &db2_tables : &db2_kv;
	if ((rc = word_get(lo, text, database, lo->role, res->hadr_role,
	                   sizeof(res->hadr_role), res)) < 0 ||
	    (rc = word_get(lo, text, database, lo->state, res->hadr_state,
	                   sizeof(res->hadr_state), res)) < 0 ||
	    (rc = word_get(lo, text, database, lo->connect,
	                   res->hadr_connect, sizeof(res->hadr_connect),
	                   res)) < 0 ||
	    (rc = gap_get(lo, text, database, res)) < 0)
		return rc;
	res->rc = HS_OK;
	res->why[0] = '\0';
	return HS_OK;
}

/* ---------------------------------------------------------- commands */

/* Letters, digits and @ # $ _, 1 to 8 of them, as DB2 names things. */
static int
db2_name_ok(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	              "0123456789@#$_");
	return n > 0 && n <= DB2_NAME_MAX && s[n] == '\0';
}

/*
 * Check the configured names and set DB2INSTANCE for the commands to
 * come.  The names go on a command line: one that is not a DB2 name
 * (say "-d") would be read as an option.  This runs in the job child, so
 * the environment it changes is the child's own.
 */
static int
db2_prepare(const struct dbr_db *d, struct dbr_result *res)
{
	const struct hs_database *db = d->db;

	if (!db2_name_ok(db->database))
		return dbr_fail(res, HS_ECONFIG,
		                "database %s: '%s' is not a DB2 database name "
		                "(1 to %d letters, digits, @, #, $ or _)",
		                db->name, db->database ? db->database : "",
		                DB2_NAME_MAX);
	if (!db2_name_ok(db->instance))
		return dbr_fail(res, HS_ECONFIG,
		                "database %s: '%s' is not a DB2 instance name "
		                "(1 to %d letters, digits, @, #, $ or _)",
		                db->name, db->instance ? db->instance : "",
		                DB2_NAME_MAX);
	if (setenv("DB2INSTANCE", db->instance, 1) != 0)
		return dbr_fail(res, -errno, "database %s: DB2INSTANCE: %s",
		                db->name, strerror(errno));
	return HS_OK;
}

/* The words of `argv` joined by blanks: the command as a log names it. */
static void
cmd_words(char *const argv[], char *buf, size_t len)
{
	size_t off = 0;
	int n;

	buf[0] = '\0';
	for (; *argv != NULL && off < len; argv++) {
		n = snprintf(buf + off, len - off, "%s%s", off ? " " : "",
		             *argv);
		if (n < 0)
			return;
		off += (size_t)n;
	}
}

/* The last line of `text` that is not blank, trimmed, into `line`. */
static void
last_line(const char *text, char *line, size_t cap)
{
	const char *p = text, *l;
	size_t n;

	line[0] = '\0';
	while (line_next(&p, &l, &n)) {
		if (line_is_blank(l, n))
			continue;
		if (copy_trim(l, n, line, cap) < 0)
			copy_trim(l, cap - 1, line, cap);
	}
}

/*
 * Run DB2 command `argv` after the prefix, its stdout in `out` (cap
 * bytes).  On failure res->why names the command by its own words (the
 * prefix's first word is runuser or the like) and ends with the last
 * line it printed: the db2 command line processor writes its messages
 * ("SQL1770N ...") on stdout, where dbr_run does not look.
 */
static int
db2_run(const struct dbr_db *d, char *const argv[], char *out, size_t cap,
        struct dbr_result *res)
{
	char *full[DB2_ARGV_MAX], cmd[128], last[HS_ERRMSG_MAX / 4];
	char why[HS_ERRMSG_MAX];
	int n, rc;

	out[0] = '\0';
	n = dbr_argv(d, argv, full, sizeof(full) / sizeof(full[0]));
	if (n < 0)
		return dbr_fail(res, n,
		                "database %s: command_prefix: too many words",
		                d->db->name);
	rc = dbr_run(full, NULL, NULL, out, cap, res);
	if (rc >= 0)
		return rc;
	cmd_words(argv, cmd, sizeof(cmd));
	last_line(out, last, sizeof(last));
	snprintf(why, sizeof(why), "%s", res->why);
	if (last[0] != '\0' && strstr(why, last) == NULL)
		return dbr_fail(res, rc, "%s: %s: %s", cmd, why, last);
	return dbr_fail(res, rc, "%s: %s", cmd, why);
}

/* The hadr op: what db2pd says of the database's HADR pair. */
static void
db2_hadr(const struct dbr_db *d, struct dbr_result *res)
{
	char *argv[] = {"db2pd", "-d", NULL, "-hadr", NULL};
	char *out;
	int rc;

	res->hadr_log_gap = -1;
	if (db2_prepare(d, res) < 0)
		return;
	if ((out = malloc(DB2_OUT_MAX)) == NULL) {
		dbr_fail(res, -ENOMEM, "database %s: db2pd's output: %s",
		         d->db->name, strerror(ENOMEM));
		return;
	}
	argv[2] = d->db->database;
	rc = db2_run(d, argv, out, DB2_OUT_MAX, res);
	/* db2pd may exit non-zero for a database not active; say that. */
	if (rc >= 0 || strstr(out, DB2_NOT_ACTIVE) != NULL)
		dbr_db2_parse(out, d->db->database, res);
	free(out);
}

/* The takeover op: the standby's database becomes the HADR primary. */
static void
db2_takeover(const struct dbr_db *d, int force, struct dbr_result *res)
{
	char *argv[] = {"db2", "takeover", "hadr", "on", "db",
	                NULL,  NULL,       NULL,   NULL};
	char *out;

	if (db2_prepare(d, res) < 0)
		return;
	if ((out = malloc(DB2_OUT_MAX)) == NULL) {
		dbr_fail(res, -ENOMEM, "database %s: db2's output: %s",
		         d->db->name, strerror(ENOMEM));
		return;
	}
	argv[5] = d->db->database;
	if (force) {
		argv[6] = "by";
		argv[7] = "force";
	}
	if (db2_run(d, argv, out, DB2_OUT_MAX, res) >= 0) {
		res->rc = HS_OK;
		res->why[0] = '\0';
	}
	free(out);
}

/* mark, dump and restore: none, HADR carries the data. */
const struct dbr_driver dbr_db2 = {
    .type = HS_DB_DB2,
    .hadr = db2_hadr,
    .takeover = db2_takeover,
};
