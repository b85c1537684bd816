/* asyncgate-admin: the operator's tool for API keys and web-server users (the rules of who may
 * call what), through the SQL functions of sql/003_clients.sql. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "sign.h"
#include "xalloc.h"

#include <openssl/crypto.h>

static void usage(FILE *f)
{
	fputs("usage: asyncgate-admin [--conf FILE] COMMAND\n"
	      "  key create CLIENT [--function PATTERN]... [--url PATTERN]... [--admin]\n"
	      "             [--note TEXT]     prints the new key's token (shown once) on stdout\n"
	      "  key list [--all]             live keys (--all: revoked ones too); no secrets\n"
	      "  key revoke KEY_ID            refused from the next request on\n"
	      "  user set NAME [--function PATTERN]... [--url PATTERN]... [--admin] [--note TEXT]\n"
	      "                               rules of a web-server user (REMOTE_USER)\n"
	      "  user list\n"
	      "  user delete NAME\n"
	      "  signing-key new              a new Ed25519 key pair: whsk_ (for the function's\n"
	      "                               signing_secret) and whpk_ (for its targets)\n"
	      "  signing-key public           the whpk_ of a whsk_ read from standard input\n"
	      "Patterns are shell-style (fnmatch; '*' also matches '/'): --function 'report-*',\n"
	      "--url 'https://api.example.com/*'. No --function allows no function, no --url no\n"
	      "raw URL or callback. --admin may call anything and sees every client's calls.\n"
	      "The database is the configuration's (database key, or libpq's PG* variables).\n",
	      f);
}

/* The rules of key create / user set, from the options after the name. */
struct rules {
	struct json_object *functions; /* owned JSON arrays */
	struct json_object *urls;
	bool admin;
	const char *note; /* borrowed from argv */
};

static int parse_rules(int argc, char **argv, int i, struct rules *r)
{
	r->functions = json_object_new_array();
	r->urls = json_object_new_array();
	r->admin = false;
	r->note = "";
	for (; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--admin") == 0) {
			r->admin = true;
		} else if (strcmp(argv[i], "--function") == 0 && v != NULL) {
			json_object_array_add(r->functions, json_object_new_string(v));
			i++;
		} else if (strcmp(argv[i], "--url") == 0 && v != NULL) {
			json_object_array_add(r->urls, json_object_new_string(v));
			i++;
		} else if (strcmp(argv[i], "--note") == 0 && v != NULL) {
			r->note = v;
			i++;
		} else {
			fprintf(stderr, "asyncgate-admin: bad argument: %s\n", argv[i]);
			return -1;
		}
	}
	return 0;
}

static void rules_cleanup(struct rules *r)
{
	json_object_put(r->functions);
	json_object_put(r->urls);
}

/* Runs q; on failure says why on stderr (a CHECK violation means a bad name). */
static PGresult *run(struct db *db, enum query_id q, const char *const *params)
{
	PGresult *res = db_exec(db, q, params);

	if (res == NULL && db->error == DB_QUERY && strncmp(db->sqlstate, "23", 2) == 0)
		fprintf(stderr,
			"asyncgate-admin: refused by the database (sqlstate %s): a name "
			"must be 1-128 letters, digits, '_', '.', '@' or '-', starting with a "
			"letter or digit\n",
			db->sqlstate);
	else if (res == NULL)
		fprintf(stderr, "asyncgate-admin: the database statement failed (see above)\n");
	return res;
}

static int print_rows(struct db *db, enum query_id q, const char *const *params, const char *header)
{
	PGresult *res = run(db, q, params);

	if (res == NULL)
		return 1;
	puts(header);
	for (int r = 0; r < PQntuples(res); r++) {
		for (int c = 0; c < PQnfields(res); c++) {
			const char *v = PQgetvalue(res, r, c);

			printf("%s%s", c > 0 ? "\t" : "", *v != '\0' ? v : "-");
		}
		putchar('\n');
	}
	PQclear(res);
	return 0;
}

/* Answers a one-boolean statement: 0 when true, 1 with msg on stderr when false. */
static int run_bool(struct db *db, enum query_id q, const char *arg, const char *msg)
{
	const char *params[1] = {arg};
	PGresult *res = run(db, q, params);
	int rc;

	if (res == NULL)
		return 1;
	rc = PQgetvalue(res, 0, 0)[0] == 't' ? 0 : 1;
	if (rc != 0)
		fprintf(stderr, "asyncgate-admin: %s: %s\n", arg, msg);
	PQclear(res);
	return rc;
}

static int set_rules(struct db *db, enum query_id q, const char *name, int argc, char **argv, int i)
{
	struct rules r;
	const char *params[5];
	PGresult *res;
	int rc = 1;

	if (parse_rules(argc, argv, i, &r) != 0) {
		rules_cleanup(&r);
		return 2;
	}
	params[0] = name;
	params[1] = json_object_to_json_string_ext(r.functions, JSON_C_TO_STRING_PLAIN);
	params[2] = json_object_to_json_string_ext(r.urls, JSON_C_TO_STRING_PLAIN);
	params[3] = r.admin ? "true" : "false";
	params[4] = r.note;
	res = run(db, q, params);
	if (res != NULL && q == Q_ADMIN_KEY_CREATE) {
		fprintf(stderr, "key %s for client %s made; its token is shown once, now:\n",
			PQgetvalue(res, 0, 0), name);
		printf("%s\n", PQgetvalue(res, 0, 1));
		rc = 0;
	} else if (res != NULL) {
		fprintf(stderr, "rules of user %s set\n", name);
		rc = 0;
	}
	PQclear(res);
	rules_cleanup(&r);
	return rc;
}

static int command(struct db *db, int argc, char **argv, int i)
{
	const char *what = argv[i];
	const char *verb = i + 1 < argc ? argv[i + 1] : "";
	const char *arg = i + 2 < argc ? argv[i + 2] : NULL;

	if (strcmp(what, "key") == 0) {
		if (strcmp(verb, "create") == 0 && arg != NULL)
			return set_rules(db, Q_ADMIN_KEY_CREATE, arg, argc, argv, i + 3);
		if (strcmp(verb, "list") == 0 && (arg == NULL || strcmp(arg, "--all") == 0) &&
		    i + 3 >= argc) {
			const char *params[1] = {arg != NULL ? "true" : "false"};

			return print_rows(db, Q_ADMIN_KEY_LIST, params,
					  "id\tclient\tadmin\tfunctions\turl_patterns\tcreated_at"
					  "\trevoked_at\tnote");
		}
		if (strcmp(verb, "revoke") == 0 && arg != NULL && i + 3 == argc)
			return run_bool(db, Q_ADMIN_KEY_REVOKE, arg, "no live key with this id");
	} else if (strcmp(what, "user") == 0) {
		if (strcmp(verb, "set") == 0 && arg != NULL)
			return set_rules(db, Q_ADMIN_USER_SET, arg, argc, argv, i + 3);
		if (strcmp(verb, "list") == 0 && arg == NULL)
			return print_rows(db, Q_ADMIN_USER_LIST, NULL,
					  "name\tadmin\tfunctions\turl_patterns\tcreated_at\tnote");
		if (strcmp(verb, "delete") == 0 && arg != NULL && i + 3 == argc)
			return run_bool(db, Q_ADMIN_USER_DELETE, arg, "no such user");
	}
	usage(stderr);
	return 2;
}

/* signing-key new | public: no database needed. The private key goes to stdout (and never to a
 * command line, where ps would show it: public reads it from stdin). */
static int signing_key(const char *verb)
{
	char *sk = NULL;
	char *pk = NULL;
	char line[512];
	int rc = 1;

	if (strcmp(verb, "new") == 0) {
		if (sign_keygen(&sk, &pk) != 0)
			return 1;
		printf("signing_secret  %s\npublic_key      %s\n", sk, pk);
		rc = 0;
	} else if (strcmp(verb, "public") == 0) {
		if (fgets(line, sizeof(line), stdin) == NULL) {
			fputs("asyncgate-admin: signing-key public: give the whsk_ key on stdin\n",
			      stderr);
			return 2;
		}
		line[strcspn(line, "\r\n")] = '\0';
		pk = sign_public_key(line);
		OPENSSL_cleanse(line, sizeof(line));
		if (pk == NULL) {
			fputs("asyncgate-admin: signing-key public: not a whsk_ key\n", stderr);
			return 1;
		}
		printf("%s\n", pk);
		rc = 0;
	} else {
		usage(stderr);
		return 2;
	}
	if (sk != NULL)
		OPENSSL_cleanse(sk, strlen(sk));
	free(sk);
	free(pk);
	return rc;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL;
	struct conf cf;
	struct db db;
	enum log_level lvl;
	int i = 1;
	int rc;

	log_init("asyncgate-admin", LOGL_WARN);
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "--conf") == 0) {
		conf_path = argv[2];
		i = 3;
	}
	if (i + 1 >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "signing-key") == 0)
		return i + 2 == argc ? signing_key(argv[i + 1]) : (usage(stderr), 2);
	conf_defaults(&cf);
	if (conf_load(&cf, conf_path) != 0) {
		conf_cleanup(&cf);
		return 1;
	}
	if (log_level_parse(cf.log_level, &lvl) == 0 && lvl < LOGL_WARN)
		log_set_level(lvl);
	db_init(&db, cf.database);
	if (db_connect(&db) != 0) {
		fprintf(stderr, "asyncgate-admin: cannot reach the database (see above)\n");
		rc = 1;
	} else {
		rc = command(&db, argc, argv, i);
	}
	db_cleanup(&db);
	conf_cleanup(&cf);
	return rc;
}
