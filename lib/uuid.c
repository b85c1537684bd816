/* uuid: UUIDv7 ids from the wall clock and OpenSSL's CSPRNG. */
#include "uuid.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "log.h"

/* Random bytes come from a per-thread pool that RAND_bytes refills 4 KiB at a time (one call
 * per id cost more than the rest of making it). A forked child empties the pool of the thread
 * that forked (the only one it has), so it refills its own rather than repeat its parent's ids;
 * a pthread_atfork handler does it, not a getpid() per id (a system call each). */
#define POOL_BYTES 4096
#define RAND_PER_ID 10 /* bytes 6..15; 0..5 are the time */

static _Thread_local unsigned char pool[POOL_BYTES];
static _Thread_local size_t left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
	memset(pool, 0, sizeof(pool));
	left = 0;
}

static void atfork_register(void)
{
	if (pthread_atfork(NULL, NULL, pool_forget) != 0)
		abort(); /* out of memory, as xmalloc treats it */
}

static int take_random(unsigned char *dst, size_t n)
{
	pthread_once(&atfork_once, atfork_register);
	if (left < n) {
		if (RAND_bytes(pool, sizeof(pool)) != 1) {
			left = 0;
			return -1;
		}
		left = sizeof(pool);
	}
	memcpy(dst, pool + sizeof(pool) - left, n);
	/* used bytes are not kept around */
	memset(pool + sizeof(pool) - left, 0, n);
	left -= n;
	return 0;
}

int uuid_v7(char out[UUID_LEN])
{
	unsigned char b[16];
	struct timespec ts;
	uint64_t ms;

	if (take_random(b + 6, RAND_PER_ID) != 0) {
		log_err("uuid RAND_bytes failed");
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (8 * (5 - i)));
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* variant 10 */
	for (int i = 0, o = 0; i < 16; i++) {
		static const char hex[] = "0123456789abcdef";

		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[36] = '\0';
	return 0;
}

bool uuid_valid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return s[36] == '\0';
}
