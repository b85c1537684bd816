/* ag_target: a local HTTP target with canned behaviours that logs every request it receives. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#ifndef MHD_HTTP_CONTENT_TOO_LARGE /* before libmicrohttpd 0.9.74 */
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif

#define BODY_MAX (64u * 1024 * 1024)
#define BIG_MAX (1024ull * 1024 * 1024)
#define BIG_BLOCK (64 * 1024)
#define SLOW_MAX_MS 86400000ul
#define SIG_TOLERANCE_S 300
#define DEMO_BODY_MAX 200
#define CONN_LIMIT 2048
#define CONN_TIMEOUT_S 120
#define KEYS_MAX 16 /* --secret and --public-key entries, together */
#define ED25519_LEN 32
#define ED25519_SIG_LEN 64

/* One request: created by the URI log callback, freed when MHD reports it completed. */
struct rq {
	int64_t t_us; /* arrival, CLOCK_REALTIME */
	char *uri;    /* owned; raw request target, query included */
	char *body;   /* owned; NUL-terminated for convenience, body_len counts the real bytes */
	size_t body_len;
	size_t body_cap;
	bool too_big; /* body exceeded BODY_MAX; the rest was discarded */
	bool started; /* the access handler has seen the headers */
};

/* A /flaky key and how many requests it has seen. */
struct flaky {
	char *key;
	unsigned long seen;
	struct flaky *next;
};

/* Requests of one /conc key being answered now, and the most there ever were at once. */
struct conc {
	char *key;
	long cur, max;
	struct conc *next;
};

/* A key /verify accepts: an HMAC key (--secret) or an Ed25519 public key (--public-key). */
struct vkey {
	bool ed25519;
	unsigned char *key; /* owned; HMAC key bytes */
	size_t key_len;
	EVP_PKEY *pkey; /* owned; Ed25519 public key (read-only once the threads run) */
};

/* The program's state: options and the resources shared by the connection threads. */
struct target {
	unsigned int port;
	const char *bind;
	const char *log_path;
	const char *port_file;
	bool demo;
	struct vkey keys[KEYS_MAX];
	int nkeys;
	int log_fd; /* -1 without --log */
	pthread_mutex_t log_lock;
	pthread_mutex_t out_lock;
	pthread_mutex_t flaky_lock;
	struct flaky *flaky;
	struct conc *conc; /* /conc counters, under flaky_lock */
	atomic_bool stopping;
};

static struct target tg = {
	.bind = "127.0.0.1",
	.log_fd = -1,
	.log_lock = PTHREAD_MUTEX_INITIALIZER,
	.out_lock = PTHREAD_MUTEX_INITIALIZER,
	.flaky_lock = PTHREAD_MUTEX_INITIALIZER,
};

static void oom(void)
{
	fputs("ag_target: out of memory\n", stderr);
	abort();
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom();
	return p;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Returns a new NUL-terminated string of standard base64 (no newlines); caller frees. */
static char *b64_encode(const void *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	/* len is at most BODY_MAX plus two short headers, well inside an int. */
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

/* Decodes padded base64 into a new buffer; returns NULL on bad input. Caller frees. */
static unsigned char *b64_decode(const char *s, size_t *out_len)
{
	size_t len = strlen(s);
	size_t pad = 0;
	unsigned char *out;
	int n;

	if (len == 0 || len % 4 != 0 || len > INT_MAX)
		return NULL;
	while (pad < 2 && s[len - 1 - pad] == '=')
		pad++;
	out = xmalloc(len / 4 * 3);
	n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the '=' padding as zero bytes. */
	*out_len = (size_t)n - pad;
	return out;
}

/* Writes all of buf, retrying short writes; returns 0 or -1. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * path_rest: when path is name or starts with name + "/", returns what follows (after the
 * slash, or "" for an exact match); otherwise NULL.
 */
static const char *path_rest(const char *path, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(path, name, n) != 0)
		return NULL;
	if (path[n] == '\0')
		return path + n;
	if (path[n] == '/')
		return path + n + 1;
	return NULL;
}

/* Parses a decimal segment ending at '/' or NUL and advances *p past it; returns 0 or -1. */
static int seg_ulong(const char **p, unsigned long long max, unsigned long long *out)
{
	const char *s = *p;
	unsigned long long v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	while (isdigit((unsigned char)*s)) {
		unsigned long long d = (unsigned long long)(*s - '0');

		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
		s++;
	}
	if (*s != '\0' && *s != '/')
		return -1;
	*p = *s == '/' ? s + 1 : s;
	*out = v;
	return 0;
}

/* Copies a non-numeric segment ending at '/' or NUL and advances *p; returns new string or NULL. */
static char *seg_str(const char **p)
{
	const char *s = *p;
	size_t n = strcspn(s, "/");
	char *out;

	if (n == 0)
		return NULL;
	out = xmalloc(n + 1);
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s[n] == '/' ? s + n + 1 : s + n;
	return out;
}

/* Returns how many requests key has seen, this one included. */
static unsigned long flaky_count(const char *key)
{
	struct flaky *f;
	unsigned long seen;

	pthread_mutex_lock(&tg.flaky_lock);
	for (f = tg.flaky; f != NULL; f = f->next) {
		if (strcmp(f->key, key) == 0)
			break;
	}
	if (f == NULL) {
		f = xmalloc(sizeof(*f));
		f->key = xstrdup(key);
		f->seen = 0;
		f->next = tg.flaky;
		tg.flaky = f;
	}
	seen = ++f->seen;
	pthread_mutex_unlock(&tg.flaky_lock);
	return seen;
}

/* Adds delta to the number of key's requests in progress; returns the most ever seen. */
static long conc_add(const char *key, long delta)
{
	struct conc *k;
	long max;

	pthread_mutex_lock(&tg.flaky_lock);
	for (k = tg.conc; k != NULL; k = k->next) {
		if (strcmp(k->key, key) == 0)
			break;
	}
	if (k == NULL) {
		k = xmalloc(sizeof(*k));
		k->key = xstrdup(key);
		k->cur = k->max = 0;
		k->next = tg.conc;
		tg.conc = k;
	}
	k->cur += delta;
	if (k->cur > k->max)
		k->max = k->cur;
	max = k->max;
	pthread_mutex_unlock(&tg.flaky_lock);
	return max;
}

static void flaky_free_all(void)
{
	while (tg.conc != NULL) {
		struct conc *next = tg.conc->next;

		free(tg.conc->key);
		free(tg.conc);
		tg.conc = next;
	}
	while (tg.flaky != NULL) {
		struct flaky *next = tg.flaky->next;

		free(tg.flaky->key);
		free(tg.flaky);
		tg.flaky = next;
	}
}

/* Whether the Ed25519 signature of base64 b64 (n chars) over content verifies with k. */
static bool ed25519_ok(const struct vkey *k, const char *b64, size_t n, const char *content,
		       size_t content_len)
{
	char *s = xmalloc(n + 1);
	unsigned char *sig;
	size_t sig_len = 0;
	EVP_MD_CTX *ctx;
	bool ok;

	memcpy(s, b64, n);
	s[n] = '\0';
	sig = b64_decode(s, &sig_len);
	free(s);
	if (sig == NULL || sig_len != ED25519_SIG_LEN) {
		free(sig);
		return false;
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)content, content_len) == 1;
	EVP_MD_CTX_free(ctx);
	free(sig);
	return ok;
}

/*
 * Standard Webhooks (https://www.standardwebhooks.com/): the signed content is
 * "<webhook-id>.<webhook-timestamp>.<body>"; webhook-signature holds space-separated entries,
 * "v1,<base64 HMAC-SHA256>" and "v1a,<base64 Ed25519>", and the timestamp must be within
 * SIG_TOLERANCE_S of now. Valid when one entry verifies with one configured key; kinds (at
 * least 8 bytes) gets the kinds that did: "v1", "v1a", "v1 v1a" or "".
 */
static const char *sig_check(struct MHD_Connection *c, const struct rq *r, char *kinds)
{
	const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-id");
	const char *ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-timestamp");
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-signature");
	char *expected[KEYS_MAX] = {NULL};
	char *content, *end;
	size_t id_len, ts_len, content_len;
	long long t;
	bool v1 = false, v1a = false;

	kinds[0] = '\0';
	if (id == NULL || ts == NULL || sig == NULL)
		return "missing";
	if (tg.nkeys == 0)
		return "unchecked";
	errno = 0;
	t = strtoll(ts, &end, 10);
	if (errno != 0 || end == ts || *end != '\0')
		return "invalid";
	if (llabs(t - (long long)time(NULL)) > SIG_TOLERANCE_S)
		return "invalid";

	id_len = strlen(id);
	ts_len = strlen(ts);
	content_len = id_len + 1 + ts_len + 1 + r->body_len;
	content = xmalloc(content_len);
	memcpy(content, id, id_len);
	content[id_len] = '.';
	memcpy(content + id_len + 1, ts, ts_len);
	content[id_len + 1 + ts_len] = '.';
	if (r->body_len > 0)
		memcpy(content + id_len + ts_len + 2, r->body, r->body_len);
	for (int k = 0; k < tg.nkeys; k++) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int mac_len = 0;

		if (!tg.keys[k].ed25519 &&
		    HMAC(EVP_sha256(), tg.keys[k].key, (int)tg.keys[k].key_len,
			 (unsigned char *)content, content_len, mac, &mac_len) != NULL)
			expected[k] = b64_encode(mac, mac_len);
	}

	for (const char *p = sig; *p != '\0';) {
		size_t n;

		p += strspn(p, " ");
		n = strcspn(p, " ");
		for (int k = 0; k < tg.nkeys && n > 0; k++) {
			const struct vkey *key = &tg.keys[k];

			if (key->ed25519 && n > 4 && strncmp(p, "v1a,", 4) == 0 &&
			    ed25519_ok(key, p + 4, n - 4, content, content_len))
				v1a = true;
			if (expected[k] != NULL && n == 3 + strlen(expected[k]) &&
			    strncmp(p, "v1,", 3) == 0 &&
			    CRYPTO_memcmp(p + 3, expected[k], n - 3) == 0)
				v1 = true;
		}
		p += n;
	}
	for (int k = 0; k < tg.nkeys; k++)
		free(expected[k]);
	free(content);
	snprintf(kinds, 8, "%s%s%s", v1 ? "v1" : "", v1 && v1a ? " " : "", v1a ? "v1a" : "");
	return v1 || v1a ? "valid" : "invalid";
}

/* Adds one header to the JSON object in cls, lower-casing the name and joining repeats. */
static enum MHD_Result header_add(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	struct json_object *hdrs = cls;
	struct json_object *old;
	char *name = xstrdup(key);

	(void)kind;
	if (value == NULL)
		value = "";
	for (char *p = name; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (json_object_object_get_ex(hdrs, name, &old)) {
		const char *prev = json_object_get_string(old);
		size_t plen = strlen(prev), vlen = strlen(value);
		char *joined = xmalloc(plen + 2 + vlen + 1);

		memcpy(joined, prev, plen);
		memcpy(joined + plen, ", ", 2);
		memcpy(joined + plen + 2, value, vlen + 1);
		json_object_object_add(hdrs, name, json_object_new_string(joined));
		free(joined);
	} else {
		json_object_object_add(hdrs, name, json_object_new_string(value));
	}
	free(name);
	return MHD_YES;
}

/* Appends the request's JSON line to --log with one write() under the log lock. */
static void log_request(struct MHD_Connection *c, const struct rq *r, const char *method,
			const char *path, size_t path_len, const char *query, const char *sig,
			const char *kinds)
{
	struct json_object *o = json_object_new_object();
	struct json_object *hdrs = json_object_new_object();
	char *b64 = b64_encode(r->body, r->body_len);
	const char *line;
	size_t len;

	MHD_get_connection_values(c, MHD_HEADER_KIND, header_add, hdrs);
	json_object_object_add(o, "t_us", json_object_new_int64(r->t_us));
	json_object_object_add(o, "method", json_object_new_string(method));
	json_object_object_add(o, "path", json_object_new_string_len(path, (int)path_len));
	json_object_object_add(o, "query", json_object_new_string(query));
	json_object_object_add(o, "headers", hdrs);
	json_object_object_add(o, "body_base64", json_object_new_string(b64));
	json_object_object_add(o, "body_size", json_object_new_int64((int64_t)r->body_len));
	json_object_object_add(o, "sig", json_object_new_string(sig));
	json_object_object_add(o, "sig_kind", json_object_new_string(kinds));
	free(b64);

	line = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	pthread_mutex_lock(&tg.log_lock);
	if (write_all(tg.log_fd, line, len) < 0 || write_all(tg.log_fd, "\n", 1) < 0)
		fprintf(stderr, "ag_target: log write failed: %s\n", strerror(errno));
	pthread_mutex_unlock(&tg.log_lock);
	json_object_put(o);
}

/* Prints "call <id> outcome=<o> status=<s>" for a callback envelope; returns false if not one. */
static bool demo_callback(const struct rq *r)
{
	struct json_object *env, *id, *outcome, *resp, *status;
	bool ok = false;

	env = json_tokener_parse(r->body_len > 0 ? r->body : "");
	if (env == NULL)
		return false;
	if (json_object_object_get_ex(env, "call_id", &id) &&
	    json_object_object_get_ex(env, "outcome", &outcome) &&
	    json_object_is_type(outcome, json_type_string)) {
		const char *st = "-";

		if (json_object_object_get_ex(env, "response", &resp) &&
		    json_object_object_get_ex(resp, "status", &status))
			st = json_object_get_string(status);
		pthread_mutex_lock(&tg.out_lock);
		printf("demo-target: callback for call %s outcome=%s status=%s\n",
		       json_object_get_string(id), json_object_get_string(outcome), st);
		fflush(stdout);
		pthread_mutex_unlock(&tg.out_lock);
		ok = true;
	}
	json_object_put(env);
	return ok;
}

/* Prints the one human line per request that --demo promises. */
static void demo_print(struct MHD_Connection *c, const struct rq *r, const char *method,
		       const char *path, size_t path_len)
{
	const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Async-Call-Id");
	const char *attempt = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Async-Attempt");
	char preview[DEMO_BODY_MAX + 1];
	size_t n = r->body_len < DEMO_BODY_MAX ? r->body_len : DEMO_BODY_MAX;

	if (path_len >= 9 && strncmp(path, "/callback", 9) == 0 && demo_callback(r))
		return;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)r->body[i];

		preview[i] = ch < 0x20 || ch == 0x7f ? '.' : (char)ch;
	}
	preview[n] = '\0';
	pthread_mutex_lock(&tg.out_lock);
	printf("demo-target: %s %.*s Async-Call-Id=%s Async-Attempt=%s body=%s\n", method,
	       (int)path_len, path, id != NULL ? id : "-", attempt != NULL ? attempt : "-",
	       preview);
	fflush(stdout);
	pthread_mutex_unlock(&tg.out_lock);
}

/* Queues a copied body with the given status, content type and optional Retry-After. */
static enum MHD_Result respond(struct MHD_Connection *c, unsigned int status, const char *ctype,
			       const char *body, const char *retry_after)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (retry_after != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned int status, const char *body)
{
	return respond(c, status, "application/json", body, NULL);
}

/* Answers <code> with "status <code>" and the retry_after query rule. */
static enum MHD_Result respond_status(struct MHD_Connection *c, unsigned long long code)
{
	const char *ra = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "retry_after");
	char body[32];

	snprintf(body, sizeof(body), "status %llu", code);
	return respond(c, (unsigned int)code, "text/plain", body, ra);
}

static enum MHD_Result respond_bad(struct MHD_Connection *c, const char *what)
{
	return respond(c, MHD_HTTP_BAD_REQUEST, "text/plain", what, NULL);
}

static enum MHD_Result ep_default(struct MHD_Connection *c, const char *path, size_t path_len)
{
	struct json_object *o = json_object_new_object();
	enum MHD_Result ret;

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "path", json_object_new_string_len(path, (int)path_len));
	ret = respond_json(c, MHD_HTTP_OK,
			   json_object_to_json_string_ext(
				   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return ret;
}

static enum MHD_Result ep_status(struct MHD_Connection *c, const char *rest)
{
	unsigned long long code;

	if (seg_ulong(&rest, 999, &code) < 0 || code < 100 || code > 599)
		return respond_bad(c, "bad status code");
	return respond_status(c, code);
}

static enum MHD_Result ep_flaky(struct MHD_Connection *c, const char *rest)
{
	unsigned long long n, code;
	unsigned long seen;
	char *key = seg_str(&rest);

	if (key == NULL)
		return respond_bad(c, "bad flaky key");
	if (seg_ulong(&rest, ULONG_MAX, &n) < 0 || seg_ulong(&rest, 999, &code) < 0 || code < 100 ||
	    code > 599) {
		free(key);
		return respond_bad(c, "bad flaky count or status code");
	}
	seen = flaky_count(key);
	free(key);
	if (seen <= n)
		return respond_status(c, code);
	return respond_json(c, MHD_HTTP_OK, "{\"ok\":true}");
}

/* /reply/<status>: answers status with the request's body as its own (the bytes as sent), the
 * Content-Type of ?ct= (default application/octet-stream), and these headers in this order:
 * X-First: 1, Set-Cookie: a=1, Set-Cookie: b=2, X-Mixed-CASE: Keep This. For the tests of
 * GET /v1/calls/{id}/response. */
static enum MHD_Result ep_reply(struct MHD_Connection *c, const struct rq *r, const char *rest)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ct");
	unsigned long long code;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (seg_ulong(&rest, 999, &code) < 0 || code < 200 || code > 599)
		return respond_bad(c, "bad status code");
	resp = MHD_create_response_from_buffer(r->body_len, r->body != NULL ? r->body : (void *)"",
					       MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				ct != NULL ? ct : "application/octet-stream");
	MHD_add_response_header(resp, "X-First", "1");
	MHD_add_response_header(resp, "Set-Cookie", "a=1");
	MHD_add_response_header(resp, "Set-Cookie", "b=2");
	MHD_add_response_header(resp, "X-Mixed-CASE", "Keep This");
	ret = MHD_queue_response(c, (unsigned int)code, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Sleeps in short slices so that SIGTERM does not wait for a long /slow to finish. */
static enum MHD_Result ep_slow(struct MHD_Connection *c, const char *rest)
{
	unsigned long long ms;

	if (seg_ulong(&rest, SLOW_MAX_MS, &ms) < 0)
		return respond_bad(c, "bad milliseconds");
	while (ms > 0 && !atomic_load(&tg.stopping)) {
		unsigned long long step = ms < 100 ? ms : 100;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(step * 1000000)};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ms -= step;
	}
	/* If the client left meanwhile, MHD fails the send and closes; nothing else to do. */
	return respond_json(c, MHD_HTTP_OK, "{\"ok\":true}");
}

/* /conc/MS/KEY: counts the requests of KEY in progress, answers after MS ms (as /slow);
 * /conc-max/KEY answers {"max": the most KEY ever had in progress at once}. */
static enum MHD_Result ep_conc(struct MHD_Connection *c, const char *rest)
{
	unsigned long long ms;
	char body[64];
	long max;

	if (seg_ulong(&rest, SLOW_MAX_MS, &ms) < 0)
		return respond_bad(c, "bad milliseconds");
	conc_add(rest, 1);
	while (ms > 0 && !atomic_load(&tg.stopping)) {
		unsigned long long step = ms < 100 ? ms : 100;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(step * 1000000)};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ms -= step;
	}
	max = conc_add(rest, -1);
	snprintf(body, sizeof(body), "{\"ok\":true,\"max\":%ld}", max);
	return respond_json(c, MHD_HTTP_OK, body);
}

static enum MHD_Result ep_conc_max(struct MHD_Connection *c, const char *key)
{
	char body[64];

	snprintf(body, sizeof(body), "{\"max\":%ld}", conc_add(key, 0));
	return respond_json(c, MHD_HTTP_OK, body);
}

static ssize_t big_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	uint64_t total = (uintptr_t)cls;
	size_t n;

	if (pos >= total)
		return MHD_CONTENT_READER_END_OF_STREAM;
	n = total - pos < max ? (size_t)(total - pos) : max;
	memset(buf, 'x', n);
	return (ssize_t)n;
}

static enum MHD_Result ep_big(struct MHD_Connection *c, const char *rest)
{
	unsigned long long bytes;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (seg_ulong(&rest, BIG_MAX, &bytes) < 0)
		return respond_bad(c, "bad size (at most 1 GiB)");
	/* The size rides in the closure pointer (1 GiB fits any uintptr_t), so nothing to free. */
	resp = MHD_create_response_from_callback(bytes, BIG_BLOCK, big_read,
						 (void *)(uintptr_t)bytes, NULL);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* 3xx (302 unless ?code= says) to the URL in ?to= (URL-decoded), for redirect tests. */
static enum MHD_Result ep_redirect(struct MHD_Connection *c)
{
	const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
	const char *cs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "code");
	unsigned long long code = 302;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (to == NULL || *to == '\0')
		return respond_bad(c, "redirect needs ?to=URL");
	if (cs != NULL && (seg_ulong(&cs, 999, &code) < 0 || code < 300 || code > 399))
		return respond_bad(c, "bad redirect code (300..399)");
	resp = MHD_create_response_from_buffer(strlen("redirect\n"), (void *)"redirect\n",
					       MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, to) != MHD_YES) {
		MHD_destroy_response(resp);
		return respond_bad(c, "bad redirect URL");
	}
	ret = MHD_queue_response(c, (unsigned int)code, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result ep_verify(struct MHD_Connection *c, const char *sig)
{
	if (tg.nkeys == 0)
		return respond_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "{\"ok\":false,\"error\":\"no --secret or --public-key\"}");
	if (strcmp(sig, "valid") == 0)
		return respond_json(c, MHD_HTTP_OK, "{\"ok\":true,\"sig\":\"valid\"}");
	if (strcmp(sig, "missing") == 0)
		return respond_json(c, MHD_HTTP_UNAUTHORIZED, "{\"ok\":false,\"sig\":\"missing\"}");
	return respond_json(c, MHD_HTTP_UNAUTHORIZED, "{\"ok\":false,\"sig\":\"invalid\"}");
}

/* Handles a request whose body has been read completely: log it, then answer. */
static enum MHD_Result dispatch(struct MHD_Connection *c, struct rq *r, const char *url,
				const char *method)
{
	const char *uri = r->uri != NULL ? r->uri : url;
	const char *q = strchr(uri, '?');
	size_t path_len = q != NULL ? (size_t)(q - uri) : strlen(uri);
	const char *query = q != NULL ? q + 1 : "";
	char *path;
	const char *sig, *rest;
	char kinds[8];
	enum MHD_Result ret;

	if (r->too_big)
		return respond(c, MHD_HTTP_CONTENT_TOO_LARGE, "text/plain", "body too large", NULL);

	sig = sig_check(c, r, kinds);
	if (tg.log_fd >= 0)
		log_request(c, r, method, uri, path_len, query, sig, kinds);
	if (tg.demo)
		demo_print(c, r, method, uri, path_len);

	path = xmalloc(path_len + 1);
	memcpy(path, uri, path_len);
	path[path_len] = '\0';
	if ((rest = path_rest(path, "/status")) != NULL)
		ret = ep_status(c, rest);
	else if ((rest = path_rest(path, "/flaky")) != NULL)
		ret = ep_flaky(c, rest);
	else if ((rest = path_rest(path, "/slow")) != NULL)
		ret = ep_slow(c, rest);
	else if ((rest = path_rest(path, "/conc")) != NULL)
		ret = ep_conc(c, rest);
	else if ((rest = path_rest(path, "/conc-max")) != NULL)
		ret = ep_conc_max(c, rest);
	else if ((rest = path_rest(path, "/big")) != NULL)
		ret = ep_big(c, rest);
	else if ((rest = path_rest(path, "/reply")) != NULL)
		ret = ep_reply(c, r, rest);
	else if (path_rest(path, "/reset") != NULL)
		ret = MHD_NO; /* MHD closes the connection without answering */
	else if (path_rest(path, "/verify") != NULL)
		ret = ep_verify(c, sig);
	else if (path_rest(path, "/redirect") != NULL)
		ret = ep_redirect(c);
	else
		ret = ep_default(c, path, path_len);
	free(path);
	return ret;
}

/* MHD_OPTION_URI_LOG_CALLBACK: sees the raw request target, query included, before parsing. */
static void *rq_new(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct rq *r = xmalloc(sizeof(*r));

	(void)cls;
	(void)c;
	memset(r, 0, sizeof(*r));
	r->t_us = now_us();
	r->uri = xstrdup(uri != NULL ? uri : "/");
	return r;
}

static void rq_free(void *cls, struct MHD_Connection *c, void **req_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct rq *r = *req_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r == NULL)
		return;
	free(r->uri);
	free(r->body);
	free(r);
	*req_cls = NULL;
}

static void rq_append(struct rq *r, const char *data, size_t len)
{
	if (r->too_big || len > BODY_MAX - r->body_len) {
		r->too_big = true;
		return;
	}
	if (r->body_len + len + 1 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 4096;

		while (cap < r->body_len + len + 1)
			cap *= 2;
		r->body = realloc(r->body, cap);
		if (r->body == NULL)
			oom();
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	struct rq *r = *req_cls;

	(void)cls;
	(void)version;
	if (r == NULL) {
		r = rq_new(NULL, url, c);
		*req_cls = r;
	}
	if (!r->started) {
		/* First call: headers only. Returning MHD_YES also answers Expect: 100-continue. */
		r->started = true;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		rq_append(r, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	return dispatch(c, r, url, method);
}

static void usage(void)
{
	fputs("usage: ag_target --port N [--bind ADDR] [--log FILE] [--secret whsec_...]...\n"
	      "                 [--public-key whpk_...]... [--demo] [--port-file FILE]\n",
	      stderr);
	exit(2);
}

/* The next space-separated entry of *p as a new string (advancing *p), or NULL at the end. */
static char *next_entry(const char **p)
{
	size_t n;
	char *out;

	*p += strspn(*p, " ");
	n = strcspn(*p, " ");
	if (n == 0)
		return NULL;
	out = xmalloc(n + 1);
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n;
	return out;
}

static struct vkey *new_key(void)
{
	if (tg.nkeys == KEYS_MAX) {
		fprintf(stderr, "ag_target: at most %d keys\n", KEYS_MAX);
		exit(2);
	}
	return &tg.keys[tg.nkeys++];
}

/* Takes a --secret value: space-separated entries, each "whsec_" + base64 of the key, or else
 * the raw bytes of the entry. Returns 0, or -1 on bad base64. */
static int add_secrets(const char *s)
{
	char *e;

	while ((e = next_entry(&s)) != NULL) {
		struct vkey *k = new_key();

		if (strncmp(e, "whsec_", 6) == 0) {
			k->key = b64_decode(e + 6, &k->key_len);
		} else {
			k->key_len = strlen(e);
			k->key = xmalloc(k->key_len);
			memcpy(k->key, e, k->key_len);
		}
		free(e);
		if (k->key == NULL)
			return -1;
	}
	return 0;
}

/* Takes a --public-key value: space-separated "whpk_" + base64 of a 32-byte Ed25519 public
 * key. Returns 0, or -1 on a malformed entry. */
static int add_public_keys(const char *s)
{
	char *e;

	while ((e = next_entry(&s)) != NULL) {
		struct vkey *k = new_key();
		unsigned char *raw = NULL;
		size_t len = 0;

		k->ed25519 = true;
		if (strncmp(e, "whpk_", 5) == 0)
			raw = b64_decode(e + 5, &len);
		free(e);
		if (raw != NULL && len == ED25519_LEN)
			k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, len);
		free(raw);
		if (k->pkey == NULL)
			return -1;
	}
	return 0;
}

static void keys_free(void)
{
	for (int i = 0; i < tg.nkeys; i++) {
		free(tg.keys[i].key);
		EVP_PKEY_free(tg.keys[i].pkey);
	}
	tg.nkeys = 0;
}

static void parse_args(int argc, char **argv)
{
	bool have_port = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--demo") == 0) {
			tg.demo = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--port") == 0) {
			char *end;
			unsigned long p;

			errno = 0;
			p = strtoul(v, &end, 10);
			if (errno != 0 || end == v || *end != '\0' || p > 65535)
				usage();
			tg.port = (unsigned int)p;
			have_port = true;
		} else if (strcmp(a, "--bind") == 0) {
			tg.bind = v;
		} else if (strcmp(a, "--log") == 0) {
			tg.log_path = v;
		} else if (strcmp(a, "--port-file") == 0) {
			tg.port_file = v;
		} else if (strcmp(a, "--secret") == 0) {
			if (add_secrets(v) < 0) {
				fputs("ag_target: --secret: bad base64 after whsec_\n", stderr);
				exit(2);
			}
		} else if (strcmp(a, "--public-key") == 0) {
			if (add_public_keys(v) < 0) {
				fputs("ag_target: --public-key: not whpk_ + base64 of 32 bytes\n",
				      stderr);
				exit(2);
			}
		} else {
			usage();
		}
	}
	if (!have_port)
		usage();
}

/* Writes "<port>\n" to FILE.tmp and renames it, so a reader never sees a partial file. */
static int write_port_file(const char *file, unsigned int port)
{
	size_t n = strlen(file) + 5;
	char *tmp = xmalloc(n);
	FILE *f;
	int rc = -1;

	snprintf(tmp, n, "%s.tmp", file);
	f = fopen(tmp, "w");
	if (f == NULL)
		goto out;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0)
		goto out;
	if (rename(tmp, file) != 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "ag_target: port file %s: %s\n", file, strerror(errno));
	free(tmp);
	return rc;
}

/* MHD's own complaints (bad requests, the deliberate /reset close), marked as coming from it. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("ag_target: mhd: ", stderr);
	vfprintf(stderr, fmt, ap);
}

/* Starts the daemon on --bind (IPv4 or IPv6 literal) and --port; NULL after logging why not. */
static struct MHD_Daemon *start_daemon(void)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	const struct sockaddr *sa;
	struct MHD_Daemon *d;
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			     MHD_USE_POLL | MHD_USE_ERROR_LOG;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, tg.bind, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)tg.port);
		sa = (const struct sockaddr *)&sin;
	} else if (inet_pton(AF_INET6, tg.bind, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)tg.port);
		sa = (const struct sockaddr *)&sin6;
		flags |= MHD_USE_IPv6;
	} else {
		fprintf(stderr, "ag_target: --bind %s: not an IP address\n", tg.bind);
		return NULL;
	}
	/*
	 * The logger must come first to catch option errors. poll, because select() caps
	 * descriptors at FD_SETSIZE, below the connection limit.
	 */
	/* clang-format off */
	d = MHD_start_daemon(flags, (uint16_t)tg.port, NULL, NULL, on_request, NULL,
			     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, sa,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONN_LIMIT,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONN_TIMEOUT_S,
			     MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
			     MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024),
			     MHD_OPTION_URI_LOG_CALLBACK, rq_new, NULL,
			     MHD_OPTION_NOTIFY_COMPLETED, rq_free, NULL,
			     MHD_OPTION_END);
	/* clang-format on */
	if (d == NULL)
		fprintf(stderr, "ag_target: cannot listen on %s port %u\n", tg.bind, tg.port);
	return d;
}

int main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	sigset_t set;
	int sig = 0;

	parse_args(argc, argv);
	if (tg.log_path != NULL) {
		tg.log_fd = open(tg.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (tg.log_fd < 0) {
			fprintf(stderr, "ag_target: --log %s: %s\n", tg.log_path, strerror(errno));
			return 1;
		}
	}

	/*
	 * Block the stop signals before MHD starts its threads, so they all inherit the mask and
	 * sigwait() below takes them. SIG_DFL first: a shell starts background jobs with SIGINT
	 * ignored, and an ignored signal is discarded instead of becoming pending.
	 */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	d = start_daemon();
	if (d == NULL)
		return 1;
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0) {
		fputs("ag_target: cannot learn the bound port\n", stderr);
		MHD_stop_daemon(d);
		return 1;
	}
	if (tg.port_file != NULL && write_port_file(tg.port_file, info->port) < 0) {
		MHD_stop_daemon(d);
		return 1;
	}
	fprintf(stderr, "ag_target: listening on %s port %u\n", tg.bind, (unsigned int)info->port);

	while (sigwait(&set, &sig) != 0)
		;
	atomic_store(&tg.stopping, true);
	MHD_stop_daemon(d);
	flaky_free_all();
	keys_free();
	if (tg.log_fd >= 0)
		close(tg.log_fd);
	return 0;
}
