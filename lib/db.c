/* db: the libpq connection of a process; prepare-all at connect, one reconnect on loss. */
#include "db.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "log.h"

/* Type OIDs from PostgreSQL's pg_type.dat; stable across versions. */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_JSONB 3802

void db_init(struct db *db, const char *conninfo)
{
	db->conn = NULL;
	db->conninfo = xstrdup(conninfo != NULL ? conninfo : "");
	db->error = DB_OK;
	db->sqlstate[0] = '\0';
}

void db_cleanup(struct db *db)
{
	PQfinish(db->conn);
	db->conn = NULL;
	free(db->conninfo);
	db->conninfo = NULL;
}

static void db_drop(struct db *db)
{
	PQfinish(db->conn);
	db->conn = NULL;
}

/* True when the idle connection's socket has something to read now. */
static bool idle_readable(PGconn *conn)
{
	struct pollfd p = {PQsocket(conn), POLLIN, 0};

	return p.fd >= 0 && poll(&p, 1, 0) > 0 && p.revents != 0;
}

/* An idle connection the server has closed (a restart, a failover, an idle kill: its FATAL
 * message then end of file are waiting in the socket) is found out here, before a statement is
 * sent into it: otherwise a statement that is not idempotent would fail as DB_LOST ("may or
 * may not have taken effect") although it never left. A handler process has many such idle
 * connections (one per thread). Whatever else an idle connection may have received
 * (notifications for a LISTEN, notices) is read into libpq and kept for PQnotifies. */
static bool still_up(PGconn *conn)
{
	for (int i = 0; i < 4 && PQstatus(conn) == CONNECTION_OK && idle_readable(conn); i++)
		if (PQconsumeInput(conn) != 1)
			break;
	return PQstatus(conn) == CONNECTION_OK;
}

/* PQprepare of every statement in queries.c, sent at once in pipeline mode (one round trip
 * rather than one per statement: a handler process connects once per thread). Returns 0, or -1
 * with the first statement that failed logged. */
static int prepare_all(PGconn *conn)
{
	char msg[512];
	int sent = 0;
	int rc = -1;
	PGresult *res;

	if (PQenterPipelineMode(conn) != 1) {
		log_err("db prepare: %s", log_flat(msg, sizeof(msg), PQerrorMessage(conn)));
		return -1;
	}
	for (; sent < Q__COUNT; sent++)
		if (PQsendPrepare(conn, queries[sent].name, queries[sent].sql,
				  queries[sent].nparams, NULL) != 1)
			break;
	if (sent < Q__COUNT || PQpipelineSync(conn) != 1) {
		log_err("db prepare: %s", log_flat(msg, sizeof(msg), PQerrorMessage(conn)));
		return -1; /* the caller drops the connection, pipeline and all */
	}
	rc = 0;
	for (int i = 0; i < sent; i++) {
		res = PQgetResult(conn);
		if (res == NULL) {
			log_err("db prepare %s: no result: %s", queries[i].name,
				log_flat(msg, sizeof(msg), PQerrorMessage(conn)));
			return -1;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			/* the ones after it are PGRES_PIPELINE_ABORTED */
			log_err("db prepare %s failed: %s", queries[i].name,
				log_flat(msg, sizeof(msg), PQresultErrorMessage(res)));
			rc = -1;
		}
		PQclear(res);
		PQclear(PQgetResult(conn)); /* the NULL that ends each statement's results */
	}
	res = PQgetResult(conn); /* the sync point */
	if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
		rc = -1;
	PQclear(res);
	if (PQexitPipelineMode(conn) != 1)
		rc = -1;
	return rc;
}

int db_connect(struct db *db)
{
	/* The conninfo comes last and is expanded, so its own settings win over these defaults:
	 * never write to a standby after a failover, and bound statements and idle transactions
	 * so that no session pins the xmin horizon of a busy queue for long. */
	const char *const keys[] = {"connect_timeout",
				    "fallback_application_name",
				    "target_session_attrs",
				    "options",
				    "dbname",
				    NULL};
	const char *const vals[] = {
		"5",	      "asyncgate",
		"read-write", "-c statement_timeout=30s -c idle_in_transaction_session_timeout=60s",
		db->conninfo, NULL};
	char msg[512];

	if (db->conn != NULL && still_up(db->conn))
		return 0;
	if (db->conn != NULL)
		log_info("db: the server closed an idle connection; connecting again");
	db_drop(db);
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		log_err("db connect failed: %s",
			log_flat(msg, sizeof(msg), PQerrorMessage(db->conn)));
		db_drop(db);
		return -1;
	}
	if (prepare_all(db->conn) != 0) {
		db_drop(db);
		return -1;
	}
	return 0;
}

bool db_sqlstate_retry(const char *code)
{
	return strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0;
}

bool db_sqlstate_unavailable(const char *code)
{
	return strncmp(code, "08", 2) == 0 || strncmp(code, "57P0", 4) == 0 ||
	       strcmp(code, "25006") == 0 || strcmp(code, "53300") == 0;
}

/* A failed statement's error for the log: the primary message and the constraint, table and
 * column it names. DETAIL and CONTEXT are left out: PostgreSQL quotes row and parameter values
 * there ("Failing row contains (...)", "Key (k)=(v)", the JSON text it could not parse), and
 * those hold call headers, bodies and signing secrets (STYLE.md: never log secrets or whole
 * bodies). Returns out. */
static const char *exec_error(char *out, size_t outsz, const PGresult *res)
{
	static const struct {
		int field;
		const char *name;
	} names[] = {{PG_DIAG_CONSTRAINT_NAME, "constraint"},
		     {PG_DIAG_TABLE_NAME, "table"},
		     {PG_DIAG_COLUMN_NAME, "column"}};
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char text[512];
	size_t n;

	/* no primary message: libpq's own error (out of memory, a broken connection) */
	n = (size_t)snprintf(text, sizeof(text), "%s",
			     primary != NULL ? primary : PQresultErrorMessage(res));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < sizeof(text); i++) {
		const char *v = PQresultErrorField(res, names[i].field);

		if (v != NULL)
			n += (size_t)snprintf(text + n, sizeof(text) - n, " %s=%s", names[i].name,
					      v);
	}
	return log_flat(out, outsz, text);
}

PGresult *db_exec(struct db *db, enum query_id q, const char *const *params)
{
	bool lost = false;
	int serial = 0;
	char msg[512];

	for (;;) {
		PGresult *res;
		ExecStatusType st;
		const char *code;

		if (db_connect(db) != 0) {
			db->error = lost && !queries[q].idempotent ? DB_LOST : DB_UNAVAILABLE;
			return NULL;
		}
		if (lost && !queries[q].idempotent) {
			/* Reconnected, but the statement may have committed before the break:
			 * sending it again could do it twice. The caller finds out. */
			db->error = DB_LOST;
			return NULL;
		}
		res = PQexecPrepared(db->conn, queries[q].name, queries[q].nparams, params, NULL,
				     NULL, 0);
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			db->error = DB_OK;
			return res;
		}
		if (PQstatus(db->conn) == CONNECTION_BAD) {
			/* The server went away (restart, failover, idle kill) while the statement
			 * was out. Whether it ran is unknown; reconnect, and resend it only if
			 * that is harmless. */
			log_warn("db %s: connection lost: %s", queries[q].name,
				 log_flat(msg, sizeof(msg), PQerrorMessage(db->conn)));
			PQclear(res);
			db_drop(db);
			if (lost) {
				db->error = DB_UNAVAILABLE;
				return NULL;
			}
			lost = true;
			continue;
		}
		code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", code != NULL ? code : "");
		if (db_sqlstate_retry(db->sqlstate) && serial++ < 3) {
			/* lost a race; the statement was rolled back whole: look again */
			log_debug("db %s: serialization failure, running it again",
				  queries[q].name);
			PQclear(res);
			continue;
		}
		if (db_sqlstate_unavailable(db->sqlstate)) {
			log_warn("db %s: server unavailable: sqlstate=%s %s", queries[q].name,
				 db->sqlstate, exec_error(msg, sizeof(msg), res));
			PQclear(res);
			db->error = DB_UNAVAILABLE;
			return NULL;
		}
		code = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
		snprintf(db->errcolumn, sizeof(db->errcolumn), "%s", code != NULL ? code : "");
		code = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		snprintf(db->errmsg, sizeof(db->errmsg), "%s", code != NULL ? code : "");
		if (strcmp(db->sqlstate, "22023") == 0) /* input a SQL function refused */
			log_info("db %s refused: %s", queries[q].name,
				 exec_error(msg, sizeof(msg), res));
		else
			log_err("db %s failed: sqlstate=%s %s", queries[q].name, db->sqlstate,
				exec_error(msg, sizeof(msg), res));
		PQclear(res);
		db->error = DB_QUERY;
		return NULL;
	}
}

static struct json_object *column_value(const PGresult *res, int row, int col)
{
	const char *v = PQgetvalue(res, row, col);

	switch (PQftype(res, col)) {
	case OID_BOOL: return json_object_new_boolean(v[0] == 't');
	case OID_INT2:
	case OID_INT4:
	case OID_INT8: return json_object_new_int64(strtoll(v, NULL, 10));
	case OID_FLOAT4:
	case OID_FLOAT8: return json_object_new_double(strtod(v, NULL));
	case OID_JSON:
	case OID_JSONB: {
		struct json_object *o = json_tokener_parse(v);

		return o != NULL ? o : json_object_new_string(v);
	}
	default: return json_object_new_string(v);
	}
}

struct json_object *db_row_json(const PGresult *res, int row)
{
	struct json_object *top = json_object_new_object();
	int ncols = PQnfields(res);

	for (int col = 0; col < ncols; col++) {
		const char *name = PQfname(res, col);
		const char *dot = strchr(name, '.');
		struct json_object *parent = top;

		if (PQgetisnull(res, row, col))
			continue;
		if (dot != NULL) {
			char outer[64];
			size_t n = (size_t)(dot - name);

			if (n >= sizeof(outer))
				n = sizeof(outer) - 1;
			memcpy(outer, name, n);
			outer[n] = '\0';
			if (!json_object_object_get_ex(top, outer, &parent)) {
				parent = json_object_new_object();
				json_object_object_add(top, outer, parent);
			}
			name = dot + 1;
		}
		json_object_object_add(parent, name, column_value(res, row, col));
	}
	return top;
}
