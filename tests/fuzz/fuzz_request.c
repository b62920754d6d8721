/*
 * fuzz_request.c - the standby's decoders of the primary's bytes: the
 * HELLO (codec.c) and every decoder of protocol/request.c, which reach
 * proto_entry_decode, the xattr walk, proto_set_open_decode(_head) and
 * proto_scope_decode of codec.c.
 *
 * Input: u8 selector | message body.  The selector picks the decoder
 * (modulo REQ_N, in the order of the switch below); the seeds in
 * corpus/fuzz_request/ are real bodies from fuzz_seeds.c.
 */
#include "fuzz.h"
#include "proto.h"

enum {
	REQ_HELLO,
	REQ_STATE,
	REQ_SET_OPEN,
	REQ_SET_OPEN_SCOPED,
	REQ_SET_OPEN_BLIND,
	REQ_SET_RENAMES,
	REQ_HASH_REQ,
	REQ_OP_ENTRY,
	REQ_OP_SEEK,
	REQ_OP_FILE_END,
	REQ_OP_LINK,
	REQ_OP_PATCH,
	REQ_SET_END,
	REQ_N
};

/* What every decoded entry must be: bounded strings, xattrs inside. */
static void
check_entry(const uint8_t *p, size_t len, const struct proto_entry *e)
{
	fz_str(e->path, PROTO_PATH_MAX);
	fz_str(e->link, PROTO_PATH_MAX);
	FZ_CHECK(e->type >= PROTO_E_FILE && e->type <= PROTO_E_BLK);
	FZ_CHECK((e->mode & ~07777u) == 0 && e->mtime_nsec < 1000000000u);
	FZ_CHECK(e->xattrs_len <= PROTO_XATTRS_MAX);
	fz_inside(p, len, e->xattrs, e->xattrs_len);
	FZ_CHECK(proto_xattrs_check(e->xattrs, e->xattrs_len) == HS_OK);
}

static void
check_scope(const struct proto_scope *v, size_t n)
{
	size_t i;

	FZ_CHECK(n <= PROTO_SCOPE_MAX);
	for (i = 0; i < n; i++) {
		fz_str(v[i].path, PROTO_PATH_MAX);
		FZ_CHECK(v[i].recursive <= 1);
	}
}

static void
set_open(uint8_t type, const uint8_t *p, size_t len)
{
	struct proto_set_open_req r;
	uint16_t i;

	if (proto_set_open_req_decode(type, p, len, &r) < 0)
		return;
	fz_str(r.so.name, PROTO_NODE_MAX);
	FZ_CHECK(r.so.n_sources >= 1 && r.so.n_sources <= PROTO_SOURCES_MAX);
	for (i = 0; i < r.so.n_sources; i++)
		fz_str(r.so.sources[i], PROTO_PATH_MAX);
	FZ_CHECK((type == PROTO_T_SET_OPEN) == (r.scope == NULL));
	check_scope(r.scope, r.n_scope);
	proto_set_open_req_clear(&r);
}

static void
renames(const uint8_t *p, size_t len)
{
	struct proto_set_renames r;
	size_t i;

	if (proto_set_renames_decode(p, len, &r) < 0)
		return;
	fz_str(r.set, PROTO_NODE_MAX);
	FZ_CHECK(r.n <= PROTO_SCOPE_MAX);
	for (i = 0; i < r.n; i++) {
		fz_str(r.v[i].from, PROTO_PATH_MAX);
		fz_str(r.v[i].to, PROTO_PATH_MAX);
	}
	proto_set_renames_clear(&r);
}

static void
hash_req(const uint8_t *p, size_t len)
{
	struct proto_scope *v = NULL;
	size_t n = 0;

	if (proto_hash_req_decode(p, len, &v, &n) < 0)
		return;
	check_scope(v, n);
	proto_scope_free(v, n);
}

static void
hello(const uint8_t *p, size_t len)
{
	struct proto_rd r = {p, len};
	struct proto_hello h;

	if (proto_hello_decode(&r, &h) < 0)
		return;
	fz_str(h.name, PROTO_NODE_MAX);
	FZ_CHECK((h.flags & ~PROTO_HELLO_F_KNOWN) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_entry e;
	static struct proto_op_link l;
	struct proto_patch_hdr ph;
	struct proto_op_file_end fe;
	struct proto_set_end se;
	struct proto_state st;
	const uint8_t *p = data + 1;
	size_t len;
	uint64_t off;

	if (size < 1)
		return 0;
	len = size - 1;
	switch (data[0] % REQ_N) {
	case REQ_HELLO:
		hello(p, len);
		break;
	case REQ_STATE:
		if (proto_state_decode(p, len, &st) == HS_OK)
			FZ_CHECK(st.in_sync <= 1);
		break;
	case REQ_SET_OPEN:
		set_open(PROTO_T_SET_OPEN, p, len);
		break;
	case REQ_SET_OPEN_SCOPED:
		set_open(PROTO_T_SET_OPEN_SCOPED, p, len);
		break;
	case REQ_SET_OPEN_BLIND:
		set_open(PROTO_T_SET_OPEN_BLIND, p, len);
		break;
	case REQ_SET_RENAMES:
		renames(p, len);
		break;
	case REQ_HASH_REQ:
		hash_req(p, len);
		break;
	case REQ_OP_ENTRY:
		if (proto_op_entry_decode(p, len, &e) == HS_OK)
			check_entry(p, len, &e);
		break;
	case REQ_OP_SEEK:
		(void)proto_op_seek_decode(p, len, &off);
		break;
	case REQ_OP_FILE_END:
		if (proto_op_file_end_decode(p, len, &fe) == HS_OK)
			FZ_CHECK(fe.status <= 1);
		break;
	case REQ_OP_LINK:
		if (proto_op_link_decode(p, len, &l) == HS_OK) {
			fz_str(l.path, PROTO_PATH_MAX);
			fz_str(l.lpath, PROTO_PATH_MAX);
		}
		break;
	case REQ_OP_PATCH:
		if (proto_op_patch_decode(p, len, &e, &ph) == HS_OK)
			check_entry(p, len, &e);
		break;
	case REQ_SET_END:
		(void)proto_set_end_decode(p, len, &se);
		break;
	}
	return 0;
}
