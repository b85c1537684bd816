/* dbq: one prepared statement at a time sent on a struct db's connection without waiting for
 * its answer, so that the drainer keeps its HTTP transfers moving while PostgreSQL claims and
 * settles. The same rules as db_exec: reconnect on a broken connection and send an idempotent
 * statement once more, run a statement again after a serialization failure or deadlock. */
#ifndef AG_DBQ_H
#define AG_DBQ_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "db.h"
#include "queries.h"
#include "xalloc.h"

#define DBQ_MAX_PARAMS 8

struct dbq {
	struct db *db;		      /* borrowed */
	int q;			      /* enum query_id of the statement out; -1 = none */
	char *params[DBQ_MAX_PARAMS]; /* owned copies, to send it again */
	int serial;		      /* serialization failures so far */
	bool lost;		      /* the connection broke once during it */
	bool flushing;		      /* part of it is still to be written (wait for POLLOUT) */
	int format;		      /* of its result: 0 text, 1 binary (PQsendQueryPrepared) */
	PGresult *res;		      /* owned: its answer, while libpq finishes the exchange */
};

/* Statements go on db (borrowed; it must outlive x). No statement is out. */
void dbq_init(struct dbq *x, struct db *db);
/* Forgets a statement still out (dropping the connection, whose state is unknown then). */
void dbq_cleanup(struct dbq *x);

static inline bool dbq_busy(const struct dbq *x)
{
	return x->q >= 0;
}

/* Sends statement q with text params (copied; NULL entries are SQL NULL), connecting first if
 * needed (blocking). x must not be busy, and nothing else may be out on its connection.
 * Returns 0, or -1 with x->db->error set (logged). */
int dbq_send(struct dbq *x, enum query_id q, const char *const *params) MUSTCHECK;
/* The same, with the result in format 0 (text) or 1 (binary: each column in its type's binary
 * form; a text column is its bytes, a bytea column the raw bytes). */
int dbq_send_format(struct dbq *x, enum query_id q, const char *const *params,
		    int format) MUSTCHECK;

/* The descriptor to wait on while x is busy (-1 when idle), and whether to wait for it to turn
 * writable (true) or readable. */
int dbq_fd(const struct dbq *x);
bool dbq_wants_write(const struct dbq *x);

/* Reads what has come without blocking. Returns 0 while the statement is still running; 1 when
 * it succeeded, with its result in *out (the caller PQclear()s it); -1 when it failed, with
 * x->db->error set as db_exec would (logged). After 1 or -1, x is idle. */
int dbq_poll(struct dbq *x, PGresult **out) MUSTCHECK;

/* Blocks until the statement is over: 1 or -1 as dbq_poll; 0 when x was idle. */
int dbq_wait(struct dbq *x, PGresult **out) MUSTCHECK;

#endif
