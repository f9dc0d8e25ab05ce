#!/usr/bin/env bash
# custodyctl user add/del/passwd/role/unlock/list, and what each role may do
# on a real mount. Format 2: a user's role and public keys live in the one
# authority-signed roster (user list reads it), the sealed secret in
# credentials, the failure counters in logins, the sealed key versions in
# grants (kind 1 data, 2 audit, 3 authority). An admin's role change,
# reset or removal of a mounted user ends that user's sessions: the mount
# stops and nothing more is served under the old rights.
. "$(dirname "$0")/../lib.sh"
t_setup

# role_of NAME: NAME's role in the signed roster ("removed" once deleted)
role_of() { ctl user list --json --all 2>/dev/null | jq -r --arg n "$1" '.[] | select(.name == $n) | .role'; }
# box_of NAME: NAME's X25519 public key in the roster body (u64 id, u8
# name length, name, box key (32), ...)
box_of() {
	local hexname
	hexname=$(printf '%02X' "${#1}")$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
	q "SELECT hex(substr(body, instr(body, X'$hexname') + 1 + ${#1}, 32)) FROM roster WHERE instr(body, X'$hexname') > 0"
}
# grants KIND ID: how many grants of KIND (1 data, 2 audit, 3 authority)
# are sealed to user id ID
grants() { q "SELECT count(*) FROM grants WHERE user_id=$2 AND kind=$1"; }
mounted() { grep -q " $MNT fuse" /proc/mounts; }
# wait_gone: the mount on $MNT ends within 5 s (about a second, with room
# for a slow sanitizer build)
wait_gone() {
	for i in $(seq 50); do
		mounted || return 0
		sleep 0.1
	done
	return 1
}
# hold FILE [WFILE]: descriptors opened on the mount before an admin
# changes the mounted user's rights (7 reads FILE, 8 appends to WFILE)
hold() {
	exec 7< "$MNT/$1"
	if [ -n "${2:-}" ]; then exec 8>> "$MNT/$2"; fi
}
# ended DESC [w]: after the change, the mount stops within 5 s and the
# descriptors opened before serve nothing more (with w: the append fd
# too); a mount left behind is taken down
ended() {
	local d=$1
	if wait_gone; then ok "$d: the mount stops"; else fail "$d: the mount stops (still mounted after 5 s)"; fi
	check_not "$d: a later read on a descriptor opened before fails" sh -c 'cat <&7'
	if [ -n "${2:-}" ]; then
		check_not "$d: a later write on a descriptor opened before fails" sh -c 'echo x >&8'
	fi
	exec 7<&- 8>&-
	if mounted; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
		sleep 0.5
	fi
}

cp "$PASSFILE" "$T/admin.pass"
pf wri 'writer pass phrase'
pf rea 'reader pass phrase'
pf aud 'auditor pass phrase'
pf adm2 'second admin pass phrase'

# ---- help and usage ----
check "user --help" ctl user --help
expect_eq "user add --help shows usage" "1" "$(ctl user add --help | grep -c '^usage: custodyctl user add')"
for sub in del passwd role unlock list revoke; do
	check "user $sub --help" sh -c "'$CUSTODYCTL' user $sub --help | grep -q '^usage: custodyctl user $sub'"
done
expect_status "user without a command is a usage error" 2 ctl user
expect_status "unknown user command" 2 ctl user frobnicate
expect_status "add without --role" 2 ctl user add x --new-passfile "$T/wri.pass"
expect_status "add with unknown role" 2 ctl user add x --role boss --new-passfile "$T/wri.pass"
expect_status "add with role 'removed' is a usage error" 2 ctl user add x --role removed --new-passfile "$T/wri.pass"

# ---- add one user of each role ----
expect_status "add writer" 0 ctl user add wri --role writer --new-passfile "$T/wri.pass"
expect_status "add reader" 0 ctl user add rea --role reader --new-passfile "$T/rea.pass"
expect_status "add auditor" 0 ctl user add aud --role auditor --new-passfile "$T/aud.pass"
expect_status "add admin" 0 ctl user add adm2 --role=admin --new-passfile="$T/adm2.pass"
expect_status "duplicate name refused" 1 ctl user add wri --role reader --new-passfile "$T/wri.pass"
stderr_has "duplicate names the user" "user 'wri' exists"
expect_status "invalid name refused" 2 ctl user add 'bad/name' --role reader --new-passfile "$T/wri.pass"
expect_status "too long name refused" 2 ctl user add "$(printf 'x%.0s' $(seq 65))" --role reader --new-passfile "$T/wri.pass"
expect_eq "one credentials row per user" "adm2 admin aud rea wri" \
	"$(q "SELECT group_concat(name, ' ') FROM (SELECT name FROM credentials ORDER BY name)")"

# ---- list ----
ctl user list > "$T/list.txt" 2>&1
for u in admin:admin wri:writer rea:reader aud:auditor adm2:admin; do
	check "list shows ${u%%:*} as ${u#*:}" grep -qE "^${u%%:*} +${u#*:} " "$T/list.txt"
done
ctl user list --json > "$T/list.json"
expect_eq "json: five users" "5" "$(jq length "$T/list.json")"
expect_eq "json: names and roles" "admin:admin wri:writer rea:reader aud:auditor adm2:admin" \
	"$(jq -r '[.[] | .name + ":" + .role] | join(" ")' "$T/list.json")"
expect_eq "json: fields" "created,failed,id,last_login,locked,locked_until,name,role" \
	"$(jq -r '.[0] | keys | join(",")' "$T/list.json")"
expect_eq "json: nobody locked, no failures" "true" \
	"$(jq '[.[] | (.locked == false and .failed == 0 and .locked_until == null)] | all' "$T/list.json")"
expect_eq "json: admin has logged in" "true" "$(jq '.[0].last_login != null' "$T/list.json")"
expect_eq "json: ids are the credentials' user ids" \
	"$(q "SELECT group_concat(name || '=' || user_id, ' ') FROM (SELECT * FROM credentials ORDER BY user_id)")" \
	"$(jq -r 'sort_by(.id) | [.[] | .name + "=" + (.id | tostring)] | join(" ")' "$T/list.json")"
expect_eq "grants: writer and reader hold data, not audit or authority" "1 0 0|1 0 0" \
	"$(grants 1 "$(uid_of wri)") $(grants 2 "$(uid_of wri)") $(grants 3 "$(uid_of wri)")|$(grants 1 "$(uid_of rea)") $(grants 2 "$(uid_of rea)") $(grants 3 "$(uid_of rea)")"
expect_eq "grants: auditor holds audit only" "0 1 0" \
	"$(grants 1 "$(uid_of aud)") $(grants 2 "$(uid_of aud)") $(grants 3 "$(uid_of aud)")"
expect_eq "grants: the new admin holds data, audit and the authority" "1 1 1" \
	"$(grants 1 "$(uid_of adm2)") $(grants 2 "$(uid_of adm2)") $(grants 3 "$(uid_of adm2)")"

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
expect_status "writer may not delete users" 5 as wri user del rea
expect_eq "nobody named x was added" "" "$(uid_of x)"
expect_eq "roles unchanged by the refusals" "writer reader" "$(role_of wri) $(role_of rea)"

# ---- passwd by self ----
cp "$T/wri.pass" "$T/wri.old"
printf 'writer NEW phrase\n' > "$T/wri.new"; chmod 600 "$T/wri.new"
box_before=$(box_of wri)
salt_before=$(q "SELECT hex(salt) FROM credentials WHERE name='wri'")
expect_status "writer changes own passphrase" 0 as wri user passwd --new-passfile "$T/wri.new"
check_not "own passphrase change re-seals the secret (new salt)" \
	test "$salt_before" == "$(q "SELECT hex(salt) FROM credentials WHERE name='wri'")"
expect_eq "own passphrase change keeps the key pair (roster)" "$box_before" "$(box_of wri)"
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
pk_before=$(box_of rea)
check "reader's box key found in the roster" test -n "$pk_before"
sealed_before=$(q "SELECT hex(sealed) FROM grants WHERE user_id=$(uid_of rea) AND kind=1 ORDER BY version LIMIT 1")
printf 'reader reset by admin\n' > "$T/rea.pass"
expect_status "admin resets reader's passphrase" 0 ctl user passwd rea --new-passfile "$T/rea.pass"
post=$(box_of rea)
check "reset gives a new key pair (roster)" test -n "$post" -a "$pk_before" != "$post"
check_not "reset re-seals the reader's grants" test "$sealed_before" == \
	"$(q "SELECT hex(sealed) FROM grants WHERE user_id=$(uid_of rea) AND kind=1 ORDER BY version LIMIT 1")"
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
	"$(q "SELECT (SELECT count(*)>0 FROM grants WHERE user_id=$(uid_of aud) AND kind=2), (SELECT count(*) FROM grants WHERE user_id=$(uid_of aud) AND kind=1)")"
expect_status "reset of an unknown user" 1 ctl user passwd nobody --new-passfile "$T/aud.pass"

# ---- a reset of a mounted user ends their mount ----
check "reader mounts before a reset" mount_as rea
expect_eq "the mounted reader reads" "second" "$(cat "$MNT/w/two.txt" 2>/dev/null)"
hold w/one.txt
printf 'reader reset again\n' > "$T/rea.pass"
expect_status "admin resets the mounted reader" 0 ctl user passwd rea --new-passfile "$T/rea.pass"
ended "reset while mounted"
check "reader mounts with the new passphrase" mount_as rea
check "unmount" t_umount

# ---- role change ----
expect_status "reader -> writer" 0 ctl user role rea writer
expect_eq "roster: rea is a writer" "writer" "$(role_of rea)"
check "new writer mounts" mount_as rea
echo "by former reader" > "$MNT/w/three.txt" 2>/dev/null
expect_eq "former reader can write" "by former reader" "$(cat "$MNT/w/three.txt" 2>/dev/null)"
# while mounted as a writer: made an auditor
hold w/one.txt w/three.txt
expect_status "writer -> auditor (while mounted)" 0 ctl user role rea auditor
ended "role change while mounted" w
expect_eq "roster: rea is an auditor" "auditor" "$(role_of rea)"
expect_eq "auditor role drops data grants" "0" "$(grants 1 "$(uid_of rea)")"
expect_eq "auditor role gives audit grants" "1" "$(q "SELECT count(*)>0 FROM grants WHERE user_id=$(uid_of rea) AND kind=2")"
expect_status "now an auditor: cannot mount" 5 mount_as rea
check_not "no mount left by the new auditor" mountpoint -q "$MNT"
expect_status "the new auditor may list users" 0 as rea user list
expect_status "auditor -> reader" 0 ctl user role rea reader
expect_eq "reader role: no audit grants" "0" "$(grants 2 "$(uid_of rea)")"
expect_eq "reader role: data grants back" "1" "$(q "SELECT count(*)>0 FROM grants WHERE user_id=$(uid_of rea) AND kind=1")"
check "reader again mounts" mount_as rea
expect_eq "reads after role round trip (nothing appended after the role change)" "by former reader" "$(cat "$MNT/w/three.txt" 2>/dev/null)"
check_not "reader again: read-only" sh -c "echo x > '$MNT/w/four.txt'"
check "unmount" t_umount
expect_status "role: unknown role" 2 ctl user role rea boss
expect_status "role: unknown user" 1 ctl user role nobody reader

# ---- unlock (logins holds the advisory failure counters) ----
wid=$(uid_of wri)
expect_eq "the writer's lock planted in logins" "1" \
	"$(q "INSERT OR REPLACE INTO logins(user_id, failed, locked_until, last_login) VALUES($wid, 7, strftime('%s','now')+3600, 0); SELECT changes()")"
expect_status "locked writer cannot log in" 3 mount_as wri
check_not "no mount while locked" mountpoint -q "$MNT"
expect_eq "user list shows the lock" "true" \
	"$(ctl user list --json | jq '.[] | select(.name == "wri") | .locked and .failed == 7')"
expect_status "admin unlocks" 0 ctl user unlock wri
expect_eq "unlock clears counters (logins)" "0" \
	"$(q "SELECT count(*) FROM logins WHERE user_id=$wid AND (failed <> 0 OR locked_until <> 0)")"
expect_eq "unlock clears counters (user list)" "false|0" \
	"$(ctl user list --json | jq -r '.[] | select(.name == "wri") | "\(.locked)|\(.failed)"')"
check "unlocked writer mounts" mount_as wri
check "unmount" t_umount
expect_status "unlock an unknown user" 1 ctl user unlock nobody

# ---- del ----
expect_status "delete writer" 0 ctl user del wri
expect_status "deleted writer cannot log in" 3 as wri user passwd --new-passfile "$T/wri.pass"
expect_status "deleted writer cannot mount" 3 mount_as wri
check_not "no mount by the deleted writer" mountpoint -q "$MNT"
expect_eq "deleted writer's grants are gone" "0" "$(q "SELECT count(*) FROM grants WHERE user_id=$wid")"
expect_eq "deleted writer's credentials are gone" "0" "$(q "SELECT count(*) FROM credentials WHERE user_id=$wid")"
expect_eq "user list no longer shows the writer" "" \
	"$(ctl user list --json | jq -r '.[] | select(.name == "wri") | .name')"
expect_eq "the roster keeps the writer as removed (--all)" "removed" "$(role_of wri)"
expect_status "delete an unknown user" 1 ctl user del wri
# a mounted user deleted: the mount stops
pf gone 'soon gone pass phrase'
expect_status "add writer 'gone'" 0 ctl user add gone --role writer --new-passfile "$T/gone.pass"
check "'gone' mounts" mount_as gone
echo "by gone" > "$MNT/w/gone.txt"
hold w/two.txt w/gone.txt
expect_status "delete the mounted 'gone'" 0 ctl user del gone
ended "delete while mounted" w
expect_status "deleted 'gone' cannot mount again" 3 mount_as gone

# ---- the last admin ----
expect_status "an admin cannot delete themself (another admin exists): 1, not 5" 1 ctl user del admin
stderr_has "says why (themself)" "themself"
a2=$(uid_of adm2)
expect_status "admin deletes the other admin" 0 ctl user del adm2
expect_eq "the deleted admin holds no grant (authority included)" "0" "$(q "SELECT count(*) FROM grants WHERE user_id=$a2")"
expect_status "the deleted admin cannot log in" 3 as adm2 user list
expect_status "last admin cannot be deleted (refused by the store's state: 1, not 5)" 1 ctl user del admin
stderr_has "says why" "last admin|themself"
expect_status "last admin cannot be demoted (1, not 5)" 1 ctl user role admin writer
stderr_has "says why (demote)" "last admin"
expect_eq "admin is still admin" "admin" "$(role_of admin)"
expect_status "admin still works" 0 ctl user list
pf new1 'new admin pass phrase'
expect_status "admin still holds the authority (adds a user)" 0 ctl user add new1 --role reader --new-passfile "$T/new1.pass"

# ---- the audit trail saw it all, refusals included ----
expect_eq "successful user add rows" "7" "$(q "SELECT count(*) FROM audit WHERE op='user add' AND result=0")"
expect_eq "refused user add rows (duplicate, auditor, writer)" "3" "$(q "SELECT count(*) FROM audit WHERE op='user add' AND result<>0")"
check "user del rows include the refusals (writer, unknown, self, last admin)" test "$(q "SELECT count(*) FROM audit WHERE op='user del' AND result<>0")" -ge 4
check "user role rows" test "$(q "SELECT count(*) FROM audit WHERE op='user role'")" -ge 6
check "user passwd rows" test "$(q "SELECT count(*) FROM audit WHERE op='user passwd'")" -ge 8
check "user unlock row" test "$(q "SELECT count(*) FROM audit WHERE op='user unlock' AND result=0")" -ge 1
expect_status "audit chain verifies" 0 ctl audit verify
expect_status "check: clean" 0 ctl check

t_finish
