#!/usr/bin/env bash
# What the trail records beyond file operations (issue 20, item 5): reading
# it (audit list, export, verify), info, check, key list, user list,
# backup; refusals by role (exit 5, result EPERM, under the refused user);
# an auditor's refused mount; a mount that failed after the login (a
# "mount failed" row with its error, not "mount ok" + "unmount ok"); and
# the docs say that denials the kernel makes itself are not recorded.
. "$(dirname "$0")/../lib.sh"
command -v jq >/dev/null || { echo "$T_NAME: jq is required" >&2; exit 1; }
t_setup

for r in writer reader auditor; do
	pf "$r" "$r-passphrase"
	check "user add $r" ctl user add "$r" --role "$r" --new-passfile "$T/$r.pass"
done
# rows newer than seq $1 with op $2 by user $3: "result,result,..." (read
# with sqlite3: op, user and result are plain columns, and reading them
# this way records nothing)
rows() { q "SELECT group_concat(result, ',') FROM (SELECT result FROM audit
	WHERE seq > $1 AND op = '$2' AND user = '$3' ORDER BY seq)"; }
last() { q "SELECT max(seq) FROM audit"; }

# ---- reading commands are recorded, each under its own op ----
for cmd in "info" "check" "key list" "user list" "audit verify" "audit list" "audit export"; do
	s=$(last)
	# shellcheck disable=SC2086
	ctl $cmd >/dev/null 2>&1
	expect_eq "'$cmd' is recorded (ok)" 0 "$(rows "$s" "$cmd" admin)"
done
s=$(last)
expect_status "backup" 0 ctl backup "$T/bk.db"
expect_eq "'backup' is recorded" 0 "$(rows "$s" backup admin)"
s=$(last)
expect_status "an auditor reads the trail" 0 as auditor audit list
expect_eq "the auditor's reading is recorded under the auditor" 0 "$(rows "$s" "audit list" auditor)"

# ---- refusals by role: exit 5, recorded with EPERM under the refused user ----
refusal() { # USER OP CMD...
	local u=$1 op=$2 s; shift 2
	s=$(last)
	expect_status "$u: $op refused by role (exit 5)" 5 as "$u" "$@"
	expect_eq "$u: the refusal of '$op' is recorded, EPERM" -1 "$(rows "$s" "$op" "$u")"
}
refusal writer "key list" key list
refusal writer "audit list" audit list
refusal reader "audit export" audit export
refusal reader "user list" user list
refusal auditor "key rotate" key rotate
refusal writer "user add" user add eve --role reader --new-passfile "$T/reader.pass"
s=$(last)
expect_status "an auditor cannot mount (exit 5)" 5 mount_as auditor
expect_eq "the auditor's refused mount is recorded, EPERM" -1 "$(rows "$s" mount auditor)"
check_not "nothing mounted" mountpoint -q "$MNT"

# ---- a mount that fails after the login ----
# FUSE's device replaced by /dev/null in a private mount namespace: the
# login succeeds, the kernel mount then fails
s=$(last)
export STORE MNT CUSTODYFS CONF PASSFILE T
unshare -m --propagation private bash -c '
	t_ns_drop_fuse
	mount --bind /dev/null /dev/fuse || exit 9
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2>"$T/mf.err"
'
st=$?
expect_eq "the kernel mount failed: exit 1" 1 "$st"
check_not "nothing mounted" mountpoint -q "$MNT"
res=$(rows "$s" "mount failed" admin)
check "a 'mount failed' row with an error ($res)" test -n "$res" -a "${res:-0}" -lt 0 2>/dev/null
expect_eq "no 'unmount ok' row for it" "" "$(rows "$s" unmount admin)"
expect_eq "the login is recorded" 0 "$(rows "$s" login admin)"
expect_status "the trail still verifies" 0 ctl audit verify

# ---- the docs say what the kernel denies is not recorded ----
page() { MANWIDTH=200 man -l "$TOP/etc/$1" 2>/dev/null | col -b; }
check "custodyfs(1) says kernel denials are not in the trail" \
	grep -q "never reaches the daemon and is not in the audit trail" <(page custodyfs.1)
check "custodyctl(8) says so" grep -q "never reach the daemon and are not in the trail" <(page custodyctl.8)
check "audit list --help says so" grep -q "never reach the daemon and are not in the trail" <(ctl audit list --help)
check "the README says so" grep -q "Access the kernel denies" "$TOP/README.md"
t_finish
