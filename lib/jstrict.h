/* jstrict: parses a client's JSON document, refusing what RFC 8259 does not allow or leaves
 * ambiguous and json-c lets through (duplicate keys, NaN, lone surrogates, NUL, ...). */
#ifndef AG_JSTRICT_H
#define AG_JSTRICT_H

#include <stddef.h>

#include "problem.h"
#include "xalloc.h"

struct json_object;

/* The highest nesting limit jstrict_parse takes; a larger max_depth counts as this. */
#define JSTRICT_DEPTH_MAX 1000

/* Parses s[0..len) (need not be NUL-terminated; s may be NULL when len is 0) as one JSON
 * document, nested at most max_depth arrays and objects deep (values below 1 count as 1).
 * Refused, each with its own detail: malformed JSON (json-c's verdict, with the byte offset);
 * an empty document, or one that is just null (json-c's null is a NULL object); bytes after the
 * document; bytes that are not UTF-8 (overlong forms, surrogates written as raw bytes CESU-8
 * style, past U+10FFFF); NUL bytes; unescaped control characters in strings; "\u0000" and
 * unpaired "\ud800"-style escapes; a key twice in one object (compared after unescaping);
 * NaN / Infinity / -Infinity; integers outside int64; numbers too large for a double; forms
 * json-c's strict mode takes and RFC 8259 does not ("1.", "-01", 'key'); nesting deeper than
 * max_depth. Where it helps, the detail gives the JSON path ("[0].headers") as well.
 * Returns a new object (caller puts), or NULL with p filled: status 400 (500 only when json-c
 * failed without a parse error: out of memory), field "body", detail starting with "body: ". */
struct json_object *jstrict_parse(const char *s, size_t len, int max_depth,
				  struct problem *p) MUSTCHECK;

#endif
