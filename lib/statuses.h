/* statuses: sets of final HTTP status codes (300-599), written as codes (404) and classes
 * ("5xx"), for a call's retry.on and retry.give_up_on lists. */
#ifndef AG_STATUSES_H
#define AG_STATUSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xalloc.h"

struct json_object;

#define STATUSES_MAX_ITEMS 32 /* entries in one list */

/* A set of statuses 0..639; all zero is the empty set. */
struct statuses {
	uint64_t bits[10];
};

void statuses_clear(struct statuses *s);
bool statuses_has(const struct statuses *s, long status);

/* Parses one entry into *item as its normal form: a JSON number (404) or a class string
 * ("5xx", lower case). Accepts a JSON integer or a string "404", "5xx", "5XX" (surrounding
 * spaces allowed). Returns 0, or -1 with *why set to a static explanation: not a status, a
 * 1xx or 2xx status (never final, or success), out of range. *item is new (caller puts). */
int statuses_item(struct json_object *v, struct json_object **item, const char **why) MUSTCHECK;

/* Adds a normal-form list (a JSON array of numbers and class strings, as statuses_item makes
 * and calls.retry_on stores) to s. Returns 0, or -1 when an entry is not in normal form (the
 * entries before it are added). */
int statuses_add_json(struct statuses *s, struct json_object *list) MUSTCHECK;

#endif
