/* json.c - JSON output through jansson, with paths of any bytes. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/*
 * Length of the valid UTF-8 sequence at p (1..4), or 0 if p does not
 * start one (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
 */
static size_t
utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf && (p[1] & 0xc0) == 0x80)
		return 2;
	if (p[0] >= 0xe0 && p[0] <= 0xef && (p[1] & 0xc0) == 0x80 &&
	    (p[2] & 0xc0) == 0x80) {
		if ((p[0] == 0xe0 && p[1] < 0xa0) ||
		    (p[0] == 0xed && p[1] > 0x9f))
			return 0;
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4 && (p[1] & 0xc0) == 0x80 &&
	    (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80) {
		if ((p[0] == 0xf0 && p[1] < 0x90) ||
		    (p[0] == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

json_t *
cli_json_path(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0;
	char *buf = malloc(n * 4 + 1);
	json_t *j;

	if (buf == NULL)
		return NULL;
	while (i < n) {
		size_t k = utf8_len(p + i);

		if (k == 0) {
			/* Not UTF-8: shown as \xNN, so nothing is lost. */
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[p[i] >> 4];
			buf[o++] = hex[p[i] & 15];
			i++;
			continue;
		}
		memcpy(buf + o, p + i, k);
		o += k;
		i += k;
	}
	buf[o] = '\0';
	j = json_string(buf);
	free(buf);
	return j;
}
