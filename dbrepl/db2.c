/* db2.c - (scaffold: the database issue fills it) */
#include "dbrepl_int.h"

const struct dbr_driver dbr_db2 = {
    .type = HS_DB_DB2,
};
