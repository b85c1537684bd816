/* test_uuid: UUIDv7 call ids (RFC 9562 section 5.7) and the id syntax check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "timeparse.h"
#include "uuid.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* The 48-bit millisecond timestamp in the first 12 hex digits (with the dash skipped). */
static uint64_t uuid_ms(const char *id)
{
	uint64_t ms = 0;

	for (int i = 0; i < 13; i++) {
		if (i == 8)
			continue;
		ms = ms << 4 | (uint64_t)hexval(id[i]);
	}
	return ms;
}

static void test_v7_format(void **state)
{
	char id[UUID_LEN];
	int64_t before, after;

	(void)state;
	memset(id, 'x', sizeof(id));
	before = timeparse_now_us() / 1000;
	assert_int_equal(uuid_v7(id), 0);
	after = timeparse_now_us() / 1000;
	assert_int_equal(strlen(id), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(id[i], '-');
		else if (hexval(id[i]) < 0)
			fail_msg("id %s: character %d is not lower-case hex", id, i);
	}
	assert_int_equal(id[14], '7'); /* version 7 */
	/* variant 10xx: the first digit of the fourth group is 8, 9, a or b */
	assert_true(strchr("89ab", id[19]) != NULL);
	assert_true(uuid_valid(id));
	/* The timestamp is the wall clock in ms. */
	assert_true(uuid_ms(id) >= (uint64_t)before);
	assert_true(uuid_ms(id) <= (uint64_t)after);
}

static void test_v7_many_valid_and_distinct(void **state)
{
	enum { N = 1500 }; /* more than one refill of the random pool (409 ids) */
	static char ids[N][UUID_LEN];

	(void)state;
	for (int i = 0; i < N; i++) {
		assert_int_equal(uuid_v7(ids[i]), 0);
		assert_true(uuid_valid(ids[i]));
		assert_int_equal(ids[i][14], '7');
		assert_true(strchr("89ab", ids[i][19]) != NULL);
		for (int j = 0; j < i; j++)
			if (strcmp(ids[i], ids[j]) == 0)
				fail_msg("duplicate id %s", ids[i]);
	}
}

/* A forked child must not repeat the ids its parent makes next from the same random pool. */
static void test_v7_fork_distinct(void **state)
{
	char first[UUID_LEN], mine[UUID_LEN], child[UUID_LEN] = "";
	int fds[2];
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(uuid_v7(first), 0); /* the pool is filled now */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char id[UUID_LEN];

		close(fds[0]);
		_exit(uuid_v7(id) == 0 && write(fds[1], id + 24, 12) == 12 ? 0 : 1);
	}
	close(fds[1]);
	assert_int_equal(uuid_v7(mine), 0);
	assert_int_equal(read(fds[0], child, 12), 12);
	child[12] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the last 12 hex digits are random only */
	assert_string_not_equal(mine + 24, child);
}

static void test_v7_two_in_a_row_distinct(void **state)
{
	char a[UUID_LEN], b[UUID_LEN];

	(void)state;
	assert_int_equal(uuid_v7(a), 0);
	assert_int_equal(uuid_v7(b), 0);
	assert_string_not_equal(a, b);
}

static void test_v7_sorts_by_time(void **state)
{
	char a[UUID_LEN], b[UUID_LEN], c[UUID_LEN];

	(void)state;
	assert_int_equal(uuid_v7(a), 0);
	sleep_ms(2);
	assert_int_equal(uuid_v7(b), 0);
	sleep_ms(2);
	assert_int_equal(uuid_v7(c), 0);
	if (!(strcmp(a, b) < 0 && strcmp(b, c) < 0))
		fail_msg("ids 2 ms apart do not sort in time order: %s %s %s", a, b, c);
	assert_true(uuid_ms(b) >= uuid_ms(a) + 2);
	assert_true(uuid_ms(c) >= uuid_ms(b) + 2);
}

static void test_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "0190f2a4-5b6c-7d8e-9f01-23456789abcd", true },
		{ "0190F2A4-5B6C-7D8E-9F01-23456789ABCD", true }, /* upper case */
		{ "0190f2a4-5B6C-7d8e-9F01-23456789abcd", true }, /* mixed case */
		{ "00000000-0000-0000-0000-000000000000", true },
		{ "ffffffff-ffff-ffff-ffff-ffffffffffff", true },
		{ "", false },
		{ "0190f2a4", false },
		{ "0190f2a4-5b6c-7d8e-9f01-23456789abc", false },   /* 35 characters */
		{ "0190f2a4-5b6c-7d8e-9f01-23456789abcde", false }, /* 37 characters */
		{ "0190f2a4-5b6c-7d8e-9f01-23456789abcd ", false },
		{ " 0190f2a4-5b6c-7d8e-9f01-23456789abc", false },
		{ "0190f2a4-5b6c-7d8e-9f01-23456789abcg", false }, /* g */
		{ "0190f2a4-5b6c-7d8e-9f01-23456789abc_", false },
		{ "0190f2a4x5b6c-7d8e-9f01-23456789abcd", false },  /* dash replaced */
		{ "0190f2a45b6c7d8e9f0123456789abcd", false },      /* no dashes */
		{ "0190f2a45-b6c-7d8e-9f01-23456789abcd", false },  /* dash moved */
		{ "0190f2a4-5b6c-7d8e-9f0123456789abcd--", false },
		{ "{0190f2a4-5b6c-7d8e-9f01-23456789abcd}", false },
		{ "0190f2a4-5b6c-7d8e-9f01-23456789abcd/retry", false },
		{ "../../../../../../../../../etc/passwd", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (uuid_valid(cases[i].s) != cases[i].ok)
			fail_msg("uuid_valid(\"%s\") is %s", cases[i].s, cases[i].ok ? "false" : "true");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v7_format),
		cmocka_unit_test(test_v7_many_valid_and_distinct),
		cmocka_unit_test(test_v7_two_in_a_row_distinct),
		cmocka_unit_test(test_v7_fork_distinct),
		cmocka_unit_test(test_v7_sorts_by_time),
		cmocka_unit_test(test_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
