#!/usr/bin/env bash
# A full disk during a group commit: the COMMIT fails, the group is rolled
# back as a crash would roll it back, and
# - the store stays the newest anyone saw: no later open calls it rolled
#   back (the in-memory head once moved past the commit that failed, and
#   the local state recorded it: every later open was refused);
# - the mount does not go on serving the lost writes from the page cache
#   (the kernel keeps pages across mtime changes: fsops.c op_init);
# - once there is room again, check passes and the data is one of the two
#   versions, whole.
. "$(dirname "$0")/../lib.sh"
t_setup
FULL=$T/full
mkdir -p "$FULL"
mount -t tmpfs -o size=48m tmpfs "$FULL" || { echo "test_diskfull: cannot mount a tmpfs" >&2; exit 1; }
trap 'fusermount3 -u -z "$MNT" 2>/dev/null; umount -l "$FULL" 2>/dev/null; t_cleanup' EXIT
mv "$STORE" "$FULL/s.db"
STORE=$FULL/s.db
head -c 12M /dev/urandom > "$T/A.old"
head -c 12M /dev/urandom > "$T/A.new"

check "mount" t_mount
cp "$T/A.old" "$MNT/A"
check "sync" sync "$MNT/A"
check "unmount" t_umount
avail=$(df -k "$FULL" | awk 'NR == 2 { print $4 }')
dd if=/dev/zero of="$FULL/filler" bs=1K count=$((avail - 3072)) status=none 2>/dev/null
t_log "free on the store's file system: $(df -k "$FULL" | awk 'NR == 2 { print $4 }') KiB"
check "mount on a nearly full disk" t_mount
cat "$MNT/A" > /dev/null # in the page cache
dd if="$T/A.new" of="$MNT/A" bs=1M conv=notrunc status=none 2>"$T/dd.err"
python3 -c 'import os,sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try: os.fsync(fd)
except OSError as e: print(e.strerror)' "$MNT/A" > "$T/fsync.out" 2>&1
t_log "dd: $(head -c 200 "$T/dd.err") fsync: $(cat "$T/fsync.out")"
sleep 0.5 # a tick of the ticker (100 ms) drops the caches of lost work
seen=$(md5sum < "$MNT/A" 2>"$T/read.err" | cut -d' ' -f1)
t_log "after the failure: $(grep -c " $MNT fuse" /proc/mounts) mount(s), read: $(head -c 200 "$T/read.err")"
t_umount || fusermount3 -u -z "$MNT"
rm -f "$FULL/filler"
old=$(md5sum < "$T/A.old" | cut -d' ' -f1)
new=$(md5sum < "$T/A.new" | cut -d' ' -f1)
expect_status "check after the full disk: the store is not called rolled back" 0 ctl check
check "mount after the full disk" t_mount
now=$(md5sum < "$MNT/A" | cut -d' ' -f1)
check "the file is one version, whole" test "$now" = "$old" -o "$now" = "$new"
expect_eq "what the mount served after the failure is what the store holds" "$now" "$seen"
echo more > "$MNT/B"
check "the store takes commits again" sync "$MNT/B"
check "unmount" t_umount
expect_status "check at the end" 0 ctl check
t_finish
