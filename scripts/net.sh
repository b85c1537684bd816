# shellcheck shell=bash
# net.sh: loopback port helpers for the scripts that start their own servers
# (tests/integration/run.sh, tests/integration/t_webservers.sh, bench/run.sh); source it, do not
# run it.

# port_used PORT: true when something listens on 127.0.0.1:PORT (or ss lists it as in use).
port_used()
{
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
	command -v ss >/dev/null 2>&1 && [[ -n $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]
}

# free_port [EXCEPT]: print a loopback TCP port nothing uses (and not EXCEPT).
free_port()
{
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 40000))
		[[ $p == "${1:-}" ]] && continue
		port_used "$p" || {
			printf '%s\n' "$p"
			return 0
		}
	done
	return 1
}
