/*
 * fuzz_manifest.c - the standby's decoder of a database snapshot's
 * MANIFEST (protocol/manifest.c), whose text comes from the folder the
 * primary replicated.
 *
 * Input: the manifest's text.  What the decoder accepts must hold: every
 * name plain and listed once, the strings bounded, and the manifest must
 * re-encode and decode to the same struct (the time to the encoder's
 * microseconds), its text then a fixed point of the codec.
 */
#include "fuzz.h"
#include "proto.h"

static struct proto_manifest m1, m2, m3;

static void
fz_accepted(const struct proto_manifest *m)
{
	size_t i, j;

	fz_str(m->type, sizeof(m->type) - 1);
	fz_str(m->mark, sizeof(m->mark) - 1);
	FZ_CHECK(m->generation > 0);
	FZ_CHECK(m->made >= 0);
	FZ_CHECK(m->n <= PROTO_MANIFEST_FILES_MAX);
	for (i = 0; i < m->n; i++) {
		fz_str(m->files[i].name, sizeof(m->files[i].name) - 1);
		FZ_CHECK(proto_manifest_name_ok(m->files[i].name));
		FZ_CHECK(strcmp(m->files[i].name, PROTO_MANIFEST_NAME) != 0);
		for (j = 0; j < i; j++)
			FZ_CHECK(strcmp(m->files[i].name, m->files[j].name) !=
			         0);
	}
}

/* Same struct, but the time, which the text carries to microseconds. */
static int
fz_same(const struct proto_manifest *a, const struct proto_manifest *b)
{
	char ta[512], tb[512];
	size_t i;

	snprintf(ta, sizeof(ta), "%.6f", a->made);
	snprintf(tb, sizeof(tb), "%.6f", b->made);
	if (a->generation != b->generation || strcmp(ta, tb) != 0 ||
	    strcmp(a->type, b->type) != 0 || strcmp(a->mark, b->mark) != 0 ||
	    a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++) {
		if (strcmp(a->files[i].name, b->files[i].name) != 0 ||
		    a->files[i].size != b->files[i].size ||
		    memcmp(a->files[i].sha256, b->files[i].sha256, 32) != 0)
			return 0;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[HS_ERRMSG_MAX];
	struct hs_buf t1, t2;

	why[0] = '\0';
	if (proto_manifest_decode((const char *)data, size, &m1, why,
	                          sizeof(why)) < 0) {
		/* A refusal says why, in one line. */
		FZ_CHECK(why[0] != '\0' && strchr(why, '\n') == NULL);
		return 0;
	}
	fz_accepted(&m1);
	hs_buf_init(&t1, PROTO_MANIFEST_MAX);
	hs_buf_init(&t2, PROTO_MANIFEST_MAX);
	FZ_CHECK(proto_manifest_encode(&m1, &t1) == 0);
	FZ_CHECK(proto_manifest_decode((const char *)t1.data, t1.len, &m2, why,
	                               sizeof(why)) == 0);
	FZ_CHECK(fz_same(&m1, &m2));
	FZ_CHECK(proto_manifest_encode(&m2, &t2) == 0);
	FZ_CHECK(t1.len == t2.len && memcmp(t1.data, t2.data, t1.len) == 0);
	FZ_CHECK(proto_manifest_decode((const char *)t2.data, t2.len, &m3, why,
	                               sizeof(why)) == 0);
	FZ_CHECK(fz_same(&m2, &m3));
	hs_buf_free(&t1);
	hs_buf_free(&t2);
	return 0;
}
