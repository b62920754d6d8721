/*
 * check_proto.c - the wire protocol: frame headers, codecs, message
 * codecs, SHA-256, the standby's checks on hostile patch frames, and
 * mutual-TLS connections over loopback TCP.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_aux.h"
#include "proto.h"

#define KIB (1024u)
#define MIB (1024u * 1024)

/* ------------------------------------------------------------- helpers */

/* A reader over the bytes a writer holds. */
static struct proto_rd
rd_of(const struct proto_wr *w, size_t len)
{
	struct proto_rd r;

	r.p = w->buf.data;
	r.left = len;
	return r;
}

/* A heap string of `n` copies of `ch` (NUL-terminated). */
static char *
str_fill(char ch, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* Text-like bytes that zstd shrinks a lot. */
static void
fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char line[] = "hamnsync: replicated line of text, ";
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)line[(i + seed) % (sizeof(line) - 1)];
}

static void
hex_to_bin(const char *hex, uint8_t *out, size_t n)
{
	size_t i;

	ck_assert_uint_eq(strlen(hex), 2 * n);
	for (i = 0; i < n; i++) {
		unsigned v;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* ------------------------------------------------------- frame headers */

struct hdr_rt_case {
	uint8_t type, flags;
	uint32_t len;
	uint8_t raw[PROTO_HDR_LEN];
};

static const struct hdr_rt_case hdr_rt_cases[] = {
    {PROTO_T_HELLO, 0, 0, {1, 0, 0, 0, 0, 0, 0, 0}},
    {PROTO_T_OP_DATA, PROTO_F_ZSTD, 1, {24, 1, 0, 0, 0, 0, 0, 1}},
    {PROTO_T_LIST, 0, 0x00010203, {12, 0, 0, 0, 0x00, 0x01, 0x02, 0x03}},
    {PROTO_T_SET_DONE,
     PROTO_F_ZSTD,
     PROTO_FRAME_MAX,
     {28, 1, 0, 0, 0, 0x40, 0, 0}},
    {255, 0, PROTO_FRAME_MAX - 1, {255, 0, 0, 0, 0, 0x3f, 0xff, 0xff}},
};

START_TEST(hdr_roundtrip)
{
	const struct hdr_rt_case *tc = &hdr_rt_cases[_i];
	uint8_t raw[PROTO_HDR_LEN];
	struct proto_hdr h;

	memset(raw, 0xee, sizeof(raw));
	proto_hdr_pack(raw, tc->type, tc->flags, tc->len);
	ck_assert_mem_eq(raw, tc->raw, PROTO_HDR_LEN); /* big-endian */
	memset(&h, 0xee, sizeof(h));
	ck_assert_int_eq(proto_hdr_unpack(raw, sizeof(raw), &h), HS_OK);
	ck_assert_uint_eq(h.type, tc->type);
	ck_assert_uint_eq(h.flags, tc->flags);
	ck_assert_uint_eq(h.len, tc->len);
}
END_TEST

struct hdr_bad_case {
	const char *what;
	uint8_t raw[PROTO_HDR_LEN];
	int rc;
};

static const struct hdr_bad_case hdr_bad_cases[] = {
    {"reserved byte 2", {1, 0, 1, 0, 0, 0, 0, 0}, HS_EPROTO},
    {"reserved byte 3", {1, 0, 0, 0x80, 0, 0, 0, 0}, HS_EPROTO},
    {"reserved both", {1, 0, 0xff, 0xff, 0, 0, 0, 0}, HS_EPROTO},
    {"flag 0x02", {1, 0x02, 0, 0, 0, 0, 0, 0}, HS_EPROTO},
    {"flag 0x80", {1, 0x80, 0, 0, 0, 0, 0, 0}, HS_EPROTO},
    {"zstd + unknown", {1, 0x03, 0, 0, 0, 0, 0, 0}, HS_EPROTO},
    {"all flags", {1, 0xff, 0, 0, 0, 0, 0, 0}, HS_EPROTO},
    {"max + 1", {1, 0, 0, 0, 0, 0x40, 0, 1}, HS_ELIMIT},
    {"max + 1, zstd", {1, 1, 0, 0, 0, 0x40, 0, 1}, HS_ELIMIT},
    {"2^31", {1, 0, 0, 0, 0x80, 0, 0, 0}, HS_ELIMIT},
    {"2^32 - 1", {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, HS_ELIMIT},
};

START_TEST(hdr_bad_table)
{
	const struct hdr_bad_case *tc = &hdr_bad_cases[_i];
	struct proto_hdr h;
	int rc;

	rc = proto_hdr_unpack(tc->raw, PROTO_HDR_LEN, &h);
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d", tc->what, rc, tc->rc);
}
END_TEST

START_TEST(hdr_limit_exact)
{
	uint8_t raw[PROTO_HDR_LEN];
	struct proto_hdr h;

	proto_hdr_pack(raw, PROTO_T_OP_DATA, 0, PROTO_FRAME_MAX);
	ck_assert_int_eq(proto_hdr_unpack(raw, sizeof(raw), &h), HS_OK);
	ck_assert_uint_eq(h.len, PROTO_FRAME_MAX);
	proto_hdr_pack(raw, PROTO_T_OP_DATA, 0, PROTO_FRAME_MAX + 1);
	ck_assert_int_eq(proto_hdr_unpack(raw, sizeof(raw), &h), HS_ELIMIT);
}
END_TEST

/* Every buffer shorter than a header; _i is the length. */
START_TEST(hdr_short)
{
	uint8_t raw[PROTO_HDR_LEN];
	struct proto_hdr h;

	proto_hdr_pack(raw, PROTO_T_HELLO, 0, 10);
	ck_assert_int_eq(proto_hdr_unpack(raw, (size_t)_i, &h), HS_EPROTO);
}
END_TEST

/* --------------------------------------------------------------- codecs */

START_TEST(codec_layout)
{
	static const uint8_t want[] = {
	    0x12,                                           /* u8 */
	    0x34, 0x56,                                     /* u16 */
	    0x78, 0x9a, 0xbc, 0xde,                         /* u32 */
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
	    'x',  'y',  'z',                                /* bytes */
	    0x00, 0x02, 'h',  'i',                          /* str */
	    0x00, 0x03, 'a',  0xc3, 0xa9,                   /* strn, UTF-8 */
	    0x00, 0x00,                                     /* empty str */
	};
	struct proto_wr w;
	struct proto_rd r;
	uint8_t u8, bytes[3];
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	char s[16];
	size_t len = 99;

	proto_wr_init(&w);
	proto_put_u8(&w, 0x12);
	proto_put_u16(&w, 0x3456);
	proto_put_u32(&w, 0x789abcde);
	proto_put_u64(&w, 0x0102030405060708ull);
	proto_put_bytes(&w, "xyz", 3);
	proto_put_str(&w, "hi");
	proto_put_strn(&w, "a\xc3\xa9 and more", 3);
	proto_put_str(&w, "");
	ck_assert_int_eq(w.rc, HS_OK);
	ck_assert_uint_eq(w.buf.len, sizeof(want));
	ck_assert_mem_eq(w.buf.data, want, sizeof(want));

	r = rd_of(&w, w.buf.len);
	ck_assert_int_eq(proto_get_u8(&r, &u8), HS_OK);
	ck_assert_uint_eq(u8, 0x12);
	ck_assert_int_eq(proto_get_u16(&r, &u16), HS_OK);
	ck_assert_uint_eq(u16, 0x3456);
	ck_assert_int_eq(proto_get_u32(&r, &u32), HS_OK);
	ck_assert_uint_eq(u32, 0x789abcde);
	ck_assert_int_eq(proto_get_u64(&r, &u64), HS_OK);
	ck_assert_uint_eq(u64, 0x0102030405060708ull);
	ck_assert_int_eq(proto_get_bytes(&r, bytes, 3), HS_OK);
	ck_assert_mem_eq(bytes, "xyz", 3);
	ck_assert_int_eq(proto_get_str(&r, s, 15, &len), HS_OK);
	ck_assert_str_eq(s, "hi");
	ck_assert_uint_eq(len, 2);
	ck_assert_int_eq(proto_get_str(&r, s, 3, NULL), HS_OK);
	ck_assert_str_eq(s, "a\xc3\xa9");
	ck_assert_int_eq(proto_rd_end(&r), HS_EPROTO); /* one string left */
	ck_assert_int_eq(proto_get_str(&r, s, 0, &len), HS_OK);
	ck_assert_str_eq(s, "");
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(proto_rd_end(&r), HS_OK);
	ck_assert_uint_eq(r.left, 0);
	proto_wr_free(&w);
}
END_TEST

static const uint64_t int_values[] = {
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x10000,
    0x7fffffff,
    0x80000000,
    0xffffffff,
    0x100000000ull,
    0x8000000000000000ull,
    0xfedcba9876543210ull,
    UINT64_MAX,
};

/* Each width round trips and is laid out most significant byte first. */
START_TEST(codec_int_table)
{
	uint64_t v = int_values[_i];
	uint8_t want[15];
	struct proto_wr w;
	struct proto_rd r;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	int k;

	want[0] = (uint8_t)v;
	want[1] = (uint8_t)(v >> 8);
	want[2] = (uint8_t)v;
	for (k = 0; k < 4; k++)
		want[3 + k] = (uint8_t)(v >> (8 * (3 - k)));
	for (k = 0; k < 8; k++)
		want[7 + k] = (uint8_t)(v >> (8 * (7 - k)));

	proto_wr_init(&w);
	proto_put_u8(&w, (uint8_t)v);
	proto_put_u16(&w, (uint16_t)v);
	proto_put_u32(&w, (uint32_t)v);
	proto_put_u64(&w, v);
	ck_assert_int_eq(w.rc, HS_OK);
	ck_assert_uint_eq(w.buf.len, sizeof(want));
	ck_assert_mem_eq(w.buf.data, want, sizeof(want));

	r = rd_of(&w, w.buf.len);
	ck_assert_int_eq(proto_get_u8(&r, &u8), HS_OK);
	ck_assert_int_eq(proto_get_u16(&r, &u16), HS_OK);
	ck_assert_int_eq(proto_get_u32(&r, &u32), HS_OK);
	ck_assert_int_eq(proto_get_u64(&r, &u64), HS_OK);
	ck_assert_uint_eq(u8, (uint8_t)v);
	ck_assert_uint_eq(u16, (uint16_t)v);
	ck_assert_uint_eq(u32, (uint32_t)v);
	ck_assert_uint_eq(u64, v);
	ck_assert_int_eq(proto_rd_end(&r), HS_OK);
	proto_wr_free(&w);
}
END_TEST

enum get_kind { GET_U8, GET_U16, GET_U32, GET_U64, GET_BYTES, GET_STR };

struct short_case {
	enum get_kind kind;
	size_t need; /* bytes for a successful get */
};

static const struct short_case short_cases[] = {
    {GET_U8, 1},  {GET_U16, 2},   {GET_U32, 4},
    {GET_U64, 8}, {GET_BYTES, 5}, {GET_STR, 2 + 5},
};

static int
do_get(enum get_kind kind, struct proto_rd *r)
{
	uint8_t u8, bytes[5];
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	char s[8];

	switch (kind) {
	case GET_U8:
		return proto_get_u8(r, &u8);
	case GET_U16:
		return proto_get_u16(r, &u16);
	case GET_U32:
		return proto_get_u32(r, &u32);
	case GET_U64:
		return proto_get_u64(r, &u64);
	case GET_BYTES:
		return proto_get_bytes(r, bytes, sizeof(bytes));
	case GET_STR:
		return proto_get_str(r, s, 7, NULL);
	}
	abort();
}

/* Every get fails with HS_EPROTO on every length short of what it needs. */
START_TEST(codec_short_table)
{
	const struct short_case *tc = &short_cases[_i];
	/* A valid string "abcde" doubles as payload for the others. */
	static const uint8_t data[] = {0x00, 0x05, 'a', 'b',
	                               'c',  'd',  'e', 0xff};
	struct proto_rd r;
	size_t n;

	for (n = 0; n < tc->need; n++) {
		r.p = data;
		r.left = n;
		ck_assert_msg(do_get(tc->kind, &r) == HS_EPROTO,
		              "kind %d with %zu bytes", (int)tc->kind, n);
	}
	r.p = data;
	r.left = tc->need;
	ck_assert_int_eq(do_get(tc->kind, &r), HS_OK);
	ck_assert_uint_eq(r.left, 0);
}
END_TEST

struct str_case {
	const char *what;
	const char *raw;
	size_t rawlen;
	size_t max;
	int rc;
	const char *want;
};

static const struct str_case str_cases[] = {
    {"fits",
     "\x00\x03"
     "abc",
     5, 3, HS_OK, "abc"},
    {"room to spare",
     "\x00\x03"
     "abc",
     5, 100, HS_OK, "abc"},
    {"empty", "\x00\x00", 2, 0, HS_OK, ""},
    {"high bytes", "\x00\x02\x80\xff", 4, 2, HS_OK, "\x80\xff"},
    {"over max",
     "\x00\x03"
     "abc",
     5, 2, HS_ELIMIT, NULL},
    {"over max, short",
     "\x00\x09"
     "abc",
     5, 2, HS_ELIMIT, NULL},
    {"0xffff over max",
     "\xff\xff"
     "abc",
     5, 100, HS_ELIMIT, NULL},
    {"beyond buffer",
     "\x00\x04"
     "abc",
     5, 100, HS_EPROTO, NULL},
    {"beyond by a lot",
     "\x01\x00"
     "abc",
     5, 1000, HS_EPROTO, NULL},
    {"NUL inside",
     "\x00\x03"
     "a\0c",
     5, 100, HS_EPROTO, NULL},
    {"NUL only", "\x00\x01\x00", 3, 100, HS_EPROTO, NULL},
    {"NUL last",
     "\x00\x03"
     "ab\0",
     5, 100, HS_EPROTO, NULL},
    {"no length", "", 0, 100, HS_EPROTO, NULL},
    {"half a length", "\x00", 1, 100, HS_EPROTO, NULL},
};

START_TEST(codec_str_table)
{
	const struct str_case *tc = &str_cases[_i];
	struct proto_rd r;
	char out[1001];
	size_t len = 12345;
	int rc;

	r.p = (const uint8_t *)tc->raw;
	r.left = tc->rawlen;
	rc = proto_get_str(&r, out, tc->max, &len);
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d", tc->what, rc, tc->rc);
	if (tc->rc == HS_OK) {
		ck_assert_str_eq(out, tc->want);
		ck_assert_uint_eq(len, strlen(tc->want));
		ck_assert_int_eq(proto_rd_end(&r), HS_OK);
	}
}
END_TEST

START_TEST(codec_rd_end)
{
	static const uint8_t data[] = {1, 2, 3, 4};
	struct proto_rd r = {data, sizeof(data)};
	uint16_t v;

	ck_assert_int_eq(proto_rd_end(&r), HS_EPROTO);
	ck_assert_int_eq(proto_get_u16(&r, &v), HS_OK);
	ck_assert_int_eq(proto_rd_end(&r), HS_EPROTO);
	ck_assert_int_eq(proto_get_u8(&r, (uint8_t *)&v), HS_OK);
	ck_assert_int_eq(proto_rd_end(&r), HS_EPROTO); /* 1 byte left */
	ck_assert_int_eq(proto_get_u8(&r, (uint8_t *)&v), HS_OK);
	ck_assert_int_eq(proto_rd_end(&r), HS_OK);
	r.left = 0;
	ck_assert_int_eq(proto_rd_end(&r), HS_OK);
}
END_TEST

/* A writer stops at PROTO_FRAME_MAX, keeps the first error, then idles. */
START_TEST(codec_wr_overflow)
{
	uint8_t *block = calloc(1, PROTO_FRAME_MAX);
	struct proto_wr w;

	ck_assert_ptr_nonnull(block);
	proto_wr_init(&w);
	proto_put_bytes(&w, block, PROTO_FRAME_MAX - 3);
	proto_put_u16(&w, 0x0102); /* 1 byte of room left */
	ck_assert_int_eq(w.rc, HS_OK);
	ck_assert_uint_eq(w.buf.len, PROTO_FRAME_MAX - 1);
	proto_put_u16(&w, 0x0304); /* does not fit */
	ck_assert_int_eq(w.rc, HS_ELIMIT);
	ck_assert_uint_eq(w.buf.len, PROTO_FRAME_MAX - 1);
	ck_assert_uint_le(w.buf.cap, PROTO_FRAME_MAX);
	/* would fit, but the writer has failed: nothing happens */
	proto_put_u8(&w, 0x05);
	proto_put_bytes(&w, "", 0);
	proto_put_str(&w, "");
	ck_assert_int_eq(w.rc, HS_ELIMIT);
	ck_assert_uint_eq(w.buf.len, PROTO_FRAME_MAX - 1);
	ck_assert_uint_eq(w.buf.data[PROTO_FRAME_MAX - 3], 0x01);
	ck_assert_uint_eq(w.buf.data[PROTO_FRAME_MAX - 2], 0x02);

	/* a reset writer works again */
	proto_wr_reset(&w);
	ck_assert_int_eq(w.rc, HS_OK);
	ck_assert_uint_eq(w.buf.len, 0);
	proto_put_bytes(&w, block, PROTO_FRAME_MAX);
	ck_assert_int_eq(w.rc, HS_OK);
	ck_assert_uint_eq(w.buf.len, PROTO_FRAME_MAX);
	proto_put_u8(&w, 1);
	ck_assert_int_eq(w.rc, HS_ELIMIT);
	proto_wr_free(&w);
	free(block);
}
END_TEST

START_TEST(codec_strn_limit)
{
	char *s = str_fill('s', 65536);
	struct proto_wr w;

	proto_wr_init(&w);
	proto_put_strn(&w, s, 65536);
	ck_assert_int_eq(w.rc, HS_ELIMIT);
	ck_assert_uint_eq(w.buf.len, 0);
	proto_put_strn(&w, s, 1); /* the first error sticks */
	ck_assert_uint_eq(w.buf.len, 0);

	proto_wr_reset(&w);
	proto_put_str(&w, s); /* strlen 65536 */
	ck_assert_int_eq(w.rc, HS_ELIMIT);
	ck_assert_uint_eq(w.buf.len, 0);

	proto_wr_reset(&w);
	proto_put_strn(&w, s, 65535);
	ck_assert_int_eq(w.rc, HS_OK);
	ck_assert_uint_eq(w.buf.len, 2 + 65535);
	ck_assert_uint_eq(w.buf.data[0], 0xff);
	ck_assert_uint_eq(w.buf.data[1], 0xff);

	proto_wr_reset(&w);
	proto_put_strn(&w, s, SIZE_MAX);
	ck_assert_int_eq(w.rc, HS_ELIMIT);
	proto_wr_free(&w);
	free(s);
}
END_TEST

/* --------------------------------------------------------------- HELLO */

struct hello_case {
	const char *what;
	uint32_t magic;
	uint16_t version;
	int bare;        /* nothing after the version */
	size_t name_len; /* a name of this many 'n' */
	uint8_t role;
	size_t trailing; /* extra bytes after the epoch */
	int rc;
};

#define MAGIC PROTO_MAGIC
#define V PROTO_VERSION

static const struct hello_case hello_cases[] = {
    {"primary", MAGIC, V, 0, 3, HS_ROLE_PRIMARY, 0, HS_OK},
    {"standby", MAGIC, V, 0, 3, HS_ROLE_STANDBY, 0, HS_OK},
    {"empty name", MAGIC, V, 0, 0, HS_ROLE_STANDBY, 0, HS_OK},
    {"name at max", MAGIC, V, 0, PROTO_NODE_MAX, HS_ROLE_PRIMARY, 0, HS_OK},
    {"bad magic", MAGIC ^ 1, V, 0, 3, HS_ROLE_PRIMARY, 0, HS_EPROTO},
    {"zero magic", 0, V, 0, 3, HS_ROLE_PRIMARY, 0, HS_EPROTO},
    {"swapped magic", 0x534e4d48u, V, 0, 3, HS_ROLE_PRIMARY, 0, HS_EPROTO},
    {"bad magic, bare", MAGIC + 1, 99, 1, 0, 0, 0, HS_EPROTO},
    /* another version: magic and version only, for the caller to name */
    {"version 99", MAGIC, 99, 0, 3, HS_ROLE_PRIMARY, 0, HS_OK},
    {"version 99 bare", MAGIC, 99, 1, 0, 0, 0, HS_OK},
    {"version 0 bare", MAGIC, 0, 1, 0, 0, 0, HS_OK},
    {"version 2, junk", MAGIC, V + 1, 0, 200, 9, 17, HS_OK},
    {"version 0xffff", MAGIC, 0xffff, 0, 3, 0, 0, HS_OK},
    {"ours, bare", MAGIC, V, 1, 0, 0, 0, HS_EPROTO},
    {"role none", MAGIC, V, 0, 3, HS_ROLE_NONE, 0, HS_EPROTO},
    {"role 3", MAGIC, V, 0, 3, 3, 0, HS_EPROTO},
    {"role 255", MAGIC, V, 0, 3, 255, 0, HS_EPROTO},
    {"trailing byte", MAGIC, V, 0, 3, HS_ROLE_PRIMARY, 1, HS_EPROTO},
    {"trailing 100", MAGIC, V, 0, 3, HS_ROLE_STANDBY, 100, HS_EPROTO},
    {"name max + 1", MAGIC, V, 0, PROTO_NODE_MAX + 1, HS_ROLE_PRIMARY, 0,
     HS_ELIMIT},
    {"name 65535", MAGIC, V, 0, 65535, HS_ROLE_PRIMARY, 0, HS_ELIMIT},
};

#undef MAGIC
#undef V

START_TEST(hello_table)
{
	const struct hello_case *tc = &hello_cases[_i];
	struct proto_hello h;
	struct proto_wr w;
	struct proto_rd r;
	char *name = str_fill('n', tc->name_len);
	size_t i;
	int rc;

	proto_wr_init(&w);
	proto_put_u32(&w, tc->magic);
	proto_put_u16(&w, tc->version);
	if (!tc->bare) {
		proto_put_str(&w, name);
		proto_put_u8(&w, tc->role);
		proto_put_u64(&w, 0x1122334455667788ull);
		for (i = 0; i < tc->trailing; i++)
			proto_put_u8(&w, 0);
	}
	ck_assert_int_eq(w.rc, HS_OK);
	r = rd_of(&w, w.buf.len);
	memset(&h, 0xee, sizeof(h));
	rc = proto_hello_decode(&r, &h);
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d", tc->what, rc, tc->rc);
	if (rc == HS_OK) {
		ck_assert_uint_eq(h.magic, PROTO_MAGIC);
		ck_assert_uint_eq(h.version, tc->version);
	}
	if (rc == HS_OK && tc->version == PROTO_VERSION) {
		ck_assert_str_eq(h.name, name);
		ck_assert_uint_eq(h.role, tc->role);
		ck_assert_uint_eq(h.epoch, 0x1122334455667788ull);
	}
	proto_wr_free(&w);
	free(name);
}
END_TEST

struct hello_rt_case {
	const char *name;
	uint8_t role;
	uint64_t epoch;
};

static const struct hello_rt_case hello_rt_cases[] = {
    {"mn1", HS_ROLE_PRIMARY, 0},
    {"mn2", HS_ROLE_STANDBY, 1},
    {"", HS_ROLE_PRIMARY, UINT64_MAX},
    {"node-\xc3\xa5.example", HS_ROLE_STANDBY, 0x8000000000000000ull},
    {"0123456789012345678901234567890123456789012345678901234567890123",
     HS_ROLE_PRIMARY, 42},
};

START_TEST(hello_roundtrip)
{
	const struct hello_rt_case *tc = &hello_rt_cases[_i];
	struct proto_hello in, out;
	struct proto_wr w;
	struct proto_rd r;
	size_t n;

	memset(&in, 0, sizeof(in));
	in.magic = PROTO_MAGIC;
	in.version = PROTO_VERSION;
	snprintf(in.name, sizeof(in.name), "%s", tc->name);
	in.role = tc->role;
	in.epoch = tc->epoch;
	proto_wr_init(&w);
	proto_hello_encode(&w, &in);
	ck_assert_int_eq(w.rc, HS_OK);
	n = strlen(tc->name);
	ck_assert_uint_eq(w.buf.len, 4 + 2 + 2 + n + 1 + 8);
	ck_assert_mem_eq(w.buf.data, "HMNS\x00\x02", 6); /* PROTO_VERSION 2 */
	ck_assert_uint_eq(w.buf.data[6], n >> 8);
	ck_assert_uint_eq(w.buf.data[7], n & 0xff);
	ck_assert_uint_eq(w.buf.data[8 + n], tc->role);

	r = rd_of(&w, w.buf.len);
	memset(&out, 0xee, sizeof(out));
	ck_assert_int_eq(proto_hello_decode(&r, &out), HS_OK);
	ck_assert_uint_eq(out.magic, PROTO_MAGIC);
	ck_assert_uint_eq(out.version, PROTO_VERSION);
	ck_assert_str_eq(out.name, tc->name);
	ck_assert_uint_eq(out.role, tc->role);
	ck_assert_uint_eq(out.epoch, tc->epoch);

	/* every proper prefix is malformed */
	for (n = 0; n < w.buf.len; n++) {
		r = rd_of(&w, n);
		ck_assert_msg(proto_hello_decode(&r, &out) == HS_EPROTO,
		              "prefix of %zu bytes", n);
	}
	proto_wr_free(&w);
}
END_TEST

/* The optional flags byte after the epoch (the express lane). */
struct hello_flags_case {
	const char *what;
	uint8_t bytes[2]; /* trailing bytes after the epoch */
	size_t n;
	int rc;
	uint8_t flags; /* decoded, when rc is HS_OK */
};

static const struct hello_flags_case hello_flags_cases[] = {
    {"no flags", {0}, 0, HS_OK, 0},
    {"express", {PROTO_HELLO_F_EXPRESS}, 1, HS_OK, PROTO_HELLO_F_EXPRESS},
    {"flags 0 sent", {0}, 1, HS_EPROTO, 0},
    {"alive", {PROTO_HELLO_F_ALIVE}, 1, HS_OK, PROTO_HELLO_F_ALIVE},
    {"express + alive",
     {PROTO_HELLO_F_EXPRESS | PROTO_HELLO_F_ALIVE},
     1,
     HS_OK,
     PROTO_HELLO_F_EXPRESS | PROTO_HELLO_F_ALIVE},
    {"probe", {PROTO_HELLO_F_PROBE}, 1, HS_OK, PROTO_HELLO_F_PROBE},
    {"fenced + alive",
     {PROTO_HELLO_F_FENCED | PROTO_HELLO_F_ALIVE},
     1,
     HS_OK,
     PROTO_HELLO_F_FENCED | PROTO_HELLO_F_ALIVE},
    {"probe + handover",
     {PROTO_HELLO_F_PROBE | PROTO_HELLO_F_HANDOVER},
     1,
     HS_OK,
     PROTO_HELLO_F_PROBE | PROTO_HELLO_F_HANDOVER},
    {"probe + switchover",
     {PROTO_HELLO_F_PROBE | PROTO_HELLO_F_SWITCHOVER},
     1,
     HS_OK,
     PROTO_HELLO_F_PROBE | PROTO_HELLO_F_SWITCHOVER},
    {"unknown bit", {0x80}, 1, HS_EPROTO, 0},
    {"express + unknown", {0x81}, 1, HS_EPROTO, 0},
    {"express + a byte", {PROTO_HELLO_F_EXPRESS, 0}, 2, HS_EPROTO, 0},
};

START_TEST(hello_flags)
{
	const struct hello_flags_case *tc = &hello_flags_cases[_i];
	struct proto_hello in, out;
	struct proto_wr w;
	struct proto_rd r;
	size_t i;
	int rc;

	memset(&in, 0, sizeof(in));
	in.magic = PROTO_MAGIC;
	in.version = PROTO_VERSION;
	snprintf(in.name, sizeof(in.name), "mn1");
	in.role = HS_ROLE_PRIMARY;
	in.epoch = 7;
	proto_wr_init(&w);
	proto_hello_encode(&w, &in);
	for (i = 0; i < tc->n; i++)
		proto_put_u8(&w, tc->bytes[i]);
	ck_assert_int_eq(w.rc, HS_OK);
	r = rd_of(&w, w.buf.len);
	memset(&out, 0xee, sizeof(out));
	rc = proto_hello_decode(&r, &out);
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d", tc->what, rc, tc->rc);
	if (rc == HS_OK) {
		ck_assert_uint_eq(out.flags, tc->flags);
		ck_assert_uint_eq(out.epoch, 7);
	}
	proto_wr_free(&w);
}
END_TEST

/* Flags are sent only when set, and come back as they were. */
START_TEST(hello_flags_roundtrip)
{
	struct proto_hello in, out;
	struct proto_wr w;
	struct proto_rd r;
	size_t plain;

	memset(&in, 0, sizeof(in));
	in.magic = PROTO_MAGIC;
	in.version = PROTO_VERSION;
	snprintf(in.name, sizeof(in.name), "mn1");
	in.role = HS_ROLE_PRIMARY;
	proto_wr_init(&w);
	proto_hello_encode(&w, &in);
	plain = w.buf.len;
	proto_wr_reset(&w);
	in.flags = PROTO_HELLO_F_EXPRESS;
	proto_hello_encode(&w, &in);
	ck_assert_uint_eq(w.buf.len, plain + 1);
	r = rd_of(&w, w.buf.len);
	ck_assert_int_eq(proto_hello_decode(&r, &out), HS_OK);
	ck_assert_uint_eq(out.flags, PROTO_HELLO_F_EXPRESS);
	ck_assert_str_eq(out.name, "mn1");
	proto_wr_free(&w);
}
END_TEST

/* -------------------------------------------------------------- entries */

/*
 * The fixed part of an encoded entry up to its link: u16 src, str path,
 * then type, mode, uid, gid, size, mtime_sec, mtime_nsec (33 bytes).
 */
#define ENT_TYPE_OFF(plen) (2 + 2 + (plen))
#define ENT_LINK_OFF(plen) (ENT_TYPE_OFF(plen) + 33)

/*
 * Encode `e` with any path and link on the wire, even ones the struct
 * cannot hold or the encoder would not send: proto_entry_encode with both
 * strings empty, and the two strings spliced in.
 */
static void
entry_raw(struct proto_wr *w, const struct proto_entry *e, const char *path,
          const char *link)
{
	struct proto_entry *tmp = malloc(sizeof(*tmp));
	struct proto_wr t;

	ck_assert_ptr_nonnull(tmp);
	*tmp = *e;
	tmp->path[0] = '\0';
	tmp->link[0] = '\0';
	proto_wr_init(&t);
	proto_entry_encode(&t, tmp);
	ck_assert_int_eq(t.rc, HS_OK);
	ck_assert_uint_ge(t.buf.len, ENT_LINK_OFF(0) + 2);
	proto_put_bytes(w, t.buf.data, 2);
	proto_put_str(w, path);
	proto_put_bytes(w, t.buf.data + 4, ENT_LINK_OFF(0) - 4);
	proto_put_str(w, link);
	proto_put_bytes(w, t.buf.data + ENT_LINK_OFF(0) + 2,
	                t.buf.len - ENT_LINK_OFF(0) - 2);
	proto_wr_free(&t);
	free(tmp);
}

static void
entry_check_eq(const struct proto_entry *a, const struct proto_entry *b)
{
	ck_assert_uint_eq(a->src, b->src);
	ck_assert_uint_eq(a->type, b->type);
	ck_assert_uint_eq(a->mode, b->mode);
	ck_assert_uint_eq(a->uid, b->uid);
	ck_assert_uint_eq(a->gid, b->gid);
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_int_eq(a->mtime_sec, b->mtime_sec);
	ck_assert_uint_eq(a->mtime_nsec, b->mtime_nsec);
	ck_assert_uint_eq(a->rdev, b->rdev);
	ck_assert_uint_eq(a->dev, b->dev);
	ck_assert_uint_eq(a->ino, b->ino);
	ck_assert_uint_eq(a->nlink, b->nlink);
	ck_assert_uint_eq(a->blocks, b->blocks);
	ck_assert_mem_eq(a->xhash, b->xhash, PROTO_XHASH_LEN);
	ck_assert_uint_eq(a->xattrs_len, b->xattrs_len);
	if (a->xattrs_len > 0)
		ck_assert_mem_eq(a->xattrs, b->xattrs, a->xattrs_len);
	ck_assert_str_eq(a->path, b->path);
	ck_assert_str_eq(a->link, b->link);
}

/* Append one extended attribute to a blob. */
static void
xa_put(struct proto_wr *w, const char *name, const char *value)
{
	proto_put_str(w, name);
	proto_put_u32(w, (uint32_t)strlen(value));
	proto_put_bytes(w, value, strlen(value));
}

struct entry_rt_case {
	uint16_t src;
	uint8_t type;
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t sec;
	uint32_t nsec;
	uint64_t rdev;
	int has_xattrs;
	const char *path, *link;
};

static const struct entry_rt_case entry_rt_cases[] = {
    {0, PROTO_E_FILE, 0644, 1000, 1000, 12345, 1700000000, 999999999, 0, 0,
     "docs/report.txt", ""},
    {1, PROTO_E_FILE, 07777, UINT32_MAX, 0, UINT64_MAX, INT64_MAX, 0, 0, 1,
     "a/b/c/d/\xc3\xa5\xc3\xa4\xc3\xb6 with spaces\n", ""},
    {2, PROTO_E_DIR, 01755, 0, 0, 0, 0, 1, 0, 0, "", ""},
    {3, PROTO_E_DIR, 02775, 33, 33, 4096, -1, 500000000, 0, 1, "var/www", ""},
    {65535, PROTO_E_SYMLINK, 0777, 5, 6, 9, INT64_MIN, 123, 0, 0, "lib/libx.so",
     "libx.so.1.2.3"},
    {7, PROTO_E_SYMLINK, 0, 0, 0, 0, 0, 0, 0, 0, "up", "../../../etc/passwd"},
    {8, PROTO_E_FIFO, 0620, 0, 5, 0, 1, 2, 0, 0, "run/pipe", ""},
    {9, PROTO_E_CHR, 0666, 0, 0, 0, 1, 2, 0x0103, 0, "dev/null", ""},
    {9, PROTO_E_BLK, 0660, 0, 6, 0, 1, 2, UINT64_MAX, 1, "dev/sda", ""},
};

START_TEST(entry_roundtrip)
{
	const struct entry_rt_case *tc = &entry_rt_cases[_i];
	struct proto_entry *in = calloc(1, sizeof(*in));
	struct proto_entry *out = malloc(sizeof(*out));
	struct proto_wr w, xa;
	struct proto_rd r;
	size_t n, full;
	int k;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	in->src = tc->src;
	in->type = tc->type;
	in->mode = tc->mode;
	in->uid = tc->uid;
	in->gid = tc->gid;
	in->size = tc->size;
	in->mtime_sec = tc->sec;
	in->mtime_nsec = tc->nsec;
	in->rdev = tc->rdev;
	in->dev = 0x0801 + tc->src;
	in->ino = UINT64_MAX - tc->src;
	in->nlink = 3;
	in->blocks = tc->size / 512;
	snprintf(in->path, sizeof(in->path), "%s", tc->path);
	snprintf(in->link, sizeof(in->link), "%s", tc->link);
	proto_wr_init(&xa);
	if (tc->has_xattrs) {
		/* names in strictly increasing order */
		xa_put(&xa, "security.capability", "\x01\x00\x00\x02");
		xa_put(&xa, "system.posix_acl_access", "acl");
		xa_put(&xa, "user.empty", "");
		ck_assert_int_eq(xa.rc, HS_OK);
		ck_assert_int_eq(proto_xattrs_check(xa.buf.data, xa.buf.len),
		                 HS_OK);
		in->xattrs = xa.buf.data;
		in->xattrs_len = (uint32_t)xa.buf.len;
		for (k = 0; k < PROTO_XHASH_LEN; k++)
			in->xhash[k] = (uint8_t)(k + 1);
	}

	proto_wr_init(&w);
	proto_entry_encode(&w, in);
	ck_assert_int_eq(w.rc, HS_OK);
	full = w.buf.len;
	ck_assert_uint_eq(w.buf.data[ENT_TYPE_OFF(strlen(tc->path))], tc->type);
	r = rd_of(&w, full);
	memset(out, 0xee, sizeof(*out));
	ck_assert_int_eq(proto_entry_decode(&r, out), HS_OK);
	ck_assert_int_eq(proto_rd_end(&r), HS_OK);
	entry_check_eq(out, in);

	/* truncated at every byte offset */
	for (n = 0; n < full; n++) {
		r = rd_of(&w, n);
		ck_assert_msg(proto_entry_decode(&r, out) == HS_EPROTO,
		              "prefix of %zu of %zu bytes", n, full);
	}
	proto_wr_free(&w);
	proto_wr_free(&xa);
	free(in);
	free(out);
}
END_TEST

/* Entries are batched: the decoder stops at the end of one entry. */
START_TEST(entry_batch)
{
	struct proto_entry *e = calloc(3, sizeof(*e));
	struct proto_wr w;
	struct proto_rd r;
	int i;

	ck_assert_ptr_nonnull(e);
	e[0].type = PROTO_E_DIR;
	e[0].mode = 0755;
	snprintf(e[0].path, sizeof(e[0].path), "d");
	e[1].type = PROTO_E_SYMLINK;
	e[1].mode = 0777;
	snprintf(e[1].path, sizeof(e[1].path), "d/l");
	snprintf(e[1].link, sizeof(e[1].link), "t");
	e[2].type = PROTO_E_FILE;
	e[2].mode = 0600;
	e[2].size = 3;
	snprintf(e[2].path, sizeof(e[2].path), "d/f");
	/* ignored for a file: the encoder sends no target */
	snprintf(e[2].link, sizeof(e[2].link), "stale");
	proto_wr_init(&w);
	proto_entry_encode(&w, &e[0]);
	proto_entry_encode(&w, &e[1]);
	proto_entry_encode(&w, &e[2]);
	ck_assert_int_eq(w.rc, HS_OK);
	r = rd_of(&w, w.buf.len);
	e[2].link[0] = '\0';
	for (i = 0; i < 3; i++) {
		struct proto_entry *out = malloc(sizeof(*out));

		ck_assert_ptr_nonnull(out);
		ck_assert_int_eq(proto_entry_decode(&r, out), HS_OK);
		entry_check_eq(out, &e[i]);
		free(out);
	}
	ck_assert_int_eq(proto_rd_end(&r), HS_OK);
	proto_wr_free(&w);
	free(e);
}
END_TEST

struct entry_bad_case {
	const char *what;
	uint8_t type;
	uint32_t mode;
	uint32_t nsec;
	uint64_t rdev;
	size_t path_len; /* path of this many 'p' */
	size_t link_len; /* link of this many 'l' */
	int rc;
};

static const struct entry_bad_case entry_bad_cases[] = {
    {"file", PROTO_E_FILE, 0644, 0, 0, 5, 0, HS_OK},
    {"root dir", PROTO_E_DIR, 0755, 0, 0, 0, 0, HS_OK},
    {"symlink", PROTO_E_SYMLINK, 0777, 0, 0, 1, 1, HS_OK},
    {"fifo", PROTO_E_FIFO, 0644, 0, 0, 1, 0, HS_OK},
    {"char device", PROTO_E_CHR, 0600, 0, 0x0501, 1, 0, HS_OK},
    {"all mode bits", PROTO_E_FILE, 07777, 0, 0, 1, 0, HS_OK},
    {"nsec max", PROTO_E_FILE, 0644, 999999999, 0, 1, 0, HS_OK},
    {"path at max", PROTO_E_FILE, 0644, 0, 0, PROTO_PATH_MAX, 0, HS_OK},
    {"link at max", PROTO_E_SYMLINK, 0777, 0, 0, 1, PROTO_PATH_MAX, HS_OK},
    {"type 0", 0, 0644, 0, 0, 1, 0, HS_EPROTO},
    {"first unknown type", PROTO_E_BLK + 1, 0644, 0, 0, 1, 0, HS_EPROTO},
    {"type 255", 255, 0644, 0, 0, 1, 0, HS_EPROTO},
    {"mode 010000", PROTO_E_FILE, 010000, 0, 0, 1, 0, HS_EPROTO},
    {"mode with S_IFREG", PROTO_E_FILE, 0100644, 0, 0, 1, 0, HS_EPROTO},
    {"mode with S_IFDIR", PROTO_E_DIR, 040755, 0, 0, 1, 0, HS_EPROTO},
    {"mode top bit", PROTO_E_FILE, 0x80000000u, 0, 0, 1, 0, HS_EPROTO},
    {"nsec 1e9", PROTO_E_FILE, 0644, 1000000000u, 0, 1, 0, HS_EPROTO},
    {"nsec max u32", PROTO_E_DIR, 0755, UINT32_MAX, 0, 1, 0, HS_EPROTO},
    {"symlink, no target", PROTO_E_SYMLINK, 0777, 0, 0, 1, 0, HS_EPROTO},
    {"file with target", PROTO_E_FILE, 0644, 0, 0, 1, 1, HS_EPROTO},
    {"dir with target", PROTO_E_DIR, 0755, 0, 0, 1, 3, HS_EPROTO},
    {"fifo with target", PROTO_E_FIFO, 0644, 0, 0, 1, 3, HS_EPROTO},
    {"file with rdev", PROTO_E_FILE, 0644, 0, 1, 1, 0, HS_EPROTO},
    {"fifo with rdev", PROTO_E_FIFO, 0644, 0, 1, 1, 0, HS_EPROTO},
    {"path max + 1", PROTO_E_FILE, 0644, 0, 0, PROTO_PATH_MAX + 1, 0,
     HS_ELIMIT},
    {"path 65535", PROTO_E_DIR, 0755, 0, 0, 65535, 0, HS_ELIMIT},
    {"link max + 1", PROTO_E_SYMLINK, 0777, 0, 0, 1, PROTO_PATH_MAX + 1,
     HS_ELIMIT},
};

START_TEST(entry_bad_table)
{
	const struct entry_bad_case *tc = &entry_bad_cases[_i];
	struct proto_entry *e = calloc(1, sizeof(*e));
	char *path = str_fill('p', tc->path_len);
	char *link = str_fill('l', tc->link_len);
	struct proto_wr w;
	struct proto_rd r;
	int rc;

	ck_assert_ptr_nonnull(e);
	e->src = 1;
	e->type = tc->type;
	e->mode = tc->mode;
	e->mtime_nsec = tc->nsec;
	e->rdev = tc->rdev;
	proto_wr_init(&w);
	entry_raw(&w, e, path, link);
	ck_assert_int_eq(w.rc, HS_OK);
	r = rd_of(&w, w.buf.len);
	rc = proto_entry_decode(&r, e);
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d", tc->what, rc, tc->rc);
	if (rc == HS_OK) {
		ck_assert_str_eq(e->path, path);
		ck_assert_str_eq(e->link, link);
		ck_assert_uint_eq(e->rdev, tc->rdev);
		ck_assert_int_eq(proto_rd_end(&r), HS_OK);
	}
	proto_wr_free(&w);
	free(path);
	free(link);
	free(e);
}
END_TEST

START_TEST(entry_nul_in_strings)
{
	struct proto_entry *e = calloc(1, sizeof(*e));
	struct proto_wr w;
	struct proto_rd r;

	ck_assert_ptr_nonnull(e);
	e->type = PROTO_E_SYMLINK;
	e->mode = 0777;
	proto_wr_init(&w);
	entry_raw(&w, e, "ok", "target");
	r = rd_of(&w, w.buf.len);
	ck_assert_int_eq(proto_entry_decode(&r, e), HS_OK);

	/* path "a\0b": entry_raw takes C strings, so patch the 'x' */
	proto_wr_reset(&w);
	entry_raw(&w, e, "axb", "target");
	w.buf.data[4 + 1] = '\0';
	r = rd_of(&w, w.buf.len);
	/* SPEC: a NUL is rejected per path by name; the session goes on. */
	ck_assert_int_eq(proto_entry_decode(&r, e), HS_OK);
	ck_assert_int_eq(e->has_nul, 1);
	ck_assert_str_eq(e->path, "a?b");

	/* target "tx" -> "t\0" */
	proto_wr_reset(&w);
	entry_raw(&w, e, "l", "tx");
	w.buf.data[ENT_LINK_OFF(1) + 2 + 1] = '\0';
	r = rd_of(&w, w.buf.len);
	ck_assert_int_eq(proto_entry_decode(&r, e), HS_OK);
	ck_assert_int_eq(e->has_nul, 1);
	proto_wr_free(&w);
	free(e);
}
END_TEST

/* Extended attribute blobs carried in entries. */
struct xa_case {
	const char *what;
	const char *n1, *v1, *n2, *v2; /* n2 NULL: one attribute only */
	uint32_t len_override;         /* 0: the real length of v2 / v1 */
	int rc;
};

static const struct xa_case xa_cases[] = {
    {"one", "user.a", "1", NULL, NULL, 0, HS_OK},
    {"sorted", "user.a", "1", "user.b", "22", 0, HS_OK},
    {"empty value", "user.a", "", "user.b", "", 0, HS_OK},
    {"same name twice", "user.a", "1", "user.a", "2", 0, HS_EPROTO},
    {"descending", "user.b", "1", "user.a", "2", 0, HS_EPROTO},
    {"empty name", "", "1", NULL, NULL, 0, HS_EPROTO},
    {"value past blob", "user.a", "1", NULL, NULL, 2, HS_EPROTO},
    {"value over 64 KiB", "user.a", "1", NULL, NULL, 65537, HS_ELIMIT},
};

START_TEST(entry_xattrs_table)
{
	const struct xa_case *tc = &xa_cases[_i];
	struct proto_entry *e = calloc(1, sizeof(*e));
	struct proto_wr xa, w;
	struct proto_rd r;
	int rc;

	ck_assert_ptr_nonnull(e);
	proto_wr_init(&xa);
	xa_put(&xa, tc->n1, tc->v1);
	if (tc->n2 != NULL)
		xa_put(&xa, tc->n2, tc->v2);
	if (tc->len_override != 0) {
		/* the u32 length of the last value sits just before it */
		const char *v = tc->n2 ? tc->v2 : tc->v1;
		size_t at = xa.buf.len - strlen(v) - 4;
		uint32_t n = tc->len_override;

		xa.buf.data[at] = (uint8_t)(n >> 24);
		xa.buf.data[at + 1] = (uint8_t)(n >> 16);
		xa.buf.data[at + 2] = (uint8_t)(n >> 8);
		xa.buf.data[at + 3] = (uint8_t)n;
	}
	ck_assert_int_eq(xa.rc, HS_OK);
	rc = proto_xattrs_check(xa.buf.data, xa.buf.len);
	ck_assert_msg(rc == tc->rc, "%s: check rc %d, want %d", tc->what, rc,
	              tc->rc);

	/* the entry decoder applies the same check */
	e->type = PROTO_E_FILE;
	e->xattrs = xa.buf.data;
	e->xattrs_len = (uint32_t)xa.buf.len;
	proto_wr_init(&w);
	proto_entry_encode(&w, e);
	r = rd_of(&w, w.buf.len);
	rc = proto_entry_decode(&r, e);
	ck_assert_msg(rc == tc->rc, "%s: decode rc %d, want %d", tc->what, rc,
	              tc->rc);
	proto_wr_free(&w);
	proto_wr_free(&xa);
	free(e);
}
END_TEST

START_TEST(entry_xattrs_limit)
{
	struct proto_entry *e = calloc(1, sizeof(*e));
	uint8_t *blob = calloc(1, PROTO_XATTRS_MAX + 1);
	struct proto_wr w;
	struct proto_rd r;

	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_nonnull(blob);
	e->type = PROTO_E_FILE;
	e->xattrs = blob;
	e->xattrs_len = PROTO_XATTRS_MAX + 1;
	proto_wr_init(&w);
	proto_entry_encode(&w, e);
	r = rd_of(&w, w.buf.len);
	ck_assert_int_eq(proto_entry_decode(&r, e), HS_ELIMIT);

	/* a length past the payload is malformed, not a reason to read on */
	e->xattrs_len = 10;
	proto_wr_reset(&w);
	proto_entry_encode(&w, e);
	r = rd_of(&w, w.buf.len - 1);
	ck_assert_int_eq(proto_entry_decode(&r, e), HS_EPROTO);
	proto_wr_free(&w);
	free(blob);
	free(e);
}
END_TEST

/* ------------------------------------------------------------- SET_OPEN */

/* Source i of a test set; source 2 is as long as a path may be. */
static char *
source_name(unsigned i)
{
	char *s;

	if (i == 2) {
		s = str_fill('q', PROTO_PATH_MAX);
		s[0] = '/';
		return s;
	}
	s = malloc(64);
	ck_assert_ptr_nonnull(s);
	snprintf(s, 64, "/srv/data %u/\xc3\xa5", i);
	return s;
}

static const uint16_t set_rt_counts[] = {1, 2, 3, 17, PROTO_SOURCES_MAX};

START_TEST(set_open_roundtrip)
{
	uint16_t n = set_rt_counts[_i], i;
	struct proto_set_open *in = calloc(1, sizeof(*in));
	struct proto_set_open *out = malloc(sizeof(*out));
	struct proto_wr w;
	struct proto_rd r;
	size_t k;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	snprintf(in->name, sizeof(in->name), "www-%u", n);
	in->n_sources = n;
	for (i = 0; i < n; i++)
		in->sources[i] = source_name(i);
	proto_wr_init(&w);
	proto_set_open_encode(&w, in);
	ck_assert_int_eq(w.rc, HS_OK);

	r = rd_of(&w, w.buf.len);
	memset(out, 0xee, sizeof(*out));
	ck_assert_int_eq(proto_set_open_decode(&r, out), HS_OK);
	ck_assert_str_eq(out->name, in->name);
	ck_assert_uint_eq(out->n_sources, n);
	for (i = 0; i < n; i++)
		ck_assert_str_eq(out->sources[i], in->sources[i]);
	proto_set_open_clear(out);
	ck_assert_uint_eq(out->n_sources, 0);
	proto_set_open_clear(out); /* twice is harmless */

	/* truncated anywhere: an error, and nothing leaks (ASan) */
	for (k = 0; k < w.buf.len; k++) {
		int rc;

		r = rd_of(&w, k);
		rc = proto_set_open_decode(&r, out);
		ck_assert_msg(rc == HS_EPROTO, "prefix %zu: rc %d", k, rc);
	}
	proto_wr_free(&w);
	proto_set_open_clear(in);
	free(in);
	free(out);
}
END_TEST

enum set_bad { SB_NONE, SB_LONG, SB_NUL };

struct set_bad_case {
	const char *what;
	size_t name_len;
	uint16_t count;   /* count on the wire */
	uint16_t present; /* sources actually sent */
	uint16_t bad_at;  /* which source is bad */
	enum set_bad bad;
	size_t trailing;
	int rc;
};

static const struct set_bad_case set_bad_cases[] = {
    {"good", 3, 3, 3, 0, SB_NONE, 0, HS_OK},
    {"zero sources", 3, 0, 0, 0, SB_NONE, 0, HS_ELIMIT},
    {"zero sources, more data", 3, 0, 2, 0, SB_NONE, 0, HS_ELIMIT},
    {"max + 1 sources", 3, PROTO_SOURCES_MAX + 1, PROTO_SOURCES_MAX + 1, 0,
     SB_NONE, 0, HS_ELIMIT},
    {"65535 sources", 3, 65535, 1, 0, SB_NONE, 0, HS_ELIMIT},
    {"name max", PROTO_NODE_MAX, 1, 1, 0, SB_NONE, 0, HS_OK},
    {"name max + 1", PROTO_NODE_MAX + 1, 1, 1, 0, SB_NONE, 0, HS_ELIMIT},
    {"source too long", 3, 3, 3, 2, SB_LONG, 0, HS_ELIMIT},
    {"first source too long", 3, 3, 3, 0, SB_LONG, 0, HS_ELIMIT},
    {"NUL in source", 3, 3, 3, 1, SB_NUL, 0, HS_EPROTO},
    {"fewer than counted", 3, 4, 3, 0, SB_NONE, 0, HS_EPROTO},
    {"trailing byte", 3, 2, 2, 0, SB_NONE, 1, HS_EPROTO},
};

START_TEST(set_open_bad_table)
{
	const struct set_bad_case *tc = &set_bad_cases[_i];
	struct proto_set_open *s = malloc(sizeof(*s));
	char *name = str_fill('n', tc->name_len);
	char *longsrc = str_fill('/', PROTO_PATH_MAX + 1);
	struct proto_wr w;
	struct proto_rd r;
	uint16_t i;
	int rc;

	ck_assert_ptr_nonnull(s);
	proto_wr_init(&w);
	proto_put_str(&w, name);
	proto_put_u16(&w, tc->count);
	for (i = 0; i < tc->present; i++) {
		if (tc->bad == SB_LONG && i == tc->bad_at)
			proto_put_str(&w, longsrc);
		else if (tc->bad == SB_NUL && i == tc->bad_at)
			proto_put_strn(&w, "/a\0b", 4);
		else
			proto_put_str(&w, "/srv/x");
	}
	for (i = 0; i < tc->trailing; i++)
		proto_put_u8(&w, 0);
	ck_assert_int_eq(w.rc, HS_OK);
	r = rd_of(&w, w.buf.len);
	rc = proto_set_open_decode(&r, s);
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d", tc->what, rc, tc->rc);
	if (rc == HS_OK) {
		ck_assert_str_eq(s->name, name);
		ck_assert_uint_eq(s->n_sources, tc->count);
		proto_set_open_clear(s);
	}
	/* on failure the decoder owns nothing: LeakSanitizer checks */
	proto_wr_free(&w);
	free(name);
	free(longsrc);
	free(s);
}
END_TEST

/* ------------------------------------------------------ SET_OPEN scope */

static const size_t scope_rt_counts[] = {0, 1, 3, 100};

/* A SET_OPEN body followed by a scope, as SET_OPEN_SCOPED carries it. */
START_TEST(scope_roundtrip)
{
	const size_t n = scope_rt_counts[_i];
	struct proto_scope *v = calloc(n ? n : 1, sizeof(*v)), *got = NULL;
	struct proto_set_open *so = calloc(1, sizeof(*so));
	struct proto_wr w;
	struct proto_rd r;
	size_t i, k, head, n_got = 12345;

	ck_assert_ptr_nonnull(v);
	ck_assert_ptr_nonnull(so);
	for (i = 0; i < n; i++) {
		v[i].src = (uint16_t)(i * 7);
		v[i].recursive = (uint8_t)(i & 1);
		v[i].path = malloc(32);
		ck_assert_ptr_nonnull(v[i].path);
		snprintf(v[i].path, 32, "d%zu/f", i);
		if (i == 1)
			v[i].path[0] = '\0'; /* a source itself */
	}
	snprintf(so->name, sizeof(so->name), "www");
	so->n_sources = 2;
	so->sources[0] = hs_xstrdup("/srv/www");
	so->sources[1] = hs_xstrdup("/etc/www");
	proto_wr_init(&w);
	proto_set_open_encode(&w, so);
	head = w.buf.len;
	proto_scope_encode(&w, v, n);
	ck_assert_int_eq(w.rc, HS_OK);
	proto_set_open_clear(so);

	/* the plain decoder refuses the extra bytes */
	r = rd_of(&w, w.buf.len);
	ck_assert_int_eq(proto_set_open_decode(&r, so), HS_EPROTO);

	r = rd_of(&w, w.buf.len);
	ck_assert_int_eq(proto_set_open_decode_head(&r, so), HS_OK);
	ck_assert_str_eq(so->name, "www");
	ck_assert_uint_eq(so->n_sources, 2);
	ck_assert_str_eq(so->sources[1], "/etc/www");
	ck_assert_uint_eq(r.left, w.buf.len - head);
	ck_assert_int_eq(proto_scope_decode(&r, &got, &n_got), HS_OK);
	ck_assert_uint_eq(n_got, n);
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(got[i].src, v[i].src);
		ck_assert_uint_eq(got[i].recursive, v[i].recursive);
		ck_assert_str_eq(got[i].path, v[i].path);
	}
	proto_scope_free(got, n_got);
	proto_set_open_clear(so);

	/* the scope cut short anywhere: an error, and no leak (ASan) */
	for (k = head; k < w.buf.len; k++) {
		int rc;

		r.p = w.buf.data + head;
		r.left = k - head;
		got = NULL;
		rc = proto_scope_decode(&r, &got, &n_got);
		ck_assert_msg(rc == HS_EPROTO, "prefix %zu: rc %d", k - head,
		              rc);
		ck_assert_ptr_null(got);
	}
	proto_wr_free(&w);
	proto_scope_free(v, n);
	proto_scope_free(NULL, 0);
	free(so);
}
END_TEST

struct scope_bad_case {
	const char *what;
	uint32_t count;  /* on the wire */
	uint32_t items;  /* actually sent */
	uint8_t rec;     /* `recursive` of the last item */
	size_t path_len; /* path length of the last item */
	size_t trailing;
	int rc;
};

static const struct scope_bad_case scope_bad_cases[] = {
    {"good", 3, 3, 1, 5, 0, HS_OK},
    {"empty", 0, 0, 0, 0, 0, HS_OK},
    {"at the limit", PROTO_SCOPE_MAX, PROTO_SCOPE_MAX, 0, 0, 0, HS_OK},
    {"limit + 1", PROTO_SCOPE_MAX + 1, PROTO_SCOPE_MAX + 1, 0, 0, 0, HS_ELIMIT},
    {"count 2^32 - 1", UINT32_MAX, 1, 0, 0, 0, HS_ELIMIT},
    {"count past payload", 1000, 1, 0, 0, 0, HS_EPROTO},
    {"one item short", 3, 2, 0, 3, 0, HS_EPROTO},
    {"recursive 2", 2, 2, 2, 1, 0, HS_EPROTO},
    {"recursive 255", 1, 1, 255, 1, 0, HS_EPROTO},
    {"path at max", 2, 2, 0, PROTO_PATH_MAX, 0, HS_OK},
    {"path max + 1", 2, 2, 0, PROTO_PATH_MAX + 1, 0, HS_ELIMIT},
    {"trailing byte", 2, 2, 0, 1, 1, HS_EPROTO},
};

START_TEST(scope_bad_table)
{
	const struct scope_bad_case *tc = &scope_bad_cases[_i];
	char *last = str_fill('p', tc->path_len);
	struct proto_scope *got = NULL;
	struct proto_wr w;
	struct proto_rd r;
	size_t n = 0;
	uint32_t i;
	int rc;

	proto_wr_init(&w);
	proto_put_u32(&w, tc->count);
	for (i = 0; i < tc->items; i++) {
		int is_last = i + 1 == tc->items;

		proto_put_u16(&w, (uint16_t)i);
		proto_put_str(&w, is_last ? last : "");
		proto_put_u8(&w, is_last ? tc->rec : 0);
	}
	for (i = 0; i < tc->trailing; i++)
		proto_put_u8(&w, 0);
	ck_assert_int_eq(w.rc, HS_OK);
	r = rd_of(&w, w.buf.len);
	rc = proto_scope_decode(&r, &got, &n);
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d", tc->what, rc, tc->rc);
	if (rc == HS_OK) {
		ck_assert_uint_eq(n, tc->count);
		if (n > 0)
			ck_assert_str_eq(got[n - 1].path, last);
		proto_scope_free(got, n);
	} else {
		ck_assert_ptr_null(got); /* nothing owned; ASan checks leaks */
	}
	proto_wr_free(&w);
	free(last);
}
END_TEST

/*
 * A path named twice, once plain and once recursive, in either order:
 * the merged entry is recursive and what is below it goes, or the
 * standby lists those paths twice (a malformed listing, and a session
 * that reconnects forever on the same scope).
 */
START_TEST(scope_normalize_merged_recursive)
{
	static const char *in[] = {"d/sub", "d", "e", "d/sub/x", "d", "d0"};
	static const uint8_t rec[] = {1, 0, 0, 0, 1, 0};
	struct proto_scope *v = calloc(6, sizeof(*v));
	size_t n = 6, i;

	ck_assert_ptr_nonnull(v);
	for (i = 0; i < n; i++) {
		v[i].path = strdup(in[_i ? n - 1 - i : i]);
		v[i].recursive = rec[_i ? n - 1 - i : i];
	}
	proto_scope_normalize(v, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0].path, "d");
	ck_assert_uint_eq(v[0].recursive, 1);
	ck_assert_str_eq(v[1].path, "d0");
	ck_assert_str_eq(v[2].path, "e");
	proto_scope_free(v, n);
}
END_TEST

/* ---------------------------------------------------------------- hashes */

struct hash_case {
	const char *input;
	size_t repeat;
	const char *hex;
};

static const struct hash_case hash_cases[] = {
    /* FIPS 180-2 and NIST CAVS vectors */
    {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", 1,
     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"a", 1000000,
     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
};

static const size_t hash_chunks[] = {1, 3, 63, 64, 65, 1000, 4096};

START_TEST(hash_table)
{
	const struct hash_case *tc = &hash_cases[_i];
	size_t unit = strlen(tc->input), len = unit * tc->repeat, i, off;
	uint8_t want[PROTO_HASH_LEN], got[PROTO_HASH_LEN];
	struct proto_hash *h = NULL;
	uint8_t *data = malloc(len + 1);

	ck_assert_ptr_nonnull(data);
	for (i = 0; i < tc->repeat; i++)
		memcpy(data + i * unit, tc->input, unit);
	hex_to_bin(tc->hex, want, sizeof(want));
	ck_assert_int_eq(proto_hash_new(&h), HS_OK);

	/* one shot */
	proto_hash_update(h, data, len);
	proto_hash_final(h, got);
	ck_assert_mem_eq(got, want, sizeof(want));
	proto_hash_free(h);

	/* incremental, in chunks of every size in the table */
	for (i = 0; i < N_ELEM(hash_chunks); i++) {
		ck_assert_int_eq(proto_hash_new(&h), HS_OK);
		for (off = 0; off < len; off += hash_chunks[i]) {
			size_t n = len - off < hash_chunks[i] ? len - off
			                                      : hash_chunks[i];

			proto_hash_update(h, data + off, n);
			proto_hash_update(h, data, 0);
		}
		proto_hash_final(h, got);
		ck_assert_msg(memcmp(got, want, sizeof(want)) == 0,
		              "chunk %zu differs", hash_chunks[i]);
		proto_hash_free(h);
	}
	proto_hash_free(NULL);
	free(data);
}
END_TEST

/*
 * The transfer hash: XXH3-128 in canonical (big-endian) order in the
 * first 16 bytes, zeros after; the same in any chunking, reset by final,
 * and a hole marker changes it.
 */
START_TEST(hash_xfer)
{
	static const uint8_t data[5000] = {1, 2, 3, [4999] = 9};
	XXH128_canonical_t c;
	uint8_t got[PROTO_HASH_LEN], want[PROTO_HASH_LEN] = {0};
	struct proto_hash *h;
	size_t i, off;

	XXH128_canonicalFromHash(&c, XXH3_128bits(data, sizeof(data)));
	memcpy(want, c.digest, sizeof(c.digest));
	ck_assert_int_eq(proto_hash_new_xfer(&h), HS_OK);
	for (i = 0; i < N_ELEM(hash_chunks); i++) {
		for (off = 0; off < sizeof(data); off += hash_chunks[i])
			proto_hash_update(h, data + off,
			                  sizeof(data) - off < hash_chunks[i]
			                      ? sizeof(data) - off
			                      : hash_chunks[i]);
		proto_hash_final(h, got);
		ck_assert_msg(memcmp(got, want, sizeof(want)) == 0,
		              "chunk %zu differs", hash_chunks[i]);
	}
	proto_hash_update(h, data, 100);
	proto_hash_hole(h, 1 << 20);
	proto_hash_final(h, got);
	ck_assert_mem_ne(got, want, sizeof(want));
	proto_hash_free(h);
}
END_TEST

/* ---------------------------------------------------- hostile patches */

/* One frame of a patch: offset and length of its data (0xff filled). */
struct blk {
	uint64_t off;
	size_t len;
};

static const struct rx_case {
	const char *name;
	uint64_t basis, final;
	uint32_t bsize;
	struct blk b[4];
	size_t n;
	int init_rc;     /* proto_patch_rx_init */
	int block_rc;    /* the first failing block, or HS_OK */
	size_t bad;      /* its index */
	int end_rc;      /* proto_patch_rx_end when all blocks passed */
	const char *why; /* part of the reason */
} rx_cases[] = {
    {"same size, two blocks",
     4 * MIB,
     4 * MIB,
     16 * KIB,
     {{0, 16 * KIB}, {MIB, 16 * KIB}},
     2,
     HS_OK,
     HS_OK,
     0,
     HS_OK,
     ""},
    {"no block at all",
     4 * MIB,
     4 * MIB,
     16 * KIB,
     {{0, 0}},
     0,
     HS_OK,
     HS_OK,
     0,
     HS_OK,
     ""},
    {"grown: the tail sent",
     4 * MIB,
     4 * MIB + 100,
     16 * KIB,
     {{4 * MIB, 100}},
     1,
     HS_OK,
     HS_OK,
     0,
     HS_OK,
     ""},
    {"shrunk: the new last block",
     4 * MIB,
     2 * MIB + 5,
     16 * KIB,
     {{2 * MIB, 5}},
     1,
     HS_OK,
     HS_OK,
     0,
     HS_OK,
     ""},
    {"block size not a power of two",
     MIB,
     MIB,
     20000,
     {{0, 0}},
     0,
     HS_EPROTO,
     0,
     0,
     0,
     "block size"},
    {"block size too small",
     MIB,
     MIB,
     4096,
     {{0, 0}},
     0,
     HS_EPROTO,
     0,
     0,
     0,
     "block size"},
    {"block size too big",
     MIB,
     MIB,
     4 * MIB,
     {{0, 0}},
     0,
     HS_EPROTO,
     0,
     0,
     0,
     "block size"},
    {"final size over the limit",
     MIB,
     600 * MIB,
     16 * KIB,
     {{0, 0}},
     0,
     HS_ELIMIT,
     0,
     0,
     0,
     "past the limit"},
    {"offset past the final size",
     4 * MIB,
     4 * MIB,
     16 * KIB,
     {{4 * MIB, 16 * KIB}},
     1,
     HS_OK,
     HS_EPROTO,
     0,
     0,
     "past the final size"},
    {"offset not on a block",
     4 * MIB,
     4 * MIB,
     16 * KIB,
     {{100, 16 * KIB}},
     1,
     HS_OK,
     HS_EPROTO,
     0,
     0,
     "block boundary"},
    {"unsorted",
     4 * MIB,
     4 * MIB,
     16 * KIB,
     {{MIB, 16 * KIB}, {0, 16 * KIB}},
     2,
     HS_OK,
     HS_EPROTO,
     1,
     0,
     "unsorted"},
    {"overlapping (twice the same)",
     4 * MIB,
     4 * MIB,
     16 * KIB,
     {{MIB, 16 * KIB}, {MIB, 16 * KIB}},
     2,
     HS_OK,
     HS_EPROTO,
     1,
     0,
     "overlapping"},
    {"block larger than the block size",
     4 * MIB,
     4 * MIB,
     16 * KIB,
     {{0, 32 * KIB}},
     1,
     HS_OK,
     HS_ELIMIT,
     0,
     0,
     "not 16384"},
    {"short block inside the file",
     4 * MIB,
     4 * MIB,
     16 * KIB,
     {{0, 100}},
     1,
     HS_OK,
     HS_EPROTO,
     0,
     0,
     "not 16384"},
    {"last block overruns the end",
     4 * MIB,
     4 * MIB + 100,
     16 * KIB,
     {{4 * MIB, 16 * KIB}},
     1,
     HS_OK,
     HS_ELIMIT,
     0,
     0,
     "not 100"},
    {"growth with a gap",
     4 * MIB,
     4 * MIB + 40 * KIB,
     16 * KIB,
     {{4 * MIB + 16 * KIB, 16 * KIB}},
     1,
     HS_OK,
     HS_EPROTO,
     0,
     0,
     "unsent past the basis"},
    {"growth never sent",
     4 * MIB,
     5 * MIB,
     16 * KIB,
     {{0, 16 * KIB}},
     1,
     HS_OK,
     HS_OK,
     0,
     HS_EPROTO,
     "unsent"},
    {"shrunk, new last block missing",
     4 * MIB,
     2 * MIB + 5,
     16 * KIB,
     {{0, 16 * KIB}},
     1,
     HS_OK,
     HS_OK,
     0,
     HS_EPROTO,
     "unsent"},
};

START_TEST(rx_table)
{
	const struct rx_case *c = &rx_cases[_i];
	struct proto_patch_hdr h;
	struct proto_patch_rx rx;
	char why[256] = "";
	uint8_t *frame = malloc(8 + 64 * KIB);
	size_t i;
	int rc;

	memset(&h, 0, sizeof(h));
	h.bsize = c->bsize;
	rc = proto_patch_rx_init(&rx, c->basis, c->final, &h, why, sizeof(why));
	ck_assert_msg(rc == c->init_rc, "%s: init %d (%s)", c->name, rc, why);
	if (rc < 0)
		goto check_why;
	for (i = 0; i < c->n; i++) {
		const uint8_t *data;
		uint64_t off;
		size_t n;
		int k;

		for (k = 0; k < 8; k++)
			frame[k] = (uint8_t)(c->b[i].off >> (56 - 8 * k));
		memset(frame + 8, 0xff, c->b[i].len);
		rc = proto_patch_rx_block(&rx, frame, 8 + c->b[i].len, &off,
		                          &data, &n, why, sizeof(why));
		if (rc < 0) {
			ck_assert_msg(rc == c->block_rc && i == c->bad,
			              "%s: block %zu: %d (%s)", c->name, i, rc,
			              why);
			goto check_why;
		}
		ck_assert_uint_eq(off, c->b[i].off);
		ck_assert_uint_eq(n, c->b[i].len);
		ck_assert_ptr_eq(data, frame + 8);
	}
	ck_assert_msg(c->block_rc == HS_OK, "%s: blocks passed", c->name);
	rc = proto_patch_rx_end(&rx, why, sizeof(why));
	ck_assert_msg(rc == c->end_rc, "%s: end %d (%s)", c->name, rc, why);
check_why:
	ck_assert_msg(strstr(why, c->why) != NULL, "%s: why '%s'", c->name,
	              why);
	free(frame);
}
END_TEST

START_TEST(rx_short_frame)
{
	struct proto_patch_hdr h = {.bsize = 16 * KIB};
	struct proto_patch_rx rx;
	uint8_t frame[7] = {0};
	const uint8_t *data;
	uint64_t off;
	size_t n;
	char why[256];

	ck_assert_int_eq(
	    proto_patch_rx_init(&rx, MIB, MIB, &h, why, sizeof(why)), HS_OK);
	ck_assert_int_eq(proto_patch_rx_block(&rx, frame, sizeof(frame), &off,
	                                      &data, &n, why, sizeof(why)),
	                 HS_EPROTO);
}
END_TEST

START_TEST(hdr_codec)
{
	struct proto_patch_hdr h, g;
	struct proto_wr w;
	struct proto_rd r;

	memset(&h, 0xab, sizeof(h.basis));
	h.bsize = 32 * KIB;
	proto_wr_init(&w);
	proto_patch_hdr_encode(&w, &h);
	r.p = w.buf.data;
	r.left = w.buf.len;
	ck_assert_int_eq(proto_patch_hdr_decode(&r, &g), HS_OK);
	ck_assert_mem_eq(g.basis, h.basis, sizeof(h.basis));
	ck_assert_uint_eq(g.bsize, h.bsize);
	/* Truncated, and with a byte too many. */
	r.p = w.buf.data;
	r.left = w.buf.len - 1;
	ck_assert_int_eq(proto_patch_hdr_decode(&r, &g), HS_EPROTO);
	proto_put_u8(&w, 0);
	r.p = w.buf.data;
	r.left = w.buf.len;
	ck_assert_int_eq(proto_patch_hdr_decode(&r, &g), HS_EPROTO);
	proto_wr_free(&w);
}
END_TEST

/* ---------------------------------------------------- TLS connections */

/* Per network step; keeps a hung peer from hanging the test. */
#define IO_MS 5000

enum { MN1, MN2, MN3, N_IDS };
static const char *const id_names[N_IDS] = {"mn1", "mn2", "mn3"};

static char tmpdir[96];
static uint8_t fps[N_IDS][32];

/*
 * Each test gets its own folder inside `base`, which the unchecked
 * fixture makes once in the runner and removes at the end: a failed
 * assertion ends a forked test before its teardown runs.
 */
static char base[64];

static void
base_setup(void)
{
	snprintf(base, sizeof(base), "/tmp/check_proto.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static void
base_teardown(void)
{
	nftw(base, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Three identities, each in its own folder: TMP/mn1, TMP/mn2, TMP/mn3. */
static void
conn_setup(void)
{
	char dir[160], why[256];
	int i, rc;

	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	for (i = 0; i < N_IDS; i++) {
		snprintf(dir, sizeof(dir), "%s/%s", tmpdir, id_names[i]);
		ck_assert_int_eq(mkdir(dir, 0700), 0);
		why[0] = '\0';
		rc =
		    proto_keygen(dir, id_names[i], 0, fps[i], why, sizeof(why));
		ck_assert_msg(rc == HS_OK, "keygen %s: %d %s", id_names[i], rc,
		              why);
	}
}

static void
conn_teardown(void)
{
	ck_assert_int_eq(nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* A context presenting identity `who`, pinning identity `pinned`. */
static int
tls_make(int who, int pinned, struct proto_tls **out)
{
	char cert[160], key[160];
	struct proto_tls_opts o;

	snprintf(cert, sizeof(cert), "%s/%s/node.crt", tmpdir, id_names[who]);
	snprintf(key, sizeof(key), "%s/%s/node.key", tmpdir, id_names[who]);
	memset(&o, 0, sizeof(o));
	o.cert = cert;
	o.key = key;
	o.pins = (const void *)fps[pinned]; /* one uint8_t[32] */
	o.n_pins = 1;
	char why[256];

	return proto_tls_new(&o, out, why, sizeof(why));
}

/* What the server child does once a connection is up. */
enum srv_mode {
	SRV_ACCEPT, /* only accept, then wait for the close */
	SRV_HELLO,  /* read a HELLO, answer with ours, wait for the close */
	SRV_ECHO,   /* send every frame back unchanged until the close */
	SRV_SCRIPT, /* send srv_frame, then report the reply's type */
	SRV_BUSY,   /* work SRV_BUSY_MS reading nothing, then say "done" */
};

/* SRV_BUSY: how long it works, and its keepalive (0: none); set before
 * the fork. */
#define SRV_BUSY_MS 1200
static int srv_ka_ms;

/* The frame SRV_SCRIPT sends; set before the fork. */
static uint8_t srv_type;
static struct proto_wr srv_frame;

/* What the server child reports through its pipe. */
struct srv_result {
	int rc;         /* accept, or the first failure after it */
	int n;          /* frames echoed, peer role, or reply type */
	uint64_t epoch; /* the peer's epoch (SRV_HELLO) */
	char text[256]; /* `why`, peer name or reply text */
};

struct server {
	pid_t pid;
	unsigned port;
	int resfd;
};

/* Read until the client closes; HS_OK for a clean close. */
static int
srv_drain(struct proto_conn *c)
{
	struct proto_msg m;
	int rc;

	while ((rc = proto_conn_recv(c, &m)) == HS_OK)
		;
	return rc == HS_ECLOSED ? HS_OK : rc;
}

static int
srv_run(struct proto_conn *c, enum srv_mode mode, struct srv_result *res)
{
	struct proto_hello peer, mine;
	struct proto_msg m;
	int rc;

	switch (mode) {
	case SRV_ACCEPT:
		res->n = 1; /* accepted */
		return srv_drain(c);
	case SRV_HELLO:
		rc = proto_hello_recv(c, &peer, res->text, sizeof(res->text));
		if (rc < 0)
			return rc;
		snprintf(res->text, sizeof(res->text), "%s", peer.name);
		res->n = peer.role;
		res->epoch = peer.epoch;
		memset(&mine, 0, sizeof(mine));
		mine.magic = PROTO_MAGIC;
		mine.version = PROTO_VERSION;
		snprintf(mine.name, sizeof(mine.name), "mn1");
		mine.role = HS_ROLE_STANDBY;
		mine.epoch = 7;
		if ((rc = proto_hello_send(c, &mine)) < 0)
			return rc;
		return srv_drain(c);
	case SRV_ECHO:
		while ((rc = proto_conn_recv(c, &m)) == HS_OK) {
			rc = proto_conn_send(c, m.type, m.data, m.len,
			                     PROTO_RAW, NULL);
			if (rc == HS_OK)
				rc = proto_conn_flush(c);
			if (rc < 0)
				return rc;
			res->n++;
		}
		return rc == HS_ECLOSED ? HS_OK : rc;
	case SRV_SCRIPT:
		rc = proto_conn_send(c, srv_type, srv_frame.buf.data,
		                     srv_frame.buf.len, PROTO_RAW, NULL);
		if (rc == HS_OK)
			rc = proto_conn_flush(c);
		if (rc < 0)
			return rc;
		res->n = -1; /* no reply */
		if ((rc = proto_conn_recv(c, &m)) == HS_OK) {
			res->n = m.type;
			snprintf(res->text, sizeof(res->text), "%.*s",
			         (int)(m.len < 200 ? m.len : 200),
			         (const char *)m.data);
			rc = srv_drain(c);
		}
		return rc == HS_ECLOSED ? HS_OK : rc;
	case SRV_BUSY: {
		struct timespec ts = {SRV_BUSY_MS / 1000,
		                      (SRV_BUSY_MS % 1000) * 1000000L};

		/* One echo first: the client reads the TLS session tickets
		 * with it, as a HELLO would. */
		if ((rc = proto_conn_recv(c, &m)) < 0 ||
		    (rc = proto_conn_send(c, m.type, m.data, m.len, PROTO_RAW,
		                          NULL)) < 0 ||
		    (rc = proto_conn_flush(c)) < 0)
			return rc;
		if (srv_ka_ms > 0 &&
		    (rc = proto_conn_keepalive(c, srv_ka_ms)) < 0)
			return rc;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		rc = proto_conn_send(c, PROTO_T_LIST, "done", 4, PROTO_RAW,
		                     NULL);
		if (rc == HS_OK)
			rc = proto_conn_flush(c);
		return rc < 0 ? rc : srv_drain(c);
	}
	}
	abort();
}

/* The forked server: identity mn1, pinning `pinned`.  Never returns. */
static void __attribute__((noreturn))
srv_child(int lfd, int resfd, enum srv_mode mode, int pinned)
{
	struct srv_result res;
	struct proto_tls *t = NULL;
	struct proto_conn *c = NULL;
	int fd;

	memset(&res, 0, sizeof(res));
	if ((res.rc = tls_make(MN1, pinned, &t)) < 0)
		goto out;
	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		res.rc = -errno;
		goto out;
	}
	res.rc =
	    proto_conn_accept(t, fd, IO_MS, &c, res.text, sizeof(res.text));
	if (res.rc == HS_OK)
		res.rc = srv_run(c, mode, &res);
out:
	proto_conn_free(c);
	proto_tls_free(t);
	proto_wr_free(&srv_frame);
	close(lfd);
	if (write(resfd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		exit(3);
	close(resfd);
	/* exit(), not _exit(): LeakSanitizer checks the server side too */
	exit(0);
}

/* Listen on 127.0.0.1, port 0, and fork the server. */
static void
server_start(struct server *s, enum srv_mode mode, int pinned)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct timeval tv = {IO_MS / 1000, 0};
	int lfd, p[2];

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	/* accept() gives up after IO_MS too */
	ck_assert_int_eq(
	    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	s->port = ntohs(sa.sin_port);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	fflush(NULL);
	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		close(p[0]);
		srv_child(lfd, p[1], mode, pinned);
	}
	close(p[1]);
	close(lfd);
	s->resfd = p[0];
}

/* Collect the server's report and reap it. */
static void
server_finish(struct server *s, struct srv_result *res)
{
	size_t got = 0;
	int st;

	memset(res, 0, sizeof(*res));
	while (got < sizeof(*res)) {
		ssize_t n =
		    read(s->resfd, (char *)res + got, sizeof(*res) - got);

		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n > 0, "server sent no report");
		got += (size_t)n;
	}
	close(s->resfd);
	ck_assert_int_eq(waitpid(s->pid, &st, 0), s->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "server child: status %#x", st);
	res->text[sizeof(res->text) - 1] = '\0';
}

struct client {
	struct proto_tls *t;
	struct proto_conn *c;
	char why[256];
};

/* Connect as `who`, pinning `pinned`; returns the connect result. */
static int
client_open(struct client *cl, const struct server *s, int who, int pinned)
{
	char hp[32];
	int rc;

	memset(cl, 0, sizeof(*cl));
	ck_assert_int_eq(tls_make(who, pinned, &cl->t), HS_OK);
	snprintf(hp, sizeof(hp), "127.0.0.1:%u", s->port);
	rc = proto_conn_connect(cl->t, hp, IO_MS, &cl->c, cl->why,
	                        sizeof(cl->why));
	if (rc == HS_OK) {
		ck_assert_ptr_nonnull(cl->c);
		proto_conn_set_timeout(cl->c, IO_MS);
	}
	return rc;
}

static void
client_close(struct client *cl)
{
	proto_conn_free(cl->c);
	proto_tls_free(cl->t);
	cl->c = NULL;
	cl->t = NULL;
}

/*
 * A wrong identity: what proto_tls_new returns and what its one line
 * starts with ('@' stands for tmpdir), for files made by id_files_make.
 */
static const struct id_case {
	const char *cert;
	const char *key;
	const char *ca; /* NULL: pinned mode */
	int rc;
	const char *phrase;
} id_cases[] = {
    {"mn1/node.crt", "mn1/node.key", "mn2/node.crt", HS_OK, ""},
    {"mn1/node.crt", "bad/missing.key", NULL, -ENOENT,
     "private key @/bad/missing.key: No such file or directory"},
    {"mn1/node.crt", "bad/dir.key", NULL, HS_ECONFIG,
     "private key @/bad/dir.key: Is a directory"},
    {"mn1/node.crt", "bad/fifo.key", NULL, HS_ECONFIG,
     "private key @/bad/fifo.key: not a regular file"},
    {"mn1/node.crt", "bad/empty.key", NULL, HS_ECONFIG,
     "private key @/bad/empty.key: the file is empty"},
    {"mn1/node.crt", "bad/garbage.key", NULL, HS_ECONFIG,
     "private key @/bad/garbage.key: not a PEM private key: no -----BEGIN "
     "line"},
    {"mn1/node.crt", "bad/base64.key", NULL, HS_ECONFIG,
     "private key @/bad/base64.key: not a PEM private key: a PEM block "
     "does not decode"},
    {"mn1/node.crt", "bad/cert-as.key", NULL, HS_ECONFIG,
     "private key @/bad/cert-as.key: not a PEM private key: it holds "
     "CERTIFICATE, no PRIVATE KEY"},
    {"mn1/node.crt", "bad/secret.key", NULL, HS_ECONFIG,
     "private key @/bad/secret.key: it is protected by a passphrase"},
    {"mn1/node.crt", "bad/open.key", NULL, HS_ECONFIG,
     "private key @/bad/open.key: permissions 0640 are too open"},
    {"mn1/node.crt", "mn2/node.key", NULL, HS_ECONFIG,
     "private key @/mn2/node.key: does not match the certificate "
     "@/mn1/node.crt"},
    {"bad/missing.crt", "mn1/node.key", NULL, -ENOENT,
     "certificate @/bad/missing.crt: No such file or directory"},
    {"mn1/node.key", "mn1/node.key", NULL, HS_ECONFIG,
     "certificate @/mn1/node.key: not a PEM certificate: it holds "
     "PRIVATE KEY, no CERTIFICATE"},
    {"mn1/node.crt", "mn1/node.key", "bad/missing.crt", -ENOENT,
     "CA file @/bad/missing.crt: No such file or directory"},
    {"mn1/node.crt", "mn1/node.key", "bad/garbage.key", HS_ECONFIG,
     "CA file @/bad/garbage.key: not a PEM certificate: no -----BEGIN "
     "line"},
};

static void
id_write(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* TMP/bad: every wrong file of id_cases. */
static void
id_files_make(void)
{
	char p[256], q[256], *text;
	FILE *f;
	long n;

	snprintf(p, sizeof(p), "%s/bad", tmpdir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/bad/dir.key", tmpdir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/bad/fifo.key", tmpdir);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/bad/empty.key", tmpdir);
	id_write(p, "", 0600);
	snprintf(p, sizeof(p), "%s/bad/garbage.key", tmpdir);
	id_write(p, "not a key at all\n", 0600);
	snprintf(p, sizeof(p), "%s/bad/base64.key", tmpdir);
	id_write(p,
	         "-----BEGIN PRIVATE KEY-----\n!!not*base64!!\n"
	         "-----END PRIVATE KEY-----\n",
	         0600);
	/* The certificate, and the key group-readable, as copies. */
	snprintf(q, sizeof(q), "%s/mn1/node.crt", tmpdir);
	ck_assert_ptr_nonnull(f = fopen(q, "r"));
	ck_assert_ptr_nonnull(text = calloc(1, 65536));
	n = (long)fread(text, 1, 65535, f);
	fclose(f);
	ck_assert_int_gt(n, 0);
	snprintf(p, sizeof(p), "%s/bad/cert-as.key", tmpdir);
	id_write(p, text, 0600);
	snprintf(q, sizeof(q), "%s/mn1/node.key", tmpdir);
	ck_assert_ptr_nonnull(f = fopen(q, "r"));
	memset(text, 0, 65536);
	n = (long)fread(text, 1, 65535, f);
	fclose(f);
	ck_assert_int_gt(n, 0);
	snprintf(p, sizeof(p), "%s/bad/open.key", tmpdir);
	id_write(p, text, 0640);
	free(text);
	/* mn1's key under a passphrase. */
	{
		EVP_PKEY *pk;

		ck_assert_ptr_nonnull(f = fopen(q, "r"));
		pk = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
		fclose(f);
		ck_assert_ptr_nonnull(pk);
		snprintf(p, sizeof(p), "%s/bad/secret.key", tmpdir);
		ck_assert_ptr_nonnull(f = fopen(p, "w"));
		ck_assert_int_eq(fchmod(fileno(f), 0600), 0);
		ck_assert_int_eq(PEM_write_PrivateKey(f, pk, EVP_aes_256_cbc(),
		                                      NULL, 0, NULL,
		                                      (void *)"secret"),
		                 1);
		fclose(f);
		EVP_PKEY_free(pk);
	}
}

static void
id_expand(const char *phrase, char *out, size_t cap)
{
	size_t len = 0;

	for (; *phrase != '\0' && len + sizeof(tmpdir) + 1 < cap; phrase++)
		if (*phrase == '@')
			len += (size_t)snprintf(out + len, cap - len, "%s",
			                        tmpdir);
		else
			out[len++] = *phrase;
	out[len] = '\0';
}

/* Each wrong file: its own code and one line naming it; nothing leaks. */
START_TEST(identity_table)
{
	const struct id_case *c = &id_cases[_i];
	char cert[200], key[200], ca[200], why[600] = "", want[600];
	struct proto_tls_opts o;
	struct proto_tls *t = NULL;

	id_files_make();
	snprintf(cert, sizeof(cert), "%s/%s", tmpdir, c->cert);
	snprintf(key, sizeof(key), "%s/%s", tmpdir, c->key);
	memset(&o, 0, sizeof(o));
	o.cert = cert;
	o.key = key;
	o.pins = (const void *)fps[MN2];
	o.n_pins = 1;
	if (c->ca != NULL) {
		snprintf(ca, sizeof(ca), "%s/%s", tmpdir, c->ca);
		o.ca = ca;
		o.peer_name = "mn2";
	}
	ck_assert_int_eq(proto_tls_new(&o, &t, why, sizeof(why)), c->rc);
	if (c->rc != HS_OK) {
		ck_assert_ptr_null(t);
		id_expand(c->phrase, want, sizeof(want));
		ck_assert_msg(strncmp(why, want, strlen(want)) == 0,
		              "got '%s', want '%s...'", why, want);
		ck_assert_ptr_null(strchr(why, '\n'));
	}
	proto_tls_free(t);
}
END_TEST

START_TEST(keygen_files)
{
	char dir[160], crt[200], why[256] = "";
	uint8_t fp[32];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/mn1", tmpdir);
	snprintf(crt, sizeof(crt), "%s/node.crt", dir);
	ck_assert_int_eq(proto_cert_fingerprint(crt, fp), HS_OK);
	ck_assert_mem_eq(fp, fps[MN1], sizeof(fp));
	ck_assert_int_ne(memcmp(fps[MN1], fps[MN2], 32), 0);
	snprintf(crt, sizeof(crt), "%s/node.key", dir);
	ck_assert_int_eq(stat(crt, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	/* no silent overwrite */
	ck_assert_int_eq(proto_keygen(dir, "mn1", 0, fp, why, sizeof(why)),
	                 -EEXIST);
	ck_assert_str_ne(why, "");
}
END_TEST

START_TEST(conn_hello)
{
	struct proto_hello mine, peer;
	struct srv_result res;
	struct server s;
	struct client cl;
	char why[256] = "";

	server_start(&s, SRV_HELLO, MN2);
	ck_assert_int_eq(client_open(&cl, &s, MN2, MN1), HS_OK);
	ck_assert_ptr_nonnull(strstr(proto_conn_peer(cl.c), "127.0.0.1"));
	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "mn2");
	mine.role = HS_ROLE_PRIMARY;
	mine.epoch = 42;
	ck_assert_int_eq(proto_hello_send(cl.c, &mine), HS_OK);
	ck_assert_int_eq(proto_hello_recv(cl.c, &peer, why, sizeof(why)),
	                 HS_OK);
	ck_assert_uint_eq(peer.magic, PROTO_MAGIC);
	ck_assert_uint_eq(peer.version, PROTO_VERSION);
	ck_assert_str_eq(peer.name, "mn1");
	ck_assert_uint_eq(peer.role, HS_ROLE_STANDBY);
	ck_assert_uint_eq(peer.epoch, 7);
	ck_assert_uint_gt(proto_conn_bytes_in(cl.c), 0);
	client_close(&cl);

	server_finish(&s, &res);
	ck_assert_msg(res.rc == HS_OK, "server: %d %s", res.rc, res.text);
	ck_assert_str_eq(res.text, "mn2");
	ck_assert_int_eq(res.n, HS_ROLE_PRIMARY);
	ck_assert_uint_eq(res.epoch, 42);
}
END_TEST

enum fill { FILL_TEXT, FILL_RANDOM };

struct frame_case {
	size_t len;
	enum fill fill;
	enum proto_send_mode mode;
	int compressed; /* expected *compressed, or -1: either */
};

static const struct frame_case frame_cases[] = {
    {0, FILL_TEXT, PROTO_RAW, 0},
    {1, FILL_TEXT, PROTO_RAW, 0},
    {PROTO_FRAME_MAX, FILL_RANDOM, PROTO_RAW, 0},
    {PROTO_FRAME_MAX, FILL_TEXT, PROTO_RAW, 0},
    {0, FILL_TEXT, PROTO_ZSTD, 0},
    {1, FILL_TEXT, PROTO_ZSTD, 0},
    {127, FILL_TEXT, PROTO_ZSTD, -1},
    {PROTO_CHUNK, FILL_TEXT, PROTO_ZSTD, 1},
    {PROTO_FRAME_MAX, FILL_TEXT, PROTO_ZSTD, 1},
    {PROTO_FRAME_MAX, FILL_RANDOM, PROTO_ZSTD, 0},
    {2, FILL_RANDOM, PROTO_RAW, 0},
};

/* Frames of every interesting size, one after another on one connection. */
START_TEST(conn_frames)
{
	uint8_t *buf = malloc(PROTO_FRAME_MAX + 1);
	struct srv_result res;
	struct server s;
	struct client cl;
	struct proto_msg m;
	struct proto_wr w;
	size_t i;

	ck_assert_ptr_nonnull(buf);
	server_start(&s, SRV_ECHO, MN2);
	ck_assert_msg(client_open(&cl, &s, MN2, MN1) == HS_OK, "connect: %s",
	              cl.why);
	for (i = 0; i < N_ELEM(frame_cases); i++) {
		const struct frame_case *tc = &frame_cases[i];
		uint8_t type = (uint8_t)(PROTO_T_OP_DATA + (i & 1));
		int compressed = -7, rc;

		if (tc->fill == FILL_TEXT)
			fill_text(buf, tc->len, i);
		else
			fill_random(buf, tc->len, i);
		rc = proto_conn_send(cl.c, type, buf, tc->len, tc->mode,
		                     &compressed);
		ck_assert_msg(rc == HS_OK, "frame %zu: send %d", i, rc);
		if (tc->compressed >= 0)
			ck_assert_msg(compressed == tc->compressed,
			              "frame %zu: compressed %d", i,
			              compressed);
		else
			ck_assert(compressed == 0 || compressed == 1);
		rc = proto_conn_recv(cl.c, &m);
		ck_assert_msg(rc == HS_OK, "frame %zu: recv %d", i, rc);
		ck_assert_uint_eq(m.type, type);
		ck_assert_uint_eq(m.len, tc->len);
		ck_assert_msg(memcmp(m.data, buf, tc->len) == 0,
		              "frame %zu: payload differs", i);
	}

	/* queued back to back, flushed by the first recv */
	for (i = 0; i < 3; i++) {
		memset(buf, (int)('a' + i), 10 * (i + 1));
		ck_assert_int_eq(proto_conn_send(cl.c, PROTO_T_LIST, buf,
		                                 10 * (i + 1), PROTO_RAW, NULL),
		                 HS_OK);
	}
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(proto_conn_recv(cl.c, &m), HS_OK);
		ck_assert_uint_eq(m.len, 10 * (i + 1));
		ck_assert_uint_eq(m.data[m.len - 1], 'a' + i);
	}

	/* refused locally, nothing sent */
	ck_assert_int_eq(proto_conn_send(cl.c, PROTO_T_OP_DATA, buf,
	                                 PROTO_FRAME_MAX + 1, PROTO_RAW, NULL),
	                 HS_ELIMIT);
	proto_wr_init(&w);
	w.rc = HS_ELIMIT;
	ck_assert_int_eq(proto_conn_send_wr(cl.c, PROTO_T_LIST, &w, PROTO_ZSTD),
	                 HS_ELIMIT);
	proto_wr_free(&w);
	client_close(&cl);

	server_finish(&s, &res);
	ck_assert_msg(res.rc == HS_OK, "server: %d %s", res.rc, res.text);
	ck_assert_int_eq(res.n, (int)N_ELEM(frame_cases) + 3);
	free(buf);
}
END_TEST

/* 1 MiB through PROTO_ZSTD: text shrinks on the wire, random data not. */
START_TEST(conn_zstd)
{
	const enum fill kind = _i == 0 ? FILL_TEXT : FILL_RANDOM;
	uint8_t *buf = malloc(MIB);
	uint64_t before, wire;
	struct srv_result res;
	struct server s;
	struct client cl;
	struct proto_msg m;
	int compressed = -7;

	ck_assert_ptr_nonnull(buf);
	if (kind == FILL_TEXT)
		fill_text(buf, MIB, 3);
	else
		fill_random(buf, MIB, 3);
	server_start(&s, SRV_ECHO, MN2);
	ck_assert_msg(client_open(&cl, &s, MN2, MN1) == HS_OK, "connect: %s",
	              cl.why);
	before = proto_conn_bytes_out(cl.c);
	ck_assert_int_eq(proto_conn_send(cl.c, PROTO_T_OP_DATA, buf, MIB,
	                                 PROTO_ZSTD, &compressed),
	                 HS_OK);
	ck_assert_int_eq(proto_conn_flush(cl.c), HS_OK);
	wire = proto_conn_bytes_out(cl.c) - before;
	if (kind == FILL_TEXT) {
		ck_assert_int_eq(compressed, 1);
		ck_assert_uint_lt(wire, MIB);
	} else {
		ck_assert_int_eq(compressed, 0);
		ck_assert_uint_gt(wire, MIB);
	}
	ck_assert_int_eq(proto_conn_recv(cl.c, &m), HS_OK);
	ck_assert_uint_eq(m.type, PROTO_T_OP_DATA);
	ck_assert_uint_eq(m.len, MIB);
	ck_assert(memcmp(m.data, buf, MIB) == 0);
	client_close(&cl);

	server_finish(&s, &res);
	ck_assert_msg(res.rc == HS_OK, "server: %d %s", res.rc, res.text);
	ck_assert_int_eq(res.n, 1);
	free(buf);
}
END_TEST

/*
 * A peer that works without reading for longer than our read timeout:
 * with its keepalive (ALIVE every 20 ms) a blocking read outlasts the
 * work and returns the next real frame, and proto_conn_wait skips the
 * ALIVEs (never readable for them alone) while they advance
 * proto_conn_last_rx; without it the read times out.
 */
START_TEST(conn_keepalive)
{
	const int with_ka = _i == 0;
	struct srv_result res;
	struct server s;
	struct client cl;
	struct proto_msg m;
	uint64_t t0;
	int rc;

	srv_ka_ms = with_ka ? 20 : 0;
	server_start(&s, SRV_BUSY, MN2);
	ck_assert_msg(client_open(&cl, &s, MN2, MN1) == HS_OK, "connect: %s",
	              cl.why);
	ck_assert_int_eq(
	    proto_conn_send(cl.c, PROTO_T_PING, "12345678", 8, PROTO_RAW, NULL),
	    HS_OK);
	ck_assert_int_eq(proto_conn_recv(cl.c, &m), HS_OK);
	ck_assert_uint_eq(m.type, PROTO_T_PING);
	proto_conn_set_timeout(cl.c, 400);
	t0 = hs_now_mono_ns();
	/* The work has just begun: nothing but ALIVEs for 300 ms. */
	ck_assert_int_eq(proto_conn_wait(cl.c, 300), 0);
	if (with_ka)
		ck_assert_uint_gt(proto_conn_last_rx(cl.c), t0);
	else
		ck_assert_uint_lt(proto_conn_last_rx(cl.c), t0);
	rc = proto_conn_recv(cl.c, &m);
	if (with_ka) {
		ck_assert_int_eq(rc, HS_OK);
		ck_assert_uint_ge(hs_now_mono_ns() - t0,
		                  (SRV_BUSY_MS - 100) * 1000000ull);
	} else {
		ck_assert_int_eq(rc, HS_ETIMEOUT);
		proto_conn_set_timeout(cl.c, IO_MS);
		ck_assert_int_eq(proto_conn_recv(cl.c, &m), HS_OK);
	}
	ck_assert_uint_eq(m.type, PROTO_T_LIST);
	ck_assert_uint_eq(m.len, 4);
	ck_assert_mem_eq(m.data, "done", 4);
	client_close(&cl);

	server_finish(&s, &res);
	ck_assert_msg(res.rc == HS_OK, "server: %d %s", res.rc, res.text);
}
END_TEST

/* The server does not pin the client (mn3): the session never starts. */
START_TEST(conn_client_not_pinned)
{
	struct proto_hello peer;
	struct srv_result res;
	struct server s;
	struct client cl;
	int rc;

	server_start(&s, SRV_ACCEPT, MN2);
	rc = client_open(&cl, &s, MN3, MN1);
	/*
	 * In TLS 1.3 the client may finish its side before the server has
	 * judged its certificate; the refusal then arrives on the first
	 * read.  Send nothing, so the server closes with a clean FIN.
	 */
	if (rc == HS_OK)
		rc = proto_hello_recv(cl.c, &peer, cl.why, sizeof(cl.why));
	ck_assert_msg(rc == HS_EAUTH || rc == HS_ETLS, "client: rc %d (%s)", rc,
	              cl.why);
	ck_assert_str_ne(cl.why, "");
	client_close(&cl);

	server_finish(&s, &res);
	ck_assert_int_eq(res.n, 0); /* never accepted */
	ck_assert_msg(res.rc == HS_EAUTH, "server: rc %d", res.rc);
	ck_assert_ptr_nonnull(strstr(res.text, "not pinned"));
}
END_TEST

/* The client does not pin the server: it refuses during connect. */
START_TEST(conn_server_not_pinned)
{
	struct srv_result res;
	struct server s;
	struct client cl;
	int rc;

	server_start(&s, SRV_ACCEPT, MN2);
	rc = client_open(&cl, &s, MN2, MN3);
	ck_assert_msg(rc == HS_EAUTH, "client: rc %d (%s)", rc, cl.why);
	ck_assert_ptr_null(cl.c);
	ck_assert_ptr_nonnull(strstr(cl.why, "not pinned"));
	client_close(&cl);

	server_finish(&s, &res);
	ck_assert_int_eq(res.n, 0);
	ck_assert_msg(res.rc == HS_ETLS || res.rc == HS_EAUTH, "server: rc %d",
	              res.rc);
	ck_assert_str_ne(res.text, "");
}
END_TEST

/* What the peer sends instead of a good HELLO, and what we make of it. */
struct hello_recv_case {
	const char *what;
	uint8_t type;
	uint16_t version; /* HELLO: version to encode; 0: raw text */
	const char *text; /* payload when version is 0 */
	int rc;
	const char *why1, *why2; /* substrings of `why` */
	int told;                /* does the peer get an ERROR back? */
};

static const struct hello_recv_case hello_recv_cases[] = {
    {"version 99", PROTO_T_HELLO, 99, NULL, HS_EVERSION, "99", "version 2", 1},
    /* an older build (protocol 1: SHA-256 transfer checks) */
    {"version 1", PROTO_T_HELLO, 1, NULL, HS_EVERSION, "version 1", "version 2",
     1},
    {"busy", PROTO_T_BUSY, 0, "", HS_EBUSY, "busy", "", 0},
    {"error", PROTO_T_ERROR, 0, "set www not configured", HS_EREFUSED,
     "set www not configured", "", 0},
    {"wrong type", PROTO_T_LIST, 0, "", HS_EPROTO, "12", "", 1},
    {"malformed", PROTO_T_HELLO, 0, "HMNX\x00\x01", HS_EPROTO, "HELLO", "", 1},
};

START_TEST(conn_hello_recv_table)
{
	const struct hello_recv_case *tc = &hello_recv_cases[_i];
	struct proto_hello peer;
	struct srv_result res;
	struct server s;
	struct client cl;
	char why[256] = "";
	int rc;

	srv_type = tc->type;
	proto_wr_init(&srv_frame);
	if (tc->version != 0) {
		struct proto_hello h;

		memset(&h, 0, sizeof(h));
		h.magic = PROTO_MAGIC;
		h.version = tc->version;
		snprintf(h.name, sizeof(h.name), "mn1");
		h.role = HS_ROLE_STANDBY;
		h.epoch = 3;
		proto_hello_encode(&srv_frame, &h);
	} else
		proto_put_bytes(&srv_frame, tc->text, strlen(tc->text));
	ck_assert_int_eq(srv_frame.rc, HS_OK);
	server_start(&s, SRV_SCRIPT, MN2);
	proto_wr_free(&srv_frame);

	ck_assert_msg(client_open(&cl, &s, MN2, MN1) == HS_OK, "connect: %s",
	              cl.why);
	rc = proto_hello_recv(cl.c, &peer, why, sizeof(why));
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d (%s)", tc->what, rc,
	              tc->rc, why);
	ck_assert_msg(strstr(why, tc->why1) != NULL, "%s: why '%s'", tc->what,
	              why);
	ck_assert_msg(strstr(why, tc->why2) != NULL, "%s: why '%s'", tc->what,
	              why);
	if (tc->rc == HS_EVERSION)
		ck_assert_uint_eq(peer.version, tc->version);
	client_close(&cl);

	server_finish(&s, &res);
	ck_assert_msg(res.rc == HS_OK, "server: %d %s", res.rc, res.text);
	if (tc->told) {
		ck_assert_int_eq(res.n, PROTO_T_ERROR);
		ck_assert_str_eq(res.text, why);
	} else
		ck_assert_int_eq(res.n, -1);
}
END_TEST

/* ------------------------------------- what the standby decodes (request.c) */

/* A small regular file entry, as the OP_* frames carry it. */
static struct proto_entry *
req_entry(void)
{
	struct proto_entry *e = calloc(1, sizeof(*e));

	ck_assert_ptr_nonnull(e);
	e->src = 1;
	e->type = PROTO_E_FILE;
	e->mode = 0644;
	e->uid = 1000;
	e->gid = 100;
	e->size = 12345;
	e->mtime_sec = 1700000000;
	snprintf(e->path, sizeof(e->path), "etc/hosts");
	return e;
}

static void
req_put_entry(struct proto_wr *w)
{
	struct proto_entry *e = req_entry();

	proto_entry_encode(w, e);
	free(e);
}

static void
req_put_hash(struct proto_wr *w)
{
	uint8_t h[PROTO_HASH_LEN];

	memset(h, 0xab, sizeof(h));
	proto_put_bytes(w, h, sizeof(h));
}

/*
 * Each request body: how a good one is made, and a decoder that checks
 * what it read back against it (or only returns the code when not HS_OK).
 */
struct req_case {
	const char *what;
	void (*make)(struct proto_wr *w);
	int (*decode)(const uint8_t *p, size_t len);
	int empty_ok; /* an empty body is a good one too */
};

static void
make_state(struct proto_wr *w)
{
	proto_put_u64(w, 1500);
	proto_put_u64(w, 42);
	proto_put_u8(w, 1);
}

static int
dec_state(const uint8_t *p, size_t len)
{
	struct proto_state st;
	int rc = proto_state_decode(p, len, &st);

	if (rc == HS_OK) {
		ck_assert_uint_eq(st.lag_ms, 1500);
		ck_assert_uint_eq(st.pending, 42);
		ck_assert_uint_eq(st.in_sync, 1);
	}
	return rc;
}

static void
make_set_open(struct proto_wr *w)
{
	proto_put_str(w, "site");
	proto_put_u16(w, 2);
	proto_put_str(w, "/etc/hosts");
	proto_put_str(w, "/install");
}

static int
dec_set_open_as(uint8_t type, const uint8_t *p, size_t len)
{
	struct proto_set_open_req *r = malloc(sizeof(*r));
	int rc;

	ck_assert_ptr_nonnull(r);
	rc = proto_set_open_req_decode(type, p, len, r);
	if (rc == HS_OK) {
		ck_assert_str_eq(r->so.name, "site");
		ck_assert_uint_eq(r->so.n_sources, 2);
		ck_assert_str_eq(r->so.sources[1], "/install");
		if (type == PROTO_T_SET_OPEN) {
			ck_assert_ptr_null(r->scope);
		} else {
			ck_assert_ptr_nonnull(r->scope);
			ck_assert_uint_eq(r->n_scope, 2);
			ck_assert_uint_eq(r->scope[1].src, 1);
			ck_assert_str_eq(r->scope[1].path, "netboot");
			ck_assert_uint_eq(r->scope[1].recursive, 1);
		}
		proto_set_open_req_clear(r);
	}
	free(r);
	return rc;
}

static int
dec_set_open(const uint8_t *p, size_t len)
{
	return dec_set_open_as(PROTO_T_SET_OPEN, p, len);
}

static void
make_set_open_scoped(struct proto_wr *w)
{
	make_set_open(w);
	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "");
	proto_put_u8(w, 0);
	proto_put_u16(w, 1);
	proto_put_str(w, "netboot");
	proto_put_u8(w, 1);
}

static int
dec_set_open_scoped(const uint8_t *p, size_t len)
{
	return dec_set_open_as(PROTO_T_SET_OPEN_SCOPED, p, len);
}

static int
dec_set_open_blind(const uint8_t *p, size_t len)
{
	return dec_set_open_as(PROTO_T_SET_OPEN_BLIND, p, len);
}

static void
make_renames(struct proto_wr *w)
{
	proto_put_str(w, "site");
	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "a");
	proto_put_str(w, "b");
	proto_put_u16(w, 3);
	proto_put_str(w, "dir/old");
	proto_put_str(w, "dir/new");
}

static int
dec_renames(const uint8_t *p, size_t len)
{
	struct proto_set_renames r;
	int rc = proto_set_renames_decode(p, len, &r);

	if (rc == HS_OK) {
		ck_assert_str_eq(r.set, "site");
		ck_assert_uint_eq(r.n, 2);
		ck_assert_uint_eq(r.v[1].src, 3);
		ck_assert_str_eq(r.v[1].from, "dir/old");
		ck_assert_str_eq(r.v[1].to, "dir/new");
		proto_set_renames_clear(&r);
	}
	return rc;
}

static void
make_hash_req(struct proto_wr *w)
{
	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "");
	proto_put_u16(w, 5);
	proto_put_str(w, "var/lib/dhcpd.leases");
}

static int
dec_hash_req(const uint8_t *p, size_t len)
{
	struct proto_scope *v;
	size_t n;
	int rc = proto_hash_req_decode(p, len, &v, &n);

	if (rc == HS_OK) {
		ck_assert_uint_eq(n, 2);
		ck_assert_str_eq(v[0].path, "");
		ck_assert_uint_eq(v[1].src, 5);
		ck_assert_str_eq(v[1].path, "var/lib/dhcpd.leases");
		proto_scope_free(v, n);
	}
	return rc;
}

static int
dec_op_entry(const uint8_t *p, size_t len)
{
	struct proto_entry *e = malloc(sizeof(*e));
	int rc;

	ck_assert_ptr_nonnull(e);
	rc = proto_op_entry_decode(p, len, e);
	if (rc == HS_OK) {
		ck_assert_uint_eq(e->src, 1);
		ck_assert_uint_eq(e->size, 12345);
		ck_assert_str_eq(e->path, "etc/hosts");
	}
	free(e);
	return rc;
}

static void
make_op_seek(struct proto_wr *w)
{
	proto_put_u64(w, 1ull << 40);
}

static int
dec_op_seek(const uint8_t *p, size_t len)
{
	uint64_t off = 0;
	int rc = proto_op_seek_decode(p, len, &off);

	if (rc == HS_OK)
		ck_assert_uint_eq(off, 1ull << 40);
	return rc;
}

static void
make_op_file_end(struct proto_wr *w)
{
	proto_put_u8(w, 1);
	req_put_hash(w);
}

static int
dec_op_file_end(const uint8_t *p, size_t len)
{
	struct proto_op_file_end fe;
	int rc = proto_op_file_end_decode(p, len, &fe);

	if (rc == HS_OK) {
		ck_assert_uint_eq(fe.status, 1);
		ck_assert_uint_eq(fe.hash[PROTO_HASH_LEN - 1], 0xab);
	}
	return rc;
}

static void
make_op_link(struct proto_wr *w)
{
	proto_put_u16(w, 2);
	proto_put_str(w, "bin/b");
	proto_put_u16(w, 0);
	proto_put_str(w, "bin/a");
}

static int
dec_op_link(const uint8_t *p, size_t len)
{
	struct proto_op_link *l = malloc(sizeof(*l));
	int rc;

	ck_assert_ptr_nonnull(l);
	rc = proto_op_link_decode(p, len, l);
	if (rc == HS_OK) {
		ck_assert_uint_eq(l->src, 2);
		ck_assert_str_eq(l->path, "bin/b");
		ck_assert_uint_eq(l->lsrc, 0);
		ck_assert_str_eq(l->lpath, "bin/a");
	}
	free(l);
	return rc;
}

static void
make_op_patch(struct proto_wr *w)
{
	struct proto_patch_hdr h;

	req_put_entry(w);
	memset(h.basis, 0xcd, sizeof(h.basis));
	h.bsize = PROTO_BLOCK_MIN;
	proto_patch_hdr_encode(w, &h);
}

static int
dec_op_patch(const uint8_t *p, size_t len)
{
	struct proto_entry *e = malloc(sizeof(*e));
	struct proto_patch_hdr h;
	int rc;

	ck_assert_ptr_nonnull(e);
	rc = proto_op_patch_decode(p, len, e, &h);
	if (rc == HS_OK) {
		ck_assert_str_eq(e->path, "etc/hosts");
		ck_assert_uint_eq(h.basis[0], 0xcd);
		ck_assert_uint_eq(h.bsize, PROTO_BLOCK_MIN);
	}
	free(e);
	return rc;
}

static void
make_set_end(struct proto_wr *w)
{
	uint8_t id[PROTO_JOURNAL_ID_LEN];

	memset(id, 0x11, sizeof(id));
	proto_put_bytes(w, id, sizeof(id));
	proto_put_u64(w, 77);
}

static int
dec_set_end(const uint8_t *p, size_t len)
{
	struct proto_set_end se;
	int rc = proto_set_end_decode(p, len, &se);

	if (rc == HS_OK)
		ck_assert_uint_eq(se.seq, len == 0 ? 0 : 77);
	if (rc == HS_OK && len > 0)
		ck_assert_uint_eq(se.id[0], 0x11);
	return rc;
}

static const struct req_case req_cases[] = {
    {"STATE", make_state, dec_state, 0},
    {"SET_OPEN", make_set_open, dec_set_open, 0},
    {"SET_OPEN_SCOPED", make_set_open_scoped, dec_set_open_scoped, 0},
    {"SET_OPEN_BLIND", make_set_open_scoped, dec_set_open_blind, 0},
    {"SET_RENAMES", make_renames, dec_renames, 0},
    {"HASH_REQ", make_hash_req, dec_hash_req, 0},
    {"OP_FILE", req_put_entry, dec_op_entry, 0},
    {"OP_SEEK", make_op_seek, dec_op_seek, 0},
    {"OP_FILE_END", make_op_file_end, dec_op_file_end, 0},
    {"OP_LINK", make_op_link, dec_op_link, 0},
    {"OP_PATCH", make_op_patch, dec_op_patch, 0},
    {"SET_END", make_set_end, dec_set_end, 1},
};

START_TEST(request_good)
{
	const struct req_case *tc = &req_cases[_i];
	struct proto_wr w;
	int rc;

	proto_wr_init(&w);
	tc->make(&w);
	ck_assert_int_eq(w.rc, HS_OK);
	rc = tc->decode(w.buf.data, w.buf.len);
	ck_assert_msg(rc == HS_OK, "%s: rc %d", tc->what, rc);
	proto_wr_free(&w);
}
END_TEST

/* Every prefix of a good body is refused; LeakSanitizer checks frees. */
START_TEST(request_truncated)
{
	const struct req_case *tc = &req_cases[_i];
	struct proto_wr w;
	uint8_t *p;
	size_t n;
	int rc;

	proto_wr_init(&w);
	tc->make(&w);
	for (n = 0; n < w.buf.len; n++) {
		if (n == 0 && tc->empty_ok)
			continue;
		/* a copy of exactly n bytes: ASan sees a read past them */
		p = malloc(n ? n : 1);
		ck_assert_ptr_nonnull(p);
		memcpy(p, w.buf.data, n);
		rc = tc->decode(p, n);
		ck_assert_msg(rc == HS_EPROTO || rc == HS_ELIMIT,
		              "%s cut at %zu of %zu: rc %d", tc->what, n,
		              w.buf.len, rc);
		free(p);
	}
	proto_wr_free(&w);
}
END_TEST

START_TEST(request_trailing)
{
	const struct req_case *tc = &req_cases[_i];
	struct proto_wr w;
	int rc;

	proto_wr_init(&w);
	tc->make(&w);
	proto_put_u8(&w, 0);
	rc = tc->decode(w.buf.data, w.buf.len);
	ck_assert_msg(rc == HS_EPROTO, "%s + 1 byte: rc %d", tc->what, rc);
	proto_wr_free(&w);
}
END_TEST

/* Bodies the right length but out of range, or past a limit. */
static void
bad_in_sync(struct proto_wr *w)
{
	proto_put_u64(w, 0);
	proto_put_u64(w, 0);
	proto_put_u8(w, 2);
}

static void
bad_renames_count(struct proto_wr *w)
{
	proto_put_str(w, "site");
	proto_put_u32(w, PROTO_SCOPE_MAX + 1);
}

static void
bad_renames_more(struct proto_wr *w)
{
	/* a count that the bytes cannot hold, refused before allocating */
	proto_put_str(w, "site");
	proto_put_u32(w, 1000);
	proto_put_u16(w, 0);
	proto_put_str(w, "a");
	proto_put_str(w, "b");
}

static void
bad_renames_long(struct proto_wr *w)
{
	char *s = str_fill('x', PROTO_PATH_MAX + 1);

	proto_put_str(w, "site");
	proto_put_u32(w, 1);
	proto_put_u16(w, 0);
	proto_put_str(w, "a");
	proto_put_str(w, s);
	free(s);
}

static void
bad_hash_req_count(struct proto_wr *w)
{
	proto_put_u32(w, UINT32_MAX);
	proto_put_u16(w, 0);
	proto_put_str(w, "");
}

static void
bad_hash_req_nul(struct proto_wr *w)
{
	proto_put_u32(w, 1);
	proto_put_u16(w, 0);
	proto_put_strn(w, "a\0b", 3);
}

static void
bad_file_end_status(struct proto_wr *w)
{
	proto_put_u8(w, 2);
	req_put_hash(w);
}

static void
bad_link_long(struct proto_wr *w)
{
	char *s = str_fill('x', PROTO_PATH_MAX + 1);

	proto_put_u16(w, 0);
	proto_put_str(w, s);
	proto_put_u16(w, 0);
	proto_put_str(w, "a");
	free(s);
}

static void
bad_set_end_seq(struct proto_wr *w)
{
	uint8_t id[PROTO_JOURNAL_ID_LEN] = {0};

	proto_put_bytes(w, id, sizeof(id));
	proto_put_u64(w, 0);
}

static void
bad_set_open_no_scope(struct proto_wr *w)
{
	make_set_open(w);
	proto_put_u32(w, PROTO_SCOPE_MAX + 1);
}

static int
dec_set_open_wrong_type(const uint8_t *p, size_t len)
{
	return dec_set_open_as(PROTO_T_STATE, p, len);
}

static const struct {
	const char *what;
	void (*make)(struct proto_wr *w);
	int (*decode)(const uint8_t *p, size_t len);
	int rc;
} req_bad_cases[] = {
    {"STATE in-sync 2", bad_in_sync, dec_state, HS_EPROTO},
    {"SET_OPEN as another type", make_set_open, dec_set_open_wrong_type,
     HS_EPROTO},
    {"SET_OPEN_SCOPED scope past max", bad_set_open_no_scope,
     dec_set_open_scoped, HS_ELIMIT},
    {"SET_RENAMES count past max", bad_renames_count, dec_renames, HS_EPROTO},
    {"SET_RENAMES more than the bytes", bad_renames_more, dec_renames,
     HS_EPROTO},
    {"SET_RENAMES path too long", bad_renames_long, dec_renames, HS_EPROTO},
    {"HASH_REQ count past the bytes", bad_hash_req_count, dec_hash_req,
     HS_EPROTO},
    {"HASH_REQ NUL in path", bad_hash_req_nul, dec_hash_req, HS_EPROTO},
    {"OP_FILE_END status 2", bad_file_end_status, dec_op_file_end, HS_EPROTO},
    {"OP_LINK path too long", bad_link_long, dec_op_link, HS_EPROTO},
    {"SET_END sequence 0", bad_set_end_seq, dec_set_end, HS_EPROTO},
};

START_TEST(request_bad_table)
{
	struct proto_wr w;
	int rc;

	proto_wr_init(&w);
	req_bad_cases[_i].make(&w);
	ck_assert_int_eq(w.rc, HS_OK);
	rc = req_bad_cases[_i].decode(w.buf.data, w.buf.len);
	ck_assert_msg(rc == req_bad_cases[_i].rc, "%s: rc %d, want %d",
	              req_bad_cases[_i].what, rc, req_bad_cases[_i].rc);
	proto_wr_free(&w);
}
END_TEST

static TCase *
request_tcase(void)
{
	TCase *tc = tcase_create("request");

	tcase_add_loop_test(tc, request_good, 0, (int)N_ELEM(req_cases));
	tcase_add_loop_test(tc, request_truncated, 0, (int)N_ELEM(req_cases));
	tcase_add_loop_test(tc, request_trailing, 0, (int)N_ELEM(req_cases));
	tcase_add_loop_test(tc, request_bad_table, 0,
	                    (int)N_ELEM(req_bad_cases));
	return tc;
}

/* ----------------------------------------------------------------- main */

static Suite *
proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc;

	tc = tcase_create("hdr");
	tcase_add_loop_test(tc, hdr_roundtrip, 0, (int)N_ELEM(hdr_rt_cases));
	tcase_add_loop_test(tc, hdr_bad_table, 0, (int)N_ELEM(hdr_bad_cases));
	tcase_add_test(tc, hdr_limit_exact);
	tcase_add_loop_test(tc, hdr_short, 0, PROTO_HDR_LEN);
	suite_add_tcase(s, tc);

	tc = tcase_create("codec");
	tcase_add_test(tc, codec_layout);
	tcase_add_loop_test(tc, codec_int_table, 0, (int)N_ELEM(int_values));
	tcase_add_loop_test(tc, codec_short_table, 0, (int)N_ELEM(short_cases));
	tcase_add_loop_test(tc, codec_str_table, 0, (int)N_ELEM(str_cases));
	tcase_add_test(tc, codec_rd_end);
	tcase_add_test(tc, codec_wr_overflow);
	tcase_add_test(tc, codec_strn_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("hello");
	tcase_add_loop_test(tc, hello_table, 0, (int)N_ELEM(hello_cases));
	tcase_add_loop_test(tc, hello_flags, 0, (int)N_ELEM(hello_flags_cases));
	tcase_add_test(tc, hello_flags_roundtrip);
	tcase_add_loop_test(tc, hello_roundtrip, 0,
	                    (int)N_ELEM(hello_rt_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("entry");
	tcase_add_loop_test(tc, entry_roundtrip, 0,
	                    (int)N_ELEM(entry_rt_cases));
	tcase_add_test(tc, entry_batch);
	tcase_add_loop_test(tc, entry_bad_table, 0,
	                    (int)N_ELEM(entry_bad_cases));
	tcase_add_test(tc, entry_nul_in_strings);
	tcase_add_loop_test(tc, entry_xattrs_table, 0, (int)N_ELEM(xa_cases));
	tcase_add_test(tc, entry_xattrs_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("set_open");
	tcase_add_loop_test(tc, set_open_roundtrip, 0,
	                    (int)N_ELEM(set_rt_counts));
	tcase_add_loop_test(tc, set_open_bad_table, 0,
	                    (int)N_ELEM(set_bad_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("scope");
	tcase_add_loop_test(tc, scope_roundtrip, 0,
	                    (int)N_ELEM(scope_rt_counts));
	tcase_add_loop_test(tc, scope_normalize_merged_recursive, 0, 2);
	tcase_add_loop_test(tc, scope_bad_table, 0,
	                    (int)N_ELEM(scope_bad_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("hash");
	tcase_add_loop_test(tc, hash_table, 0, (int)N_ELEM(hash_cases));
	tcase_add_test(tc, hash_xfer);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile patches");
	tcase_add_loop_test(tc, rx_table, 0, (int)N_ELEM(rx_cases));
	tcase_add_test(tc, rx_short_frame);
	tcase_add_test(tc, hdr_codec);
	suite_add_tcase(s, tc);

	tc = tcase_create("conn");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, conn_setup, conn_teardown);
	/* several handshakes and 4 MiB frames under ASan */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, keygen_files);
	tcase_add_loop_test(tc, identity_table, 0, (int)N_ELEM(id_cases));
	tcase_add_test(tc, conn_hello);
	tcase_add_test(tc, conn_frames);
	tcase_add_loop_test(tc, conn_zstd, 0, 2);
	tcase_add_loop_test(tc, conn_keepalive, 0, 2);
	tcase_add_test(tc, conn_client_not_pinned);
	tcase_add_test(tc, conn_server_not_pinned);
	tcase_add_loop_test(tc, conn_hello_recv_table, 0,
	                    (int)N_ELEM(hello_recv_cases));
	suite_add_tcase(s, tc);

	suite_add_tcase(s, request_tcase());
	return s;
}

static Suite *reply_suite(void);
static Suite *manifest_suite(void);

int
main(void)
{
	SRunner *sr = srunner_create(proto_suite());
	int failed;

	srunner_add_suite(sr, reply_suite());
	srunner_add_suite(sr, manifest_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---------------------------------- what the primary decodes (reply.c) */

/* Every decoder behind one shape, for the cut and overrun checks. */
static int
count_cb_entry(void *arg, struct proto_entry *e)
{
	(void)e;
	++*(int *)arg;
	return HS_OK;
}

static int
count_cb_hash(void *arg, const struct proto_hash_reply *h)
{
	(void)h;
	++*(int *)arg;
	return HS_OK;
}

static int
count_cb_path(void *arg, uint16_t src, const char *path)
{
	(void)src;
	(void)path;
	++*(int *)arg;
	return HS_OK;
}

static int
count_cb_rename(void *arg, uint16_t src, const char *from, const char *to)
{
	(void)src;
	(void)from;
	(void)to;
	++*(int *)arg;
	return HS_OK;
}

static int
dec_refuse(const uint8_t *p, size_t len)
{
	struct proto_set_refuse f;

	return proto_set_refuse_decode(p, len, &f);
}

static int
dec_list(const uint8_t *p, size_t len)
{
	int n = 0;

	return proto_list_decode(p, len, count_cb_entry, &n);
}

static int
dec_hash(const uint8_t *p, size_t len)
{
	int n = 0;

	return proto_hash_reply_decode(p, len, count_cb_hash, &n);
}

static int
dec_sig(const uint8_t *p, size_t len)
{
	static struct proto_sig g;

	return proto_sig_decode(p, len, &g);
}

static int
dec_done(const uint8_t *p, size_t len)
{
	static struct proto_set_done d;

	return proto_set_done_decode(p, len, &d);
}

static int
dec_journal(const uint8_t *p, size_t len)
{
	struct proto_journal j;

	return proto_journal_decode(p, len, &j);
}

static int
dec_stale(const uint8_t *p, size_t len)
{
	int n = 0, all;

	return proto_patch_stale_decode(p, len, &all, count_cb_path, &n);
}

static int
dec_renames_list(const uint8_t *p, size_t len)
{
	uint32_t cnt;
	int n = 0;

	return proto_renames_decode(p, len, &cnt, count_cb_rename, &n);
}

static int
dec_jentry(const uint8_t *p, size_t len)
{
	struct proto_jentry e;
	struct proto_scope *v = NULL;
	size_t n = 0;
	int rc;

	if ((rc = proto_jentry_decode(p, len, &e)) < 0 ||
	    (rc = proto_jentry_scope(&e, &v, &n)) < 0)
		return rc;
	proto_scope_free(v, n);
	return HS_OK;
}

/* Good bodies, one per message, as the standby (or the primary) writes. */
static void
body_refuse(struct proto_wr *w)
{
	proto_put_str(w, "www");
	proto_put_str(w, "no such set here");
}

static void
body_list(struct proto_wr *w)
{
	struct proto_entry *e = calloc(1, sizeof(*e));

	ck_assert_ptr_nonnull(e);
	proto_put_u32(w, 2);
	e->type = PROTO_E_DIR;
	e->mode = 0755;
	proto_entry_encode(w, e);
	e->type = PROTO_E_FILE;
	e->mode = 0644;
	e->size = 12;
	snprintf(e->path, sizeof(e->path), "etc/hosts");
	proto_entry_encode(w, e);
	free(e);
}

static void
body_hash(struct proto_wr *w)
{
	uint8_t h[PROTO_HASH_LEN];

	memset(h, 0xab, sizeof(h));
	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "a");
	proto_put_u8(w, 0);
	proto_put_bytes(w, h, sizeof(h));
	proto_put_u16(w, 1);
	proto_put_str(w, "b/c");
	proto_put_u8(w, 1);
	proto_put_bytes(w, h, sizeof(h));
}

static void
body_sig(struct proto_wr *w)
{
	uint8_t h[PROTO_HASH_LEN];

	memset(h, 0x5a, sizeof(h));
	proto_put_u16(w, 3);
	proto_put_str(w, "img/rootimg.gz");
	proto_put_u8(w, 0);
	proto_put_bytes(w, h, sizeof(h));
	proto_put_u64(w, 1u << 20);
	proto_put_u32(w, 5);
	proto_put_bytes(w, "SIG!!", 5);
}

static void
body_done(struct proto_wr *w)
{
	proto_put_u64(w, 42);
	proto_put_u64(w, 3);
	proto_put_u32(w, 2);
	proto_put_str(w, "/install/a: write: No space left on device");
	proto_put_str(w, "/install/b: rename: Permission denied");
	proto_put_u64(w, 7);
}

static void
body_journal(struct proto_wr *w)
{
	uint8_t id[PROTO_JOURNAL_ID_LEN];

	memset(id, 0x11, sizeof(id));
	proto_put_bytes(w, id, sizeof(id));
	proto_put_u64(w, 99);
}

static void
body_stale(struct proto_wr *w)
{
	proto_put_u8(w, 1);
	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "big/one");
	proto_put_u16(w, 1);
	proto_put_str(w, "");
}

static void
body_renames(struct proto_wr *w)
{
	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "old");
	proto_put_str(w, "new");
	proto_put_u16(w, 0);
	proto_put_str(w, "d/x");
	proto_put_str(w, "d/y");
}

static void
body_jentry(struct proto_wr *w)
{
	struct proto_scope v[2] = {{0, 1, "moved"}, {1, 0, "f"}};

	proto_put_str(w, "install");
	proto_put_u64(w, 123456789);
	proto_put_u64(w, 1700000000);
	proto_scope_encode(w, v, 2);
}

static const struct reply_case {
	const char *name;
	void (*body)(struct proto_wr *w);
	int (*dec)(const uint8_t *p, size_t len);
	/* A cut that leaves a good body: SET_DONE without its sequence. */
	size_t good_cut_from_end;
} reply_cases[] = {
    {"SET_REFUSE", body_refuse, dec_refuse, 0},
    {"LIST", body_list, dec_list, 0},
    {"HASH_REPLY", body_hash, dec_hash, 0},
    {"SIG", body_sig, dec_sig, 0},
    {"SET_DONE", body_done, dec_done, 8},
    {"JOURNAL", body_journal, dec_journal, 0},
    {"PATCH_STALE", body_stale, dec_stale, 0},
    {"SET_RENAMES", body_renames, dec_renames_list, 0},
    {"journal entry", body_jentry, dec_jentry, 0},
};

/* The whole body decodes; every shorter one and one a byte longer fail. */
START_TEST(reply_cut_table)
{
	const struct reply_case *tc = &reply_cases[_i];
	struct proto_wr w;
	uint8_t *p;
	size_t len, k;

	proto_wr_init(&w);
	tc->body(&w);
	ck_assert_int_eq(w.rc, HS_OK);
	len = w.buf.len;
	ck_assert_msg(tc->dec(w.buf.data, len) == HS_OK, "%s: good body",
	              tc->name);
	for (k = 0; k < len; k++) {
		/* A copy of its own length, so ASan sees any overread. */
		p = malloc(k ? k : 1);
		ck_assert_ptr_nonnull(p);
		memcpy(p, w.buf.data, k);
		if (tc->good_cut_from_end && k == len - tc->good_cut_from_end)
			ck_assert_int_eq(tc->dec(p, k), HS_OK);
		else
			ck_assert_msg(tc->dec(p, k) < 0,
			              "%s: cut to %zu of %zu bytes decoded",
			              tc->name, k, len);
		free(p);
	}
	proto_put_u8(&w, 0);
	ck_assert_msg(tc->dec(w.buf.data, w.buf.len) < 0,
	              "%s: a byte past the end decoded", tc->name);
	proto_wr_free(&w);
}
END_TEST

/* The fields come back as written. */
START_TEST(reply_fields)
{
	static struct proto_set_done d;
	static struct proto_sig g;
	struct proto_set_refuse f;
	struct proto_journal j;
	struct proto_jentry e;
	struct proto_scope *v = NULL;
	struct proto_wr w;
	size_t n = 0;
	uint32_t cnt = 0;
	int all = 0, calls = 0;

	proto_wr_init(&w);
	body_refuse(&w);
	ck_assert_int_eq(proto_set_refuse_decode(w.buf.data, w.buf.len, &f),
	                 HS_OK);
	ck_assert_str_eq(f.set, "www");
	ck_assert_str_eq(f.why, "no such set here");

	proto_wr_reset(&w);
	body_sig(&w);
	ck_assert_int_eq(proto_sig_decode(w.buf.data, w.buf.len, &g), HS_OK);
	ck_assert_uint_eq(g.src, 3);
	ck_assert_str_eq(g.path, "img/rootimg.gz");
	ck_assert_uint_eq(g.size, 1u << 20);
	ck_assert_uint_eq(g.len, 5);
	ck_assert_mem_eq(g.sig, "SIG!!", 5);
	ck_assert_uint_eq(g.hash[31], 0x5a);

	proto_wr_reset(&w);
	body_done(&w);
	ck_assert_int_eq(proto_set_done_decode(w.buf.data, w.buf.len, &d),
	                 HS_OK);
	ck_assert_uint_eq(d.applied, 42);
	ck_assert_uint_eq(d.errors, 3);
	ck_assert_uint_eq(d.n_lines, 2);
	ck_assert_uint_eq(d.lines[1].len,
	                  strlen("/install/b: rename: Permission denied"));
	ck_assert_mem_eq(d.lines[1].p, "/install/b: rename", 18);
	ck_assert_uint_eq(d.seq, 7);
	/* Without the sequence: an unnumbered run. */
	ck_assert_int_eq(proto_set_done_decode(w.buf.data, w.buf.len - 8, &d),
	                 HS_OK);
	ck_assert_uint_eq(d.seq, 0);

	proto_wr_reset(&w);
	body_journal(&w);
	ck_assert_int_eq(proto_journal_decode(w.buf.data, w.buf.len, &j),
	                 HS_OK);
	ck_assert_uint_eq(j.seq, 99);
	ck_assert_uint_eq(j.id[15], 0x11);

	proto_wr_reset(&w);
	body_stale(&w);
	ck_assert_int_eq(proto_patch_stale_decode(w.buf.data, w.buf.len, &all,
	                                          count_cb_path, &calls),
	                 HS_OK);
	ck_assert_int_eq(all, 1);
	ck_assert_int_eq(calls, 2);

	proto_wr_reset(&w);
	body_renames(&w);
	calls = 0;
	ck_assert_int_eq(proto_renames_decode(w.buf.data, w.buf.len, &cnt,
	                                      count_cb_rename, &calls),
	                 HS_OK);
	ck_assert_uint_eq(cnt, 2);
	ck_assert_int_eq(calls, 2);

	proto_wr_reset(&w);
	body_jentry(&w);
	ck_assert_int_eq(proto_jentry_decode(w.buf.data, w.buf.len, &e), HS_OK);
	ck_assert_str_eq(e.set, "install");
	ck_assert_uint_eq(e.mono_ns, 123456789);
	ck_assert_uint_eq(e.wall, 1700000000);
	ck_assert_int_eq(proto_jentry_scope(&e, &v, &n), HS_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0].path, "moved");
	ck_assert_uint_eq(v[0].recursive, 1);
	proto_scope_free(v, n);
	proto_wr_free(&w);
}
END_TEST

/* A callback's error stops the walk and comes back. */
static int
refuse_second(void *arg, const struct proto_hash_reply *h)
{
	(void)h;
	return ++*(int *)arg == 2 ? -ENOMEM : HS_OK;
}

START_TEST(reply_callback_error)
{
	struct proto_wr w;
	int calls = 0;

	proto_wr_init(&w);
	body_hash(&w);
	ck_assert_int_eq(proto_hash_reply_decode(w.buf.data, w.buf.len,
	                                         refuse_second, &calls),
	                 -ENOMEM);
	ck_assert_int_eq(calls, 2);
	proto_wr_free(&w);
}
END_TEST

/* Limits: each count, length and value past what the protocol allows. */
START_TEST(reply_limits)
{
	static struct proto_set_done d;
	static struct proto_sig g;
	struct proto_set_refuse f;
	char *long_line = str_fill('e', PROTO_LINE_MAX + 1);
	uint8_t h[PROTO_HASH_LEN] = {0};
	struct proto_wr w;
	uint32_t i;
	int all, calls = 0;

	proto_wr_init(&w);
	/* SET_DONE: more lines than carried, a line too long, a NUL, seq 0 */
	proto_put_u64(&w, 0);
	proto_put_u64(&w, 100);
	proto_put_u32(&w, PROTO_ERRORS_MAX + 1);
	for (i = 0; i < PROTO_ERRORS_MAX + 1; i++)
		proto_put_str(&w, "x");
	ck_assert_int_eq(proto_set_done_decode(w.buf.data, w.buf.len, &d),
	                 HS_ELIMIT);
	proto_wr_reset(&w);
	proto_put_u64(&w, 0);
	proto_put_u64(&w, 1);
	proto_put_u32(&w, 1);
	proto_put_str(&w, long_line);
	ck_assert_int_eq(proto_set_done_decode(w.buf.data, w.buf.len, &d),
	                 HS_ELIMIT);
	/* The longest line the standby sends is fine. */
	proto_wr_reset(&w);
	proto_put_u64(&w, 0);
	proto_put_u64(&w, 1);
	proto_put_u32(&w, 1);
	proto_put_strn(&w, long_line, PROTO_LINE_MAX);
	ck_assert_int_eq(proto_set_done_decode(w.buf.data, w.buf.len, &d),
	                 HS_OK);
	ck_assert_uint_eq(d.lines[0].len, PROTO_LINE_MAX);
	proto_wr_reset(&w);
	proto_put_u64(&w, 0);
	proto_put_u64(&w, 1);
	proto_put_u32(&w, 1);
	proto_put_strn(&w, "a\0b", 3);
	ck_assert_int_eq(proto_set_done_decode(w.buf.data, w.buf.len, &d),
	                 HS_EPROTO);
	proto_wr_reset(&w);
	proto_put_u64(&w, 0);
	proto_put_u64(&w, 0);
	proto_put_u32(&w, 0);
	proto_put_u64(&w, 0);
	ck_assert_int_eq(proto_set_done_decode(w.buf.data, w.buf.len, &d),
	                 HS_EPROTO);

	/* SIG: a signature past PROTO_SIG_MAX */
	proto_wr_reset(&w);
	proto_put_u16(&w, 0);
	proto_put_str(&w, "f");
	proto_put_u8(&w, 0);
	proto_put_bytes(&w, h, sizeof(h));
	proto_put_u64(&w, 0);
	proto_put_u32(&w, PROTO_SIG_MAX + 1);
	ck_assert_int_eq(proto_sig_decode(w.buf.data, w.buf.len, &g),
	                 HS_ELIMIT);

	/* PATCH_STALE: too many paths, an `all` that is not 0 or 1 */
	proto_wr_reset(&w);
	proto_put_u8(&w, 0);
	proto_put_u32(&w, PROTO_STALE_MAX + 1);
	ck_assert_int_eq(proto_patch_stale_decode(w.buf.data, w.buf.len, &all,
	                                          count_cb_path, &calls),
	                 HS_ELIMIT);
	proto_wr_reset(&w);
	proto_put_u8(&w, 2);
	proto_put_u32(&w, 0);
	ck_assert_int_eq(proto_patch_stale_decode(w.buf.data, w.buf.len, &all,
	                                          count_cb_path, &calls),
	                 HS_EPROTO);
	ck_assert_int_eq(calls, 0);

	/* SET_REFUSE: a reason too long, a set name too long */
	proto_wr_reset(&w);
	proto_put_str(&w, "www");
	proto_put_str(&w, long_line);
	ck_assert_int_eq(proto_set_refuse_decode(w.buf.data, w.buf.len, &f),
	                 HS_ELIMIT);
	proto_wr_reset(&w);
	proto_put_strn(&w, long_line, PROTO_NODE_MAX + 1);
	proto_put_str(&w, "why");
	ck_assert_int_eq(proto_set_refuse_decode(w.buf.data, w.buf.len, &f),
	                 HS_ELIMIT);
	proto_wr_free(&w);
	free(long_line);
}
END_TEST

static Suite *
reply_suite(void)
{
	Suite *s = suite_create("reply");
	TCase *tc = tcase_create("decode");

	tcase_add_loop_test(tc, reply_cut_table, 0, (int)N_ELEM(reply_cases));
	tcase_add_test(tc, reply_fields);
	tcase_add_test(tc, reply_callback_error);
	tcase_add_test(tc, reply_limits);
	suite_add_tcase(s, tc);
	return s;
}

/* ------------------------------- a database snapshot's MANIFEST text */

static struct proto_manifest pm, pm2;

/* Two files, as dbrepl writes them (sorted by name). */
static void
pm_fill(struct proto_manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->generation = 7;
	m->made = 1765000000.5;
	snprintf(m->type, sizeof(m->type), "sqlite");
	snprintf(m->mark, sizeof(m->mark), "abc+1");
	m->n = 2;
	snprintf(m->files[0].name, sizeof(m->files[0].name), "a.sqlite");
	m->files[0].size = 4;
	memset(m->files[0].sha256, 0xa5, 32);
	snprintf(m->files[1].name, sizeof(m->files[1].name), "b c.sqlite");
	m->files[1].size = UINT64_MAX;
	memset(m->files[1].sha256, 0x0f, 32);
}

#define PM_A5 "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5"
#define PM_0F "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
static const char pm_text[] =
    "hamnsync-db-manifest 1\ngeneration 7\nmade 1765000000.500000\n"
    "type sqlite\nmark abc+1\n"
    "file 4 " PM_A5 PM_A5 " a.sqlite\n"
    "file 18446744073709551615 " PM_0F PM_0F " b c.sqlite\n"
    "end 2\n";

static void
pm_encode(const struct proto_manifest *m, struct hs_buf *b)
{
	hs_buf_init(b, PROTO_MANIFEST_MAX);
	ck_assert_int_eq(proto_manifest_encode(m, b), 0);
}

START_TEST(manifest_codec_round_trip)
{
	char why[HS_ERRMSG_MAX] = "";
	struct hs_buf b;

	pm_fill(&pm);
	pm_encode(&pm, &b);
	ck_assert_int_eq(proto_manifest_decode((const char *)b.data, b.len,
	                                       &pm2, why, sizeof(why)),
	                 0);
	ck_assert_int_eq(pm2.generation, 7);
	ck_assert(pm2.made == 1765000000.5);
	ck_assert_str_eq(pm2.type, "sqlite");
	ck_assert_str_eq(pm2.mark, "abc+1");
	ck_assert_int_eq(pm2.n, 2);
	ck_assert_int_eq(memcmp(pm.files, pm2.files, 2 * sizeof(pm.files[0])),
	                 0);
	/* The text is stable: the same manifest is the same bytes. */
	ck_assert_int_eq(b.len, strlen(pm_text));
	ck_assert_int_eq(memcmp(b.data, pm_text, b.len), 0);
	hs_buf_free(&b);
}
END_TEST

#define MF_HASH                                                                \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MF_HEAD                                                                \
	"hamnsync-db-manifest 1\ngeneration 3\nmade 1.5\ntype sqlite\n"        \
	"mark m\n"

static const struct {
	const char *text, *why;
} manifest_bad[] = {
    {"", "not a version 1 manifest"},
    {"hamnsync-db-manifest 2\n", "not a version 1 manifest"},
    {MF_HEAD "file 4 " MF_HASH " a.sqlite\n", "no end line (cut short)"},
    {MF_HEAD "file 4 " MF_HASH " a.sq", "the last line is cut short"},
    {MF_HEAD "end 1\n", "end line says 1 files, 0 listed"},
    {MF_HEAD "file 4 " MF_HASH " ../etc/passwd\nend 1\n",
     "file name \"../etc/passwd\" is not a plain name"},
    {MF_HEAD "file 4 " MF_HASH " ..\nend 1\n",
     "file name \"..\" is not a plain name"},
    {MF_HEAD "file 4 " MF_HASH " .\nend 1\n",
     "file name \".\" is not a plain name"},
    {MF_HEAD "file 4 " MF_HASH " a/b\nend 1\n",
     "file name \"a/b\" is not a plain name"},
    {MF_HEAD "file 4 " MF_HASH " /etc\nend 1\n",
     "file name \"/etc\" is not a plain name"},
    {MF_HEAD "file 4 " MF_HASH " a\tb\nend 1\n",
     "file name \"a\tb\" is not a plain name"},
    {MF_HEAD "file 4 " MF_HASH " \nend 1\n",
     "file name \"\" is not a plain name"},
    {MF_HEAD "file 4 " MF_HASH " MANIFEST\nend 1\n",
     "file name \"MANIFEST\" is not a plain name"},
    {MF_HEAD "file 4 xyz a.sqlite\nend 1\n", "a.sqlite: bad SHA-256 \"xyz\""},
    {MF_HEAD "file 4 " MF_HASH "0 a.sqlite\nend 1\n",
     "a.sqlite: bad SHA-256 \"" MF_HASH "0\""},
    {MF_HEAD "file 4 0123456789ABCDEF0123456789abcdef0123456789abcdef"
             "0123456789abcdef a\nend 1\n",
     "a: bad SHA-256 \"0123456789ABCDEF0123456789abcdef0123456789abcdef"
     "0123456789abcdef\""},
    {MF_HEAD "file -4 " MF_HASH " a.sqlite\nend 1\n",
     "a.sqlite: bad size \"-4\""},
    {MF_HEAD "file 18446744073709551616 " MF_HASH " a\nend 1\n",
     "a: bad size \"18446744073709551616\""},
    {MF_HEAD "file 4\nend 1\n", "a file line is short"},
    {MF_HEAD "file 4 " MF_HASH "\nend 1\n", "a file line is short"},
    {MF_HEAD "file 4 " MF_HASH " a\nfile 4 " MF_HASH " a\nend 2\n",
     "a: listed twice"},
    {MF_HEAD "colour blue\nend 0\n", "unknown key \"colour\""},
    {MF_HEAD "colour\nend 0\n", "line \"colour\" has no value"},
    {MF_HEAD "end 0\nfile 4 " MF_HASH " a\n", "text after the end line"},
    {"hamnsync-db-manifest 1\ngeneration 0\n", "bad generation \"0\""},
    {"hamnsync-db-manifest 1\nmade -1\n", "bad time \"-1\""},
    {"hamnsync-db-manifest 1\nmade 1x\n", "bad time \"1x\""},
    {"hamnsync-db-manifest 1\nmade nan\n", "bad time \"nan\""},
    {"hamnsync-db-manifest 1\nmade -inf\n", "bad time \"-inf\""},
    {"hamnsync-db-manifest 1\nmade inf\n", "bad time \"inf\""},
    {"hamnsync-db-manifest 1\nmade 1e300\n", "bad time \"1e300\""},
    {"hamnsync-db-manifest 1\ntype a-very-long-type-name\n", "bad type"},
    {"hamnsync-db-manifest 1\nend 0\n",
     "generation, made, type or mark missing"},
};

START_TEST(manifest_codec_refuses_malformed)
{
	char why[HS_ERRMSG_MAX] = "";
	const char *t = manifest_bad[_i].text;

	ck_assert_int_eq(
	    proto_manifest_decode(t, strlen(t), &pm, why, sizeof(why)),
	    HS_EPROTO);
	ck_assert_str_eq(why, manifest_bad[_i].why);
}
END_TEST

START_TEST(manifest_codec_refuses_nul_and_size)
{
	static const char nul[] = MF_HEAD "end\0 0\n";
	char why[HS_ERRMSG_MAX] = "", mark[PROTO_MANIFEST_MARK_MAX + 8];
	struct hs_buf b;
	char *big;

	ck_assert_int_eq(
	    proto_manifest_decode(nul, sizeof(nul) - 1, &pm, why, sizeof(why)),
	    HS_EPROTO);
	ck_assert_str_eq(why, "holds a NUL byte");

	big = calloc(1, PROTO_MANIFEST_MAX + 1);
	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(proto_manifest_decode(big, PROTO_MANIFEST_MAX + 1, &pm,
	                                       why, sizeof(why)),
	                 HS_EPROTO);
	ck_assert_str_eq(why, "larger than 131072 bytes");
	free(big);

	/* A mark longer than the struct holds is refused, never cut. */
	memset(mark, 'm', sizeof(mark) - 1);
	mark[sizeof(mark) - 1] = '\0';
	hs_buf_init(&b, PROTO_MANIFEST_MAX);
	ck_assert_int_eq(hs_buf_append(&b, "hamnsync-db-manifest 1\nmark ", 28),
	                 0);
	ck_assert_int_eq(hs_buf_append(&b, mark, strlen(mark)), 0);
	ck_assert_int_eq(hs_buf_append(&b, "\n", 1), 0);
	ck_assert_int_eq(proto_manifest_decode((const char *)b.data, b.len, &pm,
	                                       why, sizeof(why)),
	                 HS_EPROTO);
	ck_assert_str_eq(why, "mark too long");
	hs_buf_free(&b);
}
END_TEST

/* A manifest cut short anywhere in transit is refused, never read short. */
START_TEST(manifest_codec_every_cut_refused)
{
	char why[HS_ERRMSG_MAX];
	struct hs_buf b;
	size_t cut;

	pm_fill(&pm);
	pm_encode(&pm, &b);
	for (cut = 0; cut < b.len; cut++) {
		why[0] = '\0';
		ck_assert_msg(proto_manifest_decode((const char *)b.data, cut,
		                                    &pm2, why,
		                                    sizeof(why)) == HS_EPROTO,
		              "cut at %zu read as whole", cut);
		ck_assert(why[0] != '\0');
	}
	hs_buf_free(&b);
}
END_TEST

START_TEST(manifest_codec_name_rule)
{
	char longname[300];

	ck_assert(proto_manifest_name_ok("xcatdb.sqlite"));
	ck_assert(proto_manifest_name_ok("...")); /* plain, if odd */
	ck_assert(!proto_manifest_name_ok(""));
	ck_assert(!proto_manifest_name_ok("."));
	ck_assert(!proto_manifest_name_ok(".."));
	ck_assert(!proto_manifest_name_ok("a/b"));
	ck_assert(!proto_manifest_name_ok("a\nb"));
	ck_assert(!proto_manifest_name_ok("a\x7f"));
	memset(longname, 'n', 255);
	longname[255] = '\0';
	ck_assert(proto_manifest_name_ok(longname));
	longname[255] = 'n';
	longname[256] = '\0';
	ck_assert(!proto_manifest_name_ok(longname));
}
END_TEST

/* The encoder refuses what it cannot fit rather than writing it short. */
START_TEST(manifest_codec_encode_bounded)
{
	struct hs_buf b;

	pm_fill(&pm);
	hs_buf_init(&b, 64);
	ck_assert_int_lt(proto_manifest_encode(&pm, &b), 0);
	hs_buf_free(&b);
}
END_TEST

static Suite *
manifest_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, manifest_codec_round_trip);
	tcase_add_loop_test(tc, manifest_codec_refuses_malformed, 0,
	                    (int)N_ELEM(manifest_bad));
	tcase_add_test(tc, manifest_codec_refuses_nul_and_size);
	tcase_add_test(tc, manifest_codec_every_cut_refused);
	tcase_add_test(tc, manifest_codec_name_rule);
	tcase_add_test(tc, manifest_codec_encode_bounded);
	suite_add_tcase(s, tc);
	return s;
}
