/* drain: claim due calls, send them with libcurl multi (curl's 10-at-a-time.c shape), settle
 * the outcomes in batches, enqueue callbacks. One cycle for --once, --follow and /v1/drain. */
#include "drain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "dbq.h"
#include "http.h"
#include "log.h"
#include "schedule.h"
#include "sign.h"
#include "statuses.h"
#include "timeparse.h"
#include "uuid.h"

/* CURLOPT_PROTOCOLS_STR and CURLINFO_RETRY_AFTER (7.85.0; Debian 12 has 7.88.1). */
_Static_assert(LIBCURL_VERSION_NUM >= 0x075500, "libcurl 7.85.0 or later is needed");

#define SETTLE_MAX 256		     /* outcomes per settle statement */
#define SETTLE_WAIT_MS 50	     /* longest an outcome waits for its batch */
#define SETTLE_MAX_BYTES (32u << 20) /* stored response bytes per batch, about */
#define POLL_MAX_MS 200		     /* longest wait, so a stop signal is seen soon */
#define FOLLOW_STEP_MS 10      /* --follow: look again this soon after a claim that found calls */
#define CLAIM_CONFLICTS_MAX 40 /* claims in a row lost to races before --once gives up */
#define MAX_RESP_HEADERS 100   /* response headers kept per attempt */
#define MAX_RESP_HEADER 8192   /* bytes of one response header kept */
#define RETRY_AFTER_MAX_S (24LL * 86400)
#define USER_AGENT "asyncgate/0.1"

/* Columns of Q_DRAIN_CLAIM, read in binary format: all text but CC_BODY (raw bytes). Rows
 * come in claim order. */
enum claim_col {
	CC_ID,
	CC_ATTEMPT,
	CC_EXPIRED,
	CC_METHOD,
	CC_TARGET,
	CC_FUNCTION,
	CC_BASE_URL,
	CC_PATH,
	CC_QUERY,
	CC_HEADERS,
	CC_DEFAULT_HEADERS,
	CC_BODY,
	CC_BODY_TYPE,
	CC_CORRELATION_ID,
	CC_TIMEOUT_MS,
	CC_MAX_ATTEMPTS,
	CC_ATTEMPT_FLOOR,
	CC_RETRY_INITIAL_MS,
	CC_RETRY_MAX_MS,
	CC_EXPIRES_MS,
	CC_NOW_MS,
	CC_SIGNING_SECRET,
	CC_FOLLOW_REDIRECTS,
	CC_HAS_CALLBACK,
	CC_HAS_FAILURE_CALLBACK,
	CC_CALLBACK_OF,
	CC_CONNECT_TIMEOUT_MS,
	CC_RETRY_ON,
	CC_GIVE_UP_ON,
	CC_HELD, /* a limited call flow control held back: only its id is set */
};

/* Duration histogram bounds of /metrics (ms); a duration above the last one is bucket -1. */
static const int bucket_bounds_ms[] = {5,    10,   25,	 50,	100,   250,  500,
				       1000, 2500, 5000, 10000, 30000, 60000};

/* One call in flight. Strings are owned and freed by job_reset; the easy handle lives with the
 * slot and is reused (curl_easy_reset) for the next call. */
struct job {
	struct drain *d;
	CURL *easy;
	bool active;
	char id[UUID_LEN];
	int attempt;
	char *correlation_id;
	char *callback_of; /* on a callback call: the call it reports on */
	int64_t max_attempts, attempt_floor, retry_initial_ms, retry_max_ms;
	int64_t expires_ms;	/* wall clock ms, database time; -1 = never */
	int64_t retry_after_ms; /* the answer's Retry-After (ms); <= 0 = none */
	int64_t clock_skew_ms;	/* database now - local now, at the claim */
	bool has_callback, has_failure_callback;
	int64_t timeout_ms, connect_timeout_ms; /* the limits this attempt runs under */
	struct statuses retry_on, give_up_on;	/* the call's lists (empty: none) */
	char *url;
	unsigned char *body; /* owned */
	size_t body_len;
	struct curl_slist *headers;
	/* the answer */
	int64_t started_us, t0_ms;
	struct buf resp_body; /* at most cf->max_response_bytes */
	int64_t resp_size;
	struct json_object *resp_headers;     /* owned; lower-case names, repeats comma-joined */
	struct json_object *resp_header_list; /* owned; [[name, value], ...] as sent, in order */
	int resp_header_count;
	const char *refused; /* static text from netpolicy, when a connection was refused */
	char refused_addr[INET6_ADDRSTRLEN];
	bool tried; /* an allowed address was tried on this hop (the last response resets it) */
	char errbuf[CURL_ERROR_SIZE];
};

/* One finished call's outcome, for the settle: its row of Q_DRAIN_SETTLE's $1 as JSON text,
 * and what the drainer itself needs of it. */
struct outcome {
	char id[UUID_LEN];
	int attempt;
	const char *state, *outcome; /* static text (outcome NULL when not attempted) */
	int64_t delay_ms, started_us, duration_ms;
	long status;
	int bucket_ms;
	bool attempted, has_cb;
	size_t bytes; /* stored response and callback bytes in row */
	char *row;    /* owned: the JSON object */
	size_t row_len;
};

/* A list of outcomes (v owned, each row owned). */
struct outs {
	struct outcome *v;
	size_t n, cap;
};

struct drain {
	const struct conf *cf;
	const struct netpolicy *np;
	struct db *db;
	char *name;
	struct curl_slist *resolve; /* cf->drain_resolve as CURLOPT_RESOLVE entries */
	CURLM *multi;
	struct json_tokener *tok; /* reused for each claimed call's JSON columns */
	struct job *jobs; /* cf->drain_concurrency slots, or more when a run asks for more */
	int njobs;
	int active;
	struct outs pending; /* outcomes waiting for their batch */
	int64_t pending_since_ms;
	int64_t due_hint_ms;	  /* monotonic: when something this drainer settled falls due */
	size_t pending_bytes;	  /* stored response bytes in pending (a batch stays far below
				   * PostgreSQL's 1 GB parameter limit) */
	int64_t flush_retry_ms;	  /* monotonic: no settle attempt before this (after a failure) */
	int64_t flush_backoff_ms; /* the current wait between failed settles */
	/* Claims and settles go out without waiting (dbq), so transfers keep moving meanwhile:
	 * claims on db, settles on sdb, a second connection of the drainer's own, when the run
	 * asks for it (they then run at once in PostgreSQL too), else on db as well. */
	struct db sdb;
	struct dbq cq, sq;
	struct outs settling; /* the outcomes of the settle out (none: n = 0) */
	int claim_n;	      /* how many the claim out asked for */
	/* Claimed calls not started yet (claim_ahead): rows ready_i.. of ready (owned), claimed
	 * at ready_ms (monotonic). */
	PGresult *ready;
	int ready_i;
	int64_t ready_ms;
	int quiet;	  /* --follow: claims in a row that found nothing (at most 8) */
	bool claim_final; /* it went out with nothing in flight or unsettled (--once ends when it
			   * comes back short) */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- pure parts ---- */

enum send_verdict drain_verdict(long status, int curl_code, bool refused,
				const struct statuses *retry_on, const struct statuses *give_up_on)
{
	if (refused)
		return SEND_DEAD;
	switch ((CURLcode)curl_code) {
	case CURLE_OK: break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_TOO_MANY_REDIRECTS:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_BAD_CONTENT_ENCODING: return SEND_DEAD;
	default:
		/* connect, DNS, TLS, timeouts, resets, empty replies: the network's fault */
		return SEND_RETRY;
	}
	if (status >= 200 && status <= 299)
		return SEND_OK;
	if (statuses_has(give_up_on, status))
		return SEND_DEAD;
	if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599) ||
	    statuses_has(retry_on, status))
		return SEND_RETRY;
	return SEND_DEAD;
}

int64_t drain_backoff_ms(int64_t initial_ms, int64_t max_ms, int failures, double u,
			 int64_t retry_after_ms)
{
	int64_t ceiling = initial_ms;
	int64_t delay;

	if (max_ms < initial_ms)
		max_ms = initial_ms;
	for (int i = 0; i < failures && ceiling < max_ms; i++)
		ceiling = ceiling > max_ms / 2 ? max_ms : (ceiling > 0 ? ceiling * 2 : 1);
	if (ceiling > max_ms)
		ceiling = max_ms;
	if (!(u >= 0)) /* also NaN */
		u = 0;
	if (u >= 1)
		u = 0.999999;
	delay = initial_ms + (int64_t)(u * (double)(ceiling - initial_ms));
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	return delay;
}

char *drain_url(const char *target, const char *base_url, const char *path, const char *query)
{
	struct buf u;

	buf_init(&u);
	if (target != NULL) {
		buf_puts(&u, target);
	} else {
		size_t n = strlen(base_url);

		if (path != NULL && n > 0 && base_url[n - 1] == '/')
			n--;
		buf_append(&u, base_url, n);
		if (path != NULL)
			buf_puts(&u, path);
	}
	if (query != NULL && query[0] != '\0') {
		buf_puts(&u, strchr(u.data, '?') != NULL ? "&" : "?");
		buf_puts(&u, query);
	}
	return buf_take(&u, NULL);
}

/* ---- libcurl callbacks ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	size_t len = size * n;
	int64_t cap = j->d->cf->max_response_bytes;

	if ((int64_t)j->resp_body.len < cap) {
		size_t room = (size_t)(cap - (int64_t)j->resp_body.len);

		buf_append(&j->resp_body, p, len < room ? len : room);
	}
	j->resp_size += (int64_t)len;
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	size_t len = size * n;
	const char *colon;
	char *name, *value;
	struct json_object *prev;
	size_t vs, ve;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new response (after a redirect or 1xx): keep only the last one's headers, and
		 * judge the next hop's connection on its own */
		j->refused = NULL;
		j->tried = false;
		json_object_put(j->resp_headers);
		j->resp_headers = json_object_new_object();
		json_object_put(j->resp_header_list);
		j->resp_header_list = json_object_new_array();
		j->resp_header_count = 0;
		return len;
	}
	colon = memchr(p, ':', len);
	if (colon == NULL || colon == p || j->resp_header_count >= MAX_RESP_HEADERS)
		return len;
	name = xstrndup(p, (size_t)(colon - p));
	if (!http_token_valid(name)) { /* not a field name (RFC 9110 5.1): not kept */
		free(name);
		return len;
	}
	vs = (size_t)(colon - p) + 1;
	ve = len;
	while (vs < ve && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	while (ve > vs &&
	       (p[ve - 1] == '\r' || p[ve - 1] == '\n' || p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	if (ve - vs > MAX_RESP_HEADER)
		ve = vs + MAX_RESP_HEADER;
	value = xstrndup(p + vs, ve - vs);
	if (!http_utf8_valid(value, strlen(value))) {
		for (char *c = value; *c != '\0'; c++)
			if ((unsigned char)*c >= 0x80)
				*c = '?';
	}
	if (j->resp_header_list != NULL &&
	    json_object_array_length(j->resp_header_list) < MAX_RESP_HEADERS) {
		struct json_object *pair = json_object_new_array();

		json_object_array_add(pair, json_object_new_string(name));
		json_object_array_add(pair, json_object_new_string(value));
		json_object_array_add(j->resp_header_list, pair);
	}
	for (char *c = name; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (json_object_object_get_ex(j->resp_headers, name, &prev)) {
		char *joined = xasprintf("%s, %s", json_object_get_string(prev), value);

		json_object_object_add(j->resp_headers, name, json_object_new_string(joined));
		free(joined);
	} else {
		json_object_object_add(j->resp_headers, name, json_object_new_string(value));
		j->resp_header_count++;
	}
	free(name);
	free(value);
	return len;
}

/* The IP address of sa as text ("?" when it is none). */
static void addr_text(const struct sockaddr *sa, char *out, size_t n)
{
	const void *in = NULL;

	if (sa->sa_family == AF_INET)
		in = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		in = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (in == NULL || inet_ntop(sa->sa_family, in, out, (socklen_t)n) == NULL)
		snprintf(out, n, "?");
}

/* The host of the URL being fetched now (after redirects), as a new string, or NULL. */
static char *url_host(CURL *easy)
{
	char *url = NULL, *host = NULL, *out = NULL;
	CURLU *u = curl_url();

	if (u != NULL && curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK &&
	    url != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		out = xstrdup(host);
	curl_free(host);
	curl_url_cleanup(u);
	return out;
}

/* The address policy on the address actually connected to: libcurl calls this for every
 * address it tries (each of happy eyeballs' IPv6 and IPv4 attempts), after DNS, on every
 * redirect hop, for callbacks as for calls (DNS rebinding, redirects into the private
 * network). Through outbound_proxy the address is the proxy's, and host-name rules are not
 * consulted. */
static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct job *j = arg;
	const char *why = NULL;

	(void)purpose;
	if (!netpolicy_addr_allowed(j->d->np, &a->addr, &why)) {
		char *host = j->d->cf->outbound_proxy[0] == '\0' ? url_host(j->easy) : NULL;
		bool by_name =
			host != NULL && netpolicy_connect_allowed(j->d->np, host, &a->addr, NULL);

		free(host);
		if (!by_name) {
			j->refused = why != NULL ? why : "refused";
			addr_text(&a->addr, j->refused_addr, sizeof(j->refused_addr));
			log_info("drain call=%s attempt=%d: refused a connection to %s (%s)", j->id,
				 j->attempt, j->refused_addr, j->refused);
			return CURL_SOCKET_BAD;
		}
	}
	j->tried = true;
	return socket(a->family, a->socktype, a->protocol);
}

/* ---- jobs ---- */

static void job_reset(struct job *j)
{
	free(j->correlation_id);
	free(j->callback_of);
	free(j->url);
	free(j->body);
	curl_slist_free_all(j->headers);
	buf_cleanup(&j->resp_body);
	json_object_put(j->resp_headers);
	json_object_put(j->resp_header_list);
	CURL *easy = j->easy;
	struct drain *d = j->d;

	memset(j, 0, sizeof(*j));
	j->easy = easy;
	j->d = d;
	buf_init(&j->resp_body);
}

static const char *col(const PGresult *res, int row, enum claim_col c)
{
	return PQgetisnull(res, row, (int)c) ? NULL : PQgetvalue(res, row, (int)c);
}

static int64_t col_i64(const PGresult *res, int row, enum claim_col c, int64_t def)
{
	const char *s = col(res, row, c);

	return s != NULL ? strtoll(s, NULL, 10) : def;
}

static bool col_bool(const PGresult *res, int row, enum claim_col c)
{
	const char *s = col(res, row, c);

	return s != NULL && s[0] == 't';
}

/* Appends one CURLOPT_HTTPHEADER line ("Name:" alone removes a header libcurl would add). */
static void add_line(struct curl_slist **l, const char *line)
{
	struct curl_slist *n = curl_slist_append(*l, line);

	if (n == NULL)
		abort(); /* out of memory, as xmalloc */
	*l = n;
}

static void add_header(struct curl_slist **l, const char *name, const char *value)
{
	/* "Name:" would make libcurl drop the header; "Name;" sends it empty (CURLOPT_HTTPHEADER)
	 */
	char *line = value[0] == '\0' ? xasprintf("%s;", name) : xasprintf("%s: %s", name, value);

	add_line(l, line);
	free(line);
}

static bool obj_has_ci(struct json_object *o, const char *name)
{
	if (o == NULL)
		return false;
	json_object_object_foreach (o, k, v) {
		(void)v;
		if (strcasecmp(k, name) == 0)
			return true;
	}
	return false;
}

/* Adds the headers of object h (NULL: none) that over (NULL: none) does not name. Operators
 * write default_headers by SQL, and a header is a header: anything that is not a string under
 * a token name, or that the gateway sets itself, is skipped (and logged), never sent. */
static void add_headers(struct job *j, struct json_object *h, struct json_object *over,
			const char *what)
{
	if (h == NULL || !json_object_is_type(h, json_type_object))
		return;
	json_object_object_foreach (h, k, v) {
		const char *s =
			json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;

		if (obj_has_ci(over, k))
			continue;
		if (s == NULL || http_header_reserved(k) || !http_token_valid(k) ||
		    !http_value_valid(s, strlen(s))) {
			log_warn("drain call=%s: %s is not a valid header; skipped", j->id, what);
			continue;
		}
		add_header(&j->headers, k, s);
	}
}

/* Parses a JSON column the database wrote (jsonb as text) with tok, reset first: a tokener per
 * call was a big allocation each, and the malloc_consolidate it set off. NULL when the column
 * is NULL or not JSON. The caller owns the result. */
static struct json_object *parse_col(struct json_tokener *tok, const PGresult *res, int row, int c)
{
	const char *text = col(res, row, c);
	struct json_object *o;

	if (text == NULL)
		return NULL;
	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, text, PQgetlength(res, row, c));
	if (o != NULL && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

/* The outbound headers: the function's defaults under the call's own, a Content-Type for the
 * body kind when none was given, the Async-* headers and, with a secret, the signature. */
static int job_headers(struct json_tokener *tok, struct job *j, const PGresult *res, int row,
		       const char *body_type)
{
	struct json_object *call_h = parse_col(tok, res, row, CC_HEADERS);
	struct json_object *def_h = parse_col(tok, res, row, CC_DEFAULT_HEADERS);
	const char *secret = col(res, row, CC_SIGNING_SECRET);
	char num[24];
	int rc = -1;

	add_headers(j, def_h, call_h, "a default header of its function");
	add_headers(j, call_h, NULL, "a header of the call");
	if (!obj_has_ci(call_h, "Content-Type") && !obj_has_ci(def_h, "Content-Type")) {
		if (body_type == NULL)
			add_line(&j->headers, "Content-Type:"); /* no form type from libcurl */
		else if (strcmp(body_type, "json") == 0)
			add_header(&j->headers, "Content-Type", "application/json");
		else if (strcmp(body_type, "text") == 0)
			add_header(&j->headers, "Content-Type", "text/plain; charset=utf-8");
		else
			add_header(&j->headers, "Content-Type", "application/octet-stream");
	}
	add_line(&j->headers, "Expect:"); /* no 100-continue round trip before the body */
	add_header(&j->headers, "Async-Call-Id", j->callback_of != NULL ? j->callback_of : j->id);
	if (j->callback_of != NULL)
		add_header(&j->headers, "Async-Callback-Id", j->id);
	snprintf(num, sizeof(num), "%d", j->attempt);
	add_header(&j->headers, "Async-Attempt", num);
	if (j->correlation_id != NULL)
		add_header(&j->headers, "Async-Correlation-Id", j->correlation_id);
	if (secret != NULL && secret[0] != '\0') {
		int64_t ts = timeparse_now_us() / 1000000;
		char *sig = sign_header(secret, j->id, (long long)ts, j->body, j->body_len);

		if (sig == NULL)
			goto out;
		snprintf(num, sizeof(num), "%" PRId64, ts);
		add_header(&j->headers, "webhook-id", j->id);
		add_header(&j->headers, "webhook-timestamp", num);
		add_header(&j->headers, "webhook-signature", sig);
		free(sig);
	}
	rc = 0;
out:
	json_object_put(call_h);
	json_object_put(def_h);
	return rc;
}

#define SETOPT(h, opt, val)                                                                        \
	do {                                                                                       \
		CURLcode rc_ = curl_easy_setopt((h), (opt), (val));                                \
		if (rc_ != CURLE_OK) {                                                             \
			log_err("drain: curl_easy_setopt(%s): %s", #opt, curl_easy_strerror(rc_)); \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

static int job_setopts(struct job *j, const char *method, bool redirects)
{
	CURL *h = j->easy;
	int64_t timeout_ms = j->timeout_ms;
	int64_t connect_ms = j->connect_timeout_ms;

	SETOPT(h, CURLOPT_URL, j->url);
	SETOPT(h, CURLOPT_PRIVATE, (void *)j);
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SETOPT(h, CURLOPT_FOLLOWLOCATION, redirects ? 1L : 0L);
	SETOPT(h, CURLOPT_MAXREDIRS, 5L);
	SETOPT(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
	/* No proxy from the environment (http_proxy, NO_PROXY, ...): outbound_proxy or none. */
	SETOPT(h, CURLOPT_PROXY, j->d->cf->outbound_proxy);
	SETOPT(h, CURLOPT_NOPROXY, "");
	SETOPT(h, CURLOPT_RESOLVE, j->d->resolve);
	/* Bodies are stored as sent: libcurl would otherwise inflate an unasked-for
	 * "Transfer-Encoding: gzip" (a decompression bomb); CURLOPT_ACCEPT_ENCODING stays unset. */
	SETOPT(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	SETOPT(h, CURLOPT_USERAGENT, USER_AGENT);
	SETOPT(h, CURLOPT_HTTPHEADER, j->headers);
	SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(h, CURLOPT_WRITEDATA, (void *)j);
	SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(h, CURLOPT_HEADERDATA, (void *)j);
	SETOPT(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	SETOPT(h, CURLOPT_OPENSOCKETDATA, (void *)j);
	SETOPT(h, CURLOPT_ERRORBUFFER, j->errbuf);
	SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (strcmp(method, "HEAD") == 0) {
		SETOPT(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") == 0 && j->body == NULL) {
		SETOPT(h, CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(method, "POST") != 0)
			SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
		if (j->body != NULL || strcmp(method, "POST") == 0) {
			/* POSTFIELDS does not copy: j->body lives until job_reset */
			SETOPT(h, CURLOPT_POSTFIELDS, j->body != NULL ? (char *)j->body : "");
			SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
		}
	}
	return 0;
}

/* ---- settling ---- */

static void add_str(struct json_object *o, const char *k, const char *v)
{
	if (v != NULL)
		json_object_object_add(o, k, json_object_new_string(v));
}

static void add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static char *base64(const void *p, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)len);
	return out;
}

const int *drain_buckets_ms(size_t *n)
{
	*n = sizeof(bucket_bounds_ms) / sizeof(bucket_bounds_ms[0]);
	return bucket_bounds_ms;
}

static int bucket_of(int64_t ms)
{
	for (size_t i = 0; i < sizeof(bucket_bounds_ms) / sizeof(bucket_bounds_ms[0]); i++)
		if (ms <= bucket_bounds_ms[i])
			return bucket_bounds_ms[i];
	return -1;
}

/* The callback envelope of DESIGN.md: {call_id, correlation_id, outcome, attempts,
 * response: {status, headers, body | body_base64} | null, error}. Returns a new string. */
static char *envelope(const struct job *j, const char *outcome, long status, const char *error)
{
	struct json_object *o = json_object_new_object();
	char *text;

	add_str(o, "call_id", j->id);
	json_object_object_add(o, "correlation_id",
			       j->correlation_id != NULL ? json_object_new_string(j->correlation_id)
							 : NULL);
	add_str(o, "outcome", outcome);
	add_int(o, "attempts", j->attempt);
	if (status > 0) {
		struct json_object *r = json_object_new_object();

		add_int(r, "status", status);
		json_object_object_add(r, "headers", json_object_get(j->resp_headers));
		if (http_utf8_valid(j->resp_body.data != NULL ? j->resp_body.data : "",
				    j->resp_body.len)) {
			json_object_object_add(
				r, "body",
				json_object_new_string_len(
					j->resp_body.data != NULL ? j->resp_body.data : "",
					(int)j->resp_body.len));
		} else {
			char *b = base64(j->resp_body.data, j->resp_body.len);

			add_str(r, "body_base64", b);
			free(b);
		}
		add_int(r, "size", j->resp_size);
		json_object_object_add(
			r, "truncated",
			json_object_new_boolean(j->resp_size > (int64_t)j->resp_body.len));
		json_object_object_add(o, "response", r);
	} else {
		json_object_object_add(o, "response", NULL);
	}
	json_object_object_add(o, "error", error != NULL ? json_object_new_string(error) : NULL);
	text = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}

/* ---- outcomes: settle rows as JSON text ---- */

/* Appends ,"k":"v" with v escaped by json-c; nothing when v is NULL. */
static void row_str(struct buf *b, const char *k, const char *v)
{
	struct json_object *o;

	if (v == NULL)
		return;
	o = json_object_new_string(v);
	buf_printf(b, ",\"%s\":%s", k,
		   json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Appends ,"k":"v" for a v that JSON needs no escape in (a state name, a UUID, base64). */
static void row_plain(struct buf *b, const char *k, const char *v)
{
	buf_puts(b, ",\"");
	buf_puts(b, k);
	buf_puts(b, "\":\"");
	buf_puts(b, v);
	buf_puts(b, "\"");
}

/* Appends ,"k":v. The digits are written here: a settle row has up to nine numbers, and
 * vsnprintf for each was a tenth of the drainer's own instructions. */
static void row_int(struct buf *b, const char *k, int64_t v)
{
	char d[24];
	size_t i = sizeof(d);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		d[--i] = '-';
	buf_puts(b, ",\"");
	buf_puts(b, k);
	buf_puts(b, "\":");
	buf_append(b, d + i, sizeof(d) - i);
}

static void row_json(struct buf *b, const char *k, struct json_object *o)
{
	buf_printf(b, ",\"%s\":%s", k,
		   json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* The row of Q_DRAIN_SETTLE's $1 for o with what every row has (no answer, no callback),
 * into b: "{...", without the closing brace. */
static void row_begin(struct buf *b, const struct outcome *o)
{
	buf_puts(b, "{\"id\":\"");
	buf_puts(b, o->id);
	buf_puts(b, "\"");
	row_int(b, "attempt", o->attempt);
	row_plain(b, "state", o->state);
	row_int(b, "delay_ms", o->delay_ms);
	if (o->attempted) {
		row_int(b, "started_us", o->started_us);
		row_int(b, "duration_ms", o->duration_ms);
		if (o->status > 0)
			row_int(b, "status", o->status);
		row_plain(b, "outcome", o->outcome);
		row_int(b, "bucket_ms", o->bucket_ms);
	}
}

static void outs_push(struct outs *l, struct outcome *o)
{
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 64 : l->cap * 2;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *o;
	memset(o, 0, sizeof(*o));
}

/* Frees the rows of l and empties it (its storage is kept). */
static void outs_clear(struct outs *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].row);
	l->n = 0;
}

static void pending_add(struct drain *d, struct outcome *o)
{
	if (d->pending.n == 0)
		d->pending_since_ms = mono_ms();
	d->pending_bytes += o->bytes;
	outs_push(&d->pending, o);
}

/* Queues the outcome of job j for the next settle batch. state is the call's new state;
 * attempted false when no request was made (expired before sending). state, outcome: static
 * text. */
static void settle_job(struct drain *d, struct job *j, const char *state, int64_t delay_ms,
		       bool attempted, long status, const char *error, const char *outcome,
		       int64_t duration_ms)
{
	struct outcome o = {0};
	bool final = strcmp(state, "retrying") != 0;
	struct buf b;

	snprintf(o.id, sizeof(o.id), "%s", j->id);
	o.attempt = j->attempt;
	o.state = state;
	o.delay_ms = delay_ms;
	o.attempted = attempted;
	if (attempted) {
		o.started_us = j->started_us;
		o.duration_ms = duration_ms;
		o.status = status;
		o.outcome = outcome;
		/* -2: no request was made (the call could not be sent as stored) */
		o.bucket_ms = j->t0_ms != 0 ? bucket_of(duration_ms) : -2;
	}
	buf_init(&b);
	row_begin(&b, &o);
	if (attempted) {
		row_json(&b, "response_headers", j->resp_headers);
		row_json(&b, "response_header_list", j->resp_header_list);
		if (j->resp_body.len > 0) {
			char *b64 = base64(j->resp_body.data, j->resp_body.len);

			row_plain(&b, "response_body", b64);
			o.bytes += strlen(b64);
			free(b64);
		}
		row_int(&b, "response_size", j->resp_size);
	}
	row_str(&b, "error", error);
	if (j->retry_after_ms > 0)
		row_int(&b, "retry_after_ms", j->retry_after_ms); /* flow control: 429 pauses */
	if (final &&
	    (strcmp(state, "succeeded") == 0 ? j->has_callback
					     : (j->has_callback || j->has_failure_callback))) {
		char cb[UUID_LEN];

		if (uuid_v7(cb) == 0) {
			char *body = envelope(j, state, status, error);

			row_plain(&b, "cb_id", cb);
			row_str(&b, "cb_body", body);
			o.bytes += strlen(body);
			o.has_cb = true;
			free(body);
		}
	}
	buf_append(&b, "}", 1);
	o.row = buf_take(&b, &o.row_len);
	pending_add(d, &o);
}

/* The parameters of Q_DRAIN_SETTLE over rows v[0..n-1]: a->p points into a (valid until
 * settle_args_free). */
struct settle_args {
	char ma[24], ri[24], rm[24], to[24];
	char *rows;
	const char *p[6];
};

static void settle_args(struct drain *d, const struct outcome *v, size_t n, struct settle_args *a)
{
	const struct conf *cf = d->cf;
	struct buf b;

	snprintf(a->ma, sizeof(a->ma), "%" PRId64, cf->default_max_attempts);
	snprintf(a->ri, sizeof(a->ri), "%" PRId64, cf->default_retry_initial_ms);
	snprintf(a->rm, sizeof(a->rm), "%" PRId64,
		 cf->default_retry_max_ms > cf->default_retry_initial_ms
			 ? cf->default_retry_max_ms
			 : cf->default_retry_initial_ms);
	snprintf(a->to, sizeof(a->to), "%" PRId64, cf->default_timeout_ms);
	buf_init(&b);
	buf_append(&b, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append(&b, ",", 1);
		buf_append(&b, v[i].row, v[i].row_len);
	}
	buf_append(&b, "]", 1);
	a->rows = buf_take(&b, NULL);
	a->p[0] = a->rows;
	a->p[1] = d->name;
	a->p[2] = a->ma;
	a->p[3] = a->ri;
	a->p[4] = a->rm;
	a->p[5] = a->to;
}

static void settle_args_free(struct settle_args *a)
{
	free(a->rows);
	a->rows = NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Counts what the database took of rows v[0..n-1], by the state each row asked for (res: the
 * answer of Q_DRAIN_SETTLE over them, borrowed), and notes when what it made due falls due. */
static void settle_count(struct drain *d, const struct outcome *v, size_t n, const PGresult *res,
			 struct drain_stats *st)
{
	int nr = PQntuples(res);
	const char **taken = xmalloc(((size_t)nr + 1) * sizeof(*taken));

	/* the ids settled, sorted (column 0), each followed by its state (column 1) */
	for (int i = 0; i < nr; i++)
		taken[i] = PQgetvalue(res, i, 0);
	qsort(taken, (size_t)nr, sizeof(*taken), cmp_id);
	for (size_t i = 0; i < n; i++) {
		const char *id = v[i].id, *state = v[i].state;
		int64_t at = INT64_MAX;

		if (bsearch(&id, taken, (size_t)nr, sizeof(*taken), cmp_id) == NULL) {
			st->lost++;
			log_warn("drain call=%s: lease ran out before the outcome was recorded; "
				 "another drainer has it",
				 id);
			continue;
		}
		if (strcmp(state, "succeeded") == 0)
			st->succeeded++;
		else if (strcmp(state, "retrying") == 0)
			st->retried++;
		else if (strcmp(state, "dead") == 0)
			st->dead++;
		else if (strcmp(state, "expired") == 0)
			st->expired++;
		/* what this batch made due soon: callbacks now, retries after their delay */
		if (v[i].has_cb)
			at = mono_ms();
		else if (strcmp(state, "retrying") == 0)
			at = mono_ms() + v[i].delay_ms;
		if (at < d->due_hint_ms)
			d->due_hint_ms = at;
	}
	free(taken);
}

/* Runs Q_DRAIN_SETTLE over rows v[0..n-1] (waiting for it) and counts what the database took.
 * Returns 0, or -1 with nothing changed (the settle connection's error says why). */
static int settle_rows(struct drain *d, const struct outcome *v, size_t n, struct drain_stats *st)
{
	struct settle_args a = {0};
	PGresult *res;

	settle_args(d, v, n, &a);
	res = db_exec(d->sq.db, Q_DRAIN_SETTLE, a.p);
	settle_args_free(&a);
	if (res == NULL)
		return -1;
	settle_count(d, v, n, res, st);
	PQclear(res);
	return 0;
}

/* The database refused the batch itself (not an outage): settle row by row so that one bad
 * row cannot hold up the others, and drop a row that still fails (logged; its call comes back
 * after its lease). Returns 0, or -1 when the database became unavailable meanwhile (the rows
 * not yet settled stay pending). */
static int settle_singly(struct drain *d, struct drain_stats *st)
{
	struct outs all = d->pending;
	int rc = 0;

	memset(&d->pending, 0, sizeof(d->pending));
	d->pending_bytes = 0;
	for (size_t i = 0; i < all.n; i++) {
		struct outcome *r = &all.v[i];

		if (rc == 0 && settle_rows(d, r, 1, st) != 0 && d->sq.db->error == DB_QUERY) {
			/* Keep the outcome, drop what the database would not take (the answer's
			 * headers and body, the callback). */
			struct outcome lean = *r;
			char err[96];
			struct buf b;

			snprintf(err, sizeof(err), "the answer could not be stored (sqlstate %s)",
				 d->sq.db->sqlstate);
			buf_init(&b);
			row_begin(&b, r);
			row_str(&b, "error", err);
			buf_append(&b, "}", 1);
			lean.row = buf_take(&b, &lean.row_len);
			lean.has_cb = false;
			log_err("drain call=%s: outcome refused by the database (sqlstate %s); "
				"recording it without the answer",
				r->id, d->sq.db->sqlstate);
			if (settle_rows(d, &lean, 1, st) != 0) {
				if (d->sq.db->error == DB_QUERY) {
					log_err("drain call=%s: outcome not recorded; the call is "
						"sent again after its lease",
						r->id);
					st->unsettled++;
				} else {
					rc = -1;
				}
			}
			free(lean.row);
		} else if (rc == 0 && d->sq.db->error != DB_OK) {
			rc = -1;
		}
		if (rc != 0)
			pending_add(d, r); /* takes r's row */
	}
	outs_clear(&all);
	free(all.v);
	return rc;
}

/* Sends the pending outcomes in one statement. Returns 0 (nothing pending, or sent), or -1
 * (logged; what was not recorded stays pending, retried after a back-off). */
static int flush(struct drain *d, struct drain_stats *st)
{
	int rc;

	if (d->pending.n == 0)
		return 0;
	if (mono_ms() < d->flush_retry_ms)
		return -1; /* the database failed a moment ago: do not hammer it */
	rc = settle_rows(d, d->pending.v, d->pending.n, st);
	if (rc == 0) {
		outs_clear(&d->pending);
		d->pending_bytes = 0;
	} else if (d->sq.db->error == DB_QUERY) {
		rc = settle_singly(d, st);
	}
	if (rc != 0) {
		d->flush_backoff_ms = d->flush_backoff_ms == 0 ? 200 : d->flush_backoff_ms * 2;
		if (d->flush_backoff_ms > 5000)
			d->flush_backoff_ms = 5000;
		d->flush_retry_ms = mono_ms() + d->flush_backoff_ms;
		return -1;
	}
	d->flush_backoff_ms = 0;
	d->flush_retry_ms = 0;
	return 0;
}

/* The settle out came back: res is its answer (taken), or NULL when it failed (the settle
 * connection's error says why; its rows go back to pending, settled one by one when the
 * database refused the batch itself). Returns 0, or -1 (logged; retried after a back-off). */
static int settle_done(struct drain *d, PGresult *res, struct drain_stats *st)
{
	struct outs rows = d->settling;
	int rc = 0;

	memset(&d->settling, 0, sizeof(d->settling));
	if (res != NULL) {
		settle_count(d, rows.v, rows.n, res, st);
		PQclear(res);
		outs_clear(&rows);
		free(rows.v);
		d->flush_backoff_ms = 0;
		d->flush_retry_ms = 0;
		return 0;
	}
	/* back in front of what finished since */
	for (size_t i = 0; i < d->pending.n; i++)
		outs_push(&rows, &d->pending.v[i]);
	free(d->pending.v);
	d->pending = rows;
	d->pending_since_ms = mono_ms();
	d->pending_bytes = 0;
	for (size_t i = 0; i < d->pending.n; i++)
		d->pending_bytes += d->pending.v[i].bytes;
	if (d->sq.db->error == DB_QUERY)
		rc = settle_singly(d, st);
	else
		rc = -1;
	if (rc != 0) {
		d->flush_backoff_ms = d->flush_backoff_ms == 0 ? 200 : d->flush_backoff_ms * 2;
		if (d->flush_backoff_ms > 5000)
			d->flush_backoff_ms = 5000;
		d->flush_retry_ms = mono_ms() + d->flush_backoff_ms;
		return -1;
	}
	d->flush_backoff_ms = 0;
	d->flush_retry_ms = 0;
	return 0;
}

/* Sends the pending outcomes (SETTLE_MAX at most; the rest goes with the next one) in one
 * statement without waiting for it. Returns 0, or -1 when it could not go out (as
 * settle_done). */
static int settle_send(struct drain *d, struct drain_stats *st)
{
	struct settle_args a = {0};
	size_t n = d->pending.n, k = n < SETTLE_MAX ? n : SETTLE_MAX;
	int r;

	if (n == 0)
		return 0;
	if (k == n) {
		d->settling = d->pending;
		memset(&d->pending, 0, sizeof(d->pending));
	} else {
		for (size_t i = 0; i < k; i++)
			outs_push(&d->settling, &d->pending.v[i]);
		memmove(d->pending.v, d->pending.v + k, (n - k) * sizeof(*d->pending.v));
		d->pending.n = n - k;
		d->pending_since_ms = 0;
	}
	d->pending_bytes = 0; /* about: the next batch goes soon anyway */
	settle_args(d, d->settling.v, d->settling.n, &a);
	r = dbq_send(&d->sq, Q_DRAIN_SETTLE, a.p);
	settle_args_free(&a);
	if (r != 0)
		return settle_done(d, NULL, st);
	return 0;
}

/* Which limit a timed-out transfer hit, written to err as "connect timeout (N ms): " when no
 * request went out, so the connection (TCP, TLS) was not made in time
 * (CURLOPT_CONNECTTIMEOUT_MS, or the total limit ran out while still connecting), else
 * "timeout (N ms): " (CURLOPT_TIMEOUT_MS). Not CURLINFO_CONNECT_TIME_T: it is 0 for a
 * connection reused from an earlier call too. Returns the length written. */
static size_t timeout_kind(struct job *j, char *err, size_t n)
{
	long sent = 1;
	int w;

	if (curl_easy_getinfo(j->easy, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
		sent = 1;
	if (sent == 0)
		w = snprintf(err, n, "connect timeout (%" PRId64 " ms): ", j->connect_timeout_ms);
	else
		w = snprintf(err, n, "timeout (%" PRId64 " ms): ", j->timeout_ms);
	return w > 0 && (size_t)w < n ? (size_t)w : 0;
}

/* A transfer ended: decide the call's next state and queue the outcome. */
static void job_done(struct drain *d, struct job *j, CURLcode code)
{
	long status = 0;
	curl_off_t retry_after = -1;
	int64_t duration = mono_ms() - j->t0_ms;
	enum send_verdict v;
	const char *state, *outcome;
	char err[CURL_ERROR_SIZE + 64];
	const char *error = NULL;
	int64_t delay = 0;
	int failures = j->attempt - (int)j->attempt_floor;
	bool refused;

	j->retry_after_ms = -1;
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	if (code != CURLE_OK)
		status = 0; /* a response cut off is not an answer */
	/* A refused address is the reason only if no other address of the host answered, and
	 * no allowed one was tried (that one's failure, a down target, may pass; it is retried). */
	if (code == CURLE_OK)
		j->refused = NULL;
	refused = j->refused != NULL && !j->tried;
	v = drain_verdict(status, (int)code, refused, &j->retry_on, &j->give_up_on);
	if (refused) {
		snprintf(err, sizeof(err), "refused: the target resolves to a %s address (%s)",
			 j->refused, j->refused_addr);
		error = err;
	} else if (code == CURLE_ABORTED_BY_CALLBACK) {
		snprintf(err, sizeof(err), "%s", j->errbuf); /* release_all's reason */
		error = err;
	} else if (code != CURLE_OK) {
		size_t o = 0;

		if (code == CURLE_OPERATION_TIMEDOUT)
			o = timeout_kind(j, err, sizeof(err));
		snprintf(err + o, sizeof(err) - o, "%s: %s", curl_easy_strerror(code),
			 j->errbuf[0] != '\0' ? j->errbuf : "-");
		for (char *c = err; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				*c = '?';
		if (j->refused != NULL) /* another address was refused, this one failed */
			snprintf(err + strlen(err), sizeof(err) - strlen(err),
				 " (refused: a %s address, %s)", j->refused, j->refused_addr);
		error = err;
	}
	if (v == SEND_OK) {
		state = "succeeded";
		outcome = "success";
	} else if (v == SEND_DEAD || failures >= j->max_attempts) {
		state = "dead";
		outcome = "dead";
	} else {
		uint32_t r = 0;
		int64_t ra_ms = -1;

		if (status > 0 &&
		    curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
		    retry_after > 0)
			ra_ms = (retry_after > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S
								 : (int64_t)retry_after) *
				1000;
		j->retry_after_ms = ra_ms;
		if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
			r = (uint32_t)rand();
		delay = drain_backoff_ms(j->retry_initial_ms, j->retry_max_ms, failures,
					 (double)r / 4294967296.0, ra_ms);
		if (j->expires_ms >= 0 &&
		    timeparse_now_us() / 1000 + j->clock_skew_ms + delay >= j->expires_ms) {
			state = "expired";
			outcome = "expired";
		} else {
			state = "retrying";
			outcome = "retry";
		}
	}
	if (status > 0)
		log_debug("drain call=%s attempt=%d status=%ld ms=%" PRId64 " next=%s", j->id,
			  j->attempt, status, duration, state);
	else
		log_debug("drain call=%s attempt=%d error=\"%s\" ms=%" PRId64 " next=%s", j->id,
			  j->attempt, error != NULL ? error : "-", duration, state);
	settle_job(d, j, state, delay, true, status, error, outcome, duration);
}

/* A call that cannot be sent as stored ends dead at once, with the reason as its attempt. */
static void job_fail(struct drain *d, struct job *j, const char *why)
{
	j->started_us = timeparse_now_us();
	log_info("drain call=%s attempt=%d dead: %s", j->id, j->attempt, why);
	settle_job(d, j, "dead", 0, true, 0, why, "dead", 0);
	job_reset(j);
}

/* The call's retry.on and retry.give_up_on (stored as normal-form JSON arrays) into j. */
static int job_statuses(struct job *j, const PGresult *res, int row)
{
	static const enum claim_col cols[2] = {CC_RETRY_ON, CC_GIVE_UP_ON};
	struct statuses *sets[2] = {&j->retry_on, &j->give_up_on};
	int rc = 0;

	for (int i = 0; i < 2; i++) {
		const char *text = col(res, row, cols[i]);
		struct json_object *list;

		statuses_clear(sets[i]);
		if (text == NULL)
			continue;
		list = json_tokener_parse(text);
		if (list == NULL || statuses_add_json(sets[i], list) != 0)
			rc = -1;
		json_object_put(list);
	}
	return rc;
}

/* Starts claimed row `row`. On a setup failure the call is settled dead (or expired). */
static void job_start(struct drain *d, struct job *j, const PGresult *res, int row)
{
	const char *body = col(res, row, CC_BODY);
	const char *function = col(res, row, CC_FUNCTION);
	const char *target = col(res, row, CC_TARGET);
	const char *base_url = col(res, row, CC_BASE_URL);
	const char *method = col(res, row, CC_METHOD);
	char err[256];
	CURLMcode mc;

	job_reset(j);
	snprintf(j->id, sizeof(j->id), "%s", col(res, row, CC_ID));
	j->attempt = (int)col_i64(res, row, CC_ATTEMPT, 1);
	if (col(res, row, CC_CORRELATION_ID) != NULL)
		j->correlation_id = xstrdup(col(res, row, CC_CORRELATION_ID));
	if (col(res, row, CC_CALLBACK_OF) != NULL)
		j->callback_of = xstrdup(col(res, row, CC_CALLBACK_OF));
	j->max_attempts = col_i64(res, row, CC_MAX_ATTEMPTS, 1);
	j->attempt_floor = col_i64(res, row, CC_ATTEMPT_FLOOR, 0);
	j->retry_initial_ms = col_i64(res, row, CC_RETRY_INITIAL_MS, 1000);
	j->retry_max_ms = col_i64(res, row, CC_RETRY_MAX_MS, 3600000);
	j->expires_ms = col_i64(res, row, CC_EXPIRES_MS, -1);
	j->clock_skew_ms = col_i64(res, row, CC_NOW_MS, 0) - timeparse_now_us() / 1000;
	j->has_callback = col_bool(res, row, CC_HAS_CALLBACK);
	j->has_failure_callback = col_bool(res, row, CC_HAS_FAILURE_CALLBACK);
	j->resp_headers = json_object_new_object();
	j->resp_header_list = json_object_new_array();
	j->timeout_ms = col_i64(res, row, CC_TIMEOUT_MS, d->cf->default_timeout_ms);
	j->connect_timeout_ms =
		col_i64(res, row, CC_CONNECT_TIMEOUT_MS, d->cf->drain_connect_timeout_ms);
	if (j->connect_timeout_ms > j->timeout_ms)
		j->connect_timeout_ms = j->timeout_ms;
	if (job_statuses(j, res, row) != 0) {
		job_fail(d, j, "the call's retry.on or retry.give_up_on list is malformed");
		return;
	}

	if (col_bool(res, row, CC_EXPIRED)) {
		settle_job(d, j, "expired", 0, false, 0, "expired before it could be sent", NULL,
			   0);
		job_reset(j);
		return;
	}
	if (function != NULL && base_url == NULL) {
		snprintf(err, sizeof(err), "function %.128s is not registered (any more)",
			 function);
		job_fail(d, j, err);
		return;
	}
	j->url = drain_url(target, base_url, col(res, row, CC_PATH), col(res, row, CC_QUERY));
	if (body != NULL) {
		j->body_len = (size_t)PQgetlength(res, row, CC_BODY);
		j->body = xmalloc(j->body_len + 1);
		memcpy(j->body, body, j->body_len);
	}
	if (job_headers(d->tok, j, res, row, col(res, row, CC_BODY_TYPE)) != 0) {
		job_fail(d, j, "the function's signing secret is malformed");
		return;
	}
	curl_easy_reset(j->easy);
	if (job_setopts(j, method, col_bool(res, row, CC_FOLLOW_REDIRECTS)) != 0) {
		job_fail(d, j, "libcurl refused the call's options");
		return;
	}
	j->started_us = timeparse_now_us();
	j->t0_ms = mono_ms();
	mc = curl_multi_add_handle(d->multi, j->easy);
	if (mc != CURLM_OK) {
		log_err("drain: curl_multi_add_handle: %s", curl_multi_strerror(mc));
		job_fail(d, j, "the drainer could not start the transfer");
		return;
	}
	j->active = true;
	d->active++;
}

static struct job *free_slot(struct drain *d)
{
	for (int i = 0; i < d->njobs; i++)
		if (!d->jobs[i].active)
			return &d->jobs[i];
	return NULL;
}

/* Sends a claim of up to n calls without waiting for it. Returns 0, or -1 (logged). */
static int claim_send(struct drain *d, int n)
{
	char nb[16], margin[24];

	snprintf(nb, sizeof(nb), "%d", n);
	snprintf(margin, sizeof(margin), "%" PRId64, d->cf->drain_lease_margin_ms);
	d->claim_n = n;
	d->claim_final = d->active == 0 && d->pending.n == 0 && !dbq_busy(&d->sq);
	return dbq_send_format(&d->cq, Q_DRAIN_CLAIM, (const char *[]){nb, d->name, margin}, 1);
}

/* Starts claimed calls that are ready while there are free slots. */
static void start_ready(struct drain *d, struct drain_stats *st)
{
	while (d->ready != NULL) {
		struct job *j;

		if (d->ready_i >= PQntuples(d->ready)) {
			PQclear(d->ready);
			d->ready = NULL;
			break;
		}
		if (col_bool(d->ready, d->ready_i, CC_HELD)) {
			d->ready_i++; /* rescheduled by the claim itself; no attempt was counted */
			continue;
		}
		j = free_slot(d);
		if (j == NULL)
			break;
		st->claimed++;
		job_start(d, j, d->ready, d->ready_i++);
	}
}

/* The claim out came back with res (taken; NULL: it failed): starts the calls (those beyond
 * the free slots as slots free). Returns the number of rows the claim looked at (those
 * started, and those flow control held back for later, which still make a full batch), or
 * -1. */
static int claim_done(struct drain *d, PGresult *res, struct drain_stats *st)
{
	int rows;

	if (res == NULL)
		return -1;
	rows = PQntuples(res);
	PQclear(d->ready); /* empty: a claim goes out only when nothing is ready */
	d->ready = res;	   /* start_ready clears it once every row has started */
	d->ready_i = 0;
	d->ready_ms = mono_ms();
	start_ready(d, st);
	return rows;
}

/* Whether the claim that just failed lost a race with another drainer's claim and settle
 * (a serialization failure: a row its snapshot still saw queued had been claimed and moved to
 * calls_done since; or a deadlock) that dbq's own immediate retries did not get past. Such a
 * claim rolled back whole, claiming nothing, and the other drainer made progress; looking
 * again a moment later is all it takes. */
static bool claim_conflict(const struct drain *d)
{
	return d->cq.db->error == DB_QUERY && db_sqlstate_retry(d->cq.db->sqlstate);
}

/* Whether a claim, or a settle, may go out now: nothing of its kind is out, nor anything at
 * all when both share one connection. */
static bool claim_free(const struct drain *d)
{
	return !dbq_busy(&d->cq) && (d->sq.db != d->cq.db || !dbq_busy(&d->sq));
}

static bool settle_free(const struct drain *d)
{
	return !dbq_busy(&d->sq) && (d->sq.db != d->cq.db || !dbq_busy(&d->cq));
}

/* Collects finished transfers. */
static void reap(struct drain *d)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		struct job *j = NULL;

		CURL *easy;
		CURLcode result;

		if (m->msg != CURLMSG_DONE)
			continue;
		easy = m->easy_handle; /* m is gone after remove_handle */
		result = m->data.result;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&j);
		curl_multi_remove_handle(d->multi, easy);
		if (j == NULL)
			continue;
		job_done(d, j, result);
		j->active = false;
		d->active--;
		job_reset(j);
	}
}

/* Adds the claimed calls that never started to rows ({id, attempt}) and forgets them. One
 * past expires_at was claimed without counting an attempt: it stays in flight, and is settled
 * expired once its lease runs out. */
static void ready_take(struct drain *d, struct json_object *rows, struct drain_stats *st)
{
	for (; d->ready != NULL && d->ready_i < PQntuples(d->ready); d->ready_i++) {
		struct json_object *r;

		if (col_bool(d->ready, d->ready_i, CC_HELD) ||
		    col_bool(d->ready, d->ready_i, CC_EXPIRED))
			continue;
		st->claimed++;
		r = json_object_new_object();
		add_str(r, "id", col(d->ready, d->ready_i, CC_ID));
		add_int(r, "attempt", col_i64(d->ready, d->ready_i, CC_ATTEMPT, 1));
		json_object_array_add(rows, r);
	}
	PQclear(d->ready);
	d->ready = NULL;
}

/* Gives the unsent calls in rows back to the queue, their attempt not counted (on the claim
 * connection, which must be idle). */
static void give_back(struct drain *d, struct json_object *rows, struct drain_stats *st)
{
	PGresult *res;

	if (json_object_array_length(rows) == 0)
		return;
	res = db_exec(d->db, Q_DRAIN_RELEASE,
		      (const char *[]){json_object_to_json_string(rows), d->name});
	if (res != NULL) {
		st->released += PQntuples(res);
		PQclear(res);
	} else {
		st->unsettled += (int64_t)json_object_array_length(rows);
	}
}

/* Gives back the claimed calls that have not started: the drainer stops claiming, or they
 * waited for a slot so long that their lease would not cover a whole attempt any more. */
static void release_ready(struct drain *d, struct drain_stats *st)
{
	struct json_object *rows;

	if (d->ready == NULL)
		return;
	if (d->sq.db == d->cq.db && dbq_busy(&d->sq)) {
		PGresult *res;
		int r = dbq_wait(&d->sq, &res);

		(void)settle_done(d, r > 0 ? res : NULL, st);
	}
	rows = json_object_new_array();
	ready_take(d, rows, st);
	give_back(d, rows, st);
	json_object_put(rows);
}

/* Aborts every transfer in flight. A call whose request has not gone out yet goes back to
 * the queue as it was; one that may have reached the target counts as an attempt that failed
 * ("aborted"), retried with back-off like any other, so that a target slower than a /v1/drain
 * budget cannot be sent the same attempt over and over. */
static void release_all(struct drain *d, struct drain_stats *st, const char *why)
{
	struct json_object *rows = json_object_new_array();

	for (int i = 0; i < d->njobs; i++) {
		struct job *j = &d->jobs[i];
		struct json_object *r;
		long sent = 0;

		if (!j->active)
			continue;
		curl_easy_getinfo(j->easy, CURLINFO_REQUEST_SIZE, &sent);
		curl_multi_remove_handle(d->multi, j->easy);
		if (sent > 0) {
			snprintf(j->errbuf, sizeof(j->errbuf), "aborted: %s", why);
			job_done(d, j, CURLE_ABORTED_BY_CALLBACK);
			j->active = false;
			d->active--;
			job_reset(j);
			continue;
		}
		r = json_object_new_object();
		add_str(r, "id", j->id);
		add_int(r, "attempt", j->attempt);
		json_object_array_add(rows, r);
		j->active = false;
		d->active--;
		job_reset(j);
	}
	ready_take(d, rows, st);
	give_back(d, rows, st);
	json_object_put(rows);
}

/* Milliseconds until something in the queue falls due (clamped to [lo, hi]). */
static int64_t next_due_ms(struct drain *d, int64_t lo, int64_t hi)
{
	PGresult *res = db_exec(d->db, Q_DRAIN_NEXT, NULL);
	int64_t ms = hi;

	if (res != NULL && !PQgetisnull(res, 0, 0))
		ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (ms < lo)
		ms = lo;
	if (ms > hi)
		ms = hi;
	return ms;
}

/* --follow, after a claim that came back short with got rows: how long until the next look.
 * Calls arriving one by one (a NOTIFY is a hint, sent at most every notify_interval per
 * handler process) are found within FOLLOW_STEP_MS while claims keep finding some; each empty
 * claim doubles the wait up to drain_poll_interval, unless something falls due sooner. */
static int64_t follow_wait_ms(struct drain *d, int got)
{
	int64_t step;

	if (got > 0)
		d->quiet = 0;
	else if (d->quiet < 8)
		d->quiet++;
	step = (int64_t)FOLLOW_STEP_MS << d->quiet;
	if (step > d->cf->drain_poll_interval_ms)
		step = d->cf->drain_poll_interval_ms;
	if (step <= FOLLOW_STEP_MS)
		return step;
	return next_due_ms(d, FOLLOW_STEP_MS, step);
}

static int ensure_slots(struct drain *d, int n)
{
	if (n <= d->njobs)
		return 0;
	d->jobs = xrealloc(d->jobs, (size_t)n * sizeof(*d->jobs));
	for (int i = d->njobs; i < n; i++) {
		struct job *j = &d->jobs[i];

		memset(j, 0, sizeof(*j));
		j->d = d;
		buf_init(&j->resp_body);
		j->easy = curl_easy_init();
		if (j->easy == NULL) {
			log_err("drain: curl_easy_init failed");
			d->njobs = i;
			return -1;
		}
	}
	d->njobs = n;
	return 0;
}

/* drain_resolve's space-separated entries as a CURLOPT_RESOLVE list (NULL when none). */
static struct curl_slist *resolve_list(const char *spec)
{
	struct curl_slist *l = NULL;
	char *copy = xstrdup(spec), *save = NULL;

	for (char *t = strtok_r(copy, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save))
		add_line(&l, t);
	free(copy);
	return l;
}

struct drain *drain_new(const struct conf *cf, const struct netpolicy *np, struct db *db,
			const char *name)
{
	static bool curl_ready;
	struct drain *d;

	if (!curl_ready) {
		CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

		if (rc != CURLE_OK) {
			log_err("drain: curl_global_init: %s", curl_easy_strerror(rc));
			return NULL;
		}
		curl_ready = true;
	}
	d = xcalloc(1, sizeof(*d));
	d->cf = cf;
	d->np = np;
	d->db = db;
	d->name = xstrdup(name);
	d->resolve = resolve_list(cf->drain_resolve);
	db_init(&d->sdb, db->conninfo);
	dbq_init(&d->cq, db);
	dbq_init(&d->sq, db);
	d->tok = json_tokener_new();
	if (d->tok == NULL)
		abort(); /* out of memory, as xmalloc treats it */
	d->multi = curl_multi_init();
	if (d->multi == NULL) {
		log_err("drain: curl_multi_init failed");
		drain_free(d);
		return NULL;
	}
	return d;
}

void drain_free(struct drain *d)
{
	if (d == NULL)
		return;
	for (int i = 0; i < d->njobs; i++) {
		if (d->jobs[i].active)
			curl_multi_remove_handle(d->multi, d->jobs[i].easy);
		job_reset(&d->jobs[i]);
		curl_easy_cleanup(d->jobs[i].easy);
	}
	free(d->jobs);
	if (d->tok != NULL)
		json_tokener_free(d->tok);
	if (d->multi != NULL)
		curl_multi_cleanup(d->multi);
	curl_slist_free_all(d->resolve);
	dbq_cleanup(&d->cq);
	dbq_cleanup(&d->sq);
	db_cleanup(&d->sdb);
	outs_clear(&d->settling);
	free(d->settling.v);
	outs_clear(&d->pending);
	free(d->pending.v);
	free(d->name);
	free(d);
}

/* Outcomes not recorded yet: waiting for their batch, or in the settle out. */
static size_t unsettled(const struct drain *d)
{
	return d->pending.n + d->settling.n;
}

/* Whether a claim now makes sense: in bulk (a quarter of the slots at least) while calls keep
 * coming; otherwise on the timer or a NOTIFY (--follow), or once everything in hand is done
 * and settled (--once: the queue may hold new callbacks and retries by then). */
static bool claim_ready(const struct drain *d, const struct drain_opts *o, int conc, bool more_due)
{
	int free_n = conc - d->active;

	if (!claim_free(d) || d->ready != NULL || unsettled(d) >= (size_t)conc + 2 * SETTLE_MAX)
		return false; /* the settles fall behind: wait for them (memory stays bounded) */
	if (more_due && o->claim_ahead > 0 && o->max_calls <= 0)
		return true; /* the next batch, to start as slots free */
	if (free_n <= 0)
		return false;
	if (more_due)
		return free_n >= (conc + 3) / 4 || d->active == 0;
	if (o->follow)
		return true;
	return d->active == 0 && d->pending.n == 0 && !dbq_busy(&d->sq);
}

/* Waits for the claim and the settle out, and takes their answers (a claim's calls start). */
static void quiesce(struct drain *d, struct drain_stats *st)
{
	PGresult *res;

	if (dbq_busy(&d->cq)) {
		int r = dbq_wait(&d->cq, &res);

		(void)claim_done(d, r > 0 ? res : NULL, st);
	}
	if (dbq_busy(&d->sq)) {
		int r = dbq_wait(&d->sq, &res);

		(void)settle_done(d, r > 0 ? res : NULL, st);
	}
}

/* Adds x's connection to the descriptors curl_multi_poll waits on, while a statement is out. */
static void wait_on(const struct dbq *x, struct curl_waitfd *wfd, unsigned *n)
{
	int fd = dbq_fd(x);

	if (fd < 0)
		return;
	wfd[*n].fd = fd;
	wfd[*n].events = dbq_wants_write(x) ? CURL_WAIT_POLLOUT : CURL_WAIT_POLLIN;
	wfd[*n].revents = 0;
	(*n)++;
}

int drain_run(struct drain *d, const struct drain_opts *o, struct drain_stats *st)
{
	int64_t t0 = mono_ms();
	int64_t next_claim = t0; /* when to look at the queue next */
	int64_t db_backoff = 0;
	int conflicts = 0;    /* claims in a row that lost a race (claim_conflict) */
	bool more_due = true; /* the last claim came back full */
	bool failed = false;
	int conc = o->concurrency > 0 ? o->concurrency : 1;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (ensure_slots(d, conc) != 0)
		return -1;
	curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
	curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)conc);
	d->due_hint_ms = INT64_MAX;
	d->sq.db = o->settle_session ? &d->sdb : d->db;

	for (;;) {
		int64_t now = mono_ms();
		int stop = o->stop != NULL ? (int)*o->stop : 0;
		bool claiming = stop == 0 && !failed && (o->max_ms <= 0 || now - t0 < o->max_ms) &&
				(o->max_calls <= 0 || st->claimed < o->max_calls);
		size_t npending;
		int still;
		long timeout;
		struct curl_waitfd wfd[3];
		unsigned nwfd = 0;
		int wake_i = -1;
		PGresult *res;
		CURLMcode mc;
		int r;

		if (stop >= 2 || (o->hard_ms > 0 && now - t0 >= o->hard_ms)) {
			quiesce(d, st);
			release_all(d, st,
				    stop >= 2 ? "the drainer was stopped"
					      : "the drain budget ran out before the answer");
			break;
		}

		/* the answers of what is out */
		r = dbq_poll(&d->sq, &res);
		if (r != 0 && settle_done(d, r > 0 ? res : NULL, st) != 0 && !o->follow)
			failed = true;
		r = dbq_poll(&d->cq, &res);
		if (r != 0) {
			int got = claim_done(d, r > 0 ? res : NULL, st);

			if (got < 0 && claim_conflict(d) && conflicts < CLAIM_CONFLICTS_MAX) {
				/* not a failure: look again shortly, later each time in a row */
				conflicts++;
				next_claim = mono_ms() + (conflicts < 6 ? 5 << conflicts : 250);
				log_debug("drain %s: the claim lost a race with another drainer "
					  "(%d in a row); claiming again",
					  d->name, conflicts);
			} else if (got < 0 && !o->follow) {
				failed = true; /* finish what is in flight, then fail */
			} else if (got < 0) {
				db_backoff = db_backoff == 0 ? 500 : db_backoff * 2;
				if (db_backoff > 10000)
					db_backoff = 10000;
				next_claim = mono_ms() + db_backoff;
			} else {
				db_backoff = 0;
				conflicts = 0;
				more_due = got == d->claim_n;
				if (!more_due && !o->follow && d->claim_final && d->active == 0 &&
				    d->pending.n == 0 && !dbq_busy(&d->sq))
					break; /* --once: nothing more is due */
				if (!more_due && o->follow)
					next_claim = mono_ms() + follow_wait_ms(d, got);
			}
		}

		if (d->due_hint_ms < next_claim) {
			next_claim = d->due_hint_ms;
			more_due = true;
		}
		d->due_hint_ms = INT64_MAX;
		now = mono_ms();
		if (d->ready != NULL &&
		    (!claiming || now - d->ready_ms > d->cf->drain_lease_margin_ms / 2))
			release_ready(d, st);
		if (claiming && now >= next_claim && claim_ready(d, o, conc, more_due)) {
			int n = conc - d->active;

			/* While calls keep coming, claim ahead: the next batch is at hand when
			 * slots free, instead of a claim's round trip later. */
			if (more_due && o->max_calls <= 0)
				n += o->claim_ahead;
			if (o->max_calls > 0 && o->max_calls - st->claimed < n)
				n = (int)(o->max_calls - st->claimed);
			/* due schedule ticks become calls first, claimable at once (on the claim
			 * connection, idle now) */
			(void)schedule_fire(d->db, d->name);
			if (claim_send(d, n) != 0) {
				if (!o->follow) {
					failed = true;
				} else {
					db_backoff = db_backoff == 0 ? 500 : db_backoff * 2;
					if (db_backoff > 10000)
						db_backoff = 10000;
					next_claim = mono_ms() + db_backoff;
				}
			}
		}
		if (!claiming && d->active == 0 && !dbq_busy(&d->cq))
			break;

		mc = curl_multi_perform(d->multi, &still);
		if (mc != CURLM_OK) {
			log_err("drain: curl_multi_perform: %s", curl_multi_strerror(mc));
			quiesce(d, st);
			release_all(d, st, "libcurl failed");
			rc = -1;
			break;
		}
		reap(d);
		if (claiming)
			start_ready(d, st);

		now = mono_ms();
		npending = d->pending.n;
		if (settle_free(d) && now >= d->flush_retry_ms &&
		    (npending >= SETTLE_MAX || d->pending_bytes >= SETTLE_MAX_BYTES ||
		     (npending > 0 &&
		      (now - d->pending_since_ms >= SETTLE_WAIT_MS || d->active == 0)))) {
			if (settle_send(d, st) != 0 && !o->follow)
				failed = true;
			continue;
		}
		if (!o->follow && failed && d->active == 0 && !dbq_busy(&d->cq))
			break; /* --once: the database is gone; the leases take over */
		if (d->active == 0 && !dbq_busy(&d->cq) && !dbq_busy(&d->sq) &&
		    (!claiming || (!o->follow && !more_due)))
			continue; /* the top of the loop claims again or ends the run */

		/* Sleep until a transfer or the database needs us, a batch is due, the next
		 * claim, or a wake. */
		timeout = POLL_MAX_MS;
		if (npending > 0 && settle_free(d)) {
			int64_t at = d->pending_since_ms + SETTLE_WAIT_MS;

			if (at < d->flush_retry_ms)
				at = d->flush_retry_ms;
			if (at - now < timeout)
				timeout = (long)(at - now);
		}
		if (claiming && claim_ready(d, o, conc, more_due) && next_claim - now < timeout)
			timeout = (long)(next_claim - now);
		if (timeout < 0)
			timeout = 0;
		wait_on(&d->cq, wfd, &nwfd);
		if (d->sq.db != d->cq.db)
			wait_on(&d->sq, wfd, &nwfd);
		if (o->follow && o->wake_fd != NULL) {
			int fd = o->wake_fd(o->wake_arg);

			if (fd >= 0) {
				wake_i = (int)nwfd;
				wfd[nwfd].fd = fd;
				wfd[nwfd].events = CURL_WAIT_POLLIN;
				wfd[nwfd].revents = 0;
				nwfd++;
			}
		}
		mc = curl_multi_poll(d->multi, nwfd > 0 ? wfd : NULL, nwfd, (int)timeout, NULL);
		if (mc != CURLM_OK) {
			log_err("drain: curl_multi_poll: %s", curl_multi_strerror(mc));
			quiesce(d, st);
			release_all(d, st, "libcurl failed");
			rc = -1;
			break;
		}
		if (wake_i >= 0 && (wfd[wake_i].revents & CURL_WAIT_POLLIN) != 0) {
			if (o->wake != NULL)
				o->wake(o->wake_arg);
			next_claim = mono_ms();
			more_due = true;
		}
	}

	/* What is left to record: a few tries, then the leases take over. */
	quiesce(d, st);
	for (int i = 0; i < 3 && d->pending.n > 0; i++) {
		d->flush_retry_ms = 0;
		if (flush(d, st) == 0)
			break;
		nanosleep(&(struct timespec){0, 200000000L * (i + 1)}, NULL);
	}
	if (d->pending.n > 0) {
		st->unsettled += (int64_t)d->pending.n;
		log_err("drain: %zu outcomes not recorded (database unreachable); their calls are "
			"sent again after their lease",
			d->pending.n);
		outs_clear(&d->pending);
		rc = -1;
	}
	if (failed)
		rc = -1;
	st->ms = mono_ms() - t0;
	return rc;
}

/* The counters of struct drain_stats in their reporting order, for the JSON and text forms. */
static const struct {
	const char *name;
	size_t offset;
} stat_fields[] = {
	{"claimed", offsetof(struct drain_stats, claimed)},
	{"succeeded", offsetof(struct drain_stats, succeeded)},
	{"retried", offsetof(struct drain_stats, retried)},
	{"dead", offsetof(struct drain_stats, dead)},
	{"expired", offsetof(struct drain_stats, expired)},
	{"released", offsetof(struct drain_stats, released)},
	{"lost", offsetof(struct drain_stats, lost)},
	{"unsettled", offsetof(struct drain_stats, unsettled)},
	{"ms", offsetof(struct drain_stats, ms)},
};

static int64_t stat_value(const struct drain_stats *st, size_t i)
{
	return *(const int64_t *)(const void *)((const char *)st + stat_fields[i].offset);
}

void drain_stats_add(struct drain_stats *to, const struct drain_stats *from)
{
	for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
		int64_t *t = (int64_t *)(void *)((char *)to + stat_fields[i].offset);
		int64_t v = stat_value(from, i);

		if (stat_fields[i].offset == offsetof(struct drain_stats, ms))
			*t = v > *t ? v : *t; /* runs side by side: the longest is the wall time */
		else
			*t += v;
	}
}

char *drain_stats_json(const struct drain_stats *st)
{
	struct json_object *o = json_object_new_object();
	char *text;

	for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++)
		add_int(o, stat_fields[i].name, stat_value(st, i));
	text = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}

char *drain_stats_line(const struct drain_stats *st)
{
	struct buf b;

	buf_init(&b);
	for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++)
		buf_printf(&b, "%s%s=%" PRId64, i > 0 ? " " : "", stat_fields[i].name,
			   stat_value(st, i));
	return buf_take(&b, NULL);
}

char *drain_name(const char *prefix)
{
	char host[128];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	return xasprintf("%s%s:%ld", prefix, host, (long)getpid());
}
