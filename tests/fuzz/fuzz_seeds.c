/*
 * fuzz_seeds.c - writes the seed corpora of the binary targets, each
 * message made by the protocol's own encoders (proto_*_encode, and the
 * proto_put_* calls the primary and the standby make for the bodies
 * without an encoder), and a real librsync signature and delta.
 *
 * usage: fuzz_seeds DIR	(writes DIR/fuzz_<target>/<name>)
 * The seeds in tests/fuzz/corpus/ were written by it; run it again when
 * a wire format changes.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "delta.h"
#include "fuzz.h"
#include "proto.h"

#define BASIS_LEN (64u * 1024)

static const char *top;

static void
seed(const char *target, const char *name, uint8_t sel, const void *p,
     size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", top, target, name);
	if ((f = fopen(path, "we")) == NULL ||
	    (sel != 0xff && fputc(sel, f) == EOF) ||
	    (len > 0 && fwrite(p, 1, len, f) != len) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* Seed from a writer, which is reset after. */
static void
seed_wr(const char *target, const char *name, uint8_t sel, struct proto_wr *w)
{
	if (w->rc < 0) {
		fprintf(stderr, "fuzz_seeds: %s/%s: %s\n", target, name,
		        hs_strerror(w->rc));
		exit(1);
	}
	seed(target, name, sel, w->buf.data, w->buf.len);
	proto_wr_reset(w);
}

/* Two extended attributes, in name order. */
static void
xattrs_blob(struct proto_wr *w)
{
	proto_put_str(w, "security.selinux");
	proto_put_u32(w, 27);
	proto_put_bytes(w, "system_u:object_r:etc_t:s0", 27);
	proto_put_str(w, "user.xcat");
	proto_put_u32(w, 3);
	proto_put_bytes(w, "yes", 3);
}

static void
entry_fill(struct proto_entry *e, uint8_t type, const char *path, uint64_t size)
{
	memset(e, 0, sizeof(*e));
	e->src = 1;
	e->type = type;
	e->mode = type == PROTO_E_DIR ? 0755 : 0644;
	e->size = size;
	e->mtime_sec = 1700000000;
	e->mtime_nsec = 123456789;
	e->dev = 2049;
	e->ino = 131077;
	e->nlink = 1;
	e->blocks = (size + 511) / 512;
	snprintf(e->path, sizeof(e->path), "%s", path);
}

static void
put_hash(struct proto_wr *w, uint8_t fill)
{
	uint8_t h[PROTO_HASH_LEN];

	memset(h, fill, sizeof(h));
	proto_put_bytes(w, h, sizeof(h));
}

static void
put_scope(struct proto_wr *w)
{
	struct proto_scope v[3] = {
	    {0, 1, "install/postscripts"},
	    {0, 0, "xcat/cfgloc"},
	    {1, 0, "hosts"},
	};

	proto_scope_encode(w, v, 3);
}

static void
put_set_open(struct proto_wr *w)
{
	struct proto_set_open so;

	memset(&so, 0, sizeof(so));
	snprintf(so.name, sizeof(so.name), "install");
	so.n_sources = 2;
	so.sources[0] = "/install";
	so.sources[1] = "/etc/xcat";
	proto_set_open_encode(w, &so);
}

static void
requests(struct proto_wr *w)
{
	const char *t = "fuzz_request";
	struct proto_hello h = {
	    PROTO_MAGIC, PROTO_VERSION,
	    "mn1",       HS_ROLE_PRIMARY,
	    7,           PROTO_HELLO_F_EXPRESS | PROTO_HELLO_F_ALIVE};
	struct proto_patch_hdr ph;
	static struct proto_entry e;
	struct proto_wr x;

	proto_hello_encode(w, &h);
	seed_wr(t, "hello", 0, w);
	proto_put_u64(w, 1500);
	proto_put_u64(w, 12);
	proto_put_u8(w, 1);
	seed_wr(t, "state", 1, w);
	put_set_open(w);
	seed_wr(t, "set_open", 2, w);
	put_set_open(w);
	put_scope(w);
	seed_wr(t, "set_open_scoped", 3, w);
	put_set_open(w);
	put_scope(w);
	seed_wr(t, "set_open_blind", 4, w);
	proto_put_str(w, "install");
	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "postscripts/a");
	proto_put_str(w, "postscripts/b");
	proto_put_u16(w, 1);
	proto_put_str(w, "hosts.new");
	proto_put_str(w, "hosts");
	seed_wr(t, "set_renames", 5, w);
	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "postscripts/syslog");
	proto_put_u16(w, 1);
	proto_put_str(w, "");
	seed_wr(t, "hash_req", 6, w);

	proto_wr_init(&x);
	xattrs_blob(&x);
	entry_fill(&e, PROTO_E_FILE, "postscripts/syslog", 4242);
	e.xattrs = x.buf.data;
	e.xattrs_len = (uint32_t)x.buf.len;
	e.xhash[0] = 0x5a;
	proto_entry_encode(w, &e);
	seed_wr(t, "op_file", 7, w);
	entry_fill(&e, PROTO_E_SYMLINK, "netboot/latest", 0);
	snprintf(e.link, sizeof(e.link), "../rhels9/x86_64");
	proto_entry_encode(w, &e);
	seed_wr(t, "op_symlink", 7, w);
	entry_fill(&e, PROTO_E_CHR, "dev/null", 0);
	e.rdev = 0x103;
	proto_entry_encode(w, &e);
	seed_wr(t, "op_special", 7, w);

	proto_put_u64(w, 1u << 20);
	seed_wr(t, "op_seek", 8, w);
	proto_put_u8(w, 0);
	put_hash(w, 0x11);
	seed_wr(t, "op_file_end", 9, w);
	proto_put_u16(w, 0);
	proto_put_str(w, "postscripts/b");
	proto_put_u16(w, 0);
	proto_put_str(w, "postscripts/a");
	seed_wr(t, "op_link", 10, w);
	entry_fill(&e, PROTO_E_FILE, "images/root.img", 40u << 20);
	memset(ph.basis, 0x22, sizeof(ph.basis));
	ph.bsize = 64 * 1024;
	proto_entry_encode(w, &e);
	proto_patch_hdr_encode(w, &ph);
	seed_wr(t, "op_patch", 11, w);
	seed_wr(t, "set_end_empty", 12, w);
	put_hash(w, 0x33);
	w->buf.len -= PROTO_HASH_LEN - PROTO_JOURNAL_ID_LEN;
	proto_put_u64(w, 99);
	seed_wr(t, "set_end", 12, w);
	proto_wr_free(&x);
}

static void
replies(struct proto_wr *w, const uint8_t *sig, size_t siglen)
{
	const char *t = "fuzz_reply";
	static struct proto_entry e;
	struct proto_wr x;

	proto_put_str(w, "install");
	proto_put_str(w, "set install is not configured on this standby");
	seed_wr(t, "set_refuse", 0, w);

	proto_wr_init(&x);
	xattrs_blob(&x);
	proto_put_u32(w, 3);
	entry_fill(&e, PROTO_E_DIR, "", 0);
	proto_entry_encode(w, &e);
	entry_fill(&e, PROTO_E_FILE, "postscripts/syslog", 4242);
	e.xattrs = x.buf.data;
	e.xattrs_len = (uint32_t)x.buf.len;
	proto_entry_encode(w, &e);
	entry_fill(&e, PROTO_E_SYMLINK, "latest", 0);
	snprintf(e.link, sizeof(e.link), "rhels9");
	proto_entry_encode(w, &e);
	seed_wr(t, "list", 1, w);
	proto_wr_free(&x);

	proto_put_u32(w, 2);
	proto_put_u16(w, 0);
	proto_put_str(w, "postscripts/syslog");
	proto_put_u8(w, 0);
	put_hash(w, 0x44);
	proto_put_u16(w, 1);
	proto_put_str(w, "gone");
	proto_put_u8(w, 1);
	put_hash(w, 0);
	seed_wr(t, "hash_reply", 2, w);

	proto_put_u16(w, 0);
	proto_put_str(w, "images/small.img");
	proto_put_u8(w, 0);
	put_hash(w, 0x55);
	proto_put_u64(w, BASIS_LEN);
	proto_put_u32(w, (uint32_t)siglen);
	proto_put_bytes(w, sig, siglen);
	seed_wr(t, "sig", 3, w);

	proto_put_u64(w, 120);
	proto_put_u64(w, 2);
	proto_put_u32(w, 2);
	proto_put_str(w, "postscripts/x: Permission denied");
	proto_put_str(w, "hosts: No space left on device");
	proto_put_u64(w, 99);
	seed_wr(t, "set_done", 4, w);
	put_hash(w, 0x66);
	w->buf.len -= PROTO_HASH_LEN - PROTO_JOURNAL_ID_LEN;
	proto_put_u64(w, 98);
	seed_wr(t, "journal", 5, w);
	proto_put_u8(w, 0);
	proto_put_u32(w, 1);
	proto_put_u16(w, 0);
	proto_put_str(w, "images/root.img");
	seed_wr(t, "patch_stale", 6, w);
}

static void
journal(struct proto_wr *w)
{
	const char *t = "fuzz_journal";

	proto_put_str(w, "install");
	proto_put_u64(w, 123456789012ull);
	proto_put_u64(w, 1700000000);
	put_scope(w);
	seed_wr(t, "entry", 0, w);
	proto_put_str(w, "install");
	proto_put_u64(w, 1);
	proto_put_u64(w, 1700000000);
	proto_put_u32(w, 0);
	seed_wr(t, "entry_whole_set", 0, w);
	proto_put_u32(w, 1);
	proto_put_u16(w, 0);
	proto_put_str(w, "postscripts/a");
	proto_put_str(w, "postscripts/b");
	seed_wr(t, "renames", 1, w);
	put_hash(w, 0x77);
	w->buf.len -= PROTO_HASH_LEN - PROTO_JOURNAL_ID_LEN;
	proto_put_u64(w, 5);
	seed_wr(t, "state", 2, w);
}

/* fuzz_patch's expanded block: u8 1 | u64 offset | u32 n. */
static void
put_fill(struct proto_wr *w, uint64_t off, uint32_t n)
{
	proto_put_u8(w, 1);
	proto_put_u64(w, off);
	proto_put_u32(w, n);
}

static void
patches(struct proto_wr *w)
{
	const char *t = "fuzz_patch";
	static struct proto_entry e;
	struct proto_patch_hdr ph;
	struct proto_wr b;
	const uint32_t bs = 16 * 1024;

	proto_wr_init(&b);
	entry_fill(&e, PROTO_E_FILE, "images/root.img", 3 * bs + 100);
	memset(ph.basis, 0x22, sizeof(ph.basis));
	ph.bsize = bs;
	proto_entry_encode(&b, &e);
	proto_patch_hdr_encode(&b, &ph);

	/* The basis holds two blocks; block 0 changed, 2 and the tail new. */
	proto_put_u64(w, 2 * bs);
	proto_put_u16(w, (uint16_t)b.buf.len);
	proto_put_bytes(w, b.buf.data, b.buf.len);
	put_fill(w, 0, bs);
	put_fill(w, 2 * bs, bs);
	put_fill(w, 3 * bs, 100);
	seed_wr(t, "grow", 0xff, w);

	/* The same size: only the changed block, one raw frame of it. */
	proto_put_u64(w, 3 * bs + 100);
	proto_put_u16(w, (uint16_t)b.buf.len);
	proto_put_bytes(w, b.buf.data, b.buf.len);
	proto_put_u8(w, 0);
	proto_put_u16(w, 8 + 100);
	proto_put_u64(w, 3 * bs);
	proto_put_bytes(w, e.path, 100);
	seed_wr(t, "tail", 0xff, w);
	proto_wr_free(&b);
}

static void
frame(struct proto_wr *w, uint8_t type, const void *p, size_t len, int zstd)
{
	uint8_t hdr[PROTO_HDR_LEN];
	uint8_t *z = NULL;
	size_t n = len;

	if (zstd) {
		size_t cap = ZSTD_compressBound(len);

		if ((z = malloc(cap)) == NULL)
			exit(1);
		/* One-shot compression records the content size. */
		n = ZSTD_compress(z, cap, p, len, 1);
		if (ZSTD_isError(n))
			exit(1);
		p = z;
	}
	proto_hdr_pack(hdr, type, zstd ? PROTO_F_ZSTD : 0, (uint32_t)n);
	proto_put_bytes(w, hdr, sizeof(hdr));
	proto_put_bytes(w, p, n);
	free(z);
}

static void
frames(struct proto_wr *w)
{
	const char *t = "fuzz_frame";
	struct proto_hello h = {
	    PROTO_MAGIC, PROTO_VERSION, "mn2", HS_ROLE_STANDBY, 7, 0};
	static struct proto_entry e;
	struct proto_wr b;
	int i;

	proto_wr_init(&b);
	proto_hello_encode(&b, &h);
	frame(w, PROTO_T_HELLO, b.buf.data, b.buf.len, 0);
	seed_wr(t, "hello", 0xff, w);
	proto_wr_reset(&b);
	proto_put_u32(&b, 64);
	for (i = 0; i < 64; i++) {
		char path[64];

		snprintf(path, sizeof(path), "postscripts/script%02d", i);
		entry_fill(&e, PROTO_E_FILE, path, 1000 + (uint64_t)i);
		proto_entry_encode(&b, &e);
	}
	frame(w, PROTO_T_LIST, b.buf.data, b.buf.len, 1);
	seed_wr(t, "list_zstd", 0xff, w);
	frame(w, PROTO_T_ALIVE, NULL, 0, 0);
	frame(w, PROTO_T_LIST, b.buf.data, b.buf.len, 1);
	frame(w, PROTO_T_LIST_END, NULL, 0, 0);
	seed_wr(t, "stream", 0xff, w);
	proto_wr_free(&b);
}

static int
emit_buf(void *arg, const uint8_t *p, size_t n)
{
	return hs_buf_append(arg, p, n);
}

static void
deltas(const uint8_t *sig, size_t siglen, const uint8_t *newfile)
{
	struct delta_enc *e;
	struct hs_buf d;

	hs_buf_init(&d, 4u * 1024 * 1024);
	if (delta_enc_new(sig, siglen, &e) < 0 ||
	    delta_enc_feed(e, newfile, BASIS_LEN, 1, emit_buf, &d) < 0) {
		fprintf(stderr, "fuzz_seeds: cannot make a delta\n");
		exit(1);
	}
	delta_enc_free(e);
	seed("fuzz_delta", "delta", 0x00, d.data, d.len);
	seed("fuzz_delta", "delta_step128", 0x0e, d.data, d.len);
	seed("fuzz_delta", "sig", 0x01, sig, siglen);
	hs_buf_free(&d);
}

/* A frame of fuzz_apply: u8 type | u16 n | body. */
static void
op(struct proto_wr *w, uint8_t type, const void *p, size_t len)
{
	proto_put_u8(w, type);
	proto_put_u16(w, (uint16_t)len);
	proto_put_bytes(w, p, len);
}

static void
op_entry(struct proto_wr *w, uint8_t type, const struct proto_entry *e)
{
	struct proto_wr b;

	proto_wr_init(&b);
	proto_entry_encode(&b, e);
	op(w, type, b.buf.data, b.buf.len);
	proto_wr_free(&b);
}

/* The sources themselves, as the primary sends them first. */
static void
op_sources(struct proto_wr *w)
{
	static struct proto_entry e;

	entry_fill(&e, PROTO_E_DIR, "", 0);
	e.src = 0;
	op_entry(w, PROTO_T_OP_DIR, &e);
	e.src = 1;
	op_entry(w, PROTO_T_OP_DIR, &e);
}

/* fuzz_apply's stand-in OP_FILE_END: status 0, hash of zeros. */
static void
op_end(struct proto_wr *w, const uint8_t *hash)
{
	uint8_t b[1 + PROTO_HASH_LEN] = {0};

	if (hash != NULL)
		memcpy(b + 1, hash, PROTO_HASH_LEN);
	op(w, PROTO_T_OP_FILE_END, b, sizeof(b));
}

/* fuzz_apply's filler frames: OP_DATA (1) and OP_PATCH_DATA (2). */
static void
op_fill(struct proto_wr *w, int patch, uint64_t off, uint32_t n)
{
	proto_put_u8(w, patch ? 2 : 1);
	proto_put_u16(w, patch ? 12 : 4);
	if (patch)
		proto_put_u64(w, off);
	proto_put_u32(w, n);
}

static int
emit_hash(void *arg, const uint8_t *p, size_t n)
{
	proto_hash_update(arg, p, n);
	return HS_OK;
}

static void
applies(struct proto_wr *w)
{
	const char *t = "fuzz_apply";
	static struct proto_entry e;
	static uint8_t base[8192], next[8192];
	uint8_t hash[PROTO_HASH_LEN], h2[PROTO_HASH_LEN];
	struct proto_patch_hdr ph;
	struct proto_hash *xh;
	struct delta_enc *enc;
	struct proto_wr b;
	struct hs_buf sig, d;
	uint64_t size;
	int fd;

	proto_wr_init(&b);
	op_sources(w);
	entry_fill(&e, PROTO_E_DIR, "postscripts", 0);
	op_entry(w, PROTO_T_OP_DIR, &e);
	entry_fill(&e, PROTO_E_FILE, "postscripts/a", 13);
	op_entry(w, PROTO_T_OP_FILE, &e);
	op(w, PROTO_T_OP_DATA, "#!/bin/sh\nid\n", 13);
	op_end(w, NULL);
	entry_fill(&e, PROTO_E_SYMLINK, "postscripts/b", 0);
	snprintf(e.link, sizeof(e.link), "a");
	op_entry(w, PROTO_T_OP_SYMLINK, &e);
	proto_put_u16(&b, 1);
	proto_put_str(&b, "postscripts/c");
	proto_put_u16(&b, 1);
	proto_put_str(&b, "postscripts/a");
	op(w, PROTO_T_OP_LINK, b.buf.data, b.buf.len);
	proto_wr_reset(&b);
	entry_fill(&e, PROTO_E_FILE, "postscripts/a", 13);
	e.mode = 0755;
	op_entry(w, PROTO_T_OP_META, &e);
	op(w, 0, NULL, 0);
	entry_fill(&e, PROTO_E_FILE, "postscripts/c", 13);
	op_entry(w, PROTO_T_OP_DELETE, &e);
	entry_fill(&e, PROTO_E_FIFO, "fifo", 0);
	op_entry(w, PROTO_T_OP_SPECIAL, &e);
	entry_fill(&e, PROTO_E_CHR, "null", 0);
	e.rdev = 0x103;
	op_entry(w, PROTO_T_OP_SPECIAL, &e);
	seed_wr(t, "ops", 0xff, w);

	/* A sparse file: data, a hole to 1 MiB, the end. */
	op_sources(w);
	entry_fill(&e, PROTO_E_FILE, "sparse", 1u << 20);
	op_entry(w, PROTO_T_OP_FILE, &e);
	op_fill(w, 0, 0, 4096);
	proto_put_u64(&b, 1u << 20);
	op(w, PROTO_T_OP_SEEK, b.buf.data, b.buf.len);
	proto_wr_reset(&b);
	op_end(w, NULL);
	seed_wr(t, "sparse", 0xff, w);

	/* A big file, its record, then a patch of its second block. */
	op_sources(w);
	entry_fill(&e, PROTO_E_DIR, "images", 0);
	op_entry(w, PROTO_T_OP_DIR, &e);
	entry_fill(&e, PROTO_E_FILE, "images/root.img", (1u << 20) + 100);
	op_entry(w, PROTO_T_OP_FILE, &e);
	op_fill(w, 0, 0, (1u << 20) + 100);
	op_end(w, NULL);
	op(w, 0, NULL, 0);
	memset(ph.basis, 0, sizeof(ph.basis));
	ph.bsize = 16 * 1024;
	proto_entry_encode(&b, &e);
	proto_patch_hdr_encode(&b, &ph);
	op(w, PROTO_T_OP_PATCH, b.buf.data, b.buf.len);
	proto_wr_reset(&b);
	op_fill(w, 1, 16 * 1024, 16 * 1024);
	memset(hash, 0x77, sizeof(hash));
	op_end(w, hash);
	op(w, 0, NULL, 0);
	seed_wr(t, "patch", 0xff, w);

	/*
	 * A delta: a basis of filler bytes (as fuzz_apply's OP_DATA stand-in
	 * writes them), then a new version of it encoded against its
	 * signature, with its real transfer hash.
	 */
	memset(base, 0x5a, sizeof(base));
	memcpy(next, base, sizeof(next));
	memcpy(next + 100, "changed on the primary", 22);
	hs_buf_init(&sig, PROTO_SIG_MAX);
	hs_buf_init(&d, PROTO_FRAME_MAX);
	if ((fd = memfd_create("base", MFD_CLOEXEC)) < 0 ||
	    write(fd, base, sizeof(base)) != (ssize_t)sizeof(base) ||
	    lseek(fd, 0, SEEK_SET) < 0 ||
	    delta_sig_fd(fd, &sig, h2, &size) < 0 ||
	    delta_enc_new(sig.data, sig.len, &enc) < 0 ||
	    delta_enc_feed(enc, next, sizeof(next), 1, emit_buf, &d) < 0 ||
	    proto_hash_new_xfer(&xh) < 0) {
		fprintf(stderr, "fuzz_seeds: cannot make the apply delta\n");
		exit(1);
	}
	close(fd);
	delta_enc_free(enc);
	(void)emit_hash(xh, next, sizeof(next));
	proto_hash_final(xh, hash);
	proto_hash_free(xh);
	op_sources(w);
	entry_fill(&e, PROTO_E_FILE, "hosts", sizeof(base));
	op_entry(w, PROTO_T_OP_FILE, &e);
	op_fill(w, 0, 0, sizeof(base));
	op_end(w, NULL);
	op(w, 0, NULL, 0);
	entry_fill(&e, PROTO_E_FILE, "hosts", sizeof(next));
	op_entry(w, PROTO_T_OP_DELTA, &e);
	op(w, PROTO_T_OP_DATA, d.data, d.len);
	op_end(w, hash);
	seed_wr(t, "delta", 0xff, w);
	hs_buf_free(&sig);
	hs_buf_free(&d);
	proto_wr_free(&b);
}

/* A database snapshot's MANIFEST: one file, and two with a real mark. */
static void
manifests(void)
{
	static struct proto_manifest m;
	const char *t = "fuzz_manifest";
	struct hs_buf b;

	memset(&m, 0, sizeof(m));
	m.generation = 1;
	m.made = 1765000000.25;
	snprintf(m.type, sizeof(m.type), "sqlite");
	snprintf(m.mark, sizeof(m.mark), "0:0");
	m.n = 1;
	snprintf(m.files[0].name, sizeof(m.files[0].name), "xcatdb.sqlite");
	m.files[0].size = 1048576;
	memset(m.files[0].sha256, 0x5a, PROTO_HASH_LEN);
	hs_buf_init(&b, PROTO_MANIFEST_MAX);
	if (proto_manifest_encode(&m, &b) < 0)
		goto fail;
	seed(t, "sqlite", 0xff, b.data, b.len);
	b.len = 0;
	m.generation = 12;
	snprintf(m.type, sizeof(m.type), "postgresql");
	snprintf(m.mark, sizeof(m.mark), "0/3000148 7301234567890123456");
	m.n = 2;
	snprintf(m.files[0].name, sizeof(m.files[0].name), "dump.sql");
	m.files[0].size = 0;
	memset(m.files[0].sha256, 0xe3, PROTO_HASH_LEN);
	snprintf(m.files[1].name, sizeof(m.files[1].name), "globals sql");
	m.files[1].size = UINT64_MAX;
	memset(m.files[1].sha256, 0x01, PROTO_HASH_LEN);
	if (proto_manifest_encode(&m, &b) < 0)
		goto fail;
	seed(t, "postgresql", 0xff, b.data, b.len);
	hs_buf_free(&b);
	return;
fail:
	fprintf(stderr, "fuzz_seeds: cannot encode a manifest\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	static uint8_t basis[BASIS_LEN], newfile[BASIS_LEN];
	uint8_t hash[PROTO_HASH_LEN];
	struct proto_wr w;
	struct hs_buf sig;
	uint64_t size;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_seeds DIR\n");
		return 2;
	}
	top = argv[1];
	fz_basis(basis, newfile, BASIS_LEN);
	hs_buf_init(&sig, PROTO_SIG_MAX);
	if ((fd = memfd_create("basis", MFD_CLOEXEC)) < 0 ||
	    write(fd, basis, BASIS_LEN) != (ssize_t)BASIS_LEN ||
	    lseek(fd, 0, SEEK_SET) < 0 ||
	    delta_sig_fd(fd, &sig, hash, &size) < 0) {
		fprintf(stderr, "fuzz_seeds: cannot sign the basis\n");
		return 1;
	}
	close(fd);
	proto_wr_init(&w);
	requests(&w);
	replies(&w, sig.data, sig.len);
	journal(&w);
	patches(&w);
	frames(&w);
	deltas(sig.data, sig.len, newfile);
	applies(&w);
	manifests();
	proto_wr_free(&w);
	hs_buf_free(&sig);
	return 0;
}
