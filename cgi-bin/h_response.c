/* h_response: GET|HEAD /v1/calls/{id}/response, the target's final answer as it came (the
 * Asynchronous Request-Reply pattern), and the Prefer: return=response test of GET
 * /v1/calls/{id}. */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "auth.h"

/* Columns of Q_CALL_RESPONSE. */
enum {
	RC_STATE,
	RC_ATTEMPT,
	RC_STATUS,
	RC_HEADERS,
	RC_BODY,
	RC_SIZE,
	RC_LAST_ERROR,
	RC_ATTEMPTS,
};

/* Whether s[0..n) is word, without case. */
static bool word_is(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(s, word, n) == 0;
}

/* Trims spaces and tabs around s[0..*n); returns the new start. */
static const char *trim(const char *s, size_t *n)
{
	while (*n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		(*n)--;
	}
	while (*n > 0 && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
		(*n)--;
	return s;
}

bool h_prefers_response(const struct req *rq)
{
	const char *v = req_param(rq, "HTTP_PREFER");

	/* RFC 7240 section 2: Prefer = 1#( token [ "=" word ] *( ";" parameter ) ); names
	 * without case. Several Prefer fields reach us joined by commas. */
	while (v != NULL && *v != '\0') {
		const char *end = strchr(v, ',');
		size_t n = end != NULL ? (size_t)(end - v) : strlen(v);
		const char *semi = memchr(v, ';', n);
		const char *eq;
		const char *name, *val;
		size_t nn, vn;

		if (semi != NULL)
			n = (size_t)(semi - v);
		eq = memchr(v, '=', n);
		if (eq != NULL) {
			nn = (size_t)(eq - v);
			vn = n - nn - 1;
			name = trim(v, &nn);
			val = trim(eq + 1, &vn);
			if (vn >= 2 && val[0] == '"' && val[vn - 1] == '"') {
				val++;
				vn -= 2;
			}
			if (word_is(name, nn, "return") && word_is(val, vn, "response"))
				return true;
		}
		if (end == NULL)
			break;
		v = end + 1;
	}
	return false;
}

/* Response headers that do not travel on: about the hop from the target (hop-by-hop, and
 * Content-Length, which is ours now), named by the answer's own Connection header, CGI's Status,
 * and the Async-* headers this endpoint sets itself. */
static bool header_dropped(const char *name, const char *connection)
{
	static const char *const own[] = {"Status",
					  "Async-Call-Id",
					  "Async-Call-State",
					  "Async-Attempt",
					  "Async-Response-Truncated",
					  "Async-Response-Size"};

	if (http_header_hop(name) || http_header_listed(connection, name))
		return true;
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strcasecmp(own[i], name) == 0)
			return true;
	return false;
}

/* Appends "name: value" to rs; the stored names are tokens and values have no CR or LF, but
 * what is read back from a table is still checked before it goes into a header block. */
static void add_raw_header(struct resp *rs, const char *name, const char *value)
{
	if (!http_token_valid(name))
		return;
	buf_printf(&rs->headers, "%s: ", name);
	for (const char *c = value; *c != '\0'; c++)
		buf_append(&rs->headers, (*c == '\r' || *c == '\n') ? " " : c, 1);
	buf_puts(&rs->headers, "\r\n");
}

/* The stored header lines ([[name, value], ...]), or an older attempt's object. */
static void add_stored_headers(struct resp *rs, struct json_object *h)
{
	struct buf conn;

	buf_init(&conn);
	buf_puts(&conn, "");
	if (json_object_is_type(h, json_type_array)) {
		size_t n = json_object_array_length(h);

		for (size_t i = 0; i < n; i++) {
			struct json_object *pair = json_object_array_get_idx(h, i);
			const char *k = json_object_get_string(json_object_array_get_idx(pair, 0));
			const char *v = json_object_get_string(json_object_array_get_idx(pair, 1));

			if (k != NULL && v != NULL && strcasecmp(k, "Connection") == 0)
				buf_printf(&conn, ",%s", v);
		}
		for (size_t i = 0; i < n; i++) {
			struct json_object *pair = json_object_array_get_idx(h, i);
			const char *k = json_object_get_string(json_object_array_get_idx(pair, 0));
			const char *v = json_object_get_string(json_object_array_get_idx(pair, 1));

			if (k != NULL && v != NULL && !header_dropped(k, conn.data))
				add_raw_header(rs, k, v);
		}
	} else if (json_object_is_type(h, json_type_object)) {
		struct json_object *c;

		if (json_object_object_get_ex(h, "connection", &c))
			buf_printf(&conn, ",%s", json_object_get_string(c));
		json_object_object_foreach (h, k, v) {
			if (json_object_is_type(v, json_type_string) &&
			    !header_dropped(k, conn.data))
				add_raw_header(rs, k, json_object_get_string(v));
		}
	}
	buf_cleanup(&conn);
}

/* The call has no answer to give (yet): 409 with its state, what happened last, and why. */
static void no_answer(struct resp *rs, const PGresult *res, const char *id)
{
	const char *state = PQgetvalue(res, 0, RC_STATE);
	const char *last_error =
		PQgetisnull(res, 0, RC_LAST_ERROR) ? NULL : PQgetvalue(res, 0, RC_LAST_ERROR);
	const char *why;
	struct json_object *o;
	size_t len;
	const char *s;

	if (strcmp(state, "scheduled") == 0 || strcmp(state, "queued") == 0 ||
	    strcmp(state, "in_flight") == 0 || strcmp(state, "retrying") == 0)
		why = "the response is here once the call has succeeded; poll the call, or ask it "
		      "with Prefer: return=response";
	else if (strcmp(state, "succeeded") == 0)
		why = "its response is no longer stored";
	else if (strcmp(state, "dead") == 0)
		why = "it ended without an HTTP answer (see last_error)";
	else
		why = "it ended without success, so there is no final response (see last_error)";
	resp_problem(rs, 409, "state", "state: the call is %s; %s", state, why);
	/* the same problem, with the state and the last outcome as members of their own */
	o = json_tokener_parse(rs->body);
	if (o == NULL)
		return;
	json_object_object_add(o, "call_id", json_object_new_string(id));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(
		o, "attempts",
		json_object_new_int64(strtoll(PQgetvalue(res, 0, RC_ATTEMPTS), NULL, 10)));
	if (!PQgetisnull(res, 0, RC_STATUS))
		json_object_object_add(
			o, "last_status",
			json_object_new_int64(strtoll(PQgetvalue(res, 0, RC_STATUS), NULL, 10)));
	if (last_error != NULL)
		json_object_object_add(o, "last_error", json_object_new_string(last_error));
	s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	free(rs->body);
	rs->body = xmalloc(len + 1);
	memcpy(rs->body, s, len + 1);
	rs->body_len = len;
	json_object_put(o);
}

/* The stored answer as this request's answer. */
static void answer(struct resp *rs, const PGresult *res, const char *id)
{
	const char *state = PQgetvalue(res, 0, RC_STATE);
	struct json_object *h = NULL;
	unsigned char *body = NULL;
	size_t body_len = 0;
	long long size = 0;

	rs->status = (int)strtol(PQgetvalue(res, 0, RC_STATUS), NULL, 10);
	rs->content_type = NULL; /* the target's own Content-Type, if it sent one */
	if (!PQgetisnull(res, 0, RC_HEADERS)) {
		h = json_tokener_parse(PQgetvalue(res, 0, RC_HEADERS));
		add_stored_headers(rs, h);
		json_object_put(h);
	}
	resp_header(rs, "Async-Call-Id", "%s", id);
	resp_header(rs, "Async-Call-State", "%s", state);
	resp_header(rs, "Async-Attempt", "%s", PQgetvalue(res, 0, RC_ATTEMPT));
	if (!PQgetisnull(res, 0, RC_BODY)) {
		body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, RC_BODY),
				       &body_len);
		if (body == NULL)
			abort(); /* out of memory, as xmalloc */
	}
	if (!PQgetisnull(res, 0, RC_SIZE))
		size = strtoll(PQgetvalue(res, 0, RC_SIZE), NULL, 10);
	if (size > (long long)body_len) {
		resp_header(rs, "Async-Response-Truncated", "true");
		resp_header(rs, "Async-Response-Size", "%lld", size);
	}
	free(rs->body);
	rs->body = xmalloc(body_len + 1);
	if (body_len > 0)
		memcpy(rs->body, body, body_len);
	rs->body[body_len] = '\0';
	rs->body_len = body_len;
	PQfreemem(body);
}

int h_call_response(const struct req *rq, struct resp *rs, struct app *app,
		    const struct principal *who, const char *id)
{
	PGresult *res;
	const char *state;
	bool has_answer;

	(void)rq;
	res = h_exec_id(rs, app, who, Q_CALL_RESPONSE, id, "call");
	if (res == NULL)
		return 0;
	state = PQgetvalue(res, 0, RC_STATE);
	has_answer = !PQgetisnull(res, 0, RC_STATUS);
	/* A succeeded call's answer; and a dead call's last answer, which is why it ended (a
	 * status it may not retry, or the last of its attempts). An expired or cancelled call
	 * ended for another reason, so its last answer is not the final one. */
	if (has_answer && (strcmp(state, "succeeded") == 0 || strcmp(state, "dead") == 0))
		answer(rs, res, id);
	else
		no_answer(rs, res, id);
	PQclear(res);
	return 0;
}
