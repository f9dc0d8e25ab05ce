#!/usr/bin/env bash
# POSIX/Linux file semantics on a custodyfs mount: runs build/posix (tests/posix.c,
# validated on ext4 and tmpfs) on a fresh mount, checks that everything it left
# behind plus a set of hand-made objects (content, modes, owners, times,
# symlinks, xattrs, link counts, special files) survives unmount + remount,
# then runs build/posix again on the remounted store.
# The mount is shared (allow_other): posix.c's permission checks run as
# uid/gid 65534, which the daemon refuses without a session of its own, so
# a writer store user "nobody" is logged in for uid 65534 after each mount
# (custodyctl login; its passfile, 0600 and owned by 65534, comes in on
# stdin because the test dir is 0700 root).
. "$(dirname "$0")/../lib.sh"
CFS_BUILD=${CFS_BUILD:-$TOP/build}
POSIX="$CFS_BUILD/posix"
[ -x "$POSIX" ] || { echo "$T_NAME: $POSIX missing (make tools)" >&2; exit 1; }

# run_posix DIR [GROUP]: run the checker (one group of it), fold its
# counts into ours
run_posix() {
	local out sum n m
	out=$("$POSIX" ${2:+-o "$2"} "$1" 2>&1)
	printf '%s\n' "$out" | grep '^FAIL' | sed 's/^/  /' >&2
	sum=$(printf '%s\n' "$out" | sed -n 's/^posix: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
	if [ -z "$sum" ]; then
		fail "posix in $1 gave no summary: $(printf '%s' "$out" | tail -3)"
		return
	fi
	read -r n m <<<"$sum"
	T_PASS=$((T_PASS + n))
	T_FAIL=$((T_FAIL + m))
}

# manifest DIR: every object's metadata but atime (reads move it), the
# checksum of every file up to 16 MiB (bigger, sparse ones are checked by
# hand) and every user.* xattr
manifest() {
	(cd "$1" &&
	find . -printf '%p|%y|%m|%U|%G|%n|%s|%T@|%C@|%l\n' | LC_ALL=C sort &&
	find . -type f -size -16385k -print0 | xargs -0 md5sum | LC_ALL=C sort -k2 &&
	getfattr -R -h -d -m '^user\.' -e hex . 2>/dev/null |
	awk '/^# file: / { f = substr($0, 9) } /=/ { print f "|" $0 }' | LC_ALL=C sort &&
	getfacl -R -P -n -p . 2>/dev/null)
}

# login_nobody: uid 65534 (the checker's unprivileged uid) works as store
# user "nobody" on the allow_other mount (one session per uid)
login_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		env XDG_STATE_HOME="$T/state-nobody" "$CUSTODYCTL" -u nobody -c "$CONF" \
		--passfile "$T/nobody.pass" login -m "$MNT" >/dev/null
}

# login_nobody: start uid 65534's session on the mount as store user nobody
login_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$CUSTODYCTL" -u nobody --passfile /dev/stdin login -m "$MNT" < "$T/nobody.pass"
}

t_setup
pf nobody 'nobody pass phrase'
# the admin makes the passfile (its own), then hands it to uid 65534
check "add store user nobody (writer) for uid 65534" ctl user add nobody --role writer --new-passfile "$T/nobody.pass"
chown 65534:65534 "$T/nobody.pass"
check "mount (allow_other, for the unprivileged checks)" t_mount -o allow_other
expect_status "uid 65534 logs in as nobody" 0 login_nobody
mkdir "$MNT/px"
run_posix "$MNT/px"

# hand-made objects whose survival we check field by field
P=$MNT/keep
mkdir -p "$P/sub/deeper"
printf 'persistent content\n' > "$P/file"
chmod 0640 "$P/file"
chown 1234:5678 "$P/file"
setfattr -n user.color -v blue "$P/file"
setfattr -n user.empty "$P/file"
setfattr -n user.bin -v 0x00ff00ff "$P/sub"
printf 'acl\n' > "$P/aclfile"
setfacl -m u:4321:rw,g:8765:r "$P/aclfile"
mkdir "$P/acldir"
setfacl -d -m g:8765:rx "$P/acldir"
ln "$P/file" "$P/sub/link1"
ln "$P/file" "$P/sub/deeper/link2"
ln -s ../file "$P/sub/rel"
ln -s "/nowhere/$(head -c 3000 /dev/zero | tr '\0' 'x')" "$P/dangling"
mkfifo -m 0604 "$P/fifo"
mknod -m 0600 "$P/null" c 1 3
chmod 0711 "$P/sub/deeper"
chmod 02755 "$P/sub"
truncate -s 5G "$P/sparse"
printf 'tail' | dd of="$P/sparse" bs=1 seek=$((4 * 1024 * 1024 * 1024 + 17)) conv=notrunc status=none
head -c 100003 /dev/urandom > "$P/odd-size"
touch -d '2001-02-03 04:05:06.789' "$P/odd-size"
: > "$P/empty"
# RENAME_EXCHANGE of two dirs in different parents, via perl's syscall()
case $(uname -m) in aarch64) SYS_renameat2=276 ;; *) SYS_renameat2=316 ;; esac
exchange() { perl -e 'syscall($ARGV[0], -100, $ARGV[1], -100, $ARGV[2], 2) == 0 or die "$!\n"' \
	"$SYS_renameat2" "$1" "$2"; }
mkdir -p "$P/xa/dir" "$P/xb/dir"
echo A > "$P/xa/dir/from-a"
echo B > "$P/xb/dir/from-b"
check "RENAME_EXCHANGE two dirs" exchange "$P/xa/dir" "$P/xb/dir"
sync
before=$(manifest "$MNT")
check "unmount" t_umount
check "remount" t_mount -o allow_other
expect_status "uid 65534 logs in again on the new mount" 0 login_nobody
after=$(manifest "$MNT")
if [ "$before" == "$after" ]; then
	ok "whole tree identical after remount"
else
	fail "tree changed across remount: $(diff <(echo "$before") <(echo "$after") | head -20)"
fi
expect_eq "content" "persistent content" "$(cat "$P/file")"
expect_eq "mode/owner" "640 1234 5678 3" "$(stat -c '%a %u %g %h' "$P/file")"
expect_eq "hard link content" "persistent content" "$(cat "$P/sub/deeper/link2")"
expect_eq "xattr" "blue" "$(getfattr --only-values -n user.color "$P/file" 2>/dev/null)"
expect_eq "access ACL" "user:4321:rw- group:8765:r-- mask::rw-" \
	"$(getfacl -n -p "$P/aclfile" 2>/dev/null | grep -E '^(user:4321|group:8765|mask)' | tr '\n' ' ' | sed 's/ $//')"
expect_eq "default ACL" "default:group:8765:r-x" "$(getfacl -n -p "$P/acldir" 2>/dev/null | grep '^default:group:8765')"
expect_eq "binary xattr" "0x00ff00ff" "$(getfattr -e hex -n user.bin "$P/sub" 2>/dev/null | sed -n 's/^user.bin=//p')"
expect_eq "relative symlink" "persistent content" "$(cat "$P/sub/rel")"
expect_eq "dangling symlink length" "3009" "$(readlink "$P/dangling" | tr -d '\n' | wc -c)"
expect_eq "fifo" "fifo 604" "$(stat -c '%F %a' "$P/fifo")"
expect_eq "char device" "character special file 1,3" "$(stat -c '%F %t,%T' "$P/null")"
expect_eq "setgid dir mode" "2755" "$(stat -c %a "$P/sub")"
expect_eq "sparse size" "5368709120" "$(stat -c %s "$P/sparse")"
expect_eq "sparse tail" "tail" "$(dd if="$P/sparse" bs=1 skip=$((4 * 1024 * 1024 * 1024 + 17)) count=4 status=none)"
expect_eq "explicit mtime" "2001-02-03 04:05:06.789000000" "$(stat -c %y "$P/odd-size" | cut -c1-29)"
expect_eq "nlink of a dir with one subdir" "3" "$(stat -c %h "$P/sub")"
expect_eq "exchanged dir in xa" "B" "$(cat "$P/xa/dir/from-b" 2>&1)"
expect_eq "exchanged dir in xb" "A" "$(cat "$P/xb/dir/from-a" 2>&1)"
expect_eq "listing of xa after exchange" "dir" "$(ls "$P/xa" 2>&1)"

# the remounted store behaves the same
mkdir "$MNT/px2"
run_posix "$MNT/px2"
check "final unmount" t_umount
check "store check after the runs" ctl check
# uid 65534's requests were served under nobody's own session
ctl audit list --json > "$T/trail.json" 2>/dev/null
check "the trail has rows of uid 65534 as nobody" \
	jq -e 'any(.[]; .uid == 65534 and .user == "nobody" and .op == "create")' "$T/trail.json"
check "no row of uid 65534 under another user" \
	jq -e 'all(.[]; .uid != 65534 or .user == "nobody")' "$T/trail.json"

# set-user-ID and set-group-ID clearing in the other cache modes: with
# the writeback cache the kernel writes set-ID files through, with
# exact_reads every write is direct I/O; the daemon clears the bits in
# both (FUSE_HANDLE_KILLPRIV_V2, src/fuse/wire.c)
for mode in writeback exact_reads; do
	check "mount -o $mode" t_mount -o allow_other,$mode
	expect_status "uid 65534 logs in ($mode)" 0 login_nobody
	mkdir "$MNT/px-$mode"
	for g in privs perms; do
		mkdir "$MNT/px-$mode/$g"
		run_posix "$MNT/px-$mode/$g" "$g"
	done
	check "unmount ($mode)" t_umount
done
t_finish
