/* cmd_keygen.c - `hamnsync keygen --out DIR [--name N] [--force]` */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "proto.h"

static const char keygen_usage[] =
    "usage: hamnsync keygen --out DIR [--name N] [--force]\n"
    "  writes DIR/node.key (0600) and DIR/node.crt (ECDSA P-256, "
    "self-signed,\n"
    "  10 years, subject and DNS name N, default: the host name) and "
    "prints\n"
    "  the certificate's fingerprint\n";

static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= PROTO_NODE_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                 "0123456789._-") == n;
}

int
cli_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"name", required_argument, NULL, 'n'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {"c", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0},
	};
	const char *out = NULL;
	char name[256] = "", fps[80], why[512];
	uint8_t fp[32];
	int force = 0, ch;

	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'n':
			snprintf(name, sizeof(name), "%s", optarg);
			break;
		case 'f':
			force = 1;
			break;
		case 'c':
			break; /* accepted everywhere; keygen needs none */
		case 'h':
			fputs(keygen_usage, stdout);
			return 0;
		default:
			fputs(keygen_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (out == NULL || optind != argc) {
		cli_err("keygen", "--out DIR is required");
		fputs(keygen_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (name[0] == '\0' && gethostname(name, sizeof(name) - 1) < 0) {
		cli_err("keygen", "no --name and no host name");
		return CLI_EXIT_USAGE;
	}
	if (!name_ok(name)) {
		cli_err("keygen",
		        "'%s' is not a valid node name (1 to 64 of "
		        "A-Z a-z 0-9 . _ -)",
		        name);
		return CLI_EXIT_USAGE;
	}
	if (proto_keygen(out, name, force, fp, why, sizeof(why)) < 0) {
		cli_err("keygen", "%s", why);
		return 1;
	}
	hs_format_fingerprint(fp, fps, sizeof(fps));
	printf("%s\n", fps);
	return 0;
}
