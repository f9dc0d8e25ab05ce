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
# intact DESC: every pristine file reads back exactly on the admin's mount
intact() {
	local d=$1 f bad=""
	if ! t_mnt_as admin 2> "$T/.merr"; then
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
	t_unmount_any
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
	t_fresh
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
t_fresh
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

# ==== (3) a purge queue entry that is no inode number ====
# Anyone who can write the file plants a purge row of 0 or a negative
# number. The queue is advisory, but the purge must not go round for
# ever on it: the daemon must still finish its unmount (and free the
# store's write lock), and compact must end.
for v in -1 0 -9223372036854775808; do
	t_fresh
	q "INSERT INTO purge VALUES($v)"
	if t_mnt_as admin 2> "$T/.merr"; then
		cat "$MNT/keep.txt" > /dev/null
		pid=$(t_pid)
		fusermount3 -u "$MNT"
		gone=0
		for k in $(seq 100); do
			st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || { gone=1; break; }
			[ -z "$st" ] || [ "$st" = Z ] && { gone=1; break; }
			sleep 0.05
		done
		expect_eq "purge row $v: the daemon ends after the unmount" 1 "$gone"
		[ "$gone" = 1 ] || kill -9 "$pid" 2> /dev/null
	else
		fail "purge row $v: admin cannot mount: $(head -c 200 "$T/.merr")"
	fi
	expect_status "purge row $v: compact ends" 0 timeout 20 "$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" compact
	expect_status "purge row $v: the store opens afterwards (not held)" 0 ctl info
	intact "purge row $v"
done

# ==== (4) an entry planted beside a file's or a directory's own ====
# Anyone who can write the file inserts entry rows naming an inode, with
# ids below its signed entry's (any directory, any name). Lookups by name
# never see them, but what walks up from an inode to its parent (the
# path each audit row names, rename's loop check, readdir's "..") must
# take the signed entry, not the first row: else every later row of that
# file says "<ino N>" and `audit list --path` no longer finds it (a
# writer hiding their own writes), and renames into the directory fail.
t_fresh
q "INSERT INTO dentries(id, parent, tag, key_version, name, ino) VALUES
	(-7, 999999, randomblob(32), 1, randomblob(40), $(i d/b)),
	(0, $(i d), randomblob(32), 1, randomblob(40), $(i d/sub))"
check "planted parent entries: bob mounts" t_mnt_as bob
printf 'appended\n' >> "$MNT/d/b"
check "planted parent entries: a rename into the directory works" mv "$MNT/keep.txt" "$MNT/d/sub/keep.txt"
check "planted parent entries: and out again" mv "$MNT/d/sub/keep.txt" "$MNT/keep.txt"
expect_eq "planted parent entries: '..' of d/sub is d" "$(i d)" "$(stat -c %i "$MNT/d/sub/..")"
t_unmount_any
expect_eq "planted parent entries: the write's row names the file's path" "/d/b" \
	"$(ctl audit list --json --op write | jq -r 'map(select(.ino == '"$(i d/b)"'))[-1].path')"
check "planted parent entries: audit list --path finds the write" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --json --op write --path /d/b | jq -e 'length > 1' > /dev/null"
ctl check > "$T/check.out" 2>&1
expect_eq "planted parent entries: check exit 4" 4 "$?"
check "planted parent entries: check names the planted rows" grep -q "directory entry -7 is not the signed one" "$T/check.out"

# ==== (2) an older file forked, then put in the store's place ====
# The reader saved a copy; the store went on (witnessed by syslog). The
# reader opens the saved copy at a path of its own (their local state has
# seen the store, so the copy forks: their own signed commit starts a new
# instance, with syslog off on their side), and puts it in the store's
# place. A host that never saw the store checks it against the witness:
# the witness saw the instance this file left go on past where it left
# it, so the file is an older copy (exit 4), not the store.
t_fresh
LOG=$T/witness.log
t_log_listener "$T/log.sock" "$LOG"
WCONF=$T/witness.ini
cp "$CONF" "$WCONF"
printf '[audit]\nsyslog = on\nsyslog_socket = %s\n' "$T/log.sock" >> "$WCONF"
wctl() { "$CUSTODYCTL" -s "$STORE" -u admin -c "$WCONF" --passfile "$PASSFILE" "$@"; }
rdr_ctl() { XDG_STATE_HOME=$T/rdr-state "$CUSTODYCTL" -s "$1" -u rdr -c "$CONF" --passfile "$T/rdr.pass" info > /dev/null 2>&1; }
expect_status "forked rollback: the admin works on the store (witnessed)" 0 wctl info
check "forked rollback: the reader opens the store" rdr_ctl "$STORE"
cp "$STORE" "$T/saved.db"
"$CUSTODYFS" -u bob -c "$WCONF" --passfile "$T/bob.pass" "$STORE" "$MNT" && { T_MOUNTS+=("$MNT"); t_track "$MNT"; }
check "forked rollback: bob mounts (witnessed)" mountpoint -q "$MNT"
rm -f "$MNT/keep.txt"; printf 'later\n' > "$MNT/later.txt"; sync
t_unmount_any
expect_status "forked rollback: the genuine store verifies against the witness" 0 wctl audit verify --witness "$LOG"
cp "$T/saved.db" "$T/fork.db"
check "forked rollback: the reader opens the saved copy (it forks)" rdr_ctl "$T/fork.db"
check "forked rollback: the copy is an instance of its own" test \
	"$(sqlite3 "$T/fork.db" "SELECT hex(substr(body, 278, 16)) FROM ledger ORDER BY seq DESC LIMIT 1")" != \
	"$(sqlite3 "$T/saved.db" "SELECT hex(substr(body, 278, 16)) FROM ledger ORDER BY seq DESC LIMIT 1")"
cp "$T/fork.db" "$STORE"; rm -f "$STORE-wal" "$STORE-shm"
export XDG_STATE_HOME=$T/fresh-host
t_expect_out "forked rollback: plain audit verify passes (the file alone cannot tell)" 0 wctl audit verify
t_expect_out "forked rollback: audit verify --witness finds an older copy" 4 wctl audit verify --witness "$LOG"
check "forked rollback: the line says it is an older copy" grep -q "it is an older copy" "$T/.stderr"

t_finish
