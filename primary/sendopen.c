/*
 * sendopen.c - one of our files on its way out: open it (not following
 * it), take what we announce from the open file, tell whether it changed
 * while read, and end it on the wire with its hash or as aborted.  Used
 * by the whole-file, delta and block-patch paths (sendfile.c,
 * sendpatch.c) and by hash comparisons (send.c).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "send_int.h"

int
send_open(struct sender *s, const struct scan_entry *p)
{
	char rel[PROTO_PATH_MAX * 2 + 2];

	if (p->path[0] == '\0')
		snprintf(rel, sizeof(rel), "%s", s->leaf[p->src]);
	else
		snprintf(rel, sizeof(rel), "%s/%s", s->leaf[p->src], p->path);
	return openat(s->anchor[p->src], rel,
	              O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
}

int
send_hash_mine(struct sender *s, const struct scan_entry *p,
               uint8_t h[PROTO_HASH_LEN])
{
	int fd = send_open(s, p), rc;

	if (fd < 0)
		return HS_ENOTFOUND;
	rc = fs_hash_fd(fd, h);
	close(fd);
	return rc;
}

/* Refresh p from the open file, so what we announce is what we send. */
int
send_refresh(struct sender *s, struct scan_entry *p, int fd, struct stat *st)
{
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		send_note(s,
		          "%s: vanished or changed type while "
		          "syncing; skipped",
		          send_show(s, p));
		s->rep->changed_during++;
		return HS_ENOTFOUND;
	}
	/*
	 * The express lane reads only small files: one that grew past the
	 * limit, or past the run's byte budget, is the bulk lane's.
	 */
	if (s->o->max_file_bytes != 0 &&
	    ((uint64_t)st->st_size > s->o->max_file_bytes ||
	     (s->o->max_run_bytes != 0 && s->rep->bytes_sent +
	                                          s->rep->delta_covered +
	                                          (uint64_t)st->st_size >
	                                      s->o->max_run_bytes))) {
		s->rep->left_to_bulk++;
		return HS_ELIMIT;
	}
	p->size = (uint64_t)st->st_size;
	p->mode = st->st_mode & 07777;
	p->uid = st->st_uid;
	p->gid = st->st_gid;
	p->mtime_sec = st->st_mtim.tv_sec;
	p->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	p->ctime_sec = st->st_ctim.tv_sec;
	p->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	p->ino = st->st_ino;
	p->blocks = (uint64_t)st->st_blocks;
	return HS_OK;
}

int
send_changed_since(int fd, const struct stat *st)
{
	struct stat st2;

	return fstat(fd, &st2) < 0 || st2.st_size != st->st_size ||
	       st2.st_mtim.tv_sec != st->st_mtim.tv_sec ||
	       st2.st_mtim.tv_nsec != st->st_mtim.tv_nsec ||
	       st2.st_ctim.tv_sec != st->st_ctim.tv_sec ||
	       st2.st_ctim.tv_nsec != st->st_ctim.tv_nsec;
}

int
send_file_end(struct sender *s, struct scan_entry *p, int changed,
              const uint8_t h[PROTO_HASH_LEN])
{
	uint8_t body[1 + PROTO_HASH_LEN];

	body[0] = changed ? 1 : 0;
	memcpy(body + 1, h, PROTO_HASH_LEN);
	if (changed) {
		send_note(s,
		          "%s: changed while being read; the "
		          "standby keeps its previous copy",
		          send_show(s, p));
		s->rep->changed_during++;
	}
	s->done_files++;
	send_progress(s, 0);
	return proto_conn_send(s->c, PROTO_T_OP_FILE_END, body, sizeof(body),
	                       PROTO_RAW, NULL);
}
