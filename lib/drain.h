/* drain: the drain cycle that asyncgate-drainer (--once, --follow) and GET|POST /v1/drain share:
 * claim due calls, send them through libcurl's multi interface, settle outcomes in batches,
 * enqueue callbacks. */
#ifndef AG_DRAIN_H
#define AG_DRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "db.h"
#include "netpolicy.h"
#include "xalloc.h"

struct drain_opts {
	int concurrency;   /* transfers at once (>= 1) */
	int64_t max_ms;	   /* stop claiming after this long; 0 = no limit */
	int64_t hard_ms;   /* then abort what is still in flight and release it; 0 = never */
	int64_t max_calls; /* stop claiming after this many claims; 0 = no limit */
	bool follow;	   /* keep running when nothing is due, until *stop */
	/* settle on a second connection of the drainer's own, so that claims and settles run at
	 * once (asyncgate-drainer); false: both on db, one after the other (/v1/drain) */
	bool settle_session;
	/* calls claimed beyond the free slots while calls keep coming, started as slots free (or
	 * given back if that takes longer than half of drain_lease_margin); 0: none */
	int claim_ahead;
	/* Set by a signal handler: 1 = stop claiming, finish what is in flight; 2 or more = also
	 * abort and release what is in flight. NULL: never. */
	const volatile sig_atomic_t *stop;
	/* --follow: a descriptor that turns readable when the drainer should look at the queue
	 * now (the LISTEN connection's socket), asked for afresh on each wait (-1 = none), and
	 * what to call when it did (consume the notifications). NULL: none. */
	int (*wake_fd)(void *arg);
	void (*wake)(void *arg);
	void *wake_arg;
};

/* What a run did. Each claimed call ends in exactly one of the outcome counters, unless a
 * database failure left it unrecorded (unsettled; its lease runs out and it is claimed again). */
struct drain_stats {
	int64_t claimed;
	int64_t succeeded;
	int64_t retried;
	int64_t dead;
	int64_t expired;
	int64_t released;  /* given back unsent (hard stop) */
	int64_t lost;	   /* sent, but the lease had run out before the outcome was recorded */
	int64_t unsettled; /* outcome not recorded: the database was unreachable */
	int64_t ms;
};

struct drain;

/* A drainer using db (borrowed; connected or not), cf and np (borrowed; they must outlive it).
 * name identifies it in leases and attempt rows (copied). Initialises libcurl once per process.
 * Returns NULL (logged) if libcurl cannot start. */
struct drain *drain_new(const struct conf *cf, const struct netpolicy *np, struct db *db,
			const char *name) MUSTCHECK;
void drain_free(struct drain *d);

/* Runs the drain cycle until o says stop: without follow, until nothing more is due (or a
 * limit is hit) and everything claimed is settled. Fills *st.
 * Returns 0, or -1 when the database was unreachable or an outcome could not be recorded
 * (logged; what was claimed and not settled comes back after its lease). */
int drain_run(struct drain *d, const struct drain_opts *o, struct drain_stats *st) MUSTCHECK;

/* The upper bounds (ms) of the dispatch duration histogram of /metrics, ascending; *n gets
 * their number. attempt_stats.bucket_ms holds one of them, -1 (above the last) or -2 (no
 * request was made). */
const int *drain_buckets_ms(size_t *n);

/* Adds the counters of from to to; ms becomes the larger of the two (runs side by side, as the
 * drain loops of one drainer). */
void drain_stats_add(struct drain_stats *to, const struct drain_stats *from);
/* The stats as one JSON object text {"claimed":…,…,"ms":…}; caller frees. */
char *drain_stats_json(const struct drain_stats *st) MUSTCHECK;
/* The same as a log line's key=value pairs "claimed=… … ms=…"; caller frees. */
char *drain_stats_line(const struct drain_stats *st) MUSTCHECK;

/* The default name of a drainer in leases and attempt rows: prefix + "host:pid". Caller frees. */
char *drain_name(const char *prefix) MUSTCHECK;

/* ---- the pure parts, exported for the unit tests ---- */

enum send_verdict { SEND_OK, SEND_RETRY, SEND_DEAD };

struct statuses;

/* What an attempt's result means: status is the HTTP status (0 when none came), curl_code the
 * transfer's CURLcode, refused true when the address policy stopped the connection, retry_on
 * and give_up_on the call's own lists (NULL or empty: none).
 * 2xx: OK. A status in give_up_on: DEAD. Connection errors, timeouts, 408, 425, 429, 5xx and
 * the statuses in retry_on: RETRY. Refused addresses, URLs libcurl cannot use, too many
 * redirects, and every other status: DEAD. */
enum send_verdict drain_verdict(long status, int curl_code, bool refused,
				const struct statuses *retry_on, const struct statuses *give_up_on);

/* Delay before the next attempt after `failures` failed attempts (>= 1): uniform in
 * [initial, min(max, initial * 2^failures)] (exponential backoff, full jitter above the
 * initial delay; with initial 0 the upper end starts at 1 ms and doubles), u in [0, 1).
 * A Retry-After of retry_after_ms (>= 0; -1 = none) is a floor. */
int64_t drain_backoff_ms(int64_t initial_ms, int64_t max_ms, int failures, double u,
			 int64_t retry_after_ms);

/* The URL of a call: target, or base_url + path, then "?query" (or "&query" when the URL has a
 * query already) when query is not empty. Returns a new string; caller frees. */
char *drain_url(const char *target, const char *base_url, const char *path,
		const char *query) MUSTCHECK;

#endif
