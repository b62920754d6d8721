/*
 * cmd_verify.c - `hamnsync verify [--json]`: both nodes hash their own
 * disks; only listings and hashes cross the wire, nothing is changed.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "idx.h"
#include "primary.h"

static const char verify_usage[] =
    "usage: hamnsync [-c FILE] verify [--json]\n"
    "  compare content hashes and metadata of every replicated file on "
    "both nodes\n"
    "  exit: 0 identical, 1 differences (listed), 2 usage or config, 3 "
    "peer\n"
    "        unreachable or not authenticated\n"
    "  Each difference is one line, differ PATH: REASON, the name escaped "
    "as\n"
    "  rsync does (\\#012 for a newline, \\#ooo for each control byte and "
    "byte\n"
    "  of invalid UTF-8, \\#134 for a backslash before '#').\n"
    "  --json: one JSON object on stdout instead of the text:\n"
    "    exit          the exit status\n"
    "    identical     true when nothing differs\n"
    "    differences   [{set, path, reason}]: the differences listed\n"
    "    total         the count the text gives: differences listed, "
    "sets\n"
    "                  refused and files changed while being read\n"
    "    sets_refused  sets the standby refused\n"
    "    sets          [{name, counts}]: each set's counts\n"
    "    counts        all sets together: differences (listed), "
    "sets_refused,\n"
    "                  changed_during, files (listed here), "
    "standby_files\n"
    "    error         why verify failed (exit 3), when it did\n"
    "    A path that is not UTF-8 has its other bytes as \\xNN.  Bad "
    "options,\n"
    "    config or role (exit 2) print no object, only the error on "
    "stderr.\n"
    "    Errors are also printed on stderr, as without --json.\n";

/* The counts --json gives. */
static const struct cli_count verify_counts[] = {
    CLI_COUNT("differences", differences),
    CLI_COUNT("sets_refused", sets_refused),
    CLI_COUNT("changed_during", changed_during),
    CLI_COUNT("files", primary_files),
    CLI_COUNT("standby_files", standby_files),
};
#define N_COUNTS (sizeof(verify_counts) / sizeof(*verify_counts))

struct verify_out {
	int json;
	struct cli_run run;
};

static void
on_difference(void *arg, const char *path, const char *why)
{
	struct verify_out *v = arg;
	json_t *d;

	if (!v->json) {
		printf("differ   %s: %s\n", cli_show(path), why);
		return;
	}
	d = json_object();
	json_object_set_new(d, "reason", json_string(why));
	cli_run_entry(&v->run, d, path);
}

/* --json: the one object of a run (`error`: why it failed, or NULL). */
static void
verify_json(struct verify_out *v, const struct send_report *rep, int ex,
            const char *error)
{
	json_t *doc = json_object();
	uint64_t total =
	    rep->differences + rep->sets_refused + rep->changed_during;

	json_object_set_new(doc, "exit", json_integer(ex));
	json_object_set_new(doc, "identical",
	                    json_boolean(error == NULL && total == 0));
	json_object_set(doc, "differences", v->run.entries);
	json_object_set_new(doc, "total", json_integer((json_int_t)total));
	json_object_set_new(doc, "sets_refused",
	                    json_integer((json_int_t)rep->sets_refused));
	json_object_set(doc, "sets", v->run.sets);
	json_object_set_new(
	    doc, "counts", cli_json_counts(verify_counts, N_COUNTS, rep, NULL));
	if (error != NULL)
		json_object_set_new(doc, "error", cli_json_path(error));
	cli_json_print(doc);
}

int
cli_verify(int argc, char **argv, const char *conf_opt)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct verify_out v;
	struct send_opts o;
	struct send_report rep;
	struct idx_node node;
	struct hs_conf *conf;
	char why[1024] = "";
	uint64_t total;
	int ch, rc, pid, ex;

	memset(&o, 0, sizeof(o));
	memset(&rep, 0, sizeof(rep));
	memset(&v, 0, sizeof(v));
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			v.json = 1;
			break;
		case 'c':
			conf_opt = optarg;
			break;
		case 'h':
			fputs(verify_usage, stdout);
			return 0;
		default:
			fputs(verify_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		cli_err("verify", "unexpected argument '%s'", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	if ((conf = cli_conf_load(cli_conf_path(conf_opt))) == NULL)
		return CLI_EXIT_USAGE;
	if (cli_node_state(conf, &node) < 0 || node.role != HS_ROLE_PRIMARY) {
		if (node.role != HS_ROLE_PRIMARY)
			cli_err("verify", "run verify on the primary");
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	if ((pid = hs_daemon_pid(conf->state_dir)) != 0) {
		cli_err("verify",
		        "the daemon (pid %d) holds the standby's "
		        "session; verify needs it stopped until the "
		        "control socket arrives",
		        pid);
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	if (cli_run_init(&v.run, verify_counts, N_COUNTS) < 0) {
		cli_err("verify", "%s", hs_strerror(-ENOMEM));
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	o.epoch = node.epoch;
	o.verify = 1;
	o.verify_cb = on_difference;
	o.verify_arg = &v;
	o.set_cb = cli_run_set;
	o.set_arg = &v.run;
	rc = send_sync(conf, &o, &rep, why, sizeof(why));
	hs_conf_free(conf);
	if (rc < 0) {
		ex = rc == HS_ECONFIG ? CLI_EXIT_USAGE : CLI_EXIT_PEER;
		cli_err("verify", "%s",
		        cli_line(why[0] ? why : hs_strerror(rc)));
		if (v.json)
			verify_json(&v, &rep, ex,
			            why[0] ? why : hs_strerror(rc));
		cli_run_free(&v.run);
		return ex;
	}
	total = rep.differences + rep.sets_refused + rep.changed_during;
	ex = total ? CLI_EXIT_DIFFER : CLI_EXIT_OK;
	if (v.json)
		verify_json(&v, &rep, ex, NULL);
	else
		printf("verify: %s (%llu differences)\n",
		       total ? "DIFFERENT" : "identical",
		       (unsigned long long)total);
	cli_run_free(&v.run);
	return ex;
}
