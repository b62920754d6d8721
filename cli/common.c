/*
 * common.c - what every subcommand shares: the one-line error, and the
 * config, found and loaded.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

void
cli_err(const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hamnsync: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *
cli_conf_path(const char *opt)
{
	const char *env = getenv("HAMNSYNC_CONF");

	if (opt != NULL)
		return opt;
	if (env != NULL && env[0] != '\0')
		return env;
	return HS_CONF_DEFAULT;
}

struct hs_conf *
cli_conf_load(const char *path)
{
	char err[HS_ERRMSG_MAX];
	struct hs_conf *c;

	if (hs_conf_load(path, &c, err, sizeof(err)) < 0) {
		cli_err("config", "%s", err);
		return NULL;
	}
	return c;
}
