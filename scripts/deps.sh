#!/usr/bin/env bash
# File dependencies from the objects (nm): "a.c -> b.c" when a.c calls or
# reads a symbol b.c defines, and every cycle among them.
# usage: scripts/deps.sh [-q] [OBJDIR|OBJ.o ...]
#   Each argument is one graph: a CMake object folder (build/primary/
#   CMakeFiles/hs_primary.dir) or object files.  Without arguments: each
#   folder's objects in build/ (the tests' aside) on their own, then all
#   of them as one graph (cycles across folders).  -q: the cycles only.
# Exit 1 when any graph has a cycle, 2 on a usage error.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
quiet=0
if [ "${1:-}" = -q ]; then
	quiet=1
	shift
fi

# edges OBJ...: "from to" per line, named folder/file.c.
edges() {
	local o
	for o in "$@"; do
		# build/primary/CMakeFiles/hs_primary.dir/send.c.o -> primary/send.c
		local name=${o##*/}
		local dir=${o%/CMakeFiles/*}
		printf '%s %s\n' "${dir##*/}/${name%.o}" "$o"
	done | while read -r name o; do
		nm "$o" | awk -v f="$name" '
			$1 == "U" { print "U", f, $2; next }
			NF == 3 && $2 ~ /^[TDBRCGSV]$/ { print "D", f, $3 }'
	done | awk '
		$1 == "D" { def[$3] = $2; next }
		{ use[NR] = $2 " " $3 }
		END {
			for (i in use) {
				split(use[i], u, " ")
				if ((u[2] in def) && def[u[2]] != u[1])
					seen[u[1] " " def[u[2]]] = 1
			}
			for (e in seen)
				print e
		}' | sort
}

# cycles: from "from to" lines, each group of files that reach each other
# (a strongly connected component: reachability, n^3 for n files), with
# the edges inside it.
cycles() {
	awk '
		{ id($1); id($2); r[n_of[$1], n_of[$2]] = 1; e[NR] = $0 }
		function id(f) { if (!(f in n_of)) { n_of[f] = ++n; name[n] = f } }
		END {
			for (k = 1; k <= n; k++)
				for (i = 1; i <= n; i++)
					if ((i, k) in r)
						for (j = 1; j <= n; j++)
							if ((k, j) in r)
								r[i, j] = 1
			for (i = 1; i <= n; i++) {
				if (done[i] || !((i, i) in r))
					continue
				line = "cycle:"
				for (j = i; j <= n; j++)
					if ((i, j) in r && (j, i) in r) {
						done[j] = 1
						grp[j] = i
						line = line " " name[j]
					}
				print line
				for (l = 1; l <= NR; l++) {
					split(e[l], f, " ")
					if (grp[n_of[f[1]]] == i && grp[n_of[f[2]]] == i)
						print "  " f[1] " -> " f[2]
				}
			}
		}'
}

# check LABEL OBJ...: print the graph's edges and cycles; 1 on a cycle.
check() {
	local label=$1 e c
	shift
	e=$(edges "$@")
	if [ "$quiet" = 0 ]; then
		echo "== $label"
		[ -n "$e" ] && echo "$e" | sed 's/ / -> /'
	fi
	[ -n "$e" ] || return 0
	c=$(echo "$e" | cycles)
	[ -z "$c" ] && return 0
	echo "in $label:"
	echo "$c"
	return 1
}

# objs DIR|OBJ...: the object files.
objs() {
	local a
	for a in "$@"; do
		if [ -d "$a" ]; then
			find "$a" -maxdepth 1 -name '*.o' | sort
		elif [ -f "$a" ]; then
			echo "$a"
		else
			echo "deps.sh: $a: no such folder or object" >&2
			exit 2
		fi
	done
}

status=0
if [ $# -gt 0 ]; then
	mapfile -t o < <(objs "$@")
	check "$*" "${o[@]}" || status=1
	exit $status
fi
all=()
for d in "$top"/build/*/CMakeFiles/*.dir; do
	case $d in "$top"/build/tests/*) continue ;; esac
	# Only objects whose source is still in the tree: a build folder
	# kept across a move holds the old ones too.
	src=${d#"$top"/build/}
	src=$top/${src%%/*}
	mapfile -t o < <(objs "$d" | while read -r f; do
		n=${f##*/}
		[ -f "$src/${n%.o}" ] && echo "$f"
	done)
	[ ${#o[@]} -gt 0 ] || continue
	all+=("${o[@]}")
	check "${d#"$top"/build/}" "${o[@]}" || status=1
done
[ ${#all[@]} -gt 0 ] || { echo "deps.sh: no objects in $top/build" >&2; exit 2; }
check "across folders" "${all[@]}" || status=1
exit $status
