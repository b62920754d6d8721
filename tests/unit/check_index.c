/*
 * check_index.c - index/files.c: the primary's file records (put, get,
 * delete, prune, a walk in digest order, long paths, records of one
 * source apart from another's), batches that roll back on error, the
 * change journal (add, walk after a sequence, trimmed by the commit that
 * acknowledges it) and the standby's applied sequence; a view of one
 * source's records in place; the clean mark that lets an open skip the
 * probe, and the damage that must still be found with a mark in place;
 * and index/blocks.c: the block tables and written records of patches,
 * which follow a renamed directory.  Each test works in its own
 * temporary state_dir.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "check_aux.h"
#include "idx_int.h" /* struct clean_mark, to forge one */

static char dir[64];
static struct idx *x;

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_index.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
}

static void
teardown(void)
{
	char cmd[128];

	idx_close(x);
	x = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct idx_file
rec(uint64_t size, int64_t ctime_sec)
{
	struct idx_file f;

	memset(&f, 0, sizeof(f));
	f.type = 1;
	f.mode = 0644;
	f.size = size;
	f.ino = 42;
	f.mtime_sec = 1700000000;
	f.mtime_nsec = 123456789;
	f.ctime_sec = ctime_sec;
	f.ctime_nsec = 987654321;
	return f;
}

static void
put(const uint8_t sk[8], const char *path, uint64_t size)
{
	struct idx_batch *b;
	struct idx_file f = rec(size, 1700000001);

	ck_assert_int_eq(idx_batch_begin(x, &b), HS_OK);
	idx_file_put(b, sk, path, &f);
	ck_assert_int_eq(idx_batch_commit(b, 0), HS_OK);
}

START_TEST(test_put_get_del)
{
	uint8_t sk[8];
	struct idx_file f, want = rec(7, 1700000001);
	struct idx_batch *b;

	idx_source_key("install", "/install", sk);
	ck_assert_int_eq(idx_file_get(x, sk, "a/b", &f), HS_ENOTFOUND);
	put(sk, "a/b", 7);
	ck_assert_int_eq(idx_file_get(x, sk, "a/b", &f), HS_OK);
	ck_assert_mem_eq(&f, &want, sizeof(f));
	/* the same path in another set or source is another record */
	{
		uint8_t other[8];

		idx_source_key("install", "/install2", other);
		ck_assert_mem_ne(other, sk, 8);
		ck_assert_int_eq(idx_file_get(x, other, "a/b", &f),
		                 HS_ENOTFOUND);
		idx_source_key("other", "/install", other);
		ck_assert_int_eq(idx_file_get(x, other, "a/b", &f),
		                 HS_ENOTFOUND);
	}
	ck_assert_int_eq(idx_batch_begin(x, &b), HS_OK);
	idx_file_del(b, sk, "a/b");
	idx_file_del(b, sk, "never/there"); /* not an error */
	ck_assert_int_eq(idx_batch_commit(b, 0), HS_OK);
	ck_assert_int_eq(idx_file_get(x, sk, "a/b", &f), HS_ENOTFOUND);
}
END_TEST

START_TEST(test_long_path)
{
	/* LMDB keys stop at 511 bytes; paths go to 4095. */
	char path[IDX_PATH_MAX + 1];
	uint8_t sk[8];
	struct idx_file f;

	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	idx_source_key("s", "/src", sk);
	put(sk, path, 99);
	ck_assert_int_eq(idx_file_get(x, sk, path, &f), HS_OK);
	ck_assert_uint_eq(f.size, 99);
}
END_TEST

struct seen {
	int n;
	uint8_t last[IDX_DIGEST_LEN];
	int ordered;
	char names[8][16];
};

static int
collect(void *arg, const uint8_t dig[IDX_DIGEST_LEN], const char *path,
        const struct idx_file *f)
{
	struct seen *s = arg;
	uint8_t want[IDX_DIGEST_LEN];

	(void)f;
	idx_path_digest(path, want);
	ck_assert_mem_eq(want, dig, IDX_DIGEST_LEN);
	if (s->n > 0 && memcmp(s->last, dig, IDX_DIGEST_LEN) >= 0)
		s->ordered = 0;
	memcpy(s->last, dig, IDX_DIGEST_LEN);
	if (s->n < 8)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", path);
	s->n++;
	return 0;
}

START_TEST(test_walk_order_and_sources)
{
	uint8_t a[8], b[8];
	struct seen s;
	const char *names[] = {"", "x", "x/y", "x/y/z", "w"};
	size_t i;

	idx_source_key("set", "/a", a);
	idx_source_key("set", "/b", b);
	for (i = 0; i < 5; i++)
		put(a, names[i], i);
	put(b, "only-b", 1);
	memset(&s, 0, sizeof(s));
	s.ordered = 1;
	ck_assert_int_eq(idx_files_walk(x, a, collect, &s), HS_OK);
	ck_assert_int_eq(s.n, 5);
	ck_assert(s.ordered);
	memset(&s, 0, sizeof(s));
	s.ordered = 1;
	ck_assert_int_eq(idx_files_walk(x, b, collect, &s), HS_OK);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.names[0], "only-b");
}
END_TEST

static int
keep_outside_x(void *arg, const uint8_t dig[IDX_DIGEST_LEN], const char *path,
               const struct idx_file *f)
{
	(void)arg;
	(void)dig;
	(void)f;
	return !(strcmp(path, "x") == 0 || strncmp(path, "x/", 2) == 0);
}

START_TEST(test_prune)
{
	uint8_t a[8];
	struct idx_batch *bt;
	struct idx_file f;
	struct seen s;

	idx_source_key("set", "/a", a);
	put(a, "x", 1);
	put(a, "x/y", 1);
	put(a, "xx", 1); /* not below x */
	put(a, "w", 1);
	ck_assert_int_eq(idx_batch_begin(x, &bt), HS_OK);
	idx_files_prune(bt, a, keep_outside_x, NULL);
	ck_assert_int_eq(idx_batch_commit(bt, 0), HS_OK);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(idx_files_walk(x, a, collect, &s), HS_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(idx_file_get(x, a, "xx", &f), HS_OK);
	ck_assert_int_eq(idx_file_get(x, a, "x/y", &f), HS_ENOTFOUND);
}
END_TEST

START_TEST(test_abort_keeps_nothing)
{
	uint8_t a[8];
	struct idx_batch *b;
	struct idx_file f = rec(1, 2);

	idx_source_key("set", "/a", a);
	ck_assert_int_eq(idx_batch_begin(x, &b), HS_OK);
	idx_file_put(b, a, "gone", &f);
	idx_batch_abort(b);
	ck_assert_int_eq(idx_file_get(x, a, "gone", &f), HS_ENOTFOUND);
}
END_TEST

struct jseen {
	int n;
	uint64_t seqs[8];
};

static int
jcollect(void *arg, uint64_t seq, const void *entry, size_t len)
{
	struct jseen *j = arg;

	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(entry, "abc", 3);
	if (j->n < 8)
		j->seqs[j->n] = seq;
	j->n++;
	return 0;
}

START_TEST(test_journal)
{
	uint8_t id[IDX_ID_LEN], id2[IDX_ID_LEN], zero[IDX_ID_LEN] = {0};
	uint64_t acked = 99;
	struct idx_batch *b;
	struct jseen j;

	ck_assert_int_eq(idx_journal_state(x, id, &acked), HS_OK);
	ck_assert_uint_eq(acked, 0);
	ck_assert_mem_ne(id, zero, IDX_ID_LEN); /* random, made once */
	ck_assert_int_eq(idx_journal_state(x, id2, &acked), HS_OK);
	ck_assert_mem_eq(id, id2, IDX_ID_LEN);
	ck_assert_int_eq(idx_journal_add(x, 1, "abc", 3), HS_OK);
	ck_assert_int_eq(idx_journal_add(x, 2, "abc", 3), HS_OK);
	ck_assert_int_eq(idx_journal_add(x, 300, "abc", 3), HS_OK);
	memset(&j, 0, sizeof(j));
	ck_assert_int_eq(idx_journal_walk(x, 1, jcollect, &j), HS_OK);
	ck_assert_int_eq(j.n, 2);
	ck_assert_uint_eq(j.seqs[0], 2);
	ck_assert_uint_eq(j.seqs[1], 300); /* numeric order, not bytes */
	/* the commit acknowledging 2 drops 1 and 2 */
	ck_assert_int_eq(idx_batch_begin(x, &b), HS_OK);
	ck_assert_int_eq(idx_batch_commit(b, 2), HS_OK);
	ck_assert_int_eq(idx_journal_state(x, id2, &acked), HS_OK);
	ck_assert_uint_eq(acked, 2);
	memset(&j, 0, sizeof(j));
	ck_assert_int_eq(idx_journal_walk(x, 0, jcollect, &j), HS_OK);
	ck_assert_int_eq(j.n, 1);
	ck_assert_uint_eq(j.seqs[0], 300);
	ck_assert_int_eq(
	    idx_journal_add(x, 4, "abc", IDX_JOURNAL_ENTRY_MAX + 1), HS_ELIMIT);
}
END_TEST

/*
 * Runs of several sets interleave: an acknowledgement drops only the
 * entries named (its own set's), keeps every other one whatever its
 * sequence, and records the sequence; a run that changed nothing drops
 * its own entry.
 */
START_TEST(test_journal_per_set)
{
	uint8_t id[IDX_ID_LEN];
	uint64_t acked;
	struct idx_batch *b;
	struct jseen j;

	ck_assert_int_eq(idx_journal_add(x, 10, "abc", 3), HS_OK);
	ck_assert_int_eq(idx_journal_add(x, 11, "abc", 3), HS_OK);
	ck_assert_int_eq(idx_journal_add(x, 12, "abc", 3), HS_OK);
	ck_assert_int_eq(idx_journal_add(x, 13, "abc", 3), HS_OK);
	ck_assert_int_eq(idx_batch_begin(x, &b), HS_OK);
	idx_batch_journal_del(b, 10);
	idx_batch_journal_del(b, 12);
	idx_batch_journal_del(b, 99); /* absent: not an error */
	ck_assert_int_eq(idx_batch_ack(b, 12), HS_OK);
	ck_assert_int_eq(idx_journal_state(x, id, &acked), HS_OK);
	ck_assert_uint_eq(acked, 12);
	memset(&j, 0, sizeof(j));
	ck_assert_int_eq(idx_journal_walk(x, 0, jcollect, &j), HS_OK);
	ck_assert_int_eq(j.n, 2);
	ck_assert_uint_eq(j.seqs[0], 11); /* below the acknowledged: kept */
	ck_assert_uint_eq(j.seqs[1], 13);
	ck_assert_int_eq(idx_journal_del(x, 13), HS_OK);
	ck_assert_int_eq(idx_journal_del(x, 13), HS_OK);
	memset(&j, 0, sizeof(j));
	ck_assert_int_eq(idx_journal_walk(x, 0, jcollect, &j), HS_OK);
	ck_assert_int_eq(j.n, 1);
	ck_assert_uint_eq(j.seqs[0], 11);
}
END_TEST

START_TEST(test_applied)
{
	uint8_t id[IDX_ID_LEN], got[IDX_ID_LEN];
	uint64_t seq = 5;

	ck_assert_int_eq(idx_applied_get(x, got, &seq), HS_OK);
	ck_assert_uint_eq(seq, 0); /* none yet */
	memset(id, 0xab, sizeof(id));
	ck_assert_int_eq(idx_applied_put(x, id, 1000), HS_OK);
	ck_assert_int_eq(idx_applied_put(x, id, 7), HS_OK);
	ck_assert_int_eq(idx_applied_get(x, got, &seq), HS_OK);
	/* the last applied, not the highest (see idx_applied_put) */
	ck_assert_uint_eq(seq, 7);
	ck_assert_mem_eq(got, id, IDX_ID_LEN);
}
END_TEST

/* A standby takes a newer primary's epoch, never an older one, and none
 * while a promote of its own is under way. */
START_TEST(test_node_adopt)
{
	struct idx_node n = {HS_ROLE_STANDBY, 0, 1}, out;

	ck_assert_int_eq(idx_node_put(x, &n), HS_OK);
	ck_assert_int_eq(idx_node_adopt(x, 4, &out), HS_OK);
	ck_assert_uint_eq(out.epoch, 4);
	ck_assert_int_eq(idx_node_get(x, &out), HS_OK);
	ck_assert_uint_eq(out.epoch, 4);
	ck_assert_int_eq(out.role, HS_ROLE_STANDBY);
	ck_assert_int_eq(idx_node_adopt(x, 4, &out), HS_OK); /* same: kept */
	ck_assert_int_eq(idx_node_adopt(x, 3, &out), HS_EREFUSED);
	ck_assert_uint_eq(out.epoch, 4);
	n.flags = IDX_NODE_F_PROMOTING;
	n.epoch = 5;
	ck_assert_int_eq(idx_node_put(x, &n), HS_OK);
	ck_assert_int_eq(idx_node_adopt(x, 9, &out), HS_EREFUSED);
	ck_assert_int_eq(idx_node_get(x, &out), HS_OK);
	ck_assert_uint_eq(out.epoch, 5);
	ck_assert_uint_eq(out.flags, IDX_NODE_F_PROMOTING);
}
END_TEST

START_TEST(test_reopen_keeps_records)
{
	uint8_t a[8];
	struct idx_file f;

	idx_source_key("set", "/a", a);
	put(a, "kept", 5);
	idx_close(x);
	ck_assert_int_eq(idx_open(dir, 1, &x), HS_OK); /* read-only */
	ck_assert_int_eq(idx_file_get(x, a, "kept", &f), HS_OK);
	ck_assert_uint_eq(f.size, 5);
}
END_TEST

/* idx_view: one source's records where LMDB keeps them. */
struct seen_recs {
	int n;
	char paths[4][32];
	struct idx_file f[4];
};

static int
collect_view(void *arg, const unsigned char *rec, size_t len)
{
	struct seen_recs *s = arg;

	ck_assert_int_lt(s->n, 4);
	ck_assert_uint_lt(len, sizeof(s->paths[0]));
	memcpy(&s->f[s->n], rec, IDX_VIEW_REC);
	memcpy(s->paths[s->n], rec + IDX_VIEW_REC, len);
	s->paths[s->n][len] = '\0';
	s->n++;
	return 0;
}

START_TEST(test_view)
{
	uint8_t a[8], b[8], c[8];
	struct idx_view *v;
	struct seen_recs s;
	int i, got_x = 0, got_y = 0;

	idx_source_key("set", "/a", a);
	idx_source_key("set", "/b", b);
	idx_source_key("set", "/c", c);
	put(a, "x", 1);
	put(a, "dir/y", 2);
	put(b, "z", 3);
	ck_assert_int_eq(idx_view_open(x, &v), HS_OK);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(idx_view_walk(v, a, collect_view, &s), HS_OK);
	ck_assert_int_eq(s.n, 2);
	for (i = 0; i < s.n; i++) {
		struct idx_file want =
		    rec(strcmp(s.paths[i], "x") == 0 ? 1 : 2, 1700000001);

		got_x |= strcmp(s.paths[i], "x") == 0;
		got_y |= strcmp(s.paths[i], "dir/y") == 0;
		ck_assert_mem_eq(&s.f[i], &want, sizeof(want));
	}
	ck_assert(got_x && got_y);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(idx_view_walk(v, c, collect_view, &s), HS_OK);
	ck_assert_int_eq(s.n, 0);
	/* A record written after the view opened is not in it. */
	put(c, "late", 4);
	ck_assert_int_eq(idx_view_walk(v, c, collect_view, &s), HS_OK);
	ck_assert_int_eq(s.n, 0);
	idx_view_close(v);
}
END_TEST

static void
data_path(char *out, size_t len)
{
	snprintf(out, len, "%s/index/data.mdb", dir);
}

/*
 * Out of the mark's racy window, mark x clean and close it; the next open
 * must trust the mark (so damage made now is found despite a valid mark).
 */
static void
mark_and_close(void)
{
	sleep(3);
	ck_assert_int_eq(idx_mark_clean(x), HS_OK);
	idx_close(x);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	ck_assert(idx_on_mark(x));
	idx_close(x);
	x = NULL;
}

/*
 * The clean mark: written at a clean close once data.mdb is older than
 * its racy window, trusted by the next open (no probe), kept by a close
 * that wrote nothing, ignored when damaged or when data.mdb changed; and
 * a data.mdb damaged in place after the mark is still refused.
 */
START_TEST(test_clean_mark)
{
	char data[128], mark[128];
	unsigned char zero[4096];
	uint8_t a[8];
	struct stat st, st2;
	int fd;

	idx_source_key("set", "/a", a);
	put(a, "p", 1);
	snprintf(mark, sizeof(mark), "%s/index/clean", dir);
	data_path(data, sizeof(data));
	/* Written just now: too recent for a mark. */
	ck_assert_int_eq(idx_mark_clean(x), HS_OK);
	ck_assert_int_ne(access(mark, F_OK), 0);
	sleep(3);
	ck_assert_int_eq(idx_mark_clean(x), HS_OK);
	ck_assert_int_eq(stat(mark, &st), 0);
	idx_close(x);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	ck_assert(idx_on_mark(x));
	/* Nothing written: the mark stands as it is. */
	ck_assert_int_eq(idx_mark_clean(x), HS_OK);
	ck_assert_int_eq(stat(mark, &st2), 0);
	ck_assert_int_eq(st.st_ino, st2.st_ino);
	idx_close(x);
	/* The read-only open (status) trusts it too. */
	ck_assert_int_eq(idx_open(dir, 1, &x), HS_OK);
	ck_assert(idx_on_mark(x));
	idx_close(x);

	/* A flipped bit in the mark: not trusted, the probe runs. */
	ck_assert_int_ge(fd = open(mark, O_RDWR), 0);
	ck_assert_int_eq(pread(fd, zero, 1, 20), 1);
	zero[0] ^= 1;
	ck_assert_int_eq(pwrite(fd, zero, 1, 20), 1);
	close(fd);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	ck_assert(!idx_on_mark(x));
	ck_assert_int_eq(idx_mark_clean(x), HS_OK); /* a fresh mark */
	idx_close(x);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	ck_assert(idx_on_mark(x));

	/* A commit: the mark no longer matches. */
	put(a, "q", 2);
	idx_close(x);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	ck_assert(!idx_on_mark(x));
	idx_close(x);
	x = NULL;

	/* Data pages zeroed in place (same inode, same size, meta pages
	 * intact) after a valid mark: refused, not read. */
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	mark_and_close();
	ck_assert_int_eq(stat(data, &st), 0);
	ck_assert_int_ge(fd = open(data, O_WRONLY), 0);
	memset(zero, 0, sizeof(zero));
	for (off_t o = 2 * 4096; o < st.st_size; o += 4096)
		ck_assert_int_eq(pwrite(fd, zero, sizeof(zero), o),
		                 (ssize_t)sizeof(zero));
	close(fd);
	ck_assert_int_eq(stat(data, &st2), 0);
	ck_assert_int_eq(st.st_ino, st2.st_ino);
	ck_assert_int_eq(st.st_size, st2.st_size);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_EINDEX);
	ck_assert_int_eq(idx_open(dir, 1, &x), HS_EINDEX);
	x = NULL;
}
END_TEST

/* Truncated in place after a valid mark: refused. */
START_TEST(test_clean_mark_truncated)
{
	char data[128];
	uint8_t a[8];

	idx_source_key("set", "/a", a);
	put(a, "p", 1);
	mark_and_close();
	data_path(data, sizeof(data));
	ck_assert_int_eq(truncate(data, 8192), 0);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_EINDEX);
	x = NULL;
}
END_TEST

/*
 * A mark whose stat matches data.mdb but whose transaction id is not
 * LMDB's last (a crash of the machine can leave the inode's times and
 * lose the meta page): not trusted, the probe runs, the open works.
 */
static void
forge_mark(uint64_t txnid)
{
	char data[128], mark[128];
	struct clean_mark m;
	struct stat st;
	FILE *f;

	data_path(data, sizeof(data));
	snprintf(mark, sizeof(mark), "%s/index/clean", dir);
	ck_assert_int_eq(stat(data, &st), 0);
	memset(&m, 0, sizeof(m));
	memcpy(m.magic, "HSCLEAN1", sizeof(m.magic));
	m.dev = st.st_dev;
	m.ino = st.st_ino;
	m.size = (uint64_t)st.st_size;
	m.mtime_sec = st.st_mtim.tv_sec;
	m.mtime_nsec = (uint64_t)st.st_mtim.tv_nsec;
	m.ctime_sec = st.st_ctim.tv_sec;
	m.ctime_nsec = (uint64_t)st.st_ctim.tv_nsec;
	m.txnid = txnid;
	m.sum = XXH3_64bits(&m, offsetof(struct clean_mark, sum));
	ck_assert_ptr_nonnull(f = fopen(mark, "w"));
	ck_assert_uint_eq(fwrite(&m, sizeof(m), 1, f), 1);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_clean_mark_txnid)
{
	struct idx_file got;
	MDB_envinfo info;
	uint8_t a[8];

	idx_source_key("set", "/a", a);
	put(a, "p", 1);
	ck_assert_int_eq(mdb_env_info(x->env, &info), 0);
	idx_close(x);
	/* forged as a stop would write it: trusted */
	forge_mark(info.me_last_txnid);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	ck_assert(idx_on_mark(x));
	idx_close(x);
	/* the stat as it is, LMDB's last transaction another */
	forge_mark(info.me_last_txnid - 1);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	ck_assert(!idx_on_mark(x));
	ck_assert_int_eq(idx_file_get(x, a, "p", &got), HS_OK);
}
END_TEST

/* Is LMDB's last page number past the end of data.mdb? */
static int
last_page_past_eof(void)
{
	char data[128];
	MDB_envinfo info;
	MDB_stat ms;
	struct stat st;

	data_path(data, sizeof(data));
	ck_assert_int_eq(mdb_env_info(x->env, &info), 0);
	ck_assert_int_eq(mdb_env_stat(x->env, &ms), 0);
	ck_assert_int_eq(stat(data, &st), 0);
	return (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize >
	       (uint64_t)st.st_size;
}

/*
 * A write transaction that stores a big block record (overflow pages
 * taken from the end of the map) and drops it again before its commit:
 * LMDB never writes those pages, so the meta page names a last page past
 * the end of data.mdb.  That is LMDB's normal state, not damage: the
 * next open (read-write and read-only) works and finds every record.
 */
START_TEST(test_last_page_past_eof)
{
	struct idx_blocks blk, got;
	struct idx_txn *t;
	uint8_t a[8];
	int round, past = 0;

	idx_source_key("set", "/a", a);
	put(a, "p", 1);
	memset(&blk, 0, sizeof(blk));
	blk.size = 64ull * 1024 * 1024;
	blk.bsize = 32 * 1024;
	blk.n = 2048; /* 32 KiB of hashes: 9 overflow pages */
	ck_assert_ptr_nonnull(blk.hash = calloc(blk.n, IDX_BLOCK_HASH_LEN));
	/* A few rounds: the free pages' list must be short of 9 pages in a
	 * row, so that the record comes from the end of the map. */
	for (round = 0; round < 16 && !past; round++) {
		ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
		ck_assert_int_eq(idx_blocks_put(t, "gone", 4, &blk), HS_OK);
		ck_assert_int_eq(idx_blocks_del(t, "gone", 4), HS_OK);
		ck_assert_int_eq(idx_txn_commit(t), HS_OK);
		past = last_page_past_eof();
		ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
		blk.hash[0][0] = (uint8_t)round;
		ck_assert_int_eq(idx_blocks_put(t, "kept", 4, &blk), HS_OK);
		ck_assert_int_eq(idx_txn_commit(t), HS_OK);
		past = past || last_page_past_eof();
		if (!past)
			continue;
		/* The state the commit left, as the next open finds it. */
		idx_close(x);
		x = NULL;
		ck_assert_int_eq(idx_open(dir, 1, &x), HS_OK);
		idx_close(x);
		x = NULL;
		ck_assert_int_eq(idx_open(dir, 0, &x), HS_OK);
	}
	ck_assert_msg(past, "no commit left LMDB's last page past the end");
	ck_assert_int_eq(idx_blocks_get(x, "kept", 4, &got), HS_OK);
	ck_assert_uint_eq(got.n, blk.n);
	idx_blocks_clear(&got);
	ck_assert_int_eq(idx_blocks_get(x, "gone", 4, &got), HS_ENOTFOUND);
	idx_blocks_clear(&blk);
}
END_TEST

/*
 * Does data.mdb end with the last page of a big value?  LMDB 0.9's page
 * header: page number (8 bytes), pad (2), flags (2, P_OVERFLOW 0x04),
 * then an overflow run's page count (4).
 */
static int
ends_with_overflow(void)
{
	unsigned char h[16];
	char data[128];
	struct stat st;
	uint16_t flags;
	uint32_t pages;
	off_t pg, n;
	int fd, ov = 0;

	data_path(data, sizeof(data));
	ck_assert_int_ge(fd = open(data, O_RDONLY), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	n = st.st_size / 4096;
	for (pg = 2; pg < n; pg++) {
		ck_assert_int_eq(pread(fd, h, sizeof(h), pg * 4096),
		                 (ssize_t)sizeof(h));
		memcpy(&flags, h + 10, sizeof(flags));
		memcpy(&pages, h + 12, sizeof(pages));
		ov = 0;
		if ((flags & 0x04) && pages > 0) {
			pg += pages - 1;
			ov = pg == n - 1;
		}
	}
	close(fd);
	return ov;
}

/*
 * The probe reads big values too: data.mdb cut by one page that only a
 * big record's overflow pages used (the cursor walk alone never reads
 * them) is refused.
 */
START_TEST(test_truncated_overflow)
{
	struct idx_blocks blk;
	struct idx_txn *t;
	char data[128];
	struct stat st;
	uint8_t a[8];
	int round;

	idx_source_key("set", "/a", a);
	put(a, "p", 1);
	memset(&blk, 0, sizeof(blk));
	blk.size = 64ull * 1024 * 1024;
	blk.bsize = 16 * 1024;
	ck_assert_ptr_nonnull(blk.hash = calloc(16384, IDX_BLOCK_HASH_LEN));
	/* A growing record moves to the end of the map. */
	for (round = 0; round < 12 && !ends_with_overflow(); round++) {
		blk.n = 1024 * (round + 2);
		ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
		ck_assert_int_eq(idx_blocks_put(t, "big", 3, &blk), HS_OK);
		ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	}
	ck_assert_msg(ends_with_overflow(), "no big record at the end");
	idx_blocks_clear(&blk);
	idx_close(x);
	x = NULL;
	data_path(data, sizeof(data));
	ck_assert_int_eq(stat(data, &st), 0);
	ck_assert_int_eq(truncate(data, st.st_size - 4096), 0);
	ck_assert_int_eq(idx_open(dir, 1, &x), HS_EINDEX);
	ck_assert_int_eq(idx_open(dir, 0, &x), HS_EINDEX);
	x = NULL;
}
END_TEST

/* ---------------------------------------- block and written records */

#define KIB (1024ull)

START_TEST(records_round_trip)
{
	struct idx_txn *t;
	struct idx_blocks b, g;
	struct idx_written a, ga;
	uint8_t hashes[3][IDX_BLOCK_HASH_LEN];

	ck_assert_int_eq(idx_blocks_get(x, "k", 1, &g), HS_ENOTFOUND);
	ck_assert_int_eq(idx_written_get(x, "k", 1, &ga), HS_ENOTFOUND);
	memset(&b, 0, sizeof(b));
	memset(b.token, 0x11, sizeof(b.token));
	fill_random(&hashes[0][0], sizeof(hashes), 3);
	b.size = 40000;
	b.bsize = 16 * KIB;
	b.n = 3;
	b.hash = hashes;
	memset(&a, 0, sizeof(a));
	a.size = 40000;
	a.ino = 77;
	a.ctime_nsec = 5;
	memset(a.token, 0x22, sizeof(a.token));
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_blocks_put(t, "k", 1, &b), HS_OK);
	ck_assert_int_eq(idx_written_put(t, "k", 1, &a), HS_OK);
	ck_assert_int_eq(idx_blocks_del(t, "absent", 6), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_blocks_get(x, "k", 1, &g), HS_OK);
	ck_assert_uint_eq(g.n, 3);
	ck_assert_uint_eq(g.size, 40000);
	ck_assert_uint_eq(g.bsize, 16 * KIB);
	ck_assert_mem_eq(g.token, b.token, sizeof(b.token));
	ck_assert_mem_eq(g.hash, hashes, sizeof(hashes));
	idx_blocks_clear(&g);
	ck_assert_int_eq(idx_written_get(x, "k", 1, &ga), HS_OK);
	ck_assert_mem_eq(&ga, &a, sizeof(a));
	/* An aborted transaction leaves nothing. */
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_blocks_del(t, "k", 1), HS_OK);
	idx_txn_abort(t);
	ck_assert_int_eq(idx_blocks_get(x, "k", 1, &g), HS_OK);
	idx_blocks_clear(&g);
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_blocks_del(t, "k", 1), HS_OK);
	ck_assert_int_eq(idx_written_del(t, "k", 1), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_blocks_get(x, "k", 1, &g), HS_ENOTFOUND);
	ck_assert_int_eq(idx_written_get(x, "k", 1, &ga), HS_ENOTFOUND);
}
END_TEST

/* The ino in the written record at key `k` (a string), 0 when none. */
static uint64_t
written_ino(struct idx *ix, const char *k)
{
	struct idx_written w;

	return idx_written_get(ix, k, strlen(k), &w) == HS_OK ? w.ino : 0;
}

START_TEST(records_follow_a_directory)
{
	/*
	 * "d" (the directory's own name) and "dd/x" (sharing its first
	 * byte) are not below "d/"; "e/old" is replaced by the move to "e/".
	 */
	static const struct {
		const char *key;
		uint64_t ino;
	} before[] = {
	    {"d", 1},       {"d/x", 2},  {"d/sub/y", 3},
	    {"d.new/x", 4}, {"dd/x", 5}, {"e/old", 6},
	};
	static const struct {
		const char *key;
		uint64_t ino; /* 0: no record */
	} after[] = {
	    {"d", 1},       {"d/x", 0},     {"d/sub/y", 0}, {"e/x", 2},
	    {"e/sub/y", 3}, {"d.new/x", 4}, {"dd/x", 5},    {"e/old", 0},
	};
	struct idx_txn *t;
	struct idx_written w;
	size_t i;

	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	for (i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
		w.ino = before[i].ino;
		ck_assert_int_eq(idx_written_put(t, before[i].key,
		                                 strlen(before[i].key), &w),
		                 HS_OK);
	}
	ck_assert_int_eq(idx_written_move(t, "d/", 2, "e/", 2), HS_OK);
	/* A prefix of the other: refused, nothing moved. */
	ck_assert_int_eq(idx_written_move(t, "e/", 2, "e/sub/", 6), HS_ELIMIT);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	for (i = 0; i < sizeof(after) / sizeof(after[0]); i++)
		ck_assert_msg(written_ino(x, after[i].key) == after[i].ino,
		              "%s: ino %llu, want %llu", after[i].key,
		              (unsigned long long)written_ino(x, after[i].key),
		              (unsigned long long)after[i].ino);
}
END_TEST

/*
 * What is written ahead of a rename lives beside the records, not in
 * them, and moves with its directory as they do.
 */
START_TEST(records_written_ahead)
{
	struct idx_written a, w;
	struct idx_txn *t;

	memset(&a, 0, sizeof(a));
	a.ino = 9;
	a.size = 123;
	memset(a.token, 0x33, sizeof(a.token));
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_writing_put(t, "d/f", 3, &a), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_written_get(x, "d/f", 3, &w), HS_ENOTFOUND);
	ck_assert_int_eq(idx_writing_get(x, "d/f", 3, &w), HS_OK);
	ck_assert_mem_eq(&w, &a, sizeof(a));
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_written_move(t, "d/", 2, "e/", 2), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_writing_get(x, "d/f", 3, &w), HS_ENOTFOUND);
	ck_assert_int_eq(idx_writing_get(x, "e/f", 3, &w), HS_OK);
	ck_assert_uint_eq(w.ino, 9);
	ck_assert_int_eq(idx_txn_begin(x, &t), HS_OK);
	ck_assert_int_eq(idx_writing_del(t, "e/f", 3), HS_OK);
	ck_assert_int_eq(idx_writing_del(t, "absent", 6), HS_OK);
	ck_assert_int_eq(idx_txn_commit(t), HS_OK);
	ck_assert_int_eq(idx_writing_get(x, "e/f", 3, &w), HS_ENOTFOUND);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("files");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30); /* the mark tests wait out its racy window */
	tcase_add_test(tc, test_put_get_del);
	tcase_add_test(tc, test_long_path);
	tcase_add_test(tc, test_walk_order_and_sources);
	tcase_add_test(tc, test_prune);
	tcase_add_test(tc, test_abort_keeps_nothing);
	tcase_add_test(tc, test_journal);
	tcase_add_test(tc, test_journal_per_set);
	tcase_add_test(tc, test_applied);
	tcase_add_test(tc, test_node_adopt);
	tcase_add_test(tc, test_reopen_keeps_records);
	tcase_add_test(tc, test_view);
	tcase_add_test(tc, test_clean_mark);
	tcase_add_test(tc, test_clean_mark_truncated);
	tcase_add_test(tc, test_clean_mark_txnid);
	tcase_add_test(tc, test_last_page_past_eof);
	tcase_add_test(tc, test_truncated_overflow);
	suite_add_tcase(s, tc);
	tc = tcase_create("records");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, records_round_trip);
	tcase_add_test(tc, records_follow_a_directory);
	tcase_add_test(tc, records_written_ahead);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
