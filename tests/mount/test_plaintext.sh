#!/usr/bin/env bash
# No plaintext in the store: distinctive markers written as file content
# (small and multi-block), file and directory names, a symlink target,
# xattr names and values must never appear in the store file or its WAL,
# neither while mounted (after fsync, WAL not yet folded in) nor after
# unmount. The markers are read back through the mount first, so the test
# cannot pass by storing nothing. The passphrase must not appear either.
. "$(dirname "$0")/../lib.sh"
t_setup
# keep the WAL un-checkpointed while mounted: the data sits in -wal
sed -i 's/^idle_checkpoint = .*/idle_checkpoint = 1h/' "$CONF"

M_SMALL=QZXSMALLCONTENTq8v1w
M_BIG=QZXBIGCONTENTr7k2m
M_FNAME=QZXFILENAMEt5j3p
M_DNAME=QZXDIRNAMEy4h6n
M_LINK=QZXLINKTARGETu3g7b
M_XNAME=QZXXATTRNAMEi2f8c
M_XVAL=QZXXATTRVALUEo1d9x
MARKERS=("$M_SMALL" "$M_BIG" "$M_FNAME" "$M_DNAME" "$M_LINK" "$M_XNAME" "$M_XVAL")

check "mount" t_mount
mkdir "$MNT/$M_DNAME"
printf 'hello %s bye\n' "$M_SMALL" > "$MNT/$M_DNAME/small.txt"
# ~300 KiB: many 4 KiB blocks, the marker in every block
yes "$M_BIG" | head -c 300000 > "$MNT/big.bin"
echo content > "$MNT/$M_DNAME/$M_FNAME.txt"
ln -s "/srv/$M_LINK/target" "$MNT/link"
setfattr -n "user.$M_XNAME" -v "$M_XVAL" "$MNT/$M_DNAME/small.txt"
sync "$MNT/big.bin" "$MNT/$M_DNAME/small.txt"

# the markers are really there, through the mount
check "small content readable" grep -q "$M_SMALL" "$MNT/$M_DNAME/small.txt"
expect_eq "big content lines" "$(yes "$M_BIG" | head -c 300000 | md5sum)" "$(md5sum < "$MNT/big.bin")"
check "file name listed" test -f "$MNT/$M_DNAME/$M_FNAME.txt"
check "dir name listed" sh -c "ls '$MNT' | grep -q '$M_DNAME'"
expect_eq "symlink target" "/srv/$M_LINK/target" "$(readlink "$MNT/link")"
expect_eq "xattr value" "$M_XVAL" "$(getfattr --only-values -n "user.$M_XNAME" "$MNT/$M_DNAME/small.txt" 2>/dev/null)"
check "xattr name listed" sh -c "getfattr -d '$MNT/$M_DNAME/small.txt' 2>/dev/null | grep -q '$M_XNAME'"

# grep_store WHEN: none of the markers (nor their halves) in store or WAL
grep_store() {
	local when=$1 f m half
	for f in "$STORE" "$STORE-wal"; do
		[ -f "$f" ] || continue
		for m in "${MARKERS[@]}"; do
			half=${m:3:10}
			if grep -q -a -F -- "$m" "$f" || grep -q -a -F -- "$half" "$f"; then
				fail "$when: '$m' found in $(basename "$f")"
			else
				ok "$when: '$m' not in $(basename "$f")"
			fi
		done
		if grep -q -a -F -- "admin-passphrase" "$f"; then
			fail "$when: the passphrase is in $(basename "$f")"
		else
			ok "$when: passphrase not in $(basename "$f")"
		fi
	done
}

wal_size=$(stat -c %s "$STORE-wal" 2>/dev/null || echo 0)
check "WAL holds the synced data while mounted" test "$wal_size" -gt 300000
grep_store "mounted"

# the audit trail names these paths: it must not leak them either, even
# after reads that add more rows
cat "$MNT/$M_DNAME/$M_FNAME.txt" "$MNT/$M_DNAME/small.txt" >/dev/null
sync "$MNT/big.bin"
grep_store "after reads"

check "unmount" t_umount
check "WAL folded in at unmount" test ! -s "$STORE-wal"
grep_store "unmounted"

# and the markers come back after a remount
check "remount" t_mount
check "small content after remount" grep -q "$M_SMALL" "$MNT/$M_DNAME/small.txt"
expect_eq "xattr after remount" "$M_XVAL" "$(getfattr --only-values -n "user.$M_XNAME" "$MNT/$M_DNAME/small.txt" 2>/dev/null)"
check "unmount again" t_umount
t_finish
