/* daemon.c - pid file lock and detaching, shared by both daemons. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hs.h"

/*
 * The pid file a daemon that changed its role handed over (locked), for
 * the role it runs next in the same process: the lock is never let go.
 */
static int handed_fd = -1;
static char handed_dir[4096];

void
hs_pidfile_handover(int fd, const char *state_dir)
{
	if (handed_fd >= 0)
		close(handed_fd);
	handed_fd = fd;
	snprintf(handed_dir, sizeof(handed_dir), "%s", state_dir);
}

/* Lock state_dir/hamnsync.pid so two daemons never share a state_dir. */
int
hs_pidfile_lock(const char *state_dir, int *out)
{
	char path[4200], buf[32];
	int fd, n;

	if (handed_fd >= 0) {
		fd = handed_fd;
		handed_fd = -1;
		if (strcmp(handed_dir, state_dir) == 0) {
			*out = fd;
			return HS_OK;
		}
		close(fd); /* state_dir changed with the config: lock anew */
	}

	snprintf(path, sizeof(path), "%s/hamnsync.pid", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		hs_log_err("daemon: %s", path);
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		n = (int)pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		hs_log_errx("daemon: another daemon (pid %s) holds %s",
		            buf[0] ? buf : "?", path);
		close(fd);
		return -EBUSY;
	}
	*out = fd;
	return HS_OK;
}

void
hs_pidfile_write(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

#ifdef HS_FAILPOINTS
	hs_fp_daemon_pid(getpid()); /* detached: a crash kills this one */
#endif
	if (ftruncate(fd, 0) == 0)
		(void)!pwrite(fd, buf, (size_t)n, 0);
}

int
hs_detach(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	setsid();
	if ((pid = fork()) < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -errno;
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return HS_OK;
}

int
hs_daemon_pid(const char *state_dir)
{
	char path[4200], buf[32];
	int fd, n, pid = 0;

	snprintf(path, sizeof(path), "%s/hamnsync.pid", state_dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
		n = (int)pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		pid = atoi(buf);
		if (pid <= 0)
			pid = -1;
	}
	close(fd);
	return pid;
}

/* In the spawned process: its descriptors and signals, then the exec. */
static void __attribute__((noreturn))
spawn_exec(char *const *argv, const char *out)
{
	sigset_t none;
	int fd, i;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 1; i < NSIG; i++)
		signal(i, SIG_DFL);
	if ((fd = open("/dev/null", O_RDONLY)) >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	if ((fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600)) >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	/* The daemon's lock, sockets and index stay the daemon's. */
	for (i = 3; i < 4096; i++)
		close(i);
	execv("/proc/self/exe", argv);
	_exit(127);
}

int
hs_spawn_self(const char *conf_path, const char *const *args, const char *out)
{
	char *argv[8], abs[PATH_MAX];
	pid_t mid, pid = -1;
	size_t n = 0;
	int p[2], status;

	/* A daemon that detached runs in /: its config's path from there. */
	if (realpath(conf_path, abs) != NULL)
		conf_path = abs;
	argv[n++] = (char *)"hamnsync";
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)conf_path;
	while (*args != NULL && n < 7)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if ((mid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (mid == 0) {
		close(p[0]);
		setsid();
		if ((pid = fork()) == 0)
			spawn_exec(argv, out);
		(void)!write(p[1], &pid, sizeof(pid));
		_exit(pid < 0 ? 1 : 0);
	}
	close(p[1]);
	if (read(p[0], &pid, sizeof(pid)) != sizeof(pid))
		pid = -1;
	close(p[0]);
	while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
		;
	return pid > 0 ? pid : -ECHILD;
}
