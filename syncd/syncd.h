/*
 * syncd.h - replication: scanning trees, the primary's sender, the
 * standby's receiver and the confined writer that applies changes to disk.
 *
 * A change travels scan -> send -> (wire) -> recv -> apply.
 */
#ifndef SYNCD_H
#define SYNCD_H

#include <stdint.h>
#include <sys/types.h>

#include "hs.h"
#include "proto.h"

/* Temporary files carry this prefix; leftovers are removed at start. */
#define FS_TMP_PREFIX	".hamnsync-tmp."

/* ------------------------------------------------------- confined paths */

/*
 * Check a path relative to a source as received from a peer: "" (the
 * source itself) or components separated by single '/', none empty, "."
 * or "..", each at most PROTO_NAME_MAX bytes, at most PROTO_DEPTH_MAX of
 * them, PROTO_PATH_MAX bytes in all.  HS_ECONFINE or HS_ELIMIT otherwise.
 */
int	fs_relpath_check(const char *rel);

/*
 * Open directory `rel` (relative, "" = dirfd itself) beneath `dirfd`
 * without following any symlink and without leaving dirfd (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk on kernels
 * without it).  Returns an O_PATH fd the caller owns, HS_ECONFINE when a
 * component is a symlink or escapes, -errno otherwise.
 */
int	fs_open_dir_beneath(int dirfd, const char *rel);

/*
 * Like fs_open_dir_beneath, creating missing components with `mode`.
 */
int	fs_mkdir_beneath(int dirfd, const char *rel, mode_t mode);

/*
 * Remove FS_TMP_PREFIX leftovers in directory dirfd/rel, and below it when
 * `recursive` (confined walk).  A missing directory is not an error.
 */
int	fs_clean_tmp(int dirfd, const char *rel, int recursive,
	    size_t *removed);

/* ------------------------------------------------------------- scanning */

/* One entry of a tree listing. */
struct scan_entry {
	char		*path;	/* relative to its source; "" = the source */
	char		*link;	/* symlink target, else NULL */
	uint16_t	 src;	/* index of the source in its set */
	uint8_t		 type;	/* enum proto_etype */
	uint8_t		 flags;	/* SCAN_F_* (sender bookkeeping) */
	uint32_t	 mode;	/* permission bits (07777) */
	uint32_t	 uid;
	uint32_t	 gid;
	uint64_t	 size;
	int64_t		 mtime_sec;
	uint32_t	 mtime_nsec;
};

#define SCAN_F_SEEN	0x01	/* matched by a primary entry */
#define SCAN_F_DIRTY	0x02	/* a directory whose contents changed */
#define SCAN_F_GONE	0x04	/* to be deleted on the standby */

struct scan_list {
	struct scan_entry	*v;
	size_t			 n;
	size_t			 cap;
	size_t			 bytes;	/* memory held, for the limit */
};

/* Entries one listing may hold (16M: ~2 GiB of memory at most). */
#define SCAN_ENTRIES_MAX (16u * 1024 * 1024)

/* Is `rel` excluded by `set` (basename match, or full path with '/')? */
int	scan_excluded(const struct hs_pathset *set, const char *rel);

/*
 * List the entry named `leaf` in directory `anchorfd` and, if it is a
 * directory, everything below it, into `out` (appending, pre-order).
 * Follows no symlink, skips excluded paths and FS_TMP_PREFIX files, and
 * does not descend into other filesystems' special files.  A missing leaf
 * is not an error.  Other entry types (fifos, devices, sockets) are
 * skipped for now with a debug log.
 */
int	scan_tree(int anchorfd, const char *leaf, uint16_t src,
	    const struct hs_pathset *set, struct scan_list *out);
int	scan_entry_add(struct scan_list *l, const struct scan_entry *e);
/* Sort by (src, path) so scan_list_find can bsearch. */
void	scan_list_sort(struct scan_list *l);
struct scan_entry *scan_list_find(struct scan_list *l, uint16_t src,
	    const char *path);
void	scan_list_free(struct scan_list *l);
/* Fill a wire entry from a listing entry. */
void	scan_to_proto(const struct scan_entry *s, struct proto_entry *e);

/* --------------------------------------------------- primary: one sync */

/* What a reconciliation found and did. */
struct send_report {
	uint64_t	files_sent;
	uint64_t	bytes_sent;	/* file content bytes */
	uint64_t	meta_only;
	uint64_t	deleted;
	uint64_t	dirs;
	uint64_t	symlinks;
	uint64_t	unchanged;
	uint64_t	remote_errors;	/* errors reported by the standby */
	uint64_t	sets_refused;
	uint64_t	changed_during; /* files changed while being read */
	uint64_t	wire_out;	/* bytes written to the socket */
	uint64_t	wire_in;
};

struct send_opts {
	int		dry_run;
	uint64_t	epoch;	/* this node's epoch, sent in HELLO */
};

/*
 * Connect to the configured peer and reconcile every path set once.
 * Returns HS_OK when the session completed (differences may remain: see
 * the report; each is printed on stderr), or a failure: -errno/HS_ETLS/
 * HS_EAUTH/HS_EVERSION/HS_EBUSY/HS_EREFUSED when the peer could not be
 * reached or authenticated (message in `why`).  Blocks.
 */
int	send_sync(const struct hs_conf *conf, const struct send_opts *o,
	    struct send_report *rep, char *why, size_t whylen);

/* ---------------------------------------- standby: one primary session */

/*
 * Serve one authenticated primary on `c` after the handshake: open sets,
 * list, hash, apply, report.  Returns HS_OK after BYE, or the error that
 * ended the session (logged).  `stop` is polled between frames.
 */
int	recv_session(const struct hs_conf *conf, int rootfd,
	    struct proto_conn *c, volatile int *stop);

/* ------------------------------------------------ standby: the daemon */

/*
 * Run the standby: listen, serve one primary at a time, apply under
 * target_root.  Returns when SIGTERM/SIGINT arrives (HS_OK) or on a fatal
 * start-up error (logged).  `conf_path` is re-read on SIGHUP.  Takes
 * ownership of `conf`.
 */
int	stdby_run(const char *conf_path, struct hs_conf *conf, int foreground);

/* -------------------------------------------- the confined applier */

struct apply;

/*
 * Start applying set `set` (configured on this node) beneath `rootfd`
 * (target_root).  Creates the sources' parent directories if missing.
 * Returns HS_ECONFINE if a parent is a symlink.  Caller owns *out.
 */
int	apply_open(int rootfd, const struct hs_pathset *set,
	    struct apply **out, char *why, size_t whylen);
/*
 * Handle one operation frame (PROTO_T_OP_*).  Per-path problems are
 * recorded (see apply_errors) and return HS_OK; only a protocol violation
 * returns an error, after which the object is poisoned.
 */
int	apply_op(struct apply *a, const struct proto_msg *m);
/* Make everything applied so far durable (fsync, rename, dir fsync). */
int	apply_flush(struct apply *a);
/* Discard an unfinished file (its temporary is removed). */
void	apply_abort(struct apply *a);
void	apply_free(struct apply *a);
/* Counters and the first PROTO_ERRORS_MAX error lines. */
uint64_t	apply_applied(const struct apply *a);
uint64_t	apply_error_count(const struct apply *a);
const char	*apply_error_line(const struct apply *a, size_t i);
size_t		apply_error_lines(const struct apply *a);
/* The open directory fd anchoring source `src` (borrowed), or -1. */
int	apply_anchor(struct apply *a, uint16_t src, const char **leaf);
/*
 * SHA-256 of the regular file (src, rel) beneath the set's anchor, opened
 * confined and without following symlinks.  HS_ENOTFOUND if absent or not
 * a regular file.
 */
int	apply_hash_file(struct apply *a, uint16_t src, const char *rel,
	    uint8_t out[PROTO_HASH_LEN]);
/* SHA-256 of everything readable from fd. */
int	fs_hash_fd(int fd, uint8_t out[PROTO_HASH_LEN]);
/* Record an error line for `path` (used by the receiver too). */
void	apply_error(struct apply *a, const char *path, const char *what,
	    int rc);

#endif /* SYNCD_H */
