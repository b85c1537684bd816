#!/usr/bin/env bash
# t_conf_units: the drainer's deployment files are well formed: conf/systemd/*.{service,timer}
# (sections, ExecStart with the right mode, user, configuration path, hardening; and
# `systemd-analyze verify` when it is installed, with ExecStart pointed at build/) and
# conf/asyncgate-drainer.cron (/etc/cron.d format: 5 time fields and a user before the command,
# --once, flock -n). The command lines of the units and of the cron job are also run against a
# database that cannot be reached, to show that the drainer accepts them, and the cron job's
# flock is shown to skip a run while another one holds the lock.
# Needs neither root nor a running systemd (CI runs in a container without systemd as PID 1),
# nor a database.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
units=$repo/conf/systemd
cron=$repo/conf/asyncgate-drainer.cron
drainer=$repo/build/asyncgate-drainer
dir=$(mktemp -d /tmp/ag-units.XXXXXX)
chmod 0755 "$dir"
bg_pid=
failed=0

ok() { printf 'ok - conf units: %s\n' "$1"; }
notok() {
	printf 'not ok - conf units: %s\n' "$1"
	failed=1
}
# check WHAT COMMAND...: ok or not ok after COMMAND's status.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else notok "$what"; fi
}

cleanup() {
	if [ -n "$bg_pid" ]; then
		kill "$bg_pid" 2>/dev/null
		wait "$bg_pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

# The value lines (no comments, no blanks) of a unit file.
settings() { grep -Ev '^[[:space:]]*([#;]|$)' "$1"; }
# has FILE REGEX: a setting line of FILE matches REGEX (extended).
has() { settings "$1" | grep -Eq "$2"; }
# section FILE NAME: the settings of [NAME] in FILE.
section() { settings "$1" | awk -v s="[$2]" '/^\[/ { in_s = ($0 == s); next } in_s'; }

follow=$units/asyncgate-drainer.service
once=$units/asyncgate-drainer-once.service
timer=$units/asyncgate-drainer-once.timer

# 1. The files exist.
for f in "$follow" "$once" "$timer" "$cron"; do
	if [ -f "$f" ]; then ok "${f#"$repo"/} exists"; else notok "${f#"$repo"/} exists"; fi
done

# 2. Each file starts with a comment block saying what it is for and how to install it.
for f in "$follow" "$once" "$timer" "$cron"; do
	[ -f "$f" ] || continue
	head_c=$(awk '!/^#/ { exit } { print }' "$f")
	if [ "$(printf '%s\n' "$head_c" | wc -l)" -ge 5 ] &&
		printf '%s\n' "$head_c" | grep -q 'asyncgate-drainer' &&
		printf '%s\n' "$head_c" | grep -Eq 'systemctl enable --now|/etc/cron\.d'; then
		ok "${f#"$repo"/} starts with a comment on its use and installation"
	else
		notok "${f#"$repo"/} starts with a comment on its use and installation"
	fi
done

# 3. Sections and commands of the units (checked with grep, systemd or not).
hardening=(NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes
	PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes
	ProtectControlGroups=yes 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6'
	RestrictNamespaces=yes LockPersonality=yes MemoryDenyWriteExecute=yes RestrictRealtime=yes
	SystemCallArchitectures=native CapabilityBoundingSet=)
service_checks() {
	local f=$1 type=$2 mode=$3 name=${1##*/} miss=() h
	[ -f "$f" ] || return 0
	if has "$f" '^\[Unit\]$' && has "$f" '^\[Service\]$'; then
		ok "$name has [Unit] and [Service]"
	else
		notok "$name has [Unit] and [Service]"
	fi
	check "$name is Type=$type" has "$f" "^Type=$type\$"
	if [ "$(section "$f" Service | grep -c '^ExecStart=')" = 1 ] &&
		section "$f" Service | grep -Eq "^ExecStart=/[^ ]*/asyncgate-drainer $mode\$"; then
		ok "$name: ExecStart runs asyncgate-drainer $mode"
	else
		notok "$name: ExecStart runs asyncgate-drainer $mode"
	fi
	if section "$f" Service | grep -qx 'User=asyncgate' &&
		section "$f" Service | grep -qx 'Group=asyncgate' &&
		section "$f" Service | grep -qx 'Environment=ASYNCGATE_CONF=/usr/local/etc/asyncgate.conf' &&
		grep -Eq '^#[[:space:]]*EnvironmentFile=' "$f"; then
		ok "$name: User/Group asyncgate, ASYNCGATE_CONF, a commented EnvironmentFile"
	else
		notok "$name: User/Group asyncgate, ASYNCGATE_CONF, a commented EnvironmentFile"
	fi
	for h in "${hardening[@]}"; do
		section "$f" Service | grep -qxF "$h" || miss+=("$h")
	done
	if [ ${#miss[@]} = 0 ]; then
		ok "$name: hardening (${#hardening[@]} settings)"
	else
		notok "$name: hardening, missing: ${miss[*]}"
	fi
	# AF_NETLINK, AF_PACKET, ...: anything more than the three families is a typo or a widening.
	if [ "$(section "$f" Service | grep -c '^RestrictAddressFamilies=')" = 1 ]; then
		ok "$name: one RestrictAddressFamilies= line"
	else
		notok "$name: one RestrictAddressFamilies= line"
	fi
	if has "$f" '^After=.*network-online\.target' && has "$f" '^After=.*postgresql\.service' &&
		has "$f" '^Wants=.*network-online\.target'; then
		ok "$name: ordered after network-online.target and postgresql.service"
	else
		notok "$name: ordered after network-online.target and postgresql.service"
	fi
}
service_checks "$follow" simple --follow
service_checks "$once" oneshot '--once --max-seconds 50'

if [ -f "$follow" ]; then
	stop_s=$(section "$follow" Service | sed -n 's/^TimeoutStopSec=//p')
	case $stop_s in
	*min) stop_s=$((${stop_s%min} * 60)) ;;
	*s) stop_s=${stop_s%s} ;;
	esac
	if has "$follow" '^Restart=on-failure$' && has "$follow" '^RestartSec=' &&
		has "$follow" '^KillSignal=SIGTERM$' && [[ $stop_s =~ ^[0-9]+$ ]] && ((stop_s >= 60)) &&
		section "$follow" Install | grep -qx 'WantedBy=multi-user.target'; then
		ok "asyncgate-drainer.service: Restart=on-failure, SIGTERM, TimeoutStopSec ${stop_s} s >= 60 s, [Install]"
	else
		notok "asyncgate-drainer.service: Restart=on-failure, SIGTERM, TimeoutStopSec >= 60 s (got '$stop_s'), [Install]"
	fi
fi
if [ -f "$once" ]; then
	if ! has "$once" '^\[Install\]$'; then
		ok "asyncgate-drainer-once.service has no [Install] (the timer starts it)"
	else
		notok "asyncgate-drainer-once.service has no [Install] (the timer starts it)"
	fi
fi
if [ -f "$timer" ]; then
	if has "$timer" '^\[Unit\]$' && has "$timer" '^\[Timer\]$' &&
		section "$timer" Install | grep -qx 'WantedBy=timers.target'; then
		ok "asyncgate-drainer-once.timer has [Unit], [Timer] and [Install] WantedBy=timers.target"
	else
		notok "asyncgate-drainer-once.timer has [Unit], [Timer] and [Install] WantedBy=timers.target"
	fi
	t=$(section "$timer" Timer)
	if { grep -qx 'OnCalendar=minutely' <<<"$t" ||
		{ grep -qx 'OnUnitActiveSec=1min' <<<"$t" && grep -q '^OnBootSec=' <<<"$t"; }; } &&
		grep -qx 'AccuracySec=1s' <<<"$t" &&
		{ ! grep -q '^Unit=' <<<"$t" || grep -qx 'Unit=asyncgate-drainer-once.service' <<<"$t"; }; then
		ok "asyncgate-drainer-once.timer fires every minute (AccuracySec=1s) for the once service"
	else
		notok "asyncgate-drainer-once.timer fires every minute (AccuracySec=1s) for the once service"
	fi
fi

# 4. systemd-analyze verify, on copies whose ExecStart runs build/asyncgate-drainer.
if ! command -v systemd-analyze >/dev/null 2>&1; then
	ok "systemd-analyze verify # SKIP systemd-analyze is not installed (grep checks only)"
else
	bin=$drainer
	if [ ! -x "$bin" ]; then
		# verify insists that the command exists; a stand-in keeps the check meaningful.
		printf '# %s is not built; verifying with a stand-in\n' "$bin"
		bin=$dir/bin/asyncgate-drainer
		mkdir -p "$dir/bin" && printf '#!/bin/sh\nexit 0\n' >"$bin" && chmod 0755 "$bin"
	fi
	# systemd syntax: quote the path (spaces) and double any '%' (specifiers).
	qbin=\"${bin//%/%%}\"
	mkdir -p "$dir/units"
	chmod 0755 "$dir/units"
	for f in "$follow" "$once" "$timer"; do
		[ -f "$f" ] || continue
		while IFS= read -r line || [ -n "$line" ]; do
			if [[ $line =~ ^ExecStart=[^\ ]*asyncgate-drainer(\ .*)?$ ]]; then
				line="ExecStart=$qbin${BASH_REMATCH[1]}"
			fi
			printf '%s\n' "$line"
		done <"$f" >"$dir/units/${f##*/}"
	done
	if grep -q "^ExecStart=\"" "$dir/units/asyncgate-drainer.service" 2>/dev/null; then
		ok "ExecStart of the verified copies runs $bin"
	else
		notok "ExecStart of the verified copies runs $bin"
	fi
	# SYSTEMD_LOG_COLOR: plain text. verify checks the files, the commands and the references
	# between them (the timer's service); it does not need systemd to be running.
	(cd "$dir/units" && SYSTEMD_LOG_COLOR=0 SYSTEMD_PAGER='' systemd-analyze verify \
		"$dir"/units/*.service "$dir"/units/*.timer) >"$dir/verify.out" 2>&1
	rc=$?
	# The asyncgate user and group exist only on hosts that run the drainer. Some systemd
	# versions say so; that is expected here, and the only complaint that is ignored: a line
	# naming the user or group asyncgate itself (not a file name such as asyncgate-drainer.service)
	# and saying that it cannot be found.
	user_re="(user|group)[^a-z0-9]+['\"]?asyncgate['\"]?([^a-z0-9_.-]|\$)"
	missing_re='resolve|not found|exist|no such|unknown'
	while IFS= read -r line; do
		if grep -Eiq "$user_re" <<<"$line" && grep -Eiq "$missing_re" <<<"$line"; then
			printf '%s\n' "$line" >>"$dir/verify.ignored"
		else
			printf '%s\n' "$line" >>"$dir/verify.rest"
		fi
	done <"$dir/verify.out"
	touch "$dir/verify.ignored" "$dir/verify.rest"
	sed 's/^/# ignored: /' "$dir/verify.ignored"
	if [ ! -s "$dir/verify.rest" ] && { [ "$rc" = 0 ] || [ -s "$dir/verify.ignored" ]; }; then
		ok "systemd-analyze verify ($(systemd-analyze --version | sed -n '1s/ (.*//p')) finds nothing to say (exit $rc)"
	else
		notok "systemd-analyze verify: exit $rc"
		sed 's/^/#   /' "$dir/verify.rest" | head -n 30
	fi
	# The exposure score, for information (its scale differs between systemd versions).
	if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
		for f in "$dir"/units/*.service; do
			(cd "$dir/units" && SYSTEMD_LOG_COLOR=0 SYSTEMD_PAGER='' timeout 20 \
				systemd-analyze security --offline=true --no-pager "$f" 2>/dev/null) |
				sed -n 's/^→ Overall exposure level for /# exposure of /p' | LC_ALL=C sed 's/ [^ -~]*$//'
		done
	fi
fi

# 5. The cron file: /etc/cron.d format.
if [ -f "$cron" ]; then
	# Job lines: neither comments, blanks nor NAME=value environment lines.
	mapfile -t jobs < <(grep -Ev '^[[:space:]]*(#|$)' "$cron" |
		grep -Ev '^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*[[:space:]]*=')
	if [ ${#jobs[@]} = 1 ]; then
		ok "asyncgate-drainer.cron has one job line"
	else
		notok "asyncgate-drainer.cron has one job line (found ${#jobs[@]})"
	fi
	job=${jobs[0]:-}
	read -r -a w <<<"$job"
	sched_ok=true
	for i in 0 1 2 3 4; do
		[[ ${w[i]:-} =~ ^[0-9*/,-]+$ ]] || sched_ok=false
	done
	if $sched_ok && [ "${w[5]:-}" = asyncgate ] && [[ ${w[6]:-} == */* || ${w[6]:-} == flock ]]; then
		ok "cron job has 5 time fields and the user asyncgate before the command (/etc/cron.d)"
	else
		notok "cron job has 5 time fields and the user asyncgate before the command: '$job'"
	fi
	cmd=$(sed -E 's/^[[:space:]]*([^[:space:]]+[[:space:]]+){6}//' <<<"$job")
	if [ "${w[*]:0:5}" = '* * * * *' ]; then
		ok "cron job runs every minute"
	else
		notok "cron job runs every minute (got '${w[*]:0:5}')"
	fi
	if [[ $cmd =~ flock\ (.*\ )?-n\ [^\ ]+\ [^\ ]*/asyncgate-drainer\ --once\ --max-seconds\ 55( |$) ]]; then
		ok "cron job runs asyncgate-drainer --once --max-seconds 55 under flock -n"
	else
		notok "cron job runs asyncgate-drainer --once --max-seconds 55 under flock -n: '$cmd'"
	fi
	if grep -Eq '^ASYNCGATE_CONF=/' "$cron" || [[ $cmd == *ASYNCGATE_CONF=/* ]]; then
		ok "cron file sets ASYNCGATE_CONF"
	else
		notok "cron file sets ASYNCGATE_CONF"
	fi
	if [[ $cmd != *%* ]]; then
		ok "cron command has no '%' (cron would turn it into a newline)"
	else
		notok "cron command has no '%' (cron would turn it into a newline)"
	fi
	if grep -Eq '^#[[:space:]]*(\*|[0-9/,-]+)( (\*|[0-9/,-]+)){4} /[^ ]*flock -n .*asyncgate-drainer --once' "$cron"; then
		ok "cron file shows the crontab -e form (no user field) in a comment"
	else
		notok "cron file shows the crontab -e form (no user field) in a comment"
	fi
	if [ -n "$(tail -c 1 "$cron")" ]; then
		notok "cron file ends with a newline (cron ignores the last line otherwise)"
	fi
fi

# 6. The command lines are accepted by the drainer. A database that cannot be reached:
# --once must exit 1 ("database unreachable"), not 2 (usage); --follow must run until SIGTERM
# and exit 0. The cron command runs through /bin/sh with its paths moved to $dir.
if [ -x "$drainer" ]; then
	printf 'database = host=%s/no-such-dir dbname=none connect_timeout=1\n' "$dir" >"$dir/ag.conf"
	export ASYNCGATE_CONF=$dir/ag.conf
	unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PGPASSFILE
	# unit_args FILE: the arguments of its ExecStart.
	unit_args() { section "$1" Service | sed -n 's/^ExecStart=[^ ]*asyncgate-drainer //p'; }
	if [ -f "$once" ]; then
		read -r -a args <<<"$(unit_args "$once")"
		timeout 20 "$drainer" "${args[@]}" >"$dir/once.out" 2>"$dir/once.err"
		rc=$?
		if [ "$rc" = 1 ] && grep -q 'database unreachable' "$dir/once.err"; then
			ok "the once service's arguments (${args[*]}) are accepted (exit 1: no database)"
		else
			notok "the once service's arguments (${args[*]}): exit $rc"
			sed 's/^/#   /' "$dir/once.err" | tail -n 5
		fi
	fi
	if [ -f "$follow" ]; then
		read -r -a args <<<"$(unit_args "$follow")"
		"$drainer" "${args[@]}" >"$dir/follow.out" 2>"$dir/follow.err" &
		bg_pid=$!
		sleep 1
		kill -TERM "$bg_pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$bg_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$bg_pid" 2>/dev/null; then
			notok "the --follow service's arguments: still running 10 s after SIGTERM"
			kill -KILL "$bg_pid" 2>/dev/null
			wait "$bg_pid" 2>/dev/null
		else
			wait "$bg_pid"
			rc=$?
			if [ "$rc" = 0 ] && grep -q 'drainer: stopped' "$dir/follow.err"; then
				ok "the --follow service's arguments (${args[*]}) run until SIGTERM, exit 0"
			else
				notok "the --follow service's arguments (${args[*]}): exit $rc after SIGTERM"
				sed 's/^/#   /' "$dir/follow.err" | tail -n 5
			fi
		fi
		bg_pid=
	fi
	if [ -f "$cron" ] && [ -n "${cmd:-}" ] && command -v flock >/dev/null 2>&1; then
		# Move the lock and the log into $dir, and run build/'s drainer and PATH's flock.
		lock=$(sed -n 's/.*flock \(-[a-zA-Z]* \)*\([^ ]*\) .*/\2/p' <<<"$cmd")
		log=$(sed -n 's/.*>> *\([^ ]*\).*/\1/p' <<<"$cmd")
		tcmd=$cmd
		[ -n "$lock" ] && tcmd=${tcmd//"$lock"/"$dir/cron.lock"}
		[ -n "$log" ] && tcmd=${tcmd//"$log"/"$dir/cron.log"}
		tcmd=$(sed -E "s#[^ ]*/flock #flock #; s#[^ ]*/asyncgate-drainer #$drainer #" <<<"$tcmd")
		printf '# cron command as tested: %s\n' "$tcmd"
		timeout 20 /bin/sh -c "$tcmd" >"$dir/cron.mail" 2>&1
		rc=$?
		if [ "$rc" = 1 ] && grep -q 'database unreachable' "$dir/cron.log" 2>/dev/null &&
			[ ! -s "$dir/cron.mail" ]; then
			ok "the cron command runs the drainer and appends its output to the log (nothing for cron mail)"
		else
			notok "the cron command: exit $rc, log: $(tr '\n' ' ' <"$dir/cron.log" 2>/dev/null)"
			sed 's/^/#   mail: /' "$dir/cron.mail" | head -n 5
		fi
		lines=$(wc -l <"$dir/cron.log" 2>/dev/null || echo 0)
		# Hold the lock here, on another open file description, as a running drainer would.
		exec 9>"$dir/cron.lock"
		if flock -n 9; then
			timeout 20 /bin/sh -c "$tcmd" >"$dir/cron.mail" 2>&1 9>&-
			rc=$?
			if [ "$rc" = 1 ] && [ "$(wc -l <"$dir/cron.log")" = "$lines" ] &&
				[ ! -s "$dir/cron.mail" ]; then
				ok "the cron command skips its run while another holds the lock (flock -n)"
			else
				notok "the cron command while the lock is held: exit $rc, log lines $lines -> $(wc -l <"$dir/cron.log")"
			fi
		else
			notok "the cron command while the lock is held: could not take the lock"
		fi
		exec 9>&-
	fi
else
	printf '# %s is not built: command lines not run\n' "$drainer"
fi

exit "$failed"
