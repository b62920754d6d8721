/*
 * faultproxy.c - hs-faultproxy, a fault-injecting TCP proxy for the
 * integration tests.
 *
 *	hs-faultproxy LISTEN_PORT TARGET_PORT
 *
 * It listens on 127.0.0.1:LISTEN_PORT and forwards every connection to
 * 127.0.0.1:TARGET_PORT, byte for byte, until told otherwise by a signal:
 *
 *	SIGUSR1	cut: reset every connection (RST, SO_LINGER 0) and reset
 *		each new one at once, until SIGUSR2
 *	SIGUSR2	heal: accept and forward again
 *	SIGHUP	toggle stall: stop moving bytes in either direction but keep
 *		every socket open (no FIN, no RST); a second SIGHUP resumes
 *	SIGWINCH	toggle hold: the target's replies are read but kept
 *		(up to BUF_BYTES per connection), while the client's bytes
 *		still reach the target: a peer that applied what it was
 *		sent, and whose answer is late; a second SIGWINCH lets the
 *		replies through
 *	SIGTERM, SIGINT	exit 0
 *
 * One thread, one poll loop, fixed buffers (BUF_BYTES per direction per
 * connection, at most PAIRS_MAX connections), nothing else: the proxy can
 * neither grow without bound nor block.  Every event goes to stderr as
 * one line starting with "faultproxy:", so a test can follow what
 * happened; the first line says it is listening.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAIRS_MAX 32
#define BUF_BYTES (64 * 1024)

/* One direction of a connection: bytes read from one side, not yet
 * written to the other. */
struct pipe_buf {
	unsigned char data[BUF_BYTES];
	size_t off;
	size_t len;
	int eof;  /* the reading side sent FIN */
	int shut; /* FIN passed on to the writing side */
	unsigned long long total;
};

struct pair {
	int used;
	int id;
	int cfd;              /* the client that connected to us */
	int sfd;              /* our connection to the target */
	int connecting;       /* sfd's connect still in progress */
	struct pipe_buf up;   /* client -> server */
	struct pipe_buf down; /* server -> client */
};

static struct pair pairs[PAIRS_MAX];
static int cut_mode, stall_mode, hold_mode, next_id = 1;
static struct sockaddr_in target;

static void
say(const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(stderr, "faultproxy: [%lld.%03ld] ", (long long)ts.tv_sec,
	        ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Close with RST instead of FIN. */
static void
close_rst(int fd)
{
	struct linger lg;

	if (fd < 0)
		return;
	lg.l_onoff = 1;
	lg.l_linger = 0;
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void
pair_close(struct pair *p, int rst, const char *why)
{
	say("conn %d closed (%s): %llu bytes up, %llu bytes down", p->id, why,
	    p->up.total, p->down.total);
	if (rst) {
		close_rst(p->cfd);
		close_rst(p->sfd);
	} else {
		close(p->cfd);
		if (p->sfd >= 0)
			close(p->sfd);
	}
	p->used = 0;
	p->cfd = p->sfd = -1;
}

static void
on_accept(int lfd)
{
	struct pair *p = NULL;
	int fd, s, one = 1, i;

	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return;
	if (cut_mode) {
		say("connection reset at once: link is cut");
		close_rst(fd);
		return;
	}
	for (i = 0; i < PAIRS_MAX; i++)
		if (!pairs[i].used) {
			p = &pairs[i];
			break;
		}
	if (p == NULL) {
		say("connection reset: %d connections already", PAIRS_MAX);
		close_rst(fd);
		return;
	}
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0) {
		say("socket: %s", strerror(errno));
		close_rst(fd);
		return;
	}
	set_nonblock(fd);
	set_nonblock(s);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(p, 0, sizeof(*p));
	p->used = 1;
	p->id = next_id++;
	p->cfd = fd;
	p->sfd = s;
	if (connect(s, (struct sockaddr *)&target, sizeof(target)) < 0) {
		if (errno != EINPROGRESS) {
			say("conn %d: connect to target: %s", p->id,
			    strerror(errno));
			pair_close(p, 1, "target refused");
			return;
		}
		p->connecting = 1;
	}
	say("conn %d accepted", p->id);
}

/* Read from fd into b; 0 ok, -1 the connection is broken. */
static int
fill(int fd, struct pipe_buf *b)
{
	ssize_t n;

	if (b->len == 0)
		b->off = 0;
	else if (b->off > 0 && b->off + b->len == BUF_BYTES) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	if (b->len >= BUF_BYTES)
		return 0;
	n = read(fd, b->data + b->off + b->len, BUF_BYTES - b->off - b->len);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		b->eof = 1;
	b->len += (size_t)n;
	b->total += (unsigned long long)n;
	return 0;
}

/* Write b's bytes to fd; 0 ok, -1 the connection is broken. */
static int
drain(int fd, struct pipe_buf *b)
{
	ssize_t n;

	if (b->len > 0) {
		n = write(fd, b->data + b->off, b->len);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		b->off += (size_t)n;
		b->len -= (size_t)n;
		if (b->len == 0)
			b->off = 0;
	}
	if (b->len == 0 && b->eof && !b->shut) {
		(void)shutdown(fd, SHUT_WR);
		b->shut = 1;
	}
	return 0;
}

static void
pair_events(struct pair *p, struct pollfd *pc, struct pollfd *ps)
{
	pc->fd = p->cfd;
	ps->fd = p->sfd;
	pc->events = ps->events = 0;
	pc->revents = ps->revents = 0;
	if (stall_mode) {
		/* Ignored by poll: no byte moves, nothing is closed. */
		pc->fd = ps->fd = -1;
		return;
	}
	if (p->connecting) {
		ps->events = POLLOUT;
		pc->fd = -1;
		return;
	}
	if (!p->up.eof && p->up.len < BUF_BYTES)
		pc->events |= POLLIN;
	if (p->up.len > 0 || (p->up.eof && !p->up.shut))
		ps->events |= POLLOUT;
	if (!p->down.eof && p->down.len < BUF_BYTES)
		ps->events |= POLLIN;
	if (!hold_mode && (p->down.len > 0 || (p->down.eof && !p->down.shut)))
		pc->events |= POLLOUT;
}

static void
pair_io(struct pair *p, const struct pollfd *pc, const struct pollfd *ps)
{
	int err = 0;
	socklen_t sl = sizeof(err);

	if (pc->fd < 0 && ps->fd < 0)
		return;
	if (p->connecting) {
		if (ps->revents == 0)
			return;
		if (getsockopt(p->sfd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0 ||
		    err != 0) {
			say("conn %d: connect to target: %s", p->id,
			    strerror(err ? err : errno));
			pair_close(p, 1, "target unreachable");
			return;
		}
		p->connecting = 0;
		return;
	}
	if ((pc->revents & (POLLIN | POLLHUP | POLLERR)) &&
	    fill(p->cfd, &p->up) < 0) {
		pair_close(p, 1, "client reset");
		return;
	}
	if ((ps->revents & (POLLIN | POLLHUP | POLLERR)) &&
	    fill(p->sfd, &p->down) < 0) {
		pair_close(p, 1, "target reset");
		return;
	}
	if (drain(p->sfd, &p->up) < 0) {
		pair_close(p, 1, "target reset");
		return;
	}
	if (!hold_mode && drain(p->cfd, &p->down) < 0) {
		pair_close(p, 1, "client reset");
		return;
	}
	if (p->up.shut && p->down.shut)
		pair_close(p, 0, "both sides done");
}

static void
on_signal(int sfd, int *quit)
{
	struct signalfd_siginfo si;
	int i, n;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGUSR1:
			cut_mode = 1;
			for (i = n = 0; i < PAIRS_MAX; i++)
				if (pairs[i].used) {
					pair_close(&pairs[i], 1, "cut");
					n++;
				}
			say("cut: %d connections reset, new ones refused", n);
			break;
		case SIGUSR2:
			cut_mode = 0;
			say("healed: forwarding again");
			break;
		case SIGHUP:
			stall_mode = !stall_mode;
			say(stall_mode
			        ? "stall: no byte moves, sockets stay open"
			        : "stall over: forwarding again");
			break;
		case SIGWINCH:
			hold_mode = !hold_mode;
			say(hold_mode ? "hold: the target's replies are kept"
			              : "hold over: replies go through again");
			break;
		default:
			*quit = 1;
			break;
		}
	}
}

static int
parse_port(const char *s, unsigned short *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*out = (unsigned short)v;
	return 0;
}

int
main(int argc, char **argv)
{
	struct pollfd pfd[2 + 2 * PAIRS_MAX];
	struct sockaddr_in la;
	unsigned short lport, tport;
	sigset_t mask;
	int lfd, sfd, one = 1, quit = 0, i;

	if (argc != 3 || parse_port(argv[1], &lport) < 0 ||
	    parse_port(argv[2], &tport) < 0) {
		fprintf(stderr, "usage: hs-faultproxy LISTEN_PORT TARGET_PORT\n"
		                "  SIGUSR1 cut (RST), SIGUSR2 heal, "
		                "SIGHUP toggle stall, SIGWINCH toggle hold, "
		                "SIGTERM quit\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGWINCH);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		perror("hs-faultproxy: signalfd");
		return 2;
	}
	memset(&target, 0, sizeof(target));
	target.sin_family = AF_INET;
	target.sin_port = htons(tport);
	target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&la, 0, sizeof(la));
	la.sin_family = AF_INET;
	la.sin_port = htons(lport);
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&la, sizeof(la)) < 0 ||
	    listen(lfd, 16) < 0) {
		perror("hs-faultproxy: listen");
		return 2;
	}
	for (i = 0; i < PAIRS_MAX; i++)
		pairs[i].cfd = pairs[i].sfd = -1;
	say("listening on 127.0.0.1:%u, forwarding to 127.0.0.1:%u", lport,
	    tport);
	while (!quit) {
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = sfd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		for (i = 0; i < PAIRS_MAX; i++) {
			struct pollfd *pc = &pfd[2 + 2 * i], *ps = pc + 1;

			if (pairs[i].used)
				pair_events(&pairs[i], pc, ps);
			else {
				pc->fd = ps->fd = -1;
				pc->events = ps->events = 0;
				pc->revents = ps->revents = 0;
			}
		}
		if (poll(pfd, 2 + 2 * PAIRS_MAX, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("hs-faultproxy: poll");
			return 1;
		}
		if (pfd[1].revents & POLLIN)
			on_signal(sfd, &quit);
		for (i = 0; i < PAIRS_MAX && !quit && !stall_mode; i++)
			if (pairs[i].used)
				pair_io(&pairs[i], &pfd[2 + 2 * i],
				        &pfd[3 + 2 * i]);
		if ((pfd[0].revents & POLLIN) && !quit)
			on_accept(lfd);
	}
	for (i = 0; i < PAIRS_MAX; i++)
		if (pairs[i].used)
			pair_close(&pairs[i], 0, "proxy stopping");
	say("stopped");
	close(lfd);
	close(sfd);
	return 0;
}
