#!/usr/bin/env bash
# Bad input: every failure gets one clear line on stderr and its documented
# exit status (0 ok, 1 runtime, 2 usage, 3 auth, 4 damage, 6 busy), nothing
# crashes or hangs, nothing stored is damaged, and no mount is left behind.
. "$(dirname "$0")/../lib.sh"
t_setup

# A little data to prove intact at the end.
check "first mount" t_mount
printf 'precious\n' > "$MNT/keep.txt"
head -c 70000 /dev/urandom > "$MNT/keep.bin"
sum_bin=$(md5sum < "$MNT/keep.bin")
check "first unmount" t_umount

printf 'not-the-passphrase\n' > "$T/wrong"
chmod 600 "$T/wrong"

# try DESC WANT_STATUSES CMD...: run with a timeout; the status must be one
# of WANT_STATUSES (space separated); stderr must be exactly one non-empty
# line (ONE_LINE=0 to allow a usage text), naming the program; no crash
# (128+signal), no hang (124); no mount left on $MNT.
ONE_LINE=1
try() {
	local d=$1 want=$2 got lines; shift 2
	if declare -F "$1" >/dev/null; then
		"$@" >"$T/.out" 2>"$T/.err"
	else
		timeout 30 "$@" >"$T/.out" 2>"$T/.err"
	fi
	got=$?
	if [[ " $want " == *" $got "* ]]; then
		ok "$d: exit $got"
	else
		fail "$d: exit $got, want $want ($(head -c 300 "$T/.err"))"
	fi
	lines=$(wc -l < "$T/.err")
	if [ "$ONE_LINE" = 1 ] && [ "$lines" -ne 1 ]; then
		fail "$d: $lines lines on stderr: $(head -c 300 "$T/.err")"
	elif ! grep -q '^[^ ]*custody\(fs\|ctl\): .\+' "$T/.err" &&
	     ! grep -q '^usage: ' "$T/.err"; then
		fail "$d: unclear stderr: $(head -c 300 "$T/.err")"
	else
		ok "$d: message"
	fi
	if grep -qi 'sanitizer\|segmentation\|core dumped\|assert' "$T/.err"; then
		fail "$d: crashed: $(head -c 300 "$T/.err")"
	fi
	if mountpoint -q "$MNT"; then
		fail "$d: left a mount behind"
		fusermount3 -u "$MNT"
	fi
}
err_text() { cat "$T/.err"; }

mnt() { timeout 30 "$CUSTODYFS" -u "${U:-admin}" -c "$CONF" --passfile "${PF:-$PASSFILE}" "$@"; }

# --- authentication ---
PF=$T/wrong try "wrong passphrase" 3 mnt "$STORE" "$MNT"
msg_wrong=$(err_text)
U=nobody try "unknown user" 3 mnt "$STORE" "$MNT"
msg_unknown=$(err_text)
# one message for both: it may echo the name given, nothing else differs
expect_eq "unknown user and wrong passphrase look alike" \
	"${msg_wrong//\'admin\'/\'nobody\'}" "$msg_unknown"
check_not "message does not say which" sh -c "grep -qi 'no such user\|unknown user .nobody' '$T/.err'"
PF=$T/wrong try "ctl wrong passphrase" 3 \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/wrong" info
try "missing passfile" "1 2" mnt --passfile "$T/no-such-passfile" "$STORE" "$MNT"

# --- stores that are missing, not stores, or damaged ---
try "missing store" 1 mnt "$T/missing.db" "$MNT"
check "missing store not created" test ! -e "$T/missing.db"
head -c 100000 /dev/urandom > "$T/random.db"
sum_random=$(md5sum < "$T/random.db")
try "random bytes" 1 mnt "$T/random.db" "$MNT"
expect_eq "random file untouched" "$sum_random" "$(md5sum < "$T/random.db")"
: > "$T/empty.db"
try "empty file" 1 mnt "$T/empty.db" "$MNT"
expect_eq "empty file stays empty" 0 "$(stat -c %s "$T/empty.db")"
mkdir "$T/dir.db"
try "store is a directory" 1 mnt "$T/dir.db" "$MNT"
head -c 50000 "$STORE" > "$T/trunc.db"
try "truncated store (50000 bytes)" "1 4" mnt "$T/trunc.db" "$MNT"
size=$(stat -c %s "$STORE")
head -c $((size / 2)) "$STORE" > "$T/half.db"
try "truncated store (half)" "1 4" mnt "$T/half.db" "$MNT"
try "ctl on random bytes" 1 \
	"$CUSTODYCTL" -s "$T/random.db" -u admin -c "$CONF" --passfile "$PASSFILE" info
try "ctl on truncated store" "1 4" \
	"$CUSTODYCTL" -s "$T/trunc.db" -u admin -c "$CONF" --passfile "$PASSFILE" info

# --- SQLite files that are not (or no longer exactly) custodyfs stores ---
sqlite3 "$T/other.db" "CREATE TABLE t(x); INSERT INTO t VALUES(1)"
sum_other=$(md5sum < "$T/other.db")
try "a foreign SQLite database" 1 mnt "$T/other.db" "$MNT"
try "ctl on a foreign SQLite database" 1 \
	"$CUSTODYCTL" -s "$T/other.db" -u admin -c "$CONF" --passfile "$PASSFILE" info
expect_eq "foreign database untouched" "$sum_other" "$(md5sum < "$T/other.db")"
cp "$STORE" "$T/trig.db"
sqlite3 "$T/trig.db" "CREATE TRIGGER evil AFTER INSERT ON audit BEGIN DELETE FROM audit; END"
sum_trig=$(md5sum < "$T/trig.db")
try "a store with a foreign trigger" 4 mnt "$T/trig.db" "$MNT"
check "foreign trigger named" grep -q "evil" "$T/.err"
try "ctl on a store with a foreign trigger" 4 \
	"$CUSTODYCTL" -s "$T/trig.db" -u admin -c "$CONF" --passfile "$PASSFILE" info
expect_eq "store with a trigger untouched" "$sum_trig" "$(md5sum < "$T/trig.db")"
# the format is the header's user_version: a format-2 file claiming 1 or 0
for v in 1 0; do
	cp "$STORE" "$T/fmt$v.db"
	sqlite3 "$T/fmt$v.db" "PRAGMA user_version=$v"
	try "format-2 file whose header says format $v" "1 4" mnt "$T/fmt$v.db" "$MNT"
	try "ctl upgrade on a format-2 file whose header says $v" "1 4" \
		"$CUSTODYCTL" -s "$T/fmt$v.db" -u admin -c "$CONF" --passfile "$PASSFILE" upgrade
	expect_eq "header $v: no migration ran" "$v" "$(sqlite3 "$T/fmt$v.db" 'PRAGMA user_version')"
done

# --- mount points ---
try "mount point missing" 1 mnt "$STORE" "$T/no-such-dir"
check "mount point not created" test ! -e "$T/no-such-dir"
try "mount point is a file" 1 mnt "$STORE" "$PASSFILE"

# --- usage ---
ONE_LINE=0
try "no arguments" 2 "$CUSTODYFS"
try "one argument" 2 "$CUSTODYFS" "$STORE"
try "unknown option" 2 mnt --bogus "$STORE" "$MNT"
check "unknown option named" grep -q -- "--bogus" "$T/.err"
ONE_LINE=1
try "bad idle duration" 2 mnt -o idle=xyz "$STORE" "$MNT"
check "bad duration named" grep -q "idle=xyz" "$T/.err"
try "bad maxage duration" 2 mnt -o maxage=-5 "$STORE" "$MNT"
try "passfile and extpass" 2 mnt --extpass "echo x" "$STORE" "$MNT"
try "ctl unknown command" 2 \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" frobnicate

# --- configuration ---
printf '[kdf]\nopslimit = 1\nmemlimit = 8M\nbogus_key = 1\n' > "$T/bad.ini"
try "config unknown key" 2 \
	"$CUSTODYFS" -u admin -c "$T/bad.ini" --passfile "$PASSFILE" "$STORE" "$MNT"
check "config error names the key" grep -q "bogus_key" "$T/.err"
printf '[nosuchsection]\nx = 1\n' > "$T/bad2.ini"
try "config unknown section" 2 \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$T/bad2.ini" --passfile "$PASSFILE" info
printf '[mount]\nidle_checkpoint = soon\n' > "$T/bad3.ini"
try "config bad value" 2 \
	"$CUSTODYFS" -u admin -c "$T/bad3.ini" --passfile "$PASSFILE" "$STORE" "$MNT"
try "config file missing" "1 2" \
	"$CUSTODYFS" -u admin -c "$T/none.ini" --passfile "$PASSFILE" "$STORE" "$MNT"

# --- init never overwrites ---
sum_store=$(md5sum < "$STORE")
try "init over an existing store" 1 \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" init
expect_eq "existing store untouched by init" "$sum_store" "$(md5sum < "$STORE")"
try "init over random bytes" 1 \
	"$CUSTODYCTL" -s "$T/random.db" -u admin -c "$CONF" --passfile "$PASSFILE" init
expect_eq "random file untouched by init" "$sum_random" "$(md5sum < "$T/random.db")"
try "init with a bad user name" 2 \
	"$CUSTODYCTL" -s "$T/new.db" -u "-rf" -c "$CONF" --passfile "$PASSFILE" init
check "no store left by the failed init" test ! -e "$T/new.db"

# --- a second read-write mount of the same store is refused ---
check "mount for busy test" t_mount
mkdir "$T/mnt2"
timeout 30 "$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$T/mnt2" \
	>/dev/null 2>"$T/.err"
expect_eq "second rw mount: busy" 6 "$?"
expect_eq "busy: one line" 1 "$(wc -l < "$T/.err")"
if mountpoint -q "$T/mnt2"; then fail "second mount happened"; fusermount3 -u "$T/mnt2"; fi
check "first mount still serves" grep -q precious "$MNT/keep.txt"
check "unmount after busy test" t_umount

# --- after all that, the store is intact ---
check "remount" t_mount
expect_eq "text intact" "precious" "$(cat "$MNT/keep.txt")"
expect_eq "binary intact" "$sum_bin" "$(md5sum < "$MNT/keep.bin")"
check "unmount" t_umount
check "integrity" sh -c "sqlite3 '$STORE' 'PRAGMA integrity_check' | grep -qx ok"
t_finish
