#!/usr/bin/env bash
# The rules the folders keep (docs/design.md, "Layout"), checked on the
# sources; scripts/deps.sh checks the calls between files on the objects.
#  - every library folder has include/ with exactly one public header;
#  - primary/ and standby/ never include each other's headers, and
#    failover/ includes neither (it talks to a daemon through ctl/);
#  - peer bytes are decoded only in protocol/ (no proto_get_*/proto_rd_*
#    call elsewhere; tests and test tools aside);
#  - librsync.h is included only in delta/ (and its unit test).
set -euo pipefail
cd "$(dirname "$0")/.."
libs=(common protocol index tree delta dbrepl ctl primary standby failover)
fail=0
bad() {
	echo "check-layout: $*" >&2
	fail=1
}

for l in "${libs[@]}"; do
	n=$(find "$l/include" -maxdepth 1 -name '*.h' 2>/dev/null | wc -l)
	[ "$n" -eq 1 ] || bad "$l/include holds $n public headers, not 1"
	extra=$(find "$l" -name '*.h' ! -path "$l/include/*" ! -name '*_int.h')
	[ -z "$extra" ] || bad "$l: a private header not named *_int.h: $extra"
done

hdrs() { # the header names a folder owns
	find "$1" -name '*.h' -printf '%f\n'
}
for pair in primary:standby standby:primary failover:primary \
	failover:standby; do
	from=${pair%%:*} to=${pair##*:}
	for h in $(hdrs "$to"); do
		if grep -rln "#include \"$h\"" "$from" >/dev/null; then
			bad "$from/ includes $to/'s $h:" \
			    "$(grep -rln "#include \"$h\"" "$from" | tr '\n' ' ')"
		fi
	done
done

dec=$(grep -rln 'proto_get_\|proto_rd_' --include='*.c' "${libs[@]}" cli |
	grep -v '^protocol/' || true)
[ -z "$dec" ] || bad "peer bytes decoded outside protocol/: $dec"

rs=$(grep -rln '#include <librsync.h>' --include='*.[ch]' "${libs[@]}" cli |
	grep -v '^delta/' || true)
[ -z "$rs" ] || bad "librsync.h included outside delta/: $rs"

[ $fail -eq 0 ] && echo "check-layout: ${#libs[@]} libraries keep their rules"
exit $fail
