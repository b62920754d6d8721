/*
 * run.c - the configured commands of a failover step (stop, regenerate,
 * start, takeover_command, release_command).
 *
 * Each runs through /bin/sh in a process group of its own, so that a
 * timeout kills what it started too.  Its output is read line by line
 * into the log while it runs; a command that exits leaves its children
 * alone (`start` may well start a daemon), only a timeout kills them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fo_int.h"

/* Output lines longer than this are logged cut. */
#define RUN_LINE_MAX 512

struct run_out {
	const char *step;
	const char *cmd;
	char line[RUN_LINE_MAX];
	size_t len;
	char last[RUN_LINE_MAX]; /* the last line that was not empty */
};

static void
out_line(struct run_out *o)
{
	char esc[RUN_LINE_MAX * 4];

	o->line[o->len] = '\0';
	o->len = 0;
	if (o->line[0] == '\0')
		return;
	hs_escape(o->line, esc, sizeof(esc));
	hs_log_info("%s: %s: %s", o->step, o->cmd, esc);
	/* The escape of a long line is cut to the room of the last one. */
	hs_escape(o->line, o->last, sizeof(o->last));
}

static void
out_feed(struct run_out *o, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' || o->len == sizeof(o->line) - 1)
			out_line(o);
		if (p[i] != '\n')
			o->line[o->len++] = p[i];
	}
}

static void
set_env(const char *name, const char *v)
{
	setenv(name, v != NULL ? v : "", 1);
}

static void __attribute__((noreturn))
child(const struct hs_conf *conf, const char *step, const char *cmd,
      uint64_t epoch, enum hs_role role, int outfd)
{
	char num[32];
	int nul;

	setpgid(0, 0);
	if ((nul = open("/dev/null", O_RDONLY)) >= 0)
		dup2(nul, 0);
	dup2(outfd, 1);
	dup2(outfd, 2);
	set_env("HAMNSYNC_STEP", step);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)epoch);
	set_env("HAMNSYNC_EPOCH", num);
	set_env("HAMNSYNC_ROLE", hs_role_name(role));
	set_env("HAMNSYNC_HOSTNAME", conf->failover.hostname);
	set_env("HAMNSYNC_SERVICE_ADDRESS", conf->failover.service_address);
	set_env("HAMNSYNC_INTERFACE", conf->failover.interface);
	signal(SIGPIPE, SIG_DFL);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	dprintf(outfd, "/bin/sh: %s\n", strerror(errno));
	_exit(127);
}

/*
 * Read the output until the command exits or the deadline passes.  The
 * pipe may stay open past the exit (a daemon it started holds it): the
 * exit ends the wait, not the end of the output.
 */
static int
watch(pid_t pid, int fd, uint64_t deadline, struct run_out *o, int *status)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	char buf[4096];
	ssize_t n;

	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);

		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (hs_now_mono_ns() >= deadline)
			return HS_ETIMEOUT;
		if (pfd.fd >= 0 && poll(&pfd, 1, 50) > 0) {
			n = read(fd, buf, sizeof(buf));
			if (n > 0)
				out_feed(o, buf, (size_t)n);
			else if (n == 0)
				pfd.fd = -1;
		} else if (pfd.fd < 0)
			usleep(20000);
	}
	/* What it wrote before it exited. */
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		out_feed(o, buf, (size_t)n);
	out_line(o);
	return HS_OK;
}

static int
run_one(const struct hs_conf *conf, const char *step, const char *cmd,
        uint64_t epoch, enum hs_role role, char *why, size_t whylen)
{
	struct run_out o;
	uint64_t t = fo_step_timeout(conf);
	int p[2], status = 0, rc;
	pid_t pid;

	memset(&o, 0, sizeof(o));
	o.step = step;
	o.cmd = cmd;
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: cannot start: %s", cmd,
		         strerror(-rc));
		return rc;
	}
	if ((pid = fork()) < 0) {
		rc = -errno;
		close(p[0]);
		close(p[1]);
		snprintf(why, whylen, "%s: cannot start: %s", cmd,
		         strerror(-rc));
		return rc;
	}
	if (pid == 0)
		child(conf, step, cmd, epoch, role, p[1]);
	close(p[1]);
	/* Both sides: the group exists before any kill can name it. */
	setpgid(pid, pid);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	rc =
	    watch(pid, p[0], hs_now_mono_ns() + t * 1000000000ull, &o, &status);
	close(p[0]);
	if (rc == HS_ETIMEOUT) {
		kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		snprintf(why, whylen, "%s: timed out after %llu s, killed", cmd,
		         (unsigned long long)t);
		return rc;
	}
	if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "%s: killed by signal %d%s%s", cmd,
		         WTERMSIG(status), o.last[0] ? ": " : "", o.last);
		return -EINTR;
	}
	if (WEXITSTATUS(status) != 0) {
		snprintf(why, whylen, "%s: exit %d%s%s", cmd,
		         WEXITSTATUS(status), o.last[0] ? ": " : "", o.last);
		return -EIO;
	}
	return HS_OK;
}

int
fo_run_cmds(const struct hs_conf *conf, const char *step,
            const struct hs_strlist *cmds, uint64_t epoch, enum hs_role role,
            char *why, size_t whylen)
{
	int rc;

	for (size_t i = 0; i < cmds->n; i++) {
		hs_log_info("%s: running %s", step, cmds->v[i]);
		rc = run_one(conf, step, cmds->v[i], epoch, role, why, whylen);
		if (rc < 0)
			return rc;
	}
	return HS_OK;
}
