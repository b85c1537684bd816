/* xalloc: allocation wrappers that abort on out-of-memory, so error paths stay for real errors. */
#ifndef AG_XALLOC_H
#define AG_XALLOC_H

#include <stddef.h>

#define MUSTCHECK __attribute__((warn_unused_result))

/* Each returns new memory the caller frees with free(); none returns NULL (abort on OOM). */
void *xmalloc(size_t n) MUSTCHECK;
void *xcalloc(size_t n, size_t size) MUSTCHECK;
void *xrealloc(void *p, size_t n) MUSTCHECK;
char *xstrdup(const char *s) MUSTCHECK;
char *xstrndup(const char *s, size_t n) MUSTCHECK;
/* printf into a new string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2))) MUSTCHECK;

/* A growable byte buffer. buf_init/buf_cleanup for caller storage; buf_take hands data out. */
struct buf {
	char *data; /* owned; always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
};
void buf_init(struct buf *b);
void buf_cleanup(struct buf *b);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the data (never NULL, NUL-terminated; caller frees) and leaves b empty. */
char *buf_take(struct buf *b, size_t *len) MUSTCHECK;

#endif
