/*
 * check_ctl.c - the ctl library: SPEC.md's status object (status.c,
 * st_json) parsed back with a real JSON parser, the control socket
 * (socket.c: ctl_listen, ctl_serve, ctl_request) and its limits, and the
 * Prometheus textfile (metrics.c, st_metrics_write) read back with a
 * strict text-format parser.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <math.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "proto.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------- fixtures */

static char basedir[40]; /* per run, removed by the runner itself */
static char tmpdir[64];  /* per test, inside basedir */
static char conf_path[128];
static struct hs_conf *conf; /* loaded from conf_path by dir_setup */

#define FP                                                                     \
	"sha256:00112233445566778899aabbccddeeff"                              \
	"00112233445566778899aabbccddeeff"

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

static void
dir_setup(void)
{
	char text[1024], err[HS_ERRMSG_MAX] = "";

	snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", basedir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(conf_path, sizeof(conf_path), "%s/hamnsync.conf", tmpdir);
	snprintf(text, sizeof(text),
	         "[node]\n"
	         "name = mn2\n"
	         "role = standby\n"
	         "state_dir = %s\n"
	         "listen = 127.0.0.1:7873\n"
	         "peer = mn1:7873\n"
	         "cert = /etc/hamnsync/node.crt\n"
	         "key = /etc/hamnsync/node.key\n"
	         "peer_fingerprint = " FP "\n"
	         "peer_timeout = 10s\n"
	         "\n[path install]\nsource = /install\n"
	         "\n[path credentials]\nsource = /etc/xcat/ca\n"
	         "\n[database xcatdb]\ntype = sqlite\npath = /etc/xcat\n"
	         "\n[database pg]\ntype = postgresql\n"
	         "dsn = host=/run/postgresql dbname=xcatdb\n",
	         tmpdir);
	write_file(conf_path, text);
	conf = NULL;
	ck_assert_msg(hs_conf_load(conf_path, &conf, err, sizeof(err)) == 0,
	              "config: %s", err);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
dir_teardown(void)
{
	hs_conf_free(conf);
	conf = NULL;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Unchecked fixtures run in the runner, not in the forked test, so the
 * base folder goes away even when a test fails or crashes.
 */
static void
base_setup(void)
{
	snprintf(basedir, sizeof(basedir), "/tmp/check_ctl.XXXXXX");
	if (mkdtemp(basedir) == NULL) {
		perror("mkdtemp");
		exit(EXIT_FAILURE);
	}
	chmod(basedir, 0711); /* the permission rows drop to other ids */
}

static void
base_teardown(void)
{
	nftw(basedir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ----------------------------------------------------------- st_json */

/* 2026-11-25T10:58:01Z, SPEC.md's example of last_applied. */
#define T_EXAMPLE 1795604281.0

enum view_kind {
	V_PRIMARY_IN_SYNC,
	V_STANDBY_UNKNOWN,
	V_SEEDING,
	V_WARNINGS,
	V_STOPPED_NO_DBS,
};

struct view_case {
	const char *name;
	enum view_kind kind;
};

static const struct view_case view_cases[] = {
    {"primary in sync", V_PRIMARY_IN_SYNC},
    {"standby, nothing known", V_STANDBY_UNKNOWN},
    {"seeding at 0.42", V_SEEDING},
    {"warnings, overflowing", V_WARNINGS},
    {"stopped, no databases", V_STOPPED_NO_DBS},
};

/* A config filled by hand: no databases, no sets. */
static struct hs_conf bare_conf = {
    .node_name = "mn1",
    .peer = "127.0.0.1:7873",
};

static struct st_path view_paths[3];

static void
fill_view(enum view_kind k, struct st_view *v)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	memset(view_paths, 0, sizeof(view_paths));
	v->conf = conf;
	v->paths = view_paths;
	switch (k) {
	case V_PRIMARY_IN_SYNC:
		v->role = "primary";
		v->epoch = 3;
		v->running = 1;
		v->peer_name = "mn2";
		v->peer_state = "connected";
		v->peer_role = "standby";
		v->peer_epoch = 3;
		v->last_heard = 0.4;
		v->lag = 0; /* known and zero: 0, not null */
		v->files_pending = 0;
		v->bytes_pending = 0;
		v->last_applied_unix = T_EXAMPLE + 0.5;
		view_paths[0] = (struct st_path){"install", "in-sync", 10240,
		                                 2147483648ll, 1.0};
		view_paths[1] =
		    (struct st_path){"credentials", "in-sync", 12, 0, 1.0};
		v->n_paths = 2;
		v->ready = 0;
		v->rpo = -1;
		v->reasons[v->n_reasons++] = "this node is the primary";
		break;
	case V_STANDBY_UNKNOWN:
		v->role = "standby";
		v->epoch = 0;
		v->running = 1;
		v->peer_name = NULL;
		v->peer_state = "disconnected";
		v->peer_role = NULL;
		v->peer_epoch = -1;
		v->last_heard = -1;
		v->lag = -1;
		v->files_pending = -1;
		v->bytes_pending = -1;
		v->last_applied_unix = -1;
		view_paths[0] =
		    (struct st_path){"install", "catching-up", -1, -1, 1.0};
		view_paths[1] =
		    (struct st_path){"credentials", "catching-up", -1, -1, 1.0};
		v->n_paths = 2;
		v->ready = 0;
		v->rpo = -1;
		v->reasons[v->n_reasons++] =
		    "no primary heard since the standby started";
		break;
	case V_SEEDING:
		v->role = "primary";
		v->epoch = 1;
		v->running = 1;
		v->peer_name = "mn2";
		v->peer_state = "connected";
		v->peer_role = "standby";
		v->peer_epoch = 1;
		v->last_heard = 0.0;
		v->lag = 12.5;
		v->files_pending = 7;
		v->bytes_pending = -1;
		v->last_applied_unix = -1;
		view_paths[0] =
		    (struct st_path){"install", "seeding", -1, -1, 0.42};
		view_paths[1] =
		    (struct st_path){"credentials", "held", 40, 4096, 1.0};
		view_paths[2] =
		    (struct st_path){"netconf", "error", 2, 100, 1.0};
		v->n_paths = 3;
		v->ready = 0;
		v->rpo = -1;
		v->reasons[v->n_reasons++] = "this node is the primary";
		st_warn(v, "warning", "set %s: seeding", "install");
		break;
	case V_WARNINGS:
		v->role = "standby";
		v->epoch = 7;
		v->running = 1;
		v->peer_name = "mn1";
		v->peer_state = "silent";
		v->peer_role = "primary";
		v->peer_epoch = 7;
		v->last_heard = 42.25;
		v->lag = 0.04;
		v->files_pending = 3;
		v->bytes_pending = 123456789012ll;
		v->last_applied_unix = T_EXAMPLE;
		v->n_paths = 0;
		v->ready = 0;
		v->rpo = 42.29;
		v->reasons[v->n_reasons++] =
		    "primary unreachable since 2026-11-25T10:58:01Z";
		v->reasons[v->n_reasons++] = "lag above zero";
		st_warn(v, "critical", "primary %s silent for %.0f s", "mn1",
		        42.0);
		/* More than fit: the list stops at ST_WARNINGS_MAX. */
		for (i = 0; i < ST_WARNINGS_MAX + 3; i++)
			st_warn(v, "warning", "warning %zu: %s", i,
			        "a long text that does not fit in one warning "
			        "slot of the view, repeated to be sure it is "
			        "longer than the one hundred and sixty bytes "
			        "a slot holds, then some more words");
		break;
	case V_STOPPED_NO_DBS:
		v->conf = &bare_conf;
		v->role = "standby";
		v->epoch = 2;
		v->running = 0;
		v->peer_name = "mn1";
		v->peer_state = NULL;
		v->peer_role = "primary";
		v->peer_epoch = 0; /* known and zero */
		v->last_heard = -1;
		v->lag = -1;
		v->files_pending = 0;
		v->bytes_pending = -1;
		v->last_applied_unix = 0; /* the epoch itself is a time */
		v->n_paths = 0;
		v->ready = 1;
		v->rpo = 0;
		break;
	}
}

/* Member `key` of `o` must exist (even if null). */
static json_t *
member(json_t *o, const char *key)
{
	json_t *m = json_object_get(o, key);

	ck_assert_msg(m != NULL, "field '%s' is missing", key);
	return m;
}

static void
expect_string(json_t *o, const char *key, const char *want)
{
	json_t *m = member(o, key);

	if (want == NULL) {
		ck_assert_msg(json_is_null(m), "%s: expected null", key);
		return;
	}
	ck_assert_msg(json_is_string(m), "%s: expected a string", key);
	ck_assert_str_eq(json_string_value(m), want);
}

static void
expect_int(json_t *o, const char *key, int64_t want)
{
	json_t *m = member(o, key);

	if (want < 0) {
		ck_assert_msg(json_is_null(m), "%s: expected null", key);
		return;
	}
	ck_assert_msg(json_is_integer(m), "%s: expected an integer", key);
	ck_assert_msg(json_integer_value(m) == (json_int_t)want,
	              "%s: %lld, expected %lld", key,
	              (long long)json_integer_value(m), (long long)want);
}

static void
expect_num(json_t *o, const char *key, double want)
{
	json_t *m = member(o, key);

	if (want < 0) {
		ck_assert_msg(json_is_null(m), "%s: expected null", key);
		return;
	}
	ck_assert_msg(json_is_number(m), "%s: expected a number", key);
	ck_assert_msg(json_number_value(m) == want, "%s: %.17g, expected %.17g",
	              key, json_number_value(m), want);
}

static int
matches(const char *re, const char *s)
{
	regex_t r;
	int ok;

	ck_assert_int_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

#define RFC3339_MS                                                             \
	"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"               \
	"\\.[0-9]{3}Z$"

/* Every SPEC field, typed, with the view's values and nulls. */
static void
check_object(json_t *o, const struct st_view *v)
{
	json_t *peer, *lag, *paths, *dbs, *ready, *reasons, *warns, *m;
	size_t i;

	ck_assert_msg(json_is_object(o), "not an object");
	expect_string(o, "node", v->conf->node_name);
	expect_string(o, "role", v->role);
	expect_int(o, "epoch", (int64_t)v->epoch);
	expect_string(o, "daemon", v->running ? "running" : "stopped");

	peer = member(o, "peer");
	ck_assert_msg(json_is_object(peer), "peer: expected an object");
	expect_string(peer, "name", v->peer_name);
	expect_string(peer, "address", v->conf->peer);
	expect_string(peer, "state", v->peer_state);
	expect_string(peer, "role", v->peer_role);
	expect_int(peer, "epoch", v->peer_epoch);
	expect_num(peer, "last_heard_seconds", v->last_heard);

	lag = member(o, "lag");
	ck_assert_msg(json_is_object(lag), "lag: expected an object");
	expect_num(lag, "seconds", v->lag);
	expect_int(lag, "files_pending", v->files_pending);
	expect_int(lag, "bytes_pending", v->bytes_pending);
	m = member(lag, "last_applied");
	if (v->last_applied_unix < 0)
		ck_assert_msg(json_is_null(m), "last_applied: expected null");
	else {
		ck_assert_msg(json_is_string(m), "last_applied: expected a "
		                                 "string");
		ck_assert_msg(matches(RFC3339_MS, json_string_value(m)),
		              "last_applied '%s' is not RFC 3339 UTC with "
		              "milliseconds",
		              json_string_value(m));
	}

	paths = member(o, "paths");
	ck_assert_msg(json_is_array(paths), "paths: expected an array");
	ck_assert_uint_eq(json_array_size(paths), v->n_paths);
	for (i = 0; i < v->n_paths; i++) {
		json_t *p = json_array_get(paths, i);
		const struct st_path *sp = &v->paths[i];
		double prog;

		ck_assert_msg(json_is_object(p), "paths[%zu]: not an object",
		              i);
		expect_string(p, "name", sp->name);
		expect_int(p, "files", sp->files);
		expect_int(p, "bytes", sp->bytes);
		expect_string(p, "state", sp->state);
		ck_assert_msg(matches("^(seeding|in-sync|catching-up|held|"
		                      "error)$",
		                      json_string_value(member(p, "state"))),
		              "paths[%zu].state is not a SPEC state", i);
		m = member(p, "progress");
		ck_assert_msg(json_is_number(m), "progress: not a number");
		prog = json_number_value(m);
		ck_assert_msg(prog == sp->progress, "progress %.17g != %.17g",
		              prog, sp->progress);
		ck_assert(prog >= 0 && prog <= 1);
	}

	dbs = member(o, "databases");
	ck_assert_msg(json_is_array(dbs), "databases: expected an array");
	ck_assert_uint_eq(json_array_size(dbs), v->conf->n_dbs);
	for (i = 0; i < v->conf->n_dbs; i++) {
		json_t *d = json_array_get(dbs, i);

		ck_assert_msg(json_is_object(d), "databases[%zu]", i);
		expect_string(d, "name", v->conf->dbs[i].name);
		ck_assert_msg(json_is_string(member(d, "type")), "type");
		ck_assert_msg(json_is_null(member(d, "last_snapshot")),
		              "last_snapshot: no snapshot exists yet");
		ck_assert_msg(json_is_null(member(d, "snapshot_age_seconds")),
		              "snapshot_age_seconds: no snapshot exists yet");
	}

	ready = member(o, "promote_ready");
	ck_assert_msg(json_is_object(ready), "promote_ready: not an object");
	m = member(ready, "ready");
	ck_assert_msg(json_is_boolean(m), "ready: expected a boolean");
	ck_assert_int_eq(json_is_true(m), v->ready != 0);
	expect_num(ready, "rpo_seconds", v->rpo);
	reasons = member(ready, "reasons");
	ck_assert_msg(json_is_array(reasons), "reasons: expected an array");
	ck_assert_uint_eq(json_array_size(reasons), v->n_reasons);
	for (i = 0; i < v->n_reasons; i++) {
		m = json_array_get(reasons, i);
		ck_assert_msg(json_is_string(m), "reasons[%zu]", i);
		ck_assert_str_eq(json_string_value(m), v->reasons[i]);
	}

	warns = member(o, "warnings");
	ck_assert_msg(json_is_array(warns), "warnings: expected an array");
	ck_assert_uint_eq(json_array_size(warns), v->n_warnings);
	for (i = 0; i < v->n_warnings; i++) {
		json_t *w = json_array_get(warns, i);

		ck_assert_msg(json_is_object(w), "warnings[%zu]", i);
		ck_assert_msg(matches("^(warning|critical)$",
		                      json_string_value(member(w, "severity"))),
		              "warnings[%zu].severity", i);
		expect_string(w, "severity", v->warn_sev[i]);
		expect_string(w, "text", v->warn_text[i]);
	}
}

/* Through text and back, as a client sees it. */
static json_t *
round_trip(const struct st_view *v)
{
	json_t *o = st_json(v), *back;
	json_error_t err;
	char *text;

	ck_assert_ptr_nonnull(o);
	text = json_dumps(o, JSON_COMPACT);
	ck_assert_ptr_nonnull(text);
	back = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	ck_assert_msg(back != NULL, "status object does not parse: %s (%s)",
	              err.text, text);
	free(text);
	json_decref(o);
	return back;
}

START_TEST(json_table)
{
	const struct view_case *tc = &view_cases[_i];
	struct st_view v;
	json_t *o;

	fill_view(tc->kind, &v);
	o = round_trip(&v);
	check_object(o, &v);
	json_decref(o);
}
END_TEST

/* The databases of the config, in order, typed, null snapshot fields. */
START_TEST(json_databases)
{
	struct st_view v;
	json_t *o, *dbs;

	fill_view(V_PRIMARY_IN_SYNC, &v);
	o = round_trip(&v);
	dbs = json_object_get(o, "databases");
	ck_assert_uint_eq(json_array_size(dbs), 2);
	expect_string(json_array_get(dbs, 0), "name", "xcatdb");
	expect_string(json_array_get(dbs, 0), "type", "sqlite");
	expect_string(json_array_get(dbs, 1), "name", "pg");
	expect_string(json_array_get(dbs, 1), "type", "postgresql");
	json_decref(o);
}
END_TEST

/* Databases as the manager says them: every field, hadr for db2 only. */
START_TEST(json_databases_filled)
{
	struct st_view v;
	json_t *o, *d, *h;

	fill_view(V_PRIMARY_IN_SYNC, &v);
	v.dbs[0] = (struct dbr_status){.name = "xcatdb",
	                               .type = "sqlite",
	                               .state = "ok",
	                               .last_snapshot = T_EXAMPLE,
	                               .age = 12.5,
	                               .bytes = 4096,
	                               .dumps = 3,
	                               .restores = 0,
	                               .last_restore = -1,
	                               .changed = 0,
	                               .hadr_log_gap = -1};
	v.dbs[1] = (struct dbr_status){.name = "big",
	                               .type = "db2",
	                               .state = "error",
	                               .last_snapshot = -1,
	                               .age = -1,
	                               .bytes = -1,
	                               .last_restore = T_EXAMPLE + 1,
	                               .restores = 2,
	                               .hadr_log_gap = 8192};
	snprintf(v.dbs[1].error, sizeof(v.dbs[1].error), "db2pd: not found");
	snprintf(v.dbs[1].hadr_role, sizeof(v.dbs[1].hadr_role), "STANDBY");
	snprintf(v.dbs[1].hadr_state, sizeof(v.dbs[1].hadr_state),
	         "REMOTE_CATCHUP");
	snprintf(v.dbs[1].hadr_connect, sizeof(v.dbs[1].hadr_connect),
	         "CONNECTED");
	v.n_dbs = 2;
	o = round_trip(&v);
	ck_assert_uint_eq(json_array_size(json_object_get(o, "databases")), 2);
	d = json_array_get(json_object_get(o, "databases"), 0);
	expect_string(d, "name", "xcatdb");
	expect_string(d, "type", "sqlite");
	expect_string(d, "state", "ok");
	expect_string(d, "last_snapshot", "2026-11-25T10:58:01.000Z");
	expect_num(d, "snapshot_age_seconds", 12.5);
	expect_int(d, "bytes", 4096);
	expect_int(d, "dumps", 3);
	expect_int(d, "restores", 0);
	ck_assert(json_is_null(json_object_get(d, "last_restore")));
	ck_assert(json_is_null(json_object_get(d, "error")));
	ck_assert_ptr_null(json_object_get(d, "hadr"));
	d = json_array_get(json_object_get(o, "databases"), 1);
	expect_string(d, "state", "error");
	expect_string(d, "error", "db2pd: not found");
	ck_assert(json_is_null(json_object_get(d, "last_snapshot")));
	ck_assert(json_is_null(json_object_get(d, "snapshot_age_seconds")));
	ck_assert(json_is_null(json_object_get(d, "bytes")));
	expect_string(d, "last_restore", "2026-11-25T10:58:02.000Z");
	h = json_object_get(d, "hadr");
	ck_assert(json_is_object(h));
	expect_string(h, "role", "STANDBY");
	expect_string(h, "state", "REMOTE_CATCHUP");
	expect_string(h, "connect", "CONNECTED");
	expect_int(h, "log_gap_bytes", 8192);
	json_decref(o);
}
END_TEST

/* A saved status keeps the databases, but not their ages (they grow). */
START_TEST(saved_databases)
{
	struct st_view v;
	struct st_saved sv = {NULL, 0};
	json_t *o, *back, *d;
	int absent;

	fill_view(V_PRIMARY_IN_SYNC, &v);
	v.dbs[0] = (struct dbr_status){.name = "xcatdb",
	                               .type = "sqlite",
	                               .state = "ok",
	                               .last_snapshot = T_EXAMPLE,
	                               .age = 3,
	                               .bytes = 10,
	                               .dumps = 1,
	                               .last_restore = -1,
	                               .hadr_log_gap = -1};
	v.n_dbs = 1;
	o = st_json(&v);
	ck_assert_int_eq(st_save(tmpdir, o, &sv), 1);
	/* Older by a second: the same saved text. */
	v.dbs[0].age = 4;
	json_decref(o);
	o = st_json(&v);
	ck_assert_int_eq(st_save(tmpdir, o, &sv), 0);
	back = st_saved_load(tmpdir, &absent);
	ck_assert_ptr_nonnull(back);
	d = json_array_get(json_object_get(back, "databases"), 0);
	expect_string(d, "name", "xcatdb");
	expect_string(d, "last_snapshot", "2026-11-25T10:58:01.000Z");
	expect_int(d, "dumps", 1);
	ck_assert_ptr_null(json_object_get(d, "snapshot_age_seconds"));
	json_decref(back);
	json_decref(o);
	st_saved_free(&sv);
}
END_TEST

/* The warning list stops at its size; long texts are cut, not spilled. */
START_TEST(json_warnings_bounded)
{
	struct st_view v;
	json_t *o, *w;
	size_t i;

	fill_view(V_WARNINGS, &v);
	ck_assert_uint_eq(v.n_warnings, ST_WARNINGS_MAX);
	o = round_trip(&v);
	w = json_object_get(o, "warnings");
	ck_assert_uint_eq(json_array_size(w), ST_WARNINGS_MAX);
	expect_string(json_array_get(w, 0), "severity", "critical");
	for (i = 1; i < ST_WARNINGS_MAX; i++) {
		const char *t = json_string_value(
		    json_object_get(json_array_get(w, i), "text"));

		ck_assert_ptr_nonnull(t);
		ck_assert_uint_lt(strlen(t), sizeof(v.warn_text[0]));
	}
	json_decref(o);
}
END_TEST

/*
 * st_warn_identity: the identity named by the config file as it is on
 * disk now, not as the daemon loaded it (a reload refused keeps the old).
 */
static void
id_conf_write(const char *path, const char *dir, const char *key)
{
	char text[1024];

	snprintf(text, sizeof(text),
	         "[node]\nname = mn2\nrole = standby\nstate_dir = %s\n"
	         "listen = 127.0.0.1:7873\npeer = mn1:7873\n"
	         "cert = %s/pki/node.crt\nkey = %s\n"
	         "peer_fingerprint = " FP "\n"
	         "\n[path install]\nsource = /install\n",
	         dir, dir, key);
	write_file(path, text);
}

/* Warnings st_warn_identity gives for `c`; the first's text in `text`. */
static size_t
id_warnings(const struct hs_conf *c, char *text, size_t len)
{
	struct st_view v;

	memset(&v, 0, sizeof(v));
	v.conf = c;
	st_warn_identity(&v);
	snprintf(text, len, "%s", v.n_warnings > 0 ? v.warn_text[0] : "");
	return v.n_warnings;
}

START_TEST(identity_warn)
{
	char pki[128], key[160], path[128], why[HS_ERRMSG_MAX];
	char text[HS_ERRMSG_MAX + 128];
	struct hs_conf *c = NULL;
	uint8_t fp[32];

	snprintf(pki, sizeof(pki), "%s/pki", tmpdir);
	snprintf(key, sizeof(key), "%s/node.key", pki);
	snprintf(path, sizeof(path), "%s/id.conf", tmpdir);
	ck_assert_int_eq(mkdir(pki, 0700), 0);
	ck_assert_msg(proto_keygen(pki, "mn2", 0, fp, why, sizeof(why)) == 0,
	              "keygen: %s", why);
	id_conf_write(path, tmpdir, key);
	ck_assert_msg(hs_conf_load(path, &c, why, sizeof(why)) == 0,
	              "config: %s", why);
	ck_assert_uint_eq(id_warnings(c, text, sizeof(text)), 0);
	/* A key made too open, then put right. */
	ck_assert_int_eq(chmod(key, 0644), 0);
	ck_assert_uint_eq(id_warnings(c, text, sizeof(text)), 1);
	ck_assert_ptr_nonnull(strstr(text, "permissions 0644"));
	ck_assert_ptr_nonnull(strstr(text, "a restart would fail"));
	ck_assert_int_eq(chmod(key, 0600), 0);
	ck_assert_uint_eq(id_warnings(c, text, sizeof(text)), 0);
	/* The file names another key; the loaded config still the good one. */
	id_conf_write(path, tmpdir, "/nonexistent/node.key");
	ck_assert_uint_eq(id_warnings(c, text, sizeof(text)), 1);
	ck_assert_ptr_nonnull(strstr(text, "/nonexistent/node.key"));
	/* A config that does not load is not this warning's to say. */
	write_file(path, "[node]\nname =\n");
	ck_assert_uint_eq(id_warnings(c, text, sizeof(text)), 0);
	hs_conf_free(c);
}
END_TEST

/* last_applied: RFC 3339 UTC, milliseconds, the instant it was given. */
struct time_case {
	double unix_s;
	const char *want;
};

static const struct time_case time_cases[] = {
    {T_EXAMPLE + 0.120, "2026-11-25T10:58:01.120Z"},
    {T_EXAMPLE, "2026-11-25T10:58:01.000Z"},
    {T_EXAMPLE + 0.5, "2026-11-25T10:58:01.500Z"},
    {T_EXAMPLE + 0.999, "2026-11-25T10:58:01.999Z"},
    {T_EXAMPLE + 0.001, "2026-11-25T10:58:01.001Z"},
    {0.0, "1970-01-01T00:00:00.000Z"},
    {951782400.25, "2000-02-29T00:00:00.250Z"},
};

START_TEST(json_time_table)
{
	const struct time_case *tc = &time_cases[_i];
	struct st_view v;
	json_t *o;
	const char *got;

	fill_view(V_PRIMARY_IN_SYNC, &v);
	v.last_applied_unix = tc->unix_s;
	o = round_trip(&v);
	got = json_string_value(
	    json_object_get(json_object_get(o, "lag"), "last_applied"));
	ck_assert_ptr_nonnull(got);
	ck_assert_msg(matches(RFC3339_MS, got), "shape of '%s'", got);
	ck_assert_msg(strcmp(got, tc->want) == 0,
	              "last_applied for %.6f is '%s', expected '%s'",
	              tc->unix_s, got, tc->want);
	json_decref(o);
}
END_TEST

/* A fenced node's words, from the record its index keeps (or none). */
struct fenced_case {
	const char *rec; /* NULL: no record */
	uint64_t epoch;
	const char *want;
};

static const struct fenced_case fenced_cases[] = {
    {"mn2 primary 4", 3,
     "needs rejoin: mn2 is primary at epoch 4 (this node: 3); run hamnsync "
     "rejoin"},
    {"mn2 standby 1", 0,
     "needs rejoin: mn2 is standby at epoch 1 (this node: 0); run hamnsync "
     "rejoin"},
    {NULL, 2,
     "needs rejoin: a node of a newer epoch fenced this one (epoch 2); run "
     "hamnsync rejoin"},
    {"garbage", 2,
     "needs rejoin: a node of a newer epoch fenced this one (epoch 2); run "
     "hamnsync rejoin"},
};

START_TEST(fenced_text_table)
{
	const struct fenced_case *tc = &fenced_cases[_i];
	char rec[128], got[HS_ERRMSG_MAX];

	st_fenced_text(got, sizeof(got), tc->rec, tc->rec ? strlen(tc->rec) : 0,
	               tc->epoch);
	ck_assert_str_eq(got, tc->want);
	/* The record st_fenced_record writes reads back the same. */
	if (tc->rec != NULL && strchr(tc->rec, ' ') != NULL) {
		st_fenced_record(rec, sizeof(rec), "mn2",
		                 strstr(tc->rec, "primary") ? HS_ROLE_PRIMARY
		                                            : HS_ROLE_STANDBY,
		                 strtoull(strrchr(tc->rec, ' ') + 1, NULL, 10));
		ck_assert_str_eq(rec, tc->rec);
	}
}
END_TEST

/* ------------------------------------------------------ control socket */

static char sock_path[100];

static void
sock_setup(void)
{
	dir_setup();
	snprintf(sock_path, sizeof(sock_path), "%s/%s", tmpdir, CTL_SOCK_NAME);
}

/* What the fake daemon answers. */
static json_t *
test_answer(void *arg, const char *verb)
{
	json_t *j;

	(void)arg;
	if (strcmp(verb, "status") == 0 || strcmp(verb, "sync") == 0) {
		j = json_object();
		json_object_set_new(j, "answered", json_string(verb));
		json_object_set_new(j, "node", json_string("mn2"));
		return j;
	}
	return NULL;
}

/*
 * A child serving `lfd` with ctl_serve for at most `rounds` polls of
 * 100 ms.  The test stops it with stop_child().
 */
static pid_t
serve_child(int lfd, const char *group, int rounds)
{
	pid_t pid = fork();
	int i;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		signal(SIGPIPE, SIG_IGN);
		for (i = 0; i < rounds; i++) {
			struct pollfd p = {.fd = lfd, .events = POLLIN};

			if (poll(&p, 1, 100) == 1)
				ctl_serve(lfd, group, test_answer, NULL);
		}
		_exit(0);
	}
	return pid;
}

static void
stop_child(pid_t pid)
{
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

static int
connect_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	              "connect %s: %s", path, strerror(errno));
	return fd;
}

/* Read until EOF (or a reset after the data), bounded by 5 s of silence. */
static char *
read_all(int fd)
{
	static char buf[65536];
	size_t len = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (len < sizeof(buf) - 1 && poll(&p, 1, 5000) == 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

/* A raw request: send `req` (len bytes, maybe in two parts), read reply. */
static json_t *
raw_request(const char *req, size_t len, size_t split, int shut)
{
	int fd = connect_unix(sock_path);
	json_error_t err;
	json_t *j;
	char *reply;

	signal(SIGPIPE, SIG_IGN);
	if (split > 0 && split < len) {
		ck_assert_int_eq(hs_write_all(fd, req, split), 0);
		usleep(30 * 1000);
		(void)hs_write_all(fd, req + split, len - split);
	} else
		(void)hs_write_all(fd, req, len);
	if (shut)
		shutdown(fd, SHUT_WR);
	reply = read_all(fd);
	close(fd);
	j = json_loads(reply, 0, &err);
	ck_assert_msg(j != NULL, "reply to a raw request is not JSON: '%s'",
	              reply);
	return j;
}

struct raw_case {
	const char *name;
	const char *req;      /* NULL: generated */
	size_t split;         /* send in two parts at this offset */
	int shut;             /* half-close after sending */
	const char *answered; /* verb expected answered, NULL: error */
};

static const struct raw_case raw_cases[] = {
    {"status", CTL_PROTO " status\n", 0, 0, "status"},
    {"status in two writes", CTL_PROTO " status\n", 9, 0, "status"},
    {"status, client half-closes", CTL_PROTO " status\n", 0, 1, "status"},
    {"unknown verb", CTL_PROTO " frobnicate\n", 0, 0, NULL},
    {"no prefix", "status\n", 0, 0, NULL},
    {"other version", "HAMNSYNC-CTL/2 status\n", 0, 0, NULL},
    {"version 10", "HAMNSYNC-CTL/10 status\n", 0, 0, NULL},
    {"lower-case prefix", "hamnsync-ctl/1 status\n", 0, 0, NULL},
    {"upper-case verb", CTL_PROTO " STATUS\n", 0, 0, NULL},
    {"empty verb", CTL_PROTO " \n", 0, 0, NULL},
    {"empty line", "\n", 0, 0, NULL},
    {"no newline, then EOF", CTL_PROTO " status", 0, 1, NULL},
    {"nothing, then EOF", "", 0, 1, NULL},
    {"binary junk", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 0, 0,
     NULL},
    {"longer than CTL_REQ_MAX (verb)", NULL, 0, 0, NULL},
    {"longer than CTL_REQ_MAX (spaces)", NULL, 1, 0, NULL},
};

START_TEST(ctl_raw_table)
{
	const struct raw_case *tc = &raw_cases[_i];
	char big[CTL_REQ_MAX * 2 + 64];
	const char *req = tc->req;
	size_t len = 0;
	json_t *j;
	pid_t pid;
	int lfd;

	if (req == NULL) {
		/* A line past the limit: a long verb, or status + padding. */
		if (tc->split == 0) {
			len = (size_t)snprintf(big, sizeof(big), "%s ",
			                       CTL_PROTO);
			memset(big + len, 'a', CTL_REQ_MAX + 20);
			len += CTL_REQ_MAX + 20;
		} else {
			len = (size_t)snprintf(big, sizeof(big), "%s status",
			                       CTL_PROTO);
			memset(big + len, ' ', CTL_REQ_MAX);
			len += CTL_REQ_MAX;
		}
		big[len++] = '\n';
		req = big;
	}
	if (req != big)
		len = strlen(req);
	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	pid = serve_child(lfd, NULL, 100);
	j = raw_request(req, len, req == big ? 0 : tc->split, tc->shut);
	stop_child(pid);
	close(lfd);
	if (tc->answered != NULL) {
		ck_assert_msg(json_object_get(j, "error") == NULL,
		              "%s: answered with an error", tc->name);
		expect_string(j, "answered", tc->answered);
	} else {
		json_t *e = json_object_get(j, "error");

		ck_assert_msg(json_is_string(e),
		              "%s: expected {\"error\": ...}, got another "
		              "object",
		              tc->name);
		ck_assert_uint_gt(strlen(json_string_value(e)), 0);
		ck_assert_msg(json_object_get(j, "answered") == NULL,
		              "%s: answered", tc->name);
	}
	json_decref(j);
}
END_TEST

/* ctl_request against ctl_serve: status, other verbs, unknown verbs. */
struct req_case {
	const char *verb;
	int answered;
};

static const struct req_case req_cases[] = {
    {"status", 1},
    {"sync", 1},
    {"frobnicate", 0},
    {"x", 0},
};

START_TEST(ctl_request_table)
{
	const struct req_case *tc = &req_cases[_i];
	json_t *j = NULL;
	pid_t pid;
	int lfd, rc;

	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	pid = serve_child(lfd, NULL, 100);
	rc = ctl_request(tmpdir, tc->verb, 5000, &j);
	stop_child(pid);
	close(lfd);
	ck_assert_msg(rc == HS_OK, "ctl_request %s: %s", tc->verb,
	              hs_strerror(rc));
	ck_assert_ptr_nonnull(j);
	if (tc->answered)
		expect_string(j, "answered", tc->verb);
	else
		ck_assert_msg(json_is_string(json_object_get(j, "error")),
		              "verb %s: expected an error object", tc->verb);
	json_decref(j);
}
END_TEST

/*
 * A verb longer than a request may be: the client must not send more
 * than its buffer holds (nor read past it); either it refuses, or the
 * daemon answers with an error.
 */
START_TEST(ctl_request_long_verb)
{
	char verb[CTL_REQ_MAX * 2];
	json_t *j = NULL;
	pid_t pid;
	int lfd, rc;

	memset(verb, 'v', sizeof(verb) - 1);
	verb[sizeof(verb) - 1] = '\0';
	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	pid = serve_child(lfd, NULL, 100);
	rc = ctl_request(tmpdir, verb, 3000, &j);
	stop_child(pid);
	close(lfd);
	if (rc == HS_OK) {
		ck_assert_msg(json_is_string(json_object_get(j, "error")),
		              "an over-long verb was answered");
		json_decref(j);
	} else
		ck_assert_int_lt(rc, 0);
}
END_TEST

/* A client that connects and says nothing: the next one is answered. */
START_TEST(ctl_silent_client)
{
	json_t *j = NULL;
	pid_t pid;
	int lfd, silent, rc;

	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	silent = connect_unix(sock_path);
	pid = serve_child(lfd, NULL, 100);
	rc = ctl_request(tmpdir, "status", 5000, &j);
	ck_assert_msg(rc == HS_OK, "second client: %s", hs_strerror(rc));
	expect_string(j, "answered", "status");
	json_decref(j);
	/* The silent one was dropped with an error, not left hanging. */
	j = json_loads(read_all(silent), 0, NULL);
	ck_assert_msg(j != NULL && json_is_string(json_object_get(j, "error")),
	              "the silent client got no error object");
	json_decref(j);
	close(silent);
	stop_child(pid);
	close(lfd);
}
END_TEST

/*
 * A client that trickles its line a byte at a time, never finishing it,
 * must be dropped after CTL_READ_MS in all, not CTL_READ_MS per byte:
 * otherwise one slow client holds the daemon (and `status`, whose bound
 * is 2 s) for as long as it likes.
 */
START_TEST(ctl_trickling_client)
{
	json_t *j = NULL;
	pid_t pid, trickler;
	int lfd, slow, rc, i;

	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	slow = connect_unix(sock_path);
	ck_assert_int_eq(hs_write_all(slow, "H", 1), 0);
	trickler = fork();
	ck_assert_int_ge(trickler, 0);
	if (trickler == 0) {
		signal(SIGPIPE, SIG_IGN);
		/* 6 s of a byte every 100 ms, well under CTL_REQ_MAX. */
		for (i = 0; i < 60; i++) {
			usleep(100 * 1000);
			if (write(slow, "A", 1) != 1)
				break;
		}
		_exit(0);
	}
	close(slow);
	pid = serve_child(lfd, NULL, 150);
	rc = ctl_request(tmpdir, "status", 2000, &j);
	stop_child(trickler);
	stop_child(pid);
	close(lfd);
	ck_assert_msg(rc == HS_OK,
	              "a client trickling its request held the daemon: "
	              "the next one got %s within 2 s",
	              hs_strerror(rc));
	expect_string(j, "answered", "status");
	json_decref(j);
}
END_TEST

/*
 * Several silent clients queued before a real one: `status` still gets
 * its answer within its 2 s bound.
 */
START_TEST(ctl_many_silent_clients)
{
	int silent[15], lfd, rc;
	json_t *j = NULL;
	size_t i;
	pid_t pid;

	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	for (i = 0; i < N_ELEM(silent); i++)
		silent[i] = connect_unix(sock_path);
	pid = serve_child(lfd, NULL, 150);
	rc = ctl_request(tmpdir, "status", 2000, &j);
	for (i = 0; i < N_ELEM(silent); i++)
		close(silent[i]);
	stop_child(pid);
	close(lfd);
	ck_assert_msg(rc == HS_OK,
	              "%zu silent clients held the daemon: the next one "
	              "got %s within 2 s",
	              N_ELEM(silent), hs_strerror(rc));
	expect_string(j, "answered", "status");
	json_decref(j);
}
END_TEST

/* No daemon: no socket file, or a socket nobody listens on. */
START_TEST(ctl_no_server)
{
	struct sockaddr_un sa;
	json_t *j = NULL;
	int fd, rc;

	rc = ctl_request(tmpdir, "status", 500, &j);
	ck_assert_msg(rc == -ENOENT, "no socket: %s", hs_strerror(rc));
	/* A stale socket left by a killed daemon. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	rc = ctl_request(tmpdir, "status", 500, &j);
	ck_assert_msg(rc == -ECONNREFUSED, "stale socket: %s", hs_strerror(rc));
	/* ctl_listen replaces it. */
	fd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ctl_unlink(tmpdir);
	ck_assert_int_eq(access(sock_path, F_OK), -1);
}
END_TEST

/* A daemon that never answers: HS_ETIMEOUT after the given time. */
START_TEST(ctl_timeout)
{
	json_t *j = NULL;
	int lfd, rc, fd;

	/* Listening but never accepting. */
	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	rc = ctl_request(tmpdir, "status", 300, &j);
	ck_assert_msg(rc == HS_ETIMEOUT, "never accepted: %s", hs_strerror(rc));
	/* Accepting, answering half an object, then silent. */
	fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	close(fd);
	{
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			struct pollfd p = {.fd = lfd, .events = POLLIN};

			if (poll(&p, 1, 5000) == 1 &&
			    (fd = accept(lfd, NULL, NULL)) >= 0) {
				if (write(fd, "{\"a\":", 5) < 0)
					_exit(1);
				sleep(10);
			}
			_exit(0);
		}
		rc = ctl_request(tmpdir, "status", 300, &j);
		stop_child(pid);
	}
	close(lfd);
	ck_assert_msg(rc == HS_ETIMEOUT, "half an answer: %s", hs_strerror(rc));
}
END_TEST

/* A fake daemon that answers `size` bytes of `kind`. */
enum reply_kind { R_JSON, R_JUNK, R_EMPTY };

struct reply_case {
	const char *name;
	enum reply_kind kind;
	size_t size;
	int rc;
};

static const struct reply_case reply_cases[] = {
    {"small object", R_JSON, 64, HS_OK},
    {"1 MiB object", R_JSON, 1u << 20, HS_OK},
    {"CTL_REPLY_MAX - 1 KiB", R_JSON, CTL_REPLY_MAX - 1024, HS_OK},
    {"exactly CTL_REPLY_MAX", R_JSON, CTL_REPLY_MAX, HS_OK},
    {"CTL_REPLY_MAX + 1", R_JSON, CTL_REPLY_MAX + 1, HS_ELIMIT},
    {"2 x CTL_REPLY_MAX", R_JSON, 2 * CTL_REPLY_MAX, HS_ELIMIT},
    {"not JSON", R_JUNK, 100, HS_EPROTO},
    {"nothing at all", R_EMPTY, 0, HS_EPROTO},
};

static void
fake_reply(int lfd, const struct reply_case *tc)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	char line[CTL_REQ_MAX + 1];
	char *buf;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	if (poll(&p, 1, 5000) != 1 || (fd = accept(lfd, NULL, NULL)) < 0)
		_exit(1);
	if (read(fd, line, sizeof(line)) < 0)
		_exit(1);
	if (tc->kind == R_EMPTY)
		_exit(0);
	if ((buf = malloc(tc->size)) == NULL)
		_exit(1);
	if (tc->kind == R_JUNK)
		memset(buf, '#', tc->size);
	else {
		/* {"a":"xxx...x"}\n, exactly size bytes. */
		memset(buf, 'x', tc->size);
		memcpy(buf, "{\"a\":\"", 6);
		memcpy(buf + tc->size - 3, "\"}\n", 3);
	}
	(void)hs_write_all(fd, buf, tc->size);
	close(fd);
	_exit(0);
}

START_TEST(ctl_reply_table)
{
	const struct reply_case *tc = &reply_cases[_i];
	json_t *j = NULL;
	pid_t pid;
	int lfd, rc;

	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		fake_reply(lfd, tc);
	rc = ctl_request(tmpdir, "status", 10000, &j);
	stop_child(pid);
	close(lfd);
	ck_assert_msg(rc == tc->rc, "%s: %s, expected %s", tc->name,
	              hs_strerror(rc), hs_strerror(tc->rc));
	if (rc == HS_OK) {
		ck_assert_uint_eq(
		    strlen(json_string_value(json_object_get(j, "a"))),
		    tc->size - 9);
		json_decref(j);
	}
}
END_TEST

/* ctl_listen: 0660, root:group (root:root without a group). */
START_TEST(ctl_listen_mode)
{
	struct group *gr = getgrnam("daemon");
	struct stat st;
	int lfd;

	if (geteuid() != 0) {
		fprintf(stderr, "ctl_listen_mode: not root, skipped\n");
		return;
	}
	lfd = ctl_listen(tmpdir, NULL);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(lstat(sock_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0660);
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_uint_eq(st.st_gid, 0);
	close(lfd);
	/* A group that does not exist: still root only, still listening. */
	lfd = ctl_listen(tmpdir, "hs-no-such-group-xyz");
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(lstat(sock_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0660);
	ck_assert_uint_eq(st.st_gid, 0);
	close(lfd);
	if (gr == NULL)
		return;
	lfd = ctl_listen(tmpdir, "daemon");
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(lstat(sock_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0660);
	ck_assert_uint_eq(st.st_gid, gr->gr_gid);
	close(lfd);
}
END_TEST

/*
 * SO_PEERCRED: a child that drops to an unprivileged uid asks.  A member
 * of status_group (primary or supplementary group) reads status but no
 * other verb; anyone else cannot even connect.
 */
enum who { W_PRIMARY_GID, W_SUPPLEMENTARY, W_OUTSIDER };

struct perm_case {
	const char *name;
	enum who who;
	const char *verb;
	int rc;       /* of ctl_request */
	int answered; /* when rc == HS_OK */
};

static const struct perm_case perm_cases[] = {
    {"group member (gid): status", W_PRIMARY_GID, "status", HS_OK, 1},
    {"group member (gid): sync", W_PRIMARY_GID, "sync", HS_OK, 0},
    {"group member (supplementary): status", W_SUPPLEMENTARY, "status", HS_OK,
     1},
    {"group member (supplementary): sync", W_SUPPLEMENTARY, "sync", HS_OK, 0},
    {"outsider: status", W_OUTSIDER, "status", -EACCES, 0},
};

START_TEST(ctl_perm_table)
{
	const struct perm_case *tc = &perm_cases[_i];
	struct group *gr = getgrnam("daemon");
	gid_t gid, other = 65534;
	pid_t pid, client;
	int lfd, st;

	if (geteuid() != 0 || gr == NULL) {
		fprintf(stderr, "ctl_perm_table: needs root and group daemon, "
		                "skipped\n");
		return;
	}
	gid = gr->gr_gid;
	ck_assert_int_eq(chmod(tmpdir, 0711), 0);
	lfd = ctl_listen(tmpdir, "daemon");
	ck_assert_int_ge(lfd, 0);
	pid = serve_child(lfd, "daemon", 100);
	client = fork();
	ck_assert_int_ge(client, 0);
	if (client == 0) {
		json_t *j = NULL;
		int rc, ok;

		if (tc->who == W_PRIMARY_GID) {
			if (setgroups(0, NULL) < 0 || setgid(gid) < 0)
				_exit(10);
		} else if (tc->who == W_SUPPLEMENTARY) {
			if (setgroups(1, &gid) < 0 || setgid(other) < 0)
				_exit(10);
		} else if (setgroups(0, NULL) < 0 || setgid(other) < 0)
			_exit(10);
		if (setuid(65534) < 0)
			_exit(10);
		rc = ctl_request(tmpdir, tc->verb, 5000, &j);
		if (rc != tc->rc) {
			fprintf(stderr, "%s: %s\n", tc->name, hs_strerror(rc));
			_exit(11);
		}
		if (rc != HS_OK)
			_exit(0);
		ok = tc->answered
		         ? json_is_string(json_object_get(j, "answered"))
		         : json_is_string(json_object_get(j, "error")) &&
		               json_object_get(j, "answered") == NULL;
		if (!ok) {
			char *s = json_dumps(j, JSON_COMPACT);

			fprintf(stderr, "%s: got %s\n", tc->name, s);
			free(s);
		}
		_exit(ok ? 0 : 12);
	}
	ck_assert_int_eq(waitpid(client, &st, 0), client);
	stop_child(pid);
	close(lfd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "%s: client exit %d", tc->name,
	              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}
END_TEST

/* ------------------------------------------------------- metrics file */

#define MAX_SAMPLES 64

struct sample {
	char name[128];
	char labels[256];
	double value;
};

struct family {
	char name[128];
	char type[32];
	int help, typed, samples;
};

struct metrics {
	struct sample s[MAX_SAMPLES];
	size_t n;
	struct family f[MAX_SAMPLES];
	size_t nf;
};

static struct family *
family_get(struct metrics *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nf; i++)
		if (strcmp(m->f[i].name, name) == 0)
			return &m->f[i];
	ck_assert_uint_lt(m->nf, MAX_SAMPLES);
	snprintf(m->f[m->nf].name, sizeof(m->f[0].name), "%s", name);
	return &m->f[m->nf++];
}

#define NAME_RE "^hamnsync_[a-z_]+$"

/* Value: a float as Go's ParseFloat reads it in decimal, NaN, +/-Inf. */
static int
parse_value(const char *s, double *out)
{
	char *end;

	if (strcmp(s, "NaN") == 0) {
		*out = NAN;
		return 1;
	}
	if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0) {
		*out = s[0] == '-' ? -INFINITY : INFINITY;
		return 1;
	}
	if (!matches("^[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$",
	             s))
		return 0;
	*out = strtod(s, &end);
	return *end == '\0';
}

/*
 * The text exposition format, strictly: only HELP, TYPE and samples,
 * HELP and TYPE once per family and before its samples, samples of a
 * family together, labels name="value" with escapes, a final newline.
 */
static void
parse_metrics(const char *path, struct metrics *m)
{
	char line[1024], cur[128] = "";
	FILE *f = fopen(path, "r");
	int lineno = 0, last_nl = 1;

	ck_assert_ptr_nonnull(f);
	memset(m, 0, sizeof(*m));
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		char name[128], rest[1024];
		struct family *fam;

		lineno++;
		last_nl = len > 0 && line[len - 1] == '\n';
		ck_assert_msg(last_nl, "%s:%d: no newline (or too long)", path,
		              lineno);
		line[--len] = '\0';
		ck_assert_msg(len > 0, "%s:%d: empty line", path, lineno);
		if (strncmp(line, "# HELP ", 7) == 0) {
			ck_assert_msg(sscanf(line + 7, "%127s %1023[^\n]", name,
			                     rest) == 2,
			              "%s:%d: HELP without text", path, lineno);
			ck_assert_msg(matches(NAME_RE, name), "%s:%d: name %s",
			              path, lineno, name);
			fam = family_get(m, name);
			ck_assert_msg(!fam->help && !fam->samples,
			              "%s:%d: HELP twice or after samples",
			              path, lineno);
			fam->help = 1;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char type[32];

			ck_assert_msg(
			    sscanf(line + 7, "%127s %31s", name, type) == 2,
			    "%s:%d: malformed TYPE", path, lineno);
			ck_assert_msg(matches("^(counter|gauge)$", type),
			              "%s:%d: type %s", path, lineno, type);
			ck_assert_msg(matches(NAME_RE, name), "%s:%d: name %s",
			              path, lineno, name);
			fam = family_get(m, name);
			ck_assert_msg(!fam->typed && !fam->samples,
			              "%s:%d: TYPE twice or after samples",
			              path, lineno);
			fam->typed = 1;
			snprintf(fam->type, sizeof(fam->type), "%s", type);
			if (strcmp(type, "counter") == 0)
				ck_assert_msg(matches("_total$", name),
				              "%s:%d: counter %s does not end "
				              "in _total",
				              path, lineno, name);
			else
				ck_assert_msg(!matches("_total$", name),
				              "%s:%d: gauge %s ends in _total",
				              path, lineno, name);
			continue;
		}
		ck_assert_msg(line[0] != '#',
		              "%s:%d: a comment that is neither "
		              "HELP nor TYPE",
		              path, lineno);
		{
			struct sample *s;
			const char *p = line, *q;
			size_t nl;

			ck_assert_uint_lt(m->n, MAX_SAMPLES);
			s = &m->s[m->n++];
			nl = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
			ck_assert_msg(nl > 0 && nl < sizeof(s->name),
			              "%s:%d: no metric name", path, lineno);
			memcpy(s->name, p, nl);
			s->name[nl] = '\0';
			ck_assert_msg(matches(NAME_RE, s->name),
			              "%s:%d: name %s", path, lineno, s->name);
			p += nl;
			if (*p == '{') {
				q = p + 1;
				for (;;) {
					size_t ln = strspn(
					    q, "abcdefghijklmnopqrstuvwxyz"
					       "ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
					       "0123456789");

					ck_assert_msg(
					    ln > 0 && !(*q >= '0' && *q <= '9'),
					    "%s:%d: label name", path, lineno);
					q += ln;
					ck_assert_msg(
					    q[0] == '=' && q[1] == '"',
					    "%s:%d: label =\"", path, lineno);
					q += 2;
					while (*q != '"') {
						ck_assert_msg(
						    *q != '\0',
						    "%s:%d: open label", path,
						    lineno);
						if (*q == '\\') {
							ck_assert_msg(
							    q[1] == '\\' ||
							        q[1] == '"' ||
							        q[1] == 'n',
							    "%s:%d: escape",
							    path, lineno);
							q++;
						}
						q++;
					}
					q++;
					if (*q == ',') {
						q++;
						continue;
					}
					ck_assert_msg(*q == '}',
					              "%s:%d: labels", path,
					              lineno);
					q++;
					break;
				}
				ck_assert_uint_lt((size_t)(q - p),
				                  sizeof(s->labels));
				memcpy(s->labels, p, (size_t)(q - p));
				s->labels[q - p] = '\0';
				p = q;
			}
			ck_assert_msg(*p == ' ', "%s:%d: no space before value",
			              path, lineno);
			p++;
			ck_assert_msg(parse_value(p, &s->value),
			              "%s:%d: value '%s' is not a float", path,
			              lineno, p);
			fam = family_get(m, s->name);
			ck_assert_msg(fam->help && fam->typed,
			              "%s:%d: sample of %s before its HELP and "
			              "TYPE",
			              path, lineno, s->name);
			ck_assert_msg(fam->samples == 0 ||
			                  strcmp(cur, s->name) == 0,
			              "%s:%d: samples of %s not together", path,
			              lineno, s->name);
			fam->samples++;
			snprintf(cur, sizeof(cur), "%s", s->name);
		}
	}
	fclose(f);
	ck_assert_msg(lineno > 0, "%s is empty", path);
	for (size_t i = 0; i < m->nf; i++)
		ck_assert_msg(m->f[i].help && m->f[i].typed && m->f[i].samples,
		              "family %s lacks HELP, TYPE or samples",
		              m->f[i].name);
}

static const struct sample *
sample_get(const struct metrics *m, const char *name, const char *labels)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->s[i].name, name) == 0 &&
		    strcmp(m->s[i].labels, labels) == 0)
			return &m->s[i];
	ck_assert_msg(0, "metric %s%s is missing", name, labels);
	return NULL;
}

static void
expect_metric(const struct metrics *m, const char *name, const char *labels,
              double want)
{
	const struct sample *s = sample_get(m, name, labels);

	if (isnan(want))
		ck_assert_msg(isnan(s->value), "%s%s: %.17g, expected NaN",
		              name, labels, s->value);
	else
		ck_assert_msg(s->value == want, "%s%s: %.17g, expected %.17g",
		              name, labels, s->value, want);
}

/* Nothing but the file itself in the directory: no temporary left. */
static void
expect_only(const char *dir, const char *file)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		ck_assert_msg(file != NULL && strcmp(e->d_name, file) == 0,
		              "unexpected %s/%s (a temporary left behind?)",
		              dir, e->d_name);
	}
	closedir(d);
}

struct metrics_case {
	const char *name;
	enum view_kind kind;
};

static const struct metrics_case metrics_cases[] = {
    {"primary in sync", V_PRIMARY_IN_SYNC},
    {"standby, nothing known", V_STANDBY_UNKNOWN},
    {"seeding", V_SEEDING},
    {"warnings", V_WARNINGS},
    {"stopped", V_STOPPED_NO_DBS},
};

START_TEST(metrics_table)
{
	const struct metrics_case *tc = &metrics_cases[_i];
	struct st_counters c = {
	    .bytes_sent = 123456789,
	    .bytes_received = 9876,
	    .files_applied = 42,
	    .errors_remote = 1,
	    .errors_changed = 2,
	    .errors_session = 3,
	    .reconnects = 4,
	    .watches = 5,
	};
	static struct metrics m;
	char dir[128], path[160];
	struct st_view v;
	struct stat st;
	json_t *o;
	int rc;

	snprintf(dir, sizeof(dir), "%s/prom", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/hamnsync.prom", dir);
	fill_view(tc->kind, &v);
	o = st_json(&v);
	rc = st_metrics_write(path, o, &c);
	json_decref(o);
	ck_assert_msg(rc == HS_OK, "%s: %s", tc->name, hs_strerror(rc));
	expect_only(dir, "hamnsync.prom");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg((st.st_mode & 0444) == 0444,
	              "node-exporter cannot read a %o file",
	              (unsigned)(st.st_mode & 0777));
	parse_metrics(path, &m);

	/* The list, with the view's values; NaN where unknown. */
	expect_metric(&m, "hamnsync_lag_seconds", "", v.lag < 0 ? NAN : v.lag);
	expect_metric(&m, "hamnsync_pending_files", "",
	              v.files_pending < 0 ? NAN : (double)v.files_pending);
	expect_metric(&m, "hamnsync_pending_bytes", "",
	              v.bytes_pending < 0 ? NAN : (double)v.bytes_pending);
	expect_metric(&m, "hamnsync_peer_last_heard_seconds", "",
	              v.last_heard < 0 ? NAN : v.last_heard);
	expect_metric(&m, "hamnsync_promote_ready", "", v.ready ? 1 : 0);
	expect_metric(&m, "hamnsync_epoch", "", (double)v.epoch);
	expect_metric(&m, "hamnsync_watches", "", 5);
	expect_metric(&m, "hamnsync_sent_bytes_total", "", 123456789);
	expect_metric(&m, "hamnsync_received_bytes_total", "", 9876);
	expect_metric(&m, "hamnsync_files_applied_total", "", 42);
	expect_metric(&m, "hamnsync_reconnects_total", "", 4);
	expect_metric(&m, "hamnsync_errors_total", "{kind=\"standby\"}", 1);
	expect_metric(&m, "hamnsync_errors_total",
	              "{kind=\"changed_while_read\"}", 2);
	expect_metric(&m, "hamnsync_errors_total", "{kind=\"session\"}", 3);
}
END_TEST

/* A second write replaces the file whole (a new inode: rename). */
START_TEST(metrics_replace)
{
	struct st_counters c;
	static struct metrics m;
	char path[160];
	struct st_view v;
	struct stat a, b;
	json_t *o;
	int keep;

	memset(&c, 0, sizeof(c));
	snprintf(path, sizeof(path), "%s/m.prom", tmpdir);
	fill_view(V_STANDBY_UNKNOWN, &v);
	o = st_json(&v);
	ck_assert_int_eq(st_metrics_write(path, o, &c), HS_OK);
	json_decref(o);
	ck_assert_int_eq(stat(path, &a), 0);
	/* A reader holding the old file keeps reading it whole. */
	keep = open(path, O_RDONLY);
	ck_assert_int_ge(keep, 0);
	fill_view(V_PRIMARY_IN_SYNC, &v);
	o = st_json(&v);
	c.files_applied = 7;
	ck_assert_int_eq(st_metrics_write(path, o, &c), HS_OK);
	json_decref(o);
	ck_assert_int_eq(stat(path, &b), 0);
	ck_assert_msg(a.st_ino != b.st_ino, "rewritten in place, not renamed");
	close(keep);
	parse_metrics(path, &m);
	expect_metric(&m, "hamnsync_files_applied_total", "", 7);
	expect_metric(&m, "hamnsync_lag_seconds", "", 0);
	/* Only the file and the config are in the folder. */
	{
		DIR *d = opendir(tmpdir);
		struct dirent *e;

		ck_assert_ptr_nonnull(d);
		while ((e = readdir(d)) != NULL)
			ck_assert_msg(strstr(e->d_name, ".tmp.") == NULL,
			              "temporary %s left", e->d_name);
		closedir(d);
	}
}
END_TEST

/* A folder that does not exist: an error, and nothing is created. */
START_TEST(metrics_bad_dir)
{
	struct st_counters c;
	char path[160], dir[128];
	struct st_view v;
	json_t *o;
	int rc;

	memset(&c, 0, sizeof(c));
	snprintf(dir, sizeof(dir), "%s/ro", tmpdir);
	snprintf(path, sizeof(path), "%s/missing/m.prom", tmpdir);
	fill_view(V_PRIMARY_IN_SYNC, &v);
	o = st_json(&v);
	rc = st_metrics_write(path, o, &c);
	ck_assert_int_lt(rc, 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	/* An existing path that is a directory: rename fails, tmp removed. */
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/ro/m.prom", tmpdir);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	rc = st_metrics_write(path, o, &c);
	json_decref(o);
	ck_assert_int_lt(rc, 0);
	{
		DIR *d = opendir(dir);
		struct dirent *e;

		ck_assert_ptr_nonnull(d);
		while ((e = readdir(d)) != NULL)
			ck_assert_msg(strstr(e->d_name, ".tmp.") == NULL,
			              "temporary %s left after a failure",
			              e->d_name);
		closedir(d);
	}
}
END_TEST

/* ----------------------------------------------------------------- main */

static Suite *
ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc;

	tc = tcase_create("st_json");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_loop_test(tc, json_table, 0, (int)N_ELEM(view_cases));
	tcase_add_test(tc, json_databases);
	tcase_add_test(tc, json_databases_filled);
	tcase_add_test(tc, saved_databases);
	tcase_add_test(tc, json_warnings_bounded);
	tcase_add_test(tc, identity_warn);
	tcase_add_loop_test(tc, json_time_table, 0, (int)N_ELEM(time_cases));
	tcase_add_loop_test(tc, fenced_text_table, 0,
	                    (int)N_ELEM(fenced_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("control");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, sock_setup, dir_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, ctl_raw_table, 0, (int)N_ELEM(raw_cases));
	tcase_add_loop_test(tc, ctl_request_table, 0, (int)N_ELEM(req_cases));
	tcase_add_test(tc, ctl_request_long_verb);
	tcase_add_test(tc, ctl_silent_client);
	tcase_add_test(tc, ctl_trickling_client);
	tcase_add_test(tc, ctl_many_silent_clients);
	tcase_add_test(tc, ctl_no_server);
	tcase_add_test(tc, ctl_timeout);
	tcase_add_loop_test(tc, ctl_reply_table, 0, (int)N_ELEM(reply_cases));
	tcase_add_test(tc, ctl_listen_mode);
	tcase_add_loop_test(tc, ctl_perm_table, 0, (int)N_ELEM(perm_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("metrics");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_loop_test(tc, metrics_table, 0, (int)N_ELEM(metrics_cases));
	tcase_add_test(tc, metrics_replace);
	tcase_add_test(tc, metrics_bad_dir);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ctl_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
