#!/usr/bin/env bash
# The audit trail seen through custodyctl audit list / export / verify /
# prune: one row per operation with the right user, pid, process, path,
# offset, length and result; filters; JSON, CSV and --follow output; roles;
# rows surviving remount; pruning keeping the chain verifiable. Reading
# the trail is recorded too: every command adds its "login" row and its
# own row (op "audit list", "audit export", ...) before it reads.
# Needs jq (add it to the Makefile's DEBS).
. "$(dirname "$0")/../lib.sh"
command -v jq >/dev/null || { echo "$T_NAME: jq is required" >&2; exit 1; }
t_setup

# other roles, each with its own passfile
for r in reader writer auditor; do
	printf '%s-passphrase\n' "$r" > "$T/$r.pass"
	chmod 600 "$T/$r.pass"
	check "user add $r" ctl user add "$r" --role "$r" --new-passfile "$T/$r.pass"
done

# withpid NAME CMD...: run CMD with a pid saved in $T/NAME.pid
withpid() { local n=$1; shift; sh -c 'echo $$ > "$0"; exec "$@"' "$T/$n.pid" "$@"; }
pidof_run() { cat "$T/$1.pid"; }

# readers_tail JSON FROM: the ops of rows after seq FROM, as one line
readers_tail() { jq -c --argjson f "$2" '[.[] | select(.seq > $f) | .op]' "$1"; }
# J: the trail as JSON; jqr FILTER: jq on it (q is lib.sh's sqlite3)
J=$T/list.json
refresh() { ctl audit list --json > "$J"; }
jqr() { jq -r "$@" "$J"; }
# has DESC FILTER: at least one row matches the jq select() condition
has() { local n; n=$(jqr "[.[] | select($2)] | length" 2>/dev/null); if [ "${n:-0}" -ge 1 ]; then ok "$1"; else fail "$1 (no row matches: $2)"; fi; }

# ---- help and usage ----
for sub in list verify export prune; do
	out=$("$CUSTODYCTL" audit "$sub" --help); st=$?
	expect_eq "audit $sub --help exits 0" 0 "$st"
	case $out in *usage:*) ok "audit $sub --help prints usage" ;; *) fail "audit $sub --help prints usage" ;; esac
done
expect_status "audit without a command is a usage error" 2 ctl audit
expect_status "unknown audit command" 2 ctl audit frobnicate
expect_status "bad --since is a usage error" 2 ctl audit list --since yesterday-ish
expect_status "bad --result is a usage error" 2 ctl audit list --result maybe
expect_status "prune without --before is a usage error" 2 ctl audit prune
expect_status "bad export format" 2 ctl audit export --format xml

# a refused admin action: a failure row (result -EPERM) of user "reader"
expect_status "reader cannot add users" 5 as reader user add mallory --role reader --new-passfile "$T/reader.pass"

# ---- phase 1: the default (cached) mount ----
check "mount" t_mount
withpid mkdir mkdir "$MNT/dir"
withpid create touch "$MNT/dir/file"
# 2 blocks at offset 12288 (writeback may merge or split the writes)
withpid dd dd if=/dev/urandom of="$MNT/dir/file" bs=4096 seek=3 count=2 conv=notrunc,fsync status=none
withpid open cat "$MNT/dir/file" > /dev/null
withpid chmod chmod 600 "$MNT/dir/file"
withpid truncate truncate -s 100 "$MNT/dir/file"
withpid setx setfattr -n user.color -v blue "$MNT/dir/file"
withpid rmx setfattr -x user.color "$MNT/dir/file"
withpid link ln "$MNT/dir/file" "$MNT/dir/hard"
withpid symlink ln -s file "$MNT/dir/sym"
withpid rename mv "$MNT/dir/hard" "$MNT/dir/hard2"
withpid unlink rm "$MNT/dir/hard2"
mkdir "$MNT/dir/sub"
withpid rmdir rmdir "$MNT/dir/sub"
check_not "rmdir of a non-empty directory fails" withpid rmdirfail rmdir "$MNT/dir"
withpid opendir ls "$MNT/dir" > /dev/null
check "unmount" t_umount

sleep 0.1  # keep rows clear of the boundary: jq compares ns as doubles
MID_NS=$(date +%s%N)
MID=$(date -u -d "@${MID_NS:0:10}.${MID_NS:10}" +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 0.1

refresh
check "audit list --json parses" jq -e 'type == "array"' "$J"
N1=$(jqr length)
MAX1=$(jqr '.[-1].seq')
SEQS1=$(jqr '[.[] | [.seq, .op, .path]] | tostring')
expect_eq "the list shows its own login and row last" '["login","audit list"]' "$(jqr -c '[.[-2:][] | .op]')"
expect_eq "the list's own rows: admin, success" 0 "$(jqr '[.[-2:][] | select(.user != "admin" or .result != 0)] | length')"
# CSV (no names with commas or newlines yet): header + one line per row
ctl audit export --format csv > "$T/export.csv"
expect_eq "csv header" "seq,time,time_ns,user,uid,gid,pid,process,op,ino,path,offset,length,result,status,session,hash,unix_user,flags" "$(head -1 "$T/export.csv" | tr -d '\r')"
expect_eq "csv has one line per row" "$(($(q 'SELECT count(*) FROM audit') + 1))" "$(wc -l < "$T/export.csv")"
expect_eq "csv: the export's login and row come last" "login,audit export" \
	"$(tail -2 "$T/export.csv" | cut -d, -f9 | paste -sd,)"
ctl audit list > "$T/list.txt"
expect_eq "text list: header + one line per row" "$(($(q 'SELECT count(*) FROM audit') + 1))" "$(wc -l < "$T/list.txt")"

for op in mount unmount mkdir create open write setattr truncate setxattr removexattr link symlink rename unlink rmdir opendir; do
	has "a row for $op" ".op == \"$op\""
done
has "admin action init" '.op == "init" and .user == "admin"'
has "admin action user add" '.op == "user add" and .path == "auditor" and .result == 0'
has "refused admin action (reader, -EPERM)" '.user == "reader" and .result == -1'
has "mount row names the mount point" ".op == \"mount\" and .path == \"$MNT\""

has "mkdir: user, pid, process, path" ".op == \"mkdir\" and .user == \"admin\" and .uid == $(id -u) and .pid == $(pidof_run mkdir) and .process == \"mkdir\" and .path == \"/dir\" and .result == 0"
has "create: pid and path" ".op == \"create\" and .pid == $(pidof_run create) and .process == \"touch\" and .path == \"/dir/file\""
has "open: pid and path" ".op == \"open\" and .pid == $(pidof_run open) and .process == \"cat\" and .path == \"/dir/file\""
has "setattr (chmod): pid and path" ".op == \"setattr\" and .pid == $(pidof_run chmod) and .path == \"/dir/file\""
has "truncate: pid, path and size" ".op == \"truncate\" and .pid == $(pidof_run truncate) and .path == \"/dir/file\" and .offset == 100"
has "setxattr: pid and path" ".op == \"setxattr\" and .pid == $(pidof_run setx) and .path == \"/dir/file\""
has "removexattr: pid and path" ".op == \"removexattr\" and .pid == $(pidof_run rmx) and .path == \"/dir/file\""
has "link: pid and new path" ".op == \"link\" and .pid == $(pidof_run link) and .path == \"/dir/hard\""
has "symlink: pid and path" ".op == \"symlink\" and .pid == $(pidof_run symlink) and .path == \"/dir/sym\""
has "rename: pid and both paths" ".op == \"rename\" and .pid == $(pidof_run rename) and .path == \"/dir/hard -> /dir/hard2\""
has "unlink: pid and path" ".op == \"unlink\" and .pid == $(pidof_run unlink) and .path == \"/dir/hard2\""
has "rmdir: pid and path" ".op == \"rmdir\" and .pid == $(pidof_run rmdir) and .path == \"/dir/sub\" and .result == 0"
has "opendir: pid and path" ".op == \"opendir\" and .pid == $(pidof_run opendir) and .process == \"ls\" and .path == \"/dir\""
has "failed rmdir recorded with -ENOTEMPTY" ".op == \"rmdir\" and .path == \"/dir\" and .result == -39 and .status == \"ENOTEMPTY\""
# the written range [12288, 20480) is covered by write rows' offset/length
cover=$(jqr '[.[] | select(.op == "write" and .path == "/dir/file" and .result >= 0) | [.offset, .offset + .length]] | sort
	| reduce .[] as $r ([]; if length > 0 and .[-1][1] >= $r[0] then .[-1][1] = ([.[-1][1], $r[1]] | max) else . + [$r] end)
	| any(.[0] <= 12288 and .[1] >= 20480)')
expect_eq "write rows cover the written range" true "$cover"
expect_eq "every filesystem row is user admin" 0 "$(jqr '[.[] | select((.op | IN("open", "read", "write", "create", "mkdir", "rename", "unlink", "rmdir", "link", "symlink", "setattr", "truncate", "setxattr", "removexattr", "opendir", "mount", "unmount")) and .user != "admin")] | length')"
expect_eq "mount session rows have a pid" 0 "$(jqr '[.[] | select((.op == "mkdir" or .op == "open" or .op == "create") and .pid <= 1)] | length')"

# ---- filters ----
ctl audit list --json --op write > "$T/f.json"
expect_eq "--op write: count" "$(jqr '[.[] | select(.op == "write")] | length')" "$(jq length "$T/f.json")"
expect_eq "--op write: only writes" 0 "$(jq '[.[] | select(.op != "write")] | length' "$T/f.json")"
n=$(ctl audit list --json --path /dir/file | jq length)
expect_eq "--path prefix: count" "$(jqr '[.[] | select(.path | startswith("/dir/file"))] | length')" "$n"
n=$(ctl audit list --json --user reader | jq length)
expect_eq "--user reader: count" "$(jqr '[.[] | select(.user == "reader")] | length')" "$n"
check "--user reader: some rows" test "$n" -ge 1
ctl audit list --json --result fail > "$T/f.json"
expect_eq "--result fail: only failures" 0 "$(jq '[.[] | select(.result >= 0)] | length' "$T/f.json")"
expect_eq "--result fail: count" "$(jqr '[.[] | select(.result < 0)] | length')" "$(jq length "$T/f.json")"
n=$(ctl audit list --json --op create --path /dir --user admin | jq length)
expect_eq "filters combine" "$(jqr '[.[] | select(.op == "create" and .user == "admin" and (.path | startswith("/dir")))] | length')" "$n"
expect_eq "--until 1h: no row" 0 "$(ctl audit list --json --until 1h | jq length)"
n=$(ctl audit list --json --since 2000-01-01 | jq length)
expect_eq "--since a date: every row" "$(q 'SELECT count(*) FROM audit')" "$n"

# ---- survival across remount, now with exact read accounting ----
check "remount -o exact_reads" t_mount -o exact_reads
expect_eq "rows survive unmount/remount" "$SEQS1" "$(ctl audit list --json | jq -r --argjson n "$N1" '[.[:$n][] | [.seq, .op, .path]] | tostring')"

# ---- --follow prints a row written after it started ----
"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" audit list --follow --json > "$T/follow.out" 2> "$T/follow.err" &
FPID=$!
for i in $(seq 200); do [ -s "$T/follow.out" ] && break; sleep 0.05; done
echo late > "$MNT/followed"
for i in $(seq 200); do grep -q '"path":"/followed"' "$T/follow.out" && break; sleep 0.05; done
kill -INT "$FPID"
wait "$FPID"; st=$?
expect_eq "--follow exits 0 on SIGINT" 0 "$st"
check "--follow printed the new row" grep -q '"op":"create","ino":[0-9]*,"path":"/followed"' "$T/follow.out"
check "--follow --json: one object per line" jq -e -s 'length > 0 and all(type == "object")' "$T/follow.out"
check "--follow printed the old rows first" grep -q '"op":"init"' "$T/follow.out"
"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" audit list --follow > "$T/follow2.out" 2>&1 &
FPID=$!
for i in $(seq 200); do [ -s "$T/follow2.out" ] && break; sleep 0.05; done
kill -TERM "$FPID"
wait "$FPID"; st=$?
expect_eq "--follow exits 0 on SIGTERM" 0 "$st"

# ---- exact_reads: every read reaches the trail with its offset/length ----
withpid dw dd if=/dev/urandom of="$MNT/dir/data" bs=4096 count=4 status=none
withpid dr dd if="$MNT/dir/data" of=/dev/null bs=4096 skip=2 count=1 status=none
withpid dr2 dd if="$MNT/dir/data" of=/dev/null bs=4096 skip=2 count=1 status=none
# names that need quoting or escaping in CSV, text and JSON
touch "$MNT/dir/a,\"b" "$MNT/dir/nl
x"
check "unmount" t_umount
refresh
has "exact_reads: read row with offset 8192, length 4096, pid, process" ".op == \"read\" and .path == \"/dir/data\" and .offset == 8192 and .length == 4096 and .pid == $(pidof_run dr) and .process == \"dd\""
has "exact_reads: the repeated read is recorded too" ".op == \"read\" and .path == \"/dir/data\" and .offset == 8192 and .pid == $(pidof_run dr2)"
# a process's contiguous writes are one row (as its reads): dd's four
has "exact_reads: one write row covers dd's four writes, with its pid" ".op == \"write\" and .path == \"/dir/data\" and .offset == 0 and .length == 16384 and .pid == $(pidof_run dw)"
has "json escapes a newline in a name" '.op == "create" and .path == "/dir/nl\nx"'
check "text list escapes a newline in a name" grep -qF '/dir/nl\x0ax' <(ctl audit list --op create)
ctl audit export --format csv > "$T/export.csv"
NCSV=$(q 'SELECT count(*) FROM audit')
ctl audit export --format json > "$T/export.json"
NJSON=$(q 'SELECT count(*) FROM audit')
check "csv quotes a comma and a quote" grep -qF ',"/dir/a,""b",' "$T/export.csv"
N2=$(jqr length)
MAX2=$(jqr '.[-1].seq')
# --since/--until around a time between the two mounts; rows listed after
# $J was read are the later commands' own (counted apart below)
n=$(jqr "[.[] | select(.time_ns >= $MID_NS)] | length")
check "rows on both sides of the mid point" test "$n" -ge 1 -a "$n" -lt "$N2"
# upto: the rows of a listing (stdin) that $J holds too
upto() { jq "[.[] | select(.seq <= $MAX2)] | length"; }
ctl audit list --json --since "$MID" > "$T/since.json"
expect_eq "--since UTC time" "$n" "$(upto < "$T/since.json")"
# after $J: the text list, the two exports and this list, 2 rows each
expect_eq "--since UTC time: later rows are the readers' own" \
	'["login","audit list","login","audit export","login","audit export","login","audit list"]' \
	"$(readers_tail "$T/since.json" "$MAX2")"
expect_eq "--until UTC time" "$((N2 - n))" "$(ctl audit list --json --until "$MID" | jq length)"
LOCAL=$(date -d "@${MID_NS:0:10}.${MID_NS:10}" +%Y-%m-%dT%H:%M:%S.%N)
expect_eq "--since local time (no zone)" "$n" "$(ctl audit list --json --since "$LOCAL" | upto)"
OFFS=$(TZ='IST-5:30' date -d "@${MID_NS:0:10}.${MID_NS:10}" +%Y-%m-%dT%H:%M:%S.%N%:z)
expect_eq "--since time with a UTC offset" "$n" "$(ctl audit list --json --since "$OFFS" | upto)"
expect_eq "csv: one record per row (quoted newline inside)" "$NCSV" "$(grep -c '^[0-9][0-9]*,[0-9]\{4\}-' "$T/export.csv")"
expect_eq "export json has every row" "$NJSON" "$(jq length "$T/export.json")"
expect_eq "export json: every row has session and hash" "$NJSON" "$(jq '[.[] | select(.session >= 1 and (.hash | test("^[0-9a-f]{64}$")))] | length' "$T/export.json")"
expect_eq "export json agrees with list" "$(jqr -c '[.[] | [.seq, .op, .path, .pid]]')" "$(jq -c "[.[] | select(.seq <= $MAX2) | [.seq, .op, .path, .pid]]" "$T/export.json")"
expect_eq "export json: its own login and row last" '["login","audit export"]' "$(jq -c '[.[-2:][] | .op]' "$T/export.json")"

# ---- roles ----
for r in reader writer; do
	out=$(as "$r" audit list --json 2>/dev/null); st=$?
	expect_eq "$r: audit list is denied (exit 5)" 5 "$st"
	expect_eq "$r: audit list prints nothing" "" "$out"
	out=$(as "$r" audit export --format csv 2>/dev/null); st=$?
	expect_eq "$r: audit export is denied (exit 5)" 5 "$st"
	expect_eq "$r: audit export prints nothing" "" "$out"
done
expect_status "reader: audit prune is denied (exit 5)" 5 as reader audit prune --before 1s
refresh
as auditor audit list --json > "$T/auditor.json"; st=$?
expect_eq "auditor: audit list" 0 "$st"
check "auditor sees decrypted paths" jq -e 'any(.[]; .op == "create" and .path == "/dir/file")' "$T/auditor.json"
MAXR=$(jqr '.[-1].seq')
expect_eq "auditor: list shows the same rows" "$(jqr -c '[.[] | [.seq, .process, .path]]')" "$(jq -c "[.[] | select(.seq <= $MAXR) | [.seq, .process, .path]]" "$T/auditor.json")"
expect_eq "auditor: its own login and list rows follow, as auditor" '[["login","auditor",0],["audit list","auditor",0]]' \
	"$(jq -c "[.[] | select(.seq > $MAXR) | [.op, .user, .result]]" "$T/auditor.json")"
# the refused reads are in the trail, as the users who tried
for r in reader writer; do
	for op in "audit list" "audit export"; do
		has "$r: refused $op recorded (-EPERM)" ".op == \"$op\" and .user == \"$r\" and .result == -1"
	done
	has "$r: its login recorded" ".op == \"login\" and .user == \"$r\" and .result == 0"
done
has "reader: refused audit prune recorded (-EPERM)" '.op == "audit prune" and .user == "reader" and .result == -1'
expect_status "auditor: audit export" 0 as auditor audit export --format json
expect_status "auditor: audit verify" 0 as auditor audit verify
expect_status "reader: audit verify (any user may verify)" 0 as reader audit verify
expect_status "auditor: audit prune is denied (exit 5)" 5 as auditor audit prune --before 1s

# ---- verify and prune ----
out=$(ctl audit verify); st=$?
expect_eq "verify exits 0" 0 "$st"
case $out in "audit trail intact: "*" rows") ok "verify message" ;; *) fail "verify message: $out" ;; esac
refresh
OLD=$(jqr "[.[] | select(.time_ns < $MID_NS)] | length")
check "rows exist before the prune point" test "$OLD" -ge 1
out=$(ctl audit prune --before "$MID"); st=$?
expect_eq "prune exits 0" 0 "$st"
case $out in "pruned $OLD of "*) ok "prune says how many rows" ;; *) fail "prune says how many rows: '$out', want $OLD" ;; esac
expect_status "verify passes after prune" 0 ctl audit verify
ctl audit list --json > "$T/after.json"
expect_eq "no row older than the prune point remains" 0 "$(jq "[.[] | select(.time_ns < $MID_NS)] | length" "$T/after.json")"
MAXSEQ=$(jqr '.[-1].seq')
expect_eq "the rest remains" "$(jqr "[.[] | select(.time_ns >= $MID_NS) | .seq] | tostring")" "$(jq -c "[.[] | select(.seq <= $MAXSEQ) | .seq]" "$T/after.json")"
# after the kept rows: the prune, the verify and this list, each with its login
expect_eq "the prune is recorded after the kept rows" '["login","audit prune","login","audit verify","login","audit list"]' \
	"$(readers_tail "$T/after.json" "$MAXSEQ")"
check "the prune row: admin, success" jq -e 'any(.[]; .op == "audit prune" and .user == "admin" and .result == 0)' "$T/after.json"
out=$(ctl audit prune --before now); st=$?
expect_eq "prune everything exits 0" 0 "$st"
expect_status "verify after pruning everything" 0 ctl audit verify
# left: rows written after "now" was read (the prune's own login and
# itself), then the verify's and this list's
expect_eq "only the prune (and its login) is left, then the readers'" '["login","audit prune","login","audit verify","login","audit list"]' \
	"$(ctl audit list --json | jq -c '[.[] | .op]')"

# ---- login, failed login and lockout (recorded by auth) ----
printf 'wrong\n' > "$T/wrong.pass"; chmod 600 "$T/wrong.pass"
for i in 1 2 3; do
	"$CUSTODYCTL" -s "$STORE" -u writer -c "$CONF" --passfile "$T/wrong.pass" info >/dev/null 2>&1
done
# a reader's (read-only) mount records its login (as every command does)
if "$CUSTODYFS" -u reader -c "$CONF" --passfile "$T/reader.pass" "$STORE" "$MNT"; then
	T_MOUNTS+=("$MNT")
	t_umount
fi
# pending auth events enter the trail with the next read-write session
ctl audit prune --before 1d > /dev/null
refresh
has "auth: admin login recorded" '.user == "admin" and .op == "login" and .result >= 0'
# events adopted from auth_events name their user in the path: "user NAME at T"
has "auth: read-only mount login (reader) recorded" '.op == "login" and .result >= 0 and (.user == "reader" or (.path | startswith("user reader ")))'
has "auth: failed login recorded" '.op == "login-failed" and (.user == "writer" or (.path | startswith("user writer ")))'
has "auth: lockout recorded" '.op == "lockout" and (.user == "writer" or (.path | startswith("user writer ")))'
expect_status "verify with auth rows" 0 ctl audit verify
t_finish
