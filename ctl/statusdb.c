/*
 * statusdb.c - the databases in the status object: what the manager
 * (dbrepl.h) says of each, and the warnings and readiness it implies.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* A snapshot older than this many intervals, while changed, is stale. */
#define ST_STALE_INTERVALS 3

static void
db_warn_stale(struct st_view *v, const struct hs_database *db,
              const struct dbr_status *s)
{
	double limit = (double)(ST_STALE_INTERVALS * db->interval);

	if (strcmp(s->state, "stale") != 0 &&
	    !(s->changed > 0 && s->age >= 0 && s->age > limit))
		return;
	if (s->age >= 0)
		st_warn(v, "warning",
		        "database %s: snapshot %.0f s old, older than %d x "
		        "interval (%llu s) while the database changed",
		        s->name, s->age, ST_STALE_INTERVALS,
		        (unsigned long long)db->interval);
	else
		st_warn(v, "warning", "database %s: no snapshot yet (stale)",
		        s->name);
}

/* A failure, in the words of what failed, named once. */
static void
db_warn_error(struct st_view *v, const struct dbr_status *s)
{
	char pre[HS_ERRMSG_MAX];
	int n = snprintf(pre, sizeof(pre), "database %s:", s->name);

	if (n > 0 && strncmp(s->error, pre, (size_t)n) == 0)
		st_warn(v, "warning", "%s", s->error);
	else
		st_warn(v, "warning", "database %s: %s", s->name,
		        s->error[0] ? s->error : "failed");
}

/* DB2 replicates itself: HADR read, and not PEER and CONNECTED. */
static int
db_hadr_bad(const struct dbr_status *s)
{
	if (s->hadr_state[0] == '\0' && s->hadr_connect[0] == '\0')
		return 0;
	return strcmp(s->hadr_state, "PEER") != 0 ||
	       strcmp(s->hadr_connect, "CONNECTED") != 0;
}

static void
db_warn_hadr(struct st_view *v, const struct dbr_status *s)
{
	st_warn(v, "warning",
	        "database %s: DB2 HADR state %s, connect status %s (not "
	        "PEER/CONNECTED)",
	        s->name, s->hadr_state[0] ? s->hadr_state : "unknown",
	        s->hadr_connect[0] ? s->hadr_connect : "unknown");
}

void
st_databases(struct st_view *v, const struct dbr *r, int standby)
{
	const struct hs_database *db;
	struct dbr_status *s;
	size_t i, n = r != NULL ? dbr_count(r) : 0;

	for (i = 0; i < n && i < ST_DBS_MAX; i++) {
		s = &v->dbs[i];
		db = &v->conf->dbs[i];
		dbr_status(r, i, s);
		v->n_dbs = i + 1;
		/* An unhealthy HADR is the error too: said once. */
		if (db_hadr_bad(s))
			db_warn_hadr(v, s);
		else if (strcmp(s->state, "error") == 0)
			db_warn_error(v, s);
		db_warn_stale(v, db, s);
		if (!standby ||
		    dbr_ready(r, i, v->db_why[i], sizeof(v->db_why[i])))
			continue;
		v->ready = 0;
		if (v->n_reasons < ST_REASONS_MAX)
			v->reasons[v->n_reasons++] = v->db_why[i];
	}
}
