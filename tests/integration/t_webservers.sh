#!/usr/bin/env bash
# t_webservers: every web server the README names, each with its sample configuration from
# conf/ as users copy it (only paths and ports filled in):
#   apache-fcgid   Apache 2.4 + mod_fcgid spawning the handler     conf/apache-fcgid.conf
#   apache-proxy   Apache 2.4 + mod_proxy_fcgi, standalone socket   conf/apache-proxy-fcgi.conf
#   apache-cgi     Apache 2.4 + mod_cgid, plain CGI, at /asyncgate  conf/apache-cgi.conf
#   nginx          nginx + fastcgi_pass, standalone socket         conf/nginx-fastcgi.conf
#   lighttpd       the suite's own lighttpd (conf/lighttpd.conf, spawned handler: AG_URL; and its
#                  second listener in front of run.sh's standalone handler: AG_URL_STANDALONE)
# Through each one: enqueue a call (POST /v1/calls), a transparent-mode call (a percent-encoded
# target URL, %2F in the rest of the path, a raw query, a Proxy header), a chunked request body
# and a batch over 1 MiB; read the status at the status_url the handler gave (and Location),
# which must name the server's mount; get a problem+json error through; then POST /v1/drain with
# the drain token in an Authorization header (so the header must reach the handler), and see
# every call delivered at the HTTP target as it was sent and 'succeeded' in the calls table.
#
# Each Apache and nginx runs as its own instance on a free loopback port, with its pid file,
# logs and sockets under a temp directory, and is stopped by PID. Run as root, the web servers'
# workers and the handlers they reach run as www-data (Apache will not run them as root), so the
# handler binary is copied where www-data can run it, and the standalone handler that Apache
# mod_proxy_fcgi and nginx talk to is started here as www-data (run.sh's own standalone socket is
# owner-only, root's). A missing web server package is a failure: scripts/deps.sh installs them.
# With AG_API_KEY set, every API request carries "Authorization: Bearer $AG_API_KEY".
set -uo pipefail
: "${AG_BIN:?run me from tests/integration/run.sh}" "${AG_TMP:?}" "${AG_TARGET:?}"
: "${AG_TARGET_LOG:?}" "${AG_DRAIN_TOKEN:?}" "${ASYNCGATE_CONF:?}" "${AG_URL:?}"
: "${AG_URL_STANDALONE:?}" "${AG_REPO:?}" "${PGHOST:?}" "${PGPORT:?}" "${PGDATABASE:?}"
: "${PGUSER:?}"
repo=$AG_REPO
# shellcheck source=scripts/pg.sh
source "$repo/scripts/pg.sh" # ag_alive, ag_stop
# shellcheck source=scripts/net.sh
source "$repo/scripts/net.sh" # port_used, free_port

failed=0
pids=() # started here, stopped in reverse order
names=()

ok() { printf 'ok - %s\n' "$1"; }
notok() {
	printf 'not ok - %s\n' "$1"
	failed=1
}
say() { printf '# %s\n' "$*"; }

dir=$(mktemp -d "$AG_TMP/ws.XXXXXX")
chmod 0755 "$dir"

# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		ag_stop "${pids[i]}" "${names[i]}" 10
	done
	wait 2>/dev/null
	if ((failed == 0)) && [[ ${AG_KEEP:-} != 1 ]]; then
		rm -rf "$dir"
	else
		say "web server files kept in $dir"
	fi
}
trap cleanup EXIT

# The user the web servers' workers and their handlers run as.
if ((EUID == 0)); then
	wuser=www-data
	if ! id -u "$wuser" >/dev/null 2>&1; then
		notok "setup: user $wuser does not exist (it comes with Debian's base-passwd)"
		exit 1
	fi
else
	wuser=$(id -un)
fi
wgroup=$(id -gn "$wuser")
# mine DIR...: directories the web user writes in.
mine() {
	mkdir -p "$@" && chmod 0755 "$@"
	if ((EUID == 0)); then chown "$wuser:$wgroup" "$@"; fi
}

# The handler where the web user can run it, and a configuration that names the database (web
# servers do not pass our PG* variables to the handlers).
mkdir -p "$dir/bin"
chmod 0755 "$dir/bin"
bin=$dir/bin/asyncgate.fcgi
cp "$AG_BIN" "$bin" && chmod 0755 "$bin"
conf=$dir/asyncgate.conf
{
	cat "$ASYNCGATE_CONF"
	printf '\n# t_webservers: the database, for handlers that do not see PG* variables\n'
	printf 'database = host=%s port=%s dbname=%s user=%s\n' "$PGHOST" "$PGPORT" "$PGDATABASE" \
		"$PGUSER"
} >"$conf"
chmod 0644 "$conf"


# wait_up PID URL: wait up to 10 s for URL to answer (any status) while PID lives.
wait_up() {
	local i code
	for ((i = 0; i < 100; i++)); do
		ag_alive "$1" || return 1
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2")
		[[ $code != 000 ]] && return 0
		sleep 0.1
	done
	return 1
}

# handler_procs: PIDs of processes running our copy of the handler.
handler_procs() {
	local p exe
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		[[ $exe == "$bin" ]] && printf '%s\n' "${p#/proc/}"
	done
}

# The standalone handler for Apache mod_proxy_fcgi and nginx, as the web user (setpriv execs,
# so $! is the handler itself). A copy of its own, so that handler_procs sees only the others.
mine "$dir/sock"
sock=$dir/sock/fcgi.sock
sbin=$dir/bin/asyncgate-standalone.fcgi
cp "$bin" "$sbin"
as_web=()
if ((EUID == 0)); then as_web=(setpriv --reuid "$wuser" --regid "$wgroup" --init-groups --); fi
setsid "${as_web[@]}" env -i ASYNCGATE_CONF="$conf" PATH=/usr/bin:/bin "$sbin" --socket "$sock" \
	</dev/null >>"$dir/standalone.log" 2>&1 &
pids+=("$!")
names+=("standalone handler ($wuser)")
for ((i = 0; i < 50; i++)); do
	[[ -S $sock ]] && break
	ag_alive "${pids[-1]}" || break
	sleep 0.1
done
if [[ -S $sock ]]; then
	ok "standalone handler as $wuser on $sock"
else
	notok "standalone handler as $wuser did not create $sock in 5 s"
	sed 's/^/#   /' "$dir/standalone.log"
fi

# ---- HTTP helpers. req METHOD URL [curl args...]: status in $code, body in $dir/body,
# headers in $dir/hdr.
api_auth=()
if [[ -n ${AG_API_KEY:-} ]]; then api_auth=(-H "Authorization: Bearer $AG_API_KEY"); fi
code=
req() {
	local m=$1 u=$2
	shift 2
	code=$(curl -sS -X "$m" -o "$dir/body" -D "$dir/hdr" -w '%{http_code}' --max-time 30 \
		"$@" "$u" 2>"$dir/curl.err") || code=000
}
# api METHOD URL [curl args...]: req with the API key, if any.
api() {
	local m=$1 u=$2
	shift 2
	req "$m" "$u" "${api_auth[@]}" "$@"
}
header() { tr -d '\r' <"$dir/hdr" | sed -n "s/^$1: *//Ip" | head -n 1; }
json_str() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$dir/body" | head -n 1; }
show() {
	say "HTTP $code: $(head -c 400 "$dir/body" | tr '\n' ' ')"
	[[ -s $dir/curl.err ]] && say "curl: $(cat "$dir/curl.err")"
	return 0
}
sql() { psql -X -At -c "$1" 2>&1; }

# pct STRING: percent-encode ":" and "/" (enough for a loopback URL).
pct() { sed -e 's/:/%3A/g' -e 's#/#%2F#g' <<<"$1"; }

# exercise NAME BASE MOUNT: the API through one server; BASE is scheme://host:port, MOUNT the
# prefix it serves asyncgate under ("" for the root).
exercise() {
	local name=$1 base=$2 mount=$3 url=$2$3 tag corr id tid loc want n big i drained ncalls=5
	tag=ws$$-$name
	corr=corr-$tag

	api GET "$url/v1/health"
	if [[ $code == 200 ]]; then
		ok "$name: GET $mount/v1/health answers 200"
	else
		notok "$name: GET $mount/v1/health answers 200"
		show
	fi

	# A call; its Location and status_url name this mount.
	api POST "$url/v1/calls" -H 'Content-Type: application/json' \
		--data-binary "{\"target\":\"$AG_TARGET/ok/$tag\",\"body\":{\"server\":\"$name\"},\"correlation_id\":\"$corr\"}"
	id=$(json_str id)
	want=$mount/v1/calls/$id
	loc=$(header Location)
	if [[ $code == 202 && -n $id && $loc == "$want" && $(json_str status_url) == "$want" ]]; then
		ok "$name: POST $mount/v1/calls answers 202, Location and status_url $mount/v1/calls/{id}"
	else
		notok "$name: POST $mount/v1/calls answers 202, Location and status_url $want (Location: $loc)"
		show
	fi

	# Transparent mode: the target URL percent-encoded, %2F in the rest, a raw query (%41 stays
	# %41), a header to forward, and a Proxy header that must not reach anything.
	api POST "$url/v1/async/$(pct "$AG_TARGET/tp/$tag")/rest%2Fx?q=a%2Fb&r=%41" \
		-H 'Content-Type: text/plain' -H "X-Ws-Server: $name" -H 'Proxy: http://127.0.0.1:9/' \
		-H "Async-Correlation-Id: $corr" --data-binary "transparent via $name"
	tid=$(json_str id)
	want=$mount/v1/calls/$tid
	loc=$(header Location)
	if [[ $code == 202 && -n $tid && $loc == "$want" && $(json_str status_url) == "$want" ]]; then
		ok "$name: transparent mode (encoded URL, %2F, raw query) answers 202, Location $mount/v1/calls/{id}"
	else
		notok "$name: transparent mode answers 202, Location $want (Location: $loc)"
		show
	fi

	# The status, where status_url said.
	api GET "$base$mount/v1/calls/$id"
	if [[ $code == 200 && $(json_str id) == "$id" ]] && grep -q '"state":"queued"' "$dir/body"; then
		ok "$name: GET $mount/v1/calls/{id} shows the call, queued"
	else
		notok "$name: GET $mount/v1/calls/{id} shows the call, queued"
		show
	fi

	# Errors come through as the handler wrote them.
	api POST "$url/v1/calls" -H 'Content-Type: application/json' \
		--data-binary "{\"target\":\"$AG_TARGET/x\",\"bogus\":1}"
	if [[ $code == 400 && $(header Content-Type) == application/problem+json* ]] &&
		grep -q '"field":"bogus"' "$dir/body"; then
		ok "$name: a bad request gets the handler's 400 problem+json naming the field"
	else
		notok "$name: a bad request gets the handler's 400 problem+json naming the field"
		show
	fi

	# A chunked request body (no Content-Length from the client): servers that read it whole pass
	# its length; plain CGI under Apache passes it on without one, which the handler answers 411.
	api POST "$url/v1/calls" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
		--data-binary "{\"target\":\"$AG_TARGET/ok/$tag/chunked\",\"correlation_id\":\"$corr\"}"
	if [[ $name == apache-cgi ]]; then
		ncalls=4
		if [[ $code == 411 ]] && grep -q '"field":"Content-Length"' "$dir/body"; then
			ok "$name: a chunked request body (no length under CGI) gets 411 naming Content-Length"
		else
			notok "$name: a chunked request body (no length under CGI) gets 411"
			show
		fi
	elif [[ $code == 202 && -n $(json_str id) ]]; then
		ok "$name: a chunked request body is read whole (202)"
	else
		notok "$name: a chunked request body is read whole (202)"
		show
	fi

	# More than 1 MiB (nginx's default limit, 8 times mod_fcgid's) in one batch of two calls.
	big=$(head -c 600000 /dev/zero | tr '\0' 'b')
	printf '[{"target":"%s/ok/%s/big1","body_text":"%s","correlation_id":"%s"},{"target":"%s/ok/%s/big2","body_text":"%s","correlation_id":"%s"}]' \
		"$AG_TARGET" "$tag" "$big" "$corr" "$AG_TARGET" "$tag" "$big" "$corr" >"$dir/big.json"
	api POST "$url/v1/calls" -H 'Content-Type: application/json' --data-binary "@$dir/big.json"
	n=$(grep -o '"status_url":"[^"]*"' "$dir/body" | grep -c "\"$mount/v1/calls/")
	if [[ $code == 202 && $n == 2 ]]; then
		ok "$name: a $(stat -c %s "$dir/big.json")-byte batch is accepted (202, 2 calls)"
	else
		notok "$name: a $(stat -c %s "$dir/big.json")-byte batch is accepted (202, 2 calls)"
		show
	fi

	# Deliver: /v1/drain in a handler behind this server, with the token in Authorization.
	req POST "$url/v1/drain" -H "Authorization: Bearer $AG_DRAIN_TOKEN" --data-binary ''
	if [[ $code == 200 ]] && grep -q '"claimed":' "$dir/body"; then
		ok "$name: POST $mount/v1/drain with Authorization: Bearer reaches the handler (200)"
	else
		notok "$name: POST $mount/v1/drain with Authorization: Bearer reaches the handler (200)"
		show
	fi
	# A --once drainer takes whatever that left (nothing, normally).
	"${AG_DRAINER:?}" --once >>"$dir/drainer.log" 2>&1 || true

	drained=$(sql "SELECT state || ':' || count(*) FROM calls WHERE correlation_id = '$corr' GROUP BY state")
	if [[ $drained == succeeded:$ncalls ]]; then
		ok "$name: all $ncalls calls delivered and 'succeeded'"
	else
		notok "$name: all $ncalls calls delivered and 'succeeded' (got: $(tr '\n' ' ' <<<"$drained"))"
	fi
	api GET "$base$mount/v1/calls/$tid"
	if [[ $code == 200 ]] && grep -q '"state":"succeeded"' "$dir/body"; then
		ok "$name: GET $mount/v1/calls/{id} of the transparent call says succeeded"
	else
		notok "$name: GET $mount/v1/calls/{id} of the transparent call says succeeded"
		show
	fi

	# At the target: the transparent call as the client sent it, without the Proxy header.
	i=$(grep -F "\"path\":\"/tp/$tag/rest%2Fx\"" "$AG_TARGET_LOG" | tail -n 1)
	if [[ -n $i && $i == *'"query":"q=a%2Fb&r=%41"'* && $i == *"\"x-ws-server\":\"$name\""* &&
		$i == *"\"body_base64\":\"$(printf 'transparent via %s' "$name" | base64 -w0)\""* &&
		$i != *'"proxy"'* ]]; then
		ok "$name: the target got the transparent call's path, raw query, header and body, and no Proxy"
	else
		notok "$name: the target got the transparent call's path, raw query, header and body, and no Proxy"
		say "target log: ${i:-(no line for /tp/$tag/rest%2Fx)}"
	fi
	n=$(grep -cF "\"path\":\"/ok/$tag/big" "$AG_TARGET_LOG")
	i=$(grep -F "\"path\":\"/ok/$tag\"" "$AG_TARGET_LOG" | tail -n 1)
	if [[ $n == 2 && $i == *"\"body_base64\":\"$(printf '{"server":"%s"}' "$name" | base64 -w0)\""* ]]; then
		ok "$name: the target got the JSON call's body and both big calls"
	else
		notok "$name: the target got the JSON call's body and both big calls ($n big)"
		say "target log: ${i:-(no line for /ok/$tag)}"
	fi
}

# ---- The handler as plain CGI with a body of unknown length, as Apache mod_cgid hands it a
# chunked request (HTTP_TRANSFER_ENCODING, no CONTENT_LENGTH): 411, nothing read or written.
corr=corr-ws$$-cgi-chunked
printf '%s' "{\"target\":\"$AG_TARGET/x\",\"correlation_id\":\"$corr\"}" |
	env -i ASYNCGATE_CONF="$conf" REQUEST_METHOD=POST REQUEST_URI=/v1/calls \
		CONTENT_TYPE=application/json HTTP_TRANSFER_ENCODING=chunked \
		HTTP_AUTHORIZATION="Bearer ${AG_API_KEY:-}" "$bin" >"$dir/cgi.out" 2>>"$dir/cgi.err"
st=$(head -n 1 "$dir/cgi.out" | tr -d '\r')
got=$(sql "SELECT count(*) FROM calls WHERE correlation_id = '$corr'")
if [[ $st == 'Status: 411 Length Required' && $got == 0 ]] &&
	grep -q '"field":"Content-Length"' "$dir/cgi.out"; then
	ok "plain CGI: a body without CONTENT_LENGTH (chunked) gets 411, nothing written"
else
	notok "plain CGI: a body without CONTENT_LENGTH (chunked) gets 411 ($st, $got rows)"
	sed 's/^/#   /' "$dir/cgi.out" "$dir/cgi.err" | tail -n 5
fi

# ---- Apache: one instance per configuration file, each in its own directory.
apache_bin=$(command -v apache2 || command -v httpd || true)
moddir=/usr/lib/apache2/modules
# apache NAME MODE SNIPPET MOUNT: start Apache with conf/SNIPPET, exercise it, stop it.
apache() {
	local name=$1 mode=$2 snippet=$repo/conf/$3 mount=$4 d=$dir/$1 port pid up=false i
	if [[ -z $apache_bin ]]; then
		notok "$name: apache2 is not installed (scripts/deps.sh installs it)"
		return
	fi
	if [[ $mode == FCGID && ! -f $moddir/mod_fcgid.so ]]; then
		notok "$name: mod_fcgid is not installed (libapache2-mod-fcgid; scripts/deps.sh)"
		return
	fi
	mkdir -p "$d/www"
	mine "$d/run"
	# The main configuration a Debian apache2.conf would be, cut down; the snippet is included
	# inside a virtual host, as its header says to.
	cat >"$d/httpd.conf" <<-'CONF'
		ServerRoot ${AG_WS_DIR}
		ServerName 127.0.0.1
		Listen 127.0.0.1:${AG_WS_PORT}
		PidFile ${AG_WS_DIR}/httpd.pid
		DefaultRuntimeDir ${AG_WS_DIR}/run
		Mutex file:${AG_WS_DIR}/run default
		ErrorLog ${AG_WS_DIR}/error.log
		LogLevel info
		User ${AG_WS_USER}
		Group ${AG_WS_GROUP}
		LoadModule mpm_event_module ${AG_WS_MODS}/mod_mpm_event.so
		LoadModule authz_core_module ${AG_WS_MODS}/mod_authz_core.so
		LoadModule alias_module ${AG_WS_MODS}/mod_alias.so
		LoadModule headers_module ${AG_WS_MODS}/mod_headers.so
		LoadModule env_module ${AG_WS_MODS}/mod_env.so
		<IfDefine FCGID>
			LoadModule fcgid_module ${AG_WS_MODS}/mod_fcgid.so
			FcgidIPCDir ${AG_WS_DIR}/run/fcgid
			FcgidProcessTableFile ${AG_WS_DIR}/run/fcgid_shm
		</IfDefine>
		<IfDefine CGI>
			LoadModule cgid_module ${AG_WS_MODS}/mod_cgid.so
			ScriptSock ${AG_WS_DIR}/run/cgid.sock
		</IfDefine>
		<IfDefine PROXY>
			LoadModule proxy_module ${AG_WS_MODS}/mod_proxy.so
			LoadModule proxy_fcgi_module ${AG_WS_MODS}/mod_proxy_fcgi.so
		</IfDefine>
		StartServers 1
		ServerLimit 1
		ThreadsPerChild 16
		MaxRequestWorkers 16
		MinSpareThreads 1
		MaxSpareThreads 16
		LogFormat "%h %u \"%r\" %>s %b %D" timed
		CustomLog ${AG_WS_DIR}/access.log timed
		DocumentRoot ${AG_WS_DIR}/www
		<Directory />
			AllowOverride None
			Require all denied
		</Directory>
		<Directory ${AG_WS_DIR}/www>
			Require all granted
		</Directory>
		<VirtualHost 127.0.0.1:${AG_WS_PORT}>
			Define ASYNCGATE_BIN ${AG_WS_BIN}
			Define ASYNCGATE_CONF ${AG_WS_CONF}
			Define ASYNCGATE_SOCKET ${AG_WS_SOCKET}
			Include ${AG_WS_SNIPPET}
		</VirtualHost>
	CONF
	for _ in 1 2 3; do
		port=$(free_port) || break
		: >"$d/error.log"
		AG_WS_DIR=$d AG_WS_PORT=$port AG_WS_USER=$wuser AG_WS_GROUP=$wgroup \
			AG_WS_MODS=$moddir AG_WS_BIN=$bin AG_WS_CONF=$conf AG_WS_SOCKET=$sock \
			AG_WS_SNIPPET=$snippet setsid "$apache_bin" -f "$d/httpd.conf" -D "$mode" \
			-D FOREGROUND </dev/null >>"$d/stderr.log" 2>&1 &
		pid=$!
		if wait_up "$pid" "http://127.0.0.1:$port$mount/v1/health"; then
			up=true
			break
		fi
		ag_stop "$pid" "$name" 5
		wait "$pid" 2>/dev/null
		grep -q 'Address already in use' "$d/error.log" "$d/stderr.log" || break
	done
	if ! $up; then
		notok "$name: Apache with conf/$3 did not start"
		tail -n 20 "$d/stderr.log" "$d/error.log" | sed 's/^/#   /'
		return
	fi
	ok "$name: Apache ($mode) with conf/$3 on 127.0.0.1:$port"
	pids+=("$pid")
	names+=("$name")
	exercise "$name" "http://127.0.0.1:$port" "$mount"
	ag_stop "$pid" "$name" 10
	wait "$pid" 2>/dev/null
	unset 'pids[-1]' 'names[-1]'
	if [[ $mode != PROXY ]]; then
		local left
		for ((i = 0; i < 50; i++)); do
			left=$(handler_procs | tr '\n' ' ')
			[[ -z $left ]] && break
			sleep 0.1
		done
		if [[ -z $left ]]; then
			ok "$name: stopped by PID, no handler process left"
		else
			notok "$name: handler processes left after Apache stopped: $left"
		fi
	fi
	if grep -E '\[(crit|alert|emerg)\]|AH01630' "$d/error.log" | sed 's/^/#   /' | grep -q .; then
		notok "$name: nothing critical and no access denied in Apache's error log"
		grep -E '\[(crit|alert|emerg)\]|AH01630' "$d/error.log" | head -n 5 | sed 's/^/#   /'
	fi
}

apache apache-fcgid FCGID apache-fcgid.conf ""
apache apache-proxy PROXY apache-proxy-fcgi.conf ""
apache apache-cgi CGI apache-cgi.conf /asyncgate

# ---- nginx, with conf/nginx-fastcgi.conf included in a server block (socket path replaced).
nginx_run() {
	local d=$dir/nginx port pid up=false nginx_bin
	nginx_bin=$(command -v nginx || true)
	if [[ -z $nginx_bin ]]; then
		notok "nginx: nginx is not installed (scripts/deps.sh installs it)"
		return
	fi
	mkdir -p "$d"
	mine "$d/tmp"
	# `include fastcgi_params` is relative to the main file's directory.
	cp /etc/nginx/fastcgi_params "$d/" || {
		notok "nginx: /etc/nginx/fastcgi_params is missing (package nginx-common)"
		return
	}
	sed "s#unix:/run/asyncgate/fcgi.sock#unix:$sock#" "$repo/conf/nginx-fastcgi.conf" \
		>"$d/asyncgate.conf"
	if cmp -s "$repo/conf/nginx-fastcgi.conf" "$d/asyncgate.conf"; then
		notok "nginx: conf/nginx-fastcgi.conf has no unix:/run/asyncgate/fcgi.sock to replace"
		return
	fi
	for _ in 1 2 3; do
		port=$(free_port) || break
		{
			if ((EUID == 0)); then printf 'user %s %s;\n' "$wuser" "$wgroup"; fi
			cat <<-CONF
				worker_processes 1;
				error_log $d/error.log info;
				pid $d/nginx.pid;
				events { worker_connections 64; }
				http {
					access_log $d/access.log;
					client_body_temp_path $d/tmp/body;
					fastcgi_temp_path $d/tmp/fastcgi;
					proxy_temp_path $d/tmp/proxy;
					uwsgi_temp_path $d/tmp/uwsgi;
					scgi_temp_path $d/tmp/scgi;
					server {
						listen 127.0.0.1:$port;
						root $d/tmp;
						include $d/asyncgate.conf;
					}
				}
			CONF
		} >"$d/nginx.conf"
		: >"$d/error.log"
		setsid "$nginx_bin" -c "$d/nginx.conf" -p "$d" -g 'daemon off;' \
			</dev/null >>"$d/stderr.log" 2>&1 &
		pid=$!
		if wait_up "$pid" "http://127.0.0.1:$port/v1/health"; then
			up=true
			break
		fi
		ag_stop "$pid" nginx 5
		wait "$pid" 2>/dev/null
		grep -q 'Address already in use' "$d/error.log" "$d/stderr.log" || break
	done
	if ! $up; then
		notok "nginx: nginx with conf/nginx-fastcgi.conf did not start"
		tail -n 20 "$d/stderr.log" "$d/error.log" | sed 's/^/#   /'
		return
	fi
	ok "nginx: nginx with conf/nginx-fastcgi.conf on 127.0.0.1:$port"
	pids+=("$pid")
	names+=(nginx)
	exercise nginx "http://127.0.0.1:$port" ""
	ag_stop "$pid" nginx 10
	wait "$pid" 2>/dev/null
	unset 'pids[-1]' 'names[-1]'
}
nginx_run

# ---- lighttpd: run.sh's instance (conf/lighttpd.conf), both listeners.
exercise lighttpd "$AG_URL" ""
exercise lighttpd-standalone "$AG_URL_STANDALONE" ""

exit "$failed"
