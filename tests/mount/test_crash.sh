#!/usr/bin/env bash
# Durability: kill -9 the daemon, then the store must pass SQLite's
# integrity check, mount again, and hold every byte that was fsynced
# before the kill; everything else must read back without EIO.
#   (a) write + fsync, kill at once
#   (b) rounds of a background writer (creates, appends, overwrites,
#       renames, unlinks, fsyncs) killed at a random moment
. "$(dirname "$0")/../lib.sh"
t_setup
ROUNDS=${CRASH_ROUNDS:-5}
head -c 4000000 /dev/urandom > "$T/pool"
JOURNAL=$T/journal   # md5sum -c lines of the files whose fsync returned
: > "$JOURNAL"

# kill_daemon: kill -9 the daemon of $MNT and clear the dead mount
kill_daemon() {
	local pid
	pid=$(t_pid)
	if [ -z "$pid" ]; then
		fail "no daemon to kill"
		return
	fi
	kill -9 "$pid"
	# gone, or a zombie nobody has reaped yet
	for _ in $(seq 100); do
		[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" ] || break
		[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
		sleep 0.02
	done
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	check_not "dead mount cleared" mountpoint -q "$MNT"
}

# integrity WHEN: SQLite's own check, on a copy (the CLI would otherwise
# fold the WAL in and hide the product's recovery)
integrity() {
	rm -f "$T/copy.db" "$T/copy.db-wal" "$T/copy.db-shm"
	cp "$STORE" "$T/copy.db"
	[ -f "$STORE-wal" ] && cp "$STORE-wal" "$T/copy.db-wal"
	expect_eq "$1: integrity_check" ok "$(sqlite3 "$T/copy.db" 'PRAGMA integrity_check' 2>&1 | head -3)"
	rm -f "$T/copy.db" "$T/copy.db-wal" "$T/copy.db-shm"
}

# verify WHEN: every journaled file intact, every file readable
verify() {
	local when=$1 n
	n=$(wc -l < "$JOURNAL")
	(cd "$MNT" && md5sum -c --quiet "$JOURNAL") > "$T/verr" 2>&1
	expect_eq "$when: all $n fsynced files intact" "" "$(head -c 300 "$T/verr")"
	find "$MNT" -type f -exec cat {} + > /dev/null 2> "$T/readerr"
	expect_eq "$when: every file reads without error" "" "$(head -c 300 "$T/readerr")"
	check "$when: listing works" ls -lR "$MNT"
	# the append-only logs hold nothing but their own lines (or zeros
	# where a later page reached the store before an earlier one)
	local garbage
	garbage=$(cat /dev/null "$MNT"/r*/log.txt 2>/dev/null | tr -d '[:digit:][:space:]eiln\000' | wc -c)
	expect_eq "$when: logs hold no foreign bytes" 0 "$garbage"
}

# ---- (a) fsync, then kill at once ----
check "mount" t_mount
dd if="$T/pool" of="$MNT/synced.bin" bs=64k count=20 conv=fsync 2>/dev/null
printf '%s  synced.bin\n' "$(head -c $((64 * 1024 * 20)) "$T/pool" | md5sum | cut -d' ' -f1)" >> "$JOURNAL"
mkdir "$MNT/dir"
printf 'small and synced\n' > "$MNT/dir/small.txt"
sync "$MNT/dir/small.txt" "$MNT/dir"
printf '%s  dir/small.txt\n' "$(printf 'small and synced\n' | md5sum | cut -d' ' -f1)" >> "$JOURNAL"
printf 'not synced\n' > "$MNT/unsynced.txt"
kill_daemon
integrity "(a)"
check "(a) remount after kill" t_mount
verify "(a)"
if [ -f "$MNT/unsynced.txt" ]; then
	expect_eq "(a) unsynced file, if kept, is whole" "not synced" "$(cat "$MNT/unsynced.txt")"
fi

# ---- (b) random kills under load ----
# writer R: churn in $MNT/rR until the mount dies; journal synced files
writer() {
	local R=$1 D=$MNT/r$1 N=0 size off sum
	mkdir -p "$D" || return
	: > "$D/log.txt" || return
	head -c 200000 "$T/pool" > "$D/churn.bin" || return
	while :; do
		N=$((N + 1))
		size=$(( (RANDOM * 37) % 150000 + 1 ))
		off=$(( (RANDOM * 97) % 3500000 + 1 ))
		tail -c +"$off" "$T/pool" | head -c "$size" > "$T/wbuf.$R"
		sum=$(md5sum < "$T/wbuf.$R" | cut -d' ' -f1)
		cp "$T/wbuf.$R" "$D/s_$N.tmp" 2>/dev/null || break
		echo "line $N" >> "$D/log.txt" 2>/dev/null || break
		dd if="$T/pool" of="$D/churn.bin" bs=4096 seek=$((N % 60)) skip=$((N % 900)) \
			count=3 conv=notrunc 2>/dev/null || break
		echo "gone $N" > "$D/u_$N" 2>/dev/null || break
		mv "$D/s_$N.tmp" "$D/s_$N" 2>/dev/null || break
		rm "$D/u_$N" 2>/dev/null || break
		if [ $((N % 7)) -eq 0 ]; then
			truncate -s $((N * 1000)) "$D/churn.bin" 2>/dev/null || break
		fi
		sync "$D/s_$N" "$D" 2>/dev/null || break
		printf '%s  r%s/s_%s\n' "$sum" "$R" "$N" >> "$JOURNAL"
	done
}

for R in $(seq "$ROUNDS"); do
	before=$(wc -l < "$JOURNAL")
	writer "$R" 2>/dev/null &
	wpid=$!
	# let the first fsync land (slow under ASan), then kill at random
	for _ in $(seq 400); do
		[ "$(wc -l < "$JOURNAL")" -gt "$before" ] && break
		kill -0 "$wpid" 2>/dev/null || break
		sleep 0.05
	done
	sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.2 + rand() * 1.3 }')"
	kill_daemon
	for _ in $(seq 100); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.05; done
	kill "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	t_log "round $R: $(( $(wc -l < "$JOURNAL") - before )) files fsynced before the kill"
	integrity "round $R"
	check "round $R: remount after kill" t_mount || break
	verify "round $R"
done
check "(b) files were fsynced in every round" test "$(wc -l < "$JOURNAL")" -ge $((ROUNDS + 2))

check "final unmount" t_umount
integrity "after clean unmount"
check "WAL folded in at unmount" test ! -s "$STORE-wal"
check "remount after clean unmount" t_mount
verify "final"
check "unmount" t_umount
t_finish
