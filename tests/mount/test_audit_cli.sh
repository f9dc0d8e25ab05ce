#!/usr/bin/env bash
# Reading the trail (issue 20, item 10): audit list --uid (a uid or a Unix
# user name), Unix user names in the output, an open's flags by name, an
# unknown --op is a usage error (exit 2, one line) instead of an empty
# listing, audit export takes the same filters, JSON and CSV carry an
# RFC 3339 time with nanoseconds that is exactly time_ns, and ages take
# weeks (--since 1w).
. "$(dirname "$0")/../lib.sh"
command -v jq >/dev/null || { echo "$T_NAME: jq is required" >&2; exit 1; }
t_setup

NOBODY_UID=$(id -u nobody)
NOBODY_NAME=$(id -un nobody)

# ---- rows of two Unix users: root mounts and writes, nobody runs commands ----
check "mount" t_mount
echo one > "$MNT/f"
echo two >> "$MNT/f"            # open O_WRONLY|O_APPEND
cat "$MNT/f" > /dev/null        # open O_RDONLY
check "unmount" t_umount
# nobody may use the store file (a shared store: mode 0666, in a
# directory both may write) with its own passfile and state
chmod 777 "$T"
chmod 666 "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
install -o nobody -m 600 "$PASSFILE" "$T/nobody.pass"
install -d -o nobody -m 700 "$T/state-nobody"
chmod 644 "$CONF"
as_nobody() {
	setpriv --reuid="$NOBODY_UID" --regid="$(id -g nobody)" --clear-groups \
		env XDG_STATE_HOME="$T/state-nobody" \
		"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/nobody.pass" "$@"
}
expect_status "nobody runs audit verify" 0 as_nobody audit verify
expect_status "nobody runs info" 0 as_nobody info

ctl audit list --json > "$T/all.json"
n_nobody=$(jq "[.[] | select(.uid == $NOBODY_UID)] | length" "$T/all.json")
n_root=$(jq "[.[] | select(.uid == 0)] | length" "$T/all.json")
check "rows of both uids ($n_nobody of nobody, $n_root of root)" test "$n_nobody" -ge 4 -a "$n_root" -ge 4

# ---- --uid ----
ctl audit list --uid "$NOBODY_UID" --json > "$T/u1.json"
expect_eq "--uid N: only that uid's rows" "$n_nobody" "$(jq 'length' "$T/u1.json")"
check "--uid N: every row is nobody's" jq -e "all(.[]; .uid == $NOBODY_UID)" "$T/u1.json"
ctl audit list --uid "$NOBODY_NAME" --json > "$T/u2.json"
expect_eq "--uid NAME: the same rows" "$(jq -c '[.[].seq]' "$T/u1.json")" "$(jq -c '[.[].seq]' "$T/u2.json")"
ctl audit list --uid root --json > "$T/u3.json"
smax=$(jq 'map(.seq) | max' "$T/u3.json")
expect_eq "--uid root: every root row up to then, and no other" \
	"$(ctl audit export | jq "[.[] | select(.uid == 0 and .seq <= $smax)] | length")" \
	"$(jq 'length' "$T/u3.json")"
check "--uid root: only root's" jq -e 'all(.[]; .uid == 0)' "$T/u3.json"
expect_status "--uid of no Unix user: usage error" 2 ctl audit list --uid no-such-user-here
stderr_has "says what --uid takes" "not a uid or a Unix user name"

# ---- Unix user names ----
ctl audit list > "$T/list.txt"
check "text header has a UNIX USER column" grep -q "^TIME .* UID UNIX USER " "$T/list.txt"
check "text rows name nobody" grep -qE " $NOBODY_UID $NOBODY_NAME +[0-9]+ custodyctl " "$T/list.txt"
check "text rows name root" grep -qE " 0 root +[0-9]+ " "$T/list.txt"
check "JSON: unix_user of nobody's rows" \
	jq -e "all(.[] | select(.uid == $NOBODY_UID); .unix_user == \"$NOBODY_NAME\")" "$T/all.json"
check "JSON: unix_user of root's rows" jq -e 'all(.[] | select(.uid == 0); .unix_user == "root")' "$T/all.json"

# ---- open flags by name ----
check "JSON: an append open is O_WRONLY|O_APPEND" \
	jq -e 'any(.[]; .op == "open" and (.flags | test("^O_WRONLY\\|.*O_APPEND")))' "$T/all.json"
check "JSON: a read open is O_RDONLY" jq -e 'any(.[]; .op == "open" and (.flags | test("^O_RDONLY")))' "$T/all.json"
check "JSON: flags is null for rows other than open" \
	jq -e 'all(.[] | select(.op != "open"); .flags == null)' "$T/all.json"
check "JSON: the numeric flags stay in offset" jq -e 'all(.[] | select(.op == "open"); .offset > 0)' "$T/all.json"
check "text: an open row shows the flags by name" grep -qE " open +O_WRONLY\|[A-Z_|]*O_APPEND" "$T/list.txt"
check_not "text: no open row shows them as a number" grep -qE " open +[0-9]+ +[0-9]+ " "$T/list.txt"

# ---- --op ----
expect_status "--op bogus: usage error" 2 ctl audit list --op bogus
expect_eq "--op bogus: one line" 1 "$(wc -l < "$T/.stderr")"
stderr_has "--op bogus: names it" "--op 'bogus': no such operation"
expect_status "--op bogus on export: usage error" 2 ctl audit export --op bogus
expect_status "--op of a known operation with no rows: ok" 0 ctl audit list --op rmdir
expect_eq "--op open: only opens" "open" "$(ctl audit list --op open --json | jq -r '[.[].op] | unique | join(",")')"
expect_status "--op with a space (mount failed) is known" 0 ctl audit list --op "mount failed"
# every operation the trail holds is accepted by --op
while IFS= read -r op; do
	expect_status "--op '$op' (in the trail) accepted" 0 ctl audit list --op "$op"
done < <(jq -r '[.[].op] | unique | .[]' "$T/all.json")

# ---- audit export takes the filters ----
ctl audit export --format csv --uid "$NOBODY_NAME" > "$T/e.csv"
expect_eq "export --uid: header + nobody's rows (+ none of the export's own)" \
	"$((n_nobody + 1))" "$(wc -l < "$T/e.csv")"
ctl audit export --op open > "$T/e.json"
check "export --op open: only opens" jq -e 'length > 0 and all(.[]; .op == "open")' "$T/e.json"
check "export keeps every column (session, hash)" jq -e 'all(.[]; has("session") and has("hash"))' "$T/e.json"
expect_eq "export --result fail: only failures" 0 \
	"$(ctl audit export --result fail | jq '[.[] | select(.result >= 0)] | length')"
expect_eq "export --path /f: only /f" "/f" "$(ctl audit export --path /f | jq -r '[.[].path] | unique | join(",")')"
expect_status "export --until 1w: nothing that old" 0 ctl audit export --until 1w
expect_eq "export --until 1w is empty" 0 "$(ctl audit export --until 1w | jq length)"

# ---- times: RFC 3339 with nanoseconds, exactly time_ns ----
check "JSON time has 9 fractional digits and Z" \
	jq -e 'all(.[]; .time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z$"))' "$T/all.json"
ctl audit export --format csv > "$T/all.csv"
bad=0; rows=0
while IFS=, read -r seq t tns rest; do
	[ "$seq" = seq ] && continue
	rows=$((rows + 1))
	secs=$(date -u -d "${t%.*}Z" +%s) || { bad=$((bad + 1)); continue; }
	frac=${t#*.}; frac=${frac%Z}
	[ "$((secs * 1000000000 + 10#$frac))" = "$tns" ] || bad=$((bad + 1))
done < <(tr -d '\r' < "$T/all.csv")
check "CSV rows read ($rows)" test "$rows" -gt 10
expect_eq "every CSV time is exactly its time_ns" 0 "$bad"
check "time_ns above 2^53 (why the string is there)" \
	test "$(tail -1 "$T/all.csv" | cut -d, -f3)" -gt 9007199254740992

# ---- ages in weeks ----
n_since=$(ctl audit list --since 1w --json | jq length)
check "--since 1w includes all the rows before ($n_since)" test "$n_since" -ge "$(jq length "$T/all.json")"
expect_status "--since 2w accepted" 0 ctl audit list --since 2w
expect_status "--since 1x refused" 2 ctl audit list --since 1x
stderr_has "the refusal shows the forms, weeks included" "1w"

# ---- help and docs ----
ctl audit list --help > "$T/h.txt"
for w in --uid "UNIX USER" "O_WRONLY|O_APPEND" "nanoseconds" "1w"; do
	check "audit list --help mentions $w" grep -qF -- "$w" "$T/h.txt"
done
ctl audit export --help > "$T/he.txt"
for w in --since --until --user --uid --op --path --result; do
	check "audit export --help takes $w" grep -qF -- "$w" "$T/he.txt"
done
t_finish
