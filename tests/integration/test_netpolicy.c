/* test_netpolicy: the outbound address policy end to end. Listeners on forbidden addresses
 * (127.0.0.2 and ::1; the test configuration allows only 127.0.0.1/32) count the connections
 * they get, and must get none: forbidden spellings in URLs are refused at accept (400
 * problem+json naming the field, no row), and functions, host names (drain_resolve), callbacks,
 * redirects and proxies that lead to a forbidden address are refused on connect, with the
 * refusal recorded in the attempt. A host-name rule shows that the listeners do count. Also: no
 * decompression of answers. */
#define _GNU_SOURCE
#include "itest.h"
#include "itest.c.inc"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

static const char *url;	    /* lighttpd with spawned handlers */
static const char *target;  /* the HTTP target, http://127.0.0.1:T */
static const char *tlog;    /* its request log */
static const char *drainer; /* build/asyncgate-drainer */
static const char *conf;    /* the test configuration (allow_targets = 127.0.0.1/32) */
static char tmpdir[512];
static int tport;    /* T */
static int fport;    /* P: a port with listeners on forbidden addresses only */
static bool have_v6; /* ::1 listeners could be bound */

#define JSON "application/json"

/* A passive listener: connections complete in the kernel's backlog and are counted here. */
struct listener {
	int fd;
	char name[64];
	long seen;
};
static struct listener lst[4];
static int nlst;

/* Listens on addr:port (port 0: any); returns the fd (non-blocking) or -1, and the port. */
static int listen_on(const char *addr, int port, int *port_out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &s4->sin_addr);
		len = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
		close(fd);
		return -1;
	}
	if (port_out != NULL) {
		len = sizeof(ss);
		getsockname(fd, (struct sockaddr *)&ss, &len);
		*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	}
	return fd;
}

static void add_listener(int fd, const char *addr, int port)
{
	lst[nlst].fd = fd;
	snprintf(lst[nlst].name, sizeof(lst[nlst].name),
		 strchr(addr, ':') != NULL ? "[%s]:%d" : "%s:%d", addr, port);
	lst[nlst].seen = 0;
	nlst++;
}

/* Accepts (and closes) whatever reached the listeners; returns the total ever seen. */
static long connections(void)
{
	long total = 0;

	for (int i = 0; i < nlst; i++) {
		int c;

		while ((c = accept(lst[i].fd, NULL, NULL)) >= 0) {
			close(c);
			lst[i].seen++;
			printf("# connection reached %s\n", lst[i].name);
		}
		total += lst[i].seen;
	}
	return total;
}

/* The forbidden listeners saw nothing so far (reported, per listener, if they did). */
static void no_connections(const char *when)
{
	long n = connections();

	CHECK(n == 0, "%s: %ld connection(s) reached a forbidden listener", when, n);
	for (int i = 0; i < nlst; i++)
		lst[i].seen = 0;
}

/* Writes the test configuration plus extra lines to a file of its own; returns its path. */
static const char *conf_with(const char *extra)
{
	static char path[600];
	FILE *in = fopen(conf, "r"), *out;
	char buf[4096];
	size_t n;

	snprintf(path, sizeof(path), "%s/netpolicy.conf", tmpdir);
	out = fopen(path, "w");
	if (!CHECK(in != NULL && out != NULL, "cannot copy %s to %s", conf, path)) {
		if (in != NULL)
			fclose(in);
		if (out != NULL)
			fclose(out);
		return path;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fprintf(out, "\n# test_netpolicy\n%s\n", extra);
	fclose(in);
	fclose(out);
	return path;
}

/* drain_resolve of every drainer run here: names that resolve to forbidden addresses. */
static const char *resolve_line(void)
{
	static char line[512];

	snprintf(line, sizeof(line),
		 "drain_resolve = forbidden.test:%d:127.0.0.2 v6.test:%d:[::1] "
		 "dual.test:%d:127.0.0.2,127.0.0.1 named.test:%d:127.0.0.2",
		 fport, fport, tport, fport);
	return line;
}

/* One `asyncgate-drainer --once --conf FILE` with extra configuration lines and environment
 * ("NAME=value" entries, NULL-terminated, or NULL); returns its exit status. Its log is
 * appended to netpolicy-drainer.log in the temp directory. */
static int drain_with(const char *extra, const char *const *envs)
{
	char lines[2048], logpath[600];
	const char *path;
	pid_t pid;
	int status;

	snprintf(lines, sizeof(lines), "%s\n%s", resolve_line(), extra != NULL ? extra : "");
	path = conf_with(lines);
	snprintf(logpath, sizeof(logpath), "%s/netpolicy-drainer.log", tmpdir);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (freopen(logpath, "a", stderr) == NULL || freopen(logpath, "a", stdout) == NULL)
			_exit(126);
		for (size_t i = 0; envs != NULL && envs[i] != NULL; i++)
			putenv((char *)envs[i]);
		execl(drainer, drainer, "--once", "--conf", path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1200; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		it_sleep_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	CHECK(false, "drainer did not finish in 60 s");
	return -1;
}

/* Whether the drainer log holds needle. */
static bool drainer_log_has(const char *needle)
{
	char path[600], *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/netpolicy-drainer.log", tmpdir);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	while (!found && getline(&line, &cap, f) > 0)
		found = strstr(line, needle) != NULL;
	free(line);
	fclose(f);
	return found;
}

static void add_function(const char *name, const char *base_url, bool follow)
{
	it_sql_exec("INSERT INTO functions (name, base_url, follow_redirects) VALUES ($1, $2, $3)",
		    3, (const char *const[]){name, base_url, follow ? "true" : "false"});
}

/* The error of the call's last attempt (new string) or NULL. */
static char *attempt_error(const char *id)
{
	return it_sql("SELECT error FROM attempts WHERE call_id = $1::uuid "
		      "ORDER BY attempt DESC LIMIT 1",
		      1, (const char *const[]){id});
}

/* The call ended dead, its last attempt refused with an error that names why and addr. */
static void refused_on_connect(const char *id, const char *why, const char *addr, const char *what)
{
	char *st = it_field(id, "state");
	char *err = attempt_error(id);

	CHECK(st != NULL && strcmp(st, "dead") == 0, "%s: state %s, want dead", what,
	      st ? st : "(none)");
	CHECK(err != NULL && strncmp(err, "refused:", 8) == 0 && strstr(err, why) != NULL &&
		      (addr == NULL || strstr(err, addr) != NULL),
	      "%s: attempt error '%s', want a refusal naming %s (%s)", what, err ? err : "(none)",
	      why, addr ? addr : "-");
	free(st);
	free(err);
}

/* Requests under prefix that reached the HTTP target. */
static long target_hits(const char *needle)
{
	FILE *f = fopen(tlog, "r");
	char *line = NULL;
	size_t cap = 0;
	long n = 0;

	if (f == NULL)
		return 0;
	while (getline(&line, &cap, f) > 0)
		if (strstr(line, needle) != NULL)
			n++;
	free(line);
	fclose(f);
	return n;
}

/* Percent-encodes everything but unreserved characters. Returns a new string. */
static char *pct_encode(const char *s)
{
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	for (; *s != '\0'; s++) {
		if (isalnum((unsigned char)*s) || strchr("-._~", *s) != NULL)
			*o++ = *s;
		else
			o += sprintf(o, "%%%02X", (unsigned char)*s);
	}
	*o = '\0';
	return out;
}

/* Copies a template with "%d" replaced by the forbidden port and "%%" by '%' (a printf
 * format in spirit, without a non-literal format string). */
static void fill(char *out, size_t n, const char *tmpl)
{
	size_t o = 0;

	for (const char *t = tmpl; *t != '\0' && o + 8 < n; t++) {
		if (t[0] == '%' && t[1] == 'd') {
			o += (size_t)snprintf(out + o, n - o, "%d", fport);
			t++;
		} else {
			if (t[0] == '%' && t[1] == '%')
				t++;
			out[o++] = *t;
		}
	}
	out[o] = '\0';
}

/* ---- the tests ---- */

/* The listeners count: a connection of our own shows up, once. */
static void t_listeners_count(void)
{
	for (int i = 0; i < nlst; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int c;

		getsockname(lst[i].fd, (struct sockaddr *)&ss, &len);
		c = socket(ss.ss_family, SOCK_STREAM, 0);
		CHECK(c >= 0 && connect(c, (struct sockaddr *)&ss, len) == 0, "connect to %s: %s",
		      lst[i].name, strerror(errno));
		close(c);
	}
	for (int i = 0; i < 100 && connections() < nlst; i++)
		it_sleep_ms(20);
	for (int i = 0; i < nlst; i++) {
		CHECK(lst[i].seen == 1, "%s counted %ld of 1 connection", lst[i].name, lst[i].seen);
		lst[i].seen = 0;
	}
}

/* Forbidden addresses in every spelling a URL parser takes; %d is the forbidden port. */
static const struct {
	const char *fmt;
	const char *why;
} spellings[] = {
	{"http://127.0.0.2:%d/x", "loopback"},
	{"HTTP://127.0.0.2:%d/x", "loopback"},
	{"http://2130706434:%d/x", "loopback"},
	{"http://0177.0.0.2:%d/x", "loopback"},
	{"http://017700000002:%d/x", "loopback"},
	{"http://0x7f.0.0.2:%d/x", "loopback"},
	{"http://0x7f000002:%d/x", "loopback"},
	{"http://0X7F.0x0.0x0.0x2:%d/x", "loopback"},
	{"http://127.2:%d/x", "loopback"},
	{"http://127.0.2:%d/x", "loopback"},
	{"http://127.000.000.002:%d/x", "loopback"},
	{"http://127.0.0.2.:%d/x", "loopback"},
	{"http://0x7f.0.0.2.:%d/x", "loopback"},
	{"http://2130706434.:%d/x", "loopback"},
	{"http://127.2.:%d/x", "loopback"},
	{"http://%%31%%32%%37.0.0.2:%d/x", "loopback"},
	{"http://[::1]:%d/x", "loopback"},
	{"http://[0:0:0:0:0:0:0:1]:%d/x", "loopback"},
	{"http://[::ffff:127.0.0.2]:%d/x", "loopback"},
	{"http://[::ffff:7f00:2]:%d/x", "loopback"},
	{"http://[::ffff:127.0.0.2%%25lo]:%d/x", "loopback"},
	{"http://[::127.0.0.2]:%d/x", "loopback"},
	{"http://[64:ff9b::7f00:2]:%d/x", "loopback"},
	{"http://[2002:7f00:2::]:%d/x", "loopback"},
	{"http://0.0.0.0:%d/x", "unspecified"},
	{"http://0:%d/x", "unspecified"},
	{"http://[::]:%d/x", "unspecified"},
	{"http://169.254.169.254:%d/latest/meta-data/", "link-local"},
	{"http://2852039166:%d/x", "link-local"},
	{"http://0251.0376.0251.0376:%d/x", "link-local"},
	{"http://[fe80::1%%25eth0]:%d/x", "link-local"},
	{"http://100.64.0.1:%d/x", "shared (CGNAT)"},
	{"http://10.0.0.1:%d/x", "private"},
	{"http://[::ffff:10.0.0.1]:%d/x", "private"},
	{"http://[64:ff9b::a00:1]:%d/x", "private"},
	{"http://[fd00::1]:%d/x", "unique local"},
	{"http://224.0.0.1:%d/x", "multicast"},
	{"http://[ff02::1]:%d/x", "multicast"},
	{"http://255.255.255.255:%d/x", "broadcast"},
	{"http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]:%d/x", "Teredo"},
	{"http://4294967296:%d/x", "is a malformed address"},
};

/* One refused request: 400 problem+json naming field, with why in the detail. */
static void refused_at_accept(const char *method, const char *path, const char *body,
			      const char *field, const char *why, const char *what)
{
	struct hresp r;
	char *ct;
	struct json_object *o;
	struct json_object *f = NULL, *d = NULL;

	it_http(method, url, path, JSON, body, body != NULL ? strlen(body) : 0, NULL, &r);
	ct = it_header(&r, "Content-Type");
	o = it_json(&r);
	if (o != NULL) {
		json_object_object_get_ex(o, "field", &f);
		json_object_object_get_ex(o, "detail", &d);
	}
	CHECK(r.status == 400 && ct != NULL && strncmp(ct, "application/problem+json", 24) == 0 &&
		      f != NULL && strcmp(json_object_get_string(f), field) == 0 && d != NULL &&
		      strstr(json_object_get_string(d), why) != NULL,
	      "%s: %ld %s %s, want 400 problem+json naming %s and %s", what, r.status,
	      ct ? ct : "-", r.body ? r.body : "", field, why);
	json_object_put(o);
	free(ct);
	it_hresp_free(&r);
}

/* At accept: each spelling as a JSON target, as a callback, and percent-encoded in transparent
 * mode; all 400 naming the field, no row written, no connection anywhere. */
static void t_accept_spellings(void)
{
	size_t n = sizeof(spellings) / sizeof(spellings[0]);
	long before = it_sql_long("SELECT count(*) FROM calls", 0, NULL);
	char u[256], body[512], path[1024], like[64];

	CHECK(n >= 20, "only %zu spellings", n);
	for (size_t i = 0; i < n; i++) {
		char *enc;

		fill(u, sizeof(u), spellings[i].fmt);
		snprintf(body, sizeof(body), "{\"target\":\"%s\"}", u);
		refused_at_accept("POST", "/v1/calls", body, "target", spellings[i].why, u);
		snprintf(body, sizeof(body), "{\"target\":\"%s/np/x\",\"callback\":\"%s\"}", target,
			 u);
		refused_at_accept("POST", "/v1/calls", body, "callback", spellings[i].why, u);
		enc = pct_encode(u);
		snprintf(path, sizeof(path), "/v1/async/%s", enc);
		refused_at_accept("POST", path, "{}", "target", spellings[i].why, path);
		free(enc);
	}
	snprintf(like, sizeof(like), "%%:%d/%%", fport);
	CHECK(it_sql_long("SELECT count(*) FROM calls", 0, NULL) == before,
	      "rows were written for refused instructions");
	CHECK(it_sql_long("SELECT count(*) FROM calls WHERE target LIKE $1 OR callback_url LIKE $1",
			  1, (const char *const[]){like}) == 0,
	      "a row names the forbidden port");
	no_connections("accept-time refusals");
}

/* On connect: registered functions (not checked at accept) whose base_url is a forbidden
 * address in several spellings, IPv6 included. */
static void t_function_forbidden(void)
{
	static const struct {
		const char *fmt;
		const char *addr;
	} bases[] = {
		{"http://127.0.0.2:%d", "127.0.0.2"},
		{"http://2130706434:%d", "127.0.0.2"},
		{"http://0x7f.0.0.2:%d", "127.0.0.2"},
		{"http://0177.0.0.2:%d", "127.0.0.2"},
		{"http://127.2:%d", "127.0.0.2"},
		{"http://[::ffff:127.0.0.2]:%d", "127.0.0.2"},
		{"http://[::1]:%d", "::1"},
		{"http://localhost:%d", "::1"}, /* 127.0.0.1 is allowed but nothing listens */
	};
	const char *tg = it_tag('n');
	char ids[8][64], fn[64], base[128], body[256];
	size_t n = sizeof(bases) / sizeof(bases[0]);

	if (!have_v6)
		n -= 2; /* [::1] and localhost's ::1 */
	for (size_t i = 0; i < n; i++) {
		snprintf(fn, sizeof(fn), "%s-%zu", tg, i);
		fill(base, sizeof(base), bases[i].fmt);
		add_function(fn, base, false);
		snprintf(body, sizeof(body),
			 "{\"function\":\"%s\",\"path\":\"/x\",\"retry\":{\"max_attempts\":1}}",
			 fn);
		snprintf(ids[i], sizeof(ids[i]), "%s", it_enqueue(url, body, NULL));
	}
	CHECK(drain_with(NULL, NULL) == 0, "drainer --once failed");
	for (size_t i = 0; i < n && strcmp(bases[i].addr, "::1") != 0; i++) {
		fill(base, sizeof(base), bases[i].fmt);
		refused_on_connect(ids[i], "loopback", bases[i].addr, base);
	}
	if (!have_v6) {
		no_connections("functions on forbidden addresses");
		return;
	}
	refused_on_connect(ids[n - 2], "loopback", "::1", "http://[::1]");
	/* localhost (libcurl resolves it to 127.0.0.1 and ::1 itself): 127.0.0.1 was tried (and
	 * refused the connection: nothing listens there),
	 * ::1 was refused by the policy; the call failed on the allowed address's error. */
	{
		char *st = it_field(ids[n - 1], "state");
		char *err = attempt_error(ids[n - 1]);

		CHECK(st != NULL && strcmp(st, "dead") == 0, "localhost: state %s", st);
		CHECK(err != NULL && strstr(err, "connect") != NULL &&
			      strstr(err, "refused: a loopback address, ::1") != NULL,
		      "localhost: attempt error '%s'", err ? err : "(none)");
		free(st);
		free(err);
	}
	CHECK(drainer_log_has("refused a connection to ::1 (loopback)"),
	      "the drainer did not log the refused ::1");
	no_connections("functions on forbidden addresses");
}

/* On connect: host names that resolve to forbidden addresses, as a target and as a callback.
 * A name with a forbidden and an allowed address reaches the allowed one only. */
static void t_hostname_forbidden(void)
{
	const char *tg = it_tag('n');
	char body[512], id1[64], id2[64], id3[64], id4[64], path[128];
	char *cb;

	snprintf(body, sizeof(body),
		 "{\"target\":\"http://forbidden.test:%d/x\",\"retry\":{\"max_attempts\":1}}",
		 fport);
	snprintf(id1, sizeof(id1), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"target\":\"http://v6.test:%d/x\",\"retry\":{\"max_attempts\":1}}", fport);
	snprintf(id2, sizeof(id2), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/np/%s/ok\",\"callback\":\"http://forbidden.test:%d/cb\"}",
		 target, tg, fport);
	snprintf(id3, sizeof(id3), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body), "{\"target\":\"http://dual.test:%d/np/%s/dual\"}", tport, tg);
	snprintf(id4, sizeof(id4), "%s", it_enqueue(url, body, NULL));
	CHECK(drain_with(NULL, NULL) == 0, "drainer --once failed");
	refused_on_connect(id1, "loopback", "127.0.0.2", "forbidden.test");
	if (have_v6)
		refused_on_connect(id2, "loopback", "::1", "v6.test");
	it_field_is(id3, "state", "succeeded");
	cb = it_field(id3, "callback_id::text");
	if (CHECK(cb != NULL, "no callback for %s", id3))
		refused_on_connect(cb, "loopback", "127.0.0.2", "callback to forbidden.test");
	free(cb);
	it_field_is(id4, "state", "succeeded");
	snprintf(path, sizeof(path), "/np/%s/dual", tg);
	CHECK(target_hits(path) == 1, "dual.test reached the target %ld times", target_hits(path));
	CHECK(drainer_log_has("refused a connection to 127.0.0.2 (loopback)"),
	      "the drainer did not log the refused 127.0.0.2");
	no_connections("host names resolving to forbidden addresses");
}

/* Redirects: not followed without follow_redirects (nor for raw targets); followed, every hop
 * is judged again, and only http/https. */
static void t_redirects(void)
{
	static const struct {
		const char *fmt; /* the Location; %d is the forbidden port */
		const char *why;
		const char *addr;
	} hops[] = {
		{"http://127.0.0.2:%d/x", "loopback", "127.0.0.2"},
		{"http://2130706434:%d/x", "loopback", "127.0.0.2"},
		{"http://0x7f.0.0.2.:%d/x", NULL, NULL}, /* not resolvable: never connected */
		{"http://[::1]:%d/x", "loopback", "::1"},
		{"http://[::ffff:127.0.0.2]:%d/x", "loopback", "127.0.0.2"},
		{"http://forbidden.test:%d/x", "loopback", "127.0.0.2"},
		{"http://169.254.169.254:%d/latest/meta-data/", "link-local", "169.254.169.254"},
	};
	size_t n = sizeof(hops) / sizeof(hops[0]);
	const char *tg = it_tag('n');
	char fn[64], fn_no[64], loc[256], body[1024], ids[8][64], id_ftp[64], id_ok[64], id_no[64],
		id_raw[64], *enc, *err, path[128];

	snprintf(fn, sizeof(fn), "%s-follow", tg);
	snprintf(fn_no, sizeof(fn_no), "%s-stay", tg);
	add_function(fn, target, true);
	add_function(fn_no, target, false);
	for (size_t i = 0; i < n; i++) {
		fill(loc, sizeof(loc), hops[i].fmt);
		snprintf(body, sizeof(body),
			 "{\"function\":\"%s\",\"path\":\"/redirect/%s/%zu\",\"query\":{\"to\":"
			 "\"%s\",\"code\":\"%d\"},\"retry\":{\"max_attempts\":1}}",
			 fn, tg, i, loc, i % 2 == 0 ? 302 : 307);
		snprintf(ids[i], sizeof(ids[i]), "%s", it_enqueue(url, body, NULL));
	}
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"path\":\"/redirect/%s/ftp\",\"query\":{\"to\":"
		 "\"ftp://127.0.0.1:%d/x\"},\"retry\":{\"max_attempts\":1}}",
		 fn, tg, tport);
	snprintf(id_ftp, sizeof(id_ftp), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"path\":\"/redirect/%s/ok\",\"query\":{\"to\":"
		 "\"%s/np/%s/landed\"}}",
		 fn, tg, target, tg);
	snprintf(id_ok, sizeof(id_ok), "%s", it_enqueue(url, body, NULL));
	snprintf(loc, sizeof(loc), "http://127.0.0.2:%d/x", fport);
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"path\":\"/redirect/%s/no\",\"query\":{\"to\":\"%s\"}}",
		 fn_no, tg, loc);
	snprintf(id_no, sizeof(id_no), "%s", it_enqueue(url, body, NULL));
	enc = pct_encode(loc);
	snprintf(body, sizeof(body), "{\"target\":\"%s/redirect/%s/raw?to=%s\"}", target, tg, enc);
	free(enc);
	snprintf(id_raw, sizeof(id_raw), "%s", it_enqueue(url, body, NULL));

	CHECK(drain_with(NULL, NULL) == 0, "drainer --once failed");
	for (size_t i = 0; i < n; i++) {
		fill(loc, sizeof(loc), hops[i].fmt);
		if (hops[i].why != NULL) {
			refused_on_connect(ids[i], hops[i].why, hops[i].addr, loc);
		} else {
			err = attempt_error(ids[i]);
			CHECK(err != NULL && strstr(err, "resolve") != NULL,
			      "%s: attempt error '%s'", loc, err ? err : "(none)");
			free(err);
		}
		snprintf(path, sizeof(path), "/redirect/%s/%zu", tg, i);
		CHECK(target_hits(path) == 1, "the first hop %s reached the target %ld times", path,
		      target_hits(path));
	}
	it_field_is(id_ftp, "state", "dead");
	err = attempt_error(id_ftp);
	CHECK(err != NULL && strstr(err, "ftp") != NULL, "ftp redirect: attempt error '%s'",
	      err ? err : "(none)");
	free(err);
	it_field_is(id_ok, "state", "succeeded");
	snprintf(path, sizeof(path), "/np/%s/landed", tg);
	CHECK(target_hits(path) == 1, "the followed redirect landed %ld times", target_hits(path));
	it_field_is(id_no, "state", "dead");
	it_field_is(id_no, "last_status::text", "302");
	it_field_is(id_raw, "state", "dead");
	it_field_is(id_raw, "last_status::text", "302");
	no_connections("redirects to forbidden addresses");
}

/* The listeners do count the drainer's connections: a host-name rule (allow_targets) lets
 * named.test reach 127.0.0.2, directly and after a redirect, while the same address written as
 * an address stays refused. The calls time out (the listener never answers). */
static void t_host_rule_reaches(void)
{
	const char *tg = it_tag('n');
	char fn[64], body[512], id1[64], id2[64], id3[64], extra[128];
	char *err;

	snprintf(fn, sizeof(fn), "%s-follow", tg);
	add_function(fn, target, true);
	snprintf(body, sizeof(body),
		 "{\"target\":\"http://named.test:%d/x\",\"timeout\":\"1s\","
		 "\"retry\":{\"max_attempts\":1}}",
		 fport);
	snprintf(id1, sizeof(id1), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"path\":\"/redirect/%s/named\",\"query\":{\"to\":"
		 "\"http://named.test:%d/x\"},\"timeout\":\"1s\",\"retry\":{\"max_attempts\":1}}",
		 fn, tg, fport);
	snprintf(id2, sizeof(id2), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body),
		 "{\"function\":\"%s\",\"path\":\"/redirect/%s/addr\",\"query\":{\"to\":"
		 "\"http://127.0.0.2:%d/x\"},\"timeout\":\"1s\",\"retry\":{\"max_attempts\":1}}",
		 fn, tg, fport);
	snprintf(id3, sizeof(id3), "%s", it_enqueue(url, body, NULL));
	snprintf(extra, sizeof(extra), "allow_targets = 127.0.0.1/32, named.test");
	CHECK(drain_with(extra, NULL) == 0, "drainer --once failed");
	for (int i = 0; i < 100 && connections() < 2; i++)
		it_sleep_ms(20);
	CHECK(lst[0].seen == 2, "127.0.0.2:%d saw %ld connections from named.test, want 2", fport,
	      lst[0].seen);
	lst[0].seen = 0;
	err = attempt_error(id1);
	CHECK(err != NULL && strstr(err, "refused:") == NULL && strstr(err, "imeout") != NULL,
	      "named.test: attempt error '%s', want a timeout", err ? err : "(none)");
	free(err);
	err = attempt_error(id2);
	CHECK(err != NULL && strstr(err, "refused:") == NULL, "redirect to named.test: '%s'",
	      err ? err : "(none)");
	free(err);
	refused_on_connect(id3, "loopback", "127.0.0.2", "redirect to 127.0.0.2 with a name rule");
	no_connections("after the host rule");
}

/* Proxies: the environment's are ignored (they name the HTTP target, which would log the
 * absolute URL of a proxied request); outbound_proxy is used (the target plays the proxy), even
 * for names NO_PROXY lists; a proxy on a forbidden address is refused like any other. */
static void t_proxy(void)
{
	const char *tg = it_tag('n');
	char body[512], id1[64], id2[64], id3[64], extra[256], path[256], env1[128], env2[128],
		env3[128];
	const char *envs[6];

	snprintf(env1, sizeof(env1), "http_proxy=%s", target);
	snprintf(env2, sizeof(env2), "HTTPS_PROXY=%s", target);
	snprintf(env3, sizeof(env3), "ALL_PROXY=%s", target);
	envs[0] = env1;
	envs[1] = env2;
	envs[2] = env3;
	envs[3] = "NO_PROXY=";
	envs[4] = NULL;
	snprintf(body, sizeof(body), "{\"target\":\"%s/np/%s/direct\"}", target, tg);
	snprintf(id1, sizeof(id1), "%s", it_enqueue(url, body, NULL));
	CHECK(drain_with(NULL, envs) == 0, "drainer --once failed");
	it_field_is(id1, "state", "succeeded");
	snprintf(path, sizeof(path), "\"path\":\"/np/%s/direct\"", tg);
	CHECK(target_hits(path) == 1, "direct call seen %ld times", target_hits(path));
	snprintf(path, sizeof(path), "/np/%s/direct\"", tg);
	CHECK(target_hits(path) == 1, "the call went through the environment's proxy");
	no_connections("proxy variables in the environment");

	envs[0] = "NO_PROXY=*";
	envs[1] = "no_proxy=*";
	envs[2] = NULL;
	snprintf(body, sizeof(body), "{\"target\":\"http://proxied.example/np/%s/via\"}", tg);
	snprintf(id2, sizeof(id2), "%s", it_enqueue(url, body, NULL));
	snprintf(extra, sizeof(extra), "outbound_proxy = %s", target);
	CHECK(drain_with(extra, envs) == 0, "drainer --once failed");
	it_field_is(id2, "state", "succeeded");
	snprintf(path, sizeof(path), "\"path\":\"http://proxied.example/np/%s/via\"", tg);
	CHECK(target_hits(path) == 1, "the proxy saw the absolute URL %ld times",
	      target_hits(path));

	snprintf(body, sizeof(body),
		 "{\"target\":\"%s/np/%s/blocked\",\"retry\":{\"max_attempts\":1}}", target, tg);
	snprintf(id3, sizeof(id3), "%s", it_enqueue(url, body, NULL));
	snprintf(extra, sizeof(extra), "outbound_proxy = http://127.0.0.2:%d", fport);
	CHECK(drain_with(extra, NULL) == 0, "drainer --once failed");
	refused_on_connect(id3, "loopback", "127.0.0.2", "a proxy on 127.0.0.2");
	snprintf(path, sizeof(path), "/np/%s/blocked", tg);
	CHECK(target_hits(path) == 0, "the call went around the proxy");
	no_connections("proxies");
}

/* gzip of 100,000 bytes of 'A' (133 bytes). */
static unsigned char gz[133] = {
	0x1f, 0x8b,	    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xed, 0xc1, 0x31,
	0x01, 0x00,	    0x00, 0x00, 0xc2, 0xa0, 0x6c, 0xeb, 0x5f, 0xca, 0x1a, 0x1e, 0x40,
	0x01, [123] = 0xaf, 0x06, 0xd7, 0x9f, 0x8a, 0x05, 0xa0, 0x86, 0x01, 0x00,
};

/* A one-shot server on 127.0.0.1 (allowed) for two requests: /ce answers with
 * Content-Encoding: gzip, /te with Transfer-Encoding: gzip, chunked. */
static pid_t gzip_server(int fd)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	alarm(60);
	fcntl(fd, F_SETFL, 0);
	for (int k = 0; k < 2; k++) {
		char req[8192], head[256];
		size_t got = 0;
		int c = accept(fd, NULL, NULL);

		if (c < 0)
			_exit(1);
		while (got < sizeof(req) - 1) {
			ssize_t r = read(c, req + got, sizeof(req) - 1 - got);

			if (r <= 0)
				break;
			got += (size_t)r;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n") != NULL)
				break;
		}
		if (strstr(req, "/te") != NULL) {
			int n = snprintf(head, sizeof(head),
					 "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n"
					 "Connection: close\r\n\r\n%zx\r\n",
					 sizeof(gz));

			if (write(c, head, (size_t)n) < 0 || write(c, gz, sizeof(gz)) < 0 ||
			    write(c, "\r\n0\r\n\r\n", 7) < 0)
				_exit(1);
		} else {
			int n = snprintf(head, sizeof(head),
					 "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
					 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
					 sizeof(gz));

			if (write(c, head, (size_t)n) < 0 || write(c, gz, sizeof(gz)) < 0)
				_exit(1);
		}
		close(c);
	}
	_exit(0);
}

/* Answers are stored as sent: neither Content-Encoding nor Transfer-Encoding gzip is inflated,
 * so a compressed answer costs its compressed size. */
static void t_no_decompression(void)
{
	int port = 0, status;
	int fd = listen_on("127.0.0.1", 0, &port);
	char body[256], id_ce[64], id_te[64], hex[sizeof(gz) * 2 + 1];
	const char *ids[2] = {id_ce, id_te};
	pid_t pid;

	if (!CHECK(fd >= 0, "listen on 127.0.0.1: %s", strerror(errno)))
		return;
	pid = gzip_server(fd);
	close(fd);
	for (size_t i = 0; i < sizeof(gz); i++)
		sprintf(hex + 2 * i, "%02x", gz[i]);
	snprintf(body, sizeof(body), "{\"target\":\"http://127.0.0.1:%d/ce\"}", port);
	snprintf(id_ce, sizeof(id_ce), "%s", it_enqueue(url, body, NULL));
	snprintf(body, sizeof(body), "{\"target\":\"http://127.0.0.1:%d/te\"}", port);
	snprintf(id_te, sizeof(id_te), "%s", it_enqueue(url, body, NULL));
	CHECK(drain_with(NULL, NULL) == 0, "drainer --once failed");
	for (int i = 0; i < 2; i++) {
		char *size = it_sql("SELECT response_size::text FROM attempts "
				    "WHERE call_id = $1::uuid",
				    1, (const char *const[]){ids[i]});
		char *stored = it_sql("SELECT encode(response_body, 'hex') FROM attempts "
				      "WHERE call_id = $1::uuid",
				      1, (const char *const[]){ids[i]});

		it_field_is(ids[i], "state", "succeeded");
		CHECK(size != NULL && strcmp(size, "133") == 0, "%s: response_size %s, want 133",
		      i == 0 ? "Content-Encoding" : "Transfer-Encoding", size ? size : "(none)");
		CHECK(stored != NULL && strcmp(stored, hex) == 0, "%s: stored body is not the gzip",
		      i == 0 ? "Content-Encoding" : "Transfer-Encoding");
		free(size);
		free(stored);
	}
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	no_connections("no decompression");
}

int main(void)
{
	const char *t = getenv("AG_TMP");
	const char *colon;
	int fd;

	url = getenv("AG_URL");
	target = getenv("AG_TARGET");
	tlog = getenv("AG_TARGET_LOG");
	drainer = getenv("AG_DRAINER");
	conf = getenv("ASYNCGATE_CONF");
	if (url == NULL || target == NULL || tlog == NULL || drainer == NULL || conf == NULL ||
	    PQstatus(it_db()) != CONNECTION_OK) {
		printf("not ok - test_netpolicy setup: AG_URL, AG_TARGET, AG_TARGET_LOG, "
		       "AG_DRAINER, ASYNCGATE_CONF and a reachable database are required\n");
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s", t != NULL ? t : "/tmp");
	colon = strrchr(target, ':');
	tport = colon != NULL ? atoi(colon + 1) : 0;
	/* P: free on 127.0.0.2 and on ::1 at once. */
	for (int i = 0; i < 20 && nlst == 0; i++) {
		int fd6;

		fd = listen_on("127.0.0.2", 0, &fport);
		if (fd < 0)
			break;
		fd6 = listen_on("::1", fport, NULL);
		if (fd6 < 0 && errno == EADDRINUSE) {
			close(fd);
			continue;
		}
		add_listener(fd, "127.0.0.2", fport);
		if (fd6 >= 0) {
			add_listener(fd6, "::1", fport);
			have_v6 = true;
		}
	}
	fd = listen_on("127.0.0.2", tport, NULL);
	if (fd >= 0)
		add_listener(fd, "127.0.0.2", tport);
	fd = have_v6 ? listen_on("::1", tport, NULL) : -1;
	if (fd >= 0)
		add_listener(fd, "::1", tport);
	if (nlst < 3 || tport == 0) {
		printf("not ok - test_netpolicy setup: cannot listen on 127.0.0.2 (%d listeners)\n",
		       nlst);
		return 1;
	}
	if (!have_v6)
		printf("# no IPv6 loopback here: the ::1 listeners are left out\n");
	printf("# forbidden listeners:");
	for (int i = 0; i < nlst; i++)
		printf(" %s", lst[i].name);
	printf("\n");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	it_run("netpolicy: earlier tests' calls cancelled", it_clean_queue);
	it_run("netpolicy: the forbidden listeners count a connection", t_listeners_count);
	it_run("netpolicy: 41 spellings of forbidden addresses refused at accept (target, "
	       "callback, transparent mode): 400 problem+json, no row, no connection",
	       t_accept_spellings);
	it_run("netpolicy: functions on forbidden addresses refused on connect, ::1 of localhost "
	       "too; no connection",
	       t_function_forbidden);
	it_run("netpolicy: host names resolving to forbidden addresses refused on connect (target "
	       "and callback); a name with an allowed address reaches only that one",
	       t_hostname_forbidden);
	it_run("netpolicy: redirects: not followed unless the function says so; every hop "
	       "judged again; http/https only",
	       t_redirects);
	it_run("netpolicy: a host-name rule reaches its address (the listeners count), directly "
	       "and after a redirect; addresses stay refused",
	       t_host_rule_reaches);
	it_run("netpolicy: proxy variables ignored; outbound_proxy used and its address judged",
	       t_proxy);
	it_run("netpolicy: answers are not decompressed (Content-Encoding, Transfer-Encoding)",
	       t_no_decompression);
	curl_global_cleanup();
	PQfinish(it_db());
	return it_finish();
}
