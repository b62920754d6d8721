/*
 * request.c - what the standby decodes: the bodies of the primary's
 * requests, each whole into a struct.  Every count is checked against the
 * bytes left before anything is allocated, and every body must be
 * consumed exactly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* The smallest hash request: src + empty path. */
#define HASH_REQ_MIN_LEN 4
/* The smallest rename: src + two empty paths. */
#define RENAME_MIN_LEN 6

int
proto_state_decode(const uint8_t *p, size_t len, struct proto_state *out)
{
	struct proto_rd r = {p, len};

	if (proto_get_u64(&r, &out->lag_ms) < 0 ||
	    proto_get_u64(&r, &out->pending) < 0 ||
	    proto_get_u8(&r, &out->in_sync) < 0 || proto_rd_end(&r) < 0 ||
	    out->in_sync > 1)
		return HS_EPROTO;
	return HS_OK;
}

int
proto_set_open_req_decode(uint8_t type, const uint8_t *p, size_t len,
                          struct proto_set_open_req *out)
{
	struct proto_rd r = {p, len};
	int rc;

	memset(out, 0, sizeof(*out));
	if (type == PROTO_T_SET_OPEN)
		return proto_set_open_decode(&r, &out->so);
	if (type != PROTO_T_SET_OPEN_SCOPED && type != PROTO_T_SET_OPEN_BLIND)
		return HS_EPROTO;
	if ((rc = proto_set_open_decode_head(&r, &out->so)) < 0)
		return rc;
	if ((rc = proto_scope_decode(&r, &out->scope, &out->n_scope)) < 0)
		proto_set_open_clear(&out->so);
	return rc;
}

void
proto_set_open_req_clear(struct proto_set_open_req *r)
{
	proto_set_open_clear(&r->so);
	proto_scope_free(r->scope, r->n_scope);
	r->scope = NULL;
	r->n_scope = 0;
}

void
proto_set_renames_clear(struct proto_set_renames *r)
{
	size_t i;

	for (i = 0; r->v != NULL && i < r->n; i++) {
		free(r->v[i].from);
		free(r->v[i].to);
	}
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

int
proto_renames_decode(const uint8_t *p, size_t len, uint32_t *n,
                     int (*fn)(void *arg, uint16_t src, const char *from,
                               const char *to),
                     void *arg)
{
	struct proto_rd r = {p, len};
	char from[PROTO_PATH_MAX + 1], to[PROTO_PATH_MAX + 1];
	uint32_t i;
	uint16_t src;
	int rc;

	/* The count is checked against the bytes left before fn sees it. */
	if (proto_get_u32(&r, n) < 0 || *n > PROTO_SCOPE_MAX ||
	    *n > r.left / RENAME_MIN_LEN)
		return HS_EPROTO;
	for (i = 0; i < *n; i++) {
		if (proto_get_u16(&r, &src) < 0 ||
		    proto_get_str(&r, from, PROTO_PATH_MAX, NULL) < 0 ||
		    proto_get_str(&r, to, PROTO_PATH_MAX, NULL) < 0)
			return HS_EPROTO;
		if ((rc = fn(arg, src, from, to)) < 0)
			return rc;
	}
	return proto_rd_end(&r);
}

/* proto_renames_decode's callback for SET_RENAMES: copy into out->v. */
struct renames_fill {
	struct proto_set_renames *out;
	uint32_t n;
};

static int
rename_fill(void *arg, uint16_t src, const char *from, const char *to)
{
	struct renames_fill *f = arg;
	struct proto_set_renames *o = f->out;
	struct proto_rename *v;

	if (o->v == NULL && (o->v = calloc(f->n, sizeof(*o->v))) == NULL)
		return -ENOMEM;
	v = &o->v[o->n++];
	v->src = src;
	if ((v->from = strdup(from)) == NULL || (v->to = strdup(to)) == NULL)
		return -ENOMEM;
	return HS_OK;
}

int
proto_set_renames_decode(const uint8_t *p, size_t len,
                         struct proto_set_renames *out)
{
	struct proto_rd r = {p, len};
	struct renames_fill f = {out, 0};
	int rc;

	memset(out, 0, sizeof(*out));
	if (proto_get_str(&r, out->set, PROTO_NODE_MAX, NULL) < 0)
		return HS_EPROTO;
	rc = proto_renames_decode(r.p, r.left, &f.n, rename_fill, &f);
	if (rc < 0)
		proto_set_renames_clear(out);
	return rc;
}

int
proto_hash_req_decode(const uint8_t *p, size_t len, struct proto_scope **out,
                      size_t *n)
{
	char path[PROTO_PATH_MAX + 1];
	struct proto_rd r = {p, len};
	struct proto_scope *v;
	uint32_t cnt, i;

	if (proto_get_u32(&r, &cnt) < 0 || cnt > len / HASH_REQ_MIN_LEN)
		return HS_EPROTO;
	if ((v = calloc(cnt ? cnt : 1, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		if (proto_get_u16(&r, &v[i].src) < 0 ||
		    proto_get_str(&r, path, PROTO_PATH_MAX, NULL) < 0) {
			proto_scope_free(v, i);
			return HS_EPROTO;
		}
		if ((v[i].path = strdup(path)) == NULL) {
			proto_scope_free(v, i);
			return -ENOMEM;
		}
	}
	if (proto_rd_end(&r) < 0) {
		proto_scope_free(v, cnt);
		return HS_EPROTO;
	}
	*out = v;
	*n = cnt;
	return HS_OK;
}

int
proto_op_entry_decode(const uint8_t *p, size_t len, struct proto_entry *e)
{
	struct proto_rd r = {p, len};
	int rc;

	if ((rc = proto_entry_decode(&r, e)) < 0)
		return rc;
	return proto_rd_end(&r);
}

int
proto_op_seek_decode(const uint8_t *p, size_t len, uint64_t *off)
{
	struct proto_rd r = {p, len};

	if (proto_get_u64(&r, off) < 0 || proto_rd_end(&r) < 0)
		return HS_EPROTO;
	return HS_OK;
}

int
proto_op_file_end_decode(const uint8_t *p, size_t len,
                         struct proto_op_file_end *out)
{
	struct proto_rd r = {p, len};

	if (proto_get_u8(&r, &out->status) < 0 ||
	    proto_get_bytes(&r, out->hash, sizeof(out->hash)) < 0 ||
	    proto_rd_end(&r) < 0 || out->status > 1)
		return HS_EPROTO;
	return HS_OK;
}

int
proto_op_link_decode(const uint8_t *p, size_t len, struct proto_op_link *out)
{
	struct proto_rd r = {p, len};

	if (proto_get_u16(&r, &out->src) < 0 ||
	    proto_get_str(&r, out->path, PROTO_PATH_MAX, NULL) < 0 ||
	    proto_get_u16(&r, &out->lsrc) < 0 ||
	    proto_get_str(&r, out->lpath, PROTO_PATH_MAX, NULL) < 0 ||
	    proto_rd_end(&r) < 0)
		return HS_EPROTO;
	return HS_OK;
}

int
proto_op_patch_decode(const uint8_t *p, size_t len, struct proto_entry *e,
                      struct proto_patch_hdr *h)
{
	struct proto_rd r = {p, len};
	int rc;

	if ((rc = proto_entry_decode(&r, e)) < 0)
		return rc;
	return proto_patch_hdr_decode(&r, h); /* checks that nothing follows */
}

int
proto_set_end_decode(const uint8_t *p, size_t len, struct proto_set_end *out)
{
	struct proto_rd r = {p, len};

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return HS_OK;
	if (len != sizeof(out->id) + sizeof(out->seq) ||
	    proto_get_bytes(&r, out->id, sizeof(out->id)) < 0 ||
	    proto_get_u64(&r, &out->seq) < 0 || out->seq == 0)
		return HS_EPROTO;
	return HS_OK;
}
