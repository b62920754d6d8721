/*
 * check_failover.c - the failover library's parts that need no peer: the
 * persisted step list (steps.c: resume after a failure or a crash, the
 * dry run, a damaged state file) and the configured commands (run.c:
 * exit statuses, output, environment, timeouts that kill the group).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fo_int.h"
#include "idx.h"

static char dir[64];
static struct hs_conf conf;
static char out_path[128];
static FILE *out;

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_failover.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	memset(&conf, 0, sizeof(conf));
	conf.state_dir = dir;
	conf.failover.present = 1;
	conf.failover.step_timeout = 5;
	conf.failover.hostname = "mn1";
	snprintf(out_path, sizeof(out_path), "%s/out", dir);
	out = fopen(out_path, "w+");
	ck_assert_ptr_nonnull(out);
}

static void
teardown(void)
{
	fclose(out);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* What the steps wrote on `out` so far. */
static const char *
output(void)
{
	static char buf[8192];
	size_t n;

	fflush(out);
	rewind(out);
	n = fread(buf, 1, sizeof(buf) - 1, out);
	buf[n] = '\0';
	return buf;
}

static int
exists(const char *name)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/promote/%s", dir, name);
	return access(p, F_OK) == 0;
}

/* ---------------------------------------------------------------- steps */

struct trial {
	int runs[3];   /* how often each step ran */
	int fail_two;  /* step "two" fails while set */
	uint64_t seen; /* the epoch step "three" found */
};

static void
plan(struct fo_ctx *c, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len, "do a thing");
}

static int
step_one(struct fo_ctx *c, char *done, size_t dl, char *why, size_t wl)
{
	struct trial *t = c->arg;

	(void)why;
	(void)wl;
	t->runs[0]++;
	/* A value chosen once and kept: a resume must not choose again. */
	if (fo_var_u64(c, "epoch", 0) == 0)
		fo_var_set_u64(c, "epoch", 7 + (uint64_t)t->runs[0]);
	snprintf(done, dl, "epoch %llu",
	         (unsigned long long)fo_var_u64(c, "epoch", 0));
	return HS_OK;
}

static int
step_two(struct fo_ctx *c, char *done, size_t dl, char *why, size_t wl)
{
	struct trial *t = c->arg;

	(void)done;
	(void)dl;
	t->runs[1]++;
	if (t->fail_two) {
		snprintf(why, wl, "makedns -n: exit 3: no such zone");
		return -EIO;
	}
	return HS_OK;
}

static int
step_three(struct fo_ctx *c, char *done, size_t dl, char *why, size_t wl)
{
	struct trial *t = c->arg;

	(void)done;
	(void)dl;
	(void)why;
	(void)wl;
	t->runs[2]++;
	t->seen = fo_var_u64(c, "epoch", 0);
	return HS_OK;
}

static const struct fo_step steps[] = {
    {"one", plan, step_one},
    {"two", plan, step_two},
    {"three", plan, step_three},
};

static int
run_steps(struct trial *t, int dry)
{
	struct fo_opts o = {.dry_run = dry, .out = out};

	return fo_steps_run(&conf, "promote", steps, 3, &o, t);
}

START_TEST(steps_resume_after_failure)
{
	struct trial t = {.fail_two = 1};

	ck_assert_int_eq(run_steps(&t, 0), 1);
	ck_assert_int_eq(t.runs[0], 1);
	ck_assert_int_eq(t.runs[1], 1);
	ck_assert_int_eq(t.runs[2], 0);
	ck_assert_ptr_nonnull(strstr(output(), "promote: one: done in "));
	ck_assert_ptr_nonnull(strstr(output(), "s: epoch 8\n"));
	ck_assert_ptr_nonnull(strstr(output(), "promote: two: FAILED after "));
	ck_assert_ptr_nonnull(strstr(output(), "makedns -n: exit 3"));
	ck_assert_ptr_nonnull(
	    strstr(output(), "stopped at two; run it again to resume"));
	ck_assert(exists("promote.json"));

	/* Fixed and run again: one is not repeated, the epoch is kept. */
	t.fail_two = 0;
	ck_assert_int_eq(run_steps(&t, 0), 0);
	ck_assert_int_eq(t.runs[0], 1);
	ck_assert_int_eq(t.runs[1], 2);
	ck_assert_int_eq(t.runs[2], 1);
	ck_assert_uint_eq(t.seen, 8);
	ck_assert_ptr_nonnull(strstr(output(), "promote: one: done before\n"));
	ck_assert_ptr_nonnull(
	    strstr(output(), "promote: resuming at two (failed before)\n"));
	ck_assert(!exists("promote.json"));
	ck_assert(exists("promote-last.json"));

	/* Finished: the next run starts afresh. */
	ck_assert_int_eq(run_steps(&t, 0), 0);
	ck_assert_int_eq(t.runs[0], 2);
	ck_assert_uint_eq(t.seen, 9);
}
END_TEST

/* A crash inside a step: the state says it had begun, and it runs again. */
START_TEST(steps_resume_after_crash)
{
	struct trial t = {0};
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/promote", dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/promote/promote.json", dir);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"steps\": {\"one\": {\"state\": \"done\", \"seconds\": 0.1,"
	      " \"text\": \"\"}, \"two\": {\"state\": \"running\","
	      " \"seconds\": 0, \"text\": \"\"}}, \"vars\": {\"epoch\": 8}}\n",
	      f);
	fclose(f);
	ck_assert_int_eq(run_steps(&t, 0), 0);
	ck_assert_int_eq(t.runs[0], 0);
	ck_assert_int_eq(t.runs[1], 1);
	ck_assert_int_eq(t.runs[2], 1);
	ck_assert_uint_eq(t.seen, 8);
	ck_assert_ptr_nonnull(
	    strstr(output(), "resuming at two (interrupted before)"));
}
END_TEST

START_TEST(steps_dry_run)
{
	struct trial t = {0};

	ck_assert_int_eq(run_steps(&t, 1), 0);
	ck_assert_int_eq(t.runs[0] + t.runs[1] + t.runs[2], 0);
	ck_assert_ptr_nonnull(strstr(output(), "  1. one: do a thing\n"));
	ck_assert_ptr_nonnull(strstr(output(), "  3. three: do a thing\n"));
	ck_assert(!exists(""));
}
END_TEST

START_TEST(steps_damaged_state)
{
	struct trial t = {0};
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/promote", dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/promote/promote.json", dir);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"steps\": [", f);
	fclose(f);
	/* Nothing runs on a guess: a usage-class error naming the file. */
	ck_assert_int_eq(run_steps(&t, 0), 2);
	ck_assert_int_eq(t.runs[0] + t.runs[1] + t.runs[2], 0);
}
END_TEST

/* Another command holds the node's lock: nothing runs, nothing changes. */
START_TEST(steps_one_at_a_time)
{
	struct trial t = {0};
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/promote", dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/promote/lock", dir);
	fd = open(p, O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);
	ck_assert_int_eq(pwrite(fd, "rejoin 4242\n", 12, 0), 12);
	ck_assert_int_eq(run_steps(&t, 0), 1);
	ck_assert_int_eq(t.runs[0] + t.runs[1] + t.runs[2], 0);
	ck_assert(!exists("promote.json"));
	close(fd);
	/* Released: it runs. */
	ck_assert_int_eq(run_steps(&t, 0), 0);
	ck_assert_int_eq(t.runs[2], 1);
}
END_TEST

/* --------------------------------------------------------------- daemon */

/* Hold state_dir/hamnsync.pid as a daemon does; the fd keeps the lock. */
static int
hold_pidfile(void)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/hamnsync.pid", dir);
	fd = open(p, O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);
	ck_assert_int_eq(pwrite(fd, "4242\n", 5, 0), 5);
	return fd;
}

/* rejoin's stop step, run alone: its return, `done` or `why` in buf. */
static int
rejoin_stop(char *buf, size_t len)
{
	struct fo_opts o = {.out = out};
	struct fo_ctx c = {.conf = &conf, .opts = &o, .cmd = "rejoin"};
	char done[1024] = "", why[1024] = "";
	int rc;

	ck_assert_str_eq(fo_rejoin_steps[1].name, "stop");
	c.vars = json_object();
	rc = fo_rejoin_steps[1].run(&c, done, sizeof(done), why, sizeof(why));
	json_decref(c.vars);
	snprintf(buf, len, "%s", rc < 0 ? why : done);
	return rc;
}

/*
 * A daemon that holds the pid file and does not answer is running, not
 * absent: rejoin must not say "no daemon runs" and go on while a
 * primary it never fenced may still send.
 */
START_TEST(ask_silent_daemon_is_no_absence)
{
	char said[1024];
	json_t *r = NULL;
	int fd;

	ck_assert_int_eq(fo_ask(&conf, "fence", &r, said, sizeof(said)), 0);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(rejoin_stop(said, sizeof(said)), HS_OK);
	ck_assert_ptr_nonnull(strstr(said, "no daemon runs"));
	fd = hold_pidfile();
	ck_assert_int_lt(fo_ask(&conf, "fence", &r, said, sizeof(said)), 0);
	ck_assert_ptr_null(r);
	ck_assert_int_lt(rejoin_stop(said, sizeof(said)), 0);
	ck_assert_ptr_nonnull(
	    strstr(said, "(pid 4242) did not answer `fence`"));
	close(fd);
}
END_TEST

/* Write state_dir/promote/NAME.json. */
static void
put_state(const char *name, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/promote", dir);
	ck_assert(mkdir(p, 0700) == 0 || errno == EEXIST);
	snprintf(p, sizeof(p), "%s/promote/%s.json", dir, name);
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fputs(text, f);
	fclose(f);
}

/*
 * A command has begun when a step of it is done; a refused preflight
 * alone is not a begun promote, and a primary with one left behind is
 * already the primary, as rejoin and switchover already judged.
 */
START_TEST(steps_begun_means_a_step_done)
{
	struct fo_opts o = {.out = out};

	ck_assert_int_eq(fo_steps_begun(&conf, "promote"), 0);
	put_state("promote", "{\"steps\": {\"preflight\": "
	                     "{\"state\": \"failed\"}}, \"vars\": {}}");
	ck_assert_int_eq(fo_steps_begun(&conf, "promote"), 0);
	conf.role = HS_ROLE_PRIMARY;
	ck_assert_int_eq(fo_promote(&conf, &o), 0);
	ck_assert_ptr_nonnull(strstr(output(), "already the primary"));
	put_state("rejoin", "{\"steps\": {\"preflight\": "
	                    "{\"state\": \"done\"}}, \"vars\": {}}");
	ck_assert_int_eq(fo_steps_begun(&conf, "rejoin"), 1);
	/* Unreadable: begun, so that the run says what is wrong with it. */
	put_state("switchover", "{not json");
	ck_assert_int_eq(fo_steps_begun(&conf, "switchover"), 1);
}
END_TEST

/* ------------------------------------------------------------- commands */

static struct hs_strlist
cmds(char **v, size_t n)
{
	struct hs_strlist l = {v, n};

	return l;
}

START_TEST(run_ok_and_env)
{
	char cmd[512], p[256], buf[256] = "", why[512] = "";
	char *v[1] = {cmd};
	struct hs_strlist l = cmds(v, 1);
	FILE *f;

	snprintf(p, sizeof(p), "%s/env", dir);
	snprintf(cmd, sizeof(cmd),
	         "echo \"$HAMNSYNC_STEP $HAMNSYNC_EPOCH $HAMNSYNC_ROLE "
	         "$HAMNSYNC_HOSTNAME\" > %s",
	         p);
	ck_assert_int_eq(fo_run_cmds(&conf, "regenerate", &l, 4,
	                             HS_ROLE_PRIMARY, why, sizeof(why)),
	                 HS_OK);
	f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, "regenerate 4 primary mn1\n");
}
END_TEST

START_TEST(run_stops_at_failure)
{
	char marker[256], second[512], why[512] = "";
	char *v[2] = {"echo starting; echo 'no such zone' >&2; exit 3", second};
	struct hs_strlist l = cmds(v, 2);

	snprintf(marker, sizeof(marker), "%s/second-ran", dir);
	snprintf(second, sizeof(second), "touch %s", marker);
	ck_assert_int_eq(fo_run_cmds(&conf, "regenerate", &l, 1,
	                             HS_ROLE_PRIMARY, why, sizeof(why)),
	                 -EIO);
	ck_assert_ptr_nonnull(strstr(why, ": exit 3: no such zone"));
	ck_assert_int_eq(access(marker, F_OK), -1);
}
END_TEST

/* Gone, or a zombie waiting for whoever inherited it to reap it. */
static int
dead(pid_t pid)
{
	char p[64], buf[256] = "", *rp;
	FILE *f;

	if (kill(pid, 0) < 0)
		return 1;
	snprintf(p, sizeof(p), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(p, "r")) == NULL)
		return 1;
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	rp = strrchr(buf, ')');
	return rp != NULL && rp[1] == ' ' && rp[2] == 'Z';
}

/* A timeout kills the command and what it started. */
START_TEST(run_timeout_kills_group)
{
	char cmd[512], p[256], why[512] = "";
	char *v[1] = {cmd};
	struct hs_strlist l = cmds(v, 1);
	uint64_t t0 = hs_now_mono_ns();
	long pid = 0;
	FILE *f;

	conf.failover.step_timeout = 1;
	snprintf(p, sizeof(p), "%s/pid", dir);
	snprintf(cmd, sizeof(cmd), "sleep 60 & echo $! > %s; wait", p);
	ck_assert_int_eq(fo_run_cmds(&conf, "start", &l, 1, HS_ROLE_PRIMARY,
	                             why, sizeof(why)),
	                 HS_ETIMEOUT);
	ck_assert_ptr_nonnull(strstr(why, "timed out after 1 s, killed"));
	ck_assert_uint_lt(hs_now_mono_ns() - t0, 10 * 1000000000ull);
	f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	/* Killed with its group, at once. */
	for (int i = 0; i < 100 && !dead((pid_t)pid); i++)
		usleep(20000);
	ck_assert(dead((pid_t)pid));
}
END_TEST

/* A command that starts a daemon and exits returns at once, daemon left. */
START_TEST(run_daemon_left_running)
{
	char cmd[512], p[256], why[512] = "";
	char *v[1] = {cmd};
	struct hs_strlist l = cmds(v, 1);
	uint64_t t0 = hs_now_mono_ns();
	long pid = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/pid", dir);
	snprintf(cmd, sizeof(cmd), "sleep 30 & echo $! > %s", p);
	ck_assert_int_eq(fo_run_cmds(&conf, "start", &l, 1, HS_ROLE_PRIMARY,
	                             why, sizeof(why)),
	                 HS_OK);
	ck_assert_uint_lt(hs_now_mono_ns() - t0, 3 * 1000000000ull);
	f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	ck_assert_int_eq(kill((pid_t)pid, 0), 0);
	kill((pid_t)pid, SIGKILL);
}
END_TEST

/* --------------------------------------------------------------- aside */

static void
put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

static int
file_is(const char *path, const char *text)
{
	char buf[512] = "";
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strcmp(buf, text) == 0;
}

/* A former primary's config: one set, its source under the test folder. */
static struct hs_conf *
aside_conf(void)
{
	char path[256], text[1024], err[512] = "";
	struct hs_conf *c = NULL;

	snprintf(path, sizeof(path), "%s/src", dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/state", dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(text, sizeof(text),
	         "[node]\nname = mn1\nrole = primary\nstate_dir = %s/state\n"
	         "listen = 127.0.0.1:7873\npeer = 127.0.0.1:7874\n"
	         "cert = %s/node.crt\nkey = %s/node.key\n"
	         "peer_fingerprint = sha256:00112233445566778899aabbccddeeff"
	         "0123456789abcdeffedcba9876543210\n\n"
	         "[path etc]\nsource = %s/src\n",
	         dir, dir, dir, dir);
	snprintf(path, sizeof(path), "%s/hamnsync.conf", dir);
	put_file(path, text);
	ck_assert_msg(hs_conf_load(path, &c, err, sizeof(err)) == HS_OK, "%s",
	              err);
	return c;
}

/* The same path set aside twice (a resumed aside after the file came
 * back): the first copy is kept, the second gets a ".1" name. */
START_TEST(aside_keeps_both)
{
	char src[256], kept[512], p[600], done[512], why[512] = "";
	struct hs_conf *c = aside_conf();

	snprintf(src, sizeof(src), "%s/src/site.conf", dir);
	snprintf(kept, sizeof(kept), "%s/state/rejoin-2%s", dir, src);
	put_file(src, "first\n");
	ck_assert_msg(
	    fo_aside(c, 2, out, done, sizeof(done), why, sizeof(why)) == HS_OK,
	    "%s", why);
	ck_assert(file_is(kept, "first\n"));
	ck_assert_int_ne(access(src, F_OK), 0);
	put_file(src, "second\n");
	ck_assert_msg(
	    fo_aside(c, 2, out, done, sizeof(done), why, sizeof(why)) == HS_OK,
	    "%s", why);
	ck_assert(file_is(kept, "first\n"));
	snprintf(p, sizeof(p), "%s.1", kept);
	ck_assert(file_is(p, "second\n"));
	ck_assert_int_ne(access(src, F_OK), 0);
	ck_assert_ptr_nonnull(strstr(output(), "/site.conf.1\n"));
	snprintf(p, sizeof(p), "%s/state/rejoin-2/LIST", dir);
	snprintf(kept, sizeof(kept), "%s/src/site.conf\n%s/src/site.conf.1\n",
	         dir, dir);
	ck_assert_msg(file_is(p, kept), "%s", output());
	hs_conf_free(c);
}
END_TEST

/* ------------------------------------------------------------- identity */

/* takeover_command: echoes HAMNSYNC_EPOCH into dir/epoch. */
static void
identity_by_command(char *cmd, size_t len, char **v)
{
	snprintf(cmd, len, "echo $HAMNSYNC_EPOCH > %s/epoch", dir);
	v[0] = cmd;
	conf.failover.takeover_command.v = v;
	conf.failover.takeover_command.n = 1;
}

START_TEST(identity_command_told_epoch)
{
	char cmd[256], p[256], buf[64] = "", done[512], why[512] = "";
	char *v[1];
	struct idx_node n = {.role = HS_ROLE_PRIMARY, .epoch = 5};
	FILE *f;

	identity_by_command(cmd, sizeof(cmd), v);
	ck_assert_int_eq(fo_node_put(&conf, &n, why, sizeof(why)), HS_OK);
	ck_assert_int_eq(
	    fo_identity_take(&conf, done, sizeof(done), why, sizeof(why)),
	    HS_OK);
	snprintf(p, sizeof(p), "%s/epoch", dir);
	ck_assert_ptr_nonnull(f = fopen(p, "r"));
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, "5\n");
}
END_TEST

/* An index that cannot be read stops the step, named; no command runs
 * told epoch 0. */
START_TEST(identity_unreadable_index)
{
	char cmd[256], p[256], done[512], why[512] = "";
	char *v[1];
	FILE *f;
	int i;

	identity_by_command(cmd, sizeof(cmd), v);
	snprintf(p, sizeof(p), "%s/index", dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/index/data.mdb", dir);
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	for (i = 0; i < 4096; i++)
		fputs("garbage!", f);
	fclose(f);
	ck_assert_int_lt(
	    fo_identity_take(&conf, done, sizeof(done), why, sizeof(why)), 0);
	ck_assert_msg(strstr(why, "/index: node state: ") != NULL, "why: %s",
	              why);
	snprintf(p, sizeof(p), "%s/epoch", dir);
	ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

static Suite *
failover_suite(void)
{
	Suite *s = suite_create("failover");
	TCase *tc;

	tc = tcase_create("steps");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, steps_resume_after_failure);
	tcase_add_test(tc, steps_resume_after_crash);
	tcase_add_test(tc, steps_dry_run);
	tcase_add_test(tc, steps_damaged_state);
	tcase_add_test(tc, steps_one_at_a_time);
	tcase_add_test(tc, steps_begun_means_a_step_done);
	suite_add_tcase(s, tc);

	tc = tcase_create("daemon");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ask_silent_daemon_is_no_absence);
	suite_add_tcase(s, tc);

	tc = tcase_create("commands");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, run_ok_and_env);
	tcase_add_test(tc, run_stops_at_failure);
	tcase_add_test(tc, run_timeout_kills_group);
	tcase_add_test(tc, run_daemon_left_running);
	suite_add_tcase(s, tc);

	tc = tcase_create("aside");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, aside_keeps_both);
	suite_add_tcase(s, tc);

	tc = tcase_create("identity");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, identity_command_told_epoch);
	tcase_add_test(tc, identity_unreadable_index);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(failover_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
