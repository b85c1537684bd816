/* test_auth: bearer parsing, token shape, the stored hash, and the rules' patterns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "auth.h"
#include "conf.h"

#define TOKEN "agk_k_0123456789ab_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_bearer(void **state)
{
	(void)state;
	assert_string_equal(auth_bearer("Bearer abc"), "abc");
	assert_string_equal(auth_bearer("bearer   abc"), "abc");
	assert_string_equal(auth_bearer("BEARER x y"), "x y");
	assert_null(auth_bearer(NULL));
	assert_null(auth_bearer(""));
	assert_null(auth_bearer("Bearer"));
	assert_null(auth_bearer("Bearer "));
	assert_null(auth_bearer("Bearer    "));
	assert_null(auth_bearer("Basic YWxpY2U6c2VjcmV0"));
	assert_null(auth_bearer("Bearerabc"));
}

static void test_token_shape(void **state)
{
	char t[128];

	(void)state;
	assert_true(auth_token_shape(TOKEN));
	assert_false(auth_token_shape(""));
	assert_false(auth_token_shape("agk_"));
	snprintf(t, sizeof(t), "%sa", TOKEN); /* one too long */
	assert_false(auth_token_shape(t));
	snprintf(t, sizeof(t), "%.*s", (int)strlen(TOKEN) - 1, TOKEN); /* one too short */
	assert_false(auth_token_shape(t));
	snprintf(t, sizeof(t), "%s", TOKEN);
	t[10] = 'G'; /* not hex in the id */
	assert_false(auth_token_shape(t));
	snprintf(t, sizeof(t), "%s", TOKEN);
	t[40] = 'A'; /* upper-case hex is not what ag_key_create makes */
	assert_false(auth_token_shape(t));
	snprintf(t, sizeof(t), "%s", TOKEN);
	t[18] = '-';
	assert_false(auth_token_shape(t));
	snprintf(t, sizeof(t), "%s", TOKEN);
	t[0] = 'b';
	assert_false(auth_token_shape(t));
}

static void test_hash(void **state)
{
	char hex[65];

	(void)state;
	/* FIPS 180-2 test vector: SHA-256("abc"). */
	auth_token_hash("abc", hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	auth_token_hash("", hex);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void rules(struct principal *p, const char *fn, const char *url)
{
	struct json_object *a = json_tokener_parse(fn);
	struct json_object *b = json_tokener_parse(url);

	principal_init(p);
	p->client = strdup("c");
	assert_int_equal(auth_patterns_from_json(a, &p->functions), 0);
	assert_int_equal(auth_patterns_from_json(b, &p->url_patterns), 0);
	json_object_put(a);
	json_object_put(b);
}

static void test_patterns(void **state)
{
	struct principal p;

	(void)state;
	rules(&p, "[\"resize-image\", \"report-*\"]", "[\"https://api.example.com/*\"]");
	assert_true(auth_may_function(&p, "resize-image"));
	assert_true(auth_may_function(&p, "report-daily"));
	assert_false(auth_may_function(&p, "resize-imagex"));
	assert_false(auth_may_function(&p, "b"));
	assert_true(auth_may_url(&p, "https://api.example.com/v1/orders?x=1"));
	assert_false(auth_may_url(&p, "https://api.example.com.evil.test/"));
	assert_false(auth_may_url(&p, "http://api.example.com/x")); /* scheme is part of it */
	assert_false(auth_may_url(&p, "https://other.example.com/"));
	principal_cleanup(&p);
	assert_null(p.client);

	/* Empty lists allow nothing; '*' allows everything; admin overrides. */
	rules(&p, "[]", "[]");
	assert_false(auth_may_function(&p, "a"));
	assert_false(auth_may_url(&p, "https://x/"));
	p.admin = true;
	assert_true(auth_may_function(&p, "a"));
	assert_true(auth_may_url(&p, "https://x/"));
	principal_cleanup(&p);
	rules(&p, "[\"*\"]", "[\"*\"]");
	assert_true(auth_may_function(&p, "anything"));
	assert_true(auth_may_url(&p, "https://any.example/path/deep"));
	principal_cleanup(&p);
}

static void test_patterns_from_json(void **state)
{
	struct json_object *o;
	char **l;

	(void)state;
	assert_int_equal(auth_patterns_from_json(NULL, &l), 0); /* SQL NULL */
	assert_null(l[0]);
	free(l);
	o = json_tokener_parse("[\"a\", 1]");
	assert_int_equal(auth_patterns_from_json(o, &l), -1);
	assert_null(l[0]);
	free(l);
	json_object_put(o);
	o = json_tokener_parse("{\"a\": 1}");
	assert_int_equal(auth_patterns_from_json(o, &l), -1);
	free(l);
	json_object_put(o);
	o = json_tokener_parse("[\"a\", \"b\"]");
	assert_int_equal(auth_patterns_from_json(o, &l), 0);
	assert_string_equal(l[0], "a");
	assert_string_equal(l[1], "b");
	assert_null(l[2]);
	free(l[0]);
	free(l[1]);
	free(l);
	json_object_put(o);
}

static void test_modes(void **state)
{
	(void)state;
	assert_int_equal(conf_auth_modes("keys"), AUTH_KEYS);
	assert_int_equal(conf_auth_modes("remote_user"), AUTH_REMOTE_USER);
	assert_int_equal(conf_auth_modes("keys remote_user"), AUTH_KEYS | AUTH_REMOTE_USER);
	assert_int_equal(conf_auth_modes("remote_user, keys"), AUTH_KEYS | AUTH_REMOTE_USER);
	assert_int_equal(conf_auth_modes("none"), AUTH_NONE);
	assert_int_equal(conf_auth_modes(""), -1);
	assert_int_equal(conf_auth_modes("none keys"), -1);
	assert_int_equal(conf_auth_modes("key"), -1);
	assert_int_equal(conf_auth_modes("keysx"), -1);
	assert_int_equal(conf_auth_modes("Keys"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_token_shape),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_patterns_from_json),
		cmocka_unit_test(test_modes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
