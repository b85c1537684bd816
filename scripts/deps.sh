#!/usr/bin/env bash
# deps.sh: make sure the Debian 12 packages that build, test and run asyncgate are installed.
# Silent when they are. As root it installs the missing ones (no recommends, and no service
# starts during the install); otherwise it prints the apt-get command to run and exits 1.
set -euo pipefail

# clang builds the libFuzzer harnesses (tests/fuzz): Debian 12's clang-14 ships libFuzzer in
# libclang-rt-14-dev, only a recommendation of clang, and llvm has the llvm-symbolizer that
# turns sanitizer stack traces into file:line.
pkgs=(build-essential pkg-config libfcgi-dev libfcgi-bin libpq-dev libcurl4-openssl-dev
	libjson-c-dev libssl-dev libcmocka-dev libmicrohttpd-dev postgresql postgresql-client lighttpd curl
	ca-certificates tzdata procps iproute2 valgrind apache2 libapache2-mod-fcgid nginx
	clang libclang-rt-14-dev llvm
	wrk time) # make bench: wrk, GNU time (RSS); nginx is its target; pgbench comes with postgresql

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == *' installed' ]] || missing+=("$p")
done
((${#missing[@]} > 0)) || exit 0

if ((EUID != 0)); then
	printf 'deps: missing Debian packages: %s\n' "${missing[*]}" >&2
	printf 'deps: install them with:\n  sudo apt-get install -y --no-install-recommends %s\n' \
		"${missing[*]}" >&2
	exit 1
fi

# policy-rc.d exiting 101 tells invoke-rc.d not to start services (lighttpd, apache2 and nginx
# would take port 80, postgresql its main cluster). Removed afterwards only if it is ours.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\n# asyncgate scripts/deps.sh: no service starts during apt-get install\nexit 101\n' \
		>"$policy"
	chmod 0755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

printf 'deps: installing %s\n' "${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

# If the system lighttpd, Apache, nginx or PostgreSQL got started anyway (an existing
# policy-rc.d that allows it), stop them and keep them from starting at boot: asyncgate and its
# tests run their own web servers and their own private cluster, and a system web server would
# hold port 80.
for svc in lighttpd apache2 nginx postgresql; do
	[[ " ${missing[*]} " == *" $svc "* ]] || continue
	if [[ -d /run/systemd/system ]]; then
		systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
	else
		if [[ -x /etc/init.d/$svc ]]; then
			"/etc/init.d/$svc" stop >/dev/null 2>&1 || true
		fi
		update-rc.d "$svc" disable >/dev/null 2>&1 || true
	fi
done
