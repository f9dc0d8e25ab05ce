#!/usr/bin/env bash
# Differential test: build/difftest (tests/difftest.c) runs the same seeded
# random operations on the mount and on a plain directory under $T and
# compares results and trees; then the store is remounted and the trees are
# compared again (diff -r, and modes/types/links/sizes/targets/xattrs).
# Finally the checker is shown able to fail (DIFFTEST_CORRUPT on plain dirs).
#
#   DIFFTEST_OPS=N      operations per seed (default 1500)
#   DIFFTEST_SEEDS=N    number of seeds (default 3), or a list "7 42 1234"
#   DIFFTEST_SEED0=S    first seed when DIFFTEST_SEEDS is a count (default 1)
#   DIFFTEST_CHECK=N    compare the trees every N ops (default 20; 1 is
#                       slower, ~20 ms per check, but pins the failing op)
#   DIFFTEST_MODES=L    cache modes, each on a mount of its own (default
#                       "default writeback exact_reads"; the seeds run in
#                       the first, the others get one seed each unless
#                       DIFFTEST_ALL_SEEDS=1)
# e.g. a million operations in each mode:
#   DIFFTEST_OPS=100000 DIFFTEST_SEEDS=10 DIFFTEST_ALL_SEEDS=1 bash $0
. "$(dirname "$0")/../lib.sh"
CFS_BUILD=${CFS_BUILD:-$TOP/build}
DIFFTEST="$CFS_BUILD/difftest"
[ -x "$DIFFTEST" ] || { echo "$T_NAME: $DIFFTEST missing (make tools)" >&2; exit 1; }
OPS=${DIFFTEST_OPS:-1500}
SEEDS=${DIFFTEST_SEEDS:-3}
CHECK_EVERY=${DIFFTEST_CHECK:-20}
if [[ $SEEDS =~ ^[0-9]+$ ]]; then
	s0=${DIFFTEST_SEED0:-1}
	SEEDS=$(seq "$s0" $((s0 + SEEDS - 1)))
fi

# tree DIR: what must survive a remount, one line per object (no times:
# the reference tree's times are not the mount's; no directory sizes: they
# are the filesystem's own business)
tree() {
	(cd "$1" && find . -printf '%p|%y|%m|%U|%G|%n|%s|%l\n' |
	 awk -F'|' -v OFS='|' '$2 == "d" { $7 = "-" } { print }' | LC_ALL=C sort &&
	 getfattr -R -h -d -m '^user\.' -e hex . 2>/dev/null |
	 awk '/^# file: / { f = substr($0, 9) } /=/ { print f "|" $0 }' | LC_ALL=C sort)
}

MODES=${DIFFTEST_MODES:-default writeback exact_reads}

# run_seeds MODE SEED...: the seeds on the mount (a directory each)
run_seeds() {
	local mode=$1 seed rc flags=() t0 t1; shift
	[ "$mode" = exact_reads ] && flags=(-M) # direct I/O: no shared mmap
	for seed in "$@"; do
		mkdir "$MNT/$mode.s$seed" "$REF/$mode.s$seed"
		t0=$(date +%s)
		"$DIFFTEST" -s "$seed" -n "$OPS" -c "$CHECK_EVERY" "${flags[@]}" \
			"$MNT/$mode.s$seed" "$REF/$mode.s$seed" >"$T/out.$mode.$seed" 2>&1
		rc=$?
		t1=$(date +%s)
		if [ $rc -eq 0 ]; then
			ok "difftest $mode seed $seed, $OPS ops"
			[ -n "${T_VERBOSE:-}" ] && t_log "$mode seed $seed: $OPS ops in $((t1 - t0)) s"
		else
			fail "difftest $mode seed $seed, $OPS ops: exit $rc: $(grep -A4 -m1 -E 'MISMATCH|error' "$T/out.$mode.$seed" | tr '\n' ' ')"
		fi
	done
}

t_setup
REF=$T/ref
mkdir "$REF"
first=1
for mode in $MODES; do
	opts=()
	[ "$mode" != default ] && opts=(-o "$mode")
	check "mount ($mode)" t_mount "${opts[@]}"
	if [ $first = 1 ] || [ -n "${DIFFTEST_ALL_SEEDS:-}" ]; then
		run_seeds "$mode" $SEEDS
	else
		run_seeds "$mode" $(echo $SEEDS | awk '{print $1}')
	fi
	first=0
	check "unmount ($mode)" t_umount
done
check "mount" t_mount
before=$(tree "$MNT")
check "unmount" t_umount
check "remount" t_mount
after=$(tree "$MNT")
if [ "$before" == "$after" ]; then
	ok "trees identical across remount"
else
	fail "tree changed across remount: $(diff <(echo "$before") <(echo "$after") | head -10 | tr '\n' ' ')"
fi
# after the remount the mount must still equal the reference
out=$(diff -r --no-dereference "$MNT" "$REF" 2>&1)
if [ -z "$out" ]; then
	ok "diff -r mount vs reference after remount"
else
	fail "diff -r after remount: $(echo "$out" | head -10 | tr '\n' ' ')"
fi
ref=$(tree "$REF")
if [ "$ref" == "$after" ]; then
	ok "modes, links, sizes, targets, xattrs equal the reference after remount"
else
	fail "metadata differs from the reference: $(diff <(echo "$ref") <(echo "$after") | head -10 | tr '\n' ' ')"
fi
check "unmount at end" t_umount

# the checker can fail: each kind of damage behind its back is reported
for k in 1 2 3 4; do
	mkdir "$T/ca$k" "$T/cb$k"
	DIFFTEST_CORRUPT=$k "$DIFFTEST" -s 7 -n 300 "$T/ca$k" "$T/cb$k" >"$T/corrupt.$k" 2>&1
	rc=$?
	expect_eq "DIFFTEST_CORRUPT=$k makes difftest exit 1" 1 "$rc"
	check "DIFFTEST_CORRUPT=$k reports a MISMATCH" grep -q MISMATCH "$T/corrupt.$k"
done
# and the same run without damage passes on two plain dirs
mkdir "$T/pa" "$T/pb"
expect_status "difftest on two plain dirs" 0 "$DIFFTEST" -s 7 -n 300 "$T/pa" "$T/pb"
t_finish
