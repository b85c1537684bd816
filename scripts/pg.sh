# shellcheck shell=bash
# pg.sh: functions that run a private PostgreSQL cluster on a Unix socket (init, start, stop,
# createdb) for scripts/run.sh and tests/integration/; source it, do not run it.
#
# initdb and postgres refuse to run as root, so under root every server program runs as an
# unprivileged user (PG_OSUSER: "postgres" when the Debian package created it, else a system
# user "asyncgate" made on first use). The database superuser is always PG_SUPERUSER, so
# clients say PGUSER=asyncgate whatever the OS user is (trust authentication, socket only).
#
# Environment read: PG_BINDIR (server programs; default the newest /usr/lib/postgresql/*/bin),
# AG_PG_FAST=1 (fsync=off, for tests), AG_PG_LOG (server log; default DATADIR/../pg.log).
# Globals set: PG_OSUSER, PG_SUPERUSER, PG_BINDIR, PG_PID (postmaster of the last pg_start).
# Also here, for all the scripts: ag_alive and ag_stop (processes by PID).

PG_SUPERUSER=asyncgate
PG_OSUSER=${PG_OSUSER:-}
PG_PID=

if [[ -z ${PG_BINDIR:-} ]]; then
	PG_BINDIR=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null |
		sort -V | tail -n 1)
	if [[ -z $PG_BINDIR ]] && command -v initdb >/dev/null 2>&1; then
		PG_BINDIR=$(dirname "$(command -v initdb)")
	fi
fi

# pg_user_init: set PG_OSUSER, the OS user that runs the server (creating one if needed).
pg_user_init()
{
	[[ -n $PG_OSUSER ]] && return 0
	if ((EUID != 0)); then
		PG_OSUSER=$(id -un)
	elif id -u postgres >/dev/null 2>&1; then
		PG_OSUSER=postgres
	else
		if ! id -u asyncgate >/dev/null 2>&1; then
			useradd --system --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin asyncgate
		fi
		PG_OSUSER=asyncgate
	fi
}

# pg_as CMD...: run CMD as PG_OSUSER (directly when not root), from /, so that a working
# directory the user cannot enter does not matter. Pass absolute paths.
pg_as()
{
	pg_user_init
	if ((EUID == 0)); then
		(cd / && runuser -u "$PG_OSUSER" -- "$@")
	else
		(cd / && "$@")
	fi
}

# pg_own DIR...: give DIRs to PG_OSUSER when running as root (no-op otherwise).
pg_own()
{
	pg_user_init
	if ((EUID == 0)); then
		chown "$PG_OSUSER:" "$@"
	fi
}

# ag_alive PID: true if PID runs and is not a zombie (an orphan nobody reaped still answers
# kill -0).
ag_alive()
{
	local state
	[[ $1 =~ ^[1-9][0-9]*$ ]] || return 1
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
	[[ -n $state && $state != Z && $state != X ]]
}

# ag_stop PID NAME SECONDS: SIGTERM to PID, wait up to SECONDS for it to end, then SIGKILL.
ag_stop()
{
	local pid=$1 name=$2 i
	ag_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < $3 * 10; i++)); do
		ag_alive "$pid" || return 0
		sleep 0.1
	done
	printf '%s (pid %s) did not stop in %s s; killing it\n' "$name" "$pid" "$3" >&2
	kill -KILL "$pid" 2>/dev/null || true
}

# _pg_abs PATH: PATH made absolute (symlinks resolved; PATH need not exist yet).
_pg_abs()
{
	realpath -m -- "$1"
}

# _pg_bin NAME: path of server program NAME.
_pg_bin()
{
	if [[ -n $PG_BINDIR && -x $PG_BINDIR/$1 ]]; then
		printf '%s\n' "$PG_BINDIR/$1"
	else
		printf '%s\n' "$1"
	fi
}

# _pg_pid_is_postmaster PID DATADIR: true if PID is a live (not zombie) postgres process whose
# working directory is DATADIR. A postmaster chdirs to its data directory; checking that keeps
# a recycled PID (other program, other cluster) from passing for ours after a kill -9.
_pg_pid_is_postmaster()
{
	local pid=$1 datadir=$2 comm cwd
	ag_alive "$pid" || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	[[ $comm == postgres || $comm == postmaster ]] || return 1
	cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
	[[ $cwd == "$datadir" ]]
}

# pg_running DATADIR: true if a postmaster is serving DATADIR; sets PG_PID.
pg_running()
{
	local datadir=$1 pid
	[[ -f $datadir/postmaster.pid ]] || return 1
	pid=$(head -n 1 "$datadir/postmaster.pid" 2>/dev/null) || return 1
	_pg_pid_is_postmaster "$pid" "$datadir" || return 1
	PG_PID=$pid
}

# _pg_log_path DATADIR: where the server log goes.
_pg_log_path()
{
	if [[ -n ${AG_PG_LOG:-} ]]; then
		printf '%s\n' "$AG_PG_LOG"
	else
		printf '%s/pg.log\n' "$(dirname "$1")"
	fi
}

# pg_init DATADIR: create a cluster in DATADIR unless one is there (trust auth, UTF8, C.UTF-8
# or C). Returns non-zero, with initdb's output on stderr, on failure.
pg_init()
{
	local datadir out locale=C
	datadir=$(_pg_abs "$1")
	[[ -f $datadir/PG_VERSION ]] && return 0
	if [[ -d $datadir && -n $(ls -A "$datadir") ]]; then
		printf 'pg: %s is not empty but holds no cluster (interrupted initdb?); remove it\n' \
			"$datadir" >&2
		return 1
	fi
	pg_user_init
	mkdir -p "$datadir"
	chmod 0700 "$datadir"
	pg_own "$datadir"
	if locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8'; then
		locale=C.UTF-8
	fi
	if ! out=$(pg_as "$(_pg_bin initdb)" -D "$datadir" -A trust --nosync -E UTF8 \
		--locale="$locale" -U "$PG_SUPERUSER" 2>&1); then
		printf '%s\n' "$out" >&2
		return 1
	fi
	# Per-start settings (socket, port, fsync) live in a file pg_start rewrites each time.
	printf "\ninclude_if_exists = 'asyncgate.runtime.conf'\n" >>"$datadir/postgresql.conf"
	if [[ ${AG_PG_FAST:-} != 1 ]]; then
		sync -f "$datadir" # initdb --nosync skipped it; a kept cluster should be on disk
	fi
}

# pg_sockdir_ok SOCKDIR PORT: true if SOCKDIR/.s.PGSQL.PORT fits in sun_path (107 bytes + NUL).
pg_sockdir_ok()
{
	local LC_ALL=C # count bytes
	((${#1} + ${#2} + 10 <= 107))
}

# _pg_conf_quote VALUE: VALUE as a postgresql.conf string literal.
_pg_conf_quote()
{
	printf "'%s'" "${1//\'/\'\'}"
}

# _pg_clear_stale DATADIR SOCKDIR PORT: remove postmaster.pid and socket lock files left by a
# server that is gone (killed, machine rebooted), so that a PID recycled by another process
# cannot block the restart.
_pg_clear_stale()
{
	local datadir=$1 sock=$2/.s.PGSQL.$3 pid
	if [[ -f $datadir/postmaster.pid ]]; then
		pid=$(head -n 1 "$datadir/postmaster.pid" 2>/dev/null || true)
		if ! _pg_pid_is_postmaster "$pid" "$datadir"; then
			rm -f "$datadir/postmaster.pid"
		fi
	fi
	if [[ -f $sock.lock ]]; then
		pid=$(head -n 1 "$sock.lock" 2>/dev/null || true)
		if ! _pg_pid_is_postmaster "$pid" "$datadir"; then
			rm -f "$sock.lock" "$sock"
		fi
	fi
}

# pg_start DATADIR SOCKDIR [PORT]: start the cluster in DATADIR listening only on the Unix
# socket SOCKDIR/.s.PGSQL.PORT (PORT defaults to 5432; no TCP), wait until it accepts
# connections and set PG_PID. A cluster already running on DATADIR is reused.
pg_start()
{
	local datadir sockdir port=${3:-5432} log fsync=on rtconf i
	datadir=$(_pg_abs "$1")
	sockdir=$(_pg_abs "$2")
	pg_user_init
	if ! pg_sockdir_ok "$sockdir" "$port"; then
		printf 'pg: socket path %s/.s.PGSQL.%s is too long for a Unix socket\n' \
			"$sockdir" "$port" >&2
		return 1
	fi
	if pg_running "$datadir"; then
		if ! "$(_pg_bin pg_isready)" -q -h "$sockdir" -p "$port" -U "$PG_SUPERUSER" -d postgres -t 5; then
			printf 'pg: cluster %s runs (pid %s) but not on %s port %s\n' \
				"$datadir" "$PG_PID" "$sockdir" "$port" >&2
			return 1
		fi
		return 0
	fi
	_pg_clear_stale "$datadir" "$sockdir" "$port"
	mkdir -p "$sockdir"
	[[ -O $sockdir ]] && pg_own "$sockdir"
	[[ ${AG_PG_FAST:-} == 1 ]] && fsync=off
	rtconf=$datadir/asyncgate.runtime.conf
	{
		printf '# written by scripts/pg.sh pg_start; rewritten at every start\n'
		printf "listen_addresses = ''\n"
		printf 'unix_socket_directories = %s\n' "$(_pg_conf_quote "$sockdir")"
		printf 'port = %s\n' "$port"
		printf 'fsync = %s\n' "$fsync"
		printf 'synchronous_commit = on\n'
	} >"$rtconf"
	pg_own "$rtconf"
	log=$(_pg_log_path "$datadir")
	touch "$log"
	# The log is opened here (by root, if root) and inherited by the postmaster, so it may live
	# where PG_OSUSER cannot write. pg_ctl gives the postmaster its own session (no Ctrl-C).
	if ! pg_as "$(_pg_bin pg_ctl)" -D "$datadir" -w -t 60 -s start >>"$log" 2>&1; then
		printf 'pg: could not start %s; last lines of %s:\n' "$datadir" "$log" >&2
		tail -n 20 "$log" >&2
		return 1
	fi
	for ((i = 0; i < 100; i++)); do
		if "$(_pg_bin pg_isready)" -q -h "$sockdir" -p "$port" -U "$PG_SUPERUSER" -d postgres -t 1; then
			pg_running "$datadir" && return 0
		fi
		sleep 0.1
	done
	printf 'pg: %s started but does not answer on %s port %s\n' "$datadir" "$sockdir" "$port" >&2
	return 1
}

# pg_stop DATADIR: stop the cluster in DATADIR (fast shutdown: sessions are ended). Falls back
# to signals to the PID in postmaster.pid. Returns 0 if nothing runs there.
pg_stop()
{
	local datadir pid
	datadir=$(_pg_abs "$1")
	pg_running "$datadir" || return 0
	pid=$PG_PID
	if pg_as "$(_pg_bin pg_ctl)" -D "$datadir" -m fast -w -t 30 -s stop >/dev/null 2>&1; then
		return 0
	fi
	ag_stop "$pid" "pg: postmaster" 10
}

# pg_createdb SOCKDIR PORT DBNAME: create database DBNAME (owned by PG_SUPERUSER) if missing.
pg_createdb()
{
	local sockdir=$1 port=$2 db=$3 found
	found=$("$(_pg_bin psql)" -X -q -At -h "$sockdir" -p "$port" -U "$PG_SUPERUSER" -d postgres \
		-v ON_ERROR_STOP=1 -v db="$db" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
	[[ $found == 1 ]] && return 0
	"$(_pg_bin createdb)" -h "$sockdir" -p "$port" -U "$PG_SUPERUSER" -- "$db"
}
