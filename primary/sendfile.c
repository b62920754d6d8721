/*
 * sendfile.c - file content on the primary: whole files (holes skipped
 * with SEEK_DATA/SEEK_HOLE so sparse files stay sparse) and librsync
 * deltas against the standby's copy.
 *
 * What is sent is what we read: metadata comes from fstat of the open
 * file, and a file that changes while it is read is aborted (the standby
 * keeps its old copy) and reported, to be picked up by the next run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta.h"
#include "send_int.h"

/* Signatures asked for at once: bounded by count and estimated bytes. */
#define SIG_BATCH_FILES 256
#define SIG_BATCH_BYTES (8u * 1024 * 1024)

void
send_leave_large(struct sender *s)
{
	size_t i;

	for (i = 0; i < s->mine.n; i++) {
		struct scan_entry *p = &s->mine.v[i], *t;

		if (p->type != PROTO_E_FILE ||
		    (p->size <= s->o->max_file_bytes && p->nlink == 1))
			continue;
		/*
		 * Neither sent nor hashed, and not a reason to delete what
		 * the standby has there: the bulk lane's run decides.
		 */
		if (p->flags & (P_SEND_FILE | P_DELTA | P_HASH | P_SEND_META))
			s->rep->left_to_bulk++;
		p->flags &= (uint16_t) ~(P_SEND_FILE | P_DELTA | P_HASH |
		                         P_SEND_META | P_CREATED);
		p->leader = 0;
		t = scan_list_find(&s->theirs, p->src, p->path);
		if (t != NULL)
			t->flags &= (uint16_t) ~(SCAN_F_GONE | SCAN_F_RETYPE);
	}
}

/*
 * Files at least this big are read and hashed by a second thread while
 * this one sends (sendahead.c); below it the thread would cost more than
 * the overlap gains.
 */
#define AHEAD_MIN (4ull * PROTO_CHUNK)

/* One data frame of the file being sent. */
static int
send_chunk(struct sender *s, const uint8_t *p, size_t n, int *try_zstd)
{
	int z = 0, rc;

	rc = proto_conn_send(s->c, PROTO_T_OP_DATA, p, n,
	                     *try_zstd ? PROTO_ZSTD : PROTO_RAW, &z);
	if (rc < 0)
		return rc;
	/* Data that did not compress will not: stop trying. */
	if (*try_zstd && !z && n >= 4096)
		*try_zstd = 0;
	s->rep->bytes_sent += (uint64_t)n;
	s->done_bytes += (uint64_t)n;
	send_progress(s, 0);
	return HS_OK;
}

/* Send [off, end) of fd as data frames, hashing it. */
static int
send_range(struct sender *s, int fd, struct proto_hash *h, struct blk_table *t,
           uint64_t off, uint64_t end, int *try_zstd, int *changed)
{
	int rc;

	while (off < end) {
		size_t want =
		    end - off < PROTO_CHUNK ? (size_t)(end - off) : PROTO_CHUNK;
		ssize_t n = pread(fd, s->buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*changed = 1; /* shrank, or unreadable */
			return HS_OK;
		}
		proto_hash_update(h, s->buf, (size_t)n);
		if (t != NULL && blk_table_feed(t, s->buf, (size_t)n) < 0)
			*changed = 1; /* grew while read */
		if ((rc = send_chunk(s, s->buf, (size_t)n, try_zstd)) < 0)
			return rc;
		off += (uint64_t)n;
	}
	return HS_OK;
}

/*
 * The same through the reader thread: it reads and hashes while we send.
 * Without the thread (it could not start), read here.
 */
static int
send_range_ahead(struct sender *s, int fd, struct proto_hash *h,
                 struct blk_table *t, uint64_t off, uint64_t end, int *try_zstd,
                 int *changed)
{
	struct send_ahead *a;
	const uint8_t *p;
	size_t n;
	int rc = HS_OK;

	if (send_ahead_start(fd, off, end, h, t, &a) < 0)
		return send_range(s, fd, h, t, off, end, try_zstd, changed);
	while (rc == HS_OK && send_ahead_next(a, &p, &n))
		rc = send_chunk(s, p, n, try_zstd);
	if (send_ahead_finish(a))
		*changed = 1;
	return rc;
}

/* A hole [off, end): sent as a seek, hashed as a marker (proto.h). */
static int
send_hole(struct sender *s, struct proto_hash *h, uint64_t off, uint64_t end)
{
	uint8_t body[8];
	int i;

	proto_hash_hole(h, end);
	for (i = 0; i < 8; i++)
		body[i] = (uint8_t)(end >> (56 - 8 * i));
	s->done_bytes += end - off;
	return proto_conn_send(s->c, PROTO_T_OP_SEEK, body, sizeof(body),
	                       PROTO_RAW, NULL);
}

int
send_file(struct sender *s, struct scan_entry *p)
{
	struct proto_hash *h = NULL;
	uint8_t digest[PROTO_HASH_LEN];
	struct blk_table t;
	struct stat st;
	uint64_t off = 0;
	int fd, rc, try_zstd = 1, changed = 0, sparse;

	memset(&t, 0, sizeof(t));

	if ((fd = send_open(s, p)) < 0 || send_refresh(s, p, fd, &st) < 0) {
		if (fd < 0) {
			send_note(s,
			          "%s: vanished while syncing; "
			          "skipped",
			          send_show(s, p));
			s->rep->changed_during++;
		} else
			close(fd);
		return HS_OK;
	}
	sparse = SCAN_IS_SPARSE(p);
	/* Block hashes of the bytes we read anyway (delta.h). */
	if (!sparse && s->o->idx != NULL && blk_size_for(p->size) != 0 &&
	    blk_table_init(&t, p->size, blk_size_for(p->size)) < 0)
		memset(&t, 0, sizeof(t));
	if ((rc = send_entry(s, PROTO_T_OP_FILE, p)) < 0 ||
	    (rc = proto_hash_new_xfer(&h)) < 0)
		goto out;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (off < p->size && !changed) {
		off_t data = (off_t)off, hole = (off_t)p->size;

		if (sparse) {
			data = lseek(fd, (off_t)off, SEEK_DATA);
			if (data < 0 || (uint64_t)data > p->size)
				data = (off_t)p->size; /* ENXIO: hole to EOF */
			if ((uint64_t)data > off &&
			    (rc = send_hole(s, h, off, (uint64_t)data)) < 0)
				goto out;
			off = (uint64_t)data;
			if (off >= p->size)
				break;
			hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > p->size)
				hole = (off_t)p->size;
		}
		if (!sparse && p->size >= AHEAD_MIN)
			rc = send_range_ahead(s, fd, h, t.hash ? &t : NULL, off,
			                      (uint64_t)hole, &try_zstd,
			                      &changed);
		else
			rc = send_range(s, fd, h, t.hash ? &t : NULL, off,
			                (uint64_t)hole, &try_zstd, &changed);
		if (rc < 0)
			goto out;
		off = (uint64_t)hole;
	}
	if (!changed && send_changed_since(fd, &st))
		changed = 1;
	proto_hash_final(h, digest);
	if (!changed) {
		s->rep->files_sent++;
		p->flags |= P_REWRITTEN;
		send_blk_sent(s, p, blk_table_done(&t) == HS_OK ? &t : NULL,
		              digest, 0);
	}
	rc = send_file_end(s, p, changed, digest);
out:
	blk_table_free(&t);
	proto_hash_free(h);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------- deltas */

static int
flush_out(struct sender *s)
{
	int rc;

	if (s->out.len == 0)
		return HS_OK;
	rc = proto_conn_send(s->c, PROTO_T_OP_DATA, s->out.data, s->out.len,
	                     PROTO_ZSTD, NULL);
	s->rep->delta_bytes += s->out.len;
	s->out.len = 0;
	return rc;
}

/* librsync output: collect into frames of PROTO_CHUNK. */
static int
emit_delta(void *arg, const uint8_t *p, size_t n)
{
	struct sender *s = arg;
	int rc;

	while (n > 0) {
		size_t room = PROTO_CHUNK - s->out.len;
		size_t k = n < room ? n : room;

		if ((rc = hs_buf_append(&s->out, p, k)) < 0)
			return rc;
		p += k;
		n -= k;
		if (s->out.len == PROTO_CHUNK && (rc = flush_out(s)) < 0)
			return rc;
	}
	return HS_OK;
}

/* Send p as a delta against the standby's copy with signature sig. */
static int
send_delta(struct sender *s, struct scan_entry *p, const uint8_t *sig,
           size_t siglen)
{
	struct delta_enc *enc = NULL;
	struct proto_hash *h = NULL;
	uint8_t digest[PROTO_HASH_LEN];
	struct blk_table t;
	struct stat st;
	char why[160];
	int fd, rc, changed = 0;

	memset(&t, 0, sizeof(t));

	if ((rc = delta_sig_check(sig, siglen, why, sizeof(why))) < 0 ||
	    (rc = delta_sig_fits(sig, siglen, p->size, why, sizeof(why))) < 0 ||
	    (rc = delta_enc_new(sig, siglen, &enc)) < 0) {
		send_note(s,
		          "%s: unusable signature from the "
		          "standby (%s); sending the whole file",
		          send_show(s, p),
		          rc == HS_ELIMIT || rc == HS_EPROTO ? why
		                                             : hs_strerror(rc));
		return send_file(s, p);
	}
	if ((fd = send_open(s, p)) < 0 || send_refresh(s, p, fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		delta_enc_free(enc);
		return HS_OK;
	}
	if (!SCAN_IS_SPARSE(p) && s->o->idx != NULL &&
	    blk_size_for(p->size) != 0 &&
	    blk_table_init(&t, p->size, blk_size_for(p->size)) < 0)
		memset(&t, 0, sizeof(t));
	if ((rc = send_entry(s, PROTO_T_OP_DELTA, p)) < 0 ||
	    (rc = proto_hash_new_xfer(&h)) < 0)
		goto out;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t n = read(fd, s->buf, PROTO_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			changed = 1;
			n = 0;
		}
		proto_hash_update(h, s->buf, (size_t)n);
		if (t.hash != NULL && blk_table_feed(&t, s->buf, (size_t)n) < 0)
			changed = 1; /* grew while read */
		if ((rc = delta_enc_feed(enc, s->buf, (size_t)n, n == 0,
		                         emit_delta, s)) < 0)
			goto out;
		s->done_bytes += (uint64_t)n;
		send_progress(s, 0);
		if (n == 0)
			break;
	}
	if ((rc = flush_out(s)) < 0)
		goto out;
	if (!changed && send_changed_since(fd, &st))
		changed = 1;
	proto_hash_final(h, digest);
	if (!changed) {
		s->rep->delta_files++;
		s->rep->delta_covered += p->size;
		p->flags |= P_REWRITTEN;
		send_blk_sent(s, p, blk_table_done(&t) == HS_OK ? &t : NULL,
		              digest, 0);
	}
	rc = send_file_end(s, p, changed, digest);
out:
	blk_table_free(&t);
	s->out.len = 0;
	delta_enc_free(enc);
	proto_hash_free(h);
	close(fd);
	return rc;
}

/* A reply to one SIG_REQ, held until the whole batch is in. */
struct sig_reply {
	uint8_t status;
	uint8_t hash[PROTO_HASH_LEN];
	uint8_t *sig;
	uint32_t len;
};

static int
request_sigs(struct sender *s, struct scan_entry **batch, size_t n)
{
	size_t i;
	int rc;

	proto_wr_reset(&s->w);
	proto_put_u32(&s->w, (uint32_t)n);
	for (i = 0; i < n; i++) {
		proto_put_u16(&s->w, batch[i]->src);
		proto_put_str(&s->w, batch[i]->path);
	}
	if ((rc = proto_conn_send_wr(s->c, PROTO_T_SIG_REQ, &s->w,
	                             PROTO_ZSTD)) < 0 ||
	    (rc = proto_conn_send(s->c, PROTO_T_SIG_REQ_END, NULL, 0, PROTO_RAW,
	                          NULL)) < 0)
		return rc;
	return proto_conn_flush(s->c);
}

static int
read_sigs(struct sender *s, struct scan_entry **batch, size_t n,
          struct sig_reply *rep)
{
	struct proto_msg m;
	size_t k = 0;
	int rc;

	for (;;) {
		struct proto_sig g;

		if ((rc = send_recv(s, &m)) < 0)
			return rc;
		if (m.type == PROTO_T_SIG_END)
			return k == n ? HS_OK : HS_EPROTO;
		if (m.type != PROTO_T_SIG || k >= n)
			return HS_EPROTO;
		if ((rc = proto_sig_decode(m.data, m.len, &g)) < 0)
			return rc;
		if (g.src != batch[k]->src || strcmp(g.path, batch[k]->path))
			return HS_EPROTO;
		rep[k].status = g.status;
		memcpy(rep[k].hash, g.hash, sizeof(rep[k].hash));
		rep[k].len = g.len;
		if ((rep[k].sig = malloc(rep[k].len ? rep[k].len : 1)) == NULL)
			return -ENOMEM;
		memcpy(rep[k].sig, g.sig, rep[k].len);
		k++;
	}
}

/* Ask for one batch of signatures, then send what each file needs. */
static int
delta_batch(struct sender *s, struct scan_entry **batch, size_t n)
{
	struct sig_reply *rep = calloc(n, sizeof(*rep));
	uint8_t(*ours)[PROTO_HASH_LEN] = calloc(n, PROTO_HASH_LEN);
	size_t i;
	int rc;

	if (rep == NULL || ours == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = request_sigs(s, batch, n)) < 0)
		goto out;
	/* While the standby reads its copies, hash ours where it decides. */
	for (i = 0; i < n; i++)
		if ((batch[i]->flags & P_HASH) &&
		    send_hash_mine(s, batch[i], ours[i]) < 0)
			memset(ours[i], 0xff, PROTO_HASH_LEN);
	if ((rc = read_sigs(s, batch, n, rep)) < 0)
		goto out;
	for (i = 0; i < n && rc == HS_OK; i++) {
		struct scan_entry *p = batch[i];

		if (rep[i].status != 0)
			rc = send_file(s, p); /* our basis is gone there */
		else if ((p->flags & P_HASH) &&
		         memcmp(rep[i].hash, ours[i], PROTO_HASH_LEN) == 0) {
			s->rep->meta_only++;
			s->done_files++;
			s->done_bytes += p->size;
			rc = send_entry(s, PROTO_T_OP_META, p);
		} else
			rc = send_delta(s, p, rep[i].sig, rep[i].len);
	}
out:
	for (i = 0; rep != NULL && i < n; i++)
		free(rep[i].sig);
	free(rep);
	free(ours);
	return rc;
}

int
send_deltas(struct sender *s)
{
	struct scan_entry **batch;
	size_t i, n = 0;
	uint64_t est = 0;
	int rc = HS_OK;

	if ((batch = calloc(SIG_BATCH_FILES, sizeof(*batch))) == NULL)
		return -ENOMEM;
	for (i = 0; i < s->mine.n && rc == HS_OK; i++) {
		struct scan_entry *p = &s->mine.v[i];
		uint64_t blocks;

		if (!(p->flags & P_DELTA))
			continue;
		send_dry(s, "delta", p);
		if (s->o->dry_run)
			continue;
		/* Its changed blocks alone, when the index knows the rest. */
		if ((rc = send_patch_try(s, p)) != 0) {
			rc = rc < 0 ? rc : HS_OK;
			continue;
		}
		/* A signature is about 36 bytes per 2 KiB block, capped. */
		blocks = p->size / 2048 + 1;
		est += (blocks < SIG_BLOCKS_MAX ? blocks : SIG_BLOCKS_MAX) * 36;
		batch[n++] = p;
		if (n == SIG_BATCH_FILES || est >= SIG_BATCH_BYTES) {
			rc = delta_batch(s, batch, n);
			n = 0;
			est = 0;
		}
	}
	if (rc == HS_OK && n > 0)
		rc = delta_batch(s, batch, n);
	free(batch);
	return rc;
}
