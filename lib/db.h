/* db: one persistent libpq connection per process, every query prepared, reconnect on loss. */
#ifndef AG_DB_H
#define AG_DB_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "queries.h"
#include "xalloc.h"

struct json_object;

enum db_error {
	DB_OK,
	DB_UNAVAILABLE, /* could not connect, or the server cannot write now: nothing was done */
	DB_LOST,	/* the connection broke while a non-idempotent statement was out: it may
			 * or may not have committed; the caller checks (the process has already
			 * reconnected if it could) */
	DB_QUERY,	/* the statement failed: see db->sqlstate */
};

struct db {
	PGconn *conn;	     /* owned; NULL while disconnected */
	char *conninfo;	     /* owned */
	enum db_error error; /* of the last db_exec */
	char sqlstate[6];    /* of the last DB_QUERY error */
	char errcolumn[64];  /* its column field ("" = none): the input field a SQL function
			      * refused with 22023 (sql/004_functions_flow.sql ag_spec_fail) */
	char errmsg[256];    /* its primary message, truncated */
};

/* Stores the conninfo ("" = libpq's environment); does not connect yet. */
void db_init(struct db *db, const char *conninfo);
void db_cleanup(struct db *db);

/* Connects (if not connected) and prepares every statement in queries.c.
 * Returns 0, or -1 (logged once) when the server is unreachable or a statement fails to
 * prepare (schema missing or drifted). */
int db_connect(struct db *db) MUSTCHECK;

/* SQLSTATE classes, for db_exec, dbq and their callers. A serialization failure or deadlock
 * (40001, 40P01): the statement was rolled back whole after losing a race (a concurrent move of
 * the same row between calls_live and calls_done, or, rarely, a deadlock with an operator's SQL
 * over flow-control rows), and running it again is right. */
bool db_sqlstate_retry(const char *code);
/* "Not now" rather than "not this": the server is shutting down or read-only (a standby after
 * failover), out of connections, or the link failed. */
bool db_sqlstate_unavailable(const char *code);

/* Runs a prepared statement with text parameters (NULL entries are SQL NULL).
 * - When the connection turns out to be broken, it reconnects; an idempotent statement (see
 *   struct query) is then sent once more, any other fails with DB_LOST.
 * - A serialization failure (40001: a concurrent update moved the row to the other partition
 *   of calls) rolled the statement back whole, so it is run again, up to 3 times.
 * - Read-only server (failover), shutdown and connection-class errors are DB_UNAVAILABLE.
 * Returns a result the caller PQclear()s, or NULL with db->error set (logged once). */
PGresult *db_exec(struct db *db, enum query_id q, const char *const *params) MUSTCHECK;

/* Row `row` of res as a new JSON object (caller puts): one member per non-NULL column, named
 * by the column; a dotted name ("retry.max_attempts") nests. bool, integer and float columns
 * become JSON numbers/booleans, json/jsonb columns are parsed, all else is a string. */
struct json_object *db_row_json(const PGresult *res, int row) MUSTCHECK;

#endif
