/* test_conf: defaults, one key at a time, whole files, and the key list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

#define DAY_MS 86400000LL

/* Writes text to a new temporary file; returns its path (static buffer). */
static const char *write_temp(const char *text)
{
	static char path[64];
	int fd;
	size_t n = strlen(text);

	snprintf(path, sizeof(path), "/tmp/ag_test_conf_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	return path;
}

/* Captures what fn writes to stderr (the log) into out. */
struct capture {
	int saved;
	char path[64];
};

static void capture_start(struct capture *c)
{
	int fd;

	fflush(stderr);
	snprintf(c->path, sizeof(c->path), "/tmp/ag_test_log_XXXXXX");
	fd = mkstemp(c->path);
	assert_true(fd >= 0);
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	assert_true(dup2(fd, 2) >= 0);
	close(fd);
}

/* Restores stderr and returns the captured text (caller frees). */
static char *capture_end(struct capture *c)
{
	FILE *f;
	char *text;
	long n;

	fflush(stderr);
	assert_true(dup2(c->saved, 2) >= 0);
	close(c->saved);
	f = fopen(c->path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(c->path);
	return text;
}

static void test_defaults(void **state)
{
	struct conf cf;

	(void)state;
	conf_defaults(&cf);
	assert_string_equal(cf.database, "");
	assert_string_equal(cf.log_level, "info");
	assert_string_equal(cf.allow_targets, "");
	assert_string_equal(cf.public_url, "");
	assert_int_equal(cf.max_request_bytes, 16LL << 20);
	assert_int_equal(cf.max_body_bytes, 1LL << 20);
	assert_int_equal(cf.max_batch, 1000);
	assert_int_equal(cf.max_headers, 64);
	assert_int_equal(cf.max_json_depth, 32);
	assert_string_equal(cf.deny_headers, "Cookie");
	assert_int_equal(cf.max_delay_ms, 365 * DAY_MS);
	assert_int_equal(cf.max_timeout_ms, 30 * 60000);
	assert_int_equal(cf.max_expires_in_ms, 400 * DAY_MS);
	assert_int_equal(cf.default_timeout_ms, 30000);
	assert_int_equal(cf.default_max_attempts, 10);
	assert_int_equal(cf.default_retry_initial_ms, 1000);
	assert_int_equal(cf.default_retry_max_ms, 3600000);
	assert_int_equal(cf.retry_after_s, 5);
	assert_string_equal(cf.outbound_proxy, "");
	assert_string_equal(cf.drain_resolve, "");
	conf_cleanup(&cf);
	assert_null(cf.database);
	assert_null(cf.log_level);
	assert_null(cf.allow_targets);
	assert_null(cf.public_url);
	conf_cleanup(&cf); /* twice is harmless */
}

/* Reads back an int64 member by key name, for the tables below. */
static int64_t get_num(const struct conf *cf, const char *key)
{
	static const struct {
		const char *key;
		size_t off;
	} map[] = {
		{ "max_request_bytes", offsetof(struct conf, max_request_bytes) },
		{ "max_body_bytes", offsetof(struct conf, max_body_bytes) },
		{ "max_batch", offsetof(struct conf, max_batch) },
		{ "max_headers", offsetof(struct conf, max_headers) },
		{ "max_json_depth", offsetof(struct conf, max_json_depth) },
		{ "max_delay", offsetof(struct conf, max_delay_ms) },
		{ "max_timeout", offsetof(struct conf, max_timeout_ms) },
		{ "max_expires_in", offsetof(struct conf, max_expires_in_ms) },
		{ "default_timeout", offsetof(struct conf, default_timeout_ms) },
		{ "default_max_attempts", offsetof(struct conf, default_max_attempts) },
		{ "default_retry_initial", offsetof(struct conf, default_retry_initial_ms) },
		{ "default_retry_max", offsetof(struct conf, default_retry_max_ms) },
		{ "retry_after_s", offsetof(struct conf, retry_after_s) },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].key, key) == 0)
			return *(const int64_t *)(const void *)((const char *)cf + map[i].off);
	fail_msg("test bug: no numeric key %s", key);
	return -1;
}

static void test_set_valid(void **state)
{
	static const struct {
		const char *key, *value;
		int64_t want;
	} cases[] = {
		{ "max_body_bytes", "65536", 65536 },
		{ "max_body_bytes", "64K", 65536 },
		{ "max_body_bytes", "64k", 65536 },
		{ "max_body_bytes", "2M", 2LL << 20 },
		{ "max_body_bytes", "2m", 2LL << 20 },
		{ "max_body_bytes", "1", 1 },
		{ "max_body_bytes", "256M", 256LL << 20 },
		{ "max_request_bytes", "1G", 1LL << 30 },
		{ "max_request_bytes", "1g", 1LL << 30 },
		{ "max_request_bytes", "1K", 1024 },
		{ "max_batch", "1", 1 },
		{ "max_batch", "100000", 100000 },
		{ "max_headers", "0", 0 },
		{ "max_headers", "1000", 1000 },
		{ "max_json_depth", "4", 4 },
		{ "max_json_depth", "1000", 1000 },
		{ "max_delay", "90s", 90000 },
		{ "max_delay", "0", 0 },
		{ "max_delay", "3650d", 3650 * DAY_MS },
		{ "max_delay", "1h30m", 5400000 },
		{ "max_timeout", "1s", 1000 },
		{ "max_timeout", "1000ms", 1000 },
		{ "max_timeout", "1d", DAY_MS },
		{ "max_expires_in", "24h", DAY_MS },
		{ "default_timeout", "45", 45000 },
		{ "default_max_attempts", "1", 1 },
		{ "default_max_attempts", "100", 100 },
		{ "default_retry_initial", "0", 0 },
		{ "default_retry_initial", "500ms", 500 },
		{ "default_retry_max", "24d", 24 * DAY_MS },
		{ "retry_after_s", "3600", 3600 },
	};
	struct conf cf;

	(void)state;
	conf_defaults(&cf);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (conf_set(&cf, cases[i].key, cases[i].value) != 0)
			fail_msg("%s = %s refused", cases[i].key, cases[i].value);
		if (get_num(&cf, cases[i].key) != cases[i].want)
			fail_msg("%s = %s: got %lld, want %lld", cases[i].key, cases[i].value,
				 (long long)get_num(&cf, cases[i].key), (long long)cases[i].want);
	}
	assert_int_equal(conf_set(&cf, "log_level", "debug"), 0);
	assert_string_equal(cf.log_level, "debug");
	assert_int_equal(conf_set(&cf, "log_level", "error"), 0);
	assert_string_equal(cf.log_level, "error");
	assert_int_equal(conf_set(&cf, "database", "host=/tmp dbname=ag"), 0);
	assert_string_equal(cf.database, "host=/tmp dbname=ag");
	assert_int_equal(conf_set(&cf, "allow_targets", "127.0.0.1/32"), 0);
	assert_string_equal(cf.allow_targets, "127.0.0.1/32");
	assert_int_equal(conf_set(&cf, "public_url", "https://gw.example.com"), 0);
	assert_string_equal(cf.public_url, "https://gw.example.com");
	assert_int_equal(conf_set(&cf, "public_url", ""), 0); /* replacing frees the old one */
	assert_string_equal(cf.public_url, "");
	assert_int_equal(conf_set(&cf, "deny_headers", "Cookie, X-Internal-Token\tX_B,,Via"), 0);
	assert_string_equal(cf.deny_headers, "Cookie, X-Internal-Token\tX_B,,Via");
	assert_int_equal(conf_set(&cf, "deny_headers", ""), 0);
	assert_string_equal(cf.deny_headers, "");
	conf_cleanup(&cf);
}

/* outbound_proxy: nothing, or a proxy URL with its scheme; drain_resolve: CURLOPT_RESOLVE
 * entries "host:port:addr[,addr...]" separated by spaces. */
static void test_set_proxy_resolve(void **state)
{
	static const char *const proxy_ok[] = {
		"",
		"http://proxy.internal:3128",
		"https://proxy.internal",
		"socks5h://127.0.0.1:1080",
		"HTTP://user:secret@10.0.0.5:3128/",
		"socks4a://p",
	};
	static const char *const proxy_bad[] = {
		"proxy.internal:3128", /* libcurl would guess http; say it */
		"http://",
		"ftp://proxy.internal",
		"http://proxy internal",
		"http://proxy\tinternal",
		" http://proxy.internal",
		"file:///tmp/p",
	};
	static const char *const resolve_ok[] = {
		"",
		"api.internal:443:10.1.2.3",
		"a.test:80:127.0.0.2,127.0.0.1 b.test:8080:[::1],10.0.0.1",
		"  dual.test:1:[fd00::1]\tx:65535:8.8.8.8  ",
	};
	static const char *const resolve_bad[] = {
		"api.internal",
		"api.internal:443",
		"api.internal:443:",
		"api.internal:0:10.1.2.3",
		"api.internal:65536:10.1.2.3",
		"api.internal:x:10.1.2.3",
		"api.internal::10.1.2.3",
		":443:10.1.2.3",
		"api_internal:443:10.1.2.3",
		"api.internal:443:10.1.2",
		"api.internal:443:::1",
		"api.internal:443:[::1",
		"api.internal:443:[]",
		"api.internal:443:10.1.2.3,",
		"api.internal:443:10.1.2.3,,10.1.2.4",
		"api.internal:443:host.example",
		"+api.internal:443:10.1.2.3",
		"-api.internal:443",
		"ok.test:80:10.0.0.1 bad.test:80:nope",
		"api.internal:443:10.1.2.3,api.internal:80:10.1.2.3",
	};
	struct conf cf;

	(void)state;
	conf_defaults(&cf);
	for (size_t i = 0; i < sizeof(proxy_ok) / sizeof(proxy_ok[0]); i++) {
		if (conf_set(&cf, "outbound_proxy", proxy_ok[i]) != 0)
			fail_msg("outbound_proxy = \"%s\" refused", proxy_ok[i]);
		assert_string_equal(cf.outbound_proxy, proxy_ok[i]);
	}
	for (size_t i = 0; i < sizeof(proxy_bad) / sizeof(proxy_bad[0]); i++)
		if (conf_set(&cf, "outbound_proxy", proxy_bad[i]) != -1)
			fail_msg("outbound_proxy = \"%s\" accepted", proxy_bad[i]);
	assert_string_equal(cf.outbound_proxy, "socks4a://p"); /* the last good value stays */
	for (size_t i = 0; i < sizeof(resolve_ok) / sizeof(resolve_ok[0]); i++) {
		if (conf_set(&cf, "drain_resolve", resolve_ok[i]) != 0)
			fail_msg("drain_resolve = \"%s\" refused", resolve_ok[i]);
		assert_string_equal(cf.drain_resolve, resolve_ok[i]);
	}
	for (size_t i = 0; i < sizeof(resolve_bad) / sizeof(resolve_bad[0]); i++)
		if (conf_set(&cf, "drain_resolve", resolve_bad[i]) != -1)
			fail_msg("drain_resolve = \"%s\" accepted", resolve_bad[i]);
	conf_cleanup(&cf);
}

static void test_set_invalid(void **state)
{
	static const struct {
		const char *key, *value;
	} cases[] = {
		{ "no_such_key", "1" },
		{ "", "1" },
		{ "MAX_BATCH", "5" },       /* keys are exact */
		{ "max_batch ", "5" },
		{ "max_body_bytes", "12x" },
		{ "max_body_bytes", "" },
		{ "max_body_bytes", "-1" },
		{ "max_body_bytes", "0" },  /* below 1 */
		{ "max_body_bytes", "1KB" },
		{ "max_body_bytes", "1.5M" },
		{ "max_body_bytes", "0x10" },
		{ "max_body_bytes", "1G" }, /* over 256M */
		{ "max_body_bytes", "257M" },
		{ "max_body_bytes", "9223372036854775807K" },
		{ "max_body_bytes", "99999999999999999999" },
		{ "max_request_bytes", "1023" },
		{ "max_request_bytes", "2G" },
		{ "max_batch", "12x" },
		{ "max_batch", "0" },
		{ "max_batch", "100001" },
		{ "max_batch", "" },
		{ "max_batch", "1.0" },
		{ "max_batch", "99999999999999999999" },
		{ "max_headers", "-1" },
		{ "max_headers", "1001" },
		{ "max_json_depth", "3" },
		{ "max_json_depth", "1001" },
		{ "deny_headers", "Cookie, X:A" },
		{ "deny_headers", "X-A;X-B" },
		{ "deny_headers", "Caf\xc3\xa9" },
		{ "max_delay", "1.5s" },
		{ "max_delay", "-5s" },
		{ "max_delay", "3651d" },
		{ "max_delay", "forever" },
		{ "max_delay", "" },
		{ "max_timeout", "999ms" },
		{ "max_timeout", "0" },
		{ "max_timeout", "2d" },
		{ "max_expires_in", "500ms" },
		{ "default_timeout", "0s" },
		{ "default_max_attempts", "0" },
		{ "default_max_attempts", "101" },
		{ "default_retry_max", "31d" },
		{ "retry_after_s", "0" },
		{ "retry_after_s", "3601" },
		{ "retry_after_s", "5s" },
		{ "log_level", "verbose" },
		{ "log_level", "DEBUG" },
		{ "log_level", "" },
	};
	struct conf cf, ref;

	(void)state;
	conf_defaults(&cf);
	conf_defaults(&ref);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (conf_set(&cf, cases[i].key, cases[i].value) != -1)
			fail_msg("%s = \"%s\" accepted", cases[i].key, cases[i].value);
	}
	/* A refused value leaves the key as it was. */
	assert_int_equal(cf.max_body_bytes, ref.max_body_bytes);
	assert_int_equal(cf.max_request_bytes, ref.max_request_bytes);
	assert_int_equal(cf.max_batch, ref.max_batch);
	assert_int_equal(cf.max_headers, ref.max_headers);
	assert_int_equal(cf.max_delay_ms, ref.max_delay_ms);
	assert_int_equal(cf.max_timeout_ms, ref.max_timeout_ms);
	assert_int_equal(cf.default_max_attempts, ref.default_max_attempts);
	assert_int_equal(cf.retry_after_s, ref.retry_after_s);
	assert_string_equal(cf.log_level, "info");
	assert_int_equal(cf.max_json_depth, ref.max_json_depth);
	assert_string_equal(cf.deny_headers, "Cookie");
	conf_cleanup(&cf);
	conf_cleanup(&ref);
}

static void test_load_file(void **state)
{
	const char *path = write_temp("# asyncgate test configuration\n"
				      "\n"
				      "   \n"
				      "; another comment style\n"
				      "max_batch = 50\n"
				      "  max_headers=8  \n"
				      "\tdatabase =  host=/tmp port=5433 dbname=ag \n"
				      "log_level = debug\n"
				      "default_timeout = 10s\n"
				      "public_url =\n");
	struct conf cf;

	(void)state;
	conf_defaults(&cf);
	assert_int_equal(conf_load(&cf, path), 0);
	assert_int_equal(cf.max_batch, 50);
	assert_int_equal(cf.max_headers, 8);
	assert_string_equal(cf.database, "host=/tmp port=5433 dbname=ag"); /* '=' in a value */
	assert_string_equal(cf.log_level, "debug");
	assert_int_equal(cf.default_timeout_ms, 10000);
	assert_string_equal(cf.public_url, "");
	assert_int_equal(cf.max_body_bytes, 1LL << 20); /* untouched keys keep defaults */
	unlink(path);
	conf_cleanup(&cf);
}

static void test_load_bad_lines_reports_all(void **state)
{
	const char *path = write_temp("max_batch = 50\n"          /* 1 ok */
				      "this line has no equals\n" /* 2 bad */
				      "# comment\n"               /* 3 */
				      "unknown_key = 1\n"         /* 4 bad */
				      "max_headers = 8\n"         /* 5 ok, after bad lines */
				      "max_body_bytes = 12x\n"    /* 6 bad */
				      "\n"                        /* 7 */
				      "= 5\n"                     /* 8 bad: no key */
				      "retry_after_s = 7\n");     /* 9 ok */
	struct conf cf;
	struct capture cap;
	char *log;

	(void)state;
	conf_defaults(&cf);
	capture_start(&cap);
	assert_int_equal(conf_load(&cf, path), -1);
	log = capture_end(&cap);
	/* Good lines still apply, before and after the bad ones. */
	assert_int_equal(cf.max_batch, 50);
	assert_int_equal(cf.max_headers, 8);
	assert_int_equal(cf.retry_after_s, 7);
	assert_int_equal(cf.max_body_bytes, 1LL << 20);
	/* Every bad line is reported with its number. */
	for (int line = 1; line <= 9; line++) {
		char tag[96];
		bool bad = line == 2 || line == 4 || line == 6 || line == 8;

		snprintf(tag, sizeof(tag), "%s:%d:", path, line);
		if (bad && strstr(log, tag) == NULL)
			fail_msg("bad line %d not reported; log:\n%s", line, log);
		if (!bad && strstr(log, tag) != NULL)
			fail_msg("good line %d reported; log:\n%s", line, log);
	}
	free(log);
	unlink(path);
	conf_cleanup(&cf);
}

static void test_load_retry_order(void **state)
{
	const char *path = write_temp("default_retry_initial = 2h\n"
				      "default_retry_max = 1h\n");
	struct conf cf;

	(void)state;
	conf_defaults(&cf);
	assert_int_equal(conf_load(&cf, path), -1); /* initial must not exceed max */
	unlink(path);
	conf_cleanup(&cf);
}

static void test_load_missing_and_env(void **state)
{
	struct conf cf;
	const char *path;

	(void)state;
	conf_defaults(&cf);
	assert_int_equal(conf_load(&cf, "/nonexistent/dir/asyncgate.conf"), -1);
	assert_int_equal(cf.max_batch, 1000);

	/* NULL path: $ASYNCGATE_CONF, or the defaults when it is unset or empty. */
	assert_int_equal(unsetenv("ASYNCGATE_CONF"), 0);
	assert_int_equal(conf_load(&cf, NULL), 0);
	assert_int_equal(cf.max_batch, 1000);
	assert_int_equal(setenv("ASYNCGATE_CONF", "", 1), 0);
	assert_int_equal(conf_load(&cf, NULL), 0);
	path = write_temp("max_batch = 77\n");
	assert_int_equal(setenv("ASYNCGATE_CONF", path, 1), 0);
	assert_int_equal(conf_load(&cf, NULL), 0);
	assert_int_equal(cf.max_batch, 77);
	assert_int_equal(setenv("ASYNCGATE_CONF", "/nonexistent/asyncgate.conf", 1), 0);
	assert_int_equal(conf_load(&cf, NULL), -1);
	assert_int_equal(unsetenv("ASYNCGATE_CONF"), 0);
	unlink(path);
	conf_cleanup(&cf);
}

static void test_key_names(void **state)
{
	static const char *const want[] = {
		"database",
		"log_level",
		"allow_targets",
		"public_url",
		"max_request_bytes",
		"max_body_bytes",
		"max_batch",
		"max_headers",
		"max_json_depth",
		"deny_headers",
		"max_delay",
		"max_timeout",
		"max_expires_in",
		"default_timeout",
		"default_max_attempts",
		"default_retry_initial",
		"default_retry_max",
		"retry_after_s",
		"notify_interval",
		"handler_threads",
		"commit_linger_us",
		"drain_concurrency",
		"drain_lease_margin",
		"drain_connect_timeout",
		"drain_poll_interval",
		"max_response_bytes",
		"drain_token",
		"drain_budget",
		"auth",
		"outbound_proxy",
		"drain_resolve",
	};
	size_t n = sizeof(want) / sizeof(want[0]);
	struct conf cf;

	(void)state;
	conf_defaults(&cf);
	for (size_t i = 0; i < n; i++) {
		const char *k = conf_key_name(i);

		assert_non_null(k);
		assert_string_equal(k, want[i]);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(k, conf_key_name(j));
	}
	assert_null(conf_key_name(n));
	assert_null(conf_key_name(n + 1));
	assert_null(conf_key_name((size_t)-1));
	conf_cleanup(&cf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_set_valid),
		cmocka_unit_test(test_set_invalid),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_load_bad_lines_reports_all),
		cmocka_unit_test(test_load_retry_order),
		cmocka_unit_test(test_load_missing_and_env),
		cmocka_unit_test(test_set_proxy_resolve),
		cmocka_unit_test(test_key_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
