/*
 * fuzz_patch.c - the standby's decoders of a block patch (patch.c): the
 * OP_PATCH body (proto_op_patch_decode: an entry, then
 * proto_patch_hdr_decode), then proto_patch_rx_init, the OP_PATCH_DATA
 * frames through proto_patch_rx_block, and proto_patch_rx_end, in the
 * order standby/apply_patch.c calls them.
 *
 * Input:
 *	u64 basis size (what the standby's record says it holds)
 *	u16 n | n bytes: the OP_PATCH body (its entry's size is the final
 *	size)
 *	then frames until the input ends, each
 *	    u8 0 (even) | u16 n | n bytes: an OP_PATCH_DATA body as is, or
 *	    u8 1 (odd) | u64 offset | u32 n: a body of that offset and n
 *	    filler bytes (n <= 2 MiB), so that whole blocks of 16 KiB and
 *	    more cost the fuzzer a few bytes
 * All integers big-endian.  What rx_block accepts is checked against the
 * promises of proto.h: on a block boundary, strictly increasing, inside
 * the final size, whole; and when rx_end accepts, every byte past the
 * kept basis came in a block.
 */
#include "fuzz.h"
#include "proto.h"

#define FILL_MAX (2u * 1024 * 1024)

static uint8_t *frame;

struct state {
	struct proto_patch_rx rx;
	uint64_t covered_to; /* bytes from need_from on, sent contiguously */
	uint64_t last_end;
};

static void
take_block(struct state *s, const uint8_t *p, size_t len)
{
	char why[256];
	const uint8_t *data;
	uint64_t off, want;
	size_t n;

	why[0] = '\0';
	if (proto_patch_rx_block(&s->rx, p, len, &off, &data, &n, why,
	                         sizeof(why)) < 0) {
		FZ_CHECK(why[0] != '\0');
		return;
	}
	want = s->rx.final_size - off < s->rx.bsize ? s->rx.final_size - off
	                                            : s->rx.bsize;
	FZ_CHECK(off % s->rx.bsize == 0 && off < s->rx.final_size);
	FZ_CHECK(off >= s->last_end && n == want);
	FZ_CHECK(s->rx.blocks <= PROTO_BLOCKS_MAX);
	fz_inside(p, len, data, n);
	FZ_CHECK(data == p + 8);
	if (off <= s->covered_to && off + n > s->covered_to)
		s->covered_to = off + n;
	s->last_end = off + n;
}

static int
get_be(const uint8_t **p, size_t *left, size_t n, uint64_t *v)
{
	size_t i;

	if (*left < n)
		return -1;
	*v = 0;
	for (i = 0; i < n; i++)
		*v = *v << 8 | (*p)[i];
	*p += n;
	*left -= n;
	return 0;
}

static void
frames(struct state *s, const uint8_t *p, size_t left)
{
	uint64_t kind, off, n;
	size_t i;

	while (get_be(&p, &left, 1, &kind) == 0) {
		if ((kind & 1) == 0) {
			if (get_be(&p, &left, 2, &n) < 0 || n > left)
				return;
			/* A copy of its own size: ASan sees an overread. */
			memcpy(frame, p, n);
			take_block(s, frame, n);
			p += n;
			left -= n;
			continue;
		}
		if (get_be(&p, &left, 8, &off) < 0 ||
		    get_be(&p, &left, 4, &n) < 0)
			return;
		if (n > FILL_MAX)
			n = FILL_MAX;
		for (i = 0; i < 8; i++)
			frame[i] = (uint8_t)(off >> (56 - 8 * i));
		memset(frame + 8, 0xa5, n);
		take_block(s, frame, 8 + n);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_entry e;
	struct proto_patch_hdr h;
	struct state s;
	const uint8_t *p = data;
	size_t left = size;
	uint64_t basis, blen;
	char why[256];

	if (frame == NULL && (frame = malloc(8 + FILL_MAX)) == NULL)
		abort();
	if (get_be(&p, &left, 8, &basis) < 0 ||
	    get_be(&p, &left, 2, &blen) < 0 || blen > left)
		return 0;
	if (proto_op_patch_decode(p, blen, &e, &h) < 0)
		return 0;
	p += blen;
	left -= blen;
	memset(&s, 0, sizeof(s));
	why[0] = '\0';
	if (proto_patch_rx_init(&s.rx, basis, e.size, &h, why, sizeof(why)) <
	    0) {
		FZ_CHECK(why[0] != '\0');
		return 0;
	}
	FZ_CHECK(s.rx.need_from <= s.rx.final_size);
	s.covered_to = s.rx.need_from;
	frames(&s, p, left);
	why[0] = '\0';
	if (proto_patch_rx_end(&s.rx, why, sizeof(why)) == HS_OK)
		FZ_CHECK(s.covered_to >= s.rx.final_size);
	else
		FZ_CHECK(why[0] != '\0');
	return 0;
}
