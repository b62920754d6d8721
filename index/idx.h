/*
 * idx.h - the LMDB index in state_dir: node state (role, epoch) now; file
 * index, change journal and signature cache as replication grows.  This
 * module is the only code that includes <lmdb.h>.
 */
#ifndef IDX_H
#define IDX_H

#include <stdint.h>

#include "hs.h"

#define IDX_FORMAT_VERSION 1
/* Address space reserved for the map; the file grows only as used. */
#define IDX_MAP_SIZE (4ull * 1024 * 1024 * 1024)

struct idx;

/* What this node is. */
struct idx_node {
	enum hs_role role;
	uint64_t epoch; /* raised by each promote */
};

/*
 * Open (creating if `readonly` is 0) the index under `state_dir`/index.
 * HS_EINDEX when it exists with another format version, HS_ENOTFOUND when
 * readonly and there is none, -errno otherwise.  Caller owns *out.
 */
int idx_open(const char *state_dir, int readonly, struct idx **out);
void idx_close(struct idx *x);
/* HS_ENOTFOUND when this node has never stored its state. */
int idx_node_get(struct idx *x, struct idx_node *out);
int idx_node_put(struct idx *x, const struct idx_node *n);
/*
 * A small named record (at most IDX_BLOB_MAX bytes), e.g. the daemon's
 * last status.  get: *out is malloc'd, NUL-terminated; HS_ENOTFOUND.
 */
#define IDX_BLOB_MAX (1024 * 1024)
int idx_blob_put(struct idx *x, const char *key, const void *p, size_t len);
int idx_blob_get(struct idx *x, const char *key, char **out, size_t *len);

#endif /* IDX_H */
