#!/usr/bin/env bash
# A real source tree from /usr/include is extracted into the mount with tar,
# compared with diff -r (symlinks as links), copied back out with cp -a and
# compared again, then compared once more after a remount. custodyctl check
# (every inode, entry and block against the signed Merkle roots) and audit
# verify must be clean with the tree in place and after rm -r.
#
# All of /usr/include (~9000 entries, 120 MB) takes minutes on a loaded
# 2-core machine, so by default a subset is used: linux/ (many small
# headers), x86_64-linux-gnu/ (nested dirs) and ncursesw/ (symlinks), about
# 1300 entries. TREE_DIRS=. runs the whole tree.
. "$(dirname "$0")/../lib.sh"
t_setup
INC=/usr/include
DIRS=()
for d in ${TREE_DIRS:-linux x86_64-linux-gnu ncursesw}; do
	[ -e "$INC/$d" ] && DIRS+=("$d")
done
if [ ${#DIRS[@]} -eq 0 ]; then
	echo "$T_NAME: no source tree under $INC (install linux-libc-dev)" >&2
	exit 1
fi

check "mount" t_mount
tar -C "$INC" -cf "$T/tree.tar" "${DIRS[@]}" 2>/dev/null
# the reference: the same archive extracted on the local disk
SRC=$T/ref
mkdir "$SRC"
tar -C "$SRC" -xf "$T/tree.tar"
nfiles=$(tar -tf "$T/tree.tar" | wc -l)
t_log "${DIRS[*]}: $nfiles entries, $(du -sh "$T/tree.tar" | cut -f1)"
check "tree has symlinks" test -n "$(find "$SRC" -type l | head -1)"
mkdir "$MNT/inc"
check "tar extracts into the mount" tar -C "$MNT/inc" -xf "$T/tree.tar"

# dtree A B: recursive diff, symlinks compared as links
dtree() { diff -r --no-dereference "$1" "$2" > "$T/diff" 2>&1; }
report() { [ -s "$T/diff" ] && t_log "$(head -5 "$T/diff")"; return 0; }

check "diff source vs mount" dtree "$SRC" "$MNT/inc" || report
expect_eq "same number of entries" "$(cd "$SRC" && find . | wc -l)" "$(cd "$MNT/inc" && find . | wc -l)"
expect_eq "same symlinks" "$(cd "$SRC" && find . -type l | sort | xargs -r readlink | md5sum)" \
	"$(cd "$MNT/inc" && find . -type l | sort | xargs -r readlink | md5sum)"
# modes, and file sizes, as tar restored them (directory sizes may differ)
expect_eq "same modes" "$(cd "$SRC" && find . ! -type l -printf '%p %m\n' | sort | md5sum)" \
	"$(cd "$MNT/inc" && find . ! -type l -printf '%p %m\n' | sort | md5sum)"
expect_eq "same file sizes" "$(cd "$SRC" && find . -type f -printf '%p %s\n' | sort | md5sum)" \
	"$(cd "$MNT/inc" && find . -type f -printf '%p %s\n' | sort | md5sum)"
expect_eq "same mtimes" "$(cd "$SRC" && find . -type f -printf '%p %T@\n' | sort | md5sum)" \
	"$(cd "$MNT/inc" && find . -type f -printf '%p %T@\n' | sort | md5sum)"

expect_status "check with the tree in place (mounted)" 0 ctl check
check "cp -a out of the mount" cp -a "$MNT/inc" "$T/out"
check "diff source vs copy out" dtree "$SRC" "$T/out" || report
rm -rf "$T/out"

check "unmount" t_umount
check "remount" t_mount
check "diff source vs mount after remount" dtree "$SRC" "$MNT/inc" || report
# a tar of the mounted tree lists the same entries as the original
expect_eq "tar listing matches" "$(tar -tf "$T/tree.tar" | sort | md5sum)" \
	"$(tar -C "$MNT/inc" -cf - "${DIRS[@]}" | tar -tf - | sort | md5sum)"
check "rm -r the tree" rm -r "$MNT/inc"
expect_eq "mount empty again" "" "$(ls -A "$MNT")"
check "unmount again" t_umount
expect_status "check after rm -r" 0 ctl check
check "check after rm -r: no files left" grep -q "0 problems; 0 files" <<<"$(ctl check 2>&1)"
expect_status "audit verify after it all" 0 ctl audit verify
t_finish
