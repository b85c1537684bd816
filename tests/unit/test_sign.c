/* test_sign: Standard Webhooks signing: the specification's HMAC and Ed25519 vectors, secret
 * lists (rotation), malformed lists refused without the secret in the log, key pairs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "sign.h"

#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330LL
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_V1 "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* The Ed25519 test key and signature of the Standard Webhooks Go library
 * (libraries/go/webhook_asymmetric_test.go, TestAsymmetricWebhookSign): a 32-byte seed. */
#define SPEC_WHSK "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
#define SPEC_V1A                                                                                   \
	"v1a,tQ9V2XOqn7jL/"                                                                        \
	"DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag"                \
	"=="

static void check_header(const char *secrets, const char *id, long long ts, const void *body,
			 size_t len, const char *want)
{
	char *got = sign_header(secrets, id, ts, body, len);
	char msg[1024];

	if (got == NULL) {
		fail_msg("sign_header(id %s, ts %lld) gave NULL, want %s", id, ts, want);
		return;
	}
	snprintf(msg, sizeof(msg), "sign_header(id %s, ts %lld) is %s, want %s", id, ts, got, want);
	if (strcmp(got, want) != 0) {
		free(got);
		fail_msg("%s", msg);
	}
	free(got);
}

/* The published test vector of the Standard Webhooks specification (also checked with
 * printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
 * openssl dgst -sha256 -mac HMAC -macopt hexkey:<hex of the base64 key> -binary | base64). */
static void test_hmac_spec_vector(void **state)
{
	(void)state;
	check_header(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), SPEC_V1);
}

static void test_ed25519_spec_vector(void **state)
{
	(void)state;
	check_header(SPEC_WHSK, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), SPEC_V1A);
}

/* Expected values from
 * printf 'id1.42.<body>' | openssl dgst -sha256 -hmac <key> -binary | base64 */
static void test_hmac_keys(void **state)
{
	(void)state;
	/* without any prefixed entry the whole value is the key */
	check_header("my-raw-secret", "id1", 42, "hello", 5,
		     "v1,KGxHF5HgNwBkF9cOITxv8yc3ApuwA8kr29kh7uqQvvs=");
	/* base64 with padding: "aGk=" is "hi", "aGVsbG8=" is "hello" */
	check_header("whsec_aGk=", "id1", 42, "x", 1,
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E=");
	check_header("hi", "id1", 42, "x", 1, "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E=");
	check_header("whsec_aGVsbG8=", "id1", 42, "x", 1,
		     "v1,dfEsLuIH9McbhxO/sh4H9JrchdSdkB3MRzA9wqmpi18=");
	check_header("hello", "id1", 42, "x", 1, "v1,dfEsLuIH9McbhxO/sh4H9JrchdSdkB3MRzA9wqmpi18=");
	/* a raw secret with a space in it is still one key, used whole */
	check_header("hi hello", "id1", 42, "x", 1,
		     "v1,t3ZZopIUubmhan8jgTg7R295NnW5+isW1zAH271PH3U=");
}

/* A raw secret longer than any buffer is used whole (HMAC hashes long keys). */
static void test_hmac_long_raw(void **state)
{
	char secret[301];
	char *whole, *cut;

	(void)state;
	memset(secret, 'k', 300);
	secret[300] = '\0';
	whole = sign_header(secret, "id1", 42, "x", 1);
	secret[256] = '\0';
	cut = sign_header(secret, "id1", 42, "x", 1);
	assert_non_null(whole);
	assert_non_null(cut);
	assert_string_not_equal(whole, cut);
	free(whole);
	free(cut);
}

/* The body is signed over its full length, NUL bytes included; an empty body may be NULL. */
static void test_body_bytes(void **state)
{
	static const char body[] = {'a', 'b', '\0', 'c', 'd'};
	char *empty, *null;

	(void)state;
	check_header("my-raw-secret", "id1", 42, body, sizeof(body),
		     "v1,BVqC5pal8SzaGpoQPzjQZXFscvf/st+EMRm0EpYVa9Q=");
	check_header("my-raw-secret", "id1", 42, body, 2,
		     "v1,0CeP+areN2xhiBolHulNsVqrmds7YSpkdzOVc6SSkGA=");
	empty = sign_header(SPEC_SECRET, "id1", 42, "", 0);
	null = sign_header(SPEC_SECRET, "id1", 42, NULL, 0);
	assert_non_null(empty);
	assert_non_null(null);
	assert_string_equal(empty, null);
	free(empty);
	free(null);
}

/* A rotation: one signature per secret, space-separated, in the order of the list, each the
 * one that secret gives alone; any run of spaces, tabs or line breaks separates. */
static void test_rotation(void **state)
{
	(void)state;
	check_header("whsec_aGVsbG8= whsec_aGk=", "id1", 42, "x", 1,
		     "v1,dfEsLuIH9McbhxO/sh4H9JrchdSdkB3MRzA9wqmpi18= "
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E=");
	check_header("  whsec_aGk=\t\n whsec_aGVsbG8=  ", "id1", 42, "x", 1,
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E= "
		     "v1,dfEsLuIH9McbhxO/sh4H9JrchdSdkB3MRzA9wqmpi18=");
	/* a migration from HMAC to Ed25519 signs both ways */
	check_header(SPEC_SECRET " " SPEC_WHSK, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY),
		     SPEC_V1 " " SPEC_V1A);
	check_header(SPEC_WHSK " " SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY),
		     SPEC_V1A " " SPEC_V1);
	/* the most secrets a list may hold */
	check_header("whsec_aGk= whsec_aGk= whsec_aGk= whsec_aGk= whsec_aGk= whsec_aGk= "
		     "whsec_aGk= whsec_aGk=",
		     "id1", 42, "x", 1,
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E= "
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E= "
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E= "
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E= "
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E= "
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E= "
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E= "
		     "v1,+70FsnkvOdAsyhr/HYp1+NbKr4S9Xrr+4HiMjUzme4E=");
}

/* Decodes strict base64 after a prefix into out; returns the byte count or -1. */
static int unb64(const char *s, const char *prefix, unsigned char *out, size_t room)
{
	size_t n;
	int len;
	unsigned char tmp[256];

	if (strncmp(s, prefix, strlen(prefix)) != 0)
		return -1;
	s += strlen(prefix);
	n = strlen(s);
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof(tmp))
		return -1;
	len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
	if (len >= 0 && s[n - 1] == '=')
		len--;
	if (len >= 0 && s[n - 2] == '=')
		len--;
	if (len < 0 || (size_t)len > room)
		return -1;
	memcpy(out, tmp, (size_t)len);
	return len;
}

/* Verifies "v1a,<base64>" over content with public key whpk through libcrypto. */
static bool ed25519_verifies(const char *whpk, const char *v1a, const char *content)
{
	unsigned char pub[32], sig[64];
	EVP_PKEY *pkey;
	EVP_MD_CTX *ctx;
	bool ok;

	if (unb64(whpk, "whpk_", pub, sizeof(pub)) != 32 ||
	    unb64(v1a, "v1a,", sig, sizeof(sig)) != 64)
		return false;
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, sizeof(pub));
	ctx = EVP_MD_CTX_new();
	ok = pkey != NULL && ctx != NULL &&
	     EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, sizeof(sig), (const unsigned char *)content,
			      strlen(content)) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return ok;
}

/* A new key pair signs, and the derived public key verifies the signature through libcrypto;
 * another pair's public key does not. */
static void test_ed25519_round_trip(void **state)
{
	char *whsk = NULL, *whpk = NULL, *whsk2 = NULL, *whpk2 = NULL, *derived, *sig;
	unsigned char raw[32];

	(void)state;
	assert_int_equal(sign_keygen(&whsk, &whpk), 0);
	assert_int_equal(sign_keygen(&whsk2, &whpk2), 0);
	assert_int_equal(unb64(whsk, "whsk_", raw, sizeof(raw)), 32);
	assert_int_equal(unb64(whpk, "whpk_", raw, sizeof(raw)), 32);
	assert_string_not_equal(whsk, whsk2);
	assert_true(sign_secrets_valid(whsk, NULL, 0));
	derived = sign_public_key(whsk);
	assert_non_null(derived);
	assert_string_equal(derived, whpk);
	free(derived);

	sig = sign_header(whsk, "call-1", 1700000000, "{\"a\":1}", 7);
	assert_non_null(sig);
	assert_true(strncmp(sig, "v1a,", 4) == 0);
	assert_int_equal(strlen(sig), 4 + 88);
	assert_true(ed25519_verifies(whpk, sig, "call-1.1700000000.{\"a\":1}"));
	assert_false(ed25519_verifies(whpk, sig, "call-1.1700000001.{\"a\":1}"));
	assert_false(ed25519_verifies(whpk2, sig, "call-1.1700000000.{\"a\":1}"));
	free(sig);
	free(whsk);
	free(whpk);
	free(whsk2);
	free(whpk2);
}

/* The public key of the specification's test seed, and what is not a whsk_. */
static void test_public_key(void **state)
{
	char *pk = sign_public_key(SPEC_WHSK);
	char *sig = sign_header(SPEC_WHSK, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY));

	(void)state;
	assert_non_null(pk);
	assert_non_null(sig);
	assert_true(ed25519_verifies(pk, sig, SPEC_ID ".1614265330." SPEC_BODY));
	free(pk);
	free(sig);
	assert_null(sign_public_key(NULL));
	assert_null(sign_public_key(""));
	assert_null(sign_public_key(SPEC_SECRET));
	assert_null(sign_public_key("whsk_aGk="));
	assert_null(sign_public_key(SPEC_WHSK " "));
	assert_null(sign_public_key(SPEC_WHSK " " SPEC_WHSK));
}

/* Malformed lists give no signature, and the reason names the entry by position only. */
static void test_malformed(void **state)
{
	char too_long[6 + 348 + 1]; /* 261 key bytes */
	char nine[9 * 11 + 1];
	const char *cases[] = {
		"",
		" \t\n ",
		"whsec_abc",
		"whsec_",
		"whsec_a",
		"whsec_aGk",
		"whsec_ab!c",
		"whsec_aG k",
		"whsec_====",
		"whsec_a===",
		"whsec_ab=c",
		"whsec_aGk=aGk=",
		too_long,
		"whsk_aGk=",					     /* 2 bytes, not 32 */
		"whsk_" SPEC_WHSK,				     /* double prefix */
		"whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlkx", /* 33 bytes */
		"whpk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=", /* a public key */
		"whsec_aGk= raw-secret",			     /* a raw secret in a list */
		"raw-secret whsec_aGk=",
		"whsec_aGk= whsec_!!!!",
		SPEC_SECRET " whsk_short",
		"WHSEC_aGk= whsec_aGk=",
		nine,
	};
	char why[160];

	(void)state;
	memcpy(too_long, "whsec_", 6);
	memset(too_long + 6, 'A', 348);
	too_long[sizeof(too_long) - 1] = '\0';
	nine[0] = '\0';
	for (int i = 0; i < 9; i++)
		strcat(nine, "whsec_aGk= ");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = sign_header(cases[i], "id1", 42, "x", 1);

		if (got != NULL) {
			free(got);
			fail_msg("secret case %zu gave a signature, want NULL", i);
		}
		why[0] = '\0';
		if (sign_secrets_valid(cases[i], why, sizeof(why)))
			fail_msg("secret case %zu is valid, want not", i);
		if (why[0] == '\0')
			fail_msg("secret case %zu: no reason given", i);
		if (strstr(why, "aGk") != NULL || strstr(why, "VEVT") != NULL ||
		    strstr(why, "raw-secret") != NULL || strstr(why, "AAAA") != NULL)
			fail_msg("secret case %zu: the reason quotes the secret: %s", i, why);
	}
	assert_false(sign_secrets_valid(NULL, why, sizeof(why)));
	assert_true(sign_secrets_valid(SPEC_SECRET " " SPEC_WHSK, why, sizeof(why)));
	assert_true(sign_secrets_valid("a raw secret", NULL, 0));
	/* the reason names the position of the bad entry */
	assert_false(sign_secrets_valid("whsec_aGk= whsec_aGk= whsk_aGk=", why, sizeof(why)));
	assert_non_null(strstr(why, "secret 3"));
	assert_false(sign_secrets_valid("whsec_aGk= whpk_aGk=", why, sizeof(why)));
	assert_non_null(strstr(why, "public key"));
	/* a short buffer is filled, not overrun */
	assert_false(sign_secrets_valid("whsec_", why, 8));
	assert_int_equal(strlen(why), 7);
}

/* What sign_header logs about a malformed list names the entry and never the secret. */
static void test_malformed_log(void **state)
{
	static const char canary[] = "whsec_Y2FuYXJ5LWtleS0xMjM0NTY3ODkw whsec_CANARY+bad!";
	char path[] = "/tmp/test_sign_log.XXXXXX";
	char text[4096];
	int fd = mkstemp(path), saved;
	ssize_t n;
	char *got;

	(void)state;
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	got = sign_header(canary, "id1", 42, "x", 1);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	unlink(path);
	assert_null(got);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(strstr(text, "secret 2"));
	assert_null(strstr(text, "Y2FuYXJ5"));
	assert_null(strstr(text, "CANARY"));
	assert_null(strstr(text, "canary"));
}

static void test_secret_equal(void **state)
{
	(void)state;
	assert_true(sign_secret_equal("token-1", "token-1"));
	assert_true(sign_secret_equal("", ""));
	assert_false(sign_secret_equal("token-1", "token-2"));
	assert_false(sign_secret_equal("token-1", "token-1x"));
	assert_false(sign_secret_equal("token-1x", "token-1"));
	assert_false(sign_secret_equal("", "token-1"));
	assert_false(sign_secret_equal(NULL, "token-1"));
	assert_false(sign_secret_equal("token-1", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hmac_spec_vector),
		cmocka_unit_test(test_ed25519_spec_vector),
		cmocka_unit_test(test_hmac_keys),
		cmocka_unit_test(test_hmac_long_raw),
		cmocka_unit_test(test_body_bytes),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_ed25519_round_trip),
		cmocka_unit_test(test_public_key),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_malformed_log),
		cmocka_unit_test(test_secret_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
