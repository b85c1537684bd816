#!/usr/bin/env bash
# run.sh: runs cmocka unit test binaries and prints one TAP-style line per test case.
#
#   bash tests/unit/run.sh build/unit/test_call build/unit/test_uuid ...
#
# Each test case gives "ok - <binary>: <test>" or "not ok - <binary>: <test>". A binary that
# crashes (signal, sanitizer report, exit without finishing) gives "not ok" for the test that was
# running, or for the binary itself when no test was running. The last line is
# "N passed, N failed"; the exit status is 1 when anything failed.
#
# cmocka 1.1.5 can print TAP itself (CMOCKA_MESSAGE_OUTPUT=TAP), but a TAP line is written only
# when a test ends, so a crash would leave the crashed test unnamed. The default output writes
# "[ RUN      ] name" (flushed) before each test starts, so that is what is parsed here.

set -u

TIMEOUT=${UNIT_TIMEOUT:-60}
passed=0
failed=0

note() { # prints text as TAP comment lines, with control and non-ASCII bytes as '?'
	LC_ALL=C tr -c '[:print:]\t\n' '?' | sed 's/^/#   /'
}

excerpt() { # the useful part of a crash: the sanitizer report if any, else the last lines
	local text n
	text=$(cat)
	n=$(printf '%s\n' "$text" | grep -n -m1 -E 'Sanitizer|runtime error|exception' | cut -d: -f1)
	if [ -n "$n" ]; then
		printf '%s\n' "$text" | tail -n +"$n" | head -n 30
	else
		printf '%s\n' "$text" | tail -n 15
	fi
}

run_one() {
	local bin=$1 name out rc line current="" in_summary=0
	local -a order=()
	local -A result=()

	name=$(basename "$bin")
	if [ ! -x "$bin" ]; then
		echo "not ok - $name: (binary missing or not executable: $bin)"
		failed=$((failed + 1))
		return
	fi
	out=$(mktemp)
	# Merge stderr into stdout: cmocka flushes its stdout lines, and the error lines it writes
	# to stderr ("[  ERROR   ] --- ...") then land under the test they belong to.
	CMOCKA_MESSAGE_OUTPUT=STDOUT timeout --kill-after=5 "$TIMEOUT" "$bin" >"$out" 2>&1 </dev/null
	rc=$?

	declare -A diag=()
	while IFS= read -r line; do
		case $line in
		'[==========] Running '*)
			in_summary=0 ;;
		'[==========] '*' run.'*)
			in_summary=1; current="" ;;
		'[ RUN      ] '*)
			[ $in_summary = 1 ] && continue
			current=${line#'[ RUN      ] '}
			order+=("$current")
			result[$current]=running ;;
		'[       OK ] '*)
			[ $in_summary = 1 ] && continue
			result[${line#'[       OK ] '}]=ok; current="" ;;
		'[  FAILED  ] '*)
			[ $in_summary = 1 ] && continue
			result[${line#'[  FAILED  ] '}]=failed; current="" ;;
		'[  SKIPPED ] '*)
			[ $in_summary = 1 ] && continue
			result[${line#'[  SKIPPED ] '}]=skipped; current="" ;;
		*)
			# Anything printed while a test runs is kept for its report if it fails.
			if [ -n "$current" ]; then
				diag[$current]+="$line"$'\n'
			fi ;;
		esac
	done <"$out"

	local t bad=0
	for t in "${order[@]}"; do
		case ${result[$t]} in
		ok)
			echo "ok - $name: $t"
			passed=$((passed + 1)) ;;
		skipped)
			echo "ok - $name: $t # SKIP"
			passed=$((passed + 1)) ;;
		failed)
			echo "not ok - $name: $t"
			# The failure message is last; before it may come the library's own log lines.
			printf '%s' "${diag[$t]:-}" | tail -n 12 | note
			failed=$((failed + 1)); bad=1 ;;
		*)
			if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
				echo "not ok - $name: $t (timed out after ${TIMEOUT}s)"
			else
				echo "not ok - $name: $t (crashed, exit status $rc)"
			fi
			printf '%s' "${diag[$t]:-}" | excerpt | note
			failed=$((failed + 1)); bad=1 ;;
		esac
	done
	# A non-zero exit with no test to blame: a failed group setup, a leak found by
	# LeakSanitizer at exit, a crash before the first test, or no tests at all.
	if [ ${#order[@]} -eq 0 ] || { [ "$rc" -ne 0 ] && [ $bad = 0 ]; }; then
		if [ ${#order[@]} -eq 0 ]; then
			echo "not ok - $name: (no test ran, exit status $rc)"
		else
			echo "not ok - $name: (exit status $rc after its tests)"
		fi
		excerpt <"$out" | note
		failed=$((failed + 1))
	fi
	rm -f "$out"
}

if [ $# -eq 0 ]; then
	echo "usage: bash tests/unit/run.sh BIN..." >&2
	exit 2
fi
for bin in "$@"; do
	run_one "$bin"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
