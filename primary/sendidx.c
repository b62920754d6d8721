/*
 * sendidx.c - the primary's file index and change journal, seen from a
 * reconciliation.
 *
 * Every set run gets a sequence number, journalled before it is sent and
 * carried in SET_END.  The standby records the highest sequence it made
 * durable and echoes it in SET_DONE; only then does the index take the
 * stat fingerprint of every entry the run confirmed, in the same
 * transaction as the acknowledged sequence.  So, at the next connect, a
 * standby that reports exactly our last acknowledged sequence holds what
 * our records describe, except what the unacknowledged journal entries
 * name (a run cut short applies part of itself), and a restart compares
 * stat fingerprints instead of listing both trees (send_session_diff),
 * adding the journal's paths.  A path whose copy a run left unknown has
 * a record that matches nothing.  Anything else - another index, a
 * higher or lower sequence - falls back to a whole reconciliation, which
 * is always safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "send_int.h"

/* A run with more paths than this is journalled as "whole set". */
#define JOURNAL_SCOPE_BYTES (512u * 1024)

static int
journal_max(void *arg, uint64_t seq, const void *entry, size_t len)
{
	(void)entry;
	(void)len;
	*(uint64_t *)arg = seq;
	return 0;
}

/*
 * The next sequence: above the last acknowledged and every journalled
 * one.  Read from the index each time, so two sessions of one primary
 * (or a restart) never issue a number twice.
 */
/*
 * Where a run's journal entry goes: the file index, or (the express lane,
 * which keeps no records) the journal alone.
 */
static struct idx *
journal_idx(const struct sender *s)
{
	return s->idx != NULL ? s->idx : s->o->journal;
}

static int
next_seq(struct sender *s, uint64_t *seq)
{
	struct idx *x = journal_idx(s);
	uint64_t last = 0;
	int rc;

	if ((rc = idx_journal_state(x, s->id, &s->acked)) < 0 ||
	    (rc = idx_journal_walk(x, s->acked, journal_max, &last)) < 0)
		return rc;
	*seq = (last > s->acked ? last : s->acked) + 1;
	return HS_OK;
}

/*
 * Journal entry `seq` of set `set`: its clocks and paths; no paths (a
 * whole run, or one with too many to list) stands for the whole set.
 */
static int
journal_put(struct sender *s, const struct hs_pathset *set, uint64_t seq,
            const struct proto_scope *scope, size_t n_scope)
{
	struct proto_wr w;
	int rc;

	if (scope == NULL || n_scope * 64 >= JOURNAL_SCOPE_BYTES)
		n_scope = 0;
	proto_wr_init(&w);
	proto_put_str(&w, set->name);
	proto_put_u64(&w, hs_now_mono_ns());
	proto_put_u64(&w, (uint64_t)time(NULL));
	proto_scope_encode(&w, scope, n_scope);
	rc = w.rc;
	if (rc == HS_OK)
		rc = HS_FAILPOINT("primary.journal_write");
	if (rc == HS_OK)
		rc =
		    idx_journal_add(journal_idx(s), seq, w.buf.data, w.buf.len);
	proto_wr_free(&w);
	if (rc < 0 && s->rep != NULL)
		s->rep->idx_rc = rc;
	return rc;
}

int
sidx_session_open(struct sender *s, char *why, size_t whylen)
{
	struct proto_journal j;
	struct proto_msg m;
	char text[401];
	int rc;

	if (s->idx == NULL)
		return HS_OK;
	if ((rc = idx_journal_state(s->idx, s->id, &s->acked)) < 0) {
		hs_log_warnx("send: the index cannot be read (%s): "
		             "reconciling without it",
		             hs_strerror(rc));
		s->idx = NULL;
		return HS_OK;
	}
	if ((rc = proto_conn_send(s->c, PROTO_T_JOURNAL_Q, NULL, 0, PROTO_RAW,
	                          NULL)) < 0 ||
	    (rc = proto_conn_recv(s->c, &m)) < 0)
		return rc;
	/* A standby that sent its HELLO, then said no (being promoted). */
	if (m.type == PROTO_T_ERROR) {
		snprintf(text, sizeof(text), "%.*s",
		         (int)(m.len < sizeof(text) ? m.len : sizeof(text) - 1),
		         (const char *)m.data);
		hs_escape(text, why, whylen);
		return HS_EREFUSED;
	}
	if (m.type != PROTO_T_JOURNAL ||
	    proto_journal_decode(m.data, m.len, &j) < 0)
		return HS_EPROTO;
	memcpy(s->peer_id, j.id, sizeof(s->peer_id));
	s->peer_seq = j.seq;
	return HS_OK;
}

int
send_session_resumable(const struct sender *s, char *why, size_t whylen)
{
	if (s->idx == NULL) {
		snprintf(why, whylen, "no index");
		return 0;
	}
	if (memcmp(s->peer_id, s->id, sizeof(s->id)) != 0) {
		snprintf(why, whylen,
		         "the standby holds no run of this primary's index");
		return 0;
	}
	if (s->peer_seq > s->acked) {
		snprintf(
		    why, whylen,
		    "the standby reports run %llu applied, but the last "
		    "this primary saw acknowledged is %llu (a crash between "
		    "the two, or a standby claiming what it never "
		    "received)",
		    (unsigned long long)s->peer_seq,
		    (unsigned long long)s->acked);
		return 0;
	}
	if (s->peer_seq < s->acked) {
		snprintf(why, whylen,
		         "the standby reports run %llu applied, older than the "
		         "acknowledged %llu (its index was reset?)",
		         (unsigned long long)s->peer_seq,
		         (unsigned long long)s->acked);
		return 0;
	}
	return 1;
}

/* Key prefixes of the set's sources, computed once per run. */
int
sidx_set_keys(struct sender *s)
{
	size_t i;

	free(s->skey);
	if ((s->skey = calloc(s->set->sources.n ? s->set->sources.n : 1,
	                      sizeof(*s->skey))) == NULL)
		return -ENOMEM;
	for (i = 0; i < s->set->sources.n; i++)
		idx_source_key(s->set->name, s->set->sources.v[i], s->skey[i]);
	return HS_OK;
}

/* Operations a run sent so far (the report counts them). */
static uint64_t
run_ops(const struct send_report *r)
{
	return r->files_sent + r->delta_files + r->meta_only + r->deleted +
	       r->dirs + r->symlinks + r->links + r->specials +
	       r->changed_during;
}

/*
 * Written before the first byte of the run goes out (write-ahead): from
 * then on the standby may hold what the index does not describe, a
 * directory made or a file renamed by a run that a crash cut short, and
 * only this entry names it.  An entry stays until a later run is
 * acknowledged, and the start after a crash replays the paths of every
 * entry above the acknowledged sequence (a whole set for an entry
 * without paths).  The commit is not flushed: ~5 us, not an fdatasync,
 * on each change's way.  The express lane's runs are journalled too,
 * though not numbered: the bulk lane's next run covers their paths.
 */
int
sidx_run_start(struct sender *s, const struct proto_scope *scope,
               size_t n_scope)
{
	uint64_t seq;
	int rc;

	s->run_seq = 0;
	s->wal_seq = 0;
	s->run_errors = 0;
	s->run_ops = run_ops(s->rep);
	if (journal_idx(s) == NULL || s->o->dry_run || s->o->verify)
		return HS_OK;
	if (s->idx != NULL && (rc = sidx_set_keys(s)) < 0)
		return rc;
	if ((rc = next_seq(s, &seq)) < 0) {
		(s->o->quiet ? hs_log_debug : hs_log_warnx)(
		    "send: set %s: journal: %s; this run is not "
		    "recorded in the index",
		    s->set->name, hs_strerror(rc));
		return HS_OK;
	}
	if ((rc = journal_put(s, s->set, seq, scope, n_scope)) < 0)
		(s->o->quiet ? hs_log_debug : hs_log_warnx)(
		    "send: set %s: journal entry %llu: %s; a crash "
		    "before this run is acknowledged may leave on the "
		    "standby what it cannot name",
		    s->set->name, (unsigned long long)seq, hs_strerror(rc));
	else
		s->wal_seq = seq;
	if (s->idx != NULL)
		s->run_seq = seq;
	return HS_OK;
}

/* A scope being built (proto_scope_push). */
struct scope_vec {
	struct proto_scope *v;
	size_t n;
	size_t cap;
};

/* Each end of a rename goes in the journal entry, with all below it. */
static int
rename_push(void *arg, uint16_t src, const char *from, const char *to)
{
	struct scope_vec *sv = arg;
	int rc;

	if ((rc = proto_scope_push(&sv->v, &sv->n, &sv->cap, src, from, 1)) < 0)
		return rc;
	return proto_scope_push(&sv->v, &sv->n, &sv->cap, src, to, 1);
}

int
sidx_renames(struct sender *s, const struct hs_pathset *set,
             const struct proto_wr *body)
{
	struct scope_vec sv = {NULL, 0, 0};
	uint64_t seq = 0;
	uint32_t cnt = 0;
	int rc;

	/*
	 * Renames go out before the run that follows them, and the standby
	 * applies them at once: journalled first, as that run is, each
	 * target with all below it (a renamed directory).
	 */
	if (s->idx == NULL)
		return HS_OK;
	rc = proto_renames_decode(body->buf.data, body->buf.len, &cnt,
	                          rename_push, &sv);
	/* The standby changes now: the run after them must be numbered. */
	s->renamed |= cnt > 0;
	if (rc == HS_OK && (rc = next_seq(s, &seq)) == HS_OK)
		rc = journal_put(s, set, seq, sv.v, sv.n);
	if (rc < 0)
		(s->o->quiet ? hs_log_debug : hs_log_warnx)(
		    "send: set %s: journal of %u renames: %s; a crash "
		    "before their run is acknowledged may leave on the "
		    "standby what it cannot name",
		    set->name, (unsigned)cnt, hs_strerror(rc));
	proto_scope_free(sv.v, sv.n);
	return HS_OK;
}

/*
 * A regular file whose ctime or inode is not what the index recorded
 * when the standby acknowledged it was written since, whatever its size
 * and mtime say: a rewrite of the same size with its mtime put back
 * (touch -d, rsync -t, a restore) looks unchanged in the standby's
 * listing, and only our record, not the standby's copy (whose ctime is
 * its own), holds the ctime to compare with.
 */
static void
mark_if_rewritten(struct scan_entry *p, const struct idx_file *f)
{
	if (p->type == PROTO_E_FILE && f->type == PROTO_E_FILE &&
	    (f->ctime_sec != p->ctime_sec || f->ctime_nsec != p->ctime_nsec ||
	     f->ino != p->ino))
		p->flags |= P_CTIME;
}

struct rewritten {
	struct sender *s;
	uint16_t src;
};

static int
rewritten_one(void *arg, const uint8_t dig[IDX_DIGEST_LEN], const char *path,
              const struct idx_file *f)
{
	struct rewritten *w = arg;
	struct scan_entry *p;

	(void)dig;
	if (f->type == PROTO_E_FILE &&
	    (p = scan_list_find(&w->s->mine, w->src, path)) != NULL)
		mark_if_rewritten(p, f);
	return 0;
}

/*
 * Below this many entries (a scoped run's few paths), look each record
 * up (a read transaction and a digest each); above, walk the source's
 * records once, as a whole run does (every record read, each a hash
 * lookup in the listing).
 */
#define REWRITTEN_GETS_MAX 256

void
sidx_mark_rewritten(struct sender *s)
{
	struct idx_file f;
	size_t i;
	int rc = HS_OK;

	if (s->idx == NULL || (rc = sidx_set_keys(s)) < 0)
		goto out;
	if (s->mine.n <= REWRITTEN_GETS_MAX) {
		for (i = 0; i < s->mine.n && rc >= 0; i++) {
			struct scan_entry *p = &s->mine.v[i];

			if (p->type != PROTO_E_FILE)
				continue;
			rc = idx_file_get(s->idx, s->skey[p->src], p->path, &f);
			if (rc == HS_OK)
				mark_if_rewritten(p, &f);
			else if (rc == HS_ENOTFOUND)
				rc = HS_OK;
		}
		goto out;
	}
	for (i = 0; i < s->set->sources.n && rc == HS_OK; i++) {
		struct rewritten w = {s, (uint16_t)i};

		if (!s->missing[i])
			rc = idx_files_walk(s->idx, s->skey[i], rewritten_one,
			                    &w);
	}
out:
	/* Without the records, size and mtime decide, as rsync's do. */
	if (rc < 0)
		hs_log_warnx("send: set %s: index: %s; a rewrite that kept "
		             "its size and mtime may go unnoticed this run",
		             s->set->name, hs_strerror(rc));
}

void
sidx_run_void(struct sender *s)
{
	int rc;

	if (s->wal_seq != 0 &&
	    (rc = idx_journal_del(journal_idx(s), s->wal_seq)) < 0)
		(s->o->quiet ? hs_log_debug : hs_log_warnx)(
		    "send: set %s: journal entry %llu: %s", s->set->name,
		    (unsigned long long)s->wal_seq, hs_strerror(rc));
	s->wal_seq = 0;
	s->run_seq = 0;
}

void
sidx_set_end_body(struct sender *s, struct proto_wr *w)
{
	/*
	 * A run that changed nothing on the standby is not numbered: both
	 * sides keep their last run, and neither index is written (two
	 * fdatasyncs less for a re-sync with nothing to do).  Its journal
	 * entry goes: nothing of it can be on the standby.  Unless renames
	 * went out before it: the standby applied them, and only this run's
	 * acknowledgement records the paths they made (their journal entry
	 * goes with it), so the run that follows them is numbered even when
	 * its listing found both sides alike.
	 */
	if (run_ops(s->rep) == s->run_ops && !s->renamed)
		sidx_run_void(s);
	s->renamed = 0;
	if (s->run_seq == 0)
		return;
	proto_put_bytes(w, s->id, sizeof(s->id));
	proto_put_u64(w, s->run_seq);
}

void
sidx_fingerprint(const struct scan_entry *e, struct idx_file *f)
{
	memset(f, 0, sizeof(*f));
	f->type = e->type;
	f->mode = e->mode;
	f->uid = e->uid;
	f->gid = e->gid;
	f->size = e->type == PROTO_E_FILE ? e->size : 0;
	f->ino = e->ino;
	f->mtime_sec = e->mtime_sec;
	f->mtime_nsec = e->mtime_nsec;
	f->ctime_sec = e->ctime_sec;
	f->ctime_nsec = e->ctime_nsec;
}

/* Did this run have to change entry p on the standby? */
static int
had_op(const struct scan_entry *p)
{
	return (p->flags & (P_SEND_FILE | P_SEND_META | P_DELTA | P_CREATED |
	                    SCAN_F_DIRTY)) ||
	       p->leader != 0;
}

int
sidx_same_rec(const struct idx_file *a, const struct idx_file *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* Is path at or below one of the sorted directories? */
static int
under_any(char **dirs, size_t n, const char *path)
{
	char buf[PROTO_PATH_MAX + 1];
	size_t len;

	if (n == 0)
		return 0;
	snprintf(buf, sizeof(buf), "%s", path);
	for (len = strlen(buf);;) {
		const char *key = buf;

		if (bsearch(&key, dirs, n, sizeof(*dirs), hs_strp_cmp) != NULL)
			return 1;
		if (len == 0)
			return 0;
		while (len > 0 && buf[len - 1] != '/')
			len--;
		buf[len > 0 ? len - 1 : 0] = '\0';
		len = len > 0 ? len - 1 : 0;
	}
}

struct prune {
	struct sender *s;
	uint16_t src;
	int whole;   /* a whole run: keep exactly what was listed */
	char **dirs; /* scoped: subtrees the run listed or deleted */
	size_t n_dirs;
};

static int
prune_keep(void *arg, const uint8_t dig[IDX_DIGEST_LEN], const char *path,
           const struct idx_file *f)
{
	struct prune *pr = arg;
	struct scan_entry *hit;

	(void)dig;
	if (!pr->whole) {
		const struct scan_entry *t;

		if (!under_any(pr->dirs, pr->n_dirs, path))
			return 1;
		t = scan_list_find(&pr->s->theirs, pr->src, path);
		return t != NULL && (t->flags & P_HELD);
	}
	hit = scan_list_find(&pr->s->mine, pr->src, path);
	if (hit == NULL) {
		/* Gone here; kept only while its deletion is held back. */
		const struct scan_entry *t =
		    scan_list_find(&pr->s->theirs, pr->src, path);

		return t != NULL && (t->flags & P_HELD);
	}
	/* Unchanged and recorded alike: no need to write it again. */
	if (!had_op(hit)) {
		struct idx_file now;

		sidx_fingerprint(hit, &now);
		if (sidx_same_rec(&now, f))
			hit->flags |= P_RECORDED;
	}
	return 1;
}

/* Subtrees whose records a scoped run replaces: recursive scope entries
 * and directories it deleted. */
static void
prune_dirs(struct sender *s, uint16_t src, const struct proto_scope *scope,
           size_t n_scope, struct prune *pr)
{
	size_t i, n = 0;

	for (i = 0; i < n_scope; i++)
		n += scope[i].src == src && scope[i].recursive;
	for (i = 0; i < s->theirs.n; i++)
		n += s->theirs.v[i].src == src &&
		     (s->theirs.v[i].flags & (SCAN_F_GONE | P_HELD)) ==
		         SCAN_F_GONE &&
		     s->theirs.v[i].type == PROTO_E_DIR;
	pr->n_dirs = 0;
	if (n == 0 || (pr->dirs = calloc(n, sizeof(*pr->dirs))) == NULL)
		return;
	for (i = 0; i < n_scope; i++)
		if (scope[i].src == src && scope[i].recursive)
			pr->dirs[pr->n_dirs++] = scope[i].path;
	for (i = 0; i < s->theirs.n; i++)
		if (s->theirs.v[i].src == src &&
		    (s->theirs.v[i].flags & (SCAN_F_GONE | P_HELD)) ==
		        SCAN_F_GONE &&
		    s->theirs.v[i].type == PROTO_E_DIR)
			pr->dirs[pr->n_dirs++] = s->theirs.v[i].path;
	qsort(pr->dirs, pr->n_dirs, sizeof(*pr->dirs), hs_strp_cmp);
}

/*
 * A path whose copy on the standby is not known (content that did not
 * go out, anything a run with errors touched) gets a record that matches
 * no entry (all zero: type 0), so the next start looks at it again
 * whether it is here or gone.  No record at all would say the standby
 * holds nothing there: deleted here while the daemon is down, its copy
 * there would stay for good.
 */
static void
record_unknown(struct sender *s, struct idx_batch *b, uint16_t src,
               const char *path)
{
	struct idx_file f;

	memset(&f, 0, sizeof(f));
	idx_file_put(b, s->skey[src], path, &f);
}

/*
 * What the acknowledged run confirmed: every listed entry whose outcome
 * is known gets its fingerprint; content that did not go out (changed
 * while read, vanished) and, after errors, everything the run touched
 * get an unknown record, so the next start looks at them again.
 * Records of what is gone are removed.
 */
static void
record_run(struct sender *s, struct idx_batch *b,
           const struct proto_scope *scope, size_t n_scope)
{
	struct idx_file f;
	size_t i;

	for (i = 0; i < s->set->sources.n; i++) {
		struct prune pr = {s, (uint16_t)i, scope == NULL, NULL, 0};

		if (s->missing[i])
			continue;
		if (scope != NULL)
			prune_dirs(s, (uint16_t)i, scope, n_scope, &pr);
		if (pr.whole || pr.n_dirs > 0)
			idx_files_prune(b, s->skey[i], prune_keep, &pr);
		free(pr.dirs);
	}
	for (i = 0; scope != NULL && i < n_scope; i++)
		if (scope[i].src < s->set->sources.n &&
		    !s->missing[scope[i].src])
			idx_file_del(b, s->skey[scope[i].src], scope[i].path);
	for (i = 0; i < s->theirs.n; i++) {
		const struct scan_entry *t = &s->theirs.v[i];

		if (!(t->flags & SCAN_F_GONE) || s->missing[t->src])
			continue;
		/*
		 * A held deletion keeps a record (the scope's paths lost
		 * theirs above): the next start sees the path gone here and
		 * puts it to the guard again.
		 */
		if ((t->flags & P_HELD) || s->run_errors > 0)
			record_unknown(s, b, t->src, t->path);
		else
			idx_file_del(b, s->skey[t->src], t->path);
	}
	for (i = 0; i < s->mine.n; i++) {
		const struct scan_entry *p = &s->mine.v[i];
		int content = p->flags & (P_SEND_FILE | P_DELTA);

		if (p->flags & P_RECORDED)
			continue;
		if ((content && !(p->flags & P_REWRITTEN) &&
		     !(p->flags & P_SEND_META)) ||
		    (s->run_errors > 0 && had_op(p))) {
			/* A new file that did not go out is not there. */
			if (s->run_errors == 0 && (p->flags & P_CREATED))
				idx_file_del(b, s->skey[p->src], p->path);
			else
				record_unknown(s, b, p->src, p->path);
			continue;
		}
		sidx_fingerprint(p, &f);
		idx_file_put(b, s->skey[p->src], p->path, &f);
	}
}

struct covered {
	const char *set;
	uint64_t upto;
	const uint64_t *keep;
	size_t n_keep;
	uint64_t *v;
	size_t n;
};

static int
covered_add(void *arg, uint64_t seq, const void *entry, size_t len)
{
	struct covered *c = arg;
	struct proto_jentry e;
	uint64_t *nv;
	size_t i;

	for (i = 0; i < c->n_keep; i++)
		if (c->keep[i] == seq)
			return 0;
	if (seq > c->upto || proto_jentry_decode(entry, len, &e) < 0 ||
	    strcmp(e.set, c->set) != 0)
		return 0;
	if ((nv = reallocarray(c->v, c->n + 1, sizeof(*nv))) == NULL)
		return -ENOMEM;
	c->v = nv;
	c->v[c->n++] = seq;
	return 0;
}

/*
 * The journal entries an acknowledged run `seq` of this set covers: its
 * own, and every older one of the same set (replayed into it, its
 * renames, the express lane's runs of paths it took, durable on the
 * standby before this run listed it: express_settle).  Another set's
 * entries stay until a run of that set is acknowledged, and so do the
 * express runs the lane closed on (o->journal_keep).
 */
static int
covered_entries(struct sender *s, uint64_t seq, struct covered *c)
{
	memset(c, 0, sizeof(*c));
	c->set = s->set->name;
	c->upto = seq;
	c->keep = s->o->journal_keep;
	c->n_keep = s->o->n_journal_keep;
	return idx_journal_walk(s->idx, 0, covered_add, c);
}

int
sidx_run_acked(struct sender *s, uint64_t seq, const struct proto_scope *scope,
               size_t n_scope)
{
	struct idx_batch *b;
	struct covered cov;
	size_t i;
	int rc;

	if (s->run_seq == 0)
		return HS_OK;
	if (seq != s->run_seq) {
		if (seq == 0) {
			hs_log_warnx(
			    "send: set %s: the standby did not record "
			    "run %llu; the index keeps its older records",
			    s->set->name, (unsigned long long)s->run_seq);
			return HS_OK;
		}
		send_note(s,
		          "set %s: the standby acknowledged run %llu, but run "
		          "%llu was sent: not trusting it",
		          s->set->name, (unsigned long long)seq,
		          (unsigned long long)s->run_seq);
		return HS_EPROTO;
	}
	if ((rc = covered_entries(s, seq, &cov)) < 0 ||
	    (rc = idx_batch_begin(s->idx, &b)) < 0) {
		free(cov.v);
		return rc;
	}
	record_run(s, b, scope, n_scope);
	for (i = 0; i < cov.n; i++)
		idx_batch_journal_del(b, cov.v[i]);
	free(cov.v);
	if ((rc = idx_batch_ack(b, seq)) < 0) {
		s->rep->idx_rc = rc;
		/* The daemon says it once for as long as the index fails. */
		(s->o->quiet ? hs_log_debug : hs_log_warnx)(
		    "send: set %s: index: %s; the next start reconciles whole",
		    s->set->name, hs_strerror(rc));
		return HS_OK;
	}
	s->acked = seq;
	return HS_OK;
}
