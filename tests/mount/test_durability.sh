#!/usr/bin/env bash
# Durability of a mount's commits. Commits do not wait for the disk under
# the filesystem lock: the thread that releases the lock after a commit
# flushes the WAL once the lock is free (src/fs/fs_tx.c, "durability").
# What must still hold, watched with strace on the daemon, the way an
# administrator would check it:
#  (a) fsync() on the mount returns only after the store's WAL was flushed
#      (an fdatasync of the -wal file that began after the fsync was
#      called and ended before it returned);
#  (b) a group commit (no fsync; the once-a-second commit) is flushed too,
#      without anyone asking, within a few seconds of the write;
#  (c) the local state this host keeps (the newest commit it saw) is
#      never written while a commit of the mount is not yet flushed: each
#      write of it comes after a flush of every commit before it.
. "$(dirname "$0")/../lib.sh"
t_setup


# trace_daemon PID LOG: strace the daemon's threads into LOG (absolute
# times, durations, fd paths, whole witness lines) until kill "$ST"
trace_daemon() {
	strace -f -qq -ttt -T -y -s 300 \
		-e trace=fdatasync,fsync,pwrite64,rename,sendto -p "$1" -o "$2" &
	ST=$!
	for _ in $(seq 50); do grep -q 'TracerPid:[[:space:]]*[1-9]' "/proc/$1/status" && break; sleep 0.1; done
	sleep 0.3
}
# wal_events LOG: the flushes of the WAL as "F start end", its writes as
# "W start thread", renames into $T/state as "R start thread", witness
# lines as "S start thread" (a call strace split in two has its start on
# the "unfinished" line and its end on "resumed")
wal_events() {
	STATE_DIR="$T/state" perl -ne '
	my ($tid, $t) = /^(\d+)\s+([\d.]+)\s+/ or next;
	if (/ f(?:data)?sync\(\d+<([^>]*)>\)\s*=\s*0\s*<([\d.]+)>/) {
		printf "F %s %.6f\n", $t, $t + $2 if $1 =~ /-wal$/;
	} elsif (/ f(?:data)?sync\(\d+<([^>]*)>\s*<unfinished/) {
		$open{$tid} = [$t, $1];
	} elsif (/<\.\.\. f(?:data)?sync resumed>.*=\s*0\s*<[\d.]+>/ && $open{$tid}) {
		my ($s, $p) = @{$open{$tid}}; delete $open{$tid};
		print "F $s $t\n" if $p =~ /-wal$/;
	} elsif (/ pwrite64\(\d+<([^>]*)>/) {
		print "W $t $tid\n" if $1 =~ /-wal$/;
	} elsif (/ rename\("[^"]*", "([^"]*)"/) {
		print "R $t $tid\n" if index($1, $ENV{STATE_DIR}) == 0;
	} elsif (/ sendto\(\d+<[^>]*>, ".*commit store=/) {
		print "S $t $tid\n";
	}' "$1"
}
# unflushed EVENTS KIND [own]: "N BAD": N events of KIND, BAD of them with
# no flush that began after the WAL's last write before them and ended
# before them. With "own", the last write is the last one made by the
# event's own thread: a witness line goes out from the thread that made
# the commit it witnesses, after that thread's flush, and another
# thread's next commit may write the WAL in between (the lock is free
# while a sync runs); a save of the local state is made under the lock,
# so no write of any thread may come between its flush and it.
unflushed() {
	local n=0 bad=0 r tid w f
	while read -r r tid; do
		n=$((n + 1))
		w=$(awk -v r="$r" -v t="$tid" -v own="${3:-}" \
			'$1 == "W" && $2 < r && (own == "" || $3 == t) { w = $2 } END { printf "%.6f\n", w }' "$1")
		f=$(awk -v w="$w" -v r="$r" '$1 == "F" && $2 >= w && $3 <= r { c = 1 } END { print c + 0 }' "$1")
		[ "$f" = 1 ] || bad=$((bad + 1))
	done < <(grep "^$2" "$1" | cut -d' ' -f2-)
	echo "$n $bad"
}

check "mount" t_mount
PID=$(t_pid)
trace_daemon "$PID" "$T/st.log"

# (a) five fsyncs of 1 MiB each, the times each was called and returned
perl -MTime::HiRes=time -MIO::Handle -e '
	open(my $f, ">", $ARGV[0]) or die "open: $!";
	binmode $f;
	for my $i (1 .. 5) {
		syswrite($f, "x" x (1 << 20)) == (1 << 20) or die "write: $!";
		my $t0 = time; $f->sync or die "fsync: $!"; my $t1 = time;
		printf "%.6f %.6f\n", $t0, $t1;
	}
	close $f;' "$MNT/synced" > "$T/fsyncs" 2> "$T/.perr" \
	|| fail "(a) the writer failed: $(cat "$T/.perr")"
# (b) a write nobody syncs; (c) then appends for 12 s, so that the
# local state is saved (every 10 s) while commits keep coming
WB=$(date +%s.%N)
head -c 65536 /dev/urandom > "$T/unsynced"
cp "$T/unsynced" "$MNT/unsynced"
# without pause, so that a commit is always just made when the save comes
timeout 12 sh -c 'while :; do echo x >> "$1"; done' sh "$MNT/appended"
sleep 1
kill "$ST" 2>/dev/null; wait "$ST" 2>/dev/null

wal_events "$T/st.log" > "$T/events"
grep '^F' "$T/events" | cut -d' ' -f2- > "$T/flushes"
check "strace saw the WAL flushed" test -s "$T/flushes"
check "strace saw the WAL written" grep -q '^W' "$T/events"

n=0
while read -r t0 t1; do
	n=$((n + 1))
	covered=$(awk -v a="$t0" -v b="$t1" '$1 >= a && $2 <= b { c = 1 } END { print c + 0 }' "$T/flushes")
	expect_eq "(a) fsync $n returned after a flush of the WAL that began after it was called" 1 "$covered"
done < "$T/fsyncs"
expect_eq "(a) five fsyncs measured" 5 "$n"

covered=$(awk -v a="$WB" '$1 >= a && $2 <= a + 3 { c = 1 } END { print c + 0 }' "$T/flushes")
expect_eq "(b) a write nobody synced was flushed within 3 s (group commit)" 1 "$covered"

# (c) for each save of the local state: the WAL's last write before it
# was flushed (a flush began after that write and ended before the save)
read -r saves bad < <(unflushed "$T/events" R)
check "(c) the local state was saved while writes went on" test "$saves" -ge 1
expect_eq "(c) no save of the local state before the WAL it follows was flushed ($saves saves)" 0 "$bad"

check "the unsynced file reads back" cmp -s "$T/unsynced" "$MNT/unsynced"
check "unmount" t_umount
expect_status "check: clean" 0 ctl check

# (d) commits made by the keys layer on the mount's connection (here a
# refused login on a mount shared with other uids) are flushed before
# their witness line goes out, and before the refusal is answered; every
# witness line comes after a flush that began after the WAL's last write
# before it. strace sees the witness as a sendto on the syslog socket.
t_log_listener "$T/log.sock" "$T/witness.log"
printf '[audit]\nsyslog = on\nsyslog_socket = %s\n' "$T/log.sock" >> "$CONF"
chmod 755 "$T"
check "(d) mount shared with other uids" t_mount -o allow_other
PID=$(t_pid)
trace_daemon "$PID" "$T/st2.log"
printf 'wrong\n' > "$T/wrong.pass"; chown 65534 "$T/wrong.pass"; chmod 600 "$T/wrong.pass"
head -c 4096 /dev/urandom > "$MNT/f"
setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$CUSTODYCTL" -u nosuchuser --passfile "$T/wrong.pass" login -m "$MNT" \
	> /dev/null 2>&1
expect_eq "(d) the refused login: exit 3" 3 "$?"
sleep 1.5
check "(d) unmount" t_umount
kill "$ST" 2>/dev/null; wait "$ST" 2>/dev/null
wal_events "$T/st2.log" > "$T/events2"
read -r sends bad < <(unflushed "$T/events2" S own)
check "(d) witness lines were sent (login, writes, unmount)" test "$sends" -ge 3
expect_eq "(d) no witness line before the WAL it follows was flushed ($sends lines)" 0 "$bad"
t_finish
