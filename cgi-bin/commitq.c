/* commitq: group commit for the accept path (one insert statement for many requests). */
#include "commitq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct commitq {
	pthread_mutex_t mu;
	pthread_cond_t wake; /* the committer: something was queued, or stop */
	struct cq_entry *head, *tail;
	bool stop;
	bool idle; /* the committer waits on wake (else it looks at the queue before it does) */
	bool gathering;	 /* the committer waits on wake for the requests still coming */
	bool lingering;	 /* ... and, under load, for commit_linger_us whatever comes */
	int coming;	 /* requests being served that have not queued (commitq_arrive) */
	size_t queued;	 /* entries in the queue */
	long gather_us;	 /* the longest a group waits for requests still coming */
	long linger_us;	 /* under load, the least a group waits (commit_linger_us) */
	size_t last_m;	 /* requests in the last group: more than one = under load */
	uint64_t groups; /* statements run (tests) */
	pthread_t thr;
	struct db db; /* the committer's own connection */
	int64_t notify_interval_ms;
	int64_t last_notify_ms;
	struct cq_entry *group[CQ_MAX_ENTRIES];
};

/* Where call id i of entry e lives, to match RETURNING rows (in no promised order) to it. */
struct slot {
	const char *id;
	struct cq_entry *e;
	size_t i;
};

static int slot_cmp(const void *a, const void *b)
{
	return strcmp(((const struct slot *)a)->id, ((const struct slot *)b)->id);
}

static void entry_failed(struct cq_entry *e, const struct db *db)
{
	e->result = CQ_FAILED;
	e->error = db->error;
	snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", db->sqlstate);
}

/* Fills the entries from rows (id, not_before, scheduled) of a committed insert (or find). */
static void distribute(const PGresult *res, struct cq_entry *const *e, size_t m)
{
	size_t total = 0, k = 0;
	struct slot *slots;

	for (size_t j = 0; j < m; j++)
		total += e[j]->n;
	slots = xcalloc(total, sizeof(*slots));
	for (size_t j = 0; j < m; j++) {
		e[j]->due = false;
		for (size_t i = 0; i < e[j]->n; i++) {
			e[j]->not_before[i][0] = '\0';
			e[j]->scheduled[i] = false;
			slots[k++] = (struct slot){e[j]->ids[i], e[j], i};
		}
	}
	qsort(slots, total, sizeof(*slots), slot_cmp);
	for (int r = 0; r < PQntuples(res); r++) {
		struct slot key = {PQgetvalue(res, r, 0), NULL, 0};
		struct slot *s = bsearch(&key, slots, total, sizeof(*slots), slot_cmp);

		if (s == NULL || PQgetisnull(res, r, 1))
			continue;
		snprintf(s->e->not_before[s->i], CQ_TS_LEN, "%s", PQgetvalue(res, r, 1));
		s->e->scheduled[s->i] = PQgetvalue(res, r, 2)[0] == 't';
		if (!s->e->scheduled[s->i])
			s->e->due = true;
	}
	for (size_t j = 0; j < m; j++) {
		size_t got = 0;

		for (size_t i = 0; i < e[j]->n; i++)
			if (e[j]->not_before[i][0] != '\0')
				got++;
		if (got == 0 && e[j]->key_checked)
			e[j]->result = CQ_AUTH_STALE; /* (or its key was taken: asked again) */
		else if (got == 0 && e[j]->key != NULL)
			e[j]->result = CQ_KEY_TAKEN; /* its key row conflicted: no call went in */
		else
			e[j]->result = CQ_ACCEPTED;
	}
	free(slots);
}

/* "[a,b]" + "[c]" -> "[a,b,c]": the rows of every entry as one JSON array, and the key rows. */
static void join_params(struct cq_entry *const *e, size_t m, struct buf *rows, struct buf *keys,
			struct buf *ids)
{
	bool first_key = true;

	buf_puts(rows, "[");
	buf_puts(keys, "[");
	buf_puts(ids, "[");
	for (size_t j = 0; j < m; j++) {
		size_t len = strlen(e[j]->rows);

		if (j > 0)
			buf_puts(rows, ",");
		/* the text between the outer brackets */
		if (len >= 2)
			buf_append(rows, e[j]->rows + 1, len - 2);
		if (e[j]->keyrow != NULL) {
			if (!first_key)
				buf_puts(keys, ",");
			buf_puts(keys, e[j]->keyrow);
			first_key = false;
		}
		for (size_t i = 0; i < e[j]->n; i++)
			buf_printf(ids, "%s\"%s\"", j == 0 && i == 0 ? "" : ",", e[j]->ids[i]);
	}
	buf_puts(rows, "]");
	buf_puts(keys, "]");
	buf_puts(ids, "]");
}

/* One try of the group: 0 with the entries filled, or -1 with db->error set. The insert is made
 * safe against a connection that breaks while it is out: the ids are ours, so whether it
 * committed can be read back, and it is sent again only if it did not. */
static int run_once(struct db *db, struct cq_entry *const *e, size_t m)
{
	struct buf rows, keys, ids;
	const char *params[2];
	PGresult *res;
	int rc = -1;

	buf_init(&rows);
	buf_init(&keys);
	buf_init(&ids);
	join_params(e, m, &rows, &keys, &ids);
	params[0] = rows.data;
	params[1] = keys.data;
	res = db_exec(db, Q_CALLS_INSERT, params);
	if (res == NULL && db->error == DB_LOST) {
		const char *fparams[1] = {ids.data};

		res = db_exec(db, Q_CALLS_FIND, fparams);
		if (res != NULL && PQntuples(res) > 0) {
			/* One statement commits whole: any row means all of it went in (an entry
			 * without rows then had its key taken). */
			log_info("enqueue: committed before the connection broke first=%s",
				 PQgetvalue(res, 0, 0));
		} else if (res != NULL) {
			PQclear(res);
			res = db_exec(db, Q_CALLS_INSERT, params);
		} else {
			db->error = DB_LOST; /* whether it committed is still unknown */
		}
	}
	if (res != NULL) {
		distribute(res, e, m);
		rc = 0;
	}
	PQclear(res);
	buf_cleanup(&ids);
	buf_cleanup(&keys);
	buf_cleanup(&rows);
	return rc;
}

void commitq_run(struct db *db, struct cq_entry *const *e, size_t m)
{
	if (run_once(db, e, m) == 0)
		return;
	if (m > 1 && db->error == DB_QUERY) {
		/* Something in one request broke the statement (a constraint, say): the others
		 * must not fail with it. Nothing was committed, so each is tried alone. */
		log_warn("enqueue: a group of %zu requests failed (sqlstate=%s); trying each alone",
			 m, db->sqlstate);
		for (size_t j = 0; j < m; j++)
			if (run_once(db, &e[j], 1) != 0)
				entry_failed(e[j], db);
		return;
	}
	for (size_t j = 0; j < m; j++)
		entry_failed(e[j], db);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Takes the longest prefix of the queue that fits one group: at most CQ_MAX_ENTRIES requests
 * and CQ_MAX_CALLS calls (but always one), and no Idempotency-Key twice (ON CONFLICT DO NOTHING
 * would let both through: the second waits for the next group), nor two entries of one client
 * with debounce keys (both would stay pending). Called with q->mu held. */
static size_t take_group(struct commitq *q)
{
	size_t m = 0, calls = 0;

	while (q->head != NULL && m < CQ_MAX_ENTRIES) {
		struct cq_entry *e = q->head;
		bool dup = false;

		if (m > 0 && calls + e->n > CQ_MAX_CALLS)
			break;
		for (size_t j = 0; e->key != NULL && j < m && !dup; j++)
			dup = q->group[j]->key != NULL && strcmp(q->group[j]->key, e->key) == 0 &&
			      strcmp(q->group[j]->client, e->client) == 0;
		for (size_t j = 0; e->debounce && j < m && !dup; j++)
			dup = q->group[j]->debounce && strcmp(q->group[j]->client, e->client) == 0;
		if (dup)
			break;
		q->head = e->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->group[m++] = e;
		q->queued--;
		calls += e->n;
	}
	return m;
}

/* t = now + us, on the monotonic clock of wake's timed waits. */
static void deadline(struct timespec *t, long us)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += us / 1000000;
	t->tv_nsec += us % 1000000 * 1000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

/* Whether the monotonic clock has reached t. */
static bool passed(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* Waits (q->mu held) while requests that were taken in are still being read and checked, at
 * most gather_us (CQ_GATHER_US) from now: they then share the commit of the entries already
 * queued, instead of each small group paying a statement and a WAL flush. Requests that need
 * no insert depart, so the wait ends early. Under load (the last group held more than one
 * request) it first waits linger_us (commit_linger_us) for whatever comes. */
static void gather(struct commitq *q)
{
	bool linger = q->linger_us > 0 && q->last_m > 1;
	struct timespec until, lin;

	if ((q->coming <= 0 && !linger) || q->queued >= CQ_MAX_ENTRIES || q->stop)
		return;
	deadline(&until, q->gather_us);
	deadline(&lin, q->linger_us);
	q->gathering = true;
	while (q->queued < CQ_MAX_ENTRIES && !q->stop) {
		q->lingering = linger && !passed(&lin);
		if (q->lingering)
			pthread_cond_timedwait(&q->wake, &q->mu, &lin);
		else if (q->coming > 0 && !passed(&until))
			pthread_cond_timedwait(&q->wake, &q->mu, &until);
		else
			break;
	}
	q->gathering = false;
	q->lingering = false;
}

static void *committer(void *arg)
{
	struct commitq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		size_t m;
		bool due = false;

		while (q->head == NULL && !q->stop) {
			q->idle = true;
			pthread_cond_wait(&q->wake, &q->mu);
			q->idle = false;
		}
		if (q->head == NULL)
			break; /* stopping, and nothing left */
		gather(q);
		m = take_group(q);
		q->last_m = m;
		q->groups++;
		pthread_mutex_unlock(&q->mu);
		commitq_run(&q->db, q->group, m);
		for (size_t j = 0; j < m; j++)
			due = due || (q->group[j]->result == CQ_ACCEPTED && q->group[j]->due);
		/* Without the lock (a woken waiter does not then queue up behind it). Once
		 * posted, an entry may be gone: the waiter returns and frees it. */
		for (size_t j = 0; j < m; j++)
			sem_post(&q->group[j]->done);
		if (due && (q->last_notify_ms == 0 ||
			    now_ms() - q->last_notify_ms >= q->notify_interval_ms)) {
			PGresult *n;

			/* Wake the --follow drainers, after the answers are on their way. NOTIFY
			 * serialises committing transactions, so at most one per interval; the
			 * drainers poll too, so a skipped one costs latency, never a call. */
			q->last_notify_ms = now_ms();
			n = db_exec(&q->db, Q_NOTIFY, NULL);
			PQclear(n); /* a failure is logged; the drainers' polling covers it */
		}
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

struct commitq *commitq_new(const char *conninfo, int64_t notify_interval_ms, long linger_us)
{
	struct commitq *q = xcalloc(1, sizeof(*q));
	pthread_condattr_t ca;
	int err;

	pthread_mutex_init(&q->mu, NULL);
	/* Timed waits on wake run on the monotonic clock: a step of the wall clock must not
	 * stretch a group's wait. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->wake, &ca);
	pthread_condattr_destroy(&ca);
	db_init(&q->db, conninfo);
	q->notify_interval_ms = notify_interval_ms;
	q->gather_us = CQ_GATHER_US;
	q->linger_us = linger_us;
	err = pthread_create(&q->thr, NULL, committer, q);
	if (err != 0) {
		log_err("commitq: cannot start the committer thread: error %d", err);
		db_cleanup(&q->db);
		pthread_cond_destroy(&q->wake);
		pthread_mutex_destroy(&q->mu);
		free(q);
		return NULL;
	}
	return q;
}

void commitq_free(struct commitq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->thr, NULL);
	db_cleanup(&q->db);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* Called with q->mu held: wakes a gathering committer once nothing more is to come (a
 * lingering one only when the group is full: it waits out its time anyway). */
static void gathered(struct commitq *q)
{
	if (q->gathering && (q->queued >= CQ_MAX_ENTRIES || (!q->lingering && q->coming <= 0)))
		pthread_cond_signal(&q->wake);
}

void commitq_arrive(struct commitq *q, bool *counted)
{
	if (*counted)
		return;
	pthread_mutex_lock(&q->mu);
	q->coming++;
	pthread_mutex_unlock(&q->mu);
	*counted = true;
}

void commitq_depart(struct commitq *q, bool *counted)
{
	if (!*counted)
		return;
	pthread_mutex_lock(&q->mu);
	q->coming--;
	gathered(q);
	pthread_mutex_unlock(&q->mu);
	*counted = false;
}

/* Appends e to the queue (q->mu held). */
static void enqueue(struct commitq *q, struct cq_entry *e)
{
	e->next = NULL;
	if (q->tail != NULL)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	q->queued++;
}

void commitq_submit(struct commitq *q, struct cq_entry *e, bool *counted)
{
	sem_init(&e->done, 0, 0);
	pthread_mutex_lock(&q->mu);
	enqueue(q, e);
	if (*counted) {
		q->coming--;
		*counted = false;
	}
	if (q->idle)
		pthread_cond_signal(&q->wake);
	else
		gathered(q);
	pthread_mutex_unlock(&q->mu);
	/* sem_wait returns early on a signal (EINTR): wait on. glibc lets the waiter destroy
	 * the semaphore as soon as sem_wait returns, while sem_post may still be returning. */
	while (sem_wait(&e->done) != 0)
		;
	sem_destroy(&e->done);
}
