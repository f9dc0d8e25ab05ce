#!/usr/bin/env bash
# tests/fuzz/run.sh - run libFuzzer harnesses (make fuzz, make fuzz-smoke).
#   tests/fuzz/run.sh BUILD_DIR SECONDS NAME...
# For each fuzz_NAME: first every saved crash input tests/fuzz/crashes/
# fuzz_NAME-* is replayed (a regression: it must no longer crash), then the
# harness runs for SECONDS on a working corpus BUILD_DIR/corpus/fuzz_NAME
# seeded from tests/fuzz/corpus/fuzz_NAME (the seeds are only read), with
# tests/fuzz/fuzz_NAME.dict if there is one. New crash inputs go to
# BUILD_DIR/crashes/. One line per harness: execs/s, corpus size, result.
# Exits 1 if any harness crashed, leaked or timed out.
set -u
cd "$(dirname "$0")/../.."
BUILD=$1
SECS=$2
shift 2
bad=0
mkdir -p "$BUILD/crashes"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# the harnesses' temp stores (a crash leaves its own behind): one place,
# removed at the end
CFS_UNIT_TMPDIR=$(mktemp -d /var/tmp/cfs-fuzz.XXXXXX) || exit 1
export CFS_UNIT_TMPDIR
trap 'rm -rf "$CFS_UNIT_TMPDIR"' EXIT
for name in "$@"; do
	bin=$BUILD/$name
	log=$BUILD/$name.log
	seeds=tests/fuzz/corpus/$name
	work=$BUILD/corpus/$name
	mkdir -p "$work" "$seeds"
	dict=()
	[ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
	# known crash inputs first
	for c in tests/fuzz/crashes/"$name"-*; do
		[ -f "$c" ] || continue
		if ! "$bin" -runs=1 "$c" >"$log.replay" 2>&1; then
			echo "FUZZ $name: saved crash input $c still fails:"
			grep -m3 -E "ORACLE|ERROR|runtime error|SUMMARY" "$log.replay" | sed 's/^/    /'
			bad=1
		fi
	done
	if "$bin" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2560 \
	     -max_len=4096 -print_final_stats=1 -artifact_prefix="$BUILD/crashes/$name-" \
	     "${dict[@]}" "$work" "$seeds" >"$log" 2>&1; then
		res=ok
	else
		res="FAILED (see $log; input in $BUILD/crashes/)"
		bad=1
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	size=$(ls "$work" | wc -l)
	printf 'FUZZ %-12s %8s runs %6s execs/s corpus %5s  %s\n' "$name" \
	       "${runs:-?}" "${rate:-?}" "$size" "$res"
	if [ "$res" != ok ]; then
		grep -m5 -E "ERROR|runtime error|SUMMARY|ORACLE|Test unit written" "$log" |
			sed 's/^/    /'
	fi
done
exit $bad
