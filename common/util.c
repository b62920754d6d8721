/* util.c - bounded buffers, number parsing, small I/O helpers. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"

void
hs_buf_init(struct hs_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

int
hs_buf_reserve(struct hs_buf *b, size_t need)
{
	size_t want, ncap;
	uint8_t *p;

	if (hs_size_add(b->len, need, &want) < 0 || want > b->max)
		return HS_ELIMIT;
	if (want <= b->cap)
		return HS_OK;
	ncap = b->cap ? b->cap : (b->max < 256 ? b->max : 256);
	while (ncap < want)
		ncap = (ncap > b->max / 2) ? b->max : ncap * 2;
	p = realloc(b->data, ncap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = ncap;
	return HS_OK;
}

int
hs_buf_append(struct hs_buf *b, const void *p, size_t n)
{
	int rc;

	if (n == 0)
		return HS_OK;
	if ((rc = hs_buf_reserve(b, n)) < 0)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return HS_OK;
}

void
hs_buf_free(struct hs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int
hs_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return HS_ECONFIG;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return HS_ECONFIG;
	*out = v;
	return HS_OK;
}

/* Split a number and a one-letter unit suffix; scale with overflow check. */
static int
parse_scaled(const char *s, const char *units, const uint64_t *scale,
             uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	uint64_t v, mul = scale[0];
	const char *u;

	if (n == 0 || n >= sizeof(num))
		return HS_ECONFIG;
	memcpy(num, s, n + 1);
	if (!isdigit((unsigned char)num[n - 1])) {
		if ((u = strchr(units, num[n - 1])) == NULL)
			return HS_ECONFIG;
		mul = scale[u - units + 1];
		num[n - 1] = '\0';
	}
	if (hs_parse_u64(num, 0, UINT64_MAX, &v) < 0)
		return HS_ECONFIG;
	if (__builtin_mul_overflow(v, mul, out))
		return HS_ECONFIG;
	return HS_OK;
}

int
hs_parse_duration(const char *s, uint64_t *seconds)
{
	static const uint64_t scale[] = {1, 1, 60, 3600};

	return parse_scaled(s, "smh", scale, seconds);
}

int
hs_parse_size(const char *s, uint64_t *bytes)
{
	static const uint64_t scale[] = {1, 1024, 1024 * 1024,
	                                 1024 * 1024 * 1024};

	return parse_scaled(s, "KMG", scale, bytes);
}

int
hs_parse_fingerprint(const char *s, uint8_t out[32])
{
	size_t nib = 0;

	if (strncasecmp(s, "sha256:", 7) != 0)
		return HS_ECONFIG;
	for (s += 7; *s != '\0'; s++) {
		int v;

		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s) || nib >= 64)
			return HS_ECONFIG;
		v = isdigit((unsigned char)*s)
		        ? *s - '0'
		        : tolower((unsigned char)*s) - 'a' + 10;
		if (nib % 2 == 0)
			out[nib / 2] = (uint8_t)(v << 4);
		else
			out[nib / 2] |= (uint8_t)v;
		nib++;
	}
	return nib == 64 ? HS_OK : HS_ECONFIG;
}

void
hs_format_fingerprint(const uint8_t fp[32], char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	if (len < 7 + 64 + 1) {
		if (len > 0)
			buf[0] = '\0';
		return;
	}
	memcpy(buf, "sha256:", 7);
	for (i = 0; i < 32; i++) {
		buf[7 + 2 * i] = hex[fp[i] >> 4];
		buf[7 + 2 * i + 1] = hex[fp[i] & 15];
	}
	buf[7 + 64] = '\0';
}

int
hs_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hl;
	uint64_t p;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return HS_ECONFIG;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return HS_ECONFIG;
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl) != NULL)
			return HS_ECONFIG;
	}
	if (hl == 0 || hl >= hostlen)
		return HS_ECONFIG;
	if (hs_parse_u64(colon + 1, 1, 65535, &p) < 0)
		return HS_ECONFIG;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return HS_OK;
}

const char *
hs_role_name(enum hs_role r)
{
	switch (r) {
	case HS_ROLE_PRIMARY:
		return "primary";
	case HS_ROLE_STANDBY:
		return "standby";
	case HS_ROLE_NONE:
		break;
	}
	return "none";
}

uint64_t
hs_now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
hs_replace_file(const char *path, const char *tmp, unsigned mode,
                const struct iovec *iov, int n)
{
	int fd, i, rc = HS_OK;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	          (mode_t)mode);
	if (fd < 0)
		return -errno;
	for (i = 0; i < n && rc == HS_OK; i++)
		rc = hs_write_all(fd, iov[i].iov_base, iov[i].iov_len);
	if (close(fd) < 0 && rc == HS_OK)
		rc = -errno;
	if (rc == HS_OK && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int
hs_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

uint64_t
hs_backoff_next(uint64_t cur, uint64_t min, uint64_t max)
{
	if (cur < min)
		return min;
	/* Halving max, not doubling cur: no overflow near UINT64_MAX. */
	return cur > max / 2 ? max : cur * 2;
}

char *
hs_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		abort();
	return p;
}

int
hs_strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 when invalid. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t n, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

char *
hs_escape(const char *s, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, n;

	if (len == 0)
		return out;
	while (*p != '\0') {
		n = utf8_len(p);
		if (n == 0 || *p < 0x20 || *p == 0x7f ||
		    (*p == '\\' && p[1] == '#')) {
			if (o + 5 >= len)
				break;
			snprintf(out + o, len - o, "\\#%03o", *p);
			o += 5;
			p++;
			continue;
		}
		if (o + n >= len)
			break;
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = '\0';
	return out;
}
