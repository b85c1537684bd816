/* function: the C-side checks of a function spec: address policy, header rules, secrets. */
#include "function.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "sign.h"

bool function_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 128 || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && strchr("_.-", name[i]) == NULL)
			return false;
	return true;
}

int function_check(struct json_object *spec, const struct call_env *env, struct problem *p)
{
	struct json_object *v;

	if (!json_object_is_type(spec, json_type_object))
		return 0; /* ag_function_put says so */
	if (json_object_object_get_ex(spec, "base_url", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    call_check_url(json_object_get_string(v), env, "base_url", p) != 0)
		return -1;
	if (json_object_object_get_ex(spec, "headers", &v) &&
	    json_object_is_type(v, json_type_object) &&
	    call_check_headers(v, env, "headers", p) != 0)
		return -1;
	if (json_object_object_get_ex(spec, "signing_secret", &v) &&
	    json_object_is_type(v, json_type_string)) {
		char why[160] = "";

		if (!sign_secrets_valid(json_object_get_string(v), why, sizeof(why))) {
			p->status = 400;
			snprintf(p->field, sizeof(p->field), "signing_secret");
			snprintf(p->detail, sizeof(p->detail), "signing_secret: %s", why);
			return -1;
		}
	}
	return 0;
}
