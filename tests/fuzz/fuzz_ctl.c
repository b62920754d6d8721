/*
 * fuzz_ctl.c - the control protocol's request parsing (ctl/socket.c,
 * ctl_serve): the bytes a local client writes to the control socket,
 * read, parsed ("HAMNSYNC-CTL/1 <verb>\n") and answered by the real
 * ctl_serve on a listening socket in the abstract namespace (nothing on
 * disk).
 *
 * Input: u8 n | bytes: the bytes are cut among 1 + n % 3 clients that
 * connect together, each of which writes its part and shuts its side
 * down (a silent client costs CTL_READ_MS per run, and is no different).
 * Each must get exactly one line of JSON: the answer, or an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "fuzz.h"

#define CLIENTS_MAX 3

static int lfd = -1;
static struct sockaddr_un sa;
static socklen_t sa_len;

static json_t *
answer(void *arg, const char *verb)
{
	(void)arg;
	fz_str(verb, 63);
	if (strcmp(verb, "status") == 0)
		return json_pack("{s:s}", "role", "standby");
	if (strcmp(verb, "promote") == 0)
		return json_pack("{s:b}", "promoted", 0);
	return NULL;
}

static void
listen_once(void)
{
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	/* Abstract: sun_path[0] is NUL; the name is ours by the pid. */
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
	         "hamnsync-fuzz-ctl-%d", (int)getpid());
	sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	                     strlen(sa.sun_path + 1));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sa_len) < 0 ||
	    listen(lfd, 16) < 0)
		abort();
}

/*
 * The whole reply of one client: one line, a JSON object.  A client that
 * wrote more than the server read (past CTL_REQ_MAX) sees its connection
 * reset after the reply, as unread data is dropped at the close.
 */
static void
check_reply(int fd)
{
	char buf[4096];
	size_t len = 0;
	ssize_t r;
	json_t *j;

	while ((r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	FZ_CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
	FZ_CHECK(len > 0 && buf[len - 1] == '\n');
	buf[len - 1] = '\0';
	FZ_CHECK(strchr(buf, '\n') == NULL);
	j = json_loads(buf, 0, NULL);
	FZ_CHECK(j != NULL && json_is_object(j));
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[CLIENTS_MAX];
	size_t n, i, part, off;

	if (lfd < 0)
		listen_once();
	if (size < 1)
		return 0;
	n = 1 + data[0] % CLIENTS_MAX;
	data++;
	size--;
	part = size / n;
	for (i = 0, off = 0; i < n; i++) {
		size_t len = i + 1 == n ? size - off : part;

		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 ||
		    connect(fds[i], (struct sockaddr *)&sa, sa_len) < 0)
			abort();
		/* The socket buffer takes a request of any size we make. */
		if (len > 0 && write(fds[i], data + off, len) != (ssize_t)len)
			abort();
		shutdown(fds[i], SHUT_WR);
		off += len;
	}
	ctl_serve(lfd, NULL, answer, NULL);
	for (i = 0; i < n; i++) {
		check_reply(fds[i]);
		close(fds[i]);
	}
	return 0;
}
