/* test_auth: who may call what (the security issue's client rules) against the real handler
 * behind lighttpd: API keys made and revoked with asyncgate-admin and SQL, scoped to functions
 * and URL patterns; 401 vs 403; a client sees, cancels and retries only its own calls, an admin
 * all; REMOTE_USER rules; auth = none and auth = remote_user through CGI. */
#define _GNU_SOURCE /* itest.c.inc: wait4 */
#include "itest.h"
#include "itest.c.inc"

#include <openssl/rand.h>

static const char *url;	    /* lighttpd with spawned handlers */
static const char *target;  /* the HTTP target */
static const char *admin;   /* build/asyncgate-admin */
static char fa[64], fb[64]; /* two functions on the target, fresh per run */

#define JSON "application/json"

static struct {
	char hdr[320];
} keyhdr[4];

/* "Authorization: Bearer <token>" for a token, in one of four static slots. */
static const char *bearer(int slot, const char *token)
{
	snprintf(keyhdr[slot].hdr, sizeof(keyhdr[slot].hdr), "Authorization: Bearer %s", token);
	return keyhdr[slot].hdr;
}

/* POSTs body to /v1/calls with the given Authorization header (NULL: none at all). */
static void post_as(const char *authz, const char *body, struct hresp *r)
{
	const char *h[2] = {authz != NULL ? authz : "Authorization:", NULL};

	it_http("POST", url, "/v1/calls", JSON, body, strlen(body), h, r);
}

static void get_as(const char *authz, const char *method, const char *path, struct hresp *r)
{
	const char *h[2] = {authz != NULL ? authz : "Authorization:", NULL};

	it_http(method, url, path, NULL, NULL, 0, h, r);
}

/* A problem+json answer with this status whose "field" is field. */
static bool is_problem(const struct hresp *r, long status, const char *field)
{
	struct json_object *o = it_json(r);
	struct json_object *v;
	char *ct = it_header(r, "Content-Type");
	bool ok = r->status == status && ct != NULL &&
		  strcmp(ct, "application/problem+json") == 0 && o != NULL &&
		  json_object_object_get_ex(o, "field", &v) &&
		  strcmp(json_object_get_string(v), field) == 0 &&
		  json_object_object_get_ex(o, "detail", &v) &&
		  strstr(json_object_get_string(v), field) != NULL;

	CHECK(ok, "want %ld problem naming %s; got %ld %s", status, field, r->status, r->body);
	free(ct);
	json_object_put(o);
	return ok;
}

/* No credentials: 401 with WWW-Authenticate, nothing written; a wrong or malformed key: 401
 * invalid_token. Health and metrics stay open. */
static void t_401(void)
{
	static const char *const bad[] = {
		"Authorization: Bearer agk_k_000000000000_"
		"0000000000000000000000000000000000000000000000000000000000000000",
		"Authorization: Bearer not-a-key",
		"Authorization: Basic YWxpY2U6c2VjcmV0",
	};
	struct hresp r;
	long before = it_calls_count();
	char *www;
	char body[256];

	snprintf(body, sizeof(body), "{\"function\":\"%s\"}", fa);
	post_as(NULL, body, &r);
	is_problem(&r, 401, "Authorization");
	www = it_header(&r, "WWW-Authenticate");
	CHECK(www != NULL && strncmp(www, "Bearer realm=\"asyncgate\"", 24) == 0,
	      "WWW-Authenticate: %s", www ? www : "(none)");
	free(www);
	it_hresp_free(&r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		post_as(bad[i], body, &r);
		is_problem(&r, 401, "Authorization");
		www = it_header(&r, "WWW-Authenticate");
		CHECK(www != NULL && strstr(www, "error=\"invalid_") != NULL, "%s: %s", bad[i],
		      www ? www : "(none)");
		free(www);
		it_hresp_free(&r);
	}
	get_as(NULL, "GET", "/v1/calls?limit=1", &r);
	is_problem(&r, 401, "Authorization");
	it_hresp_free(&r);
	get_as(NULL, "GET", "/v1/calls/00000000-0000-0000-0000-000000000000/nope", &r);
	CHECK(r.status == 401, "unknown calls path without a key: %ld (want 401, not 404)",
	      r.status);
	it_hresp_free(&r);
	it_http("POST", url, "/v1/async/x/y", "text/plain", "hi", 2,
		(const char *const[]){"Authorization:", NULL}, &r);
	is_problem(&r, 401, "Authorization");
	it_hresp_free(&r);
	CHECK(it_calls_count() == before, "a refused request wrote rows");
	get_as(NULL, "GET", "/v1/health", &r);
	CHECK(r.status == 200, "health without a key: %ld", r.status);
	it_hresp_free(&r);
	get_as(NULL, "GET", "/metrics", &r);
	CHECK(r.status == 200, "metrics without a key: %ld", r.status);
	it_hresp_free(&r);
}

/* A key scoped to function a: a is accepted; b, a raw URL and a callback outside its URL
 * patterns are 403 naming the field, in a batch too (all or nothing), and in transparent
 * mode; nothing is written. */
static void t_scope(void)
{
	char token[256], args[512], body[512], path[256];
	const char *k;
	struct hresp r;
	long before;

	snprintf(args, sizeof(args), "key create scoped-a --function %s --url '%s/cb/*'", fa,
		 target);
	CHECK(it_admin(args, token, sizeof(token)) == 0, "key create");
	k = bearer(0, token);

	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"path\":\"/x\"}", fa);
	post_as(k, body, &r);
	CHECK(r.status == 202, "function a: %ld %s", r.status, r.body);
	if (r.status == 202)
		it_field_is(it_jstr(&r, "id"), "client", "scoped-a");
	it_hresp_free(&r);

	before = it_calls_count();
	snprintf(body, sizeof(body), "{\"function\":\"%s\"}", fb);
	post_as(k, body, &r);
	is_problem(&r, 403, "function");
	it_hresp_free(&r);
	snprintf(body, sizeof(body), "{\"target\":\"%s/raw\"}", target);
	post_as(k, body, &r);
	is_problem(&r, 403, "target");
	it_hresp_free(&r);
	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"callback\":\"%s/elsewhere\"}", fa,
		 target);
	post_as(k, body, &r);
	is_problem(&r, 403, "callback");
	it_hresp_free(&r);
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"failure_callback\":{\"url\":\"%s/elsewhere\"}}", fa,
		 target);
	post_as(k, body, &r);
	is_problem(&r, 403, "failure_callback");
	it_hresp_free(&r);
	snprintf(body, sizeof(body), "[{\"function\":\"%s\"},{\"function\":\"%s\"}]", fa, fb);
	post_as(k, body, &r);
	is_problem(&r, 403, "[1].function");
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/async/%s/x", fb);
	it_http("POST", url, path, "text/plain", "hi", 2, (const char *const[]){k, NULL}, &r);
	is_problem(&r, 403, "function");
	it_hresp_free(&r);
	CHECK(it_calls_count() == before, "a 403 wrote rows");

	/* What its URL patterns allow does pass: a callback under /cb/. */
	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"callback\":\"%s/cb/done\"}", fa,
		 target);
	post_as(k, body, &r);
	CHECK(r.status == 202, "callback within the patterns: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/async/%s/x", fa);
	it_http("POST", url, path, "text/plain", "hi", 2, (const char *const[]){k, NULL}, &r);
	CHECK(r.status == 202, "transparent mode to a: %ld %s", r.status, r.body);
	it_hresp_free(&r);
}

/* Two clients: neither sees, cancels nor retries the other's calls, nor lists them; an admin
 * key sees and steers both. */
static void t_isolation(void)
{
	char ta[256], tb[256], tadm[256], idb[64], path[128], body[256];
	const char *ka, *kb, *kadm;
	struct hresp r;

	CHECK(it_admin("key create iso-a --function '*'", ta, sizeof(ta)) == 0, "key a");
	CHECK(it_admin("key create iso-b --function '*'", tb, sizeof(tb)) == 0, "key b");
	CHECK(it_admin("key create iso-admin --admin", tadm, sizeof(tadm)) == 0, "admin key");
	ka = bearer(0, ta);
	kb = bearer(1, tb);
	kadm = bearer(2, tadm);

	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"delay\":\"1h\"}", fa);
	post_as(kb, body, &r);
	CHECK(r.status == 202, "b enqueues: %ld %s", r.status, r.body);
	snprintf(idb, sizeof(idb), "%s", it_jstr(&r, "id"));
	it_hresp_free(&r);
	snprintf(path, sizeof(path), "/v1/calls/%s", idb);

	get_as(ka, "GET", path, &r);
	CHECK(r.status == 404, "a reads b's call: %ld", r.status);
	it_hresp_free(&r);
	get_as(ka, "DELETE", path, &r);
	CHECK(r.status == 404, "a cancels b's call: %ld", r.status);
	it_hresp_free(&r);
	get_as(ka, "GET", "/v1/calls?limit=1000", &r);
	CHECK(r.status == 200 && strstr(r.body, idb) == NULL, "a's list shows b's call");
	it_hresp_free(&r);
	it_field_is(idb, "state", "queued");

	get_as(kadm, "GET", "/v1/calls?limit=1000", &r);
	CHECK(r.status == 200 && strstr(r.body, idb) != NULL, "the admin's list lacks b's call");
	it_hresp_free(&r);
	get_as(kadm, "GET", path, &r);
	CHECK(r.status == 200, "the admin reads b's call: %ld", r.status);
	it_hresp_free(&r);
	get_as(kadm, "DELETE", path, &r);
	CHECK(r.status == 200, "the admin cancels b's call: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	it_field_is(idb, "state", "cancelled");

	snprintf(path, sizeof(path), "/v1/calls/%s/retry", idb);
	get_as(ka, "POST", path, &r);
	CHECK(r.status == 404, "a retries b's call: %ld", r.status);
	it_hresp_free(&r);
	it_field_is(idb, "state", "cancelled");
	get_as(kb, "POST", path, &r);
	CHECK(r.status == 202, "b retries its own call: %ld %s", r.status, r.body);
	it_hresp_free(&r);
	/* The admin's own calls carry its client name, not "everyone". */
	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"delay\":\"1h\"}", fb);
	post_as(kadm, body, &r);
	CHECK(r.status == 202, "admin enqueues to any function: %ld %s", r.status, r.body);
	if (r.status == 202)
		it_field_is(it_jstr(&r, "id"), "client", "iso-admin");
	it_hresp_free(&r);
}

/* A revoked key is refused on the very next request: by asyncgate-admin and by SQL. */
static void t_revoke(void)
{
	char token[256], list[8192], kid[32], args[128], body[256];
	const char *k;
	struct hresp r;
	const char *p[1];

	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"delay\":\"1h\"}", fa);
	CHECK(it_admin("key create revoke-me --function '*'", token, sizeof(token)) == 0, "key");
	k = bearer(0, token);
	post_as(k, body, &r);
	CHECK(r.status == 202, "before revocation: %ld", r.status);
	it_hresp_free(&r);
	snprintf(kid, sizeof(kid), "%.14s", token + 4); /* "k_" + 12 hex */
	CHECK(it_admin("key list", list, sizeof(list)) == 0 && strstr(list, kid) != NULL &&
		      strstr(list, token + 19) == NULL,
	      "key list shows the id and never the secret");
	snprintf(args, sizeof(args), "key revoke %s", kid);
	CHECK(it_admin(args, NULL, 0) == 0, "key revoke");
	post_as(k, body, &r);
	is_problem(&r, 401, "Authorization");
	it_hresp_free(&r);
	CHECK(it_admin(args, NULL, 0) == 1, "revoking twice says it was not live");
	CHECK(it_admin("key list", list, sizeof(list)) == 0 && strstr(list, kid) == NULL,
	      "key list still shows the revoked key");
	CHECK(it_admin("key list --all", list, sizeof(list)) == 0 && strstr(list, kid) != NULL,
	      "key list --all lacks the revoked key");

	/* The same through SQL alone. */
	{
		char *t = it_sql("SELECT token FROM ag_key_create('sql-key', '{*}')", 0, NULL);

		CHECK(t != NULL, "ag_key_create");
		if (t == NULL)
			return;
		k = bearer(1, t);
		post_as(k, body, &r);
		CHECK(r.status == 202, "a key made in SQL: %ld %s", r.status, r.body);
		it_hresp_free(&r);
		p[0] = t;
		CHECK(it_sql_long("SELECT count(*) FROM api_keys a WHERE strpos(a::text, $1) > 0 "
				  "OR a.hash = convert_to($1, 'UTF8')",
				  1, p) == 0,
		      "the token is stored somewhere in api_keys");
		snprintf(kid, sizeof(kid), "%.14s", t + 4);
		p[0] = kid;
		CHECK(it_sql_long("SELECT ag_key_revoke($1)::int", 1, p) == 1, "ag_key_revoke");
		post_as(k, body, &r);
		is_problem(&r, 401, "Authorization");
		it_hresp_free(&r);
		free(t);
	}
}

/* REMOTE_USER: a user with rules acts under its name; one without rules is 403; bad rules
 * names and bad arguments are refused by the tool. */
static void t_remote_user(void)
{
	char out[8192], body[256];
	const char *ev[2] = {"REMOTE_USER=carol", NULL};

	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"delay\":\"1h\"}", fa);
	it_cgi("POST", "/v1/calls", body, ev, out, sizeof(out));
	CHECK(strncmp(out, "Status: 403", 11) == 0 && strstr(out, "REMOTE_USER") != NULL,
	      "a user without rules: %.200s", out);
	CHECK(it_admin("user set carol --function 'nope-*'", NULL, 0) == 0, "user set");
	it_cgi("POST", "/v1/calls", body, ev, out, sizeof(out));
	CHECK(strncmp(out, "Status: 403", 11) == 0 && strstr(out, "\"field\":\"function\"") != NULL,
	      "a user outside its rules: %.200s", out);
	CHECK(it_admin("user set carol --function '*'", NULL, 0) == 0, "user set again");
	it_cgi("POST", "/v1/calls", body, ev, out, sizeof(out));
	CHECK(strncmp(out, "Status: 202", 11) == 0, "a user within its rules: %.200s", out);
	CHECK(it_admin("user list", out, sizeof(out)) == 0 && strstr(out, "carol") != NULL,
	      "user list lacks carol");
	CHECK(it_admin("user delete carol", NULL, 0) == 0, "user delete");
	it_cgi("POST", "/v1/calls", body, ev, out, sizeof(out));
	CHECK(strncmp(out, "Status: 403", 11) == 0, "a deleted user: %.200s", out);
	CHECK(it_admin("user delete carol", NULL, 0) == 1, "deleting twice");
	CHECK(it_admin("key create 'bad name!' --function '*'", NULL, 0) == 1,
	      "a client name the schema refuses");
	CHECK(it_admin("key create x --bogus", NULL, 0) == 2, "an unknown option");
	CHECK(it_admin("key", NULL, 0) == 2, "no verb");
}

/* auth = none and auth = remote_user, each in a configuration of its own (CGI). */
static void t_modes(void)
{
	char conf[512], cfvar[600], cmd[1400], out[8192], body[256];
	const char *ev[3] = {cfvar, NULL, NULL};
	const char *tmp = getenv("AG_TMP");

	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"delay\":\"1h\"}", fa);
	snprintf(conf, sizeof(conf), "%s/auth-none.conf", tmp != NULL ? tmp : "/tmp");
	snprintf(cmd, sizeof(cmd), "cp \"$ASYNCGATE_CONF\" %s && echo 'auth = none' >> %s", conf,
		 conf);
	CHECK(system(cmd) == 0, "write %s", conf);
	snprintf(cfvar, sizeof(cfvar), "ASYNCGATE_CONF=%s", conf);
	it_cgi("POST", "/v1/calls", body, ev, out, sizeof(out));
	CHECK(strncmp(out, "Status: 202", 11) == 0, "auth = none, no credentials: %.200s", out);
	{
		char id[64];
		const char *q = strstr(out, "\"id\":\"");

		snprintf(id, sizeof(id), "%.36s", q != NULL ? q + 6 : "");
		it_field_is(id, "client", "");
	}

	snprintf(conf, sizeof(conf), "%s/auth-user.conf", tmp != NULL ? tmp : "/tmp");
	snprintf(cmd, sizeof(cmd), "cp \"$ASYNCGATE_CONF\" %s && echo 'auth = remote_user' >> %s",
		 conf, conf);
	CHECK(system(cmd) == 0, "write %s", conf);
	snprintf(cfvar, sizeof(cfvar), "ASYNCGATE_CONF=%s", conf);
	{
		static char authz[256];

		snprintf(authz, sizeof(authz), "HTTP_AUTHORIZATION=Bearer %s",
			 getenv("AG_API_KEY"));
		ev[1] = authz;
	}
	it_cgi("POST", "/v1/calls", body, ev, out, sizeof(out));
	CHECK(strncmp(out, "Status: 401", 11) == 0 && strstr(out, "REMOTE_USER") != NULL,
	      "auth = remote_user ignores API keys: %.200s", out);
	ev[1] = "REMOTE_USER=alice";
	it_cgi("POST", "/v1/calls", body, ev, out, sizeof(out));
	CHECK(strncmp(out, "Status: 202", 11) == 0, "auth = remote_user, alice: %.200s", out);
}

/* asyncgate-admin signing-key: a pair whose public half signing-key public derives again. */
static void t_signing_key(void)
{
	char out[512], sk[128] = "", pk[128] = "", cmd[1024], again[256];

	CHECK(it_admin("signing-key new", out, sizeof(out)) == 0, "signing-key new");
	CHECK(sscanf(out, "signing_secret %127s public_key %127s", sk, pk) == 2 &&
		      strncmp(sk, "whsk_", 5) == 0 && strncmp(pk, "whpk_", 5) == 0,
	      "signing-key new printed: %s", out);
	snprintf(cmd, sizeof(cmd), "signing-key public <<'X'\n%s\nX", sk);
	CHECK(it_admin(cmd, again, sizeof(again)) == 0 && strcmp(again, pk) == 0,
	      "signing-key public gave %s, want %s", again, pk);
	CHECK(it_admin("signing-key public </dev/null", NULL, 0) == 2, "no key on stdin");
	CHECK(it_admin("signing-key public <<'X'\nwhsk_bad\nX", NULL, 0) == 1, "a bad key");
}

int main(void)
{
	unsigned char rnd[4];
	const char *p[2];
	char *ok;

	url = getenv("AG_URL");
	target = getenv("AG_TARGET");
	admin = getenv("AG_ADMIN");
	if (url == NULL || target == NULL || admin == NULL || getenv("AG_API_KEY") == NULL) {
		printf("not ok - test_auth setup: AG_URL, AG_TARGET, AG_ADMIN, AG_API_KEY unset\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(fa, sizeof(fa), "auth-a-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	snprintf(fb, sizeof(fb), "auth-b-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	p[0] = fa;
	p[1] = target;
	ok = it_sql("INSERT INTO functions (name, base_url) VALUES ($1, $2) RETURNING 1", 2, p);
	free(ok);
	p[0] = fb;
	ok = it_sql("INSERT INTO functions (name, base_url) VALUES ($1, $2) RETURNING 1", 2, p);
	free(ok);

	it_run("auth: no, unknown and malformed credentials are 401 and write nothing", t_401);
	it_run("auth: a key scoped to function a cannot call b, raw URLs or other callbacks (403)",
	       t_scope);
	it_run("auth: a client sees and steers only its own calls; an admin key all", t_isolation);
	it_run("auth: a revoked key is refused at once (asyncgate-admin and SQL); no token stored",
	       t_revoke);
	it_run("auth: REMOTE_USER rules, set, listed and deleted with asyncgate-admin",
	       t_remote_user);
	it_run("auth: auth = none and auth = remote_user", t_modes);
	it_run("admin: signing-key new and public make and derive an Ed25519 pair", t_signing_key);
	curl_global_cleanup();
	return it_finish();
}
