#!/usr/bin/env bash
# Backups: the store file alone is a complete store once the mount is idle
# (copied with cp while still mounted); how much of the file changes when
# 4 KiB of a 64 MiB file changes (what incremental backup tools transfer);
# `custodyctl backup` under a write load is consistent and complete; no
# -wal/-shm file is left after unmount; a backup is a store instance of its
# own (a signed fork commit: its trail shows the backup) and neither a
# backup nor a cp copy, mounted, written and checked, ever makes the
# original refuse to mount, while an older copy of the original put back
# in its place is still refused as a rollback (exit 4).
. "$(dirname "$0")/../lib.sh"
t_setup
REF=$T/ref          # plain copies of what was written to the mount
mkdir -p "$REF" "$T/mnt2"

# mount_at STORE DIR: mount another store (a copy) as admin
mount_at() {
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$1" "$2" || return 1
	T_MOUNTS+=("$2")
	t_track "$2"
	mountpoint -q "$2"
}
# same_files DIR LIST: every file named in LIST is identical in DIR and $REF
same_files() {
	local f bad=0
	while read -r f; do
		cmp -s "$REF/$f" "$1/$f" || { t_log "differs: $f"; bad=1; }
	done < "$2"
	return $bad
}
# wait_idle: the mount checkpoints after [mount] idle_checkpoint (1s here);
# wait (up to 10 s) until the WAL is empty and stays so for a moment
wait_idle() {
	local i
	for i in $(seq 100); do
		if [ ! -s "$STORE-wal" ]; then
			sleep 0.3
			[ ! -s "$STORE-wal" ] && return 0
		fi
		sleep 0.1
	done
	return 1
}

check "mount" t_mount
mkdir -p "$MNT/static/sub" "$REF/static/sub"
for i in 1 2 3 4 5 6; do
	head -c $((i * 37000 + i)) /dev/urandom > "$REF/static/f$i"
	cp "$REF/static/f$i" "$MNT/static/f$i"
done
head -c 5000 /dev/urandom > "$REF/static/sub/small"
cp "$REF/static/sub/small" "$MNT/static/sub/small"
echo target > "$REF/static/sub/t"
cp "$REF/static/sub/t" "$MNT/static/sub/t"
(cd "$REF" && find static -type f | sort) > "$T/static.list"

# ---- 1. the .db file alone, copied with cp while mounted and idle ----
check "idle mount checkpoints the WAL" wait_idle
cp "$STORE" "$T/plain.db"
check "WAL still empty after the copy" test ! -s "$STORE-wal"
check "copy of the .db alone mounts" mount_at "$T/plain.db" "$T/mnt2"
check "copy of the .db alone has all files" same_files "$T/mnt2" "$T/static.list"
expect_eq "copy of the .db alone: listing" "$(cd "$REF/static" && ls -R)" \
	"$(cd "$T/mnt2/static" && ls -R)"
check "unmount the copy" t_umount "$T/mnt2"
check "original still mounted" mountpoint -q "$MNT"

# ---- 2. incremental friendliness: 4 KiB changed in a 64 MiB file ----
head -c $((64 << 20)) /dev/urandom > "$REF/big"
cp "$REF/big" "$MNT/big"
check "idle after 64 MiB" wait_idle
cp "$STORE" "$T/inc0.db"
head -c 4096 /dev/urandom > "$T/patch"
dd if="$T/patch" of="$REF/big" bs=4096 seek=5000 conv=notrunc status=none
dd if="$T/patch" of="$MNT/big" bs=4096 seek=5000 conv=notrunc,fsync status=none
check "patched file reads back" cmp "$REF/big" "$MNT/big"
check "idle after the patch" wait_idle
cp "$STORE" "$T/inc1.db"
s0=$(stat -c %s "$T/inc0.db"); s1=$(stat -c %s "$T/inc1.db")
common=$(cmp -l "$T/inc0.db" "$T/inc1.db" 2>/dev/null |
	awk '{print int(($1 - 1) / 4096)}' | uniq | wc -l)
grown=$(( s1 > s0 ? (s1 - s0 + 4095) / 4096 : 0 ))
pages=$((common + grown))
printf '%s: 4 KiB changed in a 64 MiB file -> %d of %d 4-KiB pages of the store differ (%d KiB; file %d -> %d bytes)\n' \
	"$T_NAME" "$pages" $((s1 / 4096)) $((pages * 4)) "$s0" "$s1"
check "incremental change <= 256 pages (1 MiB), measured $pages" test "$pages" -le 256
check "incremental change is not zero" test "$pages" -gt 0

# ---- 3. custodyctl backup under a write load ----
# Files the writer fsynced before the backup started must be in the backup
# exactly; files it rewrites during the backup must at least read cleanly.
mkdir -p "$MNT/load" "$REF/load"
: > "$T/done.log"
(
	i=0
	while [ ! -e "$T/stop" ]; do
		i=$((i + 1))
		head -c $(( (i % 7 + 1) * 50000 )) /dev/urandom > "$REF/load/n$i"
		dd if="$REF/load/n$i" of="$MNT/load/n$i" bs=64k conv=fsync status=none || break
		echo "load/n$i" >> "$T/done.log"
		head -c 300000 /dev/urandom | dd of="$MNT/load/w$((i % 5))" bs=64k status=none
	done
) &
writer=$!
for i in $(seq 100); do [ "$(wc -l < "$T/done.log")" -ge 10 ] && break; sleep 0.05; done
cp "$T/done.log" "$T/before.list"
cat "$T/static.list" >> "$T/before.list"
echo big >> "$T/before.list"
ctl backup "$T/bk.db" > "$T/bk.out" 2> "$T/bk.err"; st=$?
during=$(wc -l < "$T/done.log")
touch "$T/stop"
wait "$writer"
expect_eq "backup under load: exit" 0 "$st"
t_log "$(cat "$T/bk.out")"
t_log "writer fsynced $(wc -l < "$T/before.list") files before, $during by the end"
check "writer kept writing during the backup" test "$during" -gt "$(grep -c load/ "$T/before.list")"
check "no DEST.tmp left" test ! -e "$T/bk.db.tmp"
check "no -wal beside the backup" test ! -e "$T/bk.db-wal"
check "no -journal beside the backup" test ! -e "$T/bk.db.tmp-journal"
expect_eq "backup is mode 0600" 600 "$(stat -c %a "$T/bk.db")"
expect_eq "backup passes integrity_check" ok "$(sqlite3 "$T/bk.db" 'PRAGMA integrity_check')"
expect_eq "backup opens in WAL mode" wal "$(sqlite3 "$T/bk.db" 'PRAGMA journal_mode')"
expect_eq "backup recorded in the trail" 1 \
	"$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='backup' AND result=0")"
check "backup mounts" mount_at "$T/bk.db" "$T/mnt2"
check "backup has every file fsynced before it began" same_files "$T/mnt2" "$T/before.list"
check "backup's other files all read" tar -C "$T/mnt2" -cf /dev/null .
check "unmount the backup" t_umount "$T/mnt2"

# ---- 4. after unmount the .db stands alone ----
check "unmount" t_umount
check "no -wal after unmount" test ! -e "$STORE-wal"
check "no -shm after unmount" test ! -e "$STORE-shm"
expect_eq "store integrity after all this" ok "$(sqlite3 "$STORE" 'PRAGMA integrity_check')"

# ---- 5. store instances: copies never roll the original back ----
# on_copy DB ARGS...: custodyctl as admin on another store file
on_copy() { local db=$1; shift; "$CUSTODYCTL" -s "$db" -u admin -c "$CONF" --passfile "$PASSFILE" "$@"; }
last_backup() { on_copy "$1" audit list --op backup --json 2>/dev/null | jq -r '.[-1].path // empty'; }
expect_status "backup of the idle store" 0 ctl backup "$T/inst.db"
# the copy's trail ends with its own fork row (naming where it came
# from), the original's with the backup it made (naming the copy)
got=$(last_backup "$T/inst.db")
check "the backup's trail has its fork row, naming the original ($got)" \
	grep -qF "$STORE" <<<"$got"
check_not "the backup's fork row is not the original's row" grep -qF "inst.db" <<<"$got"
got=$(last_backup "$STORE")
check "the original's trail names the backup ($got)" grep -qF "$T/inst.db" <<<"$got"
expect_status "audit verify on the backup (the fork commit is signed)" 0 \
	on_copy "$T/inst.db" audit verify
expect_status "check the backup" 0 on_copy "$T/inst.db" check
check "mount the backup read-write" mount_at "$T/inst.db" "$T/mnt2"
check "write to the backup" sh -c "echo in-backup > '$T/mnt2/only-in-backup'"
check "unmount the backup" t_umount "$T/mnt2"
expect_status "check the written backup" 0 on_copy "$T/inst.db" check
expect_status "audit verify the written backup" 0 on_copy "$T/inst.db" audit verify
# a plain cp copy: checked first, then mounted, written, checked again
cp "$STORE" "$T/cp.db"
expect_status "check a cp copy" 0 on_copy "$T/cp.db" check
check "mount the cp copy read-write" mount_at "$T/cp.db" "$T/mnt2"
check "write to the cp copy" sh -c "echo in-copy > '$T/mnt2/only-in-copy'"
check "unmount the cp copy" t_umount "$T/mnt2"
expect_status "check the written cp copy" 0 on_copy "$T/cp.db" check
expect_status "audit verify the written cp copy" 0 on_copy "$T/cp.db" audit verify
# the original: mounts, has its own files and none of the copies'
expect_status "the original still mounts after its copies were used" 0 \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT"
t_track "$MNT"
check "the original has its files" same_files "$MNT" "$T/static.list"
check_not "the original lacks the backup's file" test -e "$MNT/only-in-backup"
check_not "the original lacks the cp copy's file" test -e "$MNT/only-in-copy"
check "write to the original" sh -c "echo in-original > '$MNT/only-in-original'"
check "unmount the original" t_umount
expect_status "check the original" 0 ctl check
expect_status "audit verify the original" 0 ctl audit verify
# a rolled-back original: the copy taken in part 2 (never opened since),
# put back at the original's path, is older than what this user has seen
check "no -wal beside the original before the swap" test ! -e "$STORE-wal"
mv "$STORE" "$T/current.db"
cp "$T/inc0.db" "$STORE"
expect_status "rolled-back original: mount refused (exit 4)" 4 \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT"
stderr_has "rolled-back original: says rolled back" "rolled back|older than"
if mountpoint -q "$MNT"; then fail "rolled-back original was mounted"; t_track "$MNT"; t_umount; fi
expect_status "rolled-back original: check refused (exit 4)" 4 ctl check
expect_status "rolled-back original: info refused (exit 4)" 4 ctl info
# the current file back in place: mounts again, with its newest write
rm -f "$STORE-wal" "$STORE-shm"
mv "$T/current.db" "$STORE"
check "the current original put back mounts" t_mount
expect_eq "it has its newest write" in-original "$(cat "$MNT/only-in-original" 2>&1)"
check "unmount" t_umount
expect_status "check the original at the end" 0 ctl check
t_finish
