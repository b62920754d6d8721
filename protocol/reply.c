/*
 * reply.c - what the primary decodes: the standby's replies (SET_REFUSE,
 * LIST, HASH_REPLY, SIG, SET_DONE, JOURNAL, PATCH_STALE), and its own
 * bytes read back (rename lists, journal entries of its index), which
 * may be damaged.  Each decoder takes a whole body and checks it to its
 * last byte; nothing here trusts a count before it met its limit.
 */
#include <stdint.h>
#include <string.h>

#include "proto.h"

/*
 * A string of at most `max` bytes with no NUL, borrowed from the body
 * (proto_get_str copies): error lines stay where they are.
 */
static int
get_line(struct proto_rd *r, struct proto_line *l, size_t max)
{
	uint16_t n;

	if (proto_get_u16(r, &n) < 0)
		return HS_EPROTO;
	if (n > max)
		return HS_ELIMIT;
	if (n > r->left || memchr(r->p, '\0', n) != NULL)
		return HS_EPROTO;
	l->p = (const char *)r->p;
	l->len = n;
	r->p += n;
	r->left -= n;
	return HS_OK;
}

int
proto_set_refuse_decode(const uint8_t *p, size_t len,
                        struct proto_set_refuse *out)
{
	struct proto_rd r = {p, len};
	int rc;

	if ((rc = proto_get_str(&r, out->set, PROTO_NODE_MAX, NULL)) < 0 ||
	    (rc = proto_get_str(&r, out->why, PROTO_LINE_MAX, NULL)) < 0)
		return rc;
	return proto_rd_end(&r);
}

int
proto_list_decode(const uint8_t *p, size_t len,
                  int (*fn)(void *arg, struct proto_entry *e), void *arg)
{
	struct proto_rd r = {p, len};
	struct proto_entry e;
	uint32_t n, i;
	int rc;

	if (proto_get_u32(&r, &n) < 0)
		return HS_EPROTO;
	for (i = 0; i < n; i++)
		if ((rc = proto_entry_decode(&r, &e)) < 0 ||
		    (rc = fn(arg, &e)) < 0)
			return rc;
	return proto_rd_end(&r);
}

int
proto_hash_reply_decode(const uint8_t *p, size_t len,
                        int (*fn)(void *arg, const struct proto_hash_reply *h),
                        void *arg)
{
	struct proto_rd r = {p, len};
	struct proto_hash_reply h;
	uint32_t n, i;
	int rc;

	if (proto_get_u32(&r, &n) < 0)
		return HS_EPROTO;
	for (i = 0; i < n; i++) {
		if (proto_get_u16(&r, &h.src) < 0)
			return HS_EPROTO;
		if ((rc = proto_get_str(&r, h.path, PROTO_PATH_MAX, NULL)) < 0)
			return rc;
		if (proto_get_u8(&r, &h.status) < 0 ||
		    proto_get_bytes(&r, h.hash, sizeof(h.hash)) < 0)
			return HS_EPROTO;
		if ((rc = fn(arg, &h)) < 0)
			return rc;
	}
	return proto_rd_end(&r);
}

int
proto_sig_decode(const uint8_t *p, size_t len, struct proto_sig *out)
{
	struct proto_rd r = {p, len};
	int rc;

	if (proto_get_u16(&r, &out->src) < 0)
		return HS_EPROTO;
	if ((rc = proto_get_str(&r, out->path, PROTO_PATH_MAX, NULL)) < 0)
		return rc;
	if (proto_get_u8(&r, &out->status) < 0 ||
	    proto_get_bytes(&r, out->hash, sizeof(out->hash)) < 0 ||
	    proto_get_u64(&r, &out->size) < 0 ||
	    proto_get_u32(&r, &out->len) < 0)
		return HS_EPROTO;
	if (out->len > PROTO_SIG_MAX)
		return HS_ELIMIT;
	/* The signature is the rest of the body, to the byte. */
	if (out->len != r.left)
		return HS_EPROTO;
	out->sig = r.p;
	return HS_OK;
}

int
proto_set_done_decode(const uint8_t *p, size_t len, struct proto_set_done *out)
{
	struct proto_rd r = {p, len};
	uint32_t i;
	int rc;

	if (proto_get_u64(&r, &out->applied) < 0 ||
	    proto_get_u64(&r, &out->errors) < 0 ||
	    proto_get_u32(&r, &out->n_lines) < 0)
		return HS_EPROTO;
	if (out->n_lines > PROTO_ERRORS_MAX)
		return HS_ELIMIT;
	for (i = 0; i < out->n_lines; i++)
		if ((rc = get_line(&r, &out->lines[i], PROTO_LINE_MAX)) < 0)
			return rc;
	/* The sequence is there only when the run was numbered. */
	out->seq = 0;
	if (r.left > 0 && (proto_get_u64(&r, &out->seq) < 0 || out->seq == 0))
		return HS_EPROTO;
	return proto_rd_end(&r);
}

int
proto_journal_decode(const uint8_t *p, size_t len, struct proto_journal *out)
{
	struct proto_rd r = {p, len};

	if (proto_get_bytes(&r, out->id, sizeof(out->id)) < 0 ||
	    proto_get_u64(&r, &out->seq) < 0)
		return HS_EPROTO;
	return proto_rd_end(&r);
}

int
proto_patch_stale_decode(const uint8_t *p, size_t len, int *all,
                         int (*fn)(void *arg, uint16_t src, const char *path),
                         void *arg)
{
	struct proto_rd r = {p, len};
	char path[PROTO_PATH_MAX + 1];
	uint32_t n, i;
	uint16_t src;
	uint8_t a;
	int rc;

	if (proto_get_u8(&r, &a) < 0 || a > 1 || proto_get_u32(&r, &n) < 0)
		return HS_EPROTO;
	if (n > PROTO_STALE_MAX)
		return HS_ELIMIT;
	for (i = 0; i < n; i++) {
		if (proto_get_u16(&r, &src) < 0)
			return HS_EPROTO;
		if ((rc = proto_get_str(&r, path, PROTO_PATH_MAX, NULL)) < 0 ||
		    (rc = fn(arg, src, path)) < 0)
			return rc;
	}
	*all = a;
	return proto_rd_end(&r);
}

int
proto_jentry_decode(const void *p, size_t len, struct proto_jentry *out)
{
	struct proto_rd r = {p, len};
	int rc;

	if ((rc = proto_get_str(&r, out->set, PROTO_NODE_MAX, NULL)) < 0)
		return rc;
	if (proto_get_u64(&r, &out->mono_ns) < 0 ||
	    proto_get_u64(&r, &out->wall) < 0)
		return HS_EPROTO;
	out->scope = r.p;
	out->scope_len = r.left;
	return HS_OK;
}

int
proto_jentry_scope(const struct proto_jentry *e, struct proto_scope **v,
                   size_t *n)
{
	struct proto_rd r = {e->scope, e->scope_len};

	/* proto_scope_decode checks the end. */
	return proto_scope_decode(&r, v, n);
}
