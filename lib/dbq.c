/* dbq: a prepared statement sent without waiting (libpq's asynchronous interface:
 * PQsendQueryPrepared, PQflush, PQconsumeInput, PQisBusy, PQgetResult), for the drainer. */
#include "dbq.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void dbq_init(struct dbq *x, struct db *db)
{
	memset(x, 0, sizeof(*x));
	x->db = db;
	x->q = -1;
}

static void forget(struct dbq *x)
{
	for (int i = 0; i < DBQ_MAX_PARAMS; i++) {
		free(x->params[i]);
		x->params[i] = NULL;
	}
	PQclear(x->res);
	x->res = NULL;
	x->q = -1;
	x->serial = 0;
	x->lost = false;
	x->flushing = false;
	x->format = 0;
}

void dbq_cleanup(struct dbq *x)
{
	if (dbq_busy(x) && x->db->conn != NULL) {
		/* an answer still on its way would be read as the next statement's */
		PQfinish(x->db->conn);
		x->db->conn = NULL;
	}
	forget(x);
}

/* The broken connection goes; the next send connects afresh (db_connect). */
static void drop(struct dbq *x)
{
	PQfinish(x->db->conn);
	x->db->conn = NULL;
}

/* Writes what libpq still holds of the statement. Returns 0, or -1 when the connection broke. */
static int push(struct dbq *x)
{
	int r = PQflush(x->db->conn);

	x->flushing = r == 1;
	return r < 0 ? -1 : 0;
}

/* (Re)sends x's statement; 0, or -1 with db->error set. */
static int transmit(struct dbq *x)
{
	struct db *db = x->db;
	const struct query *qq = &queries[x->q];
	char msg[512];

	if (db_connect(db) != 0) {
		db->error = x->lost && !qq->idempotent ? DB_LOST : DB_UNAVAILABLE;
		return -1;
	}
	if (x->lost && !qq->idempotent) {
		/* reconnected, but the statement may have committed before the break */
		db->error = DB_LOST;
		return -1;
	}
	if (PQsetnonblocking(db->conn, 1) != 0 ||
	    PQsendQueryPrepared(db->conn, qq->name, qq->nparams, (const char *const *)x->params,
				NULL, NULL, x->format) != 1 ||
	    push(x) != 0) {
		log_warn("db %s: could not send: %s", qq->name,
			 log_flat(msg, sizeof(msg), PQerrorMessage(db->conn)));
		drop(x);
		if (qq->idempotent && !x->lost) {
			x->lost = true;
			return transmit(x);
		}
		db->error = qq->idempotent ? DB_UNAVAILABLE : DB_LOST;
		return -1;
	}
	return 0;
}

int dbq_send(struct dbq *x, enum query_id q, const char *const *params)
{
	return dbq_send_format(x, q, params, 0);
}

int dbq_send_format(struct dbq *x, enum query_id q, const char *const *params, int format)
{
	forget(x);
	x->q = (int)q;
	x->format = format;
	for (int i = 0; i < queries[q].nparams && i < DBQ_MAX_PARAMS; i++)
		x->params[i] = params[i] != NULL ? xstrdup(params[i]) : NULL;
	if (transmit(x) != 0) {
		forget(x);
		return -1;
	}
	return 0;
}

int dbq_fd(const struct dbq *x)
{
	if (!dbq_busy(x) || x->db->conn == NULL)
		return -1;
	return PQsocket(x->db->conn);
}

bool dbq_wants_write(const struct dbq *x)
{
	return dbq_busy(x) && x->flushing;
}

/* The statement is over with x->res (NULL: the connection broke). Returns 1 (*out set), 0 (sent
 * again) or -1 (db->error set). */
static int finish(struct dbq *x, PGresult **out)
{
	struct db *db = x->db;
	const struct query *qq = &queries[x->q];
	PGresult *res = x->res;
	ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *code;
	char msg[512];

	if (res != NULL && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) {
		x->res = NULL;
		*out = res;
		db->error = DB_OK;
		forget(x);
		return 1;
	}
	if (res == NULL || PQstatus(db->conn) == CONNECTION_BAD) {
		log_warn("db %s: connection lost: %s", qq->name,
			 log_flat(msg, sizeof(msg), PQerrorMessage(db->conn)));
		PQclear(x->res);
		x->res = NULL;
		drop(x);
		if (!x->lost) {
			x->lost = true;
			if (transmit(x) == 0)
				return 0;
		} else {
			db->error = DB_UNAVAILABLE;
		}
		forget(x);
		return -1;
	}
	code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", code != NULL ? code : "");
	code = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	snprintf(db->errmsg, sizeof(db->errmsg), "%s", code != NULL ? code : "");
	code = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
	snprintf(db->errcolumn, sizeof(db->errcolumn), "%s", code != NULL ? code : "");
	PQclear(x->res);
	x->res = NULL;
	if (db_sqlstate_retry(db->sqlstate)) {
		if (x->serial++ < 3) {
			/* rolled back whole (a concurrent move between calls_live and calls_done,
			 * or a deadlock): look again, as db_exec does */
			log_debug("db %s: serialization failure, running it again", qq->name);
			if (transmit(x) == 0)
				return 0;
			forget(x);
			return -1;
		}
		/* still racing: the caller decides (the drainer claims again a moment later) */
		log_warn("db %s: serialization failure %d times in a row: sqlstate=%s %s", qq->name,
			 x->serial, db->sqlstate, log_flat(msg, sizeof(msg), db->errmsg));
		db->error = DB_QUERY;
	} else if (db_sqlstate_unavailable(db->sqlstate)) {
		log_warn("db %s: server unavailable: sqlstate=%s %s", qq->name, db->sqlstate,
			 log_flat(msg, sizeof(msg), db->errmsg));
		db->error = DB_UNAVAILABLE;
	} else {
		/* the primary message only: DETAIL may quote call data (db.c exec_error) */
		log_err("db %s failed: sqlstate=%s %s", qq->name, db->sqlstate,
			log_flat(msg, sizeof(msg), db->errmsg));
		db->error = DB_QUERY;
	}
	forget(x);
	return -1;
}

int dbq_poll(struct dbq *x, PGresult **out)
{
	PGconn *conn = x->db->conn;

	*out = NULL;
	if (!dbq_busy(x))
		return 0;
	if (conn == NULL || (x->flushing && push(x) != 0) || PQconsumeInput(conn) == 0) {
		PQclear(x->res);
		x->res = NULL;
		return finish(x, out);
	}
	while (!PQisBusy(conn)) {
		PGresult *r = PQgetResult(conn);

		if (r == NULL)
			return finish(x, out); /* the exchange is over */
		if (x->res == NULL)
			x->res = r;
		else
			PQclear(r); /* one statement: one result (an error may follow; keep the
				     * first) */
	}
	return 0;
}

int dbq_wait(struct dbq *x, PGresult **out)
{
	*out = NULL;
	while (dbq_busy(x)) {
		struct pollfd p = {.fd = dbq_fd(x), .events = POLLIN};
		int r;

		if (p.fd >= 0) {
			if (dbq_wants_write(x))
				p.events |= POLLOUT;
			(void)poll(&p, 1, 1000);
		}
		r = dbq_poll(x, out);
		if (r != 0)
			return r;
	}
	return 0;
}
