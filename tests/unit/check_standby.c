/*
 * check_standby.c - standby/: the writer thread of big files (applywr.c)
 * keeps the order of what is queued and stops at the first error of its
 * output; drift copies (drift.c) land where status counts them, as hard
 * links, and stop at DRIFT_MAX_BYTES.
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

#include "apply_int.h"
#include "applywr_int.h"
#include "check_aux.h"
#include "stdby_int.h"

/* ------------------------------------------------------- the writer */

struct sink {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t fail_after; /* bytes accepted before emit fails; 0: never */
	int calls;
};

static int
sink_emit(void *arg, const uint8_t *p, size_t n)
{
	struct sink *s = arg;

	s->calls++;
	if (s->fail_after != 0 && s->len + n > s->fail_after)
		return -ENOSPC;
	if (s->len + n > s->cap)
		return -EOVERFLOW;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return HS_OK;
}

START_TEST(writer_keeps_order)
{
	const size_t total = 24u * 1024 * 1024, piece = 100003;
	uint8_t *src = malloc(total);
	struct sink s = {malloc(total), 0, total, 0, 0};
	struct apply_wr *w;
	size_t off;

	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(s.buf);
	fill_random(src, total, 7);
	ck_assert_int_eq(apply_wr_start(sink_emit, &s, &w), HS_OK);
	/* Odd piece sizes: more than the ring holds, cut anywhere. */
	for (off = 0; off < total; off += piece) {
		size_t n = total - off < piece ? total - off : piece;

		ck_assert_int_eq(apply_wr_put(w, src + off, n), HS_OK);
	}
	ck_assert_int_eq(apply_wr_finish(w), HS_OK);
	ck_assert_uint_eq(s.len, total);
	ck_assert(memcmp(s.buf, src, total) == 0);
	free(src);
	free(s.buf);
}
END_TEST

START_TEST(writer_stops_at_first_error)
{
	const size_t total = 16u * 1024 * 1024, piece = 65536;
	uint8_t *src = malloc(piece);
	struct sink s = {malloc(total), 0, total, 4u * 1024 * 1024, 0};
	struct apply_wr *w;
	size_t off;
	int rc = HS_OK;

	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(s.buf);
	fill_random(src, piece, 9);
	ck_assert_int_eq(apply_wr_start(sink_emit, &s, &w), HS_OK);
	for (off = 0; off < total && rc == HS_OK; off += piece)
		rc = apply_wr_put(w, src, piece);
	/* The error may surface at a later put or at finish, never lost. */
	ck_assert_int_eq(apply_wr_finish(w), -ENOSPC);
	ck_assert(rc == HS_OK || rc == -ENOSPC);
	/* Nothing past the error was written. */
	ck_assert_uint_le(s.len, s.fail_after);
	free(src);
	free(s.buf);
}
END_TEST

START_TEST(writer_finish_null)
{
	ck_assert_int_eq(apply_wr_finish(NULL), HS_OK);
}
END_TEST

/* ------------------------------------------------------------- drift */

static char root[] = "/tmp/check_standby.XXXXXX";

static void
drift_setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void
drift_teardown(void)
{
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	strcpy(root, "/tmp/check_standby.XXXXXX");
}

/* mkdir -p `path`. */
static int
mkdir_p(const char *path)
{
	char buf[512], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = strchr(buf + 1, '/');; p = strchr(p + 1, '/')) {
		if (p != NULL)
			*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		if (p == NULL)
			return 0;
		*p = '/';
	}
}

/* A file `name` in root/target holding `text`; its directory's fd. */
static int
target_file(const char *name, const char *text, int *dfd)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/target", root);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	*dfd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(*dfd, 0);
	return aux_file_make(*dfd, name, (const uint8_t *)text, strlen(text));
}

START_TEST(drift_keeps_a_link)
{
	char state[512], where[1024];
	struct stat a, b;
	int dfd, fd;

	snprintf(state, sizeof(state), "%s/state", root);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	ck_assert_uint_eq(drift_count(state, 10), 0);
	fd = target_file("hosts", "10.0.0.1 mn1\n", &dfd);
	ck_assert_int_eq(drift_keep(state, "netconf", "/etc", "hosts", dfd,
	                            "hosts", fd, 13, where, sizeof(where)),
	                 HS_OK);
	/* state/drift/<set><source>/<rel>.<unix time> */
	ck_assert_msg(strncmp(where, state, strlen(state)) == 0 &&
	                  strstr(where, "/drift/netconf/etc/hosts.") != NULL,
	              "kept at %s", where);
	ck_assert_int_eq(stat(where, &a), 0);
	ck_assert_int_eq(fstat(fd, &b), 0);
	ck_assert_uint_eq(a.st_ino, b.st_ino); /* a link, not a copy */
	ck_assert_uint_eq(drift_count(state, 10), 1);
	/* The same second again: kept already, not an error. */
	ck_assert_int_eq(drift_keep(state, "netconf", "/etc", "hosts", dfd,
	                            "hosts", fd, 13, where, sizeof(where)),
	                 HS_OK);
	ck_assert_uint_eq(drift_count(state, 10), 1);
	close(fd);
	close(dfd);
}
END_TEST

START_TEST(drift_stops_at_its_limit)
{
	char state[512], big[600], where[1024];
	int dfd, fd, bfd;

	snprintf(state, sizeof(state), "%s/state/drift/old", root);
	ck_assert_int_eq(mkdir_p(state), 0);
	/* A sparse file whose size fills the budget, at no disk cost. */
	snprintf(big, sizeof(big), "%s/big.1", state);
	bfd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(bfd, 0);
	ck_assert_int_eq(ftruncate(bfd, (off_t)DRIFT_MAX_BYTES - 4), 0);
	close(bfd);
	snprintf(state, sizeof(state), "%s/state", root);
	fd = target_file("f", "12345678", &dfd);
	ck_assert_int_eq(drift_keep(state, "s", "/d", "f", dfd, "f", fd, 8,
	                            where, sizeof(where)),
	                 HS_ELIMIT);
	ck_assert_msg(strstr(where, "would pass") != NULL, "why: %s", where);
	ck_assert_uint_eq(drift_count(state, 10), 1); /* only big.1 */
	close(fd);
	close(dfd);
}
END_TEST

static Suite *
standby_suite(void)
{
	Suite *s = suite_create("standby");
	TCase *tc = tcase_create("writer");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, writer_keeps_order);
	tcase_add_test(tc, writer_stops_at_first_error);
	tcase_add_test(tc, writer_finish_null);
	suite_add_tcase(s, tc);
	tc = tcase_create("drift");
	tcase_add_checked_fixture(tc, drift_setup, drift_teardown);
	tcase_add_test(tc, drift_keeps_a_link);
	tcase_add_test(tc, drift_stops_at_its_limit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(standby_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
