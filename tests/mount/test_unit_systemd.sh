#!/usr/bin/env bash
# custodyfs@.service under a real systemd (issue 20, items 3 and 4): the
# unit as shipped (paths moved under the test directory, and no default
# dependencies, so nothing but it starts) runs under a systemd of its own,
# PID 1 of new pid, mount, UTS and IPC namespaces, with its own /run and
# /tmp and no unit but ours. It checks that the hardening keeps the FUSE
# mount working and visible, that Type=notify makes `systemctl start`
# return once the mount is up, that a stop with a file open frees the
# mount point at once, that a crash (SIGKILL) is cleared by ExecStopPost
# and restarted, and that authentication, rollback and a missing store
# are not restarted.
#
# Containment: the namespaces above; systemd's cgroups go below a cgroup
# of this test under the test's own memory cgroup (removed at the end);
# /run, /tmp and the unit directories inside are private tmpfs.
. "$(dirname "$0")/../lib.sh"
t_setup
SD=/lib/systemd/systemd
[ -x "$SD" ] || { fail "no $SD (Debian package systemd)"; t_finish; exit; }

W=$T/w
mkdir -p "$W/units/custodyfs@.service.d" "$W/lib" "$W/srv" "$W/etc" "$W/empty" "$W/bin"
# the binaries under $W (in /var/tmp): a checkout under /tmp is out of
# the unit's sight (PrivateTmp=), so it could not even start the daemon
cp "$CFS_BIN/custodyfs" "$CFS_BIN/custodyctl" "$W/bin/"
# the shipped unit, its paths under $W
sed -e "s|/usr/local/bin/|$W/bin/|g; s|/var/lib/custodyfs/|$W/lib/|g; \
	s|/srv/custodyfs/|$W/srv/|g; s|/etc/custodyfs/|$W/etc/|g" \
	"$TOP/etc/custodyfs@.service" > "$W/units/custodyfs@.service"
cat > "$W/units/custodyfs@.service.d/test.conf" <<EOF
[Unit]
DefaultDependencies=no
[Service]
Environment=XDG_STATE_HOME=$W/state
RestartSec=1s
StandardError=append:$W/daemon.err
EOF
# a sanitized build (tests/run.sh --sanitized): its options reach the
# daemon; LeakSanitizer stops the world with ptrace, which the unit's
# system-call filter refuses (as it should), so leaks are left to the
# other tests
if [ -n "${ASAN_OPTIONS:-}" ]; then
	printf 'Environment="ASAN_OPTIONS=%s:detect_leaks=0" "UBSAN_OPTIONS=%s"\n' \
		"$ASAN_OPTIONS" "${UBSAN_OPTIONS:-}" >> "$W/units/custodyfs@.service.d/test.conf"
fi
cat > "$W/units/cfstest.target" <<'EOF'
[Unit]
Description=custodyfs unit test
DefaultDependencies=no
EOF
cat > "$W/system.conf" <<'EOF'
[Manager]
DefaultMemoryAccounting=no
DefaultTasksAccounting=no
DefaultIOAccounting=no
DefaultIPAccounting=no
DefaultCPUAccounting=no
DefaultBlockIOAccounting=no
EOF
# the store "team", its unit user "mount" (a writer), the passphrase file
cp "$STORE" "$W/lib/team.db"
pf mount 'mount-passphrase'
"$CUSTODYCTL" -s "$W/lib/team.db" -u admin -c "$CONF" --passfile "$PASSFILE" \
	user add mount --role writer --new-passfile "$T/mount.pass" >/dev/null
install -m 600 "$T/mount.pass" "$W/etc/team.pass"
cp "$W/lib/team.db" "$W/team-old.db"    # for the rollback below
printf 'CUSTODY_OPTIONS=-c %s\n' "$CONF" > "$W/etc/team.env"
chmod 644 "$CONF"

# ---- the cgroup of the test, under this process's memory cgroup ----
mem=$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup)
CG=${mem%/}/cfs-unit-$$
CREATED=()
for h in systemd unified devices memory pids; do
	[ -d "/sys/fs/cgroup/$h" ] || continue
	p=/sys/fs/cgroup/$h
	for part in $(tr '/' ' ' <<<"$CG"); do
		p=$p/$part
		[ -d "$p" ] || { mkdir "$p" && CREATED+=("$p"); }
	done
done
cg_cleanup() {
	local i d
	for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
		d=${CREATED[i]}
		# depth first: what systemd made below ours, then ours
		find "$d" -depth -mindepth 1 -type d -exec rmdir {} \; 2>/dev/null
		rmdir "$d" 2>/dev/null
	done
}

# ---- systemd, PID 1 of its own namespaces ----
cat > "$W/inner.sh" <<'EOF'
W=$1 CG=$2
t_ns_drop_fuse   # other tests' mounts: their daemons must see their unmounts
for h in systemd unified devices memory pids; do
	[ -d "/sys/fs/cgroup/$h$CG" ] && echo $$ > "/sys/fs/cgroup/$h$CG/cgroup.procs"
done
# as on a booted system, mounts propagate between the namespaces made
# from this one (systemd's credentials are mounted that way); these are
# copies, in peer groups of their own: nothing reaches the host
mount --make-rshared / || exit 1
mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /tmp || exit 1
for d in /usr/lib/systemd/system /usr/lib/systemd/system-generators \
         /etc/systemd/system /etc/systemd/system-generators /usr/local/lib/systemd/system; do
	[ -d "$d" ] && { mount --bind "$W/empty" "$d" || exit 1; }
done
mount --bind "$W/system.conf" /etc/systemd/system.conf || exit 1
mkdir -p /run/systemd/system && cp -r "$W/units/." /run/systemd/system/ || exit 1
exec env container=cfstest /lib/systemd/systemd --system --unit=cfstest.target \
	--log-target=console </dev/null >"$W/systemd.log" 2>&1
EOF
ns() { nsenter -t "$SPID" -m -p "$@"; }
stop_systemd() {
	if [[ $SPID =~ ^[0-9]+$ ]] && [ "$SPID" -gt 1 ]; then
		kill -9 "$SPID" 2>/dev/null
		for i in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
	fi
	cg_cleanup
}
# kill_main: SIGKILL the unit's main process. Its MainPID is a pid of
# systemd's namespace: the kill runs there, and only for a real pid
kill_main() {
	local p
	p=$(show team MainPID)
	[[ $p =~ ^[0-9]+$ ]] && [ "$p" -gt 1 ] || return 1
	ns kill -9 "$p"
}
SPID=""
trap 'stop_systemd; t_cleanup' EXIT
setsid unshare --fork --pid --mount --uts --ipc --mount-proc --propagation private \
	bash "$W/inner.sh" "$W" "$CG" </dev/null >/dev/null 2>&1 &
UPID=$!   # unshare (setsid execs it); its child becomes systemd
for i in $(seq 100); do
	SPID=$(pgrep -P "$UPID" -f "^/lib/systemd/systemd --system --unit=cfstest.target")
	[ -n "$SPID" ] && nsenter -t "$SPID" -m -p systemctl is-system-running >/dev/null 2>&1 && break
	sleep 0.1
done
state=$(ns systemctl is-system-running 2>/dev/null)
check "systemd runs in its namespaces ($state)" test "$state" = running
if [ "$state" != running ]; then t_log "$(tail -5 "$W/systemd.log")"; t_finish; exit; fi
show() { ns systemctl show -p "$2" --value "custodyfs@$1.service"; }
MNTW=$W/srv/team
in_ns_table() { ns grep -q " $MNTW fuse" /proc/self/mounts; }

# ---- start: returns once mounted (Type=notify) ----
ns timeout 60 systemctl start custodyfs@team.service; st=$?
expect_eq "systemctl start custodyfs@team: ok" 0 "$st"
[ "$st" = 0 ] || t_log "$(ns systemctl status custodyfs@team --no-pager 2>&1 | tail -15; tail -5 "$W/daemon.err")"
expect_eq "active (running)" "active running" "$(show team ActiveState) $(show team SubState)"
check "the mount is there when start returns" in_ns_table
check "it is visible outside the unit: written and read back from PID 1's namespace" \
	ns sh -c "echo hello > '$MNTW/x' && [ \"\$(cat '$MNTW/x')\" = hello ]"
check "findmnt shows the store as the source" \
	ns sh -c "findmnt -n -o SOURCE '$MNTW' | grep -qx '$W/lib/team.db'"
expect_eq "the status systemd shows is the daemon's" \
	"Mounted $W/lib/team.db on $MNTW as mount (read-write)" "$(show team StatusText)"

# ---- stop with a file open: the mount point is free at once ----
ns sh -c "exec 7>>'$MNTW/held'; echo one >&7; sleep 2; echo two >&7" &
holder=$!
sleep 0.5
ns timeout 60 systemctl stop custodyfs@team.service &
stopper=$!
sleep 0.8
check_not "stopping with a file open: the mount point is free at once" in_ns_table
check "stopping with a file open: the daemon still serves it" test "$(show team ActiveState)" = deactivating
wait "$stopper"
wait "$holder"; hst=$?
expect_eq "the holder's write after the stop went through" 0 "$hst"
expect_eq "inactive after the stop" inactive "$(show team ActiveState)"
ns timeout 60 systemctl start custodyfs@team.service
expect_eq "started again" active "$(show team ActiveState)"
expect_eq "what the holder wrote, before and after the stop, is there" "one two" \
	"$(ns cat "$MNTW/held" | paste -sd' ')"

# ---- a crash: ExecStopPost clears the dead mount, the unit restarts ----
pid=$(show team MainPID)
check "SIGKILL the daemon ($pid)" kill_main
for i in $(seq 100); do
	[ "$(show team NRestarts)" -ge 1 ] && [ "$(show team ActiveState)" = active ] && break
	sleep 0.1
done
expect_eq "after SIGKILL: restarted once" 1 "$(show team NRestarts)"
expect_eq "after SIGKILL: active again" active "$(show team ActiveState)"
check "after SIGKILL: a new daemon" test "$(show team MainPID)" != "$pid"
expect_eq "after SIGKILL: one mount (the dead one was cleared)" 1 \
	"$(ns grep -c " $MNTW fuse" /proc/self/mounts)"
check "after SIGKILL: the data is there" ns sh -c "[ \"\$(cat '$MNTW/x')\" = hello ]"
ns timeout 60 systemctl stop custodyfs@team.service

# ---- what is not restarted: authentication (3), rollback (4), a missing store ----
norestart() { # DESC EXIT
	ns timeout 60 systemctl start custodyfs@team.service >/dev/null 2>&1
	sleep 2.5   # beyond RestartSec
	expect_eq "$1: failed" failed "$(show team ActiveState)"
	expect_eq "$1: exit status $2" "$2" "$(show team ExecMainStatus)"
	expect_eq "$1: not restarted" 0 "$(show team NRestarts)"
	check_not "$1: nothing mounted" in_ns_table
	ns systemctl reset-failed custodyfs@team.service
}
ns systemctl reset-failed custodyfs@team.service 2>/dev/null
cp "$W/etc/team.pass" "$W/good.pass"
echo wrong > "$W/etc/team.pass"; chmod 600 "$W/etc/team.pass"
norestart "a wrong passphrase" 3
cp "$W/good.pass" "$W/etc/team.pass"
cp "$W/lib/team.db" "$W/newest.db"
cp "$W/team-old.db" "$W/lib/team.db"    # an older copy put in its place
rm -f "$W/lib/team.db-wal" "$W/lib/team.db-shm"
norestart "a rolled-back store" 4
cp "$W/newest.db" "$W/lib/team.db"
ns timeout 60 systemctl start custodyfs@nosuch.service >/dev/null 2>&1; st=$?
check "a missing store: systemctl start fails" test "$st" -ne 0
expect_eq "a missing store: the assertion failed" no "$(show nosuch AssertResult)"
check_not "a missing store: the daemon never ran" test "$(show nosuch ExecMainPID)" -gt 0
ns timeout 60 systemctl start custodyfs@team.service
expect_eq "the real store still starts" active "$(show team ActiveState)"
ns timeout 60 systemctl stop custodyfs@team.service
check_not "stopped" in_ns_table
t_finish
