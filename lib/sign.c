/* sign: Standard Webhooks signatures (https://www.standardwebhooks.com/, spec "Signature scheme"
 * and "Webhook headers") of the requests the drainer sends, for every secret of a list. */
#include "sign.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "log.h"

#define HMAC_KEY_MAX 192
#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64
#define SEPARATORS " \t\r\n"

enum key_kind { KEY_HMAC, KEY_ED25519 };

/* One decoded secret. The bytes live in buf, or, for a raw secret, in the caller's string. */
struct key {
	enum key_kind kind;
	const unsigned char *p;
	size_t len;
	unsigned char buf[HMAC_KEY_MAX];
};

static bool has_prefix(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && memcmp(s, prefix, k) == 0;
}

/* Strict standard base64 (RFC 4648 section 4): the alphabet in groups of four, then at most
 * two '=' at the end. */
static bool base64_strict(const char *s, size_t n)
{
	size_t pad = 0;

	if (n == 0 || n % 4 != 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				 (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return false;
	}
	return pad <= 2;
}

/* Decodes strict base64 s (n chars) into out (room bytes). Returns the byte count, or -1 when
 * s is not strict base64 or does not fit. */
static int base64_decode(const char *s, size_t n, unsigned char *out, size_t room)
{
	unsigned char tmp[4 * ((HMAC_KEY_MAX + 2) / 3)];
	int len;

	if (!base64_strict(s, n) || n / 4 * 3 > sizeof(tmp))
		return -1;
	len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
	/* EVP_DecodeBlock counts the padding as data bytes */
	if (len >= 0 && s[n - 1] == '=')
		len--;
	if (len >= 0 && s[n - 2] == '=')
		len--;
	if (len < 0 || (size_t)len > room) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -1;
	}
	memcpy(out, tmp, (size_t)len);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return len;
}

static char *base64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

static void say(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* Decodes entry number pos (1-based) of s..s+n into k. The reasons name the entry by position
 * and never quote it: they end up in logs. */
static int parse_entry(const char *s, size_t n, int pos, struct key *k, char *why, size_t whylen)
{
	int len;

	if (has_prefix(s, n, "whsec_")) {
		len = base64_decode(s + 6, n - 6, k->buf, sizeof(k->buf));
		if (len <= 0) {
			say(why, whylen,
			    "secret %d: whsec_ must be followed by strict base64 of 1 to %d key "
			    "bytes",
			    pos, HMAC_KEY_MAX);
			return -1;
		}
		k->kind = KEY_HMAC;
	} else if (has_prefix(s, n, "whsk_")) {
		len = base64_decode(s + 5, n - 5, k->buf, sizeof(k->buf));
		if (len != ED25519_KEY_LEN) {
			say(why, whylen,
			    "secret %d: whsk_ must be followed by strict base64 of the %d-byte "
			    "Ed25519 private key",
			    pos, ED25519_KEY_LEN);
			return -1;
		}
		k->kind = KEY_ED25519;
	} else if (has_prefix(s, n, "whpk_")) {
		say(why, whylen,
		    "secret %d is a public key (whpk_): signing needs the private key (whsk_); "
		    "the whpk_ goes to the target",
		    pos);
		return -1;
	} else {
		say(why, whylen, "secret %d starts with neither whsec_ nor whsk_", pos);
		return -1;
	}
	k->p = k->buf;
	k->len = (size_t)len;
	return 0;
}

static void keys_cleanse(struct key *keys, int n)
{
	for (int i = 0; i < n; i++)
		OPENSSL_cleanse(keys[i].buf, sizeof(keys[i].buf));
}

/* Decodes the list into keys[SIGN_MAX_SECRETS] and *n. Returns 0, or -1 with a reason. The
 * caller cleanses keys either way. */
static int parse_list(const char *secrets, struct key *keys, int *n, char *why, size_t whylen)
{
	bool list = false;
	int count = 0;

	*n = 0;
	if (secrets == NULL || secrets[strspn(secrets, SEPARATORS)] == '\0') {
		say(why, whylen, "the secret is empty");
		return -1;
	}
	for (const char *p = secrets + strspn(secrets, SEPARATORS); *p != '\0';) {
		size_t len = strcspn(p, SEPARATORS);

		if (has_prefix(p, len, "whsec_") || has_prefix(p, len, "whsk_") ||
		    has_prefix(p, len, "whpk_"))
			list = true;
		count++;
		p += len;
		p += strspn(p, SEPARATORS);
	}
	if (!list) {
		/* the older form: the whole value is the HMAC key (HMAC hashes a long key) */
		keys[0].kind = KEY_HMAC;
		keys[0].p = (const unsigned char *)secrets;
		keys[0].len = strlen(secrets);
		*n = 1;
		return 0;
	}
	if (count > SIGN_MAX_SECRETS) {
		say(why, whylen, "%d secrets, at most %d", count, SIGN_MAX_SECRETS);
		return -1;
	}
	for (const char *p = secrets + strspn(secrets, SEPARATORS); *p != '\0';) {
		size_t len = strcspn(p, SEPARATORS);

		if (parse_entry(p, len, *n + 1, &keys[*n], why, whylen) != 0)
			return -1;
		(*n)++;
		p += len;
		p += strspn(p, SEPARATORS);
	}
	return 0;
}

bool sign_secrets_valid(const char *secrets, char *why, size_t whylen)
{
	struct key keys[SIGN_MAX_SECRETS];
	int n = 0;
	int rc = parse_list(secrets, keys, &n, why, whylen);

	keys_cleanse(keys, n);
	return rc == 0;
}

/* Appends " v1,<base64>" (without the space first) for key k over msg. Returns 0 or -1. */
static int sign_one(const struct key *k, const struct buf *msg, struct buf *out)
{
	unsigned char sig[EVP_MAX_MD_SIZE > ED25519_SIG_LEN ? EVP_MAX_MD_SIZE : ED25519_SIG_LEN];
	size_t siglen = 0;
	char *b64;

	if (k->kind == KEY_HMAC) {
		unsigned int maclen = 0;

		if (HMAC(EVP_sha256(), k->p, (int)k->len, (const unsigned char *)msg->data,
			 msg->len, sig, &maclen) == NULL) {
			log_err("sign: HMAC-SHA256 failed");
			return -1;
		}
		siglen = maclen;
	} else {
		EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k->p, k->len);
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		int ok;

		siglen = sizeof(sig);
		/* Ed25519 signs the message itself (no digest: RFC 8032 PureEdDSA) */
		ok = pkey != NULL && ctx != NULL &&
		     EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
		     EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)msg->data,
				    msg->len) == 1;
		EVP_MD_CTX_free(ctx);
		EVP_PKEY_free(pkey);
		if (!ok) {
			log_err("sign: Ed25519 signing failed");
			return -1;
		}
	}
	b64 = base64(sig, siglen);
	buf_printf(out, "%s%s,%s", out->len > 0 ? " " : "", k->kind == KEY_HMAC ? "v1" : "v1a",
		   b64);
	free(b64);
	return 0;
}

char *sign_header(const char *secrets, const char *msg_id, long long ts, const void *body,
		  size_t len)
{
	struct key keys[SIGN_MAX_SECRETS];
	int n = 0;
	char why[160];
	struct buf msg, out;
	char *res = NULL;

	buf_init(&msg);
	buf_init(&out);
	if (parse_list(secrets, keys, &n, why, sizeof(why)) != 0) {
		log_err("sign: the signing secret is malformed: %s", why);
		goto out;
	}
	buf_printf(&msg, "%s.%lld.", msg_id, ts);
	if (len > 0)
		buf_append(&msg, body, len);
	for (int i = 0; i < n; i++)
		if (sign_one(&keys[i], &msg, &out) != 0)
			goto out;
	res = buf_take(&out, NULL);
out:
	keys_cleanse(keys, n);
	buf_cleanup(&msg);
	buf_cleanup(&out);
	return res;
}

/* "whpk_" + base64 of the public half of pkey, or NULL. */
static char *public_of(EVP_PKEY *pkey)
{
	unsigned char pub[ED25519_KEY_LEN];
	size_t publen = sizeof(pub);
	char *b64, *out;

	if (EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1 || publen != sizeof(pub))
		return NULL;
	b64 = base64(pub, publen);
	out = xasprintf("whpk_%s", b64);
	free(b64);
	return out;
}

int sign_keygen(char **whsk, char **whpk)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *pkey = NULL;
	unsigned char priv[ED25519_KEY_LEN];
	size_t privlen = sizeof(priv);
	char *b64;
	int rc = -1;

	*whsk = NULL;
	*whpk = NULL;
	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1 ||
	    EVP_PKEY_get_raw_private_key(pkey, priv, &privlen) != 1 || privlen != sizeof(priv)) {
		log_err("sign: Ed25519 key generation failed");
		goto out;
	}
	*whpk = public_of(pkey);
	if (*whpk == NULL) {
		log_err("sign: Ed25519 key generation failed");
		goto out;
	}
	b64 = base64(priv, privlen);
	*whsk = xasprintf("whsk_%s", b64);
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
	rc = 0;
out:
	OPENSSL_cleanse(priv, sizeof(priv));
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

char *sign_public_key(const char *whsk)
{
	struct key k;
	EVP_PKEY *pkey = NULL;
	char *out = NULL;

	memset(&k, 0, sizeof(k));
	if (whsk == NULL || !has_prefix(whsk, strlen(whsk), "whsk_") ||
	    parse_entry(whsk, strlen(whsk), 1, &k, NULL, 0) != 0)
		goto out;
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k.p, k.len);
	if (pkey != NULL)
		out = public_of(pkey);
out:
	EVP_PKEY_free(pkey);
	OPENSSL_cleanse(k.buf, sizeof(k.buf));
	return out;
}

bool sign_secret_equal(const char *given, const char *want)
{
	unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
	bool eq;

	if (given == NULL || want == NULL)
		return false;
	/* Digests of equal length compared in constant time: how long this takes says nothing
	 * about how much of a guess was right, nor how long the secret is. */
	if (EVP_Digest(given, strlen(given), a, NULL, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(want, strlen(want), b, NULL, EVP_sha256(), NULL) != 1)
		return false;
	eq = CRYPTO_memcmp(a, b, sizeof(a)) == 0;
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return eq;
}
