/*
 * sendpatch.c - the primary's side of block patches (delta.h).
 *
 * Every big file whose content goes out (whole, delta or patch) has its
 * block table computed from the bytes read to send it.  The table and
 * the token the standby will hold are kept in memory until the set's
 * SET_DONE (the durable acknowledgement), then stored in the index.  When
 * such a file changes, it is read once, each block hashed and compared
 * with the record, and only the blocks that differ go out: no signature
 * round trip, no read of the standby's copy.  A standby whose copy is not
 * the recorded one says so (PATCH_STALE); those files lose their record
 * and go again, through signatures, in a scoped run of the same set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "idx.h"
#include "delta.h"
#include "send_int.h"

/* Memory for block tables awaiting SET_DONE: past it, no new records. */
#define BLK_PENDING_MAX (64u * 1024 * 1024)

/* A record to store (or drop) once the standby acknowledges the set. */
struct blk_pend {
	uint8_t *key;
	size_t klen;
	uint16_t src;
	char *path;
	int patched;           /* went as a patch (stale "all" applies) */
	struct idx_blocks rec; /* hash NULL: drop the record */
};

struct send_blk {
	struct blk_pend *v;
	size_t n, cap;
	size_t bytes;
	/* Paths the standby found stale in this set run. */
	struct proto_scope *stale;
	size_t n_stale;
	int stale_all;
};

static struct send_blk *
blk_of(struct sender *s)
{
	if (s->o->idx == NULL)
		return NULL;
	if (s->blk == NULL)
		s->blk = calloc(1, sizeof(*s->blk));
	return s->blk;
}

static int
key_of(struct sender *s, uint16_t src, const char *path, uint8_t *key,
       size_t *klen)
{
	return blk_key(s->set->name, src, path, key, BLK_KEY_CAP, klen);
}

void
send_blk_sent(struct sender *s, const struct scan_entry *p, struct blk_table *t,
              const uint8_t token[PROTO_HASH_LEN], int patched)
{
	struct send_blk *b = blk_of(s);
	uint8_t key[BLK_KEY_CAP];
	struct blk_pend *e;
	size_t klen, hb = t ? (size_t)t->n * BLK_HASH_LEN : 0;

	if (b == NULL || key_of(s, p->src, p->path, key, &klen) < 0)
		return;
	if (t != NULL && b->bytes + hb > BLK_PENDING_MAX)
		t = NULL; /* over budget: the file simply has no record */
	if (t == NULL) {
		struct idx_blocks old;

		/* Only a record that exists needs dropping. */
		if (idx_blocks_get(s->o->idx, key, klen, &old) < 0)
			return;
		idx_blocks_clear(&old);
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct blk_pend *v = reallocarray(b->v, cap, sizeof(*v));

		if (v == NULL)
			return; /* no record: the signature path stays */
		b->v = v;
		b->cap = cap;
	}
	e = &b->v[b->n];
	memset(e, 0, sizeof(*e));
	if ((e->key = malloc(klen)) == NULL)
		return;
	memcpy(e->key, key, klen);
	e->klen = klen;
	e->src = p->src;
	e->path = hs_xstrdup(p->path);
	e->patched = patched;
	if (t != NULL) {
		memcpy(e->rec.token, token, BLK_TOKEN_LEN);
		e->rec.size = t->size;
		e->rec.bsize = t->bsize;
		e->rec.n = t->n;
		e->rec.hash = t->hash;
		t->hash = NULL;
		b->bytes += hb;
	}
	b->n++;
}

static void
pend_clear(struct send_blk *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		free(b->v[i].key);
		free(b->v[i].path);
		idx_blocks_clear(&b->v[i].rec);
	}
	b->n = 0;
	b->bytes = 0;
}

void
send_blk_reset(struct sender *s)
{
	if (s->blk != NULL)
		pend_clear(s->blk);
}

void
send_blk_free(struct sender *s)
{
	if (s->blk == NULL)
		return;
	pend_clear(s->blk);
	free(s->blk->v);
	proto_scope_free(s->blk->stale, s->blk->n_stale);
	free(s->blk);
	s->blk = NULL;
}

static int
stale_add(struct send_blk *b, uint16_t src, const char *path)
{
	struct proto_scope *v;

	if (b->n_stale % 64 == 0) {
		v = reallocarray(b->stale, b->n_stale + 64, sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		b->stale = v;
	}
	b->stale[b->n_stale].src = src;
	b->stale[b->n_stale].recursive = 0;
	b->stale[b->n_stale].path = hs_xstrdup(path);
	b->n_stale++;
	return HS_OK;
}

/* One path of PATCH_STALE: sent again through signatures. */
static int
stale_one(void *arg, uint16_t src, const char *path)
{
	struct sender *s = arg;
	int rc;

	if (src >= s->set->sources.n)
		return HS_EPROTO;
	if ((rc = stale_add(blk_of(s), src, path)) < 0)
		return rc;
	send_note(s,
	          "%s: the standby's copy is not the one "
	          "recorded; sending it again",
	          send_show_at(s, src, path));
	return HS_OK;
}

int
send_blk_stale(struct sender *s, const struct proto_msg *m)
{
	struct send_blk *b = blk_of(s);
	int all, rc;

	/* We sent no patch without an index: a stale list is a lie. */
	if (b == NULL)
		return HS_EPROTO;
	if ((rc = proto_patch_stale_decode(m->data, m->len, &all, stale_one,
	                                   s)) < 0)
		return rc == HS_ELIMIT ? HS_EPROTO : rc;
	if (all) {
		b->stale_all = 1;
		send_note(s,
		          "set %s: the standby found many copies not the "
		          "ones recorded; sending every patched file again",
		          s->set->name);
	}
	return HS_OK;
}

static int
is_stale(const struct send_blk *b, const struct blk_pend *e)
{
	size_t i;

	if (b->stale_all && e->patched)
		return 1;
	for (i = 0; i < b->n_stale; i++)
		if (b->stale[i].src == e->src &&
		    strcmp(b->stale[i].path, e->path) == 0)
			return 1;
	return 0;
}

int
send_blk_acked(struct sender *s)
{
	struct send_blk *b = s->blk;
	struct idx_txn *t = NULL;
	uint8_t key[BLK_KEY_CAP];
	size_t i, klen;
	int rc = HS_OK;

	if (b == NULL || (b->n == 0 && b->n_stale == 0))
		return HS_OK;
	if ((rc = idx_txn_begin(s->o->idx, &t)) < 0)
		goto out;
	for (i = 0; i < b->n_stale && rc == HS_OK; i++)
		if (key_of(s, b->stale[i].src, b->stale[i].path, key, &klen) ==
		    HS_OK)
			rc = idx_blocks_del(t, key, klen);
	for (i = 0; i < b->n && rc == HS_OK; i++) {
		struct blk_pend *e = &b->v[i];

		if (e->rec.hash == NULL || is_stale(b, e))
			rc = idx_blocks_del(t, e->key, e->klen);
		else
			rc = idx_blocks_put(t, e->key, e->klen, &e->rec);
		/* "all": every patched file goes again, by name. */
		if (rc == HS_OK && b->stale_all && e->patched)
			rc = stale_add(b, e->src, e->path);
	}
	b->stale_all = 0;
	if (rc == HS_OK) {
		rc = idx_txn_commit(t);
		t = NULL;
	}
out:
	idx_txn_abort(t);
	pend_clear(b);
	/*
	 * Without stored records the next change of these files takes the
	 * signature path: slower, never wrong.  Not a reason to fail.
	 */
	if (rc < 0)
		hs_log_warnx("send: set %s: block records not stored: %s",
		             s->set->name, hs_strerror(rc));
	return HS_OK;
}

static int
scope_has(const struct proto_scope *v, size_t n, uint16_t src, const char *p)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].src == src && strcmp(v[i].path, p) == 0)
			return 1;
	return 0;
}

size_t
send_blk_retry(struct sender *s, struct proto_scope **scope)
{
	struct send_blk *b = s->blk;
	struct proto_scope *v;
	size_t i, n = 0;

	if (b == NULL || b->n_stale == 0)
		return 0;
	/* Each path after its directory, whose time the rename changes. */
	if ((v = calloc(b->n_stale * 2, sizeof(*v))) == NULL)
		return 0;
	for (i = 0; i < b->n_stale; i++) {
		const char *path = b->stale[i].path;
		const char *slash = strrchr(path, '/');
		char *dir;

		if (path[0] != '\0') {
			dir = slash ? hs_xstrdup(path) : hs_xstrdup("");
			if (slash)
				dir[slash - path] = '\0';
			if (scope_has(v, n, b->stale[i].src, dir))
				free(dir);
			else {
				v[n].src = b->stale[i].src;
				v[n++].path = dir;
			}
		}
		if (!scope_has(v, n, b->stale[i].src, path)) {
			v[n].src = b->stale[i].src;
			v[n++].path = hs_xstrdup(path);
		}
	}
	proto_scope_free(b->stale, b->n_stale);
	b->stale = NULL;
	b->n_stale = 0;
	*scope = v;
	return n;
}

/* ------------------------------------------------------ sending one */

/* OP_PATCH: the entry (with its extended attributes) and the header. */
static int
patch_begin(struct sender *s, const struct scan_entry *p,
            const struct proto_patch_hdr *h)
{
	static const uint8_t none[PROTO_XHASH_LEN];
	char rel[PROTO_PATH_MAX * 2 + 2];
	int rc;

	scan_to_proto(p, s->e);
	s->xa.len = 0;
	if (memcmp(p->xhash, none, sizeof(none)) != 0) {
		if (p->path[0] == '\0')
			snprintf(rel, sizeof(rel), "%s", s->leaf[p->src]);
		else
			snprintf(rel, sizeof(rel), "%s/%s", s->leaf[p->src],
			         p->path);
		if ((rc = xa_read_at(s->anchor[p->src], rel, &s->xa)) < 0)
			send_note(s, "%s: extended attributes unreadable: %s",
			          send_show(s, p), hs_strerror(rc));
		s->e->xattrs = s->xa.data;
		s->e->xattrs_len = (uint32_t)s->xa.len;
	}
	proto_wr_reset(&s->w);
	proto_entry_encode(&s->w, s->e);
	proto_patch_hdr_encode(&s->w, h);
	return proto_conn_send_wr(s->c, PROTO_T_OP_PATCH, &s->w, PROTO_RAW);
}

/* Hash all of fd into t; 1 if the file was shorter than announced. */
static int
hash_all(struct sender *s, int fd, struct blk_table *t)
{
	uint64_t off = 0;

	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (off < t->size) {
		size_t want = t->size - off < PROTO_CHUNK
		                  ? (size_t)(t->size - off)
		                  : PROTO_CHUNK;
		ssize_t n = pread(fd, s->buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		if (blk_table_feed(t, s->buf, (size_t)n) < 0)
			return 1;
		off += (uint64_t)n;
		s->done_bytes += (uint64_t)n;
		send_progress(s, 0);
	}
	return 0;
}

/* Length of block i of a file of `size` bytes. */
static uint64_t
block_len(uint64_t size, uint32_t bsize, uint32_t i)
{
	uint64_t off = (uint64_t)i * bsize;

	if (off >= size)
		return 0;
	return size - off < bsize ? size - off : bsize;
}

static int
block_changed(const struct idx_blocks *rec, const struct blk_table *t,
              uint32_t i)
{
	return i >= rec->n ||
	       block_len(rec->size, rec->bsize, i) !=
	           block_len(t->size, t->bsize, i) ||
	       memcmp(rec->hash[i], t->hash[i], BLK_HASH_LEN) != 0;
}

/* Send the changed blocks of fd, each in its own frame. */
static int
send_blocks(struct sender *s, int fd, const struct idx_blocks *rec,
            const struct blk_table *t, uint8_t *buf, int *changed)
{
	uint32_t i;
	int rc;

	for (i = 0; i < t->n; i++) {
		uint64_t off = (uint64_t)i * t->bsize, len;
		ssize_t n;
		int k;

		if (!block_changed(rec, t, i))
			continue;
		len = block_len(t->size, t->bsize, i);
		for (k = 0; k < 8; k++)
			buf[k] = (uint8_t)(off >> (56 - 8 * k));
		do
			n = pread(fd, buf + 8, (size_t)len, (off_t)off);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)len) {
			*changed = 1; /* shrank under us: abort the file */
			return HS_OK;
		}
		if ((rc = proto_conn_send(s->c, PROTO_T_OP_PATCH_DATA, buf,
		                          8 + (size_t)len, PROTO_ZSTD, NULL)) <
		    0)
			return rc;
		s->rep->delta_bytes += len;
	}
	return HS_OK;
}

/*
 * Not a patch after all (mostly changed, unchanged, or changed while
 * read): the standby drops what it prepared, quietly; the file goes on
 * through signatures.
 */
static int
patch_abort(struct sender *s)
{
	uint8_t body[1 + PROTO_HASH_LEN];

	memset(body, 0, sizeof(body));
	body[0] = 1;
	return proto_conn_send(s->c, PROTO_T_OP_FILE_END, body, sizeof(body),
	                       PROTO_RAW, NULL);
}

int
send_patch_try(struct sender *s, struct scan_entry *p)
{
	struct idx_blocks rec;
	struct blk_table t;
	struct proto_patch_hdr h;
	struct stat st;
	uint8_t key[BLK_KEY_CAP], token[BLK_TOKEN_LEN], *buf = NULL;
	size_t klen;
	uint32_t i, diff = 0;
	int fd, rc, changed = 0;

	memset(&t, 0, sizeof(t));
	if (blk_of(s) == NULL || p->size < BLK_FILE_MIN ||
	    key_of(s, p->src, p->path, key, &klen) < 0 ||
	    idx_blocks_get(s->o->idx, key, klen, &rec) < 0)
		return 0;
	if ((fd = send_open(s, p)) < 0) {
		idx_blocks_clear(&rec);
		return 0; /* the signature path reports it */
	}
	/* Gone or retyped: noted once here, nothing for the other path. */
	rc = 1;
	if (send_refresh(s, p, fd, &st) < 0)
		goto out;
	rc = 0;
	if (SCAN_IS_SPARSE(p) || blk_table_init(&t, p->size, rec.bsize) < 0 ||
	    (buf = malloc(8 + (size_t)t.bsize)) == NULL)
		goto out;
	/*
	 * Announce it first: the standby copies its basis into a temporary
	 * while we read and hash ours, on the other core.
	 */
	memcpy(h.basis, rec.token, sizeof(h.basis));
	h.bsize = t.bsize;
	if ((rc = patch_begin(s, p, &h)) < 0 ||
	    (rc = proto_conn_flush(s->c)) < 0)
		goto out;
	if (hash_all(s, fd, &t) != 0 || send_changed_since(fd, &st))
		goto undo; /* changed while read: the other path sees */
	for (i = 0; i < t.n; i++)
		diff += block_changed(&rec, &t, i);
	if (diff == 0 && t.size == rec.size)
		goto undo; /* same blocks: the hash comparison decides */
	if ((uint64_t)diff * 100 > (uint64_t)t.n * BLK_PATCH_MAX_PERCENT)
		goto undo; /* mostly new: librsync finds moved data */
	if ((rc = send_blocks(s, fd, &rec, &t, buf, &changed)) < 0)
		goto out;
	if (!changed && send_changed_since(fd, &st))
		changed = 1;
	blk_token(&t, token);
	if (!changed) {
		s->rep->delta_files++;
		s->rep->patch_files++;
		s->rep->delta_covered += p->size;
		p->flags |= P_REWRITTEN;
		send_blk_sent(s, p, &t, token, 1);
	}
	rc = send_file_end(s, p, changed, token);
	if (rc == HS_OK)
		rc = 1;
	goto out;
undo:
	s->done_bytes -= t.off; /* the other path counts them again */
	rc = patch_abort(s);
out:
	free(buf);
	blk_table_free(&t);
	idx_blocks_clear(&rec);
	close(fd);
	return rc;
}
