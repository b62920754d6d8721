/*
 * evilpeer.c - hs-evilpeer, a hostile primary for the integration tests.
 *
 *	hs-evilpeer -c PRIMARY_CONF SCENARIO [OPTIONS]
 *
 * It holds a valid, pinned identity (the primary's cert and key from the
 * config), so it gets past TLS, and then misbehaves in one way per run.
 * It speaks TLS through OpenSSL directly, not through proto_conn, so that
 * it controls every byte on the wire (raw headers, lying lengths, cut
 * frames); payloads are built with the hamnsync codecs.
 *
 * It prints one line: what it did and what the standby answered (`hold`
 * first prints "hold: session open" once its session is up; `list` and
 * `scoped-list` print the listing, one "  listed:" line per entry).  Exit
 * status: 0 the standby reacted as the contract says (refused, reported
 * or closed, and did not hang), 1 it did not, 2 usage or setup error
 * (config, TLS handshake, connection).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "hs.h"
#include "proto.h"

/* Every socket read and write gives up after this long (--timeout). */
#define EV_TIMEOUT_MS 5000
/* `hold` never holds longer than this. */
#define EV_HOLD_MAX 600
/* Decompressed size of the zstd bomb: twice PROTO_FRAME_MAX. */
#define EV_BOMB_LEN (8u * 1024 * 1024)
/* SET_DONE and ERROR text we print is cut here. */
#define EV_TEXT_MAX 1024
#define EV_OUT_MAX 8192

#define EXIT_AS_EXPECTED 0
#define EXIT_MISBEHAVED 1
#define EXIT_SETUP 2

/* What one receive produced. */
enum ev_rx {
	RX_FRAME,   /* a frame: ev->type, ev->data, ev->len */
	RX_EOF,     /* the standby closed (close_notify, FIN or RST) */
	RX_TIMEOUT, /* nothing within the socket timeout */
	RX_BAD,     /* the standby sent something malformed */
};

struct ev {
	const struct hs_conf *conf;
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	uint8_t *in;    /* PROTO_FRAME_MAX */
	uint8_t *plain; /* PROTO_FRAME_MAX */
	/* The last frame received, and what the last receive gave. */
	enum ev_rx last_rx;
	uint8_t type;
	const uint8_t *data;
	size_t len;
	struct proto_wr w;
	struct proto_entry e;
	/* Options. */
	const char *scenario;
	const char *set_name;
	char *sources[PROTO_SOURCES_MAX];
	size_t n_sources;
	const char *path;
	int src;
	const char *op;
	long hold_s;
	uint64_t size; /* slow-file */
	uint64_t rate; /* slow-file, bytes per second */
	uint64_t epoch;
	int before_hello;
	int express; /* HELLO asks for the express lane */
	int timeout_ms;
	/* The first regular file in the standby's listing. */
	int has_file;
	uint16_t file_src;
	char file_path[PROTO_PATH_MAX + 1];
	uint64_t file_size;
	uint64_t n_listed;
	int list_out; /* print the listing */
	char deep[PROTO_PATH_MAX + 1];
	/* The report line. */
	char out[EV_OUT_MAX];
	size_t out_len;
};

static void __attribute__((format(printf, 2, 3)))
say(struct ev *ev, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ev->out_len >= sizeof(ev->out) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(ev->out + ev->out_len, sizeof(ev->out) - ev->out_len, fmt,
	              ap);
	va_end(ap);
	if (n > 0)
		ev->out_len += (size_t)n;
	if (ev->out_len >= sizeof(ev->out))
		ev->out_len = sizeof(ev->out) - 1;
}

static int __attribute__((format(printf, 3, 4)))
finish(struct ev *ev, int status, const char *fmt, ...)
{
	va_list ap;

	printf("%s: %s", ev->scenario, ev->out);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("%s\n", status == EXIT_AS_EXPECTED  ? ""
	               : status == EXIT_MISBEHAVED ? " [UNEXPECTED]"
	                                           : " [SETUP ERROR]");
	fflush(stdout);
	return status;
}

/* --------------------------------------------------------------- TLS */

static void
tls_why(char *why, size_t whylen)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(why, whylen, "%s", r ? r : strerror(errno));
	ERR_clear_error();
}

/* We judge the standby after the handshake, against the same policy. */
static int
verify_later(int ok, X509_STORE_CTX *store)
{
	(void)ok;
	(void)store;
	return 1;
}

static int
peer_ok(struct ev *ev, char *why, size_t whylen)
{
	X509 *cert = SSL_get0_peer_certificate(ev->ssl);
	uint8_t fp[32];
	unsigned int n = sizeof(fp);
	size_t i;

	if (cert == NULL) {
		snprintf(why, whylen, "standby presented no certificate");
		return 0;
	}
	if (ev->conf->n_peer_fps > 0) {
		if (X509_digest(cert, EVP_sha256(), fp, &n) != 1)
			return 0;
		for (i = 0; i < ev->conf->n_peer_fps; i++)
			if (memcmp(fp, ev->conf->peer_fps[i], sizeof(fp)) == 0)
				break;
		if (i == ev->conf->n_peer_fps) {
			snprintf(why, whylen, "standby certificate not pinned");
			return 0;
		}
	}
	if (ev->conf->ca != NULL &&
	    SSL_get_verify_result(ev->ssl) != X509_V_OK) {
		snprintf(why, whylen, "standby certificate: %s",
		         X509_verify_cert_error_string(
		             SSL_get_verify_result(ev->ssl)));
		return 0;
	}
	return 1;
}

static int
tcp_connect(const char *hostport, int timeout_ms, int *out, char *why,
            size_t whylen)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], portstr[8];
	uint16_t port;
	int fd = -1, rc, one = 1;

	if (hs_split_hostport(hostport, host, sizeof(host), &port) < 0) {
		snprintf(why, whylen, "bad peer address %s", hostport);
		return -1;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		snprintf(why, whylen, "%s: %s", hostport, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		/* Small frames go out at once, as the real primary's do. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(why, whylen, "connect %s: %s", hostport,
		         strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -1;
	*out = fd;
	return 0;
}

static int
ev_connect(struct ev *ev, char *why, size_t whylen)
{
	const struct hs_conf *c = ev->conf;

	ev->ctx = SSL_CTX_new(TLS_client_method());
	if (ev->ctx == NULL) {
		tls_why(why, whylen);
		return -1;
	}
	SSL_CTX_set_min_proto_version(ev->ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ev->ctx, TLS1_3_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ev->ctx, c->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ev->ctx, c->key, SSL_FILETYPE_PEM) !=
	        1 ||
	    SSL_CTX_check_private_key(ev->ctx) != 1) {
		snprintf(why, whylen, "cannot load %s / %s", c->cert, c->key);
		return -1;
	}
	if (c->ca != NULL &&
	    SSL_CTX_load_verify_locations(ev->ctx, c->ca, NULL) != 1) {
		snprintf(why, whylen, "cannot load CA %s", c->ca);
		return -1;
	}
	SSL_CTX_set_verify(ev->ctx, SSL_VERIFY_PEER, verify_later);
	if (tcp_connect(c->peer, ev->timeout_ms, &ev->fd, why, whylen) < 0)
		return -1;
	if ((ev->ssl = SSL_new(ev->ctx)) == NULL ||
	    SSL_set_fd(ev->ssl, ev->fd) != 1) {
		tls_why(why, whylen);
		return -1;
	}
	if (c->ca != NULL && c->peer_name != NULL)
		SSL_set1_host(ev->ssl, c->peer_name);
	ERR_clear_error();
	if (SSL_connect(ev->ssl) != 1) {
		tls_why(why, whylen);
		return -1;
	}
	if (!peer_ok(ev, why, whylen))
		return -1;
	return 0;
}

/* Write all of p; 0, or -1 when the standby is gone or stuck. */
static int
ev_write(struct ev *ev, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t done = 0;

	while (done < len) {
		size_t n = 0;

		ERR_clear_error();
		if (SSL_write_ex(ev->ssl, b + done, len - done, &n) != 1)
			return -1;
		done += n;
	}
	return 0;
}

static int
ev_send(struct ev *ev, uint8_t type, uint8_t flags, const void *p, size_t len)
{
	uint8_t hdr[PROTO_HDR_LEN];

	proto_hdr_pack(hdr, type, flags, (uint32_t)len);
	if (ev_write(ev, hdr, sizeof(hdr)) < 0)
		return -1;
	return len > 0 ? ev_write(ev, p, len) : 0;
}

static int
ev_send_wr(struct ev *ev, uint8_t type)
{
	if (ev->w.rc < 0)
		return -1;
	return ev_send(ev, type, 0, ev->w.buf.data, ev->w.buf.len);
}

static enum ev_rx
ev_read_full(struct ev *ev, uint8_t *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		size_t n = 0;
		int r, e, err;

		ERR_clear_error();
		errno = 0;
		r = SSL_read_ex(ev->ssl, p + done, len - done, &n);
		err = errno;
		if (r == 1) {
			done += n;
			continue;
		}
		e = SSL_get_error(ev->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN)
			return RX_EOF;
		if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ) &&
		    (err == EAGAIN || err == EWOULDBLOCK))
			return RX_TIMEOUT;
		/* FIN or RST without close_notify: closed all the same. */
		ERR_clear_error();
		return RX_EOF;
	}
	return RX_FRAME;
}

static enum ev_rx
ev_recv_frame(struct ev *ev)
{
	uint8_t hdr[PROTO_HDR_LEN];
	struct proto_hdr h;
	enum ev_rx rx;

	if ((rx = ev_read_full(ev, hdr, sizeof(hdr))) != RX_FRAME)
		return rx;
	if (proto_hdr_unpack(hdr, sizeof(hdr), &h) < 0)
		return RX_BAD;
	if ((rx = ev_read_full(ev, ev->in, h.len)) != RX_FRAME)
		return rx == RX_EOF ? RX_BAD : rx;
	ev->type = h.type;
	if (h.flags & PROTO_F_ZSTD) {
		unsigned long long want =
		    ZSTD_getFrameContentSize(ev->in, h.len);
		size_t n;

		if (want == ZSTD_CONTENTSIZE_ERROR ||
		    want == ZSTD_CONTENTSIZE_UNKNOWN || want > PROTO_FRAME_MAX)
			return RX_BAD;
		n = ZSTD_decompress(ev->plain, (size_t)want, ev->in, h.len);
		if (ZSTD_isError(n) || n != want)
			return RX_BAD;
		ev->data = ev->plain;
		ev->len = n;
	} else {
		ev->data = ev->in;
		ev->len = h.len;
	}
	return RX_FRAME;
}

static enum ev_rx
ev_recv(struct ev *ev)
{
	ev->last_rx = ev_recv_frame(ev);
	return ev->last_rx;
}

/* Describe what the standby answered, for the report line. */
static void
say_answer(struct ev *ev, enum ev_rx rx)
{
	switch (rx) {
	case RX_EOF:
		say(ev, "closed the connection");
		return;
	case RX_TIMEOUT:
		say(ev, "no answer within %d ms", ev->timeout_ms);
		return;
	case RX_BAD:
		say(ev, "a malformed frame");
		return;
	case RX_FRAME:
		break;
	}
	switch (ev->type) {
	case PROTO_T_ERROR:
		say(ev, "ERROR \"%.*s\"",
		    (int)(ev->len > EV_TEXT_MAX ? EV_TEXT_MAX : ev->len),
		    (const char *)ev->data);
		return;
	case PROTO_T_BUSY:
		say(ev, "BUSY");
		return;
	case PROTO_T_HELLO:
		say(ev, "HELLO");
		return;
	}
	say(ev, "frame type %u (%zu bytes)", ev->type, ev->len);
}

/* An ERROR frame, or a close: the standby refused. */
static int
refused(struct ev *ev, enum ev_rx rx)
{
	return rx == RX_EOF || (rx == RX_FRAME && ev->type == PROTO_T_ERROR);
}

/* --------------------------------------------------------- messages */

static int
hello_send(struct ev *ev, uint16_t version, uint8_t role)
{
	struct proto_hello h;

	memset(&h, 0, sizeof(h));
	h.magic = PROTO_MAGIC;
	h.version = version;
	snprintf(h.name, sizeof(h.name), "%s", ev->conf->node_name);
	h.role = role;
	h.epoch = ev->epoch;
	h.flags = ev->express ? PROTO_HELLO_F_EXPRESS : 0;
	proto_wr_reset(&ev->w);
	proto_hello_encode(&ev->w, &h);
	return ev_send_wr(ev, PROTO_T_HELLO);
}

/* Our HELLO, then the standby's.  1 on success, else a finish() status. */
static int
handshake(struct ev *ev, int *status)
{
	enum ev_rx rx;

	if (hello_send(ev, PROTO_VERSION, HS_ROLE_PRIMARY) < 0) {
		*status = finish(ev, EXIT_SETUP, "cannot send HELLO");
		return 0;
	}
	rx = ev_recv(ev);
	if (rx == RX_FRAME && ev->type == PROTO_T_HELLO)
		return 1;
	say(ev, "HELLO answered with ");
	say_answer(ev, rx);
	*status = finish(ev, EXIT_SETUP, "%s", "");
	return 0;
}

static void
bye(struct ev *ev)
{
	ev_send(ev, PROTO_T_BYE, 0, NULL, 0);
	SSL_shutdown(ev->ssl);
}

static void
entry_init(struct ev *ev, uint16_t src, const char *path, uint8_t type,
           uint64_t size)
{
	struct proto_entry *e = &ev->e;

	memset(e, 0, sizeof(*e));
	e->src = src;
	e->type = type;
	e->mode = type == PROTO_E_DIR ? 0755 : 0644;
	e->uid = (uint32_t)getuid();
	e->gid = (uint32_t)getgid();
	e->size = size;
	e->mtime_sec = (int64_t)time(NULL);
	snprintf(e->path, sizeof(e->path), "%s", path);
	if (type == PROTO_E_SYMLINK)
		snprintf(e->link, sizeof(e->link), "/etc/passwd");
}

static int
send_entry(struct ev *ev, uint8_t type)
{
	proto_wr_reset(&ev->w);
	proto_entry_encode(&ev->w, &ev->e);
	return ev_send_wr(ev, type);
}

static int
set_open(struct ev *ev, const char *name, char *const *sources, size_t n)
{
	struct proto_set_open so;
	size_t i;

	memset(&so, 0, sizeof(so));
	snprintf(so.name, sizeof(so.name), "%s", name);
	so.n_sources = (uint16_t)n;
	for (i = 0; i < n; i++)
		so.sources[i] = sources[i];
	proto_wr_reset(&ev->w);
	proto_set_open_encode(&ev->w, &so);
	return ev_send_wr(ev, PROTO_T_SET_OPEN);
}

/*
 * Read the answer to SET_OPEN: LIST frames up to LIST_END (1), or
 * SET_REFUSE (0, reason added to the report), or anything else (-1,
 * described in the report).  Remembers the first regular file listed.
 */
static int
read_listing(struct ev *ev)
{
	for (;;) {
		enum ev_rx rx = ev_recv(ev);
		struct proto_rd r;
		uint32_t n, i;

		if (rx != RX_FRAME) {
			say_answer(ev, rx);
			return -1;
		}
		r.p = ev->data;
		r.left = ev->len;
		if (ev->type == PROTO_T_LIST_END)
			return 1;
		if (ev->type == PROTO_T_SET_REFUSE) {
			char name[PROTO_NODE_MAX + 1], why[EV_TEXT_MAX + 1];

			if (proto_get_str(&r, name, PROTO_NODE_MAX, NULL) < 0 ||
			    proto_get_str(&r, why, EV_TEXT_MAX, NULL) < 0) {
				say(ev, "a malformed SET_REFUSE");
				return -1;
			}
			say(ev, "SET_REFUSE %s \"%s\"", name, why);
			return 0;
		}
		if (ev->type != PROTO_T_LIST) {
			say_answer(ev, rx);
			return -1;
		}
		if (proto_get_u32(&r, &n) < 0) {
			say(ev, "a malformed LIST");
			return -1;
		}
		for (i = 0; i < n; i++) {
			if (proto_entry_decode(&r, &ev->e) < 0) {
				say(ev, "a malformed LIST entry");
				return -1;
			}
			if (ev->list_out)
				printf("  listed: [%u] %s\n", ev->e.src,
				       ev->e.path);
			ev->n_listed++;
			/* Prefer a file with content: "kept" then means more.
			 */
			if (ev->e.type == PROTO_E_FILE &&
			    ev->e.path[0] != '\0' &&
			    (!ev->has_file ||
			     (!ev->file_size && ev->e.size > 0))) {
				ev->has_file = 1;
				ev->file_size = ev->e.size;
				ev->file_src = ev->e.src;
				snprintf(ev->file_path, sizeof(ev->file_path),
				         "%s", ev->e.path);
			}
		}
	}
}

/*
 * Read SET_DONE and add it to the report.  Returns the number of error
 * lines that contain `needle` (all lines when needle is NULL), or -1 when
 * the answer was not a SET_DONE (described in the report).
 */
static int
read_set_done(struct ev *ev, const char *needle, uint64_t *errors)
{
	enum ev_rx rx = ev_recv(ev);
	struct proto_rd r;
	uint64_t applied;
	uint32_t n, i;
	int hits = 0;

	if (rx != RX_FRAME || ev->type != PROTO_T_SET_DONE) {
		say_answer(ev, rx);
		return -1;
	}
	r.p = ev->data;
	r.left = ev->len;
	if (proto_get_u64(&r, &applied) < 0 || proto_get_u64(&r, errors) < 0 ||
	    proto_get_u32(&r, &n) < 0 || n > PROTO_ERRORS_MAX) {
		say(ev, "a malformed SET_DONE");
		return -1;
	}
	say(ev, "SET_DONE %llu applied, %llu errors",
	    (unsigned long long)applied, (unsigned long long)*errors);
	for (i = 0; i < n; i++) {
		char line[EV_TEXT_MAX + 1];

		if (proto_get_str(&r, line, EV_TEXT_MAX, NULL) < 0) {
			say(ev, "; a malformed error line");
			return -1;
		}
		say(ev, "%s \"%s\"", i == 0 ? ":" : " |", line);
		if (needle == NULL || strstr(line, needle) != NULL)
			hits++;
	}
	return hits;
}

/* HELLO, then SET_OPEN of the chosen set and its listing. */
static int
open_set(struct ev *ev, int *status)
{
	int rc;

	if (!handshake(ev, status))
		return 0;
	if (set_open(ev, ev->set_name, ev->sources, ev->n_sources) < 0) {
		*status = finish(ev, EXIT_SETUP, "cannot send SET_OPEN");
		return 0;
	}
	if ((rc = read_listing(ev)) <= 0) {
		*status = finish(ev, EXIT_SETUP, " (answer to SET_OPEN of %s)",
		                 ev->set_name);
		return 0;
	}
	return 1;
}

/* The target for ops on an existing file: --path, or the first listed. */
static int
pick_file(struct ev *ev, uint16_t *src, const char **path, int *status)
{
	if (ev->path != NULL) {
		*src = (uint16_t)ev->src;
		*path = ev->path;
		return 1;
	}
	if (!ev->has_file) {
		*status = finish(ev, EXIT_SETUP,
		                 "the standby lists no file in "
		                 "set %s; give --path",
		                 ev->set_name);
		return 0;
	}
	*src = ev->file_src;
	*path = ev->file_path;
	return 1;
}

static int
send_file(struct ev *ev, uint16_t src, const char *path, const void *data,
          size_t len, int bad_hash)
{
	uint8_t end[1 + PROTO_HASH_LEN];
	struct proto_hash *h;

	if (proto_hash_new_xfer(&h) < 0)
		return -1;
	proto_hash_update(h, data, len);
	end[0] = 0;
	proto_hash_final(h, end + 1);
	proto_hash_free(h);
	if (bad_hash)
		end[1] ^= 0xff;
	entry_init(ev, src, path, PROTO_E_FILE, len);
	if (send_entry(ev, PROTO_T_OP_FILE) < 0 ||
	    ev_send(ev, PROTO_T_OP_DATA, 0, data, len) < 0 ||
	    ev_send(ev, PROTO_T_OP_FILE_END, 0, end, sizeof(end)) < 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------- scenarios */

static const char evil_content[] = "evil content written by hs-evilpeer\n";

static int
sc_hold(struct ev *ev)
{
	int status;

	if (!handshake(ev, &status))
		return status;
	say(ev, "HELLO accepted, holding the session for %ld s", ev->hold_s);
	printf("hold: session open\n");
	fflush(stdout);
	sleep((unsigned)ev->hold_s);
	bye(ev);
	return finish(ev, EXIT_AS_EXPECTED, ", then BYE");
}

/* Send one raw frame header (and optional bytes) and judge the answer. */
static int
sc_raw(struct ev *ev)
{
	static const uint8_t ten[10] = "0123456789";
	uint8_t hdr[PROTO_HDR_LEN];
	enum ev_rx rx;
	int status;

	if (!ev->before_hello && !handshake(ev, &status))
		return status;
	if (strcmp(ev->scenario, "oversize") == 0) {
		proto_hdr_pack(hdr, PROTO_T_OP_DATA, 0, PROTO_FRAME_MAX + 1);
		say(ev,
		    "sent a header announcing %u bytes (max %u)%s; "
		    "standby: ",
		    PROTO_FRAME_MAX + 1, PROTO_FRAME_MAX,
		    ev->before_hello ? " before HELLO" : "");
		if (ev_write(ev, hdr, sizeof(hdr)) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
	} else if (strcmp(ev->scenario, "truncated") == 0) {
		proto_hdr_pack(hdr, PROTO_T_OP_DATA, 0, 1000);
		say(ev,
		    "sent a header announcing 1000 bytes, 10 bytes, then "
		    "close_notify%s; standby: ",
		    ev->before_hello ? " before HELLO" : "");
		if (ev_write(ev, hdr, sizeof(hdr)) < 0 ||
		    ev_write(ev, ten, sizeof(ten)) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
		SSL_shutdown(ev->ssl);
	} else {
		say(ev, "sent a frame of type 200%s; standby: ",
		    ev->before_hello ? " before HELLO" : "");
		if (ev_send(ev, 200, 0, ten, sizeof(ten)) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
	}
	rx = ev_recv(ev);
	say_answer(ev, rx);
	/* Before HELLO the standby may close without a word. */
	return finish(ev, refused(ev, rx) ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
	              "%s", "");
}

static int
sc_bad_hello(struct ev *ev)
{
	int is_version = strcmp(ev->scenario, "bad-version") == 0;
	enum ev_rx rx;
	char want[64];

	if (is_version) {
		say(ev, "sent HELLO with protocol version 99; standby: ");
		if (hello_send(ev, 99, HS_ROLE_PRIMARY) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
	} else {
		say(ev, "sent HELLO claiming the standby role; standby: ");
		if (hello_send(ev, PROTO_VERSION, HS_ROLE_STANDBY) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
	}
	rx = ev_recv(ev);
	say_answer(ev, rx);
	if (rx != RX_FRAME || ev->type != PROTO_T_ERROR)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	if (!is_version)
		return finish(ev, EXIT_AS_EXPECTED, "%s", "");
	/* The text must name both versions. */
	snprintf(want, sizeof(want), "version %d", PROTO_VERSION);
	if (memmem(ev->data, ev->len, "99", 2) == NULL ||
	    memmem(ev->data, ev->len, want, strlen(want)) == NULL)
		return finish(ev, EXIT_MISBEHAVED,
		              " (does not name both "
		              "versions)");
	return finish(ev, EXIT_AS_EXPECTED, "%s", "");
}

static int
sc_zstd(struct ev *ev)
{
	uint8_t *src = NULL, *z = NULL;
	size_t zcap, zlen = 0;
	enum ev_rx rx;
	int status;

	if (!handshake(ev, &status))
		return status;
	if (strcmp(ev->scenario, "zstd-bomb") == 0) {
		src = calloc(1, EV_BOMB_LEN);
		zcap = ZSTD_compressBound(EV_BOMB_LEN);
		z = malloc(zcap);
		if (src == NULL || z == NULL)
			return finish(ev, EXIT_SETUP, "out of memory");
		zlen = ZSTD_compress(z, zcap, src, EV_BOMB_LEN, 3);
		if (ZSTD_isError(zlen) ||
		    ZSTD_getFrameContentSize(z, zlen) != EV_BOMB_LEN)
			return finish(ev, EXIT_SETUP, "cannot make the bomb");
		say(ev,
		    "sent a %zu-byte zstd frame declaring %u bytes "
		    "(max %u); standby: ",
		    zlen, EV_BOMB_LEN, PROTO_FRAME_MAX);
	} else if (strcmp(ev->scenario, "zstd-nosize") == 0) {
		ZSTD_CCtx *cc = ZSTD_createCCtx();
		ZSTD_outBuffer ob;
		ZSTD_inBuffer ib;

		src = calloc(1, 4096);
		zcap = ZSTD_compressBound(4096) + 64;
		z = malloc(zcap);
		if (cc == NULL || src == NULL || z == NULL)
			return finish(ev, EXIT_SETUP, "out of memory");
		/* A streamed frame: no content size in its header. */
		ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
		ob.dst = z;
		ob.size = zcap;
		ob.pos = 0;
		ib.src = src;
		ib.size = 4096;
		ib.pos = 0;
		if (ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end) != 0)
			return finish(ev, EXIT_SETUP, "cannot compress");
		ZSTD_freeCCtx(cc);
		zlen = ob.pos;
		say(ev,
		    "sent a %zu-byte zstd frame without content size; "
		    "standby: ",
		    zlen);
	} else {
		size_t k;

		src = malloc(4096);
		zcap = ZSTD_compressBound(4096);
		z = malloc(zcap);
		if (src == NULL || z == NULL)
			return finish(ev, EXIT_SETUP, "out of memory");
		for (k = 0; k < 4096; k++)
			src[k] = (uint8_t)("hamnsync"[k % 8] + k / 512);
		zlen = ZSTD_compress(z, zcap, src, 4096, 3);
		if (ZSTD_isError(zlen) || zlen < 24)
			return finish(ev, EXIT_SETUP, "cannot compress");
		/* Keep the frame header (content size 4096), spoil the rest. */
		for (k = 12; k < zlen; k++)
			z[k] ^= 0x5a;
		say(ev,
		    "sent a %zu-byte zstd frame (content size 4096) with "
		    "corrupted blocks; standby: ",
		    zlen);
	}
	if (ev_send(ev, PROTO_T_SET_OPEN, PROTO_F_ZSTD, z, zlen) < 0) {
		free(src);
		free(z);
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	}
	free(src);
	free(z);
	rx = ev_recv(ev);
	say_answer(ev, rx);
	return finish(ev, refused(ev, rx) ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
	              "%s", "");
}

/*
 * Encode ev->e (whose path is "nul_evil") and turn the '_' into a NUL on
 * the wire: the path string starts after u16 src and its u16 length.
 */
static void
entry_encode_nul(struct ev *ev)
{
	proto_wr_reset(&ev->w);
	proto_entry_encode(&ev->w, &ev->e);
	if (ev->w.rc == HS_OK && ev->w.buf.len > 2 + 2 + 3)
		ev->w.buf.data[2 + 2 + 3] = '\0';
}

/* "d/d/.../evil" with `depth` components in all. */
static const char *
deep_path(char *buf, size_t len, int depth)
{
	size_t off = 0;
	int i;

	for (i = 1; i < depth && off + 2 < len; i++) {
		buf[off++] = 'd';
		buf[off++] = '/';
	}
	snprintf(buf + off, len - off, "evil");
	return buf;
}

/* One component of `n` bytes: past NAME_MAX when n > 255. */
static const char *
long_name(char *buf, size_t len, size_t n)
{
	if (n + 1 > len)
		n = len - 1;
	memset(buf, 'e', n);
	buf[n] = '\0';
	return buf;
}

/*
 * dotdot, absolute, symlink-escape, nul-path, bad-src, deep-path,
 * long-name: one operation (--op) on a
 * path that must be refused; the standby must say so in SET_DONE, naming
 * the path, and carry on with the session.
 */
static int
sc_path(struct ev *ev)
{
	const char *path = ev->path, *op = ev->op ? ev->op : "file";
	const char *needle;
	uint16_t src = (uint16_t)ev->src;
	uint64_t errors = 0;
	uint8_t type;
	int status, hits, is_nul = strcmp(ev->scenario, "nul-path") == 0;

	if (path == NULL) {
		if (strcmp(ev->scenario, "dotdot") == 0)
			path = "../escape";
		else if (strcmp(ev->scenario, "absolute") == 0)
			path = "/etc/evil";
		else if (is_nul)
			path = "nul";
		else if (strcmp(ev->scenario, "bad-src") == 0)
			path = "evil-src";
		else if (strcmp(ev->scenario, "deep-path") == 0)
			path = deep_path(ev->deep, sizeof(ev->deep), 300);
		else if (strcmp(ev->scenario, "long-name") == 0)
			path = long_name(ev->deep, sizeof(ev->deep), 300);
		else
			path = "link/evil";
	}
	if (strcmp(ev->scenario, "bad-src") == 0 && ev->src == 0)
		src = 99;
	needle = path;
	if (!open_set(ev, &status))
		return status;
	if (is_nul) {
		entry_init(ev, src, "nul_evil", PROTO_E_FILE, 0);
		entry_encode_nul(ev);
		say(ev, "in set %s sent OP_FILE \"nul\\0evil\"; standby: ",
		    ev->set_name);
		if (ev_send_wr(ev, PROTO_T_OP_FILE) < 0 ||
		    ev_send(ev, PROTO_T_OP_FILE_END, 0,
		            (uint8_t[1 + PROTO_HASH_LEN]){0},
		            1 + PROTO_HASH_LEN) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
	} else if (strcmp(op, "file") == 0) {
		say(ev,
		    "in set %s sent OP_FILE %s (%zu bytes, right hash); "
		    "standby: ",
		    ev->set_name, path, strlen(evil_content));
		if (send_file(ev, src, path, evil_content, strlen(evil_content),
		              0) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
	} else {
		uint8_t frame;

		type = PROTO_E_FILE;
		if (strcmp(op, "dir") == 0) {
			type = PROTO_E_DIR;
			frame = PROTO_T_OP_DIR;
		} else if (strcmp(op, "delete") == 0)
			frame = PROTO_T_OP_DELETE;
		else if (strcmp(op, "meta") == 0)
			frame = PROTO_T_OP_META;
		else if (strcmp(op, "symlink") == 0) {
			type = PROTO_E_SYMLINK;
			frame = PROTO_T_OP_SYMLINK;
		} else
			return finish(ev, EXIT_SETUP, "unknown --op %s", op);
		entry_init(ev, src, path, type, 0);
		if (strcmp(op, "meta") == 0)
			ev->e.mode = 04777; /* what an attacker would want */
		say(ev, "in set %s sent OP_%s %s; standby: ", ev->set_name,
		    strcmp(op, "dir") == 0      ? "DIR"
		    : strcmp(op, "delete") == 0 ? "DELETE"
		    : strcmp(op, "meta") == 0   ? "META"
		                                : "SYMLINK",
		    path);
		if (send_entry(ev, frame) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
	}
	if (ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	hits = read_set_done(ev, needle, &errors);
	if (hits < 0)
		return finish(ev, EXIT_MISBEHAVED,
		              " (expected SET_DONE naming "
		              "the path)");
	bye(ev);
	if (errors == 0)
		return finish(ev, EXIT_MISBEHAVED,
		              " (the operation was "
		              "ACCEPTED)");
	if (hits == 0)
		return finish(ev, EXIT_MISBEHAVED, " (no error line names %s)",
		              needle);
	return finish(ev, EXIT_AS_EXPECTED, "%s", "");
}

static int
sc_unknown_set(struct ev *ev)
{
	char *foreign[1] = {(char *)"/etc"};
	int status, rc, bad = 0;

	if (!handshake(ev, &status))
		return status;
	say(ev, "SET_OPEN no-such-set: ");
	if (set_open(ev, "no-such-set", ev->sources, ev->n_sources) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	if ((rc = read_listing(ev)) != 0) {
		say(ev, rc > 0 ? "a LISTING (set ACCEPTED)" : "");
		bad = 1;
		if (rc < 0)
			return finish(ev, EXIT_MISBEHAVED, "%s", "");
	}
	say(ev, "; SET_OPEN %s with source /etc: ", ev->set_name);
	if (set_open(ev, ev->set_name, foreign, 1) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	if ((rc = read_listing(ev)) != 0) {
		say(ev, rc > 0 ? "a LISTING (set ACCEPTED)" : "");
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	}
	if (ev->n_sources > 1) {
		say(ev,
		    "; SET_OPEN %s with only its first source: ", ev->set_name);
		if (set_open(ev, ev->set_name, ev->sources, 1) < 0)
			return finish(ev, EXIT_MISBEHAVED, "write failed");
		if ((rc = read_listing(ev)) != 0) {
			say(ev, rc > 0 ? "a LISTING (set ACCEPTED)" : "");
			return finish(ev, EXIT_MISBEHAVED, "%s", "");
		}
	}
	bye(ev);
	return finish(ev, bad ? EXIT_MISBEHAVED : EXIT_AS_EXPECTED, "%s", "");
}

static int
sc_data_overrun(struct ev *ev)
{
	static const uint8_t twenty[20] = "overrun-overrun-over";
	const char *path;
	uint16_t src;
	enum ev_rx rx;
	int status;

	if (!open_set(ev, &status))
		return status;
	if (!pick_file(ev, &src, &path, &status))
		return status;
	entry_init(ev, src, path, PROTO_E_FILE, 10);
	say(ev,
	    "in set %s sent OP_FILE %s announcing 10 bytes, then OP_DATA "
	    "of 20; standby: ",
	    ev->set_name, path);
	if (send_entry(ev, PROTO_T_OP_FILE) < 0 ||
	    ev_send(ev, PROTO_T_OP_DATA, 0, twenty, sizeof(twenty)) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	/* The standby must not wait for more: it answers right away. */
	rx = ev_recv(ev);
	say_answer(ev, rx);
	return finish(ev, refused(ev, rx) ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
	              "%s", "");
}

static int
sc_short_data(struct ev *ev)
{
	uint8_t end[1 + PROTO_HASH_LEN];
	const char *path;
	uint64_t errors = 0;
	uint16_t src;
	int status, hits;

	if (!open_set(ev, &status))
		return status;
	if (!pick_file(ev, &src, &path, &status))
		return status;
	memset(end, 0, sizeof(end));
	entry_init(ev, src, path, PROTO_E_FILE, 100);
	say(ev,
	    "in set %s sent OP_FILE %s announcing 100 bytes, OP_DATA of "
	    "10, FILE_END; standby: ",
	    ev->set_name, path);
	if (send_entry(ev, PROTO_T_OP_FILE) < 0 ||
	    ev_send(ev, PROTO_T_OP_DATA, 0, "0123456789", 10) < 0 ||
	    ev_send(ev, PROTO_T_OP_FILE_END, 0, end, sizeof(end)) < 0 ||
	    ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	hits = read_set_done(ev, path, &errors);
	if (hits < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	return finish(ev, hits > 0 ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED, "%s",
	              hits > 0 ? "" : " (no error names the file)");
}

static int
sc_hash_mismatch(struct ev *ev)
{
	const char *path;
	uint64_t errors = 0;
	uint16_t src;
	int status, hits;

	if (!open_set(ev, &status))
		return status;
	if (!pick_file(ev, &src, &path, &status))
		return status;
	say(ev,
	    "in set %s sent OP_FILE %s with a wrong FILE_END hash; "
	    "standby: ",
	    ev->set_name, path);
	if (send_file(ev, src, path, evil_content, strlen(evil_content), 1) <
	        0 ||
	    ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	hits = read_set_done(ev, path, &errors);
	if (hits < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	if (errors == 0)
		return finish(ev, EXIT_MISBEHAVED, " (the file was ACCEPTED)");
	if (hits == 0 || strstr(ev->out, "hash") == NULL)
		return finish(ev, EXIT_MISBEHAVED, " (no hash mismatch named)");
	return finish(ev, EXIT_AS_EXPECTED, "%s", "");
}

/* HASH_REQ that claims 4 billion entries in an 8-byte payload. */
static int
sc_hashreq_bomb(struct ev *ev)
{
	enum ev_rx rx;
	int status;

	if (!open_set(ev, &status))
		return status;
	proto_wr_reset(&ev->w);
	proto_put_u32(&ev->w, UINT32_MAX);
	proto_put_u16(&ev->w, 0);
	proto_put_str(&ev->w, "");
	say(ev,
	    "in set %s sent HASH_REQ claiming %u entries in %zu bytes; "
	    "standby: ",
	    ev->set_name, UINT32_MAX, ev->w.buf.len);
	if (ev_send_wr(ev, PROTO_T_HASH_REQ) < 0 ||
	    ev_send(ev, PROTO_T_HASH_REQ_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	rx = ev_recv(ev);
	say_answer(ev, rx);
	return finish(ev, refused(ev, rx) ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
	              "%s", "");
}

/* OP_FILE that must be ACCEPTED: e.g. a file replacing a symlink. */
static int
sc_put(struct ev *ev)
{
	const char *path = ev->path ? ev->path : "link";
	uint64_t errors = 0;
	int status, hits;

	if (!open_set(ev, &status))
		return status;
	say(ev,
	    "in set %s sent OP_FILE %s (%zu bytes, right hash); "
	    "standby: ",
	    ev->set_name, path, strlen(evil_content));
	if (send_file(ev, (uint16_t)ev->src, path, evil_content,
	              strlen(evil_content), 0) < 0 ||
	    ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	hits = read_set_done(ev, NULL, &errors);
	if (hits < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	return finish(ev, errors == 0 ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
	              "%s", errors == 0 ? "" : " (expected it to be applied)");
}

/* The standby's listing of the set, one "  listed:" line per entry. */
static int
sc_list(struct ev *ev)
{
	uint64_t errors = 0;
	int status;

	ev->list_out = 1;
	if (!open_set(ev, &status))
		return status;
	say(ev, "set %s: %llu entries listed; SET_END: ", ev->set_name,
	    (unsigned long long)ev->n_listed);
	if (ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	if (read_set_done(ev, NULL, &errors) < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	return finish(ev, EXIT_AS_EXPECTED, "%s", "");
}

/*
 * Ask the standby to hash --path (e.g. through a symlink to a file
 * outside target_root): it must answer "not hashed", never a hash.
 */
static int
sc_hash_probe(struct ev *ev)
{
	const char *path = ev->path ? ev->path : "link/victim";
	char got[PROTO_PATH_MAX + 1];
	uint8_t h[PROTO_HASH_LEN], st = 0;
	struct proto_rd r;
	uint32_t n = 0;
	uint16_t src;
	enum ev_rx rx;
	int status;

	if (!open_set(ev, &status))
		return status;
	proto_wr_reset(&ev->w);
	proto_put_u32(&ev->w, 1);
	proto_put_u16(&ev->w, (uint16_t)ev->src);
	proto_put_str(&ev->w, path);
	say(ev, "in set %s sent HASH_REQ for %s; standby: ", ev->set_name,
	    path);
	if (ev_send_wr(ev, PROTO_T_HASH_REQ) < 0 ||
	    ev_send(ev, PROTO_T_HASH_REQ_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	rx = ev_recv(ev);
	if (rx != RX_FRAME || ev->type != PROTO_T_HASH_REPLY) {
		say_answer(ev, rx);
		/* Refusing the request outright is fine too. */
		return finish(
		    ev, refused(ev, rx) ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
		    "%s", "");
	}
	r.p = ev->data;
	r.left = ev->len;
	if (proto_get_u32(&r, &n) < 0 || n != 1 ||
	    proto_get_u16(&r, &src) < 0 ||
	    proto_get_str(&r, got, PROTO_PATH_MAX, NULL) < 0 ||
	    proto_get_u8(&r, &st) < 0 ||
	    proto_get_bytes(&r, h, sizeof(h)) < 0) {
		say(ev, "a malformed HASH_REPLY");
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	}
	if (st == 0) {
		char hex[2 * PROTO_HASH_LEN + 1];
		size_t k;

		for (k = 0; k < PROTO_HASH_LEN; k++)
			snprintf(hex + 2 * k, 3, "%02x", h[k]);
		say(ev, "HASH_REPLY with a hash: %s", hex);
		return finish(ev, EXIT_MISBEHAVED, " (LEAKED a hash)");
	}
	say(ev, "HASH_REPLY \"not hashed\"");
	rx = ev_recv(ev);
	if (rx != RX_FRAME || ev->type != PROTO_T_HASH_END) {
		say(ev, ", then ");
		say_answer(ev, rx);
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	}
	ev_send(ev, PROTO_T_SET_END, 0, NULL, 0);
	ev_recv(ev);
	bye(ev);
	return finish(ev, EXIT_AS_EXPECTED, "%s", "");
}

/*
 * OP_FILE of a huge announced size, then OP_SEEK far into it: a few bytes
 * on the wire must not buy unbounded work on the standby.  It must answer
 * (an error, or SET_DONE) within the socket timeout.
 */
static int
sc_seek_bomb(struct ev *ev)
{
	const char *path = ev->path ? ev->path : "sparse-bomb";
	const uint64_t size = (uint64_t)1 << 62;
	uint8_t off[8], end[1 + PROTO_HASH_LEN];
	uint64_t errors = 0;
	enum ev_rx rx;
	int status, k;

	if (!open_set(ev, &status))
		return status;
	for (k = 0; k < 8; k++)
		off[k] = (uint8_t)(size >> (56 - 8 * k));
	memset(end, 0, sizeof(end));
	entry_init(ev, (uint16_t)ev->src, path, PROTO_E_FILE, size);
	say(ev,
	    "in set %s sent OP_FILE %s of %llu bytes, OP_SEEK to its end, "
	    "FILE_END, SET_END; standby: ",
	    ev->set_name, path, (unsigned long long)size);
	if (send_entry(ev, PROTO_T_OP_FILE) < 0 ||
	    ev_send(ev, PROTO_T_OP_SEEK, 0, off, sizeof(off)) < 0 ||
	    ev_send(ev, PROTO_T_OP_FILE_END, 0, end, sizeof(end)) < 0 ||
	    ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	rx = ev_recv(ev);
	if (rx == RX_FRAME && ev->type == PROTO_T_SET_DONE) {
		struct proto_rd r = {ev->data, ev->len};
		uint64_t applied = 0;

		proto_get_u64(&r, &applied);
		proto_get_u64(&r, &errors);
		say(ev, "SET_DONE %llu applied, %llu errors",
		    (unsigned long long)applied, (unsigned long long)errors);
		bye(ev);
		return finish(ev,
		              errors > 0 ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
		              "%s", "");
	}
	say_answer(ev, rx);
	return finish(
	    ev, refused(ev, rx) ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED, "%s",
	    rx == RX_TIMEOUT ? " (the standby is stuck on the seek)" : "");
}

/* Big-endian n-byte integer into p. */
static void
put_be(uint8_t *p, uint64_t v, int n)
{
	int k;

	for (k = 0; k < n; k++)
		p[k] = (uint8_t)(v >> (8 * (n - 1 - k)));
}

/*
 * OP_DELTA with a hand-made librsync delta: a COPY outside the basis
 * (delta-bad-offset), a LITERAL far longer than the file
 * (delta-huge-literal), or a COPY from a basis that is a symlink to a file
 * outside target_root (delta-basis-symlink).  The standby must record an
 * error naming the path and keep its old copy.
 */
static int
sc_delta(struct ev *ev)
{
	uint8_t d[64 + 1000], end[1 + PROTO_HASH_LEN];
	const char *path = ev->path;
	size_t n = 0;
	uint64_t errors = 0;
	uint16_t src = (uint16_t)ev->src;
	int status, hits;

	if (!open_set(ev, &status))
		return status;
	if (path == NULL && strcmp(ev->scenario, "delta-basis-symlink") == 0)
		path = "filelink";
	if (path == NULL && !pick_file(ev, &src, &path, &status))
		return status;
	put_be(d, 0x72730236u, 4); /* RS_DELTA_MAGIC */
	n = 4;
	if (strcmp(ev->scenario, "delta-huge-literal") == 0) {
		d[n++] = 0x44; /* LITERAL_N8 */
		put_be(d + n, (uint64_t)1 << 40, 8);
		n += 8;
		memset(d + n, 'L', 1000);
		n += 1000;
		say(ev,
		    "in set %s sent OP_DELTA %s (100 bytes) with a LITERAL "
		    "of 2^40 bytes; standby: ",
		    ev->set_name, path);
	} else {
		uint64_t at = strcmp(ev->scenario, "delta-bad-offset") == 0
		                  ? (uint64_t)1 << 40
		                  : 0;

		d[n++] = 0x54; /* COPY_N8_N8 */
		put_be(d + n, at, 8);
		put_be(d + n + 8, 100, 8);
		n += 16;
		d[n++] = 0x00; /* END */
		say(ev,
		    "in set %s sent OP_DELTA %s (100 bytes) copying 100 "
		    "bytes at offset %llu of the basis; standby: ",
		    ev->set_name, path, (unsigned long long)at);
	}
	memset(end, 0, sizeof(end));
	entry_init(ev, src, path, PROTO_E_FILE, 100);
	if (send_entry(ev, PROTO_T_OP_DELTA) < 0 ||
	    ev_send(ev, PROTO_T_OP_DATA, 0, d, n) < 0 ||
	    ev_send(ev, PROTO_T_OP_FILE_END, 0, end, sizeof(end)) < 0 ||
	    ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	hits = read_set_done(ev, path, &errors);
	if (hits < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	if (errors == 0)
		return finish(ev, EXIT_MISBEHAVED, " (the delta was ACCEPTED)");
	return finish(ev, hits > 0 ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED, "%s",
	              hits > 0 ? "" : " (no error names the file)");
}

/*
 * Block patches (delta.h).  A patch needs a basis the standby
 * recorded: first a whole file of EV_PATCH_SIZE bytes of 'B' at --path
 * (default "evil-patch.bin"), whose record token is its FILE_END hash;
 * then, in a second SET_OPEN, one hostile OP_PATCH against it:
 *	patch-past-end	 a block at 2 MiB of a file of 1 MiB + 100
 *	patch-unsorted	 blocks at 32 KiB, then 16 KiB
 *	patch-big-block	 32 KiB of data in a 16 KiB block
 *	patch-huge-size	 a final size of 2^50 bytes
 *	patch-overrun	 the last block twice
 *	patch-stale	 a basis token the standby does not hold
 * The first five must be refused (ERROR or close) with the file intact;
 * patch-stale must come back in PATCH_STALE with no error.
 */
#define EV_PATCH_SIZE (1024u * 1024 + 100)
#define EV_PATCH_BSIZE (16u * 1024)

static int
patch_block(struct ev *ev, uint64_t off, size_t len)
{
	static uint8_t frame[8 + 2 * EV_PATCH_BSIZE];

	if (len > 2 * EV_PATCH_BSIZE)
		return -1;
	put_be(frame, off, 8);
	memset(frame + 8, 'P', len);
	return ev_send(ev, PROTO_T_OP_PATCH_DATA, 0, frame, 8 + len);
}

static int
sc_patch(struct ev *ev)
{
	const char *sc = ev->scenario,
	           *path = ev->path ? ev->path : "evil-patch.bin";
	uint8_t *data, token[1 + PROTO_HASH_LEN];
	struct proto_hash *h;
	uint64_t errors = 0, final = EV_PATCH_SIZE;
	uint16_t src = (uint16_t)ev->src;
	enum ev_rx rx;
	int status, rc;

	if (!open_set(ev, &status))
		return status;
	if ((data = malloc(EV_PATCH_SIZE)) == NULL ||
	    proto_hash_new_xfer(&h) < 0)
		return finish(ev, EXIT_SETUP, "out of memory");
	memset(data, 'B', EV_PATCH_SIZE);
	proto_hash_update(h, data, EV_PATCH_SIZE);
	proto_hash_final(h, token + 1);
	proto_hash_free(h);
	rc = send_file(ev, src, path, data, EV_PATCH_SIZE, 0);
	free(data);
	if (rc < 0 || ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	if (read_set_done(ev, NULL, &errors) != 0 || errors != 0)
		return finish(ev, EXIT_SETUP, " (the basis was not applied)");
	say(ev, "; ");
	if (set_open(ev, ev->set_name, ev->sources, ev->n_sources) < 0 ||
	    read_listing(ev) <= 0)
		return finish(ev, EXIT_SETUP, " (second SET_OPEN)");
	if (strcmp(sc, "patch-stale") == 0)
		token[1] ^= 0xff;
	if (strcmp(sc, "patch-huge-size") == 0)
		final = (uint64_t)1 << 50;
	entry_init(ev, src, path, PROTO_E_FILE, final);
	proto_wr_reset(&ev->w);
	proto_entry_encode(&ev->w, &ev->e);
	proto_put_bytes(&ev->w, token + 1, PROTO_HASH_LEN);
	proto_put_u32(&ev->w, EV_PATCH_BSIZE);
	say(ev, "in set %s sent OP_PATCH %s (%s); standby: ", ev->set_name,
	    path, sc);
	if (ev_send_wr(ev, PROTO_T_OP_PATCH) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	rc = 0;
	if (strcmp(sc, "patch-past-end") == 0)
		rc = patch_block(ev, 2u * 1024 * 1024, EV_PATCH_BSIZE);
	else if (strcmp(sc, "patch-unsorted") == 0)
		rc = patch_block(ev, 2 * EV_PATCH_BSIZE, EV_PATCH_BSIZE) < 0 ||
		             patch_block(ev, EV_PATCH_BSIZE, EV_PATCH_BSIZE) < 0
		         ? -1
		         : 0;
	else if (strcmp(sc, "patch-big-block") == 0)
		rc = patch_block(ev, 0, 2 * EV_PATCH_BSIZE);
	else if (strcmp(sc, "patch-overrun") == 0)
		rc = patch_block(ev, 1024 * 1024, 100) < 0 ||
		             patch_block(ev, 1024 * 1024, 100) < 0
		         ? -1
		         : 0;
	else if (strcmp(sc, "patch-stale") == 0)
		rc = patch_block(ev, 0, EV_PATCH_BSIZE);
	token[0] = 0;
	if (rc == 0 &&
	    (ev_send(ev, PROTO_T_OP_FILE_END, 0, token, sizeof(token)) < 0 ||
	     ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0))
		rc = -1;
	/* A standby that refused may close before we are done writing. */
	rx = ev_recv(ev);
	if (rc < 0 && !refused(ev, rx))
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	if (strcmp(sc, "patch-stale") != 0) {
		say_answer(ev, rx);
		return finish(
		    ev, refused(ev, rx) ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
		    "%s", "");
	}
	if (rx != RX_FRAME || ev->type != PROTO_T_PATCH_STALE ||
	    memmem(ev->data, ev->len, path, strlen(path)) == NULL) {
		say_answer(ev, rx);
		return finish(ev, EXIT_MISBEHAVED,
		              " (no PATCH_STALE naming "
		              "the path)");
	}
	say(ev, "PATCH_STALE naming %s, then ", path);
	if (read_set_done(ev, NULL, &errors) < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	return finish(ev, errors == 0 ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
	              "%s", "");
}

/* SIG_REQ for --path: no signature of what lies behind a symlink. */
static int
sc_sig_probe(struct ev *ev)
{
	const char *path = ev->path ? ev->path : "filelink";
	char got[PROTO_PATH_MAX + 1];
	uint8_t h[PROTO_HASH_LEN], st = 1;
	uint64_t size = 0;
	uint32_t siglen = 0;
	struct proto_rd r;
	uint16_t src;
	enum ev_rx rx;
	int status;

	if (!open_set(ev, &status))
		return status;
	proto_wr_reset(&ev->w);
	proto_put_u32(&ev->w, 1);
	proto_put_u16(&ev->w, (uint16_t)ev->src);
	proto_put_str(&ev->w, path);
	say(ev, "in set %s sent SIG_REQ for %s; standby: ", ev->set_name, path);
	if (ev_send_wr(ev, PROTO_T_SIG_REQ) < 0 ||
	    ev_send(ev, PROTO_T_SIG_REQ_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	rx = ev_recv(ev);
	if (rx != RX_FRAME || ev->type != PROTO_T_SIG) {
		say_answer(ev, rx);
		return finish(
		    ev, refused(ev, rx) ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
		    "%s", "");
	}
	r.p = ev->data;
	r.left = ev->len;
	if (proto_get_u16(&r, &src) < 0 ||
	    proto_get_str(&r, got, PROTO_PATH_MAX, NULL) < 0 ||
	    proto_get_u8(&r, &st) < 0 ||
	    proto_get_bytes(&r, h, sizeof(h)) < 0 ||
	    proto_get_u64(&r, &size) < 0 || proto_get_u32(&r, &siglen) < 0) {
		say(ev, "a malformed SIG");
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	}
	if (st == 0 || siglen > 0 || size > 0) {
		say(ev, "SIG status %u, size %llu, %u signature bytes", st,
		    (unsigned long long)size, siglen);
		return finish(ev, EXIT_MISBEHAVED, " (LEAKED a signature)");
	}
	say(ev, "SIG \"not signed\"");
	rx = ev_recv(ev);
	if (rx != RX_FRAME || ev->type != PROTO_T_SIG_END) {
		say(ev, ", then ");
		say_answer(ev, rx);
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	}
	ev_send(ev, PROTO_T_SET_END, 0, NULL, 0);
	ev_recv(ev);
	bye(ev);
	return finish(ev, EXIT_AS_EXPECTED, "%s", "");
}

/* OP_LINK of a new name to --path (default link/victim, outside). */
static int
sc_hardlink(struct ev *ev)
{
	const char *target = ev->path ? ev->path : "link/victim";
	const char *name = "evil-hardlink";
	uint64_t errors = 0;
	int status, hits;

	if (!open_set(ev, &status))
		return status;
	proto_wr_reset(&ev->w);
	proto_put_u16(&ev->w, (uint16_t)ev->src);
	proto_put_str(&ev->w, name);
	proto_put_u16(&ev->w, (uint16_t)ev->src);
	proto_put_str(&ev->w, target);
	say(ev, "in set %s sent OP_LINK %s -> %s; standby: ", ev->set_name,
	    name, target);
	if (ev_send_wr(ev, PROTO_T_OP_LINK) < 0 ||
	    ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	hits = read_set_done(ev, target, &errors);
	if (hits < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	if (errors == 0)
		return finish(ev, EXIT_MISBEHAVED, " (the link was ACCEPTED)");
	return finish(ev, hits > 0 ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED, "%s",
	              hits > 0 ? "" : " (no error names the target)");
}

/*
 * SET_OPEN_SCOPED to --path (default "link", recursive): the listing must
 * not show what lies behind a symlink; a scope that escapes may be
 * refused.  Prints the listing like `list`.
 */
static int
sc_scoped_list(struct ev *ev)
{
	const char *path = ev->path ? ev->path : "link";
	struct proto_set_open so;
	struct proto_scope sc;
	uint64_t errors = 0;
	size_t i;
	int rc;

	if (!handshake(ev, &rc))
		return rc;
	memset(&so, 0, sizeof(so));
	snprintf(so.name, sizeof(so.name), "%s", ev->set_name);
	so.n_sources = (uint16_t)ev->n_sources;
	for (i = 0; i < ev->n_sources; i++)
		so.sources[i] = ev->sources[i];
	sc.src = (uint16_t)ev->src;
	sc.recursive = 1;
	sc.path = (char *)path;
	proto_wr_reset(&ev->w);
	proto_set_open_encode(&ev->w, &so);
	proto_scope_encode(&ev->w, &sc, 1);
	ev->list_out = 1;
	say(ev, "SET_OPEN_SCOPED %s to %s (recursive); standby: ", ev->set_name,
	    path);
	if (ev_send_wr(ev, PROTO_T_SET_OPEN_SCOPED) < 0)
		return finish(ev, EXIT_MISBEHAVED, "write failed");
	if ((rc = read_listing(ev)) < 0)
		return finish(ev,
		              refused(ev, ev->last_rx) ? EXIT_AS_EXPECTED
		                                       : EXIT_MISBEHAVED,
		              "%s", "");
	if (rc == 0)
		return finish(ev, EXIT_AS_EXPECTED, "%s", "");
	say(ev, "%llu entries listed; ", (unsigned long long)ev->n_listed);
	if (ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0 ||
	    read_set_done(ev, NULL, &errors) < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	return finish(ev, EXIT_AS_EXPECTED, "%s", "");
}

/*
 * A well-formed whole file sent slowly: --size bytes (default 4 MiB) in
 * 64 KiB chunks, --rate bytes per second (default 1 MiB/s), so that a test
 * can act while the standby's temporary file is half written.  Exit 0
 * when the standby applied it.
 */
static int
sc_slow_file(struct ev *ev)
{
	enum { SLOW_CHUNK = 64 * 1024 };
	uint8_t *buf, end[1 + PROTO_HASH_LEN];
	struct proto_hash *h = NULL;
	struct timespec pause;
	const char *path;
	uint64_t sent = 0, errors = 0, x = 0x9e3779b97f4a7c15ull;
	uint16_t src;
	long ns;
	int status, hits;
	size_t k;

	if (!open_set(ev, &status))
		return status;
	if (!pick_file(ev, &src, &path, &status))
		return status;
	if ((buf = malloc(SLOW_CHUNK)) == NULL || proto_hash_new_xfer(&h) < 0) {
		free(buf);
		return finish(ev, EXIT_SETUP, "out of memory");
	}
	ns = (long)((double)SLOW_CHUNK / (double)ev->rate * 1e9);
	pause.tv_sec = ns / 1000000000L;
	pause.tv_nsec = ns % 1000000000L;
	say(ev,
	    "in set %s sent OP_FILE %s of %llu bytes at %llu bytes/s; "
	    "standby: ",
	    ev->set_name, path, (unsigned long long)ev->size,
	    (unsigned long long)ev->rate);
	entry_init(ev, src, path, PROTO_E_FILE, ev->size);
	if (send_entry(ev, PROTO_T_OP_FILE) < 0)
		goto gone;
	while (sent < ev->size) {
		size_t n = ev->size - sent < SLOW_CHUNK
		               ? (size_t)(ev->size - sent)
		               : SLOW_CHUNK;

		for (k = 0; k < n; k++) {
			x ^= x << 13; /* xorshift64: cheap, reproducible */
			x ^= x >> 7;
			x ^= x << 17;
			buf[k] = (uint8_t)x;
		}
		proto_hash_update(h, buf, n);
		if (ev_send(ev, PROTO_T_OP_DATA, 0, buf, n) < 0)
			goto gone;
		sent += n;
		nanosleep(&pause, NULL);
	}
	end[0] = 0;
	proto_hash_final(h, end + 1);
	if (ev_send(ev, PROTO_T_OP_FILE_END, 0, end, sizeof(end)) < 0 ||
	    ev_send(ev, PROTO_T_SET_END, 0, NULL, 0) < 0)
		goto gone;
	proto_hash_free(h);
	free(buf);
	hits = read_set_done(ev, NULL, &errors);
	if (hits < 0)
		return finish(ev, EXIT_MISBEHAVED, "%s", "");
	bye(ev);
	return finish(ev, errors == 0 ? EXIT_AS_EXPECTED : EXIT_MISBEHAVED,
	              "%s", "");
gone:
	proto_hash_free(h);
	free(buf);
	say(ev, "went away after %llu bytes", (unsigned long long)sent);
	return finish(ev, EXIT_MISBEHAVED, "%s", "");
}

/* ------------------------------------------------------------- main */

static const char usage[] =
    "usage: hs-evilpeer -c PRIMARY_CONF SCENARIO [OPTIONS]\n"
    "scenarios:\n"
    "  hold [SECONDS]        HELLO, then keep the session open (default 10)\n"
    "  oversize, truncated   a frame header over the limit / a cut frame\n"
    "  unknown-type          a frame of type 200 after HELLO\n"
    "  bad-version, bad-role HELLO with version 99 / the standby role\n"
    "  zstd-bomb, zstd-nosize, zstd-garbage\n"
    "  dotdot, absolute, symlink-escape, nul-path   (--op, --path, --src)\n"
    "  unknown-set           unknown set, foreign source, missing source\n"
    "  data-overrun, short-data, hash-mismatch      (--path, --src)\n"
    "  hashreq-bomb          a HASH_REQ whose count lies\n"
    "  bad-src, deep-path, long-name   more paths the standby must refuse\n"
    "  put                   OP_FILE at --path that must be applied\n"
    "  list                  print the standby's listing of the set\n"
    "  hash-probe            HASH_REQ for --path: must not be hashed\n"
    "  sig-probe             SIG_REQ for --path: must not be signed\n"
    "  seek-bomb             OP_SEEK 2^62 bytes into a file\n"
    "  delta-bad-offset, delta-huge-literal, delta-basis-symlink\n"
    "  hardlink-escape       OP_LINK to --path (default link/victim)\n"
    "  scoped-list           SET_OPEN_SCOPED to --path (default link)\n"
    "  slow-file             a good file sent slowly (--size, --rate)\n"
    "  patch-past-end, patch-unsorted, patch-big-block, patch-huge-size,\n"
    "  patch-overrun, patch-stale   hostile block patches at --path\n"
    "                        (default evil-patch.bin) after a basis\n"
    "options:\n"
    "  --set NAME --source PATH...  the set to open (default: first [path])\n"
    "  --path P --src N             the path (relative to source N)\n"
    "  --op file|dir|delete|meta|symlink   operation for path scenarios\n"
    "  --epoch N                    epoch in our HELLO (default 0)\n"
    "  --size BYTES --rate BYTES/S  slow-file (default 4 MiB at 1 MiB/s)\n"
    "  --timeout MS                 socket timeout (default 5000)\n"
    "  --before-hello               oversize/truncated/unknown-type before "
    "HELLO\n"
    "  --express                    HELLO asks for the express lane\n"
    "exit: 0 the standby reacted as expected, 1 it did not, 2 setup error\n";

static int
parse_args(struct ev *ev, int argc, char **argv, const char **conf_path)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--before-hello") == 0) {
			ev->before_hello = 1;
			continue;
		}
		if (strcmp(a, "--express") == 0) {
			ev->express = 1;
			continue;
		}
		if (a[0] != '-') {
			if (ev->scenario == NULL)
				ev->scenario = a;
			else if (strcmp(ev->scenario, "hold") == 0 &&
			         ev->hold_s == 10)
				ev->hold_s = strtol(a, NULL, 10);
			else
				return -1;
			continue;
		}
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(a, "-c") == 0)
			*conf_path = v;
		else if (strcmp(a, "--set") == 0)
			ev->set_name = v;
		else if (strcmp(a, "--source") == 0) {
			if (ev->n_sources >= PROTO_SOURCES_MAX)
				return -1;
			ev->sources[ev->n_sources++] = (char *)v;
		} else if (strcmp(a, "--path") == 0)
			ev->path = v;
		else if (strcmp(a, "--src") == 0)
			ev->src = (int)strtol(v, NULL, 10);
		else if (strcmp(a, "--op") == 0)
			ev->op = v;
		else if (strcmp(a, "--epoch") == 0)
			ev->epoch = strtoull(v, NULL, 10);
		else if (strcmp(a, "--timeout") == 0)
			ev->timeout_ms = (int)strtol(v, NULL, 10);
		else if (strcmp(a, "--size") == 0)
			ev->size = strtoull(v, NULL, 10);
		else if (strcmp(a, "--rate") == 0)
			ev->rate = strtoull(v, NULL, 10);
		else
			return -1;
	}
	if (ev->scenario == NULL || *conf_path == NULL || ev->hold_s < 0 ||
	    ev->hold_s > EV_HOLD_MAX || ev->src < 0 || ev->src > UINT16_MAX ||
	    ev->rate < 4096 || ev->timeout_ms < 100 ||
	    ev->timeout_ms > 600000 || ev->size > ((uint64_t)1 << 40))
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(struct ev *);
	} scenarios[] = {
	    {"hold", sc_hold},
	    {"oversize", sc_raw},
	    {"truncated", sc_raw},
	    {"unknown-type", sc_raw},
	    {"bad-version", sc_bad_hello},
	    {"bad-role", sc_bad_hello},
	    {"zstd-bomb", sc_zstd},
	    {"zstd-nosize", sc_zstd},
	    {"zstd-garbage", sc_zstd},
	    {"dotdot", sc_path},
	    {"absolute", sc_path},
	    {"symlink-escape", sc_path},
	    {"nul-path", sc_path},
	    {"unknown-set", sc_unknown_set},
	    {"data-overrun", sc_data_overrun},
	    {"short-data", sc_short_data},
	    {"hash-mismatch", sc_hash_mismatch},
	    {"hashreq-bomb", sc_hashreq_bomb},
	    {"bad-src", sc_path},
	    {"deep-path", sc_path},
	    {"long-name", sc_path},
	    {"put", sc_put},
	    {"list", sc_list},
	    {"hash-probe", sc_hash_probe},
	    {"seek-bomb", sc_seek_bomb},
	    {"delta-bad-offset", sc_delta},
	    {"delta-huge-literal", sc_delta},
	    {"delta-basis-symlink", sc_delta},
	    {"sig-probe", sc_sig_probe},
	    {"hardlink-escape", sc_hardlink},
	    {"scoped-list", sc_scoped_list},
	    {"slow-file", sc_slow_file},
	    {"patch-past-end", sc_patch},
	    {"patch-unsorted", sc_patch},
	    {"patch-big-block", sc_patch},
	    {"patch-huge-size", sc_patch},
	    {"patch-overrun", sc_patch},
	    {"patch-stale", sc_patch},
	};
	struct hs_conf *conf = NULL;
	const char *conf_path = NULL;
	char err[HS_ERRMSG_MAX], why[512] = "";
	struct ev *ev;
	size_t i;
	int status = EXIT_SETUP;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	hs_log_init("hs-evilpeer", 1, HS_LOG_WARN);
	if ((ev = calloc(1, sizeof(*ev))) == NULL)
		return EXIT_SETUP;
	ev->fd = -1;
	ev->hold_s = 10;
	ev->timeout_ms = EV_TIMEOUT_MS;
	ev->size = 4u * 1024 * 1024;
	ev->rate = 1024 * 1024;
	proto_wr_init(&ev->w);
	if (parse_args(ev, argc, argv, &conf_path) < 0) {
		fputs(usage, stderr);
		goto out;
	}
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (strcmp(ev->scenario, scenarios[i].name) == 0)
			break;
	if (i == sizeof(scenarios) / sizeof(scenarios[0])) {
		fprintf(stderr, "hs-evilpeer: unknown scenario %s\n",
		        ev->scenario);
		fputs(usage, stderr);
		goto out;
	}
	if (hs_conf_load(conf_path, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "hs-evilpeer: config: %s\n", err);
		goto out;
	}
	ev->conf = conf;
	if (ev->set_name == NULL && conf->n_sets > 0)
		ev->set_name = conf->sets[0].name;
	if (ev->n_sources == 0 && conf->n_sets > 0) {
		const struct hs_pathset *set =
		    hs_conf_find_set(conf, ev->set_name);
		size_t k;

		for (k = 0;
		     set != NULL && k < set->sources.n && k < PROTO_SOURCES_MAX;
		     k++)
			ev->sources[ev->n_sources++] = set->sources.v[k];
	}
	if (ev->set_name == NULL) {
		fprintf(stderr, "hs-evilpeer: no [path] set; give --set\n");
		goto out;
	}
	ev->in = malloc(PROTO_FRAME_MAX);
	ev->plain = malloc(PROTO_FRAME_MAX);
	if (ev->in == NULL || ev->plain == NULL)
		goto out;
	if (ev_connect(ev, why, sizeof(why)) < 0) {
		printf("%s: cannot connect to the standby at %s: %s "
		       "[SETUP ERROR]\n",
		       ev->scenario, conf->peer, why);
		goto out;
	}
	status = scenarios[i].run(ev);
out:
	if (ev->ssl != NULL)
		SSL_free(ev->ssl);
	if (ev->fd >= 0)
		close(ev->fd);
	SSL_CTX_free(ev->ctx);
	proto_wr_free(&ev->w);
	free(ev->in);
	free(ev->plain);
	free(ev);
	hs_conf_free(conf);
	return status;
}
