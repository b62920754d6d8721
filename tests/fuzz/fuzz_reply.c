/*
 * fuzz_reply.c - the primary's decoders of the standby's bytes: every
 * decoder of protocol/reply.c but the journal entry's (fuzz_journal):
 * SET_REFUSE, LIST (which reaches proto_entry_decode and the xattr walk
 * of codec.c), HASH_REPLY, SIG, SET_DONE, JOURNAL and PATCH_STALE.
 *
 * Input: u8 selector | message body.  The selector's low nibble picks the
 * decoder (modulo REP_N, in the order of the switch below); its high
 * nibble, when not 0, makes the per-item callback fail at that item, to
 * show a decoder stops there and passes the error up.
 */
#include "fuzz.h"
#include "proto.h"

enum {
	REP_SET_REFUSE,
	REP_LIST,
	REP_HASH_REPLY,
	REP_SIG,
	REP_SET_DONE,
	REP_JOURNAL,
	REP_PATCH_STALE,
	REP_N
};

#define CB_FAIL (HS_EBASE - 100) /* no decoder's own code */

struct walk {
	const uint8_t *p;
	size_t len;
	unsigned items;
	unsigned fail_at; /* 0: never */
};

static int
walk_item(struct walk *w)
{
	w->items++;
	return w->fail_at != 0 && w->items == w->fail_at ? CB_FAIL : HS_OK;
}

static int
on_entry(void *arg, struct proto_entry *e)
{
	struct walk *w = arg;

	fz_str(e->path, PROTO_PATH_MAX);
	fz_str(e->link, PROTO_PATH_MAX);
	fz_inside(w->p, w->len, e->xattrs, e->xattrs_len);
	FZ_CHECK(proto_xattrs_check(e->xattrs, e->xattrs_len) == HS_OK);
	/* The entry is scratch: the caller may write to it. */
	memset(e->path, 'x', 8);
	return walk_item(w);
}

static int
on_hash(void *arg, const struct proto_hash_reply *h)
{
	fz_str(h->path, PROTO_PATH_MAX);
	return walk_item(arg);
}

static int
on_stale(void *arg, uint16_t src, const char *path)
{
	(void)src;
	fz_str(path, PROTO_PATH_MAX);
	return walk_item(arg);
}

/* A callback's error comes back as it is, and only once it happened. */
static void
check_walk(const struct walk *w, int rc)
{
	FZ_CHECK((rc == CB_FAIL) ==
	         (w->fail_at != 0 && w->items == w->fail_at));
	FZ_CHECK(w->fail_at == 0 || w->items <= w->fail_at);
}

static void
set_done(const uint8_t *p, size_t len)
{
	struct proto_set_done d;
	uint32_t i;

	if (proto_set_done_decode(p, len, &d) < 0)
		return;
	FZ_CHECK(d.n_lines <= PROTO_ERRORS_MAX);
	for (i = 0; i < d.n_lines; i++) {
		FZ_CHECK(d.lines[i].len <= PROTO_LINE_MAX);
		fz_inside(p, len, d.lines[i].p, d.lines[i].len);
		FZ_CHECK(memchr(d.lines[i].p, '\0', d.lines[i].len) == NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_set_refuse sr;
	static struct proto_sig sig;
	struct proto_journal j;
	struct walk w;
	int all, rc;

	if (size < 1)
		return 0;
	w.p = data + 1;
	w.len = size - 1;
	w.items = 0;
	w.fail_at = data[0] >> 4;
	switch ((data[0] & 0x0f) % REP_N) {
	case REP_SET_REFUSE:
		if (proto_set_refuse_decode(w.p, w.len, &sr) == HS_OK) {
			fz_str(sr.set, PROTO_NODE_MAX);
			fz_str(sr.why, PROTO_LINE_MAX);
		}
		break;
	case REP_LIST:
		rc = proto_list_decode(w.p, w.len, on_entry, &w);
		check_walk(&w, rc);
		break;
	case REP_HASH_REPLY:
		rc = proto_hash_reply_decode(w.p, w.len, on_hash, &w);
		check_walk(&w, rc);
		break;
	case REP_SIG:
		if (proto_sig_decode(w.p, w.len, &sig) == HS_OK) {
			fz_str(sig.path, PROTO_PATH_MAX);
			FZ_CHECK(sig.len <= PROTO_SIG_MAX);
			fz_inside(w.p, w.len, sig.sig, sig.len);
		}
		break;
	case REP_SET_DONE:
		set_done(w.p, w.len);
		break;
	case REP_JOURNAL:
		(void)proto_journal_decode(w.p, w.len, &j);
		break;
	case REP_PATCH_STALE:
		rc = proto_patch_stale_decode(w.p, w.len, &all, on_stale, &w);
		check_walk(&w, rc);
		if (rc == HS_OK)
			FZ_CHECK(all == 0 || all == 1);
		break;
	}
	return 0;
}
