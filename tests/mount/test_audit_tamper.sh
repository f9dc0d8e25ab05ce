#!/usr/bin/env bash
# Tampering with the audit trail is found by `custodyctl audit verify`
# (exit 4, naming the row): edited, deleted, inserted, swapped and cut-off
# rows, a deleted head mark; prune refuses a broken chain. Each case runs
# with sqlite3 on a copy of one pristine store. Also: the write rows of
# fsynced data survive kill -9 of the daemon.
. "$(dirname "$0")/../lib.sh"
command -v sqlite3 >/dev/null || { echo "$T_NAME: sqlite3 is required" >&2; exit 1; }
t_setup

# a trail of a few dozen rows
check "mount" t_mount
mkdir "$MNT/d"
for i in 1 2 3 4; do echo "file $i" > "$MNT/d/f$i"; done
mv "$MNT/d/f1" "$MNT/d/g1"
rm "$MNT/d/f2"
cat "$MNT/d/f3" > /dev/null
check "unmount" t_umount

PRISTINE=$T/pristine.db
cp "$STORE" "$PRISTINE"
[ -s "$STORE-wal" ] && cp "$STORE-wal" "$PRISTINE-wal"
LAST=$(sqlite3 "$PRISTINE" 'SELECT max(seq) FROM audit')
ROWS=$(sqlite3 "$PRISTINE" 'SELECT count(*) FROM audit')
check "enough rows to tamper with ($ROWS)" test "$ROWS" -ge 12

# verify_on DB: audit verify on another file, output in $T/out
verify_on() {
	"$CUSTODYCTL" -s "$1" -u admin -c "$CONF" --passfile "$PASSFILE" audit verify > "$T/out" 2>&1
}
n_case=0
# tamper NAME ROW SQL: on a fresh copy, SQL must make verify exit 4 naming ROW
tamper() {
	local name=$1 row=$2 sql=$3 db st
	n_case=$((n_case + 1))
	db=$T/case$n_case.db
	cp "$PRISTINE" "$db"
	[ -s "$PRISTINE-wal" ] && cp "$PRISTINE-wal" "$db-wal"
	if ! sqlite3 "$db" "$sql"; then
		fail "$name: the sqlite3 edit failed"
		return
	fi
	verify_on "$db"; st=$?
	expect_eq "$name: verify exits 4" 4 "$st"
	if grep -q "^audit: tampering detected at row $row: " "$T/out"; then
		ok "$name: names row $row"
	else
		fail "$name: names row $row (got: $(head -c 200 "$T/out"))"
	fi
	CASE_DB=$db
}

verify_on "$PRISTINE"; st=$?
expect_eq "pristine copy verifies" 0 "$st"
expect_eq "pristine: row count" "audit trail intact: $ROWS rows" "$(cat "$T/out")"

tamper "edited op" 5 "UPDATE audit SET op='read' WHERE seq=5"
EDITED=$CASE_DB
tamper "edited time" 7 "UPDATE audit SET time=time+1 WHERE seq=7"
tamper "edited result" 8 "UPDATE audit SET result=-13 WHERE seq=8"
tamper "edited user" 9 "UPDATE audit SET user='nobody' WHERE seq=9"
tamper "edited detail (path)" 3 "UPDATE audit SET detail=zeroblob(length(detail)) WHERE seq=3"
tamper "deleted middle row" 7 "DELETE FROM audit WHERE seq=6"
tamper "forged row inserted in the middle" 6 "
	UPDATE audit SET seq=seq+1000 WHERE seq>=6;
	UPDATE audit SET seq=seq-999 WHERE seq>=1006;
	INSERT INTO audit(seq, time, user, uid, gid, pid, op, ino, offset, length, result, session, detail, mac)
	  SELECT 6, time, user, uid, gid, pid, op, ino, offset, length, result, session, detail, mac
	  FROM audit WHERE seq=5;"
tamper "rows 4 and 5 swapped" 4 "
	CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (4, 5);
	UPDATE audit SET (time, user, uid, gid, pid, op, ino, offset, length, result, session, detail, mac) =
	  (SELECT time, user, uid, gid, pid, op, ino, offset, length, result, session, detail, mac
	   FROM t WHERE t.seq = 9 - audit.seq)
	WHERE seq IN (4, 5);"
tamper "tail cut (last 3 rows)" $((LAST - 2)) "DELETE FROM audit WHERE seq > $LAST - 3"
tamper "tail cut and head mark deleted" $((LAST - 2)) "DELETE FROM audit WHERE seq > $LAST - 3; DELETE FROM meta WHERE key='audit_head'"
tamper "first row deleted" 2 "DELETE FROM audit WHERE seq=1"
# the whole trail and its head gone: an initialised store always has rows
tamper "whole trail and head mark deleted" 1 "DELETE FROM audit; DELETE FROM meta WHERE key='audit_head'"

# prune must not launder tampering
"$CUSTODYCTL" -s "$EDITED" -u admin -c "$CONF" --passfile "$PASSFILE" audit prune --before now > /dev/null 2>&1; st=$?
expect_eq "prune refuses a broken chain (exit 4)" 4 "$st"
expect_eq "prune of a broken chain removes nothing" "$ROWS" "$(sqlite3 "$EDITED" "SELECT count(*) FROM audit WHERE seq <= $LAST")"

# after a prune, the new start is checked too
PRUNED=$T/pruned.db
cp "$PRISTINE" "$PRUNED"
"$CUSTODYCTL" -s "$PRUNED" -u admin -c "$CONF" --passfile "$PASSFILE" audit prune --before now > /dev/null 2>&1
verify_on "$PRUNED"; st=$?
expect_eq "pruned copy verifies" 0 "$st"
FIRST=$(sqlite3 "$PRUNED" 'SELECT min(seq) FROM audit')
PRISTINE=$PRUNED
tamper "pruned trail: start mark deleted" "$FIRST" "DELETE FROM meta WHERE key='audit_base'"

# ---- kill -9 right after fsync: the fsynced data's write rows survive ----
check "mount" t_mount
dd if=/dev/urandom of="$MNT/synced" bs=4096 count=8 conv=fsync status=none
check "dd conv=fsync" test "$(stat -c %s "$MNT/synced")" -eq 32768
kill -9 "$(t_pid)"
for i in $(seq 100); do pgrep -f -- "$MNT\$" >/dev/null || break; sleep 0.05; done
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
check "remount after kill -9" t_mount
expect_eq "fsynced data survived" 32768 "$(stat -c %s "$MNT/synced")"
check "unmount" t_umount
cover=$(ctl audit list --json --op write --path /synced | jq '[.[] | select(.result >= 0) | [.offset, .offset + .length]] | sort
	| reduce .[] as $r ([]; if length > 0 and .[-1][1] >= $r[0] then .[-1][1] = ([.[-1][1], $r[1]] | max) else . + [$r] end)
	| any(.[0] <= 0 and .[1] >= 32768)')
expect_eq "write rows of the fsynced data survived kill -9" true "$cover"
expect_status "trail verifies after kill -9" 0 ctl audit verify
t_finish
