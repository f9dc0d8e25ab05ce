#!/usr/bin/env bash
# Backups and copies never break the original (issue 20, item 1), while a
# real rollback of the original file is still caught.
#  - The issue's case: custodyctl backup, mount the backup (read-only and
#    read-write), write, check it, unmount; the original mounts.
#  - backup makes the copy an instance of its own at once: checked where
#    it cannot write (read-only media), it is still told apart, while a
#    cp copy opened there records nothing and stays unknown.
#  - The older original put back at its path: exit 4, one line naming
#    accept_rollback; -o accept_rollback mounts it.
#  - The state is per Unix user, in $XDG_STATE_HOME/custodyfs; a user with
#    no home and no XDG_STATE_HOME is told, not silently skipped.
#  - The unit does not restart on exit 4; the docs say all this.
. "$(dirname "$0")/../lib.sh"
t_setup

SID=$(q "SELECT hex(value) FROM meta WHERE key='store_id'" | tr 'A-F' 'a-f')
SFILE=$XDG_STATE_HOME/custodyfs/$SID
instances() { grep -c '^commit ' "$1" 2>/dev/null || echo 0; }
mount_at() { # STORE DIR [OPTS...]
	local s=$1 d=$2; shift 2
	mkdir -p "$d"
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$@" "$s" "$d" || return $?
	T_MOUNTS+=("$d"); t_track "$d"
	mountpoint -q "$d"
}
on() { local db=$1; shift; "$CUSTODYCTL" -s "$db" -u admin -c "$CONF" --passfile "$PASSFILE" "$@"; }

check "mount the original" t_mount
echo v1 > "$MNT/doc"
check "unmount" t_umount
check "the state file is per store id, under XDG_STATE_HOME/custodyfs" test -s "$SFILE"
expect_eq "it is private (0600)" 600 "$(stat -c %a "$SFILE")"
expect_eq "one instance known" 1 "$(instances "$SFILE")"

# ---- the issue's case: backup, mount it, write, check, unmount ----
expect_status "backup" 0 ctl backup "$T/bk.db"
check "mount the backup read-only" mount_at "$T/bk.db" "$T/m2" -o ro
expect_eq "the backup has the data" v1 "$(cat "$T/m2/doc" 2>&1)"
check "unmount the backup" t_umount "$T/m2"
check "mount the backup read-write" mount_at "$T/bk.db" "$T/m2"
echo in-backup > "$T/m2/doc"
check "unmount the backup" t_umount "$T/m2"
expect_status "check the backup" 0 on "$T/bk.db" check
check "the original mounts after all that" t_mount
expect_eq "with its own data" v1 "$(cat "$MNT/doc" 2>&1)"
echo v2 > "$MNT/doc"
check "unmount" t_umount
expect_status "check the original" 0 ctl check

# ---- backup makes an instance at once: known before the copy is opened,
# and told apart even where nothing can be written ----
hexpath() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
knows_path() { grep -q "^path [0-9a-f]* $(hexpath "$2")\$" "$1"; }
mkdir -p "$T/media"
n0=$(instances "$SFILE")
expect_status "a second backup" 0 ctl backup "$T/media/bk2.db"
expect_eq "the backup registered the copy as an instance of its own at once" \
	"$((n0 + 1))" "$(instances "$SFILE")"
check "and its path" knows_path "$SFILE" "$T/media/bk2.db"
cp "$STORE" "$T/media/cp.db"
export T CUSTODYCTL CONF PASSFILE
unshare -m --propagation private bash -c '
	t_ns_drop_fuse
	mount --bind -o ro "$T/media" "$T/media" && mount -o remount,bind,ro "$T/media" || exit 9
	on() { local db=$1; shift; "$CUSTODYCTL" -s "$db" -u admin -c "$CONF" --passfile "$PASSFILE" "$@"; }
	on "$T/media/bk2.db" check >/dev/null 2>"$T/bk2.err" || exit 1
	on "$T/media/cp.db" check >/dev/null 2>"$T/cp.err" || exit 2
	on "$T/media/bk2.db" info >/dev/null 2>>"$T/bk2.err" || exit 3
'
expect_eq "both copies checked (and the backup opened) on read-only media" 0 "$?"
expect_eq "no new instance from the read-only opens" "$((n0 + 1))" "$(instances "$SFILE")"
check_not "a cp copy opened where it cannot commit stays unknown (no fork)" \
	knows_path "$SFILE" "$T/media/cp.db"
expect_status "the original opens after the read-only checks" 0 ctl info
check "the original mounts after them" t_mount
check "unmount" t_umount

# ---- a real rollback of the original is caught ----
cp "$STORE" "$T/old.db"      # an old copy of the file, kept aside
check "mount" t_mount
echo v3 > "$MNT/doc"
check "unmount" t_umount
mv "$STORE" "$T/current.db"; cp "$T/old.db" "$STORE"
expect_status "the older original at its path: mount refused, exit 4" 4 \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT"
stderr_has "it says it is older and how to accept it" "older than one seen before.*accept_rollback"
expect_eq "one line" 1 "$(wc -l < "$T/.stderr")"
check_not "nothing mounted" mountpoint -q "$MNT"
expect_status "custodyctl check refuses it too: exit 4" 4 ctl check
check "-o accept_rollback mounts it" \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" -o accept_rollback "$STORE" "$MNT"
T_MOUNTS+=("$MNT"); t_track "$MNT"
expect_eq "the older content, as asked" v2 "$(cat "$MNT/doc" 2>&1)"
check "unmount" t_umount
rm -f "$STORE-wal" "$STORE-shm"; mv "$T/current.db" "$STORE"

# ---- per Unix user ----
chmod 755 "$T"; chmod 644 "$CONF"
mkdir -m 777 "$T/shared"; cp "$T/bk.db" "$T/shared/s.db"; chmod 666 "$T/shared/s.db"
install -o nobody -m 600 "$PASSFILE" "$T/nobody.pass"
install -d -o nobody -m 700 "$T/state-nobody"
as_nobody() {
	setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups env "$@" \
		"$CUSTODYCTL" -s "$T/shared/s.db" -u admin -c "$CONF" --passfile "$T/nobody.pass" info
}
expect_status "another Unix user opens a store" 0 as_nobody XDG_STATE_HOME="$T/state-nobody"
NSID=$(sqlite3 "$T/shared/s.db" "SELECT hex(value) FROM meta WHERE key='store_id'" | tr 'A-F' 'a-f')
check "their state is in their XDG_STATE_HOME" test -s "$T/state-nobody/custodyfs/$NSID"
expect_eq "owned by them" nobody "$(stat -c %U "$T/state-nobody/custodyfs/$NSID")"
# nobody's passwd home does not exist: without HOME and XDG_STATE_HOME
# there is nowhere to keep state, and the user is told
as_nobody -u HOME -u XDG_STATE_HOME >/dev/null 2>"$T/.stderr"; st=$?
expect_eq "no home: the command still runs" 0 "$st"
stderr_has "no home: a warning names the missing rollback detection" \
	"warning: no rollback detection"
# root without HOME and XDG_STATE_HOME: the password database's home (not
# skipped); the file this makes in /root is removed again
RHOME=$(getent passwd root | cut -d: -f6)
RFILE=$RHOME/.local/state/custodyfs/$SID
if [ -e "$RFILE" ]; then
	fail "$RFILE exists before the test"
else
	env -u HOME -u XDG_STATE_HOME "$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" \
		--passfile "$PASSFILE" info >/dev/null 2>"$T/.stderr"; st=$?
	expect_eq "root without HOME: the command runs" 0 "$st"
	check "root without HOME: the state goes to the home in the password database" test -s "$RFILE"
	check_not "root without HOME: no warning" grep -q "no rollback detection" "$T/.stderr"
	rm -f "$RFILE"
fi

# ---- the unit and the docs ----
check "the unit does not restart on exit 4" grep -qE '^RestartPreventExitStatus=.*\b4\b' "$TOP/etc/custodyfs@.service"
page() { MANWIDTH=200 man -l "$TOP/etc/$1" 2>/dev/null | col -b; }
page custodyfs.1 > "$T/fs.txt"
check "custodyfs(1) documents accept_rollback" grep -q "accept_rollback" "$T/fs.txt"
check "custodyfs(1) documents the state directory" grep -q 'XDG_STATE_HOME/custodyfs/STORE-ID' "$T/fs.txt"
check "custodyfs(1) lists exit status 4 as rollback" grep -qE "rolled back" "$T/fs.txt"
check "custodyfs --help lists exit status 4" grep -q "4 damage, tampering or a rolled-back store" <("$CUSTODYFS" --help)
check_not "the README no longer says whole-file rollback is not detected" \
	grep -qi "restoring the whole file.*is not detected" "$TOP/README.md"
check "the README documents the state file" grep -q 'XDG_STATE_HOME/custodyfs/STORE-ID' "$TOP/README.md"
t_finish
