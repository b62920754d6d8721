/*
 * fuzz_conf.c - the configuration parser (common/conf.c) through its one
 * entry point, hs_conf_load, on a memfd named by /proc/self/fd: nothing
 * is written to disk.
 *
 * Input: the file's bytes.  A file that is refused must be refused with
 * one line naming what is wrong; one that loads must free cleanly.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "hs.h"

static int fd = -1;
static char path[64];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hs_conf *c = NULL;
	char err[1024];
	int rc;

	if (fd < 0) {
		if ((fd = memfd_create("fuzz_conf", MFD_CLOEXEC)) < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 ||
	    (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	err[0] = '\0';
	rc = hs_conf_load(path, &c, err, sizeof(err));
	if (rc < 0) {
		FZ_CHECK(c == NULL);
		FZ_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
	} else {
		FZ_CHECK(c != NULL);
	}
	hs_conf_free(c);
	return 0;
}
