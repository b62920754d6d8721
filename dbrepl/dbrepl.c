/*
 * dbrepl.c - the manager: which database is due for what, its children,
 * its status.
 *
 * Primary: every `interval` a change probe (MARK); when the mark differs
 * from the last snapshot's, a dump into state_dir/db/.NAME.tmp/ (outside
 * the replicated folder), whose files are then renamed one by one into
 * state_dir/db/NAME/ and the manifest last.
 *
 * Standby: state_dir/db/NAME/ is written by the replication.  When its
 * manifest changes, a child checks the files against it, copies them to
 * NAME.good.tmp/, checks the copy and swaps it in for NAME.good/; with
 * `restore = continuous` a restore from NAME.good/ follows.  The work that
 * reads whole snapshots runs in job children: the daemon's loop only
 * stats the manifest and renames.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dbrepl_int.h"

/*
 * A received snapshot that does not match its manifest may still be
 * arriving: it is "waiting" this long before it is an error.
 */
#define DBR_SETTLE_NS (3ULL * 1000000000)
/* How soon a snapshot still arriving is looked at again. */
#define DBR_RECHECK_NS (500ULL * 1000000)
/* How soon a bad snapshot or a failed restore is tried again. */
#define DBR_RETRY_NS (30ULL * 1000000000)
/* The standby stats each manifest this often even when not told. */
#define DBR_POLL_MS 1000
/* While a child runs, the loop looks at it at least this often. */
#define DBR_JOB_POLL_MS 100
/* interval = 0 (tests): a probe every tick, but no busy loop. */
#define DBR_MIN_TICK_MS 100
#define NS 1000000000ULL

/* What identifies one version of a manifest file without reading it. */
struct dbr_key {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
};

/* One database. */
struct dbr_one {
	struct dbr_db d;
	char *dir;           /* state_dir/db/NAME: the snapshot */
	char *tmp;           /* primary: state_dir/db/.NAME.tmp, the dump */
	char *good;          /* standby: state_dir/db/NAME.good */
	char *goodtmp;       /* standby: state_dir/db/NAME.good.tmp */
	char *restored_file; /* standby: state_dir/db/NAME.restored */
	struct dbr_job job;
	/* The last snapshot made (primary) or good one held (standby). */
	struct proto_manifest *snap;
	int has_snap;
	int64_t bytes;
	uint64_t next_ns; /* monotonic: the next probe */
	/* primary */
	char mark[DBR_MARK_MAX]; /* the mark the running dump follows */
	double dump_made;
	uint64_t dump_gen;
	int changed;
	uint64_t dumps;
	/* standby */
	struct dbr_key seen; /* the manifest last looked at */
	int has_seen;
	int recheck;        /* told that the set was written */
	uint64_t bad_since; /* monotonic: first mismatch of `seen`, 0 */
	uint64_t retry_ns;  /* monotonic: look again then, 0 */
	int waiting;        /* a mismatch, maybe still arriving */
	uint64_t restored_gen;
	double restored_made;
	uint64_t restore_retry_ns;
	uint64_t restores;
	double last_restore;
	/* db2 */
	char hadr_role[16];
	char hadr_state[32];
	char hadr_connect[32];
	int64_t hadr_log_gap;
	char error[HS_ERRMSG_MAX]; /* "" when the last attempt worked */
	/* dbr_snapshot_now: asked, probing for, and done up to (tickets) */
	uint64_t want;
	uint64_t probe_for;
	uint64_t done_for;
};

struct dbr {
	const struct hs_conf *conf;
	enum dbr_role role;
	struct dbr_one *dbs;
	size_t n;
	uint64_t ticket; /* the last dbr_snapshot_now */
};

const struct dbr_driver *
dbr_driver_of(enum hs_db_type t)
{
	switch (t) {
	case HS_DB_SQLITE:
		return &dbr_sqlite;
	case HS_DB_POSTGRESQL:
		return &dbr_postgresql;
	case HS_DB_MYSQL:
		return &dbr_mysql;
	case HS_DB_DB2:
		return &dbr_db2;
	}
	return NULL;
}

/* ---- small file helpers -------------------------------------------------- */

static double
dbr_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* state_dir/db/ + pre + name + post */
static char *
dbr_path(const char *state_dir, const char *pre, const char *name,
         const char *post)
{
	char *p;

	if (asprintf(&p, "%s/%s/%s%s%s", state_dir, DBR_DIR, pre, name, post) <
	    0)
		abort();
	return p;
}

/* Remove a folder of plain files (our own temporaries), and the folder. */
static int
dbr_rmdir_files(const char *path)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = HS_OK;

	if ((d = opendir(path)) == NULL)
		return errno == ENOENT ? HS_OK : -errno;
	fd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) < 0 && errno != ENOENT)
			rc = -errno;
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT && rc == HS_OK)
		rc = -errno;
	return rc;
}

/* An empty folder at `path`, whatever was there. */
static int
dbr_fresh_dir(const char *path)
{
	int rc;

	if ((rc = dbr_rmdir_files(path)) < 0)
		return rc;
	if (mkdir(path, 0700) < 0)
		return -errno;
	return HS_OK;
}

static int
dbr_fsync_path(const char *path)
{
	int fd, rc = HS_OK;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Read the manifest in folder `path`; HS_ENOTFOUND when it has none. */
static int
dbr_read_manifest(const char *path, struct proto_manifest *m, char *why,
                  size_t whylen)
{
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? HS_ENOTFOUND : -errno;
	}
	rc = dbr_manifest_read(fd, m, why, whylen);
	close(fd);
	if (rc == -ENOENT)
		rc = HS_ENOTFOUND;
	return rc;
}

static int64_t
dbr_manifest_bytes(const struct proto_manifest *m)
{
	int64_t n = 0;
	size_t i;

	for (i = 0; i < m->n; i++)
		n += (int64_t)m->files[i].size;
	return n;
}

/* Say a failure once (in the log) and keep it for status. */
static void
dbr_set_error(struct dbr_one *o, const char *why)
{
	if (strcmp(o->error, why) != 0)
		hs_log_warnx("dbrepl: database %s: %s", o->d.db->name, why);
	snprintf(o->error, sizeof(o->error), "%s", why);
}

static void
dbr_clear_error(struct dbr_one *o)
{
	if (o->error[0] != '\0')
		hs_log_info("dbrepl: database %s: working again",
		            o->d.db->name);
	o->error[0] = '\0';
}

static int
dbr_running(const struct dbr_one *o)
{
	return o->job.pid > 0;
}

/* ---- open, free -----------------------------------------------------------
 */

/* state_dir/db/NAME.restored: "GENERATION MADE" of the last restore. */
static void
dbr_restored_read(struct dbr_one *o)
{
	unsigned long long gen;
	double made;
	FILE *f;

	o->restored_gen = 0;
	if ((f = fopen(o->restored_file, "re")) == NULL)
		return;
	if (fscanf(f, "%llu %lf", &gen, &made) == 2) {
		o->restored_gen = gen;
		o->restored_made = made;
	}
	fclose(f);
}

static int
dbr_restored_write(struct dbr_one *o)
{
	char tmp[4096], text[128];
	int fd, n, rc = HS_OK;

	snprintf(tmp, sizeof(tmp), "%s.tmp", o->restored_file);
	n = snprintf(text, sizeof(text), "%" PRIu64 " %.6f\n",
	             o->snap->generation, o->snap->made);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = hs_write_all(fd, text, (size_t)n);
	if (rc == HS_OK && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == HS_OK)
		rc = -errno;
	if (rc == HS_OK && rename(tmp, o->restored_file) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* The last snapshot (primary) or good copy (standby) a run left. */
static void
dbr_load_snap(struct dbr *r, struct dbr_one *o)
{
	char why[HS_ERRMSG_MAX];
	int rc;

	o->has_snap = 0;
	rc = dbr_read_manifest(r->role == DBR_PRIMARY ? o->dir : o->good,
	                       o->snap, why, sizeof(why));
	if (rc == HS_OK) {
		o->has_snap = 1;
		o->bytes = dbr_manifest_bytes(o->snap);
	} else if (rc != HS_ENOTFOUND) {
		hs_log_warnx("dbrepl: database %s: the last snapshot: %s",
		             o->d.db->name, why);
	}
}

static int
dbr_open_one(struct dbr *r, struct dbr_one *o, const struct hs_database *db)
{
	const char *sd = r->conf->state_dir;

	o->d.conf = r->conf;
	o->d.db = db;
	o->d.drv = dbr_driver_of(db->type);
	o->job.fd = -1;
	o->hadr_log_gap = -1;
	o->last_restore = -1;
	o->dir = dbr_path(sd, "", db->name, "");
	o->tmp = dbr_path(sd, ".", db->name, ".tmp");
	o->good = dbr_path(sd, "", db->name, ".good");
	o->goodtmp = dbr_path(sd, "", db->name, ".good.tmp");
	o->restored_file = dbr_path(sd, "", db->name, ".restored");
	if ((o->snap = calloc(1, sizeof(*o->snap))) == NULL)
		return -ENOMEM;
	if (mkdir(o->dir, 0700) < 0 && errno != EEXIST) {
		int err = -errno;

		hs_log_warn("dbrepl: database %s: %s", db->name, o->dir);
		return err;
	}
	/* What a killed run left half made. */
	dbr_rmdir_files(r->role == DBR_PRIMARY ? o->tmp : o->goodtmp);
	dbr_load_snap(r, o);
	if (r->role == DBR_STANDBY)
		dbr_restored_read(o);
	return HS_OK;
}

int
dbr_open(const struct hs_conf *conf, enum dbr_role role, struct dbr **out)
{
	struct dbr *r;
	char *top;
	size_t i;
	int rc;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	r->conf = conf;
	r->role = role;
	*out = r;
	if (conf->n_dbs == 0)
		return HS_OK;
	if ((r->dbs = calloc(conf->n_dbs, sizeof(*r->dbs))) == NULL) {
		dbr_free(r);
		*out = NULL;
		return -ENOMEM;
	}
	if (asprintf(&top, "%s/%s", conf->state_dir, DBR_DIR) < 0)
		abort();
	rc = mkdir(top, 0700) < 0 && errno != EEXIST ? -errno : HS_OK;
	if (rc < 0) {
		errno = -rc;
		hs_log_warn("dbrepl: %s", top);
	}
	free(top);
	for (i = 0; rc == HS_OK && i < conf->n_dbs; i++) {
		r->n = i + 1;
		rc = dbr_open_one(r, &r->dbs[i], &conf->dbs[i]);
	}
	if (rc < 0) {
		dbr_free(r);
		*out = NULL;
	}
	return rc;
}

void
dbr_free(struct dbr *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		struct dbr_one *o = &r->dbs[i];

		dbr_job_kill(&o->job);
		free(o->dir);
		free(o->tmp);
		free(o->good);
		free(o->goodtmp);
		free(o->restored_file);
		free(o->snap);
	}
	free(r->dbs);
	free(r);
}

/* ---- primary ---------------------------------------------------------------
 */

/* In the dump child: the driver's dump, then the manifest, all durable. */
static void
dbr_dump_fn(void *arg, struct dbr_result *res)
{
	static struct proto_manifest m;
	const struct dbr_one *o = arg;
	char why[HS_ERRMSG_MAX];
	size_t i;
	int dfd, fd, rc;

	o->d.drv->dump(&o->d, o->tmp, res);
	if (res->rc < 0)
		return;
	if ((dfd = open(o->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		dbr_fail(res, -errno, "%s: %s", o->tmp, strerror(errno));
		return;
	}
	memset(&m, 0, sizeof(m));
	if ((rc = dbr_manifest_make(dfd, &m, why, sizeof(why))) < 0) {
		dbr_fail(res, rc, "the dump: %s", why);
		goto out;
	}
	if (m.n == 0) {
		dbr_fail(res, -ENODATA, "the dump wrote no file");
		goto out;
	}
	for (i = 0; i < m.n; i++) {
		fd = openat(dfd, m.files[i].name, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			dbr_fail(res, -errno, "the dump: %s: %s",
			         m.files[i].name, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
	}
	m.generation = o->dump_gen;
	m.made = o->dump_made;
	snprintf(m.type, sizeof(m.type), "%s", dbr_type_name(o->d.db->type));
	snprintf(m.mark, sizeof(m.mark), "%s", o->mark);
	if ((rc = dbr_manifest_write(dfd, &m)) < 0)
		dbr_fail(res, rc, "the dump: cannot write its manifest: %s",
		         hs_strerror(rc));
	else
		res->rc = HS_OK;
out:
	close(dfd);
}

static void
dbr_dump_start(struct dbr_one *o, const char *mark)
{
	char why[HS_ERRMSG_MAX];
	int rc;

	if ((rc = dbr_fresh_dir(o->tmp)) < 0) {
		snprintf(why, sizeof(why), "%s: %s", o->tmp, hs_strerror(rc));
		dbr_set_error(o, why);
		return;
	}
	snprintf(o->mark, sizeof(o->mark), "%s", mark);
	o->dump_made = dbr_wall();
	o->dump_gen = o->has_snap ? o->snap->generation + 1 : 1;
	rc = dbr_job_start_fn(&o->job, &o->d, DBR_OP_DUMP, dbr_dump_fn, o);
	if (rc < 0) {
		snprintf(why, sizeof(why), "cannot start the dump: %s",
		         hs_strerror(rc));
		dbr_set_error(o, why);
	}
}

/* Files of the folder the new snapshot `m` no longer has. */
static void
dbr_remove_stale(int dfd, const struct proto_manifest *m)
{
	struct dirent *de;
	size_t i;
	DIR *d;
	int fd;

	if ((fd = dup(dfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    strcmp(de->d_name, DBR_MANIFEST) == 0)
			continue;
		for (i = 0; i < m->n; i++) {
			if (strcmp(m->files[i].name, de->d_name) == 0)
				break;
		}
		if (i == m->n)
			unlinkat(dfd, de->d_name, 0);
	}
	closedir(d);
}

/*
 * Does the folder already hold file f as the last snapshot made it?  Then
 * it stays as it is: a table that did not change is not rewritten, and
 * the replication has nothing to send for it.
 */
static int
dbr_held_same(const struct dbr_one *o, int dfd, const struct proto_mfile *f)
{
	struct stat st;
	size_t i;

	if (!o->has_snap)
		return 0;
	for (i = 0; i < o->snap->n; i++) {
		const struct proto_mfile *h = &o->snap->files[i];

		if (strcmp(h->name, f->name) == 0)
			return h->size == f->size &&
			       memcmp(h->sha256, f->sha256, 32) == 0 &&
			       fstatat(dfd, f->name, &st,
			               AT_SYMLINK_NOFOLLOW) == 0 &&
			       S_ISREG(st.st_mode) &&
			       (uint64_t)st.st_size == f->size;
	}
	return 0;
}

/* Move the finished dump into the replicated folder, the manifest last. */
static int
dbr_publish(struct dbr_one *o, char *why, size_t whylen)
{
	static struct proto_manifest m;
	int sfd = -1, dfd = -1, rc;
	size_t i;

	if ((rc = dbr_read_manifest(o->tmp, &m, why, whylen)) < 0)
		return rc;
	sfd = open(o->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || dfd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", o->dir, strerror(errno));
		goto out;
	}
	for (i = 0; i <= m.n; i++) {
		const char *name = i < m.n ? m.files[i].name : DBR_MANIFEST;

		if (i < m.n && dbr_held_same(o, dfd, &m.files[i]))
			continue;
		if (i == m.n && fsync(dfd) < 0) {
			rc = -errno;
			snprintf(why, whylen, "%s: %s", o->dir,
			         strerror(errno));
			goto out;
		}
		if (renameat(sfd, name, dfd, name) < 0) {
			rc = -errno;
			snprintf(why, whylen, "%s/%s: %s", o->dir, name,
			         strerror(errno));
			goto out;
		}
	}
	dbr_remove_stale(dfd, &m);
	if (fsync(dfd) < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", o->dir, strerror(errno));
		goto out;
	}
	memcpy(o->snap, &m, sizeof(m));
	o->has_snap = 1;
	o->bytes = dbr_manifest_bytes(&m);
	rc = HS_OK;
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	dbr_rmdir_files(o->tmp);
	return rc;
}

static int
dbr_hadr_healthy(struct dbr_one *o, char *why, size_t whylen)
{
	if (strcmp(o->hadr_role, "PRIMARY") != 0 &&
	    strcmp(o->hadr_role, "STANDBY") != 0)
		snprintf(why, whylen, "HADR role is %s, not PRIMARY or STANDBY",
		         o->hadr_role[0] ? o->hadr_role : "unknown");
	else if (strcmp(o->hadr_state, "PEER") != 0)
		snprintf(why, whylen, "HADR state is %s, not PEER",
		         o->hadr_state[0] ? o->hadr_state : "unknown");
	else if (strcmp(o->hadr_connect, "CONNECTED") != 0)
		snprintf(why, whylen,
		         "HADR connect status is %s, not CONNECTED",
		         o->hadr_connect[0] ? o->hadr_connect : "unknown");
	else
		return 1;
	return 0;
}

static void
dbr_hadr_done(struct dbr_one *o, const struct dbr_result *res)
{
	char why[HS_ERRMSG_MAX];

	if (res->rc < 0) {
		o->hadr_role[0] = o->hadr_state[0] = o->hadr_connect[0] = '\0';
		o->hadr_log_gap = -1;
		dbr_set_error(o, res->why);
		return;
	}
	snprintf(o->hadr_role, sizeof(o->hadr_role), "%s", res->hadr_role);
	snprintf(o->hadr_state, sizeof(o->hadr_state), "%s", res->hadr_state);
	snprintf(o->hadr_connect, sizeof(o->hadr_connect), "%s",
	         res->hadr_connect);
	o->hadr_log_gap = res->hadr_log_gap;
	if (dbr_hadr_healthy(o, why, sizeof(why)))
		dbr_clear_error(o);
	else
		dbr_set_error(o, why);
}

static void
dbr_primary_done_op(struct dbr_one *o, const struct dbr_result *res)
{
	char why[HS_ERRMSG_MAX];

	switch (o->job.op) {
	case DBR_OP_MARK:
		if (res->rc < 0) {
			dbr_set_error(o, res->why);
			return;
		}
		o->changed = !o->has_snap || strcmp(res->mark, o->snap->mark);
		if (o->changed)
			dbr_dump_start(o, res->mark);
		else
			dbr_clear_error(o);
		return;
	case DBR_OP_DUMP:
		if (res->rc < 0) {
			dbr_rmdir_files(o->tmp);
			dbr_set_error(o, res->why);
			return;
		}
		if (dbr_publish(o, why, sizeof(why)) < 0) {
			dbr_set_error(o, why);
			return;
		}
		o->dumps++;
		/* Changed again since the probe: the next probe will say. */
		o->changed = 0;
		dbr_clear_error(o);
		hs_log_info("dbrepl: database %s: snapshot %" PRIu64
		            ", %" PRId64 " bytes",
		            o->d.db->name, o->snap->generation, o->bytes);
		return;
	case DBR_OP_HADR:
		dbr_hadr_done(o, res);
		return;
	default:
		return;
	}
}

/* A probe ends here: unchanged, failed, or its dump ended. */
static void
dbr_primary_done(struct dbr_one *o, const struct dbr_result *res)
{
	dbr_primary_done_op(o, res);
	if (!dbr_running(o))
		o->done_for = o->probe_for;
}

static void
dbr_primary_tick(struct dbr_one *o, uint64_t now)
{
	enum dbr_op op;
	char why[HS_ERRMSG_MAX];
	int rc;

	if (now < o->next_ns && o->want <= o->probe_for)
		return;
	o->probe_for = o->want;
	o->next_ns = now + o->d.db->interval * NS;
	op = o->d.db->type == HS_DB_DB2 ? DBR_OP_HADR : DBR_OP_MARK;
	if ((rc = dbr_job_start(&o->job, &o->d, op, NULL, 0)) < 0) {
		snprintf(why, sizeof(why), "cannot start a child: %s",
		         hs_strerror(rc));
		dbr_set_error(o, why);
		/* This probe ended here: its ticket has its answer. */
		o->done_for = o->probe_for;
	}
}

/* ---- standby ---------------------------------------------------------------
 */

static int
dbr_copy_file(int sfd, int dfd, const char *name)
{
	char buf[64 * 1024];
	int in, out, rc = HS_OK;
	ssize_t n;

	if ((in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	out =
	    openat(dfd, name,
	           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while (rc == HS_OK) {
		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else if (n == 0)
			break;
		else
			rc = hs_write_all(out, buf, (size_t)n);
	}
	if (rc == HS_OK && fsync(out) < 0)
		rc = -errno;
	if (close(out) < 0 && rc == HS_OK)
		rc = -errno;
	close(in);
	return rc;
}

/*
 * Put the copy in goodtmp in place of good: one exchange, so that good
 * always names a whole snapshot.
 */
static int
dbr_swap_good(const struct dbr_one *o)
{
	struct stat st;

	if (stat(o->good, &st) < 0) {
		if (errno != ENOENT)
			return -errno;
		if (rename(o->goodtmp, o->good) < 0)
			return -errno;
		return HS_OK;
	}
	if (renameat2(AT_FDCWD, o->goodtmp, AT_FDCWD, o->good,
	              RENAME_EXCHANGE) < 0) {
		/* A file system without the exchange: one moment without. */
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		if (dbr_rmdir_files(o->good) < 0 ||
		    rename(o->goodtmp, o->good) < 0)
			return -errno;
		return HS_OK;
	}
	dbr_rmdir_files(o->goodtmp);
	return HS_OK;
}

/* In the check child: is the received snapshot whole? Keep a copy. */
static void
dbr_accept_fn(void *arg, struct dbr_result *res)
{
	static struct proto_manifest m;
	const struct dbr_one *o = arg;
	char why[HS_ERRMSG_MAX], top[4096];
	int sfd = -1, gfd = -1, rc;
	size_t i;

	if ((sfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		dbr_fail(res, -errno, "%s: %s", o->dir, strerror(errno));
		return;
	}
	if ((rc = dbr_manifest_read(sfd, &m, why, sizeof(why))) < 0 ||
	    (rc = dbr_manifest_check(sfd, &m, why, sizeof(why))) < 0) {
		dbr_fail(res, rc, "snapshot: %s", why);
		goto out;
	}
	if (strcmp(m.type, dbr_type_name(o->d.db->type)) != 0) {
		dbr_fail(res, HS_EPROTO,
		         "snapshot: of a %.16s database, this one is %s",
		         m.type, dbr_type_name(o->d.db->type));
		goto out;
	}
	if ((rc = dbr_fresh_dir(o->goodtmp)) < 0 ||
	    (gfd = open(o->goodtmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		dbr_fail(res, rc < 0 ? rc : -errno, "%s: %s", o->goodtmp,
		         rc < 0 ? hs_strerror(rc) : strerror(errno));
		goto out;
	}
	for (i = 0; i < m.n; i++) {
		if ((rc = dbr_copy_file(sfd, gfd, m.files[i].name)) < 0) {
			dbr_fail(res, rc, "%s/%s: %s", o->goodtmp,
			         m.files[i].name, hs_strerror(rc));
			goto out;
		}
	}
	/* The replication may have written in between: check the copy. */
	if ((rc = dbr_manifest_check(gfd, &m, why, sizeof(why))) < 0) {
		dbr_fail(res, rc, "snapshot: %s", why);
		goto out;
	}
	if ((rc = dbr_manifest_write(gfd, &m)) < 0) {
		dbr_fail(res, rc, "%s: cannot write the manifest: %s",
		         o->goodtmp, hs_strerror(rc));
		goto out;
	}
	if ((rc = dbr_swap_good(o)) < 0) {
		dbr_fail(res, rc, "%s: cannot swap in: %s", o->good,
		         hs_strerror(rc));
		goto out;
	}
	snprintf(top, sizeof(top), "%s/%s", o->d.conf->state_dir, DBR_DIR);
	dbr_fsync_path(top);
	res->rc = HS_OK;
out:
	if (gfd >= 0)
		close(gfd);
	close(sfd);
	if (res->rc < 0)
		dbr_rmdir_files(o->goodtmp);
}

static void
dbr_restore_start(struct dbr_one *o)
{
	char why[HS_ERRMSG_MAX];
	int rc;

	rc = dbr_job_start(&o->job, &o->d, DBR_OP_RESTORE, o->good, 0);
	if (rc < 0) {
		snprintf(why, sizeof(why), "cannot start the restore: %s",
		         hs_strerror(rc));
		dbr_set_error(o, why);
	}
}

static void
dbr_accept_done(struct dbr_one *o, const struct dbr_result *res, uint64_t now)
{
	char why[HS_ERRMSG_MAX];

	if (res->rc < 0) {
		if (o->bad_since == 0)
			o->bad_since = now;
		if (now - o->bad_since < DBR_SETTLE_NS) {
			o->waiting = 1;
			o->retry_ns = now + DBR_RECHECK_NS;
			return;
		}
		o->waiting = 0;
		o->retry_ns = now + DBR_RETRY_NS;
		snprintf(why, sizeof(why), "%.450s%s", res->why,
		         o->has_snap ? "; keeping the last good one" : "");
		dbr_set_error(o, why);
		return;
	}
	o->waiting = 0;
	o->bad_since = 0;
	o->retry_ns = 0;
	if (dbr_read_manifest(o->good, o->snap, why, sizeof(why)) < 0) {
		o->has_snap = 0;
		dbr_set_error(o, why);
		return;
	}
	o->has_snap = 1;
	o->bytes = dbr_manifest_bytes(o->snap);
	o->restore_retry_ns = 0;
	dbr_clear_error(o);
	hs_log_info("dbrepl: database %s: snapshot %" PRIu64 " is good",
	            o->d.db->name, o->snap->generation);
}

static void
dbr_restore_done(struct dbr_one *o, const struct dbr_result *res, uint64_t now)
{
	int rc;

	if (res->rc < 0) {
		o->restore_retry_ns = now + DBR_RETRY_NS;
		dbr_set_error(o, res->why);
		return;
	}
	o->restored_gen = o->snap->generation;
	o->restored_made = o->snap->made;
	o->restores++;
	o->last_restore = dbr_wall();
	if ((rc = dbr_restored_write(o)) < 0)
		hs_log_warnx("dbrepl: database %s: %s: %s", o->d.db->name,
		             o->restored_file, hs_strerror(rc));
	dbr_clear_error(o);
	hs_log_info("dbrepl: database %s: restored snapshot %" PRIu64,
	            o->d.db->name, o->restored_gen);
}

static int
dbr_key_eq(const struct dbr_key *a, const struct dbr_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec &&
	       a->ctim.tv_nsec == b->ctim.tv_nsec;
}

static int
dbr_restore_due(const struct dbr_one *o, uint64_t now)
{
	return o->d.db->restore == HS_RESTORE_CONTINUOUS && o->has_snap &&
	       o->restored_gen != o->snap->generation &&
	       now >= o->restore_retry_ns && o->d.drv->restore != NULL;
}

/*
 * Is the folder's manifest one to look at?  Cheap: one stat, and the
 * manifest itself (small) only when it changed.  1: start a check.
 */
static int
dbr_arrived(struct dbr_one *o, uint64_t now)
{
	char path[4096], why[HS_ERRMSG_MAX];
	static struct proto_manifest m;
	struct dbr_key k;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", o->dir, DBR_MANIFEST);
	if (stat(path, &st) < 0)
		return 0;
	memset(&k, 0, sizeof(k));
	k.dev = st.st_dev;
	k.ino = st.st_ino;
	k.size = st.st_size;
	k.mtim = st.st_mtim;
	k.ctim = st.st_ctim;
	if (o->has_seen && dbr_key_eq(&k, &o->seen) && !o->recheck &&
	    (o->retry_ns == 0 || now < o->retry_ns))
		return 0;
	if (!o->has_seen || !dbr_key_eq(&k, &o->seen))
		o->bad_since = 0;
	o->seen = k;
	o->has_seen = 1;
	o->recheck = 0;
	o->retry_ns = 0;
	/* The snapshot already held (a restart): nothing to copy. */
	if (o->has_snap &&
	    dbr_read_manifest(o->dir, &m, why, sizeof(why)) == HS_OK &&
	    m.generation == o->snap->generation && m.made == o->snap->made &&
	    m.n == o->snap->n &&
	    memcmp(m.files, o->snap->files, m.n * sizeof(m.files[0])) == 0) {
		o->waiting = 0;
		return 0;
	}
	return 1;
}

static void
dbr_accept_start(struct dbr_one *o)
{
	char why[HS_ERRMSG_MAX];
	int rc;

	rc = dbr_job_start_fn(&o->job, &o->d, DBR_OP_ACCEPT, dbr_accept_fn, o);
	if (rc < 0) {
		snprintf(why, sizeof(why), "cannot start a child: %s",
		         hs_strerror(rc));
		dbr_set_error(o, why);
		/* This probe ended here: its ticket has its answer. */
		o->done_for = o->probe_for;
	}
}

static void
dbr_standby_tick(struct dbr_one *o, uint64_t now)
{
	if (o->d.db->type == HS_DB_DB2) {
		dbr_primary_tick(o, now);
		return;
	}
	if (dbr_arrived(o, now)) {
		dbr_accept_start(o);
		return;
	}
	if (dbr_restore_due(o, now))
		dbr_restore_start(o);
}

static void
dbr_standby_done(struct dbr_one *o, const struct dbr_result *res, uint64_t now)
{
	switch (o->job.op) {
	case DBR_OP_ACCEPT:
		dbr_accept_done(o, res, now);
		/* Restore at once: the RPO counts from here. */
		if (dbr_restore_due(o, now))
			dbr_restore_start(o);
		return;
	case DBR_OP_RESTORE:
		dbr_restore_done(o, res, now);
		return;
	case DBR_OP_HADR:
		dbr_hadr_done(o, res);
		return;
	default:
		return;
	}
}

/* ---- the loop --------------------------------------------------------------
 */

/* Collect o's child if it ended; 1 when it still runs. */
static int
dbr_collect(struct dbr *r, struct dbr_one *o, uint64_t now)
{
	struct dbr_result res;

	if (!dbr_running(o))
		return 0;
	if (dbr_job_poll(&o->job) == 0)
		return 1;
	res = o->job.res;
	if (r->role == DBR_PRIMARY)
		dbr_primary_done(o, &res);
	else
		dbr_standby_done(o, &res, now);
	return dbr_running(o);
}

void
dbr_tick(struct dbr *r)
{
	uint64_t now = hs_now_mono_ns();
	size_t i;

	for (i = 0; i < r->n; i++) {
		struct dbr_one *o = &r->dbs[i];

		if (dbr_collect(r, o, now))
			continue;
		if (r->role == DBR_PRIMARY)
			dbr_primary_tick(o, now);
		else
			dbr_standby_tick(o, now);
	}
}

static int
dbr_ms_until(uint64_t when, uint64_t now)
{
	uint64_t ms;

	if (when <= now)
		return 0;
	ms = (when - now + 999999) / 1000000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int
dbr_next_ms(const struct dbr *r)
{
	uint64_t now = hs_now_mono_ns();
	int best = -1, ms;
	size_t i;

	for (i = 0; i < r->n; i++) {
		const struct dbr_one *o = &r->dbs[i];

		if (dbr_running(o))
			ms = DBR_JOB_POLL_MS;
		else if (r->role == DBR_PRIMARY && o->want > o->probe_for)
			ms = 0;
		else if (r->role == DBR_PRIMARY || o->d.db->type == HS_DB_DB2)
			ms = dbr_ms_until(o->next_ns, now);
		else
			ms = DBR_POLL_MS;
		if (r->role == DBR_STANDBY && !dbr_running(o)) {
			if (o->retry_ns != 0 &&
			    dbr_ms_until(o->retry_ns, now) < ms)
				ms = dbr_ms_until(o->retry_ns, now);
			if (dbr_restore_due(o, now))
				ms = 0;
		}
		if (ms < DBR_MIN_TICK_MS && o->d.db->interval == 0)
			ms = DBR_MIN_TICK_MS;
		if (best < 0 || ms < best)
			best = ms;
	}
	return best;
}

uint64_t
dbr_snapshot_now(struct dbr *r)
{
	size_t i;

	r->ticket++;
	for (i = 0; i < r->n; i++)
		r->dbs[i].want = r->ticket;
	return r->ticket;
}

int
dbr_snapshot_done(const struct dbr *r, uint64_t ticket, char *why,
                  size_t whylen)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->dbs[i].done_for < ticket)
			return 0;
	for (i = 0; i < r->n; i++) {
		if (r->dbs[i].error[0] != '\0') {
			snprintf(why, whylen, "database %s: %s",
			         r->dbs[i].d.db->name, r->dbs[i].error);
			return -EIO;
		}
	}
	return 1;
}

void
dbr_touched(struct dbr *r, const char *set_name)
{
	size_t i;

	if (!dbr_is_set_name(set_name))
		return;
	for (i = 0; i < r->n; i++) {
		if (strcmp(r->dbs[i].d.db->name,
		           set_name + strlen(DBR_SET_PREFIX)) == 0)
			r->dbs[i].recheck = 1;
	}
}

/* ---- status ----------------------------------------------------------------
 */

size_t
dbr_count(const struct dbr *r)
{
	return r->n;
}

/*
 * Worst first: a failure, then a snapshot falling behind a changed
 * database (also while a slow dump runs), then what runs now.
 */
static const char *
dbr_state(const struct dbr *r, const struct dbr_one *o, double now)
{
	uint64_t iv = o->d.db->interval;

	if (o->error[0] != '\0')
		return "error";
	if (r->role == DBR_PRIMARY && o->changed && o->has_snap && iv > 0 &&
	    now - o->snap->made > 3.0 * (double)iv)
		return "stale";
	if (dbr_running(o) && o->job.op == DBR_OP_DUMP)
		return "dumping";
	if (dbr_running(o) && o->job.op == DBR_OP_RESTORE)
		return "restoring";
	if (o->d.db->type == HS_DB_DB2)
		return o->hadr_state[0] != '\0' ? "ok" : "waiting";
	if (o->waiting || !o->has_snap)
		return "waiting";
	return "ok";
}

void
dbr_status(const struct dbr *r, size_t i, struct dbr_status *out)
{
	const struct dbr_one *o = &r->dbs[i];
	double now = dbr_wall();

	memset(out, 0, sizeof(*out));
	out->name = o->d.db->name;
	out->type = dbr_type_name(o->d.db->type);
	out->state = dbr_state(r, o, now);
	out->last_snapshot = out->age = -1;
	out->bytes = -1;
	if (o->has_snap) {
		out->last_snapshot = o->snap->made;
		out->age = now > o->snap->made ? now - o->snap->made : 0;
		out->bytes = o->bytes;
	}
	out->dumps = o->dumps;
	out->restores = o->restores;
	out->last_restore = o->last_restore;
	out->changed = r->role == DBR_PRIMARY ? o->changed : -1;
	snprintf(out->error, sizeof(out->error), "%s", o->error);
	snprintf(out->hadr_role, sizeof(out->hadr_role), "%s", o->hadr_role);
	snprintf(out->hadr_state, sizeof(out->hadr_state), "%s", o->hadr_state);
	snprintf(out->hadr_connect, sizeof(out->hadr_connect), "%s",
	         o->hadr_connect);
	out->hadr_log_gap = o->hadr_log_gap;
}

int
dbr_ready(const struct dbr *r, size_t i, char *why, size_t whylen)
{
	const struct dbr_one *o = &r->dbs[i];
	const char *name = o->d.db->name;

	if (o->d.db->type == HS_DB_DB2) {
		if (o->hadr_state[0] == '\0') {
			snprintf(why, whylen,
			         "database %s: HADR state not read yet%s%s",
			         name, o->error[0] ? ": " : "", o->error);
			return 0;
		}
		if (!dbr_hadr_healthy((struct dbr_one *)o, why, whylen)) {
			char reason[HS_ERRMSG_MAX];

			snprintf(reason, sizeof(reason), "%s", why);
			snprintf(why, whylen, "database %s: %s", name, reason);
			return 0;
		}
		return 1;
	}
	if (r->role == DBR_PRIMARY)
		return 1;
	if (!o->has_snap) {
		snprintf(why, whylen, "database %s: no good snapshot yet%s%s",
		         name, o->error[0] ? ": " : "", o->error);
		return 0;
	}
	return 1;
}

/* ---- promote ---------------------------------------------------------------
 */

/* Run the job just started to its end and take its result. */
static void
dbr_finish_now(struct dbr *r, struct dbr_one *o)
{
	struct dbr_result res;

	if (!dbr_running(o))
		return;
	dbr_job_wait(&o->job);
	res = o->job.res;
	if (r->role == DBR_PRIMARY)
		dbr_primary_done(o, &res);
	else
		dbr_standby_done(o, &res, hs_now_mono_ns());
}

static int
dbr_promote_one(struct dbr *r, struct dbr_one *o, int force, char *why,
                size_t whylen)
{
	const char *name = o->d.db->name;
	int rc;

	/* Whatever runs ends first; it may be the copy of a newer one. */
	while (dbr_running(o))
		dbr_finish_now(r, o);
	if (o->d.db->type == HS_DB_DB2) {
		rc =
		    dbr_job_start(&o->job, &o->d, DBR_OP_TAKEOVER, NULL, force);
		if (rc == HS_OK) {
			dbr_job_wait(&o->job);
			rc = o->job.res.rc;
		}
		if (rc < 0)
			snprintf(why, whylen, "database %s: takeover: %s", name,
			         o->job.res.why[0] ? o->job.res.why
			                           : hs_strerror(rc));
		return rc;
	}
	/* A snapshot that arrived whole since the last tick counts. */
	if (r->role == DBR_STANDBY && dbr_arrived(o, hs_now_mono_ns())) {
		dbr_accept_start(o);
		while (dbr_running(o))
			dbr_finish_now(r, o);
	}
	if (!o->has_snap) {
		snprintf(why, whylen,
		         "database %s: no good snapshot to restore%s%s", name,
		         o->error[0] ? ": " : "", o->error);
		return HS_ENOTFOUND;
	}
	if (o->restored_gen == o->snap->generation &&
	    o->restored_made == o->snap->made)
		return HS_OK;
	dbr_restore_start(o);
	if (!dbr_running(o)) {
		snprintf(why, whylen, "database %s: %s", name, o->error);
		return -EIO;
	}
	dbr_job_wait(&o->job);
	rc = o->job.res.rc;
	dbr_restore_done(o, &o->job.res, hs_now_mono_ns());
	if (rc < 0) {
		snprintf(why, whylen, "database %s: restore: %s", name,
		         o->job.res.why);
		return rc;
	}
	return HS_OK;
}

int
dbr_promote(struct dbr *r, int force, char *why, size_t whylen)
{
	size_t i;
	int rc;

	for (i = 0; i < r->n; i++) {
		if ((rc = dbr_promote_one(r, &r->dbs[i], force, why, whylen)) <
		    0)
			return rc;
	}
	return HS_OK;
}
