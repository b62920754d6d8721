/*
 * cmd_daemon.c - `hamnsync daemon [--foreground]`: run this node in the
 * role its index holds, and the other one in the same process when the
 * control verb `role` switches it (HS_EROLE).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "idx.h"
#include "primary.h"
#include "standby.h"

static const char daemon_usage[] =
    "usage: hamnsync [-c FILE] daemon [--foreground]\n"
    "  run this node in its role until SIGTERM; SIGHUP reloads the "
    "config\n"
    "  exit: 0 clean stop, 2 bad config or identity (key, certificate, "
    "CA file),\n"
    "        1 any other failure to start\n";

/*
 * After a role switch: the config, identity and node state again, as a
 * start reads them, but logged (the terminal, if any, is gone).  The
 * caller owns *conf, *tls and *x.
 */
static int
daemon_reload(const char *path, struct hs_conf **conf, struct proto_tls **tls,
              struct idx_node *node, struct idx **x)
{
	char why[HS_ERRMSG_MAX];
	int rc;

	*conf = NULL;
	*tls = NULL;
	*x = NULL;
	if ((rc = hs_conf_load(path, conf, why, sizeof(why))) < 0) {
		hs_log_errx("daemon: role switch: %s", why);
		return rc;
	}
	if ((rc = proto_tls_from_conf(*conf, tls, why, sizeof(why))) < 0) {
		hs_log_errx("daemon: role switch: %s", why);
		goto fail;
	}
	if ((rc = idx_open((*conf)->state_dir, 0, x)) < 0 ||
	    (rc = idx_node_get(*x, node)) < 0) {
		hs_log_errx("daemon: role switch: node state in %s/index: %s",
		            (*conf)->state_dir, hs_strerror(rc));
		goto fail;
	}
	return HS_OK;
fail:
	idx_close(*x);
	*x = NULL;
	proto_tls_free(*tls);
	*tls = NULL;
	hs_conf_free(*conf);
	*conf = NULL;
	return rc;
}

/*
 * Run the stored role until it stops; when it stops for a role switch,
 * run the new one.  Takes ownership of conf, tls and x.
 */
static int
daemon_roles(const char *path, struct hs_conf *conf, struct proto_tls *tls,
             struct idx_node node, struct idx *x, int fg)
{
	int rc;

	for (;;) {
		if (node.role == HS_ROLE_PRIMARY)
			rc = prim_run(path, conf, tls, x, node.epoch, fg);
		else {
			idx_close(x);
			rc = stdby_run(path, conf, tls, fg);
		}
		if (rc != HS_EROLE)
			return rc;
		/*
		 * Already detached, or in the foreground as asked: the next
		 * role neither detaches again nor moves the log.  The pid
		 * file stays locked across (hs_pidfile_handover).
		 */
		fg = 1;
		if ((rc = daemon_reload(path, &conf, &tls, &node, &x)) < 0)
			return rc;
		hs_log_info("daemon: %s runs as %s now, epoch %llu, in the "
		            "same process",
		            conf->node_name, hs_role_name(node.role),
		            (unsigned long long)node.epoch);
	}
}

int
cli_daemon(int argc, char **argv, const char *conf_opt)
{
	static const struct option opts[] = {
	    {"foreground", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct idx_node node;
	struct idx *x = NULL;
	struct proto_tls *tls;
	struct hs_conf *conf;
	const char *path;
	int ch, fg = 0, rc;

	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			fg = 1;
			break;
		case 'c':
			conf_opt = optarg;
			break;
		case 'h':
			fputs(daemon_usage, stdout);
			return 0;
		default:
			fputs(daemon_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	path = cli_conf_path(conf_opt);
	if ((conf = cli_conf_load(path)) == NULL)
		return CLI_EXIT_USAGE;
	/*
	 * This node's identity, loaded once, first: a key that is missing,
	 * unreadable, not a key or too open stops the start here, on the
	 * terminal and before any detach, instead of in every connection.
	 */
	if ((tls = cli_identity_load(conf, "daemon")) == NULL) {
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	/* Opened (and checked, which reads all of it) once: the primary
	 * keeps it. */
	if (cli_node_open(conf, &node, &x) < 0) {
		proto_tls_free(tls);
		hs_conf_free(conf);
		return 1;
	}
	/* stderr until the daemon detaches, so start-up errors are seen. */
	hs_log_init("hamnsync", 1, HS_LOG_INFO);
	rc = daemon_roles(path, conf, tls, node, x, fg);
	/* The reason was logged where it was known, in one line. */
	return rc < 0 ? 1 : 0;
}
