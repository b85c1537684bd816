/* conf: asyncgate.conf, "key = value" lines checked against one table of keys. */
#ifndef AG_CONF_H
#define AG_CONF_H

#include <stddef.h>
#include <stdint.h>

/* The whole configuration. Strings are owned (conf_cleanup frees them). Durations are in ms. */
struct conf {
	char *database;		   /* libpq conninfo; "" = libpq's PG* variables and service file */
	char *log_level;	   /* error | warn | info | debug */
	char *allow_targets;	   /* CIDRs and host names raw targets may reach despite policy */
	char *public_url;	   /* absolute URL prefix for status_url; "" = relative */
	int64_t max_request_bytes; /* request body limit (a whole batch) */
	int64_t max_body_bytes;	   /* decoded body of one call */
	int64_t max_batch;	   /* instructions in one POST */
	int64_t max_headers;	   /* headers in one call */
	int64_t max_json_depth;	   /* nesting of arrays and objects in a POST /v1/calls body */
	char *deny_headers;	/* header names clients may not set on calls (comma/space list) */
	int64_t max_delay_ms;	/* how far ahead not_before / delay may reach */
	int64_t max_timeout_ms; /* upper bound of a call's timeout */
	int64_t max_expires_in_ms; /* upper bound of expires_in */
	int64_t default_timeout_ms;
	int64_t default_max_attempts;
	int64_t default_retry_initial_ms;
	int64_t default_retry_max_ms;
	int64_t retry_after_s;	       /* Retry-After sent with 503 */
	int64_t notify_interval_ms;    /* least time between two due-now NOTIFYs of one process */
	int64_t handler_threads;       /* requests one FastCGI process serves at once */
	int64_t commit_linger_us;      /* under load, the committer waits this long for more */
	int64_t drain_concurrency;     /* transfers at once per drainer */
	int64_t drain_lease_margin_ms; /* lease = call timeout + this */
	int64_t drain_connect_timeout_ms; /* TCP+TLS connect, within the call's timeout */
	int64_t drain_poll_interval_ms;	  /* --follow: longest sleep without looking at the queue */
	int64_t max_response_bytes;	  /* response body bytes stored per attempt */
	char *drain_token;		  /* bearer token of /v1/drain; "" = the endpoint is off */
	int64_t drain_budget_ms;	  /* time one /v1/drain request may take */
	char *auth; /* how clients are known: "keys", "remote_user", both, or "none" */
	/* proxy URL of every outbound call; "" = none (proxy variables are ignored) */
	char *outbound_proxy;
	/* "host:port:addr[,addr...]" entries, space-separated, for CURLOPT_RESOLVE */
	char *drain_resolve;
};

/* The bits of an auth value ("keys remote_user"), or -1 when it is not one. */
enum { AUTH_KEYS = 1, AUTH_REMOTE_USER = 2, AUTH_NONE = 4 };
int conf_auth_modes(const char *s);

/* Sets every key to its default (strings are new; call conf_cleanup). */
void conf_defaults(struct conf *cf);

/* Loads path over the defaults. A NULL path uses $ASYNCGATE_CONF, and when that is unset too,
 * keeps the defaults. Every bad line is logged; returns 0, or -1 if any line was bad or the
 * file named could not be read. */
int conf_load(struct conf *cf, const char *path);

/* Sets one key from text, as a file line would. Returns 0, or -1 (logged) when the key is
 * unknown or the value does not pass the key's check. */
int conf_set(struct conf *cf, const char *key, const char *value);

void conf_cleanup(struct conf *cf);

/* The name of key i (0-based), or NULL past the last: for --conf-keys and the docs drift check. */
const char *conf_key_name(size_t i);

#endif
