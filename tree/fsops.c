/*
 * fsops.c - confined filesystem primitives for the standby.  Every call is
 * relative to a directory fd and follows no symlink in any component.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tree.h"

int
fs_relpath_check(const char *rel)
{
	size_t total = 0, comp = 0, depth = 0;
	const char *p;

	if (rel[0] == '\0')
		return HS_OK;
	if (rel[0] == '/')
		return HS_ECONFINE;
	for (p = rel;; p++) {
		if (*p == '/' || *p == '\0') {
			const char *start = p - comp;

			if (comp == 0)
				return HS_ECONFINE; /* "//" or trailing '/' */
			if ((comp == 1 && start[0] == '.') ||
			    (comp == 2 && start[0] == '.' && start[1] == '.'))
				return HS_ECONFINE;
			if (comp > PROTO_NAME_MAX || ++depth > PROTO_DEPTH_MAX)
				return HS_ELIMIT;
			comp = 0;
			if (*p == '\0')
				break;
		} else
			comp++;
		if (++total > PROTO_PATH_MAX)
			return HS_ELIMIT;
	}
	return HS_OK;
}

static int
openat2_dir(int dirfd, const char *rel)
{
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
	how.resolve =
	    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd >= 0)
		return (int)fd;
	return -errno;
}

/* Component by component, O_NOFOLLOW each: for kernels before 5.6. */
static int
walk_dir(int dirfd, const char *rel, int create, mode_t mode)
{
	char comp[PROTO_NAME_MAX + 1];
	const char *p = rel;
	int fd, rc;

	if ((fd = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	while (*p != '\0') {
		size_t n = strcspn(p, "/");
		int next;

		if (n == 0 || n > PROTO_NAME_MAX) {
			close(fd);
			return HS_ECONFINE;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (strcmp(comp, "..") == 0 || strcmp(comp, ".") == 0) {
			close(fd);
			return HS_ECONFINE;
		}
		if (create && mkdirat(fd, comp, mode) < 0 && errno != EEXIST) {
			rc = -errno;
			close(fd);
			return rc;
		}
		next = openat(fd, comp,
		              O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		rc = -errno;
		if (next < 0 && (rc == -ENOTDIR || rc == -ELOOP)) {
			struct stat st;

			/* O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR. */
			if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				rc = HS_ECONFINE;
		}
		close(fd);
		if (next < 0)
			return rc;
		fd = next;
		p += n;
		if (*p == '/')
			p++;
	}
	return fd;
}

int
fs_open_dir_beneath(int dirfd, const char *rel)
{
	int fd;

	if (rel[0] == '\0')
		rel = ".";
	fd = openat2_dir(dirfd, rel);
	/* No openat2 (old kernel, or a seccomp filter that says EPERM). */
	if (fd == -ENOSYS || fd == -EPERM)
		return walk_dir(dirfd, strcmp(rel, ".") == 0 ? "" : rel, 0, 0);
	/* ELOOP: a symlink on the way; EXDEV: the path would escape. */
	if (fd == -ELOOP || fd == -EXDEV)
		return HS_ECONFINE;
	return fd;
}

int
fs_mkdir_beneath(int dirfd, const char *rel, mode_t mode)
{
	int fd = fs_open_dir_beneath(dirfd, rel);

	if (fd != -ENOENT)
		return fd;
	return walk_dir(dirfd, rel, 1, mode);
}

static int
clean_dir(int dfd, size_t depth, int recursive, size_t *removed)
{
	DIR *d;
	struct dirent *de;
	int rc = HS_OK;

	if (depth > PROTO_DEPTH_MAX)
		return HS_ELIMIT;
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		int sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, FS_TMP_PREFIX,
		            sizeof(FS_TMP_PREFIX) - 1) == 0) {
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				(*removed)++;
			else
				hs_log_warn("fs: cannot remove leftover %s",
				            de->d_name);
			continue;
		}
		if (!recursive ||
		    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		sub = openat(dirfd(d), de->d_name,
		             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue; /* not a directory, or a symlink */
		if ((rc = clean_dir(sub, depth + 1, recursive, removed)) < 0)
			break;
	}
	closedir(d);
	return rc;
}

int
fs_clean_tmp(int dirfd, const char *rel, int recursive, size_t *removed)
{
	int pfd, dfd;

	pfd = fs_open_dir_beneath(dirfd, rel);
	if (pfd == -ENOENT || pfd == -ENOTDIR)
		return HS_OK;
	if (pfd < 0)
		return pfd;
	dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(pfd);
	if (dfd < 0)
		return -errno;
	return clean_dir(dfd, 0, recursive, removed);
}
