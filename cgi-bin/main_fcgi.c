/* main_fcgi: the accept loop. Runs as plain CGI (one request, then exit), as a FastCGI app
 * spawned by the web server (listening socket on fd 0), or as a standalone FastCGI server on
 * its own socket (--socket, for nginx or spawn-fcgi). The only file that touches FCGX_*. */
#include "handlers.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fcgiapp.h>

#include "commitq.h"
#include "drain.h"
#include "log.h"

extern char **environ;

static void usage(FILE *f)
{
	fputs("usage: asyncgate.fcgi [--conf FILE] [--socket PATH|HOST:PORT] [--backlog N]\n"
	      "       asyncgate.fcgi --check-conf [--conf FILE] | --conf-keys\n"
	      "Without --socket it serves FastCGI on fd 0 when a web server spawned it, and\n"
	      "plain CGI otherwise. The configuration file defaults to $ASYNCGATE_CONF.\n",
	      f);
}

/* Strict CONTENT_LENGTH: digits only, no sign, no overflow. -1 when malformed. */
static long long parse_length(const char *s)
{
	long long v = 0;

	if (s == NULL || *s == '\0')
		return 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || v > (1LL << 40))
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

/* Fills path, query and mount from REQUEST_URI (raw, so percent-encoded URLs and queries in
 * transparent mode survive as sent; web servers normalise PATH_INFO and QUERY_STRING) and
 * SCRIPT_NAME (the mount point, when the web server put us under a prefix). */
static void set_path(struct req *rq)
{
	const char *uri = req_param(rq, "REQUEST_URI");
	const char *script = req_param(rq, "SCRIPT_NAME");
	const char *q;
	char *raw;

	if (uri == NULL || *uri == '\0') {
		const char *pi = req_param(rq, "PATH_INFO");
		const char *qs = req_param(rq, "QUERY_STRING");

		rq->query = xstrdup(qs != NULL ? qs : "");
		rq->path = xasprintf("%s%s", script != NULL ? script : "", pi != NULL ? pi : "");
		rq->mount = xstrdup("");
		return;
	}
	q = strchr(uri, '?');
	raw = q != NULL ? xstrndup(uri, (size_t)(q - uri)) : xstrdup(uri);
	rq->query = xstrdup(q != NULL ? q + 1 : "");
	if (strncmp(raw, "/v1/", 4) != 0 && script != NULL && *script != '\0' &&
	    strcmp(script, "/") != 0 && strncmp(raw, script, strlen(script)) == 0 &&
	    strncmp(raw + strlen(script), "/v1/", 4) == 0) {
		rq->mount = xstrdup(script);
		rq->path = xstrdup(raw + strlen(script));
		free(raw);
		return;
	}
	rq->mount = xstrdup("");
	rq->path = raw;
}

/* Reads the request body when its length is within the limit. Returns 0, or -1 with rs set.
 * Without CONTENT_LENGTH there may still be a body (a web server that streams a chunked one):
 * that is 411. A FastCGI input stream always ends (the web server sends an empty FCGI_STDIN
 * record), so a byte is looked for there (delimited); plain CGI stdin may stay open, and RFC
 * 3875 4.2 says to read no more than CONTENT_LENGTH, so there only Transfer-Encoding tells. */
typedef int (*read_fn)(void *src, char *dst, int n);

static int read_body(struct req *rq, struct resp *rs, const struct app *app, read_fn rd, void *src,
		     bool delimited)
{
	const char *cl = req_param(rq, "CONTENT_LENGTH");
	long long len = parse_length(cl);
	size_t got = 0;

	if (cl == NULL || *cl == '\0') {
		const char *te = req_param(rq, "HTTP_TRANSFER_ENCODING");
		char c;

		if ((te != NULL && *te != '\0') || (delimited && rd(src, &c, 1) > 0)) {
			char sink[16384];
			long long left = app->cf.max_request_bytes;
			int n;

			/* Apache's mod_cgid streams a chunked body on stdin and wants it consumed
			 * before it passes the answer on: read and drop it, up to the limit. */
			while (left > 0) {
				n = rd(src, sink, (int)sizeof(sink));
				if (n <= 0)
					break;
				left -= n;
			}
			resp_problem(rs, 411, "Content-Length",
				     "Content-Length: a request with a body must say its length");
			return -1;
		}
		return 0;
	}
	if (len < 0) {
		resp_problem(rs, 400, "Content-Length", "Content-Length: malformed");
		return -1;
	}
	if (len > app->cf.max_request_bytes) {
		/* Answer without reading it all (the web server discards the rest). */
		resp_problem(rs, 413, "body", "body: %lld bytes; the limit is %lld", len,
			     (long long)app->cf.max_request_bytes);
		return -1;
	}
	if (len == 0)
		return 0;
	rq->body = xmalloc((size_t)len + 1);
	while (got < (size_t)len) {
		int n = rd(src, rq->body + got, (int)((size_t)len - got));

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	rq->body[got] = '\0';
	rq->body_len = got;
	if (got != (size_t)len) {
		resp_problem(rs, 400, "body", "body: %zu of %lld bytes arrived", got, len);
		return -1;
	}
	return 0;
}

static int read_fcgi(void *src, char *dst, int n)
{
	return FCGX_GetStr(dst, n, (FCGX_Stream *)src);
}

static int read_stdin(void *src, char *dst, int n)
{
	(void)src;
	return (int)fread(dst, 1, (size_t)n, stdin);
}

/* Everything for one request but I/O: parse, route, and log problems. */
static void serve(struct req *rq, struct resp *rs, struct app *app, read_fn rd, void *src,
		  bool delimited)
{
	const char *m = req_param(rq, "REQUEST_METHOD");
	char esc[256];
	char pesc[256];

	rq->method = m != NULL ? m : "GET";
	set_path(rq);
	if (read_body(rq, rs, app, rd, src, delimited) == 0)
		route(rq, rs, app);
	if (rs->status == 0)
		resp_problem(rs, 500, NULL, "the handler gave no answer");
	if (rs->status >= 400)
		log_info("request method=%s path=%s status=%d",
			 log_esc(esc, 80, rq->method, strlen(rq->method)),
			 log_esc(pesc, sizeof(pesc), rq->path, strlen(rq->path)), rs->status);
}

/* The CGI/FastCGI response: Status line, headers, blank line, body (none for HEAD). */
static char *render(const struct req *rq, const struct resp *rs, size_t *len)
{
	struct buf out;
	bool head = strcmp(rq->method, "HEAD") == 0;

	buf_init(&out);
	buf_printf(&out, "Status: %d %s\r\n", rs->status, http_reason(rs->status));
	if (rs->content_type != NULL)
		buf_printf(&out, "Content-Type: %s\r\n", rs->content_type);
	buf_printf(&out, "Content-Length: %zu\r\nCache-Control: no-store\r\n", rs->body_len);
	if (rs->headers.len > 0)
		buf_append(&out, rs->headers.data, rs->headers.len);
	buf_puts(&out, "\r\n");
	if (!head && rs->body_len > 0)
		buf_append(&out, rs->body, rs->body_len);
	return buf_take(&out, len);
}

static int run_cgi(struct app *app)
{
	struct req rq;
	struct resp rs;
	char *out;
	size_t len;

	req_init(&rq);
	resp_init(&rs);
	rq.params = environ;
	serve(&rq, &rs, app, read_stdin, NULL, false);
	out = render(&rq, &rs, &len);
	fwrite(out, 1, len, stdout);
	fflush(stdout);
	free(out);
	resp_reset(&rs);
	req_reset(&rq);
	return 0;
}

/* The threads of a FastCGI process take turns at the listening socket: one at a time waits
 * (poll, then FCGX_Accept_r and the reading of the parameters), as libfcgi's threaded example
 * serialises accept. The poll also watches stop_pipe, which becomes readable (and stays so)
 * when the process is to stop: then each thread finishes its request and leaves. */
static pthread_mutex_t accept_mu = PTHREAD_MUTEX_INITIALIZER;
static int stop_pipe[2] = {-1, -1};

/* 1 when a request is waiting on listen_fd, 0 when the process stops, -1 on an error. */
static int wait_turn(int listen_fd)
{
	struct pollfd fds[2] = {{listen_fd, POLLIN, 0}, {stop_pipe[0], POLLIN, 0}};

	if (stop_pipe[0] < 0)
		return 1; /* one thread: FCGX_Accept_r waits by itself */
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll on the FastCGI socket: %s", strerror(errno));
			return -1;
		}
		if (fds[1].revents != 0)
			return 0;
		if (fds[0].revents != 0)
			return 1;
	}
}

/* Whether a request may queue calls for the shared commit: anything but a read. */
static bool may_insert(const struct req *rq)
{
	const char *m = req_param(rq, "REQUEST_METHOD");

	return m != NULL && strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

static int run_fcgi(struct app *app, int listen_fd)
{
	FCGX_Request fr;
	struct req rq;
	struct resp rs;

	if (FCGX_InitRequest(&fr, listen_fd, 0) != 0) {
		log_err("fcgi init failed");
		return 1;
	}
	req_init(&rq);
	resp_init(&rs);
	for (;;) {
		char *out;
		size_t len;
		int acc;

		pthread_mutex_lock(&accept_mu);
		acc = wait_turn(listen_fd);
		if (acc > 0)
			acc = FCGX_Accept_r(&fr) >= 0 ? 1 : -1;
		pthread_mutex_unlock(&accept_mu);
		if (acc <= 0)
			break;
		rq.params = fr.envp; /* borrowed until FCGX_Finish_r, after the answer */
		if (app->cq != NULL && may_insert(&rq))
			commitq_arrive(app->cq, &app->cq_counted);
		serve(&rq, &rs, app, read_fcgi, fr.in, true);
		if (app->cq != NULL)
			commitq_depart(app->cq, &app->cq_counted);
		out = render(&rq, &rs, &len);
		FCGX_PutStr(out, (int)len, fr.out);
		free(out);
		/* libfcgi closes a connection gracefully: shutdown, then wait for the web server
		 * to close its end and read until it does, so that unread input cannot turn the
		 * close into a TCP reset that loses the answer. Once the input has been read to
		 * its end (the empty FCGI_STDIN record) there is none: a detached request is
		 * closed at once, without the wait and its three system calls. */
		if (!fr.keepConnection && FCGX_GetChar(fr.in) == EOF)
			FCGX_Detach(&fr);
		FCGX_Finish_r(&fr);
		resp_reset(&rs);
		req_reset(&rq); /* the one release point per request */
	}
	FCGX_Free(&fr, 1);
	return 0;
}

struct worker {
	pthread_t thr;
	struct app app; /* the thread's own: a copy of the process's, with its own db */
	int fd;
	pthread_t main;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	run_fcgi(&w->app, w->fd);
	/* When the socket failed rather than the process being stopped: stop it all (the web
	 * server starts a new one). A second signal is harmless. */
	pthread_kill(w->main, SIGTERM);
	return NULL;
}

/* FastCGI on handler_threads threads that share one commit queue (commitq.c). This thread
 * waits for SIGTERM, SIGINT or SIGUSR1 (blocked in every thread, so none interrupts a
 * request), then makes the stop pipe readable, joins the workers once they have answered what
 * they hold, and runs the queue empty. */
static int run_threads(struct app *app, int listen_fd)
{
	size_t want = (size_t)app->cf.handler_threads;
	struct worker *w;
	size_t started = 0;
	sigset_t stop;
	int sig = 0;

	if (want <= 1)
		return run_fcgi(app, listen_fd);
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &stop, NULL); /* inherited by every thread made below */
	if (pipe(stop_pipe) != 0) {
		log_err("pipe: %s", strerror(errno));
		return 1;
	}
	app->cq = commitq_new(app->cf.database, app->cf.notify_interval_ms,
			      (long)app->cf.commit_linger_us);
	if (app->cq == NULL)
		return 1;
	w = xcalloc(want, sizeof(*w));
	for (; started < want; started++) {
		int err;

		w[started].app = *app; /* cf and np are shared and read-only from here on */
		db_init(&w[started].app.db, app->cf.database);
		w[started].app.drain = NULL;
		w[started].app.last_notify_ms = 0;
		w[started].fd = listen_fd;
		w[started].main = pthread_self();
		err = pthread_create(&w[started].thr, NULL, worker_main, &w[started]);
		if (err != 0) {
			log_warn("cannot start handler thread %zu: error %d; serving with fewer",
				 started + 1, err);
			db_cleanup(&w[started].app.db);
			break;
		}
	}
	if (started == 0)
		pthread_kill(pthread_self(), SIGTERM);
	sigwait(&stop, &sig);
	log_debug("stopping signal=%d", sig);
	if (write(stop_pipe[1], "x", 1) != 1)
		log_err("stop pipe: %s", strerror(errno));
	for (size_t i = 0; i < started; i++) {
		pthread_join(w[i].thr, NULL);
		drain_free(w[i].app.drain);
		db_cleanup(&w[i].app.db);
	}
	free(w);
	commitq_free(app->cq);
	app->cq = NULL;
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	return started > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL;
	const char *sock = NULL;
	int backlog = 128;
	bool check_only = false;
	enum log_level lvl = LOGL_INFO;
	struct app app;
	int rc = 1;

	log_init(argv[0], LOGL_INFO);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc) {
			conf_path = argv[++i];
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			sock = argv[++i];
		} else if (strcmp(argv[i], "--backlog") == 0 && i + 1 < argc) {
			backlog = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--check-conf") == 0) {
			check_only = true;
		} else if (strcmp(argv[i], "--conf-keys") == 0) {
			for (size_t k = 0; conf_key_name(k) != NULL; k++)
				puts(conf_key_name(k));
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	conf_defaults(&app.cf);
	if (conf_load(&app.cf, conf_path) != 0 ||
	    netpolicy_init(&app.np, app.cf.allow_targets) != 0) {
		log_err("configuration rejected; not serving");
		conf_cleanup(&app.cf);
		return 1;
	}
	if (log_level_parse(app.cf.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (check_only) {
		puts("configuration ok");
		rc = 0;
		goto out_conf;
	}
	signal(SIGPIPE, SIG_IGN);
	/* httpoxy: libcurl must never take a proxy from a client-controlled variable. */
	unsetenv("HTTP_PROXY");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_err("curl_global_init failed");
		goto out_conf;
	}
	db_init(&app.db, app.cf.database);
	app.drain = NULL;
	app.last_notify_ms = 0;
	app.cq = NULL;
	app.keys = NULL;
	app.auth_fresh = false;
	app.auth_stale = false;
	if (sock == NULL && FCGX_IsCGI()) {
		rc = run_cgi(&app);
	} else {
		int fd = 0;

		if (FCGX_Init() != 0) {
			log_err("FCGX_Init failed");
			goto out_db;
		}
		if (sock != NULL) {
			/* Owner-only socket: the web server runs as the same user or a group member
			 * given access by the operator. */
			mode_t old = umask(0077);

			fd = FCGX_OpenSocket(sock, backlog);
			umask(old);
			if (fd < 0) {
				log_err("cannot listen on %s: %s", sock, strerror(errno));
				goto out_db;
			}
			log_info("listening socket=%s", sock);
		}
		app.keys = h_keycache_new();
		rc = run_threads(&app, fd);
		h_keycache_free(app.keys);
	}
out_db:
	drain_free(app.drain);
	db_cleanup(&app.db);
	curl_global_cleanup();
out_conf:
	netpolicy_cleanup(&app.np);
	conf_cleanup(&app.cf);
	return rc;
}
