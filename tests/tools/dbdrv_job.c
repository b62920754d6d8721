/*
 * dbdrv_job.c - a stand-in for dbrepl/job.c's command runner (dbr_run,
 * dbr_argv, dbr_fail), linked into hs-dbdrv only until the real one is
 * in dbrepl/.  Same contract as dbrepl_int.h; no timeout (the tool runs
 * one operation in the foreground).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbrepl_int.h"

int
dbr_fail(struct dbr_result *res, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
	res->rc = rc;
	return rc;
}

int
dbr_argv(const struct dbr_db *d, char *const argv[], char **out, size_t max)
{
	static char words[1024];
	size_t n = 0;
	char *w, *save;

	words[0] = '\0';
	if (d->db->command_prefix != NULL)
		snprintf(words, sizeof(words), "%s", d->db->command_prefix);
	for (w = strtok_r(words, " \t", &save); w != NULL;
	     w = strtok_r(NULL, " \t", &save)) {
		if (n + 1 >= max)
			return HS_ELIMIT;
		out[n++] = w;
	}
	for (; *argv != NULL; argv++) {
		if (n + 1 >= max)
			return HS_ELIMIT;
		out[n++] = *argv;
	}
	out[n] = NULL;
	return (int)n;
}

static void
child(char *const argv[], const char *in, const char *out, int capfd,
      int errfd)
{
	int fd;

	fd = open(in != NULL ? in : "/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, 0) < 0)
		_exit(126);
	if (capfd >= 0)
		fd = capfd;
	else if (out != NULL)
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	else
		fd = open("/dev/null", O_WRONLY);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(errfd, 2) < 0)
		_exit(126);
	execvp(argv[0], argv);
	fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Keep the last non-blank line of stderr in `last`; echo all of it. */
static void
take_err(char *buf, size_t n, char *last, size_t lastlen, char *line,
         size_t *linelen)
{
	size_t i;

	fwrite(buf, 1, n, stderr);
	for (i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (*linelen + 1 < lastlen)
				line[(*linelen)++] = buf[i];
			continue;
		}
		line[*linelen] = '\0';
		if (line[strspn(line, " \t")] != '\0')
			snprintf(last, lastlen, "%s", line);
		*linelen = 0;
	}
}

int
dbr_run(char *const argv[], const char *in, const char *out, char *cap,
        size_t caplen, struct dbr_result *res)
{
	int cp[2] = {-1, -1}, ep[2], st, open_fds;
	char buf[4096], last[512] = "", line[512];
	size_t caplen_used = 0, linelen = 0;
	struct pollfd pfd[2];
	ssize_t r;
	pid_t pid;

	if (pipe2(ep, O_CLOEXEC) < 0 || (cap != NULL && pipe2(cp, O_CLOEXEC) < 0))
		return dbr_fail(res, -errno, "%s: pipe: %s", argv[0],
		                strerror(errno));
	if ((pid = fork()) < 0)
		return dbr_fail(res, -errno, "%s: fork: %s", argv[0],
		                strerror(errno));
	if (pid == 0)
		child(argv, in, out, cp[1], ep[1]);
	close(ep[1]);
	if (cp[1] >= 0)
		close(cp[1]);
	pfd[0] = (struct pollfd){.fd = ep[0], .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = cp[0], .events = POLLIN};
	open_fds = cap != NULL ? 2 : 1;
	while (open_fds > 0) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents) {
			r = read(ep[0], buf, sizeof(buf));
			if (r > 0)
				take_err(buf, (size_t)r, last, sizeof(last),
				         line, &linelen);
			else {
				pfd[0].fd = -1;
				open_fds--;
			}
		}
		if (pfd[1].revents) {
			r = read(cp[0], buf, sizeof(buf));
			if (r > 0) {
				size_t k = (size_t)r;
				if (k > caplen - 1 - caplen_used)
					k = caplen - 1 - caplen_used;
				memcpy(cap + caplen_used, buf, k);
				caplen_used += k;
			} else {
				pfd[1].fd = -1;
				open_fds--;
			}
		}
	}
	close(ep[0]);
	if (cp[0] >= 0)
		close(cp[0]);
	if (cap != NULL)
		cap[caplen_used] = '\0';
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		res->rc = HS_OK;
		return HS_OK;
	}
	if (WIFSIGNALED(st))
		return dbr_fail(res, -EIO, "%s: killed by signal %d%s%s",
		                argv[0], WTERMSIG(st), *last ? ": " : "", last);
	return dbr_fail(res, -EIO, "%s: exit %d%s%s", argv[0],
	                WEXITSTATUS(st), *last ? ": " : "", last);
}
