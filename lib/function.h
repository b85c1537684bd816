/* function: the checks of a function spec (PUT /v1/functions/{name}) that need the gateway's
 * configuration or C libraries; sql/004_functions_flow.sql ag_function_put checks the rest. */
#ifndef AG_FUNCTION_H
#define AG_FUNCTION_H

#include "call.h"
#include "problem.h"
#include "xalloc.h"

struct json_object;

/* Checks what SQL cannot: base_url against the address policy and URL rules of a call target
 * (call_check_url), headers with the rules of a call's headers (call_check_headers), and
 * signing_secret with sign_secrets_valid. Fields of another type, or missing, are left to
 * ag_function_put, which names them. spec is borrowed. Returns 0, or -1 with p filled (400,
 * naming the field). */
int function_check(struct json_object *spec, const struct call_env *env,
		   struct problem *p) MUSTCHECK;

/* Whether name is a function name (1 to 128 of A-Z a-z 0-9 _ . -, starting alphanumeric):
 * the names the functions table takes. */
bool function_name_valid(const char *name);

#endif
