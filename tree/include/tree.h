/*
 * tree.h - the filesystem side shared by both roles: confined path
 * operations (fs_), extended attributes and ACLs (xa_), scanning a tree
 * into listings (scan_), the cache of attribute digests (xcache_), and
 * content hashes and in-kernel copies of files (fs_).
 */
#ifndef TREE_H
#define TREE_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "hs.h"
#include "proto.h"

/* Temporary files carry this prefix; leftovers are removed at start. */
#define FS_TMP_PREFIX ".hamnsync-tmp."

/* ------------------------------------------------------- confined paths */

/*
 * Check a path relative to a source as received from a peer: "" (the
 * source itself) or components separated by single '/', none empty, "."
 * or "..", each at most PROTO_NAME_MAX bytes, at most PROTO_DEPTH_MAX of
 * them, PROTO_PATH_MAX bytes in all.  HS_ECONFINE or HS_ELIMIT otherwise.
 */
int fs_relpath_check(const char *rel);

/*
 * Open directory `rel` (relative, "" = dirfd itself) beneath `dirfd`
 * without following any symlink and without leaving dirfd (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk on kernels
 * without it).  Returns an O_PATH fd the caller owns, HS_ECONFINE when a
 * component is a symlink or escapes, -errno otherwise.
 */
int fs_open_dir_beneath(int dirfd, const char *rel);

/*
 * Like fs_open_dir_beneath, creating missing components with `mode`.
 */
int fs_mkdir_beneath(int dirfd, const char *rel, mode_t mode);

/*
 * Remove FS_TMP_PREFIX leftovers in directory dirfd/rel, and below it when
 * `recursive` (confined walk).  A missing directory is not an error.
 */
int fs_clean_tmp(int dirfd, const char *rel, int recursive, size_t *removed);

/* ------------------------------------------------ extended attributes */

/*
 * Read all extended attributes (POSIX ACLs and file capabilities among
 * them) of the entry `name` in dirfd, without following it, into `blob`
 * (the wire format of proto_xattr_next, sorted by name).  Symlinks have
 * none as far as hamnsync is concerned.  A filesystem without xattr
 * support gives an empty blob.
 */
int xa_read_at(int dirfd, const char *name, struct hs_buf *blob);
int xa_read_fd(int fd, struct hs_buf *blob);
/* 16-byte digest of a blob; all zero for an empty one. */
void xa_digest(const uint8_t *blob, size_t len, uint8_t out[PROTO_XHASH_LEN]);
/*
 * Make the entry's attributes exactly `blob`: set each, remove the others.
 * Returns HS_OK or the first error (-errno).
 */
int xa_apply_fd(int fd, const uint8_t *blob, size_t len);
int xa_apply_at(int dirfd, const char *name, const uint8_t *blob, size_t len);

/* ------------------------------------------------------------- scanning */

/* One entry of a tree listing. */
struct scan_entry {
	char *path;     /* relative to its source; "" = the source */
	char *link;     /* symlink target, else NULL */
	uint16_t src;   /* index of the source in its set */
	uint8_t type;   /* enum proto_etype */
	uint16_t flags; /* SCAN_F_* and the sender's P_* */
	uint32_t mode;  /* permission bits (07777) */
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec; /* primary: change time, for the file index */
	int64_t ctime_sec;
	uint32_t nlink;
	uint64_t rdev;
	uint64_t dev;
	uint64_t ino;
	uint64_t blocks; /* 512-byte blocks allocated */
	uint8_t xhash[PROTO_XHASH_LEN];
	uint32_t leader; /* sender: 1 + index of the entry this
	                    one is hard-linked to, or 0 */
};

/* A regular file with fewer blocks allocated than its size needs. */
#define SCAN_IS_SPARSE(e)                                                      \
	((e)->type == PROTO_E_FILE && (e)->blocks * 512 + 4096 <= (e)->size)

#define SCAN_F_SEEN 0x01   /* matched by a primary entry */
#define SCAN_F_DIRTY 0x02  /* a directory whose contents changed */
#define SCAN_F_GONE 0x04   /* to be deleted on the standby */
#define SCAN_F_RETYPE 0x08 /* deleted to be recreated as another type */

struct scan_list {
	struct scan_entry *v;
	size_t n;
	size_t cap;
	size_t bytes;       /* memory held, for the limit */
	struct scan_ix *ix; /* scan_list_index's table, or NULL */
	size_t ix_mask;
};

/* Entries one listing may hold (16M: ~2 GiB of memory at most). */
#define SCAN_ENTRIES_MAX (16u * 1024 * 1024)

/* Is `rel` excluded by `set` (basename match, or full path with '/')? */
int scan_excluded(const struct hs_pathset *set, const char *rel);

/*
 * List the entry named `leaf` in directory `anchorfd`, whose path relative
 * to its source is `prefix`, and when it is a directory and `recursive`,
 * everything below it, into `out` (appending, pre-order).  Follows no
 * symlink, skips excluded paths and FS_TMP_PREFIX files.  A missing leaf
 * is not an error.  Sockets are skipped with a debug log.
 */
struct xcache; /* below: NULL reads every entry's attributes */
int scan_subtree(int anchorfd, const char *leaf, uint16_t src,
                 const char *prefix, int recursive,
                 const struct hs_pathset *set, struct scan_list *out,
                 struct xcache *xc);
/* The same walk, each entry shown to v->entry (on this thread) instead of
 * listed; v->dir, if set, as scan_tree_visit says. */
struct scan_visit;
int scan_subtree_visit(int anchorfd, const char *leaf, uint16_t src,
                       const char *prefix, int recursive,
                       const struct hs_pathset *set, const struct scan_visit *v,
                       struct xcache *xc);
/* The whole source, stat only: no extended attributes are read (xhash
 * stays zero; ctime tells their changes). */
int scan_tree_stat(int anchorfd, const char *leaf, uint16_t src,
                   const struct hs_pathset *set, struct scan_list *out);
/*
 * The walk of scan_tree_stat, shown to callbacks instead of listed, on
 * SCAN_WORKERS threads (`worker` says which: 0 is the calling thread).
 * `entry` sees every entry (borrowed, valid during the call); `dir`, if
 * set, sees each directory's path after its entry and before it is read,
 * so a watch it adds sees every change the listing may miss.  Both may
 * run on several threads at once; a result < 0 stops the walk with it.
 */
#define SCAN_WORKERS 2
struct scan_visit {
	int (*dir)(void *arg, unsigned worker, const char *rel);
	int (*entry)(void *arg, unsigned worker, const struct scan_entry *e);
	void *arg;
};
int scan_tree_visit(int anchorfd, const char *leaf, uint16_t src,
                    const struct hs_pathset *set, const struct scan_visit *v);
int scan_entry_add(struct scan_list *l, const struct scan_entry *e);
/*
 * Index the list by a hash of (src, path), its order kept (a sort was a
 * tenth of a no-change sync's CPU): scan_list_find is quick from then
 * until the next add, which drops the index (a find then reads the list).
 * HS_EPROTO, *dup set, when a (src, path) is listed twice (a peer's
 * listing: one copy would be planned unchanged, the other deleted).
 */
int scan_list_index(struct scan_list *l, const struct scan_entry **dup);
struct scan_entry *scan_list_find(struct scan_list *l, uint16_t src,
                                  const char *path);
void scan_list_free(struct scan_list *l);
/* Fill a wire entry from a listing entry. */
void scan_to_proto(const struct scan_entry *s, struct proto_entry *e);

/* ------------------------------------------ the attribute digest cache */

#define XCACHE_DIR "xattr-cache"
/*
 * Entries kept per set: 32 MiB loaded and as much built at most.  A set
 * with more entries than this is listed without a cache (its walk keeps
 * the file it loaded, which it cannot have written).
 */
#define XCACHE_MAX (1024u * 1024)
/*
 * An entry whose ctime is this close to the walk's start may change again
 * within the same tick of a coarse clock without its ctime moving: it is
 * read every time until it is older.
 */
#define XCACHE_RACY_NS (2ull * 1000 * 1000 * 1000)

struct xcache;

/*
 * The cache of set `set` under state_dir, for one walk.  Never fails: an
 * absent or unreadable cache is an empty one; NULL only without memory
 * (then the walk reads everything, as it does with a NULL cache).
 */
struct xcache *xcache_open(const char *state_dir, const char *set);
/*
 * 1 and the recorded digest when st is the entry recorded (kept for the
 * cache this walk writes), else 0: read the attributes, then xcache_put.
 */
int xcache_get(struct xcache *c, const struct stat *st,
               uint8_t xhash[PROTO_XHASH_LEN]);
/* The digest of the attributes this walk read for st. */
void xcache_put(struct xcache *c, const struct stat *st,
                const uint8_t xhash[PROTO_XHASH_LEN]);
/*
 * End of the walk: with `complete` (every source walked without error),
 * write what it found if that differs from what was loaded.  Frees c;
 * NULL is fine.
 */
void xcache_close(struct xcache *c, int complete);

/* ---------------------------------------------- contents of files */

/* SHA-256 of everything readable from fd. */
int fs_hash_fd(int fd, uint8_t out[PROTO_HASH_LEN]);
/* The same with the transfer hash: a written file's token. */
int fs_hash_fd_xfer(int fd, uint8_t out[PROTO_HASH_LEN]);
/*
 * Copy `len` bytes from the start of in_fd to out_fd, in the kernel
 * (copy_file_range) where it can, else by read and write.
 */
int fs_copy_fd(int in_fd, int out_fd, uint64_t len);
/*
 * The same, starting the writeback of each copied slice at once, so the
 * disk writes while the rest is copied and the final fsync waits less.
 */
int fs_copy_fd_flushing(int in_fd, int out_fd, uint64_t len);

#endif /* TREE_H */
