# tests/lib.sh - shared helpers for the shell test scripts (sourced).
#
# Every test script: `. "$(dirname "$0")/../lib.sh"`, then uses
#   t_setup              fresh temp dir $T with passfile, low-cost config,
#                        a store $T/s.db (admin "admin") and mount point $T/mnt;
#                        registers cleanup (unmount + rm) on EXIT, even on failure
#   t_mount [ARGS...]    mount $T/s.db on $T/mnt as admin (extra args passed on);
#                        custodyfs's own exit status when it fails
#   t_umount             unmount and wait for the daemon to finish its commit
#   ok/fail/check/expect helpers that count and report
#   pf NAME PASSPHRASE   a 0600 passfile $T/NAME.pass
#   as USER ARGS...      custodyctl on the test store as USER ($T/USER.pass)
#   mount_as USER [PASSFILE [CONFIG]]  mount the test store on $MNT as USER
#   q SQL...             sqlite3 on the test store (the attacker's tool)
#   uid_of NAME          a user's id (credentials table)
#   stderr_has DESC RE   the last expect_status's stderr matches RE (grep -E -i)
# Cleanup unmounts what the test mounted and kills, by pid, the daemons it
# started (each mount records its daemon's pid from the store's mounts
# table), never by name pattern.
# Binaries come from $CFS_BIN (default: the repo top), so the same scripts run
# against the ASan build.

set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CFS_BIN=${CFS_BIN:-$TOP}
CUSTODYFS="$CFS_BIN/custodyfs"
CUSTODYCTL="$CFS_BIN/custodyctl"
T_PASS=0
T_FAIL=0
T_NAME=$(basename "$0" .sh)
T=""
T_MOUNTS=()
T_PIDS=()

t_log() { printf '  %s\n' "$*" >&2; }
ok()   { T_PASS=$((T_PASS + 1)); [ -n "${T_VERBOSE:-}" ] && printf '  ok   %s\n' "$*" >&2; return 0; }
fail() { T_FAIL=$((T_FAIL + 1)); printf '  FAIL %s: %s\n' "$T_NAME" "$*" >&2; return 0; }
# check DESCRIPTION COMMAND...: passes if the command succeeds
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else fail "$d"; fi; }
# check_not DESCRIPTION COMMAND...: passes if the command fails
check_not() { local d=$1; shift; if "$@" >/dev/null 2>&1; then fail "$d"; else ok "$d"; fi; }
# expect_eq DESCRIPTION EXPECTED ACTUAL
expect_eq() { if [ "$2" == "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi; }
# expect_status DESCRIPTION STATUS COMMAND...: exit status equals STATUS
expect_status() {
	local d=$1 want=$2; shift 2
	"$@" >/dev/null 2>"$T/.stderr"; local got=$?
	if [ "$got" == "$want" ]; then ok "$d"; else fail "$d: exit $got, want $want ($(head -c 300 "$T/.stderr"))"; fi
}
# errno_of COMMAND...: run a small C-less probe; prints the errno name via perl
t_errno() { perl -e '$!=0; my $r = eval { '"$1"' }; print $r ? "OK" : ($!+0 ? (0+$!) : "OK")'; }

t_cleanup() {
	local m p i
	for m in "${T_MOUNTS[@]}"; do
		# /proc/mounts, not mountpoint(1): a mount whose root gives EIO
		# (a revoked user's) must still be taken down
		if grep -q " $m fuse" /proc/mounts 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		fi
	done
	# the daemons this test started: give them a moment to commit and exit
	for p in "${T_PIDS[@]}"; do
		for i in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null
	done
	[ -n "$T" ] && rm -rf "$T"
}

# Remember the daemon serving mount point $1 (its pid from /proc: the
# newest custodyfs whose arguments end with it), for cleanup.
t_track() {
	local p
	p=$(pgrep -n -f -- "custodyfs.* ${1}\$" 2>/dev/null) && T_PIDS+=("$p")
	return 0
}

t_finish() {
	printf '%s: %d passed, %d failed\n' "$T_NAME" "$T_PASS" "$T_FAIL"
	[ "$T_FAIL" -eq 0 ]
}

# A fresh store. Variables: T, PASSFILE, CONF, STORE, MNT.
t_setup() {
	T=$(mktemp -d /var/tmp/cfs-test.XXXXXX)
	trap 't_cleanup' EXIT
	trap 'exit 130' INT TERM
	# rollback state (~/.local/state/custodyfs) stays inside the test dir
	export XDG_STATE_HOME=$T/state
	PASSFILE=$T/pass
	CONF=$T/test.ini
	STORE=$T/s.db
	MNT=$T/mnt
	mkdir -p "$MNT"
	printf 'admin-passphrase\n' > "$PASSFILE"
	chmod 600 "$PASSFILE"
	cat > "$CONF" <<CONF
[kdf]
opslimit = 1
memlimit = 8M
[mount]
idle_checkpoint = 1s
[auth]
max_failures = 3
lockout = 2s
CONF
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" init >/dev/null \
		|| { echo "$T_NAME: cannot create a store" >&2; exit 1; }
}

# ctl ARGS...: custodyctl on the test store as admin
ctl() { "$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" "$@"; }

# t_mount [EXTRA ARGS]: mount $STORE on $MNT as admin; when custodyfs
# fails, its own exit status (4 for a refused store, 3 for a failed login)
t_mount() {
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$@" "$STORE" "$MNT" || return $?
	T_MOUNTS+=("$MNT")
	t_track "$MNT"
	mountpoint -q "$MNT"
}

pf() { printf '%s\n' "$2" > "$T/$1.pass"; chmod 600 "$T/$1.pass"; }
as() { local u=$1; shift; "$CUSTODYCTL" -s "$STORE" -u "$u" -c "$CONF" --passfile "$T/$u.pass" "$@"; }
mount_as() {
	"$CUSTODYFS" -u "$1" -c "${3:-$CONF}" --passfile "${2:-$T/$1.pass}" "$STORE" "$MNT" || return $?
	T_MOUNTS+=("$MNT")
	t_track "$MNT"
	mountpoint -q "$MNT"
}
# an attacker's sqlite3 waits for the daemon's write lock like any writer
# A statement that fails (an attack whose SQL is wrong would test nothing)
# is a test failure, not a silent no-op.
q() {
	sqlite3 -cmd '.timeout 10000' "$STORE" "$@" || {
		fail "sqlite3 on the store failed: $(printf '%s' "$*" | head -c 160)"
		return 1
	}
}
uid_of() { sqlite3 "$STORE" "SELECT user_id FROM credentials WHERE name='$1'"; }
stderr_has() { if grep -qiE -- "$2" "$T/.stderr"; then ok "$1"; else fail "$1: stderr '$(head -c 300 "$T/.stderr")'"; fi; }

# pid of the daemon serving mount point $1 (default $MNT)
t_pid() { pgrep -n -f -- "${1:-$MNT}\$" ; }

# t_umount [MOUNTPOINT]: unmount and wait for the daemon's final commit
t_umount() {
	local m=${1:-$MNT} pid i
	pid=$(t_pid "$m")
	fusermount3 -u "$m" || return 1
	for i in $(seq 200); do
		[ -n "$pid" ] || return 0
		# gone, or a zombie waiting to be reaped: its work is done
		local st
		st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 0
		[ -z "$st" ] || [ "$st" = Z ] && return 0
		sleep 0.05
	done
	echo "daemon $pid did not exit after unmount" >&2
	return 1
}

# t_ns_drop_fuse: in a new mount namespace (unshare -m), drop its copies of
# the FUSE mounts it was made with. A copy keeps the mount's connection
# alive, so the daemon of another test (here or in another checkout)
# would not see its unmount until this namespace ends. Exported: call it
# first in the `bash -c` that unshare runs.
t_ns_drop_fuse() {
	local dev mnt fstype rest
	while read -r dev mnt fstype rest; do
		case $fstype in
		fuse | fuse.* | fuseblk) umount -l "$(printf '%b' "${mnt//\\/\\0}")" 2>/dev/null ;;
		esac
	done < /proc/self/mounts
	return 0
}
export -f t_ns_drop_fuse

# ---- attack suites: edited copies of one pristine store ----
# t_fresh: $STORE becomes a new copy of $PRISTINE (case N, counted in N),
# with a local state of its own (this host has never seen it)
t_fresh() {
	N=$((${N:-0} + 1))
	STORE=$T/case$N.db
	cp "$PRISTINE" "$STORE"
	export XDG_STATE_HOME=$T/state$N
}
# t_log_listener SOCKET FILE: a syslog stand-in (a datagram socket whose
# messages are appended to FILE, one a line) until the test ends; the
# witness tests point [audit] syslog_socket at it
t_log_listener() {
	python3 - "$1" "$2" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", 0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
PY
	LP=$!
	trap 'kill $LP 2>/dev/null; t_cleanup' EXIT
	local i
	for i in $(seq 50); do [ -S "$1" ] && break; sleep 0.1; done
}
# t_mnt_as USER [OPTIONS...]: mount $STORE on $MNT as USER (passfile
# $T/USER.pass); custodyfs's own exit status; a mount made is tracked
t_mnt_as() {
	local u=$1; shift
	"$CUSTODYFS" -u "$u" -c "$CONF" --passfile "$T/$u.pass" "$@" "$STORE" "$MNT"
	local st=$?
	if grep -q " $MNT fuse" /proc/mounts; then
		T_MOUNTS+=("$MNT")
		t_track "$MNT"
	fi
	return $st
}
# t_unmount_any: unmount $MNT if anything is mounted there
t_unmount_any() { if grep -q " $MNT fuse" /proc/mounts; then t_umount || fusermount3 -u "$MNT"; fi; }
# t_expect_out DESC STATUS COMMAND...: COMMAND's exit status must be
# STATUS; its stdout and stderr are kept in $T/.stderr
t_expect_out() {
	local d=$1 want=$2; shift 2
	"$@" >"$T/.stderr" 2>&1; local got=$?
	if [ "$got" == "$want" ]; then ok "$d"; else fail "$d: exit $got, want $want ($(head -c 300 "$T/.stderr"))"; fi
}
