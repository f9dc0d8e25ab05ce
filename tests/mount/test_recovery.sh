#!/usr/bin/env bash
# The recovery secret (custodyctl init prints it once, or writes it with
# --recovery-file): the roster's user 0, "recovery", an admin holding the
# authority and every key version, for the day the last admin's
# passphrase is lost. `custodyctl --recovery FILE COMMAND` acts as it.
# Checked: a lost admin passphrase is reset and the data reads again; the
# secret keeps up with key rotations, destroyed versions and a new
# authority (an admin removed); a wrong or malformed secret is refused
# (exit 3 / 2) without changing anything; its actions are in the trail
# under "recovery" and verify.
. "$(dirname "$0")/../lib.sh"
t_setup
rm -f "$STORE"
check "init writes the recovery secret" \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" init --recovery-file "$T/rec.txt"
expect_eq "the secret file is 0600" "600" "$(stat -c %a "$T/rec.txt")"
check "the secret is one line of 64 hex digits" grep -qxE '[0-9a-f]{64}' "$T/rec.txt"
rec() { "$CUSTODYCTL" -s "$STORE" -c "$CONF" --recovery "$T/rec.txt" "$@"; }
pf adm2 adm2-pass
pf w writer-pass
check "a second admin" ctl user add adm2 --role admin --new-passfile "$T/adm2.pass"
check "a writer" ctl user add w --role writer --new-passfile "$T/w.pass"
t_mount
echo "written under v1" > "$MNT/v1.txt"
t_umount
# the secret follows the keys: a rotation, re-encryption and destroyed v1;
# and the authority: adm2 removed makes a new one
check "key rotate" ctl key rotate
t_mount; echo "written under v2" > "$MNT/v2.txt"; t_umount
check "reencrypt" ctl reencrypt
check "key retire 1" ctl key retire 1
check "key destroy 1" ctl key destroy 1 --yes
check "adm2 removed (a new authority)" ctl user del adm2
expect_eq "the recovery secret holds the active version" "1" \
	"$(q "SELECT count(*) FROM grants WHERE user_id=0 AND kind=1 AND version=(SELECT max(version) FROM grants WHERE kind=1)")"
expect_eq "and the newest authority" "1" \
	"$(q "SELECT count(*) FROM grants WHERE user_id=0 AND kind=3 AND version=(SELECT max(epoch) FROM authorities)")"

# the admin forgets the passphrase
printf 'forgotten\n' > "$PASSFILE"
expect_status "the admin is locked out" 3 ctl info
pf new new-admin-pass
cp "$STORE" "$T/before-wrong.db"
# a wrong secret and a malformed one change nothing
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/wrong.txt"; echo >> "$T/wrong.txt"
chmod 600 "$T/wrong.txt"
expect_status "a wrong secret: exit 3" 3 "$CUSTODYCTL" -s "$STORE" -c "$CONF" --recovery "$T/wrong.txt" user passwd admin --new-passfile "$T/new.pass"
stderr_has "it says so in one line" "not the recovery secret of this store"
printf 'xyz\n' > "$T/bad.txt"; chmod 600 "$T/bad.txt"
expect_status "a malformed secret: exit 2" 2 "$CUSTODYCTL" -s "$STORE" -c "$CONF" --recovery "$T/bad.txt" info
expect_eq "a wrong secret counts no failed login against anyone" "0" \
	"$(q "SELECT coalesce(sum(failed),0) FROM logins WHERE user_id <> 1")"
check "the recovery secret resets the admin" rec user passwd admin --new-passfile "$T/new.pass"
expect_status "the old passphrase no longer works" 3 ctl info
PASSFILE=$T/new.pass
check "the admin logs in with the new one" ctl info
t_mount
expect_eq "v1-era data reads (re-encrypted)" "written under v1" "$(cat "$MNT/v1.txt" 2>&1)"
expect_eq "v2 data reads" "written under v2" "$(cat "$MNT/v2.txt" 2>&1)"
echo after > "$MNT/after.txt"
t_umount
check "the writer is untouched" as w info
check "recovery can add an admin" rec user add adm3 --role admin --new-passfile "$T/adm2.pass"
expect_eq "adm3 is an admin" "admin" "$(ctl user list --json | jq -r '.[] | select(.name=="adm3") | .role')"
check_not "'recovery' is no name a user can take" ctl user add recovery --role writer --new-passfile "$T/w.pass"
ctl audit list --json > "$T/trail.json"
check "the reset is in the trail under 'recovery'" \
	jq -e 'any(.[]; .user == "recovery" and .op == "user passwd" and .result == 0)' "$T/trail.json"
check "the recovery login is in the trail" \
	jq -e 'any(.[]; .user == "recovery" and .op == "login")' "$T/trail.json"
expect_status "audit verify" 0 ctl audit verify
expect_status "check" 0 ctl check
t_finish
