#!/usr/bin/env bash
# Build hamnsync.  usage: scripts/build.sh [plain|sanitize|fuzz] [extra cmake args]
# plain -> build/, sanitize -> build-asan/ (ASan + UBSan).  Warnings are
# errors in both, and both are test builds: the failpoints are compiled in
# (a package is built without -DHS_FAILPOINTS=ON and has none).  fuzz ->
# build-fuzz/: clang, every library instrumented for libFuzzer with ASan +
# UBSan, and only the targets of tests/fuzz built (scripts/fuzz.sh); clang
# warnings are errors in those targets only.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-plain}
shift || true
case "$kind" in
plain) dir=$top/build; flags=(-DHS_WERROR=ON -DHS_FAILPOINTS=ON) ;;
sanitize) dir=$top/build-asan; flags=(-DHS_WERROR=ON -DHS_SANITIZE=ON -DHS_FAILPOINTS=ON) ;;
fuzz) dir=$top/build-fuzz; flags=(-DCMAKE_C_COMPILER=clang -DHS_FUZZ=ON) ;;
*) echo "usage: $0 [plain|sanitize|fuzz]" >&2; exit 2 ;;
esac
cmake -S "$top" -B "$dir" "${flags[@]}" "$@" >/dev/null
if [ "$kind" = fuzz ]; then
	cmake --build "$dir" -j "$(nproc)" --target fuzz_all
else
	cmake --build "$dir" -j "$(nproc)"
fi
