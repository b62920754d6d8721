/*
 * fuzz_journal.c - the decoders of the change journal: an entry of the
 * primary's index journal (proto_jentry_decode, then its scope with
 * proto_jentry_scope and proto_scope_normalize as primary.c replays it),
 * the rename list the journal keeps (proto_renames_decode), and the
 * standby's journal state (proto_journal_decode: index id + sequence).
 * The index's own records (node state, file and block records) are
 * fixed-size structs checked by size and copied; there is no decoder to
 * fuzz there.
 *
 * Input: u8 selector | bytes.  Selector modulo 3: entry, renames, state.
 */
#include "fuzz.h"
#include "proto.h"

/* Few enough for the quadratic check of a normalized scope. */
#define CHECK_ALL_MAX 512

/* A normalized scope: no duplicate, nothing a recursive entry covers. */
static void
check_normalized(const struct proto_scope *v, size_t n)
{
	size_t i, j;

	if (n > CHECK_ALL_MAX)
		return;
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++) {
			if (i == j || v[i].src != v[j].src)
				continue;
			FZ_CHECK(strcmp(v[i].path, v[j].path) != 0);
			FZ_CHECK(!v[i].recursive ||
			         !proto_path_under(v[i].path, v[j].path));
		}
}

static void
entry(const uint8_t *p, size_t len)
{
	struct proto_jentry e;
	struct proto_scope *v = NULL;
	size_t n = 0;

	if (proto_jentry_decode(p, len, &e) < 0)
		return;
	fz_str(e.set, PROTO_NODE_MAX);
	fz_inside(p, len, e.scope, e.scope_len);
	if (proto_jentry_scope(&e, &v, &n) < 0)
		return;
	proto_scope_normalize(v, &n);
	check_normalized(v, n);
	proto_scope_free(v, n);
}

struct count {
	uint32_t seen;
};

static int
on_rename(void *arg, uint16_t src, const char *from, const char *to)
{
	struct count *c = arg;

	(void)src;
	fz_str(from, PROTO_PATH_MAX);
	fz_str(to, PROTO_PATH_MAX);
	c->seen++;
	return HS_OK;
}

static void
renames(const uint8_t *p, size_t len)
{
	struct count c = {0};
	uint32_t n = 0;
	int rc;

	rc = proto_renames_decode(p, len, &n, on_rename, &c);
	FZ_CHECK(c.seen <= n);
	if (rc == HS_OK)
		FZ_CHECK(c.seen == n && n <= PROTO_SCOPE_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_journal j;

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		entry(data + 1, size - 1);
		break;
	case 1:
		renames(data + 1, size - 1);
		break;
	case 2:
		(void)proto_journal_decode(data + 1, size - 1, &j);
		break;
	}
	return 0;
}
