/*
 * fuzz_delta.c - the librsync jobs of delta/ fed hostile input: a delta
 * from the peer applied to a real basis (delta_dec_*: the standby's
 * OP_DELTA), and a signature from the peer checked and loaded to encode
 * a real file against it (delta_sig_check, delta_enc_*: the primary's
 * answer to SIG).
 *
 * Input: u8 selector | bytes.  Selector bit 0: 0 delta, 1 signature.
 * The other bits pick how the bytes are cut into feeds (1 << (sel >> 1)
 * bytes each, at most 128), as a receiver gets them frame by frame.
 * The basis is 64 KiB of fixed pseudo-random bytes in a memfd; the
 * output may not pass OUT_MAX bytes.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "delta.h"
#include "fuzz.h"

#define BASIS_LEN (64u * 1024)
#define OUT_MAX (1024u * 1024)

static int basis_fd = -1;
static uint8_t basis[BASIS_LEN];
static uint8_t newfile[BASIS_LEN]; /* the basis, its first 4 KiB changed */

static void
basis_make(void)
{
	fz_basis(basis, newfile, BASIS_LEN);
	if ((basis_fd = memfd_create("fuzz_basis", MFD_CLOEXEC)) < 0 ||
	    write(basis_fd, basis, BASIS_LEN) != (ssize_t)BASIS_LEN)
		abort();
}

struct sink {
	uint64_t n;
};

static int
sink_emit(void *arg, const uint8_t *p, size_t n)
{
	struct sink *s = arg;
	volatile uint8_t x = 0;
	size_t i;

	for (i = 0; i < n; i++)
		x ^= p[i];
	(void)x;
	s->n += n;
	return HS_OK;
}

static void
apply_delta(const uint8_t *p, size_t len, size_t step)
{
	struct delta_dec *d;
	struct sink s = {0};
	size_t off = 0, n;
	int rc = HS_OK;

	if (delta_dec_new(basis_fd, BASIS_LEN, OUT_MAX, &d) < 0)
		abort();
	do {
		n = len - off < step ? len - off : step;
		rc = delta_dec_feed(d, p + off, n, off + n == len, sink_emit,
		                    &s);
		off += n;
	} while (rc == HS_OK && off < len);
	FZ_CHECK(s.n <= OUT_MAX);
	/* A malformed delta is told apart from a failed write by a reason. */
	if (rc < 0)
		FZ_CHECK(delta_dec_why(d)[0] != '\0');
	delta_dec_free(d);
}

static void
encode_against(const uint8_t *sig, size_t len, size_t step)
{
	struct delta_enc *e;
	struct sink s = {0};
	char why[256];
	size_t off = 0, n;
	int rc;

	why[0] = '\0';
	if (delta_sig_check(sig, len, why, sizeof(why)) < 0) {
		FZ_CHECK(why[0] != '\0');
		FZ_CHECK(delta_enc_new(sig, len, &e) < 0);
		return;
	}
	if (delta_enc_new(sig, len, &e) < 0)
		return;
	step *= 512;
	do {
		n = BASIS_LEN - off < step ? BASIS_LEN - off : step;
		rc = delta_enc_feed(e, newfile + off, n, off + n == BASIS_LEN,
		                    sink_emit, &s);
		off += n;
	} while (rc == HS_OK && off < BASIS_LEN);
	delta_enc_free(e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step;

	if (basis_fd < 0)
		basis_make();
	if (size < 1)
		return 0;
	step = (size_t)1 << ((data[0] >> 1) % 8);
	if (data[0] & 1)
		encode_against(data + 1, size - 1, step);
	else
		apply_delta(data + 1, size - 1, step);
	return 0;
}
