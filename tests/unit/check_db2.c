/*
 * check_db2.c - the DB2 driver (dbrepl/db2.c).  DB2 cannot run in the
 * test suite: the parser reads the guide's own db2pd sample and outputs
 * written from IBM's documented field names (tests/unit/fixtures/db2/),
 * and the commands run through tests/tools/db2-recorder.sh as the
 * command_prefix, which logs each command line and prints what a test
 * chose.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbrepl_int.h"

#include "check_aux.h"

#ifndef HS_DB2_FIXTURES
#error "HS_DB2_FIXTURES: the folder of the db2pd fixtures"
#endif
#ifndef HS_DB2_RECORDER
#error "HS_DB2_RECORDER: tests/tools/db2-recorder.sh"
#endif

/*
 * dbr_argv's copies of the prefix words live until the job child exits
 * (job.c); the "ops" cases call a driver op in the test's own process,
 * where they outlive the case.  LeakSanitizer's hook: a leak from
 * dbr_argv is expected here, any other still fails.
 */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
	return "leak:dbr_argv\n";
}

/* ------------------------------------------------------------- fixtures */

static char basedir[40]; /* per run, removed by base_teardown */
static char tmpdir[64];  /* per test, inside basedir */
static int tmpfd = -1;
static char log_path[128]; /* the recorder's log in tmpdir */
static char prefix[512];   /* command_prefix: the recorder */
static struct hs_conf conf;
static struct hs_database db;
static struct dbr_db dbd;

static void
base_setup(void)
{
	snprintf(basedir, sizeof(basedir), "/tmp/check_db2.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(basedir));
}

static void
base_teardown(void)
{
	nftw(basedir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A [database xcatdb] of type db2 whose commands go to the recorder. */
static void
dir_setup(void)
{
	aux_tmp_make(basedir, tmpdir, sizeof(tmpdir), &tmpfd);
	snprintf(log_path, sizeof(log_path), "%s/commands.log", tmpdir);
	snprintf(prefix, sizeof(prefix), "%s", HS_DB2_RECORDER);
	memset(&conf, 0, sizeof(conf));
	conf.state_dir = tmpdir;
	memset(&db, 0, sizeof(db));
	db.name = "xcatdb";
	db.type = HS_DB_DB2;
	db.database = "XCATDB";
	db.instance = "xcatdb";
	db.interval = 30;
	db.restore = HS_RESTORE_ON_PROMOTE;
	db.timeout = 20;
	db.command_prefix = prefix;
	conf.dbs = &db;
	conf.n_dbs = 1;
	dbd.conf = &conf;
	dbd.db = &db;
	dbd.drv = &dbr_db2;
	setenv("HS_DB2_LOG", log_path, 1);
	unsetenv("DB2INSTANCE");
}

static void
dir_teardown(void)
{
	aux_tmp_remove(tmpdir, &tmpfd);
}

/* Fixture `name`'s text, NUL-terminated; the caller frees it. */
static char *
fixture_read(const char *name)
{
	char path[512];
	struct stat st;
	char *text;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", HS_DB2_FIXTURES, name);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fileno(f), &st), 0);
	text = calloc(1, (size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(fread(text, 1, (size_t)st.st_size, f),
	                  (size_t)st.st_size);
	fclose(f);
	return text;
}

/* The recorder's log: what ran, "" when nothing did.  Static buffer. */
static const char *
log_read(void)
{
	static char buf[4096];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	fd = open(log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ck_assert_int_eq(errno, ENOENT);
		return buf;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void
result_init(struct dbr_result *res)
{
	memset(res, 0, sizeof(*res));
	res->rc = 1; /* neither HS_OK nor a failure: the op must set it */
	res->hadr_log_gap = -2;
}

/* --------------------------------------------------------------- parser */

static const struct parse_case {
	const char *file;
	int rc;
	const char *role, *state, *connect;
	int64_t gap;
	const char *why; /* rc < 0: a part of res->why */
} parse_cases[] = {
    /* The guide's section 5.1.8, verbatim: tab-separated tables. */
    {"guide-primary.txt", HS_OK, "PRIMARY", "PEER", "CONNECTED", 0, NULL},
    /* db2pd 9.7's blank-aligned tables; the gap from the two LSNs. */
    {"v97-standby-catchup.txt", HS_OK, "STANDBY", "REMOTE_CATCHUP_PENDING",
     "DISCONNECTED", 0x20000, NULL},
    /* db2pd 10.1 and later. */
    {"v105-primary-peer.txt", HS_OK, "PRIMARY", "PEER", "CONNECTED", 0,
     NULL},
    {"v105-standby-catchup.txt", HS_OK, "STANDBY", "REMOTE_CATCHUP",
     "CONNECTED", 1097728, NULL},
    {"v105-primary-disconnected.txt", HS_OK, "PRIMARY", "DISCONNECTED_PEER",
     "DISCONNECTED", -1, NULL},
    /* The principal standby is printed first and is the one shown. */
    {"v105-primary-two-standbys.txt", HS_OK, "PRIMARY", "PEER", "CONNECTED",
     0, NULL},
    /* No HADR_LOG_GAP(bytes): the gap from the two log positions. */
    {"kv-positions-only.txt", HS_OK, "STANDBY", "REMOTE_CATCHUP",
     "CONNECTED", 264226469 - 263128741, NULL},
    {"not-active.txt", HS_ENOTFOUND, "", "", "", -1,
     "database XCATDB is not active: db2pd says \"Database XCATDB not "
     "activated on database member 0"},
    {"v97-not-active.txt", HS_ENOTFOUND, "", "", "", -1,
     "database XCATDB is not active: db2pd says \"Database XCATDB not "
     "activated on database partition 0.\""},
};

START_TEST(parse_table)
{
	const struct parse_case *c = &parse_cases[_i];
	struct dbr_result res;
	char *text = fixture_read(c->file);
	int rc;

	result_init(&res);
	rc = dbr_db2_parse(text, "XCATDB", &res);
	ck_assert_msg(rc == c->rc, "%s: rc %d, want %d (%s)", c->file, rc,
	              c->rc, res.why);
	ck_assert_int_eq(res.rc, c->rc);
	ck_assert_str_eq(res.hadr_role, c->role);
	ck_assert_str_eq(res.hadr_state, c->state);
	ck_assert_str_eq(res.hadr_connect, c->connect);
	ck_assert_msg(res.hadr_log_gap == c->gap, "%s: gap %lld, want %lld",
	              c->file, (long long)res.hadr_log_gap,
	              (long long)c->gap);
	if (c->why != NULL)
		ck_assert_msg(strstr(res.why, c->why) != NULL,
		              "%s: why '%s' lacks '%s'", c->file, res.why,
		              c->why);
	else
		ck_assert_str_eq(res.why, "");
	free(text);
}
END_TEST

/*
 * A fixture cut short before `cut`, or with `from` replaced by `to`: an
 * output truncated or garbled, refused with the field named.
 */
static const struct broken_case {
	const char *file;
	const char *cut;
	const char *from, *to;
	const char *why;
} broken_cases[] = {
    {"guide-primary.txt", "Role\t", NULL, NULL,
     "db2pd -d XCATDB -hadr: field Role missing from its output"},
    {"guide-primary.txt", "ConnectStatus", NULL, NULL,
     "db2pd -d XCATDB -hadr: field ConnectStatus missing from its output"},
    {"guide-primary.txt", "PrimaryFile", NULL, NULL,
     "field PrimaryLSN missing from its output"},
    {"guide-primary.txt", "StandByFile", NULL, NULL,
     "field StandByLSN missing from its output"},
    /* The header line is there, its values are not. */
    {"guide-primary.txt", "Primary\tPeer", NULL, NULL,
     "field Role missing from its output"},
    {"guide-primary.txt", NULL, "Primary\tPeer\t", "Primary\t\t",
     "field State is empty"},
    {"guide-primary.txt", NULL, "0x000000000FA4869D\n\nStandBy",
     "0xFA48G9D\n\nStandBy", "field PrimaryLSN: '0xFA48G9D' is not a log "
                             "position"},
    {"v97-standby-catchup.txt", "StandByFile", NULL, NULL,
     "field StandByLSN missing from its output"},
    {"v97-standby-catchup.txt", NULL, "Standby RemoteCatchupPending",
     "Standby RemoteCatchup%ending", "field State: 'RemoteCatchup%ending' "
                                     "is not an HADR value"},
    {"v105-primary-peer.txt", "HADR_ROLE", NULL, NULL,
     "field HADR_ROLE missing from its output"},
    {"v105-primary-peer.txt", "                           HADR_STATE", NULL,
     NULL, "field HADR_STATE missing from its output"},
    {"v105-primary-peer.txt", "                  HADR_CONNECT_STATUS =",
     NULL, NULL, "field HADR_CONNECT_STATUS missing from its output"},
    {"v105-primary-peer.txt", "            PRIMARY_LOG_FILE", NULL, NULL,
     "field HADR_LOG_GAP(bytes) missing from its output"},
    {"kv-positions-only.txt", "            STANDBY_LOG_FILE", NULL, NULL,
     "field STANDBY_LOG_FILE,PAGE,POS missing from its output"},
    {"v105-primary-peer.txt", NULL, "HADR_LOG_GAP(bytes) = 0",
     "HADR_LOG_GAP(bytes) = lots",
     "field HADR_LOG_GAP(bytes): 'lots' is not a number of bytes"},
    {"v105-primary-peer.txt", NULL, "HADR_LOG_GAP(bytes) = 0",
     "HADR_LOG_GAP(bytes) = -5",
     "field HADR_LOG_GAP(bytes): '-5' is not a number of bytes"},
    {"v105-primary-peer.txt", NULL, "HADR_STATE = PEER", "HADR_STATE = P;R",
     "field HADR_STATE: 'P;R' is not an HADR value"},
    {"v105-primary-peer.txt", NULL, "HADR_ROLE = PRIMARY",
     "HADR_ROLE = PRIMARY_AND_THEN_SOME_MORE",
     "field HADR_ROLE: 'PRIMARY_AND_THEN_SOME_MORE' is not an HADR value"},
    {"v105-primary-peer.txt", NULL, "HADR_CONNECT_STATUS = CONNECTED",
     "HADR_CONNECT_STATUS = "
     "CONNECTEDCONNECTEDCONNECTEDCONNECTEDCONNECTEDCONNECTEDCONNECTED"
     "CONNECTEDCONNECTEDCONNECTEDCONNECTEDCONNECTEDCONNECTEDCONNECTED"
     "CONNECTED",
     "field HADR_CONNECT_STATUS: value longer than 127 bytes"},
    {"kv-positions-only.txt", NULL, "S0000031.LOG, 212, 263128741",
     "S0000031.LOG, 212", "field STANDBY_LOG_FILE,PAGE,POS: 'S0000031.LOG, "
                          "212' is not a log position"},
    /* Nothing at all, or not db2pd's output. */
    {"v105-primary-peer.txt", "\n", NULL, NULL,
     "field HADR_ROLE missing from its output"},
    {"v105-primary-peer.txt", "", NULL, NULL,
     "field HADR_ROLE missing from its output"},
};

/* `text` with `from` replaced by `to`, once; the caller frees it. */
static char *
replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	size_t head, len;
	char *out;

	ck_assert_msg(at != NULL, "fixture lacks '%s'", from);
	head = (size_t)(at - text);
	len = strlen(text) - strlen(from) + strlen(to);
	out = malloc(len + 1);
	ck_assert_ptr_nonnull(out);
	memcpy(out, text, head);
	strcpy(out + head, to);
	strcat(out, at + strlen(from));
	return out;
}

START_TEST(parse_broken)
{
	const struct broken_case *c = &broken_cases[_i];
	struct dbr_result res;
	char *text = fixture_read(c->file), *t = text, *cut;
	int rc;

	if (c->cut != NULL) {
		cut = c->cut[0] != '\0' ? strstr(text, c->cut) : text;
		ck_assert_msg(cut != NULL, "%s lacks '%s'", c->file, c->cut);
		*cut = '\0';
	} else {
		t = replace(text, c->from, c->to);
	}
	result_init(&res);
	rc = dbr_db2_parse(t, "XCATDB", &res);
	ck_assert_int_eq(rc, HS_EPROTO);
	ck_assert_int_eq(res.rc, HS_EPROTO);
	ck_assert_msg(strstr(res.why, c->why) != NULL,
	              "case %d: why '%s' lacks '%s'", _i, res.why, c->why);
	ck_assert_ptr_null(strchr(res.why, '\n'));
	if (t != text)
		free(t);
	free(text);
}
END_TEST

/*
 * Every fixture cut at every length: parsed or refused, never a crash,
 * and a refusal is one line.  What parses holds all four fields.
 */
START_TEST(parse_every_cut)
{
	const struct parse_case *c = &parse_cases[_i];
	char *text = fixture_read(c->file), *t;
	size_t len = strlen(text), n;
	struct dbr_result res;
	int rc;

	for (n = 0; n <= len; n++) {
		t = strndup(text, n);
		ck_assert_ptr_nonnull(t);
		result_init(&res);
		rc = dbr_db2_parse(t, "XCATDB", &res);
		ck_assert_int_eq(res.rc, rc);
		if (rc == HS_OK) {
			ck_assert_str_ne(res.hadr_role, "");
			ck_assert_str_ne(res.hadr_state, "");
			ck_assert_str_ne(res.hadr_connect, "");
		} else {
			ck_assert_msg(rc == HS_EPROTO || rc == HS_ENOTFOUND,
			              "%s cut at %zu: rc %d", c->file, n, rc);
			ck_assert_str_ne(res.why, "");
			ck_assert_ptr_null(strchr(res.why, '\n'));
		}
		free(t);
	}
	free(text);
}
END_TEST

/* ------------------------------------------- the ops, through the recorder */

static void
fixture_use(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", HS_DB2_FIXTURES, name);
	setenv("HS_DB2_OUT", path, 1);
}

START_TEST(driver_table)
{
	/* HADR ships the data: nothing to mark, dump or restore. */
	ck_assert_int_eq(dbr_db2.type, HS_DB_DB2);
	ck_assert_ptr_null(dbr_db2.mark);
	ck_assert_ptr_null(dbr_db2.dump);
	ck_assert_ptr_null(dbr_db2.restore);
	ck_assert_ptr_nonnull(dbr_db2.hadr);
	ck_assert_ptr_nonnull(dbr_db2.takeover);
}
END_TEST

START_TEST(hadr_op)
{
	struct dbr_result res;

	fixture_use("v105-standby-catchup.txt");
	result_init(&res);
	dbr_db2.hadr(&dbd, &res);
	ck_assert_msg(res.rc == HS_OK, "%s", res.why);
	ck_assert_str_eq(res.hadr_role, "STANDBY");
	ck_assert_str_eq(res.hadr_state, "REMOTE_CATCHUP");
	ck_assert_str_eq(res.hadr_connect, "CONNECTED");
	ck_assert_int_eq(res.hadr_log_gap, 1097728);
	ck_assert_str_eq(log_read(),
	                 "DB2INSTANCE=xcatdb db2pd -d XCATDB -hadr\n");
}
END_TEST

/* The guide's sample, and a prefix of several words (env VAR=... cmd). */
START_TEST(hadr_op_prefix_words)
{
	struct dbr_result res;

	snprintf(prefix, sizeof(prefix), "env HS_DB2_DB2PD_EXIT=0 %s",
	         HS_DB2_RECORDER);
	fixture_use("guide-primary.txt");
	setenv("HS_DB2_EXIT", "9", 1); /* for db2pd, the prefix says 0 */
	result_init(&res);
	dbr_db2.hadr(&dbd, &res);
	ck_assert_msg(res.rc == HS_OK, "%s", res.why);
	ck_assert_str_eq(res.hadr_role, "PRIMARY");
	ck_assert_str_eq(res.hadr_state, "PEER");
	ck_assert_str_eq(res.hadr_connect, "CONNECTED");
	ck_assert_int_eq(res.hadr_log_gap, 0);
	ck_assert_str_eq(log_read(),
	                 "DB2INSTANCE=xcatdb db2pd -d XCATDB -hadr\n");
}
END_TEST

/* Not active: said so, whether db2pd exits 0 or not. */
START_TEST(hadr_op_not_active)
{
	static const char *const exits[] = {"0", "1"};
	struct dbr_result res;

	fixture_use("not-active.txt");
	setenv("HS_DB2_EXIT", exits[_i], 1);
	result_init(&res);
	dbr_db2.hadr(&dbd, &res);
	ck_assert_int_eq(res.rc, HS_ENOTFOUND);
	ck_assert_msg(strstr(res.why, "database XCATDB is not active") != NULL,
	              "%s", res.why);
	ck_assert_str_eq(res.hadr_role, "");
	ck_assert_int_eq(res.hadr_log_gap, -1);
}
END_TEST

/* db2pd fails: the command and what it said reach res->why. */
START_TEST(hadr_op_fails)
{
	struct dbr_result res;

	setenv("HS_DB2_STDERR", "db2pd: You must be the instance owner", 1);
	setenv("HS_DB2_EXIT", "255", 1);
	result_init(&res);
	dbr_db2.hadr(&dbd, &res);
	ck_assert_int_lt(res.rc, 0);
	ck_assert_msg(strstr(res.why, "db2pd -d XCATDB -hadr") != NULL, "%s",
	              res.why);
	ck_assert_msg(strstr(res.why, "You must be the instance owner") !=
	                  NULL,
	              "%s", res.why);
	ck_assert_ptr_null(strchr(res.why, '\n'));
	ck_assert_int_eq(res.hadr_log_gap, -1);
}
END_TEST

/* Exit 0 but an output that is not db2pd's: refused, the field named. */
START_TEST(hadr_op_garbled)
{
	struct dbr_result res;

	setenv("HS_DB2_SAY", "Segmentation fault (core dumped)", 1);
	result_init(&res);
	dbr_db2.hadr(&dbd, &res);
	ck_assert_int_eq(res.rc, HS_EPROTO);
	ck_assert_str_eq(res.why, "db2pd -d XCATDB -hadr: field HADR_ROLE "
	                          "missing from its output");
}
END_TEST

static const struct takeover_case {
	int force;
	const char *ran;
} takeover_cases[] = {
    {0, "DB2INSTANCE=xcatdb db2 takeover hadr on db XCATDB\n"},
    {1, "DB2INSTANCE=xcatdb db2 takeover hadr on db XCATDB by force\n"},
};

START_TEST(takeover_op)
{
	const struct takeover_case *c = &takeover_cases[_i];
	struct dbr_result res;

	setenv("HS_DB2_SAY",
	       "DB20000I  The TAKEOVER HADR ON DATABASE command completed "
	       "successfully.",
	       1);
	result_init(&res);
	dbr_db2.takeover(&dbd, c->force, &res);
	ck_assert_msg(res.rc == HS_OK, "%s", res.why);
	ck_assert_str_eq(res.why, "");
	ck_assert_str_eq(log_read(), c->ran);
}
END_TEST

/*
 * The takeover fails: the db2 command line processor says why on stdout
 * and exits 4.  res->why names the command and ends with that line.
 */
START_TEST(takeover_op_fails)
{
	const struct takeover_case *c = &takeover_cases[_i];
	static const char say[] =
	    "SQL1770N  Takeover HADR cannot complete. Reason code = \"1\".";
	char cmd[64];
	struct dbr_result res;

	setenv("HS_DB2_SAY", say, 1);
	setenv("HS_DB2_EXIT", "4", 1);
	result_init(&res);
	dbr_db2.takeover(&dbd, c->force, &res);
	ck_assert_int_lt(res.rc, 0);
	snprintf(cmd, sizeof(cmd), "db2 takeover hadr on db XCATDB%s: ",
	         c->force ? " by force" : "");
	ck_assert_msg(strncmp(res.why, cmd, strlen(cmd)) == 0, "%s", res.why);
	ck_assert_msg(strlen(res.why) > strlen(say) &&
	                  strcmp(res.why + strlen(res.why) - strlen(say),
	                         say) == 0,
	              "%s", res.why);
	ck_assert_str_eq(log_read(), c->ran);
}
END_TEST

/* Names that would be read as options or words: refused, nothing runs. */
static const struct name_case {
	const char *database, *instance, *why;
} name_cases[] = {
    {"-d", "xcatdb", "database xcatdb: '-d' is not a DB2 database name"},
    {"XCAT DB", "xcatdb",
     "database xcatdb: 'XCAT DB' is not a DB2 database name"},
    {"XCATDB123", "xcatdb",
     "database xcatdb: 'XCATDB123' is not a DB2 database name"},
    {"", "xcatdb", "database xcatdb: '' is not a DB2 database name"},
    {"XCATDB", "-u", "database xcatdb: '-u' is not a DB2 instance name"},
    {"XCATDB", "a=b", "database xcatdb: 'a=b' is not a DB2 instance name"},
};

START_TEST(bad_names)
{
	const struct name_case *c = &name_cases[_i];
	struct dbr_result res;

	db.database = (char *)c->database;
	db.instance = (char *)c->instance;
	result_init(&res);
	dbr_db2.hadr(&dbd, &res);
	ck_assert_int_eq(res.rc, HS_ECONFIG);
	ck_assert_msg(strstr(res.why, c->why) == res.why, "%s", res.why);
	result_init(&res);
	dbr_db2.takeover(&dbd, 1, &res);
	ck_assert_int_eq(res.rc, HS_ECONFIG);
	ck_assert_msg(strstr(res.why, c->why) == res.why, "%s", res.why);
	ck_assert_str_eq(log_read(), "");
}
END_TEST

/* ------------------------------------------ the ops in job children */

/* Run `op` of the database in a job child, as the manager does. */
static void
job_run(enum dbr_op op, int force, struct dbr_job *j)
{
	memset(j, 0, sizeof(*j));
	j->fd = -1;
	ck_assert_int_eq(dbr_job_start(j, &dbd, op, NULL, force), HS_OK);
	dbr_job_wait(j);
	ck_assert_int_eq(j->pid, 0);
}

START_TEST(job_hadr)
{
	struct dbr_job j;

	fixture_use("v97-standby-catchup.txt");
	job_run(DBR_OP_HADR, 0, &j);
	ck_assert_msg(j.res.rc == HS_OK, "%s", j.res.why);
	ck_assert_str_eq(j.res.hadr_role, "STANDBY");
	ck_assert_str_eq(j.res.hadr_state, "REMOTE_CATCHUP_PENDING");
	ck_assert_str_eq(j.res.hadr_connect, "DISCONNECTED");
	ck_assert_int_eq(j.res.hadr_log_gap, 0x20000);
	ck_assert_str_eq(log_read(),
	                 "DB2INSTANCE=xcatdb db2pd -d XCATDB -hadr\n");
}
END_TEST

START_TEST(job_takeover)
{
	const struct takeover_case *c = &takeover_cases[_i];
	struct dbr_job j;

	job_run(DBR_OP_TAKEOVER, c->force, &j);
	ck_assert_msg(j.res.rc == HS_OK, "%s", j.res.why);
	ck_assert_str_eq(log_read(), c->ran);
}
END_TEST

START_TEST(job_takeover_fails)
{
	struct dbr_job j;

	setenv("HS_DB2_DB2_SAY",
	       "SQL1769N  Stop HADR cannot complete. Reason code = \"2\".", 1);
	setenv("HS_DB2_DB2_EXIT", "4", 1);
	job_run(DBR_OP_TAKEOVER, 1, &j);
	ck_assert_int_lt(j.res.rc, 0);
	ck_assert_msg(strstr(j.res.why, "db2 takeover hadr on db XCATDB by "
	                                "force: ") == j.res.why,
	              "%s", j.res.why);
	ck_assert_msg(strstr(j.res.why, "Reason code = \"2\".") != NULL, "%s",
	              j.res.why);
}
END_TEST

/* A db2pd that hangs is killed at the database's timeout. */
START_TEST(job_hadr_hangs)
{
	struct dbr_job j;

	db.timeout = 1;
	setenv("HS_DB2_SLEEP", "30", 1);
	fixture_use("guide-primary.txt");
	job_run(DBR_OP_HADR, 0, &j);
	ck_assert_int_eq(j.res.rc, HS_ETIMEOUT);
	ck_assert_msg(strstr(j.res.why, "timed out") != NULL, "%s", j.res.why);
	ck_assert_str_eq(j.res.hadr_role, "");
	ck_assert_str_eq(log_read(),
	                 "DB2INSTANCE=xcatdb db2pd -d XCATDB -hadr\n");
}
END_TEST

/* --------------------------------------------- through the manager */

/* Tick `r` until database 0's HADR state was read or failed. */
static void
manager_read(struct dbr *r, struct dbr_status *st)
{
	int i, ms;

	for (i = 0; i < 200; i++) {
		dbr_tick(r);
		dbr_status(r, 0, st);
		if (st->hadr_state[0] != '\0' || st->error[0] != '\0')
			return;
		ms = dbr_next_ms(r);
		usleep((useconds_t)(ms < 0 || ms > 50 ? 50 : ms) * 1000);
	}
	ck_abort_msg("the manager never read the HADR state");
}

/*
 * What the standby's manager makes of db2pd's answers: the fields in
 * status, promote_ready's reason, and the error of a failed read.
 */
static const struct manager_case {
	const char *file;
	const char *exit;
	const char *state;
	int ready;
	const char *why; /* dbr_ready's reason, or status' error */
} manager_cases[] = {
    {"v105-primary-peer.txt", "0", "ok", 1, ""},
    {"guide-primary.txt", "0", "ok", 1, ""},
    {"v105-standby-catchup.txt", "0", "error", 0,
     "database xcatdb: HADR state is REMOTE_CATCHUP, not PEER"},
    {"v97-standby-catchup.txt", "0", "error", 0,
     "database xcatdb: HADR state is REMOTE_CATCHUP_PENDING, not PEER"},
    {"not-active.txt", "1", "error", 0,
     "database XCATDB is not active: db2pd says"},
};

START_TEST(manager_status)
{
	const struct manager_case *c = &manager_cases[_i];
	char why[HS_ERRMSG_MAX] = "";
	struct dbr_status st;
	struct dbr *r;
	char *text;

	fixture_use(c->file);
	setenv("HS_DB2_EXIT", c->exit, 1);
	ck_assert_int_eq(dbr_open(&conf, DBR_STANDBY, &r), HS_OK);
	ck_assert_uint_eq(dbr_count(r), 1);
	manager_read(r, &st);
	ck_assert_str_eq(st.name, "xcatdb");
	ck_assert_str_eq(st.type, "db2");
	ck_assert_str_eq(st.state, c->state);
	if (c->ready) {
		struct dbr_result res;

		/* status shows what the parser read. */
		text = fixture_read(c->file);
		result_init(&res);
		ck_assert_int_eq(dbr_db2_parse(text, "XCATDB", &res), HS_OK);
		ck_assert_str_eq(st.hadr_role, res.hadr_role);
		ck_assert_str_eq(st.hadr_state, res.hadr_state);
		ck_assert_str_eq(st.hadr_connect, res.hadr_connect);
		ck_assert_int_eq(st.hadr_log_gap, res.hadr_log_gap);
		ck_assert_str_eq(st.error, "");
		free(text);
	}
	ck_assert_int_eq(dbr_ready(r, 0, why, sizeof(why)), c->ready);
	ck_assert_msg(strstr(why, c->why) != NULL, "why '%s' lacks '%s'", why,
	              c->why);
	if (!c->ready && strcmp(c->state, "error") == 0)
		ck_assert_msg(st.error[0] != '\0', "no error in status");
	/* Only db2pd ran: nothing was taken over. */
	ck_assert_ptr_null(strstr(log_read(), "takeover"));
	dbr_free(r);
}
END_TEST

/* promote runs the takeover, BY FORCE only when forced. */
START_TEST(manager_promote)
{
	const struct takeover_case *c = &takeover_cases[_i];
	char why[HS_ERRMSG_MAX] = "", want[256];
	struct dbr_status st;
	struct dbr *r;

	fixture_use("v105-standby-catchup.txt");
	ck_assert_int_eq(dbr_open(&conf, DBR_STANDBY, &r), HS_OK);
	manager_read(r, &st);
	ck_assert_msg(dbr_promote(r, c->force, why, sizeof(why)) == HS_OK,
	              "%s", why);
	snprintf(want, sizeof(want),
	         "DB2INSTANCE=xcatdb db2pd -d XCATDB -hadr\n%s", c->ran);
	ck_assert_str_eq(log_read(), want);
	dbr_free(r);
}
END_TEST

/* A failed takeover fails promote with the database and db2's words. */
START_TEST(manager_promote_fails)
{
	char why[HS_ERRMSG_MAX] = "";
	struct dbr *r;

	setenv("HS_DB2_DB2_SAY",
	       "SQL1770N  Takeover HADR cannot complete. Reason code = \"3\".",
	       1);
	setenv("HS_DB2_DB2_EXIT", "4", 1);
	ck_assert_int_eq(dbr_open(&conf, DBR_STANDBY, &r), HS_OK);
	ck_assert_int_lt(dbr_promote(r, 0, why, sizeof(why)), 0);
	ck_assert_msg(strstr(why, "xcatdb") != NULL, "%s", why);
	ck_assert_msg(strstr(why, "db2 takeover hadr on db XCATDB: ") != NULL,
	              "%s", why);
	ck_assert_msg(strstr(why, "Reason code = \"3\".") != NULL, "%s", why);
	dbr_free(r);
}
END_TEST

/* ----------------------------------------------------------------- main */

static Suite *
db2_suite(void)
{
	Suite *s = suite_create("db2");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, parse_table, 0, (int)N_ELEM(parse_cases));
	tcase_add_loop_test(tc, parse_broken, 0, (int)N_ELEM(broken_cases));
	tcase_add_loop_test(tc, parse_every_cut, 0, (int)N_ELEM(parse_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("ops");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, driver_table);
	tcase_add_test(tc, hadr_op);
	tcase_add_test(tc, hadr_op_prefix_words);
	tcase_add_loop_test(tc, hadr_op_not_active, 0, 2);
	tcase_add_test(tc, hadr_op_fails);
	tcase_add_test(tc, hadr_op_garbled);
	tcase_add_loop_test(tc, takeover_op, 0, (int)N_ELEM(takeover_cases));
	tcase_add_loop_test(tc, takeover_op_fails, 0,
	                    (int)N_ELEM(takeover_cases));
	tcase_add_loop_test(tc, bad_names, 0, (int)N_ELEM(name_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("jobs");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, job_hadr);
	tcase_add_loop_test(tc, job_takeover, 0, (int)N_ELEM(takeover_cases));
	tcase_add_test(tc, job_takeover_fails);
	tcase_add_test(tc, job_hadr_hangs);
	suite_add_tcase(s, tc);

	tc = tcase_create("manager");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, manager_status, 0, (int)N_ELEM(manager_cases));
	tcase_add_loop_test(tc, manager_promote, 0,
	                    (int)N_ELEM(takeover_cases));
	tcase_add_test(tc, manager_promote_fails);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(db2_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
