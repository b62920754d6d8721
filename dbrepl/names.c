/*
 * names.c - the names dbrepl gives: database types and the path sets that
 * carry snapshots.  Apart, so that the job runner and the drivers can
 * name things without the manager.
 */
#include <stdio.h>
#include <string.h>

#include "dbrepl_int.h"

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
