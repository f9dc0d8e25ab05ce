#!/usr/bin/env bash
# Attacks on the signed state, the audit trail and freshness, by a store
# user who writes the store file with sqlite3 (or copies it) and holds at
# most their own keys. A reader holds the data key but cannot run a forger,
# so forging is done by *replaying*: a row saved earlier is put back after
# the writer changed it (the same outcome as a block forged with the key:
# it is not the signed one). Each attack runs on its own copy of one
# pristine store and checks what the victim (the admin) sees: EIO on the
# mount for the replayed object only, `custodyctl check` exit 4 naming it,
# `audit verify` exit 4 naming the row or commit, refused mounts with exit
# 4 for a rolled-back file, and the other files intact.
. "$(dirname "$0")/../lib.sh"
t_setup
PRISTINE=$T/pristine.db

# ---- the pristine store: bob (writer) writes, rdr (reader) reads ----
pf bob bob-Secret-Phrase-9
pf rdr rdr-Secret-Phrase-9
cp "$PASSFILE" "$T/admin.pass"
expect_status "pristine: add bob (writer)" 0 ctl user add bob --role writer --new-passfile "$T/bob.pass"
expect_status "pristine: add rdr (reader)" 0 ctl user add rdr --role reader --new-passfile "$T/rdr.pass"
check "pristine: bob mounts" mount_as bob
head -c 12000 /dev/urandom > "$MNT/f.bin"       # 3 blocks
printf 'mode file\n' > "$MNT/m.txt"
chmod 644 "$MNT/m.txt"
printf 'renamed file\n' > "$MNT/r.txt"
printf 'deleted file\n' > "$MNT/del.txt"
printf 'xattr file\n' > "$MNT/x.txt"
setfattr -n user.k -v first-value "$MNT/x.txt"
head -c 2100000 /dev/urandom > "$MNT/huge.bin"  # 513 blocks, tree groups
head -c 12000 /dev/urandom > "$MNT/swap.bin"
head -c 12000 /dev/urandom > "$MNT/donor.bin"
head -c 12000 /dev/urandom > "$MNT/recv.bin"
head -c 12000 /dev/urandom > "$MNT/dense.bin"
mkdir -p "$MNT/d"
printf 'in d\n' > "$MNT/d/e.txt"
printf 'also in d\n' > "$MNT/d/g.txt"
printf 'keep me\n' > "$MNT/keep.txt"
FILES=(f.bin m.txt r.txt del.txt x.txt huge.bin swap.bin donor.bin recv.bin dense.bin d/e.txt d/g.txt keep.txt)
declare -A SUM INO
for f in "${FILES[@]}" d; do INO[$f]=$(stat -c %i "$MNT/$f"); done
for f in "${FILES[@]}"; do SUM[$f]=$(md5sum < "$MNT/$f"); done
check "pristine: unmount" t_umount
check "pristine: WAL folded in" test ! -s "$STORE-wal"
expect_status "pristine: check clean" 0 ctl check
cp "$STORE" "$PRISTINE"

i() { echo "${INO[$1]}"; }
N=0
# snap NAME SQL / unsnap TABLE NAME: an attacker's older copy of rows
snap() { sqlite3 "$T/snap.db" "ATTACH '$STORE' AS s; DROP TABLE IF EXISTS $1; CREATE TABLE $1 AS $2"; }
unsnap() { q "ATTACH '$T/snap.db' AS k; INSERT OR REPLACE INTO $1 SELECT * FROM k.$2"; }
# eio DESC CMD...: the command fails with EIO
eio() {
	local d=$1; shift
	if "$@" > /dev/null 2> "$T/.err"; then
		fail "$d: succeeded (the replay was served)"
	elif grep -q "Input/output error" "$T/.err"; then
		ok "$d: EIO"
	else
		fail "$d: fails, but not with EIO: $(head -c 200 "$T/.err")"
	fi
}
# intact DESC EXCEPT...: every other pristine file reads back exactly
intact() {
	local d=$1 f bad=""; shift
	for f in "${FILES[@]}"; do
		[[ " $* " == *" $f "* ]] && continue
		[ "$(md5sum < "$MNT/$f" 2>/dev/null)" == "${SUM[$f]}" ] || bad="$bad $f"
	done
	expect_eq "$d: the other files are intact" "" "$bad"
}
# check_names DESC PATH: custodyctl check exits 4 and names PATH
check_names() {
	ctl check > "$T/check.out" 2>&1
	expect_eq "$1: check exit 4" 4 "$?"
	check "$1: check names $2" grep -qE -- "$2" "$T/check.out"
}
# as_bob_do SHELL: bob mounts, runs SHELL (with $M the mount), unmounts
as_bob_do() {
	if ! t_mnt_as bob 2> "$T/.merr"; then
		fail "bob cannot mount: $(head -c 200 "$T/.merr")"
		return 1
	fi
	M=$MNT eval "$1"
	t_umount
}
# admin_sees DESC: the admin mounts the attacked copy (as a fresh host)
admin_mounts() {
	if t_mnt_as admin 2> "$T/.merr"; then ok "$1: admin mounts"; else fail "$1: admin cannot mount: $(head -c 200 "$T/.merr")"; fi
}

# ==== (10) replays of rows the writer changed since ====
# a block
t_fresh
snap b "SELECT * FROM s.blocks WHERE ino=$(i f.bin) AND blk=1"
as_bob_do 'printf "overwritten" | dd of="$M/f.bin" bs=1 seek=5000 conv=notrunc 2>/dev/null'
unsnap blocks b
admin_mounts "replayed block"
eio "replayed block: reading f.bin" cat "$MNT/f.bin"
check "replayed block: the blocks before it still read" dd if="$MNT/f.bin" of=/dev/null bs=4096 count=1 status=none
intact "replayed block" f.bin
t_unmount_any
check_names "replayed block" "/f.bin"
# an inode row (chmod 600, then the 0644 row put back)
t_fresh
snap n "SELECT * FROM s.inodes WHERE ino=$(i m.txt)"
as_bob_do 'chmod 600 "$M/m.txt"'
unsnap inodes n
admin_mounts "replayed inode"
eio "replayed inode: stat m.txt" stat "$MNT/m.txt"
check_not "replayed inode: never shows 0644" sh -c "stat -c %a '$MNT/m.txt' 2>/dev/null | grep -qx 644"
intact "replayed inode" m.txt
t_unmount_any
check_names "replayed inode" "m.txt"
# a dentry (renamed since, the old entry put back)
t_fresh
snap e "SELECT * FROM s.dentries WHERE ino=$(i r.txt)"
as_bob_do 'mv "$M/r.txt" "$M/r2.txt"'
unsnap dentries e
admin_mounts "replayed dentry"
if cat "$MNT/r.txt" > "$T/.out" 2> "$T/.err"; then
	fail "replayed dentry: the old name serves the file"
else
	check "replayed dentry: the old name gives EIO or is hidden" grep -q "Input/output error\|No such file" "$T/.err"
fi
expect_eq "replayed dentry: the new name still reads" "${SUM[r.txt]}" "$(md5sum < "$MNT/r2.txt" 2>/dev/null)"
intact "replayed dentry" r.txt
t_unmount_any
check_names "replayed dentry" "r.txt"
check "replayed dentry: check names it by its path, not only its number" \
	grep -q "^/r.txt: directory entry [0-9]* ('r.txt') is not the signed one" "$T/check.out"
# a deleted dentry put back (and its inode row, and its blocks)
t_fresh
snap e "SELECT * FROM s.dentries WHERE ino=$(i del.txt)"
snap n "SELECT * FROM s.inodes WHERE ino=$(i del.txt)"
snap b "SELECT * FROM s.blocks WHERE ino=$(i del.txt)"
as_bob_do 'rm "$M/del.txt"; sleep 1.5'
unsnap dentries e
unsnap inodes n
unsnap blocks b
admin_mounts "restored deleted dentry"
if cat "$MNT/del.txt" > "$T/.out" 2> "$T/.err"; then
	fail "restored deleted dentry: the deleted file is served"
else
	check "restored deleted dentry: EIO or hidden" grep -q "Input/output error\|No such file" "$T/.err"
fi
intact "restored deleted dentry" del.txt
t_unmount_any
check_names "restored deleted dentry" "del.txt|inode $(i del.txt)"
# an xattr
t_fresh
snap x "SELECT * FROM s.xattrs WHERE ino=$(i x.txt)"
as_bob_do 'setfattr -n user.k -v second-value "$M/x.txt"'
unsnap xattrs x
admin_mounts "replayed xattr"
eio "replayed xattr: getfattr" getfattr -n user.k "$MNT/x.txt"
check_not "replayed xattr: the old value is never shown" sh -c "getfattr -n user.k '$MNT/x.txt' 2>/dev/null | grep -q first-value"
intact "replayed xattr"
t_unmount_any
check_names "replayed xattr" "x.txt"
# an older group of a file's block tree (mtree rows of huge.bin)
t_fresh
snap t "SELECT * FROM s.mtree WHERE kind=3 AND owner=$(i huge.bin)"
as_bob_do 'printf "changed" | dd of="$M/huge.bin" bs=1 seek=1000000 conv=notrunc 2>/dev/null'
unsnap mtree t
admin_mounts "replayed tree group"
eio "replayed tree group: reading huge.bin" cat "$MNT/huge.bin"
intact "replayed tree group" huge.bin
t_unmount_any
check_names "replayed tree group" "huge.bin"
# an older group of the inode tree (every inode is under it)
t_fresh
snap t "SELECT * FROM s.mtree WHERE kind=1"
as_bob_do 'printf "new\n" > "$M/new.txt"'
unsnap mtree t
t_mnt_as admin > /dev/null 2> "$T/.merr"; st=$?
if [ $st -eq 0 ]; then
	eio "replayed inode tree: reading keep.txt" cat "$MNT/keep.txt"
	t_unmount_any
else
	expect_eq "replayed inode tree: mount refused as damage" 4 "$st"
fi
ctl check > "$T/check.out" 2>&1
expect_eq "replayed inode tree: check exit 4" 4 "$?"
# blocks swapped within a file, moved to another file, deleted from a
# dense file; a dentry row deleted
t_fresh
q "CREATE TEMP TABLE t AS SELECT blk, data FROM blocks WHERE ino=$(i swap.bin) AND blk IN (0,1);
   UPDATE blocks SET data = (SELECT data FROM t WHERE t.blk = 1 - blocks.blk) WHERE ino=$(i swap.bin) AND blk IN (0,1)"
q "DELETE FROM blocks WHERE ino=$(i recv.bin) AND blk=1;
   UPDATE blocks SET ino=$(i recv.bin) WHERE ino=$(i donor.bin) AND blk=1"
q "DELETE FROM blocks WHERE ino=$(i dense.bin) AND blk=1"
q "DELETE FROM dentries WHERE ino=$(i d/g.txt)"
admin_mounts "moved rows"
eio "swapped blocks: reading swap.bin" cat "$MNT/swap.bin"
eio "block moved in: reading recv.bin" cat "$MNT/recv.bin"
eio "block moved out: reading donor.bin" cat "$MNT/donor.bin"
eio "block deleted from a dense file: reading dense.bin" cat "$MNT/dense.bin"
eio "dentry row deleted: listing d/" ls "$MNT/d"
intact "moved rows" swap.bin recv.bin donor.bin dense.bin d/g.txt d/e.txt
t_unmount_any
ctl check > "$T/check.out" 2>&1
expect_eq "moved rows: check exit 4" 4 "$?"
for f in swap.bin recv.bin donor.bin dense.bin; do
	check "moved rows: check names $f" grep -q "/$f" "$T/check.out"
done
check "moved rows: check names the directory of the deleted entry" grep -q "/d\b\|d/g.txt\|entr" "$T/check.out"

# ==== (11) a reader mounts and reads: nothing moves ====
t_fresh
digest() {
	q "SELECT * FROM inodes; SELECT * FROM dentries; SELECT ino, blk, key_version, hex(data) FROM blocks;
	   SELECT kind, owner, level, idx, hex(node) FROM mtree; SELECT ino, hex(tag), hex(value) FROM xattrs" | md5sum
}
D0=$(digest)
check "reader: rdr mounts" t_mnt_as rdr
bad=""
for f in "${FILES[@]}"; do
	[ "$(md5sum < "$MNT/$f" 2>/dev/null)" == "${SUM[$f]}" ] || bad="$bad $f"
done
expect_eq "reader: every file reads" "" "$bad"
check_not "reader: cannot write" sh -c "printf x >> '$MNT/keep.txt'"
check_not "reader: cannot create" sh -c "printf x > '$MNT/new.txt'"
check_not "reader: cannot rename" mv "$MNT/keep.txt" "$MNT/k2.txt"
check_not "reader: cannot set an xattr" setfattr -n user.r -v r "$MNT/keep.txt"
check "reader: unmount" t_umount
expect_eq "reader: no file row moved" "$D0" "$(digest)"
t_expect_out "reader: audit verify" 0 ctl audit verify
expect_status "reader: check clean" 0 ctl check
check "reader: the reads are in the trail" test "$(q "SELECT count(*) FROM audit WHERE user='rdr' AND op='read'")" -gt 0

# ==== (12) the audit trail ====
# rows of bob's and the admin's sessions
t_fresh
AUDIT_PRISTINE=$T/audit-pristine.db
expect_status "trail: admin lists users" 0 ctl user list
check "trail: bob mounts" t_mnt_as bob
cat "$MNT/keep.txt" > /dev/null
check "trail: bob unmounts" t_umount
t_expect_out "trail: baseline audit verify" 0 ctl audit verify
cp "$STORE" "$AUDIT_PRISTINE"
A=0
# trail SQL: a fresh copy of the trail store (a fresh host), edited
trail() {
	A=$((A + 1))
	STORE=$T/trail$A.db
	cp "$AUDIT_PRISTINE" "$STORE"
	export XDG_STATE_HOME=$T/trail-state$A
	[ -n "${1:-}" ] && q "$1"
	return 0
}
MIDROW=$(q "SELECT seq FROM audit WHERE user='bob' ORDER BY seq LIMIT 1 OFFSET 1")
ADMSESS=$(q "SELECT session FROM audit WHERE user='admin' ORDER BY seq DESC LIMIT 1")
trail "UPDATE audit SET session=$ADMSESS WHERE seq=$MIDROW"
t_expect_out "a row moved to the admin's session: audit verify exit 4" 4 ctl audit verify
stderr_has "re-attributed row: the line names the row" "row $MIDROW"
trail "UPDATE audit SET user='admin' WHERE seq=$MIDROW"
t_expect_out "a row's user edited to admin: audit verify exit 4" 4 ctl audit verify
stderr_has "edited user: the line names the row" "row $MIDROW"
trail "DELETE FROM audit WHERE seq=$MIDROW"
t_expect_out "a middle row deleted: audit verify exit 4" 4 ctl audit verify
stderr_has "deleted row: the line names where" "row $((MIDROW + 1))|row $MIDROW"
trail "UPDATE audit SET seq=-1 WHERE seq=$MIDROW; UPDATE audit SET seq=$MIDROW WHERE seq=$((MIDROW + 1)); UPDATE audit SET seq=$((MIDROW + 1)) WHERE seq=-1"
t_expect_out "two rows reordered (seq swapped): audit verify exit 4" 4 ctl audit verify
stderr_has "reordered rows: the line names the row" "row $MIDROW|row $((MIDROW + 1))"
LASTROW=$(sqlite3 "$AUDIT_PRISTINE" "SELECT max(seq) FROM audit")
trail "DELETE FROM audit WHERE seq > $((LASTROW - 3))"
t_expect_out "the tail cut (3 rows): audit verify exit 4" 4 ctl audit verify
stderr_has "cut tail: the line names where" "cut from the end|row $((LASTROW + 1)) follows row $((LASTROW - 3))"
# a row of another store put in place of ours
OTHER=$T/other.db
"$CUSTODYCTL" -s "$OTHER" -u admin -c "$CONF" --passfile "$PASSFILE" init > /dev/null 2>&1
"$CUSTODYCTL" -s "$OTHER" -u admin -c "$CONF" --passfile "$PASSFILE" user list > /dev/null 2>&1
trail "ATTACH '$OTHER' AS o; INSERT OR REPLACE INTO audit SELECT * FROM o.audit WHERE seq=2"
t_expect_out "a row copied from another store: audit verify exit 4" 4 ctl audit verify
stderr_has "foreign row: the line names it" "row 2"
# a row invented from scratch after the tail (a hash of the right length)
trail "INSERT INTO audit SELECT seq + 1, time, user, session, uid, gid, pid, 'unlink', ino, offset, length, result, detail, randomblob(32) FROM audit WHERE seq=$LASTROW"
t_expect_out "a row invented after the tail: audit verify exit 4" 4 ctl audit verify
stderr_has "invented row: the line names it" "row $((LASTROW + 1))"
expect_status "a row invented after the tail: a mount refuses as tampering" 4 t_mnt_as bob
t_unmount_any
# the tail cut together with the newest commit records: a rollback of
# the trail. This host saw the newer commits: refused.
trail
export XDG_STATE_HOME=$T/trail-seen
t_expect_out "trail: this host verifies the store" 0 ctl audit verify
HEADSEQ=$(q "SELECT max(seq) FROM ledger")
KEEP=$((HEADSEQ - 2))
# audit head of commit KEEP: body offset 238 (8 bytes little endian)
le() { local h=$1 out="" k; for k in 14 12 10 8 6 4 2 0; do out="$out${h:$k:2}"; done; echo $((16#$out)); }
KEEPROW=$(le "$(q "SELECT hex(substr(body,238,8)) FROM ledger WHERE seq=$KEEP")")
check "trail: commit $KEEP covers rows up to $KEEPROW" test "$KEEPROW" -gt 0
q "DELETE FROM audit WHERE seq > $KEEPROW; DELETE FROM ledger WHERE seq > $KEEP"
expect_status "trail and commits cut back: custodyfs refuses (rollback)" 4 t_mnt_as admin
stderr_has "cut back: the line says older than seen" "older than one seen before"
check_not "cut back: nothing mounted" grep -q " $MNT fuse" /proc/mounts
t_unmount_any
t_expect_out "trail and commits cut back: audit verify refuses" 4 ctl audit verify
# (a host that never saw the newer commits cannot tell a consistent cut
# from an older copy: that is the witness's job, keys/witness.c)
# invented auth_events: a failed login for "alice", adopted by the next
# login into the trail: it names alice, is signed by the adopting
# session, and its detail says who recorded it
trail "INSERT INTO auth_events(time, user, event, uid, pid) VALUES(1000000000, 'alice', 'login-failed', 1000, 4242)"
expect_status "invented failed login: the admin logs in" 0 ctl user list
expect_eq "invented failed login: adopted into the trail" 1 \
	"$(q "SELECT count(*) FROM audit WHERE user='alice' AND op='login-failed'")"
check "invented failed login: the detail names the adopting user" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --json | jq -e 'any(.[]; .user == \"alice\" and (.path | test(\"recorded by admin\")))' > /dev/null"
t_expect_out "invented failed login: audit verify (it is what the session recorded)" 0 ctl audit verify
# an invented event that is not a failed login: it must not enter the
# trail as an admin's action
trail "INSERT INTO auth_events(time, user, event, uid, pid) VALUES(1000000000, 'admin', 'key destroy', 0, 4242)"
expect_status "invented 'key destroy' event: the admin logs in" 0 ctl user list
expect_eq "invented 'key destroy' event: no such admin action in the trail" 0 \
	"$(q "SELECT count(*) FROM audit WHERE op='key destroy'")"
expect_eq "invented 'key destroy' event: dropped, and one row says so" 1 \
	"$(q "SELECT count(*) FROM audit WHERE op='auth-events-dropped' AND user='admin'")"
expect_eq "invented 'key destroy' event: the queue is empty" 0 "$(q "SELECT count(*) FROM auth_events")"
t_expect_out "invented 'key destroy' event: audit verify" 0 ctl audit verify
# failed logins that count_failure never writes: a malformed user name, a
# time in the future or before the epoch, no process; and a flood. None
# is adopted; one row counts them all.
trail "INSERT INTO auth_events(time, user, event, uid, pid) VALUES
	(1000000000, 'not a name', 'login-failed', 1000, 4242),
	(1000000000, '', 'lockout', 1000, 4242),
	(strftime('%s','now') + 10 * 86400, 'bob', 'login-failed', 1000, 4242),
	(-5, 'bob', 'login-failed', 1000, 4242),
	(1000000000, 'bob', 'login-locked', 1000, 0),
	(1000000000, 'bob', 'login-failed', 1000, -1),
	(1000000000, 'bob', 'session-end', 1000, 4242),
	(1000000000, 'bob', 'login-failed', 1000, 4243)"
expect_status "malformed auth events: the admin logs in" 0 ctl user list
expect_eq "malformed auth events: only the well-formed failed login is adopted" 1 \
	"$(q "SELECT count(*) FROM audit WHERE user='bob' AND op IN ('login-failed','login-locked','lockout','session-end')")"
expect_eq "malformed auth events: nothing named with a malformed user" 0 \
	"$(q "SELECT count(*) FROM audit WHERE user IN ('not a name', '')")"
expect_eq "malformed auth events: one row counts the 7 dropped" 1 \
	"$(q "SELECT count(*) FROM audit WHERE op='auth-events-dropped'")"
check "malformed auth events: the row says how many" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --json --op auth-events-dropped | jq -e 'any(.[]; .path | test(\"^7 queued\"))' > /dev/null"
t_expect_out "malformed auth events: audit verify" 0 ctl audit verify
trail "INSERT INTO auth_events(time, user, event, uid, pid) VALUES(1000000000, 'bob', 'unlink', 1000, 4242)"
expect_status "invented 'unlink' by bob: the admin logs in" 0 ctl user list
"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" audit verify > /dev/null 2>&1; vst=$?
forged=$(q "SELECT count(*) FROM audit WHERE op='unlink' AND user='bob'")
check_not "invented 'unlink' by bob: never a verified trail row naming bob (verify $vst, rows $forged)" \
	test "$vst" == 0 -a "$forged" != 0
check_not "invented 'unlink' by bob: the planted row does not break the trail for good (verify $vst)" \
	test "$vst" == 4
# deleted auth_events rows (failed logins not yet adopted) leave no trace
# in the file: the witness (syslog) has them. Nothing to check here.

# ==== (13) the whole file rolled back ====
t_fresh
OLD=$T/old13.db
expect_status "rollback: the admin opens the store" 0 ctl info
cp "$STORE" "$OLD"
check "rollback: admin mounts" t_mnt_as admin
printf 'written after the copy\n' > "$MNT/later.txt"
check "rollback: unmount" t_umount
# a copy at another path is a copy, not a rollback
cp "$OLD" "$T/elsewhere.db"
expect_status "a copy at another path opens" 0 "$CUSTODYCTL" -s "$T/elsewhere.db" -u admin -c "$CONF" --passfile "$PASSFILE" info
expect_status "afterwards the original still opens" 0 ctl info
check "afterwards the original still mounts" t_mnt_as admin
check "the original has later.txt" test -f "$MNT/later.txt"
t_unmount_any
# the older copy put back at the same path
cp "$OLD" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
expect_status "older copy in place: mount refused" 4 t_mnt_as admin
stderr_has "older copy: the line says so" "older than one seen before"
check_not "older copy: nothing mounted" grep -q " $MNT fuse" /proc/mounts
t_unmount_any
expect_status "older copy in place: read-only mount refused" 4 t_mnt_as admin -o ro
t_unmount_any
expect_status "older copy in place: bob's mount refused" 4 t_mnt_as bob
t_unmount_any
expect_status "older copy in place: custodyctl refused" 4 ctl info
stderr_has "older copy: custodyctl says so" "older than one seen before"
expect_status "older copy in place: audit verify refused" 4 ctl audit verify
expect_status "older copy: -o accept_rollback mounts it" 0 t_mnt_as admin -o accept_rollback
check_not "accepted copy: later.txt is not in it" test -e "$MNT/later.txt"
t_unmount_any
check "accepted copy: the trail says so" sh -c "sqlite3 '$STORE' \"SELECT op FROM audit\" | grep -q 'rollback accepted'"

# ==== (14) the local state file itself ====
t_fresh
expect_status "state: the admin opens the store" 0 ctl info
SF=$(ls "$XDG_STATE_HOME"/custodyfs/ | grep -v '^\.' | head -n 1)
SF=$XDG_STATE_HOME/custodyfs/$SF
check "state: a state file exists" test -s "$SF"
cp "$STORE" "$T/old14.db"
expect_status "state: admin lists users" 0 ctl user list
# deleted: a rollback can no longer be seen (known limit: the first open
# after the state is lost trusts what it finds, like a first use, and says
# nothing: a missing file is what a first use looks like); from then on
# the state protects again
rm -f "$SF"
cp "$T/old14.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
t_mnt_as admin 2> "$T/.stderr"; st=$?
t_log "state deleted: the older copy's mount exits $st${T_VERBOSE:+: $(head -n 1 "$T/.stderr")}"
t_unmount_any
check "state deleted: a state file is written again" test -s "$SF"
cp "$T/old14.db" "$T/older.db"
expect_status "state deleted: the admin works on" 0 ctl user list
cp "$T/older.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
expect_status "state rebuilt: the next rollback is refused" 4 ctl info
# garbage
cp "$SF" "$T/state.keep"
printf 'garbage\n' > "$SF"
expect_status "garbage state file: refused" 1 ctl info
stderr_has "garbage state: the line names the file and what to do" "not a custodyfs state file.*remove it"
expect_eq "garbage state: one line" 1 "$(wc -l < "$T/.stderr")"
expect_status "garbage state file: mount refused" 1 t_mnt_as admin
t_unmount_any
# a line cut short (no newline at the end)
head -c 30 "$T/state.keep" > "$SF"
expect_status "truncated state file: refused" 1 ctl info
stderr_has "truncated state: the line says so" "not a custodyfs state file"
# not a regular file (a directory), and a symbolic link (opened with
# O_NOFOLLOW): the state cannot be read. (Tests run as root, which reads a
# mode-000 file, so these stand in for an unreadable file.)
rm -f "$SF"; mkdir "$SF"
expect_status "state file is a directory: refused" 1 ctl info
stderr_has "directory: the line names the state file" "state"
rmdir "$SF"
cp "$T/state.keep" "$T/state.target"
ln -s "$T/state.target" "$SF"
expect_status "state file is a symlink: refused, never silently without rollback detection" 1 ctl info
stderr_has "symlink: the line names the state file" "state"
check "symlink: the state it points to is not replaced by an empty one" test -L "$SF"
rm -f "$SF"
# the state folder is not a folder (a file in its place): ENOTDIR is not
# "nothing seen" either
mv "$XDG_STATE_HOME/custodyfs" "$T/state-folder.keep"
printf 'not a folder\n' > "$XDG_STATE_HOME/custodyfs"
expect_status "state folder is a file: refused" 1 ctl info
stderr_has "state folder is a file: the line names the state file" "state file"
expect_eq "state folder is a file: one line" 1 "$(wc -l < "$T/.stderr")"
expect_status "state folder is a file: mount refused" 1 t_mnt_as admin
t_unmount_any
expect_eq "state folder is a file: left as it was" "not a folder" "$(cat "$XDG_STATE_HOME/custodyfs")"
rm -f "$XDG_STATE_HOME/custodyfs"
mv "$T/state-folder.keep" "$XDG_STATE_HOME/custodyfs"
cp "$T/state.keep" "$SF"
expect_status "state put back: the rolled-back store is refused again" 4 ctl info

# ==== (15) the store id edited: refused before any passphrase is hashed ====
# The meta row store_id is the associated data every sealed secret is
# opened with; edited, every passphrase would fail as if wrong, and every
# attempt would count (a lockout for everyone). It is checked against the
# authority's self-endorsement and the roster first: damage, nothing
# counted, and everyone logs in once it is put back.
t_fresh
SID=$(q "SELECT hex(value) FROM meta WHERE key='store_id'")
EV0=$(q "SELECT count(*) FROM auth_events")
q "UPDATE meta SET value=randomblob(16) WHERE key='store_id'"
for k in 1 2 3 4; do
	expect_status "edited store id: admin login $k refused as damage" 4 ctl info
done
stderr_has "edited store id: the line names the store id" "fails verification: .*store id"
expect_eq "edited store id: one line" 1 "$(wc -l < "$T/.stderr")"
expect_status "edited store id: bob's login refused as damage" 4 as bob info
expect_status "edited store id: a wrong passphrase is refused as damage too" 4 \
	"$CUSTODYCTL" -s "$STORE" -u bob -c "$CONF" --passfile "$T/rdr.pass" info
expect_status "edited store id: a mount refused as damage" 4 t_mnt_as bob
t_unmount_any
expect_eq "edited store id: no failure counted, nobody locked" "0 0" \
	"$(q "SELECT coalesce(sum(failed), 0) || ' ' || coalesce(max(locked_until), 0) FROM logins")"
expect_eq "edited store id: no failed login queued" "$EV0" "$(q "SELECT count(*) FROM auth_events")"
q "UPDATE meta SET value=X'$SID' WHERE key='store_id'"
expect_status "store id put back: the admin logs in (not locked out)" 0 ctl info
expect_status "store id put back: bob logs in" 0 as bob info

# ==== (16) records beyond the signed head ====
# A row planted after what the newest commit covers (an audit row after
# its last row, a commit record after it) is no part of the store: every
# open that would write refuses it as damage, in one line naming it, and
# records nothing; a command that only reads still runs on the signed
# state (audit verify names the row) and exits 4.
t_fresh
LAST=$(q "SELECT max(seq) FROM audit")
PLANT="INSERT INTO audit SELECT seq + 1, time, user, session, uid, gid, pid, 'unlink', ino, offset, length, result, detail, hash FROM audit WHERE seq=$LAST"
q "$PLANT"
expect_status "planted audit row: a mount refuses as damage" 4 t_mnt_as bob
stderr_has "planted audit row: the mount names the row" "fails verification: audit row $((LAST + 1)) lies beyond"
expect_eq "planted audit row: the mount says it in one line" 1 "$(wc -l < "$T/.stderr")"
check_not "planted audit row: nothing mounted" grep -q " $MNT fuse" /proc/mounts
t_unmount_any
expect_status "planted audit row: a read-only mount refuses as damage" 4 t_mnt_as bob -o ro
t_unmount_any
expect_status "planted audit row: a writing command refuses as damage" 4 \
	ctl user add carol --role reader --new-passfile "$T/rdr.pass"
stderr_has "planted audit row: the command names the row" "audit row $((LAST + 1))"
t_expect_out "planted audit row: audit verify runs, exit 4" 4 ctl audit verify
stderr_has "planted audit row: audit verify names the row" "row $((LAST + 1))"
ctl info > "$T/info.out" 2> "$T/.stderr"
expect_eq "planted audit row: info exits 4" 4 "$?"
check "planted audit row: info still shows the signed state" grep -q "^format:" "$T/info.out"
stderr_has "planted audit row: info says why" "fails verification: audit row $((LAST + 1))"
expect_eq "planted audit row: nothing was recorded" "$((LAST + 1))" "$(q "SELECT max(seq) FROM audit")"
expect_eq "planted audit row: nobody's failures counted" 0 "$(q "SELECT coalesce(sum(failed), 0) FROM logins")"
q "DELETE FROM audit WHERE seq = $((LAST + 1))"
expect_status "planted audit row removed: the store opens" 0 ctl info
t_expect_out "planted audit row removed: audit verify" 0 ctl audit verify
# a commit record planted after the newest one (a copy of it one further)
t_fresh
HEADC=$(q "SELECT max(seq) FROM ledger")
q "INSERT INTO ledger SELECT seq + 1, body, sigs, proof FROM ledger WHERE seq=$HEADC"
expect_status "planted commit record: a mount refuses as damage" 4 t_mnt_as bob
stderr_has "planted commit record: the line names it" "fails verification: commit $((HEADC + 1)) is missing or malformed"
t_unmount_any
t_expect_out "planted commit record: audit verify runs, exit 4" 4 ctl audit verify
stderr_has "planted commit record: audit verify names it" "commit $((HEADC + 1))"
expect_eq "planted commit record: nothing was recorded" "$((HEADC + 1))" "$(q "SELECT max(seq) FROM ledger")"
# the same on a host that has seen the store (verifying from its commit)
t_fresh
expect_status "a host sees the store" 0 ctl info
HEADC=$(q "SELECT max(seq) FROM ledger")
q "INSERT INTO ledger SELECT seq + 1, body, sigs, proof FROM ledger WHERE seq=$HEADC"
expect_status "planted commit record, seen host: a mount refuses as damage" 4 t_mnt_as admin
stderr_has "planted commit record, seen host: the line names it" "fails verification: commit $((HEADC + 1))"
t_unmount_any
t_expect_out "planted commit record, seen host: audit verify runs, exit 4" 4 ctl audit verify
stderr_has "planted commit record, seen host: audit verify names it" "commit $((HEADC + 1))"
# no false alarm: while a mount commits steadily, commands that open the
# store see its head and the trail's last row of one and the same moment
t_fresh
check "busy mount: bob mounts" t_mnt_as bob
( for k in $(seq 600); do
	printf '%s\n' "$k" > "$MNT/busy.$((k % 20))"
	sync "$MNT/busy.$((k % 20))"
  done ) &
BUSY=$!
bad=0
for k in $(seq 20); do
	ctl info > /dev/null 2> "$T/.busy" || { bad=$((bad + 1)); cp "$T/.busy" "$T/.busy.bad"; }
	ctl audit verify > /dev/null 2> "$T/.busy" || { bad=$((bad + 1)); cp "$T/.busy" "$T/.busy.bad"; }
done
wait "$BUSY"
expect_eq "busy mount: every command opens and verifies ($(head -c 200 "$T/.busy.bad" 2>/dev/null))" 0 "$bad"
t_unmount_any
# an audit row planted while a mount runs: the mount's next transaction
# finds it and the mount stops serving (fail closed), without ever
# writing a row of its own over it
t_fresh
check "running mount: bob mounts" t_mnt_as bob
printf 'before\n' > "$MNT/before.txt"
sleep 1.5 # the group commit
LAST=$(q "SELECT max(seq) FROM audit")
sqlite3 -cmd ".timeout 10000" "$STORE" "INSERT INTO audit SELECT seq + 1, time, user, session, uid, gid, pid, 'unlink', ino, offset, length, result, detail, hash FROM audit WHERE seq=$LAST"
sh -c "printf 'after\n' > '$MNT/after.txt'" 2> /dev/null
gone=0
for k in $(seq 50); do
	grep -q " $MNT fuse" /proc/mounts || { gone=1; break; }
	sleep 0.1
done
expect_eq "running mount: stops serving after a row is planted under it" 1 "$gone"
t_unmount_any
expect_eq "running mount: the planted row was not written over" "unlink" \
	"$(q "SELECT op FROM audit WHERE seq = $((LAST + 1))")"
expect_eq "running mount: nothing was appended after it" "$((LAST + 1))" "$(q "SELECT max(seq) FROM audit")"

# ==== (17) the schema changed under a running mount ====
# The schema check runs before any statement of ours; a trigger (or view,
# or table) created while a mount runs moves SQLite's schema_version, and
# the mount checks again before its next transaction: it fails closed and
# stops serving. (SQLite would not run the trigger anyway: defensive mode
# and triggers off on every connection.)
t_fresh
check "schema: bob mounts" t_mnt_as bob
printf 'before\n' > "$MNT/before.txt"
sleep 1.5 # the group commit
sqlite3 -cmd ".timeout 10000" "$STORE" "CREATE TABLE attacker_log(x); CREATE TRIGGER spy AFTER INSERT ON audit BEGIN INSERT INTO attacker_log VALUES(new.op); END"
if sh -c "printf 'after\n' > '$MNT/after.txt' && sync '$MNT/after.txt'" 2> /dev/null; then
	fail "schema: a write went on after the trigger was created"
else
	ok "schema: the next write fails"
fi
gone=0
for k in $(seq 50); do
	grep -q " $MNT fuse" /proc/mounts || { gone=1; break; }
	sleep 0.1
done
expect_eq "schema: the mount stops serving" 1 "$gone"
t_unmount_any
expect_eq "schema: the trigger never ran" 0 "$(q "SELECT count(*) FROM attacker_log")"
expect_status "schema: the next mount refuses it" 4 t_mnt_as bob
stderr_has "schema: the refusal names what custodyfs did not create" "(trigger|table) .*(spy|attacker_log).* custodyfs did not create"
t_unmount_any
t_finish
