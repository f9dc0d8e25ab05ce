#!/usr/bin/env bash
# reencrypt (issue 7): online and resumable.
#  1. A store with a few hundred files (multi-block files, xattrs, symlinks,
#     nested directories) is rotated and re-encrypted while the differential
#     tester hammers the same mount (a throttled run, then after a second
#     rotation an unthrottled one). The tester must stay ok, no object may
#     be left under an old version, check must be clean, the data unchanged.
#  2. reencrypt of a larger store (48 MiB more, rate-limited) is killed with SIGKILL at three random
#     moments and restarted each time, then finishes: nothing left under old
#     versions, clean check, every file's checksum as before.
# Prints reencrypt's own throughput line ("... MiB/s").
. "$(dirname "$0")/../lib.sh"
DIFFTEST=${CFS_BUILD:-$TOP/build}/difftest
[ -x "$DIFFTEST" ] || { echo "$T_NAME: $DIFFTEST missing (make tools)" >&2; exit 1; }
t_setup

# objects (blocks, names, xattrs, session detail keys) under versions < $1
# (format 2: inode rows are in the clear under the inode tree, no version)
old_objects() {
	ctl key list --json 2>/dev/null | jq -r --argjson v "$1" '[.[] | select(.version < $v) | .objects] | add // 0'
}
# wait_version V: poll (max 5 s) until a fresh write on the mount lands
# under version V, i.e. the daemon has reloaded its keys
wait_version() {
	local v=$1 i f ino
	for i in $(seq 50); do
		f=$MNT/.probe.$v.$i
		printf 'probe %s\n' "$i" > "$f"
		sync "$f"
		ino=$(stat -c %i "$f")
		if [ "$(q "SELECT count(*) FROM blocks WHERE ino=$ino AND key_version=$v")" = 1 ]; then
			rm -f "$MNT"/.probe.$v.*
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# ---- part 1: reencrypt beside the differential tester ----
SRC=$T/src
mkdir -p "$SRC"
# 300 files (every 20th one multi-block, ~8 MiB in all) in nested
# directories, 20 symlinks, an xattr on every 10th file; one perl process
# and one setfattr --restore instead of a thousand forks
perl -e '
	use strict;
	my ($src, $dump) = @ARGV;
	open(my $r, "<", "/dev/urandom") or die;
	open(my $x, ">", $dump) or die;
	for my $i (0 .. 299) {
		my $rel = "d" . ($i % 7) . "/e" . ($i % 3);
		$rel .= "/f" . ($i % 2) if $i % 5 == 0;
		my $p = "";
		for my $part (split m{/}, $rel) { $p .= "/$part"; mkdir "$src$p"; }
		my $n = $i % 20 == 0 ? 200000 + $i * 1021 : ($i * 7919) % 30000;
		my $buf = "";
		read($r, $buf, $n) == $n or die if $n;
		open(my $f, ">", "$src/$rel/file$i") or die;
		print $f $buf;
		close $f;
		print $x "# file: $rel/file$i\nuser.idx=\"v$i\"\n\n" if $i % 10 == 3;
		symlink("file" . ($i - 1), "$src/$rel/link$i") or die if $i % 15 == 4;
	}
' "$SRC" "$T/xattrs.dump"
(cd "$SRC" && setfattr --restore="$T/xattrs.dump")
t_log "source tree: $(find "$SRC" -type f | wc -l) files, $(find "$SRC" -type l | wc -l) symlinks, $(du -sm "$SRC" | cut -f1) MiB"

check "mount" t_mount
mkdir "$MNT/data"
check "copy the tree in (cp -a, with xattrs and symlinks)" cp -a "$SRC/." "$MNT/data/"
sync
check "tree copied exactly" diff -r --no-dereference "$SRC" "$MNT/data"

expect_status "key rotate (v2)" 0 ctl key rotate
check "the mount writes under v2" wait_version 2
before=$(old_objects 2)
t_log "objects under v1 before reencrypt: $before"
check "v1 has objects to move" test "$before" -gt 0

# the differential tester, run after run in fresh directories, until told
# to stop; each run's status lands in $T/dt.N.status
rm -f "$T/dt.stop"
(
	n=0
	while [ ! -e "$T/dt.stop" ]; do
		n=$((n + 1))
		mkdir "$MNT/dt.$n" "$T/ref.$n"
		"$DIFFTEST" -s $((7000 + n)) -n 400 -c 20 "$MNT/dt.$n" "$T/ref.$n" > "$T/dt.$n.out" 2>&1
		echo $? > "$T/dt.$n.status"
	done
) &
DT=$!
sleep 0.5
ctl reencrypt --rate 4 > "$T/re1.out" 2>&1
expect_eq "reencrypt --rate 4 beside difftest" 0 "$?"
t_log "throttled: $(tail -n 1 "$T/re1.out")"
expect_eq "after the throttled run: nothing under v1" "0" "$(old_objects 2)"

expect_status "key rotate (v3) with difftest running" 0 ctl key rotate
check "the mount writes under v3" wait_version 3
ctl reencrypt > "$T/re2.out" 2>&1
expect_eq "unthrottled reencrypt beside difftest" 0 "$?"
printf '%s: unthrottled reencrypt with difftest running: %s\n' "$T_NAME" "$(tail -n 1 "$T/re2.out")"
touch "$T/dt.stop"
wait "$DT"

runs=$(ls "$T"/dt.*.status 2>/dev/null | wc -l)
bad=0
for s in "$T"/dt.*.status; do
	[ -e "$s" ] || continue
	if [ "$(cat "$s")" != 0 ]; then
		bad=$((bad + 1))
		fail "difftest ${s%.status}: $(grep -m1 -E 'MISMATCH|error' "${s%.status}.out")"
	fi
done
t_log "difftest: $runs runs beside reencrypt"
check "difftest ran beside reencrypt" test "$runs" -ge 1
expect_eq "every difftest run ok" 0 "$bad"

ctl key list --json > "$T/list.json"
expect_eq "key list: v1 and v2 have 0 objects" "0 0" \
	"$(jq -r '[.[] | select(.version < 3) | .objects] | map(tostring) | join(" ")' "$T/list.json")"
expect_eq "no block/name/xattr under v1 or v2" "0" \
	"$(q "SELECT (SELECT count(*) FROM blocks WHERE key_version<3) + (SELECT count(*) FROM dentries WHERE key_version<3) + (SELECT count(*) FROM xattrs WHERE key_version<3)")"
expect_eq "no audit session key under v1 or v2 still in use" "0" \
	"$(q "SELECT count(*) FROM audit JOIN sessions ON audit.session=sessions.id WHERE sessions.detail_version<3")"
expect_eq "no session detail key under v1 or v2 at all" "0" \
	"$(q "SELECT count(*) FROM sessions WHERE detail_version<3")"
check "tree unchanged after reencrypt (mounted)" diff -r --no-dereference "$SRC" "$MNT/data"
xattr_dump() { (cd "$1" && find . -type f | sort | xargs getfattr -d -m '^user\.' 2>/dev/null); }
xattr_dump "$SRC" > "$T/x.src"
xattr_dump "$MNT/data" > "$T/x.mnt"
expect_eq "xattrs in the source tree" 30 "$(grep -c '^user.idx=' "$T/x.src")"
check "every xattr unchanged" cmp "$T/x.src" "$T/x.mnt"
expect_status "check after reencrypt (while mounted)" 0 ctl check
ev=$(q "SELECT group_concat(event, ' ') FROM key_events")
expect_eq "key_events: two reencrypt-start / -end pairs" "2|2" \
	"$(q "SELECT (SELECT count(*) FROM key_events WHERE event='reencrypt-start'), (SELECT count(*) FROM key_events WHERE event='reencrypt-end')")"

# ---- part 2: kill -9 at three random moments, resume, finish ----
mkdir "$MNT/big"
for i in $(seq 1 12); do
	dd if=/dev/urandom of="$MNT/big/f$i" bs=1M count=4 status=none
done
sync
(cd "$MNT" && md5sum big/*) > "$T/big.sums"
expect_status "key rotate (v4)" 0 ctl key rotate
check "the mount writes under v4" wait_version 4
check "unmount" t_umount   # the store is idle: all of it is reencrypt's
left0=$(old_objects 4)
t_log "objects under old versions before reencrypt: $left0"
for k in 1 2 3; do
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" \
		reencrypt --rate 8 > "$T/kill.$k.out" 2>&1 &
	pid=$!
	ms=$((300 + RANDOM % 700))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		wait "$pid" 2>/dev/null
		st=$?
		expect_eq "reencrypt $k killed by SIGKILL after ${ms} ms" 137 "$st"
	else
		wait "$pid"
		fail "reencrypt $k finished before the kill at ${ms} ms (raise the data size)"
	fi
	t_log "after kill $k at ${ms} ms: $(old_objects 4) objects left"
done
left3=$(old_objects 4)
check "the killed runs made progress ($left0 -> $left3)" test "$left3" -lt "$left0"
check "the killed runs did not finish ($left3 left)" test "$left3" -gt 0
expect_status "check between kills: clean (each step is atomic)" 0 ctl check
ctl reencrypt > "$T/final.out" 2>&1
expect_eq "resumed reencrypt finishes" 0 "$?"
printf '%s: resumed reencrypt after 3 kills: %s\n' "$T_NAME" "$(tail -n 1 "$T/final.out")"
expect_eq "after resume: 0 objects under v1..v3" "0" "$(old_objects 4)"
expect_eq "after resume: nothing in the tables under an old version" "0" \
	"$(q "SELECT (SELECT count(*) FROM blocks WHERE key_version<4) + (SELECT count(*) FROM dentries WHERE key_version<4) + (SELECT count(*) FROM xattrs WHERE key_version<4) + (SELECT count(*) FROM sessions WHERE detail_version<4)")"
expect_status "audit verify after resumed reencrypt" 0 ctl audit verify
expect_status "check after resumed reencrypt" 0 ctl check
check "mount after resumed reencrypt" t_mount
(cd "$MNT" && md5sum -c --quiet "$T/big.sums") > "$T/big.check" 2>&1
expect_eq "all 12 big files (48 MiB): checksums as before" 0 "$?"
check "part 1 tree still identical to its source" diff -r --no-dereference "$SRC" "$MNT/data"
check "unmount" t_umount
t_finish
