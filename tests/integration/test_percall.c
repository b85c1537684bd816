/* test_percall: the stored response (GET /v1/calls/{id}/response and the 303 of Prefer:
 * return=response) and the per-call controls (retry.on, retry.give_up_on, connect_timeout,
 * debounce_key) against a real PostgreSQL, lighttpd, drainer and HTTP target. */
#define _GNU_SOURCE
#include "itest.h"
#include "itest.c.inc"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "timeparse.h"
#include "xalloc.h"

static const char *url;	    /* lighttpd with spawned handlers */
static const char *target;  /* the HTTP target */
static const char *drainer; /* build/asyncgate-drainer */
static const char *admin;   /* build/asyncgate-admin */
static char tmpdir[512];
static char drainer_log[600]; /* the drainers' stderr */

#define JSON "application/json"
#define DEBOUNCE_LOCK_CLASS "1633903714" /* ag_debounce's advisory lock class */

/* Drains until the call has reached a final state (at most runs times); true when it has. */
static bool drain_until_final(const char *id, int runs)
{
	for (int i = 0; i < runs; i++) {
		char *st;
		bool final;

		CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
		st = it_field(id, "state");
		final = st != NULL && strcmp(st, "in_flight") != 0 && strcmp(st, "queued") != 0 &&
			strcmp(st, "retrying") != 0;
		free(st);
		if (final)
			return true;
		it_sleep_ms(100);
	}
	return CHECK(false, "call %s did not finish in %d drainer runs", id, runs);
}

/* The header lines of r, in order, whose names (without case) are in names (NULL-terminated),
 * as "Name: value\n" lines (new string). */
static char *header_lines(const struct hresp *r, const char *const *names)
{
	struct buf b;

	buf_init(&b);
	buf_puts(&b, "");
	for (const char *l = r->headers; l != NULL && *l != '\0';) {
		const char *e = strstr(l, "\r\n");
		const char *colon;

		if (e == NULL)
			e = l + strlen(l);
		colon = memchr(l, ':', (size_t)(e - l));
		for (int i = 0; colon != NULL && names[i] != NULL; i++)
			if ((size_t)(colon - l) == strlen(names[i]) &&
			    strncasecmp(l, names[i], strlen(names[i])) == 0)
				buf_printf(&b, "%.*s\n", (int)(e - l), l);
		l = *e != '\0' ? e + 2 : e;
	}
	return buf_take(&b, NULL);
}

/* base64 of n bytes of a pattern that holds every byte value, NUL included (new string). */
static char *pattern_b64(size_t n, unsigned char **raw)
{
	unsigned char *bin = malloc(n + 1);
	char *b64 = malloc(4 * ((n + 2) / 3) + 1);

	for (size_t i = 0; i < n; i++)
		bin[i] = (unsigned char)(i * 7 + i / 256);
	EVP_EncodeBlock((unsigned char *)b64, bin, (int)n);
	*raw = bin;
	return b64;
}

/* ---- the tests ---- */

/* Before success: 409 with the state, and GET with Prefer answers the status document. After:
 * 303 to .../response, which answers status, headers (order, case, repeats) and binary body
 * byte for byte; HEAD the same without the body. */
static void t_response_verbatim(void)
{
	static const char *const names[] = {"X-First", "Set-Cookie", "X-Mixed-CASE", NULL};
	const char *prefer[] = {"Prefer: return=response", NULL};
	unsigned char *raw;
	char *b64 = pattern_b64(512, &raw);
	char body[2048], id[64], path[128], rpath[160], *h, *want, *got;
	struct hresp r, direct;

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/reply/201?ct=application/x-test\",\"method\":\"PUT\","
		 "\"body_base64\":\"%s\"}",
		 target, b64);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	snprintf(path, sizeof(path), "/v1/calls/%s", id);
	snprintf(rpath, sizeof(rpath), "/v1/calls/%s/response", id);

	it_http("GET", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 409, "response before the call ran: %ld %s", r.status, r.body);
	CHECK(strstr(r.body, "\"state\":\"queued\"") != NULL, "409 names the state: %s", r.body);
	h = it_header(&r, "Content-Type");
	CHECK(h != NULL && strcmp(h, "application/problem+json") == 0, "409 type %s", h);
	free(h);
	it_hresp_free(&r);
	it_http("GET", url, path, NULL, NULL, 0, prefer, &r);
	CHECK(r.status == 200, "Prefer before success: %ld", r.status);
	h = it_header(&r, "Preference-Applied");
	CHECK(h == NULL, "Preference-Applied before success: %s", h);
	free(h);
	h = it_header(&r, "Vary");
	CHECK(h != NULL && strstr(h, "Prefer") != NULL, "Vary: %s", h ? h : "(none)");
	free(h);
	it_hresp_free(&r);

	CHECK(drain_until_final(id, 3), "drained");
	it_field_is(id, "state", "succeeded");

	it_http("GET", url, path, NULL, NULL, 0, prefer, &r);
	CHECK(r.status == 303, "Prefer after success: %ld %s", r.status, r.body);
	h = it_header(&r, "Location");
	CHECK(h != NULL && strlen(h) >= strlen(rpath) &&
		      strcmp(h + strlen(h) - strlen(rpath), rpath) == 0,
	      "Location %s", h ? h : "(none)");
	free(h);
	h = it_header(&r, "Preference-Applied");
	CHECK(h != NULL && strcmp(h, "return=response") == 0, "Preference-Applied %s",
	      h ? h : "(none)");
	free(h);
	it_hresp_free(&r);
	/* without the preference: the status document */
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200 && strstr(r.body, "\"attempts\":[") != NULL, "plain GET: %ld",
	      r.status);
	it_hresp_free(&r);
	/* a preference among others, with a parameter */
	it_http("GET", url, path, NULL, NULL, 0,
		(const char *[]){"Prefer: respond-async, RETURN = \"response\"; x=1", NULL}, &r);
	CHECK(r.status == 303, "Prefer among others: %ld", r.status);
	it_hresp_free(&r);

	it_http("GET", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 201, "response status %ld (want the target's 201)", r.status);
	CHECK(r.len == 512 && memcmp(r.body, raw, 512) == 0, "body differs (%zu bytes)", r.len);
	h = it_header(&r, "Content-Type");
	CHECK(h != NULL && strcmp(h, "application/x-test") == 0, "Content-Type %s",
	      h ? h : "(none)");
	free(h);
	h = it_header(&r, "Async-Call-Id");
	CHECK(h != NULL && strcmp(h, id) == 0, "Async-Call-Id %s", h ? h : "(none)");
	free(h);
	h = it_header(&r, "Async-Response-Truncated");
	CHECK(h == NULL, "not truncated, but says %s", h);
	free(h);
	/* the same lines, in the same order, as the target sends them to a client directly */
	it_http("PUT", target, "/reply/201", "application/octet-stream", "x", 1, NULL, &direct);
	want = header_lines(&direct, names);
	got = header_lines(&r, names);
	CHECK(strcmp(want, "X-First: 1\nSet-Cookie: a=1\nSet-Cookie: b=2\n"
			   "X-Mixed-CASE: Keep This\n") == 0,
	      "the target itself sent:\n%s", want);
	CHECK(strcmp(got, want) == 0, "headers differ:\n%s-- want --\n%s", got, want);
	free(want);
	free(got);
	it_hresp_free(&direct);
	it_hresp_free(&r);

	it_http("HEAD", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 201 && r.len == 0, "HEAD: %ld, %zu body bytes", r.status, r.len);
	h = it_header(&r, "Content-Length");
	CHECK(h != NULL && strcmp(h, "512") == 0, "HEAD Content-Length %s", h ? h : "(none)");
	free(h);
	it_hresp_free(&r);
	it_http("POST", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 405, "POST .../response: %ld", r.status);
	it_hresp_free(&r);
	free(b64);
	free(raw);
}

/* An answer longer than max_response_bytes (64K in the tests): the stored part, marked. */
static void t_response_truncated(void)
{
	const size_t n = 100000;
	unsigned char *raw;
	char *b64 = pattern_b64(n, &raw);
	char *body = malloc(strlen(b64) + 256), id[64], rpath[160], *h;
	struct hresp r;

	sprintf(body, "{\"target\":\"%s/reply/200\",\"body_base64\":\"%s\"}", target, b64);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(drain_until_final(id, 3), "drained");
	snprintf(rpath, sizeof(rpath), "/v1/calls/%s/response", id);
	it_http("GET", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "status %ld", r.status);
	CHECK(r.len == 65536 && memcmp(r.body, raw, 65536) == 0,
	      "want the first 65536 bytes, have %zu", r.len);
	h = it_header(&r, "Async-Response-Truncated");
	CHECK(h != NULL && strcmp(h, "true") == 0, "Async-Response-Truncated %s", h ? h : "(none)");
	free(h);
	h = it_header(&r, "Async-Response-Size");
	CHECK(h != NULL && strcmp(h, "100000") == 0, "Async-Response-Size %s", h ? h : "(none)");
	free(h);
	it_hresp_free(&r);
	free(body);
	free(b64);
	free(raw);
}

/* A dead call's last answer is offered, marked dead; expired and cancelled calls get 409; a
 * client sees only its own calls' responses, an admin every one. */
static void t_response_states_scope(void)
{
	char body[512], id[64], id2[64], rpath[160], tok[256], hdr[320], *h;
	struct hresp r;

	snprintf(body, sizeof(body), "{\"target\":\"%s/status/404\"}", target);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(drain_until_final(id, 3), "drained");
	it_field_is(id, "state", "dead");
	snprintf(rpath, sizeof(rpath), "/v1/calls/%s/response", id);
	it_http("GET", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404 && strcmp(r.body, "status 404") == 0, "dead: %ld %s", r.status,
	      r.body);
	h = it_header(&r, "Async-Call-State");
	CHECK(h != NULL && strcmp(h, "dead") == 0, "Async-Call-State %s", h ? h : "(none)");
	free(h);
	it_hresp_free(&r);
	/* Prefer on a dead call: the status document */
	snprintf(rpath, sizeof(rpath), "/v1/calls/%s", id);
	it_http("GET", url, rpath, NULL, NULL, 0, (const char *[]){"Prefer: return=response", NULL},
		&r);
	CHECK(r.status == 200, "Prefer on a dead call: %ld", r.status);
	it_hresp_free(&r);

	snprintf(body, sizeof(body), "{\"target\":\"%s/status/200\",\"delay\":\"1h\"}", target);
	snprintf(id2, sizeof(id2), "%s", it_enqueue(url, body, NULL));
	snprintf(rpath, sizeof(rpath), "/v1/calls/%s", id2);
	it_http("DELETE", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "cancel: %ld", r.status);
	it_hresp_free(&r);
	snprintf(rpath, sizeof(rpath), "/v1/calls/%s/response", id2);
	it_http("GET", url, rpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 409 && strstr(r.body, "\"state\":\"cancelled\"") != NULL,
	      "cancelled: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/calls/not-a-uuid/response", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "malformed id: %ld", r.status);
	it_hresp_free(&r);

	snprintf(rpath, sizeof(rpath), "/v1/calls/%s/response", id);
	CHECK(it_admin("key create percall-other --function '*' --url '*'", tok, sizeof(tok)) == 0,
	      "key create");
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
	it_http("GET", url, rpath, NULL, NULL, 0, (const char *[]){hdr, NULL}, &r);
	CHECK(r.status == 404, "another client reads the response: %ld", r.status);
	it_hresp_free(&r);
	CHECK(it_admin("key create percall-admin --admin", tok, sizeof(tok)) == 0, "key create");
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
	it_http("GET", url, rpath, NULL, NULL, 0, (const char *[]){hdr, NULL}, &r);
	CHECK(r.status == 404 && strcmp(r.body, "status 404") == 0, "an admin reads it: %ld",
	      r.status);
	it_hresp_free(&r);
}

/* retry.on makes a 404 retryable (all attempts made); give_up_on makes a 503 dead at once;
 * the same through the control headers; GET shows the lists. */
static void t_retry_lists(void)
{
	char body[512], id[64], path[128], a[160];
	struct hresp r;
	struct json_object *o;

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/status/404\",\"retry\":{\"max_attempts\":3,\"initial\":0,"
		 "\"max\":0,\"on\":[\"4XX\", 409]}}",
		 target);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(drain_until_final(id, 6), "drained");
	it_field_is(id, "state", "dead");
	CHECK(it_attempts_count(id) == 3, "404 in retry.on: %ld attempts, want 3",
	      it_attempts_count(id));
	snprintf(path, sizeof(path), "/v1/calls/%s", id);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	o = it_json(&r);
	CHECK(o != NULL && strcmp(json_object_to_json_string_ext(
					  json_object_object_get(json_object_object_get(o, "retry"),
								 "on"),
					  JSON_C_TO_STRING_PLAIN),
				  "[\"4xx\",409]") == 0,
	      "retry.on shown as %s", r.body);
	json_object_put(o);
	it_hresp_free(&r);

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/status/503\",\"retry\":{\"max_attempts\":5,\"initial\":0,"
		 "\"max\":0,\"give_up_on\":[503]}}",
		 target);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(drain_until_final(id, 3), "drained");
	it_field_is(id, "state", "dead");
	CHECK(it_attempts_count(id) == 1, "503 in give_up_on: %ld attempts, want 1",
	      it_attempts_count(id));

	/* give_up_on wins over retry.on */
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/status/404\",\"retry\":{\"max_attempts\":5,\"initial\":0,"
		 "\"max\":0,\"on\":[\"4xx\"],\"give_up_on\":[\"404\"]}}",
		 target);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(drain_until_final(id, 3), "drained");
	CHECK(it_attempts_count(id) == 1, "404 in both lists: %ld attempts, want 1",
	      it_attempts_count(id));

	/* transparent mode */
	snprintf(a, sizeof(a), "/v1/async/%s/status/404", target);
	it_http("POST", url, a, "text/plain", "x", 1,
		(const char *[]){"Async-Retry-On: 404, 5xx", "Async-Max-Attempts: 2",
				 "Async-Retry-Initial: 0s", "Async-Retry-Max: 0s", NULL},
		&r);
	CHECK(r.status == 202, "transparent: %ld %s", r.status, r.body);
	snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
	it_hresp_free(&r);
	CHECK(drain_until_final(id, 5), "drained");
	CHECK(it_attempts_count(id) == 2, "Async-Retry-On 404: %ld attempts, want 2",
	      it_attempts_count(id));
	snprintf(a, sizeof(a), "/v1/async/%s/status/500", target);
	it_http("POST", url, a, "text/plain", "x", 1,
		(const char *[]){"Async-Give-Up-On: 5xx", "Async-Max-Attempts: 4", NULL}, &r);
	CHECK(r.status == 202, "transparent: %ld %s", r.status, r.body);
	snprintf(id, sizeof(id), "%s", it_jstr(&r, "id"));
	it_hresp_free(&r);
	CHECK(drain_until_final(id, 3), "drained");
	CHECK(it_attempts_count(id) == 1, "Async-Give-Up-On 5xx: %ld attempts, want 1",
	      it_attempts_count(id));
}

/* A listening socket whose accept queue is full (and never accepted): further SYNs are dropped,
 * so a connect to it stays pending until a timeout ends it. Returns the fd, port in *port. */
static int stalled_listener(int *port, int *fillers, int nfill)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 0) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	*port = ntohs(sa.sin_port);
	for (int i = 0; i < nfill; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM, 0);
		fcntl(fillers[i], F_SETFL, O_NONBLOCK);
		(void)!connect(fillers[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	it_sleep_ms(200); /* the handshakes complete and fill the queue */
	return fd;
}

/* A connect that cannot complete ends as a connect timeout; a target that answers too slowly
 * as the total timeout; the error text says which. connect_timeout above timeout is a 400. */
static void t_connect_timeout(void)
{
	int port = 0, fillers[4], lfd;
	char body[512], id[64], *err;
	struct hresp r;
	long before = it_calls_count();

	lfd = stalled_listener(&port, fillers, 4);
	if (!CHECK(lfd >= 0, "listener"))
		return;
	snprintf(body, sizeof(body),
		 "{\"target\":\"http://127.0.0.1:%d/x\",\"connect_timeout\":\"200ms\","
		 "\"timeout\":\"60s\",\"retry\":{\"max_attempts\":1}}",
		 port);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	it_field_is(id, "connect_timeout_ms", "200");
	CHECK(drain_until_final(id, 3), "drained");
	it_field_is(id, "state", "dead");
	err = it_field(id, "last_error");
	CHECK(err != NULL && strncmp(err, "connect timeout (200 ms): ", 26) == 0,
	      "connect timeout error: %s", err ? err : "(none)");
	free(err);
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(lfd);

	/* One transfer at a time: the slow call reuses the fast one's connection, so the timeout
	 * is told from the request having gone out, not from the connect time (0 on reuse). */
	snprintf(body, sizeof(body), "{\"target\":\"%s/fast\"}", target);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/slow/4000\",\"connect_timeout\":\"500ms\",\"timeout\":\"1s\","
		 "\"retry\":{\"max_attempts\":1}}",
		 target);
	snprintf(id, sizeof(id), "%s", it_enqueue(url, body, NULL));
	CHECK(it_drainer_wait(
		      it_drainer_spawn(drainer_log,
				       (const char *const[]){"--once", "--concurrency", "1", NULL}),
		      60000, NULL) == 0,
	      "drainer --once --concurrency 1 failed");
	CHECK(drain_until_final(id, 3), "drained");
	err = it_field(id, "last_error");
	CHECK(err != NULL && strncmp(err, "timeout (1000 ms): ", 19) == 0, "total timeout: %s",
	      err ? err : "(none)");
	free(err);

	/* longer than the timeout: the call's own, or the default (30s) */
	before = it_calls_count();
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/x\",\"timeout\":\"2s\",\"connect_timeout\":\"3s\"}", target);
	it_http("POST", url, "/v1/calls", JSON, body, strlen(body), NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "connect_timeout") == 0,
	      "connect_timeout > timeout: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	snprintf(body, sizeof(body), "{\"target\":\"%s/x\",\"connect_timeout\":\"31s\"}", target);
	it_http("POST", url, "/v1/calls", JSON, body, strlen(body), NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "connect_timeout") == 0,
	      "connect_timeout > default timeout: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before, "a refused call was written");
}

/* Sequential accepts with one key: only the newest stays pending, the others end cancelled
 * "superseded by" their successor; other keys and calls in flight are untouched; an
 * Idempotency-Key replay supersedes nothing; a batch may not repeat a key. */
static void t_debounce_sequential(void)
{
	const char *tg = it_tag('d');
	char body[512], ids[3][64], other[64], inflight[64], want[128], key[64];
	struct hresp r;
	long before;

	snprintf(key, sizeof(key), "k-%s", tg);
	for (int i = 0; i < 3; i++) {
		snprintf(body, sizeof(body),
			 "{\"target\":\"%s/deb/%s\",\"delay\":\"1h\",\"debounce_key\":\"%s\"}",
			 target, tg, key);
		snprintf(ids[i], sizeof(ids[i]), "%s", it_enqueue(url, body, NULL));
	}
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/deb/%s\",\"delay\":\"1h\",\"debounce_key\":\"%s-other\"}",
		 target, tg, key);
	snprintf(other, sizeof(other), "%s", it_enqueue(url, body, NULL));
	it_field_is(ids[0], "state", "cancelled");
	it_field_is(ids[1], "state", "cancelled");
	it_field_is(ids[2], "state", "queued");
	it_field_is(other, "state", "queued");
	snprintf(want, sizeof(want), "superseded by %s", ids[1]);
	it_field_is(ids[0], "last_error", want);
	snprintf(want, sizeof(want), "superseded by %s", ids[2]);
	it_field_is(ids[1], "last_error", want);
	it_field_is(ids[2], "debounce_key", key);

	/* in flight: not touched; the newer call is queued beside it */
	snprintf(inflight, sizeof(inflight), "%s", ids[2]);
	it_sql_exec("UPDATE calls SET state = 'in_flight', lease_until = now() + interval '1 hour',"
		    " leased_by = 'test' WHERE id = $1::uuid",
		    1, (const char *const[]){inflight});
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/deb/%s\",\"delay\":\"1h\",\"debounce_key\":\"%s\"}", target, tg,
		 key);
	snprintf(ids[0], sizeof(ids[0]), "%s",
		 it_enqueue(url, body, (const char *[]){"Idempotency-Key: idem-deb-1", NULL}));
	it_field_is(inflight, "state", "in_flight");
	it_field_is(ids[0], "state", "queued");
	/* a replay of that request: the same id, nothing superseded */
	it_sql_exec("UPDATE calls SET state = 'cancelled', finished_at = now(), lease_until = NULL "
		    "WHERE id = $1::uuid",
		    1, (const char *const[]){inflight});
	before = it_calls_count();
	it_http("POST", url, "/v1/calls", JSON, body, strlen(body),
		(const char *[]){"Idempotency-Key: idem-deb-1", NULL}, &r);
	CHECK(r.status == 202 && strcmp(it_jstr(&r, "id"), ids[0]) == 0, "replay: %ld %s", r.status,
	      r.body);
	it_hresp_free(&r);
	it_field_is(ids[0], "state", "queued");
	CHECK(it_calls_count() == before, "a replay wrote a call");

	/* one batch, one key twice: 400, nothing written */
	snprintf(body, sizeof(body),
		 "[{\"target\":\"%s/x\",\"debounce_key\":\"b\"},{\"target\":\"%s/x\"},"
		 "{\"target\":\"%s/x\",\"debounce_key\":\"b\"}]",
		 target, target, target);
	it_http("POST", url, "/v1/calls", JSON, body, strlen(body), NULL, &r);
	CHECK(r.status == 400 && strcmp(it_jstr(&r, "field"), "[2].debounce_key") == 0,
	      "batch with a key twice: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before, "the refused batch wrote calls");

	/* transparent mode */
	snprintf(body, sizeof(body), "/v1/async/%s/deb/%s", target, tg);
	snprintf(want, sizeof(want), "Async-Debounce-Key: %s", key);
	it_http("POST", url, body, "text/plain", "x", 1,
		(const char *[]){want, "Async-Delay: 1h", NULL}, &r);
	CHECK(r.status == 202, "transparent: %ld %s", r.status, r.body);
	it_field_is(ids[0], "state", "cancelled");
	it_field_is(it_jstr(&r, "id"), "state", "queued");
	it_hresp_free(&r);
	it_field_is(other, "state", "queued");
}

/* Concurrent accepts with one key leave exactly one call pending. The test holds the key's
 * advisory lock while N handler processes (plain CGI, each its own connection) start their
 * insert statements, so that each statement's snapshot predates the others' commits; then lets
 * them through one by one. */
static void t_debounce_concurrent(void)
{
	enum { N = 6 };
	const char *tg = it_tag('c');
	char key[64], body[512], lock[256], hash[32];
	pid_t pids[N];
	PGconn *lk = PQconnectdb("");
	PGresult *res;
	int ok = 0;
	long waiting = 0;
	int64_t end;

	snprintf(key, sizeof(key), "conc-%s", tg);
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/deb/%s\",\"delay\":\"1h\",\"debounce_key\":\"%s\"}", target, tg,
		 key);
	if (!CHECK(PQstatus(lk) == CONNECTION_OK, "second connection"))
		goto out;
	res = PQexecParams(lk, "SELECT hashtext($1 || chr(10) || $2)", 2, NULL,
			   (const char *const[]){"alice", key}, NULL, NULL, 0);
	snprintf(hash, sizeof(hash), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	snprintf(lock, sizeof(lock), "BEGIN; SELECT pg_advisory_xact_lock(%s, %s)",
		 DEBOUNCE_LOCK_CLASS, hash);
	PQclear(PQexec(lk, lock));
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			char out[4096];
			int rc;

			if (freopen("/dev/null", "w", stderr) == NULL)
				_exit(1);
			rc = it_cgi("POST", "/v1/calls", body,
				    (const char *[]){"REMOTE_USER=alice", NULL}, out, sizeof(out));

			_exit(rc == 0 && strstr(out, "Status: 202") != NULL ? 0 : 1);
		}
	}
	/* all N statements are inside ag_debounce, waiting for the lock */
	end = timeparse_now_us() / 1000 + 20000;
	while (timeparse_now_us() / 1000 < end) {
		waiting = it_sql_long("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
				      "AND NOT granted AND classid = " DEBOUNCE_LOCK_CLASS
				      "::int4::oid AND objid = $1::int4::oid",
				      1, (const char *const[]){hash});
		if (waiting >= N)
			break;
		it_sleep_ms(50);
	}
	CHECK(waiting == N, "%ld of %d inserts waited for the key's lock", waiting, N);
	PQclear(PQexec(lk, "COMMIT"));
	for (int i = 0; i < N; i++) {
		int st;

		if (waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
	}
	CHECK(ok == N, "%d of %d concurrent accepts answered 202", ok, N);
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE debounce_key = $1 AND state = 'queued'",
			  1, (const char *const[]){key}) == 1,
	      "pending calls with the key: %ld, want 1",
	      it_sql_long("SELECT count(*) FROM calls WHERE debounce_key = $1 AND state = 'queued'",
			  1, (const char *const[]){key}));
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE debounce_key = $1 AND state = "
			  "'cancelled' AND last_error LIKE 'superseded by %'",
			  1, (const char *const[]){key}) == N - 1,
	      "superseded calls: want %d", N - 1);
out:
	PQfinish(lk);
}

int main(void)
{
	const char *t = getenv("AG_TMP");

	url = getenv("AG_URL");
	target = getenv("AG_TARGET");
	drainer = getenv("AG_DRAINER");
	admin = getenv("AG_ADMIN");
	if (url == NULL || target == NULL || drainer == NULL || admin == NULL ||
	    getenv("AG_BIN") == NULL || PQstatus(it_db()) != CONNECTION_OK) {
		printf("not ok - test_percall setup: AG_URL, AG_TARGET, AG_DRAINER, AG_ADMIN, "
		       "AG_BIN "
		       "and a reachable database are required\n");
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s", t != NULL ? t : "/tmp");
	snprintf(drainer_log, sizeof(drainer_log), "%s/drainer-percall.log", tmpdir);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	it_run("percall: earlier tests' calls cancelled", it_clean_queue);
	it_run("percall: Prefer: return=response gives 303 once succeeded; the response is the "
	       "target's status, header lines and binary body, verbatim; HEAD too",
	       t_response_verbatim);
	it_run("percall: a response over max_response_bytes is the stored part, marked truncated "
	       "with its full size",
	       t_response_truncated);
	it_run("percall: a dead call's last answer is offered; cancelled is 409; clients see only "
	       "their own responses",
	       t_response_states_scope);
	it_run("percall: retry.on retries a 404, give_up_on ends a 503 at once (JSON and headers)",
	       t_retry_lists);
	it_run("percall: a stalled connect is a connect timeout, a slow answer the total timeout",
	       t_connect_timeout);
	it_run("percall: debounce keeps only the newest pending call (sequential accepts)",
	       t_debounce_sequential);
	it_run("percall: debounce keeps exactly one pending call (concurrent accepts)",
	       t_debounce_concurrent);
	curl_global_cleanup();
	PQfinish(it_db());
	return it_finish();
}
