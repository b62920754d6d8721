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

#include "dbrepl.h"
#include "express_int.h"
#include "idx.h"
#include "ctl.h"
#include "prim_int.h"
#include "tree.h"

/* Paths the standby failed to apply go again: from 1 s, doubling to 60 s. */
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000
/* The delete guard of scoped runs counts deletions per minute. */
#define GUARD_WINDOW_NS (60ull * 1000 * 1000 * 1000)
/* The probe of a standby that refused without saying its epoch. */
#define PRIM_PROBE_MS 1000

/*
 * A set's paths that the standby failed to apply (a full disk, a file it
 * may not replace).  They keep the set out of in-sync and count in the
 * lag until a run that covers them applies them: each is retried alone
 * (a scoped run), or the whole set when an error named no path.
 */
struct prim_retry {
	struct proto_scope *v; /* the paths; a directory recursive */
	size_t n;
	size_t cap;
	int whole;           /* an error tied to no path: the whole set */
	uint64_t errors;     /* errors since the last try of them all */
	uint64_t since_ns;   /* the oldest change among them */
	uint64_t due_ns;     /* next try */
	uint64_t backoff_ms; /* wait after the next failed try */
	int seed;            /* a whole run failed only here: seeded after */
	int refused;         /* the standby refused the set: why says why */
	char first[PROTO_PATH_MAX + 1];
	char why[256];
	/*
	 * The index could not take a run's records (its state_dir is full):
	 * why, and when to try again.  A commit that works again is followed
	 * by a whole run, which records the set afresh.
	 */
	int idx_rc;
	uint64_t idx_due_ns;
	uint64_t idx_backoff_ms;
	/*
	 * Deletions held back (prim.held): the set is run whole again after
	 * a backoff, so the hold clears by itself once the files are back
	 * (an unmounted /install mounted again).
	 */
	uint64_t held_due_ns;
	uint64_t held_backoff_ms;
};

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
	uint8_t *need_diff; /* per set: compare the disk with the index */
	uint64_t *files;    /* per set, at the last full run */
	uint64_t *deleted;  /* per set, this guard window */
	uint64_t *pfiles;   /* per set: files and bytes here, last full run */
	uint64_t *pbytes;
	uint64_t window_ns;
	uint64_t backoff_ms;
	uint64_t next_try_ns;
	uint64_t last_io_ns;
	uint64_t next_rescan_ns;
	uint64_t last_err_log_ns;
	uint64_t syncs;
	uint64_t blind; /* of them, scoped runs without a listing */
	/* What status reports. */
	struct idx *x;
	int cfd;                  /* control socket */
	uint8_t *seeded;          /* per set: reconciled whole at least once */
	uint8_t *held;            /* per set: deletions held back */
	uint8_t *failed;          /* per set: errors in the last run (or in an
	                           * express run since) */
	struct prim_retry *retry; /* per set: what the standby failed */
	size_t n_retry;
	int busy_set;          /* set being reconciled whole, or -1 */
	int run_set;           /* set whose run is under way, or -1 */
	uint64_t inflight_ns;  /* oldest change in the run under way */
	uint64_t unsynced_ns;  /* since when the standby may miss changes */
	double last_applied;   /* wall clock of the last acknowledged run */
	uint64_t last_save_ns; /* status last looked at for saving */
	struct st_saved saved; /* ... and last saved */
	int saved_synced;      /* ... saying every set in-sync */
	struct st_counters cnt;
	uint64_t gen_req;  /* reconciliations of every set asked for (sync) */
	uint64_t gen_done; /* ... and completed */
	uint64_t last_metrics_ns;
	uint64_t sessions;
	struct express *xp;       /* small changes during long runs */
	struct send_prescan *pre; /* the start's comparison with the index */
	int prescanning;          /* ... still walking: the watcher is its */
	uint64_t run_start_ns;    /* the bulk run under way began */
	uint64_t heard_ns;  /* the standby last heard (a frame), or start */
	char refused[512];  /* why the standby refused us, "" once connected */
	int pinging;        /* the tick runs inside a heartbeat */
	uint64_t *replayed; /* journal entries replayed into the next run */
	size_t n_replayed;
	struct dbr *dbr; /* the databases' snapshots (dbrepl.h) */
	/*
	 * Epochs and fencing.  The listener child answers probes and other
	 * primaries; what it and our own sessions learn of the peer decides:
	 * a newer epoch fences this node (persisted: it sends nothing until
	 * `rejoin`), a primary at our epoch is split brain (not persisted:
	 * it clears when the peer changes), an older primary is refused.
	 */
	struct prim_lis *lis;
	struct proto_hello met; /* the peer's HELLO at the last open */
	struct prim_peer seen;  /* the peer as last heard of, any way */
	int fenced;             /* IDX_NODE_F_REJOIN: sends nothing */
	char fenced_rec[128];   /* who fenced it (ST_FENCED_KEY) */
	size_t fenced_len;
	int split;                           /* a primary at our epoch */
	char split_name[PROTO_NODE_MAX + 1]; /* ... that one */
	char stale_name[PROTO_NODE_MAX + 1]; /* an older primary refused */
	uint64_t stale_epoch;
	int switching; /* `role` found another role: stop, return HS_EROLE */
	/*
	 * switchover's drain (verb `drain`): a database snapshot is asked
	 * first; once it is made the cut is taken (the watcher is read one
	 * last time and never again), then what was seen until the cut is
	 * sent; once acknowledged nothing more is sent.
	 */
	enum { DRAIN_NONE, DRAIN_SNAPSHOT, DRAIN_CUT, DRAIN_DONE } drain;
	uint64_t drain_ticket;
	char drain_why[HS_ERRMSG_MAX]; /* the snapshot failed: why */
	pid_t switchover;              /* the switchover a standby asked for */
};

static void prim_tick(void *arg);
static void prim_save_status(struct prim *p, int force);

static void
prim_retry_clear(struct prim_retry *r)
{
	proto_scope_free(r->v, r->n);
	memset(r, 0, sizeof(*r));
}

static void
prim_free_sets(struct prim *p)
{
	size_t i;

	for (i = 0; i < p->n_retry; i++)
		prim_retry_clear(&p->retry[i]);
	free(p->retry);
	p->retry = NULL;
	p->n_retry = 0;
	free(p->need_full);
	free(p->need_diff);
	p->need_diff = NULL;
	free(p->files);
	free(p->deleted);
	free(p->seeded);
	free(p->held);
	free(p->failed);
	free(p->pfiles);
	free(p->pbytes);
	p->pfiles = p->pbytes = NULL;
	p->need_full = p->seeded = p->held = p->failed = NULL;
	p->files = p->deleted = NULL;
}

/* Per-set state for the current config; a set seeded before stays so. */
static int
prim_alloc_sets(struct prim *p)
{
	size_t n = p->conf->n_sets ? p->conf->n_sets : 1, i;

	prim_free_sets(p);
	p->need_full = calloc(n, 1);
	p->need_diff = calloc(n, 1);
	p->seeded = calloc(n, 1);
	p->held = calloc(n, 1);
	p->failed = calloc(n, 1);
	p->files = calloc(n, sizeof(*p->files));
	p->deleted = calloc(n, sizeof(*p->deleted));
	p->pfiles = calloc(n, sizeof(*p->pfiles));
	p->pbytes = calloc(n, sizeof(*p->pbytes));
	if (p->pfiles == NULL || p->pbytes == NULL)
		return -ENOMEM;
	if ((p->retry = calloc(n, sizeof(*p->retry))) == NULL)
		return -ENOMEM;
	p->n_retry = p->conf->n_sets;
	if (p->need_full == NULL || p->need_diff == NULL || p->seeded == NULL ||
	    p->held == NULL || p->failed == NULL || p->files == NULL ||
	    p->deleted == NULL)
		return -ENOMEM;
	for (i = 0; p->x != NULL && i < p->conf->n_sets; i++) {
		char key[128], *v;
		size_t len;

		snprintf(key, sizeof(key), "seeded/%s", p->conf->sets[i].name);
		if (idx_blob_get(p->x, key, &v, &len) == HS_OK) {
			p->seeded[i] = 1;
			free(v);
		}
	}
	return HS_OK;
}

static void
prim_drop(struct prim *p, int rc, const char *what)
{
	uint64_t now = hs_now_mono_ns();
	size_t i;

	p->heard_ns = send_session_heard(p->ss);
	if (rc == HS_ETIMEOUT || rc == -ETIMEDOUT)
		/* Frozen, hung or cut off: say who, and for how long. */
		hs_log_warnx("primary: standby %s (%s) silent for %.1f s "
		             "(peer_timeout %llu s) in %s: gone; reconnecting",
		             send_session_peer(p->ss)->name, p->conf->peer,
		             (double)(now - p->heard_ns) / 1e9,
		             (unsigned long long)p->conf->peer_timeout, what);
	else
		hs_log_warnx("primary: %s: %s; reconnecting", what,
		             hs_strerror(rc));
	p->cnt.errors_session++;
	send_session_close(p->ss, 0);
	p->ss = NULL;
	/* The next session compares again: the start's result was for one. */
	send_prescan_free(p->pre);
	p->pre = NULL;
	if (p->unsynced_ns == 0)
		p->unsynced_ns =
		    p->inflight_ns ? p->inflight_ns : hs_now_mono_ns();
	p->inflight_ns = 0;
	p->busy_set = -1;
	p->run_set = -1;
	/* What was taken from the watcher may not have landed: the next
	 * connect decides how to find it (prim_connect). */
	for (i = 0; i < p->conf->n_sets; i++)
		p->need_full[i] = 1;
	p->next_try_ns = hs_now_mono_ns() + p->backoff_ms * HS_NS_PER_MS;
}

/*
 * A peer of a newer epoch: this node is no longer the primary.  Stored
 * first (a restart starts fenced), then the session goes; from now on
 * nothing is sent and no connection is tried, until `rejoin`.
 */
static void
prim_fence(struct prim *p, const struct prim_peer *peer, const char *how)
{
	struct idx_node node;
	int rc;

	st_fenced_record(p->fenced_rec, sizeof(p->fenced_rec), peer->name,
	                 peer->role, peer->epoch);
	p->fenced_len = strlen(p->fenced_rec);
	p->fenced = 1;
	p->split = 0;
	if ((rc = idx_node_get(p->x, &node)) == HS_ENOTFOUND) {
		node.role = HS_ROLE_PRIMARY;
		node.epoch = p->epoch;
		node.flags = 0;
		rc = HS_OK;
	}
	if (rc == HS_OK) {
		node.flags |= IDX_NODE_F_REJOIN;
		rc = idx_node_put(p->x, &node);
	}
	if (rc == HS_OK)
		rc = idx_blob_put(p->x, ST_FENCED_KEY, p->fenced_rec,
		                  p->fenced_len);
	hs_log_errx("primary: %s (%s) is %s at epoch %llu, newer than this "
	            "node's %llu: fenced, nothing is sent until `hamnsync "
	            "rejoin`%s%s",
	            peer->name, how, hs_role_name(peer->role),
	            (unsigned long long)peer->epoch,
	            (unsigned long long)p->epoch,
	            rc < 0 ? "; the index could not keep it: " : "",
	            rc < 0 ? hs_strerror(rc) : "");
	if (p->ss != NULL) {
		send_session_close(p->ss, 0);
		p->ss = NULL;
		if (p->unsynced_ns == 0)
			p->unsynced_ns = hs_now_mono_ns();
	}
	prim_lis_tell(p->lis, p->epoch, 1);
}

static void prim_learn_stale(struct prim *p, const struct prim_peer *peer,
                             const char *how);

/*
 * What the peer said of itself (its HELLO: our session's, or one the
 * listener was sent), `how` we heard it.  Decides as the top of this
 * block says; a standby of our epoch or older changes nothing.
 */
static void
prim_learn(struct prim *p, const struct prim_peer *peer, const char *how)
{
	p->seen = *peer;
	if (p->fenced)
		return;
	if (peer->epoch > p->epoch) {
		prim_fence(p, peer, how);
		return;
	}
	if (peer->role == HS_ROLE_PRIMARY && peer->epoch < p->epoch) {
		prim_learn_stale(p, peer, how);
		return;
	}
	/* A fenced primary says itself that it sends nothing: no rival. */
	if (peer->role != HS_ROLE_PRIMARY ||
	    (peer->flags & PROTO_HELLO_F_FENCED)) {
		if (p->split && strcmp(peer->name, p->split_name) == 0) {
			hs_log_info("primary: %s is no longer a primary of "
			            "epoch %llu: split brain over",
			            peer->name, (unsigned long long)p->epoch);
			p->split = 0;
		}
		if (strcmp(peer->name, p->stale_name) == 0 &&
		    peer->role != HS_ROLE_PRIMARY)
			p->stale_name[0] = '\0';
		return;
	}
	if (!p->split || strcmp(peer->name, p->split_name) != 0)
		hs_log_errx("primary: split brain: %s (%s) also claims "
		            "primary at epoch %llu; nothing is replicated "
		            "until one of them changes",
		            peer->name, how, (unsigned long long)p->epoch);
	p->split = 1;
	snprintf(p->split_name, sizeof(p->split_name), "%s", peer->name);
}

/* The old primary came back: refused, and said once per change. */
static void
prim_learn_stale(struct prim *p, const struct prim_peer *peer, const char *how)
{
	if (strcmp(peer->name, p->stale_name) != 0 ||
	    peer->epoch != p->stale_epoch)
		hs_log_warnx("primary: %s (%s) runs as primary at epoch %llu, "
		             "older than this node's %llu: refused; it must "
		             "rejoin",
		             peer->name, how, (unsigned long long)peer->epoch,
		             (unsigned long long)p->epoch);
	snprintf(p->stale_name, sizeof(p->stale_name), "%s", peer->name);
	p->stale_epoch = peer->epoch;
}

static void
prim_learn_hello(struct prim *p, const struct proto_hello *h, const char *how)
{
	struct prim_peer peer;

	memset(&peer, 0, sizeof(peer));
	snprintf(peer.name, sizeof(peer.name), "%s", h->name);
	peer.role = h->role;
	peer.epoch = h->epoch;
	peer.flags = h->flags;
	prim_learn(p, &peer, how);
}

/*
 * The standby asked for a switchover (PROTO_HELLO_F_SWITCHOVER): this
 * node's own `hamnsync switchover` runs it, started once while none
 * runs.  Only our configured peer, a standby of our epoch, is heard.
 */
static void
prim_switchover_asked(struct prim *p, const struct prim_peer *peer)
{
	static const char *const args[] = {"switchover", NULL};
	char out[4200];
	pid_t pid;

	/* One runs already, or has drained this daemon: it goes on. */
	if (p->drain != DRAIN_NONE ||
	    (p->switchover > 0 && kill(p->switchover, 0) == 0)) {
		hs_log_info("primary: %s asked for a switchover: one is "
		            "under way",
		            peer->name);
		return;
	}
	if (peer->role != HS_ROLE_STANDBY || peer->epoch != p->epoch ||
	    p->fenced || p->split ||
	    (p->conf->peer_name != NULL &&
	     strcmp(peer->name, p->conf->peer_name) != 0)) {
		hs_log_warnx("primary: %s (%s, epoch %llu) asked for a "
		             "switchover: refused, this node is %s at epoch "
		             "%llu and expects its standby %s",
		             peer->name, hs_role_name(peer->role),
		             (unsigned long long)peer->epoch,
		             p->fenced ? "a fenced primary" : "the primary",
		             (unsigned long long)p->epoch,
		             p->conf->peer_name ? p->conf->peer_name : "");
		return;
	}
	snprintf(out, sizeof(out), "%s/promote", p->conf->state_dir);
	(void)mkdir(out, 0700);
	snprintf(out, sizeof(out), "%s/promote/switchover.out",
	         p->conf->state_dir);
	if ((pid = hs_spawn_self(p->conf_path, args, out)) < 0) {
		hs_log_errx("primary: %s asked for a switchover: cannot start "
		            "`hamnsync switchover`: %s",
		            peer->name, hs_strerror(pid));
		return;
	}
	p->switchover = pid;
	hs_log_info("primary: %s asked for a switchover: `hamnsync "
	            "switchover` started (pid %d), its output in %s",
	            peer->name, (int)pid, out);
}

/* Every HELLO the listener child reported since the last look. */
static void
prim_listened(struct prim *p)
{
	struct prim_peer peer;

	while (prim_lis_read(p->lis, &peer) == HS_OK) {
		prim_learn(p, &peer,
		           peer.flags & PROTO_HELLO_F_PROBE
		               ? "its probe"
		               : "its connection to this node");
		if (peer.flags & PROTO_HELLO_F_SWITCHOVER)
			prim_switchover_asked(p, &peer);
	}
}

/*
 * A refusal that came without the peer's HELLO (a standby that only
 * says why): ask who it is, so that a newer epoch fences this node.
 */
static void
prim_probe_refuser(struct prim *p)
{
	struct proto_hello mine, peer;
	char why[512];

	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", p->conf->node_name);
	mine.role = HS_ROLE_PRIMARY;
	mine.epoch = p->epoch;
	/* In the loop, which serves nothing meanwhile: a standby that just
	 * refused us answers at once, or not at all. */
	if (proto_probe(p->o.tls, p->conf->peer, &mine, PRIM_PROBE_MS, &peer,
	                why, sizeof(why)) == HS_OK)
		prim_learn_hello(p, &peer, "a probe");
}

static void
prim_connect(struct prim *p)
{
	char why[1024] = "";
	uint64_t now = hs_now_mono_ns();
	size_t i;
	int rc, resume;

	memset(&p->met, 0, sizeof(p->met));
	rc = send_session_open(p->conf, &p->o, &p->ss, why, sizeof(why));
	if (p->met.role != HS_ROLE_NONE)
		prim_learn_hello(p, &p->met, "its answer to this node");
	else if (rc == HS_EREFUSED)
		prim_probe_refuser(p);
	if (rc >= 0 && p->fenced) {
		/* Its HELLO fenced this node (a standby of a newer epoch). */
		send_session_close(p->ss, 0);
		p->ss = NULL;
		return;
	}
	if (rc < 0 && p->fenced)
		return;
	if (rc < 0) {
		p->ss = NULL;
		/* A standby that answered and said no: status says why. */
		p->refused[0] = '\0';
		if (p->met.role != HS_ROLE_PRIMARY &&
		    (rc == HS_EREFUSED || rc == HS_EBUSY || rc == HS_EVERSION))
			snprintf(p->refused, sizeof(p->refused), "%s",
			         why[0] ? why : hs_strerror(rc));
		/*
		 * One line per backoff step, not per attempt storm; a peer
		 * that answered as a primary was judged once (prim_learn).
		 */
		if (p->met.role != HS_ROLE_PRIMARY &&
		    now - p->last_err_log_ns >= p->backoff_ms * HS_NS_PER_MS) {
			hs_log_warnx("primary: standby %s: %s", p->conf->peer,
			             why[0] ? why : hs_strerror(rc));
			p->last_err_log_ns = now;
		}
		p->next_try_ns = now + p->backoff_ms * HS_NS_PER_MS;
		p->backoff_ms = hs_backoff_next(
		    p->backoff_ms, PRIM_BACKOFF_MIN_MS, PRIM_BACKOFF_MAX_MS);
		return;
	}
	hs_log_info("primary: connected to standby %s", p->conf->peer);
	p->refused[0] = '\0';
	if (p->sessions++ > 0)
		p->cnt.reconnects++;
	p->backoff_ms = PRIM_BACKOFF_MIN_MS;
	p->last_io_ns = now;
	/*
	 * The standby holds what our index says when it applied exactly our
	 * last acknowledged run: then only what differs from the index on
	 * disk goes out (stat, no listing of its tree).  Else every set is
	 * reconciled whole.
	 */
	resume = send_session_resumable(p->ss, why, sizeof(why));
	if (!resume) {
		hs_log_info("primary: reconciling every set whole: %s", why);
		send_prescan_free(p->pre);
		p->pre = NULL;
	}
	for (i = 0; i < p->conf->n_sets; i++) {
		p->need_diff[i] = resume && p->seeded[i];
		p->need_full[i] = !p->need_diff[i];
	}
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

struct replay {
	struct prim *p;
	const struct hs_pathset *set;
	struct proto_scope **v;
	size_t *n;
	int whole;
};

/* Entry seq joins the next run: its own entry will name the paths. */
static void
replayed_add(struct prim *p, uint64_t seq)
{
	uint64_t *nv;

	if ((nv = reallocarray(p->replayed, p->n_replayed + 1, sizeof(*nv))) ==
	    NULL)
		return; /* kept: replayed again, harmless */
	p->replayed = nv;
	p->replayed[p->n_replayed++] = seq;
}

/*
 * The run journalled its own entry with every replayed path in it: the
 * entries it replayed go, or each run cut short (a session that fails
 * again and again) would add a copy of them.
 */
static void
replayed_drop(struct prim *p)
{
	size_t i;

	if (p->ss != NULL && send_session_journalled(p->ss) != 0)
		for (i = 0; i < p->n_replayed; i++)
			(void)idx_journal_del(p->x, p->replayed[i]);
	p->n_replayed = 0;
}

/* One unacknowledged journal entry: its paths, checked, join the scope. */
static int
replay_entry(void *arg, uint64_t seq, const void *entry, size_t len)
{
	struct replay *rp = arg;
	struct proto_jentry e;
	struct proto_scope *v = NULL, *nv;
	size_t n = 0, i, k;

	if (proto_jentry_decode(entry, len, &e) < 0) {
		hs_log_warnx("primary: index: journal entry %llu is damaged; "
		             "ignored",
		             (unsigned long long)seq);
		return 0;
	}
	if (strcmp(e.set, rp->set->name) != 0)
		return 0;
	if (proto_jentry_scope(&e, &v, &n) < 0) {
		hs_log_warnx("primary: index: journal entry %llu is damaged; "
		             "ignored",
		             (unsigned long long)seq);
		return 0;
	}
	replayed_add(rp->p, seq);
	/* No paths: a run of the whole set (or of too many to list). */
	if (n == 0) {
		free(v);
		rp->whole = 1;
		return 0;
	}
	for (i = 0, k = 0; i < n; i++) {
		if (v[i].src >= rp->set->sources.n ||
		    fs_relpath_check(v[i].path) < 0) {
			hs_log_warnx(
			    "primary: index: journal entry %llu names "
			    "\"%.200s\" (source %u), outside the sources "
			    "of set %s; ignored",
			    (unsigned long long)seq, v[i].path,
			    (unsigned)v[i].src, rp->set->name);
			free(v[i].path);
			continue;
		}
		v[k++] = v[i];
	}
	if (*rp->n + k > PROTO_SCOPE_MAX ||
	    (nv = reallocarray(*rp->v, *rp->n + k + 1, sizeof(*nv))) == NULL) {
		proto_scope_free(v, k);
		rp->whole = 1;
		return 0;
	}
	memcpy(nv + *rp->n, v, k * sizeof(*v));
	free(v);
	*rp->v = nv;
	*rp->n += k;
	return 0;
}

/* Runs journalled but never acknowledged: a crash came between. */
static int
prim_journal_replay(struct prim *p, const struct hs_pathset *set,
                    struct proto_scope **v, size_t *n, int *full)
{
	struct replay rp = {p, set, v, n, 0};
	int rc;

	/*
	 * The express runs kept from covering are replayed now, with the
	 * rest: the run they join lists a tree that holds them.
	 */
	express_kept_clear(p->xp);
	p->o.n_journal_keep = 0;
	/* From the first: another set's run may be acknowledged above. */
	if ((rc = idx_journal_walk(p->x, 0, replay_entry, &rp)) < 0)
		return rc;
	if (rp.whole) {
		hs_log_info("primary: set %s: a run of the whole set was never "
		            "acknowledged (cut short by a crash?): reconciling "
		            "it whole",
		            set->name);
		*full = 1;
	}
	return HS_OK;
}

/*
 * After a restart or reconnect: add to the watcher's scope for set i what
 * differs on disk from the index, and what unacknowledged journal entries
 * name.  Too much of it, or an index that cannot be read: whole.
 */
static int
prim_diff(struct prim *p, size_t i, struct proto_scope **scope, size_t *n,
          int *full)
{
	const struct hs_pathset *set = &p->conf->sets[i];
	struct proto_scope *d = NULL, *v;
	uint64_t records, t0 = hs_now_mono_ns();
	size_t dn = 0, k;
	int rc;

	/* Compared at start while the watches were added, or now. */
	rc = send_prescan_take(p->pre, i, &d, &dn, &records);
	if (rc == HS_ENOTFOUND)
		rc = send_session_diff(p->ss, set, &d, &dn, &records);
	if (rc == HS_OK)
		rc = prim_journal_replay(p, set, &d, &dn, full);
	if (rc < 0) {
		hs_log_warnx("primary: set %s: comparing with the index: %s; "
		             "reconciling it whole",
		             set->name, hs_strerror(rc));
		proto_scope_free(d, dn);
		*full = 1;
		return HS_OK;
	}
	proto_scope_normalize(d, &dn);
	hs_log_info(
	    "primary: set %s: %zu paths differ from the index "
	    "(%llu ms)",
	    set->name, dn,
	    (unsigned long long)((hs_now_mono_ns() - t0) / HS_NS_PER_MS));
	/* The delete guard's measure when no whole run has set it yet. */
	if (p->files[i] == 0)
		p->files[i] = records;
	if (dn == 0 || *full) {
		proto_scope_free(d, dn);
		return HS_OK;
	}
	if (*n + dn > PROTO_SCOPE_MAX) {
		proto_scope_free(d, dn);
		*full = 1;
		return HS_OK;
	}
	if ((v = reallocarray(*scope, *n + dn, sizeof(*v))) == NULL) {
		proto_scope_free(d, dn);
		return -ENOMEM;
	}
	for (k = 0; k < dn; k++)
		v[*n + k] = d[k];
	free(d);
	*scope = v;
	*n += dn;
	proto_scope_normalize(*scope, n);
	return HS_OK;
}

/* The standby's name when it said it, else its address. */
static const char *
prim_peer_name(const struct prim *p)
{
	return p->ss != NULL ? send_session_peer(p->ss)->name : p->conf->peer;
}

/* Has set i paths the standby failed to apply? */
static int
prim_retry_pending(const struct prim *p, size_t i)
{
	return i < p->n_retry && (p->retry[i].n > 0 || p->retry[i].whole);
}

/* ... and is it time to try them again? */
static int
prim_retry_due(const struct prim *p, size_t i, uint64_t now)
{
	return prim_retry_pending(p, i) && now >= p->retry[i].due_ns;
}

/*
 * When their time has come, set i's failed paths join this run's scope
 * (copies: they are kept until the outcome is known), or the run goes
 * whole when an error named no path.  *covered: the run tries them all.
 */
static int
prim_retry_join(struct prim *p, size_t i, struct proto_scope **scope, size_t *n,
                int *full, int *covered)
{
	struct prim_retry *r = &p->retry[i];
	size_t cap = *n, k;
	int rc;

	*covered = *full;
	if (*full || !prim_retry_due(p, i, hs_now_mono_ns()))
		return HS_OK;
	*covered = 1;
	if (r->whole || *n + r->n > PROTO_SCOPE_MAX) {
		*full = 1;
		return HS_OK;
	}
	for (k = 0; k < r->n; k++)
		if ((rc = proto_scope_push(scope, n, &cap, r->v[k].src,
		                           r->v[k].path, r->v[k].recursive)) <
		    0)
			return rc;
	proto_scope_normalize(*scope, n);
	return HS_OK;
}

static void prim_idx_failed(struct prim *p, size_t i, int rc);

static void
prim_mark_seeded(struct prim *p, size_t i)
{
	char key[128];
	int rc;

	if (p->seeded[i] || p->x == NULL)
		return;
	snprintf(key, sizeof(key), "seeded/%s", p->conf->sets[i].name);
	if ((rc = idx_blob_put(p->x, key, "1", 1)) < 0)
		prim_idx_failed(p, i, rc);
	p->seeded[i] = 1;
}

/* Is it time to see whether set i's records can be written again? */
static int
prim_idx_due(const struct prim *p, size_t i, uint64_t now)
{
	return i < p->n_retry && p->retry[i].idx_rc < 0 &&
	       now >= p->retry[i].idx_due_ns;
}

/*
 * A run's records did not reach the index (rc), or a try to write it
 * again failed: say so once per failure, and try again after a backoff.
 */
static void
prim_idx_failed(struct prim *p, size_t i, int rc)
{
	struct prim_retry *r = &p->retry[i];

	/* Runs that fail meanwhile change nothing: the next try stands. */
	if (r->idx_rc < 0 && r->idx_due_ns != UINT64_MAX &&
	    r->idx_due_ns > hs_now_mono_ns())
		return;
	if (r->idx_rc == 0)
		hs_log_warnx("primary: set %s: the index in %s cannot be "
		             "written: %s; trying again until it can",
		             p->conf->sets[i].name, p->conf->state_dir,
		             hs_strerror(rc));
	r->idx_rc = rc;
	r->idx_backoff_ms =
	    hs_backoff_next(r->idx_backoff_ms, RETRY_MIN_MS, RETRY_MAX_MS);
	r->idx_due_ns = hs_now_mono_ns() + r->idx_backoff_ms * HS_NS_PER_MS;
}

/*
 * Its time came: a small write shows whether the index takes commits
 * again; if it does, a whole run records the set afresh (the records the
 * failed runs lost), and its outcome clears the failure.
 */
static void
prim_idx_try(struct prim *p, size_t i)
{
	char key[128];
	int rc;

	snprintf(key, sizeof(key), "retry/%s", p->conf->sets[i].name);
	if ((rc = idx_blob_put(p->x, key, "1", 1)) < 0) {
		prim_idx_failed(p, i, rc);
		return;
	}
	p->need_full[i] = 1;
	p->retry[i].idx_due_ns = UINT64_MAX; /* the run decides */
}

/* The run's outcome for the index: failed, or written (or not needed). */
static void
prim_idx_done(struct prim *p, size_t i, int full, const struct send_report *rep)
{
	struct prim_retry *r = &p->retry[i];

	if (rep->idx_rc < 0) {
		prim_idx_failed(p, i, rep->idx_rc);
		return;
	}
	/* Only the whole run that a working probe asked for records all. */
	if (r->idx_rc == 0 || !full || r->idx_due_ns != UINT64_MAX)
		return;
	hs_log_info("primary: set %s: the index in %s is written again",
	            p->conf->sets[i].name, p->conf->state_dir);
	r->idx_rc = 0;
	r->idx_backoff_ms = 0;
	r->idx_due_ns = 0;
}

/* Add the paths of f to r (a failure to copy one: the whole set). */
static void
prim_retry_add(struct prim_retry *r, const struct send_failed *f)
{
	size_t k;

	for (k = 0; k < f->n; k++)
		if (proto_scope_push(&r->v, &r->n, &r->cap, f->v[k].src,
		                     f->v[k].path, f->v[k].recursive) < 0)
			r->whole = 1;
	proto_scope_normalize(r->v, &r->n);
	if (f->loose > 0)
		r->whole = 1;
	if (f->refused) {
		r->refused = 1;
		snprintf(r->why, sizeof(r->why), "%s", f->why);
		return;
	}
	if (f->first[0] != '\0') {
		snprintf(r->first, sizeof(r->first), "%s", f->first);
		snprintf(r->why, sizeof(r->why), "%s", f->why);
	}
}

/*
 * The outcome of a run of set i for what the standby failed to apply:
 * the failed paths it covered and applied are done; what failed in it
 * (again) is tried after a backoff, with no signal needed.
 */
static void
prim_retry_done(struct prim *p, size_t i, int covered, int full,
                const struct send_report *rep)
{
	struct prim_retry *r = &p->retry[i];
	const char *name = p->conf->sets[i].name;
	struct send_failed f;
	uint64_t now = hs_now_mono_ns(), since, wait_s;
	int was = prim_retry_pending(p, i);

	send_session_failed(p->ss, &f);
	if (covered) {
		proto_scope_free(r->v, r->n);
		r->v = NULL;
		r->n = r->cap = 0;
		r->whole = 0;
		r->errors = 0;
		r->refused = 0;
	}
	if (f.errors == 0) {
		proto_scope_free(f.v, f.n);
		if (was && !prim_retry_pending(p, i)) {
			hs_log_info("primary: set %s: what standby %s failed "
			            "to apply is applied now",
			            name, prim_peer_name(p));
			if (r->seed)
				prim_mark_seeded(p, i);
			r->since_ns = r->due_ns = r->backoff_ms = 0;
			r->seed = 0;
			r->first[0] = r->why[0] = '\0';
		}
		return;
	}
	since = p->inflight_ns   ? p->inflight_ns
	        : p->unsynced_ns ? p->unsynced_ns
	                         : p->run_start_ns;
	if (r->since_ns == 0 || since < r->since_ns)
		r->since_ns = since;
	prim_retry_add(r, &f);
	r->errors += f.errors;
	if (full && !p->seeded[i] && rep->changed_during == 0 &&
	    rep->sets_refused == 0)
		r->seed = 1;
	if (covered || !was) {
		r->backoff_ms =
		    hs_backoff_next(r->backoff_ms, RETRY_MIN_MS, RETRY_MAX_MS);
		r->due_ns = now + r->backoff_ms * HS_NS_PER_MS;
	}
	wait_s = r->due_ns > now ? (r->due_ns - now) / 1000000000ull : 0;
	if (r->refused)
		hs_log_warnx("primary: set %s: refused by standby %s (%s); "
		             "trying it again in %llu s",
		             name, prim_peer_name(p), r->why,
		             (unsigned long long)wait_s);
	else
		hs_log_warnx("primary: set %s: %llu paths failed to apply on "
		             "standby %s (first: %s: %s); trying them again in "
		             "%llu s",
		             name, (unsigned long long)r->errors,
		             prim_peer_name(p), r->first[0] ? r->first : "?",
		             r->why[0] ? r->why : "?",
		             (unsigned long long)wait_s);
	proto_scope_free(f.v, f.n);
}

/* Is it time to run set i whole again, to see if its hold still stands? */
static int
prim_held_due(const struct prim *p, size_t i, uint64_t now)
{
	return p->held[i] && i < p->n_retry && now >= p->retry[i].held_due_ns;
}

/*
 * A held deletion stays reported until a whole run holds none.  A run
 * that holds one (again) brings a whole run after a backoff, with no
 * signal needed; a scoped run while a whole one is due changes nothing.
 */
static void
prim_held_done(struct prim *p, size_t i, int full,
               const struct send_report *rep)
{
	struct prim_retry *r = &p->retry[i];

	if (rep->held == 0) {
		if (full) {
			p->held[i] = 0;
			r->held_due_ns = r->held_backoff_ms = 0;
		}
		return;
	}
	if (p->held[i] && !full)
		return;
	p->held[i] = 1;
	r->held_backoff_ms =
	    hs_backoff_next(r->held_backoff_ms, RETRY_MIN_MS, RETRY_MAX_MS);
	r->held_due_ns = hs_now_mono_ns() + r->held_backoff_ms * HS_NS_PER_MS;
}

/*
 * An express run of set i is over (express_on_done).  Its paths stay in
 * the watcher, and the bulk lane's next run of the set looks at them
 * again and records its own outcome; until then the set is not in sync
 * on this run's word: a deletion it held back holds the set (as a scoped
 * run's would), a path it could not apply keeps the set in error.  Not
 * retried from here: the bulk lane's run is the retry (and an express
 * run that came before the bulk lane made a new parent fails its
 * children for no lasting reason).
 */
static void
prim_express_done(void *arg, size_t i, const struct send_report *rep,
                  struct send_failed *f)
{
	struct prim *p = arg;

	if (i < p->conf->n_sets) {
		if (rep->held > 0)
			prim_held_done(p, i, 0, rep);
		if (f->errors > 0 || rep->remote_errors > 0)
			p->failed[i] = 1;
	}
	proto_scope_free(f->v, f->n);
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
	int full, rc, covered;

	if (now - p->window_ns >= GUARD_WINDOW_NS) {
		memset(p->deleted, 0, p->conf->n_sets * sizeof(*p->deleted));
		p->window_ns = now;
	}
	if (!p->need_full[i]) {
		struct proto_wr ren;

		proto_wr_init(&ren);
		if (watch_take_renames(p->watch, (uint16_t)i, &ren) > 0 &&
		    ren.rc == HS_OK &&
		    (rc = send_session_renames(p->ss, set, &ren)) < 0) {
			proto_wr_free(&ren);
			return rc;
		}
		proto_wr_free(&ren);
	}
	watch_take(p->watch, (uint16_t)i, &scope, &n, &full);
	full |= p->need_full[i];
	if (p->need_diff[i] && !full &&
	    (rc = prim_diff(p, i, &scope, &n, &full)) < 0) {
		proto_scope_free(scope, n);
		return rc;
	}
	p->need_diff[i] = 0;
	send_prescan_drop(p->pre, i); /* not taken: stale from now on */
	if ((rc = prim_retry_join(p, i, &scope, &n, &full, &covered)) < 0) {
		proto_scope_free(scope, n);
		return rc;
	}
	if (!full && n == 0)
		return HS_OK;
	/* Cleared now: a request arriving during this run asks for another. */
	p->need_full[i] = 0;
	if (watch_taken_since(p->watch) != 0 &&
	    (p->inflight_ns == 0 ||
	     watch_taken_since(p->watch) < p->inflight_ns))
		p->inflight_ns = watch_taken_since(p->watch);
	p->busy_set = full ? (int)i : -1;
	memset(&rep, 0, sizeof(rep));
	p->o.guard_files = p->files[i];
	p->o.guard_recent = &p->deleted[i];
	/* The standby's tree holds the express run before we list it. */
	express_settle(p->xp, &p->o.journal_keep, &p->o.n_journal_keep);
	p->run_start_ns = hs_now_mono_ns();
	rc = send_session_set(p->ss, set, full ? NULL : scope, full ? 0 : n,
	                      &rep);
	replayed_drop(p);
	proto_scope_free(scope, n);
	if (rc < 0)
		return rc;
	p->last_io_ns = hs_now_mono_ns();
	p->busy_set = -1;
	p->syncs++;
	p->blind += rep.blind_runs;
	p->last_applied = st_wall_now();
	prim_held_done(p, i, full, &rep);
	p->cnt.bytes_sent = rep.wire_out;
	p->cnt.bytes_received = rep.wire_in;
	p->cnt.files_applied += rep.files_sent + rep.delta_files +
	                        rep.meta_only + rep.deleted + rep.dirs +
	                        rep.symlinks + rep.links + rep.specials;
	p->cnt.errors_remote += rep.remote_errors;
	p->cnt.errors_changed += rep.changed_during;
	p->failed[i] =
	    rep.remote_errors + rep.changed_during + rep.sets_refused > 0;
	prim_retry_done(p, i, covered, full, &rep);
	prim_idx_done(p, i, full, &rep);
	if (full) {
		/*
		 * The guard's measure is what the set holds now: the standby's
		 * count alone is 0 right after the seed, which would let the
		 * next mass deletion through unweighed; the primary's alone
		 * would shrink with a held deletion.
		 */
		p->files[i] = rep.standby_files > rep.primary_files
		                  ? rep.standby_files
		                  : rep.primary_files;
		p->pfiles[i] = rep.primary_files;
		p->pbytes[i] = rep.primary_bytes;
		if (!p->failed[i])
			prim_mark_seeded(p, i);
	}
	report_log(set, &rep, !full);
	return HS_OK;
}

/*
 * Has the standby acknowledged every change of set i that left the
 * watcher?  Not while no standby is connected or the session's first
 * reconciliation (a restart's comparison included) is not done, a run of
 * the set is under way (its changes left the watcher but are not
 * acknowledged yet), the set waits for a comparison, or changes wait in
 * the watcher.  Nor while it was never reconciled whole, deletions of it
 * are held back by the delete guard (the standby keeps what the primary
 * no longer has), or paths of it failed on the standby.  A drain's end
 * follows this alone (prim_drained): past the cut the watcher is not
 * read, so a file still open or a subtree without a watch is left there.
 */
static int
prim_set_acked(struct prim *p, size_t i)
{
	return p->ss != NULL && p->unsynced_ns == 0 && p->seeded[i] &&
	       !p->held[i] && !p->failed[i] && !prim_retry_pending(p, i) &&
	       !p->need_full[i] && !p->need_diff[i] && (int)i != p->run_set &&
	       !watch_pending(p->watch, (uint16_t)i);
}

/*
 * Does the standby hold set i as the primary does, as far as this loop
 * knows?  Acknowledged (prim_set_acked), and no file of it still open
 * nor a subtree of it without a watch (what changed there is seen only
 * at the next rescan).  Nor while this node is fenced or in split brain:
 * it replicates nothing then, and a fence read from the index (`fence`)
 * lands during a run, before the loop ends the session.  Status's
 * in-sync and the standby's promote_ready both follow this
 * (prim_set_settled, prim_caught_up).
 */
static int
prim_set_synced(struct prim *p, size_t i)
{
	return !p->fenced && !p->split && prim_set_acked(p, i) &&
	       !watch_delayed(p->watch, (uint16_t)i) &&
	       !watch_unwatched_in(p->watch, (uint16_t)i);
}

/*
 * The in-sync verdict of STATE, which the standby's promote_ready
 * follows: nothing in flight and every set synced.  Each condition that
 * keeps it false clears only in a run (a held deletion in a whole run),
 * and a run is followed by another verdict.  The kernel's unread events
 * are not asked, unlike status: an event read after the verdict that
 * makes no set pending would bring no run, and so no verdict after it.
 */
static int
prim_caught_up(struct prim *p)
{
	size_t i;

	if (p->ss == NULL || p->inflight_ns != 0)
		return 0;
	for (i = 0; i < p->conf->n_sets; i++)
		if (!prim_set_synced(p, i))
			return 0;
	return 1;
}

/* Lag in ns: age of the oldest change not yet acknowledged. */
static uint64_t
prim_lag_ns(struct prim *p)
{
	uint64_t oldest, paths, now = hs_now_mono_ns(), t = 0;
	size_t i;

	watch_pending_stats(p->watch, &oldest, &paths);
	if (oldest != 0)
		t = oldest;
	if (p->inflight_ns != 0 && (t == 0 || p->inflight_ns < t))
		t = p->inflight_ns;
	if (p->unsynced_ns != 0 && (t == 0 || p->unsynced_ns < t))
		t = p->unsynced_ns;
	/* Not on the standby's disk: a failed path's change still waits. */
	for (i = 0; i < p->n_retry; i++)
		if (prim_retry_pending(p, i) && p->retry[i].since_ns != 0 &&
		    (t == 0 || p->retry[i].since_ns < t))
			t = p->retry[i].since_ns;
	return t == 0 || t > now ? 0 : now - t;
}

static int
prim_sync_all(struct prim *p)
{
	uint64_t oldest, paths, gen = p->gen_req, now = hs_now_mono_ns();
	size_t i;
	int rc, any = 0;

	/* A fence taken during a run (`fence`) stops it at the next set. */
	for (i = 0; i < p->conf->n_sets && p->ss != NULL && !p->fenced; i++) {
		if (prim_idx_due(p, i, now))
			prim_idx_try(p, i);
		if (prim_held_due(p, i, now))
			p->need_full[i] = 1;
		if (!p->need_full[i] && !p->need_diff[i] &&
		    !watch_pending(p->watch, (uint16_t)i) &&
		    !prim_retry_due(p, i, now))
			continue;
		/*
		 * The standby hears first that changes are on their way: its
		 * promote_ready must not stay yes while they are in flight.
		 */
		if (!any) {
			/*
			 * So does status.json, which a stopped node's status
			 * shows: a SIGKILL during the runs must not leave it
			 * saying in-sync from before them.
			 */
			if (p->saved_synced)
				prim_save_status(p, 1);
			watch_pending_stats(p->watch, &oldest, &paths);
			rc = send_session_state(
			    p->ss, prim_lag_ns(p) / HS_NS_PER_MS, paths, 0);
			if (rc < 0) {
				prim_drop(p, rc, "state");
				return rc;
			}
		}
		any = 1;
		p->run_set = (int)i;
		rc = prim_sync_set(p, i);
		p->run_set = -1;
		if (rc < 0) {
			prim_drop(p, rc, p->conf->sets[i].name);
			return rc;
		}
	}
	if (!any || p->ss == NULL)
		return HS_OK;
	p->inflight_ns = 0;
	for (i = 0; i < p->conf->n_sets && !p->need_full[i] && !p->need_diff[i];
	     i++)
		;
	if (i == p->conf->n_sets) {
		p->unsynced_ns = 0;
		/* Every set reconciled whole since request `gen`. */
		if (p->gen_done < gen)
			p->gen_done = gen;
	}
	/* The standby learns our lag, for its own status. */
	watch_pending_stats(p->watch, &oldest, &paths);
	if ((rc = send_session_state(p->ss, prim_lag_ns(p) / HS_NS_PER_MS,
	                             paths, prim_caught_up(p))) < 0)
		prim_drop(p, rc, "state");
	return HS_OK;
}

static void
prim_heartbeat(struct prim *p)
{
	uint64_t now = hs_now_mono_ns();
	int rc;

	express_heartbeat(p->xp);
	if (p->ss == NULL ||
	    now - p->last_io_ns < p->conf->heartbeat * 1000 * HS_NS_PER_MS)
		return;
	/* Status is served while the PONG is awaited; no express run. */
	p->pinging = 1;
	rc = send_session_ping(p->ss, (int)p->conf->peer_timeout * 1000);
	p->pinging = 0;
	if (rc < 0) {
		prim_drop(p, rc, "heartbeat");
		return;
	}
	p->last_io_ns = hs_now_mono_ns();
}

/*
 * Set i's paths that the standby failed to apply, in words: a warning,
 * and a reason why the standby is not ready (text in buf).
 */
static void
prim_status_retry(struct prim *p, size_t i, struct st_view *v, char *buf,
                  size_t len, uint64_t now)
{
	const struct prim_retry *r = &p->retry[i];
	uint64_t due = r->due_ns > now ? (r->due_ns - now) / 1000000000ull : 0;

	if (r->refused)
		snprintf(buf, len, "set %s refused by standby %s: %.200s",
		         p->conf->sets[i].name, prim_peer_name(p), r->why);
	else
		snprintf(buf, len,
		         "%llu paths of set %s failed to apply on standby %s: "
		         "%.120s (first: %.200s)",
		         (unsigned long long)(r->errors ? r->errors : 1),
		         p->conf->sets[i].name, prim_peer_name(p),
		         r->why[0] ? r->why : "reason not told",
		         r->first[0] ? r->first : "not told");
	st_warn(v, "warning", "%s; tried again in %llu s", buf,
	        (unsigned long long)due);
	if (v->n_reasons < ST_REASONS_MAX)
		v->reasons[v->n_reasons++] = buf;
}

/*
 * May status call set i in-sync: synced (prim_set_synced), and no change
 * waits in the kernel: a writer's last change is queued there when its
 * write returns, and this status may be answered before the loop reads
 * it.  Nor while drained: the watcher is not read past the cut, and
 * what changes then is not sent.  (The standby's promote_ready is left
 * to prim_caught_up: a switchover needs it once the cut is acknowledged.)
 */
static int
prim_set_settled(struct prim *p, size_t i)
{
	return p->drain == DRAIN_NONE && prim_set_synced(p, i) &&
	       watch_unread(p->watch) == 0;
}

/* Fenced, split brain, drained, an older primary refused: warnings,
 * reasons. */
static void
prim_status_fence(struct prim *p, struct st_view *v)
{
	static char text[HS_ERRMSG_MAX];

	if (p->fenced) {
		st_fenced_text(text, sizeof(text), p->fenced_rec, p->fenced_len,
		               p->epoch);
		st_warn(v, "critical", "%s", text);
		if (v->n_reasons < ST_REASONS_MAX)
			v->reasons[v->n_reasons++] = text;
	}
	if (p->split) {
		st_warn(v, "critical",
		        "split brain: %s also claims primary at epoch %llu",
		        p->split_name, (unsigned long long)p->epoch);
		if (v->n_reasons < ST_REASONS_MAX)
			v->reasons[v->n_reasons++] = "split brain";
	}
	/* Drained: nothing after the cut goes out until it ends. */
	if (p->drain != DRAIN_NONE) {
		st_warn(v, "critical",
		        "drained by a switchover (%s): changes made after its "
		        "cut are not replicated; run `hamnsync switchover` "
		        "again to finish it, or restart the daemon (or send "
		        "it the `undrain` verb) to replicate again",
		        p->drain == DRAIN_SNAPSHOT ? "snapshotting"
		        : p->drain == DRAIN_CUT    ? "sending until the cut"
		                                   : "drained");
		if (v->n_reasons < ST_REASONS_MAX)
			v->reasons[v->n_reasons++] = "drained by a switchover";
	}
	if (p->stale_name[0] != '\0')
		st_warn(v, "warning",
		        "%s (epoch %llu) runs as primary and was refused: it "
		        "must rejoin",
		        p->stale_name, (unsigned long long)p->stale_epoch);
}

static json_t *
prim_status(struct prim *p)
{
	static char why[ST_REASONS_MAX][512];
	struct st_view v;
	struct st_path paths[64];
	const struct proto_hello *peer =
	    p->ss ? send_session_peer(p->ss) : NULL;
	uint64_t now = hs_now_mono_ns(), oldest, pending;
	uint64_t heard = p->ss ? send_session_heard(p->ss) : p->heard_ns;
	uint64_t timeout_ns = p->conf->peer_timeout * 1000 * HS_NS_PER_MS;
	size_t i;

	memset(&v, 0, sizeof(v));
	v.conf = p->conf;
	v.role = "primary";
	v.epoch = p->epoch;
	v.running = 1;
	v.peer_name = peer ? peer->name : NULL;
	v.peer_state = p->ss ? "connected" : "disconnected";
	v.peer_role = peer ? "standby" : NULL;
	v.peer_epoch = peer ? (int64_t)peer->epoch : -1;
	/* No session: the peer as last heard of (a refusal, a probe). */
	if (peer == NULL && p->seen.name[0] != '\0') {
		v.peer_name = p->seen.name;
		v.peer_role = hs_role_name(p->seen.role);
		v.peer_epoch = (int64_t)p->seen.epoch;
	}
	/* Since the last frame from it, kept across a lost session. */
	v.last_heard = p->sessions > 0 ? (double)(now - heard) / 1e9 : -1;
	v.lag = (double)prim_lag_ns(p) / 1e9;
	watch_pending_stats(p->watch, &oldest, &pending);
	v.files_pending = (int64_t)pending;
	v.bytes_pending = -1;
	v.last_applied_unix = p->last_applied;
	for (i = 0; i < p->conf->n_sets && v.n_paths < 64; i++) {
		struct st_path *ps = &paths[v.n_paths];

		ps->name = p->conf->sets[i].name;
		ps->files =
		    p->seeded[i] || p->pfiles[i] ? (int64_t)p->pfiles[i] : -1;
		ps->bytes =
		    p->seeded[i] || p->pfiles[i] ? (int64_t)p->pbytes[i] : -1;
		ps->progress = 1.0;
		if (p->failed[i] || prim_retry_pending(p, i))
			ps->state = "error";
		else if (p->held[i])
			ps->state = "held";
		else if (!p->seeded[i]) {
			ps->state = "seeding";
			ps->progress = 0.0;
			if ((int)i == p->busy_set && p->ss != NULL)
				ps->progress = send_session_progress(p->ss);
		} else if (!prim_set_settled(p, i))
			ps->state = "catching-up";
		else
			ps->state = "in-sync";
		if (p->held[i])
			st_warn(
			    &v, "warning",
			    "set %s: deletions held back; "
			    "`hamnsync sync --allow-deletes %s` releases them",
			    ps->name, ps->name);
		if (!p->seeded[i])
			st_warn(&v, "warning", "set %s: seeding", ps->name);
		/* A database's set is the database in `databases`. */
		if (p->conf->sets[i].db == NULL)
			v.n_paths++;
	}
	v.paths = paths;
	v.ready = 0;
	v.rpo = -1;
	v.reasons[v.n_reasons++] = "this node is the primary";
	prim_status_fence(p, &v);
	for (i = 0; i < p->conf->n_sets && v.n_reasons < ST_REASONS_MAX; i++)
		if (prim_retry_pending(p, i))
			prim_status_retry(p, i, &v, why[v.n_reasons],
			                  sizeof(why[0]), now);
	/*
	 * Gone longer than peer_timeout: silent since it was last heard
	 * (the session was dropped for it, or never came back), or never
	 * reached since this daemon started.  A standby that answers and
	 * refuses is not silent: its reason, critical past peer_timeout.
	 */
	if (p->ss == NULL && !p->fenced && !p->split && p->refused[0] != '\0')
		st_warn(&v, now - heard > timeout_ns ? "critical" : "warning",
		        "standby %s refuses this node: %s", p->conf->peer,
		        p->refused);
	else if (p->ss == NULL && now - heard > timeout_ns && !p->fenced &&
	         !p->split)
		st_warn(&v, "critical",
		        p->sessions > 0 ? "standby %s unreachable: silent for "
		                          "%.0f s (peer_timeout %llu s)"
		                        : "standby %s unreachable for %.0f s "
		                          "(peer_timeout %llu s)",
		        p->conf->peer, (double)(now - heard) / 1e9,
		        (unsigned long long)p->conf->peer_timeout);
	if (watch_unwatched(p->watch) > 0)
		st_warn(&v, "warning",
		        "%zu subtrees without inotify watches "
		        "(watch limit); rescanned every %llu s until "
		        "fs.inotify.max_user_watches lets them have one",
		        watch_unwatched(p->watch),
		        (unsigned long long)p->conf->rescan_interval);
	for (i = 0; i < p->n_retry && p->retry[i].idx_rc == 0; i++)
		;
	if (i < p->n_retry)
		st_warn(&v, "warning",
		        "the index in %s on %s cannot be written: %s; what the "
		        "standby applied is not recorded (the next start "
		        "compares every set whole) until it can",
		        p->conf->state_dir, p->conf->node_name,
		        hs_strerror(p->retry[i].idx_rc));
	st_databases(&v, p->dbr, 0);
	st_warn_disk(&v, "state_dir", p->conf->state_dir);
	st_warn_cert(&v, p->conf->cert);
	st_warn_identity(&v);
	return st_json(&v);
}

/*
 * This node's state as stored now (`fence`, `role`): a REJOIN flag set
 * or cleared from outside (rejoin, a test's hs-node) is taken.  The loop
 * ends a session a new fence leaves (never from inside a run).
 */
static int
prim_reread(struct prim *p, struct idx_node *node, int say)
{
	char *rec;
	size_t len;
	int rc, was = p->fenced;

	if ((rc = idx_node_get(p->x, node)) < 0) {
		hs_log_warnx("primary: node state in %s: %s",
		             p->conf->state_dir, hs_strerror(rc));
		return rc;
	}
	p->fenced = (node->flags & IDX_NODE_F_REJOIN) != 0;
	if (p->fenced && !was &&
	    idx_blob_get(p->x, ST_FENCED_KEY, &rec, &len) == HS_OK) {
		p->fenced_len = len < sizeof(p->fenced_rec) ? len : 0;
		memcpy(p->fenced_rec, rec, p->fenced_len);
		free(rec);
	}
	if (p->fenced != was && say)
		hs_log_info("primary: node state read again: %s",
		            p->fenced ? "fenced" : "no longer fenced");
	if (p->fenced != was) {
		p->next_try_ns = 0;
		prim_lis_tell(p->lis, p->epoch, p->fenced);
	}
	return HS_OK;
}

static json_t *
prim_verb_fence(struct prim *p)
{
	struct idx_node node;
	json_t *j;

	if (prim_reread(p, &node, 1) < 0)
		return NULL;
	j = json_object();
	json_object_set_new(j, "epoch", json_integer((json_int_t)p->epoch));
	/* No primary's session to drain: a primary serves none. */
	json_object_set_new(j, "sessions", json_integer(0));
	return j;
}

static json_t *
prim_verb_role(struct prim *p)
{
	struct idx_node node;
	json_t *j;

	if (prim_reread(p, &node, 1) < 0)
		return NULL;
	if (node.role != HS_ROLE_PRIMARY && !p->switching) {
		hs_log_info("primary: the stored role is %s now: stopping "
		            "to run it",
		            hs_role_name(node.role));
		p->switching = 1;
		p->stopping = 1;
	}
	j = json_object();
	json_object_set_new(j, "role", json_string(hs_role_name(node.role)));
	json_object_set_new(j, "switching", json_boolean(p->switching));
	return j;
}

/*
 * Has the standby acknowledged everything seen until the cut?  No run
 * under way, and every set acknowledged (prim_set_acked).
 */
static int
prim_drained(struct prim *p)
{
	size_t i;

	if (p->ss == NULL || p->inflight_ns != 0)
		return 0;
	for (i = 0; i < p->conf->n_sets; i++)
		if (!prim_set_acked(p, i))
			return 0;
	return 1;
}

/* The drain moves on: the snapshot made, the cut; then acknowledged. */
static void
prim_drain_step(struct prim *p)
{
	int rc;

	if (p->drain == DRAIN_SNAPSHOT) {
		rc = dbr_snapshot_done(p->dbr, p->drain_ticket, p->drain_why,
		                       sizeof(p->drain_why));
		if (rc <= 0)
			return;
		/* Every change made until now is in the watcher's sets. */
		watch_drain(p->watch);
		p->drain = DRAIN_CUT;
		hs_log_info("primary: drain: databases snapshotted; cut "
		            "taken: what was seen until now goes to the "
		            "standby, nothing after it");
	}
	if (p->drain == DRAIN_CUT && prim_drained(p)) {
		p->drain = DRAIN_DONE;
		hs_log_info("primary: drain: the standby acknowledged every "
		            "change until the cut; nothing more is sent");
	}
}

/*
 * `drain` (switchover): the first call asks for the snapshot and the
 * cut; every call answers how far the drain is.
 */
static json_t *
prim_verb_drain(struct prim *p)
{
	uint64_t oldest, pending;
	json_t *j = json_object();

	if (p->fenced || p->split) {
		json_object_set_new(
		    j, "error",
		    json_string(p->fenced ? "this node is fenced: it sends "
		                            "nothing, there is nothing to drain"
		                          : "split brain: nothing is "
		                            "replicated, nothing to drain"));
		return j;
	}
	if (p->drain == DRAIN_NONE) {
		p->drain = DRAIN_SNAPSHOT;
		p->drain_ticket = dbr_snapshot_now(p->dbr);
		p->drain_why[0] = '\0';
		hs_log_info("primary: drain asked: snapshotting the databases, "
		            "then the cut");
	}
	prim_drain_step(p);
	if (p->drain_why[0] != '\0') {
		json_object_set_new(j, "error", json_string(p->drain_why));
		return j;
	}
	watch_pending_stats(p->watch, &oldest, &pending);
	json_object_set_new(j, "drained", json_boolean(p->drain == DRAIN_DONE));
	json_object_set_new(j, "stage",
	                    json_string(p->drain == DRAIN_SNAPSHOT ? "snapshot"
	                                : p->drain == DRAIN_CUT    ? "sending"
	                                                           : "done"));
	json_object_set_new(j, "connected", json_boolean(p->ss != NULL));
	json_object_set_new(j, "files_pending",
	                    json_integer((json_int_t)pending));
	json_object_set_new(j, "lag", json_real((double)prim_lag_ns(p) / 1e9));
	return j;
}

/*
 * `undrain`: a switchover that failed before its handover (or was
 * given up) returns this daemon to replicating.  What changed after the
 * cut was not read (the watcher) nor snapshotted: every set is
 * reconciled whole and the databases are probed now, so it goes out.
 */
static json_t *
prim_verb_undrain(struct prim *p)
{
	json_t *j = json_object();
	int was = p->drain != DRAIN_NONE;
	size_t i;

	if (was) {
		p->drain = DRAIN_NONE;
		p->drain_why[0] = '\0';
		for (i = 0; i < p->conf->n_sets; i++)
			p->need_full[i] = 1;
		p->gen_req++;
		(void)dbr_snapshot_now(p->dbr);
		watch_drain(p->watch);
		hs_log_info("primary: undrain: replicating again; every set "
		            "is reconciled for the changes made after the "
		            "cut");
	}
	json_object_set_new(j, "undrained", json_boolean(was));
	return j;
}

static json_t *
prim_answer(void *arg, const char *verb)
{
	struct prim *p = arg;
	json_t *j;

	if (strcmp(verb, "status") == 0)
		return prim_status(p);
	if (strcmp(verb, "fence") == 0)
		return prim_verb_fence(p);
	if (strcmp(verb, "role") == 0)
		return prim_verb_role(p);
	if (strcmp(verb, "drain") == 0)
		return prim_verb_drain(p);
	if (strcmp(verb, "undrain") == 0)
		return prim_verb_undrain(p);
	if (strcmp(verb, "sync") == 0) {
		for (size_t i = 0; i < p->conf->n_sets; i++)
			p->need_full[i] = 1;
		p->gen_req++;
		j = json_object();
		json_object_set_new(j, "generation",
		                    json_integer((json_int_t)p->gen_req));
		return j;
	}
	if (strcmp(verb, "progress") == 0) {
		json_t *held = json_array(), *failed = json_array();

		for (size_t i = 0; i < p->conf->n_sets; i++) {
			if (p->held[i])
				json_array_append_new(
				    held, json_string(p->conf->sets[i].name));
			if (p->failed[i] || prim_retry_pending(p, i))
				json_array_append_new(
				    failed, json_string(p->conf->sets[i].name));
		}
		j = json_object();
		json_object_set_new(j, "done",
		                    json_integer((json_int_t)p->gen_done));
		json_object_set_new(j, "connected",
		                    json_boolean(p->ss != NULL));
		json_object_set_new(j, "held", held);
		json_object_set_new(j, "failed", failed);
		return j;
	}
	return NULL;
}

/* Keep status answering and the inotify queue drained in long runs. */
static void
prim_tick(void *arg)
{
	struct prim *p = arg;

	if (p->prescanning)
		return;
	/* Snapshots go on during long runs: they are children. */
	if (p->drain < DRAIN_CUT) {
		dbr_tick(p->dbr);
		/* Drained first: status counts what the kernel has seen. */
		watch_drain(p->watch);
	}
	if (p->cfd >= 0)
		ctl_serve(p->cfd, p->conf->status_group, prim_answer, p);
	/* A long run: what changed meanwhile and is small overtakes it. */
	if (p->ss != NULL && !p->pinging && !p->fenced &&
	    p->drain < DRAIN_CUT &&
	    hs_now_mono_ns() - p->run_start_ns >= EXPRESS_AFTER_NS)
		express_tick(p->xp, p->watch, p->files, p->deleted);
}

static void
prim_metrics(struct prim *p)
{
	uint64_t now = hs_now_mono_ns();
	json_t *j;
	int rc;

	if (p->conf->metrics_file == NULL ||
	    now - p->last_metrics_ns < 2000 * HS_NS_PER_MS)
		return;
	p->last_metrics_ns = now;
	p->cnt.watches = watch_count(p->watch);
	p->cnt.express_runs = express_runs(p->xp);
	if ((j = prim_status(p)) == NULL)
		return;
	if ((rc = st_metrics_write(p->conf->metrics_file, j, &p->cnt)) < 0)
		hs_log_warnx("primary: metrics_file %s: %s",
		             p->conf->metrics_file, hs_strerror(rc));
	json_decref(j);
}

/* Does status `j` call every set in-sync? */
static int
prim_status_synced(json_t *j)
{
	json_t *paths = json_object_get(j, "paths"), *v;
	size_t k;

	json_array_foreach(paths, k, v)
	{
		const char *s = json_string_value(json_object_get(v, "state"));

		if (s == NULL || strcmp(s, "in-sync") != 0)
			return 0;
	}
	return json_array_size(paths) > 0;
}

static void
prim_save_status(struct prim *p, int force)
{
	uint64_t now = hs_now_mono_ns();
	json_t *j;

	prim_metrics(p);
	if (!force && now - p->last_save_ns < 5000 * HS_NS_PER_MS)
		return;
	p->last_save_ns = now;
	if ((j = prim_status(p)) != NULL) {
		if (st_save(p->conf->state_dir, j, &p->saved) >= 0)
			p->saved_synced = prim_status_synced(j);
		json_decref(j);
	}
}

static int
prim_reload(struct prim *p)
{
	char err[HS_ERRMSG_MAX];
	struct hs_conf *nc;
	struct proto_tls *nt;
	struct watch *nw;
	struct dbr *nd;
	int rc;
	size_t n;

	if (hs_conf_load(p->conf_path, &nc, err, sizeof(err)) < 0) {
		hs_log_errx("primary: reload refused, keeping the running "
		            "configuration: %s",
		            err);
		return HS_OK;
	}
	/* The identity too is read again, and kept only if it loads. */
	if (proto_tls_from_conf(nc, &nt, err, sizeof(err)) < 0) {
		hs_log_errx("primary: reload refused, keeping the running "
		            "configuration: %s",
		            err);
		hs_conf_free(nc);
		return HS_OK;
	}
	/* First: it makes the snapshot folders the watcher watches. */
	if ((rc = dbr_open(nc, DBR_PRIMARY, &nd)) < 0) {
		hs_log_errx("primary: reload refused: databases: %s",
		            hs_strerror(rc));
		proto_tls_free(nt);
		hs_conf_free(nc);
		return HS_OK;
	}
	if (watch_new(nc, &nw) < 0) {
		hs_log_errx("primary: reload refused: cannot watch the new "
		            "sources");
		dbr_free(nd);
		proto_tls_free(nt);
		hs_conf_free(nc);
		return HS_OK;
	}
	/*
	 * The databases start again with the new configuration (it may
	 * change them): a dump under way is killed and made again.
	 */
	dbr_free(p->dbr);
	p->dbr = nd;
	watch_free(p->watch);
	send_prescan_free(p->pre);
	p->pre = NULL;
	express_free(p->xp); /* it borrows the old configuration */
	p->xp = NULL;
	send_session_close(p->ss, 1);
	p->ss = NULL;
	proto_tls_free(p->o.tls); /* no session uses it any more */
	p->o.tls = nt;
	hs_conf_free(p->conf);
	p->conf = nc;
	p->watch = nw;
	if (express_new(p->conf, p->o.tls, p->epoch, &p->xp) < 0)
		return -ENOMEM;
	express_journal(p->xp, p->x);
	express_on_done(p->xp, prim_express_done, p);
	(void)n;
	if (prim_alloc_sets(p) < 0)
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
	uint64_t now = hs_now_mono_ns(), due = UINT64_MAX;
	uint64_t hb = p->last_io_ns + p->conf->heartbeat * 1000 * HS_NS_PER_MS;
	size_t i;
	int ms;

	/*
	 * Past the drain's cut neither the watcher nor the databases are
	 * driven, and once drained no set is run: none of their timers.
	 */
	if (p->drain < DRAIN_CUT)
		due = watch_next_due(p->watch);
	/*
	 * Changes read from inotify during a long transfer (the tick drains
	 * it) wait in the dirty sets, not in the kernel: do not sleep on them.
	 */
	for (i = 0;
	     p->ss != NULL && p->drain != DRAIN_DONE && i < p->conf->n_sets;
	     i++)
		if (p->need_full[i] || p->need_diff[i] ||
		    watch_pending(p->watch, (uint16_t)i))
			return 0;
	if (p->ss == NULL && !p->fenced && p->next_try_ns < due)
		due = p->next_try_ns;
	if (p->ss != NULL && hb < due)
		due = hb;
	for (i = 0; p->ss != NULL && p->drain != DRAIN_DONE && i < p->n_retry;
	     i++) {
		if (prim_retry_pending(p, i) && p->retry[i].due_ns < due)
			due = p->retry[i].due_ns;
		if (p->retry[i].idx_rc < 0 && p->retry[i].idx_due_ns < due)
			due = p->retry[i].idx_due_ns;
		if (p->held[i] && p->retry[i].held_due_ns < due)
			due = p->retry[i].held_due_ns;
	}
	if (p->drain < DRAIN_CUT && watch_unwatched(p->watch) > 0 &&
	    p->next_rescan_ns < due)
		due = p->next_rescan_ns;
	if (p->drain < DRAIN_CUT && (ms = dbr_next_ms(p->dbr)) >= 0 &&
	    now + (uint64_t)ms * HS_NS_PER_MS < due)
		due = now + (uint64_t)ms * HS_NS_PER_MS;
	if (due <= now)
		return 0;
	due = (due - now) / HS_NS_PER_MS + 1;
	return due > 1000 ? 1000 : (int)due;
}

/*
 * Watch every tree before the first reconciliation, so nothing slips
 * between; the same walk compares every entry with the index, for the
 * first session (a standby that holds what the index says needs only
 * what differs).  It needs no peer: the session opens meanwhile.
 */
static void
prim_start(struct prim *p)
{
	uint64_t t0 = hs_now_mono_ns();

	p->prescanning =
	    send_prescan_start(p->conf, p->x, p->watch, &p->pre) == HS_OK;
	prim_connect(p);
	send_prescan_wait(p->pre);
	if (p->prescanning)
		hs_log_info("primary: sources compared with the index while "
		            "watched (%llu ms)",
		            (unsigned long long)((hs_now_mono_ns() - t0) /
		                                 HS_NS_PER_MS));
	p->prescanning = 0;
	watch_ready(p->watch);
}

/* The listener child said something, or ended (then it is gone). */
static void
prim_lis_event(struct prim *p, short revents)
{
	if (revents & POLLIN)
		prim_listened(p);
	else if (revents & (POLLHUP | POLLERR)) {
		hs_log_warnx("primary: the listener on %s ended: probes and "
		             "other primaries are not answered until a restart",
		             p->conf->listen);
		prim_lis_stop(p->lis);
		p->lis = NULL;
	}
}

static int
prim_loop(struct prim *p)
{
	struct pollfd pfd[4];
	int rc;

	while (!p->stopping) {
		uint64_t now = hs_now_mono_ns();

		/* Fenced from outside (`fence`) during a run: it ends now. */
		if (p->fenced && p->ss != NULL) {
			send_session_close(p->ss, 0);
			p->ss = NULL;
		}
		if (p->ss == NULL && !p->fenced && now >= p->next_try_ns)
			prim_connect(p);
		prim_drain_step(p);
		if (p->ss != NULL && p->drain != DRAIN_DONE)
			prim_sync_all(p);
		prim_drain_step(p);
		prim_heartbeat(p);
		if (watch_unwatched(p->watch) > 0 && now >= p->next_rescan_ns &&
		    p->drain < DRAIN_CUT) {
			watch_rescan_unwatched(p->watch);
			p->next_rescan_ns = now + p->conf->rescan_interval *
			                              1000 * HS_NS_PER_MS;
		}
		if (p->drain < DRAIN_CUT)
			dbr_tick(p->dbr);
		prim_save_status(p, 0);
		/* Past the cut the watcher is never read again. */
		pfd[0].fd = p->drain < DRAIN_CUT ? watch_fd(p->watch) : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = p->sfd;
		pfd[1].events = POLLIN;
		pfd[2].fd = p->cfd;
		pfd[2].events = POLLIN;
		pfd[3].fd = prim_lis_fd(p->lis);
		pfd[3].events = POLLIN;
		pfd[3].revents = 0;
		if (poll(pfd, 4, prim_timeout(p)) < 0 && errno != EINTR)
			return -errno;
		if (pfd[3].revents)
			prim_lis_event(p, pfd[3].revents);
		if ((pfd[1].revents & POLLIN) && (rc = prim_signal(p)) < 0)
			return rc;
		/* Drained first: status counts what the kernel has seen. */
		if (p->drain < DRAIN_CUT)
			watch_drain(p->watch);
		if (pfd[2].revents & POLLIN)
			ctl_serve(p->cfd, p->conf->status_group, prim_answer,
			          p);
	}
	/*
	 * SIGTERM: what changed until now goes out, then a clean goodbye;
	 * a fenced node sends nothing, nor one drained past its cut.
	 */
	if (p->drain < DRAIN_CUT)
		watch_drain(p->watch);
	if (p->ss != NULL && !p->fenced && p->drain != DRAIN_DONE)
		prim_sync_all(p);
	/* Saved before the goodbye: a set is in-sync only while connected. */
	prim_save_status(p, 1);
	send_session_close(p->ss, 1);
	p->ss = NULL;
	hs_log_info("primary: stopped after %llu reconciliations (%llu "
	            "without a listing), %llu express runs (%llu paths)",
	            (unsigned long long)p->syncs, (unsigned long long)p->blind,
	            (unsigned long long)express_runs(p->xp),
	            (unsigned long long)express_paths(p->xp));
	express_free(p->xp);
	p->xp = NULL;
	return p->switching ? HS_EROLE : HS_OK;
}

/* A node stored as fenced starts fenced: status says it, nothing is sent. */
static void
prim_start_fenced(struct prim *p)
{
	struct idx_node node;
	char text[HS_ERRMSG_MAX];

	if (prim_reread(p, &node, 0) < 0 || !p->fenced)
		return;
	st_fenced_text(text, sizeof(text), p->fenced_rec, p->fenced_len,
	               p->epoch);
	hs_log_errx("primary: %s; nothing is sent", text);
}

int
prim_run(const char *conf_path, struct hs_conf *conf, struct proto_tls *tls,
         struct idx *x, uint64_t epoch, int foreground)
{
	struct prim p;
	sigset_t mask;
	int rc, mrc;

	memset(&p, 0, sizeof(p));
	p.conf_path = conf_path;
	p.conf = conf;
	p.epoch = epoch;
	p.sfd = p.pidfd = -1;
	p.backoff_ms = PRIM_BACKOFF_MIN_MS;
	p.o.epoch = epoch;
	p.o.quiet = 1;
	p.o.tls = tls;
	p.cfd = -1;
	p.busy_set = -1;
	p.run_set = -1;
	p.last_applied = -1;
	p.unsynced_ns = hs_now_mono_ns();
	p.heard_ns = p.unsynced_ns;
	/*
	 * The status kept for `status` without a daemon (status.json) is
	 * first looked at 5 s in: a restart's first seconds are the walk's,
	 * and what it would save then is stale by the time it matters.
	 */
	p.last_save_ns = p.unsynced_ns;
	p.o.tick = prim_tick;
	p.o.tick_arg = &p;
	p.o.met = &p.met;
	p.x = x;
	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		hs_log_err("primary: state_dir %s", conf->state_dir);
		goto out;
	}
	if ((rc = hs_pidfile_lock(conf->state_dir, &p.pidfd)) < 0)
		goto out;
	if (p.x == NULL && (rc = idx_open(conf->state_dir, 0, &p.x)) < 0) {
		hs_log_errx("primary: index in %s: %s", conf->state_dir,
		            hs_strerror(rc));
		goto out;
	}
	p.o.idx = p.x; /* file and block records, the journal */
	if ((rc = prim_alloc_sets(&p)) < 0 ||
	    (rc = express_new(conf, p.o.tls, epoch, &p.xp)) < 0)
		goto out;
	if ((p.cfd = ctl_listen(conf->state_dir, conf->status_group)) < 0) {
		rc = p.cfd;
		hs_log_errx("primary: control socket: %s", hs_strerror(rc));
		goto out;
	}
	/* Before the watcher: it makes the snapshot folders (db:NAME). */
	if ((rc = dbr_open(conf, DBR_PRIMARY, &p.dbr)) < 0) {
		hs_log_errx("primary: databases: %s", hs_strerror(rc));
		goto out;
	}
	/* The trees are watched below (prim_start), before any run. */
	if ((rc = watch_new_deferred(conf, &p.watch)) < 0) {
		hs_log_errx("primary: cannot watch the sources: %s",
		            hs_strerror(rc));
		goto out;
	}
	if (!foreground) {
		/*
		 * LMDB forbids using an environment after fork(): the index
		 * is closed across the detach and opened (and checked) again
		 * by the process that will use it.
		 */
		idx_close(p.x);
		p.x = p.o.idx = NULL;
		if ((rc = hs_detach()) < 0)
			goto out;
		hs_log_init("hamnsync", 0, HS_LOG_INFO);
		if ((rc = idx_open_checked(conf->state_dir, &p.x)) < 0) {
			hs_log_errx("primary: index in %s: %s", conf->state_dir,
			            hs_strerror(rc));
			goto out;
		}
		p.o.idx = p.x;
	}
	express_journal(p.xp, p.x);
	express_on_done(p.xp, prim_express_done, &p);
	hs_pidfile_write(p.pidfd);
	prim_start_fenced(&p);
	/* Before any thread (prim_start makes the first ones). */
	{
		int fds[3] = {p.pidfd, p.cfd, watch_fd(p.watch)};

		if ((rc = prim_lis_start(conf, p.o.tls, p.epoch, p.fenced, fds,
		                         3, &p.lis)) < 0) {
			hs_log_errx("primary: listener for %s: %s",
			            conf->listen, hs_strerror(rc));
			goto out;
		}
	}
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
	prim_start(&p);
	rc = prim_loop(&p);
out:
	/* Stopped and reaped first: a standby run next binds its port. */
	prim_lis_stop(p.lis);
	send_prescan_free(p.pre);
	dbr_free(p.dbr);
	watch_free(p.watch);
	express_free(p.xp);
	send_session_close(p.ss, 0);
	/*
	 * A clean stop: every thread is joined and the pidfile lock still
	 * held, so the index is ours alone; the next start need not probe.
	 */
	if ((rc == HS_OK || rc == HS_EROLE) && p.pidfd >= 0 && p.x != NULL &&
	    (mrc = idx_mark_clean(p.x)) < 0)
		hs_log_info("primary: index not marked clean (%s): the next "
		            "start reads it whole first",
		            hs_strerror(mrc));
	if (p.sfd >= 0)
		close(p.sfd);
	if (p.pidfd >= 0) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/hamnsync.pid",
		         p.conf->state_dir);
		if (rc == HS_OK)
			unlink(path);
		/* The other role runs next in this process: still locked. */
		if (rc == HS_EROLE)
			hs_pidfile_handover(p.pidfd, p.conf->state_dir);
		else
			close(p.pidfd);
	}
	if (p.cfd >= 0) {
		close(p.cfd);
		ctl_unlink(p.conf->state_dir);
	}
	idx_close(p.x);
	st_saved_free(&p.saved);
	free(p.replayed);
	prim_free_sets(&p);
	proto_tls_free(p.o.tls);
	hs_conf_free(p.conf);
	return rc;
}
