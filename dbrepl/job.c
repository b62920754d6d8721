/*
 * job.c - the children that run the drivers' operations, and the commands
 * those run.
 *
 * A job child is forked from the daemon, puts itself in a process group of
 * its own (so a timeout kills the pg_dump it started, and its children,
 * with one kill(-pgid)), runs one blocking operation and writes one
 * struct dbr_result to a pipe before it exits.  The daemon never waits on
 * it: dbr_job_poll looks at it with WNOHANG and reaps only that pid, since
 * the standby daemon reaps its own session children elsewhere.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "dbrepl_int.h"

#define JOB_WAIT_STEP_MS 10
/* Bytes of a command's stderr line kept and logged; longer ones are cut. */
#define RUN_LINE_MAX 400

int
dbr_fail(struct dbr_result *res, int rc, const char *fmt, ...)
{
	va_list ap;

	res->rc = rc;
	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
	return rc;
}

/*
 * What every child of the daemon does first: default signal dispositions
 * and an empty mask (the daemon blocks signals for its signalfd, and a
 * pg_dump must still die of SIGTERM), and no inherited descriptor but
 * `keep` and 0-2 (a child holding the daemon's sockets would keep a
 * closed peer connection alive).
 */
static void
job_child_reset(int keep)
{
	sigset_t none;
	int s;

	for (s = 1; s < NSIG; s++) {
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Its socket would be closed under it below. */
	closelog();
	if (keep < 0)
		return; /* the caller closes them once it has its own */
	if (keep < 3) {
		close_range(3, ~0U, 0);
	} else {
		if (keep > 3)
			close_range(3, (unsigned)keep - 1, 0);
		close_range((unsigned)keep + 1, ~0U, 0);
	}
}

static void
job_run_op(const struct dbr_db *d, enum dbr_op op, const char *dir, int force,
           struct dbr_result *res)
{
	const struct dbr_driver *drv = d->drv;

	switch (op) {
	case DBR_OP_MARK:
		drv->mark(d, res);
		return;
	case DBR_OP_DUMP:
		drv->dump(d, dir, res);
		return;
	case DBR_OP_RESTORE:
		drv->restore(d, dir, res);
		return;
	case DBR_OP_HADR:
		drv->hadr(d, res);
		return;
	case DBR_OP_TAKEOVER:
		drv->takeover(d, force, res);
		return;
	case DBR_OP_ACCEPT:
		return;
	}
}

static const char *
job_op_name(enum dbr_op op)
{
	switch (op) {
	case DBR_OP_MARK:
		return "change probe";
	case DBR_OP_DUMP:
		return "dump";
	case DBR_OP_RESTORE:
		return "restore";
	case DBR_OP_HADR:
		return "HADR probe";
	case DBR_OP_TAKEOVER:
		return "takeover";
	case DBR_OP_ACCEPT:
		return "snapshot check";
	}
	return "job";
}

struct job_op_arg {
	const struct dbr_db *d;
	enum dbr_op op;
	const char *dir;
	int force;
};

/* Has d's driver the operation `op`? */
static int
job_has_op(const struct dbr_driver *drv, enum dbr_op op)
{
	switch (op) {
	case DBR_OP_MARK:
		return drv->mark != NULL;
	case DBR_OP_DUMP:
		return drv->dump != NULL;
	case DBR_OP_RESTORE:
		return drv->restore != NULL;
	case DBR_OP_HADR:
		return drv->hadr != NULL;
	case DBR_OP_TAKEOVER:
		return drv->takeover != NULL;
	case DBR_OP_ACCEPT:
		return 0;
	}
	return 0;
}

static void
job_op_fn(void *arg, struct dbr_result *res)
{
	const struct job_op_arg *a = arg;

	if (a->d->drv == NULL || !job_has_op(a->d->drv, a->op)) {
		dbr_fail(res, -ENOSYS, "the %s driver has no %s",
		         dbr_type_name(a->d->db->type), job_op_name(a->op));
		return;
	}
	job_run_op(a->d, a->op, a->dir, a->force, res);
}

int
dbr_job_start_fn(struct dbr_job *j, const struct dbr_db *d, enum dbr_op op,
                 void (*fn)(void *arg, struct dbr_result *res), void *arg)
{
	struct dbr_result res;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if ((pid = fork()) < 0) {
		int err = -errno;

		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid == 0) {
		setpgid(0, 0);
		close(p[0]);
		job_child_reset(p[1]);
		memset(&res, 0, sizeof(res));
		res.hadr_log_gap = -1;
		fn(arg, &res);
		/* One write below PIPE_BUF: the parent reads it whole. */
		_exit(hs_write_all(p[1], &res, sizeof(res)) < 0 ? 3 : 0);
	}
	/* Both sides set the group, so a kill right after fork reaches it. */
	setpgid(pid, pid);
	close(p[1]);
	fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
	memset(j, 0, sizeof(*j));
	j->pid = pid;
	j->op = op;
	j->fd = p[0];
	j->timeout_s = d->db->timeout;
	j->deadline_ns = hs_now_mono_ns() + d->db->timeout * 1000000000ULL;
	return HS_OK;
}

_Static_assert(sizeof(struct dbr_result) < PIPE_BUF,
               "a result is written in one atomic write");

int
dbr_job_start(struct dbr_job *j, const struct dbr_db *d, enum dbr_op op,
              const char *dir, int force)
{
	/* The child gets a copy of this frame: it lives as long as it needs. */
	struct job_op_arg a = {d, op, dir, force};

	return dbr_job_start_fn(j, d, op, job_op_fn, &a);
}

/* Read the result the child wrote; 0 when it wrote none (or a part). */
static int
job_read_result(struct dbr_job *j)
{
	ssize_t n;

	do
		n = read(j->fd, &j->res, sizeof(j->res));
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(j->res);
}

static void
job_close(struct dbr_job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	j->pid = 0;
}

/* The child ended with `status`; fill res from its pipe or say why not. */
static void
job_finish(struct dbr_job *j, int status)
{
	const char *op = job_op_name(j->op);
	int got = job_read_result(j);

	j->res.why[sizeof(j->res.why) - 1] = '\0';
	if (WIFSIGNALED(status)) {
		memset(&j->res, 0, sizeof(j->res));
		dbr_fail(&j->res, -EINTR, "%s child killed by signal %d (%s)",
		         op, WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else if (!got) {
		memset(&j->res, 0, sizeof(j->res));
		dbr_fail(&j->res, -EPIPE,
		         "%s child exited with status %d without a result", op,
		         WEXITSTATUS(status));
	} else if (j->res.rc < 0 && j->res.why[0] == '\0') {
		dbr_fail(&j->res, j->res.rc, "%s failed: %s", op,
		         hs_strerror(j->res.rc));
	}
	if (got && j->res.rc >= 0)
		j->res.rc = HS_OK;
	job_close(j);
}

/* Past the deadline: kill the whole group, reap the child, say so. */
static void
job_timeout(struct dbr_job *j)
{
	kill(-j->pid, SIGKILL);
	kill(j->pid, SIGKILL);
	while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
		;
	memset(&j->res, 0, sizeof(j->res));
	dbr_fail(&j->res, HS_ETIMEOUT, "%s timed out after %llu s, killed",
	         job_op_name(j->op), (unsigned long long)j->timeout_s);
	job_close(j);
}

int
dbr_job_poll(struct dbr_job *j)
{
	siginfo_t si;
	int status;

	if (j->pid <= 0)
		return 1;
	/*
	 * WNOWAIT keeps the child a zombie while we kill what it left in
	 * its group, so that group id cannot have been reused yet.
	 */
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		memset(&j->res, 0, sizeof(j->res));
		dbr_fail(&j->res, -errno, "%s child lost: %s",
		         job_op_name(j->op), strerror(errno));
		job_close(j);
		return 1;
	}
	if (si.si_pid == 0) {
		if (hs_now_mono_ns() < j->deadline_ns)
			return 0;
		job_timeout(j);
		return 1;
	}
	kill(-j->pid, SIGKILL);
	while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR)
		;
	job_finish(j, status);
	return 1;
}

void
dbr_job_wait(struct dbr_job *j)
{
	struct timespec ts = {0, JOB_WAIT_STEP_MS * 1000000L};

	while (dbr_job_poll(j) == 0)
		nanosleep(&ts, NULL);
}

void
dbr_job_kill(struct dbr_job *j)
{
	if (j->pid <= 0)
		return;
	kill(-j->pid, SIGKILL);
	kill(j->pid, SIGKILL);
	while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
		;
	job_close(j);
}

/* ---- dbr_run: one command ------------------------------------------------ */

int
dbr_argv(const struct dbr_db *d, char *const argv[], char **out, size_t max)
{
	const char *p = d->db->command_prefix;
	size_t n = 0, words, len, i;
	int rc = HS_ELIMIT;

	while (p != NULL && *p != '\0') {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		len = strcspn(p, " \t");
		if (n + 1 >= max)
			goto fail;
		/* Lives until the job child exits. */
		if ((out[n] = strndup(p, len)) == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		n++;
		p += len;
	}
	words = n;
	for (i = 0; argv[i] != NULL; i++) {
		if (n + 1 >= max) {
			n = words;
			goto fail;
		}
		out[n++] = argv[i];
	}
	out[n] = NULL;
	return (int)n;
fail:
	while (n > 0)
		free(out[--n]);
	return rc;
}

/* Open `path` for the child's fd `target`, or /dev/null; _exit on error. */
static void
run_redirect(const char *path, int flags, int target, int errfd)
{
	int fd;

	fd = open(path != NULL ? path : "/dev/null", flags | O_CLOEXEC, 0600);
	if (fd < 0) {
		dprintf(errfd, "cannot open %s: %s\n", path, strerror(errno));
		_exit(126);
	}
	if (dup2(fd, target) < 0)
		_exit(126);
	close(fd);
}

static void
run_child(char *const argv[], const char *in, const char *out, int outfd,
          int errfd)
{
	job_child_reset(-1);
	if (dup2(errfd, 2) < 0)
		_exit(126);
	run_redirect(in, O_RDONLY, 0, 2);
	if (outfd >= 0) {
		if (dup2(outfd, 1) < 0)
			_exit(126);
	} else
		run_redirect(out, O_WRONLY | O_CREAT | O_TRUNC, 1, 2);
	close_range(3, ~0U, 0);
	execvp(argv[0], argv);
	dprintf(2, "cannot run: %s\n", strerror(errno));
	_exit(127);
}

/* What we keep of a command's stderr while it runs. */
struct run_err {
	const char *cmd;
	char part[RUN_LINE_MAX]; /* the line being read */
	size_t len;
	/*
	 * The last line that does not start with a blank: clients indent
	 * their hints ("\tIs the server running ..."), and the reason is
	 * the line above them.  An indented line counts only when no other
	 * came first.
	 */
	char last[RUN_LINE_MAX];
};

static void
run_err_line(struct run_err *e)
{
	e->part[e->len] = '\0';
	if (e->len > 0) {
		hs_log_warnx("dbrepl: %s: %s", e->cmd, e->part);
		if (!isblank((unsigned char)e->part[0]) || e->last[0] == '\0')
			memcpy(e->last, e->part, e->len + 1);
	}
	e->len = 0;
}

static void
run_err_feed(struct run_err *e, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n') {
			run_err_line(e);
			continue;
		}
		/* The rest of a long line is dropped. */
		if (e->len + 1 < sizeof(e->part))
			e->part[e->len++] = p[i] == '\r' ? ' ' : p[i];
	}
}

/* Read stdout (to cap) and stderr (to the log) until both close. */
static void
run_drain(int outfd, int errfd, char *cap, size_t caplen, struct run_err *e)
{
	struct pollfd pf[2];
	size_t caplenused = 0;
	char buf[4096];
	ssize_t n;

	pf[0].fd = outfd;
	pf[1].fd = errfd;
	pf[0].events = pf[1].events = POLLIN;
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].fd >= 0 && pf[0].revents != 0) {
			n = read(pf[0].fd, buf, sizeof(buf));
			if (n <= 0 && !(n < 0 && errno == EINTR)) {
				pf[0].fd = -1;
			} else if (n > 0 && caplenused + 1 < caplen) {
				size_t take = (size_t)n;

				if (take > caplen - 1 - caplenused)
					take = caplen - 1 - caplenused;
				memcpy(cap + caplenused, buf, take);
				caplenused += take;
			}
		}
		if (pf[1].fd >= 0 && pf[1].revents != 0) {
			n = read(pf[1].fd, buf, sizeof(buf));
			if (n <= 0 && !(n < 0 && errno == EINTR))
				pf[1].fd = -1;
			else if (n > 0)
				run_err_feed(e, buf, (size_t)n);
		}
	}
	if (cap != NULL && caplen > 0)
		cap[caplenused] = '\0';
	run_err_line(e);
}

static const char *
run_base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

int
dbr_run(char *const argv[], const char *in, const char *out, char *cap,
        size_t caplen, struct dbr_result *res)
{
	struct run_err e;
	int op[2] = {-1, -1}, ep[2] = {-1, -1}, status, err;
	pid_t pid;

	memset(&e, 0, sizeof(e));
	e.cmd = run_base(argv[0]);
	if (pipe2(ep, O_CLOEXEC) < 0 ||
	    (cap != NULL && pipe2(op, O_CLOEXEC) < 0)) {
		err = -errno;
		goto fail;
	}
	if ((pid = fork()) < 0) {
		err = -errno;
		goto fail;
	}
	if (pid == 0)
		run_child(argv, in, out, op[1], ep[1]);
	close(ep[1]);
	ep[1] = -1;
	if (op[1] >= 0)
		close(op[1]);
	op[1] = -1;
	run_drain(op[0], ep[0], cap, caplen, &e);
	close(ep[0]);
	if (op[0] >= 0)
		close(op[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return dbr_fail(res, -errno, "%s: lost: %s", e.cmd,
			                strerror(errno));
	}
	if (WIFSIGNALED(status))
		return dbr_fail(res, -EINTR, "%s: killed by signal %d%s%s",
		                e.cmd, WTERMSIG(status), e.last[0] ? ": " : "",
		                e.last);
	if (WEXITSTATUS(status) != 0)
		return dbr_fail(res, -EIO, "%s: exit %d%s%s", e.cmd,
		                WEXITSTATUS(status), e.last[0] ? ": " : "",
		                e.last);
	return HS_OK;
fail:
	for (int i = 0; i < 2; i++) {
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	return dbr_fail(res, err, "%s: cannot start: %s", e.cmd,
	                strerror(-err));
}

int
dbr_dbname_check(const struct dbr_db *d, const char *name, size_t max,
                 struct dbr_result *res)
{
	const char *s;

	for (s = name; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_')
			return dbr_fail(res, HS_ECONFIG,
			                "database %s: dbname '%s' holds '%c': "
			                "only letters, digits and '_' can be "
			                "restored",
			                d->db->name, name, *s);
	}
	if (*name == '\0' || strlen(name) > max)
		return dbr_fail(res, HS_ECONFIG,
		                "database %s: dbname '%s' must be 1 to %zu "
		                "characters long",
		                d->db->name, name, max);
	return HS_OK;
}
