#!/usr/bin/env bash
# custodyctl user revoke NAME --destroy (issue 7): a revoked writer is
# locked out for good. Revoking him while he is mounted ends his mount.
# Even with his old credentials, login counters and key grants put back
# into the store (he kept a copy of the file), he cannot log in: the signed
# roster says "removed" and the credentials tree no longer holds his row;
# and had he got in, everything was re-encrypted under a version he never
# held, and the versions he held are destroyed.
# Documented limit (README threat model): with an OLD COPY of the store he
# can still read the OLD data in that copy; nothing written after the
# revocation is in it. The old copy put in place of the store is refused
# as a rollback.
. "$(dirname "$0")/../lib.sh"
t_setup

BOBPASS=$T/bob.pass
printf 'bob-passphrase\n' > "$BOBPASS"
chmod 600 "$BOBPASS"
# is_mounted M: from /proc/mounts (mountpoint(1) fails with EIO when the
# user cannot even stat the root)
is_mounted() { grep -q " $(realpath "$1" 2>/dev/null) fuse" /proc/mounts; }
# as_bob_mount STORE MOUNTPOINT [ARGS]: custodyfs's exit status
as_bob_mount() {
	local s=$1 m=$2; shift 2
	"$CUSTODYFS" -u bob -c "$CONF" --passfile "$BOBPASS" "$@" "$s" "$m" || return $?
	T_MOUNTS+=("$m")
	t_track "$m"
	is_mounted "$m"
}
# unmount M even if its root gives EIO
force_umount() {
	is_mounted "$1" || return 0
	t_umount "$1" || { fusermount3 -u "$1" 2>/dev/null || umount -l "$1"; return 1; }
}
trap 'exec 7<&- 8>&-; force_umount "$MNT"; force_umount "$T/mnt2"; t_cleanup' EXIT
as_bob() { "$CUSTODYCTL" -s "$STORE" -u bob -c "$CONF" --passfile "$BOBPASS" "$@"; }
key_statuses() { ctl key list --json | jq -r '[.[] | "\(.version) \(.status)"] | join(",")'; }

expect_status "add writer bob" 0 ctl user add bob --role writer --new-passfile "$BOBPASS"
BOB_ID=$(uid_of bob)
check "bob has an id" test -n "$BOB_ID"

# ---- bob writes ----
check "bob mounts" as_bob_mount "$STORE" "$MNT"
mkdir -p "$MNT/bob/deep"
for i in 1 2 3; do
	head -c $((i * 9000)) /dev/urandom > "$T/old$i.ref"
	cp "$T/old$i.ref" "$MNT/bob/deep/old$i"
done
printf 'bob was here\n' > "$MNT/bob/note.txt"
setfattr -n user.owner -v bob "$MNT/bob/note.txt"
check "bob reads his file" cmp "$T/old2.ref" "$MNT/bob/deep/old2"
check "bob unmounts" t_umount
OLDFILES="bob/deep/old1 bob/deep/old2 bob/deep/old3 bob/note.txt"

# ---- bob's copy of the idle store ----
check "store idle: no WAL left behind" test ! -s "$STORE-wal"
cp "$STORE" "$T/old.db"
expect_eq "copy holds bob's credentials row" "1" \
	"$(sqlite3 "$T/old.db" "SELECT count(*) FROM credentials WHERE name='bob'")"
expect_eq "copy holds bob's v1 data grant" "1" \
	"$(sqlite3 "$T/old.db" "SELECT count(*) FROM grants WHERE user_id=$BOB_ID AND version=1 AND kind=1")"

# ---- revoke while bob is mounted: his mount stops ----
check "bob mounts again" as_bob_mount "$STORE" "$MNT"
exec 7< "$MNT/bob/deep/old3"
exec 8>> "$MNT/bob/note.txt"
ctl user revoke bob --destroy > "$T/revoke.out" 2>&1
expect_eq "user revoke bob --destroy (bob mounted)" 0 "$?"
grep -q "unknown\|usage" "$T/revoke.out" && t_log "revoke: $(head -n 1 "$T/revoke.out")"
gone=""
for i in $(seq 50); do is_mounted "$MNT" || { gone=1; break; }; sleep 0.1; done
if [ -n "$gone" ]; then ok "bob's mount stops after the revoke"; else fail "bob's mount stops after the revoke (still mounted 5 s after)"; fi
check_not "a descriptor bob opened before reads nothing more" sh -c 'cat <&7'
check_not "a descriptor bob opened before writes nothing more" sh -c 'echo appended >&8'
exec 7<&- 8>&-
force_umount "$MNT"
sleep 0.5

expect_eq "bob's credentials row is gone" "0" "$(q "SELECT count(*) FROM credentials WHERE name='bob'")"
expect_eq "bob holds no grant" "0" "$(q "SELECT count(*) FROM grants WHERE user_id=$BOB_ID")"
expect_eq "the roster keeps bob as removed" "removed" \
	"$(ctl user list --json --all | jq -r '.[] | select(.name == "bob") | .role')"
expect_eq "user list no longer shows bob" "" "$(ctl user list --json | jq -r '.[] | select(.name == "bob") | .name')"
expect_eq "v1 destroyed, v2 active" "1 destroyed,2 active" "$(key_statuses)"
expect_eq "no sealed copy of v1 (data or audit) left for anyone" "0" \
	"$(q "SELECT count(*) FROM grants WHERE version=1 AND kind IN (1, 2)")"
ctl key list --json > "$T/list.json"
expect_eq "key list: v1 encrypts 0 objects" "0" "$(jq -r '.[] | select(.version == 1) | .objects' "$T/list.json")"
expect_eq "no block, name or xattr under v1" "0" \
	"$(q "SELECT (SELECT count(*) FROM blocks WHERE key_version=1) + (SELECT count(*) FROM dentries WHERE key_version=1) + (SELECT count(*) FROM xattrs WHERE key_version=1)")"
for e in revoke reencrypt-start reencrypt-end retire destroy; do
	expect_eq "key_events has $e" "1" "$(q "SELECT count(*) > 0 FROM key_events WHERE event='$e'")"
done
expect_eq "the revoke event names bob" "bob" "$(q "SELECT detail FROM key_events WHERE event='revoke'")"
check "audit trail has the revocation" \
	jq -e 'any(.[]; .op == "user revoke" and .path == "bob" and .result == 0)' <(ctl audit list --json)
expect_status "revoke bob again: he is gone, nothing to do but finish" 0 ctl user revoke bob --destroy
expect_eq "revoking again changed no key" "1 destroyed,2 active" "$(key_statuses)"

# ---- the admin still reads everything, and writes new files ----
t_mount 2> "$T/admin-mount.err"; expect_eq "admin mounts" 0 "$?"; cat "$T/admin-mount.err" >&2
bad=0
for i in 1 2 3; do cmp -s "$T/old$i.ref" "$MNT/bob/deep/old$i" || bad=$((bad + 1)); done
expect_eq "admin reads bob's re-encrypted files" 0 "$bad"
expect_eq "admin reads bob's xattr" "bob" "$(getfattr --absolute-names --only-values -n user.owner "$MNT/bob/note.txt" 2>&1)"
expect_eq "bob's note has nothing appended after the revoke" "bob was here" "$(cat "$MNT/bob/note.txt" 2>&1)"
mkdir "$MNT/after"
for i in 1 2; do
	head -c $((i * 7000)) /dev/urandom > "$T/new$i.ref"
	cp "$T/new$i.ref" "$MNT/after/new$i"
done
printf 'written after the revocation\n' > "$MNT/bob/after.txt"
NEWFILES="after/new1 after/new2 bob/after.txt"
check "admin unmounts" t_umount

# ---- bob cannot log in ----
expect_status "bob cannot mount (unknown user)" 3 as_bob_mount "$STORE" "$MNT"
check_not "no mount left behind" is_mounted "$MNT"
expect_status "bob cannot use custodyctl" 3 as_bob info

# ---- bob's old credentials, counters and grants put back into the current store ----
check "store idle before the transplant" test ! -s "$STORE-wal"
cp "$STORE" "$T/before-transplant.db"
q "ATTACH '$T/old.db' AS o;
   INSERT INTO credentials SELECT * FROM o.credentials WHERE name='bob';
   INSERT OR REPLACE INTO logins SELECT * FROM o.logins WHERE user_id=$BOB_ID;
   INSERT INTO grants SELECT * FROM o.grants WHERE user_id=$BOB_ID;"
expect_eq "bob's credentials row transplanted" "1" "$(q "SELECT count(*) FROM credentials WHERE name='bob'")"
expect_eq "bob's old data grants transplanted (v1 only)" "1" \
	"$(q "SELECT group_concat(version) FROM grants WHERE user_id=$BOB_ID AND kind=1")"
as_bob_mount "$STORE" "$MNT" 2>"$T/bobmount.err"
st=$?
t_log "transplanted bob mounts: exit $st ($(head -c 200 "$T/bobmount.err"))"
case $st in
3|4) ok "transplanted bob refused at mount (exit $st)" ;;
*) fail "transplanted bob: mount exit $st, want 3 or 4 ($(head -c 200 "$T/bobmount.err"))" ;;
esac
expect_eq "transplanted bob: one line on stderr" "1" "$(wc -l < "$T/bobmount.err")"
if is_mounted "$MNT"; then
	fail "transplanted bob: a mount was left behind"
	readable=""
	for f in $OLDFILES $NEWFILES; do
		if head -c 1 "$MNT/$f" >/dev/null 2>&1; then readable="$readable $f"; fi
	done
	expect_eq "transplanted bob reads not one byte of any current file" "" "$readable"
	force_umount "$MNT"
else
	ok "transplanted bob: no mount left behind"
fi
as_bob info > /dev/null 2> "$T/.stderr"; st=$?
case $st in
3|4) ok "transplanted bob refused by custodyctl (exit $st)" ;;
*) fail "transplanted bob: custodyctl exit $st, want 3 or 4 ($(head -c 200 "$T/.stderr"))" ;;
esac
cp "$T/before-transplant.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
expect_status "store as before the transplant: admin logs in" 0 ctl info

# ---- bob with his OLD COPY: the old data, and nothing newer ----
mkdir -p "$T/mnt2"
# the copy at a path of its own is a copy of the store (a store instance of
# its own from its first commit): bob reads the old data (documented limit)
expect_status "bob mounts his old copy" 0 as_bob_mount "$T/old.db" "$T/mnt2"
if is_mounted "$T/mnt2"; then
	bad=0
	for i in 1 2 3; do cmp -s "$T/old$i.ref" "$T/mnt2/bob/deep/old$i" || bad=$((bad + 1)); done
	expect_eq "old copy: bob reads the old data (documented limit)" 0 "$bad"
	missing=0
	for f in $NEWFILES; do [ -e "$T/mnt2/$f" ] || missing=$((missing + 1)); done
	expect_eq "old copy: nothing written after the revocation" 3 "$missing"
	check "unmount the old copy" t_umount "$T/mnt2"
else
	fail "old copy: not mounted, so what bob reads in it is not checked"
fi

# the old copy put in place of the store: older than what this machine has
# seen of it, so refused as a rollback unless accepted explicitly
cp "$STORE" "$T/current.db"
cp -a "$XDG_STATE_HOME" "$T/state.saved"
cp "$T/old.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
expect_status "bob's old copy in place of the store is refused as a rollback" 4 as_bob_mount "$STORE" "$MNT"
stderr_has "the line says it is older" "older than one seen before"
check_not "no mount left behind" is_mounted "$MNT"
expect_status "the admin's login on it is refused too" 4 ctl info
check "bob mounts it accepting the rollback" as_bob_mount "$STORE" "$MNT" -o accept_rollback
bad=0
for i in 1 2 3; do cmp -s "$T/old$i.ref" "$MNT/bob/deep/old$i" || bad=$((bad + 1)); done
expect_eq "rolled-back store: bob reads the old data (documented limit)" 0 "$bad"
missing=0
for f in $NEWFILES; do [ -e "$MNT/$f" ] || missing=$((missing + 1)); done
expect_eq "rolled-back store: nothing written after the revocation" 3 "$missing"
check "unmount the rolled-back store" t_umount
cp "$T/current.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
# this host's memory of the store as it was before the experiment
rm -rf "$XDG_STATE_HOME" && cp -a "$T/state.saved" "$XDG_STATE_HOME"

# the current store is still sound for the admin
expect_status "the current store back: admin logs in" 0 ctl info
expect_status "check: clean" 0 ctl check
expect_status "audit chain verifies" 0 ctl audit verify
t_finish
