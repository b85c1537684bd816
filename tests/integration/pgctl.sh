#!/usr/bin/env bash
# pgctl.sh: stop, start or query the PostgreSQL of a running integration test run (outage tests).
# Usage: tests/integration/pgctl.sh stop|start|restart|status
# Reads AG_PGDATA, PGHOST (socket directory), PGPORT, AG_PG_FAST and AG_PG_LOG as exported by
# tests/integration/run.sh, and runs the server programs as the right user. status exits 0 when
# the server runs, 1 when it does not.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/pg.sh
source "$repo/scripts/pg.sh"

: "${AG_PGDATA:?not set (export it as tests/integration/run.sh does)}"
: "${PGHOST:?not set}" "${PGPORT:?not set}"

case ${1:-} in
start) pg_start "$AG_PGDATA" "$PGHOST" "$PGPORT" ;;
stop) pg_stop "$AG_PGDATA" ;;
restart)
	pg_stop "$AG_PGDATA"
	pg_start "$AG_PGDATA" "$PGHOST" "$PGPORT"
	;;
status) pg_running "$AG_PGDATA" ;;
*)
	printf 'usage: %s stop|start|restart|status\n' "${0##*/}" >&2
	exit 2
	;;
esac
