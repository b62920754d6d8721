/*
 * xcache_int.h - what a whole-set walk last read of each entry's extended
 * attributes (xcache.c), so the next walk reads only those of entries
 * that changed.  Used by scan.c (the walk), send.c (the primary's listing)
 * and recv.c (the standby's).  Only syncd/ includes this.
 *
 * Reading the attributes is a second path lookup per entry, as costly as
 * the stat: on a tree of 4,300 files it made each side's walk of a sync
 * with nothing to do ~2x longer than a stat-only one.  Any change to an
 * entry's attributes or ACLs changes its ctime, so an entry whose inode,
 * ctime, mtime and size are those recorded still has the attributes
 * recorded.  One file per set in state_dir/xattr-cache/, rewritten by
 * rename (not flushed: it is only a cache, and one that is lost, damaged
 * or from another tree only costs the reads) after each whole walk that
 * found it out of date.  The standby's listing uses it for every whole
 * listing (it cannot tell a verify from a sync); the primary's does not
 * for `verify` and dry runs.
 */
#ifndef XCACHE_INT_H
#define XCACHE_INT_H

#include <stdint.h>
#include <sys/stat.h>

#include "proto.h"

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

#endif /* XCACHE_INT_H */
