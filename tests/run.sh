#!/usr/bin/env bash
# tests/run.sh - run the whole suite: unit tests, mount tests, the
# differential tester. Prints one summary line "N passed, M failed".
#   tests/run.sh [--bin DIR] [--build DIR] [--sanitized] [PATTERN]
set -u
cd "$(dirname "$0")/.."
BIN=.
BUILD=build
SAN=""
PATTERN=""
while [ $# -gt 0 ]; do
	case $1 in
	--bin) BIN=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	--sanitized) SAN=1; shift ;;
	*) PATTERN=$1; shift ;;
	esac
done
export CFS_BIN=$(cd "$BIN" && pwd)
export CFS_BUILD=$(cd "$BUILD" && pwd)
if [ -n "$SAN" ]; then
	# leaks are errors; the daemon's ASan report goes to a log we check
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=/var/tmp/cfs-asan
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=/var/tmp/cfs-ubsan
	rm -f /var/tmp/cfs-asan.* /var/tmp/cfs-ubsan.*
fi
passed=0
failed=0
failures=()
run() {
	local name=$1; shift
	local start=$(date +%s)
	if "$@"; then
		passed=$((passed + 1))
		printf 'PASS %-28s %3ss\n' "$name" $(( $(date +%s) - start ))
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf 'FAIL %-28s %3ss\n' "$name" $(( $(date +%s) - start ))
	fi
}
for t in "$CFS_BUILD"/test_*; do
	[ -x "$t" ] || continue
	n=unit/$(basename "$t")
	[ -n "$PATTERN" ] && [[ $n != *$PATTERN* ]] && continue
	run "$n" "$t"
done
for t in tests/mount/test_*.sh; do
	[ -f "$t" ] || continue
	n=mount/$(basename "$t" .sh)
	[ -n "$PATTERN" ] && [[ $n != *$PATTERN* ]] && continue
	run "$n" bash "$t"
done
if [ -n "$SAN" ]; then
	if ls /var/tmp/cfs-asan.* /var/tmp/cfs-ubsan.* >/dev/null 2>&1; then
		echo "sanitizer reports:"
		cat /var/tmp/cfs-asan.* /var/tmp/cfs-ubsan.* 2>/dev/null | head -100
		failed=$((failed + 1))
		failures+=("sanitizer-reports")
	fi
fi
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
