/*
 * hs.h - what every hamnsync module shares: error codes, logging, checked
 * size arithmetic, bounded buffers, number parsing and the configuration.
 */
#ifndef HS_H
#define HS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HS_VERSION "0.1.0"

/* Nanoseconds in a millisecond: timeouts in ms against CLOCK_MONOTONIC ns. */
#define HS_NS_PER_MS 1000000ull

/* ---------------------------------------------------------------- errors */

#define HS_OK 0
#define HS_WANT_READ 1   /* not a failure: wait for POLLIN, call again */
#define HS_WANT_WRITE 2  /* not a failure: wait for POLLOUT, call again */
#define HS_EBASE (-4096) /* failures: -errno above this, ours below */
#define HS_EPROTO (HS_EBASE - 1)    /* the peer sent a malformed message */
#define HS_ELIMIT (HS_EBASE - 2)    /* a size went past a hard limit */
#define HS_ECODEC (HS_EBASE - 3)    /* compression or decompression failed */
#define HS_ETLS (HS_EBASE - 4)      /* TLS failure (details logged) */
#define HS_ENOTFOUND (HS_EBASE - 5) /* no such record */
#define HS_ECONFIG (HS_EBASE - 6)   /* configuration is invalid */
#define HS_EAUTH (HS_EBASE - 7)     /* the peer is not authenticated */
#define HS_EVERSION (HS_EBASE - 8)  /* incompatible protocol version */
#define HS_EBUSY (HS_EBASE - 9)     /* the standby serves another session */
#define HS_ECONFINE (HS_EBASE - 10) /* a path escapes its confinement */
#define HS_EHASH (HS_EBASE - 11)    /* content hash mismatch */
#define HS_ECLOSED (HS_EBASE - 12)  /* the peer closed the connection */
#define HS_EREFUSED (HS_EBASE - 13) /* the peer refused the request */
#define HS_EINDEX (HS_EBASE - 14)   /* the index is damaged or unreadable */
#define HS_ETIMEOUT (HS_EBASE - 15) /* the peer was silent for too long */
#define HS_ECHANGED (HS_EBASE - 16) /* a file changed while it was read */
#define HS_EROLE (HS_EBASE - 17)    /* the node's role changed: run the other */

/* Human text for `rc` (an HS_E* code or -errno).  Never NULL. */
const char *hs_strerror(int rc);

/* ---------------------------------------------------------------- logging */

enum hs_log_level {
	HS_LOG_ERR,
	HS_LOG_WARN,
	HS_LOG_INFO,
	HS_LOG_DEBUG,
};

/*
 * Log to stderr (`to_stderr`) or to syslog under `ident`.  Messages above
 * `level` are dropped.  HAMNSYNC_DEBUG=1 in the environment raises the
 * level to debug.
 */
void hs_log_init(const char *ident, int to_stderr, enum hs_log_level level);
/* hs_log_warn() and hs_log_err() append ": strerror(errno)". */
void hs_log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hs_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hs_log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hs_log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hs_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hs_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------ failpoints */

/*
 * Named failpoints, compiled in only by test builds (cmake
 * -DHS_FAILPOINTS=ON; scripts/build.sh does): a release build has none,
 * HS_FAILPOINT() is then the constant 0.  Armed from the environment,
 *
 *   HAMNSYNC_FAILPOINTS=NAME=[N*]ACTION[@K][,NAME=...]
 *   ACTION: crash | err(EIO) | err(ENOSPC) | ... | sleep(MS)
 *
 * parsed once at start.  A failpoint fires on its K-th hit (default 1)
 * and on the N-1 hits after it (default: every hit from the K-th on):
 * "1*crash" fires on the first hit only, "crash@3" on the third and every
 * later one, "1*crash@3" on the third only.  Hits are counted across the
 * daemon's forked processes.  When it fires it logs one line,
 * "failpoint NAME fired: ACTION", then: crash sends SIGKILL to the
 * daemon and to the process that fired (a session child of the standby),
 * err makes the call site fail with that errno, sleep waits MS
 * milliseconds and goes on.
 */
#define HS_FP_SPEC_MAX 1024 /* bytes of HAMNSYNC_FAILPOINTS */
#ifdef HS_FAILPOINTS
/*
 * Parse `spec` and arm what it names (replacing what was armed).  HS_OK,
 * or HS_ECONFIG with one line in `err` naming the failpoint or action at
 * fault; nothing is armed then.  An empty spec disarms everything.
 */
int hs_fp_arm(const char *spec, char *err, size_t errlen);
/* The process a crash kills besides the one that fires (the daemon that
 * forked it); the process that called hs_fp_arm until told otherwise. */
void hs_fp_daemon_pid(pid_t pid);
/* A hit: HS_OK, or -errno for err(E); a crash does not return. */
int hs_fp_hit(const char *name);
/* A hit at a system call's site: 0, or -1 with errno set for err(E). */
int hs_fp_hit_sys(const char *name);
#define HS_FAILPOINT(name) hs_fp_hit(name)
#define HS_FAILPOINT_SYS(name) hs_fp_hit_sys(name)
#else
#define HS_FAILPOINT(name) 0
#define HS_FAILPOINT_SYS(name) 0
#endif

/* ------------------------------------------------------------- size math */

/* *out = a + b, or HS_ELIMIT on overflow. */
static inline int
hs_size_add(size_t a, size_t b, size_t *out)
{
	return __builtin_add_overflow(a, b, out) ? HS_ELIMIT : HS_OK;
}

/* *out = a * b, or HS_ELIMIT on overflow. */
static inline int
hs_size_mul(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out) ? HS_ELIMIT : HS_OK;
}

/* ------------------------------------------------------- bounded buffers */

/* A growable byte buffer that never grows past `max`. */
struct hs_buf {
	uint8_t *data;
	size_t len; /* bytes used */
	size_t cap; /* bytes allocated */
	size_t max; /* hard limit for cap */
};

void hs_buf_init(struct hs_buf *b, size_t max);
/* Make room for `need` more bytes.  HS_ELIMIT past max, -ENOMEM. */
int hs_buf_reserve(struct hs_buf *b, size_t need);
int hs_buf_append(struct hs_buf *b, const void *p, size_t n);
void hs_buf_free(struct hs_buf *b);

/* --------------------------------------------------------------- parsing */

/* Parse a decimal integer in [min, max].  HS_ECONFIG when invalid. */
int hs_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Duration: integer with optional s, m, h (bare = seconds), in seconds. */
int hs_parse_duration(const char *s, uint64_t *seconds);
/* Size: integer with optional K, M, G (powers of 1024), in bytes. */
int hs_parse_size(const char *s, uint64_t *bytes);
/*
 * Fingerprint "sha256:<64 hex>" (colons and upper case accepted) into
 * 32 bytes.  HS_ECONFIG when malformed.
 */
int hs_parse_fingerprint(const char *s, uint8_t out[32]);
/* Format 32 bytes as "sha256:<64 lowercase hex>" into buf (>= 72 bytes). */
void hs_format_fingerprint(const uint8_t fp[32], char *buf, size_t len);

/* ----------------------------------------------------------- configuration */

#define HS_CONF_DEFAULT "/etc/hamnsync/hamnsync.conf"
#define HS_ERRMSG_MAX 512

enum hs_role {
	HS_ROLE_NONE = 0,
	HS_ROLE_PRIMARY,
	HS_ROLE_STANDBY,
};
const char *hs_role_name(enum hs_role r);

struct hs_strlist {
	char **v;
	size_t n;
};

struct hs_database;

/*
 * One [path NAME] section: a replicated set.  hs_conf_load adds one more
 * per [database NAME] after them, named "db:NAME", whose one source is
 * the snapshot folder state_dir/db/NAME (dbrepl.h).
 */
struct hs_pathset {
	char *name;
	struct hs_strlist sources;    /* absolute, no trailing '/' */
	struct hs_strlist excludes;   /* fnmatch globs */
	int line;                     /* header line, for messages */
	const struct hs_database *db; /* the database it carries, or NULL */
	/*
	 * Where this node holds each source on disk: target_root + source
	 * (the source itself when target_root is "/"), so a promoted standby
	 * reads its own copy.  A database's set keeps its state_dir folder.
	 * Names on the wire, index keys and messages stay `sources`.
	 */
	struct hs_strlist local;
};

/*
 * Does set ps leave out `rel` (a path relative to one of its sources)?  A
 * pattern with '/' is matched against the whole relative path, others
 * against the last name.  The scanner, the watcher and the config's
 * checks all ask this one function.
 */
int hs_set_excludes(const struct hs_pathset *ps, const char *rel);

enum hs_db_type {
	HS_DB_SQLITE = 1,
	HS_DB_POSTGRESQL,
	HS_DB_MYSQL,
	HS_DB_DB2,
};

enum hs_db_restore {
	HS_RESTORE_ON_PROMOTE = 1,
	HS_RESTORE_CONTINUOUS,
};

/* One [database NAME] section. */
struct hs_database {
	char *name;
	enum hs_db_type type;
	char *path;        /* sqlite */
	char *dsn;         /* postgresql, mysql */
	char *database;    /* db2 */
	char *instance;    /* db2 */
	uint64_t interval; /* seconds */
	enum hs_db_restore restore;
	uint64_t timeout;     /* seconds: each dump, probe and restore */
	char *command_prefix; /* words put before every command, or NULL */
	int line;
};

/* The [failover] section. */
struct hs_failover {
	char *hostname;
	char *service_address; /* addr/prefix */
	char *interface;
	/*
	 * This node's own address on `interface`, given up when it takes
	 * over and taken back when it steps down; NULL keeps it throughout.
	 */
	char *own_address;
	/*
	 * Commands that take over (or release) the host name and address
	 * instead of the Linux steps, on systems without them (AIX:
	 * mktcpip); empty on Linux.
	 */
	struct hs_strlist takeover_command;
	struct hs_strlist release_command;
	struct hs_strlist stop;
	struct hs_strlist regenerate;
	struct hs_strlist start;
	uint64_t step_timeout; /* seconds */
	int present;
};

/* The whole configuration; read-only once loaded. */
struct hs_conf {
	char *file;
	/* [node] */
	char *node_name;
	enum hs_role role;
	char *state_dir;
	char *listen;    /* host:port */
	char *peer;      /* host:port */
	char *peer_name; /* peer's node name (CA mode);
	                    default: host of `peer` */
	char *cert;
	char *key;
	uint8_t (*peer_fps)[32];
	size_t n_peer_fps;
	char *ca;
	char *target_root;
	unsigned max_delete_percent;
	uint64_t heartbeat;       /* seconds */
	uint64_t peer_timeout;    /* seconds */
	uint64_t bwlimit;         /* bytes per second, 0 = off */
	uint64_t rescan_interval; /* seconds */
	char *status_group;
	char *metrics_file;
	/* [path NAME] sections, then the sets of the databases */
	struct hs_pathset *sets;
	size_t n_sets;
	/* [database NAME] */
	struct hs_database *dbs;
	size_t n_dbs;
	/* [failover] */
	struct hs_failover failover;
};

/*
 * Parse and validate the file at `path`.  On success *out is a new config
 * the caller owns (free with hs_conf_free).  On failure returns HS_ECONFIG
 * (or -errno if the file cannot be read) and writes one line
 * "FILE:LINE: why" (or "FILE: why") into `err`.
 */
int hs_conf_load(const char *path, struct hs_conf **out, char *err,
                 size_t errlen);
void hs_conf_free(struct hs_conf *c);
/* The set named `name`, or NULL. */
const struct hs_pathset *hs_conf_find_set(const struct hs_conf *c,
                                          const char *name);
/*
 * Split "host:port" or "[v6]:port" into host and port.  Returns HS_ECONFIG
 * when malformed.  host receives at most hostlen-1 bytes.
 */
int hs_split_hostport(const char *s, char *host, size_t hostlen,
                      uint16_t *port);

/* --------------------------------------------------------------- misc */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t hs_now_mono_ns(void);
/*
 * The wait after `cur` in a doubling backoff: min when cur is below it
 * (0: the first failure), else twice cur, capped at max.
 */
uint64_t hs_backoff_next(uint64_t cur, uint64_t min, uint64_t max);
/* Write all of buf to fd, retrying on EINTR/short writes. 0 or -errno. */
int hs_write_all(int fd, const void *buf, size_t len);
/*
 * Replace `path` with the n buffers of iov, written to `tmp` and renamed,
 * without fsync: for files derived from others, which a crash may leave
 * old, empty or missing and whose readers check them (status.json, the
 * extended-attribute cache, the index's clean mark).  HS_OK, or -errno
 * with tmp removed.
 */
struct iovec;
int hs_replace_file(const char *path, const char *tmp, unsigned mode,
                    const struct iovec *iov, int n);
/* Strings: strdup that aborts the program on ENOMEM. */
char *hs_xstrdup(const char *s);
/* qsort/bsearch comparator for an array of char * (strcmp order). */
int hs_strp_cmp(const void *a, const void *b);
/*
 * `s` made safe for one line of a log or a terminal, the way rsync shows
 * names: each control byte (below 0x20 and 0x7f) and each byte that is
 * not part of valid UTF-8 as \#ooo (octal), and a backslash that precedes
 * '#' as \#134, so the result reads back unambiguously.  Always NUL-
 * terminated; cut at `len` (a cut never splits an escape).  Returns out.
 */
char *hs_escape(const char *s, char *out, size_t len);

/* ------------------------------------------------------------ daemons */

/* What both daemons share: the pid file lock and detaching. */

/*
 * Lock state_dir/hamnsync.pid so two daemons never share a state_dir.
 * -EBUSY (logged with the holder's pid) when another one runs.
 */
int hs_pidfile_lock(const char *state_dir, int *out);
/*
 * A daemon that stops to run its other role in this process (HS_EROLE)
 * hands its locked pid file `fd` over instead of closing it: the next
 * hs_pidfile_lock of the same state_dir returns it, still locked, so no
 * other daemon can start in between.  Takes ownership of `fd`.
 */
void hs_pidfile_handover(int fd, const char *state_dir);
/* Write our pid into the locked file. */
void hs_pidfile_write(int fd);
/* Fork twice, new session, stdio to /dev/null. */
int hs_detach(void);
/* The pid of a daemon running on state_dir, or 0. */
int hs_daemon_pid(const char *state_dir);
/*
 * A daemon starts a failover command of its own node (switchover,
 * promote --force): `/proc/self/exe -c CONF ARGS...` (args NULL-ended,
 * at most 4), detached: a new session, no signal blocked, no descriptor
 * but stdin (/dev/null), stdout and stderr (appended to `out`, made
 * 0600).  Its intermediate process is reaped here, so it is no child of
 * the daemon, whose role may change while it runs.  Its PID, or -errno.
 */
int hs_spawn_self(const char *conf_path, const char *const *args,
                  const char *out);

#endif /* HS_H */
