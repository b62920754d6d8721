/*
 * cmd_failover.c - `hamnsync promote [--force] [--dry-run]`, `rejoin`,
 * `switchover`, and the options the failover commands share.  The work is
 * failover/'s (fo_*); this file parses, loads the config and chooses where the
 * log goes.
 *
 * The log of these commands is stderr at info level: the outcome of each
 * step is printed on stdout, and what the steps and their configured
 * commands said (each output line of `regenerate`, say) goes to stderr,
 * where an operator at a terminal sees it and a script can keep it.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "failover.h"

static const char promote_usage[] =
    "usage: hamnsync [-c FILE] promote [--force] [--dry-run]\n"
    "  make this standby the primary: preflight, fence, drain, database,\n"
    "  identity, regenerate, start; run it again to resume after a "
    "failure\n"
    "  --force    even while the primary still answers as primary\n"
    "  --dry-run  print the plan and change nothing\n"
    "  exit: 0 done, 1 a step failed or was refused, 2 usage or config,\n"
    "        3 the peer was needed and did not answer\n";

/*
 * Parse the options of `cmd` (only promote takes --force) into *o and
 * load the config.  Returns the config, or NULL with *rc the exit status.
 * The config's path is made absolute: the daemon started at the end
 * detaches into /.
 */
static struct hs_conf *
failover_args(const char *cmd, const char *usage, int argc, char **argv,
              const char *conf_opt, struct fo_opts *o, char *abspath, int *rc)
{
	static const struct option opts[] = {
	    {"force", no_argument, NULL, 'f'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path;
	struct hs_conf *conf;
	int ch;

	memset(o, 0, sizeof(*o));
	o->out = stdout;
	*rc = CLI_EXIT_USAGE;
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (strcmp(cmd, "promote") != 0)
				goto usage;
			o->force = 1;
			break;
		case 'n':
			o->dry_run = 1;
			break;
		case 'c':
			conf_opt = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			*rc = 0;
			return NULL;
		default:
			goto usage;
		}
	}
	if (optind < argc) {
		cli_err("usage", "%s: unexpected argument '%s'", cmd,
		        argv[optind]);
		goto usage;
	}
	path = cli_conf_path(conf_opt);
	if ((conf = cli_conf_load(path)) == NULL)
		return NULL;
	if (realpath(path, abspath) == NULL)
		snprintf(abspath, PATH_MAX, "%s", path);
	o->conf_path = abspath;
	return conf;
usage:
	fputs(usage, stderr);
	return NULL;
}

/* Parse, load the config, log to stderr, and run `fn`: its exit status. */
static int
failover_main(const char *cmd, const char *usage,
              int (*fn)(const struct hs_conf *, const struct fo_opts *),
              int argc, char **argv, const char *conf_opt)
{
	char abspath[PATH_MAX];
	struct hs_conf *conf;
	struct fo_opts o;
	int rc;

	conf =
	    failover_args(cmd, usage, argc, argv, conf_opt, &o, abspath, &rc);
	if (conf == NULL)
		return rc;
	hs_log_init("hamnsync", 1, HS_LOG_INFO);
	rc = fn(conf, &o);
	fflush(stdout);
	hs_conf_free(conf);
	return rc;
}

int
cli_promote(int argc, char **argv, const char *conf_opt)
{
	return failover_main("promote", promote_usage, fo_promote, argc, argv,
	                     conf_opt);
}

static const char rejoin_usage[] =
    "usage: hamnsync [-c FILE] rejoin [--dry-run]\n"
    "  make this former primary the standby of the node that replaced it:\n"
    "  preflight, stop, aside, database, role; its own changes the standby\n"
    "  never received are moved into state_dir/rejoin-EPOCH/ and listed\n"
    "  --dry-run  print the plan and change nothing\n"
    "  exit: 0 done, 1 a step failed or was refused, 2 usage or config,\n"
    "        3 the peer was needed and did not answer\n";

int
cli_rejoin(int argc, char **argv, const char *conf_opt)
{
	return failover_main("rejoin", rejoin_usage, fo_rejoin, argc, argv,
	                     conf_opt);
}

static const char switchover_usage[] =
    "usage: hamnsync [-c FILE] switchover [--dry-run]\n"
    "  swap the roles of a healthy pair under a new epoch.  On the\n"
    "  primary: preflight, stop, drain, release, handover, rejoin (its\n"
    "  changes after the drain's cut go into state_dir/rejoin-EPOCH/);\n"
    "  run it again to resume after a failure.  On the standby: ask the\n"
    "  primary to run it, and wait until this node is the primary\n"
    "  --dry-run  print the plan and change nothing\n"
    "  exit: 0 done, 1 a step failed or was refused, 2 usage or config,\n"
    "        3 the peer was needed and did not answer\n";

int
cli_switchover(int argc, char **argv, const char *conf_opt)
{
	return failover_main("switchover", switchover_usage, fo_switchover,
	                     argc, argv, conf_opt);
}
