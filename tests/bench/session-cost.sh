#!/usr/bin/env bash
# tests/bench/session-cost.sh - what per-request identity costs (one mount,
# many users): the same workloads on a single-user mount, run by the
# mounting uid, and on an allow_other mount with two other uids logged in,
# run by one of them (every request resolved to its session), side by
# side in one run, median of N rounds.
#   tests/bench/session-cost.sh [files] [rounds]   (default 5000 files, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-5000}
ROUNDS=${2:-3}
make -s all
command -v fio >/dev/null || { echo "session-cost: fio is needed (apt-get install fio)" >&2; exit 1; }
W=$(mktemp -d /var/tmp/cfs-sesscost.XXXXXX)
chmod 755 "$W"
U1=cfsbench1 U2=cfsbench2
for u in $U1 $U2; do id "$u" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$u"; done
# a single-user mount by an unprivileged uid needs /dev/fuse open to it
# (Debian's default 0666; some containers make it 0600): restored at exit
FUSE_MODE=$(stat -c %a /dev/fuse)
chmod 666 /dev/fuse
cleanup() {
	for m in "$W"/*/mnt; do fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || true; done
	chmod "$FUSE_MODE" /dev/fuse
	rm -rf "$W"
	userdel "$U1" 2>/dev/null || true; userdel "$U2" 2>/dev/null || true
}
trap cleanup EXIT
printf '[kdf]\nopslimit = 1\nmemlimit = 8M\n' > "$W/c.ini"
chmod 644 "$W/c.ini"
for u in admin $U1 $U2; do printf '%s-pass\n' "$u" > "$W/$u.pass"; chmod 600 "$W/$u.pass"; done
CTL=$PWD/custodyctl FS=$PWD/custodyfs
wait_exit() { for i in $(seq 200); do pgrep -f "$1\$" >/dev/null || return 0; sleep 0.05; done; }

# workload AS DIR: create, stat (cold), unlink N files, then fio randread
workload() {
	local who=$1 d=$2 t0 t1 t2 t3 r
	run() { if [ "$who" = root ]; then "$@"; else runuser -u "$who" -- "$@"; fi; }
	t0=$(date +%s.%N)
	run perl -e 'chdir $ARGV[0] or die; for (1..$ARGV[1]) { open(my $f, ">", "f$_") or die; close $f }' "$d" "$N"
	t1=$(date +%s.%N)
	echo 3 > /proc/sys/vm/drop_caches
	run perl -e 'chdir $ARGV[0] or die; for (1..$ARGV[1]) { stat("f$_") or die }' "$d" "$N"
	t2=$(date +%s.%N)
	run perl -e 'chdir $ARGV[0] or die; for (1..$ARGV[1]) { unlink("f$_") or die }' "$d" "$N"
	t3=$(date +%s.%N)
	r=$(run fio --name=r --filename="$d/fio.dat" --rw=randread --bs=4k --size=64m \
	    --ioengine=psync --runtime=8 --time_based --output-format=terse 2>/dev/null |
	    awk -F';' '{print $8}')
	echo "$(echo "$N / ($t1 - $t0)" | bc -l) $(echo "$N / ($t2 - $t1)" | bc -l)" \
	     "$(echo "$N / ($t3 - $t2)" | bc -l) $r"
}

setup() { # setup NAME [allow_other]
	local d=$W/$1
	rm -rf "$d"; mkdir -p "$d/mnt"
	# the root directory belongs to whoever runs init: U1 in both cases
	chown -R "$U1" "$d"; cp "$W/admin.pass" "$d/admin.pass"; chown "$U1" "$d/admin.pass"
	runuser -u "$U1" -- env XDG_STATE_HOME="$d/state0" "$CTL" -s "$d/s.db" -u admin \
		-c "$W/c.ini" --passfile "$d/admin.pass" init >/dev/null
	chown -R root "$d/s.db"*
	# the admin reads each new user's passfile as its own, then hands it over
	for u in $U1 $U2; do
		chown root "$W/$u.pass"
		"$CTL" -s "$d/s.db" -u admin -c "$W/c.ini" --passfile "$W/admin.pass" \
			user add "$u" --role writer --new-passfile "$W/$u.pass" >/dev/null
		chown "$u" "$W/$u.pass"
	done
	if [ -n "${2:-}" ]; then
		"$FS" -u admin -c "$W/c.ini" --passfile "$W/admin.pass" -o allow_other "$d/s.db" "$d/mnt"
	else
		# the same uid as the shared case's worker, mounting for itself
		chown -R "$U1" "$d"
		runuser -u "$U1" -- env XDG_STATE_HOME="$d/state" "$FS" -u "$U1" -c "$W/c.ini" \
			--passfile "$W/$U1.pass" "$d/s.db" "$d/mnt"
	fi
	run_as() { if [ -n "${2:-}" ]; then "$@"; else runuser -u "$U1" -- "$@"; fi; }
	if [ -n "${2:-}" ]; then mkdir -m 1777 "$d/mnt/w"; else runuser -u "$U1" -- mkdir -m 1777 "$d/mnt/w"; fi
	runuser -u "$U1" -- dd if=/dev/urandom of="$d/mnt/w/fio.dat" bs=1M count=64 status=none 2>/dev/null ||
		{ dd if=/dev/urandom of="$d/mnt/w/fio.dat" bs=1M count=64 status=none; chmod 666 "$d/mnt/w/fio.dat"; }
	if [ -n "${2:-}" ]; then
		for u in $U1 $U2; do
			runuser -u "$u" -- "$CTL" -u "$u" -c "$W/c.ini" --passfile "$W/$u.pass" \
				login -m "$d/mnt" >/dev/null
		done
	fi
}
teardown() { fusermount3 -u "$W/$1/mnt" 2>/dev/null || umount "$W/$1/mnt"; wait_exit "$W/$1/mnt"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for r in $(seq "$ROUNDS"); do
	setup single; workload "$U1" "$W/single/mnt/w" >> "$W/single.txt"; teardown single
	setup shared 1; workload "$U1" "$W/shared/mnt/w" >> "$W/shared.txt"; teardown shared
done
printf '| %s files, median of %s | single-user mount (uid %s mounts) | allow_other, 2 sessions (a logged-in uid) | shared / single |\n|---|---:|---:|---:|\n' "$N" "$ROUNDS" "$U1"
names=("create, ops/s" "stat after drop_caches, ops/s" "unlink, ops/s" "fio 4 KiB random read, 1 job, IOPS")
for k in 1 2 3 4; do
	a=$(cut -d' ' -f$k "$W/single.txt" | median); b=$(cut -d' ' -f$k "$W/shared.txt" | median)
	printf '| %s | %.0f | %.0f | %.2f |\n' "${names[$((k-1))]}" "$a" "$b" "$(echo "$b / $a" | bc -l)"
done
