/*
 * standby.c - the standby daemon: listen, and fork one child per
 * connection.  The child runs TLS, the handshake and the session, so a
 * hostile or crashing peer costs one child, never the daemon.  One child
 * at a time holds the session; a connection that arrives meanwhile is
 * authenticated and told `busy`.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_int.h"
#include "idx.h"
#include "syncd.h"

/* Connections being told `busy` at once; more are closed at accept. */
#define BUSY_CHILDREN_MAX 8
/* How long SIGTERM waits for the session child before SIGKILL. */
#define STOP_WAIT_MS 10000

struct stdby {
	const char *conf_path;
	struct hs_conf *conf;
	struct proto_tls *tls;
	int rootfd;
	int lfd;
	int sfd;       /* signalfd */
	int pidfd;     /* locked pid file */
	pid_t session; /* the child holding the session */
	size_t n_busy;
	struct idx_node node;
};

static volatile int child_stop;

static void
child_on_term(int sig)
{
	(void)sig;
	child_stop = 1;
}

static void
session_child(struct stdby *d, int fd, const char *addr, int busy)
{
	struct sigaction sa;
	struct proto_conn *c = NULL;
	struct proto_hello mine, peer;
	char why[512];
	int timeout = (int)d->conf->peer_timeout * 1000, rc;
	sigset_t all;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = child_on_term; /* no SA_RESTART: reads return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	close(d->lfd);
	close(d->sfd);

	rc = proto_conn_accept(d->tls, fd, timeout, &c, why, sizeof(why));
	if (rc < 0) {
		hs_log_warnx("net: %s: connection refused: %s", addr, why);
		_exit(1);
	}
	if ((rc = proto_hello_recv(c, &peer, why, sizeof(why))) < 0) {
		hs_log_warnx("net: %s: handshake failed: %s", addr, why);
		goto out;
	}
	if (peer.role != HS_ROLE_PRIMARY) {
		snprintf(why, sizeof(why),
		         "%s is a standby and serves only a "
		         "primary; peer %s says it is %s",
		         d->conf->node_name, peer.name,
		         hs_role_name(peer.role));
		goto refuse;
	}
	if (peer.epoch < d->node.epoch) {
		snprintf(why, sizeof(why),
		         "peer %s has epoch %llu, older than "
		         "this node's epoch %llu: it is no longer the primary",
		         peer.name, (unsigned long long)peer.epoch,
		         (unsigned long long)d->node.epoch);
		goto refuse;
	}
	if (busy) {
		hs_log_warnx("net: %s: %s told busy: another primary session "
		             "is active",
		             addr, peer.name);
		proto_conn_send(c, PROTO_T_BUSY, NULL, 0, PROTO_RAW, NULL);
		proto_conn_flush(c);
		rc = HS_EBUSY;
		goto out;
	}
	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", d->conf->node_name);
	mine.role = HS_ROLE_STANDBY;
	mine.epoch = d->node.epoch;
	if ((rc = proto_hello_send(c, &mine)) < 0)
		goto out;
	hs_log_info("net: %s: session with primary %s", addr, peer.name);
	/* A primary may pause between sets while it scans and hashes. */
	proto_conn_set_timeout(c, timeout * 10);
	rc = recv_session(d->conf, d->rootfd, c, &child_stop);
	goto out;
refuse:
	hs_log_warnx("net: %s: %s", addr, why);
	proto_conn_send_error(c, why);
	rc = HS_EREFUSED;
out:
	proto_conn_free(c);
	_exit(rc == HS_OK ? 0 : 1);
}

static void
on_accept(struct stdby *d)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[64] = "?", port[8] = "?", addr[80];
	int fd, busy;
	pid_t pid;

	fd = accept4(d->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			hs_log_warn("net: accept");
		return;
	}
	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
	            sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(addr, sizeof(addr), "%s:%s", host, port);
	busy = d->session > 0;
	if (busy && d->n_busy >= BUSY_CHILDREN_MAX) {
		hs_log_warnx("net: %s: dropped: too many waiting connections",
		             addr);
		close(fd);
		return;
	}
	if ((pid = fork()) < 0) {
		hs_log_warn("net: %s: fork", addr);
		close(fd);
		return;
	}
	if (pid == 0)
		session_child(d, fd, addr, busy);
	close(fd);
	if (busy)
		d->n_busy++;
	else
		d->session = pid;
}

static void
reap(struct stdby *d)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == d->session) {
			d->session = 0;
			if (WIFSIGNALED(st))
				hs_log_warnx("standby: session process %d "
				             "killed by signal %d",
				             (int)pid, WTERMSIG(st));
		} else if (d->n_busy > 0)
			d->n_busy--;
	}
}

static void
reload(struct stdby *d)
{
	char err[HS_ERRMSG_MAX];
	struct hs_conf *nc;
	struct proto_tls *nt;

	if (hs_conf_load(d->conf_path, &nc, err, sizeof(err)) < 0) {
		hs_log_errx("standby: reload refused, keeping the running "
		            "configuration: %s",
		            err);
		return;
	}
	if (strcmp(nc->listen, d->conf->listen) != 0 ||
	    strcmp(nc->target_root, d->conf->target_root) != 0)
		hs_log_warnx("standby: listen and target_root changes take "
		             "effect at the next restart");
	if (proto_tls_from_conf(nc, 1, &nt) < 0) {
		hs_log_errx(
		    "standby: reload refused: TLS settings do not load");
		hs_conf_free(nc);
		return;
	}
	proto_tls_free(d->tls);
	d->tls = nt;
	/* Keep the original listen/target_root, which are in use. */
	free(nc->listen);
	nc->listen = hs_xstrdup(d->conf->listen);
	free(nc->target_root);
	nc->target_root = hs_xstrdup(d->conf->target_root);
	hs_conf_free(d->conf);
	d->conf = nc;
	hs_log_info("standby: configuration reloaded");
}

static int
open_listener(const char *hostport, int *out)
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
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		hs_log_errx("standby: listen %s: %s", hostport,
		            gai_strerror(rc));
		return -EADDRNOTAVAIL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	            0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		rc = -errno;
		hs_log_err("standby: listen %s", hostport);
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return rc;
	}
	freeaddrinfo(res);
	*out = fd;
	return HS_OK;
}

/* Remove leftovers of interrupted transfers in every configured source. */
static void
clean_leftovers(struct stdby *d)
{
	size_t i, j, removed = 0;

	for (i = 0; i < d->conf->n_sets; i++) {
		const struct hs_pathset *set = &d->conf->sets[i];

		for (j = 0; j < set->sources.n; j++) {
			const char *s = set->sources.v[j] + 1;
			const char *slash = strrchr(s, '/');
			char parent[PROTO_PATH_MAX + 1];

			snprintf(parent, sizeof(parent), "%.*s",
			         (int)(slash ? slash - s : 0), s);
			fs_clean_tmp(d->rootfd, parent, 0, &removed);
			fs_clean_tmp(d->rootfd, s, 1, &removed);
		}
	}
	if (removed > 0)
		hs_log_info("standby: removed %zu temporary files left by an "
		            "interrupted transfer",
		            removed);
}

static void
stop_session(struct stdby *d)
{
	int i, st;

	if (d->session <= 0)
		return;
	kill(d->session, SIGTERM);
	for (i = 0; i < STOP_WAIT_MS / 50; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};

		if (waitpid(d->session, &st, WNOHANG) == d->session) {
			d->session = 0;
			return;
		}
		nanosleep(&ts, NULL);
	}
	hs_log_warnx("standby: session did not stop in time, killing it");
	kill(d->session, SIGKILL);
	waitpid(d->session, &st, 0);
	d->session = 0;
}

static int
serve(struct stdby *d)
{
	struct pollfd pfd[2];

	pfd[0].fd = d->lfd;
	pfd[0].events = POLLIN;
	pfd[1].fd = d->sfd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(d->sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			switch (si.ssi_signo) {
			case SIGTERM:
			case SIGINT:
				hs_log_info("standby: stopping");
				stop_session(d);
				return HS_OK;
			case SIGHUP:
				reload(d);
				break;
			case SIGCHLD:
				reap(d);
				break;
			}
		}
		if (pfd[0].revents & POLLIN)
			on_accept(d);
	}
}

int
stdby_run(const char *conf_path, struct hs_conf *conf, int foreground)
{
	struct stdby d;
	struct idx *x = NULL;
	sigset_t mask;
	int rc;

	memset(&d, 0, sizeof(d));
	d.conf_path = conf_path;
	d.conf = conf;
	d.rootfd = d.lfd = d.sfd = d.pidfd = -1;
	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		hs_log_err("standby: state_dir %s", conf->state_dir);
		return rc;
	}
	if ((rc = dmn_lock_pidfile(conf->state_dir, &d.pidfd)) < 0)
		return rc;
	if ((rc = idx_open(conf->state_dir, 0, &x)) < 0) {
		hs_log_errx("standby: index in %s: %s", conf->state_dir,
		            hs_strerror(rc));
		goto out;
	}
	rc = idx_node_get(x, &d.node);
	idx_close(x);
	if (rc < 0) {
		hs_log_errx("standby: node state: %s", hs_strerror(rc));
		goto out;
	}
	d.rootfd = open(conf->target_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (d.rootfd < 0) {
		rc = -errno;
		hs_log_err("standby: target_root %s", conf->target_root);
		goto out;
	}
	clean_leftovers(&d);
	if ((rc = proto_tls_from_conf(conf, 1, &d.tls)) < 0)
		goto out;
	if ((rc = open_listener(conf->listen, &d.lfd)) < 0)
		goto out;
	if (!foreground) {
		if ((rc = dmn_detach()) < 0)
			goto out;
		hs_log_init("hamnsync", 0, HS_LOG_INFO);
	}
	dmn_write_pid(d.pidfd);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((d.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		rc = -errno;
		goto out;
	}
	hs_log_info("standby: %s listening on %s, epoch %llu, target_root %s",
	            conf->node_name, conf->listen,
	            (unsigned long long)d.node.epoch, conf->target_root);
	rc = serve(&d);
out:
	if (d.lfd >= 0)
		close(d.lfd);
	if (d.sfd >= 0)
		close(d.sfd);
	if (d.rootfd >= 0)
		close(d.rootfd);
	if (d.pidfd >= 0) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/hamnsync.pid",
		         d.conf->state_dir);
		if (rc == HS_OK)
			unlink(path);
		close(d.pidfd);
	}
	proto_tls_free(d.tls);
	hs_conf_free(d.conf);
	return rc;
}
