/*
 * send.c - the primary's side of one reconciliation (`hamnsync sync`).
 *
 * Per set: open it on the standby and receive its listing; list our own
 * sources; decide what each entry needs (plan); ask the standby for hashes
 * of files whose size matches but whose mtime does not; then stream every
 * operation without waiting for replies: deletes deepest first (held back
 * when too many), creations and whole files in pre-order, deltas in
 * batches of signatures, hard links, and directory metadata last, deepest
 * first.  One SET_DONE closes the set.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta.h"
#include "send_int.h"

/* For arrays of entry pointers: source, then path. */
static int
send_entry_cmp(const void *a, const void *b)
{
	const struct scan_entry *x = *(struct scan_entry *const *)a;
	const struct scan_entry *y = *(struct scan_entry *const *)b;

	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	return strcmp(x->path, y->path);
}

static struct scan_entry *
mine_find(struct sender *s, uint16_t src, const char *path)
{
	return scan_list_find(&s->mine, src, path);
}

/* Mark the directory holding (src, path) as needing its metadata reset. */
static void
mark_parent(struct sender *s, uint16_t src, const char *path)
{
	char parent[PROTO_PATH_MAX + 1];
	const char *slash;
	struct scan_entry *p;

	if (path[0] == '\0')
		return;
	slash = strrchr(path, '/');
	snprintf(parent, sizeof(parent), "%.*s",
	         (int)(slash ? slash - path : 0), path);
	if ((p = mine_find(s, src, parent)) != NULL)
		p->flags |= SCAN_F_DIRTY;
}

void
send_reset_set(struct sender *s)
{
	size_t i;

	for (i = 0; i < PROTO_SOURCES_MAX; i++) {
		if (s->anchor[i] >= 0)
			close(s->anchor[i]);
		s->anchor[i] = -1;
		free(s->leaf[i]);
		s->leaf[i] = NULL;
		s->missing[i] = 0;
	}
	scan_list_free(&s->mine);
	scan_list_free(&s->theirs);
	s->set = NULL;
	send_blk_reset(s);
}

/*
 * Open the directory that holds source i and list the source.  The prefix
 * is resolved once here; a source that is a symlink to a directory is
 * followed (so /install -> /data/install replicates the tree), any other
 * symlink source is replicated as the link.
 */
static int
open_source(struct sender *s, size_t i)
{
	/* Our copy of the source (target_root + it), not its wire name. */
	const char *src = s->set->local.v[i];
	char resolved[PATH_MAX], *slash;
	struct stat lst, st;
	int rc;

	snprintf(resolved, sizeof(resolved), "%s", src);
	if (lstat(src, &lst) == 0 && S_ISLNK(lst.st_mode) &&
	    stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (realpath(src, resolved) == NULL)
			return -errno;
		hs_log_debug("send: source %s is a symlink to %s: replicating "
		             "its contents",
		             src, resolved);
	}
	slash = strrchr(resolved, '/');
	s->leaf[i] = hs_xstrdup(slash + 1);
	*slash = '\0';
	s->anchor[i] = open(resolved[0] ? resolved : "/",
	                    O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->anchor[i] < 0) {
		rc = -errno;
		s->missing[i] = 1;
		/* No run (the restart's stat diff): no report to count it. */
		if (s->rep != NULL)
			s->rep->changed_during++;
		hs_log_warnx("send: source %s: its directory cannot be opened "
		             "(%s); the standby's copy is left alone",
		             src, hs_strerror(rc));
	}
	return HS_OK;
}

static void
source_missing(struct sender *s, size_t i)
{
	s->missing[i] = 1;
	send_note(s,
	          "%s: source missing on the primary, "
	          "standby copy left alone",
	          send_show_at(s, (uint16_t)i, ""));
	s->rep->changed_during++;
}

/* List all of source i, or (scoped) one entry of it. */
static int
list_entry(struct sender *s, uint16_t i, const char *rel, int recursive,
           struct xcache *xc)
{
	char parent[PROTO_PATH_MAX * 2 + 2];
	const char *slash;
	size_t before = s->mine.n;
	int fd, rc;

	if (s->anchor[i] < 0)
		return HS_OK;
	if (rel[0] == '\0') {
		rc = scan_subtree(s->anchor[i], s->leaf[i], i, "", recursive,
		                  s->set, &s->mine, xc);
		if (rc == HS_OK && s->mine.n == before)
			source_missing(s, i);
		else if (rc == HS_OK && !recursive && s->scoped)
			s->mine.v[before].flags |= P_EVENT;
		return rc;
	}
	slash = strrchr(rel, '/');
	snprintf(parent, sizeof(parent), "%s%s%.*s", s->leaf[i],
	         slash ? "/" : "", (int)(slash ? slash - rel : 0), rel);
	fd = openat(s->anchor[i], parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return HS_OK; /* its directory went away: nothing to list */
	rc = scan_subtree(fd, slash ? slash + 1 : rel, i, rel, recursive,
	                  s->set, &s->mine, NULL);
	close(fd);
	/*
	 * A path the watcher saw change: even if size and mtime are the
	 * same as the standby's (a file renamed over it with its mtime put
	 * back), its content is compared.
	 */
	if (rc == HS_OK && !recursive && s->mine.n > before)
		s->mine.v[before].flags |= P_EVENT;
	return rc;
}

/* One entry the standby listed joins s->theirs. */
static int
listed_add(void *arg, struct proto_entry *e)
{
	struct sender *s = arg;
	struct scan_entry se;

	if (e->src >= s->set->sources.n || e->has_nul)
		return HS_EPROTO;
	memset(&se, 0, sizeof(se));
	se.path = e->path;
	se.link = e->type == PROTO_E_SYMLINK ? e->link : NULL;
	se.src = e->src;
	se.type = e->type;
	se.mode = e->mode;
	se.uid = e->uid;
	se.gid = e->gid;
	se.size = e->size;
	se.mtime_sec = e->mtime_sec;
	se.mtime_nsec = e->mtime_nsec;
	se.rdev = e->rdev;
	se.dev = e->dev;
	se.ino = e->ino;
	se.nlink = e->nlink;
	se.blocks = e->blocks;
	memcpy(se.xhash, e->xhash, sizeof(se.xhash));
	return scan_entry_add(&s->theirs, &se);
}

static int
recv_listing(struct sender *s, int *refused)
{
	const struct scan_entry *dup;
	struct proto_msg m;
	int rc;

	*refused = 0;
	for (;;) {
		if ((rc = send_recv(s, &m)) < 0)
			return rc;
		if (m.type == PROTO_T_LIST_END)
			break;
		if (m.type == PROTO_T_SET_REFUSE) {
			struct proto_set_refuse f;

			if (proto_set_refuse_decode(m.data, m.len, &f) < 0)
				return HS_EPROTO;
			send_note(s,
			          "standby refused set %s: "
			          "%s",
			          f.set, f.why);
			*refused = 1;
			/* Tried again whole: a full disk, a config fixed. */
			s->failed.errors++;
			s->failed.loose++;
			s->failed.refused = 1;
			snprintf(s->failed.why, sizeof(s->failed.why), "%.255s",
			         f.why);
			return HS_OK;
		}
		if (m.type == PROTO_T_ERROR) {
			send_note(s, "%.*s", (int)(m.len > 400 ? 400 : m.len),
			          (const char *)m.data);
			return HS_EREFUSED;
		}
		if (m.type != PROTO_T_LIST)
			return HS_EPROTO;
		if ((rc = proto_list_decode(m.data, m.len, listed_add, s)) < 0)
			return rc;
	}
	/* Found by hash: sorting it was a tenth of a no-change sync's CPU. */
	if ((rc = scan_list_index(&s->theirs, &dup)) == HS_EPROTO)
		send_note(s, "set %s: the standby listed %s twice",
		          s->set->name, send_show(s, dup));
	return rc;
}

static int
same_meta(const struct scan_entry *a, const struct scan_entry *b)
{
	return a->uid == b->uid && a->gid == b->gid &&
	       (a->type == PROTO_E_SYMLINK || a->mode == b->mode) &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	       memcmp(a->xhash, b->xhash, sizeof(a->xhash)) == 0;
}

static int
same_mtime(const struct scan_entry *a, const struct scan_entry *b)
{
	return a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec;
}

static int
leader_cmp(const void *a, const void *b)
{
	const struct scan_entry *x = *(struct scan_entry *const *)a;
	const struct scan_entry *y = *(struct scan_entry *const *)b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x < y ? -1 : x > y; /* pre-order: the first leads */
}

/*
 * Hard links within the set: of the regular files sharing an inode, the
 * first in pre-order travels as content; the others become links to it.
 */
static int
find_links(struct sender *s)
{
	struct scan_entry **v;
	size_t i, n = 0;

	for (i = 0; i < s->mine.n; i++)
		if (s->mine.v[i].type == PROTO_E_FILE && s->mine.v[i].nlink > 1)
			n++;
	if (n < 2)
		return HS_OK;
	if ((v = calloc(n, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (i = 0, n = 0; i < s->mine.n; i++)
		if (s->mine.v[i].type == PROTO_E_FILE && s->mine.v[i].nlink > 1)
			v[n++] = &s->mine.v[i];
	qsort(v, n, sizeof(*v), leader_cmp);
	for (i = 1; i < n; i++) {
		struct scan_entry *lead = v[i - 1];

		if (v[i]->dev != lead->dev || v[i]->ino != lead->ino)
			continue;
		while (lead->leader != 0)
			lead = &s->mine.v[lead->leader - 1];
		v[i]->leader = (uint32_t)(lead - s->mine.v) + 1;
	}
	free(v);
	return HS_OK;
}

/* What a regular file that exists on both sides needs. */
static void
plan_file(struct sender *s, struct scan_entry *p, const struct scan_entry *t)
{
	int sparse_fix = SCAN_IS_SPARSE(p) && t->blocks > p->blocks + 8;

	(void)s;
	if (p->size != t->size || sparse_fix || (p->nlink == 1 && t->nlink > 1))
		p->flags |= P_SEND_FILE; /* also breaks a stale link */
	else if (!same_mtime(p, t) || (p->flags & (P_EVENT | P_CTIME)))
		p->flags |= P_HASH;
	else if (!same_meta(p, t))
		p->flags |= P_SEND_META;
	/* Deltas pay off on big files the standby has; holes go whole. */
	if ((p->flags & (P_SEND_FILE | P_HASH)) && !SCAN_IS_SPARSE(p) &&
	    p->size >= DELTA_MIN_SIZE && t->size >= DELTA_MIN_SIZE)
		p->flags |= P_DELTA;
}

/* Decide, for each of our entries, what the standby needs. */
static void
plan(struct sender *s)
{
	size_t i;

	for (i = 0; i < s->mine.n; i++) {
		struct scan_entry *p = &s->mine.v[i];
		struct scan_entry *t =
		    scan_list_find(&s->theirs, p->src, p->path);

		if (t != NULL) {
			t->flags |= SCAN_F_SEEN;
			if (t->type != p->type || t->rdev != p->rdev)
				t->flags |= SCAN_F_GONE | SCAN_F_RETYPE;
		}
		if (p->leader != 0)
			continue; /* decided by send_links */
		if (t == NULL || (t->flags & SCAN_F_GONE)) {
			p->flags |= P_CREATED;
			if (p->type == PROTO_E_FILE)
				p->flags |= P_SEND_FILE;
			continue;
		}
		switch (p->type) {
		case PROTO_E_FILE:
			plan_file(s, p, t);
			break;
		case PROTO_E_SYMLINK:
			if (strcmp(p->link, t->link) != 0)
				p->flags |= P_CREATED;
			else if (!same_meta(p, t))
				p->flags |= P_SEND_META;
			break;
		case PROTO_E_DIR:
			if (!same_meta(p, t))
				p->flags |= SCAN_F_DIRTY;
			break;
		default: /* fifos and device nodes */
			if (!same_meta(p, t))
				p->flags |= P_SEND_META;
			break;
		}
	}
	for (i = 0; i < s->theirs.n; i++) {
		struct scan_entry *t = &s->theirs.v[i];

		if ((t->flags & SCAN_F_SEEN) || s->missing[t->src])
			continue;
		if (scan_excluded(s->set, t->path))
			continue;
		t->flags |= SCAN_F_GONE;
	}
}

static int
hash_batch_flush(struct sender *s, uint32_t *count)
{
	int rc;

	if (*count == 0)
		return HS_OK;
	proto_wr_patch_u32(&s->w, 0, *count);
	rc = proto_conn_send_wr(s->c, PROTO_T_HASH_REQ, &s->w, PROTO_ZSTD);
	proto_wr_reset(&s->w);
	proto_put_u32(&s->w, 0);
	*count = 0;
	return rc;
}

#define NEEDS_HASH(p) (((p)->flags & (P_HASH | P_DELTA)) == P_HASH)

/* Read the standby's replies, in request order, and decide each file. */
/* Where hash_replies is: the next of our files that needed a hash. */
struct hash_walk {
	struct sender *s;
	uint8_t (*ours)[PROTO_HASH_LEN];
	size_t i; /* in s->mine */
	size_t k; /* in ours */
};

static int
hash_reply_one(void *arg, const struct proto_hash_reply *h)
{
	struct hash_walk *hw = arg;
	struct sender *s = hw->s;
	struct scan_entry *p;

	while (hw->i < s->mine.n && !NEEDS_HASH(&s->mine.v[hw->i]))
		hw->i++;
	if (hw->i >= s->mine.n)
		return HS_EPROTO;
	p = &s->mine.v[hw->i++];
	if (p->src != h->src || strcmp(p->path, h->path) != 0)
		return HS_EPROTO;
	if (h->status == 0 &&
	    memcmp(h->hash, hw->ours[hw->k], sizeof(h->hash)) == 0)
		p->flags |= P_SEND_META;
	else
		p->flags |= P_SEND_FILE;
	hw->k++;
	return HS_OK;
}

static int
hash_replies(struct sender *s, uint8_t (*ours)[PROTO_HASH_LEN])
{
	struct hash_walk hw = {s, ours, 0, 0};
	struct proto_msg m;
	int rc;

	for (;;) {
		if ((rc = send_recv(s, &m)) < 0)
			return rc;
		if (m.type == PROTO_T_HASH_END)
			return HS_OK;
		if (m.type != PROTO_T_HASH_REPLY)
			return HS_EPROTO;
		if ((rc = proto_hash_reply_decode(m.data, m.len, hash_reply_one,
		                                  &hw)) < 0)
			return rc;
	}
}

/*
 * Small files of equal size but other mtime: compare content hashes.
 * Requests go out in batches, our own hashes are computed while the
 * standby works, and the replies come back in request order.  (Big ones
 * get the hash with their signature: see send_deltas.)
 */
static int
compare_hashes(struct sender *s)
{
	uint8_t(*ours)[PROTO_HASH_LEN] = NULL;
	size_t i, n = 0, k;
	uint32_t count = 0;
	int rc = HS_OK;

	for (i = 0; i < s->mine.n; i++)
		if (NEEDS_HASH(&s->mine.v[i]))
			n++;
	if (n == 0)
		return HS_OK;
	if ((ours = calloc(n, sizeof(*ours))) == NULL)
		return -ENOMEM;
	proto_wr_reset(&s->w);
	proto_put_u32(&s->w, 0);
	for (i = 0; i < s->mine.n && rc == HS_OK; i++) {
		const struct scan_entry *p = &s->mine.v[i];

		if (!NEEDS_HASH(p))
			continue;
		proto_put_u16(&s->w, p->src);
		proto_put_str(&s->w, p->path);
		count++;
		if (s->w.buf.len >= BATCH_FRAME_BYTES)
			rc = hash_batch_flush(s, &count);
	}
	if (rc == HS_OK)
		rc = hash_batch_flush(s, &count);
	if (rc == HS_OK)
		rc = proto_conn_send(s->c, PROTO_T_HASH_REQ_END, NULL, 0,
		                     PROTO_RAW, NULL);
	if (rc == HS_OK)
		rc = proto_conn_flush(s->c);
	for (i = 0, k = 0; i < s->mine.n && rc == HS_OK; i++)
		if (NEEDS_HASH(&s->mine.v[i])) {
			if (send_hash_mine(s, &s->mine.v[i], ours[k]) < 0)
				memset(ours[k], 0xff, PROTO_HASH_LEN);
			k++;
		}
	if (rc == HS_OK)
		rc = hash_replies(s, ours);
	free(ours);
	return rc;
}

static int
depth_cmp(const void *a, const void *b)
{
	const struct scan_entry *x = *(struct scan_entry *const *)a;
	const struct scan_entry *y = *(struct scan_entry *const *)b;
	size_t dx = 0, dy = 0;
	const char *p;

	for (p = x->path; *p; p++)
		dx += *p == '/';
	for (p = y->path; *p; p++)
		dy += *p == '/';
	dx += x->path[0] != '\0';
	dy += y->path[0] != '\0';
	if (dx != dy)
		return dx > dy ? -1 : 1;
	return -strcmp(x->path, y->path);
}

static int
deletes_allowed(struct sender *s)
{
	size_t i;

	for (i = 0; i < s->o->n_allow_deletes; i++)
		if (strcmp(s->o->allow_deletes[i], s->set->name) == 0)
			return 1;
	return 0;
}

/*
 * The delete guard: an unmounted /install looks empty.  Deleting more than
 * max_delete_percent of the standby's files in one reconciliation is held
 * back and reported until `sync --allow-deletes SET`.  Sets made only of
 * single files are exempt; entries deleted to be recreated as another
 * type are replacements, not deletions.
 */
static int
deletes_held(struct sender *s, int scoped)
{
	size_t i, files = 0, gone = 0;
	int single = 1;

	for (i = 0; i < s->set->sources.n; i++) {
		struct scan_entry *root = mine_find(s, (uint16_t)i, "");

		if (root == NULL || root->type == PROTO_E_DIR)
			single = 0;
	}
	if (single || deletes_allowed(s))
		return 0;
	for (i = 0; i < s->theirs.n; i++) {
		const struct scan_entry *t = &s->theirs.v[i];

		if (t->type == PROTO_E_DIR)
			continue;
		files++;
		if ((t->flags & SCAN_F_GONE) && !(t->flags & SCAN_F_RETYPE))
			gone++;
	}
	/*
	 * A scoped run sees a few paths: weigh its deletions, with those of
	 * the last minute, against the set's size at the last full run.
	 */
	if (scoped) {
		if (s->o->guard_files == 0)
			return 0;
		files = s->o->guard_files;
		if (s->o->guard_recent != NULL)
			gone += *s->o->guard_recent;
	}
	if (gone == 0 ||
	    gone * 100 <= (size_t)s->conf->max_delete_percent * files)
		return 0;
	send_note(s,
	          "set %s: holding back the deletion of %zu "
	          "of %zu files (more than max_delete_percent = %u%%); "
	          "run `hamnsync sync --allow-deletes %s` to release",
	          s->set->name, gone, files, s->conf->max_delete_percent,
	          s->set->name);
	return 1;
}

static int
send_deletes(struct sender *s, int scoped)
{
	struct scan_entry **del;
	size_t i, n = 0;
	int rc = HS_OK, held;

	for (i = 0; i < s->theirs.n; i++)
		if (s->theirs.v[i].flags & SCAN_F_GONE)
			n++;
	if (n == 0)
		return HS_OK;
	held = deletes_held(s, scoped);
	if ((del = calloc(n, sizeof(*del))) == NULL)
		return -ENOMEM;
	for (i = 0, n = 0; i < s->theirs.n; i++)
		if (s->theirs.v[i].flags & SCAN_F_GONE)
			del[n++] = &s->theirs.v[i];
	qsort(del, n, sizeof(*del), depth_cmp);
	for (i = 0; i < n && rc == HS_OK; i++) {
		if (held && !(del[i]->flags & SCAN_F_RETYPE)) {
			send_dry(s, "held", del[i]);
			s->rep->held++;
			del[i]->flags |= P_HELD;
			continue;
		}
		send_dry(s, "delete", del[i]);
		mark_parent(s, del[i]->src, del[i]->path);
		s->rep->deleted++;
		if (scoped && s->o->guard_recent != NULL && !s->o->dry_run)
			(*s->o->guard_recent)++;
		if (!s->o->dry_run)
			rc = send_entry(s, PROTO_T_OP_DELETE, del[i]);
	}
	free(del);
	return rc;
}

/* One entry's operation in the pre-order pass; deltas and links wait. */
static int
send_op(struct sender *s, struct scan_entry *p)
{
	const char *what;
	uint8_t type;

	if (p->leader != 0 || (p->flags & P_DELTA))
		return HS_OK;
	if (p->type == PROTO_E_DIR && (p->flags & P_CREATED)) {
		what = "mkdir";
		type = PROTO_T_OP_DIR;
		s->rep->dirs++;
	} else if (p->type == PROTO_E_SYMLINK && (p->flags & P_CREATED)) {
		what = "symlink";
		type = PROTO_T_OP_SYMLINK;
		s->rep->symlinks++;
	} else if (p->type >= PROTO_E_FIFO && (p->flags & P_CREATED)) {
		what = "special";
		type = PROTO_T_OP_SPECIAL;
		s->rep->specials++;
	} else if (p->flags & P_SEND_FILE) {
		send_dry(s, (p->flags & P_CREATED) ? "new" : "whole", p);
		mark_parent(s, p->src, p->path);
		if (!s->o->dry_run)
			return send_file(s, p);
		s->rep->files_sent++;
		return HS_OK;
	} else if (p->flags & P_SEND_META) {
		what = "meta";
		type = PROTO_T_OP_META;
		s->rep->meta_only++;
	} else {
		if (p->type != PROTO_E_DIR)
			s->rep->unchanged++;
		return HS_OK;
	}
	send_dry(s, what, p);
	mark_parent(s, p->src, p->path);
	return s->o->dry_run ? HS_OK : send_entry(s, type, p);
}

/* Is the standby's copy of follower p already linked to its leader's? */
static int
link_intact(struct sender *s, const struct scan_entry *p,
            const struct scan_entry *lead)
{
	const struct scan_entry *t, *tl;

	if (lead->flags & (P_REWRITTEN | P_CREATED))
		return 0;
	t = scan_list_find(&s->theirs, p->src, p->path);
	tl = scan_list_find(&s->theirs, lead->src, lead->path);
	return t != NULL && tl != NULL && !(t->flags & SCAN_F_GONE) &&
	       t->type == PROTO_E_FILE && t->dev == tl->dev &&
	       t->ino == tl->ino;
}

static int
send_links(struct sender *s)
{
	size_t i;
	int rc = HS_OK;

	for (i = 0; i < s->mine.n && rc == HS_OK; i++) {
		struct scan_entry *p = &s->mine.v[i], *lead;

		if (p->leader == 0)
			continue;
		lead = &s->mine.v[p->leader - 1];
		if (link_intact(s, p, lead)) {
			s->rep->unchanged++;
			continue;
		}
		send_dry(s, "link", p);
		mark_parent(s, p->src, p->path);
		s->rep->links++;
		if (s->o->dry_run)
			continue;
		proto_wr_reset(&s->w);
		proto_put_u16(&s->w, p->src);
		proto_put_str(&s->w, p->path);
		proto_put_u16(&s->w, lead->src);
		proto_put_str(&s->w, lead->path);
		rc =
		    proto_conn_send_wr(s->c, PROTO_T_OP_LINK, &s->w, PROTO_RAW);
	}
	return rc;
}

static int
send_ops(struct sender *s)
{
	size_t i;
	int rc = HS_OK;

	for (i = 0; i < s->mine.n; i++) {
		struct scan_entry *p = &s->mine.v[i];

		if (p->flags & (P_SEND_FILE | P_DELTA)) {
			s->todo_files++;
			s->todo_bytes += p->size;
		}
	}
	for (i = 0; i < s->mine.n && rc == HS_OK; i++)
		rc = send_op(s, &s->mine.v[i]);
	if (rc == HS_OK)
		rc = send_deltas(s);
	if (rc == HS_OK)
		rc = send_links(s);
	for (i = 0; i < s->mine.n; i++)
		if (s->mine.v[i].flags & P_DELTA)
			mark_parent(s, s->mine.v[i].src, s->mine.v[i].path);
	/* Directory times last, children before parents. */
	for (i = s->mine.n; i-- > 0 && rc == HS_OK;) {
		struct scan_entry *p = &s->mine.v[i];

		if (p->type != PROTO_E_DIR ||
		    !(p->flags & (P_CREATED | SCAN_F_DIRTY)))
			continue;
		if (!(p->flags & P_CREATED))
			send_dry(s, "meta", p);
		if (!s->o->dry_run)
			rc = send_entry(s, PROTO_T_OP_META, p);
	}
	send_progress(s, 1);
	return rc;
}

/*
 * Tie one error line of SET_DONE ("<source>/<rel>: what: why", as
 * apply_error writes it) to the entry it names.  A path may hold ": "
 * itself, so each cut is tried against what the run listed on either
 * side; a line that names nothing listed counts as loose.
 */
static void
failed_note(struct sender *s, const char *line)
{
	struct send_failed *f = &s->failed;
	const struct scan_entry *e = NULL;
	char rel[PROTO_PATH_MAX + 1];
	const char *rest, *cut = NULL;
	size_t i, len;

	for (i = 0; s->set != NULL && i < s->set->sources.n && !cut; i++) {
		len = strlen(s->set->sources.v[i]);
		if (strncmp(line, s->set->sources.v[i], len) != 0)
			continue;
		rest = line + len;
		if (strncmp(rest, ": ", 2) == 0) {
			rel[0] = '\0';
			cut = rest;
			e = scan_list_find(&s->mine, (uint16_t)i, rel);
			break;
		}
		if (rest[0] != '/')
			continue;
		for (cut = strstr(rest + 1, ": "); cut != NULL;
		     cut = strstr(cut + 1, ": ")) {
			if ((size_t)(cut - rest - 1) > PROTO_PATH_MAX) {
				cut = NULL;
				break;
			}
			snprintf(rel, sizeof(rel), "%.*s",
			         (int)(cut - rest - 1), rest + 1);
			if ((e = scan_list_find(&s->mine, (uint16_t)i, rel)) !=
			        NULL ||
			    (e = scan_list_find(&s->theirs, (uint16_t)i,
			                        rel)) != NULL)
				break;
		}
		if (cut != NULL)
			break;
	}
	if (cut == NULL ||
	    proto_scope_push(&f->v, &f->n, &f->cap, (uint16_t)i, rel,
	                     e != NULL && e->type == PROTO_E_DIR) < 0) {
		f->loose++;
		return;
	}
	/* Its directory too: writing there changed the directory's times,
	 * which the retry puts back. */
	if (rel[0] != '\0') {
		char *slash = strrchr(rel, '/');

		if (slash != NULL)
			*slash = '\0';
		else
			rel[0] = '\0';
		if (proto_scope_push(&f->v, &f->n, &f->cap, (uint16_t)i, rel,
		                     0) < 0)
			f->loose++;
	}
	if (f->first[0] == '\0') {
		snprintf(f->first, sizeof(f->first), "%.*s", (int)(cut - line),
		         line);
		snprintf(f->why, sizeof(f->why), "%s", cut + 2);
	}
}

void
send_session_failed(struct sender *s, struct send_failed *f)
{
	*f = s->failed;
	memset(&s->failed, 0, sizeof(s->failed));
}

/* SET_DONE: the standby's counts and errors, then the sequence it made
 * durable (*seq, 0 when it did not say). */
static int
recv_set_done(struct sender *s, uint64_t *seq)
{
	struct proto_set_done d;
	struct proto_msg m;
	char line[PROTO_LINE_MAX + 1];
	uint32_t i;
	int rc;

	if ((rc = send_recv(s, &m)) < 0)
		return rc;
	/* Block patches whose basis the standby did not hold (sendpatch.c). */
	while (m.type == PROTO_T_PATCH_STALE)
		if ((rc = send_blk_stale(s, &m)) < 0 ||
		    (rc = proto_conn_recv(s->c, &m)) < 0)
			return rc;
	if (m.type != PROTO_T_SET_DONE)
		return HS_EPROTO;
	if (proto_set_done_decode(m.data, m.len, &d) < 0)
		return HS_EPROTO;
	for (i = 0; i < d.n_lines; i++) {
		snprintf(line, sizeof(line), "%.*s", (int)d.lines[i].len,
		         d.lines[i].p);
		send_note(s, "standby: %s", line);
		failed_note(s, line);
	}
	if (d.errors > d.n_lines)
		send_note(s, "standby: ... and %llu more errors",
		          (unsigned long long)(d.errors - d.n_lines));
	s->failed.errors += d.errors;
	s->failed.loose += d.errors > d.n_lines ? d.errors - d.n_lines : 0;
	s->rep->remote_errors += d.errors;
	s->run_errors += d.errors;
	*seq = d.seq;
	return HS_OK;
}

static void
verify_diff(struct sender *s, const struct scan_entry *e, const char *why)
{
	s->rep->differences++;
	if (s->o->verify_cb != NULL)
		s->o->verify_cb(s->o->verify_arg, send_path(s, e), why);
}

/* What only the standby has, in path order (its listing has none). */
static int
verify_gone(struct sender *s)
{
	struct scan_entry **v;
	size_t i, n = 0;

	for (i = 0; i < s->theirs.n; i++)
		n += (s->theirs.v[i].flags & (SCAN_F_GONE | SCAN_F_RETYPE)) ==
		     SCAN_F_GONE;
	if (n == 0)
		return HS_OK;
	if ((v = calloc(n, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (i = 0, n = 0; i < s->theirs.n; i++)
		if ((s->theirs.v[i].flags & (SCAN_F_GONE | SCAN_F_RETYPE)) ==
		    SCAN_F_GONE)
			v[n++] = &s->theirs.v[i];
	qsort(v, n, sizeof(*v), send_entry_cmp);
	for (i = 0; i < n; i++)
		verify_diff(s, v[i], "only on the standby");
	free(v);
	return HS_OK;
}

/*
 * Verify one listed set: compare every entry's metadata, and the content
 * hash of every regular file, which each node computes from its own disk.
 */
static int
verify_set(struct sender *s)
{
	size_t i;
	int rc;

	for (i = 0; i < s->mine.n; i++) {
		struct scan_entry *p = &s->mine.v[i];
		const struct scan_entry *t;

		if (p->type != PROTO_E_FILE || (p->flags & P_CREATED) ||
		    p->leader != 0)
			continue;
		t = scan_list_find(&s->theirs, p->src, p->path);
		if (t == NULL || t->size != p->size)
			continue;
		p->flags &= (uint16_t) ~(P_DELTA | P_SEND_FILE | P_SEND_META);
		if (!same_meta(p, t))
			p->flags |= P_VMETA;
		p->flags |= P_HASH;
	}
	if ((rc = compare_hashes(s)) < 0)
		return rc;
	for (i = 0; i < s->mine.n; i++) {
		const struct scan_entry *p = &s->mine.v[i];

		if (p->flags & P_CREATED)
			verify_diff(s, p,
			            "missing or of another type on the "
			            "standby");
		else if (p->leader != 0) {
			if (!link_intact(s, p, &s->mine.v[p->leader - 1]))
				verify_diff(s, p, "hard link differs");
		} else if (p->flags & P_SEND_FILE)
			verify_diff(s, p,
			            (p->flags & P_HASH) ? "content differs"
			                                : "size differs");
		else if (p->flags & P_HASH) {
			/* Equal hashes set P_SEND_META: only P_VMETA counts. */
			if (p->flags & P_VMETA)
				verify_diff(s, p, "metadata differs");
		} else if (p->flags & (P_SEND_META | SCAN_F_DIRTY))
			verify_diff(s, p, "metadata differs");
	}
	return verify_gone(s);
}

int
send_list_stat(struct sender *s, const struct hs_pathset *set)
{
	size_t i;
	int rc = HS_OK;

	s->set = set;
	for (i = 0; i < set->sources.n && rc == HS_OK; i++)
		rc = open_source(s, i);
	for (i = 0; i < set->sources.n && rc == HS_OK; i++) {
		size_t before = s->mine.n;

		if (s->anchor[i] >= 0)
			rc = scan_tree_stat(s->anchor[i], s->leaf[i],
			                    (uint16_t)i, set, &s->mine);
		/* Gone (an unmounted source?): its standby copy stays. */
		if (rc == HS_OK && s->mine.n == before)
			s->missing[i] = 1;
	}
	return rc;
}

/* Bit of set in sets_opened (sets past 64 are never blind). */
static uint64_t
set_bit(const struct sender *s, const struct hs_pathset *set)
{
	size_t i = (size_t)(set - s->conf->sets);

	return i < 64 ? 1ull << i : 0;
}

/*
 * A scoped run asks for the standby's listing to learn what it holds at
 * each path.  When the index already says so, the run goes blind
 * (SET_OPEN_BLIND: no listing, no round trip before the data): every path
 * of the run is a small regular file here (one link, not sparse), the
 * index records that the standby acknowledged a regular file there, and
 * the standby accepted this set earlier in the session; directories
 * named too must be recorded as directories.  Each file then goes whole;
 * the standby still checks drift before replacing it.  Creations,
 * deletions, recursive entries, links, big files and renamed paths take
 * the listing.
 */
static int
blind_ok(struct sender *s, const struct proto_scope *scope, size_t n_scope)
{
	struct idx_file rec;
	size_t i;

	if (scope == NULL || s->idx == NULL || s->skey == NULL ||
	    s->o->dry_run || s->o->verify || n_scope > BLIND_PATHS_MAX ||
	    s->mine.n != n_scope || !(s->sets_opened & set_bit(s, s->set)))
		return 0;
	for (i = 0; i < n_scope; i++)
		if (scope[i].recursive)
			return 0;
	for (i = 0; i < s->mine.n; i++) {
		const struct scan_entry *p = &s->mine.v[i];

		if ((p->type != PROTO_E_FILE && p->type != PROTO_E_DIR) ||
		    (p->type == PROTO_E_FILE &&
		     (p->nlink != 1 || p->size > BLIND_FILE_MAX ||
		      SCAN_IS_SPARSE(p))) ||
		    idx_file_get(s->idx, s->skey[p->src], p->path, &rec) !=
		        HS_OK ||
		    rec.type != p->type)
			return 0;
	}
	return 1;
}

/*
 * The plan of a blind run: what the standby holds is what the index
 * says, so files go whole and the directories around them (the watcher
 * names a changed file's directory too) get their times set last.
 */
static void
plan_blind(struct sender *s)
{
	size_t i;

	for (i = 0; i < s->mine.n; i++) {
		struct scan_entry *p = &s->mine.v[i];

		p->flags &= (uint16_t)~P_CREATED;
		p->flags |= p->type == PROTO_E_DIR ? SCAN_F_DIRTY : P_SEND_FILE;
	}
}

/*
 * List our side: the whole set, or the scope's entries.  A whole listing
 * reads extended attributes only where the last one's no longer hold
 * (tree.h); `verify` reads them all, and a dry run writes nothing.
 */
static int
list_mine(struct sender *s, const struct proto_scope *scope, size_t n_scope)
{
	struct xcache *xc = NULL;
	size_t i;
	int rc = HS_OK;

	for (i = 0; i < s->set->sources.n; i++)
		if ((rc = open_source(s, i)) < 0)
			return rc;
	s->scoped = scope != NULL;
	if (scope == NULL && !s->o->verify && !s->o->dry_run)
		xc = xcache_open(s->conf->state_dir, s->set->name);
	for (i = 0; scope == NULL && i < s->set->sources.n && rc == HS_OK; i++)
		rc = list_entry(s, (uint16_t)i, "", 1, xc);
	xcache_close(xc, rc == HS_OK);
	for (i = 0; scope != NULL && i < n_scope && rc == HS_OK; i++)
		if (scope[i].src < s->set->sources.n)
			rc = list_entry(s, scope[i].src, scope[i].path,
			                scope[i].recursive, NULL);
	if (rc < 0)
		send_note(s, "set %s: cannot list: %s", s->set->name,
		          hs_strerror(rc));
	return rc;
}

static int
send_set_open(struct sender *s, const struct proto_scope *scope, size_t n_scope,
              int blind)
{
	struct proto_set_open so;
	size_t i;
	int rc;

	memset(&so, 0, sizeof(so));
	snprintf(so.name, sizeof(so.name), "%s", s->set->name);
	so.n_sources = (uint16_t)s->set->sources.n;
	for (i = 0; i < s->set->sources.n; i++)
		so.sources[i] = s->set->sources.v[i];
	proto_wr_reset(&s->w);
	proto_set_open_encode(&s->w, &so);
	if (scope != NULL)
		proto_scope_encode(&s->w, scope, n_scope);
	if ((rc = proto_conn_send_wr(s->c,
	                             blind   ? PROTO_T_SET_OPEN_BLIND
	                             : scope ? PROTO_T_SET_OPEN_SCOPED
	                                     : PROTO_T_SET_OPEN,
	                             &s->w, PROTO_ZSTD)) < 0)
		return rc;
	/* Blind: the operations follow in the same flush. */
	return blind ? HS_OK : proto_conn_flush(s->c);
}

struct walk_job {
	struct sender *s;
	int rc;
};

static void *
walk_run(void *arg)
{
	struct walk_job *j = arg;

	j->rc = list_mine(j->s, NULL, 0);
	return NULL;
}

/*
 * A whole set: our walk on a thread while this one reads the standby's
 * listing, which it sends as it walks its own copy.  Read only after our
 * walk, a big listing would fill the socket buffers and leave the
 * standby waiting on a closed window for as long as our walk takes.
 * The walk touches only the sources and s->mine; this thread keeps the
 * connection, s->theirs and the daemon's tick.
 */
static int
list_both(struct sender *s, int *refused)
{
	struct walk_job j = {s, HS_OK};
	pthread_t t;
	int rc;

	if (pthread_create(&t, NULL, walk_run, &j) != 0) {
		if ((rc = list_mine(s, NULL, 0)) < 0)
			return rc;
		return recv_listing(s, refused);
	}
	rc = recv_listing(s, refused);
	pthread_join(t, NULL);
	return rc < 0 ? rc : j.rc;
}

/*
 * Reconcile one set: all of it (scope NULL), or only the scope's entries
 * (and what is below the recursive ones).
 */
static int
sync_set(struct sender *s, const struct hs_pathset *set,
         const struct proto_scope *scope, size_t n_scope)
{
	const struct scan_entry *dup;
	uint64_t seq;
	size_t i;
	int rc, refused = 0, blind = 0, listed = 0;

	s->set = set;
	if ((rc = sidx_run_start(s, scope, n_scope)) < 0)
		return rc;
	if (scope != NULL) {
		/* A few paths: listed in microseconds, before deciding. */
		if ((rc = list_mine(s, scope, n_scope)) < 0)
			return rc;
		blind = blind_ok(s, scope, n_scope);
		rc = send_set_open(s, scope, n_scope, blind);
	} else if ((rc = send_set_open(s, NULL, 0, 0)) == HS_OK) {
		/* Here already: the next step's reading is done. */
		rc = list_both(s, &refused);
		listed = 1;
	}
	if (rc < 0)
		return rc;
	if (!blind && !listed && (rc = recv_listing(s, &refused)) < 0)
		return rc;
	if (!blind && refused) {
		s->rep->sets_refused++;
		sidx_run_void(s);
		return HS_OK;
	}
	s->sets_opened |= set_bit(s, set);
	s->rep->blind_runs += blind;
	for (i = 0; i < s->theirs.n; i++)
		if (s->theirs.v[i].type != PROTO_E_DIR)
			s->rep->standby_files++;
	for (i = 0; i < s->mine.n; i++)
		if (s->mine.v[i].type != PROTO_E_DIR) {
			s->rep->primary_files++;
			s->rep->primary_bytes += s->mine.v[i].size;
		}
	/* (our own walk lists a path once: no twice to report) */
	if ((rc = scan_list_index(&s->mine, &dup)) < 0 ||
	    (rc = find_links(s)) < 0)
		return rc;
	if (blind)
		plan_blind(s);
	else {
		if (!s->o->verify)
			sidx_mark_rewritten(s);
		plan(s);
	}
	if (s->o->max_file_bytes != 0)
		send_leave_large(s); /* express lane: big files wait */
	if (s->o->verify)
		rc = verify_set(s);
	else if ((rc = compare_hashes(s)) == HS_OK &&
	         (rc = send_deletes(s, scope != NULL)) == HS_OK)
		rc = send_ops(s);
	if (rc < 0)
		return rc;
	proto_wr_reset(&s->w);
	sidx_set_end_body(s, &s->w);
	if ((rc = proto_conn_send_wr(s->c, PROTO_T_SET_END, &s->w, PROTO_RAW)) <
	    0)
		return rc;
	if (s->o->express) {
		/* SET_DONE is read by send_session_done: see prim_int.h. */
		s->awaiting_done = 1;
		return proto_conn_flush(s->c);
	}
	if (s->run_seq != 0 && (rc = proto_conn_flush(s->c)) < 0)
		return rc;
	if ((rc = recv_set_done(s, &seq)) < 0)
		return rc;
	/* Durable there: block records and file records here. */
	if ((rc = send_blk_acked(s)) < 0)
		return rc;
	return sidx_run_acked(s, seq, scope, n_scope);
}

int
send_session_done(struct sender *s, int timeout_ms)
{
	uint64_t seq;
	int rc;

	if (!s->awaiting_done)
		return HS_OK;
	if ((rc = proto_conn_wait(s->c, timeout_ms)) <= 0)
		return rc == 0 ? HS_WANT_READ : rc;
	s->awaiting_done = 0;
	/* Express runs are not numbered: no sequence to check. */
	rc = recv_set_done(s, &seq);
	s->rep->wire_out = proto_conn_bytes_out(s->c);
	s->rep->wire_in = proto_conn_bytes_in(s->c);
	s->rep = NULL;
	return rc;
}

/* The standby's HELLO, waited for with the daemon's tick running. */
static int
hello_wait(struct sender *s)
{
	uint64_t end = hs_now_mono_ns() + (s->o->timeout_ms
	                                       ? (uint64_t)s->o->timeout_ms
	                                       : s->conf->peer_timeout * 1000) *
	                                      HS_NS_PER_MS;
	int rc;

	while (s->o->tick != NULL &&
	       (rc = proto_conn_wait(s->c, SEND_WAIT_TICK_MS)) == 0) {
		if (hs_now_mono_ns() >= end)
			return HS_ETIMEOUT;
		s->o->tick(s->o->tick_arg);
	}
	return s->o->tick != NULL && rc < 0 ? rc : HS_OK;
}

static int
session_open(struct sender *s, char *why, size_t whylen)
{
	struct proto_tls *tls = s->o->tls;
	struct proto_hello mine, peer;
	int rc;

	/* Loaded here only when the caller did not load it once for all. */
	if (tls == NULL && proto_tls_from_conf(s->conf, &tls, why, whylen) < 0)
		return HS_ECONFIG;
	/* A frozen standby still accepts: keep serving status meanwhile. */
	proto_tls_set_tick(tls, s->o->tick, s->o->tick_arg);
	rc = proto_conn_connect(tls, s->conf->peer,
	                        s->o->timeout_ms
	                            ? s->o->timeout_ms
	                            : (int)s->conf->peer_timeout * 1000,
	                        &s->c, why, whylen);
	if (tls != s->o->tls)
		proto_tls_free(tls);
	if (rc < 0)
		return rc;
	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", s->conf->node_name);
	mine.role = HS_ROLE_PRIMARY;
	mine.epoch = s->o->epoch;
	mine.flags = PROTO_HELLO_F_ALIVE;
	if (s->o->express)
		mine.flags |= PROTO_HELLO_F_EXPRESS;
	if ((rc = proto_hello_send(s->c, &mine)) < 0 ||
	    (rc = hello_wait(s)) < 0 ||
	    (rc = proto_hello_recv(s->c, &peer, why, whylen)) < 0) {
		if (rc != HS_EBUSY && rc != HS_EREFUSED && rc != HS_EVERSION)
			snprintf(why, whylen, "handshake: %s", hs_strerror(rc));
		return rc;
	}
	s->peer = peer;
	if (s->o->met != NULL)
		*s->o->met = peer;
	if (peer.role != HS_ROLE_STANDBY) {
		snprintf(why, whylen,
		         "peer %s says it is %s, not a standby: "
		         "suspected split brain, nothing sent",
		         peer.name, hs_role_name(peer.role));
		return HS_EREFUSED;
	}
	if (peer.epoch > s->o->epoch) {
		snprintf(why, whylen,
		         "peer %s has epoch %llu, newer than ours "
		         "(%llu): this node is no longer the "
		         "primary",
		         peer.name, (unsigned long long)peer.epoch,
		         (unsigned long long)s->o->epoch);
		return HS_EREFUSED;
	}
	/*
	 * A standby that says ALIVE while it lists, hashes or flushes a big
	 * set is gone once silent for peer_timeout; an older one may be
	 * silent for that long while it works.
	 */
	s->timeout_ms = s->o->timeout_ms
	                    ? s->o->timeout_ms
	                    : (int)s->conf->peer_timeout * 1000 * 10;
	proto_conn_set_timeout(s->c, s->timeout_ms);
	if (peer.flags & PROTO_HELLO_F_ALIVE) {
		/* Writes keep the long bound: a closed window is the
		 * kernel's to judge (TCP_USER_TIMEOUT). */
		s->timeout_ms = s->o->timeout_ms
		                    ? s->o->timeout_ms
		                    : (int)s->conf->peer_timeout * 1000;
		proto_conn_set_read_timeout(s->c, s->timeout_ms);
		if ((rc = proto_conn_keepalive(s->c, (int)s->conf->heartbeat *
		                                         1000)) < 0) {
			snprintf(why, whylen, "keepalive: %s", hs_strerror(rc));
			return rc;
		}
	}
	proto_conn_set_bwlimit(s->c, s->conf->bwlimit);
	if ((rc = sidx_session_open(s, why, whylen)) < 0 && rc != HS_EREFUSED)
		snprintf(why, whylen, "journal: %s", hs_strerror(rc));
	return rc;
}

void
send_session_close(struct sender *s, int bye)
{
	if (s == NULL)
		return;
	if (bye && s->c != NULL &&
	    proto_conn_send(s->c, PROTO_T_BYE, NULL, 0, PROTO_RAW, NULL) == 0)
		proto_conn_flush(s->c);
	send_reset_set(s);
	send_blk_free(s);
	proto_scope_free(s->failed.v, s->failed.n);
	proto_conn_free(s->c);
	proto_wr_free(&s->w);
	hs_buf_free(&s->out);
	hs_buf_free(&s->xa);
	free(s->e);
	free(s->buf);
	free(s->skey);
	free(s);
}

int
send_session_open(const struct hs_conf *conf, const struct send_opts *o,
                  struct sender **out, char *why, size_t whylen)
{
	struct sender *s;
	size_t i;
	int rc;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->conf = conf;
	s->o = o;
	s->idx = o->idx;
	for (i = 0; i < PROTO_SOURCES_MAX; i++)
		s->anchor[i] = -1;
	proto_wr_init(&s->w);
	hs_buf_init(&s->out, PROTO_CHUNK);
	hs_buf_init(&s->xa, PROTO_XATTRS_MAX);
	s->e = malloc(sizeof(*s->e));
	s->buf = malloc(PROTO_CHUNK);
	if (s->e == NULL || s->buf == NULL) {
		send_session_close(s, 0);
		return -ENOMEM;
	}
	if ((rc = session_open(s, why, whylen)) < 0) {
		send_session_close(s, 0);
		return rc;
	}
	*out = s;
	return HS_OK;
}

int
send_session_set(struct sender *s, const struct hs_pathset *set,
                 const struct proto_scope *scope, size_t n_scope,
                 struct send_report *rep)
{
	struct proto_scope *retry = NULL;
	int rc;

	s->rep = rep;
	proto_scope_free(s->failed.v, s->failed.n);
	memset(&s->failed, 0, sizeof(s->failed));
	s->start_ns = s->shown_ns = hs_now_mono_ns();
	s->todo_bytes = s->done_bytes = s->todo_files = s->done_files = 0;
	rc = sync_set(s, set, scope, n_scope);
	send_reset_set(s);
	/* Patches the standby found stale go again, through signatures. */
	if ((n_scope = send_blk_retry(s, &retry)) > 0) {
		if (rc == HS_OK)
			rc = sync_set(s, set, retry, n_scope);
		send_reset_set(s);
		proto_scope_free(retry, n_scope);
	}
	rep->wire_out = proto_conn_bytes_out(s->c);
	rep->wire_in = proto_conn_bytes_in(s->c);
	/*
	 * rep is the caller's, often on its stack: a later call that is not
	 * a run (renames journalled between runs) must not write to it.  An
	 * express run keeps it until send_session_done reads its SET_DONE.
	 */
	if (!s->awaiting_done)
		s->rep = NULL;
	return rc;
}

int
send_session_ping(struct sender *s, int timeout_ms)
{
	static uint64_t token;
	struct proto_msg m;
	uint8_t body[8];
	int i, rc;

	token++;
	for (i = 0; i < 8; i++)
		body[i] = (uint8_t)(token >> (56 - 8 * i));
	if ((rc = proto_conn_send(s->c, PROTO_T_PING, body, sizeof(body),
	                          PROTO_RAW, NULL)) < 0)
		return rc;
	if ((rc = send_recv_within(s, &m, timeout_ms)) < 0)
		return rc;
	if (m.type != PROTO_T_PONG || m.len != 8 ||
	    memcmp(m.data, body, 8) != 0)
		return HS_EPROTO;
	return HS_OK;
}

int
send_sync(const struct hs_conf *conf, const struct send_opts *o,
          struct send_report *rep, char *why, size_t whylen)
{
	struct sender *s;
	size_t i;
	int rc;

	memset(rep, 0, sizeof(*rep));
	if ((rc = send_session_open(conf, o, &s, why, whylen)) < 0)
		return rc;
	for (i = 0; i < conf->n_sets; i++) {
		if ((rc = send_session_set(s, &conf->sets[i], NULL, 0, rep)) <
		    0) {
			snprintf(why, whylen, "set %s: %s", conf->sets[i].name,
			         hs_strerror(rc));
			break;
		}
		if (o->set_cb != NULL)
			o->set_cb(o->set_arg, conf->sets[i].name, rep);
	}
	send_session_close(s, rc == HS_OK);
	return rc;
}

const struct proto_hello *
send_session_peer(const struct sender *s)
{
	return &s->peer;
}

uint64_t
send_session_heard(const struct sender *s)
{
	return proto_conn_last_rx(s->c);
}

uint64_t
send_session_journalled(const struct sender *s)
{
	return s->wal_seq;
}

int
send_session_state(struct sender *s, uint64_t lag_ms, uint64_t pending,
                   int in_sync)
{
	struct proto_wr w;
	int rc;

	proto_wr_init(&w);
	proto_put_u64(&w, lag_ms);
	proto_put_u64(&w, pending);
	proto_put_u8(&w, in_sync ? 1 : 0);
	rc = proto_conn_send_wr(s->c, PROTO_T_STATE, &w, PROTO_RAW);
	proto_wr_free(&w);
	return rc == HS_OK ? proto_conn_flush(s->c) : rc;
}

int
send_session_renames(struct sender *s, const struct hs_pathset *set,
                     const struct proto_wr *body)
{
	int rc;

	if ((rc = sidx_renames(s, set, body)) < 0)
		return rc;
	proto_wr_reset(&s->w);
	proto_put_str(&s->w, set->name);
	proto_put_bytes(&s->w, body->buf.data, body->buf.len);
	return proto_conn_send_wr(s->c, PROTO_T_SET_RENAMES, &s->w, PROTO_ZSTD);
}
