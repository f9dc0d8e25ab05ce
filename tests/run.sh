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
# mount tests: CFS_JOBS at a time (default: the number of CPUs, at most 4;
# each test has its own directory, store and mounts, and those that share
# something machine-wide take a lock of their own), each one's output
# printed whole when it ends
JOBS=${CFS_JOBS:-$(nproc 2>/dev/null || echo 2)}
[ "$JOBS" -gt 4 ] && JOBS=4
[ "$JOBS" -lt 1 ] && JOBS=1
OUT=$(mktemp -d /var/tmp/cfs-run.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
mount_one() { # mount_one NAME SCRIPT: result in $OUT/NAME.rc
	local n=$1 t=$2 start=$(date +%s) rc
	bash "$t" > "$OUT/$n.log" 2>&1
	rc=$?
	echo "$rc $(( $(date +%s) - start ))" > "$OUT/$n.rc"
}
names=()
for t in tests/mount/test_*.sh; do
	[ -f "$t" ] || continue
	n=$(basename "$t" .sh)
	[ -n "$PATTERN" ] && [[ mount/$n != *$PATTERN* ]] && continue
	names+=("$n")
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
	mount_one "$n" "$t" &
done
wait
for n in "${names[@]}"; do
	read -r rc secs < "$OUT/$n.rc" || { rc=1; secs=0; }
	cat "$OUT/$n.log"
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS %-28s %3ss\n' "mount/$n" "$secs"
	else
		failed=$((failed + 1))
		failures+=("mount/$n")
		printf 'FAIL %-28s %3ss\n' "mount/$n" "$secs"
	fi
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
