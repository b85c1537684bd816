#!/usr/bin/env bash
# t_valgrind_cgi: the handler under valgrind, as plain CGI against the test database, on each
# kind of request (valid, batch, idempotent replay, bad input, transparent mode, status, list,
# cancel, retry, health, metrics, drain, schedules and a tick fired by /v1/drain), and the drainer
# over every kind of outcome: no invalid memory access and no definite or indirect leak.
set -uo pipefail
bin=${AG_BIN:?run me from tests/integration/run.sh}
if ! command -v valgrind >/dev/null; then
	echo "ok - valgrind: skipped, valgrind is not installed # SKIP"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

vg() { # name method uri content-type body [VAR=value...]
	local name=$1 m=$2 u=$3 ct=$4 b=$5
	shift 5
	printf '%s' "$b" | env -i ASYNCGATE_CONF="$ASYNCGATE_CONF" PGHOST="$PGHOST" PGPORT="$PGPORT" \
		PGDATABASE="$PGDATABASE" PGUSER="$PGUSER" REQUEST_METHOD="$m" REQUEST_URI="$u" \
		CONTENT_TYPE="$ct" CONTENT_LENGTH="${#b}" HTTP_AUTHORIZATION="Bearer ${AG_API_KEY:-}" "$@" \
		valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$bin" \
		>"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ "$rc" = 0 ] && head -n 1 "$tmp/out" | grep -q '^Status: '; then
		echo "ok - valgrind: $name"
	else
		echo "not ok - valgrind: $name (exit $rc)"
		grep '==' "$tmp/err" | head -n 20 | sed 's/^/#   /'
		fail=1
	fi
}

T=http://127.0.0.1:9
J=application/json
vg "enqueue one call" POST /v1/calls $J \
	"{\"target\":\"$T/x\",\"headers\":{\"A\":\"b\"},\"query\":{\"a\":[1,2]},\"body\":{\"k\":1},\"callback\":{\"url\":\"$T/c\",\"headers\":{\"X\":\"y\"}}}"
id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$tmp/out")
vg "batch, first idempotent request" POST /v1/calls $J \
	"[{\"target\":\"$T/x\"},{\"target\":\"$T/y\",\"body_base64\":\"AAEC\"}]" HTTP_IDEMPOTENCY_KEY=vg-1
vg "batch, idempotent replay" POST /v1/calls $J \
	"[{\"target\":\"$T/x\"},{\"target\":\"$T/y\",\"body_base64\":\"AAEC\"}]" HTTP_IDEMPOTENCY_KEY=vg-1
vg "batch with an unknown function" POST /v1/calls $J "[{\"target\":\"$T/x\"},{\"function\":\"nope\"}]"
vg "chunked body without CONTENT_LENGTH (Apache mod_cgid)" POST /v1/calls $J \
	"{\"target\":\"$T/x\",\"body_text\":\"chunked\"}" CONTENT_LENGTH= HTTP_TRANSFER_ENCODING=chunked
vg "unknown field" POST /v1/calls $J "{\"target\":\"$T/x\",\"bogus\":1}"
vg "malformed JSON" POST /v1/calls $J "{\"target\": NaN"
vg "transparent mode" POST "/v1/async/http%3A%2F%2F127.0.0.1%3A9%2Fz/p?q=1" text/plain raw \
	HTTP_X_A=1 HTTP_ASYNC_DELAY=1s
vg "transparent mode, bad control header" POST /v1/async/fn/p text/plain raw HTTP_ASYNC_BOGUS=1
vg "GET a call" GET "/v1/calls/$id" "" ""
vg "list calls" GET "/v1/calls?limit=2&state=queued" "" ""
vg "cancel" DELETE "/v1/calls/$id" "" ""
vg "retry" POST "/v1/calls/$id/retry" "" ""
vg "health" GET /v1/health "" ""
vg "malformed id" GET /v1/calls/zz "" ""
vg "metrics" GET /metrics "" ""
vg "no API key (401)" POST /v1/calls $J "{\"target\":\"$T/x\"}" HTTP_AUTHORIZATION=
vg "unknown API key (401)" GET /v1/calls "" "" \
	HTTP_AUTHORIZATION="Bearer agk_k_000000000000_$(printf '%064d' 0)"
vg "REMOTE_USER with rules" GET "/v1/calls?limit=2" "" "" HTTP_AUTHORIZATION= REMOTE_USER=alice
vg "REMOTE_USER without rules (403)" GET /v1/calls "" "" HTTP_AUTHORIZATION= REMOTE_USER=nobody
vg "drain, wrong token" GET /v1/drain "" "" HTTP_AUTHORIZATION="Bearer nope"

# Schedules: the API, and a due tick fired by the drain cycle in the handler.
vg "schedule: create" POST /v1/schedules $J \
	"{\"cron\":\"*/5 * * * *\",\"time_zone\":\"Europe/Berlin\",\"name\":\"vg\",\"call\":{\"target\":\"$T/s\",\"headers\":{\"Authorization\":\"x\"},\"body\":{\"k\":1},\"callback\":{\"url\":\"$T/c\",\"headers\":{\"X\":\"y\"}}}}"
sid=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$tmp/out")
vg "schedule: bad cron" POST /v1/schedules $J "{\"cron\":\"61 * * * *\",\"call\":{\"target\":\"$T/s\"}}"
vg "schedule: forbidden call field" POST /v1/schedules $J \
	"{\"every\":\"1m\",\"call\":{\"function\":\"nope\"}}"
vg "schedule: list" GET "/v1/schedules?limit=5" "" ""
vg "schedule: get" GET "/v1/schedules/$sid" "" ""
vg "schedule: pause" POST "/v1/schedules/$sid/pause" "" ""
vg "schedule: resume" POST "/v1/schedules/$sid/resume" "" ""
psql -X -q -c "UPDATE schedules SET next_tick = now() - interval '11 minutes' WHERE id = '$sid'" \
	>/dev/null 2>&1
vg "schedule: a due tick fired by /v1/drain" POST /v1/drain "" "" \
	HTTP_AUTHORIZATION="Bearer ${AG_DRAIN_TOKEN:?}"
if [ "$(psql -X -At -c "SELECT count(*) FROM calls WHERE schedule_id = '$sid'" 2>/dev/null)" = 1 ]
then
	echo "ok - valgrind: schedule: the due tick made one call"
else
	echo "not ok - valgrind: schedule: the due tick made one call"
	fail=1
fi
vg "schedule: delete" DELETE "/v1/schedules/$sid" "" ""
# Topics: managing needs an admin key; publish (JSON and transparent, filtered, replayed), 409,
# status.
adm=$(psql -X -At -c "SELECT token FROM ag_key_create('vg-admin', '{*}', '{*}', true)")
vg "topic put" PUT /v1/topics/vg-topic $J "{\"subscriptions\":[{\"name\":\"a\",\"target\":\"$T/a\",\"headers\":{\"X\":\"1\"},\"filter\":[{\"json\":\"/k\",\"in\":[1,2]}]},{\"name\":\"b\",\"target\":\"$T/b\",\"retry\":{\"max_attempts\":2}}]}" \
	HTTP_AUTHORIZATION="Bearer $adm"
vg "topic put, bad filter" PUT /v1/topics/vg-topic $J "{\"subscriptions\":[{\"name\":\"a\",\"target\":\"$T/a\",\"filter\":{\"json\":\"k\"}}]}" \
	HTTP_AUTHORIZATION="Bearer $adm"
vg "topic get" GET /v1/topics/vg-topic "" "" HTTP_AUTHORIZATION="Bearer $adm"
vg "topics list" GET /v1/topics "" "" HTTP_AUTHORIZATION="Bearer $adm"
vg "publish" POST /v1/topics/vg-topic/calls $J "{\"delay\":\"1h\",\"path\":\"/p\",\"headers\":{\"X\":\"m\"},\"body\":{\"k\":1}}" \
	HTTP_AUTHORIZATION="Bearer $adm" HTTP_IDEMPOTENCY_KEY=vg-pub
pub=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$tmp/out")
vg "publish, replay" POST /v1/topics/vg-topic/calls $J "{\"delay\":\"1h\",\"path\":\"/p\",\"headers\":{\"X\":\"m\"},\"body\":{\"k\":1}}" \
	HTTP_AUTHORIZATION="Bearer $adm" HTTP_IDEMPOTENCY_KEY=vg-pub
vg "publish, transparent" POST "/v1/async/topic:vg-topic/x?q=1" text/plain raw \
	HTTP_AUTHORIZATION="Bearer $adm" HTTP_ASYNC_DELAY=1h
psql -X -q -c "SELECT ag_topic_put('vg-bad', '[{\"name\": \"p\", \"target\": \"http://10.1.1.1/\"}]')" >/dev/null
vg "publish, 409" POST /v1/topics/vg-bad/calls $J "{}" HTTP_AUTHORIZATION="Bearer $adm"
vg "publication status" GET "/v1/publications/$pub" "" "" HTTP_AUTHORIZATION="Bearer $adm"
vg "publications list" GET "/v1/publications?topic=vg-topic" "" "" HTTP_AUTHORIZATION="Bearer $adm"
vg "topic delete" DELETE /v1/topics/vg-topic "" "" HTTP_AUTHORIZATION="Bearer $adm"

# The drain cycle, in the handler and in the drainer, over every kind of outcome.
X=${AG_TARGET:?}
drain_calls() {
	vg "enqueue calls for a drain ($1)" POST /v1/calls $J "[
		{\"target\":\"$X/ok/vg\",\"body\":{\"a\":1},\"callback\":\"$X/cb/vg\"},
		{\"target\":\"$X/status/503\",\"retry\":{\"max_attempts\":2}},
		{\"target\":\"$X/status/400\",\"failure_callback\":\"$X/cb/vg\"},
		{\"target\":\"$X/big/1048576\"},
		{\"target\":\"$X/reset\",\"retry\":{\"max_attempts\":1}},
		{\"target\":\"$X/bin\",\"method\":\"PUT\",\"body_base64\":\"AAEC\"}]"
}
drain_calls handler
vg "drain, right token" POST /v1/drain "" "" HTTP_AUTHORIZATION="Bearer ${AG_DRAIN_TOKEN:?}"
drain_calls drainer
drainer=${AG_DRAINER:?}
env -i ASYNCGATE_CONF="$ASYNCGATE_CONF" PGHOST="$PGHOST" PGPORT="$PGPORT" \
	PGDATABASE="$PGDATABASE" PGUSER="$PGUSER" \
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$drainer" --once \
	>"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" = 0 ] && grep -q 'claimed=[1-9]' "$tmp/out"; then
	echo "ok - valgrind: drainer --once over success, retry, dead, callbacks, 1 MB, reset"
else
	echo "not ok - valgrind: drainer --once (exit $rc)"
	cat "$tmp/out" | sed 's/^/#   /'
	grep '==' "$tmp/err" | head -n 30 | sed 's/^/#   /'
	fail=1
fi
exit "$fail"
