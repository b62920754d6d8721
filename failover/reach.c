/*
 * reach.c - what every failover command does the same way: read and store
 * this node's state in its index, ask the peer who it is, and ask, start
 * and wait for this node's own daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "fo_int.h"
#include "idx.h"
#include "proto.h"

uint64_t
fo_step_timeout(const struct hs_conf *conf)
{
	return conf->failover.present && conf->failover.step_timeout
	           ? conf->failover.step_timeout
	           : 300;
}

/* A node whose daemon never ran is what its config says, at epoch 0. */
static void
node_default(const struct hs_conf *conf, struct idx_node *n)
{
	n->role = conf->role;
	n->flags = 0;
	n->epoch = 0;
}

int
fo_node_get(const struct hs_conf *conf, struct idx_node *n, char *why,
            size_t whylen)
{
	struct idx *x;
	int rc;

	node_default(conf, n);
	if ((rc = idx_open(conf->state_dir, 1, &x)) == HS_ENOTFOUND)
		return HS_OK;
	if (rc == HS_OK) {
		rc = idx_node_get(x, n);
		idx_close(x);
		if (rc == HS_ENOTFOUND) {
			node_default(conf, n);
			rc = HS_OK;
		}
	}
	if (rc < 0)
		snprintf(why, whylen, "%s/index: node state: %s",
		         conf->state_dir, hs_strerror(rc));
	return rc;
}

int
fo_node_put(const struct hs_conf *conf, const struct idx_node *n, char *why,
            size_t whylen)
{
	struct idx *x;
	int rc;

	if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	else if ((rc = idx_open(conf->state_dir, 0, &x)) == HS_OK) {
		rc = idx_node_put(x, n);
		idx_close(x);
	}
	if (rc < 0)
		snprintf(why, whylen, "%s/index: storing the node state: %s",
		         conf->state_dir, hs_strerror(rc));
	return rc;
}

int
fo_probe(const struct hs_conf *conf, enum hs_role role, uint64_t epoch,
         uint8_t flags, int timeout_ms, struct proto_hello *peer, char *why,
         size_t whylen)
{
	struct proto_hello mine;
	struct proto_tls *t;
	char e[HS_ERRMSG_MAX] = "";
	int rc;

	if ((rc = proto_tls_from_conf(conf, &t, e, sizeof(e))) < 0) {
		snprintf(why, whylen, "this node's TLS identity: %s", e);
		return HS_ECONFIG;
	}
	memset(&mine, 0, sizeof(mine));
	mine.magic = PROTO_MAGIC;
	mine.version = PROTO_VERSION;
	snprintf(mine.name, sizeof(mine.name), "%s", conf->node_name);
	mine.role = role;
	mine.epoch = epoch;
	mine.flags = flags;
	memset(peer, 0, sizeof(*peer));
	rc = proto_probe(t, conf->peer, &mine, timeout_ms, peer, e, sizeof(e));
	proto_tls_free(t);
	if (rc < 0) {
		snprintf(why, whylen, "peer %s (%s) did not answer: %s",
		         conf->peer_name ? conf->peer_name : conf->peer,
		         conf->peer, e[0] ? e : hs_strerror(rc));
		return -EHOSTUNREACH;
	}
	return HS_OK;
}

int
fo_ask(const struct hs_conf *conf, const char *verb, json_t **reply, char *why,
       size_t whylen)
{
	int pid = hs_daemon_pid(conf->state_dir), rc;
	const char *err;

	*reply = NULL;
	if (pid == 0)
		return 0;
	if ((rc = ctl_request(conf->state_dir, verb, FO_CTL_MS, reply)) < 0) {
		snprintf(why, whylen,
		         "the daemon of %s (pid %d) did not answer `%s`: %s",
		         conf->state_dir, pid, verb, hs_strerror(rc));
		*reply = NULL;
		return rc;
	}
	/* It answered, and said no: its words, not a guess from the rest. */
	if ((err = json_string_value(json_object_get(*reply, "error"))) !=
	    NULL) {
		snprintf(why, whylen, "the daemon of %s refused `%s`: %s",
		         conf->state_dir, verb, err);
		json_decref(*reply);
		*reply = NULL;
		return HS_EREFUSED;
	}
	return 1;
}

int
fo_daemon_start(const struct hs_conf *conf, const struct fo_opts *o, char *why,
                size_t whylen)
{
	const char *cf = o->conf_path != NULL ? o->conf_path : conf->file;
	int status = -1, rc;
	pid_t pid;

	fflush(NULL);
	if ((pid = fork()) < 0) {
		rc = -errno;
		snprintf(why, whylen, "starting the daemon: %s", strerror(-rc));
		return rc;
	}
	if (pid == 0) {
		execl("/proc/self/exe", "hamnsync", "-c", cf, "daemon",
		      (char *)NULL);
		fprintf(stderr,
		        "hamnsync: starting the daemon: /proc/self/exe: %s\n",
		        strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			break;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(why, whylen,
		         "`hamnsync -c %s daemon` failed (exit %d): see its "
		         "message above",
		         cf, WIFEXITED(status) ? WEXITSTATUS(status) : 128);
		return -ECHILD;
	}
	return HS_OK;
}

int
fo_wait_role(const struct hs_conf *conf, enum hs_role role, char *why,
             size_t whylen)
{
	uint64_t secs = fo_step_timeout(conf);
	uint64_t end = hs_now_mono_ns() + secs * 1000000000ull;
	const char *now = NULL;
	json_t *st;
	int hit;

	for (;;) {
		st = NULL;
		/* Silence is expected while it starts or switches roles;
		 * st stays NULL then. */
		(void)ctl_request(conf->state_dir, "status", FO_CTL_MS, &st);
		now = json_string_value(json_object_get(st, "role"));
		hit = now != NULL && strcmp(now, hs_role_name(role)) == 0;
		json_decref(st);
		if (hit)
			return HS_OK;
		if (hs_now_mono_ns() >= end)
			break;
		usleep(FO_POLL_US);
	}
	snprintf(why, whylen,
	         "the daemon of %s did not answer status as %s within %llu s "
	         "(step_timeout)",
	         conf->state_dir, hs_role_name(role), (unsigned long long)secs);
	return HS_ETIMEOUT;
}
