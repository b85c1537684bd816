/* db: the libpq connection of a process; prepare-all at connect, one reconnect on loss. */
#include "db.h"

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

int db_connect(struct db *db)
{
	/* The conninfo comes last and is expanded, so its own settings win over these. */
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {"5", "asyncgate", db->conninfo, NULL};

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return 0;
	db_drop(db);
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		log_err("db connect failed: %s", PQerrorMessage(db->conn));
		db_drop(db);
		return -1;
	}
	for (int i = 0; i < Q__COUNT; i++) {
		PGresult *res = PQprepare(db->conn, queries[i].name, queries[i].sql,
					  queries[i].nparams, NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			log_err("db prepare %s failed: %s", queries[i].name,
				PQresultErrorMessage(res));
			PQclear(res);
			db_drop(db);
			return -1;
		}
		PQclear(res);
	}
	return 0;
}

PGresult *db_exec(struct db *db, enum query_id q, const char *const *params)
{
	for (int round = 0; round < 2; round++) {
		PGresult *res;
		ExecStatusType st;
		const char *code;

		if (db_connect(db) != 0) {
			db->error = DB_UNAVAILABLE;
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
			/* The server went away (restart, failover, idle kill). A statement sent on
			 * a dead socket did not run; reconnect and send it once more. */
			log_warn("db %s: connection lost, reconnecting: %s", queries[q].name,
				 PQerrorMessage(db->conn));
			PQclear(res);
			db_drop(db);
			continue;
		}
		code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", code != NULL ? code : "");
		log_err("db %s failed: sqlstate=%s %s", queries[q].name, db->sqlstate,
			PQresultErrorMessage(res));
		PQclear(res);
		db->error = DB_QUERY;
		return NULL;
	}
	db->error = DB_UNAVAILABLE;
	return NULL;
}

bool db_sqlstate_is(const struct db *db, const char *state)
{
	return db->error == DB_QUERY && strcmp(db->sqlstate, state) == 0;
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
