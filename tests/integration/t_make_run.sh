#!/usr/bin/env bash
# t_make_run: the embedded default (scripts/run.sh, what `make run` starts after building) serves
# POST /v1/calls on 127.0.0.1:8080 (or a free port when 8080 is taken), its drainer delivers the
# printed demo call to the demo target and the callback arrives, it stops cleanly, and a
# second run, and a run after everything was kill -9'd, serve again with the data kept.
# State goes to a temp directory (AG_RUN_VAR), never to the developer's var/.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=$(mktemp -d /tmp/ag-run.XXXXXX)
chmod 0755 "$dir" # the unprivileged PostgreSQL user must reach var/pg inside it
run_pid=

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A random free port (not 8080: other runs on the same machine may be racing for it).
for ((port = 20000 + RANDOM % 20000; ; port += 2)); do
	port_free "$port" && port_free $((port + 1)) && break
done
url=http://127.0.0.1:$port
for ((demo_port = port + 1; ; demo_port++)); do
	port_free "$demo_port" && break
done

ok() { printf 'ok - make run: %s\n' "$1"; }
notok() { printf 'not ok - make run: %s\n' "$1"; sed 's/^/#   /' "$dir/run.log" | tail -n 15; }

start() {
	: >"$dir/run.log"
	env -u PGHOST -u PGPORT -u PGDATABASE -u PGUSER -u ASYNCGATE_CONF \
		AG_RUN_VAR="$dir/var" AG_PORT="$port" AG_DEMO_PORT="$demo_port" AG_PROCS=1 \
		bash "$repo/scripts/run.sh" >"$dir/run.log" 2>&1 &
	run_pid=$!
	for ((i = 0; i < 300; i++)); do
		grep -q '^Try it:' "$dir/run.log" && return 0
		kill -0 "$run_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# curl with the sandbox's API key (make run keeps it in var/api-key).
kcurl() {
	curl -H "Authorization: Bearer $(cat "$dir/var/api-key" 2>/dev/null)" "$@"
}

post() {
	kcurl -s -o "$dir/out" -w '%{http_code}' --max-time 5 -X POST "$url/v1/calls" \
		-H 'Content-Type: application/json' \
		-d "{\"target\": \"$url/v1/health\", \"method\": \"GET\", \"delay\": \"1h\"}"
}

# Everything a run started: recorded pids of lighttpd and the postmaster, and the handlers.
kill_all_hard() {
	local f
	for f in "$dir/var/run/lighttpd.pid" "$dir/var/pg/postmaster.pid"; do
		[ -f "$f" ] && kill -9 "$(head -n 1 "$f")" 2>/dev/null
	done
	if [ -n "$run_pid" ]; then
		kill -9 "$run_pid" 2>/dev/null
		wait "$run_pid" 2>/dev/null
	fi
	for p in /proc/[0-9]*; do
		grep -qsz "ASYNCGATE_CONF=$dir/var/asyncgate.conf" "$p/environ" && kill -9 "${p#/proc/}" 2>/dev/null
	done
	sleep 0.5
}

cleanup() {
	[ -n "$run_pid" ] && kill -TERM "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
	kill_all_hard
	rm -rf "$dir"
}
trap cleanup EXIT

# 1. First run: serves, and says that loopback targets are allowed.
if start && [ "$(post)" = 202 ] && grep -q 'sandbox: loopback targets are allowed' "$dir/run.log"; then
	ok "first run serves POST /v1/calls on $url (202) and announces the sandbox policy"
else
	notok "first run serves POST /v1/calls on $url"
fi
id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$dir/out")

# 1b. The printed example: the drainer delivers the call to the demo target, whose lines show
# the call and then its callback arriving.
demo=http://127.0.0.1:$demo_port
code=$(kcurl -s -o "$dir/demo" -w '%{http_code}' --max-time 5 -X POST "$url/v1/calls" \
	-H 'Content-Type: application/json' \
	-d "{\"target\": \"$demo/hello\", \"body\": {\"hello\": \"world\"},
	     \"correlation_id\": \"demo-1\", \"callback\": \"$demo/callback\"}")
demo_id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$dir/demo")
for ((i = 0; i < 100; i++)); do
	grep -q "callback for call $demo_id outcome=succeeded" "$dir/run.log" && break
	sleep 0.1
done
if [ "$code" = 202 ] && [ -n "$demo_id" ] &&
	grep -q "demo-target: POST /hello Async-Call-Id=$demo_id Async-Attempt=1" "$dir/run.log" &&
	grep -q "callback for call $demo_id outcome=succeeded status=200" "$dir/run.log" &&
	kcurl -s "$url/v1/calls/$demo_id" | grep -q '"state":"succeeded"'; then
	ok "the demo call reaches the demo target and its callback arrives"
else
	notok "demo call $demo_id (POST $code) not shown as delivered with its callback"
fi

# 2. TERM (as Ctrl-C) stops everything it started, and exits 0.
kill -TERM "$run_pid"
wait "$run_pid"
rc=$?
run_pid=
leftover=
for p in /proc/[0-9]*; do
	grep -qsz "ASYNCGATE_CONF=$dir/var/asyncgate.conf" "$p/environ" && leftover="$leftover ${p#/proc/}"
done
if [ "$rc" = 0 ] && port_free "$port" && port_free "$demo_port" && [ -z "$leftover" ] &&
	! [ -S "$dir/var/run/.s.PGSQL.5432" ]; then
	ok "stops the drainer, the demo target, lighttpd and PostgreSQL and exits 0"
else
	notok "stop: exit $rc, port free: $(port_free "$port" && echo yes || echo no), left:$leftover"
fi

# 3. A second run works, and the first run's call is still there.
if start && [ "$(post)" = 202 ] &&
	[ "$(kcurl -s -o /dev/null -w '%{http_code}' "$url/v1/calls/$id")" = 200 ]; then
	ok "a second run serves again and keeps the first run's calls"
else
	notok "second run"
fi

# 4. After kill -9 of the run, lighttpd, the handlers and PostgreSQL, a run recovers.
kill_all_hard
run_pid=
if start && [ "$(post)" = 202 ] &&
	[ "$(kcurl -s -o /dev/null -w '%{http_code}' "$url/v1/calls/$id")" = 200 ]; then
	ok "a run after kill -9 of everything recovers (stale pids and sockets)"
else
	notok "run after kill -9"
fi
