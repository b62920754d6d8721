/*
 * metrics.c - the node-exporter textfile (metrics_file) written from a
 * status object and the daemon's counters.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ctl.h"

static double
jnum(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(b ? json_object_get(o, a) : o, b ? b : a);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static void
metric(FILE *f, const char *name, const char *type, const char *help, double v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	if (isnan(v))
		fprintf(f, "%s NaN\n", name);
	else
		fprintf(f, "%s %.17g\n", name, v);
}

int
st_metrics_write(const char *path, json_t *st, const struct st_counters *c)
{
	struct iovec iov;
	char tmp[4200], *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if ((f = open_memstream(&text, &len)) == NULL)
		return -errno;
	metric(f, "hamnsync_lag_seconds", "gauge",
	       "Age of the oldest change not yet durable on the standby.",
	       jnum(st, "lag", "seconds"));
	metric(f, "hamnsync_pending_files", "gauge",
	       "Changed paths waiting to be replicated.",
	       jnum(st, "lag", "files_pending"));
	metric(f, "hamnsync_pending_bytes", "gauge",
	       "Bytes waiting to be replicated (NaN: not known).",
	       jnum(st, "lag", "bytes_pending"));
	metric(f, "hamnsync_peer_last_heard_seconds", "gauge",
	       "Seconds since the peer was last heard.",
	       jnum(st, "peer", "last_heard_seconds"));
	metric(f, "hamnsync_promote_ready", "gauge",
	       "1 when this standby may be promoted without loss.",
	       json_is_true(json_object_get(
	           json_object_get(st, "promote_ready"), "ready"))
	           ? 1
	           : 0);
	metric(f, "hamnsync_epoch", "gauge", "Cluster epoch of this node.",
	       jnum(st, "epoch", NULL));
	metric(f, "hamnsync_watches", "gauge", "inotify watches in use.",
	       (double)c->watches);
	metric(f, "hamnsync_sent_bytes_total", "counter",
	       "Bytes written to the peer, TLS included.",
	       (double)c->bytes_sent);
	metric(f, "hamnsync_received_bytes_total", "counter",
	       "Bytes read from the peer, TLS included.",
	       (double)c->bytes_received);
	metric(f, "hamnsync_files_applied_total", "counter",
	       "Entries created, changed or deleted on the standby.",
	       (double)c->files_applied);
	metric(f, "hamnsync_reconnects_total", "counter",
	       "Sessions to the peer opened after the first.",
	       (double)c->reconnects);
	metric(f, "hamnsync_express_runs_total", "counter",
	       "Express lane runs: small changes sent during long runs.",
	       (double)c->express_runs);
	fprintf(f,
	        "# HELP hamnsync_errors_total Errors by kind.\n"
	        "# TYPE hamnsync_errors_total counter\n"
	        "hamnsync_errors_total{kind=\"standby\"} %llu\n"
	        "hamnsync_errors_total{kind=\"changed_while_read\"} %llu\n"
	        "hamnsync_errors_total{kind=\"session\"} %llu\n",
	        (unsigned long long)c->errors_remote,
	        (unsigned long long)c->errors_changed,
	        (unsigned long long)c->errors_session);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	/*
	 * Not flushed to disk: a scrape after a crash may miss a file the
	 * daemon rewrites within 2 s of its start, and an fsync every 2 s
	 * in the daemon's loop delayed the next change behind the disk.
	 */
	iov.iov_base = text;
	iov.iov_len = len;
	rc = hs_replace_file(path, tmp, 0644, &iov, 1);
	free(text);
	return rc;
}
