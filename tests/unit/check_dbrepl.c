/*
 * check_dbrepl.c - the dbrepl library: the job children (timeouts kill
 * the whole group, failures say why), the manifest (every malformed or
 * mismatched case refused with its reason), the SQLite driver (dumps under
 * a concurrent writer, atomic restores) and the manager driving SQLite
 * through dbr_open/dbr_tick as primary and as standby.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dbrepl_int.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------- fixtures */

static char basedir[40]; /* per run, removed at the end */
static char tmpdir[64];  /* per test, inside basedir */

static void
dir_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", basedir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
dir_teardown(void)
{
	rm_tree(tmpdir);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static double
now_s(void)
{
	return (double)hs_now_mono_ns() / 1e9;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

static char *tpath(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* tmpdir + "/" + the formatted leaf, in one of a few rotating buffers. */
static char *
tpath(const char *fmt, ...)
{
	static char buf[8][512];
	static int k;
	char leaf[256];
	va_list ap;

	k = (k + 1) % 8;
	va_start(ap, fmt);
	vsnprintf(leaf, sizeof(leaf), fmt, ap);
	va_end(ap);
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, leaf);
	return buf[k];
}

/* A database handle for the drivers and the jobs, without a config file. */
static struct hs_conf fake_conf;
static struct hs_database fake_db;
static struct dbr_db fake_d;
static char fake_path[512], fake_prefix[512], fake_root[512];

static const struct dbr_db *
fake(uint64_t timeout, const char *path, const char *prefix)
{
	memset(&fake_conf, 0, sizeof(fake_conf));
	memset(&fake_db, 0, sizeof(fake_db));
	snprintf(fake_path, sizeof(fake_path), "%s", path);
	snprintf(fake_prefix, sizeof(fake_prefix), "%s",
	         prefix != NULL ? prefix : "");
	/*
	 * A node's copy is target_root + path: a database the test made
	 * under tmpdir is used in place (target_root /); the restore tests'
	 * /etc/xcat goes below tmpdir/root.
	 */
	snprintf(fake_root, sizeof(fake_root), "%s",
	         strncmp(path, tmpdir, strlen(tmpdir)) == 0 ? "/"
	                                                    : tpath("root"));
	fake_conf.state_dir = tmpdir;
	fake_conf.target_root = fake_root;
	fake_db.name = "xcatdb";
	fake_db.type = HS_DB_SQLITE;
	fake_db.path = fake_path;
	fake_db.timeout = timeout;
	fake_db.interval = 0;
	fake_db.command_prefix = prefix != NULL ? fake_prefix : NULL;
	fake_d.conf = &fake_conf;
	fake_d.db = &fake_db;
	fake_d.drv = &dbr_sqlite;
	return &fake_d;
}

/* ------------------------------------------------------------------ jobs */

static void
fn_run(void *arg, struct dbr_result *res)
{
	char *const *argv = arg;

	dbr_run(argv, NULL, NULL, NULL, 0, res);
}

static void
job_finish_wait(struct dbr_job *j, double limit)
{
	double t0 = now_s();

	while (dbr_job_poll(j) == 0) {
		ck_assert_msg(now_s() - t0 < limit, "job still running");
		sleep_ms(10);
	}
}

/* Is process `pid` gone (or a zombie about to be reaped)? */
static int
proc_gone(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL)
		return 1;
	return p[2] == 'Z' || p[2] == 'X';
}

START_TEST(job_timeout_kills_group)
{
	char script[600], *pidfile = tpath("sleep.pid");
	char *argv[] = {"sh", "-c", script, NULL};
	struct dbr_job j;
	FILE *f;
	int pid = 0, i;
	double t0;

	/* The grandchild `sleep` is what a hung pg_dump's helper looks like. */
	snprintf(script, sizeof(script), "sleep 300 & echo $! > %s; wait",
	         pidfile);
	t0 = now_s();
	ck_assert_int_eq(dbr_job_start_fn(&j, fake(1, "/nonexistent", NULL),
	                                  DBR_OP_DUMP, fn_run, argv),
	                 0);
	job_finish_wait(&j, 10);
	ck_assert_double_ge(now_s() - t0, 0.9);
	ck_assert_int_lt(j.res.rc, 0);
	ck_assert_msg(strstr(j.res.why, "timed out after 1 s") != NULL, "%s",
	              j.res.why);
	ck_assert_int_eq(j.pid, 0);
	ck_assert_ptr_nonnull(f = fopen(pidfile, "r"));
	ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
	fclose(f);
	ck_assert_int_gt(pid, 1);
	for (i = 0; i < 100 && !proc_gone(pid); i++)
		sleep_ms(20);
	ck_assert_msg(proc_gone(pid), "grandchild %d survived", pid);
}
END_TEST

START_TEST(job_failing_command_says_why)
{
	char *argv[] = {"sh", "-c",
	                "echo first >&2; echo 'pg_dump: no such table' >&2; "
	                "printf '\\tIs the server running?\\n' >&2; exit 3",
	                NULL};
	struct dbr_job j;

	ck_assert_int_eq(dbr_job_start_fn(&j, fake(10, "/x", NULL), DBR_OP_DUMP,
	                                  fn_run, argv),
	                 0);
	job_finish_wait(&j, 10);
	ck_assert_int_lt(j.res.rc, 0);
	ck_assert_str_eq(j.res.why, "sh: exit 3: pg_dump: no such table");
}
END_TEST

static void
fn_die(void *arg, struct dbr_result *res)
{
	(void)res;
	if (arg != NULL)
		raise(SIGKILL);
	_exit(0);
}

START_TEST(job_killed_child_is_reported)
{
	struct dbr_job j;

	ck_assert_int_eq(dbr_job_start_fn(&j, fake(10, "/x", NULL), DBR_OP_DUMP,
	                                  fn_die, "kill"),
	                 0);
	job_finish_wait(&j, 10);
	ck_assert_int_lt(j.res.rc, 0);
	ck_assert_msg(strstr(j.res.why, "dump child killed by signal 9") !=
	                  NULL,
	              "%s", j.res.why);
	ck_assert_int_eq(dbr_job_start_fn(&j, fake(10, "/x", NULL), DBR_OP_MARK,
	                                  fn_die, NULL),
	                 0);
	job_finish_wait(&j, 10);
	ck_assert_int_lt(j.res.rc, 0);
	ck_assert_msg(strstr(j.res.why, "change probe child exited with "
	                                "status 0 without a result") != NULL,
	              "%s", j.res.why);
}
END_TEST

START_TEST(job_kill_and_wait)
{
	char *argv[] = {"sleep", "300", NULL};
	struct dbr_job j;
	pid_t pid;

	ck_assert_int_eq(dbr_job_start_fn(&j, fake(100, "/x", NULL),
	                                  DBR_OP_DUMP, fn_run, argv),
	                 0);
	pid = j.pid;
	ck_assert_int_eq(dbr_job_poll(&j), 0);
	dbr_job_kill(&j);
	ck_assert_int_eq(j.pid, 0);
	ck_assert_int_eq(kill(pid, 0), -1);
	/* A driver without the operation says so. */
	fake(10, "/x", NULL);
	fake_d.drv = &dbr_sqlite;
	ck_assert_int_eq(dbr_job_start(&j, &fake_d, DBR_OP_TAKEOVER, NULL, 0),
	                 0);
	dbr_job_wait(&j);
	ck_assert_int_lt(j.res.rc, 0);
	ck_assert_msg(strstr(j.res.why, "has no takeover") != NULL, "%s",
	              j.res.why);
}
END_TEST

/* In the job child: is `fd` (the daemon's) open? What does a command see? */
static int leaked_fd;

static void
fn_inherits(void *arg, struct dbr_result *res)
{
	char *argv[] = {
	    "sh", "-c",
	    "ls /proc/self/fd | wc -l; grep SigBlk /proc/self/status", NULL};

	(void)arg;
	if (fcntl(leaked_fd, F_GETFD) >= 0) {
		dbr_fail(res, -EEXIST, "the daemon's fd %d is open", leaked_fd);
		return;
	}
	dbr_run(argv, NULL, NULL, res->why, sizeof(res->why), res);
}

/*
 * A job child and its commands hold none of the daemon's descriptors (a
 * socket kept open would keep a closed connection alive) and block no
 * signal the daemon blocks for its signalfd.
 */
START_TEST(job_child_inherits_nothing)
{
	sigset_t term, old;
	struct dbr_job j;
	unsigned nfd = 0;
	char blk[64] = "";

	leaked_fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC */
	ck_assert_int_ge(leaked_fd, 3);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	ck_assert_int_eq(dbr_job_start_fn(&j, fake(10, "/x", NULL), DBR_OP_DUMP,
	                                  fn_inherits, NULL),
	                 0);
	sigprocmask(SIG_SETMASK, &old, NULL);
	job_finish_wait(&j, 10);
	ck_assert_msg(j.res.rc == 0, "%s", j.res.why);
	/* stdin, stdout, stderr and the one ls reads. */
	ck_assert_int_eq(sscanf(j.res.why, "%u\nSigBlk: %63s", &nfd, blk), 2);
	ck_assert_uint_eq(nfd, 4);
	ck_assert_str_eq(blk, "0000000000000000");
	close(leaked_fd);
}
END_TEST

START_TEST(run_redirects_and_captures)
{
	char *in = tpath("in.txt"), *out = tpath("out.txt");
	char *cat[] = {"cat", NULL};
	char *echo[] = {"sh", "-c", "printf 'hello world'; exit 0", NULL};
	char *argv[16], cap[6], buf[64] = "";
	struct dbr_result res;
	FILE *f;
	int n;

	memset(&res, 0, sizeof(res));
	write_file(in, "a dump\n");
	ck_assert_int_eq(dbr_run(cat, in, out, NULL, 0, &res), 0);
	ck_assert_ptr_nonnull(f = fopen(out, "r"));
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, "a dump\n");
	ck_assert_int_eq(dbr_run(echo, NULL, NULL, cap, sizeof(cap), &res), 0);
	ck_assert_str_eq(cap, "hello");
	/* A missing program: the reason is the exec's. */
	char *none[] = {"/nonexistent/pg_dump", NULL};
	ck_assert_int_lt(dbr_run(none, NULL, NULL, NULL, 0, &res), 0);
	ck_assert_str_eq(res.why, "pg_dump: exit 127: cannot run: No such "
	                          "file or directory");
	/* The prefix goes first, word by word. */
	n = dbr_argv(fake(10, "/x", "  env  FOO=1 "), echo, argv, N_ELEM(argv));
	ck_assert_int_eq(n, 5);
	ck_assert_str_eq(argv[0], "env");
	ck_assert_str_eq(argv[1], "FOO=1");
	ck_assert_str_eq(argv[2], "sh");
	ck_assert_ptr_null(argv[5]);
	free(argv[0]);
	free(argv[1]);
	ck_assert_int_eq(dbr_argv(fake(10, "/x", "a b c"), echo, argv, 5),
	                 HS_ELIMIT);
}
END_TEST

/* -------------------------------------------------------------- manifest */

static int
open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static struct proto_manifest mf, mf2;

/* A folder with two files and its manifest. */
static int
mf_fixture(void)
{
	char *dir = tpath("snap");
	char why[HS_ERRMSG_MAX] = "";
	int fd;

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	write_file(tpath("snap/b.sqlite"), "bbbbbbbbbb");
	write_file(tpath("snap/a.sqlite"), "aaaa");
	fd = open_dir(dir);
	memset(&mf, 0, sizeof(mf));
	ck_assert_int_eq(dbr_manifest_make(fd, &mf, why, sizeof(why)), 0);
	mf.generation = 7;
	mf.made = 1765000000.5;
	snprintf(mf.type, sizeof(mf.type), "sqlite");
	snprintf(mf.mark, sizeof(mf.mark), "abc+1");
	ck_assert_int_eq(dbr_manifest_write(fd, &mf), 0);
	return fd;
}

/* The manager's name for the manifest is the codec's. */
START_TEST(manifest_one_name)
{
	ck_assert_str_eq(DBR_MANIFEST, PROTO_MANIFEST_NAME);
}
END_TEST

START_TEST(manifest_round_trip)
{
	char why[HS_ERRMSG_MAX] = "";
	int fd = mf_fixture();

	ck_assert_int_eq(mf.n, 2);
	ck_assert_str_eq(mf.files[0].name, "a.sqlite");
	ck_assert_int_eq(mf.files[0].size, 4);
	ck_assert_int_eq(dbr_manifest_read(fd, &mf2, why, sizeof(why)), 0);
	ck_assert_int_eq(mf2.generation, 7);
	ck_assert(mf2.made == 1765000000.5);
	ck_assert_str_eq(mf2.type, "sqlite");
	ck_assert_str_eq(mf2.mark, "abc+1");
	ck_assert_int_eq(mf2.n, 2);
	ck_assert_int_eq(memcmp(mf.files, mf2.files, 2 * sizeof(mf.files[0])),
	                 0);
	ck_assert_int_eq(dbr_manifest_check(fd, &mf2, why, sizeof(why)), 0);
	/* No temporary left beside it. */
	ck_assert_int_eq(faccessat(fd, ".MANIFEST.tmp", F_OK, 0), -1);
	close(fd);
}
END_TEST

START_TEST(manifest_check_finds_damage)
{
	static const struct {
		const char *name, *content, *why;
	} cases[] = {
	    {"b.sqlite", "bbbbb", "b.sqlite: 5 bytes, the manifest says 10"},
	    {"b.sqlite", "bbbbbbbbbc",
	     "b.sqlite: content differs from the manifest's SHA-256"},
	    {"a.sqlite", NULL, "a.sqlite: missing"},
	};
	char why[HS_ERRMSG_MAX];
	size_t i;
	int fd = mf_fixture();

	for (i = 0; i < N_ELEM(cases); i++) {
		write_file(tpath("snap/a.sqlite"), "aaaa");
		write_file(tpath("snap/b.sqlite"), "bbbbbbbbbb");
		ck_assert_int_eq(dbr_manifest_check(fd, &mf, why, sizeof(why)),
		                 0);
		if (cases[i].content != NULL)
			write_file(tpath("snap/%s", cases[i].name),
			           cases[i].content);
		else
			unlink(tpath("snap/%s", cases[i].name));
		why[0] = '\0';
		ck_assert_int_lt(dbr_manifest_check(fd, &mf, why, sizeof(why)),
		                 0);
		ck_assert_str_eq(why, cases[i].why);
	}
	close(fd);
}
END_TEST

#define HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEAD                                                                   \
	"hamnsync-db-manifest 1\ngeneration 3\nmade 1.5\ntype sqlite\n"        \
	"mark m\n"

START_TEST(manifest_refuses_malformed)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
	    {"", "not a version 1 manifest"},
	    {"hamnsync-db-manifest 2\n", "not a version 1 manifest"},
	    {HEAD "file 4 " HASH " a.sqlite\n", "no end line (cut short)"},
	    {HEAD "file 4 " HASH " a.sq", "the last line is cut short"},
	    {HEAD "end 1\n", "end line says 1 files, 0 listed"},
	    {HEAD "file 4 " HASH " ../etc/passwd\nend 1\n",
	     "file name \"../etc/passwd\" is not a plain name"},
	    {HEAD "file 4 " HASH " ..\nend 1\n",
	     "file name \"..\" is not a plain name"},
	    {HEAD "file 4 " HASH " a/b\nend 1\n",
	     "file name \"a/b\" is not a plain name"},
	    {HEAD "file 4 " HASH " a\tb\nend 1\n",
	     "file name \"a\tb\" is not a plain name"},
	    {HEAD "file 4 " HASH " MANIFEST\nend 1\n",
	     "file name \"MANIFEST\" is not a plain name"},
	    {HEAD "file 4 xyz a.sqlite\nend 1\n",
	     "a.sqlite: bad SHA-256 \"xyz\""},
	    {HEAD "file -4 " HASH " a.sqlite\nend 1\n",
	     "a.sqlite: bad size \"-4\""},
	    {HEAD "file 4 " HASH " a\nfile 4 " HASH " a\nend 2\n",
	     "a: listed twice"},
	    {HEAD "colour blue\nend 0\n", "unknown key \"colour\""},
	    {HEAD "end 0\nfile 4 " HASH " a\n", "text after the end line"},
	    {"hamnsync-db-manifest 1\ngeneration 0\n", "bad generation \"0\""},
	    {"hamnsync-db-manifest 1\nend 0\n",
	     "generation, made, type or mark missing"},
	};
	char why[HS_ERRMSG_MAX], expect[HS_ERRMSG_MAX];
	char *dir = tpath("bad");
	size_t i;
	int fd;

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	fd = open_dir(dir);
	for (i = 0; i < N_ELEM(cases); i++) {
		write_file(tpath("bad/MANIFEST"), cases[i].text);
		why[0] = '\0';
		ck_assert_int_eq(dbr_manifest_read(fd, &mf, why, sizeof(why)),
		                 HS_EPROTO);
		snprintf(expect, sizeof(expect), "MANIFEST: malformed: %s",
		         cases[i].why);
		ck_assert_str_eq(why, expect);
	}
	/* A folder without one says so. */
	unlink(tpath("bad/MANIFEST"));
	ck_assert_int_eq(dbr_manifest_read(fd, &mf, why, sizeof(why)), -ENOENT);
	close(fd);
}
END_TEST

/* A manifest cut short anywhere in transit is refused, never read short. */
START_TEST(manifest_every_cut_refused)
{
	char why[HS_ERRMSG_MAX], text[4096];
	ssize_t len, cut;
	int fd = mf_fixture(), mfd;

	mfd = openat(fd, "MANIFEST", O_RDONLY);
	ck_assert_int_ge(mfd, 0);
	len = read(mfd, text, sizeof(text));
	close(mfd);
	ck_assert_int_gt(len, 100);
	for (cut = 0; cut < len; cut++) {
		mfd = openat(fd, "MANIFEST", O_WRONLY | O_TRUNC);
		ck_assert_int_ge(mfd, 0);
		ck_assert_int_eq(write(mfd, text, (size_t)cut), cut);
		close(mfd);
		ck_assert_msg(dbr_manifest_read(fd, &mf2, why, sizeof(why)) ==
		                  HS_EPROTO,
		              "cut at %zd read as whole", cut);
	}
	close(fd);
}
END_TEST

/* ---------------------------------------------------------------- sqlite */

static void
sql_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK,
	              "%s: %s", sql, err ? err : "");
}

/* A database at `path` with `rows` rows of table t holding `val`. */
static void
sql_make(const char *path, int rows, const char *val)
{
	char sql[256];
	sqlite3 *db;
	int i;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sql_exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, "
	             "v TEXT)");
	sql_exec(db, "BEGIN");
	for (i = 0; i < rows; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO t(v) VALUES('%s')",
		         val);
		sql_exec(db, sql);
	}
	sql_exec(db, "COMMIT");
	sqlite3_close(db);
}

/* SELECT an integer. */
static long long
sql_int(const char *path, const char *q)
{
	sqlite3_stmt *st;
	sqlite3 *db;
	long long v;

	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static const char *
sql_text(const char *path, const char *q, char *buf, size_t len)
{
	sqlite3_stmt *st;
	sqlite3 *db;

	buf[0] = '\0';
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(db);
		return buf;
	}
	sqlite3_busy_timeout(db, 1000);
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_text(st, 0) != NULL)
			snprintf(buf, len, "%s",
			         (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	} else
		snprintf(buf, len, "error: %s", sqlite3_errmsg(db));
	sqlite3_close(db);
	return buf;
}

/*
 * The writer: commit rows one by one until `stop` exists, and write the
 * longest wait for one commit (ms) to fd.
 */
static void
writer_run(const char *path, const char *mode, const char *stop, int fd)
{
	char sql[512], pad[201];
	double worst = 0, t0, dt;
	sqlite3 *db;
	long n = 0;

	memset(pad, 'x', 200);
	pad[200] = '\0';
	if (sqlite3_open(path, &db) != SQLITE_OK)
		_exit(2);
	sqlite3_busy_timeout(db, 5000);
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	sqlite3_exec(db, sql, NULL, NULL, NULL);
	while (access(stop, F_OK) < 0) {
		snprintf(sql, sizeof(sql),
		         "INSERT INTO t(id, v) VALUES(%ld, '%s')", n + 1, pad);
		t0 = now_s();
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
			_exit(3);
		dt = now_s() - t0;
		if (dt > worst)
			worst = dt;
		n++;
	}
	sqlite3_close(db);
	dprintf(fd, "%ld %.0f\n", n, worst * 1000);
	_exit(0);
}

/* Each dump passes integrity_check and holds rows 1..k, no gap. */
static void
dump_under_writer(const char *mode)
{
	char *src = tpath("live.sqlite"), *stop = tpath("stop");
	char dir[600], copy[700], buf[64];
	struct dbr_result res;
	long commits = 0, worst = -1, k, last_k = 0, grew = 0;
	int p[2], dumps = 0, status;
	double t0;
	pid_t pid;

	sql_make(src, 0, "");
	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		writer_run(src, mode, stop, p[1]);
	}
	close(p[1]);
	fake(60, src, NULL);
	sleep_ms(100);
	t0 = now_s();
	while (now_s() - t0 < 2.5) {
		snprintf(dir, sizeof(dir), "%s/dump%d", tmpdir, dumps);
		ck_assert_int_eq(mkdir(dir, 0700), 0);
		memset(&res, 0, sizeof(res));
		dbr_sqlite.dump(&fake_d, dir, &res);
		ck_assert_msg(res.rc == 0, "dump: %s", res.why);
		snprintf(copy, sizeof(copy), "%s/live.sqlite", dir);
		ck_assert_str_eq(
		    sql_text(copy, "PRAGMA integrity_check", buf, sizeof(buf)),
		    "ok");
		k = sql_int(copy, "SELECT count(*) FROM t");
		ck_assert_int_eq(sql_int(copy, "SELECT coalesce(max(id), 0) "
		                               "FROM t"),
		                 k);
		ck_assert_int_ge(k, last_k);
		grew += k > last_k;
		last_k = k;
		/* Self-contained: no journal beside the copy. */
		snprintf(copy, sizeof(copy), "%s/live.sqlite-wal", dir);
		ck_assert_int_eq(access(copy, F_OK), -1);
		rm_tree(dir);
		dumps++;
		/* Back to back, but let the writer in between (rollback mode
		 * would otherwise spend most of the run waiting on us). */
		sleep_ms(10);
	}
	write_file(stop, "");
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "writer failed: %d", status);
	ck_assert_int_gt(read(p[0], buf, sizeof(buf) - 1), 0);
	close(p[0]);
	ck_assert_int_eq(sscanf(buf, "%ld %ld", &commits, &worst), 2);
	fprintf(stderr, "%s: %d dumps, %ld commits, worst wait %ld ms\n", mode,
	        dumps, commits, worst);
	ck_assert_int_ge(dumps, 5);
	ck_assert_int_ge(grew, 3);
	ck_assert_int_gt(commits, 20);
	ck_assert_msg(worst < 1000, "the writer waited %ld ms", worst);
}

START_TEST(sqlite_dump_under_writer_wal) { dump_under_writer("WAL"); }
END_TEST

START_TEST(sqlite_dump_under_writer_rollback) { dump_under_writer("DELETE"); }
END_TEST

START_TEST(sqlite_mark_moves_only_on_write)
{
	char *dir = tpath("xcat"), mark[DBR_MARK_MAX];
	struct dbr_result res;

	ck_assert_int_eq(mkdir(dir, 0755), 0);
	sql_make(tpath("xcat/site.sqlite"), 3, "a");
	sql_make(tpath("xcat/nodelist.sqlite"), 3, "b");
	write_file(tpath("xcat/notes.txt"), "not a database");
	fake(10, dir, NULL);
	sleep_ms(100);
	memset(&res, 0, sizeof(res));
	dbr_sqlite.mark(&fake_d, &res);
	ck_assert_int_eq(res.rc, 0);
	snprintf(mark, sizeof(mark), "%s", res.mark);
	ck_assert_int_eq(strlen(mark), 24);
	/* Reads do not move it. */
	ck_assert_int_eq(
	    sql_int(tpath("xcat/site.sqlite"), "SELECT count(*) FROM t"), 3);
	dbr_sqlite.mark(&fake_d, &res);
	ck_assert_str_eq(res.mark, mark);
	sql_make(tpath("xcat/nodelist.sqlite"), 1, "c");
	dbr_sqlite.mark(&fake_d, &res);
	ck_assert_str_ne(res.mark, mark);
	/* WAL mode: a reader that holds the database open (an empty -wal
	 * beside it) moves nothing either. */
	sqlite3 *rd;
	ck_assert_int_eq(sqlite3_open(tpath("xcat/site.sqlite"), &rd),
	                 SQLITE_OK);
	sql_exec(rd, "PRAGMA journal_mode=WAL");
	sqlite3_close(rd);
	sleep_ms(100);
	dbr_sqlite.mark(&fake_d, &res);
	snprintf(mark, sizeof(mark), "%s", res.mark);
	ck_assert_int_eq(sqlite3_open(tpath("xcat/site.sqlite"), &rd),
	                 SQLITE_OK);
	ck_assert_int_eq(
	    sql_int(tpath("xcat/site.sqlite"), "SELECT count(*) FROM t"), 3);
	sql_exec(rd, "SELECT count(*) FROM t");
	ck_assert_int_eq(access(tpath("xcat/site.sqlite-wal"), F_OK), 0);
	dbr_sqlite.mark(&fake_d, &res);
	ck_assert_str_eq(res.mark, mark);
	sqlite3_close(rd);
	dbr_sqlite.mark(&fake_d, &res);
	ck_assert_str_eq(res.mark, mark);
	/* A missing path is an error naming it. */
	fake(10, tpath("nothere"), NULL);
	dbr_sqlite.mark(&fake_d, &res);
	ck_assert_int_lt(res.rc, 0);
	ck_assert_msg(strstr(res.why, "nothere: No such file") != NULL, "%s",
	              res.why);
}
END_TEST

/* A snapshot folder `name` holding one database of `rows` rows of `val`. */
static char *
snap_make(const char *name, const char *file, int rows, const char *val)
{
	char *dir = tpath("%s", name), path[700], why[HS_ERRMSG_MAX];
	static char keep[4][600];
	static int k;
	int fd;

	k = (k + 1) % 4;
	snprintf(keep[k], sizeof(keep[k]), "%s", dir);
	ck_assert_int_eq(mkdir(keep[k], 0700), 0);
	snprintf(path, sizeof(path), "%s/%s", keep[k], file);
	sql_make(path, rows, val);
	fd = open_dir(keep[k]);
	memset(&mf, 0, sizeof(mf));
	ck_assert_int_eq(dbr_manifest_make(fd, &mf, why, sizeof(why)), 0);
	mf.generation = 1;
	snprintf(mf.type, sizeof(mf.type), "sqlite");
	ck_assert_int_eq(dbr_manifest_write(fd, &mf), 0);
	close(fd);
	return keep[k];
}

START_TEST(sqlite_restore_is_atomic)
{
	char *target, *snap_old, *snap_new, buf[128];
	struct dbr_result res;
	int p[2], status, i;
	pid_t pid;
	long bad = -1;

	snap_old = snap_make("old", "xcatdb.sqlite", 50, "old");
	snap_new = snap_make("new", "xcatdb.sqlite", 400, "new");
	fake(30, "/etc/xcat/xcatdb.sqlite", NULL);
	memset(&res, 0, sizeof(res));
	dbr_sqlite.restore(&fake_d, snap_old, &res);
	ck_assert_msg(res.rc == 0, "%s", res.why);
	target = tpath("root/etc/xcat/xcatdb.sqlite");
	ck_assert_int_eq(sql_int(target, "SELECT count(*) FROM t"), 50);
	/* A reader sees 50 old rows or 400 new ones, nothing between. */
	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		long n = 0, seen = 0;
		double t0 = now_s();

		close(p[0]);
		while (now_s() - t0 < 1.5) {
			sql_text(target,
			         "SELECT count(*) || ' ' || min(v) || max(v) "
			         "FROM t",
			         buf, sizeof(buf));
			if (strcmp(buf, "50 oldold") != 0 &&
			    strcmp(buf, "400 newnew") != 0) {
				n++;
				dprintf(2, "reader saw \"%s\"\n", buf);
			}
			seen++;
		}
		dprintf(p[1], "%ld %ld\n", n, seen);
		_exit(0);
	}
	close(p[1]);
	for (i = 0; i < 40; i++) {
		memset(&res, 0, sizeof(res));
		dbr_sqlite.restore(&fake_d, i % 2 ? snap_old : snap_new, &res);
		ck_assert_msg(res.rc == 0, "%s", res.why);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_gt(read(p[0], buf, sizeof(buf) - 1), 0);
	close(p[0]);
	long seen = 0;
	ck_assert_int_eq(sscanf(buf, "%ld %ld", &bad, &seen), 2);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_gt(seen, 10);
	ck_assert_int_eq(sql_int(target, "SELECT count(*) FROM t"), 50);
}
END_TEST

START_TEST(sqlite_bad_restore_keeps_old)
{
	char *snap_old, *bad, *target, path[700], why[HS_ERRMSG_MAX];
	struct dbr_result res;
	struct stat st;
	DIR *d;
	struct dirent *de;
	int fd;

	snap_old = snap_make("old", "xcatdb.sqlite", 50, "old");
	fake(30, "/etc/xcat/xcatdb.sqlite", NULL);
	memset(&res, 0, sizeof(res));
	dbr_sqlite.restore(&fake_d, snap_old, &res);
	ck_assert_int_eq(res.rc, 0);
	target = tpath("root/etc/xcat/xcatdb.sqlite");
	/* A snapshot whose file is not a database, though its manifest
	 * matches: the copy fails SQLite's own check. */
	bad = snap_make("bad", "xcatdb.sqlite", 400, "new");
	snprintf(path, sizeof(path), "%s/xcatdb.sqlite", bad);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(truncate(path, st.st_size / 2), 0);
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "garbage!", 8, 0), 8);
	close(fd);
	fd = open_dir(bad);
	ck_assert_int_eq(dbr_manifest_make(fd, &mf, why, sizeof(why)), 0);
	mf.generation = 2;
	ck_assert_int_eq(dbr_manifest_write(fd, &mf), 0);
	close(fd);
	memset(&res, 0, sizeof(res));
	dbr_sqlite.restore(&fake_d, bad, &res);
	ck_assert_int_lt(res.rc, 0);
	ck_assert_msg(strstr(res.why, "xcatdb.sqlite: ") == res.why, "%s",
	              res.why);
	ck_assert_int_eq(sql_int(target, "SELECT count(*) FROM t"), 50);
	/* No temporary left behind. */
	ck_assert_ptr_nonnull(d = opendir(tpath("root/etc/xcat")));
	while ((de = readdir(d)) != NULL)
		ck_assert_msg(de->d_name[0] != '.' ||
		                  strcmp(de->d_name, ".") == 0 ||
		                  strcmp(de->d_name, "..") == 0,
		              "left %s", de->d_name);
	closedir(d);
	/* A snapshot that lost a file: refused, the old one stays. */
	unlink(path);
	dbr_sqlite.restore(&fake_d, bad, &res);
	ck_assert_int_lt(res.rc, 0);
	ck_assert_msg(strstr(res.why, "No such file") != NULL, "%s", res.why);
	ck_assert_int_eq(sql_int(target, "SELECT count(*) FROM t"), 50);
}
END_TEST

/* --------------------------------------------------------------- manager */

#define FP                                                                     \
	"sha256:00112233445566778899aabbccddeeff"                              \
	"00112233445566778899aabbccddeeff"

/* A node `name` with one sqlite database; `extra`: more of its keys. */
static struct hs_conf *
conf_make_x(const char *name, const char *role, const char *restore,
            const char *dbpath, const char *extra)
{
	char text[2048], err[HS_ERRMSG_MAX] = "", *state, *path, root[600];
	struct hs_conf *c = NULL;

	/* The primary's copy of a path is the path (its test files); the
	 * standby's is below tmpdir/NAME.root. */
	if (strcmp(role, "primary") == 0)
		snprintf(root, sizeof(root), "/");
	else
		snprintf(root, sizeof(root), "%s/%s", tmpdir, name);
	state = tpath("%s.state", name);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	snprintf(text, sizeof(text),
	         "[node]\nname = %s\nrole = %s\nstate_dir = %s\n"
	         "listen = 127.0.0.1:7873\npeer = 127.0.0.1:7874\n"
	         "cert = /etc/hamnsync/node.crt\nkey = /etc/hamnsync/node.key\n"
	         "peer_fingerprint = " FP "\ntarget_root = %s%s\n"
	         "\n[path install]\nsource = /install\n"
	         "\n[database xcatdb]\ntype = sqlite\npath = %s\n"
	         "restore = %s\n%s",
	         name, role, state, root, strcmp(root, "/") ? ".root" : "",
	         dbpath, restore, extra);
	path = tpath("%s.conf", name);
	write_file(path, text);
	ck_assert_msg(hs_conf_load(path, &c, err, sizeof(err)) == 0, "%s", err);
	return c;
}

static struct hs_conf *
conf_make(const char *name, const char *role, const char *restore,
          const char *dbpath)
{
	return conf_make_x(name, role, restore, dbpath,
	                   "interval = 0\ntimeout = 30s\n");
}

/* Tick r until cond holds (at most `limit` seconds). */
#define TICK_UNTIL(r, cond, limit)                                             \
	do {                                                                   \
		double t0_ = now_s();                                          \
		while (!(cond)) {                                              \
			ck_assert_msg(now_s() - t0_ < (limit),                 \
			              "timed out waiting for " #cond);         \
			dbr_tick(r);                                           \
			sleep_ms(10);                                          \
		}                                                              \
	} while (0)

static void
tick_for(struct dbr *r, double secs)
{
	double t0 = now_s();

	while (now_s() - t0 < secs) {
		dbr_tick(r);
		sleep_ms(10);
	}
}

static struct dbr_status st;

static uint64_t
dumps_of(struct dbr *r)
{
	dbr_status(r, 0, &st);
	return st.dumps;
}

static uint64_t
restores_of(struct dbr *r)
{
	dbr_status(r, 0, &st);
	return st.restores;
}

/* Copy the files of src into dst (cp -p). */
static void
copy_dir(const char *src, const char *dst)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp -p '%s'/* '%s'/", dst,
	         src, dst);
	ck_assert_int_eq(system(cmd), 0);
}

static long long
count_rows(const char *path)
{
	return sql_int(path, "SELECT count(*) FROM t");
}

START_TEST(manager_sqlite_primary_and_standby)
{
	char *xcat = tpath("xcat"), why[HS_ERRMSG_MAX];
	char primdb[600], stdbdb[600], goodman[600], path[700];
	struct hs_conf *pc, *sc;
	struct stat sb, sb2;
	struct dbr *p, *s;
	int fd;

	ck_assert_int_eq(mkdir(xcat, 0755), 0);
	sql_make(tpath("xcat/site.sqlite"), 5, "a");
	sql_make(tpath("xcat/nodelist.sqlite"), 2, "b");
	sleep_ms(100);
	pc = conf_make("mn1", "primary", "on-promote", xcat);
	ck_assert_int_eq(dbr_open(pc, DBR_PRIMARY, &p), 0);
	ck_assert_int_eq(dbr_count(p), 1);
	dbr_status(p, 0, &st);
	ck_assert_str_eq(st.state, "waiting");
	ck_assert_str_eq(st.type, "sqlite");
	ck_assert(st.last_snapshot < 0);
	TICK_UNTIL(p, dumps_of(p) == 1, 20);
	/* Idle: many probes, no dump. */
	tick_for(p, 1.5);
	ck_assert_int_eq(dumps_of(p), 1);
	ck_assert_str_eq(st.state, "ok");
	ck_assert_int_gt(st.bytes, 0);
	ck_assert_str_eq(st.error, "");
	ck_assert_int_le(dbr_next_ms(p), 100);
	/* One write, one dump. */
	snprintf(path, sizeof(path), "%s/mn1.state/db/xcatdb/site.sqlite",
	         tmpdir);
	ck_assert_int_eq(stat(path, &sb), 0);
	sql_make(tpath("xcat/nodelist.sqlite"), 1, "c");
	sleep_ms(100);
	TICK_UNTIL(p, dumps_of(p) == 2, 20);
	tick_for(p, 1.0);
	ck_assert_int_eq(dumps_of(p), 2);
	snprintf(primdb, sizeof(primdb), "%s/mn1.state/db/xcatdb", tmpdir);
	fd = open_dir(primdb);
	ck_assert_int_eq(dbr_manifest_read(fd, &mf, why, sizeof(why)), 0);
	ck_assert_int_eq(dbr_manifest_check(fd, &mf, why, sizeof(why)), 0);
	close(fd);
	ck_assert_int_eq(mf.generation, 2);
	ck_assert_int_eq(mf.n, 2);
	ck_assert_str_eq(mf.files[0].name, "nodelist.sqlite");
	ck_assert_str_eq(mf.files[1].name, "site.sqlite");
	snprintf(path, sizeof(path), "%s/nodelist.sqlite", primdb);
	ck_assert_int_eq(count_rows(path), 3);
	/* The table that did not change was not rewritten. */
	snprintf(path, sizeof(path), "%s/site.sqlite", primdb);
	ck_assert_int_eq(stat(path, &sb2), 0);
	ck_assert_int_eq(sb.st_ino, sb2.st_ino);
	ck_assert_int_eq(sb.st_mtim.tv_nsec, sb2.st_mtim.tv_nsec);
	/* The dump folder is outside the replicated one, and gone. */
	ck_assert_int_eq(access(tpath("mn1.state/db/.xcatdb.tmp"), F_OK), -1);

	/* The standby receives the folder; continuous restores it. */
	sc = conf_make("mn2", "standby", "continuous", "/etc/xcat");
	ck_assert_int_eq(dbr_open(sc, DBR_STANDBY, &s), 0);
	ck_assert_int_eq(dbr_ready(s, 0, why, sizeof(why)), 0);
	ck_assert_str_eq(why, "database xcatdb: no good snapshot yet");
	snprintf(stdbdb, sizeof(stdbdb), "%s/mn2.state/db/xcatdb", tmpdir);
	copy_dir(primdb, stdbdb);
	dbr_touched(s, "db:xcatdb");
	TICK_UNTIL(s, restores_of(s) == 1, 20);
	ck_assert_str_eq(st.state, "ok");
	ck_assert_int_eq(dbr_ready(s, 0, why, sizeof(why)), 1);
	snprintf(goodman, sizeof(goodman), "%s/mn2.state/db/xcatdb.good",
	         tmpdir);
	fd = open_dir(goodman);
	ck_assert_int_eq(dbr_manifest_read(fd, &mf2, why, sizeof(why)), 0);
	ck_assert_int_eq(dbr_manifest_check(fd, &mf2, why, sizeof(why)), 0);
	close(fd);
	ck_assert_int_eq(mf2.generation, 2);
	ck_assert_int_eq(count_rows(tpath("mn2.root/etc/xcat/nodelist.sqlite")),
	                 3);
	ck_assert_int_eq(count_rows(tpath("mn2.root/etc/xcat/site.sqlite")), 5);
	tick_for(s, 0.5);
	ck_assert_int_eq(restores_of(s), 1);

	/* A third snapshot arrives with a data file cut short. */
	sql_make(tpath("xcat/site.sqlite"), 1, "d");
	sleep_ms(100);
	TICK_UNTIL(p, dumps_of(p) == 3, 20);
	copy_dir(primdb, stdbdb);
	snprintf(path, sizeof(path), "%s/site.sqlite", stdbdb);
	ck_assert_int_eq(truncate(path, 1024), 0);
	dbr_touched(s, "db:xcatdb");
	dbr_tick(s);
	tick_for(s, 0.5);
	dbr_status(s, 0, &st);
	ck_assert_str_eq(st.state, "waiting");
	TICK_UNTIL(s, strcmp((dbr_status(s, 0, &st), st.state), "error") == 0,
	           10);
	ck_assert_msg(strstr(st.error, "site.sqlite: 1024 bytes, the manifest "
	                               "says") != NULL,
	              "%s", st.error);
	ck_assert_msg(strstr(st.error, "keeping the last good one") != NULL,
	              "%s", st.error);
	/* The last good one is kept, and still ready for promote. */
	ck_assert_int_eq(dbr_ready(s, 0, why, sizeof(why)), 1);
	fd = open_dir(goodman);
	ck_assert_int_eq(dbr_manifest_read(fd, &mf2, why, sizeof(why)), 0);
	ck_assert_int_eq(dbr_manifest_check(fd, &mf2, why, sizeof(why)), 0);
	close(fd);
	ck_assert_int_eq(mf2.generation, 2);
	ck_assert_int_eq(restores_of(s), 1);
	ck_assert_int_eq(count_rows(tpath("mn2.root/etc/xcat/site.sqlite")), 5);
	/* The whole file arrives: good again, restored. */
	copy_dir(primdb, stdbdb);
	dbr_touched(s, "db:xcatdb");
	TICK_UNTIL(s, restores_of(s) == 2, 20);
	ck_assert_str_eq(st.state, "ok");
	ck_assert_str_eq(st.error, "");
	ck_assert_int_eq(count_rows(tpath("mn2.root/etc/xcat/site.sqlite")), 6);
	dbr_free(s);
	/* A restart does not restore the same snapshot again. */
	ck_assert_int_eq(dbr_open(sc, DBR_STANDBY, &s), 0);
	tick_for(s, 0.5);
	ck_assert_int_eq(restores_of(s), 0);
	ck_assert_str_eq(st.state, "ok");
	ck_assert_int_eq(dbr_promote(s, 0, why, sizeof(why)), 0);
	ck_assert_int_eq(restores_of(s), 0);
	dbr_free(s);
	dbr_free(p);
	hs_conf_free(sc);
	hs_conf_free(pc);
}
END_TEST

START_TEST(manager_promote_restores)
{
	char *xcat = tpath("xcat.sqlite"), why[HS_ERRMSG_MAX];
	char primdb[600], stdbdb[600];
	struct hs_conf *pc, *sc;
	struct dbr *p, *s;

	sql_make(xcat, 7, "a");
	sleep_ms(100);
	pc = conf_make("mn1", "primary", "on-promote", xcat);
	sc = conf_make("mn2", "standby", "on-promote", "/etc/xcat/xcat.sqlite");
	ck_assert_int_eq(dbr_open(pc, DBR_PRIMARY, &p), 0);
	ck_assert_int_eq(dbr_open(sc, DBR_STANDBY, &s), 0);
	/* Nothing to restore yet: promote says so. */
	ck_assert_int_lt(dbr_promote(s, 0, why, sizeof(why)), 0);
	ck_assert_str_eq(why, "database xcatdb: no good snapshot to restore");
	TICK_UNTIL(p, dumps_of(p) == 1, 20);
	snprintf(primdb, sizeof(primdb), "%s/mn1.state/db/xcatdb", tmpdir);
	snprintf(stdbdb, sizeof(stdbdb), "%s/mn2.state/db/xcatdb", tmpdir);
	copy_dir(primdb, stdbdb);
	dbr_touched(s, "db:xcatdb");
	TICK_UNTIL(s, (dbr_status(s, 0, &st), strcmp(st.state, "ok") == 0), 20);
	/* on-promote: the snapshot waits. */
	tick_for(s, 0.3);
	ck_assert_int_eq(restores_of(s), 0);
	ck_assert_int_eq(access(tpath("mn2.root/etc/xcat/xcat.sqlite"), F_OK),
	                 -1);
	ck_assert_int_eq(dbr_promote(s, 0, why, sizeof(why)), 0);
	ck_assert_int_eq(restores_of(s), 1);
	ck_assert_int_eq(count_rows(tpath("mn2.root/etc/xcat/xcat.sqlite")), 7);
	/* Again: already restored, not again. */
	ck_assert_int_eq(dbr_promote(s, 0, why, sizeof(why)), 0);
	ck_assert_int_eq(restores_of(s), 1);
	dbr_free(s);
	dbr_free(p);
	hs_conf_free(sc);
	hs_conf_free(pc);
}
END_TEST

START_TEST(manager_dump_failure_is_reported)
{
	char *xcat = tpath("gone.sqlite");
	struct hs_conf *pc;
	struct dbr *p;

	pc = conf_make("mn1", "primary", "on-promote", xcat);
	ck_assert_int_eq(dbr_open(pc, DBR_PRIMARY, &p), 0);
	TICK_UNTIL(p, (dbr_status(p, 0, &st), strcmp(st.state, "error") == 0),
	           20);
	ck_assert_msg(strstr(st.error, "gone.sqlite: No such file") != NULL,
	              "%s", st.error);
	ck_assert_int_eq(st.dumps, 0);
	dbr_free(p);
	hs_conf_free(pc);
}
END_TEST

/*
 * A writer that holds the database's exclusive lock for `ms` (rollback
 * mode: readers wait too) after one more commit.
 */
static pid_t
locker_start(const char *path, long ms)
{
	pid_t pid;

	if ((pid = fork()) == 0) {
		sqlite3 *db;

		if (sqlite3_open(path, &db) != SQLITE_OK ||
		    sqlite3_exec(db, "INSERT INTO t(v) VALUES('late')", NULL,
		                 NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) !=
		        SQLITE_OK)
			_exit(2);
		sleep_ms(ms);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
		_exit(0);
	}
	ck_assert_int_gt(pid, 0);
	return pid;
}

static void
locker_wait(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
}

/* A dump held up by a writer's lock: stale past 3 x interval, then ok. */
START_TEST(manager_stale_while_dump_waits)
{
	char *xcat = tpath("xcat.sqlite");
	struct hs_conf *pc;
	struct dbr *p;
	pid_t pid;

	sql_make(xcat, 3, "a");
	sleep_ms(100);
	pc = conf_make_x("mn1", "primary", "on-promote", xcat,
	                 "interval = 1s\ntimeout = 60s\n");
	ck_assert_int_eq(dbr_open(pc, DBR_PRIMARY, &p), 0);
	TICK_UNTIL(p, dumps_of(p) == 1, 20);
	pid = locker_start(xcat, 5000);
	TICK_UNTIL(p, (dbr_status(p, 0, &st), strcmp(st.state, "dumping") == 0),
	           10);
	/* The loop goes on while the dump waits: ticks return at once. */
	TICK_UNTIL(p, (dbr_status(p, 0, &st), strcmp(st.state, "stale") == 0),
	           10);
	ck_assert_int_eq(st.changed, 1);
	ck_assert_double_gt(st.age, 3.0);
	ck_assert_int_eq(st.dumps, 1);
	locker_wait(pid);
	TICK_UNTIL(p, dumps_of(p) == 2, 20);
	ck_assert_str_eq(st.state, "ok");
	ck_assert_int_eq(st.changed, 0);
	dbr_free(p);
	hs_conf_free(pc);
}
END_TEST

/*
 * switchover's drain: dbr_snapshot_now probes at once whatever the
 * interval, snapshots a database that changed, and its ticket is done
 * only then; an unchanged one is done without a dump; a failure is
 * named.
 */
START_TEST(manager_snapshot_now)
{
	char *xcat = tpath("xcat.sqlite"), why[HS_ERRMSG_MAX] = "";
	struct hs_conf *pc;
	struct dbr *p;
	uint64_t t;

	sql_make(xcat, 3, "a");
	sleep_ms(100);
	pc = conf_make_x("mn1", "primary", "on-promote", xcat,
	                 "interval = 1h\n");
	ck_assert_int_eq(dbr_open(pc, DBR_PRIMARY, &p), 0);
	TICK_UNTIL(p, dumps_of(p) == 1, 20);
	/* Changed: the next probe is an hour away, but asked for now. */
	sql_make(xcat, 1, "b");
	sleep_ms(100);
	t = dbr_snapshot_now(p);
	ck_assert_int_eq(dbr_snapshot_done(p, t, why, sizeof(why)), 0);
	ck_assert_int_eq(dbr_next_ms(p), 0);
	TICK_UNTIL(p, dbr_snapshot_done(p, t, why, sizeof(why)) == 1, 20);
	ck_assert_int_eq(dumps_of(p), 2);
	ck_assert_int_eq(st.changed, 0);
	/* Unchanged: done, no dump. */
	t = dbr_snapshot_now(p);
	TICK_UNTIL(p, dbr_snapshot_done(p, t, why, sizeof(why)) == 1, 20);
	ck_assert_int_eq(dumps_of(p), 2);
	/* Gone: the ticket ends with the database and the reason named. */
	ck_assert_int_eq(unlink(xcat), 0);
	t = dbr_snapshot_now(p);
	TICK_UNTIL(p, dbr_snapshot_done(p, t, why, sizeof(why)) != 0, 20);
	ck_assert_int_lt(dbr_snapshot_done(p, t, why, sizeof(why)), 0);
	ck_assert_msg(strstr(why, "database xcatdb: ") == why, "%s", why);
	dbr_free(p);
	hs_conf_free(pc);
}
END_TEST

/*
 * A probe whose child cannot even start ends its ticket too, with the
 * reason: switchover's drain must not wait out its step_timeout for it.
 */
START_TEST(manager_snapshot_now_no_child)
{
	char *xcat = tpath("xcat.sqlite"), why[HS_ERRMSG_MAX] = "";
	struct hs_conf *pc;
	struct rlimit was, low;
	struct dbr *p;
	uint64_t t;
	int fd, rc;

	sql_make(xcat, 3, "a");
	sleep_ms(100);
	pc = conf_make_x("mn1", "primary", "on-promote", xcat,
	                 "interval = 1h\n");
	ck_assert_int_eq(dbr_open(pc, DBR_PRIMARY, &p), 0);
	TICK_UNTIL(p, dumps_of(p) == 1, 20);
	/* No descriptor left: the job's pipe cannot be made. */
	ck_assert_int_ge(fd = dup(0), 0);
	close(fd);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &was), 0);
	low = was;
	low.rlim_cur = (rlim_t)fd;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	t = dbr_snapshot_now(p);
	for (int i = 0;
	     i < 100 && dbr_snapshot_done(p, t, why, sizeof(why)) == 0; i++) {
		dbr_tick(p);
		sleep_ms(10);
	}
	rc = dbr_snapshot_done(p, t, why, sizeof(why));
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &was), 0);
	ck_assert_int_lt(rc, 0);
	ck_assert_msg(strstr(why, "cannot start a child") != NULL, "%s", why);
	dbr_free(p);
	hs_conf_free(pc);
}
END_TEST

/* A dump that hangs is killed at the timeout, and says so. */
START_TEST(manager_dump_timeout)
{
	char *xcat = tpath("xcat.sqlite");
	struct hs_conf *pc;
	struct dbr *p;
	pid_t pid;
	double t0;

	sql_make(xcat, 3, "a");
	sleep_ms(100);
	pc = conf_make_x("mn1", "primary", "on-promote", xcat,
	                 "interval = 0\ntimeout = 1s\n");
	ck_assert_int_eq(dbr_open(pc, DBR_PRIMARY, &p), 0);
	TICK_UNTIL(p, dumps_of(p) == 1, 20);
	pid = locker_start(xcat, 3000);
	t0 = now_s();
	TICK_UNTIL(p, (dbr_status(p, 0, &st), strcmp(st.state, "error") == 0),
	           10);
	ck_assert_str_eq(st.error, "dump timed out after 1 s, killed");
	ck_assert_double_lt(now_s() - t0, 3.0);
	locker_wait(pid);
	/* The next probe dumps again, and the error clears. */
	TICK_UNTIL(p, dumps_of(p) == 2, 20);
	ck_assert_str_eq(st.error, "");
	dbr_free(p);
	hs_conf_free(pc);
}
END_TEST

/* ----------------------------------------------------------------- suite */

static Suite *
dbrepl_suite(void)
{
	Suite *s = suite_create("dbrepl");
	TCase *tc;

	tc = tcase_create("job");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, job_timeout_kills_group);
	tcase_add_test(tc, job_failing_command_says_why);
	tcase_add_test(tc, job_killed_child_is_reported);
	tcase_add_test(tc, job_kill_and_wait);
	tcase_add_test(tc, run_redirects_and_captures);
	tcase_add_test(tc, job_child_inherits_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("manifest");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, manifest_one_name);
	tcase_add_test(tc, manifest_round_trip);
	tcase_add_test(tc, manifest_check_finds_damage);
	tcase_add_test(tc, manifest_refuses_malformed);
	tcase_add_test(tc, manifest_every_cut_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("sqlite");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, sqlite_dump_under_writer_wal);
	tcase_add_test(tc, sqlite_dump_under_writer_rollback);
	tcase_add_test(tc, sqlite_mark_moves_only_on_write);
	tcase_add_test(tc, sqlite_restore_is_atomic);
	tcase_add_test(tc, sqlite_bad_restore_keeps_old);
	suite_add_tcase(s, tc);

	tc = tcase_create("manager");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, manager_sqlite_primary_and_standby);
	tcase_add_test(tc, manager_promote_restores);
	tcase_add_test(tc, manager_snapshot_now);
	tcase_add_test(tc, manager_snapshot_now_no_child);
	tcase_add_test(tc, manager_dump_failure_is_reported);
	tcase_add_test(tc, manager_stale_while_dump_waits);
	tcase_add_test(tc, manager_dump_timeout);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	hs_log_init("check_dbrepl", 1, HS_LOG_WARN);
	snprintf(basedir, sizeof(basedir), "/tmp/check_dbrepl.XXXXXX");
	if (mkdtemp(basedir) == NULL)
		return 1;
	sr = srunner_create(dbrepl_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	rm_tree(basedir);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
