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
#   BENCH_PHASES="..."     subset of: stream tree fio meta apps login (default all)
#   BENCH_TREE=K           source tree: full, mid (~5,000 files) or quick (default by mode)
#   BENCH_STREAM_MIB, BENCH_FIO_MIB, BENCH_META_N, BENCH_FIO_RUNTIME, BENCH_FIO_JOBS="1 4",
#   BENCH_WA_MIB, BENCH_SQLITE_ROWS, BENCH_RM_N
#                          override the mode's sizes
#   BENCH_DIR=DIR          parent of the backing volumes (default /var/tmp; must be a disk)
#   BENCH_CACHE=DIR        prepared source tree + passthrough_ll build (default /var/tmp/custodyfs-bench-cache)
#   BENCH_OUT=FILE.md      results file (default tests/bench/results.md; chart next to it as .png)
#   BENCH_PHASE_TIMEOUT=S  give up on one group of workloads after S seconds (default 900, quick 300)
#   BENCH_REPORT_FROM=TSV  run nothing: write the results file (and chart) from a results.tsv
#                          of an earlier run with the same settings (each run keeps its own as
#                          $BENCH_CACHE/last-results.tsv); the date shown is the TSV's
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
read -r -a PHASES <<<"${BENCH_PHASES:-stream tree fio meta apps login}"
read -r -a FIO_JOBS <<<"${BENCH_FIO_JOBS:-1 4}"
BASE=${BENCH_DIR:-/var/tmp}
CACHE=${BENCH_CACHE:-/var/tmp/custodyfs-bench-cache}
OUT_MD=${BENCH_OUT:-$HERE/results.md}
OUT_PNG=${OUT_MD%.md}.png

if ((QUICK)); then
    MODE=quick STREAM_MIB=128 TREE_KIND=quick META_N=1000 FIO_MIB=64 FIO_RUNTIME=5
    WA_MIB=4 SQLITE_ROWS=10000 RM_N=1000
    PHASE_TIMEOUT=${BENCH_PHASE_TIMEOUT:-300}
else
    MODE=full STREAM_MIB=1024 TREE_KIND=full META_N=10000 FIO_MIB=256 FIO_RUNTIME=15
    WA_MIB=16 SQLITE_ROWS=100000 RM_N=5000
    PHASE_TIMEOUT=${BENCH_PHASE_TIMEOUT:-900}
fi
STREAM_MIB=${BENCH_STREAM_MIB:-$STREAM_MIB}
FIO_MIB=${BENCH_FIO_MIB:-$FIO_MIB}
META_N=${BENCH_META_N:-$META_N}
FIO_RUNTIME=${BENCH_FIO_RUNTIME:-$FIO_RUNTIME}
TREE_KIND=${BENCH_TREE:-$TREE_KIND}
WA_MIB=${BENCH_WA_MIB:-$WA_MIB}
SQLITE_ROWS=${BENCH_SQLITE_ROWS:-$SQLITE_ROWS}
RM_N=${BENCH_RM_N:-$RM_N}

# The source-tree workloads use a fixed subset of Debian's linux-source
# tarball: these directories plus the top-level files, in an uncompressed tar
# (members sorted by name) cached in $CACHE and copied to tmpfs for each run.
TREE_VERSION=v2
# full: 33,857 files, 419 MiB with Linux 6.1 (v1 was the first 13 directories:
# 22,017 files, 192 MiB, smaller than the 29,884-file / 409 MiB tree of issue 16)
TREE_DIRS_full=(Documentation include kernel fs net mm lib block crypto security ipc init arch/x86
    drivers/net drivers/media drivers/scsi sound)
TREE_DIRS_quick=(kernel lib mm block crypto security ipc init fs/ext4 fs/btrfs fs/fuse)
TREE_DIRS_mid=(kernel lib mm block crypto security ipc init fs net/ipv4 net/core drivers/usb)
TREE_KINDS=(full mid quick)
# The git workloads clone a local bare repository made once from the quick
# tree (one commit, fixed author and dates), cached next to the tars.
GIT_VERSION=v1
GIT_KIND=quick
GIT_DATE='2024-01-01T00:00:00Z'

# Metrics in table order.  DIR: hi = higher is better, lo = lower is better.
METRICS=(stream_write stream_read stream_copy untar ls_lR md5sum rm_rf
    randread_1 randread_4 randwrite_1 randwrite_4 wa_randwrite create stat unlink
    sqlite_delete sqlite_wal rm_fresh git_clone git_status mount_time info_time peak_rss)
declare -A UNIT=(
    [stream_write]=MiB/s [stream_read]=MiB/s [stream_copy]=MiB/s [untar]=s [ls_lR]=s
    [md5sum]=s [rm_rf]=s [randread_1]=IOPS [randread_4]=IOPS [randwrite_1]=IOPS [randwrite_4]=IOPS
    [wa_randwrite]=B/B [create]=ops/s [stat]=ops/s [unlink]=ops/s
    [sqlite_delete]=s [sqlite_wal]=s [rm_fresh]=files/s [git_clone]=s [git_status]=s
    [mount_time]=s [info_time]=s [peak_rss]=MiB [unmount]="")
declare -A DIR=(
    [stream_write]=hi [stream_read]=hi [stream_copy]=hi [untar]=lo [ls_lR]=lo
    [md5sum]=lo [rm_rf]=lo
    [randread_1]=hi [randread_4]=hi [randwrite_1]=hi [randwrite_4]=hi [wa_randwrite]=lo
    [create]=hi [stat]=hi [unlink]=hi
    [sqlite_delete]=lo [sqlite_wal]=lo [rm_fresh]=hi [git_clone]=lo [git_status]=lo
    [mount_time]=lo [info_time]=lo [peak_rss]=lo)
declare -A SHORT=(
    [stream_write]="seq write" [stream_read]="seq read" [stream_copy]="cp in mount"
    [untar]="untar" [ls_lR]="ls -lR"
    [md5sum]="md5sum" [rm_rf]="rm -rf" [randread_1]="randread 1j" [randread_4]="randread 4j"
    [randwrite_1]="randwrite 1j" [randwrite_4]="randwrite 4j" [wa_randwrite]="write amp." [create]="create"
    [stat]="stat" [unlink]="unlink" [sqlite_delete]="sqlite DELETE" [sqlite_wal]="sqlite WAL"
    [rm_fresh]="rm -rf fresh" [git_clone]="git clone" [git_status]="git status"
    [mount_time]="mount" [info_time]="info"
    [peak_rss]="peak RSS" [unmount]="unmount")

# Workload groups run as one unit each (a failure marks the group's metrics n/a).
ALL_PHASES=(stream tree fio meta apps login)
declare -A PHASE_METRICS=(
    [stream]="stream_write stream_read stream_copy"
    [tree]="untar ls_lR md5sum rm_rf"
    [fio]="$(for j in "${FIO_JOBS[@]}"; do printf 'randread_%s ' "$j"; done; for j in "${FIO_JOBS[@]}"; do printf 'randwrite_%s ' "$j"; done) wa_randwrite"
    [meta]="create stat unlink"
    [apps]="sqlite_delete sqlite_wal rm_fresh git_clone git_status"
    [login]="mount_time info_time")
# A phase whose workloads do not depend on each other runs them as separate
# steps (phase_PHASE_STEP): a failing step marks only its own metrics n/a and
# gets a fresh mount, and the next step still runs.
declare -A PHASE_STEPS=([apps]="sqlite_delete sqlite_wal rm_fresh git")
declare -A STEP_METRICS=(
    [apps_sqlite_delete]=sqlite_delete [apps_sqlite_wal]=sqlite_wal [apps_rm_fresh]=rm_fresh
    [apps_git]="git_clone git_status")

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
    wa_randwrite) echo "bytes the disk took per byte written by 4 KiB random writes, including the unmount ($WA_MIB MiB into the $FIO_MIB MiB file, end_fsync)" ;;
    mount_time) echo "mount after drop_caches (login, verify, until mounted)" ;;
    info_time) echo "status command after drop_caches (custodyctl info: login + read)" ;;
    create) echo "create $META_N empty files" ;;
    stat) echo "stat $META_N files after remount" ;;
    unlink) echo "unlink $META_N files" ;;
    sqlite_delete) echo "sqlite3: $SQLITE_ROWS rows (random indexed key, 100 B text) in 10 transactions, then update 10 % and delete 10 % in one; journal_mode=DELETE, synchronous=FULL" ;;
    sqlite_wal) echo "the same with journal_mode=WAL" ;;
    rm_fresh) echo "rm -rf of a directory of $RM_N empty files just created (no remount)" ;;
    git_clone) echo "git clone (file://) of a ${GIT_FILES:-?}-file repository, one commit" ;;
    git_status) echo "git status of the clone after remount (output checked empty)" ;;
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

# wa_randwrite: the disk's sectors-written counter around a fixed amount of
# 4 KiB random writes into the laid-out fio.dat, from a fresh mount up to the
# end of the unmount (the daemon's own write-back, journal or WAL folding
# included), each end after a sync.  Anything else writing to that disk in
# the meantime is counted too: one idle second just before shows whether the
# disk is quiet (a warning if not).
wl_wa_randwrite() {
    local st idle before after out bytes want=$((WA_MIB * 1048576))
    if ! st=$(disk_stat_file "$SYS_DIR/backing"); then
        record wa_randwrite n/a "$st"
        return 0
    fi
    out=$SHM/fio-$SYS-wa.json
    sys_remount
    sync
    idle=$(sectors_written "$st")
    sleep 1
    before=$(sectors_written "$st")
    idle=$(((before - idle) * 512))
    fio --name=wa_randwrite --filename="$MNT/fio.dat" --size="${FIO_MIB}M" --io_size="${WA_MIB}M" \
        --rw=randwrite --bs=4k --ioengine=psync --direct=0 --end_fsync=1 \
        --output-format=json --output="$out" >&2
    sys_unmount
    sync
    after=$(sectors_written "$st")
    sys_mount
    bytes=$(jq -r '.jobs[0].write.io_bytes' "$out")
    [[ $bytes == "$want" ]] || { echo "fio wa_randwrite wrote ${bytes:-?} bytes, expected $want" >&2; return 1; }
    ((after >= before)) || { echo "sectors-written counter of $st went backwards ($before -> $after)" >&2; return 1; }
    echo "wa_randwrite: $st sectors written $before -> $after for $bytes bytes; $idle bytes by others in the idle second before" >>"$LOG"
    ((idle <= 262144)) ||
        say "   $SYS: write amp.: the disk was not quiet ($((idle / 1024)) KiB written by others in the second before); the value counts their writes too"
    record wa_randwrite "$(awk -v d=$((after - before)) -v b="$bytes" 'BEGIN { printf "%.2f", d * 512 / b }')"
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

need_cmd() { command -v "$1" >/dev/null || { echo "$1 is not installed" >&2; return 1; }; }

# sqlite_script MODE: the whole database workload as one sqlite3 session:
# SQLITE_ROWS rows in ten transactions (the indexed column random, so index
# pages are written all over the file), then one transaction that updates
# ~10 % of the rows and deletes ~10 %.  synchronous stays at its default
# (FULL): every commit fsyncs.
sqlite_script() {
    local i per=$((SQLITE_ROWS / 10))
    echo "PRAGMA journal_mode=$1;"
    echo "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL);"
    echo "CREATE INDEX t_k ON t(k);"
    for ((i = 0; i < 10; i++)); do
        echo "BEGIN;"
        echo "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $per)"
        echo "  INSERT INTO t(k, v) SELECT random(), hex(randomblob(50)) FROM c;"
        echo "COMMIT;"
    done
    echo "BEGIN;"
    echo "UPDATE t SET k = random(), v = hex(randomblob(50)) WHERE id % 10 = 1;"
    echo "DELETE FROM t WHERE id % 10 = 2;"
    echo "COMMIT;"
}

# wl_sqlite MODE METRIC: time the sqlite3 run, then check the database
wl_sqlite() {
    local mode=$1 metric=$2 db=$MNT/bench.db sql=$SHM/sqlite-$1.sql out check want
    need_cmd sqlite3
    sqlite_script "$mode" >"$sql"
    timeit sqlite3 -bail "$db" <"$sql" >"$SHM/sqlite-$mode.out"
    out=$(head -n1 "$SHM/sqlite-$mode.out")
    [[ ${out,,} == "${mode,,}" ]] || { echo "sqlite3: journal_mode is '$out', expected ${mode,,}" >&2; return 1; }
    # ids 1..N, the delete took every id = 2 (mod 10)
    want=$((SQLITE_ROWS - (SQLITE_ROWS + 8) / 10))
    check=$(sqlite3 -bail "$db" 'PRAGMA integrity_check; SELECT count(*) FROM t;' | paste -sd ' ')
    [[ $check == "ok $want" ]] || { echo "sqlite3 after the $mode run: integrity_check/count gave '$check', expected 'ok $want'" >&2; return 1; }
    rm -f "$db" "$db-journal" "$db-wal" "$db-shm"
    record "$metric" "$SECS"
}

wl_rm_fresh() {
    local d=$MNT/rmfresh
    mkdir "$d"
    (cd "$d" && for ((i = 0; i < RM_N; i++)); do : >"f$i"; done)
    timeit rm -rf "$d"
    [[ ! -e $d ]] || { echo "rmfresh still present after rm -rf" >&2; return 1; }
    record rm_fresh "$(rate "$RM_N" "$SECS")"
}

# bgit ARGS: git with a private, fixed configuration (no system or user
# config; safe.directory=* because the mounts' files need not be root's)
bgit() {
    HOME=$GIT_HOME XDG_CONFIG_HOME=$GIT_HOME/.config GIT_CONFIG_NOSYSTEM=1 \
        GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_AUTHOR_DATE=$GIT_DATE \
        GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost GIT_COMMITTER_DATE=$GIT_DATE \
        git -c safe.directory='*' "$@"
}

wl_git_clone() {
    need_cmd git
    timeit bgit clone --no-hardlinks -q "file://$GIT_REPO" "$MNT/clone"
    record git_clone "$SECS"
}

wl_git_status() {
    local head
    timeit bgit -C "$MNT/clone" status --porcelain >"$SHM/git-status.out"
    [[ ! -s $SHM/git-status.out ]] || { echo "git status of the clone is not clean: $(head -n1 "$SHM/git-status.out")" >&2; return 1; }
    head=$(bgit -C "$MNT/clone" rev-parse HEAD)
    [[ $head == "$GIT_HEAD" ]] || { echo "clone's HEAD is $head, expected $GIT_HEAD" >&2; return 1; }
    record git_status "$SECS"
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
    wl_wa_randwrite
    rm -f "$MNT/fio.dat"
}

phase_meta() {
    wl_create
    sys_remount
    wl_stat
    wl_unlink
}

# apps: run as the steps of PHASE_STEPS[apps]
phase_apps_sqlite_delete() { wl_sqlite DELETE sqlite_delete; }
phase_apps_sqlite_wal()    { wl_sqlite WAL sqlite_wal; }
phase_apps_rm_fresh()      { wl_rm_fresh; }

phase_apps_git() {
    wl_git_clone
    sys_remount
    wl_git_status
    rm -rf "$MNT/clone"
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

    local phase unit metrics i pid rss reason alive=1
    local -a units
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
        units=("$phase")
        if [[ -n ${PHASE_STEPS[$phase]:-} ]]; then
            read -r -a units <<<"${PHASE_STEPS[$phase]}"
            units=("${units[@]/#/${phase}_}")
        fi
        for unit in "${units[@]}"; do
            metrics=${STEP_METRICS[$unit]:-${PHASE_METRICS[$phase]}}
            if ((!alive)); then
                mark_na "$metrics" "skipped: volume could not be remounted after an earlier failure"
                continue
            fi
            run_phase "$unit"
            ((PHASE_OK)) && continue
            mark_na "$metrics" "$phase workloads failed: $PHASE_ERR"
            run_phase recover
            if ((!PHASE_OK)); then
                alive=0
                say "   $SYS: could not get a fresh mount: $PHASE_ERR"
            fi
        done
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
    command -v sqlite3 >/dev/null || need+=(sqlite3)
    command -v git >/dev/null || need+=(git)
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

# build_git_cache: a bare repository of the $GIT_KIND tree, one commit with
# fixed names and dates (so the same commit id every time), packed; built in
# a temporary directory and renamed into place, so that $GIT_REPO only ever
# exists complete.
build_git_cache() {
    local tmp new
    say "preparing the git repository from the $GIT_KIND tree (once; cached in $CACHE)"
    tmp=$(mktemp -d "$SHM/gitprep.XXXXXX")
    tar -xf "$CACHE/linux-tree-$GIT_KIND-$TREE_VERSION.tar" -C "$tmp"
    bgit init -q -b main "$tmp/linux"
    bgit -C "$tmp/linux" add -A -f .
    bgit -C "$tmp/linux" commit -q -m "linux $GIT_KIND tree ($TREE_VERSION)"
    new=$(mktemp -d "$CACHE/.git-$GIT_KIND.XXXXXX")
    bgit clone -q --bare --no-hardlinks "$tmp/linux" "$new"
    bgit --git-dir="$new" repack -a -d -q
    bgit --git-dir="$new" prune
    chmod 755 "$new"
    rm -rf "$tmp"
    mv -T "$new" "$GIT_REPO" 2>/dev/null || rm -rf "$new"  # another run was quicker
}

# the inputs of the apps phase: a private git configuration and the repository
prepare_apps() {
    GIT_HOME=$SHM/git-home
    mkdir -p "$GIT_HOME"
    printf '[safe]\n\tdirectory = *\n' >"$GIT_HOME/.gitconfig"
    GIT_REPO=$CACHE/git-$GIT_KIND-$TREE_VERSION-$GIT_VERSION.git
    GIT_HEAD='' GIT_FILES=''
    command -v git >/dev/null || { say "   git missing: the git rows will be n/a"; return 0; }
    [[ -d $GIT_REPO ]] || build_git_cache
    GIT_HEAD=$(bgit --git-dir="$GIT_REPO" rev-parse HEAD)
    GIT_FILES=$(bgit --git-dir="$GIT_REPO" ls-tree -r --name-only HEAD | wc -l)
    say "git repository: $GIT_FILES files, HEAD $GIT_HEAD ($GIT_REPO)"
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
    [[ -n ${BENCH_REPORT_FROM:-} ]] || dd if=/dev/urandom of="$STREAM_SRC" bs=1M count="$STREAM_MIB" status=none
    GIT_REPO='' GIT_HEAD='' GIT_FILES='' GIT_HOME=''
    [[ " ${PHASES[*]} " != *" apps "* ]] || prepare_apps
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
    IOPS | ops/s | files/s) printf '%.0f' "$v" ;;
    B/B) printf '%.2f' "$v" ;;
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
        echo "- date: ${RUN_DATE:-$(date -u '+%Y-%m-%d %H:%M UTC')}"
        echo "- mode: **$MODE** (BENCH_QUICK=$QUICK); runs per measurement: **$REPEAT** (median shown; peak RSS is the maximum)"
        echo "- kernel: $(uname -r); CPU: ${cpu:-unknown}; nproc: $(nproc)"
        echo "- backing dir: $BASE on $disk, one fresh volume per system and run"
        echo "- source tree: $TREE_DESC — $TREE_FILES files, $TREE_SYMLINKS symlinks, $TREE_MIB MiB, as an uncompressed tar on tmpfs"
        echo "- fio: psync, 4 KiB blocks, --direct=0, --invalidate=1, time-based ${FIO_RUNTIME} s, file of $FIO_MIB MiB laid out and remounted first"
        if [[ " ${PHASES[*]} " == *" fio "* ]]; then
            local wa_st
            wa_st=$(disk_stat_file "$WORK") || wa_st="no block device found, n/a"
            echo "- write amplification: sectors written (field 7 of $wa_st) from a fresh mount + sync to after the unmount + sync, around fio randwrite 4 KiB --io_size=${WA_MIB}M --end_fsync=1; counts every writer of that disk"
        fi
        if [[ " ${PHASES[*]} " == *" apps "* ]]; then
            echo "- apps: sqlite3 $(sqlite3 --version 2>/dev/null | cut -d' ' -f1 || echo '?') (default synchronous=FULL); $(git --version 2>/dev/null || echo 'git ?') cloning ${GIT_FILES:-?} files of the $GIT_KIND tree (commit ${GIT_HEAD:0:12}); $RM_N files for rm -rf fresh"
        fi
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
            echo "![chart: each system relative to $CHART_REF]($(basename "$OUT_PNG"))"
            echo
        fi
    } >"$OUT_MD"
}

# chart: each system relative to gocryptfs (= 1) when it was run, else to
# passthrough_ll; higher is better.  Rows without a reference value are left out.
write_chart() {
    CHART_OK=0 CHART_REF=''
    command -v gnuplot >/dev/null || return 0
    local ref_title
    if selected gocryptfs; then
        CHART_REF=gocryptfs ref_title='gocryptfs = 1'
    elif selected passthrough_ll; then
        CHART_REF=passthrough_ll ref_title='passthrough_ll (FUSE floor) = 1'
    else
        return 0
    fi
    local data=$SHM/chart.dat m s v pt cols=() col=2 plot=""
    for s in "${SYSTEMS[@]}"; do
        [[ $s == "$CHART_REF" ]] || cols+=("$s")
    done
    ((${#cols[@]})) || return 0
    for m in $(active_metrics); do
        [[ $m == peak_rss || $m == mount_time || $m == info_time ]] && continue
        pt=$(agg "$CHART_REF" "$m")
        if [[ ! $pt =~ ^[0-9.]+$ ]] || ! awk -v x="$pt" 'BEGIN { exit !(x > 0) }'; then
            continue
        fi
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
    [[ -s $data ]] || { say "no row has a $CHART_REF value: no chart"; return 0; }
    plot+=", 1 with lines dt 2 lc rgb 'black' title '$ref_title'"
    if gnuplot <<EOF >>"$LOG" 2>&1; then
set terminal pngcairo size 1280,640 noenhanced font ",11"
set output '$OUT_PNG'
set title "custodyfs benchmark ($MODE mode, $REPEAT run(s), $(date -u +%Y-%m-%d)): relative to $CHART_REF, higher is better"
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [$ylo:$yhi]
set ylabel "relative to $CHART_REF (log scale)"
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
    [[ $SQLITE_ROWS =~ ^[1-9][0-9]*0$ ]] || { echo "bench: BENCH_SQLITE_ROWS must be a positive multiple of 10" >&2; exit 2; }
    [[ $RM_N =~ ^[1-9][0-9]*$ && $WA_MIB =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RM_N and BENCH_WA_MIB must be positive integers" >&2; exit 2; }
    mkdir -p "$BASE" "$CACHE"
    # where the results go, checked before a half-hour run, not after it
    mkdir -p "$(dirname "$OUT_MD")" 2>/dev/null && [[ -w $(dirname "$OUT_MD") ]] ||
        { echo "bench: cannot write the results to $OUT_MD" >&2; exit 2; }
    if [[ -n ${BENCH_REPORT_FROM:-} ]]; then
        [[ -s $BENCH_REPORT_FROM ]] || { echo "bench: BENCH_REPORT_FROM: no results in '$BENCH_REPORT_FROM'" >&2; exit 2; }
        BENCH_REPORT_FROM=$(realpath "$BENCH_REPORT_FROM")
        RUN_DATE=$(date -u -r "$BENCH_REPORT_FROM" '+%Y-%m-%d %H:%M UTC')
    fi
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
    PHASE_PID='' WATCHDOG_PID='' SHM='' SHM_MOUNTED=0 CHART_OK=0 CHART_REF=''
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    install_deps
    make_shm
    prepare_inputs

    local rep
    if [[ -n ${BENCH_REPORT_FROM:-} ]]; then
        say "report only, from $BENCH_REPORT_FROM ($RUN_DATE)"
        cp "$BENCH_REPORT_FROM" "$RESULTS"
    else
        for ((rep = 1; rep <= REPEAT; rep++)); do
            for s in "${SYSTEMS[@]}"; do
                run_system "$s" "$rep"
            done
        done
        cp "$RESULTS" "$CACHE/last-results.tsv"
    fi
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
