#!/usr/bin/env bash
# run.sh: the embedded default behind `make run`: a private PostgreSQL on a Unix socket under
# var/, the migrations, lighttpd on 127.0.0.1:AG_PORT (8080) spawning the FastCGI handler, and
# a --follow drainer, and a demo target on AG_PORT+1. Ctrl-C stops everything; a later run
# reuses var/.
#
# Environment: AG_PORT (8080), AG_DEMO_PORT (AG_PORT+1), AG_PROCS (handler processes, 2),
# AG_BIN (handler binary, build/asyncgate.fcgi), AG_RUN_VAR (state directory instead of var/; the make-run test uses it).
# var/: pg/ (cluster), run/ (sockets, pids), log/ (pg.log, error.log, access.log, NAME.log),
# tmp/ (request bodies), www/ (empty document root), asyncgate.conf (conf/ plus overrides).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/pg.sh
source scripts/pg.sh

port=${AG_PORT:-8080}
procs=${AG_PROCS:-2}
bin=${AG_BIN:-$repo/build/asyncgate.fcgi}
var=${AG_RUN_VAR:-$repo/var}
conf=$var/asyncgate.conf
pgport=5432
url=http://127.0.0.1:$port

pids=()  # started here, stopped by stop_all in reverse order
names=()
pg_started=false

die()
{
	printf 'run: %s\n' "$*" >&2
	exit 1
}

# shellcheck disable=SC2317 # reached through the EXIT trap
stop_all()
{
	local i
	trap - EXIT
	trap '' INT TERM HUP # a second Ctrl-C must not cut the cleanup short
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		ag_stop "${pids[i]}" "${names[i]}" 30
	done
	wait 2>/dev/null || true
	if $pg_started; then
		pg_stop "$pgdata" || true
	fi
	rm -f "$var/run/run.pid"
	printf 'run: stopped\n'
}

# stop_leftovers: a run that was kill -9'd leaves lighttpd, handlers or extra processes behind.
# They are recognised by their ASYNCGATE_CONF (ours) and stopped; PostgreSQL is reused instead.
stop_leftovers()
{
	local d pid comm
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		comm=$(cat "$d/comm" 2>/dev/null) || continue
		case $comm in
		lighttpd | asyncgate* | ag_target) ;;
		*) continue ;;
		esac
		if { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -qxF "ASYNCGATE_CONF=$conf"; then
			printf 'run: stopping %s (pid %s) left by an earlier run\n' "$comm" "$pid"
			ag_stop "$pid" "$comm" 10
		fi
	done
}

# start_proc NAME CMD...: start a long-running process with the run's environment, in its own
# session, output to var/log/NAME.log; it is stopped on exit.
start_proc()
{
	local name=$1
	shift
	setsid "$@" </dev/null >>"$var/log/$name.log" 2>&1 &
	pids+=("$!")
	names+=("$name")
	printf 'run: %s started (pid %s, log var/log/%s.log)\n' "$name" "$!" "$name"
}

port_busy()
{
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

[[ -x $bin ]] || die "$bin is not built (make)"
command -v lighttpd >/dev/null 2>&1 || die "lighttpd is not installed (scripts/deps.sh)"
[[ -n $PG_BINDIR ]] || die "PostgreSQL server programs not found (scripts/deps.sh)"
((${#var} + 22 <= 107)) || die "$var is too long a path for Unix sockets; move the repository"

mkdir -p "$var"/{log,tmp,www}
if [[ -f $var/run/run.pid ]]; then
	other=$(cat "$var/run/run.pid")
	if [[ $other =~ ^[0-9]+$ ]] && ag_alive "$other" &&
		[[ $(readlink "/proc/$other/cwd" 2>/dev/null) == "$repo" ]] &&
		tr '\0' ' ' <"/proc/$other/cmdline" 2>/dev/null | grep -q 'run\.sh'; then
		die "already running (pid $other); stop it first"
	fi
fi
stop_leftovers
if port_busy "$port"; then
	die "127.0.0.1:$port is already in use; stop what listens there or set AG_PORT"
fi

# The cluster and its socket must be reachable by PG_OSUSER. A repository under /root or a 0700
# directory is not, so then they live under /var/tmp, reached through symlinks.
pg_user_init
if [[ ! -e $var/pg && ! -L $var/pg ]] && ! pg_as test -x "$var"; then
	base=/var/tmp/asyncgate-$(printf '%s' "$repo" | sha256sum | cut -c1-12)
	mkdir -p "$base/pg" "$base/run"
	chmod 0755 "$base"
	if [[ -d $var/run && ! -L $var/run ]]; then
		rm -rf -- "$var/run" # sockets and pid files only, from a run that failed early
	fi
	ln -sfn "$base/pg" "$var/pg"
	ln -sfn "$base/run" "$var/run"
	printf 'run: user %s cannot reach %s, so var/pg and var/run link to %s\n' \
		"$PG_OSUSER" "$var" "$base"
fi
mkdir -p "$var/run"
pgdata=$(realpath "$var/pg")
sockdir=$(realpath "$var/run")
export AG_PG_LOG=$var/log/pg.log
printf '%s\n' "$$" >"$var/run/run.pid"
trap stop_all EXIT
trap 'exit 0' INT TERM HUP

pg_init "$pgdata"
if pg_running "$pgdata"; then
	printf 'run: reusing the running PostgreSQL (pid %s)\n' "$PG_PID"
fi
pg_start "$pgdata" "$sockdir" "$pgport"
pg_started=true
printf 'run: PostgreSQL on %s/.s.PGSQL.%s (pid %s, log var/log/pg.log)\n' \
	"$sockdir" "$pgport" "$PG_PID"

unset PGHOSTADDR PGSERVICE # they would send libpq elsewhere
export PGHOST=$sockdir PGPORT=$pgport PGDATABASE=asyncgate PGUSER=$PG_SUPERUSER
pg_createdb "$PGHOST" "$PGPORT" "$PGDATABASE"
sql/migrate.sh | sed 's/^/run: /'

src=conf/asyncgate.conf
[[ -f $src ]] || src=conf/asyncgate.conf.sample
{
	if [[ -f $src ]]; then
		cat "$src"
	else
		printf 'run: no conf/asyncgate.conf; using defaults\n' >&2
	fi
	printf '\n# Sandbox overrides appended by scripts/run.sh\n'
	printf 'allow_targets = 127.0.0.0/8, ::1/128\n'
} >"$conf.tmp"
chmod 0600 "$conf.tmp"
mv -f "$conf.tmp" "$conf"
export ASYNCGATE_CONF=$conf
printf 'run: sandbox: loopback targets are allowed (allow_targets in var/asyncgate.conf)\n'

rm -f "$var"/run/asyncgate.sock-* # left by a killed lighttpd; it would reuse live ones
# setsid: Ctrl-C reaches only this script, which then stops everything in order. lighttpd's
# stderr is the handlers' stderr, so it goes to the error log too.
AG_LISTEN_PORT=$port AG_VAR=$var AG_BIN=$bin AG_PROCS=$procs \
	setsid lighttpd -D -f "$repo/conf/lighttpd.conf" </dev/null >>"$var/log/error.log" 2>&1 &
pids+=("$!")
names+=(lighttpd)
lighttpd_pid=$!

code=000
for ((i = 0; i < 100; i++)); do
	if ! ag_alive "$lighttpd_pid"; then
		tail -n 20 "$var/log/error.log" >&2
		die "lighttpd exited; see var/log/error.log"
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/v1/health" || true)
	[[ $code != 000 ]] && break
	sleep 0.1
done
[[ $code != 000 ]] || die "lighttpd does not answer on $url within 10 s; see var/log/error.log"
printf 'run: lighttpd on %s (pid %s, %s handler processes); GET /v1/health answered %s\n' \
	"$url" "$lighttpd_pid" "$procs" "$code"

# The sandbox's API key (client "demo", may call anything): kept in var/api-key across runs,
# made anew when it is missing or no longer accepted.
keyfile=$var/api-key
if [[ ! -s $keyfile ]] || [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
	-H "Authorization: Bearer $(cat "$keyfile")" "$url/v1/calls?limit=1") != 200 ]]; then
	(umask 077 && "$repo/build/asyncgate-admin" key create demo --function '*' --url '*' \
		--note 'make run sandbox' >"$keyfile.tmp" 2>/dev/null) || die "cannot make the demo API key"
	mv -f "$keyfile.tmp" "$keyfile"
fi
printf 'run: API key of client "demo" (may call any function and URL) in %s\n' "$keyfile"

# The drainer, following the queue, and a demo target that prints what reaches it.
start_proc drainer "$repo/build/asyncgate-drainer" --follow
demo_port=${AG_DEMO_PORT:-$((port + 1))}
port_busy "$demo_port" && die "127.0.0.1:$demo_port (demo target) is in use; set AG_DEMO_PORT"
# Its lines go to this terminal and to var/log/demo-target.log, so a call and its callback show.
setsid "$repo/build/ag_target" --demo --port "$demo_port" --log "$var/log/demo-target.jsonl" \
	</dev/null 2>>"$var/log/demo-target.log" > >(tee -a "$var/log/demo-target.log") &
pids+=("$!")
names+=(demo-target)
demo=http://127.0.0.1:$demo_port
for ((i = 0; i < 50; i++)); do
	[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$demo/ready" || true) == 200 ]] &&
		break
	sleep 0.1
done
printf 'run: demo target on %s (pid %s; its lines show here and in var/log/demo-target.log)\n' \
	"$demo" "${pids[-1]}"

cat <<EOF

Try it: the demo target prints the call as it arrives, then the callback with the outcome.
  export AG_KEY=\$(cat $keyfile)    # curl sends it with -H "Authorization: Bearer \$AG_KEY"
  alias agcurl='curl -H "Authorization: Bearer \$AG_KEY"'
  agcurl -s -X POST $url/v1/calls -H 'Content-Type: application/json' \\
       -d '{"target": "$demo/hello", "body": {"hello": "world"},
            "correlation_id": "demo-1", "callback": "$demo/callback"}'
  agcurl -s $url/v1/calls/ID        # state, attempts, and the callback's state
  agcurl -s '$url/v1/calls?limit=10'
  agcurl -s -X POST $url/v1/calls -H 'Content-Type: application/json' \\
       -d '{"target": "$demo/status/503", "retry": {"max_attempts": 3, "initial": "1s"},
            "failure_callback": "$demo/callback"}'     # retried twice, then dead
  agcurl -i -X POST $url/v1/async/http%3A%2F%2F127.0.0.1%3A$demo_port%2Fhello -d 'hello'
  curl -s $url/metrics                 # health and metrics need no key
  PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER PGDATABASE=$PGDATABASE \\
       build/asyncgate-admin key list   # API keys: key create | list | revoke
  psql -h $PGHOST -U $PGUSER $PGDATABASE -c 'SELECT * FROM ag_queue_depth'
Logs in var/log/. Ctrl-C stops the drainer, the demo target, lighttpd and PostgreSQL.
EOF

# Wait for Ctrl-C (trap: exit 0 runs stop_all) or for a process to die on its own.
set +e
wait -n "${pids[@]}"
rc=$?
set -e
for ((i = 0; i < ${#pids[@]}; i++)); do
	if ! ag_alive "${pids[i]}"; then
		printf 'run: %s (pid %s) exited with status %s; stopping\n' "${names[i]}" "${pids[i]}" "$rc" >&2
	fi
done
exit 1
