#!/usr/bin/env bash
# tests/layers.sh (make layers): the layering of src/ is a rule the build
# checks, not a habit (src/README.md):
#
#   lib < store < keys < fs < fuse, cli
#
# A file in src/L may include its own folder's private headers and the
# public headers of include/L and of every layer below L; never a layer
# above, and fuse and cli never each other. Each library's header has one
# home: sodium.h only in src/lib/cipher.c, ini.h only in src/lib/config.c,
# sqlite3.h only in src/store, the FUSE headers (libfuse's, and the
# kernel's linux/fuse.h) only in src/fuse/fsops.c and src/fuse/wire.c.
# No header reaches itself through its includes (no circular includes).
# Prints one line per violation and exits 1 if there is any.
set -u
cd "$(dirname "$0")/.."

rank() {
	case $1 in
	lib) echo 0 ;; store) echo 1 ;; keys) echo 2 ;; fs) echo 3 ;;
	fuse | cli) echo 4 ;; *) echo 99 ;;
	esac
}

bad=0
violation() { echo "layers: $1"; bad=1; }

# where a project header lives: "L" for include/L/NAME, "private:L" for src/L/NAME
home_of() {
	local name=$1 d
	for d in include/*/; do
		[ -f "$d$name" ] && { basename "$d"; return; }
	done
	for d in src/*/; do
		[ -f "$d$name" ] && { echo "private:$(basename "$d")"; return; }
	done
	echo "?"
}

check_file() {
	local f=$1 layer=$2 r inc home hl
	r=$(rank "$layer")
	while IFS= read -r inc; do
		home=$(home_of "$inc")
		case $home in
		"?") violation "$f includes \"$inc\", which is no header of the project" ;;
		private:*)
			hl=${home#private:}
			[ "$hl" = "$layer" ] && [[ $f == src/$layer/* ]] ||
				violation "$f includes \"$inc\", private to src/$hl"
			;;
		*)
			if [ "$(rank "$home")" -gt "$r" ]; then
				violation "$f ($layer) includes \"$inc\" of the higher layer $home"
			elif [ "$(rank "$home")" -eq "$r" ] && [ "$home" != "$layer" ]; then
				violation "$f ($layer) includes \"$inc\" of the side layer $home"
			fi
			;;
		esac
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
	# relative includes would get round the include paths
	grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*/' "$f" |
		while IFS= read -r l; do echo "layers: $f: relative include: $l"; done | grep . && bad=1
	return 0
}

for layer_dir in src/*/ include/*/; do
	layer=$(basename "$layer_dir")
	[ "$(rank "$layer")" = 99 ] && { violation "$layer_dir is no layer (lib store keys fs fuse cli)"; continue; }
	for f in "$layer_dir"*.c "$layer_dir"*.h; do
		[ -f "$f" ] && check_file "$f" "$layer"
	done
done

# one home per library header
only() {
	local pattern=$1 allowed=$2 f
	for f in $(grep -rlE "^[[:space:]]*#[[:space:]]*include[[:space:]]*<($pattern)" src include); do
		[[ $f =~ ^($allowed)$ ]] || violation "$f includes <$pattern>, allowed only in $allowed"
	done
}
only 'sodium\.h|sodium/' 'src/lib/cipher\.c'
only 'ini\.h' 'src/lib/config\.c'
only 'sqlite3\.h' 'src/store/[a-z_]+\.(c|h)'
only 'fuse[a-z_0-9]*\.h|fuse3/|linux/fuse\.h' 'src/fuse/(fsops|wire)\.c'

# no circular includes among the project's headers (inside one layer the
# ranks above cannot see them): a header that reaches itself is a cycle
declare -A HDR_PATH=() HDR_INC=()
for h in include/*/*.h src/*/*.h; do
	[ -f "$h" ] && HDR_PATH[$(basename "$h")]=$h
done
for n in "${!HDR_PATH[@]}"; do
	HDR_INC[$n]=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' \
		"${HDR_PATH[$n]}" | tr '\n' ' ')
done
for n in "${!HDR_PATH[@]}"; do
	declare -A seen=()
	todo=(${HDR_INC[$n]})
	while [ ${#todo[@]} -gt 0 ]; do
		m=${todo[0]}; todo=("${todo[@]:1}")
		[ -n "${seen[$m]:-}" ] && continue
		seen[$m]=1
		if [ "$m" = "$n" ]; then
			violation "${HDR_PATH[$n]} includes itself through a cycle of headers"
			break
		fi
		[ -n "${HDR_INC[$m]:-}" ] && todo+=(${HDR_INC[$m]})
	done
	unset seen
done

# nothing is left outside the layer folders
for f in src/*.c src/*.h include/*.h; do
	[ -f "$f" ] && violation "$f is outside the layer folders"
done

if [ $bad = 0 ]; then
	echo "layers: ok (lib < store < keys < fs < fuse, cli)"
fi
exit $bad
