/*
 * conf.c - the INI configuration: read, validate, free.
 *
 * Why not inih (libinih-dev), the Debian-packaged parser STYLE.md suggests:
 * Debian builds it with INI_HANDLER_LINENO 0, so its handler never learns
 * which line a key came from and we could not report "FILE:LINE"; it has
 * no callback for a section header, so an empty [failover], or a [node]
 * that lacks a required key, could not be tied to its header line; its
 * inline comments start with ';' only, never '#'; with INI_ALLOW_MULTILINE
 * an indented line continues the previous value instead of being a line of
 * its own; it accepts "key: value" as well as "key = value"; and its line
 * buffer is INI_MAX_LINE (200) bytes.  Its knobs are process-wide globals
 * (ini_allow_multiline, ini_max_line, ...) that a library must not change
 * behind the program's back.  The syntax in SPEC.md is small, so this file
 * reads it with a bounded line reader (CONF_LINE_MAX bytes a line) and a
 * short hand-written parser, and stops at the first error.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hs.h"

/* Longest line, '\n' excluded: SPEC lines are short, a long dsn fits. */
#define CONF_LINE_MAX 8192
/* Node, set and database names: short enough for a column in `status`. */
#define CONF_NAME_MAX 64
/* Keys of one section are bits of a uint32_t. */
#define CONF_KEYS_MAX 32
/* Seconds; a duration * 1e9 still fits in a uint64_t nanosecond count. */
#define CONF_DURATION_MAX UINT32_MAX
/* Values quoted in messages are cut here, so the reason stays visible. */
#define CONF_CLIP 64

#define KEY_REPEAT 0x1 /* repeated lines accumulate in order */

#define BIT(k) (1u << (k))
/* Arguments for "'%.*s%s'": a value cut to CONF_CLIP bytes. */
#define CLIP(s)                                                                \
	(int)(strlen(s) > CONF_CLIP ? CONF_CLIP : strlen(s)), (s),             \
	    (strlen(s) > CONF_CLIP ? "..." : "")

struct conf_key {
	const char *name;
	unsigned flags;
};

struct conf_parser;

/* One kind of section: its keys and what to do at its start and end. */
struct conf_section {
	const char *name;
	int named; /* [path NAME] rather than [node] */
	const struct conf_key *keys;
	size_t n_keys;
	int (*begin)(struct conf_parser *, const char *name);
	int (*set)(struct conf_parser *, int key, const char *val);
	int (*finish)(struct conf_parser *);
};

struct conf_parser {
	struct hs_conf *c; /* being filled; owned until returned */
	FILE *fp;
	char *err;
	size_t errlen;
	int line;                        /* number of the current line */
	const struct conf_section *sect; /* NULL before the first header */
	char label[CONF_NAME_MAX + 16];  /* "[path install]" */
	int sect_line;                   /* line of the current header */
	uint32_t seen;                   /* keys of sect seen so far */
	int key_line[CONF_KEYS_MAX];     /* line where each was first seen */
	int node_line;                   /* 0 until [node] */
	int failover_line;               /* 0 until [failover] */
};

/* ------------------------------------------------------------- messages */

/* Write "FILE:LINE: why" (or "FILE: why" when line is 0) into p->err. */
static void __attribute__((format(printf, 3, 0)))
conf_verr(struct conf_parser *p, int line, const char *fmt, va_list ap)
{
	char why[HS_ERRMSG_MAX];

	if (p->err == NULL || p->errlen == 0)
		return;
	vsnprintf(why, sizeof(why), fmt, ap);
	if (line > 0)
		snprintf(p->err, p->errlen, "%s:%d: %s", p->c->file, line, why);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->c->file, why);
}

/* Explain why the file is invalid; returns HS_ECONFIG. */
static int __attribute__((format(printf, 3, 4)))
conf_error(struct conf_parser *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verr(p, line, fmt, ap);
	va_end(ap);
	return HS_ECONFIG;
}

/* Report a failure that is not the file's fault; returns rc. */
static int
conf_fail(struct conf_parser *p, int line, int rc)
{
	conf_error(p, line, "%s", hs_strerror(rc));
	return rc;
}

static int
bad_value(struct conf_parser *p, int k, const char *val, const char *why)
{
	return conf_error(p, p->line,
	                  "invalid value '%.*s%s' for '%s' in %s: %s",
	                  CLIP(val), p->sect->keys[k].name, p->label, why);
}

/* ------------------------------------------------------------- helpers */

static char *
skip_ws(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

static void
rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/*
 * Cut a comment: '#' or ';' after whitespace.  s[0] is neither whitespace
 * nor a comment character (the caller skipped those lines), so "a=b#c"
 * keeps "b#c" while "a = b  # c" gives "b".
 */
static void
strip_comment(char *s)
{
	size_t i;

	for (i = 1; s[i] != '\0'; i++) {
		if ((s[i] == '#' || s[i] == ';') &&
		    isspace((unsigned char)s[i - 1])) {
			s[i] = '\0';
			return;
		}
	}
}

/* 1..CONF_NAME_MAX of [A-Za-z0-9._-], and not "." or "..". */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONF_NAME_MAX ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	              "0123456789._-") != n)
		return 0;
	return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static void
set_str(char **dst, const char *val)
{
	free(*dst);
	*dst = hs_xstrdup(val);
}

static int
strlist_push(struct hs_strlist *l, const char *val)
{
	char **v;

	if ((v = reallocarray(l->v, l->n + 1, sizeof(*v))) == NULL)
		return -ENOMEM;
	l->v = v;
	l->v[l->n++] = hs_xstrdup(val);
	return HS_OK;
}

static void
strlist_free(struct hs_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/*
 * Check an absolute path.  With `clean`, also refuse empty, "." and ".."
 * components and strip one trailing '/' (so "/" stays "/").  Returns NULL
 * and a copy in *out, or the reason it is refused.
 */
static const char *
path_check(const char *val, int clean, char **out)
{
	const char *s, *e;
	size_t n = strlen(val);
	char *cp;

	if (val[0] != '/')
		return "must be an absolute path";
	if (n >= PATH_MAX)
		return "path too long";
	if (!clean || n == 1) {
		*out = hs_xstrdup(val);
		return NULL;
	}
	cp = hs_xstrdup(val);
	if (cp[n - 1] == '/')
		cp[--n] = '\0';
	for (s = cp + 1;; s = e + 1) {
		size_t len;

		e = strchr(s, '/');
		len = e != NULL ? (size_t)(e - s) : strlen(s);
		if (len == 0 || (len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.')) {
			free(cp);
			return "empty, '.' and '..' components are not allowed";
		}
		if (e == NULL)
			break;
	}
	*out = cp;
	return NULL;
}

/* Store an absolute path value for key k. */
static int
set_path(struct conf_parser *p, int k, const char *val, int clean, char **dst)
{
	const char *why;
	char *cp;

	if ((why = path_check(val, clean, &cp)) != NULL)
		return bad_value(p, k, val, why);
	free(*dst);
	*dst = cp;
	return HS_OK;
}

/* A duration in [min, CONF_DURATION_MAX] seconds. */
static int
set_duration(struct conf_parser *p, int k, const char *val, uint64_t min,
             uint64_t *dst)
{
	char why[64];
	uint64_t v;

	if (hs_parse_duration(val, &v) < 0)
		return bad_value(
		    p, k, val, "expected a duration such as 30, 30s, 5m or 1h");
	if (v < min) {
		snprintf(why, sizeof(why), "must be at least %llus",
		         (unsigned long long)min);
		return bad_value(p, k, val, why);
	}
	if (v > CONF_DURATION_MAX)
		return bad_value(p, k, val, "too long");
	*dst = v;
	return HS_OK;
}

/* "host:port" or "[v6]:port". */
static int
set_hostport(struct conf_parser *p, int k, const char *val, char **dst)
{
	char host[256];
	uint16_t port;

	if (hs_split_hostport(val, host, sizeof(host), &port) < 0)
		return bad_value(
		    p, k, val,
		    "expected host:port or [address]:port, port 1 to 65535");
	set_str(dst, val);
	return HS_OK;
}

/* An IPv4 or IPv6 address with a /prefix, as `ip addr add` takes it. */
static int
addr_ok(const char *val)
{
	char addr[INET6_ADDRSTRLEN];
	uint8_t bin[16];
	const char *slash = strrchr(val, '/');
	uint64_t prefix;
	size_t n;

	if (slash == NULL || (n = (size_t)(slash - val)) == 0 ||
	    n >= sizeof(addr))
		return 0;
	memcpy(addr, val, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, bin) == 1)
		return hs_parse_u64(slash + 1, 1, 32, &prefix) == HS_OK;
	if (inet_pton(AF_INET6, addr, bin) == 1)
		return hs_parse_u64(slash + 1, 1, 128, &prefix) == HS_OK;
	return 0;
}

/* ---------------------------------------------------------------- [node] */

enum node_key {
	NK_NAME,
	NK_ROLE,
	NK_STATE_DIR,
	NK_LISTEN,
	NK_PEER,
	NK_CERT,
	NK_KEY,
	NK_PEER_FP,
	NK_CA,
	NK_TARGET_ROOT,
	NK_MAX_DELETE,
	NK_HEARTBEAT,
	NK_PEER_TIMEOUT,
	NK_BWLIMIT,
	NK_RESCAN,
	NK_STATUS_GROUP,
	NK_METRICS_FILE,
	NK_PEER_NAME,
	NK__N
};
_Static_assert(NK__N <= CONF_KEYS_MAX, "too many [node] keys");

static const struct conf_key node_keys[NK__N] = {
    [NK_NAME] = {"name", 0},
    [NK_ROLE] = {"role", 0},
    [NK_STATE_DIR] = {"state_dir", 0},
    [NK_LISTEN] = {"listen", 0},
    [NK_PEER] = {"peer", 0},
    [NK_CERT] = {"cert", 0},
    [NK_KEY] = {"key", 0},
    [NK_PEER_FP] = {"peer_fingerprint", KEY_REPEAT},
    [NK_CA] = {"ca", 0},
    [NK_TARGET_ROOT] = {"target_root", 0},
    [NK_MAX_DELETE] = {"max_delete_percent", 0},
    [NK_HEARTBEAT] = {"heartbeat", 0},
    [NK_PEER_TIMEOUT] = {"peer_timeout", 0},
    [NK_BWLIMIT] = {"bwlimit", 0},
    [NK_RESCAN] = {"rescan_interval", 0},
    [NK_STATUS_GROUP] = {"status_group", 0},
    [NK_METRICS_FILE] = {"metrics_file", 0},
    [NK_PEER_NAME] = {"peer_name", 0},
};

static int
node_begin(struct conf_parser *p, const char *name)
{
	struct hs_conf *c = p->c;

	(void)name;
	if (p->node_line != 0)
		return conf_error(p, p->line,
		                  "duplicate section [node] (first at line %d)",
		                  p->node_line);
	p->node_line = p->line;
	c->max_delete_percent = 50;
	c->heartbeat = 1;
	c->peer_timeout = 10;
	c->bwlimit = 0;
	c->rescan_interval = 60;
	return HS_OK;
}

static int
node_set(struct conf_parser *p, int k, const char *val)
{
	struct hs_conf *c = p->c;
	uint8_t(*fps)[32];
	uint64_t v;

	switch (k) {
	case NK_NAME:
		if (!name_ok(val))
			return bad_value(
			    p, k, val,
			    "a node name is 1 to 64 of A-Z a-z 0-9 . _ -");
		set_str(&c->node_name, val);
		return HS_OK;
	case NK_ROLE:
		if (strcmp(val, "primary") == 0)
			c->role = HS_ROLE_PRIMARY;
		else if (strcmp(val, "standby") == 0)
			c->role = HS_ROLE_STANDBY;
		else
			return bad_value(p, k, val,
			                 "expected primary or standby");
		return HS_OK;
	case NK_STATE_DIR:
		return set_path(p, k, val, 1, &c->state_dir);
	case NK_LISTEN:
		return set_hostport(p, k, val, &c->listen);
	case NK_PEER:
		return set_hostport(p, k, val, &c->peer);
	case NK_CERT:
		return set_path(p, k, val, 0, &c->cert);
	case NK_KEY:
		return set_path(p, k, val, 0, &c->key);
	case NK_PEER_FP:
		fps =
		    reallocarray(c->peer_fps, c->n_peer_fps + 1, sizeof(*fps));
		if (fps == NULL)
			return conf_fail(p, p->line, -ENOMEM);
		c->peer_fps = fps;
		if (hs_parse_fingerprint(val, c->peer_fps[c->n_peer_fps]) < 0)
			return bad_value(p, k, val,
			                 "expected sha256: and 64 hex digits");
		c->n_peer_fps++;
		return HS_OK;
	case NK_CA:
		return set_path(p, k, val, 0, &c->ca);
	case NK_TARGET_ROOT:
		return set_path(p, k, val, 1, &c->target_root);
	case NK_MAX_DELETE:
		if (hs_parse_u64(val, 0, 100, &v) < 0)
			return bad_value(
			    p, k, val, "expected a whole number from 0 to 100");
		c->max_delete_percent = (unsigned)v;
		return HS_OK;
	case NK_HEARTBEAT:
		return set_duration(p, k, val, 1, &c->heartbeat);
	case NK_PEER_TIMEOUT:
		return set_duration(p, k, val, 1, &c->peer_timeout);
	case NK_BWLIMIT:
		if (hs_parse_size(val, &c->bwlimit) < 0)
			return bad_value(
			    p, k, val,
			    "expected bytes per second such as 0, 512K, 10M "
			    "or 1G");
		return HS_OK;
	case NK_RESCAN:
		return set_duration(p, k, val, 1, &c->rescan_interval);
	case NK_STATUS_GROUP:
		set_str(&c->status_group, val);
		return HS_OK;
	case NK_METRICS_FILE:
		return set_path(p, k, val, 0, &c->metrics_file);
	case NK_PEER_NAME:
		if (!name_ok(val))
			return bad_value(
			    p, k, val,
			    "a node name is 1 to 64 of A-Z a-z 0-9 . _ -");
		set_str(&c->peer_name, val);
		return HS_OK;
	}
	abort();
}

static int
node_finish(struct conf_parser *p)
{
	static const int required[] = {NK_ROLE, NK_LISTEN, NK_PEER, NK_CERT,
	                               NK_KEY};
	struct hs_conf *c = p->c;
	size_t i;

	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (!(p->seen & BIT(required[i])))
			return conf_error(p, p->sect_line,
			                  "missing required key '%s' in [node]",
			                  node_keys[required[i]].name);
	}
	if (!(p->seen & (BIT(NK_PEER_FP) | BIT(NK_CA))))
		return conf_error(
		    p, p->sect_line,
		    "[node] needs 'peer_fingerprint' or 'ca': peers "
		    "authenticate each other with mutual TLS");
	if (c->peer_timeout <= c->heartbeat) {
		int line = (p->seen & BIT(NK_PEER_TIMEOUT))
		               ? p->key_line[NK_PEER_TIMEOUT]
		               : p->key_line[NK_HEARTBEAT];

		return conf_error(
		    p, line,
		    "peer_timeout (%llus) must be longer than heartbeat "
		    "(%llus)",
		    (unsigned long long)c->peer_timeout,
		    (unsigned long long)c->heartbeat);
	}
	if (c->node_name == NULL) {
		char host[256];

		memset(host, 0, sizeof(host));
		if (gethostname(host, sizeof(host) - 1) < 0)
			return conf_error(
			    p, p->sect_line,
			    "no 'name' in [node] and no host name: %s",
			    strerror(errno));
		if (!name_ok(host))
			return conf_error(
			    p, p->sect_line,
			    "host name '%.*s%s' is not a valid node name; set "
			    "'name' in [node]",
			    CLIP(host));
		c->node_name = hs_xstrdup(host);
	}
	if (c->peer_name == NULL) {
		/* The peer's node name defaults to the host part of `peer`. */
		char host[256];
		uint16_t port;

		if (hs_split_hostport(c->peer, host, sizeof(host), &port) == 0)
			c->peer_name = hs_xstrdup(host);
	}
	if (c->state_dir == NULL)
		c->state_dir = hs_xstrdup("/var/lib/hamnsync");
	if (c->target_root == NULL)
		c->target_root = hs_xstrdup("/");
	return HS_OK;
}

/* ---------------------------------------------------------- [path NAME] */

enum path_key { PK_SOURCE, PK_EXCLUDE, PK__N };

static const struct conf_key path_keys[PK__N] = {
    [PK_SOURCE] = {"source", KEY_REPEAT},
    [PK_EXCLUDE] = {"exclude", KEY_REPEAT},
};

static int
path_begin(struct conf_parser *p, const char *name)
{
	struct hs_conf *c = p->c;
	struct hs_pathset *sets;
	size_t i;

	for (i = 0; i < c->n_sets; i++) {
		if (strcmp(c->sets[i].name, name) == 0)
			return conf_error(
			    p, p->line,
			    "duplicate section [path %s] (first at line %d)",
			    name, c->sets[i].line);
	}
	sets = reallocarray(c->sets, c->n_sets + 1, sizeof(*sets));
	if (sets == NULL)
		return conf_fail(p, p->line, -ENOMEM);
	c->sets = sets;
	memset(&sets[c->n_sets], 0, sizeof(sets[0]));
	sets[c->n_sets].name = hs_xstrdup(name);
	sets[c->n_sets].line = p->line;
	c->n_sets++;
	return HS_OK;
}

/* a lies below directory b ("/etc/xcat/ca" below "/etc/xcat"). */
static int
path_below(const char *a, const char *b)
{
	size_t n = strlen(b);

	return strncmp(a, b, n) == 0 && a[n] == '/';
}

/*
 * Refuse a source that another source already covers: two sets would
 * fight over the same files, and within one set they would travel twice.
 */
static int
source_check(struct conf_parser *p, const char *src)
{
	const struct hs_conf *c = p->c;
	size_t i, j;

	for (i = 0; i < c->n_sets; i++) {
		const struct hs_pathset *ps = &c->sets[i];
		int same = i + 1 == c->n_sets;

		for (j = 0; j < ps->sources.n; j++) {
			const char *o = ps->sources.v[j];

			if (strcmp(src, o) == 0 && same)
				return conf_error(p, p->line,
				                  "duplicate source '%s' in %s",
				                  src, p->label);
			if (same && (path_below(src, o) || path_below(o, src)))
				return conf_error(
				    p, p->line,
				    "source '%s' overlaps source '%s' of the "
				    "same set",
				    src, o);
			if (strcmp(src, o) == 0)
				return conf_error(
				    p, p->line,
				    "source '%s' is also a source of [path "
				    "%s]; "
				    "two sets would fight over its files",
				    src, ps->name);
			if (path_below(src, o))
				return conf_error(
				    p, p->line,
				    "source '%s' is inside source '%s' of "
				    "[path %s]; two sets would fight over its "
				    "files",
				    src, o, ps->name);
			if (path_below(o, src))
				return conf_error(
				    p, p->line,
				    "source '%s' contains source '%s' of "
				    "[path %s]; two sets would fight over its "
				    "files",
				    src, o, ps->name);
		}
	}
	return HS_OK;
}

static int
path_set(struct conf_parser *p, int k, const char *val)
{
	struct hs_pathset *ps = &p->c->sets[p->c->n_sets - 1];
	const char *why;
	char *src = NULL;
	int rc;

	switch (k) {
	case PK_SOURCE:
		if ((why = path_check(val, 1, &src)) != NULL) {
			rc = bad_value(p, k, val, why);
			goto out;
		}
		if (strcmp(src, "/") == 0) {
			rc = bad_value(p, k, val, "'/' cannot be a source");
			goto out;
		}
		if ((rc = source_check(p, src)) < 0)
			goto out;
		if ((rc = strlist_push(&ps->sources, src)) < 0)
			conf_fail(p, p->line, rc);
		goto out;
	case PK_EXCLUDE:
		if ((rc = strlist_push(&ps->excludes, val)) < 0)
			conf_fail(p, p->line, rc);
		goto out;
	}
	abort();
out:
	free(src);
	return rc;
}

static int
path_finish(struct conf_parser *p)
{
	if (p->c->sets[p->c->n_sets - 1].sources.n == 0)
		return conf_error(p, p->sect_line, "%s has no 'source'",
		                  p->label);
	return HS_OK;
}

int
hs_set_excludes(const struct hs_pathset *ps, const char *rel)
{
	const char *base = strrchr(rel, '/');
	size_t i;

	base = base != NULL ? base + 1 : rel;
	for (i = 0; i < ps->excludes.n; i++) {
		const char *pat = ps->excludes.v[i];

		if (strchr(pat, '/') != NULL) {
			if (fnmatch(pat, rel, FNM_PATHNAME) == 0)
				return 1;
		} else if (fnmatch(pat, base, 0) == 0)
			return 1;
	}
	return 0;
}

/* Does ps leave out database file `rel` and its -wal/-journal/-shm? */
static int
set_excludes_db_file(const struct hs_pathset *ps, const char *rel)
{
	static const char *const side[] = {"", "-wal", "-journal", "-shm"};
	char name[PATH_MAX + 16];
	size_t i;

	for (i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		snprintf(name, sizeof(name), "%s%s", rel, side[i]);
		if (!hs_set_excludes(ps, name))
			return 0;
	}
	return 1;
}

/*
 * A SQLite `path` is a folder of *.sqlite files unless it names a file (or,
 * not there yet, a *.sqlite name).
 */
static int
sqlite_path_is_dir(const char *path)
{
	struct stat st;
	size_t n = strlen(path);

	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode);
	return !(n > 7 && strcmp(path + n - 7, ".sqlite") == 0);
}

/*
 * The live files of a SQLite database are shipped as snapshots; a set
 * whose source holds them must leave them out, or a copy torn by a write
 * would travel too.  `rel` is the database's path relative to the source
 * ("" when they are the same).
 */
static int
db_set_clean(const struct hs_pathset *ps, const struct hs_database *db,
             const char *rel)
{
	char probe[PATH_MAX];
	const char *sl;

	if (!sqlite_path_is_dir(db->path)) {
		sl = strrchr(db->path, '/');
		return set_excludes_db_file(ps, rel[0] ? rel : sl + 1);
	}
	/* Any table's file: a name no pattern lists on its own. */
	snprintf(probe, sizeof(probe), "%s%sTABLE.sqlite", rel,
	         rel[0] ? "/" : "");
	return set_excludes_db_file(ps, probe);
}

static int
conf_check_db_sets(struct conf_parser *p)
{
	const struct hs_conf *c = p->c;
	size_t i, j, k;

	for (i = 0; i < c->n_dbs; i++) {
		const struct hs_database *db = &c->dbs[i];

		if (db->type != HS_DB_SQLITE || db->path == NULL)
			continue;
		for (j = 0; j < c->n_sets; j++) {
			const struct hs_pathset *ps = &c->sets[j];

			for (k = 0; k < ps->sources.n; k++) {
				const char *src = ps->sources.v[k];
				const char *rel;

				if (strcmp(db->path, src) == 0)
					rel = "";
				else if (path_below(db->path, src))
					rel = db->path + strlen(src) + 1;
				else
					continue;
				if (!db_set_clean(ps, db, rel))
					return conf_error(
					    p, ps->line,
					    "set %s ships the live SQLite "
					    "files "
					    "of database %s raw: add exclude = "
					    "*.sqlite*",
					    ps->name, db->name);
			}
		}
	}
	return HS_OK;
}

/* ------------------------------------------------------ [database NAME] */

enum db_key {
	DK_TYPE,
	DK_PATH,
	DK_DSN,
	DK_DATABASE,
	DK_INSTANCE,
	DK_INTERVAL,
	DK_RESTORE,
	DK_TIMEOUT,
	DK_COMMAND_PREFIX,
	DK__N
};

static const struct conf_key db_keys[DK__N] = {
    [DK_TYPE] = {"type", 0},
    [DK_PATH] = {"path", 0},
    [DK_DSN] = {"dsn", 0},
    [DK_DATABASE] = {"database", 0},
    [DK_INSTANCE] = {"instance", 0},
    [DK_INTERVAL] = {"interval", 0},
    [DK_RESTORE] = {"restore", 0},
    [DK_TIMEOUT] = {"timeout", 0},
    [DK_COMMAND_PREFIX] = {"command_prefix", 0},
};

static const char *const db_type_names[] = {
    [HS_DB_SQLITE] = "sqlite",
    [HS_DB_POSTGRESQL] = "postgresql",
    [HS_DB_MYSQL] = "mysql",
    [HS_DB_DB2] = "db2",
};

/* The keys each type needs; another type's keys are refused. */
static const uint32_t db_type_keys[] = {
    [HS_DB_SQLITE] = BIT(DK_PATH),
    [HS_DB_POSTGRESQL] = BIT(DK_DSN),
    [HS_DB_MYSQL] = BIT(DK_DSN),
    [HS_DB_DB2] = BIT(DK_DATABASE) | BIT(DK_INSTANCE),
};
#define DB_COMMON_KEYS                                                         \
	(BIT(DK_TYPE) | BIT(DK_INTERVAL) | BIT(DK_RESTORE) | BIT(DK_TIMEOUT) | \
	 BIT(DK_COMMAND_PREFIX))

static int
db_begin(struct conf_parser *p, const char *name)
{
	struct hs_conf *c = p->c;
	struct hs_database *dbs;
	size_t i;

	for (i = 0; i < c->n_dbs; i++) {
		if (strcmp(c->dbs[i].name, name) == 0)
			return conf_error(
			    p, p->line,
			    "duplicate section [database %s] (first at line "
			    "%d)",
			    name, c->dbs[i].line);
	}
	dbs = reallocarray(c->dbs, c->n_dbs + 1, sizeof(*dbs));
	if (dbs == NULL)
		return conf_fail(p, p->line, -ENOMEM);
	c->dbs = dbs;
	memset(&dbs[c->n_dbs], 0, sizeof(dbs[0]));
	dbs[c->n_dbs].name = hs_xstrdup(name);
	dbs[c->n_dbs].line = p->line;
	dbs[c->n_dbs].interval = 30;
	dbs[c->n_dbs].restore = HS_RESTORE_ON_PROMOTE;
	dbs[c->n_dbs].timeout = 300;
	c->n_dbs++;
	return HS_OK;
}

/*
 * A dsn is "key=value" words (libpq's conninfo; the MySQL driver reads the
 * same form).  A password there would sit in the config and on a command
 * line that ps shows: it belongs in the server's own files.  The value is
 * not echoed, since it holds the password.
 */
static int
set_dsn(struct conf_parser *p, int k, const char *val, char **dst)
{
	const char *w = val;

	for (;;) {
		w += strspn(w, " \t");
		if (*w == '\0')
			break;
		if (strncasecmp(w, "password", 8) == 0 &&
		    strspn(w + 8, " \t=") > 0)
			return conf_error(
			    p, p->line,
			    "'%s' in %s holds a password: put it in the "
			    "server's own file instead, ~/.pgpass for "
			    "postgresql or an option file named by "
			    "defaults_file= for mysql",
			    p->sect->keys[k].name, p->label);
		w += strcspn(w, " \t");
	}
	set_str(dst, val);
	return HS_OK;
}

static int
db_set(struct conf_parser *p, int k, const char *val)
{
	struct hs_database *db = &p->c->dbs[p->c->n_dbs - 1];
	int t;

	switch (k) {
	case DK_TYPE:
		for (t = HS_DB_SQLITE; t <= HS_DB_DB2; t++) {
			if (strcmp(val, db_type_names[t]) == 0) {
				db->type = (enum hs_db_type)t;
				return HS_OK;
			}
		}
		return bad_value(p, k, val,
		                 "expected sqlite, postgresql, mysql or db2");
	case DK_PATH:
		return set_path(p, k, val, 0, &db->path);
	case DK_DSN:
		return set_dsn(p, k, val, &db->dsn);
	case DK_DATABASE:
		set_str(&db->database, val);
		return HS_OK;
	case DK_INSTANCE:
		set_str(&db->instance, val);
		return HS_OK;
	case DK_INTERVAL:
		return set_duration(p, k, val, 0, &db->interval);
	case DK_RESTORE:
		if (strcmp(val, "on-promote") == 0)
			db->restore = HS_RESTORE_ON_PROMOTE;
		else if (strcmp(val, "continuous") == 0)
			db->restore = HS_RESTORE_CONTINUOUS;
		else
			return bad_value(p, k, val,
			                 "expected on-promote or continuous");
		return HS_OK;
	case DK_TIMEOUT:
		return set_duration(p, k, val, 1, &db->timeout);
	case DK_COMMAND_PREFIX:
		set_str(&db->command_prefix, val);
		return HS_OK;
	}
	abort();
}

static int
db_finish(struct conf_parser *p)
{
	const struct hs_database *db = &p->c->dbs[p->c->n_dbs - 1];
	const char *tname;
	uint32_t need;
	int k;

	if (!(p->seen & BIT(DK_TYPE)))
		return conf_error(p, p->sect_line,
		                  "missing required key 'type' in %s",
		                  p->label);
	tname = db_type_names[db->type];
	need = db_type_keys[db->type];
	for (k = 0; k < DK__N; k++) {
		if ((p->seen & BIT(k)) && !((need | DB_COMMON_KEYS) & BIT(k)))
			return conf_error(
			    p, p->key_line[k],
			    "key '%s' does not apply to type %s in %s",
			    db_keys[k].name, tname, p->label);
	}
	for (k = 0; k < DK__N; k++) {
		if ((need & BIT(k)) && !(p->seen & BIT(k)))
			return conf_error(
			    p, p->sect_line,
			    "missing required key '%s' for type %s in %s",
			    db_keys[k].name, tname, p->label);
	}
	return HS_OK;
}

/*
 * The set that carries database NAME's snapshot folder is named
 * CONF_DB_SET_PREFIX + NAME.  dbrepl.h's DBR_SET_PREFIX and dbr_set_name
 * make the same name (common/ cannot call dbrepl/): keep the two in step.
 * ':' is not allowed in a configured name, so the two never clash.
 */
#define CONF_DB_SET_PREFIX "db:"

/* state_dir/db/NAME, the snapshot folder of database `db`. */
static char *
db_set_source(const struct hs_conf *c, const struct hs_database *db)
{
	char *s;
	const char *sd = strcmp(c->state_dir, "/") == 0 ? "" : c->state_dir;

	if (asprintf(&s, "%s/db/%s", sd, db->name) < 0)
		return NULL;
	return s;
}

/*
 * A [path] set must not hold a snapshot folder: two sets would fight
 * over its files.
 */
static int
db_set_check(struct conf_parser *p, const char *src,
             const struct hs_database *db)
{
	const struct hs_conf *c = p->c;
	size_t i, j;

	for (i = 0; i < c->n_sets; i++) {
		const struct hs_pathset *ps = &c->sets[i];

		for (j = 0; ps->db == NULL && j < ps->sources.n; j++) {
			const char *o = ps->sources.v[j];

			if (strcmp(o, src) == 0 || path_below(o, src) ||
			    path_below(src, o))
				return conf_error(
				    p, ps->line,
				    "source '%s' of [path %s] overlaps %s, the "
				    "snapshot folder of [database %s]",
				    o, ps->name, src, db->name);
		}
	}
	return HS_OK;
}

/* One set per database, after the [path] sets (see struct hs_pathset). */
static int
db_sets_add(struct conf_parser *p)
{
	struct hs_conf *c = p->c;
	struct hs_pathset *sets, *ps;
	char *src;
	size_t i;
	int rc;

	if (c->n_dbs == 0)
		return HS_OK;
	sets = reallocarray(c->sets, c->n_sets + c->n_dbs, sizeof(*sets));
	if (sets == NULL)
		return conf_fail(p, 0, -ENOMEM);
	c->sets = sets;
	for (i = 0; i < c->n_dbs; i++) {
		const struct hs_database *db = &c->dbs[i];

		if ((src = db_set_source(c, db)) == NULL)
			return conf_fail(p, 0, -ENOMEM);
		if ((rc = db_set_check(p, src, db)) < 0) {
			free(src);
			return rc;
		}
		ps = &c->sets[c->n_sets];
		memset(ps, 0, sizeof(*ps));
		if (asprintf(&ps->name, "%s%s", CONF_DB_SET_PREFIX, db->name) <
		    0) {
			free(src);
			return conf_fail(p, 0, -ENOMEM);
		}
		ps->line = db->line;
		ps->db = db;
		c->n_sets++;
		rc = strlist_push(&ps->sources, src);
		free(src);
		if (rc < 0)
			return conf_fail(p, 0, rc);
	}
	return HS_OK;
}

/*
 * Each source's local path (struct hs_pathset): both roles keep their
 * copy of P at target_root + P, so a promoted standby watches and sends
 * what it holds rather than the old primary's paths.
 */
static int
sets_local(struct conf_parser *p)
{
	struct hs_conf *c = p->c;
	const char *root =
	    strcmp(c->target_root, "/") == 0 ? "" : c->target_root;
	char *loc;
	size_t i, j;
	int rc;

	for (i = 0; i < c->n_sets; i++) {
		struct hs_pathset *ps = &c->sets[i];

		for (j = 0; j < ps->sources.n; j++) {
			if (asprintf(&loc, "%s%s", ps->db != NULL ? "" : root,
			             ps->sources.v[j]) < 0)
				return conf_fail(p, 0, -ENOMEM);
			rc = strlist_push(&ps->local, loc);
			free(loc);
			if (rc < 0)
				return conf_fail(p, 0, rc);
		}
	}
	return HS_OK;
}

/* ------------------------------------------------------------ [failover] */

enum failover_key {
	FK_HOSTNAME,
	FK_SERVICE_ADDRESS,
	FK_INTERFACE,
	FK_OWN_ADDRESS,
	FK_TAKEOVER_COMMAND,
	FK_RELEASE_COMMAND,
	FK_STOP,
	FK_REGENERATE,
	FK_START,
	FK_STEP_TIMEOUT,
	FK__N
};

static const struct conf_key failover_keys[FK__N] = {
    [FK_HOSTNAME] = {"hostname", 0},
    [FK_SERVICE_ADDRESS] = {"service_address", 0},
    [FK_INTERFACE] = {"interface", 0},
    [FK_OWN_ADDRESS] = {"own_address", 0},
    [FK_TAKEOVER_COMMAND] = {"takeover_command", KEY_REPEAT},
    [FK_RELEASE_COMMAND] = {"release_command", KEY_REPEAT},
    [FK_STOP] = {"stop", KEY_REPEAT},
    [FK_REGENERATE] = {"regenerate", KEY_REPEAT},
    [FK_START] = {"start", KEY_REPEAT},
    [FK_STEP_TIMEOUT] = {"step_timeout", 0},
};

static int
failover_begin(struct conf_parser *p, const char *name)
{
	struct hs_failover *fo = &p->c->failover;

	(void)name;
	if (p->failover_line != 0)
		return conf_error(
		    p, p->line,
		    "duplicate section [failover] (first at line %d)",
		    p->failover_line);
	p->failover_line = p->line;
	fo->present = 1;
	fo->step_timeout = 300;
	return HS_OK;
}

static int
failover_set(struct conf_parser *p, int k, const char *val)
{
	struct hs_failover *fo = &p->c->failover;
	int rc = HS_OK;

	switch (k) {
	case FK_HOSTNAME:
		if (!name_ok(val))
			return bad_value(
			    p, k, val,
			    "a host name is 1 to 64 of A-Z a-z 0-9 . _ -");
		set_str(&fo->hostname, val);
		return HS_OK;
	case FK_SERVICE_ADDRESS:
	case FK_OWN_ADDRESS:
		if (!addr_ok(val))
			return bad_value(
			    p, k, val,
			    "expected an IPv4 or IPv6 address with a /prefix, "
			    "such as 192.0.2.10/24");
		set_str(k == FK_OWN_ADDRESS ? &fo->own_address
		                            : &fo->service_address,
		        val);
		return HS_OK;
	case FK_INTERFACE:
		if (strlen(val) >= IFNAMSIZ || strchr(val, '/') != NULL ||
		    strpbrk(val, " \t") != NULL)
			return bad_value(
			    p, k, val,
			    "expected an interface name such as eth1");
		set_str(&fo->interface, val);
		return HS_OK;
	case FK_TAKEOVER_COMMAND:
		rc = strlist_push(&fo->takeover_command, val);
		break;
	case FK_RELEASE_COMMAND:
		rc = strlist_push(&fo->release_command, val);
		break;
	case FK_STOP:
		rc = strlist_push(&fo->stop, val);
		break;
	case FK_REGENERATE:
		rc = strlist_push(&fo->regenerate, val);
		break;
	case FK_START:
		rc = strlist_push(&fo->start, val);
		break;
	case FK_STEP_TIMEOUT:
		return set_duration(p, k, val, 1, &fo->step_timeout);
	default:
		abort();
	}
	if (rc < 0)
		return conf_fail(p, p->line, rc);
	return HS_OK;
}

static int
failover_finish(struct conf_parser *p)
{
	const struct hs_failover *fo = &p->c->failover;

	/* Linux moves an address on a named interface; other systems say
	 * how in their own commands. */
	if ((fo->service_address != NULL || fo->own_address != NULL) &&
	    fo->interface == NULL && fo->takeover_command.n == 0)
		return conf_error(p, p->failover_line,
		                  "[failover]: service_address and own_address "
		                  "need interface (or takeover_command)");
	return HS_OK;
}

/* ---------------------------------------------------------------- parser */

static const struct conf_section conf_sections[] = {
    {"node", 0, node_keys, NK__N, node_begin, node_set, node_finish},
    {"path", 1, path_keys, PK__N, path_begin, path_set, path_finish},
    {"database", 1, db_keys, DK__N, db_begin, db_set, db_finish},
    {"failover", 0, failover_keys, FK__N, failover_begin, failover_set,
     failover_finish},
};

/* Close the current section, checking what only its end can tell. */
static int
conf_close_section(struct conf_parser *p)
{
	const struct conf_section *sect = p->sect;

	p->sect = NULL;
	if (sect == NULL)
		return HS_OK;
	return sect->finish(p);
}

/* s is a trimmed "[...]" line without its comment. */
static int
conf_header(struct conf_parser *p, char *s)
{
	const struct conf_section *sect = NULL;
	size_t i, n = strlen(s);
	char *word, *name;
	int rc;

	if ((rc = conf_close_section(p)) < 0)
		return rc;
	if (n < 2 || s[n - 1] != ']')
		return conf_error(
		    p, p->line,
		    "malformed section header '%.*s%s': expected [section] "
		    "or [section NAME]",
		    CLIP(s));
	s[n - 1] = '\0';
	word = skip_ws(s + 1);
	rtrim(word);
	for (name = word; *name != '\0' && !isspace((unsigned char)*name);
	     name++)
		;
	if (*name != '\0') {
		*name = '\0';
		name = skip_ws(name + 1);
	}
	for (i = 0; i < sizeof(conf_sections) / sizeof(conf_sections[0]); i++) {
		if (strcmp(word, conf_sections[i].name) == 0)
			sect = &conf_sections[i];
	}
	if (sect == NULL)
		return conf_error(p, p->line, "unknown section '[%.*s%s]'",
		                  CLIP(word));
	if (sect->named && *name == '\0')
		return conf_error(p, p->line,
		                  "section [%s] needs a name: [%s NAME]",
		                  sect->name, sect->name);
	if (!sect->named && *name != '\0')
		return conf_error(p, p->line, "section [%s] takes no name",
		                  sect->name);
	if (sect->named && !name_ok(name))
		return conf_error(
		    p, p->line,
		    "invalid name '%.*s%s' for [%s]: use 1 to 64 of A-Z a-z "
		    "0-9 . _ -",
		    CLIP(name), sect->name);
	if (sect->named)
		snprintf(p->label, sizeof(p->label), "[%s %s]", sect->name,
		         name);
	else
		snprintf(p->label, sizeof(p->label), "[%s]", sect->name);
	p->sect_line = p->line;
	p->seen = 0;
	memset(p->key_line, 0, sizeof(p->key_line));
	if ((rc = sect->begin(p, name)) < 0)
		return rc;
	p->sect = sect;
	return HS_OK;
}

static int
conf_key_value(struct conf_parser *p, const char *key, const char *val)
{
	const struct conf_section *sect = p->sect;
	size_t k;

	if (sect == NULL)
		return conf_error(
		    p, p->line, "key '%.*s%s' outside any section", CLIP(key));
	for (k = 0; k < sect->n_keys; k++) {
		if (strcmp(key, sect->keys[k].name) == 0)
			break;
	}
	if (k == sect->n_keys)
		return conf_error(p, p->line, "unknown key '%.*s%s' in %s",
		                  CLIP(key), p->label);
	if (*val == '\0')
		return conf_error(p, p->line, "missing value for '%s' in %s",
		                  key, p->label);
	if (p->seen & BIT(k)) {
		if (!(sect->keys[k].flags & KEY_REPEAT))
			return conf_error(
			    p, p->line,
			    "duplicate key '%s' in %s (first at line %d)", key,
			    p->label, p->key_line[k]);
	} else {
		p->seen |= BIT(k);
		p->key_line[k] = p->line;
	}
	return sect->set(p, (int)k, val);
}

static int
conf_parse_line(struct conf_parser *p, char *s)
{
	char *eq;

	s = skip_ws(s);
	if (*s == '\0' || *s == '#' || *s == ';')
		return HS_OK;
	strip_comment(s);
	rtrim(s);
	if (*s == '[')
		return conf_header(p, s);
	if ((eq = strchr(s, '=')) == NULL)
		return conf_error(
		    p, p->line,
		    "malformed line '%.*s%s': expected 'key = value' or "
		    "[section]",
		    CLIP(s));
	*eq = '\0';
	rtrim(s);
	if (*s == '\0')
		return conf_error(p, p->line, "missing key before '='");
	return conf_key_value(p, s, skip_ws(eq + 1));
}

/*
 * Read one line, without its '\n', into buf (cap bytes).  Returns 1 for a
 * line, 0 at the end of the file, HS_ECONFIG for a line too long or with a
 * NUL byte, -errno when reading fails.
 */
static int
conf_read_line(struct conf_parser *p, char *buf, size_t cap)
{
	size_t len = 0;
	int ch;

	p->line++;
	while ((ch = getc(p->fp)) != EOF && ch != '\n') {
		if (ch == '\0')
			return conf_error(p, p->line, "NUL byte in line");
		if (len + 1 >= cap)
			return conf_error(p, p->line,
			                  "line too long (more than %zu bytes)",
			                  cap - 1);
		buf[len++] = (char)ch;
	}
	if (ch == EOF && ferror(p->fp)) {
		int rc = errno != 0 ? -errno : -EIO;

		conf_error(p, 0, "%s", strerror(-rc));
		return rc;
	}
	if (ch == EOF && len == 0)
		return 0;
	buf[len] = '\0';
	/* A UTF-8 byte order mark some editors write. */
	if (p->line == 1 && strncmp(buf, "\xef\xbb\xbf", 3) == 0)
		memmove(buf, buf + 3, len - 2);
	return 1;
}

int
hs_conf_load(const char *path, struct hs_conf **out, char *err, size_t errlen)
{
	struct conf_parser p;
	char *buf = NULL;
	int rc;

	*out = NULL;
	memset(&p, 0, sizeof(p));
	p.err = err;
	p.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((p.c = calloc(1, sizeof(*p.c))) == NULL) {
		rc = -ENOMEM;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto out;
	}
	p.c->file = hs_xstrdup(path);
	if ((buf = malloc(CONF_LINE_MAX + 1)) == NULL) {
		rc = conf_fail(&p, 0, -ENOMEM);
		goto out;
	}
	if ((p.fp = fopen(path, "re")) == NULL) {
		rc = conf_fail(&p, 0, -errno);
		goto out;
	}
	while ((rc = conf_read_line(&p, buf, CONF_LINE_MAX + 1)) > 0) {
		if ((rc = conf_parse_line(&p, buf)) < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	if ((rc = conf_close_section(&p)) < 0)
		goto out;
	if ((rc = conf_check_db_sets(&p)) < 0)
		goto out;
	if (p.node_line == 0) {
		rc = conf_error(&p, 0, "missing [node] section");
		goto out;
	}
	if ((rc = db_sets_add(&p)) < 0)
		goto out;
	if ((rc = sets_local(&p)) < 0)
		goto out;
	*out = p.c;
	p.c = NULL;
	rc = HS_OK;
out:
	if (p.fp != NULL)
		fclose(p.fp);
	free(buf);
	hs_conf_free(p.c);
	return rc;
}

void
hs_conf_free(struct hs_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->file);
	free(c->node_name);
	free(c->state_dir);
	free(c->listen);
	free(c->peer);
	free(c->cert);
	free(c->key);
	free(c->peer_fps);
	free(c->ca);
	free(c->target_root);
	free(c->status_group);
	free(c->metrics_file);
	free(c->peer_name);
	for (i = 0; i < c->n_sets; i++) {
		free(c->sets[i].name);
		strlist_free(&c->sets[i].sources);
		strlist_free(&c->sets[i].local);
		strlist_free(&c->sets[i].excludes);
	}
	free(c->sets);
	for (i = 0; i < c->n_dbs; i++) {
		free(c->dbs[i].name);
		free(c->dbs[i].path);
		free(c->dbs[i].dsn);
		free(c->dbs[i].database);
		free(c->dbs[i].instance);
		free(c->dbs[i].command_prefix);
	}
	free(c->dbs);
	free(c->failover.hostname);
	free(c->failover.service_address);
	free(c->failover.interface);
	free(c->failover.own_address);
	strlist_free(&c->failover.takeover_command);
	strlist_free(&c->failover.release_command);
	strlist_free(&c->failover.stop);
	strlist_free(&c->failover.regenerate);
	strlist_free(&c->failover.start);
	free(c);
}

const struct hs_pathset *
hs_conf_find_set(const struct hs_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_sets; i++) {
		if (strcmp(c->sets[i].name, name) == 0)
			return &c->sets[i];
	}
	return NULL;
}
