#!/usr/bin/env bash
# Rollback awareness (issue 8): every commit appends a signed record to the
# ledger, and the local state file remembers the newest commit this user
# verified; a store file put back from an older copy at the same path no
# longer contains that commit, so mount and custodyctl refuse it (exit 4)
# unless custodyfs -o accept_rollback; a forged ledger head is refused; the
# same old copy at a *different* path opens (it forks into an instance of
# its own) and does not make the original refuse afterwards.
. "$(dirname "$0")/../lib.sh"
t_setup
head_seq() { sqlite3 "${1:-$STORE}" "SELECT max(seq) FROM ledger"; }
# the state file of the test store ($XDG_STATE_HOME/custodyfs/<store id hex>)
SID=$(sqlite3 "$STORE" "SELECT lower(hex(value)) FROM meta WHERE key='store_id'")
SFILE=$XDG_STATE_HOME/custodyfs/$SID
# state_seq: the newest commit the state file remembers of any instance
state_seq() { awk '$1 == "commit" { if ($3 > m) m = $3 } END { print m + 0 }' "$SFILE" 2>/dev/null; }

check "mount" t_mount
echo one > "$MNT/a"
check "unmount" t_umount
cp "$STORE" "$T/old.db"               # the idle store file alone is a backup
g1=$(head_seq)
check "mount again" t_mount
echo two > "$MNT/b"
check "unmount again" t_umount
g2=$(head_seq)
if [ -n "$g1" ] && [ -n "$g2" ] && [ "$g2" -gt "$g1" ]; then
	ok "the ledger grows with commits ($g1 -> $g2)"
else
	fail "the ledger did not grow ($g1 -> $g2)"
fi
check "state file exists for this store" test -s "$SFILE"
expect_eq "state file remembers the newest commit" "$g2" "$(state_seq)"
check "state file remembers this path" grep -q "^path " "$SFILE"

# a forged ledger head (its sequence number raised without any key, as a
# file writer would to look newer) is refused
cp "$STORE" "$T/good.db"
g3=$(head_seq)
sqlite3 "$STORE" "UPDATE ledger SET seq = seq + 1000 WHERE seq = $g3" || fail "sqlite3 edit"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2> "$T/err"
expect_eq "forged ledger head refused: exit 4" 4 "$?"
check "the message names verification" grep -q "fails verification" "$T/err"
check_not "nothing mounted (forged head)" grep -q " $MNT fuse" /proc/mounts
# the newest commit's body edited (a byte flipped): refused too
cp "$T/good.db" "$STORE"
sqlite3 "$STORE" "UPDATE ledger SET body = CAST(substr(body,1,40) ||
	CASE WHEN substr(body,41,1) = X'41' THEN X'42' ELSE X'41' END || substr(body,42) AS BLOB)
	WHERE seq = $g3" || fail "sqlite3 edit"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2> "$T/err"
expect_eq "edited ledger head refused: exit 4" 4 "$?"
check "edited head: the message names verification" grep -q "fails verification" "$T/err"
check_not "nothing mounted (edited head)" grep -q " $MNT fuse" /proc/mounts
# the newest commits deleted (the ledger cut back to an older head, the rest
# of the file left as it is): this user saw a newer commit, so it is refused
cp "$T/good.db" "$STORE"
sqlite3 "$STORE" "DELETE FROM ledger WHERE seq > $g3 - 2" || fail "sqlite3 edit"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2> "$T/err"
expect_eq "ledger cut back refused: exit 4" 4 "$?"
check "ledger cut: the message says it is older" grep -q "older than one seen before" "$T/err"
check_not "nothing mounted (ledger cut)" grep -q " $MNT fuse" /proc/mounts
# a commit in the middle deleted: a host that verifies the whole chain
# (one that never saw this store) names the missing commit
cp "$T/good.db" "$STORE"
MID=$((g3 - 2))
sqlite3 "$STORE" "DELETE FROM ledger WHERE seq = $MID" || fail "sqlite3 edit"
XDG_STATE_HOME=$T/fresh-host1 ctl audit verify > "$T/out" 2>&1
expect_eq "a deleted middle commit: audit verify exit 4" 4 "$?"
check "deleted middle commit: audit verify names commit $MID" grep -q "commit $MID is missing" "$T/out"
check_not "deleted middle commit: no other commit is blamed" grep -qE "near commit|commit ($((MID - 1))|$((MID + 1))) is missing" "$T/out"
XDG_STATE_HOME=$T/fresh-host2 "$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2> "$T/err"
expect_eq "a deleted middle commit: custodyfs exit 4" 4 "$?"
check "deleted middle commit: custodyfs names commit $MID" grep -q "fails verification: commit $MID is missing" "$T/err"
check_not "nothing mounted (deleted middle commit)" grep -q " $MNT fuse" /proc/mounts
cp "$T/good.db" "$STORE"
expect_status "the good store still opens" 0 ctl info

# the same old copy at a *different* path opens: it is a copy, and forks
# into a store instance of its own ...
cp "$T/old.db" "$T/copy.db"
"$CUSTODYCTL" -s "$T/copy.db" -u admin -c "$CONF" --passfile "$PASSFILE" info > /dev/null 2> "$T/err"
expect_eq "an old copy at another path opens" 0 "$?"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$T/copy.db" "$MNT" 2> "$T/err"
expect_eq "an old copy at another path mounts" 0 "$?"
T_MOUNTS+=("$MNT")
t_track "$MNT"
expect_eq "the copy holds the old content" "one" "$(cat "$MNT/a" 2>/dev/null)"
check "the copy is writable" sh -c "echo three > '$MNT/c'"
check "unmount the copy" t_umount
check "the copy says it is a copy in its trail" sh -c "sqlite3 '$T/copy.db' \"SELECT op FROM audit\" | grep -qx copy"
i_orig=$(sqlite3 "$STORE" "SELECT hex(value) FROM meta WHERE key='store_id'")
i_copy=$(sqlite3 "$T/copy.db" "SELECT hex(value) FROM meta WHERE key='store_id'")
expect_eq "the copy keeps the store id" "$i_orig" "$i_copy"
expect_eq "the state file knows two instances" 2 "$(grep -c '^commit ' "$SFILE")"
# ... and does not make the original refuse afterwards
expect_status "the original still opens after the copy was used" 0 ctl info
check "the original still mounts" t_mount
expect_eq "the original's content" "one" "$(cat "$MNT/a" 2>/dev/null)"
check_not "the copy's new file is not in the original" test -e "$MNT/c"
check "unmount" t_umount
expect_status "the copy still opens after the original was used" 0 \
	"$CUSTODYCTL" -s "$T/copy.db" -u admin -c "$CONF" --passfile "$PASSFILE" info
# the forked copy put in the original's place is refused there: another
# instance at a path this user knows
cp "$STORE" "$T/orig.db"
cp "$T/copy.db" "$STORE"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2> "$T/err"
expect_eq "another instance in the original's place: exit 4" 4 "$?"
check "other instance: the message says another copy was put there" grep -q "another copy of the store was put in its place" "$T/err"
check_not "nothing mounted (other instance)" grep -q " $MNT fuse" /proc/mounts
cp "$T/orig.db" "$STORE"
expect_status "the original back in place opens" 0 ctl info
# a copy taken before a roster change (a user added) still opens at a
# path of its own: it is an instance of its own, with its own history
cp "$STORE" "$T/pre-roster.db"
cp "$STORE" "$T/pre-roster-unopened.db"
pf reader reader-passphrase
expect_status "user add (the roster changes)" 0 ctl user add reader --role reader --new-passfile "$T/reader.pass"
expect_status "a copy from before the roster change opens at another path" 0 \
	"$CUSTODYCTL" -s "$T/pre-roster.db" -u admin -c "$CONF" --passfile "$PASSFILE" info
expect_status "the original opens after that" 0 ctl info
# ... and so does one from before an authority rotation (epoch 2): the
# roster counter and the authority seen are per store instance, like the
# commit; the same copy put at the original's own path is refused
cp "$STORE" "$T/pre-auth.db"
cp "$STORE" "$T/pre-auth-unopened.db"
expect_status "key rotate --authority (epoch 2)" 0 ctl key rotate --authority
expect_status "a copy from before the authority rotation opens at another path" 0 \
	"$CUSTODYCTL" -s "$T/pre-auth.db" -u admin -c "$CONF" --passfile "$PASSFILE" info
expect_status "the original opens after that too" 0 ctl info
cp "$STORE" "$T/orig2.db"
cp "$T/pre-auth-unopened.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
expect_status "the pre-rotation copy at the original's path: refused" 4 ctl info
stderr_has "pre-rotation copy at the same path: older than seen" "older than one seen before"
expect_status "the pre-roster copy at the original's path: refused" 4 \
	sh -c "cp '$T/pre-roster-unopened.db' '$STORE' && rm -f '$STORE-wal' '$STORE-shm' && \
	       '$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' info"
cp "$T/orig2.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
expect_status "the original back in its place opens" 0 ctl info
# put the older copy back: refused, with a clear line, nothing mounted
cp "$T/old.db" "$STORE"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2> "$T/err"
expect_eq "older copy refused by mount: exit 4" 4 "$?"
check "the message says why and how to accept" grep -q "older than one seen before.*accept_rollback" "$T/err"
expect_eq "mount refusal: one line" 1 "$(wc -l < "$T/err")"
check_not "nothing mounted" grep -q " $MNT fuse" /proc/mounts
t_mount 2> /dev/null
expect_eq "t_mount gives custodyfs's own exit status" 4 "$?"
expect_status "older copy refused by custodyctl info: exit 4" 4 ctl info
stderr_has "custodyctl says it is older" "older than one seen before"
expect_status "older copy refused by custodyctl check: exit 4" 4 ctl check
expect_status "older copy refused by custodyctl audit verify: exit 4" 4 ctl audit verify
expect_eq "the refusals changed nothing in the old copy" "$g1" "$(head_seq)"
check "custodyctl --help documents --accept-rollback" sh -c "'$CUSTODYCTL' --help | grep -q -- --accept-rollback"

# accepted on request: it mounts, warns, and the trail says so
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" -o accept_rollback "$STORE" "$MNT" 2> "$T/err"
expect_eq "accept_rollback mounts" 0 "$?"
T_MOUNTS+=("$MNT")
t_track "$MNT"
check "with a warning" grep -qi "warning:.*older" "$T/err"
expect_eq "the old copy's content" "one" "$(cat "$MNT/a")"
check_not "the newer file is not in the old copy" test -e "$MNT/b"
check "unmount" t_umount
check "rollback acceptance is in the trail" sh -c "sqlite3 '$STORE' \"SELECT op FROM audit\" | grep -q 'rollback accepted'"
# once accepted, the store is the current one again: opens without the option
expect_status "after acceptance: custodyctl opens it" 0 ctl info
if t_mount 2> "$T/err"; then
	ok "after acceptance: mounts without accept_rollback"
	expect_eq "after acceptance: still the old content" "one" "$(cat "$MNT/a" 2>/dev/null)"
	check "unmount" t_umount
else
	fail "after acceptance: mounts without accept_rollback: $(head -c 300 "$T/err")"
fi
expect_status "after acceptance: the trail verifies" 0 ctl audit verify
# accepting re-bases this path on the accepted copy; it does not turn
# detection off: a copy older than what was written since is refused
cp "$STORE" "$T/accepted.db"
check "after acceptance: mount" t_mount
echo four > "$MNT/d"
check "after acceptance: unmount" t_umount
cp "$T/accepted.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
expect_status "after acceptance: an older copy is refused again" 4 ctl info
stderr_has "refused again: older than seen" "older than one seen before"
# custodyctl --accept-rollback does the same as custodyfs -o accept_rollback
expect_status "custodyctl --accept-rollback opens it" 0 ctl --accept-rollback info
stderr_has "custodyctl --accept-rollback warns" "warning: accepted an older copy"
expect_status "after custodyctl --accept-rollback: custodyctl opens it" 0 ctl info
if t_mount 2> "$T/err"; then
	ok "after custodyctl --accept-rollback: mounts without accept_rollback"
	check_not "the accepted copy lacks what was written after it" test -e "$MNT/d"
	check "unmount" t_umount
else
	fail "after custodyctl --accept-rollback: mounts without accept_rollback: $(head -c 300 "$T/err")"
fi
expect_eq "both acceptances are in the trail" 2 \
	"$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='rollback accepted'")"
expect_status "after custodyctl --accept-rollback: the trail verifies" 0 ctl audit verify
expect_status "--accept-rollback on a current store: opens" 0 ctl --accept-rollback info
expect_eq "--accept-rollback on a current store: nothing accepted, nothing said" "" \
	"$(grep -i "accepted" "$T/.stderr")"

t_finish
