# shellcheck shell=bash
# Helpers for tests/bench/run.sh: logging, timing, mount bookkeeping and one
# set of functions per benchmarked system.
#
# Every system NAME implements:
#   NAME_check              print why NAME cannot run and return 1, else return 0
#   NAME_setup              create a fresh, empty volume under $SYS_DIR
#   NAME_mount              mount it on $MNT (return once it is mounted)
#   NAME_unmount            unmount $MNT and wait until the daemon is gone
#   NAME_daemon_pid         print the pid of the daemon serving $MNT (may print nothing)
#   NAME_phase_check PHASE  (optional) print why PHASE cannot run on NAME here, return 1
#   NAME_info               (optional) the store's status command, timed as a login
#
# The generic wrappers sys_setup / sys_mount / sys_unmount / sys_remount work on
# the globals SYS (system name), SYS_DIR (its private dir) and MNT (where the
# workloads run).  Backing data always lives in $SYS_DIR/backing, i.e. on the
# disk that holds $WORK.

ALL_SYSTEMS=(custodyfs gocryptfs passthrough_ll bare)
# also known, selected only by name in BENCH_SYSTEMS: a second custodyfs build
KNOWN_SYSTEMS=("${ALL_SYSTEMS[@]}" custodyfs-v1)

# ---------------------------------------------------------------- logging ---

# Progress goes to fd 3 (the terminal's stderr, saved by run.sh) and the log.
say() {
    local msg
    msg="[$(date +%H:%M:%S)] $*"
    printf '%s\n' "$msg" >&3
    [[ -n ${LOG:-} ]] && printf '%s\n' "$msg" >>"$LOG"
    return 0
}

die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

# ----------------------------------------------------------------- timing ---

now() { date +%s.%N; }

# timeit CMD...: run CMD, leave wall-clock seconds in $SECS.
timeit() {
    local t0 t1
    t0=$(now)
    "$@"
    t1=$(now)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

# rate AMOUNT SECONDS -> AMOUNT/SECONDS
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 1e-9; printf "%.2f", n / s }'; }

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# ---------------------------------------------------------- disk counters ---

# disk_stat_file DIR: print the /sys stat file of the block device (whole
# disk or partition) holding DIR.  If there is none, print why and return 1.
disk_stat_file() {
    local src dev name majmin
    src=$(findmnt -n -o SOURCE -T "$1" 2>/dev/null | head -n1) || true
    src=${src%%\[*}                       # btrfs: /dev/sda2[/subvolume]
    if [[ $src == /dev/* ]]; then
        dev=$(readlink -f -- "$src")       # /dev/mapper/x -> /dev/dm-0
        name=${dev#/dev/}
        if [[ -n $name && -r /sys/class/block/$name/stat ]]; then
            echo "/sys/class/block/$name/stat"
            return 0
        fi
    fi
    # by device number (a SOURCE such as /dev/root that has no node)
    majmin=$(findmnt -n -o MAJ:MIN -T "$1" 2>/dev/null | head -n1 | tr -d ' ') || true
    if [[ -n $majmin && -r /sys/dev/block/$majmin/stat ]]; then
        echo "/sys/dev/block/$majmin/stat"
        return 0
    fi
    echo "no block device with a stat file behind $1 (findmnt SOURCE '${src:-?}', device ${majmin:-?})"
    return 1
}

# sectors_written STATFILE: field 7 of a block device's stat (512-byte units)
sectors_written() {
    local n
    n=$(awk '{ print $7 }' "$1")
    [[ $n =~ ^[0-9]+$ ]] || { echo "no sectors-written count in $1" >&2; return 1; }
    echo "$n"
}

# ---------------------------------------------------------- process control ---

# kill_tree PID: SIGTERM a process we started and all its descendants (by pid).
kill_tree() {
    local pid=$1 child
    [[ -n $pid ]] || return 0
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        kill_tree "$child"
    done
    kill "$pid" 2>/dev/null || true
}

# wait_gone PID SECONDS: wait for a process to exit.
wait_gone() {
    local pid=$1 limit=$2 i
    [[ -n $pid ]] || return 0
    for ((i = 0; i < limit * 20; i++)); do
        [[ -e /proc/$pid ]] || return 0
        sleep 0.05
    done
    return 1
}

# ------------------------------------------------------------------ mounts ---

# is_mounted DIR: is DIR a mount point?  Reads mountinfo only, so it neither
# blocks nor fails on a FUSE mount whose daemon hung or died.
is_mounted() {
    awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# wait_mounted DIR SECONDS
wait_mounted() {
    local dir=$1 limit=$2 i
    for ((i = 0; i < limit * 20; i++)); do
        is_mounted "$dir" && return 0
        sleep 0.05
    done
    return 1
}

register_mount() { echo "$1" >>"$MOUNTS_FILE"; }

# abort_fuse DIR: abort the FUSE connection behind DIR, so that processes
# blocked on a hung daemon get ENOTCONN instead of waiting forever.
abort_fuse() {
    local dev minor conn=/sys/fs/fuse/connections
    dev=$(awk -v m="$1" '$5 == m { d = $3 } END { print d }' /proc/self/mountinfo)
    [[ -n $dev ]] || return 0
    minor=${dev#*:}
    if [[ ! -e $conn/$minor ]] && ! awk '$9 == "fusectl" { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        mount -t fusectl fusectl "$conn" 2>/dev/null || true
    fi
    [[ -w $conn/$minor/abort ]] && echo 1 >"$conn/$minor/abort" 2>/dev/null
    return 0
}

# fuse_unmount DIR: polite unmount; returns 1 if DIR is busy.
fuse_unmount() {
    local dir=$1 i
    is_mounted "$dir" || return 0
    for i in 1 2 3; do
        fusermount3 -u "$dir" 2>/dev/null && return 0
        is_mounted "$dir" || return 0
        sleep 1
    done
    return 1
}

# force_unmount DIR: whatever it takes (used on failure and at exit).
force_unmount() {
    local dir=$1
    is_mounted "$dir" || return 0
    fusermount3 -u "$dir" 2>/dev/null && return 0
    abort_fuse "$dir"
    fusermount3 -u "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
}

# unmount_all: unmount everything this run mounted, newest first.
unmount_all() {
    local m
    [[ -f ${MOUNTS_FILE:-} ]] || return 0
    tac "$MOUNTS_FILE" | awk '!seen[$0]++' | while read -r m; do
        force_unmount "$m"
    done
}

# pid_serving NAME DIR: the newest process named NAME that has DIR as an
# argument (an older one may linger for a moment after an unmount).
pid_serving() {
    local name=$1 dir=$2 p start best='' best_start=-1
    for p in $(pgrep -x "$name" 2>/dev/null || true); do
        grep -qxF -- "$dir" < <(tr '\0' '\n' 2>/dev/null <"/proc/$p/cmdline") || continue
        # field 22 of /proc/PID/stat (the 20th after the ")" closing the name) is the start time
        start=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $20 }') || continue
        [[ -n $start ]] || continue
        if ((start > best_start)); then
            best=$p best_start=$start
        fi
    done
    echo "$best"
}

# sample_rss: append the daemon's VmHWM (kB) to $SYS_DIR/rss.  If no process
# has the mount point on its command line, fall back to the newest process
# named like the system (`pgrep -n -x`), and say so in the log.
sample_rss() {
    local pid hwm
    pid=$("${SYS}_daemon_pid")
    if [[ -z $pid ]]; then
        pid=$(pgrep -n -x "${SYS%-v1}" 2>/dev/null || true)
        [[ -n $pid ]] && echo "note: $SYS daemon for $MNT not found by command line; RSS of newest '$SYS' process $pid" >>"$LOG"
    fi
    [[ -n $pid && -r /proc/$pid/status ]] || return 0
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n $hwm ]] && echo "$hwm" >>"$SYS_DIR/rss"
    [[ -n $hwm ]] && echo "rss sample: $SYS pid $pid VmHWM ${hwm} kB ($(tr '\0' ' ' </proc/$pid/cmdline 2>/dev/null | cut -c1-80))" >>"$LOG"
    return 0
}

# generic unmount for FUSE systems: sample RSS, unmount, wait for the daemon.
fuse_sys_unmount() {
    local pid
    pid=$("${SYS}_daemon_pid")
    sample_rss
    if ! fuse_unmount "$MNT"; then
        echo "unmount of $MNT failed (busy?)" >&2
        return 1
    fi
    if ! wait_gone "$pid" 180; then
        echo "$SYS daemon (pid $pid) still running 180 s after unmount" >&2
        return 1
    fi
}

# ------------------------------------------------------- generic wrappers ---

sys_check()   { "${SYS}_check"; }
sys_setup()   { mkdir -p "$SYS_DIR/backing"; "${SYS}_setup"; }

sys_mount() {
    if [[ $SYS != bare ]]; then
        mkdir -p "$MNT"
        register_mount "$MNT"
    fi
    "${SYS}_mount"
}

sys_unmount() { "${SYS}_unmount"; }

# sys_remount: the cold-cache step between writing and reading.
sys_remount() {
    sys_unmount
    drop_caches
    sys_mount
}

# peak daemon RSS in MiB over all samples taken for this system so far
peak_rss_mib() {
    [[ -s $SYS_DIR/rss ]] || return 0
    awk '$1 > m { m = $1 } END { printf "%.1f", m / 1024 }' "$SYS_DIR/rss"
}

write_passfile() {
    printf 'bench-passphrase-%s\n' "$SYS" >"$SYS_DIR/pass"
    chmod 600 "$SYS_DIR/pass"
}

# --------------------------------------------------------------- custodyfs ---
# default configuration (auditing on), except a cheap KDF so mounts are fast.
# custodyfs-v1 is the same with the binaries of another build, for instance
# custodyfs 0.1 (store format 1): CFS_V1_BIN=DIR holds its custodyfs and
# custodyctl.  Each gets its own local state ($XDG_STATE_HOME) in $SYS_DIR.

CUSTODY_USER=bench

cfs_bin() { if [[ $SYS == custodyfs-v1 ]]; then echo "${CFS_V1_BIN:-}"; else echo "${CFS_BIN:-$REPO}"; fi; }

cfs_ctl() { XDG_STATE_HOME=$SYS_DIR/state "$(cfs_bin)/custodyctl" -s "$SYS_DIR/backing/store.db" \
    -u "$CUSTODY_USER" --passfile "$SYS_DIR/pass" -c "$SYS_DIR/config.ini" "$@"; }

custodyfs_check() {
    local bin
    bin=$(cfs_bin)
    if [[ $SYS == custodyfs-v1 && -z $bin ]]; then
        echo "CFS_V1_BIN is not set (the directory of the second build's custodyfs and custodyctl)"
        return 1
    fi
    if [[ ! -x $bin/custodyfs || ! -x $bin/custodyctl ]]; then
        echo "$bin/custodyfs or $bin/custodyctl not built (run make)"
        return 1
    fi
}

custodyfs_setup() {
    write_passfile
    # the default configuration (as shipped in etc/custodyfs.ini): an empty
    # file, so a config in /etc on the bench machine cannot change the run
    : >"$SYS_DIR/config.ini"
    cfs_ctl init
}

custodyfs_mount() {
    XDG_STATE_HOME=$SYS_DIR/state "$(cfs_bin)/custodyfs" -u "$CUSTODY_USER" --passfile "$SYS_DIR/pass" \
        -c "$SYS_DIR/config.ini" "$SYS_DIR/backing/store.db" "$MNT"
    wait_mounted "$MNT" 30 || { echo "$SYS did not mount $MNT within 30 s" >&2; return 1; }
}

custodyfs_unmount()    { fuse_sys_unmount; }
custodyfs_daemon_pid() { pid_serving custodyfs "$MNT"; }
custodyfs_info()       { cfs_ctl info; }

custodyfs-v1_check()      { custodyfs_check; }
custodyfs-v1_setup()      { custodyfs_setup; }
custodyfs-v1_mount()      { custodyfs_mount; }
custodyfs-v1_unmount()    { fuse_sys_unmount; }
custodyfs-v1_daemon_pid() { pid_serving custodyfs "$MNT"; }
custodyfs-v1_info()       { cfs_ctl info; }

# --------------------------------------------------------------- gocryptfs ---
# default options; non-interactive through -passfile.

gocryptfs_check() {
    command -v gocryptfs >/dev/null || { echo "gocryptfs not installed"; return 1; }
}

gocryptfs_setup() {
    write_passfile
    gocryptfs -init -q -passfile "$SYS_DIR/pass" "$SYS_DIR/backing"
}

gocryptfs_mount() {
    gocryptfs -q -passfile "$SYS_DIR/pass" "$SYS_DIR/backing" "$MNT"
    wait_mounted "$MNT" 30 || { echo "gocryptfs did not mount $MNT within 30 s" >&2; return 1; }
}

gocryptfs_unmount()    { fuse_sys_unmount; }
gocryptfs_daemon_pid() { pid_serving gocryptfs "$MNT"; }

# ---------------------------------------------------------- passthrough_ll ---
# libfuse's low-level passthrough example with -o writeback: the cost of FUSE
# alone.  Built from the libfuse3-dev example source into the cache dir (never
# into the repository).

PT_SRC_DIR=/usr/share/doc/libfuse3-dev/examples

pt_bin() { echo "$CACHE/build/passthrough_ll"; }

# pt_source: print the path of passthrough_ll.c.  If the doc dir was not
# installed (dpkg path-exclude in minimal images), take it from the .deb.
pt_source() {
    local src=$PT_SRC_DIR/passthrough_ll.c build=$CACHE/build deb
    if [[ -f $src ]]; then echo "$src"; return 0; fi
    if [[ -f $src.gz ]]; then
        zcat "$src.gz" >"$build/passthrough_ll.c"
        echo "$build/passthrough_ll.c"
        return 0
    fi
    [[ -f $build/deb$PT_SRC_DIR/passthrough_ll.c ]] || (
        cd "$build"
        apt-get download libfuse3-dev >/dev/null 2>&1 || exit 1
        deb=$(ls -t libfuse3-dev_*.deb | head -n1)
        mkdir -p deb
        dpkg-deb -x "$deb" deb
    ) || return 1
    echo "$build/deb$PT_SRC_DIR/passthrough_ll.c"
}

passthrough_ll_build() {
    local out src flags err
    out=$(pt_bin)
    mkdir -p "$CACHE/build"
    src=$(pt_source) || { echo "passthrough_ll.c not found (libfuse3-dev examples)"; return 1; }
    [[ -x $out && $out -nt $src ]] && return 0
    flags=$(pkg-config --cflags --libs fuse3 2>/dev/null) || { echo "pkg-config fuse3 failed (libfuse3-dev)"; return 1; }
    # shellcheck disable=SC2086
    if ! err=$(gcc -O2 -Wall -I"$(dirname "$src")" -o "$out.tmp" "$src" $flags 2>&1); then
        echo "building passthrough_ll failed: $(tail -n1 <<<"$err")"
        return 1
    fi
    mv "$out.tmp" "$out"
}

passthrough_ll_check() {
    command -v fusermount3 >/dev/null || { echo "fusermount3 missing (fuse3)"; return 1; }
    passthrough_ll_build
}

passthrough_ll_setup() { :; }

# max_nofile: the highest open-files limit a child can get here (raising the
# hard limit needs CAP_SYS_RESOURCE, which sandboxes often drop).
max_nofile() {
    if (ulimit -n 1048576) 2>/dev/null; then echo 1048576; else ulimit -Hn; fi
}

# passthrough_ll keeps an O_PATH fd open for every inode the kernel caches, so
# the tree workloads need about one descriptor per file and directory.
passthrough_ll_phase_check() {
    [[ $1 == tree ]] || return 0
    local need have
    need=$((TREE_FILES + TREE_DIRCOUNT + TREE_SYMLINKS + 100))
    have=$(max_nofile)
    if [[ $have != unlimited ]] && ((have < need)); then
        echo "passthrough_ll needs ~$need open fds for this tree (one per inode), but the open-files limit can only be raised to $have here (no CAP_SYS_RESOURCE)"
        return 1
    fi
}

passthrough_ll_mount() {
    # libfuse answers every read with a fresh page-aligned ~128 KiB buffer,
    # which glibc serves with mmap+munmap; on VMs where page faults are dear
    # that alone caps sequential reads (~100 MiB/s here).  Keep such buffers
    # on the heap so that the floor measures FUSE rather than malloc.
    # It also keeps an O_PATH fd open for every inode the kernel knows, so a
    # 20k-file tree needs more than the usual 1024 descriptors.
    (
        ulimit -n "$(max_nofile)"
        GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=67108864 \
            exec "$(pt_bin)" -o "source=$SYS_DIR/backing,writeback" "$MNT"
    )
    wait_mounted "$MNT" 30 || { echo "passthrough_ll did not mount $MNT within 30 s" >&2; return 1; }
}

passthrough_ll_unmount()    { fuse_sys_unmount; }
passthrough_ll_daemon_pid() { pid_serving passthrough_ll "$MNT"; }

# -------------------------------------------------------------------- bare ---
# the backing directory itself; "remount" is just sync + drop_caches.

bare_check()      { :; }
bare_setup()      { :; }
bare_mount()      { :; }
bare_unmount()    { :; }
bare_daemon_pid() { :; }
