/* h_health: GET /v1/health, the database and the queue in one look. */
#include "handlers.h"

#include <json-c/json.h>

int h_health(const struct req *rq, struct resp *rs, struct app *app)
{
	PGresult *res = db_exec(&app->db, Q_HEALTH, NULL);
	struct json_object *o;

	(void)rq;
	if (res == NULL) {
		h_db_error(rs, app);
		return 0;
	}
	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("ok"));
	json_object_object_add(o, "database", json_object_new_string("reachable"));
	json_object_object_add(o, "queue", db_row_json(res, 0));
	resp_json(rs, 200, o);
	json_object_put(o);
	PQclear(res);
	return 0;
}
