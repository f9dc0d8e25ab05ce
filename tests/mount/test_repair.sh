#!/usr/bin/env bash
# check --repair: a store damaged the ways repair is meant for (entries
# deleted with sqlite3 so files and a directory become orphans and link
# counts go wrong, an inode row deleted so an entry names nothing, a file
# unlinked while open when its daemon died, blocks deleted and flipped)
# is fixed without guessing, each fix is reported and audited, forged rows
# are left alone, and the result mounts and reads as expected.
# Format 2: rows deleted with sqlite3 are also missing from the signed
# trees (check says so); a store file put back from an older copy at its
# own path is a rollback, so every "start again from the damaged store"
# below works on a copy at a new path (an instance of its own).
. "$(dirname "$0")/../lib.sh"
t_setup

ORIG=$STORE
check "mount" t_mount
mkdir -p "$MNT/d/sub" "$MNT/keep"
printf 'in the lost directory\n' > "$MNT/d/sub/x"
printf 'first file in d\n' > "$MNT/d/a"
printf 'hard linked twice\n' > "$MNT/f"
ln "$MNT/f" "$MNT/g"
printf 'only one name\n' > "$MNT/lonely"
head -c 65536 /dev/urandom > "$MNT/big"
head -c 65536 /dev/urandom > "$MNT/big2"
printf 'untouched\n' > "$MNT/keep/ok"
cp "$MNT/big" "$T/big.orig"
cp "$MNT/big2" "$T/big2.orig"
declare -A INO
for f in d d/sub d/a f lonely big big2 keep/ok; do
	INO[$f]=$(stat -c %i "$MNT/$f")
done
# a file unlinked while open, left behind by a daemon that died
exec 3<>"$MNT/ghost"
printf 'ghost data\n' >&3
rm "$MNT/ghost"
sync -f "$MNT" 2>/dev/null
sleep 1.5 # the group commit
pid=$(t_pid)
kill -9 "$pid"
for _ in $(seq 100); do
	st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)
	[ -z "$st" ] || [ "$st" = Z ] && break
	sleep 0.02
done
exec 3<&-
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
check_not "dead mount cleared" mountpoint -q "$MNT"
expect_eq "the unlinked-while-open inode is in the store" 1 \
	"$(sqlite3 "$STORE" 'SELECT count(*) FROM inodes WHERE nlink=0')"

expect_status "a healthy store apart from the orphan: check finds it" 4 ctl check
ctl check > "$T/c0.out"
check "check names the open-unlinked orphan" grep -q "unlinked while open" "$T/c0.out"

# the damage
sqlite3 "$STORE" "
  DELETE FROM dentries WHERE id = (SELECT max(id) FROM dentries WHERE ino=${INO[f]});
  DELETE FROM dentries WHERE ino=${INO[lonely]};
  DELETE FROM dentries WHERE ino=${INO[d/sub]};
  DELETE FROM inodes WHERE ino=${INO[d/a]};
  DELETE FROM blocks WHERE ino=${INO[big]} AND blk=3;
  UPDATE blocks SET data = CAST(substr(data,1,40) ||
      CASE WHEN substr(data,41,1) = X'41' THEN X'42' ELSE X'41' END ||
      substr(data,42) AS BLOB) WHERE ino=${INO[big2]} AND blk=5;
" || fail "sqlite3 edits"

ctl check > "$T/c1.out"
expect_eq "damaged store: check exits with the damage status" 4 $?
check "check: orphan file" grep -q "orphan: not reachable" "$T/c1.out"
check "check: wrong link count of /f" grep -q "^/f: link count is 2, should be 1" "$T/c1.out"
check "check: entry naming a missing inode" grep -q "^/d: entry 'a' names inode" "$T/c1.out"
check "check: blocks of the missing inode" grep -q "^inode ${INO[d/a]}: blocks are left of inode ${INO[d/a]}, which does not exist" "$T/c1.out"
check "check: deleted block of /big" grep -q "^/big: 1 blocks of the signed file are gone from the store" "$T/c1.out"
check "check: flipped block of /big2" grep -q "^/big2: 1 of 16 blocks are not the signed ones" "$T/c1.out"
check "check: the deleted entries of the signed state" test "$(grep -c "directory entry [0-9]* of the signed state is gone" "$T/c1.out")" -eq 3
check "check: the deleted inode of the signed state" grep -q "^inode ${INO[d/a]}: inode ${INO[d/a]} of the signed state is gone" "$T/c1.out"

# refusals: mounted read-write, not an admin, bad flags
cp "$STORE" "$T/before-repair.db"
# the busy test on a copy (a mount sweeps the open-unlinked orphan, and
# the original must stay as damaged as it is)
cp "$STORE" "$T/busy.db"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$T/busy.db" "$MNT" && T_MOUNTS+=("$MNT") && t_track "$MNT"
check "mount a copy for the busy test" mountpoint -q "$MNT"
expect_status "repair while mounted read-write: busy" 6 \
	"$CUSTODYCTL" -s "$T/busy.db" -u admin -c "$CONF" --passfile "$PASSFILE" check --repair
check "unmount" t_umount
expect_status "--zero-unreadable without --repair: usage" 2 ctl check --zero-unreadable

# repair without --zero-unreadable: the tree is fixed, the blocks are not
ctl check --repair > "$T/r1.out" 2> "$T/r1.err"
expect_eq "repair leaves unreadable blocks: damage status" 4 $?
check "repaired: /lost+found created" grep -q "^repaired: /lost+found: created" "$T/r1.out"
check "repaired: orphan file linked" grep -q "^repaired: /lost+found/#${INO[lonely]}: orphan" "$T/r1.out"
check "repaired: orphan directory linked" grep -q "^repaired: /lost+found/#${INO[d/sub]}: orphan" "$T/r1.out"
check "repaired: dangling entry dropped" grep -q "^repaired: /d: dropped directory entry" "$T/r1.out"
check "repaired: open-unlinked file removed" grep -q "^repaired: inode [0-9]*: removed: unlinked while open" "$T/r1.out"
check "repaired: stray blocks queued" grep -q "^repaired: inode ${INO[d/a]}: blocks of a deleted inode: queued" "$T/r1.out"
check "repaired: the deleted inode's leaf leaves the signed state" \
	grep -q "^repaired: inode ${INO[d/a]}: inode ${INO[d/a]} of the signed state is gone.*: dropped from the signed state" "$T/r1.out"
expect_eq "repaired: the deleted entries' leaves leave the signed state" 3 \
	"$(grep -c "^repaired: /: directory entry [0-9]* of the signed state is gone.*: dropped from the signed state" "$T/r1.out")"
check_not "repaired: nothing of the signed state is reported gone afterwards" \
	grep -q "of the signed state is gone" <(grep -v '^repaired' "$T/r1.out")
check "repaired: /f link count" grep -q "^repaired: /f: link count is 2, should be 1" "$T/r1.out"
check "repaired: /d link count" grep -q "^repaired: /d: link count is 3, should be 2" "$T/r1.out"
check "repaired: / entry count" grep -q "^repaired: /: directory counts 8 entries, 6 are stored" "$T/r1.out"
check "repaired: /d entry count" grep -q "^repaired: /d: directory counts 1 entries, 0 are stored" "$T/r1.out"
check "block damage still reported" grep -q "^/big2: 1 of 16 blocks are not the signed ones" "$T/r1.out"
check_not "no tree problem left" grep -qE "orphan|link count|names inode" <(grep -v '^repaired' "$T/r1.out")
check_not "blocks untouched without --zero-unreadable" grep -qE "unreadable or stray|block count set" <(grep '^repaired' "$T/r1.out")
check_not "quiet on a non-terminal" grep -q . "$T/r1.err"

ctl check --repair --zero-unreadable --json > "$T/r2.json"
expect_eq "repair --zero-unreadable: clean" 0 $?
expect_eq "json: ok" true "$(jq .ok "$T/r2.json")"
expect_eq "json: two block repairs" 2 "$(jq '.repaired | length' "$T/r2.json")"
expect_eq "json: /big2 block dropped" 1 \
	"$(jq '[.repaired[] | select(.path == "/big2" and (.repaired | test("dropped 1 ")))] | length' "$T/r2.json")"
expect_status "check after repair: clean" 0 ctl check
expect_status "repair of a clean store: nothing to do, clean" 0 ctl check --repair
expect_eq "clean store: no repairs" "check: 0 repairs made" "$(ctl check --repair | head -1)"

# the repaired store mounts and holds what it should
check "mount repaired store" t_mount
expect_eq "orphan directory's file" 'in the lost directory' "$(cat "$MNT/lost+found/#${INO[d/sub]}/x")"
expect_eq "orphan file" 'only one name' "$(cat "$MNT/lost+found/#${INO[lonely]}")"
expect_eq "/f has one link" 1 "$(stat -c %h "$MNT/f")"
check_not "/g is gone" test -e "$MNT/g"
expect_eq "/f content" 'hard linked twice' "$(cat "$MNT/f")"
check_not "/d/a is gone" test -e "$MNT/d/a"
expect_eq "/d nlink" 2 "$(stat -c %h "$MNT/d")"
expect_eq "lost+found mode" 700 "$(stat -c %a "$MNT/lost+found")"
expect_eq "lost+found nlink (one orphan directory)" 3 "$(stat -c %h "$MNT/lost+found")"
# /big: block 3 reads as zeros, the rest as written
cp "$T/big.orig" "$T/big.want"
dd if=/dev/zero of="$T/big.want" bs=4096 seek=3 count=1 conv=notrunc status=none
check "/big: the missing block reads as zeros" cmp "$MNT/big" "$T/big.want"
cp "$T/big2.orig" "$T/big2.want"
dd if=/dev/zero of="$T/big2.want" bs=4096 seek=5 count=1 conv=notrunc status=none
check "/big2: the flipped block reads as zeros" cmp "$MNT/big2" "$T/big2.want"
expect_eq "untouched file" untouched "$(cat "$MNT/keep/ok")"
check "repaired files are writable" sh -c "echo more >> '$MNT/f'"
check "unmount" t_umount
expect_status "check after use" 0 ctl check

# every repair is in the audit trail
n=$(ctl audit list --json --op "check repair" | jq length)
nfix=$(( $(grep -c '^repaired: ' "$T/r1.out") + $(jq '.repaired | length' "$T/r2.json") ))
check "repairs were made ($nfix)" test "$nfix" -ge 12
expect_eq "audit: one row per repair" "$nfix" "$n"
check "audit: the /f link count repair is recorded" jq -e 'any(.[]; .user == "admin" and .result == 0 and (.path | startswith("/f: link count is 2, should be 1")))' <(ctl audit list --json --op "check repair")
expect_eq "the mount purged the stray blocks" 0 \
	"$(sqlite3 "$STORE" "SELECT count(*) FROM blocks WHERE ino=${INO[d/a]}")"
expect_status "audit chain verifies" 0 ctl audit verify

# forged rows are left alone: an inode that is not the signed one (no
# leaf of the inode tree matches it) is reported, never rewritten as
# genuine. On a copy of the damaged store (a new path: its own instance).
STORE=$T/forged.db
cp "$T/before-repair.db" "$STORE"
sqlite3 "$STORE" "UPDATE inodes SET size = size + 1 WHERE ino=${INO[keep/ok]}" || fail "edit"
ctl check --repair --zero-unreadable > "$T/r3.out"
expect_eq "forged inode: still damage after repair" 4 $?
check "forged inode reported" grep -q "^/keep/ok: inode is not the signed one" "$T/r3.out"
check_not "forged inode not rewritten" grep -q "^repaired: /keep/ok" "$T/r3.out"
expect_eq "forged inode row unchanged" 1 \
	"$(sqlite3 "$STORE" "SELECT count(*) FROM inodes WHERE ino=${INO[keep/ok]} AND size=11")"
# the same for a forged directory entry: reported, not dropped or resealed
STORE=$T/forged2.db
cp "$T/before-repair.db" "$STORE"
sqlite3 "$STORE" "UPDATE dentries SET name = CAST(substr(name,1,20) ||
    CASE WHEN substr(name,21,1) = X'41' THEN X'42' ELSE X'41' END || substr(name,22) AS BLOB)
  WHERE ino=${INO[keep/ok]}" || fail "edit"
DID=$(sqlite3 "$STORE" "SELECT id FROM dentries WHERE ino=${INO[keep/ok]}")
ctl check --repair --zero-unreadable > "$T/r4.out"
expect_eq "forged entry: still damage after repair" 4 $?
check "forged entry reported" grep -q "^/keep: directory entry $DID is not the signed one" "$T/r4.out"
check_not "forged entry not rewritten or dropped" grep -qE "^repaired: .*(entry $DID |/keep/ok)" "$T/r4.out"
expect_eq "forged entry row unchanged" 1 "$(sqlite3 "$STORE" "SELECT count(*) FROM dentries WHERE id=$DID")"

# check beside a live read-write mount: a file it holds open after an
# unlink is what the mount still serves, a note, not damage
STORE=$T/live.db
cp "$T/before-repair.db" "$STORE"
ctl check --repair --zero-unreadable > /dev/null 2>&1
expect_status "live: the copy is clean" 0 ctl check
check "live: mount" t_mount
printf 'still open\n' > "$MNT/open-unlinked"
exec 4<"$MNT/open-unlinked"
rm "$MNT/open-unlinked"
sync -f "$MNT" 2>/dev/null
sleep 1.5 # the group commit
expect_eq "live: the unlinked inode is in the store" 1 "$(q 'SELECT count(*) FROM inodes WHERE nlink=0')"
ctl check > "$T/live.out" 2>&1
expect_eq "live: check beside the mount exits 0" 0 $?
check "live: it notes the open unlinked file" grep -q "^note: inode [0-9]*: unlinked, but still open on the read-write mount" "$T/live.out"
check_not "live: not reported as an orphan" grep -q "orphan" "$T/live.out"
ctl check --json > "$T/live.json" 2>/dev/null
expect_eq "live: json ok" true "$(jq .ok "$T/live.json")"
expect_eq "live: json note" 1 "$(jq '.notes | length' "$T/live.json")"
expect_eq "live: the file still reads" "still open" "$(cat <&4)"
exec 4<&-
check "live: unmount" t_umount
expect_status "live: after the mount let go, check is clean" 0 ctl check
expect_eq "live: the mount freed the inode" 0 "$(q 'SELECT count(*) FROM inodes WHERE nlink=0')"

# a writer may not repair (last: adding a user changes the roster, and the
# copies above were taken before)
STORE=$ORIG
printf 'writer-pass\n' > "$T/w.pass"; chmod 600 "$T/w.pass"
ctl user add wr --role writer --new-passfile "$T/w.pass" >/dev/null || fail "user add"
expect_status "a writer may not repair" 5 \
	"$CUSTODYCTL" -s "$STORE" -u wr -c "$CONF" --passfile "$T/w.pass" check --repair
check "the writer's refusal is in the trail" jq -e 'any(.[]; .user == "wr" and .result == -1)' <(ctl audit list --json --user wr)

t_finish
