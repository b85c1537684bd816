/* fuzz_call_json: the POST /v1/calls instruction parser. Bytes go through the strict document
 * parse, then call_from_json (one instruction, or each element of a batch array, as
 * h_calls_post does), call_resolve and call_row_json, with the gateway's default
 * configuration and an allow list of 127.0.0.1/32. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "call.h"
#include "conf.h"
#include "http.h"
#include "jstrict.h"
#include "netpolicy.h"
#include "xalloc.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The document parse of h_calls_post: lib/jstrict at the default max_json_depth. A refusal
 * must be a 400 naming "body" with a detail. Returns a new object (caller puts), or NULL. */
static struct json_object *parse_doc(const uint8_t *data, size_t size)
{
	struct problem p;
	struct json_object *doc =
		jstrict_parse((const char *)data, size, (int)cf.max_json_depth, &p);

	if (doc == NULL && (p.status != 400 || strcmp(p.field, "body") != 0 || p.detail[0] == '\0'))
		abort(); /* a refusal that does not say what is wrong */
	return doc;
}

/* One instruction the way the accept path treats it; the row is serialised as the insert
 * statement's parameter would be. */
static void one_call(struct json_object *o, const char *prefix)
{
	const struct call_env env = {&cf, &np};
	struct call c;
	struct problem p;

	call_init(&c);
	memset(&p, 0, sizeof(p));
	if (call_from_json(&c, o, &env, prefix, &p) == 0 &&
	    call_resolve(&c, &env, -1, -1, -1, -1, prefix, &p) == 0) {
		check_row("fuzz_call_json", &c, "0190a6f0-0000-7000-8000-000000000000");
	} else {
		check_problem("fuzz_call_json", &p);
	}
	call_cleanup(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The accept loop hands handlers a NUL-terminated body. */
	char *body = xmalloc(size + 1);
	struct json_object *doc;

	memcpy(body, data, size);
	body[size] = '\0';
	doc = parse_doc((const uint8_t *)body, size);
	if (doc != NULL && json_object_is_type(doc, json_type_array)) {
		size_t n = json_object_array_length(doc);

		for (size_t i = 0; i < n && (int64_t)i < cf.max_batch; i++) {
			char prefix[32];

			snprintf(prefix, sizeof(prefix), "[%zu].", i);
			one_call(json_object_array_get_idx(doc, i), prefix);
		}
	} else if (doc != NULL) {
		one_call(doc, "");
	}
	json_object_put(doc);
	free(body);
	return 0;
}
