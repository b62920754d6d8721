/*
 * apply_path.c - the applier's ground floor: (source, relative path)
 * found beneath the source's anchor without following symlinks, names for
 * temporaries, and the error lines a run reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply_int.h"

void
apply_error(struct apply *a, const char *path, const char *what, int rc)
{
	/* The peer's path, escaped: a newline in it would forge lines. */
	char safe[PROTO_PATH_MAX * 2 + 2], line[sizeof(safe) + 256];

	hs_escape(path, safe, sizeof(safe));
	if (rc != 0)
		snprintf(line, sizeof(line), "%s: %s: %s", safe, what,
		         hs_strerror(rc));
	else
		snprintf(line, sizeof(line), "%s: %s", safe, what);
	hs_log_warnx("apply: %s", line);
	if (a->n_errors == 0) {
		snprintf(a->first_path, sizeof(a->first_path), "%s", path);
		if (rc != 0)
			snprintf(a->first_why, sizeof(a->first_why), "%s: %s",
			         what, hs_strerror(rc));
		else
			snprintf(a->first_why, sizeof(a->first_why), "%s",
			         what);
	}
	if (a->n_errors < PROTO_ERRORS_MAX)
		a->errors[a->n_errors] = strdup(line);
	a->n_errors++;
}

const char *
apply_display(struct apply *a, uint16_t src, const char *rel)
{
	if (src >= a->n_src)
		snprintf(a->disp, sizeof(a->disp), "[source %u]/%s", src, rel);
	else if (rel[0] == '\0')
		snprintf(a->disp, sizeof(a->disp), "%s", a->src[src].abs);
	else
		snprintf(a->disp, sizeof(a->disp), "%s/%s", a->src[src].abs,
		         rel);
	return a->disp;
}

/*
 * Open the parent of (src, rel) confined, into *dirfd (owned by caller),
 * and put the final component in leaf.  Errors are recorded.
 */
int
apply_locate(struct apply *a, uint16_t src, const char *rel, int *dirfd,
             char leaf[PROTO_NAME_MAX + 1])
{
	char parent[PROTO_PATH_MAX * 2 + 2];
	const char *slash;
	int rc, fd;

	if (src >= a->n_src) {
		apply_error(a, apply_display(a, src, rel),
		            "no such source in set", HS_EPROTO);
		return HS_EPROTO;
	}
	if ((rc = fs_relpath_check(rel)) < 0) {
		apply_error(a, apply_display(a, src, rel), "path rejected", rc);
		return rc;
	}
	if (rel[0] == '\0') {
		fd = openat(a->src[src].anchorfd, ".",
		            O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		snprintf(leaf, PROTO_NAME_MAX + 1, "%s", a->src[src].leaf);
		*dirfd = fd;
		return HS_OK;
	}
	slash = strrchr(rel, '/');
	if (slash == NULL)
		snprintf(parent, sizeof(parent), "%s", a->src[src].leaf);
	else
		snprintf(parent, sizeof(parent), "%s/%.*s", a->src[src].leaf,
		         (int)(slash - rel), rel);
	snprintf(leaf, PROTO_NAME_MAX + 1, "%s", slash ? slash + 1 : rel);
	fd = fs_open_dir_beneath(a->src[src].anchorfd, parent);
	if (fd < 0) {
		apply_error(a, apply_display(a, src, rel),
		            fd == HS_ECONFINE
		                ? "path through a symlink rejected"
		                : "cannot open parent directory",
		            fd == HS_ECONFINE ? 0 : fd);
		return fd;
	}
	*dirfd = fd;
	return HS_OK;
}

int
apply_tmp_name(char out[TMP_NAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[8];
	size_t i, p = sizeof(FS_TMP_PREFIX) - 1;

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		return -errno;
	memcpy(out, FS_TMP_PREFIX, p);
	for (i = 0; i < sizeof(r); i++) {
		out[p++] = hex[r[i] >> 4];
		out[p++] = hex[r[i] & 15];
	}
	out[p] = '\0';
	return HS_OK;
}

/* Open an existing entry to change its metadata; refuses symlinks. */
int
apply_open_nofollow(int dirfd, const char *leaf, uint8_t type)
{
	int fd = openat(dirfd, leaf,
	                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
	                    (type == PROTO_E_DIR ? O_DIRECTORY : 0));
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 ||
	    (type == PROTO_E_FILE && !S_ISREG(st.st_mode))) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}
