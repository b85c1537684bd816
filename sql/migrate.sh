#!/usr/bin/env bash
# migrate.sh: apply sql/NNN_*.sql in order, each once, recording each file in schema_migrations
# in the same transaction as the file itself.
#
# Usage: sql/migrate.sh [CONNINFO | -d CONNINFO]
# Without CONNINFO, psql uses libpq's environment (PGHOST, PGPORT, PGDATABASE, PGUSER, service
# file, passfile). Concurrent runs against one database serialise on an advisory lock, and the
# loser skips what the winner applied. Prints one line per applied file, or "migrations: up to
# date". PSQL overrides the psql program.
set -euo pipefail

usage()
{
	printf 'usage: %s [CONNINFO | -d CONNINFO]\n' "${0##*/}" >&2
	exit 2
}

conninfo=
case $# in
0) ;;
1) [[ $1 == -* ]] && usage
   conninfo=$1 ;;
2) [[ $1 == -d ]] || usage
   conninfo=$2 ;;
*) usage ;;
esac

sqldir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LC_COLLATE=C                  # glob order: byte order of the names
export PGCLIENTENCODING=UTF8  # the files are UTF-8 whatever the caller's locale is
psql_cmd=("${PSQL:-psql}" -X -q -v ON_ERROR_STOP=1)
if [[ -n $conninfo ]]; then
	psql_cmd+=(-d "$conninfo")
fi

# Taken inside each transaction below; released by its COMMIT or ROLLBACK.
lock="DO \$\$ BEGIN PERFORM pg_advisory_xact_lock(hashtext('asyncgate.migrate')); END \$\$;"

# 001_init creates the table too (IF NOT EXISTS); it must exist before the first lookup.
"${psql_cmd[@]}" -1 -f - <<EOF
SET client_min_messages = warning;
$lock
CREATE TABLE IF NOT EXISTS schema_migrations (
	version     text PRIMARY KEY,
	applied_at  timestamptz NOT NULL DEFAULT now()
);
EOF
applied=$("${psql_cmd[@]}" -At -c 'SELECT version FROM schema_migrations')

shopt -s nullglob
n=0
for file in "$sqldir"/[0-9][0-9][0-9]_*.sql; do
	version=$(basename "$file" .sql)
	if grep -qxF -- "$version" <<<"$applied"; then
		continue
	fi
	# One transaction: lock, look again (a concurrent run may have applied it while we
	# waited), run the file, record it. ON_ERROR_STOP with -1 rolls all of it back.
	if ! out=$("${psql_cmd[@]}" -1 -v version="$version" -v file="$file" -f - <<EOF
SET client_min_messages = warning;
$lock
SELECT NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = :'version') AS pending \gset
\if :pending
\i :file
INSERT INTO schema_migrations (version) VALUES (:'version');
\echo asyncgate-migrate:applied
\endif
EOF
	); then
		printf 'migrations: %s failed; none of it was applied\n' "$version" >&2
		exit 1
	fi
	if grep -qx 'asyncgate-migrate:applied' <<<"$out"; then
		printf 'migrations: applied %s\n' "$version"
		n=$((n + 1))
	fi
	grep -vx 'asyncgate-migrate:applied' <<<"$out" | grep -v '^$' || true
done
if ((n == 0)); then
	printf 'migrations: up to date\n'
fi
