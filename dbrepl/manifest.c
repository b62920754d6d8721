/* manifest.c - (scaffold: the database issue fills it) */
#include "dbrepl_int.h"
