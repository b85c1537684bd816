/* commitq: group commit for the accept path. The worker threads of a handler process queue
 * their checked calls here and wait; one committer thread inserts everything queued in one
 * statement (one transaction, one WAL flush) and then wakes each waiter, so no 202 leaves
 * before the commit of its calls, and concurrent requests share a commit. */
#ifndef AG_COMMITQ_H
#define AG_COMMITQ_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define CQ_TS_LEN 32	   /* an ag_ts timestamp and its NUL */
#define CQ_MAX_CALLS 1000  /* calls in one group statement (a bigger request goes alone) */
#define CQ_MAX_ENTRIES 256 /* requests in one group statement */
#define CQ_GATHER_US 1000  /* the longest a group waits for requests still being read */

enum cq_result {
	CQ_ACCEPTED,   /* the calls are committed: not_before and scheduled are set */
	CQ_KEY_TAKEN,  /* the Idempotency-Key was taken by an earlier request: nothing inserted */
	CQ_FAILED,     /* nothing committed (or, with DB_LOST, unknown): error and sqlstate */
	CQ_AUTH_STALE, /* key_checked, and the API key row changed or was revoked since it was
			* cached: nothing inserted; authenticate afresh and try again */
};

/* One request's calls. The caller owns the entry and everything it points to; the in fields
 * are borrowed until commitq_run or commitq_submit returns. */
struct cq_entry {
	/* in */
	const char *rows;	/* JSON array text: one call_row_json object per call, each with
				 * "id", "client" and "ikey" (the key, or null) */
	const char *keyrow;	/* JSON object text {client, key, hash, ids, batch}, or NULL
				 * without an Idempotency-Key */
	const char *client;	/* with keyrow: no two entries of one group share client and key */
	const char *key;	/* NULL without an Idempotency-Key */
	const char *const *ids; /* the n call ids of rows, in request order */
	size_t n;
	bool key_checked; /* rows carry kid and kxmin (a cached API key; see Q_CALLS_INSERT) */
	bool debounce;	  /* a call has a debounce_key: no other such entry of client in the
			   * group (ag_debounce could not tell their calls apart) */
	/* out */
	enum cq_result result;
	enum db_error error;	       /* CQ_FAILED: DB_UNAVAILABLE, DB_LOST or DB_QUERY */
	char sqlstate[6];	       /* DB_QUERY */
	char (*not_before)[CQ_TS_LEN]; /* n slots from the caller; "" when no row came back */
	bool *scheduled;	       /* n slots from the caller */
	bool due;		       /* a call is due now (a drainer may want a NOTIFY) */
	/* private to commitq.c */
	sem_t done; /* posted by the committer once the out fields are set */
	struct cq_entry *next;
};

struct commitq;

/* Inserts the calls of e[0..m) with one Q_CALLS_INSERT on db and fills each entry's out
 * fields. When that statement fails on its data (DB_QUERY), each entry is tried again alone, so
 * that one bad request does not fail the others. A connection lost while the statement was
 * out is checked (the ids are ours: Q_CALLS_FIND) before anything is sent again. */
void commitq_run(struct db *db, struct cq_entry *const *e, size_t m);

/* A queue with its committer thread and its own connection (conninfo, as db_init). NOTIFYs
 * the drainers of due calls at most once per notify_interval_ms. When its last group held more
 * than one request, a group waits linger_us for more before it is committed (0: never).
 * Returns NULL (logged) when the thread cannot start. */
struct commitq *commitq_new(const char *conninfo, int64_t notify_interval_ms,
			    long linger_us) MUSTCHECK;

/* Runs what is still queued, stops the committer and frees q. NULL is a no-op. */
void commitq_free(struct commitq *q);

/* A request was taken in that may queue an entry: the committer waits a little for it before
 * it commits what is queued (*counted, the request's own flag, becomes true). Thread-safe. */
void commitq_arrive(struct commitq *q, bool *counted);

/* The request counted by commitq_arrive will not queue (any more): a no-op unless *counted. */
void commitq_depart(struct commitq *q, bool *counted);

/* Queues e and returns once its group has run (e's out fields are set); a request counted by
 * commitq_arrive stops being awaited (*counted becomes false). Thread-safe. */
void commitq_submit(struct commitq *q, struct cq_entry *e, bool *counted);

#endif
