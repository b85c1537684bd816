/* asyncgate-drainer: flags, signals and the LISTEN connection around lib/drain.c, for cron
 * (--once) and for a long-running service (--follow). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	      "options: --conf FILE  --concurrency N  --name NAME\n"
	      "--once drains until nothing is due (or a limit is hit), prints a summary, exits.\n"
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

int main(int argc, char **argv)
{
	const char *conf_path = NULL;
	const char *name = NULL;
	bool once = false, follow = false;
	int64_t max_seconds = 0, max_calls = 0, concurrency = 0;
	enum log_level lvl = LOGL_INFO;
	struct conf cf;
	struct netpolicy np;
	struct db db;
	struct drain *d = NULL;
	struct listener lis = {0};
	struct drain_opts o;
	struct drain_stats st;
	char *myname = NULL, *line;
	struct sigaction sa;
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
	myname = name != NULL ? xstrdup(name) : drain_name("");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	db_init(&db, cf.database);
	d = drain_new(&cf, &np, &db, myname);
	if (d == NULL)
		goto out;

	memset(&o, 0, sizeof(o));
	o.concurrency = (int)concurrency;
	o.stop = &stop_flag;
	o.settle_session = true;
	o.claim_ahead = o.concurrency;
	if (once) {
		o.max_ms = max_seconds * 1000;
		o.max_calls = max_calls;
		if (db_connect(&db) != 0) {
			log_err("drainer: database unreachable");
			goto out;
		}
		rc = drain_run(d, &o, &st) == 0 ? 0 : 1;
		line = drain_stats_line(&st);
		printf("asyncgate-drainer: %s\n", line);
		free(line);
		fflush(stdout);
		goto out;
	}

	lis.conninfo = cf.database;
	o.follow = true;
	o.wake_fd = listener_fd;
	o.wake = listener_wake;
	o.wake_arg = &lis;
	log_info("drainer: following name=%s concurrency=%d allow_targets=\"%s\"", myname,
		 o.concurrency, cf.allow_targets);
	while (stop_flag == 0) {
		if (drain_run(d, &o, &st) != 0 && stop_flag == 0) {
			/* database gone: drain_run backs off while following; this is a deeper
			 * failure (libcurl). Wait a little and start over. */
			nanosleep(&(struct timespec){1, 0}, NULL);
		}
		if (st.claimed > 0 || st.lost > 0 || st.released > 0) {
			line = drain_stats_line(&st);
			log_info("drainer: %s", line);
			free(line);
		}
	}
	log_info("drainer: stopped");
	rc = 0;
out:
	listener_close(&lis);
	drain_free(d);
	db_cleanup(&db);
	netpolicy_cleanup(&np);
	conf_cleanup(&cf);
	free(myname);
	return rc;
}
