/*
 * evilstandby.c - hs-evilstandby, a hostile standby for the integration
 * tests.
 *
 *	hs-evilstandby -c STANDBY_CONF [--ack-delta N] [--sessions N]
 *	               [--seconds S] [--journal ID_HEX:SEQ]
 *
 * It listens where the standby's config says, with the standby's pinned
 * identity (so a primary's TLS check passes), and speaks just enough of
 * the protocol through the hamnsync library: HELLO, a JOURNAL claiming no
 * run of the primary's index (or, with --journal, the index id and run
 * the real standby recorded, so the primary resumes and sends only what
 * changed), an empty listing for every set, heartbeats answered, every
 * operation read and dropped.  Its one lie: a numbered run's SET_END
 * (index id + sequence) is answered with a SET_DONE that echoes the
 * sequence plus N (default 1000; -1 replays the previous sequence)
 * instead of the one it was sent.  Nothing is written to disk.  An
 * express lane (a second connection during a session) is told busy, as a
 * standby may.
 *
 * After each lie it reads what the primary does next and prints one
 * line per session:
 *	"evilstandby: session N: run R of set S acknowledged as A: <next>"
 * where <next> is "the primary closed the session" (the contract: it
 * must not trust the run) or what it sent instead.  After --sessions
 * sessions (default 1) with a lie it closes its listening socket and
 * exits; it never runs past --seconds (default 60).
 * Exit status: 0 the primary dropped every session it was lied to in,
 * 1 it went on in one of them (or no run came within --seconds), 2 usage
 * or setup error.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"
#include "proto.h"

#define ES_TIMEOUT_MS 5000 /* one network step of a session */
#define ES_SECONDS_MAX 600

#define EXIT_AS_EXPECTED 0
#define EXIT_MISBEHAVED 1
#define EXIT_SETUP 2

static const char usage[] =
    "usage: hs-evilstandby -c STANDBY_CONF [--ack-delta N] [--sessions N] "
    "[--seconds S] [--journal ID_HEX:SEQ]\n";

struct es {
	const struct hs_conf *conf;
	struct proto_tls *tls;
	int lfd;
	long long ack_delta;
	long sessions;
	long seconds;
	uint8_t journal_id[PROTO_JOURNAL_ID_LEN]; /* JOURNAL's answer */
	uint64_t journal_seq;
	uint64_t deadline_ms;
	struct proto_wr w;
	/* The session being served. */
	struct proto_conn *c;
	struct proto_hello peer;
	char set[PROTO_NODE_MAX + 1];
	uint64_t ops;
	uint64_t lies;  /* sessions in which a run got a false ack */
	int misbehaved; /* the primary went on after a false ack */
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds left before --seconds runs out (0: none). */
static int
left_ms(const struct es *es)
{
	uint64_t now = now_ms();

	return now >= es->deadline_ms ? 0 : (int)(es->deadline_ms - now);
}

static int
es_listen(struct es *es)
{
	struct addrinfo hints, *res;
	char host[256], port[8];
	uint16_t p;
	int fd, one = 1, rc;

	if (hs_split_hostport(es->conf->listen, host, sizeof(host), &p) < 0) {
		fprintf(stderr, "hs-evilstandby: listen = %s: not host:port\n",
		        es->conf->listen);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, "hs-evilstandby: %s: %s\n", es->conf->listen,
		        gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 8) < 0) {
		fprintf(stderr, "hs-evilstandby: listen %s: %s\n",
		        es->conf->listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	es->lfd = fd;
	return 0;
}

/* Accept one connection and read its HELLO; NULL when it failed. */
static struct proto_conn *
es_accept(struct es *es, struct proto_hello *peer)
{
	struct proto_conn *c;
	char why[512] = "";
	int fd;

	if ((fd = accept4(es->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return NULL;
	if (proto_conn_accept(es->tls, fd, ES_TIMEOUT_MS, &c, why,
	                      sizeof(why)) < 0) {
		printf("evilstandby: TLS handshake failed: %s\n", why);
		return NULL;
	}
	proto_conn_set_timeout(c, ES_TIMEOUT_MS);
	if (proto_hello_recv(c, peer, why, sizeof(why)) < 0) {
		printf("evilstandby: no HELLO: %s\n", why);
		proto_conn_free(c);
		return NULL;
	}
	return c;
}

/* A connection while a session is open: an express lane, told busy. */
static void
es_turn_away(struct es *es)
{
	struct proto_hello peer;
	struct proto_conn *c;
	struct pollfd pfd = {es->lfd, POLLIN, 0};

	if (poll(&pfd, 1, 0) <= 0 || (c = es_accept(es, &peer)) == NULL)
		return;
	proto_conn_send(c, PROTO_T_BUSY, NULL, 0, PROTO_RAW, NULL);
	proto_conn_flush(c);
	proto_conn_free(c);
}

static int
es_hello(struct es *es)
{
	struct proto_hello mine;

	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", es->conf->node_name);
	mine.role = HS_ROLE_STANDBY;
	mine.epoch = es->peer.epoch; /* never newer than the primary's */
	return proto_hello_send(es->c, &mine);
}

static int
es_send(struct es *es, uint8_t type)
{
	int rc = proto_conn_send_wr(es->c, type, &es->w, PROTO_RAW);

	return rc < 0 ? rc : proto_conn_flush(es->c);
}

/* JOURNAL: the run given with --journal, else none of any index. */
static int
on_journal_q(struct es *es)
{
	proto_wr_reset(&es->w);
	proto_put_bytes(&es->w, es->journal_id, sizeof(es->journal_id));
	proto_put_u64(&es->w, es->journal_seq);
	return es_send(es, PROTO_T_JOURNAL);
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* --journal ID_HEX:SEQ: 32 hex digits, a colon, a decimal sequence. */
static int
parse_journal(struct es *es, const char *v)
{
	char *end;
	size_t i;

	for (i = 0; i < sizeof(es->journal_id); i++) {
		int hi = hex_digit(v[0]), lo = hi < 0 ? -1 : hex_digit(v[1]);

		if (lo < 0)
			return -1;
		es->journal_id[i] = (uint8_t)(hi << 4 | lo);
		v += 2;
	}
	if (*v != ':')
		return -1;
	es->journal_seq = strtoull(v + 1, &end, 10);
	return *end == '\0' && end != v + 1 ? 0 : -1;
}

/* SET_OPEN(_SCOPED): hold nothing, so the primary sends what it has. */
static int
on_set_open(struct es *es, const struct proto_msg *m)
{
	struct proto_rd r = {m->data, m->len};
	struct proto_set_open so;
	int rc;

	if ((rc = proto_set_open_decode_head(&r, &so)) < 0)
		return rc;
	snprintf(es->set, sizeof(es->set), "%s", so.name);
	proto_set_open_clear(&so);
	es->ops = 0;
	proto_wr_reset(&es->w);
	return es_send(es, PROTO_T_LIST_END);
}

/*
 * What the primary does after a false acknowledgement: the contract is
 * that it drops the session (an ERROR or a BYE is a drop too).
 */
static void
after_lie(struct es *es, char *what, size_t len)
{
	struct proto_msg m;
	int rc;

	rc = proto_conn_recv(es->c, &m);
	if (rc == HS_ECLOSED || rc == -ECONNRESET || rc == -EPIPE)
		snprintf(what, len, "the primary closed the session");
	else if (rc < 0)
		snprintf(what, len, "no frame, %s", hs_strerror(rc));
	else if (m.type == PROTO_T_BYE)
		snprintf(what, len, "the primary said BYE");
	else if (m.type == PROTO_T_ERROR)
		snprintf(what, len, "the primary sent ERROR: %.*s",
		         (int)(m.len > 200 ? 200 : m.len),
		         (const char *)m.data);
	else {
		snprintf(what, len,
		         "the primary went on with message type %u "
		         "[MISBEHAVED]",
		         m.type);
		es->misbehaved = 1;
	}
}

/*
 * SET_END: a numbered run gets a SET_DONE echoing another sequence; an
 * unnumbered one the honest answer.  1 when the session is over.
 */
static int
on_set_end(struct es *es, const struct proto_msg *m)
{
	struct proto_rd r = {m->data, m->len};
	uint8_t id[PROTO_JOURNAL_ID_LEN];
	uint64_t seq = 0, ack;
	char what[300];
	int rc;

	if (m->len != 0 &&
	    (proto_get_bytes(&r, id, sizeof(id)) < 0 ||
	     proto_get_u64(&r, &seq) < 0 || proto_rd_end(&r) < 0 || seq == 0))
		return HS_EPROTO;
	ack = seq + (uint64_t)es->ack_delta;
	proto_wr_reset(&es->w);
	proto_put_u64(&es->w, es->ops);
	proto_put_u64(&es->w, 0); /* errors */
	proto_put_u32(&es->w, 0); /* error lines */
	if (seq != 0)
		proto_put_u64(&es->w, ack);
	if ((rc = es_send(es, PROTO_T_SET_DONE)) < 0)
		return rc;
	if (seq == 0)
		return 0;
	es->lies++;
	after_lie(es, what, sizeof(what));
	printf("evilstandby: session %llu: run %llu of set %s (%llu "
	       "operations) acknowledged as %llu: %s\n",
	       (unsigned long long)es->lies, (unsigned long long)seq, es->set,
	       (unsigned long long)es->ops, (unsigned long long)ack, what);
	return 1;
}

/* One frame of a session; 1 when the session is over, < 0 on error. */
static int
dispatch(struct es *es, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_T_JOURNAL_Q:
		return on_journal_q(es);
	case PROTO_T_SET_OPEN:
	case PROTO_T_SET_OPEN_SCOPED:
		return on_set_open(es, m);
	case PROTO_T_PING:
		if (proto_conn_send(es->c, PROTO_T_PONG, m->data, m->len,
		                    PROTO_RAW, NULL) < 0)
			return HS_ECLOSED;
		return proto_conn_flush(es->c);
	case PROTO_T_HASH_REQ_END: /* nothing listed, nothing to hash */
		proto_wr_reset(&es->w);
		return es_send(es, PROTO_T_HASH_END);
	case PROTO_T_SIG_REQ_END:
		proto_wr_reset(&es->w);
		return es_send(es, PROTO_T_SIG_END);
	case PROTO_T_SET_END:
		return on_set_end(es, m);
	case PROTO_T_BYE:
	case PROTO_T_ERROR:
		return 1;
	}
	es->ops++; /* operations, requests, STATE, renames: dropped */
	return 0;
}

/* Serve one primary session until it ends or a lie was told. */
static void
serve(struct es *es)
{
	struct proto_msg m;
	int rc = 0;

	if (es_hello(es) < 0)
		return;
	while (rc == 0 && left_ms(es) > 0) {
		rc = proto_conn_wait(es->c, 100);
		if (rc == 0) {
			es_turn_away(es);
			continue;
		}
		if (rc < 0 || (rc = proto_conn_recv(es->c, &m)) < 0)
			break;
		rc = dispatch(es, &m);
	}
}

static int
parse_args(struct es *es, int argc, char **argv, const char **conf)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;

		if (v == NULL)
			return -1;
		if (strcmp(argv[i], "-c") == 0)
			*conf = v;
		else if (strcmp(argv[i], "--ack-delta") == 0)
			es->ack_delta = strtoll(v, &end, 10);
		else if (strcmp(argv[i], "--sessions") == 0)
			es->sessions = strtol(v, &end, 10);
		else if (strcmp(argv[i], "--seconds") == 0)
			es->seconds = strtol(v, &end, 10);
		else if (strcmp(argv[i], "--journal") == 0) {
			if (parse_journal(es, v) < 0)
				return -1;
		} else
			return -1;
		if (end != NULL && (*end != '\0' || end == v))
			return -1;
		i++;
	}
	if (*conf == NULL || es->ack_delta == 0 || es->sessions < 1 ||
	    es->sessions > 100 || es->seconds < 1 ||
	    es->seconds > ES_SECONDS_MAX)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct hs_conf *conf = NULL;
	const char *conf_path = NULL;
	char err[HS_ERRMSG_MAX], why[512] = "";
	struct es es;
	int status = EXIT_SETUP;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	hs_log_init("hs-evilstandby", 1, HS_LOG_WARN);
	memset(&es, 0, sizeof(es));
	es.lfd = -1;
	es.ack_delta = 1000;
	es.sessions = 1;
	es.seconds = 60;
	proto_wr_init(&es.w);
	if (parse_args(&es, argc, argv, &conf_path) < 0) {
		fputs(usage, stderr);
		goto out;
	}
	if (hs_conf_load(conf_path, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "hs-evilstandby: config: %s\n", err);
		goto out;
	}
	es.conf = conf;
	if (proto_tls_from_conf(conf, &es.tls, why, sizeof(why)) < 0) {
		fprintf(stderr, "hs-evilstandby: TLS: %s\n", why);
		goto out;
	}
	if (es_listen(&es) < 0)
		goto out;
	es.deadline_ms = now_ms() + (uint64_t)es.seconds * 1000;
	printf("evilstandby: listening on %s\n", conf->listen);
	while ((long)es.lies < es.sessions && left_ms(&es) > 0) {
		struct pollfd pfd = {es.lfd, POLLIN, 0};

		if (poll(&pfd, 1, left_ms(&es) > 200 ? 200 : left_ms(&es)) <= 0)
			continue;
		if ((es.c = es_accept(&es, &es.peer)) == NULL)
			continue;
		if (es.peer.flags & PROTO_HELLO_F_EXPRESS) {
			proto_conn_send(es.c, PROTO_T_BUSY, NULL, 0, PROTO_RAW,
			                NULL);
			proto_conn_flush(es.c);
		} else
			serve(&es);
		proto_conn_free(es.c);
		es.c = NULL;
	}
	if ((long)es.lies < es.sessions)
		printf("evilstandby: only %llu of %ld sessions brought a "
		       "numbered run within %ld s [MISBEHAVED]\n",
		       (unsigned long long)es.lies, es.sessions, es.seconds);
	status = es.misbehaved || (long)es.lies < es.sessions
	             ? EXIT_MISBEHAVED
	             : EXIT_AS_EXPECTED;
out:
	if (es.lfd >= 0)
		close(es.lfd);
	proto_tls_free(es.tls);
	proto_wr_free(&es.w);
	hs_conf_free(conf);
	return status;
}
