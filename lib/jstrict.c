/* jstrict: a JSON document from a client, parsed by json-c and held to RFC 8259 where json-c
 * is lenient. Four passes: a byte pass (UTF-8, NUL, control characters, nesting depth) that
 * works on any input; json-c's parse, which judges the grammar; the end of the document; and a
 * walk over the text json-c accepted, which knows the JSON path, for what json-c keeps without
 * a word (duplicate keys, "\u0000", lone surrogates, NaN, numbers it clamps). The walk reads
 * strings and number tokens only as far as these checks need; json-c builds the values. */
#include "jstrict.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "http.h"

#define KEY_SHOWN 64	/* bytes of a key shown in a detail */
#define PATH_SHOWN 200	/* bytes of a JSON path shown in a detail */
#define INT64_DIGITS 19 /* digits of INT64_MAX (9223372036854775807) */

/* Fills p for the document as a whole. Always returns -1. */
static int refuse(struct problem *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct problem *p, const char *fmt, ...)
{
	va_list ap;

	p->status = 400;
	snprintf(p->field, sizeof(p->field), "body");
	snprintf(p->detail, sizeof(p->detail), "body: ");
	va_start(ap, fmt);
	vsnprintf(p->detail + 6, sizeof(p->detail) - 6, fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'; /* RFC 8259 section 2 */
}

/* Printable ASCII other than the quote and the backslash: a byte that needs no look inside a
 * string. */
static bool plain_in_string(unsigned char c)
{
	return (unsigned char)(c - 0x20) < 0x60 && c != '"' && c != '\\';
}

/* Pass 1, on raw bytes of any shape: UTF-8 (RFC 8259 section 8.1), no NUL anywhere (json-c
 * would stop reading there), no unescaped control characters in strings (section 7, which
 * json-c lets through), and the nesting limit, counted on brackets outside strings. */
static int check_bytes(const char *s, size_t len, int max_depth, struct problem *p)
{
	const unsigned char *u = (const unsigned char *)s;
	bool in_str = false;
	bool esc = false;
	int depth = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = u[i];

		if (in_str && !esc) {
			/* The run of plain ASCII inside a string (most of a document's bytes):
			 * nothing to check in it. */
			while (plain_in_string(c) && i + 1 < len)
				c = u[++i];
			if (plain_in_string(c))
				continue; /* the last byte */
		}
		if (c >= 0x80) {
			size_t n = http_utf8_len(s + i, len - i);

			if (n == 0)
				return refuse(
					p,
					"not UTF-8 at byte %zu (JSON text is UTF-8: no overlong "
					"forms, no surrogates, nothing past U+10FFFF)",
					i);
			i += n - 1;
			esc = false;
			continue;
		}
		if (c == '\0')
			return refuse(p, "a NUL byte %sat byte %zu",
				      in_str ? "inside a string " : "", i);
		if (in_str) {
			if (c < 0x20)
				return refuse(p,
					      "an unescaped control character (0x%02x) inside a "
					      "string at byte %zu; escape it (RFC 8259 section 7)",
					      c, i);
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return refuse(
					p, "nesting deeper than %d arrays and objects at byte %zu",
					max_depth, i);
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return 0;
}

/* Runs json-c over s[0..len). A number at the top level ends only where something follows
 * it, so at the end of the input a space is fed to finish it. Returns the document or NULL;
 * *err and *end (bytes consumed) say how it went. */
static struct json_object *json_c_parse(const char *s, size_t len, int depth,
					enum json_tokener_error *err, size_t *end)
{
	struct json_tokener *tok = json_tokener_new_ex(depth);
	struct json_object *doc;

	if (tok == NULL)
		abort(); /* out of memory, as xmalloc treats it */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	doc = json_tokener_parse_ex(tok, s != NULL ? s : "", (int)len);
	*err = json_tokener_get_error(tok);
	*end = json_tokener_get_parse_end(tok);
	if (doc == NULL && *err == json_tokener_continue && *end == len) {
		doc = json_tokener_parse_ex(tok, " ", 1);
		*err = json_tokener_get_error(tok);
		if (*err != json_tokener_success) /* still open, or "tru" + " ": cut short */
			*err = json_tokener_continue;
		*end = len;
	}
	json_tokener_free(tok);
	return doc;
}

/* Pass 2: json-c's verdict on the grammar, and pass 3: nothing after the document. */
static struct json_object *parse_grammar(const char *s, size_t len, int max_depth,
					 struct problem *p)
{
	enum json_tokener_error err;
	size_t end;
	/* json-c counts a scalar under the deepest container as one more level. */
	struct json_object *doc = json_c_parse(s, len, max_depth + 2, &err, &end);

	if (doc != NULL && err == json_tokener_success) {
		while (end < len && is_ws(s[end]))
			end++;
		if (end == len)
			return doc;
		json_object_put(doc);
		refuse(p, "unexpected bytes after the JSON document at byte %zu", end);
		return NULL;
	}
	json_object_put(doc);
	if (err == json_tokener_continue) {
		refuse(p, "malformed JSON: the document ends early, at byte %zu", len);
	} else if (err == json_tokener_success) {
		/* json-c's null is a NULL object, which cannot be told from a failure. */
		size_t i = 0;

		while (i < len && is_ws(s[i]))
			i++;
		if (len - i >= 4 && memcmp(s + i, "null", 4) == 0) {
			refuse(p, "the document is null; a JSON value other than null is required");
		} else {
			refuse(p, "the JSON parser failed (out of memory)");
			p->status = 500;
		}
	} else if (err == json_tokener_error_depth) { /* check_bytes stops this first */
		refuse(p, "nesting deeper than %d arrays and objects near byte %zu", max_depth,
		       end);
	} else {
		/* json-c's strict mode calls anything after a document an unexpected character:
		 * when what comes before it is a whole document, say so. */
		struct json_object *prefix;
		enum json_tokener_error perr;
		size_t pend;

		prefix = end > 0 ? json_c_parse(s, end, max_depth + 2, &perr, &pend) : NULL;
		if (prefix != NULL)
			refuse(p, "unexpected bytes after the JSON document at byte %zu", end);
		else
			refuse(p, "malformed JSON near byte %zu: %s", end,
			       json_tokener_error_desc(err));
		json_object_put(prefix);
	}
	return NULL;
}

/* ---- Pass 4: the walk over accepted text ------------------------------------------------ */

struct key {
	size_t off; /* decoded bytes in scan.keytext */
	size_t len;
	size_t at;	 /* byte offset of its opening quote in the document */
	const char *ptr; /* keytext.data + off, set just before sorting */
};

struct frame {
	bool obj;
	size_t index;	  /* array: the element being read */
	size_t first_key; /* object: its keys are keys[first_key..nkeys) */
	size_t cur_key;	  /* object: the member being read (an index into keys), or SIZE_MAX */
	size_t text_mark; /* object: keytext.len when it opened */
};

struct scan {
	const char *s;
	size_t len;
	size_t i;
	struct problem *p;
	struct frame *frames;
	int nframes;
	int max_frames;
	struct key *keys;
	size_t nkeys;
	size_t capkeys;
	struct buf keytext; /* the decoded keys of every open object */
};

/* Appends at most room bytes of s[0..n) to out[*o], cut at a UTF-8 character boundary, with
 * control characters shown as '?'. */
static void put_text(char *out, size_t cap, size_t *o, const char *s, size_t n, size_t room)
{
	bool cut = false;

	if (n > room) {
		n = room;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		cut = true;
	}
	for (size_t k = 0; k < n && *o + 1 < cap; k++)
		out[(*o)++] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k];
	for (int k = 0; cut && k < 3 && *o + 1 < cap; k++)
		out[(*o)++] = '.';
	out[*o] = '\0';
}

/* The JSON path of the members being read in frames[0..upto), as "[0].headers.X-A"; "the top
 * level" when empty. Long paths are cut. */
static const char *path_of(const struct scan *sc, int upto, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (int f = 0; f < upto && o < PATH_SHOWN; f++) {
		const struct frame *fr = &sc->frames[f];

		if (!fr->obj) {
			char idx[32];

			snprintf(idx, sizeof(idx), "[%zu]", fr->index);
			put_text(out, cap, &o, idx, strlen(idx), PATH_SHOWN - o);
		} else if (fr->cur_key != SIZE_MAX) {
			const struct key *k = &sc->keys[fr->cur_key];

			if (o > 0)
				put_text(out, cap, &o, ".", 1, PATH_SHOWN - o);
			put_text(out, cap, &o, sc->keytext.data + k->off, k->len,
				 o + KEY_SHOWN < PATH_SHOWN ? KEY_SHOWN : PATH_SHOWN - o);
		}
	}
	if (o == 0)
		snprintf(out, cap, "the top level");
	return out;
}

/* The path of the value being read. */
static const char *here(const struct scan *sc, char *out, size_t cap)
{
	return path_of(sc, sc->nframes, out, cap);
}

/* "the top-level object" or "the object at [0].headers", for the object on top. */
static const char *object_at(const struct scan *sc, char *out, size_t cap)
{
	char path[PATH_SHOWN + 8];

	if (sc->nframes <= 1)
		snprintf(out, cap, "the top-level object");
	else
		snprintf(out, cap, "the object at %s",
			 path_of(sc, sc->nframes - 1, path, sizeof(path)));
	return out;
}

/* Where a string is, for a detail: "a key of the object at ..." or the value's path. */
static const char *string_at(const struct scan *sc, bool is_key, char *out, size_t cap)
{
	char obj[PATH_SHOWN + 32];

	if (is_key)
		snprintf(out, cap, "a key of %s", object_at(sc, obj, sizeof(obj)));
	else
		here(sc, out, cap);
	return out;
}

static int malformed(struct scan *sc)
{
	/* json-c accepted the text, so this is a disagreement between it and this walk. */
	return refuse(sc->p, "malformed JSON near byte %zu", sc->i);
}

static void skip_ws(struct scan *sc)
{
	while (sc->i < sc->len && is_ws(sc->s[sc->i]))
		sc->i++;
}

static int hex4(const char *s, size_t len, size_t i, unsigned int *out)
{
	unsigned int v = 0;

	if (len - i < 4)
		return -1;
	for (size_t k = i; k < i + 4; k++) {
		char c = s[k];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned int)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned int)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned int)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static void put_utf8(struct buf *b, unsigned int cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(b, u, n);
}

/* Reads the string at sc->i (its opening quote) past its closing quote. Escapes are checked:
 * "\u0000" and unpaired surrogates are refused (json-c keeps a NUL, which cuts keys short, and
 * turns a lone surrogate into U+FFFD). With out, the decoded string is appended to it. */
static int scan_string(struct scan *sc, struct buf *out, bool is_key)
{
	const char *s = sc->s;
	char where[PATH_SHOWN + 64];

	sc->i++;
	while (sc->i < sc->len) {
		size_t at = sc->i;
		char c = s[sc->i];
		unsigned int cp, lo;

		if (c == '"') {
			sc->i++;
			return 0;
		}
		if (c != '\\') {
			size_t j = sc->i + 1; /* the run up to the next quote or escape */

			while (j < sc->len && s[j] != '"' && s[j] != '\\')
				j++;
			if (out != NULL)
				buf_append(out, &s[sc->i], j - sc->i);
			sc->i = j;
			continue;
		}
		if (sc->len - sc->i < 2)
			break;
		c = s[sc->i + 1];
		if (c != 'u') {
			static const char from[] = "\"\\/bfnrt";
			static const char to[] = "\"\\/\b\f\n\r\t";
			const char *e = memchr(from, c, sizeof(from) - 1);

			if (e == NULL)
				break;
			if (out != NULL)
				buf_append(out, &to[e - from], 1);
			sc->i += 2;
			continue;
		}
		if (hex4(s, sc->len, sc->i + 2, &cp) != 0)
			break;
		sc->i += 6;
		if (cp == 0)
			return refuse(sc->p, "\\u0000 (NUL) in %s (byte %zu)",
				      string_at(sc, is_key, where, sizeof(where)), at);
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return refuse(sc->p,
				      "unpaired surrogate \\u%04x in %s (byte %zu): a low half "
				      "without a high half before it",
				      cp, string_at(sc, is_key, where, sizeof(where)), at);
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (sc->len - sc->i < 6 || s[sc->i] != '\\' || s[sc->i + 1] != 'u' ||
			    hex4(s, sc->len, sc->i + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
				return refuse(sc->p,
					      "unpaired surrogate \\u%04x in %s (byte %zu): a high "
					      "half must be followed by a \\udc00-\\udfff escape",
					      cp, string_at(sc, is_key, where, sizeof(where)), at);
			sc->i += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		if (out != NULL)
			put_utf8(out, cp);
	}
	return malformed(sc);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A scalar other than a string, s[start..sc->i): true, false, null (json-c checked those), or
 * a number held to RFC 8259 section 6, which json-c is looser about. */
static int check_scalar(struct scan *sc, size_t start)
{
	const char *t = sc->s + start;
	size_t n = sc->i - start;
	size_t j = 0;
	size_t d0, d1; /* the integer part's digits */
	bool whole = true;
	bool neg = false;
	char path[PATH_SHOWN + 8];

	if ((n == 3 && memcmp(t, "NaN", 3) == 0) || (n == 8 && memcmp(t, "Infinity", 8) == 0) ||
	    (n == 9 && memcmp(t, "-Infinity", 9) == 0))
		return refuse(sc->p,
			      "NaN and Infinity are not JSON numbers (RFC 8259 section 6), at %s "
			      "(byte %zu)",
			      here(sc, path, sizeof(path)), start);
	if ((n == 4 && (memcmp(t, "true", 4) == 0 || memcmp(t, "null", 4) == 0)) ||
	    (n == 5 && memcmp(t, "false", 5) == 0))
		return 0;
	if (j < n && t[j] == '-') {
		neg = true;
		j++;
	}
	d0 = j;
	if (j < n && t[j] == '0') {
		j++;
	} else if (j < n && is_digit(t[j])) {
		while (j < n && is_digit(t[j]))
			j++;
	} else {
		goto bad;
	}
	d1 = j;
	if (j < n && t[j] == '.') {
		whole = false;
		if (++j >= n || !is_digit(t[j]))
			goto bad;
		while (j < n && is_digit(t[j]))
			j++;
	}
	if (j < n && (t[j] == 'e' || t[j] == 'E')) {
		whole = false;
		if (++j < n && (t[j] == '+' || t[j] == '-'))
			j++;
		if (j >= n || !is_digit(t[j]))
			goto bad;
		while (j < n && is_digit(t[j]))
			j++;
	}
	if (j != n)
		goto bad;
	if (whole) {
		/* json-c clamps integers beyond int64 (and keeps those up to UINT64_MAX as
		 * unsigned), so the range is judged on the digits. */
		const char *lim = neg ? "9223372036854775808" : "9223372036854775807";

		if (d1 - d0 > INT64_DIGITS ||
		    (d1 - d0 == INT64_DIGITS && memcmp(t + d0, lim, INT64_DIGITS) > 0))
			return refuse(sc->p,
				      "the integer at %s (byte %zu) is outside the 64-bit range; "
				      "send it as a string",
				      here(sc, path, sizeof(path)), start);
	} else {
		char *copy = xstrndup(t, n);
		double v = strtod(copy, NULL);

		free(copy);
		if (!isfinite(v))
			return refuse(sc->p,
				      "the number at %s (byte %zu) is too large for a double; send "
				      "it as a string",
				      here(sc, path, sizeof(path)), start);
	}
	return 0;
bad:
	return refuse(sc->p, "malformed number at %s (byte %zu)", here(sc, path, sizeof(path)),
		      start);
}

static int cmp_key(const void *a, const void *b)
{
	const struct key *x = a;
	const struct key *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->ptr, y->ptr, n);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* Closes the object on top: refuses a key it holds twice (json-c keeps the last value without
 * a word, so two readers of one document could disagree), naming the first repeat. */
static int close_object(struct scan *sc)
{
	struct frame *fr = &sc->frames[sc->nframes - 1];
	struct key *k = sc->keys + fr->first_key;
	size_t n = sc->nkeys - fr->first_key;
	const struct key *dup = NULL;

	for (size_t i = 0; i < n; i++)
		k[i].ptr = sc->keytext.data + k[i].off;
	if (n > 1)
		qsort(k, n, sizeof(*k), cmp_key);
	for (size_t i = 1; i < n; i++)
		if (k[i].len == k[i - 1].len && memcmp(k[i].ptr, k[i - 1].ptr, k[i].len) == 0 &&
		    (dup == NULL || k[i].at < dup->at))
			dup = &k[i];
	if (dup != NULL) {
		char obj[PATH_SHOWN + 32];
		char name[KEY_SHOWN + 8];
		size_t o = 0;

		put_text(name, sizeof(name), &o, dup->ptr, dup->len, KEY_SHOWN);
		return refuse(sc->p, "duplicate key \"%s\" in %s (byte %zu)", name,
			      object_at(sc, obj, sizeof(obj)), dup->at);
	}
	sc->nkeys = fr->first_key;
	sc->keytext.len = fr->text_mark;
	sc->nframes--;
	return 0;
}

static int open_frame(struct scan *sc, bool obj)
{
	struct frame *fr;

	if (sc->nframes == sc->max_frames) /* check_bytes stops this first */
		return refuse(sc->p, "nesting too deep at byte %zu", sc->i);
	fr = &sc->frames[sc->nframes++];
	fr->obj = obj;
	fr->index = 0;
	fr->first_key = sc->nkeys;
	fr->cur_key = SIZE_MAX;
	fr->text_mark = sc->keytext.len;
	sc->i++;
	return 0;
}

/* Reads a key and its ':' in the object on top. */
static int read_key(struct scan *sc)
{
	struct frame *fr = &sc->frames[sc->nframes - 1];
	struct key *k;

	skip_ws(sc);
	if (sc->i < sc->len && sc->s[sc->i] == '\'') /* json-c's strict mode lets these by */
		return refuse(sc->p,
			      "a key in single quotes at byte %zu; JSON strings take double "
			      "quotes",
			      sc->i);
	if (sc->i >= sc->len || sc->s[sc->i] != '"')
		return malformed(sc);
	if (sc->nkeys == sc->capkeys) {
		sc->capkeys = sc->capkeys != 0 ? 2 * sc->capkeys : 64;
		sc->keys = xrealloc(sc->keys, sc->capkeys * sizeof(*sc->keys));
	}
	k = &sc->keys[sc->nkeys];
	k->off = sc->keytext.len;
	k->at = sc->i;
	k->ptr = NULL;
	if (scan_string(sc, &sc->keytext, true) != 0)
		return -1;
	k->len = sc->keytext.len - k->off;
	fr->cur_key = sc->nkeys++;
	skip_ws(sc);
	if (sc->i >= sc->len || sc->s[sc->i] != ':')
		return malformed(sc);
	sc->i++;
	return 0;
}

/* Walks the whole document: an explicit stack, so depth costs no C stack. */
static int walk(struct scan *sc)
{
	for (;;) {
		/* A value. */
		skip_ws(sc);
		if (sc->i >= sc->len)
			return malformed(sc);
		if (sc->s[sc->i] == '{' || sc->s[sc->i] == '[') {
			bool obj = sc->s[sc->i] == '{';

			if (open_frame(sc, obj) != 0)
				return -1;
			skip_ws(sc);
			if (sc->i < sc->len && sc->s[sc->i] == (obj ? '}' : ']')) {
				sc->i++;
				sc->nframes--; /* empty: no keys to check */
			} else {
				if (obj && read_key(sc) != 0)
					return -1;
				continue;
			}
		} else if (sc->s[sc->i] == '"') {
			if (scan_string(sc, NULL, false) != 0)
				return -1;
		} else {
			size_t start = sc->i;

			while (sc->i < sc->len && !is_ws(sc->s[sc->i]) &&
			       strchr(",]}", sc->s[sc->i]) == NULL)
				sc->i++;
			if (check_scalar(sc, start) != 0)
				return -1;
		}
		/* After a value: close what ends here, then go on to the next value. */
		for (;;) {
			struct frame *fr;

			skip_ws(sc);
			if (sc->nframes == 0)
				return sc->i == sc->len ? 0 : malformed(sc);
			if (sc->i >= sc->len)
				return malformed(sc);
			fr = &sc->frames[sc->nframes - 1];
			if (sc->s[sc->i] == ',') {
				sc->i++;
				if (fr->obj) {
					if (read_key(sc) != 0)
						return -1;
				} else {
					fr->index++;
				}
				break;
			}
			if (sc->s[sc->i] != (fr->obj ? '}' : ']'))
				return malformed(sc);
			sc->i++;
			if (fr->obj && close_object(sc) != 0)
				return -1;
			if (!fr->obj)
				sc->nframes--;
		}
	}
}

struct json_object *jstrict_parse(const char *s, size_t len, int max_depth, struct problem *p)
{
	struct json_object *doc = NULL;
	struct scan sc;
	size_t i = 0;

	if (max_depth < 1)
		max_depth = 1;
	if (max_depth > JSTRICT_DEPTH_MAX)
		max_depth = JSTRICT_DEPTH_MAX;
	if (len > INT_MAX - 2) {
		refuse(p, "%zu bytes is more than the JSON parser takes", len);
		return NULL;
	}
	if (check_bytes(s, len, max_depth, p) != 0)
		return NULL;
	while (i < len && is_ws(s[i]))
		i++;
	if (i == len) {
		refuse(p, "no JSON document (the body is empty or only whitespace)");
		return NULL;
	}
	doc = parse_grammar(s, len, max_depth, p);
	if (doc == NULL)
		return NULL;
	memset(&sc, 0, sizeof(sc));
	sc.s = s;
	sc.len = len;
	sc.p = p;
	sc.max_frames = max_depth;
	sc.frames = xcalloc((size_t)max_depth, sizeof(*sc.frames));
	buf_init(&sc.keytext);
	buf_append(&sc.keytext, "", 0); /* allocated: keys point into it, even empty ones */
	if (walk(&sc) != 0) {
		json_object_put(doc);
		doc = NULL;
	}
	buf_cleanup(&sc.keytext);
	free(sc.keys);
	free(sc.frames);
	return doc;
}
