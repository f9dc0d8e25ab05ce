#!/usr/bin/env bash
# Smoke test: create, mount, write, read, unmount, remount, read again.
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
t_finish
