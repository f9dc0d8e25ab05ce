#!/usr/bin/env bash
# Errors that name the real cause (issue 20, items 2, 8, 9).
#  2: a store the user may not read, a directory, a store on a read-only
#     file system: each named (EACCES, EISDIR, EROFS) with the path, not
#     "not a custodyfs store"; check and -o ro work on read-only files and
#     media.
#  8: usage errors exit 2 with one line naming the program; every --help
#     prints its usage once to stdout and exits 0; the messages of the
#     issue, each.
#  9: passfiles someone else could read or change are refused, as ssh
#     refuses such key files, with the program's name in the line.
. "$(dirname "$0")/../lib.sh"
command -v jq >/dev/null || { echo "$T_NAME: jq is required" >&2; exit 1; }
t_setup

NOBODY=$(id -u nobody)
NOGROUP=$(id -g nobody)
as_nobody() { setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups "$@"; }
chmod 755 "$T"
chmod 644 "$CONF"
one_line() { expect_eq "$1: one line" 1 "$(wc -l < "$T/.stderr")"; }

# =================== item 2: the real cause, with the path ===================
mkdir "$T/adir"
expect_status "a directory as store: exit 1" 1 \
	"$CUSTODYCTL" -s "$T/adir" -u admin -c "$CONF" --passfile "$PASSFILE" info
stderr_has "a directory: named, with the path" "cannot open store '$T/adir': is a directory"
check_not "a directory: not called a damaged store" grep -q "not a custodyfs store" "$T/.stderr"
one_line "a directory"
expect_status "custodyfs on a directory: exit 1" 1 \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$T/adir" "$MNT"
stderr_has "custodyfs: a directory is named" "custodyfs: cannot open store '$T/adir': is a directory"

# a store another user may not read: nobody, with its own (valid) passfile
install -o nobody -m 600 "$PASSFILE" "$T/nobody.pass"
install -d -o nobody -m 700 "$T/state-nobody"
mkdir -m 755 "$T/pub"
cp "$STORE" "$T/pub/s.db"; chmod 600 "$T/pub/s.db"
expect_status "a store nobody may not read: exit 1" 1 \
	as_nobody env XDG_STATE_HOME="$T/state-nobody" "$CUSTODYCTL" -s "$T/pub/s.db" \
	-u admin -c "$CONF" --passfile "$T/nobody.pass" info
stderr_has "EACCES: named, with the path" "cannot open store '$T/pub/s.db': permission denied"
check_not "EACCES: not called a damaged store" grep -q "not a custodyfs store" "$T/.stderr"
one_line "EACCES"

# a read-only file (mode 0444) for a user who is not its owner: check works
cp "$STORE" "$T/pub/ro.db"; chmod 644 "$T/pub/ro.db"
expect_status "check of a store read-only for the user" 0 \
	as_nobody env XDG_STATE_HOME="$T/state-nobody" "$CUSTODYCTL" -s "$T/pub/ro.db" \
	-u admin -c "$CONF" --passfile "$T/nobody.pass" check
expect_status "a write command on it: exit 1" 1 \
	as_nobody env XDG_STATE_HOME="$T/state-nobody" "$CUSTODYCTL" -s "$T/pub/ro.db" \
	-u admin -c "$CONF" --passfile "$T/nobody.pass" key rotate
stderr_has "write on a read-only file: permission denied, named" "'$T/pub/ro.db': permission denied"

# a read-only file system (a backup on read-only media, a snapshot), in a
# private mount namespace: check and -o ro work, a write is refused (EROFS)
mkdir -p "$T/media" "$T/romnt"
cp "$STORE" "$T/media/s.db"
export T CUSTODYCTL CUSTODYFS CONF PASSFILE
unshare -m --propagation private bash -c '
	t_ns_drop_fuse
	r() { echo "$1 $2"; }
	mount --bind -o ro "$T/media" "$T/media" && mount -o remount,bind,ro "$T/media" \
		|| { r fail "read-only bind mount"; exit; }
	"$CUSTODYCTL" -s "$T/media/s.db" -u admin -c "$CONF" --passfile "$PASSFILE" check \
		>/dev/null 2>"$T/ro-check.err" && r ok "check on read-only media" || r fail "check on read-only media: $(cat "$T/ro-check.err")"
	"$CUSTODYCTL" -s "$T/media/s.db" -u admin -c "$CONF" --passfile "$PASSFILE" key rotate \
		>/dev/null 2>"$T/ro-rot.err"; st=$?
	[ "$st" = 1 ] && r ok "a write command on read-only media: exit 1" || r fail "a write command on read-only media: exit $st"
	grep -q "cannot open store .*: on a read-only file system" "$T/ro-rot.err" \
		&& r ok "EROFS named" || r fail "EROFS named: $(cat "$T/ro-rot.err")"
	grep -q "not a custodyfs store" "$T/ro-rot.err" && r fail "EROFS called damage" || r ok "EROFS not called damage"
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$T/media/s.db" "$T/romnt" \
		2>"$T/ro-mnt.err"; st=$?
	[ "$st" = 1 ] && r ok "a read-write mount on read-only media: exit 1" || r fail "a read-write mount on read-only media: exit $st"
	grep -q "on a read-only file system" "$T/ro-mnt.err" && r ok "custodyfs names EROFS" || r fail "custodyfs names EROFS: $(cat "$T/ro-mnt.err")"
	if "$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" -o ro "$T/media/s.db" "$T/romnt" 2>"$T/ro-mnt2.err"; then
		r ok "-o ro mounts a store on read-only media"
		[ -d "$T/romnt" ] && ls "$T/romnt" >/dev/null && r ok "the read-only mount lists" || r fail "the read-only mount lists"
		{ echo x > "$T/romnt/new"; } 2>/dev/null && r fail "a write to the ro mount fails" || r ok "a write to the ro mount fails"
		pid=$(pgrep -n -f -- "custodyfs.* $T/romnt\$")
		fusermount3 -u "$T/romnt"
		for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	else
		r fail "-o ro mounts a store on read-only media: $(cat "$T/ro-mnt2.err")"
	fi
' > "$T/ns.out" 2>&1
while read -r res name; do
	if [ "$res" = ok ]; then ok "$name"; elif [ "$res" = fail ]; then fail "$name"; else fail "namespace: $res $name"; fi
done < "$T/ns.out"
expect_eq "namespace steps reported" 9 "$(grep -c -E '^(ok|fail) ' "$T/ns.out")"
expect_eq "the read-only media copy is untouched (no -wal left)" "" "$(ls "$T/media" | grep -v '^s.db$')"

# =================== item 8: usage errors, --help, messages ===================
usage_err() { # DESC CMD...: exit 2, one line, starts with the program's name
	local d=$1 prog; shift
	prog=$(basename "$1")
	expect_status "$d: exit 2" 2 "$@"
	expect_eq "$d: one line" 1 "$(wc -l < "$T/.stderr")"
	check "$d: the line names $prog" grep -q "^$prog: " "$T/.stderr"
}
usage_err "custodyctl without arguments" "$CUSTODYCTL"
stderr_has "custodyctl without arguments: says no command" "no command given"
usage_err "custodyctl --bogus" "$CUSTODYCTL" --bogus
usage_err "custodyctl -s without a value" "$CUSTODYCTL" -s
usage_err "custodyctl bogus" "$CUSTODYCTL" -s "$STORE" bogus
usage_err "custodyctl user" "$CUSTODYCTL" -s "$STORE" user
usage_err "custodyctl key" "$CUSTODYCTL" -s "$STORE" key
usage_err "custodyctl audit" "$CUSTODYCTL" -s "$STORE" audit
usage_err "custodyctl info --bogus" "$CUSTODYCTL" -s "$STORE" info --bogus
usage_err "custodyctl key rotate extra" "$CUSTODYCTL" -s "$STORE" key rotate extra
usage_err "custodyctl user revoke x --rate fast" "$CUSTODYCTL" -s "$STORE" user revoke x --rate fast
usage_err "custodyctl audit list --since yesterday-ish" "$CUSTODYCTL" -s "$STORE" audit list --since bogus
usage_err "custodyfs without arguments" "$CUSTODYFS"
usage_err "custodyfs STORE without a mount point" "$CUSTODYFS" "$STORE"
stderr_has "custodyfs STORE: says the mount point is missing" "no mount point given"
usage_err "custodyfs --bogus" "$CUSTODYFS" --bogus "$STORE" "$MNT"
usage_err "custodyfs -o without a value" "$CUSTODYFS" "$STORE" "$MNT" -o
usage_err "custodyfs S M extra" "$CUSTODYFS" "$STORE" "$MNT" extra
usage_err "custodyfs -o idle=soon" "$CUSTODYFS" -o idle=soon "$STORE" "$MNT"
# an option FUSE does not know: a usage error, before the passphrase
ASKED=$T/asked
usage_err "custodyfs -o bogus" "$CUSTODYFS" -u admin -c "$CONF" \
	--extpass "touch '$ASKED'; cat '$PASSFILE'" -o bogus "$STORE" "$MNT"
stderr_has "-o bogus: names the option" "unknown mount option 'bogus'"
check_not "-o bogus: refused before the passphrase was asked" test -e "$ASKED"
check_not "-o bogus: nothing mounted" mountpoint -q "$MNT"
check "an option FUSE knows passes (-o max_read=131072)" \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" -o max_read=131072 "$STORE" "$MNT"
T_MOUNTS+=("$MNT"); t_track "$MNT"
sleep 0.5
check "and the session serves with it (write, read back)" \
	sh -c "echo max > '$MNT/mr' && [ \"\$(cat '$MNT/mr')\" = max ]"
check "unmount" t_umount

# every --help: usage on stdout, once; nothing on stderr; exit 0
helps=("" "init" "info" "check" "backup" "compact" "upgrade" "user" "user add"
       "user del" "user revoke" "user passwd" "user role" "user unlock"
       "user list" "key" "key list" "key rotate" "key retire" "key destroy"
       "reencrypt" "audit" "audit list" "audit verify" "audit export"
       "audit prune" "login" "logout" "whoami")
for h in "${helps[@]}"; do
	# shellcheck disable=SC2086
	"$CUSTODYCTL" $h --help > "$T/h.out" 2> "$T/h.err"; st=$?
	expect_eq "custodyctl $h --help: exit 0" 0 "$st"
	expect_eq "custodyctl $h --help: nothing on stderr" "" "$(cat "$T/h.err")"
	expect_eq "custodyctl $h --help: usage once, first" "1 usage:" \
		"$(grep -c '^usage:' "$T/h.out") $(head -1 "$T/h.out" | cut -d' ' -f1)"
done
"$CUSTODYFS" --help > "$T/h.out" 2>"$T/h.err"
expect_eq "custodyfs --help: exit 0, usage first" "0 usage:" "$? $(head -1 "$T/h.out" | cut -d' ' -f1)"

# user add without a terminal: the new passphrase needs --new-passfile
setsid -w "$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$PASSFILE" \
	user add bob --role writer </dev/null >/dev/null 2>"$T/.stderr"; st=$?
expect_eq "user add without a terminal: exit 2" 2 "$st"
stderr_has "it points at --new-passfile" "new passphrase of 'bob'.*--new-passfile"
check_not "it does not point at --passfile" grep -q "use --passfile or --extpass" "$T/.stderr"
# the last admin: a refusal of the store's state (1), not of the role (5)
expect_status "the last admin cannot delete themself: exit 1" 1 ctl user del admin
stderr_has "says why" "cannot remove themself"
expect_status "the last admin cannot be demoted: exit 1" 1 ctl user role admin writer
stderr_has "says it is the last admin" "last admin"
expect_status "nor revoked (themself): exit 1" 1 ctl user revoke admin
expect_status "the admin is still an admin" 0 ctl user list
# a failing default user says which user was tried
"$CUSTODYCTL" -s "$STORE" -c "$CONF" --passfile "$PASSFILE" info >/dev/null 2>"$T/.stderr"; st=$?
expect_eq "the default user (the login name, root) is unknown: exit 3" 3 "$st"
stderr_has "the message names the user tried" "for user 'root'"
# configuration errors: where and what
cfgerr() { # DESC CONTENT REGEX
	printf "$2" > "$T/bad.ini"
	expect_status "$1: exit 2" 2 "$CUSTODYCTL" -s "$STORE" -u admin -c "$T/bad.ini" --passfile "$PASSFILE" info
	one_line "$1"
	stderr_has "$1: says $3" "$3"
}
cfgerr "a section without ']'" '[mount\nidle_checkpoint = 1s\n' "bad.ini:1: '\[mount': a section header needs its closing '\]'"
cfgerr "an unknown section" '[kdf]\nopslimit = 1\n[bogus]\nx = 1\n' "bad.ini:3: unknown section \[bogus\]"
cfgerr "a setting outside any section" 'opslimit = 1\n' "bad.ini:1: 'opslimit = 1' is outside any section"
cfgerr "an unknown setting" '[mount]\nbogus = 1\n' "bad.ini:2: \[mount\] bogus: unknown setting"
cfgerr "a bad value" '[mount]\ncommit_interval = 2h\n' "bad.ini:2: \[mount\] commit_interval: expected"
check "weeks are a duration in the config" sh -c "printf '[keys]\nmax_age = 12w\n' > '$T/w.ini' && \
	'$CUSTODYCTL' -s '$STORE' -u admin -c '$T/w.ini' --passfile '$PASSFILE' info >/dev/null"

# key destroy (irreversible) asks on a terminal, as cryptsetup does
expect_status "rotate" 0 ctl key rotate
expect_status "reencrypt" 0 ctl reencrypt
expect_status "retire v1" 0 ctl key retire 1
expect_status "key destroy without a terminal and without --yes: refused" 2 ctl key destroy 1
stderr_has "it says to confirm with --yes" "confirm with --yes"
status() { ctl key list --json | jq -r '.[] | select(.version == 1) | .status'; }
on_tty() { # ANSWER: key destroy 1 on a terminal, answering ANSWER
	printf '%s\n' "$1" | script -qec "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' \
		--passfile '$PASSFILE' key destroy 1" /dev/null > "$T/tty.out" 2>&1
}
on_tty no; st=$?
check "on a terminal it asks" grep -q "Destroy key v1 for good" "$T/tty.out"
check "answered no: refused" test "$st" -ne 0
expect_eq "answered no: v1 is still retired" retired "$(status)"
on_tty YES; st=$?
expect_eq "answered YES: done" 0 "$st"
expect_eq "answered YES: v1 destroyed" destroyed "$(status)"

# =================== item 9: passfiles ===================
pw() { # MODE [OWNER]: a copy of the admin passfile with that mode and owner
	rm -f "$T/p"; cp "$PASSFILE" "$T/p"; chmod "$1" "$T/p"; chown "${2:-root}" "$T/p"
}
refused() { # DESC PATTERN CMD...
	local d=$1 re=$2; shift 2
	expect_status "$d: refused (exit 2)" 2 "$@"
	one_line "$d"
	stderr_has "$d: says why" "$re"
}
pw 644
refused "custodyctl, passfile 0644" "^custodyctl: passfile '$T/p' is open to others \(mode 0644\)" \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/p" info
pw 640
refused "custodyctl, passfile 0640" "^custodyctl: passfile .* is open to its group \(mode 0640\)" \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/p" info
pw 660
refused "custodyfs, passfile 0660" "^custodyfs: passfile .* is open to its group" \
	"$CUSTODYFS" -u admin -c "$CONF" --passfile "$T/p" "$STORE" "$MNT"
check_not "custodyfs, passfile 0660: nothing mounted" mountpoint -q "$MNT"
pw 600 nobody
refused "passfile owned by another user" "passfile '$T/p' is owned by uid $NOBODY, not by you" \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/p" info
pw 644
refused "custodyfs -o passfile=, 0644" "^custodyfs: passfile" \
	"$CUSTODYFS" -u admin -c "$CONF" -o "passfile=$T/p" "$STORE" "$MNT"
pw 644; cp "$T/p" "$T/new.pass"; chmod 644 "$T/new.pass"
refused "a new passfile (user add --new-passfile) 0644" "passfile '$T/new.pass' is open to others" \
	ctl user add carol --role reader --new-passfile "$T/new.pass"
pw 600
expect_status "mode 0600: accepted" 0 "$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/p" info
pw 400
expect_status "mode 0400: accepted" 0 "$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile "$T/p" info
expect_status "a pipe (not a file): accepted" 0 \
	"$CUSTODYCTL" -s "$STORE" -u admin -c "$CONF" --passfile <(cat "$PASSFILE") info
# root's passfile shared with a service user through its group (a systemd
# credential with an ACL looks the same): accepted; open to others: not
mkdir -m 777 "$T/shared"
cp "$STORE" "$T/shared/s.db"; chmod 666 "$T/shared/s.db"
pw 440; chgrp "$NOGROUP" "$T/p"
expect_status "root's passfile, readable by nobody's group: accepted for nobody" 0 \
	as_nobody env XDG_STATE_HOME="$T/state-nobody" "$CUSTODYCTL" -s "$T/shared/s.db" \
	-u admin -c "$CONF" --passfile "$T/p" info
pw 444
refused "root's passfile open to others: refused for nobody" "open to others" \
	as_nobody env XDG_STATE_HOME="$T/state-nobody" "$CUSTODYCTL" -s "$T/shared/s.db" \
	-u admin -c "$CONF" --passfile "$T/p" info
t_finish
