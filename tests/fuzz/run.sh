#!/usr/bin/env bash
# run.sh: runs the libFuzzer harnesses that `make fuzz-build` put in build/fuzz.
#
#   bash tests/fuzz/run.sh smoke SECONDS BIN...   each harness over its seeds, then SECONDS of
#                                                  fuzzing; one "ok - fuzz smoke NAME" line each
#   bash tests/fuzz/run.sh run SECONDS BIN...      each harness for SECONDS on its scratch corpus
#   bash tests/fuzz/run.sh merge 0 BIN...          scratch inputs with new coverage -> the seeds
#
# The seeds in tests/fuzz/corpus/NAME are only read (but by merge): new inputs go to
# build/fuzz/corpus/NAME (run) or to a fresh build/fuzz/smoke/NAME (smoke), findings to
# build/fuzz/artifacts/NAME/, libFuzzer's output to build/fuzz/logs/NAME.log (a smoke's to
# NAME.smoke.log, a merge's to NAME.merge.log). The last line is "N passed, N failed"; the exit
# status is 1 when a harness crashed, leaked, hung or failed to start.

set -u
cd "$(dirname "$0")/../.."

mode=${1:-}
seconds=${2:-}
if [ $# -lt 3 ] || ! [[ $seconds =~ ^[0-9]+$ ]]; then
	echo "usage: bash tests/fuzz/run.sh smoke|run|merge SECONDS BIN..." >&2
	exit 2
fi
shift 2

FZ=build/fuzz
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
passed=0
failed=0

note() { # prints text as TAP comment lines, with control and non-ASCII bytes as '?'
	LC_ALL=C tr -c '[:print:]\t\n' '?' | sed 's/^/#   /'
}

# The part of a log that says what went wrong: from the first report line on.
excerpt() {
	local n
	n=$(grep -n -m1 -E '^fuzz_|ERROR: |runtime error|Sanitizer|deadly signal|timeout' "$1" |
		cut -d: -f1)
	if [ -n "$n" ]; then
		tail -n +"$n" "$1" | head -n 30
	else
		tail -n 15 "$1"
	fi
}

# libFuzzer's closing figures: "N runs, cov C, ft F, corpus K files" from its last lines.
figures() {
	local runs cov ft corp
	runs=$(grep -o -E '^stat::number_of_executed_units: [0-9]+' "$1" | awk '{print $2}')
	cov=$(grep -E '^#[0-9]+' "$1" | tail -n 1 | grep -o -E 'cov: [0-9]+' | awk '{print $2}')
	ft=$(grep -E '^#[0-9]+' "$1" | tail -n 1 | grep -o -E 'ft: [0-9]+' | awk '{print $2}')
	corp=$(grep -E '^#[0-9]+' "$1" | tail -n 1 | grep -o -E 'corp: [0-9]+' | awk '{print $2}')
	echo "${runs:-?} runs, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} inputs"
}

one() {
	local bin=$1 name seeds dict scratch art log rc
	local -a opts
	name=$(basename "$bin")
	seeds=tests/fuzz/corpus/$name
	dict=tests/fuzz/$name.dict
	art=$FZ/artifacts/$name
	log=$FZ/logs/$name.log
	[ "$mode" = run ] || log=$FZ/logs/$name.$mode.log # a smoke keeps the last run's log
	mkdir -p "$art" "$FZ/logs"
	if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
		echo "not ok - fuzz $mode $name (no binary $bin or no seeds $seeds)"
		failed=$((failed + 1))
		return
	fi
	opts=(-artifact_prefix="$art/" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048)
	[ -f "$dict" ] && opts+=(-dict="$dict")

	case $mode in
	merge)
		scratch=$FZ/corpus/$name
		if [ ! -d "$scratch" ]; then
			echo "ok - fuzz merge $name # SKIP nothing in $scratch"
			passed=$((passed + 1))
			return
		fi
		"$bin" -merge=1 "${opts[@]}" "$seeds" "$scratch" >"$log" 2>&1
		rc=$? ;;
	smoke)
		scratch=$FZ/smoke/$name
		rm -rf "$scratch"
		mkdir -p "$scratch"
		timeout --kill-after=10 $((seconds + 120)) "$bin" -max_total_time="$seconds" \
			"${opts[@]}" "$scratch" "$seeds" >"$log" 2>&1
		rc=$? ;;
	run)
		scratch=$FZ/corpus/$name
		mkdir -p "$scratch"
		cp -n "$seeds"/* "$scratch"/ 2>/dev/null
		echo "# fuzz $name: $seconds s; log $log" >&2
		timeout --kill-after=10 $((seconds + 300)) "$bin" -max_total_time="$seconds" \
			"${opts[@]}" "$scratch" >"$log" 2>&1
		rc=$? ;;
	*)
		echo "run.sh: unknown mode $mode" >&2
		exit 2 ;;
	esac

	if [ "$rc" -eq 0 ]; then
		if [ "$mode" = merge ]; then
			echo "ok - fuzz merge $name ($(ls "$seeds" | wc -l) seeds now)"
		else
			echo "ok - fuzz $mode $name ($(figures "$log"))"
		fi
		passed=$((passed + 1))
	else
		echo "not ok - fuzz $mode $name (exit status $rc; log $log)"
		excerpt "$log" | note
		ls -t "$art" 2>/dev/null | head -n 3 | sed "s|^|#   artifact: $art/|"
		failed=$((failed + 1))
	fi
}

for bin in "$@"; do
	one "$bin"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
