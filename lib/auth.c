/* auth: bearer tokens, their hashes, and the rules of a principal. */
#include "auth.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/evp.h>

void principal_init(struct principal *p)
{
	memset(p, 0, sizeof(*p));
}

static void free_list(char **l)
{
	for (size_t i = 0; l != NULL && l[i] != NULL; i++)
		free(l[i]);
	free(l);
}

void principal_cleanup(struct principal *p)
{
	free(p->client);
	free(p->key_id);
	free_list(p->functions);
	free_list(p->url_patterns);
	free(p->key_version);
	principal_init(p);
}

static char **copy_list(char *const *l)
{
	size_t n = 0;
	char **out;

	if (l == NULL)
		return NULL;
	while (l[n] != NULL)
		n++;
	out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(l[i]);
	return out;
}

void principal_copy(struct principal *dst, const struct principal *src)
{
	principal_init(dst);
	dst->client = src->client != NULL ? xstrdup(src->client) : NULL;
	dst->key_id = src->key_id != NULL ? xstrdup(src->key_id) : NULL;
	dst->admin = src->admin;
	dst->functions = copy_list(src->functions);
	dst->url_patterns = copy_list(src->url_patterns);
	dst->key_version = src->key_version != NULL ? xstrdup(src->key_version) : NULL;
}

const char *auth_bearer(const char *value)
{
	if (value == NULL || strncasecmp(value, "Bearer ", 7) != 0)
		return NULL;
	value += 7;
	while (*value == ' ')
		value++;
	return *value != '\0' ? value : NULL;
}

static bool hex_run(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool auth_token_shape(const char *t)
{
	/* agk_ + k_ + 12 hex + _ + 64 hex */
	return strlen(t) == 4 + 2 + 12 + 1 + 64 && strncmp(t, "agk_k_", 6) == 0 &&
	       hex_run(t + 6, 12) && t[18] == '_' && hex_run(t + 19, 64);
}

void auth_token_hash(const char *token, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int len = 0;

	if (EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		abort(); /* SHA-256 of a string cannot fail but for a broken libcrypto */
	for (size_t i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

int auth_patterns_from_json(struct json_object *a, char ***out)
{
	size_t n;
	char **l;

	*out = xcalloc(1, sizeof(char *));
	if (!json_object_is_type(a, json_type_array))
		return a == NULL ? 0 : -1; /* SQL NULL: no patterns */
	n = json_object_array_length(a);
	for (size_t i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(a, i), json_type_string))
			return -1;
	l = xrealloc(*out, (n + 1) * sizeof(char *));
	for (size_t i = 0; i < n; i++)
		l[i] = xstrdup(json_object_get_string(json_object_array_get_idx(a, i)));
	l[n] = NULL;
	*out = l;
	return 0;
}

static bool any_match(char *const *l, const char *s)
{
	for (size_t i = 0; l != NULL && l[i] != NULL; i++)
		if (fnmatch(l[i], s, 0) == 0)
			return true;
	return false;
}

bool auth_may_function(const struct principal *p, const char *name)
{
	return p->admin || any_match(p->functions, name);
}

bool auth_may_url(const struct principal *p, const char *url)
{
	return p->admin || any_match(p->url_patterns, url);
}
