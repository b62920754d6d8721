/* codec.c - bounded big-endian encoders and decoders for message bodies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto.h"

void
proto_wr_init(struct proto_wr *w)
{
	hs_buf_init(&w->buf, PROTO_FRAME_MAX);
	w->rc = HS_OK;
}

void
proto_wr_reset(struct proto_wr *w)
{
	w->buf.len = 0;
	w->rc = HS_OK;
}

void
proto_wr_free(struct proto_wr *w)
{
	hs_buf_free(&w->buf);
}

void
proto_put_bytes(struct proto_wr *w, const void *p, size_t n)
{
	if (w->rc == HS_OK)
		w->rc = hs_buf_append(&w->buf, p, n);
}

void
proto_put_u8(struct proto_wr *w, uint8_t v)
{
	proto_put_bytes(w, &v, 1);
}

void
proto_put_u16(struct proto_wr *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	proto_put_bytes(w, b, sizeof(b));
}

void
proto_put_u32(struct proto_wr *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
	                (uint8_t)(v >> 8), (uint8_t)v};

	proto_put_bytes(w, b, sizeof(b));
}

void
proto_put_u64(struct proto_wr *w, uint64_t v)
{
	proto_put_u32(w, (uint32_t)(v >> 32));
	proto_put_u32(w, (uint32_t)v);
}

void
proto_wr_patch_u32(struct proto_wr *w, size_t off, uint32_t v)
{
	if (w->rc != HS_OK || off + 4 > w->buf.len)
		return;
	w->buf.data[off] = (uint8_t)(v >> 24);
	w->buf.data[off + 1] = (uint8_t)(v >> 16);
	w->buf.data[off + 2] = (uint8_t)(v >> 8);
	w->buf.data[off + 3] = (uint8_t)v;
}

void
proto_put_strn(struct proto_wr *w, const char *s, size_t n)
{
	if (n > UINT16_MAX) {
		if (w->rc == HS_OK)
			w->rc = HS_ELIMIT;
		return;
	}
	proto_put_u16(w, (uint16_t)n);
	proto_put_bytes(w, s, n);
}

void
proto_put_str(struct proto_wr *w, const char *s)
{
	proto_put_strn(w, s, strlen(s));
}

int
proto_get_bytes(struct proto_rd *r, void *out, size_t n)
{
	if (n > r->left)
		return HS_EPROTO;
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return HS_OK;
}

int
proto_get_u8(struct proto_rd *r, uint8_t *v)
{
	return proto_get_bytes(r, v, 1);
}

int
proto_get_u16(struct proto_rd *r, uint16_t *v)
{
	uint8_t b[2];

	if (proto_get_bytes(r, b, 2) < 0)
		return HS_EPROTO;
	*v = (uint16_t)(b[0] << 8 | b[1]);
	return HS_OK;
}

int
proto_get_u32(struct proto_rd *r, uint32_t *v)
{
	uint8_t b[4];

	if (proto_get_bytes(r, b, 4) < 0)
		return HS_EPROTO;
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
	     b[3];
	return HS_OK;
}

int
proto_get_u64(struct proto_rd *r, uint64_t *v)
{
	uint32_t hi, lo;

	if (proto_get_u32(r, &hi) < 0 || proto_get_u32(r, &lo) < 0)
		return HS_EPROTO;
	*v = (uint64_t)hi << 32 | lo;
	return HS_OK;
}

int
proto_get_str(struct proto_rd *r, char *out, size_t max, size_t *len)
{
	uint16_t n;

	if (proto_get_u16(r, &n) < 0)
		return HS_EPROTO;
	if (n > max)
		return HS_ELIMIT;
	if (n > r->left)
		return HS_EPROTO;
	if (memchr(r->p, '\0', n) != NULL)
		return HS_EPROTO;
	memcpy(out, r->p, n);
	out[n] = '\0';
	r->p += n;
	r->left -= n;
	if (len != NULL)
		*len = n;
	return HS_OK;
}

int
proto_rd_end(const struct proto_rd *r)
{
	return r->left == 0 ? HS_OK : HS_EPROTO;
}

void
proto_hello_encode(struct proto_wr *w, const struct proto_hello *h)
{
	proto_put_u32(w, h->magic);
	proto_put_u16(w, h->version);
	proto_put_str(w, h->name);
	proto_put_u8(w, h->role);
	proto_put_u64(w, h->epoch);
	if (h->flags != 0)
		proto_put_u8(w, h->flags);
}

int
proto_hello_decode(struct proto_rd *r, struct proto_hello *h)
{
	int rc;

	memset(h, 0, sizeof(*h));
	if ((rc = proto_get_u32(r, &h->magic)) < 0)
		return rc;
	if (h->magic != PROTO_MAGIC)
		return HS_EPROTO;
	if ((rc = proto_get_u16(r, &h->version)) < 0)
		return rc;
	/*
	 * Stop after the version when it is not ours: a later version may
	 * lay out the rest differently, and the caller must still be able to
	 * name it.
	 */
	if (h->version != PROTO_VERSION)
		return HS_OK;
	if ((rc = proto_get_str(r, h->name, PROTO_NODE_MAX, NULL)) < 0 ||
	    (rc = proto_get_u8(r, &h->role)) < 0 ||
	    (rc = proto_get_u64(r, &h->epoch)) < 0)
		return rc;
	if (h->role != HS_ROLE_PRIMARY && h->role != HS_ROLE_STANDBY)
		return HS_EPROTO;
	/* The optional flags byte (express lane); unknown bits refused. */
	if (r->left > 0 &&
	    ((rc = proto_get_u8(r, &h->flags)) < 0 ||
	     (h->flags & ~PROTO_HELLO_F_KNOWN) != 0 || h->flags == 0))
		return rc < 0 ? rc : HS_EPROTO;
	return proto_rd_end(r);
}

void
proto_entry_encode(struct proto_wr *w, const struct proto_entry *e)
{
	proto_put_u16(w, e->src);
	proto_put_str(w, e->path);
	proto_put_u8(w, e->type);
	proto_put_u32(w, e->mode);
	proto_put_u32(w, e->uid);
	proto_put_u32(w, e->gid);
	proto_put_u64(w, e->size);
	proto_put_u64(w, (uint64_t)e->mtime_sec);
	proto_put_u32(w, e->mtime_nsec);
	proto_put_str(w, e->type == PROTO_E_SYMLINK ? e->link : "");
	proto_put_u64(w, e->rdev);
	proto_put_u64(w, e->dev);
	proto_put_u64(w, e->ino);
	proto_put_u32(w, e->nlink);
	proto_put_u64(w, e->blocks);
	proto_put_bytes(w, e->xhash, PROTO_XHASH_LEN);
	proto_put_u32(w, e->xattrs_len);
	proto_put_bytes(w, e->xattrs, e->xattrs_len);
}

/*
 * A path string in an entry.  A NUL byte does not end the session: the
 * entry decodes with has_nul set (the NUL shown as '?') so the receiver
 * can reject that one path by name and carry on.
 */
static int
get_path(struct proto_rd *r, char *out, uint8_t *has_nul)
{
	uint16_t n, i;

	if (proto_get_u16(r, &n) < 0)
		return HS_EPROTO;
	if (n > PROTO_PATH_MAX)
		return HS_ELIMIT;
	if (n > r->left)
		return HS_EPROTO;
	for (i = 0; i < n; i++) {
		out[i] = (char)r->p[i];
		if (out[i] == '\0') {
			out[i] = '?';
			*has_nul = 1;
		}
	}
	out[n] = '\0';
	r->p += n;
	r->left -= n;
	return HS_OK;
}

int
proto_entry_decode(struct proto_rd *r, struct proto_entry *e)
{
	uint64_t sec;
	int rc;

	e->has_nul = 0;
	if ((rc = proto_get_u16(r, &e->src)) < 0 ||
	    (rc = get_path(r, e->path, &e->has_nul)) < 0 ||
	    (rc = proto_get_u8(r, &e->type)) < 0 ||
	    (rc = proto_get_u32(r, &e->mode)) < 0 ||
	    (rc = proto_get_u32(r, &e->uid)) < 0 ||
	    (rc = proto_get_u32(r, &e->gid)) < 0 ||
	    (rc = proto_get_u64(r, &e->size)) < 0 ||
	    (rc = proto_get_u64(r, &sec)) < 0 ||
	    (rc = proto_get_u32(r, &e->mtime_nsec)) < 0 ||
	    (rc = get_path(r, e->link, &e->has_nul)) < 0 ||
	    (rc = proto_get_u64(r, &e->rdev)) < 0 ||
	    (rc = proto_get_u64(r, &e->dev)) < 0 ||
	    (rc = proto_get_u64(r, &e->ino)) < 0 ||
	    (rc = proto_get_u32(r, &e->nlink)) < 0 ||
	    (rc = proto_get_u64(r, &e->blocks)) < 0 ||
	    (rc = proto_get_bytes(r, e->xhash, PROTO_XHASH_LEN)) < 0 ||
	    (rc = proto_get_u32(r, &e->xattrs_len)) < 0)
		return rc;
	if (e->xattrs_len > PROTO_XATTRS_MAX)
		return HS_ELIMIT;
	if (e->xattrs_len > r->left)
		return HS_EPROTO;
	e->xattrs = e->xattrs_len ? r->p : NULL;
	r->p += e->xattrs_len;
	r->left -= e->xattrs_len;
	if ((rc = proto_xattrs_check(e->xattrs, e->xattrs_len)) < 0)
		return rc;
	e->mtime_sec = (int64_t)sec;
	if (e->type < PROTO_E_FILE || e->type > PROTO_E_BLK)
		return HS_EPROTO;
	if (e->rdev != 0 && e->type != PROTO_E_CHR && e->type != PROTO_E_BLK)
		return HS_EPROTO;
	if ((e->mode & ~(uint32_t)07777) != 0 || e->mtime_nsec >= 1000000000u)
		return HS_EPROTO;
	if (e->type == PROTO_E_SYMLINK && e->link[0] == '\0')
		return HS_EPROTO;
	if (e->type != PROTO_E_SYMLINK && e->link[0] != '\0')
		return HS_EPROTO;
	return HS_OK;
}

void
proto_set_open_encode(struct proto_wr *w, const struct proto_set_open *s)
{
	uint16_t i;

	proto_put_str(w, s->name);
	proto_put_u16(w, s->n_sources);
	for (i = 0; i < s->n_sources; i++)
		proto_put_str(w, s->sources[i]);
}

void
proto_set_open_clear(struct proto_set_open *s)
{
	uint16_t i;

	for (i = 0; i < s->n_sources; i++)
		free(s->sources[i]);
	s->n_sources = 0;
}

int
proto_set_open_decode(struct proto_rd *r, struct proto_set_open *s)
{
	int rc;

	if ((rc = proto_set_open_decode_head(r, s)) < 0)
		return rc;
	if ((rc = proto_rd_end(r)) < 0)
		proto_set_open_clear(s);
	return rc;
}

int
proto_set_open_decode_head(struct proto_rd *r, struct proto_set_open *s)
{
	char path[PROTO_PATH_MAX + 1];
	uint16_t n, i;
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = proto_get_str(r, s->name, PROTO_NODE_MAX, NULL)) < 0 ||
	    (rc = proto_get_u16(r, &n)) < 0)
		return rc;
	if (n == 0 || n > PROTO_SOURCES_MAX)
		return HS_ELIMIT;
	for (i = 0; i < n; i++) {
		if ((rc = proto_get_str(r, path, PROTO_PATH_MAX, NULL)) < 0)
			goto fail;
		if ((s->sources[i] = strdup(path)) == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		s->n_sources = (uint16_t)(i + 1);
	}
	return HS_OK;
fail:
	proto_set_open_clear(s);
	return rc;
}

int
proto_xattr_next(struct proto_rd *r, struct proto_xattr *x)
{
	size_t n;
	int rc;

	if (r->left == 0)
		return 0;
	if ((rc = proto_get_str(r, x->name, PROTO_NAME_MAX, &n)) < 0 ||
	    (rc = proto_get_u32(r, &x->len)) < 0)
		return rc;
	if (n == 0)
		return HS_EPROTO;
	if (x->len > 65536)
		return HS_ELIMIT;
	if (x->len > r->left)
		return HS_EPROTO;
	x->value = r->p;
	r->p += x->len;
	r->left -= x->len;
	return 1;
}

int
proto_xattrs_check(const uint8_t *blob, size_t len)
{
	struct proto_rd r = {blob, len};
	struct proto_xattr x;
	char prev[PROTO_NAME_MAX + 1] = "";
	int rc, first = 1;

	while ((rc = proto_xattr_next(&r, &x)) == 1) {
		if (!first && strcmp(prev, x.name) >= 0)
			return HS_EPROTO;
		memcpy(prev, x.name, sizeof(prev));
		first = 0;
	}
	return rc;
}

void
proto_scope_encode(struct proto_wr *w, const struct proto_scope *v, size_t n)
{
	size_t i;

	proto_put_u32(w, (uint32_t)n);
	for (i = 0; i < n; i++) {
		proto_put_u16(w, v[i].src);
		proto_put_str(w, v[i].path);
		proto_put_u8(w, v[i].recursive);
	}
}

int
proto_scope_push(struct proto_scope **v, size_t *n, size_t *cap, uint16_t src,
                 const char *path, int recursive)
{
	char *copy;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct proto_scope *nv = reallocarray(*v, ncap, sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	if ((copy = strdup(path)) == NULL)
		return -ENOMEM;
	(*v)[*n].src = src;
	(*v)[*n].recursive = (uint8_t)recursive;
	(*v)[*n].path = copy;
	(*n)++;
	return HS_OK;
}

void
proto_scope_free(struct proto_scope *v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		free(v[i].path);
	free(v);
}

int
proto_scope_decode(struct proto_rd *r, struct proto_scope **out, size_t *n)
{
	char path[PROTO_PATH_MAX + 1];
	struct proto_scope *v;
	uint32_t cnt, i;
	int rc;

	if ((rc = proto_get_u32(r, &cnt)) < 0)
		return rc;
	if (cnt > PROTO_SCOPE_MAX)
		return HS_ELIMIT;
	/* Each item takes at least 5 bytes: check before allocating. */
	if (cnt > r->left / 5)
		return HS_EPROTO;
	if ((v = calloc(cnt ? cnt : 1, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		if ((rc = proto_get_u16(r, &v[i].src)) < 0 ||
		    (rc = proto_get_str(r, path, PROTO_PATH_MAX, NULL)) < 0 ||
		    (rc = proto_get_u8(r, &v[i].recursive)) < 0 ||
		    (v[i].recursive > 1 && (rc = HS_EPROTO) < 0)) {
			proto_scope_free(v, i);
			return rc;
		}
		if ((v[i].path = strdup(path)) == NULL) {
			proto_scope_free(v, i);
			return -ENOMEM;
		}
	}
	if ((rc = proto_rd_end(r)) < 0) {
		proto_scope_free(v, cnt);
		return rc;
	}
	*out = v;
	*n = cnt;
	return HS_OK;
}

/* Byte order, but '/' before any other byte: a subtree stays together. */
static int
path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = (unsigned char)*a, cb = (unsigned char)*b;

		if (ca == cb) {
			if (ca == 0)
				return 0;
			continue;
		}
		if (ca == 0 || cb == 0)
			return ca == 0 ? -1 : 1;
		if (ca == '/' || cb == '/')
			return ca == '/' ? -1 : 1;
		return ca < cb ? -1 : 1;
	}
}

static int
scope_cmp(const void *a, const void *b)
{
	const struct proto_scope *x = a, *y = b;

	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	return path_cmp(x->path, y->path);
}

int
proto_path_under(const char *a, const char *b)
{
	size_t n = strlen(a);

	if (n == 0)
		return b[0] != '\0';
	return strncmp(a, b, n) == 0 && b[n] == '/';
}

void
proto_scope_normalize(struct proto_scope *v, size_t *n)
{
	const struct proto_scope *rec = NULL;
	size_t i, k = 0;

	if (*n == 0)
		return;
	/*
	 * Sorted so that a directory comes right before everything below
	 * it: duplicates merge, and what a recursive entry covers goes.
	 */
	qsort(v, *n, sizeof(*v), scope_cmp);
	for (i = 0; i < *n; i++) {
		struct proto_scope *prev = k ? &v[k - 1] : NULL;

		if (prev && prev->src == v[i].src &&
		    strcmp(prev->path, v[i].path) == 0) {
			/* Merged recursive, it covers what follows too. */
			prev->recursive |= v[i].recursive;
			if (prev->recursive)
				rec = prev;
			free(v[i].path);
			continue;
		}
		if (rec != NULL && rec->src == v[i].src &&
		    proto_path_under(rec->path, v[i].path)) {
			free(v[i].path);
			continue;
		}
		v[k++] = v[i];
		if (v[k - 1].recursive)
			rec = &v[k - 1];
	}
	*n = k;
}
