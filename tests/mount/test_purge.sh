#!/usr/bin/env bash
# Deleted means gone.
#   (a) a deleted file's stored ciphertext (32-byte pieces of every block
#       row, read with sqlite3 before the delete) is nowhere in the raw
#       .db file or its -wal once the store has gone idle, nor after
#       unmount; the other file's blocks still are (the search works)
#   (b) unmount finishes the purge queue: rm, then unmount at once
#   (c) kill -9 of the daemon while it purges at unmount loses nothing:
#       compact finishes the queue (and gives the space back), and so
#       does the next mount; check exits 0
#   (d) compact after deleting a 64 MiB file gives back >= 60 MiB
#   (e) key destroy leaves none of the destroyed version's sealed grants
#       in the .db or the -wal; a mount's read snapshot delays it (one
#       line says so; check reports it meanwhile) until the mount's idle
#       checkpoint; a destroyed grant put back is reported by check
#   (f) on a terminal, a purge at unmount that takes more than a second
#       shows a progress line
#   (g) a file removed at the edge of an unmount is freed by that unmount:
#       rm then fusermount3 -u at once (the kernel drops a FORGET still
#       queued), and an open file removed then lazily unmounted (the
#       kernel sends no FORGET at all): no inode row, block or queue entry
#       is left, and check exits 0 with no mount in between
# The raw files are searched before any sqlite3 runs as the last
# connection: its close would fold the WAL in and delete it.
. "$(dirname "$0")/../lib.sh"
t_setup

# hexdump FILE: the file as one line of hex (nothing if absent)
hexdump() { [ -f "$1" ] && perl -0777 -ne 'print unpack("H*", $_)' "$1"; }
# hits FILE NEEDLES: how many needles occur in FILE
hits() { hexdump "$1" | grep -o -F -f "$2" | wc -l; }
# needles SQL OUT: 32-byte pieces (hex) of every blob SQL selects as hex, at
# offsets that do not overlap (grep -o counts matches that do not overlap)
needles() {
	q "$1" | perl -ne 'chomp; $_ = lc; for my $o (0, 40, 1000, 2000, 3000) {
		print substr($_, 2 * $o, 64), "\n" if length($_) >= 2 * $o + 64 }' > "$2"
}
nlines() { wc -l < "$1" | tr -d ' '; }
# wait_until DESC SECONDS CMD...: poll CMD every 0.1 s
wait_until() {
	local d=$1 n=$(( $2 * 10 )); shift 2
	for _ in $(seq "$n"); do "$@" && { ok "$d"; return 0; }; sleep 0.1; done
	fail "$d (not within ${n}0 ms)"
	return 1
}
queue_empty() { [ "$(q 'SELECT count(*) FROM purge')" = 0 ]; }
no_blocks_of() { [ "$(q "SELECT count(*) FROM blocks WHERE ino=$1")" = 0 ]; }
wal_empty() { [ ! -s "$STORE-wal" ]; }
idle_and_purged() { queue_empty && no_blocks_of "$1" && wal_empty; }
size() { stat -c %s "$1"; }
# umount_long: t_umount for an unmount that purges a big file (t_umount
# waits 10 s; a loaded machine purges 1 GiB slower than that)
umount_long() {
	local pid st
	pid=$(t_pid)
	fusermount3 -u "$MNT" || return 1
	for _ in $(seq 1200); do
		[ -n "$pid" ] || return 0
		st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 0
		[ "$st" = Z ] && return 0
		sleep 0.05
	done
	return 1
}
KEEP_SUM=""
keep_intact() { expect_eq "$1: the other file is intact" "$KEEP_SUM" "$(md5sum < "$MNT/keep")"; }

# kill_in_purge FILE MiB: write FILE, remount, rm it, unmount and kill -9
# the daemon while it purges; prints nothing, sets DOOMED_INO
kill_in_purge() {
	local f=$1 mib=$2 pid
	check "mount ($f)" t_mount
	dd if=/dev/urandom of="$MNT/$f" bs=1M count="$mib" status=none
	DOOMED_INO=$(stat -c %i "$MNT/$f")
	check "unmount ($f written)" t_umount
	check "mount ($f to delete)" t_mount
	pid=$(t_pid)
	rm "$MNT/$f"
	fusermount3 -u "$MNT"
	# the inode is queued once the kernel forgets it: kill at once then
	for _ in $(seq 200); do
		[ "$(q "SELECT count(*) FROM purge WHERE ino=$DOOMED_INO")" = 1 ] && break
		sleep 0.01
	done
	kill -9 "$pid"
	# gone, or a zombie nobody has reaped yet
	local st=""
	for _ in $(seq 100); do
		st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || { st=gone; break; }
		[ "$st" = Z ] && break
		sleep 0.02
	done
	check "$f: the daemon is gone" test "$st" = gone -o "$st" = Z
	check "$f: killed while purging: work left in the queue" \
		test "$(q "SELECT count(*) FROM blocks WHERE ino=$DOOMED_INO")" -gt 0
}

# ---- (a) ciphertext of a deleted file, after idle and after unmount ----
check "mount" t_mount
head -c $((8 << 20)) /dev/urandom > "$MNT/doomed"
head -c $((2 << 20)) /dev/urandom > "$MNT/keep"
KEEP_SUM=$(md5sum < "$MNT/keep")
ino=$(stat -c %i "$MNT/doomed")
kino=$(stat -c %i "$MNT/keep")
check "unmount (written)" t_umount
needles "SELECT hex(data) FROM blocks WHERE ino=$ino" "$T/doomed.n"
needles "SELECT hex(data) FROM blocks WHERE ino=$kino" "$T/keep.n"
expect_eq "needles: 5 of each of the 2048 blocks" 10240 "$(nlines "$T/doomed.n")"
# the search finds what is there (the CLI folded the WAL in: all in .db)
expect_eq "before the delete every needle is in the .db" 10240 "$(hits "$STORE" "$T/doomed.n")"
check "mount (to delete)" t_mount
rm "$MNT/doomed"
wait_until "idle: queue empty, blocks gone, WAL emptied" 20 idle_and_purged "$ino"
expect_eq "idle: no piece of the deleted file in the .db" 0 "$(hits "$STORE" "$T/doomed.n")"
expect_eq "idle: none in the -wal" 0 "$(hits "$STORE-wal" "$T/doomed.n")"
check "idle: the other file's blocks are still found" \
	test "$(hits "$STORE" "$T/keep.n")" -ge "$(nlines "$T/keep.n")"
check "unmount (deleted)" t_umount
expect_eq "unmounted: no piece in the .db" 0 "$(hits "$STORE" "$T/doomed.n")"
expect_eq "unmounted: none in the -wal" 0 "$(hits "$STORE-wal" "$T/doomed.n")"
expect_status "check after the delete" 0 ctl check

# ---- (b) unmount finishes the queue ----
check "mount (b)" t_mount
dd if=/dev/urandom of="$MNT/big" bs=1M count=256 status=none
ino=$(stat -c %i "$MNT/big")
check "unmount (b written)" t_umount
check "mount (b delete)" t_mount
rm "$MNT/big" && check "unmount right after rm" umount_long
expect_eq "after unmount: the purge queue is empty" 0 "$(q 'SELECT count(*) FROM purge')"
expect_eq "after unmount: no block of the file left" 0 "$(q "SELECT count(*) FROM blocks WHERE ino=$ino")"
expect_eq "after unmount: no inode row left" 0 "$(q "SELECT count(*) FROM inodes WHERE ino=$ino")"

# ---- (c) kill -9 during the purge at unmount: compact, then a mount ----
kill_in_purge big1 256
before=$(size "$STORE")
out=$(ctl compact 2>"$T/err"); st=$?
expect_eq "compact with work queued: exit 0" 0 "$st"
check "compact says it purged" grep -q "^purged [0-9]* blocks of deleted files" <<<"$out"
expect_eq "compact emptied the queue" 0 "$(q 'SELECT count(*) FROM purge')"
expect_eq "compact: no block of the killed purge left" 0 "$(q "SELECT count(*) FROM blocks WHERE ino=$DOOMED_INO")"
after=$(size "$STORE")
t_log "compact after a killed purge of 256 MiB: $before -> $after bytes"
check "compact gave back >= 240 MiB" test $((before - after)) -ge $((240 << 20))
expect_status "check after compact" 0 ctl check

kill_in_purge big2 256
expect_status "check with the purge half done" 0 ctl check
check "the next mount resumes" t_mount
wait_until "the next mount empties the queue" 30 idle_and_purged "$DOOMED_INO"
keep_intact "after the resumed purge"
check "unmount (resumed)" t_umount
expect_status "check after the resumed purge" 0 ctl check

# ---- (d) compact after deleting a 64 MiB file ----
expect_status "compact first: a tight file to start from" 0 ctl compact
base=$(size "$STORE")
check "mount (d)" t_mount
dd if=/dev/urandom of="$MNT/f64" bs=1M count=64 status=none
check "unmount (d written)" t_umount
check "mount (d delete)" t_mount
rm "$MNT/f64"
check "unmount (d deleted)" umount_long
before=$(size "$STORE")
out=$(ctl compact 2>/dev/null); st=$?
after=$(size "$STORE")
expect_eq "compact exit" 0 "$st"
t_log "compact after deleting 64 MiB: $before -> $after bytes"
check "compact gives back >= 60 MiB" test $((before - after)) -ge $((60 << 20))
check "compact gives back all of it (within 4 MiB)" test "$after" -le $((base + (4 << 20)))
check "mount after compact" t_mount
keep_intact "after compact"
check "unmount (d)" t_umount

# ---- (e) key destroy: no copy of the sealed grants stays ----
rotate_out() {   # retire the active version's predecessor after a rotation
	ctl key rotate >/dev/null 2>&1 && ctl reencrypt >/dev/null 2>&1 &&
		ctl key retire "$1" >/dev/null 2>&1
}
check "rotate to v2, reencrypt, retire v1" rotate_out 1
needles "SELECT hex(sealed) FROM grants WHERE version=1 AND kind IN (1,2)" "$T/v1.n"
check "v1 has sealed grants to look for" test "$(nlines "$T/v1.n")" -ge 3
check "mount (e)" t_mount
check "before destroy v1's grants are in the files" \
	test $(( $(hits "$STORE" "$T/v1.n") + $(hits "$STORE-wal" "$T/v1.n") )) -ge "$(nlines "$T/v1.n")"
expect_status "key destroy v1 (mounted, idle)" 0 ctl key destroy 1 --yes
expect_eq "destroy: no note when no snapshot is held" 0 "$(grep -c . "$T/.stderr")"
expect_eq "destroyed: no piece of v1's grants in the .db" 0 "$(hits "$STORE" "$T/v1.n")"
expect_eq "destroyed: none in the -wal" 0 "$(hits "$STORE-wal" "$T/v1.n")"
expect_status "check after destroy" 0 ctl check

# a reader's snapshot (a mount's are per operation; this one is long)
check "unmount (e)" t_umount
check "rotate to v3, reencrypt, retire v2" rotate_out 2
needles "SELECT hex(sealed) FROM grants WHERE version=2 AND kind IN (1,2)" "$T/v2.n"
V2ROW=$(q "SELECT user_id || ', 2, 1, X''' || hex(sealed) || '''' FROM grants WHERE version=2 AND kind=1 LIMIT 1")
check "mount (e2)" t_mount
( echo "BEGIN; SELECT count(*) FROM grants;"; sleep 9; echo "COMMIT;" ) \
	| sqlite3 "$STORE" >/dev/null 2>&1 &
reader=$!
sleep 0.5
expect_status "key destroy v2 while a snapshot is held" 0 ctl key destroy 2 --yes
stderr_has "destroy: says it completes at the next checkpoint" \
	"destruction completes at .*next checkpoint"
expect_eq "destroy: that note is one line" 1 "$(grep -c . "$T/.stderr")"
ctl check > "$T/check.out" 2>&1; st=$?
expect_eq "check while the WAL holds v2's grants: exit 4" 4 "$st"
check "check names the leftover" grep -qi "a destroyed version's sealed key material still exists in the store file or its WAL" "$T/check.out"
wait "$reader"
wait_until "the mount's idle checkpoint empties the WAL" 15 wal_empty
expect_eq "then: no piece of v2's grants in the .db" 0 "$(hits "$STORE" "$T/v2.n")"
expect_eq "then: none in the -wal" 0 "$(hits "$STORE-wal" "$T/v2.n")"
expect_status "check once the mount checkpointed" 0 ctl check
check "unmount (e2)" t_umount

# a destroyed grant put back (from an old copy) is reported
q "INSERT INTO grants(user_id, version, kind, sealed) VALUES($V2ROW)"
ctl check > "$T/check.out" 2>&1; st=$?
expect_eq "check with a destroyed version's grant put back: exit 4" 4 "$st"
check "check names it" grep -qi "destroyed version's sealed key material still exists.*grants table" "$T/check.out"
q "DELETE FROM grants WHERE version=2"
expect_status "check once it is gone again" 0 ctl check

# ---- (f) a progress line on a terminal ----
check "mount (f)" t_mount
dd if=/dev/urandom of="$MNT/gib" bs=1M count=1024 status=none
check "unmount (f written)" t_umount
script -qec "$CUSTODYFS -f -u admin -c $CONF --passfile $PASSFILE $STORE $MNT" "$T/tty.log" >/dev/null 2>&1 &
for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
T_MOUNTS+=("$MNT")
t_track "$MNT"
rm "$MNT/gib"
check "unmount (f)" umount_long
for _ in $(seq 100); do grep -q "purging deleted files" "$T/tty.log" 2>/dev/null && break; sleep 0.1; done
check "on a terminal the purge at unmount shows progress" grep -q "custodyfs: purging deleted files: [0-9]*/[0-9]* MiB" "$T/tty.log"
expect_eq "the queue is empty after it" 0 "$(q 'SELECT count(*) FROM purge')"

# ---- (g) removed at the edge of the unmount ----
# daemon_gone PID: wait (up to 60 s) until PID has exited
daemon_gone() {
	local st
	for _ in $(seq 1200); do
		st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
		[ "$st" = Z ] && return 0
		sleep 0.05
	done
	return 1
}
# edge_round HOW: 0 when the unmount freed the removed file entirely
edge_round() {
	local ino pid
	t_mount || return 1
	head -c $((1 << 20)) /dev/urandom > "$MNT/edge"
	ino=$(stat -c %i "$MNT/edge")
	pid=$(t_pid)
	if [ "$1" = open ]; then
		exec 7<"$MNT/edge"
		rm "$MNT/edge"
		fusermount3 -u -z "$MNT"
		exec 7<&-
	else
		rm "$MNT/edge" && fusermount3 -u "$MNT"
	fi
	daemon_gone "$pid" || return 1
	[ "$(q "SELECT (SELECT count(*) FROM inodes WHERE ino=$ino) +
	             (SELECT count(*) FROM blocks WHERE ino=$ino) +
	             (SELECT count(*) FROM purge)")" = 0 ]
}
left=0
for i in $(seq 8); do edge_round now || left=$((left + 1)); done
expect_eq "rm then unmount at once: 8 of 8 rounds freed the file" 0 "$left"
left=0
for i in $(seq 3); do edge_round open || left=$((left + 1)); done
expect_eq "open, rm, lazy unmount, close: 3 of 3 rounds freed the file" 0 "$left"
expect_status "check after the edge rounds, no mount between" 0 ctl check

t_finish
