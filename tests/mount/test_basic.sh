#!/usr/bin/env bash
# Smoke test: create, mount, write, read, unmount, remount, read again;
# the mount's kernel read-ahead window ([mount] readahead).
. "$(dirname "$0")/../lib.sh"
t_setup
check "mount" t_mount
echo hello > "$MNT/a.txt"
expect_eq "read back" "hello" "$(cat "$MNT/a.txt")"
mkdir "$MNT/d"
check "mkdir" test -d "$MNT/d"
check "unmount" t_umount
check "remount" t_mount
expect_eq "persisted" "hello" "$(cat "$MNT/a.txt")"
check "dir persisted" test -d "$MNT/d"
check "unmount again" t_umount

# ---- [mount] readahead: the daemon (root) sets its mount's window ----
ra() { cat "/sys/class/bdi/$(mountpoint -d "$1")/read_ahead_kb"; }
# a mount point whose name mountinfo escapes (a space)
MNT="$T/mount point"
mkdir -p "$MNT"
check "mount on a path with a space" t_mount
expect_eq "default read-ahead 4 MiB" 4096 "$(ra "$MNT")"
head -c 9000001 /dev/urandom > "$T/big"
cp "$T/big" "$MNT/big"
check "unmount big" t_umount
sync; echo 1 > /proc/sys/vm/drop_caches
check "remount big" t_mount
expect_eq "cold streaming read with a 4 MiB window" "$(md5sum < "$T/big")" \
	"$(md5sum < "$MNT/big")"
check "unmount 4M" t_umount
printf '[mount]\nreadahead = 1M\n' >> "$CONF"
check "mount readahead=1M" t_mount
expect_eq "read-ahead 1 MiB" 1024 "$(ra "$MNT")"
check "unmount 1M" t_umount
printf '[mount]\nreadahead = 0\n' >> "$CONF"
check "mount readahead=0" t_mount
expect_eq "readahead=0 keeps the kernel's 128 KiB" 128 "$(ra "$MNT")"
expect_eq "read with the kernel's window" "$(md5sum < "$T/big")" \
	"$(md5sum < "$MNT/big")"
check "unmount 0" t_umount
printf '[mount]\nreadahead = 100M\n' >> "$CONF"
expect_status "readahead out of range" 2 \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT"
t_finish
