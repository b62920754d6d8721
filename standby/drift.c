/*
 * drift.c - the standby's own versions of files that something other
 * than hamnsync changed, kept below state_dir/drift/ before replication
 * replaces them.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "apply_int.h"

/* ------------------------------------------------------------- drift */

static uint64_t drift_total;

static int
drift_sum(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)path;
	(void)f;
	if (flag == FTW_F && S_ISREG(st->st_mode))
		drift_total += (uint64_t)st->st_size;
	return 0;
}

static uint64_t drift_files;
static uint64_t drift_files_max;

static int
drift_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)path;
	(void)st;
	(void)f;
	if (flag == FTW_F && ++drift_files >= drift_files_max)
		return 1; /* enough to say "at least" */
	return 0;
}

uint64_t
drift_count(const char *state_dir, uint64_t max)
{
	char dir[PROTO_PATH_MAX * 3];

	if (snprintf(dir, sizeof(dir), "%s/drift", state_dir) >=
	    (int)sizeof(dir))
		return 0;
	drift_files = 0;
	drift_files_max = max;
	(void)nftw(dir, drift_one, 16, FTW_PHYS);
	return drift_files;
}

/* mkdir -p of the directory part of `path` (ours: under state_dir). */
static int
mkdir_parents(char *path)
{
	char *p;

	for (p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int rc = -errno;

			*p = '/';
			return rc;
		}
		*p = '/';
	}
	return HS_OK;
}

int
drift_keep(const char *state_dir, const char *set, const char *src_abs,
           const char *rel, int dirfd, const char *leaf, int fd, uint64_t size,
           char *where, size_t wherelen)
{
	char dir[PROTO_PATH_MAX * 3];
	int out, rc;

	if (snprintf(dir, sizeof(dir), "%s/drift", state_dir) >=
	    (int)sizeof(dir))
		return -ENAMETOOLONG;
	drift_total = 0;
	if (nftw(dir, drift_sum, 16, FTW_PHYS) < 0 && errno != ENOENT)
		return -errno;
	if (drift_total + size > DRIFT_MAX_BYTES) {
		snprintf(where, wherelen,
		         "%s holds %llu bytes; keeping %llu more would pass "
		         "%llu",
		         dir, (unsigned long long)drift_total,
		         (unsigned long long)size,
		         (unsigned long long)DRIFT_MAX_BYTES);
		return HS_ELIMIT;
	}
	if (snprintf(dir, sizeof(dir), "%s/drift/%s%s%s%s.%lld", state_dir, set,
	             src_abs, rel[0] ? "/" : "", rel,
	             (long long)time(NULL)) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	snprintf(where, wherelen, "%s", dir);
	if ((rc = mkdir_parents(dir)) < 0)
		return rc;
	if (linkat(dirfd, leaf, AT_FDCWD, dir, 0) == 0)
		return HS_OK;
	if (errno == EEXIST)
		return HS_OK; /* kept already this second */
	/* Another filesystem (or links refused): copy it. */
	out = open(dir, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	           0600);
	if (out < 0)
		return -errno;
	if ((rc = fs_copy_fd(fd, out, size)) < 0 || fsync(out) < 0) {
		rc = rc < 0 ? rc : -errno;
		close(out);
		unlink(dir);
		return rc;
	}
	close(out);
	return HS_OK;
}
