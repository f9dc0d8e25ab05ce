#!/usr/bin/env bash
# The systemd unit (issue 20, item 4): Type=notify with readiness sent by
# hand over $NOTIFY_SOCKET (tested against a socket of our own: READY=1
# only once the mount is up, STOPPING=1 on SIGTERM, nothing for children),
# a non-admin store user by default, AssertPathExists, ExecStopPost
# clearing a dead mount, no restart on usage, authentication, tampering or
# rollback and role exits, hardening that keeps FUSE (no option that makes
# a mount namespace), `systemd-analyze verify` clean and
# `systemd-analyze security` under 5.
. "$(dirname "$0")/../lib.sh"
t_setup
UNIT=$TOP/etc/custodyfs@.service
command -v systemd-analyze >/dev/null || { fail "systemd-analyze is missing (Debian package systemd)"; t_finish; exit; }

# ---- what the unit says ----
key() { sed -n "s/^$1=//p" "$UNIT"; }
expect_eq "Type=notify" notify "$(key Type)"
expect_eq "NotifyAccess=main" main "$(key NotifyAccess)"
expect_eq "AssertPathExists= the store" "/var/lib/custodyfs/%i.db" "$(key AssertPathExists)"
check_not "no ConditionPathExists (a mistyped instance would succeed silently)" grep -q '^ConditionPathExists=' "$UNIT"
expect_eq "ExecStopPost clears a dead mount" "-/usr/bin/fusermount3 -uz /srv/custodyfs/%i" "$(key ExecStopPost)"
for st in 2 3 4 5; do
	check "RestartPreventExitStatus has $st" grep -qE "^RestartPreventExitStatus=(.* )?$st( |$)" "$UNIT"
done
check_not "RestartPreventExitStatus does not stop restarts on 1 (runtime) or 6 (busy)" \
	grep -qE "^RestartPreventExitStatus=.*\b(1|6)\b" "$UNIT"
expect_eq "Restart=on-failure" on-failure "$(key Restart)"
user=$(key Environment | sed -n 's/.*CUSTODY_USER=\([^ ]*\).*/\1/p')
check "a default store user is set ($user)" test -n "$user"
check_not "the default store user is not admin" test "$user" = admin
check "the unit's comments say to make it a writer or reader" grep -q "never an admin" "$UNIT"
check "the env file is NAME.env" grep -qx 'EnvironmentFile=-/etc/custodyfs/%i.env' "$UNIT"
check "the passphrase is a credential" grep -qx 'LoadCredential=passphrase:/etc/custodyfs/%i.pass' "$UNIT"
check "ExecStart runs in the foreground with the credential" \
	grep -q '^ExecStart=/usr/local/bin/custodyfs -f -u ${CUSTODY_USER}' "$UNIT"
# hardening that keeps FUSE: none of these (each makes a mount namespace,
# and the mount would be invisible outside it)
for o in PrivateTmp PrivateDevices PrivateMounts PrivateUsers PrivateIPC ProtectSystem \
         ProtectHome ProtectKernelTunables ProtectKernelModules ProtectKernelLogs \
         ProtectControlGroups ProtectProc ProcSubset ReadOnlyPaths InaccessiblePaths \
         ReadWritePaths TemporaryFileSystem BindPaths DynamicUser RootDirectory; do
	check_not "no $o= (it would hide the mount)" grep -q "^$o=" "$UNIT"
done
for o in "CapabilityBoundingSet=CAP_SYS_ADMIN" "NoNewPrivileges=yes" "DevicePolicy=closed" \
         "DeviceAllow=/dev/fuse rw" "PrivateNetwork=yes" "RestrictAddressFamilies=AF_UNIX" \
         "RestrictNamespaces=yes" "MemoryDenyWriteExecute=yes" "SystemCallArchitectures=native" \
         "SystemCallFilter=@system-service mount umount2" "RestrictSUIDSGID=yes" "LockPersonality=yes"; do
	check "hardening: $o" grep -qx "$o" "$UNIT"
done

# ---- systemd-analyze verify and security ----
mkdir -p "$T/man/man1" "$T/man/man5" "$T/man/man8" "$T/u"
ln -s "$TOP/etc/custodyfs.1" "$T/man/man1/"; ln -s "$TOP/etc/custodyfs.ini.5" "$T/man/man5/"
ln -s "$TOP/etc/custodyctl.8" "$T/man/man8/"
sed "s|/usr/local/bin/|$CFS_BIN/|" "$UNIT" > "$T/u/custodyfs@.service"
ln -s custodyfs@.service "$T/u/custodyfs@team.service"
MANPATH=$T/man: systemd-analyze verify "$T/u/custodyfs@team.service" > "$T/verify.out" 2>&1
expect_eq "systemd-analyze verify: no complaints" "" "$(cat "$T/verify.out")"
systemd-analyze security --offline=yes --no-pager "$T/u/custodyfs@team.service" > "$T/sec.out" 2>&1
score=$(sed -n 's/.*Overall exposure level for custodyfs@team.service: \([0-9.]*\).*/\1/p' "$T/sec.out")
t_log "systemd-analyze security: $score"
check "systemd-analyze security gives a score" test -n "$score"
check "the exposure is under 5 ($score)" awk -v s="${score:-99}" 'BEGIN {exit !(s < 5)}'
check "the README gives that score" grep -q "systemd-analyze security custodyfs@team.service\`: \*\*$score" "$TOP/README.md"
check "the unit's comment gives it" grep -q "systemd-analyze security: $score" "$UNIT"

# ---- readiness, by hand over $NOTIFY_SOCKET ----
# listen SOCK LOG: a datagram socket that writes each message it gets, with
# whether the mount was up when it came, to LOG
listen() {
	python3 - "$1" "$2" "$MNT" <<'PY' &
import os, socket, sys
path, log, mnt = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
s.settimeout(30)
with open(log, "w", buffering=1) as f:
    while True:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            break
        up = os.path.ismount(mnt)
        f.write("%s|mounted=%d\n" % (m.replace("\n", ";"), up))
        if "STOPPING=1" in m:
            break
PY
	LPID=$!
	T_PIDS+=("$LPID")
	# until it is bound (an abstract one shows in /proc/net/unix)
	for i in $(seq 100); do
		if [ "${1:0:1}" = @ ]; then grep -q " $1\$" /proc/net/unix && break
		elif [ -S "$1" ]; then break; fi
		sleep 0.05
	done
}
for sock in "$T/notify.sock" "@cfs-notify-$$"; do
	log=$T/notify.$RANDOM.log
	listen "$sock" "$log"
	NOTIFY_SOCKET=$sock "$CUSTODYFS" -f -u admin -c "$CONF" \
		--extpass "env > '$T/extpass.env'; cat '$PASSFILE'" "$STORE" "$MNT" 2>"$T/fg.err" &
	dpid=$!
	T_PIDS+=("$dpid"); T_MOUNTS+=("$MNT")
	for i in $(seq 100); do grep -q READY=1 "$log" 2>/dev/null && break; sleep 0.05; done
	check "$sock: READY=1 arrives" grep -q "READY=1" "$log"
	check "$sock: READY=1 only once the mount is up" grep -q "READY=1.*|mounted=1" "$log"
	check "$sock: the status line names the store and mount point" \
		grep -q "STATUS=Mounted $STORE on $MNT as admin (read-write)" "$log"
	check_not "$sock: --extpass does not inherit NOTIFY_SOCKET" grep -q NOTIFY_SOCKET "$T/extpass.env"
	kill -TERM "$dpid"
	wait "$dpid"; st=$?
	wait "$LPID" 2>/dev/null
	expect_eq "$sock: the daemon exits 0 on SIGTERM" 0 "$st"
	check "$sock: STOPPING=1 on SIGTERM, with a status" grep -q "STOPPING=1;STATUS=SIGTERM: unmounting" "$log"
	check_not "$sock: unmounted" mountpoint -q "$MNT"
done
# without NOTIFY_SOCKET nothing is sent, and a bad one is harmless
NOTIFY_SOCKET=$T/nobody-listens "$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT"
expect_eq "a NOTIFY_SOCKET nobody listens on: mounts all the same" 0 "$?"
T_MOUNTS+=("$MNT"); t_track "$MNT"
check "unmount" t_umount
# a failed start sends no READY=1 (systemd then sees the exit status)
log=$T/notify.fail.log
listen "$T/notify2.sock" "$log"
echo wrong > "$T/wrong.pass"; chmod 600 "$T/wrong.pass"
NOTIFY_SOCKET=$T/notify2.sock "$CUSTODYFS" -f -u admin -c "$CONF" --passfile "$T/wrong.pass" \
	"$STORE" "$MNT" 2>/dev/null
expect_eq "a wrong passphrase in the foreground: exit 3 (not restarted)" 3 "$?"
kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null
check_not "no READY=1 after a failed start" grep -q "READY=1" "$log"

# ---- the man page and README say the same ----
page() { MANWIDTH=200 man -l "$TOP/etc/$1" 2>/dev/null | col -b; }
page custodyfs.1 > "$T/fs.txt"
check "custodyfs(1): Type=notify" grep -q "Type=notify" "$T/fs.txt"
check "custodyfs(1): the default store user mount" grep -q "as the store user mount" "$T/fs.txt"
check "custodyfs(1): NAME.env, CUSTODY_USER, CUSTODY_OPTIONS" \
	sh -c "grep -q '/etc/custodyfs/NAME.env' '$T/fs.txt' && grep -q 'CUSTODY_USER=' '$T/fs.txt' && grep -q 'CUSTODY_OPTIONS=' '$T/fs.txt'"
check_not "custodyfs(1): no NAME.user" grep -q "NAME.user" "$T/fs.txt"
check "README: the unit section" grep -q "^### Running it as a service" "$TOP/README.md"
t_finish
