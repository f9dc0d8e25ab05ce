#!/usr/bin/env bash
# Edges where the mount must behave as a plain directory (ext4 beside it)
# or refuse cleanly, found by comparing real clients on both:
# - times before 1970 with a fraction keep it (-1.25 s is -2 s + 0.75 s);
#   times past what 64-bit nanoseconds hold (2262) are clamped, not
#   wrapped to 1715;
# - `: > f` on an existing empty file moves its mtime (stamp files);
# - a file's xattr names must fit one listxattr (64 KiB): the set that
#   would not is refused (ENOSPC), so no backup tool meets a set it cannot
#   list; the bare prefix `user.` is no name (EINVAL).
. "$(dirname "$0")/../lib.sh"
t_setup
check "mount" t_mount
PLAIN=$T/plain
mkdir -p "$PLAIN"
for d in "$MNT" "$PLAIN"; do
	touch -d '1960-06-01 12:00:00.25' "$d/old"
	python3 -c 'import os,sys; p=sys.argv[1]; open(p,"w"); os.utime(p, ns=(-1, -1500000000)); print(os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns)' "$d/neg" > "$d.neg"
done
expect_eq "a 1960 time keeps its fraction" "$(stat -c %y "$PLAIN/old")" "$(stat -c %y "$MNT/old")"
expect_eq "-1 ns and -1.5 s come back as set" "$(cat "$PLAIN.neg")" "$(cat "$MNT.neg")"
touch -d '2300-01-01' "$MNT/far"
y=$(stat -c %Y "$MNT/far")
check "a time past 2262 is clamped, not wrapped to the past ($y)" test "$y" -ge 9223372036
python3 -c 'import os,sys; p=sys.argv[1]; open(p,"w"); os.utime(p, ns=(-(2**40)*10**9,)*2); print(os.stat(p).st_mtime_ns)' "$MNT/before" > "$T/before"
expect_eq "a time before 1677 is clamped to the first one" -9223372036854775808 "$(cat "$T/before")"
: > "$MNT/stamp"
touch -d 2000-01-01 "$MNT/stamp"
: > "$MNT/stamp"
check "': > f' on an empty file moves its mtime" test "$(stat -c %Y "$MNT/stamp")" -gt 946684800
python3 - "$MNT/manyx" > "$T/x.out" 2>&1 <<'PY'
import errno, os, sys
p = sys.argv[1]
open(p, "w")
n = 0
try:
    for i in range(2000):
        os.setxattr(p, "user.%05d" % i + "n" * 240, b"v")
        n += 1
    print("all", n)
except OSError as e:
    print("refused", errno.errorcode[e.errno], "after", n)
print("listed", len(os.listxattr(p)))
PY
t_log "$(tr '\n' ' ' < "$T/x.out")"
check "the set that would not fit a listxattr is refused with ENOSPC" grep -q "refused ENOSPC" "$T/x.out"
check "and every name set can still be listed" grep -q "listed $(sed -n 's/.*after \([0-9]*\).*/\1/p' "$T/x.out")\$" "$T/x.out"
python3 -c 'import errno,os,sys
try: os.setxattr(sys.argv[1], "user.", b"v"); print("accepted")
except OSError as e: print(errno.errorcode[e.errno])' "$MNT/stamp" > "$T/empty.out"
expect_eq "the bare prefix user. is no xattr name (EINVAL, as the VFS says)" EINVAL "$(cat "$T/empty.out")"
check "remount" t_umount
check "mount" t_mount
expect_eq "after a remount, the 1960 time is the same" "$(stat -c %y "$PLAIN/old")" "$(stat -c %y "$MNT/old")"
check "unmount" t_umount
expect_status "check" 0 ctl check
t_finish
