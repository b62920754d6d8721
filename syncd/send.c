/*
 * send.c - the primary's side of one reconciliation (`hamnsync sync`).
 *
 * Per set: open it on the standby and receive its listing; list our own
 * sources; ask the standby for hashes of the files whose size matches but
 * whose mtime does not; then stream every operation without waiting for
 * replies (deletes deepest first, creations in pre-order, directory
 * metadata last, deepest first) and read one SET_DONE at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "syncd.h"

/* Decisions the sender keeps in scan_entry.flags of its own entries. */
#define P_SEND_FILE	0x10	/* content differs: send the whole file */
#define P_SEND_META	0x20	/* only owner, mode or time differ */
#define P_HASH		0x40	/* same size, other mtime: compare hashes */
#define P_CREATED	0x80	/* created (or recreated) on the standby */

/* Cut request and listing batches at this size. */
#define BATCH_FRAME_BYTES (1024u * 1024)

struct sender {
	const struct hs_conf	*conf;
	const struct send_opts	*o;
	struct send_report	*rep;
	struct proto_conn	*c;
	struct proto_wr		 w;
	struct proto_entry	*e;	/* scratch, 8 KiB */
	uint8_t			*buf;	/* PROTO_CHUNK */
	/* The set being reconciled. */
	const struct hs_pathset	*set;
	int			 anchor[PROTO_SOURCES_MAX];
	char			*leaf[PROTO_SOURCES_MAX];
	uint8_t			 missing[PROTO_SOURCES_MAX];
	struct scan_list	 mine;	/* pre-order */
	struct scan_list	 theirs;	/* sorted */
	struct scan_entry	**by_path;	/* mine, sorted */
};

static int
ptr_cmp(const void *a, const void *b)
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
	struct scan_entry key, *kp = &key, **hit;

	memset(&key, 0, sizeof(key));
	key.src = src;
	key.path = (char *)path;
	hit = bsearch(&kp, s->by_path, s->mine.n, sizeof(*s->by_path),
	    ptr_cmp);
	return hit ? *hit : NULL;
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

static const char *
show(struct sender *s, const struct scan_entry *e)
{
	static char buf[PROTO_PATH_MAX * 2 + 2];

	if (e->path[0] == '\0')
		snprintf(buf, sizeof(buf), "%s", s->set->sources.v[e->src]);
	else
		snprintf(buf, sizeof(buf), "%s/%s", s->set->sources.v[e->src],
		    e->path);
	return buf;
}

static void
sender_reset_set(struct sender *s)
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
	free(s->by_path);
	s->by_path = NULL;
	s->set = NULL;
}

/*
 * Open the directory that holds source i and list the source.  The prefix
 * is resolved once here; a source that is a symlink to a directory is
 * followed (so /install -> /data/install replicates the tree), any other
 * symlink source is replicated as the link.
 */
static int
list_source(struct sender *s, size_t i)
{
	const char *src = s->set->sources.v[i];
	char resolved[PATH_MAX], *slash;
	struct stat lst, st;
	size_t before = s->mine.n;
	int rc;

	snprintf(resolved, sizeof(resolved), "%s", src);
	if (lstat(src, &lst) == 0 && S_ISLNK(lst.st_mode) &&
	    stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (realpath(src, resolved) == NULL)
			return -errno;
		hs_log_info("send: source %s is a symlink to %s: replicating "
			    "its contents", src, resolved);
	}
	slash = strrchr(resolved, '/');
	s->leaf[i] = hs_xstrdup(slash + 1);
	*slash = '\0';
	s->anchor[i] = open(resolved[0] ? resolved : "/",
	    O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->anchor[i] < 0) {
		rc = -errno;
		s->missing[i] = 1;
		hs_log_warnx("send: source %s: its directory cannot be opened "
			     "(%s); the standby's copy is left alone",
		    src, hs_strerror(rc));
		return HS_OK;
	}
	if ((rc = scan_tree(s->anchor[i], s->leaf[i], (uint16_t)i, s->set,
		 &s->mine)) < 0)
		return rc;
	if (s->mine.n == before) {
		s->missing[i] = 1;
		hs_log_warnx("send: source %s does not exist here; the "
			     "standby's copy is left alone", src);
		fprintf(stderr, "hamnsync: %s: source missing on the primary, "
				"standby copy left alone\n", src);
		s->rep->changed_during++;
	}
	return HS_OK;
}

static int
recv_listing(struct sender *s, int *refused)
{
	struct proto_msg m;
	int rc;

	*refused = 0;
	for (;;) {
		struct proto_rd r;
		uint32_t n, i;

		if ((rc = proto_conn_recv(s->c, &m)) < 0)
			return rc;
		if (m.type == PROTO_T_LIST_END)
			break;
		if (m.type == PROTO_T_SET_REFUSE) {
			char name[PROTO_NODE_MAX + 1], why[1024];

			r.p = m.data;
			r.left = m.len;
			if (proto_get_str(&r, name, PROTO_NODE_MAX, NULL) < 0 ||
			    proto_get_str(&r, why, sizeof(why) - 1, NULL) < 0)
				return HS_EPROTO;
			fprintf(stderr, "hamnsync: standby refused set %s: "
					"%s\n", name, why);
			*refused = 1;
			return HS_OK;
		}
		if (m.type != PROTO_T_LIST)
			return HS_EPROTO;
		r.p = m.data;
		r.left = m.len;
		if (proto_get_u32(&r, &n) < 0)
			return HS_EPROTO;
		for (i = 0; i < n; i++) {
			struct scan_entry se;

			if ((rc = proto_entry_decode(&r, s->e)) < 0)
				return rc;
			if (s->e->src >= s->set->sources.n)
				return HS_EPROTO;
			memset(&se, 0, sizeof(se));
			se.path = s->e->path;
			se.link = s->e->type == PROTO_E_SYMLINK ? s->e->link
								: NULL;
			se.src = s->e->src;
			se.type = s->e->type;
			se.mode = s->e->mode;
			se.uid = s->e->uid;
			se.gid = s->e->gid;
			se.size = s->e->size;
			se.mtime_sec = s->e->mtime_sec;
			se.mtime_nsec = s->e->mtime_nsec;
			if ((rc = scan_entry_add(&s->theirs, &se)) < 0)
				return rc;
		}
		if (proto_rd_end(&r) < 0)
			return HS_EPROTO;
	}
	scan_list_sort(&s->theirs);
	return HS_OK;
}

static int
same_owner_mode(const struct scan_entry *a, const struct scan_entry *b)
{
	return a->uid == b->uid && a->gid == b->gid &&
	    (a->type == PROTO_E_SYMLINK || a->mode == b->mode);
}

static int
same_mtime(const struct scan_entry *a, const struct scan_entry *b)
{
	return a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec;
}

/* Decide, for each of our entries, what the standby needs. */
static void
plan(struct sender *s)
{
	size_t i;

	for (i = 0; i < s->mine.n; i++) {
		struct scan_entry *p = &s->mine.v[i];
		struct scan_entry *t = scan_list_find(&s->theirs, p->src,
		    p->path);

		if (t != NULL) {
			t->flags |= SCAN_F_SEEN;
			if (t->type != p->type)
				t->flags |= SCAN_F_GONE;
		}
		if (t == NULL || (t->flags & SCAN_F_GONE)) {
			p->flags |= P_CREATED;
			if (p->type == PROTO_E_FILE)
				p->flags |= P_SEND_FILE;
			continue;
		}
		switch (p->type) {
		case PROTO_E_FILE:
			if (p->size != t->size)
				p->flags |= P_SEND_FILE;
			else if (!same_mtime(p, t))
				p->flags |= P_HASH;
			else if (!same_owner_mode(p, t))
				p->flags |= P_SEND_META;
			break;
		case PROTO_E_SYMLINK:
			if (strcmp(p->link, t->link) != 0)
				p->flags |= P_CREATED;
			else if (!same_mtime(p, t) || !same_owner_mode(p, t))
				p->flags |= P_SEND_META;
			break;
		case PROTO_E_DIR:
			if (!same_mtime(p, t) || !same_owner_mode(p, t))
				p->flags |= SCAN_F_DIRTY;
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
send_entry(struct sender *s, uint8_t type, const struct scan_entry *se)
{
	scan_to_proto(se, s->e);
	proto_wr_reset(&s->w);
	proto_entry_encode(&s->w, s->e);
	return proto_conn_send_wr(s->c, type, &s->w, PROTO_RAW);
}

/* Hash our file (src, path) from its anchor; HS_ENOTFOUND if gone. */
static int
hash_mine(struct sender *s, const struct scan_entry *p, uint8_t h[32])
{
	char rel[PROTO_PATH_MAX * 2 + 2];
	int fd, rc;

	if (p->path[0] == '\0')
		snprintf(rel, sizeof(rel), "%s", s->leaf[p->src]);
	else
		snprintf(rel, sizeof(rel), "%s/%s", s->leaf[p->src], p->path);
	fd = openat(s->anchor[p->src], rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return HS_ENOTFOUND;
	rc = fs_hash_fd(fd, h);
	close(fd);
	return rc;
}

static int
flush_hash_batch(struct sender *s, uint32_t *count)
{
	uint8_t *p = s->w.buf.data;
	int rc;

	if (*count == 0)
		return HS_OK;
	p[0] = (uint8_t)(*count >> 24);
	p[1] = (uint8_t)(*count >> 16);
	p[2] = (uint8_t)(*count >> 8);
	p[3] = (uint8_t)*count;
	rc = proto_conn_send_wr(s->c, PROTO_T_HASH_REQ, &s->w, PROTO_ZSTD);
	proto_wr_reset(&s->w);
	proto_put_u32(&s->w, 0);
	*count = 0;
	return rc;
}

/*
 * Files of equal size but other mtime: compare content hashes.  Requests
 * go out in batches, our own hashes are computed while the standby works,
 * and the replies come back in request order.
 */
static int
compare_hashes(struct sender *s)
{
	uint8_t (*ours)[32] = NULL;
	size_t i, n = 0, k = 0;
	uint32_t count = 0;
	struct proto_msg m;
	int rc = HS_OK;

	for (i = 0; i < s->mine.n; i++)
		if (s->mine.v[i].flags & P_HASH)
			n++;
	if (n == 0)
		return HS_OK;
	if ((ours = calloc(n, sizeof(*ours))) == NULL)
		return -ENOMEM;
	proto_wr_reset(&s->w);
	proto_put_u32(&s->w, 0);
	for (i = 0; i < s->mine.n && rc == HS_OK; i++) {
		const struct scan_entry *p = &s->mine.v[i];

		if (!(p->flags & P_HASH))
			continue;
		proto_put_u16(&s->w, p->src);
		proto_put_str(&s->w, p->path);
		count++;
		if (s->w.buf.len >= BATCH_FRAME_BYTES)
			rc = flush_hash_batch(s, &count);
	}
	if (rc == HS_OK)
		rc = flush_hash_batch(s, &count);
	if (rc == HS_OK)
		rc = proto_conn_send(s->c, PROTO_T_HASH_REQ_END, NULL, 0,
		    PROTO_RAW, NULL);
	if (rc == HS_OK)
		rc = proto_conn_flush(s->c);
	for (i = 0, k = 0; i < s->mine.n && rc == HS_OK; i++)
		if (s->mine.v[i].flags & P_HASH)
			if (hash_mine(s, &s->mine.v[i], ours[k++]) < 0)
				memset(ours[k - 1], 0xff, 32);
	/* Replies, in request order. */
	i = 0;
	k = 0;
	while (rc == HS_OK) {
		struct proto_rd r;
		uint32_t cnt, j;

		if ((rc = proto_conn_recv(s->c, &m)) < 0)
			break;
		if (m.type == PROTO_T_HASH_END)
			break;
		if (m.type != PROTO_T_HASH_REPLY) {
			rc = HS_EPROTO;
			break;
		}
		r.p = m.data;
		r.left = m.len;
		if (proto_get_u32(&r, &cnt) < 0) {
			rc = HS_EPROTO;
			break;
		}
		for (j = 0; j < cnt && rc == HS_OK; j++) {
			uint16_t src;
			uint8_t st, h[32];
			struct scan_entry *p;

			if (proto_get_u16(&r, &src) < 0 ||
			    proto_get_str(&r, s->e->path, PROTO_PATH_MAX,
				NULL) < 0 ||
			    proto_get_u8(&r, &st) < 0 ||
			    proto_get_bytes(&r, h, sizeof(h)) < 0) {
				rc = HS_EPROTO;
				break;
			}
			while (i < s->mine.n && !(s->mine.v[i].flags & P_HASH))
				i++;
			if (i >= s->mine.n) {
				rc = HS_EPROTO;
				break;
			}
			p = &s->mine.v[i++];
			if (p->src != src || strcmp(p->path, s->e->path) != 0) {
				rc = HS_EPROTO;
				break;
			}
			if (st == 0 && memcmp(h, ours[k], 32) == 0)
				p->flags |= P_SEND_META;
			else
				p->flags |= P_SEND_FILE;
			k++;
		}
	}
	free(ours);
	return rc;
}

static int
send_file_end(struct sender *s, int abort_it, const uint8_t h[32])
{
	uint8_t body[1 + PROTO_HASH_LEN];

	body[0] = abort_it ? 1 : 0;
	if (abort_it)
		memset(body + 1, 0, PROTO_HASH_LEN);
	else
		memcpy(body + 1, h, PROTO_HASH_LEN);
	return proto_conn_send(s->c, PROTO_T_OP_FILE_END, body, sizeof(body),
	    PROTO_RAW, NULL);
}

/*
 * Send one whole file.  What is sent is what we read: the metadata comes
 * from fstat of the open file, and if the file changes while it is read
 * the transfer is aborted (the standby keeps its old copy) and reported.
 */
static int
send_file(struct sender *s, struct scan_entry *p)
{
	char rel[PROTO_PATH_MAX * 2 + 2];
	struct proto_hash *h = NULL;
	struct stat st, st2;
	uint8_t digest[PROTO_HASH_LEN];
	uint64_t left;
	int fd, rc, try_zstd = 1, changed = 0;

	if (p->path[0] == '\0')
		snprintf(rel, sizeof(rel), "%s", s->leaf[p->src]);
	else
		snprintf(rel, sizeof(rel), "%s/%s", s->leaf[p->src], p->path);
	fd = openat(s->anchor[p->src], rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "hamnsync: %s: vanished or changed type while "
				"syncing; skipped\n", show(s, p));
		if (fd >= 0)
			close(fd);
		s->rep->changed_during++;
		return HS_OK;
	}
	p->size = (uint64_t)st.st_size;
	p->mode = st.st_mode & 07777;
	p->uid = st.st_uid;
	p->gid = st.st_gid;
	p->mtime_sec = st.st_mtim.tv_sec;
	p->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	if ((rc = send_entry(s, PROTO_T_OP_FILE, p)) < 0 ||
	    (rc = proto_hash_new(&h)) < 0)
		goto out;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (left = p->size; left > 0;) {
		size_t want = left < PROTO_CHUNK ? (size_t)left : PROTO_CHUNK;
		ssize_t n = read(fd, s->buf, want);
		int z = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			changed = 1; /* shrank, or unreadable */
			break;
		}
		proto_hash_update(h, s->buf, (size_t)n);
		rc = proto_conn_send(s->c, PROTO_T_OP_DATA, s->buf, (size_t)n,
		    try_zstd ? PROTO_ZSTD : PROTO_RAW, &z);
		if (rc < 0)
			goto out;
		/* Data that did not compress will not: stop trying. */
		if (try_zstd && !z && (size_t)n >= 4096)
			try_zstd = 0;
		left -= (uint64_t)n;
		s->rep->bytes_sent += (uint64_t)n;
	}
	if (!changed && (fstat(fd, &st2) < 0 || st2.st_size != st.st_size ||
			    st2.st_mtim.tv_sec != st.st_mtim.tv_sec ||
			    st2.st_mtim.tv_nsec != st.st_mtim.tv_nsec ||
			    st2.st_ctim.tv_nsec != st.st_ctim.tv_nsec))
		changed = 1;
	proto_hash_final(h, digest);
	if (changed) {
		fprintf(stderr, "hamnsync: %s: changed while being read; "
				"the standby keeps its previous copy\n",
		    show(s, p));
		s->rep->changed_during++;
	} else
		s->rep->files_sent++;
	rc = send_file_end(s, changed, digest);
out:
	proto_hash_free(h);
	close(fd);
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

static void
dry(struct sender *s, const char *what, const struct scan_entry *e)
{
	if (s->o->dry_run)
		printf("%-8s %s\n", what, show(s, e));
}

static int
send_deletes(struct sender *s)
{
	struct scan_entry **del;
	size_t i, n = 0;
	int rc = HS_OK;

	for (i = 0; i < s->theirs.n; i++)
		if (s->theirs.v[i].flags & SCAN_F_GONE)
			n++;
	if (n == 0)
		return HS_OK;
	if ((del = calloc(n, sizeof(*del))) == NULL)
		return -ENOMEM;
	for (i = 0, n = 0; i < s->theirs.n; i++)
		if (s->theirs.v[i].flags & SCAN_F_GONE)
			del[n++] = &s->theirs.v[i];
	qsort(del, n, sizeof(*del), depth_cmp);
	for (i = 0; i < n && rc == HS_OK; i++) {
		dry(s, "delete", del[i]);
		mark_parent(s, del[i]->src, del[i]->path);
		s->rep->deleted++;
		if (!s->o->dry_run)
			rc = send_entry(s, PROTO_T_OP_DELETE, del[i]);
	}
	free(del);
	return rc;
}

static int
send_ops(struct sender *s)
{
	size_t i;
	int rc = HS_OK;

	for (i = 0; i < s->mine.n && rc == HS_OK; i++) {
		struct scan_entry *p = &s->mine.v[i];

		if (p->type == PROTO_E_DIR && (p->flags & P_CREATED)) {
			dry(s, "mkdir", p);
			s->rep->dirs++;
			if (!s->o->dry_run)
				rc = send_entry(s, PROTO_T_OP_DIR, p);
		} else if (p->type == PROTO_E_SYMLINK &&
			   (p->flags & P_CREATED)) {
			dry(s, "symlink", p);
			s->rep->symlinks++;
			if (!s->o->dry_run)
				rc = send_entry(s, PROTO_T_OP_SYMLINK, p);
		} else if (p->flags & P_SEND_FILE) {
			dry(s, (p->flags & P_CREATED) ? "new" : "whole", p);
			if (!s->o->dry_run)
				rc = send_file(s, p);
			else
				s->rep->files_sent++;
		} else if (p->flags & P_SEND_META) {
			dry(s, "meta", p);
			s->rep->meta_only++;
			if (!s->o->dry_run)
				rc = send_entry(s, PROTO_T_OP_META, p);
		} else {
			if (p->type != PROTO_E_DIR)
				s->rep->unchanged++;
			continue;
		}
		mark_parent(s, p->src, p->path);
	}
	/* Directory times last, children before parents. */
	for (i = s->mine.n; i-- > 0 && rc == HS_OK;) {
		struct scan_entry *p = &s->mine.v[i];

		if (p->type != PROTO_E_DIR ||
		    !(p->flags & (P_CREATED | SCAN_F_DIRTY)))
			continue;
		if (!(p->flags & P_CREATED))
			dry(s, "meta", p);
		if (!s->o->dry_run)
			rc = send_entry(s, PROTO_T_OP_META, p);
	}
	return rc;
}

static int
recv_set_done(struct sender *s)
{
	struct proto_msg m;
	struct proto_rd r;
	uint64_t applied, errors;
	uint32_t n, i;
	char line[1025];
	int rc;

	if ((rc = proto_conn_recv(s->c, &m)) < 0)
		return rc;
	if (m.type != PROTO_T_SET_DONE)
		return HS_EPROTO;
	r.p = m.data;
	r.left = m.len;
	if (proto_get_u64(&r, &applied) < 0 || proto_get_u64(&r, &errors) < 0 ||
	    proto_get_u32(&r, &n) < 0 || n > PROTO_ERRORS_MAX)
		return HS_EPROTO;
	for (i = 0; i < n; i++) {
		if (proto_get_str(&r, line, sizeof(line) - 1, NULL) < 0)
			return HS_EPROTO;
		fprintf(stderr, "hamnsync: standby: %s\n", line);
	}
	if (errors > n)
		fprintf(stderr, "hamnsync: standby: ... and %llu more errors\n",
		    (unsigned long long)(errors - n));
	s->rep->remote_errors += errors;
	return proto_rd_end(&r);
}

static int
sync_set(struct sender *s, const struct hs_pathset *set)
{
	struct proto_set_open so;
	size_t i;
	int rc, refused;

	s->set = set;
	memset(&so, 0, sizeof(so));
	snprintf(so.name, sizeof(so.name), "%s", set->name);
	so.n_sources = (uint16_t)set->sources.n;
	for (i = 0; i < set->sources.n; i++)
		so.sources[i] = set->sources.v[i];
	proto_wr_reset(&s->w);
	proto_set_open_encode(&s->w, &so);
	if ((rc = proto_conn_send_wr(s->c, PROTO_T_SET_OPEN, &s->w,
		 PROTO_RAW)) < 0 ||
	    (rc = proto_conn_flush(s->c)) < 0)
		return rc;
	/* List our side while the standby lists its own. */
	for (i = 0; i < set->sources.n; i++)
		if ((rc = list_source(s, i)) < 0) {
			fprintf(stderr, "hamnsync: %s: cannot list: %s\n",
			    set->sources.v[i], hs_strerror(rc));
			return rc;
		}
	if ((rc = recv_listing(s, &refused)) < 0)
		return rc;
	if (refused) {
		s->rep->sets_refused++;
		return HS_OK;
	}
	if ((s->by_path = calloc(s->mine.n ? s->mine.n : 1,
		 sizeof(*s->by_path))) == NULL)
		return -ENOMEM;
	for (i = 0; i < s->mine.n; i++)
		s->by_path[i] = &s->mine.v[i];
	qsort(s->by_path, s->mine.n, sizeof(*s->by_path), ptr_cmp);
	plan(s);
	if ((rc = compare_hashes(s)) < 0)
		return rc;
	if ((rc = send_deletes(s)) < 0 || (rc = send_ops(s)) < 0)
		return rc;
	if ((rc = proto_conn_send(s->c, PROTO_T_SET_END, NULL, 0, PROTO_RAW,
		 NULL)) < 0)
		return rc;
	return recv_set_done(s);
}

static int
session_open(struct sender *s, char *why, size_t whylen)
{
	struct proto_tls *tls = NULL;
	struct proto_hello mine, peer;
	int rc;

	if ((rc = proto_tls_from_conf(s->conf, 0, &tls)) < 0) {
		snprintf(why, whylen, "cannot load this node's certificate "
				      "or key");
		return rc;
	}
	rc = proto_conn_connect(tls, s->conf->peer,
	    (int)s->conf->peer_timeout * 1000, &s->c, why, whylen);
	proto_tls_free(tls);
	if (rc < 0)
		return rc;
	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", s->conf->node_name);
	mine.role = HS_ROLE_PRIMARY;
	mine.epoch = s->o->epoch;
	if ((rc = proto_hello_send(s->c, &mine)) < 0 ||
	    (rc = proto_hello_recv(s->c, &peer, why, whylen)) < 0) {
		if (rc != HS_EBUSY && rc != HS_EREFUSED && rc != HS_EVERSION)
			snprintf(why, whylen, "handshake: %s", hs_strerror(rc));
		return rc;
	}
	if (peer.role != HS_ROLE_STANDBY) {
		snprintf(why, whylen, "peer %s says it is %s, not a standby: "
				      "suspected split brain, nothing sent",
		    peer.name, hs_role_name(peer.role));
		return HS_EREFUSED;
	}
	if (peer.epoch > s->o->epoch) {
		snprintf(why, whylen, "peer %s has epoch %llu, newer than ours "
				      "(%llu): this node is no longer the "
				      "primary",
		    peer.name, (unsigned long long)peer.epoch,
		    (unsigned long long)s->o->epoch);
		return HS_EREFUSED;
	}
	/* The standby may take long to list, hash or flush a big set. */
	proto_conn_set_timeout(s->c, (int)s->conf->peer_timeout * 1000 * 10);
	return HS_OK;
}

int
send_sync(const struct hs_conf *conf, const struct send_opts *o,
    struct send_report *rep, char *why, size_t whylen)
{
	struct sender s;
	size_t i;
	int rc;

	memset(&s, 0, sizeof(s));
	memset(rep, 0, sizeof(*rep));
	s.conf = conf;
	s.o = o;
	s.rep = rep;
	for (i = 0; i < PROTO_SOURCES_MAX; i++)
		s.anchor[i] = -1;
	proto_wr_init(&s.w);
	s.e = malloc(sizeof(*s.e));
	s.buf = malloc(PROTO_CHUNK);
	if (s.e == NULL || s.buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = session_open(&s, why, whylen)) < 0)
		goto out;
	for (i = 0; i < conf->n_sets; i++) {
		rc = sync_set(&s, &conf->sets[i]);
		sender_reset_set(&s);
		if (rc < 0) {
			snprintf(why, whylen, "set %s: %s", conf->sets[i].name,
			    hs_strerror(rc));
			goto out;
		}
	}
	rc = proto_conn_send(s.c, PROTO_T_BYE, NULL, 0, PROTO_RAW, NULL);
	if (rc == HS_OK)
		rc = proto_conn_flush(s.c);
	rep->wire_out = proto_conn_bytes_out(s.c);
	rep->wire_in = proto_conn_bytes_in(s.c);
out:
	sender_reset_set(&s);
	proto_conn_free(s.c);
	proto_wr_free(&s.w);
	free(s.e);
	free(s.buf);
	return rc;
}
