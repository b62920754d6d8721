/*
 * json.c - output that scripts read: JSON through jansson, with paths of
 * any bytes, the counts and entries of a run, and names escaped for one
 * line of text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "primary.h"

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

void
cli_json_print(json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(doc);
}

const char *
cli_show(const char *s)
{
	/* A source and its relative path, each byte as up to \#ooo. */
	static char buf[(PROTO_PATH_MAX * 2 + 2) * 5 + 1];

	return hs_escape(s, buf, sizeof(buf));
}

const char *
cli_line(const char *s)
{
	/* The commands' messages (`why`) hold at most 1 KiB. */
	static char buf[1024 * 5 + 1];
	const char *c;

	for (c = s; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return hs_escape(s, buf, sizeof(buf));
	return s;
}

static uint64_t
count_of(const struct send_report *r, size_t off)
{
	uint64_t v;

	memcpy(&v, (const char *)r + off, sizeof(v));
	return v;
}

json_t *
cli_json_counts(const struct cli_count *c, size_t n,
                const struct send_report *r, const struct send_report *prev)
{
	json_t *o = json_object();
	uint64_t v;
	size_t i;

	for (i = 0; o != NULL && i < n; i++) {
		v = count_of(r, c[i].off);
		if (prev != NULL)
			v -= count_of(prev, c[i].off);
		json_object_set_new(o, c[i].name, json_integer((json_int_t)v));
	}
	return o;
}

int
cli_run_init(struct cli_run *run, const struct cli_count *c, size_t n)
{
	memset(run, 0, sizeof(*run));
	run->counts = c;
	run->n_counts = n;
	run->entries = json_array();
	run->sets = json_array();
	run->prev = calloc(1, sizeof(*run->prev));
	if (run->entries == NULL || run->sets == NULL || run->prev == NULL) {
		cli_run_free(run);
		return -ENOMEM;
	}
	return HS_OK;
}

void
cli_run_entry(struct cli_run *run, json_t *entry, const char *path)
{
	json_object_set_new(entry, "path", cli_json_path(path));
	json_array_append_new(run->entries, entry);
}

void
cli_run_set(void *arg, const char *set, const struct send_report *sofar)
{
	struct cli_run *run = arg;
	json_t *o = json_object();

	for (; run->tagged < json_array_size(run->entries); run->tagged++)
		json_object_set_new(json_array_get(run->entries, run->tagged),
		                    "set", cli_json_path(set));
	json_object_set_new(o, "name", cli_json_path(set));
	json_object_set_new(
	    o, "counts",
	    cli_json_counts(run->counts, run->n_counts, sofar, run->prev));
	json_array_append_new(run->sets, o);
	*run->prev = *sofar;
}

void
cli_run_free(struct cli_run *run)
{
	json_decref(run->entries);
	json_decref(run->sets);
	free(run->prev);
	memset(run, 0, sizeof(*run));
}
