#!/usr/bin/env bash
# Mount sessions (issue 3): the mounts table, one read-write mount per
# store, a killed daemon's lock never blocks, idle= and maxage= end a
# session, --extpass supplies the passphrase. Format 2: each mount has its
# own session key (a sessions row of kind "mount", the daemon's pid), its
# trail rows name that session, and a killed daemon leaves a trail and a
# store that still verify.
. "$(dirname "$0")/../lib.sh"
t_setup
MNT2=$T/mnt2
mkdir -p "$MNT2"

# a process is gone (or a zombie): its work is done
gone() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0; [ "$st" = Z ]; }
wait_gone() { for i in $(seq 200); do gone "$1" && return 0; sleep 0.05; done; return 1; }
mounted() { grep -q " $1 fuse" /proc/mounts; }

# ---- --extpass ----
check "mount with --extpass" "$CUSTODYFS" -u admin -c "$CONF" --extpass "cat $PASSFILE" "$STORE" "$MNT"
T_MOUNTS+=("$MNT")
echo data > "$MNT/f"
expect_eq "extpass mount works" "data" "$(cat "$MNT/f")"
expect_status "extpass command failing: exit 2" 2 \
	"$CUSTODYFS" -u admin -c "$CONF" --extpass "false" "$STORE" "$MNT2"

# ---- a second read-write mount is refused, naming the holder ----
pid=$(t_pid "$MNT")
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT2" 2> "$T/second.err"
expect_eq "second read-write mount: exit 6" 6 "$?"
check "refusal names user, host and pid" grep -q "in use by admin@$(hostname) pid $pid" "$T/second.err"
check_not "second mount point not mounted" mounted "$MNT2"
# a read-only mount beside it is fine
check "read-only mount beside the writer" "$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" -o ro "$STORE" "$MNT2"
T_MOUNTS+=("$MNT2")
expect_eq "read-only mount sees committed data" "data" "$(sync "$MNT/f"; cat "$MNT2/f")"
check "unmount the read-only one" t_umount "$MNT2"

# ---- the session row ----
n=$(sqlite3 "$STORE" "SELECT count(*) FROM mounts WHERE ended=0 AND readonly=0 AND pid=$pid AND user='admin'")
expect_eq "open session row for the writer" 1 "$n"
expect_eq "its mount point is recorded" "$MNT" "$(sqlite3 "$STORE" "SELECT mountpoint FROM mounts WHERE pid=$pid")"
admin_id=$(uid_of admin)
expect_eq "the writer has one mount session of its own" 1 \
	"$(q "SELECT count(*) FROM sessions WHERE pid=$pid AND kind='mount' AND user_id=$admin_id")"
sid=$(q "SELECT id FROM sessions WHERE pid=$pid AND kind='mount'")
expect_eq "the writer's mount row names its session" 1 \
	"$(q "SELECT count(*) FROM audit WHERE op='mount' AND result=0 AND session=${sid:-0}")"
expect_eq "the daemon's login and mount rows name its session" "login mount" \
	"$(q "SELECT group_concat(op, ' ') FROM (SELECT op FROM audit WHERE pid=$pid AND session=${sid:-0} ORDER BY seq)")"
ino=$(stat -c %i "$MNT/f")
expect_eq "the write of f (create, write) is under the writer's session" "1 1" \
	"$(q "SELECT (SELECT count(*) FROM audit WHERE op='create' AND ino=$ino AND session=${sid:-0})
	          || ' ' || (SELECT count(*) FROM audit WHERE op='write' AND ino=$ino AND session=${sid:-0})")"

# ---- kill -9: the stale lock never blocks ----
kill -9 "$pid"
wait_gone "$pid"
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
check "mount again right after kill -9" t_mount
expect_eq "data survived" "data" "$(cat "$MNT/f")"
expect_eq "the killed session is marked crashed" "crashed" \
	"$(sqlite3 "$STORE" "SELECT end_reason FROM mounts WHERE pid=$pid")"
expect_status "the trail verifies after kill -9" 0 ctl audit verify
expect_status "check is clean after kill -9" 0 ctl check
check "unmount" t_umount
expect_eq "a clean session ends as 'unmount'" "unmount" \
	"$(sqlite3 "$STORE" "SELECT end_reason FROM mounts ORDER BY id DESC LIMIT 1")"

# ---- SIGTERM ends cleanly ----
t_mount
pid=$(t_pid)
echo sigterm > "$MNT/g"
kill -TERM "$pid"
check "daemon exits on SIGTERM" wait_gone "$pid"
check_not "SIGTERM unmounted" mounted "$MNT"
expect_eq "SIGTERM session ends as 'signal'" "signal" \
	"$(sqlite3 "$STORE" "SELECT end_reason FROM mounts ORDER BY id DESC LIMIT 1")"
check "remount" t_mount
expect_eq "data written before SIGTERM is there" "sigterm" "$(cat "$MNT/g")"
check "unmount" t_umount

# ---- idle= ----
check "mount with idle=2s" t_mount -o idle=2s
pid=$(t_pid)
ls "$MNT" > /dev/null
check "idle mount ends by itself" wait_gone "$pid"
sleep 0.2
check_not "idle mount is unmounted" mounted "$MNT"
expect_eq "idle session ends as 'idle'" "idle" \
	"$(sqlite3 "$STORE" "SELECT end_reason FROM mounts ORDER BY id DESC LIMIT 1")"

# activity keeps it alive: touch it every 0.5 s for 3 s with idle=2s
check "mount with idle=2s again" t_mount -o idle=2s
pid=$(t_pid)
for i in 1 2 3 4 5 6; do stat "$MNT/f" > /dev/null; echo $i > "$MNT/busy"; sleep 0.5; done
check "activity kept the idle mount alive" mounted "$MNT"
wait_gone "$pid"

# ---- maxage= ----
check "mount with maxage=2s" t_mount -o maxage=2s
pid=$(t_pid)
for i in 1 2 3 4 5 6 7 8; do echo $i > "$MNT/busy" 2>/dev/null; sleep 0.5; done
check "maxage ends a busy session" wait_gone "$pid"
expect_eq "maxage session ends as 'maxage'" "maxage" \
	"$(sqlite3 "$STORE" "SELECT end_reason FROM mounts ORDER BY id DESC LIMIT 1")"

# every session is in the trail
n=$(sqlite3 "$STORE" "SELECT count(*) FROM audit WHERE op='mount'")
[ "$n" -ge 6 ] && ok "mounts recorded in the trail ($n)" || fail "mounts in the trail: $n"
# every read-write mount had a session of its own, and its mount row names it
expect_eq "one mount session per read-write mount" \
	"$(q "SELECT count(*) FROM mounts WHERE readonly=0")" \
	"$(q "SELECT count(DISTINCT s.id) FROM sessions s JOIN mounts m ON m.pid=s.pid
	      WHERE s.kind='mount' AND m.readonly=0")"
expect_eq "every mount row names a mount session" 0 \
	"$(q "SELECT count(*) FROM audit a WHERE a.op='mount' AND a.result=0 AND NOT EXISTS
	      (SELECT 1 FROM sessions s WHERE s.id=a.session AND s.kind='mount')")"
expect_status "the whole trail verifies" 0 ctl audit verify
t_finish
