#!/usr/bin/env bash
# Build hamnsync.  usage: scripts/build.sh [plain|sanitize] [extra cmake args]
# plain -> build/, sanitize -> build-asan/ (ASan + UBSan).  Warnings are
# errors in both, and both are test builds: the failpoints are compiled in
# (a package is built without -DHS_FAILPOINTS=ON and has none).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-plain}
shift || true
case "$kind" in
plain) dir=$top/build; flags=(-DHS_WERROR=ON -DHS_FAILPOINTS=ON) ;;
sanitize) dir=$top/build-asan; flags=(-DHS_WERROR=ON -DHS_SANITIZE=ON -DHS_FAILPOINTS=ON) ;;
*) echo "usage: $0 [plain|sanitize]" >&2; exit 2 ;;
esac
cmake -S "$top" -B "$dir" "${flags[@]}" "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
