/* frame.c - frame headers and the whole-file hash. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <zstd.h>

#include "proto.h"

void
proto_hdr_pack(uint8_t raw[PROTO_HDR_LEN], uint8_t type, uint8_t flags,
               uint32_t len)
{
	raw[0] = type;
	raw[1] = flags;
	raw[2] = 0;
	raw[3] = 0;
	raw[4] = (uint8_t)(len >> 24);
	raw[5] = (uint8_t)(len >> 16);
	raw[6] = (uint8_t)(len >> 8);
	raw[7] = (uint8_t)len;
}

int
proto_hdr_unpack(const uint8_t *raw, size_t len, struct proto_hdr *h)
{
	if (len < PROTO_HDR_LEN)
		return HS_EPROTO;
	h->type = raw[0];
	h->flags = raw[1];
	h->len = (uint32_t)raw[4] << 24 | (uint32_t)raw[5] << 16 |
	         (uint32_t)raw[6] << 8 | raw[7];
	if (raw[2] != 0 || raw[3] != 0 || (h->flags & ~PROTO_F_ZSTD) != 0)
		return HS_EPROTO;
	if (h->len > PROTO_FRAME_MAX)
		return HS_ELIMIT;
	return HS_OK;
}

/* Decoder window limit: 8 MiB, bounding what a hostile frame can demand. */
#define ZSTD_WINDOW_LOG_MAX 23

struct ZSTD_DCtx_s *
proto_frame_dctx_new(void)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();

	if (d != NULL)
		ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax,
		                       ZSTD_WINDOW_LOG_MAX);
	return d;
}

static int
frame_decompress(const uint8_t *in, size_t zlen, ZSTD_DCtx *dctx,
                 uint8_t *plain, size_t *out)
{
	unsigned long long want = ZSTD_getFrameContentSize(in, zlen);
	size_t n;

	if (want == ZSTD_CONTENTSIZE_ERROR || want == ZSTD_CONTENTSIZE_UNKNOWN)
		return HS_EPROTO;
	if (want > PROTO_FRAME_MAX)
		return HS_ELIMIT;
	if (ZSTD_findFrameCompressedSize(in, zlen) != zlen)
		return HS_EPROTO;
	n = ZSTD_decompressDCtx(dctx, plain, (size_t)want, in, zlen);
	if (ZSTD_isError(n) || n != want)
		return HS_ECODEC;
	*out = n;
	return HS_OK;
}

int
proto_frame_decode(const struct proto_hdr *h, const uint8_t *in,
                   struct ZSTD_DCtx_s *dctx, uint8_t *plain,
                   struct proto_msg *m)
{
	int rc;

	m->type = h->type;
	if (h->flags & PROTO_F_ZSTD) {
		if ((rc = frame_decompress(in, h->len, dctx, plain, &m->len)) <
		    0)
			return rc;
		m->data = plain;
	} else {
		m->data = in;
		m->len = h->len;
	}
	return HS_OK;
}

struct proto_hash {
	EVP_MD_CTX *md;   /* SHA-256, or */
	XXH3_state_t *xx; /* XXH3-128 (proto_hash_new_xfer) */
};

int
proto_hash_new_xfer(struct proto_hash **out)
{
	struct proto_hash *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return -ENOMEM;
	if ((h->xx = XXH3_createState()) == NULL ||
	    XXH3_128bits_reset(h->xx) != XXH_OK) {
		proto_hash_free(h);
		return -ENOMEM;
	}
	*out = h;
	return HS_OK;
}

int
proto_hash_new(struct proto_hash **out)
{
	struct proto_hash *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return -ENOMEM;
	if ((h->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
		proto_hash_free(h);
		return HS_ETLS;
	}
	*out = h;
	return HS_OK;
}

void
proto_hash_update(struct proto_hash *h, const void *p, size_t n)
{
	if (h->xx != NULL)
		(void)XXH3_128bits_update(h->xx, p, n);
	else
		EVP_DigestUpdate(h->md, p, n);
}

void
proto_hash_final(struct proto_hash *h, uint8_t out[PROTO_HASH_LEN])
{
	unsigned int n = PROTO_HASH_LEN;

	if (h->xx != NULL) {
		XXH128_canonical_t c;

		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h->xx));
		memset(out, 0, PROTO_HASH_LEN);
		memcpy(out, c.digest, sizeof(c.digest));
		(void)XXH3_128bits_reset(h->xx);
		return;
	}
	EVP_DigestFinal_ex(h->md, out, &n);
	EVP_DigestInit_ex(h->md, EVP_sha256(), NULL);
}

void
proto_hash_free(struct proto_hash *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->md);
	if (h->xx != NULL)
		XXH3_freeState(h->xx);
	free(h);
}

void
proto_hash_hole(struct proto_hash *h, uint64_t end)
{
	uint8_t m[16] = {0, 'H', 'O', 'L', 'E', 0, 0, 0};
	int i;

	for (i = 0; i < 8; i++)
		m[8 + i] = (uint8_t)(end >> (56 - 8 * i));
	proto_hash_update(h, m, sizeof(m));
}
