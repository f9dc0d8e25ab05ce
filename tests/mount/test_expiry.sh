#!/usr/bin/env bash
# Key expiry (issue 7), with [keys] max_age = 3s: an expired version never
# encrypts again. An admin's mount rotates automatically (key_events
# "auto-rotate"); a writer's mount cannot, so its writes fail with EROFS
# until an admin runs any custodyctl command, which rotates. Format 2: the
# versions, their dates and status are in the signed roster (key list
# --json reads it).
. "$(dirname "$0")/../lib.sh"
t_setup
# kl JQ: a question to key list --json
kl() { ctl key list --json 2>/dev/null | jq -r "$1"; }

# a fresh store whose keys live 3 s
rm -f "$STORE" "$STORE-wal" "$STORE-shm"
printf '[keys]\nmax_age = 3s\n' >> "$CONF"
check "init with max_age = 3s" ctl init
expect_eq "v1 expires 3 s after its creation" "3" \
	"$(kl '.[] | select(.version == 1) | if .expires then (.expires | fromdate) - (.created | fromdate) else "no expiry" end')"
# the same settings with long-lived keys, for admin commands that rotate
# in part 2 (so the writer has time to use the new version)
CONF60=$T/long.ini
sed 's/^max_age = 3s$/max_age = 60s/' "$CONF" > "$CONF60"
ctl60() { "$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF60" --passfile "$PASSFILE" "$@"; }
ver_of() { q "SELECT group_concat(DISTINCT key_version) FROM blocks WHERE ino=$(stat -c %i "$1")"; }
autorot() { q "SELECT count(*) FROM key_events WHERE event='auto-rotate'"; }

# ---- 1. an admin's mount: EROFS after expiry (a mount never holds the
# authority key), until the next admin command rotates; then it writes
# again, under the new version, without a remount ----
check "admin mounts" t_mount
echo one > "$MNT/f1"
sync "$MNT/f1"
V1=$(ver_of "$MNT/f1")
t_log "f1 written under v$V1"
sleep 4
expect_eq "a write after expiry fails with EROFS" "EROFS" \
	"$(sh -c "echo x > '$MNT/f0'" 2>&1 | grep -q 'Read-only' && echo EROFS)"
expect_eq "the mount did not rotate by itself" "0" \
	"$(q "SELECT count(*) FROM key_events WHERE event='auto-rotate' AND from_version>=$V1")"
check "an admin command rotates the expired key" ctl60 info
expect_eq "the admin command auto-rotated away from v$V1 (key_events)" "1" \
	"$(q "SELECT count(*) > 0 FROM key_events WHERE event='auto-rotate' AND from_version>=$V1 AND user='admin' AND detail='active key expired'")"
now=$(date +%s)
for i in $(seq 30); do sh -c "echo two > '$MNT/f2'" 2>/dev/null && break; sleep 0.1; done
sync "$MNT/f2"
V2=$(ver_of "$MNT/f2")
t_log "f2 written under v$V2"
check "the mount writes again after the rotation, under a newer version (v$V2 > v$V1)" test "${V2:-0}" -gt "$V1"
check "f2's version had not expired when f2 was written" \
	test "$(kl ".[] | select(.version == ${V2:-0}) | .expires != null and (.expires | fromdate) >= $now")" = true
expect_eq "f1 still reads" "one" "$(cat "$MNT/f1" 2>&1)"
check "admin unmounts" t_umount
ctl key list --json > "$T/list.json" 2>"$T/list.err"
check "key list: the newest version is active, every older one decrypt-only" \
	jq -e '(max_by(.version) | .version) as $m | (max_by(.version) | .status == "active") and all(.[]; .version == $m or .status == "decrypt-only")' "$T/list.json"
check "key list: v1 decrypt-only, v2 exists" \
	jq -e '(.[] | select(.version == 1) | .status == "decrypt-only") and any(.[]; .version == 2)' "$T/list.json"
check "key list --json: expires is set" jq -e 'all(.[]; .expires != null)' "$T/list.json"
check "audit trail: key auto-rotate" \
	jq -e 'any(.[]; .op == "key auto-rotate" and .result == 0)' <(ctl audit list --json)

# ---- 2. a writer's mount: EROFS after expiry, until an admin acts ----
printf 'writer-passphrase\n' > "$T/w.pass"
chmod 600 "$T/w.pass"
expect_status "add writer w" 0 ctl user add w --role writer --new-passfile "$T/w.pass"
expect_status "admin rotates: a fresh 3 s key" 0 ctl key rotate
"$CUSTODYFS" -u w -c "$CONF" --passfile "$T/w.pass" "$STORE" "$MNT"
expect_eq "writer mounts" 0 "$?"
T_MOUNTS+=("$MNT")
check "writer writes before expiry" sh -c "echo early > '$MNT/w1'"
before=$(autorot)
# wait for the key to expire: the writer's writes start failing
err=""
for i in $(seq 80); do
	if ! err=$(sh -c "echo late > '$MNT/w2.$i'" 2>&1); then break; fi
	err=""
	sleep 0.1
done
case $err in
*"Read-only file system"*) ok "after expiry the writer's write fails with EROFS" ;;
*) fail "after expiry the writer's write fails with EROFS (got '${err:-no failure}')" ;;
esac
sleep 1.5
err=$(sh -c "echo later > '$MNT/w3'" 2>&1)
case $err in
*"Read-only file system"*) ok "still EROFS 1.5 s later (a writer cannot rotate)" ;;
*) fail "still EROFS 1.5 s later (got '${err:-success}')" ;;
esac
check_not "mkdir fails too" mkdir "$MNT/wd"
expect_eq "the writer did not rotate" "$before" "$(autorot)"
expect_eq "reads still work while expired" "early" "$(cat "$MNT/w1" 2>&1)"
expect_eq "the admin's f1 still reads for the writer" "one" "$(cat "$MNT/f1" 2>&1)"

# any admin command rotates: key list (it opens the store read-only)
ctl60 key list > "$T/kl.out" 2>&1
expect_eq "admin key list after expiry" 0 "$?"
expect_eq "the admin command auto-rotated (key_events)" "$((before + 1))" "$(autorot)"
VN=$(kl '.[] | select(.status == "active") | .version')
t_log "admin command rotated to v$VN ($(grep -m1 expired "$T/kl.out"))"
ok_write=""
for i in $(seq 50); do
	if sh -c "echo again > '$MNT/w4'" 2>/dev/null; then ok_write=1; break; fi
	sleep 0.1
done
if [ -n "$ok_write" ]; then ok "the writer writes again after the admin command"; else fail "the writer writes again after the admin command (5 s)"; fi
sync "$MNT/w4" 2>/dev/null
expect_eq "the writer's new write is under the new version" "$VN" "$(ver_of "$MNT/w4")"
check "writer unmounts" t_umount
expect_status "check: clean" 0 ctl60 check
t_finish
