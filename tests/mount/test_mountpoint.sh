#!/usr/bin/env bash
# Mount points (issue 20, item 6): a directory that is not empty is refused
# unless -o nonempty (its files would be hidden); a live FUSE mount is
# refused always (stacking would hide it from every user); the refusals
# come before the passphrase is asked; findmnt shows the store's path as
# the mount's source, exactly, even with a comma or a space in it.
. "$(dirname "$0")/../lib.sh"
t_setup

in_table() { grep -q " $1 fuse" /proc/mounts; }
# a passphrase command that leaves a mark: was the passphrase asked?
ASKED=$T/asked
ext="touch '$ASKED'; cat '$PASSFILE'"
try_mount() { "$CUSTODYFS" -u admin -c "$CONF" --extpass "$ext" "$@"; }

# ---- a directory that is not empty ----
echo precious > "$MNT/keep.txt"
expect_status "non-empty mount point refused" 1 try_mount "$STORE" "$MNT"
stderr_has "says it is not empty and how to mount anyway" "is not empty.*-o nonempty"
expect_eq "one line" 1 "$(wc -l < "$T/.stderr")"
check_not "refused before the passphrase was asked" test -e "$ASKED"
check_not "nothing mounted" in_table "$MNT"
expect_eq "the directory's file is untouched" precious "$(cat "$MNT/keep.txt")"
check "-o nonempty mounts anyway" try_mount -o nonempty "$STORE" "$MNT"
T_MOUNTS+=("$MNT"); t_track "$MNT"
check_not "the mount hides the file" test -e "$MNT/keep.txt"
check "unmount" t_umount
expect_eq "the file is back after unmount" precious "$(cat "$MNT/keep.txt")"
rm -f "$MNT/keep.txt" "$ASKED"

# ---- a live FUSE mount ----
OTHER=$T/other.db
"$CUSTODYCTL" -s "$OTHER" -u admin -c "$CONF" --passfile "$PASSFILE" init >/dev/null
check "mount the store" t_mount
echo live > "$MNT/live.txt"
expect_status "a second store over the live mount is refused" 1 try_mount "$OTHER" "$MNT"
stderr_has "says it is a live FUSE mount, naming its store" "live FUSE mount.*$STORE"
expect_eq "one line" 1 "$(wc -l < "$T/.stderr")"
check_not "refused before the passphrase was asked" test -e "$ASKED"
expect_status "-o nonempty does not stack it either" 1 try_mount -o nonempty "$OTHER" "$MNT"
expect_eq "one mount in the table" 1 "$(grep -c " $MNT fuse" /proc/mounts)"
expect_eq "the live mount still serves its files" live "$(cat "$MNT/live.txt")"
expect_status "the same store twice on one point is refused too" 1 try_mount "$STORE" "$MNT"

# ---- findmnt: the store is the source ----
expect_eq "findmnt SOURCE is the store's path" "$STORE" "$(findmnt -n -o SOURCE "$MNT")"
expect_eq "findmnt FSTYPE" fuse.custodyfs "$(findmnt -n -o FSTYPE "$MNT")"
check "unmount" t_umount
# a relative path, and one with a comma and a space: exact, absolute
ODD="$T/team, 2026 copy.db"
cp "$STORE" "$ODD"
( cd "$T" && "$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" \
	"team, 2026 copy.db" mnt )
expect_eq "a relative store path with ', ' mounts" 0 "$?"
T_MOUNTS+=("$MNT"); t_track "$MNT"
expect_eq "findmnt shows it absolute and exact" "$ODD" "$(findmnt -n -o SOURCE "$MNT")"
check "unmount" t_umount

# ---- what the mount point must be ----
expect_status "a missing mount point" 1 try_mount "$STORE" "$T/nowhere"
stderr_has "says it does not exist" "mount point '.*nowhere': does not exist"
touch "$T/file"
expect_status "a file as mount point" 1 try_mount "$STORE" "$T/file"
stderr_has "says it is not a directory" "is not a directory"
check_not "none of these asked for the passphrase" test -e "$ASKED"

# ---- the docs say so ----
page() { MANWIDTH=200 man -l "$TOP/etc/$1" 2>/dev/null | col -b; }
check "custodyfs(1) documents nonempty" grep -q "nonempty" <(page custodyfs.1)
check "custodyfs(1) says a live FUSE mount is never mounted over" \
	grep -q "A live FUSE mount is never mounted over" <(page custodyfs.1)
check "custodyfs --help lists nonempty" grep -q "nonempty" <("$CUSTODYFS" --help)
t_finish
