/* sqlite.c - (scaffold: the database issue fills it) */
#include "dbrepl_int.h"

const struct dbr_driver dbr_sqlite = {
    .type = HS_DB_SQLITE,
};
