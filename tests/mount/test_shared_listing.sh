#!/usr/bin/env bash
# A mount shared with other uids (-o allow_other): a listing makes no name
# stat-able by a uid without a session. The kernel answers a stat from its
# own caches when it holds the name and its attributes (README, "What a
# uid without a session still sees": a name another uid LOOKED UP a moment
# ago); a listing must not put every name of a directory there (with
# READDIRPLUS it would: each entry with its attributes). With -o noacl the
# kernel checks permissions from the mode alone, so nothing else asks the
# daemon on the way; entries are kept 30 s so expiry cannot hide it.
. "$(dirname "$0")/../lib.sh"
[ "$(id -u)" = 0 ] || { echo "$T_NAME: must run as root (useradd, allow_other)" >&2; exit 1; }
N=cfsl_n
TAG="custodyfs test user (test_shared_listing)"
MADE=""
sl_cleanup() { t_cleanup; [ -n "$MADE" ] && userdel "$N" 2>/dev/null; return 0; }
if getent passwd "$N" >/dev/null; then
	[ "$(getent passwd "$N" | cut -d: -f5)" = "$TAG" ] || { echo "$T_NAME: Unix user $N exists and is not ours" >&2; exit 1; }
else
	useradd -M -s /usr/sbin/nologin -c "$TAG" "$N" || { echo "$T_NAME: useradd $N failed" >&2; exit 1; }
fi
MADE=1
t_setup
trap sl_cleanup EXIT
chmod 711 "$T"
printf '[mount]\nattr_timeout = 30s\n' >> "$CONF"

check "mount -o allow_other,noacl" t_mount -o allow_other,noacl
chmod 1777 "$MNT"
mkdir -m 0777 "$MNT/open"
printf 'payload\n' > "$MNT/open/listed-only.txt"
check "unmount" t_umount
check "mount again (the kernel holds no name)" t_mount -o allow_other,noacl
# the mounting uid lists the directory: names only, nobody looks one up
expect_eq "the mounting uid lists open/" "['listed-only.txt']" \
	"$(python3 -c 'import os, sys; print(os.listdir(sys.argv[1]))' "$MNT/open")"
runuser -u "$N" -- stat -c '%s %U %Y' "$MNT/open/listed-only.txt" > "$T/.out" 2> "$T/.stderr"
st=$?
expect_eq "no session: stat of a name only listed is refused (got '$(cat "$T/.out")')" 1 "$st"
stderr_has "with EACCES" "Permission denied"
runuser -u "$N" -- stat "$MNT/open/not-there.txt" > /dev/null 2> "$T/.stderr"
stderr_has "no session: a name not there is refused alike (no existence oracle)" "Permission denied"
check "unmount" t_umount
t_finish
