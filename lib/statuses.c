/* statuses: status code sets for the per-call retry lists; one parser for the handler (input)
 * and the drainer (what was stored). */
#include "statuses.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

void statuses_clear(struct statuses *s)
{
	memset(s, 0, sizeof(*s));
}

bool statuses_has(const struct statuses *s, long status)
{
	if (s == NULL || status < 0 || status >= 640)
		return false;
	return (s->bits[status / 64] >> (status % 64) & 1) != 0;
}

static void set_bit(struct statuses *s, long status)
{
	s->bits[status / 64] |= (uint64_t)1 << (status % 64);
}

/* 1xx are never a final answer and 2xx are success: neither may be listed. */
static int check_range(long code, bool cls, const char **why)
{
	long lo = cls ? code * 100 : code;

	if (lo < 100 || lo > 599) {
		*why = "is not an HTTP status (100 to 599) or class (3xx, 4xx, 5xx)";
		return -1;
	}
	if (lo < 300) {
		*why = "1xx and 2xx cannot be listed (1xx is never a final answer, 2xx is success)";
		return -1;
	}
	return 0;
}

int statuses_item(struct json_object *v, struct json_object **item, const char **why)
{
	const char *s, *end;
	char text[8];
	size_t n;

	*item = NULL;
	if (json_object_is_type(v, json_type_int)) {
		int64_t code = json_object_get_int64(v);

		if (code < 0 || code > 999) {
			*why = "is not an HTTP status (100 to 599) or class (3xx, 4xx, 5xx)";
			return -1;
		}
		if (check_range((long)code, false, why) != 0)
			return -1;
		*item = json_object_new_int((int)code);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string)) {
		*why = "entries must be status numbers (404) or classes (\"5xx\")";
		return -1;
	}
	s = json_object_get_string(v);
	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = (size_t)(end - s);
	if (n != 3 || !isdigit((unsigned char)s[0])) {
		*why = "is not an HTTP status (100 to 599) or class (3xx, 4xx, 5xx)";
		return -1;
	}
	memcpy(text, s, 3);
	text[3] = '\0';
	if ((text[1] == 'x' || text[1] == 'X') && (text[2] == 'x' || text[2] == 'X')) {
		if (check_range(text[0] - '0', true, why) != 0)
			return -1;
		text[1] = text[2] = 'x';
		*item = json_object_new_string(text);
		return 0;
	}
	if (!isdigit((unsigned char)text[1]) || !isdigit((unsigned char)text[2])) {
		*why = "is not an HTTP status (100 to 599) or class (3xx, 4xx, 5xx)";
		return -1;
	}
	if (check_range(strtol(text, NULL, 10), false, why) != 0)
		return -1;
	*item = json_object_new_int((int)strtol(text, NULL, 10));
	return 0;
}

int statuses_add_json(struct statuses *s, struct json_object *list)
{
	size_t n;

	if (list == NULL)
		return 0;
	if (!json_object_is_type(list, json_type_array))
		return -1;
	n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(list, i);
		struct json_object *item = NULL;
		const char *why;

		if (statuses_item(v, &item, &why) != 0)
			return -1;
		if (json_object_is_type(item, json_type_int)) {
			set_bit(s, (long)json_object_get_int(item));
		} else {
			long base = (json_object_get_string(item)[0] - '0') * 100;

			for (long c = base; c < base + 100; c++)
				set_bit(s, c);
		}
		json_object_put(item);
	}
	return 0;
}
