#!/usr/bin/env bash
# Tampering with the audit trail is found by `custodyctl audit verify`
# (exit 4, naming the row or the commit): edited, deleted, inserted,
# swapped, re-attributed and cut-off rows, with or without the chain
# hashes recomputed (they need no key: the signed commits are what holds),
# a tail cut together with the commits that covered it, a deleted base of
# a pruned trail; prune refuses a broken chain. Each case edits, with
# sqlite3 in place, the pristine store put back at its own path, with the
# local state of the user who last saw it. Also: the write rows of
# fsynced data survive kill -9 of the daemon.
. "$(dirname "$0")/../lib.sh"
command -v sqlite3 >/dev/null || { echo "$T_NAME: sqlite3 is required" >&2; exit 1; }
command -v b2sum >/dev/null || { echo "$T_NAME: b2sum is required" >&2; exit 1; }
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
STATE0=$T/pristine.state
# save: the store and this user's local state as they are now, the pristine
save_pristine() {
	rm -f "$PRISTINE" "$PRISTINE-wal"
	cp "$STORE" "$PRISTINE"
	[ -s "$STORE-wal" ] && cp "$STORE-wal" "$PRISTINE-wal"
	rm -rf "$STATE0"
	cp -a "$XDG_STATE_HOME" "$STATE0"
}
# restore: the pristine store back at its own path, the state as it was
restore() {
	rm -f "$STORE" "$STORE-wal" "$STORE-shm"
	cp "$PRISTINE" "$STORE"
	[ -s "$PRISTINE-wal" ] && cp "$PRISTINE-wal" "$STORE-wal"
	rm -rf "$XDG_STATE_HOME"
	cp -a "$STATE0" "$XDG_STATE_HOME"
}
save_pristine
LAST=$(q 'SELECT max(seq) FROM audit')
ROWS=$(q 'SELECT count(*) FROM audit')
check "enough rows to tamper with ($ROWS)" test "$ROWS" -ge 12
expect_eq "one session recorded the mount's rows" 1 "$(q "SELECT count(DISTINCT session) FROM audit WHERE seq BETWEEN 4 AND $LAST - 1")"
MSESS=$(q 'SELECT session FROM audit WHERE seq=5')
CSESS=$(q 'SELECT session FROM audit WHERE seq=1')
check "init and the mount are two sessions ($CSESS, $MSESS)" test "$CSESS" != "$MSESS"

# commit_audit SEQ: the audit head (last row) that commit SEQ vouches for
# (its body: little endian, audit_seq at byte offset 237)
commit_audit() {
	local h r="" i
	h=$(q "SELECT hex(substr(body, 238, 8)) FROM ledger WHERE seq=$1")
	for ((i = 14; i >= 0; i -= 2)); do r=$r${h:$i:2}; done
	echo $((16#$r))
}

# rehash FROM: recompute the chain hash of every row from seq FROM on, as
# any file writer can (BLAKE2b-256 of the previous hash and the row)
rehash() {
	local prev line h s
	prev=$(q "SELECT hex(hash) FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT 1")
	[ -n "$prev" ] || prev=$(printf '%064d' 0)
	q -separator ' ' "SELECT seq, time, session, uid, gid, pid, ino, offset, length,
	    result, hex(user), hex(op), hex(detail) FROM audit WHERE seq >= $1 ORDER BY seq" > "$T/rows"
	while read -r line; do
		# shellcheck disable=SC2086
		h=$(perl -e '
			my ($prev, @f) = @ARGV;
			my ($user, $op, $det) = map { pack("H*", $_ // "") } @f[10, 11, 12];
			binmode STDOUT;
			print "custodyfs.audit\0", pack("H64", $prev),
			  pack("q<q<q<Q<Q<Q<Q<Q<Q<q<CCvQ<", @f[0 .. 9], length $user,
			       length $op, 0, length $det), $user, $op, $det;' "$prev" $line |
			b2sum -l 256 | cut -c1-64)
		s=${line%% *}
		q "UPDATE audit SET hash = X'$h' WHERE seq = $s"
		prev=$h
	done < "$T/rows"
}
# the helper is right: recomputing the genuine chain changes nothing
before=$(q 'SELECT hex(hash) FROM audit ORDER BY seq' | md5sum)
rehash 1
expect_eq "rehash reproduces the genuine chain" "$before" "$(q 'SELECT hex(hash) FROM audit ORDER BY seq' | md5sum)"
restore

# verify: audit verify on the test store, output in $T/out
verify() {
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" audit verify > "$T/out" 2>&1
}
# tamper NAME REGEX SQL [REHASH_FROM]: on the pristine store put back, SQL
# (then the chain re-hashed from row REHASH_FROM, if given) must make
# verify exit 4 with a line matching REGEX (grep -E)
tamper() {
	local name=$1 re=$2 sql=$3 st
	restore
	if ! q "$sql"; then
		fail "$name: the sqlite3 edit failed"
		return
	fi
	[ -n "${4:-}" ] && rehash "$4"
	verify; st=$?
	expect_eq "$name: verify exits 4" 4 "$st"
	[ -n "${T_VERBOSE:-}" ] && t_log "$name: $(head -1 "$T/out")"
	if grep -qE -- "$re" "$T/out"; then
		ok "$name: names it"
	else
		fail "$name: names it (want /$re/, got: $(head -c 300 "$T/out"))"
	fi
}
# at ROW: the verify line naming row ROW
at() { echo "^audit: tampering detected at row $1: "; }

verify; st=$?
expect_eq "pristine store verifies" 0 "$st"
# verify itself records its login and its own row
expect_eq "pristine: row count (with verify's login and row)" "audit trail intact: $((ROWS + 2)) rows" "$(cat "$T/out")"
has_row() { [ "$(q "SELECT count(*) FROM audit WHERE $1")" -ge 1 ]; }
check "verify's login is in the trail" has_row "seq = $LAST + 1 AND op = 'login' AND user = 'admin'"
check "verify's own row is in the trail" has_row "seq = $LAST + 2 AND op = 'audit verify' AND user = 'admin'"

COLS="time, user, session, uid, gid, pid, op, ino, offset, length, result, detail, hash"
tamper "edited op" "$(at 5)" "UPDATE audit SET op='read' WHERE seq=5"
# prune must not launder tampering
ctl audit prune --before now > /dev/null 2>&1; st=$?
expect_eq "prune refuses a broken chain (exit 4)" 4 "$st"
expect_eq "prune of a broken chain removes nothing" "$ROWS" "$(q "SELECT count(*) FROM audit WHERE seq <= $LAST")"
tamper "edited time" "$(at 7)" "UPDATE audit SET time=time+1 WHERE seq=7"
tamper "edited result" "$(at 8)" "UPDATE audit SET result=-13 WHERE seq=8"
tamper "edited user" "$(at 9)" "UPDATE audit SET user='nobody' WHERE seq=9"
tamper "edited detail (path)" "$(at 3)" "UPDATE audit SET detail=zeroblob(length(detail)) WHERE seq=3"
tamper "edited hash" "$(at 10)" "UPDATE audit SET hash=zeroblob(32) WHERE seq=10"
tamper "deleted middle row" "$(at 7)" "DELETE FROM audit WHERE seq=6"
tamper "forged row inserted in the middle" "$(at 6)" "
	UPDATE audit SET seq=seq+1000 WHERE seq>=6;
	UPDATE audit SET seq=seq-999 WHERE seq>=1006;
	INSERT INTO audit(seq, $COLS) SELECT 6, $COLS FROM audit WHERE seq=5;"
tamper "rows 4 and 5 swapped" "$(at 4)" "
	CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (4, 5);
	UPDATE audit SET ($COLS) = (SELECT $COLS FROM t WHERE t.seq = 9 - audit.seq)
	WHERE seq IN (4, 5);"
# a forged row after the last signed one: no commit covers it
tamper "forged row appended after the signed head" "$(at $((LAST + 1)))" \
	"INSERT INTO audit(seq, $COLS) SELECT $LAST + 1, $COLS FROM audit WHERE seq=$LAST"
tamper "re-attributed to another session" "$(at 9)" "UPDATE audit SET session=$CSESS WHERE seq=9"
tamper "first row deleted" "$(at 2)" "DELETE FROM audit WHERE seq=1"
# a cut tail: the commits still say where the trail ended; verify's own
# login row is appended after the gap and names it
tamper "tail cut (last 3 rows)" "$(at $((LAST + 1)))row $((LAST + 1)) follows row $((LAST - 3))" \
	"DELETE FROM audit WHERE seq > $LAST - 3"
tamper "whole trail deleted" "$(at $((LAST + 1)))row $((LAST + 1)) follows row 0" "DELETE FROM audit"

# the same edits with the chain re-hashed after them: the hashes agree
# again, the signed commits do not (the line names the commit whose audit
# head the rows no longer reach, or the gap before verify's own rows)
RH="$(at '[0-9]+')(commit [0-9]+ says|row [0-9]+ follows row)"
tamper "edited op, chain re-hashed" "$RH" "UPDATE audit SET op='read' WHERE seq=5" 5
tamper "edited result, chain re-hashed" "$RH" "UPDATE audit SET result=-13 WHERE seq=8" 8
tamper "deleted middle row, renumbered and re-hashed" "$RH" "
	DELETE FROM audit WHERE seq=6;
	UPDATE audit SET seq=seq+1000 WHERE seq>6;
	UPDATE audit SET seq=seq-1001 WHERE seq>1006;" 6
tamper "forged row inserted, renumbered and re-hashed" "$RH" "
	UPDATE audit SET seq=seq+1000 WHERE seq>=6;
	UPDATE audit SET seq=seq-999 WHERE seq>=1006;
	INSERT INTO audit(seq, $COLS) SELECT 6, $COLS FROM audit WHERE seq=5;" 6
tamper "rows 4 and 5 swapped, re-hashed" "$RH" "
	CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (4, 5);
	UPDATE audit SET ($COLS) = (SELECT $COLS FROM t WHERE t.seq = 9 - audit.seq)
	WHERE seq IN (4, 5);" 4
tamper "re-attributed to another session, re-hashed" "$(at 9)row 9 names session $CSESS, which did not sign commit" \
	"UPDATE audit SET session=$CSESS WHERE seq=9" 9
tamper "re-attributed to another user name, re-hashed" "$(at 9)row 9 names user 'nobody'" \
	"UPDATE audit SET user='nobody' WHERE seq=9" 9

# a tail cut together with the commits that covered it, back to an older
# commit and its audit head: consistent, but this user saw a newer commit
restore
HEADC=$(q 'SELECT max(seq) FROM ledger')
KEEPC=$((HEADC - 2))
KEEPA=$(commit_audit "$KEEPC")
check "an older commit covers fewer rows ($KEEPC: $KEEPA of $LAST)" test "$KEEPA" -ge 1 -a "$KEEPA" -lt "$LAST"
tamper "tail and its commits cut" "older than one seen before: .*commit $KEEPC.*commit $HEADC" \
	"DELETE FROM audit WHERE seq > $KEEPA; DELETE FROM ledger WHERE seq > $KEEPC"
# the whole ledger gone as well as the trail
tamper "whole trail and ledger deleted" "fails verification" "DELETE FROM audit; DELETE FROM ledger"

# rows numbered before the first one: no commit covers them
tamper "a row numbered 0 before the first" "$(at 0)" \
	"INSERT INTO audit(seq, $COLS) SELECT 0, $COLS FROM audit WHERE seq=1"
tamper "a row with a negative number" "$(at -7)" \
	"INSERT INTO audit(seq, $COLS) SELECT -7, $COLS FROM audit WHERE seq=3"

# ---- after a prune, the new start is checked too ----
restore
out=$(ctl audit prune --before now); st=$?
expect_eq "prune of the pristine trail exits 0" 0 "$st"
verify; st=$?
expect_eq "pruned store verifies" 0 "$st"
FIRST=$(q 'SELECT min(seq) FROM audit')
BASE=$(q 'SELECT min(seq) FROM ledger')
check "the prune removed rows and commits (first row $FIRST, first commit $BASE)" test "$FIRST" -gt 1 -a "$BASE" -gt 1
save_pristine
tamper "pruned trail: base commit deleted" "($(at '[0-9]+')|fails verification)" "DELETE FROM ledger WHERE seq=$BASE"
tamper "pruned trail: first kept row deleted" "$(at $((FIRST + 1)))" "DELETE FROM audit WHERE seq=$FIRST"
tamper "pruned trail: a pruned row put back" "$(at '[0-9]+')" \
	"INSERT INTO audit(seq, $COLS) SELECT $FIRST - 1, $COLS FROM audit WHERE seq=$FIRST"
tamper "pruned trail: a row placed before the base" "$(at $((FIRST - 1))).*before the start of the signed trail" \
	"INSERT INTO audit(seq, $COLS) SELECT $FIRST - 1, time, user, session, uid, gid, pid, 'unlink', ino, offset, length, result, detail, hash FROM audit WHERE seq=$FIRST"
# audit list does not present such a row as history
ctl audit list --json > "$T/list.json" 2>"$T/.stderr"; st=$?
expect_eq "pruned trail, a row before the base: audit list exits 4" 4 "$st"
stderr_has "pruned trail, a row before the base: audit list says so" "before the start of the signed trail"
expect_eq "pruned trail, a row before the base: not listed" 0 \
	"$(jq "[.[] | select(.seq < $FIRST)] | length" "$T/list.json")"
check "pruned trail, a row before the base: the signed rows are listed" \
	jq -e "any(.[]; .seq == $FIRST)" "$T/list.json"
ctl audit export --format csv > "$T/export.csv" 2>"$T/.stderr"; st=$?
expect_eq "pruned trail, a row before the base: audit export exits 4" 4 "$st"
expect_eq "pruned trail, a row before the base: not exported" 0 \
	"$(grep -c "^$((FIRST - 1))," "$T/export.csv")"

# ---- kill -9 right after fsync: the fsynced data's write rows survive ----
restore
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
