#!/usr/bin/env bash
# Builds the agentsafe .deb: a Release build in build/package (as the
# invoking user when run with sudo, so the checkout gets no root-owned
# files), then cpack. Prints the path of the .deb on the last line.
#
#   scripts/package.sh [BUILD_DIR]      (default build/package)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$SRC/build/package}
case "${1:-}" in -h | --help) sed -n 2,6p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
as_user=()
if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
	as_user=(runuser -u "$SUDO_USER" --)
fi
"${as_user[@]}" cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DAGENTSAFE_TESTS=OFF >/dev/null
"${as_user[@]}" cmake --build "$B" -j"$(nproc)" >/dev/null
# cpack installs into a staging dir under $B; it needs no root either.
(cd "$B" && "${as_user[@]}" cpack -G DEB >/dev/null)
deb=$(find "$B" -maxdepth 1 -name 'agentsafe_*.deb' -newer "$B/CMakeCache.txt" | head -n1)
[ -n "$deb" ] || { echo "package.sh: cpack made no .deb in $B" >&2; exit 1; }
echo "$deb"
