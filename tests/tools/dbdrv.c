/*
 * dbdrv.c - hs-dbdrv, one database driver operation in a job child,
 * for the database tests.
 *
 *	hs-dbdrv CONF NAME mark
 *	hs-dbdrv CONF NAME dump DIR
 *	hs-dbdrv CONF NAME restore DIR
 *	hs-dbdrv CONF NAME run SECONDS
 *
 * Loads CONF, finds [database NAME] and runs the operation of its type's
 * driver in a job child, as the daemons do, but waits for it.  Prints "mark
 * VALUE" for mark, "ok" for the others; on failure the driver's one-line
 * reason on stderr and exit 1.  Exit 2: bad usage or config.
 *
 * run drives the manager instead (dbr_open in CONF's role, dbr_tick as a
 * daemon's loop does) until database NAME has made a snapshot (primary)
 * or restored one (standby), or SECONDS pass: on a standby the snapshot
 * folder state_dir/db/NAME/ is filled by the caller, standing in for the
 * replication.  Prints the database's status in one line; exit 1 when
 * that did not happen in time.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbrepl_int.h"

static int
usage(void)
{
	fprintf(stderr, "usage: hs-dbdrv CONF NAME mark|dump DIR|restore "
	                "DIR|run SECONDS\n");
	return 2;
}

static const struct hs_database *
find_db(const struct hs_conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_dbs; i++) {
		if (strcmp(c->dbs[i].name, name) == 0)
			return &c->dbs[i];
	}
	return NULL;
}

/*
 * Run op on d in a job child, as the daemons do (its own process group,
 * killed at the database's timeout), and wait for it.  1: no such op.
 */
static int
run_op(const struct dbr_db *d, const char *op, const char *dir,
       struct dbr_result *res)
{
	struct dbr_job j;
	enum dbr_op o;
	int rc;

	if (strcmp(op, "mark") == 0 && dir == NULL)
		o = DBR_OP_MARK;
	else if (strcmp(op, "dump") == 0 && dir != NULL)
		o = DBR_OP_DUMP;
	else if (strcmp(op, "restore") == 0 && dir != NULL)
		o = DBR_OP_RESTORE;
	else
		return 1;
	if ((rc = dbr_job_start(&j, d, o, dir, 0)) < 0) {
		dbr_fail(res, rc, "cannot start the job: %s", hs_strerror(rc));
		return 0;
	}
	dbr_job_wait(&j);
	*res = j.res;
	return 0;
}

/* Has database i done what `run` waits for? */
static int
run_done(const struct dbr *r, size_t i, enum dbr_role role,
         struct dbr_status *st)
{
	dbr_status(r, i, st);
	if (role == DBR_PRIMARY)
		return st->dumps > 0 && strcmp(st->state, "ok") == 0;
	return st->restores > 0;
}

/* The manager's loop for database `name`, at most `secs` seconds. */
static int
run_manager(const struct hs_conf *c, const struct hs_database *db,
            const char *secs)
{
	enum dbr_role role = c->role == HS_ROLE_PRIMARY ? DBR_PRIMARY
	                                                : DBR_STANDBY;
	time_t end = time(NULL) + atoi(secs);
	struct dbr_status st;
	char set[256];
	struct dbr *r;
	size_t i;
	int rc, done = 0, ms;

	if ((rc = dbr_open(c, role, &r)) < 0) {
		fprintf(stderr, "hs-dbdrv: dbr_open: %s\n", hs_strerror(rc));
		return 1;
	}
	for (i = 0; i < dbr_count(r); i++) {
		dbr_status(r, i, &st);
		if (strcmp(st.name, db->name) == 0)
			break;
	}
	dbr_set_name(db, set, sizeof(set));
	dbr_touched(r, set);
	while (!(done = run_done(r, i, role, &st)) && time(NULL) < end) {
		dbr_tick(r);
		ms = dbr_next_ms(r);
		poll(NULL, 0, ms < 0 || ms > 100 ? 100 : ms);
	}
	printf("state=%s dumps=%llu restores=%llu bytes=%lld error=%s\n",
	       st.state, (unsigned long long)st.dumps,
	       (unsigned long long)st.restores, (long long)st.bytes,
	       st.error[0] ? st.error : "-");
	dbr_free(r);
	return done ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct dbr_result res = {.rc = HS_OK};
	struct hs_conf *c;
	struct dbr_db d;
	char err[HS_ERRMSG_MAX];
	int rc;

	if (argc < 4 || argc > 5)
		return usage();
	hs_log_init("hs-dbdrv", 1, HS_LOG_INFO);
	if (hs_conf_load(argv[1], &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "hs-dbdrv: %s\n", err);
		return 2;
	}
	d.conf = c;
	if ((d.db = find_db(c, argv[2])) == NULL) {
		fprintf(stderr, "hs-dbdrv: no [database %s] in %s\n", argv[2],
		        argv[1]);
		hs_conf_free(c);
		return 2;
	}
	if (strcmp(argv[3], "run") == 0 && argc == 5) {
		rc = run_manager(c, d.db, argv[4]);
		hs_conf_free(c);
		return rc;
	}
	d.drv = dbr_driver_of(d.db->type);
	if (run_op(&d, argv[3], argc == 5 ? argv[4] : NULL, &res) != 0) {
		hs_conf_free(c);
		return usage();
	}
	if (res.rc < 0) {
		fprintf(stderr, "hs-dbdrv: %s\n", res.why);
		rc = 1;
	} else {
		if (strcmp(argv[3], "mark") == 0)
			printf("mark %s\n", res.mark);
		else
			printf("ok\n");
		rc = 0;
	}
	hs_conf_free(c);
	return rc;
}
