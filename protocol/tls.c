/*
 * tls.c - mutual TLS 1.3 on a blocking socket with timeouts, framing and
 * per-frame zstd.
 *
 * Peer policy: with pins, the leaf certificate's SHA-256 must match one of
 * them (chain errors and expiry are then not fatal; expiry is logged).
 * With a CA, the chain must verify, be valid now and name the peer.  With
 * both, both must hold.  The check runs inside the handshake (verify
 * callback), so a refused peer never gets to send an application byte, and
 * again on the finished connection before the first frame is read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "proto.h"

/* Queue at most this much before writing: one TLS record burst. */
#define CONN_OUT_HIGH (256u * 1024)
/*
 * Payloads of at least this size (file data) are written straight from
 * the caller's buffer after what is queued: a copy of every byte saved
 * for one more TLS record per frame.
 */
#define CONN_DIRECT_MIN (64u * 1024)
/*
 * Bytes read from the socket at once (read-ahead): several TLS records
 * per read instead of two reads per 16 KiB record.
 */
#define CONN_READ_BUF (256u * 1024)
/* Payloads below this are never worth a compression attempt. */
#define ZSTD_MIN_LEN 128
/* zstd level 1: ~500 MB/s per core, which keeps up with the disk. */
#define ZSTD_LEVEL 1

struct proto_tls {
	SSL_CTX *ctx;
	uint8_t (*pins)[32];
	size_t n_pins;
	char *peer_name;
	int has_ca;
	/* Run while a connect or handshake waits (proto_tls_set_tick). */
	void (*tick)(void *arg);
	void *tick_arg;
};

/* A connect or handshake with a tick waits in slices of this length. */
#define CONN_TICK_MS 5

struct proto_conn {
	int fd;
	SSL *ssl;
	int timeout_ms;
	struct hs_buf out;
	uint8_t *in;    /* received payload, PROTO_FRAME_MAX */
	uint8_t *plain; /* decompressed payload, PROTO_FRAME_MAX */
	uint8_t *zbuf;  /* compression scratch */
	size_t zbuf_cap;
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	char peer[160];
	char tls_why[128]; /* OpenSSL's reason for the last failure */
	uint64_t bwlimit;  /* bytes per second written, 0 = unlimited */
	uint64_t bw_t;     /* when the bytes written so far may have gone */
	const volatile int *stop; /* set: an interrupted read or write ends */
	/*
	 * One SSL call at a time: this end's caller, or its keepalive
	 * thread (recursive: proto_conn_send flushes through the public
	 * call).  The caller holds it for whole frames, so an ALIVE never
	 * lands inside another frame.
	 */
	pthread_mutex_t io;
	_Atomic uint64_t last_tx_ns; /* a write last completed */
	_Atomic uint64_t last_rx_ns; /* a whole frame last came in */
	int broken;                  /* a write failed: no ALIVE after it */
	/* A frame proto_conn_wait read ahead (to skip an ALIVE), for recv. */
	int held;
	int held_rc;
	struct proto_msg held_m;
	/* The keepalive thread (proto_conn_keepalive), if started. */
	pthread_t ka;
	int ka_started;
	int ka_ms;
	int ka_stop;
	pthread_mutex_t ka_mu;
	pthread_cond_t ka_cv;
};

/* Why the last verification failed, per SSL object. */
static int why_idx = -1;
static pthread_once_t why_once = PTHREAD_ONCE_INIT;

static void
why_idx_init(void)
{
	why_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void
tls_log_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		hs_log_debug("tls: %s: %s", what, buf);
	}
}

/* The reason the last OpenSSL call failed, as one short phrase. */
static void
tls_error_text(char *why, size_t whylen)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(why, whylen, "%s", r ? r : "TLS handshake failed");
}

static int
pin_matches(const struct proto_tls *t, X509 *cert)
{
	uint8_t fp[32];
	unsigned int n = sizeof(fp);
	size_t i;

	if (X509_digest(cert, EVP_sha256(), fp, &n) != 1 || n != sizeof(fp))
		return 0;
	for (i = 0; i < t->n_pins; i++)
		if (memcmp(fp, t->pins[i], sizeof(fp)) == 0)
			return 1;
	return 0;
}

static void
set_why(SSL *ssl, const char *what, const char *detail)
{
	char *why = SSL_get_ex_data(ssl, why_idx);

	if (why != NULL && why[0] == '\0')
		snprintf(why, 200, "%s%s", what, detail);
}

static int
verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
	    store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct proto_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	int depth = X509_STORE_CTX_get_error_depth(store);
	int err = X509_STORE_CTX_get_error(store);
	X509 *cert = X509_STORE_CTX_get_current_cert(store);
	char fp[80];

	if (t->has_ca && !ok) {
		set_why(ssl, "certificate rejected: ",
		        X509_verify_cert_error_string(err));
		return 0;
	}
	if (t->n_pins == 0)
		return ok;
	if (depth > 0)
		return 1; /* pinned mode judges the leaf only */
	if (cert == NULL || !pin_matches(t, cert)) {
		uint8_t raw[32];
		unsigned int n = sizeof(raw);

		fp[0] = '\0';
		if (cert != NULL && X509_digest(cert, EVP_sha256(), raw, &n))
			hs_format_fingerprint(raw, fp, sizeof(fp));
		set_why(ssl, "certificate is not pinned: ", fp);
		return 0;
	}
	if (err == X509_V_ERR_CERT_HAS_EXPIRED)
		hs_log_warnx("tls: pinned peer certificate has expired");
	return 1;
}

/*
 * Identity files are small: a key, a certificate and its chain, or a CA
 * bundle (every public CA in one file is ~220 KiB).  Past this size a
 * file is not one of them, and is not read whole looking for a PEM line.
 */
#define ID_FILE_MAX (4u * 1024 * 1024)

/* A passphrase-protected key fails instead of prompting on a terminal. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* OpenSSL's reason for the last failure, or `dflt` when it gave none. */
static const char *
ossl_reason(const char *dflt)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : dflt;
}

/*
 * Why `f` (read from its start again) gave no `want` ("PRIVATE KEY",
 * "CERTIFICATE"): OpenSSL 3's decoders say "unsupported" whether the file
 * is not PEM at all, holds something else, or holds a damaged block.
 */
static void
pem_diagnose(FILE *f, const char *want, char *buf, size_t len)
{
	char *name, *header, found[128] = "";
	unsigned char *data;
	long n;
	int blocks = 0, has_want = 0;

	rewind(f);
	ERR_clear_error();
	while (PEM_read(f, &name, &header, &data, &n) == 1) {
		/* "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY": also keys. */
		has_want |= strstr(name, want) != NULL;
		if (blocks++ < 3)
			snprintf(found + strlen(found),
			         sizeof(found) - strlen(found), "%s%s",
			         found[0] ? ", " : "", name);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
	}
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)
		snprintf(buf, len, "a PEM block does not decode: %s",
		         ossl_reason("unknown error"));
	else if (blocks == 0)
		snprintf(buf, len, "no -----BEGIN line");
	else if (!has_want)
		snprintf(buf, len, "it holds %s, no %s", found, want);
	else
		snprintf(buf, len, "its %s block does not parse", want);
	ERR_clear_error();
}

/*
 * Open identity file `path` (`what` names its part: "private key",
 * "certificate", "CA file") for reading.  Refuses what cannot hold one
 * (a directory, a fifo, a huge file) and, for a private key, any access
 * for group or others, as ssh does.  One line naming the file in `why`.
 * Returns the stream (the caller closes it), or NULL with *rc set:
 * -errno when it cannot be opened, HS_ECONFIG otherwise.
 */
static FILE *
id_open(const char *what, const char *path, int is_key, int *rc, char *why,
        size_t whylen)
{
	struct stat st;
	FILE *f;
	int fd;

	/* O_NONBLOCK: a fifo in its place must not hang the start. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		*rc = -errno;
		snprintf(why, whylen, "%s %s: %s", what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	*rc = HS_ECONFIG;
	if (!S_ISREG(st.st_mode))
		snprintf(why, whylen, "%s %s: %s", what, path,
		         S_ISDIR(st.st_mode) ? strerror(EISDIR)
		                             : "not a regular file");
	else if (st.st_size > (off_t)ID_FILE_MAX)
		snprintf(why, whylen, "%s %s: %lld bytes is too large for one",
		         what, path, (long long)st.st_size);
	else if (st.st_size == 0)
		snprintf(why, whylen, "%s %s: the file is empty", what, path);
	else if (is_key && (st.st_mode & 077) != 0)
		snprintf(why, whylen,
		         "%s %s: permissions %04o are too open: group and "
		         "others must have no access (chmod 600)",
		         what, path, (unsigned)(st.st_mode & 07777));
	else if ((f = fdopen(fd, "r")) != NULL)
		return f;
	else {
		*rc = -errno;
		snprintf(why, whylen, "%s %s: %s", what, path, strerror(errno));
	}
	close(fd);
	return NULL;
}

/* The certificate and any chain after it in o->cert, into `ctx`. */
static int
id_load_cert(SSL_CTX *ctx, const char *path, X509 **leaf, char *why,
             size_t whylen)
{
	char diag[200];
	X509 *x;
	FILE *f;
	int rc;

	if ((f = id_open("certificate", path, 0, &rc, why, whylen)) == NULL)
		return rc;
	ERR_clear_error();
	rc = HS_ECONFIG;
	if ((*leaf = PEM_read_X509(f, NULL, no_passphrase, NULL)) == NULL) {
		pem_diagnose(f, "CERTIFICATE", diag, sizeof(diag));
		snprintf(why, whylen,
		         "certificate %s: not a PEM certificate: %s", path,
		         diag);
		goto out;
	}
	if (SSL_CTX_use_certificate(ctx, *leaf) != 1) {
		snprintf(why, whylen, "certificate %s: cannot be used: %s",
		         path, ossl_reason("refused by OpenSSL"));
		goto out;
	}
	/* The rest of the file is its chain, as in a chain file. */
	while ((x = PEM_read_X509(f, NULL, no_passphrase, NULL)) != NULL)
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			snprintf(why, whylen,
			         "certificate %s: a chain certificate "
			         "cannot be used: %s",
			         path, ossl_reason("refused by OpenSSL"));
			goto out;
		}
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		snprintf(why, whylen,
		         "certificate %s: what follows the first certificate "
		         "does not parse: %s",
		         path, ossl_reason("unknown error"));
		goto out;
	}
	rc = HS_OK;
out:
	ERR_clear_error();
	fclose(f);
	return rc;
}

/* The private key in `path`, which must match `leaf`, into `ctx`. */
static int
id_load_key(SSL_CTX *ctx, const char *path, X509 *leaf, const char *cert,
            char *why, size_t whylen)
{
	char diag[200];
	EVP_PKEY *pk;
	FILE *f;
	int rc;

	if ((f = id_open("private key", path, 1, &rc, why, whylen)) == NULL)
		return rc;
	ERR_clear_error();
	pk = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	rc = HS_ECONFIG;
	if (pk == NULL) {
		unsigned long e = ERR_peek_last_error();

		/* A passphrase is asked for only once the PEM line is read. */
		if (ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ ||
		    ERR_GET_REASON(e) == PEM_R_PROBLEMS_GETTING_PASSWORD)
			snprintf(why, whylen,
			         "private key %s: it is protected by a "
			         "passphrase; hamnsync needs it without one",
			         path);
		else {
			pem_diagnose(f, "PRIVATE KEY", diag, sizeof(diag));
			snprintf(why, whylen,
			         "private key %s: not a PEM private key: %s",
			         path, diag);
		}
	} else if (X509_check_private_key(leaf, pk) != 1)
		snprintf(why, whylen,
		         "private key %s: does not match the certificate %s",
		         path, cert);
	else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1 ||
	         SSL_CTX_check_private_key(ctx) != 1)
		snprintf(why, whylen, "private key %s: cannot be used: %s",
		         path, ossl_reason("refused by OpenSSL"));
	else
		rc = HS_OK;
	ERR_clear_error();
	fclose(f);
	EVP_PKEY_free(pk);
	return rc;
}

/* The CA certificates in `path` (CRLs too), trusted by `ctx`. */
static int
id_load_ca(SSL_CTX *ctx, const char *path, char *why, size_t whylen)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_INFO) * inf;
	size_t n_certs = 0;
	char diag[200];
	FILE *f;
	int i, rc;

	if ((f = id_open("CA file", path, 0, &rc, why, whylen)) == NULL)
		return rc;
	ERR_clear_error();
	inf = PEM_X509_INFO_read(f, NULL, no_passphrase, NULL);
	rc = HS_ECONFIG;
	if (inf == NULL) {
		snprintf(why, whylen, "CA file %s: does not parse: %s", path,
		         ossl_reason("unknown error"));
		goto out;
	}
	for (i = 0; i < sk_X509_INFO_num(inf); i++) {
		X509_INFO *it = sk_X509_INFO_value(inf, i);

		if ((it->x509 != NULL &&
		     X509_STORE_add_cert(store, it->x509) != 1) ||
		    (it->crl != NULL &&
		     X509_STORE_add_crl(store, it->crl) != 1)) {
			snprintf(why, whylen, "CA file %s: cannot be used: %s",
			         path, ossl_reason("refused by OpenSSL"));
			goto out;
		}
		n_certs += it->x509 != NULL;
	}
	if (n_certs == 0) {
		pem_diagnose(f, "CERTIFICATE", diag, sizeof(diag));
		snprintf(why, whylen, "CA file %s: not a PEM certificate: %s",
		         path, diag);
		goto out;
	}
	rc = HS_OK;
out:
	ERR_clear_error();
	fclose(f);
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	return rc;
}

/*
 * This node's identity into `ctx`: the certificate, then its key, then
 * the CA.  Each file is read once, by us, so every way it can be wrong
 * gets its own line naming it.
 */
static int
tls_load_identity(SSL_CTX *ctx, const struct proto_tls_opts *o, char *why,
                  size_t whylen)
{
	X509 *leaf = NULL;
	int rc;

	if ((rc = id_load_cert(ctx, o->cert, &leaf, why, whylen)) == HS_OK &&
	    (rc = id_load_key(ctx, o->key, leaf, o->cert, why, whylen)) ==
	        HS_OK &&
	    o->ca != NULL)
		rc = id_load_ca(ctx, o->ca, why, whylen);
	X509_free(leaf);
	return rc;
}

int
proto_tls_new(const struct proto_tls_opts *o, struct proto_tls **out, char *why,
              size_t whylen)
{
	struct proto_tls *t;
	int rc = HS_ETLS;

	pthread_once(&why_once, why_idx_init);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	t->has_ca = o->ca != NULL;
	if (o->n_pins > 0) {
		t->pins = calloc(o->n_pins, sizeof(*t->pins));
		if (t->pins == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		memcpy(t->pins, o->pins, o->n_pins * sizeof(*t->pins));
		t->n_pins = o->n_pins;
	}
	if (o->peer_name != NULL)
		t->peer_name = hs_xstrdup(o->peer_name);
	if (!t->has_ca && t->n_pins == 0) {
		snprintf(why, whylen, "neither peer_fingerprint nor ca is set");
		rc = HS_ECONFIG;
		goto fail;
	}
	/*
	 * Either end: the same context connects (primary) and accepts
	 * (standby), so it is loaded before the node knows its role.
	 */
	t->ctx = SSL_CTX_new(TLS_method());
	if (t->ctx == NULL) {
		snprintf(why, whylen, "cannot make a TLS context: %s",
		         ossl_reason("out of memory"));
		goto fail;
	}
	SSL_CTX_set_app_data(t->ctx, t);
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	/*
	 * No resumption, so no TLS 1.3 tickets either: after the handshake
	 * they are records that make the socket readable with no frame in
	 * them (proto_conn_wait would wait inside a read for one).
	 */
	SSL_CTX_set_num_tickets(t->ctx, 0);
	/* proto_conn_wait asks SSL_has_pending before it polls the fd. */
	SSL_CTX_set_read_ahead(t->ctx, 1);
	SSL_CTX_set_default_read_buffer_len(t->ctx, CONN_READ_BUF);
	if ((rc = tls_load_identity(t->ctx, o, why, whylen)) < 0)
		goto fail;
	SSL_CTX_set_verify(t->ctx,
	                   SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
	                   verify_cb);
	*out = t;
	return HS_OK;
fail:
	proto_tls_free(t);
	return rc;
}

void
proto_tls_free(struct proto_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t->pins);
	free(t->peer_name);
	free(t);
}

static void
sock_set_stall_timeout(int fd, int timeout_ms)
{
	unsigned int uto = (unsigned int)timeout_ms;

	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
}

static void
sock_set_timeout(int fd, int timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void
sock_describe(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host),
		            port, sizeof(port),
		            NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(buf, len, "%s:%s", host, port);
}

static int
conn_new(struct proto_tls *t, int fd, int timeout_ms, struct proto_conn **out)
{
	struct proto_conn *c;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	{
		pthread_mutexattr_t ma;

		pthread_mutexattr_init(&ma);
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&c->io, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	c->last_tx_ns = c->last_rx_ns = hs_now_mono_ns();
	hs_buf_init(&c->out, 2 * PROTO_FRAME_MAX + 2 * PROTO_HDR_LEN);
	c->in = malloc(PROTO_FRAME_MAX);
	c->plain = malloc(PROTO_FRAME_MAX);
	c->cctx = ZSTD_createCCtx();
	c->dctx = proto_frame_dctx_new();
	c->ssl = SSL_new(t->ctx);
	if (c->in == NULL || c->plain == NULL || c->cctx == NULL ||
	    c->dctx == NULL || c->ssl == NULL) {
		proto_conn_free(c);
		return -ENOMEM;
	}
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1);
	/* Without TCP_NODELAY every small exchange waits ~40 ms for an ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/*
	 * A link that stalls without FIN: data we sent and that stays
	 * unacknowledged (or a zero window) for the timeout aborts the
	 * connection, however long a blocking write would otherwise wait.
	 */
	sock_set_stall_timeout(fd, timeout_ms);
	sock_set_timeout(fd, timeout_ms);
	sock_describe(fd, c->peer, sizeof(c->peer));
	SSL_set_fd(c->ssl, fd);
	*out = c;
	return HS_OK;
}

/* After the handshake: a peer certificate that passes the policy again. */
static int
conn_check_peer(struct proto_tls *t, struct proto_conn *c, char *why,
                size_t whylen)
{
	X509 *peer = SSL_get0_peer_certificate(c->ssl);

	if (peer == NULL) {
		snprintf(why, whylen, "peer presented no certificate");
		return HS_EAUTH;
	}
	if (t->n_pins > 0 && !pin_matches(t, peer)) {
		snprintf(why, whylen, "peer certificate is not pinned");
		return HS_EAUTH;
	}
	if (t->has_ca && SSL_get_verify_result(c->ssl) != X509_V_OK) {
		snprintf(why, whylen, "peer certificate did not verify: %s",
		         X509_verify_cert_error_string(
		             SSL_get_verify_result(c->ssl)));
		return HS_EAUTH;
	}
	if (SSL_version(c->ssl) != TLS1_3_VERSION) {
		snprintf(why, whylen, "peer did not negotiate TLS 1.3");
		return HS_EAUTH;
	}
	return HS_OK;
}

/*
 * SSL_connect or SSL_accept; with a tick, the socket's timeouts are cut
 * into slices and the tick runs between them until timeout_ms is spent
 * (the connection's timeouts are restored after).
 */
static int
conn_handshake_run(struct proto_tls *t, struct proto_conn *c, int as_server)
{
	uint64_t end =
	    hs_now_mono_ns() + (uint64_t)c->timeout_ms * HS_NS_PER_MS;
	int r;

	if (t->tick != NULL)
		sock_set_timeout(c->fd, CONN_TICK_MS);
	for (;;) {
		ERR_clear_error();
		r = as_server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
		if (r == 1 || t->tick == NULL)
			break;
		if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ &&
		    SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_WRITE &&
		    !(SSL_get_error(c->ssl, r) == SSL_ERROR_SYSCALL &&
		      (errno == EAGAIN || errno == EWOULDBLOCK)))
			break;
		if (hs_now_mono_ns() >= end) {
			errno = EAGAIN;
			break;
		}
		t->tick(t->tick_arg);
	}
	if (t->tick != NULL)
		sock_set_timeout(c->fd, c->timeout_ms);
	return r;
}

static int
conn_handshake(struct proto_tls *t, struct proto_conn *c, int as_server,
               char *why, size_t whylen)
{
	char vwhy[200] = "";
	int r;

	SSL_set_ex_data(c->ssl, why_idx, vwhy);
	if (t->has_ca && t->peer_name != NULL) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);

		X509_VERIFY_PARAM_set_hostflags(
		    vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (X509_VERIFY_PARAM_set1_host(vp, t->peer_name, 0) != 1)
			return HS_ETLS;
	}
	r = conn_handshake_run(t, c, as_server);
	SSL_set_ex_data(c->ssl, why_idx, NULL);
	if (r != 1) {
		int e = SSL_get_error(c->ssl, r);

		if (vwhy[0] != '\0')
			snprintf(why, whylen, "%s", vwhy);
		else if (((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ ||
		           e == SSL_ERROR_WANT_WRITE) &&
		          (errno == EAGAIN || errno == EWOULDBLOCK)))
			snprintf(why, whylen, "TLS handshake timed out");
		else if (e == SSL_ERROR_SYSCALL || ERR_peek_error() == 0)
			snprintf(why, whylen,
			         "connection closed during the "
			         "TLS handshake");
		else
			tls_error_text(why, whylen);
		tls_log_errors("handshake");
		return vwhy[0] != '\0' ? HS_EAUTH : HS_ETLS;
	}
	return conn_check_peer(t, c, why, whylen);
}

/* poll() for fd's `events`, running t's tick every slice if it has one. */
static int
poll_ticking(const struct proto_tls *t, int fd, short events, int timeout_ms)
{
	struct pollfd pfd = {fd, events, 0};
	uint64_t end = hs_now_mono_ns() + (uint64_t)timeout_ms * HS_NS_PER_MS;
	int n;

	if (t->tick == NULL)
		return poll(&pfd, 1, timeout_ms);
	while ((n = poll(&pfd, 1, CONN_TICK_MS)) == 0 && hs_now_mono_ns() < end)
		t->tick(t->tick_arg);
	return n;
}

void
proto_tls_set_tick(struct proto_tls *t, void (*tick)(void *), void *arg)
{
	t->tick = tick;
	t->tick_arg = arg;
}

static int
connect_timeout(const struct proto_tls *t, const char *hostport, int timeout_ms,
                int *out)
{
	char host[256], portstr[8];
	struct addrinfo hints, *res = NULL, *ai;
	uint16_t port;
	int fd = -1, rc = -EHOSTUNREACH;

	if (hs_split_hostport(hostport, host, sizeof(host), &port) < 0)
		return HS_ECONFIG;
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -EHOSTUNREACH;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int err = 0;
		socklen_t el = sizeof(err);

		fd = socket(ai->ai_family,
		            ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		            ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
		    errno != EINPROGRESS) {
			rc = -errno;
			goto next;
		}
		if (poll_ticking(t, fd, POLLOUT, timeout_ms) != 1) {
			rc = -ETIMEDOUT;
			goto next;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			rc = -err;
			goto next;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		*out = fd;
		freeaddrinfo(res);
		return HS_OK;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return rc;
}

int
proto_conn_connect(struct proto_tls *t, const char *hostport, int timeout_ms,
                   struct proto_conn **out, char *why, size_t whylen)
{
	struct proto_conn *c;
	int fd, rc;

	if ((rc = connect_timeout(t, hostport, timeout_ms, &fd)) < 0) {
		snprintf(why, whylen, "cannot connect: %s", hs_strerror(rc));
		return rc;
	}
	if ((rc = conn_new(t, fd, timeout_ms, &c)) < 0)
		return rc;
	snprintf(c->peer, sizeof(c->peer), "%s", hostport);
	if ((rc = conn_handshake(t, c, 0, why, whylen)) < 0) {
		proto_conn_free(c);
		return rc;
	}
	*out = c;
	return HS_OK;
}

int
proto_conn_accept(struct proto_tls *t, int fd, int timeout_ms,
                  struct proto_conn **out, char *why, size_t whylen)
{
	struct proto_conn *c;
	int rc;

	if ((rc = conn_new(t, fd, timeout_ms, &c)) < 0)
		return rc;
	if ((rc = conn_handshake(t, c, 1, why, whylen)) < 0) {
		proto_conn_free(c);
		return rc;
	}
	*out = c;
	return HS_OK;
}

static void conn_ka_stop(struct proto_conn *c);

void
proto_conn_free(struct proto_conn *c)
{
	if (c == NULL)
		return;
	conn_ka_stop(c);
	pthread_mutex_destroy(&c->io);
	if (c->ssl != NULL) {
		if (SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	hs_buf_free(&c->out);
	free(c->in);
	free(c->plain);
	free(c->zbuf);
	free(c);
}

void
proto_conn_set_timeout(struct proto_conn *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
	sock_set_timeout(c->fd, timeout_ms);
}

void
proto_conn_set_read_timeout(struct proto_conn *c, int timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Map a failed SSL_read/SSL_write to one of our codes. */
static int
conn_io_error(struct proto_conn *c, int r)
{
	int e = SSL_get_error(c->ssl, r);
	int saved = errno;

	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		return HS_ECLOSED;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		/* A socket timeout (SO_RCVTIMEO) also ends a read by a signal:
		 * OpenSSL calls both a retry. */
		return saved == EINTR ? -EINTR : HS_ETIMEOUT;
	case SSL_ERROR_SYSCALL:
		if (saved == EAGAIN || saved == EWOULDBLOCK)
			return HS_ETIMEOUT;
		if (saved == EINTR)
			return -EINTR;
		return saved != 0 ? -saved : HS_ECLOSED;
	default:
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return HS_ECLOSED;
		}
		{
			unsigned long err = ERR_peek_last_error();
			const char *why =
			    err ? ERR_reason_error_string(err) : NULL;

			snprintf(c->tls_why, sizeof(c->tls_why), "%s",
			         why ? why : "TLS failure");
		}
		tls_log_errors(c->peer);
		return HS_ETLS;
	}
}

void
proto_conn_set_stall_timeout(struct proto_conn *c, int timeout_ms)
{
	sock_set_stall_timeout(c->fd, timeout_ms);
}

/*
 * A signal during a read or write (with socket timeouts set, the kernel
 * does not restart it): a stop request ends the call, anything else (a
 * stop and continue, a debugger attaching) is no reason to drop the
 * session.
 */
static int
conn_retry(const struct proto_conn *c, int rc)
{
	return rc == -EINTR && (c->stop == NULL || !*c->stop);
}

void
proto_conn_set_stop(struct proto_conn *c, const volatile int *stop)
{
	c->stop = stop;
}

void
proto_conn_set_bwlimit(struct proto_conn *c, uint64_t bytes_per_sec)
{
	c->bwlimit = bytes_per_sec;
	c->bw_t = 0;
}

/*
 * bwlimit: a virtual clock advances by len/rate per write; we sleep while
 * it is more than a 100 ms burst ahead of real time.
 */
static void
conn_pace(struct proto_conn *c, size_t len)
{
	uint64_t now = hs_now_mono_ns(), burst = 100000000ull;

	if (c->bwlimit == 0)
		return;
	if (c->bw_t < now)
		c->bw_t = now;
	c->bw_t += (uint64_t)len * 1000000000ull / c->bwlimit;
	if (c->bw_t > now + burst) {
		uint64_t d = c->bw_t - now - burst;
		struct timespec ts = {(time_t)(d / 1000000000ull),
		                      (long)(d % 1000000000ull)};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/*
 * Under bwlimit, write at most a tenth of a second's worth at once, so a
 * big frame trickles out instead of leaving the peer with nothing to
 * read, and no reason to think us gone, for len / rate seconds.
 */
static size_t
conn_pace_slice(const struct proto_conn *c, size_t left)
{
	uint64_t slice = c->bwlimit / 10;

	if (c->bwlimit == 0)
		return left;
	if (slice < 1024)
		slice = 1024;
	return left < slice ? left : (size_t)slice;
}

/* Write p[0..len) whole through TLS, paced by bwlimit. */
static int
conn_write(struct proto_conn *c, const uint8_t *p, size_t len)
{
	size_t done = 0, paced = 0, want = 0;

	while (done < len) {
		size_t n = 0;
		int r;

		if (done == paced) {
			want = conn_pace_slice(c, len - done);
			conn_pace(c, want);
			paced = done + want;
		}
		ERR_clear_error();
		r = SSL_write_ex(c->ssl, p + done, paced - done, &n);
		if (r != 1) {
			int rc = conn_io_error(c, r);

			if (conn_retry(c, rc))
				continue;
			c->broken = 1;
			return rc;
		}
		done += n;
		c->last_tx_ns = hs_now_mono_ns();
	}
	return HS_OK;
}

int
proto_conn_flush(struct proto_conn *c)
{
	int rc;

	pthread_mutex_lock(&c->io);
	if ((rc = conn_write(c, c->out.data, c->out.len)) == HS_OK)
		c->out.len = 0;
	pthread_mutex_unlock(&c->io);
	return rc;
}

/* Compress p into c->zbuf; returns the compressed length, or 0 to skip. */
static size_t
conn_compress(struct proto_conn *c, const void *p, size_t len)
{
	size_t bound = ZSTD_compressBound(len), n;

	if (len < ZSTD_MIN_LEN)
		return 0;
	if (bound > c->zbuf_cap) {
		uint8_t *z = realloc(c->zbuf, bound);

		if (z == NULL)
			return 0;
		c->zbuf = z;
		c->zbuf_cap = bound;
	}
	n = ZSTD_compress2(c->cctx, c->zbuf, c->zbuf_cap, p, len);
	if (ZSTD_isError(n))
		return 0;
	/* Worth it only when it saves at least 1/32 of the frame. */
	if (n >= len - len / 32)
		return 0;
	return n;
}

static int conn_send(struct proto_conn *c, uint8_t type, const void *p,
                     size_t len, enum proto_send_mode mode, int *compressed);

int
proto_conn_send(struct proto_conn *c, uint8_t type, const void *p, size_t len,
                enum proto_send_mode mode, int *compressed)
{
	int rc;

	pthread_mutex_lock(&c->io);
	rc = conn_send(c, type, p, len, mode, compressed);
	pthread_mutex_unlock(&c->io);
	return rc;
}

static int
conn_send(struct proto_conn *c, uint8_t type, const void *p, size_t len,
          enum proto_send_mode mode, int *compressed)
{
	uint8_t hdr[PROTO_HDR_LEN];
	size_t zlen = 0;
	int rc;

	if (len > PROTO_FRAME_MAX)
		return HS_ELIMIT;
	if (mode == PROTO_ZSTD)
		zlen = conn_compress(c, p, len);
	if (compressed != NULL)
		*compressed = zlen > 0;
	if (zlen > 0) {
		p = c->zbuf;
		len = zlen;
	}
	proto_hdr_pack(hdr, type, zlen > 0 ? PROTO_F_ZSTD : 0, (uint32_t)len);
	/* A big payload is encrypted from where it is, not copied first. */
	if (len >= CONN_DIRECT_MIN) {
		if ((rc = hs_buf_append(&c->out, hdr, sizeof(hdr))) < 0 ||
		    (rc = proto_conn_flush(c)) < 0)
			return rc;
		return conn_write(c, p, len);
	}
	if ((rc = hs_buf_append(&c->out, hdr, sizeof(hdr))) < 0 ||
	    (rc = hs_buf_append(&c->out, p, len)) < 0)
		return rc;
	if (c->out.len >= CONN_OUT_HIGH)
		return proto_conn_flush(c);
	return HS_OK;
}

int
proto_conn_send_wr(struct proto_conn *c, uint8_t type, struct proto_wr *w,
                   enum proto_send_mode mode)
{
	if (w->rc < 0)
		return w->rc;
	return proto_conn_send(c, type, w->buf.data, w->buf.len, mode, NULL);
}

static int
conn_read_full(struct proto_conn *c, uint8_t *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		size_t n = 0;
		int r;

		ERR_clear_error();
		r = SSL_read_ex(c->ssl, p + done, len - done, &n);
		if (r != 1) {
			int rc = conn_io_error(c, r);

			if (conn_retry(c, rc))
				continue;

			/* EOF inside a frame is a truncated frame. */
			if (rc == HS_ECLOSED && done > 0)
				return HS_EPROTO;
			return rc;
		}
		done += n;
	}
	return HS_OK;
}

static int
conn_recv(struct proto_conn *c, struct proto_msg *m)
{
	uint8_t hdr[PROTO_HDR_LEN];
	struct proto_hdr h;
	int rc;

	if ((rc = proto_conn_flush(c)) < 0)
		return rc;
	if (c->held) {
		c->held = 0;
		*m = c->held_m;
		return c->held_rc;
	}
	if ((rc = conn_read_full(c, hdr, sizeof(hdr))) < 0)
		return rc;
	if ((rc = proto_hdr_unpack(hdr, sizeof(hdr), &h)) < 0)
		return rc;
	if ((rc = conn_read_full(c, c->in, h.len)) < 0)
		return rc == HS_ECLOSED ? HS_EPROTO : rc;
	if ((rc = proto_frame_decode(&h, c->in, c->dctx, c->plain, m)) < 0)
		return rc;
	c->last_rx_ns = hs_now_mono_ns();
	if (m->type == PROTO_T_ALIVE && m->len != 0)
		return HS_EPROTO;
	return HS_OK;
}

int
proto_conn_recv_any(struct proto_conn *c, struct proto_msg *m)
{
	int rc;

	pthread_mutex_lock(&c->io);
	rc = conn_recv(c, m);
	pthread_mutex_unlock(&c->io);
	return rc;
}

int
proto_conn_recv(struct proto_conn *c, struct proto_msg *m)
{
	int rc;

	pthread_mutex_lock(&c->io);
	while ((rc = conn_recv(c, m)) == HS_OK && m->type == PROTO_T_ALIVE)
		;
	pthread_mutex_unlock(&c->io);
	return rc;
}

uint64_t
proto_conn_last_rx(const struct proto_conn *c)
{
	return c->last_rx_ns;
}

/* One ALIVE if this end has been quiet and is not in a proto_conn call. */
static void
conn_ka_beat(struct proto_conn *c)
{
	uint8_t hdr[PROTO_HDR_LEN];
	struct pollfd pfd = {c->fd, POLLOUT, 0};
	size_t n = 0;

	if (hs_now_mono_ns() - c->last_tx_ns <
	    (uint64_t)c->ka_ms * HS_NS_PER_MS)
		return;
	/* Held: this end is reading or writing, so not working elsewhere. */
	if (pthread_mutex_trylock(&c->io) != 0)
		return;
	/* Room for a few bytes, so this write cannot block. */
	if (!c->broken && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT)) {
		proto_hdr_pack(hdr, PROTO_T_ALIVE, 0, 0);
		ERR_clear_error();
		if (SSL_write_ex(c->ssl, hdr, sizeof(hdr), &n) == 1)
			c->last_tx_ns = hs_now_mono_ns();
		else
			c->broken = 1; /* the caller's next call finds out */
	}
	pthread_mutex_unlock(&c->io);
}

static void *
conn_ka_run(void *arg)
{
	struct proto_conn *c = arg;
	struct timespec ts;
	long step_ms = c->ka_ms / 4 > 10 ? c->ka_ms / 4 : 10;

	pthread_mutex_lock(&c->ka_mu);
	while (!c->ka_stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (step_ms % 1000) * 1000000;
		ts.tv_sec += step_ms / 1000 + ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&c->ka_cv, &c->ka_mu, &ts);
		if (c->ka_stop)
			break;
		pthread_mutex_unlock(&c->ka_mu);
		conn_ka_beat(c);
		pthread_mutex_lock(&c->ka_mu);
	}
	pthread_mutex_unlock(&c->ka_mu);
	return NULL;
}

int
proto_conn_keepalive(struct proto_conn *c, int interval_ms)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if (c->ka_started || interval_ms <= 0)
		return HS_OK;
	c->ka_ms = interval_ms;
	c->ka_stop = 0;
	pthread_mutex_init(&c->ka_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->ka_cv, &ca);
	pthread_condattr_destroy(&ca);
	/* Signals stay with the caller's thread: they end its reads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&c->ka, NULL, conn_ka_run, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&c->ka_cv);
		pthread_mutex_destroy(&c->ka_mu);
		return -rc;
	}
	c->ka_started = 1;
	return HS_OK;
}

static void
conn_ka_stop(struct proto_conn *c)
{
	if (!c->ka_started)
		return;
	pthread_mutex_lock(&c->ka_mu);
	c->ka_stop = 1;
	pthread_cond_signal(&c->ka_cv);
	pthread_mutex_unlock(&c->ka_mu);
	pthread_join(c->ka, NULL);
	pthread_cond_destroy(&c->ka_cv);
	pthread_mutex_destroy(&c->ka_mu);
	c->ka_started = 0;
}

int
proto_conn_wait(struct proto_conn *c, int timeout_ms)
{
	struct pollfd pfd = {c->fd, POLLIN, 0};
	int rc, n;

	uint64_t end = hs_now_mono_ns() + (uint64_t)timeout_ms * HS_NS_PER_MS;
	uint64_t now;

	if ((rc = proto_conn_flush(c)) < 0)
		return rc;
	for (;;) {
		/* A record read with the last frame may hold the next one. */
		pthread_mutex_lock(&c->io);
		n = c->held || SSL_has_pending(c->ssl);
		pthread_mutex_unlock(&c->io);
		if (!n) {
			now = hs_now_mono_ns();
			n = poll(&pfd, 1,
			         timeout_ms < 0 ? -1
			         : now >= end   ? 0
			                        : (int)((end - now) / 1000000));
			if (n < 0)
				return errno == EINTR ? 0 : -errno;
			if (n == 0)
				return 0;
		}
		/*
		 * Readable: an ALIVE alone is no frame to wake the caller
		 * for.  Anything else (or an error) is held for its recv.
		 */
		pthread_mutex_lock(&c->io);
		if (!c->held) {
			c->held_rc = conn_recv(c, &c->held_m);
			c->held = 1;
		}
		n = c->held_rc < 0 || c->held_m.type != PROTO_T_ALIVE;
		if (!n)
			c->held = 0;
		pthread_mutex_unlock(&c->io);
		if (n)
			return 1;
	}
}

void
proto_conn_send_error(struct proto_conn *c, const char *text)
{
	size_t n = strnlen(text, 1024);

	pthread_mutex_lock(&c->io);
	c->out.len = 0;
	if (proto_conn_send(c, PROTO_T_ERROR, text, n, PROTO_RAW, NULL) == 0)
		proto_conn_flush(c);
	pthread_mutex_unlock(&c->io);
}

int
proto_hello_send(struct proto_conn *c, const struct proto_hello *mine)
{
	struct proto_wr w;
	int rc;

	proto_wr_init(&w);
	proto_hello_encode(&w, mine);
	rc = proto_conn_send_wr(c, PROTO_T_HELLO, &w, PROTO_RAW);
	proto_wr_free(&w);
	if (rc == HS_OK)
		rc = proto_conn_flush(c);
	return rc;
}

int
proto_hello_recv(struct proto_conn *c, struct proto_hello *peer, char *why,
                 size_t whylen)
{
	struct proto_msg m;
	struct proto_rd r;
	int rc;

	if ((rc = proto_conn_recv(c, &m)) < 0) {
		/* In TLS 1.3 a refused client certificate shows up here. */
		if (rc == HS_ETLS && c->tls_why[0] != '\0')
			snprintf(why, whylen,
			         "handshake: the peer ended TLS: %s",
			         c->tls_why);
		else
			snprintf(why, whylen, "handshake: %s", hs_strerror(rc));
		return rc;
	}
	switch (m.type) {
	case PROTO_T_BUSY:
		snprintf(why, whylen, "standby is busy with another primary");
		return HS_EBUSY;
	case PROTO_T_ERROR:
		snprintf(why, whylen, "%.*s", (int)(m.len > 400 ? 400 : m.len),
		         (const char *)m.data);
		return HS_EREFUSED;
	case PROTO_T_HELLO:
		break;
	default:
		snprintf(why, whylen, "handshake: unexpected message type %u",
		         m.type);
		proto_conn_send_error(c, why);
		return HS_EPROTO;
	}
	r.p = m.data;
	r.left = m.len;
	if ((rc = proto_hello_decode(&r, peer)) < 0) {
		snprintf(why, whylen, "handshake: malformed HELLO");
		proto_conn_send_error(c, why);
		return rc;
	}
	if (peer->version != PROTO_VERSION) {
		snprintf(why, whylen,
		         "peer speaks protocol version %u, this "
		         "node speaks version %u",
		         peer->version, PROTO_VERSION);
		proto_conn_send_error(c, why);
		return HS_EVERSION;
	}
	return HS_OK;
}

int
proto_probe(struct proto_tls *t, const char *hostport,
            const struct proto_hello *mine, int timeout_ms,
            struct proto_hello *peer, char *why, size_t whylen)
{
	struct proto_hello h = *mine;
	struct proto_conn *c;
	int rc;

	if ((rc = proto_conn_connect(t, hostport, timeout_ms, &c, why,
	                             whylen)) < 0)
		return rc;
	h.flags |= PROTO_HELLO_F_PROBE;
	if ((rc = proto_hello_send(c, &h)) < 0)
		snprintf(why, whylen, "handshake: %s", hs_strerror(rc));
	else
		rc = proto_hello_recv(c, peer, why, whylen);
	proto_conn_free(c);
	return rc;
}

const char *
proto_conn_peer(const struct proto_conn *c)
{
	return c->peer;
}

uint64_t
proto_conn_bytes_out(const struct proto_conn *c)
{
	return BIO_number_written(SSL_get_wbio(c->ssl));
}

uint64_t
proto_conn_bytes_in(const struct proto_conn *c)
{
	return BIO_number_read(SSL_get_rbio(c->ssl));
}

int
proto_cert_fingerprint(const char *pem, uint8_t fp[32])
{
	FILE *f = fopen(pem, "re");
	X509 *x;
	unsigned int n = 32;
	int rc = HS_ETLS;

	if (f == NULL)
		return -errno;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x != NULL && X509_digest(x, EVP_sha256(), fp, &n) == 1 && n == 32)
		rc = HS_OK;
	X509_free(x);
	return rc;
}

int
proto_tls_from_conf(const struct hs_conf *conf, struct proto_tls **out,
                    char *why, size_t whylen)
{
	struct proto_tls_opts o;

	memset(&o, 0, sizeof(o));
	o.cert = conf->cert;
	o.key = conf->key;
	o.ca = conf->ca;
	o.pins = (const uint8_t(*)[32])conf->peer_fps;
	o.n_pins = conf->n_peer_fps;
	o.peer_name = conf->peer_name;
	return proto_tls_new(&o, out, why, whylen);
}

int
proto_cert_days_left(const char *pem, int *days)
{
	FILE *f = fopen(pem, "re");
	X509 *x;
	int d = 0, sec = 0, rc = HS_ETLS;

	if (f == NULL)
		return -errno;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x != NULL &&
	    ASN1_TIME_diff(&d, &sec, NULL, X509_get0_notAfter(x)) == 1) {
		*days = d - (sec < 0);
		rc = HS_OK;
	}
	X509_free(x);
	return rc;
}
