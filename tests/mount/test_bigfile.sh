#!/usr/bin/env bash
# Files past 4 GiB (offsets that overflow 32 bits) and a streaming write:
#  - a sparse file with data straddling 4 GiB and at an unaligned offset past
#    5 GiB: size, data, holes, st_blocks; again after a remount;
#  - truncate below 4 GiB, grow again: the cut data never resurfaces;
#  - 64 MiB streamed in (and 16 MiB in odd-sized writes), read back with cmp
#    against the source on disk, again after a remount.
. "$(dirname "$0")/../lib.sh"
t_setup
check "mount" t_mount
MIB=1048576
GIB=$((1024 * MIB))
F=$MNT/big
A=$((4 * GIB - 2 * MIB))        # 4 MiB across the 4 GiB boundary
B=$((5 * GIB + 12345))          # 3 MiB at an unaligned offset past 5 GiB
END=$((B + 3 * MIB))
head -c $((4 * MIB)) /dev/urandom > "$T/a"
head -c $((3 * MIB)) /dev/urandom > "$T/b"

# put SRC OFFSET: write SRC into $F at byte OFFSET without truncating
put() { dd if="$1" of="$F" bs=$MIB seek="$2" oflag=seek_bytes conv=notrunc status=none; }
# get OFFSET LENGTH: bytes of $F
get() { dd if="$F" bs=$MIB skip="$1" count="$2" iflag=skip_bytes,count_bytes status=none; }
zeros() { head -c "$1" /dev/zero; }

verify() { # verify WHEN
	expect_eq "$1: size" "$END" "$(stat -c %s "$F")"
	check "$1: data across 4 GiB" cmp "$T/a" <(get $A $((4 * MIB)))
	check "$1: data past 5 GiB" cmp "$T/b" <(get $B $((3 * MIB)))
	check "$1: hole at 0" cmp <(zeros $MIB) <(get 0 $MIB)
	check "$1: hole at 2 GiB" cmp <(zeros $MIB) <(get $((2 * GIB)) $MIB)
	check "$1: hole just before the data" cmp <(zeros 4096) <(get $((A - 4096)) 4096)
	check "$1: hole between the regions" cmp <(zeros $MIB) <(get $((A + 4 * MIB)) $MIB)
	check "$1: hole up to the unaligned offset" cmp <(zeros 12345) <(get $((5 * GIB)) 12345)
	expect_eq "$1: nothing past EOF" 0 "$(get $END $MIB | wc -c)"
	local blocks
	blocks=$(stat -c %b "$F")
	if [ "$blocks" -lt $((64 * 2048)) ]; then ok "$1: sparse (st_blocks $blocks)"; else
		fail "$1: st_blocks $blocks for 7 MiB of data in a 5 GiB file"; fi
}

put "$T/a" $A
put "$T/b" $B
verify "written"
check "unmount" t_umount
check "remount" t_mount
verify "after remount"

# cut below 4 GiB in the middle of region A, then grow back past 5 GiB
CUT=$((4 * GIB - MIB - 777))
check "truncate below 4 GiB" truncate -s $CUT "$F"
expect_eq "size after cut" $CUT "$(stat -c %s "$F")"
check "data kept below the cut" cmp <(head -c $((CUT - A)) "$T/a") <(get $A $((CUT - A)))
expect_eq "nothing past the cut" 0 "$(get $CUT $MIB | wc -c)"
check "grow to 6 GiB" truncate -s $((6 * GIB)) "$F"
expect_eq "size after growing" $((6 * GIB)) "$(stat -c %s "$F")"
check "cut part of region A reads as zeros" cmp <(zeros $((A + 4 * MIB - CUT))) <(get $CUT $((A + 4 * MIB - CUT)))
check "old region B reads as zeros" cmp <(zeros $((3 * MIB))) <(get $B $((3 * MIB)))
check "data below the cut unchanged" cmp <(head -c $((CUT - A)) "$T/a") <(get $A $((CUT - A)))
check "unmount after truncation" t_umount
check "remount after truncation" t_mount
expect_eq "size after remount" $((6 * GIB)) "$(stat -c %s "$F")"
check "old region B still zeros after remount" cmp <(zeros $((3 * MIB))) <(get $B $((3 * MIB)))
check "cut part still zeros after remount" cmp <(zeros $((A + 4 * MIB - CUT))) <(get $CUT $((A + 4 * MIB - CUT)))
check "remove the big file" rm "$F"

# streaming: 64 MiB written in 1 MiB and in odd-sized writes, read back
head -c $((64 * MIB)) /dev/urandom > "$T/stream"
check "stream 64 MiB in (bs=1M)" dd if="$T/stream" of="$MNT/s1" bs=$MIB status=none
head -c $((16 * MIB)) "$T/stream" > "$T/stream16"
check "stream 16 MiB in (bs=12345)" dd if="$T/stream16" of="$MNT/s2" bs=12345 status=none
check "read back s1 (cmp)" cmp "$T/stream" "$MNT/s1"
check "read back s2 (cmp)" cmp "$T/stream16" "$MNT/s2"
expect_eq "md5 of s1 via dd bs=64k" "$(md5sum < "$T/stream")" \
	"$(dd if="$MNT/s1" bs=65536 status=none | md5sum)"
check "unmount after streaming" t_umount
check "remount after streaming" t_mount
check "s1 after remount" cmp "$T/stream" "$MNT/s1"
check "s2 after remount" cmp "$T/stream16" "$MNT/s2"
check "final unmount" t_umount
t_finish
