/* xalloc: allocation wrappers that abort on out-of-memory (lighttpd ck_, kcgi k*). */
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
	fputs("asyncgate: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom();
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Formats into a first guess of 128 bytes: most strings fit, and are formatted once rather than
 * measured first (vsnprintf was a fifth of the drainer's own instructions). */
char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	size_t cap = 128;
	char *s = xmalloc(cap);
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s, cap, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom();
	if ((size_t)n >= cap) {
		cap = (size_t)n + 1;
		s = xrealloc(s, cap);
		va_start(ap, fmt);
		vsnprintf(s, cap, fmt, ap);
		va_end(ap);
	}
	return s;
}

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_cleanup(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

static void buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;

	if (need <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 256;
	while (b->cap < need)
		b->cap *= 2;
	b->data = xrealloc(b->data, b->cap);
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

/* Formats straight into the room left (at least 64 bytes), and again only when that was too
 * little: once, not measured first and then written. */
void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	buf_reserve(b, 64);
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom();
	if ((size_t)n >= room) {
		buf_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

char *buf_take(struct buf *b, size_t *len)
{
	char *d;

	buf_reserve(b, 0);
	b->data[b->len] = '\0'; /* a buffer never appended to was never terminated */
	d = b->data;
	if (len != NULL)
		*len = b->len;
	buf_init(b);
	return d;
}
