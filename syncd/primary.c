/*
 * primary.c - the primary daemon: continuous replication.
 *
 * One loop: the watcher's inotify descriptor and a signalfd in poll, one
 * persistent session to the standby.  Every change found by the watcher
 * becomes a scoped reconciliation of the paths it touched: the standby
 * lists its copies of exactly those paths, the usual plan decides, and
 * SET_DONE comes back only once the standby has made them durable.  So a
 * lost event, a crash or a reconnect never leaves a wrong copy: after
 * each (re)connect every set is reconciled whole, which also finds what
 * changed while the daemon was down.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_int.h"
#include "syncd.h"

/* Reconnect backoff: from 200 ms, doubling, capped at 10 s. */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
/* The delete guard of scoped runs counts deletions per minute. */
#define GUARD_WINDOW_NS (60ull * 1000 * 1000 * 1000)
#define NS_PER_MS 1000000ull

struct prim {
	const char *conf_path;
	struct hs_conf *conf;
	struct watch *watch;
	struct sender *ss;
	struct send_opts o;
	uint64_t epoch;
	int sfd;
	int pidfd;
	int stopping;
	uint8_t *need_full; /* per set */
	uint64_t *files;    /* per set, at the last full run */
	uint64_t *deleted;  /* per set, this guard window */
	uint64_t window_ns;
	uint64_t backoff_ms;
	uint64_t next_try_ns;
	uint64_t last_io_ns;
	uint64_t next_rescan_ns;
	uint64_t last_err_log_ns;
	uint64_t syncs;
};

static void
prim_drop(struct prim *p, int rc, const char *what)
{
	size_t i;

	hs_log_warnx("primary: %s: %s; reconnecting", what, hs_strerror(rc));
	send_session_close(p->ss, 0);
	p->ss = NULL;
	/* What was taken from the watcher may not have landed: redo all. */
	for (i = 0; i < p->conf->n_sets; i++)
		p->need_full[i] = 1;
	p->next_try_ns = hs_now_mono_ns() + p->backoff_ms * NS_PER_MS;
}

static void
prim_connect(struct prim *p)
{
	char why[1024] = "";
	uint64_t now = hs_now_mono_ns();
	size_t i;
	int rc;

	rc = send_session_open(p->conf, &p->o, &p->ss, why, sizeof(why));
	if (rc < 0) {
		p->ss = NULL;
		/* One line per backoff step, not per attempt storm. */
		if (now - p->last_err_log_ns >= p->backoff_ms * NS_PER_MS) {
			hs_log_warnx("primary: standby %s: %s", p->conf->peer,
			             why[0] ? why : hs_strerror(rc));
			p->last_err_log_ns = now;
		}
		p->next_try_ns = now + p->backoff_ms * NS_PER_MS;
		p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS
		                    ? BACKOFF_MAX_MS
		                    : p->backoff_ms * 2;
		return;
	}
	hs_log_info("primary: connected to standby %s", p->conf->peer);
	p->backoff_ms = BACKOFF_MIN_MS;
	p->last_io_ns = now;
	for (i = 0; i < p->conf->n_sets; i++)
		p->need_full[i] = 1;
}

static void
report_log(const struct hs_pathset *set, const struct send_report *r,
           int scoped)
{
	uint64_t errors = r->remote_errors + r->changed_during;

	if (errors > 0 || r->held > 0 || r->sets_refused > 0)
		hs_log_warnx("primary: set %s: %llu errors, %llu deletions "
		             "held, %s",
		             set->name, (unsigned long long)errors,
		             (unsigned long long)r->held,
		             r->sets_refused ? "refused by the standby"
		                             : "continuing");
	else if (!scoped)
		hs_log_info("primary: set %s reconciled: %llu files, %llu "
		            "deltas, %llu metadata, %llu deleted",
		            set->name, (unsigned long long)r->files_sent,
		            (unsigned long long)r->delta_files,
		            (unsigned long long)r->meta_only,
		            (unsigned long long)r->deleted);
}

/* Reconcile set i: whole, or the scope the watcher collected. */
static int
prim_sync_set(struct prim *p, size_t i)
{
	const struct hs_pathset *set = &p->conf->sets[i];
	struct proto_scope *scope = NULL;
	struct send_report rep;
	size_t n = 0;
	uint64_t now = hs_now_mono_ns();
	int full, rc;

	if (now - p->window_ns >= GUARD_WINDOW_NS) {
		memset(p->deleted, 0, p->conf->n_sets * sizeof(*p->deleted));
		p->window_ns = now;
	}
	watch_take(p->watch, (uint16_t)i, &scope, &n, &full);
	full |= p->need_full[i];
	if (!full && n == 0)
		return HS_OK;
	memset(&rep, 0, sizeof(rep));
	p->o.guard_files = p->files[i];
	p->o.guard_recent = p->deleted[i];
	rc = send_session_set(p->ss, set, full ? NULL : scope, full ? 0 : n,
	                      &rep);
	proto_scope_free(scope, n);
	if (rc < 0)
		return rc;
	p->last_io_ns = hs_now_mono_ns();
	p->syncs++;
	if (full) {
		p->need_full[i] = 0;
		p->files[i] = rep.standby_files;
	} else
		p->deleted[i] += rep.deleted;
	report_log(set, &rep, !full);
	return HS_OK;
}

static int
prim_sync_all(struct prim *p)
{
	size_t i;
	int rc;

	for (i = 0; i < p->conf->n_sets && p->ss != NULL; i++) {
		if (!p->need_full[i] && !watch_pending(p->watch, (uint16_t)i))
			continue;
		if ((rc = prim_sync_set(p, i)) < 0) {
			prim_drop(p, rc, p->conf->sets[i].name);
			return rc;
		}
	}
	return HS_OK;
}

static void
prim_heartbeat(struct prim *p)
{
	uint64_t now = hs_now_mono_ns();
	int rc;

	if (p->ss == NULL ||
	    now - p->last_io_ns < p->conf->heartbeat * 1000 * NS_PER_MS)
		return;
	rc = send_session_ping(p->ss, (int)p->conf->peer_timeout * 1000);
	if (rc < 0) {
		prim_drop(p, rc, "heartbeat");
		return;
	}
	p->last_io_ns = hs_now_mono_ns();
}

static int
prim_reload(struct prim *p)
{
	char err[HS_ERRMSG_MAX];
	struct hs_conf *nc;
	struct watch *nw;
	size_t n;

	if (hs_conf_load(p->conf_path, &nc, err, sizeof(err)) < 0) {
		hs_log_errx("primary: reload refused, keeping the running "
		            "configuration: %s",
		            err);
		return HS_OK;
	}
	if (watch_new(nc, &nw) < 0) {
		hs_log_errx("primary: reload refused: cannot watch the new "
		            "sources");
		hs_conf_free(nc);
		return HS_OK;
	}
	watch_free(p->watch);
	send_session_close(p->ss, 1);
	p->ss = NULL;
	hs_conf_free(p->conf);
	p->conf = nc;
	p->watch = nw;
	n = nc->n_sets ? nc->n_sets : 1;
	free(p->need_full);
	free(p->files);
	free(p->deleted);
	p->need_full = calloc(n, 1);
	p->files = calloc(n, sizeof(*p->files));
	p->deleted = calloc(n, sizeof(*p->deleted));
	if (p->need_full == NULL || p->files == NULL || p->deleted == NULL)
		return -ENOMEM;
	p->next_try_ns = 0;
	hs_log_info("primary: configuration reloaded; every set is "
	            "reconciled again");
	return HS_OK;
}

static int
prim_signal(struct prim *p)
{
	struct signalfd_siginfo si;

	while (read(p->sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			p->stopping = 1;
			break;
		case SIGHUP:
			if (prim_reload(p) < 0)
				return -ENOMEM;
			break;
		case SIGUSR1:
			/* Reconcile everything now (what `sync` will ask). */
			for (size_t i = 0; i < p->conf->n_sets; i++)
				p->need_full[i] = 1;
			break;
		}
	}
	return HS_OK;
}

/* How long poll may sleep: until the next timer of any kind. */
static int
prim_timeout(struct prim *p)
{
	uint64_t now = hs_now_mono_ns(), due = watch_next_due(p->watch);
	uint64_t hb = p->last_io_ns + p->conf->heartbeat * 1000 * NS_PER_MS;

	if (p->ss == NULL && p->next_try_ns < due)
		due = p->next_try_ns;
	if (p->ss != NULL && hb < due)
		due = hb;
	if (watch_unwatched(p->watch) > 0 && p->next_rescan_ns < due)
		due = p->next_rescan_ns;
	if (due <= now)
		return 0;
	due = (due - now) / NS_PER_MS + 1;
	return due > 1000 ? 1000 : (int)due;
}

static int
prim_loop(struct prim *p)
{
	struct pollfd pfd[2];
	int rc;

	while (!p->stopping) {
		uint64_t now = hs_now_mono_ns();

		if (p->ss == NULL && now >= p->next_try_ns)
			prim_connect(p);
		if (p->ss != NULL)
			prim_sync_all(p);
		prim_heartbeat(p);
		if (watch_unwatched(p->watch) > 0 && now >= p->next_rescan_ns) {
			watch_rescan_unwatched(p->watch);
			p->next_rescan_ns =
			    now + p->conf->rescan_interval * 1000 * NS_PER_MS;
		}
		pfd[0].fd = watch_fd(p->watch);
		pfd[0].events = POLLIN;
		pfd[1].fd = p->sfd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, prim_timeout(p)) < 0 && errno != EINTR)
			return -errno;
		if ((pfd[1].revents & POLLIN) && (rc = prim_signal(p)) < 0)
			return rc;
		watch_drain(p->watch);
	}
	/* SIGTERM: what changed until now goes out, then a clean goodbye. */
	watch_drain(p->watch);
	if (p->ss != NULL)
		prim_sync_all(p);
	send_session_close(p->ss, 1);
	p->ss = NULL;
	hs_log_info("primary: stopped after %llu reconciliations",
	            (unsigned long long)p->syncs);
	return HS_OK;
}

int
prim_run(const char *conf_path, struct hs_conf *conf, uint64_t epoch,
         int foreground)
{
	struct prim p;
	sigset_t mask;
	size_t n = conf->n_sets ? conf->n_sets : 1;
	int rc;

	memset(&p, 0, sizeof(p));
	p.conf_path = conf_path;
	p.conf = conf;
	p.epoch = epoch;
	p.sfd = p.pidfd = -1;
	p.backoff_ms = BACKOFF_MIN_MS;
	p.o.epoch = epoch;
	p.o.quiet = 1;
	p.need_full = calloc(n, 1);
	p.files = calloc(n, sizeof(*p.files));
	p.deleted = calloc(n, sizeof(*p.deleted));
	if (p.need_full == NULL || p.files == NULL || p.deleted == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		hs_log_err("primary: state_dir %s", conf->state_dir);
		goto out;
	}
	if ((rc = dmn_lock_pidfile(conf->state_dir, &p.pidfd)) < 0)
		goto out;
	/* Watch before the first reconciliation, so nothing slips between. */
	if ((rc = watch_new(conf, &p.watch)) < 0) {
		hs_log_errx("primary: cannot watch the sources: %s",
		            hs_strerror(rc));
		goto out;
	}
	if (!foreground) {
		if ((rc = dmn_detach()) < 0)
			goto out;
		hs_log_init("hamnsync", 0, HS_LOG_INFO);
	}
	dmn_write_pid(p.pidfd);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((p.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		rc = -errno;
		goto out;
	}
	hs_log_info("primary: %s replicating %zu sets to %s, epoch %llu",
	            conf->node_name, conf->n_sets, conf->peer,
	            (unsigned long long)epoch);
	rc = prim_loop(&p);
out:
	watch_free(p.watch);
	send_session_close(p.ss, 0);
	if (p.sfd >= 0)
		close(p.sfd);
	if (p.pidfd >= 0) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/hamnsync.pid",
		         p.conf->state_dir);
		if (rc == HS_OK)
			unlink(path);
		close(p.pidfd);
	}
	free(p.need_full);
	free(p.files);
	free(p.deleted);
	hs_conf_free(p.conf);
	return rc;
}
