/* sign: Standard Webhooks signatures of outbound requests: HMAC-SHA256 ("v1,") with whsec_
 * secrets, Ed25519 ("v1a,") with whsk_ keys, one signature per secret of a list so that a
 * secret can be rotated without a moment when the target cannot verify. */
#ifndef AG_SIGN_H
#define AG_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "xalloc.h"

/* At most this many secrets in one list (a rotation needs two or three). */
#define SIGN_MAX_SECRETS 8

/*
 * A secret list (functions.signing_secret) is one of:
 *  - entries separated by spaces (tabs and line breaks count as spaces), each
 *    "whsec_" + strict base64 of an HMAC key of 1 to 192 bytes, or
 *    "whsk_" + strict base64 of a 32-byte Ed25519 private key (the seed, as the Standard
 *    Webhooks libraries write it), at most SIGN_MAX_SECRETS of them, in any mix;
 *  - or, when no entry starts with whsec_, whsk_ or whpk_, one raw HMAC key: the bytes of the
 *    whole value, spaces included (the form asyncgate took before lists).
 * A whpk_ entry (a public key) is refused: the function needs the secret key.
 */

/* The webhook-signature value for a request: one "v1,<base64 HMAC-SHA256>" or
 * "v1a,<base64 Ed25519>" of "<msg_id>.<ts>.<body>" per secret, space-separated, in the order
 * of the list. body may hold NUL bytes (len counts them); NULL only with len 0.
 * Returns a new string (caller frees), or NULL when the list is malformed or libcrypto failed
 * (logged with the entry's position and what is wrong with it, never any part of a secret). */
char *sign_header(const char *secrets, const char *msg_id, long long ts, const void *body,
		  size_t len) MUSTCHECK;

/* Whether secrets is a well-formed list (above). When not, why (whylen bytes, may be NULL
 * with whylen 0) gets a reason naming the entry by position, never by content. */
bool sign_secrets_valid(const char *secrets, char *why, size_t whylen);

/* A new Ed25519 key pair: *whsk = "whsk_" + base64 of the 32-byte private key, *whpk =
 * "whpk_" + base64 of the 32-byte public key (new strings; caller frees, and should
 * OPENSSL_cleanse *whsk first). Returns 0, or -1 (logged; both NULL) when libcrypto failed. */
int sign_keygen(char **whsk, char **whpk) MUSTCHECK;

/* The public key ("whpk_" + base64) of a "whsk_" private key, as a new string (caller frees),
 * or NULL when whsk is not one well-formed whsk_ entry (not logged: the caller says why). */
char *sign_public_key(const char *whsk) MUSTCHECK;

/* Constant-time equality of two NUL-terminated secrets (tokens, keys): the time taken depends
 * on neither their contents nor which of them is longer. NULL equals nothing. */
bool sign_secret_equal(const char *given, const char *want);

#endif
