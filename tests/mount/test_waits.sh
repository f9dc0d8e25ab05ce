#!/usr/bin/env bash
# Waiting and telling the truth about it (issue 20, item 7): a command that
# waits a second or more for the store's write lock says so, naming the
# process that holds it, and says when it got it or gave up; reencrypt's
# counts add up and its times are the wall time the user saw, with the
# waiting named; "objects" is defined where key list and reencrypt use it.
. "$(dirname "$0")/../lib.sh"
t_setup

# lock_pid: the pid holding the store's WAL write lock (byte 120 of
# STORE-shm, in /proc/locks), or nothing
lock_pid() {
	local ino
	ino=$(stat -c %i "$STORE-shm" 2>/dev/null) || return 0
	awk -v ino="$ino" '$2 == "POSIX" && $4 == "WRITE" && $7 == 120 {
		n = split($6, f, ":"); if (f[n] == ino) print $5 }' /proc/locks | head -1
}
# hold_lock SECONDS: a writer (sqlite3, as any process could be) holds the
# store's write lock for SECONDS; sets HOLDER to its pid
hold_lock() {
	( echo "BEGIN IMMEDIATE;"; sleep "$1"; echo "COMMIT;" ) | sqlite3 "$STORE" >/dev/null 2>&1 &
	T_PIDS+=("$!")
	HOLDER=""
	for i in $(seq 100); do
		HOLDER=$(lock_pid)
		[ -n "$HOLDER" ] && break
		sleep 0.02
	done
	[ -n "$HOLDER" ] || t_log "the lock was not taken"
	T_PIDS+=("$HOLDER")
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---- 1. no wait: no notice ----
pf bob 'bob passphrase'
ctl info >/dev/null 2>"$T/quiet.err"
expect_eq "no wait, nothing said" "" "$(cat "$T/quiet.err")"

# ---- 2. a lock held 3 s: said after a second, with who holds it ----
hold_lock 3
t0=$(now_ms)
ctl user add bob --role writer --new-passfile "$T/bob.pass" >/dev/null 2>"$T/w.err"; st=$?
t1=$(now_ms)
expect_eq "the command succeeds after the wait" 0 "$st"
check "it waited (>= 1.5 s, took $((t1 - t0)) ms)" test $((t1 - t0)) -ge 1500
check "it says it waits for the write lock" grep -q "user add: waiting for the store's write lock" "$T/w.err"
check "it names the holder and its pid ($HOLDER)" grep -q "held by sqlite3 pid $HOLDER" "$T/w.err"
check "it names how long it will wait" grep -q "giving up after 10 s" "$T/w.err"
check "it says when it got the lock" grep -qE "user add: got the write lock after [0-9.]+ s" "$T/w.err"
waited=$(sed -n 's/.*got the write lock after \([0-9.]*\) s/\1/p' "$T/w.err")
check "the time it says (${waited} s) is the wait (>= 1.4 s)" awk -v w="$waited" 'BEGIN {exit !(w >= 1.4)}'
expect_eq "two lines, no more" 2 "$(wc -l < "$T/w.err")"
wait "$HOLDER" 2>/dev/null

# ---- 3. held past the busy timeout: gave up, exit 6 ----
cat "$CONF" > "$T/short.ini"
printf '[store]\nbusy_timeout = 2s\n' >> "$T/short.ini"
hold_lock 5
"$CUSTODYCTL" -s "$STORE" -u admin -c "$T/short.ini" --passfile "$PASSFILE" key rotate \
	>/dev/null 2>"$T/g.err"; st=$?
expect_eq "past the busy timeout: exit 6" 6 "$st"
check "it said it waits, giving up after 2 s" grep -q "waiting for the store's write lock.*giving up after 2 s" "$T/g.err"
check "it said it gave up" grep -qE "gave up waiting for the write lock after [0-9.]+ s" "$T/g.err"
check "and why it stopped" grep -qE "store is (busy|locked by another process)" "$T/g.err"
sleep 3.5

# ---- 4. a mount under write load holds it: named as the mount ----
check "mount" t_mount
dpid=$(t_pid)
( for i in $(seq 400); do head -c 65536 /dev/zero; done > "$MNT/load" ) &
load=$!
sleep 0.3
ctl key rotate >/dev/null 2>"$T/m.err"; st=$?
wait "$load"
expect_eq "key rotate under load succeeds" 0 "$st"
rm -f "$MNT/load"
if [ -s "$T/m.err" ]; then
	check "under load: the holder named is the mount's daemon (pid $dpid)" \
		grep -q "held by custodyfs pid $dpid, a mount of this store" "$T/m.err"
	check "under load: the end of the wait is said" grep -q "got the write lock after" "$T/m.err"
else
	ok "under load: no wait of a second (nothing to say)"
fi

# ---- 5. reencrypt: counts that add up, times that are true ----
mkdir -p "$MNT/d"
for i in $(seq 40); do head -c 9000 /dev/urandom > "$MNT/d/f$i"; done
setfattr -n user.tag -v x "$MNT/d/f1"
check "unmount" t_umount
expect_status "rotate" 0 ctl key rotate
before=$(ctl key list --json | jq '[.[] | select(.status != "active") | .objects] | add')
check "old versions hold objects ($before)" test "$before" -gt 40
hold_lock 2
t0=$(now_ms)
ctl reencrypt > "$T/r.out" 2>"$T/r.err"; st=$?
t1=$(now_ms)
expect_eq "reencrypt succeeds" 0 "$st"
line=$(grep "^reencrypt done:" "$T/r.out")
t_log "$line"
moved=$(sed -n 's/^reencrypt done: \([0-9]*\) of \([0-9]*\) objects moved.*/\1/p' <<<"$line")
counted=$(sed -n 's/^reencrypt done: \([0-9]*\) of \([0-9]*\) objects moved.*/\2/p' <<<"$line")
expect_eq "the start count is what key list counted" "$before" "$counted"
expect_eq "nothing else touched the store: all of it moved" "$before" "$moved"
took=$(sed -n 's/.*the command took \([0-9.]*\) s.*/\1/p' <<<"$line")
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1000}')
check "the time printed ($took s) is the wall time seen ($wall s), not less than 90% of it" \
	awk -v t="$took" -v w="$wall" 'BEGIN {exit !(t >= 0.9 * w && t <= w + 0.05)}'
check "the wait for the lock is named in it" grep -qE "s of it waiting for the store's write lock" <<<"$line"
expect_eq "key list: nothing left under old versions" 0 \
	"$(ctl key list --json | jq '[.[] | select(.status != "active") | .objects] | add')"
wait "$HOLDER" 2>/dev/null

# objects that leave the old versions meanwhile are counted as such
# (600 small files: 1200 objects, five steps of 256, half a second apart)
check "mount" t_mount
mkdir -p "$MNT/g"
for i in $(seq 600); do echo "$i" > "$MNT/g/$i"; done
check "unmount" t_umount
expect_status "rotate again" 0 ctl key rotate
before=$(ctl key list --json | jq '[.[] | select(.status != "active") | .objects] | add')
check "mount" t_mount
# the rm starts once reencrypt has counted (its start event), and runs
# while reencrypt pauses between steps (--rate 1: a second per 256 blocks)
ctl reencrypt --rate 1 > "$T/r2.out" 2>&1 &
renc=$!
for i in $(seq 200); do
	[ "$(q "SELECT count(*) FROM key_events WHERE event='reencrypt-start'")" -ge 2 ] && break
	sleep 0.05
done
rm -rf "$MNT/g"
wait "$renc"
check "unmount" t_umount
line=$(grep "^reencrypt done:" "$T/r2.out")
t_log "$line"
moved=$(sed -n 's/^reencrypt done: \([0-9]*\) of \([0-9]*\) objects.*/\1/p' <<<"$line")
counted=$(sed -n 's/^reencrypt done: \([0-9]*\) of \([0-9]*\) objects.*/\2/p' <<<"$line")
gone=$(sed -n 's/.*(\([0-9]*\) more left the old versions meanwhile.*/\1/p' <<<"$line")
expect_eq "start count = key list's" "$before" "$counted"
expect_eq "moved + left meanwhile = counted" "$counted" "$((moved + ${gone:-0}))"
check "some left meanwhile (the rm ran during it)" test "${gone:-0}" -gt 0

# ---- 6. "objects" is defined ----
check "key list --help defines objects" grep -q "objects (content blocks, names, xattrs, session" <(ctl key list --help)
check "reencrypt --help defines them as key list does" grep -q "Objects are what key list counts: content blocks" <(ctl reencrypt --help)
page() { MANWIDTH=200 man -l "$TOP/etc/$1" 2>/dev/null | col -b; }
check "custodyctl(8) defines objects" grep -q "objects: the number of stored objects (content blocks, names, xattrs, session audit" <(page custodyctl.8)
t_finish
