/*
 * socket.c - the control socket (ctl.h): the daemon listens and answers,
 * `hamnsync status` asks.
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

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
	uint64_t deadline = hs_now_mono_ns() + CTL_READ_MS * HS_NS_PER_MS;
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
