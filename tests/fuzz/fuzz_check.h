/* fuzz_check: the gateway both call harnesses run with (conf defaults, 127.0.0.1/32 allowed),
 * and what they demand of every outcome, beyond memory safety: a refusal is a well-formed
 * problem+json answer, an accepted call a row PostgreSQL takes. */
#ifndef AG_FUZZ_CHECK_H
#define AG_FUZZ_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "call.h"
#include "conf.h"
#include "http.h"
#include "netpolicy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct conf cf;
static struct netpolicy np;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	conf_defaults(&cf);
	if (netpolicy_init(&np, "127.0.0.1/32") != 0)
		abort();
	return 0;
}

/* A refusal is a 4xx naming its field, with a reason (DESIGN.md), and its problem+json answer
 * is UTF-8 JSON (RFC 8259 section 8.1) whatever bytes the input had. */
static void check_problem(const char *who, const struct problem *p)
{
	struct resp rs;

	if (p->status < 400 || p->status > 499 || p->field[0] == '\0' || p->detail[0] == '\0') {
		fprintf(stderr,
			"%s: refusal without a 4xx status, field or detail: status=%d field=\"%s\" "
			"detail=\"%s\"\n",
			who, p->status, p->field, p->detail);
		abort();
	}
	resp_init(&rs);
	resp_problem(&rs, p->status, p->field, "%s", p->detail);
	if (!http_utf8_valid(rs.body, rs.body_len)) {
		fprintf(stderr, "%s: problem+json body is not UTF-8: %s\n", who, rs.body);
		abort();
	}
	resp_reset(&rs);
}

/* Whether JSON text s holds the escape \u0000 (not an escaped backslash before "u0000"). */
static bool has_nul_escape(const char *s)
{
	for (const char *t = strstr(s, "u0000"); t != NULL; t = strstr(t + 1, "u0000")) {
		size_t n = 0;

		while (t - n > s && t[-(ptrdiff_t)n - 1] == '\\')
			n++;
		if (n % 2 == 1)
			return true;
	}
	return false;
}

/* An accepted call's row goes to Q_CALLS_INSERT as $1::jsonb: PostgreSQL refuses malformed
 * UTF-8 and \u0000 there, and integers beyond the int4 columns. Any of them would be a 500 for
 * input that should have been a 400. */
static void check_row(const char *who, const struct call *c, const char *id)
{
	struct json_object *row = call_row_json(c, id);
	size_t len;
	const char *s = json_object_to_json_string_length(row, JSON_C_TO_STRING_PLAIN, &len);
	const int64_t ints[] = {c->max_attempts, c->retry_initial_ms, c->retry_max_ms,
				c->timeout_ms};

	if (!http_utf8_valid(s, len) || has_nul_escape(s)) {
		fprintf(stderr, "%s: row PostgreSQL would refuse: %s\n", who, s);
		abort();
	}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (ints[i] < 0 || ints[i] > INT32_MAX) {
			fprintf(stderr, "%s: integer out of its int4 column: %s\n", who, s);
			abort();
		}
	}
	json_object_put(row);
}

#endif
