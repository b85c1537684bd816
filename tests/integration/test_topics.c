/* test_topics: topics (fan-out) against a real PostgreSQL, lighttpd, drainer and HTTP target:
 * one publish makes one call per matching subscription in one transaction; a failing
 * subscriber does not hold up the others; header and JSON filters; transparent mode; all or
 * nothing; Idempotency-Key; who may manage and publish; bad input; publication status. */
#define _GNU_SOURCE
#include "itest.h"
#include "itest.c.inc"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *url;	    /* lighttpd with spawned handlers */
static const char *target;  /* the HTTP target */
static const char *tlog;    /* its request log, one JSON object per line */
static const char *drainer; /* build/asyncgate-drainer */

#define JSON "application/json"

/* ---- helpers ---- */

static void put_topic(const char *name, const char *body, const char *authz, struct hresp *r)
{
	char path[256];
	const char *h[2] = {authz, NULL};

	snprintf(path, sizeof(path), "/v1/topics/%s", name);
	it_http("PUT", url, path, JSON, body, strlen(body), authz != NULL ? h : NULL, r);
}

/* PUTs a topic that must be accepted (201 or 200). */
static void must_put(const char *name, const char *body)
{
	struct hresp r;

	put_topic(name, body, NULL, &r);
	CHECK(r.status == 201 || r.status == 200, "PUT topic %s: %ld %s", name, r.status,
	      r.body ? r.body : "");
	it_hresp_free(&r);
}

/* POSTs a message to /v1/topics/{name}/calls with extra headers (NULL-terminated or NULL). */
static void publish(const char *name, const char *body, const char *const *hdrs, struct hresp *r)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/topics/%s/calls", name);
	it_http("POST", url, path, JSON, body, strlen(body), hdrs, r);
}

/* The subscription names of an answer's array key ("calls" of a publication, "subscriptions"
 * of a topic), joined with ',' (static buffer). */
static const char *names_in(struct json_object *o, const char *key, const char *member)
{
	static char out[1024];
	struct json_object *arr;
	size_t n = 0;

	out[0] = '\0';
	if (o == NULL || !json_object_object_get_ex(o, key, &arr))
		return "(no such array)";
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? "," : "",
				      it_jget(json_object_array_get_idx(arr, i), member));
	return out;
}

/* The subscriptions an answer's calls are for. */
static const char *subs_of(struct json_object *o)
{
	return names_in(o, "calls", "subscription");
}

/* The call id an answer gives for subscription sub, or "" (static buffer). */
static const char *call_of(struct json_object *o, const char *sub)
{
	static char id[64];
	struct json_object *calls;

	id[0] = '\0';
	if (o == NULL || !json_object_object_get_ex(o, "calls", &calls))
		return id;
	for (size_t i = 0; i < json_object_array_length(calls); i++) {
		struct json_object *c = json_object_array_get_idx(calls, i);
		const char *s = it_jget(c, "subscription");

		if (s != NULL && strcmp(s, sub) == 0)
			snprintf(id, sizeof(id), "%s", it_jget(c, "id"));
	}
	return id;
}

static long publications_count(void)
{
	return it_sql_long("SELECT count(*) FROM publications", 0, NULL);
}

/* A new API key for client with function patterns fns (a text[] literal); returns the
 * "Authorization: Bearer ..." header in one of four static slots. */
static const char *new_key(int slot, const char *client, const char *fns, const char *urls)
{
	static char hdr[4][320];
	char *tok = it_sql("SELECT token FROM ag_key_create($1, $2::text[], $3::text[])", 3,
			   (const char *const[]){client, fns, urls});

	CHECK(tok != NULL, "ag_key_create %s", client);
	snprintf(hdr[slot], sizeof(hdr[slot]), "Authorization: Bearer %s", tok ? tok : "none");
	free(tok);
	return hdr[slot];
}

/* How many requests whose path starts with prefix reached the target. */
static int hits(const char *prefix)
{
	struct json_object *h = it_hits(tlog, prefix);
	int n = (int)json_object_array_length(h);

	json_object_put(h);
	return n;
}

/* The log entry of the first request whose path starts with prefix (caller puts), or NULL. */
static struct json_object *hit(const char *prefix)
{
	struct json_object *h = it_hits(tlog, prefix);
	struct json_object *first = json_object_array_length(h) > 0
					    ? json_object_get(json_object_array_get_idx(h, 0))
					    : NULL;

	json_object_put(h);
	return first;
}

/* One `asyncgate-drainer --once`; returns its exit status. */
static int drain_once(void)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		FILE *f = freopen("/dev/null", "w", stdout);

		(void)f;
		execl(drainer, drainer, "--once", "--max-seconds", "60", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *field_of(const char *id, const char *expr)
{
	return it_field(id, expr);
}

/* Cancels every live call whose target or function path mentions tag: a test's calls that
 * are never meant to be sent. */
static void cancel_tagged(const char *tag)
{
	char like[64];

	snprintf(like, sizeof(like), "%%%s%%", tag);
	it_sql_exec("UPDATE calls SET state = 'cancelled', finished_at = now(), lease_until = NULL "
		    "WHERE state IN ('queued', 'retrying') "
		    "AND (target LIKE $1 OR path LIKE $1)",
		    1, (const char *const[]){like});
}

/* ---- the tests ---- */

/* Managing topics needs an admin key; the harness's key is not one. */
static void t_admin_key(void)
{
	char *tok = it_sql("SELECT token FROM ag_key_create('topics-admin', '{*}', '{*}', true)", 0,
			   NULL);

	if (CHECK(tok != NULL, "ag_key_create admin"))
		setenv("AG_API_KEY", tok, 1);
	free(tok);
}

/* Three subscriptions, one filtered out: one publish gives exactly two calls; the one whose
 * target answers 500 retries while the other is delivered on the first drain. */
static void t_fanout(void)
{
	char tname[64], fname[64], body[2048], path[128];
	const char *tg = it_tag('f');
	long before = it_calls_count();
	struct hresp r;
	struct json_object *o, *st;
	char ok_id[64], fail_id[64], pub[64];

	snprintf(tname, sizeof(tname), "fan-%s", tg);
	snprintf(fname, sizeof(fname), "fn-%s", tg);
	it_sql_exec("INSERT INTO functions (name, base_url) VALUES ($1, $2)", 2,
		    (const char *const[]){fname, target});
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": ["
		 "{\"name\": \"ok\", \"target\": \"%s/ok-%s\", \"headers\": {\"X-Sub\": \"ok\"}},"
		 "{\"name\": \"fail\", \"target\": \"%s/status/500/%s\","
		 " \"retry\": {\"max_attempts\": 5, \"initial\": \"1h\", \"max\": \"1h\"}},"
		 "{\"name\": \"skip\", \"function\": \"%s\", \"path\": \"/skip-%s\","
		 " \"filter\": {\"header\": \"X-Kind\", \"equals\": \"refund\"}}]}",
		 target, tg, target, tg, fname, tg);
	put_topic(tname, body, NULL, &r);
	CHECK(r.status == 201, "PUT new topic: %ld %s", r.status, r.body);
	o = it_json(&r);
	CHECK(strcmp(names_in(o, "subscriptions", "name"), "ok,fail,skip") == 0,
	      "subscriptions in order: %s", names_in(o, "subscriptions", "name"));
	json_object_put(o);
	it_hresp_free(&r);

	publish(tname, "{\"headers\": {\"X-Kind\": \"order\"}, \"body\": {\"order\": 7}}", NULL,
		&r);
	CHECK(r.status == 202, "publish: %ld %s", r.status, r.body);
	o = it_json(&r);
	CHECK(strcmp(subs_of(o), "ok,fail") == 0, "matched ok,fail: %s", subs_of(o));
	snprintf(ok_id, sizeof(ok_id), "%s", call_of(o, "ok"));
	snprintf(fail_id, sizeof(fail_id), "%s", call_of(o, "fail"));
	snprintf(pub, sizeof(pub), "%s", it_jget(o, "id") ? it_jget(o, "id") : "");
	CHECK(it_jget(o, "status_url") != NULL &&
		      strstr(it_jget(o, "status_url"), "/v1/publications/") != NULL,
	      "status_url");
	CHECK(it_jget(o, "note") == NULL, "no note when calls were made");
	json_object_put(o);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before + 2, "exactly two calls: %ld -> %ld", before,
	      it_calls_count());
	CHECK(it_sql_long("SELECT cardinality(call_ids) FROM publications WHERE id = $1::uuid", 1,
			  (const char *const[]){pub}) == 2,
	      "publication row with two calls");

	CHECK(drain_once() == 0, "drainer --once");
	it_field_is(ok_id, "state", "succeeded");
	it_field_is(fail_id, "state", "retrying");
	it_field_is(fail_id, "attempts", "1");
	snprintf(path, sizeof(path), "/ok-%s", tg);
	CHECK(hits(path) == 1, "ok subscriber got one request: %d", hits(path));
	{
		struct json_object *h = hit(path);

		CHECK(h != NULL && it_jget(h, "headers.x-sub") != NULL &&
			      strcmp(it_jget(h, "headers.x-sub"), "ok") == 0 &&
			      it_jget(h, "headers.x-kind") != NULL,
		      "subscription and message headers arrive");
		json_object_put(h);
	}
	snprintf(path, sizeof(path), "/skip-%s", tg);
	CHECK(hits(path) == 0, "filtered-out subscription got nothing");

	snprintf(path, sizeof(path), "/v1/publications/%s", pub);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "GET publication: %ld %s", r.status, r.body);
	o = it_json(&r);
	CHECK(strcmp(subs_of(o), "ok,fail") == 0, "status lists ok,fail: %s", subs_of(o));
	st = o != NULL ? json_object_array_get_idx(json_object_object_get(o, "calls"), 0) : NULL;
	it_jis(st, "state", "succeeded");
	st = o != NULL ? json_object_array_get_idx(json_object_object_get(o, "calls"), 1) : NULL;
	it_jis(st, "state", "retrying");
	CHECK(st != NULL && json_object_get_int(json_object_object_get(st, "last_status")) == 500,
	      "fail's last_status 500");
	CHECK(o != NULL && !json_object_get_boolean(json_object_object_get(o, "done")),
	      "not done while one retries");
	CHECK(o != NULL && json_object_get_int(json_object_object_get(
				   json_object_object_get(o, "states"), "succeeded")) == 1,
	      "states.succeeded = 1");
	json_object_put(o);
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM ag_publications WHERE id = $1::uuid AND state "
			  "IN ('succeeded', 'retrying')",
			  1, (const char *const[]){pub}) == 2,
	      "ag_publications view shows both calls");
	cancel_tagged(tg);
}

/* Header and JSON filters, matched and not matched. */
static void t_filters(void)
{
	char tname[64], body[4096];
	const char *tg = it_tag('q');
	struct hresp r;
	struct json_object *o;

	snprintf(tname, sizeof(tname), "filt-%s", tg);
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": ["
		 "{\"name\": \"h-eq\", \"target\": \"%s/%s\","
		 " \"filter\": {\"header\": \"X-Kind\", \"equals\": \"order\"}},"
		 "{\"name\": \"h-in\", \"target\": \"%s/%s\","
		 " \"filter\": {\"header\": \"x-kind\", \"in\": [\"a\", \"b\"]}},"
		 "{\"name\": \"h-none\", \"target\": \"%s/%s\","
		 " \"filter\": {\"header\": \"X-Absent\", \"exists\": false}},"
		 "{\"name\": \"j-eq\", \"target\": \"%s/%s\","
		 " \"filter\": {\"json\": \"/type\", \"equals\": \"order\"}},"
		 "{\"name\": \"j-in\", \"target\": \"%s/%s\","
		 " \"filter\": {\"json\": \"/items/0/sku\", \"in\": [\"A1\", \"B2\"]}},"
		 "{\"name\": \"j-num\", \"target\": \"%s/%s\","
		 " \"filter\": {\"json\": \"/n\", \"equals\": 1}},"
		 "{\"name\": \"j-no\", \"target\": \"%s/%s\","
		 " \"filter\": {\"json\": \"/type\", \"equals\": \"refund\"}},"
		 "{\"name\": \"both\", \"target\": \"%s/%s\","
		 " \"filter\": [{\"header\": \"X-Kind\", \"equals\": \"a\"},"
		 "  {\"json\": \"/a~1b\", \"exists\": true}]}]}",
		 target, tg, target, tg, target, tg, target, tg, target, tg, target, tg, target, tg,
		 target, tg);
	must_put(tname, body);

	/* delay 1h: these calls are never sent */
	publish(tname,
		"{\"delay\": \"1h\", \"headers\": {\"X-Kind\": \"a\"},"
		" \"body\": {\"type\": \"order\", \"items\": [{\"sku\": \"B2\"}],"
		" \"n\": 1.0, \"a/b\": null}}",
		NULL, &r);
	CHECK(r.status == 202, "publish JSON: %ld %s", r.status, r.body);
	o = it_json(&r);
	CHECK(strcmp(subs_of(o), "h-in,h-none,j-eq,j-in,j-num,both") == 0,
	      "JSON message matched: %s", subs_of(o));
	json_object_put(o);
	it_hresp_free(&r);

	publish(tname, "{\"delay\": \"1h\", \"body_text\": \"type=order\"}", NULL, &r);
	CHECK(r.status == 202, "publish text: %ld %s", r.status, r.body);
	o = it_json(&r);
	CHECK(strcmp(subs_of(o), "h-none") == 0, "text message matched: %s", subs_of(o));
	json_object_put(o);
	it_hresp_free(&r);

	/* body_base64 of JSON is JSON too: {"type":"order"} */
	publish(tname, "{\"delay\": \"1h\", \"body_base64\": \"eyJ0eXBlIjoib3JkZXIifQ==\"}", NULL,
		&r);
	o = it_json(&r);
	CHECK(r.status == 202 && strcmp(subs_of(o), "h-none,j-eq") == 0,
	      "base64 JSON message matched: %s", subs_of(o));
	json_object_put(o);
	it_hresp_free(&r);
	cancel_tagged(tg);
}

/* No subscription matches: still a publication, with zero calls, and the answer says so. */
static void t_zero(void)
{
	char tname[64], body[1024], path[128];
	const char *tg = it_tag('z');
	long before = it_calls_count(), pubs = publications_count();
	struct hresp r;
	struct json_object *o;

	snprintf(tname, sizeof(tname), "zero-%s", tg);
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": [{\"name\": \"only\", \"target\": \"%s/%s\","
		 " \"filter\": {\"header\": \"X-Kind\", \"exists\": true}}]}",
		 target, tg);
	must_put(tname, body);
	publish(tname, "{}", NULL, &r);
	CHECK(r.status == 202, "publish: %ld %s", r.status, r.body);
	o = it_json(&r);
	CHECK(o != NULL && json_object_array_length(json_object_object_get(o, "calls")) == 0,
	      "no calls");
	CHECK(it_jget(o, "note") != NULL && strstr(it_jget(o, "note"), "no subscription") != NULL,
	      "the answer says no subscription matched");
	snprintf(path, sizeof(path), "/v1/publications/%s", it_jget(o, "id"));
	json_object_put(o);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before, "no call written");
	CHECK(publications_count() == pubs + 1, "one publication written");
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	o = it_json(&r);
	CHECK(r.status == 200 && json_object_get_boolean(json_object_object_get(o, "done")),
	      "status: done with no calls: %ld %s", r.status, r.body);
	json_object_put(o);
	it_hresp_free(&r);
}

/* ANY /v1/async/topic:{name}/{rest}: the request is the message; rest is appended to each
 * subscription's path, the query, headers and body go with it, and filters see them. */
static void t_transparent(void)
{
	char tname[64], fname[64], body[2048], path[256], want[256];
	const char *tg = it_tag('p');
	const char *hdr[] = {"X-Kind: order", "Async-Delay: 1h", "Content-Type: text/plain", NULL};
	struct hresp r;
	struct json_object *o;
	char tid[64], fid[64];
	char *v;

	snprintf(tname, sizeof(tname), "tp-%s", tg);
	snprintf(fname, sizeof(fname), "fn-%s", tg);
	it_sql_exec("INSERT INTO functions (name, base_url) VALUES ($1, $2)", 2,
		    (const char *const[]){fname, target});
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": ["
		 "{\"name\": \"url\", \"target\": \"%s/u-%s?fixed=1\","
		 " \"filter\": {\"header\": \"X-Kind\", \"equals\": \"order\"}},"
		 "{\"name\": \"fn\", \"function\": \"%s\", \"path\": \"/f-%s\","
		 " \"timeout\": \"7s\"},"
		 "{\"name\": \"never\", \"target\": \"%s/n-%s\","
		 " \"filter\": {\"header\": \"X-Kind\", \"equals\": \"refund\"}}]}",
		 target, tg, fname, tg, target, tg);
	must_put(tname, body);

	snprintf(path, sizeof(path), "/v1/async/topic:%s/extra/p?x=1", tname);
	it_http("PUT", url, path, NULL, "raw bytes", 9, hdr, &r);
	CHECK(r.status == 202, "transparent publish: %ld %s", r.status, r.body);
	o = it_json(&r);
	CHECK(strcmp(subs_of(o), "url,fn") == 0, "matched url,fn: %s", subs_of(o));
	snprintf(tid, sizeof(tid), "%s", call_of(o, "url"));
	snprintf(fid, sizeof(fid), "%s", call_of(o, "fn"));
	it_jis(json_object_array_get_idx(json_object_object_get(o, "calls"), 0), "state",
	       "scheduled");
	json_object_put(o);
	it_hresp_free(&r);
	snprintf(want, sizeof(want), "%s/u-%s/extra/p?fixed=1", target, tg);
	it_field_is(tid, "target", want);
	it_field_is(tid, "method", "PUT");
	it_field_is(tid, "query", "x=1");
	it_field_is(tid, "headers->>'X-Kind'", "order");
	it_field_is(tid, "headers->>'Content-Type'", "text/plain");
	it_field_is(tid, "convert_from(body, 'UTF8')", "raw bytes");
	snprintf(want, sizeof(want), "/f-%s/extra/p", tg);
	it_field_is(fid, "path", want);
	it_field_is(fid, "timeout_ms", "7000");
	v = field_of(fid, "not_before > now() + interval '50 minutes'");
	CHECK(v != NULL && strcmp(v, "t") == 0, "Async-Delay applies to every call");
	free(v);

	/* topic%3A spelling, and a bad control header named as in a call */
	snprintf(path, sizeof(path), "/v1/async/topic%%3A%s", tname);
	it_http("POST", url, path, NULL, NULL, 0, (const char *const[]){"Async-Delay: soon", NULL},
		&r);
	CHECK(r.status == 400 && strstr(r.body, "Async-Delay") != NULL, "bad Async-Delay: %ld %s",
	      r.status, r.body);
	it_hresp_free(&r);
	cancel_tagged(tg);
}

/* The per-call controls reach the calls of a publication: a subscription may set
 * connect_timeout and priority; a transparent message carries Async-Priority, Async-Retry-On,
 * Async-Give-Up-On and Async-Connect-Timeout; a debounce key (one per call) is refused. */
static void t_controls(void)
{
	char tname[64], body[2048], path[256];
	const char *tg = it_tag('c');
	const char *hdr[] = {"Async-Delay: 1h",		  "Async-Priority: -7",
			     "Async-Retry-On: 404",	  "Async-Give-Up-On: 501",
			     "Async-Connect-Timeout: 2s", NULL};
	struct hresp r;
	struct json_object *o;
	char sid[64], mid[64];

	snprintf(tname, sizeof(tname), "tc-%s", tg);
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": ["
		 "{\"name\": \"set\", \"target\": \"%s/s-%s\", \"priority\": 9,"
		 " \"connect_timeout\": \"1500ms\"},"
		 "{\"name\": \"msg\", \"target\": \"%s/m-%s\"}]}",
		 target, tg, target, tg);
	must_put(tname, body);
	snprintf(path, sizeof(path), "/v1/async/topic:%s/x", tname);
	it_http("POST", url, path, NULL, "b", 1, hdr, &r);
	CHECK(r.status == 202, "transparent publish with controls: %ld %s", r.status, r.body);
	o = it_json(&r);
	snprintf(sid, sizeof(sid), "%s", call_of(o, "set"));
	snprintf(mid, sizeof(mid), "%s", call_of(o, "msg"));
	json_object_put(o);
	it_hresp_free(&r);
	it_field_is(sid, "priority", "9");
	it_field_is(sid, "connect_timeout_ms", "1500");
	it_field_is(mid, "priority", "-7");
	it_field_is(mid, "connect_timeout_ms", "2000");
	it_field_is(mid, "retry_on::text", "[404]");
	it_field_is(mid, "give_up_on::text", "[501]");

	publish(tname, "{\"body\": 1, \"debounce_key\": \"k\"}", NULL, &r);
	CHECK(r.status == 400 && strstr(r.body, "debounce_key") != NULL,
	      "debounce_key in a message: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	it_http("POST", url, path, NULL, "b", 1,
		(const char *const[]){"Async-Debounce-Key: k", NULL}, &r);
	CHECK(r.status == 400 && strstr(r.body, "Async-Debounce-Key") != NULL,
	      "Async-Debounce-Key to a topic: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	cancel_tagged(tg);
}

/* A publish is all or nothing: a subscription that cannot take the message (its function was
 * deleted; its URL is outside the address policy) fails the publish with 409, and a call the
 * database refuses (a test trigger) rolls the transaction back: no call, no publication. */
static void t_all_or_nothing(void)
{
	char tname[64], fname[64], body[2048], spec[512];
	const char *tg = it_tag('a');
	long before, pubs;
	struct hresp r;

	snprintf(tname, sizeof(tname), "aon-%s", tg);
	snprintf(fname, sizeof(fname), "fn-%s", tg);
	it_sql_exec("INSERT INTO functions (name, base_url) VALUES ($1, $2)", 2,
		    (const char *const[]){fname, target});
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": [{\"name\": \"first\", \"target\": \"%s/%s\"},"
		 "{\"name\": \"gone\", \"function\": \"%s\"}]}",
		 target, tg, fname);
	must_put(tname, body);
	it_sql_exec("DELETE FROM functions WHERE name = $1", 1, (const char *const[]){fname});
	before = it_calls_count();
	pubs = publications_count();
	publish(tname, "{\"delay\": \"1h\"}", NULL, &r);
	CHECK(r.status == 409 && strstr(r.body, "subscriptions.gone.function") != NULL,
	      "deleted function: 409 naming it: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before && publications_count() == pubs, "nothing written");

	/* An operator's ag_topic_put skips the HTTP checks: a private address is caught at
	 * publish. */
	snprintf(spec, sizeof(spec),
		 "[{\"name\": \"first\", \"target\": \"%s/%s\"},"
		 "{\"name\": \"private\", \"target\": \"http://10.9.8.7/x\"}]",
		 target, tg);
	CHECK(it_sql_exec("SELECT ag_topic_put($1, $2::jsonb)", 2,
			  (const char *const[]){tname, spec}),
	      "ag_topic_put");
	publish(tname, "{\"delay\": \"1h\"}", NULL, &r);
	CHECK(r.status == 409 && strstr(r.body, "subscriptions.private.target") != NULL,
	      "private address: 409 naming it: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before && publications_count() == pubs, "nothing written");

	/* The database refuses the calls after the publication row went in: the transaction
	 * rolls back whole, and the handler's connection is fine for the next request. */
	snprintf(spec, sizeof(spec),
		 "[{\"name\": \"first\", \"target\": \"%s/%s\"},"
		 "{\"name\": \"boom\", \"target\": \"%s/boom-%s\"}]",
		 target, tg, target, tg);
	it_sql_exec("SELECT ag_topic_put($1, $2::jsonb)", 2, (const char *const[]){tname, spec});
	it_sql_exec("CREATE FUNCTION topics_test_boom() RETURNS trigger LANGUAGE plpgsql AS $$"
		    " BEGIN IF NEW.target LIKE '%/boom-%' THEN RAISE EXCEPTION 'boom'; END IF;"
		    " RETURN NEW; END $$",
		    0, NULL);
	it_sql_exec("CREATE TRIGGER topics_test_boom BEFORE INSERT ON calls FOR EACH ROW"
		    " EXECUTE FUNCTION topics_test_boom()",
		    0, NULL);
	publish(tname, "{\"delay\": \"1h\"}", NULL, &r);
	CHECK(r.status == 500, "calls refused inside the transaction: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	it_sql_exec("DROP TRIGGER topics_test_boom ON calls", 0, NULL);
	it_sql_exec("DROP FUNCTION topics_test_boom()", 0, NULL);
	CHECK(it_calls_count() == before && publications_count() == pubs,
	      "no publication row without its calls");
	publish(tname, "{\"delay\": \"1h\"}", NULL, &r);
	CHECK(r.status == 202, "the next publish works: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before + 2 && publications_count() == pubs + 1,
	      "publication and both calls written");
	cancel_tagged(tg);
}

/* Idempotency-Key on publish: the same message again answers the same publication and makes
 * no calls; another message, or another topic, under the key is 409. */
static void t_idempotency(void)
{
	char tname[64], tname2[64], body[1024], key[96], pub[64], c1[64];
	const char *tg = it_tag('i');
	const char *hdr[2] = {key, NULL};
	long before, pubs;
	struct hresp r;
	struct json_object *o;
	char *rep;

	snprintf(tname, sizeof(tname), "idem-%s", tg);
	snprintf(tname2, sizeof(tname2), "idem2-%s", tg);
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": [{\"name\": \"a\", \"target\": \"%s/%s\"},"
		 "{\"name\": \"b\", \"target\": \"%s/%s/b\"}]}",
		 target, tg, target, tg);
	must_put(tname, body);
	must_put(tname2, body);
	snprintf(key, sizeof(key), "Idempotency-Key: k-%s", tg);
	publish(tname, "{\"delay\": \"1h\", \"body\": 1}", hdr, &r);
	CHECK(r.status == 202, "first: %ld %s", r.status, r.body);
	o = it_json(&r);
	snprintf(pub, sizeof(pub), "%s", it_jget(o, "id") ? it_jget(o, "id") : "");
	snprintf(c1, sizeof(c1), "%s", call_of(o, "b"));
	json_object_put(o);
	it_hresp_free(&r);
	before = it_calls_count();
	pubs = publications_count();

	publish(tname, "{\"delay\": \"1h\", \"body\": 1}", hdr, &r);
	CHECK(r.status == 202, "repeat: %ld %s", r.status, r.body);
	rep = it_header(&r, "Idempotent-Replayed");
	CHECK(rep != NULL && strcmp(rep, "true") == 0, "Idempotent-Replayed: true");
	free(rep);
	o = it_json(&r);
	CHECK(it_jget(o, "id") != NULL && strcmp(it_jget(o, "id"), pub) == 0,
	      "same publication id");
	CHECK(strcmp(call_of(o, "b"), c1) == 0, "same call ids");
	json_object_put(o);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before && publications_count() == pubs, "nothing new written");

	publish(tname, "{\"delay\": \"1h\", \"body\": 2}", hdr, &r);
	CHECK(r.status == 409, "another message under the key: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	publish(tname2, "{\"delay\": \"1h\", \"body\": 1}", hdr, &r);
	CHECK(r.status == 409, "another topic under the key: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before && publications_count() == pubs, "nothing new written");
	cancel_tagged(tg);
}

/* Only admins manage topics; a client publishes where its functions patterns match
 * topic:{name}, sees only its own publications, and its callbacks must match url_patterns. */
static void t_permissions(void)
{
	char tname[64], other[64], client[64], fns[128], body[1024], path[128], pub[64];
	const char *tg = it_tag('k');
	const char *pubk, *strangerk;
	long before, pubs;
	struct hresp r;
	struct json_object *o;

	snprintf(tname, sizeof(tname), "perm-%s", tg);
	snprintf(other, sizeof(other), "other-%s", tg);
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": [{\"name\": \"a\", \"target\": \"%s/%s\"}]}", target, tg);
	must_put(tname, body);
	must_put(other, body);
	snprintf(client, sizeof(client), "pub-%s", tg);
	snprintf(fns, sizeof(fns), "{topic:%s}", tname);
	pubk = new_key(0, client, fns, "{http://127.0.0.1:1/ok/*}");
	snprintf(client, sizeof(client), "stranger-%s", tg);
	strangerk = new_key(1, client, "{*}", "{*}");

	before = it_calls_count();
	pubs = publications_count();
	put_topic(tname, body, pubk, &r);
	CHECK(r.status == 403, "non-admin PUT: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/topics/%s", tname);
	it_http("GET", url, path, NULL, NULL, 0, (const char *const[]){pubk, NULL}, &r);
	CHECK(r.status == 403, "non-admin GET topic: %ld", r.status);
	it_hresp_free(&r);
	it_http("DELETE", url, path, NULL, NULL, 0, (const char *const[]){pubk, NULL}, &r);
	CHECK(r.status == 403, "non-admin DELETE topic: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/topics", NULL, NULL, 0, (const char *const[]){pubk, NULL}, &r);
	CHECK(r.status == 403, "non-admin GET /v1/topics: %ld", r.status);
	it_hresp_free(&r);

	publish(other, "{}", (const char *const[]){pubk, NULL}, &r);
	CHECK(r.status == 403 && strstr(r.body, "\"topic\"") != NULL,
	      "publish to a topic not allowed: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/async/topic:%s/x", other);
	it_http("POST", url, path, "text/plain", "m", 1, (const char *const[]){pubk, NULL}, &r);
	CHECK(r.status == 403, "transparent publish not allowed: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	publish(tname, "{\"callback\": \"http://127.0.0.1:1/elsewhere\"}",
		(const char *const[]){pubk, NULL}, &r);
	CHECK(r.status == 403 && strstr(r.body, "callback") != NULL,
	      "callback outside url_patterns: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	CHECK(it_calls_count() == before && publications_count() == pubs, "nothing written");

	publish(tname, "{\"delay\": \"1h\", \"callback\": \"http://127.0.0.1:1/ok/cb\"}",
		(const char *const[]){pubk, NULL}, &r);
	CHECK(r.status == 202, "allowed publish: %ld %s", r.status, r.body);
	o = it_json(&r);
	snprintf(pub, sizeof(pub), "%s", it_jget(o, "id") ? it_jget(o, "id") : "");
	{
		const char *cid = call_of(o, "a");
		char *cl = it_field(cid, "client");

		CHECK(cl != NULL && strncmp(cl, "pub-", 4) == 0, "the call is the client's: %s",
		      cl ? cl : "(null)");
		free(cl);
	}
	json_object_put(o);
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/publications/%s", pub);
	it_http("GET", url, path, NULL, NULL, 0, (const char *const[]){pubk, NULL}, &r);
	CHECK(r.status == 200, "its own publication: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, path, NULL, NULL, 0, (const char *const[]){strangerk, NULL}, &r);
	CHECK(r.status == 404, "another client's publication: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "admin sees it: %ld", r.status);
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/publications?topic=%s", tname);
	it_http("GET", url, path, NULL, NULL, 0, (const char *const[]){strangerk, NULL}, &r);
	o = it_json(&r);
	CHECK(r.status == 200 &&
		      json_object_array_length(json_object_object_get(o, "publications")) == 0,
	      "a stranger lists none: %ld %s", r.status, r.body);
	json_object_put(o);
	it_hresp_free(&r);
	it_http("GET", url, path, NULL, NULL, 0, (const char *const[]){pubk, NULL}, &r);
	o = it_json(&r);
	CHECK(r.status == 200 &&
		      json_object_array_length(json_object_object_get(o, "publications")) == 1,
	      "the publisher lists its one: %ld %s", r.status, r.body);
	json_object_put(o);
	it_hresp_free(&r);
	cancel_tagged(tg);
}

/* Bad topics and messages: 400 naming the field, nothing written. */
static void t_bad_input(void)
{
	static const struct {
		const char *body;
		const char *field;
	} tops[] = {
		{"{}", "subscriptions"},
		{"{\"subscriptions\": {}}", "subscriptions"},
		{"{\"subscriptions\": [], \"extra\": 1}", "extra"},
		{"{\"subscriptions\": [1]}", "subscriptions[0]"},
		{"{\"subscriptions\": [{\"target\": \"http://127.0.0.1:9/\"}]}",
		 "subscriptions[0].name"},
		{"{\"subscriptions\": [{\"name\": \"a b\", \"target\": \"http://127.0.0.1:9/\"}]}",
		 "subscriptions[0].name"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\"},"
		 " {\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\"}]}",
		 "subscriptions[1].name"},
		{"{\"subscriptions\": [{\"name\": \"a\"}]}", "subscriptions[0].target"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"function\": \"f\"}]}",
		 "subscriptions[0].function"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://10.1.2.3/\"}]}",
		 "subscriptions[0].target"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"ftp://127.0.0.1/\"}]}",
		 "subscriptions[0].target"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"function\": \"no-such-fn-zz\"}]}",
		 "subscriptions[0].function"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"path\": \"/x\"}]}",
		 "subscriptions[0].path"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"body\": 1}]}",
		 "subscriptions[0].body"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"headers\": {\"Host\": \"x\"}}]}",
		 "subscriptions[0].headers.Host"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"retry\": {\"max_attempts\": 0}}]}",
		 "subscriptions[0].retry.max_attempts"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"timeout\": \"soon\"}]}",
		 "subscriptions[0].timeout"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": {\"header\": \"X\", \"json\": \"/a\", \"equals\": \"x\"}}]}",
		 "subscriptions[0].filter"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": {\"json\": \"type\", \"equals\": 1}}]}",
		 "subscriptions[0].filter.json"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": {\"header\": \"X-Kind\", \"equals\": 1}}]}",
		 "subscriptions[0].filter.equals"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": {\"header\": \"X-Kind\"}}]}",
		 "subscriptions[0].filter"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": {\"header\": \"X-Kind\", \"in\": []}}]}",
		 "subscriptions[0].filter.in"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": []}]}",
		 "subscriptions[0].filter"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": [{\"json\": \"/a\", \"exists\": \"yes\"}]}]}",
		 "subscriptions[0].filter[0].exists"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": {\"header\": \"X\", \"equals\": \"x\", \"op\": \"eq\"}}]}",
		 "subscriptions[0].filter.op"},
		{"{\"subscriptions\": [{\"name\": \"a\", \"target\": \"http://127.0.0.1:9/\","
		 " \"filter\": {\"json\": \"/a~2\", \"exists\": true}}]}",
		 "subscriptions[0].filter.json"},
	};
	static const struct {
		const char *body;
		const char *field;
		long status;
	} msgs[] = {
		{"{\"target\": \"http://127.0.0.1:9/\"}", "target", 400},
		{"{\"function\": \"f\"}", "function", 400},
		{"{\"delay\": \"soon\"}", "delay", 400},
		{"{\"method\": \"GET\", \"body\": 1}", "body", 400},
		{"{\"headers\": {\"Connection\": \"x\"}}", "headers.Connection", 400},
		{"{\"path\": \"x\"}", "path", 400},
		{"{\"nope\": 1}", "nope", 400},
		{"[]", "body", 400},
		{"{", "body", 400},
	};
	char tname[64], good[256], field[128];
	const char *tg = it_tag('b');
	long before, pubs, subs;
	struct hresp r;

	snprintf(tname, sizeof(tname), "bad-%s", tg);
	snprintf(good, sizeof(good),
		 "{\"subscriptions\": [{\"name\": \"keep\", \"target\": \"%s/%s\"}]}", target, tg);
	must_put(tname, good);
	before = it_calls_count();
	pubs = publications_count();
	subs = it_sql_long("SELECT count(*) FROM subscriptions", 0, NULL);
	for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
		put_topic(tname, tops[i].body, NULL, &r);
		snprintf(field, sizeof(field), "\"field\":\"%s\"", tops[i].field);
		CHECK(r.status == 400 && r.body != NULL && strstr(r.body, field) != NULL,
		      "PUT %s: want 400 naming %s, got %ld %s", tops[i].body, tops[i].field,
		      r.status, r.body ? r.body : "");
		it_hresp_free(&r);
	}
	put_topic("bad%20name", good, NULL, &r);
	CHECK(r.status == 400 && strstr(r.body, "\"name\"") != NULL, "bad topic name: %ld %s",
	      r.status, r.body);
	it_hresp_free(&r);
	{
		char path[128];

		snprintf(path, sizeof(path), "/v1/topics/%s", tname);
		it_http("PUT", url, path, "text/plain", good, strlen(good), NULL, &r);
		CHECK(r.status == 415, "PUT text/plain: %ld", r.status);
		it_hresp_free(&r);
	}
	CHECK(it_sql_long("SELECT count(*) FROM subscriptions", 0, NULL) == subs,
	      "no subscription written or removed");
	CHECK(it_sql_long("SELECT count(*) FROM subscriptions WHERE topic = $1 AND name = 'keep'",
			  1, (const char *const[]){tname}) == 1,
	      "the topic is as it was");

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		publish(tname, msgs[i].body, NULL, &r);
		snprintf(field, sizeof(field), "\"field\":\"%s\"", msgs[i].field);
		CHECK(r.status == msgs[i].status && r.body != NULL && strstr(r.body, field) != NULL,
		      "publish %s: want %ld naming %s, got %ld %s", msgs[i].body, msgs[i].status,
		      msgs[i].field, r.status, r.body ? r.body : "");
		it_hresp_free(&r);
	}
	publish("no-such-topic-zz", "{}", NULL, &r);
	CHECK(r.status == 404, "unknown topic: %ld", r.status);
	it_hresp_free(&r);
	{
		char longkey[300];

		snprintf(longkey, sizeof(longkey), "Idempotency-Key: %0256d", 7);
		publish(tname, "{}", (const char *const[]){longkey, NULL}, &r);
		CHECK(r.status == 400 && strstr(r.body, "Idempotency-Key") != NULL,
		      "Idempotency-Key of 256 bytes: %ld %s", r.status, r.body);
		it_hresp_free(&r);
	}
	CHECK(it_calls_count() == before && publications_count() == pubs, "nothing written");
}

/* GET /v1/topics, GET one (subscriptions with their filters), PUT again replaces (200),
 * DELETE (204, then 404); publications outlive their topic. */
static void t_manage(void)
{
	char tname[64], body[1024], path[128], pubpath[128];
	const char *tg = it_tag('m');
	struct hresp r;
	struct json_object *o, *s;

	snprintf(tname, sizeof(tname), "man-%s", tg);
	snprintf(body, sizeof(body),
		 "{\"subscriptions\": [{\"name\": \"one\", \"target\": \"%s/%s\","
		 " \"headers\": {\"X-A\": \"1\"}, \"retry\": {\"max_attempts\": 2},"
		 " \"filter\": {\"json\": \"/k\", \"in\": [1, 2]}}]}",
		 target, tg);
	must_put(tname, body);
	snprintf(path, sizeof(path), "/v1/topics/%s", tname);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "GET topic: %ld", r.status);
	o = it_json(&r);
	it_jis(o, "name", tname);
	s = o != NULL ? json_object_array_get_idx(json_object_object_get(o, "subscriptions"), 0)
		      : NULL;
	it_jis(s, "name", "one");
	it_jis(s, "headers.X-A", "1");
	it_jis(s, "filter.json", "/k");
	json_object_put(o);
	it_hresp_free(&r);

	it_http("GET", url, "/v1/topics", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200 && strstr(r.body, tname) != NULL, "listed: %ld", r.status);
	it_hresp_free(&r);

	publish(tname, "{\"delay\": \"1h\", \"body\": {\"k\": 2}}", NULL, &r);
	o = it_json(&r);
	CHECK(r.status == 202 && strcmp(subs_of(o), "one") == 0, "publish: %ld %s", r.status,
	      r.body);
	snprintf(pubpath, sizeof(pubpath), "/v1/publications/%s", it_jget(o, "id"));
	json_object_put(o);
	it_hresp_free(&r);

	snprintf(body, sizeof(body),
		 "{\"subscriptions\": [{\"name\": \"two\", \"target\": \"%s/%s/2\"},"
		 "{\"name\": \"three\", \"target\": \"%s/%s/3\"}]}",
		 target, tg, target, tg);
	put_topic(tname, body, NULL, &r);
	CHECK(r.status == 200, "PUT again replaces: %ld %s", r.status, r.body);
	o = it_json(&r);
	CHECK(strcmp(names_in(o, "subscriptions", "name"), "two,three") == 0,
	      "the answer shows the new subscriptions: %s", names_in(o, "subscriptions", "name"));
	json_object_put(o);
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM ag_subscriptions WHERE topic = $1", 1,
			  (const char *const[]){tname}) == 2,
	      "two subscriptions now");

	it_http("DELETE", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 204, "DELETE: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "GET after DELETE: %ld", r.status);
	it_hresp_free(&r);
	it_http("DELETE", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "DELETE again: %ld", r.status);
	it_hresp_free(&r);
	CHECK(it_sql_long("SELECT count(*) FROM subscriptions WHERE topic = $1", 1,
			  (const char *const[]){tname}) == 0,
	      "subscriptions gone with the topic");
	it_http("GET", url, pubpath, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "publication outlives its topic: %ld", r.status);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/publications/not-a-uuid", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 404, "malformed publication id: %ld", r.status);
	it_hresp_free(&r);
	it_http("POST", url, path, JSON, "{}", 2, NULL, &r);
	CHECK(r.status == 405, "POST on a topic: %ld", r.status);
	it_hresp_free(&r);
	cancel_tagged(tg);
}

int main(void)
{
	url = getenv("AG_URL");
	target = getenv("AG_TARGET");
	tlog = getenv("AG_TARGET_LOG");
	drainer = getenv("AG_DRAINER");
	if (url == NULL || target == NULL || tlog == NULL || drainer == NULL ||
	    PQstatus(it_db()) != CONNECTION_OK) {
		printf("not ok - test_topics setup: AG_URL, AG_TARGET, AG_TARGET_LOG, AG_DRAINER "
		       "and a reachable database are required\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	it_run("topics: an admin key for these tests (it_http sends it)", t_admin_key);
	it_run("topics: earlier tests' calls cancelled", it_clean_queue);
	it_run("topics: three subscriptions, one filtered out: two calls; a failing subscriber "
	       "retries while the other is delivered on the first drain",
	       t_fanout);
	it_run("topics: header and JSON filters, matched and not matched", t_filters);
	it_run("topics: no subscription matches: a publication with zero calls", t_zero);
	it_run("topics: transparent mode /v1/async/topic:{name}/...", t_transparent);
	it_run("topics: all or nothing: a subscription that cannot take the message (409), or the "
	       "database refusing a call (500), writes no publication and no call",
	       t_all_or_nothing);
	it_run("topics: per-call controls from subscriptions and transparent messages; no debounce "
	       "key",
	       t_controls);
	it_run("topics: Idempotency-Key on publish", t_idempotency);
	it_run("topics: admins manage, clients publish where allowed and see their own",
	       t_permissions);
	it_run("topics: bad topics and messages: 400 naming the field, nothing written",
	       t_bad_input);
	it_run("topics: list, get, replace, delete; publications outlive the topic", t_manage);
	curl_global_cleanup();
	PQfinish(it_db());
	return it_finish();
}
