/*
 * xattr.c - extended attributes, which carry POSIX ACLs
 * (system.posix_acl_*) and file capabilities (security.capability) too.
 * They are copied as raw values, like owners, by number.
 *
 * An entry named relative to a directory fd is read with listxattrat and
 * getxattrat (Linux 6.13; glibc 2.36 has no wrappers, hence syscall()):
 * the directory is the confined fd, and the final name is not followed.
 * On older kernels, and for writes, it is reached as /proc/self/fd/N/NAME
 * with the l*xattr calls, which costs a path walk through /proc per entry
 * (a third of a listing's time on 100,000 files).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tree.h"

/* Linux limits: XATTR_LIST_MAX and XATTR_SIZE_MAX. */
#define XA_LIST_MAX 65536
#define XA_VALUE_MAX 65536

/* The generic syscall table's numbers (Linux 6.13), for older headers. */
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif

/* getxattrat's argument block (include/uapi/linux/xattr.h). */
struct xa_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

/*
 * 1 once a kernel without the *xattrat calls answered ENOSYS (or the
 * environment says HAMNSYNC_NO_XATTRAT), -1 once known present, 0 unknown.
 */
static int xattrat_missing_v;
/* Read and set from any thread that lists (relaxed: a hint, set once). */
#define XATTRAT_MISSING() __atomic_load_n(&xattrat_missing_v, __ATOMIC_RELAXED)
#define XATTRAT_SET(v)                                                         \
	__atomic_store_n(&xattrat_missing_v, (v), __ATOMIC_RELAXED)

/*
 * Access to the entry: by fd, by name in directory dirfd (the *xattrat
 * calls), or by path ("/proc/self/fd/N/NAME") for the l*xattr calls.
 */
struct xa_target {
	int fd;
	const char *path;
	int dirfd;
	const char *name;
};

static ssize_t
xa_list(const struct xa_target *t, char *buf, size_t len)
{
	if (t->name != NULL && XATTRAT_MISSING() <= 0) {
		long r = syscall(SYS_listxattrat, t->dirfd, t->name,
		                 AT_SYMLINK_NOFOLLOW, buf, len);

		if (r < 0 && errno == ENOSYS)
			XATTRAT_SET(1); /* xa_read_at goes by path */
		return (ssize_t)r;
	}
	return t->path ? llistxattr(t->path, buf, len)
	               : flistxattr(t->fd, buf, len);
}

static ssize_t
xa_get(const struct xa_target *t, const char *name, void *buf, size_t len)
{
	if (t->name != NULL && XATTRAT_MISSING() <= 0) {
		struct xa_args args = {(uint64_t)(uintptr_t)buf, (uint32_t)len,
		                       0};
		long r =
		    syscall(SYS_getxattrat, t->dirfd, t->name,
		            AT_SYMLINK_NOFOLLOW, name, &args, sizeof(args));

		return (ssize_t)r;
	}
	return t->path ? lgetxattr(t->path, name, buf, len)
	               : fgetxattr(t->fd, name, buf, len);
}

static int
xa_set(const struct xa_target *t, const char *name, const void *v, size_t len)
{
	return t->path ? lsetxattr(t->path, name, v, len, 0)
	               : fsetxattr(t->fd, name, v, len, 0);
}

static int
xa_remove(const struct xa_target *t, const char *name)
{
	return t->path ? lremovexattr(t->path, name)
	               : fremovexattr(t->fd, name);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The names of t's attributes, sorted: *names (caller frees) points into
 * `list` (XA_LIST_MAX bytes).  Sized by what the list holds, so an entry
 * with one ACL costs a few bytes here, not a table for the worst case.
 */
static int
xa_names(const struct xa_target *t, char *list, char ***names, size_t *n)
{
	ssize_t len = xa_list(t, list, XA_LIST_MAX);
	size_t cnt = 0;
	char *p;

	*n = 0;
	*names = NULL;
	if (len < 0)
		return (errno == ENOTSUP || errno == ENOENT) ? HS_OK : -errno;
	for (p = list; p < list + len; p += strlen(p) + 1)
		cnt += *p != '\0';
	if ((*names = calloc(cnt ? cnt : 1, sizeof(**names))) == NULL)
		return -ENOMEM;
	for (p = list; p < list + len; p += strlen(p) + 1)
		if (*p != '\0')
			(*names)[(*n)++] = p;
	qsort(*names, *n, sizeof(**names), name_cmp);
	return HS_OK;
}

static int
xa_read(const struct xa_target *t, struct hs_buf *blob)
{
	char *list, **names, *val;
	ssize_t need;
	size_t n, i;
	int rc;

	/* Most entries have none: one cheap size query, no allocation. */
	blob->len = 0;
	need = xa_list(t, NULL, 0);
	if (need == 0 || (need < 0 && (errno == ENOTSUP || errno == ENOENT)))
		return HS_OK;
	if (need < 0)
		return -errno;
	names = NULL;
	list = malloc(XA_LIST_MAX);
	val = malloc(XA_VALUE_MAX);
	if (list == NULL || val == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = xa_names(t, list, &names, &n)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		size_t nl = strlen(names[i]);
		ssize_t vl = xa_get(t, names[i], val, XA_VALUE_MAX);
		uint8_t hdr[2 + 255 + 4];

		if (vl < 0) {
			if (errno == ENODATA)
				continue; /* removed meanwhile */
			rc = -errno;
			goto out;
		}
		if (nl > PROTO_NAME_MAX) {
			rc = HS_ELIMIT;
			goto out;
		}
		hdr[0] = (uint8_t)(nl >> 8);
		hdr[1] = (uint8_t)nl;
		memcpy(hdr + 2, names[i], nl);
		hdr[2 + nl] = (uint8_t)((size_t)vl >> 24);
		hdr[3 + nl] = (uint8_t)((size_t)vl >> 16);
		hdr[4 + nl] = (uint8_t)((size_t)vl >> 8);
		hdr[5 + nl] = (uint8_t)vl;
		if ((rc = hs_buf_append(blob, hdr, 6 + nl)) < 0 ||
		    (rc = hs_buf_append(blob, val, (size_t)vl)) < 0)
			goto out;
	}
	rc = HS_OK;
out:
	free(list);
	free(names);
	free(val);
	return rc;
}

int
xa_read_at(int dirfd, const char *name, struct hs_buf *blob)
{
	char path[64 + PROTO_NAME_MAX];
	struct xa_target t = {-1, NULL, dirfd, name};
	int rc;

	if (XATTRAT_MISSING() == 0)
		/* Tests take the older kernels' path with this set. */
		XATTRAT_SET(getenv("HAMNSYNC_NO_XATTRAT") ? 1 : -1);
	if (XATTRAT_MISSING() < 0 && (rc = xa_read(&t, blob)) != -ENOSYS)
		return rc;
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	t.path = path;
	t.name = NULL;
	return xa_read(&t, blob);
}

int
xa_read_fd(int fd, struct hs_buf *blob)
{
	struct xa_target t = {fd, NULL, -1, NULL};

	return xa_read(&t, blob);
}

void
xa_digest(const uint8_t *blob, size_t len, uint8_t out[PROTO_XHASH_LEN])
{
	uint8_t full[PROTO_HASH_LEN];
	struct proto_hash *h;

	memset(out, 0, PROTO_XHASH_LEN);
	if (len == 0 || proto_hash_new(&h) < 0)
		return;
	proto_hash_update(h, blob, len);
	proto_hash_final(h, full);
	proto_hash_free(h);
	memcpy(out, full, PROTO_XHASH_LEN);
	out[0] |= 1; /* never all zero when there are attributes */
}

static int
xa_apply(const struct xa_target *t, const uint8_t *blob, size_t len)
{
	struct proto_rd r = {blob, len};
	struct proto_xattr x;
	char *list, **names;
	ssize_t need;
	size_t n, i;
	int rc;

	/* The common case, nothing on either side, costs one syscall. */
	need = xa_list(t, NULL, 0);
	if (len == 0 &&
	    (need == 0 || (need < 0 && (errno == ENOTSUP || errno == ENOENT))))
		return HS_OK;
	names = NULL;
	list = malloc(XA_LIST_MAX);
	if (list == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* Remove what the primary does not have. */
	if ((rc = xa_names(t, list, &names, &n)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		struct proto_rd s = {blob, len};
		int keep = 0;

		while (proto_xattr_next(&s, &x) == 1)
			if (strcmp(x.name, names[i]) == 0) {
				keep = 1;
				break;
			}
		if (!keep && xa_remove(t, names[i]) < 0 && errno != ENODATA) {
			rc = -errno;
			goto out;
		}
	}
	while ((rc = proto_xattr_next(&r, &x)) == 1)
		if (xa_set(t, x.name, x.value, x.len) < 0) {
			rc = -errno;
			goto out;
		}
out:
	free(list);
	free(names);
	return rc;
}

int
xa_apply_fd(int fd, const uint8_t *blob, size_t len)
{
	struct xa_target t = {fd, NULL, -1, NULL};

	return xa_apply(&t, blob, len);
}

int
xa_apply_at(int dirfd, const char *name, const uint8_t *blob, size_t len)
{
	char path[64 + PROTO_NAME_MAX];
	struct xa_target t = {-1, path, -1, NULL}; /* writes: by path */

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	return xa_apply(&t, blob, len);
}
