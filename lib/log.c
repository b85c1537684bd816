/* log: one line per event on stderr, with a program name, pid and level. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_name = "asyncgate";
static enum log_level log_level = LOGL_INFO;

void log_init(const char *name, enum log_level level)
{
	const char *slash = strrchr(name, '/');

	log_name = slash != NULL ? slash + 1 : name;
	log_level = level;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

bool log_enabled(enum log_level level)
{
	return level <= log_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const tags[] = {"error", "warn", "info", "debug"};
	char line[2048];
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	n = snprintf(line, sizeof(line), "%s[%ld] %s: ", log_name, (long)getpid(), tags[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line, so lines from several handler processes do not interleave. */
	n = (int)strlen(line);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	fwrite(line, 1, (size_t)n, stderr);
	fflush(stderr);
}

char *log_esc(char *out, size_t outsz, const char *in, size_t inlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	size_t i;

	if (outsz == 0)
		return out;
	for (i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		size_t need = (c < 0x20 || c >= 0x7f || c == '\\') ? 4 : 1;

		if (o + need + 3 >= outsz)
			break;
		if (need == 4) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (i < inlen && o + 3 < outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

const char *log_flat(char *out, size_t outsz, const char *msg)
{
	size_t n = strlen(msg);

	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	return log_esc(out, outsz, msg, n);
}
