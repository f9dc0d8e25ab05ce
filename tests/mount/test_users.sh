#!/usr/bin/env bash
# custodyctl user add/del/passwd/role/unlock/list, and what each role may do
# on a real mount.
. "$(dirname "$0")/../lib.sh"
t_setup


cp "$PASSFILE" "$T/admin.pass"
pf wri 'writer pass phrase'
pf rea 'reader pass phrase'
pf aud 'auditor pass phrase'
pf adm2 'second admin pass phrase'

# ---- help and usage ----
check "user --help" ctl user --help
expect_eq "user add --help shows usage" "1" "$(ctl user add --help | grep -c '^usage: custodyctl user add')"
for sub in del passwd role unlock list; do
	check "user $sub --help" sh -c "'$CUSTODYCTL' user $sub --help | grep -q '^usage: custodyctl user $sub'"
done
expect_status "user without a command is a usage error" 2 ctl user
expect_status "unknown user command" 2 ctl user frobnicate
expect_status "add without --role" 2 ctl user add x --new-passfile "$T/wri.pass"
expect_status "add with unknown role" 2 ctl user add x --role boss --new-passfile "$T/wri.pass"

# ---- add one user of each role ----
expect_status "add writer" 0 ctl user add wri --role writer --new-passfile "$T/wri.pass"
expect_status "add reader" 0 ctl user add rea --role reader --new-passfile "$T/rea.pass"
expect_status "add auditor" 0 ctl user add aud --role auditor --new-passfile "$T/aud.pass"
expect_status "add admin" 0 ctl user add adm2 --role=admin --new-passfile="$T/adm2.pass"
expect_status "duplicate name refused" 1 ctl user add wri --role reader --new-passfile "$T/wri.pass"
stderr_has "duplicate names the user" "user 'wri' exists"
expect_status "invalid name refused" 2 ctl user add 'bad/name' --role reader --new-passfile "$T/wri.pass"
expect_status "too long name refused" 2 ctl user add "$(printf 'x%.0s' $(seq 65))" --role reader --new-passfile "$T/wri.pass"

# ---- list ----
ctl user list > "$T/list.txt" 2>&1
for u in admin:admin wri:writer rea:reader aud:auditor adm2:admin; do
	check "list shows ${u%%:*} as ${u#*:}" grep -qE "^${u%%:*} +${u#*:} " "$T/list.txt"
done
ctl user list --json > "$T/list.json"
if command -v jq >/dev/null; then
	expect_eq "json: five users" "5" "$(jq length "$T/list.json")"
	expect_eq "json: names and roles" "admin:admin wri:writer rea:reader aud:auditor adm2:admin" \
		"$(jq -r '[.[] | .name + ":" + .role] | join(" ")' "$T/list.json")"
	expect_eq "json: fields" "created,failed,last_login,locked,locked_until,name,role,verified" \
		"$(jq -r '.[0] | keys | join(",")' "$T/list.json")"
	expect_eq "json: nobody locked, all verified" "true" \
		"$(jq '[.[] | (.locked == false and .verified == true and .failed == 0)] | all' "$T/list.json")"
	expect_eq "json: admin has logged in" "true" "$(jq '.[0].last_login != null' "$T/list.json")"
else
	expect_eq "json: five users" "5" "$(grep -o '"name":' "$T/list.json" | wc -l)"
	check "json: writer role" grep -q '"name":"wri","role":"writer"' "$T/list.json"
fi

# ---- who may do what ----
check "writer mounts" mount_as wri
mkdir -p "$MNT/w" && echo "from the writer" > "$MNT/w/one.txt" && head -c 200000 /dev/urandom > "$MNT/w/big.bin"
expect_eq "writer wrote" "from the writer" "$(cat "$MNT/w/one.txt" 2>/dev/null)"
sum_big=$(sha256sum < "$MNT/w/big.bin")
check "writer unmount" t_umount

check "reader mounts" mount_as rea
out=$(touch "$MNT/nope" 2>&1); st=$?
expect_eq "reader cannot create files" "1" "$st"
check "reader's write gets EROFS" grep -q "Read-only file system" <<<"$out"
check_not "reader cannot append" sh -c "echo x >> '$MNT/w/one.txt'"
expect_eq "reader reads writer's file" "from the writer" "$(cat "$MNT/w/one.txt" 2>/dev/null)"
expect_eq "reader reads writer's big file" "$sum_big" "$(sha256sum < "$MNT/w/big.bin")"
check "reader unmount" t_umount

expect_status "auditor cannot mount" 5 mount_as aud
check_not "no mount left by auditor" mountpoint -q "$MNT"
expect_status "auditor may list users" 0 as aud user list
expect_status "auditor may not add users" 5 as aud user add x --role reader --new-passfile "$T/wri.pass"
expect_status "writer may not add users" 5 as wri user add x --role reader --new-passfile "$T/wri.pass"
expect_status "reader may not list users" 5 as rea user list
expect_status "writer may not reset another's passphrase" 5 as wri user passwd rea --new-passfile "$T/wri.pass"
expect_status "writer may not change roles" 5 as wri user role wri admin
expect_eq "nobody named x was added" "" "$(uid_of x)"

# ---- passwd by self ----
cp "$T/wri.pass" "$T/wri.old"
printf 'writer NEW phrase\n' > "$T/wri.new"; chmod 600 "$T/wri.new"
expect_status "writer changes own passphrase" 0 as wri user passwd --new-passfile "$T/wri.new"
expect_status "old writer passphrase fails" 3 mount_as wri "$T/wri.old"
check "writer mounts with new passphrase" mount_as wri "$T/wri.new"
expect_eq "writer's files intact after passwd" "from the writer" "$(cat "$MNT/w/one.txt" 2>/dev/null)"
expect_eq "writer's big file intact after passwd" "$sum_big" "$(sha256sum < "$MNT/w/big.bin")"
echo "second" > "$MNT/w/two.txt"
check "unmount" t_umount
cp "$T/wri.new" "$T/wri.pass"
expect_status "passwd NAME == self is a self change" 0 as wri user passwd wri --new-passfile "$T/wri.pass"
expect_status "still logs in" 0 mount_as wri
check "unmount" t_umount

# ---- admin resets another user's passphrase ----
cp "$T/rea.pass" "$T/rea.old"
pk_before=$(sqlite3 "$STORE" "SELECT hex(box_pk) FROM users WHERE name='rea'")
printf 'reader reset by admin\n' > "$T/rea.pass"
expect_status "admin resets reader's passphrase" 0 ctl user passwd rea --new-passfile "$T/rea.pass"
check_not "reset gives a new key pair" test "$pk_before" == "$(sqlite3 "$STORE" "SELECT hex(box_pk) FROM users WHERE name='rea'")"
expect_status "reader's old passphrase fails" 3 mount_as rea "$T/rea.old"
check "reader mounts after reset" mount_as rea
expect_eq "reader reads everything after reset" "from the writer|second" \
	"$(cat "$MNT/w/one.txt" 2>/dev/null)|$(cat "$MNT/w/two.txt" 2>/dev/null)"
expect_eq "reader reads big file after reset" "$sum_big" "$(sha256sum < "$MNT/w/big.bin")"
check "unmount" t_umount
printf 'admin2 reset\n' > "$T/adm2.pass"
expect_status "admin resets another admin" 0 ctl user passwd adm2 --new-passfile "$T/adm2.pass"
pf tmp1 'tmp user'
expect_status "reset admin keeps the authority (can add users)" 0 as adm2 user add tmp1 --role reader --new-passfile "$T/tmp1.pass"
expect_status "reset admin can delete users" 0 as adm2 user del tmp1
printf 'auditor reset\n' > "$T/aud.pass"
expect_status "admin resets auditor" 0 ctl user passwd aud --new-passfile "$T/aud.pass"
expect_status "auditor logs in after reset" 0 as aud user list
expect_eq "auditor got audit grants back, no data" "1|0" \
	"$(sqlite3 "$STORE" "SELECT (SELECT count(*)>0 FROM key_grants WHERE user_id=$(uid_of aud) AND kind='audit'), (SELECT count(*) FROM key_grants WHERE user_id=$(uid_of aud) AND kind='data')")"
expect_status "reset of an unknown user" 1 ctl user passwd nobody --new-passfile "$T/aud.pass"

# ---- role change ----
expect_status "reader -> writer" 0 ctl user role rea writer
check "new writer mounts" mount_as rea
echo "by former reader" > "$MNT/w/three.txt" 2>/dev/null
expect_eq "former reader can write" "by former reader" "$(cat "$MNT/w/three.txt" 2>/dev/null)"
check "unmount" t_umount
expect_status "writer -> auditor" 0 ctl user role rea auditor
expect_eq "auditor role drops data grants" "0" \
	"$(sqlite3 "$STORE" "SELECT count(*) FROM key_grants WHERE user_id=$(uid_of rea) AND kind='data'")"
expect_status "now an auditor: cannot mount" 5 mount_as rea
expect_status "auditor -> reader" 0 ctl user role rea reader
expect_eq "reader role: no audit grants" "0" \
	"$(sqlite3 "$STORE" "SELECT count(*) FROM key_grants WHERE user_id=$(uid_of rea) AND kind='audit'")"
check "reader again mounts" mount_as rea
expect_eq "reads after role round trip" "by former reader" "$(cat "$MNT/w/three.txt" 2>/dev/null)"
check "unmount" t_umount
expect_status "role: unknown role" 2 ctl user role rea boss
expect_status "role: unknown user" 1 ctl user role nobody reader

# ---- unlock ----
sqlite3 "$STORE" "UPDATE users SET failed=7, locked_until=strftime('%s','now')+3600 WHERE name='wri'"
expect_status "locked writer cannot log in" 3 mount_as wri
expect_status "admin unlocks" 0 ctl user unlock wri
expect_eq "unlock clears counters" "0|0" "$(sqlite3 "$STORE" "SELECT failed, locked_until FROM users WHERE name='wri'")"
check "unlocked writer mounts" mount_as wri
check "unmount" t_umount

# ---- del ----
wid=$(uid_of wri)
expect_status "delete writer" 0 ctl user del wri
expect_status "deleted writer cannot log in" 3 as wri user passwd --new-passfile "$T/wri.pass"
expect_status "deleted writer cannot mount" 3 mount_as wri
expect_eq "deleted writer's grants are gone" "0" "$(sqlite3 "$STORE" "SELECT count(*) FROM key_grants WHERE user_id=$wid")"
expect_status "delete an unknown user" 1 ctl user del wri

# ---- the last admin ----
expect_status "admin deletes the other admin" 0 ctl user del adm2
expect_status "last admin cannot be deleted (refused by the store's state: 1, not 5)" 1 ctl user del admin
stderr_has "says why" "last admin"
expect_status "last admin cannot be demoted (1, not 5)" 1 ctl user role admin writer
expect_eq "admin is still admin" "admin" "$(sqlite3 "$STORE" "SELECT role FROM users WHERE name='admin'")"
expect_status "admin still works" 0 ctl user list

# ---- the audit trail saw it all, refusals included ----
expect_eq "successful user add rows" "5" "$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='user add' AND result=0")"
expect_eq "refused user add rows (duplicate, auditor, writer)" "3" "$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='user add' AND result<>0")"
check "user del rows include the refusal" test "$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='user del' AND result<>0")" -ge 2
check "user role rows" test "$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='user role'")" -ge 4
check "user passwd rows" test "$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='user passwd'")" -ge 5
check "user unlock row" test "$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='user unlock'")" -ge 1

t_finish
