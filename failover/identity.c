/*
 * identity.c - a node takes over (or gives back) the name and address
 * the cluster knows as its management node: fo_identity_take and
 * fo_identity_release (fo_int.h).
 *
 * On Linux: sethostname(2) and rtnetlink (ifaddr.c).  The host name is
 * set for the running system only: /etc/hostname is left alone, so a
 * reboot comes back under the node's own name (and a standby that
 * reboots must not claim to be the management node).  The name this
 * node had before its first take is kept in state_dir/promote/hostname
 * until a release puts it back.  Elsewhere, takeover_command and
 * release_command do all of it instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fo_int.h"
#include "idx.h"
#include "ifaddr_int.h"

#define ID_DIR "promote"
#define ID_NAME_FILE "hostname"

struct id_job {
	const struct hs_conf *conf;
	const struct hs_failover *fo;
	char *done;
	size_t donelen;
	char *why;
	size_t whylen;
	int ifindex;
};

/* Append one clause to the `done` line, "; " between clauses. */
static void __attribute__((format(printf, 2, 3)))
say(struct id_job *j, const char *fmt, ...)
{
	size_t used = strnlen(j->done, j->donelen);
	va_list ap;

	if (used + 3 >= j->donelen)
		return;
	if (used > 0) {
		memcpy(j->done + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(j->done + used, j->donelen - used, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ host name */

static int
name_paths(const struct id_job *j, char *dir, char *file, size_t len)
{
	if ((size_t)snprintf(dir, len, "%s/%s", j->conf->state_dir, ID_DIR) >=
	        len ||
	    (size_t)snprintf(file, len, "%s/%s", dir, ID_NAME_FILE) >= len)
		return -ENAMETOOLONG;
	return HS_OK;
}

static int
fsync_dir(const char *dir)
{
	int fd, rc = HS_OK;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* `name` and a newline into `file`, durably: a crash leaves the old file
 * or the new one, never a torn name that release would set. */
static int
name_store(const char *dir, const char *file, const char *name)
{
	char tmp[PATH_MAX + 8];
	int fd, rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) <
	    0)
		return -errno;
	if ((rc = hs_write_all(fd, name, strlen(name))) == 0 &&
	    (rc = hs_write_all(fd, "\n", 1)) == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, file) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	return fsync_dir(dir);
}

/* The name remembered by a take: HS_OK, HS_ENOTFOUND, or -errno. */
static int
name_load(const char *file, char *name, size_t len)
{
	ssize_t n;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? HS_ENOTFOUND : -errno;
	n = read(fd, name, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	name[n] = '\0';
	name[strcspn(name, "\n")] = '\0';
	return name[0] != '\0' ? HS_OK : HS_ECONFIG;
}

static int
name_set(struct id_job *j, const char *name)
{
	if (sethostname(name, strlen(name)) < 0) {
		snprintf(j->why, j->whylen, "host name %s: cannot set it: %s",
		         name, strerror(errno));
		return -errno;
	}
	return HS_OK;
}

/*
 * The first take keeps the node's own name; a later one (a take run
 * again after a crash) finds the file and leaves it, so the name kept
 * is never the one taken over.
 */
static int
name_take(struct id_job *j)
{
	char dir[PATH_MAX], file[PATH_MAX], cur[HOST_NAME_MAX + 1];
	const char *want = j->fo->hostname;
	int rc;

	if (want == NULL) {
		say(j, "no hostname");
		return HS_OK;
	}
	if (gethostname(cur, sizeof(cur)) < 0) {
		snprintf(j->why, j->whylen, "host name: cannot read it: %s",
		         strerror(errno));
		return -errno;
	}
	if ((rc = name_paths(j, dir, file, sizeof(dir))) == 0 &&
	    access(file, F_OK) < 0 && errno == ENOENT)
		rc = name_store(dir, file, cur);
	if (rc < 0) {
		snprintf(j->why, j->whylen,
		         "%s: cannot keep this node's "
		         "host name %s: %s",
		         file, cur, hs_strerror(rc));
		return rc;
	}
	if (strcmp(cur, want) == 0) {
		say(j, "host name already %s", want);
		return HS_OK;
	}
	if ((rc = name_set(j, want)) < 0)
		return rc;
	say(j, "host name %s (was %s)", want, cur);
	return HS_OK;
}

/* The file goes once the name is back: the next take keeps afresh. */
static int
name_release(struct id_job *j)
{
	char dir[PATH_MAX], file[PATH_MAX], cur[HOST_NAME_MAX + 1];
	char name[HOST_NAME_MAX + 2];
	int rc;

	if ((rc = name_paths(j, dir, file, sizeof(dir))) == 0)
		rc = name_load(file, name, sizeof(name));
	if (rc == HS_ENOTFOUND) {
		/*
		 * A node that never took the name (the first primary) has no
		 * other to go back to: said loudly when it still carries the
		 * one its peer is about to take.
		 */
		if (j->fo->hostname != NULL &&
		    gethostname(cur, sizeof(cur)) == 0 &&
		    strcmp(cur, j->fo->hostname) == 0) {
			say(j,
			    "host name %s kept: this node never took it and "
			    "has no name of its own to go back to (a "
			    "release_command can set one)",
			    cur);
			hs_log_warnx("identity: this node keeps the host name "
			             "%s, which its peer takes next",
			             cur);
		} else
			say(j, "no host name to give back");
		return HS_OK;
	}
	if (rc < 0) {
		snprintf(j->why, j->whylen, "%s: unreadable: %s", file,
		         rc == HS_ECONFIG ? "empty" : hs_strerror(rc));
		return rc;
	}
	if (gethostname(cur, sizeof(cur)) == 0 && strcmp(cur, name) == 0)
		say(j, "host name already %s", name);
	else if ((rc = name_set(j, name)) < 0)
		return rc;
	else
		say(j, "host name back to %s", name);
	if (unlink(file) < 0 || (rc = fsync_dir(dir)) < 0) {
		rc = rc < 0 ? rc : -errno;
		snprintf(j->why, j->whylen, "%s: cannot remove it: %s", file,
		         hs_strerror(rc));
		return rc;
	}
	return HS_OK;
}

/* ------------------------------------------------------------ addresses */

static int
iface_find(struct id_job *j)
{
	unsigned idx = if_nametoindex(j->fo->interface);

	if (idx == 0) {
		snprintf(
		    j->why, j->whylen, "interface %s: %s", j->fo->interface,
		    errno == ENODEV ? "no such interface" : strerror(errno));
		return -ENODEV;
	}
	j->ifindex = (int)idx;
	return HS_OK;
}

/*
 * A take on a link that is down would move the address where nobody can
 * reach it, and fail only at the announcement, with the own address
 * already gone: refused first.
 */
static int
iface_up(struct id_job *j)
{
	int rc = fo_link_up(j->fo->interface);

	if (rc == -ENETDOWN)
		snprintf(j->why, j->whylen,
		         "interface %s: down: bring it up first",
		         j->fo->interface);
	else if (rc < 0)
		snprintf(j->why, j->whylen, "interface %s: %s",
		         j->fo->interface, hs_strerror(rc));
	return rc;
}

/* Add (add 1) or remove `a`; one that is already so is fine.  `quiet`:
 * a second add that only makes sure, said nowhere. */
static int
addr_put(struct id_job *j, int add, const struct fo_addr *a, int quiet)
{
	int rc = fo_addr_change(add, j->ifindex, a);

	if (rc == HS_OK) {
		if (!quiet)
			say(j, "%s %s %s %s", add ? "added" : "removed",
			    a->text, add ? "to" : "from", j->fo->interface);
		return HS_OK;
	}
	if ((add && rc == -EEXIST) || (!add && rc == -EADDRNOTAVAIL)) {
		if (!quiet)
			say(j, "%s %s on %s", add ? "already" : "not", a->text,
			    j->fo->interface);
		return HS_OK;
	}
	snprintf(j->why, j->whylen, "interface %s: %s %s: %s", j->fo->interface,
	         add ? "add" : "remove", a->text, hs_strerror(rc));
	return rc;
}

/*
 * Put `up` on the interface and take `down` off it, either may be NULL.
 * `up` is added first, so the subnet stays on the interface throughout
 * (routes through it survive), and added again after the removal: with
 * promote_secondaries off (a new namespace's default), removing an IPv4
 * primary address removes the secondaries of its subnet with it.
 */
static int
addr_move(struct id_job *j, const struct fo_addr *up,
          const struct fo_addr *down)
{
	int rc = HS_OK;

	if (up != NULL)
		rc = addr_put(j, 1, up, 0);
	if (rc == HS_OK && down != NULL)
		rc = addr_put(j, 0, down, 0);
	if (rc == HS_OK && up != NULL && down != NULL)
		rc = addr_put(j, 1, up, 1);
	return rc;
}

static int
addr_announce(struct id_job *j, const struct fo_addr *a)
{
	int rc = fo_addr_announce(j->fo->interface, j->ifindex, a);

	if (rc == HS_ENOTFOUND) {
		say(j, "%s not announced: %s has no Ethernet address", a->text,
		    j->fo->interface);
		return HS_OK;
	}
	if (rc < 0) {
		snprintf(j->why, j->whylen, "interface %s: announce %s: %s",
		         j->fo->interface, a->text, hs_strerror(rc));
		return rc;
	}
	say(j, "announced %s (%s)", a->text,
	    a->family == AF_INET ? "gratuitous ARP"
	                         : "neighbour advertisement");
	return HS_OK;
}

/* Both addresses parsed (either may be absent), and an interface to put
 * them on: the callers found it (j->ifindex) before changing anything. */
static int
addr_prepare(struct id_job *j, struct fo_addr *svc, struct fo_addr *own,
             int *has_svc, int *has_own)
{
	const char *bad = NULL;

	*has_svc = j->fo->service_address != NULL;
	*has_own = j->fo->own_address != NULL;
	if (*has_svc && fo_addr_parse(j->fo->service_address, svc) < 0)
		bad = j->fo->service_address;
	else if (*has_own && fo_addr_parse(j->fo->own_address, own) < 0)
		bad = j->fo->own_address;
	if (bad != NULL) {
		snprintf(j->why, j->whylen,
		         "address %s: not an address with a /prefix", bad);
		return HS_ECONFIG;
	}
	if (!*has_svc && !*has_own)
		return HS_OK;
	if (j->fo->interface == NULL) {
		/* Only a release meets this: the config check lets
		 * takeover_command stand for interface, not release_command. */
		snprintf(j->why, j->whylen,
		         "[failover]: service_address and own_address need "
		         "interface (or release_command)");
		return HS_ECONFIG;
	}
	return HS_OK;
}

/*
 * A take (`take` 1) puts the service address on, takes the own one off
 * and announces the service address; a release moves them back and
 * announces nothing (the peer that takes the service address next does).
 */
static int
addr_step(struct id_job *j, int take)
{
	struct fo_addr svc, own;
	const struct fo_addr *svcp, *ownp;
	int has_svc, has_own, rc;

	if ((rc = addr_prepare(j, &svc, &own, &has_svc, &has_own)) < 0)
		return rc;
	if (!has_svc)
		say(j, "no service_address");
	if (!has_svc && !has_own)
		return HS_OK;
	svcp = has_svc ? &svc : NULL;
	ownp = has_own ? &own : NULL;
	if (!take)
		return addr_move(j, ownp, svcp);
	if ((rc = addr_move(j, svcp, ownp)) == HS_OK && has_svc)
		rc = addr_announce(j, &svc);
	return rc;
}

/* ---------------------------------------------------------- the commands */

static void
job_init(struct id_job *j, const struct hs_conf *conf, char *done,
         size_t donelen, char *why, size_t whylen)
{
	memset(j, 0, sizeof(*j));
	j->conf = conf;
	j->fo = &conf->failover;
	j->done = done;
	j->donelen = donelen;
	j->why = why;
	j->whylen = whylen;
	if (donelen > 0)
		done[0] = '\0';
	if (whylen > 0)
		why[0] = '\0';
}

/* The configured commands in place of the Linux steps. */
static int
by_commands(struct id_job *j, const struct hs_strlist *cmds, enum hs_role r,
            const char *key)
{
	struct idx_node n;
	int rc;

	/*
	 * The epoch the commands are told (HAMNSYNC_EPOCH) is this node's,
	 * which promote's fence step raised before this step runs.  An
	 * index that cannot be read stops the step: a command told epoch 0
	 * would announce a node that never promoted.  fo_node_get opens and
	 * closes the index (LMDB forbids a second open in one process: the
	 * callers hold it only inside a step).
	 */
	if ((rc = fo_node_get(j->conf, &n, j->why, j->whylen)) < 0)
		return rc;
	rc = fo_run_cmds(j->conf, "identity", cmds, n.epoch, r, j->why,
	                 j->whylen);
	if (rc < 0)
		return rc;
	say(j, "ran %zu %s%s", cmds->n, key, cmds->n == 1 ? "" : "s");
	return HS_OK;
}

int
fo_identity_take(const struct hs_conf *conf, char *done, size_t donelen,
                 char *why, size_t whylen)
{
	struct id_job j;
	int rc;

	job_init(&j, conf, done, donelen, why, whylen);
	if (j.fo->takeover_command.n > 0)
		return by_commands(&j, &j.fo->takeover_command, HS_ROLE_PRIMARY,
		                   "takeover_command");
	/* The interface is checked before the name changes: a take that
	 * cannot finish should change nothing it can avoid changing. */
	if (j.fo->interface != NULL &&
	    ((rc = iface_find(&j)) < 0 ||
	     (j.fo->service_address != NULL && (rc = iface_up(&j)) < 0)))
		return rc;
	if ((rc = name_take(&j)) < 0)
		return rc;
	return addr_step(&j, 1);
}

int
fo_identity_release(const struct hs_conf *conf, char *done, size_t donelen,
                    char *why, size_t whylen)
{
	struct id_job j;
	int rc;

	job_init(&j, conf, done, donelen, why, whylen);
	if (j.fo->release_command.n > 0)
		return by_commands(&j, &j.fo->release_command, HS_ROLE_STANDBY,
		                   "release_command");
	if (j.fo->interface != NULL && (rc = iface_find(&j)) < 0)
		return rc;
	/* The address first: the name is what a rejoin leaves last. */
	if ((rc = addr_step(&j, 0)) < 0)
		return rc;
	return name_release(&j);
}
