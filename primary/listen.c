/*
 * listen.c - the primary listens too: one child process, forked before
 * any thread exists, owns the `listen` socket and serves one connection
 * at a time.  It answers a probe with this node's HELLO (who is primary,
 * at which epoch, fenced or not) and another primary's session with the
 * same HELLO then an ERROR saying why nothing is replicated.  TLS
 * handshakes never run in the daemon's loop: the child does them, each
 * bounded by a short timeout, and reports every peer's HELLO to the
 * daemon as a fixed-size message over a socketpair; the daemon tells it
 * its current epoch and flags the same way.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prim_int.h"

#define LIS_MAGIC 0x484c4953u /* "HLIS" */
/* One connection's handshake, both ways, at most this long. */
#define LIS_HANDSHAKE_MS 2000
/* A bind that fails is tried again: from 1 s, doubling to 30 s. */
#define LIS_BIND_MIN_MS 1000
#define LIS_BIND_MAX_MS 30000

/* daemon -> child: what this node is now. */
struct lis_state {
	uint32_t magic;
	uint32_t flags; /* PROTO_HELLO_F_FENCED or 0 */
	uint64_t epoch;
};

/* child -> daemon: one peer's HELLO. */
struct lis_report {
	uint32_t magic;
	struct prim_peer peer;
};

struct prim_lis {
	pid_t pid;
	int fd; /* the daemon's end of the socketpair */
};

/* Child: the listening socket on `hostport`, or -errno. */
static int
lis_bind(const char *hostport)
{
	char host[256], portstr[8];
	struct addrinfo hints, *res = NULL;
	uint16_t port;
	int fd, one = 1, rc;

	if (hs_split_hostport(hostport, host, sizeof(host), &port) < 0)
		return HS_ECONFIG;
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -EADDRNOTAVAIL;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 8) < 0) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return rc;
	}
	freeaddrinfo(res);
	return fd;
}

/* Child: the ERROR a primary's session gets after our HELLO. */
static void
lis_refusal(const struct hs_conf *conf, const struct lis_state *st,
            const struct proto_hello *peer, char *buf, size_t len)
{
	const char *tail;

	if (st->flags & PROTO_HELLO_F_FENCED)
		tail = "this node is fenced and needs rejoin";
	else if (peer->epoch < st->epoch)
		tail = "it must rejoin";
	else if (peer->epoch == st->epoch)
		tail = "both claim primary: split brain, nothing replicated";
	else
		tail = "this node steps down and needs rejoin";
	snprintf(buf, len,
	         "%s is the primary at epoch %llu; %s (epoch %llu) runs as "
	         "primary too: %s",
	         conf->node_name, (unsigned long long)st->epoch, peer->name,
	         (unsigned long long)peer->epoch, tail);
}

/* Child: one connection, bounded; its peer's HELLO goes to the daemon. */
static void
lis_serve(const struct hs_conf *conf, struct proto_tls *tls, int fd, int sp,
          const struct lis_state *st)
{
	struct proto_conn *c = NULL;
	struct proto_hello mine, peer;
	struct lis_report r;
	char why[512] = "";
	int rc;

	if ((rc = proto_conn_accept(tls, fd, LIS_HANDSHAKE_MS, &c, why,
	                            sizeof(why))) < 0) {
		hs_log_warnx("primary: listen: connection refused: %s",
		             why[0] ? why : hs_strerror(rc));
		return;
	}
	proto_conn_set_timeout(c, LIS_HANDSHAKE_MS);
	if (proto_hello_recv(c, &peer, why, sizeof(why)) < 0) {
		hs_log_warnx("primary: listen: %s: %s", proto_conn_peer(c),
		             why);
		goto out;
	}
	memset(&r, 0, sizeof(r));
	r.magic = LIS_MAGIC;
	snprintf(r.peer.name, sizeof(r.peer.name), "%s", peer.name);
	r.peer.role = peer.role;
	r.peer.epoch = peer.epoch;
	r.peer.flags = peer.flags;
	/* Never blocked by a daemon busy in a long run: probes go on. */
	(void)send(sp, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", conf->node_name);
	mine.role = HS_ROLE_PRIMARY;
	mine.epoch = st->epoch;
	mine.flags = (uint8_t)st->flags;
	if (proto_hello_send(c, &mine) < 0 ||
	    (peer.flags & PROTO_HELLO_F_PROBE))
		goto out;
	if (peer.role == HS_ROLE_PRIMARY)
		lis_refusal(conf, st, &peer, why, sizeof(why));
	else
		snprintf(why, sizeof(why),
		         "%s is a primary and serves no session; peer %s "
		         "says it is %s",
		         conf->node_name, peer.name, hs_role_name(peer.role));
	proto_conn_send_error(c, why);
out:
	proto_conn_free(c);
}

/* Child: the daemon told a new state; 0 when it has gone (EOF). */
static int
lis_read_state(int sp, struct lis_state *st)
{
	struct lis_state m;
	ssize_t n;

	while ((n = recv(sp, &m, sizeof(m), MSG_DONTWAIT)) == sizeof(m))
		if (m.magic == LIS_MAGIC)
			*st = m;
	return n == 0 ? 0 : 1;
}

static void __attribute__((noreturn))
lis_child(const struct hs_conf *conf, struct proto_tls *tls, int sp,
          const struct lis_state *first)
{
	struct lis_state st = *first;
	struct pollfd pfd[2];
	uint64_t backoff = 0, next_bind = 0, now;
	int lfd = -1, rc, timeout, logged = 0;

	for (;;) {
		now = hs_now_mono_ns();
		if (lfd < 0 && now >= next_bind) {
			if ((lfd = lis_bind(conf->listen)) < 0) {
				rc = lfd;
				backoff = hs_backoff_next(
				    backoff, LIS_BIND_MIN_MS, LIS_BIND_MAX_MS);
				/* One line, then one when it works again. */
				if (!logged++)
					hs_log_warnx(
					    "primary: listen %s: %s; trying "
					    "again (probes and other primaries "
					    "are not answered until then)",
					    conf->listen, hs_strerror(rc));
				next_bind = now + backoff * HS_NS_PER_MS;
			} else {
				hs_log_info("primary: listening on %s for "
				            "probes and other primaries",
				            conf->listen);
				logged = 0;
			}
		}
		timeout = -1;
		if (lfd < 0)
			timeout = (int)((next_bind - now) / HS_NS_PER_MS) + 1;
		pfd[0].fd = sp;
		pfd[0].events = POLLIN;
		pfd[1].fd = lfd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		if (poll(pfd, lfd >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR)
			_exit(1);
		if ((pfd[0].revents & (POLLIN | POLLHUP)) &&
		    !lis_read_state(sp, &st))
			_exit(0);
		if (lfd >= 0 && (pfd[1].revents & POLLIN)) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
				lis_serve(conf, tls, fd, sp, &st);
		}
	}
}

int
prim_lis_start(const struct hs_conf *conf, struct proto_tls *tls,
               uint64_t epoch, int fenced, const int *close_fds, size_t n_close,
               struct prim_lis **out)
{
	struct lis_state st = {LIS_MAGIC, fenced ? PROTO_HELLO_F_FENCED : 0,
	                       epoch};
	struct prim_lis *l;
	pid_t parent = getpid();
	sigset_t none;
	size_t i;
	int sv[2];

	*out = NULL;
	if (conf->listen == NULL || conf->listen[0] == '\0')
		return HS_OK;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		free(l);
		return -errno;
	}
	if ((l->pid = fork()) < 0) {
		close(sv[0]);
		close(sv[1]);
		free(l);
		return -errno;
	}
	if (l->pid == 0) {
		/* If the daemon dies (even by SIGKILL), so does this. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_IGN);
		signal(SIGUSR1, SIG_IGN);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close(sv[0]);
		/* The daemon's tick must never run here. */
		proto_tls_set_tick(tls, NULL, NULL);
		/* The pid file's lock, the control socket: the daemon's. */
		for (i = 0; i < n_close; i++)
			if (close_fds[i] >= 0)
				close(close_fds[i]);
		lis_child(conf, tls, sv[1], &st);
	}
	close(sv[1]);
	l->fd = sv[0];
	*out = l;
	return HS_OK;
}

int
prim_lis_fd(const struct prim_lis *l)
{
	return l != NULL ? l->fd : -1;
}

int
prim_lis_read(struct prim_lis *l, struct prim_peer *peer)
{
	struct lis_report r;
	ssize_t n;

	if (l == NULL)
		return HS_WANT_READ;
	while ((n = recv(l->fd, &r, sizeof(r), MSG_DONTWAIT)) == sizeof(r)) {
		if (r.magic != LIS_MAGIC)
			continue;
		r.peer.name[sizeof(r.peer.name) - 1] = '\0';
		*peer = r.peer;
		return HS_OK;
	}
	return HS_WANT_READ;
}

void
prim_lis_tell(struct prim_lis *l, uint64_t epoch, int fenced)
{
	struct lis_state st = {LIS_MAGIC, fenced ? PROTO_HELLO_F_FENCED : 0,
	                       epoch};

	if (l != NULL)
		(void)send(l->fd, &st, sizeof(st), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void
prim_lis_stop(struct prim_lis *l)
{
	int status;

	if (l == NULL)
		return;
	/* Its end closes first: a child between two polls leaves at EOF. */
	close(l->fd);
	kill(l->pid, SIGTERM);
	while (waitpid(l->pid, &status, 0) < 0 && errno == EINTR)
		;
	free(l);
}
