#!/usr/bin/env bash
# custodyfs benchmark: the same workloads on custodyfs, gocryptfs, libfuse's
# passthrough_ll (the FUSE floor) and the bare disk, in one run, with each
# system's backing data on the same disk.  See tests/bench/README.md.
#
#   sudo tests/bench/run.sh                  # full run (15-20 min), or: make bench
#   sudo BENCH_QUICK=1 tests/bench/run.sh    # smoke test (a few minutes)
#
# Environment:
#   BENCH_QUICK=1          smaller sizes and shorter fio runs
#   BENCH_REPEAT=N         run every measurement N times, report medians (default 1)
#   BENCH_SYSTEMS="..."    subset/order of: custodyfs gocryptfs passthrough_ll bare custodyfs-v1
#   CFS_V1_BIN=DIR         custodyfs-v1: the directory of another build's custodyfs and custodyctl
#   CFS_BIN=DIR            custodyfs: binaries from DIR instead of this repository
#   BENCH_PHASES="..."     subset of: stream tree fio meta login (default all)
#   BENCH_TREE=K           source tree: full, mid (~5,000 files) or quick (default by mode)
#   BENCH_STREAM_MIB, BENCH_FIO_MIB, BENCH_META_N, BENCH_FIO_RUNTIME, BENCH_FIO_JOBS="1 4"
#                          override the mode's sizes
#   BENCH_DIR=DIR          parent of the backing volumes (default /var/tmp; must be a disk)
#   BENCH_CACHE=DIR        prepared source tree + passthrough_ll build (default /var/tmp/custodyfs-bench-cache)
#   BENCH_OUT=FILE.md      results file (default tests/bench/results.md; chart next to it as .png)
#   BENCH_PHASE_TIMEOUT=S  give up on one group of workloads after S seconds (default 900, quick 300)
#
# Exit status: 0 when every custodyfs measurement succeeded (or custodyfs was
# not selected), 1 otherwise; 2 for usage/environment errors.

set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/bench/lib.sh
source "$HERE/lib.sh"

# ------------------------------------------------------------ configuration ---

QUICK=${BENCH_QUICK:-0}
[[ $QUICK == 0 || -z $QUICK ]] && QUICK=0 || QUICK=1
REPEAT=${BENCH_REPEAT:-1}
read -r -a SYSTEMS <<<"${BENCH_SYSTEMS:-${ALL_SYSTEMS[*]}}"
read -r -a PHASES <<<"${BENCH_PHASES:-stream tree fio meta login}"
read -r -a FIO_JOBS <<<"${BENCH_FIO_JOBS:-1 4}"
BASE=${BENCH_DIR:-/var/tmp}
CACHE=${BENCH_CACHE:-/var/tmp/custodyfs-bench-cache}
OUT_MD=${BENCH_OUT:-$HERE/results.md}
OUT_PNG=${OUT_MD%.md}.png

if ((QUICK)); then
    MODE=quick STREAM_MIB=128 TREE_KIND=quick META_N=1000 FIO_MIB=64 FIO_RUNTIME=5
    PHASE_TIMEOUT=${BENCH_PHASE_TIMEOUT:-300}
else
    MODE=full STREAM_MIB=1024 TREE_KIND=full META_N=10000 FIO_MIB=256 FIO_RUNTIME=15
    PHASE_TIMEOUT=${BENCH_PHASE_TIMEOUT:-900}
fi
STREAM_MIB=${BENCH_STREAM_MIB:-$STREAM_MIB}
FIO_MIB=${BENCH_FIO_MIB:-$FIO_MIB}
META_N=${BENCH_META_N:-$META_N}
FIO_RUNTIME=${BENCH_FIO_RUNTIME:-$FIO_RUNTIME}
TREE_KIND=${BENCH_TREE:-$TREE_KIND}

# The source-tree workloads use a fixed subset of Debian's linux-source
# tarball: these directories plus the top-level files, in an uncompressed tar
# (members sorted by name) cached in $CACHE and copied to tmpfs for each run.
TREE_VERSION=v1
TREE_DIRS_full=(Documentation include kernel fs net mm lib block crypto security ipc init arch/x86)
TREE_DIRS_quick=(kernel lib mm block crypto security ipc init fs/ext4 fs/btrfs fs/fuse)
TREE_DIRS_mid=(kernel lib mm block crypto security ipc init fs net/ipv4 net/core drivers/usb)
TREE_KINDS=(full mid quick)

# Metrics in table order.  DIR: hi = higher is better, lo = lower is better.
METRICS=(stream_write stream_read stream_copy untar ls_lR md5sum rm_rf
    randread_1 randread_4 randwrite_1 randwrite_4 create stat unlink mount_time info_time peak_rss)
declare -A UNIT=(
    [stream_write]=MiB/s [stream_read]=MiB/s [stream_copy]=MiB/s [untar]=s [ls_lR]=s
    [md5sum]=s [rm_rf]=s [randread_1]=IOPS [randread_4]=IOPS [randwrite_1]=IOPS [randwrite_4]=IOPS
    [create]=ops/s [stat]=ops/s [unlink]=ops/s [mount_time]=s [info_time]=s [peak_rss]=MiB [unmount]="")
declare -A DIR=(
    [stream_write]=hi [stream_read]=hi [stream_copy]=hi [untar]=lo [ls_lR]=lo
    [md5sum]=lo [rm_rf]=lo
    [randread_1]=hi [randread_4]=hi [randwrite_1]=hi [randwrite_4]=hi
    [create]=hi [stat]=hi [unlink]=hi [mount_time]=lo [info_time]=lo [peak_rss]=lo)
declare -A SHORT=(
    [stream_write]="seq write" [stream_read]="seq read" [stream_copy]="cp in mount"
    [untar]="untar" [ls_lR]="ls -lR"
    [md5sum]="md5sum" [rm_rf]="rm -rf" [randread_1]="randread 1j" [randread_4]="randread 4j"
    [randwrite_1]="randwrite 1j" [randwrite_4]="randwrite 4j" [create]="create"
    [stat]="stat" [unlink]="unlink" [mount_time]="mount" [info_time]="info"
    [peak_rss]="peak RSS" [unmount]="unmount")

# Workload groups run as one unit each (a failure marks the group's metrics n/a).
ALL_PHASES=(stream tree fio meta login)
declare -A PHASE_METRICS=(
    [stream]="stream_write stream_read stream_copy"
    [tree]="untar ls_lR md5sum rm_rf"
    [fio]="$(for j in "${FIO_JOBS[@]}"; do printf 'randread_%s ' "$j"; done; for j in "${FIO_JOBS[@]}"; do printf 'randwrite_%s ' "$j"; done)"
    [meta]="create stat unlink"
    [login]="mount_time info_time")

# the metrics of the selected phases, in table order (peak RSS always)
active_metrics() {
    local m p
    for m in "${METRICS[@]}"; do
        [[ $m == peak_rss ]] && { echo "$m"; continue; }
        for p in "${PHASES[@]}"; do
            [[ " ${PHASE_METRICS[$p]} " == *" $m "* ]] && { echo "$m"; break; }
        done
    done
}

label() {
    local size_stream="$STREAM_MIB MiB"
    ((STREAM_MIB % 1024 == 0)) && size_stream="$((STREAM_MIB / 1024)) GiB"
    case $1 in
    stream_write) echo "streaming write, $size_stream in 128 KiB writes, then fsync" ;;
    stream_read) echo "streaming read of it after remount, 128 KiB reads" ;;
    stream_copy) echo "cp of it inside the mount after remount (copy_file_range where offered), then fsync" ;;
    untar) echo "untar source tree ($TREE_FILES files, $TREE_MIB MiB)" ;;
    ls_lR) echo "ls -lR of the tree after remount" ;;
    md5sum) echo "md5sum every file of the tree after remount" ;;
    rm_rf) echo "rm -rf of the tree after remount" ;;
    randread_1) echo "fio 4 KiB random read, $FIO_MIB MiB file, 1 job" ;;
    randread_4) echo "fio 4 KiB random read, $FIO_MIB MiB file, 4 jobs" ;;
    randwrite_1) echo "fio 4 KiB random write, $FIO_MIB MiB file, 1 job" ;;
    randwrite_4) echo "fio 4 KiB random write, $FIO_MIB MiB file, 4 jobs" ;;
    mount_time) echo "mount after drop_caches (login, verify, until mounted)" ;;
    info_time) echo "status command after drop_caches (custodyctl info: login + read)" ;;
    create) echo "create $META_N empty files" ;;
    stat) echo "stat $META_N files after remount" ;;
    unlink) echo "unlink $META_N files" ;;
    peak_rss) echo "daemon peak RSS (max VmHWM over the run)" ;;
    esac
}

# ---------------------------------------------------------------- results ---

# record METRIC VALUE [REASON [quiet]]: VALUE is a number, "n/a" or "-" (not applicable)
record() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$SYS" "$1" "$REP" "$2" "${3:-}" >>"$RESULTS"
    if [[ -n ${4:-} ]]; then
        :
    elif [[ $2 == n/a ]]; then
        say "   $SYS: ${SHORT[$1]}: n/a ($3)"
    elif [[ $2 != - ]]; then
        say "   $SYS: ${SHORT[$1]}: $(fmt "$1" "$2") ${UNIT[$1]}"
    fi
}

# has_result METRIC: already recorded for this system and repetition?
has_result() {
    awk -F'\t' -v s="$SYS" -v m="$1" -v r="$REP" \
        '$1 == s && $2 == m && $3 == r { f = 1 } END { exit !f }' "$RESULTS"
}

# mark_na "METRICS..." REASON: n/a for every listed metric not yet recorded
mark_na() {
    local m names=()
    for m in $1; do
        has_result "$m" && continue
        record "$m" n/a "$2" quiet
        names+=("${SHORT[$m]}")
    done
    ((${#names[@]} == 0)) || say "   $SYS: $(IFS=,; echo "${names[*]}" | sed 's/,/, /g'): n/a ($2)"
}

# ---------------------------------------------------------------- workloads ---
# Each runs on $MNT of the current system; times are wall clock.

wl_stream_write() {
    timeit dd if="$STREAM_SRC" of="$MNT/stream.bin" bs=128k count=$((STREAM_MIB * 8)) \
        conv=fsync status=none
    record stream_write "$(rate "$STREAM_MIB" "$SECS")"
}

wl_stream_read() {
    timeit dd if="$MNT/stream.bin" of=/dev/null bs=128k status=none
    cmp "$STREAM_SRC" "$MNT/stream.bin" || { echo "stream.bin read back differs from what was written" >&2; return 1; }
    record stream_read "$(rate "$STREAM_MIB" "$SECS")"
}

wl_stream_copy() {
    timeit sh -c 'cp "$1" "$2" && sync "$2"' cp "$MNT/stream.bin" "$MNT/stream.copy"
    cmp "$STREAM_SRC" "$MNT/stream.copy" || { echo "stream.copy differs from the source" >&2; return 1; }
    record stream_copy "$(rate "$STREAM_MIB" "$SECS")"
}

wl_untar() {
    timeit tar -xf "$TREE_TAR" -C "$MNT" --no-same-owner
    record untar "$SECS"
}

wl_ls_lR() {
    local lines
    timeit ls -lR "$MNT/linux" >"$SHM/ls.out"
    # ls -lR hides dot files, so expect the files with no dot component
    lines=$(grep -c '^-' "$SHM/ls.out" || true)
    ((lines == TREE_VISIBLE)) || { echo "ls -lR listed $lines regular files, expected $TREE_VISIBLE" >&2; return 1; }
    record ls_lR "$SECS"
}

md5_tree() ( cd "$MNT" && find linux -type f -print0 | xargs -0 md5sum >"$SHM/md5.out" )

wl_md5sum() {
    timeit md5_tree
    if ! LC_ALL=C sort "$SHM/md5.out" | cmp -s - "$TREE_MD5"; then
        echo "md5sum of the tree read back differs from the tar's contents" >&2
        return 1
    fi
    record md5sum "$SECS"
}

wl_rm_rf() {
    timeit rm -rf "$MNT/linux"
    [[ ! -e $MNT/linux ]] || { echo "tree still present after rm -rf" >&2; return 1; }
    record rm_rf "$SECS"
}

# fio_job NAME RW JOBS [extra fio options...]: prints IOPS
fio_job() {
    local name=$1 rw=$2 jobs=$3 out iops
    shift 3
    out=$SHM/fio-$SYS-$name.json
    fio --name="$name" --filename="$MNT/fio.dat" --size="${FIO_MIB}M" --rw="$rw" --bs=4k \
        --ioengine=psync --direct=0 --invalidate=1 --time_based --runtime="$FIO_RUNTIME" \
        --numjobs="$jobs" --group_reporting "$@" --output-format=json --output="$out" >&2
    iops=$(jq -r ".jobs[0].${rw#rand}.iops" "$out")
    awk -v x="$iops" 'BEGIN { exit !(x + 0 > 0) }' || { echo "fio $name: no IOPS in $out" >&2; return 1; }
    printf '%.0f\n' "$iops"
}

wl_fio_layout() {
    fio --name=layout --filename="$MNT/fio.dat" --size="${FIO_MIB}M" --rw=write --bs=1M \
        --ioengine=psync --direct=0 --end_fsync=1 --output-format=json \
        --output="$SHM/fio-$SYS-layout.json" >&2
}

wl_fio_randread() {  # JOBS
    local iops
    iops=$(fio_job "randread_$1" randread "$1")
    record "randread_$1" "$iops"
}

wl_fio_randwrite() {  # JOBS
    local iops
    iops=$(fio_job "randwrite_$1" randwrite "$1" --end_fsync=1)
    record "randwrite_$1" "$iops"
}

create_files() ( cd "$MNT/meta" && for ((i = 0; i < META_N; i++)); do : >"f$i"; done )
stat_files() ( cd "$MNT/meta" && for ((i = 0; i < META_N; i++)); do [[ -e f$i ]] || { echo "f$i missing" >&2; exit 1; }; done )
unlink_files() ( cd "$MNT/meta" && seq -f 'f%.0f' 0 $((META_N - 1)) | xargs rm -- )

wl_create() {
    mkdir "$MNT/meta"
    timeit create_files
    record create "$(rate "$META_N" "$SECS")"
}

wl_stat() {
    timeit stat_files
    record stat "$(rate "$META_N" "$SECS")"
}

wl_unlink() {
    timeit unlink_files
    rmdir "$MNT/meta"
    record unlink "$(rate "$META_N" "$SECS")"
}

# ------------------------------------------------------------------- phases ---
# A phase is a group of workloads with the remounts between them.  Each runs
# in a background subshell under `set -e`, watched by a timeout.

phase_start() {
    sys_setup
    sys_mount
}

phase_stream() {
    wl_stream_write
    sys_remount
    wl_stream_read
    sys_remount
    wl_stream_copy
    rm -f "$MNT/stream.bin" "$MNT/stream.copy"
}

phase_tree() {
    wl_untar
    sys_remount
    wl_ls_lR
    sys_remount
    wl_md5sum
    sys_remount
    wl_rm_rf
}

phase_fio() {
    local j
    wl_fio_layout
    for j in "${FIO_JOBS[@]}"; do
        sys_remount
        wl_fio_randread "$j"
    done
    for j in "${FIO_JOBS[@]}"; do
        sys_remount
        wl_fio_randwrite "$j"
    done
    rm -f "$MNT/fio.dat"
}

phase_meta() {
    wl_create
    sys_remount
    wl_stat
    wl_unlink
}

# the cost of a login: a cold mount of the store as the run left it (its
# history of commits and audit rows included), then the status command
wl_login() {
    [[ $SYS == bare ]] && { record mount_time -; record info_time -; return 0; }
    sys_unmount
    drop_caches
    timeit sys_mount
    record mount_time "$SECS"
    if declare -F "${SYS}_info" >/dev/null; then
        drop_caches
        timeit "${SYS}_info" >/dev/null
        record info_time "$SECS"
    else
        record info_time -
    fi
}

phase_login() {
    wl_login
}

phase_stop() {
    sys_unmount
}

# after a failed phase: get back to a freshly mounted volume
phase_recover() {
    [[ $SYS == bare ]] && return 0
    local pid
    pid=$("${SYS}_daemon_pid")
    sample_rss
    fuse_unmount "$MNT" || force_unmount "$MNT"
    if [[ -n $pid ]] && ! wait_gone "$pid" 30; then
        echo "killing $SYS daemon $pid: still running 30 s after unmount" >&2
        kill -9 "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || true
    fi
    drop_caches
    sys_mount
}

# run_phase NAME: sets PHASE_OK=1 on success, else PHASE_OK=0 and a one-line
# reason in PHASE_ERR.  It always returns 0 on purpose: bash ignores `set -e`
# in anything called from a condition (`if run_phase ...`), even in subshells.
run_phase() {
    local phase=$1 errf=$SYS_DIR/$1.err rc=0
    PHASE_OK=0 PHASE_ERR=''
    rm -f "$errf" "$errf.timeout"
    (
        set -euo pipefail
        "phase_$phase"
    ) >>"$LOG" 2>"$errf" </dev/null &
    PHASE_PID=$!
    (
        sleep "$PHASE_TIMEOUT"
        echo "timed out after ${PHASE_TIMEOUT} s" >"$errf.timeout"
        [[ $SYS == bare ]] || abort_fuse "$MNT"
        sleep 5
        kill_tree "$PHASE_PID"
    ) </dev/null >/dev/null 2>&1 &
    WATCHDOG_PID=$!
    wait "$PHASE_PID" || rc=$?
    kill_tree "$WATCHDOG_PID"
    wait "$WATCHDOG_PID" 2>/dev/null || true
    PHASE_PID='' WATCHDOG_PID=''
    [[ -s $errf ]] && sed "s/^/[$SYS $phase] /" "$errf" >>"$LOG"
    if ((rc == 0)); then
        PHASE_OK=1
        return 0
    fi
    if [[ -f $errf.timeout ]]; then
        PHASE_ERR=$(<"$errf.timeout")
    else
        PHASE_ERR=$(grep -v '^[[:space:]]*$' "$errf" | tail -n1 | sed "s|$MNT/||g" | cut -c1-200 || true)
        [[ -n $PHASE_ERR ]] || PHASE_ERR="exit status $rc"
    fi
    return 0
}

# run_system NAME REP: one fresh volume, all phases, unmount, peak RSS
run_system() {
    SYS=$1 REP=$2
    SYS_DIR=$WORK/$SYS-r$REP
    MNT=$SYS_DIR/mnt
    [[ $SYS == bare ]] && MNT=$SYS_DIR/backing
    mkdir -p "$SYS_DIR"
    say "== $SYS (run $REP of $REPEAT) in $SYS_DIR"

    if ! sys_check >"$SYS_DIR/check.err" 2>&1; then
        mark_na "${METRICS[*]}" "not available: $(tail -n1 "$SYS_DIR/check.err")"
        return 0
    fi
    run_phase start
    if ((!PHASE_OK)); then
        mark_na "${METRICS[*]}" "setup/mount failed: $PHASE_ERR"
        force_unmount "$MNT"
        return 0
    fi

    local phase i pid rss reason alive=1
    for ((i = 0; i < ${#PHASES[@]}; i++)); do
        phase=${PHASES[i]}
        if ((!alive)); then
            mark_na "${PHASE_METRICS[$phase]}" "skipped: volume could not be remounted after an earlier failure"
            continue
        fi
        if declare -F "${SYS}_phase_check" >/dev/null && ! reason=$("${SYS}_phase_check" "$phase" 2>&1); then
            mark_na "${PHASE_METRICS[$phase]}" "not run: $reason"
            continue
        fi
        run_phase "$phase"
        ((PHASE_OK)) && continue
        mark_na "${PHASE_METRICS[$phase]}" "$phase workloads failed: $PHASE_ERR"
        run_phase recover
        if ((!PHASE_OK)); then
            alive=0
            say "   $SYS: could not get a fresh mount: $PHASE_ERR"
        fi
    done

    if ((alive)); then
        run_phase stop
        if ((!PHASE_OK)); then
            # not a table row, but listed with the n/a entries (and fails the run for custodyfs)
            record unmount n/a "final unmount failed: $PHASE_ERR"
        fi
    fi
    force_unmount "$MNT"
    # a daemon of ours that outlived its unmount (hung): end it, by pid
    pid=$("${SYS}_daemon_pid")
    if [[ -n $pid ]] && ! wait_gone "$pid" 5; then
        say "   $SYS: daemon $pid still running after unmount; killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi

    rss=$(peak_rss_mib)
    if [[ $SYS == bare ]]; then
        record peak_rss -
    elif [[ -n $rss ]]; then
        record peak_rss "$rss"
    else
        mark_na peak_rss "no daemon RSS sample"
    fi

    if ! is_mounted "$MNT"; then
        rm -rf --one-file-system "$SYS_DIR"
    fi
}

# ------------------------------------------------------------ preparation ---

APT_UPDATED=0
apt_install() {
    (($#)) || return 0
    say "installing from Debian: $*"
    if ((!APT_UPDATED)); then
        apt-get update -qq >>"$LOG" 2>&1 || true
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        </dev/null >>"$LOG" 2>&1 && return 0
    # one by one, so that one unavailable package does not block the others
    local p rc=0
    for p in "$@"; do
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" \
            </dev/null >>"$LOG" 2>&1 || { say "   could not install $p"; rc=1; }
    done
    return $rc
}

tree_cached() {
    local k
    for k in "${TREE_KINDS[@]}"; do
        [[ -s $CACHE/linux-tree-$k-$TREE_VERSION.tar && -s $CACHE/linux-tree-$k-$TREE_VERSION.md5 &&
            -s $CACHE/linux-tree-$k-$TREE_VERSION.info ]] || return 1
    done
}

kernel_tarball() { ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n1; }

install_deps() {
    local need=() m
    command -v fio >/dev/null || need+=(fio)
    command -v jq >/dev/null || need+=(jq)
    command -v xz >/dev/null || need+=(xz-utils)
    command -v gocryptfs >/dev/null || need+=(gocryptfs)
    command -v fusermount3 >/dev/null || need+=(fuse3)
    command -v gcc >/dev/null || need+=(gcc)
    command -v pkg-config >/dev/null || need+=(pkg-config)
    pkg-config --exists fuse3 2>/dev/null || need+=(libfuse3-dev)
    [[ -e $PT_SRC_DIR/passthrough_ll.c || -e $PT_SRC_DIR/passthrough_ll.c.gz ]] || need+=(libfuse3-dev)
    tree_cached || [[ -n $(kernel_tarball) ]] || need+=(linux-source)
    local uniq=()
    ((${#need[@]} == 0)) || mapfile -t uniq < <(printf '%s\n' "${need[@]}" | awk '!s[$0]++')
    apt_install "${uniq[@]}" || true
    if ! command -v gnuplot >/dev/null; then
        apt_install gnuplot-nox || say "   gnuplot unavailable: no chart"
    fi
    for m in fio jq; do
        command -v "$m" >/dev/null || die "$m is required and could not be installed"
    done
}

# build_tree_cache: extract linux-source once, keep the two fixed subsets as
# uncompressed tars plus reference md5 lists in $CACHE.
build_tree_cache() {
    local src tmp top k d info
    local -a dl
    src=$(kernel_tarball)
    [[ -n $src ]] || die "no /usr/src/linux-source-*.tar.xz (apt-get install linux-source failed?)"
    say "preparing the source-tree subsets from $src (once; cached in $CACHE)"
    tmp=$(mktemp -d "$SHM/prep.XXXXXX")
    xz -dc "$src" | tar -x -C "$tmp" -f -
    top=$(cd "$tmp" && ls -d linux-source-* | head -n1)
    [[ -n $top ]] || die "unexpected layout in $src"
    for k in "${TREE_KINDS[@]}"; do
        local -n kdirs="TREE_DIRS_$k"
        dl=("${kdirs[@]}")
        unset -n kdirs
        rm -rf "${tmp:?}/$k"
        mkdir -p "$tmp/$k/linux"
        for d in "${dl[@]}"; do
            mkdir -p "$tmp/$k/linux/$(dirname "$d")"
            cp -a "$tmp/$top/$d" "$tmp/$k/linux/$d"
        done
        find "$tmp/$top" -maxdepth 1 -type f -exec cp -a -t "$tmp/$k/linux" {} +
        tar --sort=name --owner=0 --group=0 --numeric-owner -C "$tmp/$k" \
            -cf "$tmp/$k.tar" linux
        (cd "$tmp/$k" && find linux -type f -print0 | xargs -0 md5sum) |
            LC_ALL=C sort >"$tmp/$k.md5"
        info=$tmp/$k.info
        {
            echo "TREE_SRC=$(basename "$src")"
            echo "TREE_FILES=$(find "$tmp/$k/linux" -type f | wc -l)"
            echo "TREE_DIRCOUNT=$(find "$tmp/$k/linux" -type d | wc -l)"
            echo "TREE_SYMLINKS=$(find "$tmp/$k/linux" -type l | wc -l)"
            echo "TREE_BYTES=$(find "$tmp/$k/linux" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')"
        } >"$info"
        mkdir -p "$CACHE"
        for d in tar md5 info; do
            cp "$tmp/$k.$d" "$CACHE/linux-tree-$k-$TREE_VERSION.$d.tmp"
            mv "$CACHE/linux-tree-$k-$TREE_VERSION.$d.tmp" "$CACHE/linux-tree-$k-$TREE_VERSION.$d"
        done
    done
    rm -rf "$tmp"
}

prepare_inputs() {
    tree_cached || build_tree_cache
    local base=$CACHE/linux-tree-$TREE_KIND-$TREE_VERSION
    TREE_TAR=$SHM/tree.tar
    TREE_MD5=$SHM/tree.md5
    cp "$base.tar" "$TREE_TAR"
    cp "$base.md5" "$TREE_MD5"
    # shellcheck disable=SC1090
    source "$base.info"
    TREE_VISIBLE=$(awk '$0 !~ /\/\./' "$TREE_MD5" | wc -l)
    TREE_MIB=$(awk -v b="$TREE_BYTES" 'BEGIN { printf "%.0f", b / 1048576 }')
    local -n dirs="TREE_DIRS_$TREE_KIND"
    TREE_DESC="$TREE_SRC: top-level files + ${dirs[*]}"
    say "source tree: $TREE_FILES files, $TREE_DIRCOUNT dirs, $TREE_SYMLINKS symlinks, $TREE_MIB MiB ($TREE_DESC)"

    STREAM_SRC=$SHM/stream.src
    dd if=/dev/urandom of="$STREAM_SRC" bs=1M count="$STREAM_MIB" status=none
}

# a scratch dir on tmpfs for the tar, the stream source and outputs
make_shm() {
    if [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]]; then
        SHM=$(mktemp -d /dev/shm/custodyfs-bench.XXXXXX)
    else
        SHM=$WORK/tmpfs
        mkdir -p "$SHM"
        mount -t tmpfs -o size=4g custodyfs-bench "$SHM"
        SHM_MOUNTED=1
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [[ -n ${PHASE_PID:-} ]] && kill_tree "$PHASE_PID"
    [[ -n ${WATCHDOG_PID:-} ]] && kill_tree "$WATCHDOG_PID"
    unmount_all
    if [[ -n ${SHM:-} ]]; then
        if ((${SHM_MOUNTED:-0})); then
            umount "$SHM" 2>/dev/null || umount -l "$SHM"
        else
            rm -rf "$SHM"
        fi
    fi
    if [[ -n ${WORK:-} && -d $WORK ]]; then
        if awk -v w="$WORK/" 'index($5, w) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
            echo "bench: something is still mounted under $WORK; not removing it" >&2
        else
            rm -rf --one-file-system "$WORK"
        fi
    fi
    exit "$rc"
}

# ----------------------------------------------------------------- report ---

# agg SYS METRIC: median over repetitions (max for peak RSS), "n/a" or "-"
agg() {
    awk -F'\t' -v s="$1" -v m="$2" '
        $1 == s && $2 == m {
            if ($4 ~ /^[0-9.]+$/) v[++n] = $4 + 0
            else if ($4 == "n/a") na = 1
            else dash = 1
        }
        END {
            if (n == 0) { print (na ? "n/a" : (dash ? "-" : "")); exit }
            for (i = 2; i <= n; i++) {          # insertion sort (mawk has no asort)
                x = v[i]; j = i - 1
                while (j > 0 && v[j] > x) { v[j + 1] = v[j]; j-- }
                v[j + 1] = x
            }
            if (m == "peak_rss") print v[n]
            else if (n % 2) print v[(n + 1) / 2]
            else print (v[n / 2] + v[n / 2 + 1]) / 2
        }' "$RESULTS"
}

# agg_range SYS METRIC: "min–max" over the repetitions ("" with fewer than two)
agg_range() {
    local lo hi
    read -r lo hi < <(awk -F'\t' -v s="$1" -v m="$2" '
        $1 == s && $2 == m && $4 ~ /^[0-9.]+$/ { x = $4 + 0; if (!n++ || x < lo) lo = x; if (x > hi) hi = x }
        END { if (n > 1) print lo, hi }' "$RESULTS") || true
    [[ -n ${lo:-} ]] || return 0
    echo "$(fmt "$2" "$lo")–$(fmt "$2" "$hi")"
}

fmt() {  # METRIC VALUE
    local v=$2
    [[ $v =~ ^[0-9.]+$ ]] || { [[ $v == - ]] && echo "—" || echo "${v:-n/a}"; return; }
    case ${UNIT[$1]} in
    s) printf '%.2f' "$v" ;;
    IOPS | ops/s) printf '%.0f' "$v" ;;
    *) printf '%.1f' "$v" ;;
    esac
}

# ratio METRIC A B: A relative to B, oriented so that higher is better for A
ratio() {
    [[ $2 =~ ^[0-9.]+$ && $3 =~ ^[0-9.]+$ ]] || { echo "—"; return; }
    awk -v a="$2" -v b="$3" -v d="${DIR[$1]}" 'BEGIN {
        if (a <= 0 || b <= 0) { print "—"; exit }
        r = (d == "hi") ? a / b : b / a
        printf (r >= 0.1 ? "%.2f" : "%.2g"), r }'
}

selected() { [[ " ${SYSTEMS[*]} " == *" $1 "* ]]; }

write_report() {
    local m s v cus goc pt row sep cpu disk fuse_ver cus_ver cus_bin_ver v1_ver
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    disk=$(findmnt -n -o SOURCE,FSTYPE -T "$WORK" | awk '{ print $1 " (" $2 ")" }')
    fuse_ver=$(pkg-config --modversion fuse3 2>/dev/null || echo "?")
    cus_ver=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo "no commit yet")
    cus_bin_ver=$("${CFS_BIN:-$REPO}/custodyfs" -V 2>/dev/null | head -n1 || true)
    [[ -n $cus_bin_ver ]] || cus_bin_ver="custodyfs (not built)"
    {
        echo "# custodyfs benchmark results"
        echo
        echo "Generated by \`tests/bench/run.sh\` (see tests/bench/README.md); overwritten on each run."
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "- mode: **$MODE** (BENCH_QUICK=$QUICK); runs per measurement: **$REPEAT** (median shown; peak RSS is the maximum)"
        echo "- kernel: $(uname -r); CPU: ${cpu:-unknown}; nproc: $(nproc)"
        echo "- backing dir: $BASE on $disk, one fresh volume per system and run"
        echo "- source tree: $TREE_DESC — $TREE_FILES files, $TREE_SYMLINKS symlinks, $TREE_MIB MiB, as an uncompressed tar on tmpfs"
        echo "- fio: psync, 4 KiB blocks, --direct=0, --invalidate=1, time-based ${FIO_RUNTIME} s, file of $FIO_MIB MiB laid out and remounted first"
        v1_ver=''
        selected custodyfs-v1 &&
            v1_ver="; custodyfs-v1: $("${CFS_V1_BIN:-/nonexistent}/custodyfs" -V 2>/dev/null | head -n1 || echo '?') (git $(git -C "${CFS_V1_BIN:-/}" describe --always --dirty 2>/dev/null || echo '?'), $CFS_V1_BIN)"
        echo "- versions: $cus_bin_ver (git $cus_ver)$v1_ver; $(gocryptfs -version 2>/dev/null | cut -d';' -f1 || echo 'gocryptfs ?'); libfuse $fuse_ver (passthrough_ll -o writeback); $(fio --version 2>/dev/null)"
        echo "- ratio columns: higher is better for custodyfs (throughputs: custodyfs ÷ other; times and RSS: other ÷ custodyfs)"
        echo
        row="| workload | unit |"
        sep="|---|---|"
        for s in "${SYSTEMS[@]}"; do
            row+=" $s |"
            sep+="---:|"
        done
        local others=() o
        for o in custodyfs-v1 gocryptfs passthrough_ll; do
            selected "$o" && others+=("$o")
        done
        for o in "${others[@]}"; do
            case $o in
            custodyfs-v1) row+=" custodyfs vs custodyfs-v1 |" ;;
            gocryptfs) row+=" custodyfs vs gocryptfs |" ;;
            passthrough_ll) row+=" custodyfs vs FUSE floor (passthrough_ll) |" ;;
            esac
            sep+="---:|"
        done
        echo "$row"
        echo "$sep"
        local -a active
        mapfile -t active < <(active_metrics)
        for m in "${active[@]}"; do
            row="| $(label "$m") | ${UNIT[$m]} |"
            for s in "${SYSTEMS[@]}"; do
                v=$(agg "$s" "$m")
                row+=" $(fmt "$m" "$v") |"
            done
            cus=$(selected custodyfs && agg custodyfs "$m" || true)
            for o in "${others[@]}"; do
                v=$(selected "$o" && agg "$o" "$m" || true)
                row+=" $(ratio "$m" "$cus" "$v") |"
            done
            echo "$row"
        done
        echo
        if ((REPEAT > 1)); then
            echo "Spread (min–max over the $REPEAT runs):"
            echo
            row="| workload |"
            sep="|---|"
            for s in "${SYSTEMS[@]}"; do
                row+=" $s |"
                sep+="---:|"
            done
            echo "$row"
            echo "$sep"
            for m in "${active[@]}"; do
                [[ $m == peak_rss ]] && continue
                row="| ${SHORT[$m]} |"
                for s in "${SYSTEMS[@]}"; do
                    row+=" $(agg_range "$s" "$m") |"
                done
                echo "$row"
            done
            echo
        fi
        if awk -F'\t' '$4 == "n/a" { f = 1 } END { exit !f }' "$RESULTS"; then
            echo "## n/a entries"
            echo
            awk -F'\t' -v OFS='' '$4 == "n/a" {
                    key = $1 " (run " $3 "): " $5
                    if (!(key in seen)) { seen[key] = ++n; k[n] = key }
                    names[key] = names[key] (names[key] == "" ? "" : ", ") $2
                }
                END { for (i = 1; i <= n; i++) print "- ", k[i], " [", names[k[i]], "]" }' "$RESULTS" |
                sed 's/|/\\|/g'
            echo
        fi
        if [[ -f $OUT_PNG && $CHART_OK == 1 ]]; then
            echo "![chart: each system relative to passthrough_ll]($(basename "$OUT_PNG"))"
            echo
        fi
    } >"$OUT_MD"
}

# chart: each system relative to passthrough_ll (= 1), higher is better
write_chart() {
    CHART_OK=0
    command -v gnuplot >/dev/null || return 0
    selected passthrough_ll || return 0
    local data=$SHM/chart.dat m s v pt cols=() col=2 plot=""
    for s in "${SYSTEMS[@]}"; do
        [[ $s == passthrough_ll ]] || cols+=("$s")
    done
    for m in $(active_metrics); do
        [[ $m == peak_rss || $m == mount_time || $m == info_time ]] && continue
        pt=$(agg passthrough_ll "$m")
        printf '"%s"' "${SHORT[$m]}"
        for s in "${cols[@]}"; do
            v=$(ratio "$m" "$(agg "$s" "$m")" "$pt")
            [[ $v == — ]] && v=NaN
            printf '\t%s' "$v"
        done
        printf '\n'
    done >"$data"
    for s in "${cols[@]}"; do
        if [[ -z $plot ]]; then plot="'$data' using $col:xtic(1) title '$s'"; else plot+=", '' using $col title '$s'"; fi
        col=$((col + 1))
    done
    # y range: whole decades around the data and 1
    local ylo yhi
    read -r ylo yhi < <(awk -F'\t' '{ for (i = 2; i <= NF; i++) if ($i != "NaN" && $i > 0) { if (!n++ || $i < lo) lo = $i; if ($i > hi) hi = $i } }
        END { if (!n) { lo = 1; hi = 1 }; if (lo > 1) lo = 1; if (hi < 1) hi = 1
              printf "%g %g\n", 10 ^ int(log(lo) / log(10) - (lo < 1 ? 1 : 0)), 10 ^ (int(log(hi) / log(10)) + 1) }' "$data")
    plot+=", 1 with lines dt 2 lc rgb 'black' title 'passthrough_ll (FUSE floor) = 1'"
    if gnuplot <<EOF >>"$LOG" 2>&1; then
set terminal pngcairo size 1280,640 noenhanced font ",11"
set output '$OUT_PNG'
set title "custodyfs benchmark ($MODE mode, $REPEAT run(s), $(date -u +%Y-%m-%d)): relative to passthrough_ll, higher is better"
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [$ylo:$yhi]
set ylabel "relative to passthrough_ll (log scale)"
set grid ytics
set xtics rotate by -30
set key top right
plot $plot
EOF
        CHART_OK=1
    else
        say "gnuplot failed; no chart (see $LOG)"
    fi
}

# ------------------------------------------------------------------- main ---

main() {
    exec 3>&2
    ((EUID == 0)) || {
        echo "bench: must run as root (mounts FUSE filesystems, drops the page cache); try: sudo make bench" >&2
        exit 2
    }
    [[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_REPEAT must be a positive integer" >&2; exit 2; }
    local s
    for s in "${SYSTEMS[@]}"; do
        [[ " ${KNOWN_SYSTEMS[*]} " == *" $s "* ]] || { echo "bench: unknown system '$s' (known: ${KNOWN_SYSTEMS[*]})" >&2; exit 2; }
    done
    for s in "${PHASES[@]}"; do
        [[ " ${ALL_PHASES[*]} " == *" $s "* ]] || { echo "bench: unknown phase '$s' (known: ${ALL_PHASES[*]})" >&2; exit 2; }
    done
    [[ " ${TREE_KINDS[*]} " == *" $TREE_KIND "* ]] || { echo "bench: unknown tree '$TREE_KIND' (known: ${TREE_KINDS[*]})" >&2; exit 2; }
    mkdir -p "$BASE" "$CACHE"
    BASE=$(cd "$BASE" && pwd -P)
    case $(stat -f -c %T "$BASE") in
    tmpfs | ramfs) echo "bench: $BASE is on $(stat -f -c %T "$BASE"); set BENCH_DIR to a directory on a disk" >&2; exit 2 ;;
    esac
    LOG=$CACHE/last-run.log
    : >"$LOG"
    local t_start
    t_start=$(now)
    say "custodyfs bench, $MODE mode, $REPEAT run(s), systems: ${SYSTEMS[*]} (log: $LOG)"

    WORK=$(mktemp -d "$BASE/custodyfs-bench.XXXXXX")
    MOUNTS_FILE=$WORK/mounts
    RESULTS=$WORK/results.tsv
    : >"$MOUNTS_FILE"
    : >"$RESULTS"
    PHASE_PID='' WATCHDOG_PID='' SHM='' SHM_MOUNTED=0 CHART_OK=0
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    install_deps
    make_shm
    prepare_inputs

    local rep
    for ((rep = 1; rep <= REPEAT; rep++)); do
        for s in "${SYSTEMS[@]}"; do
            run_system "$s" "$rep"
        done
    done

    cp "$RESULTS" "$CACHE/last-results.tsv"
    rm -f "$OUT_PNG"
    write_chart
    write_report
    echo
    cat "$OUT_MD"
    say "done in $(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s; results in $OUT_MD$( ((CHART_OK)) && echo " and $OUT_PNG")"

    if selected custodyfs && awk -F'\t' '$1 == "custodyfs" && $4 == "n/a" { f = 1 } END { exit !f }' "$RESULTS"; then
        say "custodyfs had failures (see the n/a entries above)"
        exit 1
    fi
}

main "$@"
