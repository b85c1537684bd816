/* uuid: call ids, UUIDv7 (RFC 9562): a millisecond timestamp then random bits, so ids sort by time.
 */
#ifndef AG_UUID_H
#define AG_UUID_H

#include <stdbool.h>

#define UUID_LEN 37 /* 36 characters and the NUL */

/* Writes a new UUIDv7 in canonical lower-case form. Returns 0, or -1 if the random source
 * failed (logged). */
int uuid_v7(char out[UUID_LEN]);

/* True when s is a canonical 8-4-4-4-12 hex UUID (either case). */
bool uuid_valid(const char *s);

#endif
