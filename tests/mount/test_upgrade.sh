#!/bin/bash
# custodyctl upgrade from format 1: a store made by custodyfs 0.1 (git
# 177cb34, built once into a cache under /var/tmp) with users of every
# role, files of every kind, two key versions in use and an audit trail is
# upgraded; the mount serves every file as before (content, modes, times,
# xattrs, links, inode numbers), check and audit verify pass, the carried
# rows keep their users, the other users log in with their one-time
# passphrases and set their own. Refused: a tampered format-1 store (exit
# 4, file untouched), a non-admin (5), a wrong passphrase (3), a mounted
# store (6), no --reset-dir (2). An upgrade killed half-way leaves the
# original as it was and runs again.
. "$(dirname "$0")/../lib.sh"

V1_COMMIT=177cb34
V1_DIR=${CFS_V1_CACHE:-/var/tmp/custodyfs-v1-$V1_COMMIT}

# The custodyfs 0.1 binaries, built from the repository's history once (a
# lock keeps parallel runs from building twice). No build, no test: the
# test fails.
build_v1() {
	[ -x "$V1_DIR/custodyctl" ] && [ -x "$V1_DIR/custodyfs" ] && return 0
	(
		flock 9
		[ -x "$V1_DIR/custodyctl" ] && [ -x "$V1_DIR/custodyfs" ] && exit 0
		src=$(mktemp -d /var/tmp/cfs-v1-src.XXXXXX) || exit 1
		trap 'rm -rf "$src"' EXIT
		git -C "$TOP" archive "$V1_COMMIT" | tar -x -C "$src" || exit 1
		if ! make -C "$src" -s custodyfs custodyctl >"$src/build.log" 2>&1; then
			tail -20 "$src/build.log" >&2
			exit 1
		fi
		rm -rf "$V1_DIR.new" && mkdir -p "$V1_DIR.new" &&
			cp "$src/custodyfs" "$src/custodyctl" "$V1_DIR.new/" &&
			rm -rf "$V1_DIR" && mv "$V1_DIR.new" "$V1_DIR"
	) 9>"$V1_DIR.lock"
}

t_setup
if ! build_v1; then
	fail "cannot build custodyfs 0.1 ($V1_COMMIT) into $V1_DIR"
	t_finish
	exit 1
fi
V1CTL=$V1_DIR/custodyctl
V1FS=$V1_DIR/custodyfs
check "custodyfs 0.1 says it is 0.1" sh -c "'$V1CTL' -V | grep -q ' 0\.1'"

lines() { wc -l < "$1" | tr -d ' '; }
sum() { sha256sum < "$1" | cut -d' ' -f1; }
# format-1 commands on a store (default $STORE) as USER ($T/USER.pass)
v1() { local u=$1; shift; "$V1CTL" -s "${S:-$STORE}" -u "$u" -c "$CONF" --passfile "$T/$u.pass" "$@"; }
v1_mount() {
	local u=$1; shift
	"$V1FS" -u "$u" -c "$CONF" --passfile "$T/$u.pass" "$@" "$STORE" "$MNT" || return 1
	T_MOUNTS+=("$MNT")
	t_track "$MNT"
	mountpoint -q "$MNT"
}
# upgrade as USER with ARGS (store: $S or $STORE); output in $T/up.out
up() {
	local u=$1; shift
	"$CUSTODYCTL" -s "${S:-$STORE}" -u "$u" -c "$CONF" --passfile "$T/$u.pass" upgrade "$@" \
		>"$T/up.out" 2>"$T/.stderr"
}

# ---- a format-2 store needs nothing ----
mv "$STORE" "$T/fresh.db"
out=$("$CUSTODYCTL" -s "$T/fresh.db" -u admin -c "$CONF" --passfile "$PASSFILE" upgrade 2>&1); st=$?
expect_eq "format 2: upgrade exit" 0 "$st"
expect_eq "format 2: already at format 2" "store is already at format 2" "$out"

# ---- a format-1 store, as custodyfs 0.1 made and used it ----
pf admin "admin-passphrase"
USERS="admin2 w1 w2 r1 r2 a1 a2"
"$V1CTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" init >/dev/null 2>&1 ||
	{ fail "custodyfs 0.1 cannot create a store"; t_finish; exit 1; }
expect_eq "the new store is format 1" 1 "$(q 'PRAGMA user_version')"
for u in $USERS; do
	case $u in admin*) role=admin ;; w*) role=writer ;; r*) role=reader ;; a*) role=auditor ;; esac
	pf "$u" "v1-$u-passphrase"
	v1 admin user add "$u" --role "$role" --new-passfile "$T/$u.pass" >/dev/null 2>&1 ||
		fail "0.1: user add $u"
done

REF=$T/ref
mkdir -p "$REF"
# the same tree in DIR, by the same commands (xattrs: on the mount only)
make_tree() {
	local d=$1
	printf 'hello, format 1\n' > "$d/small.txt"
	: > "$d/empty"
	printf '#!/bin/sh\necho hi\n' > "$d/exec.sh"; chmod 0755 "$d/exec.sh"
	printf 'secret\n' > "$d/private"; chmod 0600 "$d/private"
	cp "$T/big.src" "$d/big.bin"
	truncate -s 20M "$d/sparse.bin"
	printf 'X' | dd of="$d/sparse.bin" bs=1 seek=7000001 conv=notrunc status=none
	head -c 4096 "$T/big.src" | dd of="$d/sparse.bin" bs=4096 seek=3700 conv=notrunc status=none
	mkdir -p "$d/dir1/dir2/dir3" "$d/emptydir"
	printf 'deep\n' > "$d/dir1/dir2/dir3/deep.txt"
	ln -s ../small.txt "$d/dir1/link-to-small"
	ln -s /nonexistent/target "$d/dangling"
	printf 'linked\n' > "$d/dir1/hard1"
	ln "$d/dir1/hard1" "$d/hard2"
	mkfifo "$d/fifo"
	touch -d '2001-02-03 04:05:06.123456789' "$d/small.txt" "$d/exec.sh"
	touch -d '1999-12-31 23:59:59.5' "$d/big.bin"
}
head -c 6M /dev/urandom > "$T/big.src"
make_tree "$REF"
check "0.1: mount as admin" v1_mount admin
make_tree "$MNT"
setfattr -n user.color -v blue "$MNT/small.txt"
setfattr -n user.bin -v 0x00ff10 "$MNT/big.bin"
setfattr -n user.dir -v "on a directory" "$MNT/dir1"
setfattr -n user.empty "$MNT/exec.sh"
mkdir -p "$T/rdx"
expect_status "mounted by 0.1: busy" 6 up admin --reset-dir "$T/rdx"
stderr_has "mounted: says unmount" "unmount it first"
t_umount
# a second version: rotate, write under it, move part of the old data
v1 admin key rotate >/dev/null 2>&1 || fail "0.1: key rotate"
check "0.1: mount as w1 (writer)" v1_mount w1
printf 'written by w1 under v2\n' > "$MNT/w1file"
printf 'written by w1 under v2\n' > "$REF/w1file"
dd if=/dev/urandom of="$T/patch" bs=4096 count=3 status=none
for d in "$MNT" "$REF"; do
	dd if="$T/patch" of="$d/big.bin" bs=4096 seek=100 conv=notrunc status=none
	touch -d '1999-12-31 23:59:59.5' "$d/big.bin"
	mkdir "$d/dir1/newdir"
	mv "$d/dir1/dir2/dir3/deep.txt" "$d/dir1/newdir/moved.txt"
done
t_umount
timeout -s INT 1 "$V1CTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" \
	reencrypt --rate 1 >/dev/null 2>&1
kv=$(q "SELECT group_concat(key_version) FROM (SELECT DISTINCT key_version FROM blocks ORDER BY 1)")
expect_eq "0.1: blocks under both versions (a partial reencrypt)" "1,2" "$kv"
check "0.1: mount as r1 (reader), read-only" v1_mount r1 -o ro
cat "$MNT/small.txt" "$MNT/w1file" > /dev/null
t_umount
v1 a1 audit list > /dev/null 2>&1 || fail "0.1: auditor lists the trail"
# directory times last (their entries above moved them)
check "0.1: mount as admin again" v1_mount admin
for d in "$MNT" "$REF"; do
	find "$d" -mindepth 1 -type f ! -name small.txt ! -name exec.sh ! -name big.bin \
		-exec touch -d '2005-05-05 05:05:05.555' {} +
	find "$d" -mindepth 1 -type d -exec touch -d '2010-10-10 10:10:10.10' {} +
done
t_umount

# what the format-1 mount shows, to the byte
# meta DIR [full]: one line per path; full adds inode numbers, owners and
# xattrs (a plain copy has other inode numbers and may lack xattrs)
meta() {
	( cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r p; do
		local extra=""
		[ -n "${2:-}" ] && extra="$(stat -c '%i %u:%g' "$p") $(getfattr -h -d -m - -e hex "$p" 2>/dev/null | grep -v '^#' | tr '\n' ' ')"
		if [ -L "$p" ]; then
			printf '%s L %s %s\n' "$p" "$(readlink "$p")" "$extra"
		elif [ -d "$p" ]; then
			printf '%s D %s %s\n' "$p" "$(stat -c '%a %y' "$p")" "$extra"
		elif [ -p "$p" ]; then
			printf '%s P %s %s\n' "$p" "$(stat -c '%a %h' "$p")" "$extra"
		else
			printf '%s F %s %s %s\n' "$p" "$(stat -c '%a %s %y %h' "$p")" \
				"$(md5sum < "$p" | cut -d' ' -f1)" "$extra"
		fi
	done )
}
check "0.1: mount read-only to record the tree" v1_mount admin -o ro
meta "$MNT" full > "$T/v1.full"
meta "$MNT" > "$T/v1.meta"
t_umount
meta "$REF" > "$T/ref.meta"
if cmp -s "$T/ref.meta" "$T/v1.meta"; then ok "0.1 serves the plain copy"; else
	fail "0.1 does not serve the plain copy: $(diff "$T/ref.meta" "$T/v1.meta" | head -5)"; fi
check "0.1's own check passes" v1 admin check
# a deleted file whose blocks 0.1 had not purged yet (inode 900, above
# every live one)
big_ino=$(q "SELECT ino FROM inodes WHERE size=6291456 LIMIT 1")
q "INSERT INTO blocks SELECT 900, blk, key_version, data FROM blocks WHERE ino=$big_ino AND blk<3; INSERT INTO purge(ino) VALUES (900)"
check "0.1's check accepts the queued blocks" v1 admin check
# last: a failed login format 1 has not moved into its trail yet
printf 'wrong\n' > "$T/bad.pass"; chmod 600 "$T/bad.pass"
"$V1CTL" -s "$STORE" -u w2 -c "$CONF" --passfile "$T/bad.pass" info >/dev/null 2>&1
expect_eq "0.1: one failed login waits in auth_events" 1 "$(q 'SELECT count(*) FROM auth_events')"
V1_ROWS=$(q 'SELECT count(*) FROM audit')
V1_FIRST_TIME=$(q 'SELECT time FROM audit ORDER BY seq LIMIT 1')
V1_W1_ROWS=$(q "SELECT count(*) FROM audit WHERE user='w1'")
V1_INODES=$(q 'SELECT count(*) FROM inodes')
check "0.1: the trail has rows of other users" test "$V1_W1_ROWS" -gt 0
ORIG=$(sum "$STORE")
cp "$STORE" "$T/pristine.db"

# ---- format 2 refuses format 1 until it is upgraded ----
expect_status "format 2 on a format-1 store: refused" 1 ctl info
stderr_has "refused: says to run custodyctl upgrade" "run 'custodyctl upgrade'"
expect_eq "refused: one line" 1 "$(lines "$T/.stderr")"
expect_status "format 2 mount of a format-1 store: refused" 1 \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT"
stderr_has "mount refused: says to run custodyctl upgrade" "custodyctl upgrade"

# ---- refusals leave the store as it was ----
expect_status "no --reset-dir with other users: usage" 2 up admin
stderr_has "no --reset-dir: says what to give" "reset-dir"
expect_eq "no --reset-dir: one line" 1 "$(lines "$T/.stderr")"
expect_status "a non-admin (writer): denied" 5 up w1 --reset-dir "$T/rdx"
stderr_has "non-admin: names the role" "needs the role admin"
expect_status "an auditor: denied" 5 up a1 --reset-dir "$T/rdx"
printf 'not-it\n' > "$T/wrong.pass"; chmod 600 "$T/wrong.pass"
expect_status "wrong passphrase: authentication failed" 3 \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/wrong.pass" upgrade --reset-dir "$T/rdx"
pf nobody "whatever"
expect_status "unknown user: authentication failed" 3 up nobody --reset-dir "$T/rdx"
mkdir -p "$T/taken"; printf 'x\n' > "$T/taken/r2.pass"
expect_status "a reset file exists: refused" 1 up admin --reset-dir "$T/taken"
stderr_has "reset file exists: named" "r2.pass"
expect_eq "refusals: the store file is untouched" "$ORIG" "$(sum "$STORE")"
check "refusals: no temporary file left" test ! -e "$STORE.upgrade.tmp"
expect_eq "refusals: still format 1" 1 "$(q 'PRAGMA user_version')"

# tampered format-1 stores: refused as damage, untouched
tamper() { # DESC SQL
	local f=$T/tamper$((++NT)).db
	cp "$T/pristine.db" "$f"
	expect_eq "$1: the edit took" 1 "$(sqlite3 "$f" "$2; SELECT changes() > 0" 2>&1)"
	local before; before=$(sum "$f")
	mkdir -p "$T/rt$NT"
	S=$f expect_status "$1: refused as damage" 4 up admin --reset-dir "$T/rt$NT"
	stderr_has "$1: says it fails verification" "fails verification"
	expect_eq "$1: one line" 1 "$(lines "$T/.stderr")"
	expect_eq "$1: file untouched" "$before" "$(sum "$f")"
	check "$1: no temporary file left" test ! -e "$f.upgrade.tmp"
	check "$1: no passphrase handed out" test -z "$(ls -A "$T/rt$NT")"
}
NT=0
tamper "a users row's role edited" "UPDATE users SET role='admin' WHERE name='w1'"
stderr_has "role edit: names the row" "users row of 'w1'"
tamper "an audit row edited" "UPDATE audit SET op='read' WHERE seq=3"
stderr_has "audit edit: names the row" "audit row 3"
tamper "an audit row deleted" "DELETE FROM audit WHERE seq=5"
tamper "the trail's tail cut" "DELETE FROM audit WHERE seq=(SELECT max(seq) FROM audit)"
tamper "a key version's status edited" "UPDATE master_keys SET status='active' WHERE version=1"
tamper "an inode's mode edited" "UPDATE inodes SET mode=33279 WHERE ino=2"
tamper "a block's ciphertext edited" \
	"UPDATE blocks SET data=zeroblob(length(data)) WHERE (ino, blk) = (SELECT ino, blk FROM blocks WHERE ino IN (SELECT ino FROM inodes) ORDER BY ino DESC, blk LIMIT 1)"
tamper "a name's ciphertext edited" \
	"UPDATE dentries SET name=zeroblob(length(name)) WHERE id=(SELECT min(id) FROM dentries)"
tamper "an xattr's value edited" "UPDATE xattrs SET value=zeroblob(length(value))"

# a user named "recovery" (format 2's name for the recovery secret)
S=$T/named.db
cp "$T/pristine.db" "$S"
pf recovery "v1-recovery-passphrase"
v1 admin user add recovery --role reader --new-passfile "$T/recovery.pass" >/dev/null 2>&1 ||
	fail "0.1: user add recovery"
before=$(sum "$S")
mkdir -p "$T/rn"
S=$S expect_status "a user named recovery: refused" 1 up admin --reset-dir "$T/rn"
stderr_has "named recovery: says how to fix it" "another name"
expect_eq "named recovery: file untouched" "$before" "$(sum "$S")"
unset S

# ---- killed half-way: the original stays, a rerun completes ----
S=$T/int.db
cp "$T/pristine.db" "$S"
mkdir -p "$T/reset-int1" "$T/reset-int2"
"$CUSTODYCTL" -s "$S" -u admin -c "$CONF" --passfile "$PASSFILE" upgrade \
	--reset-dir "$T/reset-int1" >/dev/null 2>&1 &
upid=$!
for i in $(seq 200000); do [ -e "$S.upgrade.tmp" ] && break; kill -0 $upid 2>/dev/null || break; done
kill -9 $upid 2>/dev/null
wait $upid 2>/dev/null
check "interrupted: it was killed while building" test -e "$S.upgrade.tmp"
expect_eq "interrupted: the store is untouched" "$ORIG" "$(sum "$S")"
expect_eq "interrupted: still format 1" 1 "$(sqlite3 "$S" 'PRAGMA user_version')"
check "interrupted: no passphrase handed out" test -z "$(ls -A "$T/reset-int1")"
S=$S expect_status "interrupted: a rerun completes" 0 up admin --reset-dir "$T/reset-int2"
check "interrupted: the leftover is gone" test ! -e "$S.upgrade.tmp"
expect_eq "interrupted: now format 2" 2 "$(sqlite3 "$S" 'PRAGMA user_version')"
expect_status "interrupted: check passes on the rerun's store" 0 \
	"$CUSTODYCTL" -s "$S" -u admin -c "$CONF" --passfile "$PASSFILE" check
unset S

# ---- the upgrade ----
mkdir -p "$T/reset"
expect_status "upgrade as admin" 0 up admin --reset-dir "$T/reset" --recovery-file "$T/recovery"
check "says format 1 -> 2 with the counts" grep -q "^upgraded '.*': format 1 -> 2: 8 users, 2 key versions" "$T/up.out"
check "names the one-time passphrases and user passwd" grep -q "custodyctl user passwd" "$T/up.out"
check "the recovery secret went to its file" grep -q "written to '$T/recovery'" "$T/up.out"
check "recovery file: 64 hex digits, mode 0600" \
	sh -c "grep -qxE '[0-9a-f]{64}' '$T/recovery' && [ \$(stat -c %a '$T/recovery') = 600 ]"
expect_eq "now format 2" 2 "$(q 'PRAGMA user_version')"
check "no temporary file left" test ! -e "$STORE.upgrade.tmp"
check "no format-1 table left" test -z "$(q "SELECT name FROM sqlite_schema WHERE name IN ('users','master_keys','key_grants','audit_keys')")"
for u in $USERS; do
	check "reset file for $u, mode 0600" sh -c "[ -s '$T/reset/$u.pass' ] && [ \$(stat -c %a '$T/reset/$u.pass') = 600 ]"
done
check "no reset file for the upgrading admin" test ! -e "$T/reset/admin.pass"
expect_eq "same user ids and names" \
	"$(sqlite3 "$T/pristine.db" 'SELECT id, name FROM users ORDER BY id')" \
	"$(q 'SELECT user_id, name FROM credentials ORDER BY user_id')"
expect_eq "one commit" 1 "$(q 'SELECT count(*) FROM ledger')"
# grants by role (kind 1 data, 2 audit, 3 authority), versions 1 and 2;
# user 0 is the new recovery secret (an admin)
grants_of() { q "SELECT group_concat(kind || ':' || version) FROM (SELECT kind, version FROM grants WHERE user_id=(SELECT coalesce((SELECT user_id FROM credentials WHERE name='$1'), 0)) ORDER BY kind, version)"; }
for u in admin admin2 recovery; do
	expect_eq "grants of $u (data, audit, authority)" "1:1,1:2,2:1,2:2,3:1" "$(grants_of $u)"
done
for u in w1 w2 r1 r2; do expect_eq "grants of $u (data)" "1:1,1:2" "$(grants_of $u)"; done
for u in a1 a2; do expect_eq "grants of $u (audit)" "2:1,2:2" "$(grants_of $u)"; done
expect_eq "the inodes carried" "$V1_INODES" "$(q 'SELECT count(*) FROM inodes')"
expect_eq "the purge queue carried" 900 "$(q 'SELECT group_concat(ino) FROM purge')"
expect_eq "the queued blocks carried" 3 "$(q 'SELECT count(*) FROM blocks WHERE ino=900')"
cp "$STORE" "$T/just-upgraded.db"

expect_status "check passes" 0 ctl check
expect_status "audit verify passes" 0 ctl audit verify
expect_status "upgrade again: nothing to do" 0 ctl upgrade
expect_eq "upgrade again: already at format 2" "store is already at format 2" "$(ctl upgrade 2>&1)"
info=$(ctl info --json 2>/dev/null)
expect_eq "info: users and roles" \
	'[{"name":"admin","role":"admin"},{"name":"admin2","role":"admin"},{"name":"w1","role":"writer"},{"name":"w2","role":"writer"},{"name":"r1","role":"reader"},{"name":"r2","role":"reader"},{"name":"a1","role":"auditor"},{"name":"a2","role":"auditor"}]' \
	"$(jq -c .users <<<"$info")"
expect_eq "info: both key versions" '[{"version":1,"status":"decrypt-only"},{"version":2,"status":"active"}]' \
	"$(jq -c .keys <<<"$info")"

# the trail: every format-1 row, then the upgrade's
ctl audit list --json > "$T/trail.json" 2>/dev/null
jq -e . "$T/trail.json" >/dev/null 2>&1 || fail "audit list --json parses"
up_seq=$(jq '[.[] | select(.op == "upgrade")][0].seq' "$T/trail.json")
FAILED_ROWS=1
expect_eq "the upgrade row follows the carried rows" $((V1_ROWS + FAILED_ROWS + 1)) "$up_seq"
expect_eq "carried rows keep their users (w1)" "$V1_W1_ROWS" \
	"$(jq "[.[] | select(.seq <= $V1_ROWS and .user == \"w1\")] | length" "$T/trail.json")"
expect_eq "the first row keeps its time (ns)" "$V1_FIRST_TIME" "$(q 'SELECT time FROM audit WHERE seq=1')"
expect_eq "the first row is 0.1's init" '"init"' "$(jq '.[0].op' "$T/trail.json")"
check "carried details are readable (w1's file)" \
	test "$(jq '[.[] | select(.seq <= '"$V1_ROWS"' and .path == "/w1file")] | length' "$T/trail.json")" -gt 0
expect_eq "the pending failed login is in the trail" '"w2"' \
	"$(jq "[.[] | select(.op == \"login-failed\")][0].user" "$T/trail.json")"
check "the upgrade row names the formats and counts" \
	sh -c "jq -r '.[] | select(.op == \"upgrade\") | .path' '$T/trail.json' | grep -q 'format 1 -> 2: 8 users, 2 key versions'"

# a carried row re-attributed: audit verify refuses it (the genesis
# commit's rows may name other users only as they were carried)
cp "$STORE" "$T/reattr.db"
sqlite3 "$T/reattr.db" "UPDATE audit SET user='w2' WHERE seq=(SELECT min(seq) FROM audit WHERE user='w1')"
expect_status "a carried row re-attributed: audit verify refuses" 4 \
	"$CUSTODYCTL" -s "$T/reattr.db" -u admin -c "$CONF" --passfile "$PASSFILE" audit verify

# ---- the mount serves what 0.1 served ----
check "mount as admin" t_mount -o ro
meta "$MNT" full > "$T/v2.full"
meta "$MNT" > "$T/v2.meta"
if cmp -s "$T/v1.full" "$T/v2.full"; then ok "same tree, inode numbers, owners, xattrs as 0.1"; else
	fail "the tree differs from 0.1's: $(diff "$T/v1.full" "$T/v2.full" | head -6)"; fi
if cmp -s "$T/ref.meta" "$T/v2.meta"; then ok "serves the plain copy (content, modes, times, links)"; else
	fail "differs from the plain copy: $(diff "$T/ref.meta" "$T/v2.meta" | head -6)"; fi
check "big file byte-identical" cmp "$REF/big.bin" "$MNT/big.bin"
check "sparse file byte-identical" cmp "$REF/sparse.bin" "$MNT/sparse.bin"
expect_eq "hard links share an inode" "$(stat -c %i "$MNT/dir1/hard1")" "$(stat -c %i "$MNT/hard2")"
expect_eq "hard link count" 2 "$(stat -c %h "$MNT/hard2")"
expect_eq "symlink target" "../small.txt" "$(readlink "$MNT/dir1/link-to-small")"
expect_eq "xattr on a file" blue "$(getfattr -n user.color --only-values "$MNT/small.txt" 2>/dev/null)"
expect_eq "binary xattr" "user.bin=0x00ff10" "$(getfattr -n user.bin -e hex "$MNT/big.bin" 2>/dev/null | grep '^user')"
expect_eq "xattr on a directory" "on a directory" "$(getfattr -n user.dir --only-values "$MNT/dir1" 2>/dev/null)"
t_umount
check "a new inode gets a number above 0.1's" t_mount
printf 'new in format 2\n' > "$MNT/newfile"
check "new inode number above the old ones" test "$(stat -c %i "$MNT/newfile")" -gt 900
sleep 1.5
t_umount
expect_eq "the carried purge queue was worked off" "0 0" \
	"$(q 'SELECT count(*) FROM purge'; ) $(q 'SELECT count(*) FROM blocks WHERE ino=900')"

# ---- the other users: one-time passphrase, then their own ----
for u in $USERS; do
	expect_status "$u: the format-1 passphrase no longer works" 3 as "$u" info
	cp "$T/reset/$u.pass" "$T/$u.pass"
	expect_status "$u: logs in with the one-time passphrase" 0 as "$u" info
	pf "$u.new" "v2-$u-own-passphrase"
	expect_status "$u: sets their own (user passwd)" 0 as "$u" user passwd --new-passfile "$T/$u.new.pass"
	expect_status "$u: the one-time passphrase is spent" 3 as "$u" info
	cp "$T/$u.new.pass" "$T/$u.pass"
	expect_status "$u: logs in with their own" 0 as "$u" info
done
expect_status "auditor a1: audit verify" 0 as a1 audit verify
check "auditor a2 reads carried details" sh -c \
	"'$CUSTODYCTL' -s '$STORE' -u a2 -c '$CONF' --passfile '$T/a2.pass' audit list --json | jq -e '[.[] | select(.path == \"/w1file\")] | length > 0' >/dev/null"
expect_status "admin2 administers (key list)" 0 as admin2 key list
expect_status "reader r2 may not administer" 5 as r2 key list
if mount_as w2 2>"$T/mount.err"; then ok "writer w2 mounts"; else
	fail "writer w2 mounts: $(head -c 300 "$T/mount.err")"; fi
check "w2 reads the big file" cmp "$REF/big.bin" "$MNT/big.bin"
printf 'by w2 in format 2\n' > "$MNT/w2file" && ok "w2 writes" || fail "w2 writes"
t_umount
if mount_as r1 2>"$T/mount.err"; then ok "reader r1 mounts"; else
	fail "reader r1 mounts: $(head -c 300 "$T/mount.err")"; fi
check "r1 reads the moved file" cmp "$REF/dir1/newdir/moved.txt" "$MNT/dir1/newdir/moved.txt"
t_umount
expect_status "check passes after use" 0 ctl check
expect_status "audit verify passes after use" 0 ctl audit verify
# freshness runs from the upgrade on: the file as it was right after it,
# put back, is older than what the admin has seen
cp "$STORE" "$T/current.db"
cp "$T/just-upgraded.db" "$STORE"
expect_status "the upgraded file rolled back: refused" 4 ctl info
stderr_has "rolled back: older than one seen before" "older than one seen before"
cp "$T/current.db" "$STORE"
expect_status "the current file again: fine" 0 ctl info
t_finish
