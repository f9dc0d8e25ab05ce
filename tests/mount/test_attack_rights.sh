#!/usr/bin/env bash
# Attacks on rights, credentials, the schema, the audit switch and the login
# policy, by a store user (or a keyless host) who writes the store file with
# sqlite3 and holds at most their own keys. Each attack prepares users and
# data, snapshots rows where it needs an older copy of them, edits the
# store file, and checks what the victim sees: login/mount/command exit
# statuses and their one line, `custodyctl check` and `audit verify`, and
# that legitimate data is intact afterwards.
#
# Every section works on its own copy of one pristine store with its own
# local state directory (XDG_STATE_HOME), so one attack's rollback does not
# colour the next one's freshness checks.
. "$(dirname "$0")/../lib.sh"
t_setup
PRISTINE=$T/pristine.db

# ---- the pristine store: admin, adm2 (admin), bob and eve (writers),
# rdr (reader), aud (auditor); a few files ----
for u in adm2 bob eve rdr aud; do pf "$u" "$u-Secret-Phrase-9"; done
cp "$PASSFILE" "$T/admin.pass"
expect_status "pristine: add adm2 (admin)" 0 ctl user add adm2 --role admin --new-passfile "$T/adm2.pass"
expect_status "pristine: add bob (writer)" 0 ctl user add bob --role writer --new-passfile "$T/bob.pass"
expect_status "pristine: add eve (writer)" 0 ctl user add eve --role writer --new-passfile "$T/eve.pass"
expect_status "pristine: add rdr (reader)" 0 ctl user add rdr --role reader --new-passfile "$T/rdr.pass"
expect_status "pristine: add aud (auditor)" 0 ctl user add aud --role auditor --new-passfile "$T/aud.pass"
check "pristine: mount" t_mount
printf 'hello\n' > "$MNT/a.txt"
head -c 12000 /dev/urandom > "$MNT/big.bin"
mkdir -p "$MNT/d"
printf 'deep\n' > "$MNT/d/e.txt"
declare -A SUM
FILES=(a.txt big.bin d/e.txt)
for f in "${FILES[@]}"; do SUM[$f]=$(md5sum < "$MNT/$f"); done
check "pristine: unmount" t_umount
check "pristine: WAL folded in" test ! -s "$STORE-wal"
cp "$STORE" "$PRISTINE"

N=0
# login USER [PASSFILE]: a command as USER (info reads only)
login() { "$CUSTODYCTL" -s "$STORE" -u "$1" -c "$CONF" --passfile "${2:-$T/$1.pass}" info; }
# ctl_c CONFIG ARGS: custodyctl as admin with another configuration
ctl_c() { local c=$1; shift; "$CUSTODYCTL" -s "$STORE" -u admin -c "$c" --passfile "$PASSFILE" "$@"; }
# refused DESC COMMAND...: exit 3 or 4 (authentication failed or tampering)
refused() {
	local d=$1; shift
	"$@" >/dev/null 2>"$T/.stderr"; local got=$?
	if [ "$got" == 3 ] || [ "$got" == 4 ]; then ok "$d"; else fail "$d: exit $got, want 3 or 4 ($(head -c 300 "$T/.stderr"))"; fi
}
# one_line DESC: the last command's stderr is one line
one_line() { expect_eq "$1: one line on stderr" 1 "$(wc -l < "$T/.stderr")"; }
# snap NAME SQL: keep the rows SQL selects from the store (an attacker's
# older copy) in $T/snap.db as table NAME; unsnap TABLE NAME puts them back
snap() { sqlite3 "$T/snap.db" "ATTACH '$STORE' AS s; DROP TABLE IF EXISTS $1; CREATE TABLE $1 AS $2"; }
unsnap() { q "ATTACH '$T/snap.db' AS k; INSERT OR REPLACE INTO $1 SELECT * FROM k.$2"; }
# intact DESC: as admin, every pristine file reads back exactly
intact() {
	local d=$1 f bad=""
	if ! t_mount 2>"$T/.merr"; then
		fail "$d: admin cannot mount: $(head -c 200 "$T/.merr")"
		return
	fi
	for f in "${FILES[@]}"; do
		[ "$(md5sum < "$MNT/$f" 2>/dev/null)" == "${SUM[$f]}" ] || bad="$bad $f"
	done
	t_umount
	expect_eq "$d: every file intact" "" "$bad"
}
# role_at NAME: 1-based offset of NAME's first role byte in the roster body
# (u8 length, name, box key (32), u8 periods, then u64 from, u8 role)
role_at() {
	local hexname
	hexname=$(printf '%02X' "${#1}")$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
	q "SELECT instr(body, X'$hexname') + ${#1} + 1 + 32 + 1 + 8 FROM roster"
}
# set_byte TABLE COLUMN POS HEX [WHERE]: one byte of a blob replaced
set_byte() {
	q "UPDATE $1 SET $2 = CAST(substr($2,1,$(($3 - 1))) || X'$4' || substr($2,$(($3 + 1))) AS BLOB) ${5:-}"
}
# grants_of ID [VERSION]: rows sealed to user id ID
grants_of() { q "SELECT count(*) FROM grants WHERE user_id=$1 ${2:+AND version=$2}"; }
newest_version() { ctl key list --json 2>/dev/null | jq -r 'map(.version) | max'; }

# ==== (1) a forged user: a credentials row of the attacker's own making
# and a forged roster row granting it admin ====
t_fresh
EVE=$(uid_of eve)
NEXT=$(( $(q "SELECT max(user_id) FROM credentials") + 1 ))
# eve's own sealed secret under a new id and name, with her grants and a
# clean failure counter; and a second one at the id the next `user add`
# takes, with a name of its own
q "INSERT INTO credentials SELECT 99,'mallory',opslimit,memlimit,salt,secret,created FROM credentials WHERE user_id=$EVE;
   INSERT INTO grants SELECT 99,version,kind,sealed FROM grants WHERE user_id=$EVE;
   INSERT INTO logins VALUES(99,0,0,0);
   INSERT INTO credentials SELECT $NEXT,'squatter',opslimit,memlimit,salt,secret,created FROM credentials WHERE user_id=$EVE;
   INSERT INTO grants SELECT $NEXT,version,kind,sealed FROM grants WHERE user_id=$EVE;
   INSERT INTO grants SELECT 99,1,3,sealed FROM grants WHERE user_id=$EVE AND kind=1"
PLANTED99=$(grants_of 99)
cp "$T/eve.pass" "$T/mallory.pass"
cp "$T/eve.pass" "$T/squatter.pass"
refused "forged user: mallory (eve's secret under a new id) cannot log in" login mallory
refused "forged user: the squatter row cannot log in" login squatter
refused "forged user: mallory cannot mount" t_mnt_as mallory
# the forged roster: mallory's admin role cannot be signed, so any body
# eve writes fails the authority's signature
snap roster1 "SELECT * FROM s.roster"
set_byte roster body "$(role_at eve)" 00
q "UPDATE roster SET sig=randomblob(64)"
expect_status "forged roster (eve made admin, any sig): admin's login refused" 4 login admin
stderr_has "forged roster: the line says verification fails" "fails verification.*roster"
one_line "forged roster"
expect_status "forged roster: eve's own login refused too" 4 login eve
refused "forged roster: mallory still refused" login mallory
expect_status "forged roster: admin's mount refused" 4 t_mnt_as admin
expect_status "forged roster: audit verify refused" 4 ctl audit verify
unsnap roster roster1
# a whole set of rights from a store eve made herself (she is its admin):
# its authority chain and its roster, signed by a key she holds
snap auth1 "SELECT * FROM s.authorities"
"$CUSTODYCTL" -s "$T/evil$N.db" -u eve -c "$CONF" --passfile "$T/eve.pass" init > /dev/null 2>&1
q "ATTACH '$T/evil$N.db' AS e; DELETE FROM authorities; INSERT INTO authorities SELECT * FROM e.authorities;
   DELETE FROM roster; INSERT INTO roster SELECT * FROM e.roster"
expect_status "eve's own authority and roster: admin's login refused" 4 login admin
stderr_has "foreign authority: the line says so" "authority|roster|fails verification"
refused "eve's own authority and roster: eve gets nothing" login eve
expect_status "eve's own authority and roster: bob's mount refused" 4 t_mnt_as bob
t_unmount_any
q "DELETE FROM authorities"
unsnap authorities auth1
unsnap roster roster1
expect_status "real roster back: admin logs in" 0 login admin
expect_status "real roster back: eve is a writer (user add refused)" 5 \
	"$CUSTODYCTL" -s "$STORE" -u eve -c "$CONF" --passfile "$T/eve.pass" user add x --role reader --new-passfile "$T/eve.pass"
# the admin's next key rotate, user add and auto-rotation seal nothing to
# the forged ids
expect_status "forged user: admin rotates the key" 0 ctl key rotate
V=$(newest_version)
expect_eq "key rotate sealed nothing to forged id 99" 0 "$(grants_of 99 "$V")"
expect_eq "key rotate sealed nothing to the squatter id $NEXT" 0 "$(grants_of "$NEXT" "$V")"
pf carol carol-Secret-Phrase-9
expect_status "admin adds carol (she gets the squatted id)" 0 ctl user add carol --role writer --new-passfile "$T/carol.pass"
expect_eq "carol's id is the one the squatter took" "$NEXT" "$(uid_of carol)"
expect_eq "the squatter's row is gone" 0 "$(q "SELECT count(*) FROM credentials WHERE name='squatter'")"
expect_eq "none of the squatter's planted grants survive" 0 \
	"$(q "SELECT count(*) FROM grants WHERE user_id=$NEXT AND sealed IN (SELECT sealed FROM grants WHERE user_id=$EVE)")"
expect_status "carol logs in with her own passphrase" 0 login carol
refused "the squatter's passphrase does not open carol" login carol "$T/squatter.pass"
expect_eq "user add sealed nothing to forged id 99" "$PLANTED99" "$(grants_of 99)"
printf '[kdf]\nopslimit = 1\nmemlimit = 8M\n[auth]\nmax_failures = 3\nlockout = 2s\n[keys]\nmax_age = 1s\n' > "$T/age.ini"
expect_status "a key version that expires in 1 s" 0 ctl_c "$T/age.ini" key rotate
V1=$(newest_version)
sleep 2
ctl_c "$T/age.ini" user list > /dev/null 2> "$T/.stderr"
V2=$(newest_version)
check "the next admin command auto-rotated ($V1 -> $V2; it said: $(tr '\n' ' ' < "$T/.stderr"))" \
	test "$V2" -gt "$V1"
expect_eq "auto-rotation sealed nothing to forged id 99" 0 "$(grants_of 99 "$V2")"
expect_eq "forged id 99 never got a grant of any new version" "$PLANTED99" "$(grants_of 99)"
refused "after all that, mallory still cannot log in" login mallory
expect_status "audit verify after the forged user" 0 ctl audit verify
intact "forged user"

# ==== (2) an auditor plants a data grant for themself ====
t_fresh
AUD=$(uid_of aud)
BOB=$(uid_of bob)
q "INSERT INTO grants SELECT $AUD,version,1,sealed FROM grants WHERE user_id=$BOB AND kind=1"
expect_eq "auditor: planted data grant rows" "$(q "SELECT count(*) FROM grants WHERE user_id=$BOB AND kind=1")" \
	"$(q "SELECT count(*) FROM grants WHERE user_id=$AUD AND kind=1")"
expect_status "auditor with a planted data grant: mount refused" 5 t_mnt_as aud
stderr_has "auditor: the line names the role" "auditor"
one_line "auditor mount"
check_not "auditor: nothing mounted" grep -q " $MNT fuse" /proc/mounts
expect_status "auditor with a planted data grant: check refused" 5 \
	"$CUSTODYCTL" -s "$STORE" -u aud -c "$CONF" --passfile "$T/aud.pass" check
expect_status "auditor: reading the trail still works" 0 \
	"$CUSTODYCTL" -s "$STORE" -u aud -c "$CONF" --passfile "$T/aud.pass" audit list
# and the role itself, edited in the roster body (auditor -> admin)
set_byte roster body "$(role_at aud)" 00
expect_status "auditor edits their role to admin: mount refused" 4 t_mnt_as aud
stderr_has "edited role: fails verification" "fails verification"
expect_status "edited role: admin's login refused too" 4 login admin
expect_status "edited role: no admin command as aud" 4 \
	"$CUSTODYCTL" -s "$STORE" -u aud -c "$CONF" --passfile "$T/aud.pass" user add x --role admin --new-passfile "$T/aud.pass"
set_byte roster body "$(role_at aud)" 03
expect_status "role byte put back: admin logs in" 0 login admin
intact "auditor"

# ==== (3) a revocation undone ====
t_fresh
BOB=$(uid_of bob)
expect_status "revoke: bob logs in before" 0 login bob
snap bobcred "SELECT * FROM s.credentials WHERE user_id=$BOB"
snap boblogin "SELECT * FROM s.logins WHERE user_id=$BOB"
snap bobgrants "SELECT * FROM s.grants WHERE user_id=$BOB"
snap roster0 "SELECT * FROM s.roster"
PRESEQ=$(q "SELECT max(seq) FROM ledger")
expect_status "admin revokes bob --destroy" 0 ctl user revoke bob --destroy
check "admin mounts after the revoke" t_mount
printf 'written after the revoke\n' > "$MNT/after.txt"
AFTER=$(md5sum < "$MNT/after.txt")
check "unmount" t_umount
snap roster1 "SELECT * FROM s.roster"
unsnap credentials bobcred
unsnap logins boblogin
unsnap grants bobgrants
expect_eq "bob's rows are back" 1 "$(q "SELECT count(*) FROM credentials WHERE name='bob'")"
refused "revoked bob with his rows put back: login refused" login bob
one_line "revoked bob"
refused "revoked bob with his rows put back: mount refused" t_mnt_as bob
check_not "revoked bob: nothing mounted" grep -q " $MNT fuse" /proc/mounts
# and the roster from before the revoke (bob a writer again)
unsnap roster roster0
for u in admin adm2 eve rdr aud bob; do
	expect_status "roster from before the revoke: $u's login refused" 4 login "$u"
done
stderr_has "old roster: the line says rollback or verification" "older than one seen before|fails verification"
expect_status "old roster: admin's mount refused" 4 t_mnt_as admin
expect_status "old roster: bob's mount refused" 4 t_mnt_as bob
# a host that never saw this store (no local state): the newest commit
# still names the newer roster
export XDG_STATE_HOME=$T/state${N}-fresh-host
expect_status "old roster, fresh host: bob's login refused" 4 login bob
expect_status "old roster, fresh host: admin's login refused" 4 login admin
export XDG_STATE_HOME=$T/state$N
unsnap roster roster1
expect_status "real roster back: admin logs in" 0 login admin
refused "real roster back: bob is still out" login bob
intact "revocation undone"
check "after.txt is intact for the admin" t_mount
expect_eq "after.txt content" "$AFTER" "$(md5sum < "$MNT/after.txt" 2>/dev/null)"
check "unmount" t_umount
# the worst case, a host that never saw the store and everything older put
# back (roster, bob's rows, the commits cut back to before the revoke):
# whatever bob gets, it is not a byte written after the revoke (it was
# written under a version bob never held)
unsnap roster roster0
q "DELETE FROM ledger WHERE seq > $PRESEQ"
export XDG_STATE_HOME=$T/state${N}-worst
if t_mnt_as bob 2> "$T/.merr"; then
	got=$(cat "$MNT/after.txt" 2>/dev/null | md5sum)
	check_not "worst case: bob does not read after.txt" test "$got" == "$AFTER"
	t_umount
else
	ok "worst case: bob's mount refused"
	t_log "worst case: $(head -n 1 "$T/.merr")"
fi
export XDG_STATE_HOME=$T/state$N

# ==== (4) a demoted admin keeps the old authority secret ====
# What a real forger holding the old (epoch 1) authority secret could do:
# sign a roster and endorse an epoch 2' of their own, so a user whose
# sealed secret still pins epoch 1 and whose host never saw epoch 2 (no
# local state, and no login since the rotation: logins re-pin) would
# follow the forged chain. They could NOT fool anyone who saw epoch 2:
# that user's pin or this host's state names epoch 2, which the forged
# chain does not contain (exit 4), and they cannot endorse an epoch 3
# without the epoch 2 secret. From the shell we can only put the old
# roster and the old authority chain back, which is what this section does.
t_fresh
ADM2=$(uid_of adm2)
expect_status "adm2 logs in as admin" 0 login adm2
snap adm2auth "SELECT * FROM s.grants WHERE user_id=$ADM2 AND kind=3"
snap adm2cred "SELECT * FROM s.credentials WHERE user_id=$ADM2"
snap roster0 "SELECT * FROM s.roster"
snap auth0 "SELECT * FROM s.authorities"
expect_eq "adm2 holds the epoch 1 authority" 1 "$(sqlite3 "$T/snap.db" "SELECT count(*) FROM adm2auth WHERE version=1")"
expect_status "admin demotes adm2 to writer" 0 ctl user role adm2 writer
expect_eq "the demotion rotated the authority (epoch 2)" 2 "$(q "SELECT max(epoch) FROM authorities")"
expect_eq "adm2 holds no authority grant any more" 0 "$(q "SELECT count(*) FROM grants WHERE user_id=$ADM2 AND kind=3")"
expect_status "admin logs in after the rotation (re-pins epoch 2)" 0 login admin
expect_status "bob logs in after the rotation" 0 login bob
unsnap grants adm2auth
unsnap credentials adm2cred
expect_status "demoted adm2 with the old authority grant: user add refused" 5 \
	"$CUSTODYCTL" -s "$STORE" -u adm2 -c "$CONF" --passfile "$T/adm2.pass" user add x --role admin --new-passfile "$T/adm2.pass"
expect_status "demoted adm2: key rotate refused" 5 \
	"$CUSTODYCTL" -s "$STORE" -u adm2 -c "$CONF" --passfile "$T/adm2.pass" key rotate
expect_status "demoted adm2: role change refused" 5 \
	"$CUSTODYCTL" -s "$STORE" -u adm2 -c "$CONF" --passfile "$T/adm2.pass" user role adm2 admin
snap roster1 "SELECT * FROM s.roster"
snap auth1 "SELECT * FROM s.authorities"
# the old roster and the old chain (epoch 2 deleted)
q "DELETE FROM authorities WHERE epoch=2"
unsnap roster roster0
expect_status "old roster + old chain: admin (saw epoch 2) refused" 4 login admin
stderr_has "old chain: the line says rolled back or forked" "rolled-back|forked|older than one seen|not in the store's chain"
one_line "old chain"
expect_status "old roster + old chain: bob refused" 4 login bob
expect_status "old roster + old chain: adm2 refused" 4 login adm2
expect_status "old roster + old chain: admin's mount refused" 4 t_mnt_as admin
export XDG_STATE_HOME=$T/state${N}-fresh-host
expect_status "old chain, fresh host: admin (pinned epoch 2) refused" 4 login admin
stderr_has "fresh host: the authority admin trusts is not in the chain" "not in the store's chain|fails verification"
expect_status "old chain, fresh host: bob (pinned epoch 2) refused" 4 login bob
expect_status "old chain, fresh host: rdr (pinned epoch 1, newest commit names the new roster) refused" 4 login rdr
expect_status "old chain, fresh host: adm2 refused" 4 login adm2
export XDG_STATE_HOME=$T/state$N
q "DELETE FROM authorities"
unsnap authorities auth1
unsnap roster roster1
expect_status "real chain back: admin logs in" 0 login admin
expect_status "real chain back: adm2 logs in as the writer she is" 0 login adm2
intact "demoted admin"

# ==== (5) foreign schema objects ====
# each on its own copy: a trigger, a view, a table, an index, a changed
# column definition, and crossed index roots (writable_schema)
schema_case() {
	local d=$1 sql=$2 re=$3 md
	t_fresh
	if ! sqlite3 "$STORE" "$sql" 2> "$T/.sqlerr"; then
		fail "$d: sqlite3 failed: $(head -c 200 "$T/.sqlerr")"
		return
	fi
	md=$(md5sum < "$STORE")
	local ev
	ev=$(q "SELECT count(*) FROM auth_events")
	expect_status "$d: custodyctl info refused" 4 ctl info
	stderr_has "$d: the line names the object" "$re"
	one_line "$d"
	expect_status "$d: mount refused" 4 t_mnt_as admin
	stderr_has "$d: mount's line names the object" "$re"
	check_not "$d: nothing mounted" grep -q " $MNT fuse" /proc/mounts
	t_unmount_any
	expect_status "$d: read-only mount refused" 4 t_mnt_as admin -o ro
	t_unmount_any
	expect_status "$d: bob's mount refused" 4 t_mnt_as bob
	t_unmount_any
	expect_status "$d: audit verify refused" 4 ctl audit verify
	expect_status "$d: check refused" 4 ctl check
	expect_status "$d: a wrong passphrase is refused as tampering, before login" 4 login bob "$T/eve.pass"
	expect_eq "$d: nothing was written to the store" "$md" "$(md5sum < "$STORE")"
	expect_eq "$d: no failed login was counted" "$ev" "$(q "SELECT count(*) FROM auth_events")"
}
schema_case "trigger" \
	"CREATE TRIGGER spy AFTER DELETE ON credentials BEGIN INSERT INTO logins VALUES(1000,0,0,0); END" "trigger 'spy'"
expect_eq "trigger: it never fired" 0 "$(q "SELECT count(*) FROM logins WHERE user_id=1000")"
schema_case "trigger on audit inserts" \
	"CREATE TRIGGER eraser AFTER INSERT ON audit BEGIN DELETE FROM audit WHERE seq = new.seq; END" "trigger 'eraser'"
schema_case "view" "CREATE VIEW peek AS SELECT * FROM credentials" "view 'peek'"
schema_case "extra table" "CREATE TABLE loot(x BLOB)" "table 'loot'"
schema_case "extra index" "CREATE INDEX creds_ops ON credentials(opslimit)" "index 'creds_ops'"
schema_case "changed column definition" \
	"PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql=replace(sql, 'failed INTEGER NOT NULL', 'failed INTEGER DEFAULT 0') WHERE name='logins'" \
	"table 'logins'"
schema_case "NOT NULL dropped from grants" \
	"PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql=replace(sql, 'sealed BLOB NOT NULL', 'sealed BLOB') WHERE name='grants'" \
	"table 'grants'"
# crossed roots: the text of every definition is ours, but the two
# single-column indexes of dentries point at each other's b-trees, so a
# lookup by inode number searches the key-version index
# (SQLite's own integrity check sees it; renames and unlinks then fail
# with EIO)
t_fresh
q "PRAGMA writable_schema=ON; UPDATE sqlite_schema SET rootpage = (SELECT sum(rootpage) FROM sqlite_schema WHERE name IN ('dentries_ino','dentries_kv')) - rootpage WHERE name IN ('dentries_ino','dentries_kv')"
# damage inside SQLite's own b-trees is found by SQLite's integrity check
# (check), not at every open (that would read the whole file): what must
# hold is that nothing crashes, nothing wrong is served, and check names it
check "crossed index roots: the mount comes up" t_mnt_as admin
if mountpoint -q "$MNT"; then
	mv "$MNT/a.txt" "$MNT/a-moved.txt" 2>/dev/null
	cat "$MNT/a.txt" "$MNT/a-moved.txt" > "$T/crossed.out" 2>/dev/null
	check "crossed index roots: a.txt is served intact or not at all" \
		sh -c "[ ! -s '$T/crossed.out' ] || [ \"\$(cat '$T/crossed.out')\" = hello ]"
	check "crossed index roots: the daemon is still alive" \
		sh -c "pgrep -f 'custodyfs.* $MNT\$' >/dev/null"
fi
t_unmount_any
ctl check > "$T/check.out" 2>&1
expect_eq "crossed index roots: check exit 4" 4 "$?"
check "crossed index roots: check names the index" grep -q "dentries_" "$T/check.out"
# a trigger planted while a mount runs: it never runs, and the mount
# notices the schema moved (store.h: a running mount checks again)
t_fresh
check "live trigger: admin mounts" t_mnt_as admin
printf 'one\n' > "$MNT/live1.txt"
sync "$MNT/live1.txt"
q "CREATE TRIGGER eraser AFTER INSERT ON audit BEGIN DELETE FROM audit; END"
printf 'two\n' > "$MNT/live2.txt" 2>/dev/null; st_write=$?
sync "$MNT/live2.txt" 2>/dev/null
cat "$MNT/a.txt" > /dev/null 2>&1
expect_eq "live trigger: it never ran (audit rows kept)" 1 "$(q "SELECT count(*) > 3 FROM audit")"
check_not "live trigger: the mount refuses work once its schema moved" test "$st_write" == 0
t_unmount_any
expect_status "live trigger: the next command refuses" 4 ctl info
stderr_has "live trigger: it names the trigger" "trigger 'eraser'"

# ==== (6) switching off one's own audit ====
t_fresh
EVE=$(uid_of eve)
check "eve mounts" mount_as eve
printf 'eve was here\n' > "$MNT/eve.txt"
cat "$MNT/a.txt" > /dev/null
check "eve unmounts" t_umount
t_expect_out "baseline: audit verify" 0 ctl audit verify
cp "$STORE" "$T/audit6.db"
S6=0
# again6: the store as eve left it, seen by a host that never saw it (so
# every check verifies the whole chain, and earlier cases' commits do not
# make the next case look like a rollback)
again6() { cp "$T/audit6.db" "$STORE"; S6=$((S6 + 1)); export XDG_STATE_HOME=$T/state$N-$S6; }
# a) her session rows deleted afterwards
again6
q "DELETE FROM sessions WHERE user_id=$EVE"
t_expect_out "eve deleted her sessions rows: audit verify exit 4" 4 ctl audit verify
stderr_has "deleted sessions: the line names the commit and session" "commit [0-9]+.*session [0-9]+"
expect_status "deleted sessions: check exit 4" 4 ctl check
expect_status "deleted sessions: admin's mount refused" 4 t_mnt_as admin
t_unmount_any
# b) her session rows deleted while her mount runs: what she does next is
# still in the trail, signed by a session nobody can verify
# (eve works on her own host: this host's state never saw her commits)
again6
XDG_STATE_HOME=$T/state$N-eve check "eve mounts again" mount_as eve
q "DELETE FROM sessions WHERE user_id=$EVE"
printf 'unaudited?\n' > "$MNT/eve2.txt"
cat "$MNT/a.txt" > /dev/null 2>&1
t_umount
t_expect_out "sessions deleted while mounted: audit verify exit 4" 4 ctl audit verify
expect_status "sessions deleted while mounted: admin's next mount refused" 4 t_mnt_as admin
t_unmount_any
# c) her data grants deleted: no key, but never unaudited
again6
q "DELETE FROM grants WHERE user_id=$EVE"
before=$(q "SELECT max(seq) FROM audit")
if mount_as eve 2> "$T/.stderr"; then
	check_not "eve without grants cannot read a.txt" cat "$MNT/a.txt"
	t_umount
	t_expect_out "eve without grants: audit verify" 0 ctl audit verify
	check "eve without grants: her session is in the trail" \
		test "$(q "SELECT count(*) FROM audit WHERE user='eve' AND seq > $before")" -gt 0
else
	ok "eve without grants: mount refused"
fi
# d) her sessions' sealed detail keys replaced: the paths she touched
# would become unreadable to auditors after the fact
again6
check "baseline: the admin reads eve's paths" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --json | jq -e 'any(.[]; .user == \"eve\" and ((.path // \"\") | test(\"eve.txt\")))' > /dev/null"
again6
q "UPDATE sessions SET detail=randomblob(length(detail)) WHERE user_id=$EVE"
if ctl audit list --json 2>/dev/null | jq -e 'any(.[]; .user == "eve" and ((.path // "") | test("eve.txt")))' > /dev/null; then
	ok "garbled detail keys: eve's paths still readable"
else
	t_expect_out "garbled detail keys (eve's paths unreadable now): audit verify exit 4" 4 ctl audit verify
fi
# ... or replaced by a genuine sealed key of another session (the admin's
# own, under the same version): it opens, but it is not the key eve's
# session was endorsed with
again6
ADMS=$(q "SELECT min(id) FROM sessions WHERE user_id=$(uid_of admin)")
q "UPDATE sessions SET detail=(SELECT detail FROM sessions WHERE id=$ADMS),
     detail_version=(SELECT detail_version FROM sessions WHERE id=$ADMS)
   WHERE user_id=$EVE"
t_expect_out "replaced detail keys: audit verify (an admin) exit 4" 4 ctl audit verify
stderr_has "replaced detail keys: verify names eve's session" "session [0-9]+ of user 'eve'.*(replaced|endorsed)"
ctl audit list --json > "$T/list.json" 2>"$T/.stderr"; st=$?
expect_eq "replaced detail keys: audit list exit 4" 4 "$st"
stderr_has "replaced detail keys: audit list says so" "detail key was replaced"
check "replaced detail keys: eve's rows carry no path" \
	jq -e '[.[] | select(.user == "eve")] | length > 0 and all(.path == null and .detail_error != null)' "$T/list.json"
check "replaced detail keys: the admin's own rows still read" \
	jq -e 'any(.[]; .user == "admin" and .path != null)' "$T/list.json"
t_expect_out "replaced detail keys: a reader's audit verify (no key) passes the chain" 0 as rdr audit verify
# a sessions row's commitment itself edited: the endorsement fails
again6
q "UPDATE sessions SET detail_hash=randomblob(32) WHERE user_id=$EVE"
t_expect_out "edited detail commitment: audit verify exit 4" 4 ctl audit verify
# the genuine keys survive a re-seal (key rotate, reencrypt): still
# endorsed, still readable
again6
expect_status "re-seal: key rotate" 0 ctl key rotate
expect_status "re-seal: reencrypt" 0 ctl reencrypt
expect_eq "re-seal: no session key left under the old version" 0 \
	"$(q "SELECT count(*) FROM sessions WHERE detail_version < (SELECT max(detail_version) FROM sessions)")"
t_expect_out "re-seal: audit verify (an admin) exit 0" 0 ctl audit verify
check "re-seal: eve's paths still read" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --json | jq -e 'any(.[]; .user == \"eve\" and ((.path // \"\") | test(\"eve.txt\")))' > /dev/null"
# e) her sessions re-attributed to bob
again6
q "UPDATE sessions SET user_id=$(uid_of bob) WHERE user_id=$EVE"
t_expect_out "eve's sessions re-attributed to bob: audit verify exit 4" 4 ctl audit verify
# f) ledger rows: the head's signature, a middle record, a deleted one
again6
HEAD=$(q "SELECT max(seq) FROM ledger")
q "UPDATE ledger SET sigs=CAST(substr(sigs,1,20) || CASE WHEN substr(sigs,21,1) = X'00' THEN X'01' ELSE X'00' END || substr(sigs,22) AS BLOB) WHERE seq=$HEAD"
expect_status "head commit's signature corrupted: admin's login refused" 4 login admin
expect_status "head commit corrupted: eve's mount refused" 4 t_mnt_as eve
t_unmount_any
t_expect_out "head commit corrupted: audit verify exit 4" 4 ctl audit verify
again6
MID=$(( HEAD / 2 ))
q "UPDATE ledger SET body=CAST(substr(body,1,60) || CASE WHEN substr(body,61,1) = X'FF' THEN X'FE' ELSE X'FF' END || substr(body,62) AS BLOB) WHERE seq=$MID"
t_expect_out "middle commit corrupted: audit verify exit 4" 4 ctl audit verify
stderr_has "middle commit: the line names it" "commit $((MID - 1))|commit $MID|near commit"
again6
q "DELETE FROM ledger WHERE seq=$MID"
t_expect_out "middle commit deleted: audit verify exit 4" 4 ctl audit verify
stderr_has "deleted commit: the line names it" "commit $((MID - 1))|commit $MID|commit $((MID + 1))"
again6
intact "audit switch"

# ==== (7) the login policy ====
export XDG_STATE_HOME=$T/state-policy
STORE=$T/policy.db
printf '[kdf]\nopslimit = 2\nmemlimit = 8M\n[auth]\nmax_failures = 3\nlockout = 60s\n' > "$T/strict.ini"
printf '[kdf]\nopslimit = 1\nmemlimit = 8M\n[auth]\nmax_failures = 0\nlockout = 0\n' > "$T/lax.ini"
expect_status "policy store: init with ops 2, 3 failures, 60 s" 0 \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$T/strict.ini" --passfile "$PASSFILE" init --recovery-file "$T/recovery"
pf pu pu-Secret-Phrase-9
pf wrong not-the-passphrase
expect_status "an admin with a lax -c adds pu" 0 ctl_c "$T/lax.ini" user add pu --role writer --new-passfile "$T/pu.pass"
expect_eq "pu's Argon2id opslimit is the store's floor, not -c's" 2 "$(q "SELECT opslimit FROM credentials WHERE name='pu'")"
lax() { "$CUSTODYCTL" -s "$STORE" -u "$1" -c "$T/lax.ini" --passfile "$2" info; }
for i in 1 2 3; do
	expect_status "lax -c: wrong passphrase $i" 3 lax pu "$T/wrong.pass"
done
expect_status "lax -c (max_failures = 0): locked after the store's 3 failures" 3 lax pu "$T/pu.pass"
stderr_has "locked: the one message" "authentication failed for user 'pu'"
cp "$T/.stderr" "$T/locked.err"
expect_status "lax -c: the mount is locked too" 3 "$CUSTODYFS" -u pu -c "$T/lax.ini" --passfile "$T/pu.pass" "$STORE" "$MNT"
t_unmount_any
lax nosuch "$T/wrong.pass" > /dev/null 2> "$T/unknown.err"; s1=$?
lax admin "$T/wrong.pass" > /dev/null 2> "$T/wrongpw.err"; s2=$?
expect_eq "unknown user and wrong passphrase: exit 3" "3 3" "$s1 $s2"
expect_eq "unknown user, wrong passphrase, locked: one message" \
	"$(sed "s/'nosuch'/'X'/" "$T/unknown.err")|$(sed "s/'nosuch'/'X'/" "$T/unknown.err")" \
	"$(sed "s/'admin'/'X'/" "$T/wrongpw.err")|$(sed "s/'pu'/'X'/" "$T/locked.err")"
expect_status "admin unlocks pu" 0 ctl_c "$T/strict.ini" user unlock pu
expect_status "pu logs in" 0 lax pu "$T/pu.pass"
cp "$STORE" "$T/policy-pristine.db"
q "UPDATE credentials SET opslimit=4294967295 WHERE name='pu'"
t0=$(date +%s)
expect_status "credential opslimit 4294967295: refused as tampering" 4 lax pu "$T/pu.pass"
t1=$(date +%s)
check "opslimit 4294967295: refused at once (< 5 s)" test $((t1 - t0)) -lt 5
stderr_has "opslimit: the line names the cost" "Argon2id cost"
cp "$T/policy-pristine.db" "$STORE"
q "UPDATE credentials SET memlimit=4294967296 WHERE name='pu'"
t0=$(date +%s)
expect_status "credential memlimit 4 GiB: refused as tampering" 4 lax pu "$T/pu.pass"
t1=$(date +%s)
check "memlimit 4 GiB: refused at once (< 5 s)" test $((t1 - t0)) -lt 5
cp "$T/policy-pristine.db" "$STORE"
# the roster's policy edited down (max_failures 0): the signature fails
POL=$(( 16 + 1 + 16 + 4 + 8 + 8 + 8 + 8 + 1 ))
set_byte roster body $POL 00
expect_status "roster policy edited (max_failures 0): refused" 4 lax admin "$PASSFILE"
cp "$T/policy-pristine.db" "$STORE"

# ==== (8) the purge queue and planted inode rows ====
t_fresh
INO=$(q "SELECT ino FROM dentries d WHERE ino IN (SELECT ino FROM inodes WHERE size=6) LIMIT 1")
q "INSERT INTO purge VALUES($INO)"
ctl check > "$T/check.out" 2>&1
expect_eq "planted purge entry: check exit 4" 4 "$?"
check "planted purge entry: check says so" grep -q "planted purge entry" "$T/check.out"
check "planted purge: admin mounts" t_mount
sleep 2
expect_eq "planted purge: a.txt intact after the purge ran" "${SUM[a.txt]}" "$(md5sum < "$MNT/a.txt")"
check "unmount" t_umount
expect_eq "planted purge: dropped from the queue" 0 "$(q "SELECT count(*) FROM purge")"
expect_status "planted purge: check clean afterwards" 0 ctl check
intact "planted purge"
# the next inode number is in the signed commit (body offset 230, 8 bytes
# little endian); a row planted there before a create
next_ino() {
	local h
	h=$(q "SELECT hex(substr(body,230,8)) FROM ledger ORDER BY seq DESC LIMIT 1")
	local le="" i
	for i in 14 12 10 8 6 4 2 0; do le="$le${h:$i:2}"; done
	echo $((16#$le))
}
t_fresh
NI=$(next_ino)
BIG=$(q "SELECT ino FROM inodes WHERE size=12000")
q "INSERT INTO inodes SELECT $NI, file_id, mode, uid, gid, nlink, size, nblocks, rdev, atime, mtime, ctime, generation, nentries, theight, troot, xdigest FROM inodes WHERE ino=$BIG"
check "planted inode row: admin mounts" t_mount
printf 'brand new\n' > "$MNT/new.txt"
expect_eq "the new file got the planted number" "$NI" "$(stat -c %i "$MNT/new.txt")"
expect_eq "the new file reads what was written" "brand new" "$(cat "$MNT/new.txt")"
expect_eq "the new file's size" 10 "$(stat -c %s "$MNT/new.txt")"
check "unmount" t_umount
expect_status "planted inode row: check clean" 0 ctl check
check "remount" t_mount
expect_eq "the new file after remount" "brand new" "$(cat "$MNT/new.txt" 2>&1)"
check "unmount" t_umount
# ... and block rows planted at the next inode number (one inside the new
# file, one beyond it)
t_fresh
NI=$(next_ino)
q "INSERT INTO blocks SELECT $NI, blk, key_version, data FROM blocks WHERE ino=$BIG AND blk IN (0, 2)"
check "planted block rows: admin mounts" t_mount
printf 'brand new\n' > "$MNT/new.txt"
expect_eq "planted blocks: the new file got the planted number" "$NI" "$(stat -c %i "$MNT/new.txt")"
expect_eq "planted blocks: the new file reads what was written" "brand new" "$(cat "$MNT/new.txt")"
expect_eq "planted blocks: st_blocks counts the one real block" "$(stat -c %b "$MNT/a.txt")" "$(stat -c %b "$MNT/new.txt")"
check "unmount" t_umount
ctl check > "$T/check.out" 2>&1; st=$?
if [ $st -eq 4 ]; then
	check "planted blocks: check blames the planted row, not the block count" \
		sh -c "! grep -qi 'count\|holds' '$T/check.out'"
else
	expect_eq "planted blocks: check" 0 "$st"
fi
ctl check --repair > /dev/null 2>&1
expect_status "planted blocks: after check --repair the legitimate file is clean" 0 ctl check
expect_eq "planted blocks: no row is left under the new file's number but its own" 1 \
	"$(q "SELECT count(*) FROM blocks WHERE ino=$NI")"
# xattr and entry rows planted under the next inode number: the new file
# and the new directory start empty, their own attributes and names work
t_fresh
NI=$(next_ino)
XI=$(q "SELECT ino FROM inodes WHERE size=6 LIMIT 1")
q "INSERT INTO xattrs SELECT $NI, tag, key_version, name, value FROM xattrs LIMIT 1" 2>/dev/null
q "INSERT INTO xattrs VALUES($NI, randomblob(32), 1, randomblob(40), randomblob(40))"
q "INSERT INTO dentries(parent, tag, key_version, name, ino)
   SELECT $NI, tag, key_version, name, ino FROM dentries WHERE ino=$XI"
check "planted rows under the next number: admin mounts" t_mount
mkdir "$MNT/newdir"
expect_eq "planted rows: the new directory got the planted number" "$NI" "$(stat -c %i "$MNT/newdir")"
expect_eq "planted rows: the new directory lists empty" "" "$(ls -A "$MNT/newdir" 2>&1)"
check "planted rows: a file can be made in it" sh -c "printf 'inside\n' > '$MNT/newdir/in.txt'"
expect_eq "planted rows: ... and read back" "inside" "$(cat "$MNT/newdir/in.txt" 2>&1)"
getfattr -d "$MNT/newdir" > "$T/.out" 2>&1
check_not "planted rows: the new directory's attribute list is not EIO" grep -q "Input/output error" "$T/.out"
check "planted rows: the new directory takes an attribute" setfattr -n user.mine -v yes "$MNT/newdir"
expect_eq "planted rows: ... which reads back" "yes" "$(getfattr --only-values -n user.mine "$MNT/newdir" 2>/dev/null)"
check "unmount" t_umount
expect_status "planted rows under the next number: check clean" 0 ctl check
# block rows planted in a hole of an existing file, and beyond its end:
# the block count follows the file's tree, never the rows
t_fresh
check "planted holes: admin mounts" t_mount
BS=$(stat -c %o "$MNT/a.txt")
dd if=/dev/urandom of="$MNT/sparse" bs="$BS" count=1 status=none
dd if=/dev/urandom of="$MNT/sparse" bs="$BS" count=1 seek=3 conv=notrunc status=none
dd if=/dev/urandom of="$MNT/cut" bs="$BS" count=2 status=none
SP=$(stat -c %i "$MNT/sparse")
CU=$(stat -c %i "$MNT/cut")
PER=$(( $(stat -c %b "$MNT/sparse") / 2 ))
check "unmount" t_umount
q "INSERT INTO blocks SELECT $SP, 1, key_version, data FROM blocks WHERE ino=$SP AND blk=0;
   INSERT INTO blocks SELECT $SP, 2, key_version, data FROM blocks WHERE ino=$SP AND blk=0;
   INSERT INTO blocks SELECT $CU, 7, key_version, data FROM blocks WHERE ino=$CU AND blk=0"
ctl check > "$T/check.out" 2>&1
expect_eq "planted holes: check exit 4" 4 "$?"
check "planted holes: check names the planted rows" grep -q "not part of the signed file" "$T/check.out"
check "planted holes: admin mounts again" t_mount
expect_eq "planted holes: the hole reads zeros, not the planted row" \
	"$(head -c "$BS" /dev/zero | md5sum)" "$(dd if="$MNT/sparse" bs="$BS" skip=1 count=1 status=none | md5sum)"
dd if=/dev/urandom of="$MNT/sparse" bs="$BS" count=1 seek=1 conv=notrunc status=none
expect_eq "planted holes: writing over a planted row counts a new block" $((3 * PER)) "$(stat -c %b "$MNT/sparse")"
truncate -s "$BS" "$MNT/cut"
expect_eq "planted holes: a truncate counts only the file's own blocks" "$PER" "$(stat -c %b "$MNT/cut")"
check "unmount" t_umount
ctl check > "$T/check.out" 2>&1; st=$?
check_not "planted holes: no block count is wrong" grep -qi "counts .* blocks" "$T/check.out"
ctl check --repair > "$T/repair.out" 2>&1
check "planted holes: repair deletes the planted row" grep -q "no part of the signed file" "$T/repair.out"
expect_eq "planted holes: the planted row in the hole is gone" 0 "$(q "SELECT count(*) FROM blocks WHERE ino=$SP AND blk=2")"
expect_status "planted holes: check clean after repair" 0 ctl check
intact "planted holes"

# ==== (9) meta edits ====
meta_case() {
	local d=$1 sql=$2
	t_fresh
	q "$sql"
	expect_status "$d: admin's login refused as damage" 4 login admin
	stderr_has "$d: the line says what is wrong, not 'authentication failed'" "store id|format|verification|not a custodyfs"
	one_line "$d"
	expect_status "$d: mount refused as damage" 4 t_mnt_as admin
	check_not "$d: nothing mounted" grep -q " $MNT fuse" /proc/mounts
	t_unmount_any
	expect_eq "$d: no failed login counted against the users" 0 "$(q "SELECT count(*) FROM auth_events")"
}
meta_case "store id changed" "UPDATE meta SET value=randomblob(16) WHERE key='store_id'"
meta_case "store id deleted" "DELETE FROM meta WHERE key='store_id'"
# (format 2 keeps no meta row for the format: the header's user_version is
# the format; a row planted by hand is refused, not believed)
meta_case "format changed to 3" "INSERT OR REPLACE INTO meta(key, value) VALUES('format', '3')"
meta_case "format changed to 1" "INSERT OR REPLACE INTO meta(key, value) VALUES('format', '1')"
t_fresh
q "PRAGMA user_version=3"
expect_status "header format 3: refused" 1 ctl info
stderr_has "header format 3: made by a newer custodyfs" "newer custodyfs"
t_fresh
q "PRAGMA user_version=1"
expect_status "header format 1 on a format-2 schema: refused as tampering" 4 ctl info
stderr_has "header format 1: the line says why" "definition of table|older|upgrade"
t_fresh
q "PRAGMA application_id=7"
expect_status "application id changed: refused" 1 ctl info
stderr_has "application id: not a custodyfs store" "not a custodyfs store"
t_finish
