/*
 * check_primary.c - primary/watch.c: what the watcher tells status
 * about the changes it holds.  watch_unread (events the kernel queued that
 * watch_drain has not read yet) and watch_delayed (a file still open for
 * writing) keep the primary's status from calling a set in-sync
 * (primary.c, prim_set_settled).  Real inotify on a mkdtemp() folder.
 * And primary/sendwire.c: how the sender shows a path (escaped, one
 * line) and hands a dry run's entries to its caller (as bytes).
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_aux.h"
#include "send_int.h"

static char tmpdir[64];
static char src[96];
static struct hs_conf *conf;

static void
setup(void)
{
	char path[128], text[512], err[HS_ERRMSG_MAX] = "";
	FILE *f;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_primary.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(src, sizeof(src), "%s/src", tmpdir);
	ck_assert_int_eq(mkdir(src, 0700), 0);
	snprintf(path, sizeof(path), "%s/hamnsync.conf", tmpdir);
	snprintf(text, sizeof(text),
	         "[node]\nname = mn1\nrole = primary\nstate_dir = %s/state\n"
	         "listen = 127.0.0.1:7873\npeer = 127.0.0.1:7873\n"
	         "cert = /etc/hamnsync/node.crt\nkey = /etc/hamnsync/node.key\n"
	         "peer_fingerprint = sha256:00112233445566778899aabbccddeeff"
	         "00112233445566778899aabbccddeeff\n"
	         "\n[path data]\nsource = %s\n",
	         tmpdir, src);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	conf = NULL;
	ck_assert_msg(hs_conf_load(path, &conf, err, sizeof(err)) == 0,
	              "config: %s", err);
}

static void
teardown(void)
{
	hs_conf_free(conf);
	conf = NULL;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write `text` to file `name` of the source, closed or left open. */
static int
write_src(const char *name, const char *text, int keep_open)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", src, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	if (!keep_open) {
		ck_assert_int_eq(close(fd), 0);
		return -1;
	}
	return fd;
}

/* A write queues its event before it returns: unread until drained. */
START_TEST(unread_until_drained)
{
	struct watch *w;

	ck_assert_int_eq(watch_new(conf, &w), HS_OK);
	ck_assert_uint_eq(watch_unread(w), 0);
	ck_assert_int_eq(watch_pending(w, 0), 0);
	write_src("hosts", "10.0.0.1 mn1\n", 0);
	ck_assert_uint_gt(watch_unread(w), 0);
	ck_assert_int_eq(watch_pending(w, 0), 0); /* what status saw */
	ck_assert_int_eq(watch_drain(w), HS_OK);
	ck_assert_uint_eq(watch_unread(w), 0);
	ck_assert_int_eq(watch_pending(w, 0), 1);
	watch_free(w);
}
END_TEST

/* A file still open for writing is held back, and said so, per set. */
START_TEST(delayed_while_open)
{
	struct watch *w;
	int fd;

	ck_assert_int_eq(watch_new(conf, &w), HS_OK);
	ck_assert_int_eq(watch_delayed(w, 0), 0);
	fd = write_src("log", "first line\n", 1);
	ck_assert_int_eq(watch_drain(w), HS_OK);
	ck_assert_int_eq(watch_delayed(w, 0), 1);
	ck_assert_int_eq(watch_pending(w, 0), 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(watch_drain(w), HS_OK);
	ck_assert_int_eq(watch_delayed(w, 0), 0);
	ck_assert_int_eq(watch_pending(w, 0), 1);
	ck_assert_int_eq(watch_unwatched_in(w, 0), 0);
	watch_free(w);
}
END_TEST

/* A dry run's entries as send_dry gave them, joined "action path;". */
static char dry_seen[512];

static void
dry_collect(void *arg, const char *action, const char *path)
{
	size_t len = strlen(dry_seen);

	(void)arg;
	snprintf(dry_seen + len, sizeof(dry_seen) - len, "%s %s;", action,
	         path);
}

/* Paths as shown (escaped) and as given to callers (the bytes). */
static const struct {
	const char *rel, *shown;
} show_cases[] = {
    {"", ""},
    {"plain/name", "/plain/name"},
    {"nl\nname", "/nl\\#012name"},
    {"tab\tname", "/tab\\#011name"},
    {"bad\xffname", "/bad\\#377name"},
    {"back\\#012name", "/back\\#134#012name"},
};

START_TEST(show_escapes)
{
	struct send_opts o;
	struct sender s;
	struct scan_entry e;
	char want[256], raw[256];

	memset(&o, 0, sizeof(o));
	memset(&s, 0, sizeof(s));
	memset(&e, 0, sizeof(e));
	s.conf = conf;
	s.o = &o;
	s.set = &conf->sets[0];
	e.path = (char *)show_cases[_i].rel;
	snprintf(want, sizeof(want), "%s%s", src, show_cases[_i].shown);
	snprintf(raw, sizeof(raw), "%s%s%s", src, e.path[0] ? "/" : "", e.path);
	ck_assert_str_eq(send_show(&s, &e), want);
	ck_assert_str_eq(send_show_at(&s, 0, e.path), want);
	ck_assert_str_eq(send_path(&s, &e), raw);
}
END_TEST

/* A dry run hands each entry over as bytes; a real run none. */
START_TEST(dry_entries)
{
	struct send_opts o;
	struct sender s;
	struct scan_entry e;
	char want[512];

	memset(&o, 0, sizeof(o));
	memset(&s, 0, sizeof(s));
	memset(&e, 0, sizeof(e));
	s.conf = conf;
	s.o = &o;
	s.set = &conf->sets[0];
	o.dry_cb = dry_collect;
	dry_seen[0] = '\0';
	e.path = "nl\nname";
	send_dry(&s, "new", &e);
	ck_assert_str_eq(dry_seen, "");
	o.dry_run = 1;
	send_dry(&s, "new", &e);
	e.path = "bad\xff";
	send_dry(&s, "delete", &e);
	snprintf(want, sizeof(want), "new %s/nl\nname;delete %s/bad\xff;", src,
	         src);
	ck_assert_str_eq(dry_seen, want);
}
END_TEST

/* A control byte left in a message (a forged standby line) escapes it. */
START_TEST(note_one_line)
{
	struct send_opts o;
	struct sender s;
	char path[160], got[256] = "";
	FILE *f;
	int fd, saved;

	memset(&o, 0, sizeof(o));
	memset(&s, 0, sizeof(s));
	s.o = &o;
	snprintf(path, sizeof(path), "%s/stderr", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	saved = dup(2);
	ck_assert_int_eq(dup2(fd, 2), 2);
	send_note(&s, "standby: %s", "/a\nforged: line\\#012");
	send_note(&s, "standby: %s", "/a\\#012b: escaped there");
	fflush(stderr);
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	close(fd);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_uint_eq(fread(got, 1, sizeof(got) - 1, f) > 0, 1);
	fclose(f);
	ck_assert_str_eq(got,
	                 "hamnsync: standby: /a\\#012forged: line\\#134#012\n"
	                 "hamnsync: standby: /a\\#012b: escaped there\n");
}
END_TEST

static Suite *
watch_suite(void)
{
	Suite *s = suite_create("watch");
	TCase *tc = tcase_create("status");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, unread_until_drained);
	tcase_add_test(tc, delayed_while_open);
	suite_add_tcase(s, tc);
	tc = tcase_create("show");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, show_escapes, 0,
	                    sizeof(show_cases) / sizeof(*show_cases));
	tcase_add_test(tc, dry_entries);
	tcase_add_test(tc, note_one_line);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(watch_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
