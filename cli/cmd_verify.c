/*
 * cmd_verify.c - `hamnsync verify [--json]`: both nodes hash their own
 * disks; only listings and hashes cross the wire, nothing is changed.
 */
#include <getopt.h>
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
    "        unreachable or not authenticated\n";

struct verify_out {
	int json;
	json_t *list;
};

static void
on_difference(void *arg, const char *path, const char *why)
{
	struct verify_out *v = arg;
	json_t *d;

	if (!v->json) {
		printf("differ   %s: %s\n", path, why);
		return;
	}
	d = json_object();
	json_object_set_new(d, "path", cli_json_path(path));
	json_object_set_new(d, "reason", json_string(why));
	json_array_append_new(v->list, d);
}

int
cli_verify(int argc, char **argv, const char *conf_opt)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct verify_out v = {0, NULL};
	struct send_opts o;
	struct send_report rep;
	struct idx_node node;
	struct hs_conf *conf;
	char why[1024] = "";
	int ch, rc, pid;

	memset(&o, 0, sizeof(o));
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
	v.list = json_array();
	o.epoch = node.epoch;
	o.verify = 1;
	o.verify_cb = on_difference;
	o.verify_arg = &v;
	rc = send_sync(conf, &o, &rep, why, sizeof(why));
	hs_conf_free(conf);
	if (rc < 0) {
		cli_err("verify", "%s", why[0] ? why : hs_strerror(rc));
		json_decref(v.list);
		return rc == HS_ECONFIG ? CLI_EXIT_USAGE : CLI_EXIT_PEER;
	}
	rep.differences += rep.sets_refused + rep.changed_during;
	if (v.json) {
		json_t *doc = json_object();

		json_object_set_new(doc, "identical",
		                    json_boolean(rep.differences == 0));
		json_object_set_new(doc, "differences", v.list);
		json_object_set_new(doc, "sets_refused",
		                    json_integer((json_int_t)rep.sets_refused));
		json_dumpf(doc, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(doc);
	} else {
		json_decref(v.list);
		printf("verify: %s (%llu differences)\n",
		       rep.differences ? "DIFFERENT" : "identical",
		       (unsigned long long)rep.differences);
	}
	return rep.differences ? CLI_EXIT_DIFFER : CLI_EXIT_OK;
}
