/*
 * fuzz_frame.c - the frame layer of protocol/: a stream of received
 * bytes cut into frames as proto_conn_recv does, each header through
 * proto_hdr_unpack and each payload through proto_frame_decode (zstd
 * decompression under the frame window limit, frame.c).
 *
 * Input: the bytes a peer sends after the TLS handshake.  Decoding stops
 * at the first error, as the connection would, or at a frame cut short
 * (the connection would wait for the rest, or fail at EOF).
 */
#include <zstd.h>

#include "fuzz.h"
#include "proto.h"

static ZSTD_DCtx *dctx;
static uint8_t *plain;

static int
one_frame(const uint8_t **p, size_t *left)
{
	struct proto_hdr h;
	struct proto_msg m;
	uint8_t *in;
	volatile uint8_t sink = 0;
	size_t i;
	int rc;

	if ((rc = proto_hdr_unpack(*p, *left, &h)) < 0)
		return rc;
	FZ_CHECK(h.len <= PROTO_FRAME_MAX && (h.flags & ~PROTO_F_ZSTD) == 0);
	if (h.len > *left - PROTO_HDR_LEN)
		return HS_EPROTO;
	/* The payload in a buffer of its own size: ASan sees an overread. */
	if ((in = malloc(h.len ? h.len : 1)) == NULL)
		abort();
	memcpy(in, *p + PROTO_HDR_LEN, h.len);
	*p += PROTO_HDR_LEN + h.len;
	*left -= PROTO_HDR_LEN + h.len;
	rc = proto_frame_decode(&h, in, dctx, plain, &m);
	if (rc == HS_OK) {
		FZ_CHECK(m.type == h.type && m.len <= PROTO_FRAME_MAX);
		if (h.flags & PROTO_F_ZSTD)
			FZ_CHECK(m.data == plain);
		else
			FZ_CHECK(m.data == in && m.len == h.len);
		for (i = 0; i < m.len; i++)
			sink ^= m.data[i];
	}
	(void)sink;
	free(in);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t left = size;

	if (dctx == NULL) {
		dctx = proto_frame_dctx_new();
		plain = malloc(PROTO_FRAME_MAX);
		if (dctx == NULL || plain == NULL)
			abort();
	}
	while (left > 0 && one_frame(&p, &left) == HS_OK)
		;
	return 0;
}
