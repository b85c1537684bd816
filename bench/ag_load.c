/* ag_load: the load make bench needs and wrk cannot give: a steady offered rate, and calls
 * scheduled over a window of time. libcurl multi on loopback only.
 *
 *   ag_load pace --url URL --target URL --rate N --seconds S [--key K] [--max-inflight N]
 *     POSTs one ~1 KB call instruction every 1/N s (open loop: the schedule does not wait for
 *     answers) for S s. Each call carries the header "X-Bench-Sent: <epoch seconds>", the time
 *     it was scheduled to be sent (so a send held up by a slow server counts against the
 *     latency), which the drainer forwards to the target: the target's log gives accept ->
 *     delivery latency.
 *   ag_load deferred --url URL --target URL --count N --spread-ms S --start-ms D
 *                    [--batch B] [--key K]
 *     POSTs N calls in batches of B (default 1000, 4 requests at once), call i with not_before
 *     = T0 + i * S / N where T0 = now + D, each carrying "X-Bench-Due: <epoch seconds>".
 *
 * Prints one line of key=value pairs (sent, ok, fail, seconds, rate, accept_p50_ms, ...); exits 1
 * when any request failed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#define PAD_TO 1024 /* bytes of one call instruction */

struct opts {
	const char *mode;
	const char *url;
	const char *target;
	const char *key;
	double rate;
	double seconds;
	long count;
	long spread_ms;
	long start_ms;
	long batch;
	long max_inflight;
};

/* One request in flight. */
struct xfer {
	CURL *h;
	struct curl_slist *hdrs;
	double sched; /* monotonic seconds it was due to be sent */
	long calls;   /* call instructions in it */
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t sz, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return sz * n;
}

static void die(const char *msg)
{
	fprintf(stderr, "ag_load: %s\n", msg);
	exit(2);
}

/* Appends one call instruction to buf at *len: target, a JSON body padded so that the
 * instruction is about PAD_TO bytes, the bench header hname: hval, and not_before when given. */
static void put_call(char *buf, size_t cap, size_t *len, const char *target, const char *hname,
		     double hval, const char *not_before, long seq)
{
	char head[512];
	int n, pad;

	n = snprintf(
		head, sizeof(head),
		"{\"target\": \"%s\", \"method\": \"POST\", "
		"\"headers\": {\"Content-Type\": \"application/json\", \"%s\": \"%.6f\"}, "
		"%s%s%s\"correlation_id\": \"bench-%ld\", \"body\": {\"order\": %ld, \"pad\": \"",
		target, hname, hval, not_before ? "\"not_before\": \"" : "",
		not_before ? not_before : "", not_before ? "\", " : "", seq, seq);
	if (n < 0 || (size_t)n >= sizeof(head))
		die("target too long");
	pad = PAD_TO - n - 4;
	if (pad < 0)
		pad = 0;
	if (*len + (size_t)n + (size_t)pad + 8 > cap)
		die("batch buffer too small");
	memcpy(buf + *len, head, (size_t)n);
	*len += (size_t)n;
	memset(buf + *len, 'x', (size_t)pad);
	*len += (size_t)pad;
	memcpy(buf + *len, "\"}}", 3);
	*len += 3;
	buf[*len] = '\0';
}

static void start(CURLM *m, const struct opts *o, const char *body, size_t len, double sched,
		  long calls)
{
	struct xfer *x = calloc(1, sizeof(*x));
	char auth[600];

	if (x == NULL || (x->h = curl_easy_init()) == NULL)
		die("out of memory");
	x->sched = sched;
	x->calls = calls;
	x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	if (o->key != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->key);
		x->hdrs = curl_slist_append(x->hdrs, auth);
	}
	curl_easy_setopt(x->h, CURLOPT_URL, o->url);
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(x->h, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	curl_multi_add_handle(m, x->h);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pctl(const double *v, long n, double p)
{
	long i;

	if (n == 0)
		return 0;
	i = (long)(p * (double)n + 0.5) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

/* Reaps finished transfers: counts, and accept latencies (ms, from the scheduled send time). */
static void reap(CURLM *m, int *inflight, long *ok, long *fail, double *lat, long *nlat,
		 long latcap)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		struct xfer *x;
		long status = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (msg->data.result == CURLE_OK && status == 202) {
			*ok += x->calls;
			if (*nlat < latcap)
				lat[(*nlat)++] = (mono() - x->sched) * 1000.0;
		} else {
			*fail += x->calls;
			if (*fail <= 5 * x->calls)
				fprintf(stderr, "ag_load: status %ld, %s\n", status,
					curl_easy_strerror(msg->data.result));
		}
		curl_multi_remove_handle(m, x->h);
		curl_easy_cleanup(x->h);
		curl_slist_free_all(x->hdrs);
		free(x);
		(*inflight)--;
	}
}

static void rfc3339(int64_t t_ms, char out[80])
{
	time_t s = (time_t)(t_ms / 1000);
	struct tm tm;
	int ms = (int)(t_ms % 1000);

	gmtime_r(&s, &tm);
	snprintf(out, 80, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

static int run(const struct opts *o)
{
	int pace = strcmp(o->mode, "pace") == 0;
	long total = pace ? (long)(o->rate * o->seconds) : (o->count + o->batch - 1) / o->batch;
	long max_inflight = pace ? o->max_inflight : 4;
	size_t cap = (size_t)(pace ? 1 : o->batch) * (PAD_TO + 256) + 16;
	char *buf = malloc(cap);
	double *lat = calloc((size_t)total + 1, sizeof(double));
	double t0, t0_wall = 0, first_due = 0, now, elapsed;
	long sent = 0, ok = 0, fail = 0, nlat = 0, late = 0, done_calls = 0;
	int inflight = 0;
	CURLM *m = curl_multi_init();

	if (buf == NULL || lat == NULL || m == NULL)
		die("out of memory");
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, max_inflight);
	t0_wall = wall();
	t0 = mono();
	if (!pace)
		first_due = t0_wall + (double)o->start_ms / 1000.0;
	while (sent < total || inflight > 0) {
		int still;
		long wait_ms = 10;

		now = mono();
		while (sent < total && inflight < max_inflight) {
			double due = pace ? t0 + (double)sent / o->rate : now;
			size_t len = 0;
			long calls = 0;

			if (due > now) {
				wait_ms = (long)((due - now) * 1000.0);
				break;
			}
			if (pace && now - due > 0.05)
				late++;
			if (pace) {
				/* the scheduled time: a send that is late counts as latency */
				put_call(buf, cap, &len, o->target, "X-Bench-Sent",
					 t0_wall + (due - t0), NULL, sent);
				calls = 1;
			} else {
				buf[len++] = '[';
				for (long i = sent * o->batch;
				     i < o->count && i < (sent + 1) * o->batch; i++) {
					int64_t at = (int64_t)(first_due * 1000.0) +
						     (int64_t)i * o->spread_ms / o->count;
					char nb[80];

					rfc3339(at, nb);
					if (calls > 0)
						buf[len++] = ',';
					put_call(buf, cap, &len, o->target, "X-Bench-Due",
						 (double)at / 1000.0, nb, i);
					calls++;
				}
				buf[len++] = ']';
				buf[len] = '\0';
			}
			start(m, o, buf, len, due, calls);
			done_calls += calls;
			inflight++;
			sent++;
		}
		curl_multi_perform(m, &still);
		reap(m, &inflight, &ok, &fail, lat, &nlat, total);
		if (sent >= total || inflight >= max_inflight)
			wait_ms = 10;
		if (wait_ms > 10)
			wait_ms = 10;
		if (wait_ms > 0)
			curl_multi_poll(m, NULL, 0, (int)wait_ms, NULL);
	}
	elapsed = mono() - t0;
	qsort(lat, (size_t)nlat, sizeof(double), cmp_double);
	printf("sent=%ld ok=%ld fail=%ld seconds=%.3f rate=%.1f accept_p50_ms=%.2f "
	       "accept_p99_ms=%.2f accept_max_ms=%.2f late_sends=%ld",
	       done_calls, ok, fail, elapsed, (double)ok / elapsed, pctl(lat, nlat, 0.50),
	       pctl(lat, nlat, 0.99), nlat > 0 ? lat[nlat - 1] : 0.0, late);
	if (!pace)
		printf(" first_due=%.3f last_due=%.3f inserted_by=%.3f", first_due,
		       first_due + (double)o->spread_ms / 1000.0, t0_wall + elapsed);
	printf("\n");
	curl_multi_cleanup(m);
	free(buf);
	free(lat);
	return fail == 0 ? 0 : 1;
}

static void usage(void)
{
	fputs("usage: ag_load pace --url URL --target URL --rate N --seconds S [--key K]"
	      " [--max-inflight N]\n"
	      "       ag_load deferred --url URL --target URL --count N --spread-ms S"
	      " --start-ms D [--batch B] [--key K]\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = {.batch = 1000, .max_inflight = 512};
	int rc;

	if (argc < 2)
		usage();
	o.mode = argv[1];
	if (strcmp(o.mode, "pace") != 0 && strcmp(o.mode, "deferred") != 0)
		usage();
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];

		if (strcmp(a, "--url") == 0)
			o.url = v;
		else if (strcmp(a, "--target") == 0)
			o.target = v;
		else if (strcmp(a, "--key") == 0)
			o.key = *v != '\0' ? v : NULL;
		else if (strcmp(a, "--rate") == 0)
			o.rate = atof(v);
		else if (strcmp(a, "--seconds") == 0)
			o.seconds = atof(v);
		else if (strcmp(a, "--count") == 0)
			o.count = atol(v);
		else if (strcmp(a, "--spread-ms") == 0)
			o.spread_ms = atol(v);
		else if (strcmp(a, "--start-ms") == 0)
			o.start_ms = atol(v);
		else if (strcmp(a, "--batch") == 0)
			o.batch = atol(v);
		else if (strcmp(a, "--max-inflight") == 0)
			o.max_inflight = atol(v);
		else
			usage();
	}
	if (o.url == NULL || o.target == NULL || o.batch < 1 || o.max_inflight < 1 ||
	    (strcmp(o.mode, "pace") == 0 && (o.rate <= 0 || o.seconds <= 0)) ||
	    (strcmp(o.mode, "deferred") == 0 && (o.count < 1 || o.spread_ms < 0)))
		usage();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = run(&o);
	curl_global_cleanup();
	return rc;
}
