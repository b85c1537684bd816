/* fuzz_call_request: the transparent-mode parser, call_from_request, on a request made from
 * the input the way the accept loop fills struct req behind a web server:
 *
 *	https%3A%2F%2Fapi.example.com%2Fx/rest?size=small   REQUEST_URI after "/v1/async/"
 *	PUT                                                  REQUEST_METHOD
 *	Async-Delay: 90s                                     header: HTTP_ASYNC_DELAY=90s
 *	REMOTE_USER=alice                                    a CGI parameter as it is
 *	                                                     empty line: end of the head
 *	{"body": "bytes"}                                    body (any bytes, to the end)
 *
 * A header line becomes HTTP_ + its name upper-cased with every other character as '_'
 * (lighttpd's and nginx's spelling), except Content-Type and Content-Length, which are
 * CONTENT_TYPE and CONTENT_LENGTH as CGI says (RFC 3875 4.1). */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "call.h"
#include "conf.h"
#include "http.h"
#include "netpolicy.h"
#include "xalloc.h"

#include "fuzz_check.h"

#define MAX_PARAMS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of [*p, end) as a new string (without its "\n" or "\r\n"), and *p past it.
 * A NUL inside ends the string there, as it would a CGI parameter. */
static char *next_line(const char **p, const char *end)
{
	const char *s = *p;
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	size_t n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);

	*p = nl != NULL ? nl + 1 : end;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	return xstrndup(s, n);
}

/* A header line "Name: value" as a CGI parameter; other lines are taken as parameters. */
static char *param_of(const char *line)
{
	const char *colon = strchr(line, ':');
	const char *eq = strchr(line, '=');
	const char *v;
	struct buf b;

	if (colon == NULL || (eq != NULL && eq < colon))
		return xstrdup(line);
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if ((size_t)(colon - line) == 12 && strncasecmp(line, "Content-Type", 12) == 0)
		return xasprintf("CONTENT_TYPE=%s", v);
	if ((size_t)(colon - line) == 14 && strncasecmp(line, "Content-Length", 14) == 0)
		return xasprintf("CONTENT_LENGTH=%s", v);
	buf_init(&b);
	buf_puts(&b, "HTTP_");
	for (const char *s = line; s < colon; s++) {
		char ch = isalnum((unsigned char)*s) ? (char)toupper((unsigned char)*s) : '_';

		buf_append(&b, &ch, 1);
	}
	buf_printf(&b, "=%s", v);
	return buf_take(&b, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct call_env env = {&cf, &np};
	const char *p = (const char *)data;
	const char *end = p + size;
	struct req rq;
	struct call c;
	struct problem prob;
	char *uri;
	char *q;
	size_t n = 0;

	req_init(&rq);
	call_init(&c);
	memset(&prob, 0, sizeof(prob));
	rq.params = xcalloc(MAX_PARAMS + 1, sizeof(*rq.params));

	/* REQUEST_URI's tail: the path up to '?', the raw query after it. */
	uri = next_line(&p, end);
	q = strchr(uri, '?');
	rq.query = xstrdup(q != NULL ? q + 1 : "");
	if (q != NULL)
		*q = '\0';
	rq.path = xasprintf("/v1/async/%s", uri);
	rq.mount = xstrdup("");
	free(uri);

	{
		char *m = next_line(&p, end);

		rq.params[n++] = xasprintf("REQUEST_METHOD=%s", m);
		free(m);
		rq.method = rq.params[0] + strlen("REQUEST_METHOD=");
	}
	while (p < end) {
		char *line = next_line(&p, end);

		if (*line == '\0') {
			free(line);
			break;
		}
		if (n < MAX_PARAMS)
			rq.params[n++] = param_of(line);
		free(line);
	}
	if (p < end) {
		rq.body_len = (size_t)(end - p);
		rq.body = xmalloc(rq.body_len + 1);
		memcpy(rq.body, p, rq.body_len);
		rq.body[rq.body_len] = '\0';
	}

	if (call_from_request(&c, &rq, rq.path + strlen("/v1/async/"), &env, &prob) == 0 &&
	    call_resolve(&c, &env, -1, -1, -1, -1, "", &prob) == 0) {
		check_row("fuzz_call_request", &c, NULL);
	} else {
		check_problem("fuzz_call_request", &prob);
	}
	call_cleanup(&c);
	for (size_t i = 0; i < n; i++)
		free(rq.params[i]);
	free(rq.params); /* borrowed by rq: req_reset leaves it */
	req_reset(&rq);
	return 0;
}
