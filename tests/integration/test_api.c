/* test_api: the accept side through a real lighttpd and a real PostgreSQL (issue 2's
 * acceptance list): enqueue, validation, batches, idempotency, status, listing, cancel, retry,
 * transparent mode, standalone FastCGI, plain CGI, and a database outage. */
#define _GNU_SOURCE
#include "itest.h"
#include "itest.c.inc"

#include <dirent.h>
#include <openssl/rand.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"

static const char *url;            /* lighttpd with spawned handlers */
static const char *url_standalone; /* lighttpd to the standalone handler socket */

#define JSON "application/json"
#define T "http://127.0.0.1:9" /* allowed by the test config; never called in these tests */

static void post(const char *body, const char *const *hdrs, struct hresp *r)
{
	it_http("POST", url, "/v1/calls", JSON, body, strlen(body), hdrs, r);
}

/* A 202 with Location, and exactly one committed row holding every field as given. */
static void t_valid_call_stored(void)
{
	const char *body =
		"{\"target\":\"" T "/orders\",\"method\":\"put\","
		"\"query\":{\"size\":\"small\",\"tag\":[\"a\",\"b\"],\"q\":\"x y&z\"},"
		"\"headers\":{\"X-A\":\"1\",\"Content-Type\":\"application/vnd.x+json\"},"
		"\"body\":{\"any\":[1,2,\"three\"],\"n\":null},"
		"\"delay\":\"90s\",\"correlation_id\":\"order-1234\","
		"\"callback\":\"" T "/replies\","
		"\"failure_callback\":{\"url\":\"" T "/failures\",\"headers\":{\"X-Team\":\"b\"}},"
		"\"retry\":{\"max_attempts\":7,\"initial\":\"2s\",\"max\":\"5m\"},"
		"\"timeout\":\"20s\",\"expires_in\":\"24h\"}";
	long before = it_calls_count();
	struct hresp r;
	char *loc;
	char id[64];

	post(body, NULL, &r);
	CHECK(r.status == 202, "status %ld: %s", r.status, r.body);
	snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
	loc = it_header(&r, "Location");
	CHECK(loc != NULL && strstr(loc, "/v1/calls/") != NULL && strstr(loc, id) != NULL,
	      "Location %s", loc ? loc : "(none)");
	CHECK(strcmp(it_jstr(&r, "state"), "scheduled") == 0, "state %s", it_jstr(&r, "state"));
	CHECK(strstr(it_jstr(&r, "status_url"), id) != NULL, "status_url");
	CHECK(strlen(it_jstr(&r, "not_before")) == 24, "not_before %s", it_jstr(&r, "not_before"));
	CHECK(it_calls_count() == before + 1, "row count %ld -> %ld", before, it_calls_count());
	it_field_is(id, "state", "queued");
	it_field_is(id, "method", "PUT");
	it_field_is(id, "target", T "/orders");
	it_field_is(id, "query", "size=small&tag=a&tag=b&q=x%20y%26z");
	it_field_is(id, "headers->>'X-A'", "1");
	it_field_is(id, "headers->>'Content-Type'", "application/vnd.x+json");
	it_field_is(id, "convert_from(body, 'UTF8')", "{\"any\":[1,2,\"three\"],\"n\":null}");
	it_field_is(id, "body_type", "json");
	it_field_is(id, "correlation_id", "order-1234");
	it_field_is(id, "callback_url", T "/replies");
	it_field_is(id, "failure_callback_url", T "/failures");
	it_field_is(id, "failure_callback_headers->>'X-Team'", "b");
	it_field_is(id, "max_attempts || ' ' || retry_initial_ms || ' ' || retry_max_ms", "7 2000 300000");
	it_field_is(id, "timeout_ms", "20000");
	it_field_is(id, "round(extract(epoch FROM not_before - created_at))", "90");
	it_field_is(id, "round(extract(epoch FROM expires_at - not_before))", "86400");
	it_field_is(id, "tableoid::regclass::text", "calls_live");
	free(loc);
	it_hresp_free(&r);
}

/* body_text, body_base64 (binary with NUL bytes), and not_before in both spellings. */
static void t_body_kinds(void)
{
	unsigned char bin[256];
	char b64[400];
	char body[1024];
	char hex[600];
	char *got;
	struct hresp r;

	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	EVP_EncodeBlock((unsigned char *)b64, bin, sizeof(bin));
	snprintf(body, sizeof(body),
		 "{\"target\":\"" T "/b\",\"body_base64\":\"%s\",\"not_before\":1700000000}", b64);
	post(body, NULL, &r);
	CHECK(r.status == 202, "base64 status %ld: %s", r.status, r.body);
	for (int i = 0; i < 256; i++)
		snprintf(hex + 2 * i, 3, "%02x", i);
	got = it_field(it_jstr(&r, "id"), "encode(body, 'hex')");
	CHECK(got != NULL && strcmp(got, hex) == 0, "binary body differs");
	free(got);
	CHECK(strcmp(it_jstr(&r, "state"), "queued") == 0, "past not_before is due now");
	CHECK(strcmp(it_jstr(&r, "not_before"), "2023-11-14T22:13:20.000Z") == 0, "not_before %s",
	      it_jstr(&r, "not_before"));
	it_hresp_free(&r);

	{
		/* tomorrow, written at +01:00; stored and shown in UTC */
		time_t t = time(NULL) + 86400;
		time_t local = t + 3600;
		char when[64], want[64], idc[64];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.678+01:00", gmtime(&local));
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.678Z", gmtime(&t));
		snprintf(body, sizeof(body),
			 "{\"target\":\"" T "/t\",\"body_text\":\"h\\u00e9llo\\n\","
			 "\"not_before\":\"%s\"}",
			 when);
		post(body, NULL, &r);
		CHECK(r.status == 202, "text status %ld: %s", r.status, r.body);
		snprintf(idc, sizeof(idc), "%s", it_jstr(&r, "id"));
		it_field_is(idc, "encode(body, 'hex')", "68c3a96c6c6f0a");
		it_field_is(idc, "ag_ts(not_before)", want);
		it_field_is(idc, "body_type", "text");
	}
	it_hresp_free(&r);
}

/* Transparent mode: method, rest of path, query, end-to-end headers and binary body recorded
 * as they came; hop-by-hop, Authorization and control headers are not. */
static void t_transparent_binary(void)
{
	unsigned char bin[4096];
	char hex[8193];
	char authz[256];
	const char *hdrs[] = { "X-Trace: abc-123", authz,
			       "Async-Delay: 5s", "Async-Correlation-Id: tr-1",
			       "Async-Max-Attempts: 3", "Idempotency-Key: tb-1",
			       "Async-Callback: " T "/cb", NULL };
	struct hresp r;
	char *got;
	char id[64];

	/* The gateway's own credential, which must not reach the target. */
	snprintf(authz, sizeof(authz), "Authorization: Bearer %s", getenv("AG_API_KEY"));
	RAND_bytes(bin, sizeof(bin));
	bin[0] = 0;
	bin[100] = '\r';
	bin[101] = '\n';
	for (size_t i = 0; i < sizeof(bin); i++)
		snprintf(hex + 2 * i, 3, "%02x", bin[i]);
	it_http("PATCH", url, "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fhook/sub/path?a=1&b=%2F2",
		"application/octet-stream", bin, sizeof(bin), hdrs, &r);
	CHECK(r.status == 202, "status %ld: %s", r.status, r.body);
	snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
	CHECK(strcmp(it_jstr(&r, "state"), "scheduled") == 0, "Async-Delay makes it scheduled");
	got = it_field(id, "encode(body, 'hex')");
	CHECK(got != NULL && strcmp(got, hex) == 0, "binary body not byte-identical");
	free(got);
	{
		char idc[64];

		snprintf(idc, sizeof(idc), "%s", id);
		it_field_is(idc, "method", "PATCH");
		it_field_is(idc, "target", T "/hook/sub/path");
		it_field_is(idc, "query", "a=1&b=%2F2");
		it_field_is(idc, "headers->>'X-Trace'", "abc-123");
		it_field_is(idc, "headers->>'Content-Type'", "application/octet-stream");
		it_field_is(idc, "headers ? 'Authorization'", "f");
		it_field_is(idc, "(SELECT count(*) FROM jsonb_object_keys(headers) k WHERE k ILIKE "
			      "'async-%' OR k ILIKE 'idempotency-key' OR k ILIKE 'host')::text",
			 "0");
		it_field_is(idc, "correlation_id", "tr-1");
		it_field_is(idc, "max_attempts", "3");
		it_field_is(idc, "callback_url", T "/cb");
		it_field_is(idc, "idempotency_key", "tb-1");
	}
	it_hresp_free(&r);

	/* The URL written out in the path (QStash style). */
	it_http("POST", url, "/v1/async/http://127.0.0.1:9/plain/x?k=v", "text/plain", "hi", 2,
		NULL, &r);
	CHECK(r.status == 202, "plain URL form: %ld %s", r.status, r.body);
	if (r.status == 202) {
		char idc[64];

		snprintf(idc, sizeof(idc), "%s", it_jstr(&r, "id"));
		it_field_is(idc, "target", T "/plain/x");
		it_field_is(idc, "query", "k=v");
	}
	it_hresp_free(&r);
}

static void t_functions(void)
{
	struct hresp r;
	char idc[64];

	it_sql("INSERT INTO functions (name, base_url, max_attempts, timeout_ms) "
	       "VALUES ('resize-image', 'http://127.0.0.1:9/fn', 4, 5000) "
	       "ON CONFLICT (name) DO NOTHING RETURNING name",
	       0, NULL);
	post("{\"function\":\"resize-image\",\"path\":\"/v2/thumbs\",\"body\":{\"w\":64}}", NULL, &r);
	CHECK(r.status == 202, "function call: %ld %s", r.status, r.body);
	snprintf(idc, sizeof(idc), "%s", it_jstr(&r, "id"));
	it_field_is(idc, "function || ' ' || path", "resize-image /v2/thumbs");
	it_field_is(idc, "max_attempts || ' ' || timeout_ms", "4 5000");
	it_hresp_free(&r);

	it_http("DELETE", url, "/v1/async/resize-image/v3/x?y=1", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 202, "transparent function: %ld %s", r.status, r.body);
	snprintf(idc, sizeof(idc), "%s", it_jstr(&r, "id"));
	it_field_is(idc, "function || ' ' || path || ' ' || method || ' ' || query",
		 "resize-image /v3/x DELETE y=1");
	it_hresp_free(&r);
}

static char *make_batch(int n, int bad)
{
	size_t cap = (size_t)n * 96 + 16;
	char *s = malloc(cap);
	size_t o = 0;

	s[o++] = '[';
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s{\"target\":\"%s/b/%d\"}", i ? "," : "",
				      i == bad ? "gopher://127.0.0.1" : T, i);
	s[o++] = ']';
	s[o] = '\0';
	return s;
}

/* A batch of 1000 is one transaction: accepted whole, or (one bad element) not at all. */
static void t_batch(void)
{
	char *good = make_batch(1000, -1);
	char *bad = make_batch(1000, 537);
	struct hresp r;
	struct json_object *arr;
	long before = it_calls_count();

	post(bad, NULL, &r);
	CHECK(r.status == 400, "bad batch status %ld", r.status);
	CHECK(strcmp(it_jstr(&r, "field"), "[537].target") == 0, "field %s", it_jstr(&r, "field"));
	CHECK(strstr(it_jstr(&r, "detail"), "[537]") != NULL, "detail names the index");
	CHECK(it_calls_count() == before, "bad batch wrote rows");
	it_hresp_free(&r);

	post(good, NULL, &r);
	CHECK(r.status == 202, "batch status %ld: %.200s", r.status, r.body);
	arr = it_json(&r);
	CHECK(arr != NULL && json_object_is_type(arr, json_type_array) &&
		      json_object_array_length(arr) == 1000,
	      "answer is an array of 1000");
	if (arr != NULL && json_object_array_length(arr) == 1000) {
		const char *last = json_object_get_string(
			json_object_object_get(json_object_array_get_idx(arr, 999), "id"));

		it_field_is(last, "target", T "/b/999");
	}
	json_object_put(arr);
	CHECK(it_calls_count() == before + 1000, "batch rows %ld", it_calls_count() - before);
	it_hresp_free(&r);
	free(good);
	free(bad);
}

struct bad {
	const char *body;  /* JSON body for POST /v1/calls */
	int status;
	const char *field; /* expected "field" member */
};

/* Every bad input gets a 4xx problem+json naming the problem, and no row. */
static void t_bad_inputs(void)
{
	static char big[1100000];
	static const struct bad cases[] = {
		{ "{}", 400, "target" },
		{ "{\"function\":\"f\",\"target\":\"" T "\"}", 400, "function" },
		{ "{\"function\":\"no-such-fn\"}", 400, "function" },
		{ "{\"function\":\"bad name!\"}", 400, "function" },
		{ "{\"target\":\"" T "\",\"path\":\"/x\"}", 400, "path" },
		{ "{\"function\":\"resize-image\",\"path\":\"x\"}", 400, "path" },
		{ "{\"target\":\"ftp://127.0.0.1/x\"}", 400, "target" },
		{ "{\"target\":\"/relative\"}", 400, "target" },
		{ "{\"target\":\"http://\"}", 400, "target" },
		{ "{\"target\":\"http://u:p@127.0.0.1:9/\"}", 400, "target" },
		{ "{\"target\":\"" T "/#frag\"}", 400, "target" },
		{ "{\"target\":\"http://127.0.0.2/\"}", 400, "target" },
		{ "{\"target\":\"http://10.0.0.1/\"}", 400, "target" },
		{ "{\"target\":\"http://169.254.169.254/latest/meta-data\"}", 400, "target" },
		{ "{\"target\":\"http://[::1]/\"}", 400, "target" },
		{ "{\"target\":\"http://0x7f000002/\"}", 400, "target" },
		{ "{\"target\":\"http://0.0.0.0:9/\"}", 400, "target" },
		{ "{\"target\":42}", 400, "target" },
		{ "{\"target\":\"" T "\",\"method\":\"FETCH\"}", 400, "method" },
		{ "{\"target\":\"" T "\",\"method\":\"CONNECT\"}", 400, "method" },
		{ "{\"target\":\"" T "\",\"headers\":{\"X-A\":\"a\\r\\nX-B: b\"}}", 400, "headers.X-A" },
		{ "{\"target\":\"" T "\",\"headers\":{\"X-A\":\"a\\nb\"}}", 400, "headers.X-A" },
		{ "{\"target\":\"" T "\",\"headers\":{\"X A\":\"a\"}}", 400, "headers.X A" },
		{ "{\"target\":\"" T "\",\"headers\":{\"X:A\":\"a\"}}", 400, "headers.X:A" },
		{ "{\"target\":\"" T "\",\"headers\":{\"Connection\":\"close\"}}", 400, "headers.Connection" },
		{ "{\"target\":\"" T "\",\"headers\":{\"Transfer-Encoding\":\"chunked\"}}", 400,
		  "headers.Transfer-Encoding" },
		{ "{\"target\":\"" T "\",\"headers\":{\"Host\":\"evil\"}}", 400, "headers.Host" },
		{ "{\"target\":\"" T "\",\"headers\":{\"Async-Attempt\":\"9\"}}", 400, "headers.Async-Attempt" },
		{ "{\"target\":\"" T "\",\"headers\":{\"X-A\":\"1\",\"x-a\":\"2\"}}", 400, "headers.x-a" },
		{ "{\"target\":\"" T "\",\"headers\":{\"X-A\":1}}", 400, "headers.X-A" },
		{ "{\"target\":\"" T "\",\"headers\":[\"X-A: 1\"]}", 400, "headers" },
		{ "{\"target\":\"" T "\",\"body\":1,\"body_text\":\"x\"}", 400, "body_text" },
		{ "{\"target\":\"" T "\",\"body_base64\":\"abc\"}", 400, "body_base64" },
		{ "{\"target\":\"" T "\",\"body_base64\":\"ab=c\"}", 400, "body_base64" },
		{ "{\"target\":\"" T "\",\"body_base64\":\"YW Jj\"}", 400, "body_base64" },
		{ "{\"target\":\"" T "\",\"method\":\"GET\",\"body\":{}}", 400, "body" },
		{ "{\"target\":\"" T "\",\"delay\":\"5s\",\"not_before\":\"2026-01-01T00:00:00Z\"}", 400,
		  "delay" },
		{ "{\"target\":\"" T "\",\"delay\":\"-5s\"}", 400, "delay" },
		{ "{\"target\":\"" T "\",\"delay\":-5}", 400, "delay" },
		{ "{\"target\":\"" T "\",\"delay\":\"5 parsecs\"}", 400, "delay" },
		{ "{\"target\":\"" T "\",\"delay\":\"9999d\"}", 400, "delay" },
		{ "{\"target\":\"" T "\",\"not_before\":\"2030-02-30T00:00:00Z\"}", 400, "not_before" },
		{ "{\"target\":\"" T "\",\"not_before\":\"tomorrow\"}", 400, "not_before" },
		{ "{\"target\":\"" T "\",\"not_before\":\"2030-01-01T00:00:00\"}", 400, "not_before" },
		{ "{\"target\":\"" T "\",\"not_before\":\"2999-01-01T00:00:00Z\"}", 400, "not_before" },
		{ "{\"target\":\"" T "\",\"timeout\":\"0s\"}", 400, "timeout" },
		{ "{\"target\":\"" T "\",\"timeout\":\"2h\"}", 400, "timeout" },
		{ "{\"target\":\"" T "\",\"expires_in\":\"0\"}", 400, "expires_in" },
		{ "{\"target\":\"" T "\",\"retry\":{\"max_attempts\":0}}", 400, "retry.max_attempts" },
		{ "{\"target\":\"" T "\",\"retry\":{\"max_attempts\":101}}", 400, "retry.max_attempts" },
		{ "{\"target\":\"" T "\",\"retry\":{\"backoff\":\"x\"}}", 400, "retry.backoff" },
		{ "{\"target\":\"" T "\",\"retry\":{\"initial\":\"10s\",\"max\":\"1s\"}}", 400, "retry.max" },
		{ "{\"target\":\"" T "\",\"correlation_id\":\"a\\u0001b\"}", 400, "correlation_id" },
		{ "{\"target\":\"" T "\",\"correlation_id\":\"\"}", 400, "correlation_id" },
		/* malformed UTF-8 past json-c's check (PostgreSQL refused the row, a 500, before):
		 * overlong, an encoded surrogate; refused as the document's problem (jstrict) */
		{ "{\"target\":\"" T "\",\"correlation_id\":\"a\xc0\xaf" "b\"}", 400, "body" },
		{ "{\"target\":\"" T "\",\"query\":\"a=\xed\xa0\x80\"}", 400, "body" },
		/* percent-encoded 127.0 (127.0.0.0, outside 127.0.0.1/32): it passed as a name before */
		{ "{\"target\":\"http://%31%32%37.0/\"}", 400, "target" },
		{ "{\"target\":\"" T "\",\"callback\":\"ftp://x\"}", 400, "callback" },
		{ "{\"target\":\"" T "\",\"callback\":\"http://192.168.1.1/\"}", 400, "callback" },
		{ "{\"target\":\"" T "\",\"failure_callback\":{\"headers\":{}}}", 400, "failure_callback.url" },
		{ "{\"target\":\"" T "\",\"failure_callback\":{\"url\":\"" T "\",\"x\":1}}", 400,
		  "failure_callback.x" },
		{ "{\"target\":\"" T "\",\"query\":{\"a\":{\"b\":1}}}", 400, "query.a" },
		{ "{\"target\":\"" T "\",\"query\":\"a b\"}", 400, "query" },
		{ "{\"target\":\"" T "\",\"unknown_field\":1}", 400, "unknown_field" },
		{ "[]", 400, "body" },
		{ "[1]", 400, "[0]" },
		{ "\"just a string\"", 400, "body" }, /* the document, as "[]" (field "" before) */
		{ "{\"target\":", 400, "body" },
		{ "{\"target\":\"" T "\"} trailing", 400, "body" },
		{ "{'target':'x'}", 400, "body" },
		{ "{\"target\":\"" T "\",\"body\":NaN}", 400, "body" },
		{ "{\"target\":\"\xff\xfe\"}", 400, "body" },
		{ NULL, 413, "body_text" }, /* big body_text, built below */
	};
	long before = it_calls_count();
	struct hresp r;
	char *many;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad *c = &cases[i];
		const char *body = c->body;
		char *ct;

		if (body == NULL) {
			size_t o = (size_t)snprintf(big, sizeof(big),
						    "{\"target\":\"" T "\",\"body_text\":\"");
			memset(big + o, 'a', 1048577);
			snprintf(big + o + 1048577, sizeof(big) - o - 1048577, "\"}");
			body = big;
		}
		post(body, NULL, &r);
		ct = it_header(&r, "Content-Type");
		CHECK(r.status == c->status, "case %zu (%.80s): status %ld, want %d: %.300s", i, body,
		      r.status, c->status, r.body);
		CHECK(ct != NULL && strcmp(ct, "application/problem+json") == 0,
		      "case %zu: Content-Type %s", i, ct ? ct : "(none)");
		if (c->field[0] != '\0')
			CHECK(strcmp(it_jstr(&r, "field"), c->field) == 0,
			      "case %zu (%.80s): field '%s', want '%s'", i, body, it_jstr(&r, "field"),
			      c->field);
		CHECK(strlen(it_jstr(&r, "detail")) > 0 && strlen(it_jstr(&r, "title")) > 0 &&
			      strcmp(it_jstr(&r, "type"), "about:blank") == 0,
		      "case %zu: problem members", i);
		free(ct);
		it_hresp_free(&r);
	}
	/* More headers than max_headers (64). */
	{
		size_t cap = 8192, o = 0;

		many = malloc(cap);
		o += (size_t)snprintf(many + o, cap - o, "{\"target\":\"" T "\",\"headers\":{");
		for (int i = 0; i < 65; i++)
			o += (size_t)snprintf(many + o, cap - o, "%s\"X-H%d\":\"v\"", i ? "," : "", i);
		snprintf(many + o, cap - o, "}}");
		post(many, NULL, &r);
		CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "headers") == 0,
		      "65 headers: %ld %s", r.status, r.body);
		it_hresp_free(&r);
		free(many);
	}
	/* Wrong content type, empty body, batch over max_batch. */
	it_http("POST", url, "/v1/calls", "text/plain", "{}", 2, NULL, &r);
	CHECK(r.status == 415 && strcmp(it_jstr(&r, "field"), "Content-Type") == 0,
	      "text/plain: %ld", r.status);
	it_hresp_free(&r);
	it_http("POST", url, "/v1/calls", "application/json; charset=latin1", "{}", 2, NULL, &r);
	CHECK(r.status == 415, "latin1 charset: %ld", r.status);
	it_hresp_free(&r);
	it_http("POST", url, "/v1/calls", JSON, "", 0, NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "body") == 0, "empty body: %ld",
	      r.status);
	it_hresp_free(&r);
	many = make_batch(1001, -1);
	post(many, NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "body") == 0, "1001 calls: %ld",
	      r.status);
	it_hresp_free(&r);
	free(many);
	CHECK(it_calls_count() == before, "bad inputs wrote %ld rows", it_calls_count() - before);
}

/* Transparent mode's own bad inputs. */
static void t_bad_transparent(void)
{
	static const struct {
		const char *path;
		const char *hdr;
		int status;
		const char *field;
	} cases[] = {
		{ "/v1/async/", NULL, 400, "path" },
		{ "/v1/async/ftp%3A%2F%2F127.0.0.1%2Fx", NULL, 400, "target" },
		{ "/v1/async/http%3A%2F%2F10.1.2.3%2Fx", NULL, 400, "target" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2F%ZZ", NULL, 400, "path" },
		{ "/v1/async/no-such-function/x", NULL, 400, "function" },
		{ "/v1/async/bad%21name/x", NULL, 400, "function" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "Async-Delay: soon", 400, "Async-Delay" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "Async-Not-Before: 2030-13-01T00:00:00Z", 400,
		  "Async-Not-Before" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "Async-Max-Attempts: 0", 400,
		  "Async-Max-Attempts" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "Async-Callback: http://10.0.0.1/", 400,
		  "Async-Callback" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "Async-Timeout: 1ms", 400, "Async-Timeout" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "Async-Colour: blue", 400, "Async-Colour" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "X-Name: caf\xe9", 400, "headers.X-Name" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "Idempotency-Key: k\xff", 400,
		  "Idempotency-Key" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx?q=caf\xe9", NULL, 400, "query" },
		{ "/v1/async/fn/..%2Fadmin/x", NULL, 400, "path" },
		{ "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fx", "Idempotency-Key: ", 202, "" },
	};
	long before = it_calls_count();
	struct hresp r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *hdrs[] = { cases[i].hdr, NULL };

		it_http("POST", url, cases[i].path, "text/plain", "x", 1, hdrs, &r);
		if (cases[i].status == 202) { /* an empty header is not sent by curl: accepted */
			CHECK(r.status == 202, "case %zu: %ld %s", i, r.status, r.body);
			before++;
		} else {
			CHECK(r.status == cases[i].status &&
				      strcmp(it_jstr(&r, "field"), cases[i].field) == 0,
			      "case %zu (%s): %ld field '%s' want %d '%s'", i, cases[i].path, r.status,
			      it_jstr(&r, "field"), cases[i].status, cases[i].field);
		}
		it_hresp_free(&r);
	}
	CHECK(it_calls_count() == before, "bad transparent inputs wrote rows");
}

static void t_idempotency(void)
{
	const char *k1[] = { "Idempotency-Key: order-77", NULL };
	const char *body = "{\"target\":\"" T "/idem\",\"body\":{\"n\":1}}";
	long before = it_calls_count();
	struct hresp a, b, c, d;
	char *replayed;

	post(body, k1, &a);
	post(body, k1, &b);
	CHECK(a.status == 202 && b.status == 202, "statuses %ld %ld", a.status, b.status);
	CHECK(strcmp(it_jstr(&a, "id"), "") != 0, "id");
	{
		char ida[64];

		snprintf(ida, sizeof(ida), "%s", it_jstr(&a, "id"));
		CHECK(strcmp(ida, it_jstr(&b, "id")) == 0, "same key, same id: %s vs %s", ida,
		      it_jstr(&b, "id"));
	}
	replayed = it_header(&b, "Idempotent-Replayed");
	CHECK(replayed != NULL && strcmp(replayed, "true") == 0, "Idempotent-Replayed");
	free(replayed);
	CHECK(it_calls_count() == before + 1, "one row for one key: %ld", it_calls_count() - before);
	post("{\"target\":\"" T "/idem\",\"body\":{\"n\":2}}", k1, &c);
	CHECK(c.status == 409 && strcmp(it_jstr(&c, "field"), "Idempotency-Key") == 0,
	      "different instruction: %ld %s", c.status, c.body);
	/* The key is per client: through transparent mode, same key, different request: 409. */
	it_http("POST", url, "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fidem", "text/plain", "x", 1, k1,
		&d);
	CHECK(d.status == 409, "transparent with a used key: %ld", d.status);
	CHECK(it_calls_count() == before + 1, "still one row");
	it_hresp_free(&a);
	it_hresp_free(&b);
	it_hresp_free(&c);
	it_hresp_free(&d);

	/* A batch replays as a batch. */
	{
		const char *k2[] = { "Idempotency-Key: batch-9", NULL };
		const char *batch = "[{\"target\":\"" T "/1\"},{\"target\":\"" T "/2\"}]";

		post(batch, k2, &a);
		post(batch, k2, &b);
		CHECK(a.status == 202 && b.status == 202 && strcmp(a.body, b.body) == 0,
		      "batch replay differs: %s / %s", a.body, b.body);
		CHECK(it_calls_count() == before + 3, "batch once");
		it_hresp_free(&a);
		it_hresp_free(&b);
	}
}

static void t_get(void)
{
	struct hresp r;
	struct json_object *o, *v;
	char id[64];

	it_http("GET", url, "/v1/calls/01a20b04-0000-7000-8000-000000000000", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404 && strcmp(it_jstr(&r, "field"), "id") == 0, "unknown id: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls/not-a-uuid", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "malformed id: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls/%27%3B%20DROP%20TABLE%20calls%3B--", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "hostile id: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls/0000000000000000000000000000000000000000000000000000000000", NULL,
		NULL, 0, NULL, &r);
	CHECK(r.status == 404, "long id: %ld", r.status);
	it_hresp_free(&r);

	post("{\"target\":\"" T "/g\",\"headers\":{\"Authorization\":\"Bearer s3cret\"},"
	     "\"correlation_id\":\"get-1\"}",
	     NULL, &r);
	snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
	it_hresp_free(&r);
	{
		char path[128];

		snprintf(path, sizeof(path), "/v1/calls/%s", id);
		it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	}
	CHECK(r.status == 200, "get: %ld", r.status);
	o = it_json(&r);
	CHECK(o != NULL, "get: JSON");
	if (o != NULL) {
		CHECK(strcmp(json_object_get_string(json_object_object_get(o, "state")), "queued") == 0,
		      "state");
		CHECK(strcmp(json_object_get_string(json_object_object_get(o, "correlation_id")),
			     "get-1") == 0,
		      "correlation_id");
		CHECK(json_object_object_get_ex(o, "attempts", &v) &&
			      json_object_is_type(v, json_type_array),
		      "attempts array");
		CHECK(strstr(r.body, "s3cret") == NULL, "Authorization value is redacted");
		CHECK(json_object_object_get_ex(o, "retry", &v) &&
			      json_object_get_int(json_object_object_get(v, "max_attempts")) == 10,
		      "default max_attempts 10");
	}
	json_object_put(o);
	it_hresp_free(&r);
}

static void t_list(void)
{
	char body[256];
	char path[256];
	char after[64] = "";
	int seen = 0;
	struct hresp r;

	for (int i = 0; i < 5; i++) {
		snprintf(body, sizeof(body),
			 "{\"target\":\"" T "/l\",\"correlation_id\":\"list-corr\",\"delay\":%d}",
			 i == 4 ? 0 : 3600);
		post(body, NULL, &r);
		it_hresp_free(&r);
	}
	for (int page = 0; page < 4; page++) {
		struct json_object *o, *calls;

		snprintf(path, sizeof(path), "/v1/calls?correlation_id=list-corr&limit=2%s%s",
			 after[0] ? "&after=" : "", after);
		it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
		CHECK(r.status == 200, "list: %ld %s", r.status, r.body);
		o = it_json(&r);
		calls = o != NULL ? json_object_object_get(o, "calls") : NULL;
		seen += calls != NULL ? (int)json_object_array_length(calls) : 0;
		snprintf(after, sizeof(after), "%s", it_jstr(&r, "next_after"));
		json_object_put(o);
		it_hresp_free(&r);
		if (after[0] == '\0')
			break;
	}
	CHECK(seen == 5, "paged through %d of 5", seen);
	it_http("GET", url, "/v1/calls?correlation_id=list-corr&state=scheduled", NULL, NULL, 0, NULL,
		&r);
	{
		struct json_object *o = it_json(&r);
		struct json_object *calls = o ? json_object_object_get(o, "calls") : NULL;

		CHECK(calls != NULL && json_object_array_length(calls) == 4, "4 scheduled");
		json_object_put(o);
	}
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls?correlation_id=list-corr&state=queued", NULL, NULL, 0, NULL, &r);
	{
		struct json_object *o = it_json(&r);
		struct json_object *calls = o ? json_object_object_get(o, "calls") : NULL;

		CHECK(calls != NULL && json_object_array_length(calls) == 1, "1 queued");
		json_object_put(o);
	}
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls?state=sleeping", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "state") == 0, "bad state");
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls?limit=0", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "limit") == 0, "bad limit");
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls?colour=red", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "colour") == 0, "unknown parameter");
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls?after=xyz", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "after") == 0, "bad cursor");
	it_hresp_free(&r);
}

static void t_cancel_retry(void)
{
	struct hresp r;
	char id[64], path[128], rpath[160];

	post("{\"target\":\"" T "/c\",\"delay\":\"1h\"}", NULL, &r);
	snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/calls/%s", id);
	snprintf(rpath, sizeof(rpath), "/v1/calls/%s/retry", id);

	it_http("POST", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 409, "retry of a scheduled call: %ld", r.status);
	it_hresp_free(&r);
	it_http("DELETE", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200 && strcmp(it_jstr(&r, "state"), "cancelled") == 0, "cancel: %ld %s",
	      r.status, r.body);
	it_hresp_free(&r);
	it_field_is(id, "state || ' ' || tableoid::regclass::text", "cancelled calls_done");
	it_field_is(id, "finished_at IS NOT NULL", "t");
	it_http("DELETE", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 409 && strstr(it_jstr(&r, "detail"), "cancelled") != NULL,
	      "cancel twice: %ld", r.status);
	it_hresp_free(&r);
	it_http("POST", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 202 && strcmp(it_jstr(&r, "state"), "queued") == 0, "retry: %ld %s",
	      r.status, r.body);
	it_hresp_free(&r);
	it_field_is(id, "state || ' ' || tableoid::regclass::text", "queued calls_live");
	it_field_is(id, "finished_at IS NULL AND not_before <= now()", "t");
	/* Not cancellable once in flight (as a drainer would leave it). */
	{
		const char *p[1] = { id };

		free(it_sql("UPDATE calls SET state = 'in_flight', lease_until = now() + interval '1m' "
			    "WHERE id = $1::uuid RETURNING id",
			    1, p));
	}
	it_http("DELETE", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 409 && strstr(it_jstr(&r, "detail"), "in_flight") != NULL,
	      "cancel in flight: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	it_http("DELETE", url, "/v1/calls/01a20b04-0000-7000-8000-000000000001", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "cancel unknown: %ld", r.status);
	it_hresp_free(&r);
	it_http("PUT", url, path, NULL, NULL, 0, NULL, &r);
	{
		char *allow = it_header(&r, "Allow");

		CHECK(r.status == 405 && allow != NULL, "PUT on a call: %ld", r.status);
		free(allow);
	}
	it_hresp_free(&r);
	it_http("GET", url, "/v1/nothing-here", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "unknown route: %ld", r.status);
	it_hresp_free(&r);
}

static void t_health(void)
{
	struct hresp r;
	struct json_object *o, *q;

	it_http("GET", url, "/v1/health", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "health %ld", r.status);
	o = it_json(&r);
	q = o != NULL ? json_object_object_get(o, "queue") : NULL;
	CHECK(q != NULL && json_object_get_int(json_object_object_get(q, "scheduled")) > 0 &&
		      json_object_object_get(q, "oldest_due_age_s") != NULL,
	      "queue depth: %s", r.body);
	json_object_put(o);
	it_hresp_free(&r);
}

static void t_standalone(void)
{
	struct hresp r;

	if (url_standalone == NULL) {
		CHECK(false, "AG_URL_STANDALONE is not set");
		return;
	}
	it_http("POST", url_standalone, "/v1/calls", JSON, "{\"target\":\"" T "/standalone\"}",
		strlen("{\"target\":\"" T "/standalone\"}"), NULL, &r);
	CHECK(r.status == 202, "standalone socket: %ld %s", r.status, r.body);
	if (r.status == 202)
		it_field_is(it_jstr(&r, "id"), "target", T "/standalone");
	it_hresp_free(&r);
}

/* Runs the handler as plain CGI as the web server's user, or with the harness's API key. */
static int run_cgi_as(const char *user, const char *method, const char *uri, const char *body,
		      char *out, size_t outsz)
{
	char var[1024];
	const char *extra[2] = { var, NULL };

	if (user != NULL)
		snprintf(var, sizeof(var), "REMOTE_USER=%s", user);
	else
		snprintf(var, sizeof(var), "HTTP_AUTHORIZATION=Bearer %s",
			 getenv("AG_API_KEY") != NULL ? getenv("AG_API_KEY") : "");
	return it_cgi(method, uri, body, extra, out, outsz);
}

static int run_cgi(const char *method, const char *uri, const char *body, char *out,
		   size_t outsz)
{
	return run_cgi_as(NULL, method, uri, body, out, outsz);
}

/* The id in a CGI answer's JSON body, or "". */
static const char *cgi_id(const char *out, char *id, size_t idsz)
{
	const char *p = strstr(out, "\"id\":\"");

	snprintf(id, idsz, "%.36s", p != NULL ? p + 6 : "");
	return id;
}

/* A client (the web server's REMOTE_USER) sees, cancels and retries only its own calls. */
static void t_client_scope(void)
{
	char out[8192], id[64], path[128];

	run_cgi_as("alice", "POST", "/v1/calls", "{\"target\":\"" T "/alice\"}", out, sizeof(out));
	CHECK(strncmp(out, "Status: 202", 11) == 0, "alice enqueues: %.100s", out);
	cgi_id(out, id, sizeof(id));
	it_field_is(id, "client", "alice");
	snprintf(path, sizeof(path), "/v1/calls/%s", id);
	run_cgi_as("bob", "GET", path, "", out, sizeof(out));
	CHECK(strncmp(out, "Status: 404", 11) == 0, "bob reads alice's call: %.100s", out);
	run_cgi_as(NULL, "GET", path, "", out, sizeof(out));
	CHECK(strncmp(out, "Status: 404", 11) == 0, "anonymous reads alice's call: %.100s", out);
	run_cgi_as("bob", "DELETE", path, "", out, sizeof(out));
	CHECK(strncmp(out, "Status: 404", 11) == 0, "bob cancels alice's call: %.100s", out);
	run_cgi_as("bob", "GET", "/v1/calls?limit=1000", "", out, sizeof(out));
	CHECK(strstr(out, id) == NULL, "bob's list shows alice's call");
	run_cgi_as("alice", "GET", "/v1/calls?limit=1000", "", out, sizeof(out));
	CHECK(strstr(out, id) != NULL, "alice's list lacks her call");
	run_cgi_as("alice", "GET", path, "", out, sizeof(out));
	CHECK(strncmp(out, "Status: 200", 11) == 0, "alice reads her call: %.100s", out);
	it_field_is(id, "state", "queued");
}

/* A cancel that waits on a row which another transaction moves to calls_done meets a
 * serialization failure; the handler runs it again and answers 409, not 500. */
static void t_partition_race(void)
{
	struct hresp r;
	char id[64], path[128];
	PGconn *other = PQconnectdb("");
	PGresult *res;
	int fds[2];
	pid_t pid;
	long status = 0;

	post("{\"target\":\"" T "/race\",\"delay\":\"1h\"}", NULL, &r);
	snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/calls/%s", id);
	{
		const char *p[1] = {id};

		res = PQexec(other, "BEGIN");
		PQclear(res);
		res = PQexecParams(other,
				   "UPDATE calls SET state = 'dead', finished_at = now() "
				   "WHERE id = $1::uuid",
				   1, NULL, p, NULL, NULL, 0);
		CHECK(PQresultStatus(res) == PGRES_COMMAND_OK, "move: %s", PQresultErrorMessage(res));
		PQclear(res);
	}
	if (pipe(fds) != 0)
		return;
	pid = fork();
	if (pid == 0) {
		it_http("DELETE", url, path, NULL, NULL, 0, NULL, &r);
		if (write(fds[1], &r.status, sizeof(r.status)) < 0)
			_exit(1);
		_exit(0);
	}
	usleep(300000); /* the cancel is now waiting on the row lock */
	res = PQexec(other, "COMMIT");
	PQclear(res);
	if (read(fds[0], &status, sizeof(status)) != sizeof(status))
		status = -1;
	waitpid(pid, NULL, 0);
	close(fds[0]);
	close(fds[1]);
	PQfinish(other);
	CHECK(status == 409, "cancel racing a partition move: %ld (want 409)", status);
	it_field_is(id, "state || ' ' || tableoid::regclass::text", "dead calls_done");
}

static void t_plain_cgi(void)
{
	char out[8192];
	long before = it_calls_count();
	int rc;

	rc = run_cgi("POST", "/cgi-bin/asyncgate.fcgi/v1/calls", "{\"target\":\"" T "/cgi\"}", out,
		     sizeof(out));
	CHECK(rc == 0, "exit %d", rc);
	CHECK(strncmp(out, "Status: 202 Accepted\r\n", 22) == 0, "CGI answer: %.200s", out);
	CHECK(strstr(out, "\r\n\r\n{\"id\":") != NULL, "CGI body");
	CHECK(it_calls_count() == before + 1, "CGI wrote one row");
	rc = run_cgi("GET", "/v1/calls/zzz", "", out, sizeof(out));
	CHECK(rc == 0 && strncmp(out, "Status: 404", 11) == 0, "CGI 404: %.100s", out);
}

/* The pids of running handler processes spawned by lighttpd (not the standalone one). */
static int handler_pids(int *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	const char *bin = getenv("AG_BIN");

	while (d != NULL && (e = readdir(d)) != NULL && n < max) {
		char p[300], cmd[4096];
		FILE *f;
		size_t len;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", e->d_name);
		f = fopen(p, "r");
		if (f == NULL)
			continue;
		len = fread(cmd, 1, sizeof(cmd) - 1, f);
		fclose(f);
		cmd[len] = '\0';
		/* argv[0] only; the standalone one has "--socket" as argv[1] */
		if (strcmp(cmd, bin) == 0 && strlen(cmd) + 1 >= len)
			pids[n++] = atoi(e->d_name);
	}
	if (d != NULL)
		closedir(d);
	return n;
}

/* PostgreSQL stops: 503 with Retry-After and nothing written; it comes back: the same handler
 * processes serve again. */
static void t_db_outage(void)
{
	int before[16], after[16];
	int nb = handler_pids(before, 16);
	int na;
	struct hresp r;
	char *ra;

	CHECK(nb > 0, "no handler process found for %s", getenv("AG_BIN"));
	CHECK(it_pg_ctl("stop") == 0, "pgctl stop failed");
	post("{\"target\":\"" T "/outage\"}", NULL, &r);
	ra = it_header(&r, "Retry-After");
	CHECK(r.status == 503, "while down: %ld %s", r.status, r.body);
	CHECK(ra != NULL && atoi(ra) > 0, "Retry-After: %s", ra ? ra : "(none)");
	CHECK(strstr(r.body, "\"status\":503") != NULL, "problem body");
	free(ra);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/health", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 503, "health while down: %ld", r.status);
	it_hresp_free(&r);
	CHECK(it_pg_ctl("start") == 0, "pgctl start failed");
	post("{\"target\":\"" T "/after-outage\"}", NULL, &r);
	CHECK(r.status == 202, "after restart: %ld %s", r.status, r.body);
	if (r.status == 202)
		it_field_is(it_jstr(&r, "id"), "target", T "/after-outage");
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE target = '" T "/outage'", 0, NULL) == 0,
	      "nothing written while down");
	na = handler_pids(after, 16);
	CHECK(na == nb, "handler processes %d -> %d", nb, na);
	for (int i = 0; i < nb && i < na; i++)
		CHECK(before[i] == after[i], "handler pid %d became %d (restarted)", before[i], after[i]);
}

/* Every statement in queries.c prepares against the migrated schema (drift check). */
static void t_prepare_all(void)
{
	struct db db;

	db_init(&db, "");
	CHECK(db_connect(&db) == 0, "db_connect (prepares every statement) failed");
	db_cleanup(&db);
}

static void t_migrations_recorded(void)
{
	CHECK(it_sql_long("SELECT count(*) FROM schema_migrations WHERE version = '001_init'", 0,
			  NULL) == 1,
	      "001_init recorded once");
}

int main(void)
{
	url = getenv("AG_URL");
	url_standalone = getenv("AG_URL_STANDALONE");
	if (url == NULL || PQstatus(it_db()) != CONNECTION_OK) {
		printf("not ok - test_api setup: AG_URL and a reachable PG* database are required\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	it_run("api: migrations recorded in schema_migrations", t_migrations_recorded);
	it_run("api: every prepared statement matches the schema", t_prepare_all);
	it_run("api: valid call gets 202 + Location and one row with every field", t_valid_call_stored);
	it_run("api: body_base64 / body_text bytes and not_before spellings", t_body_kinds);
	it_run("api: transparent mode keeps method, path, query, headers, binary body", t_transparent_binary);
	it_run("api: registered functions, JSON and transparent", t_functions);
	it_run("api: batch of 1000 is all or nothing, naming the bad index", t_batch);
	it_run("api: bad inputs get 4xx problem+json naming the field, no row", t_bad_inputs);
	it_run("api: transparent-mode bad inputs, no row", t_bad_transparent);
	it_run("api: Idempotency-Key replays, 409 on a different request", t_idempotency);
	it_run("api: GET /v1/calls/{id} (unknown, malformed, redacted)", t_get);
	it_run("api: GET /v1/calls filters and cursor paging", t_list);
	it_run("api: DELETE cancels, retry requeues, 409/404/405", t_cancel_retry);
	it_run("api: GET /v1/health", t_health);
	it_run("api: standalone FastCGI socket", t_standalone);
	it_run("api: plain CGI", t_plain_cgi);
	it_run("api: a client sees and steers only its own calls (REMOTE_USER)", t_client_scope);
	it_run("api: a cancel racing a partition move answers 409, not 500", t_partition_race);
	it_run("api: PostgreSQL outage gives 503 + Retry-After; same process recovers", t_db_outage);
	curl_global_cleanup();
	PQfinish(it_db());
	return it_finish();
}
