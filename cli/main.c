/*
 * main.c - `hamnsync [-c FILE] COMMAND ...`: the global options, then one
 * call to the command's cli_* function.  Nothing here is called back.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "idx.h"
#include "proto.h"

static const char usage[] =
    "usage: hamnsync [-c FILE] COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  keygen --out DIR [--name N] [--force]   make this node's key and "
    "certificate\n"
    "  daemon [--foreground]                   run this node in its role\n"
    "  sync [--dry-run] [--json] [--progress] [--allow-deletes SET]\n"
    "                                          reconcile the standby once\n"
    "  status [--json] [--watch] [--warn-lag S] [--crit-lag S]\n"
    "  verify [--json]\n"
    "  promote [--force] [--dry-run]\n"
    "  rejoin [--dry-run]\n"
    "  switchover [--dry-run]\n"
    "\n"
    "  -c FILE     configuration (default: $HAMNSYNC_CONF or " HS_CONF_DEFAULT
    ")\n"
    "  --version   print program, protocol and index format versions\n";

/*
 * HAMNSYNC_FAILPOINTS (hs.h), read once before any command starts: a bad
 * spec stops the program, and a build without failpoints refuses one
 * rather than run a crash test that injects nothing.
 */
static int
arm_failpoints(void)
{
	const char *spec = getenv("HAMNSYNC_FAILPOINTS");
#ifdef HS_FAILPOINTS
	char err[HS_ERRMSG_MAX];

	if (spec != NULL && hs_fp_arm(spec, err, sizeof(err)) < 0) {
		cli_err("HAMNSYNC_FAILPOINTS", "%s", err);
		return -1;
	}
#else
	if (spec != NULL && spec[0] != '\0') {
		cli_err(
		    "HAMNSYNC_FAILPOINTS",
		    "this build has no failpoints (cmake -DHS_FAILPOINTS=ON "
		    "makes one that has)");
		return -1;
	}
#endif
	return 0;
}

int
main(int argc, char **argv)
{
	const char *conf_opt = NULL, *cmd;
	int i = 1;

	signal(SIGPIPE, SIG_IGN);
	hs_log_init("hamnsync", 1, HS_LOG_WARN);
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--version") == 0) {
			printf("hamnsync %s (protocol %d, index format %d)\n",
			       HS_VERSION, PROTO_VERSION, IDX_FORMAT_VERSION);
			return 0;
		}
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			conf_opt = argv[i + 1];
			i += 2;
			continue;
		}
		cli_err("usage", "unknown option %s", argv[i]);
		fputs(usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return CLI_EXIT_USAGE;
	}
	cmd = argv[i];
	if (arm_failpoints() < 0)
		return CLI_EXIT_USAGE;
	argc -= i;
	argv += i;
	if (strcmp(cmd, "keygen") == 0)
		return cli_keygen(argc, argv);
	if (strcmp(cmd, "daemon") == 0)
		return cli_daemon(argc, argv, conf_opt);
	if (strcmp(cmd, "sync") == 0)
		return cli_sync(argc, argv, conf_opt);
	if (strcmp(cmd, "verify") == 0)
		return cli_verify(argc, argv, conf_opt);
	if (strcmp(cmd, "status") == 0)
		return cli_status(argc, argv, conf_opt);
	if (strcmp(cmd, "promote") == 0)
		return cli_promote(argc, argv, conf_opt);
	if (strcmp(cmd, "rejoin") == 0)
		return cli_rejoin(argc, argv, conf_opt);
	if (strcmp(cmd, "switchover") == 0)
		return cli_switchover(argc, argv, conf_opt);
	cli_err("usage", "unknown command '%s'", cmd);
	fputs(usage, stderr);
	return CLI_EXIT_USAGE;
}
