/*
 * failpoint.c - named failpoints for crash and error tests (hs.h).
 *
 * Built only with -DHS_FAILPOINTS=ON.  The names are fixed here, so a
 * typo in HAMNSYNC_FAILPOINTS is an error at start rather than a test
 * that silently injects nothing, and a typo at a call site aborts at its
 * first hit.  Hit counters live in a shared anonymous mapping made before
 * any fork: the standby's session children and the daemon count together,
 * so "fire once" means once per daemon, not once per connection.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"

/* Every failpoint, and where it sits. */
static const char *const fp_names[] = {
    /* standby, standby/apply_*.c */
    "apply.before_write",     /* file_write (apply_file.c): before a write */
    "apply.after_write",      /* file_write: after it */
    "apply.before_rename",    /* apply_flush (apply_batch.c): data synced */
    "apply.after_rename",     /* apply_flush: renamed, directory not synced */
    "apply.before_delete",    /* apply_op_delete (apply_ops.c): the unlink */
    "standby.records_commit", /* apply_recs_commit (apply_rec.c): records */
    /* standby, standby/recv.c */
    "standby.index_commit", /* on_set_end: the run's sequence */
    "standby.before_ack",   /* on_set_end: before SET_DONE */
    /* primary, primary/sendidx.c, index/files.c and primary/express.c */
    "primary.journal_write", /* journal_put (sendidx.c): a run's entry */
    "primary.index_commit",  /* idx_batch_ack (files.c): the acked run */
    "express.send",          /* express_start: before a run goes out */
    "express.ack",           /* express_collect: its SET_DONE read */
    /* failover, failover/steps.c */
    "failover.step", /* run_one: a step begun and persisted, not run */
};
#define FP_N (sizeof(fp_names) / sizeof(fp_names[0]))
/* sleep(MS): at most 10 minutes. */
#define FP_SLEEP_MAX_MS 600000

enum fp_kind {
	FP_OFF = 0,
	FP_CRASH,
	FP_ERR,
	FP_SLEEP,
};

struct fp {
	enum fp_kind kind;
	int err;       /* FP_ERR: the errno */
	uint64_t ms;   /* FP_SLEEP */
	uint64_t from; /* the first hit that fires, from 1 */
	uint64_t n;    /* hits that fire from there; 0: all */
	char what[32]; /* the action as written, for the log */
};

/* Shared by the processes of one daemon (MAP_SHARED, made at arm). */
struct fp_shared {
	pid_t daemon;
	uint64_t hits[FP_N];
};

static struct fp fps[FP_N];
static int fp_armed;
static struct fp_shared *fp_sh;

static const struct {
	const char *name;
	int err;
} fp_errnos[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC},         {"EDQUOT", EDQUOT},
    {"EROFS", EROFS},   {"EACCES", EACCES},         {"EPERM", EPERM},
    {"ENOENT", ENOENT}, {"ENOMEM", ENOMEM},         {"EAGAIN", EAGAIN},
    {"EINTR", EINTR},   {"EBUSY", EBUSY},           {"EEXIST", EEXIST},
    {"EPIPE", EPIPE},   {"ECONNRESET", ECONNRESET}, {"ETIMEDOUT", ETIMEDOUT},
};

static int
fp_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < FP_N; i++)
		if (strlen(fp_names[i]) == len &&
		    memcmp(fp_names[i], name, len) == 0)
			return (int)i;
	return -1;
}

/* "[N*]KIND[@K]" into f; HS_ECONFIG with the reason in why. */
static int
fp_parse_action(const char *s, struct fp *f, const char **why)
{
	char buf[64], *kind, *at, *star, *arg;
	size_t n = strlen(s);

	*why = "not crash, err(ERRNO) or sleep(MS), with an optional "
	       "N* before and @K after";
	if (n == 0 || n >= sizeof(buf))
		return HS_ECONFIG;
	memcpy(buf, s, n + 1);
	kind = buf;
	f->from = 1;
	f->n = 0;
	if ((star = strchr(buf, '*')) != NULL) {
		*star = '\0';
		kind = star + 1;
		if (hs_parse_u64(buf, 1, UINT32_MAX, &f->n) < 0) {
			*why = "the count before '*' is not a number from 1";
			return HS_ECONFIG;
		}
	}
	if ((at = strrchr(kind, '@')) != NULL) {
		*at = '\0';
		if (hs_parse_u64(at + 1, 1, UINT32_MAX, &f->from) < 0) {
			*why = "the hit after '@' is not a number from 1";
			return HS_ECONFIG;
		}
	}
	snprintf(f->what, sizeof(f->what), "%s", kind);
	if (strcmp(kind, "crash") == 0) {
		f->kind = FP_CRASH;
		return HS_OK;
	}
	n = strlen(kind);
	if (n < 2 || kind[n - 1] != ')' || (arg = strchr(kind, '(')) == NULL)
		return HS_ECONFIG;
	kind[n - 1] = '\0';
	*arg++ = '\0';
	if (strcmp(kind, "sleep") == 0) {
		f->kind = FP_SLEEP;
		if (hs_parse_u64(arg, 0, FP_SLEEP_MAX_MS, &f->ms) < 0) {
			*why = "sleep(MS) takes milliseconds from 0 to 600000";
			return HS_ECONFIG;
		}
		return HS_OK;
	}
	if (strcmp(kind, "err") != 0)
		return HS_ECONFIG;
	for (n = 0; n < sizeof(fp_errnos) / sizeof(fp_errnos[0]); n++)
		if (strcmp(arg, fp_errnos[n].name) == 0) {
			f->kind = FP_ERR;
			f->err = fp_errnos[n].err;
			return HS_OK;
		}
	*why = "unknown errno name (EIO, ENOSPC, EDQUOT, EROFS, EACCES, "
	       "EPERM, ENOENT, ENOMEM, EAGAIN, EINTR, EBUSY, EEXIST, EPIPE, "
	       "ECONNRESET, ETIMEDOUT)";
	return HS_ECONFIG;
}

/* One "NAME=ACTION" of len bytes into parsed[]. */
static int
fp_parse_item(const char *item, size_t len, struct fp *parsed, char *err,
              size_t errlen)
{
	const char *eq = memchr(item, '=', len), *why;
	char action[128];
	int i;

	if (len == 0) {
		snprintf(err, errlen,
		         "empty item (two commas, or one at an "
		         "end)");
		return HS_ECONFIG;
	}
	if (eq == NULL) {
		snprintf(err, errlen, "\"%.*s\": not NAME=ACTION", (int)len,
		         item);
		return HS_ECONFIG;
	}
	if ((i = fp_find(item, (size_t)(eq - item))) < 0) {
		size_t k, off;

		off = (size_t)snprintf(err, errlen,
		                       "unknown failpoint \"%.*s\" (known:",
		                       (int)(eq - item), item);
		for (k = 0; k < FP_N && off < errlen; k++)
			off += (size_t)snprintf(err + off, errlen - off, " %s",
			                        fp_names[k]);
		if (off < errlen)
			snprintf(err + off, errlen - off, ")");
		return HS_ECONFIG;
	}
	if (parsed[i].kind != FP_OFF) {
		snprintf(err, errlen, "failpoint %s is named twice",
		         fp_names[i]);
		return HS_ECONFIG;
	}
	snprintf(action, sizeof(action), "%.*s",
	         (int)(len - (size_t)(eq - item) - 1), eq + 1);
	if (fp_parse_action(action, &parsed[i], &why) < 0) {
		snprintf(err, errlen, "failpoint %s: bad action \"%.*s\": %s",
		         fp_names[i], (int)(len - (size_t)(eq - item) - 1),
		         eq + 1, why);
		parsed[i].kind = FP_OFF;
		return HS_ECONFIG;
	}
	return HS_OK;
}

int
hs_fp_arm(const char *spec, char *err, size_t errlen)
{
	struct fp parsed[FP_N];
	const char *p, *comma;
	size_t i;
	int rc, any = 0;

	memset(parsed, 0, sizeof(parsed));
	if (strlen(spec) > HS_FP_SPEC_MAX) {
		snprintf(err, errlen, "longer than %d bytes", HS_FP_SPEC_MAX);
		return HS_ECONFIG;
	}
	for (p = spec; spec[0] != '\0'; p = comma + 1) {
		comma = strchr(p, ',');
		if (comma == NULL)
			comma = p + strlen(p);
		if ((rc = fp_parse_item(p, (size_t)(comma - p), parsed, err,
		                        errlen)) < 0)
			return rc;
		any = 1;
		if (*comma == '\0')
			break;
	}
	if (any && fp_sh == NULL) {
		fp_sh = mmap(NULL, sizeof(*fp_sh), PROT_READ | PROT_WRITE,
		             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (fp_sh == MAP_FAILED) {
			fp_sh = NULL;
			snprintf(err, errlen, "cannot map its counters: %s",
			         strerror(errno));
			return HS_ECONFIG;
		}
	}
	memcpy(fps, parsed, sizeof(fps));
	if (fp_sh != NULL) {
		fp_sh->daemon = getpid();
		for (i = 0; i < FP_N; i++)
			fp_sh->hits[i] = 0;
	}
	fp_armed = any;
	return HS_OK;
}

void
hs_fp_daemon_pid(pid_t pid)
{
	if (fp_sh != NULL)
		fp_sh->daemon = pid;
}

static void
fp_sleep(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
hs_fp_hit(const char *name)
{
	const struct fp *f;
	uint64_t h;
	pid_t daemon;
	int i;

	if (!fp_armed)
		return HS_OK;
	if ((i = fp_find(name, strlen(name))) < 0) {
		hs_log_errx("failpoint %s: not in the list of failpoints",
		            name);
		abort();
	}
	f = &fps[i];
	if (f->kind == FP_OFF)
		return HS_OK;
	h = __atomic_add_fetch(&fp_sh->hits[i], 1, __ATOMIC_SEQ_CST);
	if (h < f->from || (f->n != 0 && h - f->from >= f->n))
		return HS_OK;
	hs_log_warnx("failpoint %s fired: %s (hit %llu)", name, f->what,
	             (unsigned long long)h);
	switch (f->kind) {
	case FP_CRASH:
		/*
		 * As `kill -9` of the daemon: its pid first (its other
		 * session children follow by PR_SET_PDEATHSIG), then the
		 * process that fired, with no cleanup in either.
		 */
		daemon = fp_sh->daemon;
		if (daemon > 0 && daemon != getpid())
			kill(daemon, SIGKILL);
		raise(SIGKILL);
		_exit(137);
	case FP_ERR:
		return -f->err;
	case FP_SLEEP:
		fp_sleep(f->ms);
		return HS_OK;
	case FP_OFF:
		break;
	}
	return HS_OK;
}

int
hs_fp_hit_sys(const char *name)
{
	int rc = hs_fp_hit(name);

	if (rc == HS_OK)
		return 0;
	errno = -rc;
	return -1;
}
