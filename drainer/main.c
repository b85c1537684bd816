/* asyncgate-drainer: flags, signals and the LISTEN connection around lib/drain.c, for cron
 * (--once) and for a long-running service (--follow). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "conf.h"
#include "db.h"
#include "drain.h"
#include "log.h"
#include "netpolicy.h"
#include "xalloc.h"

#define CHANNEL "asyncgate_due"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	if (stop_flag < 2)
		stop_flag++;
}

static void usage(FILE *f)
{
	fputs("usage: asyncgate-drainer --once [--max-seconds S] [--max-calls N] [options]\n"
	      "       asyncgate-drainer --follow [options]\n"
	      "options: --conf FILE  --concurrency N  --threads N  --name NAME\n"
	      "--once drains until nothing is due (or a limit is hit), prints a summary, exits.\n"
	      "--threads runs that many drain loops, sharing the concurrency (default: one per\n"
	      "128 of concurrency, at most one per core; 1 with --max-calls).\n"
	      "--follow runs until SIGTERM/SIGINT: the first stops claiming and finishes what is\n"
	      "in flight, a second gives in-flight calls back to the queue at once.\n"
	      "The configuration file defaults to $ASYNCGATE_CONF.\n",
	      f);
}

/* The LISTEN connection of --follow: its own, never pooled; reconnected on loss. */
struct listener {
	const char *conninfo;
	PGconn *conn;
	int64_t retry_at; /* monotonic seconds: do not reconnect before */
};

static int64_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void listener_close(struct listener *l)
{
	PQfinish(l->conn);
	l->conn = NULL;
}

static int listener_fd(void *arg)
{
	struct listener *l = arg;
	char msg[256];
	PGresult *res;

	if (l->conn != NULL && PQstatus(l->conn) == CONNECTION_OK)
		return PQsocket(l->conn);
	listener_close(l);
	if (mono_s() < l->retry_at)
		return -1;
	l->retry_at = mono_s() + 5;
	/* As db_connect: a bounded connect, the primary only (NOTIFY is not sent on a standby),
	 * and the operator's conninfo last, so its own settings win. */
	l->conn = PQconnectdbParams(
		(const char *const[]){"connect_timeout", "fallback_application_name",
				      "target_session_attrs", "dbname", NULL},
		(const char *const[]){"5", "asyncgate-listen", "read-write", l->conninfo, NULL}, 1);
	if (PQstatus(l->conn) != CONNECTION_OK) {
		log_warn("drainer: LISTEN connection failed (polling meanwhile): %s",
			 log_flat(msg, sizeof(msg), PQerrorMessage(l->conn)));
		listener_close(l);
		return -1;
	}
	/* a fixed statement, no input in it */
	res = PQexec(l->conn, "LISTEN " CHANNEL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warn("drainer: LISTEN failed (polling meanwhile): %s",
			 log_flat(msg, sizeof(msg), PQerrorMessage(l->conn)));
		PQclear(res);
		listener_close(l);
		return -1;
	}
	PQclear(res);
	if (PQsetnonblocking(l->conn, 1) != 0)
		log_warn("drainer: LISTEN connection stays blocking");
	return PQsocket(l->conn);
}

static void listener_wake(void *arg)
{
	struct listener *l = arg;
	char msg[256];
	PGnotify *n;

	if (l->conn == NULL)
		return;
	if (PQconsumeInput(l->conn) == 0) {
		log_warn("drainer: LISTEN connection lost: %s",
			 log_flat(msg, sizeof(msg), PQerrorMessage(l->conn)));
		listener_close(l);
		return;
	}
	while ((n = PQnotifies(l->conn)) != NULL)
		PQfreemem(n);
}

static int parse_count(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* One drain loop of the process: its own connections (claim, settle, LISTEN), libcurl multi
 * handle and share of the concurrency; all of them see stop_flag. */
struct worker {
	pthread_t thr;
	struct db db;
	struct drain *d;
	struct listener lis;
	struct drain_opts o;
	struct drain_stats st; /* --once: the run's; --follow: the last cycle's */
	char *name;
	int rc;
};

static void *worker_once(void *arg)
{
	struct worker *w = arg;

	if (db_connect(&w->db) != 0) {
		log_err("drainer: database unreachable");
		w->rc = 1;
		return NULL;
	}
	w->rc = drain_run(w->d, &w->o, &w->st) == 0 ? 0 : 1;
	return NULL;
}

static void *worker_follow(void *arg)
{
	struct worker *w = arg;
	char *line;

	while (stop_flag == 0) {
		if (drain_run(w->d, &w->o, &w->st) != 0 && stop_flag == 0) {
			/* database gone: drain_run backs off while following; this is a deeper
			 * failure (libcurl). Wait a little and start over. */
			nanosleep(&(struct timespec){1, 0}, NULL);
		}
		if (w->st.claimed > 0 || w->st.lost > 0 || w->st.released > 0) {
			line = drain_stats_line(&w->st);
			log_info("drainer: name=%s %s", w->name, line);
			free(line);
		}
	}
	return NULL;
}

/* The default number of drain loops: one per 128 transfers of concurrency, at most one per
 * core. One loop claims, starts transfers and settles on one thread; past ~128 transfers it
 * cannot keep them busy and the machine idles (make bench: a fifth of both cores at 256). */
static int64_t default_threads(int64_t concurrency)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int64_t n = concurrency / 128;

	if (cores < 1)
		cores = 1;
	if (n > cores)
		n = cores;
	return n < 1 ? 1 : n;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL;
	const char *name = NULL;
	bool once = false, follow = false;
	int64_t max_seconds = 0, max_calls = 0, concurrency = 0, threads = 0;
	enum log_level lvl = LOGL_INFO;
	struct conf cf;
	struct netpolicy np;
	struct worker *w = NULL;
	struct drain_stats st;
	char *myname = NULL, *line;
	struct sigaction sa;
	int started = 0;
	int rc = 1;

	log_init("asyncgate-drainer", LOGL_INFO);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--once") == 0) {
			once = true;
		} else if (strcmp(a, "--follow") == 0) {
			follow = true;
		} else if (strcmp(a, "--conf") == 0 && v != NULL) {
			conf_path = v;
			i++;
		} else if (strcmp(a, "--name") == 0 && v != NULL) {
			name = v;
			i++;
		} else if (strcmp(a, "--max-seconds") == 0 && v != NULL &&
			   parse_count(v, 1, 86400 * 366, &max_seconds) == 0) {
			i++;
		} else if (strcmp(a, "--max-calls") == 0 && v != NULL &&
			   parse_count(v, 1, INT64_MAX, &max_calls) == 0) {
			i++;
		} else if (strcmp(a, "--concurrency") == 0 && v != NULL &&
			   parse_count(v, 1, 10000, &concurrency) == 0) {
			i++;
		} else if (strcmp(a, "--threads") == 0 && v != NULL &&
			   parse_count(v, 1, 64, &threads) == 0) {
			i++;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "asyncgate-drainer: bad argument: %s\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (once == follow || (follow && (max_seconds > 0 || max_calls > 0))) {
		usage(stderr);
		return 2;
	}
	conf_defaults(&cf);
	if (conf_load(&cf, conf_path) != 0 || netpolicy_init(&np, cf.allow_targets) != 0) {
		log_err("drainer: configuration rejected; not draining");
		conf_cleanup(&cf);
		return 1;
	}
	if (log_level_parse(cf.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (concurrency == 0)
		concurrency = cf.drain_concurrency;
	if (threads == 0)
		threads = default_threads(concurrency);
	if (threads > concurrency)
		threads = concurrency;
	if (max_calls > 0)
		threads = 1; /* one loop counts the calls exactly */
	myname = name != NULL ? xstrdup(name) : drain_name("");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	w = xcalloc((size_t)threads, sizeof(*w));
	for (int i = 0; i < threads; i++) {
		struct worker *x = &w[i];

		/* each loop holds leases under a name of its own: "name/1", "name/2", ... */
		x->name = threads > 1 ? xasprintf("%s/%d", myname, i + 1) : xstrdup(myname);
		db_init(&x->db, cf.database);
		x->d = drain_new(&cf, &np, &x->db, x->name);
		if (x->d == NULL)
			goto out;
		x->o.concurrency = (int)(concurrency / threads + (i < concurrency % threads));
		x->o.stop = &stop_flag;
		x->o.settle_session = true;
		x->o.claim_ahead = x->o.concurrency;
		if (once) {
			x->o.max_ms = max_seconds * 1000;
			x->o.max_calls = max_calls;
		} else {
			x->lis.conninfo = cf.database;
			x->o.follow = true;
			x->o.wake_fd = listener_fd;
			x->o.wake = listener_wake;
			x->o.wake_arg = &x->lis;
		}
	}
	if (follow)
		log_info("drainer: following name=%s concurrency=%" PRId64 " threads=%" PRId64
			 " allow_targets=\"%s\"",
			 myname, concurrency, threads, cf.allow_targets);
	for (; started < threads; started++) {
		int err = pthread_create(&w[started].thr, NULL, once ? worker_once : worker_follow,
					 &w[started]);

		if (err != 0) {
			log_err("drainer: cannot start drain thread %d: error %d", started + 1,
				err);
			stop_flag = 2; /* the started ones give their calls back and stop */
			break;
		}
	}
	rc = started == threads ? 0 : 1;
	memset(&st, 0, sizeof(st));
	for (int i = 0; i < started; i++) {
		pthread_join(w[i].thr, NULL);
		if (w[i].rc != 0)
			rc = 1;
		drain_stats_add(&st, &w[i].st);
	}
	if (once && started == threads) {
		line = drain_stats_line(&st);
		printf("asyncgate-drainer: %s\n", line);
		free(line);
		fflush(stdout);
	}
	if (follow)
		log_info("drainer: stopped");
out:
	for (int i = 0; w != NULL && i < threads; i++) {
		listener_close(&w[i].lis);
		drain_free(w[i].d);
		if (w[i].name != NULL)
			db_cleanup(&w[i].db);
		free(w[i].name);
	}
	free(w);
	netpolicy_cleanup(&np);
	conf_cleanup(&cf);
	free(myname);
	return rc;
}
