#!/usr/bin/env bash
# tests/bench/audit-cost.sh - what the audit trail costs: sequential write
# and read through a real mount, with the shipped build (every operation
# audited) and with a build whose filesystem audit rows are compiled out
# (make noaudit), side by side in one run, same disk, median of N rounds.
#   tests/bench/audit-cost.sh [MiB] [rounds]     (default 512 MiB, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-512}
ROUNDS=${2:-3}
make -s all noaudit
W=$(mktemp -d /var/tmp/cfs-auditcost.XXXXXX)
trap 'for m in "$W"/*/mnt; do fusermount3 -u "$m" 2>/dev/null; done; rm -rf "$W"' EXIT
printf 'pw\n' > "$W/pass"; chmod 600 "$W/pass"
printf '[kdf]\nopslimit = 1\nmemlimit = 8M\n' > "$W/c.ini"

wait_exit() { for i in $(seq 200); do pgrep -f "$1\$" >/dev/null || return 0; sleep 0.05; done; }
run() { # run BIN_DIR NAME -> "write_MiBs read_MiBs"
	local bin=$1 d=$W/$2
	rm -rf "$d"; mkdir -p "$d/mnt"
	"$bin/custodyctl" -s "$d/s.db" -u u -c "$W/c.ini" --passfile "$W/pass" init >/dev/null
	"$bin/custodyfs" -u u -c "$W/c.ini" --passfile "$W/pass" "$d/s.db" "$d/mnt"
	local t0 t1 t2
	t0=$(date +%s.%N)
	dd if=/dev/zero of="$d/mnt/f" bs=128k count=$((MIB * 8)) conv=fsync status=none
	t1=$(date +%s.%N)
	fusermount3 -u "$d/mnt"; wait_exit "$d/mnt"
	sync; echo 3 > /proc/sys/vm/drop_caches
	"$bin/custodyfs" -u u -c "$W/c.ini" --passfile "$W/pass" "$d/s.db" "$d/mnt"
	t1b=$(date +%s.%N)
	dd if="$d/mnt/f" of=/dev/null bs=128k status=none
	t2=$(date +%s.%N)
	fusermount3 -u "$d/mnt"; wait_exit "$d/mnt"
	echo "$(echo "$MIB / ($t1 - $t0)" | bc -l) $(echo "$MIB / ($t2 - $t1b)" | bc -l)"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for r in $(seq "$ROUNDS"); do
	run . audited >> "$W/audited.txt"
	run build-noaudit plain >> "$W/plain.txt"
done
aw=$(cut -d' ' -f1 "$W/audited.txt" | median); ar=$(cut -d' ' -f2 "$W/audited.txt" | median)
pw=$(cut -d' ' -f1 "$W/plain.txt" | median); pr=$(cut -d' ' -f2 "$W/plain.txt" | median)
printf '| %s MiB, median of %s | audited (shipped) | audit compiled out | cost |\n|---|---:|---:|---:|\n' "$MIB" "$ROUNDS"
printf '| sequential write + fsync, MiB/s | %.1f | %.1f | %.1f%% |\n' "$aw" "$pw" "$(echo "(1 - $aw / $pw) * 100" | bc -l)"
printf '| sequential read after remount, MiB/s | %.1f | %.1f | %.1f%% |\n' "$ar" "$pr" "$(echo "(1 - $ar / $pr) * 100" | bc -l)"
