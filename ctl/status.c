/*
 * status.c - the status object (SPEC.md): the view a daemon fills, its
 * warnings, its JSON, and the copy saved for a stopped node's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "dbrepl.h"
#include "proto.h"
#include "ctl.h"

double
st_wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
st_fenced_record(char *buf, size_t cap, const char *peer, int peer_role,
                 uint64_t peer_epoch)
{
	snprintf(buf, cap, "%s %s %llu", peer, hs_role_name(peer_role),
	         (unsigned long long)peer_epoch);
}

void
st_fenced_text(char *buf, size_t cap, const char *rec, size_t len,
               uint64_t epoch)
{
	char name[PROTO_NODE_MAX + 1], role[16], copy[128];
	unsigned long long their;
	int ok = 0;

	if (rec != NULL && len < sizeof(copy)) {
		memcpy(copy, rec, len);
		copy[len] = '\0';
		ok = sscanf(copy, "%64s %15s %llu", name, role, &their) == 3;
	}
	/* A record that does not read as one still fences: said plainly. */
	if (!ok) {
		snprintf(buf, cap,
		         "needs rejoin: a node of a newer epoch fenced this "
		         "one (epoch %llu); run hamnsync rejoin",
		         (unsigned long long)epoch);
		return;
	}
	snprintf(buf, cap,
	         "needs rejoin: %s is %s at epoch %llu (this node: %llu); run "
	         "hamnsync rejoin",
	         name, role, their, (unsigned long long)epoch);
}

void
st_warn(struct st_view *v, const char *severity, const char *fmt, ...)
{
	va_list ap;

	if (v->n_warnings >= ST_WARNINGS_MAX)
		return;
	v->warn_sev[v->n_warnings] = severity;
	va_start(ap, fmt);
	vsnprintf(v->warn_text[v->n_warnings],
	          sizeof(v->warn_text[v->n_warnings]), fmt, ap);
	va_end(ap);
	v->n_warnings++;
}

void
st_warn_disk(struct st_view *v, const char *what, const char *path)
{
	struct statvfs vfs;

	if (statvfs(path, &vfs) < 0 || vfs.f_blocks == 0)
		return;
	if (vfs.f_bavail == 0)
		st_warn(v, "warning",
		        "%s %s on %s is full: no space left on device", what,
		        path, v->conf->node_name);
	else if ((vfs.f_blocks - vfs.f_bavail) * 100 > vfs.f_blocks * 90)
		st_warn(v, "warning", "%s %s on %s is over 90%% full", what,
		        path, v->conf->node_name);
}

void
st_warn_cert(struct st_view *v, const char *cert)
{
	int days;

	if (proto_cert_days_left(cert, &days) < 0)
		return;
	if (days < 0)
		st_warn(v, "critical", "certificate %s has expired", cert);
	else if (days < 30)
		st_warn(v, "warning", "certificate %s expires in %d days", cert,
		        days);
}

/*
 * A file as stat(2) saw it: new content or mode changes mtime or ctime,
 * a replacement changes the inode.
 */
struct id_stamp {
	int err; /* errno of stat, or 0 */
	dev_t dev;
	ino_t ino;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	off_t size;
	struct timespec mtim;
	struct timespec ctim;
};

/*
 * File times tick with the kernel's coarse clock: a file changed again
 * within the tick of a check may keep its times, so one changed this
 * recently (ctime: any change, set by the kernel) is checked again.
 */
#define ID_RECENT_S 2

/*
 * What st_warn_identity last saw: the config file and the identity files
 * it names, and its verdict.  A daemon is one status per process, so the
 * cache is too; it lives until the process ends.
 */
static struct {
	int valid;
	struct id_stamp conf;
	struct id_stamp files[3]; /* cert, key, ca */
	struct hs_conf *disk;     /* the config file as last read, or NULL */
	char why[HS_ERRMSG_MAX];  /* "" when the identity loads */
} id_cache;

static void
id_stamp_get(const char *path, struct id_stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (path == NULL)
		return;
	if (stat(path, &st) < 0) {
		s->err = errno;
		return;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->mode = st.st_mode;
	s->uid = st.st_uid;
	s->gid = st.st_gid;
	s->size = st.st_size;
	s->mtim = st.st_mtim;
	s->ctim = st.st_ctim;
}

static int
id_stamp_same(const struct id_stamp *a, const struct id_stamp *b)
{
	return a->err == b->err && a->dev == b->dev && a->ino == b->ino &&
	       a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
	       a->size == b->size && a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec &&
	       a->ctim.tv_nsec == b->ctim.tv_nsec;
}

static int
id_stamp_recent(const struct id_stamp *s, time_t now)
{
	return s->err == 0 && s->ctim.tv_sec + ID_RECENT_S >= now;
}

/* Read the config file again when it changed; NULL when it does not load. */
static const struct hs_conf *
id_disk_conf(const char *file)
{
	struct id_stamp now;
	char err[HS_ERRMSG_MAX];

	id_stamp_get(file, &now);
	if (id_cache.valid && id_stamp_same(&now, &id_cache.conf))
		return id_cache.disk;
	hs_conf_free(id_cache.disk);
	/* One that does not load is said by status itself, before it asks. */
	if (hs_conf_load(file, &id_cache.disk, err, sizeof(err)) < 0)
		id_cache.disk = NULL;
	id_cache.conf = now;
	id_cache.valid = 0;
	return id_cache.disk;
}

void
st_warn_identity(struct st_view *v)
{
	const struct hs_conf *d;
	struct id_stamp files[3];
	struct proto_tls *t;
	time_t now;
	int rc, same = 1;
	size_t i;

	if (v->conf->file == NULL)
		return;
	if ((d = id_disk_conf(v->conf->file)) == NULL) {
		id_cache.valid = !id_stamp_recent(&id_cache.conf, time(NULL));
		return;
	}
	id_stamp_get(d->cert, &files[0]);
	id_stamp_get(d->key, &files[1]);
	id_stamp_get(d->ca, &files[2]);
	for (i = 0; i < 3; i++)
		same = same && id_stamp_same(&files[i], &id_cache.files[i]);
	if (!id_cache.valid || !same) {
		memcpy(id_cache.files, files, sizeof(files));
		rc = proto_tls_from_conf(d, &t, id_cache.why,
		                         sizeof(id_cache.why));
		if (rc == HS_OK)
			proto_tls_free(t);
		/* As `status` judges: a file this user may not read is not. */
		if (rc == HS_OK || (rc == -EACCES && geteuid() != 0))
			id_cache.why[0] = '\0';
		id_cache.valid = 1;
	}
	now = time(NULL);
	if (id_stamp_recent(&id_cache.conf, now))
		id_cache.valid = 0;
	for (i = 0; i < 3; i++)
		if (id_stamp_recent(&files[i], now))
			id_cache.valid = 0;
	if (id_cache.why[0] != '\0')
		st_warn(v, "warning",
		        "%s; the running daemon keeps the identity it loaded; "
		        "a restart would fail",
		        id_cache.why);
}

static json_t *
num_or_null(double d)
{
	return d < 0 ? json_null() : json_real(d);
}

static json_t *
int_or_null(int64_t n)
{
	return n < 0 ? json_null() : json_integer(n);
}

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* RFC 3339 UTC with milliseconds, or null. */
/* RFC 3339 UTC with milliseconds (rounded), or null. */
static json_t *
time_or_null(double unix_s)
{
	char buf[40], frac[8];
	long long ms;
	time_t t;
	struct tm tm;

	if (unix_s < 0)
		return json_null();
	ms = llround(unix_s * 1000.0);
	t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(frac, sizeof(frac), ".%03dZ", (int)(ms % 1000));
	strncat(buf, frac, sizeof(buf) - strlen(buf) - 1);
	return json_string(buf);
}

/* A DB2's HADR state as db2pd said it. */
static json_t *
hadr_json(const struct dbr_status *s)
{
	json_t *h = json_object();

	json_object_set_new(h, "role", json_string(s->hadr_role));
	json_object_set_new(h, "state", json_string(s->hadr_state));
	json_object_set_new(h, "connect", json_string(s->hadr_connect));
	json_object_set_new(h, "log_gap_bytes", int_or_null(s->hadr_log_gap));
	return h;
}

/* One database of `databases` (SPEC.md's names first). */
static json_t *
db_json(const struct dbr_status *s)
{
	json_t *d = json_object();

	json_object_set_new(d, "name", json_string(s->name));
	json_object_set_new(d, "type", json_string(s->type));
	json_object_set_new(d, "state", json_string(s->state));
	json_object_set_new(d, "last_snapshot", time_or_null(s->last_snapshot));
	json_object_set_new(d, "snapshot_age_seconds",
	                    s->last_snapshot < 0 ? json_null()
	                                         : num_or_null(s->age));
	json_object_set_new(d, "bytes", int_or_null(s->bytes));
	json_object_set_new(d, "dumps", json_integer((json_int_t)s->dumps));
	json_object_set_new(d, "restores",
	                    json_integer((json_int_t)s->restores));
	json_object_set_new(d, "last_restore", time_or_null(s->last_restore));
	json_object_set_new(d, "error",
	                    s->error[0] ? json_string(s->error) : json_null());
	if (strcmp(s->type, "db2") == 0)
		json_object_set_new(d, "hadr", hadr_json(s));
	return d;
}

json_t *
st_json(const struct st_view *v)
{
	json_t *o = json_object(), *peer = json_object(), *lag = json_object();
	json_t *paths = json_array(), *dbs = json_array();
	json_t *ready = json_object(), *reasons = json_array();
	json_t *warns = json_array();
	size_t i;

	json_object_set_new(o, "node", json_string(v->conf->node_name));
	json_object_set_new(o, "role", json_string(v->role));
	json_object_set_new(o, "epoch", json_integer((json_int_t)v->epoch));
	json_object_set_new(o, "daemon",
	                    json_string(v->running ? "running" : "stopped"));
	json_object_set_new(peer, "name", str_or_null(v->peer_name));
	json_object_set_new(peer, "address", json_string(v->conf->peer));
	json_object_set_new(peer, "state", str_or_null(v->peer_state));
	json_object_set_new(peer, "role", str_or_null(v->peer_role));
	json_object_set_new(peer, "epoch", int_or_null(v->peer_epoch));
	json_object_set_new(peer, "last_heard_seconds",
	                    num_or_null(v->last_heard));
	json_object_set_new(o, "peer", peer);
	json_object_set_new(lag, "seconds", num_or_null(v->lag));
	json_object_set_new(lag, "files_pending",
	                    int_or_null(v->files_pending));
	json_object_set_new(lag, "bytes_pending",
	                    int_or_null(v->bytes_pending));
	json_object_set_new(lag, "last_applied",
	                    time_or_null(v->last_applied_unix));
	json_object_set_new(o, "lag", lag);
	for (i = 0; i < v->n_paths; i++) {
		json_t *p = json_object();

		json_object_set_new(p, "name", json_string(v->paths[i].name));
		json_object_set_new(p, "files", int_or_null(v->paths[i].files));
		json_object_set_new(p, "bytes", int_or_null(v->paths[i].bytes));
		json_object_set_new(p, "state", json_string(v->paths[i].state));
		json_object_set_new(p, "progress",
		                    json_real(v->paths[i].progress));
		json_array_append_new(paths, p);
	}
	json_object_set_new(o, "paths", paths);
	for (i = 0; i < v->n_dbs; i++)
		json_array_append_new(dbs, db_json(&v->dbs[i]));
	/* Not filled (a node that never saved its status): names only. */
	for (i = v->n_dbs > 0 ? v->conf->n_dbs : 0; i < v->conf->n_dbs; i++) {
		json_t *d = json_object();

		json_object_set_new(d, "name",
		                    json_string(v->conf->dbs[i].name));
		json_object_set_new(
		    d, "type",
		    json_string(dbr_type_name(v->conf->dbs[i].type)));
		json_object_set_new(d, "last_snapshot", json_null());
		json_object_set_new(d, "snapshot_age_seconds", json_null());
		json_array_append_new(dbs, d);
	}
	json_object_set_new(o, "databases", dbs);
	json_object_set_new(ready, "ready", json_boolean(v->ready));
	json_object_set_new(ready, "rpo_seconds", num_or_null(v->rpo));
	for (i = 0; i < v->n_reasons; i++)
		json_array_append_new(reasons, json_string(v->reasons[i]));
	json_object_set_new(ready, "reasons", reasons);
	json_object_set_new(o, "promote_ready", ready);
	for (i = 0; i < v->n_warnings; i++) {
		json_t *w = json_object();

		json_object_set_new(w, "severity", json_string(v->warn_sev[i]));
		json_object_set_new(w, "text", json_string(v->warn_text[i]));
		json_array_append_new(warns, w);
	}
	json_object_set_new(o, "warnings", warns);
	return o;
}

/* What a stopped node's status keeps of a running one's (cmd_status.c). */
static char *
saved_text(json_t *status)
{
	json_t *c = json_deep_copy(status), *peer, *d;
	size_t i;
	char *s;

	if (c == NULL)
		return NULL;
	json_object_del(json_object_get(c, "lag"), "seconds");
	if (json_is_object(peer = json_object_get(c, "peer"))) {
		json_object_del(peer, "state");
		json_object_del(peer, "last_heard_seconds");
	}
	json_object_del(c, "promote_ready");
	json_object_del(c, "warnings");
	/* An age grows by itself: `status` counts it from last_snapshot. */
	json_array_foreach(json_object_get(c, "databases"), i, d)
	    json_object_del(d, "snapshot_age_seconds");
	s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(c);
	return s;
}

static int
saved_path(const char *state_dir, const char *suffix, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s/%s%s", state_dir, ST_SAVED_NAME, suffix) >=
	    (int)len)
		return -ENAMETOOLONG;
	return HS_OK;
}

/*
 * The saved status was an index record until a commit's fdatasync every 5 s
 * (up to 240 ms on a slow disk) stood in the way of the next change,
 * and wrote to the disk of an idle node.  A crash may leave the file
 * older or empty: `status` of a stopped node then says less.
 */
static int
st_write_saved(const char *state_dir, const char *s)
{
	struct iovec iov = {(void *)s, strlen(s)};
	char path[4200], tmp[4300];
	int rc;

	if ((rc = saved_path(state_dir, "", path, sizeof(path))) < 0 ||
	    (rc = saved_path(state_dir, ".tmp", tmp, sizeof(tmp))) < 0)
		return rc;
	return hs_replace_file(path, tmp, 0644, &iov, 1);
}

int
st_save(const char *state_dir, json_t *status, struct st_saved *sv)
{
	char *s = saved_text(status);
	int rc;

	if (s == NULL)
		return -ENOMEM;
	if (sv->text != NULL && strcmp(sv->text, s) == 0) {
		free(s);
		return 0;
	}
	if ((rc = st_write_saved(state_dir, s)) < 0) {
		if (!sv->failing)
			hs_log_warnx("status not saved in %s/%s: %s (said "
			             "once until it works again)",
			             state_dir, ST_SAVED_NAME, hs_strerror(rc));
		sv->failing = 1;
		free(s);
		return rc;
	}
	sv->failing = 0;
	free(sv->text);
	sv->text = s;
	return 1;
}

void
st_saved_free(struct st_saved *sv)
{
	free(sv->text);
	sv->text = NULL;
}

json_t *
st_saved_load(const char *state_dir, int *absent)
{
	char path[4200];
	struct stat st;
	json_t *j = NULL;
	int fd;

	*absent = 0;
	if (saved_path(state_dir, "", path, sizeof(path)) < 0)
		return NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		*absent = errno == ENOENT;
		return NULL;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size <= ST_SAVED_MAX)
		j = json_loadfd(fd, 0, NULL);
	close(fd);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}
