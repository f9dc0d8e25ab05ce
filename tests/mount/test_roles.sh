#!/usr/bin/env bash
# Security of users and roles: lockout, indistinguishable failures, raising
# Argon2id, tampered rights (roles and key status in the signed roster, a
# copied authority grant), the auditor's lack of data keys, and passphrases
# never leaking into argv, the environment or the store. Format 2: roles
# and key versions live in the one authority-signed roster (table roster:
# body, sig), failure counters in logins, the Argon2id cost and salt in
# credentials, sealed keys in grants (kind 1 data, 2 audit, 3 authority).
. "$(dirname "$0")/../lib.sh"
t_setup

failed_of() { q "SELECT coalesce((SELECT failed FROM logins WHERE user_id=$(uid_of "$1")), 0)"; }
role_of() { ctl user list --json 2>/dev/null | jq -r --arg n "$1" '.[] | select(.name == $n) | .role'; }
# role_at NAME: 1-based offset of NAME's (first period's) role byte in the
# roster body (u64 id, u8 name length, name, box key (32), u8 periods,
# then per period u64 from, u8 role, signing key (32))
role_at() {
	local hexname
	hexname=$(printf '%02X' "${#1}")$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
	q "SELECT instr(body, X'$hexname') + ${#1} + 1 + 32 + 1 + 8 FROM roster"
}
# set_byte POS HEX: one byte of the roster body replaced (the signature
# is left as it was: the attacker holds no authority key)
set_byte() {
	q "UPDATE roster SET body = CAST(substr(body,1,$(($1 - 1))) || X'$2' || substr(body,$(($1 + 1))) AS BLOB)"
}
byte_at() { q "SELECT hex(substr(body,$1,1)) FROM roster"; }
# the roster row as it is now, and put back
save_roster() { ROSTER=$(q "SELECT hex(body) || '|' || hex(sig) FROM roster"); }
restore_roster() { q "UPDATE roster SET body=X'${ROSTER%|*}', sig=X'${ROSTER#*|}'"; }


cp "$PASSFILE" "$T/admin.pass"
pf reader 'Reader-Secret-Phrase-1'
pf writer 'Writer-Secret-Phrase-2'
pf auditor 'Auditor-Secret-Phrase-3'
pf bad 'not the passphrase'
for u in reader writer auditor; do
	ctl user add $u --role $u --new-passfile "$T/$u.pass" >/dev/null || fail "add $u"
done
check "admin mounts" t_mount
echo "secret content" > "$MNT/f.txt"
check "unmount" t_umount

# ---- lockout: max_failures=3 ----
# The lock itself is checked under a 60 s interval (so a slow sanitizer
# build cannot outrun it); its expiry under $CONF's 2 s.
sed 's/^lockout = 2s$/lockout = 60s/' "$CONF" > "$T/long.ini"
check "config with a 60 s lockout" grep -q '^lockout = 60s$' "$T/long.ini"
for i in 1 2 3; do
	expect_status "wrong passphrase $i" 3 mount_as reader "$T/bad.pass" "$T/long.ini"
done
expect_eq "three failures counted" "3" "$(failed_of reader)"
expect_status "locked: the right passphrase fails" 3 mount_as reader "$T/reader.pass" "$T/long.ini"
stderr_has "the message says locked" "locked"
check_not "no mount while locked" mountpoint -q "$MNT"
expect_status "locked: custodyctl too" 3 as reader -c "$T/long.ini" user passwd --new-passfile "$T/reader.pass"
stderr_has "custodyctl says locked" "locked"
expect_status "admin unlocks" 0 ctl user unlock reader
check "after unlock the reader mounts" mount_as reader "$T/reader.pass" "$T/long.ini"
expect_eq "and reads" "secret content" "$(cat "$MNT/f.txt" 2>/dev/null)"
check "unmount" t_umount
for i in 1 2 3; do as reader --passfile "$T/bad.pass" user list >/dev/null 2>&1; done
expect_eq "locked again (2 s)" "3" "$(failed_of reader)"
sleep 3 # the 2 s lock interval runs out by itself
check "lock expired by itself" mount_as reader
check "unmount" t_umount
expect_eq "success clears the counter" "0" "$(failed_of reader)"
# read-only commands (info) must count failures too, or they bypass the lockout
for i in 1 2 3; do "$CUSTODYCTL" -s "$STORE" -u writer -c "$CONF" --passfile "$T/bad.pass" info >/dev/null 2>&1; done
expect_eq "failures through a read-only command count" "3" "$(failed_of writer)"
ctl user unlock writer >/dev/null

# ---- wrong passphrase and unknown user look the same ----
"$CUSTODYCTL" -s "$STORE" -u auditor -c "$CONF" --passfile "$T/bad.pass" user list >/dev/null 2>"$T/e1"; s1=$?
"$CUSTODYCTL" -s "$STORE" -u nosuchuser -c "$CONF" --passfile "$T/bad.pass" user list >/dev/null 2>"$T/e2"; s2=$?
expect_eq "wrong passphrase: status 3" "3" "$s1"
expect_eq "unknown user: status 3" "3" "$s2"
# the line names the user as given on the command line, nothing else
expect_eq "same message for both" "$(sed "s/'auditor'/'X'/" "$T/e1")" "$(sed "s/'nosuchuser'/'X'/" "$T/e2")"
expect_eq "one line" "1" "$(wc -l < "$T/e1")"
"$CUSTODYFS" -u nosuchuser -c "$CONF" --passfile "$T/bad.pass" "$STORE" "$MNT" 2>"$T/e3"; s3=$?
"$CUSTODYFS" -u auditor -c "$CONF" --passfile "$T/bad.pass" "$STORE" "$MNT" 2>"$T/e4"; s4=$?
expect_eq "custodyfs: both status 3" "3 3" "$s3 $s4"
expect_eq "custodyfs: same message for both" "$(sed "s/'nosuchuser'/'X'/" "$T/e3")" "$(sed "s/'auditor'/'X'/" "$T/e4")"
expect_eq "custodyfs: one line" "1" "$(wc -l < "$T/e3")"
ctl user unlock auditor >/dev/null

# ---- raising the Argon2id cost ----
expect_eq "created with opslimit 1" "1" "$(q "SELECT opslimit FROM credentials WHERE name='reader'")"
sed 's/^opslimit = 1$/opslimit = 2/' "$CONF" > "$T/ops2.ini"
check "config with opslimit 2" grep -q '^opslimit = 2$' "$T/ops2.ini"
salt_before=$(q "SELECT hex(salt) FROM credentials WHERE name='reader'")
check "reader mounts under the higher cost" mount_as reader "$T/reader.pass" "$T/ops2.ini"
check "unmount" t_umount
expect_eq "opslimit raised to 2" "2" "$(q "SELECT opslimit FROM credentials WHERE name='reader'")"
check_not "secret re-sealed with a new salt" test "$salt_before" == "$(q "SELECT hex(salt) FROM credentials WHERE name='reader'")"
check "login still works (new config)" mount_as reader "$T/reader.pass" "$T/ops2.ini"
expect_eq "and reads" "secret content" "$(cat "$MNT/f.txt" 2>/dev/null)"
check "unmount" t_umount
expect_status "login still works (old config)" 0 as reader info
expect_eq "a lower config does not lower it" "2" "$(q "SELECT opslimit FROM credentials WHERE name='reader'")"

# ---- tampering with the store (unmounted) ----
# a role raised in the roster body: its signature no longer matches
save_roster
RP=$(role_at reader)
expect_eq "reader's role byte found (reader = 2)" "02" "$(byte_at "$RP")"
set_byte "$RP" 00
check "the roster body now says admin for the reader" test "$(byte_at "$RP")" = 00
expect_status "reader edited to admin: mount refused" 4 mount_as reader
stderr_has "names the failed verification" "fails verification"
check_not "no mount" mountpoint -q "$MNT"
expect_status "reader edited to admin: user add refused" 4 as reader user add evil --role admin --new-passfile "$T/bad.pass"
stderr_has "names the failed verification (ctl)" "fails verification"
expect_status "reader edited to admin: info refused" 4 as reader info
expect_status "admin will not re-sign the edited roster" 4 ctl user role reader writer
expect_status "admin's user list refused on the edited roster" 4 ctl user list
stderr_has "user list names the roster" "fails verification.*roster|roster.*fails verification"
expect_status "admin's mount refused on the edited roster" 4 mount_as admin "$PASSFILE"
restore_roster
expect_status "restored roster works again" 0 as reader info
expect_eq "reader is still a reader" "reader" "$(role_of reader)"

WP=$(role_at writer)
expect_eq "writer's role byte found (writer = 1)" "01" "$(byte_at "$WP")"
set_byte "$WP" 00
expect_status "writer edited to admin: mount refused" 4 mount_as writer
stderr_has "names the failed verification" "fails verification"
check_not "no mount" mountpoint -q "$MNT"
expect_status "writer edited to admin: user add refused" 4 as writer user add evil --role admin --new-passfile "$T/bad.pass"
expect_status "writer edited to admin: user list refused" 4 as writer user list
restore_roster
expect_eq "nobody named evil" "" "$(uid_of evil)"
expect_eq "writer is still a writer" "writer" "$(role_of writer)"

# the active key version's status edited to retired (the last key record:
# u32 version, u8 status, u8 cipher, 4 x u64 dates, 32 + 32 bytes)
KP=$(( $(q "SELECT length(body) FROM roster") - 102 + 5 ))
expect_eq "the active version's status byte found (active = 0)" "00" "$(byte_at "$KP")"
set_byte "$KP" 02
expect_status "retired key status: admin mount refused" 4 mount_as admin "$PASSFILE"
stderr_has "names the failed verification" "fails verification"
check_not "no mount" mountpoint -q "$MNT"
expect_status "retired key status: writer mount refused" 4 mount_as writer
expect_status "retired key status: admin commands refused" 4 ctl user list
expect_status "retired key status: key list refused" 4 ctl key list
restore_roster
expect_status "restored roster works again (admin)" 0 ctl user list
expect_eq "key v1 still active" "1 active" "$(ctl key list --json | jq -r '.[] | "\(.version) \(.status)"')"

# the admin's authority grant copied onto the reader's id
q "INSERT INTO grants(user_id, version, kind, sealed) SELECT $(uid_of reader), version, kind, sealed FROM grants WHERE user_id=$(uid_of admin) AND kind=3"
expect_eq "authority grant copied onto reader" "1" "$(q "SELECT count(*) FROM grants WHERE user_id=$(uid_of reader) AND kind=3")"
as reader user add evil --role admin --new-passfile "$T/bad.pass" >/dev/null 2>&1; st=$?
check "copied authority grant: reader still cannot add users (4 or 5, got $st)" test "$st" = 4 -o "$st" = 5
expect_eq "nobody named evil" "" "$(uid_of evil)"
as reader user role reader admin >/dev/null 2>&1; st=$?
check "copied authority grant: reader cannot promote itself (4 or 5, got $st)" test "$st" = 4 -o "$st" = 5
as reader key rotate >/dev/null 2>&1; st=$?
check "copied authority grant: reader cannot rotate the key (4 or 5, got $st)" test "$st" = 4 -o "$st" = 5
expect_eq "reader is still reader" "reader" "$(role_of reader)"
expect_eq "still one key version" "1" "$(ctl key list --json | jq length)"
q "DELETE FROM grants WHERE user_id=$(uid_of reader) AND kind=3"
# the admin's data grant copied onto the auditor's id
q "INSERT INTO grants(user_id, version, kind, sealed) SELECT $(uid_of auditor), version, kind, sealed FROM grants WHERE user_id=$(uid_of admin) AND kind=1"
expect_status "copied data grant: the auditor still cannot mount" 5 mount_as auditor
check_not "no mount by the auditor" mountpoint -q "$MNT"
q "DELETE FROM grants WHERE user_id=$(uid_of auditor) AND kind=1"
expect_status "after the grant attacks: admin works" 0 ctl user list

# ---- the auditor holds no data key ----
aid=$(uid_of auditor)
expect_eq "auditor: no data grant" "0" "$(q "SELECT count(*) FROM grants WHERE user_id=$aid AND kind=1")"
expect_eq "auditor: audit grants exist" "1" "$(q "SELECT count(*)>0 FROM grants WHERE user_id=$aid AND kind=2")"
expect_eq "auditor: no authority" "0" "$(q "SELECT count(*) FROM grants WHERE user_id=$aid AND kind=3")"
expect_status "auditor cannot mount" 5 mount_as auditor
check_not "no mount by the auditor" mountpoint -q "$MNT"
expect_status "auditor can log in for the trail" 0 as auditor user list

# ---- passphrases never leak ----
check "admin mounts" t_mount
pid=$(t_pid)
check "daemon pid found" test -n "$pid"
check "daemon cmdline readable" grep -qa 'custodyfs' "/proc/$pid/cmdline"
check_not "passphrase not in the daemon's argv" grep -qaF 'admin-passphrase' "/proc/$pid/cmdline"
check_not "passphrase not in ps output" sh -c "ps -eo args | grep -v grep | grep -qF 'admin-passphrase'"
check "daemon environ readable" test -r "/proc/$pid/environ"
check_not "passphrase not in the daemon's environment" grep -qaF 'admin-passphrase' "/proc/$pid/environ"
echo more > "$MNT/g.txt"
check "unmount" t_umount
for p in 'admin-passphrase' 'Reader-Secret-Phrase-1' 'Writer-Secret-Phrase-2' 'Auditor-Secret-Phrase-3'; do
	check_not "'$p' not in the store" sh -c 'cat "$0"* | grep -qaF "$1"' "$STORE" "$p"
done

# ---- a passfile others can read is refused (as ssh refuses such a key) ----
cp "$PASSFILE" "$T/open.pass"; chmod 644 "$T/open.pass"
"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/open.pass" info >/dev/null 2>"$T/e5"; st=$?
expect_eq "0644 passfile refused (usage, exit 2)" "2" "$st"
check "0644 passfile: one line naming it" grep -qi "open.pass" "$T/e5"
"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" info >/dev/null 2>"$T/e6"
check_not "0600 passfile: no warning" grep -qi "warning" "$T/e6"

t_finish
