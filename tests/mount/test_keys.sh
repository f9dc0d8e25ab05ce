#!/usr/bin/env bash
# The master-key life cycle on a mounted store (issue 7): rotate while
# mounted (the daemon picks the new version up without a remount), key list
# --json, retire/destroy refusals, reencrypt online, retire + destroy, and
# crypto-shredding: a block still sealed under a destroyed version can never
# be read again (EIO, check exits 4 naming the file). Every step must be in
# key_events and in the audit trail. Format 2: the versions and their
# status are in the signed roster (key list reads it), their sealed copies
# in grants (kind 1 data, 2 audit); inode rows are not encrypted (only
# blocks, names and xattrs carry a key version); each session's audit
# detail key is sealed to the audit key of the version active when it
# started (sessions.detail_version).
. "$(dirname "$0")/../lib.sh"
t_setup
status_of() { ctl key list --json | jq -r --argjson v "$1" '.[] | select(.version == $v) | .status'; }

ino_of() { stat -c %i "$1"; }
# stderr of the last expect_status
lasterr() { cat "$T/.stderr"; }

check "mount" t_mount
head -c 40000 /dev/urandom > "$T/a.ref"          # 10 blocks of 4 KiB
cp "$T/a.ref" "$MNT/a.bin"
mkdir -p "$MNT/d1/d2"
printf 'old text\n' > "$MNT/d1/d2/old.txt"
ln -s d1/d2/old.txt "$MNT/link"
setfattr -n user.colour -v blue "$MNT/a.bin" 2>/dev/null || true
sync "$MNT/a.bin" "$MNT/d1/d2/old.txt"
INO_A=$(ino_of "$MNT/a.bin")
expect_eq "a.bin: 10 blocks under v1" "10" \
	"$(q "SELECT count(*) FROM blocks WHERE ino=$INO_A AND key_version=1")"

# ---- rotate while mounted ----
expect_status "key rotate" 0 ctl key rotate
start=$(date +%s%N)
landed=""
for i in $(seq 50); do
	f=$MNT/probe.$i
	head -c 8192 /dev/urandom > "$f"
	sync "$f"
	ino=$(ino_of "$f")
	if [ "$(q "SELECT count(*) FROM blocks WHERE ino=$ino AND key_version=2")" = 2 ] &&
	   [ "$(q "SELECT count(*) FROM blocks WHERE ino=$ino AND key_version<>2")" = 0 ]; then
		landed=$f
		break
	fi
	[ $(( ($(date +%s%N) - start) / 1000000 )) -ge 5000 ] && break
	sleep 0.1
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
t_log "new writes under v2 after ${ms} ms (no remount)"
if [ -n "$landed" ]; then ok "new writes under v2 within 5 s"; else fail "new writes under v2 within 5 s (waited ${ms} ms)"; fi

# a new file written now: blocks, its name and the audit rows all under v2
head -c 12288 /dev/urandom > "$T/new.ref"
cp "$T/new.ref" "$MNT/d1/new.bin"
sync "$MNT/d1/new.bin"
INO_N=$(ino_of "$MNT/d1/new.bin")
expect_eq "new file: 3 blocks, all under v2" "3|3" \
	"$(q "SELECT count(*), sum(key_version=2) FROM blocks WHERE ino=$INO_N")"
expect_eq "new file: its dentry under v2" "2" \
	"$(q "SELECT group_concat(key_version) FROM dentries WHERE ino=$INO_N")"
# a session started after the rotation seals its audit details under v2
expect_status "a command after the rotation" 0 ctl info
expect_eq "the newest session's audit detail key is under v2" "2" \
	"$(q "SELECT detail_version FROM sessions ORDER BY id DESC LIMIT 1")"
expect_eq "that session's audit rows are in the trail" "1" \
	"$(q "SELECT count(*) > 0 FROM audit WHERE session=(SELECT max(id) FROM sessions)")"
expect_eq "old file's blocks still under v1" "10" \
	"$(q "SELECT count(*) FROM blocks WHERE ino=$INO_A AND key_version=1")"
check "old file still readable" cmp "$T/a.ref" "$MNT/a.bin"
expect_eq "old small file still readable" "old text" "$(cat "$MNT/d1/d2/old.txt" 2>&1)"
expect_eq "old symlink still resolves" "old text" "$(cat "$MNT/link" 2>&1)"
check "new file reads back" cmp "$T/new.ref" "$MNT/d1/new.bin"

# ---- key list --json ----
ctl key list --json > "$T/list.json" 2>"$T/list.err"
check "key list --json parses" jq -e 'type == "array" and length == 2' "$T/list.json"
check "key list --json: every entry has version, status, created, expires, objects" \
	jq -e 'all(.[]; has("version") and has("status") and has("created") and has("expires") and has("objects"))' "$T/list.json"
expect_eq "key list --json: statuses" "1 decrypt-only,2 active" \
	"$(jq -r '[.[] | "\(.version) \(.status)"] | join(",")' "$T/list.json")"
check "key list --json: v1 still has objects" jq -e '.[] | select(.version == 1) | .objects > 0' "$T/list.json"
check "key list --json: v2 has objects" jq -e '.[] | select(.version == 2) | .objects > 0' "$T/list.json"
check "key list --json: objects are numbers, created is a time" \
	jq -e 'all(.[]; (.objects | type) == "number" and (.created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")))' "$T/list.json"

# ---- refusals ----
expect_status "retire the active version: refused" 1 ctl key retire 2
check "retire active: says so" grep -q "active" "$T/.stderr"
expect_status "retire v1 while still in use: refused" 1 ctl key retire 1
check "retire in use: says reencrypt first" grep -q "reencrypt" "$T/.stderr"
expect_status "destroy without --yes and no terminal: refused" 2 ctl key destroy 1 < /dev/null
check "destroy without --yes: says to confirm" grep -q -- "--yes" "$T/.stderr"
expect_status "destroy v1 (decrypt-only): refused" 1 ctl key destroy 1 --yes
check "destroy decrypt-only: says only retired" grep -q "retired" "$T/.stderr"
expect_status "destroy v2 (active): refused" 1 ctl key destroy 2 --yes
expect_status "retire a version that does not exist" 1 ctl key retire 9
expect_status "retire with a bad version argument: usage" 2 ctl key retire banana
expect_eq "after refusals: v1 still decrypt-only, v2 active" "decrypt-only active" \
	"$(status_of 1) $(status_of 2)"
expect_eq "after refusals: v1's data grants still there" "1" \
	"$(q "SELECT count(*) > 0 FROM grants WHERE version=1 AND kind=1")"

# ---- set aside one v1 block of a.bin (store idle), before reencrypt ----
check "unmount" t_umount
q "ATTACH '$T/aside.db' AS a; CREATE TABLE a.saved AS SELECT * FROM blocks WHERE ino=$INO_A AND blk=3 AND key_version=1;"
expect_eq "one v1 block of a.bin set aside" "1" \
	"$(sqlite3 "$T/aside.db" "SELECT count(*) FROM saved")"
check "remount" t_mount

# ---- reencrypt online, then retire and destroy ----
ctl reencrypt > "$T/reenc.out" 2>&1
st=$?
expect_eq "reencrypt while mounted" 0 "$st"
t_log "$(tail -n 1 "$T/reenc.out")"
ctl key list --json > "$T/list.json"
expect_eq "after reencrypt: v1 has 0 objects" "0" \
	"$(jq -r '.[] | select(.version == 1) | .objects' "$T/list.json")"
expect_eq "after reencrypt: no block, name, xattr or session audit key under v1" "0" \
	"$(q "SELECT (SELECT count(*) FROM blocks WHERE key_version=1) + (SELECT count(*) FROM dentries WHERE key_version=1) + (SELECT count(*) FROM xattrs WHERE key_version=1) + (SELECT count(*) FROM sessions WHERE detail_version=1)")"
check "data reads while mounted after reencrypt" cmp "$T/a.ref" "$MNT/a.bin"
expect_status "retire v1 after reencrypt" 0 ctl key retire 1
expect_eq "v1 retired" "retired" "$(status_of 1)"
expect_status "retire v1 again: refused (not decrypt-only)" 1 ctl key retire 1
expect_eq "a retired version is still sealed to its holders" "1" \
	"$(q "SELECT count(*) > 0 FROM grants WHERE version=1 AND kind IN (1, 2)")"
expect_status "destroy v1" 0 ctl key destroy 1 --yes
expect_eq "v1 destroyed" "destroyed" "$(status_of 1)"
expect_eq "no sealed copy of v1 left (grants, data and audit)" "0" \
	"$(q "SELECT count(*) FROM grants WHERE version=1 AND kind IN (1, 2)")"
expect_status "destroy v1 again: refused" 1 ctl key destroy 1 --yes
ctl key list --json > "$T/list.json"
expect_eq "key list after destroy" "1 destroyed,2 active" \
	"$(jq -r '[.[] | "\(.version) \(.status)"] | join(",")' "$T/list.json")"
check "mount still serves data after destroy" cmp "$T/a.ref" "$MNT/a.bin"
check "unmount after destroy" t_umount

# ---- the store still mounts and reads entirely ----
check "remount after destroy" t_mount
check "a.bin reads" cmp "$T/a.ref" "$MNT/a.bin"
check "new.bin reads" cmp "$T/new.ref" "$MNT/d1/new.bin"
expect_eq "old.txt reads" "old text" "$(cat "$MNT/d1/d2/old.txt" 2>&1)"
expect_eq "symlink target reads" "d1/d2/old.txt" "$(readlink "$MNT/link" 2>&1)"
n=0; for f in "$MNT"/probe.*; do cat "$f" >/dev/null 2>&1 || n=$((n + 1)); done
expect_eq "every probe file reads" "0" "$n"
if getfattr --absolute-names -n user.colour "$MNT/a.bin" >/dev/null 2>&1; then
	expect_eq "xattr reads" "blue" "$(getfattr --absolute-names --only-values -n user.colour "$MNT/a.bin")"
fi
check "unmount" t_umount
expect_status "check after destroy: clean" 0 ctl check

# ---- a block still under the destroyed v1 is unreadable for good ----
q "ATTACH '$T/aside.db' AS a; UPDATE blocks SET data=(SELECT data FROM a.saved), key_version=1 WHERE ino=$INO_A AND blk=3;"
expect_eq "old v1 block put back" "1" \
	"$(q "SELECT count(*) FROM blocks WHERE ino=$INO_A AND blk=3 AND key_version=1")"
check "mount with the stale block" t_mount
err=$(cat "$MNT/a.bin" 2>&1 >/dev/null)
check_not "reading a.bin fails" cat "$MNT/a.bin"
case $err in *"Input/output error"*) ok "reading a.bin: EIO" ;; *) fail "reading a.bin: want EIO, got '$err'" ;; esac
# the other blocks of a.bin are still fine (only block 3 is lost)
expect_eq "a.bin block 0 still reads" "$(head -c 4096 "$T/a.ref" | md5sum)" \
	"$(dd if="$MNT/a.bin" bs=4096 count=1 2>/dev/null | md5sum)"
check "other files unaffected" cmp "$T/new.ref" "$MNT/d1/new.bin"
check "unmount" t_umount
expect_status "check with a block under a destroyed version: exit 4" 4 ctl check
check "check names a.bin" grep -q "a.bin" <(ctl check 2>&1)

# ---- every step logged: key_events and the audit trail ----
ev=$(q "SELECT group_concat(event, ' ') FROM key_events")
for e in rotate reencrypt-start reencrypt-end retire destroy; do
	case " $ev " in *" $e "*) ok "key_events has $e" ;; *) fail "key_events has $e (got: $ev)" ;; esac
done
expect_eq "key_events: rotate 1 -> 2" "1|2" \
	"$(q "SELECT from_version, to_version FROM key_events WHERE event='rotate'")"
expect_eq "key_events: retire and destroy name v1" "1|1" \
	"$(q "SELECT (SELECT from_version FROM key_events WHERE event='retire'), (SELECT from_version FROM key_events WHERE event='destroy')")"
if ctl audit list --json > "$T/audit.json" 2>/dev/null && jq -e 'type == "array"' "$T/audit.json" >/dev/null 2>&1; then
	for op in "key rotate" "reencrypt" "key retire" "key destroy"; do
		check "audit trail has a successful '$op'" \
			jq -e --arg op "$op" 'any(.[]; .op == $op and .result == 0)' "$T/audit.json"
	done
	check "audit trail records the refused retire" \
		jq -e 'any(.[]; .op == "key retire" and .result != 0)' "$T/audit.json"
else
	fail "audit list --json"
	ops=$(q "SELECT group_concat(op, ',') FROM audit")
	for op in "key rotate" "reencrypt" "key retire" "key destroy"; do
		case ",$ops," in *",$op,"*) ok "audit has $op" ;; *) fail "audit has $op" ;; esac
	done
fi
expect_status "audit chain verifies" 0 ctl audit verify
t_finish
