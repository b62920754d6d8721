#!/usr/bin/env bash
# Renames journalled between two set runs, while the index cannot take
# journal entries (failpoint primary.journal_write, on every hit): the
# daemon warns and goes on, and the failure must not be written to the
# report of the run before (the caller's, gone by then).  Under ASan the
# old report is a freed stack frame (detect_stack_use_after_return), so
# a write through the sender's stale pointer is a sanitizer report here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init rename_journal
D=$T/src/data
mkdir -p "$D/sub"
for i in $(seq 1 10); do echo "file $i" >"$D/sub/f$i"; done
hs_setup_pair "
[path data]
source = $D"
hs_start_standby
hs_sync
hs_sync_check "seed sync" "$D"

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_stack_use_after_return=1"
HAMNSYNC_DEBUG=1 HAMNSYNC_FAILPOINTS="primary.journal_write=err(ENOSPC)" \
	hs_start_primary
hs_wait_log "$T/primary.log" "connected to" 1 20 ||
	hs_fail "the primary did not connect: $(tail -5 "$T/primary.log")"

# A set run, then renames (journalled before the next run), twice.
for round in 1 2; do
	echo "changed in round $round" >"$D/sub/f1"
	hs_wait_same "round $round: the change arrived" 30 "$D"
	mv "$D/sub/f2" "$D/sub/g$round"
	mv "$D/sub/g$round" "$D/sub/f2"
	mv "$D/sub/f$((round + 2))" "$D/sub/moved$round"
	kill -0 "$PRIMARY_PID" 2>/dev/null ||
		hs_fail "the primary died: $(tail -20 "$T/primary.log")"
	hs_wait_same "round $round: the renames arrived" 30 "$D"
done
if grep -q "journal of [0-9]* renames" "$T/primary.log"; then
	hs_ok "the renames' journal write failed, and the daemon said so"
else
	hs_bad "no failed journal write of renames in the log"
fi
if kill -0 "$PRIMARY_PID" 2>/dev/null; then
	hs_ok "the primary daemon still runs"
else
	hs_bad "the primary daemon died: $(tail -5 "$T/primary.log")"
fi
hs_result rename_journal
