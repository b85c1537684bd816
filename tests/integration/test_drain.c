/* test_drain: the drainer (issue 3's acceptance list) against a real PostgreSQL, lighttpd and
 * HTTP target (tests/target/ag_target.c): delivery intact, scheduling, retries and backoff,
 * dead letters and callbacks, timeouts, large answers, kill -9, four drainers at once,
 * /v1/drain, signatures, /metrics and the audit views. */
#define _GNU_SOURCE
#include "itest.h"
#include "itest.c.inc"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "db.h"
#include "timeparse.h"
#include "xalloc.h"

static const char *url;	    /* lighttpd with spawned handlers */
static const char *target;  /* the HTTP target */
static const char *tlog;    /* its request log, one JSON object per line */
static const char *drainer; /* build/asyncgate-drainer */
static const char *secret;  /* the target's Standard Webhooks secret */
static const char *token;   /* drain_token of the test configuration */
static char tmpdir[512];
static char drainer_log[600]; /* the drainers' stderr */

#define JSON "application/json"

/* How many calls whose id is match, or whose target is LIKE match, are in state. */
#define COUNT_STATE_SQL                                                                            \
	"SELECT count(*) FROM calls WHERE (id::text = $1 OR target LIKE $1) AND state = $2"

static long count_state(const char *match, const char *state)
{
	return it_sql_long(COUNT_STATE_SQL, 2, (const char *const[]){match, state});
}

/* Waits until count_state(match, state) reaches want; true when it did (reported if not). */
static bool wait_state(const char *match, const char *state, long want, long timeout_ms)
{
	char what[256];

	snprintf(what, sizeof(what), "calls %s in state %s", match, state);
	return it_wait_count(what, COUNT_STATE_SQL, 2, (const char *const[]){match, state}, want,
			     timeout_ms);
}

/* Waits until at least n requests under prefix have reached the target (up to timeout_ms);
 * returns them (caller puts). */
static struct json_object *wait_hits(const char *prefix, int n, long timeout_ms)
{
	int64_t end = it_now_ms() + timeout_ms;
	struct json_object *h = it_hits(tlog, prefix);

	while ((int)json_object_array_length(h) < n && it_now_ms() < end) {
		it_sleep_ms(20);
		json_object_put(h);
		h = it_hits(tlog, prefix);
	}
	return h;
}

/* Decodes the base64 body of a log entry into a new buffer (caller frees). */
static unsigned char *hit_body(struct json_object *h, size_t *len)
{
	const char *b = it_jget(h, "body_base64");
	size_t n = b != NULL ? strlen(b) : 0;
	unsigned char *out = malloc(n + 4);
	int k;

	*len = 0;
	if (n == 0)
		return out;
	k = EVP_DecodeBlock(out, (const unsigned char *)b, (int)n);
	if (k < 0)
		return out;
	if (b[n - 1] == '=')
		k--;
	if (n > 1 && b[n - 2] == '=')
		k--;
	*len = (size_t)k;
	out[k] = '\0';
	return out;
}

static pid_t follow_start(void)
{
	pid_t pid = it_drainer_spawn(drainer_log, (const char *const[]){"--follow", NULL});

	it_sleep_ms(300); /* connected and listening */
	return pid;
}

/* Attempt rows of the calls whose target is LIKE pattern. */
static long attempts_of_like(const char *pattern)
{
	const char *p[1] = {pattern};

	return it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
			   "WHERE c.target LIKE $1",
			   1, p);
}

/* ---- the tests ---- */

/* JSON body, headers and query arrive intact with the Async-* headers; a binary body is
 * byte-identical. */
static void t_intact(void)
{
	const char *tg = it_tag('t');
	char body[2048], path[128], b64[400];
	unsigned char bin[256];
	const char *id, *id2;
	char idc[64];
	struct json_object *h, *e, *sent, *got;
	unsigned char *data;
	size_t len;

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/echo/%s?fixed=1\",\"method\":\"PATCH\","
		 "\"query\":{\"a\":\"1 2\",\"tag\":[\"x\",\"y\"]},"
		 "\"headers\":{\"X-Custom\":\"v\\u00e9 1\",\"Content-Type\":\"application/json\"},"
		 "\"body\":{\"k\":[1,2.5,\"\\u00fc\",null,{\"n\":true}]},"
		 "\"correlation_id\":\"corr-%s\"}",
		 target, tg, tg);
	id = it_enqueue(url, body, NULL);
	snprintf(idc, sizeof(idc), "%s", id);
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	EVP_EncodeBlock((unsigned char *)b64, bin, sizeof(bin));
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/bin/%s\",\"method\":\"PUT\",\"body_base64\":\"%s\"}", target, tg,
		 b64);
	id2 = it_enqueue(url, body, NULL);
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");

	snprintf(path, sizeof(path), "/echo/%s", tg);
	h = it_hits(tlog, path);
	if (CHECK(json_object_array_length(h) == 1, "%zu hits on %s, want 1",
		  json_object_array_length(h), path)) {
		e = json_object_array_get_idx(h, 0);
		it_jis(e, "method", "PATCH");
		it_jis(e, "query", "fixed=1&a=1%202&tag=x&tag=y");
		it_jis(e, "headers.x-custom", "v\xc3\xa9 1");
		it_jis(e, "headers.content-type", "application/json");
		it_jis(e, "headers.async-call-id", idc);
		it_jis(e, "headers.async-attempt", "1");
		snprintf(body, sizeof(body), "corr-%s", tg);
		it_jis(e, "headers.async-correlation-id", body);
		data = hit_body(e, &len);
		sent = json_tokener_parse("{\"k\":[1,2.5,\"\\u00fc\",null,{\"n\":true}]}");
		got = json_tokener_parse((const char *)data);
		CHECK(got != NULL && json_object_equal(sent, got), "JSON body changed: %s",
		      (const char *)data);
		json_object_put(sent);
		json_object_put(got);
		free(data);
	}
	json_object_put(h);
	it_field_is(idc, "state", "succeeded");
	it_field_is(idc, "attempts", "1");

	snprintf(path, sizeof(path), "/bin/%s", tg);
	h = it_hits(tlog, path);
	if (CHECK(json_object_array_length(h) == 1, "%zu hits on %s", json_object_array_length(h),
		  path)) {
		e = json_object_array_get_idx(h, 0);
		it_jis(e, "method", "PUT");
		it_jis(e, "headers.content-type", "application/octet-stream");
		data = hit_body(e, &len);
		CHECK(len == sizeof(bin) && memcmp(data, bin, len) == 0,
		      "binary body differs (%zu bytes)", len);
		free(data);
	}
	json_object_put(h);
	it_field_is(id2, "state", "succeeded");
}

/* delay 3s: not before its time, and within 1 s after it under --follow. */
static void t_delay_follow(void)
{
	const char *tg = it_tag('t');
	char body[512], path[128];
	struct hresp r;
	int64_t nb_us = 0, at_us;
	pid_t pid = follow_start();
	struct json_object *h = NULL;

	snprintf(body, sizeof(body), "{\"target\":\"%s/delay/%s\",\"delay\":\"3s\"}", target, tg);
	it_http("POST", url, "/v1/calls", JSON, body, strlen(body), NULL, &r);
	CHECK(r.status == 202 && strcmp(it_jstr(&r, "state"), "scheduled") == 0, "enqueue: %ld %s",
	      r.status, r.body);
	CHECK(timeparse_time(it_jstr(&r, "not_before"), &nb_us) == 0, "not_before");
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/delay/%s", tg);
	h = wait_hits(path, 1, 6000);
	if (CHECK(json_object_array_length(h) == 1, "delayed call not delivered in 6 s")) {
		at_us = json_object_get_int64(
			json_object_object_get(json_object_array_get_idx(h, 0), "t_us"));
		printf("# delay 3s: delivered %.3f s after not_before\n",
		       (double)(at_us - nb_us) / 1e6);
		CHECK(at_us >= nb_us, "delivered %.3f s early", (double)(nb_us - at_us) / 1e6);
		CHECK(at_us - nb_us < 1000000, "delivered %.3f s late",
		      (double)(at_us - nb_us) / 1e6);
	}
	json_object_put(h);
	it_drainer_stop(pid);
}

/* started_at of each attempt of id, in ms, oldest first; returns how many (at most max). */
static int attempt_starts(const char *id, int64_t *out, int max)
{
	const char *p[1] = {id};
	PGresult *res = PQexecParams(it_db(),
				     "SELECT (EXTRACT(epoch FROM started_at) * 1000)::bigint "
				     "FROM attempts WHERE call_id = $1::uuid ORDER BY attempt",
				     1, NULL, p, NULL, NULL, 0);
	int n = 0;

	for (int i = 0; i < PQntuples(res) && n < max; i++)
		out[n++] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	return n;
}

/* 503, 503, 200: three attempts, succeeded, gaps within [initial, max]; Retry-After: 2. */
static void t_retry_backoff(void)
{
	const char *tg = it_tag('t');
	char body[512], id[64], id2[64];
	int64_t st[8];
	int n;
	pid_t pid = follow_start();

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/flaky/%s/2/503\",\"retry\":{\"max_attempts\":5,"
		 "\"initial\":\"300ms\",\"max\":\"1s\"}}",
		 target, tg);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/flaky/%sra/1/503?retry_after=2\",\"retry\":{\"max_attempts\":5,"
		 "\"initial\":\"100ms\",\"max\":\"500ms\"}}",
		 target, tg);
	snprintf(id2, sizeof(id2), "%s", it_enqueue(url, body, NULL));
	wait_state(id, "succeeded", 1, 10000);
	wait_state(id2, "succeeded", 1, 10000);
	it_drainer_stop(pid);

	it_field_is(id, "attempts", "3");
	it_field_is(id, "last_status", "200");
	n = attempt_starts(id, st, 8);
	if (CHECK(n == 3, "%d attempt rows, want 3", n)) {
		char *s = it_sql(
			"SELECT string_agg(status::text, ',' ORDER BY attempt) FROM attempts "
			"WHERE call_id = $1::uuid",
			1, (const char *const[]){id});

		CHECK(s != NULL && strcmp(s, "503,503,200") == 0, "statuses %s", s ? s : "");
		free(s);
		for (int i = 1; i < 3; i++) {
			int64_t gap = st[i] - st[i - 1];

			printf("# backoff gap %d: %lld ms (bounds 300..1000 ms + claim latency)\n",
			       i, (long long)gap);
			CHECK(gap >= 300 && gap <= 1000 + 400, "gap %d is %lld ms", i,
			      (long long)gap);
		}
	}
	n = attempt_starts(id2, st, 8);
	if (CHECK(n == 2, "%d attempt rows for the Retry-After call, want 2", n)) {
		int64_t gap = st[1] - st[0];

		printf("# Retry-After: 2 -> gap %lld ms\n", (long long)gap);
		CHECK(gap >= 2000 && gap <= 3500, "Retry-After: 2 gave a gap of %lld ms",
		      (long long)gap);
	}
}

/* 400: dead after one attempt; the failure callback gets the envelope. */
static void t_dead_failure_callback(void)
{
	const char *tg = it_tag('t');
	char body[768], path[128], id[64];
	struct json_object *h, *env;
	struct hresp r;

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/status/400\",\"correlation_id\":\"c400-%s\","
		 "\"callback\":\"%s/cb-ok/%s\","
		 "\"failure_callback\":{\"url\":\"%s/cb-fail/%s\",\"headers\":{\"X-Team\":\"b\"}}}",
		 target, tg, target, tg, target, tg);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	it_field_is(id, "state", "dead");
	it_field_is(id, "attempts", "1");
	it_field_is(id, "last_status", "400");
	CHECK(it_attempts_count(id) == 1, "attempt rows: %ld", it_attempts_count(id));

	snprintf(path, sizeof(path), "/cb-ok/%s", tg);
	h = it_hits(tlog, path);
	CHECK(json_object_array_length(h) == 0, "the success callback was called");
	json_object_put(h);
	snprintf(path, sizeof(path), "/cb-fail/%s", tg);
	h = it_hits(tlog, path);
	if (CHECK(json_object_array_length(h) == 1, "%zu failure callbacks",
		  json_object_array_length(h))) {
		struct json_object *e = json_object_array_get_idx(h, 0);
		size_t len;
		unsigned char *data = hit_body(e, &len);

		it_jis(e, "method", "POST");
		it_jis(e, "headers.x-team", "b");
		it_jis(e, "headers.content-type", "application/json");
		it_jis(e, "headers.async-call-id", id);
		snprintf(body, sizeof(body), "c400-%s", tg);
		it_jis(e, "headers.async-correlation-id", body);
		env = json_tokener_parse((const char *)data);
		if (CHECK(env != NULL, "envelope is not JSON: %s", data)) {
			it_jis(env, "call_id", id);
			it_jis(env, "correlation_id", body);
			it_jis(env, "outcome", "dead");
			it_jis(env, "attempts", "1");
			it_jis(env, "response.status", "400");
			it_jis(env, "response.body", "status 400");
		}
		json_object_put(env);
		free(data);
	}
	json_object_put(h);
	/* the callback is a call of its own, shown with the call */
	snprintf(path, sizeof(path), "/v1/calls/%s", id);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	env = it_json(&r);
	it_jis(env, "callback_call.state", "succeeded");
	it_jis(env, "callback_call.last_status", "200");
	json_object_put(env);
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE callback_of = $1::uuid AND "
			  "callback_url IS NULL AND failure_callback_url IS NULL",
			  1, (const char *const[]){id}) == 1,
	      "the callback call has no callback of its own");
}

/* A target that hangs: each attempt ends at the call's timeout and is retried. A reset
 * connection is a retryable error too. */
static void t_timeout_and_reset(void)
{
	const char *tg = it_tag('t');
	char body[512], id[64], id2[64];
	pid_t pid;
	PGresult *res;

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/slow/8000/%s\",\"timeout\":\"1s\",\"retry\":{\"max_attempts\":2,"
		 "\"initial\":\"100ms\",\"max\":\"200ms\"}}",
		 target, tg);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/reset/%s\",\"retry\":{\"max_attempts\":2,"
		 "\"initial\":\"100ms\",\"max\":\"200ms\"}}",
		 target, tg);
	snprintf(id2, sizeof(id2), "%s", it_enqueue(url, body, NULL));
	pid = follow_start();
	wait_state(id, "dead", 1, 10000);
	wait_state(id2, "dead", 1, 10000);
	it_drainer_stop(pid);
	res = PQexecParams(it_db(),
			   "SELECT attempt, duration_ms, status, error FROM attempts "
			   "WHERE call_id = $1::uuid ORDER BY attempt",
			   1, NULL, (const char *const[]){id}, NULL, NULL, 0);
	if (CHECK(PQntuples(res) == 2, "%d attempts of the hanging call", PQntuples(res))) {
		for (int i = 0; i < 2; i++) {
			long ms = strtol(PQgetvalue(res, i, 1), NULL, 10);

			printf("# hang: attempt %d ended after %ld ms: %s\n", i + 1, ms,
			       PQgetvalue(res, i, 3));
			CHECK(ms >= 950 && ms <= 2500, "attempt took %ld ms, timeout is 1 s", ms);
			CHECK(PQgetisnull(res, i, 2), "a status for a timed-out attempt");
			CHECK(strstr(PQgetvalue(res, i, 3), "imeout") != NULL, "error: %s",
			      PQgetvalue(res, i, 3));
		}
	}
	PQclear(res);
	res = PQexecParams(it_db(),
			   "SELECT error FROM attempts WHERE call_id = $1::uuid ORDER BY attempt",
			   1, NULL, (const char *const[]){id2}, NULL, NULL, 0);
	CHECK(PQntuples(res) == 2, "%d attempts of the reset call", PQntuples(res));
	for (int i = 0; i < PQntuples(res); i++)
		CHECK(PQgetlength(res, i, 0) > 0, "no error recorded for a reset");
	if (PQntuples(res) > 0)
		printf("# reset: %s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
}

/* 10 MB answers: the stored body is capped at 64 KiB, the size counted whole, and the
 * drainer's memory stays bounded. */
static void t_big_response(void)
{
	const char *tg = it_tag('t');
	char body[512];
	long rss_kb = 0;
	pid_t pid;
	int n = 8;

	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "{\"target\":\"%s/big/10485760/%s/%d\"}", target, tg,
			 i);
		it_enqueue(url, body, NULL);
	}
	pid = it_drainer_spawn(drainer_log, (const char *const[]){"--once", NULL});
	CHECK(it_drainer_wait(pid, 60000, &rss_kb) == 0, "drainer --once failed");
	printf("# %d x 10 MB answers: drainer peak RSS %ld KiB\n", n, rss_kb);
	CHECK(rss_kb > 0 && rss_kb < 48 * 1024, "drainer peak RSS %ld KiB for %d x 10 MB", rss_kb,
	      n);
	snprintf(body, sizeof(body), "%%/big/10485760/%s/%%", tg);
	CHECK(it_sql_long(
		      "SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
		      "WHERE c.target LIKE $1 AND c.state = 'succeeded' "
		      "AND a.response_size = 10485760 AND octet_length(a.response_body) = 65536",
		      1, (const char *const[]){body}) == n,
	      "stored bodies not capped at 64 KiB with the whole size counted");
}

/* kill -9 with calls in flight: none lost, none sent again while its lease holds. */
static void t_kill9(void)
{
	const char *tg = it_tag('t');
	char body[512], path[128], like[128];
	int n = 20;
	pid_t a, b;
	struct json_object *h = NULL;
	int64_t lease_ms;
	long redelivered_early = 0, lost;
	PGresult *res;

	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof(body),
			 "{\"target\":\"%s/slow/1500/%s/%d\",\"timeout\":\"3s\"}", target, tg, i);
		it_enqueue(url, body, NULL);
	}
	snprintf(path, sizeof(path), "/slow/1500/%s/", tg);
	a = follow_start();
	json_object_put(wait_hits(path, n, 5000));
	kill(a, SIGKILL);
	it_drainer_wait(a, 5000, NULL);
	snprintf(like, sizeof(like), "%%/slow/1500/%s/%%", tg);
	/* leases as the dead drainer left them */
	res = PQexecParams(it_db(),
			   "SELECT id, (EXTRACT(epoch FROM lease_until) * 1000)::bigint FROM calls "
			   "WHERE target LIKE $1 AND state = 'in_flight'",
			   1, NULL, (const char *const[]){like}, NULL, NULL, 0);
	CHECK(PQntuples(res) == n, "%d of %d calls in flight at the kill", PQntuples(res), n);
	b = follow_start();
	wait_state(like, "succeeded", n, 20000);
	it_drainer_stop(b);

	h = it_hits(tlog, path);
	for (int i = 0; i < PQntuples(res); i++) {
		const char *id = PQgetvalue(res, i, 0);
		int seen = 0;

		lease_ms = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		for (size_t k = 0; k < json_object_array_length(h); k++) {
			struct json_object *e = json_object_array_get_idx(h, k);
			const char *cid = it_jget(e, "headers.async-call-id");

			if (cid == NULL || strcmp(cid, id) != 0)
				continue;
			seen++;
			if (seen == 2 &&
			    json_object_get_int64(json_object_object_get(e, "t_us")) / 1000 <
				    lease_ms)
				redelivered_early++;
		}
		CHECK(seen == 2, "call %s delivered %d times (once before the kill, once after)",
		      id, seen);
	}
	json_object_put(h);
	PQclear(res);
	lost = n - it_sql_long("SELECT count(*) FROM calls WHERE target LIKE $1 AND "
			       "state = 'succeeded'",
			       1, (const char *const[]){like});
	printf("# kill -9: %d calls, %ld lost, %ld sent again before their lease ran out\n", n,
	       lost, redelivered_early);
	CHECK(lost == 0, "%ld calls lost", lost);
	CHECK(redelivered_early == 0, "%ld calls sent again while the lease held",
	      redelivered_early);
	CHECK(it_sql_long(
		      "SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
		      "WHERE c.target LIKE $1 AND a.attempt = 1 AND a.error LIKE 'lease expired%'",
		      1, (const char *const[]){like}) == n,
	      "the lost attempts are recorded as such");
	CHECK(it_sql_long("SELECT sum(attempts) FROM calls WHERE target LIKE $1", 1,
			  (const char *const[]){like}) ==
		      it_sql_long(
			      "SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
			      "WHERE c.target LIKE $1",
			      1, (const char *const[]){like}),
	      "calls.attempts and the attempts table disagree");
}

/* Enqueues total calls to the target's /kind/tg/N (body "N"), in arrays of batch. */
static void enqueue_many(const char *kind, const char *tg, int total, int batch)
{
	struct buf b;

	for (int k = 0; k < total / batch; k++) {
		struct hresp r;

		buf_init(&b);
		buf_puts(&b, "[");
		for (int i = 0; i < batch; i++)
			buf_printf(&b, "%s{\"target\":\"%s/%s/%s/%d\",\"body_text\":\"%d\"}",
				   i ? "," : "", target, kind, tg, k * batch + i, k * batch + i);
		buf_puts(&b, "]");
		it_http("POST", url, "/v1/calls", JSON, b.data, b.len, NULL, &r);
		CHECK(r.status == 202, "batch %d: %ld", k, r.status);
		it_hresp_free(&r);
		buf_cleanup(&b);
	}
}

/* Every one of the total calls whose target is LIKE like succeeded at its first attempt, with
 * one attempt row each. */
static void check_once(const char *like, int total)
{
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE target LIKE $1 AND state = 'succeeded'"
			  " AND attempts = 1",
			  1, (const char *const[]){like}) == total,
	      "not every call succeeded at its first attempt");
	CHECK(it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id"
			  " WHERE c.target LIKE $1",
			  1, (const char *const[]){like}) == total,
	      "attempt rows: want one per call");
}

/* Four drainers (two --once, two --follow) on 5,000 calls. */
static void t_four_drainers(void)
{
	const char *tg = it_tag('t');
	int total = 5000, batch = 1000;
	char like[128], path[128];
	pid_t f1, f2, o1, o2;
	int64_t t0;
	struct json_object *h, *seen;
	long dups = 0, expired_leases;

	enqueue_many("many", tg, total, batch);
	t0 = it_now_ms();
	f1 = follow_start();
	o1 = it_drainer_spawn(drainer_log, (const char *const[]){"--once", NULL});
	f2 = it_drainer_spawn(drainer_log, (const char *const[]){"--follow", NULL});
	o2 = it_drainer_spawn(drainer_log,
			      (const char *const[]){"--once", "--concurrency", "16", NULL});
	snprintf(like, sizeof(like), "%%/many/%s/%%", tg);
	wait_state(like, "succeeded", total, 60000);
	printf("# 4 drainers: %d calls delivered in %lld ms\n", total,
	       (long long)(it_now_ms() - t0));
	CHECK(it_drainer_wait(o1, 30000, NULL) == 0, "--once drainer 1 failed");
	CHECK(it_drainer_wait(o2, 30000, NULL) == 0, "--once drainer 2 failed");
	it_drainer_stop(f1);
	it_drainer_stop(f2);

	snprintf(path, sizeof(path), "/many/%s/", tg);
	h = it_hits(tlog, path);
	seen = json_object_new_object();
	for (size_t k = 0; k < json_object_array_length(h); k++) {
		const char *cid = it_jget(json_object_array_get_idx(h, k), "headers.async-call-id");

		if (cid == NULL)
			continue;
		if (json_object_object_get_ex(seen, cid, NULL))
			dups++;
		else
			json_object_object_add(seen, cid, NULL);
	}
	expired_leases = it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON "
				     "c.id = a.call_id WHERE c.target LIKE $1 AND "
				     "a.error LIKE 'lease expired%'",
				     1, (const char *const[]){like});
	printf("# 4 drainers: %d distinct calls received, %ld duplicates, %ld leases expired\n",
	       json_object_object_length(seen), dups, expired_leases);
	CHECK(json_object_object_length(seen) == total, "%d distinct calls received, want %d",
	      json_object_object_length(seen), total);
	CHECK(dups == expired_leases, "%ld duplicates but %ld expired leases", dups,
	      expired_leases);
	CHECK(it_sql_long("SELECT sum(attempts) FROM calls WHERE target LIKE $1", 1,
			  (const char *const[]){like}) ==
		      it_sql_long(
			      "SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
			      "WHERE c.target LIKE $1",
			      1, (const char *const[]){like}),
	      "sum of calls.attempts differs from the attempts table");
	CHECK(it_sql_long("SELECT count(DISTINCT drainer) FROM attempts a JOIN calls c ON "
			  "c.id = a.call_id WHERE c.target LIKE $1",
			  1, (const char *const[]){like}) >= 2,
	      "the work was not shared between drainers");
	json_object_put(seen);
	json_object_put(h);
}

/* --threads 2: one --once drainer runs two drain loops that share the calls, each under a
 * name of its own, and every call is delivered and recorded once. */
static void t_threads(void)
{
	const char *tg = it_tag('t');
	int total = 2000, batch = 500;
	char like[128], name[64], n1[80], n2[80];
	pid_t o;

	enqueue_many("threads", tg, total, batch);
	snprintf(name, sizeof(name), "thr-%s", tg);
	snprintf(n1, sizeof(n1), "%s/1", name);
	snprintf(n2, sizeof(n2), "%s/2", name);
	o = it_drainer_spawn(drainer_log,
			     (const char *const[]){"--once", "--threads", "2", "--concurrency",
						   "32", "--name", name, NULL});
	CHECK(it_drainer_wait(o, 60000, NULL) == 0, "--once --threads 2 failed");
	snprintf(like, sizeof(like), "%%/threads/%s/%%", tg);
	check_once(like, total);
	CHECK(it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id"
			  " WHERE c.target LIKE $1 AND a.drainer = $2",
			  2, (const char *const[]){like, n1}) > 0 &&
		      it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id"
				  " WHERE c.target LIKE $1 AND a.drainer = $2",
				  2, (const char *const[]){like, n2}) > 0,
	      "both loops (%s, %s) should have delivered calls", n1, n2);
}

/* A claim that loses a race with another drainer claims nothing and is made again. PostgreSQL
 * reports the race as a serialization failure (40001: a row the claim's snapshot still saw
 * queued was claimed and moved to calls_done meanwhile; seen in make bench with two drain
 * loops). A trigger injects it: the first 8 claims of this test's calls fail with 40001, more
 * than dbq's own three immediate retries of one statement. --once must still deliver every
 * call once and exit 0. */
static void t_claim_conflict(void)
{
	const char *tg = it_tag('t');
	int total = 300;
	char like[128], name[64];
	pid_t o;

	snprintf(like, sizeof(like), "%%/conflict/%s/%%", tg);
	snprintf(name, sizeof(name), "conflict-%s", tg);
	if (!it_sql_exec("CREATE SEQUENCE it_conflict_n", 0, NULL) ||
	    !it_sql_exec("CREATE TABLE it_conflict (pattern text)", 0, NULL) ||
	    !it_sql_exec("INSERT INTO it_conflict VALUES ($1)", 1, (const char *const[]){like}) ||
	    !it_sql_exec("CREATE FUNCTION it_conflict_fail() RETURNS trigger LANGUAGE plpgsql AS $$"
			 " BEGIN"
			 "  IF NEW.state = 'in_flight' AND OLD.state <> 'in_flight'"
			 "   AND NEW.target LIKE (SELECT pattern FROM it_conflict)"
			 "   AND nextval('it_conflict_n') <= 8 THEN"
			 "   RAISE EXCEPTION 'injected: could not serialize access'"
			 "    USING ERRCODE = '40001';"
			 "  END IF;"
			 "  RETURN NEW;"
			 " END $$",
			 0, NULL) ||
	    !it_sql_exec("CREATE TRIGGER it_conflict BEFORE UPDATE ON calls_live"
			 " FOR EACH ROW EXECUTE FUNCTION it_conflict_fail()",
			 0, NULL))
		goto out;
	enqueue_many("conflict", tg, total, 100);
	o = it_drainer_spawn(drainer_log, (const char *const[]){"--once", "--concurrency", "16",
								"--name", name, NULL});
	CHECK(it_drainer_wait(o, 60000, NULL) == 0,
	      "--once failed on claims that lost a race (see the drainer log)");
	CHECK(it_sql_long("SELECT last_value FROM it_conflict_n", 0, NULL) >= 8,
	      "the trigger did not fail 8 claims");
	check_once(like, total);
out:
	(void)it_sql_exec("DROP TRIGGER IF EXISTS it_conflict ON calls_live", 0, NULL);
	(void)it_sql_exec("DROP FUNCTION IF EXISTS it_conflict_fail()", 0, NULL);
	(void)it_sql_exec("DROP TABLE IF EXISTS it_conflict", 0, NULL);
	(void)it_sql_exec("DROP SEQUENCE IF EXISTS it_conflict_n", 0, NULL);
}

/* expires_in: a call past it when claimed ends expired unsent; a call whose next retry would
 * fall after it ends expired at once. Both get the failure callback with outcome "expired". */
static void t_expiry(void)
{
	const char *tg = it_tag('t');
	char body[512], path[128], id[64], id2[64];
	struct json_object *h;

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/exp/%s\",\"expires_in\":\"1s\","
		 "\"failure_callback\":\"%s/cb-exp/%s/a\"}",
		 target, tg, target, tg);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/status/503?%s\",\"expires_in\":\"3s\","
		 "\"retry\":{\"initial\":\"5s\",\"max\":\"10s\"},"
		 "\"failure_callback\":\"%s/cb-exp/%s/b\"}",
		 target, tg, target, tg);
	it_sleep_ms(1300);
	snprintf(id2, sizeof(id2), "%s", it_enqueue(url, body, NULL));
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	it_field_is(id, "state", "expired");
	it_field_is(id, "attempts", "0");
	CHECK(it_attempts_count(id) == 0, "an expired call was attempted");
	snprintf(path, sizeof(path), "/exp/%s", tg);
	h = it_hits(tlog, path);
	CHECK(json_object_array_length(h) == 0, "an expired call reached the target");
	json_object_put(h);
	it_field_is(id2, "state", "expired");
	it_field_is(id2, "attempts", "1");
	it_field_is(id2, "last_status", "503");

	snprintf(path, sizeof(path), "/cb-exp/%s/", tg);
	h = it_hits(tlog, path);
	if (CHECK(json_object_array_length(h) == 2, "%zu expiry callbacks",
		  json_object_array_length(h))) {
		for (size_t k = 0; k < 2; k++) {
			struct json_object *e = json_object_array_get_idx(h, k), *env;
			size_t len;
			unsigned char *data = hit_body(e, &len);
			bool first = strstr(it_jget(e, "path"), "/a") != NULL;

			env = json_tokener_parse((const char *)data);
			it_jis(env, "outcome", "expired");
			it_jis(env, "call_id", first ? id : id2);
			if (first)
				CHECK(it_jget(env, "response") == NULL,
				      "a response for an unsent call");
			else
				it_jis(env, "response.status", "503");
			json_object_put(env);
			free(data);
		}
	}
	json_object_put(h);
}

/* SIGTERM: a --follow drainer stops claiming, finishes what is in flight, exits 0. A second
 * signal stops at once: a call whose request went out counts as an aborted attempt (retried
 * later); one whose request did not is given back to the queue as it was. */
static void t_sigterm(void)
{
	const char *tg = it_tag('t');
	char body[512], path[128], like[128], unsent[64];
	struct sockaddr_in sa;
	socklen_t salen;
	int lfd;
	int n = 5, rc;
	int64_t t;
	pid_t pid;

	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "{\"target\":\"%s/slow/1500/%s/a%d\"}", target, tg, i);
		it_enqueue(url, body, NULL);
	}
	snprintf(path, sizeof(path), "/slow/1500/%s/a", tg);
	pid = follow_start();
	json_object_put(wait_hits(path, n, 5000));
	t = it_now_ms();
	kill(pid, SIGTERM);
	rc = it_drainer_wait(pid, 10000, NULL);
	printf("# SIGTERM: exit %d after %lld ms with %d calls in flight\n", rc,
	       (long long)(it_now_ms() - t), n);
	CHECK(rc == 0, "exit status %d", rc);
	snprintf(like, sizeof(like), "%%/slow/1500/%s/a%%", tg);
	CHECK(count_state(like, "succeeded") == n, "in-flight calls not finished before exit");

	/* Second run: calls whose request went out, and one whose TLS handshake never ends (a
	 * listener that never accepts), so its request never left. */
	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "{\"target\":\"%s/slow/4000/%s/b%d\"}", target, tg, i);
		it_enqueue(url, body, NULL);
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	salen = sizeof(sa);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		      listen(lfd, 8) == 0 && getsockname(lfd, (struct sockaddr *)&sa, &salen) == 0,
	      "a listener for the unsent call");
	snprintf(body, sizeof(body),
		 "{\"target\":\"https://127.0.0.1:%d/%s/c\",\"timeout\":\"20s\"}",
		 ntohs(sa.sin_port), tg);
	snprintf(unsent, sizeof(unsent), "%s", it_enqueue(url, body, NULL));
	snprintf(path, sizeof(path), "/slow/4000/%s/b", tg);
	pid = follow_start();
	json_object_put(wait_hits(path, n, 5000));
	t = it_now_ms();
	kill(pid, SIGTERM);
	it_sleep_ms(100);
	kill(pid, SIGTERM);
	rc = it_drainer_wait(pid, 10000, NULL);
	printf("# SIGTERM twice: exit %d after %lld ms\n", rc, (long long)(it_now_ms() - t));
	CHECK(rc == 0, "exit status %d", rc);
	CHECK(it_now_ms() - t < 3000, "a second SIGTERM did not stop it at once");
	snprintf(like, sizeof(like), "%%/slow/4000/%s/b%%", tg);
	CHECK(it_sql_long("SELECT count(*) FROM calls c JOIN attempts a ON a.call_id = c.id "
			  "WHERE c.target LIKE $1 AND c.state = 'retrying' AND c.attempts = 1 "
			  "AND a.error LIKE 'aborted: the drainer was stopped%'",
			  1, (const char *const[]){like}) == n,
	      "calls sent when the drainer stopped are not recorded as aborted attempts");
	it_field_is(unsent, "state", "queued");
	it_field_is(unsent, "attempts", "0");
	CHECK(it_attempts_count(unsent) == 0, "an unsent call has an attempt row");
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE id = $1::uuid AND lease_until IS NULL",
			  1, (const char *const[]){unsent}) == 1,
	      "the unsent call still holds a lease");
	if (lfd >= 0)
		close(lfd);
	it_sql_exec("UPDATE calls SET state = 'cancelled', finished_at = now() "
		    "WHERE (target LIKE $1 OR id = $2::uuid) AND state IN ('queued', 'retrying')",
		    2, (const char *const[]){like, unsent});
}

/* PostgreSQL goes away while calls are in flight: --follow keeps their outcomes and records
 * them once it is back (nothing lost, nothing sent twice); --once without a database exits 1. */
static void t_db_outage(void)
{
	const char *tg = it_tag('t');
	char body[512], path[128], like[128];
	struct json_object *h = NULL;
	int n = 5, rc;
	pid_t pid;

	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "{\"target\":\"%s/slow/1000/%s/%d\"}", target, tg, i);
		it_enqueue(url, body, NULL);
	}
	snprintf(path, sizeof(path), "/slow/1000/%s/", tg);
	pid = follow_start();
	json_object_put(wait_hits(path, n, 5000));
	CHECK(it_pg_ctl("stop") == 0, "could not stop PostgreSQL");
	it_sleep_ms(2500); /* the answers come back; their outcomes cannot be recorded */
	rc = it_drain_once(drainer_log);
	CHECK(rc == 1, "--once without a database: exit %d, want 1", rc);
	CHECK(it_pg_ctl("start") == 0, "could not start PostgreSQL");
	snprintf(like, sizeof(like), "%%/slow/1000/%s/%%", tg);
	wait_state(like, "succeeded", n, 15000);
	it_drainer_stop(pid);
	h = it_hits(tlog, path);
	CHECK((int)json_object_array_length(h) == n, "%zu deliveries of %d calls",
	      json_object_array_length(h), n);
	json_object_put(h);
	CHECK(it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
			  "WHERE c.target LIKE $1 AND a.status = 200",
			  1, (const char *const[]){like}) == n,
	      "attempts recorded after the outage");
}

/* The settle sessions of drainers that wait for a lock, as a count. */
static long settles_waiting(void)
{
	return it_sql_long("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
			   "AND query LIKE '%jsonb_to_recordset%'",
			   0, NULL);
}

/* A settle that waits (here for a lock on attempt_stats, which every settle writes to) does
 * not stop the drainer: its transfers go on and further claims are sent meanwhile. A settle
 * whose connection breaks while it is out is sent again on a new one and recorded once. */
static void t_slow_settle(void)
{
	const char *tg = it_tag('t');
	char body[512], path[128], like[128];
	struct json_object *h;
	PGconn *locker = PQconnectdb("");
	PGresult *res;
	long stats0, waiting = 0;
	int n = 12, rc;
	pid_t pid;

	CHECK(PQstatus(locker) == CONNECTION_OK, "second connection: %s", PQerrorMessage(locker));
	/* Row locks on every success counter the settles add to (a table lock would stop the
	 * PREPAREs of new connections too). Rows made here count 0 and go at the end. */
	it_sql_exec(
		"INSERT INTO attempt_stats (outcome, bucket_ms, n, sum_ms) "
		"SELECT 'success', b, 0, 0 FROM unnest(ARRAY[5, 10, 25, 50, 100, 250, 500, 1000, "
		"2500, 5000, 10000, 30000, 60000, -1]) AS b ON CONFLICT DO NOTHING",
		0, NULL);
	res = PQexec(locker, "BEGIN; SELECT * FROM attempt_stats WHERE outcome = 'success' "
			     "FOR UPDATE");
	CHECK(PQresultStatus(res) == PGRES_TUPLES_OK, "lock: %s", PQerrorMessage(locker));
	PQclear(res);
	stats0 = it_sql_long("SELECT coalesce(sum(n), 0) FROM attempt_stats", 0, NULL);
	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "{\"target\":\"%s/settle/%s/%d\"}", target, tg, i);
		it_enqueue(url, body, NULL);
	}
	snprintf(path, sizeof(path), "/settle/%s/", tg);
	snprintf(like, sizeof(like), "%%/settle/%s/%%", tg);
	/* two at a time: every call after the first two is claimed while a settle waits */
	pid = it_drainer_spawn(drainer_log,
			       (const char *const[]){"--once", "--concurrency", "2", NULL});
	h = wait_hits(path, n, 30000);
	CHECK((int)json_object_array_length(h) == n,
	      "%zu of %d calls reached the target while the settles waited",
	      json_object_array_length(h), n);
	json_object_put(h);
	CHECK(attempts_of_like(like) == 0, "attempts recorded while attempt_stats was locked");
	for (int i = 0; i < 1500 && waiting == 0; i++) {
		waiting = settles_waiting();
		if (waiting == 0)
			it_sleep_ms(20);
	}
	CHECK(waiting == 1, "%ld settles wait for the lock, want 1", waiting);
	/* break the settle's connection; it is sent again, and waits again */
	CHECK(it_sql_long("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
			  "WHERE wait_event_type = 'Lock' AND query LIKE '%jsonb_to_recordset%'",
			  0, NULL) == 1,
	      "no settle to break");
	waiting = 0;
	for (int i = 0; i < 1500 && waiting == 0; i++) {
		waiting = settles_waiting();
		if (waiting == 0)
			it_sleep_ms(20);
	}
	CHECK(waiting == 1, "the settle was not sent again (%ld waiting)", waiting);
	res = PQexec(locker, "ROLLBACK");
	PQclear(res);
	PQfinish(locker);
	rc = it_drainer_wait(pid, 60000, NULL);
	CHECK(rc == 0, "--once exit status %d", rc);
	CHECK(count_state(like, "succeeded") == n, "%ld of %d succeeded",
	      count_state(like, "succeeded"), n);
	CHECK(it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
			  "WHERE c.target LIKE $1 AND a.attempt = 1 AND a.status = 200",
			  1, (const char *const[]){like}) == n,
	      "one attempt row per call");
	CHECK(attempts_of_like(like) == n, "%ld attempt rows for %d calls", attempts_of_like(like),
	      n);
	CHECK(it_sql_long("SELECT coalesce(sum(n), 0) FROM attempt_stats", 0, NULL) - stats0 == n,
	      "attempt_stats counted %ld, want %d",
	      it_sql_long("SELECT coalesce(sum(n), 0) FROM attempt_stats", 0, NULL) - stats0, n);
	it_sql_exec("DELETE FROM attempt_stats WHERE n = 0", 0, NULL);
}

/* /v1/drain: 401 without the right token and nothing claimed; with it, a summary that
 * matches the rows it changed. */
static void t_drain_endpoint(void)
{
	const char *tg = it_tag('t');
	char body[512], like[128], auth[256];
	struct hresp r;
	struct json_object *o;

	for (int i = 0; i < 3; i++) {
		snprintf(body, sizeof(body), "{\"target\":\"%s/ping/%s/ok%d\"}", target, tg, i);
		it_enqueue(url, body, NULL);
	}
	snprintf(body, sizeof(body), "{\"target\":\"%s/status/404?%s\"}", target, tg);
	it_enqueue(url, body, NULL);
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/status/503?%s\",\"retry\":{\"max_attempts\":3}}", target, tg);
	it_enqueue(url, body, NULL);
	snprintf(like, sizeof(like), "%%%s%%", tg);

	it_http("GET", url, "/v1/drain", NULL, NULL, 0,
		(const char *const[]){"Authorization: Bearer wrong-token", NULL}, &r);
	CHECK(r.status == 401, "wrong token: %ld", r.status);
	it_hresp_free(&r);
	it_http("POST", url, "/v1/drain?token=wrong", NULL, "", 0, NULL, &r);
	CHECK(r.status == 401, "wrong ?token: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/drain", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 401, "no token: %ld", r.status);
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE target LIKE $1 AND state = 'queued' "
			  "AND attempts = 0",
			  1, (const char *const[]){like}) == 5,
	      "a refused /v1/drain claimed calls");

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	it_http("POST", url, "/v1/drain", NULL, "", 0, (const char *const[]){auth, NULL}, &r);
	CHECK(r.status == 200, "right token: %ld %s", r.status, r.body ? r.body : "");
	o = it_json(&r);
	printf("# /v1/drain: %s\n", r.body ? r.body : "");
	it_jis(o, "claimed", "5");
	it_jis(o, "succeeded", "3");
	it_jis(o, "dead", "1");
	it_jis(o, "retried", "1");
	json_object_put(o);
	it_hresp_free(&r);
	CHECK(count_state(like, "succeeded") == 3, "succeeded rows");
	CHECK(count_state(like, "dead") == 1, "dead rows");
	CHECK(count_state(like, "retrying") == 1, "retrying rows");
	CHECK(it_sql_long("SELECT count(*) FROM attempts a JOIN calls c ON c.id = a.call_id "
			  "WHERE c.target LIKE $1 AND a.drainer LIKE 'fcgi:%'",
			  1, (const char *const[]){like}) == 5,
	      "attempt rows of the handler's drain");
	/* the retrying one is not due yet: a second drain finds nothing */
	snprintf(auth, sizeof(auth), "/v1/drain?token=%s", token);
	it_http("GET", url, auth, NULL, NULL, 0, (const char *const[]){"Authorization:", NULL}, &r);
	o = it_json(&r);
	CHECK(r.status == 200, "?token=: %ld", r.status);
	it_jis(o, "claimed", "0");
	json_object_put(o);
	it_hresp_free(&r);
	it_sql_exec("UPDATE calls SET state = 'cancelled', finished_at = now() "
		    "WHERE target LIKE $1 AND state = 'retrying'",
		    1, (const char *const[]){like});
}

/* Runs the handler as plain CGI for POST /v1/drain with conf, and returns what it wrote (new
 * string; caller frees), or NULL. */
static char *cgi_drain(const char *conf)
{
	int fd[2];
	pid_t pid;
	struct buf out;
	char chunk[4096];
	ssize_t n;

	if (pipe(fd) != 0)
		return NULL;
	pid = fork();
	if (pid == 0) {
		char auth[256];

		snprintf(auth, sizeof(auth), "Bearer %s", token);
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		if (freopen("/dev/null", "r", stdin) == NULL)
			_exit(126);
		setenv("ASYNCGATE_CONF", conf, 1);
		setenv("REQUEST_METHOD", "POST", 1);
		setenv("REQUEST_URI", "/v1/drain", 1);
		setenv("CONTENT_LENGTH", "0", 1);
		setenv("HTTP_AUTHORIZATION", auth, 1);
		execl(getenv("AG_BIN"), "asyncgate.fcgi", (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	buf_init(&out);
	while ((n = read(fd[0], chunk, sizeof(chunk))) > 0)
		buf_append(&out, chunk, (size_t)n);
	close(fd[0]);
	waitpid(pid, NULL, 0);
	return buf_take(&out, NULL);
}

/* /v1/drain's budget: a call still waiting for its answer when the budget ends counts as an
 * aborted attempt (retried with back-off, so a slow target cannot be sent the same attempt on
 * every ping); the answer comes when the budget ends, not when the target answers. */
static void t_drain_budget(void)
{
	const char *tg = it_tag('t');
	char body[256], conf[600], id[64], *out, *err;
	const char *json;
	FILE *in, *f;
	char line[512];
	int64_t t;
	struct json_object *o;

	snprintf(conf, sizeof(conf), "%s/budget.conf", tmpdir);
	in = fopen(getenv("ASYNCGATE_CONF"), "r");
	f = fopen(conf, "w");
	if (!CHECK(in != NULL && f != NULL, "cannot write %s", conf)) {
		if (in != NULL)
			fclose(in);
		if (f != NULL)
			fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), in) != NULL)
		fputs(line, f);
	fputs("\ndrain_budget = 1s\n", f);
	fclose(in);
	fclose(f);
	snprintf(body, sizeof(body), "{\"target\":\"%s/slow/5000/%s\"}", target, tg);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	t = it_now_ms();
	out = cgi_drain(conf);
	t = it_now_ms() - t;
	json = out != NULL ? strstr(out, "\r\n\r\n") : NULL;
	o = json != NULL ? json_tokener_parse(json + 4) : NULL;
	printf("# /v1/drain with a 1 s budget and a 5 s target: %lld ms: %s\n", (long long)t,
	       json != NULL ? json + 4 : "(no answer)");
	CHECK(out != NULL && strncmp(out, "Status: 200", 11) == 0, "CGI answer: %.80s",
	      out ? out : "");
	it_jis(o, "claimed", "1");
	it_jis(o, "retried", "1");
	CHECK(t < 3000, "the drain took %lld ms with a 1 s budget", (long long)t);
	it_field_is(id, "state", "retrying");
	it_field_is(id, "attempts", "1");
	err = it_field(id, "last_error");
	CHECK(err != NULL && strncmp(err, "aborted: the drain budget ran out", 33) == 0,
	      "last_error: %s", err ? err : "(null)");
	free(err);
	CHECK(it_attempts_count(id) == 1, "attempt rows: %ld", it_attempts_count(id));
	json_object_put(o);
	free(out);
	it_sql_exec("UPDATE calls SET state = 'cancelled', finished_at = now() "
		    "WHERE id = $1::uuid AND state = 'retrying'",
		    1, (const char *const[]){id});
}

/* The target verifies the Standard Webhooks signature with the function's secret. */
static void t_signature(void)
{
	const char *tg = it_tag('t');
	char fn[64], bad[64], body[512], id[64], id2[64], path[128];
	struct json_object *h;

	snprintf(fn, sizeof(fn), "signed-%s", tg);
	snprintf(bad, sizeof(bad), "badsig-%s", tg);
	it_sql_exec("INSERT INTO functions (name, base_url, signing_secret, max_attempts) "
		    "VALUES ($1, $2, $3, 1), ($4, $2, 'whsec_c29tZXRoaW5nIGVsc2UgZW50aXJlbHk=', 1)",
		    4, (const char *const[]){fn, target, secret, bad});
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"path\":\"/verify/%s\",\"body\":{\"order\":1234}}", fn, tg);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"path\":\"/verify/%s/bad\",\"body\":{\"order\":1}}", bad,
		 tg);
	snprintf(id2, sizeof(id2), "%s", it_enqueue(url, body, NULL));
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	it_field_is(id, "state", "succeeded");
	it_field_is(id2, "state", "dead");
	it_field_is(id2, "last_status", "401");
	snprintf(path, sizeof(path), "/verify/%s", tg);
	h = it_hits(tlog, path);
	CHECK(json_object_array_length(h) == 2, "%zu hits", json_object_array_length(h));
	for (size_t k = 0; k < json_object_array_length(h); k++) {
		struct json_object *e = json_object_array_get_idx(h, k);
		const char *p = it_jget(e, "path");
		bool is_bad = p != NULL && strstr(p, "/bad") != NULL;

		it_jis(e, "sig", is_bad ? "invalid" : "valid");
		it_jis(e, "headers.webhook-id", is_bad ? id2 : id);
	}
	json_object_put(h);
}

/* The address policy applies to the address connected to: a function (not checked at accept)
 * whose host is a loopback address outside allow_targets is refused by the drainer. */
static void t_refused_address(void)
{
	const char *tg = it_tag('t');
	char fn[64], base[128], body[256], id[64], *err;
	const char *port = strrchr(target, ':');

	snprintf(fn, sizeof(fn), "lo2-%s", tg);
	snprintf(base, sizeof(base), "http://127.0.0.2%s", port != NULL ? port : "");
	it_sql_exec("INSERT INTO functions (name, base_url) VALUES ($1, $2)", 2,
		    (const char *const[]){fn, base});
	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"path\":\"/x\"}", fn);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	it_field_is(id, "state", "dead");
	err = it_field(id, "last_error");
	CHECK(err != NULL && strstr(err, "loopback") != NULL, "error: %s", err ? err : "(null)");
	free(err);
}

/* A function's default headers go under the call's own; a value that is not a string (the
 * table takes any JSON object) is skipped, not sent and not fatal. */
static void t_default_headers(void)
{
	const char *tg = it_tag('t');
	char fn[64], body[256], id[64], path[128];
	struct json_object *h;

	snprintf(fn, sizeof(fn), "dh-%s", tg);
	it_sql_exec("INSERT INTO functions (name, base_url, default_headers) VALUES ($1, $2, "
		    "'{\"X-Default\": \"d\", \"X-Null\": null, \"X-Num\": 1, \"X-Over\": \"fn\"}')",
		    2, (const char *const[]){fn, target});
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"path\":\"/dh/%s\",\"headers\":{\"x-over\":\"call\"}}", fn,
		 tg);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	it_field_is(id, "state", "succeeded");
	snprintf(path, sizeof(path), "/dh/%s", tg);
	h = it_hits(tlog, path);
	if (CHECK(json_object_array_length(h) == 1, "%zu hits", json_object_array_length(h))) {
		struct json_object *e = json_object_array_get_idx(h, 0);

		it_jis(e, "headers.x-default", "d");
		it_jis(e, "headers.x-over", "call");
		CHECK(it_jget(e, "headers.x-null") == NULL, "a null default header was sent");
		CHECK(it_jget(e, "headers.x-num") == NULL, "a number default header was sent");
	}
	json_object_put(h);
}

/* GET /metrics and /v1/health read the views; the counters match the attempts table. */
/* The generic plan of prepared statement `stmt` (EXPLAIN EXECUTE with `args`) on db's
 * connection, as one string; caller frees. */
static char *generic_plan(struct db *db, const char *stmt, const char *args)
{
	char sql[256];
	struct buf b;
	PGresult *res;

	buf_init(&b);
	PQclear(PQexec(db->conn, "SET plan_cache_mode = force_generic_plan"));
	snprintf(sql, sizeof(sql), "EXPLAIN EXECUTE %s(%s)", stmt, args);
	res = PQexec(db->conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		buf_printf(&b, "EXPLAIN failed: %s", PQresultErrorMessage(res));
	for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK && r < PQntuples(res); r++)
		buf_printf(&b, "%s\n", PQgetvalue(res, r, 0));
	PQclear(res);
	return buf_take(&b, NULL);
}

/* sql/009_drain_perf.sql: settles and releases find their calls by primary key, even right
 * after an ANALYZE that saw no call in flight; only the claim's lost leases use the lease
 * index. */
static void t_settle_plan(void)
{
	struct db db;
	char *settle, *release, *claim;

	CHECK(it_sql_exec("ANALYZE calls_live", 0, NULL), "ANALYZE calls_live");
	db_init(&db, "");
	if (db_connect(&db) != 0) {
		CHECK(false, "db_connect failed");
		db_cleanup(&db);
		return;
	}
	settle = generic_plan(&db, "drain_settle", "'[]', 'x', 1, 1, 1, 1");
	release = generic_plan(&db, "drain_release", "'[]', 'x'");
	claim = generic_plan(&db, "drain_claim", "1, 'x', 1");
	CHECK(strstr(settle, "calls_live_pkey") != NULL &&
		      strstr(settle, "calls_live_lease") == NULL,
	      "settle plan: %.2000s", settle);
	CHECK(strstr(release, "calls_live_pkey") != NULL &&
		      strstr(release, "calls_live_lease") == NULL,
	      "release plan: %.2000s", release);
	CHECK(strstr(claim, "Index Scan using calls_live_lease") != NULL, "claim plan: %.2000s",
	      claim);
	free(settle);
	free(release);
	free(claim);
	db_cleanup(&db);
}

/* sql/010_settle_indexes.sql: a settled call's attempt goes into one btree, the primary key
 * (call_id, attempt), which still refuses an attempt recorded twice; calls_done.finished_at
 * is a BRIN index, and ag_purge still finds old finished calls through it. */
static void t_settle_indexes(void)
{
	static const char *ins = "INSERT INTO attempts (call_id, attempt, started_at, drainer)"
				 " VALUES ('00000000-0000-7000-8000-00000000a010', 1, now(), 't')";
	PGresult *res;

	CHECK(it_sql_long("SELECT count(*) FROM pg_index i"
			  " JOIN pg_class c ON c.oid = i.indexrelid"
			  " JOIN pg_am a ON a.oid = c.relam"
			  " WHERE i.indrelid = 'attempts'::regclass AND a.amname = 'btree'",
			  0, NULL) == 1,
	      "attempts has one btree index");
	CHECK(it_sql_long("SELECT count(*) FROM pg_constraint WHERE conname = 'attempts_pkey'"
			  " AND conrelid = 'attempts'::regclass AND contype = 'p'"
			  " AND pg_get_constraintdef(oid) = 'PRIMARY KEY (call_id, attempt)'",
			  0, NULL) == 1,
	      "attempts' primary key is (call_id, attempt)");
	CHECK(it_sql_long("SELECT count(*) FROM pg_class c JOIN pg_am a ON a.oid = c.relam"
			  " WHERE c.relname = 'calls_done_finished' AND a.amname = 'brin'",
			  0, NULL) == 1,
	      "calls_done_finished is a BRIN index");
	CHECK(it_sql_exec(ins, 0, NULL), "first attempt row");
	res = PQexec(it_db(), ins);
	CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR &&
		      strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23505") == 0,
	      "the same attempt twice: %s", PQresultErrorMessage(res));
	PQclear(res);
	CHECK(it_sql_exec("DELETE FROM attempts WHERE drainer = 't'"
			  " AND call_id = '00000000-0000-7000-8000-00000000a010'",
			  0, NULL),
	      "clean up");
	/* a finished call of long ago, purged through the BRIN index */
	CHECK(it_sql_exec("INSERT INTO calls (id, state, target, method, max_attempts,"
			  " retry_initial_ms, retry_max_ms, timeout_ms, finished_at)"
			  " VALUES ('00000000-0000-7000-8000-00000000b010', 'succeeded',"
			  " 'http://127.0.0.1:9/', 'POST', 1, 0, 0, 1000,"
			  " now() - interval '400 days')",
			  0, NULL),
	      "an old finished call");
	CHECK(it_sql_exec("CALL ag_purge(interval '365 days', interval '365 days')", 0, NULL),
	      "ag_purge");
	CHECK(it_sql_long("SELECT count(*) FROM calls"
			  " WHERE id = '00000000-0000-7000-8000-00000000b010'",
			  0, NULL) == 0,
	      "ag_purge removed the old finished call");
}

static void t_metrics_views(void)
{
	struct hresp r;
	char want[128];
	long success, total, lease;

	it_http("GET", url, "/metrics", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "/metrics: %ld", r.status);
	success = it_sql_long("SELECT count(*) FROM attempts WHERE status BETWEEN 200 AND 299", 0,
			      NULL);
	total = it_sql_long("SELECT count(*) FROM attempts", 0, NULL);
	lease = it_sql_long("SELECT count(*) FROM attempts WHERE error LIKE 'lease expired%'", 0,
			    NULL);
	snprintf(want, sizeof(want), "asyncgate_attempts_total{outcome=\"success\"} %ld\n",
		 success);
	CHECK(r.body != NULL && strstr(r.body, want) != NULL, "missing: %s", want);
	snprintf(want, sizeof(want), "asyncgate_dispatch_duration_seconds_count %ld\n",
		 total - lease);
	CHECK(r.body != NULL && strstr(r.body, want) != NULL, "missing: %s", want);
	CHECK(r.body != NULL && strstr(r.body, "asyncgate_calls{state=\"queued\"} ") != NULL,
	      "no queue depth");
	CHECK(r.body != NULL && strstr(r.body, "asyncgate_oldest_due_age_seconds ") != NULL,
	      "no oldest due age");
	CHECK(r.body != NULL &&
		      strstr(r.body, "asyncgate_dispatch_duration_seconds_bucket{le=\"+Inf\"}") !=
			      NULL,
	      "no histogram");
	it_hresp_free(&r);

	it_http("GET", url, "/v1/health", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200 && strstr(r.body, "\"oldest_due_age_s\"") != NULL, "health: %s",
	      r.body ? r.body : "");
	it_hresp_free(&r);

	CHECK(it_sql_long("SELECT count(*) FROM ag_queue_depth", 0, NULL) == 4, "ag_queue_depth");
	CHECK(it_sql_long("SELECT count(*) FROM ag_dead_letters WHERE last_status = 400", 0,
			  NULL) >= 1,
	      "ag_dead_letters misses the 400");
	CHECK(it_sql_long("SELECT sum(attempts) FROM ag_function_stats(interval '1 hour')", 0,
			  NULL) == total,
	      "ag_function_stats does not cover every attempt");
	CHECK(it_sql_long("SELECT count(*) FROM ag_function_stats_1h WHERE success_rate < 0 OR "
			  "success_rate > 1 OR p50_ms > p99_ms",
			  0, NULL) == 0,
	      "ag_function_stats_1h values out of range");
	CHECK(it_sql_long("SELECT count(*) FROM ag_call_attempts WHERE attempt IS NOT NULL", 0,
			  NULL) == total,
	      "ag_call_attempts does not list every attempt");
}

int main(void)
{
	const char *t = getenv("AG_TMP");

	url = getenv("AG_URL");
	target = getenv("AG_TARGET");
	tlog = getenv("AG_TARGET_LOG");
	drainer = getenv("AG_DRAINER");
	secret = getenv("AG_TARGET_SECRET");
	token = getenv("AG_DRAIN_TOKEN");
	if (url == NULL || target == NULL || tlog == NULL || drainer == NULL || secret == NULL ||
	    token == NULL || PQstatus(it_db()) != CONNECTION_OK) {
		printf("not ok - test_drain setup: AG_URL, AG_TARGET, AG_TARGET_LOG, AG_DRAINER, "
		       "AG_TARGET_SECRET, AG_DRAIN_TOKEN and a reachable database are required\n");
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s", t != NULL ? t : "/tmp");
	snprintf(drainer_log, sizeof(drainer_log), "%s/drainer.log", tmpdir);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	it_run("drain: earlier tests' calls cancelled", it_clean_queue);
	it_run("drain: JSON body, headers, query and Async-* arrive intact; binary byte-identical",
	       t_intact);
	it_run("drain: delay 3s is delivered on time (within 1 s) by --follow", t_delay_follow);
	it_run("drain: 503, 503, 200 succeeds on attempt 3 within the backoff bounds; "
	       "Retry-After: 2 honoured",
	       t_retry_backoff);
	it_run("drain: 400 is dead after one attempt; failure callback gets the envelope",
	       t_dead_failure_callback);
	it_run("drain: a hanging target times out and is retried; a reset is retried",
	       t_timeout_and_reset);
	it_run("drain: expires_in ends calls expired, unsent or after a retry, with callbacks",
	       t_expiry);
	it_run("drain: SIGTERM finishes in-flight calls; a second one aborts sent ones as attempts "
	       "and gives unsent ones back",
	       t_sigterm);
	it_run("drain: 10 MB answers are stored capped, drainer memory bounded", t_big_response);
	it_run("drain: kill -9 mid-flight: none lost, none resent while the lease holds", t_kill9);
	it_run("drain: four drainers (--once and --follow) deliver 5,000 calls", t_four_drainers);
	it_run("drain: PostgreSQL outage mid-flight: outcomes kept and recorded after; --once "
	       "exits 1",
	       t_db_outage);
	it_run("drain: transfers and claims go on while a settle waits; a settle whose connection "
	       "broke is sent again and recorded once",
	       t_slow_settle);
	it_run("drain: /v1/drain refuses a wrong token; its summary matches the rows",
	       t_drain_endpoint);
	it_run("drain: at the end of the /v1/drain budget a sent call counts as an aborted attempt",
	       t_drain_budget);
	it_run("drain: the target verifies the Standard Webhooks signature", t_signature);
	it_run("drain: the address policy applies to the address connected to", t_refused_address);
	it_run("drain: function default headers under the call's; non-string values skipped",
	       t_default_headers);
	it_run("drain: --threads 2 shares the calls between two loops, each delivered once",
	       t_threads);
	it_run("drain: a claim that loses a race (40001) is made again; --once delivers all",
	       t_claim_conflict);
	it_run("drain: a settle writes one btree of attempts; finished_at is BRIN (010)",
	       t_settle_indexes);
	it_run("drain: settles and releases find their calls by primary key, not the lease index",
	       t_settle_plan);
	it_run("drain: /metrics, /v1/health and the audit views agree with the attempts",
	       t_metrics_views);
	curl_global_cleanup();
	PQfinish(it_db());
	return it_finish();
}
