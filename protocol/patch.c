/*
 * patch.c - the wire form of a block patch: the OP_PATCH header, and the
 * standby's checks on the blocks that follow it before any byte is
 * written.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

void
proto_patch_hdr_encode(struct proto_wr *w, const struct proto_patch_hdr *h)
{
	proto_put_bytes(w, h->basis, sizeof(h->basis));
	proto_put_u32(w, h->bsize);
}

int
proto_patch_hdr_decode(struct proto_rd *r, struct proto_patch_hdr *h)
{
	if (proto_get_bytes(r, h->basis, sizeof(h->basis)) < 0 ||
	    proto_get_u32(r, &h->bsize) < 0)
		return HS_EPROTO;
	return proto_rd_end(r);
}

int
proto_patch_rx_init(struct proto_patch_rx *rx, uint64_t basis_size,
                    uint64_t final_size, const struct proto_patch_hdr *h,
                    char *why, size_t whylen)
{
	uint64_t keep, most;

	memset(rx, 0, sizeof(*rx));
	if (h->bsize < PROTO_BLOCK_MIN || h->bsize > PROTO_BLOCK_MAX ||
	    (h->bsize & (h->bsize - 1)) != 0) {
		snprintf(why, whylen, "patch block size %u not allowed",
		         h->bsize);
		return HS_EPROTO;
	}
	/* As many blocks as a record holds: bounds the final size. */
	most = (uint64_t)h->bsize * PROTO_BLOCKS_MAX;
	if (final_size > most) {
		snprintf(why, whylen,
		         "patch final size %llu past the limit of %llu "
		         "(%u blocks of %u)",
		         (unsigned long long)final_size,
		         (unsigned long long)most, PROTO_BLOCKS_MAX, h->bsize);
		return HS_ELIMIT;
	}
	/*
	 * What the basis gives is its whole blocks below both sizes; every
	 * byte from there to the final size must come in the patch (a last
	 * block of another length always differs).
	 */
	keep = basis_size < final_size ? basis_size : final_size;
	keep -= keep % h->bsize;
	if (final_size == basis_size)
		keep = final_size;
	rx->basis_size = basis_size;
	rx->final_size = final_size;
	rx->bsize = h->bsize;
	rx->need_from = keep;
	return HS_OK;
}

int
proto_patch_rx_block(struct proto_patch_rx *rx, const uint8_t *p, size_t len,
                     uint64_t *off, const uint8_t **data, size_t *n, char *why,
                     size_t whylen)
{
	struct proto_rd r = {p, len};
	uint64_t o, want;

	if (proto_get_u64(&r, &o) < 0) {
		snprintf(why, whylen, "patch block without an offset");
		return HS_EPROTO;
	}
	if (o >= rx->final_size) {
		snprintf(
		    why, whylen, "patch block at %llu past the final size %llu",
		    (unsigned long long)o, (unsigned long long)rx->final_size);
		return HS_EPROTO;
	}
	if (o % rx->bsize != 0 || o < rx->next) {
		snprintf(why, whylen,
		         "patch block at %llu not on a block boundary after "
		         "%llu (unsorted or overlapping)",
		         (unsigned long long)o, (unsigned long long)rx->next);
		return HS_EPROTO;
	}
	/* Past the kept part of the basis, no gap may be left. */
	if (o > rx->need_from && o != rx->next) {
		snprintf(why, whylen,
		         "patch leaves bytes %llu..%llu unsent past the basis",
		         (unsigned long long)(rx->next > rx->need_from
		                                  ? rx->next
		                                  : rx->need_from),
		         (unsigned long long)o);
		return HS_EPROTO;
	}
	want = rx->final_size - o < rx->bsize ? rx->final_size - o : rx->bsize;
	if (r.left != want) {
		snprintf(why, whylen,
		         "patch block at %llu holds %zu bytes, not %llu",
		         (unsigned long long)o, r.left,
		         (unsigned long long)want);
		return r.left > want ? HS_ELIMIT : HS_EPROTO;
	}
	*off = o;
	*data = r.p;
	*n = r.left;
	rx->next = o + want;
	rx->blocks++;
	return HS_OK;
}

int
proto_patch_rx_end(const struct proto_patch_rx *rx, char *why, size_t whylen)
{
	if (rx->need_from < rx->final_size && rx->next != rx->final_size) {
		snprintf(why, whylen,
		         "patch leaves bytes from %llu to %llu unsent",
		         (unsigned long long)(rx->next > rx->need_from
		                                  ? rx->next
		                                  : rx->need_from),
		         (unsigned long long)rx->final_size);
		return HS_EPROTO;
	}
	return HS_OK;
}
