/* cmd_sync.c - `hamnsync sync`: one full reconciliation, then exit. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dbrepl.h"
#include "idx.h"
#include "ctl.h"
#include "primary.h"

static const char sync_usage[] =
    "usage: hamnsync [-c FILE] sync [--dry-run] [--json] [--progress] "
    "[--allow-deletes SET]\n"
    "  reconcile every [path] set with the standby once\n"
    "  exit: 0 standby matches, 1 differences remain (listed), 2 usage or "
    "config,\n"
    "        3 peer unreachable or not authenticated\n"
    "  --dry-run: change nothing; one line per entry the sync would "
    "change,\n"
    "    ACTION PATH, the name escaped as rsync does (\\#012 for a "
    "newline,\n"
    "    \\#ooo for each control byte and byte of invalid UTF-8, "
    "\\#134 for a\n"
    "    backslash before '#').  ACTION is one of:\n"
    "      new      a file the standby lacks, sent whole\n"
    "      whole    a changed file, sent whole\n"
    "      delta    a changed file, sent as a delta\n"
    "      meta     only owner, mode, times, xattrs or ACLs differ\n"
    "      mkdir    a directory to make\n"
    "      symlink  a symlink to make or point elsewhere\n"
    "      special  a fifo or device node to make\n"
    "      link     a hard link to make\n"
    "      delete   a path only on the standby, deleted\n"
    "      held     a deletion held back (max_delete_percent)\n"
    "  --json: one JSON object on stdout instead of the text:\n"
    "    exit      the exit status\n"
    "    dry_run   true with --dry-run\n"
    "    entries   [{set, action, path}]: the dry run's lines\n"
    "    sets      [{name, counts}]: each set's counts\n"
    "    counts    all sets together: files, bytes (sent whole), deltas,\n"
    "              delta_bytes, delta_covered, patched (deltas sent "
    "as blocks),\n"
    "              metadata, deleted, held, dirs, symlinks, links, "
    "special,\n"
    "              unchanged, wire_bytes, remote_errors, sets_refused,\n"
    "              changed_during (the summary's errors: these three "
    "added)\n"
    "    error     why the sync failed (exit 3), when it did\n"
    "    A path that is not UTF-8 has its other bytes as \\xNN.  Bad "
    "options,\n"
    "    config or role (exit 2) print no object, only the error on "
    "stderr.\n"
    "    With the daemon running: {exit, daemon_pid, held_sets, "
    "failed_sets,\n"
    "    error}.  Errors are also printed on stderr, as without "
    "--json.\n";

/* The counts --json gives, in the order of the summary line. */
static const struct cli_count sync_counts[] = {
    CLI_COUNT("files", files_sent),
    CLI_COUNT("bytes", bytes_sent),
    CLI_COUNT("deltas", delta_files),
    CLI_COUNT("delta_bytes", delta_bytes),
    CLI_COUNT("delta_covered", delta_covered),
    CLI_COUNT("patched", patch_files),
    CLI_COUNT("metadata", meta_only),
    CLI_COUNT("deleted", deleted),
    CLI_COUNT("held", held),
    CLI_COUNT("dirs", dirs),
    CLI_COUNT("symlinks", symlinks),
    CLI_COUNT("links", links),
    CLI_COUNT("special", specials),
    CLI_COUNT("unchanged", unchanged),
    CLI_COUNT("wire_bytes", wire_out),
    CLI_COUNT("remote_errors", remote_errors),
    CLI_COUNT("sets_refused", sets_refused),
    CLI_COUNT("changed_during", changed_during),
};
#define N_COUNTS (sizeof(sync_counts) / sizeof(*sync_counts))

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

/*
 * The databases' snapshot folders (the db:NAME sets) exist before the
 * daemon's first snapshot: a one-shot sync ships what the daemon made
 * last, and makes no snapshot itself.
 */
static int
sync_db_folders(const struct hs_conf *conf, char *why, size_t whylen)
{
	struct dbr *r;
	int rc;

	if (conf->n_dbs == 0)
		return HS_OK;
	if ((rc = dbr_open(conf, DBR_PRIMARY, &r)) < 0) {
		snprintf(why, whylen, "databases' folders in %s/%s: %s",
		         conf->state_dir, DBR_DIR, hs_strerror(rc));
		return rc;
	}
	dbr_free(r);
	return HS_OK;
}

/*
 * The daemon's answer for --json: the exit status, the sets it held or
 * failed, and why it could not finish (NULL: it did).
 */
static int
via_daemon_json(int ex, int pid, json_t *held, json_t *failed,
                const char *error)
{
	json_t *doc = json_object();

	json_object_set_new(doc, "exit", json_integer(ex));
	json_object_set_new(doc, "daemon_pid", json_integer(pid));
	json_object_set_new(doc, "held_sets",
	                    held ? json_incref(held) : json_array());
	json_object_set_new(doc, "failed_sets",
	                    failed ? json_incref(failed) : json_array());
	if (error != NULL)
		json_object_set_new(doc, "error", cli_json_path(error));
	cli_json_print(doc);
	return ex;
}

/*
 * The daemon holds the one session the standby serves: ask it to
 * reconcile every set now, and wait until it has (or the standby stays
 * unreachable).  Prints what it said (`json`: as one object).
 */
static int
sync_via_daemon(const struct hs_conf *conf, const struct send_opts *o, int pid,
                int json)
{
	char err[512];
	uint64_t gen, gone_since = 0;
	json_t *r = NULL;
	int rc, ex;

	if (o->dry_run || o->n_allow_deletes > 0) {
		cli_err("sync",
		        "the daemon (pid %d) replicates continuously; "
		        "--dry-run and --allow-deletes need it stopped",
		        pid);
		return CLI_EXIT_USAGE;
	}
	if ((rc = ctl_request(conf->state_dir, "sync", 2000, &r)) < 0 ||
	    !json_is_integer(json_object_get(r, "generation"))) {
		snprintf(
		    err, sizeof(err),
		    "the daemon (pid %d) did not take the request: %s", pid,
		    rc < 0 ? hs_strerror(rc)
		           : json_string_value(json_object_get(r, "error")));
		json_decref(r);
		cli_err("sync", "%s", err);
		return json ? via_daemon_json(CLI_EXIT_USAGE, pid, NULL, NULL,
		                              err)
		            : CLI_EXIT_USAGE;
	}
	gen = (uint64_t)json_integer_value(json_object_get(r, "generation"));
	json_decref(r);
	if (!json) {
		printf("sync: asked the daemon (pid %d) to reconcile every "
		       "set\n",
		       pid);
		fflush(stdout);
	}
	for (;;) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		uint64_t now = hs_now_mono_ns();
		size_t i, nh, nf;
		json_t *v;

		nanosleep(&ts, NULL);
		r = NULL;
		if (ctl_request(conf->state_dir, "progress", 2000, &r) < 0) {
			if (hs_daemon_pid(conf->state_dir) == 0) {
				snprintf(err, sizeof(err),
				         "the daemon stopped before the "
				         "reconciliation finished");
				break;
			}
			continue; /* busy: ask again */
		}
		if (!json_is_true(json_object_get(r, "connected"))) {
			if (gone_since == 0)
				gone_since = now;
			if (now - gone_since >
			    conf->peer_timeout * 2 * 1000000000ull) {
				snprintf(err, sizeof(err),
				         "the daemon cannot reach the "
				         "standby %s",
				         conf->peer);
				json_decref(r);
				break;
			}
		} else
			gone_since = 0;
		if ((uint64_t)json_integer_value(json_object_get(r, "done")) <
		    gen) {
			json_decref(r);
			continue;
		}
		nh = json_array_size(json_object_get(r, "held"));
		nf = json_array_size(json_object_get(r, "failed"));
		json_array_foreach(json_object_get(r, "held"), i, v)
		    cli_err("sync",
		            "set %s: deletions held back; stop the "
		            "daemon and run `hamnsync sync --allow-deletes %s`",
		            json_string_value(v), json_string_value(v));
		json_array_foreach(json_object_get(r, "failed"), i, v)
		    cli_err("sync", "set %s: errors (see the daemon's log)",
		            json_string_value(v));
		ex = nh + nf ? CLI_EXIT_DIFFER : CLI_EXIT_OK;
		if (json)
			via_daemon_json(ex, pid, json_object_get(r, "held"),
			                json_object_get(r, "failed"), NULL);
		else
			printf("sync: every set reconciled by the daemon%s\n",
			       nh + nf ? "; differences remain" : "");
		json_decref(r);
		return ex;
	}
	cli_err("sync", "%s", err);
	return json ? via_daemon_json(CLI_EXIT_PEER, pid, NULL, NULL, err)
	            : CLI_EXIT_PEER;
}

struct sync_out {
	int json;
	struct cli_run run;
};

/* send_opts.dry_cb: one line per entry, or one entry of --json. */
static void
on_entry(void *arg, const char *action, const char *path)
{
	struct sync_out *so = arg;
	json_t *e;

	if (!so->json) {
		printf("%-8s %s\n", action, cli_show(path));
		return;
	}
	e = json_object();
	json_object_set_new(e, "action", json_string(action));
	cli_run_entry(&so->run, e, path);
}

/* The summary line of a run that completed. */
static void
sync_summary(const struct send_report *rep, int dry_run)
{
	char sent[32], wire[32], delta[32], covered[32], patched[48];

	human(rep->bytes_sent, sent, sizeof(sent));
	human(rep->wire_out, wire, sizeof(wire));
	human(rep->delta_bytes, delta, sizeof(delta));
	human(rep->delta_covered, covered, sizeof(covered));
	/* Deltas sent as changed blocks against a record (delta.h). */
	snprintf(patched, sizeof(patched), ", %llu by blocks",
	         (unsigned long long)rep->patch_files);
	printf(
	    "sync%s: %llu files (%s), %llu deltas (%s for %s%s), "
	    "%llu metadata, %llu deleted, %llu held, %llu dirs, "
	    "%llu symlinks, %llu links, %llu special, %llu unchanged; "
	    "%s on the wire; %llu errors\n",
	    dry_run ? " (dry run)" : "", (unsigned long long)rep->files_sent,
	    sent, (unsigned long long)rep->delta_files, delta, covered,
	    rep->patch_files ? patched : "", (unsigned long long)rep->meta_only,
	    (unsigned long long)rep->deleted, (unsigned long long)rep->held,
	    (unsigned long long)rep->dirs, (unsigned long long)rep->symlinks,
	    (unsigned long long)rep->links, (unsigned long long)rep->specials,
	    (unsigned long long)rep->unchanged, wire,
	    (unsigned long long)(rep->remote_errors + rep->sets_refused +
	                         rep->changed_during));
}

/* --json: the one object of a run (`error`: why it failed, or NULL). */
static void
sync_json(struct sync_out *so, const struct send_report *rep, int dry_run,
          int ex, const char *error)
{
	json_t *doc = json_object();

	json_object_set_new(doc, "exit", json_integer(ex));
	json_object_set_new(doc, "dry_run", json_boolean(dry_run));
	json_object_set(doc, "entries", so->run.entries);
	json_object_set(doc, "sets", so->run.sets);
	json_object_set_new(doc, "counts",
	                    cli_json_counts(sync_counts, N_COUNTS, rep, NULL));
	if (error != NULL)
		json_object_set_new(doc, "error", cli_json_path(error));
	cli_json_print(doc);
}

int
cli_sync(int argc, char **argv, const char *conf_opt)
{
	static const struct option opts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"progress", no_argument, NULL, 'p'},
	    {"allow-deletes", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sync_out so;
	struct send_opts o;
	struct send_report rep;
	struct idx_node node;
	struct idx *x = NULL;
	struct hs_conf *conf;
	char why[1024] = "";
	char *allow[64];
	int ch, rc, pid, ex, mark_rc = CLI_EXIT_OK, progress = 0;

	memset(&o, 0, sizeof(o));
	memset(&rep, 0, sizeof(rep));
	memset(&so, 0, sizeof(so));
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			o.dry_run = 1;
			break;
		case 'j':
			so.json = 1;
			break;
		case 'p':
			progress = isatty(STDOUT_FILENO);
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
	/* The progress line would break the one JSON object. */
	o.progress = progress && !so.json;
	if ((conf = cli_conf_load(cli_conf_path(conf_opt))) == NULL)
		return CLI_EXIT_USAGE;
	/* A bad identity is bad local configuration, whoever connects. */
	if ((o.tls = cli_identity_load(conf, "sync")) == NULL) {
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	if (cli_node_open(conf, &node, &x) < 0) {
		proto_tls_free(o.tls);
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	if (node.role != HS_ROLE_PRIMARY) {
		cli_err("sync",
		        "this node is the %s (per its index in %s); "
		        "sync runs on the primary",
		        hs_role_name(node.role), conf->state_dir);
		idx_close(x);
		proto_tls_free(o.tls);
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	o.epoch = node.epoch;
	if ((pid = hs_daemon_pid(conf->state_dir)) != 0) {
		idx_close(x);
		rc = sync_via_daemon(conf, &o, pid, so.json);
		proto_tls_free(o.tls);
		hs_conf_free(conf);
		return rc;
	}
	for (size_t i = 0; i < o.n_allow_deletes; i++)
		if (hs_conf_find_set(conf, allow[i]) == NULL) {
			cli_err("sync",
			        "--allow-deletes %s: no such [path] set",
			        allow[i]);
			idx_close(x);
			proto_tls_free(o.tls);
			hs_conf_free(conf);
			return CLI_EXIT_USAGE;
		}
	if (cli_run_init(&so.run, sync_counts, N_COUNTS) < 0) {
		cli_err("sync", "%s", hs_strerror(-ENOMEM));
		idx_close(x);
		proto_tls_free(o.tls);
		hs_conf_free(conf);
		return CLI_EXIT_USAGE;
	}
	o.dry_cb = on_entry;
	o.dry_arg = &so;
	o.set_cb = cli_run_set;
	o.set_arg = &so.run;
	/*
	 * Runs acknowledged here are recorded in the index too, so the
	 * daemon's next start compares stat fingerprints, not both trees.
	 */
	o.idx = o.dry_run ? NULL : x;
	if ((rc = sync_db_folders(conf, why, sizeof(why))) == HS_OK)
		rc = send_sync(conf, &o, &rep, why, sizeof(why));
	/*
	 * Its threads are joined.  Marked for the next start unless written
	 * within seconds (the usual case after changes); a daemon started
	 * meanwhile is seen by the mark's checks.  Damage found here was
	 * logged: this index must not be used again as it is.
	 */
	if (rc >= 0 && !o.dry_run && idx_mark_clean(x) == HS_EINDEX)
		mark_rc = CLI_EXIT_USAGE;
	idx_close(x);
	proto_tls_free(o.tls);
	hs_conf_free(conf);
	if (rc < 0) {
		ex = rc == HS_ECONFIG ? CLI_EXIT_USAGE : CLI_EXIT_PEER;
		cli_err("sync", "%s", cli_line(why[0] ? why : hs_strerror(rc)));
		if (so.json)
			sync_json(&so, &rep, o.dry_run, ex,
			          why[0] ? why : hs_strerror(rc));
		cli_run_free(&so.run);
		return ex;
	}
	ex = CLI_EXIT_OK;
	if (rep.remote_errors || rep.sets_refused || rep.changed_during ||
	    rep.held)
		ex = CLI_EXIT_DIFFER;
	if (mark_rc != CLI_EXIT_OK)
		ex = mark_rc;
	if (so.json)
		sync_json(&so, &rep, o.dry_run, ex, NULL);
	else
		sync_summary(&rep, o.dry_run);
	cli_run_free(&so.run);
	return ex;
}
