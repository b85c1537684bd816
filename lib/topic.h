/* topic: the pure part of topics (fan-out): names, subscription filters and JSON Pointers, and
 * how a published message and one subscription make one call instruction. The handlers are
 * cgi-bin/h_topics.c. */
#ifndef AG_TOPIC_H
#define AG_TOPIC_H

#include <stdbool.h>

#include "problem.h"
#include "xalloc.h"

struct json_object;
struct call;

/* At most this many subscriptions in a topic, conditions in a filter, values in an "in". */
#define TOPIC_MAX_SUBSCRIPTIONS 100
#define TOPIC_MAX_CONDITIONS 16
#define TOPIC_MAX_IN 100

/* True for a topic or subscription name: 1 to 128 letters, digits, '_', '.', '-', starting
 * with a letter or digit (the function name rule). */
bool topic_name_valid(const char *name);

/* Checks a filter: one condition, or a non-empty array of conditions that must all match.
 * A condition is {"header": NAME | "json": POINTER, and one of "equals": VALUE,
 * "in": [VALUE, ...], "exists": true|false}; header values are strings. field names the
 * filter in p ("subscriptions[2].filter"). Returns 0, or -1 with p filled (400). */
int topic_filter_check(struct json_object *filter, const char *field, struct problem *p) MUSTCHECK;

/* Whether a message matches a checked filter (NULL: every message). headers is the message's
 * {"Name": "value"} object (names compared case-insensitively); body is the message body
 * parsed as JSON, or NULL when it has none or it is not JSON (json conditions then match only
 * "exists": false). */
bool topic_filter_match(struct json_object *filter, struct json_object *headers,
			struct json_object *body);

/* True for a JSON Pointer (RFC 6901): "" or "/"-separated tokens, '~' only as "~0" or "~1". */
bool topic_pointer_valid(const char *ptr);

/* Resolves a JSON Pointer in doc. Returns true when the value exists, with *out borrowed from
 * doc (NULL for a JSON null); false when it does not (or ptr is not valid). */
bool topic_pointer_get(struct json_object *doc, const char *ptr, struct json_object **out);

/* The call instruction for one subscription: the message's fields (msg: a call instruction
 * without target or function), then the subscription's (spec: function [+ path] or target,
 * headers, retry, timeout, ...) over them. Headers merge, the subscription's winning over the
 * message's of the same name; the message's "path" is appended to the subscription's path (a
 * function) or to its URL's path (a target). Returns a new object (caller puts), or NULL with
 * p filled (field prefix + name, status 409) when the target URL cannot take the path. */
struct json_object *topic_instruction(struct json_object *msg, struct json_object *spec,
				      const char *prefix, struct problem *p) MUSTCHECK;

/* The message of a transparent-mode publish as a JSON instruction (new; caller puts), from the
 * call that call_from_request made of the request: method, query, headers, body, path and the
 * options its Async-* headers set. The destination of c is left out. */
struct json_object *topic_message_json(const struct call *c) MUSTCHECK;

#endif
