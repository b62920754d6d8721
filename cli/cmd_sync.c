/* cmd_sync.c - `hamnsync sync`: one full reconciliation, then exit. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "idx.h"
#include "syncd.h"

static const char sync_usage[] =
    "usage: hamnsync [-c FILE] sync [--dry-run] [--progress] "
    "[--allow-deletes SET]\n"
    "  reconcile every [path] set with the standby once\n"
    "  exit: 0 standby matches, 1 differences remain (listed), 2 usage or "
    "config,\n"
    "        3 peer unreachable or not authenticated\n";

static void
human(uint64_t n, char *buf, size_t len)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

int
cli_sync(int argc, char **argv, const char *conf_opt)
{
	static const struct option opts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"progress", no_argument, NULL, 'p'},
	    {"allow-deletes", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct send_opts o;
	struct send_report rep;
	struct idx_node node;
	struct hs_conf *conf;
	char why[1024] = "", sent[32], wire[32], delta[32], covered[32];
	char *allow[64];
	int ch, rc, pid;

	memset(&o, 0, sizeof(o));
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			o.dry_run = 1;
			break;
		case 'p':
			o.progress = isatty(STDOUT_FILENO);
			break;
		case 'a':
			if (o.n_allow_deletes ==
			    sizeof(allow) / sizeof(*allow)) {
				cli_err("sync", "too many --allow-deletes");
				return CLI_EXIT_USAGE;
			}
			allow[o.n_allow_deletes++] = optarg;
			o.allow_deletes = allow;
			break;
		case 'c':
			conf_opt = optarg;
			break;
		case 'h':
			fputs(sync_usage, stdout);
			return 0;
		default:
			fputs(sync_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		cli_err("sync", "unexpected argument '%s'", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	if ((conf = cli_conf_load(cli_conf_path(conf_opt))) == NULL)
		return CLI_EXIT_USAGE;
	if (cli_node_state(conf, &node) < 0) {
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	if (node.role != HS_ROLE_PRIMARY) {
		cli_err("sync",
		        "this node is the %s (per its index in %s); "
		        "sync runs on the primary",
		        hs_role_name(node.role), conf->state_dir);
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	o.epoch = node.epoch;
	if ((pid = daemon_running_pid(conf->state_dir)) != 0) {
		/*
		 * The daemon holds the one session the standby serves.  Until
		 * the control socket lets sync wait for the daemon's own
		 * reconciliation, refuse, and say how to ask the daemon.
		 */
		cli_err("sync",
		        "the daemon (pid %d) replicates continuously "
		        "and holds the standby's session; `kill -USR1 "
		        "%d` makes it reconcile every set now",
		        pid, pid);
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < o.n_allow_deletes; i++)
		if (hs_conf_find_set(conf, allow[i]) == NULL) {
			cli_err("sync",
			        "--allow-deletes %s: no such [path] set",
			        allow[i]);
			hs_conf_free(conf);
			return CLI_EXIT_USAGE;
		}
	rc = send_sync(conf, &o, &rep, why, sizeof(why));
	hs_conf_free(conf);
	if (rc < 0) {
		cli_err("sync", "%s", why[0] ? why : hs_strerror(rc));
		return rc == HS_ECONFIG ? CLI_EXIT_USAGE : CLI_EXIT_PEER;
	}
	human(rep.bytes_sent, sent, sizeof(sent));
	human(rep.wire_out, wire, sizeof(wire));
	human(rep.delta_bytes, delta, sizeof(delta));
	human(rep.delta_covered, covered, sizeof(covered));
	printf("sync%s: %llu files (%s), %llu deltas (%s for %s), "
	       "%llu metadata, %llu deleted, %llu held, %llu dirs, "
	       "%llu symlinks, %llu links, %llu special, %llu unchanged; "
	       "%s on the wire; %llu errors\n",
	       o.dry_run ? " (dry run)" : "",
	       (unsigned long long)rep.files_sent, sent,
	       (unsigned long long)rep.delta_files, delta, covered,
	       (unsigned long long)rep.meta_only,
	       (unsigned long long)rep.deleted, (unsigned long long)rep.held,
	       (unsigned long long)rep.dirs, (unsigned long long)rep.symlinks,
	       (unsigned long long)rep.links, (unsigned long long)rep.specials,
	       (unsigned long long)rep.unchanged, wire,
	       (unsigned long long)(rep.remote_errors + rep.sets_refused +
	                            rep.changed_during));
	if (rep.remote_errors || rep.sets_refused || rep.changed_during ||
	    rep.held)
		return CLI_EXIT_DIFFER;
	return CLI_EXIT_OK;
}
