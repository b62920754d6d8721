/* dbrepl.c - database drivers (names only so far). */
#include "dbrepl.h"

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
