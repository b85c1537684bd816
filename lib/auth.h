/* auth: who a request comes from and what it may call. The pure part: the bearer token, its
 * hash, and the rules (fnmatch patterns over function names and URLs). Looking the token up is
 * the handlers' (cgi-bin/h_auth.c). */
#ifndef AG_AUTH_H
#define AG_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "xalloc.h"

struct json_object;

/* An authenticated client, as its key or web_users row describes it. Owned strings; the
 * pattern lists are NULL-terminated arrays of owned strings. */
struct principal {
	char *client;	     /* calls.client; "" for auth = none */
	char *key_id;	     /* "k_..." for an API key, NULL otherwise (for logs) */
	bool admin;	     /* sees every call and may call anything */
	char **functions;    /* fnmatch patterns over function names */
	char **url_patterns; /* fnmatch patterns over absolute URLs (targets and callbacks) */
	/* The api_keys row version (xmin) the principal was read at, when it came from a
	 * handler process's key cache rather than from the database for this request: an insert
	 * made for it must check the row is still that version (and not revoked); else NULL. */
	char *key_version;
};

void principal_init(struct principal *p);
void principal_cleanup(struct principal *p);
/* Fills dst (uninitialised) with a deep copy of src. */
void principal_copy(struct principal *dst, const struct principal *src);

/* The token of an "Authorization: Bearer <token>" value (scheme case-insensitive, one space or
 * more), borrowed from value; NULL when the value is absent or not a bearer credential. */
const char *auth_bearer(const char *value);

/* True when the token has the shape asyncgate makes: "agk_k_<12 hex>_<64 hex>". */
bool auth_token_shape(const char *token);

/* SHA-256 of the token, as 64 lower-case hex digits and a NUL: what api_keys.hash holds. */
void auth_token_hash(const char *token, char hex[65]);

/* Fills a pattern list from a JSON array of strings (array_to_json(text[]) as PostgreSQL sends
 * it). Returns 0, or -1 (list left empty) when it is not an array of strings. */
int auth_patterns_from_json(struct json_object *a, char ***out) MUSTCHECK;

/* True when the principal may call the function / the URL (admins may call anything). */
bool auth_may_function(const struct principal *p, const char *name);
bool auth_may_url(const struct principal *p, const char *url);

#endif
