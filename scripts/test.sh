#!/usr/bin/env bash
# The README's test command: installs what is needed, builds the
# AddressSanitizer + UBSan test build, and runs every test suite
# (unit, integration, fuzz replay, e2e) with ctest. Needs root (network
# namespaces, nftables, dockerd); re-runs itself with sudo otherwise.
# Extra arguments go to ctest, e.g. `scripts/test.sh -L unit`.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$0" "$@"
fi
cd "$(dirname "$0")/.."
scripts/deps.sh --test
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug
cmake --build build/test -j"$(nproc)"
cd build/test
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure --no-tests=error "$@"
