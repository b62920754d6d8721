/*
 * check_tree.c - tree/: relative path checks, the confined directory
 * walks, leftover cleanup, tree scanning, the xattr cache, reading and
 * applying extended attributes, and the in-kernel copy.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "check_aux.h"
#include "tree.h"

#define MIB (1024u * 1024)

/* ------------------------------------------------------ fs_relpath_check */

struct rel_case {
	const char *rel;
	int rc;
};

static const struct rel_case rel_cases[] = {
    {"", HS_OK},
    {"a", HS_OK},
    {"a/b/c", HS_OK},
    {"a..b", HS_OK},
    {"..a", HS_OK},
    {"a..", HS_OK},
    {"...", HS_OK},
    {".hidden", HS_OK},
    {"a/.hidden/b", HS_OK},
    {"a/..b/.c.", HS_OK},
    {"new\nline", HS_OK},
    {"a/\n", HS_OK},
    {"tab\there", HS_OK},
    {"\x80", HS_OK},
    {"\xff\xfe/\x80\x81", HS_OK},
    {"caf\xc3\xa9/\xc3\xa5", HS_OK},
    {" ", HS_OK},
    {"a b/c\\d", HS_OK},
    {"-rf", HS_OK},
    {"~/x", HS_OK},
    {"*?[", HS_OK},
    {"/a", HS_ECONFINE},
    {"/", HS_ECONFINE},
    {"//a", HS_ECONFINE},
    {"/etc/passwd", HS_ECONFINE},
    {"a/", HS_ECONFINE},
    {"a/b/", HS_ECONFINE},
    {"a//b", HS_ECONFINE},
    {"a///b", HS_ECONFINE},
    {".", HS_ECONFINE},
    {"..", HS_ECONFINE},
    {"./a", HS_ECONFINE},
    {"a/.", HS_ECONFINE},
    {"a/./b", HS_ECONFINE},
    {"a/../b", HS_ECONFINE},
    {"a/..", HS_ECONFINE},
    {"../x", HS_ECONFINE},
    {"../..", HS_ECONFINE},
    {"/../a", HS_ECONFINE},
    {"./", HS_ECONFINE},
};

START_TEST(rel_table)
{
	const struct rel_case *tc = &rel_cases[_i];
	int rc = fs_relpath_check(tc->rel);

	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->rel, rc,
	              tc->rc);
}
END_TEST

/*
 * Generated paths: n_comps components of comp_len 'a' joined by '/', the
 * middle one wide_len long when wide_len is not 0; or, when total is not
 * 0, that many bytes with a '/' every 100th (components of 99 bytes).
 */
struct rel_gen_case {
	const char *what;
	size_t comp_len, n_comps, wide_len, total;
	int rc;
};

static const struct rel_gen_case rel_gen_cases[] = {
    {"component 255", 255, 1, 0, 0, HS_OK},
    {"component 256", 256, 1, 0, 0, HS_ELIMIT},
    {"component 4000", 4000, 1, 0, 0, HS_ELIMIT},
    {"middle 255", 1, 3, 255, 0, HS_OK},
    {"middle 256", 1, 3, 256, 0, HS_ELIMIT},
    {"last 256", 1, 2, 256, 0, HS_ELIMIT}, /* middle of 2 is the last */
    {"depth 256", 1, 256, 0, 0, HS_OK},
    {"depth 257", 1, 257, 0, 0, HS_ELIMIT},
    {"depth 2048, 4095 bytes", 1, 2048, 0, 0, HS_ELIMIT},
    {"16 x 255 = 4095 bytes", 255, 16, 0, 0, HS_OK},
    {"17 x 255", 255, 17, 0, 0, HS_ELIMIT},
    {"depth 256, 4351 bytes", 16, 256, 0, 0, HS_ELIMIT},
    {"total 4095", 0, 0, 0, 4095, HS_OK},
    {"total 4096", 0, 0, 0, 4096, HS_ELIMIT},
    {"total 4097", 0, 0, 0, 4097, HS_ELIMIT},
    {"total 65536", 0, 0, 0, 65536, HS_ELIMIT},
};

static char *
rel_build(const struct rel_gen_case *tc)
{
	size_t cap = tc->total
	                 ? tc->total + 1
	                 : tc->n_comps * (tc->comp_len + tc->wide_len + 1);
	char *s = malloc(cap), *p = s;
	size_t i;

	ck_assert_ptr_nonnull(s);
	if (tc->total) {
		for (i = 0; i < tc->total; i++)
			s[i] = i % 100 == 99 ? '/' : 'a';
		s[tc->total] = '\0';
		return s;
	}
	for (i = 0; i < tc->n_comps; i++) {
		size_t n = tc->wide_len && i == tc->n_comps / 2 ? tc->wide_len
		                                                : tc->comp_len;

		if (i > 0)
			*p++ = '/';
		memset(p, 'a', n);
		p += n;
	}
	*p = '\0';
	return s;
}

START_TEST(rel_gen_table)
{
	const struct rel_gen_case *tc = &rel_gen_cases[_i];
	char *rel = rel_build(tc);
	int rc = fs_relpath_check(rel);

	ck_assert_msg(rc == tc->rc, "%s (%zu bytes): rc %d, want %d", tc->what,
	              strlen(rel), rc, tc->rc);
	free(rel);
}
END_TEST

/* --------------------------------------------------------- the fixture */

/*
 * ROOT/tree is the confinement (treefd); ROOT/outside must stay out of
 * reach.  Inside the tree:
 *	sub/dir/	directories
 *	file		a regular file
 *	lnk -> sub	a symlink to a directory inside the tree
 *	abs -> /
 *	up -> ../..
 *	out -> ../outside
 *	dangling -> ../outside/made	(nothing there yet)
 */
static char root[96];
static int treefd = -1;

static void
path_of(char *buf, size_t len, const char *rel)
{
	int n = snprintf(buf, len, "%s/%s", root, rel);

	ck_assert(n > 0 && (size_t)n < len);
}

static void
mk_dir(const char *rel, mode_t mode)
{
	char p[256];

	path_of(p, sizeof(p), rel);
	ck_assert_msg(mkdir(p, mode) == 0, "mkdir %s: %s", p, strerror(errno));
	ck_assert_int_eq(chmod(p, mode), 0); /* whatever the umask */
}

static void
mk_file(const char *rel, const char *text)
{
	char p[256];
	int fd;

	path_of(p, sizeof(p), rel);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0, "create %s: %s", p, strerror(errno));
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(close(fd), 0);
}

static void
mk_link(const char *target, const char *rel)
{
	char p[256];

	path_of(p, sizeof(p), rel);
	ck_assert_msg(symlink(target, p) == 0, "symlink %s: %s", p,
	              strerror(errno));
}

/* Does ROOT/rel exist (not following a final symlink)? */
static int
exists(const char *rel)
{
	char p[256];
	struct stat st;

	path_of(p, sizeof(p), rel);
	return lstat(p, &st) == 0;
}

/* Entries in directory ROOT/rel, "." and ".." aside. */
static size_t
dir_count(const char *rel)
{
	char p[256];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	path_of(p, sizeof(p), rel);
	d = opendir(p);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Is fd the directory ROOT/rel? */
static void
check_fd_is(int fd, const char *rel)
{
	struct stat a, b;
	char p[256];

	path_of(p, sizeof(p), rel);
	ck_assert_int_eq(fstat(fd, &a), 0);
	ck_assert_int_eq(stat(p, &b), 0);
	ck_assert(S_ISDIR(a.st_mode));
	ck_assert_msg(a.st_dev == b.st_dev && a.st_ino == b.st_ino,
	              "fd is not %s", rel);
}

/*
 * Each test gets its own folder inside `base`, which the unchecked
 * fixture makes once in the runner and removes at the end: a failed
 * assertion ends a forked test before its teardown runs.
 */
static char base[64];

static void
base_setup(void)
{
	snprintf(base, sizeof(base), "/tmp/check_tree.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static void
base_teardown(void)
{
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
tree_setup(void)
{
	char p[256];

	snprintf(root, sizeof(root), "%s/t.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(root));
	mk_dir("tree", 0755);
	mk_dir("outside", 0755);
	mk_dir("tree/sub", 0755);
	mk_dir("tree/sub/dir", 0755);
	mk_file("tree/file", "x");
	mk_link("sub", "tree/lnk");
	mk_link("/", "tree/abs");
	mk_link("../..", "tree/up");
	mk_link("../outside", "tree/out");
	mk_link("../outside/made", "tree/dangling");
	path_of(p, sizeof(p), "tree");
	treefd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(treefd, 0);
}

static void
tree_teardown(void)
{
	if (treefd >= 0)
		close(treefd);
	treefd = -1;
	ck_assert_int_eq(nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/*
 * Make openat2(2) fail with ENOSYS, as on kernels before 5.6, so the
 * O_NOFOLLOW walk in fsops.c runs.  Only in a forked test: the filter
 * stays for the life of the process.  openat2 has one number on every
 * architecture (new system calls are numbered in common), so no arch
 * check is needed for a filter that only ever returns ENOSYS.
 */
static void
hide_openat2(void)
{
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	             offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {(unsigned short)N_ELEM(f), f};
	struct open_how how;

	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
	errno = 0;
	ck_assert_int_eq(syscall(SYS_openat2, treefd, ".", &how, sizeof(how)),
	                 -1);
	ck_assert_int_eq(errno, ENOSYS);
}

/* Loop tests run each row twice: with openat2, then with the walk. */
static const char *const walk_names[] = {"openat2", "O_NOFOLLOW walk"};
static int with_fallback = 1; /* 0 under CK_FORK=no */

/* Names the known walk_dir bug (see open_table) in a failure message. */
static const char *
known_bug(int walk, int rc, int want)
{
	if (walk && rc == -ENOTDIR && want == HS_ECONFINE)
		return " [KNOWN BUG: fsops.c walk_dir: symlink component gives "
		       "-ENOTDIR, not HS_ECONFINE]";
	return "";
}

/* --------------------------------------------------- fs_open_dir_beneath */

struct open_case {
	const char *rel;
	int rc;
	const char *is; /* on success: the directory (under ROOT) */
};

static const struct open_case open_cases[] = {
    {"", HS_OK, "tree"},
    {"sub", HS_OK, "tree/sub"},
    {"sub/dir", HS_OK, "tree/sub/dir"},
    /* a symlink anywhere on the way, even to a directory inside */
    {"lnk", HS_ECONFINE, NULL},
    {"lnk/dir", HS_ECONFINE, NULL},
    {"abs", HS_ECONFINE, NULL},
    {"abs/tmp", HS_ECONFINE, NULL},
    {"up", HS_ECONFINE, NULL},
    {"up/tmp", HS_ECONFINE, NULL},
    {"out", HS_ECONFINE, NULL},
    {"dangling", HS_ECONFINE, NULL},
    {"sub/dir/../../out", HS_ECONFINE, NULL},
    /* leaving by name */
    {"..", HS_ECONFINE, NULL},
    {"../outside", HS_ECONFINE, NULL},
    {"sub/../..", HS_ECONFINE, NULL},
    {"/tmp", HS_ECONFINE, NULL},
    /* plain errors */
    {"missing", -ENOENT, NULL},
    {"sub/missing", -ENOENT, NULL},
    {"missing/dir", -ENOENT, NULL},
    {"file", -ENOTDIR, NULL},
    {"file/x", -ENOTDIR, NULL},
};

START_TEST(open_table)
{
	const size_t n = N_ELEM(open_cases);
	const struct open_case *tc = &open_cases[(size_t)_i % n];
	const int walk = (size_t)_i >= n;
	int fd;

	if (walk)
		hide_openat2();
	fd = fs_open_dir_beneath(treefd, tc->rel);
	/*
	 * KNOWN BUG (tree/fsops.c, walk_dir): in the O_NOFOLLOW walk a
	 * symlink component gives -ENOTDIR, not HS_ECONFINE, because
	 * openat(O_PATH | O_DIRECTORY | O_NOFOLLOW) on a symlink fails with
	 * ENOTDIR (O_PATH makes O_NOFOLLOW open the link instead of failing
	 * with ELOOP, and O_DIRECTORY then refuses it).  Confinement holds;
	 * the error code, and the messages built on it, are wrong.  The
	 * symlink rows fail under "O_NOFOLLOW walk" until that is fixed.
	 */
	ck_assert_msg(fd == tc->rc || (tc->rc == HS_OK && fd >= 0),
	              "%s: '%s': rc %d, want %d%s", walk_names[walk], tc->rel,
	              fd, tc->rc, known_bug(walk, fd, tc->rc));
	if (fd >= 0) {
		check_fd_is(fd, tc->is);
		ck_assert_int_ne(fcntl(fd, F_GETFL) & O_PATH, 0);
		ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
		close(fd);
	}
}
END_TEST

/* ------------------------------------------------------ fs_mkdir_beneath */

struct mkdir_case {
	const char *rel;
	int rc;
	const char *is;     /* on success: the directory (under ROOT) */
	const char *absent; /* must not exist afterwards */
};

static const struct mkdir_case mkdir_cases[] = {
    {"x/y/z", HS_OK, "tree/x/y/z", NULL},
    {"x", HS_OK, "tree/x", NULL},
    {"sub/new/deeper", HS_OK, "tree/sub/new/deeper", NULL},
    {"sub/dir", HS_OK, "tree/sub/dir", NULL},
    {"", HS_OK, "tree", NULL},
    {"lnk/new", HS_ECONFINE, NULL, "tree/sub/new"},
    {"lnk", HS_ECONFINE, NULL, NULL},
    {"out/new", HS_ECONFINE, NULL, "outside/new"},
    {"out/a/b", HS_ECONFINE, NULL, "outside/a"},
    {"up/new", HS_ECONFINE, NULL, NULL},
    {"dangling", HS_ECONFINE, NULL, "outside/made"},
    {"dangling/new", HS_ECONFINE, NULL, "outside/made"},
    {"sub/lnk2/new", HS_ECONFINE, NULL, "tree/sub/dir/new"},
    {"file/x", -ENOTDIR, NULL, "tree/file/x"},
};

START_TEST(mkdir_table)
{
	const size_t n = N_ELEM(mkdir_cases);
	const struct mkdir_case *tc = &mkdir_cases[(size_t)_i % n];
	const int walk = (size_t)_i >= n;
	int fd;

	mk_link("dir", "tree/sub/lnk2");
	if (walk)
		hide_openat2();
	fd = fs_mkdir_beneath(treefd, tc->rel, 0755);
	/* confinement first: nothing made outside, nothing made through */
	ck_assert_msg(dir_count("outside") == 0, "%s: '%s' wrote outside",
	              walk_names[walk], tc->rel);
	if (tc->absent != NULL)
		ck_assert_msg(!exists(tc->absent), "%s: '%s' made %s",
		              walk_names[walk], tc->rel, tc->absent);
	/* KNOWN BUG: see open_table; symlink rows fail in the walk. */
	ck_assert_msg(fd == tc->rc || (tc->rc == HS_OK && fd >= 0),
	              "%s: '%s': rc %d, want %d%s", walk_names[walk], tc->rel,
	              fd, tc->rc, known_bug(walk, fd, tc->rc));
	if (fd >= 0) {
		check_fd_is(fd, tc->is);
		close(fd);
	}
}
END_TEST

/* Made directories get `mode` (less the umask), and are really there. */
START_TEST(mkdir_mode)
{
	struct stat st;
	char p[256];
	mode_t old = umask(022);
	int fd;

	fd = fs_mkdir_beneath(treefd, "m1/m2", 0750);
	umask(old);
	ck_assert_int_ge(fd, 0);
	close(fd);
	path_of(p, sizeof(p), "tree/m1");
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0750);
	path_of(p, sizeof(p), "tree/m1/m2");
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0750);
	/* and it opens afterwards */
	fd = fs_open_dir_beneath(treefd, "m1/m2");
	ck_assert_int_ge(fd, 0);
	close(fd);
}
END_TEST

/* ---------------------------------------------------------- fs_clean_tmp */

/* Files the cleanup rows refer to by bit. */
static const char *const clean_files[] = {
    "tree/.hamnsync-tmp.1",         /* 0x001 top level */
    "tree/.hamnsync-tmp.abc",       /* 0x002 top level */
    "tree/.hamnsync-tmp.link",      /* 0x004 top level, a symlink */
    "tree/sub/.hamnsync-tmp.2",     /* 0x008 one down */
    "tree/sub/dir/.hamnsync-tmp.3", /* 0x010 two down */
    "tree/keep",                    /* 0x020 */
    "tree/.hamnsync-tmp",           /* 0x040 no dot: not the prefix */
    "tree/x.hamnsync-tmp.1",        /* 0x080 prefix not at the start */
    "tree/sub/keep2",               /* 0x100 */
    "outside/.hamnsync-tmp.4",      /* 0x200 behind tree/out */
    "outside/victim",               /* 0x400 target of the tmp symlink */
};

struct clean_case {
	const char *rel;
	int recursive;
	int rc;
	size_t removed;
	unsigned gone; /* bits of clean_files removed */
};

static const struct clean_case clean_cases[] = {
    {"", 0, HS_OK, 3, 0x007},
    {"", 1, HS_OK, 5, 0x01f},
    {"sub", 0, HS_OK, 1, 0x008},
    {"sub", 1, HS_OK, 2, 0x018},
    {"sub/dir", 1, HS_OK, 1, 0x010},
    {"missing", 1, HS_OK, 0, 0},
    {"sub/missing", 0, HS_OK, 0, 0},
    {"file", 1, HS_OK, 0, 0},
    /* a symlinked directory is not cleaned, whatever it points at */
    {"out", 1, HS_ECONFINE, 0, 0},
    {"lnk", 1, HS_ECONFINE, 0, 0},
};

START_TEST(clean_table)
{
	const struct clean_case *tc = &clean_cases[_i];
	size_t removed = 0, i;
	int rc;

	for (i = 0; i < N_ELEM(clean_files); i++)
		if (i != 2)
			mk_file(clean_files[i], "tmp");
	mk_link("../outside/victim", clean_files[2]);

	rc = fs_clean_tmp(treefd, tc->rel, tc->recursive, &removed);
	ck_assert_msg(rc == tc->rc, "'%s' (%d): rc %d, want %d", tc->rel,
	              tc->recursive, rc, tc->rc);
	ck_assert_uint_eq(removed, tc->removed);
	for (i = 0; i < N_ELEM(clean_files); i++) {
		int gone = (tc->gone >> i) & 1;

		ck_assert_msg(exists(clean_files[i]) == !gone,
		              "'%s' (%d): %s %s", tc->rel, tc->recursive,
		              clean_files[i],
		              gone ? "survived" : "was removed");
	}
}
END_TEST

/* ------------------------------------------------------------- scanning */

static char ex_swp[] = "*.swp";
static char ex_subdir[] = "sub/dir";
static char ex_cache[] = "cache";
static char ex_obj[] = "build/*.o";
static char *excludes[] = {ex_swp, ex_subdir, ex_cache, ex_obj};
static char set_name[] = "s";

static const struct hs_pathset scan_set = {
    set_name, {NULL, 0}, {excludes, N_ELEM(excludes)}, 1, NULL, {NULL, 0}};

struct excl_case {
	const char *rel;
	int excluded;
};

static const struct excl_case excl_cases[] = {
    {"a.swp", 1},
    {"d/e/a.swp", 1},
    {"a.swpx", 0},
    {"a.SWP", 0},
    {"swp", 0},
    {"sub/dir", 1},
    {"sub/dir2", 0},
    {"x/sub/dir", 0}, /* a pattern with '/' matches the
                         whole path */
    {"sub", 0},
    {"dir", 0},
    {"cache", 1},
    {"a/b/cache", 1},
    {"cachex", 0},
    {"build/x.o", 1},
    {"build/sub/x.o", 0}, /* '*' does not cross '/' */
    /* dot files are matched like any other name */
    {".a.swp", 1},
    {"d/.a.swp", 1},
    {".swp", 1},
    {"build/.x.o", 1},
    {".cache", 0},
    {"x.o", 0},
    {"", 0},
};

START_TEST(excl_table)
{
	const struct excl_case *tc = &excl_cases[_i];

	ck_assert_msg(scan_excluded(&scan_set, tc->rel) == tc->excluded,
	              "'%s': want %d", tc->rel, tc->excluded);
}
END_TEST

struct want_entry {
	const char *path;
	uint8_t type;
	const char *link;
};

/*
 * What scan_subtree lists for ROOT/src (built in scan_build).  The fifo
 * is listed: scan.c lists fifos and device nodes (PROTO_E_FIFO/CHR/BLK);
 * only sockets are skipped.
 */
static const struct want_entry scan_want[] = {
    {"", PROTO_E_DIR, NULL},           {"file.txt", PROTO_E_FILE, NULL},
    {"dir", PROTO_E_DIR, NULL},        {"dir/inner", PROTO_E_FILE, NULL},
    {"dir/deeper", PROTO_E_DIR, NULL}, {"dir/deeper/leaf", PROTO_E_FILE, NULL},
    {"link", PROTO_E_SYMLINK, "dir"},  {"abs", PROTO_E_SYMLINK, "/etc"},
    {"sub", PROTO_E_DIR, NULL},        {"sub/keep", PROTO_E_FILE, NULL},
    {".dot", PROTO_E_FILE, NULL},      {"fifo", PROTO_E_FIFO, NULL},
};

/* Present on disk, absent from the listing. */
static const char *const scan_absent[] = {
    "x.swp",           "dir/y.swp",           "sub/dir",    "sub/dir/deep",
    ".hamnsync-tmp.9", "dir/.hamnsync-tmp.a", "link/inner", "sock",
};

static void
scan_build(void)
{
	struct sockaddr_un sa;
	struct timespec ts[2];
	char p[256];
	int s;

	mk_dir("src", 0755);
	mk_file("src/file.txt", "hello");
	mk_dir("src/dir", 0750);
	mk_file("src/dir/inner", "");
	mk_dir("src/dir/deeper", 0700);
	mk_file("src/dir/deeper/leaf", "leaf");
	mk_link("dir", "src/link");
	mk_link("/etc", "src/abs");
	mk_dir("src/sub", 0755);
	mk_file("src/sub/keep", "k");
	mk_file("src/.dot", "");
	mk_dir("src/sub/dir", 0755); /* excluded, with its contents */
	mk_file("src/sub/dir/deep", "d");
	mk_file("src/x.swp", "swap");
	mk_file("src/dir/y.swp", "swap");
	mk_file("src/.hamnsync-tmp.9", "tmp");
	mk_file("src/dir/.hamnsync-tmp.a", "tmp");
	path_of(p, sizeof(p), "src/fifo");
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	/* a socket: never listed */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	path_of(sa.sun_path, sizeof(sa.sun_path), "src/sock");
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);

	path_of(p, sizeof(p), "src/file.txt");
	ck_assert_int_eq(chmod(p, 0640), 0);
	ts[0].tv_sec = ts[1].tv_sec = 1600000000;
	ts[0].tv_nsec = ts[1].tv_nsec = 123456789;
	ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
	if (geteuid() == 0)
		ck_assert_int_eq(lchown(p, 1234, 5678), 0);
}

/* Is p strictly below directory d ("" holds everything but itself)? */
static int
is_below(const char *p, const char *d)
{
	size_t n = strlen(d);

	if (n == 0)
		return p[0] != '\0';
	return strncmp(p, d, n) == 0 && p[n] == '/';
}

static const struct scan_entry *
list_lookup(const struct scan_list *l, const char *path)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].path, path) == 0)
			return &l->v[i];
	return NULL;
}

/* A heap string of n 'a'. */
static char *
str_a(size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, 'a', n);
	s[n] = '\0';
	return s;
}

START_TEST(scan_listing)
{
	const struct scan_entry *dup;
	struct scan_list l;
	const struct scan_entry *e;
	int rootfd;
	size_t i, j, k;

	scan_build();
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(rootfd, 0);
	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(
	    scan_subtree(rootfd, "src", 3, "", 1, &scan_set, &l, NULL), HS_OK);
	close(rootfd);

	/* exactly the wanted entries, once each */
	for (i = 0; i < l.n; i++)
		ck_assert_uint_eq(l.v[i].src, 3);
	for (i = 0; i < N_ELEM(scan_want); i++) {
		size_t seen = 0;

		for (j = 0; j < l.n; j++)
			seen += strcmp(l.v[j].path, scan_want[i].path) == 0;
		ck_assert_msg(seen == 1, "'%s' listed %zu times",
		              scan_want[i].path, seen);
		e = list_lookup(&l, scan_want[i].path);
		ck_assert_msg(e->type == scan_want[i].type,
		              "'%s': type %u, want %u", e->path, e->type,
		              scan_want[i].type);
		if (scan_want[i].link != NULL)
			ck_assert_str_eq(e->link, scan_want[i].link);
		else
			ck_assert_ptr_null(e->link);
	}
	for (i = 0; i < N_ELEM(scan_absent); i++)
		ck_assert_msg(list_lookup(&l, scan_absent[i]) == NULL,
		              "'%s' listed", scan_absent[i]);
	ck_assert_uint_eq(l.n, N_ELEM(scan_want));

	/* pre-order: the root first, each directory right before its tree */
	ck_assert_str_eq(l.v[0].path, "");
	for (i = 0; i < l.n; i++) {
		size_t below = 0;

		if (l.v[i].type != PROTO_E_DIR)
			continue;
		for (j = 0; j < l.n; j++)
			below += is_below(l.v[j].path, l.v[i].path);
		for (k = 1; k <= below; k++)
			ck_assert_msg(i + k < l.n && is_below(l.v[i + k].path,
			                                      l.v[i].path),
			              "'%s' not right after its directory '%s'",
			              i + k < l.n ? l.v[i + k].path : "(end)",
			              l.v[i].path);
	}

	/* metadata */
	e = list_lookup(&l, "file.txt");
	ck_assert_uint_eq(e->size, 5);
	ck_assert_uint_eq(e->mode, 0640);
	ck_assert_int_eq(e->mtime_sec, 1600000000);
	ck_assert_uint_eq(e->mtime_nsec, 123456789);
	if (geteuid() == 0) {
		ck_assert_uint_eq(e->uid, 1234);
		ck_assert_uint_eq(e->gid, 5678);
	}
	ck_assert_uint_eq(list_lookup(&l, "dir")->mode, 0750);
	ck_assert_uint_eq(list_lookup(&l, "dir/deeper")->mode, 0700);
	ck_assert_uint_eq(list_lookup(&l, "fifo")->mode, 0600);

	/* found by a hash of (src, path), the list's order kept */
	ck_assert_int_eq(scan_list_index(&l, &dup), HS_OK);
	ck_assert_ptr_null(dup);
	for (i = 0; i < N_ELEM(scan_want); i++) {
		struct scan_entry *f;

		f = scan_list_find(&l, 3, scan_want[i].path);
		ck_assert_msg(f != NULL, "'%s' not found", scan_want[i].path);
		ck_assert_str_eq(f->path, scan_want[i].path);
		ck_assert_uint_eq(f->type, scan_want[i].type);
	}
	for (i = 0; i < N_ELEM(scan_absent); i++)
		ck_assert_ptr_null(scan_list_find(&l, 3, scan_absent[i]));
	ck_assert_ptr_null(scan_list_find(&l, 2, "file.txt"));
	ck_assert_ptr_null(scan_list_find(&l, 4, ""));

	scan_list_free(&l); /* ASan: everything freed */
	ck_assert_ptr_null(l.v);
	ck_assert_uint_eq(l.n, 0);
	scan_list_free(&l); /* twice is harmless */
}
END_TEST

/* Listings of several sources share one list, found by (src, path);
 * an add drops the index and a find reads the list instead. */
START_TEST(scan_two_sources)
{
	const struct scan_entry *dup;
	struct scan_list l;
	int rootfd;

	mk_dir("a", 0755);
	mk_file("a/z", "1");
	mk_dir("b", 0755);
	mk_file("b/a", "2");
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(rootfd, 0);
	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(
	    scan_subtree(rootfd, "b", 1, "", 1, &scan_set, &l, NULL), HS_OK);
	ck_assert_int_eq(
	    scan_subtree(rootfd, "a", 0, "", 1, &scan_set, &l, NULL), HS_OK);
	ck_assert_uint_eq(l.n, 4);
	/* b's entries first, as listed: an index keeps the order */
	ck_assert_int_eq(scan_list_index(&l, &dup), HS_OK);
	ck_assert_uint_eq(l.v[0].src, 1);
	ck_assert_str_eq(l.v[0].path, "");
	ck_assert_str_eq(l.v[1].path, "a");
	ck_assert_uint_eq(l.v[2].src, 0);
	ck_assert_str_eq(l.v[2].path, "");
	ck_assert_str_eq(l.v[3].path, "z");
	ck_assert_ptr_eq(scan_list_find(&l, 0, "z"), &l.v[3]);
	ck_assert_ptr_eq(scan_list_find(&l, 1, "a"), &l.v[1]);
	ck_assert_ptr_eq(scan_list_find(&l, 1, ""), &l.v[0]);
	ck_assert_ptr_null(scan_list_find(&l, 0, "a"));
	ck_assert_ptr_null(scan_list_find(&l, 1, "z"));
	/* an add: the index goes, and a find still finds */
	ck_assert_int_eq(
	    scan_subtree(rootfd, "a", 2, "", 1, &scan_set, &l, NULL), HS_OK);
	ck_assert_ptr_null(l.ix);
	ck_assert_ptr_eq(scan_list_find(&l, 0, "z"), &l.v[3]);
	ck_assert_ptr_eq(scan_list_find(&l, 2, "z"), &l.v[5]);
	ck_assert_ptr_null(scan_list_find(&l, 2, "a"));
	/* a (src, path) listed twice (a hostile peer's listing): refused */
	ck_assert_int_eq(
	    scan_subtree(rootfd, "a", 2, "", 0, &scan_set, &l, NULL), HS_OK);
	ck_assert_int_eq(scan_list_index(&l, &dup), HS_EPROTO);
	ck_assert_ptr_eq(dup, &l.v[6]);
	ck_assert_str_eq(dup->path, "");
	ck_assert_ptr_null(l.ix);
	close(rootfd);
	scan_list_free(&l);
}
END_TEST

/* The leaf itself: missing, a file, a symlink (never followed). */
struct leaf_case {
	const char *leaf;
	size_t n;
	uint8_t type;
	const char *link;
};

static const struct leaf_case leaf_cases[] = {
    {"missing", 0, 0, NULL},
    {"file", 1, PROTO_E_FILE, NULL},
    {"lnk", 1, PROTO_E_SYMLINK, "sub"},
    {"out", 1, PROTO_E_SYMLINK, "../outside"},
    {"sub", 2, PROTO_E_DIR, NULL},
};

START_TEST(scan_leaf_table)
{
	const struct leaf_case *tc = &leaf_cases[_i];
	struct scan_list l;

	memset(&l, 0, sizeof(l));
	mk_file("outside/secret", "s");
	ck_assert_int_eq(
	    scan_subtree(treefd, tc->leaf, 0, "", 1, &scan_set, &l, NULL),
	    HS_OK);
	ck_assert_uint_eq(l.n, tc->n);
	if (tc->n > 0) {
		ck_assert_str_eq(l.v[0].path, "");
		ck_assert_uint_eq(l.v[0].type, tc->type);
		if (tc->link != NULL)
			ck_assert_str_eq(l.v[0].link, tc->link);
		else
			ck_assert_ptr_null(l.v[0].link);
	}
	if (tc->n > 1) /* "sub/dir" matches the exclude only from the top */
		ck_assert_str_eq(l.v[1].path, "dir");
	scan_list_free(&l);
}
END_TEST

/* One entry inside a source: `leaf` in ROOT/anchor, whose path is prefix. */
struct subtree_case {
	const char *anchor, *leaf, *prefix;
	size_t prefix_len; /* when prefix is NULL: that many 'a' */
	int recursive;
	int rc;
	const char *want; /* listed paths, space-separated, any order */
};

static const struct subtree_case subtree_cases[] = {
    {"src", "dir", "dir", 0, 0, HS_OK, "dir"},
    {"src", "dir", "dir", 0, 1, HS_OK,
     "dir dir/inner dir/deeper dir/deeper/leaf"},
    {"src/dir", "deeper", "dir/deeper", 0, 1, HS_OK,
     "dir/deeper dir/deeper/leaf"},
    {"src/dir/deeper", "leaf", "dir/deeper/leaf", 0, 1, HS_OK,
     "dir/deeper/leaf"},
    /* the prefix is what excludes see: "sub/dir" goes */
    {"src", "sub", "sub", 0, 1, HS_OK, "sub sub/keep"},
    {"src", "link", "link", 0, 1, HS_OK, "link"},
    {"src", "missing", "missing", 0, 1, HS_OK, ""},
    {"src", "dir", NULL, PROTO_PATH_MAX + 1, 1, HS_ELIMIT, ""},
};

START_TEST(scan_subtree_table)
{
	const struct subtree_case *tc = &subtree_cases[_i];
	const char *what = tc->prefix ? tc->prefix : "long prefix";
	char *prefix =
	    tc->prefix ? hs_xstrdup(tc->prefix) : str_a(tc->prefix_len);
	char *want = hs_xstrdup(tc->want), *tok, *save = NULL;
	struct scan_list l;
	char p[256];
	size_t n = 0;
	int fd, rc;

	scan_build();
	path_of(p, sizeof(p), tc->anchor);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	memset(&l, 0, sizeof(l));
	rc = scan_subtree(fd, tc->leaf, 2, prefix, tc->recursive, &scan_set, &l,
	                  NULL);
	close(fd);
	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d", what, rc, tc->rc);
	for (tok = strtok_r(want, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		const struct scan_entry *e = list_lookup(&l, tok);

		ck_assert_msg(e != NULL, "%s: '%s' not listed", what, tok);
		ck_assert_uint_eq(e->src, 2);
		if (n++ == 0) /* pre-order: the entry itself first */
			ck_assert_str_eq(l.v[0].path, tok);
	}
	ck_assert_msg(l.n == n, "%s: %zu entries, want %zu", what, l.n, n);
	scan_list_free(&l);
	free(want);
	free(prefix);
}
END_TEST

/* Make ROOT/rel/a/a/.../a, `levels` directories deep. */
static void
mk_chain(const char *rel, size_t levels)
{
	char p[256];
	size_t i;
	int fd, next;

	path_of(p, sizeof(p), rel);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (i = 0; i < levels; i++) {
		ck_assert_int_eq(mkdirat(fd, "a", 0755), 0);
		next = openat(fd, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(next, 0);
		close(fd);
		fd = next;
	}
	close(fd);
}

/* Components in a relative path ("" has none). */
static size_t
depth_of(const char *rel)
{
	size_t n = rel[0] != '\0';

	for (; *rel != '\0'; rel++)
		n += *rel == '/';
	return n;
}

/*
 * Deep trees.  A listing holds what the protocol allows: paths of up to
 * PROTO_DEPTH_MAX components, each accepted by fs_relpath_check on the
 * other side.  Rows: chain depth below the leaf, prefix depth (0:
 * scan_subtree), the result, and the deepest path listed (0: don't care).
 */
struct deep_case {
	size_t levels, prefix_depth;
	int rc;
	size_t deepest;
};

static const struct deep_case deep_cases[] = {
    {200, 0, HS_OK, 200},
    {254, 0, HS_OK, 254},
    /*
     * KNOWN BUG (tree/scan.c, walk_dir): `depth >= PROTO_DEPTH_MAX`
     * refuses to open a directory of 255 components, so a tree whose
     * deepest directory has 255 or 256 components (both within
     * PROTO_DEPTH_MAX) fails the whole scan with HS_ELIMIT.
     */
    {255, 0, HS_OK, 255},
    {256, 0, HS_OK, 256},
    /*
     * KNOWN BUG (tree/scan.c, scan_subtree): "The depth of the prefix
     * counts against the limit too" is not done (walk_entry starts at
     * depth 0), so below a deep prefix it lists paths of up to prefix +
     * 255 components, which the standby refuses.  Either result is fine
     * here as long as nothing listed is over PROTO_DEPTH_MAX.
     */
    {8, 250, HS_OK, 0},
};

START_TEST(scan_deep_table)
{
	const struct deep_case *tc = &deep_cases[_i];
	struct scan_list l;
	char *prefix = NULL;
	size_t i, deepest = 0, over = 0;
	int fd, rc;

	mk_dir("deep", 0755);
	mk_chain("deep", tc->levels);
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	memset(&l, 0, sizeof(l));
	if (tc->prefix_depth == 0) {
		rc = scan_subtree(fd, "deep", 0, "", 1, &scan_set, &l, NULL);
	} else {
		/* "deep" stands at the end of a prefix a/a/.../a/deep */
		prefix = malloc(2 * tc->prefix_depth + 8);
		ck_assert_ptr_nonnull(prefix);
		prefix[0] = '\0';
		for (i = 1; i < tc->prefix_depth; i++)
			strcat(prefix, "a/");
		strcat(prefix, "deep");
		ck_assert_uint_eq(depth_of(prefix), tc->prefix_depth);
		rc =
		    scan_subtree(fd, "deep", 0, prefix, 1, &scan_set, &l, NULL);
	}
	close(fd);
	for (i = 0; i < l.n; i++) {
		size_t d = depth_of(l.v[i].path);

		deepest = d > deepest ? d : deepest;
		over += fs_relpath_check(l.v[i].path) != HS_OK;
	}
	ck_assert_msg(over == 0,
	              "%zu listed paths fail fs_relpath_check (deepest %zu "
	              "components)%s",
	              over, deepest,
	              tc->prefix_depth > 0 ? " [KNOWN BUG: scan_subtree "
	                                     "ignores the prefix depth]"
	                                   : "");
	ck_assert_msg(rc == tc->rc, "chain of %zu: rc %d, want %d%s",
	              tc->levels, rc, tc->rc,
	              rc == HS_ELIMIT && tc->levels >= 255
	                  ? " [KNOWN BUG: scan.c walk_dir refuses to open "
	                    "a directory of 255 components]"
	                  : "");
	if (tc->deepest > 0)
		ck_assert_uint_eq(deepest, tc->deepest);
	scan_list_free(&l);
	free(prefix);
}
END_TEST

/* ------------------------------------------------------ xattr cache */

/* An old entry (outside the cache's racy window) with some identity. */
static struct stat
xc_stat(uint64_t ino, int64_t ctime_sec)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_dev = 42;
	st.st_ctim.tv_sec = ctime_sec;
	st.st_ctim.tv_nsec = 5;
	st.st_mtim.tv_sec = ctime_sec - 10;
	st.st_size = 100;
	return st;
}

/* How the cache file at `path` is damaged before it is opened. */
enum xc_damage { XC_NONE, XC_GARBAGE, XC_SHORT, XC_LONG, XC_EMPTY, XC_FLIP };

static const struct {
	const char *name;
	enum xc_damage damage;
	int hit; /* does the noted entry come back? */
} xc_cases[] = {
    {"intact", XC_NONE, 1},
    {"garbage", XC_GARBAGE, 0},
    {"truncated in a record", XC_SHORT, 0},
    {"trailing bytes", XC_LONG, 0},
    {"empty file", XC_EMPTY, 0},
    {"a bit flipped in a digest", XC_FLIP, 0},
};

START_TEST(xcache_table)
{
	const uint8_t want[PROTO_XHASH_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
	                                       9, 10, 11, 12, 13, 14, 15, 16};
	uint8_t got[PROTO_XHASH_LEN];
	struct stat st = xc_stat(7, 1000000), other;
	struct xcache *c;
	char file[512], cmd[700];
	int fd;

	c = xcache_open(root, "set");
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(xcache_get(c, &st, got), 0); /* no file yet */
	xcache_put(c, &st, want);
	other = xc_stat(8, 1000000);
	xcache_put(c, &other, want);
	xcache_close(c, 1);
	snprintf(file, sizeof(file), "%s/%s/set", root, XCACHE_DIR);
	switch (xc_cases[_i].damage) {
	case XC_NONE:
		break;
	case XC_GARBAGE:
		snprintf(cmd, sizeof(cmd), "head -c 88 /dev/urandom >%s", file);
		ck_assert_int_eq(system(cmd), 0);
		break;
	case XC_SHORT:
		ck_assert_int_eq(truncate(file, 24 + 32 + 10),
		                 0); /* 2 records: 88 */
		break;
	case XC_LONG:
		fd = open(file, O_WRONLY | O_APPEND);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "x", 1), 1);
		close(fd);
		break;
	case XC_EMPTY:
		ck_assert_int_eq(truncate(file, 0), 0);
		break;
	case XC_FLIP: {
		uint8_t b;

		fd = open(file, O_RDWR);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pread(fd, &b, 1, 24 + 16), 1);
		b ^= 1;
		ck_assert_int_eq(pwrite(fd, &b, 1, 24 + 16), 1);
		close(fd);
		break;
	}
	}
	c = xcache_open(root, "set");
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(xcache_get(c, &st, got), xc_cases[_i].hit);
	if (xc_cases[_i].hit)
		ck_assert_mem_eq(got, want, sizeof(want));
	/* Any move of ctime, mtime or size is another version: read it. */
	other = st;
	other.st_ctim.tv_nsec++;
	ck_assert_int_eq(xcache_get(c, &other, got), 0);
	other = st;
	other.st_mtim.tv_sec++;
	ck_assert_int_eq(xcache_get(c, &other, got), 0);
	other = st;
	other.st_size++;
	ck_assert_int_eq(xcache_get(c, &other, got), 0);
	other = st;
	other.st_dev++;
	ck_assert_int_eq(xcache_get(c, &other, got), 0);
	xcache_close(c, 0);
}
END_TEST

/* An entry changed within the racy window is not kept: read next time. */
START_TEST(xcache_racy)
{
	const uint8_t want[PROTO_XHASH_LEN] = {9};
	uint8_t got[PROTO_XHASH_LEN];
	struct stat st = xc_stat(3, (int64_t)time(NULL));
	struct xcache *c = xcache_open(root, "racy");

	ck_assert_ptr_nonnull(c);
	xcache_put(c, &st, want);
	xcache_close(c, 1);
	c = xcache_open(root, "racy");
	ck_assert_int_eq(xcache_get(c, &st, got), 0);
	xcache_close(c, 0);
}
END_TEST

/* ------------------------------------------- an empty folder per test */

/*
 * The xattr and copy tests work in an empty folder of their own below
 * `base` (names such as "link" or "dangling" would meet the tree's).
 */
static char tmp_dir[128];
static int dir_fd = -1;

static void
tmp_setup(void)
{
	aux_tmp_make(base, tmp_dir, sizeof(tmp_dir), &dir_fd);
}

static void
tmp_teardown(void)
{
	aux_tmp_remove(tmp_dir, &dir_fd);
}

/* Create `name` in the fixture holding `data`; returns an O_RDWR fd. */
static int
file_make(const char *name, const uint8_t *data, size_t len)
{
	return aux_file_make(dir_fd, name, data, len);
}

/* ------------------------------------------------------------- xattrs */

/*
 * Set user.* attribute on fd; returns 0, or 1 after logging a skip when
 * the filesystem does not support them.
 */
static int
xa_try_set(int fd, const char *name, const char *value)
{
	if (fsetxattr(fd, name, value, strlen(value), 0) == 0)
		return 0;
	ck_assert_msg(errno == ENOTSUP || errno == EOPNOTSUPP,
	              "fsetxattr %s: %s", name, strerror(errno));
	fprintf(stderr,
	        "check_tree: SKIP: %s does not support user.* xattrs (%s)\n",
	        tmp_dir, strerror(errno));
	return 1;
}

/* The blob xa_read_* must give for user.a=valA, user.b=value-b. */
static void
xa_expected(struct hs_buf *b)
{
	static const uint8_t want[] = {
	    0,   6,   'u', 's', 'e', 'r', '.', 'a', 0,   0,   0,   4,
	    'v', 'a', 'l', 'A', 0,   6,   'u', 's', 'e', 'r', '.', 'b',
	    0,   0,   0,   7,   'v', 'a', 'l', 'u', 'e', '-', 'b',
	};

	hs_buf_init(b, PROTO_XATTRS_MAX);
	ck_assert_int_eq(hs_buf_append(b, want, sizeof(want)), HS_OK);
}

static int
blob_eq(const struct hs_buf *a, const struct hs_buf *b)
{
	return a->len == b->len &&
	       (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Make file `name` with user.b then user.a set; 1 when unsupported. */
static int
xa_file(const char *name, int *fdp)
{
	*fdp = file_make(name, (const uint8_t *)"x", 1);
	if (xa_try_set(*fdp, "user.b", "value-b") != 0)
		return 1;
	ck_assert_int_eq(xa_try_set(*fdp, "user.a", "valA"), 0);
	return 0;
}

START_TEST(xa_none)
{
	uint8_t dig[PROTO_XHASH_LEN], zero[PROTO_XHASH_LEN] = {0};
	struct hs_buf blob;
	int fd;

	fd = file_make("plain", (const uint8_t *)"x", 1);
	hs_buf_init(&blob, PROTO_XATTRS_MAX);
	blob.len = 99; /* must be reset */
	ck_assert_int_eq(xa_read_fd(fd, &blob), HS_OK);
	ck_assert_uint_eq(blob.len, 0);
	memset(dig, 0xa5, sizeof(dig));
	xa_digest(blob.data, blob.len, dig);
	ck_assert_mem_eq(dig, zero, PROTO_XHASH_LEN);
	ck_assert_int_eq(proto_xattrs_check(blob.data, blob.len), HS_OK);

	blob.len = 99;
	ck_assert_int_eq(xa_read_at(dir_fd, "plain", &blob), HS_OK);
	ck_assert_uint_eq(blob.len, 0);
	hs_buf_free(&blob);
	close(fd);
}
END_TEST

START_TEST(xa_sorted_blob)
{
	uint8_t d1[PROTO_XHASH_LEN], d2[PROTO_XHASH_LEN];
	uint8_t zero[PROTO_XHASH_LEN] = {0};
	struct hs_buf blob, want;
	struct proto_xattr x;
	struct proto_rd r;
	int fd;

	if (xa_file("f", &fd) != 0)
		return;
	hs_buf_init(&blob, PROTO_XATTRS_MAX);
	ck_assert_int_eq(xa_read_fd(fd, &blob), HS_OK);
	xa_expected(&want);
	ck_assert_msg(blob_eq(&blob, &want), "blob of %zu bytes, want %zu",
	              blob.len, want.len);
	ck_assert_int_eq(proto_xattrs_check(blob.data, blob.len), HS_OK);

	r.p = blob.data;
	r.left = blob.len;
	ck_assert_int_eq(proto_xattr_next(&r, &x), 1);
	ck_assert_str_eq(x.name, "user.a");
	ck_assert_uint_eq(x.len, 4);
	ck_assert_mem_eq(x.value, "valA", 4);
	ck_assert_int_eq(proto_xattr_next(&r, &x), 1);
	ck_assert_str_eq(x.name, "user.b");
	ck_assert_uint_eq(x.len, 7);
	ck_assert_mem_eq(x.value, "value-b", 7);
	ck_assert_int_eq(proto_xattr_next(&r, &x), 0);

	xa_digest(blob.data, blob.len, d1);
	ck_assert_mem_ne(d1, zero, PROTO_XHASH_LEN);
	xa_digest(want.data, want.len, d2);
	ck_assert_mem_eq(d1, d2, PROTO_XHASH_LEN);
	/* Another value gives another digest. */
	want.data[want.len - 1] ^= 1;
	xa_digest(want.data, want.len, d2);
	ck_assert_mem_ne(d1, d2, PROTO_XHASH_LEN);

	/* The same through the directory. */
	blob.len = 0;
	ck_assert_int_eq(xa_read_at(dir_fd, "f", &blob), HS_OK);
	want.data[want.len - 1] ^= 1;
	ck_assert(blob_eq(&blob, &want));

	hs_buf_free(&blob);
	hs_buf_free(&want);
	close(fd);
}
END_TEST

/* How xa_apply reaches the entry. */
enum xa_via { XA_FD, XA_AT, XA_N };

static int
xa_apply_via(enum xa_via via, int fd, const char *name, const uint8_t *blob,
             size_t len)
{
	return via == XA_FD ? xa_apply_fd(fd, blob, len)
	                    : xa_apply_at(dir_fd, name, blob, len);
}

static int
xa_read_via(enum xa_via via, int fd, const char *name, struct hs_buf *blob)
{
	return via == XA_FD ? xa_read_fd(fd, blob)
	                    : xa_read_at(dir_fd, name, blob);
}

START_TEST(xa_apply_table)
{
	const enum xa_via via = (enum xa_via)_i;
	struct hs_buf src, got;
	int sfd, tfd;

	if (xa_file("src", &sfd) != 0)
		return;
	hs_buf_init(&src, PROTO_XATTRS_MAX);
	hs_buf_init(&got, PROTO_XATTRS_MAX);
	ck_assert_int_eq(xa_read_fd(sfd, &src), HS_OK);
	ck_assert_uint_gt(src.len, 0);

	/* A target with an attribute the source lacks, and another value. */
	tfd = file_make("dst", (const uint8_t *)"y", 1);
	ck_assert_int_eq(xa_try_set(tfd, "user.zz", "gone soon"), 0);
	ck_assert_int_eq(xa_try_set(tfd, "user.a", "old"), 0);

	ck_assert_int_eq(xa_apply_via(via, tfd, "dst", src.data, src.len),
	                 HS_OK);
	ck_assert_int_eq(xa_read_via(via, tfd, "dst", &got), HS_OK);
	ck_assert_msg(blob_eq(&got, &src), "after apply: %zu bytes, want %zu",
	              got.len, src.len);
	ck_assert_int_eq(fgetxattr(tfd, "user.zz", NULL, 0), -1);
	ck_assert_int_eq(errno, ENODATA);

	/* Applying the same again changes nothing. */
	ck_assert_int_eq(xa_apply_via(via, tfd, "dst", src.data, src.len),
	                 HS_OK);
	ck_assert_int_eq(xa_read_via(via, tfd, "dst", &got), HS_OK);
	ck_assert(blob_eq(&got, &src));

	/* An empty blob removes them all. */
	ck_assert_int_eq(xa_apply_via(via, tfd, "dst", NULL, 0), HS_OK);
	ck_assert_int_eq(xa_read_via(via, tfd, "dst", &got), HS_OK);
	ck_assert_uint_eq(got.len, 0);
	ck_assert_int_eq(flistxattr(tfd, NULL, 0), 0);

	hs_buf_free(&src);
	hs_buf_free(&got);
	close(sfd);
	close(tfd);
}
END_TEST

START_TEST(xa_symlink_not_followed)
{
	struct hs_buf want, got;
	int fd, rc;

	if (xa_file("target", &fd) != 0)
		return;
	ck_assert_int_eq(symlinkat("target", dir_fd, "link"), 0);
	xa_expected(&want);
	hs_buf_init(&got, PROTO_XATTRS_MAX);

	/* Reading through the link gives the link's own (none). */
	ck_assert_int_eq(xa_read_at(dir_fd, "link", &got), HS_OK);
	ck_assert_msg(!blob_eq(&got, &want),
	              "xa_read_at followed the symlink to its target");
	ck_assert_uint_eq(got.len, 0);

	/* Applying through the link does not touch the target. */
	rc = xa_apply_at(dir_fd, "link", NULL, 0);
	(void)rc; /* a symlink cannot carry user.*: an error is fine */
	got.len = 0;
	ck_assert_int_eq(xa_read_fd(fd, &got), HS_OK);
	ck_assert_msg(
	    blob_eq(&got, &want),
	    "xa_apply_at (empty) through a symlink changed the target");

	{
		static const uint8_t other[] = {0,   6, 'u', 's', 'e', 'r', '.',
		                                'c', 0, 0,   0,   1,   'z'};

		rc = xa_apply_at(dir_fd, "link", other, sizeof(other));
		(void)rc;
	}
	got.len = 0;
	ck_assert_int_eq(xa_read_fd(fd, &got), HS_OK);
	ck_assert_msg(blob_eq(&got, &want),
	              "xa_apply_at through a symlink changed the target");

	/* A dangling link is no error. */
	ck_assert_int_eq(symlinkat("nowhere", dir_fd, "dangling"), 0);
	got.len = 99;
	ck_assert_int_eq(xa_read_at(dir_fd, "dangling", &got), HS_OK);
	ck_assert_uint_eq(got.len, 0);

	hs_buf_free(&want);
	hs_buf_free(&got);
	close(fd);
}
END_TEST

/*
 * Attributes of the root-only namespace (trusted.*, like the
 * security.capability and system.posix_acl_* ones hamnsync carries) travel
 * too, sorted with the others.
 */
START_TEST(xa_trusted)
{
	static const uint8_t want[] = {
	    0,   9, 't', 'r', 'u', 's', 't', 'e', 'd', '.', 't', 0, 0, 0,   1,
	    'T', 0, 6,   'u', 's', 'e', 'r', '.', 'a', 0,   0,   0, 1, 'U',
	};
	struct hs_buf blob, got;
	int fd, tfd;

	fd = file_make("t", (const uint8_t *)"x", 1);
	if (xa_try_set(fd, "user.a", "U") != 0)
		return;
	if (fsetxattr(fd, "trusted.t", "T", 1, 0) < 0) {
		ck_assert_msg(errno == EPERM || errno == ENOTSUP,
		              "fsetxattr trusted.t: %s", strerror(errno));
		fprintf(stderr, "check_tree: SKIP: trusted.* xattrs: %s\n",
		        strerror(errno));
		close(fd);
		return;
	}
	hs_buf_init(&blob, PROTO_XATTRS_MAX);
	hs_buf_init(&got, PROTO_XATTRS_MAX);
	ck_assert_int_eq(xa_read_fd(fd, &blob), HS_OK);
	ck_assert_uint_eq(blob.len, sizeof(want));
	ck_assert_mem_eq(blob.data, want, sizeof(want));
	ck_assert_int_eq(proto_xattrs_check(blob.data, blob.len), HS_OK);

	tfd = file_make("u", (const uint8_t *)"y", 1);
	ck_assert_int_eq(xa_apply_at(dir_fd, "u", blob.data, blob.len), HS_OK);
	ck_assert_int_eq(xa_read_fd(tfd, &got), HS_OK);
	ck_assert(blob_eq(&got, &blob));

	hs_buf_free(&blob);
	hs_buf_free(&got);
	close(fd);
	close(tfd);
}
END_TEST

/* --------------------------------------------------------- fs_copy_fd */

START_TEST(copy_in_kernel)
{
	char a[160], b[160];
	size_t size = 9 * MIB + 333;
	uint8_t *data = malloc(size), *back = malloc(size);
	int in, out;

	fill_random(data, size, 9);
	snprintf(a, sizeof(a), "%s/a", tmp_dir);
	snprintf(b, sizeof(b), "%s/b", tmp_dir);
	in = open(a, O_RDWR | O_CREAT, 0600);
	ck_assert_int_eq(write(in, data, size), (ssize_t)size);
	out = open(b, O_RDWR | O_CREAT, 0600);
	ck_assert_int_eq(fs_copy_fd_flushing(in, out, size - 100), HS_OK);
	ck_assert_int_eq(pread(out, back, size, 0), (ssize_t)(size - 100));
	ck_assert_mem_eq(back, data, size - 100);
	/* More than the source holds: an error, not a loop. */
	ck_assert_int_lt(fs_copy_fd(in, out, size + 1), 0);
	close(in);
	close(out);
	free(data);
	free(back);
}
END_TEST

/* ----------------------------------------------------------------- main */

static Suite *
tree_suite(void)
{
	Suite *s = suite_create("tree");
	const int walks = with_fallback ? 2 : 1;
	TCase *tc;

	tc = tcase_create("relpath");
	tcase_add_loop_test(tc, rel_table, 0, (int)N_ELEM(rel_cases));
	tcase_add_loop_test(tc, rel_gen_table, 0, (int)N_ELEM(rel_gen_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("open_beneath");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
	tcase_add_loop_test(tc, open_table, 0, walks * (int)N_ELEM(open_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("mkdir_beneath");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
	tcase_add_loop_test(tc, mkdir_table, 0,
	                    walks * (int)N_ELEM(mkdir_cases));
	tcase_add_test(tc, mkdir_mode);
	suite_add_tcase(s, tc);

	tc = tcase_create("clean_tmp");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
	tcase_add_loop_test(tc, clean_table, 0, (int)N_ELEM(clean_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("scan");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
	tcase_add_loop_test(tc, excl_table, 0, (int)N_ELEM(excl_cases));
	tcase_add_test(tc, scan_listing);
	tcase_add_test(tc, scan_two_sources);
	tcase_add_loop_test(tc, scan_leaf_table, 0, (int)N_ELEM(leaf_cases));
	tcase_add_loop_test(tc, scan_deep_table, 0, (int)N_ELEM(deep_cases));
	tcase_add_loop_test(tc, scan_subtree_table, 0,
	                    (int)N_ELEM(subtree_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("xcache");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
	tcase_add_loop_test(tc, xcache_table, 0, (int)N_ELEM(xc_cases));
	tcase_add_test(tc, xcache_racy);
	suite_add_tcase(s, tc);

	tc = tcase_create("xattr");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, xa_none);
	tcase_add_test(tc, xa_sorted_blob);
	tcase_add_loop_test(tc, xa_apply_table, 0, XA_N);
	tcase_add_test(tc, xa_symlink_not_followed);
	tcase_add_test(tc, xa_trusted);
	suite_add_tcase(s, tc);

	tc = tcase_create("copy");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, copy_in_kernel);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	const char *fork_env = getenv("CK_FORK");
	SRunner *sr;
	int failed;

	/* The walk rows install a seccomp filter: only in forked tests. */
	with_fallback = !(fork_env != NULL && strcmp(fork_env, "no") == 0);
	sr = srunner_create(tree_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
