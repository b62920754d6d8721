#!/usr/bin/env bash
# Fail when a C file of the tree is not formatted as .clang-format says.
# Debian 12's clang-format (14) is the reference; `--fix` rewrites them.
# Build folders (build*) are not the tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
# find, not git ls-files: CI may get the tree without its history.
mapfile -t files < <(find . \( -name .git -o -name 'build*' \) -prune -o \
	\( -name '*.c' -o -name '*.h' \) -type f -print | sort)
if [ "${1:-}" = --fix ]; then
	clang-format -i "${files[@]}"
	exit 0
fi
bad=()
for f in "${files[@]}"; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -ne 0 ]; then
	echo "check-format: not formatted (scripts/check-format.sh --fix):" >&2
	printf '  %s\n' "${bad[@]}" >&2
	exit 1
fi
echo "check-format: ${#files[@]} files formatted"
