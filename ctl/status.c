/*
 * status.c - the status object (SPEC.md) and the control socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "dbrepl.h"
#include "idx.h"
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
	/* Database replication is not built yet: known by name only. */
	for (i = 0; i < v->conf->n_dbs; i++) {
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
	json_t *c = json_deep_copy(status), *peer;
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

/* ---------------------------------------------------------- the socket */

static int
sock_path(const char *state_dir, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", state_dir,
	             CTL_SOCK_NAME) >= (int)sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	return HS_OK;
}

void
ctl_unlink(const char *state_dir)
{
	struct sockaddr_un sa;

	if (sock_path(state_dir, &sa) == 0)
		unlink(sa.sun_path);
}

int
ctl_listen(const char *state_dir, const char *group)
{
	struct sockaddr_un sa;
	struct group *gr = NULL;
	mode_t old;
	int fd, rc;

	if ((rc = sock_path(state_dir, &sa)) < 0)
		return rc;
	if (group != NULL && (gr = getgrnam(group)) == NULL)
		hs_log_warnx("ctl: status_group %s does not exist; status is "
		             "for root only",
		             group);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path); /* a stale one from a killed daemon */
	old = umask(0117);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0 ||
	    chown(sa.sun_path, 0, gr ? gr->gr_gid : 0) < 0 ||
	    chmod(sa.sun_path, 0660) < 0) {
		rc = -errno;
		hs_log_warn("ctl: %s", sa.sun_path);
		close(fd);
		return rc;
	}
	return fd;
}

/* May this uid/gid ask `verb`?  status: root or status_group. */
static int
ctl_allowed(int fd, const char *group, const char *verb)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct group *gr;
	gid_t groups[256];
	char path[64], line[512];
	FILE *f;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return 0;
	if (cr.uid == 0)
		return 1;
	if (strcmp(verb, "status") != 0 || group == NULL ||
	    (gr = getgrnam(group)) == NULL)
		return 0;
	if (cr.gid == gr->gr_gid)
		return 1;
	/* Supplementary groups of the peer process. */
	(void)groups;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)cr.pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p, *end;

		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (p = line + 7;; p = end) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if (g == gr->gr_gid) {
				fclose(f);
				return 1;
			}
		}
	}
	fclose(f);
	return 0;
}

static void
ctl_reply(int fd, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (s != NULL) {
		hs_write_all(fd, s, strlen(s));
		hs_write_all(fd, "\n", 1);
	}
	free(s);
}

static json_t *
ctl_error(const char *text)
{
	json_t *e = json_object();

	json_object_set_new(e, "error", json_string(text));
	return e;
}

/* One client of a ctl_serve call. */
struct ctl_client {
	int fd;
	size_t len;
	char req[CTL_REQ_MAX + 1];
};

static void
ctl_answer_one(struct ctl_client *cl, const char *group, ctl_answer_fn answer,
               void *arg)
{
	char verb[64];
	json_t *j;

	cl->req[cl->len] = '\0';
	if (memchr(cl->req, '\n', cl->len) == NULL ||
	    sscanf(cl->req, CTL_PROTO " %63[a-z]\n", verb) != 1)
		j = ctl_error("malformed request: expected \"" CTL_PROTO
		              " <verb>\"");
	else if (!ctl_allowed(cl->fd, group, verb))
		j = ctl_error("permission denied");
	else if ((j = answer(arg, verb)) == NULL)
		j = ctl_error("unknown verb");
	/* The reply is small and the socket buffer holds it. */
	ctl_reply(cl->fd, j);
	json_decref(j);
	close(cl->fd);
	cl->fd = -1;
}

/*
 * Accept every waiting client (at most CTL_CLIENTS_MAX), then read them
 * all together until each sent its line or CTL_READ_MS passed since the
 * call began: a silent or slow client is dropped then, and can delay the
 * others by that much at most, whatever it sends.
 */
void
ctl_serve(int lfd, const char *group, ctl_answer_fn answer, void *arg)
{
	struct ctl_client cl[CTL_CLIENTS_MAX];
	struct pollfd pfd[CTL_CLIENTS_MAX];
	uint64_t deadline = hs_now_mono_ns() + CTL_READ_MS * 1000000ull;
	size_t n = 0, i, open;
	int fd;

	while (n < CTL_CLIENTS_MAX &&
	       (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >=
	           0) {
		cl[n].fd = fd;
		cl[n].len = 0;
		n++;
	}
	for (open = n; open > 0;) {
		uint64_t now = hs_now_mono_ns();
		size_t k = 0;

		if (now >= deadline)
			break;
		for (i = 0; i < n; i++)
			if (cl[i].fd >= 0) {
				pfd[k].fd = cl[i].fd;
				pfd[k].events = POLLIN;
				pfd[k].revents = 0;
				k++;
			}
		if (poll(pfd, k, (int)((deadline - now) / 1000000) + 1) <= 0)
			continue;
		for (i = 0; i < n; i++) {
			ssize_t r;

			if (cl[i].fd < 0)
				continue;
			r = read(cl[i].fd, cl[i].req + cl[i].len,
			         CTL_REQ_MAX - cl[i].len);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r > 0)
				cl[i].len += (size_t)r;
			/* A line, a full buffer or EOF: answer now. */
			if (r <= 0 || cl[i].len == CTL_REQ_MAX ||
			    memchr(cl[i].req, '\n', cl[i].len) != NULL) {
				ctl_answer_one(&cl[i], group, answer, arg);
				open--;
			}
		}
	}
	/* Silent past the deadline: told so (the write does not block). */
	for (i = 0; i < n; i++)
		if (cl[i].fd >= 0)
			ctl_answer_one(&cl[i], group, answer, arg);
}

int
ctl_request(const char *state_dir, const char *verb, int timeout_ms,
            json_t **reply)
{
	struct sockaddr_un sa;
	char req[CTL_REQ_MAX], *buf = NULL;
	size_t len = 0, cap = 0;
	uint64_t deadline = hs_now_mono_ns() + (uint64_t)timeout_ms * 1000000;
	struct pollfd pfd;
	json_error_t jerr;
	int fd, rc, n;

	if ((rc = sock_path(state_dir, &sa)) < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	n = snprintf(req, sizeof(req), "%s %s\n", CTL_PROTO, verb);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		close(fd);
		return HS_ELIMIT;
	}
	if (write(fd, req, (size_t)n) != n) {
		rc = errno == EAGAIN ? HS_ETIMEOUT : -errno;
		close(fd);
		return rc;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		uint64_t now = hs_now_mono_ns();
		ssize_t r;

		if (now >= deadline) {
			rc = HS_ETIMEOUT;
			goto out;
		}
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			continue;
		if (len == cap) {
			char *nb;

			/* One byte past the limit tells us it was exceeded. */
			if (cap > CTL_REPLY_MAX) {
				rc = HS_ELIMIT;
				goto out;
			}
			cap = cap ? cap * 2 : 65536;
			if (cap > CTL_REPLY_MAX + 1)
				cap = CTL_REPLY_MAX + 1;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (buf == NULL) {
		rc = HS_EPROTO;
		goto out;
	}
	if (len > CTL_REPLY_MAX) {
		rc = HS_ELIMIT;
		goto out;
	}
	buf[len] = '\0';
	*reply = json_loads(buf, 0, &jerr);
	rc = *reply ? HS_OK : HS_EPROTO;
out:
	free(buf);
	close(fd);
	return rc;
}

static double
jnum(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(b ? json_object_get(o, a) : o, b ? b : a);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static void
metric(FILE *f, const char *name, const char *type, const char *help, double v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	if (isnan(v))
		fprintf(f, "%s NaN\n", name);
	else
		fprintf(f, "%s %.17g\n", name, v);
}

int
st_metrics_write(const char *path, json_t *st, const struct st_counters *c)
{
	struct iovec iov;
	char tmp[4200], *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if ((f = open_memstream(&text, &len)) == NULL)
		return -errno;
	metric(f, "hamnsync_lag_seconds", "gauge",
	       "Age of the oldest change not yet durable on the standby.",
	       jnum(st, "lag", "seconds"));
	metric(f, "hamnsync_pending_files", "gauge",
	       "Changed paths waiting to be replicated.",
	       jnum(st, "lag", "files_pending"));
	metric(f, "hamnsync_pending_bytes", "gauge",
	       "Bytes waiting to be replicated (NaN: not known).",
	       jnum(st, "lag", "bytes_pending"));
	metric(f, "hamnsync_peer_last_heard_seconds", "gauge",
	       "Seconds since the peer was last heard.",
	       jnum(st, "peer", "last_heard_seconds"));
	metric(f, "hamnsync_promote_ready", "gauge",
	       "1 when this standby may be promoted without loss.",
	       json_is_true(json_object_get(
	           json_object_get(st, "promote_ready"), "ready"))
	           ? 1
	           : 0);
	metric(f, "hamnsync_epoch", "gauge", "Cluster epoch of this node.",
	       jnum(st, "epoch", NULL));
	metric(f, "hamnsync_watches", "gauge", "inotify watches in use.",
	       (double)c->watches);
	metric(f, "hamnsync_sent_bytes_total", "counter",
	       "Bytes written to the peer, TLS included.",
	       (double)c->bytes_sent);
	metric(f, "hamnsync_received_bytes_total", "counter",
	       "Bytes read from the peer, TLS included.",
	       (double)c->bytes_received);
	metric(f, "hamnsync_files_applied_total", "counter",
	       "Entries created, changed or deleted on the standby.",
	       (double)c->files_applied);
	metric(f, "hamnsync_reconnects_total", "counter",
	       "Sessions to the peer opened after the first.",
	       (double)c->reconnects);
	metric(f, "hamnsync_express_runs_total", "counter",
	       "Express lane runs: small changes sent during long runs.",
	       (double)c->express_runs);
	fprintf(f,
	        "# HELP hamnsync_errors_total Errors by kind.\n"
	        "# TYPE hamnsync_errors_total counter\n"
	        "hamnsync_errors_total{kind=\"standby\"} %llu\n"
	        "hamnsync_errors_total{kind=\"changed_while_read\"} %llu\n"
	        "hamnsync_errors_total{kind=\"session\"} %llu\n",
	        (unsigned long long)c->errors_remote,
	        (unsigned long long)c->errors_changed,
	        (unsigned long long)c->errors_session);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	/*
	 * Not flushed to disk: a scrape after a crash may miss a file the
	 * daemon rewrites within 2 s of its start, and an fsync every 2 s
	 * in the daemon's loop delayed the next change behind the disk.
	 */
	iov.iov_base = text;
	iov.iov_len = len;
	rc = hs_replace_file(path, tmp, 0644, &iov, 1);
	free(text);
	return rc;
}
