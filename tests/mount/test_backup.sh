#!/usr/bin/env bash
# Backups: the store file alone is a complete store once the mount is idle
# (copied with cp while still mounted); how much of the file changes when
# 4 KiB of a 64 MiB file changes (what incremental backup tools transfer);
# `custodyctl backup` under a write load is consistent and complete; and
# no -wal/-shm file is left after unmount.
. "$(dirname "$0")/../lib.sh"
t_setup
REF=$T/ref          # plain copies of what was written to the mount
mkdir -p "$REF" "$T/mnt2"

# mount_at STORE DIR: mount another store (a copy) as admin
mount_at() {
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$1" "$2" || return 1
	T_MOUNTS+=("$2")
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
t_finish
