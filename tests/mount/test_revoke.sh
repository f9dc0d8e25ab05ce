#!/usr/bin/env bash
# custodyctl user revoke NAME --destroy (issue 7): a revoked writer is
# locked out for good. Even with his old users row and key grants put back
# into the store (he kept a copy of the file), his login opens no byte of
# the current data: everything was re-encrypted under a version he never
# held, and the versions he held are destroyed.
# Documented limit (README threat model): with an OLD COPY of the store he
# can still read the OLD data in that copy; nothing written after the
# revocation is in it.
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
	is_mounted "$m"
}
# unmount M even if its root gives EIO (lib.sh's cleanup asks mountpoint -q)
force_umount() {
	is_mounted "$1" || return 0
	t_umount "$1" || { fusermount3 -u "$1" 2>/dev/null || umount -l "$1"; return 1; }
}
trap 'force_umount "$MNT"; force_umount "$T/mnt2"; t_cleanup' EXIT
as_bob() { "$CUSTODYCTL" -s "$STORE" -u bob -c "$CONF" --passfile "$BOBPASS" "$@"; }

expect_status "add writer bob" 0 ctl user add bob --role writer --new-passfile "$BOBPASS"
BOB_ID=$(q "SELECT id FROM users WHERE name='bob'")

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
expect_eq "copy holds bob's users row" "1" \
	"$(sqlite3 "$T/old.db" "SELECT count(*) FROM users WHERE name='bob'")"
expect_eq "copy holds bob's v1 grant" "1" \
	"$(sqlite3 "$T/old.db" "SELECT count(*) FROM key_grants WHERE user_id=$BOB_ID AND version=1")"

# ---- revoke ----
ctl user revoke bob --destroy > "$T/revoke.out" 2>&1
expect_eq "user revoke bob --destroy" 0 "$?"
grep -q "unknown\|usage" "$T/revoke.out" && t_log "revoke: $(head -n 1 "$T/revoke.out")"
expect_eq "bob's users row is gone" "0" "$(q "SELECT count(*) FROM users WHERE name='bob'")"
expect_eq "bob holds no grant" "0" "$(q "SELECT count(*) FROM key_grants WHERE user_id=$BOB_ID")"
expect_eq "v1 destroyed, v2 active" "1 destroyed,2 active" \
	"$(q "SELECT group_concat(version || ' ' || status, ',') FROM (SELECT * FROM master_keys ORDER BY version)")"
expect_eq "no sealed copy of v1 left for anyone" "0" "$(q "SELECT count(*) FROM key_grants WHERE version=1")"
ctl key list --json > "$T/list.json"
expect_eq "key list: v1 encrypts 0 objects" "0" "$(jq -r '.[] | select(.version == 1) | .objects' "$T/list.json")"
expect_eq "no block, name, xattr or inode under v1" "0" \
	"$(q "SELECT (SELECT count(*) FROM blocks WHERE key_version=1) + (SELECT count(*) FROM dentries WHERE key_version=1) + (SELECT count(*) FROM xattrs WHERE key_version=1) + (SELECT count(*) FROM inodes WHERE key_version=1)")"
for e in revoke reencrypt-start reencrypt-end retire destroy; do
	expect_eq "key_events has $e" "1" "$(q "SELECT count(*) > 0 FROM key_events WHERE event='$e'")"
done
expect_eq "the revoke event names bob" "bob" "$(q "SELECT detail FROM key_events WHERE event='revoke'")"
check "audit trail has the revocation" \
	jq -e 'any(.[]; .op == "user revoke" and .path == "bob" and .result == 0)' <(ctl audit list --json)
expect_status "revoke bob again: he is gone, nothing to do but finish" 0 ctl user revoke bob --destroy

# ---- the admin still reads everything, and writes new files ----
t_mount 2> "$T/admin-mount.err"; expect_eq "admin mounts" 0 "$?"; cat "$T/admin-mount.err" >&2
bad=0
for i in 1 2 3; do cmp -s "$T/old$i.ref" "$MNT/bob/deep/old$i" || bad=$((bad + 1)); done
expect_eq "admin reads bob's re-encrypted files" 0 "$bad"
expect_eq "admin reads bob's xattr" "bob" "$(getfattr --absolute-names --only-values -n user.owner "$MNT/bob/note.txt" 2>&1)"
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

# ---- bob's old users row and grants put back into the current store ----
q "ATTACH '$T/old.db' AS o;
   INSERT INTO users SELECT * FROM o.users WHERE name='bob';
   INSERT INTO key_grants SELECT * FROM o.key_grants WHERE user_id=(SELECT id FROM o.users WHERE name='bob');"
expect_eq "bob's row transplanted" "1" "$(q "SELECT count(*) FROM users WHERE name='bob'")"
expect_eq "bob's old data grants transplanted (v1 only)" "1" \
	"$(q "SELECT group_concat(version) FROM key_grants WHERE user_id=$BOB_ID AND kind='data'")"
as_bob_mount "$STORE" "$MNT" 2>"$T/bobmount.err"
st=$?
t_log "transplanted bob mounts: exit $st ($(head -c 200 "$T/bobmount.err"))"
if [ "$st" = 0 ]; then
	ok "transplanted bob: login succeeds (his row was validly signed)"
	readable=""
	for f in $OLDFILES $NEWFILES; do
		if head -c 1 "$MNT/$f" >/dev/null 2>&1; then readable="$readable $f"; fi
	done
	expect_eq "transplanted bob reads not one byte of any current file" "" "$readable"
	n=$(find "$MNT" -mindepth 1 2>/dev/null | wc -l)
	expect_eq "transplanted bob sees no name in the tree" 0 "$n"
	check_not "transplanted bob cannot create files" sh -c "echo x > '$MNT/bob-was-back'"
	check "unmount bob" force_umount "$MNT"
else
	case $st in
	3|4|5) ok "transplanted bob refused at mount (exit $st)" ;;
	*) fail "transplanted bob: mount exit $st, want 0 (no access), 3, 4 or 5" ;;
	esac
	check_not "no mount left behind" is_mounted "$MNT"
fi
q "DELETE FROM key_grants WHERE user_id=$BOB_ID; DELETE FROM users WHERE name='bob';"

# ---- bob with his OLD COPY: the old data, and nothing newer ----
mkdir -p "$T/mnt2"
# the copy is older than what this machine has seen of the store: in the
# store's own place it is refused as a rollback unless accepted explicitly;
# at a path of its own it is a copy, a store instance of its own, and opens
# (freshness is per instance and per path, state.h: the local state is the
# Unix user's own, so refusing a copy there would protect nothing)
mvdb() { local f; for f in "" -wal -shm; do [ -e "$1$f" ] && mv "$1$f" "$2$f"; done; return 0; }
mvdb "$STORE" "$T/current.db"
cp "$T/old.db" "$STORE"
expect_status "bob's old copy in the store's place is refused as a rollback" 4 as_bob_mount "$STORE" "$T/mnt2"
check_not "no mount left behind" is_mounted "$T/mnt2"
rm -f "$STORE" "$STORE-wal" "$STORE-shm"
mvdb "$T/current.db" "$STORE"
check "bob mounts his old copy at a path of its own (a copy)" as_bob_mount "$T/old.db" "$T/mnt2"
bad=0
for i in 1 2 3; do cmp -s "$T/old$i.ref" "$T/mnt2/bob/deep/old$i" || bad=$((bad + 1)); done
expect_eq "old copy: bob reads the old data (documented limit)" 0 "$bad"
missing=0
for f in $NEWFILES; do [ -e "$T/mnt2/$f" ] || missing=$((missing + 1)); done
expect_eq "old copy: nothing written after the revocation" 3 "$missing"
check "unmount the old copy" t_umount "$T/mnt2"

# the current store is still sound for the admin
expect_status "check: clean" 0 ctl check
t_finish
