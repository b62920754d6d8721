/*
 * dbrepl.h - database snapshot and restore drivers (sqlite, postgresql,
 * mysql, db2), run as child processes.  Not built yet: the database issue
 * fills this module.  Until then it only names the drivers it will have.
 */
#ifndef DBREPL_H
#define DBREPL_H

#include "hs.h"

/* Printable name of a database type ("sqlite", ...). */
const char *dbr_type_name(enum hs_db_type t);

#endif /* DBREPL_H */
