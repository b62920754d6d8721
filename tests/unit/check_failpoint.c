/* check_failpoint.c - HAMNSYNC_FAILPOINTS: the parser, the hit counts,
 * the actions (test builds only: HS_FAILPOINTS). */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define HITS_MAX 6

/*
 * A spec that parses, and what its failpoint `name` then returns on each
 * of its first hits (0, or -errno; no crash here).
 */
struct good_case {
	const char *spec;
	const char *name;
	int want[HITS_MAX];
};

static const struct good_case good_cases[] = {
    {"apply.before_write=err(EIO)",
     "apply.before_write",
     {-EIO, -EIO, -EIO, -EIO, -EIO, -EIO}},
    {"apply.before_rename=err(ENOSPC)",
     "apply.before_rename",
     {-ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC}},
    {"apply.before_write=1*err(ENOSPC)",
     "apply.before_write",
     {-ENOSPC, 0, 0, 0, 0, 0}},
    {"apply.before_write=err(EIO)@3",
     "apply.before_write",
     {0, 0, -EIO, -EIO, -EIO, -EIO}},
    {"apply.before_write=1*err(EIO)@3",
     "apply.before_write",
     {0, 0, -EIO, 0, 0, 0}},
    {"apply.before_write=2*err(EDQUOT)@2",
     "apply.before_write",
     {0, -EDQUOT, -EDQUOT, 0, 0, 0}},
    {"apply.before_write=sleep(0)", "apply.before_write", {0, 0, 0, 0, 0, 0}},
    /* several at once: each its own */
    {"express.send=1*crash,primary.index_commit=err(EIO)",
     "primary.index_commit",
     {-EIO, -EIO, -EIO, -EIO, -EIO, -EIO}},
    {"primary.index_commit=1*err(EIO),express.ack=err(ENOSPC)@2",
     "express.ack",
     {0, -ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC}},
    /* a failpoint not named is not armed */
    {"apply.before_write=err(EIO)", "apply.after_write", {0, 0, 0, 0, 0, 0}},
    /* empty: nothing armed */
    {"", "apply.before_write", {0, 0, 0, 0, 0, 0}},
};

START_TEST(good_table)
{
	const struct good_case *tc = &good_cases[_i];
	char err[HS_ERRMSG_MAX] = "";
	int k, rc;

	rc = hs_fp_arm(tc->spec, err, sizeof(err));
	ck_assert_msg(rc == HS_OK, "'%s': refused: %s", tc->spec, err);
	for (k = 0; k < HITS_MAX; k++) {
		rc = hs_fp_hit(tc->name);
		ck_assert_msg(rc == tc->want[k],
		              "'%s': hit %d of %s: %d, want %d", tc->spec,
		              k + 1, tc->name, rc, tc->want[k]);
	}
	hs_fp_arm("", err, sizeof(err));
}
END_TEST

/* A spec refused, and a word its one-line error must name. */
struct bad_case {
	const char *spec;
	const char *names;
};

static const struct bad_case bad_cases[] = {
    {"nosuch=crash", "unknown failpoint \"nosuch\""},
    {"apply.before=crash", "unknown failpoint \"apply.before\""},
    {"APPLY.BEFORE_WRITE=crash", "unknown failpoint"},
    {"apply.before_write", "not NAME=ACTION"},
    {"=crash", "unknown failpoint \"\""},
    {"apply.before_write=", "bad action \"\""},
    {"apply.before_write=explode", "bad action \"explode\""},
    {"apply.before_write=crash()", "bad action \"crash()\""},
    {"apply.before_write=err", "bad action \"err\""},
    {"apply.before_write=err()", "unknown errno name"},
    {"apply.before_write=err(EFOO)", "unknown errno name"},
    {"apply.before_write=err(eio)", "unknown errno name"},
    {"apply.before_write=err(EIO", "bad action \"err(EIO\""},
    {"apply.before_write=sleep()", "milliseconds"},
    {"apply.before_write=sleep(abc)", "milliseconds"},
    {"apply.before_write=sleep(-1)", "milliseconds"},
    {"apply.before_write=sleep(600001)", "milliseconds"},
    {"apply.before_write=0*crash", "count before '*'"},
    {"apply.before_write=x*crash", "count before '*'"},
    {"apply.before_write=*crash", "count before '*'"},
    {"apply.before_write=crash@0", "hit after '@'"},
    {"apply.before_write=crash@", "hit after '@'"},
    {"apply.before_write=crash@x", "hit after '@'"},
    {"apply.before_write=1*crash,", "empty item"},
    {",apply.before_write=crash", "empty item"},
    {"apply.before_write=crash,,express.ack=crash", "empty item"},
    {"apply.before_write=crash,apply.before_write=err(EIO)",
     "apply.before_write is named twice"},
    {"apply.before_write=crash,nosuch=err(EIO)", "\"nosuch\""},
};

START_TEST(bad_table)
{
	const struct bad_case *tc = &bad_cases[_i];
	char err[HS_ERRMSG_MAX] = "";
	int rc;

	/* A refused spec arms nothing: not even its good part. */
	hs_fp_arm("", err, sizeof(err));
	rc = hs_fp_arm(tc->spec, err, sizeof(err));
	ck_assert_msg(rc == HS_ECONFIG, "'%s': rc %d, want HS_ECONFIG",
	              tc->spec, rc);
	ck_assert_msg(strstr(err, tc->names) != NULL,
	              "'%s': error \"%s\" does not say \"%s\"", tc->spec, err,
	              tc->names);
	ck_assert_msg(strchr(err, '\n') == NULL, "'%s': error of two lines",
	              tc->spec);
	ck_assert_int_eq(hs_fp_hit("apply.before_write"), 0);
}
END_TEST

START_TEST(bad_too_long)
{
	char spec[HS_FP_SPEC_MAX + 64], err[HS_ERRMSG_MAX] = "";
	size_t n = 0;

	while (n + 30 < sizeof(spec))
		n += (size_t)snprintf(spec + n, sizeof(spec) - n, "%s",
		                      "apply.before_write=crash,");
	ck_assert_int_eq(hs_fp_arm(spec, err, sizeof(err)), HS_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "longer than"));
}
END_TEST

/* A refused spec changes nothing: what was armed before stays armed. */
START_TEST(bad_keeps_previous)
{
	char err[HS_ERRMSG_MAX];

	ck_assert_int_eq(hs_fp_arm("express.ack=err(EIO)", err, sizeof(err)),
	                 HS_OK);
	ck_assert_int_eq(hs_fp_arm("express.ack=boom", err, sizeof(err)),
	                 HS_ECONFIG);
	ck_assert_int_eq(hs_fp_hit("express.ack"), -EIO);
	ck_assert_int_eq(hs_fp_arm("", err, sizeof(err)), HS_OK);
	ck_assert_int_eq(hs_fp_hit("express.ack"), 0);
}
END_TEST

/* The system-call form: -1 and errno. */
START_TEST(hit_sys)
{
	char err[HS_ERRMSG_MAX];

	ck_assert_int_eq(
	    hs_fp_arm("apply.before_delete=1*err(ENOSPC)", err, sizeof(err)),
	    HS_OK);
	errno = 0;
	ck_assert_int_eq(hs_fp_hit_sys("apply.before_delete"), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(hs_fp_hit_sys("apply.before_delete"), 0);
}
END_TEST

/* sleep(MS) waits at least MS and then lets the call go on. */
START_TEST(hit_sleep)
{
	char err[HS_ERRMSG_MAX];
	uint64_t t0;

	ck_assert_int_eq(
	    hs_fp_arm("express.send=1*sleep(50)", err, sizeof(err)), HS_OK);
	t0 = hs_now_mono_ns();
	ck_assert_int_eq(hs_fp_hit("express.send"), 0);
	ck_assert_uint_ge(hs_now_mono_ns() - t0, 50000000ull);
	t0 = hs_now_mono_ns();
	ck_assert_int_eq(hs_fp_hit("express.send"), 0);
	ck_assert_uint_lt(hs_now_mono_ns() - t0, 50000000ull);
}
END_TEST

/* Hits of forked processes count with the parent's: fire once is once. */
START_TEST(hits_shared_across_fork)
{
	char err[HS_ERRMSG_MAX];
	pid_t pid;
	int st;

	ck_assert_int_eq(
	    hs_fp_arm("standby.before_ack=1*err(EIO)@2", err, sizeof(err)),
	    HS_OK);
	ck_assert_int_eq(hs_fp_hit("standby.before_ack"), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(hs_fp_hit("standby.before_ack") == -EIO ? 0 : 1);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(hs_fp_hit("standby.before_ack"), 0);
}
END_TEST

/*
 * crash: SIGKILL for the process that hits it and for the daemon that
 * forked it.  Here a child plays the daemon, and its child hits.
 */
START_TEST(crash_kills_daemon)
{
	char err[HS_ERRMSG_MAX];
	pid_t daemon;
	int st;

	ck_assert_int_eq(
	    hs_fp_arm("apply.before_rename=1*crash", err, sizeof(err)), HS_OK);
	daemon = fork();
	ck_assert_int_ge(daemon, 0);
	if (daemon == 0) {
		pid_t child;

		hs_fp_daemon_pid(getpid());
		if ((child = fork()) == 0) {
			hs_fp_hit_sys("apply.before_rename");
			_exit(3); /* not reached */
		}
		waitpid(child, &st, 0);
		_exit(4); /* not reached either: killed meanwhile */
	}
	ck_assert_int_eq(waitpid(daemon, &st, 0), daemon);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	              "the daemon was not killed: status %#x", st);
	/* Fired once: a restarted daemon sharing nothing would start over,
	 * but these counters say it fired. */
	ck_assert_int_eq(hs_fp_hit_sys("apply.before_rename"), 0);
}
END_TEST

/* A name at a call site that the list lacks is a bug: abort at once. */
START_TEST(unknown_site_aborts)
{
	char err[HS_ERRMSG_MAX];

	ck_assert_int_eq(hs_fp_arm("express.ack=crash", err, sizeof(err)),
	                 HS_OK);
	hs_fp_hit("express.nosuch");
}
END_TEST

static Suite *
failpoint_suite(void)
{
	Suite *s = suite_create("failpoint");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, good_table, 0, (int)N_ELEM(good_cases));
	tcase_add_loop_test(tc, bad_table, 0, (int)N_ELEM(bad_cases));
	tcase_add_test(tc, bad_too_long);
	tcase_add_test(tc, bad_keeps_previous);
	suite_add_tcase(s, tc);

	tc = tcase_create("fire");
	tcase_add_test(tc, hit_sys);
	tcase_add_test(tc, hit_sleep);
	tcase_add_test(tc, hits_shared_across_fork);
	tcase_add_test(tc, crash_kills_daemon);
	tcase_add_test_raise_signal(tc, unknown_site_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(failpoint_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
