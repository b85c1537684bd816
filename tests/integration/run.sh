#!/usr/bin/env bash
# run.sh: the integration test runner behind `make check`. In a fresh temp directory it starts a
# private PostgreSQL (Unix socket), applies the migrations, starts lighttpd on free loopback
# ports with the handler spawned (AG_URL) and with a standalone handler behind a second listener
# (AG_URL_STANDALONE), runs every build/it/test_* and tests/integration/t_*.sh, and stops all of
# it by PID. Tests print "ok - NAME" / "not ok - NAME"; the last line is "N passed, N failed".
#
# Exported to the tests: AG_URL, AG_URL_STANDALONE, AG_BIN, ASYNCGATE_CONF, PGHOST, PGPORT,
# PGDATABASE, PGUSER, AG_PGDATA, AG_PG_CTL_START, AG_PG_CTL_STOP, AG_PGCTL, AG_VAR, AG_TMP,
# AG_REPO, AG_TARGET (the HTTP target), AG_TARGET_LOG (its request log), AG_TARGET_SECRET,
# AG_DRAINER, AG_DRAIN_TOKEN, AG_ADMIN (asyncgate-admin), AG_API_KEY (a key that may call
# anything; it_http sends it by default) (see the exports below for what each is).
# Knobs: AG_BIN (handler, default build/asyncgate.fcgi), AG_TEST_TIMEOUT (per program, 300 s),
# AG_KEEP=1 (keep the temp directory even when everything passed), AG_ONLY=GLOB (run only the
# test programs whose file name matches, e.g. AG_ONLY='test_api*').
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/net.sh
source scripts/net.sh # port_used, free_port

bin=$(realpath -m "${AG_BIN:-build/asyncgate.fcgi}")
timeout_s=${AG_TEST_TIMEOUT:-300}
passed=0
failed=0
pids=() # started here, stopped in reverse order
names=()
tmp=
pg_started=false
t0=$SECONDS

say()
{
	printf '# %s\n' "$*"
}

ok()
{
	printf 'ok - %s\n' "$1"
	passed=$((passed + 1))
}

not_ok()
{
	printf 'not ok - %s\n' "$1"
	failed=$((failed + 1))
}

# setup_fail WHAT: the environment could not be built; nothing else can run.
setup_fail()
{
	not_ok "setup: $1"
	exit 1
}

# tail_log FILE: the end of FILE, indented, if it has anything.
tail_log()
{
	if [[ -s $1 ]]; then
		say "--- last lines of $1"
		tail -n 25 "$1" | sed 's/^/#   /'
	fi
}

# shellcheck disable=SC2317 # reached through the EXIT trap
finish()
{
	local rc=$? i
	trap - EXIT
	trap '' INT TERM HUP # a second Ctrl-C must not cut the cleanup short
	set +e
	if ((rc != 0 && failed == 0)); then
		not_ok "harness: stopped with status $rc"
	fi
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		ag_stop "${pids[i]}" "${names[i]}" 10
	done
	wait 2>/dev/null
	if $pg_started; then
		pg_stop "$tmp/pg"
	fi
	if [[ -n $tmp ]]; then
		if ((failed > 0)) || [[ ${AG_KEEP:-} == 1 ]]; then
			tail_log "$tmp/log/error.log"
			tail_log "$tmp/log/standalone.log"
			tail_log "$tmp/log/pg.log"
			tail_log "$tmp/log/target.log"
			say "logs and data kept in $tmp"
		else
			rm -rf -- "$tmp"
		fi
	fi
	say "took $((SECONDS - t0)) s"
	printf '%d passed, %d failed\n' "$passed" "$failed"
	((failed == 0)) || exit 1
	exit 0
}
trap finish EXIT
trap 'not_ok "interrupted"; exit 130' INT TERM HUP



# http_code URL: the status code of GET URL, 000 if nothing answered.
http_code()
{
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

[[ -x $bin ]] || setup_fail "$bin is not built (make)"
command -v lighttpd >/dev/null 2>&1 || setup_fail "lighttpd is not installed (scripts/deps.sh)"
[[ -n $PG_BINDIR ]] || setup_fail "PostgreSQL server programs not found (scripts/deps.sh)"

# The temp directory must be reachable by the server's OS user, and short (socket paths).
pg_user_init
base=${TMPDIR:-/tmp}
if ((${#base} > 60)) || ! pg_as test -x "$base"; then
	base=/tmp
fi
tmp=$(mktemp -d "$base/ag-it.XXXXXX")
chmod 0755 "$tmp"
mkdir -p "$tmp"/{run,log,tmp,www,t}
say "temp directory $tmp"

export AG_PG_FAST=1 AG_PG_LOG=$tmp/log/pg.log
pg_init "$tmp/pg" || setup_fail "initdb"
pg_start "$tmp/pg" "$tmp/run" 5432 || setup_fail "start PostgreSQL"
pg_started=true
unset PGHOSTADDR PGSERVICE # they would send libpq elsewhere
export PGHOST=$tmp/run PGPORT=5432 PGDATABASE=asyncgate PGUSER=$PG_SUPERUSER
pg_createdb "$PGHOST" "$PGPORT" "$PGDATABASE" || setup_fail "createdb"

shopt -s nullglob
migrations=(sql/[0-9][0-9][0-9]_*.sql)
if ! out=$(sql/migrate.sh 2>&1); then
	printf '%s\n' "$out" | sed 's/^/#   /'
	setup_fail "migrate: sql/migrate.sh failed"
fi
n=$(psql -X -At -c 'SELECT count(*) FROM schema_migrations')
if [[ $n == "${#migrations[@]}" ]]; then
	ok "migrate: applies all ${#migrations[@]} migration(s) and records each"
else
	printf '%s\n' "$out" | sed 's/^/#   /'
	not_ok "migrate: ${#migrations[@]} files but $n rows in schema_migrations"
fi
out=$(sql/migrate.sh 2>&1) || true
if [[ $out == 'migrations: up to date' ]]; then
	ok "migrate: a second run is up to date"
else
	printf '%s\n' "$out" | sed 's/^/#   /'
	not_ok "migrate: a second run is up to date"
fi

src=conf/asyncgate.conf
[[ -f $src ]] || src=conf/asyncgate.conf.sample
export ASYNCGATE_CONF=$tmp/asyncgate.conf
export AG_DRAIN_TOKEN=test-drain-token-$RANDOM$RANDOM
{
	if [[ -f $src ]]; then
		cat "$src"
	else
		say "no conf/asyncgate.conf: the test configuration has only the overrides" >&2
	fi
	printf '\n# Test overrides appended by tests/integration/run.sh\n'
	printf 'allow_targets = 127.0.0.1/32\nlog_level = debug\n'
	printf 'drain_token = %s\ndrain_lease_margin = 1s\n' "$AG_DRAIN_TOKEN"
	printf 'auth = keys remote_user\n'
} >"$ASYNCGATE_CONF"

# Clients, made with the admin tool: the tests' own key (it_http sends it unless a test sets
# Authorization itself), and web-server users alice and bob for REMOTE_USER through CGI.
export AG_ADMIN=$repo/build/asyncgate-admin
[[ -x $AG_ADMIN ]] || setup_fail "$AG_ADMIN is not built (make)"
AG_API_KEY=$("$AG_ADMIN" key create tests --function '*' --url '*' --note 'integration tests' \
	2>>"$tmp/log/admin.log") || setup_fail "asyncgate-admin key create failed"
export AG_API_KEY
for u in alice bob; do
	"$AG_ADMIN" user set "$u" --function '*' --url '*' 2>>"$tmp/log/admin.log" ||
		setup_fail "asyncgate-admin user set $u failed"
done

# The HTTP target the drainer calls (tests/target/ag_target.c): on a free port it picks itself,
# logging every request it receives as one JSON line.
target_bin=$repo/build/ag_target
[[ -x $target_bin ]] || setup_fail "$target_bin is not built (make)"
export AG_TARGET_LOG=$tmp/log/target.jsonl AG_TARGET_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
setsid "$target_bin" --port 0 --port-file "$tmp/run/target.port" --log "$AG_TARGET_LOG" \
	--secret "$AG_TARGET_SECRET" </dev/null >>"$tmp/log/target.log" 2>&1 &
pids+=("$!")
names+=("HTTP target")
for ((i = 0; i < 50; i++)); do
	[[ -s $tmp/run/target.port ]] && break
	ag_alive "${pids[-1]}" || setup_fail "HTTP target ($target_bin) exited"
	sleep 0.1
done
[[ -s $tmp/run/target.port ]] || setup_fail "HTTP target did not report its port in 5 s"
export AG_TARGET=http://127.0.0.1:$(cat "$tmp/run/target.port")
export AG_DRAINER=$repo/build/asyncgate-drainer
say "HTTP target pid ${pids[-1]} at $AG_TARGET"

# The standalone handler: its own FastCGI socket, as under nginx or spawn-fcgi.
sa_sock=$tmp/run/standalone.sock
setsid "$bin" --socket "$sa_sock" </dev/null >>"$tmp/log/standalone.log" 2>&1 &
pids+=("$!")
names+=("standalone handler")
for ((i = 0; i < 50; i++)); do
	[[ -S $sa_sock ]] && break
	ag_alive "${pids[0]}" || setup_fail "standalone handler ($bin --socket) exited"
	sleep 0.1
done
[[ -S $sa_sock ]] || setup_fail "standalone handler did not create $sa_sock in 5 s"

# lighttpd with both listeners. A port taken between the probe and bind() (a parallel run)
# makes lighttpd exit at once; then try other ports.
for attempt in 1 2 3; do
	port=$(free_port) || setup_fail "no free port"
	port2=$(free_port "$port") || setup_fail "no free port"
	AG_LISTEN_PORT=$port AG_STANDALONE_PORT=$port2 AG_VAR=$tmp AG_BIN=$bin AG_PROCS=1 \
		setsid lighttpd -D -f tests/integration/lighttpd-standalone.conf \
		</dev/null >>"$tmp/log/error.log" 2>&1 &
	lighttpd_pid=$!
	up=false
	for ((i = 0; i < 100; i++)); do
		ag_alive "$lighttpd_pid" || break
		if [[ $(http_code "http://127.0.0.1:$port/v1/health") != 000 &&
			$(http_code "http://127.0.0.1:$port2/v1/health") != 000 ]]; then
			up=true
			break
		fi
		sleep 0.1
	done
	$up && break
	ag_stop "$lighttpd_pid" lighttpd 5
	wait "$lighttpd_pid" 2>/dev/null || true
	grep -q 'Address already in use' "$tmp/log/error.log" ||
		setup_fail "lighttpd did not answer GET /v1/health on ports $port and $port2 in 10 s"
	say "port $port or $port2 was taken; trying others ($attempt)"
done
$up || setup_fail "lighttpd could not bind free ports"
pids+=("$lighttpd_pid")
names+=(lighttpd)
say "lighttpd pid $lighttpd_pid on ports $port (spawned handler) and $port2 (standalone)"

export AG_URL=http://127.0.0.1:$port
export AG_URL_STANDALONE=http://127.0.0.1:$port2
export AG_BIN=$bin AG_VAR=$tmp AG_TMP=$tmp/t AG_REPO=$repo
export AG_PGDATA=$tmp/pg
# Commands for outage tests (system(3) or sh -c), and the script itself ("bash $AG_PGCTL stop").
export AG_PGCTL=$repo/tests/integration/pgctl.sh
printf -v AG_PG_CTL_START '%q %q start' bash "$AG_PGCTL"
printf -v AG_PG_CTL_STOP '%q %q stop' bash "$AG_PGCTL"
export AG_PG_CTL_START AG_PG_CTL_STOP
say "setup took $((SECONDS - t0)) s"

# run_one PROGRAM: run one test program, count its ok / not ok lines, and turn a crash, a
# timeout or a silent non-zero exit into a failure line.
run_one()
{
	local t=$1 name=${1##*/} out=$tmp/log/${1##*/}.out rc n_ok n_fail cmd
	if [[ $t == *.sh ]]; then
		cmd=(bash "$repo/$t")
	else
		cmd=("$repo/$t")
	fi
	say "=== $name"
	set +e
	# --foreground: the test stays in our process group, so Ctrl-C reaches it too.
	timeout --foreground -k 5 "$timeout_s" "${cmd[@]}" </dev/null 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	set -e
	n_ok=$(grep -c '^ok\b' "$out" || true)
	n_fail=$(grep -c '^not ok\b' "$out" || true)
	passed=$((passed + n_ok))
	failed=$((failed + n_fail))
	if ((rc == 124)); then
		not_ok "$name: timed out after $timeout_s s"
	elif ((rc > 128)); then
		not_ok "$name: crashed (signal $((rc - 128)))"
	elif ((rc != 0 && n_fail == 0)); then
		not_ok "$name: exited with status $rc"
	elif ((rc == 0 && n_ok + n_fail == 0)); then
		not_ok "$name: reported no results"
	fi
	# A test that stopped PostgreSQL (outage tests) and did not start it again.
	if ! pg_running "$tmp/pg"; then
		say "PostgreSQL was left stopped by $name; starting it again"
		pg_start "$tmp/pg" "$tmp/run" 5432 || setup_fail "restart PostgreSQL after $name"
	fi
	if ! ag_alive "$lighttpd_pid"; then
		not_ok "$name: lighttpd died during this test"
		exit 1
	fi
}

tests=()
for t in build/it/test_*; do
	[[ -f $t && -x $t ]] && tests+=("$t")
done
tests+=(tests/integration/t_*.sh)
# AG_ONLY=GLOB (e.g. AG_ONLY='test_flow*'): run only the programs whose file name matches.
if [[ -n ${AG_ONLY:-} ]]; then
	only=()
	for t in "${tests[@]}"; do
		# shellcheck disable=SC2053 # a glob on purpose
		[[ $(basename "$t") == $AG_ONLY ]] && only+=("$t")
	done
	tests=("${only[@]}")
fi
if ((${#tests[@]} == 0)); then
	say "no test programs (build/it/test_*, tests/integration/t_*.sh)"
fi
for t in "${tests[@]}"; do
	run_one "$t"
done
