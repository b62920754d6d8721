/* check_util.c - number parsing, fingerprints, host:port, buffers, sizes. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hs.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SENTINEL 0xdeadbeefdeadbeefull

/* --------------------------------------------------------- hs_parse_u64 */

struct u64_case {
	const char *s;
	uint64_t min, max;
	int rc;
	uint64_t want;
};

static const struct u64_case u64_cases[] = {
    {"0", 0, 10, HS_OK, 0},
    {"10", 0, 10, HS_OK, 10},
    {"5", 5, 5, HS_OK, 5},
    {"007", 0, 10, HS_OK, 7},
    {"18446744073709551615", 0, UINT64_MAX, HS_OK, UINT64_MAX},
    {"11", 0, 10, HS_ECONFIG, 0},
    {"4", 5, 10, HS_ECONFIG, 0},
    {"18446744073709551616", 0, UINT64_MAX, HS_ECONFIG, 0},
    {"99999999999999999999999", 0, UINT64_MAX, HS_ECONFIG, 0},
    {"", 0, 10, HS_ECONFIG, 0},
    {"-1", 0, UINT64_MAX, HS_ECONFIG, 0},
    {"+1", 0, 10, HS_ECONFIG, 0},
    {" 1", 0, 10, HS_ECONFIG, 0},
    {"1 ", 0, 10, HS_ECONFIG, 0},
    {"1x", 0, 10, HS_ECONFIG, 0},
    {"0x10", 0, 100, HS_ECONFIG, 0},
    {"1.5", 0, 10, HS_ECONFIG, 0},
    {"abc", 0, 10, HS_ECONFIG, 0},
};

START_TEST(u64_table)
{
	const struct u64_case *tc = &u64_cases[_i];
	uint64_t out = SENTINEL;
	int rc;

	rc = hs_parse_u64(tc->s, tc->min, tc->max, &out);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
	else
		ck_assert_uint_eq(out, SENTINEL); /* untouched on failure */
}
END_TEST

START_TEST(u64_null)
{
	uint64_t out = SENTINEL;

	ck_assert_int_eq(hs_parse_u64(NULL, 0, 10, &out), HS_ECONFIG);
	ck_assert_uint_eq(out, SENTINEL);
}
END_TEST

/* ------------------------------------------------ durations and sizes */

struct scaled_case {
	const char *s;
	int rc;
	uint64_t want;
};

static const struct scaled_case duration_cases[] = {
    {"0", HS_OK, 0},
    {"5", HS_OK, 5},
    {"5s", HS_OK, 5},
    {"2m", HS_OK, 120},
    {"1h", HS_OK, 3600},
    {"90m", HS_OK, 5400},
    {"18446744073709551615s", HS_OK, UINT64_MAX},
    {"5124095576030431h", HS_OK, 5124095576030431ull * 3600},
    {"5124095576030432h", HS_ECONFIG, 0}, /* * 3600 overflows */
    {"307445734561825861m", HS_ECONFIG, 0},
    {"", HS_ECONFIG, 0},
    {"s", HS_ECONFIG, 0},
    {"5x", HS_ECONFIG, 0},
    {"5S", HS_ECONFIG, 0},
    {"5M", HS_ECONFIG, 0},
    {"1d", HS_ECONFIG, 0},
    {"5ms", HS_ECONFIG, 0},
    {"-1s", HS_ECONFIG, 0},
    {" 5", HS_ECONFIG, 0},
    {"5 ", HS_ECONFIG, 0},
    {"5 s", HS_ECONFIG, 0},
    {"1.5h", HS_ECONFIG, 0},
};

START_TEST(duration_table)
{
	const struct scaled_case *tc = &duration_cases[_i];
	uint64_t out = SENTINEL;
	int rc;

	rc = hs_parse_duration(tc->s, &out);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
}
END_TEST

static const struct scaled_case size_cases[] = {
    {"0", HS_OK, 0},
    {"1", HS_OK, 1},
    {"1K", HS_OK, 1024},
    {"2M", HS_OK, 2ull * 1024 * 1024},
    {"3G", HS_OK, 3ull * 1024 * 1024 * 1024},
    {"1024K", HS_OK, 1024ull * 1024},
    {"17179869183G", HS_OK, 17179869183ull << 30},
    {"17179869184G", HS_ECONFIG, 0}, /* 2^34 GiB = 2^64 */
    {"1k", HS_ECONFIG, 0},
    {"1m", HS_ECONFIG, 0},
    {"1T", HS_ECONFIG, 0},
    {"1KB", HS_ECONFIG, 0},
    {"1KiB", HS_ECONFIG, 0},
    {"K", HS_ECONFIG, 0},
    {"", HS_ECONFIG, 0},
    {"-1K", HS_ECONFIG, 0},
    {"1 K", HS_ECONFIG, 0},
    {"1s", HS_ECONFIG, 0},
};

START_TEST(size_table)
{
	const struct scaled_case *tc = &size_cases[_i];
	uint64_t out = SENTINEL;
	int rc;

	rc = hs_parse_size(tc->s, &out);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
}
END_TEST

/* ------------------------------------------------------- fingerprints */

#define HEX "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"

static const uint8_t fp_bytes[32] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
    0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
    0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};

struct fp_case {
	const char *s;
	int rc;
};

static const struct fp_case fp_cases[] = {
    {"sha256:" HEX, HS_OK},
    {"SHA256:" HEX, HS_OK},
    {"sha256:00112233445566778899AABBCCDDEEFF0123456789ABCDEF"
     "FEDCBA9876543210",
     HS_OK},
    /* what `openssl x509 -fingerprint -sha256` prints, colons and all */
    {"sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
     "01:23:45:67:89:AB:CD:EF:FE:DC:BA:98:76:54:32:10",
     HS_OK},
    {"sha256:" HEX "0", HS_ECONFIG},  /* 65 digits */
    {"sha256:" HEX "00", HS_ECONFIG}, /* 66 digits */
    {"sha256:0112233445566778899aabbccddeeff"
     "0123456789abcdeffedcba9876543210",
     HS_ECONFIG}, /* 63 digits */
    {"sha256:", HS_ECONFIG},
    {"sha256", HS_ECONFIG},
    {"", HS_ECONFIG},
    {HEX, HS_ECONFIG}, /* no prefix */
    {"sha1:" HEX, HS_ECONFIG},
    {"sha256: " HEX, HS_ECONFIG},
    {"sha256:" HEX " ", HS_ECONFIG},
    {"sha256:g0112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210",
     HS_ECONFIG},
};

START_TEST(fp_table)
{
	const struct fp_case *tc = &fp_cases[_i];
	uint8_t out[32];
	int rc;

	memset(out, 0xa5, sizeof(out));
	rc = hs_parse_fingerprint(tc->s, out);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_mem_eq(out, fp_bytes, sizeof(fp_bytes));
}
END_TEST

START_TEST(fp_format_roundtrip)
{
	char buf[72];
	uint8_t back[32];

	hs_format_fingerprint(fp_bytes, buf, sizeof(buf));
	ck_assert_str_eq(buf, "sha256:" HEX);
	ck_assert_int_eq(hs_parse_fingerprint(buf, back), HS_OK);
	ck_assert_mem_eq(back, fp_bytes, sizeof(fp_bytes));
}
END_TEST

START_TEST(fp_format_small_buffer)
{
	char buf[80];

	memset(buf, 'Z', sizeof(buf));
	hs_format_fingerprint(fp_bytes, buf, 71);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(buf[1], 'Z');
	memset(buf, 'Z', sizeof(buf));
	hs_format_fingerprint(fp_bytes, buf, 0);
	ck_assert_int_eq(buf[0], 'Z');
}
END_TEST

/* -------------------------------------------------------- host:port */

struct hp_case {
	const char *s;
	size_t hostlen;
	int rc;
	const char *host;
	uint16_t port;
};

static const struct hp_case hp_cases[] = {
    {"mn2:7873", 256, HS_OK, "mn2", 7873},
    {"0.0.0.0:1", 256, HS_OK, "0.0.0.0", 1},
    {"mn1.cluster.example:65535", 256, HS_OK, "mn1.cluster.example", 65535},
    {"[::1]:7873", 256, HS_OK, "::1", 7873},
    {"[::]:7873", 256, HS_OK, "::", 7873},
    {"[2001:db8::1]:22", 256, HS_OK, "2001:db8::1", 22},
    {"abc:1", 4, HS_OK, "abc", 1}, /* exactly fits */
    {"abc:1", 3, HS_ECONFIG, NULL, 0},
    {"[::1]:1", 3, HS_ECONFIG, NULL, 0},
    {"host:0", 256, HS_ECONFIG, NULL, 0},
    {"host:65536", 256, HS_ECONFIG, NULL, 0},
    {"host:", 256, HS_ECONFIG, NULL, 0},
    {"host:-1", 256, HS_ECONFIG, NULL, 0},
    {"host:78x", 256, HS_ECONFIG, NULL, 0},
    {"host: 78", 256, HS_ECONFIG, NULL, 0},
    {":7873", 256, HS_ECONFIG, NULL, 0},
    {"host", 256, HS_ECONFIG, NULL, 0},
    {"", 256, HS_ECONFIG, NULL, 0},
    {"::1:7873", 256, HS_ECONFIG, NULL, 0}, /* bare v6 is ambiguous */
    {"[::1]7873", 256, HS_ECONFIG, NULL, 0},
    {"[::1]", 256, HS_ECONFIG, NULL, 0},
    {"[::1:7873", 256, HS_ECONFIG, NULL, 0},
    {"[]:7873", 256, HS_ECONFIG, NULL, 0},
};

START_TEST(hp_table)
{
	const struct hp_case *tc = &hp_cases[_i];
	char host[257]; /* one past the largest hostlen, to see overruns */
	uint16_t port = 4242;
	int rc;

	ck_assert_uint_lt(tc->hostlen, sizeof(host));
	memset(host, 'Z', sizeof(host));
	rc = hs_split_hostport(tc->s, host, tc->hostlen, &port);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK) {
		ck_assert_str_eq(host, tc->host);
		ck_assert_uint_eq(port, tc->port);
	} else {
		ck_assert_uint_eq(port, 4242);
	}
	/* never written past hostlen */
	ck_assert_int_eq(host[tc->hostlen], 'Z');
}
END_TEST

/* ---------------------------------------------------------- buffers */

START_TEST(buf_init_empty)
{
	struct hs_buf b;

	memset(&b, 0x5a, sizeof(b));
	hs_buf_init(&b, 1000);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 1000);
	ck_assert_int_eq(hs_buf_append(&b, "x", 0), HS_OK);
	ck_assert_uint_eq(b.len, 0);
	hs_buf_free(&b);
	hs_buf_free(&b); /* twice is harmless */
}
END_TEST

START_TEST(buf_append_grows)
{
	struct hs_buf b;
	size_t i;

	hs_buf_init(&b, 5000);
	for (i = 0; i < 5000; i++) {
		uint8_t ch = (uint8_t)(i % 251);

		ck_assert_int_eq(hs_buf_append(&b, &ch, 1), HS_OK);
		ck_assert_uint_le(b.len, b.cap);
		ck_assert_uint_le(b.cap, b.max);
	}
	ck_assert_uint_eq(b.len, 5000);
	for (i = 0; i < 5000; i++)
		ck_assert_uint_eq(b.data[i], i % 251);
	hs_buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 5000);
}
END_TEST

START_TEST(buf_limit)
{
	struct hs_buf b;
	uint8_t block[300];

	memset(block, 7, sizeof(block));
	hs_buf_init(&b, 600);
	ck_assert_int_eq(hs_buf_append(&b, block, 300), HS_OK);
	ck_assert_int_eq(hs_buf_append(&b, block, 300), HS_OK);
	ck_assert_uint_eq(b.len, 600);
	ck_assert_uint_le(b.cap, 600);
	/* past max: refused, and the buffer is unchanged */
	ck_assert_int_eq(hs_buf_append(&b, block, 1), HS_ELIMIT);
	ck_assert_int_eq(hs_buf_reserve(&b, 1), HS_ELIMIT);
	ck_assert_uint_eq(b.len, 600);
	ck_assert_uint_eq(b.data[599], 7);
	ck_assert_int_eq(hs_buf_reserve(&b, 0), HS_OK);
	hs_buf_free(&b);
}
END_TEST

START_TEST(buf_reserve_overflow)
{
	struct hs_buf b;

	hs_buf_init(&b, SIZE_MAX);
	ck_assert_int_eq(hs_buf_append(&b, "abc", 3), HS_OK);
	/* len + need wraps around */
	ck_assert_int_eq(hs_buf_reserve(&b, SIZE_MAX), HS_ELIMIT);
	ck_assert_int_eq(hs_buf_reserve(&b, SIZE_MAX - 1), HS_ELIMIT);
	ck_assert_uint_eq(b.len, 3);
	ck_assert_mem_eq(b.data, "abc", 3);
	hs_buf_free(&b);
}
END_TEST

/* A buffer smaller than the first allocation still holds at most max. */
START_TEST(buf_small_max)
{
	struct hs_buf b;

	hs_buf_init(&b, 0);
	ck_assert_int_eq(hs_buf_append(&b, "", 0), HS_OK);
	ck_assert_int_eq(hs_buf_append(&b, "a", 1), HS_ELIMIT);
	hs_buf_free(&b);

	hs_buf_init(&b, 10);
	ck_assert_int_eq(hs_buf_append(&b, "0123456789", 10), HS_OK);
	ck_assert_int_eq(hs_buf_append(&b, "a", 1), HS_ELIMIT);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_mem_eq(b.data, "0123456789", 10);
	hs_buf_free(&b);
}
END_TEST

/* ------------------------------------------------------- size math */

struct sz_case {
	size_t a, b;
	int rc;
	size_t want;
};

static const struct sz_case add_cases[] = {
    {0, 0, HS_OK, 0},
    {1, 2, HS_OK, 3},
    {SIZE_MAX, 0, HS_OK, SIZE_MAX},
    {SIZE_MAX - 1, 1, HS_OK, SIZE_MAX},
    {SIZE_MAX, 1, HS_ELIMIT, 0},
    {1, SIZE_MAX, HS_ELIMIT, 0},
    {SIZE_MAX, SIZE_MAX, HS_ELIMIT, 0},
};

static const struct sz_case mul_cases[] = {
    {0, SIZE_MAX, HS_OK, 0},
    {SIZE_MAX, 1, HS_OK, SIZE_MAX},
    {3, 7, HS_OK, 21},
    {SIZE_MAX / 2, 2, HS_OK, SIZE_MAX - 1},
    {SIZE_MAX / 2 + 1, 2, HS_ELIMIT, 0},
    {SIZE_MAX, SIZE_MAX, HS_ELIMIT, 0},
    {(size_t)1 << (sizeof(size_t) * 4), (size_t)1 << (sizeof(size_t) * 4),
     HS_ELIMIT, 0},
};

START_TEST(size_add_table)
{
	const struct sz_case *tc = &add_cases[_i];
	size_t out = 12345;

	ck_assert_int_eq(hs_size_add(tc->a, tc->b, &out), tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
}
END_TEST

START_TEST(size_mul_table)
{
	const struct sz_case *tc = &mul_cases[_i];
	size_t out = 12345;

	ck_assert_int_eq(hs_size_mul(tc->a, tc->b, &out), tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
}
END_TEST

/* ------------------------------------------------------------- misc */

START_TEST(misc_role_name)
{
	ck_assert_str_eq(hs_role_name(HS_ROLE_PRIMARY), "primary");
	ck_assert_str_eq(hs_role_name(HS_ROLE_STANDBY), "standby");
	ck_assert_str_eq(hs_role_name(HS_ROLE_NONE), "none");
}
END_TEST

START_TEST(misc_write_all)
{
	uint8_t out[3000], in[3000];
	size_t got = 0;
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	memset(out, 0x3c, sizeof(out));
	ck_assert_int_eq(hs_write_all(fds[1], out, sizeof(out)), 0);
	ck_assert_int_eq(hs_write_all(fds[1], out, 0), 0);
	close(fds[1]);
	while (got < sizeof(in)) {
		ssize_t n = read(fds[0], in + got, sizeof(in) - got);

		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	ck_assert_mem_eq(in, out, sizeof(out));
	close(fds[0]);
}
END_TEST

START_TEST(misc_write_all_errors)
{
	int fds[2];

	ck_assert_int_eq(hs_write_all(-1, "x", 1), -EBADF);
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[0]);
	ck_assert_int_eq(hs_write_all(fds[1], "x", 1), -EPIPE);
	close(fds[1]);
}
END_TEST

START_TEST(misc_mono_and_strdup)
{
	uint64_t a = hs_now_mono_ns(), b = hs_now_mono_ns();
	char *s = hs_xstrdup("hamnsync");

	ck_assert_uint_ge(b, a);
	ck_assert_str_eq(s, "hamnsync");
	free(s);
}
END_TEST

START_TEST(misc_backoff)
{
	uint64_t cur = 0;
	int i;

	/* The reconnect backoff: 200 ms, doubling, capped at 10 s. */
	cur = hs_backoff_next(cur, 200, 10000);
	ck_assert_uint_eq(cur, 200);
	cur = hs_backoff_next(cur, 200, 10000);
	ck_assert_uint_eq(cur, 400);
	for (i = 0; i < 10; i++)
		cur = hs_backoff_next(cur, 200, 10000);
	ck_assert_uint_eq(cur, 10000);
	ck_assert_uint_eq(hs_backoff_next(6000, 200, 10000), 10000);
	ck_assert_uint_eq(hs_backoff_next(199, 200, 10000), 200);
	ck_assert_uint_eq(hs_backoff_next(UINT64_MAX, 1, UINT64_MAX),
	                  UINT64_MAX);
	ck_assert_uint_eq(hs_backoff_next(UINT64_MAX / 2, 1, UINT64_MAX),
	                  UINT64_MAX - 1);
}
END_TEST

static Suite *
util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc;

	tc = tcase_create("u64");
	tcase_add_loop_test(tc, u64_table, 0, (int)N_ELEM(u64_cases));
	tcase_add_test(tc, u64_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("duration");
	tcase_add_loop_test(tc, duration_table, 0, (int)N_ELEM(duration_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("size");
	tcase_add_loop_test(tc, size_table, 0, (int)N_ELEM(size_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("fingerprint");
	tcase_add_loop_test(tc, fp_table, 0, (int)N_ELEM(fp_cases));
	tcase_add_test(tc, fp_format_roundtrip);
	tcase_add_test(tc, fp_format_small_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostport");
	tcase_add_loop_test(tc, hp_table, 0, (int)N_ELEM(hp_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("buf");
	tcase_add_test(tc, buf_init_empty);
	tcase_add_test(tc, buf_append_grows);
	tcase_add_test(tc, buf_limit);
	tcase_add_test(tc, buf_reserve_overflow);
	tcase_add_test(tc, buf_small_max);
	suite_add_tcase(s, tc);

	tc = tcase_create("sizemath");
	tcase_add_loop_test(tc, size_add_table, 0, (int)N_ELEM(add_cases));
	tcase_add_loop_test(tc, size_mul_table, 0, (int)N_ELEM(mul_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("misc");
	tcase_add_test(tc, misc_role_name);
	tcase_add_test(tc, misc_write_all);
	tcase_add_test(tc, misc_write_all_errors);
	tcase_add_test(tc, misc_mono_and_strdup);
	tcase_add_test(tc, misc_backoff);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(util_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
