/* test_sign: outbound request signing end to end (real PostgreSQL, lighttpd, drainer and HTTP
 * targets): HMAC and Ed25519 signatures verified by targets that hold only the function's
 * secret or public key, secret rotation seen from both sides, a wrong public key refused, and
 * signing secrets absent from every log, status, summary and metrics output. */
#define _GNU_SOURCE
#include "itest.h"
#include "itest.c.inc"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sign.h"
#include "timeparse.h"

#define JSON "application/json"

static const char *url;	    /* lighttpd with spawned handlers */
static const char *target;  /* run.sh's HTTP target: knows only AG_TARGET_SECRET */
static const char *drainer; /* build/asyncgate-drainer */
static const char *token;   /* drain_token of the test configuration */
static const char *repo;
static const char *var; /* run.sh's temp directory: log/error.log and friends */
static char tmpdir[512];
static char drainer_log[600];

/* The keys of this run: HMAC secrets and two Ed25519 key pairs. */
static char whsec_old[128], whsec_new[128];
static char *whsk_a, *whpk_a, *whsk_b, *whpk_b;

/* A target of this test program: its own ag_target with its own keys. */
struct tgt {
	pid_t pid;
	char url[64];
	char log[600];
};

static struct tgt t_old, t_new, t_pka, t_pkb, t_both;

/* "whsec_" + base64 of n random bytes into out. */
static void new_whsec(char *out, size_t outsz, size_t n)
{
	unsigned char key[48];
	char b64[80];

	RAND_bytes(key, (int)n);
	EVP_EncodeBlock((unsigned char *)b64, key, (int)n);
	snprintf(out, outsz, "whsec_%s", b64);
}

/* A function named name calling base with signing secret secret, one attempt per call. */
static void function_add(const char *name, const char *base, const char *secret)
{
	it_sql_exec("INSERT INTO functions (name, base_url, signing_secret, max_attempts) "
		    "VALUES ($1, $2, $3, 1)",
		    3, (const char *const[]){name, base, secret});
}

/* POSTs a call to function fn at path; the new id goes to id (64 bytes), "" on failure. */
static void enqueue(const char *fn, const char *path, char *id)
{
	char body[512];
	struct hresp r;

	snprintf(body, sizeof(body), "{\"function\":\"%s\",\"path\":\"%s\",\"body\":{\"n\":1}}", fn,
		 path);
	it_http("POST", url, "/v1/calls", JSON, body, strlen(body), NULL, &r);
	CHECK(r.status == 202, "enqueue %s: status %ld: %s", fn, r.status, r.body ? r.body : "");
	snprintf(id, 64, "%s", r.status == 202 ? it_jstr(&r, "id") : "");
	it_hresp_free(&r);
}

/* Starts ag_target as name with the key flags args (NULL-terminated); false (reported) when it
 * does not come up. */
static bool tgt_start(struct tgt *t, const char *name, const char *const *args)
{
	char bin[600], portfile[600], out[600];
	int64_t end;

	snprintf(bin, sizeof(bin), "%s/build/ag_target", repo);
	snprintf(portfile, sizeof(portfile), "%s/%s.port", tmpdir, name);
	snprintf(t->log, sizeof(t->log), "%s/%s.jsonl", tmpdir, name);
	snprintf(out, sizeof(out), "%s/%s.out", tmpdir, name);
	unlink(portfile);
	t->pid = fork();
	if (t->pid == 0) {
		char *argv[24];
		int n = 0;
		int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		argv[n++] = bin;
		argv[n++] = "--port";
		argv[n++] = "0";
		argv[n++] = "--port-file";
		argv[n++] = portfile;
		argv[n++] = "--log";
		argv[n++] = t->log;
		for (int i = 0; args[i] != NULL && n < 23; i++)
			argv[n++] = (char *)args[i];
		argv[n] = NULL;
		execv(bin, argv);
		_exit(127);
	}
	/* ready when it has written its port (not a timing assertion: it only bounds the wait) */
	end = it_now_ms() + 10000;
	while (it_now_ms() < end) {
		FILE *f = fopen(portfile, "r");
		unsigned port = 0;

		if (f != NULL) {
			int got = fscanf(f, "%u", &port);

			fclose(f);
			if (got == 1 && port > 0) {
				snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%u", port);
				return true;
			}
		}
		if (waitpid(t->pid, NULL, WNOHANG) == t->pid) {
			t->pid = 0;
			break;
		}
		it_sleep_ms(20);
	}
	CHECK(false, "ag_target %s did not start (see %s)", name, out);
	return false;
}

/* SIGTERM; returns the exit status (ag_target exits 0 on SIGTERM), -1 if it was not running
 * or did not exit normally. */
static int tgt_stop(struct tgt *t)
{
	int status = 0;

	if (t->pid <= 0)
		return -1;
	kill(t->pid, SIGTERM);
	waitpid(t->pid, &status, 0);
	t->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The one request under path at target t must have carried call id with a valid signature
 * of the kinds want_kind; returns its webhook-signature (static, until the next call). */
static const char *check_hit(const struct tgt *t, const char *path, const char *id,
			     const char *want_kind)
{
	static char sig[512];
	struct json_object *h = it_hits(t->log, path);

	sig[0] = '\0';
	if (CHECK(json_object_array_length(h) == 1, "%zu requests on %s, want 1",
		  json_object_array_length(h), path)) {
		struct json_object *e = json_object_array_get_idx(h, 0);
		const char *s = it_jget(e, "headers.webhook-signature");

		it_jis(e, "headers.webhook-id", id);
		it_jis(e, "sig", strcmp(want_kind, "") == 0 ? "invalid" : "valid");
		it_jis(e, "sig_kind", want_kind);
		snprintf(sig, sizeof(sig), "%s", s != NULL ? s : "");
	}
	json_object_put(h);
	return sig;
}

/* Counts the space-separated entries of s that start with prefix. */
static int count_entries(const char *s, const char *prefix)
{
	int n = 0;

	for (const char *p = s; *p != '\0';) {
		size_t len;

		p += strspn(p, " ");
		len = strcspn(p, " ");
		if (len > strlen(prefix) && strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
		p += len;
	}
	return n;
}

/* ---- the tests ---- */

/* Key pairs and targets: each target knows one key, or (t_both) one HMAC secret and one
 * public key. The public key of t_pka is derived from the private key by sign_public_key. */
static void t_setup(void)
{
	char *derived;
	char both_secret[128];

	new_whsec(whsec_old, sizeof(whsec_old), 32);
	new_whsec(whsec_new, sizeof(whsec_new), 32);
	CHECK(sign_keygen(&whsk_a, &whpk_a) == 0, "sign_keygen");
	CHECK(sign_keygen(&whsk_b, &whpk_b) == 0, "sign_keygen");
	if (whsk_a == NULL || whsk_b == NULL)
		return;
	derived = sign_public_key(whsk_a);
	CHECK(derived != NULL && strcmp(derived, whpk_a) == 0, "sign_public_key: %s, want %s",
	      derived ? derived : "(null)", whpk_a);
	CHECK(strcmp(whpk_a, whpk_b) != 0, "two key pairs alike");
	snprintf(both_secret, sizeof(both_secret), "%s", whsec_new);
	tgt_start(&t_old, "target-old", (const char *const[]){"--secret", whsec_old, NULL});
	tgt_start(&t_new, "target-new", (const char *const[]){"--secret", whsec_new, NULL});
	tgt_start(&t_pka, "target-pka",
		  (const char *const[]){"--public-key", derived != NULL ? derived : whpk_a, NULL});
	tgt_start(&t_pkb, "target-pkb", (const char *const[]){"--public-key", whpk_b, NULL});
	tgt_start(&t_both, "target-both",
		  (const char *const[]){"--secret", both_secret, "--public-key", whpk_a, NULL});
	free(derived);
}

/* A function with an HMAC secret and an Ed25519 key sends both signatures; a target that
 * knows both verifies both, one that knows only the public key verifies the v1a one. */
static void t_both_kinds(void)
{
	const char *tg = it_tag('s');
	char fn[64], fn_pk[64], secret[300], path[128], id[64], id_pk[64];
	const char *sig;

	snprintf(fn, sizeof(fn), "both-%s", tg);
	snprintf(fn_pk, sizeof(fn_pk), "bothpk-%s", tg);
	snprintf(secret, sizeof(secret), "%s %s", whsec_new, whsk_a);
	function_add(fn, t_both.url, secret);
	function_add(fn_pk, t_pka.url, secret);
	snprintf(path, sizeof(path), "/verify/%s", tg);
	enqueue(fn, path, id);
	enqueue(fn_pk, path, id_pk);
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	it_field_is(id, "state", "succeeded");
	it_field_is(id_pk, "state", "succeeded");
	sig = check_hit(&t_both, path, id, "v1 v1a");
	CHECK(count_entries(sig, "v1,") == 1 && count_entries(sig, "v1a,") == 1 &&
		      strncmp(sig, "v1,", 3) == 0,
	      "webhook-signature is '%s', want v1,… v1a,…", sig);
	check_hit(&t_pka, path, id_pk, "v1a");
}

/* "whsec_new whsec_old": a target that knows only the old secret and one that knows only the
 * new one both verify; one that knows neither answers 401 and the call is dead. */
static void t_rotation(void)
{
	const char *tg = it_tag('s');
	char f_old[64], f_new[64], f_none[64], secret[300], path[128];
	char id_old[64], id_new[64], id_none[64];
	const char *sig;

	snprintf(f_old, sizeof(f_old), "rot-old-%s", tg);
	snprintf(f_new, sizeof(f_new), "rot-new-%s", tg);
	snprintf(f_none, sizeof(f_none), "rot-none-%s", tg);
	snprintf(secret, sizeof(secret), "%s %s", whsec_new, whsec_old);
	function_add(f_old, t_old.url, secret);
	function_add(f_new, t_new.url, secret);
	function_add(f_none, target, secret);
	snprintf(path, sizeof(path), "/verify/%s", tg);
	enqueue(f_old, path, id_old);
	enqueue(f_new, path, id_new);
	enqueue(f_none, path, id_none);
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	it_field_is(id_old, "state", "succeeded");
	it_field_is(id_new, "state", "succeeded");
	it_field_is(id_none, "state", "dead");
	it_field_is(id_none, "last_status", "401");
	sig = check_hit(&t_old, path, id_old, "v1");
	CHECK(count_entries(sig, "v1,") == 2, "webhook-signature is '%s', want two v1 entries",
	      sig);
	check_hit(&t_new, path, id_new, "v1");
}

/* A whsk_ function verifies at a target with the matching whpk_ and is refused (401: dead
 * after its one attempt, as the retry policy says of a 4xx) at one with another public key. */
static void t_ed25519(void)
{
	const char *tg = it_tag('s');
	char f_a[64], f_b[64], path[128], id_a[64], id_b[64];
	const char *sig;

	snprintf(f_a, sizeof(f_a), "ed-a-%s", tg);
	snprintf(f_b, sizeof(f_b), "ed-b-%s", tg);
	function_add(f_a, t_pka.url, whsk_a);
	function_add(f_b, t_pkb.url, whsk_a);
	snprintf(path, sizeof(path), "/verify/%s", tg);
	enqueue(f_a, path, id_a);
	enqueue(f_b, path, id_b);
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	it_field_is(id_a, "state", "succeeded");
	it_field_is(id_b, "state", "dead");
	it_field_is(id_b, "last_status", "401");
	it_field_is(id_b, "attempts", "1");
	sig = check_hit(&t_pka, path, id_a, "v1a");
	CHECK(count_entries(sig, "v1a,") == 1 && count_entries(sig, "v1,") == 0,
	      "webhook-signature is '%s', want one v1a entry", sig);
	check_hit(&t_pkb, path, id_b, "");
}

/* The whole of file path (caller frees), "" when it is missing. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *data = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&data, &len);
	char buf[65536];
	size_t n;

	if (f != NULL) {
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			fwrite(buf, 1, n, m);
		fclose(f);
	}
	fclose(m);
	return data;
}

/* Fails (naming the place, never printing the secret) when text holds any canary. */
static void no_canary(const char *what, const char *text, const char *const *canaries)
{
	for (size_t i = 0; canaries[i] != NULL; i++)
		CHECK(text == NULL || strstr(text, canaries[i]) == NULL,
		      "%s contains secret canary #%zu", what, i);
}

/* Signing secrets never show: functions with recognisable secrets (whsec_, whsk_, raw, and a
 * malformed list) are called through the drainer and through /v1/drain, and a call whose
 * insert the database refuses carries one in a header; then none of the handler, web server,
 * drainer and target logs, the status and list JSON, the drain summary, the error bodies,
 * /metrics or /v1/health contains any of them. */
static void t_no_leak(void)
{
	const char *tg = it_tag('s');
	char hmac_text[64], hmac_b64[96], hmac_secret[112], ed_text[40], ed_b64[64], ed_secret[80],
		raw_secret[64], bad_secret[256], bad_part[64];
	char f_good[64], f_raw[64], f_bad[64], path[512], auth[256], body[512], cons[64], sql[512];
	char ids[6][64];
	const char *canaries[9];
	struct hresp r;
	char *text, *err;
	int nid = 0;

	/* recognisable secrets, each also searched for in its other spellings */
	snprintf(hmac_text, sizeof(hmac_text), "leakcanary-hmac-%s", tg);
	EVP_EncodeBlock((unsigned char *)hmac_b64, (const unsigned char *)hmac_text,
			(int)strlen(hmac_text));
	snprintf(hmac_secret, sizeof(hmac_secret), "whsec_%s", hmac_b64);
	snprintf(ed_text, sizeof(ed_text), "leakcanary-ed-%s-xxxx", tg); /* 32 bytes */
	CHECK(strlen(ed_text) == 32, "seed length %zu", strlen(ed_text));
	EVP_EncodeBlock((unsigned char *)ed_b64, (const unsigned char *)ed_text, 32);
	snprintf(ed_secret, sizeof(ed_secret), "whsk_%s", ed_b64);
	snprintf(raw_secret, sizeof(raw_secret), "leakcanary-raw-%s", tg);
	snprintf(bad_part, sizeof(bad_part), "whsec_LEAKCANARY+bad!%s", tg);
	snprintf(bad_secret, sizeof(bad_secret), "%s %s", hmac_secret, bad_part);
	canaries[0] = hmac_text;
	canaries[1] = hmac_b64;
	canaries[2] = ed_text;
	canaries[3] = ed_b64;
	canaries[4] = raw_secret;
	canaries[5] = "LEAKCANARY";
	canaries[6] = "leakcanary";
	canaries[7] = bad_part;
	canaries[8] = NULL;
	CHECK(sign_secrets_valid(hmac_secret, NULL, 0) && sign_secrets_valid(ed_secret, NULL, 0) &&
		      !sign_secrets_valid(bad_secret, NULL, 0),
	      "the canary secrets are not what this test needs");

	snprintf(f_good, sizeof(f_good), "leak-good-%s", tg);
	snprintf(f_raw, sizeof(f_raw), "leak-raw-%s", tg);
	snprintf(f_bad, sizeof(f_bad), "leak-bad-%s", tg);
	snprintf(body, sizeof(body), "%s %s", hmac_secret, ed_secret);
	function_add(f_good, target, body);
	function_add(f_raw, target, raw_secret);
	function_add(f_bad, target, bad_secret);
	snprintf(path, sizeof(path), "/leak/%s", tg);

	/* through asyncgate-drainer --once (its own log) */
	enqueue(f_good, path, ids[nid++]);
	enqueue(f_raw, path, ids[nid++]);
	enqueue(f_bad, path, ids[nid++]);
	CHECK(it_drain_once(drainer_log) == 0, "drainer --once failed");
	/* through /v1/drain in the handler (the web server's error log) */
	enqueue(f_good, path, ids[nid++]);
	enqueue(f_raw, path, ids[nid++]);
	enqueue(f_bad, path, ids[nid++]);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	it_http("POST", url, "/v1/drain", NULL, "", 0, (const char *const[]){auth, NULL}, &r);
	CHECK(r.status == 200, "/v1/drain: %ld %s", r.status, r.body ? r.body : "");
	no_canary("the /v1/drain summary", r.body, canaries);
	it_hresp_free(&r);

	for (int i = 0; i < nid; i++) {
		bool bad = i % 3 == 2;

		it_field_is(ids[i], "state", bad ? "dead" : "succeeded");
		if (bad)
			it_field_is(ids[i], "last_error",
				    "the function's signing secret is malformed");
		snprintf(path, sizeof(path), "/v1/calls/%s", ids[i]);
		it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
		CHECK(r.status == 200, "GET %s: %ld", path, r.status);
		no_canary("a call's status JSON", r.body, canaries);
		it_hresp_free(&r);
	}
	snprintf(path, sizeof(path), "/v1/calls?function=%s", f_bad);
	it_http("GET", url, path, NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "GET %s: %ld", path, r.status);
	no_canary("the call list", r.body, canaries);
	it_hresp_free(&r);

	/* A call whose insert the database refuses (a constraint added for this test): its URL
	 * and Authorization header carry canaries, and PostgreSQL quotes the failing row. */
	snprintf(cons, sizeof(cons), "leak_probe_%s", tg);
	snprintf(sql, sizeof(sql),
		 "ALTER TABLE calls ADD CONSTRAINT %s CHECK (correlation_id IS DISTINCT FROM '%s')",
		 cons, cons);
	if (it_sql_exec(sql, 0, NULL)) {
		snprintf(body, sizeof(body),
			 "{\"target\":\"%s/leak/%s/%s\",\"correlation_id\":\"%s\","
			 "\"headers\":{\"Authorization\":\"Bearer %s\"}}",
			 target, tg, raw_secret, cons, hmac_secret);
		it_http("POST", url, "/v1/calls", JSON, body, strlen(body), NULL, &r);
		CHECK(r.status == 500, "refused insert: %ld %s", r.status, r.body ? r.body : "");
		no_canary("the error body of a refused insert", r.body, canaries);
		it_hresp_free(&r);
		snprintf(sql, sizeof(sql), "ALTER TABLE calls DROP CONSTRAINT %s", cons);
		it_sql_exec(sql, 0, NULL);
	}

	it_http("GET", url, "/metrics", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "/metrics: %ld", r.status);
	no_canary("/metrics", r.body, canaries);
	it_hresp_free(&r);
	it_http("GET", url, "/v1/health", NULL, NULL, 0, NULL, &r);
	CHECK(r.status == 200, "/v1/health: %ld", r.status);
	no_canary("/v1/health", r.body, canaries);
	it_hresp_free(&r);

	/* The logs: each must have seen this test (so that the search means something). */
	text = slurp(drainer_log);
	CHECK(strstr(text, ids[2]) != NULL && strstr(text, "secret 2") != NULL,
	      "the drainer log does not report the malformed secret of call %s", ids[2]);
	no_canary("the drainer log", text, canaries);
	free(text);
	snprintf(path, sizeof(path), "%s/log/error.log", var);
	text = slurp(path);
	CHECK(strstr(text, ids[5]) != NULL && strstr(text, "secret 2") != NULL,
	      "the handler log does not report the malformed secret of call %s", ids[5]);
	CHECK(strstr(text, cons) != NULL, "the handler log does not report the refused insert");
	no_canary("the handler log (lighttpd error.log)", text, canaries);
	free(text);
	snprintf(path, sizeof(path), "%s/log/standalone.log", var);
	text = slurp(path);
	no_canary("the standalone handler log", text, canaries);
	free(text);
	/* lighttpd writes its access log in the background (about once a second) */
	snprintf(path, sizeof(path), "%s/log/access.log", var);
	text = slurp(path);
	for (int i = 0; i < 50 && strstr(text, "/v1/drain") == NULL; i++) {
		free(text);
		it_sleep_ms(100);
		text = slurp(path);
	}
	CHECK(strstr(text, "/v1/drain") != NULL, "the access log has no /v1/drain");
	no_canary("the web server's access log", text, canaries);
	free(text);
	/* the target gets signatures, never a secret (the probe call was never sent) */
	err = getenv("AG_TARGET_LOG");
	text = slurp(err != NULL ? err : "/nonexistent");
	snprintf(path, sizeof(path), "/leak/%s", tg);
	CHECK(strstr(text, path) != NULL, "the target log has no %s", path);
	no_canary("the target's request log", text, canaries);
	free(text);
}

static void t_teardown(void)
{
	struct tgt *all[] = {&t_old, &t_new, &t_pka, &t_pkb, &t_both};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		int rc = tgt_stop(all[i]);

		CHECK(rc == 0, "target %zu: exit status %d after SIGTERM", i, rc);
	}
}

int main(void)
{
	const char *t = getenv("AG_TMP");

	url = getenv("AG_URL");
	target = getenv("AG_TARGET");
	drainer = getenv("AG_DRAINER");
	token = getenv("AG_DRAIN_TOKEN");
	repo = getenv("AG_REPO");
	var = getenv("AG_VAR");
	if (url == NULL || target == NULL || drainer == NULL || token == NULL || repo == NULL ||
	    var == NULL || PQstatus(it_db()) != CONNECTION_OK) {
		printf("not ok - test_sign setup: AG_URL, AG_TARGET, AG_DRAINER, AG_DRAIN_TOKEN, "
		       "AG_REPO, AG_VAR and a reachable database are required\n");
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s", t != NULL ? t : "/tmp");
	snprintf(drainer_log, sizeof(drainer_log), "%s/sign-drainer.log", tmpdir);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	it_run("sign: earlier tests' calls cancelled", it_clean_queue);
	it_run("sign: key pairs made; targets with one key each started", t_setup);
	it_run("sign: whsec_ + whsk_ gives v1 and v1a; each verifies with the function's secret / "
	       "public key",
	       t_both_kinds);
	it_run("sign: a rotated secret verifies at a target with only the old and one with only "
	       "the new",
	       t_rotation);
	it_run("sign: whsk_ verifies with the matching whpk_; another public key gets 401, dead",
	       t_ed25519);
	it_run("sign: secrets absent from logs, status, list, summary, errors, metrics, health",
	       t_no_leak);
	it_run("sign: targets stopped", t_teardown);
	curl_global_cleanup();
	free(whsk_a);
	free(whpk_a);
	free(whsk_b);
	free(whpk_b);
	PQfinish(it_db());
	return it_finish();
}
