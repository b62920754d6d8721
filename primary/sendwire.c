/*
 * sendwire.c - the bottom of the primary's sender: what every part of a
 * session uses to talk to the standby and to the user.  Messages about
 * a path (send_note, send_show, send_dry), one entry operation on the
 * wire (send_entry), waiting for a reply while the daemon's tick runs
 * (send_recv), and the progress line.  It calls nothing else of the
 * sender: sendopen.c, sendpatch.c, sendfile.c, sendidx.c and send.c sit
 * above it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "send_int.h"

/*
 * The daemon's tick (status, inotify, the express lane) runs at least this
 * often during a long run, counted from the end of the last tick so that
 * the run itself keeps at least this much time between two ticks.
 */
#define SEND_TICK_NS (5ull * 1000 * 1000)
#define SEND_TICK_MS 5
/* An escaped path: "source/rel", each byte as up to five characters. */
#define SHOW_MAX ((PROTO_PATH_MAX * 2 + 2) * 5 + 1)

/*
 * Paths in these lines are escaped (send_show), and so are the standby's
 * error lines before they travel: a control byte left in a line is a
 * peer's forgery, and the whole line is escaped then.
 */
void
send_note(struct sender *s, const char *fmt, ...)
{
	char line[SHOW_MAX + 512], safe[sizeof(line)];
	const char *show = line, *c;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (c = line; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			show = hs_escape(line, safe, sizeof(safe));
			break;
		}
	if (s->o->quiet)
		hs_log_warnx("send: %s", show);
	else
		fprintf(stderr, "hamnsync: %s\n", show);
}

static const char *
path_at(struct sender *s, uint16_t src, const char *rel)
{
	static char buf[PROTO_PATH_MAX * 2 + 2];

	if (rel[0] == '\0')
		snprintf(buf, sizeof(buf), "%s", s->set->sources.v[src]);
	else
		snprintf(buf, sizeof(buf), "%s/%s", s->set->sources.v[src],
		         rel);
	return buf;
}

const char *
send_path(struct sender *s, const struct scan_entry *e)
{
	return path_at(s, e->src, e->path);
}

const char *
send_show_at(struct sender *s, uint16_t src, const char *rel)
{
	/* Each byte may become the five characters \#ooo. */
	static char buf[SHOW_MAX];

	return hs_escape(path_at(s, src, rel), buf, sizeof(buf));
}

const char *
send_show(struct sender *s, const struct scan_entry *e)
{
	return send_show_at(s, e->src, e->path);
}

void
send_dry(struct sender *s, const char *what, const struct scan_entry *e)
{
	if (!s->o->dry_run)
		return;
	if (s->o->dry_cb != NULL)
		s->o->dry_cb(s->o->dry_arg, what, send_path(s, e));
	else
		printf("%-8s %s\n", what, send_show(s, e));
}

int
send_entry(struct sender *s, uint8_t type, const struct scan_entry *se)
{
	static const uint8_t none[PROTO_XHASH_LEN];
	char rel[PROTO_PATH_MAX * 2 + 2];
	int rc;

	scan_to_proto(se, s->e);
	s->xa.len = 0;
	if (type != PROTO_T_OP_DELETE && se->type != PROTO_E_SYMLINK &&
	    memcmp(se->xhash, none, sizeof(none)) != 0) {
		if (se->path[0] == '\0')
			snprintf(rel, sizeof(rel), "%s", s->leaf[se->src]);
		else
			snprintf(rel, sizeof(rel), "%s/%s", s->leaf[se->src],
			         se->path);
		if ((rc = xa_read_at(s->anchor[se->src], rel, &s->xa)) < 0)
			send_note(s,
			          "%s: extended attributes "
			          "unreadable: %s",
			          send_show(s, se), hs_strerror(rc));
		s->e->xattrs = s->xa.data;
		s->e->xattrs_len = (uint32_t)s->xa.len;
	}
	proto_wr_reset(&s->w);
	proto_entry_encode(&s->w, s->e);
	return proto_conn_send_wr(s->c, type, &s->w, PROTO_RAW);
}

static void
send_tick(struct sender *s, uint64_t now)
{
	if (s->o->tick != NULL && now - s->ticked_ns >= SEND_TICK_NS) {
		s->o->tick(s->o->tick_arg);
		s->ticked_ns = hs_now_mono_ns();
	}
}

int
send_recv_within(struct sender *s, struct proto_msg *m, int limit_ms)
{
	uint64_t start = hs_now_mono_ns(), heard;
	uint64_t limit = (uint64_t)limit_ms * HS_NS_PER_MS;
	int rc;

	/* Without a tick there is nothing to do while waiting: block (the
	 * socket's timeout is the same silence). */
	if (s->o->tick == NULL)
		return proto_conn_recv(s->c, m);
	for (;;) {
		if ((rc = proto_conn_wait(s->c, SEND_TICK_MS)) < 0)
			return rc;
		if (rc > 0)
			return proto_conn_recv(s->c, m);
		send_tick(s, hs_now_mono_ns());
		/* An ALIVE (skipped by the wait) starts the silence again. */
		heard = proto_conn_last_rx(s->c);
		if (heard < start)
			heard = start;
		if (hs_now_mono_ns() - heard >= limit)
			return HS_ETIMEOUT;
	}
}

int
send_recv(struct sender *s, struct proto_msg *m)
{
	return send_recv_within(s, m, s->timeout_ms);
}

void
send_progress(struct sender *s, int final)
{
	uint64_t now = hs_now_mono_ns(), el;
	double rate, eta;

	send_tick(s, now);
	if (!s->o->progress || s->o->dry_run)
		return;
	if (!final && now - s->shown_ns < 250000000ull)
		return;
	s->shown_ns = now;
	el = now - s->start_ns;
	rate = el ? (double)s->done_bytes * 1e9 / (double)el : 0;
	eta = rate > 0 && s->todo_bytes > s->done_bytes
	          ? (double)(s->todo_bytes - s->done_bytes) / rate
	          : 0;
	printf("\r%8llu/%llu files %10.1f/%.1f MiB %8.1f MiB/s ETA %3d:%02d ",
	       (unsigned long long)s->done_files,
	       (unsigned long long)s->todo_files,
	       (double)s->done_bytes / 1048576.0,
	       (double)s->todo_bytes / 1048576.0, rate / 1048576.0,
	       (int)(eta / 60), (int)eta % 60);
	if (final)
		putchar('\n');
	fflush(stdout);
}

double
send_session_progress(const struct sender *s)
{
	if (s->todo_bytes == 0)
		return 0.0;
	return s->done_bytes >= s->todo_bytes
	           ? 1.0
	           : (double)s->done_bytes / (double)s->todo_bytes;
}
