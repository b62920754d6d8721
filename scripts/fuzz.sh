#!/usr/bin/env bash
# Build the libFuzzer targets (scripts/build.sh fuzz -> build-fuzz/) and
# run each for SECONDS (default 30) on a copy of its seed corpus
# (tests/fuzz/corpus/<target>/), two at a time.  Fails on any crash,
# leak, sanitizer report, input slower than 10 s, or use of more than
# 256 MiB.  usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Each run's log, grown corpus and failing input stay in
# build-fuzz/fuzz-runs/<target>/.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=(fuzz_frame fuzz_request fuzz_reply fuzz_journal fuzz_patch
		fuzz_manifest fuzz_conf fuzz_ctl fuzz_delta fuzz_apply)
fi

"$top/scripts/build.sh" fuzz >/dev/null
bin=$top/build-fuzz/bin
runs=$top/build-fuzz/fuzz-runs
# ASan holds freed memory in a quarantine to catch its use; its default
# of 256 MiB alone would pass the limit, which is there for what the code
# under test allocates.  Set after what the caller gives (test.sh exports
# its own options for the sanitizer build), since the last one wins.
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=32:malloc_context_size=20"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# fuzz_apply writes a target_root and an index in a folder of its own
# under this one: in memory when /dev/shm is there, so fsync costs
# nothing.  Removed at exit, whatever a crashed run left in it.
mkdir -p "$runs"
HS_FUZZ_TMP=$(mktemp -d -p /dev/shm hs-fuzz.XXXXXX 2>/dev/null ||
	mktemp -d -p "$runs" tmp.XXXXXX)
export HS_FUZZ_TMP
trap 'rm -rf "$HS_FUZZ_TMP"' EXIT

run_one() {
	local t=$1 dir=$runs/$1 dict=()

	rm -rf "$dir"
	mkdir -p "$dir/corpus"
	cp "$top/tests/fuzz/corpus/$t/"* "$dir/corpus/"
	if [ -f "$top/tests/fuzz/$t.dict" ]; then
		dict=(-dict="$top/tests/fuzz/$t.dict")
	fi
	if "$bin/$t" -max_total_time="$secs" -rss_limit_mb=256 -timeout=10 \
		"${dict[@]}" -artifact_prefix="$dir/" -print_final_stats=1 \
		"$dir/corpus" >"$dir/log" 2>&1; then
		touch "$dir/ok"
		echo "$t: ok: $(summary "$dir/log")"
	else
		echo "$t: FAILED (log, input: $dir/)"
		grep -E "ERROR|SUMMARY|check failed|Test unit written" \
			"$dir/log" | head -5 | sed 's/^/  /'
		return 1
	fi
}

# Runs, coverage (cov: edges) and features, from the last status line.
summary() {
	grep -E '^#[0-9]+' "$1" | tail -1 |
		sed -E 's/^#([0-9]+).*cov: ([0-9]+) ft: ([0-9]+).*/\1 runs, cov \2, ft \3/'
}

# Two at a time (2 cores); each run that passes says so, and a run that
# says nothing (it could not even start) failed.
for t in "${targets[@]}"; do
	while [ "$(jobs -pr | wc -l)" -ge 2 ]; do
		wait -n || true
	done
	run_one "$t" &
done
wait
status=0
for t in "${targets[@]}"; do
	if [ ! -e "$runs/$t/ok" ]; then
		[ -e "$runs/$t/log" ] || echo "$t: FAILED before it ran"
		status=1
	fi
done
exit $status
