/*
 * cmd_status.c - `hamnsync status`: role, peer, lag, per-set state and
 * promote readiness, as one screen or SPEC.md's JSON, with Nagios exit
 * codes.  Asks the daemon through its control socket (2 s at most); when
 * no daemon answers, reads the node state in the index and the last
 * status the daemon saved (state_dir/status.json).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "idx.h"
#include "proto.h"
#include "ctl.h"
#include "primary.h"

#define STATUS_WAIT_MS 2000

static const char status_usage[] =
    "usage: hamnsync [-c FILE] status [--json] [--watch] [--warn-lag S] "
    "[--crit-lag S]\n"
    "  exit (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n";

static const char *const sev_name[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

static void
add_warning(json_t *st, const char *sev, const char *text)
{
	json_t *w = json_object(), *arr = json_object_get(st, "warnings");

	if (!json_is_array(arr)) {
		arr = json_array();
		json_object_set_new(st, "warnings", arr);
	}
	json_object_set_new(w, "severity", json_string(sev));
	json_object_set_new(w, "text", json_string(text));
	json_array_append_new(arr, w);
}

/*
 * A daemon that holds its pid file but does not answer: its pid, and
 * why, in `text` ("stopped by a signal" when the kernel says so).
 */
static void
not_answering_text(int pid, char *text, size_t len)
{
	char path[64], buf[512], *rp;
	FILE *f;
	int stopped = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (pid > 0 && (f = fopen(path, "re")) != NULL) {
		/* "pid (comm) S ...": the state follows the last ')'. */
		if (fgets(buf, sizeof(buf), f) != NULL &&
		    (rp = strrchr(buf, ')')) != NULL && rp[1] == ' ')
			stopped = rp[2] == 'T' || rp[2] == 't';
		fclose(f);
	}
	if (pid > 0)
		snprintf(text, len,
		         "the hamnsync daemon (pid %d) is not answering "
		         "within %d s: %s; its last saved status follows",
		         pid, STATUS_WAIT_MS / 1000,
		         stopped ? "the process is stopped (SIGSTOP or a "
		                   "debugger)"
		                 : "busy, hung or overloaded");
	else
		snprintf(text, len,
		         "the hamnsync daemon is not answering within %d s "
		         "(its control socket accepts, nothing replies); "
		         "its last saved status follows",
		         STATUS_WAIT_MS / 1000);
}

/* Seconds since the RFC 3339 UTC time `t` (as status writes it), or -1. */
static double
age_of(const char *t)
{
	struct tm tm;
	struct timespec now;
	const char *rest;
	double made, age;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || (rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return -1;
	made = (double)timegm(&tm) + (rest[0] == '.' ? atof(rest) : 0);
	clock_gettime(CLOCK_REALTIME, &now);
	age = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - made;
	/* Made this instant, or a clock stepped back: 0. */
	return age > 0 ? age : 0;
}

/* A saved status keeps no ages (they grow): count them from the times. */
static void
stopped_db_ages(json_t *st)
{
	json_t *d;
	size_t i;
	double age;

	json_array_foreach(json_object_get(st, "databases"), i, d)
	{
		age = age_of(
		    json_string_value(json_object_get(d, "last_snapshot")));
		json_object_set_new(d, "snapshot_age_seconds",
		                    age < 0 ? json_null() : json_real(age));
	}
}

/*
 * The status of a daemon that is not running, or not answering
 * (`not_answering` set, with its reason): the index's node state and the
 * status it last saved, and one verdict about the daemon.
 */
static int
status_stopped(const struct hs_conf *conf, const char *not_answering,
               json_t **out, char *why, size_t whylen)
{
	struct idx *x;
	struct idx_node node;
	char *saved = NULL, *rec = NULL, fenced[HS_ERRMSG_MAX];
	size_t len, rec_len = 0;
	json_t *st = NULL, *peer, *ready, *reasons;
	int rc, absent;

	rc = idx_open(conf->state_dir, 1, &x);
	if (rc == HS_ENOTFOUND) {
		snprintf(why, whylen,
		         "no index in %s: the daemon never ran "
		         "here",
		         conf->state_dir);
		return rc;
	}
	if (rc < 0) {
		snprintf(why, whylen, "cannot read the index in %s: %s",
		         conf->state_dir, hs_strerror(rc));
		return rc;
	}
	if ((rc = idx_node_get(x, &node)) < 0) {
		snprintf(why, whylen, "index in %s has no node state: %s",
		         conf->state_dir, hs_strerror(rc));
		idx_close(x);
		return rc;
	}
	/*
	 * Daemons before status.json kept their status in the index: read
	 * only when there is no file (an empty one, after a crash, is not
	 * replaced by a status from before the upgrade).
	 */
	if ((st = st_saved_load(conf->state_dir, &absent)) == NULL && absent &&
	    idx_blob_get(x, "status", &saved, &len) == HS_OK)
		st = json_loads(saved, 0, NULL);
	free(saved);
	/*
	 * Fenced by a newer epoch, or by a promote of this node that did
	 * not finish: said as the running daemon says it.
	 */
	fenced[0] = '\0';
	if (node.flags & IDX_NODE_F_REJOIN) {
		if (idx_blob_get(x, ST_FENCED_KEY, &rec, &rec_len) < 0)
			rec = NULL;
		st_fenced_text(fenced, sizeof(fenced), rec, rec_len,
		               node.epoch);
		free(rec);
	} else if (node.flags & IDX_NODE_F_PROMOTING)
		/* As the running standby says it, and what to do now. */
		snprintf(fenced, sizeof(fenced),
		         "promote in progress on %s: fenced at epoch %llu, "
		         "role still %s; `hamnsync promote` resumes it",
		         conf->node_name, (unsigned long long)node.epoch,
		         hs_role_name(node.role));
	idx_close(x);
	if (st == NULL) {
		/* Never saved: what the node state alone says. */
		struct st_view v;

		memset(&v, 0, sizeof(v));
		v.conf = conf;
		v.role = hs_role_name(node.role);
		v.epoch = node.epoch;
		v.peer_epoch = -1;
		v.last_heard = v.lag = v.rpo = v.last_applied_unix = -1;
		v.files_pending = v.bytes_pending = -1;
		st = st_json(&v);
	}
	/* Role and epoch come from the node state, the rest is history. */
	json_object_set_new(st, "role", json_string(hs_role_name(node.role)));
	json_object_set_new(st, "epoch", json_integer((json_int_t)node.epoch));
	json_object_set_new(
	    st, "daemon",
	    json_string(not_answering ? "not answering" : "stopped"));
	stopped_db_ages(st);
	/* Nothing is known to be in flight or applied while stopped. */
	json_object_set_new(json_object_get(st, "lag"), "seconds", json_null());
	peer = json_object_get(st, "peer");
	if (json_is_object(peer)) {
		json_object_set_new(peer, "state", json_null());
		json_object_set_new(peer, "last_heard_seconds", json_null());
	}
	ready = json_object();
	reasons = json_array();
	json_array_append_new(
	    reasons, json_string(not_answering ? not_answering
	                                       : "the hamnsync daemon is "
	                                         "stopped on this node"));
	if (fenced[0] != '\0')
		json_array_append_new(reasons, json_string(fenced));
	json_object_set_new(ready, "ready", json_false());
	json_object_set_new(ready, "rpo_seconds", json_null());
	json_object_set_new(ready, "reasons", reasons);
	json_object_set_new(st, "promote_ready", ready);
	json_object_set_new(st, "warnings", json_array());
	add_warning(st, "critical",
	            not_answering ? not_answering
	                          : "the hamnsync daemon is stopped");
	if (fenced[0] != '\0')
		add_warning(st, "critical", fenced);
	*out = st;
	return HS_OK;
}

/*
 * Why this node's own identity (certificate, private key, CA file) does
 * not load, in `why`, or "" when it loads.  Said by status so that a
 * daemon that cannot start, or cannot restart, is not blamed on the peer.
 * A file this user may not read is not judged: status runs as a
 * monitoring user too, and the daemon as root.
 */
static void
status_identity(const struct hs_conf *conf, char *why, size_t whylen)
{
	struct proto_tls *t;
	int rc;

	why[0] = '\0';
	rc = proto_tls_from_conf(conf, &t, why, whylen);
	if (rc == HS_OK)
		proto_tls_free(t);
	if (rc == HS_OK || (rc == -EACCES && geteuid() != 0))
		why[0] = '\0';
}

/*
 * The identity fault `idwhy` as a warning of the status of a daemon that
 * does not answer (one that does says it itself: st_warn_identity).
 */
static void
status_identity_warn(json_t *st, const char *idwhy)
{
	char text[HS_ERRMSG_MAX + 96];

	snprintf(text, sizeof(text), "%s; the daemon cannot start with it",
	         idwhy);
	add_warning(st, "critical", text);
}

/* Nagios severity of a status object, adding the lag warnings. */
static int
severity(json_t *st, double warn_lag, double crit_lag)
{
	json_t *lag = json_object_get(json_object_get(st, "lag"), "seconds");
	json_t *peer = json_object_get(st, "peer"), *w, *p;
	const char *role = json_string_value(json_object_get(st, "role"));
	const char *prole = json_string_value(json_object_get(peer, "role"));
	char text[160];
	size_t i;
	int sev = 0;

	if (json_is_number(lag)) {
		double l = json_number_value(lag);

		if (l > crit_lag) {
			snprintf(text, sizeof(text), "lag %.1f s over %.0f s",
			         l, crit_lag);
			add_warning(st, "critical", text);
		} else if (l > warn_lag) {
			snprintf(text, sizeof(text), "lag %.1f s over %.0f s",
			         l, warn_lag);
			add_warning(st, "warning", text);
		}
	}
	/*
	 * Two nodes of one role; of two primaries at different epochs the
	 * newer one wins, and each says so itself (fenced, refused).
	 */
	if (role != NULL && prole != NULL && strcmp(role, prole) == 0 &&
	    (!json_is_integer(json_object_get(peer, "epoch")) ||
	     json_equal(json_object_get(peer, "epoch"),
	                json_object_get(st, "epoch")))) {
		snprintf(text, sizeof(text),
		         "suspected split brain: the peer "
		         "is %s too",
		         prole);
		add_warning(st, "critical", text);
	}
	json_array_foreach(json_object_get(st, "paths"), i, p)
	{
		const char *s = json_string_value(json_object_get(p, "state"));

		if (s != NULL && strcmp(s, "error") == 0) {
			snprintf(text, sizeof(text),
			         "set %s: errors in the last "
			         "reconciliation (see the daemon's log)",
			         json_string_value(json_object_get(p, "name")));
			add_warning(st, "warning", text);
		}
	}
	json_array_foreach(json_object_get(st, "warnings"), i, w)
	{
		const char *s =
		    json_string_value(json_object_get(w, "severity"));

		if (s != NULL && strcmp(s, "critical") == 0)
			sev = 2;
		else if (s != NULL && sev < 1)
			sev = 1;
	}
	return sev;
}

static void
print_num(const char *label, json_t *v, const char *unit)
{
	if (json_is_number(v))
		printf("%s%.2f%s", label, json_number_value(v), unit);
	else
		printf("%s-", label);
}

/* One line per database: state, snapshot and its age, counts, error. */
static void
print_db(json_t *d)
{
	json_t *snap = json_object_get(d, "last_snapshot");
	json_t *err = json_object_get(d, "error");
	json_t *h = json_object_get(d, "hadr");
	const char *state = json_string_value(json_object_get(d, "state"));

	printf("database %-16s %-12s %s",
	       json_string_value(json_object_get(d, "name")),
	       state != NULL ? state : "unknown",
	       json_string_value(json_object_get(d, "type")));
	/* DB2 replicates itself: its HADR state, no snapshots. */
	if (json_is_object(h)) {
		printf(", HADR %s %s %s",
		       json_string_value(json_object_get(h, "role")),
		       json_string_value(json_object_get(h, "state")),
		       json_string_value(json_object_get(h, "connect")));
		if (json_is_integer(json_object_get(h, "log_gap_bytes")))
			printf(", log gap %lld bytes",
			       (long long)json_integer_value(
			           json_object_get(h, "log_gap_bytes")));
	} else if (json_is_string(snap)) {
		printf(", snapshot %s", json_string_value(snap));
		print_num(" (", json_object_get(d, "snapshot_age_seconds"),
		          " s ago)");
	} else
		printf(", no snapshot yet");
	if (!json_is_object(h) && json_is_integer(json_object_get(d, "bytes")))
		printf(", %lld bytes", (long long)json_integer_value(
		                           json_object_get(d, "bytes")));
	if (!json_is_object(h) && json_is_integer(json_object_get(d, "dumps")))
		printf(
		    ", %lld dumps, %lld restores",
		    (long long)json_integer_value(json_object_get(d, "dumps")),
		    (long long)json_integer_value(
		        json_object_get(d, "restores")));
	if (json_is_string(err))
		printf(", error: %s", json_string_value(err));
	printf("\n");
}

static void
print_human(json_t *st, int sev)
{
	json_t *peer = json_object_get(st, "peer");
	json_t *lag = json_object_get(st, "lag");
	json_t *ready = json_object_get(st, "promote_ready"), *p, *w, *r;
	size_t i;

	printf("hamnsync %s: %s %s, epoch %lld, daemon %s\n", sev_name[sev],
	       json_string_value(json_object_get(st, "node")),
	       json_string_value(json_object_get(st, "role")),
	       (long long)json_integer_value(json_object_get(st, "epoch")),
	       json_string_value(json_object_get(st, "daemon")));
	printf("peer     %s (%s) %s",
	       json_string_value(json_object_get(peer, "address")),
	       json_is_string(json_object_get(peer, "name"))
	           ? json_string_value(json_object_get(peer, "name"))
	           : "?",
	       json_is_string(json_object_get(peer, "state"))
	           ? json_string_value(json_object_get(peer, "state"))
	           : "unknown");
	print_num(", last heard ", json_object_get(peer, "last_heard_seconds"),
	          " s ago");
	printf("\n");
	print_num("lag      ", json_object_get(lag, "seconds"), " s");
	printf(", %lld files pending, last applied %s\n",
	       (long long)json_integer_value(
	           json_object_get(lag, "files_pending")),
	       json_is_string(json_object_get(lag, "last_applied"))
	           ? json_string_value(json_object_get(lag, "last_applied"))
	           : "-");
	json_array_foreach(json_object_get(st, "paths"), i, p)
	{
		double prog = json_number_value(json_object_get(p, "progress"));
		const char *state =
		    json_string_value(json_object_get(p, "state"));
		char bar[21];
		int k;

		for (k = 0; k < 20; k++)
			bar[k] = k < (int)(prog * 20) ? '#' : '.';
		bar[20] = '\0';
		printf("set      %-16s %-12s",
		       json_string_value(json_object_get(p, "name")), state);
		if (state != NULL && strcmp(state, "seeding") == 0)
			printf(" [%s] %3.0f%%", bar, prog * 100);
		if (json_is_integer(json_object_get(p, "files")))
			printf(" %lld files", (long long)json_integer_value(
			                          json_object_get(p, "files")));
		printf("\n");
	}
	json_array_foreach(json_object_get(st, "databases"), i, p) print_db(p);
	printf("promote  %s", json_is_true(json_object_get(ready, "ready"))
	                          ? "ready"
	                          : "NOT ready");
	print_num(", rpo ", json_object_get(ready, "rpo_seconds"), " s");
	printf("\n");
	json_array_foreach(json_object_get(ready, "reasons"), i, r)
	    printf("         - %s\n", json_string_value(r));
	json_array_foreach(json_object_get(st, "warnings"), i, w)
	    printf("%-8s %s\n",
	           strcmp(json_string_value(json_object_get(w, "severity")),
	                  "critical") == 0
	               ? "CRIT"
	               : "WARN",
	           json_string_value(json_object_get(w, "text")));
}

/*
 * No status to show: "<SEVERITY>: <why>" on stderr, and with --json as
 * {"error": ...} on stdout, escaped by jansson since `why` names paths,
 * which may hold quotes or backslashes.  Returns `sev`.
 */
static int status_error(int json, int sev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
status_error(int json, int sev, const char *fmt, ...)
{
	char text[HS_ERRMSG_MAX + 640];
	va_list ap;
	json_t *j;
	int n;

	n = snprintf(text, sizeof(text), "%s: ", sev_name[sev]);
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	va_end(ap);
	if (json && (j = json_pack("{s:s}", "error", text)) != NULL) {
		json_dumpf(j, stdout, 0);
		putchar('\n');
		json_decref(j);
	}
	cli_err("status", "%s", text);
	return sev;
}

/* One status: print it, return its Nagios code. */
static int
status_once(const struct hs_conf *conf, int json, double warn_lag,
            double crit_lag)
{
	char why[512] = "", idwhy[HS_ERRMSG_MAX];
	json_t *st = NULL;
	int rc, sev;

	rc = ctl_request(conf->state_dir, "status", STATUS_WAIT_MS, &st);
	if (rc == -EACCES) {
		cli_err("status",
		        "UNKNOWN: permission denied on %s/%s: root "
		        "or a member of status_group may read status",
		        conf->state_dir, CTL_SOCK_NAME);
		return CLI_NAGIOS_UNKNOWN;
	}
	if (rc < 0) {
		/*
		 * No answer in time from a socket that accepts, or no socket
		 * while a live process holds the pid file: a daemon that
		 * runs but does not answer (frozen, hung, or starting).
		 */
		char na[300];
		int pid = hs_daemon_pid(conf->state_dir);
		int silent = rc == HS_ETIMEOUT || pid != 0;

		/* No daemon answers to say whether its identity loads. */
		status_identity(conf, idwhy, sizeof(idwhy));
		if (silent)
			not_answering_text(pid, na, sizeof(na));
		if (status_stopped(conf, silent ? na : NULL, &st, why,
		                   sizeof(why)) < 0) {
			/*
			 * An identity the daemon cannot start with (so it
			 * may never have made an index): that, not the
			 * missing state, is news.
			 */
			if (idwhy[0] != '\0')
				return status_error(
				    json, CLI_NAGIOS_CRITICAL,
				    "%s; the daemon cannot start with it (%s)",
				    idwhy, why);
			return status_error(json, CLI_NAGIOS_UNKNOWN, "%s",
			                    why);
		}
		if (idwhy[0] != '\0')
			status_identity_warn(st, idwhy);
	}
	if (json_object_get(st, "error") != NULL) {
		cli_err("status", "UNKNOWN: %s",
		        json_string_value(json_object_get(st, "error")));
		json_decref(st);
		return CLI_NAGIOS_UNKNOWN;
	}
	sev = severity(st, warn_lag, crit_lag);
	if (json) {
		json_dumpf(st, stdout, JSON_INDENT(2));
		putchar('\n');
	} else
		print_human(st, sev);
	json_decref(st);
	return sev;
}

int
cli_status(int argc, char **argv, const char *conf_opt)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"watch", no_argument, NULL, 'w'},
	    {"warn-lag", required_argument, NULL, 'W'},
	    {"crit-lag", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct hs_conf *conf;
	double warn_lag = 30, crit_lag = 300;
	int ch, json = 0, watch = 0, rc;
	uint64_t v;

	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'w':
			watch = 1;
			break;
		case 'W':
		case 'C':
			if (hs_parse_u64(optarg, 0, 1000000000, &v) < 0) {
				cli_err("status",
				        "%s needs whole seconds, not "
				        "'%s'",
				        ch == 'W' ? "--warn-lag" : "--crit-lag",
				        optarg);
				return CLI_NAGIOS_UNKNOWN;
			}
			*(ch == 'W' ? &warn_lag : &crit_lag) = (double)v;
			break;
		case 'c':
			conf_opt = optarg;
			break;
		case 'h':
			fputs(status_usage, stdout);
			return 0;
		default:
			fputs(status_usage, stderr);
			return CLI_NAGIOS_UNKNOWN;
		}
	}
	if (optind != argc) {
		cli_err("status", "unexpected argument '%s'", argv[optind]);
		return CLI_NAGIOS_UNKNOWN;
	}
	if ((conf = cli_conf_load(cli_conf_path(conf_opt))) == NULL)
		return CLI_NAGIOS_UNKNOWN;
	if (!watch || !isatty(STDOUT_FILENO)) {
		rc = status_once(conf, json, warn_lag, crit_lag);
		hs_conf_free(conf);
		return rc;
	}
	for (;;) {
		struct timespec ts = {1, 0};

		printf("\033[H\033[J");
		rc = status_once(conf, json, warn_lag, crit_lag);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
