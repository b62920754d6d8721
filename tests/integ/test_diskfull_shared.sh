#!/usr/bin/env bash
# test_diskfull_shared.sh - the standby's target_root and state_dir on one
# filesystem, and that filesystem full: status says so once, naming both,
# not as two problems.  Runs in a mount namespace of its own (unshare -m),
# so the small tmpfs below $T is seen by the daemon and the checks only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || hs_fail "needs root: a tmpfs mount in a mount namespace"
if [ -z "${HS_DISKFULL_NS:-}" ]; then
	unshare -m true 2>/dev/null ||
		hs_fail "cannot make a mount namespace (unshare -m)"
	exec unshare -m --propagation private \
		env HS_DISKFULL_NS=1 bash "$0" "$@"
fi

ds_cleanup() {
	local rc=$?
	set +e
	# The daemons hold the mount: stopped first (only those still ours).
	hs_stop_ours
	umount "$T/disk" 2>/dev/null
	(exit $rc)
	hs_cleanup
}

hs_init diskfull_shared
trap ds_cleanup EXIT
mkdir -p "$T/src/data" "$T/disk"
echo data >"$T/src/data/f"
mount -t tmpfs -o size=4m tmpfs "$T/disk"
mkdir -p "$T/disk/root" "$T/disk/state"
hs_setup_pair "
[path data]
source = $T/src/data"
sed -i -e "s|^target_root = .*|target_root = $T/disk/root|" \
	-e "s|^state_dir = .*|state_dir = $T/disk/state|" "$C2"
hs_start_standby
dd if=/dev/zero of="$T/disk/filler" bs=4k status=none 2>/dev/null || true
[ "$(stat -f -c %a "$T/disk")" = 0 ] || hs_fail "$T/disk is not full"

hs_status "$C2" "$T/st.json"
python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
full = [w["text"] for w in j["warnings"] if " is full" in w["text"]]
print(" | ".join(full) or "none")
sys.exit(0 if len(full) == 1 and sys.argv[2] in full[0] and
         sys.argv[3] in full[0] else 1)' \
	"$T/st.json" "$T/disk/root" "$T/disk/state" >"$T/full.out" &&
	hs_ok "one full filesystem, one warning naming both: $(cat "$T/full.out")" ||
	hs_bad "full: $(cat "$T/full.out")"

rm -f "$T/disk/filler"
hs_status "$C2" "$T/st.json"
python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(1 if any(" full" in w["text"] for w in j["warnings"]) else 0)' \
	"$T/st.json" && hs_ok "space returned: no warning" ||
	hs_bad "space returned: still warned: $(python3 "$HS_CLAIM" show "$T/st.json")"

hs_result diskfull_shared
