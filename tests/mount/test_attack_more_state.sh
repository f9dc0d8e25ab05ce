#!/usr/bin/env bash
# More attacks on the signed state by a store user who writes the store
# file with sqlite3 and holds at most their own keys (test_attack_state.sh
# has the first set). Each attack runs on its own copy of one pristine
# store (a path of its own: an instance of its own, with its own local
# state) and checks what the victim (the admin) sees afterwards.
. "$(dirname "$0")/../lib.sh"
t_setup
PRISTINE=$T/pristine.db

pf bob bob-Secret-Phrase-9
pf rdr rdr-Secret-Phrase-9
cp "$PASSFILE" "$T/admin.pass"
expect_status "pristine: add bob (writer)" 0 ctl user add bob --role writer --new-passfile "$T/bob.pass"
expect_status "pristine: add rdr (reader)" 0 ctl user add rdr --role reader --new-passfile "$T/rdr.pass"
check "pristine: bob mounts" mount_as bob
mkdir -p "$MNT/d/sub"
printf 'first in d\n' > "$MNT/d/a"
printf 'second in d\n' > "$MNT/d/b"
printf 'deeper\n' > "$MNT/d/sub/x"
ln "$MNT/d/a" "$MNT/h"
printf 'keep me\n' > "$MNT/keep.txt"
FILES=(d/a d/b d/sub/x h keep.txt)
declare -A SUM INO
for f in "${FILES[@]}" d d/sub; do INO[$f]=$(stat -c %i "$MNT/$f"); done
for f in "${FILES[@]}"; do SUM[$f]=$(md5sum < "$MNT/$f"); done
check "pristine: unmount" t_umount
expect_status "pristine: check clean" 0 ctl check
cp "$STORE" "$PRISTINE"

i() { echo "${INO[$1]}"; }
N=0
fresh() {
	N=$((N + 1))
	STORE=$T/case$N.db
	cp "$PRISTINE" "$STORE"
	export XDG_STATE_HOME=$T/state$N
}
mnt() {
	local u=$1; shift
	"$CUSTODYFS" -u "$u" -c "$CONF" --passfile "$T/$u.pass" "$@" "$STORE" "$MNT"
	local st=$?
	if grep -q " $MNT fuse" /proc/mounts; then
		T_MOUNTS+=("$MNT")
		t_track "$MNT"
	fi
	return $st
}
unmount_any() { if grep -q " $MNT fuse" /proc/mounts; then t_umount || fusermount3 -u "$MNT"; fi; }
# intact DESC: every pristine file reads back exactly on the admin's mount
intact() {
	local d=$1 f bad=""
	if ! mnt admin 2> "$T/.merr"; then
		fail "$d: admin cannot mount: $(head -c 200 "$T/.merr")"
		return
	fi
	for f in "${FILES[@]}"; do
		[ "$(md5sum < "$MNT/$f" 2>/dev/null)" == "${SUM[$f]}" ] || bad="$bad $f"
	done
	expect_eq "$d: every file reads back" "" "$bad"
	expect_eq "$d: /h and /d/a are still one file of two links" "2 2" \
		"$(stat -c %h "$MNT/h" 2>/dev/null) $(stat -c %h "$MNT/d/a" 2>/dev/null)"
	check_not "$d: nothing was put in /lost+found" test -e "$MNT/lost+found"
	unmount_any
}

# ==== (1) check --repair on a store with an edited directory row ====
# The attacker edits one field of a directory's inode row (its mode: no
# longer a directory; or its size). The row is not the signed one, so
# check reports it. A repair must not take the edited row for evidence:
# dropping every signed entry under it as "its directory does not exist",
# moving its children to /lost+found and rewriting the link counts of
# good files would destroy the names for good; putting the row back
# (from a backup, or the attacker's undo) would then leave an empty
# directory whose signed entries are gone.
for how in "mode=33188" "mode=16832" "size=size+1"; do
	fresh
	SAVE=$(q "SELECT mode || ',' || size FROM inodes WHERE ino=$(i d)")
	q "UPDATE inodes SET $how WHERE ino=$(i d)"
	ctl check > "$T/check.out" 2>&1
	expect_eq "edited directory row ($how): check exit 4" 4 "$?"
	check "edited directory row ($how): check names /d" grep -q "^/d: inode is not the signed one" "$T/check.out"
	ctl check --repair > "$T/repair.out" 2>&1
	expect_eq "edited directory row ($how): repair still exit 4" 4 "$?"
	check_not "edited directory row ($how): no signed entry dropped" grep -q "^repaired: .*dropped directory entry" "$T/repair.out"
	check_not "edited directory row ($how): nothing adopted" grep -q "^repaired: .*lost+found" "$T/repair.out"
	check_not "edited directory row ($how): no link count rewritten" grep -q "^repaired: .*link count" "$T/repair.out"
	expect_eq "edited directory row ($how): every signed entry is still stored" 7 "$(q "SELECT count(*) FROM dentries")"
	q "UPDATE inodes SET mode=${SAVE%,*}, size=${SAVE#*,} WHERE ino=$(i d)"
	expect_status "edited directory row ($how): put back, check is clean" 0 ctl check
	intact "edited directory row ($how)"
done
# the same with an edited entry row (its target no longer known): the
# file it names must not go to /lost+found, nor its link count be set
# from the entries that are left
fresh
DID=$(q "SELECT max(id) FROM dentries WHERE ino=$(i h)")
SAVE=$(q "SELECT ino FROM dentries WHERE id=$DID")
q "UPDATE dentries SET ino=$(i keep.txt) WHERE id=$DID"
ctl check --repair > "$T/repair.out" 2>&1
expect_eq "edited entry row: repair still exit 4" 4 "$?"
check_not "edited entry row: no link count rewritten" grep -q "^repaired: .*link count" "$T/repair.out"
check_not "edited entry row: nothing adopted" grep -q "^repaired: .*lost+found" "$T/repair.out"
q "UPDATE dentries SET ino=$SAVE WHERE id=$DID"
expect_status "edited entry row: put back, check is clean" 0 ctl check
intact "edited entry row"

t_finish
