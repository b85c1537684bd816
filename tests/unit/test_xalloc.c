/* test_xalloc: the allocation wrappers and the growable buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xalloc.h"

static void test_strings(void **state)
{
	char *s;

	(void)state;
	s = xstrdup("abc");
	assert_string_equal(s, "abc");
	free(s);
	s = xstrndup("abcdef", 3);
	assert_string_equal(s, "abc");
	free(s);
	s = xstrndup("a\0b", 3); /* copies n bytes and terminates */
	assert_memory_equal(s, "a\0b", 4);
	free(s);
	s = xasprintf("%s-%d-%05.1f", "x", 42, 3.14159);
	assert_string_equal(s, "x-42-003.1");
	free(s);
	s = xasprintf("%s", "");
	assert_string_equal(s, "");
	free(s);
	s = xmalloc(0); /* never NULL */
	assert_non_null(s);
	free(s);
	s = xcalloc(0, 0);
	assert_non_null(s);
	free(s);
}

static void test_buf_grow(void **state)
{
	struct buf b;
	char *d;
	size_t len = 0;

	(void)state;
	buf_init(&b);
	assert_null(b.data);
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%03d,", i);
	assert_int_equal(b.len, 4000);
	assert_int_equal(b.data[b.len], '\0');
	assert_memory_equal(b.data, "000,001,002,", 12);
	assert_memory_equal(b.data + 3996, "999,", 4);
	buf_append(&b, "\0x", 2); /* binary safe */
	assert_int_equal(b.len, 4002);
	assert_int_equal(b.data[4000], '\0');
	assert_int_equal(b.data[4001], 'x');
	assert_int_equal(b.data[4002], '\0');
	d = buf_take(&b, &len);
	assert_int_equal(len, 4002);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(d);
	buf_puts(&b, "again");
	assert_string_equal(b.data, "again");
	buf_cleanup(&b);
	buf_cleanup(&b);
}

/* Formatting writes into the room left and again only when it did not fit: strings longer
 * than any first guess, at every offset near a capacity boundary, come out whole. */
static void test_printf_long(void **state)
{
	char big[3000];
	struct buf b;
	char *s;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (size_t k = 120; k < 140; k++) { /* around xasprintf's first guess */
		s = xasprintf("%.*s|", (int)k, big);
		assert_int_equal(strlen(s), k + 1);
		assert_int_equal(s[k], '|');
		free(s);
	}
	s = xasprintf("<%s>", big);
	assert_int_equal(strlen(s), sizeof(big) + 1);
	assert_int_equal(s[0], '<');
	assert_int_equal(s[sizeof(big)], '>');
	free(s);
	for (size_t pre = 180; pre < 260; pre++) { /* buf's first capacity is 256 */
		buf_init(&b);
		buf_append(&b, big, pre);
		buf_printf(&b, "%s|%d", big + 2000, 7);
		assert_int_equal(b.len, pre + 999 + 2);
		assert_int_equal(strlen(b.data), b.len);
		assert_memory_equal(b.data + pre + 999, "|7", 3);
		buf_cleanup(&b);
	}
}

/* buf_take is documented "never NULL, NUL-terminated", also for a buffer nothing was put in. */
static void test_buf_take_empty(void **state)
{
	struct buf b;
	char *d;
	size_t len = 99;

	(void)state;
	/* Leave a dirty chunk of the size buf_take allocates, so garbage is not hidden by
	 * fresh zeroed memory (ASan fills new blocks with 0xbe anyway). */
	d = malloc(256);
	assert_non_null(d);
	memset(d, 'x', 256);
	free(d);
	buf_init(&b);
	d = buf_take(&b, &len);
	assert_non_null(d);
	assert_int_equal(len, 0);
	assert_int_equal(d[0], '\0');
	free(d);

	/* The same after an append of zero bytes (which does terminate). */
	buf_append(&b, "", 0);
	d = buf_take(&b, &len);
	assert_int_equal(len, 0);
	assert_int_equal(d[0], '\0');
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_buf_grow),
		cmocka_unit_test(test_printf_long),
		cmocka_unit_test(test_buf_take_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
