#!/usr/bin/env bash
# Stopping the daemon (issue 20, item 3): SIGTERM, SIGINT or SIGHUP makes it
# unmount itself. Nothing open: a plain unmount. Files open: a lazy one, so
# the mount point is free at once (no "Transport endpoint is not
# connected", a restart can mount there), while the open files keep
# working, committed, until they are closed or the 10 s grace passes; a
# second signal ends it at once. A later mount at the same point is never
# taken down by the old daemon. A daemon killed with SIGKILL leaves a dead
# mount: custodyfs names it and fusermount3 -uz (the unit's ExecStopPost)
# clears it.
. "$(dirname "$0")/../lib.sh"
t_setup

in_table() { grep -q " $1 fuse" /proc/mounts; }
# wait_gone PID SECONDS: the process ended (or is a zombie) within SECONDS
wait_gone() {
	local i st
	for i in $(seq $(($2 * 20))); do
		st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
		[ -z "$st" ] || [ "$st" = Z ] && return 0
		sleep 0.05
	done
	return 1
}
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }
# fg_mount LOG [ARGS]: a foreground daemon (its stderr in LOG); sets DPID
fg_mount() {
	local log=$1; shift
	"$CUSTODYFS" -f -u admin -c "$CONF" --passfile "$PASSFILE" "$@" "$STORE" "$MNT" 2>"$log" &
	DPID=$!
	T_PIDS+=("$DPID")
	T_MOUNTS+=("$MNT")
	for i in $(seq 100); do mountpoint -q "$MNT" && return 0; sleep 0.05; done
	return 1
}

# ---- 1. nothing open: a plain unmount, at once ----
check "mount" fg_mount "$T/d1.log"
echo one > "$MNT/one"
kill -TERM "$DPID"
check "SIGTERM, nothing open: the daemon exits within 3 s" wait_gone "$DPID" 3
wait "$DPID"; st=$?
expect_eq "SIGTERM, nothing open: exit status 0" 0 "$st"
check_not "nothing left in the mount table" in_table "$MNT"
check "the daemon said what it did" grep -q "SIGTERM: unmounting" "$T/d1.log"
check_not "no lazy unmount was needed" grep -q "detached" "$T/d1.log"

# ---- 2. a file open for writing: detached at once, served until closed ----
check "mount again" fg_mount "$T/d2.log"
exec 7>>"$MNT/held"
echo before-signal >&7
kill -TERM "$DPID"
sleep 1
check_not "1 s after SIGTERM the mount point is out of the mount table" in_table "$MNT"
check "the mount point is a plain directory again (mkdir -p works)" mkdir -p "$MNT"
expect_eq "it shows the (empty) directory beneath" "" "$(ls -A "$MNT")"
check "the daemon still serves the open file" alive "$DPID"
if echo after-signal >&7; then ok "a write through the open descriptor succeeds"; else fail "a write through the open descriptor succeeds"; fi
check "the daemon said it detached a busy mount" grep -q "busy (files are open on it): detached it" "$T/d2.log"
exec 7>&-
check "the daemon exits once the file is closed (within 3 s)" wait_gone "$DPID" 3
wait "$DPID"; st=$?
expect_eq "exit status 0 after the detached session" 0 "$st"
check "remount" t_mount
expect_eq "the writes before and after the signal are there" "before-signal after-signal" \
	"$(tr '\n' ' ' < "$MNT/held" | sed 's/ $//')"
check "unmount" t_umount
reason=$(ctl audit list --op unmount --json | jq -r '[.[] | .path] | .[-2]')
expect_eq "the trail says the session ended on a signal" signal "$reason"

# ---- 3. a working directory in the mount counts as open; a second signal ends it at once ----
check "mount (3)" fg_mount "$T/d3.log"
mkdir -p "$MNT/sub"
( cd "$MNT/sub" && exec sleep 30 ) &
holder=$!
sleep 0.3
kill -TERM "$DPID"
sleep 1
check_not "a cwd holder: detached at once" in_table "$MNT"
check "a cwd holder: the daemon waits" alive "$DPID"
kill -TERM "$DPID"
check "a second SIGTERM ends the daemon at once (within 2 s)" wait_gone "$DPID" 2
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
check_not "nothing left in the mount table after the second signal" in_table "$MNT"

# ---- 4. a holder that never closes: the grace ends the session ----
check "mount (4)" fg_mount "$T/d4.log"
exec 7>>"$MNT/forever"
echo x >&7
start=$(date +%s)
kill -INT "$DPID"
check "SIGINT: the daemon ends after the grace (within 14 s)" wait_gone "$DPID" 14
took=$(( $(date +%s) - start ))
check "it waited for the grace (>= 9 s, took $took s)" test "$took" -ge 9
check "it said why" grep -q "still open after 10 s" "$T/d4.log"
if echo y >&7 2>/dev/null; then fail "a write after the grace fails"; else ok "a write after the grace fails (the session is over)"; fi
exec 7>&-
check_not "no dead mount in the table" in_table "$MNT"
check "mount again after the grace" t_mount
expect_eq "what was written before the signal is there" x "$(cat "$MNT/forever")"
check "unmount" t_umount

# ---- 5. a new mount at the same point while the old daemon still serves ----
OTHER=$T/other.db
"$CUSTODYCTL" -s "$OTHER" -u admin -c "$CONF" --passfile "$PASSFILE" init >/dev/null
check "mount (5)" fg_mount "$T/d5.log"
exec 7>>"$MNT/held5"
kill -TERM "$DPID"
sleep 1
check "another store mounts on the freed point" \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$OTHER" "$MNT"
t_track "$MNT"
echo in-other > "$MNT/other-file"
# the old daemon ends while its detached mount is still in use (a second
# signal): its unmount must not touch the mount now at the point
kill -TERM "$DPID"
check "the old daemon exits" wait_gone "$DPID" 3
exec 7>&-
check "the new mount is still there" in_table "$MNT"
expect_eq "and still serves its store" in-other "$(cat "$MNT/other-file" 2>&1)"
check "unmount the other store" t_umount

# ---- 6. SIGKILL leaves a dead mount: named, and cleared by fusermount3 -uz ----
check "mount (6)" t_mount
pid=$(t_pid)
kill -KILL "$pid"
wait_gone "$pid" 3
check "after SIGKILL a dead mount is left (the case ExecStopPost is for)" in_table "$MNT"
expect_status "mounting on the dead mount is refused" 1 \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT"
stderr_has "the refusal names the dead mount and the cure" "dead FUSE mount.*fusermount3 -uz"
expect_eq "the refusal is one line" 1 "$(wc -l < "$T/.stderr")"
check "fusermount3 -uz clears it" fusermount3 -uz "$MNT"
check_not "cleared" in_table "$MNT"
check "mount after clearing" t_mount
check "unmount" t_umount
t_finish
