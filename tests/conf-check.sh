#!/usr/bin/env bash
# conf-check: every configuration key the binary knows must be documented in
# conf/asyncgate.conf and README.md (PgBouncer's optscan.sh idea). Prints ok/not ok lines.
set -uo pipefail
bin=${1:?usage: conf-check.sh path/to/asyncgate.fcgi}
cd "$(dirname "$0")/.."
fail=0
keys=$("$bin" --conf-keys) || { echo "not ok - conf-check: $bin --conf-keys failed"; exit 1; }
for k in $keys; do
	if ! grep -Eq "^# $k =( |$)" conf/asyncgate.conf; then
		echo "not ok - conf-check: key $k is missing from conf/asyncgate.conf"
		fail=1
	fi
	if ! grep -q "\`$k\`" README.md; then
		echo "not ok - conf-check: key $k is missing from README.md"
		fail=1
	fi
done
# The sample must also load as it is, and with every default uncommented.
if ASYNCGATE_CONF=conf/asyncgate.conf "$bin" --check-conf >/dev/null 2>&1 &&
	sed -E 's/^# ([a-z_]+ =.*)$/\1/' conf/asyncgate.conf >"${TMPDIR:-/tmp}/ag-conf-$$" &&
	"$bin" --check-conf --conf "${TMPDIR:-/tmp}/ag-conf-$$" >/dev/null 2>&1; then
	:
else
	echo "not ok - conf-check: conf/asyncgate.conf does not load with its defaults uncommented"
	fail=1
fi
rm -f "${TMPDIR:-/tmp}/ag-conf-$$"
[ "$fail" = 0 ] && echo "ok - conf-check: $(echo "$keys" | wc -w) keys documented in conf/asyncgate.conf and README.md"
exit "$fail"
