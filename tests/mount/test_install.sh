#!/usr/bin/env bash
# What `make install` lays out, and that it works: mount(8) -t
# fuse.custodyfs and an fstab line (through mount.fuse3, which finds
# custodyfs in the default PATH), the systemd unit's command line with a
# credential, man pages that render without warnings and match --help,
# the documented config file in sync with config.c, and the completions.
#
# mount.fuse3 runs custodyfs through /bin/sh with mount(8)'s reduced
# environment (no PATH: the shell's default applies), so the installed
# binary must sit in /usr/local/bin or /usr/bin. The test bind-mounts its
# staged bin directory over /usr/local/bin inside a private mount
# namespace (unshare -m): nothing on the host changes.
. "$(dirname "$0")/../lib.sh"
t_setup
ROOT=$T/root
P=$ROOT/usr/local

# ---- make install ----
make -s -C "$TOP" install PREFIX=/usr/local DESTDIR="$ROOT" >"$T/make.out" 2>&1
expect_eq "make install" 0 "$?"
for f in bin/custodyfs bin/custodyctl share/man/man1/custodyfs.1 \
         share/man/man5/custodyfs.ini.5 share/man/man8/custodyctl.8 \
         share/bash-completion/completions/custodyfs \
         share/bash-completion/completions/custodyctl \
         lib/systemd/system/custodyfs@.service; do
	check "installed $f" test -s "$P/$f"
done
check_not "nothing installed in sbin/ (custodyctl is in bin/)" test -e "$P/sbin"
check "installed /etc/custodyfs/custodyfs.ini" test -s "$ROOT/etc/custodyfs/custodyfs.ini"
expect_eq "custodyfs is executable" 755 "$(stat -c %a "$P/bin/custodyfs")"
expect_eq "installed custodyfs runs" "custodyfs" "$("$P/bin/custodyfs" --version | cut -d' ' -f1)"
check "unit's ExecStart names the installed binary" \
	grep -q "^ExecStart=/usr/local/bin/custodyfs " "$P/lib/systemd/system/custodyfs@.service"

# ---- mount(8) and fstab, in a private mount namespace ----
printf '%s %s fuse.custodyfs noauto,_netdev,passfile=%s,user=admin,config=%s 0 0\n' \
	"$STORE" "$MNT" "$PASSFILE" "$CONF" > "$T/fstab"
T_MOUNTS+=("$MNT")
export P STORE MNT PASSFILE CONF T
unshare -m --propagation private bash -c '
	t_ns_drop_fuse
	r() { echo "$1 $2"; }   # result lines, counted outside
	umount_wait() {
		# mount.fuse3 puts the options after the mount point
		local pid; pid=$(pgrep -n -f -- "custodyfs.* $MNT( |\$)")
		[ -n "$pid" ] || return 1
		umount "$MNT" || return 1
		for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
		return 1
	}
	mount --bind "$P/bin" /usr/local/bin || { r fail "bind mount"; exit; }
	if mount -t fuse.custodyfs "$STORE" "$MNT" \
		-o "passfile=$PASSFILE,user=admin,config=$CONF" 2>"$T/m.err"
	then r ok "mount -t fuse.custodyfs"; else r fail "mount -t fuse.custodyfs: $(cat "$T/m.err")"; fi
	grep -q " $MNT fuse.custodyfs " /proc/self/mounts && r ok "type shows as fuse.custodyfs" || r fail "type in /proc/mounts"
	echo via-mount > "$MNT/m.txt" && sync "$MNT/m.txt"
	[ "$(cat "$MNT/m.txt")" = via-mount ] && r ok "mount(8) mount works" || r fail "mount(8) mount works"
	umount_wait && r ok "umount" || r fail "umount"
	mountpoint -q "$MNT" && r fail "still mounted" || r ok "unmounted"
	if mount -T "$T/fstab" "$MNT" 2>"$T/m.err"
	then r ok "mount via fstab line"; else r fail "mount via fstab line: $(cat "$T/m.err")"; fi
	[ "$(cat "$MNT/m.txt" 2>&1)" = via-mount ] && r ok "fstab mount has the data" || r fail "fstab mount has the data"
	umount_wait && r ok "umount fstab mount" || r fail "umount fstab mount"
	# a wrong passphrase through mount(8): non-zero, nothing mounted
	echo wrong > "$T/badpass"; chmod 600 "$T/badpass"
	mount -t fuse.custodyfs "$STORE" "$MNT" -o "passfile=$T/badpass,user=admin,config=$CONF" 2>/dev/null \
		&& r fail "wrong passphrase refused" || r ok "wrong passphrase refused"
	mountpoint -q "$MNT" && { r fail "nothing mounted after refusal"; umount "$MNT"; } || r ok "nothing mounted after refusal"
' > "$T/ns.out" 2>&1
while read -r res name; do
	if [ "$res" = ok ]; then ok "$name"; elif [ "$res" = fail ]; then fail "$name"; else fail "namespace: $res $name"; fi
done < "$T/ns.out"
expect_eq "namespace steps reported" 10 "$(grep -c -E '^(ok|fail) ' "$T/ns.out")"

# ---- the systemd unit's command line, run as systemd would ----
UNIT=$P/lib/systemd/system/custodyfs@.service
check "unit loads the passphrase credential" \
	grep -qx 'LoadCredential=passphrase:/etc/custodyfs/%i.pass' "$UNIT"
if command -v systemd-analyze >/dev/null; then
	sed "s|/usr/local/bin/|$P/bin/|" "$UNIT" > "$T/custodyfs@.service"
	ln -s "custodyfs@.service" "$T/custodyfs@demo.service"
	MANPATH=$P/share/man: systemd-analyze verify "$T/custodyfs@demo.service" \
		>"$T/verify.out" 2>&1
	expect_eq "systemd-analyze verify: no complaints" "" "$(cat "$T/verify.out")"
else
	fail "systemd-analyze is missing (Debian package systemd)"
fi
# ExecStart with %i and the variables expanded, our paths for the system ones
cmd=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$UNIT" | sed 's/^ExecStart=//; s/\\$//' | tr -s ' \n' '  ')
cmd=${cmd//%i/demo}
cmd=${cmd//\/usr\/local\/bin\//$P/bin/}
cmd=${cmd//\/var\/lib\/custodyfs\//$T/lib/}
cmd=${cmd//\/srv\/custodyfs\//$T/srv/}
cmd=${cmd//\$\{CUSTODY_USER\}/admin}
cmd=${cmd//\$\{CREDENTIALS_DIRECTORY\}/$T/cred}
cmd=${cmd//\$CUSTODY_OPTIONS/}
t_log "unit runs: $cmd"
mkdir -p "$T/lib" "$T/srv/demo" "$T/cred"
cp "$STORE" "$T/lib/demo.db"
cp "$PASSFILE" "$T/cred/passphrase"
T_MOUNTS+=("$T/srv/demo")
$cmd &
upid=$!
for i in $(seq 100); do mountpoint -q "$T/srv/demo" && break; sleep 0.05; done
check "unit command mounts /srv/custodyfs/%i" mountpoint -q "$T/srv/demo"
check "unit command stays in the foreground" kill -0 "$upid"
echo from-unit > "$T/srv/demo/u.txt"
kill -TERM "$upid"
wait "$upid"; st=$?
expect_eq "SIGTERM (systemctl stop): clean exit" 0 "$st"
check_not "SIGTERM unmounts" mountpoint -q "$T/srv/demo"
check "remount the unit's store" \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$T/lib/demo.db" "$T/srv/demo"
expect_eq "data written before stop survives" from-unit "$(cat "$T/srv/demo/u.txt" 2>&1)"
check "unmount the unit's store" t_umount "$T/srv/demo"

# ---- man pages: render cleanly, and say what --help says ----
for m in man1/custodyfs.1 man5/custodyfs.ini.5 man8/custodyctl.8; do
	expect_eq "groff -ww: $m" "" "$(groff -ww -man -z "$P/share/man/$m" 2>&1)"
	expect_eq "man -l: $m" "" "$(MANWIDTH=80 man -l "$P/share/man/$m" 2>&1 >/dev/null)"
done
page() { MANWIDTH=200 man -l "$P/share/man/$1" 2>/dev/null | col -b; }
page man1/custodyfs.1 > "$T/fs.txt"
for w in $("$CUSTODYFS" --help | grep -oE '(^| )(-[a-zA-Z]|--[a-z-]+)\b|\b(ro|exact_reads|allow_other|accept_rollback|idle=|maxage=|user=|passfile=|config=)' | sort -u); do
	check "custodyfs.1 documents $w" grep -qF -- "$w" "$T/fs.txt"
done
page man8/custodyctl.8 > "$T/ctl.txt"
for w in init info check backup compact upgrade reencrypt \
         "user add" "user del" "user revoke" "user passwd" "user role" \
         "user unlock" "user list" "key list" "key rotate" "key retire" \
         "key destroy" "audit list" "audit verify" "audit export" \
         "audit prune" --force --json --new-passfile --extpass --passfile \
         --accept-rollback; do
	check "custodyctl.8 documents '$w'" grep -qF -- "$w" "$T/ctl.txt"
done
# (every command and option of --help, both ways: tests/mount/test_docs.sh)
for st in 0 1 2 3 4 5 6; do
	check "custodyctl.8 documents exit status $st" grep -qE "^ +$st( |$)" "$T/ctl.txt"
done

# ---- custodyfs.ini: every key of config.c, documented, at its default ----
INI=$ROOT/etc/custodyfs/custodyfs.ini
page man5/custodyfs.ini.5 > "$T/ini.txt"
keys=$(grep -oE 'IS\("[a-z_]+", "[a-z_]+"\)' "$TOP/src/lib/config.c" | sed -E 's/IS\("([a-z_]+)", "([a-z_]+)"\)/\1.\2/')
check "config.c has keys" test -n "$keys"
for k in $keys; do
	sec=${k%%.*} key=${k#*.}
	check "custodyfs.ini has [$sec] $key" \
		awk -v s="[$sec]" -v k="$key" '$0 == s {in_s = 1; next} /^\[/ {in_s = 0}
			in_s && $0 ~ "^;" k " = " {f = 1} END {exit !f}' "$INI"
	check "custodyfs.ini.5 documents $key" grep -qE "^ +$key \(default" "$T/ini.txt"
done
# every commented setting, uncommented, is accepted as it stands
sed -E 's/^;([a-z_]+ = )/\1/' "$INI" > "$T/all.ini"
expect_eq "every documented setting parses" "$(echo "$keys" | wc -l)" \
	"$(grep -cE '^[a-z_]+ = ' "$T/all.ini")"
# (a config error exits 2 before the store is opened; a missing store exits 1)
for c in "$T/all.ini" "$INI"; do
	"$CUSTODYCTL" -s "$T/none.db" -u admin -c "$c" --passfile "$PASSFILE" info \
		>/dev/null 2>"$T/err"; st=$?
	expect_eq "config $(basename "$c") accepted (exit 1: no store)" 1 "$st"
	check "config $(basename "$c") accepted: got as far as the store" \
		grep -q "cannot open store" "$T/err"
done
sed 's/^max_age = .*/max_age = 90x/' "$T/all.ini" > "$T/bad.ini"
expect_status "a bad value in it is refused" 2 \
	"$CUSTODYCTL" -s "$T/none.db" -u admin -c "$T/bad.ini" --passfile "$PASSFILE" info

# ---- bash completion (with stand-ins for bash-completion's helpers) ----
comp() { # comp FILE WORDS... : completions for the last word
	bash -c '
		_init_completion() { words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
			cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; }
		_filedir() { COMPREPLY=($(compgen -f -- "$cur")); }
		compopt() { :; }
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		f=$(complete -p "$1" | awk "{print \$3}")
		$f; printf "%s\n" "${COMPREPLY[@]}"' _ "$@" | sort | tr '\n' ' '
}
C=$P/share/bash-completion/completions
expect_eq "complete custodyctl b" "backup " "$(comp "$C/custodyctl" custodyctl b)"
expect_eq "complete custodyctl -s S backup --f" "--force " \
	"$(comp "$C/custodyctl" custodyctl -s x.db backup --f)"
expect_eq "complete custodyctl user a" "add " "$(comp "$C/custodyctl" custodyctl user a)"
expect_eq "complete custodyctl user add x --role a" "admin auditor " \
	"$(comp "$C/custodyctl" custodyctl user add x --role a)"
expect_eq "complete custodyctl audit export --format " "csv json " \
	"$(comp "$C/custodyctl" custodyctl audit export --format '')"
expect_eq "complete custodyctl --acc" "--accept-rollback " "$(comp "$C/custodyctl" custodyctl --acc)"
for w in $("$CUSTODYCTL" --help | sed -n '/^Global options:/,/^$/p' | grep -oE '(^| )--[a-z-]+' | sort -u); do
	check "custodyctl.8 documents global option $w from --help" grep -qF -- "$w" "$T/ctl.txt"
done
expect_eq "complete custodyfs --pa" "--passfile " "$(comp "$C/custodyfs" custodyfs --pa)"
expect_eq "complete custodyfs -o ro,ex" "ro,exact_reads " "$(comp "$C/custodyfs" custodyfs -o ro,ex)"
t_finish
