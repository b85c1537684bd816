#!/usr/bin/env bash
# check: everything `make check` runs, in order: the configuration drift check, the unit tests,
# the unit tests again under ASan+UBSan, a short run of each fuzz harness over its seeds, then
# the integration suite against real PostgreSQL and lighttpd. Counts every "ok - " /
# "not ok - " line and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0

stage() {
	echo "== $1"
	shift
	"$@" 2>&1 | tee -a "$log"
	local rc=${PIPESTATUS[0]}
	if [ "$rc" != 0 ]; then
		status=1
		# A stage that failed without saying which test did still counts as a failure.
		grep -q '^not ok - ' "$log" || echo "not ok - stage failed: $*" | tee -a "$log"
	fi
}

stage "configuration keys" make --no-print-directory conf-check
stage "unit tests" make --no-print-directory unit
stage "unit tests under ASan+UBSan" make --no-print-directory unit-san
stage "fuzz smoke (libFuzzer)" make --no-print-directory fuzz-smoke
stage "integration tests" make --no-print-directory integration

passed=$(grep -c '^ok - ' "$log")
failed=$(grep -c '^not ok - ' "$log")
[ "$failed" -gt 0 ] && status=1
echo "$passed passed, $failed failed"
exit "$status"
