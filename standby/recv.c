/*
 * recv.c - the standby's side of a session: it answers SET_OPEN with a
 * listing of its copy, hashes what the primary asks about, and hands each
 * operation to the confined applier.  The standby writes to the socket only
 * between phases (listing, hashes, SET_DONE), never while the primary is
 * streaming operations, so neither side can block the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "idx.h"
#include "ctl.h"
#include "stdby_int.h"

/* Hash reply frames are cut at this size, well below PROTO_FRAME_MAX. */
#define LIST_FRAME_BYTES (1024u * 1024)
/* A listing leaves in frames of this much (encoded): small enough to
 * overlap the walk, big enough for zstd. */
#define LIST_STREAM_BYTES (64u * 1024)
/* The smallest encoded entry: fixed fields plus two empty strings. */
#define ENTRY_MIN_LEN 37

struct hash_req {
	uint16_t src;
	char *path;
};

struct session {
	const struct hs_conf *conf;
	int rootfd;
	struct proto_conn *c;
	const struct hs_pathset *set; /* the open set, or NULL */
	int scoped;                   /* opened for a few paths only */
	int told; /* the primary got an ERROR saying why: no generic one */
	struct apply *a;
	struct hash_req *reqs;
	size_t n_reqs;
	struct proto_wr w;
	int report_fd;
	struct recv_report rep;
	uint64_t reported_ns;
	struct idx *idx; /* block records (delta.h), opened here */
	int idx_tried;
	/*
	 * A database's set as this standby writes it: beneath dbfd (our
	 * state_dir/db), its one source seen as "/NAME".
	 */
	struct hs_pathset dbview;
	char *dbsrc;
	int dbfd; /* -1 until a database's set is opened */
};

/* Tell the daemon what we heard, at most every RECV_REPORT_MS. */
static void
report(struct session *s, int force)
{
	uint64_t now = hs_now_mono_ns();

	s->rep.heard_ns = now;
	if (s->report_fd < 0 ||
	    (!force && now - s->reported_ns < RECV_REPORT_MS * HS_NS_PER_MS))
		return;
	s->reported_ns = now;
	if (send(s->report_fd, &s->rep, sizeof(s->rep), MSG_DONTWAIT) < 0)
		hs_log_debug("recv: report: %s", strerror(errno));
}

static int
on_state(struct session *s, const struct proto_msg *m)
{
	struct proto_state st;

	if (proto_state_decode(m->data, m->len, &st) < 0)
		return HS_EPROTO;
	s->rep.lag_ms = st.lag_ms;
	s->rep.pending = st.pending;
	s->rep.in_sync = st.in_sync;
	/* Caught up: the primary's retries applied what failed here. */
	if (st.in_sync) {
		s->rep.n_failed = 0;
		s->rep.failed_more = 0;
	}
	report(s, 1);
	return HS_OK;
}

static void
reqs_clear(struct session *s)
{
	size_t i;

	for (i = 0; i < s->n_reqs; i++)
		free(s->reqs[i].path);
	free(s->reqs);
	s->reqs = NULL;
	s->n_reqs = 0;
}

static void note_refused(struct session *s, const char *name,
                         const char *reason);

static int
reply_refuse(struct session *s, const char *name, const char *reason)
{
	hs_log_warnx("recv: %s: set %s refused: %s", proto_conn_peer(s->c),
	             name, reason);
	note_refused(s, name, reason);
	proto_wr_reset(&s->w);
	proto_put_str(&s->w, name);
	proto_put_str(&s->w, reason);
	return proto_conn_send_wr(s->c, PROTO_T_SET_REFUSE, &s->w, PROTO_RAW);
}

/* A listing on its way out: entries are encoded and sent as met. */
struct lister {
	struct session *s;
	struct proto_entry *e;
	size_t count; /* in the frame being filled */
	size_t start; /* where its entries begin */
	uint64_t total;
	int send_rc; /* the connection failed (not the walk) */
};

static int
lister_send(struct lister *l)
{
	struct session *s = l->s;
	int rc;

	proto_wr_patch_u32(&s->w, 0, (uint32_t)l->count);
	rc = proto_conn_send_wr(s->c, PROTO_T_LIST, &s->w, PROTO_ZSTD);
	if (rc == HS_OK)
		rc = proto_conn_flush(s->c);
	if (rc < 0)
		l->send_rc = rc;
	proto_wr_reset(&s->w);
	proto_put_u32(&s->w, 0); /* count, patched when sent */
	l->start = s->w.buf.len;
	l->count = 0;
	return rc;
}

static int
lister_entry(void *arg, unsigned worker, const struct scan_entry *se)
{
	struct lister *l = arg;

	(void)worker;
	if (++l->total > SCAN_ENTRIES_MAX)
		return HS_ELIMIT;
	scan_to_proto(se, l->e);
	proto_entry_encode(&l->s->w, l->e);
	l->count++;
	return l->s->w.buf.len - l->start >= LIST_STREAM_BYTES ? lister_send(l)
	                                                       : HS_OK;
}

/*
 * The walk failed after some frames may have left: the primary drops the
 * partial listing when it reads this (it never plans without LIST_END).
 */
static void
listing_failed(struct session *s, const char *what, int rc)
{
	char text[512];

	snprintf(text, sizeof(text), "standby: set %s: cannot list %s: %s",
	         s->set->name, what[0] ? what : "its source", hs_strerror(rc));
	hs_log_warnx("recv: %s", text);
	proto_conn_send_error(s->c, text);
	s->told = 1;
}

/*
 * Send a listing of our copy of the open set: all of it, or only the
 * scope the primary named.  Each frame leaves as soon as it is full, so
 * compressing, encrypting and sending overlap the walk, and the primary
 * (walking its own tree meanwhile) has most of it when it is done.
 */
static int
reply_listing(struct session *s, const struct proto_scope *scope,
              size_t n_scope)
{
	struct lister l = {s, NULL, 0, 0, 0, HS_OK};
	struct scan_visit v = {NULL, lister_entry, &l};
	struct xcache *xc = NULL;
	size_t i;
	int rc = HS_OK;

	if ((l.e = malloc(sizeof(*l.e))) == NULL)
		return -ENOMEM;
	if (scope == NULL)
		xc = xcache_open(s->conf->state_dir, s->set->name);
	proto_wr_reset(&s->w);
	proto_put_u32(&s->w, 0);
	l.start = s->w.buf.len;
	for (i = 0; scope == NULL && i < s->set->sources.n && rc == HS_OK;
	     i++) {
		rc = apply_list(s->a, (uint16_t)i, "", 1, &v, xc);
		if (rc < 0 && l.send_rc == HS_OK)
			listing_failed(s, s->set->sources.v[i], rc);
	}
	for (i = 0; scope != NULL && i < n_scope && rc == HS_OK; i++)
		if ((rc = apply_list(s->a, scope[i].src, scope[i].path,
		                     scope[i].recursive, &v, NULL)) < 0 &&
		    l.send_rc == HS_OK)
			listing_failed(s, scope[i].path, rc);
	xcache_close(xc, rc == HS_OK);
	if (rc == HS_OK && l.count > 0)
		rc = lister_send(&l);
	if (rc == HS_OK)
		rc = proto_conn_send(s->c, PROTO_T_LIST_END, NULL, 0, PROTO_RAW,
		                     NULL);
	if (rc == HS_OK)
		rc = proto_conn_flush(s->c);
	free(l.e);
	return rc;
}

/*
 * Our own handle on the index, opened once per session (the journal and
 * the block records): the daemon's was opened before the fork, and an
 * LMDB environment must not cross one.  NULL when it cannot be used.
 */
static int
session_idx(struct session *s)
{
	int rc;

	if (s->idx_tried)
		return s->idx != NULL ? HS_OK : HS_EINDEX;
	s->idx_tried = 1;
	/* The daemon checked it at its start (idx_open_checked). */
	if ((rc = idx_open_checked(s->conf->state_dir, &s->idx)) < 0) {
		hs_log_warnx("recv: index in %s unusable (%s): runs are not "
		             "recorded and every patch goes the long way",
		             s->conf->state_dir, hs_strerror(rc));
		s->idx = NULL;
	}
	return rc;
}

/* Our state_dir/db, made if missing; opened once per session. */
static int
session_dbfd(struct session *s)
{
	char dir[PROTO_PATH_MAX + 8];

	if (s->dbfd >= 0)
		return s->dbfd;
	if (snprintf(dir, sizeof(dir), "%s/db", s->conf->state_dir) >=
	    (int)sizeof(dir))
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	s->dbfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return s->dbfd >= 0 ? s->dbfd : -errno;
}

/*
 * Where set `set` (configured here) is written, and as what: a [path]
 * set beneath target_root, as configured; a database's set into our own
 * state_dir/db/NAME (the primary's state_dir may differ from ours, so
 * only the name and the count of sources must agree), confined beneath
 * state_dir/db like every other write.  Returns the root fd and the set
 * to apply, or an error with the reason in `why`.
 */
static int
set_target(struct session *s, const struct hs_pathset *set,
           const struct hs_pathset **view, char *why, size_t whylen)
{
	int fd;

	*view = set;
	if (set->db == NULL)
		return s->rootfd;
	if ((fd = session_dbfd(s)) < 0) {
		snprintf(why, whylen, "cannot open %s/db: %s",
		         s->conf->state_dir, hs_strerror(fd));
		return fd;
	}
	free(s->dbsrc);
	if (asprintf(&s->dbsrc, "/%s", set->db->name) < 0) {
		s->dbsrc = NULL;
		return -ENOMEM;
	}
	memset(&s->dbview, 0, sizeof(s->dbview));
	s->dbview.name = set->name;
	s->dbview.sources.v = &s->dbsrc;
	s->dbview.sources.n = 1;
	s->dbview.line = set->line;
	s->dbview.db = set->db;
	*view = &s->dbview;
	return fd;
}

/* Do the primary's sources of `set` match ours?  0 with why if not. */
static int
sources_match(const struct hs_pathset *set, const struct proto_set_open *so,
              char *why, size_t whylen)
{
	size_t i;

	/* A database's folder lies in each node's own state_dir. */
	for (i = 0; set->db == NULL && i < so->n_sources; i++) {
		if (i >= set->sources.n ||
		    strcmp(so->sources[i], set->sources.v[i]) != 0) {
			snprintf(why, whylen,
			         "source %s is not "
			         "configured for this set on this standby",
			         so->sources[i]);
			return 0;
		}
	}
	if (so->n_sources != set->sources.n) {
		snprintf(why, whylen, "the standby's set has other sources");
		return 0;
	}
	return 1;
}

static int
on_set_open(struct session *s, const struct proto_msg *m)
{
	struct proto_set_open_req req;
	struct proto_set_open *so = &req.so;
	const struct proto_scope *scope;
	size_t n_scope;
	const struct hs_pathset *set;
	char why[PROTO_PATH_MAX + 200];
	int rc, rootfd;

	if (s->set != NULL)
		return HS_EPROTO;
	rc = proto_set_open_req_decode(m->type, m->data, m->len, &req);
	if (rc < 0)
		return rc;
	scope = req.scope;
	n_scope = req.n_scope;
	set = hs_conf_find_set(s->conf, so->name);
	if (set == NULL) {
		rc = reply_refuse(s, so->name,
		                  "set is not configured on this "
		                  "standby");
		goto out;
	}
	if (!sources_match(set, so, why, sizeof(why))) {
		rc = reply_refuse(s, so->name, why);
		goto out;
	}
	if ((rootfd = set_target(s, set, &set, why, sizeof(why))) < 0 ||
	    (rc = apply_open(rootfd, set, &s->a, why, sizeof(why))) < 0) {
		rc = reply_refuse(s, so->name, why);
		goto out;
	}
	s->set = set;
	s->scoped = scope != NULL;
	if (scope == NULL)
		hs_log_info("recv: %s: set %s opened", proto_conn_peer(s->c),
		            set->name);
	/* Blind: the primary knows what we hold; its operations follow. */
	if (m->type != PROTO_T_SET_OPEN_BLIND)
		rc = reply_listing(s, scope, n_scope);
	/* Block records (delta.h): our handle, opened at JOURNAL_Q. */
	session_idx(s);
	apply_set_records(s->a, s->idx, s->conf->state_dir);
out:
	proto_set_open_req_clear(&req);
	return rc;
}

/*
 * Renames first, so the scoped reconciliation that follows finds the
 * copies in their new place.  Only a configured set, confined like every
 * other write; no reply.
 */
static int
on_renames(struct session *s, const struct proto_msg *m)
{
	struct proto_set_renames rn;
	char why[PROTO_PATH_MAX + 200];
	const struct hs_pathset *set;
	struct apply *a = NULL;
	size_t i;
	int rc = HS_OK, rootfd;

	if (s->set != NULL ||
	    proto_set_renames_decode(m->data, m->len, &rn) < 0)
		return HS_EPROTO;
	if ((set = hs_conf_find_set(s->conf, rn.set)) == NULL) {
		hs_log_warnx("recv: renames for set %s, which is not "
		             "configured here: ignored",
		             rn.set);
		goto out;
	}
	/* The SET_OPEN that follows reports a failure. */
	if ((rootfd = set_target(s, set, &set, why, sizeof(why))) < 0 ||
	    apply_open(rootfd, set, &a, why, sizeof(why)) < 0)
		goto out;
	/* Records move with their files (flushed by the next run's ack). */
	session_idx(s);
	apply_set_records(a, s->idx, s->conf->state_dir);
	for (i = 0; i < rn.n && rc == HS_OK; i++) {
		if (rn.v[i].src >= set->sources.n)
			rc = HS_EPROTO;
		else
			rc = apply_rename(a, rn.v[i].src, rn.v[i].from,
			                  rn.v[i].to);
	}
	apply_free(a);
out:
	proto_set_renames_clear(&rn);
	return rc;
}

static int
on_hash_req(struct session *s, const struct proto_msg *m)
{
	struct proto_scope *v;
	struct hash_req *nr;
	size_t n, i, total;
	int rc;

	if (s->set == NULL)
		return HS_EPROTO;
	if ((rc = proto_hash_req_decode(m->data, m->len, &v, &n)) < 0)
		return rc;
	if (hs_size_add(s->n_reqs, n, &total) < 0 || total > SCAN_ENTRIES_MAX) {
		proto_scope_free(v, n);
		return HS_ELIMIT;
	}
	nr = reallocarray(s->reqs, total ? total : 1, sizeof(*nr));
	if (nr == NULL) {
		proto_scope_free(v, n);
		return -ENOMEM;
	}
	s->reqs = nr;
	/* The paths change hands: only the array is freed. */
	for (i = 0; i < n; i++) {
		s->reqs[s->n_reqs].src = v[i].src;
		s->reqs[s->n_reqs].path = v[i].path;
		s->n_reqs++;
	}
	free(v);
	return HS_OK;
}

static int
on_hash_req_end(struct session *s)
{
	uint8_t h[PROTO_HASH_LEN];
	uint32_t count = 0;
	size_t i;
	int rc = HS_OK;

	if (s->set == NULL)
		return HS_EPROTO;
	proto_wr_reset(&s->w);
	proto_put_u32(&s->w, 0);
	for (i = 0; i < s->n_reqs && rc == HS_OK; i++) {
		int hrc =
		    apply_hash_file(s->a, s->reqs[i].src, s->reqs[i].path, h);

		proto_put_u16(&s->w, s->reqs[i].src);
		proto_put_str(&s->w, s->reqs[i].path);
		proto_put_u8(&s->w, hrc == HS_OK ? 0 : 1);
		if (hrc != HS_OK)
			memset(h, 0, sizeof(h));
		proto_put_bytes(&s->w, h, sizeof(h));
		count++;
		if (s->w.buf.len >= LIST_FRAME_BYTES || i + 1 == s->n_reqs) {
			proto_wr_patch_u32(&s->w, 0, (uint32_t)count);
			rc = proto_conn_send_wr(s->c, PROTO_T_HASH_REPLY, &s->w,
			                        PROTO_RAW);
			proto_wr_reset(&s->w);
			proto_put_u32(&s->w, 0);
			count = 0;
		}
	}
	reqs_clear(s);
	if (rc == HS_OK)
		rc = proto_conn_send(s->c, PROTO_T_HASH_END, NULL, 0, PROTO_RAW,
		                     NULL);
	if (rc == HS_OK)
		rc = proto_conn_flush(s->c);
	return rc;
}

/*
 * Reply to the queued requests with one SIG frame each: status, hash,
 * size and the librsync signature of our copy, read in one pass.
 */
static int
on_sig_req_end(struct session *s)
{
	uint8_t h[PROTO_HASH_LEN];
	struct hs_buf sig;
	uint64_t size;
	size_t i;
	int rc = HS_OK;

	if (s->set == NULL)
		return HS_EPROTO;
	hs_buf_init(&sig, PROTO_SIG_MAX);
	for (i = 0; i < s->n_reqs && rc == HS_OK; i++) {
		int src = apply_sig_file(s->a, s->reqs[i].src, s->reqs[i].path,
		                         &sig, h, &size);

		if (src != HS_OK) {
			sig.len = 0;
			size = 0;
			memset(h, 0, sizeof(h));
		}
		proto_wr_reset(&s->w);
		proto_put_u16(&s->w, s->reqs[i].src);
		proto_put_str(&s->w, s->reqs[i].path);
		proto_put_u8(&s->w, src == HS_OK ? 0 : 1);
		proto_put_bytes(&s->w, h, sizeof(h));
		proto_put_u64(&s->w, size);
		proto_put_u32(&s->w, (uint32_t)sig.len);
		proto_put_bytes(&s->w, sig.data, sig.len);
		rc = proto_conn_send_wr(s->c, PROTO_T_SIG, &s->w, PROTO_RAW);
	}
	hs_buf_free(&sig);
	reqs_clear(s);
	if (rc == HS_OK)
		rc = proto_conn_send(s->c, PROTO_T_SIG_END, NULL, 0, PROTO_RAW,
		                     NULL);
	if (rc == HS_OK)
		rc = proto_conn_flush(s->c);
	return rc;
}

/* JOURNAL_Q: which of this primary's runs we applied, as far as we know. */
static int
on_journal_q(struct session *s, const struct proto_msg *m)
{
	uint8_t id[IDX_ID_LEN];
	uint64_t seq = 0;
	int rc;

	if (m->len != 0)
		return HS_EPROTO;
	memset(id, 0, sizeof(id));
	if (session_idx(s) == HS_OK && idx_applied_get(s->idx, id, &seq) < 0) {
		hs_log_warnx("recv: the index does not say what was applied; "
		             "the primary will reconcile whole");
		memset(id, 0, sizeof(id));
		seq = 0;
	}
	proto_wr_reset(&s->w);
	proto_put_bytes(&s->w, id, sizeof(id));
	proto_put_u64(&s->w, seq);
	if ((rc = proto_conn_send_wr(s->c, PROTO_T_JOURNAL, &s->w, PROTO_RAW)) <
	    0)
		return rc;
	return proto_conn_flush(s->c);
}

/*
 * Copy `src` into the report's field `dst` of `cap` bytes; when it does
 * not fit, what is kept ends with "..." so that status never shows a cut
 * path or reason as if it were whole.
 */
static void
copy_cut(char *dst, size_t cap, const char *src)
{
	if ((size_t)snprintf(dst, cap, "%s", src) >= cap && cap > 3)
		memcpy(dst + cap - 4, "...", 4);
}

/*
 * The report's slot of set `name`: its own or a free one.  NULL when all
 * are taken by other sets: the report then says that more failed than it
 * names, rather than let one set's record replace another's.
 */
static struct recv_failed *
failed_slot(struct session *s, const char *name)
{
	struct recv_failed *f = NULL;
	size_t i;

	for (i = 0; i < s->rep.n_failed && f == NULL; i++)
		if (strcmp(s->rep.failed[i].set, name) == 0)
			f = &s->rep.failed[i];
	if (f == NULL && s->rep.n_failed < RECV_FAILED_SETS)
		f = &s->rep.failed[s->rep.n_failed++];
	if (f == NULL) {
		s->rep.failed_more = 1;
		return NULL;
	}
	snprintf(f->set, sizeof(f->set), "%s", name);
	return f;
}

/*
 * The open set's run left errors: its paths are missing or old here, and
 * status says so until the primary is caught up again (on_state).  The
 * slot of the set is replaced: a run of it reports what it holds now.
 */
static void
note_failed(struct session *s)
{
	struct recv_failed *f;
	const char *path, *why;

	if (apply_error_count(s->a) == 0 ||
	    (f = failed_slot(s, s->set->name)) == NULL)
		return;
	path = apply_error_first(s->a, &why);
	f->errors = apply_error_count(s->a);
	copy_cut(f->first, sizeof(f->first), path);
	copy_cut(f->why, sizeof(f->why), why);
}

/* A set refused (errors 0): nothing of it is applied here. */
static void
note_refused(struct session *s, const char *name, const char *reason)
{
	struct recv_failed *f = failed_slot(s, name);

	if (f != NULL) {
		f->errors = 0;
		f->first[0] = '\0';
		copy_cut(f->why, sizeof(f->why), reason);
	}
	report(s, 1);
}

static int
on_set_end(struct session *s, const struct proto_msg *m)
{
	struct proto_set_end end;
	uint64_t seq;
	size_t i, n;
	int rc;

	if (s->set == NULL || proto_set_end_decode(m->data, m->len, &end) < 0)
		return HS_EPROTO;
	seq = end.seq;
	if ((rc = apply_flush(s->a)) < 0)
		return rc;
	/* Patches to send again, before the acknowledgement (delta.h). */
	if (apply_stale_encode(s->a, &s->w) &&
	    (rc = proto_conn_send_wr(s->c, PROTO_T_PATCH_STALE, &s->w,
	                             PROTO_ZSTD)) < 0)
		return rc;
	/*
	 * Durable first (files, renames, directories), then the index says
	 * so, then the primary hears it: an acknowledged run is never lost.
	 * When the index cannot say so, no sequence is echoed and the
	 * primary will not trust its records of this run.
	 */
	s->rep.idx_rc = HS_OK;
	if (seq != 0 && (session_idx(s) < 0 ||
	                 (rc = HS_FAILPOINT("standby.index_commit")) < 0 ||
	                 (rc = idx_applied_put(s->idx, end.id, seq)) < 0)) {
		s->rep.idx_rc = s->idx == NULL ? HS_EINDEX : rc;
		hs_log_warnx("recv: set %s: run %llu applied but not recorded "
		             "in the index",
		             s->set->name, (unsigned long long)seq);
		seq = 0;
	}
	if (seq == 0)
		apply_records_sync(s->a);
	proto_wr_reset(&s->w);
	proto_put_u64(&s->w, apply_applied(s->a));
	proto_put_u64(&s->w, apply_error_count(s->a));
	n = apply_error_lines(s->a);
	proto_put_u32(&s->w, (uint32_t)n);
	for (i = 0; i < n; i++) {
		const char *line = apply_error_line(s->a, i);

		proto_put_strn(&s->w, line, strnlen(line, 1024));
	}
	if (seq != 0)
		proto_put_u64(&s->w, seq);
	s->rep.applied_total += apply_applied(s->a);
	s->rep.errors_total += apply_error_count(s->a);
	/* The daemon looks at the snapshot folder again (dbr_touched). */
	if (s->set->db != NULL && apply_applied(s->a) > 0)
		s->rep.db_runs++;
	/* The daemon knows of failed paths before the primary does. */
	note_failed(s);
	snprintf(s->rep.whole_set, sizeof(s->rep.whole_set), "%s",
	         !s->scoped && apply_error_count(s->a) == 0 ? s->set->name
	                                                    : "");
	if (apply_error_count(s->a) > 0)
		report(s, 1);
	s->rep.bytes_in = proto_conn_bytes_in(s->c);
	s->rep.bytes_out = proto_conn_bytes_out(s->c);
	(s->scoped && apply_error_count(s->a) == 0
	     ? hs_log_debug
	     : hs_log_info)("recv: %s: set %s done: %llu applied, %llu errors",
	                    proto_conn_peer(s->c), s->set->name,
	                    (unsigned long long)apply_applied(s->a),
	                    (unsigned long long)apply_error_count(s->a));
	if ((rc = HS_FAILPOINT("standby.before_ack")) == HS_OK)
		rc = proto_conn_send_wr(s->c, PROTO_T_SET_DONE, &s->w,
		                        PROTO_ZSTD);
	if (rc == HS_OK)
		rc = proto_conn_flush(s->c);
	/* After the acknowledgement: releasing replaced files takes time. */
	apply_free(s->a);
	s->a = NULL;
	s->set = NULL;
	s->rep.applied_wall = st_wall_now();
	report(s, 1);
	return rc;
}

static int
dispatch(struct session *s, const struct proto_msg *m)
{
	int rc;

	switch (m->type) {
	case PROTO_T_SET_OPEN:
	case PROTO_T_SET_OPEN_SCOPED:
	case PROTO_T_SET_OPEN_BLIND:
		return on_set_open(s, m);
	case PROTO_T_STATE:
		return on_state(s, m);
	case PROTO_T_SET_RENAMES:
		return on_renames(s, m);
	case PROTO_T_PING:
		if (m->len != 8)
			return HS_EPROTO;
		rc = proto_conn_send(s->c, PROTO_T_PONG, m->data, m->len,
		                     PROTO_RAW, NULL);
		return rc == HS_OK ? proto_conn_flush(s->c) : rc;
	case PROTO_T_HASH_REQ:
	case PROTO_T_SIG_REQ:
		return on_hash_req(s, m);
	case PROTO_T_HASH_REQ_END:
		return on_hash_req_end(s);
	case PROTO_T_SIG_REQ_END:
		return on_sig_req_end(s);
	case PROTO_T_OP_DELETE:
	case PROTO_T_OP_DIR:
	case PROTO_T_OP_SYMLINK:
	case PROTO_T_OP_FILE:
	case PROTO_T_OP_DATA:
	case PROTO_T_OP_FILE_END:
	case PROTO_T_OP_META:
	case PROTO_T_OP_SPECIAL:
	case PROTO_T_OP_SEEK:
	case PROTO_T_OP_DELTA:
	case PROTO_T_OP_LINK:
	case PROTO_T_OP_PATCH:
	case PROTO_T_OP_PATCH_DATA:
		if (s->a == NULL)
			return HS_EPROTO;
		return apply_op(s->a, m);
	case PROTO_T_SET_END:
		return on_set_end(s, m);
	case PROTO_T_JOURNAL_Q:
		return on_journal_q(s, m);
	}
	return HS_EPROTO;
}

static const char *
type_name(uint8_t t)
{
	static char buf[32];

	switch (t) {
	case PROTO_T_SET_OPEN:
		return "SET_OPEN";
	case PROTO_T_HASH_REQ:
		return "HASH_REQ";
	case PROTO_T_OP_FILE:
		return "OP_FILE";
	case PROTO_T_OP_DATA:
		return "OP_DATA";
	case PROTO_T_OP_FILE_END:
		return "OP_FILE_END";
	case PROTO_T_SET_END:
		return "SET_END";
	}
	snprintf(buf, sizeof(buf), "type %u", t);
	return buf;
}

int
recv_session(const struct hs_conf *conf, int rootfd, struct proto_conn *c,
             volatile int *stop, int report_fd, const struct proto_hello *peer)
{
	struct session s;
	struct proto_msg m;
	char text[256];
	int rc;

	memset(&s, 0, sizeof(s));
	s.conf = conf;
	s.rootfd = rootfd;
	s.dbfd = -1;
	s.c = c;
	s.report_fd = report_fd;
	s.rep.lag_ms = UINT64_MAX;
	s.rep.applied_wall = -1;
	s.rep.epoch = peer->epoch;
	snprintf(s.rep.primary, sizeof(s.rep.primary), "%s", peer->name);
	report(&s, 1);
	proto_wr_init(&s.w);
	proto_conn_set_stop(c, stop);
	for (;;) {
		/* ALIVE: the primary works; heard, nothing to do. */
		while ((rc = proto_conn_recv_any(c, &m)) == HS_OK &&
		       m.type == PROTO_T_ALIVE && !*stop)
			report(&s, 0);
		if (*stop) {
			rc = -EINTR;
			break;
		}
		if (rc == HS_EPROTO || rc == HS_ELIMIT || rc == HS_ECODEC) {
			snprintf(text, sizeof(text),
			         "standby: malformed frame: %s",
			         hs_strerror(rc));
			hs_log_errx("recv: %s: %s", proto_conn_peer(c), text);
			proto_conn_send_error(c, text);
			break;
		}
		if (rc == HS_ETIMEOUT) {
			hs_log_warnx(
			    "recv: %s: primary %s silent for %.1f s "
			    "(peer_timeout %llu s): gone; session ended",
			    proto_conn_peer(c), peer->name,
			    (double)(hs_now_mono_ns() - proto_conn_last_rx(c)) /
			        1e9,
			    (unsigned long long)conf->peer_timeout);
			break;
		}
		if (rc < 0) {
			hs_log_warnx("recv: %s: session ended: %s",
			             proto_conn_peer(c), hs_strerror(rc));
			break;
		}
		report(&s, 0);
		if (m.type == PROTO_T_BYE) {
			rc = HS_OK;
			break;
		}
		if (m.type == PROTO_T_ERROR) {
			hs_log_warnx("recv: %s: primary reported: %.*s",
			             proto_conn_peer(c),
			             (int)(m.len > 300 ? 300 : m.len),
			             (const char *)m.data);
			rc = HS_EREFUSED;
			break;
		}
		if ((rc = dispatch(&s, &m)) < 0 && s.told)
			break;
		if (rc < 0) {
			snprintf(text, sizeof(text),
			         "standby: malformed or "
			         "unexpected message (%s): %s",
			         type_name(m.type), hs_strerror(rc));
			hs_log_errx("recv: %s: %s", proto_conn_peer(c), text);
			proto_conn_send_error(c, text);
			break;
		}
	}
	if (rc == -EINTR)
		hs_log_info("recv: %s: session ended: stopping",
		            proto_conn_peer(c));
	/* Files completed before the end are kept; a partial one is not. */
	apply_free(s.a);
	idx_close(s.idx);
	if (s.dbfd >= 0)
		close(s.dbfd);
	free(s.dbsrc);
	reqs_clear(&s);
	proto_wr_free(&s.w);
	return rc;
}
