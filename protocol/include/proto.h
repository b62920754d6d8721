/*
 * proto.h - the hamnsync wire protocol: frames, message codecs, the
 * handshake, zstd per frame and mutual TLS 1.3 on a socket.
 *
 * A frame is an 8-byte header followed by a payload:
 *
 *	u8  type	PROTO_T_*
 *	u8  flags	PROTO_F_ZSTD: payload is one zstd frame
 *	u16 reserved	must be 0
 *	u32 length	payload bytes on the wire, <= PROTO_FRAME_MAX
 *
 * All integers are big-endian.  A compressed payload must declare its
 * content size, which must also be <= PROTO_FRAME_MAX.  Nothing is read
 * from a connection before TLS has verified the peer's certificate.
 *
 * Every name here starts with proto_ (PROTO_ for constants and types).
 * The decoders of whole message bodies sit in two sections at the end:
 * what the primary decodes (reply.c) and what the standby decodes
 * (request.c).  Nothing outside protocol/ reads peer bytes.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "hs.h"

#define PROTO_VERSION 2
#define PROTO_MAGIC 0x484d4e53u /* "HMNS" */
#define PROTO_HDR_LEN 8
/* 4 MiB: room for a 1 MiB data chunk or ~20,000 listing entries. */
#define PROTO_FRAME_MAX (4u * 1024 * 1024)
/* Data is sent in chunks of this size: small enough to keep latency low. */
#define PROTO_CHUNK (256u * 1024)
/* PATH_MAX on Linux, including the terminating NUL. */
#define PROTO_PATH_MAX 4095
#define PROTO_NAME_MAX 255    /* one path component, NAME_MAX */
#define PROTO_DEPTH_MAX 256   /* components in one relative path */
#define PROTO_NODE_MAX 64     /* node and set names */
#define PROTO_ERRORS_MAX 64   /* error lines carried in SET_DONE */
#define PROTO_SOURCES_MAX 256 /* sources per set */
#define PROTO_HASH_LEN 32     /* SHA-256 */
#define PROTO_XHASH_LEN 16    /* digest of an entry's extended attributes */
/* All extended attributes of one entry: Linux caps a list at 64 KiB of
 * names and each value at 64 KiB; 256 KiB leaves room for a few values. */
#define PROTO_XATTRS_MAX (256u * 1024)
/* A librsync signature: at most SIG_BLOCKS_MAX blocks (see delta/delta.c)
 * of at most 4 + 32 bytes, plus its header. */
#define PROTO_SIG_MAX (2u * 1024 * 1024)

#define PROTO_F_ZSTD 0x01

/* Message types; a session runs through them in this order. */
enum proto_type {
	PROTO_T_HELLO = 1, /* both: version, name, role, epoch */
	PROTO_T_ERROR = 2, /* either: fatal error text, then close */
	PROTO_T_BUSY = 3,  /* standby: serving another primary */
	PROTO_T_BYE = 4,   /* primary: session over */
	PROTO_T_PING = 5,  /* primary: heartbeat, u64 token */
	PROTO_T_PONG = 6,  /* standby: the token back */
	PROTO_T_STATE = 7, /* primary: u64 lag ms, u64 pending, u8 in-sync */
	PROTO_T_ALIVE = 8, /* either: no payload; busy, not gone (keepalive) */
	PROTO_T_SET_OPEN = 10,     /* primary: name + sources of one set */
	PROTO_T_SET_REFUSE = 11,   /* standby: set not configured here */
	PROTO_T_LIST = 12,         /* standby: batch of entries it holds */
	PROTO_T_LIST_END = 13,     /* standby: listing complete */
	PROTO_T_HASH_REQ = 14,     /* primary: batch of paths to hash */
	PROTO_T_HASH_REQ_END = 15, /* primary: no more paths */
	PROTO_T_HASH_REPLY = 16,   /* standby: batch of hashes */
	PROTO_T_HASH_END = 17,     /* standby: all hashes sent */
	PROTO_T_OP_DELETE = 20,    /* primary: remove one entry */
	PROTO_T_OP_DIR = 21,       /* primary: make a directory */
	PROTO_T_OP_SYMLINK = 22,   /* primary: make or replace a symlink */
	PROTO_T_OP_FILE = 23,      /* primary: a whole file follows */
	PROTO_T_OP_DATA = 24,      /* primary: next chunk of the file */
	PROTO_T_OP_FILE_END = 25,  /* primary: hash of the file, or abort */
	PROTO_T_OP_META = 26,      /* primary: mode, owner, mtime only */
	PROTO_T_SET_END = 27,      /* primary: no more operations */
	PROTO_T_SET_DONE = 28,     /* standby: applied and durable */
	PROTO_T_OP_SPECIAL = 29,   /* primary: make a fifo or device node */
	PROTO_T_OP_SEEK = 30,      /* primary: skip a hole in the file */
	PROTO_T_OP_DELTA = 31,     /* primary: a librsync delta follows */
	PROTO_T_OP_LINK = 32,      /* primary: hard link to another entry */
	PROTO_T_SIG_REQ = 40,      /* primary: batch of paths to sign */
	PROTO_T_SIG_REQ_END = 41,  /* primary: no more paths */
	PROTO_T_SIG = 42,          /* standby: hash and signature of a file */
	PROTO_T_SIG_END = 43,      /* standby: all signatures sent */
	PROTO_T_SET_OPEN_SCOPED = 44, /* primary: SET_OPEN limited to paths */
	PROTO_T_SET_RENAMES = 45,     /* primary: renames to mirror, no reply */
	/*
	 * primary: SET_OPEN_SCOPED without a listing in reply: the primary
	 * knows from its index what the standby holds at each path (small
	 * regular files it acknowledged), so the operations follow at once.
	 */
	PROTO_T_SET_OPEN_BLIND = 46,
	/* Block patches (delta.h): types 50-59. */
	PROTO_T_OP_PATCH = 50,      /* primary: changed blocks vs a record */
	PROTO_T_OP_PATCH_DATA = 51, /* primary: u64 offset + one block */
	PROTO_T_PATCH_STALE = 52,   /* standby: paths whose basis differed */
	/*
	 * The change journal: the primary asks what the standby applied of
	 * its runs (JOURNAL_Q, empty); the standby answers JOURNAL with the
	 * primary's index id (16 bytes, zeros: none) and the highest run
	 * sequence it applied durably (u64).  SET_END then carries the run's
	 * id + sequence, and SET_DONE echoes the sequence after its counts.
	 */
	PROTO_T_JOURNAL_Q = 70,
	PROTO_T_JOURNAL = 71,
};
#define PROTO_JOURNAL_ID_LEN 16

/* Paths in one scoped SET_OPEN: a busy minute of changes, no more. */
#define PROTO_SCOPE_MAX 65536

/* --------------------------------------------------------------- headers */

struct proto_hdr {
	uint8_t type;
	uint8_t flags;
	uint32_t len;
};

void proto_hdr_pack(uint8_t raw[PROTO_HDR_LEN], uint8_t type, uint8_t flags,
                    uint32_t len);
/* HS_EPROTO for reserved bits or unknown flags, HS_ELIMIT past max. */
int proto_hdr_unpack(const uint8_t *raw, size_t len, struct proto_hdr *h);

/* ---------------------------------------------------------------- codecs */

/* Writer: appends to a bounded buffer. */
struct proto_wr {
	struct hs_buf buf;
	int rc; /* first error; later puts do nothing */
};

void proto_wr_init(struct proto_wr *w);
void proto_wr_reset(struct proto_wr *w);
void proto_wr_free(struct proto_wr *w);
void proto_put_u8(struct proto_wr *w, uint8_t v);
void proto_put_u16(struct proto_wr *w, uint16_t v);
void proto_put_u32(struct proto_wr *w, uint32_t v);
void proto_put_u64(struct proto_wr *w, uint64_t v);
/* Overwrite the u32 written at byte `off` (a count known only later). */
void proto_wr_patch_u32(struct proto_wr *w, size_t off, uint32_t v);
void proto_put_bytes(struct proto_wr *w, const void *p, size_t n);
/* A string as u16 length + bytes (no NUL). */
void proto_put_str(struct proto_wr *w, const char *s);
void proto_put_strn(struct proto_wr *w, const char *s, size_t n);

/* Reader: consumes a borrowed payload, checking `left` before each get. */
struct proto_rd {
	const uint8_t *p;
	size_t left;
};

int proto_get_u8(struct proto_rd *r, uint8_t *v);
int proto_get_u16(struct proto_rd *r, uint16_t *v);
int proto_get_u32(struct proto_rd *r, uint32_t *v);
int proto_get_u64(struct proto_rd *r, uint64_t *v);
int proto_get_bytes(struct proto_rd *r, void *out, size_t n);
/*
 * A string of at most `max` bytes with no NUL, copied NUL-terminated into
 * `out` (which has room for max + 1 bytes).  HS_EPROTO if short or if it
 * holds a NUL; HS_ELIMIT if longer than max.
 */
int proto_get_str(struct proto_rd *r, char *out, size_t max, size_t *len);
/* HS_OK when the payload was consumed exactly, HS_EPROTO otherwise. */
int proto_rd_end(const struct proto_rd *r);

/* The handshake message. */
struct proto_hello {
	uint32_t magic;
	uint16_t version;
	char name[PROTO_NODE_MAX + 1];
	uint8_t role; /* enum hs_role */
	uint64_t epoch;
	uint8_t flags; /* PROTO_HELLO_F_*: an optional trailing u8 */
};

void proto_hello_encode(struct proto_wr *w, const struct proto_hello *h);
int proto_hello_decode(struct proto_rd *r, struct proto_hello *h);

/* Entry types on the wire. */
enum proto_etype {
	PROTO_E_FILE = 1,
	PROTO_E_DIR = 2,
	PROTO_E_SYMLINK = 3,
	PROTO_E_FIFO = 4,
	PROTO_E_CHR = 5,
	PROTO_E_BLK = 6,
};

/*
 * One filesystem entry: its place (source index and path relative to the
 * source, "" for the source itself) and its metadata.
 */
struct proto_entry {
	uint16_t src;
	uint8_t type;  /* enum proto_etype */
	uint32_t mode; /* permission bits incl. setuid/setgid/sticky */
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t rdev; /* device nodes only */
	uint64_t dev;  /* identity, for hard links (listings) */
	uint64_t ino;
	uint32_t nlink;
	uint64_t blocks; /* 512-byte blocks allocated (sparse files) */
	uint8_t xhash[PROTO_XHASH_LEN]; /* 0 = no extended attrs */
	uint8_t has_nul; /* decode: path or link held a NUL (shown as ?) */
	char path[PROTO_PATH_MAX + 1];
	char link[PROTO_PATH_MAX + 1]; /* symlink target */
	/* Extended attributes (see proto_xattr_next); borrowed. */
	const uint8_t *xattrs;
	uint32_t xattrs_len;
};

void proto_entry_encode(struct proto_wr *w, const struct proto_entry *e);
/* Checks type, mode bits, nsec range and string limits. */
int proto_entry_decode(struct proto_rd *r, struct proto_entry *e);

/*
 * Extended attributes travel as a blob of entries
 *	str name (1..255 bytes) | u32 value length (<= 64 KiB) | value
 * in strictly increasing name order.  proto_xattr_next walks it: returns 1
 * with the next pair, 0 at the end, HS_EPROTO or HS_ELIMIT if malformed.
 */
struct proto_xattr {
	char name[PROTO_NAME_MAX + 1];
	const uint8_t *value;
	uint32_t len;
};
int proto_xattr_next(struct proto_rd *r, struct proto_xattr *x);
/* Check a whole blob (order, limits); HS_OK or the first error. */
int proto_xattrs_check(const uint8_t *blob, size_t len);

/* SET_OPEN: set name and its sources. */
struct proto_set_open {
	char name[PROTO_NODE_MAX + 1];
	uint16_t n_sources;
	char *sources[PROTO_SOURCES_MAX]; /* owned */
};

void proto_set_open_encode(struct proto_wr *w, const struct proto_set_open *s);
/* On success the caller owns s->sources; free with proto_set_open_clear. */
int proto_set_open_decode(struct proto_rd *r, struct proto_set_open *s);
/* The same, leaving what follows the sources in `r`. */
int proto_set_open_decode_head(struct proto_rd *r, struct proto_set_open *s);
void proto_set_open_clear(struct proto_set_open *s);

/*
 * The scope of a SET_OPEN_SCOPED: after the SET_OPEN body, u32 count and
 * that many (u16 src, str path, u8 recursive).  Only these entries (and,
 * when recursive, what is below them) are listed and reconciled.
 */
struct proto_scope {
	uint16_t src;
	uint8_t recursive;
	char *path; /* owned */
};

void proto_scope_encode(struct proto_wr *w, const struct proto_scope *v,
                        size_t n);
/* On success the caller owns *out (free with proto_scope_free). */
int proto_scope_decode(struct proto_rd *r, struct proto_scope **out, size_t *n);
void proto_scope_free(struct proto_scope *v, size_t n);
/*
 * Append (src, a copy of path, recursive) to the array *v of *n entries
 * with room for *cap (grown by doubling).  -ENOMEM leaves it as it was.
 */
int proto_scope_push(struct proto_scope **v, size_t *n, size_t *cap,
                     uint16_t src, const char *path, int recursive);
/*
 * Sort a scope so that each directory comes right before what is below
 * it (parents before children: the order creations need), merge
 * duplicates and drop what a recursive entry covers; *n shrinks.
 */
void proto_scope_normalize(struct proto_scope *v, size_t *n);
/* Is relative path b strictly below directory a ("" holds everything)? */
int proto_path_under(const char *a, const char *b);

/* ------------------------------------------------------------ connections */

/* TLS identity and peer policy. */
struct proto_tls_opts {
	const char *cert;          /* PEM certificate */
	const char *key;           /* PEM private key */
	const char *ca;            /* CA bundle or NULL */
	const uint8_t (*pins)[32]; /* pinned SHA-256 fingerprints */
	size_t n_pins;
	const char *peer_name; /* required name in CA mode, or NULL */
};

struct proto_tls;
struct proto_conn;

/*
 * A TLS 1.3-only context holding this node's identity, for either end
 * (proto_conn_connect and proto_conn_accept both take it).  Reads the
 * certificate, the private key and the CA file once; on failure `why`
 * holds one line naming the file and what is wrong with it: missing or
 * unreadable (-errno), or not a regular file, not PEM, a key that does
 * not match the certificate, a key that group or others may access
 * (HS_ECONFIG).  A passphrase is never asked for.  On success *out is
 * owned by the caller; it is read-only and may be shared by threads.
 */
int proto_tls_new(const struct proto_tls_opts *o, struct proto_tls **out,
                  char *why, size_t whylen);
void proto_tls_free(struct proto_tls *t);
/* proto_tls_new with the [node] settings of `conf`. */
int proto_tls_from_conf(const struct hs_conf *conf, struct proto_tls **out,
                        char *why, size_t whylen);
/*
 * Run tick(arg) every few milliseconds while a connect or handshake made
 * with `t` waits for the network (a daemon keeps serving its status).
 */
void proto_tls_set_tick(struct proto_tls *t, void (*tick)(void *), void *arg);

/*
 * Connect to "host:port" and run the TLS handshake, verifying the peer.
 * Blocks up to timeout_ms for each network step.  Returns -errno when the
 * peer cannot be reached, HS_EAUTH or HS_ETLS when TLS fails (reason in
 * `why`).  On success *out is owned by the caller.
 */
int proto_conn_connect(struct proto_tls *t, const char *hostport,
                       int timeout_ms, struct proto_conn **out, char *why,
                       size_t whylen);
/* Run the server side of the handshake on accepted socket `fd` (taken). */
int proto_conn_accept(struct proto_tls *t, int fd, int timeout_ms,
                      struct proto_conn **out, char *why, size_t whylen);
void proto_conn_free(struct proto_conn *c);

/* How to send a payload. */
enum proto_send_mode {
	PROTO_RAW = 0,  /* never compress */
	PROTO_ZSTD = 1, /* compress when it makes the frame smaller */
};

/*
 * Queue one frame; frames are written once the queue passes a high-water
 * mark, or by proto_conn_flush.  Blocks while writing.  With PROTO_ZSTD,
 * *compressed (if not NULL) tells whether compression was used.
 */
int proto_conn_send(struct proto_conn *c, uint8_t type, const void *p,
                    size_t len, enum proto_send_mode mode, int *compressed);
int proto_conn_send_wr(struct proto_conn *c, uint8_t type, struct proto_wr *w,
                       enum proto_send_mode mode);
int proto_conn_flush(struct proto_conn *c);
/* Write at most `bytes_per_sec` on average (0: unlimited); flush sleeps. */
void proto_conn_set_bwlimit(struct proto_conn *c, uint64_t bytes_per_sec);

/* A received frame; data is borrowed, valid until the next recv. */
struct proto_msg {
	uint8_t type;
	const uint8_t *data;
	size_t len;
};

/*
 * The message of one received frame, without a socket (proto_conn_recv
 * reads the bytes, this turns them into a message): header `h` from
 * proto_hdr_unpack and its h->len payload bytes `in`, decompressed by
 * `dctx` into `plain` (PROTO_FRAME_MAX bytes) when PROTO_F_ZSTD is set.
 * m->data is borrowed from `in` or `plain`.  HS_EPROTO for a compressed
 * payload that does not declare its size or is not one whole zstd frame,
 * HS_ELIMIT when it declares more than PROTO_FRAME_MAX, HS_ECODEC when it
 * does not decompress to what it declares.
 */
struct ZSTD_DCtx_s;
int proto_frame_decode(const struct proto_hdr *h, const uint8_t *in,
                       struct ZSTD_DCtx_s *dctx, uint8_t *plain,
                       struct proto_msg *m);
/* A zstd decoder with the window limit frames are held to, or NULL
 * (out of memory); the caller frees it with ZSTD_freeDCtx. */
struct ZSTD_DCtx_s *proto_frame_dctx_new(void);

/*
 * Flush queued frames, then read one frame, decompressing it if needed.
 * Blocks up to the connection's timeout.  HS_ECLOSED at EOF, HS_ETIMEOUT,
 * HS_EPROTO or HS_ELIMIT for a malformed frame.
 */
int proto_conn_recv(struct proto_conn *c, struct proto_msg *m);
/* proto_conn_recv that also returns ALIVE frames (which it skips). */
int proto_conn_recv_any(struct proto_conn *c, struct proto_msg *m);
/* When the last whole frame (ALIVE included) came in, or the connection
 * was made: hs_now_mono_ns() time. */
uint64_t proto_conn_last_rx(const struct proto_conn *c);
/*
 * Send ALIVE every `interval_ms` that this end has written nothing and
 * is not inside a proto_conn call (it is working, not waiting on the
 * peer), from a thread of the connection's own that never blocks: it
 * writes only when the socket has room.  Only for a peer whose HELLO had
 * PROTO_HELLO_F_ALIVE.  Stopped by proto_conn_free.  HS_OK or -errno.
 */
int proto_conn_keepalive(struct proto_conn *c, int interval_ms);
void proto_conn_set_timeout(struct proto_conn *c, int timeout_ms);
/* How long one read may wait for a byte (SO_RCVTIMEO) alone. */
void proto_conn_set_read_timeout(struct proto_conn *c, int timeout_ms);
/* How long data we sent may stay unacknowledged, or the peer's window
 * stay closed, before the kernel aborts the connection (TCP_USER_TIMEOUT;
 * the connection starts with its first timeout). */
void proto_conn_set_stall_timeout(struct proto_conn *c, int timeout_ms);
/* Reads and writes interrupted by a signal are retried, unless *stop is
 * set then (without this call: always retried). */
void proto_conn_set_stop(struct proto_conn *c, const volatile int *stop);

/* Send an ERROR frame with `text` and flush; errors are ignored. */
void proto_conn_send_error(struct proto_conn *c, const char *text);

/* Queue and flush our HELLO. */
int proto_hello_send(struct proto_conn *c, const struct proto_hello *mine);
/*
 * Read the peer's HELLO.  Fails with HS_EVERSION when the peer speaks
 * another protocol version (both versions named in `why`, and the peer
 * told), HS_EBUSY when the peer said busy, HS_EREFUSED when it sent an
 * ERROR (its text in `why`), HS_EPROTO for anything else.
 */
int proto_hello_recv(struct proto_conn *c, struct proto_hello *peer, char *why,
                     size_t whylen);

/*
 * Ask the node at `hostport` who it is: connect (mutual TLS, within
 * timeout_ms), send `mine` with PROTO_HELLO_F_PROBE added, read its HELLO
 * into *peer and close.  HS_OK, or the connect's or hello's error with one
 * line in `why` (unreachable, not authenticated, refused).
 */
int proto_probe(struct proto_tls *t, const char *hostport,
                const struct proto_hello *mine, int timeout_ms,
                struct proto_hello *peer, char *why, size_t whylen);

/* Printable peer description ("name@1.2.3.4:5"). */
const char *proto_conn_peer(const struct proto_conn *c);
/* Bytes written to / read from the socket, TLS framing included. */
uint64_t proto_conn_bytes_out(const struct proto_conn *c);
uint64_t proto_conn_bytes_in(const struct proto_conn *c);

/*
 * Write DIR/node.key (0600) and DIR/node.crt: an ECDSA P-256 key and a
 * self-signed certificate for `name`, valid for 10 years.  Refuses to
 * overwrite (-EEXIST) unless `force`.  On success fp holds the
 * certificate's SHA-256 fingerprint.
 */
int proto_keygen(const char *dir, const char *name, int force, uint8_t fp[32],
                 char *why, size_t whylen);

/*
 * Days until the PEM certificate at `pem` expires (negative once expired);
 * HS_ETLS (as *days untouched) when it cannot be read.
 */
int proto_cert_days_left(const char *pem, int *days);

/* SHA-256 fingerprint of a PEM certificate file. */
int proto_cert_fingerprint(const char *pem, uint8_t fp[32]);

/*
 * Incremental whole-file hashes.  proto_hash_new: SHA-256 (OpenSSL EVP),
 * for content compared across nodes (verify, HASH_REQ, SIG).
 * proto_hash_new_xfer: XXH3-128 (libxxhash) in the first 16 bytes, zeros
 * after, for the end-to-end check of a transfer (OP_FILE_END of whole
 * files and deltas, and the record tokens made of it): the bytes already
 * crossed the wire under TLS's AEAD, this catches a read, decode or write
 * gone wrong at ~20x the speed of SHA-256, which on one 2-core machine
 * was a third of a new file's CPU on both ends.
 */
struct proto_hash;
int proto_hash_new(struct proto_hash **out);
int proto_hash_new_xfer(struct proto_hash **out);
void proto_hash_update(struct proto_hash *h, const void *p, size_t n);
void proto_hash_final(struct proto_hash *h, uint8_t out[PROTO_HASH_LEN]);
/*
 * A hole in a sparse transfer, up to offset `end`: it enters the file
 * hash as the 16-byte marker "\0HOLE\0\0\0" + u64 end instead of its
 * zeros, so hashing costs nothing whatever the size a peer announces.
 * Both sides of a whole-file transfer hash this way; content hashes of
 * files on disk (verify, HASH_REQ) hash plain bytes.
 */
void proto_hash_hole(struct proto_hash *h, uint64_t end);
void proto_hash_free(struct proto_hash *h);

/* ---------------------------------------------------------- express lane */

/*
 * A primary's HELLO may end with a u8 of flags (sent only when not 0, so
 * a HELLO without flags is byte for byte what it always was).  Unknown
 * bits are refused as malformed.
 */
#define PROTO_HELLO_F_EXPRESS 0x01 /* a second session for small changes */
/*
 * Sends ALIVE while it works and reads nothing, and reads it from the
 * peer: silence longer than peer_timeout then means the peer is gone
 * (frozen, hung, or its link stalled), not busy.  The standby sets it in
 * its HELLO only when the primary's HELLO had it.
 */
#define PROTO_HELLO_F_ALIVE 0x02
/*
 * Only asks who the peer is: the answer is the peer's own HELLO (role and
 * epoch), then the connection ends.  No session is claimed, so a busy
 * standby and a primary both answer it (promote's preflight, and a
 * primary that looks for another primary: fencing, split brain).
 */
#define PROTO_HELLO_F_PROBE 0x04
/* A primary that a newer epoch has fenced: it sends nothing. */
#define PROTO_HELLO_F_FENCED 0x08
/*
 * With PROBE, switchover (failover/switchover.c).  HANDOVER: a primary
 * that drained and released its identity asks its standby of the same
 * epoch to promote itself (the standby daemon starts `promote --force`).
 * SWITCHOVER: a standby asks its primary of the same epoch to run
 * `switchover` (the primary daemon starts it).  Either is acted on only
 * from the configured peer in the expected role, and answered as any
 * probe.
 */
#define PROTO_HELLO_F_HANDOVER 0x10
#define PROTO_HELLO_F_SWITCHOVER 0x20
#define PROTO_HELLO_F_KNOWN                                                    \
	(PROTO_HELLO_F_EXPRESS | PROTO_HELLO_F_ALIVE | PROTO_HELLO_F_PROBE |   \
	 PROTO_HELLO_F_FENCED | PROTO_HELLO_F_HANDOVER |                       \
	 PROTO_HELLO_F_SWITCHOVER)

/*
 * Flush what is queued, then wait up to timeout_ms until a frame can be
 * read from `c` (decrypted bytes already buffered count).  Returns 1 when
 * readable (or the peer hung up: the next recv says how), 0 on timeout,
 * or an error.  Lets a blocking caller do other work while it waits.  An
 * ALIVE is read and skipped, not reported: to tell, the frame that made
 * `c` readable is read ahead and kept for the next recv (a frame that
 * arrives in pieces is waited for up to the connection's timeout).
 */
int proto_conn_wait(struct proto_conn *c, int timeout_ms);

/* ------------------------------------------------------- block patches */

/*
 * Wire (types 50-52):
 *	OP_PATCH	entry | basis token[32] | u32 bsize, sent before
 *			the primary reads its file, so the standby copies
 *			its basis while the primary hashes
 *	OP_PATCH_DATA	u64 offset | data (one block: bsize bytes, or the
 *			tail of the file), offsets strictly increasing,
 *			then OP_FILE_END whose hash is the new token (or
 *			status 1: not a patch after all, dropped)
 *	PATCH_STALE	standby, after SET_END and before SET_DONE:
 *			u8 all | u32 n | n x (u16 src, str path): basis
 *			mismatch, the primary resends them via signatures
 * delta.h has the block tables both sides compute.
 */
#define PROTO_TOKEN_LEN 32 /* a patched file's content token */
/* Block sizes: powers of two in [16 KiB, 1 MiB] (a block fits a frame). */
#define PROTO_BLOCK_MIN (16u * 1024)
#define PROTO_BLOCK_MAX (1024u * 1024)
/* Blocks one patched file may have (the index record's limit). */
#define PROTO_BLOCKS_MAX 32768u

/* The fixed part of OP_PATCH after the entry. */
struct proto_patch_hdr {
	uint8_t basis[PROTO_TOKEN_LEN];
	uint32_t bsize;
};

void proto_patch_hdr_encode(struct proto_wr *w,
                            const struct proto_patch_hdr *h);
int proto_patch_hdr_decode(struct proto_rd *r, struct proto_patch_hdr *h);

/*
 * The standby's checks on the blocks of one patch, before any byte is
 * written: a final size within what a record can describe, offsets on
 * block boundaries, strictly increasing, inside the final size, each
 * block whole (bsize bytes, or up to the end), and every byte past the
 * basis covered.  Each failure is HS_EPROTO or HS_ELIMIT with the reason
 * in `why`.
 */
struct proto_patch_rx {
	uint64_t basis_size;
	uint64_t final_size;
	uint32_t bsize;
	uint32_t blocks;    /* received */
	uint64_t next;      /* lowest offset the next block may have */
	uint64_t need_from; /* bytes from here on must all be sent */
};

int proto_patch_rx_init(struct proto_patch_rx *rx, uint64_t basis_size,
                        uint64_t final_size, const struct proto_patch_hdr *h,
                        char *why, size_t whylen);
/* Decode one OP_PATCH_DATA frame; *data is borrowed from `p`. */
int proto_patch_rx_block(struct proto_patch_rx *rx, const uint8_t *p,
                         size_t len, uint64_t *off, const uint8_t **data,
                         size_t *n, char *why, size_t whylen);
int proto_patch_rx_end(const struct proto_patch_rx *rx, char *why,
                       size_t whylen);

/* --- what the primary decodes: the standby's replies */

/*
 * Each decoder takes one whole message body (borrowed) and checks every
 * length and count against its limit and that nothing follows: HS_OK,
 * HS_EPROTO for a malformed body, HS_ELIMIT past a limit.  Bodies of
 * many items call fn(arg, item) for each, in order (the item is borrowed
 * for the call), and stop at fn's first error, which they return.
 */

/* An error line of SET_DONE, or a refusal's reason: at most this long
 * (the standby cuts its lines there). */
#define PROTO_LINE_MAX 1024
/* Paths one PATCH_STALE names; past it, "all" stands for every patch. */
#define PROTO_STALE_MAX 1024u

/* SET_REFUSE: str set | str why. */
struct proto_set_refuse {
	char set[PROTO_NODE_MAX + 1];
	char why[PROTO_LINE_MAX + 1];
};
int proto_set_refuse_decode(const uint8_t *p, size_t len,
                            struct proto_set_refuse *out);

/* LIST: u32 n | n x entry (proto_entry_decode); fn may write to e, which
 * is scratch. */
int proto_list_decode(const uint8_t *p, size_t len,
                      int (*fn)(void *arg, struct proto_entry *e), void *arg);

/* HASH_REPLY: u32 n | n x (u16 src | str path | u8 status | hash). */
struct proto_hash_reply {
	uint16_t src;
	uint8_t status; /* 0: hashed; else no regular file there */
	uint8_t hash[PROTO_HASH_LEN];
	char path[PROTO_PATH_MAX + 1];
};
int proto_hash_reply_decode(const uint8_t *p, size_t len,
                            int (*fn)(void *arg,
                                      const struct proto_hash_reply *h),
                            void *arg);

/*
 * SIG: u16 src | str path | u8 status | hash | u64 size | u32 n | the
 * signature, n bytes (<= PROTO_SIG_MAX), to the end of the body.
 */
struct proto_sig {
	uint16_t src;
	uint8_t status; /* 0: signed; else no basis there */
	uint8_t hash[PROTO_HASH_LEN];
	uint64_t size;
	const uint8_t *sig; /* borrowed from the body */
	uint32_t len;
	char path[PROTO_PATH_MAX + 1];
};
int proto_sig_decode(const uint8_t *p, size_t len, struct proto_sig *out);

/*
 * SET_DONE: u64 applied | u64 errors | u32 n (<= PROTO_ERRORS_MAX) |
 * n x str line | [u64 sequence, not 0]: the error lines (of `errors` in
 * all) and the run's sequence echoed (0: none).
 */
struct proto_line {
	const char *p; /* borrowed from the body; no NUL in it, none after */
	size_t len;    /* <= PROTO_LINE_MAX */
};
struct proto_set_done {
	uint64_t applied;
	uint64_t errors;
	uint32_t n_lines;
	struct proto_line lines[PROTO_ERRORS_MAX];
	uint64_t seq;
};
int proto_set_done_decode(const uint8_t *p, size_t len,
                          struct proto_set_done *out);

/* JOURNAL: index id | u64 the highest sequence applied of its runs. */
struct proto_journal {
	uint8_t id[PROTO_JOURNAL_ID_LEN];
	uint64_t seq;
};
int proto_journal_decode(const uint8_t *p, size_t len,
                         struct proto_journal *out);

/*
 * PATCH_STALE: u8 all (0 or 1) | u32 n (<= PROTO_STALE_MAX) |
 * n x (u16 src | str path).  *all says the standby found more.
 */
int proto_patch_stale_decode(const uint8_t *p, size_t len, int *all,
                             int (*fn)(void *arg, uint16_t src,
                                       const char *path),
                             void *arg);

/*
 * The rename list of SET_RENAMES, after the set name (primary/watch.c
 * writes it; the primary reads its own bytes back from its journal, the
 * standby through proto_set_renames_decode): u32 n (<= PROTO_SCOPE_MAX,
 * checked against the bytes left) | n x (u16 src | str from | str to).
 * *n is set once read, so a caller knows how many there were even when a
 * later one is malformed.  Defined in request.c.
 */
int proto_renames_decode(const uint8_t *p, size_t len, uint32_t *n,
                         int (*fn)(void *arg, uint16_t src, const char *from,
                                   const char *to),
                         void *arg);
/*
 * A journal entry of the primary's index (primary/sendidx.c writes it):
 * str set | u64 monotonic ns | u64 wall s | a scope (proto_scope_decode).
 * proto_jentry_decode reads all but the scope, which it leaves in
 * scope/scope_len (borrowed) for proto_jentry_scope: a caller looking
 * for one set's entries decodes only theirs.
 */
struct proto_jentry {
	char set[PROTO_NODE_MAX + 1];
	uint64_t mono_ns;
	uint64_t wall;
	const uint8_t *scope;
	size_t scope_len;
};
int proto_jentry_decode(const void *p, size_t len, struct proto_jentry *out);
/* On success the caller owns *v (proto_scope_free); n 0: a whole set. */
int proto_jentry_scope(const struct proto_jentry *e, struct proto_scope **v,
                       size_t *n);

/* --- what the standby decodes: the primary's requests */

/*
 * Each proto_*_decode here reads one whole message body p[0..len)
 * (borrowed) into its struct, checking every count and length against
 * the bytes left and its limit before it allocates or copies.  HS_OK,
 * HS_EPROTO when the body is malformed (short, trailing bytes, a value
 * out of range), HS_ELIMIT past a limit, or -ENOMEM.  Pure functions of
 * the bytes: what the standby's configuration allows is checked by the
 * caller.
 */

/* STATE: u64 lag ms | u64 pending | u8 in-sync (0 or 1). */
struct proto_state {
	uint64_t lag_ms;
	uint64_t pending;
	uint8_t in_sync;
};

int proto_state_decode(const uint8_t *p, size_t len, struct proto_state *out);

/*
 * SET_OPEN (the set's name and sources), SET_OPEN_SCOPED and
 * SET_OPEN_BLIND (the same, then a scope: see proto_scope), told apart by
 * `type`.  On success the caller owns what *out holds: free it with
 * proto_set_open_req_clear.
 */
struct proto_set_open_req {
	struct proto_set_open so;
	struct proto_scope *scope; /* NULL for SET_OPEN: the whole set */
	size_t n_scope;
};

int proto_set_open_req_decode(uint8_t type, const uint8_t *p, size_t len,
                              struct proto_set_open_req *out);
void proto_set_open_req_clear(struct proto_set_open_req *r);

/*
 * SET_RENAMES: str set | u32 n (<= PROTO_SCOPE_MAX) | n x (u16 src,
 * str from, str to).  On success the caller owns out->v: free it with
 * proto_set_renames_clear.
 */
struct proto_rename {
	uint16_t src;
	char *from; /* owned */
	char *to;   /* owned */
};

struct proto_set_renames {
	char set[PROTO_NODE_MAX + 1];
	struct proto_rename *v;
	size_t n;
};

int proto_set_renames_decode(const uint8_t *p, size_t len,
                             struct proto_set_renames *out);
void proto_set_renames_clear(struct proto_set_renames *r);

/*
 * HASH_REQ and SIG_REQ: u32 n | n x (u16 src, str path), into an array of
 * proto_scope (recursive 0).  On success the caller owns *out (free with
 * proto_scope_free).
 */
int proto_hash_req_decode(const uint8_t *p, size_t len,
                          struct proto_scope **out, size_t *n);

/*
 * OP_DELETE, OP_DIR, OP_SYMLINK, OP_FILE, OP_DELTA, OP_SPECIAL and
 * OP_META: one entry (proto_entry_decode), nothing after it.  e->xattrs
 * is borrowed from p.
 */
int proto_op_entry_decode(const uint8_t *p, size_t len, struct proto_entry *e);

/* OP_SEEK: u64 offset of the hole's end. */
int proto_op_seek_decode(const uint8_t *p, size_t len, uint64_t *off);

/* OP_FILE_END: u8 status | hash[PROTO_HASH_LEN]. */
struct proto_op_file_end {
	uint8_t status; /* 0: complete, 1: the primary gave up on the file */
	uint8_t hash[PROTO_HASH_LEN];
};

int proto_op_file_end_decode(const uint8_t *p, size_t len,
                             struct proto_op_file_end *out);

/* OP_LINK: u16 src | str path | u16 lsrc | str lpath (the entry linked to). */
struct proto_op_link {
	uint16_t src;
	uint16_t lsrc;
	char path[PROTO_PATH_MAX + 1];
	char lpath[PROTO_PATH_MAX + 1];
};

int proto_op_link_decode(const uint8_t *p, size_t len,
                         struct proto_op_link *out);

/* OP_PATCH: one entry, then the patch header (see struct proto_patch_hdr). */
int proto_op_patch_decode(const uint8_t *p, size_t len, struct proto_entry *e,
                          struct proto_patch_hdr *h);

/*
 * SET_END: empty, or the run's journal id and sequence (not 0), which
 * SET_DONE echoes once the run is recorded.
 */
struct proto_set_end {
	uint8_t id[PROTO_JOURNAL_ID_LEN];
	uint64_t seq; /* 0: the run has no sequence */
};

int proto_set_end_decode(const uint8_t *p, size_t len,
                         struct proto_set_end *out);

/*
 * A database snapshot's MANIFEST (manifest.c): the text the primary writes
 * last in state_dir/db/NAME/ and the standby reads from the folder the
 * primary replicated, so it is peer bytes.  Lines of "key value", the
 * file lines sorted by name and the last line repeating their count:
 *
 *	hamnsync-db-manifest 1
 *	generation 12
 *	made 1765000000.250000
 *	type sqlite
 *	mark 9f8e...
 *	file 1048576 <64 hex> xcatdb.sqlite
 *	end 1
 */
#define PROTO_MANIFEST_NAME "MANIFEST" /* the file, never listed in it */
#define PROTO_MANIFEST_FILES_MAX 256
#define PROTO_MANIFEST_MARK_MAX 128
/* A full manifest: 256 file lines of at most ~340 bytes, and the head. */
#define PROTO_MANIFEST_MAX (128 * 1024)

struct proto_manifest {
	uint64_t generation; /* counts snapshots of this database, from 1 */
	double made;         /* wall clock when the dump began */
	char type[16];       /* dbr_type_name */
	char mark[PROTO_MANIFEST_MARK_MAX];
	size_t n;
	struct proto_mfile {
		char name[256]; /* a plain file name in the folder */
		uint64_t size;
		uint8_t sha256[32];
	} files[PROTO_MANIFEST_FILES_MAX];
};

/* Append the text of `m` to b (HS_ELIMIT when b's bound is too small). */
int proto_manifest_encode(const struct proto_manifest *m, struct hs_buf *b);
/*
 * Decode `len` bytes of manifest text into m; HS_EPROTO with the reason in
 * `why` ("file name \"a/b\" is not a plain name") on a bad one.
 */
int proto_manifest_decode(const char *text, size_t len,
                          struct proto_manifest *m, char *why, size_t whylen);
/*
 * A plain file name: not empty, not "." or "..", no '/', no control byte,
 * under 256 bytes.  1 when it is, else 0.
 */
int proto_manifest_name_ok(const char *name);

#endif /* PROTO_H */
