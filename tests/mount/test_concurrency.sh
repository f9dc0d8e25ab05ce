#!/usr/bin/env bash
# Several processes at once on one mount:
#  1. 4 writers to different files while 2 readers re-read existing files
#     and verify their checksums;
#  2. 4 processes writing disjoint, block-unaligned regions of the SAME file
#     (neighbours share blocks), plus 4 processes appending records to one
#     O_APPEND file; final content checked byte for byte;
#  3. mkdir/create/unlink/rmdir storms in one directory, and 4 processes
#     racing to mkdir the same names (each name won exactly once).
#  4. commands beside a writer: while a process creates and fsyncs files
#     one after another, custodyctl reencrypt (after key rotations), audit
#     verify and a user change run over and over; each command commits
#     under the mount's feet. The chain must verify after every round, the
#     writer never see an error, every file keep its content and check
#     stay clean (a command whose filesystem layer committed roots or an
#     inode counter it had not caught up with broke all three).
# Everything is checked again after a remount.
. "$(dirname "$0")/../lib.sh"
t_setup
check "mount" t_mount
SRC=$T/src
mkdir "$SRC"
MIB=1048576

# ---- 1. writers and readers ----
for i in 0 1 2 3; do head -c $((6 * MIB + i * 4099)) /dev/urandom > "$SRC/w$i"; done
for i in 0 1; do
	head -c $((4 * MIB + 7)) /dev/urandom > "$SRC/r$i"
	cp "$SRC/r$i" "$MNT/r$i"
done
sync
for i in 0 1; do md5sum < "$SRC/r$i" > "$SRC/r$i.md5"; done
pids=()
for i in 0 1 2 3; do
	( dd if="$SRC/w$i" of="$MNT/w$i" bs=$((128 * 1024 + 512 * i)) status=none &&
	  dd if="$SRC/w$i" of="$MNT/w$i" bs=4096 count=3 conv=notrunc status=none ) &
	pids+=($!)
done
readers=()
for i in 0 1; do
	( bad=0
	  for round in 1 2 3 4 5 6; do
		cmp -s <(md5sum < "$MNT/r$i") "$SRC/r$i.md5" || bad=$((bad + 1))
	  done
	  exit $bad ) &
	readers+=($!)
done
wfail=0
for p in "${pids[@]}"; do wait "$p" || wfail=$((wfail + 1)); done
expect_eq "4 parallel writers finished" 0 "$wfail"
for i in 0 1; do
	wait "${readers[$i]}"
	expect_eq "reader $i: checksums stable during the writes" 0 $?
done
for i in 0 1 2 3; do check "writer $i: content" cmp "$SRC/w$i" "$MNT/w$i"; done

# ---- 2. one file, disjoint regions; one file, concurrent appends ----
REG=$((MIB + 1000))   # not a multiple of any block size: neighbours share blocks
CH=$((64 * 1024 + 3))
for i in 0 1 2 3; do head -c $REG /dev/urandom > "$SRC/p$i"; done
cat "$SRC/p0" "$SRC/p1" "$SRC/p2" "$SRC/p3" > "$SRC/shared.expected"
head -c $((4 * REG)) /dev/zero | tr '\0' 'Z' > "$MNT/shared"   # old data to overwrite
pids=()
for i in 0 1 2 3; do
	(   # chunks in a different order per process: forwards, backwards, odd/even
		n=$(( (REG + CH - 1) / CH ))
		case $i in
		0) order=$(seq 0 $((n - 1))) ;;
		1) order=$(seq $((n - 1)) -1 0) ;;
		2) order="$(seq 0 2 $((n - 1))) $(seq 1 2 $((n - 1)))" ;;
		3) order="$(seq 1 2 $((n - 1))) $(seq 0 2 $((n - 1)))" ;;
		esac
		for c in $order; do
			dd if="$SRC/p$i" of="$MNT/shared" bs=$CH count=1 skip=$((c * CH)) \
			   seek=$((i * REG + c * CH)) iflag=skip_bytes oflag=seek_bytes \
			   conv=notrunc status=none || exit 1
		done ) &
	pids+=($!)
done
# appenders: each record is one write() of 64 bytes to an O_APPEND fd
for i in 0 1 2 3; do
	( exec 3>>"$MNT/log"
	  xs=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
	  for n in $(seq 1 400); do
		printf 'proc %d record %04d %-44s\n' "$i" "$n" "${xs:0:$((n % 40))}" >&3
	  done ) &
	pids+=($!)
done
wfail=0
for p in "${pids[@]}"; do wait "$p" || wfail=$((wfail + 1)); done
expect_eq "region writers and appenders finished" 0 "$wfail"
check "shared file: size" test "$(stat -c %s "$MNT/shared")" -eq $((4 * REG))
check "shared file: content byte for byte" cmp "$SRC/shared.expected" "$MNT/shared"
expect_eq "append log: 1600 records" 1600 "$(wc -l < "$MNT/log")"
expect_eq "append log: size" $((1600 * 64)) "$(stat -c %s "$MNT/log")"
expect_eq "append log: no torn records" 0 \
	"$(grep -cvE '^proc [0-3] record [0-9]{4} x{0,39} *$' "$MNT/log")"
for i in 0 1 2 3; do
	expect_eq "append log: proc $i's records complete and in order" \
		"$(seq -f '%04g' 1 400 | tr '\n' ' ')" \
		"$(grep "^proc $i " "$MNT/log" | awk '{ printf "%s ", $4 }')"
done

# ---- 3. directory storms ----
# (workers are perl one-liners: one process each, a syscall per operation)
N=300
S=$MNT/storm
mkdir "$S"
pids=()
for p in 0 1 2 3; do
	perl -e '
		my ($S, $p, $n) = @ARGV;
		for my $i (1 .. $n) {
			mkdir("$S/d$p.$i") or die "mkdir d$p.$i: $!\n";
			open(my $f, ">", "$S/f$p.$i") or die "create f$p.$i: $!\n";
			close($f);
			# remove every third file and every fifth dir again
			unlink("$S/f$p.$i") or die "unlink f$p.$i: $!\n" if $i % 3 == 0;
			rmdir("$S/d$p.$i") or die "rmdir d$p.$i: $!\n" if $i % 5 == 0;
			# and rename the previous file (if it still exists) every 7th
			rename("$S/f$p." . ($i - 1), "$S/m$p.$i") if $i % 7 == 0;
		}' "$S" "$p" "$N" &
	pids+=($!)
done
wfail=0
for pid in "${pids[@]}"; do wait "$pid" || wfail=$((wfail + 1)); done
expect_eq "storm processes finished" 0 "$wfail"
want=$(for p in 0 1 2 3; do
	for ((i = 1; i <= N; i++)); do
		[ $((i % 5)) -ne 0 ] && echo "d$p.$i"
		[ $((i % 3)) -eq 0 ] && continue
		# f$p.$i was renamed to m$p.$((i + 1)) when i + 1 is a multiple of 7
		if [ $(((i + 1) % 7)) -eq 0 ] && [ $i -lt $N ]; then
			echo "m$p.$((i + 1))"
		else
			echo "f$p.$i"
		fi
	done
done | LC_ALL=C sort)
storm_list() { (cd "$S" && ls -A | LC_ALL=C sort); }
got=$(storm_list)
if [ "$want" == "$got" ]; then ok "storm: final listing"; else
	fail "storm: final listing: $(diff <(echo "$want") <(echo "$got") | head -5 | tr '\n' ' ')"; fi
expect_eq "storm: dir nlink = 2 + subdirs" $((2 + 4 * (N - N / 5))) "$(stat -c %h "$S")"

# racing for the same names: each name is won by exactly one process
R=$MNT/race
mkdir "$R"
pids=()
for p in 0 1 2 3; do
	perl -MFcntl -e 'my ($R) = @ARGV;
		for my $i (1 .. 300) { print "n$i\n" if mkdir("$R/n$i"); }
		for my $i (1 .. 300) {
			print "f$i\n" if sysopen(my $f, "$R/f$i", O_WRONLY | O_CREAT | O_EXCL);
		}' "$R" > "$T/wins.$p" &
	pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
expect_eq "race: every name won exactly once" \
	"$( (seq -f 'n%g' 1 300; seq -f 'f%g' 1 300) | LC_ALL=C sort)" \
	"$(cat "$T"/wins.* | LC_ALL=C sort)"
expect_eq "race: 600 entries" 600 "$(ls "$R" | wc -l)"

# ---- 4. commands beside a writer ----
W=$MNT/cmdrace
mkdir "$W"
( i=0
  while [ ! -e "$T/stop.writer" ]; do
	i=$((i + 1))
	if printf 'file %d\n' "$i" > "$W/f$i" && sync "$W/f$i"; then
		echo "$i" >> "$T/writer.ok"
	else
		echo "$i" >> "$T/writer.err"
	fi
  done ) 2>"$T/writer.stderr" &
wpid=$!
broken=0 rounds=0
for r in $(seq 24); do
	rounds=$r
	case $r in
	4|11|18) ctl key rotate >/dev/null 2>>"$T/cmds.err" ;;
	7) ctl user add racer --role reader --new-passfile "$PASSFILE" >/dev/null 2>>"$T/cmds.err" ;;
	esac
	ctl reencrypt >/dev/null 2>>"$T/cmds.err"
	if ! ctl audit verify >/dev/null 2>"$T/verify.err"; then
		broken=$r
		break
	fi
done
touch "$T/stop.writer"
wait "$wpid"
expect_eq "commands beside a writer: the chain verifies after every round" \
	0 "$broken"
[ "$broken" = 0 ] || t_log "round $broken: $(head -c 300 "$T/verify.err")"
nok=$(wc -l < "$T/writer.ok" 2>/dev/null || echo 0)
check "commands beside a writer: the writer got work done" test "$nok" -gt 20
expect_eq "commands beside a writer: no write failed" 0 \
	"$(cat "$T/writer.err" 2>/dev/null | wc -l)"
bad=0
while read -r i; do
	[ "$(cat "$W/f$i" 2>/dev/null)" = "file $i" ] || bad=$((bad + 1))
done < "$T/writer.ok"
expect_eq "commands beside a writer: every written file has its content" 0 "$bad"
expect_eq "commands beside a writer: no object left under an old key" 0 \
	"$(ctl key list --json 2>/dev/null | jq '[.[] | select(.status != "active") | .objects] | add // 0')"
expect_status "commands beside a writer: audit verify at the end" 0 ctl audit verify

# ---- everything again after a remount ----
check "unmount" t_umount
check "remount" t_mount
for i in 0 1 2 3; do check "after remount: writer $i" cmp "$SRC/w$i" "$MNT/w$i"; done
check "after remount: shared file" cmp "$SRC/shared.expected" "$MNT/shared"
expect_eq "after remount: append log" $((1600 * 64)) "$(stat -c %s "$MNT/log")"
got=$(storm_list)
if [ "$want" == "$got" ]; then ok "after remount: storm listing"; else
	fail "after remount: storm listing: $(diff <(echo "$want") <(echo "$got") | head -5 | tr '\n' ' ')"; fi
expect_eq "after remount: race entries" 600 "$(ls "$R" | wc -l)"
bad=0
while read -r i; do
	[ "$(cat "$W/f$i" 2>/dev/null)" = "file $i" ] || bad=$((bad + 1))
done < "$T/writer.ok"
expect_eq "after remount: the command race's files" 0 "$bad"
check "final unmount" t_umount
expect_status "check after the command race: clean" 0 ctl check
t_finish
