#!/usr/bin/env bash
# One mount, many users (issue 19): `custodyfs -o allow_other` as root, real
# Unix users (useradd, removed again in cleanup) working on it through
# `custodyctl login`:
#  - a uid without a session is refused (EACCES) on every request and gets
#    no data, not even what the kernel holds in its page cache
#  - two writers work side by side; the trail names each one's store user
#    and uid, under each one's own session
#  - a reader's uid reads but cannot change anything (EROFS/EACCES); an
#    auditor's login is refused (exit 5, login-denied row)
#  - failed logins: exit 3 and one message for wrong passphrase, unknown
#    user and a locked account; login-failed rows naming the uid
#  - logout, whoami, one session per uid (a new login replaces it), --idle
#    and --maxage
#  - an admin demoting, removing, revoking or resetting a user ends that
#    user's session within ~1 s: descriptors opened before stop serving
#    data (the kernel's cached pages and attributes included), new opens
#    fail, the trail has a session-end row
#  - session takeover: a connection passed to another uid (SCM_RIGHTS), a
#    forged SCM_CREDENTIALS, a fake daemon in /run/custodyfs, the mounting
#    uid posing as someone else: all refused (tests/passfd.py speaks the
#    socket's protocol by hand)
#  - at the end the trail verifies and the store checks clean.
# The kernel's attribute/entry timeout is raised to 30 s here, so the only
# thing that can stop a cached read or stat after a session ends is the
# daemon dropping those caches (not their expiry).
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
PASSFD="$TOP/tests/passfd.py"
[ -x "$PY" ] || { echo "$T_NAME: $PY missing" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "$T_NAME: must run as root (useradd, allow_other)" >&2; exit 1; }

USERS=(cfsu_w1 cfsu_w2 cfsu_r cfsu_a cfsu_n)
TAG="custodyfs test user (test_multiuser)"
MADE=()
BG=()
EACC='Permission denied'
RO='Read-only file system|Permission denied'

# cleanup: the user processes we started (by pid), then the lib's cleanup
# (unmount, daemons), then the Unix users we made
mu_cleanup() {
	local p
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${BG[@]}"; do
		for i in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$p" 2>/dev/null
	done
	t_cleanup
	for p in "${MADE[@]}"; do userdel "$p" 2>/dev/null; done
	[ -n "$HAVE_LOCK" ] && rm -rf "$LOCK"
}

# The Unix users have fixed names: one run at a time on this machine (then
# a user left behind by a killed run is surely stale). The lock is a
# directory holding the owner's pid (no descriptor for children to inherit).
LOCK=/run/lock/custodyfs-test_multiuser
HAVE_LOCK=
take_lock() {
	local i p
	for i in $(seq 1200); do
		if mkdir "$LOCK" 2>/dev/null; then
			echo $$ > "$LOCK/pid"; HAVE_LOCK=1; return 0
		fi
		p=$(cat "$LOCK/pid" 2>/dev/null)
		# a dead owner's lock (give a new one a moment to write its pid)
		if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; then
			rm -rf "$LOCK"; continue
		fi
		sleep 0.1
	done
	return 1
}
take_lock || { echo "$T_NAME: another run holds $LOCK for 2 minutes" >&2; exit 1; }
t_setup
trap mu_cleanup EXIT
# other users must reach $MNT (the store and passfiles stay unlisted)
chmod 711 "$T"
# the kernel keeps names and attributes 30 s (only the daemon's drop ends
# them early); a locked account stays locked for the whole test
cat >> "$CONF" <<'CONF'
[mount]
attr_timeout = 30s
[auth]
max_failures = 2
lockout = 60s
CONF

for u in "${USERS[@]}"; do
	if getent passwd "$u" >/dev/null; then
		if [ "$(getent passwd "$u" | cut -d: -f5)" = "$TAG" ]; then
			userdel "$u" 2>/dev/null # left by an earlier run
		else
			echo "$T_NAME: Unix user $u exists and is not ours" >&2
			exit 1
		fi
	fi
	useradd -M -s /usr/sbin/nologin -c "$TAG" "$u" || { echo "$T_NAME: useradd $u failed" >&2; exit 1; }
	MADE+=("$u")
done
UW1=$(id -u cfsu_w1); UW2=$(id -u cfsu_w2); UR=$(id -u cfsu_r)
UA=$(id -u cfsu_a); UN=$(id -u cfsu_n)
GW1=$(id -g cfsu_w1); GN=$(id -g cfsu_n); GR=$(id -g cfsu_r)

# ---- helpers ----
# mkpass NAME OWNER: $T/NAME.pass, 0600, readable by Unix user OWNER only
mkpass() { printf '%s\n' "pass phrase of $1" > "$T/$1.pass"; chown "$2" "$T/$1.pass"; chmod 600 "$T/$1.pass"; }
# adduser NAME ROLE OWNER: a store user whose passfile OWNER holds (the
# admin hands it over: a passfile must be its reader's own, like ssh keys)
adduser() { mkpass "$1" root; check "add store user $1 ($2)" ctl user add "$1" --role "$2" --new-passfile "$T/$1.pass"; chown "$3" "$T/$1.pass"; }
# as_u USER CMD...: CMD as Unix user USER
as_u() { local u=$1; shift; runuser -u "$u" -- "$@"; }
# uctl USER ARGS...: custodyctl as Unix user USER
uctl() { local u=$1; shift; runuser -u "$u" -- "$CUSTODYCTL" "$@"; }
# login_u USER NAME [ARGS...]: USER logs in on $MNT as store user NAME
login_u() { local u=$1 n=$2; shift 2; uctl "$u" -u "$n" --passfile "$T/$n.pass" login -m "$MNT" "$@"; }
whoami_u() { uctl "$1" whoami -m "$MNT"; }
# refused DESC USER STDERR-RE CMD...: CMD as USER fails, prints no data and
# its error matches STDERR-RE
refused() {
	local d=$1 u=$2 re=$3 rc; shift 3
	runuser -u "$u" -- "$@" > "$T/.out" 2> "$T/.stderr"; rc=$?
	if [ "$rc" -eq 0 ]; then
		fail "$d: succeeded (output '$(head -c 60 "$T/.out" | tr -c '[:print:]' .)')"
	elif [ -s "$T/.out" ]; then
		fail "$d: failed but gave $(wc -c < "$T/.out") bytes of data"
	elif ! grep -qE -- "$re" "$T/.stderr"; then
		fail "$d: error '$(head -c 200 "$T/.stderr")', want /$re/"
	else
		ok "$d"
	fi
}
# sh_u USER SCRIPT ARGS...: sh -c SCRIPT as USER
sh_u() { local u=$1; shift; runuser -u "$u" -- sh -c "$@"; }
TRAIL=$T/trail.json
trail() { ctl audit list --json > "$TRAIL" 2>/dev/null || echo 'null' > "$TRAIL"; }
# row DESC COND: some row of the trail (read by trail) satisfies jq COND
row() {
	if jq -e "type == \"array\" and any(.[]; $2)" "$TRAIL" >/dev/null 2>&1; then ok "$1"
	else fail "$1: no trail row with $2"; fi
}
# no_row DESC COND: the trail was read and no row satisfies COND
no_row() {
	if jq -e "type == \"array\" and length > 0 and all(.[]; ($2) | not)" "$TRAIL" >/dev/null 2>&1; then ok "$1"
	else fail "$1: a trail row with $2: $(jq -c "[.[]? | select($2)][0]" "$TRAIL" 2>/dev/null)"; fi
}
# waitfile FILE: FILE appears within 10 s
waitfile() { for i in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
# ended_within SECS USER: USER's uid has no session any more within SECS
# seconds (whoami exit 3); prints how many ms it took (-1: not in time)
ended_within() {
	local start=$(date +%s%N) now
	while :; do
		whoami_u "$2" >/dev/null 2>&1
		[ $? -eq 3 ] && { now=$(date +%s%N); echo $(( (now - start) / 1000000 )); return 0; }
		now=$(date +%s%N)
		[ $(( (now - start) / 1000000 )) -gt $(( $1 * 1000 )) ] && { echo -1; return 1; }
		sleep 0.1
	done
}

# ---- store users (passfiles owned by the Unix users who use them) ----
adduser w1 writer cfsu_w1
adduser w2 writer cfsu_w2
adduser r1 reader cfsu_r
adduser a1 auditor cfsu_a
adduser tk writer cfsu_n    # cfsu_n's own, for the takeover and idle parts
adduser lk writer cfsu_n    # locked out on purpose
adduser dem writer cfsu_n   # demoted mid-use
adduser gone writer cfsu_n  # removed mid-use
adduser rev writer cfsu_n   # revoked mid-use
adduser rst writer cfsu_n   # reset mid-use
printf 'not the passphrase\n' > "$T/wrong.pass"; chown cfsu_n "$T/wrong.pass"; chmod 600 "$T/wrong.pass"
cp "$T/wrong.pass" "$T/lk-wrong.pass"; chown cfsu_n "$T/lk-wrong.pass"

check "mount as root with -o allow_other" t_mount -o allow_other
DPID=$(t_pid)
check "the mount is shared (allow_other in the kernel's options)" grep -qE " $MNT fuse.custodyfs .*allow_other" /proc/mounts
chmod 1777 "$MNT"
# what the admin puts there
printf 'admin secret\n' > "$MNT/admin.txt"
mkdir -m 0777 "$MNT/open"
printf 'shared line\n' > "$MNT/open/shared.txt"
chmod 0666 "$MNT/open/shared.txt"
head -c 1048576 /dev/urandom > "$T/big.src"
cp "$T/big.src" "$MNT/big.bin"
BIGSUM=$(md5sum < "$T/big.src")
# the admin's reads leave the pages in the kernel's cache (keep_cache)
cat "$MNT/admin.txt" "$MNT/big.bin" > /dev/null

# ---- the mounting uid (d): served already, cannot log in as anyone ----
expect_status "the mounting uid's whoami: exit 0" 0 "$CUSTODYCTL" whoami -m "$MNT"
check "it is the mount's own session" sh -c "'$CUSTODYCTL' whoami -m '$MNT' | grep -q \"served as 'admin'\""
cp "$T/w1.pass" "$T/root-w1.pass"; chmod 600 "$T/root-w1.pass"
expect_status "the mounting uid cannot log in as w1: exit 2" 2 \
	"$CUSTODYCTL" -u w1 --passfile "$T/root-w1.pass" login -m "$MNT"
stderr_has "saying it is served already" "served as 'admin' already"

# ---- a uid without a session gets nothing ----
expect_status "no session: whoami exit 3" 3 whoami_u cfsu_n
stderr_has "whoami says the requests are refused" "uid $UN has no session"
refused "no session: cat of a cached file" cfsu_n "$EACC" cat "$MNT/admin.txt"
refused "no session: cat of the 1 MiB file the kernel holds" cfsu_n "$EACC" cat "$MNT/big.bin"
refused "no session: ls of the root" cfsu_n "$EACC" ls "$MNT"
refused "no session: ls of a 0777 dir" cfsu_n "$EACC" ls "$MNT/open"
refused "no session: stat of a name never looked up (EACCES, not ENOENT)" cfsu_n "$EACC" stat "$MNT/never-looked-up"
refused "no session: touch a new file" cfsu_n "$EACC" touch "$MNT/open/n-new"
refused "no session: mkdir" cfsu_n "$EACC" mkdir "$MNT/open/n-dir"
refused "no session: append to a 0666 file" cfsu_n "$EACC" sh -c 'echo n >> "$1"' sh "$MNT/open/shared.txt"
refused "no session: getfattr" cfsu_n "$EACC" getfattr -n user.x "$MNT/open/shared.txt"
refused "no session: setfattr" cfsu_n "$EACC" setfattr -n user.x -v 1 "$MNT/open/shared.txt"
refused "no session: listxattr" cfsu_n "$EACC" getfattr -d "$MNT/open/shared.txt"
expect_status "no session: logout exit 1" 1 uctl cfsu_n logout -m "$MNT"
expect_eq "nothing was created or changed" "shared line|absent|absent" \
	"$(cat "$MNT/open/shared.txt")|$([ -e "$MNT/open/n-new" ] && echo present || echo absent)|$([ -e "$MNT/open/n-dir" ] && echo present || echo absent)"
expect_eq "no xattr was set" "" "$(getfattr -d "$MNT/open/shared.txt" 2>/dev/null)"
sleep 1.1
refused "no session: stat of another never-looked-up name" cfsu_n "$EACC" stat "$MNT/never-2"
trail
row "trail: the refusals are recorded as no-session rows naming the uid" \
	".op == \"no-session\" and .user == \"-\" and .uid == $UN and .result != 0"
no_row "trail: no row names a store user for the sessionless uid's requests" \
	".uid == $UN and .user != \"-\" and (.op | test(\"^(login|logout|session-end|login-failed|login-denied)\") | not)"

# ---- two writers side by side ----
expect_status "cfsu_w1 logs in as w1" 0 login_u cfsu_w1 w1
expect_eq "login says who it works as" "uid $UW1 works as 'w1' (writer) on $MNT" "$(login_u cfsu_w1 w1 2>&1)"
expect_status "cfsu_w2 logs in as w2" 0 login_u cfsu_w2 w2
check "whoami: w1 (writer)" sh -c "runuser -u cfsu_w1 -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"uid $UW1 works as 'w1' (writer)\""
check "whoami: w2 (writer)" sh -c "runuser -u cfsu_w2 -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"uid $UW2 works as 'w2' (writer)\""
check "w1 creates and writes a file" sh_u cfsu_w1 'echo "from w1" > "$1"' sh "$MNT/w1.txt"
check "w2 creates and writes a file" sh_u cfsu_w2 'echo "from w2" > "$1"' sh "$MNT/w2.txt"
check "w1 makes a dir" as_u cfsu_w1 mkdir "$MNT/w1dir"
check "w1 sets an xattr on its file" as_u cfsu_w1 setfattr -n user.by -v w1 "$MNT/w1.txt"
check "w2 appends to the shared 0666 file" sh_u cfsu_w2 'echo "w2 line" >> "$1"' sh "$MNT/open/shared.txt"
expect_eq "w2 reads w1's file" "from w1" "$(as_u cfsu_w2 cat "$MNT/w1.txt" 2>&1)"
expect_eq "w1 reads w2's file" "from w2" "$(as_u cfsu_w1 cat "$MNT/w2.txt" 2>&1)"
expect_eq "w1 reads the admin's file" "admin secret" "$(as_u cfsu_w1 cat "$MNT/admin.txt" 2>&1)"
expect_eq "w2 reads the 1 MiB file" "$BIGSUM" "$(as_u cfsu_w2 cat "$MNT/big.bin" | md5sum)"
expect_eq "the files belong to their uids" "$UW1 $UW2" "$(stat -c %u "$MNT/w1.txt") $(stat -c %u "$MNT/w2.txt")"
expect_eq "the admin sees both" "from w1|from w2|shared line w2 line|w1" \
	"$(cat "$MNT/w1.txt")|$(cat "$MNT/w2.txt")|$(cat "$MNT/open/shared.txt" | tr '\n' ' ' | sed 's/ $//')|$(getfattr --only-values -n user.by "$MNT/w1.txt" 2>/dev/null)"
refused "another uid's sessions do not serve cfsu_n (cat w1's file)" cfsu_n "$EACC" cat "$MNT/w1.txt"
refused "nor the page cache w2 just filled" cfsu_n "$EACC" cat "$MNT/w2.txt"
trail
for w in 1 2; do
	eval "u=\$UW$w"
	row "trail: w$w's login row names w$w and uid $u" ".op == \"login\" and .path == \"session\" and .user == \"w$w\" and .uid == $u"
	row "trail: the create of /w$w.txt is w$w's (uid $u)" ".op == \"create\" and .path == \"/w$w.txt\" and .user == \"w$w\" and .uid == $u"
	row "trail: the write of /w$w.txt is w$w's (uid $u)" ".op == \"write\" and .path == \"/w$w.txt\" and .user == \"w$w\" and .uid == $u"
	no_row "trail: no row of /w$w.txt under another name or uid" "(.path == \"/w$w.txt\") and (.op == \"create\" or .op == \"write\") and (.user != \"w$w\" or .uid != $u)"
done
row "trail: w1's mkdir is w1's" ".op == \"mkdir\" and .path == \"/w1dir\" and .user == \"w1\" and .uid == $UW1"
row "trail: w2's append to the shared file is w2's" ".op == \"write\" and .path == \"/open/shared.txt\" and .user == \"w2\" and .uid == $UW2"
row "trail: w2's read of w1's file is w2's" ".op == \"read\" and .path == \"/w1.txt\" and .user == \"w2\" and .uid == $UW2"
no_row "trail: nothing succeeded for a uid that never logged in (cfsu_n)" ".uid == $UN and .status == \"ok\""
# the plain list shows the same (name and uid side by side)
check "audit list (plain) shows w1 and its uid on its create" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list | grep -qE '^[^ ]+ +w1 +$UW1 .* create .*/w1\.txt\$'"
check "audit list --user w2 lists w2's write" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --user w2 --op write | grep -qE ' w2 +$UW2 .*/w2\.txt\$'"
# each writer's rows lie under its own session, not the mount's
# (paths are sealed in the table: find the rows by seq)
sid_of() { local n; n=$(jq -r "[.[] | select(.op == \"create\" and .path == \"$1\")][0].seq // 0" "$TRAIL"); q "SELECT session FROM audit WHERE seq=$n" 2>/dev/null; }
sid_w1=$(sid_of /w1.txt); sid_w2=$(sid_of /w2.txt); sid_adm=$(sid_of /admin.txt)
if [ -n "$sid_w1" ] && [ -n "$sid_w2" ] && [ "$sid_w1" != "$sid_w2" ] && [ "$sid_w1" != "$sid_adm" ] && [ "$sid_w2" != "$sid_adm" ]; then
	ok "each writer's rows are under a session of its own"
else
	fail "sessions of the rows: w1 '$sid_w1', w2 '$sid_w2', admin '$sid_adm' (want three different)"
fi
expect_eq "w1's session is w1's (sessions table)" "$(uid_of w1)" "$(q "SELECT user_id FROM sessions WHERE id=${sid_w1:-0}")"
expect_eq "w2's session is w2's (sessions table)" "$(uid_of w2)" "$(q "SELECT user_id FROM sessions WHERE id=${sid_w2:-0}")"

# ---- a reader reads, never writes ----
expect_status "cfsu_r logs in as r1" 0 login_u cfsu_r r1
check "whoami: r1 (reader)" sh -c "runuser -u cfsu_r -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"works as 'r1' (reader)\""
expect_eq "the reader reads w1's file" "from w1" "$(as_u cfsu_r cat "$MNT/w1.txt" 2>&1)"
expect_eq "the reader reads the 1 MiB file" "$BIGSUM" "$(as_u cfsu_r cat "$MNT/big.bin" | md5sum)"
check "the reader lists the 0777 dir" sh -c "runuser -u cfsu_r -- ls '$MNT/open' | grep -qx shared.txt"
expect_eq "the reader reads an xattr" "w1" "$(as_u cfsu_r getfattr --only-values -n user.by "$MNT/w1.txt" 2>/dev/null)"
# the 0777 dir (no sticky bit) and the 0666 file let POSIX allow all of these
refused "reader: create" cfsu_r "$RO" touch "$MNT/open/r-new"
refused "reader: write (append)" cfsu_r "$RO" sh -c 'echo r >> "$1"' sh "$MNT/open/shared.txt"
refused "reader: truncate" cfsu_r "$RO" truncate -s 0 "$MNT/open/shared.txt"
refused "reader: unlink" cfsu_r "$RO" rm -f "$MNT/open/shared.txt"
refused "reader: rename" cfsu_r "$RO" mv "$MNT/open/shared.txt" "$MNT/open/moved.txt"
refused "reader: mkdir" cfsu_r "$RO" mkdir "$MNT/open/r-dir"
refused "reader: setfattr" cfsu_r "$RO" setfattr -n user.r -v 1 "$MNT/open/shared.txt"
expect_eq "the reader changed nothing" "shared line w2 line|absent|absent|absent|" \
	"$(cat "$MNT/open/shared.txt" 2>&1 | tr '\n' ' ' | sed 's/ $//')|$(for f in r-new moved.txt r-dir; do [ -e "$MNT/open/$f" ] && printf present || printf absent; [ $f = r-dir ] || printf '|'; done)|$(getfattr --only-values -n user.r "$MNT/open/shared.txt" 2>/dev/null)"

# ---- an auditor has nothing on a mount ----
expect_status "an auditor's login is refused: exit 5" 5 login_u cfsu_a a1
stderr_has "saying it is an auditor" "auditor"
expect_status "the auditor's uid has no session (whoami exit 3)" 3 whoami_u cfsu_a
refused "the auditor's uid is refused (cat)" cfsu_a "$EACC" cat "$MNT/admin.txt"
trail
row "trail: a login-denied row for a1 naming its uid" ".op == \"login-denied\" and .user == \"a1\" and .uid == $UA and .status != \"ok\""
no_row "trail: no successful login of a1" ".op == \"login\" and .user == \"a1\" and .status == \"ok\""

# ---- failed logins: exit 3, one message ----
expect_status "wrong passphrase: exit 3" 3 uctl cfsu_n -u w1 --passfile "$T/wrong.pass" login -m "$MNT"
msg_wrong=$(sed "s/'w1'/'NAME'/" "$T/.stderr")
stderr_has "says authentication failed" "authentication failed"
expect_status "unknown user: exit 3" 3 uctl cfsu_n -u nosuchuser --passfile "$T/wrong.pass" login -m "$MNT"
expect_eq "unknown user: the same message" "$msg_wrong" "$(sed "s/'nosuchuser'/'NAME'/" "$T/.stderr")"
expect_status "lk: first wrong passphrase: exit 3" 3 uctl cfsu_n -u lk --passfile "$T/lk-wrong.pass" login -m "$MNT"
expect_status "lk: second wrong passphrase (locks it): exit 3" 3 uctl cfsu_n -u lk --passfile "$T/lk-wrong.pass" login -m "$MNT"
expect_status "lk locked: the right passphrase gets exit 3" 3 login_u cfsu_n lk
expect_eq "locked: the same message" "$msg_wrong" "$(sed "s/'lk'/'NAME'/" "$T/.stderr")"
expect_status "after the failures cfsu_n still has no session" 3 whoami_u cfsu_n
refused "and is still refused" cfsu_n "$EACC" cat "$MNT/w1.txt"
trail
row "trail: login-failed row for the wrong passphrase naming w1 and uid $UN" ".op == \"login-failed\" and .user == \"w1\" and .uid == $UN"
row "trail: login-failed row for the unknown user naming uid $UN" ".op == \"login-failed\" and .user == \"nosuchuser\" and .uid == $UN"
if jq -e "[.[] | select(.user == \"lk\" and .uid == $UN and (.op | startswith(\"login-\")) and .status != \"ok\")] | length >= 3" "$TRAIL" >/dev/null 2>&1; then
	ok "trail: three refused logins of lk naming uid $UN"
else
	fail "trail: refused logins of lk: $(jq -c "[.[] | select(.user == \"lk\") | {op, uid, status}]" "$TRAIL" 2>/dev/null)"
fi
no_row "trail: no successful login of lk" ".op == \"login\" and .user == \"lk\" and .status == \"ok\""

# ---- one session per uid, logout ----
cp "$T/w1.pass" "$T/n-w1.pass"; chown cfsu_n "$T/n-w1.pass"
expect_status "cfsu_n logs in as w1 (a second uid as the same user)" 0 \
	uctl cfsu_n -u w1 --passfile "$T/n-w1.pass" login -m "$MNT"
check "w1's session writes for cfsu_n" sh_u cfsu_n 'echo n-as-w1 > "$1"' sh "$MNT/open/n.txt"
cp "$T/r1.pass" "$T/n-r1.pass"; chown cfsu_n "$T/n-r1.pass"
expect_status "cfsu_n logs in again, as r1: replaces its session" 0 \
	uctl cfsu_n -u r1 --passfile "$T/n-r1.pass" login -m "$MNT"
check "whoami: now r1 (reader)" sh -c "runuser -u cfsu_n -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"works as 'r1' (reader)\""
refused "after the replacement cfsu_n writes no more" cfsu_n "$RO" sh -c 'echo again >> "$1"' sh "$MNT/open/n.txt"
expect_eq "but reads (as r1)" "n-as-w1" "$(as_u cfsu_n cat "$MNT/open/n.txt" 2>&1)"
expect_eq "cfsu_w1's own w1 session is untouched" "from w1" "$(as_u cfsu_w1 cat "$MNT/w1.txt" 2>&1)"
expect_status "logout: exit 0" 0 uctl cfsu_n logout -m "$MNT"
expect_status "after logout: whoami exit 3" 3 whoami_u cfsu_n
refused "after logout: cat refused" cfsu_n "$EACC" cat "$MNT/open/n.txt"
refused "after logout: ls refused" cfsu_n "$EACC" ls "$MNT/open"
expect_status "logout again: exit 1 (no session)" 1 uctl cfsu_n logout -m "$MNT"
trail
row "trail: the replaced session's logout row (w1, uid $UN)" ".op == \"logout\" and .user == \"w1\" and .uid == $UN and (.path | test(\"replaced\"))"
row "trail: the logout row (r1, uid $UN)" ".op == \"logout\" and .user == \"r1\" and .uid == $UN and .path == \"logout\""
row "trail: cfsu_n's write as w1 is w1's" ".op == \"write\" and .path == \"/open/n.txt\" and .user == \"w1\" and .uid == $UN"

# ---- session takeover ----
SOCK=$("$PY" "$PASSFD" path "$MNT")
# a uid holding idle connections cannot stall other users' logins (each
# connection is served on its own; at most two at once per uid)
as_u cfsu_n "$PY" -c 'import socket, sys, time
s = [socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(4)]
[x.connect(sys.argv[1]) for x in s]
time.sleep(5)' "$SOCK" &
STALL=$!
BG+=("$STALL")
sleep 0.5
t0=$(date +%s%N)
expect_status "a login while another uid holds idle connections" 0 login_u cfsu_w2 w2
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "it is answered at once (${ms} ms), not after the idle ones time out" test "$ms" -lt 3000
wait "$STALL" 2>/dev/null
check "the login socket is where the protocol puts it" test -S "$SOCK"
# (c) nobody but root can put a socket in /run/custodyfs
expect_eq "/run/custodyfs is root's, mode 0755" "0 0 755 directory" "$(stat -c '%u %g %a %F' /run/custodyfs)"
expect_eq "the socket is the root daemon's, 0666" "0 666 socket" "$(stat -c '%u %a %F' "$SOCK")"
FAKE=$("$PY" "$PASSFD" path "$T/some-other-mount")
refused "a user cannot bind a fake daemon's socket there" cfsu_n "$EACC" \
	"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])' "$FAKE"
check_not "no fake socket was made" test -e "$FAKE"
refused "a user cannot create a file there" cfsu_n "$EACC" touch /run/custodyfs/cfsu-fake
refused "a user cannot remove the daemon's socket" cfsu_n "$EACC" rm -f "$SOCK"
check "the socket is still there" test -S "$SOCK"
# the hand-made client works when it is honest (else the refusals below
# would prove nothing)
expect_status "passfd.py login with its own credentials: exit 0" 0 as_u cfsu_n "$PY" "$PASSFD" login "$SOCK" tk "$T/tk.pass"
check "whoami: cfsu_n is tk" sh -c "runuser -u cfsu_n -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"works as 'tk'\""
expect_status "logout of that session" 0 uctl cfsu_n logout -m "$MNT"
# (a) a connection made by cfsu_w1, passed to cfsu_n, who sends the login
"$PY" "$PASSFD" pass "$SOCK" tk "$T/tk.pass" "$UW1" "$GW1" "$UN" "$GN" > "$T/pass.out" 2>&1
expect_eq "a passed connection: refused with exit 5" 5 "$?"
check "refused as a passed socket" grep -q "passed socket" "$T/pass.out"
"$PY" "$PASSFD" pass "$SOCK" tk "$T/tk.pass" "$UW1" "$GW1" "$UN" "$GN" --no-cred > "$T/pass.out" 2>&1
expect_eq "the same without explicit credentials: refused with exit 5" 5 "$?"
"$PY" "$PASSFD" pass "$SOCK" tk "$T/tk.pass" "$UN" "$GN" "$UR" "$GR" > "$T/pass.out" 2>&1
expect_eq "cfsu_n's connection passed to cfsu_r: refused with exit 5" 5 "$?"
expect_status "no session for cfsu_n after the passed sockets" 3 whoami_u cfsu_n
check "cfsu_r is still r1, not tk" sh -c "runuser -u cfsu_r -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"works as 'r1'\""
check "cfsu_w1 is still w1, not tk" sh -c "runuser -u cfsu_w1 -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"works as 'w1'\""
# (b) forged SCM_CREDENTIALS: the kernel itself refuses them
as_u cfsu_n "$PY" "$PASSFD" login "$SOCK" tk "$T/tk.pass" --claim-uid "$UW1" > "$T/claim.out" 2>&1
expect_eq "claiming cfsu_w1's uid: sendmsg fails (exit 100)" 100 "$?"
check "with EPERM" grep -qx "sendmsg: EPERM" "$T/claim.out"
as_u cfsu_n "$PY" "$PASSFD" login "$SOCK" tk "$T/tk.pass" --claim-uid 0 --claim-gid 0 > "$T/claim.out" 2>&1
expect_eq "claiming root: sendmsg fails (exit 100)" 100 "$?"
check "with EPERM" grep -qx "sendmsg: EPERM" "$T/claim.out"
"$PY" "$PASSFD" pass "$SOCK" tk "$T/tk.pass" "$UW1" "$GW1" "$UN" "$GN" --claim-a > "$T/pass.out" 2>&1
expect_eq "passed socket + claiming the connector's uid: sendmsg fails (exit 100)" 100 "$?"
check "with EPERM" grep -qx "sendmsg: EPERM" "$T/pass.out"
expect_status "still no session for cfsu_n" 3 whoami_u cfsu_n
check "cfsu_w1 is still w1" sh -c "runuser -u cfsu_w1 -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"works as 'w1'\""
trail
no_row "trail: no login of tk by uid $UW1 or $UR" ".op == \"login\" and .user == \"tk\" and (.uid == $UW1 or .uid == $UR)"

# ---- --idle and --maxage ----
expect_status "cfsu_n logs in as tk with --idle 2s" 0 login_u cfsu_n tk --idle 2s
expect_status "cfsu_r logs in again as r1 with --maxage 2s" 0 login_u cfsu_r r1 --maxage 2s
check "whoami shows the limit" sh -c "runuser -u cfsu_n -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q 'ends after 2s idle'"
check "the idle session serves at first" as_u cfsu_n cat "$MNT/w1.txt"
start=$(date +%s%N)
end_n=-1 end_r=-1 alive_n_1s=0 alive_r_1s=0
while [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 5000 ]; do
	el=$(( ($(date +%s%N) - start) / 1000000 ))
	as_u cfsu_r cat "$MNT/w1.txt" > /dev/null 2>&1 # r1 keeps busy: only maxage ends it
	if [ $end_n -lt 0 ]; then
		whoami_u cfsu_n > /dev/null 2>&1
		case $? in 3) end_n=$el ;; 0) [ $el -ge 1000 ] && alive_n_1s=1 ;; esac
	fi
	if [ $end_r -lt 0 ]; then
		whoami_u cfsu_r > /dev/null 2>&1
		case $? in 3) end_r=$el ;; 0) [ $el -ge 1000 ] && alive_r_1s=1 ;; esac
	fi
	[ $end_n -ge 0 ] && [ $end_r -ge 0 ] && break
	sleep 0.2
done
expect_eq "the idle session lives past 1 s" 1 "$alive_n_1s"
expect_eq "the maxage session lives past 1 s" 1 "$alive_r_1s"
if [ $end_n -ge 1500 ] && [ $end_n -le 4500 ]; then ok "--idle 2s ends the session (after ${end_n} ms)"
else fail "--idle 2s: session ended after $end_n ms (-1: not within 5 s), want 2-4.5 s"; fi
if [ $end_r -ge 1500 ] && [ $end_r -le 4500 ]; then ok "--maxage 2s ends a busy session (after ${end_r} ms)"
else fail "--maxage 2s: session ended after $end_r ms (-1: not within 5 s), want 2-4.5 s"; fi
refused "after --idle: refused" cfsu_n "$EACC" cat "$MNT/w1.txt"
refused "after --maxage: refused" cfsu_r "$EACC" cat "$MNT/w1.txt"
trail
row "trail: logout row 'idle' (tk, uid $UN)" ".op == \"logout\" and .user == \"tk\" and .uid == $UN and .path == \"idle\""
row "trail: logout row 'maxage' (r1, uid $UR)" ".op == \"logout\" and .user == \"r1\" and .uid == $UR and .path == \"maxage\""

# ---- rights change mid-use ----
# The victim (run as cfsu_n) holds descriptors on the 1 MiB file (3: read
# 256 KiB of it, 5: not read yet, whose pages are in the kernel's cache)
# and an append descriptor (4) on a file of its own; after the admin's
# change it reads on, stats, writes and opens again.
cat > "$T/victim.sh" <<'VICTIM'
#!/bin/bash
d=$1 f=$2 w=$3
exec 3< "$f" 5< "$f" 4>> "$w" || { echo "open failed" > "$d/err"; exit 1; }
echo before >&4
cat "$f" > /dev/null
dd bs=256k count=1 iflag=fullblock <&3 2>/dev/null | wc -c > "$d/before"
touch "$d/ready"
for i in $(seq 300); do [ -e "$d/go" ] && break; sleep 0.05; done
dd bs=256k count=1 iflag=fullblock <&3 > "$d/fd3" 2> "$d/fd3.err"; echo $? > "$d/fd3.rc"
dd bs=1M count=1 iflag=fullblock <&5 > "$d/fd5" 2> "$d/fd5.err"; echo $? > "$d/fd5.rc"
stat -c %s "$f" > "$d/stat" 2> "$d/stat.err"; echo $? > "$d/stat.rc"
{ echo after >&4; } 2> "$d/fd4.err"; echo $? > "$d/fd4.rc"
cat "$f" > "$d/new" 2> "$d/new.err"; echo $? > "$d/new.rc"
touch "$d/done"
VICTIM
chmod 755 "$T/victim.sh"

# midway NAME DESC CMD...: cfsu_n works as store user NAME; CMD (an admin
# command) changes NAME's rights while the victim holds its descriptors.
# Leaves the victim's results in $V.
midway() {
	local name=$1 d=$2 ms; shift 2
	V=$T/v.$name
	mkdir "$V"; chown cfsu_n "$V"
	expect_status "$d: cfsu_n logs in as $name" 0 login_u cfsu_n "$name"
	runuser -u cfsu_n -- bash "$T/victim.sh" "$V" "$MNT/big.bin" "$MNT/open/$name.w" &
	BG+=($!)
	if ! waitfile "$V/ready"; then fail "$d: the victim did not start ($(cat "$V/err" 2>/dev/null))"; return 1; fi
	expect_eq "$d: the victim read 256 KiB before" 262144 "$(tr -d ' ' < "$V/before")"
	local t0
	expect_status "$d: the admin's change" 0 "$@"
	t0=$(date +%s%N) # committed
	ms=$(ended_within 3 cfsu_n)
	if [ "$ms" -ge 0 ] && [ "$ms" -le 2000 ]; then ok "$d: the session ends within ~1 s (${ms} ms)"
	else fail "$d: the session did not end within 2 s (whoami: $ms ms, -1: still alive after 3 s)"; fi
	# keys wiped and the kernel's caches dropped within ~1 s of the
	# change (the daemon's once-a-second tick): go on 1.5 s after it
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$ms" -lt 1500 ] && sleep "$(awk -v m=$((1500 - ms)) 'BEGIN { printf "%.3f", m / 1000 }')"
}
# victim_after NAME DESC NEW: let the victim go on; its descriptors serve
# nothing more; NEW is "refused" (new opens fail) or "served"
victim_after() {
	local name=$1 d=$2 new=$3
	touch "$V/go"
	if ! waitfile "$V/done"; then fail "$d: the victim did not finish"; return 1; fi
	if [ "$(cat "$V/fd3.rc")" != 0 ] && [ ! -s "$V/fd3" ]; then ok "$d: the next read on the open descriptor fails"
	else fail "$d: the next read on the open descriptor gave $(wc -c < "$V/fd3") bytes (rc $(cat "$V/fd3.rc"))"; fi
	if [ "$(cat "$V/fd5.rc")" != 0 ] && [ ! -s "$V/fd5" ]; then ok "$d: the kernel's cached pages are not served ($(head -c 80 "$V/fd5.err"))"
	else fail "$d: reading an old descriptor at offset 0 gave $(wc -c < "$V/fd5") bytes from the page cache (rc $(cat "$V/fd5.rc"))"; fi
	if [ "$(cat "$V/fd4.rc")" != 0 ]; then ok "$d: a write on the old append descriptor fails"
	else fail "$d: a write on the old append descriptor succeeded"; fi
	expect_eq "$d: the file has only what was written before" "before" "$(cat "$MNT/open/$name.w" 2>&1)"
	if [ "$new" = refused ]; then
		if [ "$(cat "$V/stat.rc")" != 0 ] && grep -q "$EACC" "$V/stat.err"; then ok "$d: the cached attributes are not served (stat EACCES)"
		else fail "$d: stat of the held file: rc $(cat "$V/stat.rc"), '$(cat "$V/stat" "$V/stat.err" | head -c 100)'"; fi
		if [ "$(cat "$V/new.rc")" != 0 ] && [ ! -s "$V/new" ] && grep -q "$EACC" "$V/new.err"; then ok "$d: a new open is refused (EACCES)"
		else fail "$d: a new open: rc $(cat "$V/new.rc"), $(wc -c < "$V/new") bytes, '$(head -c 100 "$V/new.err")'"; fi
	else
		expect_eq "$d: a new open is served by the new session" "$BIGSUM" "$(md5sum < "$V/new")"
	fi
}

# (1) demoted to reader: the writer session ends; a new login gets the
# reader's rights; descriptors of the old session stay dead
midway dem "demote" ctl user role dem reader
refused "demote: a new open before logging in again is refused" cfsu_n "$EACC" cat "$MNT/w1.txt"
expect_status "demote: dem logs in again" 0 login_u cfsu_n dem
check "demote: now as a reader" sh -c "runuser -u cfsu_n -- '$CUSTODYCTL' whoami -m '$MNT' | grep -q \"works as 'dem' (reader)\""
victim_after dem "demote" served
refused "demote: the new session does not write" cfsu_n "$RO" sh -c 'echo x >> "$1"' sh "$MNT/open/dem.w"
expect_status "demote: logout" 0 uctl cfsu_n logout -m "$MNT"
wait; BG=()

# (2) removed
midway gone "remove" ctl user del gone
victim_after gone "remove" refused
expect_status "remove: gone cannot log in again (exit 3)" 3 login_u cfsu_n gone
wait; BG=()

# (3) revoked (removed, keys rotated, everything re-encrypted)
midway rev "revoke" ctl user revoke rev
victim_after rev "revoke" refused
expect_status "revoke: rev cannot log in again (exit 3)" 3 login_u cfsu_n rev
expect_eq "revoke: the admin still reads the re-encrypted file" "$BIGSUM" "$(md5sum < "$MNT/big.bin")"
expect_eq "revoke: w1 still reads it (its session follows the new key)" "$BIGSUM" "$(as_u cfsu_w1 cat "$MNT/big.bin" | md5sum)"
wait; BG=()

# (4) passphrase reset by an admin
expect_status "reset: cfsu_n logs in as rst" 0 login_u cfsu_n rst
check "reset: the session serves" as_u cfsu_n cat "$MNT/w1.txt"
cp "$T/rst.pass" "$T/rst-old.pass"
printf 'new pass phrase of rst\n' > "$T/rst.pass"
chown root "$T/rst.pass"
expect_status "reset: the admin resets rst's passphrase" 0 ctl user passwd rst --new-passfile "$T/rst.pass"
ms=$(ended_within 3 cfsu_n)
if [ "$ms" -ge 0 ] && [ "$ms" -le 2000 ]; then ok "reset: the session ends within ~1 s (${ms} ms)"
else fail "reset: the session did not end within 2 s (whoami: $ms ms)"; fi
refused "reset: refused afterwards" cfsu_n "$EACC" cat "$MNT/w1.txt"
chown cfsu_n "$T/rst.pass" "$T/rst-old.pass"
expect_status "reset: the old passphrase fails (exit 3)" 3 uctl cfsu_n -u rst --passfile "$T/rst-old.pass" login -m "$MNT"
expect_status "reset: the new one works" 0 login_u cfsu_n rst
expect_status "reset: logout" 0 uctl cfsu_n logout -m "$MNT"

trail
for n in dem gone rev rst; do
	row "trail: session-end row for $n (uid $UN), rights changed" ".op == \"session-end\" and .user == \"$n\" and .uid == $UN and .path == \"rights changed\""
done
row "trail: the victim's early write was recorded as dem's" ".op == \"write\" and .path == \"/open/dem.w\" and .user == \"dem\" and .uid == $UN"
for n in dem gone rev; do
	expect_eq "trail: one write to $n.w (the one before the end)" 1 \
		"$(jq "[.[] | select(.op == \"write\" and .path == \"/open/$n.w\" and .status == \"ok\")] | length" "$TRAIL" 2>&1)"
done

# ---- the end ----
check "the daemon is alive after all this" kill -0 "$DPID"
check "and still serves the admin" test "$(cat "$MNT/admin.txt")" = "admin secret"
check "w1 and w2 are still logged in" sh -c "runuser -u cfsu_w1 -- '$CUSTODYCTL' whoami -m '$MNT' >/dev/null && runuser -u cfsu_w2 -- '$CUSTODYCTL' whoami -m '$MNT' >/dev/null"
check "unmount" t_umount
check_not "the login socket is gone" test -e "$SOCK"
expect_status "whoami without the mount: exit 1" 1 whoami_u cfsu_w1
trail
row "trail: w1's session ended at unmount" ".op == \"logout\" and .user == \"w1\" and .uid == $UW1 and .path == \"unmount\""
row "trail: w2's session ended at unmount" ".op == \"logout\" and .user == \"w2\" and .uid == $UW2 and .path == \"unmount\""
no_row "trail: nothing succeeded for the auditor's uid" ".uid == $UA and .status == \"ok\""
expect_status "audit verify: exit 0" 0 ctl audit verify
expect_status "custodyctl check: exit 0" 0 ctl check
t_finish
