/*
 * standby.c - the standby daemon: listen, and fork one child per
 * connection.  The child runs TLS, the handshake and the session, so a
 * hostile or crashing peer costs one child, never the daemon.  One child
 * at a time holds the session; a connection that arrives meanwhile is
 * authenticated and told `busy`.  The primary holding the session may
 * open one more, its express lane (HELLO flag PROTO_HELLO_F_EXPRESS):
 * small changes applied while the session streams a big file.  The two
 * children write the same tree with temporary names of their own.
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
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dbrepl.h"
#include "idx.h"
#include "ctl.h"
#include "stdby_int.h"

/*
 * Connections served at once (one session, the rest authenticating or
 * being told busy); more are closed at accept.  The session slot is given
 * only after TLS and HELLO, so an unauthenticated client cannot take it.
 */
#define CHILDREN_MAX 16
/* A child asks for a session slot with a struct claim. */
#define CLAIM_MSG 0x434c414du /* "CLAM" */
#define CLAIM_WAIT_MS 2000
/* How long SIGTERM waits for the session child before SIGKILL. */
#define STOP_WAIT_MS 10000
/* Drift copies counted for status, at most (a bounded walk). */
#define DRIFT_REPORT_MAX 10000

/* One forked connection: its pid and our end of its socketpair. */
struct child {
	pid_t pid;
	int fd;
	int hup;          /* its end closed: not polled until it is reaped */
	uint64_t db_runs; /* its last report's runs of databases' sets */
};

/* What a child asks for: the session, or the express lane beside it. */
struct claim {
	uint32_t magic; /* CLAIM_MSG */
	uint8_t express;
	uint64_t epoch;                   /* the primary's, from its HELLO */
	char primary[PROTO_NODE_MAX + 1]; /* the authenticated peer's name */
};

/*
 * The daemon's answer to a claim.  A fence (verb `fence`) may come after
 * the child was forked: the answer carries the node state the claim was
 * judged by, so that a refused child names the epoch that refused it.
 */
enum grant_answer {
	GRANT_BUSY = 0,   /* the slot is taken */
	GRANT_OK = 1,     /* the slot is the child's */
	GRANT_FENCED = 2, /* that primary's epoch is fenced: refuse it */
};
struct grant {
	uint8_t answer; /* enum grant_answer */
	uint32_t flags; /* IDX_NODE_F_* of this node */
	uint64_t epoch; /* this node's epoch */
};

struct stdby {
	const char *conf_path;
	struct hs_conf *conf;
	struct proto_tls *tls;
	int rootfd;
	int lfd;
	int sfd;                /* signalfd */
	int pidfd;              /* locked pid file */
	pid_t session;          /* the child holding the session */
	pid_t express;          /* the child holding the express lane */
	uint64_t session_epoch; /* the epochs their primaries claimed */
	uint64_t express_epoch;
	pid_t fenced[2]; /* session, express lane: told to end by a fence */
	int switching;   /* verb `role` found the role primary: stop, switch */
	char session_peer[PROTO_NODE_MAX + 1];
	char express_peer[PROTO_NODE_MAX + 1];
	/*
	 * Why the last primary was refused as fenced, for status; "" once a
	 * primary is given the session.
	 */
	char refused[512];
	int clean_due; /* a session died mid-file while the other lived */
	struct child kids[CHILDREN_MAX]; /* connections being served */
	size_t n_kids;
	struct idx_node node;
	/* For status. */
	struct idx *x;
	int cfd;                /* control socket */
	struct recv_report rep; /* the last one */
	int heard;              /* a primary was ever heard */
	uint64_t started_ns;
	uint64_t last_save_ns;
	struct st_saved saved; /* the status last saved */
	uint64_t last_metrics_ns;
	struct st_counters cnt;
	struct recv_report base; /* totals of finished sessions */
	uint64_t sessions;
	struct dbr *dbr; /* the databases' snapshots (dbrepl.h) */
};

static volatile int child_stop;

static void
child_on_term(int sig)
{
	(void)sig;
	child_stop = 1;
}

/*
 * Ask the daemon for a session slot: GRANT_OK, GRANT_BUSY (also when the
 * daemon does not answer), or GRANT_FENCED with the daemon's node state
 * in *node.
 */
static int
claim_session(int fd, int express, const struct proto_hello *peer,
              struct idx_node *node)
{
	struct claim msg;
	struct pollfd pfd = {fd, POLLIN, 0};
	struct grant g;

	memset(&msg, 0, sizeof(msg));
	msg.magic = CLAIM_MSG;
	msg.express = express ? 1 : 0;
	msg.epoch = peer->epoch;
	snprintf(msg.primary, sizeof(msg.primary), "%s", peer->name);
	if (send(fd, &msg, sizeof(msg), 0) != sizeof(msg) ||
	    poll(&pfd, 1, CLAIM_WAIT_MS) != 1 ||
	    recv(fd, &g, sizeof(g), 0) != sizeof(g))
		return GRANT_BUSY;
	if (g.answer == GRANT_FENCED) {
		node->epoch = g.epoch;
		node->flags = g.flags;
	}
	return g.answer;
}

/* Our own HELLO: role standby and this node's epoch. */
static void
stdby_hello(const struct stdby *d, const struct idx_node *node,
            struct proto_hello *mine)
{
	memset(mine, 0, sizeof(*mine));
	mine->magic = PROTO_MAGIC;
	mine->version = PROTO_VERSION;
	snprintf(mine->name, sizeof(mine->name), "%s", d->conf->node_name);
	mine->role = HS_ROLE_STANDBY;
	mine->epoch = node->epoch;
}

/*
 * Is primary `peer` (at `peer_epoch`) fenced by `node`, this node's state?
 * A lower epoch than ours is, and while a promote is under way every
 * primary is.  1 with why[] filled.
 */
static int
stdby_fenced(const struct stdby *d, const struct idx_node *node,
             const char *peer, uint64_t peer_epoch, char *why, size_t whylen)
{
	if (node->flags & IDX_NODE_F_PROMOTING) {
		snprintf(why, whylen,
		         "%s is being promoted at epoch %llu: primary %s "
		         "(epoch %llu) is refused",
		         d->conf->node_name, (unsigned long long)node->epoch,
		         peer, (unsigned long long)peer_epoch);
		return 1;
	}
	if (peer_epoch < node->epoch) {
		snprintf(why, whylen,
		         "peer %s has epoch %llu, older than "
		         "this node's epoch %llu: it is no longer the primary",
		         peer, (unsigned long long)peer_epoch,
		         (unsigned long long)node->epoch);
		return 1;
	}
	return 0;
}

/*
 * Answer a probe (PROTO_HELLO_F_PROBE): our HELLO, then close.  It
 * claims no slot, so a standby busy with a session answers too.
 */
static int
answer_probe(const struct stdby *d, struct proto_conn *c, const char *addr,
             const struct proto_hello *peer)
{
	struct proto_hello mine;
	int rc;

	stdby_hello(d, &d->node, &mine);
	hs_log_info("net: %s: probe from %s (%s, epoch %llu): answered as "
	            "standby, epoch %llu",
	            addr, peer->name, hs_role_name(peer->role),
	            (unsigned long long)peer->epoch,
	            (unsigned long long)d->node.epoch);
	if ((rc = proto_hello_send(c, &mine)) < 0)
		hs_log_warnx("net: %s: probe answer: %s", addr,
		             hs_strerror(rc));
	return rc;
}

/*
 * Our primary drained, released its identity and hands over
 * (PROTO_HELLO_F_HANDOVER): this node's own `hamnsync promote --force`
 * takes over, started on its own.  Only from our configured peer, as
 * the primary of our epoch, and not once a promote has fenced (a
 * promote refused before is resumed by this one, with --force).
 */
static void
handover(const struct stdby *d, const struct idx_node *node,
         const struct proto_hello *peer, const char *addr)
{
	static const char *const args[] = {"promote", "--force", NULL};
	char out[4200];
	pid_t pid;

	if (peer->role != HS_ROLE_PRIMARY || peer->epoch != node->epoch ||
	    (peer->flags & PROTO_HELLO_F_FENCED) ||
	    (node->flags & IDX_NODE_F_PROMOTING) ||
	    (d->conf->peer_name != NULL &&
	     strcmp(peer->name, d->conf->peer_name) != 0)) {
		hs_log_warnx("net: %s: %s (%s, epoch %llu) hands over: "
		             "refused: this node expects its primary %s at "
		             "epoch %llu%s",
		             addr, peer->name, hs_role_name(peer->role),
		             (unsigned long long)peer->epoch,
		             d->conf->peer_name ? d->conf->peer_name : "",
		             (unsigned long long)node->epoch,
		             (node->flags & IDX_NODE_F_PROMOTING)
		                 ? ", and a promote is under way"
		                 : "");
		return;
	}
	snprintf(out, sizeof(out), "%s/promote", d->conf->state_dir);
	(void)mkdir(out, 0700);
	snprintf(out, sizeof(out), "%s/promote/promote.out",
	         d->conf->state_dir);
	if ((pid = hs_spawn_self(d->conf_path, args, out)) < 0) {
		hs_log_errx("net: %s: %s hands over: cannot start `hamnsync "
		            "promote --force`: %s",
		            addr, peer->name, hs_strerror(pid));
		return;
	}
	hs_log_info("net: %s: %s hands over: `hamnsync promote --force` "
	            "started (pid %d), its output in %s",
	            addr, peer->name, (int)pid, out);
}

static void
session_child(struct stdby *d, int fd, const char *addr, int myfd, pid_t parent)
{
	struct sigaction sa;
	struct proto_conn *c = NULL;
	struct proto_hello mine, peer;
	struct idx_node node = d->node;
	char why[512];
	int timeout = (int)d->conf->peer_timeout * 1000, rc, express, g;
	sigset_t all;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = child_on_term; /* no SA_RESTART: reads return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* If the daemon dies (even by SIGKILL), this session stops too. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	close(d->lfd);
	close(d->sfd);
	close(d->pidfd); /* the daemon's lock must die with the daemon */
	if (d->cfd >= 0)
		close(d->cfd);
	for (size_t i = 0; i < d->n_kids; i++)
		close(d->kids[i].fd);

	rc = proto_conn_accept(d->tls, fd, timeout, &c, why, sizeof(why));
	if (rc < 0) {
		hs_log_warnx("net: %s: connection refused: %s", addr, why);
		_exit(1);
	}
	if ((rc = proto_hello_recv(c, &peer, why, sizeof(why))) < 0) {
		hs_log_warnx("net: %s: handshake failed: %s", addr, why);
		goto out;
	}
	if (peer.flags & PROTO_HELLO_F_PROBE) {
		rc = answer_probe(d, c, addr, &peer);
		if (rc == HS_OK && (peer.flags & PROTO_HELLO_F_HANDOVER))
			handover(d, &node, &peer, addr);
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
	/*
	 * The daemon judges the fence (grant_slot), with the node state as
	 * it stands now, and keeps the refusal for status.
	 */
	express = (peer.flags & PROTO_HELLO_F_EXPRESS) != 0;
	g = claim_session(myfd, express, &peer, &node);
	if (g == GRANT_FENCED &&
	    stdby_fenced(d, &node, peer.name, peer.epoch, why, sizeof(why)))
		goto fenced;
	if (g != GRANT_OK) {
		hs_log_warnx("net: %s: %s told busy: %s", addr, peer.name,
		             express ? "an express lane needs that primary's "
		                       "session and no other express lane"
		                     : "another primary session is active");
		proto_conn_send(c, PROTO_T_BUSY, NULL, 0, PROTO_RAW, NULL);
		proto_conn_flush(c);
		rc = HS_EBUSY;
		goto out;
	}
	stdby_hello(d, &node, &mine);
	mine.flags = peer.flags & PROTO_HELLO_F_ALIVE;
	if ((rc = proto_hello_send(c, &mine)) < 0)
		goto out;
	hs_log_info("net: %s: %s with primary %s", addr,
	            express ? "express lane" : "session", peer.name);
	/*
	 * A primary may pause between sets while it scans and hashes, and
	 * read nothing while it walks its own tree: our listing, sent as we
	 * walk ours, then waits on a closed window.  Both are allowed the
	 * same time (the primary's heartbeats and timeouts judge the link).
	 */
	proto_conn_set_timeout(c, timeout * 10);
	proto_conn_set_stall_timeout(c, timeout * 10);
	/*
	 * A primary that says ALIVE while it works is gone once silent for
	 * peer_timeout (frozen, hung, or its link stalled): the session
	 * ends and the slot is free for it when it comes back.
	 */
	if (peer.flags & PROTO_HELLO_F_ALIVE) {
		proto_conn_set_read_timeout(c, timeout);
		if ((rc = proto_conn_keepalive(c, (int)d->conf->heartbeat *
		                                      1000)) < 0) {
			hs_log_warnx("net: %s: keepalive: %s", addr,
			             hs_strerror(rc));
			goto out;
		}
	}
	rc = recv_session(d->conf, d->rootfd, c, &child_stop, myfd, &peer);
	goto out;
fenced:
	/*
	 * Our HELLO first, so that the fenced primary learns the newer
	 * epoch (and steps down), then the ERROR that says why.
	 */
	stdby_hello(d, &node, &mine);
	proto_hello_send(c, &mine);
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
	pid_t pid, parent = getpid();
	int fd, sv[2];

	fd = accept4(d->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			hs_log_warn("net: accept");
		return;
	}
	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
	            sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(addr, sizeof(addr), "%s:%s", host, port);
	if (d->n_kids >= CHILDREN_MAX) {
		hs_log_warnx("net: %s: dropped: %d connections already being "
		             "served",
		             addr, CHILDREN_MAX);
		close(fd);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		hs_log_warn("net: %s: socketpair", addr);
		close(fd);
		return;
	}
	if ((pid = fork()) < 0) {
		hs_log_warn("net: %s: fork", addr);
		close(fd);
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		session_child(d, fd, addr, sv[1], parent);
	}
	close(fd);
	close(sv[1]);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	d->kids[d->n_kids].pid = pid;
	d->kids[d->n_kids].fd = sv[0];
	d->kids[d->n_kids].hup = 0;
	d->kids[d->n_kids].db_runs = 0;
	d->n_kids++;
}

static void clean_leftovers(struct stdby *d);

/*
 * Give child `pid` the slot it claims (GRANT_OK), or not (GRANT_BUSY), or
 * refuse its primary as fenced (GRANT_FENCED, why in d->refused).  The
 * session goes to one primary at a time; its express lane only to the
 * primary holding the session, one at a time: a third connection, or
 * another primary, is told busy.
 */
static uint8_t
grant_slot(struct stdby *d, pid_t pid, struct claim *c)
{
	struct idx_node n;

	c->primary[sizeof(c->primary) - 1] = '\0';
	/*
	 * A newer primary's epoch is stored before its session begins, and
	 * checked against the index, not only what this process last read:
	 * a promote of this node must raise the epoch above the primary it
	 * replicated from even when that primary is gone, and a promote that
	 * stored its fence a moment ago wins.
	 */
	if (!c->express && c->epoch > d->node.epoch &&
	    !(d->node.flags & IDX_NODE_F_PROMOTING)) {
		int rc = idx_node_adopt(d->x, c->epoch, &n);

		if (rc < 0 && rc != HS_EREFUSED) {
			hs_log_errx("standby: node state in %s: %s",
			            d->conf->state_dir, hs_strerror(rc));
			return GRANT_BUSY;
		}
		if (n.epoch != d->node.epoch)
			hs_log_info("standby: epoch %llu, from primary %s",
			            (unsigned long long)n.epoch, c->primary);
		d->node = n;
	}
	if (stdby_fenced(d, &d->node, c->primary, c->epoch, d->refused,
	                 sizeof(d->refused)))
		return GRANT_FENCED;
	if (c->express) {
		if (d->express != 0 || d->session == 0 ||
		    strcmp(d->session_peer, c->primary) != 0)
			return 0;
	} else if (d->session != 0 ||
	           (d->express != 0 && strcmp(d->express_peer, c->primary)))
		return 0;
	/* Temporaries of a killed child go once no other child writes. */
	if (d->clean_due && d->session == 0 && d->express == 0) {
		clean_leftovers(d);
		d->clean_due = 0;
	}
	if (c->express) {
		d->express = pid;
		d->express_epoch = c->epoch;
		snprintf(d->express_peer, sizeof(d->express_peer), "%s",
		         c->primary);
		return 1;
	}
	d->session = pid;
	d->session_epoch = c->epoch;
	d->refused[0] = '\0';
	snprintf(d->session_peer, sizeof(d->session_peer), "%s", c->primary);
	if (d->sessions++ > 0)
		d->cnt.reconnects++;
	/* Past sessions' counters: totals only grow. */
	d->base.applied_total += d->rep.applied_total;
	d->base.errors_total += d->rep.errors_total;
	d->base.bytes_in += d->rep.bytes_in;
	d->base.bytes_out += d->rep.bytes_out;
	d->rep.applied_total = d->rep.errors_total = 0;
	d->rep.bytes_in = d->rep.bytes_out = 0;
	/*
	 * Whether we hold all the primary has is for this session to say:
	 * a restarted primary first compares, then sends what it finds.
	 */
	d->rep.in_sync = 0;
	d->rep.lag_ms = UINT64_MAX;
	return 1;
}

/*
 * A session's report names the sets that failed in that session only: a
 * new one starts knowing of none.  The sets named before stay named (as
 * room allows) until the primary says it is caught up, or a run of the
 * new session reconciles the whole set with no error: until then the
 * copy here still misses what failed.
 */
static void
failed_carry(const struct recv_report *old, struct recv_report *rep)
{
	size_t i, j;

	if (rep->in_sync)
		return;
	rep->failed_more |= old->failed_more;
	for (i = 0; i < old->n_failed && i < RECV_FAILED_SETS; i++) {
		for (j = 0; j < rep->n_failed; j++)
			if (strcmp(rep->failed[j].set, old->failed[i].set) == 0)
				break;
		if (j < rep->n_failed ||
		    strcmp(old->failed[i].set, rep->whole_set) == 0)
			continue;
		if (rep->n_failed < RECV_FAILED_SETS)
			rep->failed[rep->n_failed++] = old->failed[i];
		else
			rep->failed_more = 1;
	}
}

/*
 * Child k (the session or its express lane) wrote into a database's
 * set: the manager looks at the snapshot folders again.
 */
static void
db_touched(struct stdby *d, size_t k, const struct recv_report *rep)
{
	size_t i;

	if (rep->db_runs == d->kids[k].db_runs)
		return;
	d->kids[k].db_runs = rep->db_runs;
	for (i = 0; i < d->conf->n_sets; i++)
		if (d->conf->sets[i].db != NULL)
			dbr_touched(d->dbr, d->conf->sets[i].name);
}

/* A message from child k: a claim for a slot, or a report. */
static void
on_child(struct stdby *d, size_t k)
{
	union {
		struct claim claim;
		struct recv_report rep;
	} m;
	ssize_t n;

	while ((n = recv(d->kids[k].fd, &m, sizeof(m), 0)) > 0) {
		if (n == sizeof(struct claim) && m.claim.magic == CLAIM_MSG) {
			struct grant g;

			memset(&g, 0, sizeof(g));
			g.answer = grant_slot(d, d->kids[k].pid, &m.claim);
			g.flags = d->node.flags;
			g.epoch = d->node.epoch;
			send(d->kids[k].fd, &g, sizeof(g), MSG_DONTWAIT);
			continue;
		}
		if (n == sizeof(struct recv_report))
			db_touched(d, k, &m.rep);
		if (n == sizeof(struct recv_report) &&
		    d->kids[k].pid == d->session) {
			failed_carry(&d->rep, &m.rep);
			d->rep = m.rep;
			d->heard = 1;
		}
	}
}

/*
 * Child k ended with wait status `st`: its last report, its slot, and
 * the temporaries it may have left.
 */
static void
reaped(struct stdby *d, size_t k, int st)
{
	pid_t pid = d->kids[k].pid;

	on_child(d, k); /* its last report */
	close(d->kids[k].fd);
	for (size_t i = 0; i < 2; i++)
		if (d->fenced[i] == pid)
			d->fenced[i] = 0; /* its pid may come back */
	d->kids[k] = d->kids[--d->n_kids];
	if (pid == d->express)
		d->express = 0;
	else if (pid == d->session)
		d->session = 0;
	else
		return;
	if (WIFSIGNALED(st)) {
		/* Killed mid-file: do not leave its temporary there. */
		hs_log_warnx("standby: session process %d killed by "
		             "signal %d; removing its temporary files%s",
		             (int)pid, WTERMSIG(st),
		             d->session || d->express
		                 ? " once the other session ends"
		                 : "");
		d->clean_due = 1;
	}
	/* Not while the other child writes: its temporaries live. */
	if (d->clean_due && d->session == 0 && d->express == 0) {
		clean_leftovers(d);
		d->clean_due = 0;
	}
}

/*
 * Reap our connection children, each by its pid: the database manager
 * reaps its own job children (dbrepl.h).
 */
static void
reap(struct stdby *d)
{
	size_t k = 0;
	int st;

	while (k < d->n_kids) {
		if (waitpid(d->kids[k].pid, &st, WNOHANG) == d->kids[k].pid)
			reaped(d, k, st); /* k now holds another child */
		else
			k++;
	}
}

static void
reload(struct stdby *d)
{
	char err[HS_ERRMSG_MAX], why[512];
	struct hs_conf *nc;
	struct proto_tls *nt;
	struct dbr *nd;
	int rc;

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
	if (proto_tls_from_conf(nc, &nt, why, sizeof(why)) < 0) {
		hs_log_errx("standby: reload refused: %s", why);
		hs_conf_free(nc);
		return;
	}
	if ((rc = dbr_open(nc, DBR_STANDBY, &nd)) < 0) {
		hs_log_errx("standby: reload refused: databases: %s",
		            hs_strerror(rc));
		proto_tls_free(nt);
		hs_conf_free(nc);
		return;
	}
	proto_tls_free(d->tls);
	d->tls = nt;
	/*
	 * The databases start again with the new configuration: a restore
	 * under way is killed, and made again from the good snapshot.
	 */
	dbr_free(d->dbr);
	d->dbr = nd;
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

/* The same in state_dir/db/NAME, where a database's set is written. */
static void
clean_db_leftovers(struct stdby *d, const struct hs_database *db,
                   size_t *removed)
{
	char dir[PROTO_PATH_MAX + 8];
	int fd;

	snprintf(dir, sizeof(dir), "%s/db", d->conf->state_dir);
	if ((fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	fs_clean_tmp(fd, db->name, 1, removed);
	close(fd);
}

/* Remove leftovers of interrupted transfers in every configured source. */
static void
clean_leftovers(struct stdby *d)
{
	size_t i, j, removed = 0;

	for (i = 0; i < d->conf->n_sets; i++) {
		const struct hs_pathset *set = &d->conf->sets[i];

		/* Not below target_root: a database's folder is ours. */
		if (set->db != NULL) {
			clean_db_leftovers(d, set->db, &removed);
			continue;
		}
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
stop_child(pid_t *pid)
{
	int i, st;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (i = 0; i < STOP_WAIT_MS / 50; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};

		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			return;
		}
		nanosleep(&ts, NULL);
	}
	hs_log_warnx("standby: session did not stop in time, killing it");
	kill(*pid, SIGKILL);
	waitpid(*pid, &st, 0);
	*pid = 0;
}

static void
stop_session(struct stdby *d)
{
	stop_child(&d->express);
	stop_child(&d->session);
}

/*
 * Before this process runs as primary: every connection child, the
 * sessions first (they finish the message in hand), each reaped by its
 * pid, so that none outlives the role that forked it.
 */
static void
stop_children(struct stdby *d)
{
	pid_t session = d->session, express = d->express;
	size_t k;
	int st;

	stop_session(d);
	for (k = 0; k < d->n_kids; k++) {
		pid_t pid = d->kids[k].pid;

		/*
		 * The others hold no slot and write nothing (authenticating,
		 * or telling a primary busy or refused): killed at once.
		 */
		if (pid != session && pid != express) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
		close(d->kids[k].fd);
	}
	d->n_kids = 0;
}

static void
read_reports(struct stdby *d)
{
	size_t k;

	for (k = 0; k < d->n_kids; k++)
		on_child(d, k);
}

/*
 * Sets whose paths failed to apply here: each is in error, and the
 * standby is not ready, saying which paths and why (text in why[]).
 */
static void
stdby_status_failed(struct stdby *d, struct st_view *v, struct st_path *paths,
                    char why[][768])
{
	static char more[160];
	const struct recv_failed *f;
	size_t i, k;

	for (k = 0; k < d->rep.n_failed && k < RECV_FAILED_SETS; k++) {
		f = &d->rep.failed[k];
		for (i = 0; i < v->n_paths; i++)
			if (strcmp(paths[i].name, f->set) == 0)
				paths[i].state = "error";
		if (f->errors == 0)
			snprintf(
			    why[k], 768,
			    "set %.64s refused on this standby (%s): %.255s",
			    f->set, d->conf->node_name, f->why);
		else
			snprintf(why[k], 768,
			         "%llu paths of set %.64s failed to apply on "
			         "this standby (%s): %.255s (first: %.255s)",
			         (unsigned long long)f->errors, f->set,
			         d->conf->node_name, f->why, f->first);
		st_warn(v, "warning", "%s", why[k]);
		v->ready = 0;
		if (v->n_reasons < ST_REASONS_MAX)
			v->reasons[v->n_reasons++] = why[k];
	}
	if (!d->rep.failed_more)
		return;
	snprintf(more, sizeof(more),
	         "more sets than those named failed to apply on this standby "
	         "(%s); its log names them",
	         d->conf->node_name);
	st_warn(v, "warning", "%s", more);
	v->ready = 0;
	if (v->n_reasons < ST_REASONS_MAX)
		v->reasons[v->n_reasons++] = more;
}

/*
 * A full or nearly full disk, said once per filesystem: target_root and
 * state_dir often share one, and two warnings would read as two problems.
 */
static void
stdby_status_disks(struct stdby *d, struct st_view *v)
{
	char both[PROTO_PATH_MAX + 64];
	struct stat root, state;

	if (stat(d->conf->target_root, &root) == 0 &&
	    stat(d->conf->state_dir, &state) == 0 &&
	    root.st_dev == state.st_dev) {
		snprintf(both, sizeof(both), "state_dir %s and target_root",
		         d->conf->state_dir);
		st_warn_disk(v, both, d->conf->target_root);
		return;
	}
	st_warn_disk(v, "target_root", d->conf->target_root);
	st_warn_disk(v, "state_dir", d->conf->state_dir);
}

/*
 * Why no primary replicates here though one may be connected: a promote
 * under way, the session a fence is ending, or the last primary refused
 * as fenced.  Not ready then, with that reason first; 1 when one was
 * given.
 */
static int
stdby_status_fence(struct stdby *d, struct st_view *v)
{
	static char why[640];

	if (d->node.flags & IDX_NODE_F_PROMOTING) {
		snprintf(why, sizeof(why),
		         "promote in progress on %s: fenced at epoch %llu, "
		         "every primary is refused until it runs as primary",
		         d->conf->node_name, (unsigned long long)d->node.epoch);
		st_warn(v, "warning", "%s", why);
	} else if (d->session > 0 && d->session == d->fenced[0])
		snprintf(why, sizeof(why),
		         "the session of primary %s (epoch %llu) is being "
		         "ended by a fence: this node's epoch is %llu",
		         d->session_peer, (unsigned long long)d->session_epoch,
		         (unsigned long long)d->node.epoch);
	else if (d->session == 0 && d->refused[0] != '\0') {
		snprintf(why, sizeof(why), "primary refused: %.500s",
		         d->refused);
		st_warn(v, "warning", "%s", why);
	} else
		return 0;
	v->ready = 0;
	if (v->n_reasons < ST_REASONS_MAX)
		v->reasons[v->n_reasons++] = why;
	return 1;
}

static json_t *
stdby_status(struct stdby *d)
{
	static char since[80];
	static char failed[RECV_FAILED_SETS][768];
	struct st_view v;
	struct st_path paths[64];
	uint64_t now = hs_now_mono_ns(), silent_ns = 0;
	uint64_t timeout_ns = d->conf->peer_timeout * 1000000000ull;
	uint64_t drifted;
	size_t i;
	int live, fresh, explained;

	read_reports(d);
	memset(&v, 0, sizeof(v));
	v.conf = d->conf;
	v.role = "standby";
	v.epoch = d->node.epoch;
	v.running = 1;
	v.peer_epoch = -1;
	v.last_heard = -1;
	v.lag = -1;
	v.files_pending = -1;
	v.bytes_pending = -1;
	v.last_applied_unix = d->heard ? d->rep.applied_wall : -1;
	v.rpo = -1;
	if (d->heard) {
		silent_ns = now - d->rep.heard_ns;
		v.peer_name = d->rep.primary;
		v.peer_role = "primary";
		v.peer_epoch = (int64_t)d->rep.epoch;
		v.last_heard = (double)silent_ns / 1e9;
		if (d->rep.lag_ms != UINT64_MAX) {
			v.lag = (double)d->rep.lag_ms / 1e3;
			v.files_pending = (int64_t)d->rep.pending;
			v.rpo = v.last_heard + v.lag;
		}
	}
	live = d->heard && d->session > 0 && silent_ns <= timeout_ns;
	/* A session a fence is ending, or any while promoting, is not ours. */
	fresh = live && d->session != d->fenced[0] &&
	        !(d->node.flags & IDX_NODE_F_PROMOTING);
	v.peer_state = live             ? "connected"
	               : d->session > 0 ? "silent"
	                                : "disconnected";
	/* A database's set is the database in `databases`. */
	for (i = 0; i < d->conf->n_sets && v.n_paths < 64; i++) {
		struct st_path *ps = &paths[v.n_paths];

		if (d->conf->sets[i].db != NULL)
			continue;
		ps->name = d->conf->sets[i].name;
		ps->files = -1;
		ps->bytes = -1;
		ps->progress = 1.0;
		ps->state = fresh && d->rep.in_sync ? "in-sync" : "catching-up";
		v.n_paths++;
	}
	v.paths = paths;
	v.ready = fresh && d->rep.in_sync && d->rep.lag_ms == 0;
	explained = stdby_status_fence(d, &v);
	if (!d->heard) {
		if (!explained)
			v.reasons[v.n_reasons++] = "no primary heard since "
			                           "the standby started";
		if (now - d->started_ns > timeout_ns)
			st_warn(&v, "critical", "no primary heard for %.0f s",
			        (double)(now - d->started_ns) / 1e9);
	} else if (!fresh) {
		time_t t = (time_t)(st_wall_now() - (double)silent_ns / 1e9);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(since, sizeof(since),
		         "primary unreachable since %Y-%m-%dT%H:%M:%SZ", &tm);
		if (!explained)
			v.reasons[v.n_reasons++] = since;
		/* CRITICAL only once gone longer than peer_timeout. */
		if (silent_ns > timeout_ns)
			st_warn(&v, "critical",
			        "primary %s silent for %.0f s "
			        "(peer_timeout %llu s)",
			        d->rep.primary, (double)silent_ns / 1e9,
			        (unsigned long long)d->conf->peer_timeout);
	} else if (d->rep.n_failed == 0) {
		/*
		 * Failed paths are the reason then: said below.  STATE does
		 * not say why the primary is not in sync; with no lag and
		 * nothing pending, no change is in flight (a held deletion, a
		 * set not seeded, a subtree without a watch): its status
		 * says which.
		 */
		if (d->rep.lag_ms == UINT64_MAX ||
		    (!d->rep.in_sync &&
		     (d->rep.lag_ms > 0 || d->rep.pending > 0)))
			v.reasons[v.n_reasons++] =
			    "catching up: changes of "
			    "the primary still in flight";
		else if (!d->rep.in_sync)
			v.reasons[v.n_reasons++] = "the primary does not call "
			                           "every set in sync: see its "
			                           "status";
		else if (d->rep.lag_ms > 0)
			v.reasons[v.n_reasons++] = "lag above zero";
	}
	/* The last session's word, kept after it ends: still missing. */
	stdby_status_failed(d, &v, paths, failed);
	st_databases(&v, d->dbr, 1);
	stdby_status_disks(d, &v);
	if (d->rep.idx_rc < 0)
		st_warn(&v, "warning",
		        "the index in %s on %s cannot be written: %s; runs "
		        "applied meanwhile are not recorded, so the primary "
		        "sends their paths again after a restart",
		        d->conf->state_dir, d->conf->node_name,
		        hs_strerror(d->rep.idx_rc));
	if ((drifted = drift_count(d->conf->state_dir, DRIFT_REPORT_MAX)) > 0)
		st_warn(&v, "warning",
		        "%s%llu file version(s) changed on this standby by "
		        "something else than hamnsync were replaced; kept in "
		        "%s/drift (remove them once read)",
		        drifted >= DRIFT_REPORT_MAX ? "at least " : "",
		        (unsigned long long)drifted, d->conf->state_dir);
	st_warn_cert(&v, d->conf->cert);
	st_warn_identity(&v);
	return st_json(&v);
}

/* {"error": TEXT}, as the control socket answers a failed verb. */
static json_t *
verb_error(const char *verb, int rc)
{
	char text[HS_ERRMSG_MAX];

	snprintf(text, sizeof(text), "%s: node state in the index: %s", verb,
	         hs_strerror(rc));
	return json_pack("{s:s}", "error", text);
}

/* Re-read this node's state from the index (a promote wrote it). */
static int
stdby_node_reread(struct stdby *d, const char *verb)
{
	struct idx_node n;
	int rc;

	if ((rc = idx_node_get(d->x, &n)) < 0) {
		hs_log_errx("standby: %s: node state in %s: %s", verb,
		            d->conf->state_dir, hs_strerror(rc));
		return rc;
	}
	if (n.epoch != d->node.epoch || n.flags != d->node.flags)
		hs_log_info("standby: %s: epoch %llu, flags 0x%x (were %llu, "
		            "0x%x)",
		            verb, (unsigned long long)n.epoch, n.flags,
		            (unsigned long long)d->node.epoch, d->node.flags);
	d->node = n;
	return HS_OK;
}

/*
 * End the session (or express lane) `pid` if its primary is fenced: it
 * stops between messages, as at SIGTERM, and is reaped as usual.
 */
static void
fence_slot(struct stdby *d, pid_t pid, uint64_t epoch, const char *peer,
           const char *what, pid_t *told)
{
	if (pid <= 0)
		return;
	if (!(d->node.flags & IDX_NODE_F_PROMOTING) && epoch >= d->node.epoch)
		return;
	/* promote asks until the drain is over: said and signalled once. */
	if (*told == pid)
		return;
	*told = pid;
	hs_log_info("standby: fence: ending the %s of primary %s (epoch "
	            "%llu, this node's %llu%s)",
	            what, peer, (unsigned long long)epoch,
	            (unsigned long long)d->node.epoch,
	            d->node.flags & IDX_NODE_F_PROMOTING ? ", promoting" : "");
	kill(pid, SIGTERM);
}

/*
 * Verb `fence`: adopt the stored epoch and end every session it fences.
 * Does not wait: {"sessions": N} counts those still running, and
 * promote asks again until 0.
 */
static json_t *
stdby_fence(struct stdby *d)
{
	int rc;

	if ((rc = stdby_node_reread(d, "fence")) < 0)
		return verb_error("fence", rc);
	fence_slot(d, d->session, d->session_epoch, d->session_peer, "session",
	           &d->fenced[0]);
	fence_slot(d, d->express, d->express_epoch, d->express_peer,
	           "express lane", &d->fenced[1]);
	return json_pack("{s:I,s:I}", "epoch", (json_int_t)d->node.epoch,
	                 "sessions",
	                 (json_int_t)((d->session > 0) + (d->express > 0)));
}

/*
 * Verb `role`: when the stored role is now primary, answer, then stop
 * as at SIGTERM (serve sees d->switching) and run as primary.
 */
static json_t *
stdby_role(struct stdby *d)
{
	int rc;

	if ((rc = stdby_node_reread(d, "role")) < 0)
		return verb_error("role", rc);
	d->switching = d->node.role == HS_ROLE_PRIMARY;
	return json_pack("{s:s,s:b}", "role",
	                 d->switching ? "primary" : "standby", "switching",
	                 d->switching);
}

static json_t *
stdby_answer(void *arg, const char *verb)
{
	if (strcmp(verb, "status") == 0)
		return stdby_status(arg);
	if (strcmp(verb, "fence") == 0)
		return stdby_fence(arg);
	if (strcmp(verb, "role") == 0)
		return stdby_role(arg);
	return NULL;
}

static void
write_metrics(struct stdby *d)
{
	uint64_t now = hs_now_mono_ns();
	json_t *j;
	int rc;

	if (d->conf->metrics_file == NULL ||
	    now - d->last_metrics_ns < 2000000000ull)
		return;
	d->last_metrics_ns = now;
	d->cnt.files_applied = d->base.applied_total + d->rep.applied_total;
	d->cnt.bytes_received = d->base.bytes_in + d->rep.bytes_in;
	d->cnt.bytes_sent = d->base.bytes_out + d->rep.bytes_out;
	d->cnt.errors_remote = d->base.errors_total + d->rep.errors_total;
	if ((j = stdby_status(d)) == NULL)
		return;
	if ((rc = st_metrics_write(d->conf->metrics_file, j, &d->cnt)) < 0)
		hs_log_warnx("standby: metrics_file %s: %s",
		             d->conf->metrics_file, hs_strerror(rc));
	json_decref(j);
}

static void
save_status(struct stdby *d, int force)
{
	uint64_t now = hs_now_mono_ns();
	json_t *j;

	write_metrics(d);
	if (!force && now - d->last_save_ns < 5000000000ull)
		return;
	d->last_save_ns = now;
	if ((j = stdby_status(d)) != NULL) {
		st_save(d->conf->state_dir, j, &d->saved);
		json_decref(j);
	}
}

/* poll's wait: a second, or less when the databases want a tick. */
static int
serve_timeout(const struct stdby *d)
{
	int ms = dbr_next_ms(d->dbr);

	return ms >= 0 && ms < 1000 ? ms : 1000;
}

static int
serve(struct stdby *d)
{
	struct pollfd pfd[3 + CHILDREN_MAX];
	size_t k, n;

	for (;;) {
		dbr_tick(d->dbr);
		pfd[0].fd = d->lfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = d->sfd;
		pfd[1].events = POLLIN;
		pfd[2].fd = d->cfd;
		pfd[2].events = POLLIN;
		/*
		 * A child whose end is closed stays readable (POLLHUP) until
		 * SIGCHLD reaps it: left in the set, it would spin this loop.
		 */
		for (k = 0; k < d->n_kids; k++) {
			pfd[3 + k].fd = d->kids[k].hup ? -1 : d->kids[k].fd;
			pfd[3 + k].events = POLLIN;
		}
		n = 3 + d->n_kids;
		save_status(d, 0);
		if (poll(pfd, n, serve_timeout(d)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (k = 0; k < n - 3 && k < d->n_kids; k++) {
			if (pfd[3 + k].revents & POLLIN)
				on_child(d, k);
			if (pfd[3 + k].revents & POLLHUP)
				d->kids[k].hup = 1;
		}
		if (pfd[2].revents & POLLIN)
			ctl_serve(d->cfd, d->conf->status_group, stdby_answer,
			          d);
		/* Answered (ctl_serve wrote and closed): now switch. */
		if (d->switching) {
			hs_log_info("standby: %s is now primary at epoch %llu: "
			            "stopping the standby to run as primary",
			            d->conf->node_name,
			            (unsigned long long)d->node.epoch);
			stop_children(d);
			return HS_EROLE;
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
				save_status(d, 1);
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
stdby_run(const char *conf_path, struct hs_conf *conf, struct proto_tls *tls,
          int foreground)
{
	struct stdby d;
	struct idx *x = NULL;
	sigset_t mask, old;
	int rc;

	memset(&d, 0, sizeof(d));
	d.conf_path = conf_path;
	d.conf = conf;
	d.tls = tls;
	d.rootfd = d.lfd = d.sfd = d.pidfd = -1;
	d.cfd = -1;
	d.started_ns = hs_now_mono_ns();
	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		hs_log_err("standby: state_dir %s", conf->state_dir);
		goto out;
	}
	if ((rc = hs_pidfile_lock(conf->state_dir, &d.pidfd)) < 0)
		goto out;
	if ((rc = idx_open(conf->state_dir, 0, &x)) < 0) {
		hs_log_errx("standby: index in %s: %s", conf->state_dir,
		            hs_strerror(rc));
		goto out;
	}
	rc = idx_node_get(x, &d.node);
	d.x = x;
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
	/* It makes state_dir/db/NAME, where a database's set is written. */
	if ((rc = dbr_open(conf, DBR_STANDBY, &d.dbr)) < 0) {
		hs_log_errx("standby: databases: %s", hs_strerror(rc));
		goto out;
	}
	clean_leftovers(&d);
	if ((rc = open_listener(conf->listen, &d.lfd)) < 0)
		goto out;
	if ((d.cfd = ctl_listen(conf->state_dir, conf->status_group)) < 0) {
		rc = d.cfd;
		hs_log_errx("standby: control socket: %s", hs_strerror(rc));
		goto out;
	}
	if (!foreground) {
		/* LMDB forbids using an environment after fork(). */
		idx_close(d.x);
		d.x = NULL;
		if ((rc = hs_detach()) < 0)
			goto out;
		hs_log_init("hamnsync", 0, HS_LOG_INFO);
		if ((rc = idx_open_checked(conf->state_dir, &d.x)) < 0) {
			hs_log_errx("standby: index in %s: %s", conf->state_dir,
			            hs_strerror(rc));
			goto out;
		}
	}
	hs_pidfile_write(d.pidfd);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, &old);
	if ((d.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		rc = -errno;
		goto out;
	}
	hs_log_info("standby: %s listening on %s, epoch %llu, target_root %s",
	            conf->node_name, conf->listen,
	            (unsigned long long)d.node.epoch, conf->target_root);
	rc = serve(&d);
	/*
	 * The role that runs next keeps TERM, INT and HUP blocked (one that
	 * came meanwhile waits for its signalfd), but gets SIGCHLD as the
	 * process had it: it may wait for its children otherwise.
	 */
	if (!sigismember(&old, SIGCHLD)) {
		sigemptyset(&mask);
		sigaddset(&mask, SIGCHLD);
		sigprocmask(SIG_UNBLOCK, &mask, NULL);
	}
out:
	dbr_free(d.dbr);
	if (d.lfd >= 0)
		close(d.lfd);
	if (d.sfd >= 0)
		close(d.sfd);
	if (d.rootfd >= 0)
		close(d.rootfd);
	if (d.cfd >= 0) {
		close(d.cfd);
		ctl_unlink(d.conf->state_dir);
	}
	for (size_t k = 0; k < d.n_kids; k++)
		close(d.kids[k].fd);
	idx_close(d.x);
	st_saved_free(&d.saved);
	if (d.pidfd >= 0) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/hamnsync.pid",
		         d.conf->state_dir);
		if (rc == HS_OK)
			unlink(path);
		if (rc == HS_EROLE)
			hs_pidfile_handover(d.pidfd, d.conf->state_dir);
		else
			close(d.pidfd);
	}
	proto_tls_free(d.tls);
	hs_conf_free(d.conf);
	return rc;
}
