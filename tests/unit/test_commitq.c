/* test_commitq: the pure parts of the accept path's group commit: how queued requests are cut
 * into groups, how their rows and key rows are joined into one statement's parameters, and how
 * the rows a statement returns (in any order) go back to the request each belongs to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../cgi-bin/commitq.c"

struct fixture {
	struct cq_entry e[4];
	const char *ids[4][3];
	char nb[4][3][CQ_TS_LEN];
	bool sched[4][3];
	char idtext[4][3][8];
	char rows[4][128];
};

/* Entry j with n calls "j-0".. "j-(n-1)" (as ids), and an Idempotency-Key when key != NULL. */
static void entry(struct fixture *f, size_t j, size_t n, const char *client, const char *key)
{
	char(*idtext)[3][8] = f->idtext;
	char(*rows)[128] = f->rows;

	memset(&f->e[j], 0, sizeof(f->e[j]));
	snprintf(rows[j], sizeof(rows[j]), "[");
	for (size_t i = 0; i < n; i++) {
		snprintf(idtext[j][i], sizeof(idtext[j][i]), "%zu-%zu", j, i);
		f->ids[j][i] = idtext[j][i];
		snprintf(rows[j] + strlen(rows[j]), sizeof(rows[j]) - strlen(rows[j]),
			 "%s{\"id\":\"%s\"}", i > 0 ? "," : "", idtext[j][i]);
	}
	strcat(rows[j], "]");
	f->e[j].rows = rows[j];
	f->e[j].keyrow = key != NULL ? "{\"k\":1}" : NULL;
	f->e[j].client = client;
	f->e[j].key = key;
	f->e[j].ids = f->ids[j];
	f->e[j].n = n;
	f->e[j].not_before = f->nb[j];
	f->e[j].scheduled = f->sched[j];
}

static void test_take_group_all(void **state)
{
	static struct fixture f;
	static struct commitq q;

	(void)state;
	memset(&q, 0, sizeof(q));
	for (size_t j = 0; j < 4; j++) {
		entry(&f, j, 2, "c", NULL);
		enqueue(&q, &f.e[j]);
	}
	assert_int_equal(take_group(&q), 4);
	assert_ptr_equal(q.group[0], &f.e[0]);
	assert_ptr_equal(q.group[3], &f.e[3]);
	assert_null(q.head);
	assert_null(q.tail);
}

/* The same client and key twice: the second waits for the next group (ON CONFLICT DO NOTHING
 * would let both through within one statement). Another client's same key is no conflict. */
static void test_take_group_key_twice(void **state)
{
	static struct fixture f;
	static struct commitq q;

	(void)state;
	memset(&q, 0, sizeof(q));
	entry(&f, 0, 1, "a", "k1");
	entry(&f, 1, 1, "b", "k1");
	entry(&f, 2, 1, "a", "k1");
	entry(&f, 3, 1, "a", NULL);
	for (size_t j = 0; j < 4; j++)
		enqueue(&q, &f.e[j]);
	assert_int_equal(take_group(&q), 2);
	assert_ptr_equal(q.head, &f.e[2]);
	assert_int_equal(take_group(&q), 2);
	assert_ptr_equal(q.group[0], &f.e[2]);
	assert_ptr_equal(q.group[1], &f.e[3]);
	assert_null(q.head);
}

/* At most CQ_MAX_CALLS calls in a group, but a request bigger than that still goes (alone). */
static void test_take_group_cap(void **state)
{
	static struct fixture f;
	static struct commitq q;

	(void)state;
	memset(&q, 0, sizeof(q));
	entry(&f, 0, 1, "c", NULL);
	entry(&f, 1, 1, "c", NULL);
	entry(&f, 2, 1, "c", NULL);
	f.e[0].n = CQ_MAX_CALLS - 1;
	f.e[1].n = 2;
	f.e[2].n = CQ_MAX_CALLS + 5;
	for (size_t j = 0; j < 3; j++)
		enqueue(&q, &f.e[j]);
	assert_int_equal(take_group(&q), 1);
	assert_int_equal(take_group(&q), 1);
	assert_ptr_equal(q.group[0], &f.e[1]);
	assert_int_equal(take_group(&q), 1);
	assert_ptr_equal(q.group[0], &f.e[2]);
	assert_int_equal(take_group(&q), 0);
}

static void test_join_params(void **state)
{
	static struct fixture f;
	struct cq_entry *g[3] = {&f.e[0], &f.e[1], &f.e[2]};
	struct buf rows, keys, ids;

	(void)state;
	entry(&f, 0, 2, "a", NULL);
	entry(&f, 1, 1, "a", "k");
	entry(&f, 2, 1, "b", "k");
	buf_init(&rows);
	buf_init(&keys);
	buf_init(&ids);
	join_params(g, 3, &rows, &keys, &ids);
	assert_string_equal(rows.data, "[{\"id\":\"0-0\"},{\"id\":\"0-1\"},{\"id\":\"1-0\"},"
				       "{\"id\":\"2-0\"}]");
	assert_string_equal(keys.data, "[{\"k\":1},{\"k\":1}]");
	assert_string_equal(ids.data, "[\"0-0\",\"0-1\",\"1-0\",\"2-0\"]");
	buf_cleanup(&rows);
	buf_cleanup(&keys);
	buf_cleanup(&ids);
}

/* A result like the insert's RETURNING (id, not_before, scheduled), rows in the given order. */
static PGresult *returning(const char *const *rows, size_t n)
{
	PGresAttDesc att[3];
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	const char *names[3] = {"id", "ag_ts", "?column?"};

	memset(att, 0, sizeof(att));
	for (int c = 0; c < 3; c++) {
		att[c].name = (char *)names[c];
		att[c].format = 0;
		att[c].typid = c == 2 ? 16 : 25;
		att[c].typlen = -1;
		att[c].atttypmod = -1;
	}
	assert_int_equal(PQsetResultAttrs(res, 3, att), 1);
	for (size_t r = 0; r < n; r++) {
		char nb[32];
		const char *sched = strchr(rows[r], '1') != NULL ? "t" : "f";

		snprintf(nb, sizeof(nb), "T%s", rows[r]);
		assert_int_equal(PQsetvalue(res, (int)r, 0, (char *)rows[r], (int)strlen(rows[r])),
				 1);
		assert_int_equal(PQsetvalue(res, (int)r, 1, nb, (int)strlen(nb)), 1);
		assert_int_equal(PQsetvalue(res, (int)r, 2, (char *)sched, 1), 1);
	}
	return res;
}

/* Rows come back in any order and each lands with its own request and position; a request
 * with a key whose calls did not come back had its key taken; due is per request. */
static void test_distribute(void **state)
{
	static struct fixture f;
	struct cq_entry *g[3] = {&f.e[0], &f.e[1], &f.e[2]};
	const char *rows[] = {"2-0", "0-1", "0-0"};
	PGresult *res = returning(rows, 3);

	(void)state;
	entry(&f, 0, 2, "a", NULL);
	entry(&f, 1, 1, "a", "k");
	entry(&f, 2, 1, "b", "k");
	distribute(res, g, 3);
	PQclear(res);
	assert_int_equal(f.e[0].result, CQ_ACCEPTED);
	assert_string_equal(f.nb[0][0], "T0-0");
	assert_string_equal(f.nb[0][1], "T0-1");
	assert_false(f.sched[0][0]);
	assert_true(f.sched[0][1]); /* "0-1" has a 1: scheduled, by the fixture's rule */
	assert_true(f.e[0].due);
	assert_int_equal(f.e[1].result, CQ_KEY_TAKEN);
	assert_string_equal(f.nb[1][0], "");
	assert_false(f.e[1].due);
	assert_int_equal(f.e[2].result, CQ_ACCEPTED);
	assert_string_equal(f.nb[2][0], "T2-0");
	assert_true(f.e[2].due);
}

struct submitter {
	struct commitq *q;
	struct fixture f;
	int failed;
	bool counted;
};

static void *submit_many(void *arg)
{
	struct submitter *s = arg;

	for (int k = 0; k < 20; k++) {
		entry(&s->f, 0, 1, "c", NULL);
		s->f.e[0].result = CQ_ACCEPTED;
		commitq_arrive(s->q, &s->counted);
		commitq_submit(s->q, &s->f.e[0], &s->counted);
		if (s->counted)
			s->failed = -1000; /* submit must end the count */
		if (s->f.e[0].result == CQ_FAILED && s->f.e[0].error == DB_UNAVAILABLE)
			s->failed++;
	}
	return NULL;
}

/* Threads submitting at once to a queue whose database cannot be reached: every submit returns
 * (none is lost or woken twice), each with the error, and the queue stops cleanly. Run under
 * ASan by make unit-san, and under ThreadSanitizer with TSAN=1. */
static void test_submit_threads(void **state)
{
	static struct submitter s[8];
	pthread_t thr[8];
	struct commitq *q = commitq_new("host=/nonexistent-asyncgate-test port=1", 100, 0);

	(void)state;
	assert_non_null(q);
	for (int t = 0; t < 8; t++) {
		memset(&s[t], 0, sizeof(s[t]));
		s[t].q = q;
		assert_int_equal(pthread_create(&thr[t], NULL, submit_many, &s[t]), 0);
	}
	for (int t = 0; t < 8; t++) {
		pthread_join(thr[t], NULL);
		assert_int_equal(s[t].failed, 20);
	}
	commitq_free(q);
}

static void *submit_one(void *arg)
{
	struct submitter *s = arg;

	entry(&s->f, 0, 1, "c", NULL);
	commitq_submit(s->q, &s->f.e[0], &s->counted);
	return NULL;
}

static size_t queued_now(struct commitq *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->queued;
	pthread_mutex_unlock(&q->mu);
	return n;
}

/* Waits until the committer gathers (it is waiting for a counted request), or 10 s. */
static bool wait_gathering(struct commitq *q)
{
	for (int i = 0; i < 10000; i++) {
		bool g;

		pthread_mutex_lock(&q->mu);
		g = q->gathering;
		pthread_mutex_unlock(&q->mu);
		if (g)
			return true;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return false;
}

/* A request that was taken in (commitq_arrive) holds the group back: the entry queued before
 * it waits for it, and both go in one statement. The wait is made long (60 s) so that only
 * the arrival's own submit can end it. */
static void test_gather_waits_for_arrival(void **state)
{
	static struct submitter a, b;
	pthread_t ta, tb;
	struct commitq *q = commitq_new("host=/nonexistent-asyncgate-test port=1", 100, 0);

	(void)state;
	assert_non_null(q);
	q->gather_us = 60L * 1000000;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.q = b.q = q;
	commitq_arrive(q, &b.counted); /* b is being read */
	assert_true(b.counted);
	assert_int_equal(pthread_create(&ta, NULL, submit_one, &a), 0);
	assert_true(wait_gathering(q)); /* a is queued; the committer waits for b */
	assert_int_equal(queued_now(q), 1);
	assert_int_equal(pthread_create(&tb, NULL, submit_one, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_false(b.counted);
	assert_int_equal(q->groups, 1); /* one statement for both */
	assert_int_equal(a.f.e[0].result, CQ_FAILED);
	assert_int_equal(b.f.e[0].result, CQ_FAILED);
	assert_int_equal(q->coming, 0);
	commitq_free(q);
}

/* A counted request that inserts nothing (commitq_depart) ends the wait at once. */
static void test_gather_depart(void **state)
{
	static struct submitter a;
	bool other = false;
	pthread_t ta;
	struct commitq *q = commitq_new("host=/nonexistent-asyncgate-test port=1", 100, 0);

	(void)state;
	assert_non_null(q);
	q->gather_us = 60L * 1000000;
	memset(&a, 0, sizeof(a));
	a.q = q;
	commitq_arrive(q, &other);
	commitq_arrive(q, &other); /* counted once */
	assert_int_equal(pthread_create(&ta, NULL, submit_one, &a), 0);
	assert_true(wait_gathering(q));
	commitq_depart(q, &other);
	assert_false(other);
	commitq_depart(q, &other); /* a no-op */
	pthread_join(ta, NULL); /* returns well before the 60 s */
	assert_int_equal(q->groups, 1);
	assert_int_equal(a.f.e[0].result, CQ_FAILED);
	assert_int_equal(q->coming, 0);
	commitq_free(q);
}

/* Under load (the last group held more than one request) a group waits commit_linger_us for
 * requests that were not even taken in yet: a and b, queued one after the other with no
 * arrival counted, still share one statement. */
static void test_linger(void **state)
{
	static struct submitter a, b;
	pthread_t ta, tb;
	struct commitq *q = commitq_new("host=/nonexistent-asyncgate-test port=1", 100, 2000000);

	(void)state;
	assert_non_null(q);
	pthread_mutex_lock(&q->mu);
	q->last_m = 2; /* as after a group of two */
	pthread_mutex_unlock(&q->mu);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.q = b.q = q;
	assert_int_equal(pthread_create(&ta, NULL, submit_one, &a), 0);
	assert_true(wait_gathering(q)); /* nothing is coming, and yet it waits */
	assert_int_equal(queued_now(q), 1);
	assert_int_equal(pthread_create(&tb, NULL, submit_one, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(q->groups, 1);
	assert_int_equal(a.f.e[0].result, CQ_FAILED);
	assert_int_equal(b.f.e[0].result, CQ_FAILED);
	commitq_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_group_all),
		cmocka_unit_test(test_take_group_key_twice),
		cmocka_unit_test(test_take_group_cap),
		cmocka_unit_test(test_join_params),
		cmocka_unit_test(test_distribute),
		cmocka_unit_test(test_submit_threads),
		cmocka_unit_test(test_gather_waits_for_arrival),
		cmocka_unit_test(test_gather_depart),
		cmocka_unit_test(test_linger),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
