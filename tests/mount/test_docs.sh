#!/usr/bin/env bash
# The docs agree with the code (issue 20, item 11), both ways: every
# command, option, exit status and environment variable in custodyfs(1),
# custodyctl(8), the README's synopsis and the --help texts exists in the
# code, and everything the code parses is in the man pages and --help;
# each command's options in its man entry are those of its --help; the
# unit, env file and store user are named the same everywhere; the fstab
# line of the man page and README mounts at boot (no noauto) and works.
. "$(dirname "$0")/../lib.sh"
t_setup
SRC=$TOP/src
D=$T/docs
mkdir -p "$D"
page() { LC_ALL=C MANWIDTH=250 man -l "$TOP/etc/$1" 2>/dev/null | col -b; }
page custodyctl.8 > "$D/ctl.txt"
page custodyfs.1 > "$D/fs.txt"
section() { # FILE NAME: the lines of one top-level section
	awk -v s="$2" '/^[A-Z]/ { on = ($0 == s) ; next } on' "$1"
}
# same DESC A B: two sorted word lists are equal (the difference is named)
same() {
	local d=$1 a=$2 b=$3 only_a only_b
	only_a=$(comm -23 <(sort -u <<<"$a") <(sort -u <<<"$b") | paste -sd' ')
	only_b=$(comm -13 <(sort -u <<<"$a") <(sort -u <<<"$b") | paste -sd' ')
	if [ -z "$only_a$only_b" ]; then ok "$d"
	else fail "$d: only in the first: [$only_a], only in the second: [$only_b]"; fi
}
# subset DESC A B: every word of A is in B
subset() {
	local extra
	extra=$(comm -23 <(sort -u <<<"$2") <(sort -u <<<"$3") | paste -sd' ')
	if [ -z "$extra" ]; then ok "$1"; else fail "$1: not found: [$extra]"; fi
}
longopts() { grep -oE -- '--[a-z][a-z-]*[a-z]' | sort -u; }
# the command words that open a synopsis segment ("user add NAME ..." ->
# "user add"), one per line
cmdwords() {
	sed 's/ | /\n/g' | sed -E 's/^ +//' | awk '
		$1 ~ /^(user|key|audit)$/ && $2 ~ /^[a-z]+$/ { print $1 " " $2; next }
		$1 ~ /^[a-z]+$/ { print $1 }' | sort -u
}

# =============== custodyctl: commands ===============
code_cmds=$( {
	grep -oE '\{ "[a-z]+", cmd_[a-z]+ \}' "$SRC/cli/custodyctl.c" | cut -d'"' -f2 |
		grep -vxE 'user|key|audit'
	grep -oE '\{ "[a-z]+", (user_[a-z]+|cli_user_revoke) \}' "$SRC/cli/cli_user.c" |
		cut -d'"' -f2 | sed 's/^/user /'
	sed -n '/^int cmd_key/,/^}/p' "$SRC/cli/cli_key.c" |
		grep -oE 'strcmp\(argv\[1\], "[a-z]+"\)' | cut -d'"' -f2 | sed 's/^/key /'
	grep -oE '\{ "[a-z]+", audit_[a-z_]+ \}' "$SRC/cli/cli_audit.c" | cut -d'"' -f2 |
		sed 's/^/audit /'
} | sort -u)
check "the code has commands ($(wc -l <<<"$code_cmds"))" test "$(wc -l <<<"$code_cmds")" -ge 25
help_cmds=$("$CUSTODYCTL" --help | sed -n '/^Commands:/,/^$/p' | grep -E '^  [a-z]' | cmdwords)
man_cmds=$(section "$D/ctl.txt" COMMANDS | grep -E '^ {7}[a-z]' | cmdwords)
readme_syn=$(awk '/^custodyctl \[-s STORE\]/ { on = 1; next } on && /^```/ { exit } on' "$TOP/README.md")
readme_cmds=$(grep -E '^  [a-z]' <<<"$readme_syn" | cmdwords)
same "custodyctl commands: code = --help" "$code_cmds" "$help_cmds"
same "custodyctl commands: code = custodyctl(8)" "$code_cmds" "$man_cmds"
same "custodyctl commands: code = README synopsis" "$code_cmds" "$readme_cmds"
for c in login logout whoami; do
	check "custodyctl(8) documents $c" grep -qx "$c" <<<"$man_cmds"
done

# =============== custodyctl: options ===============
code_opts=$( {
	cat "$SRC"/cli/*.c | grep -oE '"--[a-z][a-z-]*[a-z]"' | tr -d '"'
	sed -n '/longopts\[\] = {/,/};/p' "$SRC/cli/custodyctl.c" | grep -oE '\{ "[a-z-]+"' |
		cut -d'"' -f2 | sed 's/^/--/'
} | sort -u)
help_all=$( { "$CUSTODYCTL" --help
	while read -r c; do
		# shellcheck disable=SC2086
		"$CUSTODYCTL" $c --help
	done <<<"$code_cmds"; } 2>&1)
same "custodyctl options: code = the --help texts" "$code_opts" "$(longopts <<<"$help_all")"
same "custodyctl options: code = custodyctl(8)" "$code_opts" "$(longopts < "$D/ctl.txt")"
subset "custodyctl options: README synopsis ⊆ code" "$(longopts <<<"$readme_syn")" "$code_opts"
# per command: the man entry's options are its --help's (global ones aside)
globals='^--(passfile|extpass|help|version)$'
man_entry() { # the man text of command $1: its tag line to the next tag
	section "$D/ctl.txt" COMMANDS | awk -v c="$1" '
		/^       [a-z]/ || /^   [A-Z]/ {
			w = $1; if ($1 ~ /^(user|key|audit)$/) w = $1 " " $2
			on = (w == c) }
		on'
}
while read -r c; do
	# shellcheck disable=SC2086
	h=$("$CUSTODYCTL" $c --help 2>&1 | longopts | grep -vE "$globals")
	m=$(man_entry "$c" | longopts | grep -vE "$globals")
	same "custodyctl $c: options of --help = of its custodyctl(8) entry" "$h" "$m"
done <<<"$code_cmds"
# the global short options
for o in -s -u -c -h -V; do
	check "custodyctl $o: in the code" grep -q "\"+:s:u:c:hV\"" "$SRC/cli/custodyctl.c"
	check "custodyctl $o: in --help" grep -qE -- "(^| )$o( |,)" <("$CUSTODYCTL" --help)
	check "custodyctl $o: in custodyctl(8)" grep -qE -- "^ {7}$o( |,|$)" <(section "$D/ctl.txt" "GLOBAL OPTIONS")
done

# =============== custodyfs: options and -o words ===============
gs=$(grep -oE 'getopt_long\(argc, argv, "[^"]+"' "$SRC/fuse/custodyfs.c" | cut -d'"' -f2)
expect_eq "custodyfs getopt string" ":u:c:o:fdhV" "$gs"
fs_code=$( { grep -o '[a-zA-Z]' <<<"${gs//:/}" | sed 's/^/-/'
	sed -n '/longopts\[\] = {/,/};/p' "$SRC/fuse/custodyfs.c" | grep -oE '\{ "[a-z-]+"' |
		cut -d'"' -f2 | sed 's/^/--/'; } | sort -u)
fs_help=$("$CUSTODYFS" --help)
fs_opts_man=$(section "$D/fs.txt" OPTIONS)
flags() { grep -oE -- '(^|[ ,\[])(-[a-zA-Z]|--[a-z][a-z-]*[a-z])\b' | grep -oE -- '-.*' | sort -u; }
same "custodyfs flags: code = --help" "$fs_code" "$(grep -E '^  -' <<<"$fs_help" | flags)"
same "custodyfs flags: code = custodyfs(1) OPTIONS" "$fs_code" "$(grep -E '^ {7}-' <<<"$fs_opts_man" | flags)"
readme_fs=$(awk '/^custodyfs \[-u USER\]/ { on = 1; print; next } on && /^$/ { exit } on' "$TOP/README.md")
subset "custodyfs flags: README synopsis ⊆ code" "$(head -1 <<<"$readme_fs" | flags)" "$fs_code"
# -o words: the code's (parse_o), --help's, the man page's, the README's
po=$(sed -n '/^static int parse_o/,/^}/p' "$SRC/fuse/custodyfs.c")
fstab='^(dev|suid|nodev|nosuid|exec|noexec|auto|noauto|_netdev|nofail|x-|defaults)$'
o_code=$( { grep -oE 'strcmp\(tok, "[a-z_]+"\)' <<<"$po" | cut -d'"' -f2
	grep -oE 'strncmp\(tok, "[a-z_-]+="?, [0-9]\)' <<<"$po" | cut -d'"' -f2; } | sort -u)
o_ours=$(grep -vE "$fstab" <<<"$o_code")
# (each line of the -o list at 6 columns opens with "word[=VALUE][, ...]")
o_help=$(sed -n '/-o OPTIONS/,/other options are passed/p' <<<"$fs_help" | grep -v 'other options' |
	grep -oE '^ {6}[a-z_]+(=[A-Z]+)?(, [a-z_]+(=[A-Z]+)?)*' | sed -E 's/^ +//; s/, /\n/g' |
	sed -E 's/=[A-Z]+$/=/' | sort -u)
same "-o words: code = --help" "$o_ours" "$(grep -vE "$fstab" <<<"$o_help")"
# the tags of -o's list in the page's source: the line after each .TP
# between ".BI \-o" and ".RE" (".BR ro \", \" rw", ".BI idle= DURATION")
o_man=$(sed -n '/^\.BI \\-o " OPTIONS"/,/^\.RE/p' "$TOP/etc/custodyfs.1" |
	awk '/^\.TP/ { tag = 1; next } tag { print; tag = 0 }' |
	sed -E 's/^\.[A-Z]+ //; s/"//g; s/,/ /g' | tr ' ' '\n' | grep -E '^[a-z_]+=?$' | sort -u)
same "-o words: code = custodyfs(1)" "$o_ours" "$o_man"
for w in $(grep -E "$fstab" <<<"$o_code" | grep -v 'x-'); do
	check "custodyfs(1) names the fstab word $w" grep -qE "(^| |,)$w(,| |$)" <<<"$fs_opts_man"
done
o_readme=$(grep -oE -- '-o [a-z_]+=?(, [a-z_]+=?)*' <<<"$readme_fs" | sed 's/^-o //; s/, /\n/g' | sort -u)
o_readme2=$(grep -oE -- '-o [a-z_=,]+' <<<"$readme_fs" | sed 's/^-o //' | tr ',' '\n' | sed '/^$/d' | sort -u)
subset "-o words: README ⊆ code" "$(printf '%s\n%s\n' "$o_readme" "$o_readme2" | sort -u)" "$o_code"
same "-o words: README = code" "$o_ours" "$(printf '%s\n%s\n' "$o_readme" "$o_readme2" | sort -u)"

# =============== exit statuses ===============
code_st=$(sed -n '/^enum {/,/^};/p' "$TOP/include/keys/unlock.h" | grep -oE 'EXIT_[A-Z]+ = [0-9]+' |
	awk '{print $3}' | sort -n)
expect_eq "the code's exit statuses" "0 1 2 3 4 5 6" "$(paste -sd' ' <<<"$code_st")"
for f in ctl:custodyctl.8 fs:custodyfs.1; do
	st=$(section "$D/${f%%:*}.txt" "EXIT STATUS" | grep -oE '^ {7}[0-9]+' | tr -d ' ' | sort -n)
	same "exit statuses: code = ${f#*:}" "$code_st" "$st"
done
st=$(grep -oE '^\| [0-9] \|' "$TOP/README.md" | grep -oE '[0-9]' | sort -n)
same "exit statuses: code = the README's table" "$code_st" "$st"
for p in "$CUSTODYCTL" "$CUSTODYFS"; do
	st=$("$p" --help | sed -n '/^Exit status:/,/^$/p' | grep -oE '(^|[ :,])[0-9]( |,)' | grep -oE '[0-9]' | sort -n)
	same "exit statuses: code = $(basename "$p") --help" "$code_st" "$st"
done

# =============== environment ===============
code_env=$(grep -rhoE 'getenv\("[A-Z_]+"\)' "$SRC" | cut -d'"' -f2 | sort -u)
man_env=$( { section "$D/ctl.txt" ENVIRONMENT; section "$D/fs.txt" ENVIRONMENT; } |
	grep -oE '^ {7}[A-Z_]+' | tr -d ' ' | sort -u)
subset "environment: every getenv() is in a man page" "$code_env" "$man_env"
subset "environment: every man page variable is read (SQLite reads SQLITE_TMPDIR)" \
	"$man_env" "$(printf '%s\nSQLITE_TMPDIR\n' "$code_env")"

# =============== the unit, its files and user, named alike ===============
UNIT=$TOP/etc/custodyfs@.service
user=$(sed -n 's/^Environment=.*CUSTODY_USER=\([^ ]*\).*/\1/p' "$UNIT")
for w in "custodyfs@.service" "/var/lib/custodyfs/NAME.db" "/srv/custodyfs/NAME" \
         "/etc/custodyfs/NAME.pass" "/etc/custodyfs/NAME.env" "CUSTODY_USER=" \
         "CUSTODY_OPTIONS=" "store user $user"; do
	check "custodyfs(1) says '$w'" grep -qF -- "$w" "$D/fs.txt"
done
for w in "custodyfs@.service" "/var/lib/custodyfs/NAME.db" "/srv/custodyfs/NAME" \
         "/etc/custodyfs/NAME.pass" "/etc/custodyfs/NAME.env" "CUSTODY_USER=" \
         "CUSTODY_OPTIONS=" "store user \`$user\`"; do
	check "the README says '$w'" grep -qF -- "$w" "$TOP/README.md"
done
for w in "/var/lib/custodyfs/%i.db" "/srv/custodyfs/%i" "/etc/custodyfs/%i.pass" "/etc/custodyfs/%i.env"; do
	check "the unit uses '$w'" grep -qF -- "$w" "$UNIT"
done
check_not "no 'NAME.user' in the man page" grep -q "NAME.user" "$D/fs.txt"
check_not "no 'NAME.user' in the README" grep -q "NAME.user" "$TOP/README.md"
check "make install puts custodyctl in bin" grep -q 'install -m 0755 custodyctl $(DESTDIR)$(PREFIX)/bin/custodyctl' "$TOP/Makefile"
check_not "and nothing in sbin" grep -q 'sbin' "$TOP/Makefile"

# =============== the fstab line: mounts at boot, and works ===============
line=$(grep -E '^ +/var/lib/custodyfs/team.db /srv/custodyfs/team fuse.custodyfs ' "$D/fs.txt" | sed 's/^ *//')
check "custodyfs(1) has an fstab line" test -n "$line"
check_not "it mounts at boot (no noauto)" grep -qE '(^|[ ,])noauto(,| )' <<<"$line"
check "the README has the same line" grep -qF -- "$line" "$TOP/README.md"
# that line, with this test's paths, through mount(8) and mount.fuse3
pf mount 'mount-passphrase'
expect_status "the fstab line's user (mount, a writer)" 0 ctl user add mount --role writer --new-passfile "$T/mount.pass"
tline=$(sed -e "s|/var/lib/custodyfs/team.db|$STORE|; s|/srv/custodyfs/team|$MNT|; \
	s|/etc/custodyfs/team.pass|$T/mount.pass|; s|x-systemd.requires-mounts-for=/var/lib/custodyfs|x-systemd.requires-mounts-for=$T|; \
	s| 0 0\$|,config=$CONF 0 0|" <<<"$line")
printf '%s\n' "$tline" > "$T/fstab"
mkdir -p "$T/bin"; cp "$CUSTODYFS" "$T/bin/custodyfs"
T_MOUNTS+=("$MNT")
export T MNT
unshare -m --propagation private bash -c '
	t_ns_drop_fuse
	mount --bind "$T/bin" /usr/local/bin || exit 9
	mount -T "$T/fstab" "$MNT" 2>"$T/fstab.err" || exit 1
	echo via-fstab > "$MNT/f" && [ "$(cat "$MNT/f")" = via-fstab ] || exit 2
	pid=$(pgrep -n -f -- "custodyfs.* $MNT( |\$)")
	umount "$MNT" || exit 3
	for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.05; done
	exit 4
'
expect_eq "the documented fstab line mounts, serves and unmounts ($(cat "$T/fstab.err" 2>/dev/null))" 0 "$?"
t_finish
