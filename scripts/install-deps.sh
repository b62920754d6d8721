#!/usr/bin/env bash
# Install the Debian 12 packages hamnsync needs to build, test and demo.
# Idempotent: installs only what is missing.
set -euo pipefail

pkgs=(
	build-essential cmake pkg-config
	librsync-dev libzstd-dev libssl-dev liblmdb-dev check libjansson-dev
	libxxhash-dev
	openssl rsync lmdb-utils iproute2 procps psmisc attr acl libcap2-bin
	util-linux coreutils time lsyncd python3 findutils gawk
	clang-format
	clang libclang-rt-14-dev
	libsqlite3-dev sqlite3 postgresql postgresql-client mariadb-server mariadb-client
	libmnl-dev iputils-arping resource-agents pacemaker-cli-utils
)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: need root to install: ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
