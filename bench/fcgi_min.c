/* fcgi_min: the smallest libfcgi responder, the ceiling that asyncgate's accept path is measured
 * against (make bench). It reads the request body and answers 202 with a small JSON id, and
 * nothing else: no parsing, no validation, no authentication.
 *
 * Built twice: without FCGI_MIN_INSERT it touches no database (ceiling_fcgi); with it, each
 * request runs one prepared INSERT of the body as a queued call into the calls table of the
 * database libpq's PG* variables name (ceiling_fcgi_insert), committed (synchronous_commit as
 * the server says) before the 202 goes out, as asyncgate's accept path does. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>
#ifdef FCGI_MIN_INSERT
#include <libpq-fe.h>
#endif

#define MAX_BODY (16 << 20)

/* xorshift64*: ids need to be unique, not unpredictable. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* A UUIDv7 text (48-bit Unix milliseconds, version 7, variant 10, random rest) into out[37]. */
static void uuid7(char out[37])
{
	struct timespec ts;
	unsigned char b[16];
	uint64_t ms, r1 = rng_next(), r2 = rng_next();
	int o = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	for (int i = 6; i < 16; i++)
		b[i] = (unsigned char)((i < 11 ? r1 : r2) >> (8 * (i % 8)));
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0f));
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		o += snprintf(out + o, 3, "%02x", b[i]);
	}
	out[o] = '\0';
}

/* Reads the whole body (CONTENT_LENGTH bytes) into *buf (grown as needed). -1 when too big. */
static long read_body(FCGX_Request *rq, char **buf, size_t *cap)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", rq->envp);
	long len = cl != NULL ? strtol(cl, NULL, 10) : 0;
	long got = 0;

	if (len < 0 || len > MAX_BODY)
		return -1;
	if ((size_t)len + 1 > *cap) {
		char *nb = realloc(*buf, (size_t)len + 1);

		if (nb == NULL)
			return -1;
		*buf = nb;
		*cap = (size_t)len + 1;
	}
	while (got < len) {
		int n = FCGX_GetStr(*buf + got, (int)(len - got), rq->in);

		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

#ifdef FCGI_MIN_INSERT
/* The same columns asyncgate's accept path fills for a raw-URL call with a JSON body. */
static const char insert_sql[] =
	"INSERT INTO calls (id, state, client, not_before, target, method, headers, body,"
	" body_type, max_attempts, retry_initial_ms, retry_max_ms, timeout_ms) "
	"VALUES ($1::uuid, 'queued', '', now(), $2, 'POST',"
	" '{\"Content-Type\": \"application/json\"}', $3::bytea, 'json', 10, 1000, 3600000, 30000)";

static PGconn *db_open(void)
{
	PGconn *c = PQconnectdb("fallback_application_name=fcgi_min");
	PGresult *res;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "fcgi_min: connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	res = PQprepare(c, "ins", insert_sql, 3, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "fcgi_min: prepare: %s", PQerrorMessage(c));
		PQclear(res);
		PQfinish(c);
		return NULL;
	}
	PQclear(res);
	return c;
}

/* One INSERT; 0 when it committed. */
static int db_insert(PGconn **c, const char *id, const char *body, long len)
{
	const char *vals[3] = {id, "http://127.0.0.1:9/bench", body};
	int lens[3] = {0, 0, (int)len};
	int fmts[3] = {0, 0, 1};
	PGresult *res;
	int rc;

	if (*c == NULL || PQstatus(*c) != CONNECTION_OK) {
		PQfinish(*c);
		*c = db_open();
		if (*c == NULL)
			return -1;
	}
	res = PQexecPrepared(*c, "ins", 3, vals, lens, fmts, 0);
	rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc != 0)
		fprintf(stderr, "fcgi_min: insert: %s", PQerrorMessage(*c));
	PQclear(res);
	return rc;
}
#endif

int main(void)
{
	FCGX_Request rq;
	char *body = NULL;
	size_t cap = 0;
	char id[37];
#ifdef FCGI_MIN_INSERT
	PGconn *db = db_open();
#endif

	rng_state = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ULL;
	if (FCGX_Init() != 0 || FCGX_InitRequest(&rq, 0, 0) != 0) {
		fprintf(stderr, "fcgi_min: FCGX_Init failed\n");
		return 1;
	}
	while (FCGX_Accept_r(&rq) >= 0) {
		long len = read_body(&rq, &body, &cap);
		int ok = len >= 0;

		uuid7(id);
#ifdef FCGI_MIN_INSERT
		if (ok && db_insert(&db, id, body, len) != 0)
			ok = 0;
#endif
		if (ok)
			FCGX_FPrintF(
				rq.out,
				"Status: 202 Accepted\r\nContent-Type: application/json\r\n\r\n"
				"{\"id\": \"%s\", \"state\": \"queued\"}\n",
				id);
		else
			FCGX_FPrintF(rq.out, "Status: 503 Service Unavailable\r\n"
					     "Content-Type: text/plain\r\n\r\nunavailable\n");
		FCGX_Finish_r(&rq);
	}
	free(body);
#ifdef FCGI_MIN_INSERT
	PQfinish(db);
#endif
	return 0;
}
