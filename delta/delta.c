/*
 * delta.c - librsync jobs: signatures on the standby, deltas on the
 * primary, patches on the standby.  Each job is driven in bounded slices
 * through rs_job_iter(); nothing here does I/O on a socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <librsync.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "delta.h"

#define JOB_OUT_LEN (64u * 1024)
/* A job that neither consumes nor produces this often is stuck. */
#define JOB_IDLE_MAX 64

/* librsync's messages go to our log, not to stderr. */
static void
delta_trace(rs_loglevel level, char const *msg)
{
	(void)level;
	hs_log_debug("librsync: %s", msg);
}

static void
delta_trace_init(void)
{
	static int done;

	if (!done) {
		rs_trace_to(delta_trace);
		done = 1;
	}
}

static int
rs_map(rs_result r)
{
	switch (r) {
	case RS_DONE:
	case RS_BLOCKED:
		return HS_OK;
	case RS_MEM_ERROR:
		return -ENOMEM;
	case RS_INPUT_ENDED:
	case RS_CORRUPT:
	case RS_BAD_MAGIC:
	case RS_IO_ERROR:
		return HS_EPROTO;
	default:
		return HS_ECODEC;
	}
}

/* How a slice of a job ended. */
struct job_end {
	int done;       /* the job finished (RS_DONE) */
	rs_result last; /* librsync's last answer */
	size_t left;    /* input not consumed when it finished */
};

/*
 * Push n bytes (and eof) through job, handing its output to emit.  Sets
 * je->done when the job finished.  Returns when the input is consumed and
 * no more output comes.
 */
static int
job_run(rs_job_t *job, const uint8_t *p, size_t n, int eof, uint8_t *out,
        delta_emit_fn emit, void *arg, struct job_end *je)
{
	rs_buffers_t b;
	int idle = 0, rc;

	memset(&b, 0, sizeof(b));
	memset(je, 0, sizeof(*je));
	b.next_in = (char *)p;
	b.avail_in = n;
	b.eof_in = eof;
	b.next_out = (char *)out;
	b.avail_out = JOB_OUT_LEN;
	for (;;) {
		size_t before_in = b.avail_in;
		rs_result r = rs_job_iter(job, &b);
		size_t produced = JOB_OUT_LEN - b.avail_out;

		je->last = r;
		if (produced > 0) {
			if ((rc = emit(arg, out, produced)) < 0)
				return rc;
			b.next_out = (char *)out;
			b.avail_out = JOB_OUT_LEN;
		}
		if (r == RS_DONE) {
			je->done = 1;
			je->left = b.avail_in;
			return HS_OK;
		}
		if (r != RS_BLOCKED)
			return rs_map(r);
		if (produced == 0 && b.avail_in == before_in) {
			if (!eof && b.avail_in == 0)
				return HS_OK; /* wants more input */
			if (++idle > JOB_IDLE_MAX)
				return HS_EPROTO;
		} else
			idle = 0;
	}
}

/* ---------------------------------------------------------- signatures */

static int
emit_buf(void *arg, const uint8_t *p, size_t n)
{
	return hs_buf_append(arg, p, n);
}

/*
 * The block length of our signatures for a file of `size` bytes:
 * librsync's (about its square root), longer when that would pass
 * SIG_BLOCKS_MAX blocks.
 */
static size_t
sig_block_len(uint64_t size)
{
	rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
	size_t block_len = 0, strong_len = (size_t)-1;

	if (rs_sig_args((rs_long_t)size, &magic, &block_len, &strong_len) !=
	        RS_DONE ||
	    block_len == 0)
		return RS_DEFAULT_BLOCK_LEN;
	if (size / block_len >= SIG_BLOCKS_MAX)
		block_len = (size_t)(size / SIG_BLOCKS_MAX + 1);
	return block_len;
}

int
delta_sig_fd(int fd, struct hs_buf *sig, uint8_t hash[PROTO_HASH_LEN],
             uint64_t *size)
{
	rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
	size_t block_len = 0, strong_len = (size_t)-1;
	struct proto_hash *h = NULL;
	uint8_t *in = NULL, *out = NULL;
	rs_job_t *job = NULL;
	struct stat st;
	struct job_end je = {0, RS_BLOCKED, 0};
	int rc;

	delta_trace_init();
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	if (rs_sig_args(st.st_size, &magic, &block_len, &strong_len) != RS_DONE)
		return HS_ECODEC;
	block_len = sig_block_len(*size);
	sig->len = 0;
	in = malloc(PROTO_CHUNK);
	out = malloc(JOB_OUT_LEN);
	job = rs_sig_begin(block_len, strong_len, magic);
	if (in == NULL || out == NULL || job == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = proto_hash_new(&h)) < 0)
		goto out;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (!je.done) {
		ssize_t n = read(fd, in, PROTO_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		proto_hash_update(h, in, (size_t)n);
		if ((rc = job_run(job, in, (size_t)n, n == 0, out, emit_buf,
		                  sig, &je)) < 0)
			goto out;
		if (n == 0 && !je.done) {
			rc = HS_ECODEC;
			goto out;
		}
	}
	proto_hash_final(h, hash);
	rc = HS_OK;
out:
	if (job != NULL)
		rs_job_free(job);
	proto_hash_free(h);
	free(in);
	free(out);
	return rc;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

int
delta_sig_check(const uint8_t *sig, size_t len, char *why, size_t whylen)
{
	uint32_t magic, block_len, strong_len;
	size_t blocks;

	if (len < 12) {
		snprintf(why, whylen, "signature of %zu bytes has no header",
		         len);
		return HS_EPROTO;
	}
	if (len > PROTO_SIG_MAX) {
		snprintf(why, whylen, "signature of %zu bytes > %u", len,
		         PROTO_SIG_MAX);
		return HS_ELIMIT;
	}
	magic = be32(sig);
	block_len = be32(sig + 4);
	strong_len = be32(sig + 8);
	if (magic != RS_BLAKE2_SIG_MAGIC && magic != RS_RK_BLAKE2_SIG_MAGIC) {
		snprintf(why, whylen,
		         "signature magic %#x is not a BLAKE2 "
		         "signature",
		         magic);
		return HS_EPROTO;
	}
	if (block_len < 16 || block_len > (1u << 30) || strong_len < 1 ||
	    strong_len > 32) {
		snprintf(why, whylen,
		         "signature block length %u or strong "
		         "sum length %u out of range",
		         block_len, strong_len);
		return HS_EPROTO;
	}
	if ((len - 12) % (4 + strong_len) != 0) {
		snprintf(why, whylen, "signature ends inside a block");
		return HS_EPROTO;
	}
	blocks = (len - 12) / (4 + strong_len);
	if (blocks > SIG_BLOCKS_MAX) {
		snprintf(why, whylen, "signature has %zu blocks > %u", blocks,
		         SIG_BLOCKS_MAX);
		return HS_ELIMIT;
	}
	return HS_OK;
}

int
delta_sig_fits(const uint8_t *sig, size_t len, uint64_t size, char *why,
               size_t whylen)
{
	size_t ours = sig_block_len(size), most;
	uint32_t block_len;

	if (len < 12)
		return HS_EPROTO;
	block_len = be32(sig + 4);
	most = ours * SIG_BLOCK_SLACK;
	if (most < RS_DEFAULT_BLOCK_LEN)
		most = RS_DEFAULT_BLOCK_LEN;
	if (block_len <= most)
		return HS_OK;
	snprintf(why, whylen,
	         "block length %u, more than %zu for a file of %llu bytes",
	         block_len, most, (unsigned long long)size);
	return HS_ELIMIT;
}

/* -------------------------------------------------------------- deltas */

struct delta_enc {
	rs_signature_t *sums;
	rs_job_t *job;
	uint8_t *out;
};

static int
emit_none(void *arg, const uint8_t *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return HS_OK;
}

int
delta_enc_new(const uint8_t *sig, size_t len, struct delta_enc **out)
{
	struct delta_enc *e;
	rs_job_t *load;
	struct job_end je;
	int rc;
	char why[128];

	delta_trace_init();
	if ((rc = delta_sig_check(sig, len, why, sizeof(why))) < 0)
		return rc;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -ENOMEM;
	if ((e->out = malloc(JOB_OUT_LEN)) == NULL ||
	    (load = rs_loadsig_begin(&e->sums)) == NULL) {
		delta_enc_free(e);
		return -ENOMEM;
	}
	rc = job_run(load, sig, len, 1, e->out, emit_none, NULL, &je);
	rs_job_free(load);
	if (rc == HS_OK && !je.done)
		rc = HS_EPROTO;
	if (rc == HS_OK && rs_build_hash_table(e->sums) != RS_DONE)
		rc = HS_ECODEC;
	if (rc == HS_OK && (e->job = rs_delta_begin(e->sums)) == NULL)
		rc = -ENOMEM;
	if (rc < 0) {
		delta_enc_free(e);
		return rc;
	}
	*out = e;
	return HS_OK;
}

int
delta_enc_feed(struct delta_enc *e, const uint8_t *p, size_t n, int eof,
               delta_emit_fn emit, void *arg)
{
	struct job_end je;
	int rc;

	rc = job_run(e->job, p, n, eof, e->out, emit, arg, &je);
	if (rc == HS_OK && eof && !je.done)
		rc = HS_ECODEC;
	return rc;
}

void
delta_enc_free(struct delta_enc *e)
{
	if (e == NULL)
		return;
	if (e->job != NULL)
		rs_job_free(e->job);
	if (e->sums != NULL)
		rs_free_sumset(e->sums);
	free(e->out);
	free(e);
}

/* ------------------------------------------------------------- patches */

struct delta_dec {
	int basis_fd;
	uint64_t basis_size;
	uint64_t max_out;
	uint64_t produced;
	rs_job_t *job;
	uint8_t *out;
	char why[160];
	int done; /* END was read: nothing may follow */
	/* The caller's sink, wrapped to count output. */
	delta_emit_fn emit;
	void *arg;
	int sink_rc; /* the sink's failure (a full disk), not the delta's */
};

static rs_result
dec_copy(void *opaque, rs_long_t pos, size_t *len, void **buf)
{
	struct delta_dec *d = opaque;
	size_t done = 0;

	if (pos < 0 || *len == 0 || (uint64_t)pos >= d->basis_size ||
	    *len > d->basis_size - (uint64_t)pos) {
		snprintf(d->why, sizeof(d->why),
		         "delta copies %zu bytes at "
		         "offset %lld, outside the %llu-byte basis",
		         *len, (long long)pos,
		         (unsigned long long)d->basis_size);
		return RS_CORRUPT;
	}
	while (done < *len) {
		ssize_t n = pread(d->basis_fd, (uint8_t *)*buf + done,
		                  *len - done, (off_t)pos + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(d->why, sizeof(d->why),
			         "cannot read the basis: %s", strerror(errno));
			return RS_IO_ERROR;
		}
		if (n == 0) {
			snprintf(d->why, sizeof(d->why),
			         "basis changed while "
			         "the delta was applied");
			return RS_IO_ERROR;
		}
		done += (size_t)n;
	}
	return RS_DONE;
}

static int
dec_emit(void *arg, const uint8_t *p, size_t n)
{
	struct delta_dec *d = arg;
	int rc;

	if (n > d->max_out - d->produced) {
		snprintf(d->why, sizeof(d->why),
		         "delta produces more than "
		         "the %llu bytes announced",
		         (unsigned long long)d->max_out);
		return HS_ELIMIT;
	}
	d->produced += n;
	if ((rc = d->emit(d->arg, p, n)) < 0)
		d->sink_rc = rc;
	return rc;
}

int
delta_dec_new(int basis_fd, uint64_t basis_size, uint64_t max_out,
              struct delta_dec **out)
{
	struct delta_dec *d;

	delta_trace_init();
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	d->basis_fd = basis_fd;
	d->basis_size = basis_size;
	d->max_out = max_out;
	if ((d->out = malloc(JOB_OUT_LEN)) == NULL ||
	    (d->job = rs_patch_begin(dec_copy, d)) == NULL) {
		delta_dec_free(d);
		return -ENOMEM;
	}
	*out = d;
	return HS_OK;
}

int
delta_dec_feed(struct delta_dec *d, const uint8_t *p, size_t n, int eof,
               delta_emit_fn emit, void *arg)
{
	struct job_end je;
	int rc;

	if (d->done) {
		if (n == 0)
			return HS_OK;
		snprintf(d->why, sizeof(d->why),
		         "data after the end of the "
		         "delta");
		return HS_EPROTO;
	}
	d->emit = emit;
	d->arg = arg;
	rc = job_run(d->job, p, n, eof, d->out, dec_emit, d, &je);
	/* Writing the output failed: the caller says what and where. */
	if (d->sink_rc < 0)
		return d->sink_rc;
	if (rc == HS_OK && je.done) {
		d->done = 1;
		if (je.left > 0) {
			snprintf(d->why, sizeof(d->why),
			         "data after the end of "
			         "the delta");
			rc = HS_EPROTO;
		}
	} else if ((rc == HS_OK && eof) || je.last == RS_INPUT_ENDED) {
		snprintf(d->why, sizeof(d->why), "delta ends early");
		rc = HS_EPROTO;
	}
	if (rc < 0 && d->why[0] == '\0')
		snprintf(d->why, sizeof(d->why), "%s: %s",
		         rc == HS_EPROTO || rc == HS_ECODEC || rc == HS_ELIMIT
		             ? "malformed delta"
		             : "cannot apply the delta",
		         hs_strerror(rc));
	/* librsync's own complaints are all "malformed" to our callers. */
	if (rc == HS_ECODEC)
		rc = HS_EPROTO;
	return rc;
}

const char *
delta_dec_why(const struct delta_dec *d)
{
	return d->why;
}

void
delta_dec_free(struct delta_dec *d)
{
	if (d == NULL)
		return;
	if (d->job != NULL)
		rs_job_free(d->job);
	free(d->out);
	free(d);
}
