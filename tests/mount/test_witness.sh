#!/usr/bin/env bash
# The system log as a witness of the trail ([audit] syslog, witness.h):
# every commit's signed head and every failed login reach a log socket as
# they happen (here a listener of the test's own, as CI may have no
# journald), and `audit verify --witness FILE` catches what the store file
# alone cannot show on a host that never saw it: a consistently cut tail
# and a whole-file rollback. A copy's own commits do not fail the original.
. "$(dirname "$0")/../lib.sh"
t_setup
LOG=$T/witness.log
t_log_listener "$T/log.sock" "$LOG"
printf '[audit]\nsyslog = on\nsyslog_socket = %s\n' "$T/log.sock" >> "$CONF"

head_seq() { q 'SELECT max(seq) FROM ledger'; }
check "init's store opens" ctl info
t_mount
for i in 1 2 3; do echo "file $i" > "$MNT/f$i"; sync; done
t_umount
sleep 0.2
n=$(grep -c 'commit store=' "$LOG")
h=$(head_seq)
check "every commit reached the witness ($n lines, head $h)" test "$n" -ge "$((h - 1))"
check "the newest commit is witnessed" grep -q "seq=$h hash=" "$LOG"
expect_status "verify --witness on the genuine store" 0 ctl audit verify --witness "$LOG"
t_expect_out "a device as the witness (read for ever) is refused" 1 ctl audit verify --witness /dev/zero
expect_eq "in one line" 1 "$(wc -l < "$T/.stderr")"
out=$(ctl audit verify --witness "$LOG" 2>&1)
case $out in *"match the ledger"*) ok "verify reports what it checked" ;; *) fail "no witness summary: $out" ;; esac

# a failed login goes to the witness at once, naming user and uid
"$CUSTODYCTL" -s "$STORE" -u intruder -c "$CONF" --passfile "$PASSFILE" info >/dev/null 2>&1
sleep 0.2
check "a failed login is witnessed" grep -qE 'login-failed store=[0-9a-f]+ user=intruder uid=0' "$LOG"

# a copy's own commits (another instance, same seq numbers) count against
# neither the copy nor the original
cp "$STORE" "$T/copy.db"
"$CUSTODYCTL" -s "$T/copy.db" -u admin -c "$CONF" --passfile "$PASSFILE" info >/dev/null 2>&1
t_mount; echo orig > "$MNT/orig-after-copy"; sync; t_umount
sleep 0.2
insts=$(grep -o 'commit store=[0-9a-f]* instance=[0-9a-f]*' "$LOG" | sort -u | wc -l)
check "the copy's commits are witnessed as another instance" test "$insts" -ge 2
expect_status "the original verifies beside its copy's witnessed commits" 0 \
	ctl audit verify --witness "$LOG"
# the copy itself is older than the store the witness saw: the original
# went on after the copy forked from it (a backup is such a copy; so is
# an older file forked and put in the store's place: test_attack_more_state)
expect_status "the copy is found older than the original the witness saw" 4 \
	"$CUSTODYCTL" -s "$T/copy.db" -u admin -c "$CONF" --passfile "$PASSFILE" \
	audit verify --witness "$LOG"
"$CUSTODYCTL" -s "$T/copy.db" -u admin -c "$CONF" --passfile "$PASSFILE" \
	audit verify --witness "$LOG" > "$T/.stderr" 2>&1
stderr_has "the copy: the line says it is an older copy" "which this file left at commit [0-9]+: it is an older copy"
# journalctl -t custodyfs -o json lines are read as well
sed -n 's/^.*custodyfs\[\([0-9]*\)\]: \(commit store=.*\)$/{"_UID":"0","_PID":"\1","MESSAGE":"\2"}/p' \
	"$LOG" > "$T/journal.json"
check "journal JSON made from the log" test -s "$T/journal.json"
expect_status "verify --witness reads journal JSON" 0 ctl audit verify --witness "$T/journal.json"

# a consistent cut: the newest commits and the rows they cover removed
# together, the state file gone (a fresh host): plain verify cannot tell
cp "$STORE" "$T/keep.db"
t_mount; echo more > "$MNT/late"; sync; t_umount
sleep 0.2
cut=$(q 'SELECT max(seq) FROM ledger')
base=$((cut - 3))
aseq=$(sqlite3 "$STORE" "SELECT max(seq) FROM audit") # for the message
python3 - "$STORE" "$base" <<'PY'
import sqlite3, sys, struct
db = sqlite3.connect(sys.argv[1]); base = int(sys.argv[2])
body = db.execute("SELECT body FROM ledger WHERE seq=?", (base,)).fetchone()[0]
# the audit head a commit names: find the row whose hash is in the body
rows = db.execute("SELECT seq, hash FROM audit ORDER BY seq").fetchall()
keep = max(s for s, h in rows if h in body)
db.execute("DELETE FROM ledger WHERE seq > ?", (base,))
db.execute("DELETE FROM audit WHERE seq > ?", (keep,))
db.commit()
PY
rm -rf "$XDG_STATE_HOME"
expect_status "the cut store verifies on its own (why a witness is needed)" 0 ctl audit verify
expect_status "verify --witness catches the cut tail" 4 ctl audit verify --witness "$LOG"
out=$(ctl audit verify --witness "$LOG" 2>&1)
case $out in *"witness"*"commit"*) ok "the message names the witnessed commit" ;; *) fail "message: $out" ;; esac

# a whole-file rollback on a fresh host: caught the same way
cp "$T/keep.db" "$STORE"; rm -f "$STORE-wal" "$STORE-shm"
rm -rf "$XDG_STATE_HOME"
expect_status "verify --witness catches a rolled-back file" 4 ctl audit verify --witness "$LOG"

# a witness that cannot be read: exit 1, one line, never a pass
expect_status "an unreadable witness is an error, not a pass" 1 \
	ctl audit verify --witness "$T/nonexistent.log"
sed -n 's/^.*custodyfs\[\([0-9]*\)\]: \(commit store=.*\)$/{"_UID":"0","_PID":"\1","MESSAGE":"\2"}/p' \
	"$LOG" > "$T/journal.json"
expect_status "the rolled-back file against the journal JSON witness" 4 \
	ctl audit verify --witness "$T/journal.json"
t_finish
