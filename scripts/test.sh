#!/usr/bin/env bash
# Install what is needed, check the formatting and the layout, build
# twice (plain, and with ASan + UBSan), and run the whole test suite
# (Check unit tests and integration tests that start real hamnsync
# processes on 127.0.0.1) against both builds; last, run each fuzz target
# for 30 s (scripts/fuzz.sh: a clang build of its own).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=${HS_TEST_JOBS:-2}

"$top/scripts/install-deps.sh"
# The tree's own rules first: formatting, and what each folder may use.
"$top/scripts/check-format.sh"
"$top/scripts/check-layout.sh"
"$top/scripts/build.sh" plain
# No cycle among the files' calls, inside a folder or across them.
"$top/scripts/deps.sh" -q
"$top/scripts/build.sh" sanitize

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
for b in build build-asan; do
	echo "== tests: $b"
	(cd "$top/$b" && ctest --output-on-failure --timeout 600 -j "$jobs") ||
		status=1
done
echo "== fuzz"
"$top/scripts/fuzz.sh" "${HS_FUZZ_SECONDS:-30}" || status=1
exit $status
