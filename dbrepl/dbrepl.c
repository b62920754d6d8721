/*
 * dbrepl.c - the manager: which database is due for what, its children,
 * its status.  (Scaffold: the database issue fills it.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbrepl_int.h"

struct dbr {
	const struct hs_conf *conf;
	enum dbr_role role;
};

const char *
dbr_type_name(enum hs_db_type t)
{
	switch (t) {
	case HS_DB_SQLITE:
		return "sqlite";
	case HS_DB_POSTGRESQL:
		return "postgresql";
	case HS_DB_MYSQL:
		return "mysql";
	case HS_DB_DB2:
		return "db2";
	}
	return "unknown";
}

void
dbr_set_name(const struct hs_database *db, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", DBR_SET_PREFIX, db->name);
}

int
dbr_is_set_name(const char *name)
{
	return strncmp(name, DBR_SET_PREFIX, strlen(DBR_SET_PREFIX)) == 0;
}

const struct dbr_driver *
dbr_driver_of(enum hs_db_type t)
{
	switch (t) {
	case HS_DB_SQLITE:
		return &dbr_sqlite;
	case HS_DB_POSTGRESQL:
		return &dbr_postgresql;
	case HS_DB_MYSQL:
		return &dbr_mysql;
	case HS_DB_DB2:
		return &dbr_db2;
	}
	return NULL;
}

int
dbr_open(const struct hs_conf *conf, enum dbr_role role, struct dbr **out)
{
	struct dbr *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	r->conf = conf;
	r->role = role;
	*out = r;
	return HS_OK;
}

void
dbr_free(struct dbr *r)
{
	free(r);
}

void
dbr_tick(struct dbr *r)
{
	(void)r;
}

int
dbr_next_ms(const struct dbr *r)
{
	(void)r;
	return -1;
}

void
dbr_touched(struct dbr *r, const char *set_name)
{
	(void)r;
	(void)set_name;
}

size_t
dbr_count(const struct dbr *r)
{
	return r->conf->n_dbs;
}

void
dbr_status(const struct dbr *r, size_t i, struct dbr_status *out)
{
	const struct hs_database *db = &r->conf->dbs[i];

	memset(out, 0, sizeof(*out));
	out->name = db->name;
	out->type = dbr_type_name(db->type);
	out->state = "waiting";
	out->last_snapshot = out->age = out->last_restore = -1;
	out->bytes = out->hadr_log_gap = -1;
}

int
dbr_ready(const struct dbr *r, size_t i, char *why, size_t whylen)
{
	snprintf(why, whylen, "database %s: no snapshot yet",
	         r->conf->dbs[i].name);
	return 0;
}

int
dbr_promote(struct dbr *r, int force, char *why, size_t whylen)
{
	(void)r;
	(void)force;
	snprintf(why, whylen, "database restore not built");
	return -ENOSYS;
}
