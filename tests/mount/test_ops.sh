#!/usr/bin/env bash
# Day-two commands: info --json, upgrade and the refusal of newer formats
# (the format is the file header's user_version, not the meta row),
# compact (shrinks after a delete; refuses while mounted, exit 6, without
# stalling the mount), backup's refusals (existing DEST, the store itself,
# a leftover DEST.tmp) and the audit rows of these actions.
. "$(dirname "$0")/../lib.sh"
t_setup
# compact waits for the busy timeout when the store is mounted: keep it short
printf '[store]\nbusy_timeout = 1s\n' >> "$CONF"

# one line on stderr
lines() { grep -c . "$1"; }

# ---- info --json ----
json=$(ctl info --json)
for f in format block_size page_size file_bytes wal_bytes free_bytes \
         files directories data_bytes blocks audit_rows purge_pending \
         roster authority_epoch commit keys users mounts; do
	case $json in *"\"$f\":"*) ok "info --json has $f" ;;
	              *) fail "info --json lacks $f: $json" ;; esac
done
jqv() { jq -c "$1" <<<"$json" 2>&1; }
expect_eq "info --json format" 2 "$(jqv .format)"
expect_eq "info --json block_size" 4096 "$(jqv .block_size)"
expect_eq "info --json page_size" 32768 "$(jqv .page_size)"
expect_eq "info --json: an empty store" '0 1 0 0' "$(jqv '[.files, .directories, .data_bytes, .blocks] | map(tostring) | join(" ")' | tr -d '"')"
expect_eq "info --json purge_pending" '{"inodes":0,"blocks":0,"bytes":0}' "$(jqv .purge_pending)"
expect_eq "info --json roster counter" 1 "$(jqv .roster)"
expect_eq "info --json authority_epoch" 1 "$(jqv .authority_epoch)"
check "info --json commit seq is the ledger's ($(jqv .commit.seq))" \
	test "$(jqv .commit.seq)" -ge 1 -a "$(jqv .commit.seq)" -le "$(q 'SELECT max(seq) FROM ledger')"
check "info --json commit hash is 32 bytes of hex" grep -qxE '"[0-9a-f]{64}"' <<<"$(jqv .commit.hash)"
expect_eq "info --json keys" '[{"version":1,"status":"active"}]' "$(jqv .keys)"
expect_eq "info --json users" '[{"name":"admin","role":"admin"}]' "$(jqv .users)"
expect_eq "info --json mounts" '[]' "$(jqv .mounts)"
expect_eq "info --json audit_rows is the trail's length" "$(q 'SELECT count(*) FROM audit')" "$(jqv .audit_rows)"

# ---- upgrade ----
out=$(ctl upgrade 2>&1); st=$?
expect_eq "upgrade exit" 0 "$st"
expect_eq "upgrade says current" "store is already at format 2" "$out"
expect_status "upgrade --help" 0 ctl upgrade --help
expect_status "upgrade takes no arguments" 2 ctl upgrade extra

# a store from a newer custodyfs (format 3), as a newer binary writes it:
# the format is the file header's user_version (the meta row still says 2)
cp "$STORE" "$T/f3.db"
sqlite3 "$T/f3.db" "PRAGMA user_version=3"
for cmd in info upgrade; do
	"$CUSTODYCTL" -s "$T/f3.db" -u admin -c "$CONF" --passfile "$PASSFILE" \
		$cmd >/dev/null 2>"$T/err"; st=$?
	expect_eq "format 3: custodyctl $cmd exit" 1 "$st"
	expect_eq "format 3: custodyctl $cmd one line" 1 "$(lines "$T/err")"
	check "format 3: custodyctl $cmd says newer" grep -q "newer custodyfs" "$T/err"
done
mkdir -p "$T/mnt2"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$T/f3.db" "$T/mnt2" \
	2>"$T/err"; st=$?
T_MOUNTS+=("$T/mnt2")
expect_eq "format 3: custodyfs exit" 1 "$st"
expect_eq "format 3: custodyfs one line" 1 "$(lines "$T/err")"
check "format 3: custodyfs says newer" grep -q "newer custodyfs" "$T/err"
check_not "format 3: nothing mounted" mountpoint -q "$T/mnt2"
expect_eq "format 3: the refused file still says 3" 3 "$(sqlite3 "$T/f3.db" 'PRAGMA user_version')"
# the header decides, not the meta row: format 2 keeps no meta row for the
# format at all, and one planted by hand (saying 3 or 1, as text, blob or
# number) is not believed: the file is refused as damage in one line
# naming the row (like a schema object custodyfs did not create), upgrade
# neither claims another format nor runs a migration, the header stays 2
# (a fresh name for each copy: a file put where another copy was seen
# would be a rollback of that one)
expect_eq "a new store has no meta row naming the format" 0 \
	"$(q "SELECT count(*) FROM meta WHERE key='format'")"
i=0
for v in "'3'" "CAST('1' AS BLOB)" "3" "1" "2"; do
	i=$((i + 1))
	cp "$STORE" "$T/m$i.db"
	sqlite3 "$T/m$i.db" "INSERT OR REPLACE INTO meta(key, value) VALUES('format', $v)"
	for cmd in "info --json" upgrade; do
		out=$("$CUSTODYCTL" -s "$T/m$i.db" -u admin -c "$CONF" --passfile "$PASSFILE" \
			$cmd 2>"$T/err"); st=$?
		expect_eq "meta format $v: custodyctl $cmd exit" 4 "$st"
		expect_eq "meta format $v: custodyctl $cmd one line" 1 "$(lines "$T/err")"
		check "meta format $v: custodyctl $cmd says the row fails verification" \
			grep -q "fails verification: .*meta row 'format'" "$T/err"
		check_not "meta format $v: custodyctl $cmd never claims another format" \
			grep -qE "already at format [^2]|from format|migration" "$T/err"
		expect_eq "meta format $v: custodyctl $cmd prints nothing" "" "$out"
	done
	expect_eq "meta format $v: header still 2" 2 "$(sqlite3 "$T/m$i.db" 'PRAGMA user_version')"
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$T/m$i.db" "$T/mnt2" \
		2>"$T/err"; st=$?
	expect_eq "meta format $v: custodyfs exit" 4 "$st"
	check "meta format $v: custodyfs says the row fails verification" \
		grep -q "fails verification: .*meta row 'format'" "$T/err"
	check_not "meta format $v: nothing mounted" mountpoint -q "$T/mnt2"
	sqlite3 "$T/m$i.db" "DELETE FROM meta WHERE key='format'"
	out=$("$CUSTODYCTL" -s "$T/m$i.db" -u admin -c "$CONF" --passfile "$PASSFILE" \
		upgrade 2>"$T/err"); st=$?
	expect_eq "meta format $v: the row removed, upgrade exit" 0 "$st"
	expect_eq "meta format $v: the row removed, upgrade says current" "store is already at format 2" "$out"
done
# a header that holds no format at all (0, or a negative number: the
# header's user_version is a signed 32-bit field) is a damaged header, not
# a format from the future: one line, exit 1, and no huge unsigned number
k=0
for v in -1 -2147483648 0; do
	k=$((k + 1))
	cp "$STORE" "$T/h$k.db"
	sqlite3 "$T/h$k.db" "PRAGMA user_version=$v"
	for cmd in info upgrade; do
		"$CUSTODYCTL" -s "$T/h$k.db" -u admin -c "$CONF" --passfile "$PASSFILE" \
			$cmd >/dev/null 2>"$T/err"; st=$?
		expect_eq "header format $v: custodyctl $cmd exit" 1 "$st"
		expect_eq "header format $v: custodyctl $cmd one line" 1 "$(lines "$T/err")"
		check "header format $v: custodyctl $cmd says the header is damaged" \
			grep -q "not a custodyfs store (or its header is damaged)" "$T/err"
		check_not "header format $v: custodyctl $cmd never prints the format unsigned" \
			grep -qE "[0-9]{10}" "$T/err"
	done
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$T/h$k.db" "$T/mnt2" \
		2>"$T/err"; st=$?
	expect_eq "header format $v: custodyfs exit" 1 "$st"
	check "header format $v: custodyfs says the header is damaged" \
		grep -q "not a custodyfs store" "$T/err"
	check_not "header format $v: nothing mounted" mountpoint -q "$T/mnt2"
done

# ---- compact ----
check "mount" t_mount
head -c 100000 /dev/urandom > "$T/keep"
cp "$T/keep" "$MNT/keep"
dd if=/dev/urandom of="$MNT/big" bs=1M count=16 status=none
sync "$MNT/big"
# mounted: compact must refuse (exit 6) and the mount must keep working
ctl compact >/dev/null 2>"$T/err" &
cpid=$!
sleep 0.4 # let compact reach its lock wait
echo during > "$MNT/during"
check "mount writable while compact waits" test "$(cat "$MNT/during")" = during
wait $cpid; st=$?
expect_eq "compact while mounted: exit 6" 6 "$st"
check "compact while mounted: says busy" grep -q "busy" "$T/err"
expect_eq "compact while mounted: one line" 1 "$(lines "$T/err")"
check "unmount" t_umount

size() { stat -c %s "$1"; }
before=$(size "$STORE")
check "remount" t_mount
rm "$MNT/big"
check "unmount after delete" t_umount
expect_eq "delete does not shrink the file" "$before" "$(size "$STORE")"
free=$(ctl info --json | sed -n 's/.*"free_bytes":\([0-9]*\).*/\1/p')
check "free pages after delete ($free bytes)" test "$free" -ge $((15 << 20))
out=$(ctl compact 2>/dev/null); st=$?
expect_eq "compact exit" 0 "$st"
after=$(size "$STORE")
t_log "compact: $before -> $after bytes ($out)"
check "compact shrinks the file by >= 15 MiB" test $((before - after)) -ge $((15 << 20))
check "compact reports sizes" grep -q "^compacted .* -> $after bytes" <<<"$out"
check "no -wal left after compact" test ! -s "$STORE-wal"
expect_eq "integrity after compact" ok "$(sqlite3 "$STORE" 'PRAGMA integrity_check')"
free=$(ctl info --json | sed -n 's/.*"free_bytes":\([0-9]*\).*/\1/p')
expect_eq "no free pages after compact" 0 "$free"
check "mount after compact" t_mount
check "data intact after compact" cmp "$T/keep" "$MNT/keep"
check_not "deleted file stays deleted" test -e "$MNT/big"
check "unmount" t_umount
expect_status "compact --help" 0 ctl compact --help
expect_status "compact takes no arguments" 2 ctl compact now

# ---- the page size ----
# custodyfs up to 0.2.5 made 64 KiB pages; such a store works as it is and
# compact rebuilds it in the page size of its block size (README, Store)
pagesize() { sqlite3 "$STORE" 'PRAGMA page_size'; }
expect_eq "a new store of 4 KiB blocks has 32 KiB pages" 32768 "$(pagesize)"
sqlite3 "$STORE" 'PRAGMA journal_mode=DELETE; PRAGMA page_size=65536; VACUUM;
	PRAGMA journal_mode=WAL' >/dev/null
expect_eq "the store made as 0.2.5 made it" 65536 "$(pagesize)"
check "mount of a 64 KiB-page store" t_mount
check "its data intact" cmp "$T/keep" "$MNT/keep"
head -c 300000 /dev/urandom > "$T/keep2"
cp "$T/keep2" "$MNT/keep2"
check "unmount" t_umount
expect_status "check of the 64 KiB-page store" 0 ctl check
out=$(ctl compact 2>&1); st=$?
expect_eq "compact of the 64 KiB-page store: exit 0 ($out)" 0 "$st"
expect_eq "compact moved it to 32 KiB pages" 32768 "$(pagesize)"
expect_eq "and back into WAL mode" wal "$(sqlite3 "$STORE" 'PRAGMA journal_mode')"
check "no rollback journal left" test ! -e "$STORE-journal"
expect_status "check after the new page size" 0 ctl check
check "mount after the new page size" t_mount
check "data intact after the new page size" cmp "$T/keep" "$MNT/keep"
check "the later file too" cmp "$T/keep2" "$MNT/keep2"
check "unmount" t_umount

# ---- the journal mode ----
# durability rests on WAL mode (a sync is the WAL's fdatasync); the mode is
# a header field a writer of the file can change: the next read-write open
# puts it back, and the mount's sync makes its writes durable in the WAL
sqlite3 "$STORE" 'PRAGMA journal_mode=DELETE' >/dev/null
expect_eq "a file writer switched the store to rollback mode" delete \
	"$(sqlite3 "$STORE" 'PRAGMA journal_mode')"
check "mount of the rollback-mode store" t_mount
expect_eq "the mount put it back into WAL mode" wal \
	"$(sqlite3 "$STORE" 'PRAGMA journal_mode')"
echo durable > "$MNT/dur"
check "write and fsync" python3 -c 'import os,sys; f=os.open(sys.argv[1], os.O_RDWR); os.fsync(f)' "$MNT/dur"
check "the synced commit is in the WAL" test -s "$STORE-wal"
check "unmount" t_umount
check "mount" t_mount
expect_eq "the write survived" durable "$(cat "$MNT/dur")"
check "unmount" t_umount

# ---- backup refusals ----
expect_status "backup without DEST" 2 ctl backup
expect_status "backup with two DESTs" 2 ctl backup "$T/a" "$T/b"
expect_status "backup --help" 0 ctl backup --help
expect_status "backup" 0 ctl backup "$T/b.db"
expect_eq "backup is mode 0600" 600 "$(stat -c %a "$T/b.db")"
check_not "no DEST.tmp left" test -e "$T/b.db.tmp"
sum=$(md5sum < "$T/b.db")
ctl backup "$T/b.db" >/dev/null 2>"$T/err"; st=$?
expect_eq "backup refuses to overwrite: exit 1" 1 "$st"
check "backup refuses to overwrite: says exists" grep -q "exists" "$T/err"
expect_eq "refused backup left DEST alone" "$sum" "$(md5sum < "$T/b.db")"
ln -s "$T/b.db" "$T/link.db"
expect_status "backup refuses an existing symlink" 1 ctl backup "$T/link.db"
expect_status "backup --force replaces" 0 ctl backup "$T/b.db" --force
check "replaced backup is a store" test "$(sqlite3 "$T/b.db" 'PRAGMA integrity_check')" = ok
expect_status "backup onto the store itself" 2 ctl backup "$STORE" --force
expect_eq "store untouched" ok "$(sqlite3 "$STORE" 'PRAGMA integrity_check')"
: > "$T/c.db.tmp"
ctl backup "$T/c.db" >/dev/null 2>"$T/err"; st=$?
expect_eq "leftover DEST.tmp: exit 1" 1 "$st"
check "leftover DEST.tmp: named" grep -q "c.db.tmp" "$T/err"
check_not "leftover DEST.tmp: no DEST" test -e "$T/c.db"
expect_status "backup into a missing directory" 1 ctl backup "$T/nodir/x.db"
check_not "wrong passphrase: no backup" \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile /dev/null backup "$T/d.db"
check_not "wrong passphrase: no file" test -e "$T/d.db"

# ---- the trail has the actions (op is stored in the clear) ----
n() { sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='$1' AND result=$2"; }
expect_eq "audit: compact refused while mounted" 1 "$(n compact -16)"
expect_eq "audit: compact done (twice)" 2 "$(n compact 0)"
expect_eq "audit: backups done" 2 "$(n backup 0)"
expect_eq "audit: the three info commands" 3 "$(n info 0)"
# every command logs in first: its rows follow a login row of its session
expect_eq "audit: every command's session logged in before it" 0 \
	"$(q "SELECT count(*) FROM audit a WHERE a.op IN ('info','compact','backup')
	      AND NOT EXISTS (SELECT 1 FROM audit l WHERE l.op='login' AND l.result=0
	                      AND l.session=a.session AND l.seq<a.seq)")"
expect_eq "audit: one login per command session" 0 \
	"$(q "SELECT count(*) FROM (SELECT session FROM audit WHERE op='login'
	      GROUP BY session HAVING count(*) <> 1)")"
expect_status "audit verify after all this" 0 ctl audit verify
t_finish
