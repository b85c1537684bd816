#!/usr/bin/env bash
# run.sh: make bench. In a fresh temp directory it starts a private PostgreSQL (tuned for
# throughput, settings printed), an nginx target answering 204 and lighttpd with FastCGI
# responders, all on loopback, measures the baselines (ceilings) and asyncgate itself, and prints
# one "name value unit" line per figure, then "ratio ..." lines against the goals of issue 6 and
# a summary. Everything it starts is stopped by PID at the end. See bench/README.md.
#
# Knobs (environment):
#   BENCH_QUICK=1        every step with small sizes (~3 minutes), for development
#   BENCH_ONLY=a,b       steps to run: ceiling, accept, drain, latency, deferred, scale
#   BENCH_PROCS=N        FastCGI processes lighttpd spawns for the ceilings' responders (8)
#   BENCH_AG_PROCS=N     FastCGI processes of asyncgate (1: one committer, the biggest shared commits)
#   BENCH_AG_THREADS=N   asyncgate's handler_threads (requests each process serves at once; 64)
#   BENCH_SECONDS=S      length of each wrk / pgbench run (20; quick 5)
#   BENCH_PAIRS=N        accept and ceiling_fcgi_insert measured as N back-to-back pairs; the
#                        goal's ratio is the median of the pairs' ratios (3; quick 1)
#   BENCH_TIMEOUT=S      stop (everything, cleanly) after S seconds (1800; quick 600)
#   BENCH_KEEP=1         keep the temp directory (logs, nginx logs, PostgreSQL) afterwards
#   BENCH_PERF=DIR       record perf profiles into DIR: system-wide (perf record -a -g) during the
#                        accept run (auth = none), and of the drainer at concurrency 256 (dwarf
#                        call graphs; its RSS figure is then perf's)
#   BENCH_PGSS=1         load pg_stat_statements and write the top statements (calls, planning and
#                        execution time, shared blocks read from outside shared_buffers) of each
#                        asyncgate step to the log directory, and show them
#   BENCH_OUT=FILE       also write the figure lines to FILE (default build/bench/results.txt;
#                        results-quick.txt with BENCH_QUICK=1; -only.txt with BENCH_ONLY)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/net.sh
source scripts/net.sh # port_used, free_port

quick=${BENCH_QUICK:-0}
only=,${BENCH_ONLY:-ceiling,accept,drain,latency,deferred,scale},
procs=${BENCH_PROCS:-8}
ag_procs=${BENCH_AG_PROCS:-1}
ag_threads=${BENCH_AG_THREADS:-64}
conns=64
if [[ $quick == 1 ]]; then
	secs=${BENCH_SECONDS:-5}
	drain_n=20000
	lat_rate=1000 lat_secs=5
	def_n=10000 def_spread_ms=10000 def_start_ms=5000
	scale_done=200000 scale_future=50000 scale_run=50000 scale_chunk=10000 scale_run_max_s=60
	limit_s=${BENCH_TIMEOUT:-600}
	pairs=${BENCH_PAIRS:-1}
else
	secs=${BENCH_SECONDS:-20}
	drain_n=200000
	lat_rate=1000 lat_secs=20
	def_n=100000 def_spread_ms=60000 def_start_ms=10000
	scale_done=10000000 scale_future=1000000 scale_run=1000000 scale_chunk=50000
	scale_run_max_s=420
	limit_s=${BENCH_TIMEOUT:-1800}
	pairs=${BENCH_PAIRS:-3}
fi
bb=$repo/build/bench
hz=$(getconf CLK_TCK)
lighttpd_pid=
ng_pid=
out_file=$bb/results.txt
[[ $quick == 1 ]] && out_file=$bb/results-quick.txt
[[ -n ${BENCH_ONLY:-} ]] && out_file=${out_file%.txt}-only.txt
out_file=${BENCH_OUT:-$out_file}
perf_dir=${BENCH_PERF:-}

pids=() # started here, stopped in reverse order
names=()
tmp=
pg_started=false
t0=$SECONDS
declare -A fig=()
results=()
pair_ceiling=() # the accept goal's pairs (accept_pairs)
pair_accept=()

say()
{
	printf '# %s\n' "$*" >&2
}

die()
{
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

# figure NAME VALUE UNIT: one result line.
figure()
{
	fig[$1]=$2
	results+=("$1 $2 $3")
	printf '%s %s %s\n' "$1" "$2" "$3"
}

want()
{
	[[ $only == *",$1,"* ]]
}

# shellcheck disable=SC2317 # reached through the EXIT trap
finish()
{
	local rc=$? i
	trap - EXIT
	trap '' INT TERM HUP
	set +e
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		ag_stop "${pids[i]}" "${names[i]}" 15
	done
	wait 2>/dev/null
	if $pg_started; then
		pg_stop "$tmp/pg"
	fi
	if [[ -n $tmp ]]; then
		if ((rc != 0)) || [[ ${BENCH_KEEP:-} == 1 ]]; then
			say "logs and data kept in $tmp"
		else
			rm -rf -- "$tmp"
		fi
	fi
	say "took $((SECONDS - t0)) s"
	exit "$rc"
}
trap finish EXIT
trap 'say interrupted; exit 130' INT HUP
trap 'say "stopped: BENCH_TIMEOUT ($limit_s s) ran out"; exit 124' TERM



http_code()
{
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true
}

# sql [DB] SQL: run SQL in DB (asyncgate), print the unaligned result.
sql()
{
	local db=asyncgate
	if (($# == 2)); then
		db=$1
		shift
	fi
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}

# kv KEY LINE: the value of KEY=value in LINE.
kv()
{
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"
}

# calc EXPR: floating point arithmetic (awk), EXPR in awk syntax.
calc()
{
	awk "BEGIN { printf \"%s\", ($1) }" </dev/null
}

fmt1()
{
	awk -v v="$1" 'BEGIN { printf "%.1f", v }'
}

fmt0()
{
	awk -v v="$1" 'BEGIN { printf "%.0f", v }'
}

# median V...: the middle value (the lower of the two middle ones for an even count).
median()
{
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# pctl_file FILE: p50, p99 and max of the numbers in FILE (one a line), as "p50 p99 max n".
pctl_file()
{
	sort -g "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "0 0 0 0"; exit }
		i50 = int(0.50 * NR + 0.5); if (i50 < 1) i50 = 1
		i99 = int(0.99 * NR + 0.5); if (i99 < 1) i99 = 1
		printf "%.1f %.1f %.1f %d\n", v[i50], v[i99], v[NR], NR }'
}

# --- setup -----------------------------------------------------------------------------------

for b in asyncgate.fcgi asyncgate-drainer asyncgate-admin bench/fcgi_min bench/fcgi_min_insert \
	bench/ag_load bench/ag_query; do
	[[ -x build/$b ]] || die "build/$b is not built (make bench builds it)"
done
for c in wrk nginx lighttpd pgbench psql curl /usr/bin/time; do
	command -v "$c" >/dev/null 2>&1 || die "$c is not installed (scripts/deps.sh)"
done
[[ -n $PG_BINDIR ]] || die "PostgreSQL server programs not found (scripts/deps.sh)"
if [[ -n $perf_dir ]]; then
	command -v perf >/dev/null 2>&1 || die "BENCH_PERF needs perf (apt-get install linux-perf)"
	mkdir -p "$perf_dir"
	perf_dir=$(realpath "$perf_dir")
fi
mkdir -p "$bb"
# The whole run is bounded: a watchdog sends SIGTERM (the cleanup stops everything by PID).
(
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$limit_s" &
	sp=$!
	wait "$sp" && kill -TERM $$ 2>/dev/null
) </dev/null >/dev/null 2>&1 &
pids+=("$!")
names+=(watchdog)

pg_user_init
base=${TMPDIR:-/tmp}
if ((${#base} > 60)) || ! pg_as test -x "$base"; then
	base=/tmp
fi
tmp=$(mktemp -d "$base/ag-bench.XXXXXX")
chmod 0755 "$tmp"
mkdir -p "$tmp"/{run,log,tmp,www,nginx}
say "temp directory $tmp"

# PostgreSQL: settings an operator of a queue database would also use. synchronous_commit and
# fsync stay on (pg.sh): a 202 follows a durable commit. No fsync=off here (AG_PG_FAST unset).
export AG_PG_LOG=$tmp/log/pg.log
pg_init "$tmp/pg" || die "initdb failed"
cat >>"$tmp/pg/postgresql.conf" <<'CONF'

# make bench (bench/run.sh): throughput settings for a 2-core, 24 GB machine
shared_buffers = 2GB
effective_cache_size = 12GB
huge_pages = try
work_mem = 16MB
maintenance_work_mem = 1GB
max_connections = 300
wal_buffers = 64MB
max_wal_size = 16GB
min_wal_size = 2GB
checkpoint_timeout = 30min
checkpoint_completion_target = 0.9
random_page_cost = 1.1
effective_io_concurrency = 200
autovacuum_naptime = 10s
log_checkpoints = on
log_autovacuum_min_duration = 0
CONF
if [[ ${BENCH_PGSS:-} == 1 ]]; then
	printf "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_planning = on\n" \
		>>"$tmp/pg/postgresql.conf"
fi
pg_start "$tmp/pg" "$tmp/run" 5432 || die "PostgreSQL did not start"
pg_started=true
unset PGHOSTADDR PGSERVICE
export PGHOST=$tmp/run PGPORT=5432 PGDATABASE=asyncgate PGUSER=$PG_SUPERUSER
for db in asyncgate ceiling; do
	pg_createdb "$PGHOST" "$PGPORT" "$db" >/dev/null || die "createdb $db"
	PGDATABASE=$db sql/migrate.sh >/dev/null || die "migrations failed on $db"
	# UUIDv7 (as the handler makes them) for rows made in SQL: 48-bit ms time t, version 7,
	# variant 10, the rest from random() (cheaper than gen_random_uuid for millions of rows).
	sql "$db" "CREATE FUNCTION bench_uuid7(t timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS \$\$
		SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
			|| lpad(to_hex((random() * 4095)::int), 3, '0') || to_hex(8 + (random() * 3)::int)
			|| lpad(to_hex((random() * 4095)::int), 3, '0')
			|| lpad(to_hex((random() * 281474976710655)::bigint), 12, '0'))::uuid \$\$"
done
if [[ ${BENCH_PGSS:-} == 1 ]]; then
	sql "CREATE EXTENSION pg_stat_statements" >/dev/null
fi
pg_settings=$(sql "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name)
	FROM pg_settings WHERE name IN ('shared_buffers', 'wal_buffers', 'max_wal_size',
	'synchronous_commit', 'fsync', 'full_page_writes', 'wal_level', 'checkpoint_timeout',
	'work_mem', 'maintenance_work_mem', 'effective_cache_size', 'huge_pages', 'max_connections',
	'autovacuum_naptime', 'commit_delay', 'random_page_cost')")
say "PostgreSQL $(sql 'SHOW server_version'): $pg_settings"

# The nginx target: 204 to everything; /lat and /def log arrival time and bench headers.
ng_port=$(free_port) || die "no free port"
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $tmp/run/nginx.pid;
error_log $tmp/log/nginx-error.log warn;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	keepalive_requests 10000000;
	keepalive_timeout 300s;
	log_format bench '\$msec \$http_async_call_id \$http_async_attempt \$http_x_bench_sent \$http_x_bench_due';
	server {
		listen 127.0.0.1:$ng_port backlog=4096;
		location / { return 204; }
		location /lat { access_log $tmp/log/lat.log bench; return 204; }
		location /def { access_log $tmp/log/def.log bench; return 204; }
	}
}
CONF
setsid nginx -p "$tmp/nginx/" -e "$tmp/log/nginx-error.log" -c "$tmp/nginx/nginx.conf" \
	</dev/null >>"$tmp/log/nginx.out" 2>&1 &
pids+=("$!")
names+=(nginx)
for ((i = 0; i < 50; i++)); do
	[[ $(http_code "http://127.0.0.1:$ng_port/") == 204 ]] && break
	ag_alive "${pids[-1]}" || die "nginx exited: $(tail -n 5 "$tmp/log/nginx-error.log")"
	sleep 0.1
done
[[ $(http_code "http://127.0.0.1:$ng_port/") == 204 ]] || die "nginx target does not answer"
target=http://127.0.0.1:$ng_port
ng_pid=${pids[-1]}
say "nginx target $target (pid ${pids[-1]})"

# asyncgate's configuration: the sample, loopback targets allowed; one with auth = none (the
# figures comparable with the ceilings, which authenticate nothing) and one with API keys.
for auth in none keys; do
	{
		cat conf/asyncgate.conf
		printf '\n# make bench overrides\nallow_targets = 127.0.0.0/8\nauth = %s\n' "$auth"
		printf 'handler_threads = %s\n' "$ag_threads"
	} >"$tmp/asyncgate-$auth.conf"
done
export ASYNCGATE_CONF=$tmp/asyncgate-none.conf
api_key=$(ASYNCGATE_CONF=$tmp/asyncgate-keys.conf build/asyncgate-admin key create bench \
	--function '*' --url '*' --note 'make bench' 2>>"$tmp/log/admin.log") ||
	die "asyncgate-admin key create failed"

lighttpd_port=

# lighttpd_start BIN CONF DB [N]: lighttpd (conf/lighttpd.conf) spawning N (BENCH_PROCS)
# processes of BIN with ASYNCGATE_CONF=CONF and PGDATABASE=DB, on a free port; sets lighttpd_port.
lighttpd_start()
{
	local bin=$1 conf=$2 db=$3 n=${4:-$procs} i code
	lighttpd_port=$(free_port) || die "no free port"
	rm -f "$tmp"/run/asyncgate.sock-*
	ASYNCGATE_CONF=$conf PGDATABASE=$db AG_LISTEN_PORT=$lighttpd_port AG_VAR=$tmp \
		AG_BIN=$repo/build/$bin AG_PROCS=$n \
		setsid lighttpd -D -f "$repo/conf/lighttpd.conf" </dev/null >>"$tmp/log/error.log" 2>&1 &
	lighttpd_pid=$!
	pids+=("$lighttpd_pid")
	names+=(lighttpd)
	for ((i = 0; i < 100; i++)); do
		ag_alive "$lighttpd_pid" || die "lighttpd exited; see $tmp/log/error.log"
		code=$(http_code "http://127.0.0.1:$lighttpd_port/v1/health")
		[[ $code != 000 ]] && break
		sleep 0.1
	done
	[[ $code != 000 ]] || die "lighttpd does not answer on port $lighttpd_port"
	say "lighttpd on port $lighttpd_port with $n x $bin (pid $lighttpd_pid)"
}

lighttpd_stop()
{
	[[ -n $lighttpd_pid ]] || return 0
	ag_stop "$lighttpd_pid" lighttpd 15
	wait "$lighttpd_pid" 2>/dev/null || true
	lighttpd_pid=
}

# wrk_run NAME URL [ENV...]: wrk at conns connections for secs seconds with bench/wrk.lua; sets
# w_rps, w_p50, w_p99, w_req and w_bad (non-2xx answers and socket errors).
wrk_run()
{
	local name=$1 url=$2 line
	shift 2
	env "$@" wrk -t 2 -c "$conns" -d "${secs}s" --timeout 10s -s bench/wrk.lua "$url" \
		>"$tmp/log/wrk-$name.out" 2>&1 || die "wrk $name failed: $(tail -n 3 "$tmp/log/wrk-$name.out")"
	line=$(grep '^wrk_result' "$tmp/log/wrk-$name.out") || die "wrk $name: no result"
	w_rps=$(fmt0 "$(kv rps "$line")")
	w_p50=$(kv p50_ms "$line")
	w_p99=$(kv p99_ms "$line")
	w_req=$(kv requests "$line")
	w_bad=$(($(kv non2xx "$line") + $(kv sock_errors "$line")))
	((w_bad == 0)) || say "WARNING: wrk $name: $w_bad requests failed (non-2xx or socket errors)"
}

# tree_ms PID: CPU time (user + system, ms) used so far by PID and its descendants, those that
# exited and were waited for included (cutime, cstime), from /proc.
tree_ms()
{
	[[ ${1:-} =~ ^[1-9][0-9]*$ ]] || {
		printf '0'
		return 0
	}
	# (a process may end between the glob and cat: that is not an error here)
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" -v hz="$hz" '{
		pid = $1
		i = match($0, /\) [A-Za-z] /)
		if (i == 0) next
		n = split(substr($0, i + 2), f, " ")
		ppid[pid] = f[2]
		t[pid] = f[12] + f[13] + f[14] + f[15]
	} END {
		s = 0
		for (p in t) {
			q = p
			for (d = 0; d < 64 && q != "" && q != 0 && q != root; d++) q = ppid[q]
			if (q == root) s += t[p]
		}
		printf "%d", s * 1000 / hz
	}'
}

# machine_ms: busy and total CPU time of the whole machine so far (ms), from /proc/stat.
machine_ms()
{
	awk -v hz="$hz" '$1 == "cpu" {
		busy = $2 + $3 + $4 + $7 + $8 + $9
		printf "%d %d\n", busy * 1000 / hz, (busy + $5 + $6) * 1000 / hz
		exit
	}' /proc/stat
}

# cpu_mark: note the CPU time used so far by our servers and by the machine; cpu_report reads
# the difference.
cpu_mark()
{
	c0_pg=$(tree_ms "$PG_PID")
	c0_web=$(tree_ms "$lighttpd_pid")
	c0_ng=$(tree_ms "$ng_pid")
	read -r c0_busy c0_all < <(machine_ms)
}

# cpu_report NAME CALLS [DRAINER_MS [target]]: server-side CPU per call since cpu_mark (PostgreSQL; the
# web server and its FastCGI processes; nginx as the target; a drainer whose CPU time is given),
# as figures NAME_cpu_* in us/call, NAME_cpu_bound (the rate at which the server side alone,
# target excluded (with "target": the target alone), would keep every core busy: an estimate for a machine shared with other work)
# and a # line with the machine's split.
cpu_report()
{
	local name=$1 calls=$2 drn=${3:-0} pg web ng busy all server
	((calls > 0)) || return 0
	pg=$(($(tree_ms "$PG_PID") - c0_pg))
	if ((pg < 0)); then
		# a backend that ended around cpu_mark can be missed or counted twice; rare
		say "WARNING: $name: PostgreSQL CPU time went backwards ($pg ms); counted as 0"
		pg=0
	fi
	web=$(($(tree_ms "$lighttpd_pid") - c0_web))
	ng=$(($(tree_ms "$ng_pid") - c0_ng))
	read -r busy all < <(machine_ms)
	busy=$((busy - c0_busy))
	all=$((all - c0_all))
	((all > 0)) || all=1
	server=$((pg + web + drn))
	[[ ${4:-} == target ]] && server=$ng
	figure "${name}_cpu_pg" "$(fmt0 "$(calc "$pg * 1000 / $calls")")" us/call
	((web > 0)) && figure "${name}_cpu_web" "$(fmt0 "$(calc "$web * 1000 / $calls")")" us/call
	((drn > 0)) && figure "${name}_cpu_drainer" "$(fmt0 "$(calc "$drn * 1000 / $calls")")" us/call
	((ng > 0)) && figure "${name}_cpu_target" "$(fmt0 "$(calc "$ng * 1000 / $calls")")" us/call
	((server > 0)) && figure "${name}_cpu_bound" \
		"$(fmt0 "$(calc "$(nproc) * 1000000 / ($server * 1000 / $calls)")")" calls/s
	say "cpu during $name: postgres $((pg * 100 / all))%, web server $((web * 100 / all))%," \
		"drainer $((drn * 100 / all))%, nginx $((ng * 100 / all))%," \
		"all else (load generator, other work) $(((busy - pg - web - ng - drn) * 100 / all))%," \
		"idle $(((all - busy) * 100 / all))% of $(nproc) cores"
}

# waits_start NAME: sample what asyncgate's PostgreSQL sessions wait on (pg_stat_activity, every
# 100 ms, one psql session) until waits_stop, which prints the most frequent as a # line:
# "CPU" is a session running, "IO:WALSync" one waiting for its commit to reach the disk, and so on.
waits_start()
{
	waits_name=$1
	printf '%s\n' "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')
		FROM pg_stat_activity WHERE application_name = 'asyncgate' AND state = 'active'" \
		'\watch 0.1' | psql -X -q -At -d asyncgate >"$tmp/log/waits-$1.txt" 2>/dev/null &
	waits_pid=$!
}

waits_stop()
{
	local top
	kill "$waits_pid" 2>/dev/null || true
	wait "$waits_pid" 2>/dev/null || true
	top=$(grep -v '^$' "$tmp/log/waits-$waits_name.txt" | sort | uniq -c | sort -rn | head -6 |
		awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')
	say "waits during $waits_name (samples of active asyncgate sessions): $top"
}

# reset_queue: an empty queue and audit log, flushed to disk, for the next measurement.
reset_queue()
{
	sql "TRUNCATE calls, attempts, attempt_stats, idempotency_keys" >/dev/null
	sql "VACUUM ANALYZE calls_live" >/dev/null
	sql "CHECKPOINT" >/dev/null
	if [[ ${BENCH_PGSS:-} == 1 ]]; then
		sql "SELECT pg_stat_statements_reset()" >/dev/null
	fi
}

# pgss STEP: with BENCH_PGSS=1, the statements that took the most time since the last call
# (calls, mean planning and execution ms, total ms), into the log directory and as # lines.
pgss()
{
	[[ ${BENCH_PGSS:-} == 1 ]] || return 0
	sql "SELECT calls, plans, round(mean_plan_time::numeric, 3) AS plan_ms,
			round(mean_exec_time::numeric, 3) AS exec_ms,
			round((total_plan_time + total_exec_time)::numeric) AS total_ms,
			shared_blks_read AS blks_read,
			regexp_replace(left(query, 90), '\s+', ' ', 'g')
		FROM pg_stat_statements ORDER BY total_plan_time + total_exec_time DESC LIMIT 8" \
		>"$tmp/log/pgss-$1.txt"
	sed "s/^/# pgss $1: /" "$tmp/log/pgss-$1.txt" >&2
	sql "SELECT pg_stat_statements_reset()" >/dev/null
}

# insert_calls N PATH [STATE] [WHEN] [BODY_BYTES]: N calls to target PATH, in one INSERT.
insert_calls()
{
	local n=$1 path=$2 state=${3:-queued} when=${4:-"now()"} bytes=${5:-1000}
	sql "INSERT INTO calls (id, state, created_at, not_before, target, method, headers, body,
			body_type, correlation_id, max_attempts, retry_initial_ms, retry_max_ms,
			timeout_ms, attempts, finished_at)
		SELECT bench_uuid7(t), '$state', t, t, '$target$path', 'POST',
			'{\"Content-Type\": \"application/json\"}',
			convert_to('{\"order\": ' || g || ', \"pad\": \"' || repeat('x', $bytes - 30) || '\"}', 'UTF8'),
			'json', 'bench-' || g, 10, 1000, 3600000, 30000,
			CASE WHEN '$state' = 'succeeded' THEN 1 ELSE 0 END,
			CASE WHEN '$state' = 'succeeded' THEN t END
		FROM generate_series(1, $n) AS g, LATERAL (SELECT $when AS t) AS w" >/dev/null
}

# drainer_once NAME CONCURRENCY: asyncgate-drainer --once; sets d_rate (deliveries/s by its own
# clock), d_ok (succeeded), d_ms and d_rss (peak RSS, MB).
drainer_once()
{
	local name=$1 c=$2 line perf=()
	if [[ -n $perf_dir && $name == drain-c256 ]]; then
		perf=(perf record --call-graph "dwarf,16384" -F 499 -o "$perf_dir/drainer-c256.data" --)
	fi
	/usr/bin/time -f 'rss_kb=%M wall_s=%e cpu_s=%U+%S' -o "$tmp/log/$name.time" \
		"${perf[@]}" build/asyncgate-drainer --once --concurrency "$c" --max-seconds 600 \
		--name "$name" >"$tmp/log/$name.out" 2>>"$tmp/log/$name.log" ||
		die "drainer $name failed: $(tail -n 3 "$tmp/log/$name.log")"
	line=$(grep 'claimed=' "$tmp/log/$name.out") || die "drainer $name: no summary"
	d_ok=$(kv succeeded "$line")
	d_ms=$(kv ms "$line")
	d_rate=$(fmt0 "$(calc "$d_ok * 1000 / ($d_ms > 0 ? $d_ms : 1)")")
	d_rss=$(fmt1 "$(calc "$(kv rss_kb "$(cat "$tmp/log/$name.time")") / 1024")")
	d_cpu_ms=$(fmt0 "$(calc "($(kv cpu_s "$(cat "$tmp/log/$name.time")")) * 1000")")
}

# claim_ms: the average time of one claim of 256 due calls (the drainer's drain_claim
# statement, rolled back so that every run finds the same rows), one client, 5 s.
claim_ms()
{
	local f=$tmp/claim.sql
	{
		printf 'BEGIN;\n'
		# shellcheck disable=SC2016 # $1..$3 are the statement's parameters, for sed
		build/bench/ag_query drain_claim | tr '\n' ' ' |
			sed 's/\$1::integer/256/g; s/\$2/'"'bench-claim'"'/g; s/\$3::bigint/30000::bigint/g'
		printf ';\nROLLBACK;\n'
	} >"$f"
	pgbench -n -c 1 -T 5 -f "$f" asyncgate >"$tmp/log/claim.out" 2>&1 ||
		die "pgbench claim failed: $(tail -n 3 "$tmp/log/claim.out")"
	sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$tmp/log/claim.out"
}

# live_size: calls_live heap and its indexes, MB, as "table indexes".
live_size()
{
	sql "SELECT round(pg_table_size('calls_live') / 1048576.0, 1) || ' ' ||
		round(pg_indexes_size('calls_live') / 1048576.0, 1)"
}

# follow_start NAME: a --follow drainer; sets follow_pid.
follow_start()
{
	setsid build/asyncgate-drainer --follow --name "$1" </dev/null >>"$tmp/log/$1.log" 2>&1 &
	follow_pid=$!
	pids+=("$follow_pid")
	names+=("drainer $1")
	sleep 0.5
	ag_alive "$follow_pid" || die "drainer $1 exited: $(tail -n 3 "$tmp/log/$1.log")"
}

follow_stop()
{
	ag_stop "$follow_pid" "drainer" 30
	wait "$follow_pid" 2>/dev/null || true
}

# wait_lines FILE N SECONDS: until FILE has N lines or SECONDS passed.
wait_lines()
{
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		(($(wc -l <"$1" 2>/dev/null || echo 0) >= $2)) && return 0
		sleep 0.1
	done
	return 1
}

say "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)," \
	"$(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "sizes: $conns connections, ${secs} s runs, $procs FastCGI processes (ceilings), asyncgate $ag_procs x $ag_threads threads, drain $drain_n calls"

# --- ceilings --------------------------------------------------------------------------------

if want ceiling; then
	say "step ceiling"
	# pgbench: one INSERT of a 1 KB call row per transaction, as fcgi_min_insert does it.
	pad=$(printf '%*s' 970 '' | tr ' ' x)
	cat >"$tmp/ceiling-insert.sql" <<SQL
INSERT INTO calls (id, state, client, not_before, target, method, headers, body, body_type, max_attempts, retry_initial_ms, retry_max_ms, timeout_ms) VALUES (bench_uuid7(clock_timestamp()), 'queued', '', now(), 'http://127.0.0.1:9/bench', 'POST', '{"Content-Type": "application/json"}', convert_to('{"order": 1, "pad": "$pad"}', 'UTF8'), 'json', 10, 1000, 3600000, 30000);
SQL
	sql ceiling "CHECKPOINT" >/dev/null
	cpu_mark
	pgbench -n -M prepared -c "$conns" -j 2 -T "$secs" -f "$tmp/ceiling-insert.sql" ceiling \
		>"$tmp/log/pgbench.out" 2>&1 || die "pgbench failed: $(tail -n 3 "$tmp/log/pgbench.out")"
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$tmp/log/pgbench.out")
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$tmp/log/pgbench.out")
	figure ceiling_insert "$(fmt0 "$tps")" tx/s
	figure ceiling_insert_latency_avg "$lat" ms
	cpu_report ceiling_insert "$(sql ceiling "SELECT count(*) FROM calls")"
	sql ceiling "TRUNCATE calls" >/dev/null

	lighttpd_start bench/fcgi_min "$tmp/asyncgate-none.conf" ceiling
	cpu_mark
	wrk_run fcgi "http://127.0.0.1:$lighttpd_port" BENCH_TARGET="$target/hook"
	figure ceiling_fcgi "$w_rps" req/s
	figure ceiling_fcgi_p50 "$w_p50" ms
	figure ceiling_fcgi_p99 "$w_p99" ms
	cpu_report ceiling_fcgi "$w_req"
	lighttpd_stop

	sql ceiling "CHECKPOINT" >/dev/null
	lighttpd_start bench/fcgi_min_insert "$tmp/asyncgate-none.conf" ceiling
	cpu_mark
	wrk_run fcgi-insert "http://127.0.0.1:$lighttpd_port" BENCH_TARGET="$target/hook"
	rows=$(sql ceiling "SELECT count(*) FROM calls")
	((rows >= w_req - w_bad)) || say "WARNING: fcgi_min_insert: $rows rows for $w_req answers"
	figure ceiling_fcgi_insert "$w_rps" req/s
	pair_ceiling=("$w_rps")
	figure ceiling_fcgi_insert_p50 "$w_p50" ms
	figure ceiling_fcgi_insert_p99 "$w_p99" ms
	cpu_report ceiling_fcgi_insert "$rows"
	lighttpd_stop
	sql ceiling "TRUNCATE calls" >/dev/null

	cpu_mark
	wrk_run target "$target" BENCH_MODE=raw
	figure ceiling_target "$w_rps" req/s
	figure ceiling_target_p99 "$w_p99" ms
	cpu_report ceiling_target "$w_req" 0 target
fi

# --- asyncgate: accept -----------------------------------------------------------------------

# accept_pairs: with the ceiling step run, pairs 2..BENCH_PAIRS of the accept goal: the
# ceiling's responder, then asyncgate, back to back (the first pair is the ceiling step's
# figure and the accept run just made). The speed of a shared guest drifts by tens of percent
# within minutes; two figures taken side by side are compared, not minutes apart.
accept_pairs()
{
	local p
	want ceiling || return 0
	for ((p = 2; p <= pairs; p++)); do
		lighttpd_stop
		sql ceiling "TRUNCATE calls" >/dev/null
		sql ceiling "CHECKPOINT" >/dev/null
		lighttpd_start bench/fcgi_min_insert "$tmp/asyncgate-none.conf" ceiling
		wrk_run "fcgi-insert-$p" "http://127.0.0.1:$lighttpd_port" BENCH_TARGET="$target/hook"
		pair_ceiling+=("$w_rps")
		lighttpd_stop
		sql ceiling "TRUNCATE calls" >/dev/null
		lighttpd_start asyncgate.fcgi "$tmp/asyncgate-none.conf" asyncgate "$ag_procs"
		ag_url=http://127.0.0.1:$lighttpd_port
		reset_queue
		wrk_run "accept-call-$p" "$ag_url" BENCH_MODE=call BENCH_TARGET="$target/hook"
		pair_accept+=("$w_rps")
	done
	reset_queue
}

need_lighttpd=false
for s in accept latency deferred; do
	want $s && need_lighttpd=true
done
if $need_lighttpd; then
	lighttpd_start asyncgate.fcgi "$tmp/asyncgate-none.conf" asyncgate "$ag_procs"
fi
ag_url=http://127.0.0.1:$lighttpd_port

if want accept; then
	say "step accept (auth = none)"
	for mode in call transparent batch; do
		reset_queue
		cpu_mark
		if [[ -n $perf_dir && $mode == call ]]; then
			perf record -a -g -o "$perf_dir/accept.data" -- sleep "$secs" \
				>"$tmp/log/perf-accept.out" 2>&1 &
			perf_pid=$!
		fi
		waits_start "accept-$mode"
		wrk_run "accept-$mode" "$ag_url" BENCH_MODE=$mode BENCH_TARGET="$target/hook"
		waits_stop
		if [[ -n $perf_dir && $mode == call ]]; then
			wait "$perf_pid" || say "WARNING: perf record of the handlers failed"
		fi
		pgss "accept-$mode"
		rows=$(sql "SELECT count(*) FROM calls")
		case $mode in
		call)
			((rows >= w_req - w_bad)) || say "WARNING: accept: $rows rows for $w_req answers"
			figure accept_rps "$w_rps" req/s
			figure accept_p50 "$w_p50" ms
			figure accept_p99 "$w_p99" ms
			cpu_report accept "$rows"
			pair_accept=("$w_rps")
			accept_pairs
			;;
		transparent)
			figure accept_transparent_rps "$w_rps" req/s
			figure accept_transparent_p50 "$w_p50" ms
			figure accept_transparent_p99 "$w_p99" ms
			cpu_report accept_transparent "$rows"
			;;
		batch)
			figure accept_batch100_rps "$w_rps" req/s
			figure accept_batch100_calls "$((w_rps * 100))" calls/s
			figure accept_batch100_p50 "$w_p50" ms
			figure accept_batch100_p99 "$w_p99" ms
			cpu_report accept_batch100 "$rows"
			;;
		esac
	done

	say "step accept (auth = keys: one key lookup per request)"
	lighttpd_stop
	lighttpd_start asyncgate.fcgi "$tmp/asyncgate-keys.conf" asyncgate "$ag_procs"
	reset_queue
	cpu_mark
	wrk_run accept-key "http://127.0.0.1:$lighttpd_port" BENCH_MODE=call \
		BENCH_TARGET="$target/hook" BENCH_KEY="$api_key"
	pgss accept-key
	figure accept_key_rps "$w_rps" req/s
	figure accept_key_p50 "$w_p50" ms
	figure accept_key_p99 "$w_p99" ms
	cpu_report accept_key "$(sql "SELECT count(*) FROM calls")"
	lighttpd_stop
	if want latency || want deferred; then
		lighttpd_start asyncgate.fcgi "$tmp/asyncgate-none.conf" asyncgate "$ag_procs"
		ag_url=http://127.0.0.1:$lighttpd_port
	fi
fi

# --- asyncgate: drain ------------------------------------------------------------------------

rss_max=0
note_rss()
{
	rss_max=$(calc "$1 > $rss_max ? $1 : $rss_max")
}

if want drain; then
	say "step drain ($drain_n due calls to the nginx target)"
	for c in 64 256; do
		reset_queue
		insert_calls "$drain_n" /hook
		sql "VACUUM ANALYZE calls" >/dev/null
		sql "CHECKPOINT" >/dev/null
		if ((c == 256)); then
			figure claim256_ms "$(claim_ms)" ms
		fi
		[[ ${BENCH_PGSS:-} == 1 ]] && sql "SELECT pg_stat_statements_reset()" >/dev/null
		cpu_mark
		waits_start "drain-c$c"
		drainer_once "drain-c$c" "$c"
		waits_stop
		pgss "drain-c$c"
		((d_ok == drain_n)) || say "WARNING: drain c$c: $d_ok of $drain_n succeeded"
		figure "drain_c$c" "$d_rate" deliveries/s
		figure "drain_c${c}_rss" "$d_rss" MB
		cpu_report "drain_c$c" "$d_ok" "$d_cpu_ms"
		note_rss "$d_rss"
	done

	reset_queue
	insert_calls "$drain_n" /hook
	sql "VACUUM ANALYZE calls" >/dev/null
	sql "CHECKPOINT" >/dev/null
	cpu_mark
	s0=$(date +%s.%N)
	for k in 1 2; do
		/usr/bin/time -f 'rss_kb=%M cpu_s=%U+%S' -o "$tmp/log/drain-two-$k.time" \
			build/asyncgate-drainer --once --concurrency 256 --max-seconds 600 \
			--name "drain-two-$k" >"$tmp/log/drain-two-$k.out" 2>>"$tmp/log/drain-two-$k.log" &
		two[k]=$!
	done
	wait "${two[1]}" || die "drainer drain-two-1 failed"
	wait "${two[2]}" || die "drainer drain-two-2 failed"
	s1=$(date +%s.%N)
	ok1=$(kv succeeded "$(cat "$tmp/log/drain-two-1.out")")
	ok2=$(kv succeeded "$(cat "$tmp/log/drain-two-2.out")")
	((ok1 + ok2 == drain_n)) || say "WARNING: two drainers: $((ok1 + ok2)) of $drain_n succeeded"
	figure drain_two_c256 "$(fmt0 "$(calc "($ok1 + $ok2) / ($s1 - $s0)")")" deliveries/s
	figure drain_two_split "$ok1/$ok2" calls
	cpu_report drain_two_c256 "$((ok1 + ok2))" "$(fmt0 "$(calc "($(kv cpu_s \
		"$(cat "$tmp/log/drain-two-1.time")") + $(kv cpu_s "$(cat "$tmp/log/drain-two-2.time")")) * 1000")")"
	for k in 1 2; do
		r=$(fmt1 "$(calc "$(kv rss_kb "$(cat "$tmp/log/drain-two-$k.time")") / 1024")")
		note_rss "$r"
	done
	figure drain_rss_max "$rss_max" MB
fi

# --- asyncgate: latency at a steady offered rate ---------------------------------------------

if want latency; then
	say "step latency ($lat_rate calls/s offered for $lat_secs s, --follow drainer)"
	reset_queue
	follow_start latency
	: >"$tmp/log/lat.log"
	waits_start latency
	line=$(build/bench/ag_load pace --url "$ag_url/v1/calls" --target "$target/lat" \
		--rate "$lat_rate" --seconds "$lat_secs" 2>>"$tmp/log/ag_load.log") ||
		say "WARNING: ag_load pace: some requests failed: $line"
	say "ag_load: $line"
	ok=$(kv ok "$line")
	wait_lines "$tmp/log/lat.log" "$ok" 60 || say "WARNING: latency: not every call arrived in 60 s"
	waits_stop
	rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$follow_pid/status")
	follow_stop
	pgss latency
	awk '$3 == 1 && $4 != "-" { printf "%.3f\n", ($1 - $4) * 1000 }' "$tmp/log/lat.log" \
		>"$tmp/log/lat.ms"
	read -r p50 p99 max n < <(pctl_file "$tmp/log/lat.ms")
	figure latency_offered "$lat_rate" calls/s
	figure latency_accepted "$(fmt0 "$(kv rate "$line")")" calls/s
	figure latency_accept_p99 "$(kv accept_p99_ms "$line")" ms
	figure latency_delivered "$n" calls
	figure latency_p50 "$p50" ms
	figure latency_p99 "$p99" ms
	figure latency_max "$max" ms
	figure latency_follow_rss "$rss" MB
fi

# --- asyncgate: deferred calls ---------------------------------------------------------------

if want deferred; then
	say "step deferred ($def_n calls due over $((def_spread_ms / 1000)) s, --follow drainer)"
	reset_queue
	follow_start deferred
	: >"$tmp/log/def.log"
	line=$(build/bench/ag_load deferred --url "$ag_url/v1/calls" --target "$target/def" \
		--count "$def_n" --spread-ms "$def_spread_ms" --start-ms "$def_start_ms" \
		--batch 1000 2>>"$tmp/log/ag_load.log") ||
		say "WARNING: ag_load deferred: some requests failed: $line"
	say "ag_load: $line"
	inserted_by=$(kv inserted_by "$line")
	first_due=$(kv first_due "$line")
	last_due=$(kv last_due "$line")
	if awk -v a="$inserted_by" -v b="$first_due" 'BEGIN { exit !(a > b) }'; then
		say "WARNING: deferred: inserting ended $(calc "$inserted_by - $first_due") s after the first due time"
	fi
	left=$(calc "$last_due - $(date +%s.%N) + 15")
	wait_lines "$tmp/log/def.log" "$(kv ok "$line")" "$(fmt0 "$left")" ||
		say "WARNING: deferred: not every call arrived 15 s after the last due time"
	follow_stop
	awk '$3 == 1 && $5 != "-" { printf "%.3f\n", ($1 - $5) * 1000 }' "$tmp/log/def.log" \
		>"$tmp/log/def.ms"
	read -r p50 p99 max n < <(pctl_file "$tmp/log/def.ms")
	early=$(awk '$1 < 0' "$tmp/log/def.ms" | wc -l)
	figure deferred_delivered "$n" calls
	figure deferred_early "$early" calls
	figure deferred_lateness_p50 "$p50" ms
	figure deferred_lateness_p99 "$p99" ms
	figure deferred_lateness_max "$max" ms
fi
lighttpd_stop

# --- scale: the same with 10 M finished and 1 M future calls in the database ------------------

if want scale; then
	say "step scale ($scale_done finished + $scale_future future calls; a $scale_run-call run)"
	reset_queue
	g0=$SECONDS
	# Finished calls of the last 7 days (small bodies: 256 bytes, to keep the generation within
	# the time budget), each with its one attempt; future calls due over the next 30 days.
	done_from="now() - interval '7 days'"
	insert_calls "$scale_done" /hook succeeded \
		"$done_from + (g * interval '7 days' / $scale_done)" 256
	sql "INSERT INTO attempts (call_id, attempt, started_at, duration_ms, status, response_size,
			drainer)
		SELECT id, 1, finished_at, 1, 204, 0, 'bench' FROM calls_done" >/dev/null
	insert_calls "$scale_future" /hook queued \
		"now() + interval '1 day' + (g * interval '29 days' / $scale_future)" 1000
	sql "VACUUM ANALYZE" >/dev/null
	sql "CHECKPOINT" >/dev/null
	figure scale_generate_s "$((SECONDS - g0))" s
	say "calls_done $(sql "SELECT pg_size_pretty(pg_total_relation_size('calls_done'))"), attempts $(sql "SELECT pg_size_pretty(pg_total_relation_size('attempts'))")"
	# The queue's size as generated (1 M future calls, vacuumed), before any call goes through.
	read -r tb ib < <(live_size)
	figure scale_live_table_before "$tb" MB
	figure scale_live_indexes_before "$ib" MB

	insert_calls "$drain_n" /hook
	sql "VACUUM ANALYZE calls_live" >/dev/null
	sql "CHECKPOINT" >/dev/null
	figure scale_claim256_ms "$(claim_ms)" ms
	cpu_mark
	waits_start scale-drain-c256
	drainer_once scale-drain-c256 256
	waits_stop
	((d_ok == drain_n)) || say "WARNING: scale drain: $d_ok of $drain_n succeeded"
	figure scale_drain_c256 "$d_rate" deliveries/s
	figure scale_drain_c256_rss "$d_rss" MB
	cpu_report scale_drain_c256 "$d_ok" "$d_cpu_ms"

	# The 1 M-call run: chunks of due calls inserted whenever the live queue runs low, drained
	# by a --follow drainer at concurrency 256, as a steady queue would be. The "after" sizes
	# count the drain above too (drain_n more calls through the queue).
	follow_start scale-run
	r0=$SECONDS
	sent=0
	while ((sent < scale_run)); do
		if ((SECONDS - r0 >= scale_run_max_s)); then
			say "WARNING: scale run: stopped feeding after $scale_run_max_s s, at $sent calls"
			break
		fi
		due=$(sql "SELECT count(*) FROM calls_live WHERE not_before <= now()")
		if ((due < scale_chunk)); then
			insert_calls "$scale_chunk" /hook
			sent=$((sent + scale_chunk))
		else
			sleep 0.5
		fi
	done
	while (($(sql "SELECT count(*) FROM calls_live WHERE not_before <= now()") > 0)); do
		sleep 0.5
		((SECONDS - r0 < scale_run_max_s + 300)) || die "scale run: the queue did not drain"
	done
	run_s=$((SECONDS - r0))
	follow_stop
	figure scale_run_calls "$sent" calls
	figure scale_run_rate "$(fmt0 "$(calc "$sent / ($run_s > 0 ? $run_s : 1)")")" deliveries/s
	read -r ta ia < <(live_size)
	figure scale_live_table_after "$ta" MB
	figure scale_live_indexes_after "$ia" MB
	sql "VACUUM calls_live" >/dev/null
	read -r tv iv < <(live_size)
	figure scale_live_table_after_vacuum "$tv" MB
	figure scale_live_indexes_after_vacuum "$iv" MB
fi

# --- ratios against the goals of issue 6, and the summary ------------------------------------

goals_met=0
goals_all=0
missed=()

# ratio NAME VALUE OP GOAL [UNIT]: one ratio or goal line; counts the goal.
ratio()
{
	local name=$1 v=$2 op=$3 goal=$4 unit=${5:-} ok
	ok=$(awk -v v="$v" -v g="$goal" -v op="$op" \
		'BEGIN { print (op == ">=" ? v >= g : v <= g) ? "met" : "MISSED" }')
	goals_all=$((goals_all + 1))
	if [[ $ok == met ]]; then
		goals_met=$((goals_met + 1))
	else
		missed+=("$name")
	fi
	results+=("ratio $name $v$unit (goal $op $goal$unit) $ok")
	printf 'ratio %s %s%s (goal %s %s%s) %s\n' "$name" "$v" "$unit" "$op" "$goal" "$unit" "$ok"
}

have()
{
	local k
	for k in "$@"; do
		[[ -n ${fig[$k]:-} ]] || return 1
	done
}

div()
{
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'
}

if have accept_rps ceiling_fcgi_insert; then
	if ((${#pair_accept[@]} > 1)); then
		pr=()
		for ((i = 0; i < ${#pair_accept[@]}; i++)); do
			pr+=("$(div "${pair_accept[i]}" "${pair_ceiling[i]}")")
		done
		say "accept pairs (asyncgate / ceiling_fcgi_insert, req/s): $(for ((i = 0; i < ${#pr[@]}; i++)); do
			printf '%s/%s=%s ' "${pair_accept[i]}" "${pair_ceiling[i]}" "${pr[i]}"
		done)"
		figure accept_rps_median "$(median "${pair_accept[@]}")" req/s
		figure ceiling_fcgi_insert_median "$(median "${pair_ceiling[@]}")" req/s
		ratio accept/ceiling_fcgi_insert "$(median "${pr[@]}")" '>=' 2.0
	else
		ratio accept/ceiling_fcgi_insert "$(div "${fig[accept_rps]}" "${fig[ceiling_fcgi_insert]}")" '>=' 2.0
	fi
fi
if have accept_key_rps ceiling_fcgi_insert; then
	printf 'ratio %s %s (auth = keys; no goal)\n' accept_key/ceiling_fcgi_insert \
		"$(div "${fig[accept_key_rps]}" "${fig[ceiling_fcgi_insert]}")"
fi
if have accept_rps ceiling_insert; then
	printf 'ratio %s %s (no goal)\n' accept/ceiling_insert \
		"$(div "${fig[accept_rps]}" "${fig[ceiling_insert]}")"
fi
if have ceiling_fcgi_insert ceiling_fcgi; then
	printf 'ratio %s %s (no goal)\n' ceiling_fcgi_insert/ceiling_fcgi \
		"$(div "${fig[ceiling_fcgi_insert]}" "${fig[ceiling_fcgi]}")"
fi
have accept_p99 && ratio accept_p99 "${fig[accept_p99]}" '<=' 25 ' ms'
have drain_c256 && ratio drain_c256 "${fig[drain_c256]}" '>=' 10000 ' deliveries/s'
if have drain_c256 ceiling_target; then
	ratio drain_c256/ceiling_target "$(div "${fig[drain_c256]}" "${fig[ceiling_target]}")" '>=' 0.17
fi
have drain_rss_max && ratio drain_rss_max "${fig[drain_rss_max]}" '<=' 64 ' MB'
have latency_p99 && ratio latency_p99 "${fig[latency_p99]}" '<=' 50 ' ms'
have deferred_lateness_p99 && ratio deferred_lateness_p99 "${fig[deferred_lateness_p99]}" '<=' 1000 ' ms'
if have scale_drain_c256 drain_c256; then
	ratio scale_drain_c256/drain_c256 "$(div "${fig[scale_drain_c256]}" "${fig[drain_c256]}")" '>=' 0.90
fi
if have scale_live_table_before scale_live_table_after; then
	ratio scale_live_size_after/before "$(div \
		"$(calc "${fig[scale_live_table_after]} + ${fig[scale_live_indexes_after]}")" \
		"$(calc "${fig[scale_live_table_before]} + ${fig[scale_live_indexes_before]}")")" '<=' 1.20
fi

summary="summary: $goals_met of $goals_all goals met"
((${#missed[@]} == 0)) || summary+="; missed: ${missed[*]}"
sizes="the goals' sizes"
[[ $quick == 1 ]] && sizes="BENCH_QUICK sizes, not the goals' sizes"
summary+=" ($sizes; $(nproc) cores, $((SECONDS - t0)) s)"
printf '%s\n' "$summary"
{
	printf '# make bench %s, %s, %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		"$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
		"$([[ $quick == 1 ]] && echo BENCH_QUICK=1 || echo full)"
	printf '# PostgreSQL: %s\n' "$pg_settings"
	printf '%s\n' "${results[@]}"
	printf '%s\n' "$summary"
} >"$out_file"
say "figures written to $out_file"
